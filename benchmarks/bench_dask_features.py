"""Featurisation at scale: pandas versus Dask (LocalCluster), events/s and peak resident memory.

Run (one size per locked run; the logs are generated once and reused):

    flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_dask_features.py --events 1000000 --generate
    flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_dask_features.py --events 1000000

Logs are simulated in chunks of 20,000 sessions (ids made unique per chunk) and written as Parquet,
one file of events and one file of their decision points per chunk (``<data>/<N>/events/``,
``<data>/<N>/at/``), so generation never holds more than one chunk. Each measurement runs in a
fresh process (time = reading the Parquet + featurising every decision point):

* ``pandas``: both folders read with pyarrow, text columns as dictionaries (pandas categoricals;
  ``--text plain``: ``pd.read_parquet``, string columns) + :func:`nextchannel.features.features_many`, in
  a process whose address space is capped (``--pandas-limit-gib``, ``RLIMIT_AS``) so that it fails
  instead of exhausting the shared machine: a failure reads "would need > X GiB";
* ``dask``: :func:`nextchannel.dask_backend.read_parquet` of both folders, one partition per file, text
  as dictionaries (``--text plain``: ``dd.read_parquet``) (file ``i`` of decision points goes with file ``i``
  of events: ``copartitioned=True``, nothing shuffled) + :func:`nextchannel.dask_backend.features_many`
  on a LocalCluster of 2 worker processes (1 thread each); the feature frame stays on the cluster
  (its column sums are computed, so every feature of every point is built);
* ``dask-shuffle`` (``--executors``): the same, but the points come as one unpartitioned frame
  and are joined to their session's partition on the cluster (``partitioned_by_session=True``).

Peak RSS: ``ru_maxrss`` of each process; for Dask the sum over the driver (which also runs the
scheduler and the nannies of a LocalCluster) and the two worker processes -- an upper bound of the
peak of the sum. CPU s: user + system CPU time of all those processes during the measurement;
events per CPU second is the per-core rate that the machine's other load does not distort (the
2 cores are shared; wall-clock rates are what this run got). Session features only (no profiles): events are what grows. The machine has 2 cores
shared with other work: figures are from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

SESSIONS_PER_CHUNK = 20_000


def write_logs(folder: pathlib.Path, n_events: int) -> tuple[int, int, int]:
    from nextchannel import simulate

    for sub in ("events", "at"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    total = n_at = k = 0
    while total < n_events:
        sim = simulate(SESSIONS_PER_CHUNK, seed=1000 + k)
        prefix = "k%04d-" % k
        ev = sim.events.assign(session_id=prefix + sim.events["session_id"].astype(str))
        at = sim.decisions[["session_id", "ts"]].assign(session_id=prefix + sim.decisions["session_id"].astype(str))
        ev.to_parquet(folder / "events" / f"part-{k:04d}.parquet", index=False)
        at.to_parquet(folder / "at" / f"part-{k:04d}.parquet", index=False)
        total, n_at, k = total + len(ev), n_at + len(at), k + 1
        del sim, ev, at
    (folder / "done.json").write_text(json.dumps({"events": total, "at": n_at, "files": k}))
    return total, n_at, k


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _usage() -> tuple[float, float]:
    """(peak RSS in MB, CPU seconds user + system) of this process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_maxrss / 1024, r.ru_utime + r.ru_stime


def _text_columns(folder: pathlib.Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(next(iter(sorted(folder.iterdir()))))
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def read_folder(folder: pathlib.Path, text: str) -> "pd.DataFrame":
    """A folder of Parquet files as one pandas frame: text columns as dictionaries (categoricals) or
    as plain string columns."""
    import pandas as pd
    import pyarrow.parquet as pq

    if text == "plain":
        return pd.read_parquet(folder)
    return pq.read_table(folder, read_dictionary=_text_columns(folder)).to_pandas()


def run_pandas(folder: str, text: str) -> dict:
    from nextchannel.features import features_many

    cpu0 = _usage()[1]
    t0 = time.perf_counter()
    events = read_folder(pathlib.Path(folder) / "events", text)
    at = read_folder(pathlib.Path(folder) / "at", text)
    t1 = time.perf_counter()
    X = features_many(at, events=events, with_profile=False)
    t2 = time.perf_counter()
    return {"events": len(events), "rows": len(X), "read_s": t1 - t0, "features_s": t2 - t1, "peak_rss_mb": _rss_mb(),
            "cpu_s": _usage()[1] - cpu0}


def _warm_up() -> None:
    """What a worker imports to read and featurise (start-up, not work)."""
    import dask.dataframe  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import nextchannel.dask_backend  # noqa: F401
    import nextchannel.features  # noqa: F401


def run_dask(folder: str, mode: str, text: str) -> dict:
    import dask.dataframe as dd
    import pandas as pd

    from nextchannel import dask_backend

    def read(sub: str):  # one partition per file
        path = pathlib.Path(folder) / sub
        return dd.read_parquet(str(path)) if text == "plain" else dask_backend.read_parquet(sorted(path.iterdir()))

    c = dask_backend.client(n_workers=2, threads_per_worker=1)
    try:
        c.run(_warm_up)  # imports are start-up, not work
        cpu0 = c.run(_usage)
        d_cpu0 = _usage()[1]
        t0 = time.perf_counter()
        events = read("events")
        if mode == "dask":
            at = read("at")
            X = dask_backend.features_many(at, events=events, client=c, with_profile=False, copartitioned=True)
        else:
            at = read("at").repartition(npartitions=2)
            X = dask_backend.features_many(at, events=events, client=c, with_profile=False, partitioned_by_session=True)
        sums = c.compute(X.sum(), sync=True)
        n_rows = int(c.compute(X.map_partitions(len).sum(), sync=True)) if mode != "dask" else None
        t1 = time.perf_counter()
        after = c.run(_usage)
        workers = {w: u[0] for w, u in after.items()}
        cpu = sum(after[w][1] - cpu0[w][1] for w in after) + _usage()[1] - d_cpu0
        n_events = int(json.loads((pathlib.Path(folder) / "done.json").read_text())["events"])
        return {"events": n_events, "rows": n_rows, "read_s": 0.0, "features_s": t1 - t0, "finite": bool(pd.Series(sums).notna().all()),
                "peak_rss_mb": _rss_mb(), "worker_peak_rss_mb": sorted(workers.values()), "cpu_s": cpu,
                "total_peak_rss_mb": _rss_mb() + sum(workers.values())}
    finally:
        dask_backend.close(c)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--data", default="/tmp/nc-bench-dask-features", help="where the generated logs are kept")
    ap.add_argument("--generate", action="store_true", help="only generate the logs of each size")
    ap.add_argument("--executors", nargs="+", default=["pandas", "dask"], choices=["pandas", "dask", "dask-shuffle"])
    ap.add_argument("--pandas-limit-gib", type=float, default=12.0, help="address-space cap of the pandas process")
    ap.add_argument("--text", choices=["dictionary", "plain"], default="dictionary",
                    help="read text columns as dictionaries (categoricals) or as plain string columns")
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # child process: one measurement
        if args.mode == "pandas":
            cap = int(args.pandas_limit_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            print(json.dumps(run_pandas(args.folder, args.text)))
        else:
            print(json.dumps(run_dask(args.folder, args.mode, args.text)))
        return
    for n in args.events:
        folder = pathlib.Path(args.data) / str(n)
        if not (folder / "done.json").exists():
            t = time.perf_counter()
            total, n_at, files = write_logs(folder, n)
            print(f"generated {total:,} events, {n_at:,} decision points in {files} files ({time.perf_counter() - t:.0f} s)")
        if args.generate:
            continue
        info = json.loads((folder / "done.json").read_text())
        print(f"\n{info['events']:,} events, {info['at']:,} decision points, {info['files']} Parquet files per table, "
              f"text columns read {'as dictionaries' if args.text == 'dictionary' else 'plain'}")
        print(f"{'executor':>13} {'read s':>7} {'feat. s':>8} {'total s':>8} {'events/s':>10} {'ev/s/core':>10} "
              f"{'CPU s':>7} {'ev/CPU-s':>9} {'peak RSS MB (all processes)':>28}  detail")
        for mode in args.executors:
            env = dict(os.environ, OMP_NUM_THREADS="1")
            out = subprocess.run([sys.executable, __file__, "--mode", mode, "--folder", str(folder),
                                  "--text", args.text, "--pandas-limit-gib", str(args.pandas_limit_gib)],
                                 capture_output=True, text=True,
                                 env=env)
            lines = out.stdout.strip().splitlines()
            if out.returncode != 0 or not lines:
                tail = out.stderr.strip().splitlines()[-1:] or ["?"]
                limit = f"would need > {args.pandas_limit_gib:g} GiB; " if mode == "pandas" and "Memory" in out.stderr else ""
                print(f"{mode:>13} failed (exit {out.returncode}): {limit}{tail[0][-200:]}")
                continue
            r = json.loads(lines[-1])
            secs = r["read_s"] + r["features_s"]
            cores = 1 if mode == "pandas" else 2
            rate = r["events"] / secs
            total_rss = r.get("total_peak_rss_mb", r["peak_rss_mb"])
            detail = (f"driver+scheduler+nannies {r['peak_rss_mb']:,.0f}, workers "
                      f"{', '.join(f'{w:,.0f}' for w in r['worker_peak_rss_mb'])}") if mode != "pandas" else \
                f"{r['rows']:,} rows"
            print(f"{mode:>13} {r['read_s']:>7.1f} {r['features_s']:>8.1f} {secs:>8.1f} {rate:>10,.0f} "
                  f"{rate / cores:>10,.0f} {r['cpu_s']:>7.1f} {r['events'] / r['cpu_s']:>9,.0f} {total_rss:>28,.0f}  {detail}")


if __name__ == "__main__":
    main()
