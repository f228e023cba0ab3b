"""Feature executors' speed: batch events/s on a large log, online µs per update / features_one.

Run:  .venv/bin/python benchmarks/bench_features.py [--events 2000000] [--source synthetic|sim]

``synthetic`` builds a random log quickly with numpy (realistic type mix, ~25 events a session);
``sim`` uses the simulator (slower to build, same throughput figures). Figures are printed, not
asserted: absolute times on a shared 2-core machine are noisy; medians over repeats are quoted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import pandas as pd

from nextchannel.features import SessionState, features_many
from nextchannel.schema import EVENT_FIELDS, PAGE_TYPES

TYPE_MIX = {"page_view": 0.35, "scroll": 0.2, "idle": 0.1, "click": 0.15, "form_error": 0.03,
            "form_submit": 0.02, "cart_add": 0.04, "cart_remove": 0.01, "search": 0.04,
            "exit_intent": 0.01, "offer_shown": 0.01, "offer_dismissed": 0.005, "offer_accepted": 0.002,
            "contact_started": 0.002, "purchase": 0.005, "session_end": 0.006, "session_start": 0.04}


def synthetic_log(n_events: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_sessions = max(1, n_events // 25)
    sid = np.sort(rng.integers(0, n_sessions, n_events))
    types = np.array(list(TYPE_MIX))
    p = np.array(list(TYPE_MIX.values()))
    etype = types[rng.choice(len(types), n_events, p=p / p.sum())]
    ts = 1.767e9 + sid * 100.0 + np.cumsum(rng.exponential(8.0, n_events)) % 3000
    ts = pd.Series(ts).groupby(sid).cummax().to_numpy()
    page_type = np.array(PAGE_TYPES, dtype=object)[rng.integers(0, len(PAGE_TYPES), n_events)]
    df = pd.DataFrame({
        "session_id": pd.Series(sid).map(lambda i: f"s{i}").to_numpy(dtype=object),
        "ts": ts, "type": etype,
        "page": np.where(etype == "page_view", pd.Series(rng.integers(0, 50, n_events)).map(lambda i: f"/p/{i}"), None),
        "page_type": np.where(etype == "page_view", page_type, None),
        "depth": np.where(etype == "scroll", rng.random(n_events), np.nan),
        "direction": np.where(etype == "scroll", np.array(["down", "up"], dtype=object)[rng.integers(0, 2, n_events)], None),
        "duration_s": np.where(etype == "idle", rng.exponential(20, n_events), np.nan),
        "value": np.where(np.isin(etype, ["cart_add", "cart_remove", "purchase"]), rng.exponential(40, n_events), np.nan),
        "n_results": np.where(etype == "search", rng.integers(0, 5, n_events), np.nan),
        "channel": np.where(np.isin(etype, ["offer_shown", "offer_dismissed", "offer_accepted", "contact_started"]), "chat", None),
        "device": np.where(etype == "session_start", "mobile", None),
        "language": np.where(etype == "session_start", "en", None),
    })
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--source", choices=["synthetic", "sim"], default="synthetic")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.source == "sim":
        from nextchannel.simulation import simulate

        res = simulate(max(1, args.events // 22), seed=11)
        events, at = res.events, res.decisions[["session_id", "ts"]]
    else:
        events = synthetic_log(args.events)
        rng = np.random.default_rng(1)
        at = events.loc[(events["type"] == "page_view").to_numpy() & (rng.random(len(events)) < 0.3), ["session_id", "ts"]]
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}, "
          f"numpy {np.__version__}, pandas {pd.__version__}")
    print(f"log: {len(events):,} events, {events['session_id'].nunique():,} sessions, {len(at):,} decision points")
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        features_many(at, events=events)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"batch features_many: median {med:.2f} s over {args.repeats} runs -> {len(events) / med:,.0f} events/s "
          f"(goal >= 500,000/s)")

    # Online: cycle through real sessions of the log (not one repeated row).
    sample = events.head(200_000)
    sessions = [g.to_dict("records") for _, g in sample.groupby("session_id", sort=False)]
    sessions = [[{k: v for k, v in e.items() if not (isinstance(v, float) and v != v) and v is not None}
                 for e in sess] for sess in sessions]
    n_ev = sum(len(s) for s in sessions)
    upd, feat = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        states = []
        for sess in sessions:
            st = SessionState(sess[0]["session_id"])
            for e in sess:
                st.update(e)
            states.append(st)
        upd.append((time.perf_counter() - t0) / n_ev * 1e6)
        t0 = time.perf_counter()
        for st in states:
            st.features_one()
        feat.append((time.perf_counter() - t0) / len(states) * 1e6)
    buf = np.zeros(100)
    t0 = time.perf_counter()
    for st in states:
        st.features_into(buf)
    into = (time.perf_counter() - t0) / len(states) * 1e6
    print(f"online update: median {statistics.median(upd):.2f} µs/event over {n_ev:,} events x5 (goal <= 3 µs)")
    print(f"online features_one: median {statistics.median(feat):.2f} µs/call over {len(states):,} sessions x5 "
          f"(goal <= 15 µs); features_into a buffer: {into:.2f} µs")


if __name__ == "__main__":
    main()
