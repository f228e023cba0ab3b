"""What every adapter shares: page-type rules, device/language/referrer mapping, the report of what was
dropped, and the assembly of normalised source rows into nextchannel's event log.

Where it sits: analytics export → (one module per source: ``ga4``, ``snowplow``, ``segment``)
→ normalised rows → :func:`assemble` → event log (:func:`nextchannel.schema.validate_events`) →
features.

A source module turns its export into a *normalised* frame, one row per source event, with the
columns of :data:`NORMALISED_COLUMNS`: the session key, the time in epoch seconds, the source's
event name and the nextchannel event type it maps to (``None`` for an unknown or an ignored name),
the event's fields, the session context and, for derived events, activity hints (engagement time,
scroll offsets). :func:`assemble` then drops what cannot be used (and counts why), orders each session
deterministically, writes one ``session_start`` per session from its context, derives ``idle`` and
``scroll`` events where the source only has heartbeats, and validates the result strictly.

Ordering is a function of the rows' content, never of their position in the export: within a
session, events sort by time, then by the source's own sequence numbers where it has them, then
``session_start`` < ``idle`` < ``page_view`` < everything else, then by source event name and
content. Exact duplicates are therefore interchangeable, and shuffling an export does not change
the event log.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from nextchannel.errors import ConfigError, ValidationError
from nextchannel.schema import DEVICES, EVENT_COLUMNS, EVENT_FIELDS, PAGE_TYPES, validate_events

__all__ = [
    "DEFAULT_PAGE_RULES",
    "AdapterReport",
    "page_type_of",
    "page_path_of",
    "device_of",
    "language_of",
    "referrer_of",
    "referrer_of_url",
    "utc_offset_of",
    "assemble",
    "as_frame",
    "column",
]

logger = logging.getLogger(__name__)


def _words(*words: str) -> str:
    """A regex matching one of ``words`` as a whole path segment (``/cart``, ``/cart/``, ``/cart.html``)."""
    return r"(?:^|/)(?:" + "|".join(words) + r")(?:\.[a-z0-9]+)?(?:/|$|\?)"


#: Default URL rules: ``(page_type, regex)`` tried in order on the lower-cased ``path?query`` of a
#: page's URL; the first match wins. Checkout before cart (``/cart/checkout``), help and account
#: before product (``/help/products``). A page no rule matches gets the adapter's
#: ``default_page_type`` (``"category"``, a browsing page) and is counted in the report.
DEFAULT_PAGE_RULES: tuple[tuple[str, str], ...] = (
    ("checkout", _words("checkout", "checkouts", "payment", "pay", "order-confirmation", "thank-you", "thankyou")),
    ("cart", _words("cart", "basket", "bag", "shopping-cart")),
    ("help", _words("help", "faq", "faqs", "support", "kb", "knowledge-base", "returns")),
    ("contact", _words("contact", "contact-us", "contactus")),
    ("account", _words("account", "my-account", "login", "signin", "sign-in", "register", "signup", "sign-up",
                       "profile", "orders")),
    ("pricing", _words("pricing", "plans", "prices")),
    ("search", _words("search") + r"|[?&](?:q|query|search|s)="),
    ("product", _words("product", "products", "p", "item", "items", "dp")),
    ("category", _words("category", "categories", "collections", "collection", "c", "shop", "catalog", "catalogue")),
    ("home", r"^/?(?:index\.html?|home)?(?:\?|$)"),
)

_RULE_CACHE: dict[tuple[tuple[str, str], ...], tuple[tuple[str, re.Pattern[str]], ...]] = {}


def _compiled(rules: Sequence[tuple[str, str]] | None) -> tuple[tuple[str, re.Pattern[str]], ...]:
    if rules is None:
        rules = DEFAULT_PAGE_RULES
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
        raise ConfigError(f"page_rules must be a sequence of (page_type, regex) pairs, got {type(rules).__name__}")
    for i, rule in enumerate(rules):
        if not isinstance(rule, (tuple, list)) or len(rule) != 2 or not all(isinstance(x, str) for x in rule):
            raise ConfigError(f"page_rules[{i}] must be a (page_type, regex) pair of strings, got {rule!r}")
    key = tuple((r[0], r[1]) for r in rules)
    if key not in _RULE_CACHE:
        out = []
        for i, (page_type, pattern) in enumerate(key):
            if page_type not in PAGE_TYPES:
                raise ConfigError(f"page_rules[{i}] page type must be one of {list(PAGE_TYPES)}, got {page_type!r}")
            try:
                out.append((page_type, re.compile(pattern)))
            except re.error as err:
                raise ConfigError(f"page_rules[{i}] regex must compile, got {pattern!r}: {err}") from err
        _RULE_CACHE[key] = tuple(out)
    return _RULE_CACHE[key]


def _check_page_type(default_page_type: str) -> str:
    if default_page_type not in PAGE_TYPES:
        raise ConfigError(f"default_page_type must be one of {list(PAGE_TYPES)}, got {default_page_type!r}")
    return default_page_type


def page_path_of(url: Any) -> str | None:
    """The path of a page URL (or of a bare path), without scheme, host, query or fragment; None if missing.

    Examples
    --------
    >>> page_path_of("https://shop.example/Cart?utm_source=x#top")
    '/Cart'
    >>> page_path_of("/help/returns"), page_path_of(None)
    ('/help/returns', None)
    """
    if not isinstance(url, str) or not url.strip():
        return None
    parts = urlsplit(url.strip())
    return parts.path or "/"


def page_type_of(url: Any, rules: Sequence[tuple[str, str]] | None = None,
                 default: str | None = "category") -> str | None:
    """The page type of a URL by the first matching rule (:data:`DEFAULT_PAGE_RULES` unless given).

    Parameters
    ----------
    url : str
        A full URL or a path; matched lower-case as ``path?query``.
    rules : sequence of (page_type, regex), optional
        Rules tried in order; ``page_type`` must be one of :data:`nextchannel.schema.PAGE_TYPES`.
    default : str or None, default "category"
        Page type when no rule matches (None: return None).

    Examples
    --------
    >>> [page_type_of(u) for u in ("https://shop.example/", "/products/red-shoe", "/cart/checkout",
    ...                             "/search?q=boots", "/help/faq", "/blog/2026/spring")]
    ['home', 'product', 'checkout', 'search', 'help', 'category']
    >>> page_type_of("/kasse", rules=[("checkout", r"^/kasse")])
    'checkout'
    """
    compiled = _compiled(rules)
    if not isinstance(url, str) or not url.strip():
        return default
    parts = urlsplit(url.strip().lower())
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    for page_type, rx in compiled:
        if rx.search(target):
            return page_type
    return default


_DEVICE_WORDS = {"desktop": "desktop", "computer": "desktop", "pc": "desktop", "laptop": "desktop",
                 "mobile": "mobile", "phone": "mobile", "smartphone": "mobile", "ios": "mobile",
                 "android": "mobile", "feature phone": "mobile", "tablet": "tablet", "ipad": "tablet",
                 "phablet": "mobile"}
_UA_TABLET = re.compile(r"ipad|tablet|kindle|silk/|playbook|(android(?!.*mobile))", re.IGNORECASE)
_UA_MOBILE = re.compile(r"mobi|iphone|ipod|android|blackberry|opera mini|iemobile|windows phone", re.IGNORECASE)


def device_of(category: Any = None, user_agent: Any = None) -> str | None:
    """A device of :data:`nextchannel.schema.DEVICES` from a device category and/or a user-agent string.

    The category wins when it names a known device (``desktop``, ``Mobile``, ``Computer``, ``Tablet``,
    ``ios``/``android`` for app SDKs); otherwise a user agent is classified by its tokens (``iPad``,
    ``Tablet``, Android without ``Mobile`` → tablet; ``Mobi``, ``iPhone``, ``Android`` → mobile; any
    other → desktop). None when neither tells.

    Examples
    --------
    >>> device_of("Mobile"), device_of(None, "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)"), device_of()
    ('mobile', 'tablet', None)
    """
    if isinstance(category, str):
        found = _DEVICE_WORDS.get(category.strip().lower())
        if found is not None:
            return found
    if isinstance(user_agent, str) and user_agent.strip():
        if _UA_TABLET.search(user_agent):
            return "tablet"
        if _UA_MOBILE.search(user_agent):
            return "mobile"
        return "desktop"
    return None


def language_of(tag: Any) -> str | None:
    """The primary language subtag, lower-case (``"en-US"`` → ``"en"``); None if missing.

    Examples
    --------
    >>> language_of("de-CH"), language_of("pt_BR"), language_of("")
    ('de', 'pt', None)
    """
    if not isinstance(tag, str):
        return None
    primary = re.split(r"[-_;,\s]", tag.strip(), maxsplit=1)[0].lower()
    return primary if primary.isalpha() else None


_MEDIUM = {
    "direct": "direct", "(none)": "direct", "none": "direct", "(direct)": "direct",
    "organic": "search", "search": "search", "seo": "search",
    "cpc": "ads", "ppc": "ads", "paid": "ads", "paidsearch": "ads", "paid_search": "ads", "display": "ads",
    "cpm": "ads", "banner": "ads", "paid_social": "ads", "paid-social": "ads", "affiliate": "ads",
    "email": "email", "e-mail": "email", "newsletter": "email",
    "social": "social", "social-network": "social", "social_network": "social", "sm": "social",
}


def referrer_of(medium: Any) -> str | None:
    """A referrer of :data:`nextchannel.schema.REFERRERS` from a traffic medium; None if missing.

    Examples
    --------
    >>> referrer_of("organic"), referrer_of("cpc"), referrer_of("(none)"), referrer_of("referral"), referrer_of(None)
    ('search', 'ads', 'direct', 'other', None)
    """
    if not isinstance(medium, str) or not medium.strip():
        return None
    return _MEDIUM.get(medium.strip().lower(), "other")


_SEARCH_HOSTS = re.compile(r"(^|\.)(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|qwant|startpage)\.")
_SOCIAL_HOSTS = re.compile(r"(^|\.)(facebook|instagram|twitter|x|t|linkedin|lnkd|pinterest|reddit|tiktok|youtube|"
                           r"threads)\.(com|co|net|in)$")
_EMAIL_HOSTS = re.compile(r"(^|\.)(mail\.|outlook\.|webmail)")


def referrer_of_url(url: Any, own_host: Any = None) -> str | None:
    """A referrer of :data:`nextchannel.schema.REFERRERS` from the referring URL: none → ``direct``;
    a search engine → ``search``; a social network → ``social``; a web-mail host → ``email``; the
    site's own host (``own_host``) → None (an internal referrer says nothing); any other → ``other``.

    Examples
    --------
    >>> referrer_of_url("https://www.google.com/"), referrer_of_url(""), referrer_of_url("https://t.co/x1")
    ('search', 'direct', 'social')
    """
    if url is None or (isinstance(url, float) and math.isnan(url)):
        return "direct"
    if not isinstance(url, str):
        return None
    if not url.strip():
        return "direct"
    host = (urlsplit(url.strip().lower()).hostname or "")
    if isinstance(own_host, str) and own_host and host == own_host.lower():
        return None
    if _SEARCH_HOSTS.search(host):
        return "search"
    if _SOCIAL_HOSTS.search(host):
        return "social"
    if _EMAIL_HOSTS.search(host):
        return "email"
    return "other"


def utc_offset_of(tz_name: Any, ts: float) -> float | None:
    """Offset from UTC in seconds of the IANA time zone ``tz_name`` at epoch second ``ts``; None if unknown.

    Examples
    --------
    >>> utc_offset_of("Europe/Berlin", 1767790800.0), utc_offset_of("Mars/Olympus", 0.0)
    (3600.0, None)
    """
    if not isinstance(tz_name, str) or not tz_name.strip() or not math.isfinite(ts):
        return None
    try:
        from zoneinfo import ZoneInfo

        off = datetime.fromtimestamp(ts, tz=timezone.utc).astimezone(ZoneInfo(tz_name.strip())).utcoffset()
    except (KeyError, ValueError, OSError, ImportError):
        return None
    return None if off is None else off.total_seconds()


def utc_offsets(tz_names: Iterable[Any], ts: Iterable[float]) -> list[float | None]:
    """:func:`utc_offset_of` row by row, computed once per zone and quarter hour (offsets change only
    at quarter-hour boundaries)."""
    return mapped(lambda z_q: utc_offset_of(z_q[0], z_q[1] * 900.0),
                  ((z if isinstance(z, str) else None, math.floor(t / 900.0) if math.isfinite(t) else math.nan)
                   for z, t in zip(tz_names, ts)))


# ---------------------------------------------------------------------------------------------
# Reading exports: frames, records, nested and dotted columns
# ---------------------------------------------------------------------------------------------
def as_frame(export: Any, what: str) -> pd.DataFrame:
    """The export as a DataFrame: a DataFrame as is, an iterable of mappings (JSON lines records) as rows."""
    if isinstance(export, pd.DataFrame):
        return export
    if isinstance(export, (str, bytes, Mapping)) or not isinstance(export, Iterable):
        raise ValidationError(f"{what} must be a pandas DataFrame or an iterable of dicts (one per event), "
                              f"got {type(export).__name__}")
    rows = list(export)
    bad = next((i for i, r in enumerate(rows) if not _is_mapping(r)), None)
    if bad is not None:
        raise ValidationError(f"{what} row {bad} must be a dict, got {type(rows[bad]).__name__}")
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()


def _is_mapping(v: Any) -> bool:
    return type(v) is dict or isinstance(v, Mapping)  # the exact-type test first: exports are mostly dicts


def _maybe_json(v: Any) -> Any:
    if type(v) is str and v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _dig(v: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        if type(v) is str:
            v = _maybe_json(v)
        if type(v) is dict or isinstance(v, Mapping):
            v = v.get(k)
        else:
            return None
    return v


def column(frame: pd.DataFrame, path: str) -> pd.Series | None:
    """The values at ``path`` (``"device.category"``) in a flat (``device.category`` or
    ``device_category`` column) or nested (a ``device`` column of dicts or JSON strings) export."""
    if path in frame.columns:
        return frame[path]
    flat = path.replace(".", "_")
    if flat in frame.columns:
        return frame[flat]
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        base = ".".join(parts[:i])
        for name in (base, base.replace(".", "_")):
            if name in frame.columns:
                rest = parts[i:]
                return pd.Series([_dig(v, rest) for v in frame[name].to_numpy(dtype=object)],
                                 index=frame.index, dtype=object)
    return None


def first_of(frame: pd.DataFrame, *paths: str) -> pd.Series:
    """Element-wise the first non-missing value over ``paths`` (object Series; None where none)."""
    out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for p in paths:
        s = column(frame, p)
        if s is None:
            continue
        fill = out.isna() & s.notna()
        if fill.any():
            out[fill] = s[fill]
    return out


def number(s: pd.Series | Any, n: int | None = None) -> np.ndarray:
    """Float array of a Series of numbers / numeric strings (NaN for anything else)."""
    if not isinstance(s, pd.Series):
        return np.full(n or 0, np.nan)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def text(v: Any) -> str | None:
    """A non-empty string (numbers become their text), or None."""
    if isinstance(v, str):
        return v if v.strip() else None
    if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return None


def mapped(fn: Any, values: Iterable[Any]) -> list[Any]:
    """``[fn(v) for v in values]``, computing ``fn`` once per distinct hashable value."""
    cache: dict[Any, Any] = {}
    out = []
    for v in values:
        try:
            r = cache[v]
        except KeyError:
            r = cache[v] = fn(v)
        except TypeError:  # unhashable (a dict, a list)
            r = fn(v)
        out.append(r)
    return out


def texts(s: pd.Series) -> pd.Series:
    """:func:`text` of each value, as an object Series (None for missing; never the string "nan")."""
    return pd.Series(mapped(text, s.to_numpy(dtype=object)), index=s.index, dtype=object)


def iso_seconds(s: pd.Series | None, n: int) -> np.ndarray:
    """Epoch seconds of ISO-8601 / ``YYYY-MM-DD hh:mm:ss.sss`` timestamps (UTC unless an offset is given)."""
    if s is None:
        return np.full(n, np.nan)
    t = pd.to_datetime(s.where(s.map(lambda v: isinstance(v, str) and bool(v.strip())), None),
                       errors="coerce", utc=True, format="ISO8601")
    ns = t.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
    ns[t.isna().to_numpy()] = np.nan
    return ns / 1e9


def first_time(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Epoch seconds from the first of ``columns`` (ISO 8601 text) that holds a time, row by row."""
    ts = np.full(len(frame), np.nan)
    for c in columns:
        if c in frame.columns:
            ts = np.where(np.isnan(ts), iso_seconds(frame[c].astype(object), len(frame)), ts)
    return ts


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdapterReport:
    """What an adapter did with an export: counts of rows read, events written, and what was dropped and why.

    Attributes
    ----------
    source : str
        ``"ga4"``, ``"snowplow"`` or ``"segment"``.
    n_rows, n_events, n_sessions : int
        Export rows read; events in the log written; sessions in it.
    mapped : dict
        Events written per nextchannel type that came straight from a source event.
    derived : dict
        Events written that the adapter derived (``session_start`` per session, and again when a
        customer id first appears in it, e.g. at a login; ``idle`` from
        engagement or heartbeat gaps, ``scroll`` from page-ping offsets).
    dropped : dict
        Rows not written, per reason: ``no_timestamp``, ``no_session_id``, ``duplicate`` (an event id seen
        before), ``unknown_event`` (a name the mapping does not know), ``no_equivalent`` (a known name with
        no nextchannel event, e.g. ``view_item``, or used only to derive others, e.g. ``page_ping``),
        ``no_page`` (a page view without a URL).
    unknown_events, no_equivalent_events : dict
        The names behind ``dropped["unknown_event"]`` and ``dropped["no_equivalent"]``, with counts.
    defaults : dict
        Values the adapter had to assume: ``page_type_default`` (no URL rule matched), ``device_default``
        (no device category nor user agent), ``value_missing`` / ``n_results_missing`` (cart, purchase or
        search events written without that number), ``invalid_number`` (a negative or non-finite number
        written as missing).

    Examples
    --------
    >>> r = AdapterReport("ga4", n_rows=3, n_events=2, n_sessions=1, mapped={"page_view": 1},
    ...                   derived={"session_start": 1}, dropped={"unknown_event": 1}, unknown_events={"x": 1})
    >>> r.to_dict()["dropped"]
    {'unknown_event': 1}
    >>> r.n_dropped
    1
    """

    source: str
    n_rows: int
    n_events: int
    n_sessions: int
    mapped: dict[str, int] = field(default_factory=dict)
    derived: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    unknown_events: dict[str, int] = field(default_factory=dict)
    no_equivalent_events: dict[str, int] = field(default_factory=dict)
    defaults: dict[str, int] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return int(sum(self.dropped.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "n_rows": self.n_rows, "n_events": self.n_events,
                "n_sessions": self.n_sessions, "mapped": dict(self.mapped), "derived": dict(self.derived),
                "dropped": dict(self.dropped), "unknown_events": dict(self.unknown_events),
                "no_equivalent_events": dict(self.no_equivalent_events), "defaults": dict(self.defaults)}

    def __str__(self) -> str:
        def fmt(d: Mapping[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"

        return (f"{self.source}: {self.n_rows} rows -> {self.n_events} events in {self.n_sessions} sessions; "
                f"mapped: {fmt(self.mapped)}; derived: {fmt(self.derived)}; dropped: {fmt(self.dropped)}; "
                f"unknown events: {fmt(self.unknown_events)}; assumed: {fmt(self.defaults)}")


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------
#: Columns of the normalised frame a source module hands to :func:`assemble` (missing ones are NaN/None).
NORMALISED_COLUMNS: tuple[str, ...] = (
    "session_id", "ts", "name", "type", "event_id", "seq1", "seq2",
    # event fields
    "page", "page_type", "depth", "direction", "value", "n_results", "field",
    # session context (first non-missing value of the session is used)
    "device", "language", "referrer", "customer_id", "returning", "utc_offset_s",
    # activity hints for derived events
    "engagement_s", "yoffset_max", "doc_height", "view_height",
)
_CONTEXT = ("device", "language", "referrer", "customer_id", "returning", "utc_offset_s")
_RANK = {"session_start": 0, "idle": 1, "page_view": 2}
_CONTENT = ("page", "depth", "direction", "value", "n_results", "field", "event_id")


def _counts(values: Iterable[Any]) -> dict[str, int]:
    return dict(sorted(Counter(str(v) for v in values).items()))


def assemble(norm: pd.DataFrame, *, source: str, n_rows: int, no_equivalent: Iterable[str] = (),
             idle_from: str | None = None, idle_min_s: float = 30.0, heartbeat_s: float = 10.0,
             scroll_from_offsets: bool = False, default_device: str = "desktop",
             extra_defaults: Mapping[str, int] | None = None) -> tuple[pd.DataFrame, AdapterReport]:
    """Turn normalised source rows into a validated event log and its :class:`AdapterReport`.

    ``norm`` has the columns of :data:`NORMALISED_COLUMNS` (missing ones are treated as empty);
    ``type`` is the nextchannel event type of a row, or None when the row maps to none (its ``name``
    is then counted as unknown, or as having no equivalent when it is in ``no_equivalent``; such rows
    still feed the derived events). ``idle_from`` is ``"engagement"`` (idle = time since the session's
    previous event minus the engagement time the row reports) or ``"heartbeat"`` (idle = gap since the
    previous activity minus ``heartbeat_s``), an idle event being written when it reaches
    ``idle_min_s``; ``scroll_from_offsets`` writes a scroll event whenever a page ping's maximum
    vertical offset changes.
    """
    if default_device not in DEVICES:
        raise ConfigError(f"default_device must be one of {list(DEVICES)}, got {default_device!r}")
    if not (isinstance(idle_min_s, (int, float)) and math.isfinite(idle_min_s) and idle_min_s > 0):
        raise ConfigError(f"idle_min_s must be a finite number > 0, got {idle_min_s!r}")
    if not (isinstance(heartbeat_s, (int, float)) and math.isfinite(heartbeat_s) and heartbeat_s >= 0):
        raise ConfigError(f"heartbeat_s must be a finite number >= 0, got {heartbeat_s!r}")
    norm = norm.reset_index(drop=True)
    n = len(norm)
    col = {c: (norm[c].to_numpy(dtype=object) if c in norm.columns else np.full(n, None, dtype=object))
           for c in NORMALISED_COLUMNS}
    ts = pd.to_numeric(pd.Series(col["ts"]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    sid = np.array([text(v) for v in col["session_id"]], dtype=object)
    dropped: Counter[str] = Counter()
    defaults: Counter[str] = Counter(extra_defaults or {})

    no_ts = ~np.isfinite(ts)
    no_sid = ~no_ts & np.array([v is None for v in sid], dtype=bool)
    dropped["no_timestamp"] += int(no_ts.sum())
    dropped["no_session_id"] += int(no_sid.sum())
    keep = ~no_ts & ~no_sid
    eid = np.array([text(v) for v in col["event_id"]], dtype=object)
    # At-least-once delivery repeats events under the same id: keep one (they are identical).
    has_id = keep & np.array([v is not None for v in eid], dtype=bool)
    if has_id.any():
        dup = pd.Series(eid[has_id]).duplicated(keep="first").to_numpy()
        rows = np.flatnonzero(has_id)[dup]
        dropped["duplicate"] += len(rows)
        keep[rows] = False

    # Deterministic order within a session, independent of the rows' positions in the export.
    idx = np.flatnonzero(keep)
    types = col["type"]
    names = np.array([text(v) or "" for v in col["name"]], dtype=object)
    rank = np.array([_RANK.get(t, 3) if isinstance(t, str) else 4 for t in types], dtype=np.int64)
    seq1 = pd.to_numeric(pd.Series(col["seq1"]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    seq2 = pd.to_numeric(pd.Series(col["seq2"]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    sub = idx
    if len(idx):
        keys = [names[idx], rank[idx], np.nan_to_num(seq2[idx], nan=np.inf),
                np.nan_to_num(seq1[idx], nan=np.inf), ts[idx], sid[idx]]
        keys = [pd.factorize(k, sort=True)[0] if k.dtype == object else k for k in keys]
        # Rows equal on every key so far are ordered by their content (only those: it is costly).
        content = np.zeros(len(idx), dtype=np.int64)
        tied = pd.DataFrame(dict(enumerate(keys))).duplicated(keep=False).to_numpy()
        if tied.any():
            text_of = [json.dumps([_jsonable(col[c][i]) for c in _CONTENT], default=str) for i in idx[tied]]
            content[tied] = pd.factorize(np.array(text_of, dtype=object), sort=True)[0]
        sub = idx[np.lexsort([content, *keys])]

    out: list[dict[str, Any]] = []
    mapped: Counter[str] = Counter()
    derived: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    noeq: Counter[str] = Counter()
    no_equivalent = frozenset(no_equivalent)
    start = 0
    while start < len(sub):
        stop = start
        while stop < len(sub) and sid[sub[stop]] == sid[sub[start]]:
            stop += 1
        rows = sub[start:stop]
        start = stop
        session = sid[rows[0]]
        ctx: dict[str, Any] = {}
        for c in _CONTEXT:
            ctx[c] = next((col[c][r] for r in rows if not _missing(col[c][r])), None)
        # A customer id is known from the event that carries it (a login), not before: point in time.
        ctx["customer_id"] = None if _missing(col["customer_id"][rows[0]]) else text(col["customer_id"][rows[0]])
        if ctx["device"] is None:
            ctx["device"] = default_device
            defaults["device_default"] += 1
        if ctx["returning"] is not None:
            ctx["returning"] = bool(ctx["returning"])
        out.append({"session_id": session, "ts": float(ts[rows[0]]), "type": "session_start",
                    "source_event": "", **ctx})
        derived["session_start"] += 1
        prev_ts = math.nan
        last_y = 0.0
        for r in rows:
            t, etype, name = float(ts[r]), types[r], names[r]
            cid = text(col["customer_id"][r])
            if cid is not None and cid != ctx["customer_id"]:
                ctx["customer_id"] = cid
                out.append({"session_id": session, "ts": t, "type": "session_start", "source_event": name, **ctx})
                derived["session_start"] += 1
            # derived: idle that ended at this row
            if idle_from == "engagement":
                eng = _float(col["engagement_s"][r])
                if math.isfinite(eng) and math.isfinite(prev_ts) and t - prev_ts - eng >= idle_min_s:
                    out.append({"session_id": session, "ts": t, "type": "idle", "source_event": name,
                                "duration_s": t - prev_ts - eng})
                    derived["idle"] += 1
            elif idle_from == "heartbeat":
                if math.isfinite(prev_ts) and t - prev_ts - heartbeat_s >= idle_min_s:
                    out.append({"session_id": session, "ts": t, "type": "idle", "source_event": name,
                                "duration_s": t - prev_ts - heartbeat_s})
                    derived["idle"] += 1
            prev_ts = t
            if etype == "page_view":
                last_y = 0.0
            if scroll_from_offsets and etype is None:
                y = _float(col["yoffset_max"][r])
                if math.isfinite(y) and y >= 0 and y != last_y:
                    depth = _depth(y, _float(col["view_height"][r]), _float(col["doc_height"][r]))
                    if depth is not None:
                        out.append({"session_id": session, "ts": t, "type": "scroll", "source_event": name,
                                    "depth": depth, "direction": "down" if y > last_y else "up"})
                        derived["scroll"] += 1
                    last_y = y
            if not isinstance(etype, str):
                (noeq if name in no_equivalent else unknown)[name or "(no name)"] += 1
                continue
            ev: dict[str, Any] = {"session_id": session, "ts": t, "type": etype, "source_event": name}
            if etype == "page_view":
                page = text(col["page"][r])
                if page is None:
                    dropped["no_page"] += 1
                    continue
                ev["page"] = page
                ev["page_type"] = col["page_type"][r]
            for f in EVENT_FIELDS[etype]:
                if f in ("page", "page_type") or f in _CONTEXT:
                    continue
                v = col[f][r] if f in col else None
                if f in ("value", "n_results", "depth", "duration_s"):
                    v = _float(v)
                    if math.isnan(v):
                        defaults[f"{f}_missing"] += 1
                    elif not math.isfinite(v) or v < 0:
                        defaults["invalid_number"] += 1
                        v = math.nan
                ev[f] = v
            out.append(ev)
            mapped[etype] += 1
    dropped["unknown_event"] += int(sum(unknown.values()))
    dropped["no_equivalent"] += int(sum(noeq.values()))

    frame = pd.DataFrame.from_records(out, columns=[*EVENT_COLUMNS, "source_event"]) if out else \
        pd.DataFrame({c: pd.Series(dtype=float if c == "ts" else object) for c in (*EVENT_COLUMNS, "source_event")})
    frame = _tidy(frame)
    validate_events(frame)
    report = AdapterReport(source=source, n_rows=int(n_rows), n_events=len(frame),
                           n_sessions=int(frame["session_id"].nunique()),
                           mapped=dict(sorted(mapped.items())), derived=dict(sorted(derived.items())),
                           dropped={k: v for k, v in sorted(dropped.items()) if v},
                           unknown_events=dict(sorted(unknown.items())),
                           no_equivalent_events=dict(sorted(noeq.items())),
                           defaults={k: v for k, v in sorted(defaults.items()) if v})
    logger.info("%s adapter: %d rows -> %d events in %d sessions, %d rows dropped", source, report.n_rows,
                report.n_events, report.n_sessions, report.n_dropped)
    return frame, report


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes: floats for numbers, object (None for missing) for text and flags."""
    frame = frame.reset_index(drop=True)
    for c in ("ts", "depth", "duration_s", "value", "n_results", "utc_offset_s"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    numeric = {"ts", "depth", "duration_s", "value", "n_results", "utc_offset_s"}
    for c in frame.columns:
        if c not in numeric:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return frame


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v)


def _float(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _jsonable(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def _depth(y: float, view_height: float, doc_height: float) -> float | None:
    """Share of the document seen at vertical offset ``y``: (y + viewport) / document height, in [0, 1]."""
    if not (math.isfinite(doc_height) and doc_height > 0):
        return None
    seen = y + (view_height if math.isfinite(view_height) and view_height > 0 else 0.0)
    return float(min(1.0, max(0.0, seen / doc_height)))


def page_fields(urls: pd.Series, rules: Sequence[tuple[str, str]] | None,
                default_page_type: str) -> tuple[list[str | None], list[str | None], int]:
    """Page id (the URL's path) and page type of each URL, with the count of URLs no rule matched."""
    _check_page_type(default_page_type)
    _compiled(rules)
    pages: list[str | None] = []
    kinds: list[str | None] = []
    n_default = 0
    cache: dict[str, tuple[str | None, str | None, bool]] = {}
    for u in urls.to_numpy(dtype=object):
        if not isinstance(u, str):
            pages.append(None)
            kinds.append(None)
            continue
        if u not in cache:
            kind = page_type_of(u, rules, default=None)
            cache[u] = (page_path_of(u), kind or default_page_type, kind is None)
        p, k, d = cache[u]
        pages.append(p)
        kinds.append(k)
        n_default += d
    return pages, kinds, n_default


def require_columns(frame: pd.DataFrame, what: str, needs: Sequence[tuple[str, ...]]) -> None:
    """Raise ValidationError unless, for each alternative group, one of its paths is present."""
    for group in needs:
        if not any(column(frame, p) is not None for p in group):
            alts = " or ".join(repr(p) for p in group)
            raise ValidationError(f"{what} must have a column {alts}, missing; got columns {list(frame.columns)}")


def resolve_event_map(defaults: Mapping[str, str], no_equivalent: Iterable[str],
                      changes: Mapping[str, str | None] | None) -> tuple[dict[str, str], frozenset[str]]:
    """A source's event map with the user's ``changes`` applied (None: the name has no equivalent)."""
    emap = dict(defaults)
    noeq = set(no_equivalent)
    if changes is None:
        return emap, frozenset(noeq)
    if not isinstance(changes, Mapping):
        raise ConfigError(f"event_map must be a mapping of source event name to event type, got {type(changes).__name__}")
    for name, etype in changes.items():
        if not isinstance(name, str):
            raise ConfigError(f"event_map keys must be source event names (str), got {name!r}")
        if etype is None:
            emap.pop(name, None)
            noeq.add(name)
        elif etype in EVENT_FIELDS and etype != "session_start":
            emap[name] = etype
            noeq.discard(name)
        else:
            raise ConfigError(f"event_map[{name!r}] must be None or one of "
                              f"{[t for t in EVENT_FIELDS if t != 'session_start']}, got {etype!r}")
    return emap, frozenset(noeq)
