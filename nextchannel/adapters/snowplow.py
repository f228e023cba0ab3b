"""Snowplow enriched events (the ``atomic.events`` columns, as JSON from the Analytics SDKs or a warehouse
export as CSV) → nextchannel's event log.

Mapping
-------
=============================================  ================================================================
Snowplow enriched event                        nextchannel
=============================================  ================================================================
``domain_sessionid``                           ``session_id``
``derived_tstamp`` (else ``dvce_created_       ``ts`` (epoch seconds; ``derived_tstamp`` corrects the device
tstamp``, else ``collector_tstamp``)           clock); ties are ordered by content, ``event_id`` last
``event_id``                                   a repeated id (at-least-once delivery) is dropped as ``duplicate``
``page_view`` + ``page_url``/``page_urlpath``  ``page_view``: ``page`` = URL path, ``page_type`` by URL rules
``page_ping`` heartbeats                       ``idle`` ending at the next activity when the gap exceeds the
                                               heartbeat by >= ``idle_min_s``; ``scroll`` when
                                               ``pp_yoffset_max`` changes: ``depth`` = (offset +
                                               ``br_viewheight``) / ``doc_height``, ``direction`` down/up
``link_click``, ``button_click``               ``click``
``submit_form``                                ``form_submit``
``form_error``, ``form_validation_error``      ``form_error``: ``field`` from ``elementId``/``field``/
(custom schemas)                               ``fieldName``
``add_to_cart`` / ``remove_from_cart``         ``cart_add`` / ``cart_remove``: ``value`` = ``unitPrice`` ×
                                               ``quantity``
``transaction`` (``tr_total``)                 ``purchase``: ``value`` = ``tr_total``
``site_search`` (``totalResults``)             ``search``: ``n_results`` = ``totalResults``
struct events                                  looked up by ``se_action`` (map your own with ``event_map``)
``dvce_type`` / ``dvce_ismobile`` /            ``session_start.device``
``useragent``
``br_lang``                                    ``session_start.language`` (primary subtag)
``mkt_medium``, else ``refr_medium``, else     ``session_start.referrer`` (no referrer → direct)
``page_referrer``
``user_id``                                    ``session_start.customer_id``
``domain_sessionidx`` > 1                      ``session_start.returning``
``os_timezone``                                ``session_start.utc_offset_s`` at the session's start
``change_form``, ``focus_form``,               no nextchannel event (counted in ``no_equivalent``)
``transaction_item``, ``page_ping``, …
any other name                                 dropped, counted per name in ``unknown_events``
=============================================  ================================================================

Self-describing (``unstruct``) events are read from the ``event_name`` column, the ``unstruct_event``
envelope (``{"schema": ..., "data": {"schema": "iglu:<vendor>/<name>/jsonschema/<version>", "data":
{...}}}``, a dict or a JSON string) or a shredded ``unstruct_event_<vendor>_<name>_<major>`` column.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from nextchannel.adapters.mapping import (
    AdapterReport,
    _is_mapping,
    _maybe_json,
    as_frame,
    assemble,
    device_of,
    first_of,
    first_time,
    language_of,
    mapped,
    number,
    page_fields,
    referrer_of,
    referrer_of_url,
    require_columns,
    resolve_event_map,
    text,
    texts,
    utc_offsets,
)

__all__ = ["SNOWPLOW_EVENT_MAP", "SNOWPLOW_NO_EQUIVALENT", "events_from_snowplow"]

#: Snowplow event name (``event_name``, the self-describing schema's name, or a struct event's
#: ``se_action``) → nextchannel event type.
SNOWPLOW_EVENT_MAP: dict[str, str] = {
    "page_view": "page_view",
    "link_click": "click", "button_click": "click",
    "submit_form": "form_submit",
    "form_error": "form_error", "form_validation_error": "form_error",
    "add_to_cart": "cart_add",
    "remove_from_cart": "cart_remove",
    "transaction": "purchase",
    "site_search": "search",
}
#: Snowplow names with no nextchannel event (dropped, counted as ``no_equivalent``).
SNOWPLOW_NO_EQUIVALENT: frozenset[str] = frozenset({
    "page_ping", "change_form", "focus_form", "transaction_item", "application_error", "page_unload",
    "web_vitals", "consent_preferences", "cmp_visible", "ad_impression", "ad_click", "focus",
    "snowplow_ecommerce_action",
})
_SCHEMA_NAME = re.compile(r"^iglu:[^/]+/([^/]+)/jsonschema/")
_TS_COLUMNS = ("derived_tstamp", "dvce_created_tstamp", "collector_tstamp")


def _unstruct(frame: pd.DataFrame, known: Iterable[str]) -> tuple[list[str | None], list[Mapping[str, Any]]]:
    """The self-describing event's name and data payload of each row (None / {} when it has none)."""
    n = len(frame)
    names: list[str | None] = [None] * n
    payloads: list[Mapping[str, Any]] = [{}] * n
    if "unstruct_event" in frame.columns:
        for i, v in enumerate(frame["unstruct_event"].to_numpy(dtype=object)):
            v = _maybe_json(v)
            inner = v.get("data") if _is_mapping(v) else None
            inner = _maybe_json(inner)
            if _is_mapping(inner):
                m = _SCHEMA_NAME.match(str(inner.get("schema", "")))
                names[i] = m.group(1) if m else None
                data = _maybe_json(inner.get("data"))
                payloads[i] = data if _is_mapping(data) else {}
    known = sorted(known, key=len, reverse=True)
    for c in frame.columns:
        if not (isinstance(c, str) and c.startswith("unstruct_event_")):
            continue
        base = re.sub(r"_\d+$", "", c[len("unstruct_event_"):])
        name = next((k for k in known if base == k or base.endswith("_" + k)), base)
        for i, v in enumerate(frame[c].to_numpy(dtype=object)):
            v = _maybe_json(v)
            if isinstance(v, (list, tuple)) and v:
                v = _maybe_json(v[0])
            if _is_mapping(v) and names[i] is None:
                names[i], payloads[i] = name, v
    return names, payloads


def _get(payload: Mapping[str, Any], *keys: str) -> Any:
    return next((payload[k] for k in keys if payload.get(k) is not None), None)


def events_from_snowplow(export: pd.DataFrame | Iterable[Mapping[str, Any]], *,
                         page_rules: Sequence[tuple[str, str]] | None = None, default_page_type: str = "category",
                         event_map: Mapping[str, str | None] | None = None, heartbeat_s: float = 10.0,
                         idle_min_s: float = 30.0, default_device: str = "desktop") -> tuple[pd.DataFrame, AdapterReport]:
    """nextchannel's event log from Snowplow enriched events (see the module's mapping table).

    Parameters
    ----------
    export : DataFrame or iterable of dicts
        One row per enriched event with the atomic column names. Required: ``domain_sessionid``,
        ``event`` or ``event_name``, and one of ``derived_tstamp``, ``dvce_created_tstamp``,
        ``collector_tstamp`` (ISO 8601 or ``YYYY-MM-DD hh:mm:ss.sss``, UTC).
    page_rules, default_page_type, event_map, idle_min_s, default_device
        As for :func:`nextchannel.adapters.events_from_ga4`; ``event_map`` changes
        :data:`SNOWPLOW_EVENT_MAP`.
    heartbeat_s : float, default 10
        The tracker's activity-tracking heartbeat (``enableActivityTracking({heartbeatDelay})``): page
        pings come this often while the visitor is active, so a longer gap is idle time.

    Returns
    -------
    events : DataFrame
        The event log, plus ``source_event`` (the Snowplow event name).
    report : AdapterReport

    Examples
    --------
    >>> from nextchannel.adapters import events_from_snowplow
    >>> rows = [
    ...     {"event": "page_view", "event_id": "e1", "domain_sessionid": "s-1", "domain_sessionidx": 2,
    ...      "derived_tstamp": "2026-01-07 13:00:00.000", "page_url": "https://shop.example/help/returns",
    ...      "dvce_type": "Computer", "br_lang": "fr-FR", "doc_height": 2000, "br_viewheight": 800},
    ...     {"event": "page_ping", "event_id": "e2", "domain_sessionid": "s-1",
    ...      "derived_tstamp": "2026-01-07 13:00:10.000", "pp_yoffset_max": 1200, "doc_height": 2000,
    ...      "br_viewheight": 800},
    ...     {"event": "page_ping", "event_id": "e3", "domain_sessionid": "s-1",
    ...      "derived_tstamp": "2026-01-07 13:01:20.000", "pp_yoffset_max": 1200, "doc_height": 2000,
    ...      "br_viewheight": 800},
    ... ]
    >>> events, report = events_from_snowplow(rows)
    >>> events[["type", "page_type", "depth", "duration_s"]].to_numpy().tolist()
    [['session_start', None, nan, nan], ['page_view', 'help', nan, nan], ['scroll', None, 1.0, nan], ['idle', None, nan, 60.0]]
    >>> report.derived
    {'idle': 1, 'scroll': 1, 'session_start': 1}
    """
    frame = as_frame(export, "export")
    emap, no_eq = resolve_event_map(SNOWPLOW_EVENT_MAP, SNOWPLOW_NO_EQUIVALENT, event_map)
    if len(frame.columns) or len(frame):
        require_columns(frame, "a Snowplow export", [("domain_sessionid",), ("event", "event_name"), _TS_COLUMNS])
    n = len(frame)
    if n == 0:
        return assemble(pd.DataFrame(), source="snowplow", n_rows=0, no_equivalent=no_eq)

    def col(name: str) -> pd.Series:
        return first_of(frame, name)

    ts = first_time(frame, _TS_COLUMNS)
    un_names, payloads = _unstruct(frame, [*emap, *no_eq])
    names: list[str | None] = []
    for ev, ev_name, action, un_name in zip(texts(col("event")), texts(col("event_name")),
                                            texts(col("se_action")), un_names):
        names.append((action or "struct") if ev == "struct" else (ev_name or un_name or ev))
    etype = pd.Series([emap.get(x) if x is not None else None for x in names], index=frame.index, dtype=object)
    url = col("page_url").where(col("page_url").notna(), col("page_urlpath"))
    pages, kinds, n_default = page_fields(url.where(etype == "page_view", None), page_rules, default_page_type)

    value = np.full(n, np.nan)
    n_results = np.full(n, np.nan)
    field: list[str | None] = [None] * n
    tr_total = number(col("tr_total"))
    for i, (t, pl) in enumerate(zip(etype, payloads)):
        if t in ("cart_add", "cart_remove"):
            price, qty = _num(_get(pl, "unitPrice", "unit_price", "price")), _num(_get(pl, "quantity"))
            value[i] = price * (qty if math.isfinite(qty) else 1.0)
        elif t == "purchase":
            value[i] = tr_total[i] if math.isfinite(tr_total[i]) else _num(_get(pl, "revenue", "total"))
        elif t == "search":
            n_results[i] = _num(_get(pl, "totalResults", "total_results"))
        elif t == "form_error":
            field[i] = text(_get(pl, "elementId", "field", "fieldName", "element_id"))
    medium = [m or r for m, r in zip(mapped(referrer_of, col("mkt_medium")), mapped(referrer_of, col("refr_medium")))]
    from_url = [referrer_of_url(r, h) for r, h in zip(col("page_referrer"), col("page_urlhost"))]
    referrer = [m or u for m, u in zip(medium, from_url)]
    ismobile = col("dvce_ismobile").map(lambda v: "mobile" if v is True or str(v).lower() in ("true", "1") else None)
    # the enrichment's device class first, then the tracker's mobile flag, then the user agent
    device = mapped(lambda c_ua_m: device_of(c_ua_m[0]) or c_ua_m[2] or device_of(None, c_ua_m[1]),
                    zip(col("dvce_type"), col("useragent"), ismobile))
    sidx = number(col("domain_sessionidx"))
    tz = col("os_timezone")
    norm = pd.DataFrame({
        "session_id": texts(col("domain_sessionid")),
        "ts": ts,
        "name": names,
        "type": etype,
        "event_id": texts(col("event_id")),
        "page": pages,
        "page_type": kinds,
        "value": value,
        "n_results": n_results,
        "field": field,
        "device": device,
        "language": mapped(language_of, col("br_lang")),
        "referrer": referrer,
        "customer_id": texts(col("user_id")),
        "returning": np.where(np.isfinite(sidx), sidx > 1, None),
        "utc_offset_s": utc_offsets(tz, ts),
        "yoffset_max": number(col("pp_yoffset_max")),
        "doc_height": number(col("doc_height")),
        "view_height": number(col("br_viewheight")),
    })
    return assemble(norm, source="snowplow", n_rows=n, no_equivalent=no_eq, idle_from="heartbeat",
                    heartbeat_s=heartbeat_s, idle_min_s=idle_min_s, scroll_from_offsets=True,
                    default_device=default_device, extra_defaults={"page_type_default": n_default})


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
