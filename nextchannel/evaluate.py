"""Policy value: off-policy estimators over logged decisions, and exact values from the oracle.

This module sits at the end of the flow (… → policy → decision → logs → **evaluate**). Its
estimators take plain numpy arrays — reward, logged action index, logged propensity, the evaluated
policy's action probabilities and, for DM/DR, a reward model's predictions — and know nothing of
where the logs came from. Each estimator is one *per-round contribution* (a numerator and, for
self-normalised estimators, a denominator per logged round); the point estimate, the analytic
standard error and the bootstrap interval are all computed from those contributions, as in Open
Bandit Pipeline.

Intervals
---------
``ci_method="bootstrap"`` (default): percentile interval of ``n_bootstrap`` nonparametric
(Efron) resamples. A resample is drawn as multinomial counts (``np.bincount`` of ``n`` uniform
row indices) and all estimators' contributions are summed at once by one matrix product, so one
set of resamples serves several estimators. Cost is O(n · n_bootstrap), 8–15 ns per round per
resample on one core (RNG, ``bincount`` scatter, one matrix product): 8–15 s for 1000 resamples
of 1M rounds, whatever the number of estimators (``benchmarks/bench_evaluate.py``).
``ci_method="normal"``: value ± z·se with se from the per-round contributions (delta method for
the ratio SNIPS); O(n), a few milliseconds on 1M rounds.

Uplift and calibration diagnostics live in :mod:`nextchannel.diagnostics`.

Examples
--------
>>> import numpy as np
>>> from nextchannel.evaluate import ips
>>> target = np.array([[0.0, 1.0], [0.5, 0.5]])
>>> ips([1.0, 0.0], [1, 0], [0.5, 0.5], target).value   # (1/0.5*1 + 0.5/0.5*0) / 2
1.0
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from nextchannel.conventions import accepts_old_form
from nextchannel.errors import ValidationError

__all__ = [
    "Estimate",
    "dm",
    "ips",
    "snips",
    "dr",
    "ESTIMATORS",
    "estimate_policy_value",
    "policy_value_true",
    "normalised_value",
]

logger = logging.getLogger(__name__)

#: Tolerance on ``|sum_a target[i, a] - 1|``.
ROW_SUM_TOL = 1e-6
#: Upper bound on resamples × rounds held in memory at once by the bootstrap (≈ 40 MB).
_BOOTSTRAP_CHUNK_ELEMS = 1 << 21

ArrayLike = Any


def _py(v: Any) -> Any:
    """A numpy scalar as the Python scalar it holds, so messages read ``0.0`` not ``np.float64(0.0)``."""
    return v.item() if isinstance(v, np.generic) else v


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value with its interval.

    Parameters
    ----------
    estimator : str
        ``"dm"``, ``"ips"``, ``"snips"`` or ``"dr"``.
    value : float
        Point estimate.
    low, high : float
        Interval bounds; NaN when no interval was asked for (``ci=None``).
    se : float
        Normal-approximation standard error from the per-round contributions (delta method for
        SNIPS); always computed (O(n)), NaN when ``n == 1``.
    n : int
        Number of logged rounds.
    ci : float or None
        Confidence level of ``low``/``high``.
    ci_method : str or None
        ``"bootstrap"`` or ``"normal"``; None without an interval.

    Examples
    --------
    >>> Estimate("ips", 0.5, float("nan"), float("nan"), 0.1, 100).to_dict()["value"]
    0.5
    """

    estimator: str
    value: float
    low: float
    high: float
    se: float
    n: int
    ci: float | None = None
    ci_method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for logging and JSON)."""
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def _float_array(x: ArrayLike, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"{name} must be an array of numbers, got {type(x).__name__}: {err}") from err
    if arr.ndim != ndim:
        shape = "(n,)" if ndim == 1 else "(n, n_actions)"
        raise ValidationError(f"{name} must be a {ndim}-D array of shape {shape}, got shape {arr.shape}")
    return arr


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _check_finite(arr: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = _first_bad(bad)
        what = "missing (NaN)" if np.isnan(arr[pos]) else "infinite"
        where = f"row {pos[0]}" if len(pos) == 1 else f"row {pos[0]}, column {pos[1]}"
        raise ValidationError(
            f"{name} must hold finite numbers, got {what} value {_py(arr[pos])!r} at {where} "
            f"({int(bad.sum())} bad value(s))")


def _check_length(arr: np.ndarray, name: str, n: int) -> None:
    if arr.shape[0] != n:
        raise ValidationError(
            f"{name} must have one entry per logged round like reward: expected length {n}, "
            f"got {arr.shape[0]}")


@dataclass(frozen=True)
class _Rounds:
    """Validated logged rounds; ``w`` is the importance weight target[i, a_i] / propensity_i."""

    reward: np.ndarray
    action: np.ndarray
    propensity: np.ndarray
    target: np.ndarray
    reward_hat: np.ndarray | None
    w: np.ndarray


def _check_max_weight(max_weight: float | None) -> None:
    if max_weight is None:
        return
    if isinstance(max_weight, bool) or not isinstance(max_weight, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(max_weight)) or float(max_weight) <= 0:
        raise ValidationError(f"max_weight must be a finite number > 0 or None, got {max_weight!r}")


def _validate_rounds(reward: ArrayLike, action: ArrayLike, propensity: ArrayLike, target: ArrayLike,
                     reward_hat: ArrayLike | None = None, need_hat: bool = False,
                     max_weight: float | None = None) -> _Rounds:
    _check_max_weight(max_weight)
    reward = _float_array(reward, "reward", 1)
    n = reward.shape[0]
    if n == 0:
        raise ValidationError("reward must hold at least one logged round, got an empty array")
    _check_finite(reward, "reward")

    action_arr = np.asarray(action)
    if action_arr.ndim != 1:
        raise ValidationError(f"action must be a 1-D array of shape (n,), got shape {action_arr.shape}")
    _check_length(action_arr, "action", n)
    if action_arr.dtype.kind not in "iu":
        raise ValidationError(
            f"action must hold integer action indices (columns of target), got dtype {action_arr.dtype}")

    propensity = _float_array(propensity, "propensity", 1)
    _check_length(propensity, "propensity", n)
    miss = np.isnan(propensity)
    if miss.any():
        raise ValidationError(
            f"propensity must not be missing: expected a probability in (0, 1] for every round, "
            f"got NaN at row {int(np.flatnonzero(miss)[0])} ({int(miss.sum())} missing)")
    out = ~((propensity > 0.0) & (propensity <= 1.0))
    if out.any():
        i = int(np.flatnonzero(out)[0])
        hint = " (a zero propensity means the logged action could not have been logged)" \
            if propensity[i] == 0 else ""
        raise ValidationError(
            f"propensity must be in (0, 1], got {_py(propensity[i])!r} at row {i} "
            f"({int(out.sum())} out of range){hint}")

    target = _float_array(target, "target", 2)
    _check_length(target, "target", n)
    n_actions = target.shape[1]
    if n_actions == 0:
        raise ValidationError("target must have at least one action column, got shape (n, 0)")
    _check_finite(target, "target")
    neg = target < 0.0
    if neg.any():
        i, j = _first_bad(neg)
        raise ValidationError(
            f"target must hold probabilities >= 0, got {_py(target[i, j])!r} at row {i}, column {j}")
    row_err = np.abs(target.sum(axis=1) - 1.0)
    bad_rows = row_err > ROW_SUM_TOL
    if bad_rows.any():
        i = int(np.flatnonzero(bad_rows)[0])
        raise ValidationError(
            f"target rows must sum to 1 (tolerance {ROW_SUM_TOL:g}), got {float(target[i].sum()):.10g} in row {i} "
            f"({int(bad_rows.sum())} bad row(s))")

    out_a = (action_arr < 0) | (action_arr >= n_actions)
    if out_a.any():
        i = int(np.flatnonzero(out_a)[0])
        raise ValidationError(
            f"action must be an index in [0, {n_actions}) (target has {n_actions} columns), "
            f"got {_py(action_arr[i])!r} at row {i}")
    action_arr = action_arr.astype(np.intp, copy=False)

    if reward_hat is None:
        if need_hat:
            raise ValidationError("reward_hat is required by DM and DR: expected an array of shape "
                                  f"{target.shape}, got None")
        hat = None
    else:
        hat = _float_array(reward_hat, "reward_hat", 2)
        if hat.shape != target.shape:
            raise ValidationError(
                f"reward_hat must have the shape of target (n, n_actions) = {target.shape}, got {hat.shape}")
        _check_finite(hat, "reward_hat")

    w = target[np.arange(n), action_arr] / propensity
    if max_weight is not None:
        w = np.minimum(w, float(max_weight))
    return _Rounds(reward, action_arr, propensity, target, hat, w)


# ---------------------------------------------------------------------------------------------
# Per-round contributions: (numerator, denominator or None for a plain mean)
# ---------------------------------------------------------------------------------------------
def _dm_expected(rounds: _Rounds) -> np.ndarray:
    assert rounds.reward_hat is not None
    return np.einsum("ij,ij->i", rounds.target, rounds.reward_hat)


def _dm_rounds(rounds: _Rounds) -> tuple[np.ndarray, None]:
    return _dm_expected(rounds), None


def _ips_rounds(rounds: _Rounds) -> tuple[np.ndarray, None]:
    return rounds.w * rounds.reward, None


def _snips_rounds(rounds: _Rounds) -> tuple[np.ndarray, np.ndarray]:
    return rounds.w * rounds.reward, rounds.w


def _dr_rounds(rounds: _Rounds) -> tuple[np.ndarray, None]:
    assert rounds.reward_hat is not None
    n = rounds.reward.shape[0]
    hat_logged = rounds.reward_hat[np.arange(n), rounds.action]
    return _dm_expected(rounds) + rounds.w * (rounds.reward - hat_logged), None


_RoundFn = Callable[[_Rounds], "tuple[np.ndarray, np.ndarray | None]"]
#: Estimator name → (per-round contribution function, needs reward_hat).
ESTIMATORS: dict[str, tuple[_RoundFn, bool]] = {
    "ips": (_ips_rounds, False),
    "snips": (_snips_rounds, False),
    "dm": (_dm_rounds, True),
    "dr": (_dr_rounds, True),
}


# ---------------------------------------------------------------------------------------------
# Point estimate, standard error, intervals — all from the contributions
# ---------------------------------------------------------------------------------------------
def _ratio(num: np.ndarray, den: np.ndarray | None) -> float:
    d = float(num.shape[0]) if den is None else float(den.sum())
    if d == 0.0:
        logger.warning("self-normalised estimate is undefined: the target policy gives probability 0 "
                       "to every logged action (sum of weights is 0); returning NaN")
        return math.nan
    return float(num.sum()) / d


def _standard_error(num: np.ndarray, den: np.ndarray | None, value: float) -> float:
    n = num.shape[0]
    if n < 2 or not math.isfinite(value):
        return math.nan
    if den is None:
        return float(np.std(num, ddof=1)) / math.sqrt(n)
    # Delta method for sum(num)/sum(den): influence (num_i - V den_i) / mean(den).
    psi = (num - value * den) / den.mean()
    return float(np.sqrt(np.sum(psi * psi) / (n - 1))) / math.sqrt(n)


def _bootstrap_ratios(nums: list[np.ndarray], dens: list[np.ndarray | None], n_bootstrap: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of sum(num_k)/sum(den_k) for all k from one set of resamples.

    Each resample is a vector of multinomial counts c (c_i = times row i was drawn, sum c = n),
    so a replicate is (c @ num) / (c @ den) — numerator and denominator of a ratio are resampled
    together. Resamples are drawn in chunks of rows to bound memory; the draws do not depend on
    the number of estimators, so an estimator gets the same replicates alone or in company.
    Returns an array of shape (n_bootstrap, k).
    """
    n = nums[0].shape[0]
    cols = list(nums) + [d for d in dens if d is not None]
    mat = np.column_stack(cols)
    den_col = []
    j = len(nums)
    for d in dens:
        den_col.append(j if d is not None else -1)
        j += d is not None
    chunk = max(1, min(n_bootstrap, _BOOTSTRAP_CHUNK_ELEMS // n))
    sums = np.empty((n_bootstrap, mat.shape[1]))
    idx_dtype = np.int32 if chunk * n < 2**31 else np.int64
    for start in range(0, n_bootstrap, chunk):
        m = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, n, size=(m, n), dtype=idx_dtype)
        idx += (np.arange(m, dtype=idx_dtype) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)
        sums[start:start + m] = counts @ mat
    out = np.empty((n_bootstrap, len(nums)))
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, dc in enumerate(den_col):
            out[:, k] = sums[:, k] / (n if dc < 0 else sums[:, dc])
    out[~np.isfinite(out)] = np.nan
    return out


def _check_ci_args(ci: float | None, ci_method: str, n_bootstrap: int) -> None:
    if ci is not None:
        if isinstance(ci, bool) or not isinstance(ci, (int, float, np.floating)) or not 0.0 < float(ci) < 1.0:
            raise ValidationError(f"ci must be a confidence level in (0, 1) or None, got {ci!r}")
    if ci_method not in ("bootstrap", "normal"):
        raise ValidationError(f"ci_method must be 'bootstrap' or 'normal', got {ci_method!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 2:
        raise ValidationError(f"n_bootstrap must be an integer >= 2, got {n_bootstrap!r}")


def _estimates(names: Sequence[str], rounds: _Rounds, ci: float | None, ci_method: str,
               n_bootstrap: int, random_state: int | np.random.Generator | None) -> list[Estimate]:
    """The one path from contributions to :class:`Estimate` for one or several estimators."""
    _check_ci_args(ci, ci_method, n_bootstrap)
    contribs = [ESTIMATORS[name][0](rounds) for name in names]
    n = rounds.reward.shape[0]
    values = [_ratio(num, den) for num, den in contribs]
    ses = [_standard_error(num, den, v) for (num, den), v in zip(contribs, values)]
    lows = [math.nan] * len(names)
    highs = [math.nan] * len(names)
    if ci is not None and ci_method == "normal":
        z = NormalDist().inv_cdf(0.5 + float(ci) / 2.0)
        lows = [v - z * se for v, se in zip(values, ses)]
        highs = [v + z * se for v, se in zip(values, ses)]
    elif ci is not None:
        rng = np.random.default_rng(random_state)
        reps = _bootstrap_ratios([c[0] for c in contribs], [c[1] for c in contribs], n_bootstrap, rng)
        alpha = 1.0 - float(ci)
        for k in range(len(names)):
            finite = reps[:, k][~np.isnan(reps[:, k])]
            if finite.size < reps.shape[0]:
                logger.warning("%s: %d of %d bootstrap resamples had no weight and were dropped",
                               names[k], reps.shape[0] - finite.size, reps.shape[0])
            if finite.size:
                lows[k], highs[k] = (float(q) for q in np.quantile(finite, [alpha / 2, 1 - alpha / 2]))
    return [Estimate(name, v, lo, hi, se, n, None if ci is None else float(ci),
                     None if ci is None else ci_method)
            for name, v, lo, hi, se in zip(names, values, lows, highs, ses)]


def _one(name: str, reward: ArrayLike, action: ArrayLike, propensity: ArrayLike, target: ArrayLike,
         reward_hat: ArrayLike | None, ci: float | None, ci_method: str, n_bootstrap: int,
         random_state: int | np.random.Generator | None, max_weight: float | None = None) -> Estimate:
    rounds = _validate_rounds(reward, action, propensity, target, reward_hat, need_hat=ESTIMATORS[name][1],
                              max_weight=max_weight)
    return _estimates([name], rounds, ci, ci_method, n_bootstrap, random_state)[0]


_PARAMS_DOC = """reward : array-like of shape (n,)
        Observed reward of each logged round.
    action : array-like of int, shape (n,)
        Index of the logged action (a column of ``target``).
    propensity : array-like of shape (n,)
        Probability with which the logging policy chose the logged action, in (0, 1].
    target : array-like of shape (n, n_actions)
        Action probabilities of the evaluated policy in each round; rows sum to 1."""
_CI_DOC = """ci : float or None, default None
        Confidence level of the interval; None gives the point estimate only (low/high NaN).
    ci_method : {"bootstrap", "normal"}, default "bootstrap"
        Percentile bootstrap, or value ± z·se (normal approximation).
    n_bootstrap : int, default 1000
        Number of bootstrap resamples.
    random_state : int, numpy Generator or None
        Seed of the bootstrap; the same seed gives the same interval.{weights}

    Returns
    -------
    Estimate

    Raises
    ------
    ValidationError
        On propensities missing, zero or outside (0, 1]; length mismatches; action indices
        outside [0, n_actions); negative target probabilities or rows not summing to 1 (±1e-6);
        a reward_hat of another shape than target."""


def dm(reward: ArrayLike, action: ArrayLike, propensity: ArrayLike, target: ArrayLike,
       reward_hat: ArrayLike, *, ci: float | None = None, ci_method: str = "bootstrap",
       n_bootstrap: int = 1000, random_state: int | np.random.Generator | None = None) -> Estimate:
    """Direct method: the reward model's value of the target policy.

    .. math:: \\hat V_{DM} = \\frac{1}{n}\\sum_i \\sum_a \\pi(a|x_i)\\, \\hat r(x_i, a)

    Per-round contribution ``sum_a target[i, a] * reward_hat[i, a]``. Biased as far as
    ``reward_hat`` is; low variance. ``reward``, ``action`` and ``propensity`` are validated
    but do not enter the value (one signature for all estimators).

    Parameters
    ----------
    {params}
    reward_hat : array-like of shape (n, n_actions)
        Predicted reward of every action in every round.
    {ci}

    References
    ----------
    Dudík, Langford & Li (2011), "Doubly Robust Policy Evaluation and Learning", ICML.

    Examples
    --------
    >>> target = [[1.0, 0.0], [0.5, 0.5]]
    >>> hat = [[0.2, 0.4], [0.6, 1.0]]
    >>> round(dm([0, 1], [0, 1], [0.5, 0.5], target, hat).value, 10)   # (0.2 + 0.8) / 2
    0.5
    """
    return _one("dm", reward, action, propensity, target, reward_hat, ci, ci_method, n_bootstrap,
                random_state)


def ips(reward: ArrayLike, action: ArrayLike, propensity: ArrayLike, target: ArrayLike, *,
        ci: float | None = None, ci_method: str = "bootstrap", n_bootstrap: int = 1000,
        random_state: int | np.random.Generator | None = None, max_weight: float | None = None) -> Estimate:
    """Inverse propensity scoring (importance sampling).

    .. math:: \\hat V_{IPS} = \\frac{1}{n}\\sum_i w_i r_i, \\qquad w_i = \\frac{\\pi(a_i|x_i)}{\\pi_0(a_i|x_i)}

    Per-round contribution ``w_i * r_i``; unbiased when the propensities are right and positive
    wherever the target policy acts, with a variance that grows with the weights.

    Parameters
    ----------
    {params}
    {ci}

    References
    ----------
    Horvitz & Thompson (1952); Dudík, Langford & Li (2011), ICML.

    Examples
    --------
    >>> target = [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]
    >>> # w = (1/0.5, 1/0.25, 1/0.5) = (2, 4, 2); (2*1 + 4*0 + 2*1) / 3
    >>> round(ips([1, 0, 1], [1, 1, 0], [0.5, 0.25, 0.5], target).value, 10)
    1.3333333333
    """
    return _one("ips", reward, action, propensity, target, None, ci, ci_method, n_bootstrap, random_state,
                max_weight)


def snips(reward: ArrayLike, action: ArrayLike, propensity: ArrayLike, target: ArrayLike, *,
          ci: float | None = None, ci_method: str = "bootstrap", n_bootstrap: int = 1000,
          random_state: int | np.random.Generator | None = None, max_weight: float | None = None) -> Estimate:
    """Self-normalised inverse propensity scoring.

    .. math:: \\hat V_{SNIPS} = \\frac{\\sum_i w_i r_i}{\\sum_i w_i}

    Per-round contribution: numerator ``w_i * r_i`` and denominator ``w_i``; the bootstrap
    resamples both together, the normal interval uses the delta-method standard error
    ``sd(w_i (r_i - V)) / (mean(w) sqrt(n))``. Slightly biased, consistent, bounded by the
    reward range; NaN (with a warning) when every weight is 0.

    Parameters
    ----------
    {params}
    {ci}

    References
    ----------
    Swaminathan & Joachims (2015), "The Self-Normalized Estimator for Counterfactual Learning",
    NeurIPS.

    Examples
    --------
    >>> target = [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]
    >>> # w = (2, 4, 2); (2*1 + 4*0 + 2*1) / (2 + 4 + 2)
    >>> snips([1, 0, 1], [1, 1, 0], [0.5, 0.25, 0.5], target).value
    0.5
    """
    return _one("snips", reward, action, propensity, target, None, ci, ci_method, n_bootstrap,
                random_state, max_weight)


def dr(reward: ArrayLike, action: ArrayLike, propensity: ArrayLike, target: ArrayLike,
       reward_hat: ArrayLike, *, ci: float | None = None, ci_method: str = "bootstrap",
       n_bootstrap: int = 1000, random_state: int | np.random.Generator | None = None,
       max_weight: float | None = None) -> Estimate:
    """Doubly robust: the direct method corrected by importance-weighted residuals.

    .. math:: \\hat V_{DR} = \\frac{1}{n}\\sum_i \\Big[\\sum_a \\pi(a|x_i)\\hat r(x_i,a)
              + w_i\\,(r_i - \\hat r(x_i, a_i))\\Big]

    Per-round contribution as in the bracket. Unbiased if either the propensities or the reward
    model are right; equals DM when every weight is 0.

    Parameters
    ----------
    {params}
    reward_hat : array-like of shape (n, n_actions)
        Predicted reward of every action in every round.
    {ci}

    References
    ----------
    Dudík, Langford & Li (2011), "Doubly Robust Policy Evaluation and Learning", ICML.

    Examples
    --------
    >>> target = [[0.0, 1.0], [1.0, 0.0]]
    >>> hat = [[0.2, 0.4], [0.6, 1.0]]
    >>> # round 0: 0.4 + (1/0.5)(1 - 0.4) = 1.6; round 1: 0.6 + 0 = 0.6 (w = 0)
    >>> round(dr([1, 0], [1, 1], [0.5, 0.5], target, hat).value, 10)
    1.1
    """
    return _one("dr", reward, action, propensity, target, reward_hat, ci, ci_method, n_bootstrap,
                random_state, max_weight)


# The four estimators share their parameter docs; fill them in once (docstrings are None under -OO).
_WEIGHTS_DOC = """
    max_weight : float or None, default None
        Clip every importance weight at this value: less variance from rarely logged actions, for a
        bias (toward 0 for IPS, toward the reward model's own direct-method value for DR). None, the
        default: no clipping, unbiased."""
for _fn in (dm, ips, snips, dr):
    if _fn.__doc__:
        _fn.__doc__ = _fn.__doc__.replace("{params}", _PARAMS_DOC).replace(
            "{ci}", _CI_DOC.replace("{weights}", "" if _fn is dm else _WEIGHTS_DOC))
del _fn


# ---------------------------------------------------------------------------------------------
# DataFrame convenience
# ---------------------------------------------------------------------------------------------
def _action_matrix(x: np.ndarray | pd.DataFrame, name: str, actions: list[str], logs: pd.DataFrame) -> np.ndarray:
    if isinstance(x, pd.DataFrame):
        missing = [a for a in actions if a not in x.columns]
        if missing:
            raise ValidationError(f"{name} must have a column per action {actions}, missing {missing}")
        if len(x) == len(logs) and not x.index.equals(logs.index):
            raise ValidationError(
                f"{name} must have the same index as logs (rows are matched by label), got a different index")
        return x[actions].to_numpy(dtype=np.float64)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(actions):
        raise ValidationError(
            f"{name} must have shape (n, {len(actions)}) with columns in the order of actions {actions}, "
            f"got shape {arr.shape}")
    return arr


@accepts_old_form(old=("logs", "target", "actions", "reward_hat", "estimators", "ci", "ci_method",
                       "n_bootstrap", "random_state"))
def estimate_policy_value(logs: pd.DataFrame, *, target: np.ndarray | pd.DataFrame, actions: Sequence[str],
                          reward_hat: np.ndarray | pd.DataFrame | None = None,
                          estimators: Sequence[str] | None = None, ci: float | None = 0.95,
                          ci_method: str = "bootstrap", n_bootstrap: int = 1000,
                          random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
    """Estimate a policy's value from a log of decisions, with several estimators at once.

    Parameters
    ----------
    logs : DataFrame
        One row per logged decision with columns ``action`` (action name), ``propensity`` (of the
        logged action) and ``reward``.
    target : ndarray of shape (n, n_actions) or DataFrame
        The evaluated policy's action probabilities: columns in the order of ``actions``, or a
        DataFrame with one column per action name (and the index of ``logs``).
    actions : sequence of str
        The action names; their order defines the action index.
    reward_hat : ndarray or DataFrame, optional
        Predicted reward per action, laid out like ``target``; needed by ``"dm"`` and ``"dr"``.
    estimators : sequence of str, optional
        Among ``"ips"``, ``"snips"``, ``"dm"``, ``"dr"``. Default: all four when ``reward_hat``
        is given, else ``("ips", "snips")``; naming DM or DR without ``reward_hat`` raises.
    ci, ci_method, n_bootstrap, random_state
        As in :func:`ips`; here ``ci`` defaults to 0.95. With the bootstrap, all estimators share
        one set of resamples (an estimator's interval equals that of its own function called
        with the same ``random_state``).

    Returns
    -------
    DataFrame
        Indexed by ``estimator``, with columns ``value``, ``low``, ``high``, ``se``, ``n``.

    Examples
    --------
    >>> import pandas as pd
    >>> logs = pd.DataFrame({"action": ["none", "chat", "chat"], "propensity": [0.5, 0.5, 0.25],
    ...                      "reward": [0.0, 1.0, 0.0]})
    >>> target = pd.DataFrame({"none": [0.0, 0.0, 0.0], "chat": [1.0, 1.0, 1.0]})
    >>> estimate_policy_value(logs, target=target, actions=["none", "chat"], ci=None)["value"].round(4).tolist()
    [0.6667, 0.3333]
    """
    if not isinstance(logs, pd.DataFrame):
        raise ValidationError(f"logs must be a pandas DataFrame, got {type(logs).__name__}")
    missing = [c for c in ("action", "propensity", "reward") if c not in logs.columns]
    if missing:
        raise ValidationError(f"logs must have columns ['action', 'propensity', 'reward'], missing {missing}")
    actions = list(actions)
    if len(set(actions)) != len(actions) or not actions:
        raise ValidationError(f"actions must be a non-empty sequence of distinct names, got {actions}")
    if estimators is None:
        estimators = ("ips", "snips", "dm", "dr") if reward_hat is not None else ("ips", "snips")
    names = list(estimators)
    unknown = [e for e in names if e not in ESTIMATORS]
    if unknown or not names:
        raise ValidationError(f"estimators must be among {list(ESTIMATORS)}, got {names}")
    need_hat = [e for e in names if ESTIMATORS[e][1]]
    if need_hat and reward_hat is None:
        raise ValidationError(f"estimators {need_hat} need reward_hat: expected an array of shape "
                              f"(n, {len(actions)}), got None")

    codes = pd.Index(actions).get_indexer(logs["action"])
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise ValidationError(
            f"logs['action'] must hold names among actions {actions}, got {_py(logs['action'].iloc[i])!r} "
            f"at row {_py(logs.index[i])!r}")
    tgt = _action_matrix(target, "target", actions, logs)
    hat = None if reward_hat is None else _action_matrix(reward_hat, "reward_hat", actions, logs)
    rounds = _validate_rounds(
        logs["reward"].to_numpy(dtype=np.float64, na_value=np.nan), codes,
        logs["propensity"].to_numpy(dtype=np.float64, na_value=np.nan), tgt, hat, need_hat=bool(need_hat))
    ests = _estimates(names, rounds, ci, ci_method, n_bootstrap, random_state)
    frame = pd.DataFrame([{k: getattr(e, k) for k in ("value", "low", "high", "se", "n")} for e in ests],
                         index=pd.Index(names, name="estimator"))
    return frame


# ---------------------------------------------------------------------------------------------
# Exact values in simulation
# ---------------------------------------------------------------------------------------------
def policy_value_true(target: ArrayLike, ev: ArrayLike) -> float:
    """Exact value of a policy from the oracle's expected reward of every action.

    .. math:: V(\\pi) = \\frac{1}{n}\\sum_i \\sum_a \\pi(a|x_i)\\, \\mathrm{EV}(x_i, a)

    Parameters
    ----------
    target : array-like of shape (n, n_actions)
        The policy's action probabilities (rows sum to 1).
    ev : array-like of shape (n, n_actions)
        The simulator's true expected reward of each action at each decision point.

    Returns
    -------
    float

    Examples
    --------
    >>> policy_value_true([[1.0, 0.0], [0.5, 0.5]], [[0.2, 0.4], [0.6, 1.0]])  # (0.2 + 0.8) / 2
    0.5
    """
    tgt = _float_array(target, "target", 2)
    if tgt.shape[0] == 0:
        raise ValidationError("target must hold at least one decision point, got an empty array")
    _check_finite(tgt, "target")
    if (tgt < 0).any():
        i, j = _first_bad(tgt < 0)
        raise ValidationError(f"target must hold probabilities >= 0, got {_py(tgt[i, j])!r} at row {i}, column {j}")
    bad = np.abs(tgt.sum(axis=1) - 1.0) > ROW_SUM_TOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"target rows must sum to 1 (tolerance {ROW_SUM_TOL:g}), got {float(tgt[i].sum()):.10g} in row {i}")
    ev_arr = _float_array(ev, "ev", 2)
    if ev_arr.shape != tgt.shape:
        raise ValidationError(f"ev must have the shape of target {tgt.shape}, got {ev_arr.shape}")
    _check_finite(ev_arr, "ev")
    return float(np.einsum("ij,ij->i", tgt, ev_arr).mean())


def normalised_value(v_policy: float, v_never: float, v_reference: float) -> float:
    """Policy value on a scale where never offering is 0 and the reference (e.g. oracle) is 1.

    .. math:: \\frac{v - v_{never}}{v_{ref} - v_{never}}

    Parameters
    ----------
    v_policy, v_never, v_reference : float
        Values of the policy, of the never-offer policy and of the reference policy.

    Returns
    -------
    float

    Raises
    ------
    ValidationError
        When ``v_reference == v_never`` (the scale has no length) or a value is not finite.

    Examples
    --------
    >>> normalised_value(0.5, 0.25, 1.25)   # (0.5 - 0.25) / (1.25 - 0.25)
    0.25
    """
    vals = {"v_policy": v_policy, "v_never": v_never, "v_reference": v_reference}
    for name, v in vals.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(v)):
            raise ValidationError(f"{name} must be a finite number, got {v!r}")
    if float(v_reference) == float(v_never):
        raise ValidationError(
            f"v_reference must differ from v_never to define the scale, got both equal to {float(v_never)!r}")
    return (float(v_policy) - float(v_never)) / (float(v_reference) - float(v_never))


# ---------------------------------------------------------------------------------------------
# Champion against challenger on the same logs
# ---------------------------------------------------------------------------------------------
#: Verdicts of :func:`compare`.
VERDICTS = ("better", "not distinguishable", "worse")


@dataclass(frozen=True)
class Comparison:
    """A challenger policy's value against the champion's, estimated on the same logged rounds.

    Attributes
    ----------
    estimator : str
        The off-policy estimator used for both policies.
    champion, challenger : Estimate
        Each policy's value with its own interval.
    difference : float
        ``challenger.value - champion.value``.
    low, high : float
        Interval of the difference, from the *paired* per-round differences.
    se : float
        Standard error of the difference (paired; delta method for SNIPS).
    n : int
        Number of logged rounds.
    ci : float
        Confidence level.
    ci_method : str
        ``"normal"`` or ``"bootstrap"``.
    min_effect : float
        The smallest difference that counts as better or worse.
    verdict : str
        ``"better"`` iff ``low > min_effect``, ``"worse"`` iff ``high < -min_effect``, else
        ``"not distinguishable"``.

    Examples
    --------
    >>> e = Estimate("ips", 0.5, 0.4, 0.6, 0.05, 10, 0.95, "normal")
    >>> c = Comparison("ips", e, e, 0.0, -0.01, 0.01, 0.005, 10, 0.95, "normal", 0.0, "not distinguishable")
    >>> c.to_dict()["champion"]["value"], c.verdict
    (0.5, 'not distinguishable')
    """

    estimator: str
    champion: Estimate
    challenger: Estimate
    difference: float
    low: float
    high: float
    se: float
    n: int
    ci: float
    ci_method: str
    min_effect: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (the estimates as dicts), for logging and JSON."""
        return asdict(self)


def _policy_matrix(x: Any, name: str, actions: list[str], logs: pd.DataFrame) -> np.ndarray:
    """An (n, n_actions) matrix from an array, or from a frame's ``p_<action>`` / ``<action>`` columns."""
    n = len(logs)
    if isinstance(x, pd.DataFrame):
        pcols = [f"p_{a}" for a in actions]
        if all(c in x.columns for c in pcols):
            extra = sorted(str(c)[2:] for c in x.columns if isinstance(c, str) and c.startswith("p_")
                           and c not in pcols and f"ev_{str(c)[2:]}" in x.columns)
            if extra:
                raise ValidationError(
                    f"{name} has p_<action> columns for actions {extra} that are not in actions {actions}; "
                    f"actions must list every action of the policy")
            cols = pcols
        elif all(a in x.columns for a in actions):
            cols = list(actions)
        else:
            missing = [c for c in pcols if c not in x.columns]
            raise ValidationError(
                f"{name} must have a column p_<action> (or <action>) for every action in actions {actions}, "
                f"missing {missing}")
        if len(x) != n:
            raise ValidationError(
                f"{name} must have one row per logged round: expected {n} rows (len(logs)), got {len(x)}")
        if not x.index.equals(logs.index):
            raise ValidationError(
                f"{name} must have the same index as logs (rows are matched by label), got a different index")
        return _float_array(x[cols].to_numpy(dtype=np.float64, na_value=np.nan), name, 2)
    arr = _float_array(x, name, 2)
    if arr.shape != (n, len(actions)):
        raise ValidationError(
            f"{name} must have shape (n, n_actions) = ({n}, {len(actions)}): one row per logged round and "
            f"one column per action {actions} in that order, got shape {arr.shape}")
    return arr


def _hat_matrix(x: Any, actions: list[str], logs: pd.DataFrame) -> np.ndarray:
    if isinstance(x, pd.DataFrame) and all(f"ev_{a}" in x.columns for a in actions) \
            and not all(a in x.columns for a in actions):
        x = x[[f"ev_{a}" for a in actions]].set_axis(actions, axis=1)
    return _action_matrix(x, "reward_hat", actions, logs)


@accepts_old_form(old=("champion", "challenger", "logs"))
def compare(logs: pd.DataFrame, *, champion: Any, challenger: Any, actions: Sequence[str],
            reward_hat: Any = None, estimator: str = "dr", ci: float = 0.95, ci_method: str = "normal",
            n_bootstrap: int = 1000, random_state: int | np.random.Generator | None = 0,
            min_effect: float = 0.0, max_weight: float | None = None) -> Comparison:
    """Is the challenger policy better than the champion? Both estimated on the same logs, paired.

    Both policies are evaluated on the same logged rounds, so their estimation errors are
    strongly correlated; the interval of the difference is computed from the per-round
    differences of the estimator's contributions, not from the two separate intervals, and is
    usually much narrower. For DR, IPS and DM the difference is a mean of per-round differences
    ``c_i(challenger) - c_i(champion)``; for SNIPS (a ratio) the normal interval uses the delta
    method with influence ``(w'_i (r_i - V') / mean(w')) - (w_i (r_i - V) / mean(w))``, and the
    bootstrap recomputes both ratios on the same resamples (paired bootstrap). The per-policy
    bootstrap intervals come from those same resamples and equal those of :func:`dr`,
    :func:`snips`… called with the same ``random_state``.

    Parameters
    ----------
    logs : DataFrame
        Logged rounds with ``action`` (name), ``propensity`` (of the logged action) and ``reward``.
        (Third, after the two policies, before 0.2.)
    champion, challenger : ndarray of shape (n, n_actions) or DataFrame, keyword-only
        Action probabilities of each policy at each logged round: an array with columns in the
        order of ``actions``, or a frame with a ``p_<action>`` column per action (a decisions
        frame) or a column per action name, with the index of ``logs``.
    actions : sequence of str
        Action names; their order defines the columns.
    reward_hat : ndarray or DataFrame, optional
        Predicted reward of every action, laid out like the policies (a frame may have
        ``ev_<action>`` columns); needed by ``"dr"`` and ``"dm"``.
    estimator : {"dr", "snips", "ips", "dm"}, default "dr"
    ci : float, default 0.95
        Confidence level of all intervals.
    ci_method : {"normal", "bootstrap"}, default "normal"
    n_bootstrap : int, default 1000
    random_state : int, Generator or None, default 0
        Seed of the bootstrap.
    min_effect : float, default 0.0
        Margin (>= 0, in reward units) the difference must clear to be called better or worse.
    max_weight : float or None, default None
        Clip the importance weights at this value (see :func:`dr`); both policies on the same
        clipped weights.

    Returns
    -------
    Comparison

    Raises
    ------
    ValidationError
        Policies whose shape or columns do not match ``logs`` and ``actions``; logged actions not
        in ``actions``; an unknown estimator; DR/DM without ``reward_hat``; and everything the
        estimators themselves refuse (see :func:`dr`).

    Examples
    --------
    >>> import pandas as pd
    >>> logs = pd.DataFrame({"action": ["none", "chat"] * 50, "propensity": 0.5,
    ...                      "reward": [0.0, 1.0] * 50})
    >>> never = [[1.0, 0.0]] * 100
    >>> always = [[0.0, 1.0]] * 100
    >>> c = compare(logs, champion=never, challenger=always, actions=["none", "chat"], estimator="snips")
    >>> c.champion.value, c.challenger.value, c.difference, c.verdict
    (0.0, 1.0, 1.0, 'better')
    """
    if not isinstance(logs, pd.DataFrame):
        raise ValidationError(f"logs must be a pandas DataFrame, got {type(logs).__name__}")
    missing = [c for c in ("action", "propensity", "reward") if c not in logs.columns]
    if missing:
        raise ValidationError(f"logs must have columns ['action', 'propensity', 'reward'], missing {missing}")
    if isinstance(actions, str):
        raise ValidationError(f"actions must be a sequence of action names, got the string {actions!r}")
    actions = list(actions)
    if not actions or len(set(actions)) != len(actions):
        raise ValidationError(f"actions must be a non-empty sequence of distinct names, got {actions}")
    if estimator not in ESTIMATORS:
        raise ValidationError(f"estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")
    if ci is None:
        raise ValidationError("ci must be a confidence level in (0, 1) for a comparison, got None")
    _check_ci_args(ci, ci_method, n_bootstrap)
    if isinstance(min_effect, bool) or not isinstance(min_effect, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(min_effect)) or float(min_effect) < 0:
        raise ValidationError(f"min_effect must be a finite number >= 0, got {min_effect!r}")
    need_hat = ESTIMATORS[estimator][1]
    if need_hat and reward_hat is None:
        raise ValidationError(
            f"estimator {estimator!r} needs reward_hat: expected an array of shape (n, {len(actions)}), got None; "
            f"pass reward_hat or use estimator='snips'")

    codes = pd.Index(actions).get_indexer(logs["action"])
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise ValidationError(
            f"logs['action'] must hold names among actions {actions}, got {_py(logs['action'].iloc[i])!r} "
            f"at row {_py(logs.index[i])!r}")
    tgt_cp = _policy_matrix(champion, "champion", actions, logs)
    tgt_ch = _policy_matrix(challenger, "challenger", actions, logs)
    hat = None if reward_hat is None else _hat_matrix(reward_hat, actions, logs)
    reward = logs["reward"].to_numpy(dtype=np.float64, na_value=np.nan)
    prop = logs["propensity"].to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        r_cp = _validate_rounds(reward, codes, prop, tgt_cp, hat, need_hat=need_hat, max_weight=max_weight)
    except ValidationError as err:
        raise ValidationError(str(err).replace("target", "champion", 1)) from err
    try:
        r_ch = _validate_rounds(reward, codes, prop, tgt_ch, hat, need_hat=need_hat, max_weight=max_weight)
    except ValidationError as err:
        raise ValidationError(str(err).replace("target", "challenger", 1)) from err

    fn = ESTIMATORS[estimator][0]
    (num0, den0), (num1, den1) = fn(r_cp), fn(r_ch)
    n = reward.shape[0]
    v0, v1 = _ratio(num0, den0), _ratio(num1, den1)
    se0, se1 = _standard_error(num0, den0, v0), _standard_error(num1, den1, v1)
    diff = v1 - v0
    # Paired standard error: per-round influence of the difference.
    if n < 2 or not math.isfinite(diff):
        se_d = math.nan
    elif den0 is None:
        se_d = float(np.std(num1 - num0, ddof=1)) / math.sqrt(n)
    else:
        assert den1 is not None
        psi = (num1 - v1 * den1) / den1.mean() - (num0 - v0 * den0) / den0.mean()
        se_d = float(np.sqrt(np.sum(psi * psi) / (n - 1))) / math.sqrt(n)

    level = float(ci)
    if ci_method == "normal":
        z = NormalDist().inv_cdf(0.5 + level / 2.0)
        bounds = [(v - z * s, v + z * s) for v, s in ((v0, se0), (v1, se1), (diff, se_d))]
    else:
        rng = np.random.default_rng(random_state)
        reps = _bootstrap_ratios([num0, num1], [den0, den1], n_bootstrap, rng)
        reps = np.column_stack([reps, reps[:, 1] - reps[:, 0]])
        alpha = 1.0 - level
        bounds = []
        for k in range(3):
            finite = reps[:, k][~np.isnan(reps[:, k])]
            if finite.size < reps.shape[0]:
                logger.warning("compare (%s): %d of %d bootstrap resamples had no weight and were dropped",
                               estimator, reps.shape[0] - finite.size, reps.shape[0])
            lo, hi = (float(q) for q in np.quantile(finite, [alpha / 2, 1 - alpha / 2])) if finite.size \
                else (math.nan, math.nan)
            bounds.append((lo, hi))
    est0 = Estimate(estimator, v0, bounds[0][0], bounds[0][1], se0, n, level, ci_method)
    est1 = Estimate(estimator, v1, bounds[1][0], bounds[1][1], se1, n, level, ci_method)
    low, high = bounds[2]
    m = float(min_effect)
    verdict = "better" if low > m else "worse" if high < -m else "not distinguishable"
    logger.info("compare (%s): challenger - champion = %.6g [%.6g, %.6g] -> %s", estimator, diff, low, high, verdict)
    return Comparison(estimator, est0, est1, float(diff), float(low), float(high), se_d, n, level, ci_method, m,
                      verdict)


__all__ += ["Comparison", "compare", "VERDICTS"]
