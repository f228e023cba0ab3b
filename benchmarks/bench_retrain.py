"""The retraining job end to end on 8 weeks of simulated logs: wall time and its decisions.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_retrain.py [--sessions 40000]

Eight weeks of one simulated world (the rule-based logging policy with exploration) are written as
Parquet files, one per week, then ``nextchannel retrain`` (the command, as a scheduler runs it)
is run three times on the same publish root:

1. weeks 1-6, no champion yet                       -> published (exit 0)
2. weeks 7-8 (train on week 7, test on week 8)      -> the gate decides; printed
3. run 2 again on the same files                    -> unchanged (exit 0), nothing published
4. weeks 7-8 with week 7 made worse on purpose      -> must keep the champion (exit 3)
   ("solved" flipped for every accepted offer: a logging bug that inverts the outcome)

Printed: each run's wall time, exit code, status and the comparison (DR, 95% paired interval).
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
    ap.add_argument("--sessions", type=int, default=40000, help="sessions over the 8 weeks")
    ap.add_argument("--trees", type=int, default=150)
    ap.add_argument("--seed", type=int, default=3)
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
    logs = {name: work / name for name in ("clean", "worse")}
    for name, folder in logs.items():
        for sub in ("decisions", "events"):
            (folder / sub).mkdir(parents=True)
        for w in range(8):
            dw = d[week == w].copy()
            if name == "worse" and w == 6:
                acc = dw["accepted"].astype(bool)
                dw.loc[acc, "success"] = ~dw.loc[acc, "success"].astype(bool)
            dw.to_parquet(folder / "decisions" / f"week-{w + 1}.parquet")
            sim.events[ev_week == w].to_parquet(folder / "events" / f"week-{w + 1}.parquet")
    sim.customers.to_parquet(work / "customers.parquet")
    sim.contacts.to_parquet(work / "contacts.parquet")
    (work / "policy.json").write_text(PolicyConfig.from_sim(cfg).to_json())
    (work / "config.json").write_text(TrainConfig(n_estimators=args.trees).to_json())
    root = work / "models"
    t6 = cfg.epoch_start_s + 42 * DAY

    def run(label: str, logs_dir: pathlib.Path, *extra: str) -> dict:
        cmd = [sys.executable, "-m", "nextchannel.cli", "retrain", "-q", "--decisions", str(logs_dir / "decisions"),
               "--events", str(logs_dir / "events"), "--customers", str(work / "customers.parquet"),
               "--contacts", str(work / "contacts.parquet"), "--policy", str(work / "policy.json"),
               "--config", str(work / "config.json"), "--root", str(root),
               "--utc-offset-s", str(cfg.service_utc_offset_s), *extra]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        s = json.loads(out.stdout)
        c = s.get("comparison") or {}
        cmp_text = (f"champion {c['champion']:.3f}, challenger {c['challenger']:.3f}, difference "
                    f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}] -> {c['verdict']}") if c else "-"
        print(f"{label:<44} {wall:6.1f} s  exit {out.returncode}  {s['status']:<14} {cmp_text}")
        return s

    print(f"\n{'run':<44} {'wall':>8}  exit  status         comparison (DR per decision point, 95% paired)")
    run("1. weeks 1-6, no champion", logs["clean"], "--until", str(t6), "--no-report")
    run("2. weeks 7-8 (train 7, test 8)", logs["clean"], "--since", str(t6), "--test-days", "7",
        "--report", str(work / "report-clean"))
    run("3. run 2 again (same files)", logs["clean"], "--since", str(t6), "--test-days", "7", "--no-report")
    run("4. weeks 7-8, week 7 worsened", logs["worse"], "--since", str(t6), "--test-days", "7", "--no-report")
    print(f"\nversions under the root: {sorted(p.name for p in root.iterdir() if not p.name.startswith('.'))}")
    print(f"run 2's report: {work / 'report-clean'}")


if __name__ == "__main__":
    main()
