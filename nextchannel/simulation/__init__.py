"""The simulator: synthetic customers, sessions, decision points, decisions — and the truth.

Where it sits: it *produces* what the rest of the flow consumes (event logs for ``features``,
contact histories for ``profile``, logged bandit feedback for ``models`` and ``evaluate``), and it
is the ground truth no real log has: for every decision point, the exact expected reward of every
action under the true model (``ev_<action>``), so any policy's value, the oracle's value and the
regret are computed, not estimated. It also runs **closed loop**: any policy — a
:class:`~nextchannel.scorer.Scorer`, your own object, or a built-in reference — decides at each
decision point with the live session state, and the consequences play out.

The causal story, every part a knob of :class:`SimConfig`:

* **Customers** carry latent channel affinities (logit offsets) tied to their age band, their
  preferred device and — through it — their contact history, which is drawn from those
  affinities before the simulated period. About half the sessions are anonymous.
* **Sessions** have an intent (browse, buy, support). A *problem* may arise at some page (support
  visitors arrive with one); it is *simple* (self-service can solve it) or *complex* (needs a
  human). While a problem is active the visitor hesitates — longer dwell, idles, returns to the
  page before, revisits, form errors, help/contact visits, cart removals, searches without
  results, exit intent. The world is honest: some visitors hesitate without a problem
  (distracted, comparing) and some struggle quietly, so signals are informative but noisy.
* **Decision points** come at page views and after idle periods. A policy picks an action
  (``"none"`` or a channel) with a logged, exact propensity, and the outcome is drawn from the
  true model: acceptance rises with need, affinity and fit to the device, falls with the queue
  wait (and is 0 for a closed channel); success given acceptance depends on the channel's fit to
  the problem, the language match and the wait; an offer to a visitor who needs no help annoys
  and sometimes makes them leave.
* **Reward** of a decision point with action ``a``::

      reward = value_success * success - cost[a] * accepted - annoyance * dismissed - leave_cost * left

  :func:`expected_reward` gives its expectation exactly; the logged ``reward`` is a draw whose
  mean is ``ev`` of the logged action; :attr:`SimResult.sessions` sums it per session.

The modules: :mod:`~nextchannel.simulation.config` (the knobs and presets),
:mod:`~nextchannel.simulation.truth` (the true model), :mod:`~nextchannel.simulation.population`
(who visits), :mod:`~nextchannel.simulation.engine` (the sessions, event by event),
:mod:`~nextchannel.simulation.policies` (who decides), :mod:`~nextchannel.simulation.frames`
(the result).

Examples
--------
>>> from nextchannel.simulation import SimConfig, simulate
>>> res = simulate(200, seed=1)
>>> list(res.decisions.columns[:4])
['session_id', 'ts', 'trigger', 'customer_id']
>>> bool((res.decisions["reward"].abs() <= 30).all()), res.config == SimConfig()
(True, True)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from nextchannel.simulation.config import (
    AGE_BANDS,
    DEFAULT_CHANNEL_SIMS,
    INTENTS,
    LOGGING_POLICIES,
    PROBLEMS,
    SHIFTS,
    ChannelSim,
    SimConfig,
    _fail,
)
from nextchannel.simulation.engine import _World, run_sessions
from nextchannel.simulation.frames import (
    SESSION_COLUMNS,
    SimResult,
    _decisions_frame,
    _events_frame,
    _sessions_frame,
    _unzip_decisions,
    summary,
)
from nextchannel.simulation.policies import REFERENCE_POLICIES, resolve_policy
from nextchannel.simulation.population import draw_population
from nextchannel.simulation.truth import expected_reward, oracle_values, p_accept, p_self_resolve, p_success

__all__ = [
    "AGE_BANDS",
    "INTENTS",
    "PROBLEMS",
    "LOGGING_POLICIES",
    "REFERENCE_POLICIES",
    "SHIFTS",
    "SESSION_COLUMNS",
    "DEFAULT_CHANNEL_SIMS",
    "ChannelSim",
    "SimConfig",
    "SimResult",
    "simulate",
    "summary",
    "p_accept",
    "p_success",
    "p_self_resolve",
    "expected_reward",
    "oracle_values",
]

logger = logging.getLogger(__name__)


def simulate(n_sessions: int, seed: int = 0, config: SimConfig | None = None, policy: Any = None) -> SimResult:
    """Simulate ``n_sessions`` sessions of the world ``config``, decided by ``policy``.

    Parameters
    ----------
    n_sessions : int
        Number of sessions (>= 0).
    seed : int
        Seed of ``np.random.default_rng``; the same seed, config and policy give identical frames.
        The population (customers, histories, who visits, their latent state) depends on the seed
        only, not on the policy.
    config : SimConfig, optional
        The world (default :class:`SimConfig`).
    policy : None, str, or an object with ``decide_one``
        Who decides at each decision point. ``None`` or ``"logging"``: the config's logging
        policy (open loop: the logged data a site would have). ``"never"``, ``"rule"`` (the
        trigger rule, no exploration), ``"oracle"`` (best true action among the open ones). Or
        a :class:`~nextchannel.scorer.Scorer` — any object with ``decide_one(state, customer=...,
        context=..., now=...)`` returning a :class:`~nextchannel.policy.Decision` — asked with
        the live :class:`~nextchannel.features.SessionState`, the customer dict and the channel
        context at that moment (closed loop); its action and propensity are logged. A policy
        that raises stops the run with :class:`~nextchannel.errors.PolicyError` naming the
        session and decision point.

    Returns
    -------
    SimResult
        ``customers``, ``contacts``, ``events``, ``decisions`` and ``sessions`` frames, the
        ``config`` and the ``policy``'s name.

    Examples
    --------
    >>> res = simulate(100, seed=3)
    >>> res.events["session_id"].nunique()
    100
    >>> bool((res.decisions["propensity"] > 0).all())
    True
    >>> never, oracle = simulate(2000, seed=3, policy="never"), simulate(2000, seed=3, policy="oracle")
    >>> bool(oracle.sessions["reward"].mean() > never.sessions["reward"].mean())
    True
    """
    if isinstance(n_sessions, bool) or not isinstance(n_sessions, (int, np.integer)) or n_sessions < 0:
        _fail("n_sessions", "an integer >= 0", n_sessions)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        _fail("seed", "an integer >= 0", seed)
    cfg = config if config is not None else SimConfig()
    if not isinstance(cfg, SimConfig):
        _fail("config", "a SimConfig or None", type(cfg).__name__)
    n = int(n_sessions)
    s_cust, s_hist, s_sess, s_world, s_events = np.random.SeedSequence(int(seed)).spawn(5)
    pop = draw_population(cfg, n, s_cust, s_hist, s_sess)
    world = _World(cfg, np.random.default_rng(s_world))
    pol = resolve_policy(policy, cfg, world, pop)
    events, dec = run_sessions(cfg, world, np.random.default_rng(s_events), pop.visitors, pol)
    d = _unzip_decisions(dec, len(cfg.channels))
    vis = pop.visitors
    events_df = _events_frame(events, vis)
    decisions_df = _decisions_frame(cfg, world, d, vis)
    sessions_df = _sessions_frame(cfg, world, d, events, vis, decisions_df)
    fallbacks = getattr(getattr(pol, "obj", None), "fallbacks", None)
    if fallbacks:
        logger.warning("the policy fell back to a safe decision %d times: %s", sum(fallbacks.values()),
                       dict(fallbacks))
    logger.debug("simulated %d sessions under policy %s: %d events, %d decision points", n, pol.name,
                 len(events_df), len(decisions_df))
    return SimResult(customers=pop.customers, contacts=pop.contacts, events=events_df, decisions=decisions_df,
                     config=cfg, sessions=sessions_df, policy=pol.name)
