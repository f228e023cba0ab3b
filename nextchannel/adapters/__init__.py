"""Adapters: common analytics exports → nextchannel's event log.

Each adapter reads one source's export (a DataFrame or an iterable of dicts, e.g. JSON lines) and
returns ``(events, report)``: an event log that :func:`nextchannel.schema.validate_events` accepts
and that :func:`nextchannel.features_many` featurises, and an :class:`AdapterReport` of what was
mapped, derived and dropped, and why. Unknown event names are counted, never an error; a frame
missing a required column is a :class:`~nextchannel.errors.ValidationError` naming it.

- :func:`events_from_ga4` — Google Analytics 4 BigQuery export (nested or flattened);
- :func:`events_from_snowplow` — Snowplow enriched events (atomic columns, JSON or CSV);
- :func:`events_from_segment` — Segment / RudderStack ``track`` and ``page`` calls.

Page types come from URL rules (:data:`DEFAULT_PAGE_RULES`, replaceable per call), devices from
the source's device category or user agent, languages from the primary subtag.

Examples
--------
>>> from nextchannel.adapters import page_type_of
>>> page_type_of("https://shop.example/checkout/payment")
'checkout'
"""

from __future__ import annotations

from nextchannel.adapters.ga4 import GA4_EVENT_MAP, GA4_NO_EQUIVALENT, events_from_ga4
from nextchannel.adapters.mapping import (
    DEFAULT_PAGE_RULES,
    AdapterReport,
    device_of,
    language_of,
    page_type_of,
    referrer_of,
    referrer_of_url,
)
from nextchannel.adapters.segment import SEGMENT_EVENT_MAP, SEGMENT_NO_EQUIVALENT, events_from_segment
from nextchannel.adapters.snowplow import SNOWPLOW_EVENT_MAP, SNOWPLOW_NO_EQUIVALENT, events_from_snowplow

__all__ = [
    "events_from_ga4",
    "events_from_snowplow",
    "events_from_segment",
    "GA4_EVENT_MAP",
    "GA4_NO_EQUIVALENT",
    "SNOWPLOW_EVENT_MAP",
    "SNOWPLOW_NO_EQUIVALENT",
    "SEGMENT_EVENT_MAP",
    "SEGMENT_NO_EQUIVALENT",
    "AdapterReport",
    "DEFAULT_PAGE_RULES",
    "page_type_of",
    "device_of",
    "language_of",
    "referrer_of",
    "referrer_of_url",
]
