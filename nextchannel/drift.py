"""Drift: how far the recent logs are from the window a model was trained on.

Where it sits: beside training, in the retraining job (:mod:`nextchannel.jobs`): features of the
training window and of the most recent days → **drift** → report and job summary.

Two measures, each a population stability index (PSI)::

    PSI = sum_b (c_b - r_b) * ln(c_b / r_b)

over bins ``b`` with reference shares ``r_b`` and current shares ``c_b`` (both floored at
:data:`MIN_SHARE` so that an empty bin counts as rare, not as infinitely surprising).

* **per feature** — numeric features are cut at the reference's quantiles (``bins`` bins; ties
  merge bins, so a count feature that is mostly 0 gets few bins); categorical features (codes such
  as ``device``, strings, booleans) get one bin per reference level and one for levels the
  reference never saw; missing values (NaN) always have a bin of their own, so a feature that
  starts arriving empty drifts;
* **the action mix** — the logged actions' shares, one bin per action.

The usual reading: below 0.1 stable, 0.1–0.25 a moderate shift, above 0.25 a large one. Over the
threshold (default :data:`DEFAULT_THRESHOLD`), :func:`measure_drift` warns with
:class:`~nextchannel.errors.DriftWarning`.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> ref = pd.DataFrame({"dwell_s": rng.exponential(30, 5000), "device": rng.integers(0, 3, 5000)})
>>> cur = pd.DataFrame({"dwell_s": rng.exponential(60, 2000), "device": rng.integers(0, 3, 2000)})
>>> res = measure_drift(ref, cur, categorical=["device"], warn=False)
>>> res.drifted
['dwell_s']
>>> bool(res.features.loc["device", "psi"] < 0.01)
True
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from nextchannel.errors import DriftWarning, ValidationError

__all__ = ["psi", "feature_psi", "action_mix", "measure_drift", "Drift", "DEFAULT_THRESHOLD", "MIN_SHARE"]

logger = logging.getLogger(__name__)

#: PSI above which :func:`measure_drift` warns (a large shift in the usual reading).
DEFAULT_THRESHOLD = 0.25
#: Floor of a bin's share in the PSI sum.
MIN_SHARE = 1e-4


def _is_categorical(s: pd.Series) -> bool:
    return bool(isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(s.dtype)
                or pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype))


def _psi_from_counts(ref: np.ndarray, cur: np.ndarray) -> float:
    r = np.maximum(ref / max(ref.sum(), 1), MIN_SHARE)
    c = np.maximum(cur / max(cur.sum(), 1), MIN_SHARE)
    return float(np.sum((c - r) * np.log(c / r)))


def _numeric_codes(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    finite = ref[~np.isnan(ref)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.array([])
    n_bins = len(edges) + 2  # value bins, then the NaN bin

    def code(x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), n_bins - 1, np.searchsorted(edges, x, side="right"))

    return code(ref), code(cur), n_bins


def _categorical_codes(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    levels = pd.Index(pd.unique(ref.dropna().astype(object)))
    n_bins = len(levels) + 2  # levels, then "unseen level", then missing

    def code(s: pd.Series) -> np.ndarray:
        idx = levels.get_indexer(s.astype(object))
        idx = np.where(idx < 0, len(levels), idx)
        return np.where(s.isna().to_numpy(), n_bins - 1, idx)

    return code(ref), code(cur), n_bins


def _as_series(x: Any, name: str) -> pd.Series:
    if isinstance(x, pd.Series):
        return x.reset_index(drop=True)
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValidationError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return pd.Series(arr)


def psi(reference: Any, current: Any, *, bins: int = 10, categorical: bool | None = None) -> float:
    """Population stability index of one variable between a reference and a current sample.

    Parameters
    ----------
    reference, current : array-like or Series, 1-d
        The variable in the reference window (its quantiles or levels define the bins) and in the
        current one. NaN / None count as missing and get a bin of their own.
    bins : int, default 10
        Quantile bins of a numeric variable (fewer when quantiles tie).
    categorical : bool, optional
        Bin by level instead of by quantile; default: for strings, booleans and pandas categoricals.

    Returns
    -------
    float
        >= 0; 0 when both samples fall into the bins in equal shares.

    Examples
    --------
    >>> psi([1, 2, 3, 4] * 50, [1, 2, 3, 4] * 20)
    0.0
    >>> round(psi(["chat"] * 90 + ["phone"] * 10, ["chat"] * 50 + ["phone"] * 50), 3)
    0.879
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValidationError(f"bins must be an integer >= 2, got {bins!r}")
    ref, cur = _as_series(reference, "reference"), _as_series(current, "current")
    if len(ref) == 0 or len(cur) == 0:
        raise ValidationError(f"reference and current must be non-empty, got {len(ref)} and {len(cur)} values")
    cat = _is_categorical(ref) if categorical is None else bool(categorical)
    if cat:
        rc, cc, n_bins = _categorical_codes(ref, cur)
    else:
        try:
            r = pd.to_numeric(ref).to_numpy(dtype=float, na_value=np.nan)
            c = pd.to_numeric(cur).to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as err:
            raise ValidationError(f"a numeric variable must hold numbers (or categorical=True), got {err}") from err
        rc, cc, n_bins = _numeric_codes(r, c, int(bins))
    return _psi_from_counts(np.bincount(rc, minlength=n_bins).astype(float),
                            np.bincount(cc, minlength=n_bins).astype(float))


def feature_psi(reference: pd.DataFrame, current: pd.DataFrame, *, bins: int = 10,
                categorical: Iterable[str] = ()) -> pd.DataFrame:
    """PSI of every column the two frames share, largest first.

    Parameters
    ----------
    reference, current : DataFrame
        Features of the reference (training) window and of the current (recent) one.
    bins : int, default 10
    categorical : iterable of str
        Columns to bin by level though numeric (codes such as ``device``); string, boolean and
        categorical columns are binned by level anyway.

    Returns
    -------
    DataFrame
        Index feature; columns ``psi``, ``kind`` (``"numeric"``/``"categorical"``),
        ``missing_reference`` and ``missing_current`` (shares of NaN).

    Examples
    --------
    >>> import pandas as pd
    >>> t = feature_psi(pd.DataFrame({"a": [0.0, 1.0] * 50}), pd.DataFrame({"a": [0.0, None] * 50}))
    >>> float(t.loc["a", "missing_current"]), bool(t.loc["a", "psi"] > 1)
    (0.5, True)
    """
    for name, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise ValidationError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    cats = set(categorical)
    rows = []
    for col in [c for c in reference.columns if c in current.columns]:
        cat = col in cats or _is_categorical(reference[col])
        rows.append({"feature": col, "psi": psi(reference[col], current[col], bins=bins, categorical=cat),
                     "kind": "categorical" if cat else "numeric",
                     "missing_reference": float(reference[col].isna().mean()),
                     "missing_current": float(current[col].isna().mean())})
    table = pd.DataFrame(rows, columns=["feature", "psi", "kind", "missing_reference", "missing_current"])
    return table.set_index("feature").sort_values("psi", ascending=False, kind="stable")


def action_mix(reference: Any, current: Any, actions: Sequence[str] | None = None) -> pd.DataFrame:
    """Shares of each logged action in the reference and the current window.

    Returns
    -------
    DataFrame
        Index action (``actions`` first, in order, then any other logged action); columns
        ``reference``, ``current`` (shares) and ``change`` (current - reference). ``attrs["psi"]``
        holds the action mix's PSI.

    Examples
    --------
    >>> t = action_mix(["none"] * 8 + ["chat"] * 2, ["none"] * 5 + ["chat"] * 5, actions=["none", "chat"])
    >>> t["change"].round(2).tolist(), round(t.attrs["psi"], 3)
    ([-0.3, 0.3], 0.416)
    """
    ref, cur = _as_series(reference, "reference").astype(object), _as_series(current, "current").astype(object)
    if len(ref) == 0 or len(cur) == 0:
        raise ValidationError(f"reference and current actions must be non-empty, got {len(ref)} and {len(cur)}")
    order = list(actions or [])
    order += [a for a in pd.unique(pd.concat([ref, cur], ignore_index=True)) if a not in order]
    r = ref.value_counts().reindex(order, fill_value=0).to_numpy(dtype=float)
    c = cur.value_counts().reindex(order, fill_value=0).to_numpy(dtype=float)
    table = pd.DataFrame({"reference": r / r.sum(), "current": c / c.sum()}, index=pd.Index(order, name="action"))
    table["change"] = table["current"] - table["reference"]
    table.attrs["psi"] = _psi_from_counts(r, c)
    return table


@dataclass(frozen=True)
class Drift:
    """Drift between a reference window and a current one (:func:`measure_drift`).

    Attributes
    ----------
    features : DataFrame
        :func:`feature_psi`'s table, with a boolean column ``drifted``.
    actions : DataFrame or None
        :func:`action_mix`'s table (None without actions).
    action_psi : float or None
    threshold : float
    drifted : list of str
        Features whose PSI exceeds the threshold, largest first (``"action mix"`` last if it drifted).
    n_reference, n_current : int
    """

    features: pd.DataFrame
    actions: pd.DataFrame | None
    action_psi: float | None
    threshold: float
    drifted: list[str] = field(default_factory=list)
    n_reference: int = 0
    n_current: int = 0

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """A small JSON-able summary: the ``top`` features by PSI, the action mix, what drifted."""
        feats = self.features.head(top)
        return {"threshold": self.threshold, "n_reference": self.n_reference, "n_current": self.n_current,
                "drifted": list(self.drifted),
                "max_feature_psi": float(self.features["psi"].max()) if len(self.features) else 0.0,
                "top_features": {k: round(float(v), 6) for k, v in feats["psi"].items()},
                "action_psi": None if self.action_psi is None else round(self.action_psi, 6),
                "action_mix": None if self.actions is None else
                {a: {"reference": round(float(r.reference), 6), "current": round(float(r.current), 6)}
                 for a, r in self.actions.iterrows()}}


def measure_drift(reference: pd.DataFrame, current: pd.DataFrame, *, reference_actions: Any = None,
          current_actions: Any = None, actions: Sequence[str] | None = None, categorical: Iterable[str] = (),
          bins: int = 10, threshold: float = DEFAULT_THRESHOLD, warn: bool = True) -> Drift:
    """Feature and action-mix drift between a reference (training) window and a current (recent) one.

    Parameters
    ----------
    reference, current : DataFrame
        Features at the decision points of each window (shared columns are compared).
    reference_actions, current_actions : array-like, optional
        Logged actions of each window; both or neither.
    actions : sequence of str, optional
        Order of the action-mix table.
    categorical : iterable of str
        Numeric columns that are codes (see :func:`feature_psi`).
    bins : int, default 10
    threshold : float, default :data:`DEFAULT_THRESHOLD`
        PSI above which a feature (or the action mix) counts as drifted.
    warn : bool, default True
        Emit one :class:`~nextchannel.errors.DriftWarning` naming what drifted.

    Returns
    -------
    Drift

    Examples
    --------
    >>> import pandas as pd, warnings
    >>> ref, cur = pd.DataFrame({"x": range(100)}), pd.DataFrame({"x": range(100)})
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     d = measure_drift(ref, cur, reference_actions=["none"] * 100, current_actions=["chat"] * 100)
    >>> d.drifted, w[0].category.__name__
    (['action mix'], 'DriftWarning')
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or threshold < 0:
        raise ValidationError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if (reference_actions is None) != (current_actions is None):
        raise ValidationError("reference_actions and current_actions must be given together, got only one")
    table = feature_psi(reference, current, bins=bins, categorical=categorical)
    table["drifted"] = table["psi"] > threshold
    mix = None if reference_actions is None else action_mix(reference_actions, current_actions, actions)
    mix_psi = None if mix is None else float(mix.attrs["psi"])
    drifted = table.index[table["drifted"]].tolist()
    if mix_psi is not None and mix_psi > threshold:
        drifted.append("action mix")
    res = Drift(table, mix, mix_psi, float(threshold), drifted, len(reference), len(current))
    if drifted:
        logger.info("drift over %.3g PSI: %s", threshold, drifted)
        if warn:
            top = ", ".join(f"{n} ({table.loc[n, 'psi']:.2f})" if n in table.index else f"{n} ({mix_psi:.2f})"
                            for n in drifted[:5])
            warnings.warn(f"{len(drifted)} of {len(table) + (mix is not None)} measures drifted beyond PSI "
                          f"{threshold:g} between the reference and the current window: {top}"
                          f"{' …' if len(drifted) > 5 else ''}", DriftWarning, stacklevel=2)
    return res
