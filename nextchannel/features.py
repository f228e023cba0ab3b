"""Behaviour features, defined once and computed two ways: per request and over event logs.

Where it sits: events → **session state / event frames → features** → models → policy.

One definition
--------------
Features are written once, as data, in three small tables:

1. *event variables* — values derived from one event and the session's past, e.g. whether a page
   view revisits a page (``revisit``) or returns to the page before the previous one (``back``),
   or the dwell time of the page a page view ends (``ended_dwell_s``). See :data:`EVENT_VARIABLES`.
2. *slots* — running aggregates over the session's events so far (count, sum, max, last, first of
   an event variable where a condition holds), see :data:`SLOTS`;
3. *features* — arithmetic expressions over slots and the decision time ``now``, see
   :data:`FEATURES`.

Two executors read these tables: the **online** one (:class:`SessionState`) generates straight-line
Python code for ``update(event)`` (O(1) per event) and for ``features_one(now)``; the **batch**
one (:func:`features_many`) evaluates the same slot definitions with numpy/pandas over an event
log and the same feature expressions over arrays, point-in-time: the features at a decision point
``(session_id, ts)`` use only that session's events with ``ts`` at or before it. Property tests
assert that both give identical values.

Time and order
--------------
One rule, applied identically by both executors: a session's events are read in their order of
arrival (the order of ``update`` calls online; the row order of the log in batch — rows of other
sessions may interleave), and **an event earlier than the latest event kept for its session is
skipped and counted** (``SessionState.n_out_of_order``; ``features_many(...).attrs["skipped"]``).
Equal timestamps are kept in arrival order. So a log written in time order loses nothing, and a
late event never changes features that were already served. Strict mode (``strict=True`` online,
``validate=True`` in batch) raises on such an event instead.

Lenient mode (the web default) never raises in ``update``: an event with an unknown type, a
non-finite ``ts``, another session's id or an unreadable field value (a hostile object, an int of
5,000 digits) is skipped and counted in ``SessionState.n_malformed``; a missing or non-finite
numeric field counts as absent (sums and maxima skip it). The batch path skips the same rows.

The decision time ``now`` of :meth:`SessionState.features_one` may not be earlier than the
session's last event (the state cannot forget events): strict mode raises, lenient mode uses the
last event's time instead and counts it (``SessionState.n_now_clamped``). In batch the question
does not arise: a decision point at ``ts`` reads only the events at or before ``ts``.

Session ids are compared by their canonical form (:func:`nextchannel.schema.canonical_id`:
``5``, ``5.0`` and ``"5"`` are one session), online and in batch. Bounds
(:class:`nextchannel.schema.Limits`: events kept per session, distinct pages remembered, page id
length) are applied by both executors in the same way.

Examples
--------
>>> from nextchannel.features import SessionState, features_many
>>> s = SessionState("s1")
>>> s.update({"session_id": "s1", "ts": 0.0, "type": "page_view", "page": "/cart", "page_type": "cart"})
>>> s.update({"session_id": "s1", "ts": 40.0, "type": "idle", "duration_s": 35.0})
>>> f = s.features_one(now=45.0)
>>> f["dwell_current_s"], f["idle_current_page_s"], f["funnel_stage"]
(45.0, 35.0, 3.0)
"""

from __future__ import annotations

import ast
import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from nextchannel.compat import is_dask_collection, is_pandas_na, lazy_module
from nextchannel.conventions import accepts_old_form
from nextchannel.errors import ValidationError, excerpt
from nextchannel.schema import (
    DEFAULT_LIMITS,
    DEVICES,
    EVENT_FIELDS,
    FUNNEL_STAGE,
    LANGUAGES,
    PAGE_TYPES,
    REFERRERS,
    SCROLL_DIRECTIONS,
    ChannelCatalogue,
    Limits,
    canonical_id,
    canonical_ids,
    validate_event,
    validate_events,
)

if TYPE_CHECKING:
    import pandas as pd
else:  # imported when a batch path first uses it: the per-request path never does
    pd = lazy_module("pandas")

__all__ = [
    "EVENT_VARIABLES",
    "SLOTS",
    "FEATURES",
    "SESSION_FEATURES",
    "CATEGORICAL_FEATURES",
    "Slot",
    "Feature",
    "SessionState",
    "feature_names",
    "features_many",
]

logger = logging.getLogger(__name__)

_OTHER_LANGUAGE = LANGUAGES.index("other")
_PT = {p: i for i, p in enumerate(PAGE_TYPES)}

#: Event variables every slot may use, with their meaning. ``ts`` and the event's own numeric fields
#: (``duration_s``, ``value``, ``n_results``, ``depth``, ``utc_offset_s``) are available as well.
EVENT_VARIABLES: dict[str, str] = {
    "pt": "page type code of a page view (index in schema.PAGE_TYPES), -1 if unknown",
    "stage": "funnel stage of a page view (schema.FUNNEL_STAGE), -1 outside the funnel",
    "revisit": "1 if this page view's page was already viewed in the session",
    "back": "1 if this page view returns to the page viewed before the previous one (A→B→A)",
    "forward": "1 if this page view reaches a funnel stage beyond any reached before",
    "ended_dwell_s": "seconds since the previous page view (the dwell it ends), NaN for the first",
    "ended_pt": "page type code of the page whose dwell this page view ends, -1 if none",
    "reversal": "1 if this scroll's direction differs from the session's previous scroll",
    "device": "device code (schema.DEVICES) of a session_start, -1 if unknown",
    "language": "language code (schema.LANGUAGES); unknown languages code as 'other'",
    "referrer": "referrer code (schema.REFERRERS), -1 if unknown",
    "known": "1 if a session_start names a customer_id",
    "returning": "1 if a session_start says the visitor is returning",
}


@dataclass(frozen=True)
class Slot:
    """A running aggregate over a session's events.

    ``kind`` is ``count`` (events where ``where`` holds), ``sum`` / ``max`` (of ``value``, skipping
    NaN), ``last`` (the latest non-NaN ``value``) or ``first``; ``on`` lists the event types it
    reads (``()`` = every event); ``value`` and ``where`` are expressions over event variables
    and, for ``value``, slots defined earlier (their value after this event); ``default`` is the
    value before any matching event.
    """

    name: str
    kind: str
    on: tuple[str, ...] = ()
    value: str = "1"
    where: str = ""
    default: float = 0.0


@dataclass(frozen=True)
class Feature:
    """A feature: an expression over slots and ``now`` (the decision time), with its meaning."""

    name: str
    expr: str
    doc: str


_PV = ("page_view",)
SLOTS: tuple[Slot, ...] = (
    Slot("n_events", "count"),
    Slot("start_ts", "first", (), "ts", default=math.nan),
    Slot("n_page_views", "count", _PV),
    Slot("n_revisits", "count", _PV, where="revisit"),
    Slot("n_back", "count", _PV, where="back"),
    Slot("n_help_views", "count", _PV, where=f"(pt == {_PT['help']}) | (pt == {_PT['contact']})"),
    Slot("pv_ts", "last", _PV, "ts", default=math.nan),
    Slot("pv_pt", "last", _PV, "pt", default=-1.0),
    Slot("fwd_ts", "last", _PV, "ts", where="forward", default=math.nan),
    Slot("max_stage", "max", _PV, "stage", default=-1.0),
    *(Slot(f"dwell_done_{p}", "sum", _PV, "ended_dwell_s", where=f"ended_pt == {i}")
      for i, p in enumerate(PAGE_TYPES)),
    Slot("longest_done", "max", _PV, "ended_dwell_s"),
    Slot("n_idle", "count", ("idle",)),
    Slot("idle_total_s", "sum", ("idle",), "duration_s"),
    Slot("idle_max_s", "max", ("idle",), "duration_s"),
    Slot("idle_at_pv", "last", _PV, "idle_total_s"),
    Slot("n_scroll", "count", ("scroll",)),
    Slot("n_reversal", "count", ("scroll",), where="reversal"),
    Slot("scroll_depth", "last", ("scroll",), "depth"),
    Slot("n_click", "count", ("click",)),
    Slot("n_form_error", "count", ("form_error",)),
    Slot("n_form_submit", "count", ("form_submit",)),
    Slot("n_cart_add", "count", ("cart_add",)),
    Slot("cart_added", "sum", ("cart_add",), "value"),
    Slot("n_cart_remove", "count", ("cart_remove",)),
    Slot("cart_removed", "sum", ("cart_remove",), "value"),
    Slot("n_search", "count", ("search",)),
    Slot("n_search_none", "count", ("search",), where="n_results == 0"),
    Slot("n_exit", "count", ("exit_intent",)),
    Slot("exit_ts", "last", ("exit_intent",), "ts", default=math.nan),
    Slot("n_offer", "count", ("offer_shown",)),
    Slot("offer_ts", "last", ("offer_shown",), "ts", default=math.nan),
    Slot("n_dismiss", "count", ("offer_dismissed",)),
    Slot("dismiss_ts", "last", ("offer_dismissed",), "ts", default=math.nan),
    Slot("n_accept", "count", ("offer_accepted",)),
    Slot("n_contact", "count", ("contact_started",)),
    Slot("n_purchase", "count", ("purchase",)),
    Slot("n_end", "count", ("session_end",)),
    Slot("ctx_device", "last", ("session_start",), "device", default=-1.0),
    Slot("ctx_language", "last", ("session_start",), "language", default=-1.0),
    Slot("ctx_referrer", "last", ("session_start",), "referrer", default=-1.0),
    Slot("ctx_known", "last", ("session_start",), "known"),
    Slot("ctx_returning", "last", ("session_start",), "returning"),
    Slot("ctx_utc_offset_s", "last", ("session_start",), "utc_offset_s"),
)

FEATURES: tuple[Feature, ...] = (
    # dwell
    Feature("dwell_current_s", "nz(now - pv_ts, 0.0)", "seconds on the current page"),
    Feature("session_duration_s", "nz(now - start_ts, 0.0)", "seconds since the session's first event"),
    *(Feature(f"dwell_{p}_s", f"dwell_done_{p} + (pv_pt == {i}) * nz(now - pv_ts, 0.0)",
              f"seconds spent on {p} pages, the current one included")
      for i, p in enumerate(PAGE_TYPES)),
    Feature("longest_dwell_s", "fmax(longest_done, nz(now - pv_ts, 0.0))", "longest dwell on one page"),
    # hesitation
    Feature("idle_count", "n_idle", "idle periods"),
    Feature("idle_total_s", "idle_total_s", "seconds idle in total"),
    Feature("idle_max_s", "idle_max_s", "longest idle period"),
    Feature("idle_current_page_s", "idle_total_s - idle_at_pv", "seconds idle since the last page view"),
    Feature("back_navigations", "n_back", "returns to the page before the previous one"),
    Feature("revisits", "n_revisits", "page views of a page seen before"),
    Feature("scroll_reversals", "n_reversal", "changes of scroll direction"),
    Feature("form_errors", "n_form_error", "form validation errors"),
    Feature("cart_removals", "n_cart_remove", "items removed from the cart"),
    Feature("searches_no_result", "n_search_none", "searches that found nothing"),
    Feature("exit_intents", "n_exit", "exit-intent signals (pointer to the tab bar, back swipe)"),
    Feature("help_views", "n_help_views", "views of help/FAQ and contact pages"),
    Feature("time_since_forward_s", "nz(now - nz(fwd_ts, start_ts), 0.0)",
            "seconds since the last step forward in the funnel (or since the start)"),
    Feature("time_since_exit_intent_s", "now - exit_ts", "seconds since the last exit intent, NaN if none"),
    # journey
    Feature("pages_viewed", "n_page_views", "page views"),
    Feature("funnel_stage", "max_stage", "furthest funnel stage reached (-1 none, 4 checkout)"),
    Feature("page_type", "pv_pt", "type of the current page (code in schema.PAGE_TYPES)"),
    Feature("cart_value", "cart_added - cart_removed", "net value added to the cart"),
    Feature("cart_items", "n_cart_add - n_cart_remove", "net items added to the cart"),
    Feature("searches", "n_search", "searches"),
    Feature("clicks", "n_click", "clicks"),
    Feature("form_submits", "n_form_submit", "form submits"),
    Feature("scroll_depth", "scroll_depth", "depth of the last scroll (0..1)"),
    # context
    Feature("device", "ctx_device", "device code (schema.DEVICES), -1 unknown"),
    Feature("hour_of_day", "((now + ctx_utc_offset_s) % 86400.0) // 3600.0", "local hour at the decision"),
    Feature("weekday", "(((now + ctx_utc_offset_s) // 86400.0) + 3.0) % 7.0", "local weekday, 0 = Monday"),
    Feature("language", "ctx_language", "language code (schema.LANGUAGES), -1 unknown"),
    Feature("referrer", "ctx_referrer", "referrer code (schema.REFERRERS), -1 unknown"),
    Feature("is_known", "ctx_known", "1 if a known customer"),
    Feature("is_returning", "ctx_returning", "1 if a returning visitor"),
    # this session's offers
    Feature("offers_shown", "n_offer", "offers shown in this session"),
    Feature("offers_dismissed", "n_dismiss", "offers dismissed in this session"),
    Feature("offers_accepted", "n_accept", "offers accepted in this session"),
    Feature("time_since_offer_s", "now - offer_ts", "seconds since the last offer, NaN if none"),
    Feature("time_since_dismiss_s", "now - dismiss_ts", "seconds since the last dismissal, NaN if none"),
    Feature("contacts_started", "n_contact", "contacts started in this session"),
    Feature("purchased", "fmin(n_purchase, 1.0)", "1 once the visitor has bought"),
)
SESSION_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES)
#: Features that are codes, to be treated as categorical by the models.
CATEGORICAL_FEATURES: tuple[str, ...] = ("page_type", "device", "language", "referrer")


def feature_names(channels: Any = None, with_profile: bool = True) -> tuple[str, ...]:
    """All feature names in model order: session features, then the customer profile's.

    Examples
    --------
    >>> names = feature_names(with_profile=False)
    >>> names[:3]
    ('dwell_current_s', 'session_duration_s', 'dwell_home_s')
    """
    if not with_profile:
        return SESSION_FEATURES
    from nextchannel.profile import ProfileConfig, profile_feature_names

    cfg_channels = channels if channels is not None else ProfileConfig().channels
    return SESSION_FEATURES + tuple(profile_feature_names(cfg_channels))


# ---------------------------------------------------------------------------------------------
# Helpers usable in expressions; the scalar versions serve the online path, the array versions
# the batch path, with the same meaning.
# ---------------------------------------------------------------------------------------------
def _nz_scalar(x: float, d: float) -> float:
    return d if x != x else x


def _fmax_scalar(a: float, b: float) -> float:
    return a if a >= b else b


def _fmin_scalar(a: float, b: float) -> float:
    return a if a <= b else b


_SCALAR_ENV: dict[str, Any] = {"nz": _nz_scalar, "fmax": _fmax_scalar, "fmin": _fmin_scalar, "nan": math.nan}
_ARRAY_ENV: dict[str, Any] = {
    "nz": lambda x, d: np.where(np.isnan(x), d, x),
    "fmax": np.fmax,
    "fmin": np.fmin,
    "nan": np.nan,
}


def _names_in(expr: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}


# ---------------------------------------------------------------------------------------------
# Online executor: code generated from SLOTS and FEATURES
# ---------------------------------------------------------------------------------------------
def _missing(x: Any) -> bool:
    if type(x) is float or type(x) is np.float64:
        return bool(x != x)
    return x is None or is_pandas_na(x)


def _page_key(x: Any, max_len: int = DEFAULT_LIMITS.max_str_len) -> str | None:
    """A page id as a string cut to ``max_len`` characters, None when missing or unreadable.

    The batch path maps the same way. Never raises: a value whose ``str()`` fails (a hostile
    object, an int of more digits than Python converts) counts as no page id.
    """
    if type(x) is str:
        return x if len(x) <= max_len else x[:max_len]
    try:
        if _missing(x):
            return None
        k = str(x) if not isinstance(x, str) else str.__str__(x)
        return k if type(k) is str and len(k) <= max_len else (k[:max_len] if type(k) is str else None)
    except Exception:
        return None


def _lookup(table: Mapping[Any, int], key: Any, default: int) -> int:
    """``table.get(key, default)`` for a vocabulary of strings: anything not a plain string is unknown.

    Only exact ``str`` keys are looked up, so no user object's ``__hash__``/``__eq__`` runs.
    """
    if type(key) is not str:
        return default
    return table.get(key, default)


_NUMBER_TYPES = frozenset({int, float, *np.sctypeDict.values()}) - {bool, np.bool_, str, bytes, object, np.str_,
                                                                     np.bytes_, np.void, np.object_}


def _known(cid: Any) -> int:
    """1 if a session_start's ``customer_id`` names a customer: anything but missing or an empty string.

    Both executors call it (the batch path once per distinct value), so they agree on every value.
    A numpy string counts as the ``str`` it equals: the batch path's distinct values merge equal
    strings of either type, so the rule must not tell them apart.
    """
    return 0 if (_missing(cid) or (isinstance(cid, str) and cid == "")) else 1


def _flag(x: Any) -> int:
    """1 for True or the number 1, else 0; only exact built-in/numpy types are compared (never raises)."""
    if x is True or x is np.True_:
        return 1
    if type(x) in _NUMBER_TYPES:
        try:
            return 1 if x == 1 else 0
        except Exception:  # numpy datetime and the like
            return 0
    return 0


def _num(x: Any) -> float:
    """A finite float, or NaN for anything missing or malformed (never raises)."""
    if type(x) is float:
        return x if x - x == 0.0 else math.nan
    try:
        f = float(x)
    except Exception:  # OverflowError for 10**400, ValueError for "abc", whatever a user object raises
        return math.nan
    return f if type(f) is float and f - f == 0.0 else math.nan


# Enrichment: how each event type's variables are computed online (the batch twin is
# `_enrich`; the parity tests hold the two together).
_ENRICH: dict[str, str] = {
    "page_view": """
    page = _page_key(e.get("page"), s._max_str)
    pt = _lookup(_PT, e.get("page_type"), -1)
    stage = _lookup(_STAGE, e.get("page_type"), -1)
    revisit = page is not None and page in s._pages
    back = page is not None and page == s._pv2 and page != s._pv1
    forward = stage > s._max_stage
    ended_dwell_s = ts - s._pv_ts
    ended_pt = s._pv_pt_e
    if page is not None and not revisit and len(s._pages) < s._max_pages:
        s._pages.add(page)
    s._pv2 = s._pv1
    s._pv1 = page
    s._pv_ts = ts
    s._pv_pt_e = pt
    if forward:
        s._max_stage = stage
""",
    "scroll": """
    d = e.get("direction")
    dcode = (0 if d == "down" else (1 if d == "up" else -1)) if type(d) is str else -1
    depth = _num(e.get("depth"))
    reversal = dcode >= 0 and s._last_dir >= 0 and dcode != s._last_dir
    if dcode >= 0:
        s._last_dir = dcode
""",
    "session_start": """
    device = _lookup(_DEV, e.get("device"), -1)
    lang = e.get("language")
    language = _lookup(_LANG, lang, _OTHER_LANG if isinstance(lang, str) else -1)
    referrer = _lookup(_REF, e.get("referrer"), -1)
    known = _known(e.get("customer_id"))
    returning = _flag(e.get("returning"))
    utc_offset_s = _num(e.get("utc_offset_s"))
""",
}
_FIELD_VARS = {"duration_s", "value", "n_results"}


def _slot_code(slot: Slot) -> list[str]:
    """Python statements updating ``slot`` for one event (variables already bound)."""
    val_expr = _rewrite(slot.value)
    stmts: list[str] = []
    if slot.kind == "count":
        stmts = [f"s.{slot.name} += 1"]
    elif slot.kind == "sum":
        stmts = [f"v = {val_expr}", "if v == v:", f"    s.{slot.name} += v"]
    elif slot.kind == "max":
        stmts = [f"v = {val_expr}", f"if v > s.{slot.name}:", f"    s.{slot.name} = v"]
    elif slot.kind == "last":
        stmts = [f"v = {val_expr}", "if v == v:", f"    s.{slot.name} = v"]
    elif slot.kind == "first":
        stmts = [f"if s.{slot.name} != s.{slot.name}:", f"    s.{slot.name} = {val_expr}"]
    else:  # pragma: no cover - guarded by the spec test
        raise ValueError(f"unknown slot kind {slot.kind!r}")
    if slot.where:
        return [f"if {_rewrite(slot.where)}:"] + ["    " + x for x in stmts]
    return stmts


_SLOT_NAMES = frozenset(s.name for s in SLOTS)


def _rewrite(expr: str) -> str:
    """Rewrite an expression so that slot names read the state (``s.name``)."""

    class _T(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id in _SLOT_NAMES:
                return ast.copy_location(ast.Attribute(ast.Name("s", ast.Load()), node.id, ast.Load()), node)
            return node

    return ast.unparse(_T().visit(ast.parse(expr, mode="eval")))


def _compile_online() -> tuple[dict[str, Callable], Callable, Callable]:
    env: dict[str, Any] = dict(_SCALAR_ENV)
    env.update(_PT=_PT, _STAGE=FUNNEL_STAGE, _DEV={d: i for i, d in enumerate(DEVICES)},
               _LANG={x: i for i, x in enumerate(LANGUAGES)}, _OTHER_LANG=_OTHER_LANGUAGE,
               _REF={x: i for i, x in enumerate(REFERRERS)}, _num=_num, _page_key=_page_key,
               _missing=_missing, _flag=_flag, _lookup=_lookup, _known=_known)
    src: list[str] = []
    handlers: dict[str, str] = {}
    for etype in EVENT_FIELDS:
        body = [_ENRICH.get(etype, "").strip("\n")]
        fields = [f for f in EVENT_FIELDS[etype] if f in _FIELD_VARS or f == "depth"]
        for f in fields:
            if f != "depth":
                body.append(f"    {f} = _num(e.get({f!r}))")
        for slot in SLOTS:
            if slot.on and etype not in slot.on:
                continue
            body.extend("    " + line for line in _slot_code(slot))
        fname = f"_on_{etype}"
        handlers[etype] = fname
        src.append(f"def {fname}(s, e, ts):\n" + "\n".join(b for b in body if b) + "\n")
    exprs = ", ".join(_rewrite(f.expr) for f in FEATURES)
    src.append(f"def _features(s, now):\n    return ({exprs},)\n")
    writes = "\n".join(f"    buf[offset + {i}] = {_rewrite(f.expr)}" for i, f in enumerate(FEATURES))
    src.append(f"def _features_into(s, now, buf, offset):\n{writes}\n")
    code = "\n".join(src)
    exec(compile(code, "<nextchannel.features online executor>", "exec"), env)  # noqa: S102 - our own spec
    return {t: env[f] for t, f in handlers.items()}, env["_features"], env["_features_into"]


_HANDLERS, _FEATURES_FN, _FEATURES_INTO_FN = _compile_online()
_SLOT_DEFAULTS = tuple((s.name, s.default) for s in SLOTS)


_ABSENT = object()


class SessionState:
    """One session's running state: the online (per-request) feature executor.

    ``update(event)`` costs O(1) per event; ``features_one(now)`` gives the features at a decision
    taken at ``now`` (default: the last event's time) using every event fed so far. The rules for
    late events, for ``now`` and for bounds are in the module docstring (*Time and order*).

    Parameters
    ----------
    session_id : str or number, optional
        The session this state belongs to, compared by its canonical form
        (:func:`nextchannel.schema.canonical_id`); events of other sessions are refused in strict
        mode and skipped in lenient mode. An event without a ``session_id`` key is taken as this
        session's.
    strict : bool, default False
        Raise :class:`~nextchannel.errors.ValidationError` on a malformed or late event, on a
        ``now`` before the last event and beyond the bounds, instead of skipping and counting
        (use in development and batch jobs; the web path stays lenient).
    channels : ChannelCatalogue, optional
        Catalogue the channel fields of events must belong to in strict mode (default: the
        default catalogue; pass a bundle's own, ``model_set.policy.channels``).
    limits : Limits, optional
        Bounds (events kept, distinct pages remembered, page id length); default ``Limits()``.

    Attributes
    ----------
    n_malformed : int
        Events skipped for any reason (of which ``n_out_of_order`` were late and ``n_over_limit``
        beyond ``limits.max_events``).
    n_now_clamped : int
        Calls of ``features_one``/``features_into`` whose ``now`` was before the last event.

    Examples
    --------
    >>> s = SessionState("s1")
    >>> s.update({"session_id": "s1", "ts": 1.0, "type": "form_error", "field": "zip"})
    >>> s.update({"session_id": "s1", "ts": 2.0, "type": "teleport"})   # lenient: skipped
    >>> s.update({"session_id": "s1", "ts": 0.5, "type": "form_error"})  # late: skipped
    >>> s.n_malformed, s.n_out_of_order, s.features_one()["form_errors"]
    (2, 1, 1.0)
    """

    __slots__ = tuple(n for n, _ in _SLOT_DEFAULTS) + (
        "session_id", "strict", "channels", "limits", "last_ts", "n_malformed", "n_out_of_order",
        "n_over_limit", "n_now_clamped", "_sid", "_n_kept", "_max_events", "_max_pages", "_max_str",
        "_pages", "_pv1", "_pv2", "_pv_ts", "_pv_pt_e", "_max_stage", "_last_dir",
    )

    def __init__(self, session_id: Any = None, *, strict: bool = False, channels: ChannelCatalogue | None = None,
                 limits: Limits | None = None) -> None:
        if limits is not None and not isinstance(limits, Limits):
            raise ValidationError(f"limits must be a Limits or None, got {type(limits).__name__}")
        if channels is not None and not isinstance(channels, ChannelCatalogue):
            raise ValidationError(f"channels must be a ChannelCatalogue or None, got {type(channels).__name__}")
        self.session_id = session_id
        self._sid = canonical_id(session_id)  # the backend's own value: a bad one raises in both modes
        self.strict = strict
        self.channels = channels
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self._max_events = self.limits.max_events
        self._max_pages = self.limits.max_pages
        self._max_str = self.limits.max_str_len
        self.reset()

    def reset(self) -> None:
        """Forget every event and counter (the session id, mode and bounds stay)."""
        for name, default in _SLOT_DEFAULTS:
            setattr(self, name, default)
        self.last_ts = -math.inf
        self.n_malformed = 0
        self.n_out_of_order = 0
        self.n_over_limit = 0
        self.n_now_clamped = 0
        self._n_kept = 0
        self._pages: set[str] = set()
        self._pv1: str | None = None
        self._pv2: str | None = None
        self._pv_ts = math.nan
        self._pv_pt_e = -1
        self._max_stage = -1
        self._last_dir = -1

    def _check_strict(self, event: Mapping[str, Any]) -> None:
        validate_event(event, self.channels, last_ts=None if self.last_ts == -math.inf else self.last_ts)
        if self._sid is not None and canonical_id(event["session_id"]) != self._sid:
            raise ValidationError(f"session_id must be {excerpt(self.session_id)} for this SessionState, "
                                  f"got {excerpt(event['session_id'])}")
        if self._n_kept >= self._max_events:
            raise ValidationError(f"a session holds at most limits.max_events={self._max_events} events; "
                                  f"got one more (ts {excerpt(event.get('ts'))})")

    def update(self, event: Mapping[str, Any]) -> None:
        """Feed one event (a dict with ``session_id``, ``ts``, ``type`` and its fields).

        Lenient mode never raises: whatever ``event`` is, a bad event is skipped and counted.
        """
        if self.strict:
            self._check_strict(event)
        if self._n_kept >= self._max_events:
            self.n_malformed += 1
            self.n_over_limit += 1
            return
        try:
            etype = event.get("type")
            handler = _HANDLERS.get(etype) if type(etype) is str else None
            ts = event.get("ts")
            if type(ts) is not float:
                ts = float(ts) if (ts is not None and type(ts) is not bool) else math.nan
            sid = event.get("session_id", _ABSENT) if self._sid is not None else _ABSENT
        except Exception:  # not a mapping, hostile __float__/get, an int beyond float range, ...
            self.n_malformed += 1
            return
        if handler is None or type(ts) is not float or ts - ts != 0.0:
            self.n_malformed += 1
            return
        if sid is not _ABSENT and not (type(sid) is str and sid == self._sid):
            try:
                same = canonical_id(sid) == self._sid
            except Exception:
                same = False
            if not same:
                self.n_malformed += 1
                return
        if ts < self.last_ts:
            self.n_malformed += 1
            self.n_out_of_order += 1
            return
        try:
            handler(self, event, ts)
        except Exception:  # pragma: no cover - every field reader above is total; kept as the last guard
            logger.error("SessionState.update: a %s event could not be applied", etype, exc_info=True)
            self.n_malformed += 1
            return
        self.last_ts = ts
        self._n_kept += 1

    def update_many(self, events: Iterable[Mapping[str, Any]]) -> "SessionState":
        """Feed events in order; returns ``self``.

        Once ``limits.max_events`` events are kept, the rest of a list is counted as over the limit
        without being read (so a 100,000-event replay costs what ``max_events`` events cost).
        """
        if isinstance(events, (str, bytes, bytearray, Mapping)) or not hasattr(events, "__iter__"):
            # not a sequence of events (a 1 MB string would otherwise be a million malformed events)
            if self.strict:
                raise ValidationError(f"events must be a list of event dicts, got {excerpt(events)}")
            self.n_malformed += 1
            return self
        if not self.strict and isinstance(events, (list, tuple)):
            for i, e in enumerate(events):
                if self._n_kept >= self._max_events:
                    rest = len(events) - i
                    self.n_malformed += rest
                    self.n_over_limit += rest
                    break
                self.update(e)
            return self
        for e in events:
            self.update(e)
        return self

    def _now(self, now: Any) -> float:
        """The decision time: ``now``, or the last event's time; refused or clamped when earlier."""
        if now is None:
            return self.last_ts if self.last_ts != -math.inf else 0.0
        if type(now) is not float:
            try:
                now = float(now) if type(now) is not bool else math.nan
            except Exception:
                now = math.nan
        if now - now != 0.0:
            raise ValidationError(f"now must be a finite number of seconds, got {excerpt(now)}")
        if now < self.last_ts:
            if self.strict:
                raise ValidationError(f"now must not be earlier than the session's last event: "
                                      f"expected >= {self.last_ts!r}, got {now!r}")
            self.n_now_clamped += 1
            return self.last_ts
        return now

    def features_one(self, now: float | None = None) -> dict[str, float]:
        """The session features at a decision taken at ``now`` (seconds; default: last event)."""
        vals = _FEATURES_FN(self, self._now(now))
        return {name: float(v) for name, v in zip(SESSION_FEATURES, vals)}

    def features_into(self, buf: Any, now: float | None = None, offset: int = 0) -> None:
        """Write the session features into ``buf[offset : offset + len(SESSION_FEATURES)]``.

        The scorer's fast path: no dict, no allocation (``buf`` is a preallocated float64 array).
        """
        _FEATURES_INTO_FN(self, self._now(now), buf, offset)

    # -- serialisation (pickle-free; for session stores shared by several worker processes) -----
    #: Version of the :meth:`to_dict` format; :meth:`from_dict` refuses any other.
    STATE_FORMAT = 1

    def to_dict(self) -> dict[str, Any]:
        """The complete state as a JSON-ready dict: ``{"v": STATE_FORMAT, <attribute>: value, ...}``.

        Every attribute in ``__slots__`` is covered generically (attributes added later are included
        without touching this method); an attribute still at its value in a fresh state is left out,
        which keeps a short session's state small. Non-finite floats become ``{"$f": "nan"}``
        (``"inf"``, ``"-inf"``), sets ``{"$set": [...]}`` (sorted), tuples ``{"$tuple": [...]}``,
        so the dict survives strict JSON unchanged. :meth:`from_dict` inverts it exactly: the
        restored state gives identical features and evolves identically under further events.

        Examples
        --------
        >>> s = SessionState("s1")
        >>> s.update({"session_id": "s1", "ts": 3.0, "type": "form_error", "field": "zip"})
        >>> d = s.to_dict()
        >>> d["v"], d["n_form_error"], d["last_ts"]
        (1, 1.0, 3.0)
        >>> r = SessionState.from_dict(d)
        >>> r.to_dict() == d, r.features_one()["form_errors"]
        (True, 1.0)
        """
        fresh = _fresh_state()
        out: dict[str, Any] = {"v": self.STATE_FORMAT}
        for name in self.__slots__:
            if name in _DERIVED_SLOTS:  # rebuilt by from_dict from session_id and limits
                continue
            value = getattr(self, name)
            if not _same_value(value, getattr(fresh, name)):
                out[name] = _encode_value(value, name)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SessionState":
        """Rebuild a state written by :meth:`to_dict`; raise ValidationError on a foreign dict.

        Examples
        --------
        >>> SessionState.from_dict({"v": 1, "session_id": "s9", "n_click": 2}).features_one()["clicks"]
        2.0
        >>> SessionState.from_dict({"v": 7})
        Traceback (most recent call last):
        ...
        nextchannel.errors.ValidationError: session state format must be 1, got 7
        """
        if not isinstance(d, Mapping):
            raise ValidationError(f"session state must be a dict, got {type(d).__name__}")
        if d.get("v") != cls.STATE_FORMAT:
            raise ValidationError(f"session state format must be {cls.STATE_FORMAT}, got {d.get('v')!r}")
        unknown = sorted(set(d) - set(cls.__slots__) - {"v"}, key=str)
        if unknown:
            raise ValidationError(f"session state has unknown attributes {unknown[:5]} (written by another version?)")
        state = _fresh_state()
        for name, value in d.items():
            if name != "v":
                setattr(state, name, _decode_value(value, name))
        state._sid = canonical_id(state.session_id)  # derived: a hand-written dict may name only session_id
        lim = state.limits
        state._max_events, state._max_pages, state._max_str = lim.max_events, lim.max_pages, lim.max_str_len
        return state

    def to_bytes(self) -> bytes:
        """:meth:`to_dict` as compact UTF-8 JSON (what the Redis store keeps per session).

        Examples
        --------
        >>> SessionState("s1").to_bytes()
        b'{"v":1,"session_id":"s1"}'
        """
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> "SessionState":
        """Inverse of :meth:`to_bytes`; raise ValidationError on bytes that are not a state."""
        try:
            d = json.loads(data)
        except (TypeError, ValueError) as err:
            raise ValidationError(f"session state must be JSON written by SessionState.to_bytes: {err}") from err
        return cls.from_dict(d)


_DERIVED_SLOTS = frozenset({"_sid", "_max_events", "_max_pages", "_max_str"})


def _fresh_state() -> SessionState:
    return SessionState(None)


def _same_value(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    return bool(a == b)


def _encode_value(v: Any, name: str) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if v - v == 0.0:
            return v
        return {"$f": "nan" if v != v else ("inf" if v > 0 else "-inf")}
    if isinstance(v, (set, frozenset)):
        return {"$set": sorted((_encode_value(x, name) for x in v), key=repr)}
    if isinstance(v, tuple):
        return {"$tuple": [_encode_value(x, name) for x in v]}
    if isinstance(v, list):
        return [_encode_value(x, name) for x in v]
    if isinstance(v, Limits):
        return {"$limits": v.to_dict()}
    if isinstance(v, ChannelCatalogue):
        return {"$channels": v.to_dict()}
    raise TypeError(f"SessionState.{name} holds a {type(v).__name__}, which to_dict cannot encode")


def _decode_value(v: Any, name: str) -> Any:
    if isinstance(v, list):
        return [_decode_value(x, name) for x in v]
    if isinstance(v, Mapping):
        if len(v) == 1:
            tag, inner = next(iter(v.items()))
            if tag == "$f" and inner in ("nan", "inf", "-inf"):
                return float(inner)
            if tag == "$set" and isinstance(inner, list):
                return {_decode_value(x, name) for x in inner}
            if tag == "$tuple" and isinstance(inner, list):
                return tuple(_decode_value(x, name) for x in inner)
            if tag == "$limits" and isinstance(inner, Mapping):
                return Limits.from_dict(inner)
            if tag == "$channels" and isinstance(inner, Mapping):
                return ChannelCatalogue.from_dict(inner)
        raise ValidationError(f"session state attribute {name} holds an unknown tagged value {dict(v)!r}")
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ValidationError(f"session state attribute {name} holds a {type(v).__name__}")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Batch executor
#
# Slots are evaluated only where they are needed: at each decision point's last event (and, for a
# slot whose value reads another slot, at that slot's matching rows). Each slot is laid out over
# its event type's rows (which of them it matches, its value there); counts come from prefix counts
# of the matches, lasts and firsts from forward and backward fills; sums and maxima from a
# sequential cumulative pass over the matching rows of each session, so floating-point sums add in
# exactly the order the online path adds them. Text columns (plain strings or categoricals) are
# read once per distinct value.
# ---------------------------------------------------------------------------------------------
class _Log:
    """An event log as arrays: the rows each session keeps, in arrival order, grouped by session.

    The batch twin of ``SessionState.update``'s rules: rows with an unknown type, a non-finite
    ``ts`` or no session id are malformed; within a session (in row order) a row earlier than the
    latest row kept is late; rows beyond ``limits.max_events`` kept rows are over the limit. All
    three are skipped and counted in ``self.skipped``.
    """

    def __init__(self, events: pd.DataFrame, limits: Limits = DEFAULT_LIMITS) -> None:
        ts_all = pd.to_numeric(events["ts"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        sid = _distinct(events["session_id"])
        if sid is not None:  # each distinct id is made canonical once, then its rows take its code
            canon, uniques = pd.factorize(canonical_ids(pd.Series(sid[1], dtype=object)), use_na_sentinel=True)
            sess_codes = _take(canon, sid[0], -1)
            uniques = np.asarray(uniques, dtype=object)
        else:
            sess_codes, uniques = pd.factorize(canonical_ids(events["session_id"]), use_na_sentinel=True)
        etype = _distinct(events["type"])
        if etype is not None:  # the few distinct types are looked up, not every row
            known = pd.Index(list(EVENT_FIELDS)).get_indexer(etype[1])
            type_codes = _take(known, etype[0], -1)
        else:
            type_codes = pd.Index(list(EVENT_FIELDS)).get_indexer(events["type"].to_numpy(dtype=object))
        valid = np.isfinite(ts_all) & (type_codes >= 0) & (sess_codes >= 0)
        rows = np.flatnonzero(valid)
        seg, ts = sess_codes[rows], ts_all[rows]
        # group by session, keeping arrival (row) order within each: a stable sort on the session only
        if len(rows) > 1 and not (seg[1:] >= seg[:-1]).all():
            sub = np.argsort(seg, kind="stable")
            rows, seg, ts = rows[sub], seg[sub], ts[sub]
        if len(rows):
            same = seg[1:] == seg[:-1]
            if (same & (ts[1:] < ts[:-1])).any():
                # late: earlier than the latest ts so far (a late row never raises the running maximum,
                # so the maximum over all rows so far equals the maximum over the kept ones)
                on_time = ts >= pd.Series(ts).groupby(seg, sort=False).cummax().to_numpy()
                # over the limit: max_events rows were kept before it (checked first, as online)
                kept_before = pd.Series(on_time.astype(np.int64)).groupby(seg, sort=False).cumsum().to_numpy() - on_time
            else:  # every session in time order (the usual log): nothing is late
                on_time = np.ones(len(ts), dtype=bool)
                kept_before = np.arange(len(ts)) - _first_of_segment(np.r_[True, ~same])
            over = kept_before >= limits.max_events
            n_late = int((~on_time & ~over).sum())
            n_over = int(over.sum())
            keep = on_time & ~over
            if not keep.all():
                rows, seg, ts = rows[keep], seg[keep], ts[keep]
        else:
            n_late = n_over = 0
        self.skipped = {"malformed": int((~valid).sum()), "out_of_order": n_late, "over_limit": n_over}
        order = rows
        self.limits = limits
        self.events, self.order, self.seg, self.ts = events, order, seg, ts
        self.uniques = uniques
        self.tcode = type_codes[order].astype(np.int8)
        self.n = len(order)
        starts = np.r_[True, seg[1:] != seg[:-1]] if self.n else np.zeros(0, dtype=bool)
        self.seg_first = np.flatnonzero(starts)             # first row of each present segment
        self.row_seg_first = self.seg_first[np.cumsum(starts) - 1] if self.n else np.zeros(0, dtype=np.int64)
        self._type_rows: dict[str, np.ndarray] | None = None

    def rows_of(self, etype: str) -> np.ndarray:
        """Sorted row positions of the events of one type (every type's rows from one stable sort)."""
        if self._type_rows is None:
            by_type = np.argsort(self.tcode, kind="stable")
            bounds = np.searchsorted(self.tcode[by_type], np.arange(len(EVENT_FIELDS) + 1), side="left")
            self._type_rows = {t: by_type[bounds[i]:bounds[i + 1]] for i, t in enumerate(EVENT_FIELDS)}
        return self._type_rows[etype]

    def column(self, name: str, rows: np.ndarray) -> pd.Series:
        """Raw column ``name`` at the given sorted rows (a Series of NaN when absent)."""
        if name not in self.events.columns:
            return pd.Series(np.full(len(rows), np.nan))
        return self.events[name].iloc[self.order[rows]].reset_index(drop=True)

    def numeric(self, name: str, rows: np.ndarray) -> np.ndarray:
        v = pd.to_numeric(self.column(name, rows), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return np.where(np.isfinite(v), v, np.nan)


def _first_of_segment(starts: np.ndarray) -> np.ndarray:
    """For each position, the position where its segment starts (``starts`` marks segment starts)."""
    first = np.flatnonzero(starts)
    return first[np.cumsum(starts) - 1]


def _take(table: np.ndarray, codes: np.ndarray, missing: Any) -> np.ndarray:
    """``table[codes]`` with ``missing`` where a code is -1."""
    return np.append(np.asarray(table), missing)[codes]


def _distinct(col: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, distinct values) of a text or categorical column, None for other columns.

    Codes are -1 where the value is missing; the distinct values are the exact Python objects
    the column holds (``str`` for a pandas string column, the categories of a categorical), so a
    rule applied once per distinct value gives what it gives applied to every row.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(dtype=np.int64), col.cat.categories.to_numpy(dtype=object)
    if _is_str_column(col):
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        return codes, np.asarray(uniques, dtype=object)
    return None


def _per_value(col: pd.Series, fn: Callable[[pd.Series], np.ndarray], missing: Any) -> np.ndarray:
    """``fn`` (a vectorised rule over an object Series) of every value of ``col``, evaluated once per
    distinct value for text and categorical columns; ``missing`` where a value is missing there."""
    d = _distinct(col)
    if d is None:
        return fn(col.astype(object))
    return _take(fn(pd.Series(d[1], dtype=object)), d[0], missing)


def _is_str_column(col: pd.Series) -> bool:
    """A pandas string column: every value is a ``str`` or missing (vectorised fast paths)."""
    return isinstance(col.dtype, pd.StringDtype)


def _vocab_codes(col: pd.Series, vocab: Sequence[str], unknown_str: int) -> np.ndarray:
    idx = pd.Index(list(vocab)).get_indexer(col)
    if unknown_str != -1:
        is_str = col.map(lambda x: isinstance(x, str)).to_numpy(dtype=bool)
        idx = np.where((idx < 0) & is_str, unknown_str, idx)
    return idx.astype(float)


def _codes_of(col: pd.Series, vocab: Sequence[str], unknown_str: int = -1) -> np.ndarray:
    """Code of each value in ``vocab`` (-1 if absent; ``unknown_str`` for other strings), as floats."""
    return _per_value(col, lambda v: _vocab_codes(v, vocab, unknown_str), -1.0)


def _prev_in_group(values: np.ndarray, seg: np.ndarray, lag: int, fill: Any) -> np.ndarray:
    """The value ``lag`` rows earlier within the same segment (rows are one type, sorted)."""
    out = np.full(len(values), fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
    if len(values) > lag:
        same = seg[lag:] == seg[:-lag]
        out[lag:][same] = values[:-lag][same]
    return out


def _page_codes(page: pd.Series, max_len: int) -> np.ndarray:
    """A code per page id (equal codes for equal ``_page_key``), -1 where there is none."""
    d = _distinct(page)
    if d is not None:  # each distinct page id is cut once
        keys = pd.Series([_page_key(x, max_len) for x in d[1]], dtype=object)
        kcode, _ = pd.factorize(keys, use_na_sentinel=True)
        return _take(kcode, d[0], -1)
    if pd.api.types.infer_dtype(page, skipna=True) in ("string", "empty"):
        page = page.str.slice(0, max_len)
    else:
        page = page.astype(object).map(lambda x: _page_key(x, max_len))
    return pd.factorize(page, use_na_sentinel=True)[0]


def _known_many(cid: pd.Series) -> np.ndarray:
    """:func:`_known` of every value of an object Series (vectorised when every value is a string)."""
    if pd.api.types.infer_dtype(cid, skipna=False) == "string":
        return (cid != "").to_numpy(dtype=float)
    return cid.map(_known).to_numpy(dtype=float)


def _enrich(log: _Log) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Event variables per event type, at that type's rows: the batch twin of ``_ENRICH``."""
    out: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for etype, fields in EVENT_FIELDS.items():
        rows = log.rows_of(etype)
        var: dict[str, np.ndarray] = {"ts": log.ts[rows]}
        for f in ("duration_s", "value", "n_results", "depth", "utc_offset_s"):
            if f in fields:
                var[f] = log.numeric(f, rows)
        out[etype] = (rows, var)

    rows, var = out["page_view"]
    seg = log.seg[rows]
    ptype = log.column("page_type", rows)
    var["pt"] = _codes_of(ptype, PAGE_TYPES)
    stage = _per_value(ptype, lambda v: v.map(FUNNEL_STAGE).astype(float).fillna(-1.0).to_numpy(), -1.0)
    var["stage"] = stage
    pcode = _page_codes(log.column("page", rows), log.limits.max_str_len)
    valid = pcode >= 0
    # (session, page) pairs numbered in order of first appearance: a row is a pair's first view when
    # its number exceeds every number before it
    pair_id = pd.factorize(seg.astype(np.int64) * np.int64(int(pcode.max(initial=0)) + 2) + (pcode + 1))[0]
    first_view = pair_id > np.maximum.accumulate(np.r_[-1, pair_id[:-1]]) if len(pair_id) else np.zeros(0, bool)
    dup = ~first_view
    # a page is remembered if it is among the session's first max_pages distinct pages
    first = valid & first_view
    s_first = seg[first]
    rank_first = np.arange(len(s_first)) - _first_of_segment(np.r_[True, s_first[1:] != s_first[:-1]]) \
        if len(s_first) else np.zeros(0, dtype=np.int64)
    remembered = np.zeros(int(pair_id.max()) + 1 if len(pair_id) else 0, dtype=bool)
    remembered[pair_id[first]] = rank_first < log.limits.max_pages
    var["revisit"] = (valid & dup & remembered[pair_id]).astype(float) if len(pair_id) else np.zeros(0)
    p1, p2 = _prev_in_group(pcode, seg, 1, -1), _prev_in_group(pcode, seg, 2, -1)
    var["back"] = (valid & (pcode == p2) & (pcode != p1)).astype(float)
    run_max = pd.Series(stage).groupby(seg, sort=False).cummax().to_numpy()
    var["forward"] = (stage > _prev_in_group(run_max, seg, 1, -1.0)).astype(float)
    var["ended_dwell_s"] = var["ts"] - _prev_in_group(var["ts"], seg, 1, np.nan)
    var["ended_pt"] = _prev_in_group(var["pt"], seg, 1, -1.0)

    rows, var = out["scroll"]
    seg = log.seg[rows]
    dcode = _codes_of(log.column("direction", rows), SCROLL_DIRECTIONS)
    ok = dcode >= 0
    prev = np.full(len(rows), -1.0)
    prev[ok] = _prev_in_group(dcode[ok], seg[ok], 1, -1.0)
    var["reversal"] = (ok & (prev >= 0) & (dcode != prev)).astype(float)

    rows, var = out["session_start"]
    var["device"] = _codes_of(log.column("device", rows), DEVICES)
    var["language"] = _codes_of(log.column("language", rows), LANGUAGES, unknown_str=_OTHER_LANGUAGE)
    var["referrer"] = _codes_of(log.column("referrer", rows), REFERRERS)
    cid = log.column("customer_id", rows)
    if _is_str_column(cid):
        var["known"] = (cid.fillna("") != "").to_numpy(dtype=float)
    else:
        var["known"] = _per_value(cid, _known_many, 0.0)
    ret = log.column("returning", rows)
    if isinstance(ret.dtype, pd.BooleanDtype) or ret.dtype == bool:   # True -> 1, False and missing -> 0
        var["returning"] = ret.fillna(False).to_numpy(dtype=float)
    else:
        var["returning"] = _per_value(ret, lambda v: v.map(_flag).to_numpy(dtype=float), 0.0)
    return out


_COMPILED: dict[str, Any] = {}


def _eval_array(expr: str, names: Mapping[str, Any]) -> np.ndarray:
    code = _COMPILED.get(expr)
    if code is None:
        code = _COMPILED[expr] = compile(expr, "<feature>", "eval")
    with np.errstate(invalid="ignore"):
        return eval(code, dict(_ARRAY_ENV), dict(names))  # noqa: S307 - our spec


class _SlotEvaluator:
    """Evaluates slots at arbitrary row positions of a sorted log (point in time).

    Each slot is laid out densely over the rows of its event type (or over every row for a slot on
    all types): which of them it matches and its value there (cumulated per session for sums and
    maxima). Where a point falls among a type's rows is counted once per type; a slot's value at
    the point is then read through prefix counts and forward fills of its matches.
    """

    def __init__(self, log: _Log) -> None:
        self.log = log
        self.by_type = _enrich(log)
        self.slots = {s.name: s for s in SLOTS}
        self._dense: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
        self._reads: dict[str, dict[str, np.ndarray]] = {}
        self._rank: dict[str, np.ndarray] = {}
        self._found: dict[tuple[str, int], tuple[Any, ...]] = {}

    def _layout(self, slot: Slot) -> tuple[str, np.ndarray, np.ndarray]:
        """(universe, matches, values) of a slot over its universe's rows (one type's, or every row)."""
        if slot.name in self._dense:
            return self._dense[slot.name]
        types = slot.on or tuple(EVENT_FIELDS)
        universe = types[0] if len(types) == 1 else "*"
        size = len(self.by_type[universe][0]) if universe != "*" else self.log.n
        match = np.zeros(size, dtype=bool)
        value = np.full(size, np.nan)
        for etype in types:
            rows, var = self.by_type[etype]
            if not len(rows):
                continue
            env: dict[str, Any] = dict(var)
            for ref in _names_in(slot.value) & set(self.slots):
                # a value that reads another slot: that slot's value after this event
                env[ref] = self.at(self.slots[ref], rows)
            mask = np.ones(len(rows), dtype=bool)
            if slot.where:
                mask &= np.broadcast_to(_eval_array(slot.where, env), (len(rows),)).astype(bool)
            val = np.broadcast_to(_eval_array(slot.value, env), (len(rows),)).astype(float)
            if slot.kind != "count":
                mask &= ~np.isnan(val)
            at_rows = slice(None) if universe != "*" else rows
            match[at_rows], value[at_rows] = mask, val
        if slot.kind in ("sum", "max") and match.any():
            # sequential within each session over the matching rows: the same additions, in the same
            # order, as online
            rows = self.by_type[universe][0][match] if universe != "*" else np.flatnonzero(match)
            g = pd.Series(value[match]).groupby(self.log.seg[rows], sort=False)
            value[match] = (g.cumsum() if slot.kind == "sum" else g.cummax()).to_numpy()
        self._dense[slot.name] = (universe, match, value)
        return self._dense[slot.name]

    def _read(self, slot: Slot, what: str) -> np.ndarray:
        """Per slot, over its universe: prefix counts of matches (``count``), the last match at or
        before each row (``last``), the first match at or after each row (``first``)."""
        cache = self._reads.setdefault(slot.name, {})
        if what not in cache:
            _, match, _ = self._layout(slot)
            idx = np.arange(len(match))
            if what == "count":
                cache[what] = np.r_[0, np.cumsum(match, dtype=np.int32)]
            elif what == "last":
                cache[what] = np.maximum.accumulate(np.where(match, idx, -1)) if len(idx) else idx
            else:
                nxt = np.minimum.accumulate(np.where(match, idx, len(idx))[::-1])[::-1]
                cache[what] = np.r_[nxt, len(idx)]
        return cache[what]

    def _find(self, universe: str, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(have, j, j0): for each point, the index in the universe of its last row at or before the
        point (``j``, -1 if none) and of the first row of the point's session (``j0``)."""
        key = (universe, id(pos))
        hit = self._found.get(key)
        if hit is not None and hit[3] is pos:
            return hit[:3]
        have = pos >= 0
        p = np.where(have, pos, 0)
        first_row = np.where(have, self.log.row_seg_first[p], 0)
        if universe == "*":
            j, j0 = p, first_row
        else:
            if universe not in self._rank:  # rows of the type before each row of the log
                self._rank[universe] = np.r_[0, np.cumsum(self.log.tcode == _TYPE_CODE[universe], dtype=np.int32)]
            rank = self._rank[universe]
            j, j0 = rank[p + 1] - 1, rank[first_row]
        self._found[key] = (have, j, j0, pos)
        return have, j, j0

    def at(self, slot: Slot, pos: np.ndarray) -> np.ndarray:
        """The slot's value after the event at each row ``pos`` (-1: before any event)."""
        universe, match, value = self._layout(slot)
        out = np.full(len(pos), slot.default, dtype=float)
        if not len(match) or not len(pos):
            return out
        have, j, j0 = self._find(universe, pos)
        if slot.kind == "count":
            c = self._read(slot, "count")
            n = (c[j + 1] - c[j0]).astype(float)
            ok = have & (n > 0)
            out[ok] = n[ok]
            return out
        if slot.kind == "first":
            k = self._read(slot, "first")[j0]
            ok = have & (k <= j)
            out[ok] = value[k[ok]]
            return out
        k = np.where(j >= 0, self._read(slot, "last")[np.clip(j, 0, None)], -1)
        ok = have & (k >= 0) & (k >= j0)
        if slot.kind == "max":
            out[ok] = np.maximum(value[k[ok]], slot.default)
        elif slot.kind == "sum":
            out[ok] = value[k[ok]] + slot.default
        else:  # last
            out[ok] = value[k[ok]]
        return out


_TYPE_CODE = {t: i for i, t in enumerate(EVENT_FIELDS)}


def _session_codes(session_id: pd.Series, uniques: np.ndarray) -> np.ndarray:
    """The log's code (index in ``uniques``) of each decision point's canonical session id, -1 if absent."""
    if not len(uniques):
        return np.full(len(session_id), -1, dtype=np.int64)
    index = pd.Index(uniques)
    d = _distinct(session_id)
    if d is None:
        return index.get_indexer(canonical_ids(session_id))
    return _take(index.get_indexer(canonical_ids(pd.Series(d[1], dtype=object))), d[0], -1)


def _last_event_at(log: _Log, at_seg: np.ndarray, at_ts: np.ndarray) -> np.ndarray:
    """Row of each point's last event in ``log`` with ``ts`` at or before the point's, -1 if none.

    A session's kept rows are contiguous and in non-decreasing ``ts``: a binary search within the
    session's rows, run for every point at once (ties: the last of the equal rows).
    """
    pos = np.full(len(at_seg), -1, dtype=np.int64)
    if not log.n or not len(at_seg):
        return pos
    n_seg = max(len(log.uniques), 1)
    start = np.zeros(n_seg, dtype=np.int64)
    end = np.zeros(n_seg, dtype=np.int64)                  # empty for sessions without kept rows
    seg_end = np.r_[log.seg_first[1:], log.n]
    start[log.seg[log.seg_first]], end[log.seg[log.seg_first]] = log.seg_first, seg_end
    has = at_seg >= 0
    s = np.where(has, start[np.where(has, at_seg, 0)], 0)
    e = np.where(has, end[np.where(has, at_seg, 0)], 0)
    found = s - 1                                          # last row known to be <= the point's ts
    step = 1 << int((seg_end - log.seg_first).max()).bit_length()
    while step:
        cand = found + step
        inside = cand < e
        le = inside & (log.ts[np.minimum(cand, log.n - 1)] <= at_ts)
        found = np.where(le, cand, found)
        step >>= 1
    return np.where(found >= s, found, -1)


@accepts_old_form(old=("events", "at", "customers", "contacts"), renamed={"at": "decisions"})
def features_many(decisions: pd.DataFrame, *, events: pd.DataFrame, customers: pd.DataFrame | None = None,
                  contacts: pd.DataFrame | None = None, with_profile: bool | None = None,
                  profile_config: Any = None, validate: bool = False, channels: ChannelCatalogue | None = None,
                  limits: Limits | None = None) -> pd.DataFrame:
    """Point-in-time features for many decision points from an event log (the batch path).

    Parameters
    ----------
    decisions : DataFrame
        Decision points: ``session_id`` and ``ts``; optionally ``customer_id`` (otherwise taken from
        the session's first ``session_start`` event). (Called ``at`` and second before 0.2.)
    events : DataFrame, keyword-only
        Event log: ``session_id``, ``ts``, ``type`` and the event fields (see :mod:`nextchannel.schema`).
        Rows may interleave sessions; each session is ordered stably by ``ts``. A Dask DataFrame
        (or Dask ``decisions``) runs :func:`nextchannel.dask_backend.features_many` on the current client.
    customers, contacts : DataFrame, optional
        Customer table (opt-outs) and contact history for the profile features
        (:mod:`nextchannel.profile`); used when ``with_profile`` is true (default: when either is given).
    validate : bool, default False
        Run :func:`nextchannel.schema.validate_events` first (strict; raises on the first bad row,
        a late row included). Otherwise malformed, late and over-the-limit rows are skipped exactly
        as the online path skips them (see *Time and order* in the module docstring).
    channels : ChannelCatalogue, optional
        Catalogue the channel fields must belong to when ``validate`` (default: the default
        catalogue; pass a bundle's own).
    limits : Limits, optional
        The bounds of the online path (default ``Limits()``), applied identically.

    Returns
    -------
    DataFrame
        One row per row of ``decisions`` (same index), one float column per feature.
        ``result.attrs["skipped"]`` counts the event rows skipped: ``malformed``, ``out_of_order``
        (late) and ``over_limit``.

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [0.0, 5.0, 1.0],
    ...                    "type": ["page_view", "form_error", "click"],
    ...                    "page": ["/checkout", None, None], "page_type": ["checkout", None, None],
    ...                    "field": [None, "zip", None]})
    >>> at = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [4.0, 9.0, 2.0]})
    >>> f = features_many(at, events=ev)
    >>> f[["form_errors", "dwell_checkout_s", "clicks"]].to_numpy().tolist()
    [[0.0, 4.0, 0.0], [1.0, 9.0, 0.0], [0.0, 0.0, 1.0]]
    """
    at = decisions
    if is_dask_collection(events) or is_dask_collection(at):  # the Dask executor (nextchannel[dask])
        from nextchannel import dask_backend

        return dask_backend.features_many(at, events=events, customers=customers, contacts=contacts,
                                          with_profile=with_profile,
                                          profile_config=profile_config, validate=validate, channels=channels,
                                          limits=limits)
    if not isinstance(events, pd.DataFrame):
        raise ValidationError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    if not isinstance(at, pd.DataFrame) or not {"session_id", "ts"} <= set(at.columns):
        raise ValidationError("decisions must be a DataFrame with columns ['session_id', 'ts'], got "
                              f"{type(at).__name__ if not isinstance(at, pd.DataFrame) else list(at.columns)}")
    for c in ("session_id", "ts", "type"):
        if c not in events.columns:
            raise ValidationError(f"events must have columns ['session_id', 'ts', 'type'], missing {c!r}")
    if limits is not None and not isinstance(limits, Limits):
        raise ValidationError(f"limits must be a Limits or None, got {type(limits).__name__}")
    if validate:
        validate_events(events, channels=channels)
    at_ts = pd.to_numeric(at["ts"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if not np.isfinite(at_ts).all():
        bad = int(np.flatnonzero(~np.isfinite(at_ts))[0])
        raise ValidationError(f"decisions.ts must be finite numbers, got {at['ts'].iloc[bad]!r} at row {at.index[bad]}")

    log = _Log(events, limits if limits is not None else DEFAULT_LIMITS)
    if log.skipped["out_of_order"] or log.skipped["over_limit"]:
        logger.info("features_many: skipped %d late and %d over-the-limit event rows (of %d)",
                    log.skipped["out_of_order"], log.skipped["over_limit"], len(events))
    ev_slots = _SlotEvaluator(log)
    # Point in time: each decision's last event of its session with ts <= the decision's ts.
    at_seg = _session_codes(at["session_id"], log.uniques)
    pos = _last_event_at(log, at_seg, at_ts)
    # slots are read at the points in log order (the searches then walk the log forwards) and the
    # features put back in the order of the points
    by_pos = np.argsort(pos, kind="stable")
    pos_sorted = pos[by_pos]
    names: dict[str, Any] = {"now": at_ts[by_pos]}
    for slot in SLOTS:
        names[slot.name] = ev_slots.at(slot, pos_sorted)
    data = np.empty((len(FEATURES), len(at)), dtype=float)   # one block, filled in place (no consolidation copy)
    for j, f in enumerate(FEATURES):
        data[j, by_pos] = np.broadcast_to(_eval_array(f.expr, names), (len(at),))
    out = pd.DataFrame(data.T, index=at.index, columns=[f.name for f in FEATURES], copy=False)
    skipped = dict(log.skipped)

    use_profile = with_profile if with_profile is not None else (customers is not None or contacts is not None)
    if use_profile:
        from nextchannel.profile import profiles_many

        if "customer_id" in at.columns:
            cust = at["customer_id"]
        else:
            starts = events.loc[events["type"] == "session_start", ["session_id", "customer_id"]] \
                if "customer_id" in events.columns else pd.DataFrame(columns=["session_id", "customer_id"])
            first = pd.Series(starts["customer_id"].to_numpy(dtype=object),
                              index=canonical_ids(starts["session_id"]))
            first = first[~first.index.duplicated()]
            cust = pd.Series(canonical_ids(at["session_id"]), index=at.index).map(first)
        prof_at = pd.DataFrame({"customer_id": cust.to_numpy(dtype=object), "ts": at_ts}, index=at.index)
        prof = profiles_many(prof_at, contacts=contacts, customers=customers, config=profile_config,
                             limits=limits)
        skipped["contacts_over_limit"] = prof.attrs["skipped"]["over_limit"]
        out = pd.concat([out, prof.set_axis(at.index)], axis=1)
    out.attrs["skipped"] = skipped
    return out

