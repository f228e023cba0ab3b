"""Benchmark of the customer profile: batch rows/s and online µs per call.

Run: ``.venv/bin/python benchmarks/bench_profile.py [--n-at 200000] [--seed 0]``.
Prints figures only (no timing assertions). The online calls cycle through many customers
(each with 5 contacts), not one repeated dict, so caches do not flatter the figure.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from nextchannel.profile import ProfileConfig, history_of, profile_into, profile_one, profiles_many
from nextchannel.schema import ChannelCatalogue

DAY_S = 86400.0


def make_data(n_at: int, contacts_per_customer: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    names = ChannelCatalogue.default().names
    n_cust = max(1, n_at // contacts_per_customer)
    ids = np.array([f"c{i}" for i in range(n_cust)], dtype=object)
    m = n_cust * contacts_per_customer
    sat = rng.integers(1, 6, m).astype(float)
    sat[rng.random(m) < 0.5] = np.nan
    contacts = pd.DataFrame({
        "customer_id": np.repeat(ids, contacts_per_customer),
        "ts": rng.uniform(0, 365 * DAY_S, m).round(),
        "channel": rng.choice(names, m),
        "resolved": rng.random(m) < 0.7,
        "satisfaction": sat,
        "handling_s": rng.exponential(300.0, m),
    }).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cid_at = rng.choice(ids, n_at).astype(object)
    cid_at[rng.random(n_at) < 0.2] = None  # anonymous visitors
    at = pd.DataFrame({"customer_id": cid_at, "ts": rng.uniform(0, 400 * DAY_S, n_at)})
    customers = pd.DataFrame({"customer_id": ids, "opt_out_phone": rng.random(n_cust) < 0.1,
                              "opt_out_email": rng.random(n_cust) < 0.05})
    return at, contacts, customers


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-at", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calls", type=int, default=20_000)
    args = ap.parse_args()

    at, contacts, customers = make_data(args.n_at, 5, args.seed)
    cfg = ProfileConfig()
    profiles_many(at.head(1000), contacts=contacts, customers=customers, config=cfg)  # warm-up
    t = best_of(lambda: profiles_many(at, contacts=contacts, customers=customers, config=cfg), 3)
    print(f"profiles_many: {len(at):,} at-rows, {len(contacts):,} contacts, "
          f"{contacts['customer_id'].nunique():,} customers: {t:.3f} s  ({len(at) / t:,.0f} at-rows/s)")

    # Online: 1000 distinct customers with 5 contacts each, cycled.
    ids = contacts["customer_id"].drop_duplicates().head(1000).tolist()
    dicts = [history_of(cid, contacts=contacts, customers=customers) for cid in ids]
    as_of = 400 * DAY_S
    n = args.calls
    seq = [dicts[i % len(dicts)] for i in range(n)]
    buf = np.zeros(64)

    def run_one() -> None:
        for d in seq:
            profile_one(d, as_of, cfg)

    def run_into() -> None:
        for d in seq:
            profile_into(buf, 3, d, as_of, cfg)

    t_one = best_of(run_one, 3)
    t_into = best_of(run_into, 3)
    print(f"profile_one  (5 contacts, cycling {len(dicts)} customers): {t_one / n * 1e6:.2f} µs/call")
    print(f"profile_into (5 contacts, cycling {len(dicts)} customers): {t_into / n * 1e6:.2f} µs/call")
    t_anon = best_of(lambda: [profile_into(buf, 3, None, as_of, cfg) for _ in range(n)], 3)
    print(f"profile_into (anonymous): {t_anon / n * 1e6:.2f} µs/call")


if __name__ == "__main__":
    main()
