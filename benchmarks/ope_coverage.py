"""Coverage of the off-policy estimators' 95% intervals on a bandit with known true values.

Run: ``.venv/bin/python benchmarks/ope_coverage.py [--seeds 20] [--n 20000] [--source module:function]``.

For each seed the *source* returns logged data and the true value of each target policy; the
script estimates every policy with DR and SNIPS (bootstrap and normal intervals, plus IPS and DM
for reference) and prints, per estimator and interval method, the share of intervals holding the
true value, the mean bias and the mean interval width. Figures only, no assertions.

Swapping the data source
------------------------
A source is any function ``source(seed: int, n: int) -> dict`` returning

- ``reward`` (n,), ``action`` (n,) int, ``propensity`` (n,): the log;
- ``reward_hat`` (n, n_actions): a reward model's predictions (used by DM and DR);
- ``targets``: ``{policy name: (n, n_actions) action probabilities}``;
- ``true_values``: ``{policy name: float}``, the value each interval should cover.

Pass it as ``--source package.module:function``. For the nextchannel simulator, ``true_values``
can be :func:`nextchannel.evaluate.policy_value_true` of each target against the oracle's
expected rewards (the in-sample value; the population value is also fine).
The built-in :func:`synthetic_bandit` draws contexts from a finite set with known
probabilities, so its true values are exact population values.
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from nextchannel.evaluate import dm, dr, ips, snips

Source = Callable[[int, int], dict[str, Any]]


def synthetic_bandit(seed: int, n: int = 20_000, n_contexts: int = 500, n_actions: int = 7) -> dict[str, Any]:
    """A contextual bandit with exact policy values (one world per call, one log per seed).

    The world (context frequencies, true reward probabilities, logging and target policies,
    reward model) is fixed; ``seed`` draws the log only. Rewards are Bernoulli(q(x, a)) with
    q from a logistic model of context and action features. The logging policy is uniform-ish
    (softmax of small random logits: propensities about 0.08–0.25 for 7 actions). The reward
    model is deliberately imperfect: a biased, noisy, miscalibrated version of q.
    """
    world = np.random.default_rng(12345)
    p_context = world.dirichlet(np.full(n_contexts, 2.0))
    xf = world.normal(size=(n_contexts, 4))
    af = world.normal(size=(n_actions, 4))
    q = 1 / (1 + np.exp(-(xf @ af.T * 0.6 - 1.5 + world.normal(0, 0.3, size=(n_contexts, n_actions)))))
    logits = world.normal(0, 0.3, size=(n_contexts, n_actions))
    logging = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    best = np.eye(n_actions)[q.argmax(axis=1)]
    noisy_q = q + world.normal(0, 0.1, size=q.shape)
    soft = np.exp(noisy_q / 0.05)
    policies = {
        "eps_greedy_0.1": 0.9 * best + 0.1 / n_actions,            # good, far from logging
        "softmax_noisy": soft / soft.sum(axis=1, keepdims=True),  # near-deterministic, imperfect
        "first3_uniform": np.tile(np.r_[np.ones(3) / 3, np.zeros(n_actions - 3)], (n_contexts, 1)),
    }
    q_hat = np.clip(0.8 * q + 0.05 + world.normal(0, 0.08, size=q.shape), 0.0, 1.0)
    true_values = {k: float(p_context @ (pi * q).sum(axis=1)) for k, pi in policies.items()}

    rng = np.random.default_rng(seed)
    x = rng.choice(n_contexts, size=n, p=p_context)
    cum = np.cumsum(logging[x], axis=1)
    action = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), n_actions - 1)
    reward = (rng.random(n) < q[x, action]).astype(np.float64)
    return {"reward": reward, "action": action, "propensity": logging[x, action], "reward_hat": q_hat[x],
            "targets": {k: pi[x] for k, pi in policies.items()}, "true_values": true_values}


def load_source(spec: str) -> Source:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def run(source: Source, seeds: range, n: int, n_bootstrap: int = 1000, ci: float = 0.95) -> pd.DataFrame:
    """One row per (seed, policy, estimator, method): estimate, interval and whether it covers."""
    rows = []
    for seed in seeds:
        d = source(seed, n)
        r, a, p, h = d["reward"], d["action"], d["propensity"], d["reward_hat"]
        for policy, target in d["targets"].items():
            truth = d["true_values"][policy]
            for method in ("bootstrap", "normal"):
                kw = dict(ci=ci, ci_method=method, n_bootstrap=n_bootstrap, random_state=seed)
                for name, est in (("dr", dr(r, a, p, target, h, **kw)), ("snips", snips(r, a, p, target, **kw)),
                                  ("ips", ips(r, a, p, target, **kw)), ("dm", dm(r, a, p, target, h, **kw))):
                    rows.append({"seed": seed, "policy": policy, "estimator": name, "method": method,
                                 "truth": truth, "value": est.value, "low": est.low, "high": est.high,
                                 "covered": est.low <= truth <= est.high})
    return pd.DataFrame(rows)


def summarise(res: pd.DataFrame) -> pd.DataFrame:
    res = res.assign(error=res["value"] - res["truth"], width=res["high"] - res["low"])
    return (res.groupby(["estimator", "method"], sort=False)
            .agg(coverage=("covered", "mean"), n_intervals=("covered", "size"), mean_bias=("error", "mean"),
                 rmse=("error", lambda e: float(np.sqrt(np.mean(e ** 2)))), mean_width=("width", "mean")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    ap.add_argument("--source", default=None, help="module:function returning the dict described above")
    args = ap.parse_args()
    source = load_source(args.source) if args.source else synthetic_bandit
    t0 = time.perf_counter()
    res = run(source, range(args.seeds), args.n, args.n_bootstrap)
    elapsed = time.perf_counter() - t0
    truths = res.groupby("policy", sort=False)["truth"].first()
    print(f"source={getattr(source, '__name__', source)}  seeds={args.seeds}  n={args.n:,}  "
          f"n_bootstrap={args.n_bootstrap}  ({elapsed:.1f} s)")
    print("true values: " + ", ".join(f"{k}={v:.4f}" for k, v in truths.items()))
    with pd.option_context("display.float_format", lambda v: f"{v:.4f}", "display.width", 120):
        print(summarise(res).to_string())
        print("\ncoverage by policy (bootstrap):")
        by_policy = res[res["method"] == "bootstrap"].pivot_table(
            index="policy", columns="estimator", values="covered", aggfunc="mean", sort=False)
        print(by_policy.to_string())


if __name__ == "__main__":
    main()
