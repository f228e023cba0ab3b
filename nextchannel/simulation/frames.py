"""The simulation's result: :class:`SimResult`, the frames built from the engine's tuples, and a summary.

Where it sits: last step of a run. The engine (:mod:`~nextchannel.simulation.engine`) produces
plain tuples; this module turns them into the event log (``nextchannel.schema.EVENT_COLUMNS``),
the decisions frame with the oracle columns ``ev_<action>`` (:func:`~nextchannel.simulation.truth.oracle_values`)
and the per-session outcome frame.

Examples
--------
>>> from nextchannel.simulation import simulate
>>> res = simulate(100, seed=2)
>>> len(res.sessions), bool(abs(res.sessions["reward"].sum() - res.decisions["reward"].sum()) < 1e-9)
(100, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nextchannel.schema import DEVICES, EVENT_COLUMNS, LANGUAGES, NONE_ACTION, REFERRERS
from nextchannel.simulation.config import PROBLEMS, SimConfig
from nextchannel.simulation.engine import _ET, _ET_NAMES, _World
from nextchannel.simulation.population import Visitors
from nextchannel.simulation.truth import oracle_values

__all__ = ["SimResult", "SESSION_COLUMNS", "summary"]

#: Columns of :attr:`SimResult.sessions`.
SESSION_COLUMNS: tuple[str, ...] = (
    "session_id", "customer_id", "reward", "expected_reward", "decision_points", "offers", "offers_no_need", "solved", "contacts",
    "contact_cost", "dismissed", "annoyance_cost", "left", "left_annoyed", "leave_cost", "purchase",
    "purchase_value",
)


@dataclass(frozen=True, eq=False)
class SimResult:
    """The simulated world: its frames and the config (and policy) that made them.

    Attributes
    ----------
    customers : DataFrame
        One row per known customer: ``customer_id``, ``age_band``, ``language``, ``device_pref``,
        ``affinity_<channel>`` (latent: never a model feature), ``opt_out_<channel>``.
    contacts : DataFrame
        Contact history before the period: ``customer_id``, ``ts``, ``channel``, ``resolved``,
        ``satisfaction`` (1..5 or NaN), ``handling_s``.
    events : DataFrame
        The event log, columns ``nextchannel.schema.EVENT_COLUMNS``, grouped by session.
    decisions : DataFrame
        One row per decision point: ``session_id``, ``ts`` (the triggering event's), ``trigger``
        (``page_view``/``idle``), ``customer_id``, channel context ``open_<ch>``, ``wait_<ch>_s``,
        ``lang_ok_<ch>``; the ``action`` the deciding policy took and its ``propensity``; outcomes
        ``accepted``, ``dismissed``, ``success``, ``left``, ``reward``; latent truth ``needs_help``,
        ``problem`` and ``ev_<action>`` for every action.
    config : SimConfig
    sessions : DataFrame
        One row per session (:data:`SESSION_COLUMNS`), the realised outcome: ``reward`` (the sum
        of its decision points' rewards; ``expected_reward`` sums instead the true expected reward
        of each action taken, ``ev_<action>`` — the same mean over sessions, as each reward's
        expectation given the session so far is its ``ev``, with much less noise) and its parts — ``solved`` (a problem resolved, worth
        ``value_success``), ``contacts`` and their ``contact_cost``, ``dismissed`` offers and their
        ``annoyance_cost``, ``left`` (the visitor left because of a decision point; ``left_annoyed``:
        after dismissing an offer they did not need) and its ``leave_cost``, so that ``reward =
        value_success * solved - contact_cost - annoyance_cost - leave_cost``; also
        ``decision_points``, ``offers``, ``offers_no_need`` and the session's ``purchase`` and
        ``purchase_value`` (reported, not part of the reward).
    policy : str
        The policy that decided: ``"logging"``, ``"never"``, ``"rule"``, ``"oracle"`` or the
        deployed object's class name.
    """

    customers: pd.DataFrame
    contacts: pd.DataFrame
    events: pd.DataFrame
    decisions: pd.DataFrame
    config: SimConfig
    sessions: pd.DataFrame | None = None
    policy: str = "logging"


def _events_frame(ev: list, vis: Visitors) -> pd.DataFrame:
    sess_ids, cust_of_sess, dev, lang = vis.session_ids, vis.customer_ids, vis.device, vis.language
    referrer, returning, utc_off = vis.referrer, vis.returning, vis.utc_offset_s
    m = len(ev)
    if m:
        sess_t, ts_t, code_t, s1_t, s2_t, x_t = zip(*ev)
    else:
        sess_t = ts_t = code_t = s1_t = s2_t = x_t = ()
    sess = np.fromiter(sess_t, dtype=np.int64, count=m)
    ts = np.fromiter(ts_t, dtype=float, count=m)
    code = np.fromiter(code_t, dtype=np.int64, count=m)
    s1 = np.array(s1_t, dtype=object) if m else np.empty(0, dtype=object)
    s2 = np.array(s2_t, dtype=object) if m else np.empty(0, dtype=object)
    x = np.fromiter(x_t, dtype=float, count=m)
    et = _ET

    def obj(mask: np.ndarray, values: np.ndarray) -> pd.arrays.StringArray:
        out = np.full(m, None, dtype=object)
        out[mask] = values[mask] if len(values) == m else values
        return pd.array(out, dtype="str")

    def num(mask: np.ndarray) -> np.ndarray:
        return np.where(mask, x, np.nan)

    is_start = code == et["session_start"]
    ss = sess[is_start]
    pv = code == et["page_view"]
    sc = code == et["scroll"]
    chan = np.isin(code, [et["offer_shown"], et["offer_accepted"], et["offer_dismissed"], et["contact_started"]])
    valued = np.isin(code, [et["cart_add"], et["cart_remove"], et["purchase"]])
    ret = pd.array(np.full(m, None, dtype=object), dtype="boolean")
    ret[is_start] = returning[ss]
    cols = {
        "session_id": pd.array(sess_ids[sess], dtype="str"),
        "ts": ts,
        "type": pd.array(_ET_NAMES[code], dtype="str"),
        "device": obj(is_start, _expand(is_start, np.array(DEVICES, dtype=object)[dev[ss]], m)),
        "language": obj(is_start, _expand(is_start, np.array(LANGUAGES, dtype=object)[lang[ss]], m)),
        "referrer": obj(is_start, _expand(is_start, np.array(REFERRERS, dtype=object)[referrer[ss]], m)),
        "customer_id": obj(is_start, _expand(is_start, cust_of_sess[ss], m)),
        "returning": ret,
        "utc_offset_s": _expand(is_start, utc_off[ss].astype(float), m, fill=np.nan),
        "page": obj(pv, s1),
        "page_type": obj(pv, s2),
        "depth": num(sc),
        "direction": obj(sc, s2),
        "duration_s": num(code == et["idle"]),
        "field": obj(code == et["form_error"], s1),
        "value": num(valued),
        "n_results": num(code == et["search"]),
        "channel": obj(chan, s1),
    }
    assert tuple(cols) == EVENT_COLUMNS, (tuple(cols), EVENT_COLUMNS)
    return pd.DataFrame(cols)


def _expand(mask: np.ndarray, values: np.ndarray, m: int, fill: Any = None) -> np.ndarray:
    out = np.full(m, fill, dtype=values.dtype if fill is not None else object)
    out[mask] = values
    return out


def _unzip_decisions(dec: list, n_channels: int) -> dict[str, np.ndarray]:
    """The engine's decision tuples as arrays."""
    D, C = len(dec), n_channels
    if D:
        (sess_t, ts_t, trig_t, need_t, cx_t, work_t, opens_t, waits_t, a_t, prop_t, acc_t, dis_t,
         succ_t, left_t, rew_t) = zip(*dec)
    else:
        sess_t = ts_t = trig_t = need_t = cx_t = work_t = a_t = prop_t = acc_t = dis_t = succ_t = left_t \
            = rew_t = ()
        opens_t = waits_t = ()
    return {
        "sess": np.fromiter(sess_t, dtype=np.int64, count=D),
        "ts": np.fromiter(ts_t, dtype=float, count=D),
        "trigger": np.fromiter(trig_t, dtype=np.int64, count=D),
        "need": np.fromiter(need_t, dtype=float, count=D),
        "cx": np.fromiter(cx_t, dtype=float, count=D),
        "work": np.fromiter(work_t, dtype=float, count=D),
        "opens": np.array(opens_t, dtype=float).reshape(D, C),
        "waits": np.array(waits_t, dtype=float).reshape(D, C),
        "a": np.fromiter(a_t, dtype=np.int64, count=D),
        "prop": np.fromiter(prop_t, dtype=float, count=D),
        "accepted": np.fromiter(acc_t, dtype=bool, count=D),
        "dismissed": np.fromiter(dis_t, dtype=bool, count=D),
        "success": np.fromiter(succ_t, dtype=bool, count=D),
        "left": np.fromiter(left_t, dtype=bool, count=D),
        "reward": np.fromiter(rew_t, dtype=float, count=D),
    }


def _decisions_frame(cfg: SimConfig, w: _World, d: dict[str, np.ndarray], vis: Visitors) -> pd.DataFrame:
    names = cfg.channels.names
    C = len(names)
    sess, need, cx, work, opens, waits, a = d["sess"], d["need"], d["cx"], d["work"], d["opens"], d["waits"], d["a"]
    D = len(sess)
    lang_ok = np.array(w.lang_ok, dtype=float)[vis.language[sess]].reshape(D, C)
    problem_code = (need > 0) * (1 + cx).astype(np.int64)
    # The oracle: exact expected reward of every action, from the same formulas the draws used.
    ev = oracle_values(cfg, need=need, complex_=cx, device=vis.device[sess], affinity=vis.affinity[sess].reshape(D, C),
                       opt_out=vis.opt_out[sess].reshape(D, C).astype(float), work_hours=work, is_open=opens,
                       wait_s=waits, lang_ok=lang_ok)
    actions = np.array(cfg.channels.actions, dtype=object)
    cols: dict[str, Any] = {
        "session_id": pd.array(vis.session_ids[sess], dtype="str"),
        "ts": d["ts"],
        "trigger": pd.array(np.array(["", "page_view", "idle"], dtype=object)[d["trigger"]], dtype="str"),
        "customer_id": pd.array(vis.customer_ids[sess], dtype="str"),
    }
    for j, ch in enumerate(names):
        cols[f"open_{ch}"] = opens[:, j] > 0
    for j, ch in enumerate(names):
        cols[f"wait_{ch}_s"] = waits[:, j]
    for j, ch in enumerate(names):
        cols[f"lang_ok_{ch}"] = lang_ok[:, j] > 0
    cols.update({
        "action": pd.array(actions[a], dtype="str"),
        "propensity": d["prop"],
        "accepted": d["accepted"],
        "dismissed": d["dismissed"],
        "success": d["success"],
        "left": d["left"],
        "reward": d["reward"],
        "needs_help": need > 0,
        "problem": pd.array(np.array(PROBLEMS, dtype=object)[problem_code], dtype="str"),
    })
    for act in cfg.channels.actions:
        cols[f"ev_{act}"] = np.asarray(ev[act], dtype=float) * np.ones(D)
    return pd.DataFrame(cols)


def _sessions_frame(cfg: SimConfig, w: _World, d: dict[str, np.ndarray], ev: list, vis: Visitors,
                    decisions: pd.DataFrame) -> pd.DataFrame:
    """One row per session: the realised reward and the outcomes it is made of."""
    n = len(vis)
    sess, a = d["sess"], d["a"]
    evm = decisions[[f"ev_{x}" for x in cfg.channels.actions]].to_numpy(dtype=float)
    ev_taken = evm[np.arange(len(a)), a]

    def total(x: np.ndarray) -> np.ndarray:
        return np.bincount(sess, weights=x.astype(float), minlength=n)

    offer = a > 0
    cost = np.concatenate([[0.0], np.asarray(w.cost, dtype=float)])[a]
    no_need = d["need"] <= 0
    purchases = [(e[0], e[5]) for e in ev if e[2] == _ET["purchase"]]
    p_sess = np.fromiter((p[0] for p in purchases), dtype=np.int64, count=len(purchases))
    p_val = np.fromiter((p[1] for p in purchases), dtype=float, count=len(purchases))
    dismissed = total(d["dismissed"])
    left = total(d["left"]) > 0
    return pd.DataFrame({
        "session_id": pd.array(vis.session_ids, dtype="str"),
        "customer_id": pd.array(vis.customer_ids, dtype="str"),
        "reward": total(d["reward"]),
        "expected_reward": total(ev_taken),
        "decision_points": np.bincount(sess, minlength=n),
        "offers": np.bincount(sess, weights=offer, minlength=n).astype(np.int64),
        "offers_no_need": np.bincount(sess, weights=offer & no_need, minlength=n).astype(np.int64),
        "solved": total(d["success"]) > 0,
        "contacts": total(d["accepted"]).astype(np.int64),
        "contact_cost": total(cost * d["accepted"]),
        "dismissed": dismissed.astype(np.int64),
        "annoyance_cost": cfg.annoyance * dismissed,
        "left": left,
        "left_annoyed": total(d["left"] & d["dismissed"] & no_need) > 0,
        "leave_cost": cfg.leave_cost * left,
        "purchase": np.bincount(p_sess, minlength=n) > 0,
        "purchase_value": np.bincount(p_sess, weights=p_val, minlength=n),
    }, columns=list(SESSION_COLUMNS))


def summary(result: SimResult) -> dict[str, Any]:
    """Headline figures of a simulation, for the CLI demo and reports.

    Returns
    -------
    dict
        ``sessions``, ``customers``, ``contacts``, ``events``, ``events_per_session``,
        ``decision_points``, ``decisions_per_session``, ``problem_session_rate`` (sessions with a
        decision point that needed help), ``needs_help_rate`` (decision points), ``offer_rate``,
        ``accept_rate`` (of offers), ``logged_value`` (mean reward), ``oracle_value`` (mean best
        ev), ``oracle_best_share`` (action -> share of decision points where it is best) and
        ``mean_ev`` (action -> mean ev).

    Examples
    --------
    >>> from nextchannel.simulation import simulate
    >>> s = summary(simulate(100, seed=2))
    >>> s["sessions"], s["oracle_value"] >= s["mean_ev"]["none"]
    (100, True)
    """
    ev, dec = result.events, result.decisions
    actions = result.config.channels.actions
    n_sess = int(ev["session_id"].nunique())
    D = len(dec)
    evm = dec[[f"ev_{a}" for a in actions]].to_numpy(dtype=float) if D else np.zeros((0, len(actions)))
    best = evm.argmax(axis=1) if D else np.zeros(0, dtype=int)
    offers = (dec["action"] != NONE_ACTION).to_numpy() if D else np.zeros(0, dtype=bool)
    return {
        "sessions": n_sess,
        "customers": len(result.customers),
        "contacts": len(result.contacts),
        "events": len(ev),
        "events_per_session": len(ev) / n_sess if n_sess else 0.0,
        "decision_points": D,
        "decisions_per_session": D / n_sess if n_sess else 0.0,
        "problem_session_rate": float(dec.groupby("session_id")["needs_help"].any().sum() / n_sess)
        if n_sess and D else 0.0,
        "needs_help_rate": float(dec["needs_help"].mean()) if D else 0.0,
        "offer_rate": float(offers.mean()) if D else 0.0,
        "accept_rate": float(dec["accepted"].to_numpy()[offers].mean()) if offers.any() else 0.0,
        "logged_value": float(dec["reward"].mean()) if D else 0.0,
        "oracle_value": float(evm.max(axis=1).mean()) if D else 0.0,
        "oracle_best_share": {a: float((best == j).mean()) if D else 0.0 for j, a in enumerate(actions)},
        "mean_ev": {a: float(evm[:, j].mean()) if D else 0.0 for j, a in enumerate(actions)},
    }
