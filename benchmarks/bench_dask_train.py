"""Training time, pandas (one process) versus lightgbm.dask (LocalCluster, 2 workers), and both bundles'
policy value on the same fresh simulated sessions (exact: the simulator's true expected rewards).

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_dask_train.py [--decisions 100000]
      [--executors pandas dask]   (one executor per run at large sizes, to keep each locked run short)

Both train the same configuration on the same logs; featurisation is included in the training time
(pandas executor vs Dask executor). The value of each bundle's greedy policy is the mean of the true
``ev`` of the action it picks at every decision point of a fresh simulation (seed 9999), next to
never offering and the oracle. Data-parallel LightGBM builds other trees than serial LightGBM, so
the two values differ by the models' variance, not by design.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def value(ms, test) -> float:
    from nextchannel.scorer import Scorer

    d = test.decisions
    out = Scorer(ms).decide_many(d, events=test.events, customers=test.customers, contacts=test.contacts)
    ev = d[[f"ev_{a}" for a in ms.actions]].to_numpy()
    return float(ev[np.arange(len(d)), pd.Index(ms.actions).get_indexer(out["action"])].mean())


def main() -> None:
    from nextchannel import simulate, PolicyConfig, TrainConfig  # noqa: I001 (simulate first)
    from nextchannel import dask_backend
    from nextchannel.compat import training_module

    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=100_000)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--executors", nargs="+", default=["pandas", "dask"], choices=["pandas", "dask"])
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    sessions = int(args.decisions / 2.75)
    sim = simulate(sessions, seed=5)
    d = sim.decisions.iloc[: args.decisions]
    test = simulate(20000, seed=9999)
    policy = PolicyConfig.from_sim(sim.config)
    # guard=False for both: the guard's cross-fitting multiplies the fits alike; what differs is the executor
    cfg = TrainConfig(n_estimators=args.trees, guard=False)
    kw = dict(decisions=d, events=sim.events, customers=sim.customers, contacts=sim.contacts, config=cfg,
              policy=policy)
    fitted = {}
    if "pandas" in args.executors:
        t0 = time.perf_counter()
        ms = training_module().train(**kw)
        fitted["pandas + LightGBM (1 core)"] = (time.perf_counter() - t0, ms)
    if "dask" in args.executors:
        c = dask_backend.client(n_workers=2, threads_per_worker=1)
        try:
            t0 = time.perf_counter()
            ms = dask_backend.train(client=c, **kw)
            fitted["Dask + lightgbm.dask (2 w)"] = (time.perf_counter() - t0, ms)
        finally:
            dask_backend.close(c)
    dt = test.decisions
    ev = dt[[f"ev_{a}" for a in policy.actions]].to_numpy()
    open_ = np.column_stack([np.ones(len(dt), bool)] + [dt[f"open_{ch}"].to_numpy(dtype=bool)
                                                        for ch in policy.channels.names])
    oracle = float(np.where(open_, ev, -np.inf).max(axis=1).mean())
    print(f"{len(d):,} decisions ({sessions:,} sessions, {len(sim.events):,} events), {args.trees} trees per head")
    print(f"{'executor':<28} {'train s':>8} {'policy value':>13}")
    for name, (secs, ms) in fitted.items():
        print(f"{name:<28} {secs:>8.1f} {value(ms, test):>13.4f}")
    print(f"{'never offer':<28} {'':>8} {ev[:, 0].mean():>13.4f}")
    print(f"{'oracle':<28} {'':>8} {oracle:>13.4f}")
    print(f"(value per decision point on {len(dt):,} fresh decision points, seed 9999)")


if __name__ == "__main__":
    main()
