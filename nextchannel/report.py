"""A policy report a person reads: one folder with ``index.html``, ``report.md`` and PNG figures.

Where it sits: the last step of the flow (decisions, logs → facts, estimates, figures → report);
the ``nextchannel report`` command calls :func:`report_from_files`. Numbers come from
:mod:`nextchannel.facts`, :mod:`nextchannel.evaluate` and :mod:`nextchannel.diagnostics`, figures
from :mod:`nextchannel.plots`.

The folder is published atomically as bundles are (:mod:`nextchannel.bundle`): everything is
written into a temporary sibling folder ``.<name>.tmp-<random>``, fsynced, then renamed into
place; an existing report is swapped out by two renames. On any error (a figure that fails to
render, a full disk) the temporary folder is removed and ``path`` is left as it was. ``index.html``
is self-contained (inline style, figures embedded as data URIs), so it can be sent on its own;
``report.md`` links the PNG files next to it.

Examples
--------
>>> import pandas as pd, pathlib, tempfile
>>> d = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [0.0, 40.0, 9.0], "action": ["none", "chat", "none"]})
>>> out = write_report(pathlib.Path(tempfile.mkdtemp()) / "r", decisions=d)
>>> sorted(p.name for p in out.iterdir())
['channel_mix.png', 'index.html', 'offer_timing.png', 'report.md']
"""

from __future__ import annotations

import base64
import html
import logging
import math
import os
import pathlib
import shutil
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from nextchannel import facts as _facts
from nextchannel.errors import ValidationError
from nextchannel.schema import NONE_ACTION

__all__ = ["write_report", "report_from_files", "REPORT_FILES"]

logger = logging.getLogger(__name__)

#: The figures a report may hold, in the order they appear, with the caption telling how to read each.
REPORT_FILES: dict[str, str] = {
    "policy_values.png": "Each point is a policy's value per decision point, the whisker its interval; "
                         "vertical lines are references (the oracle's best possible value, never offering).",
    "channel_mix.png": "Bars are the offers of an average day per hour, stacked by channel. With capacities, the "
                       "lower panel shows each channel's offers divided by its capacity: above the dashed line at 1 "
                       "the channel is over capacity.",
    "offer_timing.png": "How long into the session offers are made; the percentage above a bar is its share of "
                        "all offers. Many very early offers suggest the policy acts before the visitor struggles.",
    "top_reasons.png": "The phrases that most often explain the decisions (top) and why channels or all offers "
                       "were ruled out (bottom); numbers are replaced by N so that similar phrases count together.",
    "calibration.png": "Observed rate against the predicted probability per bin: points on the diagonal are "
                       "calibrated, below it the model over-predicts; the histogram shows where predictions fall.",
    "qini.png": "Incremental outcomes when targeting visitors by decreasing uplift score; the higher the curve "
                "above the dashed random line, the better the score ranks who gains from an offer.",
}
_DPI = 110
_Z95 = NormalDist().inv_cdf(0.975)


# ---------------------------------------------------------------------------------------------
# Atomic folder publishing (the approach of nextchannel.bundle; its private helpers are reused)
# ---------------------------------------------------------------------------------------------
def _looks_like_report(path: pathlib.Path) -> bool:
    """Only an empty folder or a previous report may be replaced, never e.g. a home folder."""
    if path.is_symlink() or not path.is_dir():
        return False
    return (path / "index.html").is_file() or not any(path.iterdir())


def _publish(path: pathlib.Path, fill: Callable[[pathlib.Path], None], overwrite: bool) -> None:
    """Create a temp sibling, let ``fill`` write into it, then rename it to ``path`` (atomically)."""
    from nextchannel.bundle import _fsync_dir, _make_temp_sibling, _swap_into_place

    exists = os.path.lexists(path)
    if exists and not overwrite:
        raise ValidationError(f"path {os.fspath(path)!r} already exists; pass overwrite=True to replace it")
    if exists and not _looks_like_report(path):
        raise ValidationError(
            f"refusing to replace {os.fspath(path)!r}: it is not a report folder (no index.html) and not an "
            f"empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_temp_sibling(path)
    try:
        fill(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if exists:
            _swap_into_place(tmp, path)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------------------------
@dataclass
class _Table:
    """A small table for both HTML and Markdown: header and rows of already formatted strings."""

    header: list[str]
    rows: list[list[str]]
    align_right: list[bool] = field(default_factory=list)


@dataclass
class _Section:
    title: str
    intro: str = ""
    tables: list[tuple[str, _Table]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)


def _fmt_value(name: str, v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return f"{int(v):,}"
    v = float(v)
    if not math.isfinite(v):
        return "–"
    if name.endswith("_rate") or name.endswith("_share") or name == "share":
        return f"{v:.1%}"
    if name.endswith("_s"):
        return f"{v:,.0f} s"
    return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"


def _hour_ranges(hours: list[int]) -> str:
    """``[8, 9, 10, 14]`` → ``"8–10, 14"``."""
    parts: list[str] = []
    start = prev = hours[0]
    for h in hours[1:] + [None]:
        if h is not None and h == prev + 1:
            prev = h
            continue
        parts.append(f"{start}–{prev}" if prev > start else f"{start}")
        if h is not None:
            start = prev = h
    return ", ".join(parts)


def _actions_of(decisions: pd.DataFrame) -> list[str]:
    """Actions with both ``p_<a>`` and ``ev_<a>`` columns (``none`` first), as a decisions frame has."""
    cols = set(decisions.columns)
    acts = [c[2:] for c in decisions.columns if isinstance(c, str) and c.startswith("p_") and f"ev_{c[2:]}" in cols]
    return sorted(acts, key=lambda a: a != NONE_ACTION)


def _values(decisions: pd.DataFrame, truth: pd.DataFrame | None, logs: pd.DataFrame | None,
            policy_values: pd.DataFrame | None) -> tuple[pd.DataFrame | None, dict[str, float], dict[str, Any]]:
    """The policy values table, reference lines and headline values from whatever inputs exist."""
    from nextchannel.evaluate import estimate_policy_value, normalised_value, policy_value_true

    refs: dict[str, float] = {}
    head: dict[str, Any] = {}
    rows: dict[str, tuple[float, float, float, str]] = {}
    actions = _actions_of(decisions)
    if logs is not None and "reward" in logs.columns:
        r = logs["reward"].to_numpy(dtype=np.float64, na_value=np.nan)
        r = r[np.isfinite(r)]
        if r.size:
            m = float(r.mean())
            se = float(r.std(ddof=1) / math.sqrt(r.size)) if r.size > 1 else math.nan
            head["logged_mean_reward"] = m
            rows["logging policy (observed)"] = (m, m - _Z95 * se, m + _Z95 * se, "mean logged reward, 95% normal")
        if actions and {"action", "propensity"} <= set(logs.columns):
            target = decisions[[f"p_{a}" for a in actions]].set_axis(actions, axis=1)
            est = estimate_policy_value(logs, target=target, actions=actions, estimators=["snips"], ci_method="normal")
            e = est.loc["snips"]
            rows["this policy (SNIPS on logs)"] = (float(e["value"]), float(e["low"]), float(e["high"]),
                                                   "off-policy estimate, 95% normal")
    if truth is not None and actions and all(f"ev_{a}" in truth.columns for a in actions):
        _facts._check_aligned(truth, "truth", decisions, [])
        ev = truth[[f"ev_{a}" for a in actions]].to_numpy(dtype=np.float64)
        p = decisions[[f"p_{a}" for a in actions]].to_numpy(dtype=np.float64)
        v = policy_value_true(p, ev)
        never = float(ev[:, 0].mean())
        oracle = float(ev.max(axis=1).mean())
        head.update(true_policy_value=v, never_offer_value=never, oracle_value=oracle)
        if oracle != never:
            head["oracle_gain_share"] = normalised_value(v, never, oracle)
        rows["this policy (true value)"] = (v, math.nan, math.nan, "exact, from the simulator's oracle")
        refs.update({"oracle": oracle, "never offer": never})
    if policy_values is not None:
        if not isinstance(policy_values, pd.DataFrame) or not {"value", "low", "high"} <= set(policy_values.columns):
            raise ValidationError(
                f"policy_values must be a DataFrame indexed by policy with columns value, low, high, got "
                f"{type(policy_values).__name__} with columns {list(getattr(policy_values, 'columns', []))}")
        return policy_values[["value", "low", "high"]].astype(float), refs, head
    if not rows:
        return None, refs, head
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["value", "low", "high", "method"])
    return table, refs, head


_HEAD_DESCRIPTIONS = {
    "logged_mean_reward": "mean reward per decision point in the logs",
    "true_policy_value": "true value of this policy per decision point (simulation)",
    "never_offer_value": "true value of never offering (simulation)",
    "oracle_value": "true value of the best action everywhere (simulation)",
    "oracle_gain_share": "share of the oracle's gain over never offering that this policy achieves",
}


def _build(decisions: pd.DataFrame, truth: pd.DataFrame | None, logs: pd.DataFrame | None,
           policy_values: pd.DataFrame | None, calibration: Mapping[str, Any] | None,
           qini: Mapping[str, Any] | None, capacity_per_hour: Mapping[str, Any] | None, utc_offset_s: float,
           session_start: Any) -> tuple[list[_Section], dict[str, Callable[[], Any]]]:
    """All numbers (validated now, before anything is written) and the figure makers."""
    from nextchannel import plots

    outcomes = None
    if logs is not None:
        if not isinstance(logs, pd.DataFrame):
            raise ValidationError(f"logs must be a pandas DataFrame, got {type(logs).__name__}")
        _facts._check_aligned(logs, "logs", decisions, [])
        if {"accepted", "p_accept"} & set(logs.columns):
            outcomes = logs
    truth_need = truth if truth is not None and "needs_help" in truth.columns else None
    facts = _facts.policy_facts(decisions, truth=truth_need, outcomes=outcomes, capacity_per_hour=capacity_per_hour,
                                session_start=session_start, utc_offset_s=utc_offset_s)
    table, refs, head = _values(decisions, truth, logs, policy_values)
    figs: dict[str, Callable[[], Any]] = {}
    sections: list[_Section] = []

    # Headline figures
    hf = facts.to_frame()
    rows = [[_facts.FACT_DESCRIPTIONS[k], _fmt_value(k, v)] for k, v in zip(hf.index, hf["value"])]
    rows += [[_HEAD_DESCRIPTIONS[k], _fmt_value(k, v)] for k, v in head.items()]
    timed = "ts" in decisions.columns  # a team's own logs may carry no times (see policy_facts)
    if timed:
        ts = decisions["ts"].to_numpy(dtype=np.float64)
        span = (f"Decisions from {pd.Timestamp(ts.min(), unit='s'):%Y-%m-%d %H:%M} to "
                f"{pd.Timestamp(ts.max(), unit='s'):%Y-%m-%d %H:%M} UTC.")
    else:
        span = f"{len(decisions):,} decisions without timestamps: no facts about time of day or time into a session."
    sections.append(_Section("Headline figures", span, [("", _Table(["fact", "value"], rows, [False, True]))]))

    # Policy values
    if table is not None:
        vrows = [[str(i), _fmt_value("value", r["value"]), _fmt_value("low", r["low"]), _fmt_value("high", r["high"])]
                 + ([str(r["method"])] if "method" in table.columns else []) for i, r in table.iterrows()]
        header = ["policy", "value", "low", "high"] + (["how"] if "method" in table.columns else [])
        notes = ["References: " + "; ".join(f"{k} = {v:,.3f}" for k, v in refs.items()) + " per decision point."] \
            if refs else []
        sections.append(_Section("Policy values", "Value per decision point, in reward units, with intervals.",
                                 [("", _Table(header, vrows, [False, True, True, True, False]))], notes,
                                 ["policy_values.png"]))
        figs["policy_values.png"] = lambda: plots.plot_policy_values(table, reference=refs or None,
                                                                     ci_label="95% interval")

    # Channels and load
    mix = facts.channel_mix
    crows = [[str(c), _fmt_value("offers", int(r["offers"])), _fmt_value("share", r["share"])] for c, r in mix.iterrows()]
    notes = []
    if facts.hours_over_capacity is not None:
        for c, hours in facts.hours_over_capacity.items():
            notes.append(f"{c}: over capacity at hours {_hour_ranges(hours)} (of an average day)." if hours
                         else f"{c}: within capacity at every hour.")
    sections.append(_Section("Channels and load", "Offers per channel, and per hour of day on an average day.",
                             [("", _Table(["channel", "offers", "share of offers"], crows, [False, True, True]))],
                             notes, ["channel_mix.png"] if timed else []))
    if timed:
        figs["channel_mix.png"] = lambda: plots.plot_channel_mix(decisions, capacity_per_hour, utc_offset_s)

    # Timing
    q = facts.timing
    trows = [[k, _fmt_value("t_s", v)] for k, v in q.items()]
    hrows = [[str(b), _fmt_value("offers", int(o)), _fmt_value("share", s)]
             for b, o, s in zip(facts.timing_histogram["bin"], facts.timing_histogram["offers"],
                                facts.timing_histogram["share"])]
    since = "the session's start" if session_start is not None else "the session's first decision point"
    sections.append(_Section("When offers happen", f"Seconds since {since} at which offers are made.",
                             [("Quantiles", _Table(["quantile", "seconds"], trows, [False, True])),
                              ("Histogram", _Table(["time into session", "offers", "share"], hrows,
                                                   [False, True, True]))],
                             figures=["offer_timing.png"] if facts.n_offers and timed else []))
    if facts.n_offers and timed:
        figs["offer_timing.png"] = lambda: plots.plot_offer_timing(decisions, session_start)

    # Reasons
    if facts.top_reasons is not None or facts.top_why_not is not None:
        tables = []
        for label, t in (("Top reasons", facts.top_reasons), ("Top why-nots", facts.top_why_not)):
            if t is not None:
                tables.append((label, _Table(["phrase", "decision points", "share"],
                                             [[p, f"{c:,}", f"{s:.1%}"] for p, c, s in
                                              zip(t["phrase"], t["count"], t["share"])], [False, True, True])))
        sections.append(_Section("Reasons and why-nots",
                                 "Phrases counted once per decision point, numbers replaced by N.", tables,
                                 figures=["top_reasons.png"]))
        figs["top_reasons.png"] = lambda: plots.plot_top_reasons(decisions)

    # Model diagnostics
    diag_figs = []
    notes = []
    if calibration is not None:
        from nextchannel.diagnostics import expected_calibration_error
        cal = _mapping(calibration, "calibration", ("y", "p"))
        ece = expected_calibration_error(cal["y"], cal["p"])
        notes.append(f"Expected calibration error: {ece:.4f} (10 quantile bins).")
        diag_figs.append("calibration.png")
        figs["calibration.png"] = lambda: plots.plot_calibration(cal["y"], cal["p"])
    if qini is not None:
        from nextchannel.diagnostics import qini_auc
        qd = _mapping(qini, "qini", ("y", "treatment", "score"), ("propensity",))
        try:
            notes.append(f"Qini coefficient: {qini_auc(qd['y'], qd['treatment'], qd['score'], qd.get('propensity')):.4f}.")
        except ValidationError as err:
            notes.append(f"Qini coefficient: undefined ({err}).")
        diag_figs.append("qini.png")
        figs["qini.png"] = lambda: plots.plot_qini(qd["y"], qd["treatment"], qd["score"], qd.get("propensity"))
    if diag_figs:
        sections.append(_Section("Model diagnostics", "", [], notes, diag_figs))
    return sections, figs


def _mapping(d: Any, name: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ValidationError(f"{name} must be a dict with keys {list(required)}, got {type(d).__name__}")
    missing = [k for k in required if k not in d]
    unknown = [k for k in d if k not in required + optional]
    if missing or unknown:
        raise ValidationError(
            f"{name} must be a dict with keys {list(required)}" + (f" (optional {list(optional)})" if optional else "")
            + f", missing {missing}, unknown {unknown}")
    return {k: d[k] for k in required + optional if k in d}


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; max-width: 980px;
       margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; color: #0b4f7c; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .95em; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: left; }
th { background: #f2f6fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .92em; margin-top: .3em; }
.note { color: #444; }
"""


_NUM = ' class="num"'


def _html_table(t: _Table) -> str:
    right = t.align_right + [False] * (len(t.header) - len(t.align_right))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join(
        "<tr>" + "".join(f"<td{_NUM if r else ''}>{html.escape(c)}</td>" for c, r in zip(row, right))
        + "</tr>" for row in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_table(t: _Table) -> str:
    right = t.align_right + [False] * (len(t.header) - len(t.align_right))
    lines = ["| " + " | ".join(_md_cell(h) for h in t.header) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def _render_html(title: str, sections: list[_Section], images: Mapping[str, bytes]) -> str:
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.intro:
            parts.append(f"<p>{html.escape(s.intro)}</p>")
        for label, t in s.tables:
            if label:
                parts.append(f"<h3>{html.escape(label)}</h3>")
            parts.append(_html_table(t))
        for n in s.notes:
            parts.append(f"<p class=\"note\">{html.escape(n)}</p>")
        for f in s.figures:
            if f in images:
                data = base64.b64encode(images[f]).decode("ascii")
                parts.append(f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(f)}\">"
                             f"<figcaption>{html.escape(REPORT_FILES[f])}</figcaption></figure>")
    parts.append("<p class=\"note\">Made by nextchannel.</p></body></html>\n")
    return "\n".join(parts)


def _render_md(title: str, sections: list[_Section], images: Mapping[str, bytes]) -> str:
    parts = [f"# {title}", ""]
    for s in sections:
        parts += [f"## {s.title}", ""]
        if s.intro:
            parts += [s.intro, ""]
        for label, t in s.tables:
            if label:
                parts += [f"### {label}", ""]
            parts += [_md_table(t), ""]
        for n in s.notes:
            parts += [n, ""]
        for f in s.figures:
            if f in images:
                parts += [f"![{f}]({f})", "", f"*{REPORT_FILES[f]}*", ""]
    return "\n".join(parts)


def write_report(path: str | os.PathLike[str], *, decisions: pd.DataFrame, truth: pd.DataFrame | None = None,
                 logs: pd.DataFrame | None = None, policy_values: pd.DataFrame | None = None,
                 calibration: Mapping[str, Any] | None = None, qini: Mapping[str, Any] | None = None,
                 capacity_per_hour: Mapping[str, Any] | None = None, title: str = "nextchannel policy report",
                 overwrite: bool = True, utc_offset_s: float = 0.0, session_start: Any = None,
                 dpi: int = _DPI) -> pathlib.Path:
    """Write a report folder (``index.html``, ``report.md``, PNG figures) atomically.

    Sections whose input is absent are left out: policy values need ``policy_values``, or
    ``logs`` (observed mean reward; SNIPS estimate of the decisions' policy when the decisions
    have ``p_<action>``/``ev_<action>`` columns and the logs ``action``/``propensity``/``reward``
    on the same rows), or a ``truth`` frame with ``ev_<action>`` columns (exact values; the
    oracle and never-offer values become reference lines); the reasons section needs
    ``reasons``/``why_not``; model diagnostics need ``calibration``/``qini``.

    Parameters
    ----------
    path : str or path-like
        The report folder. Missing parents are created.
    decisions : DataFrame
        A decisions frame (see :mod:`nextchannel.facts`).
    truth : DataFrame, optional
        Aligned by index: ``needs_help`` and/or ``ev_<action>`` (e.g. the simulator's decisions).
    logs : DataFrame, optional
        Aligned by index: logged ``action``, ``propensity``, ``reward`` and/or ``accepted`` /
        ``p_accept`` (acceptance facts).
    policy_values : DataFrame, optional
        Index policy name, columns ``value``, ``low``, ``high``; replaces the values computed
        from ``logs``/``truth`` (whose references are still drawn).
    calibration : dict, optional
        ``{"y": ..., "p": ...}`` for :func:`nextchannel.plots.plot_calibration`.
    qini : dict, optional
        ``{"y": ..., "treatment": ..., "score": ..., "propensity": ... (optional)}``.
    capacity_per_hour : dict, optional
        Channel → offers per hour (see :func:`nextchannel.facts.hourly_load`).
    title : str
    overwrite : bool, default True
        Replace an existing report at ``path`` (only a folder with ``index.html``, or an empty
        folder, is ever replaced).
    utc_offset_s : float, default 0
        Hours of day are reported at this offset from UTC.
    session_start : Series or dict, optional
        Session id → start time, for the offer timing (see :func:`nextchannel.facts.offer_times_s`).
    dpi : int, default 110

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValidationError
        Bad inputs (before anything is written); ``path`` exists and ``overwrite`` is False, or
        it is not a report folder.
    OSError
        The file system failed; ``path`` is left as it was.
    """
    path = pathlib.Path(path)
    if path.name in ("", ".", ".."):
        raise ValidationError(f"path must name a report folder, got {os.fspath(path)!r}")
    if not isinstance(title, str) or not title.strip():
        raise ValidationError(f"title must be a non-empty string, got {title!r}")
    sections, figs = _build(decisions, truth, logs, policy_values, calibration, qini, capacity_per_hour,
                            utc_offset_s, session_start)

    def fill(tmp: pathlib.Path) -> None:
        images: dict[str, bytes] = {}
        for name in REPORT_FILES:
            if name in figs:
                fig = figs[name]()
                fig.savefig(tmp / name, dpi=dpi, format="png")
                images[name] = (tmp / name).read_bytes()
        (tmp / "index.html").write_text(_render_html(title, sections, images), encoding="utf-8")
        (tmp / "report.md").write_text(_render_md(title, sections, images), encoding="utf-8")

    _publish(path, fill, overwrite)
    logger.info("wrote report %s (%d figures)", path, len(figs))
    return path


def _read_csv(path: str | os.PathLike[str], what: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValidationError(f"{what} must be a readable CSV file, could not read {os.fspath(path)!r}: {err}") from err
    for col in ("reasons", "why_not"):
        if col in frame.columns:
            frame[col] = frame[col].fillna("").astype(str)
    return frame


def report_from_files(decisions_csv: str | os.PathLike[str], out: str | os.PathLike[str],
                      truth_csv: str | os.PathLike[str] | None = None, *,
                      logs_csv: str | os.PathLike[str] | None = None,
                      capacity_per_hour: Mapping[str, Any] | None = None, utc_offset_s: float = 0.0,
                      title: str = "nextchannel policy report", overwrite: bool = True) -> pathlib.Path:
    """:func:`write_report` from CSV files (for the ``nextchannel report`` command).

    Rows of ``truth_csv`` and ``logs_csv`` are matched to ``decisions_csv`` by position (same
    number of rows, same order). Empty ``reasons``/``why_not`` cells are read as "".

    Examples
    --------
    >>> import pandas as pd, pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"session_id": ["a", "b"], "ts": [0.0, 9.0], "action": ["chat", "none"],
    ...               "reasons": ["idle 40 s on cart", ""]}).to_csv(root / "d.csv", index=False)
    >>> (report_from_files(root / "d.csv", root / "report") / "top_reasons.png").is_file()
    True
    """
    decisions = _read_csv(decisions_csv, "decisions_csv")
    truth = None if truth_csv is None else _read_csv(truth_csv, "truth_csv")
    logs = None if logs_csv is None else _read_csv(logs_csv, "logs_csv")
    return write_report(out, decisions=decisions, truth=truth, logs=logs, capacity_per_hour=capacity_per_hour,
                        utc_offset_s=utc_offset_s, title=title, overwrite=overwrite)
