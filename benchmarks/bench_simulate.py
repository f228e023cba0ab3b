"""Throughput of the simulator, open loop and closed loop: sessions/s on one core.

Usage::

    .venv/bin/python benchmarks/bench_simulate.py --sessions 100000                 # open loop
    .venv/bin/python benchmarks/bench_simulate.py --sessions 20000 --policy scorer  # default bundle deciding live

``--policy scorer`` runs the closed loop with the default bundle's :class:`~nextchannel.scorer.Scorer`
deciding at every decision point (fast path, no reasons), and splits the time into the scorer's
``decide_one``, feeding the live ``SessionState`` and building the customer/context dicts (the
deployment's side of a request), and the world (everything else). Prints figures; asserts nothing
about timings (the machine is shared).
"""

from __future__ import annotations

import argparse
import time

from nextchannel import Scorer
from nextchannel.simulation import SimConfig, simulate, summary
from nextchannel.simulation import policies as _policies


class _Timed:
    """A policy wrapper that adds up the time spent inside the wrapped ``decide_one``."""

    def __init__(self, inner: object) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0
        self.actions = inner.actions
        self.fallbacks = getattr(inner, "fallbacks", None)

    def decide_one(self, state, customer=None, context=None, now=None):
        t0 = time.perf_counter()
        d = self.inner.decide_one(state, customer=customer, context=context, now=now)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=100_000, help="sessions to simulate (default 100000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift", choices=["none", "phone_costly", "long_queues", "mobile_heavy", "problem_heavy"],
                    default="none", help="simulate a shifted world")
    ap.add_argument("--policy", default="logging",
                    help="logging (open loop), never, rule, oracle, or scorer (the default bundle, live)")
    args = ap.parse_args()
    cfg = SimConfig() if args.shift == "none" else SimConfig.shifted(args.shift)
    timed = None
    policy: object = args.policy
    feed = {"s": 0.0}
    if args.policy == "scorer":
        timed = _Timed(Scorer.load(n_reasons=0))
        policy = timed
        orig = _policies.DeployedPolicy.decide

        def decide(self, p):  # time the deployment's whole side: SessionState feeding + dicts + scorer
            t0 = time.perf_counter()
            out = orig(self, p)
            feed["s"] += time.perf_counter() - t0
            return out

        _policies.DeployedPolicy.decide = decide
    t0 = time.perf_counter()
    res = simulate(args.sessions, seed=args.seed, config=cfg, policy=policy)
    dt = time.perf_counter() - t0
    n_ev, n_dec = len(res.events), len(res.decisions)
    print(f"policy          {'default bundle, live' if timed else res.policy:>12s}")
    print(f"sessions        {args.sessions:>12,d}")
    print(f"seconds         {dt:>12.2f}")
    print(f"sessions/s      {args.sessions / dt:>12,.0f}")
    print(f"events/s        {n_ev / dt:>12,.0f}")
    print(f"rows: events {n_ev:,d}, decisions {n_dec:,d}, customers {len(res.customers):,d}, "
          f"contacts {len(res.contacts):,d}")
    if timed is not None:
        side = feed["s"]
        print(f"time in the scorer's decide_one: {timed.seconds:.2f} s = {timed.seconds / dt:.1%} of the run "
              f"({timed.seconds / max(timed.calls, 1) * 1e6:.1f} us per decision, {timed.calls:,d} decisions)")
        print(f"time on the deployment's side (SessionState feeding, customer/context dicts, decide_one): "
              f"{side:.2f} s = {side / dt:.1%}; the world: {dt - side:.2f} s = {(dt - side) / dt:.1%}")
    s = summary(res)
    print(f"events/session {s['events_per_session']:.1f}, decisions/session {s['decisions_per_session']:.2f}, "
          f"problem sessions {s['problem_session_rate']:.3f}, offer rate {s['offer_rate']:.3f}, "
          f"logged value {s['logged_value']:.3f}, oracle value {s['oracle_value']:.3f}, "
          f"realised value per session {res.sessions['reward'].mean():.3f}")


if __name__ == "__main__":
    main()
