"""The session engine: plays every session event by event, and asks a policy at each decision point.

Where it sits: after :mod:`~nextchannel.simulation.population` has drawn who visits, the engine
plays the sessions one after the other — navigation, hesitation signals, decision points — and at
each decision point it asks a *policy* (:mod:`~nextchannel.simulation.policies`) for an action and
draws the consequences from the true model (:mod:`~nextchannel.simulation.truth`): offer shown,
accepted or dismissed, a contact and its queue wait, success, leaving, purchase. Later decision
points of a session see all of it, whichever policy decided. Open loop (the logging policy of the
config) and closed loop (any policy) are the same engine; only the policy differs.

Randomness: one stream of uniforms ``U()`` and one of normals ``N()`` from the run's seed; a
decision point always consumes one uniform for the policy (used by the built-in policies, ignored
by others), so with the built-in logging policy the stream — and every frame — is exactly what it
was before the closed loop existed.

Examples
--------
>>> from nextchannel.simulation import simulate
>>> res = simulate(50, seed=1, policy="never")
>>> bool((res.decisions["action"] == "none").all())
True
"""

from __future__ import annotations

import itertools
import logging
import math
from bisect import bisect_right
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from nextchannel.errors import PolicyError
from nextchannel.schema import LANGUAGES, PAGE_TYPES
from nextchannel.simulation.config import _RATE_PAIRS, _ROUTES, INTENTS, SimConfig
from nextchannel.simulation.population import Visitors
from nextchannel.simulation.truth import _accept_logit, _p_accept_core, _p_self_core, _p_success_core

__all__ = ["DecisionPoint", "run_sessions"]

logger = logging.getLogger(__name__)

_FORM_FIELDS: tuple[str, ...] = ("email", "address", "postcode", "card_number", "phone", "password")
_FORM_PAGES = frozenset({"checkout", "account", "contact"})

#: Event type codes of the engine's event tuples ``(session, ts, code, s1, s2, x)``.
_ET = {t: i for i, t in enumerate(("session_start", "page_view", "scroll", "idle", "click", "form_error",
                                   "form_submit", "cart_add", "cart_remove", "search", "exit_intent",
                                   "offer_shown", "offer_accepted", "offer_dismissed", "contact_started",
                                   "purchase", "session_end"))}
_ET_NAMES = np.array(list(_ET), dtype=object)


def _stream(draw: Callable[[int], np.ndarray], size: int = 1 << 15) -> Callable[[], float]:
    """A fast scalar draw: ``next()`` over numpy-generated blocks (deterministic for the rng)."""
    def blocks():
        while True:
            yield draw(size).tolist()
    return itertools.chain.from_iterable(blocks()).__next__


def _cum(weights: Mapping[str, float]) -> tuple[list[float], list[str]]:
    keys = list(weights)
    tot = float(sum(weights.values()))
    acc, out = 0.0, []
    for k in keys:
        acc += weights[k] / tot
        out.append(acc)
    out[-1] = 1.0 + 1e-12
    return out, keys


class _World:
    """Per-run lookup tables for the per-event loop (plain lists: fastest for scalar access)."""

    def __init__(self, cfg: SimConfig, rng: np.random.Generator) -> None:
        sims, cat = cfg.channel_sims, cfg.channels
        self.C = len(sims)
        self.live = [cat[c.name].live for c in sims]
        self.human_sign = [1.0 if cat[c.name].human else -1.0 for c in sims]
        self.cost = [float(c.cost) for c in sims]
        self.accept_base = [float(c.accept_base) for c in sims]
        self.device_fit = [[float(x) for x in c.device_fit] for c in sims]
        self.work_pen = [float(c.work_hours_desktop) for c in sims]
        self.open_start = [float(c.open_hours[0]) for c in sims]
        self.open_end = [float(c.open_hours[1]) for c in sims]
        self.open_days = [frozenset(c.open_weekdays) for c in sims]
        self.solve_simple = [float(c.solve_simple) for c in sims]
        self.solve_complex = [float(c.solve_complex) for c in sims]
        self.lang_ok = [[1.0 if lang in c.languages else 0.0 for c in sims] for lang in LANGUAGES]
        off = cfg.service_utc_offset_s
        self.day0_local = math.floor((cfg.epoch_start_s + off) / 86400.0)
        n_slots = (cfg.n_days + 2) * 24
        self.n_slots = n_slots
        ht = np.asarray(cfg.hourly_traffic, dtype=float)
        load_h = ht / ht.mean()
        days = self.day0_local + np.arange(cfg.n_days + 2)
        day_load = np.where((days + 3) % 7 >= 5, cfg.weekend_traffic, 1.0)
        load = (day_load[:, None] * load_h[None, :]).ravel()
        load = load / load.mean()
        # Mean wait per (service-local day, hour) slot and channel: queues grow with load.
        self.slot_wait = []
        for c in sims:
            if c.base_wait_s > 0:
                w = (c.base_wait_s * cfg.queue_scale * load ** cfg.queue_load_power
                     * np.exp(cfg.queue_slot_sd * rng.standard_normal(n_slots) - cfg.queue_slot_sd ** 2 / 2))
                self.slot_wait.append(w.tolist())
            else:
                self.slot_wait.append(None)
        self.routes = {}
        for intent in INTENTS:
            self.routes[intent] = {k: _cum(v) for k, v in _ROUTES[intent].items()}
        self.pages = {pt: [pt] for pt in PAGE_TYPES}
        self.pages["product"] = [f"product/{j}" for j in range(1, 501)]
        self.pages["category"] = [f"category/{j}" for j in range(1, 21)]
        self.pages["help"] = [f"help/{j}" for j in range(1, 41)]
        self.pages["checkout"] = [f"checkout/{j}" for j in range(1, 4)]


class DecisionPoint(NamedTuple):
    """What the engine knows at a decision point; a policy reads what it is entitled to.

    A deployable policy sees the session's events so far (``events[first_event:]``), the customer
    and the channel context; the oracle also reads the latent fields (``need``, the visitor).
    """

    session: int          #: index of the session in the run
    n: int                #: 1 for the session's first decision point, 2 for the second, ...
    ts: float             #: time of the triggering event
    trigger: int          #: 1 page view, 2 idle
    page_type: str        #: type of the current page
    idle_page_s: float    #: idle time on the current page so far
    is_open: list         #: 1.0 / 0.0 per channel
    wait_s: list          #: current queue wait per channel
    allowed: list         #: action indices that are open (0 = none, c + 1 = channel c)
    work_hours: float     #: 1.0 during the visitor's local working hours on a desktop
    need: float           #: latent: 1.0 if the visitor needs help now
    visitor: Any          #: latent: the session's :class:`~nextchannel.simulation.population.Visitor`
    events: list          #: the run's event tuples so far
    first_event: int      #: index of this session's ``session_start`` in ``events``
    u: float              #: a uniform draw for the built-in policies' randomisation


def run_sessions(cfg: SimConfig, world: _World, rng: np.random.Generator, visitors: Visitors,
                 policy: Any) -> tuple[list, list]:
    """Play every session; ``policy.decide(point) -> (action index, propensity)`` at each decision point.

    Returns the events as tuples ``(session, ts, type code, s1, s2, x)`` and the decision points as
    tuples ``(session, ts, trigger, need, complex, work, is_open, wait_s, action, propensity,
    accepted, dismissed, success, left, reward)``; :mod:`~nextchannel.simulation.frames` turns
    them into frames. A policy that raises, or answers with something that is not an action,
    raises :class:`~nextchannel.errors.PolicyError` naming the session and the decision point.
    """
    U = _stream(rng.random)
    N = _stream(rng.standard_normal)
    exp, log = math.exp, math.log
    nan = float("nan")
    C = world.C
    ev: list = []
    add = ev.append
    dec: list = []
    dadd = dec.append
    decide = policy.decide
    sids = visitors.session_ids
    et = _ET
    PV, SCROLL, IDLE, CLICK, FERR, FSUB = et["page_view"], et["scroll"], et["idle"], et["click"], \
        et["form_error"], et["form_submit"]
    CADD, CREM, SEARCH, EXIT, PURCH, END = et["cart_add"], et["cart_remove"], et["search"], \
        et["exit_intent"], et["purchase"], et["session_end"]
    START, SHOWN, ACC, DIS, CONT = et["session_start"], et["offer_shown"], et["offer_accepted"], \
        et["offer_dismissed"], et["contact_started"]
    names = cfg.channels.names
    n_actions = len(names) + 1
    pages = world.pages
    routes = [world.routes[i] for i in INTENTS]
    rate = {k: getattr(cfg, k) for k in _RATE_PAIRS}
    idle_r, back_r, rev_r, help_r = rate["idle_rate"], rate["back_rate"], rate["revisit_rate"], rate["help_rate"]
    ferr_r, crem_r, srch_r, szero_r = rate["form_error_rate"], rate["cart_remove_rate"], rate["search_rate"], \
        rate["search_zero_rate"]
    exit_r, up_r = rate["exit_intent_rate"], rate["scroll_up_rate"]
    idle_med = (cfg.idle_median_s, cfg.problem_idle_median_s)
    dwell_med, dwell_sd, pdf = cfg.dwell_median_s, cfg.dwell_sd, cfg.problem_dwell_factor
    p_dec_pv, p_dec_idle, max_dec = cfg.p_decide_page_view, cfg.p_decide_idle, cfg.max_decisions
    svc_off, day0, n_slots = cfg.service_utc_offset_s, world.day0_local, world.n_slots
    live, slot_wait = world.live, world.slot_wait
    o_start, o_end, o_days = world.open_start, world.open_end, world.open_days
    q_sd = cfg.queue_noise_sd
    q_mu = -q_sd * q_sd / 2
    V, A, Lc = cfg.value_success, cfg.annoyance, cfg.leave_cost
    plu, plc, pla = cfg.p_leave_unresolved, cfg.p_leave_after_contact, cfg.p_leave_annoyed
    ps_simple, ps_complex = cfg.p_self_resolve
    acc_scale, ab_scale = cfg.accept_wait_scale_s, cfg.abandon_wait_scale_s
    nn_logit, cx_logit, oo_logit = cfg.accept_no_need_logit, cfg.complex_human_logit, cfg.opt_out_logit
    mismatch = cfg.lang_mismatch_success
    accept_base, dfit, work_pen, hs = world.accept_base, world.device_fit, world.work_pen, world.human_sign
    solve_s, solve_c, cost = world.solve_simple, world.solve_complex, world.cost
    lang_tab = world.lang_ok
    react_med = cfg.reaction_median_s
    price_med = cfg.price_median
    p_cart_add, p_purchase, p_purchase_help = cfg.p_cart_add, cfg.p_purchase, cfg.p_purchase_after_help
    p_distr_idle, distr_idle_med = cfg.distracted_idle_rate, cfg.distracted_idle_median_s
    cmp_back, cmp_rev = cfg.comparer_back_rate, cfg.comparer_revisit_rate
    extra_mean = cfg.problem_extra_pages

    for vis in visitors:
        # -- the visitor (drawn before the session) and the session's running state -----------
        i = vis.index
        t = vis.start_ts
        first_event = len(ev)
        add((i, t, START, None, None, nan))
        route = routes[vis.intent]
        is_buy = vis.intent == 1
        on = vis.onset
        cx = 1.0 if vis.complex_ else 0.0
        quiet, distracted, comparer = vis.quiet, vis.distracted, vis.comparer
        d = vis.device
        desktop = d == 0
        aff, opt = vis.affinity, vis.opt_out
        lok = lang_tab[vis.language]
        uoff = vis.utc_offset_s
        L = vis.n_pages
        need = 0.0          # the visitor needs help now (a problem arose and is not solved)
        hist: list = []     # pages visited, and their types
        htypes: list = []
        cart = 0.0          # cart value
        n_dec = 0           # decision points so far
        k = 0               # page index
        ended = False
        while k < L:
            # -- navigation: hesitation overrides the route -----------------------------------
            s = 1 if (need and not quiet) else 0
            pb = cmp_back if (comparer and back_r[s] < cmp_back) else back_r[s]
            pr = cmp_rev if (comparer and rev_r[s] < cmp_rev) else rev_r[s]
            u = U()
            nh = len(hist)
            if nh >= 2 and u < pb and hist[-2] != hist[-1]:
                page, pt = hist[-2], htypes[-2]
            elif nh >= 3 and u < pb + pr:
                j = int(U() * (nh - 2))
                page, pt = hist[j], htypes[j]
            elif nh >= 1 and u < pb + pr + help_r[s]:
                pt = "help" if U() < 0.7 else "contact"
                lst = pages[pt]
                page = lst[int(U() * len(lst))]
            else:
                cum, keys = route["start" if nh == 0 else htypes[-1]]
                pt = keys[bisect_right(cum, U())]
                lst = pages[pt]
                page = lst[int(U() * len(lst))]
            hist.append(page)
            htypes.append(pt)
            t += 0.3 + 1.5 * U()
            add((i, t, PV, page, pt, nan))
            idle_page = 0.0
            trig = 0
            # -- a decision point at the page view (before this page's problem arises) --------
            if n_dec < max_dec and U() < p_dec_pv:
                trig = 1
            while True:
                if trig:
                    trig_kind = trig
                    trig = 0
                    n_dec += 1
                    # ---- channel context at t -------------------------------------------------
                    loc = t + svc_off
                    lday = int(loc // 86400.0)
                    hod = (loc - lday * 86400.0) / 3600.0
                    wd = (lday + 3) % 7
                    slot = (lday - day0) * 24 + int(hod)
                    slot = 0 if slot < 0 else (n_slots - 1 if slot >= n_slots else slot)
                    ul = t + uoff
                    uday = int(ul // 86400.0)
                    uh = (ul - uday * 86400.0) / 3600.0
                    work = 1.0 if (desktop and (uday + 3) % 7 < 5 and 9.0 <= uh < 17.0) else 0.0
                    opens = []
                    waits = []
                    allowed = [0]
                    for c in range(C):
                        oc = 1.0 if (wd in o_days[c] and o_start[c] <= hod < o_end[c]) else 0.0
                        opens.append(oc)
                        if oc and live[c] and slot_wait[c] is not None:
                            waits.append(slot_wait[c][slot] * exp(q_sd * N() + q_mu))
                        else:
                            waits.append(0.0)
                        if oc:
                            allowed.append(c + 1)
                    # ---- the policy ---------------------------------------------------------
                    point = DecisionPoint(i, n_dec, t, trig_kind, pt, idle_page, opens, waits, allowed, work,
                                          need, vis, ev, first_event, U())
                    try:
                        a, prop = decide(point)
                    except PolicyError:
                        raise
                    except Exception as err:
                        raise PolicyError(f"the policy raised at session {sids[i]!r} (decision point {n_dec}, "
                                          f"ts={t!r}): {type(err).__name__}: {err}") from err
                    if not (0 <= a < n_actions) or not (0.0 < prop <= 1.0):
                        raise PolicyError(f"the policy must answer an action index in [0, {n_actions}) with a "
                                          f"propensity in (0, 1], got ({a!r}, {prop!r}) at session {sids[i]!r} "
                                          f"(decision point {n_dec})")
                    # ---- the outcome, drawn from the true model -----------------------------
                    p_self = _p_self_core(ps_simple, ps_complex, cx)
                    accepted = dismissed = success = left = False
                    if a == 0:
                        if need:
                            success = U() < p_self
                            left = (not success) and U() < plu
                        reward = V * success - Lc * left
                    else:
                        c = a - 1
                        z = _accept_logit(accept_base[c], aff[c], dfit[c][d], work * work_pen[c], need, cx,
                                          hs[c], 1.0 if opt[c] else 0.0, nn_logit, cx_logit, oo_logit)
                        pa = _p_accept_core(z, opens[c], waits[c], acc_scale, exp)
                        accepted = U() < pa
                        dismissed = not accepted
                        if accepted:
                            if need:
                                ps = _p_success_core(solve_s[c], solve_c[c], cx, lok[c], mismatch, waits[c],
                                                     ab_scale, exp)
                                success = U() < ps
                                left = (not success) and U() < plc
                        elif need:
                            success = U() < p_self
                            left = (not success) and U() < plu
                        else:
                            left = U() < pla
                        reward = V * success - cost[c] * accepted - A * dismissed - Lc * left
                    dadd((i, t, trig_kind, need, cx, work, opens, waits, a, prop, accepted, dismissed,
                          success, left, reward))
                    # ---- the consequences: events the rest of the session sees --------------
                    if a:
                        ch = names[a - 1]
                        t2 = t + 0.5
                        add((i, t2, SHOWN, ch, None, nan))
                        t2 += react_med * exp(0.5 * N())
                        if accepted:
                            add((i, t2, ACC, ch, None, nan))
                            t2 += 1.0 + (waits[a - 1] * exp(0.3 * N()) if live[a - 1] else 0.0)
                            add((i, t2, CONT, ch, None, nan))
                            if success and cart > 0 and U() < p_purchase_help:
                                t2 += 300.0 * exp(0.5 * N())
                                add((i, t2, PURCH, None, None, cart))
                            add((i, t2 + 1.0, END, None, None, nan))
                            ended = True
                            break
                        add((i, t2, DIS, ch, None, nan))
                        t = t2
                    if left:
                        t += 1.0 + 3.0 * U()
                        if U() < 0.6:
                            add((i, t, EXIT, None, None, nan))
                        add((i, t + 0.5, END, None, None, nan))
                        ended = True
                        break
                    if success:
                        need = 0.0  # solved: the hesitation stops
                        on = -2
                    if trig_kind == 2:
                        break  # after an idle: continue the page below
                    # fall through to the page content after a page-view decision
                if k == on:
                    # The problem arises on this page, after its page view.
                    need = 1.0
                    L += int(-log(1.0 - U()) * extra_mean + 0.5) if extra_mean > 0 else 0
                s = 1 if (need and not quiet) else 0
                dwell = dwell_med * exp(dwell_sd * N()) * (pdf if s else 1.0)
                step = dwell * 0.25
                # -- page content ----------------------------------------------------------------
                depth = 0.0
                for _ in range(int(U() * 3.0)):
                    t += step * (0.2 + U())
                    depth = min(1.0, depth + 0.1 + 0.4 * U())
                    add((i, t, SCROLL, None, "up" if U() < up_r[s] else "down", depth))
                if U() < 0.7:
                    t += step * (0.2 + U())
                    add((i, t, CLICK, None, None, nan))
                if pt == "search" or U() < srch_r[s]:
                    t += step * (0.2 + U())
                    nres = 0.0 if U() < szero_r[s] else float(1 + int(U() * 60))
                    add((i, t, SEARCH, None, None, nres))
                if pt == "product" and is_buy and U() < p_cart_add:
                    t += step * (0.2 + U())
                    val = round(price_med * exp(0.6 * N()), 2)
                    cart += val
                    add((i, t, CADD, None, None, val))
                elif pt == "cart" and cart > 0 and U() < crem_r[s]:
                    t += step * (0.2 + U())
                    val = round(cart * (0.2 + 0.6 * U()), 2)
                    cart -= val
                    add((i, t, CREM, None, None, val))
                if pt in _FORM_PAGES:
                    if U() < ferr_r[s]:
                        for _ in range(1 + int(U() * 2.0)):
                            t += step * (0.2 + U())
                            add((i, t, FERR, _FORM_FIELDS[int(U() * 6.0)], None, nan))
                    if U() < 0.6:
                        t += step * (0.2 + U())
                        add((i, t, FSUB, None, None, nan))
                pi = p_distr_idle if (distracted and idle_r[s] < p_distr_idle) else idle_r[s]
                if U() < pi:
                    med = distr_idle_med if (distracted and not s) else idle_med[s]
                    dur = round(med * exp(0.6 * N()), 1)
                    t += dur
                    idle_page += dur
                    add((i, t, IDLE, None, None, dur))
                    if n_dec < max_dec and U() < p_dec_idle:
                        trig = 2
                        continue  # decide now, then finish the page
                break
            if ended:
                break
            if U() < exit_r[1 if (need and not quiet) else 0]:
                t += step * (0.2 + U())
                add((i, t, EXIT, None, None, nan))
            t += step * (0.2 + U())
            if pt == "checkout" and is_buy and not need and U() < p_purchase:
                val = cart if cart > 0 else round(price_med * exp(0.6 * N()), 2)
                add((i, t, PURCH, None, None, val))
                ended = True
                break
            k += 1
        if not ended or ev[-1][2] != END:
            add((i, t + 1.0 + 2.0 * U(), END, None, None, nan))
    return ev, dec
