"""The retraining job: windowed logs → challenger → gate against the champion → versioned publish.

Where it sits: on top of training, evaluation and bundles; what a scheduler runs every night or
week (``nextchannel retrain``, or :func:`retrain` from Python)::

    logs (CSV / Parquet / JSON lines, files or folders, or DataFrames)
      → time window (since/until or the last N days) → time-based split (earlier: train, later: test)
      → challenger = train(earlier part)      champion = <root>/current (if any)
      → compare(logs, champion=..., challenger=...) on the later part (doubly robust, paired interval)
      → rule (not-worse | non-inferior | better) → publish to <root>/<version>/ and flip <root>/current
      → run report (policy report, comparison, drift, channel demand) + one-line JSON summary

Idempotent: training is deterministic for its ``random_state``, the bundle's bytes depend only on
the inputs, and the version is the bundle's content hash, so a second run on the same inputs finds
its challenger already published and publishes nothing (status ``"unchanged"``).

Exit codes (:data:`EXIT_CODES`): 0 published (or unchanged: ``current`` already holds this
bundle), 3 champion kept, 2 bad input (the message names the file, column and rows), 1 anything
else.

Examples
--------
>>> import pathlib, tempfile
>>> from nextchannel import simulate, TrainConfig
>>> sim = simulate(1200, seed=5)
>>> root = pathlib.Path(tempfile.mkdtemp()) / "models"
>>> cfg = TrainConfig(n_estimators=10, offer_n_estimators=5, value_n_estimators=10)
>>> r = retrain(decisions=sim.decisions, events=sim.events, root=root, config=cfg, report=False)
>>> r.status, r.exit_code, (root / "current").is_symlink()
('published', 0, True)
>>> retrain(decisions=sim.decisions, events=sim.events, root=root, config=cfg, report=False).status
'unchanged'
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import logging
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nextchannel.compat import is_dask_collection, training_module
from nextchannel.errors import ConfigError, DriftWarning, ValidationError

__all__ = ["retrain", "RetrainResult", "read_table", "table_files", "gate_passes", "EXIT_CODES", "RULES"]

logger = logging.getLogger(__name__)

#: Exit codes of the job, by status.
EXIT_CODES: dict[str, int] = {"published": 0, "unchanged": 0, "champion_kept": 3, "bad_input": 2, "error": 1}
#: Rules of the gate: ``not-worse`` publishes unless the challenger is significantly worse (the burden of
#: proof on the champion: an under-powered comparison publishes); ``non-inferior`` only if the lower
#: bound of the paired interval is at least ``-margin`` (the burden of proof on the challenger: shown to
#: lose at most ``margin`` per decision point); ``better``
#: only if it is significantly better.
RULES: tuple[str, ...] = ("not-worse", "non-inferior", "better")
_TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".jsonl", ".json")


# ---------------------------------------------------------------------------------------------
# Reading inputs
# ---------------------------------------------------------------------------------------------
def _read_one(path: pathlib.Path, what: str) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            try:
                import pyarrow  # noqa: F401
            except ImportError as err:
                raise ValidationError(f"{what} {os.fspath(path)!r} is Parquet, which needs pyarrow: "
                                      f'pip install "nextchannel[parquet]"') from err
            return pd.read_parquet(path)
        if name.endswith((".jsonl", ".json")):
            return pd.read_json(path, lines=True)
        return pd.read_csv(path)
    except ValidationError:
        raise
    except Exception as err:  # parsers raise many types; all mean "not a readable table"
        raise ValidationError(f"{what} {os.fspath(path)!r} is not a readable "
                              f"{'Parquet' if name.endswith(('.parquet', '.pq')) else 'JSON lines' if name.endswith(('.jsonl', '.json')) else 'CSV'} "
                              f"file: {err}") from err


def read_table(source: Any, what: str = "table") -> pd.DataFrame | None:
    """A table from a DataFrame, a file (CSV, Parquet, JSON lines) or a folder of such files.

    The rows keep where they came from in two columns, ``_source`` (file name) and ``_row``
    (1-based data row in that file), so that an error can name them; :func:`retrain` drops them.

    Parameters
    ----------
    source : DataFrame, str, path-like or None
        A folder is read file by file in name order (files of every supported type, recursively:
        the service writes ``<dir>/<kind>/<worker>.jsonl``).
    what : str
        What the table is (for messages), e.g. ``"decisions"``.

    Returns
    -------
    DataFrame or None
        None for ``source=None``.

    Raises
    ------
    ValidationError
        A missing path, an empty folder, an unreadable file.

    Examples
    --------
    >>> import pandas as pd, pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"a": [1, 2]}).to_csv(d / "x.csv", index=False)
    >>> read_table(d, "decisions")[["a", "_source", "_row"]].to_numpy().tolist()
    [[1, 'x.csv', 1], [2, 'x.csv', 2]]
    """
    if source is None:
        return None
    if isinstance(source, pd.DataFrame):
        out = source.copy()
        out["_source"] = f"<{what} DataFrame>"
        out["_row"] = np.arange(len(out))  # 0-based position, as pandas users count
        return out
    if is_dask_collection(source):
        return source
    path = pathlib.Path(source)
    files = table_files(path, what)
    parts = []
    for f in files:
        t = _read_one(f, what)
        t["_source"] = os.fspath(f.relative_to(path)) if path.is_dir() else f.name
        t["_row"] = np.arange(1, len(t) + 1)
        parts.append(t)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def table_files(path: pathlib.Path, what: str) -> list[pathlib.Path]:
    """The table files of a path: the file itself, or a folder's CSV/Parquet/JSON-lines files (recursively,
    in name order; hidden files skipped)."""
    if not path.exists():
        raise ValidationError(f"{what} must be a file or folder of CSV/Parquet/JSON-lines files, "
                              f"{os.fspath(path)!r} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                and p.name.lower().endswith(_TABLE_SUFFIXES)
                                                and not p.name.startswith("."))
    if not files:
        raise ValidationError(f"{what} folder {os.fspath(path)!r} holds no {'/'.join(_TABLE_SUFFIXES)} files")
    return files


def _rows_text(frame: pd.DataFrame, mask: np.ndarray, column: str, limit: int = 5) -> str:
    idx = np.flatnonzero(mask)
    shown = frame.iloc[idx[:limit]]
    where = ", ".join(f"{s} row {r} ({v!r})" for s, r, v in zip(shown["_source"], shown["_row"], shown[column]))
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"{len(idx)} row(s): {where}{more}"


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        src = sorted(set(frame["_source"].astype(str)))[:3] if "_source" in frame.columns else []
        raise ValidationError(f"{what} ({', '.join(src)}) must have columns {list(columns)}, missing {missing}")


def _numeric(frame: pd.DataFrame, column: str, what: str, *, lo: float = -math.inf, hi: float = math.inf,
             expected: str = "a finite number") -> np.ndarray:
    v = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(v) | (v < lo) | (v > hi)
    if bad.any():
        raise ValidationError(f"{what}.{column} must be {expected}; {_rows_text(frame, bad, column)}")
    return v


def _boolean(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    s = frame[column]
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=bool)
    norm = s.map(lambda x: {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}.get(str(x).strip().lower(),
                                                                                                      math.nan))
    bad = norm.isna().to_numpy()
    if bad.any():
        raise ValidationError(f"{what}.{column} must be true/false (or 1/0); {_rows_text(frame, bad, column)}")
    return norm.to_numpy(dtype=float) > 0


def _parse_time(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ValidationError(f"{name} must be a date, a datetime or epoch seconds, got {value!r}")
        return float(value)
    if isinstance(value, (_dt.datetime, _dt.date, pd.Timestamp, str)):
        try:
            if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
                return float(value)
            ts = pd.Timestamp(value)
        except (ValueError, TypeError) as err:
            raise ValidationError(f"{name} must be a date, a datetime (ISO 8601) or epoch seconds, got {value!r}") from err
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        return ts.timestamp()
    raise ValidationError(f"{name} must be a date, a datetime (ISO 8601) or epoch seconds, got {value!r}")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrainResult:
    """What :func:`retrain` did.

    Attributes
    ----------
    status : {"published", "unchanged", "champion_kept"}
        ``unchanged``: the challenger's bundle is the one ``current`` already names.
    exit_code : int
        :data:`EXIT_CODES` of the status.
    reason : str
        One sentence for a person.
    version : str or None
        What ``<root>/current`` names after the run.
    champion_version, challenger_version : str or None
        Bundle versions (folder names) of the champion before the run and of the challenger
        (None when the challenger was not published).
    model_version : str
        The challenger's model content hash.
    comparison : dict or None
        :meth:`nextchannel.evaluate.Comparison.to_dict` of champion vs challenger on the test part.
    drift : dict or None
        :meth:`nextchannel.drift.Drift.to_dict` (training part vs test part).
    window : dict
        since / split / until (ISO, UTC) and the rows of each part.
    report : str or None
        The run's report folder.
    seconds : float
        Wall time of the job.
    """

    status: str
    exit_code: int
    reason: str
    version: str | None
    champion_version: str | None
    challenger_version: str | None
    model_version: str
    comparison: dict[str, Any] | None
    drift: dict[str, Any] | None
    window: dict[str, Any] = field(default_factory=dict)
    report: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The one-line summary a scheduler logs (small: headline numbers, not the tables)."""
        c = self.comparison
        d = self.drift
        return {"status": self.status, "exit_code": self.exit_code, "reason": self.reason, "version": self.version,
                "champion": self.champion_version, "challenger": self.challenger_version,
                "model_version": self.model_version,
                "comparison": None if c is None else {
                    "estimator": c["estimator"], "champion": round(c["champion"]["value"], 6),
                    "challenger": round(c["challenger"]["value"], 6), "difference": round(c["difference"], 6),
                    "low": round(c["low"], 6), "high": round(c["high"], 6), "verdict": c["verdict"], "n": c["n"]},
                "drift": None if d is None else {"drifted": d["drifted"], "max_feature_psi": round(d["max_feature_psi"], 6),
                                                 "action_psi": d["action_psi"]},
                "window": self.window, "report": self.report, "seconds": round(self.seconds, 3)}

    def to_json(self) -> str:
        """:meth:`summary` as one line of JSON."""
        return json.dumps(self.summary(), sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def _load_champion(root: pathlib.Path) -> tuple[Any, str | None]:
    from nextchannel.bundle import current_version
    from nextchannel.modelset import ModelSet

    version = current_version(root) if root.is_dir() else None
    if version is None:
        return None, None
    return ModelSet.load(root), version


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------
def _prepare(decisions: pd.DataFrame, policy: Any) -> pd.DataFrame:
    _require_columns(decisions, ["session_id", "ts", "action", "propensity", "accepted", "success"], "decisions")
    d = decisions.copy()
    d["ts"] = _numeric(d, "ts", "decisions", expected="a finite number (epoch seconds)")
    d["propensity"] = _numeric(d, "propensity", "decisions", lo=0.0, hi=1.0,
                               expected="a number in [0, 1] (the logged action's probability)")
    bad = ~d["action"].isin(list(policy.actions)).to_numpy()
    if bad.any():
        raise ValidationError(f"decisions.action must be one of {list(policy.actions)}; {_rows_text(d, bad, 'action')}")
    zero = (d["propensity"].to_numpy() <= 0)
    if zero.any():
        raise ValidationError("decisions.propensity must be > 0 for a logged action (it was chosen); "
                              f"{_rows_text(d, zero, 'propensity')}")
    for col in ("accepted", "success", "left", "dismissed"):
        if col in d.columns:
            d[col] = _boolean(d, col, "decisions")
    miss = d["session_id"].isna().to_numpy()
    if miss.any():
        raise ValidationError(f"decisions.session_id must not be empty; {_rows_text(d, miss, 'session_id')}")
    return d


def _prepare_events(events: pd.DataFrame) -> pd.DataFrame:
    _require_columns(events, ["session_id", "ts", "type"], "events")
    e = events
    e_ts = pd.to_numeric(e["ts"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(e_ts)
    if bad.any():
        raise ValidationError(f"events.ts must be a finite number (epoch seconds); {_rows_text(e, bad, 'ts')}")
    e = e.copy()
    e["ts"] = e_ts
    return e


def _split_point(decisions: pd.DataFrame, test_fraction: float, test_days: float | None) -> tuple[np.ndarray, float]:
    """Sessions go wholly to one part, by their first decision: no session straddles the split."""
    first = decisions.groupby("session_id", sort=False)["ts"].transform("min").to_numpy(dtype=float)
    if test_days is not None:
        split = float(decisions["ts"].max()) - float(test_days) * 86400.0
    else:
        split = float(np.quantile(first, 1.0 - test_fraction))
    return first >= split, split


def _strip(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    if frame is None or is_dask_collection(frame):
        return frame
    return frame.drop(columns=[c for c in ("_source", "_row") if c in frame.columns])


def _input_digest(frames: Sequence[pd.DataFrame | None], texts: Sequence[str]) -> str:
    """sha256 over the tables' column names and row hashes (column order ignored) and the settings."""
    h = hashlib.sha256()
    for f in frames:
        if f is None:
            h.update(b"<none>")
            continue
        cols = sorted(map(str, f.columns))
        h.update(json.dumps(cols).encode())
        if len(f):
            h.update(pd.util.hash_pandas_object(f[cols], index=False).to_numpy().tobytes())
    for t in texts:
        h.update(t.encode())
    return h.hexdigest()


def _md_table(frame: pd.DataFrame, floatfmt: str = "{:.4g}", index: bool = True) -> str:
    f = frame.reset_index() if index else frame
    cols = [str(c) for c in f.columns]

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if v != v else floatfmt.format(v)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in f.itertuples(index=False)]
    return "\n".join(lines)


def retrain(*, decisions: Any, root: str | os.PathLike[str], events: Any = None, outcomes: Any = None,
            customers: Any = None, contacts: Any = None, features: Any = None, policy: Any = None,
            config: Any = None, since: Any = None, until: Any = None, window_days: float | None = None,
            test_fraction: float = 0.25, test_days: float | None = None, require: str = "not-worse",
            min_effect: float = 0.0, margin: float = 0.0, keep: int = 5, report: str | os.PathLike[str] | bool | None = None,
            drift_threshold: float | None = None, utc_offset_s: float = 0.0, progress: bool = False,
            dask: Any = None) -> RetrainResult:
    """Retrain on a window of logs, gate the challenger against the champion, publish if it passes.

    Parameters
    ----------
    decisions : DataFrame, str or path-like
        Decision log (with outcomes ``accepted``, ``success``, ...; or joined from ``outcomes``):
        a DataFrame, or a CSV / Parquet / JSON-lines file or folder of them (:func:`read_table`).
    root : str or path-like
        The publish root: versions in ``<root>/<version>/``, ``<root>/current`` names the champion.
    events : DataFrame, str or path-like
        Event log (point-in-time features are rebuilt from it). Required.
    outcomes : DataFrame, str or path-like, optional
        Outcome log of the service (``decision_id``, ``outcome``), joined onto the decisions.
    customers, contacts : DataFrame, str or path-like, optional
        Customer table and contact history (profile features).
    features : DataFrame, str or path-like, optional
        The team's own per-decision features, one row per decision row (passed to ``train``).
    policy : PolicyConfig, dict, str or path-like, optional
        Business values (a JSON file or a dict); default ``PolicyConfig()``.
    config : TrainConfig, dict, str or path-like, optional
        Learner settings; default ``TrainConfig()``.
    since, until : str, datetime or float, optional
        The window ``[since, until)`` (ISO 8601, UTC if no zone; or epoch seconds).
    window_days : float, optional
        The window is the last ``window_days`` days before ``until`` (default: the last decision).
    test_fraction : float, default 0.25
        Share of the window's sessions (the latest) held out to compare champion and challenger.
    test_days : float, optional
        Hold out the last ``test_days`` days instead.
    require : {"not-worse", "non-inferior", "better"}, default "not-worse"
        The gate's rule on :func:`nextchannel.evaluate.compare` (DR, 95% paired interval):
        ``not-worse`` publishes unless the verdict is ``worse``; ``non-inferior`` publishes only if
        the interval's lower bound is at least ``-margin`` (a regression larger than ``margin`` is
        ruled out; an interval too wide to rule it out keeps the champion); ``better`` only if the
        verdict is ``better``.
    min_effect : float, default 0
        Margin of the verdict (reward units per decision point).
    margin : float, default 0
        The loss per decision point ``non-inferior`` tolerates (reward units, >= 0).
    keep : int, default 5
        Versions kept in ``root``.
    report : str, path-like, bool or None
        The run's report folder; default ``<root>-reports/<model_version>``; False: none.
    drift_threshold : float, optional
        PSI over which drift warns (default :data:`nextchannel.drift.DEFAULT_THRESHOLD`).
    utc_offset_s : float, default 0
        The service clock's offset from UTC (opening hours in the demand section).
    progress : bool, default False
        Progress bars (tqdm, on stderr).
    dask : distributed.Client, str or None
        Featurise and train on a Dask cluster (a client, or a scheduler address; see
        :mod:`nextchannel.dask_backend`). Inputs may then be Dask DataFrames.

    Returns
    -------
    RetrainResult

    Raises
    ------
    ValidationError, ConfigError
        Bad input (exit code 2): the message names the file, column and rows.
    """
    from tqdm.auto import tqdm

    from nextchannel.bundle import current_version, publish
    from nextchannel.drift import DEFAULT_THRESHOLD, measure_drift
    from nextchannel.evaluate import compare
    from nextchannel.features import CATEGORICAL_FEATURES, features_many
    from nextchannel.policy import PolicyConfig
    from nextchannel.scorer import Scorer

    t0 = time.perf_counter()
    tm = training_module()
    if require not in RULES:
        raise ConfigError(f"require must be one of {list(RULES)}, got {require!r}")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
        raise ConfigError(f"margin must be a finite number >= 0 (reward per decision point), got {margin!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"keep must be an integer >= 1, got {keep!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    for name, v in (("window_days", window_days), ("test_days", test_days)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
            raise ConfigError(f"{name} must be a number of days > 0, got {v!r}")
    if events is None:
        raise ValidationError("events must be given (an event log file, folder or DataFrame), got None")
    policy = _config(policy, PolicyConfig, "policy")
    config = _config(config, tm.TrainConfig, "config")
    root = pathlib.Path(root)
    bar = tqdm(total=6, desc="retrain", unit="step", disable=not progress, file=sys.stderr)

    bar.set_postfix_str("read")
    dec = read_table(decisions, "decisions")
    if outcomes is not None:  # the service's own join (one definition)
        from nextchannel.web.logs import join_outcomes

        dec = join_outcomes(dec, outcomes=read_table(outcomes, "outcomes"))
    # With Dask, an event log given as files (or as a Dask DataFrame) stays on the cluster: it is read,
    # checked, windowed, hashed and featurised by the workers, never collected here.
    lazy = is_dask_collection(events) or (dask is not None and not isinstance(events, pd.DataFrame))
    if lazy:
        from nextchannel import dask_backend
        from nextchannel.compat import import_dask

        dask = dask_backend._as_client(dask, import_dask()[1])
        ev, ev_files = dask_backend.read_events(events)
    else:
        ev = read_table(events, "events")
    cust, cont = read_table(customers, "customers"), read_table(contacts, "contacts")
    own = read_table(features, "features")
    dec = _prepare(dec, policy)
    if not lazy:
        ev = _prepare_events(ev)
    if own is not None and len(own) != len(dec):
        raise ValidationError(f"features must have one row per decision row: expected {len(dec)}, got {len(own)}")

    lo, hi = _parse_time(since, "since"), _parse_time(until, "until")
    if window_days is not None:
        if lo is not None and hi is not None:
            raise ConfigError("give since and until, or window_days (with until or not), not all three")
        hi_w = hi if hi is not None else float(dec["ts"].max()) + 1e-6
        lo = hi_w - float(window_days) * 86400.0
        hi = hi_w
    in_window = np.ones(len(dec), dtype=bool)
    if lo is not None:
        in_window &= dec["ts"].to_numpy() >= lo
    if hi is not None:
        in_window &= dec["ts"].to_numpy() < hi
    dec = dec.loc[in_window]
    own = None if own is None else own.loc[in_window]
    if len(dec) < 200:
        raise ValidationError(f"decisions in the window [{_iso(lo)}, {_iso(hi)}) must be at least 200 to train and "
                              f"test on, got {len(dec)}")
    sessions = pd.unique(dec["session_id"])
    if lazy:
        ev = dask_backend.window_events(ev, files=ev_files, until=hi, sessions=sessions)
    else:
        ev = ev.loc[ev["session_id"].isin(sessions).to_numpy()]
        if hi is not None:
            ev = ev.loc[ev["ts"].to_numpy() < hi]
    is_test, split = _split_point(dec, test_fraction, test_days)
    n_test, n_train = int(is_test.sum()), int((~is_test).sum())
    if n_test < 100 or n_train < 100:
        raise ValidationError(f"the time split at {_iso(split)} leaves {n_train} decisions to train on and {n_test} to "
                              f"test on; each part needs at least 100 (widen the window or change test_fraction/test_days)")
    window = {"since": _iso(lo if lo is not None else float(dec["ts"].min())), "split": _iso(split),
              "until": _iso(hi if hi is not None else float(dec["ts"].max())), "train_rows": n_train,
              "test_rows": n_test}
    bar.update()

    dec_clean = _strip(dec).reset_index(drop=True)
    ev_clean, cust_clean, cont_clean = _strip(ev), _strip(cust), _strip(cont)
    own_clean = None if own is None else _strip(own).reset_index(drop=True)
    digest = _input_digest([dec_clean, None if lazy else ev_clean, cust_clean, cont_clean, own_clean],
                           [config.to_json(), policy.to_json(), repr(split), "dask" if dask is not None else "pandas",
                            dask_backend.digest(ev_clean, client=dask) if lazy else ""])
    champion, champion_version = _load_champion(root)
    if champion is not None and champion.meta.get("input_digest") == digest:
        # Same inputs as the champion's own run: nothing to train, nothing to publish.
        bar.close()
        reason = f"the champion was trained on exactly these inputs (digest {digest[:12]}); nothing published"
        return RetrainResult("unchanged", EXIT_CODES["unchanged"], reason, champion_version, champion_version,
                             champion_version, champion.version, None, None, window, None, time.perf_counter() - t0)

    bar.set_postfix_str("features")
    at_cols = ["session_id", "ts"] + (["customer_id"] if "customer_id" in dec_clean.columns else [])
    fm_kwargs = dict(with_profile=True, profile_config=None)
    if cust_clean is not None or cont_clean is not None:
        fm_kwargs.update(customers=cust_clean, contacts=cont_clean)
    if dask is not None:
        from nextchannel import dask_backend

        X_all = dask_backend.features_many(dec_clean[at_cols], events=ev_clean, client=dask, **fm_kwargs)
    else:
        X_all = features_many(dec_clean[at_cols], events=ev_clean, **fm_kwargs)
    train_rows, test_rows = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    bar.update()

    bar.set_postfix_str("train")
    train_kwargs: dict[str, Any] = dict(decisions=dec_clean.iloc[train_rows].reset_index(drop=True),
                                        events=ev_clean, customers=cust_clean, contacts=cont_clean,
                                        config=config, policy=policy)
    if own_clean is not None:
        if "features" not in inspect.signature(tm.train).parameters:
            raise ConfigError("features= needs a train() that takes the team's own features; this one does not")
        train_kwargs["features"] = own_clean.iloc[train_rows].reset_index(drop=True)
    if dask is not None:
        from nextchannel import dask_backend

        challenger = dask_backend.train(client=dask, **train_kwargs)
    else:
        challenger = tm.train(progress=progress, **train_kwargs)
    bar.update()

    challenger.meta["input_digest"] = digest
    bar.set_postfix_str("compare")
    test = dec_clean.iloc[test_rows]
    X_test = X_all.iloc[test_rows]
    logs = pd.DataFrame({"action": test["action"].to_numpy(), "propensity": test["propensity"].to_numpy(),
                         "reward": tm.logged_reward(test, policy)}, index=test.index)

    def decide(ms: Any) -> pd.DataFrame:
        frame = pd.concat([test, X_test.drop(columns=[c for c in X_test.columns if c in test.columns])], axis=1)
        if own_clean is not None:
            own_test = own_clean.iloc[test_rows].set_axis(test.index)
            frame = pd.concat([frame, own_test.drop(columns=[c for c in own_test.columns if c in frame.columns])],
                              axis=1)
        if all(c in frame.columns for c in ms.feature_names):
            return Scorer(ms).decide_many(frame)
        # a champion with other features: its own featurisation, on the test sessions' events only
        ev_test = dask_backend.collect_events(ev_clean, session_ids=test["session_id"]) if lazy else ev_clean
        return Scorer(ms).decide_many(test, events=ev_test, customers=cust_clean, contacts=cont_clean)

    out_ch = decide(challenger)
    comparison = None
    out_cp = None
    if champion is not None and tuple(champion.actions) == tuple(policy.actions):
        out_cp = decide(champion)
        # The reward model of DR is the mean of both models' values: unbiased whichever is used (the
        # propensities are logged), and favouring neither.
        ev_cols = [f"ev_{a}" for a in policy.actions]
        hat = (out_ch[ev_cols].to_numpy() + out_cp[ev_cols].to_numpy()) / 2.0
        comparison = compare(logs, champion=out_cp, challenger=out_ch, actions=list(policy.actions), reward_hat=hat,
                             estimator="dr", min_effect=min_effect)
    bar.update()

    bar.set_postfix_str("drift")
    X_train = X_all.iloc[train_rows]
    test_span_days = (float(test["ts"].max()) - float(test["ts"].min())) / 86400.0
    if test_span_days < 6.5 and "weekday" in X_all.columns:
        # A held-out slice shorter than a week has another weekday mix by construction, not by drift.
        X_train, X_test_drift = X_train.drop(columns="weekday"), X_test.drop(columns="weekday")
    else:
        X_test_drift = X_test
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DriftWarning)
        dr = measure_drift(X_train, X_test_drift, reference_actions=dec_clean["action"].iloc[train_rows],
                           current_actions=test["action"], actions=policy.actions,
                           categorical=CATEGORICAL_FEATURES,
                           threshold=DEFAULT_THRESHOLD if drift_threshold is None else drift_threshold)
    for w in caught:  # re-issued from here, so a caller's filters apply to the job
        warnings.warn(w.message, w.category, stacklevel=2)
    bar.update()

    # Decide, then publish.
    with tempfile.TemporaryDirectory(prefix="nextchannel-retrain-") as tmp:
        bundle_dir = challenger.save(pathlib.Path(tmp) / "bundle")
        same = champion is not None and champion.version == challenger.version
        if same:
            status, reason = "unchanged", f"current already holds this model ({challenger.version}); nothing published"
        elif champion is None:
            status, reason = "published", "no champion under root yet; the challenger is published"
        elif comparison is None:
            status, reason = "published", "the champion's actions differ from the policy's; the challenger replaces it"
        else:
            passes = gate_passes(comparison, require, margin)
            status = "published" if passes else "champion_kept"
            reason = (f"challenger - champion = {comparison.difference:+.4f} per decision point "
                      f"[{comparison.low:+.4f}, {comparison.high:+.4f}] ({comparison.verdict}); rule {require}"
                      f"{f' (margin {margin:g})' if require == 'non-inferior' else ''}: "
                      f"{'publish' if passes else 'keep the champion'}")
        bar.set_postfix_str("publish")
        published_version = None
        if status == "published":
            published_version = publish(bundle_dir, root, keep=keep).name
        elif status == "unchanged":
            published_version = champion_version
        version = current_version(root) if root.is_dir() else None
    bar.update()
    bar.close()

    report_path = None
    if report is not False:
        report_path = pathlib.Path(report) if report not in (None, True) else \
            root.with_name(root.name + "-reports") / challenger.version
        _write_run_report(report_path, status=status, reason=reason, window=window, comparison=comparison,
                          drift=dr, challenger=challenger, X_test=X_test, test=test, out_ch=out_ch, logs=logs,
                          events=None if lazy else ev_clean, utc_offset_s=utc_offset_s)
    res = RetrainResult(status, EXIT_CODES[status], reason, version, champion_version,
                        published_version,
                        challenger.version, None if comparison is None else comparison.to_dict(), dr.to_dict(),
                        window, None if report_path is None else os.fspath(report_path), time.perf_counter() - t0)
    logger.info("retrain: %s (%s)", status, reason)
    return res


def gate_passes(comparison: Any, require: str, margin: float = 0.0) -> bool:
    """Whether a challenger passes the gate's rule (:data:`RULES`) on a champion-vs-challenger comparison.

    Examples
    --------
    >>> from types import SimpleNamespace as C
    >>> wide = C(verdict="not distinguishable", low=-0.6, high=0.2)
    >>> [gate_passes(wide, r, margin=0.1) for r in RULES]
    [True, False, False]
    """
    if require == "better":
        return comparison.verdict == "better"
    if require == "non-inferior":
        return float(comparison.low) >= -float(margin)
    return comparison.verdict != "worse"


def _config(value: Any, cls: Any, name: str) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls.from_dict(value)
    if isinstance(value, (str, os.PathLike)):
        path = pathlib.Path(value)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{name} must be a readable {cls.__name__} JSON file, could not read "
                              f"{os.fspath(path)!r}: {err}") from err
        try:
            return cls.from_json(text)
        except ConfigError as err:
            raise ConfigError(f"{name} file {os.fspath(path)!r}: {err}") from err
    raise ConfigError(f"{name} must be a {cls.__name__}, a dict or a JSON file path, got {type(value).__name__}")


def _write_run_report(path: pathlib.Path, *, status: str, reason: str, window: Mapping[str, Any], comparison: Any,
                      drift: Any, challenger: Any, X_test: pd.DataFrame, test: pd.DataFrame, out_ch: pd.DataFrame,
                      logs: pd.DataFrame, events: pd.DataFrame, utc_offset_s: float) -> None:
    """The run's folder: the policy report of the challenger on the test part, plus comparison, drift
    and channel demand (``run.md`` links them; tables also as CSV/JSON)."""
    from nextchannel.demand import channel_demand
    from nextchannel.plots import plot_demand_by_hour, plot_unserved
    from nextchannel.report import _publish as publish_folder
    from nextchannel.report import write_report

    demand = channel_demand(test, model_set=challenger, X=X_test, events=events, utc_offset_s=utc_offset_s, what_ifs=True)
    values = None
    if comparison is not None:
        values = pd.DataFrame({k: [getattr(comparison, who).value, getattr(comparison, who).low,
                                   getattr(comparison, who).high][i] for i, k in enumerate(("value", "low", "high"))}
                              for who in ("champion", "challenger"))
        values.index = ["champion (DR)", "challenger (DR)"]

    def fill(tmp: pathlib.Path) -> None:
        with tempfile.TemporaryDirectory(prefix="nextchannel-report-") as rtmp:
            rp = write_report(pathlib.Path(rtmp) / "policy", decisions=out_ch.assign(session_id=test["session_id"].to_numpy(),
                                                                                       ts=test["ts"].to_numpy()),
                              logs=logs, policy_values=values, utc_offset_s=utc_offset_s,
                              title="nextchannel retrain: the challenger on the held-out logs")
            for f in rp.iterdir():
                shutil.copyfile(f, tmp / f.name)
        for name, fig in (("demand_by_hour.png", plot_demand_by_hour(demand.by_hour)),
                          ("unserved.png", plot_unserved(demand.unserved, demand.n))):
            fig.savefig(tmp / name, dpi=110, format="png")
        drift.features.to_csv(tmp / "drift_features.csv")
        if drift.actions is not None:
            drift.actions.to_csv(tmp / "action_mix.csv")
        demand.by_hour.to_csv(tmp / "demand_by_hour.csv")
        demand.unserved.to_csv(tmp / "demand_unserved.csv", index=False)
        demand.languages.to_csv(tmp / "demand_languages.csv")
        demand.pages.to_csv(tmp / "demand_pages.csv")
        demand.what_ifs.to_csv(tmp / "demand_what_ifs.csv", index=False)
        facts = {"status": status, "reason": reason, "window": dict(window),
                 "comparison": None if comparison is None else comparison.to_dict(), "drift": drift.to_dict(),
                 "demand": demand.to_dict(), "model_version": challenger.version}
        (tmp / "run.json").write_text(json.dumps(facts, indent=1, sort_keys=True, default=str), encoding="utf-8")
        lines = [f"# Retrain run: {status}", "", reason, "",
                 f"Window {window['since']} – {window['until']}, split at {window['split']}: "
                 f"{window['train_rows']} decisions to train on, {window['test_rows']} held out.", "",
                 "The policy report of the challenger on the held-out logs: [index.html](index.html).", ""]
        if comparison is not None:
            lines += ["## Champion vs challenger (held-out logs)", "",
                      _md_table(pd.DataFrame({"value": [comparison.champion.value, comparison.challenger.value,
                                                        comparison.difference],
                                              "low": [comparison.champion.low, comparison.challenger.low, comparison.low],
                                              "high": [comparison.champion.high, comparison.challenger.high,
                                                       comparison.high]},
                                             index=pd.Index(["champion", "challenger", "difference"], name="policy"))),
                      "", f"Estimator {comparison.estimator}, {comparison.ci:.0%} paired interval, n = {comparison.n}; "
                          f"verdict: **{comparison.verdict}**.", ""]
        lines += ["## Drift (training part vs held-out part)", "",
                  f"Population stability index; over {drift.threshold:g} counts as drifted: "
                  f"{', '.join(drift.drifted) if drift.drifted else 'nothing'}. Action mix PSI "
                  f"{drift.action_psi:.3f}." if drift.action_psi is not None else "", "",
                  _md_table(drift.features.head(12)[["psi", "kind", "missing_reference", "missing_current"]]), ""]
        if drift.actions is not None:
            lines += [_md_table(drift.actions), ""]
        lines += ["## Channel demand (held-out logs, the challenger's value model)", "",
                  "![demand by hour](demand_by_hour.png)", "",
                  "*Bars: decision points per hour of day; blue: those where the best channel (all open, every "
                  "language, queues at their limit) beats no offer. Lines: the share of those at which each channel "
                  "was open.*", "",
                  f"Unserved demand (the best channel closed, over-queued or not in the visitor's language): "
                  f"{demand.value_lost_per_point:.4f} per decision point.", "",
                  _md_table(demand.unserved, index=False) if len(demand.unserved) else "None.", "",
                  "![unserved](unserved.png)", "", "### Languages", "", _md_table(demand.languages), "",
                  "### Pages visitors contacted from", "", _md_table(demand.pages.head(10)), "",
                  "### What if (change in the greedy policy's expected value per decision point)", "",
                  _md_table(demand.what_ifs, index=False) if len(demand.what_ifs) else "No channel to change.", ""]
        (tmp / "run.md").write_text("\n".join(lines), encoding="utf-8")

    publish_folder(path, fill, overwrite=True)
