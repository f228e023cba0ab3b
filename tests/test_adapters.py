"""nextchannel.adapters: GA4, Snowplow and Segment exports → event logs, on small fixtures of each format
(tests/fixtures/): mapped events, derived idle/scroll/session_start, counts of what was dropped and why,
features on the result, strict errors, and order independence (Hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nextchannel as nc
from nextchannel.adapters import (
    DEFAULT_PAGE_RULES,
    events_from_ga4,
    events_from_segment,
    events_from_snowplow,
    page_type_of,
)
from nextchannel.errors import ConfigError, ValidationError
from nextchannel.features import SessionState, features_many
from nextchannel.schema import DEVICES, LANGUAGES, REFERRERS, validate_events

FIXTURES = Path(__file__).parent / "fixtures"
T0 = 1767790800.0  # 2026-01-07 13:00:00 UTC, the fixtures' clock
GA4_A, GA4_B = "1804357284.1767790000:1767790795", "99123.1767700000:1767791000"
SP_1, SP_2 = "9f1c6a52-3f1b-4d57-a7a4-0e3c2f1b2a10", "0b7e2d11-8c4a-4f3e-9d21-5a6b7c8d9e0f"


def ga4_records() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "ga4_export.jsonl").read_text().splitlines()]


def snowplow_frame() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "snowplow_enriched.csv", dtype=str, keep_default_na=False)


def segment_records() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "segment_events.jsonl").read_text().splitlines()]


def session(events: pd.DataFrame, sid: str, cols: tuple[str, ...] = ("ts", "type")) -> list[tuple]:
    ev = events[events["session_id"] == sid]
    out = []
    for row in ev[list(cols)].itertuples(index=False):
        out.append(tuple(round(v - T0, 3) if c == "ts" else (None if isinstance(v, float) and np.isnan(v) else v)
                         for c, v in zip(cols, row)))
    return out


# ---------------------------------------------------------------------------------------------
# GA4
# ---------------------------------------------------------------------------------------------
def test_ga4_maps_the_nested_export() -> None:
    events, report = events_from_ga4(ga4_records())
    validate_events(events)
    assert session(events, GA4_A, ("ts", "type", "page_type")) == [
        (0.0, "session_start", None), (0.0, "page_view", "home"), (20.0, "page_view", "category"),
        (31.0, "scroll", None), (45.0, "page_view", "product"), (70.0, "cart_add", None),
        (200.0, "idle", None),  # user_engagement: 130 s since add_to_cart, 12 s of them engaged
        (205.0, "page_view", "cart"), (215.0, "cart_remove", None), (231.0, "page_view", "checkout"),
        (260.0, "form_error", None), (300.0, "purchase", None)]
    a = events[events["session_id"] == GA4_A].set_index("type")
    assert a.loc["idle", "duration_s"] == pytest.approx(118.0)
    assert a.loc["scroll", ["depth", "direction"]].tolist() == [0.9, "down"]
    assert a.loc["cart_add", "value"] == 49.0          # items: 24.5 x 2 (no value param)
    assert a.loc["cart_remove", "value"] == 24.5       # the value param
    assert a.loc["purchase", "value"] == 24.5          # ecommerce.purchase_revenue
    assert a.loc["form_error", "field"] == "postcode"
    start = a.loc["session_start"]
    assert (start["device"], start["language"], start["referrer"], start["returning"]) == ("desktop", "en", "search", True)
    # session B arrives out of order, with batch indexes ordering the two events at the same microsecond
    assert session(events, GA4_B, ("ts", "type", "page")) == [
        (200.0, "session_start", None), (200.0, "page_view", "/search"), (200.0, "search", None),
        (240.0, "page_view", "/help/descaling"), (250.0, "click", None), (290.0, "page_view", "/about-us")]
    b = events[(events["session_id"] == GA4_B) & (events["type"] == "session_start")].iloc[0]
    assert (b["device"], b["language"], b["referrer"], b["customer_id"], b["returning"]) == \
        ("mobile", "de", "email", "c-1207", False)
    assert report.n_rows == 22 and report.n_events == len(events) == 18 and report.n_sessions == 2
    assert report.dropped == {"no_equivalent": 4, "no_session_id": 1, "no_timestamp": 1, "unknown_event": 1}
    assert report.unknown_events == {"cookie_banner_click": 1}
    assert report.no_equivalent_events == {"begin_checkout": 1, "session_start": 1, "user_engagement": 1, "view_item": 1}
    assert report.derived == {"idle": 1, "session_start": 2}
    assert report.defaults == {"n_results_missing": 1, "page_type_default": 1}  # /about-us matched no rule


def test_ga4_flattened_export_gives_the_same_log() -> None:
    """Parameters as columns of their own name and dotted record columns, as a flattening query writes them."""
    flat = []
    for r in ga4_records():
        row = {k: v for k, v in r.items() if k not in ("event_params", "device", "ecommerce")}
        for p in r.get("event_params", []):
            v = p["value"]
            row[p["key"]] = next((v[k] for k in ("string_value", "int_value", "double_value") if v[k] is not None), None)
        for k, v in (r.get("device") or {}).items():
            row[f"device.{k}"] = v
        if "ecommerce" in r:
            row["ecommerce.purchase_revenue"] = r["ecommerce"]["purchase_revenue"]
        flat.append(row)
    nested_events, nested_report = events_from_ga4(ga4_records())
    flat_events, flat_report = events_from_ga4(pd.DataFrame(flat))
    pd.testing.assert_frame_equal(flat_events, nested_events)
    assert flat_report == nested_report


def test_ga4_from_read_json_frame() -> None:
    frame = pd.read_json(FIXTURES / "ga4_export.jsonl", lines=True, dtype=False)
    events, report = events_from_ga4(frame)
    pd.testing.assert_frame_equal(events, events_from_ga4(ga4_records())[0])
    assert report.dropped["no_session_id"] == 1


def test_ga4_site_time_zone() -> None:
    events, _ = events_from_ga4(ga4_records(), timezone="America/New_York")
    starts = events[events["type"] == "session_start"]
    assert starts["utc_offset_s"].tolist() == [-18000.0, -18000.0]
    f = features_many(pd.DataFrame({"session_id": [GA4_A], "ts": [T0 + 10.0]}), events=events)
    assert f["hour_of_day"].tolist() == [8.0]  # 13:00 UTC is 08:00 in New York in January
    with pytest.raises(ConfigError, match=r"timezone must be an IANA time zone name like 'Europe/Berlin', got 'CET\+1'"):
        events_from_ga4(ga4_records(), timezone="CET+1")


def test_ga4_custom_rules_and_event_map() -> None:
    events, report = events_from_ga4(
        ga4_records(), page_rules=[("contact", r"^/about"), *DEFAULT_PAGE_RULES],
        event_map={"cookie_banner_click": "click", "view_item": "click", "form_error": None})
    assert report.unknown_events == {} and report.defaults.get("page_type_default", 0) == 0
    assert report.mapped["click"] == 3 and "form_error" not in report.mapped
    assert report.no_equivalent_events["form_error"] == 1
    assert events.loc[events["page"] == "/about-us", "page_type"].tolist() == ["contact"]


# ---------------------------------------------------------------------------------------------
# Snowplow
# ---------------------------------------------------------------------------------------------
def test_snowplow_maps_enriched_events() -> None:
    events, report = events_from_snowplow(snowplow_frame())
    validate_events(events)
    assert session(events, SP_1, ("ts", "type", "source_event")) == [
        (0.0, "session_start", ""), (0.0, "page_view", "page_view"),
        (20.0, "scroll", "page_ping"),             # pp_yoffset_max 0 -> 1200
        (110.0, "idle", "page_ping"),              # 90 s without a ping, heartbeat 10 s
        (110.0, "scroll", "page_ping"),            # back up to 600
        (112.0, "click", "link_click"), (115.0, "cart_add", "add_to_cart"), (130.0, "page_view", "page_view"),
        (141.0, "form_error", "form_error"), (150.0, "form_submit", "submit_form"), (180.0, "purchase", "transaction")]
    s1 = events[events["session_id"] == SP_1]
    scrolls = s1[s1["type"] == "scroll"]
    assert scrolls[["depth", "direction"]].to_numpy().tolist() == [[0.7, "down"], [0.5, "up"]]  # (y + 900) / 3000
    assert s1.loc[s1["type"] == "idle", "duration_s"].tolist() == [80.0]
    assert s1.loc[s1["type"] == "cart_add", "value"].tolist() == [49.0]     # unitPrice 24.5 x quantity 2
    assert s1.loc[s1["type"] == "purchase", "value"].tolist() == [49.0]     # tr_total
    assert s1.loc[s1["type"] == "form_error", "field"].tolist() == ["postcode"]
    assert s1.loc[s1["type"] == "page_view", "page"].tolist() == ["/products/copper-kettle", "/checkout"]
    start = s1.iloc[0]
    assert (start["device"], start["language"], start["referrer"], start["customer_id"], start["returning"],
            start["utc_offset_s"]) == ("desktop", "en", "search", "c-3301", True, 0.0)
    s2 = events[events["session_id"] == SP_2]
    assert s2["type"].tolist() == ["session_start", "page_view", "search", "page_view"]
    assert s2["page_type"].tolist()[1::2] == ["search", "help"]
    assert s2.loc[s2["type"] == "search", "n_results"].tolist() == [0.0]   # site_search totalResults
    assert s2["ts"].iloc[-1] - T0 == pytest.approx(75.0)                     # no derived_tstamp: device time
    start = s2.iloc[0]
    assert (start["device"], start["language"], start["referrer"], start["utc_offset_s"]) == ("mobile", "de", "ads", 3600.0)
    assert report.dropped == {"duplicate": 1, "no_equivalent": 5, "no_session_id": 1, "no_timestamp": 1,
                              "unknown_event": 2}
    assert report.unknown_events == {"newsletter_popup": 1, "play_video": 1}
    assert report.no_equivalent_events == {"change_form": 1, "page_ping": 3, "transaction_item": 1}
    assert report.derived == {"idle": 1, "scroll": 2, "session_start": 2}


def test_snowplow_retry_with_other_times_keeps_the_same_copy_whatever_the_order() -> None:
    frame = snowplow_frame()
    retry = frame[frame["event_id"] == "e-05"].assign(derived_tstamp="2026-01-07 13:01:52.900",
                                                       collector_tstamp="2026-01-07 13:01:53.300")
    both = pd.concat([frame, retry], ignore_index=True)
    a, report = events_from_snowplow(both)
    b, _ = events_from_snowplow(both.iloc[::-1])
    pd.testing.assert_frame_equal(a, b)
    assert report.dropped["duplicate"] == 2
    assert a.loc[a["source_event"] == "link_click", "ts"].tolist() == [T0 + 112.0]  # the earlier copy


def test_snowplow_heartbeat_and_shredded_columns() -> None:
    """A longer heartbeat makes the same gap less idle; a shredded unstruct column is read like the envelope."""
    events, _ = events_from_snowplow(snowplow_frame(), heartbeat_s=30.0)
    assert events.loc[events["type"] == "idle", "duration_s"].tolist() == [60.0]
    rows = [{"event": "page_view", "event_id": "1", "domain_sessionid": "s", "derived_tstamp": "2026-01-07T13:00:00Z",
             "page_url": "https://x.example/basket"},
            {"event": "unstruct", "event_id": "2", "domain_sessionid": "s", "derived_tstamp": "2026-01-07T13:00:05Z",
             "unstruct_event_com_snowplowanalytics_snowplow_remove_from_cart_1": {"sku": "a", "unitPrice": 5, "quantity": 3}}]
    events, report = events_from_snowplow(rows)
    assert events["type"].tolist() == ["session_start", "page_view", "cart_remove"]
    assert events.loc[events["type"] == "cart_remove", "value"].tolist() == [15.0]
    assert events.loc[events["type"] == "page_view", "page_type"].tolist() == ["cart"]
    assert report.defaults == {"device_default": 1}


# ---------------------------------------------------------------------------------------------
# Segment / RudderStack
# ---------------------------------------------------------------------------------------------
def test_segment_maps_track_and_page_calls() -> None:
    events, report = events_from_segment(segment_records())
    validate_events(events)
    sids = list(dict.fromkeys(events["session_id"]))
    assert sids == ["a-1:1767790800000", "a-2:1767791100000", "a-2:1767798300000"]  # a-2 split at a 2-hour gap
    assert session(events, sids[0], ("ts", "type", "page_type")) == [
        (0.0, "session_start", None), (0.0, "page_view", "home"), (15.0, "search", None),
        (16.0, "page_view", "search"), (30.0, "page_view", "product"), (60.0, "cart_add", None),
        (80.0, "page_view", "cart"), (95.0, "cart_remove", None), (101.0, "page_view", "checkout"),
        (120.0, "form_error", None),
        (121.0, "session_start", None),  # identify: the customer id is known from here on, not before
        (140.0, "purchase", None)]
    a1 = events[events["session_id"] == sids[0]]
    starts = a1[a1["type"] == "session_start"]
    assert starts["customer_id"].tolist() == [None, "c-5150"]
    assert (starts.iloc[0]["device"], starts.iloc[0]["language"], starts.iloc[0]["referrer"],
            starts.iloc[0]["utc_offset_s"]) == ("desktop", "en", "search", -18000.0)
    assert a1.loc[a1["type"] == "cart_add", "value"].tolist() == [49.0]
    assert a1.loc[a1["type"] == "cart_remove", "value"].tolist() == [24.5]   # "product_removed" matched
    assert a1.loc[a1["type"] == "purchase", "value"].tolist() == [27.49]     # total
    assert a1.loc[a1["type"] == "form_error", "field"].tolist() == ["card_number"]
    first_a2 = events[events["session_id"] == sids[1]]
    assert first_a2["type"].tolist() == ["session_start", "page_view", "click", "page_view"]
    assert first_a2["page_type"].tolist()[1::2] == ["help", "contact"]
    assert (first_a2.iloc[0]["device"], first_a2.iloc[0]["language"], first_a2.iloc[0]["referrer"]) == \
        ("tablet", "de", "email")
    assert report.dropped == {"duplicate": 1, "no_equivalent": 3, "no_session_id": 1, "no_timestamp": 1,
                              "unknown_event": 1}
    assert report.unknown_events == {"Chat Widget Opened": 1}
    assert report.no_equivalent_events == {"Checkout Started": 1, "Product Viewed": 1, "identify": 1}


def test_segment_session_gap() -> None:
    one, _ = events_from_segment(segment_records(), session_gap_s=3 * 3600.0)
    assert one["session_id"].nunique() == 2
    with pytest.raises(ConfigError, match=r"session_gap_s must be a finite number > 0, got -1"):
        events_from_segment(segment_records(), session_gap_s=-1)


# ---------------------------------------------------------------------------------------------
# All adapters: features, order, errors
# ---------------------------------------------------------------------------------------------
ADAPTERS = {
    "ga4": (events_from_ga4, ga4_records),
    "snowplow": (events_from_snowplow, lambda: snowplow_frame().to_dict("records")),
    "segment": (events_from_segment, segment_records),
}


@pytest.mark.parametrize("name", ADAPTERS)
def test_features_many_runs_on_the_adapter_output(name: str) -> None:
    adapt, load = ADAPTERS[name]
    events, _ = adapt(load())
    last = events.groupby("session_id")["ts"].max()
    at = pd.DataFrame({"session_id": last.index, "ts": last.to_numpy() + 5.0})
    f = features_many(at, events=events, validate=True)
    assert len(f) == len(at) and np.isfinite(f["pages_viewed"]).all()
    assert (f["pages_viewed"].to_numpy() == events[events["type"] == "page_view"].groupby("session_id").size()
            .reindex(last.index).to_numpy()).all()
    assert set(f["device"]) <= set(range(len(DEVICES))) and set(f["language"]) <= set(range(len(LANGUAGES)))
    assert set(f["referrer"]) <= set(range(-1, len(REFERRERS)))
    if name != "segment":  # GA4 and Snowplow carry the idle time the features read
        assert f["idle_total_s"].sum() > 0
    # the per-request executor, fed the same events one by one, agrees with the batch one
    for i, sid in enumerate(at["session_id"]):
        state = SessionState(sid, strict=True)
        for event in events[events["session_id"] == sid].to_dict("records"):
            state.update(event)
        online = state.features_one(now=float(at["ts"].iloc[i]))
        assert pd.Series(online).astype(float).equals(f.iloc[i][list(online)].astype(float).rename(None)), sid


def test_features_reflect_the_journey() -> None:
    events, _ = events_from_ga4(ga4_records())
    at = pd.DataFrame({"session_id": [GA4_A, GA4_A], "ts": [T0 + 100.0, T0 + 301.0]})
    f = features_many(at, events=events)
    assert f["cart_value"].tolist() == [49.0, 24.5]
    assert f["funnel_stage"].tolist() == [2.0, 4.0]
    assert f["idle_total_s"].tolist() == [0.0, 118.0]
    assert f["form_errors"].tolist() == [0.0, 1.0]
    assert f["purchased"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name", ADAPTERS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_row_order_of_the_export_does_not_change_the_log(name: str, data: st.DataObject) -> None:
    adapt, load = ADAPTERS[name]
    rows = load()
    perm = data.draw(st.permutations(range(len(rows))))
    expected, expected_report = adapt(rows)
    got, got_report = adapt([rows[i] for i in perm])
    pd.testing.assert_frame_equal(got, expected)
    assert got_report == expected_report


@pytest.mark.parametrize("name", ADAPTERS)
def test_input_is_not_mutated_and_empty_exports_give_empty_logs(name: str) -> None:
    adapt, load = ADAPTERS[name]
    frame = pd.DataFrame(load())
    before = frame.copy(deep=True)
    adapt(frame)
    pd.testing.assert_frame_equal(frame, before)
    events, report = adapt([])
    assert len(events) == 0 and report.n_rows == 0 and report.dropped == {}
    validate_events(events)


@pytest.mark.parametrize("adapt, frame, match", [
    (events_from_ga4, pd.DataFrame({"event_name": ["page_view"], "user_pseudo_id": ["u"]}),
     r"a GA4 export must have a column 'event_timestamp', missing; got columns \['event_name', 'user_pseudo_id'\]"),
    (events_from_ga4, pd.DataFrame({"event_timestamp": [1], "event_name": ["x"], "user_pseudo_id": ["u"]}),
     r"a GA4 export must have a column 'ga_session_id' or 'event_params' \(holding ga_session_id\), missing"),
    (events_from_snowplow, pd.DataFrame({"event": ["page_view"], "derived_tstamp": ["2026-01-07 13:00:00"]}),
     r"a Snowplow export must have a column 'domain_sessionid', missing; got columns \['event', 'derived_tstamp'\]"),
    (events_from_snowplow, pd.DataFrame({"event": ["page_view"], "domain_sessionid": ["s"]}),
     r"a Snowplow export must have a column 'derived_tstamp' or 'dvce_created_tstamp' or 'collector_tstamp', missing"),
    (events_from_segment, pd.DataFrame({"type": ["page"], "timestamp": ["2026-01-07T13:00:00Z"]}),
     r"a Segment export must have a column 'anonymousId' or 'userId', missing"),
    (events_from_segment, pd.DataFrame({"anonymousId": ["a"], "timestamp": ["2026-01-07T13:00:00Z"]}),
     r"a Segment export must have a column 'type', missing"),
    (events_from_segment, "events.jsonl",
     r"export must be a pandas DataFrame or an iterable of dicts \(one per event\), got str"),
    (events_from_segment, [{"type": "page"}, ["not", "a", "dict"]], r"export row 1 must be a dict, got list"),
])
def test_strict_errors_name_what_is_missing(adapt, frame, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        adapt(frame)


@pytest.mark.parametrize("kwargs, match", [
    ({"page_rules": [("basket", r"/cart")]}, r"page_rules\[0\] page type must be one of \['home', .*\], got 'basket'"),
    ({"page_rules": [("cart", r"(")]}, r"page_rules\[0\] regex must compile, got '\('"),
    ({"page_rules": ["cart"]}, r"page_rules\[0\] must be a \(page_type, regex\) pair of strings, got 'cart'"),
    ({"default_page_type": "other"}, r"default_page_type must be one of \['home', .*\], got 'other'"),
    ({"event_map": {"x": "teleport"}}, r"event_map\['x'\] must be None or one of \['page_view', .*\], got 'teleport'"),
    ({"event_map": {"x": "session_start"}}, r"event_map\['x'\] must be None or one of .*, got 'session_start'"),
    ({"default_device": "tv"}, r"default_device must be one of \['desktop', 'mobile', 'tablet'\], got 'tv'"),
    ({"idle_min_s": 0}, r"idle_min_s must be a finite number > 0, got 0"),
])
def test_bad_configuration(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        events_from_ga4(ga4_records(), **kwargs)


def test_odd_values_are_counted_not_fatal() -> None:
    rows = [{"type": "page", "anonymousId": "a", "timestamp": "2026-01-07T13:00:00Z", "context": {"page": {"url": 7}}},
            {"type": "page", "anonymousId": "a", "timestamp": "2026-01-07T13:00:01Z", "properties": {"path": "/cart"}},
            {"type": "track", "event": "Product Added", "anonymousId": "a", "timestamp": "2026-01-07T13:00:02Z",
             "properties": {"price": -5}},
            {"type": "track", "event": None, "anonymousId": "a", "timestamp": "2026-01-07T13:00:03Z"},
            {"type": "track", "event": "Order Completed", "anonymousId": "a", "timestamp": "2026-01-07T13:00:04Z"}]
    events, report = events_from_segment(rows)
    assert events["type"].tolist() == ["session_start", "page_view", "cart_add", "purchase"]
    assert np.isnan(events["value"].iloc[2]) and np.isnan(events["value"].iloc[3])
    assert report.dropped == {"no_page": 1, "unknown_event": 1}
    assert report.defaults == {"device_default": 1, "invalid_number": 1, "value_missing": 1}
    assert report.unknown_events == {"(no name)": 1}


@pytest.mark.parametrize("url, expected", [
    ("https://shop.example/", "home"), ("/index.html", "home"), ("/home", "home"),
    ("/products/red-shoe", "product"), ("/p/123", "product"), ("/collections/shoes", "category"),
    ("/Cart", "cart"), ("/basket.html", "cart"), ("/cart/checkout", "checkout"), ("/checkout/thank-you", "checkout"),
    ("/search?q=boots", "search"), ("/?s=boots", "search"), ("/help/products", "help"), ("/faq", "help"),
    ("/contact-us", "contact"), ("/my-account/orders", "account"), ("/pricing", "pricing"),
    ("/cartography/maps", "category"), ("/blog/2026/spring", "category"),
])
def test_page_type_rules(url: str, expected: str) -> None:
    assert page_type_of(url) == expected


def test_public_names() -> None:
    assert nc.events_from_ga4 is events_from_ga4 and nc.events_from_snowplow is events_from_snowplow
    assert nc.events_from_segment is events_from_segment and nc.AdapterReport is nc.adapters.AdapterReport


def test_schema_allows_unrecorded_numbers_but_not_bad_ones() -> None:
    log = pd.DataFrame({"session_id": ["s", "s", "s"], "ts": [0.0, 1.0, 2.0],
                        "type": ["search", "cart_add", "purchase"], "value": [np.nan, np.nan, 3.0]})
    validate_events(log)  # n_results absent as a column, value missing: allowed
    with pytest.raises(ValidationError, match=r"row 1: value of a cart_add event must be >= 0, got -1.0"):
        validate_events(log.assign(value=[np.nan, -1.0, 3.0]))


def test_exact_ties_are_ordered_by_content() -> None:
    """Two events at the same microsecond with nothing to order them by: the log is the same either way."""
    def row(value: float) -> dict:
        return {"event_timestamp": 1767790800000000, "event_name": "add_to_cart", "user_pseudo_id": "u",
                "ga_session_id": 1, "value": value}
    first, _ = events_from_ga4([row(5.0), row(7.0)])
    second, _ = events_from_ga4([row(7.0), row(5.0)])
    pd.testing.assert_frame_equal(first, second)
    assert first["value"].tolist()[1:] == [5.0, 7.0]


def test_readme_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    readme = (FIXTURES.parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "events_from_ga4(" in b)
    monkeypatch.chdir(FIXTURES.parents[1])
    env: dict = {}
    exec(compile(block, "README.md", "exec"), env)
    printed = capsys.readouterr().out
    assert printed.startswith("ga4: 22 rows -> 18 events in 2 sessions;") and "no_session_id 1" in printed
    assert len(env["features"]) == 2 and env["events"]["utc_offset_s"].dropna().tolist() == [0.0, 0.0]
