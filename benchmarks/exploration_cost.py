"""What exploration costs a deployed learned policy, closed loop, and what it logs for the next retraining.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/exploration_cost.py \\
          [--train-sessions 20000] [--closed-loop-sessions 20000] [--offer-margin 0.25] \\
          [--explore NAME:exploration=softmax,temperature=0.1,explore_floor=0.02 ...]

Trains one learned policy (default ``TrainConfig()``, guard off, ``--offer-margin`` given to ``train``)
on ``--train-sessions`` logged sessions (seed 1), then deploys it closed loop in the same fresh
sessions (seed 2001: every variant meets the same visitors) greedy and with each exploration
variant (``PolicyConfig`` exploration settings). Per variant: value per session, the exploration's
cost = greedy − exploring, paired by visitor with a 95% interval, offers per session, the share of
offers to visitors who needed none, and what the logs give off-policy evaluation: the smallest
logged propensity, the largest and the 99th percentile of the importance weight 1/propensity, and
the share of decision points where a non-greedy action was logged. Appends rows to
``benchmarks/results/exploration_cost.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import warnings

import numpy as np

from nextchannel import ModelSet, PolicyConfig, Scorer, TrainConfig, simulate, train

from closed_loop_common import Z95, append_rows, closed_loop_row, world_config

DEFAULT_EXPLORE = ("epsilon_0.1:exploration=epsilon,epsilon=0.1", "epsilon_0.05:exploration=epsilon,epsilon=0.05",
                   "softmax_0.1_floor_0.02:exploration=softmax,temperature=0.1,explore_floor=0.02",
                   "softmax_0.2_floor_0.02:exploration=softmax,temperature=0.2,explore_floor=0.02",
                   "softmax_0.1_floor_0.05:exploration=softmax,temperature=0.1,explore_floor=0.05")


def _explore(spec: str, pol: PolicyConfig) -> tuple[str, PolicyConfig]:
    name, _, sets = spec.partition(":")
    kw = {}
    for item in (s for s in sets.split(",") if s):
        k, _, v = item.partition("=")
        kw[k] = v if k == "exploration" else float(v)
    return name, dataclasses.replace(pol, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-sessions", type=int, default=20_000)
    ap.add_argument("--closed-loop-sessions", type=int, default=20_000)
    ap.add_argument("--offer-margin", type=float, default=0.25)
    ap.add_argument("--world", default="default")
    ap.add_argument("--explore", action="append", default=[], help="name:key=value,... (PolicyConfig exploration)")
    ap.add_argument("--out", default="benchmarks/results/exploration_cost.jsonl")
    args = ap.parse_args()
    cfg = world_config(args.world)
    pol = dataclasses.replace(PolicyConfig.from_sim(cfg), offer_margin=args.offer_margin)
    tr = simulate(args.train_sessions, seed=1, config=cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms = train(decisions=tr.decisions, events=tr.events, customers=tr.customers, contacts=tr.contacts,
                   config=TrainConfig(guard=False), policy=pol)
    runs = {"greedy": Scorer(ms, n_reasons=0)}
    for spec in args.explore or DEFAULT_EXPLORE:
        name, p = _explore(spec, ms.policy)
        runs[name] = Scorer(ModelSet(ms.channel_model, ms.value_model, ms.offer_model, p, ms.profile_config,
                                     meta=ms.meta, evaluation=ms.evaluation, feature_spec=ms.feature_spec),
                              n_reasons=0, seed=7)
    never = simulate(args.closed_loop_sessions, seed=2001, config=cfg, policy="never").sessions["expected_reward"]
    per, rows = {}, []
    for name, scorer in runs.items():
        res = simulate(args.closed_loop_sessions, seed=2001, config=cfg, policy=scorer)
        per[name] = res.sessions["expected_reward"].to_numpy(dtype=float)
        row = {"variant": name, "world": args.world, "train_sessions": args.train_sessions,
               "closed_loop_sessions": args.closed_loop_sessions, "offer_margin": args.offer_margin,
               **closed_loop_row(res)}
        d = res.decisions
        prop = d["propensity"].to_numpy(dtype=float)
        row.update({"min_propensity": float(prop.min()), "max_weight": float(1 / prop.min()),
                    "weight_p99": float(np.percentile(1 / prop, 99)),
                    "explored_share": float((prop < 0.5).mean()),
                    "gain_vs_never": float(np.mean(per[name] - never.to_numpy(dtype=float)))})
        if name != "greedy":
            diff = per["greedy"] - per[name]
            se = float(np.std(diff, ddof=1) / math.sqrt(len(diff)))
            row.update({"cost": float(diff.mean()), "cost_low": float(diff.mean()) - Z95 * se,
                        "cost_high": float(diff.mean()) + Z95 * se})
        rows.append(row)
        print(f"{name:>24}: value {row['value']:.4f} (gain over never {row['gain_vs_never']:+.4f})  "
              f"cost {row.get('cost', 0.0):+.4f} [{row.get('cost_low', 0.0):+.4f}, {row.get('cost_high', 0.0):+.4f}]  "
              f"offers/session {row['offers_per_session']:.3f}  needless share {row['needless_offer_share']:.3f}  "
              f"min propensity {row['min_propensity']:.4f}  weight p99 {row['weight_p99']:.1f}  "
              f"explored share {row['explored_share']:.3f}", flush=True)
    append_rows(args.out, rows)


if __name__ == "__main__":
    main()
