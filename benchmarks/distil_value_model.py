"""The distillation lever: the same channel model distilled into value models of other sizes.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/distil_value_model.py \\
          [--train-sessions 120000] [--value-models 60x15,60x63,200x31] [--world default]

Trains ``TrainConfig(guard=False)`` with ``PolicyConfig(offer_margin=0.25)`` once on
``--train-sessions`` logged sessions (seed 1), then re-distils its channel model into each value
model ``TREESxLEAVES`` exactly as ``train`` does (every row once with its own channel context and
once with another row's, same seed; learning rate ``TrainConfig().value_learning_rate``). The first
size must be the default (60x15): the script checks that its re-distilled value model predicts what
``train``'s does (so the others differ from the default only by the value model's size). Only the
value model changes: the scorer's actions come from its expected values (the offer model gives the
offer score and reasons, not the action).

For each size, on fresh seeds: the distillation error (RMSE of the value model against the channel
model's own expected values at the decision points of ``--test-sessions`` sessions, seed 1001 — no
true values needed, so a site could choose the size by it), the one-step value (the true ``ev`` of
the chosen action there), the closed-loop value (every policy deciding live in the same
``--closed-loop-sessions`` sessions, seed 2001), both normalised against the full-information
learner fitted on the same sessions, the closed-loop paired difference to the default size, and
the cost: stacked trees the scorer evaluates per decision, and the wall time of the closed-loop run
(sessions per second with that bundle deciding live, on the shared machine). Appends one row per
size to ``benchmarks/results/distil_value_model.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
import warnings

import numpy as np
import pandas as pd

from nextchannel import ModelSet, PolicyConfig, TrainConfig, simulate, train
from nextchannel.features import features_many
from nextchannel.models import ValueModel
from nextchannel.training import _design, context_frame

from closed_loop_common import Z95, append_rows, closed_loop_table, deployable, full_information_model_set, world_config
from learning_curve import one_step_channel_model, one_step_value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-sessions", type=int, default=120_000)
    ap.add_argument("--test-sessions", type=int, default=20_000)
    ap.add_argument("--closed-loop-sessions", type=int, default=30_000)
    ap.add_argument("--world", default="default")
    ap.add_argument("--offer-margin", type=float, default=0.25)
    ap.add_argument("--value-models", default="60x15,60x63,200x31", help="TREESxLEAVES,...; the first is the default")
    ap.add_argument("--out", default="benchmarks/results/distil_value_model.jsonl")
    args = ap.parse_args()
    cfg = world_config(args.world)
    pol = PolicyConfig.from_sim(cfg)
    tcfg = TrainConfig(guard=False)
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.value_models.split(",")]
    if sizes[0] != (tcfg.value_n_estimators, tcfg.value_num_leaves):
        raise SystemExit(f"--value-models must start with the default {tcfg.value_n_estimators}x{tcfg.value_num_leaves}, "
                         f"got {args.value_models!r}")
    tr = simulate(args.train_sessions, seed=1, config=cfg)
    te = simulate(args.test_sessions, seed=1001, config=cfg)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms = train(decisions=tr.decisions, events=tr.events, customers=tr.customers, contacts=tr.contacts,
                   config=tcfg, policy=dataclasses.replace(pol, offer_margin=args.offer_margin))
    print(f"trained on {args.train_sessions:,} sessions in {time.perf_counter() - t0:.0f} s", flush=True)
    # the distillation set, as train() builds it
    X, _, cats = _design(tr.decisions, tr.events, None, tr.customers, tr.contacts, ms.profile_config)
    ctx = context_frame(tr.decisions, ms.policy.channels)
    rng = np.random.default_rng(tcfg.random_state)
    X2 = pd.concat([X, X], ignore_index=True)
    C2 = pd.concat([ctx, ctx.iloc[rng.permutation(len(ctx))].set_axis(ctx.index)], ignore_index=True)
    ev_teacher = ms.channel_expected_values(X2, C2)
    d = te.decisions
    Xt = features_many(d[["session_id", "ts", "customer_id"]], events=te.events, customers=te.customers,
                       contacts=te.contacts, profile_config=ms.profile_config)[list(ms.feature_names)]
    Ct = context_frame(d, ms.policy.channels)
    ev_cm_test = ms.channel_expected_values(Xt, Ct)
    scorers, facts = {}, {}
    for trees, leaves in sizes:
        name = f"value {trees}x{leaves}"
        t0 = time.perf_counter()
        vm = ValueModel(n_estimators=trees, num_leaves=leaves, learning_rate=tcfg.value_learning_rate,
                        min_child_samples=tcfg.min_child_samples, categorical_features=cats,
                        random_state=tcfg.random_state, n_jobs=tcfg.n_jobs).fit(X2, C2, ev_teacher, actions=ms.actions)
        fit_s = time.perf_counter() - t0
        if (trees, leaves) == sizes[0]:
            diff = float(np.abs(vm.predict(X, ctx) - ms.value_model.predict(X, ctx)).max())
            print(f"re-distilled default value model: max |difference| to train()'s {diff:.2e}", flush=True)
            if diff > 1e-9:
                raise SystemExit("the re-distilled default value model differs from train()'s: not the same procedure")
        v = ModelSet(ms.channel_model, vm, ms.offer_model, ms.policy, ms.profile_config, meta=ms.meta,
                     evaluation=ms.evaluation, feature_spec=ms.feature_spec, constant_action=ms.constant_action)
        scorers[name] = deployable(v)
        rmse = float(np.sqrt(np.mean((vm.predict(Xt, Ct) - ev_cm_test) ** 2)))
        facts[name] = {"value_n_estimators": trees, "value_num_leaves": leaves, "fit_s": round(fit_s, 1),
                       "distil_rmse_test": rmse, "trees_total": int(sum(b.num_trees() for b in vm.boosters_)),
                       "trees_stacked": int(scorers[name]._c.stack.num_iterations * scorers[name]._c.stack.num_models)}
        print(f"{name}: fitted in {fit_s:.0f} s, distillation RMSE on fresh decision points {rmse:.4f}", flush=True)
    full = deployable(full_information_model_set(ms, tr, policy=pol))
    v1 = {name: one_step_value(s, te) for name, s in {**scorers, "full-information": full}.items()}
    v_never = float(d["ev_none"].mean())
    v_cm = one_step_channel_model(ms, te)
    cl, per = closed_loop_table({"never offer": "never", "trigger rule": "rule", **scorers, "full-information": full},
                                cfg, args.closed_loop_sessions, (2001,), per_session=True)
    base = next(iter(scorers))
    print(f"{args.train_sessions:,} logged sessions ({args.world}); one-step: channel model's own EVs "
          f"{(v_cm - v_never) / (v1['full-information'] - v_never):.3f}; closed loop on {args.closed_loop_sessions:,} "
          f"sessions: never {cl.loc['never offer', 'value']:.4f}, full-information {cl.loc['full-information', 'value']:.4f}")
    for name in scorers:
        dd = per[name] - per[base]
        se = float(np.std(dd, ddof=1) / math.sqrt(len(dd)))
        row = {"variant": name, "world": args.world, "train_sessions": args.train_sessions,
               "closed_loop_sessions": args.closed_loop_sessions, "offer_margin": args.offer_margin, **facts[name],
               "one_step_norm": (v1[name] - v_never) / (v1["full-information"] - v_never),
               "one_step_channel_model_norm": (v_cm - v_never) / (v1["full-information"] - v_never),
               "closed_value": float(cl.loc[name, "value"]), "closed_norm": float(cl.loc[name, "norm_vs_full_info"]),
               "closed_norm_low": float(cl.loc[name, "norm_ci_low"]), "closed_norm_high": float(cl.loc[name, "norm_ci_high"]),
               "closed_minus_default": float(dd.mean()), "closed_minus_default_low": float(dd.mean()) - Z95 * se,
               "closed_minus_default_high": float(dd.mean()) + Z95 * se,
               "offers_per_session": float(cl.loc[name, "offers_per_session"]),
               "needless_share": float(cl.loc[name, "needless_offer_share"]),
               "closed_loop_sessions_per_s": args.closed_loop_sessions / float(cl.loc[name, "seconds"]),
               "closed_never": float(cl.loc["never offer", "value"]),
               "closed_full_info": float(cl.loc["full-information", "value"])}
        print(f"{name:>16}: stacked trees {row['trees_stacked']:>5}  distil RMSE {row['distil_rmse_test']:.4f}  "
              f"one-step {row['one_step_norm']:.3f}  closed-loop {row['closed_norm']:.3f} [{row['closed_norm_low']:.3f}, "
              f"{row['closed_norm_high']:.3f}]  value {row['closed_value']:.4f} (vs default {row['closed_minus_default']:+.4f} "
              f"[{row['closed_minus_default_low']:+.4f}, {row['closed_minus_default_high']:+.4f}])  offers/session "
              f"{row['offers_per_session']:.3f}  needless {row['needless_share']:.3f}  closed loop "
              f"{row['closed_loop_sessions_per_s']:,.0f} sessions/s", flush=True)
        append_rows(args.out, [row])



if __name__ == "__main__":
    main()
