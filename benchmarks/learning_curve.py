"""Learning curve: how much of the full-information learner's gain the learned policy reaches, by log size.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/learning_curve.py \\
          [--sizes 10000,20000,60000,120000] [--world default] [--set n_estimators=150 --set ...]

For each size n: simulate n logged sessions (seed 1, the world's exploring logging policy), train
with the public ``train`` (default ``TrainConfig`` plus any ``--set`` overrides) on the logged,
partial feedback only, and fit the full-information learner on the *same* sessions (same
features, every action's true value, deployed through the same Scorer). Then, on fresh seeds:

* one-step: both policies' exact value (``ev`` of the chosen action) at the decision points of
  ``--test-sessions`` sessions logged by the logging policy (seed 1001);
* closed loop: each policy deciding live in ``--closed-loop-sessions`` sessions (seed 2001),
  value = expected reward summed over each session (mean across sessions, 95% interval);

and normalised = (V − V(never)) / (V(full-information) − V(never)). Prints one row per size and
appends them to ``benchmarks/results/learning_curve.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nextchannel import PolicyConfig, TrainConfig, simulate, train
from nextchannel.features import features_many
from nextchannel.policy import eligibility_frame, greedy_many
from nextchannel.simulation import SimConfig
from nextchannel.training import context_frame

from closed_loop_common import closed_loop_table, deployable, full_information_model_set


def _override(tcfg: TrainConfig, items: list[str]) -> TrainConfig:
    kw = {}
    for it in items:
        k, v = it.split("=", 1)
        cur = getattr(tcfg, k)
        kw[k] = (v.lower() in ("1", "true", "yes")) if isinstance(cur, bool) else type(cur)(v)
    return dataclasses.replace(tcfg, **kw)


def one_step_value(scorer, te) -> float:
    d = te.decisions
    acts = pd.Index(scorer.actions).get_indexer(scorer.decide_many(d, events=te.events, customers=te.customers, contacts=te.contacts)["action"])
    ev = d[[f"ev_{a}" for a in scorer.actions]].to_numpy()
    return float(ev[np.arange(len(d)), acts].mean())


def one_step_channel_model(ms, te) -> float:
    """The greedy policy on the channel model's own EVs (before distillation into the value model)."""
    d = te.decisions
    X = features_many(d[["session_id", "ts", "customer_id"]], events=te.events, customers=te.customers, contacts=te.contacts, profile_config=ms.profile_config)[list(ms.feature_names)]
    C = context_frame(d, ms.policy.channels)
    a = greedy_many(ms.policy, ms.channel_expected_values(X, C), eligibility_frame(ms.policy, X, C))
    ev = d[[f"ev_{x}" for x in ms.actions]].to_numpy()
    return float(ev[np.arange(len(d)), a].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,20000,60000,120000")
    ap.add_argument("--world", default="default")
    ap.add_argument("--test-sessions", type=int, default=20_000)
    ap.add_argument("--closed-loop-sessions", type=int, default=30_000)
    ap.add_argument("--set", action="append", default=[], help="TrainConfig override, e.g. n_estimators=150")
    ap.add_argument("--label", default="", help="name of this configuration in the output")
    ap.add_argument("--out", default="benchmarks/results/learning_curve.jsonl")
    args = ap.parse_args()
    cfg = SimConfig() if args.world == "default" else SimConfig.shifted(args.world)
    pol = PolicyConfig.from_sim(cfg)
    tcfg = _override(TrainConfig(), args.set)
    label = args.label or (",".join(args.set) or "default")
    print(f"world {args.world}; train config [{label}] {tcfg.to_json()}")
    te = simulate(args.test_sessions, seed=1001, config=cfg)
    v_never_1 = float(te.decisions["ev_none"].mean())
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        t0 = time.perf_counter()
        tr = simulate(n, seed=1, config=cfg)
        ms = train(decisions=tr.decisions, events=tr.events, customers=tr.customers, contacts=tr.contacts,
                   config=tcfg, policy=pol)
        t_train = time.perf_counter() - t0
        fi = full_information_model_set(ms, tr, n_estimators=300, num_leaves=15, learning_rate=0.05,
                                         min_child_samples=40)
        learned, full = deployable(ms), deployable(fi)
        v1_l, v1_f = one_step_value(learned, te), one_step_value(full, te)
        v1_cm = one_step_channel_model(ms, te)
        if args.closed_loop_sessions:
            cl = closed_loop_table({"never offer": "never", "trigger rule": "rule", "learned": learned,
                                    "full-information": full}, cfg, args.closed_loop_sessions, (2001,))
        else:  # one-step figures only
            cl = pd.DataFrame(np.nan, index=["never offer", "trigger rule", "learned", "full-information"],
                              columns=["value", "norm_vs_full_info", "norm_ci_low", "norm_ci_high",
                                       "needless_offer_share"])
        row = {"label": label, "world": args.world, "train_sessions": n, "train_rows": int(ms.meta["rows"]),
               "train_s": round(t_train, 1),
               "one_step_learned": v1_l, "one_step_full_info": v1_f, "one_step_never": v_never_1,
               "one_step_norm": (v1_l - v_never_1) / (v1_f - v_never_1),
               "one_step_channel_model_norm": (v1_cm - v_never_1) / (v1_f - v_never_1),
               "closed_learned": cl.loc["learned", "value"], "closed_full_info": cl.loc["full-information", "value"],
               "closed_never": cl.loc["never offer", "value"],
               "closed_norm": cl.loc["learned", "norm_vs_full_info"],
               "closed_norm_low": cl.loc["learned", "norm_ci_low"], "closed_norm_high": cl.loc["learned", "norm_ci_high"],
               "needless_share_learned": cl.loc["learned", "needless_offer_share"],
               "closed_rule": cl.loc["trigger rule", "value"],
               "needless_share_rule": cl.loc["trigger rule", "needless_offer_share"],
               "offers_per_session_learned": cl.loc["learned", "offers_per_session"] if "offers_per_session" in cl else
               float("nan"),
               "train_config": tcfg.to_dict()}
        rows.append(row)
        print(f"n={n:>7,d}  trained {t_train:6.0f} s  one-step learned/full-info {row['one_step_norm']:.3f}  "
              f"(channel model's own EVs {row['one_step_channel_model_norm']:.3f})  closed-loop {row['closed_norm']:.3f} [{row['closed_norm_low']:.3f}, {row['closed_norm_high']:.3f}]  "
              f"(values: learned {v1_l:.4f} / {row['closed_learned']:.4f}, full-info {v1_f:.4f} / "
              f"{row['closed_full_info']:.4f}, never {v_never_1:.4f} / {row['closed_never']:.4f}; "
              f"needless offer share {row['needless_share_learned']:.3f}, the rule's {row['needless_share_rule']:.3f}; "
              f"rule closed-loop {row['closed_rule']:.4f})", flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(json.dumps(row, default=float) + "\n")


if __name__ == "__main__":
    main()
