"""Featurisation at scale: pandas versus Dask (LocalCluster), events/s and peak resident memory.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_dask_features.py --events 1000000 5000000

For each size, simulated logs are written as Parquet in chunks (one file of whole sessions per
simulated batch; ids made unique per batch), then featurised at every decision point in a fresh
process each (time = reading the Parquet folder + featurising):

* ``pandas``: ``pd.read_parquet`` of the folder + :func:`nextchannel.features.features_many`;
* ``dask``: ``dd.read_parquet`` of the folder (the files hold whole sessions, so no shuffle) +
  :func:`nextchannel.dask_backend.features_many` on a LocalCluster of 2 worker processes.

Peak RSS is the process's ``ru_maxrss`` (pandas), and for Dask the driver's plus the largest
worker's (each worker process reports its own). Session features only (no profiles): events are
what grows. The machine has 2 cores shared with other work: figures are from one run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

SESSIONS_PER_CHUNK = 5000


def write_logs(folder: pathlib.Path, n_events: int) -> tuple[int, int]:
    import pandas as pd

    from nextchannel import simulate

    (folder / "events").mkdir(parents=True)
    at_parts, total, k = [], 0, 0
    while total < n_events:
        sim = simulate(SESSIONS_PER_CHUNK, seed=1000 + k)
        ev = sim.events.assign(session_id="k%03d-" % k + sim.events["session_id"].astype(str))
        ev.to_parquet(folder / "events" / f"part-{k:03d}.parquet")
        at_parts.append(sim.decisions[["session_id", "ts"]].assign(
            session_id="k%03d-" % k + sim.decisions["session_id"].astype(str)))
        total += len(ev)
        k += 1
    at = pd.concat(at_parts, ignore_index=True)
    at.to_parquet(folder / "at.parquet")
    return total, len(at)


def run_pandas(folder: str) -> dict:
    import pandas as pd

    from nextchannel.features import features_many

    t0 = time.perf_counter()
    events = pd.read_parquet(pathlib.Path(folder) / "events")
    at = pd.read_parquet(pathlib.Path(folder) / "at.parquet")
    t1 = time.perf_counter()
    X = features_many(at, events=events, with_profile=False)
    t2 = time.perf_counter()
    return {"events": len(events), "rows": len(X), "read_s": t1 - t0, "features_s": t2 - t1,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_dask(folder: str) -> dict:
    import dask.dataframe as dd
    import pandas as pd

    from nextchannel import dask_backend

    c = dask_backend.client(n_workers=2, threads_per_worker=1)
    try:
        t0 = time.perf_counter()
        events = dd.read_parquet(str(pathlib.Path(folder) / "events"))
        at = pd.read_parquet(pathlib.Path(folder) / "at.parquet")
        X = dask_backend.features_many(at, events=events, client=c, with_profile=False, partitioned_by_session=True)
        t1 = time.perf_counter()
        workers = c.run(lambda: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024)
        return {"events": int(events.map_partitions(len).compute().sum()), "rows": len(X), "read_s": 0.0,
                "features_s": t1 - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_peak_rss_mb": max(workers.values())}
    finally:
        dask_backend.close(c)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--mode", choices=["pandas", "dask"], help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # child process: one measurement
        print(json.dumps(run_pandas(args.folder) if args.mode == "pandas" else run_dask(args.folder)))
        return
    print(f"{'events':>12} {'executor':>8} {'read+feat. s':>12} {'events/s':>12} {'events/s/core':>14} "
          f"{'peak RSS MB':>12} {'worker peak MB':>15}")
    for n in args.events:
        folder = pathlib.Path(tempfile.mkdtemp(prefix="nc-bench-dask-"))
        total, n_at = write_logs(folder, n)
        for mode in ("pandas", "dask"):
            out = subprocess.run([sys.executable, __file__, "--mode", mode, "--folder", str(folder)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{total:>12,} {mode:>8} failed (exit {out.returncode}): {out.stderr.strip()[-300:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            secs = r["read_s"] + r["features_s"]
            rate = r["events"] / secs
            cores = 1 if mode == "pandas" else 2
            print(f"{r['events']:>12,} {mode:>8} {secs:>12.1f} {rate:>12,.0f} {rate / cores:>14,.0f} "
                  f"{r['peak_rss_mb']:>12,.0f} {r.get('worker_peak_rss_mb', float('nan')):>15,.0f}")
        print(f"{'':>12} ({n_at:,} decision points; Parquet in {len(list((folder / 'events').iterdir()))} files)")


if __name__ == "__main__":
    main()
