"""Learner variants on the same logs, one-step and closed loop, paired against each other.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/compare_targets.py \\
          [--train-sessions 20000] [--closed-loop-sessions 60000] \\
          [--variant NAME:key=value,key=value ...]   (TrainConfig fields, or offer_margin)

Simulates ``--train-sessions`` logged sessions (seed 1, the world's exploring logging policy) once,
trains every variant (``TrainConfig`` overrides; the guard off, so that the policies themselves are
compared) on them and fits the full-information learner on the same sessions. Then, on fresh
seeds, each policy's one-step value (20,000 sessions logged by the logging policy, seed 1001) and
closed-loop value (each deciding live in the same ``--closed-loop-sessions`` sessions, seed 2001:
every policy meets the same visitors), normalised (V − V(never)) / (V(full-information) − V(never))
with a paired 95% interval, and each variant's paired difference to the first one. Appends one
row per variant to ``benchmarks/results/compare_targets.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
import warnings

import numpy as np

from nextchannel import ModelSet, PolicyConfig, TrainConfig, simulate, train

from closed_loop_common import (Z95, append_rows, closed_loop_table, deployable, full_information_model_set, parse_variant,
                                 world_config)
from learning_curve import one_step_value

DEFAULT_VARIANTS = ("one_step:target=one_step", "session_greedy:target=session",
                    "session_none:target=session,continuation=none")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-sessions", type=int, default=20_000)
    ap.add_argument("--test-sessions", type=int, default=20_000)
    ap.add_argument("--closed-loop-sessions", type=int, default=60_000)
    ap.add_argument("--closed-loop-seed", type=int, default=2001, help="seed of the closed-loop sessions")
    ap.add_argument("--world", default="default")
    ap.add_argument("--variant", action="append", default=[], help="name:key=value,key=value (TrainConfig overrides)")
    ap.add_argument("--margins", default="", help="also deploy each variant with these offer margins, e.g. 0.1,0.3")
    ap.add_argument("--out", default="benchmarks/results/compare_targets.jsonl")
    args = ap.parse_args()
    cfg = world_config(args.world)
    pol = PolicyConfig.from_sim(cfg)
    variants, policies = {}, {}
    for v in args.variant or DEFAULT_VARIANTS:
        name, variants[name], policies[name] = parse_variant(v, TrainConfig(guard=False), pol)
    tr = simulate(args.train_sessions, seed=1, config=cfg)
    te = simulate(args.test_sessions, seed=1001, config=cfg)
    v_never_1 = float(te.decisions["ev_none"].mean())
    scorers, train_s = {}, {}
    variants_all = dict(variants)
    for name, tcfg in variants.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ms = train(decisions=tr.decisions, events=tr.events, customers=tr.customers, contacts=tr.contacts,
                       config=tcfg, policy=policies[name])
        train_s[name] = time.perf_counter() - t0
        scorers[name] = deployable(ms)
        print(f"trained {name} in {train_s[name]:.0f} s", flush=True)
        for m in [float(x) for x in args.margins.split(",") if x]:
            pm = dataclasses.replace(ms.policy, offer_margin=m)
            scorers[f"{name}@margin{m:g}"] = deployable(ModelSet(
                ms.channel_model, ms.value_model, ms.offer_model, pm, ms.profile_config, meta=ms.meta,
                evaluation=ms.evaluation, feature_spec=ms.feature_spec, constant_action=ms.constant_action))
            train_s[f"{name}@margin{m:g}"] = train_s[name]
            variants_all[f"{name}@margin{m:g}"] = tcfg
    full = deployable(full_information_model_set(ms, tr, policy=pol))
    v1 = {name: one_step_value(s, te) for name, s in {**scorers, "full-information": full}.items()}
    cl, per = closed_loop_table({"never offer": "never", "trigger rule": "rule", **scorers, "full-information": full},
                                cfg, args.closed_loop_sessions, (args.closed_loop_seed,), per_session=True)
    base = next(iter(variants))
    print(f"{args.train_sessions:,} logged sessions; closed loop on {args.closed_loop_sessions:,} sessions (seed {args.closed_loop_seed}); "
          f"never {cl.loc['never offer', 'value']:.4f}, full-information {cl.loc['full-information', 'value']:.4f}, "
          f"rule {cl.loc['trigger rule', 'value']:.4f} (needless share {cl.loc['trigger rule', 'needless_offer_share']:.3f})")
    for name in scorers:
        d = per[name] - per[base]
        se = float(np.std(d, ddof=1) / math.sqrt(len(d)))
        row = {"variant": name, "world": args.world, "train_sessions": args.train_sessions,
               "closed_loop_sessions": args.closed_loop_sessions, "closed_loop_seed": args.closed_loop_seed, "train_s": round(train_s[name], 1),
               "one_step_norm": (v1[name] - v_never_1) / (v1["full-information"] - v_never_1),
               "closed_value": cl.loc[name, "value"], "closed_norm": cl.loc[name, "norm_vs_full_info"],
               "closed_norm_low": cl.loc[name, "norm_ci_low"], "closed_norm_high": cl.loc[name, "norm_ci_high"],
               "closed_minus_first": float(d.mean()), "closed_minus_first_low": float(d.mean()) - Z95 * se,
               "closed_minus_first_high": float(d.mean()) + Z95 * se,
               "offers_per_session": cl.loc[name, "offers_per_session"],
               "needless_share": cl.loc[name, "needless_offer_share"],
               "needless_share_rule": cl.loc["trigger rule", "needless_offer_share"],
               "closed_never": cl.loc["never offer", "value"], "closed_full_info": cl.loc["full-information", "value"],
               "closed_rule": cl.loc["trigger rule", "value"], "train_config": variants_all[name].to_dict(),
               "offer_margin": scorers[name].model_set.policy.offer_margin if hasattr(scorers[name], "model_set")
               else None}
        print(f"{name:>16}: one-step {row['one_step_norm']:.3f}  closed-loop {row['closed_norm']:.3f} "
              f"[{row['closed_norm_low']:.3f}, {row['closed_norm_high']:.3f}]  value {row['closed_value']:.4f} "
              f"(vs {base}: {row['closed_minus_first']:+.4f} [{row['closed_minus_first_low']:+.4f}, "
              f"{row['closed_minus_first_high']:+.4f}])  offers/session {row['offers_per_session']:.3f}  "
              f"needless share {row['needless_share']:.3f}  trained {row['train_s']:.0f} s", flush=True)
        append_rows(args.out, [row])


if __name__ == "__main__":
    main()
