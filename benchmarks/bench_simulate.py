"""Throughput of the simulator: sessions/s and events/s on one core.

Usage::

    .venv/bin/python benchmarks/bench_simulate.py --sessions 100000

Prints figures; asserts nothing about timings (the machine is shared).
"""

from __future__ import annotations

import argparse
import time

from nextchannel.simulation import SimConfig, simulate, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=100_000, help="sessions to simulate (default 100000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift", choices=["none", "phone_costly", "long_queues", "mobile_heavy", "problem_heavy"],
                    default="none", help="simulate a shifted world")
    args = ap.parse_args()
    cfg = SimConfig() if args.shift == "none" else SimConfig.shifted(args.shift)
    t0 = time.perf_counter()
    res = simulate(args.sessions, seed=args.seed, config=cfg)
    dt = time.perf_counter() - t0
    n_ev, n_dec = len(res.events), len(res.decisions)
    print(f"sessions        {args.sessions:>12,d}")
    print(f"seconds         {dt:>12.2f}")
    print(f"sessions/s      {args.sessions / dt:>12,.0f}")
    print(f"events/s        {n_ev / dt:>12,.0f}")
    print(f"rows: events {n_ev:,d}, decisions {n_dec:,d}, customers {len(res.customers):,d}, "
          f"contacts {len(res.contacts):,d}")
    s = summary(res)
    print(f"events/session {s['events_per_session']:.1f}, decisions/session {s['decisions_per_session']:.2f}, "
          f"problem sessions {s['problem_session_rate']:.3f}, offer rate {s['offer_rate']:.3f}, "
          f"logged value {s['logged_value']:.3f}, oracle value {s['oracle_value']:.3f}")


if __name__ == "__main__":
    main()
