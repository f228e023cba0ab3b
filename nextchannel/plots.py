"""Figures a person reads: calibration, uplift (Qini), policy values, channel load, offer timing, reasons.

Where it sits: beside :mod:`nextchannel.report`, at the end of the flow; nothing in the scoring
path imports it. Every function returns a :class:`matplotlib.figure.Figure` built without pyplot
(no global figure registry, no GUI backend), so figures can be made from several threads and on a
headless machine; save one with ``fig.savefig(path, dpi=110)``. matplotlib is imported inside the
functions: ``import nextchannel.plots`` works without it, a call raises ImportError naming the
extra to install (``pip install "nextchannel[plots]"``).

The numbers come from :mod:`nextchannel.diagnostics` and :mod:`nextchannel.facts`; this module
only draws them.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"value": [1.2, 1.5], "low": [1.0, 1.4], "high": [1.4, 1.6]},
...                      index=["champion", "challenger"])
>>> fig = plot_policy_values(table, reference={"oracle": 2.0})
>>> fig.axes[0].get_title()
'Policy value per decision point'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nextchannel import facts as _facts
from nextchannel.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_calibration",
    "plot_qini",
    "plot_policy_values",
    "plot_channel_mix",
    "plot_offer_timing",
    "plot_top_reasons",
    "plot_learning_loop",
    "CHANNEL_COLORS",
    "plot_demand_by_hour",
    "plot_unserved",
]

#: One colour per default channel, the same in every figure (colour-blind-safe Okabe–Ito palette).
CHANNEL_COLORS: dict[str, str] = {
    "chat": "#0072B2", "callback": "#E69F00", "phone": "#D55E00", "email": "#009E73",
    "messaging": "#CC79A7", "self_service": "#56B4E9",
}
_OTHER_COLORS = ("#F0E442", "#999999", "#000000", "#8C564B", "#7F7F7F")
_MODEL_COLOR = "#0072B2"
_REF_COLOR = "#7F7F7F"
_MAX_LABEL = 58


def _figure(width_in: float, height_in: float) -> "Figure":
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError('nextchannel.plots needs matplotlib: pip install "nextchannel[plots]"') from err
    return Figure(figsize=(width_in, height_in), layout="constrained")


def _color(channel: str, i: int) -> str:
    return CHANNEL_COLORS.get(channel, _OTHER_COLORS[i % len(_OTHER_COLORS)])


def _empty(ax: "Axes", text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=_REF_COLOR, fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _pct(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def _short(text: str, width: int = _MAX_LABEL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Model diagnostics
# ---------------------------------------------------------------------------------------------
def plot_calibration(y: Any, p: Any, n_bins: int = 10, strategy: str = "quantile",
                     title: str | None = None) -> "Figure":
    """Reliability diagram (observed rate against mean prediction per bin) over a histogram of ``p``.

    Points on the diagonal are calibrated; points below it mean the model over-predicts. The
    bins are those of :func:`nextchannel.diagnostics.calibration_curve`; the title gives the
    expected calibration error. Both axes span the range of the predictions (not always 0–1), so
    the small probabilities typical of offer acceptance stay readable.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed 0/1 outcome.
    p : array-like of shape (n,)
        Predicted probability.
    n_bins : int, default 10
    strategy : {"quantile", "uniform"}, default "quantile"
    title : str, optional
        Default ``"Calibration"``; the ECE and n are appended.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0, 0.4, 500)
    >>> fig = plot_calibration(rng.uniform(size=500) < p, p)
    >>> fig.axes[0].get_title().startswith("Calibration (ECE = ")
    True
    """
    from nextchannel.diagnostics import calibration_curve

    cc = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    p_arr = np.asarray(p, dtype=np.float64)
    count = cc["count"].to_numpy(dtype=np.float64)
    ece = float((count * np.abs(cc["observed_rate"] - cc["mean_predicted"])).sum() / count.sum())
    top = max(float(p_arr.max()), float(cc["observed_rate"].max()), 0.01)
    lim = min(1.0, top * 1.08)

    fig = _figure(6.4, 6.0)
    ax, hx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, lim], [0, lim], ls="--", color=_REF_COLOR, lw=1, label="perfectly calibrated")
    ax.plot(cc["mean_predicted"], cc["observed_rate"], "o-", color=_MODEL_COLOR, lw=1.8, ms=6,
            label=f"model ({len(cc)} bins, {strategy})")
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_ylabel("observed rate in bin")
    ax.set_title(f"{title or 'Calibration'} (ECE = {ece:.3f}, n = {p_arr.size:,})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    hx.hist(p_arr, bins=np.linspace(0, lim, 31), color=_MODEL_COLOR, alpha=0.7)
    hx.set_xlabel("predicted probability")
    hx.set_ylabel("rows")
    hx.grid(alpha=0.3)
    return fig


def plot_qini(y: Any, treatment: Any, score: Any, propensity: Any = None, title: str | None = None) -> "Figure":
    """Qini curve of an uplift score against random targeting, with the Qini coefficient.

    The curve's height at x is the incremental outcome (treated outcomes minus the control
    outcomes scaled to the treated count) when the top x% of rows by score are targeted; the
    dashed line is random targeting. A model is useful where its curve rises above the line;
    the Qini coefficient (1 = perfect ranking, 0 = random) is in the legend. Curves from
    :func:`nextchannel.diagnostics.qini_curve`.

    Parameters
    ----------
    y, treatment, score, propensity
        As in :func:`nextchannel.diagnostics.qini_curve`.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_qini([1, 0, 0, 1, 1, 0], [1, 0, 1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1, 0.6, 0.2])
    >>> "Qini coefficient" in fig.axes[0].get_legend().get_texts()[0].get_text()
    True
    """
    from nextchannel.diagnostics import qini_auc, qini_curve

    qc = qini_curve(y, treatment, score, propensity)
    try:
        coef = f"{qini_auc(y, treatment, score, propensity):.3f}"
    except ValidationError:
        coef = "undefined"
    x = qc["fraction_targeted"].to_numpy() * 100.0
    fig = _figure(6.8, 4.6)
    ax = fig.subplots()
    ax.plot(x, qc["gain"], color=_MODEL_COLOR, lw=2, label=f"model (Qini coefficient {coef})")
    ax.plot(x, qc["random"], ls="--", color=_REF_COLOR, lw=1.2, label="random targeting")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlim(0, 100)
    ax.set_xlabel("visitors targeted, by decreasing score (%)")
    ax.set_ylabel("incremental outcomes (Qini)")
    ax.set_title(title or "Qini curve: gain from targeting by the uplift score")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# Policy values
# ---------------------------------------------------------------------------------------------
def plot_policy_values(table: pd.DataFrame, reference: Mapping[str, float] | None = None,
                       title: str = "Policy value per decision point", xlabel: str = "value per decision point",
                       ci_label: str = "interval") -> "Figure":
    """Policy values as points with interval whiskers, one row per policy (first row on top).

    Parameters
    ----------
    table : DataFrame
        Index: policy name; columns ``value``, ``low``, ``high`` (NaN bounds: no whisker).
    reference : dict, optional
        Name → value drawn as labelled vertical lines (e.g. ``{"oracle": 2.1, "never offer": 0.4}``).
    title, xlabel : str
    ci_label : str, default "interval"
        Legend text of the whiskers, e.g. ``"95% interval"``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValidationError
        When ``table`` is not a non-empty DataFrame with ``value``, ``low``, ``high``.

    Examples
    --------
    >>> t = pd.DataFrame({"value": [0.5], "low": [float("nan")], "high": [float("nan")]}, index=["logged"])
    >>> len(plot_policy_values(t).axes)
    1
    """
    if not isinstance(table, pd.DataFrame):
        raise ValidationError(f"table must be a DataFrame (index policy; value, low, high), got {type(table).__name__}")
    missing = [c for c in ("value", "low", "high") if c not in table.columns]
    if missing or table.empty:
        raise ValidationError(
            f"table must be a non-empty DataFrame with columns ['value', 'low', 'high'], got {len(table)} rows, "
            f"missing {missing}")
    vals = table[["value", "low", "high"]].to_numpy(dtype=np.float64, na_value=np.nan)
    names = [_short(str(i), 36) for i in table.index]
    n = len(names)
    ypos = np.arange(n)[::-1]
    fig = _figure(7.2, 1.4 + 0.55 * n)
    ax = fig.subplots()
    v, lo, hi = vals[:, 0], vals[:, 1], vals[:, 2]
    has = np.isfinite(lo) & np.isfinite(hi)
    if has.any():
        err = np.vstack([v[has] - lo[has], hi[has] - v[has]])
        ax.errorbar(v[has], ypos[has], xerr=np.abs(err), fmt="none", ecolor=_MODEL_COLOR, elinewidth=2,
                    capsize=5, label=ci_label)
    ax.plot(v, ypos, "o", color=_MODEL_COLOR, ms=8, label="estimate")
    for yy, val in zip(ypos, v):
        if math.isfinite(val):   # above the point, clear of the whisker and of reference lines' labels
            ax.annotate(f"{val:,.3f}", (val, yy), xytext=(0, 9), textcoords="offset points", ha="center",
                        va="bottom", fontsize=9)
    styles = ["--", ":", "-.", (0, (5, 1))]
    for i, (name, rv) in enumerate((reference or {}).items()):
        ax.axvline(float(rv), color=_REF_COLOR if i else "#D55E00", ls=styles[i % len(styles)], lw=1.3,
                   label=f"{name} ({float(rv):,.3f})")
    ax.set_yticks(ypos, names)
    ax.set_ylim(-0.6, n - 0.25)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    left, right = ax.get_xlim()
    ax.set_xlim(left - 0.04 * (right - left), right + 0.04 * (right - left))
    # Below the axes, outside them: constrained layout makes room, so nothing overlaps the x label.
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, frameon=False, fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Policy facts
# ---------------------------------------------------------------------------------------------
def _tz_label(utc_offset_s: float) -> str:
    if utc_offset_s == 0:
        return "UTC"
    h = utc_offset_s / 3600.0
    return f"UTC{h:+g}"


def plot_channel_mix(decisions: pd.DataFrame, capacity_per_hour: Mapping[str, Any] | None = None,
                     utc_offset_s: float = 0.0) -> "Figure":
    """Offers per hour of day stacked by channel; with capacities, a second panel of load per channel.

    Top: the offers of an average day per hour (:func:`nextchannel.facts.hourly_load`), stacked
    by channel. Bottom (only with ``capacity_per_hour``): each channel's own load, offers per
    hour divided by its capacity, against a dashed line at 1 (full): a point above the line is
    an hour the channel is over capacity. Capacities are drawn as a ratio rather than as lines
    over the stacked bars because a channel's segment does not start at 0, so a line would be
    compared with the wrong height. Hours where a channel got offers at capacity 0 are marked
    with a triangle at the top of the panel.

    Parameters
    ----------
    decisions : DataFrame
        A decisions frame (``ts``, ``offer``/``action``, ``channel``/``action``).
    capacity_per_hour : dict, optional
        Channel → offers per hour (a number or 24 numbers).
    utc_offset_s : float, default 0
        Hours of day at this offset from UTC.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> d = pd.DataFrame({"ts": [9 * 3600.0, 10 * 3600.0], "action": ["chat", "phone"]})
    >>> fig = plot_channel_mix(d, capacity_per_hour={"chat": 1})
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['', 'hour of day (UTC)']
    """
    load = _facts.hourly_load(decisions, capacity_per_hour, utc_offset_s)
    n_days = load.attrs["n_days"]
    per = load.pivot(index="hour", columns="channel", values="offers_per_hour")
    chans = list(dict.fromkeys(load["channel"]))
    per = per[chans]
    hours = np.arange(24)
    offered = [c for c in chans if per[c].sum() > 0]
    if capacity_per_hour:
        fig = _figure(8.4, 6.6)
        ax, lx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    else:
        fig = _figure(8.4, 4.6)
        ax, lx = fig.subplots(), None
    if not offered:
        _empty(ax, "no offers in these decisions")
    bottom = np.zeros(24)
    for i, c in enumerate(chans):
        if c in offered:
            ax.bar(hours, per[c].to_numpy(), bottom=bottom, color=_color(c, i), width=0.85, label=c)
            bottom += per[c].to_numpy()
    ax.set_ylabel(f"offers per hour\n(average of {n_days:,} day{'s' if n_days != 1 else ''})")
    ax.set_title("Offers per hour of day, by channel")
    ax.grid(axis="y", alpha=0.3)
    if offered:
        handles, labels = ax.get_legend_handles_labels()
        # reversed, so the legend reads top-down like the stack
        ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  fontsize=9)
    bottom_ax = ax
    if lx is not None:
        ratio = load.pivot(index="hour", columns="channel", values="load")
        finite_max = 1.0
        for c in capacity_per_hour or {}:
            r = ratio[c].to_numpy()
            if np.isfinite(r).any():
                finite_max = max(finite_max, float(np.nanmax(np.where(np.isinf(r), np.nan, r))))
        top = finite_max * 1.12
        for i, c in enumerate(chans):
            if c not in (capacity_per_hour or {}):
                continue
            r = ratio[c].to_numpy()
            lx.plot(hours, np.where(np.isinf(r), np.nan, r), "o-", color=_color(i=i, channel=c), lw=1.8, ms=4,
                    label=c)
            inf = np.isinf(r)
            if inf.any():
                lx.plot(hours[inf], np.full(inf.sum(), finite_max * 1.06), "^", color=_color(c, i), ms=8,
                        label=f"{c}: offers at capacity 0")
        lx.axhline(1.0, ls="--", color="#222222", lw=1.3, label="at capacity")
        lx.set_ylim(0, top)
        lx.set_ylabel("load = offers / capacity")
        lx.set_title("Load per channel (above the dashed line: over capacity)", loc="left", fontsize=10)
        lx.grid(alpha=0.3)
        lx.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
        bottom_ax = lx
    bottom_ax.set_xticks(hours)
    bottom_ax.set_xlim(-0.6, 23.6)
    bottom_ax.set_xlabel(f"hour of day ({_tz_label(utc_offset_s)})")
    return fig


def plot_offer_timing(decisions: pd.DataFrame, session_start: Mapping[Any, float] | pd.Series | None = None,
                      edges_s: Sequence[float] = _facts.DEFAULT_TIMING_EDGES_S) -> "Figure":
    """How long into the session offers are made: offers per time interval, with shares.

    Times are seconds since the session's start (``session_start``) or, without it, since the
    session's first decision point (:func:`nextchannel.facts.offer_times_s`); intervals as in
    :func:`nextchannel.facts.timing_histogram`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> d = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [0.0, 40.0, 9.0], "action": ["none", "chat", "chat"]})
    >>> plot_offer_timing(d).axes[0].get_xlabel()
    "time since the session's first decision point"
    """
    secs = _facts.offer_times_s(decisions, session_start).to_numpy()
    hist = _facts.timing_histogram(secs, edges_s)
    fig = _figure(7.6, 4.4)
    ax = fig.subplots()
    x = np.arange(len(hist))
    if secs.size == 0:
        _empty(ax, "no offers in these decisions")
        ax.set_title("When in the session offers are made")
    else:
        bars = ax.bar(x, hist["offers"], color=_MODEL_COLOR, width=0.75)
        ax.bar_label(bars, labels=[_pct(s) for s in hist["share"]], padding=2, fontsize=9)
        ax.set_xticks(x, hist["bin"], rotation=25, ha="right")
        ax.set_ylim(0, float(hist["offers"].max()) * 1.15 + 1)
        ax.set_ylabel("offers")
        median = float(np.median(secs))
        ax.set_title(f"When in the session offers are made (median {median:,.0f} s, {secs.size:,} offers)")
    since = "session start" if session_start is not None else "the session's first decision point"
    ax.set_xlabel(f"time since {since}")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _phrase_panel(ax: "Axes", table: pd.DataFrame | None, title: str, color: str, what: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title, loc="left")
    if table is None or table.empty:
        _empty(ax, f"no {what} recorded")
        return
    y = np.arange(len(table))[::-1]
    bars = ax.barh(y, table["count"], color=color, height=0.7)
    ax.bar_label(bars, labels=[f"{c:,} ({_pct(s)})" for c, s in zip(table["count"], table["share"])], padding=3,
                 fontsize=9)
    ax.set_yticks(y, [_short(p) for p in table["phrase"]], fontsize=9)
    ax.set_xlim(0, float(table["count"].max()) * 1.25)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel("decision points mentioning it")
    ax.grid(axis="x", alpha=0.3)


def plot_top_reasons(decisions: pd.DataFrame, k: int = 10) -> "Figure":
    """The ``k`` most frequent reasons and why-nots (numbers normalised to N), in two panels.

    Counts are decision points whose ``reasons`` / ``why_not`` mention the phrase
    (:func:`nextchannel.facts.top_phrases`); a panel whose column is absent or empty says so.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValidationError
        When ``decisions`` has neither ``reasons`` nor ``why_not``.

    Examples
    --------
    >>> d = pd.DataFrame({"reasons": ["idle 45 s on checkout", ""], "why_not": ["", "phone: closed"]})
    >>> [ax.get_title(loc="left") for ax in plot_top_reasons(d).axes]
    ['Top reasons for the decisions', 'Top why-nots (channels not eligible, contact rules)']
    """
    if not isinstance(decisions, pd.DataFrame):
        raise ValidationError(f"decisions must be a pandas DataFrame, got {type(decisions).__name__}")
    if "reasons" not in decisions.columns and "why_not" not in decisions.columns:
        raise ValidationError("decisions must have a column 'reasons' and/or 'why_not', got neither")
    reasons = _facts.top_reasons(decisions, k) if "reasons" in decisions.columns else None
    why = _facts.top_why_not(decisions, k) if "why_not" in decisions.columns else None
    rows = [max(1, 0 if t is None else len(t)) for t in (reasons, why)]
    fig = _figure(8.4, 1.6 + 0.32 * sum(rows))
    ax1, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": rows})
    _phrase_panel(ax1, reasons, "Top reasons for the decisions", _MODEL_COLOR, "reasons")
    _phrase_panel(ax2, why, "Top why-nots (channels not eligible, contact rules)", "#D55E00", "why-nots")
    return fig


# ---------------------------------------------------------------------------------------------
# The learning loop
# ---------------------------------------------------------------------------------------------
def plot_learning_loop(weeks: pd.DataFrame, references: pd.DataFrame | None = None,
                       title: str = "The learning loop, week by week") -> "Figure":
    """Value per session of the deployed policy each week, with its interval, the references, the gate.

    Parameters
    ----------
    weeks : DataFrame
        :attr:`nextchannel.learning_loop.LoopResult.weeks` (``week``, ``value``, ``value_low``,
        ``value_high``, ``greedy_value``, ``needless_offer_share``, ``gate``).
    references : DataFrame, optional
        ``week`` and one column per reference policy (e.g. ``never``, ``oracle``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> w = pd.DataFrame({"week": [1, 2], "value": [1.0, 1.3], "value_low": [0.9, 1.2], "value_high": [1.1, 1.4],
    ...                   "greedy_value": [1.2, 1.4], "needless_offer_share": [0.7, 0.4],
    ...                   "gate": ["first week", "published"]})
    >>> len(plot_learning_loop(w, pd.DataFrame({"week": [1, 2], "never": [0.8, 0.8]})).axes)
    2
    """
    need = ("week", "value", "value_low", "value_high", "greedy_value", "needless_offer_share", "gate")
    if not isinstance(weeks, pd.DataFrame) or weeks.empty or any(c not in weeks.columns for c in need):
        raise ValidationError(f"weeks must be a non-empty DataFrame with columns {list(need)}, got "
                              f"{type(weeks).__name__}")
    fig = _figure(7.6, 5.4)
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.4))
    wk = weeks["week"].to_numpy()
    ax.fill_between(wk, weeks["value_low"], weeks["value_high"], color=_MODEL_COLOR, alpha=0.18,
                    label="deployed: 95% interval")
    ax.plot(wk, weeks["value"], "o-", color=_MODEL_COLOR, label="deployed (with exploration)")
    ax.plot(wk, weeks["greedy_value"], "s--", color=_MODEL_COLOR, alpha=0.6, ms=5, label="same policy, no exploration")
    styles = ["--", ":", "-.", (0, (5, 1))]
    for i, name in enumerate(c for c in (references.columns if references is not None else []) if c != "week"):
        ax.plot(references["week"], references[name], ls=styles[i % len(styles)], color=_REF_COLOR if i else "#D55E00",
                lw=1.3, label=name)
    kept = weeks["gate"].astype(str).str.startswith("kept").to_numpy()
    if kept.any():
        ax.plot(wk[kept], weeks["value"].to_numpy()[kept], "x", color="#D55E00", ms=10, mew=2,
                label="gate kept the champion")
    ax.set_ylabel("value per session")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax2.bar(wk, weeks["needless_offer_share"], color=_OTHER_COLORS[1], width=0.6)
    ax2.set_ylabel("offers to visitors\nwho needed none")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("week")
    ax2.set_xticks(wk)
    ax2.grid(axis="y", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=3, frameon=False, fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Channel demand (nextchannel.demand)
# ---------------------------------------------------------------------------------------------
def plot_demand_by_hour(by_hour: pd.DataFrame, channels: Sequence[str] | None = None) -> "Figure":
    """Offer-worthy demand per hour of day (bars) against each channel's opening (lines: the share of the
    hour's decision points, over all weekdays, at which the channel was open).

    Parameters
    ----------
    by_hour : DataFrame
        :attr:`nextchannel.demand.ChannelDemand.by_hour` (index weekday, hour; ``decision_points``,
        ``offer_worthy``, ``open_<ch>``).
    channels : sequence of str, optional
        Channels to draw (default: every ``open_<ch>`` column that is not always open).

    Examples
    --------
    >>> idx = pd.MultiIndex.from_product([range(7), range(24)], names=["weekday", "hour"])
    >>> t = pd.DataFrame({"decision_points": 10, "offer_worthy": 2, "open_chat": 0.5}, index=idx)
    >>> plot_demand_by_hour(t).axes[0].get_title()
    'Demand for help by hour of day (service clock) and when channels were open'
    """
    if not isinstance(by_hour, pd.DataFrame) or not {"decision_points", "offer_worthy"} <= set(by_hour.columns):
        raise ValidationError("by_hour must be ChannelDemand.by_hour (columns decision_points, offer_worthy, open_<ch>)")
    hours = by_hour.groupby(level="hour")
    worthy = hours["offer_worthy"].sum().reindex(range(24), fill_value=0).to_numpy(dtype=float)
    points = hours["decision_points"].sum().reindex(range(24), fill_value=0).to_numpy(dtype=float)
    open_cols = [c for c in by_hour.columns if str(c).startswith("open_")]
    if channels is None:
        channels = [c[5:] for c in open_cols if (by_hour[c].dropna() < 1).any()]
    fig = _figure(8.4, 3.8)
    ax = fig.subplots()
    ax.bar(np.arange(24), points, color="#DDDDDD", label="decision points")
    ax.bar(np.arange(24), worthy, color=_MODEL_COLOR, label="offer-worthy (best channel beats no offer)")
    ax.set_xlabel("hour of day")
    ax.set_ylabel("decision points")
    ax.set_xticks(range(0, 24, 2))
    ax.set_title("Demand for help by hour of day (service clock) and when channels were open")
    ax2 = ax.twinx()
    for i, ch in enumerate(channels):
        col = f"open_{ch}"
        if col not in by_hour.columns:
            continue
        w = by_hour["decision_points"].to_numpy(dtype=float)
        share = (by_hour[col].fillna(0) * w).groupby(level="hour").sum().reindex(range(24), fill_value=0) \
            / np.maximum(points, 1)
        ax2.step(np.arange(24), share.to_numpy(), where="mid", color=_color(ch, i), lw=2, label=f"{ch} open")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("channel open (share of the hour's decision points)", fontsize=8)
    handles = ax.get_legend_handles_labels()
    h2 = ax2.get_legend_handles_labels()
    fig.legend(handles[0] + h2[0], handles[1] + h2[1], loc="outside lower center", ncol=4, frameon=False, fontsize=8)
    return fig


def plot_unserved(unserved: pd.DataFrame, n: int) -> "Figure":
    """Value lost per decision point to unserved demand, by channel and reason (closed, queue, language).

    Examples
    --------
    >>> t = pd.DataFrame({"channel": ["chat"], "reason": ["closed"], "value_lost": [12.0]})
    >>> plot_unserved(t, 100).axes[0].get_xlabel()
    'value lost per decision point (model estimate)'
    """
    if not isinstance(unserved, pd.DataFrame) or not {"channel", "reason", "value_lost"} <= set(unserved.columns):
        raise ValidationError("unserved must be ChannelDemand.unserved (columns channel, reason, value_lost)")
    fig = _figure(7.2, 1.4 + 0.4 * max(len(unserved), 1))
    ax = fig.subplots()
    ax.set_title("Unserved demand: the best channel was not available")
    if unserved.empty:
        _empty(ax, "no unserved demand")
        return fig
    labels = [f"{r.channel}: {r.reason}" for r in unserved.itertuples()]
    vals = unserved["value_lost"].to_numpy(dtype=float) / max(int(n), 1)
    colors = [_color(str(c), i) for i, c in enumerate(unserved["channel"])]
    ypos = np.arange(len(labels))[::-1]
    ax.barh(ypos, vals, color=colors)
    ax.set_yticks(ypos, labels)
    ax.set_xlabel("value lost per decision point (model estimate)")
    ax.grid(axis="x", alpha=0.3)
    return fig
