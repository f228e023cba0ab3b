"""Single-row latency: FastBooster against LightGBM's own Python paths, in one interleaved run.

For a binary model (300 trees) and a 6-class model (900 trees: 150 rounds x 6 classes), both
on ~40 session-like features, this times per call, cycling through many held-out rows:

* ``Booster.predict`` on a one-row numpy array (``num_threads=1``),
* ``LGBMClassifier.predict_proba`` on a one-row DataFrame (fewer calls: it is slow),
* ``FastBooster`` predictor: copy the row into its buffer, then ``predict()``,

interleaving the paths call by call so that machine noise hits them alike, after a warm-up.
It also checks that the outputs agree (max abs difference) and compares batch throughput of
``FastBooster.predict_many`` with ``Booster.predict``. It prints figures and asserts nothing.

Run: ``.venv/bin/python benchmarks/bench_fastpredict.py [--calls 20000] [--sk-calls 2000]``
"""

from __future__ import annotations

import argparse
import time

import lightgbm as lgb
import numpy as np
import pandas as pd

from nextchannel.fastpredict import FastBooster

N_FEATURES = 40


def make_sessions(n_rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Session-like features: counts, durations, flags, coded categories, some missing."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for j in range(10):
        cols[f"count_{j}"] = rng.poisson(rng.uniform(0.5, 6), n_rows).astype(float)
    for j in range(10):
        cols[f"dwell_s_{j}"] = rng.lognormal(rng.uniform(1, 4), 1.0, n_rows)
    for j in range(8):
        cols[f"flag_{j}"] = (rng.random(n_rows) < rng.uniform(0.05, 0.5)).astype(float)
    for j in range(6):
        cols[f"code_{j}"] = rng.integers(0, rng.integers(3, 11), n_rows).astype(float)
    for j in range(6):
        cols[f"ratio_{j}"] = rng.beta(2, 5, n_rows)
    X = pd.DataFrame(cols)
    for j, name in enumerate(X.columns):
        if j % 3 == 0:  # e.g. no customer profile, no previous page
            X.loc[rng.random(n_rows) < 0.15, name] = np.nan
    v = X.to_numpy()
    score = (
        0.4 * np.nan_to_num(v[:, 0]) - 0.02 * np.nan_to_num(v[:, 10]) + 1.2 * v[:, 20]
        + 0.3 * (v[:, 28] == 1) + np.sin(np.nan_to_num(v[:, 34]) * 3) + rng.logistic(size=n_rows)
    )
    return X, score


def percentiles(ns: list[int]) -> np.ndarray:
    return np.percentile(np.asarray(ns, dtype=float) / 1000.0, [50, 90, 99])


def bench_model(name: str, clf: lgb.LGBMClassifier, pool: pd.DataFrame, calls: int, sk_calls: int) -> list[tuple]:
    booster = clf.booster_
    fb = FastBooster(booster.model_to_string())
    p = fb.predictor()
    X = pool.to_numpy(dtype=np.float64)
    frames = [pool.iloc[[i]] for i in range(min(sk_calls + 200, len(pool)))]
    n_pool = len(X)
    t_booster: list[int] = []
    t_fast: list[int] = []
    t_sk: list[int] = []
    max_diff = 0.0
    sk_every = max(1, calls // sk_calls)
    clock = time.perf_counter_ns
    warmup = 500
    for k in range(-warmup, calls):
        i = k % n_pool
        row = X[i : i + 1]
        t0 = clock()
        ref = booster.predict(row, num_threads=1)
        t1 = clock()
        p.row[:] = X[i]
        out = p.predict()
        t2 = clock()
        if k >= 0:
            t_booster.append(t1 - t0)
            t_fast.append(t2 - t1)
            max_diff = max(max_diff, float(np.max(np.abs(out - ref.ravel()))))
        if k % sk_every == 0:
            frame = frames[(k // sk_every) % len(frames)]
            t3 = clock()
            clf.predict_proba(frame)
            t4 = clock()
            if k >= 0:
                t_sk.append(t4 - t3)

    # batch throughput, same rows
    t0 = time.perf_counter()
    ref_batch = booster.predict(X, num_threads=1)
    t_batch_lgb = time.perf_counter() - t0
    t0 = time.perf_counter()
    got_batch = fb.predict_many(X)
    t_batch_fast = time.perf_counter() - t0
    batch_diff = float(np.max(np.abs(got_batch - ref_batch)))
    fb.close()

    fast = percentiles(t_fast)
    rows = []
    for label, ts in (
        ("LGBMClassifier.predict_proba(1-row DataFrame)", t_sk),
        ("Booster.predict(1-row array)", t_booster),
        ("FastBooster predictor", t_fast),
    ):
        q = percentiles(ts)
        rows.append((name, label, len(ts), *q, q[0] / fast[0], q[2] / fast[2]))
    print(
        f"  {name}: max |fast - Booster.predict| over {calls} rows = {max_diff:.3g}; "
        f"batch of {n_pool} rows: Booster.predict {t_batch_lgb * 1e3:.1f} ms, "
        f"predict_many {t_batch_fast * 1e3:.1f} ms (max diff {batch_diff:.3g})"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per fast path")
    parser.add_argument("--sk-calls", type=int, default=2_000, help="timed sklearn calls")
    parser.add_argument("--multiclass-rounds", type=int, default=150, help="rounds (x6 trees)")
    args = parser.parse_args()

    X, score = make_sessions(30_000, seed=0)
    train, pool = X.iloc[:10_000], X.iloc[10_000:].reset_index(drop=True)
    y_bin = (score[:10_000] > np.median(score)).astype(int)
    y_multi = np.digitize(score[:10_000], np.quantile(score, np.linspace(0, 1, 7)[1:-1]))
    common = {"n_jobs": 1, "verbose": -1, "num_leaves": 31, "random_state": 0}

    t0 = time.perf_counter()
    binary = lgb.LGBMClassifier(n_estimators=300, **common).fit(train, y_bin)
    multi = lgb.LGBMClassifier(n_estimators=args.multiclass_rounds, **common).fit(train, y_multi)
    print(
        f"trained in {time.perf_counter() - t0:.1f} s: binary {binary.booster_.num_trees()} trees, "
        f"6-class {multi.booster_.num_trees()} trees, {N_FEATURES} features; "
        f"{len(pool)} distinct held-out rows cycled"
    )

    rows = bench_model("binary", binary, pool, args.calls, args.sk_calls)
    rows += bench_model("6-class", multi, pool, args.calls, args.sk_calls)

    print()
    print(f"{'model':8} {'path':46} {'calls':>6} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} "
          f"{'p50 x':>6} {'p99 x':>6}")
    for name, label, n, p50, p90, p99, r50, r99 in rows:
        print(f"{name:8} {label:46} {n:6d} {p50:8.1f} {p90:8.1f} {p99:8.1f} {r50:6.1f} {r99:6.1f}")
    print("(p50 x / p99 x: that path's percentile divided by FastBooster's, same model)")


if __name__ == "__main__":
    main()
