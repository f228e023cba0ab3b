"""Tests of nextchannel.simulation: the contract of the frames, the config, the causal story, the closed loop."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel.errors import ConfigError, PolicyError
from nextchannel.features import SessionState, features_many
from nextchannel.policy import Decision
from nextchannel.profile import profile_one
from nextchannel.schema import EVENT_COLUMNS, LANGUAGES, Channel, ChannelCatalogue, validate_events
from nextchannel.scorer import Scorer
from nextchannel.simulation import (
    SESSION_COLUMNS,
    SHIFTS,
    ChannelSim,
    SimConfig,
    SimResult,
    expected_reward,
    p_accept,
    p_self_resolve,
    p_success,
    simulate,
    summary,
)

CFG = SimConfig()
ACTIONS = CFG.channels.actions
CHANNELS = CFG.channels.names
HUMAN = tuple(c.name for c in CFG.channels.channels if c.human)


@pytest.fixture(scope="module")
def world() -> SimResult:
    return simulate(4000, seed=2024)


@pytest.fixture(scope="module")
def uniform_world() -> SimResult:
    # Random logging and long queues: many offers, wide spread of waits.
    cfg = dataclasses.replace(SimConfig.shifted("long_queues"), logging_policy="uniform")
    return simulate(3000, seed=77, config=cfg)


def _logged_ev(dec: pd.DataFrame) -> np.ndarray:
    evm = dec[[f"ev_{a}" for a in ACTIONS]].to_numpy()
    idx = pd.Index(ACTIONS).get_indexer(dec["action"])
    assert (idx >= 0).all()
    return evm[np.arange(len(dec)), idx]


def _n_allowed(dec: pd.DataFrame) -> np.ndarray:
    return 1 + dec[[f"open_{c}" for c in CHANNELS]].to_numpy().sum(axis=1)


# ---------------------------------------------------------------------------------------------
# Determinism and the frames' contract
# ---------------------------------------------------------------------------------------------
def test_same_seed_same_frames_different_seed_differs() -> None:
    a, b, c = simulate(300, seed=5), simulate(300, seed=5), simulate(300, seed=6)
    for name in ("customers", "contacts", "events", "decisions"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.events.equals(c.events)
    assert not a.decisions["reward"].equals(c.decisions["reward"])


def test_events_follow_schema(world: SimResult) -> None:
    ev = world.events
    assert tuple(ev.columns) == EVENT_COLUMNS
    assert validate_events(ev) is ev
    first = ev.groupby("session_id", sort=False).head(1)
    last = ev.groupby("session_id", sort=False).tail(1)
    assert (first["type"] == "session_start").all()
    assert (last["type"] == "session_end").all()
    assert ((ev["type"] == "session_start").sum() == (ev["type"] == "session_end").sum()
            == ev["session_id"].nunique() == 4000)
    ts = ev["ts"].to_numpy()
    same = (ev["session_id"].to_numpy()[1:] == ev["session_id"].to_numpy()[:-1])
    assert (np.diff(ts)[same] >= 0).all()
    pv = ev[ev["type"] == "page_view"]
    assert pv["page"].str.match(r"^[a-z_]+(/\d+)?$").all()
    starts = ev[ev["type"] == "session_start"]
    assert starts["returning"].notna().all() and starts["device"].notna().all()
    assert starts["language"].isin(LANGUAGES).all()
    assert 15 <= len(ev) / 4000 <= 30
    # Every event type of the vocabulary that the story needs shows up.
    needed = {"page_view", "scroll", "idle", "click", "form_error", "form_submit", "cart_add", "cart_remove",
              "search", "exit_intent", "offer_shown", "offer_accepted", "offer_dismissed", "contact_started",
              "purchase", "session_end"}
    assert needed <= set(ev["type"].unique())


def test_sessions_spread_over_weeks_with_daily_pattern(world: SimResult) -> None:
    starts = world.events.loc[world.events["type"] == "session_start", "ts"].to_numpy()
    lo, span = CFG.epoch_start_s, CFG.n_days * 86400.0
    assert starts.min() >= lo and starts.max() < lo + span
    assert starts.max() - starts.min() > 0.9 * span
    hour = ((starts + CFG.service_utc_offset_s) % 86400) // 3600
    assert (hour == 12).sum() > 4 * (hour == 3).sum()


def test_customers_and_contacts(world: SimResult) -> None:
    cu, co = world.customers, world.contacts
    assert cu["customer_id"].is_unique
    for c in CHANNELS:
        assert cu[f"affinity_{c}"].dtype == float and cu[f"opt_out_{c}"].dtype == bool
    assert cu["language"].isin(LANGUAGES).all() and (cu["language"] == "other").mean() < 0.1
    starts = world.events[world.events["type"] == "session_start"]
    known = starts["customer_id"].notna()
    assert 0.4 < known.mean() < 0.6  # about half anonymous
    assert set(starts.loc[known, "customer_id"]) <= set(cu["customer_id"])
    assert list(co.columns) == ["customer_id", "ts", "channel", "resolved", "satisfaction", "handling_s"]
    assert (co["ts"] < CFG.epoch_start_s).all() and set(co["customer_id"]) <= set(cu["customer_id"])
    sat = co["satisfaction"].dropna()
    assert sat.between(1, 5).all() and 0 < co["satisfaction"].isna().mean() < 1
    assert (co["handling_s"] > 0).all() and co["resolved"].dtype == bool
    # The history follows the latent affinity: contacted channels are the liked ones.
    aff = cu.set_index("customer_id")[[f"affinity_{c}" for c in CHANNELS]]
    rows = aff.loc[co["customer_id"]].to_numpy()
    used = rows[np.arange(len(co)), pd.Index(CHANNELS).get_indexer(co["channel"])]
    assert used.mean() > rows.mean() + 0.2
    # ... and affinity is tied to age: older customers like the phone more than the young.
    old = cu["age_band"].isin(["55-64", "65+"])
    assert cu.loc[old, "affinity_phone"].mean() > cu.loc[~old, "affinity_phone"].mean() + 0.3
    assert cu.loc[old, "affinity_messaging"].mean() < cu.loc[~old, "affinity_messaging"].mean()


def test_decisions_contract(world: SimResult) -> None:
    dec, ev = world.decisions, world.events
    for c in CHANNELS:
        for col in (f"open_{c}", f"lang_ok_{c}"):
            assert dec[col].dtype == bool
        assert (dec[f"wait_{c}_s"] >= 0).all()
        if not CFG.channels[c].live:
            assert (dec[f"wait_{c}_s"] == 0).all()
    for a in ACTIONS:
        assert np.isfinite(dec[f"ev_{a}"]).all()
    for col in ("accepted", "dismissed", "success", "left", "needs_help"):
        assert dec[col].dtype == bool
    assert set(dec["problem"]) == {"none", "simple", "complex"}
    assert (dec["needs_help"] == (dec["problem"] != "none")).all()
    assert 2.0 <= len(dec) / ev["session_id"].nunique() <= 6.0
    # Each decision ts is the ts of an existing triggering event of its session.
    trig = ev[ev["type"].isin(["page_view", "idle"])][["session_id", "ts", "type"]]
    m = dec.merge(trig, left_on=["session_id", "ts", "trigger"], right_on=["session_id", "ts", "type"],
                  how="left", indicator=True)
    assert (m["_merge"] == "both").all()
    # The logged customer is the session's.
    cust = ev[ev["type"] == "session_start"].set_index("session_id")["customer_id"]
    pd.testing.assert_series_equal(cust.loc[dec["session_id"]].reset_index(drop=True),
                                   dec["customer_id"].reset_index(drop=True), check_names=False)
    # Offer outcomes are consistent and followed by their events.
    offer = dec["action"] != "none"
    assert ((dec["accepted"] | dec["dismissed"]) == offer).all()
    assert not (dec["accepted"] & dec["dismissed"]).any()
    assert not (dec["success"] & ~dec["needs_help"]).any()
    shown = ev[ev["type"] == "offer_shown"].groupby("session_id").size()
    assert shown.sum() == offer.sum()
    acc = dec[dec["accepted"]]
    started = ev[ev["type"] == "contact_started"].set_index("session_id")["channel"]
    assert (started.loc[acc["session_id"]].to_numpy() == acc["action"].to_numpy()).all()
    # After an accepted offer (or leaving) no further decision points in that session.
    last = dec.groupby("session_id").tail(1)
    ends = dec[dec["accepted"] | dec["left"]]
    assert set(ends.index) <= set(last.index)
    # Closed channels are never offered.
    for c in CHANNELS:
        assert not ((dec["action"] == c) & ~dec[f"open_{c}"]).any()


def test_channel_context(world: SimResult) -> None:
    dec = world.decisions
    local = dec["ts"] + CFG.service_utc_offset_s
    hour = (local % 86400) // 3600
    weekday = ((local // 86400) + 3) % 7
    assert not dec.loc[(hour < 8) | (weekday == 6), "open_phone"].any()
    assert dec.loc[(hour >= 10) & (hour < 17) & (weekday < 5), "open_phone"].all()
    assert dec["open_self_service"].all()
    # Queues grow with load: waits at the evening peak exceed those of quiet morning hours.
    open_chat = dec["open_chat"]
    peak = dec.loc[open_chat & hour.isin([19, 20]), "wait_chat_s"].mean()
    quiet = dec.loc[open_chat & hour.isin([8]), "wait_chat_s"].mean()
    assert peak > 1.3 * quiet
    assert (dec.loc[~open_chat, "wait_chat_s"] == 0).all()


def test_shifted_worlds_change_the_data() -> None:
    base = simulate(600, seed=11)
    long = simulate(600, seed=11, config=SimConfig.shifted("long_queues"))
    assert long.decisions["wait_chat_s"].mean() > 2.5 * base.decisions["wait_chat_s"].mean()
    mobile = simulate(1500, seed=11, config=SimConfig.shifted("mobile_heavy"))
    starts = mobile.events[mobile.events["type"] == "session_start"]
    assert abs((starts["device"] == "mobile").mean() - 0.6) < 0.06
    dev = base.events.loc[base.events["type"] == "session_start", "device"]
    assert abs((dev == "mobile").mean() - 1 / 3) < 0.07  # about a third on mobile by default


def test_zero_sessions_and_custom_catalogue() -> None:
    empty = simulate(0)
    assert len(empty.events) == 0 and tuple(empty.events.columns) == EVENT_COLUMNS
    assert len(empty.decisions) == 0 and "ev_none" in empty.decisions.columns
    cat = ChannelCatalogue((Channel("chat", live=True), Channel("faq", human=False, live=False)))
    cfg = SimConfig(channels=cat, channel_sims=(CFG.channel_sim("chat"),
                                                dataclasses.replace(CFG.channel_sim("self_service"), name="faq")))
    res = simulate(300, seed=1, config=cfg)
    assert {"ev_none", "ev_chat", "ev_faq", "open_faq", "wait_faq_s"} <= set(res.decisions.columns)
    assert set(res.decisions["action"]) <= {"none", "chat", "faq"}
    validate_events(res.events, channels=cat)
    assert "affinity_faq" in res.customers.columns


def test_summary(world: SimResult) -> None:
    s = summary(world)
    assert s["sessions"] == 4000 and s["events"] == len(world.events)
    assert s["decision_points"] == len(world.decisions)
    assert math.isclose(sum(s["oracle_best_share"].values()), 1.0)
    assert set(s["mean_ev"]) == set(ACTIONS)
    assert s["oracle_value"] >= max(s["mean_ev"].values())
    assert 0.1 < s["problem_session_rate"] < 0.5 and 0 < s["offer_rate"] < 1
    json.dumps(s)  # plain Python values only


# ---------------------------------------------------------------------------------------------
# The logging policy and its propensities
# ---------------------------------------------------------------------------------------------
def test_propensities_rule_epsilon(world: SimResult) -> None:
    dec = world.decisions
    eps = CFG.epsilon
    p = dec["propensity"].to_numpy()
    assert ((p > 0) & (p <= 1)).all()
    n = _n_allowed(dec)
    explore = eps / n
    assert np.all(np.isclose(p, explore) | np.isclose(p, explore + 1 - eps))
    # At a page view no idle has happened on the page yet: the rule says none.
    pv = (dec["trigger"] == "page_view").to_numpy()
    is_none = (dec["action"] == "none").to_numpy()
    np.testing.assert_allclose(p[pv & is_none], (explore + 1 - eps)[pv & is_none])
    np.testing.assert_allclose(p[pv & ~is_none], explore[pv & ~is_none])
    # The rule fires: chat after a long idle on cart/checkout gets the high propensity.
    assert (np.isclose(p, explore + 1 - eps) & (dec["action"] == "chat").to_numpy()).sum() > 10
    # Propensities are the real sampling probabilities: E[1{a}/p(a)] = 1 for an always-allowed action.
    ips_none = np.mean(is_none / p)
    assert abs(ips_none - 1) < 0.05


def test_propensities_uniform(uniform_world: SimResult) -> None:
    dec = uniform_world.decisions
    n = _n_allowed(dec)
    np.testing.assert_allclose(dec["propensity"].to_numpy(), 1.0 / n)
    for a in ("none", "self_service"):  # always allowed
        share = np.mean((dec["action"] == a).to_numpy() / dec["propensity"].to_numpy())
        assert abs(share - 1) < 0.08


# ---------------------------------------------------------------------------------------------
# The oracle: ev is exact and the reward is a draw from it
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["rule_epsilon", "uniform"])
def test_reward_is_unbiased_draw_of_ev(policy: str) -> None:
    res = simulate(4000, seed=4242, config=dataclasses.replace(CFG, logging_policy=policy))
    dec = res.decisions
    diff = dec["reward"].to_numpy() - _logged_ev(dec)
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    assert abs(diff.mean()) < 4 * se
    for a in ("none", "chat"):  # per action, too
        d = diff[(dec["action"] == a).to_numpy()]
        assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(len(d))


def test_ev_columns_match_public_functions(world: SimResult) -> None:
    dec = world.decisions
    starts = world.events[world.events["type"] == "session_start"].set_index("session_id")
    # Mobile visitors: work-hours penalty is 0, so the decision row holds the whole context.
    rows = dec[(starts.loc[dec["session_id"], "device"] == "mobile").to_numpy() & dec["customer_id"].notna()]
    assert len(rows) > 100
    cu = world.customers.set_index("customer_id").loc[rows["customer_id"]]
    for a in ACTIONS:
        kw = {}
        if a != "none":
            kw = dict(affinity=cu[f"affinity_{a}"].to_numpy(), device="mobile",
                      wait_s=rows[f"wait_{a}_s"].to_numpy(), is_open=rows[f"open_{a}"].to_numpy(),
                      lang_ok=rows[f"lang_ok_{a}"].to_numpy(), opt_out=cu[f"opt_out_{a}"].to_numpy())
        got = expected_reward(CFG, a, problem=rows["problem"].to_numpy(), **kw)
        np.testing.assert_allclose(got, rows[f"ev_{a}"].to_numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# The world tells its story
# ---------------------------------------------------------------------------------------------
def test_offer_without_need_is_worse_than_none(world: SimResult) -> None:
    dec = world.decisions[~world.decisions["needs_help"]]
    assert len(dec) > 1000
    assert (dec["ev_none"] == 0).all()
    for c in CHANNELS:
        assert (dec[f"ev_{c}"] - dec["ev_none"]).mean() < 0
        assert (dec[f"ev_{c}"] < dec["ev_none"]).all()
    # ... while with a need, the best offer beats none on average.
    need = world.decisions[world.decisions["needs_help"]]
    best_offer = need[[f"ev_{c}" for c in CHANNELS]].max(axis=1)
    assert (best_offer - need["ev_none"]).mean() > 1.0


def test_complex_needs_humans_simple_suits_self_service(world: SimResult) -> None:
    dec = world.decisions
    cx = dec[dec["problem"] == "complex"]
    simple = dec[dec["problem"] == "simple"]
    assert len(cx) > 200 and len(simple) > 200
    ss_cx = cx["ev_self_service"]
    for c in ("chat", "email", "messaging"):
        op = cx[f"open_{c}"]
        assert cx.loc[op, f"ev_{c}"].mean() > ss_cx[op].mean() + 1.0
    best_human = cx[[f"ev_{c}" for c in HUMAN]].max(axis=1)
    assert (best_human > ss_cx).mean() > 0.9
    # Simple problems: self-service is about as good (here: at least as good) at far lower cost.
    best_human_s = simple[[f"ev_{c}" for c in HUMAN]].max(axis=1)
    assert simple["ev_self_service"].mean() >= 0.9 * best_human_s.mean()
    ss_cost = CFG.channel_sim("self_service").cost
    assert all(ss_cost < 0.1 * CFG.channel_sim(c).cost for c in HUMAN)
    p_ss = p_success(CFG, "self_service", problem=["simple", "complex"])
    p_chat = p_success(CFG, "chat", problem=["simple", "complex"])
    assert p_ss[0] > 0.7 and p_ss[1] < 0.15 and p_chat[1] > 0.6
    # Self-resolution: moderate for simple, low for complex, none without a problem.
    assert p_self_resolve(CFG, "none") == 0 and 0 < p_self_resolve(CFG, "complex") < p_self_resolve(CFG, "simple")


@settings(max_examples=60, deadline=None)
@given(channel=st.sampled_from(CHANNELS), problem=st.sampled_from(["none", "simple", "complex"]),
       device=st.sampled_from(["desktop", "mobile", "tablet"]), affinity=st.floats(-3, 3),
       work=st.booleans(), opt_out=st.booleans(), lang_ok=st.booleans(),
       w1=st.floats(0, 5000), w2=st.floats(0, 5000))
def test_acceptance_and_success_never_grow_with_wait(channel, problem, device, affinity, work, opt_out, lang_ok,
                                                     w1, w2) -> None:
    lo, hi = min(w1, w2), max(w1, w2)
    kw = dict(problem=problem, affinity=affinity, device=device, work_hours=work, opt_out=opt_out)
    assert p_accept(CFG, channel, wait_s=hi, **kw) <= p_accept(CFG, channel, wait_s=lo, **kw)
    assert p_success(CFG, channel, problem=problem, lang_ok=lang_ok, wait_s=hi) <= \
        p_success(CFG, channel, problem=problem, lang_ok=lang_ok, wait_s=lo)
    # The chance that an offer ends in a solved problem never grows with the wait either.
    solved = lambda w: p_accept(CFG, channel, wait_s=w, **kw) * p_success(  # noqa: E731
        CFG, channel, problem=problem, lang_ok=lang_ok, wait_s=w)
    assert solved(hi) <= solved(lo)
    assert 0 <= p_accept(CFG, channel, wait_s=lo, **kw) <= 1
    assert p_accept(CFG, channel, wait_s=lo, is_open=False, **kw) == 0


def test_ev_of_chat_falls_with_wait_for_a_visitor_in_need() -> None:
    waits = np.linspace(0, 600, 61)
    for problem in ("simple", "complex"):
        for aff in (-1.0, 0.0, 1.0):
            ev = expected_reward(CFG, "chat", problem=problem, affinity=aff, wait_s=waits)
            assert np.all(np.diff(ev) <= 1e-12)
            assert ev[0] > ev[-1]


def test_acceptance_falls_with_wait_in_the_logs(uniform_world: SimResult) -> None:
    dec = uniform_world.decisions
    chat = dec[dec["action"] == "chat"]
    assert len(chat) > 300
    short = chat["wait_chat_s"] <= chat["wait_chat_s"].median()
    assert chat.loc[short, "accepted"].mean() > chat.loc[~short, "accepted"].mean()
    # The same comparison in expectation, holding need fixed.
    for need in (True, False):
        sub = chat[chat["needs_help"] == need]
        s = sub["wait_chat_s"] <= sub["wait_chat_s"].median()
        pa = p_accept(CFG, "chat", problem=sub["problem"].to_numpy(), wait_s=sub["wait_chat_s"].to_numpy())
        assert pa[s.to_numpy()].mean() > pa[~s.to_numpy()].mean()


def _hesitation(res: SimResult) -> pd.DataFrame:
    ev = res.events
    sid = ev["session_id"]
    pv = ev[ev["type"] == "page_view"]
    p1 = pv.groupby("session_id")["page"].shift(1)
    p2 = pv.groupby("session_id")["page"].shift(2)
    back = ((pv["page"] == p2) & (pv["page"] != p1)).groupby(pv["session_id"]).sum()
    out = pd.DataFrame({
        "idle_s": ev["duration_s"].fillna(0).groupby(sid).sum(),
        "form_errors": (ev["type"] == "form_error").groupby(sid).sum(),
        "help_views": ev["page_type"].isin(["help", "contact"]).groupby(sid).sum(),
        "back": back,
        "zero_searches": (ev["n_results"] == 0).groupby(sid).sum(),
    }).fillna(0)
    problem = res.decisions.groupby("session_id")["needs_help"].any()
    out = out.loc[problem.index]
    out["problem"] = problem
    return out


def test_hesitation_signals_are_informative_but_noisy(world: SimResult) -> None:
    h = _hesitation(world)
    yes, no = h[h["problem"]], h[~h["problem"]]
    assert len(yes) > 300 and len(no) > 1000
    for col in ("idle_s", "form_errors", "help_views", "back", "zero_searches"):
        assert yes[col].mean() > no[col].mean(), col
    score = h["idle_s"] / 30 + h["form_errors"] + h["help_views"] + h["back"]
    med = score[h["problem"]].median()
    # Not separable: plenty of visitors without a problem hesitate more than the median struggler...
    assert (score[~h["problem"]] > med).mean() > 0.05
    # ... and some strugglers show (almost) nothing.
    assert (score[h["problem"]] < 0.5).mean() > 0.01


# ---------------------------------------------------------------------------------------------
# The config
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [SimConfig(), *(SimConfig.shifted(s) for s in SHIFTS),
                                 SimConfig(epsilon=0.123456789, logging_policy="uniform", rule_pages=("help",))])
def test_config_round_trips(cfg: SimConfig) -> None:
    assert SimConfig.from_json(cfg.to_json()) == cfg
    assert SimConfig.from_dict(cfg.to_dict()) == cfg
    assert SimConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.to_json() == SimConfig.from_json(cfg.to_json()).to_json()
    hash(cfg)


@settings(max_examples=25, deadline=None)
@given(eps=st.floats(0, 1), scale=st.floats(0.01, 100), p_known=st.floats(0, 1),
       value=st.floats(0, 1e6), start=st.floats(0, 2e9))
def test_config_round_trip_property(eps, scale, p_known, value, start) -> None:
    cfg = SimConfig(epsilon=eps, queue_scale=scale, p_known=p_known, value_success=value, epoch_start_s=start)
    assert SimConfig.from_json(cfg.to_json()) == cfg


def test_shifts() -> None:
    phone = CFG.channel_sim("phone").cost
    assert SimConfig.shifted("phone_costly").channel_sim("phone").cost == 2 * phone
    assert SimConfig.shifted("phone_costly").channel_sim("chat") == CFG.channel_sim("chat")
    assert SimConfig.shifted("long_queues").queue_scale == 3 * CFG.queue_scale
    assert SimConfig.shifted("mobile_heavy").device_mix[1] == 0.6
    assert SimConfig.shifted("problem_heavy").problem_rate[0] == pytest.approx(1.5 * CFG.problem_rate[0])
    # Shifted worlds are just other configs.
    assert SimConfig.shifted("long_queues") == dataclasses.replace(CFG, queue_scale=3.0)
    with pytest.raises(ConfigError, match="shift name must be one of .*got 'moon'"):
        SimConfig.shifted("moon")


def test_config_is_frozen_and_lists_become_tuples() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CFG.epsilon = 0.5  # type: ignore[misc]
    cfg = SimConfig(rule_pages=["cart"], device_mix=[0.5, 0.4, 0.1])  # type: ignore[arg-type]
    assert cfg.rule_pages == ("cart",) and cfg.device_mix == (0.5, 0.4, 0.1)


_BAD = [
    (dict(epsilon=1.5), r"epsilon must be a probability in \[0, 1\], got 1.5"),
    (dict(epsilon=float("nan")), r"epsilon must be a probability in \[0, 1\], got nan"),
    (dict(p_known=-0.1), r"p_known must be a probability in \[0, 1\], got -0.1"),
    (dict(p_known=True), r"p_known must be a probability in \[0, 1\], got True"),
    (dict(n_days=0), r"n_days must be an integer >= 1, got 0"),
    (dict(n_days=2.5), r"n_days must be an integer >= 1, got 2.5"),
    (dict(max_decisions=-1), r"max_decisions must be an integer >= 0, got -1"),
    (dict(queue_scale=0), r"queue_scale must be a finite number > 0, got 0"),
    (dict(annoyance=-1.0), r"annoyance must be a finite number >= 0, got -1.0"),
    (dict(leave_cost="5"), r"leave_cost must be a finite number >= 0, got '5'"),
    (dict(epoch_start_s=float("inf")), r"epoch_start_s must be a finite number, got inf"),
    (dict(device_mix=(0.5, 0.5)), r"device_mix must be a tuple of 3 probabilities .*summing to 1, got \(0.5, 0.5\)"),
    (dict(device_mix=(0.5, 0.4, 0.2)), r"device_mix must be a tuple of 3 probabilities .* got \(0.5, 0.4, 0.2\)"),
    (dict(language_mix=(1.0,)), r"language_mix must be a tuple of 8 probabilities"),
    (dict(idle_rate=(0.1, 1.2)), r"idle_rate must be a tuple of 2 probabilities \(no problem, problem\), got"),
    (dict(problem_rate=(0.1, 0.2)), r"problem_rate must be a tuple of 3 probabilities for \['browse'"),
    (dict(hourly_traffic=(1.0,) * 23), r"hourly_traffic must be a tuple of 24 finite numbers"),
    (dict(mean_pages=(0.5, 2, 3)), r"mean_pages must be a tuple of 3 numbers >= 1"),
    (dict(logging_policy="greedy"), r"logging_policy must be one of \['uniform', 'rule_epsilon'\], got 'greedy'"),
    (dict(rule_channel="fax"), r"rule_channel must be one of \['chat', .*\], got 'fax'"),
    (dict(rule_pages=("cart", "basement")), r"rule_pages must be a tuple of page types"),
    (dict(service_utc_offset_s=90000.0), r"service_utc_offset_s must be in \(-86400, 86400\), got 90000.0"),
    (dict(channel_sims=CFG.channel_sims[:-1]),
     r"channel_sims must be one ChannelSim per channel in catalogue order \['chat', .*\], got \['chat', "),
]


@pytest.mark.parametrize("kwargs,match", _BAD)
def test_config_validation(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        SimConfig(**kwargs)


_BAD_CHANNEL = [
    (dict(cost=-1.0), r"channel_sims\['x'\].cost must be a finite number >= 0, got -1.0"),
    (dict(solve_simple=2.0), r"channel_sims\['x'\].solve_simple must be a probability in \[0, 1\], got 2.0"),
    (dict(open_hours=(20, 8)), r"channel_sims\['x'\].open_hours must be a tuple \(start, end\) with 0 <= start < end <= 24"),
    (dict(open_weekdays=(7,)), r"channel_sims\['x'\].open_weekdays must be a non-empty tuple of distinct weekdays"),
    (dict(languages=("en", "xx")), r"channel_sims\['x'\].languages must be a tuple of languages from"),
    (dict(device_fit=(0.0, 1.0)), r"channel_sims\['x'\].device_fit must be a tuple of 3 finite numbers"),
    (dict(handling_median_s=0.0), r"channel_sims\['x'\].handling_median_s must be a finite number > 0, got 0.0"),
]


@pytest.mark.parametrize("kwargs,match", _BAD_CHANNEL)
def test_channel_sim_validation(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        ChannelSim("x", **{"cost": 1.0, **kwargs})


def test_other_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"channel_sims\['email'\].base_wait_s must be 0 for a channel that is not live"):
        CFG.with_channel("email", base_wait_s=10.0)
    with pytest.raises(ConfigError, match=r"config keys must be among SimConfig's fields, got unknown \['colour'\]"):
        SimConfig.from_dict({**CFG.to_dict(), "colour": "red"})
    with pytest.raises(ConfigError, match="config JSON must be valid JSON text"):
        SimConfig.from_json("{not json")
    with pytest.raises(ConfigError, match=r"n_sessions must be an integer >= 0, got -1"):
        simulate(-1)
    with pytest.raises(ConfigError, match=r"seed must be an integer >= 0, got 1.5"):
        simulate(10, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"config must be a SimConfig or None, got 'dict'"):
        simulate(10, config={})  # type: ignore[arg-type]
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------------------------------------
# Open loop: the frames of a seed are the ones the simulator gave before it learned the closed loop
# ---------------------------------------------------------------------------------------------
# sha256 (first 16 hex digits) of each frame's dtypes and CSV text (floats to 6 significant digits),
# recorded from the single-module simulator before it became the `nextchannel.simulation` package
# (commit 59eab84^, run beside this package on the same machine: equal). Floats are rounded because
# numpy's vectorised exp/log give last-bit differences between CPUs (AVX-512 or not), which changed
# full-precision digests from one CI machine to the next. The shipped default bundle and
# every figure in the README were made from such frames: a change here changes all of them.
_FROZEN_DIGESTS = {
    "default_500_s0": (500, 0, lambda: SimConfig(), {
        "customers": "0897a875310deb3c", "contacts": "8ecc9301c46eccc2", "events": "45e16f430e042f55",
        "decisions": "3491cfe9c6ca436e"}),
    "uniform_queues_400_s11": (400, 11, lambda: dataclasses.replace(SimConfig.shifted("long_queues"),
                                                                    logging_policy="uniform"), {
        "customers": "e4c642d72b843a44", "contacts": "d9c844a403f6484f", "events": "587318183b35abe0",
        "decisions": "d2d9656c2e40bdee"}),
    "mobile_300_s3": (300, 3, lambda: SimConfig.shifted("mobile_heavy"), {
        "customers": "615107b10eca4078", "contacts": "e04a1dbeafe744ae", "events": "304716bd468f96b2",
        "decisions": "0c519ae6c5e766d5"}),
}


def _digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(repr(list(zip(df.columns, map(str, df.dtypes)))).encode())
    h.update(df.to_csv(index=False, float_format="%.6g").encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("case", sorted(_FROZEN_DIGESTS))
@pytest.mark.parametrize("policy", [None, "logging"])
def test_open_loop_frames_are_frozen(case: str, policy: str | None) -> None:
    n, seed, make_cfg, want = _FROZEN_DIGESTS[case]
    res = simulate(n, seed=seed, config=make_cfg(), policy=policy)
    got = {name: _digest(getattr(res, name)) for name in want}
    assert got == want
    assert res.policy == "logging"


# ---------------------------------------------------------------------------------------------
# Closed loop
# ---------------------------------------------------------------------------------------------
class _Recorder:
    """Offers chat at a session's first decision point (when open), then never; records what it sees."""

    actions = ACTIONS

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def decide_one(self, state: SessionState, customer=None, context=None, now=None) -> Decision:
        f = state.features_one(now)
        first = state.session_id not in {s["session_id"] for s in self.seen[-8:]}
        self.seen.append({"session_id": state.session_id, "ts": now, "features": f, "customer": customer,
                          "context": dict(context)})
        act = "chat" if first and context["open_chat"] else "none"
        return Decision(action=act, offer=act != "none", channel=None if act == "none" else act, ev={},
                        offer_score=math.nan, propensity=0.5 if act == "chat" else 1.0, model_version="rec")


class _Raiser:
    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def decide_one(self, state, customer=None, context=None, now=None):
        self.calls += 1
        if self.calls == self.at:
            raise ZeroDivisionError("model exploded")
        return Decision(action="none", offer=False, channel=None, ev={}, offer_score=0.0, propensity=1.0,
                        model_version="x")


@pytest.fixture(scope="module")
def recorded() -> tuple[SimResult, _Recorder]:
    rec = _Recorder()
    return simulate(400, seed=21, policy=rec), rec


def test_closed_loop_logs_the_policy_and_the_truth(recorded) -> None:
    res, rec = recorded
    d = res.decisions
    assert res.policy == "_Recorder" and len(rec.seen) == len(d)
    assert d["action"].tolist() == ["chat" if s else "none" for s in
                                   (d.groupby("session_id").cumcount() == 0) & d["open_chat"]]
    assert np.allclose(d["propensity"], np.where(d["action"] == "chat", 0.5, 1.0))
    # the context the policy saw is the logged one
    for s, (_, row) in zip(rec.seen[:50], d.head(50).iterrows()):
        assert s["ts"] == row["ts"] and s["context"]["wait_chat_s"] == row["wait_chat_s"]
        assert s["context"]["lang_ok_phone"] == row["lang_ok_phone"]
    # the oracle columns still hold: reward is an unbiased draw of ev of the logged action
    assert np.isfinite(_logged_ev(d)).all()


def test_closed_loop_state_is_what_the_log_replays_to(recorded) -> None:
    # At each decision point the live SessionState and customer dict give exactly the features that
    # features_many computes from the resulting log: the policy saw every earlier event, and only those.
    res, rec = recorded
    X = features_many(res.decisions[["session_id", "ts", "customer_id"]], events=res.events, customers=res.customers, contacts=res.contacts)
    live = pd.DataFrame([s["features"] for s in rec.seen])
    pd.testing.assert_frame_equal(live.reset_index(drop=True), X[list(live.columns)].reset_index(drop=True),
                                  check_dtype=False)
    # ... and the customer dict gives the profile features_many joins (history before the period, opt-outs)
    prof = pd.DataFrame([profile_one(s["customer"], s["ts"]) for s in rec.seen])
    pd.testing.assert_frame_equal(prof, X[list(prof.columns)].reset_index(drop=True), check_dtype=False)
    known = [s for s in rec.seen if s["customer"] is not None]
    assert known and any(s["customer"]["contacts"] for s in known) and any(s["customer"]["opt_out"] for s in known)


def test_consequences_are_visible_to_later_decision_points(recorded) -> None:
    res, rec = recorded
    d = res.decisions.reset_index(drop=True)
    seen = pd.DataFrame([{"offers_shown": s["features"]["offers_shown"],
                          "since_dismiss": s["features"]["time_since_dismiss_s"]} for s in rec.seen])
    k = d.groupby("session_id").cumcount()
    first = d[k == 0]
    dismissed = set(first.loc[first["action"].eq("chat") & first["dismissed"], "session_id"])
    accepted = set(first.loc[first["action"].eq("chat") & first["accepted"], "session_id"])
    later = (k > 0).to_numpy()
    after_dismissal = later & d["session_id"].isin(dismissed).to_numpy()
    assert after_dismissal.sum() > 10
    assert (seen.loc[after_dismissal, "offers_shown"] == 1).all()
    assert (seen.loc[after_dismissal, "since_dismiss"] > 0).all()
    never_offered = later & ~d["session_id"].isin(dismissed | accepted).to_numpy()
    assert (seen.loc[never_offered, "offers_shown"] == 0).all()
    # an accepted offer starts a contact and ends the session: no later decision point
    assert accepted and not (later & d["session_id"].isin(accepted).to_numpy()).any()
    ev = res.events
    for sid in sorted(accepted)[:5]:
        types = ev.loc[ev["session_id"] == sid, "type"].tolist()
        assert types[-1] == "session_end" and "contact_started" in types


def test_closed_loop_is_deterministic_and_the_population_does_not_depend_on_the_policy() -> None:
    a, b = simulate(300, seed=8, policy=_Recorder()), simulate(300, seed=8, policy=_Recorder())
    for name in ("customers", "contacts", "events", "decisions", "sessions"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    never = simulate(300, seed=8, policy="never")
    pd.testing.assert_frame_equal(a.customers, never.customers)
    pd.testing.assert_frame_equal(a.contacts, never.contacts)
    assert not a.events.equals(never.events)


def test_reference_policies() -> None:
    cfg = SimConfig()
    runs = {p: simulate(1500, seed=5, policy=p) for p in ("never", "rule", "oracle")}
    assert (runs["never"].decisions["action"] == "none").all()
    rule = runs["rule"].decisions
    ev = runs["rule"].events
    offered = rule[rule["action"] != "none"]
    assert len(offered) and (offered["action"] == cfg.rule_channel).all() and (rule["propensity"] == 1).all()
    assert offered["open_chat"].all()
    orc = runs["oracle"].decisions
    evm = orc[[f"ev_{a}" for a in ACTIONS]].to_numpy()
    open_ = np.column_stack([np.ones(len(orc), bool)] + [orc[f"open_{c}"].to_numpy() for c in CHANNELS])
    best = np.where(open_, evm, -np.inf).argmax(axis=1)
    assert (pd.Index(ACTIONS).get_indexer(orc["action"]) == best).mean() > 0.999
    v = {p: r.sessions["reward"].mean() for p, r in runs.items()}
    assert v["oracle"] > v["never"] and v["oracle"] > v["rule"]
    assert len(ev) > 0


def test_sessions_frame_adds_up() -> None:
    res = simulate(800, seed=12, config=dataclasses.replace(SimConfig(), logging_policy="uniform"))
    s, d, cfg = res.sessions, res.decisions, res.config
    assert tuple(s.columns) == SESSION_COLUMNS and len(s) == 800 and s["session_id"].is_unique
    by = d.groupby("session_id")["reward"].sum().reindex(s["session_id"], fill_value=0.0).to_numpy()
    assert np.allclose(s["reward"], by)
    parts = cfg.value_success * s["solved"] - s["contact_cost"] - s["annoyance_cost"] - s["leave_cost"]
    assert np.allclose(s["reward"], parts)
    # expected_reward: per session, the true ev of each action taken; same mean as the realised reward
    evd = _logged_ev(d)
    by_ev = pd.Series(evd).groupby(d["session_id"].to_numpy()).sum().reindex(s["session_id"], fill_value=0.0)
    assert np.allclose(s["expected_reward"], by_ev.to_numpy())
    diff = s["reward"] - s["expected_reward"]
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(s))
    assert s["expected_reward"].std() < s["reward"].std()
    assert s["contacts"].sum() == d["accepted"].sum() and s["dismissed"].sum() == d["dismissed"].sum()
    assert (s["left_annoyed"] <= s["left"]).all() and s["left_annoyed"].any()
    bought = res.events.loc[res.events["type"] == "purchase", "session_id"].unique()
    assert set(s.loc[s["purchase"], "session_id"]) == set(bought)
    assert (s.loc[~s["purchase"], "purchase_value"] == 0).all()


def test_a_policy_that_raises_is_reported() -> None:
    with pytest.raises(PolicyError, match=r"session 's0+\d+' \(decision point \d\b.*ZeroDivisionError: model exploded") \
            as info:
        simulate(200, seed=1, policy=_Raiser(at=5))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize("policy, err, match", [
    ("greedy", ConfigError, r"policy must be one of \['never', 'rule', 'logging', 'oracle'\]"),
    (42, ConfigError, "an object with decide_one"),
])
def test_bad_policies(policy, err, match) -> None:
    with pytest.raises(err, match=match):
        simulate(10, seed=0, policy=policy)


def test_a_decision_that_is_not_an_action_is_reported() -> None:
    class Fax(_Recorder):
        def decide_one(self, state, customer=None, context=None, now=None):
            return dataclasses.replace(super().decide_one(state, customer, context, now), action="fax")

    with pytest.raises(PolicyError, match=r"must be one of \['none', 'chat'.*got action 'fax' at session 's0+'"):
        simulate(50, seed=2, policy=Fax())


def test_scorer_closed_loop() -> None:
    # The default bundle decides live; its logged decisions are what it decides on the log afterwards.
    scorer = Scorer.load(n_reasons=0)
    res = simulate(300, seed=33, policy=scorer)
    d = res.decisions
    assert res.policy == "Scorer" and len(d) > 300 and set(d["action"]) <= set(ACTIONS)
    assert (d["action"] != "none").any() and (d["propensity"] == 1.0).all()
    again = scorer.decide_many(d, events=res.events, customers=res.customers, contacts=res.contacts)
    assert (again["action"].to_numpy() == d["action"].to_numpy()).all()
    shown = d.groupby("session_id")["action"].apply(lambda a: (a != "none").sum())
    assert shown.max() <= scorer.model_set.policy.max_offers_per_session
