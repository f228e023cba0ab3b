"""The retraining job run weekly over 8 weeks of simulated logs: wall time and each week's decision.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_retrain.py [--sessions 60000 --margin 0.05]

Eight weeks of one simulated world (the rule-based logging policy with exploration) are written as
Parquet files, one per week; week 6 is made worse on purpose ("solved" flipped for every accepted
offer: a logging bug that inverts the outcome). ``nextchannel retrain`` (the command, as a scheduler
runs it) then runs like a weekly job on one publish root:

* week 4: the first run (weeks 1-3 train, week 4 held out), no champion yet -> published;
* weeks 5-8: the last ``7 * (train_weeks + 1)`` days (the previous ``--train-weeks`` weeks train,
  default 1; this week is held out), gated with
  ``--require non-inferior --margin M``: published only if the paired 95% interval of
  challenger - champion (DR, per decision point) rules out a loss larger than ``M``;
* week 8 again on the same files -> unchanged (the input digest), nothing published.

Week 7's challenger is trained on the broken week 6: the job must keep the champion (exit 3). Week 6
holds the broken logs out (its comparison is made on broken rewards). Printed per run: wall time, exit
code, status, the comparison, and what the rule ``not-worse`` (publish unless significantly worse)
would have decided on the same comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import subprocess
import sys
import tempfile
import time

from nextchannel import simulate, PolicyConfig, SimConfig, TrainConfig  # noqa: I001 (simulate first)

DAY = 86400.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=60000, help="sessions over the 8 weeks")
    ap.add_argument("--trees", type=int, default=150)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--margin", type=float, default=0.05, help="loss per decision point the gate tolerates")
    ap.add_argument("--worse-week", type=int, default=6)
    ap.add_argument("--train-weeks", type=int, default=1, help="weeks each weekly run trains on (window = this + 1)")
    args = ap.parse_args()
    cfg = dataclasses.replace(SimConfig(), n_days=56)
    t = time.perf_counter()
    sim = simulate(args.sessions, seed=args.seed, config=cfg)
    print(f"simulated {args.sessions:,} sessions over 56 days: {len(sim.decisions):,} decisions, "
          f"{len(sim.events):,} events ({time.perf_counter() - t:.1f} s)")
    work = pathlib.Path(tempfile.mkdtemp(prefix="nc-bench-retrain-"))
    d = sim.decisions.drop(columns=[c for c in sim.decisions.columns if c.startswith("ev_")]
                           + ["needs_help", "problem", "reward"])
    week = ((d["ts"] - cfg.epoch_start_s) // (7 * DAY)).astype(int)
    ev_week = ((sim.events["ts"] - cfg.epoch_start_s) // (7 * DAY)).astype(int)
    logs = work / "logs"
    for sub in ("decisions", "events"):
        (logs / sub).mkdir(parents=True)
    for w in range(8):
        dw = d[week == w].copy()
        if w + 1 == args.worse_week:
            acc = dw["accepted"].astype(bool)
            dw.loc[acc, "success"] = ~dw.loc[acc, "success"].astype(bool)
        dw.to_parquet(logs / "decisions" / f"week-{w + 1}.parquet")
        sim.events[ev_week == w].to_parquet(logs / "events" / f"week-{w + 1}.parquet")
    sim.customers.to_parquet(work / "customers.parquet")
    sim.contacts.to_parquet(work / "contacts.parquet")
    (work / "policy.json").write_text(PolicyConfig.from_sim(cfg).to_json())
    (work / "config.json").write_text(TrainConfig(n_estimators=args.trees).to_json())
    root = work / "models"
    print(f"{(week == 0).sum():,}-{max((week == w).sum() for w in range(8)):,} decisions per week; week "
          f"{args.worse_week} worsened; rule non-inferior, margin {args.margin:g} per decision point")

    def run(label: str, until_week: int, *extra: str) -> dict:
        cmd = [sys.executable, "-m", "nextchannel.cli", "retrain", "-q", "--decisions", str(logs / "decisions"),
               "--events", str(logs / "events"), "--customers", str(work / "customers.parquet"),
               "--contacts", str(work / "contacts.parquet"), "--policy", str(work / "policy.json"),
               "--config", str(work / "config.json"), "--root", str(root), "--no-report",
               "--until", str(cfg.epoch_start_s + 7 * DAY * until_week), "--test-days", "7",
               "--require", "non-inferior", "--margin", str(args.margin),
               "--utc-offset-s", str(cfg.service_utc_offset_s), *extra]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        try:
            s = json.loads(out.stdout)
        except json.JSONDecodeError:
            print(f"{label}: no summary (exit {out.returncode}): {out.stderr[-500:]}")
            raise
        c = s.get("comparison") or {}
        if c:
            cmp_text = (f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}] n={c['n']:,}")
            other = "publish" if c["verdict"] != "worse" else "keep"
        else:
            cmp_text, other = "-", "-"
        print(f"{label:<44} {wall:6.1f} s  {out.returncode:>4}  {s['status']:<14} {cmp_text:<34} {other}")
        return s

    print(f"\n{'run':<44} {'wall':>8}  exit  status         {'challenger - champion [95%]':<34} not-worse would")
    t_all = time.perf_counter()
    run("week 4: train 1-3, test 4 (first)", 4, "--window-days", "28")
    days = str(7 * (args.train_weeks + 1))
    for w in range(5, 9):
        note = " (tests broken week)" if w == args.worse_week else " (trains on broken)" \
            if w - args.train_weeks <= args.worse_week < w else ""
        trained = f"{w - args.train_weeks}-{w - 1}" if args.train_weeks > 1 else f"{w - 1}"
        run(f"week {w}: train {trained}, test {w}{note}", w, "--window-days", days)
    run("week 8 again (same files)", 8, "--window-days", days)
    print(f"\nall runs: {time.perf_counter() - t_all:.1f} s; versions under the root: "
          f"{sorted(p.name for p in root.iterdir() if not p.name.startswith('.'))}")


if __name__ == "__main__":
    main()
