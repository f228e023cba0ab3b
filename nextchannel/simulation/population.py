"""Who visits: customers, their contact history, and every session's visitor drawn before it starts.

Where it sits: first step of a simulation run. Everything here is vectorised and drawn before the
session engine (:mod:`nextchannel.simulation.engine`) plays a single event, so the population of a
seed is the same whichever policy decides in the sessions (open- or closed-loop): only what
happens *inside* the sessions depends on the policy.

Examples
--------
>>> import numpy as np
>>> from nextchannel.simulation import SimConfig
>>> pop = draw_population(SimConfig(), 50, *np.random.SeedSequence(0).spawn(3))
>>> len(pop.visitors.session_ids), pop.visitors.session_ids[0]
(50, 's000000')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple

import numpy as np
import pandas as pd

from nextchannel.schema import DEVICES, LANGUAGES
from nextchannel.simulation.config import AGE_BANDS, SimConfig

__all__ = ["Visitor", "Visitors", "Population", "draw_population"]


class Visitor(NamedTuple):
    """One session's visitor, drawn before the session starts (latent fields included)."""

    index: int            #: position of the session in the run
    start_ts: float       #: session start, epoch seconds UTC
    intent: int           #: index in INTENTS
    onset: int            #: page index at which the problem arises (-1: no problem)
    complex_: bool        #: the problem needs a human
    n_pages: int          #: planned pages
    distracted: bool      #: idles a lot without a problem
    comparer: bool        #: goes back and forth without a problem
    quiet: bool           #: a problem that shows little
    device: int           #: index in DEVICES
    language: int         #: index in LANGUAGES
    affinity: list        #: latent acceptance logit offset per channel
    opt_out: list         #: opted out, per channel
    utc_offset_s: float   #: the visitor's UTC offset
    customer: int         #: index of the known customer, -1 when anonymous


@dataclass(frozen=True, eq=False)
class Visitors:
    """Every session's visitor as columns (arrays of length ``n_sessions``)."""

    session_ids: np.ndarray
    customer_ids: np.ndarray  # object: the session's customer id or None
    start: np.ndarray
    known: np.ndarray
    customer: np.ndarray
    device: np.ndarray
    language: np.ndarray
    affinity: np.ndarray      # (n, n_channels)
    opt_out: np.ndarray       # (n, n_channels)
    referrer: np.ndarray
    returning: np.ndarray
    intent: np.ndarray
    complex_: np.ndarray
    n_pages: np.ndarray
    onset: np.ndarray
    distracted: np.ndarray
    comparer: np.ndarray
    quiet: np.ndarray
    utc_offset_s: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def __iter__(self) -> Iterator[Visitor]:
        """One :class:`Visitor` per session, in order (plain Python values: the engine's scalars)."""
        cols = (range(len(self)), self.start.tolist(), self.intent.tolist(), self.onset.tolist(),
                self.complex_.tolist(), self.n_pages.tolist(), self.distracted.tolist(), self.comparer.tolist(),
                self.quiet.tolist(), self.device.tolist(), self.language.tolist(), self.affinity.tolist(),
                self.opt_out.tolist(), self.utc_offset_s.tolist(), self.customer.tolist())
        return (Visitor._make(v) for v in zip(*cols))


@dataclass(frozen=True, eq=False)
class Population:
    """Customers (with latent affinities), their contact history before the period, the visitors."""

    customers: pd.DataFrame
    contacts: pd.DataFrame
    visitors: Visitors


def draw_population(cfg: SimConfig, n: int, seed_customers: Any, seed_history: Any,
                    seed_sessions: Any) -> Population:
    """Draw customers, contact histories and ``n`` sessions' visitors (three independent streams)."""
    rng_c, rng_h, r = (np.random.default_rng(s) for s in (seed_customers, seed_history, seed_sessions))
    names = cfg.channels.names
    n_cust = max(1, int(round(n * cfg.p_known / cfg.sessions_per_customer))) if n else 0
    cust = _customers(cfg, rng_c, n_cust)
    width = max(6, len(str(max(n_cust, 1))))
    cust_ids = np.array([f"c{j:0{width}d}" for j in range(n_cust)], dtype=object)
    customers = pd.DataFrame({
        "customer_id": pd.array(cust_ids, dtype="str"),
        "age_band": pd.array(np.array(AGE_BANDS, dtype=object)[cust["age"]], dtype="str"),
        "language": pd.array(np.array(LANGUAGES, dtype=object)[cust["lang"]], dtype="str"),
        "device_pref": pd.array(np.array(DEVICES, dtype=object)[cust["dev"]], dtype="str"),
        **{f"affinity_{c}": cust["aff"][:, j] for j, c in enumerate(names)},
        **{f"opt_out_{c}": cust["opt"][:, j] for j, c in enumerate(names)},
    })
    contacts = _contacts(cfg, rng_h, cust, cust_ids)

    # -- sessions, vectorised (the order of draws is part of a seed's meaning: keep it) ---------
    start = _session_starts(cfg, r, n)
    known = (r.random(n) < cfg.p_known) & (n_cust > 0)
    cidx = np.where(known, r.integers(0, max(n_cust, 1), n), -1)
    anon_dev = _choice(r, cfg.device_mix, n)
    use_pref = known & (r.random(n) < cfg.p_device_pref)
    dev = np.where(use_pref, cust["dev"][np.maximum(cidx, 0)] if n_cust else anon_dev, anon_dev)
    anon_lang = _choice(r, cfg.language_mix, n)
    lang = np.where(known, cust["lang"][np.maximum(cidx, 0)] if n_cust else anon_lang, anon_lang)
    anon_age = _choice(r, cfg.age_mix, n)
    anon_aff = _affinity(cfg, r, anon_age, dev)
    aff = np.where(known[:, None], cust["aff"][np.maximum(cidx, 0)] if n_cust else anon_aff, anon_aff)
    opt = np.where(known[:, None], cust["opt"][np.maximum(cidx, 0)] if n_cust else False, False)
    referrer = _choice(r, cfg.referrer_mix, n)
    returning = r.random(n) < np.where(known, cfg.p_returning_known, cfg.p_returning_anonymous)
    intent = _choice(r, cfg.intent_mix, n)
    has_problem = r.random(n) < np.asarray(cfg.problem_rate)[intent]
    cx = r.random(n) < cfg.p_complex
    n_pages = r.geometric(1.0 / np.asarray(cfg.mean_pages)[intent])
    onset = np.where(intent == 2, 0, np.floor(r.random(n) * n_pages).astype(int))
    onset = np.where(has_problem, onset, -1)
    distracted = r.random(n) < cfg.p_distracted
    comparer = r.random(n) < cfg.p_comparer
    quiet = r.random(n) < cfg.p_quiet_problem
    utc_off = np.asarray(cfg.language_utc_offset_s, dtype=float)[lang]

    swidth = max(6, len(str(max(n - 1, 0))))
    sess_ids = np.array([f"s{i:0{swidth}d}" for i in range(n)], dtype=object)
    cust_of_sess = np.where(known, cust_ids[np.maximum(cidx, 0)] if n_cust else None, None).astype(object)
    visitors = Visitors(session_ids=sess_ids, customer_ids=cust_of_sess, start=start, known=known, customer=cidx,
                        device=dev, language=lang, affinity=aff, opt_out=opt, referrer=referrer,
                        returning=returning, intent=intent, complex_=cx, n_pages=n_pages, onset=onset,
                        distracted=distracted, comparer=comparer, quiet=quiet, utc_offset_s=utc_off)
    return Population(customers=customers, contacts=contacts, visitors=visitors)


def _choice(rng: np.random.Generator, p: tuple[float, ...], n: int) -> np.ndarray:
    cum = np.cumsum(np.asarray(p, dtype=float))
    cum /= cum[-1]
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(p) - 1)


def _customers(cfg: SimConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    C = len(cfg.channels)
    age = _choice(rng, cfg.age_mix, n)
    lang = _choice(rng, cfg.language_mix, n)
    dev = _choice(rng, cfg.device_mix, n)
    aff = _affinity(cfg, rng, age, dev)
    opt = rng.random((n, C)) < np.array([c.opt_out_rate for c in cfg.channel_sims])
    return {"age": age, "lang": lang, "dev": dev, "aff": aff, "opt": opt}


def _affinity(cfg: SimConfig, rng: np.random.Generator, age: np.ndarray, dev: np.ndarray) -> np.ndarray:
    sims = cfg.channel_sims
    mean = np.array([c.affinity_mean for c in sims])
    slope = np.array([c.affinity_age_slope for c in sims])
    fit = np.array([c.device_fit for c in sims])  # (C, 3)
    age_c = age - (len(AGE_BANDS) - 1) / 2.0
    return (mean[None, :] + slope[None, :] * age_c[:, None] + cfg.device_pref_affinity * fit[:, dev].T
            + cfg.affinity_sd * rng.standard_normal((len(age), len(sims))))


def _contacts(cfg: SimConfig, rng: np.random.Generator, cust: dict[str, np.ndarray],
              ids: np.ndarray) -> pd.DataFrame:
    n, C = cust["aff"].shape
    sims = cfg.channel_sims
    rate = cfg.history_contacts_mean * np.exp(0.5 * rng.standard_normal(n) - 0.125)
    counts = rng.poisson(rate)
    owner = np.repeat(np.arange(n), counts)
    m = len(owner)
    # Past channel choice follows the customer's latent affinity (opted-out channels rarely).
    w = np.exp(cust["aff"][owner]) * np.where(cust["opt"][owner], 0.1, 1.0)
    cum = np.cumsum(w, axis=1)
    ch = (rng.random(m)[:, None] * cum[:, -1:] > cum).sum(axis=1)
    ch = np.minimum(ch, C - 1)
    p_res = np.array([(1 - cfg.p_complex) * c.solve_simple + cfg.p_complex * c.solve_complex for c in sims])
    resolved = rng.random(m) < p_res[ch]
    aff_used = cust["aff"][owner, ch] if m else np.zeros(0)
    sat = np.clip(np.round(2.2 + 1.8 * resolved + 0.4 * aff_used + 0.8 * rng.standard_normal(m)), 1, 5)
    sat[rng.random(m) < cfg.p_satisfaction_missing] = np.nan
    handling = np.array([c.handling_median_s for c in sims])[ch] * np.exp(0.6 * rng.standard_normal(m))
    ts = cfg.epoch_start_s - rng.random(m) * cfg.history_days * 86400.0 - 1.0
    order = np.lexsort((ts, owner))
    names = np.array(cfg.channels.names, dtype=object)
    return pd.DataFrame({
        "customer_id": pd.array(ids[owner[order]].astype(object), dtype="str"),
        "ts": ts[order],
        "channel": pd.array(names[ch[order]], dtype="str"),
        "resolved": resolved[order],
        "satisfaction": sat[order],
        "handling_s": handling[order],
    })


def _session_starts(cfg: SimConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    off = cfg.service_utc_offset_s
    day0_local = math.floor((cfg.epoch_start_s + off) / 86400.0)
    wd = (day0_local + np.arange(cfg.n_days) + 3) % 7
    day_w = np.where(wd >= 5, cfg.weekend_traffic, 1.0)
    if day_w.sum() <= 0:
        day_w = np.ones(cfg.n_days)
    day = _choice(rng, tuple(day_w / day_w.sum()), n)
    hour = _choice(rng, cfg.hourly_traffic, n)
    local_s = (day0_local + day) * 86400.0 + (hour + rng.random(n)) * 3600.0
    span = cfg.n_days * 86400.0
    ts = cfg.epoch_start_s + np.mod(local_s - off - cfg.epoch_start_s, span)
    return np.sort(ts)
