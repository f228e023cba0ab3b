"""The learners: a channel model (outcome probabilities per action) and an offer model (uplift).

Where it sits: features → **models** → policy. Both are scikit-learn-style estimators on LightGBM
that work on any feature table (a DataFrame of numbers), so a data scientist can bring their own
features and logs of logged bandit feedback ``(x, action, propensity, outcome)``.

* :class:`ChannelModel` — for every action (``none`` and each channel, any number of them) the
  calibrated probabilities that an offer is accepted, that the visitor's problem ends up solved,
  and that the visitor leaves. One pooled LightGBM per outcome ("head"), with the action as a
  categorical input and the action's per-request channel context (current wait, language served)
  as inputs; a longer wait never raises acceptance or success (LightGBM monotone constraints).
  With a :class:`~nextchannel.policy.PolicyConfig` these give every action's expected value.
* :class:`OfferModel` — the incremental value of offering (the best channel) versus not, learned
  with the doubly robust DR-learner (Kennedy 2020) from logged propensities. If the logs carry no
  randomisation (every propensity 0 or 1) it warns and falls back to a need-for-help model.

Calibration is isotonic, fitted on a held-out share of the training rows and stored as two arrays
(thresholds), so a bundle keeps it as JSON; models are kept as LightGBM text. Nothing is pickled.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from nextchannel.calibration import Calibrator
from nextchannel.errors import NotFittedError, ValidationError
from nextchannel.modelinputs import CONTEXT_COLUMNS, HEADS, context_columns
from nextchannel.modelinputs import lgb_names as _lgb_names
from nextchannel.schema import NONE_ACTION

__all__ = ["ChannelModel", "OfferModel", "ValueModel", "RewardModel", "Calibrator", "NoRandomisationWarning", "CONTEXT_COLUMNS",
           "context_columns"]

logger = logging.getLogger(__name__)

#: Funnel stages the success and leave heads condition on.
STAGE_NONE, STAGE_DISMISSED, STAGE_ACCEPTED = 0.0, 1.0, 2.0


class NoRandomisationWarning(UserWarning):
    """The logs hold no randomised decisions: uplift cannot be learned from them."""


# ---------------------------------------------------------------------------------------------
# Small shared pieces
# ---------------------------------------------------------------------------------------------
def _check_X(X: Any, name: str = "X") -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise ValidationError(f"{name} must be a pandas DataFrame of numeric features, got {type(X).__name__}")
    bad = [c for c in X.columns if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))]
    if bad:
        raise ValidationError(f"{name} columns must be numeric, got non-numeric columns {bad[:5]}")
    if X.columns.duplicated().any():
        raise ValidationError(f"{name} column names must be unique, got duplicates "
                              f"{sorted(set(X.columns[X.columns.duplicated()]))}")
    return X


def _vector(v: Any, name: str, n: int, dtype: Any = float) -> np.ndarray:
    arr = np.asarray(v.to_numpy() if isinstance(v, (pd.Series, pd.Index)) else v)
    if arr.ndim != 1 or len(arr) != n:
        raise ValidationError(f"{name} must be a 1-D array of length {n} (rows of X), got shape {arr.shape}")
    try:
        return arr.astype(dtype)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"{name} must hold {np.dtype(dtype).name} values: {err}") from err


def _lgb_params(est: Any, objective: str, seed: int) -> dict[str, Any]:
    return {
        "objective": objective, "learning_rate": est.learning_rate, "num_leaves": est.num_leaves,
        "min_data_in_leaf": est.min_child_samples, "lambda_l2": est.reg_lambda,
        "feature_fraction": est.colsample_bytree, "bagging_fraction": est.subsample,
        "bagging_freq": 1 if est.subsample < 1 else 0, "num_threads": est.n_jobs, "seed": seed,
        "deterministic": True, "force_row_wise": True, "verbose": -1,
    }


class _LGBMBase(BaseEstimator):
    """Shared hyper-parameters (stored untouched, scikit-learn style)."""

    def __init__(self, n_estimators: int = 150, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 40, reg_lambda: float = 1.0, subsample: float = 1.0,
                 colsample_bytree: float = 1.0, categorical_features: Sequence[str] = (),
                 calibration_fraction: float = 0.2, random_state: int = 0, n_jobs: int = 1) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.categorical_features = categorical_features
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        if not isinstance(self.n_estimators, (int, np.integer)) or self.n_estimators < 1:
            raise ValidationError(f"n_estimators must be an integer >= 1, got {self.n_estimators!r}")
        if not 0 <= self.calibration_fraction < 1:
            raise ValidationError(f"calibration_fraction must be in [0, 1), got {self.calibration_fraction!r}")

    def _check_fitted(self) -> None:
        # n_features_in_ is set last in fit: a fit that failed half-way leaves the estimator unfitted.
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit first")


# ---------------------------------------------------------------------------------------------
# Channel model
# ---------------------------------------------------------------------------------------------
class ChannelModel(_LGBMBase):
    """Calibrated P(accept), P(success), P(leave) for every action, from logged decisions.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, reg_lambda, subsample, colsample_bytree
        LightGBM settings, per head.
    categorical_features : sequence of str
        Columns of ``X`` holding category codes.
    calibration_fraction : float, default 0.2
        Share of rows held out to fit the isotonic calibration (0: none).
    random_state : int, default 0
    n_jobs : int, default 1

    Attributes
    ----------
    actions_ : tuple of str
        ``("none", *channels)``; the action code is the index.
    boosters_ : dict of lightgbm.Booster
        One per head (``accept``, ``success``, ``leave``).
    calibrators_ : dict of Calibrator
    feature_names_ : list of str
        ``X``'s columns then :data:`CONTEXT_COLUMNS`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 3000
    >>> X = pd.DataFrame({"idle_s": rng.exponential(30, n)})
    >>> action = rng.choice(["none", "chat", "email"], n)
    >>> wait = pd.DataFrame({"wait_chat_s": rng.uniform(0, 600, n), "wait_email_s": np.zeros(n)})
    >>> offered = action != "none"
    >>> accepted = offered & (rng.random(n) < 0.6 * np.exp(-wait["wait_chat_s"].to_numpy() / 300))
    >>> success = accepted & (rng.random(n) < 0.7)
    >>> m = ChannelModel(n_estimators=20).fit(X, action, accepted=accepted, success=success, context=wait,
    ...                                       actions=("none", "chat", "email"))
    >>> p = m.predict_proba(X.head(1), context=wait.head(1))
    >>> sorted(p), p["accept"].shape
    (['accept', 'leave', 'success'], (1, 3))
    """

    def fit(self, X: pd.DataFrame, action: Any, reward: Any = None, propensity: Any = None, *,
            accepted: Any, success: Any, left: Any = None, context: pd.DataFrame | None = None,
            actions: Sequence[str] | None = None, early_stopping_rounds: int = 0) -> "ChannelModel":
        """Fit the heads on logged decisions.

        Parameters
        ----------
        X : DataFrame (n, n_features)
        action : array (n,) of action names (``"none"`` or a channel)
        reward, propensity : ignored here (kept for a uniform signature across learners)
        accepted, success, left : bool arrays (n,)
            Outcomes: offer accepted; problem solved (with or without the offer); visitor left.
        context : DataFrame, optional
            Per-request channel context: ``wait_<channel>_s`` and ``lang_ok_<channel>`` columns
            (missing columns: wait 0, language served).
        actions : sequence of str, optional
            All actions, ``"none"`` first (default: ``"none"`` + the channels seen, sorted).
        early_stopping_rounds : int, default 0
            With > 0, each head stops adding trees (``n_estimators`` is then the most) once its
            log-loss on the calibration rows has not improved for this many rounds; the trees kept
            are those of the best round (a fitting setting: the bundle stores only the trees).
        """
        self._check_params()
        X = _check_X(X)
        n = len(X)
        act = _vector(action, "action", n, object)
        acc = _vector(accepted, "accepted", n, bool)
        suc = _vector(success, "success", n, bool)
        lef = np.zeros(n, dtype=bool) if left is None else _vector(left, "left", n, bool)
        if actions is None:
            actions = (NONE_ACTION, *sorted(set(act) - {NONE_ACTION}))
        actions = tuple(actions)
        if not actions or actions[0] != NONE_ACTION:
            raise ValidationError(f"actions must start with {NONE_ACTION!r}, got {list(actions)[:3]}")
        unknown = sorted(set(act) - set(actions), key=str)
        if unknown:
            raise ValidationError(f"action values must be one of {list(actions)}, got {unknown[:5]}")
        if acc[act == NONE_ACTION].any():
            raise ValidationError("accepted must be False where action is 'none' (nothing was offered)")
        self.__dict__.pop("n_features_in_", None)  # unfitted until this fit succeeds
        self.actions_ = actions
        self.input_features_ = list(X.columns)
        self.feature_names_ = self.input_features_ + list(CONTEXT_COLUMNS)
        codes = pd.Index(actions).get_indexer(act)
        offered = codes > 0
        stage = np.where(~offered, STAGE_NONE, np.where(acc, STAGE_ACCEPTED, STAGE_DISMISSED))
        M = self._design(X, codes, context, stage)
        rng = np.random.default_rng(self.random_state)
        cal = rng.random(n) < self.calibration_fraction
        self.holdout_ = cal  # rows no head was fitted on (transient: not saved in bundles)
        self.boosters_, self.calibrators_, self.base_rates_ = {}, {}, {}
        labels = {"accept": acc, "success": suc, "leave": lef}
        for head in HEADS:
            rows = offered if head == "accept" else np.ones(n, dtype=bool)
            y = labels[head].astype(float)
            Mh = M
            if head == "accept":  # the stage is this head's outcome: hide it (and keep every wait)
                Mh = self._design(X, codes, context, STAGE_NONE)
            fit_rows, cal_rows = rows & ~cal, rows & cal
            self.base_rates_[head] = float(y[rows].mean()) if rows.any() else 0.0
            valid = (Mh[cal_rows], y[cal_rows].astype(float)) if early_stopping_rounds > 0 and cal_rows.sum() >= 50 \
                and len(np.unique(y[cal_rows])) == 2 else None
            self.boosters_[head] = self._train(Mh[fit_rows], y[fit_rows], head, valid, early_stopping_rounds)
            if cal_rows.sum() >= 50 and self.calibration_fraction > 0:
                raw = self.boosters_[head].predict(Mh[cal_rows])
                self.calibrators_[head] = Calibrator.fit(raw, y[cal_rows])
            else:
                self.calibrators_[head] = Calibrator.identity()
        self.n_features_in_ = X.shape[1]
        return self

    def _train(self, M: np.ndarray, y: np.ndarray, head: str, valid: tuple[np.ndarray, np.ndarray] | None = None,
               early_stopping_rounds: int = 0) -> lgb.Booster:
        params = _lgb_params(self, "binary", self.random_state)
        mono = [0] * len(self.feature_names_)
        if head in ("accept", "success"):
            mono[self.feature_names_.index("ctx_wait_s")] = -1
            params["monotone_constraints"] = mono
            params["monotone_constraints_method"] = "intermediate"
        cats = [self.feature_names_.index(c) for c in self.categorical_features if c in self.feature_names_]
        cats.extend([self.feature_names_.index("action_code"), self.feature_names_.index("stage")])
        if len(np.unique(y)) < 2:
            # A constant outcome (e.g. nobody ever left): a one-leaf model of that constant.
            y = y.copy()
            y[0] = 1.0 - y[0] if len(y) else 0.0
        ds = lgb.Dataset(M, label=y, feature_name=_lgb_names(self.feature_names_), categorical_feature=cats,
                         free_raw_data=True, params={"verbose": -1, "max_bin": 255})
        if valid is None or len(np.unique(y)) < 2:
            return lgb.train(params, ds, num_boost_round=int(self.n_estimators))
        vs = lgb.Dataset(valid[0], label=valid[1], reference=ds, params={"verbose": -1, "max_bin": 255})
        b = lgb.train({**params, "metric": "binary_logloss"}, ds, num_boost_round=int(self.n_estimators),
                      valid_sets=[vs], callbacks=[lgb.early_stopping(int(early_stopping_rounds), verbose=False)])
        # keep the trees of the best round only (the stored text then holds exactly those)
        return lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration or -1))

    def _design(self, X: pd.DataFrame, codes: np.ndarray, context: pd.DataFrame | None,
                stage: np.ndarray | float = STAGE_NONE) -> np.ndarray:
        """Rows of [features, action code, funnel stage, that action's wait, language served] as float64."""
        n = len(X)
        base = X.to_numpy(dtype=float, na_value=np.nan)
        wait = np.zeros(n)
        lang = np.ones(n)
        if context is not None:
            if len(context) != n:
                raise ValidationError(f"context must have {n} rows (one per row of X), got {len(context)}")
            for j, a in enumerate(self.actions_[1:], start=1):
                rows = codes == j
                if not rows.any():
                    continue
                wcol, lcol = f"wait_{a}_s", f"lang_ok_{a}"
                if wcol in context.columns:
                    wait[rows] = pd.to_numeric(context[wcol], errors="coerce").to_numpy(dtype=float, na_value=np.nan)[rows]
                if lcol in context.columns:
                    lang[rows] = context[lcol].to_numpy(dtype=float, na_value=np.nan)[rows]
        stage_v = np.broadcast_to(stage, (n,)).astype(float)
        # A dismissal happens before any queue: the dismissed path does not see the wait. (This also
        # makes the marginal P(success) of an offer monotone in the wait, see ``combine``.)
        wait = np.where(stage_v == STAGE_DISMISSED, 0.0, wait)
        return np.column_stack([base, codes.astype(float), stage_v, wait, lang])

    def design_all_actions(self, X: pd.DataFrame, context: pd.DataFrame | None = None) -> np.ndarray:
        """Model rows for every decision: ``none``, then each channel as dismissed, then as accepted.

        Shape ``(n * (2 * n_actions - 1), n_inputs)``, grouped per decision (see :meth:`slots`).
        """
        self._check_fitted()
        X = _check_X(X)
        if list(X.columns) != self.input_features_:
            missing = [c for c in self.input_features_ if c not in X.columns]
            if missing:
                raise ValidationError(f"X is missing features the model was fitted on: {missing[:5]}")
            X = X[self.input_features_]
        codes, stages = self.slots()
        r = len(codes)
        # Repeat by position, not label: a duplicated index label must not multiply rows.
        pos = np.repeat(np.arange(len(X)), r)
        rep = X.iloc[pos].reset_index(drop=True)
        ctx = None
        if context is not None:
            if len(context) != len(X):
                raise ValidationError(f"context must have {len(X)} rows (one per row of X), got {len(context)}")
            ctx = context.iloc[pos].reset_index(drop=True)
        return self._design(rep, np.tile(codes, len(X)), ctx, np.tile(stages, len(X)))

    def slots(self) -> tuple[np.ndarray, np.ndarray]:
        """(action code, stage) of the model rows of one decision: none, channels dismissed, channels accepted."""
        k = len(self.actions_) - 1
        codes = np.r_[0, np.arange(1, k + 1), np.arange(1, k + 1)].astype(float)
        stages = np.r_[STAGE_NONE, np.full(k, STAGE_DISMISSED), np.full(k, STAGE_ACCEPTED)]
        return codes, stages

    def predict_proba(self, X: pd.DataFrame, context: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
        """Calibrated outcome probabilities per action, each of shape ``(n, n_actions)``.

        ``accept`` (0 for ``none``); ``success`` and ``leave`` marginal over the funnel:
        ``P(success | c) = P(accept | c)·P(success | accepted c) + (1 − P(accept | c))·P(success | dismissed c)``.
        """
        # In chunks: every decision expands to 2·channels + 1 model rows, so a whole log at once
        # would hold that many copies of the feature table (a 326k-decision log took ~18 GB).
        self._check_fitted()
        n = len(X)
        chunk = max(1, self.predict_chunk_rows // (2 * len(self.actions_) - 1))
        parts = []
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            ctx = None if context is None else context.iloc[start:stop]
            M = self.design_all_actions(X.iloc[start:stop], ctx)
            parts.append(self.proba_from_design(M, stop - start))
        if not parts:
            return self.proba_from_design(self.design_all_actions(X, context), 0)
        return {h: np.concatenate([p[h] for p in parts]) for h in parts[0]}

    #: Model rows evaluated at once by :meth:`predict_proba` (bounds its memory: ~100 MB).
    predict_chunk_rows = 130_000

    def proba_from_design(self, M: np.ndarray, n: int) -> dict[str, np.ndarray]:
        raw = {h: self.calibrators_[h].transform(self.boosters_[h].predict(M)).reshape(n, -1) for h in HEADS}
        return self.combine(raw["accept"], raw["success"], raw["leave"])

    def combine(self, accept_rows: np.ndarray, success_rows: np.ndarray, leave_rows: np.ndarray) -> dict[str, np.ndarray]:
        """Marginal per-action probabilities from per-slot predictions (arrays ``(n, 2k+1)``)."""
        k = len(self.actions_) - 1
        # acceptance from the accepted-stage slots: they carry the real wait (the head ignores the stage)
        pa = np.concatenate([np.zeros((len(accept_rows), 1)), accept_rows[:, k + 1:]], axis=1)
        out = {"accept": pa}
        for head, rows in (("success", success_rows), ("leave", leave_rows)):
            dis, accd = rows[:, 1:k + 1], rows[:, k + 1:]
            if head == "success":
                # Accepting help never makes success less likely than dismissing it. With the
                # dismissed path blind to the wait, P(success | offer) = dis + P(accept)·(accd − dis)
                # is then a constant plus a product of non-negative terms that never grow with the
                # wait: a longer wait never raises it (property-tested).
                accd = np.maximum(accd, dis)
            marg = pa[:, 1:] * accd + (1 - pa[:, 1:]) * dis
            out[head] = np.concatenate([rows[:, :1], marg], axis=1)
        return out


# ---------------------------------------------------------------------------------------------
# Offer model
# ---------------------------------------------------------------------------------------------
class OfferModel(_LGBMBase):
    """Incremental value of offering versus not (uplift), by the DR-learner.

    For each logged decision i with logged action A_i, propensity π_i and reward R_i, and outcome
    predictions q(x_i, a) (e.g. the channel model's expected values), the doubly robust score of
    action a is ``Γ_i(a) = q(x_i, a) + 1[A_i = a] / π_i · (R_i − q(x_i, a))``; the pseudo-outcome
    ``ψ_i = Γ_i(c_i) − Γ_i(none)`` (``c_i`` = the channel that would be offered) is regressed on
    x. Its prediction τ(x) estimates E[R | offer c(x)] − E[R | none]. Weights ``1/π`` are clipped
    at ``max_weight``. With ``target="dm"`` the pseudo-outcome is the outcome model's own gain
    ``q(x, c) − q(x, none)`` (the direct method, distilled into one model: lower variance, biased
    where ``q`` is); the propensities then only decide whether uplift is identified at all.

    When every logged propensity is 0 or 1 the logs carry no randomisation and uplift is not
    identified: ``fit`` warns (:class:`NoRandomisationWarning`) and fits instead a need-for-help
    classifier on ``need`` (default: the visitor accepted an offer or started a contact), whose
    probability then serves as the offer score (``fallback_`` is True).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> n = 4000
    >>> X = pd.DataFrame({"stuck": rng.random(n)})
    >>> action = np.where(rng.random(n) < 0.5, "chat", "none")
    >>> reward = np.where(action == "chat", 2 * X["stuck"] - 1, 0.0) + rng.normal(0, .1, n)
    >>> m = OfferModel(n_estimators=30).fit(X, action, reward, np.full(n, 0.5),
    ...                                     reward_hat=np.zeros((n, 2)), actions=("none", "chat"))
    >>> tau = m.predict(pd.DataFrame({"stuck": [0.05, 0.95]}))
    >>> bool(tau[0] < 0 < tau[1])
    True
    """

    def __init__(self, n_estimators: int = 150, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 40, reg_lambda: float = 1.0, subsample: float = 1.0,
                 colsample_bytree: float = 1.0, categorical_features: Sequence[str] = (),
                 calibration_fraction: float = 0.0, random_state: int = 0, n_jobs: int = 1,
                 max_weight: float = 50.0, target: str = "dr") -> None:
        super().__init__(n_estimators, learning_rate, num_leaves, min_child_samples, reg_lambda, subsample,
                         colsample_bytree, categorical_features, calibration_fraction, random_state, n_jobs)
        self.max_weight = max_weight
        self.target = target

    def fit(self, X: pd.DataFrame, action: Any, reward: Any, propensity: Any, *,
            reward_hat: np.ndarray | None = None, offer_action: Any = None,
            actions: Sequence[str] | None = None, need: Any = None) -> "OfferModel":
        """Fit τ(x).

        Parameters
        ----------
        X : DataFrame (n, n_features)
        action : array (n,) of action names; reward : array (n,); propensity : array (n,) in (0, 1]
        reward_hat : array (n, n_actions), optional
            Predicted reward of every action (default: zeros, i.e. inverse propensity weighting).
        offer_action : array (n,) of channel names, optional
            The channel that would be offered at each row (default: argmax of ``reward_hat`` over channels).
        actions : sequence of str, optional
            ``"none"`` first; defines the columns of ``reward_hat``.
        need : bool array (n,), optional
            Label of the need-for-help fallback.
        """
        self._check_params()
        if self.target not in ("dr", "dm"):
            raise ValidationError(f"target must be 'dr' or 'dm', got {self.target!r}")
        X = _check_X(X)
        n = len(X)
        act = _vector(action, "action", n, object)
        r = _vector(reward, "reward", n)
        prop = _vector(propensity, "propensity", n)
        if not np.isfinite(r).all():
            raise ValidationError("reward must be finite numbers, got NaN or inf")
        if np.isnan(prop).any() or (prop < 0).any() or (prop > 1).any():
            raise ValidationError(f"propensity must be in [0, 1], got values in [{np.nanmin(prop)}, {np.nanmax(prop)}]")
        if actions is None:
            actions = (NONE_ACTION, *sorted(set(act) - {NONE_ACTION}))
        self.__dict__.pop("n_features_in_", None)  # unfitted until this fit succeeds
        self.actions_ = tuple(actions)
        self.feature_names_ = list(X.columns)
        codes = pd.Index(self.actions_).get_indexer(act)
        if (codes < 0).any():
            raise ValidationError(f"action values must be one of {list(self.actions_)}, got "
                                  f"{sorted(set(act[codes < 0]), key=str)[:5]}")
        cats = [self.feature_names_.index(c) for c in self.categorical_features if c in self.feature_names_]
        randomised = ((prop > 1e-12) & (prop < 1 - 1e-12)).any()
        self.fallback_ = not randomised
        if self.fallback_:
            msg = ("the logs carry no randomisation (every propensity is 0 or 1): the incremental value of "
                   "an offer cannot be learned from them; falling back to a need-for-help model (offer score = "
                   "P(needs help)). Log decisions with exploration (PolicyConfig.exploration) to learn uplift.")
            warnings.warn(msg, NoRandomisationWarning, stacklevel=2)
            logger.warning(msg)
            y = (codes > 0) & (r > 0) if need is None else _vector(need, "need", n, bool)
            params = _lgb_params(self, "binary", self.random_state)
            ds = lgb.Dataset(X.to_numpy(dtype=float, na_value=np.nan), label=y.astype(float),
                             feature_name=_lgb_names(self.feature_names_), categorical_feature=cats,
                             params={"verbose": -1})
            self.booster_ = lgb.train(params, ds, num_boost_round=int(self.n_estimators))
            self.n_features_in_ = X.shape[1]
            return self
        if (prop <= 0).any():
            raise ValidationError("propensity must be > 0 for every logged decision when logs are randomised, "
                                  f"got {int((prop <= 0).sum())} zeros")
        k = len(self.actions_)
        q = np.zeros((n, k)) if reward_hat is None else np.asarray(reward_hat, dtype=float)
        if q.shape != (n, k):
            raise ValidationError(f"reward_hat must have shape ({n}, {k}), got {q.shape}")
        if offer_action is None:
            c = 1 + np.argmax(q[:, 1:], axis=1)
        else:
            c = pd.Index(self.actions_).get_indexer(_vector(offer_action, "offer_action", n, object))
            if (c <= 0).any():
                raise ValidationError(f"offer_action must be channels of {list(self.actions_[1:])}")
        w = np.minimum(1.0 / prop, self.max_weight) if self.target == "dr" else np.zeros(n)
        rows = np.arange(n)
        gamma_c = q[rows, c] + (codes == c) * w * (r - q[rows, c])
        gamma_0 = q[:, 0] + (codes == 0) * w * (r - q[:, 0])
        psi = gamma_c - gamma_0
        params = _lgb_params(self, "regression", self.random_state)
        ds = lgb.Dataset(X.to_numpy(dtype=float, na_value=np.nan), label=psi,
                         feature_name=_lgb_names(self.feature_names_), categorical_feature=cats, params={"verbose": -1})
        self.booster_ = lgb.train(params, ds, num_boost_round=int(self.n_estimators))
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """τ(x): the estimated incremental value of offering (or P(needs help) in fallback)."""
        M = self._matrix(X)  # checks fitted first
        return self.booster_.predict(M)

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        X = _check_X(X)
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ValidationError(f"X is missing features the model was fitted on: {missing[:5]}")
        return X[self.feature_names_].to_numpy(dtype=float, na_value=np.nan)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per-feature contributions to τ(x) (SHAP values; last column the expected value)."""
        M = self._matrix(X)
        return self.booster_.predict(M, pred_contrib=True)


# ---------------------------------------------------------------------------------------------
# Value model: the per-request student
# ---------------------------------------------------------------------------------------------
class ValueModel(_LGBMBase):
    """Expected value of every action from features and channel context: one small regressor per action.

    The scorer decides from this model on every request. It is fitted to reproduce given expected
    values (in :func:`nextchannel.training.train`: the channel model's, i.e. a distillation of the
    funnel into ``n_actions`` compact models), because evaluating the channel model for a decision
    costs ``3·n_channels + 2`` model rows while this costs one row per action. A channel's value
    never rises with its own wait (monotone constraint on ``wait_<ch>_s``).

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> X = pd.DataFrame({"need": rng.random(2000)})
    >>> C = pd.DataFrame({"open_chat": np.ones(2000), "wait_chat_s": rng.uniform(0, 900, 2000),
    ...                   "lang_ok_chat": np.ones(2000)})
    >>> ev = np.column_stack([np.zeros(2000), 3 * X["need"] - C["wait_chat_s"] / 300])
    >>> vm = ValueModel(n_estimators=40).fit(X, C, ev, actions=("none", "chat"))
    >>> vm.predict(X.head(2), C.head(2)).shape
    (2, 2)
    """

    def fit(self, X: pd.DataFrame, context: pd.DataFrame, ev: np.ndarray, *, actions: Sequence[str],
            rows: np.ndarray | None = None) -> "ValueModel":
        """Fit one regressor per action to ``ev[:, j]``.

        ``rows`` (bool, shape of ``ev``), optional: the rows each action's regressor learns from
        (default all) — e.g. only the decisions where that action was logged, with ``ev`` the
        logged reward (a per-action reward model).
        """
        self._check_params()
        X = _check_X(X)
        n = len(X)
        self.actions_ = tuple(actions)
        channels = self.actions_[1:]
        ev = np.asarray(ev, dtype=float)
        if ev.shape != (n, len(self.actions_)):
            raise ValidationError(f"ev must have shape ({n}, {len(self.actions_)}), got {ev.shape}")
        self.input_features_ = list(X.columns)
        self.context_features_ = context_columns(channels)
        self.feature_names_ = self.input_features_ + self.context_features_
        self.__dict__.pop("n_features_in_", None)  # unfitted until this fit succeeds
        M = self._matrix(X, context)
        cats = [self.feature_names_.index(c) for c in self.categorical_features if c in self.feature_names_]
        if rows is not None:
            rows = np.asarray(rows, dtype=bool)
            if rows.shape != ev.shape:
                raise ValidationError(f"rows must have shape {ev.shape} (like ev), got {rows.shape}")
        self.boosters_ = []
        for j, a in enumerate(self.actions_):
            sel = slice(None) if rows is None else rows[:, j]
            params = _lgb_params(self, "regression", self.random_state)
            if j > 0:
                mono = [0] * len(self.feature_names_)
                mono[self.feature_names_.index(f"wait_{a}_s")] = -1
                params["monotone_constraints"] = mono
                params["monotone_constraints_method"] = "intermediate"
            ds = lgb.Dataset(M[sel], label=ev[sel, j], feature_name=_lgb_names(self.feature_names_),
                             categorical_feature=cats, params={"verbose": -1})
            self.boosters_.append(lgb.train(params, ds, num_boost_round=int(self.n_estimators)))
        self.n_features_in_ = X.shape[1]
        return self

    def _matrix(self, X: pd.DataFrame, context: pd.DataFrame) -> np.ndarray:
        if len(context) != len(X):
            raise ValidationError(f"context must have {len(X)} rows (one per row of X), got {len(context)}")
        missing = [c for c in self.context_features_ if c not in context.columns]
        if missing:
            raise ValidationError(f"context is missing columns {missing[:5]}")
        return np.column_stack([X[self.input_features_].to_numpy(dtype=float, na_value=np.nan),
                                context[self.context_features_].to_numpy(dtype=float, na_value=np.nan)])

    def predict(self, X: pd.DataFrame, context: pd.DataFrame) -> np.ndarray:
        """Expected value per action, shape ``(n, n_actions)``."""
        self._check_fitted()
        M = self._matrix(_check_X(X), context)
        return self.predict_matrix(M)

    def predict_matrix(self, M: np.ndarray) -> np.ndarray:
        return np.column_stack([b.predict(M) for b in self.boosters_])


class RewardModel(_LGBMBase):
    """Expected reward of every action from logged ``(x, action, reward)``: one pooled regressor.

    The action is a categorical input and the action's own per-request context (open, wait,
    language served) sits beside the features, so actions share what they have in common (the
    alternative, one regressor per action on that action's rows, is a :class:`ValueModel` fitted
    with ``rows``; :func:`nextchannel.train` measures both). A longer wait never raises the value
    (monotone constraint).

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> X = pd.DataFrame({"x": rng.random(3000)})
    >>> a = rng.choice(["none", "mail"], 3000)
    >>> r = np.where(a == "mail", 2 * X["x"] - 1, 0.0) + rng.normal(0, .1, 3000)
    >>> m = RewardModel(n_estimators=40).fit(X, a, r, actions=("none", "mail"))
    >>> q = m.predict(pd.DataFrame({"x": [0.1, 0.9]}))
    >>> bool(q[0, 1] < q[0, 0] and q[1, 1] > q[1, 0])
    True
    """

    _CTX = ("action_code", "ctx_open", "ctx_wait_s", "ctx_lang_ok")

    def fit(self, X: pd.DataFrame, action: Any, reward: Any, *, actions: Sequence[str],
            context: pd.DataFrame | None = None) -> "RewardModel":
        self._check_params()
        X = _check_X(X)
        n = len(X)
        self.actions_ = tuple(actions)
        codes = pd.Index(self.actions_).get_indexer(_vector(action, "action", n, object))
        if (codes < 0).any():
            raise ValidationError(f"action values must be one of {list(self.actions_)}")
        r = _vector(reward, "reward", n)
        self.input_features_ = list(X.columns)
        self.feature_names_ = self.input_features_ + list(self._CTX)
        self.__dict__.pop("n_features_in_", None)
        M = self._design(X, codes, context)
        params = _lgb_params(self, "regression", self.random_state)
        mono = [0] * len(self.feature_names_)
        mono[self.feature_names_.index("ctx_wait_s")] = -1
        params.update(monotone_constraints=mono, monotone_constraints_method="intermediate")
        cats = [self.feature_names_.index(c) for c in self.categorical_features if c in self.feature_names_]
        cats.append(self.feature_names_.index("action_code"))
        ds = lgb.Dataset(M, label=r, feature_name=_lgb_names(self.feature_names_), categorical_feature=cats,
                         params={"verbose": -1})
        self.booster_ = lgb.train(params, ds, num_boost_round=int(self.n_estimators))
        self.n_features_in_ = X.shape[1]
        return self

    def _design(self, X: pd.DataFrame, codes: np.ndarray, context: pd.DataFrame | None) -> np.ndarray:
        n = len(X)
        ctx = np.column_stack([np.ones(n), np.zeros(n), np.ones(n)])
        if context is not None:
            for j, a in enumerate(self.actions_[1:], start=1):
                sel = codes == j
                for k, (col, default) in enumerate(((f"open_{a}", 1.0), (f"wait_{a}_s", 0.0), (f"lang_ok_{a}", 1.0))):
                    if col in context.columns and sel.any():
                        ctx[sel, k] = context[col].to_numpy(dtype=float, na_value=default)[sel]
        return np.column_stack([X[self.input_features_].to_numpy(dtype=float, na_value=np.nan),
                                codes.astype(float), ctx])

    def predict(self, X: pd.DataFrame, context: pd.DataFrame | None = None) -> np.ndarray:
        """Expected reward of every action, shape ``(n, n_actions)``."""
        self._check_fitted()
        X = _check_X(X)
        n = len(X)
        return np.column_stack([self.booster_.predict(self._design(X, np.full(n, j), context))
                                for j in range(len(self.actions_))])


# ---------------------------------------------------------------------------------------------
# State as data (for bundles): parameters and metadata as JSON, boosters as LightGBM text
# ---------------------------------------------------------------------------------------------
def _booster_from_text(text: str, what: str) -> lgb.Booster:
    try:
        return lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as err:
        raise ValidationError(f"{what} is not a valid LightGBM model: {err}") from err


def channel_model_state(m: ChannelModel) -> tuple[dict[str, Any], dict[str, str]]:
    """(JSON-able metadata, {head: LightGBM model text}) of a fitted ChannelModel."""
    m._check_fitted()
    meta = {"params": m.get_params(), "actions": list(m.actions_), "input_features": m.input_features_,
            "calibration": {h: c.to_dict() for h, c in m.calibrators_.items()}, "base_rates": m.base_rates_}
    meta["params"]["categorical_features"] = list(meta["params"]["categorical_features"])
    return meta, {h: b.model_to_string() for h, b in m.boosters_.items()}


def channel_model_from_state(meta: Mapping[str, Any], texts: Mapping[str, "str | lgb.Booster"]) -> ChannelModel:
    """A fitted ChannelModel from :func:`channel_model_state`'s output (boosters as text or already loaded)."""
    m = ChannelModel(**meta["params"])
    m.actions_ = tuple(meta["actions"])
    m.input_features_ = list(meta["input_features"])
    m.feature_names_ = m.input_features_ + list(CONTEXT_COLUMNS)
    m.n_features_in_ = len(m.input_features_)
    m.calibrators_ = {h: Calibrator.from_dict(meta["calibration"][h]) for h in HEADS}
    m.base_rates_ = dict(meta["base_rates"])
    m.boosters_ = {h: texts[h] if isinstance(texts[h], lgb.Booster)
                   else _booster_from_text(texts[h], f"channel model head {h!r}") for h in HEADS}
    for h, b in m.boosters_.items():
        if b.feature_name() != _lgb_names(m.feature_names_):
            raise ValidationError(f"channel model head {h!r} was trained on other features than its metadata lists")
    return m


def offer_model_state(m: OfferModel) -> tuple[dict[str, Any], str]:
    m._check_fitted()
    params = m.get_params()
    params["categorical_features"] = list(params["categorical_features"])
    meta = {"params": params, "actions": list(m.actions_), "feature_names": m.feature_names_,
            "fallback": bool(m.fallback_)}
    return meta, m.booster_.model_to_string()


def offer_model_from_state(meta: Mapping[str, Any], text: "str | lgb.Booster") -> OfferModel:
    """A fitted OfferModel from :func:`offer_model_state`'s output (booster as text or already loaded)."""
    m = OfferModel(**meta["params"])
    m.actions_ = tuple(meta["actions"])
    m.feature_names_ = list(meta["feature_names"])
    m.n_features_in_ = len(m.feature_names_)
    m.fallback_ = bool(meta["fallback"])
    m.booster_ = text if isinstance(text, lgb.Booster) else _booster_from_text(text, "offer model")
    if m.booster_.feature_name() != _lgb_names(m.feature_names_):
        raise ValidationError("offer model was trained on other features than its metadata lists")
    return m


def value_model_state(m: ValueModel) -> tuple[dict[str, Any], list[str]]:
    m._check_fitted()
    params = m.get_params()
    params["categorical_features"] = list(params["categorical_features"])
    meta = {"params": params, "actions": list(m.actions_), "input_features": m.input_features_}
    return meta, [b.model_to_string() for b in m.boosters_]


def value_model_from_state(meta: Mapping[str, Any], texts: Sequence[str | lgb.Booster]) -> ValueModel:
    m = ValueModel(**meta["params"])
    m.actions_ = tuple(meta["actions"])
    m.input_features_ = list(meta["input_features"])
    m.context_features_ = context_columns(m.actions_[1:])
    m.feature_names_ = m.input_features_ + m.context_features_
    m.n_features_in_ = len(m.input_features_)
    if len(texts) != len(m.actions_):
        raise ValidationError(f"value model needs {len(m.actions_)} boosters (one per action), got {len(texts)}")
    m.boosters_ = [t if isinstance(t, lgb.Booster) else _booster_from_text(t, f"value model for {a!r}")
                   for a, t in zip(m.actions_, texts)]
    for a, b in zip(m.actions_, m.boosters_):
        if b.feature_name() != _lgb_names(m.feature_names_):
            raise ValidationError(f"value model for {a!r} was trained on other features than its metadata lists")
    return m
