"""Google Analytics 4: the BigQuery export (``events_YYYYMMDD``), nested or flattened, → nextchannel's event log.

Mapping
-------
=============================================  ================================================================
GA4 export                                     nextchannel
=============================================  ================================================================
``user_pseudo_id`` + ``ga_session_id`` param   ``session_id`` = ``"<user_pseudo_id>:<ga_session_id>"`` (the
                                               session number is unique per user only)
``event_timestamp`` (µs, UTC)                  ``ts`` (seconds); ties by ``batch_ordering_id``,
                                               ``batch_event_index`` when the export has them
``page_view`` + ``page_location``              ``page_view``: ``page`` = URL path, ``page_type`` by URL rules
``scroll`` + ``percent_scrolled``              ``scroll``: ``depth`` = percent / 100, ``direction`` ``"down"``
``click``, ``file_download``, ``select_item``,  ``click``
``select_promotion``
``view_search_results``, ``search``            ``search`` (``n_results`` from a ``search_results`` or
                                               ``n_results`` param when the site sends one, else missing)
``add_to_cart`` / ``remove_from_cart``         ``cart_add`` / ``cart_remove``: ``value`` param, else the sum of
                                               ``items`` price × quantity
``purchase``                                   ``purchase``: ``ecommerce.purchase_revenue``, else ``value``,
                                               else ``items``
``form_submit``                                ``form_submit``
``form_error`` (a custom event; not standard)  ``form_error``: ``field`` from ``form_field``/``field``/
                                               ``field_name``
``engagement_time_msec`` (any event)           ``idle`` ending at that event: time since the session's previous
                                               event minus the engaged time, when >= ``idle_min_s``
``device.category``                            ``session_start.device`` (desktop / mobile / tablet)
``device.language``                            ``session_start.language`` (primary subtag: ``en-us`` → ``en``)
``medium`` param, ``collected_traffic_source.  ``session_start.referrer`` (organic → search, cpc → ads,
manual_medium``, ``traffic_source.medium``     (none) → direct, email, social, else other)
``user_id``                                    ``session_start.customer_id``
``ga_session_number`` param > 1                ``session_start.returning``
``session_start``, ``first_visit``,            no nextchannel event (counted in ``no_equivalent``); their
``user_engagement``, ``view_item``,            context and engagement time are still used
``begin_checkout``, ``form_start``, …
any other name                                 dropped, counted per name in ``unknown_events``
=============================================  ================================================================

Parameters are read from a column of their name (a flattened export), from the nested
``event_params`` records (``[{"key": ..., "value": {"string_value" | "int_value" | "double_value" |
"float_value": ...}}]``, as lists or JSON strings) or from ``event_params.<key>`` columns; nested
records such as ``device`` may be dict columns, ``device.category`` or ``device_category`` columns.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from nextchannel.adapters.mapping import (
    AdapterReport,
    as_frame,
    assemble,
    column,
    device_of,
    first_of,
    language_of,
    mapped,
    number,
    page_fields,
    referrer_of,
    require_columns,
    utc_offset_of,
    utc_offsets,
    texts,
    _is_mapping,
    _maybe_json,
)
from nextchannel.adapters.mapping import resolve_event_map
from nextchannel.errors import ConfigError, ValidationError

__all__ = ["GA4_EVENT_MAP", "GA4_NO_EQUIVALENT", "events_from_ga4"]

#: GA4 event name → nextchannel event type.
GA4_EVENT_MAP: dict[str, str] = {
    "page_view": "page_view",
    "scroll": "scroll",
    "click": "click", "file_download": "click", "select_item": "click", "select_promotion": "click",
    "view_search_results": "search", "search": "search",
    "add_to_cart": "cart_add",
    "remove_from_cart": "cart_remove",
    "purchase": "purchase",
    "form_submit": "form_submit",
    "form_error": "form_error",
}
#: GA4 event names with no nextchannel event (dropped, counted as ``no_equivalent``, never as unknown).
GA4_NO_EQUIVALENT: frozenset[str] = frozenset({
    "session_start", "first_visit", "user_engagement", "first_open", "view_item", "view_item_list",
    "view_cart", "view_promotion", "begin_checkout", "add_shipping_info", "add_payment_info",
    "add_to_wishlist", "form_start", "video_start", "video_progress", "video_complete", "login", "sign_up",
    "generate_lead", "refund", "select_content", "share", "screen_view",
})

_VALUE_KEYS = ("string_value", "int_value", "double_value", "float_value")


def _param_value(v: Any) -> Any:
    if _is_mapping(v):
        for k in _VALUE_KEYS:
            x = v.get(k)
            if x is not None:
                return x
        return None
    return v


def _params(frame: pd.DataFrame, keys: Sequence[str]) -> dict[str, pd.Series]:
    """Each event parameter in ``keys`` as an object Series (None where the event lacks it)."""
    out: dict[str, pd.Series] = {}
    nested = frame["event_params"].to_numpy(dtype=object) if "event_params" in frame.columns else None
    parsed = None
    if nested is not None:
        parsed = []
        for v in nested:
            v = _maybe_json(v)
            d: dict[str, Any] = {}
            if isinstance(v, (list, tuple, np.ndarray)):
                for p in v:
                    if _is_mapping(p) and isinstance(p.get("key"), str):
                        d[p["key"]] = _param_value(p.get("value"))
            elif _is_mapping(v):  # already a key → value mapping
                d = {k: _param_value(x) for k, x in v.items()}
            parsed.append(d)
    for key in keys:
        s = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        for c in (frame[key] if key in frame.columns else None,
                  frame[f"event_params.{key}"] if f"event_params.{key}" in frame.columns else None):
            if c is not None:
                c = c.map(_param_value)
                fill = s.isna() & c.notna()
                s[fill] = c[fill]
        if parsed is not None:
            c = pd.Series([d.get(key) for d in parsed], index=frame.index, dtype=object)
            fill = s.isna() & c.notna()
            s[fill] = c[fill]
        out[key] = s
    return out


def _items_value(v: Any) -> float:
    """Sum of price × quantity over an ``items`` list (NaN when no item has a price)."""
    v = _maybe_json(v)
    if not isinstance(v, (list, tuple, np.ndarray)):
        return math.nan
    total, seen = 0.0, False
    for it in v:
        if not _is_mapping(it):
            continue
        try:
            price = float(it.get("price"))
        except (TypeError, ValueError):
            continue
        try:
            qty = float(it.get("quantity")) if it.get("quantity") is not None else 1.0
        except (TypeError, ValueError):
            qty = 1.0
        if math.isfinite(price) and math.isfinite(qty):
            total += price * qty
            seen = True
    return total if seen else math.nan


def events_from_ga4(export: pd.DataFrame | Iterable[Mapping[str, Any]], *,
                    page_rules: Sequence[tuple[str, str]] | None = None, default_page_type: str = "category",
                    event_map: Mapping[str, str | None] | None = None, idle_min_s: float = 30.0,
                    default_device: str = "desktop", timezone: str | None = None) -> tuple[pd.DataFrame, AdapterReport]:
    """nextchannel's event log from a GA4 BigQuery export (see the module's mapping table).

    Parameters
    ----------
    export : DataFrame or iterable of dicts
        One row per GA4 event, nested (``event_params`` records, ``device`` records) or flattened.
        Required: ``event_timestamp``, ``event_name``, ``user_pseudo_id`` and ``ga_session_id``
        (a column or an ``event_params`` entry).
    page_rules : sequence of (page_type, regex), optional
        URL rules for page types (default :data:`nextchannel.adapters.DEFAULT_PAGE_RULES`).
    default_page_type : str, default "category"
        Page type of a URL no rule matches (counted in ``report.defaults["page_type_default"]``).
    event_map : mapping, optional
        Changes to :data:`GA4_EVENT_MAP`: a GA4 name → a nextchannel event type, or None (no equivalent).
    idle_min_s : float, default 30
        Shortest gap between engaged time and wall-clock time written as an ``idle`` event.
    default_device : str, default "desktop"
        Device of a session whose rows name none (counted in ``report.defaults["device_default"]``).
    timezone : str, optional
        IANA time zone of the site's visitors (``"Europe/Berlin"``) for ``session_start.utc_offset_s``
        (so that ``hour_of_day`` is local); GA4 exports do not carry the visitor's. Default: none (UTC).

    Returns
    -------
    events : DataFrame
        The event log (:func:`nextchannel.schema.validate_events` holds), plus ``source_event``
        (the GA4 event name, empty for the written ``session_start``).
    report : AdapterReport
        Counts of what was mapped, derived, dropped and why.

    Examples
    --------
    >>> from nextchannel.adapters import events_from_ga4
    >>> rows = [
    ...     {"event_timestamp": 1767790800000000, "event_name": "page_view", "user_pseudo_id": "u1",
    ...      "event_params": [{"key": "ga_session_id", "value": {"int_value": 17}},
    ...                       {"key": "page_location", "value": {"string_value": "https://shop.example/cart"}}],
    ...      "device": {"category": "mobile", "language": "de-de"}},
    ...     {"event_timestamp": 1767790860000000, "event_name": "add_payment_info", "user_pseudo_id": "u1",
    ...      "event_params": [{"key": "ga_session_id", "value": {"int_value": 17}}]},
    ...     {"event_timestamp": 1767790890000000, "event_name": "confetti", "user_pseudo_id": "u1",
    ...      "event_params": [{"key": "ga_session_id", "value": {"int_value": 17}}]},
    ... ]
    >>> events, report = events_from_ga4(rows)
    >>> events[["session_id", "type", "page_type", "device", "language"]].to_numpy().tolist()
    [['u1:17', 'session_start', None, 'mobile', 'de'], ['u1:17', 'page_view', 'cart', None, None]]
    >>> report.dropped, report.unknown_events
    ({'no_equivalent': 1, 'unknown_event': 1}, {'confetti': 1})
    """
    frame = as_frame(export, "export")
    if timezone is not None and utc_offset_of(timezone, 0.0) is None:
        raise ConfigError(f"timezone must be an IANA time zone name like 'Europe/Berlin', got {timezone!r}")
    emap, no_eq = resolve_event_map(GA4_EVENT_MAP, GA4_NO_EQUIVALENT, event_map)
    if len(frame.columns) or len(frame):
        require_columns(frame, "a GA4 export", [("event_timestamp",), ("event_name",), ("user_pseudo_id",)])
        if "event_params" not in frame.columns and column(frame, "ga_session_id") is None \
                and "event_params.ga_session_id" not in frame.columns:
            raise ValidationError("a GA4 export must have a column 'ga_session_id' or 'event_params' "
                                  f"(holding ga_session_id), missing; got columns {list(frame.columns)}")
    n = len(frame)
    if n == 0:
        return assemble(pd.DataFrame(), source="ga4", n_rows=0, no_equivalent=no_eq)
    p = _params(frame, ("ga_session_id", "ga_session_number", "page_location", "engagement_time_msec",
                        "percent_scrolled", "value", "search_results", "n_results", "form_field", "field",
                        "field_name", "medium"))
    name = texts(frame["event_name"])
    etype = name.map(lambda x: emap.get(x) if x is not None else None)
    user = texts(frame["user_pseudo_id"])
    sess = texts(p["ga_session_id"])
    sid = [f"{u}:{s}" if u is not None and s is not None else None for u, s in zip(user, sess)]
    pages, kinds, n_default = page_fields(p["page_location"].where(etype == "page_view", None), page_rules,
                                          default_page_type)
    value = number(p["value"])
    items = column(frame, "items")
    items_value = np.array([_items_value(v) for v in items.to_numpy(dtype=object)]) if items is not None \
        else np.full(n, np.nan)
    revenue = number(column(frame, "ecommerce.purchase_revenue"), n)
    is_purchase = (etype == "purchase").to_numpy()
    value = np.where(is_purchase & np.isfinite(revenue), revenue, value)
    value = np.where(np.isnan(value), items_value, value)
    session_number = number(p["ga_session_number"])
    medium = first_of(frame, "collected_traffic_source.manual_medium",
                      "session_traffic_source_last_click.manual_campaign.medium", "traffic_source.medium")
    medium = p["medium"].where(p["medium"].notna(), medium)
    percent = number(p["percent_scrolled"])
    n_results = number(p["search_results"])
    n_results = np.where(np.isnan(n_results), number(p["n_results"]), n_results)
    field = p["form_field"].where(p["form_field"].notna(), p["field"])
    field = field.where(field.notna(), p["field_name"])
    is_scroll = (etype == "scroll").to_numpy()
    norm = pd.DataFrame({
        "session_id": sid,
        "ts": number(frame["event_timestamp"]) / 1e6,
        "name": name,
        "type": etype,
        "seq1": number(column(frame, "batch_ordering_id"), n),
        "seq2": number(column(frame, "batch_event_index"), n),
        "page": pages,
        "page_type": kinds,
        "depth": np.where(is_scroll, np.clip(percent / 100.0, 0.0, 1.0), np.nan),
        "direction": np.where(is_scroll, "down", None),
        "value": value,
        "n_results": n_results,
        "field": texts(field),
        "device": mapped(device_of, first_of(frame, "device.category")),
        "language": mapped(language_of, first_of(frame, "device.language")),
        "referrer": mapped(referrer_of, medium),
        "customer_id": texts(first_of(frame, "user_id")),
        "returning": np.where(np.isfinite(session_number), session_number > 1, None),
        "engagement_s": number(p["engagement_time_msec"]) / 1000.0,
    })
    if timezone is not None:
        norm["utc_offset_s"] = utc_offsets([timezone] * n, norm["ts"].to_numpy())
    return assemble(norm, source="ga4", n_rows=n, no_equivalent=no_eq, idle_from="engagement",
                    idle_min_s=idle_min_s, default_device=default_device,
                    extra_defaults={"page_type_default": n_default})
