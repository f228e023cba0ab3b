"""Training: from raw decision and outcome logs to a trained :class:`~nextchannel.modelset.ModelSet`.

Where it sits: logs → **training** → model set → bundle → scorer. :func:`train` rebuilds the
features point-in-time with the batch executor (:func:`nextchannel.features.features_many`), fits
the channel model on every logged decision and the offer model on top of it, and records what it
was trained on (window, size, outcome rates) so that the bundle can say so.

The decision log
----------------
One row per decision point: ``session_id``, ``ts``, the logged ``action`` (``"none"`` or a
channel), its ``propensity`` under the logging policy, outcomes ``accepted``, ``success`` and
(optional) ``left``; optional ``customer_id`` and per-request channel context ``open_<ch>``,
``wait_<ch>_s``, ``lang_ok_<ch>``. The reward the offer model learns from is recomputed from the
outcomes with the policy's business values (``value_success·success − cost·accepted −
annoyance·dismissed − leave_cost·left``), so that the value learned is the value as the business
defines it now.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nextchannel.compat import is_dask_collection
from nextchannel.errors import ConfigError, ValidationError
from nextchannel.features import CATEGORICAL_FEATURES, features_many
from nextchannel.modelset import ModelSet
from nextchannel.models import ChannelModel, OfferModel, ValueModel
from nextchannel.policy import PolicyConfig, eligibility_frame, expected_values, greedy_many
from nextchannel.profile import ProfileConfig

__all__ = ["TrainConfig", "train", "logged_reward", "context_frame", "select_margin", "REQUIRED_DECISION_COLUMNS",
           "MARGIN_GRID"]

#: Offer margins tried by :func:`select_margin` (in the unit of the business values).
MARGIN_GRID: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)

logger = logging.getLogger(__name__)

REQUIRED_DECISION_COLUMNS = ("session_id", "ts", "action", "propensity", "accepted", "success")


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
    random_state: int = 0
    n_jobs: int = 1

    def __post_init__(self) -> None:
        for name in ("n_estimators", "num_leaves", "min_child_samples", "offer_n_estimators", "offer_num_leaves", "value_n_estimators",
                     "value_num_leaves", "n_jobs"):
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


def context_frame(decisions: pd.DataFrame, channels: Any) -> pd.DataFrame:
    """The per-request channel context columns of a decision log (defaults where absent).

    ``open_<ch>`` (default True), ``wait_<ch>_s`` (default 0) and ``lang_ok_<ch>`` (default True).
    """
    out = {}
    n = len(decisions)
    for ch in channels.names:
        for col, default in ((f"open_{ch}", 1.0), (f"wait_{ch}_s", 0.0), (f"lang_ok_{ch}", 1.0)):
            if col in decisions.columns:
                v = pd.to_numeric(decisions[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                out[col] = np.where(np.isnan(v), default, v)
            else:
                out[col] = np.full(n, default)
    return pd.DataFrame(out, index=decisions.index)


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


def _check_decisions(decisions: pd.DataFrame, policy: PolicyConfig) -> None:
    if not isinstance(decisions, pd.DataFrame):
        raise ValidationError(f"decisions must be a pandas DataFrame, got {type(decisions).__name__}")
    missing = [c for c in REQUIRED_DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValidationError(f"decisions must have columns {list(REQUIRED_DECISION_COLUMNS)}, missing {missing}")
    bad = sorted(set(decisions["action"].astype(object)) - set(policy.actions), key=str)
    if bad:
        raise ValidationError(f"decisions.action must be one of {list(policy.actions)}, got {bad[:5]}")
    p = pd.to_numeric(decisions["propensity"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        ok = p[~np.isnan(p)]
        raise ValidationError("decisions.propensity must be numbers in [0, 1] (the logged action's probability), "
                              f"got values in [{ok.min() if len(ok) else 'n/a'}, {ok.max() if len(ok) else 'n/a'}]"
                              f"{' and NaN (or non-numbers)' if np.isnan(p).any() else ''}")
    if len(decisions) < 100:
        raise ValidationError(f"decisions must hold at least 100 logged decisions to train on, got {len(decisions)}")


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


def train(events: pd.DataFrame, decisions: pd.DataFrame, customers: pd.DataFrame | None = None,
          contacts: pd.DataFrame | None = None, config: TrainConfig | None = None,
          policy: PolicyConfig | None = None, profile_config: ProfileConfig | None = None,
          progress: bool = False) -> ModelSet:
    """Train a model set from logs.

    Parameters
    ----------
    events : DataFrame
        The event log (:mod:`nextchannel.schema`).
    decisions : DataFrame
        The decision log (see the module docstring).
    customers, contacts : DataFrame, optional
        Customer table and contact history for the profile features.
    config : TrainConfig, optional
    policy : PolicyConfig, optional
        Business values used to compute rewards and expected values (default ``PolicyConfig()``).
    progress : bool, default False
        Show a progress bar (tqdm) over the training stages.

    Returns
    -------
    ModelSet

    Examples
    --------
    >>> from nextchannel.simulate import simulate
    >>> sim = simulate(600, seed=3)
    >>> ms = train(sim.events, sim.decisions, sim.customers, sim.contacts, TrainConfig(n_estimators=10,
    ...            offer_n_estimators=10))
    >>> ms.actions[:2], ms.meta["rows"] == len(sim.decisions)
    (('none', 'chat'), True)
    """
    if is_dask_collection(events) or is_dask_collection(decisions):  # lightgbm.dask (nextchannel[dask])
        from nextchannel import dask_backend

        if not dask_backend.in_cluster_training():
            return dask_backend.train(events=events, decisions=decisions, customers=customers, contacts=contacts,
                                      config=config, policy=policy, profile_config=profile_config, progress=progress)
    config = config or TrainConfig()
    policy = policy or PolicyConfig()
    profile_config = profile_config or ProfileConfig(channels=policy.channels)
    _check_decisions(decisions, policy)
    bar = tqdm(total=4, desc="train", unit="stage", disable=not progress)
    bar.set_postfix_str("features")
    at_cols = ["session_id", "ts"] + (["customer_id"] if "customer_id" in decisions.columns else [])
    logger.info("building point-in-time features for %d decisions", len(decisions))
    use_profile = customers is not None or contacts is not None
    X = features_many(events, decisions[at_cols], customers, contacts, with_profile=True,
                      profile_config=profile_config) if use_profile else \
        features_many(events, decisions[at_cols], with_profile=True, profile_config=profile_config)
    ctx = context_frame(decisions, policy.channels)
    reward = logged_reward(decisions, policy)
    common = dict(num_leaves=config.num_leaves, learning_rate=config.learning_rate,
                  min_child_samples=config.min_child_samples, categorical_features=tuple(CATEGORICAL_FEATURES),
                  random_state=config.random_state, n_jobs=config.n_jobs)
    bar.update()
    bar.set_postfix_str("channel model")
    logger.info("fitting the channel model (%d heads x %d trees)", 3, config.n_estimators)
    cm = ChannelModel(n_estimators=config.n_estimators, calibration_fraction=config.calibration_fraction, **common)
    cm.fit(X, decisions["action"], reward, decisions["propensity"], accepted=decisions["accepted"],
           success=decisions["success"], left=decisions["left"] if "left" in decisions.columns else None,
           context=ctx, actions=policy.actions)
    bar.update()
    bar.set_postfix_str("value model")
    rng = np.random.default_rng(config.random_state)
    ctx_other = ctx.iloc[rng.permutation(len(ctx))].set_axis(ctx.index)
    X2 = pd.concat([X, X], ignore_index=True)
    C2 = pd.concat([ctx, ctx_other], ignore_index=True)
    p = cm.predict_proba(X2, C2)
    ev_teacher = expected_values(policy, p["accept"], p["success"], p["leave"])
    logger.info("distilling the value model (%d actions x %d trees) from %d rows", len(policy.actions),
                config.value_n_estimators, len(X2))
    vm = ValueModel(n_estimators=config.value_n_estimators, num_leaves=config.value_num_leaves,
                    learning_rate=config.value_learning_rate, min_child_samples=config.min_child_samples,
                    categorical_features=tuple(CATEGORICAL_FEATURES), random_state=config.random_state,
                    n_jobs=config.n_jobs).fit(X2, C2, ev_teacher, actions=policy.actions)
    ev = vm.predict(X, ctx)
    margin_values: dict[float, float] = {}
    if config.tune_margin and cm.holdout_.sum() >= 100:
        hold = cm.holdout_
        codes = pd.Index(policy.actions).get_indexer(decisions["action"])
        elig = eligibility_frame(policy, X[hold], ctx[hold])
        m, margin_values = select_margin(policy, ev[hold], elig, codes[hold],
                                         decisions["propensity"].to_numpy(dtype=float)[hold], reward[hold])
        if m > policy.offer_margin:
            logger.info("offer margin %.2f chosen by DR on %d held-out decisions", m, int(hold.sum()))
            policy = replace(policy, offer_margin=m)
    open_ = np.column_stack([np.ones(len(X), bool)] + [ctx[f"open_{c}"].to_numpy() > 0 for c in policy.channels.names])
    best = 1 + np.argmax(np.where(open_[:, 1:], ev[:, 1:], -np.inf), axis=1)
    bar.update()
    bar.set_postfix_str("offer model")
    logger.info("fitting the offer model (%s target, %d trees)", config.offer_target, config.offer_n_estimators)
    om = OfferModel(n_estimators=config.offer_n_estimators, target=config.offer_target,
                    **{**common, "num_leaves": config.offer_num_leaves})
    om.fit(X, decisions["action"], reward, decisions["propensity"], reward_hat=ev,
           offer_action=np.array(policy.actions, dtype=object)[best], actions=policy.actions,
           need=decisions["accepted"].to_numpy(dtype=bool))
    bar.update()
    bar.close()
    ts = pd.to_numeric(decisions["ts"]).to_numpy(dtype=float)
    meta = {
        "rows": int(len(decisions)), "sessions": int(decisions["session_id"].nunique()),
        "events": int(len(events)), "window": {"first_ts": float(ts.min()), "last_ts": float(ts.max())},
        "offer_rate": float((decisions["action"] != "none").mean()),
        "accept_rate": float(decisions["accepted"].to_numpy(dtype=bool)[(decisions["action"] != "none").to_numpy()].mean()),
        "mean_reward": float(reward.mean()), "train_config": config.to_dict(),
        "offer_margin": policy.offer_margin,
        "margin_dr_values": {f"{k:g}": round(v, 6) for k, v in margin_values.items()},
    }
    return ModelSet(cm, vm, om, policy, profile_config, meta=meta)
