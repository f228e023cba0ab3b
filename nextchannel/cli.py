"""The ``nextchannel`` command: the main job (``demo``) and the batch jobs on files.

Where it sits: on top of everything; nothing in the library imports it. Output here is for a
person at a terminal, so this module prints; the library itself only logs.

Exit codes: 0 success; 1 a check found problems (``verify``); 2 a usage error or bad input (bad
options, options that contradict each other, a missing or malformed file, input the library
refuses) — reported on stderr as one line ``nextchannel <command>: error: <message>``, without a
traceback (``--verbose`` adds it). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["main"]


class _UsageError(Exception):
    """Options that cannot be honoured together (reported with exit code 2)."""


def _sim_api():  # type: ignore[no-untyped-def]
    """SimConfig, simulate and summary, from the simulator's subpackage."""
    from nextchannel.simulation import SimConfig, simulate, summary

    return SimConfig, simulate, summary


def _train_api():  # type: ignore[no-untyped-def]
    """TrainConfig and train, from the training module."""
    from nextchannel.training import TrainConfig, train

    return TrainConfig, train


def _demo(args: argparse.Namespace) -> int:
    from nextchannel.features import features_many
    from nextchannel.policy import PolicyConfig
    from nextchannel.scorer import Scorer

    SimConfig, simulate, summary = _sim_api()
    TrainConfig, train = _train_api()

    cfg = SimConfig.shifted(args.world) if args.world != "default" else SimConfig()
    res = simulate(args.sessions, seed=args.seed, config=cfg)
    s = summary(res)
    print(f"nextchannel demo: a simulated world ({args.world}), {args.sessions:,} sessions, seed {args.seed}\n")
    print("1. The logged world (an exploring logging policy decided; the simulator knows every action's true value)")
    for k in ("sessions", "events", "decision_points", "problem_session_rate", "needs_help_rate", "offer_rate",
              "accept_rate"):
        v = s[k]
        print(f"  {k:<24} {v:,.3f}" if isinstance(v, float) else f"  {k:<24} {v:,}")
    feats = features_many(res.decisions[["session_id", "ts", "customer_id"]], events=res.events,
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
    ms = train(res.decisions, events=res.events, customers=res.customers, contacts=res.contacts, config=tcfg,
               policy=policy)
    scorer = Scorer(ms)
    test = simulate(args.test_sessions, seed=args.seed + 1000, config=cfg)
    d = test.decisions
    out = scorer.decide_many(d, events=test.events, customers=test.customers, contacts=test.contacts)
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
    try:
        if path.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise _UsageError(f"file {path!r} does not exist") from None
    except (ValueError, OSError, ImportError) as err:  # pandas' parser errors are ValueErrors
        raise _UsageError(f"could not read {path!r}: {type(err).__name__}: {err}") from err


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise _UsageError(f"{what} file {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise _UsageError(f"could not read {what} file {path!r}: {err}") from err


def _train_options(args: argparse.Namespace) -> None:
    """Refuse options that contradict each other instead of silently ignoring one."""
    learner = [f"--{n.replace('_', '-')}" for n in ("n_estimators", "num_leaves", "early_stopping_rounds", "seed")
               if getattr(args, n) is not None]
    if args.config and learner:
        raise _UsageError(f"{', '.join(learner)} cannot be combined with --config (the config file sets the learner "
                          "and its random_state; edit it instead)")
    files = [f"--{n}" for n in ("events", "decisions", "features", "customers", "contacts", "policy") if getattr(args, n)]
    if args.simulate is not None and files:
        raise _UsageError(f"--simulate cannot be combined with {', '.join(files)} (train on a simulation or on files)")
    if args.simulate is None and args.world != "default":
        raise _UsageError("--world needs --simulate (it chooses the simulated world)")
    if args.simulate is not None and args.simulate < 1:
        raise _UsageError(f"--simulate must be a number of sessions >= 1, got {args.simulate}")
    if args.simulate is None and not (args.decisions and (args.events or args.features)):
        raise _UsageError("give --simulate N, or --decisions with --events and/or --features files")


def _train(args: argparse.Namespace) -> int:
    from nextchannel.policy import PolicyConfig

    TrainConfig, train = _train_api()
    _train_options(args)
    seed = 1 if args.seed is None else args.seed
    if args.config:
        tcfg = TrainConfig.from_json(_read_text(args.config, "--config"))
    else:
        tcfg = TrainConfig(n_estimators=300 if args.n_estimators is None else args.n_estimators,
                           num_leaves=15 if args.num_leaves is None else args.num_leaves, random_state=seed,
                           **({} if args.early_stopping_rounds is None
                              else {"early_stopping_rounds": args.early_stopping_rounds}))
    if args.simulate:
        SimConfig, simulate, _ = _sim_api()
        sim_cfg = SimConfig.shifted(args.world) if args.world != "default" else SimConfig()
        print(f"simulating {args.simulate:,} sessions of the {args.world} world (seed {seed})")
        sim = simulate(args.simulate, seed=seed, config=sim_cfg)
        events, decisions, customers, contacts = sim.events, sim.decisions, sim.customers, sim.contacts
        features = None
        policy = PolicyConfig.from_sim(sim_cfg)
    else:
        events, decisions = _read_table(args.events), _read_table(args.decisions)
        features = _read_table(args.features)
        customers, contacts = _read_table(args.customers), _read_table(args.contacts)
        policy = PolicyConfig.from_json(_read_text(args.policy, "--policy")) if args.policy else PolicyConfig()
    ms = train(decisions, events=events, features=features, customers=customers, contacts=contacts, config=tcfg,
               policy=policy, progress=True)
    path = ms.save(args.out, overwrite=args.overwrite)
    size = sum(f.stat().st_size for f in path.iterdir())
    sessions = f" ({ms.meta['sessions']:,} sessions)" if "sessions" in ms.meta else ""
    print(f"trained on {ms.meta['rows']:,} decisions{sessions}; offer margin "
          f"{ms.policy.offer_margin:g}; model {ms.version}; bundle {path} ({size / 1e6:.2f} MB)")
    from nextchannel.modelset import evaluation_lines

    for line in evaluation_lines(ms.evaluation):
        print(line)
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Run exactly what ``Scorer.load`` runs on the bundle; print its figures, or why it is refused."""
    from nextchannel.bundle import current_version, is_publish_root, verify_bundle
    from nextchannel.modelset import evaluation_lines
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
    for line in evaluation_lines(ms.evaluation):   # the guard's figures, in words
        print(f"  {line}")
    for key, value in _flatten({k: v for k, v in ms.evaluation.items() if k != "guard"}):
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


def _loop(args: argparse.Namespace) -> int:
    import pandas as pd

    import dataclasses

    from nextchannel.learning_loop import (DEFAULT_EXPLORE_SCHEDULE, FIXED_EPSILON, FIXED_EXPLORE_FLOOR,
                                           run_learning_loop)
    from nextchannel.plots import plot_learning_loop
    from nextchannel.policy import PolicyConfig
    from nextchannel.simulation import SimConfig
    from nextchannel.training import TrainConfig

    if args.config and args.n_estimators is not None:
        raise _UsageError("--n-estimators cannot be combined with --config (the config file sets the learner; "
                          "edit it instead)")
    cfg = SimConfig.shifted(args.world) if args.world != "default" else SimConfig()
    if args.config and args.target is not None:
        raise _UsageError("--target cannot be combined with --config (the config file sets the learner; edit it instead)")
    tcfg = TrainConfig.from_json(_read_text(args.config, "--config")) if args.config else TrainConfig(
        n_estimators=300 if args.n_estimators is None else args.n_estimators, target=args.target or "one_step")
    fixed = args.explore_schedule is not None and args.explore_schedule.strip().lower() == "none"
    try:
        schedule = None if fixed else DEFAULT_EXPLORE_SCHEDULE if args.explore_schedule is None else \
            tuple(float(x) for x in args.explore_schedule.split(","))
    except ValueError:
        raise _UsageError(f"--explore-schedule must be comma-separated shares such as 0.3,0.1,0.02 or 'none', got "
                          f"{args.explore_schedule!r}") from None
    if schedule is not None and (args.epsilon is not None or args.explore_floor is not None):
        raise _UsageError("--epsilon and --explore-floor set the fixed exploration: add --explore-schedule none "
                          "(the default is a schedule of exploration shares by week)")
    if schedule is not None:
        floor = eps = "by week: " + ",".join(f"{x:g}" for x in schedule)
    else:
        floor = f"{FIXED_EXPLORE_FLOOR if args.explore_floor is None else args.explore_floor:g}"
        eps = f"{FIXED_EPSILON if args.epsilon is None else args.epsilon:g}"
    how = f"softmax exploration (temperature {args.temperature:g}, floor {floor})" if args.exploration == "softmax" \
        else f"epsilon {eps}"
    print(f"learning loop: {args.weeks} weeks x {args.sessions:,} sessions of the {args.world} world (seed {args.seed}); "
          f"week 1 logged by the trigger rule with exploration, then retrain -> gate -> deploy with {how}; "
          f"{args.gate} gate" + (" and train()'s guard" if args.guard else "") + f"; value target {tcfg.target}")
    pol = dataclasses.replace(PolicyConfig.from_sim(cfg), offer_margin=args.offer_margin) \
        if args.offer_margin is not None else None
    loop = run_learning_loop(args.weeks, args.sessions, seed=args.seed, config=cfg, train_config=tcfg, policy=pol,
                             epsilon=args.epsilon, exploration=args.exploration, temperature=args.temperature,
                             explore_floor=args.explore_floor, explore_schedule=schedule, gate=args.gate,
                             gate_folds=args.gate_folds, guard=args.guard, root=args.publish)
    w = loop.weeks.merge(loop.references, on="week")
    w["normalised"] = (w["value"] - w["never"]) / (w["oracle"] - w["never"])
    cols = ["week", "deployed", "value", "value_low", "value_high", "normalised", "greedy_value", "explore_share",
            "exploration_cost",
            "needless_offer_share", "needless_offers_per_session", "gate", "gate_difference", "train_sessions"]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(w[cols].round(4).to_string(index=False))
    print("value: expected reward per session of the deployed policy (95% interval); normalised: "
          "(value - never) / (oracle - never) on the same week's sessions")
    if args.out:
        w.to_csv(f"{args.out}.csv", index=False)
        plot_learning_loop(loop.weeks, loop.references).savefig(f"{args.out}.png", dpi=110)
        print(f"written {args.out}.csv and {args.out}.png")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    if args.workers < 1:
        raise _UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.workers > 1 and args.store == "memory":
        raise _UsageError("--workers > 1 needs a shared session store (--store redis://host:port/db); "
                          "with --store memory each worker would see only part of a session")
    try:
        import uvicorn
    except ImportError:
        raise _UsageError("serve needs the web extra: pip install 'nextchannel[web]'") from None
    cfg = {"bundle": args.bundle, "store": args.store, "log_dir": args.log_dir, "cors_origins": args.cors_origin,
           "context": args.context, "offers": args.offers, "static_dir": args.static_dir,
           "idle_timeout_s": args.idle_timeout_s, "watch_s": args.watch_s or None}
    if args.epsilon:
        cfg["exploration"] = {"exploration": "epsilon", "epsilon": args.epsilon}
    os.environ["NEXTCHANNEL_SERVE"] = json.dumps(cfg)
    # workers are separate processes that build the app from the environment (uvicorn's factory)
    uvicorn.run("nextchannel.web.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="warning", access_log=False)
    return 0


def _retrain(args: argparse.Namespace) -> int:
    """The retraining job; exit codes and the one-line JSON summary are the scheduler's interface."""
    from nextchannel.errors import ConfigError, ValidationError
    from nextchannel.jobs import EXIT_CODES, retrain

    dask = None
    # stdout carries exactly one line, the JSON summary: anything else written to it during the job
    # (LightGBM's C library prints to file descriptor 1) goes to stderr.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        if args.dask or args.dask_scheduler:
            from nextchannel import dask_backend

            dask = dask_backend.client(args.dask_scheduler, n_workers=args.dask_workers)
        res = retrain(decisions=args.decisions, events=args.events, outcomes=args.outcomes, customers=args.customers,
                      contacts=args.contacts, features=args.features, policy=args.policy, config=args.config,
                      root=args.root, since=args.since, until=args.until, window_days=args.window_days,
                      test_fraction=args.test_fraction, test_days=args.test_days, require=args.require,
                      min_effect=args.min_effect, margin=args.margin, keep=args.keep, report=False if args.no_report else args.report,
                      utc_offset_s=args.utc_offset_s, progress=not args.quiet, dask=dask)
        line, code = res.to_json(), res.exit_code
    except (ValidationError, ConfigError) as err:
        print(f"retrain: bad input: {err}", file=sys.stderr)
        line = json.dumps({"status": "bad_input", "exit_code": EXIT_CODES["bad_input"], "error": str(err)})
        code = EXIT_CODES["bad_input"]
    except Exception as err:  # the scheduler's contract: anything else is exit code 1, with a summary line
        logging.getLogger("nextchannel.cli").exception("retrain failed")
        line = json.dumps({"status": "error", "exit_code": EXIT_CODES["error"], "error": f"{type(err).__name__}: {err}"})
        code = EXIT_CODES["error"]
    finally:
        if dask is not None:
            dask_backend.close(dask)
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    print(line)
    return code


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
    p.add_argument("--features", help="your own per-decision columns (CSV/Parquet, one row per decision)")
    p.add_argument("--policy", help="PolicyConfig JSON file (business values); default PolicyConfig()")
    p.add_argument("--config", help="TrainConfig JSON file (not with --n-estimators, --num-leaves or --seed)")
    p.add_argument("--n-estimators", type=int, default=None, help="trees per head (default 300)")
    p.add_argument("--num-leaves", type=int, default=None, help="leaves per tree (default 15)")
    p.add_argument("--early-stopping-rounds", type=int, default=None,
                   help="stop a head after this many rounds without gain on the calibration rows (default 30; "
                        "0: always --n-estimators trees)")
    p.add_argument("--seed", type=int, default=None,
                   help="random_state of the learner and seed of --simulate (default 1)")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_train)
    p = sub.add_parser("loop", help="run the weekly learning loop (log, retrain, gate, deploy) inside the simulator")
    p.add_argument("--weeks", type=int, default=8)
    p.add_argument("--sessions", type=int, default=10000, help="sessions per week")
    p.add_argument("--world", default="default", help="default, phone_costly, long_queues, mobile_heavy, problem_heavy")
    p.add_argument("--epsilon", type=float, default=None,
                   help="with --explore-schedule none: epsilon of --exploration epsilon, and of the trigger rule "
                        "while it is the champion after week 1 (default 0.1)")
    p.add_argument("--exploration", choices=("epsilon", "softmax"), default="softmax",
                   help="how the deployed learned policy explores (default softmax)")
    p.add_argument("--temperature", type=float, default=0.1, help="temperature of softmax exploration (default 0.1)")
    p.add_argument("--explore-floor", type=float, default=None,
                   help="with --explore-schedule none: softmax exploration's share spread uniformly over the "
                        "eligible actions (default 0.02)")
    p.add_argument("--explore-schedule", default=None,
                   help="uniform exploration share per week, comma-separated, the last repeats (default "
                        "0.3,0.3,0.2,0.1,0.05,0.02): the rule's epsilon while it is the champion and the learned "
                        "policy's floor; 'none': the fixed exploration of --epsilon and --explore-floor")
    p.add_argument("--gate", choices=("cross-fitted", "held-out"), default="cross-fitted",
                   help="compare on every logged decision, cross-fitted by session (default), or on a held-out fifth")
    p.add_argument("--gate-folds", type=int, default=3, help="folds of the cross-fitted gate (default 3)")
    p.add_argument("--guard", action="store_true",
                   help="train challengers with train()'s guard (a challenger below the best constant action "
                        "becomes that constant, then gated like any other); default: off, the loop's own gate decides")
    p.add_argument("--offer-margin", type=float, default=None,
                   help="PolicyConfig.offer_margin of the learned policies (default: the world's, 0)")
    p.add_argument("--target", choices=("one_step", "session"), default=None,
                   help="value target of the learner (TrainConfig.target; default one_step)")
    p.add_argument("--n-estimators", type=int, default=None, help="trees per head (default 300)")
    p.add_argument("--config", help="TrainConfig JSON file (not with --n-estimators)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--publish", help="folder to publish each accepted model set to (<folder>/week-<w>)")
    p.add_argument("--out", help="write <out>.csv and <out>.png (the weekly table and its plot)")
    p.set_defaults(func=_loop)
    p = sub.add_parser("retrain", help="retrain on a window of logs; publish to --root if not worse than the champion "
                       "(exit 0 published, 3 champion kept, 2 bad input, 1 other error; one JSON line on stdout)")
    for name, what in (("--decisions", "decision log (with outcomes)"), ("--events", "event log"),
                       ("--outcomes", "outcome log of the service (decision_id, outcome), joined onto the decisions"),
                       ("--customers", "customer table"), ("--contacts", "contact history"),
                       ("--features", "your own per-decision features (one row per decision row)")):
        p.add_argument(name, required=name in ("--decisions", "--events"),
                       help=f"{what}: a CSV, Parquet or JSON-lines file, or a folder of them")
    p.add_argument("--policy", help="PolicyConfig JSON file (business values); default PolicyConfig()")
    p.add_argument("--config", help="TrainConfig JSON file")
    p.add_argument("--root", required=True, help="publish root: <root>/<version>/ and the symlink <root>/current")
    p.add_argument("--since", help="window start (ISO 8601 date/time, UTC unless a zone is given; or epoch seconds)")
    p.add_argument("--until", help="window end (exclusive)")
    p.add_argument("--window-days", type=float, help="the window is the last N days (before --until)")
    p.add_argument("--test-fraction", type=float, default=0.25, help="latest share of sessions held out (default 0.25)")
    p.add_argument("--test-days", type=float, help="hold out the last N days instead")
    p.add_argument("--require", choices=["not-worse", "non-inferior", "better"], default="not-worse",
                   help="publish if the challenger is not significantly worse (default) / shown to lose at most "
                   "--margin (non-inferior) / significantly better")
    p.add_argument("--min-effect", type=float, default=0.0, help="margin of the verdict, reward per decision point")
    p.add_argument("--margin", type=float, default=0.0, help="loss per decision point --require non-inferior "
                   "tolerates: publish only if the interval's lower bound is >= -margin")
    p.add_argument("--keep", type=int, default=5, help="versions to keep under --root (default 5)")
    p.add_argument("--report", help="the run's report folder (default <root>-reports/<model version>)")
    p.add_argument("--no-report", action="store_true", help="write no report folder")
    p.add_argument("--utc-offset-s", type=float, default=0.0, help="service clock's offset from UTC (opening hours)")
    p.add_argument("--dask", action="store_true", help="featurise and train on Dask (a local cluster unless "
                   "--dask-scheduler is given)")
    p.add_argument("--dask-scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--dask-workers", type=int, default=2, help="workers of the local cluster (default 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_retrain)
    p = sub.add_parser("verify", help="run every check Scorer.load runs on a bundle (or a publish root); exit 1 "
                                      "if it is refused")
    p.add_argument("path", help="bundle folder, or publish root (its current version)")
    p.add_argument("--require-signature", action="store_true",
                   help="refuse a bundle not signed with the key in $NEXTCHANNEL_BUNDLE_KEY")
    p.set_defaults(func=_verify)
    p = sub.add_parser("report", help="write a policy report folder from a decisions CSV")
    p.add_argument("decisions"), p.add_argument("--truth"), p.add_argument("--out", required=True)
    p.set_defaults(func=_report)
    p = sub.add_parser("serve", help="run the reference web service (tracker events in, decisions out)")
    p.add_argument("--bundle", help="model bundle or publish root (default: the shipped default bundle)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--store", default="memory", help="memory, or a Redis URL redis://host:port/db (shared by workers)")
    p.add_argument("--log-dir", help="write decision/outcome/event logs (JSON lines) here")
    p.add_argument("--cors-origin", action="append", default=[], help="origin allowed to call the API (repeatable)")
    p.add_argument("--context", help="JSON file of the static channel context (open, wait_s, languages)")
    p.add_argument("--offers", help='JSON file {"links": {...}, "texts": {...}} for the offer widget')
    p.add_argument("--static-dir", help="folder served at / (e.g. examples/webshop)")
    p.add_argument("--idle-timeout-s", type=float, default=1800.0, help="close a session after this long without events")
    p.add_argument("--epsilon", type=float, default=0.0, help="explore: a random eligible action with this probability")
    p.add_argument("--watch-s", type=float, default=10.0,
                   help="with a publish root as --bundle: every worker reloads a newly published version within this time (0: never)")
    p.set_defaults(func=_serve)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from nextchannel.errors import NextChannelError

    try:
        return int(args.func(args))
    except (_UsageError, NextChannelError) as err:
        if args.verbose:
            import traceback

            traceback.print_exc()
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"nextchannel {args.command}: error: {first}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
