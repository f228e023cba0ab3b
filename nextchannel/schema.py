"""The vocabulary: event types and their fields, page types, devices, channels, actions.

This module sits at the bottom of the flow (events → state → features → models → policy →
decision); every other module speaks its words. It also holds strict validation of single
events (:func:`validate_event`) and of event logs (:func:`validate_events`), used by batch
jobs and in development; the web path uses the lenient executors and never raises.

Time
----
``ts`` is a float number of seconds (Unix epoch seconds, UTC, in the simulator). Within a
session, events must come in non-decreasing ``ts`` order; equal timestamps are allowed and
keep their order of arrival (row order in a log). A log's rows may interleave sessions.

Event log
---------
An event log is a DataFrame with columns ``session_id``, ``ts``, ``type`` plus the fields of
the event types it holds (:data:`EVENT_FIELDS`); a field an event type does not use is NaN /
missing on that row.

Examples
--------
>>> from nextchannel.schema import validate_event
>>> validate_event({"session_id": "s1", "ts": 10.0, "type": "idle", "duration_s": 12.5})["type"]
'idle'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from nextchannel.errors import ConfigError, ValidationError

__all__ = [
    "EVENT_TYPES",
    "EVENT_FIELDS",
    "EVENT_COLUMNS",
    "PAGE_TYPES",
    "FUNNEL_STAGE",
    "DEVICES",
    "LANGUAGES",
    "REFERRERS",
    "SCROLL_DIRECTIONS",
    "DEFAULT_CHANNELS",
    "NONE_ACTION",
    "OPTIONAL_FIELDS",
    "Channel",
    "ChannelCatalogue",
    "validate_event",
    "validate_events",
    "code_of",
]

#: Page types a page view can carry.
PAGE_TYPES: tuple[str, ...] = (
    "home", "category", "product", "search", "cart", "checkout", "account", "help", "contact",
    "pricing",
)
#: Stage of the purchase funnel per page type; pages outside the funnel are absent.
FUNNEL_STAGE: dict[str, int] = {
    "home": 0, "category": 1, "search": 1, "pricing": 1, "product": 2, "cart": 3, "checkout": 4,
}
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
#: Languages with their own code; anything else is coded as ``"other"``.
LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl", "pl", "other")
REFERRERS: tuple[str, ...] = ("direct", "search", "ads", "email", "social", "other")
SCROLL_DIRECTIONS: tuple[str, ...] = ("down", "up")

#: The action meaning "offer nothing now".
NONE_ACTION = "none"

#: Every event type and the fields it carries (beyond ``session_id``, ``ts``, ``type``).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    # context of the session: sent once, first; a later one replaces the context
    "session_start": ("device", "language", "referrer", "customer_id", "returning", "utc_offset_s"),
    "page_view": ("page", "page_type"),
    "scroll": ("depth", "direction"),
    "idle": ("duration_s",),  # an idle period that ended at ts
    "click": (),
    "form_error": ("field",),
    "form_submit": (),
    "cart_add": ("value",),
    "cart_remove": ("value",),
    "search": ("n_results",),
    "exit_intent": (),
    "offer_shown": ("channel",),
    "offer_accepted": ("channel",),
    "offer_dismissed": ("channel",),
    "contact_started": ("channel",),
    "purchase": ("value",),
    "session_end": (),
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_FIELDS)
#: Columns of an event log, in a canonical order.
EVENT_COLUMNS: tuple[str, ...] = ("session_id", "ts", "type") + tuple(
    dict.fromkeys(f for fields in EVENT_FIELDS.values() for f in fields)
)
_CHANNEL_EVENTS = frozenset({"offer_shown", "offer_accepted", "offer_dismissed", "contact_started"})
_NUMERIC_FIELDS = {"depth": (0.0, 1.0), "duration_s": (0.0, math.inf), "value": (0.0, math.inf),
                   "n_results": (0.0, math.inf), "utc_offset_s": (-86400.0, 86400.0)}
#: Numeric fields an event may leave missing (NaN/None): many analytics tools record a search
#: without its result count and a cart or purchase event without a value. Features skip a missing
#: number (sums and maxima ignore it); a value that is present must still be in range.
OPTIONAL_FIELDS: frozenset[str] = frozenset({"value", "n_results", "utc_offset_s"})
_CATEGORY_FIELDS = {"page_type": PAGE_TYPES, "direction": SCROLL_DIRECTIONS, "device": DEVICES}


def code_of(values: tuple[str, ...], value: Any, default: int = -1) -> int:
    """Integer code of ``value`` in the vocabulary ``values`` (``default`` if absent).

    Examples
    --------
    >>> code_of(DEVICES, "mobile")
    1
    >>> code_of(LANGUAGES, "sv", default=LANGUAGES.index("other"))
    7
    """
    try:
        return values.index(value)
    except ValueError:
        return default


# ---------------------------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Channel:
    """One service channel an offer can point to.

    Parameters
    ----------
    name : str
        The channel's name as the business calls it (``"chat"``, ``"WhatsApp"``, ``"Spring E-Mail"``):
        any non-empty text without control characters or ``|`` (the separator of reason phrases),
        at most 100 characters, not ``"none"``. It is used as given in actions, events and the
        per-request context keys (``open_<name>``, ``wait_<name>_s``).
    human : bool, default True
        Whether a person answers (chat, callback, phone, messaging, email) or not (self-service).
    live : bool, default False
        Whether the visitor talks in real time (chat, phone, callback) and so waits in a queue.
        A channel the library does not know is not live unless said.

    Examples
    --------
    >>> Channel("Spring E-Mail").live
    False
    >>> Channel("a|b")
    Traceback (most recent call last):
    ...
    nextchannel.errors.ConfigError: channel name must be non-empty text of at most 100 characters without control characters, '|' or surrounding spaces, got 'a|b'
    """

    name: str
    human: bool = True
    live: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > 100 or "|" in self.name \
                or not self.name.isprintable() or self.name != self.name.strip():
            raise ConfigError("channel name must be non-empty text of at most 100 characters without control "
                              f"characters, '|' or surrounding spaces, got {self.name!r}")
        if self.name == NONE_ACTION:
            raise ConfigError(f"channel name {NONE_ACTION!r} is reserved for 'no offer'")
        for flag in ("human", "live"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} of channel {self.name!r} must be True or False, got {getattr(self, flag)!r}")


@dataclass(frozen=True)
class ChannelCatalogue:
    """The configurable set of channels, in a fixed order (that order is the action index - 1).

    Examples
    --------
    >>> cat = ChannelCatalogue.default()
    >>> cat.names
    ('chat', 'callback', 'phone', 'email', 'messaging', 'self_service')
    >>> cat.actions[:2]
    ('none', 'chat')
    >>> ChannelCatalogue.from_json(cat.to_json()) == cat
    True
    """

    channels: tuple[Channel, ...] = field(default_factory=lambda: DEFAULT_CHANNELS)

    def __post_init__(self) -> None:
        if isinstance(self.channels, (str, Channel)) or not isinstance(self.channels, (tuple, list)):
            raise ConfigError(f"channels must be a list of channel names or Channel objects, got {self.channels!r}")
        chans = tuple(c if isinstance(c, Channel) else Channel(c) if isinstance(c, str) else Channel(**c)
                      for c in self.channels)
        object.__setattr__(self, "channels", chans)
        if not chans:
            raise ConfigError("channel catalogue must hold at least one channel, got none")
        names = [c.name for c in chans]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"channel names must be unique, got duplicates {dupes}")
        # computed once: these are read on every web request
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_actions", (NONE_ACTION, *names))

    @classmethod
    def default(cls) -> "ChannelCatalogue":
        return cls(DEFAULT_CHANNELS)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names  # type: ignore[attr-defined, no-any-return]

    @property
    def actions(self) -> tuple[str, ...]:
        """``("none", *names)``: action index 0 is no offer."""
        return self._actions  # type: ignore[attr-defined, no-any-return]

    def __len__(self) -> int:
        return len(self.channels)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> Channel:
        for c in self.channels:
            if c.name == name:
                return c
        raise ValidationError(f"channel must be one of {list(self.names)}, got {name!r}")

    def check(self, name: Any, what: str = "channel") -> str:
        """Return ``name`` if it is a channel of this catalogue, else raise ValidationError."""
        if name not in self.names:
            raise ValidationError(f"{what} must be one of {list(self.names)}, got {name!r}")
        return name

    def to_dict(self) -> dict[str, Any]:
        return {"channels": [{"name": c.name, "human": c.human, "live": c.live} for c in self.channels]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ChannelCatalogue":
        return cls(tuple(Channel(**c) for c in d["channels"]))

    @classmethod
    def from_json(cls, s: str) -> "ChannelCatalogue":
        return cls.from_dict(json.loads(s))


DEFAULT_CHANNELS: tuple[Channel, ...] = (
    Channel("chat", human=True, live=True),
    Channel("callback", human=True, live=True),
    Channel("phone", human=True, live=True),
    Channel("email", human=True, live=False),
    Channel("messaging", human=True, live=False),
    Channel("self_service", human=False, live=False),
)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NA


def _check_number(name: str, v: Any, lo: float, hi: float, where: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValidationError(f"{name} {where}must be a number, got {v!r}")
    fv = float(v)
    if not math.isfinite(fv):
        raise ValidationError(f"{name} {where}must be a finite number, got {v!r}")
    if fv < lo or fv > hi:
        rng = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]"
        raise ValidationError(f"{name} {where}must be {rng}, got {v!r}")


def validate_event(event: Mapping[str, Any], channels: ChannelCatalogue | None = None,
                   last_ts: float | None = None) -> Mapping[str, Any]:
    """Check one event strictly and return it unchanged; raise :class:`ValidationError` if bad.

    Parameters
    ----------
    event : mapping
        ``session_id``, ``ts``, ``type`` and the fields of that type (:data:`EVENT_FIELDS`).
    channels : ChannelCatalogue, optional
        Catalogue that channel fields must belong to (default: the default catalogue).
    last_ts : float, optional
        Timestamp of the session's previous event; ``ts`` may equal it but not be earlier.

    Examples
    --------
    >>> validate_event({"session_id": "s", "ts": 1.0, "type": "teleport"})
    Traceback (most recent call last):
    ...
    nextchannel.errors.ValidationError: type must be one of ['session_start', 'page_view', ...], got 'teleport'
    """
    if not isinstance(event, Mapping):
        raise ValidationError(f"event must be a mapping (dict), got {type(event).__name__}")
    etype = event.get("type")
    if etype not in EVENT_FIELDS:
        raise ValidationError(
            f"type must be one of ['session_start', 'page_view', ...], got {etype!r}")
    where = f"of a {etype} event "
    if _is_missing(event.get("session_id")):
        raise ValidationError(f"session_id {where}is required, got {event.get('session_id')!r}")
    ts = event.get("ts")
    if _is_missing(ts):
        raise ValidationError(f"ts {where}is required, got {ts!r}")
    _check_number("ts", ts, -math.inf, math.inf, where)
    if last_ts is not None and float(ts) < last_ts:
        raise ValidationError(
            f"ts {where}must not go backwards within session {event['session_id']!r}: "
            f"expected >= {last_ts!r}, got {ts!r}")
    for name in EVENT_FIELDS[etype]:
        v = event.get(name)
        if name in _NUMERIC_FIELDS:
            if name in OPTIONAL_FIELDS and _is_missing(v):
                continue
            lo, hi = _NUMERIC_FIELDS[name]
            if _is_missing(v):
                raise ValidationError(f"{name} {where}is required, got {v!r}")
            _check_number(name, v, lo, hi, where)
        elif name in _CATEGORY_FIELDS:
            allowed = _CATEGORY_FIELDS[name]
            if v not in allowed:
                raise ValidationError(f"{name} {where}must be one of {list(allowed)}, got {v!r}")
        elif name == "channel":
            (channels or _DEFAULT_CATALOGUE).check(v, what=f"channel {where}".rstrip())
        elif name == "page":
            if _is_missing(v) or not isinstance(v, str) or not v:
                raise ValidationError(f"page {where}must be a non-empty string, got {v!r}")
    return event


def validate_events(events: pd.DataFrame, channels: ChannelCatalogue | None = None) -> pd.DataFrame:
    """Strictly check an event log and return it unchanged; raise on the first bad row.

    The message names the row label, the field, the expected and the received value.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"session_id": ["a", "a"], "ts": [5.0, 4.0], "type": ["click", "click"]})
    >>> validate_events(log)
    Traceback (most recent call last):
    ...
    nextchannel.errors.ValidationError: row 1: ts of a click event must not go backwards within session 'a': expected >= 5.0, got 4.0
    """
    if not isinstance(events, pd.DataFrame):
        raise ValidationError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in ("session_id", "ts", "type") if c not in events.columns]
    if missing:
        raise ValidationError(f"events must have columns ['session_id', 'ts', 'type'], missing {missing}")
    channels = channels or _DEFAULT_CATALOGUE
    # Vectorised screens first (fast path for large clean logs), row-wise only to explain.
    ts = pd.to_numeric(events["ts"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(ts) | ~events["type"].isin(EVENT_TYPES).to_numpy()
    sid = events["session_id"]
    codes, _ = pd.factorize(sid, use_na_sentinel=True)
    bad |= codes < 0
    order = np.lexsort((np.arange(len(events)), codes))
    ts_sorted, codes_sorted = ts[order], codes[order]
    back = np.zeros(len(events), dtype=bool)
    if len(events) > 1:
        back_sorted = (codes_sorted[1:] == codes_sorted[:-1]) & (ts_sorted[1:] < ts_sorted[:-1])
        back[order[1:]] = back_sorted
    cols = set(events.columns)
    for etype, fields in EVENT_FIELDS.items():
        rows = (events["type"] == etype).to_numpy()
        if not rows.any():
            continue
        for name in fields:
            if name == "utc_offset_s":
                continue
            if name not in cols:
                if name not in OPTIONAL_FIELDS:
                    bad |= rows
                continue
            col = events[name]
            if name in _NUMERIC_FIELDS:
                lo, hi = _NUMERIC_FIELDS[name]
                v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                ok = (v >= lo) & (v <= hi)
                if name in OPTIONAL_FIELDS:
                    ok |= col.isna().to_numpy()
                bad |= rows & ~ok
            elif name in _CATEGORY_FIELDS:
                bad |= rows & ~col.isin(_CATEGORY_FIELDS[name]).to_numpy()
            elif name == "channel":
                bad |= rows & ~col.isin(channels.names).to_numpy()
            elif name == "page":
                bad |= rows & col.isna().to_numpy()
    bad |= back
    if not bad.any():
        return events
    # Explain the first offending row precisely, through the one-event validator.
    pos = int(np.flatnonzero(bad)[0])
    label = events.index[pos]
    row = {k: (None if _is_missing(v) else v) for k, v in events.iloc[pos].to_dict().items()}
    for name in EVENT_FIELDS.get(row.get("type"), ()):
        if name not in cols and name not in OPTIONAL_FIELDS:
            raise ValidationError(f"row {label}: column {name!r} is required for {row['type']} events, missing")
    prev_ts = None
    if back[pos]:
        same = np.flatnonzero((codes == codes[pos]) & (np.arange(len(events)) < pos))
        prev_ts = float(np.max(ts[same]))
    try:
        validate_event(row, channels, last_ts=prev_ts)
    except ValidationError as err:
        raise ValidationError(f"row {label}: {err}") from None
    raise ValidationError(f"row {label}: invalid event {row!r}")  # pragma: no cover - defensive


_DEFAULT_CATALOGUE = ChannelCatalogue(DEFAULT_CHANNELS)
