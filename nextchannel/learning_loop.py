"""The learning loop a team runs, week after week, played inside the simulator.

Where it sits: on top of the flow — simulation (the live world), training, evaluation (the gate)
and the scorer (deployment). Week 1 is logged by the trigger rule with exploration (the config's
``rule_epsilon`` logging policy); then, each week:

1. retrain on every week's logs so far (:func:`nextchannel.train`, on the propensities the
   deployed policies logged); :func:`~nextchannel.train`'s own guard (learned vs the best constant,
   cross-fitted) is off by default: under its old rule (``"better"``) it always fell back to a
   constant on weeks of a few thousand sessions, and under ``"not_below"`` it fell back for 2 of 24
   challengers in an 8-week run and changed no publication; the gate below is the loop's one
   decision (``guard=True`` restores the guard: a challenger whose guard fell back decides with that
   constant action and goes through the gate like any other);
2. the gate: the challenger's greedy policy against the champion's (the current policy, the
   trigger rule at first) with :func:`nextchannel.evaluate.compare` — doubly robust, paired, on
   every logged decision, cross-fitted by session (``gate="cross-fitted"``, the default: each fold
   is valued by a challenger trained on the other folds, the folds pooled into one comparison, and
   the challenger that passes is trained on all the logs; ``gate="held-out"`` trains on the logs
   minus a fifth of the sessions and compares on that fifth: an interval about √5 times as wide); publish
   only when the challenger is not worse (its interval reaches the champion's value), its point
   estimate is not below the champion's by more than ``min_effect`` (a wide interval alone must
   not let a worse policy through), and the challenger's own value model does not value it below
   the champion on the same decisions (a policy acting against its own model, e.g. a negative
   margin, is refused without waiting for the noisy estimate to show it); optionally *better*
   when its offer rate differs from the champion's by more than ``offer_rate_ratio``;
3. deploy the champion with exploration (its propensities are logged; ``explore_schedule`` sets
   the share week by week, more while little is logged) and simulate the next week closed-loop
   under it; a shadow run of the same week under the greedy champion (same seed, no exploration)
   measures the exploration's cost.

Each week is its own slice of calendar time (``epoch_start_s`` advances by 7 days) with its own
visitors; ids are prefixed ``w<week>-`` so that the logs of all weeks can be pooled.

Examples
--------
>>> from nextchannel import TrainConfig
>>> loop = run_learning_loop(n_weeks=2, sessions_per_week=400, seed=3,
...                          train_config=TrainConfig(n_estimators=10, offer_n_estimators=5, value_n_estimators=5))
>>> loop.weeks[["week", "deployed", "gate"]].values.tolist()[0]
[1, 'trigger rule + exploration', 'first week']
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nextchannel.errors import ConfigError
from nextchannel.features import features_many
from nextchannel.jobs import gate_passes
from nextchannel.modelset import ModelSet
from nextchannel.policy import PolicyConfig, eligibility_frame
from nextchannel.scorer import Scorer
from nextchannel.schema import PAGE_TYPES
from nextchannel.simulation import SimConfig, SimResult, simulate
from nextchannel.training import TrainConfig, context_frame, session_reward, train

__all__ = ["DEFAULT_EXPLORE_SCHEDULE", "FIXED_EPSILON", "FIXED_EXPLORE_FLOOR", "LoopResult", "run_learning_loop",
           "WEEK_COLUMNS"]

logger = logging.getLogger(__name__)

#: Columns of :attr:`LoopResult.weeks`.
WEEK_COLUMNS: tuple[str, ...] = (
    "week", "deployed", "model_version", "sessions", "value", "value_low", "value_high", "realised",
    "greedy_value", "explore_share", "exploration_cost", "offers_per_session", "needless_offer_share", "needless_offers_per_session",
    "gate", "gate_difference", "gate_low", "gate_high", "gate_sessions", "train_sessions", "guard_fallbacks",
    "replaced_value",
)

_WEEK_S = 7 * 86400.0

#: The default exploration share by week (the last repeats): much while little is logged, less as the
#: logs grow. Measured against the fixed exploration it replaced (README, issue 9, "The learning loop over
#: weeks"; ``benchmarks/loop_weeks.py``).
DEFAULT_EXPLORE_SCHEDULE: tuple[float, ...] = (0.3, 0.3, 0.2, 0.1, 0.05, 0.02)
#: The fixed exploration (``explore_schedule=None``) when ``epsilon`` / ``explore_floor`` are not given.
FIXED_EPSILON: float = 0.1
FIXED_EXPLORE_FLOOR: float = 0.02


@dataclass(frozen=True, eq=False)
class LoopResult:
    """What the loop did, week by week.

    Attributes
    ----------
    weeks : DataFrame
        One row per week (:data:`WEEK_COLUMNS`): the policy ``deployed`` that week and its
        ``model_version``; its ``value`` per session (mean of the sessions' ``expected_reward``,
        with a 95% interval ``value_low``/``value_high``) and the ``realised`` mean reward;
        ``greedy_value``, the same week under the greedy version of that policy, and
        ``exploration_cost`` = ``greedy_value - value``; ``explore_share``, the week's uniform
        exploration share (the rule's epsilon or the learned policy's floor or epsilon);
        ``replaced_value``, in a week that published a new policy, the greedy value of the policy it
        replaced on the same visitors (else NaN); ``offers_per_session``, the share of offers
        that went to visitors who needed none (``needless_offer_share``) and their number per
        session; the gate that chose the policy (``gate``: ``"first week"``, ``"published"``,
        ``"published (better; offer rate changed)"``, ``"kept: challenger worse"``,
        ``"kept: challenger lower (not significant)"``, ``"kept: worse by its own model"``,
        or ``"kept: offer rate changed, not better"``, with the paired DR difference and its interval,
        and ``gate_sessions``, the sessions compared: those the champion was not trained on), how many
        sessions the challenger was trained on and, with ``guard=True``, ``guard_fallbacks``: how
        many of the week's challengers (one per fold, and the one on all the logs when published)
        fell back to a constant action (a champion that is a constant is ``deployed`` as
        ``"always <action> + exploration"``).
    model_sets : list of ModelSet or None
        The model set deployed each week (None: the trigger rule).
    references : DataFrame
        Per week, the value of each reference policy on the same week's sessions (column per name).
    logs : SimResult
        Every week's logs pooled (what the next retraining would see).
    """

    weeks: pd.DataFrame
    model_sets: list
    references: pd.DataFrame
    logs: SimResult = field(repr=False)


def _week_config(cfg: SimConfig, week: int) -> SimConfig:
    return dataclasses.replace(cfg, epoch_start_s=cfg.epoch_start_s + (week - 1) * _WEEK_S, n_days=7)


def _prefixed(res: SimResult, week: int) -> SimResult:
    """The week's frames with ids made unique across weeks (``w3-s000012``, ``w3-c000004``)."""
    p = f"w{week}-"

    def ids(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        for col in ("session_id", "customer_id"):
            if col in out.columns:
                out[col] = (p + out[col].astype("object")).where(out[col].notna(), None).astype("str")
        return out

    return dataclasses.replace(res, customers=ids(res.customers), contacts=ids(res.contacts), events=ids(res.events),
                               decisions=ids(res.decisions), sessions=ids(res.sessions))


def _pool(parts: list[SimResult]) -> SimResult:
    cat = lambda name: pd.concat([getattr(p, name) for p in parts], ignore_index=True)  # noqa: E731
    return dataclasses.replace(parts[-1], customers=cat("customers"), contacts=cat("contacts"), events=cat("events"),
                               decisions=cat("decisions"), sessions=cat("sessions"))


def _with_exploration(ms: ModelSet, exploration: str, epsilon: float, temperature: float,
                      explore_floor: float = 0.0) -> ModelSet:
    pol = dataclasses.replace(ms.policy, exploration=exploration, epsilon=epsilon, temperature=temperature,
                              explore_floor=explore_floor if exploration == "softmax" else 0.0)
    return ModelSet(ms.channel_model, ms.value_model, ms.offer_model, pol, ms.profile_config, meta=ms.meta,
                    evaluation=ms.evaluation, constant_action=ms.constant_action)


def _held_out(session_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """A stable pseudo-random share of sessions (by a hash of the id), the same in every retraining."""
    uniq = session_ids.drop_duplicates()
    hold = {s for s in uniq if _unit(s, seed) < share}
    return session_ids.isin(hold).to_numpy()


def _fold_of(session_ids: pd.Series, n_folds: int, seed: int) -> np.ndarray:
    """Fold (0 .. n_folds-1) of each row's session: by the same stable hash as :func:`_held_out`."""
    uniq = session_ids.drop_duplicates()
    fold = {s: int(_unit(s, seed) * n_folds) for s in uniq}
    return session_ids.map(fold).to_numpy(dtype=int)


def _unit(s: str, seed: int) -> float:
    return int.from_bytes(hashlib.blake2b(f"{seed}|{s}".encode(), digest_size=8).digest(), "little") / 2.0**64


def _rule_probabilities(cfg: SimConfig, X: pd.DataFrame, decisions: pd.DataFrame, actions: tuple[str, ...]) -> np.ndarray:
    """The trigger rule's action probabilities at logged decision points (from its point-in-time features)."""
    pages = [PAGE_TYPES.index(p) for p in cfg.rule_pages]
    fires = (X["page_type"].isin(pages).to_numpy() & (X["idle_current_page_s"].to_numpy() >= cfg.rule_idle_s)
             & decisions[f"open_{cfg.rule_channel}"].to_numpy(dtype=bool))
    probs = np.zeros((len(X), len(actions)))
    probs[:, 0] = ~fires
    probs[fires, actions.index(cfg.rule_channel)] = 1.0
    return probs


def _session_stats(res: SimResult) -> dict[str, float]:
    s = res.sessions
    r = s["expected_reward"].to_numpy(dtype=float)
    n = len(r)
    se = float(r.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    offers = int(s["offers"].sum())
    return {"sessions": n, "value": float(r.mean()), "value_low": float(r.mean()) - 1.96 * se,
            "value_high": float(r.mean()) + 1.96 * se, "realised": float(s["reward"].mean()),
            "offers_per_session": offers / n, "needless_offer_share": float(s["offers_no_need"].sum() / offers)
            if offers else 0.0, "needless_offers_per_session": float(s["offers_no_need"].sum() / n)}


def run_learning_loop(n_weeks: int = 8, sessions_per_week: int = 10_000, *, seed: int = 0,
                      config: SimConfig | None = None, train_config: TrainConfig | None = None,
                      policy: PolicyConfig | None = None, epsilon: float | None = None,
                      first_week_epsilon: float | None = None,
                      explore_schedule: Sequence[float] | None = DEFAULT_EXPLORE_SCHEDULE, gate: str = "cross-fitted",
                      gate_folds: int = 3, gate_share: float = 0.2, min_effect: float = 0.0,
                      offer_rate_ratio: float | None = None, exploration: str = "softmax", temperature: float = 0.1,
                      explore_floor: float | None = None, guard: bool = False, references: Mapping[str, Any] | None = None,
                      root: str | Path | None = None) -> LoopResult:
    """Run the weekly loop: log → retrain → gate → publish → deploy with exploration → next week.

    Parameters
    ----------
    n_weeks : int, default 8
    sessions_per_week : int, default 10000
    seed : int, default 0
        Week ``w`` is simulated with seed ``seed * 1000 + w`` (the same for its greedy shadow run
        and the references).
    config : SimConfig, optional
        The world (default :class:`~nextchannel.simulation.SimConfig`); its ``rule_*`` fields define
        the trigger rule of week 1.
    train_config : TrainConfig, optional
        The learner (default ``TrainConfig()``); its ``guard`` is replaced by the ``guard`` argument.
    policy : PolicyConfig, optional
        Business values and contact rules (default: ``PolicyConfig.from_sim(config)``).
    epsilon : float, optional
        Only with ``explore_schedule=None`` (the fixed exploration): exploration of the deployed
        learned policy with ``exploration="epsilon"`` (propensities logged), and of the trigger rule
        in the weeks after the first while it is the champion (default 0.1).
    first_week_epsilon : float, optional
        Only with ``explore_schedule=None``: exploration of week 1's trigger rule (default:
        ``config.epsilon``); in later weeks in which the rule is still the champion it explores with
        ``epsilon``.
    explore_schedule : sequence of float or None, default :data:`DEFAULT_EXPLORE_SCHEDULE`
        The uniform exploration share of each week (week ``w`` takes the ``w``-th value, the last one
        repeats): the trigger rule's epsilon while the rule is the champion (week 1 included), and the
        deployed learned policy's ``explore_floor`` (softmax) or ``epsilon`` (epsilon-greedy). The
        default, ``(0.3, 0.3, 0.2, 0.1, 0.05, 0.02)``, explores much while little is logged and less
        as the logs grow; it replaced the fixed exploration as the default after both were measured
        with the cross-fitted gate (default world, 8 weeks of 5,000 sessions, one run each): the
        champion it learns is better (week-8 greedy value 0.70 of full-information against 0.25;
        the gate's 95% interval ±0.07-0.11 per decision in weeks 3-8 against up to ±0.98, and every
        publication beat the policy it replaced, 3 of 3, against 4 of 6), at a price: the deployed,
        exploring value over weeks 2-8 averaged 1.286 per session against 1.402. ``None``:
        the fixed exploration — week 1's rule with ``first_week_epsilon``, later weeks ``epsilon``
        and ``explore_floor``. A schedule replaces those three, so giving one of them with a
        schedule is an error.
    gate : {"cross-fitted", "held-out"}, default "cross-fitted"
        How the challenger is compared with the champion. ``"cross-fitted"``: the sessions logged so
        far are split into ``gate_folds`` folds (by a stable hash of the session id); on each fold a
        challenger trained on the other folds and the champion are compared, the folds pooled into one
        paired DR comparison over every logged decision (the challenger's value model of the other
        folds is the DR baseline; the propensities are those the deployed policies logged); a
        challenger that passes is then trained on all the logs and published. ``"held-out"``: the
        challenger is trained on the logs minus a stable random ``gate_share`` of the sessions and
        compared on those.
    gate_folds : int, default 3
        Folds of the cross-fitted gate (>= 2). Every fold is one more training a week (plus the one on
        all the logs when the challenger passes); any number of folds compares on every logged
        decision, more folds only train the fold challengers on more of them.
    gate_share : float, default 0.2
        Share of sessions held out from training by the ``"held-out"`` gate.
    min_effect : float, default 0.0
        Tolerance of the gate: the challenger is refused when its DR value is below the champion's
        by more than this with 95% confidence (:func:`~nextchannel.evaluate.compare`), or when its
        point estimate is.
    offer_rate_ratio : float, optional
        When given and the challenger's offer rate on the gate's decisions is more than this factor
        above or below the champion's, the gate publishes only a challenger that is *better* (not
        merely not worse). Off by default: the learned policy offers several times as often as the
        trigger rule, and on weeks of 5,000 sessions the DR interval (±0.35-0.55 per decision) is
        ten times the gain to be shown, so "better" was never reached.
    exploration : {"epsilon", "softmax"}, default "softmax"
        How the deployed learned policy explores: epsilon-greedy (``epsilon`` spread uniformly over
        the eligible actions) or softmax over the value gains (``temperature``: actions close to the
        best are tried, clearly worse ones seldom) with a uniform ``explore_floor``. Measured
        (``benchmarks/exploration_cost.py``, 20,000 sessions closed loop, paired by visitor): epsilon
        0.1 cost 0.22 per session, more than the learned policy's whole gain over never offering;
        softmax at temperature 0.1 with floor 0.02 cost 0.02.
    temperature : float, default 0.1
        Temperature of the softmax exploration (in the unit of the business values).
    explore_floor : float, optional
        Only with ``explore_schedule=None``: softmax exploration's share of the probability spread
        uniformly over the eligible actions (:attr:`PolicyConfig.explore_floor`), so every eligible
        action keeps a propensity of at least ``explore_floor / n_eligible`` (default 0.02).
    guard : bool, default False
        Train challengers with :func:`~nextchannel.train`'s guard (its ``guard_rule``, by default
        ``"not_below"``): a challenger whose cross-fitted DR estimate is below the best constant
        action's decides with that constant (e.g. "never offer"), and the gate compares that with
        the champion like any challenger (the cross-fitted gate judges the training procedure, guard
        included, fold by fold). Off (the default): the loop's gate alone decides.
    references : dict, optional
        Name → policy (a ``simulate`` policy, e.g. ``"oracle"``, or a callable
        ``f(logs: SimResult, model_set: ModelSet | None) -> policy`` built each week from the logs
        so far) valued on each week's sessions, greedy. Default ``{"never": "never", "oracle": "oracle"}``.
    root : path, optional
        Publish every accepted model set there (``<root>/week-<w>``), as a team would.

    Returns
    -------
    LoopResult
    """
    if isinstance(n_weeks, bool) or not isinstance(n_weeks, int) or n_weeks < 1:
        raise ConfigError(f"n_weeks must be an integer >= 1, got {n_weeks!r}")
    if gate not in ("cross-fitted", "held-out"):
        raise ConfigError(f"gate must be 'cross-fitted' or 'held-out', got {gate!r}")
    if isinstance(gate_folds, bool) or not isinstance(gate_folds, int) or gate_folds < 2:
        raise ConfigError(f"gate_folds must be an integer >= 2, got {gate_folds!r}")
    schedule = None if explore_schedule is None else [float(x) for x in explore_schedule]
    if schedule is not None and (not schedule or not all(0 <= x < 1 for x in schedule)):
        raise ConfigError(f"explore_schedule must be a non-empty sequence of shares in [0, 1), got {explore_schedule!r}")
    fixed_given = [n for n, v in (("epsilon", epsilon), ("first_week_epsilon", first_week_epsilon),
                                  ("explore_floor", explore_floor)) if v is not None]
    if schedule is not None and fixed_given:
        raise ConfigError(f"{', '.join(fixed_given)} cannot be combined with explore_schedule (the schedule sets "
                          f"every week's exploration share); pass explore_schedule=None for the fixed exploration, "
                          f"got explore_schedule={explore_schedule!r}")
    epsilon = FIXED_EPSILON if epsilon is None else epsilon
    explore_floor = FIXED_EXPLORE_FLOOR if explore_floor is None else explore_floor
    if not 0 < gate_share < 1:
        raise ConfigError(f"gate_share must be in (0, 1), got {gate_share!r}")
    if not 0 <= epsilon <= 1:
        raise ConfigError(f"epsilon must be in [0, 1], got {epsilon!r}")
    if exploration not in ("epsilon", "softmax"):
        raise ConfigError(f"exploration must be 'epsilon' or 'softmax', got {exploration!r}")
    if offer_rate_ratio is not None and not offer_rate_ratio >= 1:
        raise ConfigError(f"offer_rate_ratio must be >= 1, got {offer_rate_ratio!r}")
    from nextchannel.evaluate import compare  # the gate: evaluation tools load only when the loop runs

    cfg = config if config is not None else SimConfig()
    pol = policy if policy is not None else PolicyConfig.from_sim(cfg)
    tcfg = dataclasses.replace(train_config if train_config is not None else TrainConfig(), guard=bool(guard))
    if not 0 <= explore_floor < 1:
        raise ConfigError(f"explore_floor must be in [0, 1), got {explore_floor!r}")
    refs = dict(references) if references is not None else {"never": "never", "oracle": "oracle"}
    eps1 = cfg.epsilon if first_week_epsilon is None else first_week_epsilon
    actions = pol.actions
    parts: list[SimResult] = []
    rows, ref_rows, deployed_sets = [], [], []
    champion: ModelSet | None = None
    champion_weeks = 0   # weeks of logs the champion was trained on: the gate compares on the later ones
    gate_row = {"gate": "first week", "gate_difference": math.nan, "gate_low": math.nan, "gate_high": math.nan,
            "gate_sessions": 0, "train_sessions": 0, "guard_fallbacks": 0}
    for week in range(1, n_weeks + 1):
        wcfg = _week_config(cfg, week)
        wseed = seed * 1000 + week
        if schedule is not None:
            share = schedule[min(week, len(schedule)) - 1]
            rule_eps, floor, eps = share, share, share
        else:
            rule_eps, floor, eps = eps1 if week == 1 else epsilon, explore_floor, epsilon
        if week > 1:
            gate_row, challenger = _retrain_and_gate(_pool(parts), cfg, pol, tcfg, champion, champion_weeks + 1,
                                                     gate, gate_folds, gate_share, min_effect, offer_rate_ratio,
                                                     compare, seed)
            if challenger is not None:
                # the policy replaced, greedy on the same visitors: did publishing make the week worse?
                replaced = simulate(sessions_per_week, seed=wseed, config=wcfg,
                                    policy="rule" if champion is None else Scorer(champion, n_reasons=0))
                gate_row["replaced_value"] = _session_stats(replaced)["value"]
                champion, champion_weeks = challenger, week - 1
                if root is not None:
                    champion.save(Path(root) / f"week-{week}", overwrite=True)
        if champion is None:
            live = simulate(sessions_per_week, seed=wseed,
                            config=dataclasses.replace(wcfg, logging_policy="rule_epsilon",
                                                       epsilon=rule_eps))
            greedy = simulate(sessions_per_week, seed=wseed, config=wcfg, policy="rule")
            name, version = "trigger rule + exploration", None
        else:
            explore = _with_exploration(champion, "softmax", eps, temperature, floor) \
                if exploration == "softmax" else \
                _with_exploration(champion, "epsilon", eps, temperature) if eps > 0 else champion
            live = simulate(sessions_per_week, seed=wseed, config=wcfg, policy=Scorer(explore, n_reasons=0, seed=wseed))
            greedy = simulate(sessions_per_week, seed=wseed, config=wcfg, policy=Scorer(champion, n_reasons=0))
            name = "learned + exploration" if champion.constant_action is None else \
                f"always {champion.constant_action} + exploration"
            version = champion.version
        deployed_sets.append(champion)
        stats = _session_stats(live)
        g = _session_stats(greedy)
        rows.append({"week": week, "deployed": name, "model_version": version, **stats, "greedy_value": g["value"],
                     "replaced_value": math.nan,
                     "explore_share": rule_eps if champion is None else floor if exploration == "softmax" else eps,
                     "exploration_cost": g["value"] - stats["value"], **gate_row})
        parts.append(_prefixed(live, week))
        ref_row = {"week": week}
        for rname, rpol in refs.items():
            p = rpol(_pool(parts[:-1]) if week > 1 else None, champion) if callable(rpol) else rpol
            ref_row[rname] = _session_stats(simulate(sessions_per_week, seed=wseed, config=wcfg, policy=p))["value"] \
                if p is not None else math.nan
        ref_rows.append(ref_row)
        logger.info("week %d: %s, value %.4f, gate %s", week, name, stats["value"], gate_row["gate"])
    weeks = pd.DataFrame(rows)[list(WEEK_COLUMNS)]
    return LoopResult(weeks=weeks, model_sets=deployed_sets, references=pd.DataFrame(ref_rows), logs=_pool(parts))


def _split_scores(logs: SimResult, cfg: SimConfig, pol: PolicyConfig, tcfg: TrainConfig, champion: ModelSet | None,
                  fit: np.ndarray) -> tuple[ModelSet, pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Train a challenger on the decisions ``fit`` selects; score the other decisions.

    Returns the challenger and, on the scored decisions: the logged rows (their ``reward`` on the
    challenger's target), the challenger's and the champion's action probabilities and the
    challenger's predicted value of every action.
    """
    d = logs.decisions
    fit_ids = set(d.loc[fit, "session_id"])
    ev_fit = logs.events["session_id"].isin(fit_ids).to_numpy()
    challenger = train(decisions=d.loc[fit].reset_index(drop=True), events=logs.events.loc[ev_fit],
                       customers=logs.customers, contacts=logs.contacts, config=tcfg, policy=pol)
    gd = d.loc[~fit].reset_index(drop=True)
    gev = logs.events.loc[~ev_fit]
    ch = Scorer(challenger, n_reasons=0).decide_many(gd, events=gev, customers=logs.customers, contacts=logs.contacts)
    p_chal = ch[[f"p_{a}" for a in pol.actions]].to_numpy()
    if champion is None:
        X = features_many(gd[["session_id", "ts", "customer_id"]], events=gev, customers=logs.customers,
                          contacts=logs.contacts)
        p_champ = _rule_probabilities(cfg, X, gd, pol.actions)
    else:
        p_champ = Scorer(champion, n_reasons=0).decide_many(gd, events=gev, customers=logs.customers,
                                                            contacts=logs.contacts)[
            [f"p_{a}" for a in pol.actions]].to_numpy()
    Xg = features_many(gd[["session_id", "ts", "customer_id"]], events=gev, customers=logs.customers,
                       contacts=logs.contacts, profile_config=challenger.profile_config)[list(challenger.feature_names)]
    Cg = context_frame(gd, pol.channels)
    reward_hat = challenger.expected_values(Xg, Cg)
    reward = gd["reward"].to_numpy(dtype=float)
    if tcfg.target == "session":  # the values include the rest of the session: so does the outcome compared
        reward = session_reward(reward, reward_hat, gd, pol, eligibility_frame(pol, Xg, Cg), tcfg.discount,
                                continuation=tcfg.continuation)
    return challenger, gd.assign(reward=reward), p_chal, p_champ, np.asarray(reward_hat, dtype=float)


def _retrain_and_gate(logs: SimResult, cfg: SimConfig, pol: PolicyConfig, tcfg: TrainConfig,
                      champion: ModelSet | None, fresh_from_week: int, gate_mode: str, gate_folds: int,
                      gate_share: float,
                      min_effect: float, offer_rate_ratio: float | None, compare: Any,
                      seed: int) -> tuple[dict[str, Any], ModelSet | None]:
    """Train a challenger and compare it with the champion; publish if not worse and not lower in its
    point estimate (better, when the offer rate changes by more than a given ``offer_rate_ratio``;
    with ``guard=True`` a challenger whose guard fell back is its constant action, gated the same way).

    ``"held-out"``: the challenger is trained on the logs minus a fifth of the sessions and compared
    on that fifth. ``"cross-fitted"``: the sessions are split into ``gate_folds`` folds; a challenger
    trained on the other folds is scored on each fold (its own value model supplies the DR
    baseline there), the folds are pooled into one paired comparison over every logged decision,
    and the challenger published is trained on all the logs — the gate judges the training
    procedure on every decision instead of one model on a fifth of them.
    """
    d = logs.decisions
    if gate_mode == "held-out":
        fit_sets = [~_held_out(d["session_id"], gate_share, seed)]
    else:
        fold = _fold_of(d["session_id"], gate_folds, seed)
        fit_sets = [fold != k for k in range(gate_folds)]
    parts = [_split_scores(logs, cfg, pol, tcfg, champion, fit) for fit in fit_sets]
    logged = pd.concat([p[1] for p in parts], ignore_index=True)
    p_chal, p_champ, reward_hat = (np.concatenate([p[i] for p in parts]) for i in (2, 3, 4))
    learned = np.concatenate([np.full(len(p[1]), p[0].constant_action is None) for p in parts])
    # only decisions the champion was not trained on: on its own training sessions a learned champion's
    # estimate is optimistic (its choices fit their noise), and the gate would keep it against better ones
    fresh = logged["session_id"].str.extract(r"^w(\d+)-", expand=False).astype(int).to_numpy() >= fresh_from_week
    logged = logged.loc[fresh].reset_index(drop=True)
    p_chal, p_champ, reward_hat, learned = p_chal[fresh], p_champ[fresh], reward_hat[fresh], learned[fresh]
    c = compare(logged, champion=p_champ, challenger=p_chal, actions=pol.actions, reward_hat=reward_hat,
                estimator="dr", min_effect=min_effect)
    # the challenger's own model on the same decisions (no importance weights, so no noise from them):
    # a challenger that its own model values below the champion acts against it (e.g. a negative margin);
    # not asked of a guard's constant, which overrode its model on the guard's DR estimate
    own = float(np.mean(np.sum((p_chal - p_champ)[learned] * reward_hat[learned], axis=1))) if learned.any() else 0.0
    rate_chal, rate_champ = 1.0 - float(p_chal[:, 0].mean()), 1.0 - float(p_champ[:, 0].mean())
    lo, hi = sorted((rate_chal, rate_champ))
    needs_better = offer_rate_ratio is not None and hi > offer_rate_ratio * lo
    fallbacks = sum(p[0].constant_action is not None for p in parts)
    if needs_better:
        ok = gate_passes(c, "better")
        verdict = "published (better; offer rate changed)" if ok else "kept: offer rate changed, not better"
    else:
        ok = gate_passes(c, "not-worse") and float(c.difference) >= -min_effect and own >= -min_effect
        verdict = "published" if ok else "kept: challenger worse" if c.verdict == "worse" else \
            "kept: challenger lower (not significant)" if float(c.difference) < -min_effect else \
            "kept: worse by its own model"
    challenger = parts[0][0]
    if gate_mode == "held-out":
        train_sessions = int(d.loc[fit_sets[0], "session_id"].nunique())
    else:  # the procedure judged trains on every session; the model is fitted only when published
        train_sessions = int(d["session_id"].nunique())
        if ok:
            challenger = train(decisions=d, events=logs.events, customers=logs.customers, contacts=logs.contacts,
                               config=tcfg, policy=pol)
            fallbacks += challenger.constant_action is not None
    gate = {"gate": verdict, "gate_difference": float(c.difference), "gate_low": float(c.low),
            "gate_high": float(c.high), "gate_sessions": int(logged["session_id"].nunique()),
            "train_sessions": train_sessions, "guard_fallbacks": fallbacks}
    return gate, (challenger if ok else None)
