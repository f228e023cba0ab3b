"""Shared helpers of the web tests: a real redis-server and a uvicorn worker on free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


@pytest.fixture(scope="session")
def redis_url():
    """A private redis-server on 127.0.0.1 (no persistence), stopped at the end of the session."""
    exe = shutil.which("redis-server")
    if exe is None:  # CI installs it (.ci/run); a missing server is an error, not a skip
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="nc-redis-")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir, "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def start_server(port: int, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A `nextchannel serve` process on 127.0.0.1:port (call wait_for_port before using it)."""
    cmd = [sys.executable, "-m", "nextchannel.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    out = open(log_path, "ab")
    return subprocess.Popen(cmd, env=dict(os.environ, **(env or {})), stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


#: The pages the logged test sessions move between (path, page type).
SHOP_PAGES = (("/", "home"), ("/p/1", "product"), ("/cart", "cart"), ("/checkout", "checkout"), ("/help", "help"))


def write_service_logs(folder: Path, n_sessions: int = 60) -> None:
    """A logs/ folder as the reference service writes it: short sessions, offers and their outcomes.

    The default bundle decides with epsilon-greedy exploration (so the logs hold randomised offers
    to learn from); 40% of offers are accepted, 70% of accepted ones solved. Deterministic.
    """
    import dataclasses

    import numpy as np
    from starlette.testclient import TestClient

    from nextchannel.modelset import DEFAULT_BUNDLE, ModelSet
    from nextchannel.scorer import Scorer
    from nextchannel.web import DecisionLog, create_app

    ms = ModelSet.load(DEFAULT_BUNDLE)
    ms.policy = dataclasses.replace(ms.policy, exploration="epsilon", epsilon=0.6)
    client = TestClient(create_app(Scorer(ms, seed=1), log=DecisionLog(folder)))
    rng = np.random.default_rng(0)
    t = 1_767_225_600.0
    for k in range(n_sessions):
        sid = f"v{k}"
        t += 500
        batches = [[{"ts": t, "type": "session_start", "device": ["desktop", "mobile"][k % 2], "language": "en"}]]
        for j in range(3):
            page, ptype = SHOP_PAGES[int(rng.integers(len(SHOP_PAGES)))]
            batches.append([{"ts": t + 20 * j + 1, "type": "page_view", "page": page, "page_type": ptype},
                            {"ts": t + 20 * j + 15, "type": "idle", "duration_s": float(rng.integers(5, 60))}])
        for b in batches:
            d = client.post("/v1/events", json={"session_id": sid, "events": b}).json()["decision"]
            if d["offer"]:
                outcome = "accepted" if rng.random() < 0.4 else "dismissed"
                client.post("/v1/outcome", json={"decision_id": d["decision_id"], "outcome": outcome,
                                                 "session_id": sid, "channel": d["channel"], "ts": b[-1]["ts"]})
                if outcome == "accepted" and rng.random() < 0.7:
                    client.post("/v1/outcome", json={"decision_id": d["decision_id"], "outcome": "solved"})
