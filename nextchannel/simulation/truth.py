"""The true model of the simulated world: acceptance, success, self-resolution and expected reward.

Where it sits: the session engine (:mod:`nextchannel.simulation.engine`) draws every outcome from
these formulas, and the oracle columns ``ev_<action>`` of the decisions frame are computed from the
same ones (:func:`oracle_values`), so the logged draws and the exact expected rewards cannot drift
apart. Each formula is written once as a ``_*_core`` function that works on floats (``math.exp``,
the per-event loop) and on arrays (``np.exp``, the vectorised oracle).

Reward of a decision point with action ``a``::

    reward = value_success * success - cost[a] * accepted - annoyance * dismissed - leave_cost * left

Examples
--------
>>> from nextchannel.simulation import SimConfig
>>> cfg = SimConfig()
>>> bool(expected_reward(cfg, "chat", problem="complex") > expected_reward(cfg, "none", problem="complex"))
True
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from nextchannel.schema import DEVICES, NONE_ACTION
from nextchannel.simulation.config import PROBLEMS, ChannelSim, SimConfig

__all__ = ["p_accept", "p_success", "p_self_resolve", "expected_reward", "oracle_values"]


# ---------------------------------------------------------------------------------------------
def _accept_logit(accept_base: Any, affinity: Any, device_fit: Any, work_pen: Any, need: Any,
                  complex_: Any, human_sign: Any, opt_out: Any, no_need_logit: float,
                  complex_logit: float, opt_logit: float) -> Any:
    return (accept_base + affinity + device_fit + work_pen + (1 - need) * no_need_logit
            + need * complex_ * complex_logit * human_sign + opt_out * opt_logit)


def _p_accept_core(z: Any, is_open: Any, wait_s: Any, scale_s: float, exp: Callable) -> Any:
    return is_open * exp(-wait_s / scale_s) / (1 + exp(-z))


def _p_success_core(solve_simple: Any, solve_complex: Any, complex_: Any, lang_ok: Any,
                    mismatch: float, wait_s: Any, scale_s: float, exp: Callable) -> Any:
    return ((solve_simple * (1 - complex_) + solve_complex * complex_)
            * (lang_ok + (1 - lang_ok) * mismatch) * exp(-wait_s / scale_s))


def _p_self_core(p_simple: float, p_complex: float, complex_: Any) -> Any:
    return p_simple * (1 - complex_) + p_complex * complex_


def _ev_none_core(need: Any, p_self: Any, cfg: SimConfig) -> Any:
    return need * (cfg.value_success * p_self - cfg.leave_cost * (1 - p_self) * cfg.p_leave_unresolved)


def _ev_offer_core(need: Any, pa: Any, ps: Any, p_self: Any, cost: float, cfg: SimConfig) -> Any:
    v, lc = cfg.value_success, cfg.leave_cost
    accepted = need * (v * ps - lc * (1 - ps) * cfg.p_leave_after_contact) - cost
    dismissed = (-cfg.annoyance + need * (v * p_self - lc * (1 - p_self) * cfg.p_leave_unresolved)
                 - (1 - need) * lc * cfg.p_leave_annoyed)
    return pa * accepted + (1 - pa) * dismissed


def _problem_codes(problem: Any) -> tuple[np.ndarray, np.ndarray]:
    """(need, complex) as float arrays from problem names or codes."""
    arr = np.asarray(problem)
    if arr.dtype.kind in "iuf":
        code = arr.astype(int)
    else:
        code = np.vectorize(PROBLEMS.index, otypes=[int])(arr) if arr.size else arr.astype(int)
    return (code > 0).astype(float), (code == 2).astype(float)


def _channel_args(cfg: SimConfig, channel: str) -> tuple[int, ChannelSim, bool, bool]:
    i = cfg.channels.names.index(cfg.channels.check(channel))
    ch = cfg.channels[channel]
    return i, cfg.channel_sims[i], ch.human, ch.live


def p_accept(config: SimConfig, channel: str, *, problem: Any = "none", affinity: Any = 0.0,
             device: Any = "desktop", wait_s: Any = 0.0, is_open: Any = True,
             work_hours: Any = False, opt_out: Any = False) -> np.ndarray:
    """True probability that the visitor accepts an offer of ``channel`` (vectorised).

    ``sigmoid(logit) * exp(-wait_s / accept_wait_scale_s) * is_open`` for a live channel (the
    wait factor is 1 for a channel that is not live); non-increasing in ``wait_s``.

    Parameters
    ----------
    config : SimConfig
    channel : str
    problem : str or array of str
        ``"none"``, ``"simple"`` or ``"complex"`` (latent need).
    affinity : float or array
        The visitor's latent affinity for the channel (logit offset).
    device : str or array of str
    wait_s : float or array
        Current queue wait (ignored for a channel that is not live).
    is_open, work_hours, opt_out : bool or array of bool

    Returns
    -------
    ndarray of float, broadcast shape of the inputs

    Examples
    --------
    >>> cfg = SimConfig()
    >>> p = p_accept(cfg, "chat", problem="complex", wait_s=[0.0, 300.0, 3000.0])
    >>> bool(p[0] > p[1] > p[2])
    True
    >>> float(p_accept(cfg, "chat", problem="complex", is_open=False))
    0.0
    """
    i, cs, human, live = _channel_args(config, channel)
    need, cx = _problem_codes(problem)
    dev = np.vectorize(DEVICES.index, otypes=[int])(np.asarray(device))
    fit = np.asarray(cs.device_fit)[dev]
    desk = (dev == 0).astype(float)
    work_pen = np.asarray(work_hours, dtype=float) * desk * cs.work_hours_desktop
    z = _accept_logit(cs.accept_base, np.asarray(affinity, dtype=float), fit, work_pen, need, cx,
                      1.0 if human else -1.0, np.asarray(opt_out, dtype=float),
                      config.accept_no_need_logit, config.complex_human_logit, config.opt_out_logit)
    w = np.asarray(wait_s, dtype=float) * (1.0 if live else 0.0)
    return np.asarray(_p_accept_core(z, np.asarray(is_open, dtype=float), w,
                                     config.accept_wait_scale_s, np.exp), dtype=float)


def p_success(config: SimConfig, channel: str, *, problem: Any = "simple", lang_ok: Any = True,
              wait_s: Any = 0.0) -> np.ndarray:
    """True probability that an accepted contact on ``channel`` solves the problem (vectorised).

    Zero when there is no problem (``"none"``): nothing to solve. Non-increasing in ``wait_s``.

    Examples
    --------
    >>> cfg = SimConfig()
    >>> bool(p_success(cfg, "self_service", problem="simple") > p_success(cfg, "self_service", problem="complex"))
    True
    """
    _, cs, _, live = _channel_args(config, channel)
    need, cx = _problem_codes(problem)
    w = np.asarray(wait_s, dtype=float) * (1.0 if live else 0.0)
    return need * np.asarray(_p_success_core(cs.solve_simple, cs.solve_complex, cx,
                                             np.asarray(lang_ok, dtype=float), config.lang_mismatch_success,
                                             w, config.abandon_wait_scale_s, np.exp), dtype=float)


def p_self_resolve(config: SimConfig, problem: Any) -> np.ndarray:
    """Probability that the visitor solves the problem alone at a decision point (0 if none).

    Examples
    --------
    >>> p_self_resolve(SimConfig(), ["none", "simple", "complex"]).tolist()
    [0.0, 0.3, 0.05]
    """
    need, cx = _problem_codes(problem)
    return need * np.asarray(_p_self_core(config.p_self_resolve[0], config.p_self_resolve[1], cx), dtype=float)


def expected_reward(config: SimConfig, action: str, *, problem: Any = "none", affinity: Any = 0.0,
                    device: Any = "desktop", wait_s: Any = 0.0, is_open: Any = True, lang_ok: Any = True,
                    work_hours: Any = False, opt_out: Any = False) -> np.ndarray:
    """Exact expected reward of ``action`` at a decision point under the true model (vectorised).

    For ``"none"``: ``need * (value_success * p_self - leave_cost * (1 - p_self) *
    p_leave_unresolved)``. For a channel: acceptance ``pa`` splits into an accepted branch
    (``value_success * p_success - cost - leave_cost * (1 - p_success) * p_leave_after_contact``)
    and a dismissed one (``-annoyance`` plus the visitor's own chances, or, with no need, the
    risk ``p_leave_annoyed`` of leaving). This is the ``ev_<action>`` column of
    :func:`~nextchannel.simulation.simulate`'s decisions.

    For a visitor in need the value of a live channel falls as its wait grows (fewer accept,
    more abandon). For a visitor who needs no help an offer only costs, and a longer wait makes
    it cost slightly *less* (fewer accept a contact they do not need) while staying below
    ``ev_none``; models should therefore constrain acceptance and success, not ``ev``, to be
    monotone in the wait.

    Examples
    --------
    >>> cfg = SimConfig()
    >>> float(expected_reward(cfg, "none", problem="none"))
    0.0
    >>> bool(expected_reward(cfg, "chat", problem="none") < 0)
    True
    >>> bool(expected_reward(cfg, "chat", problem="complex") > expected_reward(cfg, "none", problem="complex"))
    True
    """
    need, cx = _problem_codes(problem)
    p_self = _p_self_core(config.p_self_resolve[0], config.p_self_resolve[1], cx)
    if action == NONE_ACTION:
        return np.asarray(_ev_none_core(need, p_self, config), dtype=float)
    _, cs, _, _ = _channel_args(config, action)
    pa = p_accept(config, action, problem=problem, affinity=affinity, device=device, wait_s=wait_s,
                  is_open=is_open, work_hours=work_hours, opt_out=opt_out)
    ps = p_success(config, action, problem=problem, lang_ok=lang_ok, wait_s=wait_s)
    return np.asarray(_ev_offer_core(need, pa, ps, p_self, cs.cost, config), dtype=float)


def oracle_values(config: SimConfig, *, need: np.ndarray, complex_: np.ndarray, device: np.ndarray,
                  affinity: np.ndarray, opt_out: np.ndarray, work_hours: np.ndarray, is_open: np.ndarray,
                  wait_s: np.ndarray, lang_ok: np.ndarray) -> dict[str, np.ndarray]:
    """Exact expected reward of every action at many decision points (the ``ev_<action>`` columns).

    Parameters
    ----------
    config : SimConfig
    need, complex_ : array (n,)
        1.0 where the visitor needs help / has a complex problem, else 0.0 (latent).
    device : int array (n,)
        Index in ``nextchannel.schema.DEVICES``.
    affinity, opt_out : array (n, n_channels)
        Latent channel affinities; 1.0 where the customer opted out.
    work_hours : array (n,)
        1.0 during the visitor's local working hours.
    is_open, wait_s, lang_ok : array (n, n_channels)
        The channel context at each decision point.

    Returns
    -------
    dict
        Action name -> array (n,) of expected rewards, ``"none"`` first.

    Examples
    --------
    >>> cfg = SimConfig()
    >>> k = len(cfg.channels)
    >>> ev = oracle_values(cfg, need=np.array([1.0]), complex_=np.array([1.0]), device=np.array([0]),
    ...                    affinity=np.zeros((1, k)), opt_out=np.zeros((1, k)), work_hours=np.zeros(1),
    ...                    is_open=np.ones((1, k)), wait_s=np.zeros((1, k)), lang_ok=np.ones((1, k)))
    >>> float(ev["chat"][0]) == float(expected_reward(cfg, "chat", problem="complex"))
    True
    """
    cx = complex_
    p_self = _p_self_core(config.p_self_resolve[0], config.p_self_resolve[1], cx)
    ev = {NONE_ACTION: _ev_none_core(need, p_self, config)}
    desk = (device == 0).astype(float)
    for j, (ch, cs) in enumerate(zip(config.channels.names, config.channel_sims)):
        fit = np.asarray([float(x) for x in cs.device_fit])[device]
        human_sign = 1.0 if config.channels[ch].human else -1.0
        z = _accept_logit(float(cs.accept_base), affinity[:, j], fit, work_hours * desk * float(cs.work_hours_desktop),
                          need, cx, human_sign, opt_out[:, j], config.accept_no_need_logit,
                          config.complex_human_logit, config.opt_out_logit)
        pa = _p_accept_core(z, is_open[:, j], wait_s[:, j], config.accept_wait_scale_s, np.exp)
        ps = need * _p_success_core(float(cs.solve_simple), float(cs.solve_complex), cx, lang_ok[:, j],
                                    config.lang_mismatch_success, wait_s[:, j], config.abandon_wait_scale_s, np.exp)
        ev[ch] = _ev_offer_core(need, pa, ps, p_self, float(cs.cost), config)
    return ev
