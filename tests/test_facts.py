"""Tests of nextchannel.facts: each policy fact on hand-made decisions frames."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel import facts as F
from nextchannel.errors import ValidationError

H = 3600.0
DAY = 86400.0


def _decisions() -> pd.DataFrame:
    """3 sessions, 8 decision points, 4 offers (chat x2, phone, email), over 2 days."""
    rows = [
        # session, ts, action, reasons, why_not
        ("s1", 9 * H, "none", "", "phone: closed"),
        ("s1", 9 * H + 40, "chat", "idle 45 s on checkout | 2 form errors", ""),
        ("s1", 9 * H + 100, "none", "", "all: cooldown after a dismissal 20 s ago"),
        ("s2", 10 * H, "none", "", "chat: wait 1,800 s over the 300 s limit | phone: closed"),
        ("s2", 10 * H + 10, "phone", "idle 12 s on checkout", ""),
        ("s2", 10 * H + 700, "chat", "3 form errors", "phone: closed"),
        ("s3", DAY + 9 * H, "none", "", ""),
        ("s3", DAY + 9 * H + 5, "email", "idle 45 s on checkout", "all: cooldown after a dismissal 100 s ago"),
    ]
    d = pd.DataFrame(rows, columns=["session_id", "ts", "action", "reasons", "why_not"])
    d["offer"] = d["action"] != "none"
    d["channel"] = d["action"].where(d["offer"], None)
    for a in ("none", "chat", "phone", "email", "messaging"):
        d[f"p_{a}"] = (d["action"] == a).astype(float)
        d[f"ev_{a}"] = 0.0
    return d


TRUTH = pd.DataFrame({"needs_help": [False, True, True, False, False, True, False, True]})


# ---------------------------------------------------------------------------------------------
# Rates
# ---------------------------------------------------------------------------------------------
def test_offer_rates():
    d = _decisions()
    assert F.offer_rate(d) == 0.5
    assert F.offers_per_session(d) == pytest.approx(4 / 3)
    assert F.sessions_with_offer_rate(d) == 1.0
    d2 = d.assign(offer=[False, True, False, False, False, False, False, False])
    assert F.offers_per_session(d2) == pytest.approx(1 / 3)
    assert F.sessions_with_offer_rate(d2) == pytest.approx(1 / 3)


def test_offer_falls_back_to_action_and_channel_to_action():
    d = _decisions().drop(columns=["offer", "channel"])
    assert F.offer_rate(d) == 0.5
    assert F.channel_mix(d)["offers"].to_dict() == {"chat": 2, "phone": 1, "email": 1, "messaging": 0}


def test_acceptance_logged_and_expected():
    d = _decisions()
    out = pd.DataFrame({"accepted": [None, True, None, None, False, True, None, False],
                        "p_accept": [np.nan, 0.5, np.nan, np.nan, 0.1, 0.3, np.nan, 0.1]})
    a = F.acceptance(d, out)
    assert a == {"offers": 4, "offers_observed": 4, "accepted": 2, "acceptance_rate": 0.5,
                 "expected_acceptance_rate": pytest.approx(0.25)}
    only_p = F.acceptance(d, out[["p_accept"]])
    assert only_p["accepted"] is None and only_p["acceptance_rate"] is None


def test_acceptance_from_logs_of_another_policy_uses_only_matching_offers():
    d = _decisions()   # offers: row 1 chat, 4 phone, 5 chat, 7 email
    logs = pd.DataFrame({"action": ["chat", "chat", "none", "none", "phone", "none", "email", "none"],
                         "accepted": [True, True, False, False, False, False, True, False]})
    a = F.acceptance(d, logs)
    # observed: row 1 (chat = chat, accepted) and row 4 (phone = phone, not accepted)
    assert (a["offers"], a["offers_observed"], a["accepted"], a["acceptance_rate"]) == (4, 2, 1, 0.5)
    none_logged = F.acceptance(d, logs.assign(action="none"))
    assert none_logged["offers_observed"] == 0 and math.isnan(none_logged["acceptance_rate"])


def test_no_need_offer_share():
    d = _decisions()
    # offers at rows 1, 4, 5, 7 -> needs_help True, False, True, True
    assert F.no_need_offer_share(d, TRUTH) == 0.25
    assert math.isnan(F.no_need_offer_share(d.assign(offer=False), TRUTH))


# ---------------------------------------------------------------------------------------------
# Channels and load
# ---------------------------------------------------------------------------------------------
def test_channel_mix_lists_known_channels_in_catalogue_order_with_zeros():
    mix = F.channel_mix(_decisions())
    assert mix.index.tolist() == ["chat", "phone", "email", "messaging"]
    assert mix["offers"].tolist() == [2, 1, 1, 0]
    assert mix["share"].tolist() == [0.5, 0.25, 0.25, 0.0]
    assert F.channel_mix(_decisions(), channels=["phone", "chat"]).index.tolist() == ["phone", "chat", "email"]
    assert F.channel_mix(_decisions().assign(offer=False))["share"].isna().all()


def test_hourly_load_counts_per_average_day_and_capacity():
    d = _decisions()
    load = F.hourly_load(d, capacity_per_hour={"chat": 0.4, "phone": [0.0] * 10 + [2.0] * 14})
    assert load.attrs["n_days"] == 2 and len(load) == 24 * 4
    assert load["offers"].sum() == 4
    at = load.set_index(["hour", "channel"])
    assert at.loc[(9, "chat"), "offers"] == 1 and at.loc[(9, "chat"), "offers_per_hour"] == 0.5
    assert at.loc[(9, "chat"), "load"] == pytest.approx(1.25) and at.loc[(9, "chat"), "over_capacity"]
    assert at.loc[(10, "chat"), "offers"] == 1      # 10:11:40 is still hour 10
    assert at.loc[(10, "phone"), "load"] == pytest.approx(0.25) and not at.loc[(10, "phone"), "over_capacity"]
    assert at.loc[(9, "email"), "offers"] == 1 and math.isnan(at.loc[(9, "email"), "load"])
    assert at.loc[(3, "phone"), "load"] == 0.0       # no offers at capacity 0
    assert F.hours_over_capacity(load) == {"chat": [9, 10], "phone": []}


def test_hourly_load_capacity_zero_with_offers_is_infinite_and_over():
    d = _decisions()
    load = F.hourly_load(d, capacity_per_hour={"phone": 0})
    row = load[(load["hour"] == 10) & (load["channel"] == "phone")].iloc[0]
    assert math.isinf(row["load"]) and row["over_capacity"]


def test_hourly_load_utc_offset_shifts_hours():
    d = _decisions()
    load = F.hourly_load(d, utc_offset_s=-2 * H)
    by_hour = load.groupby("hour")["offers"].sum()
    assert by_hour[7] == 2 and by_hour[8] == 2 and by_hour[9] == 0
    # A large offset moves decisions across midnight: days are local days.
    two = pd.DataFrame({"ts": [23.5 * H, 24.5 * H], "action": ["chat", "chat"]})
    assert F.hourly_load(two).attrs["n_days"] == 2
    assert F.hourly_load(two, utc_offset_s=H).attrs["n_days"] == 1


def test_capacity_not_in_channels_is_added():
    load = F.hourly_load(_decisions(), capacity_per_hour={"self_service": 10})
    assert "self_service" in set(load["channel"])
    assert F.hours_over_capacity(load) == {"self_service": []}


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
def test_offer_times_from_first_decision_point_and_from_session_start():
    d = _decisions()
    assert F.offer_times_s(d).tolist() == [40.0, 10.0, 700.0, 5.0]
    assert F.offer_times_s(d).index.tolist() == [1, 4, 5, 7]
    start = pd.Series({"s1": 9 * H - 20, "s2": 10 * H - 60, "s3": DAY + 9 * H})
    assert F.offer_times_s(d, session_start=start).tolist() == [60.0, 70.0, 760.0, 5.0]
    assert F.offer_times_s(d, session_start=start.to_dict()).tolist() == [60.0, 70.0, 760.0, 5.0]


def test_timing_quantiles_and_histogram():
    q = F.timing_quantiles([40.0, 10.0, 700.0, 5.0])
    assert q["p50"] == 25.0 and q["mean"] == pytest.approx(188.75)
    assert set(q) == {"p10", "p25", "p50", "p75", "p90", "mean"}
    h = F.timing_histogram([40.0, 10.0, 700.0, 5.0, 5000.0])
    assert h["offers"].tolist() == [1, 1, 1, 0, 0, 0, 1, 1]
    assert h["bin"].tolist()[:3] == ["0 s – 10 s", "10 s – 30 s", "30 s – 1 min"]
    assert h["bin"].tolist()[-1] == "≥ 30 min" and h["share"].sum() == pytest.approx(1.0)
    empty = F.timing_histogram([])
    assert empty["offers"].sum() == 0 and empty["share"].isna().all()
    assert math.isnan(F.timing_quantiles([])["p50"])
    # a finite last edge: times past it land in the last bin
    assert F.timing_histogram([1.0, 99.0], edges_s=(0, 10, 20))["offers"].tolist() == [1, 1]


# ---------------------------------------------------------------------------------------------
# Phrases
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("idle 45 s on checkout", "idle N s on checkout"),
    ("chat: wait 1,800 s over the 300 s limit", "chat: wait N s over the N s limit"),
    ("all: 2 offers already shown (max 2 per session)", "all: N offers already shown (max N per session)"),
    ("offer score 0.35", "offer score N"),
    ("page mp3 and ev_2", "page mp3 and ev_2"),
    ("  two   spaces\tand tab ", "two spaces and tab"),
    ("45s idle, 3 pages", "Ns idle, N pages"),
    ("chat: language 'de' not served", "chat: language 'de' not served"),
])
def test_normalise_phrase(text, expected):
    assert F.normalise_phrase(text) == expected


def test_top_reasons_and_why_not_count_each_decision_point_once():
    d = _decisions()
    r = F.top_reasons(d)
    assert r.values.tolist() == [["idle N s on checkout", 3, 3 / 8], ["N form errors", 2, 2 / 8]]
    w = F.top_why_not(d, k=2)
    assert w["phrase"].tolist() == ["phone: closed", "all: cooldown after a dismissal N s ago"]
    assert w["count"].tolist() == [3, 2]
    dup = F.top_phrases(["phone: closed | phone: closed", None, float("nan")])
    assert dup.values.tolist() == [["phone: closed", 1, 1 / 3]]


def test_top_phrases_ties_are_alphabetical_and_k_limits():
    t = F.top_phrases(["b | a | c", "c"], k=2)
    assert t["phrase"].tolist() == ["c", "a"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="ab 12,.|:", max_size=20), min_size=1, max_size=20))
def test_top_phrases_counts_are_bounded_and_digit_free(texts):
    t = F.top_phrases(texts, k=50)
    assert (t["count"] <= len(texts)).all() and (t["count"] >= 1).all()
    # numbers are gone; only digits glued to a letter (identifiers such as "a1") stay
    assert not any(re.search(r"(?<![A-Za-z_\d])\d", p) for p in t["phrase"])
    assert all(F.normalise_phrase(p) == p for p in t["phrase"])
    assert t["count"].is_monotonic_decreasing


# ---------------------------------------------------------------------------------------------
# All facts
# ---------------------------------------------------------------------------------------------
def test_policy_facts_gathers_everything_and_serialises():
    d = _decisions()
    out = pd.DataFrame({"accepted": [False, True, False, False, False, True, False, False]})
    f = F.policy_facts(d, truth=TRUTH, outcomes=out, capacity_per_hour={"chat": 0.4}, k=3)
    assert (f.n_decision_points, f.n_sessions, f.n_offers) == (8, 3, 4)
    assert f.acceptance_rate == 0.5 and f.no_need_offer_share == 0.25 and f.expected_acceptance_rate is None
    assert f.hours_over_capacity == {"chat": [9, 10]}
    assert f.timing["p50"] == 25.0 and f.timing_histogram["offers"].sum() == 4
    assert len(f.top_why_not) == 3
    frame = f.to_frame()
    assert frame.loc["offer_rate", "value"] == 0.5
    assert "expected_acceptance_rate" not in frame.index
    assert frame.loc["median_offer_time_s", "description"].startswith("median seconds")
    d_json = json.loads(json.dumps(f.to_dict(), allow_nan=False))
    assert d_json["channel_mix"][0] == {"channel": "chat", "offers": 2, "share": 0.5}
    assert d_json["acceptance_rate"] == 0.5


def test_policy_facts_without_optional_inputs():
    d = _decisions().drop(columns=["reasons", "why_not"])
    f = F.policy_facts(d)
    assert f.acceptance_rate is None and f.no_need_offer_share is None and f.hours_over_capacity is None
    assert f.top_reasons is None and f.top_why_not is None
    assert json.loads(json.dumps(f.to_dict(), allow_nan=False))["top_reasons"] is None


def test_policy_facts_on_simulated_logs_do_not_mutate_input():
    from nextchannel.simulation import simulate
    dec = simulate(60, seed=3).decisions
    before = dec.copy()
    f = F.policy_facts(dec, truth=dec, outcomes=dec)
    pd.testing.assert_frame_equal(dec, before)
    assert f.n_offers == int((dec["action"] != "none").sum())
    assert f.channel_mix.index.tolist()[:2] == ["chat", "callback"]
    assert f.acceptance_rate == pytest.approx(dec.loc[dec["action"] != "none", "accepted"].mean())


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------
BAD = [
    (lambda d: F.offer_rate(d.iloc[:0]), r"decisions must hold at least one decision point, got an empty frame"),
    (lambda d: F.offer_rate([1, 2]), r"decisions must be a pandas DataFrame, got list"),
    (lambda d: F.offers_per_session(d.drop(columns="session_id")), r"decisions must have columns \['session_id'\], missing \['session_id'\]"),
    (lambda d: F.offer_rate(d.assign(offer=["yes"] * 8)), r"decisions\['offer'\] must hold booleans, got 'yes' at row 0"),
    (lambda d: F.channel_mix(d.assign(channel=None)), r"decisions\['channel'\] must name the channel of every offer, got None at offered row 1"),
    (lambda d: F.no_need_offer_share(d, TRUTH.iloc[:5]), r"truth must be aligned with decisions by index .* got 5 rows"),
    (lambda d: F.no_need_offer_share(d, TRUTH.rename(columns={"needs_help": "need"})), r"truth must have columns \['needs_help'\], missing"),
    (lambda d: F.acceptance(d, pd.DataFrame({"x": range(8)})), r"outcomes must have a column 'accepted' and/or 'p_accept'"),
    (lambda d: F.acceptance(d, pd.DataFrame({"p_accept": [1.5] * 8})), r"outcomes\['p_accept'\] must hold probabilities in \[0, 1\], got 1.5 at row 1"),
    (lambda d: F.acceptance(d, pd.DataFrame({"accepted": [None] * 8})), r"outcomes\['accepted'\] \(on offered rows\) must hold booleans, got None at row 1"),
    (lambda d: F.hourly_load(d, capacity_per_hour={"chat": -1}), r"capacity_per_hour\['chat'\] must be a finite number >= 0 or 24 such numbers"),
    (lambda d: F.hourly_load(d, capacity_per_hour={"chat": [1, 2]}), r"capacity_per_hour\['chat'\] must be"),
    (lambda d: F.hourly_load(d, capacity_per_hour=[1]), r"capacity_per_hour must be a dict of channel"),
    (lambda d: F.hourly_load(d, utc_offset_s="+1"), r"utc_offset_s must be a finite number of seconds, got '\+1'"),
    (lambda d: F.hourly_load(d.assign(ts=np.nan)), r"decisions\['ts'\] must hold finite numbers, got nan at row 0"),
    (lambda d: F.offer_times_s(d, session_start={"s1": 0.0}), r"session_start must give the start of every session with an offer, got none for session 's2' \(3 offer\(s\) without a start\)"),
    (lambda d: F.offer_times_s(d, session_start={"s1": 9 * H + 50, "s2": 0.0, "s3": 0.0}), r"session_start must not come after the session's offers, got an offer 10 s before the start of session 's1'"),
    (lambda d: F.timing_histogram([1.0], edges_s=(0, 10, 5)), r"edges_s must be >= 2 increasing edges"),
    (lambda d: F.timing_quantiles([-1.0]), r"seconds must be finite and >= 0, got -1.0 at position 0"),
    (lambda d: F.top_phrases(["a"], k=0), r"k must be an integer >= 1, got 0"),
    (lambda d: F.top_phrases([3]), r"reasons and why-nots must be str, got int: 3"),
    (lambda d: F.hours_over_capacity(d), r"load must have columns \['hour', 'channel', 'capacity_per_hour', 'over_capacity'\]"),
]


@pytest.mark.parametrize("call, match", BAD)
def test_bad_inputs_raise_precise_validation_errors(call, match):
    with pytest.raises(ValidationError, match=match):
        call(_decisions())
