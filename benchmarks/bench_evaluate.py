"""Benchmark of the off-policy estimators on 1M logged decisions with 7 actions.

Run: ``.venv/bin/python benchmarks/bench_evaluate.py [--n 1000000] [--n-actions 7] [--n-bootstrap 1000]``.
Prints figures only (no timing assertions): point estimates (validation included) for IPS, SNIPS
and DR; the normal-approximation interval; a bootstrap of DR alone; and the DataFrame entry point
with IPS/SNIPS/DR sharing one set of resamples. Single-threaded BLAS is advised for a fair
one-core figure: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from nextchannel.evaluate import dr, estimate_policy_value, ips, snips


def make_logs(n: int, n_actions: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    logging = rng.dirichlet(np.full(n_actions, 5.0), size=n)
    u = rng.random(n)
    action = np.minimum((u[:, None] > np.cumsum(logging, axis=1)).sum(axis=1), n_actions - 1)
    propensity = logging[np.arange(n), action]
    target = rng.dirichlet(np.ones(n_actions), size=n)
    reward_hat = rng.random((n, n_actions)) * 0.3
    reward = (rng.random(n) < reward_hat[np.arange(n), action] + 0.05).astype(np.float64)
    return {"reward": reward, "action": action, "propensity": propensity, "target": target,
            "reward_hat": reward_hat}


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--n-actions", type=int, default=7)
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    d = make_logs(args.n, args.n_actions, args.seed)
    r, a, p, t, h = d["reward"], d["action"], d["propensity"], d["target"], d["reward_hat"]
    print(f"n = {args.n:,} logged decisions, {args.n_actions} actions (best of 3; validation included)")

    point = {
        "ips": lambda: ips(r, a, p, t),
        "snips": lambda: snips(r, a, p, t),
        "dr": lambda: dr(r, a, p, t, h),
    }
    total = 0.0
    for name, fn in point.items():
        s = best_of(fn, 3)
        total += s
        print(f"  {name:6s} point estimate          {s * 1000:8.1f} ms   value={fn().value:.5f}")
    print(f"  IPS+SNIPS+DR point estimates total {total * 1000:6.1f} ms")

    s = best_of(lambda: dr(r, a, p, t, h, ci=0.95, ci_method="normal"), 3)
    e = dr(r, a, p, t, h, ci=0.95, ci_method="normal")
    print(f"  dr     normal 95% CI              {s * 1000:8.1f} ms   [{e.low:.5f}, {e.high:.5f}]")

    t0 = time.perf_counter()
    e = dr(r, a, p, t, h, ci=0.95, n_bootstrap=args.n_bootstrap, random_state=0)
    s = time.perf_counter() - t0
    print(f"  dr     bootstrap ({args.n_bootstrap} resamples)  {s:8.2f} s    [{e.low:.5f}, {e.high:.5f}]  "
          f"({s / args.n_bootstrap / args.n * 1e9:.1f} ns per round per resample)")

    names = np.array([f"a{i}" for i in range(args.n_actions)])
    logs = pd.DataFrame({"action": names[a], "propensity": p, "reward": r})
    t0 = time.perf_counter()
    frame = estimate_policy_value(logs, target=t, actions=list(names), reward_hat=h, estimators=("ips", "snips", "dr"), n_bootstrap=args.n_bootstrap, random_state=0)
    s = time.perf_counter() - t0
    print(f"  estimate_policy_value(ips, snips, dr), shared bootstrap of {args.n_bootstrap}: {s:.2f} s")
    print(frame.to_string(float_format=lambda v: f"{v:.5f}"))


if __name__ == "__main__":
    main()
