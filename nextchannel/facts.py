"""Policy facts a customer-experience lead asks for, computed from a frame of decisions.

Where it sits: at the end of the flow (… → policy → **decisions** → facts → report). The input is
a *decisions frame*, one row per decision point, as the scorer's ``decide_many`` writes it:
``session_id``, ``ts`` (epoch seconds), ``action`` (``"none"`` or a channel), ``offer``,
``channel``, ``propensity``, ``offer_score``, ``ev_<action>``, ``p_<action>``, ``reasons`` and
``why_not`` (phrases joined by ``" | "``). Each function needs only the columns it names; without
``offer`` an offer is ``action != "none"``, without ``channel`` the channel is the ``action``, so
the simulator's logged ``decisions`` frame works too. Latent truth (``needs_help``) and outcomes
(``accepted``, ``p_accept``) come in separate frames aligned with the decisions by index.

Each fact has its own small function; :func:`policy_facts` gathers them all in a
:class:`PolicyFacts`.

Phrase normalisation
--------------------
Reasons and why-nots carry numbers (``"idle 45 s on checkout"``); to count them as phrases,
:func:`normalise_phrase` replaces every number — digits with optional thousands commas and an
optional decimal part, not glued to a preceding letter or ``_`` — by ``N``
(``"idle N s on checkout"``) and collapses whitespace. A phrase is counted once per decision point
even if it appears twice in it.

Examples
--------
>>> import pandas as pd
>>> d = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [0.0, 30.0, 100.0],
...                   "action": ["none", "chat", "none"]})
>>> offer_rate(d), offers_per_session(d)
(0.3333333333333333, 0.5)
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nextchannel.conventions import accepts_old_form
from nextchannel.errors import ValidationError
from nextchannel.schema import NONE_ACTION

__all__ = [
    "PolicyFacts",
    "policy_facts",
    "offer_rate",
    "offers_per_session",
    "sessions_with_offer_rate",
    "acceptance",
    "no_need_offer_share",
    "channel_mix",
    "hourly_load",
    "hours_over_capacity",
    "offer_times_s",
    "timing_quantiles",
    "timing_histogram",
    "normalise_phrase",
    "split_phrases",
    "top_phrases",
    "top_reasons",
    "top_why_not",
    "DEFAULT_TIMING_EDGES_S",
    "PHRASE_SEPARATOR",
]

logger = logging.getLogger(__name__)

#: Separator of the phrases in ``reasons`` and ``why_not``.
PHRASE_SEPARATOR = " | "
#: Default histogram edges (seconds into the session) of :func:`timing_histogram`.
DEFAULT_TIMING_EDGES_S: tuple[float, ...] = (0.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, math.inf)
_DEFAULT_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
# A number: 1,800 / 45 / 0.25; not the digits of an identifier such as "mp3" or "ev_2".
_NUMBER_RE = re.compile(r"(?<![A-Za-z_])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_SPACE_RE = re.compile(r"\s+")


# ---------------------------------------------------------------------------------------------
# Validation and columns
# ---------------------------------------------------------------------------------------------
def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _check_decisions(decisions: Any, columns: Sequence[str], name: str = "decisions") -> pd.DataFrame:
    if not isinstance(decisions, pd.DataFrame):
        raise ValidationError(f"{name} must be a pandas DataFrame, got {type(decisions).__name__}")
    missing = [c for c in columns if c not in decisions.columns]
    if missing:
        raise ValidationError(f"{name} must have columns {list(columns)}, missing {missing}")
    return decisions


def _check_aligned(other: Any, name: str, decisions: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    frame = _check_decisions(other, columns, name)
    if not frame.index.equals(decisions.index):
        raise ValidationError(
            f"{name} must be aligned with decisions by index (same labels in the same order, "
            f"{len(decisions)} rows), got {len(frame)} rows with a different index")
    return frame


def _bool_values(s: pd.Series, name: str) -> np.ndarray:
    if s.dtype == bool:
        return s.to_numpy()
    values = s.to_numpy(dtype=object, na_value=None)
    out = np.empty(len(values), dtype=bool)
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1)):
            out[i] = bool(v)
        elif isinstance(v, str) and v.strip().lower() in ("true", "false"):
            out[i] = v.strip().lower() == "true"
        else:
            raise ValidationError(f"{name} must hold booleans, got {_py(v)!r} at row {_py(s.index[i])!r}")
    return out


def _float_values(s: pd.Series, name: str) -> np.ndarray:
    try:
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"{name} must hold numbers, got dtype {s.dtype}: {err}") from err
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"{name} must hold finite numbers, got {_py(arr[i])!r} at row {_py(s.index[i])!r} "
            f"({int(bad.sum())} bad value(s))")
    return arr


def _offer_mask(decisions: pd.DataFrame) -> np.ndarray:
    """Which decision points made an offer: the ``offer`` column, else ``action != "none"``."""
    if "offer" in decisions.columns:
        return _bool_values(decisions["offer"], "decisions['offer']")
    _check_decisions(decisions, ["action"])
    act = decisions["action"].to_numpy(dtype=object, na_value=None)
    if any(a is None for a in act):
        i = next(i for i, a in enumerate(act) if a is None)
        raise ValidationError(
            f"decisions['action'] must name an action at every decision point, got a missing value at row "
            f"{_py(decisions.index[i])!r}")
    return act != NONE_ACTION


def _offer_channels(decisions: pd.DataFrame, mask: np.ndarray) -> np.ndarray:
    """The channel of every offer (object array over the offered rows)."""
    col = "channel" if "channel" in decisions.columns else "action"
    _check_decisions(decisions, [col])
    ch = decisions[col].to_numpy(dtype=object, na_value=None)[mask]
    bad = [i for i, c in enumerate(ch) if not isinstance(c, str) or not c or c == NONE_ACTION]
    if bad:
        row = decisions.index[np.flatnonzero(mask)[bad[0]]]
        raise ValidationError(
            f"decisions['{col}'] must name the channel of every offer, got {ch[bad[0]]!r} at offered row "
            f"{_py(row)!r}")
    return ch


def _known_channels(decisions: pd.DataFrame, channels: Sequence[str] | None) -> list[str]:
    """Channels to report on: given, else those with ``p_``/``ev_`` columns (catalogue order)."""
    if channels is not None:
        chans = list(channels)
        if len(set(chans)) != len(chans) or not all(isinstance(c, str) and c for c in chans):
            raise ValidationError(f"channels must be distinct non-empty names, got {chans}")
        return chans
    cols = set(decisions.columns)
    out = []
    for c in decisions.columns:
        for prefix, other in (("p_", "ev_"), ("ev_", "p_")):
            if isinstance(c, str) and c.startswith(prefix):
                a = c[len(prefix):]
                if a != NONE_ACTION and (f"{other}{a}" in cols or prefix == "ev_") and a not in out:
                    out.append(a)
    return out


def _n_rows(decisions: pd.DataFrame) -> int:
    if len(decisions) == 0:
        raise ValidationError("decisions must hold at least one decision point, got an empty frame")
    return len(decisions)


# ---------------------------------------------------------------------------------------------
# Rates
# ---------------------------------------------------------------------------------------------
def offer_rate(decisions: pd.DataFrame) -> float:
    """Share of decision points at which help was offered.

    Parameters
    ----------
    decisions : DataFrame
        With ``offer`` (bool) or ``action``.

    Returns
    -------
    float

    Examples
    --------
    >>> offer_rate(pd.DataFrame({"offer": [True, False, False, False]}))
    0.25
    """
    _check_decisions(decisions, [])
    _n_rows(decisions)
    return float(_offer_mask(decisions).mean())


def _offers_by_session(decisions: pd.DataFrame) -> pd.Series:
    _check_decisions(decisions, ["session_id"])
    _n_rows(decisions)
    mask = _offer_mask(decisions)
    return pd.Series(mask.astype(np.int64), index=decisions.index).groupby(
        decisions["session_id"].to_numpy(dtype=object), sort=False).sum()


def offers_per_session(decisions: pd.DataFrame) -> float:
    """Mean number of offers per session (over the sessions that have a decision point).

    Examples
    --------
    >>> d = pd.DataFrame({"session_id": ["a", "a", "b"], "offer": [True, True, False]})
    >>> offers_per_session(d)
    1.0
    """
    return float(_offers_by_session(decisions).mean())


def sessions_with_offer_rate(decisions: pd.DataFrame) -> float:
    """Share of sessions (with a decision point) that got at least one offer.

    Examples
    --------
    >>> d = pd.DataFrame({"session_id": ["a", "a", "b"], "offer": [True, True, False]})
    >>> sessions_with_offer_rate(d)
    0.5
    """
    return float((_offers_by_session(decisions) > 0).mean())


def acceptance(decisions: pd.DataFrame, outcomes: pd.DataFrame) -> dict[str, Any]:
    """Acceptance of the offers made: logged, and expected when acceptance probabilities are given.

    Parameters
    ----------
    decisions : DataFrame
        With ``offer`` or ``action``.
    outcomes : DataFrame
        Aligned with ``decisions`` by index, with ``accepted`` (bool: the logged outcome of the
        offer) and/or ``p_accept`` (probability that the offer at that row is accepted, e.g. from
        the simulator). Only offered rows are read; others may be missing. When ``outcomes`` has
        an ``action`` column (the logged action, e.g. logs of another policy), the logged
        acceptance is taken only over the offers whose logged action is the same channel — the
        only offers whose outcome was observed.

    Returns
    -------
    dict
        ``offers`` (count), ``offers_observed`` (offers with a logged outcome: all offers, or
        those matching the logged action; None without ``accepted``), ``accepted`` (count or
        None), ``acceptance_rate`` (accepted / offers_observed, None without ``accepted``; NaN
        without observed offers) and ``expected_acceptance_rate`` (mean ``p_accept`` over all
        offers, None without ``p_accept``).

    Examples
    --------
    >>> d = pd.DataFrame({"offer": [True, True, False, True]})
    >>> o = pd.DataFrame({"accepted": [True, False, False, False], "p_accept": [0.5, 0.2, 0.0, 0.2]})
    >>> a = acceptance(d, o)
    >>> a["acceptance_rate"], round(a["expected_acceptance_rate"], 10)
    (0.3333333333333333, 0.3)
    >>> # logs of another policy: only the offers it also made were observed
    >>> d2 = pd.DataFrame({"action": ["chat", "phone", "none"]})
    >>> logs = pd.DataFrame({"action": ["chat", "chat", "chat"], "accepted": [True, False, False]})
    >>> acceptance(d2, logs)["offers_observed"], acceptance(d2, logs)["acceptance_rate"]
    (1, 1.0)
    """
    _check_decisions(decisions, [])
    _n_rows(decisions)
    outcomes = _check_aligned(outcomes, "outcomes", decisions, [])
    if "accepted" not in outcomes.columns and "p_accept" not in outcomes.columns:
        raise ValidationError(
            f"outcomes must have a column 'accepted' and/or 'p_accept', got columns {list(outcomes.columns)}")
    mask = _offer_mask(decisions)
    n_off = int(mask.sum())
    out: dict[str, Any] = {"offers": n_off, "offers_observed": None, "accepted": None, "acceptance_rate": None,
                           "expected_acceptance_rate": None}
    if "accepted" in outcomes.columns:
        observed = mask.copy()
        if "action" in outcomes.columns:
            logged = outcomes["action"].to_numpy(dtype=object, na_value=None)[mask]
            observed[mask] = logged == _offer_channels(decisions, mask)
        acc = _bool_values(outcomes["accepted"][observed], "outcomes['accepted'] (on offered rows)")
        out["offers_observed"] = int(observed.sum())
        out["accepted"] = int(acc.sum())
        out["acceptance_rate"] = float(acc.mean()) if acc.size else math.nan
    if "p_accept" in outcomes.columns:
        pa = _float_values(outcomes["p_accept"][mask], "outcomes['p_accept'] (on offered rows)")
        if ((pa < 0) | (pa > 1)).any():
            i = int(np.flatnonzero((pa < 0) | (pa > 1))[0])
            raise ValidationError(f"outcomes['p_accept'] must hold probabilities in [0, 1], got {_py(pa[i])!r} "
                                  f"at row {_py(decisions.index[np.flatnonzero(mask)[i]])!r}")
        out["expected_acceptance_rate"] = float(pa.mean()) if n_off else math.nan
    return out


def no_need_offer_share(decisions: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Share of offers made to visitors who needed no help (``truth['needs_help']`` False).

    The annoyance side of the policy: in simulation the latent need is known. NaN without offers.

    Examples
    --------
    >>> d = pd.DataFrame({"offer": [True, True, False, True]})
    >>> t = pd.DataFrame({"needs_help": [True, False, False, True]})
    >>> no_need_offer_share(d, t)
    0.3333333333333333
    """
    _check_decisions(decisions, [])
    _n_rows(decisions)
    truth = _check_aligned(truth, "truth", decisions, ["needs_help"])
    mask = _offer_mask(decisions)
    if not mask.any():
        return math.nan
    need = _bool_values(truth["needs_help"][mask], "truth['needs_help'] (on offered rows)")
    return float((~need).mean())


# ---------------------------------------------------------------------------------------------
# Channels and load
# ---------------------------------------------------------------------------------------------
def channel_mix(decisions: pd.DataFrame, channels: Sequence[str] | None = None) -> pd.DataFrame:
    """Offers per channel and each channel's share of all offers.

    Parameters
    ----------
    decisions : DataFrame
        With ``offer`` or ``action``, and ``channel`` or ``action``.
    channels : sequence of str, optional
        Channels to list (in this order, with 0 offers if none); default: the channels with
        ``p_<channel>``/``ev_<channel>`` columns, in column order; channels offered but not
        listed are appended in alphabetical order.

    Returns
    -------
    DataFrame
        Indexed by ``channel``: ``offers`` (int) and ``share`` (of all offers; NaN without offers).

    Examples
    --------
    >>> d = pd.DataFrame({"action": ["chat", "none", "chat", "phone"], "p_none": 0.0, "p_chat": 1.0,
    ...                   "p_phone": 0.0, "p_email": 0.0, "ev_none": 0.0, "ev_chat": 0.0, "ev_phone": 0.0,
    ...                   "ev_email": 0.0})
    >>> channel_mix(d)["offers"].tolist(), channel_mix(d)["share"].round(3).tolist()
    ([2, 1, 0], [0.667, 0.333, 0.0])
    """
    _check_decisions(decisions, [])
    _n_rows(decisions)
    mask = _offer_mask(decisions)
    ch = _offer_channels(decisions, mask)
    chans = _known_channels(decisions, channels)
    chans += sorted(set(ch) - set(chans))
    counts = pd.Series(ch, dtype=object).value_counts()
    offers = np.array([int(counts.get(c, 0)) for c in chans], dtype=np.int64)
    total = offers.sum()
    share = offers / total if total else np.full(len(chans), math.nan)
    return pd.DataFrame({"offers": offers, "share": share}, index=pd.Index(chans, name="channel", dtype=object))


def _capacity_table(capacity_per_hour: Mapping[str, Any] | None, chans: list[str]) -> dict[str, np.ndarray]:
    if capacity_per_hour is None:
        return {}
    if not isinstance(capacity_per_hour, Mapping):
        raise ValidationError(
            f"capacity_per_hour must be a dict of channel -> offers per hour (a number or 24 numbers, one "
            f"per hour of day), got {type(capacity_per_hour).__name__}")
    out = {}
    for c, cap in capacity_per_hour.items():
        arr = np.asarray(cap, dtype=np.float64) if not isinstance(cap, str) else np.array([math.nan])
        if arr.ndim == 0:
            arr = np.full(24, float(arr))
        if arr.shape != (24,) or not np.isfinite(arr).all() or (arr < 0).any():
            raise ValidationError(
                f"capacity_per_hour[{c!r}] must be a finite number >= 0 or 24 such numbers (one per hour of "
                f"day), got {cap!r}")
        out[c] = arr
    return out


def _local_seconds(decisions: pd.DataFrame, utc_offset_s: float) -> np.ndarray:
    if isinstance(utc_offset_s, bool) or not isinstance(utc_offset_s, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(utc_offset_s)):
        raise ValidationError(f"utc_offset_s must be a finite number of seconds, got {utc_offset_s!r}")
    _check_decisions(decisions, ["ts"])
    return _float_values(decisions["ts"], "decisions['ts']") + float(utc_offset_s)


def hourly_load(decisions: pd.DataFrame, capacity_per_hour: Mapping[str, Any] | None = None,
                utc_offset_s: float = 0.0, channels: Sequence[str] | None = None) -> pd.DataFrame:
    """Offers per hour of day and channel, and their ratio to each channel's capacity.

    The hour of day is that of ``ts + utc_offset_s`` (UTC by default). ``offers_per_hour`` is the
    total number of offers in that hour of day divided by the number of days the decisions cover
    (distinct local dates with at least one decision point): the load of an average day.

    Parameters
    ----------
    decisions : DataFrame
        With ``ts``, ``offer`` or ``action``, ``channel`` or ``action``.
    capacity_per_hour : dict, optional
        Channel → offers per hour it can take: one number, or 24 numbers (one per hour of day,
        e.g. 0 when closed).
    utc_offset_s : float, default 0
        Offset of the local time of day to report in, e.g. 3600 for UTC+1.
    channels : sequence of str, optional
        As in :func:`channel_mix`; channels with a capacity are included too.

    Returns
    -------
    DataFrame
        One row per (hour, channel), 24 × channels rows, columns ``hour`` (0–23), ``channel``,
        ``offers`` (total), ``offers_per_hour`` (average day), ``capacity_per_hour`` (NaN without
        one), ``load`` (offers_per_hour / capacity; ``inf`` for offers at capacity 0, NaN without
        a capacity) and ``over_capacity`` (load > 1). ``attrs["n_days"]`` holds the day count.

    Examples
    --------
    >>> d = pd.DataFrame({"ts": [3600.0 * 9, 3600.0 * 9.5, 86400 + 3600.0 * 9], "action": ["chat"] * 3})
    >>> t = hourly_load(d, capacity_per_hour={"chat": 1.0})
    >>> t.loc[t["hour"] == 9, ["offers", "offers_per_hour", "load", "over_capacity"]].values.tolist()
    [[3, 1.5, 1.5, True]]
    """
    _check_decisions(decisions, [])
    _n_rows(decisions)
    local = _local_seconds(decisions, utc_offset_s)
    mask = _offer_mask(decisions)
    ch = _offer_channels(decisions, mask)
    chans = _known_channels(decisions, channels)
    caps = _capacity_table(capacity_per_hour, chans)
    chans += [c for c in caps if c not in chans]
    chans += sorted(set(ch) - set(chans))
    n_days = int(np.unique(np.floor(local / 86400.0)).shape[0])
    hour = (np.floor(local[mask] / 3600.0) % 24).astype(np.int64)
    code = pd.Index(chans).get_indexer(ch)
    counts = np.zeros((24, len(chans)), dtype=np.int64)
    np.add.at(counts, (hour, code), 1)
    per_hour = counts / n_days
    cap = np.full((24, len(chans)), math.nan)
    for j, c in enumerate(chans):
        if c in caps:
            cap[:, j] = caps[c]
    with np.errstate(divide="ignore", invalid="ignore"):
        load = np.where(cap > 0, per_hour / cap, np.where(per_hour > 0, math.inf, 0.0))
    load[np.isnan(cap)] = math.nan
    frame = pd.DataFrame({
        "hour": np.repeat(np.arange(24), len(chans)),
        "channel": pd.array(np.tile(np.array(chans, dtype=object), 24), dtype=object),
        "offers": counts.ravel(),
        "offers_per_hour": per_hour.ravel(),
        "capacity_per_hour": cap.ravel(),
        "load": load.ravel(),
        "over_capacity": (np.nan_to_num(load, nan=0.0) > 1.0).ravel(),
    })
    frame.attrs["n_days"] = n_days
    return frame


def hours_over_capacity(load: pd.DataFrame) -> dict[str, list[int]]:
    """Hours of day in which each channel's offers exceed its capacity, from :func:`hourly_load`.

    Returns
    -------
    dict
        Channel → sorted hours (only channels with a capacity; an empty list when never over).

    Examples
    --------
    >>> d = pd.DataFrame({"ts": [3600.0 * 9, 3600.0 * 9.5], "action": ["chat", "chat"]})
    >>> hours_over_capacity(hourly_load(d, capacity_per_hour={"chat": 1.0}))
    {'chat': [9]}
    """
    _check_decisions(load, ["hour", "channel", "capacity_per_hour", "over_capacity"], "load")
    out: dict[str, list[int]] = {}
    with_cap = load[load["capacity_per_hour"].notna()]
    for c, g in with_cap.groupby(with_cap["channel"].to_numpy(dtype=object), sort=False):
        out[str(c)] = sorted(int(h) for h in g.loc[g["over_capacity"].to_numpy(dtype=bool), "hour"])
    return out


# ---------------------------------------------------------------------------------------------
# Timing within the session
# ---------------------------------------------------------------------------------------------
def offer_times_s(decisions: pd.DataFrame, session_start: Mapping[Any, float] | pd.Series | None = None) -> pd.Series:
    """Seconds into the session at which each offer was made.

    Parameters
    ----------
    decisions : DataFrame
        With ``session_id``, ``ts``, ``offer`` or ``action``.
    session_start : Series or dict, optional
        Session id → epoch seconds of the session's start (e.g. its ``session_start`` event).
        Default: the ``ts`` of the session's first decision point. Every offered session must be
        in it, and no offer may come before its session's start.

    Returns
    -------
    Series
        Seconds since the start, indexed like the offered rows of ``decisions``.

    Examples
    --------
    >>> d = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [100.0, 130.0, 500.0],
    ...                   "action": ["none", "chat", "phone"]})
    >>> offer_times_s(d).tolist()
    [30.0, 0.0]
    >>> offer_times_s(d, session_start={"a": 90.0, "b": 450.0}).tolist()
    [40.0, 50.0]
    """
    _check_decisions(decisions, ["session_id", "ts"])
    _n_rows(decisions)
    ts = _float_values(decisions["ts"], "decisions['ts']")
    sess = decisions["session_id"].to_numpy(dtype=object)
    mask = _offer_mask(decisions)
    if session_start is None:
        start = pd.Series(ts).groupby(sess, sort=False).transform("min").to_numpy()
    else:
        if isinstance(session_start, pd.Series):
            lookup = session_start
        elif isinstance(session_start, Mapping):
            lookup = pd.Series(dict(session_start), dtype=np.float64)
        else:
            raise ValidationError(
                f"session_start must be a Series or dict of session id -> epoch seconds, got "
                f"{type(session_start).__name__}")
        lookup = pd.Series(lookup.to_numpy(dtype=np.float64, na_value=np.nan),
                           index=lookup.index.astype(object))
        start = pd.Series(sess[mask], dtype=object).map(lookup).to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(start)
        if missing.any():
            raise ValidationError(
                f"session_start must give the start of every session with an offer, got none for session "
                f"{sess[mask][missing][0]!r} ({int(missing.sum())} offer(s) without a start)")
        full = np.full(len(ts), math.nan)
        full[mask] = start
        start = full
    secs = ts[mask] - start[mask]
    if (secs < 0).any():
        i = int(np.flatnonzero(secs < 0)[0])
        raise ValidationError(
            f"session_start must not come after the session's offers, got an offer {-secs[i]:g} s before the "
            f"start of session {sess[mask][i]!r}")
    return pd.Series(secs, index=decisions.index[mask], name="seconds_into_session")


def _seconds(seconds: Any) -> np.ndarray:
    arr = np.asarray(seconds, dtype=np.float64)
    if arr.ndim != 1:
        raise ValidationError(f"seconds must be a 1-D array, got shape {arr.shape}")
    if (~np.isfinite(arr) | (arr < 0)).any():
        i = int(np.flatnonzero(~np.isfinite(arr) | (arr < 0))[0])
        raise ValidationError(f"seconds must be finite and >= 0, got {_py(arr[i])!r} at position {i}")
    return arr


def timing_quantiles(seconds: Any, q: Sequence[float] = _DEFAULT_QUANTILES) -> dict[str, float]:
    """Quantiles and mean of offer times (seconds into the session).

    Returns
    -------
    dict
        ``"p10"``, ``"p25"``, … (one per ``q``, named by percent) and ``"mean"``; NaN when empty.

    Examples
    --------
    >>> timing_quantiles([0.0, 10.0, 20.0, 30.0, 40.0], q=(0.5,))
    {'p50': 20.0, 'mean': 20.0}
    """
    arr = _seconds(seconds)
    qs = list(q)
    if not qs or any(not 0.0 <= float(x) <= 1.0 for x in qs):
        raise ValidationError(f"q must be quantile levels in [0, 1], got {qs}")
    vals = np.quantile(arr, qs) if arr.size else np.full(len(qs), math.nan)
    out = {f"p{100 * float(x):g}": float(v) for x, v in zip(qs, vals)}
    out["mean"] = float(arr.mean()) if arr.size else math.nan
    return out


def _dur(x: float) -> str:
    if x < 60:
        return f"{x:g} s"
    if x < 3600:
        return f"{x / 60:g} min"
    return f"{x / 3600:g} h"


def timing_histogram(seconds: Any, edges_s: Sequence[float] = DEFAULT_TIMING_EDGES_S) -> pd.DataFrame:
    """Offers per interval of seconds into the session (intervals closed on the left).

    Parameters
    ----------
    seconds : array-like
        Offer times, e.g. from :func:`offer_times_s`.
    edges_s : sequence of float
        Increasing edges; the last may be ``inf``. Times at or past a finite last edge are counted
        in the last bin.

    Returns
    -------
    DataFrame
        ``bin`` (label such as ``"30 s – 1 min"``), ``low_s``, ``high_s``, ``offers``, ``share``.

    Examples
    --------
    >>> timing_histogram([5.0, 12.0, 45.0, 4000.0], edges_s=(0, 10, 60, float("inf")))[["bin", "offers"]].values.tolist()
    [['0 s – 10 s', 1], ['10 s – 1 min', 2], ['≥ 1 min', 1]]
    """
    arr = _seconds(seconds)
    edges = np.asarray(edges_s, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.isnan(edges).any() or (np.diff(edges) <= 0).any() or edges[0] < 0:
        raise ValidationError(f"edges_s must be >= 2 increasing edges starting at >= 0, got {list(edges_s)}")
    idx = np.clip(np.searchsorted(edges, arr, side="right") - 1, 0, edges.size - 2)
    counts = np.bincount(idx, minlength=edges.size - 1)
    labels = [f"≥ {_dur(lo)}" if math.isinf(hi) else f"{_dur(lo)} – {_dur(hi)}"
              for lo, hi in zip(edges[:-1], edges[1:])]
    total = counts.sum()
    return pd.DataFrame({"bin": pd.array(labels, dtype=object), "low_s": edges[:-1], "high_s": edges[1:],
                         "offers": counts.astype(np.int64),
                         "share": counts / total if total else np.full(counts.size, math.nan)})


# ---------------------------------------------------------------------------------------------
# Reasons and why-nots
# ---------------------------------------------------------------------------------------------
def normalise_phrase(text: str) -> str:
    """A phrase with every number replaced by ``N`` and whitespace collapsed.

    Examples
    --------
    >>> normalise_phrase("idle 45 s on checkout")
    'idle N s on checkout'
    >>> normalise_phrase("chat: wait 1,800 s over the 300 s limit")
    'chat: wait N s over the N s limit'
    >>> normalise_phrase("  offer_score 0.35 on page mp3  ")
    'offer_score N on page mp3'
    """
    return _SPACE_RE.sub(" ", _NUMBER_RE.sub("N", text)).strip()


def split_phrases(text: Any) -> list[str]:
    """The normalised distinct phrases of one ``reasons``/``why_not`` cell (missing or "" → []).

    Examples
    --------
    >>> split_phrases("phone: closed | chat: wait 1,800 s over the 300 s limit | phone: closed")
    ['phone: closed', 'chat: wait N s over the N s limit']
    """
    if text is None or (isinstance(text, float) and math.isnan(text)) or text is pd.NA:
        return []
    if not isinstance(text, str):
        raise ValidationError(f"reasons and why-nots must be str, got {type(text).__name__}: {text!r}")
    out: list[str] = []
    for part in text.split(PHRASE_SEPARATOR.strip()):
        p = normalise_phrase(part)
        if p and p not in out:
            out.append(p)
    return out


def top_phrases(texts: pd.Series | Sequence[Any], k: int = 10) -> pd.DataFrame:
    """The ``k`` most frequent normalised phrases among ``" | "``-joined texts.

    Parameters
    ----------
    texts : Series or sequence of str
        One text per decision point (missing or ``""``: no phrase).
    k : int, default 10

    Returns
    -------
    DataFrame
        ``phrase``, ``count`` (decision points mentioning it) and ``share`` (of all decision
        points), most frequent first, ties in alphabetical order.

    Examples
    --------
    >>> top_phrases(["idle 45 s on checkout | form error", "idle 12 s on checkout", ""], k=2).values.tolist()
    [['idle N s on checkout', 2, 0.6666666666666666], ['form error', 1, 0.3333333333333333]]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValidationError(f"k must be an integer >= 1, got {k!r}")
    values = texts.to_numpy(dtype=object, na_value=None) if isinstance(texts, pd.Series) else list(texts)
    counts: dict[str, int] = {}
    for t in values:
        for p in split_phrases(t):
            counts[p] = counts.get(p, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    n = len(values)
    return pd.DataFrame({"phrase": pd.array([p for p, _ in top], dtype=object),
                         "count": np.array([c for _, c in top], dtype=np.int64),
                         "share": np.array([c / n for _, c in top], dtype=np.float64)})


def top_reasons(decisions: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The ``k`` most frequent normalised phrases of ``decisions['reasons']`` (see :func:`top_phrases`).

    Examples
    --------
    >>> d = pd.DataFrame({"reasons": ["idle 45 s on checkout", "idle 3 s on checkout | 2 form errors"]})
    >>> top_reasons(d)["phrase"].tolist()
    ['idle N s on checkout', 'N form errors']
    """
    _check_decisions(decisions, ["reasons"])
    return top_phrases(decisions["reasons"], k)


def top_why_not(decisions: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The ``k`` most frequent normalised phrases of ``decisions['why_not']`` (see :func:`top_phrases`).

    Examples
    --------
    >>> d = pd.DataFrame({"why_not": ["phone: closed", "all: cooldown after a dismissal 20 s ago | phone: closed"]})
    >>> top_why_not(d)["phrase"].tolist()
    ['phone: closed', 'all: cooldown after a dismissal N s ago']
    """
    _check_decisions(decisions, ["why_not"])
    return top_phrases(decisions["why_not"], k)


# ---------------------------------------------------------------------------------------------
# All facts at once
# ---------------------------------------------------------------------------------------------
#: One line per headline fact, for tables a person reads.
FACT_DESCRIPTIONS: dict[str, str] = {
    "n_decision_points": "decision points (moments the policy was asked)",
    "n_sessions": "sessions with at least one decision point",
    "n_offers": "offers made",
    "offer_rate": "share of decision points with an offer",
    "offers_per_session": "mean offers per session",
    "sessions_with_offer_rate": "share of sessions that got at least one offer",
    "acceptance_rate": "share of offers accepted (logged outcomes of the offers the logs also made)",
    "expected_acceptance_rate": "mean probability that an offer is accepted",
    "no_need_offer_share": "share of offers made to visitors who needed no help",
    "median_offer_time_s": "median seconds into the session at which offers are made",
}


def _jsonable(v: Any) -> Any:
    if isinstance(v, pd.DataFrame):
        return [{k: _jsonable(x) for k, x in row.items()} for row in v.reset_index().to_dict(orient="records")]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass(frozen=True, eq=False)
class PolicyFacts:
    """The facts of :func:`policy_facts`. Optional facts are None when their input was absent.

    Attributes
    ----------
    n_decision_points, n_sessions, n_offers : int
    offer_rate, offers_per_session, sessions_with_offer_rate : float
    acceptance_rate, expected_acceptance_rate : float or None
        Need ``outcomes`` with ``accepted`` / ``p_accept``.
    no_need_offer_share : float or None
        Needs ``truth`` with ``needs_help``.
    channel_mix : DataFrame
        :func:`channel_mix`.
    hourly_load : DataFrame
        :func:`hourly_load`.
    hours_over_capacity : dict or None
        :func:`hours_over_capacity`; None without ``capacity_per_hour``.
    timing : dict
        :func:`timing_quantiles` of the offers' seconds into the session.
    timing_histogram : DataFrame
        :func:`timing_histogram`.
    top_reasons, top_why_not : DataFrame
        :func:`top_reasons`, :func:`top_why_not`; None without the column.
    utc_offset_s : float
        The offset the hours of day are in.
    """

    n_decision_points: int
    n_sessions: int
    n_offers: int
    offer_rate: float
    offers_per_session: float
    sessions_with_offer_rate: float
    acceptance_rate: float | None
    expected_acceptance_rate: float | None
    no_need_offer_share: float | None
    channel_mix: pd.DataFrame
    hourly_load: pd.DataFrame
    hours_over_capacity: dict[str, list[int]] | None
    timing: dict[str, float]
    timing_histogram: pd.DataFrame
    top_reasons: pd.DataFrame | None
    top_why_not: pd.DataFrame | None
    utc_offset_s: float = 0.0

    def headline(self) -> dict[str, Any]:
        """The scalar facts (those that exist), in the order of :data:`FACT_DESCRIPTIONS`."""
        out: dict[str, Any] = {}
        for name in FACT_DESCRIPTIONS:
            v = self.timing.get("p50") if name == "median_offer_time_s" else getattr(self, name)
            if v is not None:
                out[name] = v
        return out

    def to_frame(self) -> pd.DataFrame:
        """The headline facts as a table: index ``fact``, columns ``value`` and ``description``.

        Examples
        --------
        >>> d = pd.DataFrame({"session_id": ["a", "b"], "ts": [0.0, 5.0], "action": ["chat", "none"]})
        >>> policy_facts(d).to_frame().loc["offer_rate", "value"]
        0.5
        """
        h = self.headline()
        return pd.DataFrame({"value": pd.array(list(h.values()), dtype=object),
                             "description": pd.array([FACT_DESCRIPTIONS[k] for k in h], dtype=object)},
                            index=pd.Index(list(h), name="fact", dtype=object))

    def to_dict(self) -> dict[str, Any]:
        """All facts as JSON-ready values (tables as lists of records, NaN and inf as None)."""
        names = ("n_decision_points", "n_sessions", "n_offers", "offer_rate", "offers_per_session",
                 "sessions_with_offer_rate", "acceptance_rate", "expected_acceptance_rate",
                 "no_need_offer_share", "channel_mix", "hourly_load", "hours_over_capacity", "timing",
                 "timing_histogram", "top_reasons", "top_why_not", "utc_offset_s")
        return {n: _jsonable(getattr(self, n)) for n in names}


@accepts_old_form(old=("decisions", "truth", "outcomes", "capacity_per_hour", "session_start"))
def policy_facts(decisions: pd.DataFrame, *, truth: pd.DataFrame | None = None,
                 outcomes: pd.DataFrame | None = None, capacity_per_hour: Mapping[str, Any] | None = None,
                 session_start: Mapping[Any, float] | pd.Series | None = None, utc_offset_s: float = 0.0,
                 k: int = 10, timing_edges_s: Sequence[float] = DEFAULT_TIMING_EDGES_S) -> PolicyFacts:
    """All policy facts of a decisions frame.

    Parameters
    ----------
    decisions : DataFrame
        A decisions frame (see the module); needs ``offer`` or ``action``. Without ``session_id``
        every row counts as its own session; without ``ts`` the hourly load and the timing facts
        are empty (a team's own logs of single decisions, e.g. a campaign).
    truth : DataFrame, optional
        Aligned by index, with ``needs_help`` (e.g. the simulator's decisions frame).
    outcomes : DataFrame, optional
        Aligned by index, with ``accepted`` and/or ``p_accept`` (see :func:`acceptance`).
    capacity_per_hour : dict, optional
        See :func:`hourly_load`.
    session_start : Series or dict, optional
        See :func:`offer_times_s`.
    utc_offset_s : float, default 0
        Hours of day are reported at this offset from UTC.
    k : int, default 10
        Number of top reasons and why-nots.
    timing_edges_s : sequence of float
        Histogram edges of the offer times.

    Returns
    -------
    PolicyFacts

    Examples
    --------
    >>> d = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [0.0, 30.0, 100.0],
    ...                   "action": ["none", "chat", "none"], "reasons": ["", "idle 30 s on cart", ""]})
    >>> f = policy_facts(d, truth=pd.DataFrame({"needs_help": [False, True, False]}))
    >>> f.offer_rate, f.no_need_offer_share, f.timing["p50"], f.top_reasons["phrase"].tolist()
    (0.3333333333333333, 0.0, 30.0, ['idle N s on cart'])
    """
    decisions = _check_decisions(decisions, [])
    # Logs of a team's own data may have neither sessions nor times: then every decision point is its
    # own session, and the facts about time of day and time into the session are empty.
    if "session_id" not in decisions.columns:
        decisions = decisions.assign(session_id=np.arange(len(decisions)))
    if "ts" not in decisions.columns:
        timeless = decisions.assign(ts=0.0, offer=False)  # no offer has a time: zero load, no timings
        load = hourly_load(timeless, capacity_per_hour, utc_offset_s)
        secs = offer_times_s(timeless)
    n = _n_rows(decisions)
    mask = _offer_mask(decisions)
    acc = acceptance(decisions, outcomes) if outcomes is not None else None
    if "ts" in decisions.columns:
        load = hourly_load(decisions, capacity_per_hour, utc_offset_s)
        secs = offer_times_s(decisions, session_start)
    return PolicyFacts(
        n_decision_points=n,
        n_sessions=int(decisions["session_id"].nunique(dropna=False)),
        n_offers=int(mask.sum()),
        offer_rate=offer_rate(decisions),
        offers_per_session=offers_per_session(decisions),
        sessions_with_offer_rate=sessions_with_offer_rate(decisions),
        acceptance_rate=None if acc is None else acc["acceptance_rate"],
        expected_acceptance_rate=None if acc is None else acc["expected_acceptance_rate"],
        no_need_offer_share=None if truth is None else no_need_offer_share(decisions, truth),
        channel_mix=channel_mix(decisions),
        hourly_load=load,
        hours_over_capacity=None if capacity_per_hour is None else hours_over_capacity(load),
        timing=timing_quantiles(secs.to_numpy()),
        timing_histogram=timing_histogram(secs.to_numpy(), timing_edges_s),
        top_reasons=top_reasons(decisions, k) if "reasons" in decisions.columns else None,
        top_why_not=top_why_not(decisions, k) if "why_not" in decisions.columns else None,
        utc_offset_s=float(utc_offset_s),
    )
