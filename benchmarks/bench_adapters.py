"""Adapters' speed: export rows/s from a GA4, Snowplow and Segment export into nextchannel's event log.

Run:  .venv/bin/python benchmarks/bench_adapters.py [--rows 100000] [--repeats 3]

Each export is the test fixture of its format (tests/fixtures/) repeated with fresh user and session
ids until it has ``--rows`` rows — realistic field mixes, nested GA4 parameters, Snowplow unstruct
envelopes as JSON strings. Prints the median over ``--repeats`` runs; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import pandas as pd

from nextchannel.adapters import events_from_ga4, events_from_segment, events_from_snowplow

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def _ga4(n: int) -> pd.DataFrame:
    rows = [json.loads(x) for x in (FIXTURES / "ga4_export.jsonl").read_text().splitlines()]
    out = []
    for k in range(n // len(rows) + 1):
        for r in rows:
            r = copy.deepcopy(r)
            if r.get("user_pseudo_id"):
                r["user_pseudo_id"] = f"{r['user_pseudo_id']}-{k}"
            out.append(r)
    return pd.DataFrame(out[:n])


def _snowplow(n: int) -> pd.DataFrame:
    base = pd.read_csv(FIXTURES / "snowplow_enriched.csv", dtype=str, keep_default_na=False)
    parts = []
    for k in range(n // len(base) + 1):
        part = base.copy()
        part["domain_sessionid"] = part["domain_sessionid"].where(part["domain_sessionid"] == "",
                                                                  part["domain_sessionid"] + f"-{k}")
        part["event_id"] = part["event_id"] + f"-{k}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True).iloc[:n]


def _segment(n: int) -> pd.DataFrame:
    rows = [json.loads(x) for x in (FIXTURES / "segment_events.jsonl").read_text().splitlines()]
    out = []
    for k in range(n // len(rows) + 1):
        for r in rows:
            r = dict(r)
            if r.get("anonymousId"):
                r["anonymousId"] = f"{r['anonymousId']}-{k}"
            r["messageId"] = f"{r['messageId']}-{k}"
            out.append(r)
    return pd.DataFrame(out[:n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, pandas {pd.__version__}, {args.rows:,} export rows, "
          f"median of {args.repeats}")
    for name, make, adapt in (("ga4", _ga4, events_from_ga4), ("snowplow", _snowplow, events_from_snowplow),
                              ("segment", _segment, events_from_segment)):
        export = make(args.rows)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            events, report = adapt(export)
            times.append(time.perf_counter() - t0)
        s = statistics.median(times)
        print(f"  {name:9s} {s:6.2f} s  {args.rows / s:9,.0f} rows/s  -> {report.n_events:,} events, "
              f"{report.n_sessions:,} sessions, {report.n_dropped:,} rows dropped")


if __name__ == "__main__":
    main()
