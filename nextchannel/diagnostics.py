"""Model diagnostics: uplift curves (Qini, uplift/AUUC, uplift at k) and probability calibration.

This module sits beside :mod:`nextchannel.evaluate` at the end of the flow: it judges the offer
model's uplift ranking on randomised logs (who gains most from an offer?) and the calibration of
the acceptance/success probabilities the policy's expected values are built from. Inputs are plain
arrays; outputs are floats or small DataFrames.

Weighting
---------
With ``propensity`` (the probability ``e_i`` that row i was treated, for randomised but not 50/50
assignment), treated rows get weight ``1/e_i`` and control rows ``1/(1 - e_i)``, each group then
rescaled so its weights sum to its row count (stabilised inverse-propensity weights). Every count
and outcome sum below becomes the weighted one. With a constant propensity the weights are all 1,
so the weighted curves equal the unweighted ones.

Ties
----
Rows with equal scores are targeted together: curves have a point only where the score changes,
and straight lines between points — the expected curve under random tie-breaking.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from nextchannel.errors import ValidationError

__all__ = [
    "qini_curve",
    "uplift_curve",
    "qini_auc",
    "uplift_auc",
    "uplift_at_k",
    "calibration_curve",
    "expected_calibration_error",
]

ArrayLike = Any


def _py(v: Any) -> Any:
    """A numpy scalar as the Python scalar it holds, so messages read ``0.0`` not ``np.float64(0.0)``."""
    return v.item() if isinstance(v, np.generic) else v


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def _vector(x: ArrayLike, name: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"{name} must be an array of numbers, got {type(x).__name__}: {err}") from err
    if arr.ndim != 1:
        raise ValidationError(f"{name} must be a 1-D array of shape (n,), got shape {arr.shape}")
    if n is None and arr.shape[0] == 0:
        raise ValidationError(f"{name} must hold at least one row, got an empty array")
    if n is not None and arr.shape[0] != n:
        raise ValidationError(f"{name} must have one entry per row like y: expected length {n}, got {arr.shape[0]}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "missing (NaN)" if np.isnan(arr[i]) else "infinite"
        raise ValidationError(f"{name} must hold finite numbers, got {what} value at row {i}")
    return arr


def _binary(arr: np.ndarray, name: str) -> None:
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"{name} must hold 0/1 values, got {_py(arr[i])!r} at row {i}")


def _uplift_inputs(y: ArrayLike, treatment: ArrayLike, score: ArrayLike, propensity: ArrayLike | None,
                   score_name: str = "uplift_score") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    y_arr = _vector(y, "y")
    n = y_arr.shape[0]
    t = _vector(treatment, "treatment", n)
    _binary(t, "treatment")
    s = _vector(score, score_name, n)
    n_t = int(t.sum())
    if n_t == 0 or n_t == n:
        raise ValidationError(
            f"treatment must hold both treated (1) and control (0) rows, got {n_t} treated of {n}")
    if propensity is None:
        w = np.ones(n)
    else:
        e = _vector(propensity, "propensity", n)
        out = ~((e > 0) & (e < 1))
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValidationError(f"propensity (of treatment) must be in (0, 1), got {_py(e[i])!r} at row {i}")
        w = np.where(t == 1, 1.0 / e, 1.0 / (1.0 - e))
        w[t == 1] *= n_t / w[t == 1].sum()
        w[t == 0] *= (n - n_t) / w[t == 0].sum()
    return y_arr, t, s, w


# ---------------------------------------------------------------------------------------------
# Uplift curves
# ---------------------------------------------------------------------------------------------
def _cumulative(y: np.ndarray, t: np.ndarray, s: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted cumulative counts and outcome sums at each distinct score, best score first."""
    order = np.argsort(-s, kind="stable")
    y, t, s, w = y[order], t[order], s[order], w[order]
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), s.shape[0] - 1]
    wt, wc = w * t, w * (1 - t)

    def cum(x: np.ndarray) -> np.ndarray:
        return np.r_[0.0, np.cumsum(x)[ends]]

    return {"k": np.r_[0, ends + 1].astype(np.int64), "n_t": cum(wt), "n_c": cum(wc),
            "y_t": cum(wt * y), "y_c": cum(wc * y)}


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def _qini_gain(c: dict[str, np.ndarray]) -> np.ndarray:
    return c["y_t"] - c["y_c"] * _safe_div(c["n_t"], c["n_c"])


def _uplift_gain(c: dict[str, np.ndarray]) -> np.ndarray:
    return (_safe_div(c["y_t"], c["n_t"]) - _safe_div(c["y_c"], c["n_c"])) * c["k"]


def _curve_frame(c: dict[str, np.ndarray], gain: np.ndarray) -> pd.DataFrame:
    n = c["k"][-1]
    frac = c["k"] / n
    return pd.DataFrame({"fraction_targeted": frac, "n_targeted": c["k"], "gain": gain,
                         "random": frac * gain[-1]})


def qini_curve(y: ArrayLike, treatment: ArrayLike, uplift_score: ArrayLike,
               propensity: ArrayLike | None = None) -> pd.DataFrame:
    """Qini curve: cumulative incremental outcome when targeting rows by decreasing uplift score.

    Targeting the top k rows, with ``Y_T, N_T`` (``Y_C, N_C``) the outcome sum and count of the
    treated (control) rows among them (weighted when ``propensity`` is given, see the module):

    .. math:: Q(k) = Y_T(k) - Y_C(k)\\,\\frac{N_T(k)}{N_C(k)}

    (with the control term 0 while ``N_C(k) = 0``), Radcliffe (2007).

    Parameters
    ----------
    y : array-like of shape (n,)
        Outcome (e.g. 1 if the visitor converted).
    treatment : array-like of shape (n,)
        1 if the row was treated (offered), 0 if control.
    uplift_score : array-like of shape (n,)
        The model's uplift score; higher is targeted first.
    propensity : array-like of shape (n,), optional
        Probability that the row was treated, in (0, 1); enables inverse-propensity weighting.

    Returns
    -------
    DataFrame
        Columns ``fraction_targeted`` (k/n, from 0 to 1), ``n_targeted`` (k), ``gain`` (Q(k)) and
        ``random`` (the straight line from (0, 0) to (1, Q(n)): random targeting).

    References
    ----------
    Radcliffe, N. J. (2007). Using control groups to target on predicted lift: building and
    assessing uplift models. Direct Marketing Analytics Journal, 1, 14–21.

    Examples
    --------
    >>> qc = qini_curve([1, 0, 0, 1], [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    >>> qc["gain"].tolist()   # k=2: 1 - 0*(1/1); k=3: 1 - 0*(2/1); k=4: 1 - 1*(2/2)
    [0.0, 1.0, 1.0, 1.0, 0.0]
    """
    c = _cumulative(*_uplift_inputs(y, treatment, uplift_score, propensity))
    return _curve_frame(c, _qini_gain(c))


def uplift_curve(y: ArrayLike, treatment: ArrayLike, uplift_score: ArrayLike,
                 propensity: ArrayLike | None = None) -> pd.DataFrame:
    """Uplift curve: estimated uplift of the top k rows times k (Gutierrez & Gérardy 2017).

    .. math:: U(k) = \\Big(\\frac{Y_T(k)}{N_T(k)} - \\frac{Y_C(k)}{N_C(k)}\\Big)\\, k

    with a mean taken as 0 while its group is empty. Notation and weighting as in
    :func:`qini_curve`; ``k`` is the (unweighted) number of rows targeted.

    Parameters
    ----------
    y, treatment, uplift_score, propensity
        As in :func:`qini_curve`.

    Returns
    -------
    DataFrame
        Columns ``fraction_targeted``, ``n_targeted``, ``gain`` (U(k)) and ``random``.

    References
    ----------
    Gutierrez, P. & Gérardy, J.-Y. (2017). Causal Inference and Uplift Modelling: A Review of
    the Literature. PMLR 67 (Predictive Applications and APIs), 1–13.

    Examples
    --------
    >>> uc = uplift_curve([1, 0, 0, 1], [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    >>> uc["gain"].tolist()   # k=1: (1/1 - 0)*1; k=2: (1/1 - 0/1)*2; k=3: (1/2 - 0)*3; k=4: (1/2 - 1/2)*4
    [0.0, 1.0, 2.0, 1.5, 0.0]
    """
    c = _cumulative(*_uplift_inputs(y, treatment, uplift_score, propensity))
    return _curve_frame(c, _uplift_gain(c))


def _perfect_qini_score(y: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    # Treated rows by decreasing outcome first, control rows by increasing outcome last.
    return np.where(t == 1, y, -y)


def _perfect_uplift_score(y: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    # Binary outcomes: treated responders, control non-responders, then treated non-responders
    # and control responders, the larger (weighted) group of those two first.
    _binary(y, "y (uplift_auc with normalize=True needs a 0/1 outcome; use normalize=False)")
    n_cr = float((w * (y == 1) * (t == 0)).sum())
    n_tn = float((w * (y == 0) * (t == 1)).sum())
    return 2.0 * (y == t) + (y if n_cr > n_tn else t)


def _auc(y: ArrayLike, treatment: ArrayLike, score: ArrayLike, propensity: ArrayLike | None,
         gain_fn: Any, perfect_fn: Any, normalize: bool, what: str) -> float:
    y_arr, t, s, w = _uplift_inputs(y, treatment, score, propensity)
    c = _cumulative(y_arr, t, s, w)
    gain = gain_fn(c)
    x = c["k"] / c["k"][-1]
    area = float(np.trapezoid(gain, x))
    if not normalize:
        return area
    area_random = float(gain[-1]) / 2.0
    perfect = _cumulative(y_arr, t, perfect_fn(y_arr, t, w), w)
    area_perfect = float(np.trapezoid(gain_fn(perfect), x=perfect["k"] / perfect["k"][-1]))
    if math.isclose(area_perfect, area_random, rel_tol=0.0, abs_tol=1e-12):
        raise ValidationError(
            f"{what} is undefined with normalize=True: the perfect model's curve has the area of random "
            f"targeting ({area_random!r}), e.g. no row has a non-zero outcome; use normalize=False")
    return float((area - area_random) / (area_perfect - area_random))


def qini_auc(y: ArrayLike, treatment: ArrayLike, uplift_score: ArrayLike,
             propensity: ArrayLike | None = None, normalize: bool = True) -> float:
    """Area under the Qini curve; by default the Qini coefficient (Radcliffe 2007).

    With ``x = k/n`` (fraction targeted, 0 to 1) and areas by the trapezoidal rule over the
    curve's points, ``A(model)``, ``A(random) = Q(n)/2`` and ``A(perfect)``:

    - ``normalize=True``: ``(A(model) - A(random)) / (A(perfect) - A(random))`` — the area
      between the model's curve and the random line, as a fraction of that of the perfect model
      (1 for perfect ranking, about 0 for random, negative when worse than random);
    - ``normalize=False``: ``A(model)``, in outcome units.

    The perfect model ranks by ``y`` for treated rows and ``-y`` for control rows (treated
    responders first, control responders last: Radcliffe's optimum for binary outcomes; a
    convention for other outcomes).

    Parameters
    ----------
    y, treatment, uplift_score, propensity
        As in :func:`qini_curve`.
    normalize : bool, default True

    Returns
    -------
    float

    Raises
    ------
    ValidationError
        With ``normalize=True`` when the perfect curve's area equals the random one.

    Examples
    --------
    >>> y, t = [1, 0, 0, 1], [1, 0, 1, 0]
    >>> qini_auc(y, t, [0.9, 0.8, 0.7, 0.1])   # treated responder first, control responder last
    1.0
    >>> # reverse order: gains [0, 0, 0, -0.5, 0], area -0.125; perfect area 0.75, random 0
    >>> round(qini_auc(y, t, [0.1, 0.8, 0.7, 0.9]), 6)
    -0.166667
    """
    return _auc(y, treatment, uplift_score, propensity, _qini_gain, _perfect_qini_score, normalize, "qini_auc")


def uplift_auc(y: ArrayLike, treatment: ArrayLike, uplift_score: ArrayLike,
               propensity: ArrayLike | None = None, normalize: bool = True) -> float:
    """Area under the uplift curve (AUUC, Gutierrez & Gérardy 2017), by default normalised.

    Same areas and normalisation as :func:`qini_auc` on the curve of :func:`uplift_curve`:
    ``(A(model) - A(random)) / (A(perfect) - A(random))`` with ``normalize=True``, ``A(model)``
    (outcome units, x in [0, 1]) with ``normalize=False``. ``normalize=True`` needs a 0/1
    outcome: the perfect model ranks treated responders first, then control non-responders,
    then treated non-responders and control responders (the larger of these two groups first),
    the convention of scikit-uplift. It is the best ranking in the usual cases but not provably
    for every sample, so values slightly above 1 can occur.

    Parameters
    ----------
    y, treatment, uplift_score, propensity
        As in :func:`qini_curve`.
    normalize : bool, default True

    Returns
    -------
    float

    Examples
    --------
    >>> y, t = [1, 0, 0, 1], [1, 0, 1, 0]
    >>> # trapezoids of [0, 1, 2, 1.5, 0] with x step 1/4: (0.5 + 1.5 + 1.75 + 0.75) / 4
    >>> uplift_auc(y, t, [0.9, 0.8, 0.7, 0.1], normalize=False)
    1.125
    >>> uplift_auc(y, t, [0.9, 0.8, 0.7, 0.1])   # this is the perfect ranking
    1.0
    """
    return _auc(y, treatment, uplift_score, propensity, _uplift_gain, _perfect_uplift_score, normalize,
                "uplift_auc")


def uplift_at_k(y: ArrayLike, treatment: ArrayLike, score: ArrayLike, k: float = 0.3,
                propensity: ArrayLike | None = None) -> float:
    """Uplift among the top ``k`` fraction of rows: mean outcome of treated minus of control.

    The top ``m = ceil(k * n)`` rows by decreasing score are taken (ties broken by row order);
    the result is ``Y_T/N_T - Y_C/N_C`` over them, weighted when ``propensity`` is given.

    Parameters
    ----------
    y, treatment : array-like of shape (n,)
        As in :func:`qini_curve`.
    score : array-like of shape (n,)
        Uplift score.
    k : float, default 0.3
        Fraction of rows targeted, in (0, 1].
    propensity : array-like of shape (n,), optional
        As in :func:`qini_curve`.

    Returns
    -------
    float

    Raises
    ------
    ValidationError
        When the top rows hold no treated or no control row.

    Examples
    --------
    >>> # top ceil(0.5 * 4) = 2 rows: treated y=1, control y=0
    >>> uplift_at_k([1, 0, 0, 1], [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], k=0.5)
    1.0
    """
    if isinstance(k, bool) or not isinstance(k, (int, float, np.floating)) or not 0.0 < float(k) <= 1.0:
        raise ValidationError(f"k must be a fraction of rows in (0, 1], got {k!r}")
    y_arr, t, s, w = _uplift_inputs(y, treatment, score, propensity, score_name="score")
    n = y_arr.shape[0]
    m = int(math.ceil(float(k) * n - 1e-9))
    top = np.argsort(-s, kind="stable")[:m]
    wt, wc = (w * t)[top], (w * (1 - t))[top]
    if wt.sum() == 0 or wc.sum() == 0:
        raise ValidationError(
            f"uplift_at_k is undefined: the top {m} row(s) (k={k}) hold {int(t[top].sum())} treated and "
            f"{int(m - t[top].sum())} control rows; both are needed")
    return float((wt * y_arr[top]).sum() / wt.sum() - (wc * y_arr[top]).sum() / wc.sum())


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------
def _calibration_inputs(y: ArrayLike, p: ArrayLike, n_bins: int, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    y_arr = _vector(y, "y")
    _binary(y_arr, "y")
    p_arr = _vector(p, "p", y_arr.shape[0])
    out = (p_arr < 0) | (p_arr > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValidationError(f"p must hold probabilities in [0, 1], got {_py(p_arr[i])!r} at row {i}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValidationError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    if strategy not in ("quantile", "uniform"):
        raise ValidationError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    return y_arr, p_arr


def calibration_curve(y: ArrayLike, p: ArrayLike, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Observed rate against mean predicted probability, per bin of predictions.

    Bins: ``"uniform"`` splits [0, 1] into ``n_bins`` equal widths; ``"quantile"`` puts edges at
    the quantiles of ``p`` so bins hold about equal counts (coinciding edges merge, so there may
    be fewer bins). A prediction on an inner edge goes to the upper bin; 1.0 to the last bin.
    Empty bins are left out.

    Parameters
    ----------
    y : array-like of shape (n,)
        Observed 0/1 outcome.
    p : array-like of shape (n,)
        Predicted probability of ``y == 1``, in [0, 1].
    n_bins : int, default 10
    strategy : {"quantile", "uniform"}, default "quantile"
        Quantile bins suit the skewed, mostly small probabilities of offer acceptance.

    Returns
    -------
    DataFrame
        One row per non-empty bin: ``bin_low``, ``bin_high`` (edges), ``mean_predicted``,
        ``observed_rate``, ``count``.

    Examples
    --------
    >>> cc = calibration_curve([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.9], n_bins=2, strategy="uniform")
    >>> cc[["mean_predicted", "observed_rate", "count"]].values.tolist()
    [[0.15000000000000002, 0.0, 2.0], [0.75, 1.0, 2.0]]
    """
    y_arr, p_arr = _calibration_inputs(y, p, n_bins, strategy)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.unique(np.quantile(p_arr, np.linspace(0.0, 1.0, n_bins + 1)))
        if edges.shape[0] == 1:   # all predictions equal
            edges = np.r_[edges, edges]
    n_edges = edges.shape[0] - 1
    bin_id = np.searchsorted(edges[1:-1], p_arr, side="right")
    count = np.bincount(bin_id, minlength=n_edges)
    sum_p = np.bincount(bin_id, weights=p_arr, minlength=n_edges)
    sum_y = np.bincount(bin_id, weights=y_arr, minlength=n_edges)
    keep = count > 0
    return pd.DataFrame({
        "bin_low": edges[:-1][keep], "bin_high": edges[1:][keep],
        "mean_predicted": sum_p[keep] / count[keep], "observed_rate": sum_y[keep] / count[keep],
        "count": count[keep].astype(np.int64),
    })


def expected_calibration_error(y: ArrayLike, p: ArrayLike, n_bins: int = 10, strategy: str = "quantile") -> float:
    """Expected calibration error: bin gaps between observed rate and mean prediction.

    .. math:: \\mathrm{ECE} = \\sum_b \\frac{n_b}{n}\\, \\big|\\bar y_b - \\bar p_b\\big|

    over the non-empty bins of :func:`calibration_curve` (weighted by bin counts). Guo et al.
    (2017) use ``strategy="uniform"``; the default here is ``"quantile"`` to agree with
    :func:`calibration_curve`.

    Parameters
    ----------
    y, p, n_bins, strategy
        As in :func:`calibration_curve`.

    Returns
    -------
    float

    References
    ----------
    Guo, Pleiss, Sun & Weinberger (2017). On Calibration of Modern Neural Networks. ICML.

    Examples
    --------
    >>> # bins {0.1, 0.2}: |0 - 0.15| ; {0.6, 0.9}: |1 - 0.75|; each weighted 2/4
    >>> round(expected_calibration_error([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.9], n_bins=2, strategy="uniform"), 10)
    0.2
    """
    cc = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    count = cc["count"].to_numpy(dtype=np.float64)
    gap = np.abs(cc["observed_rate"].to_numpy() - cc["mean_predicted"].to_numpy())
    return float((count * gap).sum() / count.sum())
