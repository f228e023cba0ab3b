"""Tests of nextchannel.profile: online = batch, hand-computed values, strict errors, buffers."""

from __future__ import annotations

import json
import logging
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nextchannel.profile as prof
from nextchannel.errors import ConfigError, ValidationError
from nextchannel.profile import (
    ProfileConfig,
    history_of,
    profile_feature_names,
    profile_into,
    profile_one,
    profiles_many,
    validate_contacts,
)
from nextchannel.schema import DEFAULT_LIMITS, Channel, ChannelCatalogue, Limits

DAY = 86400.0
NAMES = ChannelCatalogue.default().names
SMALL_CAT = ChannelCatalogue((Channel("chat"), Channel("phone"), Channel("self_service", human=False, live=False)))


def contact_log(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "ts", "channel", "resolved", "satisfaction", "handling_s"])


def assert_profiles_equal(got: dict | np.ndarray, want: dict | np.ndarray, names=None) -> None:
    if isinstance(got, dict):
        assert list(got) == list(want)
        got, want = np.array(list(got.values())), np.array(list(want.values()))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, equal_nan=True,
                               err_msg=str(names) if names is not None else "")


# ---------------------------------------------------------------------------------------------
# Feature names and config
# ---------------------------------------------------------------------------------------------
def test_feature_names_order_and_content():
    names = profile_feature_names()
    assert names[:4] == ("prof_known", "prof_n_contacts", "prof_days_since_last", "prof_last_channel")
    assert len(names) == 4 + 5 * len(NAMES) == len(set(names))
    for stat in ("n", "share", "resolved", "sat", "optout"):
        assert [n for n in names[4:] if n.startswith(f"prof_{stat}_")] == [f"prof_{stat}_{c}" for c in NAMES]
    assert profile_feature_names(SMALL_CAT) == ProfileConfig(channels=SMALL_CAT).feature_names
    assert "prof_n_email" not in profile_feature_names(SMALL_CAT)
    with pytest.raises(ValidationError, match="channels must be a ChannelCatalogue"):
        profile_feature_names(["chat"])


def test_config_json_round_trip():
    cfg = ProfileConfig(half_life_days=7.5, channels=SMALL_CAT)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert ProfileConfig.from_dict(d) == cfg
    assert ProfileConfig.from_json(cfg.to_json()) == cfg
    assert ProfileConfig.from_dict({}) == ProfileConfig()
    assert hash(ProfileConfig()) == hash(ProfileConfig.from_json(ProfileConfig().to_json()))


@pytest.mark.parametrize("kwargs, match", [
    ({"half_life_days": 0.0}, "half_life_days must be a finite number > 0, got 0.0"),
    ({"half_life_days": -3}, "half_life_days must be a finite number > 0, got -3"),
    ({"half_life_days": float("inf")}, "half_life_days must be a finite number > 0, got inf"),
    ({"half_life_days": True}, "half_life_days must be a finite number > 0, got True"),
    ({"half_life_days": "90"}, "half_life_days must be a finite number > 0, got '90'"),
    ({"channels": ("chat", "phone")}, "channels must be a ChannelCatalogue, got tuple"),
    ({"channels": ChannelCatalogue((Channel("chat"), Channel("contacts")))},
     r"feature names must be unique.*'prof_n_contacts'"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ProfileConfig(**kwargs)


@pytest.mark.parametrize("text, match", [
    ('{"half_life_days": 30, "colour": "red"}', r"unknown \['colour'\]"),
    ('{"half_life_days": 30, "channels": {"chans": []}}', "channels must be a catalogue dict"),
    ('{"half_life_days": ', "profile config must be valid JSON"),
    ('[1, 2]', "profile config must be a mapping, got list"),
])
def test_config_from_json_rejects_bad_input(text, match):
    with pytest.raises(ConfigError, match=match):
        ProfileConfig.from_json(text)


# ---------------------------------------------------------------------------------------------
# Hand-computed case
# ---------------------------------------------------------------------------------------------
def hand_log() -> pd.DataFrame:
    return contact_log([
        ("c1", 0.0 * DAY, "chat", True, 4.0, 300.0),
        ("c2", 1.0 * DAY, "email", False, np.nan, 0.0),
        ("c1", 90.0 * DAY, "phone", False, 2.0, 600.0),
        ("c1", 90.0 * DAY, "chat", False, np.nan, 120.0),  # same ts as the phone contact, later row
        ("c1", 180.0 * DAY, "phone", True, 5.0, 400.0),
        ("c1", 500.0 * DAY, "email", True, 1.0, 50.0),  # in the future of as_of below
    ])


def test_hand_computed_profile():
    as_of = 100.0 * DAY  # counts the first four contacts of c1, not the ones at day 180 and 500
    want = dict.fromkeys(profile_feature_names(), 0.0)
    want.update({f"prof_resolved_{c}": math.nan for c in NAMES})
    want.update({f"prof_sat_{c}": math.nan for c in NAMES})
    # Weights relative to the last contact (day 90) with half-life 90 days: chat at day 0 weighs 1/2,
    # phone and chat at day 90 weigh 1 each; total 2.5.
    want.update({
        "prof_known": 1.0, "prof_n_contacts": 3.0, "prof_days_since_last": 10.0,
        "prof_last_channel": float(NAMES.index("chat")),  # tie at day 90: the later row (chat)
        "prof_n_chat": 2.0, "prof_n_phone": 1.0,
        "prof_share_chat": 1.5 / 2.5, "prof_share_phone": 1.0 / 2.5,
        "prof_resolved_chat": 0.5, "prof_resolved_phone": 0.0,
        "prof_sat_chat": 4.0,  # the NaN satisfaction is not surveyed, not a zero
        "prof_sat_phone": 2.0,
        "prof_optout_phone": 1.0,
    })
    log = hand_log()
    customers = pd.DataFrame({"customer_id": ["c1", "c2"], "opt_out_phone": [True, False]})
    online = profile_one(history_of("c1", contacts=log, customers=customers), as_of)
    assert_profiles_equal(online, want)
    batch = profiles_many(pd.DataFrame({"customer_id": ["c1"], "ts": [as_of]}), contacts=log, customers=customers)
    assert_profiles_equal(batch.iloc[0].to_dict(), want)


def test_share_uses_as_of_half_life():
    # The share equals the ratio of weights 0.5 ** ((as_of - ts) / half_life) taken from as_of.
    log = contact_log([("c", 0.0, "chat", True, np.nan, 0.0), ("c", 10 * DAY, "phone", True, np.nan, 0.0)])
    cfg = ProfileConfig(half_life_days=5.0)
    as_of = 25 * DAY
    w_chat, w_phone = 0.5 ** (25 / 5), 0.5 ** (15 / 5)
    p = profile_one(history_of("c", contacts=log), as_of, cfg)
    assert p["prof_share_chat"] == pytest.approx(w_chat / (w_chat + w_phone), abs=1e-12)
    assert p["prof_share_phone"] == pytest.approx(w_phone / (w_chat + w_phone), abs=1e-12)
    assert p["prof_days_since_last"] == 15.0


def test_tie_on_ts_last_channel_is_later_row():
    log = contact_log([("c", 5.0, "email", True, np.nan, 0.0), ("c", 5.0, "chat", True, np.nan, 0.0)])
    at = pd.DataFrame({"customer_id": ["c"], "ts": [5.0]})
    assert profile_one(history_of("c", contacts=log), 5.0)["prof_last_channel"] == NAMES.index("chat")
    assert profiles_many(at, contacts=log)["prof_last_channel"].iloc[0] == NAMES.index("chat")
    rev = log.iloc[::-1]  # log order decides, not index labels
    assert profile_one(history_of("c", contacts=rev), 5.0)["prof_last_channel"] == NAMES.index("email")
    assert profiles_many(at, contacts=rev)["prof_last_channel"].iloc[0] == NAMES.index("email")


def test_contact_at_exactly_as_of_counts_and_after_does_not():
    cust = {"customer_id": "c", "contacts": [{"ts": 10.0, "channel": "chat", "resolved": True}]}
    assert profile_one(cust, 10.0)["prof_n_contacts"] == 1.0
    assert profile_one(cust, 9.999)["prof_n_contacts"] == 0.0


def test_shares_survive_many_half_lives():
    # Contacts thousands of half-lives before as_of: weights from as_of underflow to 0, shares must not.
    cfg = ProfileConfig(half_life_days=0.001)
    cust = {"customer_id": "c", "contacts": [{"ts": 0.0, "channel": "chat", "resolved": True},
                                              {"ts": 0.0, "channel": "phone", "resolved": True}]}
    p = profile_one(cust, 1000 * DAY, cfg)
    assert p["prof_share_chat"] == p["prof_share_phone"] == 0.5
    log = contact_log([("c", 0.0, "chat", True, np.nan, 0.0), ("c", 0.0, "phone", True, np.nan, 0.0)])
    b = profiles_many(pd.DataFrame({"customer_id": ["c"], "ts": [1000 * DAY]}), contacts=log, config=cfg)
    assert b["prof_share_chat"].iloc[0] == b["prof_share_phone"].iloc[0] == 0.5


def test_anonymous_and_unknown_profiles():
    anon = profile_one(None, 0.0)
    assert profile_one({}, 0.0) == pytest.approx(anon, nan_ok=True)
    assert anon["prof_known"] == 0.0 and anon["prof_n_contacts"] == 0.0
    assert math.isnan(anon["prof_days_since_last"]) and anon["prof_last_channel"] == -1.0
    assert all(anon[f"prof_share_{c}"] == 0.0 and anon[f"prof_optout_{c}"] == 0.0 for c in NAMES)
    assert all(math.isnan(anon[f"prof_resolved_{c}"]) and math.isnan(anon[f"prof_sat_{c}"]) for c in NAMES)
    new = profile_one({"customer_id": "new", "contacts": []}, 0.0)
    assert new["prof_known"] == 1.0 and new["prof_n_contacts"] == 0.0
    assert profile_one({"customer_id": ""}, 0.0)["prof_known"] == 0.0
    at = pd.DataFrame({"customer_id": [None, np.nan, "", "new"], "ts": [0.0, 0.0, 0.0, 0.0]})
    assert profiles_many(at, contacts=hand_log())["prof_known"].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_opt_out_forms():
    both = profile_one({"customer_id": "c", "opt_out": ["phone"], "opt_out_email": True,
                        "opt_out_chat": False, "opt_out_callback": np.nan}, 0.0)
    assert [both[f"prof_optout_{c}"] for c in NAMES] == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    # Consent: a flag that cannot be read counts as an opt-out on the lenient path.
    assert profile_one({"customer_id": "c", "opt_out_chat": "yes"}, 0.0)["prof_optout_chat"] == 1.0


def test_history_of_preserves_log_order_and_types():
    h = history_of("c1", contacts=hand_log())
    assert [c["ts"] for c in h["contacts"]] == [0.0, 90 * DAY, 90 * DAY, 180 * DAY, 500 * DAY]
    assert h["contacts"][2]["satisfaction"] is None
    assert type(h["contacts"][0]["resolved"]) is bool
    json.dumps(h)  # JSON-able, as a backend would store it
    assert history_of("nobody", contacts=hand_log()) == {"customer_id": "nobody", "contacts": [], "opt_out": []}
    assert history_of("c1", contacts=None)["contacts"] == []


# ---------------------------------------------------------------------------------------------
# Online = batch (Hypothesis)
# ---------------------------------------------------------------------------------------------
POOL = ["c0", "c1", "c2", "c3"]


@st.composite
def worlds(draw):
    cat = draw(st.sampled_from([ChannelCatalogue.default(), SMALL_CAT]))
    chans = cat.names
    half_life = draw(st.sampled_from([0.5, 3.0, 90.0]))
    # Few distinct timestamps (in days) so ties in ts and as_of == ts happen often.
    day = st.integers(0, 8).map(lambda d: d * DAY)
    contact = st.tuples(st.sampled_from(POOL[:3]), day, st.sampled_from(chans), st.booleans(),
                        st.one_of(st.just(np.nan), st.sampled_from([1.0, 2.5, 4.0, 5.0])),
                        st.floats(0, 1e4))
    rows = draw(st.lists(contact, min_size=0, max_size=25))
    log = contact_log(rows)
    if draw(st.booleans()):
        log.index = pd.Index(draw(st.permutations(list(range(100, 100 + len(log))))))
    at_day = st.sampled_from([-1.0, 0.0, 0.5, 3.0, 4.0, 8.0, 20.0]).map(lambda d: d * DAY)
    # c3 is a known customer with no contacts; None / NaN are anonymous visitors.
    at_cid = st.sampled_from(POOL + [None, np.nan])
    at_rows = draw(st.lists(st.tuples(at_cid, at_day), min_size=1, max_size=12))
    at = pd.DataFrame(at_rows, columns=["customer_id", "ts"], dtype=object)
    at["ts"] = at["ts"].astype(float)
    opt_cols = draw(st.lists(st.sampled_from(chans), unique=True, max_size=len(chans)))
    with_customers = draw(st.sampled_from(POOL[1:]))
    customers = pd.DataFrame({"customer_id": POOL[:3] + [with_customers] if with_customers != "c3"
                              else POOL, "segment": "x"}).drop_duplicates("customer_id")
    for ch in opt_cols:
        customers[f"opt_out_{ch}"] = draw(st.lists(st.booleans(), min_size=len(customers),
                                                   max_size=len(customers)))
    as_keys = draw(st.booleans())
    return ProfileConfig(half_life_days=half_life, channels=cat), log, at, customers, as_keys


def request_dict(log, customers, cid, as_keys):
    """What a backend holds: history_of plus opt-outs, as a list or as opt_out_<ch> keys."""
    d = history_of(cid, contacts=log)
    row = customers.loc[customers["customer_id"] == cid]
    opt = [c[len("opt_out_"):] for c in customers.columns if c.startswith("opt_out_")
           and len(row) and bool(row[c].iloc[0])]
    if as_keys:
        d.update({f"opt_out_{c}": True for c in opt})
    else:
        d["opt_out"] = opt
    return d


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_batch_equals_online_row_by_row(world):
    cfg, log, at, customers, as_keys = world
    before = (log.copy(deep=True), at.copy(deep=True), customers.copy(deep=True))
    batch = profiles_many(at, contacts=log, customers=customers, config=cfg)
    pd.testing.assert_frame_equal(log, before[0])
    pd.testing.assert_frame_equal(at, before[1])
    pd.testing.assert_frame_equal(customers, before[2])
    assert list(batch.columns) == list(cfg.feature_names)
    assert batch.index.equals(at.index) and (batch.dtypes == np.float64).all()
    buf = np.full(len(cfg.feature_names) + 5, -7.0)
    for i, (cid, as_of) in enumerate(zip(at["customer_id"], at["ts"])):
        cust = None if (cid is None or cid != cid) else request_dict(log, customers, cid, as_keys)
        online = profile_one(cust, as_of, cfg, strict=True)
        assert_profiles_equal(batch.iloc[i].to_numpy(), np.array(list(online.values())), names=(cid, as_of))
        assert profile_into(buf, 3, cust, as_of, cfg) == 0
        np.testing.assert_array_equal(buf[3:-2], np.array(list(online.values())))
        assert (buf[:3] == -7.0).all() and (buf[-2:] == -7.0).all()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.integers(1, 4))
def test_batch_bounds_contacts_like_online(world, max_contacts):
    # One bound, Limits.max_contacts: a profile counts the most recent max_contacts contacts up to
    # its time. Online reads the last max_contacts entries of the history it is given (the
    # customer's contacts up to the request, in time order); batch keeps the same slice.
    cfg, log, at, customers, as_keys = world
    limits = Limits(max_contacts=max_contacts)
    batch = profiles_many(at, contacts=log, customers=customers, config=cfg, limits=limits)
    over = 0
    for i, (cid, now) in enumerate(zip(at["customer_id"], at["ts"])):
        if cid is None or cid != cid:
            cust = None
        else:
            upto = log.loc[(log["ts"] <= now).to_numpy()].sort_values("ts", kind="stable")
            cust = request_dict(upto, customers, cid, as_keys)
            over += max(0, len(cust["contacts"]) - max_contacts)
        online = profile_one(cust, now, cfg, limits=limits)
        assert_profiles_equal(batch.iloc[i].to_numpy(), np.array(list(online.values())), names=(cid, now))
        assert online["prof_n_contacts"] <= max_contacts
    assert batch.attrs["skipped"]["over_limit"] == over


def test_batch_contacts_bound_defaults_to_the_online_default():
    n = DEFAULT_LIMITS.max_contacts + 500
    log = contact_log([("c", float(i), "chat" if i < 600 else "email", True, np.nan, 0.0) for i in range(n)])
    at = pd.DataFrame({"customer_id": ["c", "c"], "ts": [1e9, 10.0]})
    out = profiles_many(at, contacts=log)
    assert out["prof_n_contacts"].tolist() == [1000.0, 11.0]
    assert out["prof_n_email"].iloc[0] == float(n - 600)   # the most recent 1,000: all 900 e-mails
    assert out.attrs["skipped"] == {"over_limit": 500}
    online = profile_one(history_of("c", contacts=log), 1e9)
    assert_profiles_equal(out.iloc[0].to_numpy(), np.array(list(online.values())), names=("c", 1e9))


def test_batch_without_contacts_or_customers():
    at = pd.DataFrame({"customer_id": ["a", None], "ts": [1.0, 2.0]}, index=[7, 3])
    out = profiles_many(at, contacts=None)
    assert out.index.tolist() == [7, 3]
    assert_profiles_equal(out.loc[7].to_dict(), profile_one({"customer_id": "a"}, 1.0))
    assert_profiles_equal(out.loc[3].to_dict(), profile_one(None, 2.0))
    assert len(profiles_many(at.iloc[:0], contacts=hand_log())) == 0


def test_batch_chunking_gives_same_result(monkeypatch):
    rng = np.random.default_rng(3)
    m = 400
    log = contact_log(list(zip(rng.choice(POOL, m), rng.integers(0, 50, m) * DAY, rng.choice(NAMES, m),
                               rng.random(m) < 0.5, np.where(rng.random(m) < 0.5, np.nan, 3.0),
                               rng.random(m) * 100)))
    at = pd.DataFrame({"customer_id": rng.choice(POOL + [None], 300), "ts": rng.integers(-5, 60, 300) * DAY})
    whole = profiles_many(at, contacts=log)
    monkeypatch.setattr(prof, "_PAIR_CHUNK", 37)
    pd.testing.assert_frame_equal(profiles_many(at, contacts=log), whole)


def test_batch_accepts_common_dtypes():
    log = hand_log()
    alt = log.astype({"customer_id": object, "channel": object})
    alt["resolved"] = alt["resolved"].astype(int)  # 0/1 instead of bool
    alt["ts"] = (alt["ts"]).astype(np.int64)
    at = pd.DataFrame({"customer_id": ["c1", "c2"], "ts": [100 * DAY, 100 * DAY]})
    pd.testing.assert_frame_equal(profiles_many(at, contacts=alt), profiles_many(at, contacts=log))


# ---------------------------------------------------------------------------------------------
# profile_into
# ---------------------------------------------------------------------------------------------
def test_profile_into_equals_profile_one_and_counts_skips():
    cust = history_of("c1", contacts=hand_log())
    cust["contacts"].append({"ts": 1.0, "channel": "fax", "resolved": True})
    cust["opt_out"] = ["phone", "pigeon"]
    buf = np.zeros(50)
    skipped = profile_into(buf, 10, cust, 200 * DAY)
    assert skipped == 2
    want = profile_one(cust, 200 * DAY)
    np.testing.assert_array_equal(buf[10:10 + len(want)], np.array(list(want.values())))
    assert (buf[:10] == 0).all() and (buf[10 + len(want):] == 0).all()


@pytest.mark.parametrize("buf, offset, match", [
    (np.zeros(10), 0, "offset must leave room for 34 values in buf of length 10, got 0"),
    (np.zeros(40), 7, "offset must leave room for 34 values in buf of length 40, got 7"),
    (np.zeros(40, dtype=np.float32), 0, "buf must be a 1-D float64 numpy array, got ndarray of float32"),
    ([0.0] * 40, 0, "buf must be a 1-D float64 numpy array, got list"),
    (np.zeros((2, 40)), 0, "buf must be a 1-D float64 numpy array, got ndarray of float64 with ndim 2"),
    (np.zeros(40), 1.0, "offset must leave room for 34 values in buf of length 40, got 1.0"),
])
def test_profile_into_rejects_bad_buffers(buf, offset, match):
    with pytest.raises(ValidationError, match=match):
        profile_into(buf, offset, None, 0.0)


# ---------------------------------------------------------------------------------------------
# Lenient and strict online
# ---------------------------------------------------------------------------------------------
GOOD = {"ts": 5.0, "channel": "chat", "resolved": True, "satisfaction": 4.0, "handling_s": 10.0}

BAD_CONTACTS = [
    ({**GOOD, "channel": "fax"}, r"contacts\[1\]\.channel must be one of \['chat', .*\], got 'fax'"),
    ({**GOOD, "channel": None}, r"contacts\[1\]\.channel must be one of .*, got None"),
    ({**GOOD, "ts": float("nan")}, r"contacts\[1\]\.ts must be a finite number, got nan"),
    ({**GOOD, "ts": float("inf")}, r"contacts\[1\]\.ts must be a finite number, got inf"),
    ({**GOOD, "ts": "5"}, r"contacts\[1\]\.ts must be a finite number, got '5'"),
    ({k: v for k, v in GOOD.items() if k != "ts"}, r"contacts\[1\]\.ts must be a finite number, got None"),
    ({**GOOD, "resolved": "yes"}, r"contacts\[1\]\.resolved must be a bool, got 'yes'"),
    ({**GOOD, "resolved": None}, r"contacts\[1\]\.resolved must be a bool, got None"),
    ({**GOOD, "satisfaction": 6.0}, r"contacts\[1\]\.satisfaction must be a number in \[1, 5\].*, got 6.0"),
    ({**GOOD, "satisfaction": 0}, r"contacts\[1\]\.satisfaction must be a number in \[1, 5\].*, got 0"),
    ({**GOOD, "handling_s": -1.0}, r"contacts\[1\]\.handling_s must be a finite number >= 0.*, got -1.0"),
    ("chat", r"contacts\[1\] must be a mapping \(dict\), got 'chat'"),
]


@pytest.mark.parametrize("bad, match", BAD_CONTACTS)
def test_profile_one_strict_rejects_and_lenient_skips(bad, match, caplog):
    cust = {"customer_id": "c", "contacts": [dict(GOOD), bad]}
    with pytest.raises(ValidationError, match=match):
        profile_one(cust, 10.0, strict=True)
    with caplog.at_level(logging.DEBUG, logger="nextchannel.profile"):
        lenient = profile_one(cust, 10.0)
    assert "skipped 1 malformed" in caplog.text
    assert_profiles_equal(lenient, profile_one({"customer_id": "c", "contacts": [dict(GOOD)]}, 10.0))


@pytest.mark.parametrize("customer, match", [
    (["c1"], "customer must be a mapping \\(dict\\) or None, got list"),
    ({"customer_id": "c", "contacts": "chat"}, "contacts must be a list of contact dicts, got str"),
    ({"customer_id": "c", "opt_out": ["pigeon"]}, r"opt_out entries must be one of \['chat', .*\], got 'pigeon'"),
    ({"customer_id": "c", "opt_out": "phone"}, "opt_out must be a list of channel names, got 'phone'"),
    ({"customer_id": "c", "opt_out": 3}, "opt_out must be a list of channel names, got 3"),
    ({"customer_id": "c", "opt_out_phone": "yes"}, "opt_out_phone must be a bool, got 'yes'"),
])
def test_profile_one_strict_rejects_bad_customer(customer, match):
    with pytest.raises(ValidationError, match=match):
        profile_one(customer, 0.0, strict=True)
    profile_one(customer, 0.0)  # lenient: no raise


def test_lenient_string_opt_out_is_one_channel():
    assert profile_one({"customer_id": "c", "opt_out": "phone"}, 0.0)["prof_optout_phone"] == 1.0


@pytest.mark.parametrize("as_of", [float("nan"), float("inf"), None, "now", True])
def test_bad_as_of_raises_in_both_modes(as_of):
    for strict in (False, True):
        with pytest.raises(ValidationError, match="now must be a finite number"):
            profile_one(None, as_of, strict=strict)


def test_lenient_web_path_never_raises_on_garbage():
    garbage = [None, 1, "x", [], {"ts": [1]}, {"channel": ["chat"]}, {"ts": 1.0, "channel": {"a": 1}},
               {"ts": 1e308 * 10, "channel": "chat", "resolved": True}]
    p = profile_one({"customer_id": ["weird"], "contacts": garbage, "opt_out": [None, ["x"]]}, 5.0)
    assert p["prof_n_contacts"] == 0.0


def test_strict_and_lenient_agree_on_valid_input():
    cust = history_of("c1", contacts=hand_log(), customers=pd.DataFrame({"customer_id": ["c1"], "opt_out_email": [True]}))
    assert_profiles_equal(profile_one(cust, 200 * DAY, strict=True), profile_one(cust, 200 * DAY))


# ---------------------------------------------------------------------------------------------
# Strict batch validation
# ---------------------------------------------------------------------------------------------
def good_log() -> pd.DataFrame:
    return contact_log([("c1", 0.0, "chat", True, 4.0, 10.0), ("c2", 5.0, "phone", False, np.nan, 0.0),
                        ("c1", 9.0, "email", True, 2.0, 0.0)]).set_axis(["r0", "r1", "r2"])


def with_value(col, value, row="r1"):
    log = good_log().astype({col: object})
    log.loc[row, col] = value
    return log


BAD_LOGS = [
    (with_value("channel", "fax"), r"contacts row 'r1': channel must be one of \['chat', .*\], got 'fax'"),
    (with_value("channel", None), r"contacts row 'r1': channel must be one of .*, got None"),
    (with_value("ts", np.inf), "contacts row 'r1': ts must be a finite number, got inf"),
    (with_value("ts", np.nan), "contacts row 'r1': ts must be a finite number, got nan"),
    (with_value("ts", "noon"), "contacts row 'r1': ts must be a finite number, got 'noon'"),
    (with_value("satisfaction", 5.5), r"contacts row 'r1': satisfaction must be a number in \[1, 5\].*, got 5.5"),
    (with_value("satisfaction", 0.0), r"contacts row 'r1': satisfaction must be a number in \[1, 5\].*, got 0.0"),
    (with_value("satisfaction", "good"), r"contacts row 'r1': satisfaction must be .*, got 'good'"),
    (with_value("handling_s", -2.0), "contacts row 'r1': handling_s must be a finite number >= 0.*, got -2.0"),
    (with_value("handling_s", np.inf), "contacts row 'r1': handling_s must be a finite number >= 0.*, got inf"),
    (with_value("resolved", "no"), "contacts row 'r1': resolved must be a bool, got 'no'"),
    (with_value("resolved", None), "contacts row 'r1': resolved must be a bool, got None"),
    (with_value("resolved", 2), "contacts row 'r1': resolved must be a bool, got 2"),
    (with_value("customer_id", None), "contacts row 'r1': customer_id must be a non-empty string, got None"),
    (with_value("customer_id", ""), "contacts row 'r1': customer_id must be a non-empty string, got ''"),
    (good_log().drop(columns="handling_s"), r"contacts must have columns .*, missing \['handling_s'\]"),
    (good_log().drop(columns=["ts", "channel"]), r"missing \['ts', 'channel'\]"),
    # The first bad row is reported, whatever the field order.
    (with_value("handling_s", -1.0, "r2").assign(channel=["chat", "fax", "chat"]),
     r"contacts row 'r1': channel"),
    ([{"customer_id": "c1"}], "contacts must be a pandas DataFrame, got list"),
]


@pytest.mark.parametrize("log, match", BAD_LOGS)
def test_validate_contacts_rejects(log, match):
    with pytest.raises(ValidationError, match=match):
        validate_contacts(log)
    if isinstance(log, pd.DataFrame):
        with pytest.raises(ValidationError, match=match):
            profiles_many(pd.DataFrame({"customer_id": ["c1"], "ts": [1.0]}), contacts=log)


def test_validate_contacts_accepts_good_logs_unchanged():
    log = good_log()
    assert validate_contacts(log) is log
    empty = good_log().iloc[:0]
    assert validate_contacts(empty) is empty
    small = contact_log([("c", 0.0, "email", True, np.nan, 0.0)])
    with pytest.raises(ValidationError, match="channel must be one of"):
        validate_contacts(small, channels=SMALL_CAT)


@pytest.mark.parametrize("at, customers, match", [
    (pd.DataFrame({"customer_id": ["c1"]}), None, r"decisions must have columns \['customer_id', 'ts'\], missing \['ts'\]"),
    (pd.DataFrame({"customer_id": ["c1", "c2"], "ts": [1.0, np.nan]}), None, "decisions row 1: ts must be a finite number"),
    ({"customer_id": ["c1"], "ts": [1.0]}, None, "decisions must be a pandas DataFrame, got dict"),
    (pd.DataFrame({"customer_id": ["c1"], "ts": [1.0]}), pd.DataFrame({"id": ["c1"]}),
     "customers must have a column 'customer_id'"),
    (pd.DataFrame({"customer_id": ["c1"], "ts": [1.0]}), pd.DataFrame({"customer_id": ["c1", "c1"]}),
     r"customers row 1: customer_id must be unique"),
    (pd.DataFrame({"customer_id": ["c1"], "ts": [1.0]}),
     pd.DataFrame({"customer_id": ["c1", "c2"], "opt_out_phone": [True, "maybe"]}),
     "customers row 1: opt_out_phone must be a bool .*, got 'maybe'"),
])
def test_profiles_many_rejects_bad_at_and_customers(at, customers, match):
    with pytest.raises(ValidationError, match=match):
        profiles_many(at, contacts=good_log(), customers=customers)


def test_customers_missing_flags_and_foreign_columns():
    customers = pd.DataFrame({"customer_id": ["c1", "c2"], "opt_out_phone": [np.nan, 1.0],
                              "opt_out_pigeon": [True, True], "age_band": ["30-39", "50-59"]})
    at = pd.DataFrame({"customer_id": ["c1", "c2", "c9", None], "ts": [0.0, 0.0, 0.0, 0.0]})
    out = profiles_many(at, contacts=good_log(), customers=customers)
    assert out["prof_optout_phone"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert not any(c.endswith("pigeon") for c in out.columns)


def test_customer_ids_never_reach_log_records(caplog):
    import logging

    from nextchannel.profile import profile_one

    cust = {"customer_id": "secret-customer-4711", "opt_out": ["fax"],
            "contacts": [{"ts": 1.0, "channel": "pigeon", "resolved": True}]}
    with caplog.at_level(logging.DEBUG, logger="nextchannel"):
        profile_one(cust, now=5.0)
        profile_one("secret-customer-4711", now=5.0)
    assert caplog.records and not any("4711" in r.getMessage() for r in caplog.records)


def test_contacts_per_profile_are_bounded():
    from nextchannel.errors import ValidationError
    from nextchannel.profile import profile_one
    from nextchannel.schema import Limits

    contacts = [{"ts": float(i), "channel": "chat" if i < 9_000 else "email", "resolved": True}
                for i in range(10_000)]
    p = profile_one({"customer_id": "c", "contacts": contacts}, now=1e6)
    assert p["prof_n_contacts"] == 1_000.0 and p["prof_n_email"] == 1_000.0   # the most recent 1,000
    small = profile_one({"customer_id": "c", "contacts": contacts}, now=1e6, limits=Limits(max_contacts=10))
    assert small["prof_n_contacts"] == 10.0
    with pytest.raises(ValidationError, match="contacts must hold at most limits.max_contacts=1000 contacts, got 10000"):
        profile_one({"customer_id": "c", "contacts": contacts}, now=1e6, strict=True)


class _Hostile(float):
    def __eq__(self, other):
        raise RuntimeError("hostile")

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __float__ = __bool__ = __eq__
    __hash__ = float.__hash__


def test_hostile_contact_values_are_skipped_not_raised():
    from nextchannel.profile import profile_one

    cust = {"customer_id": "c", "contacts": [
        {"ts": _Hostile(1.0), "channel": "chat", "resolved": True},
        {"ts": 1.0, "channel": "chat", "resolved": _Hostile(1.0)},
        {"ts": 1.0, "channel": "chat", "resolved": True, "satisfaction": _Hostile(3.0)},
        {"ts": 2.0, "channel": "chat", "resolved": True}], "opt_out_phone": _Hostile(1.0)}
    p = profile_one(cust, now=5.0)
    assert p["prof_n_contacts"] == 1.0 and p["prof_optout_phone"] == 1.0


# ---------------------------------------------------------------------------------------------
# Prepared profiles (a session's customer, computed once)
# ---------------------------------------------------------------------------------------------
def _same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    np.testing.assert_array_equal(np.array(list(got.values())), np.array(list(want.values())))  # bit for bit


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.sampled_from([None, 1, 3]), st.booleans())
def test_prepared_profile_equals_the_dict_at_any_time(world, max_contacts, strict):
    """A prepared profile gives the dict's profile bit for bit, at times before, at and after its
    contacts (before: contacts are excluded, so it falls back to the dict), with the limits it was
    prepared with or others; with_contact equals the dict with the contact appended."""
    cfg, log, at, customers, as_keys = world
    limits = None if max_contacts is None else Limits(max_contacts=max_contacts)
    buf = np.full(len(cfg.feature_names), -7.0)
    for cid, as_of in zip(at["customer_id"], at["ts"]):
        cust = None if (cid is None or cid != cid) else request_dict(log, customers, cid, as_keys)
        try:
            want = profile_one(cust, as_of, cfg, strict=strict, limits=limits)
        except ValidationError as err:  # strict, more contacts than the limit: preparing refuses it too
            with pytest.raises(ValidationError, match=re.escape(str(err))):
                prof.prepare_one(cust, cfg, strict=strict, limits=limits)
            continue
        prepared = prof.prepare_one(cust, cfg, strict=strict, limits=limits)
        _same(profile_one(prepared, as_of, cfg, strict=strict, limits=limits), want)
        _same(profile_one(prepared, as_of, cfg), profile_one(cust, as_of, cfg))  # read with other settings
        skipped = profile_into(buf, 0, cust, as_of, cfg, limits=limits, strict=strict)
        assert profile_into(buf, 0, prepared, as_of, cfg, limits=limits, strict=strict) == skipped
        np.testing.assert_array_equal(buf, np.array(list(want.values())))
        new = {"ts": as_of - DAY, "channel": cfg.channels.names[-1], "resolved": True}
        grown = None if cust is None else {**cust, "contacts": [*cust["contacts"], new]}
        if grown is not None:
            try:
                want = profile_one(grown, as_of, cfg, strict=strict, limits=limits)
            except ValidationError as err:
                with pytest.raises(ValidationError, match=re.escape(str(err))):
                    prepared.with_contact(new)
                continue
            _same(profile_one(prepared.with_contact(new), as_of, cfg, strict=strict, limits=limits), want)


def test_prepared_profile_of_malformed_input_skips_like_the_dict():
    garbage = {"customer_id": "c", "contacts": [dict(GOOD), "chat", {**GOOD, "ts": "5"}], "opt_out": ["pigeon"]}
    prepared = prof.prepare_one(garbage)
    assert prepared.skipped == 3
    _same(profile_one(prepared, 10.0), profile_one(garbage, 10.0))
    with pytest.raises(ValidationError, match=r"contacts\[1\] must be a mapping"):
        profile_one(prepared, 10.0, strict=True)  # read strictly: the dict is read again, and refused
