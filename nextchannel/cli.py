"""The ``nextchannel`` command: the main job (``demo``) and the batch jobs on files.

Where it sits: on top of everything; nothing in the library imports it. Output here is for a
person at a terminal, so this module prints; the library itself only logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from nextchannel.features import features_many
    from nextchannel.policy import PolicyConfig
    from nextchannel.scorer import Scorer
    from nextchannel.simulate import SimConfig, simulate, summary
    from nextchannel.train import TrainConfig, train

    cfg = SimConfig.shifted(args.world) if args.world != "default" else SimConfig()
    res = simulate(args.sessions, seed=args.seed, config=cfg)
    s = summary(res)
    print(f"nextchannel demo: a simulated world ({args.world}), {args.sessions:,} sessions, seed {args.seed}\n")
    print("1. The logged world (an exploring logging policy decided; the simulator knows every action's true value)")
    for k in ("sessions", "events", "decision_points", "problem_session_rate", "needs_help_rate", "offer_rate",
              "accept_rate"):
        v = s[k]
        print(f"  {k:<24} {v:,.3f}" if isinstance(v, float) else f"  {k:<24} {v:,}")
    feats = features_many(res.events, res.decisions[["session_id", "ts", "customer_id"]],
                          customers=res.customers, contacts=res.contacts)
    print(f"\n2. Point-in-time features at {len(feats):,} decision points ({feats.shape[1]} features), "
          "by whether the visitor needed help")
    cols = ["dwell_current_s", "idle_current_page_s", "back_navigations", "form_errors", "help_views",
            "searches_no_result", "funnel_stage", "prof_n_contacts"]
    need = res.decisions["needs_help"].to_numpy(dtype=bool)
    table = pd.DataFrame({"no need (mean)": feats.loc[~need, cols].mean(), "needs help (mean)": feats.loc[need, cols].mean()})
    print(table.round(2).to_string())

    policy = PolicyConfig.from_sim(cfg)
    tcfg = TrainConfig(n_estimators=args.trees, num_leaves=15)
    print(f"\n3. Training on the logged decisions only ({len(res.decisions):,} rows, {args.trees} trees per head) ...")
    ms = train(res.events, res.decisions, res.customers, res.contacts, tcfg, policy=policy)
    scorer = Scorer(ms)
    test = simulate(args.test_sessions, seed=args.seed + 1000, config=cfg)
    d = test.decisions
    out = scorer.decide_many(d, test.events, test.customers, test.contacts)
    actions = ms.actions
    ev_true = d[[f"ev_{a}" for a in actions]].to_numpy()
    open_ = np.column_stack([np.ones(len(d), bool)] + [d[f"open_{c}"].to_numpy(dtype=bool) for c in cfg.channels.names])
    oracle = np.where(open_, ev_true, -np.inf).argmax(axis=1)
    learned = pd.Index(actions).get_indexer(out["action"])
    print(f"\n4. Decisions on fresh sessions (seed {args.seed + 1000}) next to what the oracle would have done")
    offered = np.flatnonzero(learned > 0)[:4].tolist()
    quiet = np.flatnonzero(learned == 0)[:2].tolist()
    for i in offered + quiet:
        row = out.iloc[i]
        print(f"  - {d['session_id'].iat[i]} at +{d['ts'].iat[i] - test.events['ts'].min():,.0f} s: "
              f"{row['action']:<13} (gain {row[f'ev_{row.action}'] - row['ev_none']:+.2f}) | oracle: "
              f"{actions[oracle[i]]:<13} | needed help: {bool(d['needs_help'].iat[i])}")
        if row["reasons"]:
            print(f"      reasons: {row['reasons']}")
        if row["why_not"]:
            print(f"      why not: {row['why_not']}")
    idx = np.arange(len(d))
    v = {"never offer": ev_true[:, 0].mean(), "logging policy": ev_true[idx, pd.Index(actions).get_indexer(d["action"])].mean(),
         "learned": ev_true[idx, learned].mean(), "oracle": ev_true[idx, oracle].mean()}
    print(f"\n5. Headline (exact values from the oracle columns, per decision point, {len(d):,} decision points)")
    for k, x in v.items():
        norm = (x - v["never offer"]) / (v["oracle"] - v["never offer"])
        print(f"  {k:<16} {x:7.3f}   normalised vs oracle {norm:6.3f}")
    no_need = ~d["needs_help"].to_numpy(dtype=bool)
    print(f"  learned policy offers at {np.mean(learned > 0):.1%} of decision points; "
          f"{np.mean((learned > 0) & no_need):.1%} are offers to visitors who needed none")
    print("  (the full evaluation, with the full-information learner and shifted worlds: "
          "benchmarks/eval_policy.py; figures in the README)")
    return 0


def _read_table(path: str | None) -> pd.DataFrame | None:
    if path is None:
        return None
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _train(args: argparse.Namespace) -> int:
    from nextchannel.policy import PolicyConfig
    from nextchannel.simulate import SimConfig, simulate
    from nextchannel.train import TrainConfig, train

    tcfg = TrainConfig.from_json(open(args.config).read()) if args.config else TrainConfig(
        n_estimators=args.n_estimators, num_leaves=args.num_leaves, random_state=args.seed)
    if args.simulate:
        sim_cfg = SimConfig.shifted(args.world) if args.world != "default" else SimConfig()
        print(f"simulating {args.simulate:,} sessions of the {args.world} world (seed {args.seed})")
        sim = simulate(args.simulate, seed=args.seed, config=sim_cfg)
        events, decisions, customers, contacts = sim.events, sim.decisions, sim.customers, sim.contacts
        policy = PolicyConfig.from_sim(sim_cfg)
    else:
        if not (args.events and args.decisions):
            print("train: give --simulate N, or --events and --decisions files", file=sys.stderr)
            return 2
        events, decisions = _read_table(args.events), _read_table(args.decisions)
        customers, contacts = _read_table(args.customers), _read_table(args.contacts)
        policy = PolicyConfig.from_json(open(args.policy).read()) if args.policy else PolicyConfig()
    ms = train(events, decisions, customers, contacts, tcfg, policy=policy, progress=True)
    path = ms.save(args.out, overwrite=args.overwrite)
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"trained on {ms.meta['rows']:,} decisions ({ms.meta['sessions']:,} sessions); offer margin "
          f"{ms.policy.offer_margin:g}; model {ms.version}; bundle {path} ({size / 1e6:.2f} MB)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Run exactly what ``Scorer.load`` runs on the bundle; print its figures, or why it is refused."""
    from nextchannel.bundle import current_version, is_publish_root, verify_bundle
    from nextchannel.scorer import Scorer

    try:
        scorer = Scorer.load(args.path, require_signature=args.require_signature)
    except Exception as err:  # noqa: BLE001 - any refusal of Scorer.load is a refusal here
        print(f"refused: {err}")
        try:  # the file-level problems, all of them (load stops at the first)
            more = [p for p in verify_bundle(args.path) if p not in str(err)]
        except Exception:  # noqa: BLE001 - e.g. a bad argument; the refusal above says enough
            more = []
        for p in more:
            print(f"  also: {p}")
        print(f"{1 + len(more)} problem(s)")
        return 1
    ms = scorer.model_set
    where = args.path
    if is_publish_root(args.path):
        where = f"{args.path} (current version {current_version(args.path)})"
    print("ok")
    print(f"  bundle {where}")
    print(f"  model version {ms.version}; {len(ms.feature_names)} features; actions {', '.join(ms.actions)}")
    signed = "signature checked" if args.require_signature else "signature not checked (--require-signature)"
    print(f"  {signed}")
    if not ms.evaluation:
        print("  evaluation: none recorded in the manifest")
    for key, value in _flatten(ms.evaluation):
        print(f"  evaluation {key}: {value:.4g}" if isinstance(value, float) else f"  evaluation {key}: {value}")
    return 0


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.extend(_flatten(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _report(args: argparse.Namespace) -> int:
    from nextchannel.report import report_from_files

    out = report_from_files(args.decisions, args.out, truth_csv=args.truth)
    print(f"report written to {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nextchannel`` command."""
    parser = argparse.ArgumentParser(prog="nextchannel", description="Proactive customer engagement: "
                                     "decide whether to offer help now, and on which channel.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="simulate a world, train on its logs, decide on fresh sessions, compare with the oracle")
    p.add_argument("--sessions", type=int, default=20000, help="simulated sessions to train on")
    p.add_argument("--test-sessions", type=int, default=5000)
    p.add_argument("--trees", type=int, default=150)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--world", default="default", help="default, phone_costly, long_queues, mobile_heavy, problem_heavy")
    p.set_defaults(func=_demo)
    p = sub.add_parser("train", help="train a model bundle from a simulation or from log files")
    p.add_argument("--simulate", type=int, help="simulate this many sessions and train on their logs")
    p.add_argument("--world", default="default")
    p.add_argument("--events"), p.add_argument("--decisions"), p.add_argument("--customers"), p.add_argument("--contacts")
    p.add_argument("--policy", help="PolicyConfig JSON file (business values); default PolicyConfig()")
    p.add_argument("--config", help="TrainConfig JSON file")
    p.add_argument("--n-estimators", type=int, default=300)
    p.add_argument("--num-leaves", type=int, default=15)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_train)
    p = sub.add_parser("verify", help="run every check Scorer.load runs on a bundle (or a publish root); exit 1 "
                                      "if it is refused")
    p.add_argument("path", help="bundle folder, or publish root (its current version)")
    p.add_argument("--require-signature", action="store_true",
                   help="refuse a bundle not signed with the key in $NEXTCHANNEL_BUNDLE_KEY")
    p.set_defaults(func=_verify)
    p = sub.add_parser("report", help="write a policy report folder from a decisions CSV")
    p.add_argument("decisions"), p.add_argument("--truth"), p.add_argument("--out", required=True)
    p.set_defaults(func=_report)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
