"""Channel demand: when visitors need help, whether a channel was there for them, and what changing it is worth.

Where it sits: after training, beside the reports (decision logs + a trained model set →
**demand** → report section). It answers the question behind "do we need another channel, longer
hours, another language, more agents?" from the logs a site already has:

* **demand by hour and weekday** (service clock) against each channel's opening hours: decision
  points, the *offer-worthy* ones (where the model set's best channel — every channel open, in
  every language, queues at most at their limit — beats leaving the visitor alone), and the share
  of them at which each channel was open;
* **unserved demand**: decision points where that best channel was *not* available — closed,
  queue over the policy's wait limit, or not in the visitor's language — and the expected value
  lost against the best available action;
* **languages** asked for and the share of them each channel served;
* **pages** visitors contacted from (``contact_started`` / ``offer_accepted`` events);
* a **what-if**: the change in the greedy policy's expected value per decision point if a
  channel's hours, languages or queue were changed, evaluated with the model set's value model on
  the logged decision points (:func:`what_if`).

All values are the model set's estimates (its value model, in the business's units), not
measurements: a what-if for hours the channel never had in the logs extrapolates.

Examples
--------
>>> from nextchannel import ModelSet, features_many, simulate
>>> from nextchannel.modelset import DEFAULT_BUNDLE
>>> ms = ModelSet.load(DEFAULT_BUNDLE)                     # the bundle shipped with the package
>>> sim = simulate(800, seed=2)
>>> X = features_many(sim.decisions[["session_id", "ts"]], events=sim.events, with_profile=True)
>>> d = channel_demand(sim.decisions, model_set=ms, X=X, events=sim.events, utc_offset_s=3600)
>>> sorted(d.unserved["reason"].unique()) <= ["closed", "language", "queue"]
True
>>> w = what_if(sim.decisions, model_set=ms, X=X, channel="chat", open_hours=(0, 24), utc_offset_s=3600)
>>> w["channel"], w["n"] == len(sim.decisions)
('chat', True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from nextchannel.compat import training_module
from nextchannel.conventions import accepts_old_form
from nextchannel.errors import ValidationError
from nextchannel.policy import eligibility_frame, greedy_many
from nextchannel.schema import LANGUAGES, PAGE_TYPES

__all__ = ["channel_demand", "what_if", "default_what_ifs", "ChannelDemand", "service_clock", "REASONS"]

logger = logging.getLogger(__name__)

#: Why a channel was not available at a decision point, in the order they are attributed.
REASONS: tuple[str, ...] = ("closed", "queue", "language")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def service_clock(ts: Any, utc_offset_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Hour of day (0..23) and weekday (0 = Monday) of epoch seconds on the service's clock.

    Examples
    --------
    >>> h, wd = service_clock([0.0, 86400 * 4 + 3600 * 9.5], utc_offset_s=3600)
    >>> h.tolist(), wd.tolist()
    ([1, 10], [3, 0])
    """
    t = np.asarray(ts, dtype=float) + float(utc_offset_s)
    return ((t % 86400.0) // 3600.0).astype(int), (((t // 86400.0) + 3.0) % 7.0).astype(int)


def _context(decisions: pd.DataFrame, channels: Any) -> pd.DataFrame:
    return training_module().context_frame(decisions, channels)


def _check(decisions: Any, model_set: Any, X: Any) -> None:
    if not isinstance(decisions, pd.DataFrame) or "ts" not in decisions.columns:
        raise ValidationError("decisions must be a DataFrame with a 'ts' column, got "
                              f"{type(decisions).__name__ if not isinstance(decisions, pd.DataFrame) else list(decisions.columns)[:8]}")
    if not isinstance(X, pd.DataFrame) or len(X) != len(decisions):
        raise ValidationError(f"X must be a feature DataFrame with one row per decision ({len(decisions)} rows), got "
                              f"{type(X).__name__ if not isinstance(X, pd.DataFrame) else f'{len(X)} rows'}")
    missing = [c for c in model_set.feature_names if c not in X.columns]
    if missing:
        raise ValidationError(f"X must hold the model set's features, missing {missing[:5]}")


def _greedy_value(model_set: Any, X: pd.DataFrame, C: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The greedy policy's action, its EV and the EV matrix under channel context ``C``."""
    Xm = X[list(model_set.feature_names)]
    ev = model_set.expected_values(Xm, C)
    elig = eligibility_frame(model_set.policy, X, C)
    a = greedy_many(model_set.policy, ev, elig)
    return a, ev[np.arange(len(a)), a], ev


def _unconstrained(C: pd.DataFrame, policy: Any) -> pd.DataFrame:
    """Every channel open, in every language, its queue at most at the policy's wait limit."""
    U = C.copy()
    for ch in policy.channels.names:
        U[f"open_{ch}"] = 1.0
        U[f"lang_ok_{ch}"] = 1.0
        limit = policy.wait_limit_s.get(ch)
        if limit is not None:
            U[f"wait_{ch}_s"] = np.minimum(U[f"wait_{ch}_s"].to_numpy(), float(limit))
    return U


@dataclass(frozen=True)
class ChannelDemand:
    """Channel demand tables (:func:`channel_demand`).

    Attributes
    ----------
    by_hour : DataFrame
        Index (weekday, hour) on the service clock; ``decision_points``, ``offer_worthy`` and
        ``open_<ch>`` (share of the decision points at which the channel was open: its opening
        hours as the logs saw them; NaN in an hour without decision points).
    unserved : DataFrame
        One row per (channel, reason): ``decision_points``, ``share`` (of all decision points),
        ``value_lost`` (sum of the best channel's EV minus the best available action's) and
        ``value_lost_per_point``.
    languages : DataFrame
        Index visitor language: ``decision_points``, ``offer_worthy``, ``served_<ch>`` (share of
        that language's decision points at which the channel served it).
    pages : DataFrame
        Index page type: ``contacts`` (contact started or offer accepted there) and ``share``.
    n : int
    value_lost_per_point : float
        Total value lost to unserved demand, per decision point.
    what_ifs : DataFrame
        :func:`default_what_ifs` (empty unless asked for).
    """

    by_hour: pd.DataFrame
    unserved: pd.DataFrame
    languages: pd.DataFrame
    pages: pd.DataFrame
    n: int
    value_lost_per_point: float
    what_ifs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (unserved demand and the what-ifs)."""
        return {"n": self.n, "value_lost_per_point": round(self.value_lost_per_point, 6),
                "unserved": self.unserved.round(6).to_dict(orient="records"),
                "what_ifs": self.what_ifs.round(6).to_dict(orient="records")}


def _pages(events: pd.DataFrame | None, X: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    if events is not None and {"session_id", "ts", "type"} <= set(events.columns) and "page_type" in events.columns:
        e = events[["session_id", "ts", "type", "page_type"]]
        e = e.iloc[np.lexsort((np.arange(len(e)), pd.to_numeric(e["ts"]).to_numpy(dtype=float),
                               pd.factorize(e["session_id"])[0]))]
        page = e["page_type"].where(e["type"] == "page_view").groupby(e["session_id"].to_numpy(), sort=False).ffill()
        at = e["type"].isin(["contact_started", "offer_accepted"]).to_numpy()
        pages = page[at].fillna("unknown").astype(str)
    elif "accepted" in decisions.columns and "page_type" in X.columns:
        codes = X.loc[decisions["accepted"].to_numpy(dtype=bool), "page_type"].to_numpy(dtype=float)
        names = np.array(list(PAGE_TYPES) + ["unknown"], dtype=object)
        pages = pd.Series(names[np.where((codes >= 0) & (codes < len(PAGE_TYPES)), codes, len(PAGE_TYPES)).astype(int)])
    else:
        pages = pd.Series([], dtype=object)
    counts = pages.value_counts()
    out = pd.DataFrame({"contacts": counts.astype(int)})
    out["share"] = out["contacts"] / max(int(counts.sum()), 1)
    out.index.name = "page_type"
    return out


@accepts_old_form(old=("decisions", "model_set", "X"))
def channel_demand(decisions: pd.DataFrame, *, model_set: Any, X: pd.DataFrame, events: pd.DataFrame | None = None,
                   utc_offset_s: float = 0.0, what_ifs: bool = False) -> ChannelDemand:
    """Demand for help against the channels' hours, queues and languages, from logged decision points.

    Parameters
    ----------
    decisions : DataFrame
        Decision log: ``ts`` (epoch seconds) and the channel context ``open_<ch>``, ``wait_<ch>_s``,
        ``lang_ok_<ch>`` (defaults — open, no wait, language served — where absent).
    model_set : ModelSet
        Trained model set; its value model gives the expected values, its policy the eligibility.
    X : DataFrame
        Features at the decision points (:func:`nextchannel.features.features_many` with profiles),
        one row per row of ``decisions``.
    events : DataFrame, optional
        Event log, for the pages visitors contacted from (else: the page of accepted offers).
    utc_offset_s : float, default 0
        Offset of the service's clock from UTC (opening hours are on it).
    what_ifs : bool, default False
        Also evaluate :func:`default_what_ifs`.

    Returns
    -------
    ChannelDemand
    """
    _check(decisions, model_set, X)
    pol = model_set.policy
    names = pol.channels.names
    X = X.set_axis(decisions.index)
    C = _context(decisions, pol.channels)
    a, v, ev = _greedy_value(model_set, X, C)
    U = _unconstrained(C, pol)
    a_u, v_u, _ = _greedy_value(model_set, X, U)
    worthy = a_u > 0
    n = len(decisions)

    hour, wday = service_clock(pd.to_numeric(decisions["ts"]).to_numpy(dtype=float), utc_offset_s)
    frame = pd.DataFrame({"weekday": wday, "hour": hour, "decision_points": 1, "offer_worthy": worthy.astype(int)})
    for ch in names:
        frame[f"open_{ch}"] = (C[f"open_{ch}"].to_numpy() > 0).astype(float)
    agg = {"decision_points": "sum", "offer_worthy": "sum", **{f"open_{ch}": "mean" for ch in names}}
    full = pd.MultiIndex.from_product([range(7), range(24)], names=["weekday", "hour"])
    by_hour = frame.groupby(["weekday", "hour"]).agg(agg).reindex(full)
    by_hour[["decision_points", "offer_worthy"]] = by_hour[["decision_points", "offer_worthy"]].fillna(0).astype(int)

    # Unserved: the best channel (unconstrained) was not available; first reason that applies.
    rows = []
    lost = np.where(worthy, v_u - v, 0.0)
    for j, ch in enumerate(names):
        best_is = a_u == j + 1
        unavailable = np.zeros(n, dtype=bool)
        limit = pol.wait_limit_s.get(ch)
        tests = {"closed": C[f"open_{ch}"].to_numpy() <= 0,
                 "queue": (C[f"wait_{ch}_s"].to_numpy() > limit) if limit is not None else np.zeros(n, bool),
                 "language": C[f"lang_ok_{ch}"].to_numpy() <= 0}
        for reason in REASONS:
            hit = best_is & ~unavailable & tests[reason]
            unavailable |= hit
            if hit.any():
                rows.append({"channel": ch, "reason": reason, "decision_points": int(hit.sum()),
                             "share": float(hit.mean()), "value_lost": float(lost[hit].sum()),
                             "value_lost_per_point": float(lost[hit].mean())})
    unserved = pd.DataFrame(rows, columns=["channel", "reason", "decision_points", "share", "value_lost",
                                           "value_lost_per_point"])
    unserved = unserved.sort_values("value_lost", ascending=False, kind="stable").reset_index(drop=True)

    lang_codes = X["language"].to_numpy(dtype=float) if "language" in X.columns else np.full(n, -1.0)
    lang_names = np.array(list(LANGUAGES) + ["unknown"], dtype=object)
    lang = lang_names[np.where((lang_codes >= 0) & (lang_codes < len(LANGUAGES)), lang_codes, len(LANGUAGES)).astype(int)]
    lf = pd.DataFrame({"language": lang, "decision_points": 1, "offer_worthy": worthy.astype(int),
                       **{f"served_{ch}": C[f"lang_ok_{ch}"].to_numpy() > 0 for ch in names}})
    languages = lf.groupby("language").agg({"decision_points": "sum", "offer_worthy": "sum",
                                             **{f"served_{ch}": "mean" for ch in names}})
    languages = languages.sort_values("decision_points", ascending=False, kind="stable")

    res = ChannelDemand(by_hour, unserved, languages, _pages(events, X, decisions), n,
                        float(lost[a_u != a].sum() / max(n, 1)) if n else 0.0)
    if what_ifs:
        res = ChannelDemand(res.by_hour, res.unserved, res.languages, res.pages, res.n, res.value_lost_per_point,
                            default_what_ifs(decisions, model_set=model_set, X=X, utc_offset_s=utc_offset_s))
    logger.info("channel demand: %d decision points, %.1f%% offer-worthy, %.4g value lost per point to unserved demand",
                n, 100 * worthy.mean() if n else 0.0, res.value_lost_per_point)
    return res


@accepts_old_form(old=("model_set", "decisions", "X"))
def what_if(decisions: pd.DataFrame, *, model_set: Any, X: pd.DataFrame, channel: str,
            open_hours: tuple[float, float] | None = None, open_weekdays: Iterable[int] | None = None,
            languages: Iterable[str] | None = None, wait_factor: float | None = None,
            utc_offset_s: float = 0.0) -> dict[str, Any]:
    """The change in the greedy policy's expected value per decision point if one channel changed.

    The logged channel context is changed for ``channel`` only — opened during ``open_hours``
    (``[start, end)`` on the service clock) on ``open_weekdays`` and closed otherwise; made to
    serve exactly ``languages``; its waits multiplied by ``wait_factor`` — and the model set's
    greedy policy is evaluated with its value model before and after, on the same decision points.

    Parameters
    ----------
    decisions : DataFrame
        As for :func:`channel_demand` (second, after ``model_set``, before 0.2).
    model_set : ModelSet, keyword-only
    X : DataFrame, keyword-only
        As for :func:`channel_demand`.
    channel : str
        A channel of the model set's catalogue.
    open_hours : (float, float), optional
        New opening hours; with ``open_weekdays`` (default every day).
    open_weekdays : iterable of int, optional
        Weekdays open (0 = Monday); with ``open_hours`` (default 0..24).
    languages : iterable of str, optional
        Visitor languages (``schema.LANGUAGES``) the channel serves.
    wait_factor : float, optional
        Multiplier of the channel's logged waits (0.5 = half the queue).
    utc_offset_s : float, default 0

    Returns
    -------
    dict
        ``channel``, ``change`` (text), ``n``, ``value_before``, ``value_after``, ``difference``
        (per decision point), ``share_changed`` (decisions whose action changed), ``offer_share_before``
        / ``offer_share_after`` (of the channel).
    """
    _check(decisions, model_set, X)
    names = model_set.policy.channels.names
    if channel not in names:
        raise ValidationError(f"channel must be one of {list(names)}, got {channel!r}")
    if open_hours is None and open_weekdays is None and languages is None and wait_factor is None:
        raise ValidationError("what_if needs a change: open_hours, open_weekdays, languages or wait_factor, got none")
    X = X.set_axis(decisions.index)
    C = _context(decisions, model_set.policy.channels)
    new = C.copy()
    change = []
    if open_hours is not None or open_weekdays is not None:
        start, end = (0.0, 24.0) if open_hours is None else (float(open_hours[0]), float(open_hours[1]))
        if not 0 <= start < end <= 24:
            raise ValidationError(f"open_hours must be (start, end) with 0 <= start < end <= 24, got {open_hours!r}")
        days = list(range(7)) if open_weekdays is None else sorted(set(int(d) for d in open_weekdays))
        if not days or not all(0 <= d <= 6 for d in days):
            raise ValidationError(f"open_weekdays must be weekdays in 0..6 (0 = Monday), got {open_weekdays!r}")
        t = pd.to_numeric(decisions["ts"]).to_numpy(dtype=float) + float(utc_offset_s)
        hour_f = (t % 86400.0) / 3600.0
        _, wday = service_clock(t)
        new[f"open_{channel}"] = ((hour_f >= start) & (hour_f < end) & np.isin(wday, days)).astype(float)
        change.append(f"open {start:g}-{end:g}h on {','.join(_WEEKDAYS[d] for d in days)}")
    if languages is not None:
        langs = sorted(set(languages))
        bad = [x for x in langs if x not in LANGUAGES]
        if bad:
            raise ValidationError(f"languages must be among {list(LANGUAGES)}, got {bad}")
        if "language" not in X.columns:
            raise ValidationError("X must hold the 'language' feature for a languages what-if")
        codes = X["language"].to_numpy(dtype=float)
        new[f"lang_ok_{channel}"] = np.isin(codes, [LANGUAGES.index(x) for x in langs]).astype(float)
        change.append(f"languages {'+'.join(langs)}")
    if wait_factor is not None:
        if isinstance(wait_factor, bool) or not isinstance(wait_factor, (int, float)) or not wait_factor >= 0:
            raise ValidationError(f"wait_factor must be a number >= 0, got {wait_factor!r}")
        new[f"wait_{channel}_s"] = C[f"wait_{channel}_s"] * float(wait_factor)
        change.append(f"waits x{wait_factor:g}")
    a0, v0, _ = _greedy_value(model_set, X, C)
    a1, v1, _ = _greedy_value(model_set, X, new)
    j = names.index(channel) + 1
    n = len(decisions)
    return {"channel": channel, "change": "; ".join(change), "n": n,
            "value_before": float(v0.mean()) if n else 0.0, "value_after": float(v1.mean()) if n else 0.0,
            "difference": float((v1 - v0).mean()) if n else 0.0, "share_changed": float((a0 != a1).mean()) if n else 0.0,
            "offer_share_before": float((a0 == j).mean()) if n else 0.0,
            "offer_share_after": float((a1 == j).mean()) if n else 0.0}


@accepts_old_form(old=("model_set", "decisions", "X"))
def default_what_ifs(decisions: pd.DataFrame, *, model_set: Any, X: pd.DataFrame,
                     utc_offset_s: float = 0.0) -> pd.DataFrame:
    """The what-ifs a report shows: per channel, open around the clock (if it ever closed), serve every
    language (if it missed one), halve the queue (if it had one)."""
    names = model_set.policy.channels.names
    C = _context(decisions, model_set.policy.channels)
    rows = []
    for ch in names:
        if (C[f"open_{ch}"] <= 0).any():
            rows.append(what_if(decisions, model_set=model_set, X=X, channel=ch, open_hours=(0, 24), utc_offset_s=utc_offset_s))
        if (C[f"lang_ok_{ch}"] <= 0).any() and "language" in X.columns:
            rows.append(what_if(decisions, model_set=model_set, X=X, channel=ch, languages=LANGUAGES, utc_offset_s=utc_offset_s))
        if (C[f"wait_{ch}_s"] > 0).any():
            rows.append(what_if(decisions, model_set=model_set, X=X, channel=ch, wait_factor=0.5, utc_offset_s=utc_offset_s))
    cols = ["channel", "change", "n", "value_before", "value_after", "difference", "share_changed",
            "offer_share_before", "offer_share_after"]
    return pd.DataFrame(rows, columns=cols).sort_values("difference", ascending=False, kind="stable") \
        .reset_index(drop=True)
