"""Segment and RudderStack ``track`` / ``page`` calls (their common message format, e.g. as JSON lines
from a warehouse or an S3 destination) → nextchannel's event log.

Mapping
-------
=============================================  ================================================================
Segment / RudderStack message                  nextchannel
=============================================  ================================================================
``anonymousId`` (else ``userId``) +            ``session_id`` = ``"<anonymousId>:<sessionId>"``; without a
``context.sessionId`` (RudderStack,            session key, a visitor's messages are split into sessions at
Segment plugins) or ``properties.session_id``  gaps longer than ``session_gap_s`` (30 min), the session named
                                               ``"<anonymousId>:<first ms>"``
``timestamp`` (ISO 8601; else                  ``ts`` (epoch seconds)
``originalTimestamp``, ``receivedAt``)
``messageId``                                  a repeated id (retried delivery) is dropped as ``duplicate``
``type: page`` + ``context.page.url`` /        ``page_view``: ``page`` = URL path, ``page_type`` by URL rules
``properties.url`` / ``…path``
``Products Searched``                          ``search`` (``n_results`` from ``properties.n_results`` /
                                               ``results`` when sent, else missing)
``Product Added`` / ``Product Removed``        ``cart_add`` / ``cart_remove``: ``value`` = ``price`` ×
                                               ``quantity`` (else ``properties.value``)
``Order Completed``                            ``purchase``: ``value`` = ``total``, else ``revenue``, ``value``
``Form Submitted``                             ``form_submit``
``Form Error``, ``Form Field Error``           ``form_error``: ``field`` from ``properties.field`` /
                                               ``field_name``
``Link Clicked``, ``Button Clicked``,          ``click``
``Element Clicked``, ``Product Clicked``,
``Promotion Clicked``
``context.device.type`` / ``context.           ``session_start.device``
userAgent``
``context.locale``                             ``session_start.language`` (primary subtag)
``context.campaign.medium``, else              ``session_start.referrer``
``context.page.referrer``
``userId``                                     ``session_start.customer_id``
``context.timezone``                           ``session_start.utc_offset_s`` at the session's start
``Product Viewed``, ``Cart Viewed``,           no nextchannel event (counted in ``no_equivalent``): the
``Checkout Started``, ``Checkout Step …``,     funnel position comes from the page views; ``identify``,
``Payment Info Entered``, ``Coupon …``, …      ``group``, ``alias``, ``screen`` likewise
any other name                                 dropped, counted per name in ``unknown_events``
=============================================  ================================================================

Event names match case- and separator-insensitively (``product_added`` = ``Product Added``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from nextchannel.adapters.mapping import (
    AdapterReport,
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
    texts,
    utc_offsets,
)
from nextchannel.errors import ConfigError

__all__ = ["SEGMENT_EVENT_MAP", "SEGMENT_NO_EQUIVALENT", "events_from_segment"]

#: Segment event name (``track`` calls; ``page`` for page calls) → nextchannel event type.
SEGMENT_EVENT_MAP: dict[str, str] = {
    "page": "page_view",
    "Products Searched": "search",
    "Product Added": "cart_add",
    "Product Removed": "cart_remove",
    "Order Completed": "purchase",
    "Form Submitted": "form_submit",
    "Form Error": "form_error", "Form Field Error": "form_error",
    "Link Clicked": "click", "Button Clicked": "click", "Element Clicked": "click",
    "Product Clicked": "click", "Promotion Clicked": "click",
}
#: Names (and message types) with no nextchannel event (dropped, counted as ``no_equivalent``).
SEGMENT_NO_EQUIVALENT: frozenset[str] = frozenset({
    "identify", "group", "alias", "screen",
    "Product Viewed", "Product List Viewed", "Product List Filtered", "Promotion Viewed", "Cart Viewed",
    "Checkout Started", "Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered",
    "Order Updated", "Order Refunded", "Order Cancelled", "Coupon Entered", "Coupon Applied",
    "Coupon Denied", "Coupon Removed", "Product Added to Wishlist", "Product Removed from Wishlist",
    "Product Shared", "Cart Shared", "Product Reviewed", "Application Opened", "Signed In", "Signed Up",
})


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def events_from_segment(export: pd.DataFrame | Iterable[Mapping[str, Any]], *,
                        page_rules: Sequence[tuple[str, str]] | None = None, default_page_type: str = "category",
                        event_map: Mapping[str, str | None] | None = None, session_gap_s: float = 1800.0,
                        default_device: str = "desktop") -> tuple[pd.DataFrame, AdapterReport]:
    """nextchannel's event log from Segment / RudderStack messages (see the module's mapping table).

    Parameters
    ----------
    export : DataFrame or iterable of dicts
        One message per row: ``type``, ``event`` (track calls), ``anonymousId`` and/or ``userId``,
        ``timestamp``, ``context`` and ``properties`` (dicts, JSON strings or dotted columns).
    page_rules, default_page_type, default_device
        As for :func:`nextchannel.adapters.events_from_ga4`.
    event_map : mapping, optional
        Changes to :data:`SEGMENT_EVENT_MAP` (an event name → a nextchannel type, or None).
    session_gap_s : float, default 1800
        Without a session key, a visitor's new session starts after this long without a message.

    Returns
    -------
    events : DataFrame
        The event log, plus ``source_event`` (the Segment event name, ``page`` for page calls).
    report : AdapterReport

    Examples
    --------
    >>> from nextchannel.adapters import events_from_segment
    >>> msgs = [
    ...     {"type": "page", "anonymousId": "a-9", "messageId": "m1", "timestamp": "2026-01-07T13:00:00Z",
    ...      "context": {"page": {"url": "https://shop.example/products/kettle"}, "locale": "en-GB",
    ...                  "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148"}},
    ...     {"type": "track", "event": "Product Added", "anonymousId": "a-9", "messageId": "m2",
    ...      "timestamp": "2026-01-07T13:00:40Z", "properties": {"price": 24.5, "quantity": 2}},
    ...     {"type": "track", "event": "Product Added", "anonymousId": "a-9", "messageId": "m2",
    ...      "timestamp": "2026-01-07T13:00:40Z", "properties": {"price": 24.5, "quantity": 2}},
    ... ]
    >>> events, report = events_from_segment(msgs)
    >>> events[["type", "page_type", "value", "device", "language"]].to_numpy().tolist()
    [['session_start', None, nan, 'mobile', 'en'], ['page_view', 'product', nan, None, None], ['cart_add', None, 49.0, None, None]]
    >>> report.dropped
    {'duplicate': 1}
    """
    frame = as_frame(export, "export")
    if not (isinstance(session_gap_s, (int, float)) and math.isfinite(session_gap_s) and session_gap_s > 0):
        raise ConfigError(f"session_gap_s must be a finite number > 0, got {session_gap_s!r}")
    emap, no_eq = resolve_event_map(SEGMENT_EVENT_MAP, SEGMENT_NO_EQUIVALENT, event_map)
    by_key = {_key(k): k for k in (*emap, *no_eq)}
    if len(frame.columns) or len(frame):
        require_columns(frame, "a Segment export", [("type",), ("anonymousId", "userId"),
                                                    ("timestamp", "originalTimestamp", "receivedAt")])
    n = len(frame)
    if n == 0:
        return assemble(pd.DataFrame(), source="segment", n_rows=0, no_equivalent=no_eq)

    def col(*paths: str) -> pd.Series:
        return first_of(frame, *paths)

    ts = first_time(frame, ("timestamp", "originalTimestamp", "receivedAt"))
    mtype = texts(col("type"))
    names: list[str | None] = []
    for t, e in zip(mtype, texts(col("event"))):
        raw = e if t == "track" else t
        names.append(by_key.get(_key(raw), raw) if raw is not None else None)
    etype = pd.Series([emap.get(x) if x is not None else None for x in names], index=frame.index, dtype=object)
    url = col("context.page.url", "properties.url", "context.page.path", "properties.path")
    pages, kinds, n_default = page_fields(url.where(etype == "page_view", None), page_rules, default_page_type)

    # Sessions: the source's key where it has one, else inactivity gaps per visitor.
    visitor = texts(col("anonymousId"))
    visitor = visitor.where(visitor.notna(), texts(col("userId")))
    key = texts(col("context.sessionId", "properties.session_id", "properties.sessionId"))
    sid = np.array([f"{v}:{k}" if v is not None and k is not None else None for v, k in zip(visitor, key)],
                   dtype=object)
    need = np.flatnonzero(np.array([s is None and v is not None for s, v in zip(sid, visitor)]) & np.isfinite(ts))
    if len(need):
        vis = visitor.to_numpy(dtype=object)[need]
        order = need[np.lexsort((ts[need], pd.factorize(vis, sort=True)[0]))]
        prev_v, prev_t, first = None, -math.inf, 0.0
        for r in order:
            v, t = visitor.iloc[r], ts[r]
            if v != prev_v or t - prev_t > session_gap_s:
                first = t
            sid[r] = f"{v}:{first * 1000:.0f}"
            prev_v, prev_t = v, t

    price, qty = number(col("properties.price")), number(col("properties.quantity"))
    item_value = price * np.where(np.isfinite(qty), qty, 1.0)
    plain_value = number(col("properties.value"))
    order_value = number(col("properties.total", "properties.revenue", "properties.value"))
    is_order = (etype == "purchase").to_numpy()
    value = np.where(is_order, order_value, np.where(np.isfinite(item_value), item_value, plain_value))
    medium = mapped(referrer_of, col("context.campaign.medium"))
    ref_url = col("context.page.referrer", "properties.referrer")
    has_page = url.notna().to_numpy()
    from_url = [referrer_of_url(r) if hp else None for r, hp in zip(ref_url, has_page)]
    norm = pd.DataFrame({
        "session_id": sid,
        "ts": ts,
        "name": names,
        "type": etype,
        "event_id": texts(col("messageId")),
        "page": pages,
        "page_type": kinds,
        "value": value,
        "n_results": number(col("properties.n_results", "properties.results")),
        "field": texts(col("properties.field", "properties.field_name")),
        "device": mapped(lambda c_ua: device_of(*c_ua), zip(col("context.device.type"), col("context.userAgent"))),
        "language": mapped(language_of, col("context.locale")),
        "referrer": [m or u for m, u in zip(medium, from_url)],
        "customer_id": texts(col("userId")),
        "utc_offset_s": utc_offsets(col("context.timezone"), ts),
    })
    return assemble(norm, source="segment", n_rows=n, no_equivalent=no_eq, default_device=default_device,
                    extra_defaults={"page_type_default": n_default})
