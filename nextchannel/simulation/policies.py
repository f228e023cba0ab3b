"""Who decides in the simulator: the logging policies, the reference policies, and deployed ones.

Where it sits: the session engine (:mod:`~nextchannel.simulation.engine`) calls
``policy.decide(point) -> (action index, propensity)`` at each
:class:`~nextchannel.simulation.engine.DecisionPoint`. This module turns what a caller passes as
``simulate(..., policy=...)`` into such an object:

* ``None`` or ``"logging"`` — the config's logging policy (``uniform``, or the trigger rule with
  ``epsilon`` exploration), as in an open-loop run: identical frames for a seed;
* ``"never"`` — never offer; ``"rule"`` — the trigger rule without exploration (offer
  ``rule_channel`` when open, on ``rule_pages``, after ``rule_idle_s`` idle on the page);
* ``"oracle"`` — knows the latent state: the action of highest true expected reward among the
  open ones (the upper reference);
* anything with ``decide_one(state, customer=..., context=..., now=...)`` returning a
  :class:`~nextchannel.policy.Decision` — a :class:`~nextchannel.scorer.Scorer` or your own
  object. It sees what a deployment sees: the live :class:`~nextchannel.features.SessionState`
  fed with the session's events so far (its own offers and their outcomes included), the
  customer dict (contact history before the period, opt-outs) and the channel context
  (``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>``); its action and propensity are logged.

The built-in policies draw their randomisation from the engine's stream (``point.u``); a deployed
policy brings its own (a Scorer's is a hash of seed, session and time), so every run is
deterministic for a seed and a policy.

Examples
--------
>>> from nextchannel.simulation import simulate
>>> res = simulate(300, seed=4, policy="rule")
>>> bool((res.decisions["propensity"] == 1.0).all())
True
"""

from __future__ import annotations

import math
from typing import Any

from nextchannel.errors import ConfigError, PolicyError
from nextchannel.features import SessionState
from nextchannel.schema import DEVICES, LANGUAGES, REFERRERS
from nextchannel.simulation.config import SimConfig
from nextchannel.simulation.engine import _ET_NAMES, DecisionPoint, _World
from nextchannel.simulation.population import Population
from nextchannel.simulation.truth import (
    _accept_logit,
    _ev_none_core,
    _ev_offer_core,
    _p_accept_core,
    _p_self_core,
    _p_success_core,
)

__all__ = ["REFERENCE_POLICIES", "resolve_policy"]

#: Built-in policies by name.
REFERENCE_POLICIES: tuple[str, ...] = ("never", "rule", "logging", "oracle")


class LoggingPolicy:
    """The config's logging policy: ``uniform`` over open actions, or the rule with epsilon exploration."""

    name = "logging"

    def __init__(self, cfg: SimConfig) -> None:
        self.uniform = cfg.logging_policy == "uniform"
        self.eps = cfg.epsilon
        self.rule = RulePolicy(cfg)

    def decide(self, p: DecisionPoint) -> tuple[int, float]:
        allowed, u = p.allowed, p.u
        na = len(allowed)
        if self.uniform:
            return allowed[int(u * na)], 1.0 / na
        eps = self.eps
        ra = self.rule.action(p)
        if u < 1.0 - eps:
            a = ra
        else:
            j = int((u - (1.0 - eps)) / eps * na)
            a = allowed[j if j < na else na - 1]
        return a, eps / na + (1.0 - eps if a == ra else 0.0)


class RulePolicy:
    """The trigger rule: offer ``rule_channel`` (if open) on ``rule_pages`` after ``rule_idle_s`` idle."""

    name = "rule"

    def __init__(self, cfg: SimConfig) -> None:
        self.channel = cfg.channels.names.index(cfg.rule_channel)
        self.pages = frozenset(cfg.rule_pages)
        self.idle_s = cfg.rule_idle_s

    def action(self, p: DecisionPoint) -> int:
        c = self.channel
        return c + 1 if (p.page_type in self.pages and p.idle_page_s >= self.idle_s and p.is_open[c]) else 0

    def decide(self, p: DecisionPoint) -> tuple[int, float]:
        return self.action(p), 1.0


class NeverPolicy:
    """Never offer."""

    name = "never"

    def decide(self, p: DecisionPoint) -> tuple[int, float]:
        return 0, 1.0


class OraclePolicy:
    """Knows the latent state: the open action of highest true expected reward (ties: catalogue order)."""

    name = "oracle"

    def __init__(self, cfg: SimConfig, world: _World) -> None:
        self.cfg, self.w = cfg, world

    def decide(self, p: DecisionPoint) -> tuple[int, float]:
        cfg, w, vis = self.cfg, self.w, p.visitor
        need, cx = p.need, 1.0 if vis.complex_ else 0.0
        p_self = _p_self_core(cfg.p_self_resolve[0], cfg.p_self_resolve[1], cx)
        best, best_ev = 0, _ev_none_core(need, p_self, cfg)
        lok = w.lang_ok[vis.language]
        for a in p.allowed[1:]:
            c = a - 1
            z = _accept_logit(w.accept_base[c], vis.affinity[c], w.device_fit[c][vis.device],
                              p.work_hours * w.work_pen[c], need, cx, w.human_sign[c], 1.0 if vis.opt_out[c] else 0.0,
                              cfg.accept_no_need_logit, cfg.complex_human_logit, cfg.opt_out_logit)
            pa = _p_accept_core(z, p.is_open[c], p.wait_s[c], cfg.accept_wait_scale_s, math.exp)
            ps = need * _p_success_core(w.solve_simple[c], w.solve_complex[c], cx, lok[c], cfg.lang_mismatch_success,
                                        p.wait_s[c], cfg.abandon_wait_scale_s, math.exp)
            ev = _ev_offer_core(need, pa, ps, p_self, w.cost[c], cfg)
            if ev > best_ev:
                best, best_ev = a, ev
        return best, 1.0


class DeployedPolicy:
    """Any object with ``decide_one(state, customer=, context=, now=)``, fed what a deployment would see."""

    def __init__(self, obj: Any, cfg: SimConfig, population: Population) -> None:
        self.obj = obj
        self.name = type(obj).__name__
        self.action_index = {a: j for j, a in enumerate(cfg.channels.actions)}
        names = cfg.channels.names
        self.ctx_keys = [(f"open_{c}", f"wait_{c}_s", f"lang_ok_{c}") for c in names]
        self.lang_ok = [[lang in cs.languages for cs in cfg.channel_sims] for lang in LANGUAGES]
        self.vis = population.visitors
        self.customers = population.customers
        self._contacts = population.contacts
        self._contact_rows: dict[str, Any] | None = None
        self._customer_cache: dict[int, dict] = {}
        self._session = -1
        self._state: SessionState | None = None
        self._fed = 0
        self._customer: dict | None = None

    # -- what the deployment knows ---------------------------------------------------------------
    def _customer_of(self, j: int) -> dict | None:
        """The request-time customer dict of known customer ``j`` (None when anonymous)."""
        if j < 0:
            return None
        got = self._customer_cache.get(j)
        if got is None:
            if self._contact_rows is None:
                ct, cu = self._contacts, self.customers
                self._contact_rows = ct.groupby("customer_id", sort=False).indices
                self._contact_cols = [ct[k].to_numpy() for k in ("ts", "channel", "resolved", "satisfaction",
                                                                  "handling_s")]
                self._customer_ids = cu["customer_id"].to_numpy(dtype=object)
                opt = [k for k in cu.columns if k.startswith("opt_out_")]
                self._opt_names = [k[len("opt_out_"):] for k in opt]
                self._opt = cu[opt].to_numpy(dtype=bool)
            cid = self._customer_ids[j]
            rows = self._contact_rows.get(cid)
            recs = []
            if rows is not None:
                ts, ch, res, sat, hs = (col[rows].tolist() for col in self._contact_cols)
                recs = [{"ts": t, "channel": c, "resolved": bool(r), "satisfaction": None if s != s else s,
                         "handling_s": h} for t, c, r, s, h in zip(ts, ch, res, sat, hs)]
            opt_out = [name for name, o in zip(self._opt_names, self._opt[j]) if o]
            got = {"customer_id": cid, "contacts": recs, "opt_out": opt_out}
            self._customer_cache[j] = got
        return got

    def _event(self, e: tuple) -> dict:
        """An engine event tuple as the event dict a tracker would send."""
        i, ts, code, s1, s2, x = e
        typ = _ET_NAMES[code]
        out = {"session_id": self.vis.session_ids[i], "ts": ts, "type": typ}
        if typ == "page_view":
            out["page"], out["page_type"] = s1, s2
        elif typ == "scroll":
            out["direction"], out["depth"] = s2, x
        elif typ == "idle":
            out["duration_s"] = x
        elif typ == "search":
            out["n_results"] = x
        elif typ in ("cart_add", "cart_remove", "purchase"):
            out["value"] = x
        elif typ == "form_error":
            out["field"] = s1
        elif typ in ("offer_shown", "offer_accepted", "offer_dismissed", "contact_started"):
            out["channel"] = s1
        elif typ == "session_start":
            v = self.vis
            out.update(device=DEVICES[v.device[i]], language=LANGUAGES[v.language[i]],
                       referrer=REFERRERS[v.referrer[i]], customer_id=v.customer_ids[i],
                       returning=bool(v.returning[i]), utc_offset_s=float(v.utc_offset_s[i]))
        return out

    def decide(self, p: DecisionPoint) -> tuple[int, float]:
        if p.session != self._session:
            self._session = p.session
            self._state = SessionState(self.vis.session_ids[p.session])
            self._fed = p.first_event
            self._customer = self._customer_of(p.visitor.customer)
        state = self._state
        events = p.events
        for j in range(self._fed, len(events)):
            state.update(self._event(events[j]))
        self._fed = len(events)
        lok = self.lang_ok[p.visitor.language]
        context: dict[str, Any] = {}
        for c, (ko, kw, kl) in enumerate(self.ctx_keys):
            context[ko] = p.is_open[c] > 0
            context[kw] = p.wait_s[c]
            context[kl] = lok[c]
        d = self.obj.decide_one(state, customer=self._customer, context=context, now=p.ts)
        a = self.action_index.get(d.action)
        if a is None:
            raise PolicyError(f"the policy's decision must be one of {list(self.action_index)}, got action "
                              f"{d.action!r} at session {self.vis.session_ids[p.session]!r} (decision point {p.n})")
        return a, float(d.propensity)


def resolve_policy(policy: Any, cfg: SimConfig, world: _World, population: Population) -> Any:
    """The engine's policy object for what ``simulate(..., policy=...)`` received."""
    if policy is None or policy == "logging":
        return LoggingPolicy(cfg)
    if isinstance(policy, str):
        if policy == "never":
            return NeverPolicy()
        if policy == "rule":
            return RulePolicy(cfg)
        if policy == "oracle":
            return OraclePolicy(cfg, world)
        raise ConfigError(f"policy must be one of {list(REFERENCE_POLICIES)}, an object with decide_one() "
                          f"or None, got {policy!r}")
    if not callable(getattr(policy, "decide_one", None)):
        raise ConfigError(f"policy must be one of {list(REFERENCE_POLICIES)}, an object with decide_one() "
                          f"or None, got {type(policy).__name__}")
    if hasattr(policy, "actions") and tuple(policy.actions) != cfg.channels.actions:
        raise ConfigError(f"policy actions must be the world's {list(cfg.channels.actions)}, "
                          f"got {list(policy.actions)}")
    return DeployedPolicy(policy, cfg, population)

