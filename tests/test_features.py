"""Features: one definition, two executors (online SessionState, batch features_many) that agree."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextchannel.errors import ValidationError
from nextchannel.features import (
    EVENT_VARIABLES,
    FEATURES,
    SESSION_FEATURES,
    SLOTS,
    SessionState,
    features_many,
)
from nextchannel.schema import EVENT_FIELDS, PAGE_TYPES, ChannelCatalogue, Channel, Limits

SESSIONS = ["a", "b", "c"]

_field_values = {
    "page": st.sampled_from(["/", "/p/1", "/p/2", "/cart", "/help", None]),
    "page_type": st.sampled_from(list(PAGE_TYPES) + [None]),
    "depth": st.one_of(st.floats(0, 1), st.none()),
    "direction": st.sampled_from(["down", "up", None]),
    "duration_s": st.one_of(st.floats(0, 500, allow_nan=False), st.none()),
    "field": st.sampled_from(["zip", "email", None]),
    "value": st.one_of(st.floats(0, 300, allow_nan=False), st.none()),
    "n_results": st.one_of(st.integers(0, 3), st.none()),
    "channel": st.sampled_from(["chat", "phone", "self_service"]),
    "device": st.sampled_from(["desktop", "mobile", "tablet", None]),
    "language": st.sampled_from(["en", "de", "sv", None]),
    "referrer": st.sampled_from(["direct", "ads", "nowhere", None]),
    "customer_id": st.sampled_from(["c1", "c2", None]),
    "returning": st.sampled_from([True, False, None]),
    "utc_offset_s": st.sampled_from([0.0, 3600.0, -18000.0, None]),
}


@st.composite
def event_logs(draw, late: bool = False):
    """Interleaved sessions, every event type; each session in non-decreasing ts (ties included),
    or with ``late=True`` also events that arrive after later ones (out of order)."""
    n = draw(st.integers(0, 40))
    clock = {s: draw(st.sampled_from([0.0, 1_767_225_600.0, 1_767_225_600.5])) for s in SESSIONS}
    rows = []
    for _ in range(n):
        sid = draw(st.sampled_from(SESSIONS))
        clock[sid] += draw(st.sampled_from([0.0, 0.0, 0.25, 1.0, 7.5, 60.0, 3601.0]))
        ts = clock[sid] - (draw(st.sampled_from([0.0, 0.0, 0.0, 0.25, 7.5, 100.0])) if late else 0.0)
        etype = draw(st.sampled_from(list(EVENT_FIELDS)))
        row = {"session_id": sid, "ts": ts, "type": etype}
        for f in EVENT_FIELDS[etype]:
            row[f] = draw(_field_values[f])
        rows.append(row)
    return rows


def _frame(rows):
    cols = ["session_id", "ts", "type"] + sorted({k for r in rows for k in r} - {"session_id", "ts", "type"})
    return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=["session_id", "ts", "type"])


def _online(rows, sid, t, limits=None):
    """The online state of a decision at ``t``: the session's events in arrival order, up to the first
    one later than ``t`` (a decision at t is taken before any event after t has arrived)."""
    s = SessionState(sid, limits=limits)
    for r in rows:
        if r["session_id"] == sid:
            if r["ts"] > t:
                break
            s.update(r)
    return s.features_one(now=max(t, s.last_ts))


def _assert_same(batch_row: dict, online: dict, ctx):
    for name in SESSION_FEATURES:
        a, b = batch_row[name], online[name]
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), (name, a, b, ctx)
        else:
            assert abs(a - b) <= 1e-9, (name, a, b, ctx)


def _parquet_typed(events):
    """The frame as a Parquet reader returns it (string, boolean dtypes): the batch path's fast paths."""
    import io

    buf = io.BytesIO()
    events.to_parquet(buf, index=False)
    return pd.read_parquet(io.BytesIO(buf.getvalue()))


def _dictionary_typed(events):
    """The frame as Parquet read with text columns as dictionaries gives it (pandas categoricals,
    ``pyarrow.parquet.read_table(..., read_dictionary=...)``): the batch path looks each distinct
    value up once."""
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    events.to_parquet(buf, index=False)
    text = [c for c in events.columns if pd.api.types.infer_dtype(events[c], skipna=True) in ("string", "empty")
            and events[c].notna().any()]
    out = pq.read_table(io.BytesIO(buf.getvalue()), read_dictionary=text).to_pandas()
    assert all(isinstance(out[c].dtype, pd.CategoricalDtype) for c in text)
    return out


def _check_online_equals_batch(rows, data, limits=None, typed=False):
    ts_pool = sorted({r["ts"] for r in rows}) or [0.0]
    at_rows = []
    for _ in range(data.draw(st.integers(1, 8))):
        sid = data.draw(st.sampled_from(SESSIONS + ["zz"]))
        base = data.draw(st.sampled_from(ts_pool))
        t = base + data.draw(st.sampled_from([0.0, 0.0, 0.1, 30.0, -1.0]))
        at_rows.append({"session_id": sid, "ts": t})
    at = pd.DataFrame(at_rows)
    events = _dictionary_typed(_frame(rows)) if typed == "dictionary" else _parquet_typed(_frame(rows)) if typed \
        else _frame(rows)
    before = events.copy(deep=True)
    batch = features_many(at, events=events, limits=limits)
    pd.testing.assert_frame_equal(events, before)  # no mutation of the input
    assert list(batch.columns) == list(SESSION_FEATURES)
    assert list(batch.index) == list(at.index)
    for i, r in enumerate(at_rows):
        _assert_same(batch.iloc[i].to_dict(), _online(rows, r["session_id"], r["ts"], limits), (r, rows))
    # the counts of skipped rows agree with the online counters over whole sessions
    states = {sid: SessionState(sid, limits=limits).update_many([r for r in rows if r["session_id"] == sid])
              for sid in SESSIONS}
    assert batch.attrs["skipped"]["out_of_order"] == sum(s.n_out_of_order for s in states.values())
    assert batch.attrs["skipped"]["over_limit"] == sum(s.n_over_limit for s in states.values())
    return batch, at


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_logs(), data=st.data())
def test_online_equals_batch(rows, data):
    _check_online_equals_batch(rows, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_logs(late=True), data=st.data())
def test_online_equals_batch_on_parquet_typed_columns(rows, data):
    """Columns typed as Parquet gives them (pandas string and boolean dtypes) take vectorised paths in
    batch; the answers stay the online ones."""
    _check_online_equals_batch(rows, data, typed=True)


def test_parquet_typed_session_context_equals_online():
    """The typed fast paths on the values they treat specially: missing and empty customer ids, a
    language outside the vocabulary, a boolean ``returning`` column, string event types."""
    starts = [("a", True, "c1", "en"), ("b", False, None, None), ("c", True, "", "xx")]
    rows = [{"session_id": sid, "ts": 10.0 + i, "type": "session_start", "device": "mobile", "language": lang,
             "referrer": "direct", "customer_id": cid, "returning": ret, "utc_offset_s": 0.0}
            for i, (sid, ret, cid, lang) in enumerate(starts)]
    rows += [{"session_id": "b", "ts": 20.0, "type": "click"}]
    events = _parquet_typed(_frame(rows)).astype({"returning": "boolean", "customer_id": "str"})  # as simulate() writes
    assert isinstance(events["type"].dtype, pd.StringDtype) and isinstance(events["customer_id"].dtype, pd.StringDtype)
    at = pd.DataFrame({"session_id": ["a", "b", "c"], "ts": [30.0, 30.0, 30.0]})
    batch = features_many(at, events=events)
    for i, sid in enumerate(["a", "b", "c"]):
        _assert_same(batch.iloc[i].to_dict(), _online(rows, sid, 30.0), sid)
    assert batch["is_returning"].tolist() == [1.0, 0.0, 1.0] and batch["is_known"].tolist() == [1.0, 0.0, 0.0]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_logs(late=True), data=st.data(), tight=st.booleans())
def test_online_equals_batch_on_dictionary_typed_columns(rows, data, tight):
    """Text columns read as dictionaries (categoricals), with late and tied events: each distinct value
    is looked up once in batch; the answers stay the online ones and equal those of plain columns."""
    limits = Limits(max_events=6, max_pages=2, max_str_len=3) if tight else None
    batch, at = _check_online_equals_batch(rows, data, limits, typed="dictionary")
    plain = features_many(at, events=_frame(rows), limits=limits)
    pd.testing.assert_frame_equal(batch, plain, check_exact=True)
    assert batch.attrs == plain.attrs


def test_known_customer_is_one_rule_online_and_in_batch():
    """``is_known``: only a missing value or the empty ``str`` is unknown, for plain, string and
    dictionary-typed columns alike (a numpy string is the ``str`` it equals: the batch path merges them)."""
    cids = ["c1", "", None, np.str_(""), 0, float("nan"), np.str_("c9")]
    rows = [{"session_id": f"s{i}", "ts": 1.0, "type": "session_start", "customer_id": c} for i, c in enumerate(cids)]
    at = pd.DataFrame({"session_id": [r["session_id"] for r in rows], "ts": 2.0})
    online = [_online(rows, r["session_id"], 2.0)["is_known"] for r in rows]
    assert online == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert features_many(at, events=_frame(rows))["is_known"].tolist() == online
    strs = [r for r in rows if r["customer_id"] is None or type(r["customer_id"]) is str]
    at_s = at[at["session_id"].isin([r["session_id"] for r in strs])]
    only_text = [r for r in rows if isinstance(r["customer_id"], str)]  # every value text: the vectorised rule
    at_t = at[at["session_id"].isin([r["session_id"] for r in only_text])]
    assert features_many(at_t, events=_frame(only_text))["is_known"].tolist() == \
        [online[int(r["session_id"][1:])] for r in only_text]
    for typed in (_parquet_typed(_frame(strs)), _dictionary_typed(_frame(strs))):
        assert features_many(at_s, events=typed)["is_known"].tolist() == [online[int(r["session_id"][1:])]
                                                                          for r in strs]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_logs(late=True), data=st.data())
def test_online_equals_batch_with_late_events(rows, data):
    """One rule for events out of order: skipped and counted, online and in batch alike."""
    _check_online_equals_batch(rows, data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_logs(late=True), data=st.data())
def test_online_equals_batch_under_tight_limits(rows, data):
    """Bounds (events kept, pages remembered, page id length) are applied identically."""
    _check_online_equals_batch(rows, data, Limits(max_events=6, max_pages=2, max_str_len=3))


@settings(max_examples=40, deadline=None)
@given(rows=event_logs())
def test_batch_does_not_depend_on_row_order_across_sessions(rows):
    """Interleaving of sessions in the log must not matter, only each session's own order."""
    if not rows:
        return
    at = pd.DataFrame({"session_id": SESSIONS, "ts": [max(r["ts"] for r in rows)] * 3})
    a = features_many(at, events=_frame(rows))
    grouped = sorted(rows, key=lambda r: SESSIONS.index(r["session_id"]))  # stable: keeps order within
    b = features_many(at, events=_frame(grouped))
    pd.testing.assert_frame_equal(a, b)


def test_point_in_time_ignores_future_events():
    rows = [
        {"session_id": "a", "ts": 0.0, "type": "page_view", "page": "/c", "page_type": "checkout"},
        {"session_id": "a", "ts": 10.0, "type": "form_error", "field": "zip"},
        {"session_id": "a", "ts": 10.0, "type": "form_error", "field": "zip"},
        {"session_id": "a", "ts": 20.0, "type": "form_error", "field": "card"},
    ]
    at = pd.DataFrame({"session_id": ["a", "a", "a", "a"], "ts": [9.999, 10.0, 15.0, 20.0]})
    f = features_many(at, events=_frame(rows))
    assert f["form_errors"].tolist() == [0.0, 2.0, 2.0, 3.0]  # ties at the decision ts count
    assert f["dwell_checkout_s"].tolist() == [9.999, 10.0, 15.0, 20.0]


def test_hand_computed_session():
    e = [
        {"type": "session_start", "ts": 0.0, "device": "mobile", "language": "de", "referrer": "ads",
         "customer_id": "c9", "returning": True, "utc_offset_s": 3600.0},
        {"type": "page_view", "ts": 0.0, "page": "/", "page_type": "home"},
        {"type": "page_view", "ts": 10.0, "page": "/p/1", "page_type": "product"},
        {"type": "page_view", "ts": 40.0, "page": "/", "page_type": "home"},       # back, revisit
        {"type": "page_view", "ts": 45.0, "page": "/cart", "page_type": "cart"},   # forward
        {"type": "idle", "ts": 90.0, "duration_s": 40.0},
        {"type": "scroll", "ts": 91.0, "depth": 0.5, "direction": "down"},
        {"type": "scroll", "ts": 92.0, "depth": 0.2, "direction": "up"},           # reversal
        {"type": "cart_add", "ts": 93.0, "value": 30.0},
        {"type": "cart_add", "ts": 94.0, "value": 20.0},
        {"type": "cart_remove", "ts": 95.0, "value": 20.0},
        {"type": "search", "ts": 96.0, "n_results": 0},
        {"type": "offer_shown", "ts": 97.0, "channel": "chat"},
        {"type": "offer_dismissed", "ts": 98.0, "channel": "chat"},
    ]
    s = SessionState("s")
    for r in e:
        s.update({"session_id": "s", **r})
    f = s.features_one(now=100.0)
    assert f["dwell_current_s"] == 55.0
    assert f["dwell_home_s"] == 10.0 + 5.0
    assert f["dwell_product_s"] == 30.0
    assert f["dwell_cart_s"] == 55.0
    assert f["longest_dwell_s"] == 55.0
    assert f["back_navigations"] == 1.0 and f["revisits"] == 1.0
    assert f["funnel_stage"] == 3.0 and f["time_since_forward_s"] == 55.0
    assert f["idle_current_page_s"] == 40.0 and f["idle_count"] == 1.0
    assert f["scroll_reversals"] == 1.0 and f["scroll_depth"] == 0.2
    assert f["cart_value"] == 30.0 and f["cart_items"] == 1.0 and f["cart_removals"] == 1.0
    assert f["searches_no_result"] == 1.0
    assert f["time_since_offer_s"] == 3.0 and f["time_since_dismiss_s"] == 2.0
    assert f["device"] == 1.0 and f["language"] == 1.0 and f["is_known"] == 1.0 and f["is_returning"] == 1.0
    assert f["hour_of_day"] == 1.0 and f["weekday"] == 3.0  # 1970-01-01 01:01 local, a Thursday
    assert f["page_type"] == float(PAGE_TYPES.index("cart"))


def test_empty_session_defaults():
    f = SessionState().features_one(now=5.0)
    assert f["pages_viewed"] == 0.0 and f["dwell_current_s"] == 0.0 and f["funnel_stage"] == -1.0
    assert math.isnan(f["time_since_offer_s"]) and f["device"] == -1.0


def test_features_into_matches_features_one():
    s = SessionState("s")
    s.update({"session_id": "s", "ts": 1.0, "type": "page_view", "page": "/x", "page_type": "help"})
    buf = np.full(len(SESSION_FEATURES) + 2, -7.0)
    s.features_into(buf, now=3.0, offset=1)
    one = s.features_one(now=3.0)
    assert buf[0] == -7.0 and buf[-1] == -7.0
    np.testing.assert_array_equal(buf[1:-1], np.array([one[n] for n in SESSION_FEATURES]))


MALFORMED = [
    ({"session_id": "s", "ts": 1.0, "type": "teleport"}, "type must be one of"),
    ({"session_id": "s", "type": "click"}, "ts of a click event is required"),
    ({"session_id": "s", "ts": float("inf"), "type": "click"}, "ts of a click event must be a finite number"),
    ({"session_id": "s", "ts": "soon", "type": "click"}, "ts of a click event must be a number"),
    ({"session_id": "s", "ts": 1.0, "type": "idle", "duration_s": -3}, r"duration_s of a idle event must be >= 0, got -3"),
    ({"session_id": "s", "ts": 1.0, "type": "offer_shown", "channel": "pigeon"}, "channel of a offer_shown event must be one of"),
    ({"session_id": "s", "ts": -1.0, "type": "click"}, "must not go backwards"),
    ({"session_id": "other", "ts": 1.0, "type": "click"}, "session_id must be 's'"),
    ("not a dict", "event must be a mapping"),
]


@pytest.mark.parametrize("event,match", MALFORMED)
def test_strict_mode_raises_precise_errors(event, match):
    s = SessionState("s", strict=True)
    s.update({"session_id": "s", "ts": 0.0, "type": "click"})
    with pytest.raises(ValidationError, match=match):
        s.update(event)


@pytest.mark.parametrize("event,match", MALFORMED)
def test_lenient_mode_skips_and_counts(event, match):
    s = SessionState("s")
    s.update({"session_id": "s", "ts": 0.0, "type": "click"})
    before = s.features_one(now=2.0)
    s.update(event)
    after = s.features_one(now=2.0)
    if "channel" in match or "duration_s" in match:
        # a field value out of range is not malformed for the lenient path: the event counts
        return
    assert s.n_malformed == 1
    _assert_same(after, before, event)


def test_batch_skips_malformed_rows_like_online():
    rows = [
        {"session_id": "a", "ts": 0.0, "type": "click"},
        {"session_id": "a", "ts": float("nan"), "type": "click"},
        {"session_id": "a", "ts": 1.0, "type": "teleport"},
        {"session_id": None, "ts": 1.0, "type": "click"},
    ]
    f = features_many(pd.DataFrame({"session_id": ["a"], "ts": [5.0]}), events=_frame(rows))
    assert f["clicks"].iloc[0] == 1.0
    with pytest.raises(ValidationError, match="row 1: ts of a click event"):
        features_many(pd.DataFrame({"session_id": ["a"], "ts": [5.0]}), events=_frame(rows), validate=True)


@pytest.mark.parametrize("at,match", [
    (pd.DataFrame({"session_id": ["a"]}), r"decisions must be a DataFrame with columns \['session_id', 'ts'\]"),
    (pd.DataFrame({"session_id": ["a"], "ts": [float("nan")]}), "decisions.ts must be finite"),
    ([("a", 1.0)], "decisions must be a DataFrame"),
])
def test_bad_decision_points(at, match):
    ev = _frame([{"session_id": "a", "ts": 0.0, "type": "click"}])
    with pytest.raises(ValidationError, match=match):
        features_many(at, events=ev)


def test_spec_is_consistent():
    names = [s.name for s in SLOTS]
    assert len(names) == len(set(names))
    assert len(SESSION_FEATURES) == len(set(SESSION_FEATURES)) == len(FEATURES)
    assert {s.kind for s in SLOTS} <= {"count", "sum", "max", "last", "first"}
    # a slot must not shadow an event variable: expressions would read the wrong one
    event_vars = set(EVENT_VARIABLES) | {"ts", "duration_s", "value", "n_results", "depth", "utc_offset_s"}
    assert not set(names) & event_vars


def test_profile_features_join_point_in_time():
    """features_many with a contact log = online session features + profile_one at the same time."""
    from nextchannel.profile import history_of, profile_one

    rows = [
        {"session_id": "a", "ts": 100.0, "type": "session_start", "customer_id": "c1", "device": "mobile"},
        {"session_id": "a", "ts": 101.0, "type": "page_view", "page": "/help", "page_type": "help"},
        {"session_id": "b", "ts": 100.0, "type": "session_start", "customer_id": None},
    ]
    contacts = pd.DataFrame({
        "customer_id": ["c1", "c1", "c1"], "ts": [10.0, 50.0, 150.0],
        "channel": ["phone", "chat", "email"], "resolved": [True, False, True],
        "satisfaction": [4.0, float("nan"), 5.0], "handling_s": [300.0, 120.0, 0.0],
    })
    customers = pd.DataFrame({"customer_id": ["c1"], "opt_out_phone": [True]})
    at = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [101.0, 200.0, 120.0]})
    f = features_many(at, events=_frame(rows), customers=customers, contacts=contacts)
    for i, r in at.iterrows():
        cust = history_of("c1", contacts=contacts, customers=customers) if r["session_id"] == "a" else None
        expected = {**_online(rows, r["session_id"], r["ts"]), **profile_one(cust, r["ts"])}
        got = f.loc[i].to_dict()
        assert set(got) == set(expected)
        for k, v in expected.items():
            assert (math.isnan(v) and math.isnan(got[k])) or abs(v - got[k]) <= 1e-9, (k, v, got[k])
    assert f.loc[0, "prof_n_contacts"] == 2.0 and f.loc[1, "prof_n_contacts"] == 3.0   # point in time
    assert f.loc[0, "prof_optout_phone"] == 1.0 and f.loc[2, "prof_known"] == 0.0


@pytest.mark.parametrize("event", [
    {"session_id": "s", "ts": 10**400, "type": "click"},
    {"session_id": "s", "ts": 1.0, "type": "idle", "duration_s": 10**400},
    {"session_id": "s", "ts": 1.0, "type": "page_view", "page": ["/a"], "page_type": ["cart"]},
    {"session_id": "s", "ts": 1.0, "type": "session_start", "device": {"x": 1}, "language": ["en"],
     "referrer": [1], "customer_id": [1, 2]},
    {"session_id": "s", "ts": 1.0, "type": "scroll", "direction": ["up"], "depth": "deep"},
])
def test_lenient_update_never_raises_on_odd_values(event):
    s = SessionState("s")
    s.update(event)
    f = s.features_one(now=2.0)
    assert all(isinstance(v, float) for v in f.values())


def test_session_ids_compare_by_canonical_form():
    """5, 5.0, numpy 5 and "5" are one session online and in batch (a float-read id column still matches)."""
    rows = [{"session_id": 5, "ts": 1.0, "type": "click"}, {"session_id": 5.0, "ts": 2.0, "type": "click"},
            {"session_id": np.int64(5), "ts": 3.0, "type": "click"}, {"session_id": "5", "ts": 4.0, "type": "click"},
            {"session_id": 5.5, "ts": 4.5, "type": "click"}]
    s = SessionState(5.0).update_many(rows)
    assert s.features_one(now=5.0)["clicks"] == 4.0 and s.n_malformed == 1
    ev = pd.DataFrame({"session_id": [5.0, 5.0, 7.0], "ts": [1.0, 2.0, 1.0], "type": ["click"] * 3})
    for ids in (["5", "7"], [5, 7], [5.0, 7.0]):
        f = features_many(pd.DataFrame({"session_id": ids, "ts": [9.0, 9.0]}), events=ev)
        assert f["clicks"].tolist() == [2.0, 1.0], ids


def test_now_before_the_last_event_is_refused_or_clamped():
    s = SessionState("s")
    s.update({"session_id": "s", "ts": 10.0, "type": "page_view", "page": "/", "page_type": "home"})
    _assert_same(s.features_one(now=4.0), s.features_one(now=10.0), "clamped")  # lenient: the last event's time
    assert s.n_now_clamped == 1 and s.features_one(now=4.0)["dwell_current_s"] == 0.0
    strict = SessionState("s", strict=True)
    strict.update({"session_id": "s", "ts": 10.0, "type": "click"})
    with pytest.raises(ValidationError, match="now must not be earlier than the session's last event"):
        strict.features_one(now=4.0)
    with pytest.raises(ValidationError, match="now must be a finite number"):
        s.features_one(now=float("nan"))


def test_late_events_are_refused_in_strict_mode_online_and_in_batch():
    rows = [{"session_id": "a", "ts": 5.0, "type": "click"}, {"session_id": "a", "ts": 1.0, "type": "form_error", "field": "zip"}]
    with pytest.raises(ValidationError, match="must not go backwards"):
        SessionState("a", strict=True).update_many(rows)
    with pytest.raises(ValidationError, match="row 1: ts of a form_error event must not go backwards"):
        features_many(pd.DataFrame({"session_id": ["a"], "ts": [9.0]}), events=_frame(rows), validate=True)
    f = features_many(pd.DataFrame({"session_id": ["a"], "ts": [9.0]}), events=_frame(rows))
    assert f["form_errors"].iloc[0] == 0.0 and f.attrs["skipped"]["out_of_order"] == 1


def test_strict_validation_uses_the_given_catalogue():
    cat = ChannelCatalogue((Channel("chat"), Channel("video")))
    ev = {"session_id": "s", "ts": 1.0, "type": "offer_shown", "channel": "video"}
    SessionState("s", strict=True, channels=cat).update(ev)
    with pytest.raises(ValidationError, match="channel of a offer_shown event must be one of"):
        SessionState("s", strict=True).update(ev)          # the default catalogue has no video
    log = _frame([ev])
    features_many(pd.DataFrame({"session_id": ["s"], "ts": [2.0]}), events=log, validate=True, channels=cat)
    with pytest.raises(ValidationError, match="row 0: channel"):
        features_many(pd.DataFrame({"session_id": ["s"], "ts": [2.0]}), events=log, validate=True)


class _Hostile:
    """An object every one of whose conversions and comparisons raises."""

    def _boom(self, *a):
        raise RuntimeError("hostile")

    __float__ = __int__ = __index__ = __bool__ = __hash__ = __eq__ = __ne__ = __lt__ = __le__ = _boom
    __gt__ = __ge__ = __str__ = __repr__ = __len__ = __iter__ = _boom


class _HostileStr(str):
    def __eq__(self, other):
        raise RuntimeError("hostile")

    __hash__ = __ne__ = __float__ = _HostileStr_boom = __eq__


class _HostileMapping(dict):
    def get(self, *a):
        raise RecursionError("deep")


@pytest.mark.parametrize("event", [
    {"session_id": np.array(["s", "t"]), "ts": 1.0, "type": "click"},
    {"session_id": "s", "ts": 1.0, "type": "page_view", "page": 10**5000, "page_type": "cart"},
    {"session_id": "s", "ts": 10**5000, "type": "click"},
    {"session_id": _Hostile(), "ts": 1.0, "type": "click"},
    {"session_id": "s", "ts": _Hostile(), "type": "click"},
    {"session_id": "s", "ts": 1.0, "type": _Hostile()},
    {"session_id": "s", "ts": 1.0, "type": _HostileStr("click")},
    {"session_id": "s", "ts": 1.0, "type": "page_view", "page": _Hostile(), "page_type": _Hostile()},
    {"session_id": "s", "ts": 1.0, "type": "scroll", "direction": _HostileStr("up"), "depth": _Hostile()},
    {"session_id": "s", "ts": 1.0, "type": "session_start", "device": _HostileStr("mobile"),
     "language": _Hostile(), "customer_id": _Hostile(), "returning": _Hostile(), "utc_offset_s": _Hostile()},
    {"session_id": "s", "ts": 1.0, "type": "idle", "duration_s": _Hostile()},
    _HostileMapping(session_id="s", ts=1.0, type="click"),
    _Hostile(),
    None,
    [("ts", 1.0)],
])
def test_lenient_update_never_raises_on_hostile_values(event):
    s = SessionState("s")
    s.update(event)
    s.update_many([event, event])
    f = s.features_one(now=2.0)
    assert all(isinstance(v, float) for v in f.values())


def test_one_sessions_memory_is_bounded():
    """100,000 distinct page ids of 1 kB each: the state keeps limits.max_pages ids of max_str_len chars."""
    import tracemalloc

    s = SessionState("s", limits=Limits(max_events=200_000))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        s.update({"session_id": "s", "ts": float(i), "type": "page_view", "page": f"/{i}/" + "x" * 1000,
                  "page_type": "product"})
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(s._pages) == 1_000 and max(len(p) for p in s._pages) == 256
    assert grown < 2_000_000, grown
    assert s.features_one()["pages_viewed"] == 100_000.0


def test_a_huge_replay_costs_only_the_bounded_events():
    events = [{"session_id": "s", "ts": float(i), "type": "click"} for i in range(100_000)]
    s = SessionState("s").update_many(events)
    assert s.features_one()["clicks"] == 10_000.0 and s.n_over_limit == 90_000


def test_serialisation_keeps_bounds_catalogue_and_counters():
    cat = ChannelCatalogue((Channel("chat"), Channel("video")))
    s = SessionState(5.0, strict=False, channels=cat, limits=Limits(max_events=3, max_pages=1))
    for i, ts in enumerate([1.0, 0.5, 2.0, 3.0, 4.0]):
        s.update({"session_id": 5, "ts": ts, "type": "page_view", "page": f"/{i}", "page_type": "home"})
    r = SessionState.from_bytes(s.to_bytes())
    assert (r.limits, r.channels, r._sid, r.n_out_of_order, r.n_over_limit) == (s.limits, cat, "5", 1, 1)
    _assert_same(r.features_one(), s.features_one(), "round trip")
    r.update({"session_id": "5", "ts": 9.0, "type": "click"})   # still over the limit after the round trip
    assert r.n_over_limit == 2 and r.features_one()["clicks"] == 0.0


@pytest.mark.parametrize("events", ["x" * 1_000_000, b"abc", {"type": "click"}, 42, None])
def test_update_many_refuses_what_is_not_a_list_of_events(events):
    s = SessionState("s").update_many(events)
    assert s.n_malformed == 1 and s.features_one(now=1.0)["clicks"] == 0.0
    with pytest.raises(ValidationError, match="events must be a list of event dicts"):
        SessionState("s", strict=True).update_many(events)


# ---------------------------------------------------------------------------------------------
# Strict validation: the batch validator applies the per-event rules (one definition, two executors)
# ---------------------------------------------------------------------------------------------
_offset = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-86400.0, 86400.0, 86400.5, 0.0]),
                    st.none())


@settings(max_examples=60, deadline=None)
@given(offset=_offset)
def test_validate_events_range_checks_utc_offset_like_validate_event(offset):
    from nextchannel.schema import validate_event, validate_events

    row = {"session_id": "s", "ts": 1.0, "type": "session_start", "device": "desktop", "language": "en",
           "referrer": "direct", "customer_id": None, "returning": False, "utc_offset_s": offset}
    try:
        validate_event(row)
        one = None
    except ValidationError as err:
        one = str(err)
    try:
        validate_events(pd.DataFrame([row]))
        many = None
    except ValidationError as err:
        many = str(err)
    assert (one is None) == (many is None), (offset, one, many)
    if one is not None:
        assert many == f"row 0: {one}"
