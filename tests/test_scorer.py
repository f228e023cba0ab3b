"""Tests of nextchannel.scorer: the fast per-request path equals its pandas twin and the batch path,
LightGBM's own predictions equal the single-row C API's, every input form gives the same decision,
malformed signals never take the site down, threads and hot reloads never mix answers, reloads do
not leak LightGBM handles, and importing the scorer stays light.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextchannel.errors import BundleError, NextChannelError, ValidationError
from nextchannel.fastpredict import live_handles
from nextchannel.features import SESSION_FEATURES, SessionState
from nextchannel.modelset import DEFAULT_BUNDLE, ModelSet
from nextchannel.policy import Decision
from nextchannel.profile import history_of
from nextchannel.schema import EVENT_FIELDS, LANGUAGES
from nextchannel.scorer import Scorer, decision_uniform
from nextchannel.simulation import simulate
from nextchannel.training import TrainConfig, train

TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# Decision points of a simulation, as a web backend would hold them
# ---------------------------------------------------------------------------------------------
class Case(NamedTuple):
    """One decision point in every form the scorer takes."""

    state: SessionState          # replayed events with ts <= the decision's ts
    customer: dict | None        # history_of(cid, contacts=..., customers=...)
    context: dict                # flat open_/wait_/lang_ok_ from the decision row
    now: float
    session_id: str
    events: list                 # the replayed events, as plain dicts
    row: int                     # position in sim.decisions


def _clean(e: dict) -> dict:
    """An event dict without its missing fields (what a browser would send)."""
    return {k: v for k, v in e.items() if v is not None and not (isinstance(v, float) and v != v)
            and v is not pd.NA}


def _cases(sim: Any, channels: tuple[str, ...]) -> list[Case]:
    by_session = {sid: [_clean(e) for e in g.to_dict("records")]
                  for sid, g in sim.events.groupby("session_id", sort=False)}
    customers: dict[str, dict] = {}
    out = []
    for i, r in enumerate(sim.decisions.to_dict("records")):
        sid, now = r["session_id"], float(r["ts"])
        events = [e for e in by_session.get(sid, []) if e["ts"] <= now]
        state = SessionState(sid).update_many(events)
        ctx: dict[str, Any] = {}
        for c in channels:
            ctx[f"open_{c}"] = bool(r[f"open_{c}"])
            ctx[f"wait_{c}_s"] = float(r[f"wait_{c}_s"])
            ctx[f"lang_ok_{c}"] = bool(r[f"lang_ok_{c}"])
        cid = r["customer_id"]
        customer = None
        if isinstance(cid, str) and cid:
            if cid not in customers:
                customers[cid] = history_of(cid, contacts=sim.contacts, customers=sim.customers)
            customer = customers[cid]
        out.append(Case(state, customer, ctx, now, sid, events, i))
    return out


def _args(c: Case) -> tuple:
    return c.state, c.customer, c.context, c.now


def _scorer_with(ms: ModelSet, *, policy: dict | None = None, **kwargs: Any) -> Scorer:
    """A scorer on the same models with another policy (exploration, margins...)."""
    if policy:
        ms = ModelSet(ms.channel_model, ms.value_model, ms.offer_model,
                      dataclasses.replace(ms.policy, **policy), ms.profile_config, ms.meta)
    return Scorer(ms, **kwargs)


@pytest.fixture(scope="module")
def default_set() -> ModelSet:
    return ModelSet.load(DEFAULT_BUNDLE)


@pytest.fixture(scope="module")
def sim():
    return simulate(300, seed=11)


@pytest.fixture(scope="module")
def cases(sim, default_set) -> list[Case]:
    return _cases(sim, default_set.policy.channels.names)


@pytest.fixture(scope="module")
def scorer(default_set) -> Scorer:
    return Scorer(default_set)


def _assert_same(a: Decision, b: Decision, where: str) -> None:
    """Equal decisions: identical discrete parts, scores within TOL."""
    assert (a.action, a.offer, a.channel, a.propensity, a.model_version, a.reasons, a.why_not, a.fallback) == \
        (b.action, b.offer, b.channel, b.propensity, b.model_version, b.reasons, b.why_not, b.fallback), where
    assert set(a.ev) == set(b.ev), where
    for k in a.ev:
        assert abs(a.ev[k] - b.ev[k]) <= TOL, (where, k, a.ev[k], b.ev[k])
    assert abs(a.offer_score - b.offer_score) <= TOL, (where, a.offer_score, b.offer_score)


def _row_decision(r: Any, actions: tuple[str, ...], version: str) -> Decision:
    """A decide_many row as a Decision (joined phrases split back)."""
    channel = None if (r["channel"] is None or (not isinstance(r["channel"], str) and pd.isna(r["channel"]))) \
        else r["channel"]
    return Decision(action=r["action"], offer=bool(r["offer"]), channel=channel,
                    ev={a: float(r[f"ev_{a}"]) for a in actions}, offer_score=float(r["offer_score"]),
                    propensity=float(r["propensity"]), model_version=version,
                    reasons=tuple(x for x in str(r["reasons"]).split(" | ") if x),
                    why_not=tuple(x for x in str(r["why_not"]).split(" | ") if x))


# ---------------------------------------------------------------------------------------------
# 1. Exact: fast path = plain path = batch path; FastBooster = Booster.predict
# ---------------------------------------------------------------------------------------------
CONFIGS = [
    pytest.param({}, "offers", id="greedy-offers"),
    pytest.param({}, "all", id="greedy-all"),
    pytest.param({"exploration": "epsilon", "epsilon": 0.3}, "offers", id="epsilon-offers"),
    pytest.param({"exploration": "epsilon", "epsilon": 0.3}, "all", id="epsilon-all"),
    pytest.param({"exploration": "softmax", "temperature": 0.5}, "offers", id="softmax-offers"),
    pytest.param({"exploration": "softmax", "temperature": 0.5}, "all", id="softmax-all"),
]


@pytest.mark.parametrize("policy, reasons", CONFIGS)
def test_decide_one_equals_plain_and_many(default_set, sim, cases, policy, reasons):
    sc = _scorer_with(default_set, policy=policy, reasons=reasons, seed=7)
    fast = [sc.decide_one(*_args(c)) for c in cases]
    assert not any(d.fallback for d in fast)
    assert sum(d.offer for d in fast) >= 5, "the simulation should give some offers"
    if policy:
        assert sum(d.propensity < 1 for d in fast) >= len(fast) // 2
        assert sum(d.offer and d.propensity < 1 for d in fast) >= 3
    if reasons == "all":
        assert sum(bool(d.reasons) for d in fast if not d.offer) >= 5

    many = sc.decide_many(sim.decisions, events=sim.events, customers=sim.customers, contacts=sim.contacts)
    assert len(many) == len(cases)
    for c, d, (_, r) in zip(cases, fast, many.iterrows()):
        _assert_same(d, _row_decision(r, sc.actions, d.model_version), f"decide_many row {c.row}")
        assert r["model_version"] == d.model_version

    # the pandas twin is slow (Booster.predict per row): the offers, the explored and a spread of others
    rng = np.random.default_rng(len(policy) + len(reasons))
    interesting = [i for i, d in enumerate(fast) if d.offer or d.propensity < 1 or d.why_not]
    pick = sorted(set(rng.choice(interesting, size=min(12, len(interesting)), replace=False).tolist())
                  | set(rng.choice(len(cases), size=6, replace=False).tolist()))
    for i in pick:
        _assert_same(fast[i], sc.decide_one_plain(*_args(cases[i])), f"decide_one_plain case {i}")


def test_a_prepared_customer_decides_as_the_dict(default_set, cases):
    """A session's customer prepared once (Scorer.prepare_customer) gives the decisions of the dict on
    every request, reasons included; so does the profile updated with a contact (with_contact) versus
    the dict with that contact appended."""
    sc = Scorer(default_set, reasons="all")
    known = [c for c in cases if c.customer]
    assert len(known) >= 20
    for c in known:
        prepared = sc.prepare_customer(c.customer)
        _assert_same(sc.decide_one(c.state, prepared, c.context, c.now), sc.decide_one(*_args(c)), f"case {c.row}")
        contact = {"ts": c.now - 60.0, "channel": "chat", "resolved": False}
        grown = {**c.customer, "contacts": [*c.customer.get("contacts", []), contact]}
        _assert_same(sc.decide_one(c.state, prepared.with_contact(contact), c.context, c.now),
                     sc.decide_one(c.state, grown, c.context, c.now), f"case {c.row} after a contact")


def test_decisions_are_reproducible_and_seeded(default_set, cases):
    """Exploration draws come from decision_uniform(seed, session_id, ts) and nothing else."""
    a = _scorer_with(default_set, policy={"exploration": "epsilon", "epsilon": 0.5}, seed=1)
    b = _scorer_with(default_set, policy={"exploration": "epsilon", "epsilon": 0.5}, seed=1)
    c = _scorer_with(default_set, policy={"exploration": "epsilon", "epsilon": 0.5}, seed=2)
    da = [a.decide_one(*_args(x)) for x in cases[:150]]
    assert da == [b.decide_one(*_args(x)) for x in cases[:150]]
    assert da == [a.decide_one(*_args(x)) for x in cases[:150]]
    assert [d.action for d in da] != [c.decide_one(*_args(x)).action for x in cases[:150]]
    u = decision_uniform(1, "s1", 5.0)
    assert 0.0 <= u < 1.0 and u == decision_uniform(1, "s1", 5) and u != decision_uniform(2, "s1", 5.0)


def _random_rows(rng: np.random.Generator, n: int, p: int) -> np.ndarray:
    """Rows LightGBM must agree on: wide scales, NaN, +-1e30, zeros, small integer codes."""
    X = rng.normal(size=(n, p)) * (10.0 ** rng.uniform(-2, 4, size=p))
    u = rng.random((n, p))
    X[u < 0.15] = rng.integers(-1, 12, size=int((u < 0.15).sum()))  # categorical codes
    X[(u >= 0.15) & (u < 0.20)] = 0.0
    X[(u >= 0.20) & (u < 0.205)] = 1e30
    X[(u >= 0.205) & (u < 0.21)] = -1e30
    X[u >= 0.90] = np.nan
    return X


def test_lazy_reasons_equal_eager_ones_read_in_any_thread_later(default_set, sim, cases):
    """Reasons are computed when read, from the decision's own copy of its row: read at once, read
    after other requests reused the buffers, or read in other threads, they equal decide_many's."""
    sc = Scorer(default_set, reasons="all")
    logs = {"events": sim.events, "customers": sim.customers, "contacts": sim.contacts}
    many = sc.decide_many(sim.decisions, **logs)
    assert many.equals(Scorer(default_set, reasons="all", n_jobs=2).decide_many(sim.decisions, **logs))
    eager = [tuple(x for x in str(r).split(" | ") if x) for r in many["reasons"]]
    at_once = [sc.decide_one(*_args(c)).reasons for c in cases]
    later = [sc.decide_one(*_args(c)) for c in cases]
    assert all(callable(vars(d)["_reasons"]) for d in later if d.offer)   # not computed until read
    read: dict[int, tuple] = {}

    def reader(part: int) -> None:
        for i in range(part, len(later), 3):
            read[i] = later[i].reasons

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert at_once == eager == [read[i] for i in range(len(later))]
    assert sum(bool(r) for r in eager) >= len(eager) // 2
    # the phrases name the value models' inputs, the channel context included
    assert any(p.startswith(tuple(default_set.policy.channels.names)) for r in eager for p in r)


def test_the_model_stack_equals_lightgbm_predict(scorer, default_set):
    """One evaluation of all the models (the stack) = each model's own Booster.predict, on 100k rows
    with NaN, zeros, category codes and +-1e30; batch and single-row."""
    rng = np.random.default_rng(2024)
    c = scorer._c
    boosters = list(default_set.value_model.boosters_) + [default_set.offer_model.booster_]
    assert c.stack.num_models == len(c.actions) + 1 and c.stack.num_features == c.n_row
    X = _random_rows(rng, 100_000, c.n_row)
    ref = np.column_stack([b.predict(X[:, :b.num_feature()], num_threads=1) for b in boosters])
    assert np.isfinite(ref).all()
    got = c.stack.predict_many(X)
    assert np.max(np.abs(got - ref)) <= TOL
    st = c.buffers()
    for i in range(0, 100_000, 40):  # 2,500 single rows through the scorer's own per-thread predictor
        st.row[:] = X[i]
        assert np.max(np.abs(np.array(c.stack.finish_one(st.stack_p())) - ref[i])) <= TOL, i
    # the leaves behind the reasons are LightGBM's, and their path contributions add up to the EV gaps
    rows = X[:2000]
    leaves = c.stack.leaf.predict_many(rows).astype(np.int64)
    n_iter = c.stack.num_iterations
    for k, b in enumerate(boosters):
        own = b.predict(rows[:, :b.num_feature()], pred_leaf=True, num_threads=1).reshape(len(rows), -1)
        assert np.array_equal(leaves.reshape(len(rows), n_iter, -1)[:, :own.shape[1], k], own)
    first, second = rng.integers(0, len(c.actions), 2000), rng.integers(0, len(c.actions), 2000)
    diff = c.paths.difference(leaves, first, second)
    gap = ref[np.arange(2000), first] - ref[np.arange(2000), second]
    root = c.paths.root[first] - c.paths.root[second]
    assert np.max(np.abs(diff.sum(axis=1) + root - gap)) <= 1e-6


# ---------------------------------------------------------------------------------------------
# 2. Input forms
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", [{}, {"exploration": "epsilon", "epsilon": 0.4}], ids=["greedy", "epsilon"])
def test_session_forms_give_the_same_decision(default_set, cases, policy):
    sc = _scorer_with(default_set, policy=policy, reasons="all")
    n_offers = 0
    for c in cases[::4]:
        ref = sc.decide_one(*_args(c))
        assert ref.fallback is None
        n_offers += ref.offer
        replayed = sc.decide_one({"session_id": c.session_id, "events": c.events}, c.customer, c.context, c.now)
        feats = dict(c.state.features_one(c.now), ts=c.now, session_id=c.session_id)
        from_features = sc.decide_one(feats, c.customer, c.context)
        from_features_now = sc.decide_one(dict(feats, ts=-1.0), c.customer, c.context, now=c.now)
        assert replayed == ref
        assert from_features == ref
        assert from_features_now == ref
    assert n_offers >= 3
    c = next(c for c in cases if sc.decide_one(*_args(c)).offer)
    feats = dict(c.state.features_one(c.now), ts=c.now, session_id=c.session_id)
    assert sc.decide_one_plain(feats, c.customer, c.context) == sc.decide_one(feats, c.customer, c.context)


def _open_case(scorer: Scorer, cases: list[Case], language: bool = False) -> Case:
    """A case where no contact rule blocks every offer (so per-channel eligibility shows)."""
    for c in cases:
        d = scorer.decide_one(c.state, c.customer, {}, c.now)
        lang = c.state.features_one(c.now)["language"]
        if not any(w.startswith("all:") for w in d.why_not) and (not language or 0 <= lang < len(LANGUAGES) - 1):
            return c
    raise AssertionError("no suitable case in the simulation")


def test_context_forms(scorer, cases):
    c = _open_case(scorer, cases, language=True)
    lang = LANGUAGES[int(c.state.features_one(c.now)["language"])]
    other = next(x for x in LANGUAGES if x != lang)

    def d(ctx: dict) -> Decision:
        out = scorer.decide_one(c.state, c.customer, ctx, c.now)
        assert out.fallback is None
        return out

    base = d({})
    assert not any(w.startswith("chat:") for w in base.why_not)
    closed = d({"open_chat": False})
    assert "chat: closed" in closed.why_not
    assert d({"chat": {"open": False}}) == closed
    assert d({"chat": {"open": True}}) == base == d({"open_chat": True})
    long_wait = d({"wait_chat_s": 400.0, "wait_phone_s": 30.0})
    assert any(w.startswith("chat: wait 400 s") for w in long_wait.why_not)
    assert d({"chat": {"wait_s": 400.0}, "wait_phone_s": 30.0}) == long_wait
    assert d({"chat": {"wait_s": 400.0}, "phone": {"wait_s": 30}}) == long_wait
    # languages served: a list instead of lang_ok
    not_served = d({"lang_ok_chat": False})
    assert f"chat: language {lang!r} not served" in not_served.why_not
    assert d({"languages_chat": [other]}) == not_served
    assert d({"chat": {"languages": [other]}}) == not_served
    assert d({"languages_chat": [other, lang]}) == base
    assert d({"chat": {"languages": [lang]}}) == base
    # mixed nested and flat, every channel
    flat = {"open_phone": False, "lang_ok_email": False, "wait_callback_s": 2000.0}
    nested = {"phone": {"open": False}, "email": {"languages": [other]}, "callback": {"wait_s": 2000.0}}
    mixed = d(flat)
    assert {"phone: closed", f"email: language {lang!r} not served"} <= set(mixed.why_not)
    assert any(w.startswith("callback: wait") for w in mixed.why_not)
    assert d(nested) == mixed
    assert scorer.decide_one_plain(c.state, c.customer, nested, c.now) == mixed


# ---------------------------------------------------------------------------------------------
# 3. Never take the site down
# ---------------------------------------------------------------------------------------------
_CHANNELS = ("chat", "callback", "phone", "email", "messaging", "self_service")
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from(["nan", "inf", "-1", "1e400", "chat", "en", "checkout", "", "desktop"]),
)
_junk = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                     max_leaves=5)
_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e4, 2e9), _scalar)
_event = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(sorted(EVENT_FIELDS)), _junk), "ts": st.one_of(st.floats(0, 1e4), _number)},
    optional={"session_id": st.one_of(st.just("s"), _junk),
              **{f: st.one_of(_junk, st.sampled_from(["checkout", "/cart", "up", "en", "mobile", "c1"]))
                 for fields in EVENT_FIELDS.values() for f in fields}})


def _state_of(events: list) -> SessionState:
    """A lenient SessionState fed random events (a lenient update must never raise)."""
    s = SessionState("s")
    for e in events:
        s.update(e)
    return s


_session = st.one_of(
    _junk,
    st.builds(_state_of, st.lists(_event, max_size=6)),
    st.fixed_dictionaries({"events": st.one_of(st.lists(st.one_of(_event, _junk), max_size=6), _junk)},
                          optional={"session_id": st.one_of(st.just("s"), _junk)}),
    st.dictionaries(st.sampled_from(SESSION_FEATURES + ("ts", "session_id")),
                    st.one_of(_number, st.floats(0, 10)), max_size=12),
)
_contact = st.one_of(_junk, st.fixed_dictionaries(
    {}, optional={"ts": st.one_of(st.floats(0, 2e9), _number), "channel": st.one_of(st.sampled_from(_CHANNELS), _junk),
                  "resolved": st.one_of(st.booleans(), _junk), "satisfaction": st.one_of(st.floats(1, 5), _junk),
                  "handling_s": _number}))
_customer = st.one_of(_junk, st.fixed_dictionaries(
    {}, optional={"customer_id": st.one_of(st.just("c1"), _junk),
                  "contacts": st.one_of(st.lists(_contact, max_size=4), _junk),
                  "opt_out": st.one_of(st.lists(st.one_of(st.sampled_from(_CHANNELS), _junk), max_size=3), _junk),
                  "opt_out_chat": _junk}))
_ctx_key = st.one_of(st.sampled_from([f"{k}_{c}{s}" for c in _CHANNELS for k, s in
                                      (("open", ""), ("wait", "_s"), ("lang_ok", ""), ("languages", ""))]),
                     st.sampled_from(_CHANNELS), st.text(max_size=5))
_ctx_value = st.one_of(
    _junk, _number, st.floats(-100, 5000), st.lists(st.sampled_from(LANGUAGES), max_size=3),
    st.fixed_dictionaries({}, optional={"open": _junk, "wait_s": st.one_of(st.floats(-10, 5000), _number),
                                        "languages": st.one_of(st.lists(st.sampled_from(LANGUAGES)), _junk)}))
_context = st.one_of(_junk, st.dictionaries(_ctx_key, _ctx_value, max_size=6))
_now = st.one_of(st.none(), st.floats(0, 2e9), _number, _junk)


def _check_safe(sc: Scorer, strict_sc: Scorer, args: tuple) -> Decision:
    before = sum(sc.fallbacks.values())
    d = sc.decide_one(*args)  # must not raise, whatever the input
    after = sum(sc.fallbacks.values())
    assert isinstance(d, Decision)
    assert set(d.ev) == set(sc.actions)
    if d.fallback is None:
        assert after == before
        assert d.action in sc.actions and d.offer == (d.action != "none")
        assert d.channel == (d.action if d.offer else None)
        assert all(math.isfinite(v) for v in d.ev.values()), d.ev
        assert math.isfinite(d.offer_score) and 0 < d.propensity <= 1
    else:
        assert after == before + 1
        assert isinstance(d.fallback, str) and d.fallback
        assert (d.action, d.offer, d.channel, d.propensity, d.reasons) == ("none", False, None, 1.0, ())
        with pytest.raises(NextChannelError):
            strict_sc.decide_one(*args)
    return d


@pytest.fixture(scope="module")
def fuzz_scorers(default_set) -> tuple[Scorer, Scorer]:
    return Scorer(default_set, reasons="all"), Scorer(default_set, strict=True, reasons="all")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(session=_session, customer=_customer, context=_context, now=_now)
def test_fuzz_decide_one_never_raises(fuzz_scorers, session, customer, context, now):
    _check_safe(*fuzz_scorers, (session, customer, context, now))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_fuzz_one_bad_part_of_a_good_request(fuzz_scorers, cases, data):
    """A real decision point with one argument replaced by garbage: safe, and fine when ignorable."""
    c = cases[data.draw(st.integers(0, len(cases) - 1))]
    args = list(_args(c))
    k = data.draw(st.integers(0, 3))
    args[k] = data.draw([_session, _customer, _context, _now][k])
    _check_safe(*fuzz_scorers, tuple(args))


BAD_REQUESTS = [
    pytest.param(lambda c: (42, c.customer, c.context, c.now), "session", id="session-int"),
    pytest.param(lambda c: (None, c.customer, c.context, c.now), "session", id="session-none"),
    pytest.param(lambda c: ([1, 2], c.customer, c.context, c.now), "session", id="session-list"),
    pytest.param(lambda c: ({"form_errors": 1.0}, c.customer, c.context, None), "now", id="features-no-ts"),
    pytest.param(lambda c: ({"form_errors": "many", "ts": 1.0}, c.customer, c.context, None), "form_errors",
                 id="features-string"),
    pytest.param(lambda c: ({"form_errors": math.inf, "ts": 1.0}, c.customer, c.context, None), "form_errors",
                 id="features-inf"),
    pytest.param(lambda c: (c.state, c.customer, c.context, math.nan), "now", id="now-nan"),
    pytest.param(lambda c: (c.state, c.customer, c.context, math.inf), "now", id="now-inf"),
    pytest.param(lambda c: (c.state, c.customer, c.context, "soon"), "now", id="now-string"),
    pytest.param(lambda c: (c.state, c.customer, {"wait_chat_s": -3}, c.now), "wait_chat_s must be a finite number >= 0",
                 id="wait-negative"),
    pytest.param(lambda c: (c.state, c.customer, {"wait_chat_s": math.inf}, c.now), "wait_chat_s must be a finite",
                 id="wait-inf"),
    pytest.param(lambda c: (c.state, c.customer, {"wait_chat_s": "long"}, c.now), "wait_chat_s must be a finite",
                 id="wait-string"),
    pytest.param(lambda c: (c.state, c.customer, {"wait_chat_s": True}, c.now), "wait_chat_s must be a finite",
                 id="wait-bool"),
    pytest.param(lambda c: (c.state, c.customer, {"chat": {"wait_s": -1}}, c.now),
                 r"context\['chat'\]\['wait_s'\] must be a finite", id="wait-negative-nested"),
    pytest.param(lambda c: (c.state, c.customer, {"open_phone": "maybe"}, c.now), "open_phone must be a boolean",
                 id="open-string"),
    pytest.param(lambda c: (c.state, c.customer, {"languages_chat": "english-only"}, c.now),
                 "languages_chat must be a list of language codes", id="languages-string"),
    pytest.param(lambda c: (c.state, c.customer, [1, 2], c.now), "context", id="context-list"),
    pytest.param(lambda c: (c.state, c.customer, 3, c.now), "context", id="context-int"),
    pytest.param(lambda c: ({"session_id": "s", "events": None}, c.customer, c.context, c.now), "session",
                 id="events-none"),
]


@pytest.mark.parametrize("make, match", BAD_REQUESTS)
def test_bad_requests_fall_back_or_raise_in_strict_mode(default_set, cases, make, match):
    lenient, strict = Scorer(default_set), Scorer(default_set, strict=True)
    args = make(cases[5])
    d = lenient.decide_one(*args)
    assert d.fallback is not None and d.fallback.startswith("malformed signals")
    assert d.action == "none" and not d.offer and d.propensity == 1.0
    assert all(v != v for v in d.ev.values())
    assert sum(lenient.fallbacks.values()) == 1 and lenient.fallbacks["malformed signals"] == 1
    with pytest.raises(ValidationError, match=match):
        strict.decide_one(*args)
    assert lenient.decide_one_plain(*args).fallback is not None
    with pytest.raises(ValidationError):
        strict.decide_one_plain(*args)


def test_feature_dicts_refuse_infinite_values_and_take_huge_ones(default_set):
    """+-inf in a backend's feature dict is malformed (it once crashed the reasons' phrases outside
    the safety net); huge finite values are numbers and get phrased."""
    sc, strict = Scorer(default_set, reasons="all"), Scorer(default_set, reasons="all", strict=True)
    for name in SESSION_FEATURES:
        for v in (math.inf, -math.inf):
            d = sc.decide_one({name: v, "ts": 100.0})
            assert d.fallback is not None and repr(name) in d.fallback
            assert sc.decide_one_plain({name: v, "ts": 100.0}).fallback is not None
            with pytest.raises(ValidationError, match=repr(name)):
                strict.decide_one({name: v, "ts": 100.0})
    assert sc.fallbacks["malformed signals"] == 4 * len(SESSION_FEATURES)
    for big in (1e300, -1e300):
        # no contact rule blocking every channel: with nothing else eligible there is no runner-up to explain
        unblocked = {"contacts_started": 0.0, "offers_shown": 0.0, "time_since_dismiss_s": math.nan}
        d = sc.decide_one(dict.fromkeys(SESSION_FEATURES, big) | unblocked | {"ts": 100.0},
                          context={"wait_chat_s": 1e300})
        assert d.fallback is None and d.reasons and all(math.isfinite(v) for v in d.ev.values())


def test_lenient_scorer_skips_malformed_events_and_contacts(scorer, cases):
    """Bad items inside a session or a contact history are skipped, not fatal (the web default)."""
    c = next(c for c in cases if c.customer and c.customer["contacts"])
    ref = scorer.decide_one({"session_id": c.session_id, "events": c.events}, c.customer, c.context, c.now)
    noisy_events = [{"type": "teleport", "ts": 1.0}, "garbage", None] + c.events + [{"type": "click", "ts": math.nan}]
    noisy_customer = dict(c.customer, contacts=[{"ts": "yesterday"}, 5] + c.customer["contacts"])
    got = scorer.decide_one({"session_id": c.session_id, "events": noisy_events}, noisy_customer, c.context, c.now)
    assert got == ref and got.fallback is None


# ---------------------------------------------------------------------------------------------
# 4. Threads
# ---------------------------------------------------------------------------------------------
def test_threads_give_the_serial_answers(default_set, cases):
    sc = Scorer(default_set)
    prepared = [_args(c) for c in cases[:300]]
    snapshot = np.array([list(c.state.features_one(c.now).values()) for c in cases[:300]])
    expected = [sc.decide_one(*a) for a in prepared]
    assert sum(d.offer for d in expected) >= 5 and not any(d.fallback for d in expected)
    n_threads, n_calls, n = 8, 20_000, len(prepared)
    errors: list[str] = []
    counts = [0] * n_threads
    start = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            decide = sc.decide_one
            bad = 0
            start.wait()
            for k in range(n_calls):
                i = (k * (2 * t + 1) + 37 * t) % n  # each thread its own order through the inputs
                if decide(*prepared[i]) != expected[i]:
                    bad += 1
                    if bad <= 3:
                        errors.append(f"thread {t} call {k} input {i}: {decide(*prepared[i])} != {expected[i]}")
            counts[t] = n_calls - bad
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {err!r}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:5]
    assert counts == [n_calls] * n_threads
    assert not sc.fallbacks
    after = np.array([list(c.state.features_one(c.now).values()) for c in cases[:300]])
    assert np.array_equal(after, snapshot, equal_nan=True)  # the states were only read


# ---------------------------------------------------------------------------------------------
# 5. Reload under load; 6. no handle leak
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_bundles(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    root = tmp_path_factory.mktemp("bundles")
    paths = []
    for name, seed, rs in (("a", 21, 0), ("b", 22, 1)):
        s = simulate(1500, seed=seed)
        ms = train(decisions=s.decisions, events=s.events, customers=s.customers, contacts=s.contacts,
                   config=TrainConfig(n_estimators=10, offer_n_estimators=10, value_n_estimators=10, random_state=rs, guard=False))
        paths.append(ms.save(root / name))
    return paths[0], paths[1]


def test_reload_under_load_never_mixes_model_sets(two_bundles, cases, tmp_path):
    path_a, path_b = two_bundles
    inputs = [_args(c) for c in cases[:200]]
    serial: dict[str, list[Decision]] = {}
    for p in (path_a, path_b):
        s = Scorer.load(p, reasons="all")
        serial[s.model_version] = [s.decide_one(*a) for a in inputs]
    (va, da), (vb, db) = serial.items()
    assert va != vb
    assert sum(x.ev != y.ev for x, y in zip(da, db)) > len(inputs) // 2  # the two sets do differ
    sc = Scorer.load(path_a, reasons="all")
    stop = threading.Event()
    errors: list[str] = []
    seen: list[dict[str, int]] = []

    def work(t: int) -> None:
        counts = {va: 0, vb: 0}
        try:
            k = t
            while not stop.is_set():
                i = k % len(inputs)
                d = sc.decide_one(*inputs[i])
                exp = serial.get(d.model_version)
                if exp is None or d != exp[i]:
                    errors.append(f"thread {t} input {i}: {d} is neither set's answer")
                    return
                counts[d.model_version] += 1
                k += 7
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {err!r}")
        seen.append(counts)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    try:
        for r in range(20):
            time.sleep(0.02)
            sc.reload(path_b if r % 2 == 0 else path_a)
            assert sc.model_version == (vb if r % 2 == 0 else va)
        time.sleep(0.02)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors[:5]
    assert len(seen) == 4
    assert sum(c[va] for c in seen) > 0 and sum(c[vb] for c in seen) > 0
    assert not sc.fallbacks

    # a corrupt bundle is refused and the scorer keeps serving the model it has
    assert sc.model_version == va
    bad = pathlib.Path(shutil.copytree(path_b, tmp_path / "corrupt"))
    text = (bad / "offer.txt").read_text()
    (bad / "offer.txt").write_text(text.replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(BundleError):
        sc.reload(bad)
    (bad / "value_none.txt").unlink()
    with pytest.raises(BundleError):
        sc.reload(bad)
    with pytest.raises(BundleError):
        sc.reload(tmp_path / "does-not-exist")
    assert sc.model_version == va
    assert [sc.decide_one(*a) for a in inputs[:50]] == da[:50]


def test_reloads_do_not_leak_lightgbm_handles(two_bundles, cases):
    path_a, path_b = two_bundles
    sc = Scorer.load(path_a, reasons="all")
    args = [_args(c) for c in cases[:5]]
    for a in args:
        sc.decide_one(*a)
    sc.reload(path_b)
    for a in args:
        sc.decide_one(*a)
    gc.collect()
    base = live_handles()
    gc.disable()  # the replaced model set's handles go when its last request ends, not at a GC pass
    try:
        for r in range(20):
            sc.reload(path_a if r % 2 == 0 else path_b)
            for a in args:
                sc.decide_one(*a)
        prompt = live_handles()
    finally:
        gc.enable()
    assert prompt == base, (base, prompt)
    gc.collect()
    after = live_handles()
    assert after["booster"] <= base["booster"], (base, after)
    assert after["fast_config"] <= base["fast_config"], (base, after)
    del sc
    gc.collect()
    gone = live_handles()
    assert gone["booster"] < base["booster"] and gone["fast_config"] < base["fast_config"]


# ---------------------------------------------------------------------------------------------
# 7. A light import
# ---------------------------------------------------------------------------------------------
def test_importing_the_scorer_stays_light():
    code = ("import sys, nextchannel.scorer\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'dask')"
            " or m == 'nextchannel.simulation' or m.startswith('nextchannel.simulation.'))\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# ---------------------------------------------------------------------------------------------
# Bundles on the user's own features: decide_one(dict) == decide_many(frame), reasons in their names
# ---------------------------------------------------------------------------------------------
OWN_NAMES = ("plan: type", "visits, 30 d", "stage", "région")
from conftest import OWN_CHANNELS, own_world  # noqa: E402  (the shared own-data world)


@pytest.fixture(scope="module")
def own_scorer(tmp_path_factory) -> Scorer:
    from nextchannel.policy import PolicyConfig

    d, X = own_world(2500, seed=5)
    ms = train(d, features=X, policy=PolicyConfig(channels=list(OWN_CHANNELS), wait_limit_s={"WhatsApp": 600.0}),
               config=TrainConfig(n_estimators=30, offer_n_estimators=15, value_n_estimators=20, guard=False))
    return Scorer(ModelSet.load(ms.save(tmp_path_factory.mktemp("own") / "b")), reasons="all")


_own_row = st.fixed_dictionaries({
    "plan: type": st.one_of(st.none(), st.sampled_from(["basic", "gold", "silver", "platinum", "GOLD"])),
    "visits, 30 d": st.one_of(st.none(), st.just(float("nan")), st.integers(0, 12), st.floats(0, 50)),
    "stage": st.one_of(st.none(), st.booleans()),
    "région": st.one_of(st.none(), st.sampled_from(["nord", "süd", "ost"])),
})
_own_ctx = st.fixed_dictionaries({"open_WhatsApp": st.booleans(), "wait_WhatsApp_s": st.floats(0, 1200),
                                  "open_Spring E-Mail": st.booleans()})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_own_row, _own_ctx), min_size=1, max_size=8))
def test_own_decide_one_equals_decide_many(own_scorer, rows):
    """Per row (a dict of the user's columns + channel context) = per frame, including unseen levels,
    missing values and awkward names; reasons speak the user's column names."""
    frame = pd.DataFrame([{**r, **c} for r, c in rows])
    for name in OWN_NAMES:  # a column of all-missing values stays an object column, as a frame from a log may
        frame[name] = frame[name].astype(object)
    out = own_scorer.decide_many(frame)
    for i, (r, c) in enumerate(rows):
        one = own_scorer.decide_one(r, context=c)
        plain = own_scorer.decide_one_plain(r, context=c)
        assert one.fallback is None
        assert one.action == plain.action == out["action"].iloc[i]
        assert one.reasons == plain.reasons and " | ".join(one.reasons) == out["reasons"].iloc[i]
        assert " | ".join(one.why_not) == out["why_not"].iloc[i]
        for a in own_scorer.actions:
            assert abs(one.ev[a] - out[f"ev_{a}"].iloc[i]) <= TOL
        assert all(any(p.startswith(n) for n in OWN_NAMES) for p in one.reasons), one.reasons


def test_own_bundle_reasons_why_nots_and_bad_values(own_scorer):
    d = own_scorer.decide_one({"plan: type": "gold", "stage": True}, context={"open_WhatsApp": False})
    assert d.why_not == ("WhatsApp: closed",) and d.action in ("none", "Spring E-Mail")
    d = own_scorer.decide_one({"plan: type": "gold"}, context={"WhatsApp": {"wait_s": 900}})
    assert "WhatsApp: wait 900 s over the 600 s limit" in d.why_not
    bad = own_scorer.decide_one({"visits, 30 d": "lots"})
    assert bad.action == "none" and "feature 'visits, 30 d' must be a number or missing, got 'lots'" in bad.fallback
    with pytest.raises(ValidationError, match=r"feature 'visits, 30 d' must be a number"):
        Scorer(own_scorer.model_set, strict=True).decide_one({"visits, 30 d": "lots"})
    with pytest.raises(ValidationError, match=r"features must have the columns .* missing \['région'\]"):
        own_scorer.decide_many(pd.DataFrame({"plan: type": ["gold"], "visits, 30 d": [1.0], "stage": [True]}))


def test_own_decisions_feed_facts_compare_and_report(own_scorer, tmp_path):
    from nextchannel.evaluate import compare
    from nextchannel.facts import policy_facts
    from nextchannel.report import write_report

    d, X = own_world(600, seed=6)
    out = own_scorer.decide_many(X)
    f = policy_facts(out)
    assert f.n_decision_points == 600 and f.top_reasons is not None
    assert any("plan: type = " in p for p in f.top_reasons["phrase"])
    never = np.column_stack([np.ones(600), np.zeros((600, 2))])
    c = compare(d, champion=never, challenger=out, actions=own_scorer.actions, reward_hat=out)
    assert c.verdict == "better"
    assert (write_report(tmp_path / "r", decisions=out, logs=d) / "index.html").is_file()


def test_web_and_own_features_together():
    """A bundle on the built-in web features and the user's own columns: decide_one with a SessionState
    and the user's dict equals decide_many on the logs and the features frame."""
    s = simulate(700, seed=9)
    rng = np.random.default_rng(0)
    n = len(s.decisions)
    own = pd.DataFrame({"loyalty tier": rng.choice(["A", "B"], n), "stage": rng.random(n)}, index=s.decisions.index)
    ms = train(decisions=s.decisions, events=s.events, features=own,
               config=TrainConfig(n_estimators=10, offer_n_estimators=10, value_n_estimators=10, guard=False))
    assert ms.feature_names[-2:] == ("f0", "f1") and ms.feature_spec.names == ("loyalty tier", "stage")
    scorer = Scorer(ms, reasons="all")
    dec = s.decisions.head(40)
    out = scorer.decide_many(dec, events=s.events, features=own.head(40))
    ev = s.events
    for i in range(0, 40, 7):
        row = dec.iloc[i]
        state = SessionState(row["session_id"])
        state.update_many(ev[(ev["session_id"] == row["session_id"]) & (ev["ts"] <= row["ts"])].to_dict("records"))
        ctx = {k: row[k] for k in dec.columns if k.startswith(("open_", "wait_", "lang_ok_"))}
        one = scorer.decide_one(state, context=ctx, now=float(row["ts"]), features=own.iloc[i].to_dict())
        assert one.action == out["action"].iloc[i] and " | ".join(one.reasons) == out["reasons"].iloc[i]
