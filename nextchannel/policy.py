"""The policy: business values, eligibility, contact rules and exploration → a :class:`Decision`.

Where it sits: features → models → **policy → decision** → logs. The models give, per action, the
probabilities of acceptance, success and leaving; the policy turns them into expected values with
the business's own numbers::

    EV(a) = value_success·P(success | a) − cost(a)·P(accept | a) − annoyance·P(dismiss | a)
            − leave_cost·P(leave | a)

with ``EV(none)`` the value of leaving the visitor alone. It offers iff the best *eligible*
channel beats ``none`` by ``offer_margin``, and says why every other channel was not eligible.
Exploration (epsilon-greedy or softmax) draws the action with a known probability, logged as the
decision's ``propensity`` so that the logs can train the next model and evaluate policies.

Examples
--------
>>> import numpy as np
>>> cfg = PolicyConfig(exploration="epsilon", epsilon=0.1)
>>> eligible = np.array([True, True, False, True, True, True, True])
>>> a, p, probs = choose(cfg, np.array([0.0, 2.0, 9.0, 1.0, 0.5, 0.2, 0.3]), eligible, u=0.5)
>>> cfg.actions[a], round(p, 4)
('chat', 0.9167)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np

from nextchannel.errors import ConfigError
from nextchannel.schema import DEVICES, NONE_ACTION, ChannelCatalogue

__all__ = ["PolicyConfig", "Decision", "eligibility", "eligibility_many", "choose", "greedy_many", "eligibility_frame", "expected_values"]

_DEFAULT_COST = {"chat": 3.0, "callback": 3.5, "phone": 6.0, "email": 1.5, "messaging": 2.0, "self_service": 0.1}
_DEFAULT_WAIT_LIMIT = {"chat": 300.0, "callback": 1800.0, "phone": 600.0}


def _finite(name: str, v: Any, lo: float = -math.inf) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
        rng = f" >= {lo:g}" if lo != -math.inf else ""
        raise ConfigError(f"{name} must be a finite number{rng}, got {v!r}")


@dataclass(frozen=True)
class PolicyConfig:
    """Business values, contact rules, eligibility and exploration. JSON round-trips.

    Parameters
    ----------
    value_success : float, default 10.0
        Value of a visitor's problem solved (same unit as costs, e.g. euros).
    channel_cost : dict, optional
        Cost of an accepted offer per channel. Default: the library's figures for the channels it
        knows (chat 3, callback 3.5, phone 6, email 1.5, messaging 2, self_service 0.1) and 0 for
        any other channel; a channel missing from a given dict costs 0.
    annoyance : float, default 1.0
        Cost of a dismissed offer.
    leave_cost : float, default 5.0
        Cost of a visitor leaving the site unresolved or annoyed.
    offer_margin : float, default 0.0
        Offer only if the best eligible channel's EV beats ``none`` by more than this.
    max_offers_per_session : int, default 2
    cooldown_after_dismiss_s : float, default 120.0
        No new offer this many seconds after a dismissal.
    no_offer_after_contact : bool, default True
        No offer once a contact has started in the session.
    wait_limit_s : dict, optional
        A channel whose current wait exceeds its limit is not offered (no entry: no limit).
        Default: chat 300, callback 1800, phone 600 where those channels exist; no limit otherwise.
    unsuitable_devices : dict, default {}
        Devices a channel must not be offered on, e.g. ``{"phone": ["desktop"]}``.
    exploration : {"none", "epsilon", "softmax"}, default "none"
        ``epsilon``: with probability ``epsilon`` a uniformly random eligible action (``none``
        included), else the greedy one. ``softmax``: eligible actions drawn with probabilities
        proportional to ``exp(gain / temperature)``, with ``none``'s gain ``offer_margin``.
    epsilon : float, default 0.05
    temperature : float, default 1.0
    channels : ChannelCatalogue or list of str, default the default catalogue
        The channels offers can point to; a list of names (any names, e.g. ``["Spring E-Mail",
        "WhatsApp"]``) makes a catalogue of human, not-live channels.

    Examples
    --------
    >>> cfg = PolicyConfig(offer_margin=0.5)
    >>> PolicyConfig.from_json(cfg.to_json()) == cfg
    True
    >>> own = PolicyConfig(channels=["Spring E-Mail", "WhatsApp"], channel_cost={"WhatsApp": 0.2})
    >>> own.actions, own.cost_vector().tolist(), dict(own.wait_limit_s)
    (('none', 'Spring E-Mail', 'WhatsApp'), [0.0, 0.0, 0.2], {})
    >>> PolicyConfig(exploration="greedy")
    Traceback (most recent call last):
    ...
    nextchannel.errors.ConfigError: exploration must be one of ['none', 'epsilon', 'softmax'], got 'greedy'
    """

    value_success: float = 10.0
    channel_cost: Mapping[str, float] | None = None
    annoyance: float = 1.0
    leave_cost: float = 5.0
    offer_margin: float = 0.0
    max_offers_per_session: int = 2
    cooldown_after_dismiss_s: float = 120.0
    no_offer_after_contact: bool = True
    wait_limit_s: Mapping[str, float] | None = None
    unsuitable_devices: Mapping[str, Sequence[str]] = field(default_factory=dict)
    exploration: str = "none"
    epsilon: float = 0.05
    temperature: float = 1.0
    channels: ChannelCatalogue = field(default_factory=ChannelCatalogue.default)

    def __post_init__(self) -> None:
        if isinstance(self.channels, Mapping):
            object.__setattr__(self, "channels", ChannelCatalogue.from_dict(self.channels))
        elif isinstance(self.channels, (list, tuple)):
            object.__setattr__(self, "channels", ChannelCatalogue(tuple(self.channels)))
        if not isinstance(self.channels, ChannelCatalogue):
            raise ConfigError("channels must be a ChannelCatalogue or a list of channel names, got "
                              f"{type(self.channels).__name__}")
        # Defaults only for the channels the library knows; any other channel: cost 0, no wait limit.
        for dname, defaults in (("channel_cost", _DEFAULT_COST), ("wait_limit_s", _DEFAULT_WAIT_LIMIT)):
            if getattr(self, dname) is None:
                object.__setattr__(self, dname, {c: v for c, v in defaults.items() if c in self.channels})
        for name in ("value_success", "annoyance", "leave_cost", "cooldown_after_dismiss_s"):
            _finite(name, getattr(self, name), 0.0)
        _finite("offer_margin", self.offer_margin)
        if isinstance(self.max_offers_per_session, bool) or not isinstance(self.max_offers_per_session, int) \
                or self.max_offers_per_session < 0:
            raise ConfigError(f"max_offers_per_session must be an integer >= 0, got {self.max_offers_per_session!r}")
        for dname in ("channel_cost", "wait_limit_s", "unsuitable_devices"):
            d = getattr(self, dname)
            if not isinstance(d, Mapping):
                raise ConfigError(f"{dname} must be a dict keyed by channel, got {type(d).__name__}")
            for ch, v in d.items():
                if ch not in self.channels:
                    raise ConfigError(f"{dname} keys must be channels of {list(self.channels.names)}, got {ch!r}")
                if dname == "unsuitable_devices":
                    if isinstance(v, str) or not all(x in DEVICES for x in v):
                        raise ConfigError(f"unsuitable_devices[{ch!r}] must be a list of devices from "
                                          f"{list(DEVICES)}, got {v!r}")
                else:
                    _finite(f"{dname}[{ch!r}]", v, 0.0)
            frozen = {k: (tuple(v) if dname == "unsuitable_devices" else float(v)) for k, v in d.items()}
            object.__setattr__(self, dname, frozen)
        if self.exploration not in ("none", "epsilon", "softmax"):
            raise ConfigError(f"exploration must be one of ['none', 'epsilon', 'softmax'], got {self.exploration!r}")
        if isinstance(self.epsilon, bool) or not isinstance(self.epsilon, (int, float)) or not 0 <= self.epsilon <= 1:
            raise ConfigError(f"epsilon must be a number in [0, 1], got {self.epsilon!r}")
        _finite("temperature", self.temperature, 0.0)
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")

    @property
    def actions(self) -> tuple[str, ...]:
        return self.channels.actions

    def cost_vector(self) -> np.ndarray:
        """Cost per action (``none`` first, 0)."""
        return np.array([0.0] + [self.channel_cost.get(c, 0.0) for c in self.channels.names])

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["channels"] = self.channels.to_dict()
        d["channel_cost"] = dict(self.channel_cost)
        d["wait_limit_s"] = dict(self.wait_limit_s)
        d["unsuitable_devices"] = {k: list(v) for k, v in self.unsuitable_devices.items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolicyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"PolicyConfig got unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**dict(d))

    @classmethod
    def from_json(cls, s: str) -> "PolicyConfig":
        try:
            return cls.from_dict(json.loads(s))
        except json.JSONDecodeError as err:
            raise ConfigError(f"PolicyConfig JSON is malformed: {err}") from err

    @classmethod
    def from_sim(cls, sim_config: Any, **changes: Any) -> "PolicyConfig":
        """The business values of a simulated world (its costs, annoyance, value of a success)."""
        base = dict(
            value_success=float(sim_config.value_success), annoyance=float(sim_config.annoyance),
            leave_cost=float(sim_config.leave_cost), channels=sim_config.channels,
            channel_cost={c.name: float(c.cost) for c in sim_config.channel_sims},
        )
        base.update(changes)
        return cls(**base)


@dataclass(frozen=True)
class Decision:
    """The scorer's answer for one decision point.

    Attributes
    ----------
    action : str
        ``"none"`` or the channel offered.
    offer : bool
    channel : str or None
    ev : dict
        Expected value of every action (NaN for an action the models could not score).
    offer_score : float
        The offer model's estimate of the incremental value of offering (uplift) — or, with a
        need-for-help fallback model, the probability of needing help.
    propensity : float
        Probability with which the policy chose ``action`` (1.0 without exploration).
    model_version : str
    reasons : tuple of str
        The few signals that drove the decision, in words.
    why_not : tuple of str
        Why each channel that was not eligible was not (``"phone: closed"``), and contact rules
        that blocked every offer (``"all: cooldown after a dismissal 20 s ago"``).
    fallback : str or None
        Set when the scorer could not decide normally (malformed signals): the reason.
    """

    action: str
    offer: bool
    channel: str | None
    ev: Mapping[str, float]
    offer_score: float
    propensity: float
    model_version: str
    reasons: tuple[str, ...] = ()
    why_not: tuple[str, ...] = ()
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (NaN becomes None) to log next to the outcome."""
        d = asdict(self)
        d["ev"] = {k: (None if v != v else float(v)) for k, v in self.ev.items()}
        d["offer_score"] = None if self.offer_score != self.offer_score else float(self.offer_score)
        d["reasons"], d["why_not"] = list(self.reasons), list(self.why_not)
        return d


def _fmt_s(x: float) -> str:
    return f"{x:,.0f} s"


def eligibility(cfg: PolicyConfig, *, device: str | None, language: str | None,
                offers_shown: float, time_since_dismiss_s: float, contacts_started: float,
                open_: Sequence[bool], wait_s: Sequence[float], lang_ok: Sequence[bool],
                opted_out: Sequence[bool]) -> tuple[list[bool], list[str]]:
    """Which actions may be taken now, and why not for the others.

    Returns a list of booleans over ``cfg.actions`` (``none`` always True) and the why-not texts.
    Plain Python: it runs on every web request (:func:`eligibility_many` is the vectorised twin).

    Examples
    --------
    >>> cfg = PolicyConfig()
    >>> ok, why = eligibility(cfg, device="mobile", language="de", offers_shown=1, time_since_dismiss_s=20.0,
    ...                       contacts_started=0, open_=[True] * 6, wait_s=[0.0] * 6, lang_ok=[True] * 6,
    ...                       opted_out=[False] * 6)
    >>> ok, why
    ([True, False, False, False, False, False, False], ['all: cooldown after a dismissal 20 s ago'])
    """
    names = cfg.channels.names
    blocked = None
    if cfg.no_offer_after_contact and contacts_started > 0:
        blocked = "all: a contact has already started in this session"
    elif offers_shown >= cfg.max_offers_per_session:
        blocked = f"all: {offers_shown:.0f} offers already shown (max {cfg.max_offers_per_session} per session)"
    elif time_since_dismiss_s == time_since_dismiss_s and time_since_dismiss_s < cfg.cooldown_after_dismiss_s:
        blocked = f"all: cooldown after a dismissal {_fmt_s(time_since_dismiss_s)} ago"
    if blocked:
        return [True] + [False] * len(names), [blocked]
    ok = [True]
    why: list[str] = []
    limits, unsuitable = cfg.wait_limit_s, cfg.unsuitable_devices
    for i, ch in enumerate(names):
        limit = limits.get(ch)
        if not open_[i]:
            why.append(f"{ch}: closed")
        elif opted_out[i]:
            why.append(f"{ch}: customer opted out")
        elif not lang_ok[i]:
            why.append(f"{ch}: language {language!r} not served")
        elif device is not None and device in unsuitable.get(ch, ()):
            why.append(f"{ch}: not offered on {device}")
        elif limit is not None and wait_s[i] > limit:
            why.append(f"{ch}: wait {_fmt_s(wait_s[i])} over the {_fmt_s(limit)} limit")
        else:
            ok.append(True)
            continue
        ok.append(False)
    return ok, why


def expected_values(cfg: PolicyConfig, p_accept: np.ndarray, p_success: np.ndarray,
                    p_leave: np.ndarray) -> np.ndarray:
    """EV of each action from outcome probabilities (arrays ``(..., n_actions)``, ``none`` first).

    ``p_accept[..., 0]`` must be 0 (``none`` is never accepted nor dismissed).

    Examples
    --------
    >>> cfg = PolicyConfig()
    >>> ev = expected_values(cfg, np.array([0, .5, .5, .5, .5, .5, .5]), np.array([.2] + [.6] * 6),
    ...                      np.array([.1] * 7))
    >>> [round(float(x), 2) for x in ev[:3]]
    [1.5, 3.5, 3.25]
    """
    cost = cfg.cost_vector()
    p_dismiss = np.where(np.arange(p_accept.shape[-1]) == 0, 0.0, 1.0 - p_accept)
    return (cfg.value_success * p_success - cost * p_accept - cfg.annoyance * p_dismiss
            - cfg.leave_cost * p_leave)


def choose(cfg: PolicyConfig, ev: np.ndarray, eligible: np.ndarray, u: float,
           fixed: int | None = None) -> tuple[int, float, np.ndarray]:
    """Pick an action index from expected values, with its exact probability.

    Parameters
    ----------
    ev : array (n_actions,)
        Expected value per action, ``none`` first.
    eligible : bool array (n_actions,)
        ``none`` must be eligible.
    u : float in [0, 1)
        A uniform random number (the caller owns the generator, so decisions are reproducible).
    fixed : int, optional
        A constant policy's action (a bundle whose guard fell back): the greedy action is that
        action where eligible, else ``none``; softmax exploration then weighs it by
        ``exp(1 / temperature)`` against 1 for every other eligible action.

    Returns
    -------
    (index, propensity, probabilities over all actions)
    """
    n = len(ev)
    eligible = np.asarray(eligible, dtype=bool)
    if fixed is None:
        gain = np.where(eligible, ev - ev[0], -np.inf)
        gain[0] = cfg.offer_margin
        # greedy: the best eligible channel if it beats none by the margin (ties: catalogue order)
        best = int(np.argmax(gain))
        greedy = best if best != 0 and gain[best] > cfg.offer_margin else 0
    else:
        greedy = fixed if eligible[fixed] else 0
        gain = np.where(eligible, 0.0, -np.inf)
        gain[greedy] = 1.0
    if cfg.exploration == "none":
        probs = np.zeros(n)
        probs[greedy] = 1.0
    elif cfg.exploration == "epsilon":
        k = int(eligible.sum())
        probs = np.where(eligible, cfg.epsilon / k, 0.0)
        probs[greedy] += 1.0 - cfg.epsilon
    else:
        z = np.where(eligible, gain / cfg.temperature, -np.inf)
        z = z - z.max()
        w = np.exp(z)
        probs = w / w.sum()
    cum = np.cumsum(probs)
    idx = int(np.searchsorted(cum, u * cum[-1], side="right"))
    idx = min(idx, n - 1)
    while probs[idx] == 0.0:  # guard against float edges landing on a zero-probability action
        idx -= 1
    return idx, float(probs[idx]), probs


def eligibility_many(cfg: PolicyConfig, *, device: np.ndarray, language: np.ndarray, offers_shown: np.ndarray,
                     time_since_dismiss_s: np.ndarray, contacts_started: np.ndarray, open_: np.ndarray,
                     wait_s: np.ndarray, lang_ok: np.ndarray, opted_out: np.ndarray) -> np.ndarray:
    """Vectorised :func:`eligibility` (the mask only): arrays of n rows, per-channel ones of shape (n, k).

    ``device`` and ``language`` are code arrays (index in ``schema.DEVICES`` / ``LANGUAGES``, -1 unknown).
    A property test holds it equal to :func:`eligibility` row by row.
    """
    n, k = open_.shape
    blocked = offers_shown >= cfg.max_offers_per_session
    if cfg.no_offer_after_contact:
        blocked |= contacts_started > 0
    with np.errstate(invalid="ignore"):
        blocked |= ~np.isnan(time_since_dismiss_s) & (time_since_dismiss_s < cfg.cooldown_after_dismiss_s)
    ok = (open_ > 0) & ~(opted_out > 0) & (lang_ok > 0) & ~blocked[:, None]
    for j, ch in enumerate(cfg.channels.names):
        bad_devices = [DEVICES.index(d) for d in cfg.unsuitable_devices.get(ch, ())]
        if bad_devices:
            ok[:, j] &= ~np.isin(device, bad_devices)
        limit = cfg.wait_limit_s.get(ch)
        if limit is not None:
            ok[:, j] &= ~(wait_s[:, j] > limit)
    return np.column_stack([np.ones(n, dtype=bool), ok])


def greedy_many(cfg: PolicyConfig, ev: np.ndarray, eligible: np.ndarray, margin: float | None = None,
                fixed: int | None = None) -> np.ndarray:
    """Greedy action index per row (the :func:`choose` rule without exploration), vectorised."""
    if fixed is not None:
        return np.where(eligible[:, fixed], fixed, 0)
    m = cfg.offer_margin if margin is None else margin
    gain = np.where(eligible[:, 1:], ev[:, 1:] - ev[:, :1], -np.inf)
    best = 1 + np.argmax(gain, axis=1)
    return np.where(gain[np.arange(len(ev)), best - 1] > m, best, 0)


def eligibility_frame(cfg: PolicyConfig, X: Any, C: Any) -> np.ndarray:
    """:func:`eligibility_many` from a feature frame ``X`` (features of :mod:`nextchannel.features`,
    ``prof_optout_<ch>``) and a channel-context frame ``C`` (``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>``)."""
    names = cfg.channels.names

    def col(frame: Any, name: str, default: float) -> np.ndarray:
        return frame[name].to_numpy(dtype=float) if name in frame.columns else np.full(len(frame), default)

    def chans(frame: Any, fmt: str, default: float) -> np.ndarray:
        return np.column_stack([col(frame, fmt.format(c), default) for c in names])

    return eligibility_many(
        cfg, device=col(X, "device", -1).astype(int), language=col(X, "language", -1).astype(int),
        offers_shown=col(X, "offers_shown", 0), time_since_dismiss_s=col(X, "time_since_dismiss_s", np.nan),
        contacts_started=col(X, "contacts_started", 0), open_=chans(C, "open_{}", 1),
        wait_s=chans(C, "wait_{}_s", 0), lang_ok=chans(C, "lang_ok_{}", 1), opted_out=chans(X, "prof_optout_{}", 0))
