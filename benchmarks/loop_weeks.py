"""The weekly learning loop against the full-information learner: table and plot per world.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/loop_weeks.py \\
          [--weeks 8] [--sessions 5000] [--world default] [--offer-margin 0.25] \\
          [--exploration softmax --temperature 0.1 | --exploration epsilon] \\
          [--explore-schedule 0.3,0.3,0.2,0.1,0.05,0.02 | --explore-schedule none [--epsilon 0.1 --explore-floor 0.02]] \\
          [--gate cross-fitted --gate-folds 3 | --gate held-out] [--guard] [--name NAME]
      flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/loop_weeks.py --worse-challenger-seeds 0,1,2,3,4
      .venv/bin/python benchmarks/loop_weeks.py --compare default,default_fixed_explore,default_guard
      .venv/bin/python benchmarks/loop_weeks.py --table default_guard     # the README's markdown table

Runs :func:`nextchannel.learning_loop.run_learning_loop` (default ``TrainConfig()``, train()'s guard
off unless ``--guard``: the loop's gate decides; ``--offer-margin`` in the ``PolicyConfig`` the
challengers are trained and deployed with; the loop's default exploration schedule unless
``--explore-schedule`` gives another or ``none``, the fixed exploration). References on each week's visitors: never offer, the trigger rule (greedy), and
— in the weeks of ``--full-info-weeks`` — the full-information learner fitted on every earlier week's
logs (every action's true value, same features, deployed through the same Scorer, margin 0). Per
week: the deployed (exploring) value and its greedy twin, normalised (V − V(never)) /
(V(full-information) − V(never)), the exploration's cost, needless offers, the gate's verdict.
Writes ``benchmarks/results/loop_<name>.csv`` and ``.png`` (``plot_learning_loop``).

``--worse-challenger-seeds`` instead measures the gate's safety: for each seed, two weeks of
``--sessions`` (default there 1,500) in which the challenger offers wherever it may
(``offer_margin=-10``: every eligible visitor gets the best channel, needed or not) against the
trigger rule, under the cross-fitted and the held-out gate; it prints each verdict and how often the
worse challenger was refused.

``--compare NAME,...`` runs nothing: it reads the saved ``loop_<name>.csv`` tables and prints, run by
run, the greedy value normalised week by week, its mean over the weeks with a full-information
reference (2, 4, 6, 8 by default), the greedy gain over "never" per session averaged over weeks 2..n
(every week has "never"), the deployed value and the exploration cost summed over those weeks, and
each publication's greedy value against the policy it replaced on the same visitors. ``--table NAME``
prints a saved run as the README's markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

import pandas as pd

from nextchannel import PolicyConfig, TrainConfig, run_learning_loop, train
from nextchannel.plots import plot_learning_loop

from closed_loop_common import deployable, full_information_model_set, world_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--sessions", type=int, default=None, help="sessions a week (default 5000; 1500 with "
                    "--worse-challenger-seeds)")
    ap.add_argument("--world", default="default")
    ap.add_argument("--offer-margin", type=float, default=0.25)
    ap.add_argument("--exploration", choices=("epsilon", "softmax"), default="softmax")
    ap.add_argument("--epsilon", type=float, default=None, help="with --explore-schedule none (default 0.1)")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--explore-floor", type=float, default=None, help="with --explore-schedule none (default 0.02)")
    ap.add_argument("--explore-schedule", default="",
                    help="uniform exploration share per week, comma-separated (the last repeats); default: the "
                         "loop's DEFAULT_EXPLORE_SCHEDULE; 'none': the fixed exploration (--epsilon / "
                         "--explore-floor, week 1 the world's epsilon)")
    ap.add_argument("--guard", action="store_true", help="train challengers with train()'s guard (rule not_below)")
    ap.add_argument("--gate", choices=("cross-fitted", "held-out"), default="cross-fitted")
    ap.add_argument("--gate-folds", type=int, default=3)
    ap.add_argument("--full-info-weeks", default="2,4,6,8")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="", help="output name (default: the world)")
    ap.add_argument("--worse-challenger-seeds", default="", help="measure the gate against a worse challenger instead")
    ap.add_argument("--compare", default="", help="comma-separated saved run names: print their figures side by side")
    ap.add_argument("--table", default="", help="a saved run name: print it as a markdown table")
    args = ap.parse_args()
    if args.table:
        print("\n".join(markdown_table(pd.read_csv(Path("benchmarks/results") / f"loop_{args.table}.csv"))))
        return
    if args.compare:
        print("\n".join(compare_runs(args.compare.split(","))))
        return
    cfg = world_config(args.world)
    if args.worse_challenger_seeds:
        worse_challenger(cfg, [int(x) for x in args.worse_challenger_seeds.split(",")], args)
        return
    args.sessions = args.sessions or 5000
    base = PolicyConfig.from_sim(cfg)
    pol = dataclasses.replace(base, offer_margin=args.offer_margin)
    fi_weeks = {int(x) for x in args.full_info_weeks.split(",") if x}
    calls = {"week": 1}

    def full_information(logs, model_set):  # called once per week, after the week's policy was chosen
        week, calls["week"] = calls["week"], calls["week"] + 1
        if logs is None or week not in fi_weeks:
            return None
        donor = model_set
        if donor is None:  # the rule is still the champion: borrow the schema of a small model
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                donor = train(decisions=logs.decisions, events=logs.events, customers=logs.customers,
                              contacts=logs.contacts, policy=base,
                              config=TrainConfig(n_estimators=10, offer_n_estimators=5, value_n_estimators=5,
                                                 guard=False))
        return deployable(full_information_model_set(donor, logs, policy=base))

    explore = {} if not args.explore_schedule else {"explore_schedule": None} \
        if args.explore_schedule.lower() == "none" else \
        {"explore_schedule": [float(x) for x in args.explore_schedule.split(",")]}
    explore.update({k: v for k, v in (("epsilon", args.epsilon), ("explore_floor", args.explore_floor)) if v is not None})
    t0 = time.perf_counter()
    loop = run_learning_loop(args.weeks, args.sessions, seed=args.seed, config=cfg, policy=pol,
                             exploration=args.exploration, temperature=args.temperature, gate=args.gate,
                             gate_folds=args.gate_folds, guard=args.guard, **explore,
                             references={"never": "never", "trigger rule": "rule",
                                         "full-information": full_information})
    w = loop.weeks.merge(loop.references, on="week")
    gap = w["full-information"] - w["never"]
    w["normalised"] = (w["value"] - w["never"]) / gap
    w["greedy_normalised"] = (w["greedy_value"] - w["never"]) / gap
    cols = ["week", "deployed", "value", "value_low", "value_high", "greedy_value", "explore_share", "exploration_cost", "never",
            "trigger rule", "full-information", "normalised", "greedy_normalised", "offers_per_session",
            "needless_offer_share", "needless_offers_per_session", "gate", "gate_difference", "gate_low",
            "gate_high", "gate_sessions", "train_sessions", "guard_fallbacks", "replaced_value"]
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(w[cols].round(4).to_string(index=False))
    name = args.name or args.world
    out = Path("benchmarks/results") / f"loop_{name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    w.to_csv(f"{out}.csv", index=False)
    refs = loop.references.copy()
    refs["full-information"] = refs["full-information"].interpolate(limit_area="inside")
    plot_learning_loop(loop.weeks, refs, title=f"The learning loop, {name} world, {args.sessions:,} sessions a week"
                       ).savefig(f"{out}.png", dpi=110)
    print(f"written {out}.csv and {out}.png; the loop took {time.perf_counter() - t0:.0f} s")


def markdown_table(w: pd.DataFrame) -> list[str]:
    """One saved run (``loop_<name>.csv``) as the README's markdown table."""
    def num(x: float, fmt: str = ".3f") -> str:
        return "" if pd.isna(x) else format(x, fmt).replace("-", "−")

    def share(x: float) -> str:
        return "" if pd.isna(x) else f"{x:g}"

    head = ["week", "deployed", "explore share", "value [95%]", "greedy", "exploration cost",
            "never / rule / full-information", "greedy normalised", "needless offers", "gate",
            "gate difference [95%]", "sessions compared / trained on", "replaced policy, greedy", "guard fallbacks"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for _, r in w.iterrows():
        deployed = str(r["deployed"]).replace("trigger rule + exploration", "rule + ε").replace(" + exploration", " + softmax")
        gate_diff = "" if pd.isna(r["gate_difference"]) else \
            f"{num(r['gate_difference'], '+.3f')} [{num(r['gate_low'], '+.3f')}, {num(r['gate_high'], '+.3f')}]"
        refs = f"{num(r['never'])} / {num(r['trigger rule'])} / {num(r['full-information'])}".rstrip()
        fallbacks = "" if pd.isna(r.get("guard_fallbacks")) or r["week"] == 1 else str(int(r["guard_fallbacks"]))
        lines.append("| " + " | ".join([
            str(r["week"]), deployed, share(r["explore_share"]),
            f"{num(r['value'])} [{num(r['value_low'])}, {num(r['value_high'])}]", num(r["greedy_value"]),
            num(r["exploration_cost"], "+.3f"), refs, num(r["greedy_normalised"], ".2f"),
            f"{r['needless_offer_share']:.0%} ({r['needless_offers_per_session']:.3f})", str(r["gate"]), gate_diff,
            f"{int(r['gate_sessions']):,} / {int(r['train_sessions']):,}", num(r["replaced_value"]), fallbacks]) + " |")
    return lines


def compare_runs(names: list[str], results: Path = Path("benchmarks/results")) -> list[str]:
    """Figures of saved loop runs side by side (from ``loop_<name>.csv``; nothing is run)."""
    runs = {n: pd.read_csv(results / f"loop_{n}.csv") for n in names}
    weeks = runs[names[0]]["week"].tolist()
    lines = ["greedy value normalised, (greedy - never) / (full-information - never), by week:",
             "week  " + "  ".join(f"{n:>24}" for n in names)]
    for wk in weeks:
        vals = [r.loc[r["week"] == wk, "greedy_normalised"] for r in runs.values()]
        lines.append(f"{wk:>4}  " + "  ".join(f"{float(v.iloc[0]):>24.2f}" if len(v) and pd.notna(v.iloc[0])
                                               else f"{'':>24}" for v in vals))
    lines.append("per run, over weeks 2..n:")
    for n, r in runs.items():
        later = r[r["week"] >= 2]
        pubs = later[later["gate"].str.startswith("published")]
        if "replaced_value" not in pubs.columns:  # runs saved before the replaced policy was measured
            pubs = pubs.assign(replaced_value=float("nan"))
        beat = int((pubs["greedy_value"] > pubs["replaced_value"]).sum())
        lines.append(f"  {n}: week {int(r['week'].max())} greedy normalised {r['greedy_normalised'].iloc[-1]:.2f}; "
                     f"mean of the normalised weeks {later['greedy_normalised'].mean():.2f} "
                     f"(weeks {','.join(str(w) for w in later.loc[later['greedy_normalised'].notna(), 'week'])}); "
                     f"greedy - never per session, mean {(later['greedy_value'] - later['never']).mean():+.3f}; "
                     f"deployed value, mean {later['value'].mean():.3f}; exploration cost, sum "
                     f"{later['exploration_cost'].sum():.2f}; needless offers per session, mean "
                     f"{later['needless_offers_per_session'].mean():.3f}; gate's 95% half-width per decision by week "
                     + ", ".join(f"{h:.2f}" for h in (later["gate_high"] - later["gate_low"]) / 2)
                     + f"; {len(pubs)} publications, {beat} of the {int(pubs['replaced_value'].notna().sum())} measured "
                     f"beat the policy they replaced on the same visitors ("
                     + ", ".join(f"week {int(p.week)} {p.greedy_value:.3f} vs {p.replaced_value:.3f}"
                                 for p in pubs.itertuples()) + ")")
    return lines


def worse_challenger(cfg, seeds: list[int], args: argparse.Namespace) -> None:
    """How often the gate refuses a challenger that offers wherever it may, across seeds."""
    pol = dataclasses.replace(PolicyConfig.from_sim(cfg), offer_margin=-10.0)
    n = args.sessions or 1500
    rows = []
    for seed in seeds:
        for gate in ("cross-fitted", "held-out"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w = run_learning_loop(2, n, seed=seed, config=cfg, policy=pol, gate=gate, gate_folds=args.gate_folds,
                                      train_config=TrainConfig(guard=False), references={}).weeks
            rows.append({"seed": seed, "gate": gate, "verdict": w.loc[1, "gate"],
                         "difference": w.loc[1, "gate_difference"], "low": w.loc[1, "gate_low"],
                         "high": w.loc[1, "gate_high"]})
    t = pd.DataFrame(rows)
    with pd.option_context("display.width", 200):
        print(t.round(4).to_string(index=False))
    refused = t.assign(refused=t["verdict"].str.startswith("kept")).groupby("gate")["refused"].agg(["sum", "count"])
    print(f"worse challenger (offer_margin=-10) vs the trigger rule, 2 weeks x {n:,} sessions: refused")
    for gate, r in refused.iterrows():
        print(f"  {gate}: {int(r['sum'])} of {int(r['count'])} seeds")


if __name__ == "__main__":
    main()
