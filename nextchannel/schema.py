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

Session ids
-----------
A session id is compared by its canonical form (:func:`canonical_id`), everywhere: online
(:class:`~nextchannel.features.SessionState`), in batch (``features_many``) and in the scorer's
exploration hash. Strings are taken as they are; an integer and an integral float are the same id
(``5``, ``5.0``, ``numpy.int64(5)`` and ``"5"`` are all ``"5"``), so a log whose id column was read
as floats still matches; other floats keep their ``repr`` (``"5.5"``). ``None`` and NaN mean "no
id"; anything else (booleans, lists, arrays, infinities) is not an id.

Bounds
------
:class:`Limits` holds the bounds that keep one session's or one request's cost and memory bounded
(events kept per session, distinct pages remembered, the length of a page id, contacts read per
request-time profile); both feature executors apply the same ones.

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
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from nextchannel.compat import is_pandas_na, lazy_module
from nextchannel.conventions import accepts_old_form
from nextchannel.errors import ConfigError, ValidationError, excerpt

if TYPE_CHECKING:
    import pandas as pd
else:  # imported when a batch path first uses it: the per-request path never does
    pd = lazy_module("pandas")

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
    "canonical_id",
    "canonical_ids",
    "Limits",
    "DEFAULT_LIMITS",
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
# Session ids and bounds
# ---------------------------------------------------------------------------------------------
def canonical_id(value: Any, what: str = "session_id") -> str | None:
    """The canonical form of an id (see *Session ids* above): a string, or None when missing.

    Raises :class:`ValidationError` for a value that cannot be an id.

    Examples
    --------
    >>> canonical_id(5), canonical_id(5.0), canonical_id("5"), canonical_id(5.5), canonical_id(None)
    ('5', '5', '5', '5.5', None)
    >>> canonical_id(True)
    Traceback (most recent call last):
    ...
    nextchannel.errors.ValidationError: session_id must be a string or a number, got True
    """
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if value is None or is_pandas_na(value):
        return None
    try:
        if t is not bool and isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return str(int(value))
        if isinstance(value, (float, np.floating)):
            f = float(value)
            if f != f:
                return None
            if f - f == 0.0:
                return str(int(f)) if f.is_integer() else repr(f)
        elif isinstance(value, str):
            return str.__str__(value)
    except (ValueError, OverflowError):  # an int of more digits than str() converts
        pass
    raise ValidationError(f"{what} must be a string or a number, got {excerpt(value)}")


def canonical_ids(values: Any, what: str = "session_id") -> np.ndarray:
    """:func:`canonical_id` of every value of a column (object array; None where missing or malformed).

    The batch twin of :func:`canonical_id`: a value that is not an id counts as missing here (the
    batch path skips such rows as the online path skips such events; ``validate=True`` raises).

    Examples
    --------
    >>> import pandas as pd
    >>> canonical_ids(pd.Series([5.0, float("nan"), 7.5])).tolist()
    ['5', None, '7.5']
    >>> canonical_ids(pd.Series([5.0, float("nan"), 7.5], dtype="category")).tolist()   # once per category
    ['5', None, '7.5']
    """
    col = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object if not len(values) else None)
    if isinstance(col.dtype, pd.CategoricalDtype):  # each category once, then its rows take its form
        cats = canonical_ids(pd.Series(col.cat.categories.to_numpy(dtype=object), dtype=object), what)
        return np.append(cats, None)[col.cat.codes.to_numpy(dtype=np.int64)]
    kind = col.dtype.kind
    if kind in "iu":
        return col.astype(str).to_numpy(dtype=object)
    if kind == "f":
        v = col.to_numpy(dtype=float)
        out = np.full(len(v), None, dtype=object)
        fin = np.isfinite(v)
        integral = fin & (np.floor(v) == v)
        out[integral] = pd.Series(v[integral]).astype(np.int64).astype(str).to_numpy(dtype=object) \
            if integral.any() and np.abs(v[integral]).max() < 2.0**63 else \
            [str(int(x)) for x in v[integral]]
        other = fin & ~integral
        out[other] = [repr(float(x)) for x in v[other]]
        return out
    if pd.api.types.infer_dtype(col, skipna=False) == "string":
        return col.to_numpy(dtype=object)

    def one(x: Any) -> str | None:
        try:
            return canonical_id(x, what)
        except ValidationError:
            return None

    return np.array([one(x) for x in col.tolist()], dtype=object)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one session and one request may cost (configurable; JSON round-trip).

    Parameters
    ----------
    max_events : int, default 10_000
        Events kept per session; later ones are skipped and counted (``SessionState.n_over_limit``),
        online and in batch alike, so one session's cost is bounded.
    max_pages : int, default 1_000
        Distinct page ids a session remembers to recognise revisits; a page first seen after that
        is not remembered (a later view of it is not a revisit), online and in batch alike.
    max_str_len : int, default 256
        Page ids are cut to this many characters (online and batch), so one session's memory is
        at most about ``max_pages * max_str_len`` bytes of page ids.
    max_contacts : int, default 1_000
        Contacts read from a request-time customer dict (the last ones of its list, which is in
        time order); more are skipped and counted (strict mode raises). The batch profile reads
        the whole contact log.

    Examples
    --------
    >>> Limits(max_pages=50).max_pages
    50
    >>> Limits.from_dict(Limits().to_dict()) == Limits()
    True
    >>> Limits(max_events=0)
    Traceback (most recent call last):
    ...
    nextchannel.errors.ConfigError: max_events must be an integer >= 1, got 0
    """

    max_events: int = 10_000
    max_pages: int = 1_000
    max_str_len: int = 256
    max_contacts: int = 1_000

    def __post_init__(self) -> None:
        for name in ("max_events", "max_pages", "max_str_len", "max_contacts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
            object.__setattr__(self, name, int(v))

    def to_dict(self) -> dict[str, int]:
        return {"max_events": self.max_events, "max_pages": self.max_pages, "max_str_len": self.max_str_len,
                "max_contacts": self.max_contacts}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Limits":
        unknown = sorted(set(d) - set(cls().to_dict()))
        if unknown:
            raise ConfigError(f"limits keys must be in {sorted(cls().to_dict())}, got unknown {unknown}")
        return cls(**d)


DEFAULT_LIMITS = Limits()


# ---------------------------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------------------------
#: Channels the library knows as live (a queue, real-time talk): the default of ``Channel.live``.
_LIVE_CHANNELS = frozenset({"chat", "callback", "phone"})


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
    live : bool, optional
        Whether the visitor talks in real time and so waits in a queue. Default: True for the
        library's live channels (chat, callback, phone), False for any other name unless said.

    Examples
    --------
    >>> Channel("Spring E-Mail").live, Channel("chat").live
    (False, True)
    >>> Channel("a|b")
    Traceback (most recent call last):
    ...
    nextchannel.errors.ConfigError: channel name must be non-empty text of at most 100 characters without control characters, '|' or surrounding spaces, got 'a|b'
    """

    name: str
    human: bool = True
    live: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > 100 or "|" in self.name \
                or not self.name.isprintable() or self.name != self.name.strip():
            raise ConfigError("channel name must be non-empty text of at most 100 characters without control "
                              f"characters, '|' or surrounding spaces, got {self.name!r}")
        if self.name == NONE_ACTION:
            raise ConfigError(f"channel name {NONE_ACTION!r} is reserved for 'no offer'")
        if self.live is None:
            object.__setattr__(self, "live", self.name in _LIVE_CHANNELS)
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
        if type(name) is not str or name not in self.names:
            raise ValidationError(f"{what} must be one of {list(self.names)}, got {excerpt(name)}")
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
    return v is None or (isinstance(v, float) and v != v) or is_pandas_na(v)


def _check_number(name: str, v: Any, lo: float, hi: float, where: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValidationError(f"{name} {where}must be a number, got {excerpt(v)}")
    try:
        fv = float(v)
    except OverflowError:  # an int beyond the float range (JSON allows 4,300 digits)
        fv = math.inf
    if not math.isfinite(fv):
        raise ValidationError(f"{name} {where}must be a finite number, got {excerpt(v)}")
    if fv < lo or fv > hi:
        rng = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]"
        raise ValidationError(f"{name} {where}must be {rng}, got {excerpt(v)}")


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
    if type(etype) is not str or etype not in EVENT_FIELDS:  # (a list or dict is not hashable)
        raise ValidationError(
            f"type must be one of ['session_start', 'page_view', ...], got {excerpt(etype)}")
    where = f"of a {etype} event "
    if _is_missing(event.get("session_id")):
        raise ValidationError(f"session_id {where}is required, got {excerpt(event.get('session_id'))}")
    canonical_id(event.get("session_id"), what=f"session_id {where}".rstrip())
    ts = event.get("ts")
    if _is_missing(ts):
        raise ValidationError(f"ts {where}is required, got {excerpt(ts)}")
    _check_number("ts", ts, -math.inf, math.inf, where)
    if last_ts is not None and float(ts) < last_ts:
        raise ValidationError(
            f"ts {where}must not go backwards within session {excerpt(event['session_id'])}: "
            f"expected >= {last_ts!r}, got {excerpt(ts)}")
    for name in EVENT_FIELDS[etype]:
        v = event.get(name)
        if name in _NUMERIC_FIELDS:
            if name in OPTIONAL_FIELDS and _is_missing(v):
                continue
            lo, hi = _NUMERIC_FIELDS[name]
            if _is_missing(v):
                raise ValidationError(f"{name} {where}is required, got {excerpt(v)}")
            _check_number(name, v, lo, hi, where)
        elif name in _CATEGORY_FIELDS:
            allowed = _CATEGORY_FIELDS[name]
            if v not in allowed:
                raise ValidationError(f"{name} {where}must be one of {list(allowed)}, got {excerpt(v)}")
        elif name == "channel":
            (channels or _DEFAULT_CATALOGUE).check(v, what=f"channel {where}".rstrip())
        elif name == "page":
            if _is_missing(v) or not isinstance(v, str) or not v:
                raise ValidationError(f"page {where}must be a non-empty string, got {excerpt(v)}")
    return event


@accepts_old_form(old=("events", "channels"))
def validate_events(events: pd.DataFrame, *, channels: ChannelCatalogue | None = None) -> pd.DataFrame:
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
