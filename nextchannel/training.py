"""Training: from decision and outcome logs to a trained :class:`~nextchannel.modelset.ModelSet`.

Where it sits: logs → **training** → model set → bundle → scorer. :func:`train` builds the
features — the library's built-in web features point-in-time from events
(:func:`nextchannel.features.features_many`), and/or the user's own columns per decision
(:class:`~nextchannel.featurespec.FeatureSpec`) — learns every action's expected value, guards
against personalisation that is not better than the best single action, fits the offer model
(offer score and reasons) and records what it was trained on.

The decision log
----------------
One row per decision point: the logged ``action`` (``"none"`` or a channel) and its
``propensity`` under the logging policy (in (0, 1]); ``session_id`` and ``ts`` (needed with
``events``); optional ``customer_id`` and per-request channel context ``open_<ch>``,
``wait_<ch>_s``, ``lang_ok_<ch>``. Outcomes are either

* the **funnel** — ``accepted``, ``success`` and (optional) ``left``: the reward learned is
  recomputed with the policy's business values (``value_success·success − cost·accepted −
  annoyance·dismissed − leave_cost·left``), so that the value learned is the value as the
  business defines it now; or
* a plain **reward** column (any real number: revenue, a visit, a solved case minus its cost), for
  actions without an accept step; each action's expected reward is learned directly.

The guard
---------
Before the bundle is built, the learners are cross-fitted on folds of the logs (decisions of one
session stay in one fold; the fold teachers are fitted once and also give ``TrainConfig.pessimism``
the spread of each channel's gain over "none"). On the held-out folds the library's doubly robust
estimator (:func:`nextchannel.evaluate.dr`, with the cross-fitted values as its reward model) estimates,
with 95% intervals, the learned greedy policy — with the ``offer_margin`` the bundle decides with
(the policy's, or the one ``tune_margin`` chose: the margin is chosen first) — ``none`` for
everyone and every constant action; :func:`nextchannel.evaluate.compare` gives the paired
difference of the learned policy and the best constant. ``TrainConfig.guard_rule`` decides
(:data:`GUARD_RULES`):

* ``"not_below"`` (the default): keep the learned policy unless its DR estimate is below the best
  constant's — with unbiased estimates, pick the higher. Measured on the simulator
  (``benchmarks/learning_curve.py``, README issue 9; six logs of 10k–20k sessions): the 95% interval
  is as wide as the learned policy's true gain, so ``"better"`` kept a truly better learned policy on
  1 of 6 logs and shipped "none" on the others; ``"not_below"`` kept it on 6 of 6 and refused
  "offer everywhere" on 6 of 6. The price: a policy only slightly worse than the constant can pass
  (a shuffled-outcome learner truly 0.006 per decision worse did).
* ``"better"``: keep it only if significantly better (the interval above 0; the rule before).
* ``"not_worse"``: keep it unless significantly worse (weak protection).
* ``"clipped_not_below"``: as ``"not_below"``, the importance weights clipped at
  :data:`GUARD_MAX_WEIGHT` (less variance, biased toward the learner's own estimate).

When the rule does not keep the learned policy, :func:`train` warns
(:class:`~nextchannel.errors.PersonalisationNotBetterWarning`) and the model set decides with the
best constant action (``TrainConfig(guard=False)`` skips the check, ``guard="warn"`` checks and
keeps the learned policy). The figures, every rule's decision on them (``keeps_learned``) and the
rule applied (``rule``) go to the model set's ``evaluation["guard"]`` (the bundle manifest).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from nextchannel.compat import is_dask_collection
from nextchannel.conventions import accepts_old_form
from nextchannel.errors import ConfigError, ConstantModelWarning, PersonalisationNotBetterWarning, ValidationError
from nextchannel.features import CATEGORICAL_FEATURES, features_many
from nextchannel.featurespec import FeatureSpec
from nextchannel.modelset import ModelSet
from nextchannel.models import ChannelModel, OfferModel, RewardModel, ValueModel
from nextchannel.policy import PolicyConfig, eligibility_frame, expected_values, greedy_many
from nextchannel.profile import ProfileConfig

__all__ = ["TrainConfig", "train", "logged_reward", "context_frame", "select_margin", "next_decision", "session_reward",
           "pessimistic_target",
           "REQUIRED_DECISION_COLUMNS", "KNOWN_DECISION_COLUMNS", "MARGIN_GRID", "GUARD_RULES", "GUARD_MAX_WEIGHT"]

#: The guard's rules: when :func:`train` keeps the learned policy against the best constant action,
#: given the cross-fitted DR estimate of their difference (value per decision) and its 95% interval.
GUARD_RULES: dict[str, str] = {
    "not_below": "kept unless its DR estimate is below the best constant's",
    "better": "kept only if significantly better than the best constant (95%)",
    "not_worse": "kept unless significantly worse than the best constant (95%)",
    "clipped_not_below": "kept unless its DR estimate, importance weights clipped, is below the best constant's",
}
#: Largest importance weight of the ``"clipped_not_below"`` rule's DR estimate.
GUARD_MAX_WEIGHT: float = 10.0

#: Offer margins tried by :func:`select_margin` (in the unit of the business values).
MARGIN_GRID: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)

logger = logging.getLogger(__name__)

#: Columns every decision log needs (funnel outcomes; with a ``reward`` column instead, ``accepted``
#: and ``success`` are not needed, and ``session_id``/``ts`` only with events).
REQUIRED_DECISION_COLUMNS = ("session_id", "ts", "action", "propensity", "accepted", "success")
#: Decision-log columns :func:`train` reads besides the channel context.
KNOWN_DECISION_COLUMNS = ("session_id", "ts", "customer_id", "action", "propensity", "accepted", "success", "left",
                          "reward")


@dataclass(frozen=True)
class TrainConfig:
    """Learner settings for :func:`train` (JSON round-trip).

    Parameters
    ----------
    n_estimators, num_leaves, learning_rate, min_child_samples : LightGBM settings of the channel-model heads
    calibration_fraction : float, default 0.2
        Share of decisions held out to fit the isotonic calibration.
    offer_target : {"dm", "dr"}, default "dm"
        Pseudo-outcome of the offer model (see :class:`~nextchannel.models.OfferModel`).
    offer_n_estimators, offer_num_leaves : int, default 40, 7
        Size of the offer model, which gives each decision its offer score and, through its feature
        contributions (SHAP), its reasons; contributions cost grows with trees × leaves², so it is
        kept small (about 20 µs per explained decision at 40 × 7).
    value_n_estimators, value_num_leaves, value_learning_rate : int, int, float, default 60, 15, 0.1
        Size of the value model (one regressor per action) that the scorer evaluates on every
        request; it is distilled from the channel model's expected values on the training rows, each
        row once with its own channel context and once with another row's (so the effect of waits
        and opening hours is learned beyond the logged combinations).
    tune_margin : bool, default False
        Choose the policy's ``offer_margin`` from :data:`MARGIN_GRID` by the doubly robust estimate of
        the greedy policy's value on the held-out (calibration) decisions (the business's own margin,
        if larger, is kept). Off by default: measured on the simulator (60k training sessions), margin
        0 was best for every model and the DR estimates over the grid were too noisy (±0.03 on 16k
        held-out rows) to pick a margin — they chose 1.5, which kept only a tenth of the gain.
        The margin is chosen before the guard runs, so the guard tests the margin the bundle decides with.
    outcome : {"auto", "funnel", "reward"}, default "auto"
        What the models learn from: the funnel columns, or the ``reward`` column. ``"auto"``: the
        funnel when ``accepted`` or ``success`` is present (both are then required), else ``reward``.
    reward_model : {"pooled", "per_action"}, default "pooled"
        With a ``reward`` outcome: one pooled regressor with the action as an input, distilled into
        per-action regressors, or one regressor per action on that action's logged rows. Measured
        (``benchmarks/eval_own_data.py``, simulator logs as own data): pooled gained 10-17% of the
        oracle's gain over never offering where per-action lost 25-37% (each action's model sees
        only its own, small share of the logs).
    guard : {True, False, "warn"}, default True
        Cross-fitted check of the learned policy against the best constant action under
        ``guard_rule`` (see the module docstring): True falls back to that constant when the rule
        does not keep the learned policy, "warn" only warns, False skips the check (faster).
    guard_folds : int, default 3
        Folds of the cross-fitting (>= 2).
    guard_rule : {"not_below", "better", "not_worse", "clipped_not_below"}, default "not_below"
        When the guard keeps the learned policy (see :data:`GUARD_RULES` and the module docstring):
        ``"not_below"`` unless its cross-fitted DR estimate is below the best constant's;
        ``"better"`` only if it is significantly better (95%); ``"not_worse"`` unless it is
        significantly worse; ``"clipped_not_below"`` as ``"not_below"`` with importance weights
        clipped at :data:`GUARD_MAX_WEIGHT`.
    early_stopping_rounds : int, default 30
        With > 0, each channel-model head stops adding trees once its log-loss on the calibration
        rows has not improved for this many rounds (``n_estimators`` is then the most); 0: always
        ``n_estimators`` trees. Measured on the simulator (20,000 logged sessions,
        ``benchmarks/compare_targets.py``): one-step 0.65 of the full-information learner against
        0.53 with 300 fixed trees, the same closed-loop value, trained 2.2x faster. Not available on
        the Dask training path (``lightgbm.dask`` fits a fixed number of rounds): there it is set
        to 0, logged, and the bundle records 0.
    target : {"one_step", "session"}, default "one_step"
        What an action's value is. ``"one_step"``: its expected reward at this decision point.
        ``"session"``: its expected reward plus the value of the rest of the session (fitted-Q
        iteration, see :func:`train`): a visitor left alone may still solve the problem or accept a
        later offer, an accepted contact ends the session, a dismissal blocks offers for the
        cooldown. Needs ``session_id`` and ``ts`` in the decisions.
    target_iterations : int, default 3
        Fitted-Q iterations of the ``"session"`` target (each looks one decision point further).
    continuation : {"greedy", "none"}, default "greedy"
        The value of the next decision point in the ``"session"`` target: that of its best action
        under the current model (fitted-Q iteration), or that of offering nothing there (the
        value of never offering again: a policy-improvement step over "never", free of the
        upward bias of a maximum over noisy estimates).
    discount : float, default 1.0
        Weight of the next decision point's value in the ``"session"`` target, in (0, 1].
    pessimism : float, default 0.0
        Offer only where a channel's gain over ``"none"`` is large relative to its uncertainty: the
        value model is distilled from each channel's expected value minus ``pessimism`` × the
        standard deviation, across the cross-fitted fold teachers (``guard_folds`` of them, the
        guard's own), of that channel's gain over ``"none"`` (:func:`pessimistic_target`); ``"none"``
        is unchanged. The scorer, the bundle format and the per-request cost stay the same (the
        value model is what the scorer evaluates); the guard then tests the pessimistic greedy
        policy. The fold teachers are fitted once and serve both (with the guard off they are
        fitted for this alone). ``k`` and the mean standard deviations go to the model set's
        ``evaluation["pessimism"]`` (the manifest; ``nextchannel verify`` prints them). 0 (the
        default): the value model and the guard are exactly those without the option. Measured on
        the simulator (``benchmarks/learning_curve.py``, README issue 9; three 20k training logs,
        margin 0.25): where the learned policy offers, the weak logs overestimated the gain by +1.0
        (the optimizer's curse) and log 1 underestimated it (−0.24); k = 1 removed most of the bias
        and raised the closed-loop value on the two weak logs (+0.058, +0.043 per session, paired)
        but lowered it on log 1 (−0.045) and lowered the one-step ratio on all three (mean 0.63 →
        0.47): the mean closed-loop ratio rose 0.33 → 0.49, the spread narrowed, yet one-step fell by
        more than noise, so it is not the default (at 10k and 60k likewise: closed loop up, not
        significantly per log, one-step down). The penalty removes good offers to visitors in need
        with the needless ones; the guard's DR estimate cannot choose k (it values one step).
    random_state : int, default 0
    n_jobs : int, default 1

    Examples
    --------
    >>> TrainConfig.from_json(TrainConfig(n_estimators=50).to_json()).n_estimators
    50
    """

    n_estimators: int = 300
    num_leaves: int = 15
    learning_rate: float = 0.05
    min_child_samples: int = 40
    calibration_fraction: float = 0.2
    offer_target: str = "dm"
    offer_n_estimators: int = 40
    offer_num_leaves: int = 7
    value_n_estimators: int = 60
    value_num_leaves: int = 15
    value_learning_rate: float = 0.1
    tune_margin: bool = False
    outcome: str = "auto"
    reward_model: str = "pooled"
    guard: bool | str = True
    guard_folds: int = 3
    guard_rule: str = "not_below"
    early_stopping_rounds: int = 30
    target: str = "one_step"
    target_iterations: int = 3
    continuation: str = "greedy"
    discount: float = 1.0
    pessimism: float = 0.0
    random_state: int = 0
    n_jobs: int = 1

    def __post_init__(self) -> None:
        for name in ("n_estimators", "num_leaves", "min_child_samples", "offer_n_estimators", "offer_num_leaves", "value_n_estimators",
                     "value_num_leaves", "n_jobs", "target_iterations"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, int) or self.random_state < 0:
            raise ConfigError(f"random_state must be an integer >= 0, got {self.random_state!r}")
        if not isinstance(self.tune_margin, bool):
            raise ConfigError(f"tune_margin must be True or False, got {self.tune_margin!r}")
        if isinstance(self.learning_rate, bool) or not (isinstance(self.learning_rate, (int, float))
                                                        and 0 < self.learning_rate <= 1):
            raise ConfigError(f"learning_rate must be in (0, 1], got {self.learning_rate!r}")
        if isinstance(self.calibration_fraction, bool) or not (isinstance(self.calibration_fraction, (int, float))
                                                               and 0 <= self.calibration_fraction < 1):
            raise ConfigError(f"calibration_fraction must be in [0, 1), got {self.calibration_fraction!r}")
        if self.offer_target not in ("dm", "dr"):
            raise ConfigError(f"offer_target must be 'dm' or 'dr', got {self.offer_target!r}")
        if self.outcome not in ("auto", "funnel", "reward"):
            raise ConfigError(f"outcome must be 'auto', 'funnel' or 'reward', got {self.outcome!r}")
        if self.reward_model not in ("per_action", "pooled"):
            raise ConfigError(f"reward_model must be 'per_action' or 'pooled', got {self.reward_model!r}")
        if self.guard not in (True, False, "warn") or (self.guard not in ("warn",) and not isinstance(self.guard, bool)):
            raise ConfigError(f"guard must be True, False or 'warn', got {self.guard!r}")
        if isinstance(self.early_stopping_rounds, bool) or not isinstance(self.early_stopping_rounds, int) \
                or self.early_stopping_rounds < 0:
            raise ConfigError(f"early_stopping_rounds must be an integer >= 0, got {self.early_stopping_rounds!r}")
        if self.target not in ("one_step", "session"):
            raise ConfigError(f"target must be 'one_step' or 'session', got {self.target!r}")
        if self.continuation not in ("greedy", "none"):
            raise ConfigError(f"continuation must be 'greedy' or 'none', got {self.continuation!r}")
        if isinstance(self.discount, bool) or not (isinstance(self.discount, (int, float)) and 0 < self.discount <= 1):
            raise ConfigError(f"discount must be in (0, 1], got {self.discount!r}")
        if isinstance(self.pessimism, bool) or not (isinstance(self.pessimism, (int, float))
                                                    and np.isfinite(self.pessimism) and self.pessimism >= 0):
            raise ConfigError(f"pessimism must be a finite number >= 0, got {self.pessimism!r}")
        if isinstance(self.guard_folds, bool) or not isinstance(self.guard_folds, int) or self.guard_folds < 2:
            raise ConfigError(f"guard_folds must be an integer >= 2, got {self.guard_folds!r}")
        if not isinstance(self.guard_rule, str) or self.guard_rule not in GUARD_RULES:
            raise ConfigError(f"guard_rule must be one of {list(GUARD_RULES)}, got {self.guard_rule!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        if not isinstance(d, Mapping):
            raise ConfigError(f"TrainConfig must be built from a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"TrainConfig got unknown keys {unknown}")
        return cls(**dict(d))

    @classmethod
    def from_json(cls, s: str) -> "TrainConfig":
        try:
            d = json.loads(s)
        except json.JSONDecodeError as err:
            raise ConfigError(f"TrainConfig JSON is malformed: {err}") from err
        return cls.from_dict(d)


def context_frame(decisions: pd.DataFrame, channels: Any, language: Any = None) -> pd.DataFrame:
    """The per-request channel context columns of a decision log (defaults where absent).

    ``open_<ch>`` (default True), ``wait_<ch>_s`` (default 0) and ``lang_ok_<ch>`` (default True),
    read by the one definition of the channel context
    (:meth:`nextchannel.context.ContextSpec.parse_many`, strict: a malformed value raises naming
    its row); ``language`` (the visitor's language per row) is needed for ``languages_<ch>`` columns.
    """
    from nextchannel.context import context_spec

    return context_spec(channels).parse_many(decisions, language)


def logged_reward(decisions: pd.DataFrame, policy: PolicyConfig) -> np.ndarray:
    """The reward of each logged decision under the policy's business values."""
    codes = pd.Index(policy.actions).get_indexer(decisions["action"])
    if (codes < 0).any():
        # -1 would silently charge the last channel's cost
        bad = sorted(set(decisions["action"].astype(object)[codes < 0]), key=str)
        raise ValidationError(f"decisions.action must be one of {list(policy.actions)}, got {bad[:5]}")
    acc = decisions["accepted"].to_numpy(dtype=bool)
    suc = decisions["success"].to_numpy(dtype=bool)
    left = decisions["left"].to_numpy(dtype=bool) if "left" in decisions.columns else np.zeros(len(decisions), bool)
    dismissed = (codes > 0) & ~acc
    return (policy.value_success * suc - policy.cost_vector()[codes] * acc - policy.annoyance * dismissed
            - policy.leave_cost * left)


def select_margin(policy: PolicyConfig, ev: np.ndarray, eligible: np.ndarray, action: np.ndarray,
                  propensity: np.ndarray, reward: np.ndarray, grid: tuple[float, ...] = MARGIN_GRID,
                  max_weight: float = 50.0) -> tuple[float, dict[float, float]]:
    """The margin whose greedy policy has the highest doubly robust value estimate on logged rows.

    ``DR(π) = mean_i [ q(x_i, π_i) + 1[A_i = π_i] / p_i · (r_i − q(x_i, A_i)) ]`` with ``q`` = ``ev``
    (weights clipped at ``max_weight``). Returns the margin and every margin's estimate.
    """
    idx = np.arange(len(ev))
    w = np.minimum(1.0 / np.maximum(propensity, 1e-12), max_weight)
    values = {}
    for m in grid:
        a = greedy_many(policy, ev, eligible, m)
        values[m] = float(np.mean(ev[idx, a] + (action == a) * w * (reward - ev[idx, action])))
    best = max(values, key=values.get)
    return best, values



def _rows(index: pd.Index, mask: np.ndarray, k: int = 5) -> str:
    """The first few index labels where ``mask`` holds (for error messages)."""
    labels = [index[i] for i in np.flatnonzero(mask)[:k]]
    more = int(mask.sum()) - len(labels)
    return f"{labels}{f' and {more} more' if more > 0 else ''}"


def _outcome_of(decisions: pd.DataFrame, config: TrainConfig) -> str:
    if config.outcome != "auto":
        return config.outcome
    if "accepted" in decisions.columns or "success" in decisions.columns:
        return "funnel"
    if "reward" in decisions.columns:
        return "reward"
    raise ValidationError("decisions must hold outcomes: the funnel columns ['accepted', 'success'] (optional 'left') "
                          f"or a 'reward' column, got columns {list(decisions.columns)[:12]}")


def _check_decisions(decisions: pd.DataFrame, policy: PolicyConfig, outcome: str, with_events: bool) -> None:
    if not isinstance(decisions, pd.DataFrame):
        raise ValidationError(f"decisions must be a pandas DataFrame, got {type(decisions).__name__}")
    need = ["action", "propensity"] + (["accepted", "success"] if outcome == "funnel" else ["reward"])
    if with_events:
        need = ["session_id", "ts"] + need
    missing = [c for c in need if c not in decisions.columns]
    if missing:
        raise ValidationError(f"decisions must have columns {need}, missing {missing}")
    bad = sorted(set(decisions["action"].astype(object)) - set(policy.actions), key=str)
    if bad:
        raise ValidationError(f"decisions.action must be one of {list(policy.actions)}, got {bad[:5]}")
    p = pd.to_numeric(decisions["propensity"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    out = ~((p > 0) & (p <= 1))
    if out.any():
        raise ValidationError("decisions.propensity must be numbers in (0, 1] (the logged action's probability under "
                              f"the logging policy), got {decisions['propensity'].to_numpy()[out][:3].tolist()} at rows "
                              f"{_rows(decisions.index, out)}")
    if outcome == "reward":
        r = pd.to_numeric(decisions["reward"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad_r = ~np.isfinite(r)
        if bad_r.any():
            raise ValidationError(f"decisions.reward must be finite numbers, got "
                                  f"{decisions['reward'].to_numpy()[bad_r][:3].tolist()} at rows "
                                  f"{_rows(decisions.index, bad_r)}")
    if len(decisions) < 100:
        raise ValidationError(f"decisions must hold at least 100 logged decisions to train on, got {len(decisions)}")


def _design(decisions: pd.DataFrame, events: pd.DataFrame | None, features: pd.DataFrame | None,
            customers: pd.DataFrame | None, contacts: pd.DataFrame | None,
            profile_config: ProfileConfig) -> tuple[pd.DataFrame, FeatureSpec, tuple[str, ...]]:
    """The model inputs (internal names), their specification and the categorical inputs."""
    if events is None and features is None:
        raise ValidationError("train needs features to learn from: pass features= (a DataFrame of your own columns, "
                              "one row per decision) and/or events= (web events for the built-in session features), "
                              "got neither")
    if events is None and (customers is not None or contacts is not None):
        raise ValidationError("customers and contacts feed the built-in profile features, which are built with events; "
                              "pass events= too, or put your customer attributes into features=")
    parts = []
    builtin: tuple[str, ...] = ()
    cats: list[str] = []
    if events is not None:
        at_cols = ["session_id", "ts"] + (["customer_id"] if "customer_id" in decisions.columns else [])
        logger.info("building point-in-time features for %d decisions", len(decisions))
        use_profile = customers is not None or contacts is not None
        Xw = features_many(decisions[at_cols], events=events, customers=customers, contacts=contacts,
                           with_profile=True,
                           profile_config=profile_config) if use_profile else \
            features_many(decisions[at_cols], events=events, with_profile=True, profile_config=profile_config)
        parts.append(Xw.set_axis(decisions.index))
        builtin = tuple(Xw.columns)
        cats.extend(CATEGORICAL_FEATURES)
    spec = FeatureSpec(builtin)
    if features is not None:
        if not isinstance(features, pd.DataFrame):
            raise ValidationError(f"features must be a pandas DataFrame (one row per decision), got "
                                  f"{type(features).__name__}")
        if len(features) != len(decisions):
            raise ValidationError(f"features must have one row per decision: expected {len(decisions)} rows "
                                  f"(len(decisions)), got {len(features)}")
        if not features.index.equals(decisions.index):
            raise ValidationError("features must have the index of decisions (rows are matched row by row), got a "
                                  "different index; use features.set_axis(decisions.index) if the rows are aligned")
        if features.shape[1] == 0:
            raise ValidationError("features must have at least one column, got none")
        spec = FeatureSpec.fit(features, builtin)
        Xo = spec.transform(features)
        spec.warn_constant(Xo)
        parts.append(Xo)
        cats.extend(spec.categorical_internal)
    X = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    return X, spec, tuple(cats)


class _Teacher:
    """Every action's expected value learned from a subset of the logs (the learner of the guard's folds)."""

    def __init__(self, outcome: str, config: TrainConfig, policy: PolicyConfig, cats: tuple[str, ...]) -> None:
        self.outcome, self.config, self.policy, self.cats = outcome, config, policy, cats

    def _common(self) -> dict[str, Any]:
        c = self.config
        return dict(num_leaves=c.num_leaves, learning_rate=c.learning_rate, min_child_samples=c.min_child_samples,
                    categorical_features=self.cats, random_state=c.random_state, n_jobs=c.n_jobs)

    def fit(self, X: pd.DataFrame, ctx: pd.DataFrame, decisions: pd.DataFrame, reward: np.ndarray) -> "_Teacher":
        c, pol = self.config, self.policy
        if self.outcome == "funnel":
            self.model_ = ChannelModel(n_estimators=c.n_estimators, calibration_fraction=c.calibration_fraction,
                                       **self._common())
            self.model_.fit(X, decisions["action"], reward, decisions["propensity"], accepted=decisions["accepted"],
                            success=decisions["success"], left=decisions["left"] if "left" in decisions.columns else None,
                            context=ctx, actions=pol.actions, early_stopping_rounds=c.early_stopping_rounds)
        elif c.reward_model == "pooled":
            self.model_ = RewardModel(n_estimators=c.n_estimators, **self._common()).fit(
                X, decisions["action"], reward, actions=pol.actions, context=ctx)
        else:
            codes = pd.Index(pol.actions).get_indexer(decisions["action"])
            counts = np.bincount(codes, minlength=len(pol.actions))
            empty = [a for a, k in zip(pol.actions, counts) if k == 0]
            if empty:
                raise ValidationError(f"actions {empty} have no logged decisions: a per-action reward model cannot "
                                      "learn them; log them, drop them from the channels, or use "
                                      "TrainConfig(reward_model='pooled')")
            rows = codes[:, None] == np.arange(len(pol.actions))[None, :]
            self.model_ = ValueModel(n_estimators=c.n_estimators, **self._common()).fit(
                X, ctx, np.repeat(reward[:, None], len(pol.actions), axis=1), actions=pol.actions, rows=rows)
        self.continuation_ = None
        if c.target == "session":
            self._fit_continuation(X, ctx, decisions)
        return self

    def _fit_continuation(self, X: pd.DataFrame, ctx: pd.DataFrame, decisions: pd.DataFrame) -> None:
        """Fitted-Q iteration: the value of the rest of the session after each action.

        ``C_{k+1}(x_t, a)`` is regressed (one pooled :class:`RewardModel`, the action as an input) on
        ``discount · max_a' [q(x_{t+1}, a') + C_k(x_{t+1}, a')]`` over the actions eligible at the
        session's next logged decision point (0 after the last one: the session ended — an accepted
        contact, leaving — or had no further decision point), ``q`` the immediate expected reward.
        The next point's features are its own point-in-time features (what the scorer sees there).
        """
        c, pol = self.config, self.policy
        nxt = next_decision(decisions)
        has = nxt >= 0
        q_now = self.immediate(X, ctx)
        elig = eligibility_frame(pol, X, ctx)
        idx = np.arange(len(X))
        for _ in range(c.target_iterations):
            q = q_now if self.continuation_ is None else q_now + self.continuation_.predict(X, ctx)
            v = q[idx, greedy_many(pol, q, elig)] if c.continuation == "greedy" else q[:, 0]
            y = np.where(has, c.discount * v[np.maximum(nxt, 0)], 0.0)
            self.continuation_ = RewardModel(n_estimators=c.n_estimators, **self._common()).fit(
                X, decisions["action"], y, actions=pol.actions, context=ctx)

    def immediate(self, X: pd.DataFrame, ctx: pd.DataFrame) -> np.ndarray:
        """Every action's expected reward at this decision point."""
        m = self.model_
        if isinstance(m, ChannelModel):
            p = m.predict_proba(X, ctx)
            return expected_values(self.policy, p["accept"], p["success"], p["leave"])
        return m.predict(X, ctx)

    def predict(self, X: pd.DataFrame, ctx: pd.DataFrame) -> np.ndarray:
        """Every action's value: the immediate expected reward, plus the continuation (``"session"`` target)."""
        q = self.immediate(X, ctx)
        return q if self.continuation_ is None else q + self.continuation_.predict(X, ctx)


def next_decision(decisions: pd.DataFrame) -> np.ndarray:
    """Row position of each decision's next decision point in the same session (by ``ts``), -1 for the last.

    Examples
    --------
    >>> d = pd.DataFrame({"session_id": ["a", "b", "a", "a"], "ts": [5.0, 1.0, 2.0, 9.0]})
    >>> next_decision(d).tolist()
    [3, -1, 0, -1]
    """
    sid = pd.factorize(decisions["session_id"])[0]
    ts = pd.to_numeric(decisions["ts"]).to_numpy(dtype=float)
    order = np.lexsort((np.arange(len(sid)), ts, sid))
    nxt = np.full(len(sid), -1, dtype=np.int64)
    same = sid[order[1:]] == sid[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


def session_reward(reward: np.ndarray, q: np.ndarray, decisions: pd.DataFrame, policy: PolicyConfig,
                   eligible: np.ndarray, discount: float = 1.0, continuation: str = "greedy") -> np.ndarray:
    """The ``"session"`` target of each logged action: its reward plus the next decision point's value.

    ``reward_t + discount · q(x_{t+1}, π(x_{t+1}))`` with ``π`` greedy on ``q`` (``continuation=
    "greedy"``) or ``none`` (``"none"``), 0 after the session's last decision point: the outcome
    the doubly robust estimates of a session-target model are computed on.
    """
    nxt = next_decision(decisions)
    v = q[np.arange(len(q)), greedy_many(policy, q, eligible)] if continuation == "greedy" else q[:, 0]
    return reward + np.where(nxt >= 0, discount * v[np.maximum(nxt, 0)], 0.0)


def _folds(decisions: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """Fold of each decision; the decisions of one session share a fold."""
    rng = np.random.default_rng(seed)
    if "session_id" in decisions.columns:
        groups = pd.factorize(decisions["session_id"])[0]
        perm = rng.permutation(groups.max() + 1)
        return perm[groups] % k
    return rng.permutation(len(decisions)) % k


def _onehot(a: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((len(a), k))
    m[np.arange(len(a)), a] = 1.0
    return m


def _fit_fold_teachers(X: pd.DataFrame, ctx: pd.DataFrame, decisions: pd.DataFrame, reward: np.ndarray,
                       teacher: _Teacher, folds: int, seed: int) -> tuple[np.ndarray, list[_Teacher]]:
    """The cross-fitting's fold of each decision and one teacher per fold, fitted on the other folds.

    Fitted once per :func:`train`: the guard values their held-out predictions, the
    ``pessimism`` option reads their disagreement (:func:`pessimistic_target`).
    """
    fold = _folds(decisions, folds, seed)
    teachers = []
    for f in range(folds):
        test = fold == f
        teachers.append(_Teacher(teacher.outcome, teacher.config, teacher.policy, teacher.cats).fit(
            X[~test], ctx[~test], decisions[~test], reward[~test]))
    return fold, teachers


def pessimistic_target(ev: np.ndarray, fold_ev: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Every channel's value lowered by ``k`` × the across-fold standard deviation of its gain over "none".

    Parameters
    ----------
    ev : ndarray, shape (n_rows, n_actions)
        The teacher's values, ``"none"`` in column 0.
    fold_ev : ndarray, shape (n_folds, n_rows, n_actions)
        The same rows' values by each fold teacher (n_folds >= 2).
    k : float
        How many standard deviations of the gain are taken off (>= 0; 0 returns ``ev`` unchanged).

    Returns
    -------
    target : ndarray, shape (n_rows, n_actions)
        ``ev`` with column ``j >= 1`` lowered by ``k · sd_f(fold_ev[f, :, j] − fold_ev[f, :, 0])``
        (sample standard deviation over the folds); column 0 unchanged.
    gain_sd : ndarray, shape (n_rows, n_actions - 1)
        The standard deviations.

    Examples
    --------
    >>> ev = np.array([[1.0, 1.5, 1.2]])
    >>> folds = np.array([[[1.0, 1.5, 1.2]], [[1.0, 1.5, 1.6]]])   # the folds agree on action 1 only
    >>> target, sd = pessimistic_target(ev, folds, 1.0)
    >>> target.round(3).tolist(), sd.round(3).tolist()
    ([[1.0, 1.5, 0.917]], [[0.0, 0.283]])
    """
    gain = fold_ev[:, :, 1:] - fold_ev[:, :, :1]
    gain_sd = gain.std(axis=0, ddof=1)
    if k == 0:
        return ev, gain_sd
    target = ev.copy()
    target[:, 1:] -= k * gain_sd
    return target, gain_sd


def _guard_evaluation(X: pd.DataFrame, ctx: pd.DataFrame, decisions: pd.DataFrame, reward: np.ndarray,
                      teacher: _Teacher, policy: PolicyConfig, folds: int, seed: int,
                      fold_teachers: tuple[np.ndarray, list[_Teacher]] | None = None,
                      penalty: np.ndarray | None = None) -> dict[str, Any]:
    """Cross-fitted DR values (95% intervals) of the learned policy, ``none`` and every constant action.

    ``fold_teachers`` (from :func:`_fit_fold_teachers`; fitted here if not given) predict their
    held-out fold; ``penalty`` (n_rows × n_actions), if given, is taken off those predictions where
    the learned policy chooses (the pessimistic policy the bundle decides with), not from the DR
    estimates' reward model. Returns the figures of the manifest's ``evaluation["guard"]``: per
    policy ``value``, ``low``, ``high``; the best constant; the paired comparison of the learned
    policy against it (the rule of :func:`~nextchannel.evaluate.compare`) and its ``verdict``.
    """
    from nextchannel.evaluate import compare, dr

    fold, teachers = fold_teachers or _fit_fold_teachers(X, ctx, decisions, reward, teacher, folds, seed)
    q = np.zeros((len(X), len(policy.actions)))
    for f, t in enumerate(teachers):
        test = fold == f
        q[test] = t.predict(X[test], ctx[test])
    elig = eligibility_frame(policy, X, ctx)
    if teacher.config.target == "session":  # the logged action's reward plus the next point's (held-out) value
        reward = session_reward(reward, q, decisions, policy, elig, teacher.config.discount,
                                continuation=teacher.config.continuation)
    k = len(policy.actions)
    codes = pd.Index(policy.actions).get_indexer(decisions["action"])
    prop = decisions["propensity"].to_numpy(dtype=float)
    learned = _onehot(greedy_many(policy, q if penalty is None else q - penalty, elig), k)
    constants = {a: _onehot(greedy_many(policy, q, elig, fixed=j), k) for j, a in enumerate(policy.actions)}
    values = {}
    for name, target in (("learned", learned), *constants.items()):
        e = dr(reward, codes, prop, target, q, ci=0.95, ci_method="normal")
        values[name] = {"value": e.value, "low": e.low, "high": e.high}
    best = max(policy.actions, key=lambda a: values[a]["value"])
    logs = pd.DataFrame({"action": decisions["action"].to_numpy(), "propensity": prop, "reward": reward})
    c = compare(logs, champion=constants[best], challenger=learned, actions=policy.actions, reward_hat=q, estimator="dr", ci=0.95)
    # the same paired DR with the importance weights clipped (less variance, biased toward q's own values)
    cc = compare(logs, champion=constants[best], challenger=learned, actions=policy.actions, reward_hat=q,
                 estimator="dr", ci=0.95, max_weight=GUARD_MAX_WEIGHT)
    clipped = {"difference": cc.difference, "low": cc.low, "high": cc.high, "max_weight": float(GUARD_MAX_WEIGHT)}
    keeps = {"not_below": c.difference >= 0, "better": c.verdict == "better", "not_worse": c.verdict != "worse",
             "clipped_not_below": clipped["difference"] >= 0}
    return {"estimator": "dr", "folds": folds, "ci": 0.95, "rows": int(len(X)),
            "values": {k_: {kk: round(float(v), 6) for kk, v in d.items()} for k_, d in values.items()},
            "best_constant": best,
            "learned_minus_best_constant": {"difference": round(c.difference, 6), "low": round(c.low, 6),
                                            "high": round(c.high, 6)},
            "learned_minus_best_constant_clipped": {k_: round(v, 6) for k_, v in clipped.items()},
            "verdict": c.verdict, "learned_offer_rate": round(float((learned[:, 0] == 0).mean()), 6),
            "offer_margin": float(policy.offer_margin),
            "keeps_learned": {r: bool(k_) for r, k_ in keeps.items()}}


def _guard_decision(g: dict[str, Any], config: TrainConfig) -> str | None:
    """Apply ``config.guard_rule`` to the guard's figures ``g`` (records ``rule`` and ``decision`` in it).

    Returns the constant action the bundle falls back to, or None. Warns
    (:class:`~nextchannel.errors.PersonalisationNotBetterWarning`) when the rule does not keep the
    learned policy, also under ``guard="warn"`` (which keeps it).
    """
    rule = config.guard_rule
    keep = g["keeps_learned"][rule]
    g["rule"] = rule
    g["decision"] = "learned" if keep or config.guard == "warn" else "constant"
    if keep:
        return None
    v, best = g["values"], g["best_constant"]
    d = g["learned_minus_best_constant_clipped" if rule == "clipped_not_below" else "learned_minus_best_constant"]
    msg = (f"personalisation did not pass the guard against always {best!r} on held-out logs (guard_rule={rule!r}: "
           f"{GUARD_RULES[rule]}): learned {v['learned']['value']:.4g} [{v['learned']['low']:.4g}, "
           f"{v['learned']['high']:.4g}] vs {v[best]['value']:.4g} [{v[best]['low']:.4g}, {v[best]['high']:.4g}], "
           f"difference {d['difference']:.4g} [{d['low']:.4g}, {d['high']:.4g}] (cross-fitted DR, 95%); "
           + ("the bundle decides with that constant action (TrainConfig(guard=False) keeps the learned policy)"
              if g["decision"] == "constant" else "keeping the learned policy (guard='warn')"))
    warnings.warn(msg, PersonalisationNotBetterWarning, stacklevel=4)  # 4: past train and accepts_old_form
    logger.warning(msg)
    return best if g["decision"] == "constant" else None


class _NoBar:
    """Stands in for a tqdm bar when no progress is shown (tqdm.auto then need not be imported)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(progress: bool) -> Any:
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm  # only when asked: in a notebook without ipywidgets tqdm.auto warns on import

    return tqdm(total=5, desc="train", unit="stage")


@accepts_old_form(old=("decisions", "events", "features", "customers", "contacts", "config", "policy",
                       "profile_config", "progress"))
def train(decisions: pd.DataFrame, *, events: pd.DataFrame | None = None, customers: pd.DataFrame | None = None,
          contacts: pd.DataFrame | None = None, features: pd.DataFrame | None = None,
          config: TrainConfig | None = None, policy: PolicyConfig | None = None,
          profile_config: ProfileConfig | None = None, progress: bool = False) -> ModelSet:
    """Train a model set from logs: your own features, the built-in web features, or both.

    Parameters
    ----------
    decisions : DataFrame
        The decision log (see the module docstring): ``action``, ``propensity`` and outcomes.
    events : DataFrame, optional
        The event log (:mod:`nextchannel.schema`) for the built-in session features; then
        ``decisions`` needs ``session_id`` and ``ts``.
    features : DataFrame, optional
        Your own features at each decision point, one row per row of ``decisions`` (same length
        and index): numeric, boolean, pandas categorical or text columns, any names.
    customers, contacts : DataFrame, optional
        Customer table and contact history for the built-in profile features (with ``events``).
    config : TrainConfig, optional
    policy : PolicyConfig, optional
        Channels and business values (default ``PolicyConfig()``); the channels may be any names.
    profile_config : ProfileConfig, optional
    progress : bool, default False
        Show a progress bar (tqdm) over the training stages.

    Returns
    -------
    ModelSet

    Raises
    ------
    ValidationError
        Neither ``features`` nor ``events``; missing columns; propensities outside (0, 1] (rows
        named); features not aligned with the decisions; unsupported feature dtypes.

    Warns
    -----
    PersonalisationNotBetterWarning
        The learned policy was not better than the best constant action on held-out logs.
    ConstantModelWarning
        A feature column, or the learned values, do not vary.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 1500
    >>> X = pd.DataFrame({"plan": rng.choice(["basic", "gold"], n), "visits (30 d)": rng.poisson(3, n)})
    >>> action = rng.choice(["none", "Spring E-Mail"], n)
    >>> # the e-mail pays for gold customers and costs for the others
    >>> gain = np.where(X["plan"] == "gold", 1.0, -0.5)
    >>> reward = np.where(action == "Spring E-Mail", gain, 0.0) + rng.normal(0, .1, n)
    >>> d = pd.DataFrame({"action": action, "propensity": 0.5, "reward": reward})
    >>> ms = train(d, features=X, policy=PolicyConfig(channels=["Spring E-Mail"]),
    ...            config=TrainConfig(n_estimators=30, offer_n_estimators=10))
    >>> ms.actions, ms.feature_spec.names, ms.evaluation["guard"]["verdict"]
    (('none', 'Spring E-Mail'), ('plan', 'visits (30 d)'), 'better')
    """
    if is_dask_collection(events) or is_dask_collection(decisions):  # lightgbm.dask (nextchannel[dask])
        from nextchannel import dask_backend

        if not dask_backend.in_cluster_training():
            return dask_backend.train(decisions=decisions, events=events, features=features, customers=customers,
                                      contacts=contacts, config=config, policy=policy, profile_config=profile_config,
                                      progress=progress)
    config = config or TrainConfig()
    dask_mod = sys.modules.get("nextchannel.dask_backend")
    if config.early_stopping_rounds and dask_mod is not None and dask_mod.in_cluster_training():
        # lightgbm.dask fits a fixed number of rounds (no validation set): the bundle records what was done
        logger.warning("early stopping is not available on the Dask training path; training %d trees per head",
                       config.n_estimators)
        config = replace(config, early_stopping_rounds=0)
    policy = policy or PolicyConfig()
    profile_config = profile_config or ProfileConfig(channels=policy.channels)
    if not isinstance(decisions, pd.DataFrame):
        raise ValidationError(f"decisions must be a pandas DataFrame, got {type(decisions).__name__}")
    outcome = _outcome_of(decisions, config)
    _check_decisions(decisions, policy, outcome, events is not None)
    if config.target == "session":
        missing = [c for c in ("session_id", "ts") if c not in decisions.columns]
        if missing:
            raise ValidationError(f"TrainConfig(target='session') needs the decisions' session_id and ts (to find each "
                                  f"decision's next decision point), missing {missing}")
    ctx_cols = {f"{k}_{c}{u}" for c in policy.channels.names for k, u in (("open", ""), ("wait", "_s"), ("lang_ok", ""))}
    unused = [c for c in decisions.columns if c not in KNOWN_DECISION_COLUMNS and c not in ctx_cols]
    if outcome == "funnel" and "reward" in decisions.columns:
        unused.append("reward")
    if unused:  # recorded in the model set's training facts (the manifest), and logged
        logger.info("decisions columns not used for training (features come from features= and events=): %s",
                    unused[:20])
    bar = _progress_bar(progress)
    bar.set_postfix_str("features")
    X, spec, cats = _design(decisions, events, features, customers, contacts, profile_config)
    ctx = context_frame(decisions, policy.channels)
    reward = logged_reward(decisions, policy) if outcome == "funnel" else \
        pd.to_numeric(decisions["reward"]).to_numpy(dtype=float)
    bar.update()
    bar.set_postfix_str("value model")
    teacher = _Teacher(outcome, config, policy, cats)
    teacher.fit(X, ctx, decisions, reward)
    cm = teacher.model_ if outcome == "funnel" else None
    # the cross-fitting's fold teachers, fitted once: the guard values them, pessimism reads their spread
    fold_teachers = None
    if config.guard is not False or config.pessimism > 0:
        logger.info("cross-fitting the teachers on %d folds", config.guard_folds)
        fold_teachers = _fit_fold_teachers(X, ctx, decisions, reward, teacher, config.guard_folds, config.random_state)
    vm_params = dict(n_estimators=config.value_n_estimators, num_leaves=config.value_num_leaves,
                     learning_rate=config.value_learning_rate, min_child_samples=config.min_child_samples,
                     categorical_features=cats, random_state=config.random_state, n_jobs=config.n_jobs)
    evaluation: dict[str, Any] = {}
    penalty = None
    if isinstance(teacher.model_, ValueModel) and teacher.continuation_ is None and config.pessimism == 0:
        vm = teacher.model_
    else:
        # distil the teacher into one compact regressor per action (what the scorer evaluates), each
        # row once with its own channel context and once with another row's (so the effect of waits
        # and opening hours is learned beyond the logged combinations)
        rng = np.random.default_rng(config.random_state)
        ctx_other = ctx.iloc[rng.permutation(len(ctx))].set_axis(ctx.index)
        X2 = pd.concat([X, X], ignore_index=True)
        C2 = pd.concat([ctx, ctx_other], ignore_index=True)
        ev_teacher = teacher.predict(X2, C2)
        if config.pessimism > 0:
            ev_teacher, gain_sd = pessimistic_target(
                ev_teacher, np.stack([t.predict(X2, C2) for t in fold_teachers[1]]), config.pessimism)
            penalty = np.column_stack([np.zeros(len(X)), config.pessimism * gain_sd[:len(X)]])  # rows of X, own context
            evaluation["pessimism"] = {
                "k": float(config.pessimism), "folds": config.guard_folds,
                "mean_gain_sd": round(float(gain_sd.mean()), 6),
                "mean_gain_sd_by_channel": {c: round(float(v), 6) for c, v in zip(policy.actions[1:], gain_sd.mean(axis=0))}}
            logger.info("pessimism k=%g: mean across-fold sd of the channels' gain over 'none' %.4g", config.pessimism,
                        float(gain_sd.mean()))
        logger.info("distilling the value model (%d actions x %d trees) from %d rows", len(policy.actions),
                    config.value_n_estimators, len(X2))
        vm = ValueModel(**vm_params).fit(X2, C2, ev_teacher, actions=policy.actions)
    ev = vm.predict(X, ctx)
    if np.ptp(ev, axis=0).max(initial=0.0) < 1e-12:
        msg = ("the learned values do not vary between decisions (no feature split helped): every decision will get "
               "the same action; give features that relate to the outcome, or more logs")
        warnings.warn(msg, ConstantModelWarning, stacklevel=3)  # 3: past the accepts_old_form wrapper
        logger.warning(msg)
    mean_reward = float(reward.mean())
    reward_logged = reward
    if config.target == "session":  # the offer model and the margin learn from the session target as well
        reward = session_reward(reward, ev, decisions, policy, eligibility_frame(policy, X, ctx), config.discount,
                                continuation=config.continuation)
    margin_values: dict[float, float] = {}
    if config.tune_margin and cm is not None and cm.holdout_.sum() >= 100:
        hold = cm.holdout_
        codes = pd.Index(policy.actions).get_indexer(decisions["action"])
        elig = eligibility_frame(policy, X[hold], ctx[hold])
        m, margin_values = select_margin(policy, ev[hold], elig, codes[hold],
                                         decisions["propensity"].to_numpy(dtype=float)[hold], reward[hold])
        if m > policy.offer_margin:
            logger.info("offer margin %.2f chosen by DR on %d held-out decisions", m, int(hold.sum()))
            policy = replace(policy, offer_margin=m)
    bar.update()
    bar.set_postfix_str("guard")
    constant_action = None
    if config.guard is not False:
        # after the margin is chosen: the guard tests the policy the bundle decides with. The session
        # target's fold teachers look ahead with the greedy policy, which depends on the margin: a
        # margin changed by tune_margin needs them refitted; otherwise the ones fitted above serve.
        refit = config.target == "session" and policy.offer_margin != teacher.policy.offer_margin
        g = _guard_evaluation(X, ctx, decisions, reward_logged, _Teacher(outcome, config, policy, cats), policy,
                              config.guard_folds, config.random_state, fold_teachers=None if refit else fold_teachers,
                              penalty=penalty)
        constant_action = _guard_decision(g, config)
        evaluation["guard"] = g
    bar.update()
    open_ = np.column_stack([np.ones(len(X), bool)] + [ctx[f"open_{c}"].to_numpy() > 0 for c in policy.channels.names])
    best = 1 + np.argmax(np.where(open_[:, 1:], ev[:, 1:], -np.inf), axis=1)
    bar.set_postfix_str("offer model")
    logger.info("fitting the offer model (%s target, %d trees)", config.offer_target, config.offer_n_estimators)
    om = OfferModel(n_estimators=config.offer_n_estimators, target=config.offer_target, num_leaves=config.offer_num_leaves,
                    learning_rate=config.learning_rate, min_child_samples=config.min_child_samples,
                    categorical_features=cats, random_state=config.random_state, n_jobs=config.n_jobs)
    om.fit(X, decisions["action"], reward, decisions["propensity"], reward_hat=ev,
           offer_action=np.array(policy.actions, dtype=object)[best], actions=policy.actions,
           need=decisions["accepted"].to_numpy(dtype=bool) if outcome == "funnel" else None)
    bar.update()
    bar.close()
    offered = (decisions["action"] != "none").to_numpy()
    meta: dict[str, Any] = {
        "rows": int(len(decisions)), "outcome": outcome,
        "offer_rate": float(offered.mean()), "mean_reward": mean_reward, "train_config": config.to_dict(),
        "offer_margin": policy.offer_margin,
        "margin_dr_values": {f"{k:g}": round(v, 6) for k, v in margin_values.items()},
    }
    if "session_id" in decisions.columns:
        meta["sessions"] = int(decisions["session_id"].nunique())
    if events is not None:
        meta["events"] = int(len(events))
    if "ts" in decisions.columns:
        ts = pd.to_numeric(decisions["ts"]).to_numpy(dtype=float)
        meta["window"] = {"first_ts": float(ts.min()), "last_ts": float(ts.max())}
    if outcome == "funnel":
        meta["accept_rate"] = float(decisions["accepted"].to_numpy(dtype=bool)[offered].mean()) if offered.any() else 0.0
    if features is not None:
        meta["own_features"] = list(spec.names)
    if unused:
        meta["unused_decision_columns"] = [str(c) for c in unused]
    return ModelSet(cm, vm, om, policy, profile_config, meta=meta, evaluation=evaluation, feature_spec=spec,
                    constant_action=constant_action)
