"""Load benchmark of the reference service on loopback: concurrent clients against two workers.

Run (under the shared benchmark lock, so that two benchmarks never share the CPUs):

    flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_web.py

Two set-ups, each with two worker processes and the shipped default bundle:

* ``memory``: two ``nextchannel serve`` processes with in-memory stores; each session is routed to
  one of them (session affinity, as a load balancer must do for memory stores);
* ``redis``: ``nextchannel serve --workers 2 --store redis://...`` (one port, the kernel spreads
  connections over the workers; every request loads and saves its session through Redis).

Each client plays sessions of realistic batches (session start, page views, scrolls, idle, form
errors) over one keep-alive connection. Printed per set-up: requests, errors (non-200 or broken
connections), client-side p50/p99 latency, throughput, and — from each worker's ``/metrics`` —
the share of the service's request time spent in ``Scorer.decide_one``. Count and time are
bounded (``--requests``, ``--timeout-s``); only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def session_batches(k: int, n_batches: int, rng: np.random.Generator) -> list[bytes]:
    """One session's request bodies (realistic batches, cycling through many different sessions)."""
    sid = f"bench-{k}-{rng.integers(1 << 30)}"
    t = 1_767_261_600.0 + float(rng.integers(0, 86400))
    pages = [("/", "home"), ("/c/1", "category"), ("/p/1", "product"), ("/cart", "cart"), ("/checkout", "checkout"),
             ("/help", "help")]
    out = []
    for j in range(n_batches):
        ev = []
        if j == 0:
            ev.append({"ts": t, "type": "session_start", "device": ["desktop", "mobile"][k % 2],
                       "language": ["en", "de", "fr"][k % 3], "referrer": "search"})
        t += float(rng.integers(2, 40))
        page, ptype = pages[int(rng.integers(len(pages)))]
        ev.append({"ts": t, "type": "page_view", "page": page, "page_type": ptype})
        for _ in range(int(rng.integers(0, 3))):
            t += 1.5
            ev.append({"ts": t, "type": "scroll", "depth": float(rng.random()), "direction": "down"})
        if rng.random() < 0.3:
            t += 15
            ev.append({"ts": t, "type": "idle", "duration_s": 15.0})
        if ptype == "checkout" and rng.random() < 0.4:
            t += 2
            ev.append({"ts": t, "type": "form_error", "field": "zip"})
        out.append(json.dumps({"session_id": sid, "events": ev}).encode())
    return out


async def client(ports: list[int], sessions: asyncio.Queue, lat: list[float], errors: list[int],
                 sticky: bool, deadline: float) -> None:
    conns: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def conn(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if port not in conns:
            conns[port] = await asyncio.open_connection("127.0.0.1", port)
        return conns[port]

    while time.monotonic() < deadline:
        try:
            k, bodies = sessions.get_nowait()
        except asyncio.QueueEmpty:
            break
        for j, body in enumerate(bodies):
            port = ports[k % len(ports)] if sticky else ports[(k + j) % len(ports)]
            head = (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            t0 = time.perf_counter()
            try:
                reader, writer = await conn(port)
                writer.write(head + body)
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                ok = status_line.split(b" ")[1] == b"200"
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                conns.pop(port, None)
                ok = False
            lat.append(time.perf_counter() - t0)
            if not ok:
                errors.append(1)
    for _, w in conns.values():
        w.close()


def scrape(url: str, want_workers: int, tries: int = 60) -> dict[str, dict[str, float]]:
    """``{pid: {request_sum, request_count, decide_sum}}`` from /metrics (fresh connections)."""
    seen: dict[str, dict[str, float]] = {}
    for _ in range(tries):
        text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
        pid = re.search(r'nextchannel_worker_info\{pid="(\d+)"\}', text).group(1)

        def val(name: str) -> float:
            return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))

        seen[pid] = {"request_sum": val("nextchannel_request_seconds_sum"),
                     "request_count": val("nextchannel_request_seconds_count"),
                     "decide_sum": val("nextchannel_decide_seconds_sum")}
        if len(seen) >= want_workers:
            break
    return seen


def run(label: str, ports: list[int], sticky: bool, n_requests: int, n_clients: int, per_session: int,
        timeout_s: float, metric_urls: list[str], workers: int) -> dict[str, float]:
    rng = np.random.default_rng(7)
    n_sessions = n_requests // per_session
    base = {pid: v for u in metric_urls for pid, v in scrape(u, workers if len(metric_urls) == 1 else 1).items()}

    async def main() -> tuple[list[float], list[int], float]:
        q: asyncio.Queue = asyncio.Queue()
        for k in range(n_sessions):
            q.put_nowait((k, session_batches(k, per_session, rng)))
        lat: list[float] = []
        errors: list[int] = []
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        await asyncio.gather(*(client(ports, q, lat, errors, sticky, deadline) for _ in range(n_clients)))
        return lat, errors, time.perf_counter() - t0

    lat, errors, wall = asyncio.run(main())
    after = {pid: v for u in metric_urls for pid, v in scrape(u, workers if len(metric_urls) == 1 else 1).items()}
    req_s = sum(after[p]["request_sum"] - base.get(p, {}).get("request_sum", 0.0) for p in after)
    dec_s = sum(after[p]["decide_sum"] - base.get(p, {}).get("decide_sum", 0.0) for p in after)
    a = np.array(lat) * 1000
    row = {"requests": len(lat), "errors": len(errors), "p50_ms": float(np.percentile(a, 50)),
           "p99_ms": float(np.percentile(a, 99)), "req_per_s": len(lat) / wall,
           "decide_share_service": dec_s / req_s if req_s else float("nan"),
           "decide_share_client": dec_s / (a.sum() / 1000), "workers_seen": len(after)}
    print(f"{label:<8} {row['requests']:>8,} {row['errors']:>7} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
          f"{row['req_per_s']:>8.0f} {row['decide_share_service']:>14.1%} {row['decide_share_client']:>13.1%}",
          flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--per-session", type=int, default=10, help="requests per simulated session")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="stop a set-up after this long")
    ap.add_argument("--only", choices=["memory", "redis"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nc-bench-web-"))
    procs: list[subprocess.Popen] = []
    py = sys.executable

    def serve(port: int, *extra: str) -> None:
        out = open(tmp / f"serve-{port}.out", "wb")
        procs.append(subprocess.Popen([py, "-m", "nextchannel.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                       *extra], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT))

    print(f"{args.clients} concurrent clients, {args.requests:,} requests ({args.per_session} per session), "
          f"2 workers, loopback; {os.cpu_count()} CPUs shared by clients, workers and Redis")
    print(f"{'store':<8} {'requests':>8} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} "
          f"{'decide/service':>14} {'decide/client':>13}")
    try:
        if args.only in (None, "memory"):
            ports = [free_port(), free_port()]
            for p in ports:
                serve(p, "--store", "memory")
            for p in ports:
                wait_for(f"http://127.0.0.1:{p}/healthz")
            run("memory", ports, True, args.requests, args.clients, args.per_session, args.timeout_s,
                [f"http://127.0.0.1:{p}" for p in ports], 1)
            for pr in procs:
                pr.terminate()
                pr.wait(20)
            procs.clear()
        if args.only in (None, "redis"):
            exe = shutil.which("redis-server")
            if exe is None:
                raise SystemExit("redis-server is not installed")
            rport = free_port()
            procs.append(subprocess.Popen([exe, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL))
            port = free_port()
            serve(port, "--workers", "2", "--store", f"redis://127.0.0.1:{rport}/0")
            wait_for(f"http://127.0.0.1:{port}/healthz")
            time.sleep(3.0)  # let the second worker finish loading before the clock starts
            run("redis", [port], False, args.requests, args.clients, args.per_session, args.timeout_s,
                [f"http://127.0.0.1:{port}"], 2)
    finally:
        for pr in procs:
            pr.terminate()
            try:
                pr.wait(20)
            except subprocess.TimeoutExpired:
                pr.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("decide/service: share of the service's own request time (nextchannel_request_seconds) spent in "
          "Scorer.decide_one; decide/client: share of the client-observed latency")
    return 0


if __name__ == "__main__":
    sys.exit(main())
