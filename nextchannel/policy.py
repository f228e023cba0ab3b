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
import operator
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nextchannel.errors import ConfigError
from nextchannel.schema import DEVICES, LANGUAGES, NONE_ACTION, ChannelCatalogue

__all__ = ["PolicyConfig", "Decision", "EligibilityRules", "eligibility", "eligibility_many", "eligibility_frame", "choose",
           "choose_many", "greedy_one", "greedy_many", "runner_up_one", "runner_up_many", "expected_values", "code_name"]

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
        proportional to ``exp(gain / temperature)``, with ``none``'s gain ``offer_margin``: actions
        close to the best are tried often, clearly worse ones seldom (cheaper than epsilon's uniform
        draw, see ``explore_floor``).
    epsilon : float, default 0.05
    temperature : float, default 1.0
    explore_floor : float, default 0.0
        With softmax exploration, this share of the probability is spread uniformly over the
        eligible actions, so that every eligible action keeps a propensity of at least
        ``explore_floor / n_eligible`` (importance weights stay bounded for off-policy
        evaluation); in [0, 1). Not written to JSON when 0 (bundles without it read as before).
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
    explore_floor: float = 0.0
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
        if isinstance(self.explore_floor, bool) or not isinstance(self.explore_floor, (int, float)) \
                or not 0 <= self.explore_floor < 1:
            raise ConfigError(f"explore_floor must be a number in [0, 1), got {self.explore_floor!r}")

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
        if not self.explore_floor:  # bundles and configs written before it existed stay byte-identical
            del d["explore_floor"]
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


class _LazyReasons:
    """The ``reasons`` field of :class:`Decision`: a tuple, or a function computing it on first read.

    A data descriptor, so that the dataclass's ``__init__`` stores through it. The function runs
    at most once per decision (under a lock; threads reading at once get the same tuple), and
    must depend only on what it captured — the scorer captures a copy of the row it decided on.
    """

    _lock = threading.Lock()

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return ()  # the field's default
        value = obj.__dict__[self.slot]
        if type(value) is not tuple:
            with self._lock:
                value = obj.__dict__[self.slot]
                if type(value) is not tuple:
                    value = tuple(value())
                    obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value if callable(value) else tuple(value)


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
        The few signals that drove the decision, in words: the value models' contributions to
        ``EV(action) − EV(runner-up)`` (:func:`runner_up_many`; none when no other action was
        eligible). The scorer computes them when they are first read (from a copy of the row it
        decided on), so a caller that never reads them does not pay for them; pass a tuple, or a
        function returning the phrases.
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
    reasons: tuple[str, ...] = _LazyReasons()  # type: ignore[assignment]
    why_not: tuple[str, ...] = ()
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (NaN becomes None) to log next to the outcome."""
        d = asdict(self)
        d["ev"] = {k: (None if v != v else float(v)) for k, v in self.ev.items()}
        d["offer_score"] = None if self.offer_score != self.offer_score else float(self.offer_score)
        d["reasons"], d["why_not"] = list(self.reasons), list(self.why_not)
        return d


_new_object = object.__new__
_set_attribute = object.__setattr__


def _new_decision(action: str, offer: bool, channel: str | None, ev: Mapping[str, float], offer_score: float,
                  propensity: float, model_version: str, reasons: Any, why_not: tuple[str, ...]) -> Decision:
    """A :class:`Decision` of the scorer's fast path, its fields set in one step (no validation).

    The frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (about 2.4 µs
    for ten fields); the scorer already holds every field in its final type, so its decisions are
    built from one dict (0.6 µs), equal to ``Decision(...)`` field for field (tested). ``reasons`` is
    a tuple or a function computing it on first read, as :class:`_LazyReasons` stores it.
    """
    d = _new_object(Decision)
    _set_attribute(d, "__dict__", {"action": action, "offer": offer, "channel": channel, "ev": ev,
                                   "offer_score": offer_score, "propensity": propensity,
                                   "model_version": model_version, "_reasons": reasons, "why_not": why_not,
                                   "fallback": None})
    return d


# -- the policy step, written once ---------------------------------------------------------------
# Eligibility is data: contact rules that block every offer (the first that holds names the block),
# then per-channel rules (the first that holds says why that channel is not offered). A rule reads
# one input, compares it with a limit taken from the config (no limit: the rule is off), and
# renders a why-not text. ``_OPS`` holds each comparison twice: as Python source for the per-request
# executor (compiled once per policy into one plain function, see ``EligibilityRules._compile_one``)
# and as a numpy function for the batch executor; :class:`EligibilityRules` runs the same compiled
# rules per request (``one``) and per batch (``many``). Inputs are numbers: device and language as
# codes (index in ``schema.DEVICES`` / ``schema.LANGUAGES``, -1 or NaN unknown), open / language
# served as 1 or 0, opt-outs as the profile's ``prof_optout_<ch>`` value.
_OPS: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    ">": ("{v} > {lim}", np.greater),
    ">=": ("{v} >= {lim}", np.greater_equal),
    "<": ("{v} < {lim}", np.less),
    "is not": ("not {v} > 0", lambda x, _: ~(np.asarray(x) > 0)),   # NaN counts as "not"
    "in": ("{v} in {lim}", lambda x, codes: np.isin(x, codes)),
}


def code_name(vocab: Sequence[str], code: float) -> str | None:
    """The name of a category code (index into ``vocab``), None for unknown or NaN."""
    i = int(code) if code == code else -1
    return vocab[i] if 0 <= i < len(vocab) else None


@dataclass(frozen=True)
class _Rule:
    field: str              # the input it reads
    op: str                 # a key of _OPS
    limit: Callable[[PolicyConfig, str], Any]     # (config, channel) -> the limit, None: rule off
    text: Callable[[str, float, Any, float, float], str]   # (channel, value, limit, language, device)


_fmt_s = "{:,.0f} s".format

_BLOCKING_RULES: tuple[_Rule, ...] = (
    _Rule("contacts_started", ">", lambda cfg, ch: 0.0 if cfg.no_offer_after_contact else None,
          lambda ch, v, lim, lang, dev: "all: a contact has already started in this session"),
    _Rule("offers_shown", ">=", lambda cfg, ch: cfg.max_offers_per_session,
          lambda ch, v, lim, lang, dev: f"all: {v:.0f} offers already shown (max {lim} per session)"),
    _Rule("time_since_dismiss_s", "<", lambda cfg, ch: cfg.cooldown_after_dismiss_s,
          lambda ch, v, lim, lang, dev: f"all: cooldown after a dismissal {_fmt_s(v)} ago"),
)
_CHANNEL_RULES: tuple[_Rule, ...] = (
    _Rule("open", "is not", lambda cfg, ch: True, lambda ch, v, lim, lang, dev: f"{ch}: closed"),
    _Rule("opted_out", ">=", lambda cfg, ch: 1.0, lambda ch, v, lim, lang, dev: f"{ch}: customer opted out"),
    _Rule("lang_ok", "is not", lambda cfg, ch: True,
          lambda ch, v, lim, lang, dev: f"{ch}: language {code_name(LANGUAGES, lang)!r} not served"),
    _Rule("device", "in", lambda cfg, ch: tuple(float(DEVICES.index(d)) for d in cfg.unsuitable_devices.get(ch, ()))
          or None, lambda ch, v, lim, lang, dev: f"{ch}: not offered on {code_name(DEVICES, dev)}"),
    _Rule("wait_s", ">", lambda cfg, ch: cfg.wait_limit_s.get(ch),
          lambda ch, v, lim, lang, dev: f"{ch}: wait {_fmt_s(v)} over the {_fmt_s(lim)} limit"),
)
_PER_CHANNEL = ("open", "wait_s", "lang_ok", "opted_out")
_PER_CHANNEL_ARGS = ("open_", "wait_s", "lang_ok", "opted_out")   # their argument names in the per-request executor


class EligibilityRules:
    """The eligibility rules of one policy, compiled once; a per-request and a vectorised executor.

    Parameters
    ----------
    cfg : PolicyConfig

    Examples
    --------
    >>> rules = EligibilityRules(PolicyConfig(wait_limit_s={"chat": 60}))
    >>> ok, why = rules.one(device=0, language=0, offers_shown=0, time_since_dismiss_s=float("nan"),
    ...                     contacts_started=0, open_=[1, 0, 1, 1, 1, 1], wait_s=[90, 0, 0, 0, 0, 0],
    ...                     lang_ok=[1] * 6, opted_out=[0] * 6)
    >>> ok, why
    ([True, False, False, True, True, True, True], ['chat: wait 90 s over the 60 s limit', 'callback: closed'])
    >>> n = np.ones(2)
    >>> mask, texts = rules.many(device=0 * n, language=0 * n, offers_shown=0 * n, time_since_dismiss_s=np.nan * n,
    ...                          contacts_started=np.array([0, 1]), open_=np.ones((2, 6)), wait_s=np.zeros((2, 6)),
    ...                          lang_ok=np.ones((2, 6)), opted_out=np.zeros((2, 6)))
    >>> mask.sum(axis=1).tolist(), texts.tolist()
    ([7, 1], ['', 'all: a contact has already started in this session'])
    """

    def __init__(self, cfg: PolicyConfig) -> None:
        self.cfg = cfg
        self.channels = cfg.channels.names

        def compiled(rules: tuple[_Rule, ...], ch: str) -> tuple[tuple[_Rule, Any, Any, Any, int], ...]:
            # (rule, limit, source of the comparison, vectorised op, slot of the input in check()'s per-channel inputs)
            out = []
            for r in rules:
                lim = r.limit(cfg, ch)
                if lim is not None:
                    slot = _PER_CHANNEL.index(r.field) if r.field in _PER_CHANNEL else -1
                    out.append((r, lim, *_OPS[r.op], slot))
            return tuple(out)

        self.blocking = compiled(_BLOCKING_RULES, "")
        self.per_channel = tuple(compiled(_CHANNEL_RULES, ch) for ch in self.channels)
        #: The per-request executor, arguments by position (see :meth:`one`, :meth:`_compile_one`).
        self.check = self._compile_one()

    def one(self, *, device: float, language: float, offers_shown: float, time_since_dismiss_s: float,
            contacts_started: float, open_: Sequence[float], wait_s: Sequence[float], lang_ok: Sequence[float],
            opted_out: Sequence[float]) -> tuple[list[bool], list[str]]:
        """One request: eligibility over ``cfg.actions`` (``none`` first, always True) and the why-not texts.

        :attr:`check` with its arguments by name.
        """
        return self.check(device, language, offers_shown, time_since_dismiss_s, contacts_started, open_, wait_s,
                          lang_ok, opted_out)

    def _compile_one(self) -> Callable[..., tuple[list[bool], list[str]]]:
        """The per-request executor: the compiled rules written out as one plain function.

        Each rule becomes one comparison in source (its ``_OPS`` template) with its limit and text
        bound as constants, in rule order, so a request costs a few comparisons per channel and no
        function call unless a rule holds (what ``dataclasses`` and ``attrs`` do for ``__init__``).
        The function takes (device, language, offers_shown, time_since_dismiss_s, contacts_started,
        open_, wait_s, lang_ok, opted_out), the per-channel inputs as sequences in catalogue order.
        """
        env: dict[str, Any] = {"N_CHANNELS": len(self.channels)}
        lines = ["def check(device, language, offers_shown, time_since_dismiss_s, contacts_started, open_, wait_s, "
                 "lang_ok, opted_out):"]
        for i, (r, lim, src, _, _) in enumerate(self.blocking):
            env[f"L{i}"], env[f"T{i}"] = lim, r.text
            lines += [f"    if {src.format(v=f'(v := {r.field})', lim=f'L{i}')}:",
                      f"        return [True] + [False] * N_CHANNELS, [T{i}('', v, L{i}, language, device)]"]
        lines += ["    ok = [True]", "    why = []"]
        for j, (ch, rules) in enumerate(zip(self.channels, self.per_channel)):
            env[f"C{j}"] = ch
            for i, (r, lim, src, _, slot) in enumerate(rules):
                name = f"{j}_{i}"
                env[f"L{name}"], env[f"T{name}"] = lim, r.text
                value = "device" if slot < 0 else f"{_PER_CHANNEL_ARGS[slot]}[{j}]"
                lines += [f"    {'if' if i == 0 else 'elif'} {src.format(v=f'(v := {value})', lim=f'L{name}')}:",
                          f"        why.append(T{name}(C{j}, v, L{name}, language, device))",
                          "        ok.append(False)"]
            lines += (["    else:", "        ok.append(True)"] if rules else ["    ok.append(True)"])
        lines.append("    return ok, why")
        source = "\n".join(lines) + "\n"
        code = _CHECK_CODE.get(source)
        if code is None:  # the source depends on which rules are on, not on their limits: a few per process
            code = _CHECK_CODE[source] = compile(source, "<nextchannel.policy eligibility rules>", "exec")
        exec(code, env)  # noqa: S102 - our own rule table
        return env["check"]

    def many(self, *, device: np.ndarray, language: np.ndarray, offers_shown: np.ndarray,
             time_since_dismiss_s: np.ndarray, contacts_started: np.ndarray, open_: np.ndarray, wait_s: np.ndarray,
             lang_ok: np.ndarray, opted_out: np.ndarray, texts: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Many requests: the mask ``(n, n_actions)`` and the why-not texts joined by " | " (or None)."""
        n = len(offers_shown)
        session = {"contacts_started": np.asarray(contacts_started, dtype=float),
                   "offers_shown": np.asarray(offers_shown, dtype=float),
                   "time_since_dismiss_s": np.asarray(time_since_dismiss_s, dtype=float)}
        device, language = np.asarray(device, dtype=float), np.asarray(language, dtype=float)
        free = np.ones(n, dtype=bool)
        block_text = np.full(n, "", dtype=object) if texts else None
        with np.errstate(invalid="ignore"):
            for r, lim, _, vop, _ in self.blocking:
                v = session[r.field]
                hit = free & vop(v, lim)
                if texts and hit.any():
                    found, code = _render(r, "", lim, v[hit], np.zeros(int(hit.sum())), np.zeros(int(hit.sum())))
                    block_text[hit] = np.asarray(found, dtype=object)[code]
                free &= ~hit
            ok = np.ones((n, len(self.channels) + 1), dtype=bool)
            ok[:, 1:] = free[:, None]
            # per channel: its distinct texts, and per row the number of its text (0: none)
            chan_texts: list[list[str]] = []
            chan_codes = np.zeros((n, len(self.channels)), dtype=np.intp) if texts else None
            per = {"open": open_, "wait_s": wait_s, "lang_ok": lang_ok, "opted_out": opted_out}
            for j, (ch, rules) in enumerate(zip(self.channels, self.per_channel)):
                todo = free.copy()
                found: list[str] = []
                for r, lim, _, vop, _ in rules:
                    v = device if r.field == "device" else np.asarray(per[r.field][:, j], dtype=float)
                    hit = todo & vop(v, lim)
                    if texts and hit.any():
                        rendered, code = _render(r, ch, lim, v[hit], language[hit], device[hit])
                        chan_codes[hit, j] = 1 + len(found) + code
                        found += rendered
                    todo &= ~hit
                ok[:, j + 1] = todo
                chan_texts.append(found)
        if not texts:
            return ok, None
        why = block_text
        rows = np.flatnonzero(free & ~ok[:, 1:].all(axis=1))
        if len(rows):  # each distinct combination of the channels' texts joined once
            combos, inverse = np.unique(chan_codes[rows], axis=0, return_inverse=True)
            joined = [" | ".join(found[c - 1] for found, c in zip(chan_texts, combo) if c) for combo in combos.tolist()]
            why[rows] = np.asarray(joined, dtype=object)[inverse.ravel()]
        return ok, why

    def frame(self, X: Any, C: Any, *, texts: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`many` from a feature frame (built-in features, ``prof_optout_<ch>``) and a context frame."""
        names = self.channels

        def col(frame: Any, name: str, default: float) -> np.ndarray:
            return frame[name].to_numpy(dtype=float) if name in frame.columns else np.full(len(frame), default)

        def chans(frame: Any, fmt: str, default: float) -> np.ndarray:
            return np.column_stack([col(frame, fmt.format(c), default) for c in names]) if names \
                else np.zeros((len(frame), 0))

        return self.many(device=col(X, "device", -1), language=col(X, "language", -1),
                         offers_shown=col(X, "offers_shown", 0), time_since_dismiss_s=col(X, "time_since_dismiss_s", np.nan),
                         contacts_started=col(X, "contacts_started", 0), open_=chans(C, "open_{}", 1),
                         wait_s=chans(C, "wait_{}_s", 0), lang_ok=chans(C, "lang_ok_{}", 1),
                         opted_out=chans(X, "prof_optout_{}", 0), texts=texts)


_CHECK_CODE: dict[str, Any] = {}
_RULES_OF: dict[int, tuple[PolicyConfig, EligibilityRules]] = {}
_RULES_LOCK = threading.Lock()


def _rules_of(cfg: PolicyConfig) -> EligibilityRules:
    """The compiled rules of a config, kept per config object (a frozen config's rules never change), so
    that the functions below, called per request by code that holds a config, do not compile them again."""
    hit = _RULES_OF.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    rules = EligibilityRules(cfg)
    with _RULES_LOCK:
        if len(_RULES_OF) >= 64:
            _RULES_OF.clear()
        _RULES_OF[id(cfg)] = (cfg, rules)   # the entry holds cfg: its id is not reused while cached
    return rules


def _render(rule: _Rule, channel: str, limit: Any, value: np.ndarray, language: np.ndarray,
            device: np.ndarray) -> tuple[list[str], np.ndarray]:
    """A rule's why-not text for many hits, each distinct (value, language, device) rendered once.

    Returns the distinct texts and, per hit, the index of its text. Inputs are told apart by their
    bits (so -0.0 and 0.0, which a format may show differently, are rendered apart); the text is the
    one :meth:`EligibilityRules.one` renders for the same numbers.
    """
    code = np.zeros(len(value), dtype=np.int64)
    small = len(value) < 2**20   # codes below n_hits ** 3 fit in int64; more hits: renumber after each column
    for column in (value, language, device):  # one code per distinct triple
        levels, level = np.unique(np.ascontiguousarray(column, dtype=np.float64).view(np.int64), return_inverse=True)
        code = code * len(levels) + level.ravel()
        if not small:
            code = np.unique(code, return_inverse=True)[1].ravel()
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    texts = [rule.text(channel, value[i], limit, language[i], device[i]) for i in first.tolist()]
    return texts, inverse.ravel()


def eligibility(cfg: PolicyConfig, *, device: str | None, language: str | None,
                offers_shown: float, time_since_dismiss_s: float, contacts_started: float,
                open_: Sequence[bool], wait_s: Sequence[float], lang_ok: Sequence[bool],
                opted_out: Sequence[bool]) -> tuple[list[bool], list[str]]:
    """Which actions may be taken now, and why not for the others (device and language by name).

    Returns a list of booleans over ``cfg.actions`` (``none`` always True) and the why-not texts;
    :meth:`EligibilityRules.one` on the codes (the scorer compiles the rules once per model set).

    Examples
    --------
    >>> cfg = PolicyConfig()
    >>> ok, why = eligibility(cfg, device="mobile", language="de", offers_shown=1, time_since_dismiss_s=20.0,
    ...                       contacts_started=0, open_=[True] * 6, wait_s=[0.0] * 6, lang_ok=[True] * 6,
    ...                       opted_out=[False] * 6)
    >>> ok, why
    ([True, False, False, False, False, False, False], ['all: cooldown after a dismissal 20 s ago'])
    """
    return _rules_of(cfg).one(
        device=_code(DEVICES, device), language=_code(LANGUAGES, language), offers_shown=offers_shown,
        time_since_dismiss_s=time_since_dismiss_s, contacts_started=contacts_started, open_=open_, wait_s=wait_s,
        lang_ok=lang_ok, opted_out=[1.0 if x else 0.0 for x in opted_out])


def _code(vocab: Sequence[str], name: str | None) -> float:
    return float(vocab.index(name)) if name in vocab else -1.0


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


def greedy_one(margin: float, ev: Sequence[float], eligible: Sequence[bool], fixed: int | None = None) -> int:
    """The greedy action of one request (plain Python; :func:`greedy_many` is the vectorised executor).

    The best eligible channel (ties: catalogue order) if its EV beats ``none``'s by more than
    ``margin``, else ``none``; with ``fixed`` (a constant policy) that action where eligible.

    Examples
    --------
    >>> greedy_one(0.5, [1.0, 1.4, 2.0, 2.0], [True, True, True, True]), greedy_one(1.5, [1.0, 2.0], [True, True])
    (2, 0)
    """
    if fixed is not None:
        return fixed if eligible[fixed] else 0
    ev0 = ev[0]
    best, best_gain = 0, -math.inf
    for j in range(1, len(ev)):
        if eligible[j]:
            g = ev[j] - ev0
            if g > best_gain:
                best, best_gain = j, g
    return best if best and best_gain > margin else 0


def greedy_many(cfg: PolicyConfig, ev: np.ndarray, eligible: np.ndarray, margin: float | None = None,
                fixed: int | None = None) -> np.ndarray:
    """Greedy action index per row (:func:`greedy_one`'s rule), vectorised; ``margin`` default ``cfg.offer_margin``."""
    n = len(ev)
    if fixed is not None:
        return np.where(eligible[:, fixed], fixed, 0)
    m = cfg.offer_margin if margin is None else margin
    if ev.shape[1] < 2:
        return np.zeros(n, dtype=int)
    gain = np.where(eligible[:, 1:], ev[:, 1:] - ev[:, :1], -np.inf)
    best = 1 + np.argmax(gain, axis=1)
    return np.where(gain[np.arange(n), best - 1] > m, best, 0)


def choose_many(cfg: PolicyConfig, ev: np.ndarray, eligible: np.ndarray, u: np.ndarray,
                fixed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`choose` for many rows at once: (action index, propensity, probabilities) per row.

    ``ev`` and ``eligible`` of shape ``(n, n_actions)``, ``u`` of shape ``(n,)``; :func:`choose`
    is this function on one row, so the two agree bit for bit.
    """
    ev = np.asarray(ev, dtype=float)
    eligible = np.asarray(eligible, dtype=bool)
    n, k = ev.shape
    greedy = greedy_many(cfg, ev, eligible, fixed=fixed)
    rows = np.arange(n)
    if cfg.exploration == "none":
        probs = np.zeros((n, k))
        probs[rows, greedy] = 1.0
    elif cfg.exploration == "epsilon":
        n_ok = eligible.sum(axis=1, keepdims=True)
        probs = np.where(eligible, cfg.epsilon / n_ok, 0.0)
        probs[rows, greedy] += 1.0 - cfg.epsilon
    else:
        if fixed is None:
            gain = np.where(eligible, ev - ev[:, :1], -np.inf)
            gain[:, 0] = cfg.offer_margin
        else:
            gain = np.where(eligible, 0.0, -np.inf)
            gain[rows, greedy] = 1.0
        z = np.where(eligible, gain / cfg.temperature, -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        w = np.exp(z)
        probs = w / w.sum(axis=1, keepdims=True)
        if cfg.explore_floor > 0:  # every eligible action keeps at least floor / n_eligible
            n_ok = eligible.sum(axis=1, keepdims=True)
            probs = (1.0 - cfg.explore_floor) * probs + np.where(eligible, cfg.explore_floor / n_ok, 0.0)
    cum = np.cumsum(probs, axis=1)
    idx = np.minimum((cum <= (np.asarray(u, dtype=float) * cum[:, -1])[:, None]).sum(axis=1), k - 1)
    # float edges may land on a zero-probability action: take the last positive one before it
    cols = np.arange(k)
    idx = np.where(probs[rows, idx] > 0, idx, np.where((probs > 0) & (cols <= idx[:, None]), cols, 0).max(axis=1))
    return idx, probs[rows, idx], probs


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
        Greedy: :func:`greedy_one`'s action; ``epsilon``: with probability ``epsilon`` a uniformly
        random eligible action (``none`` included); ``softmax``: eligible actions weighted by
        ``exp(gain / temperature)`` with ``none``'s gain ``offer_margin``, mixed with a uniform
        share ``explore_floor``.
    """
    idx, prop, probs = choose_many(cfg, np.asarray(ev, dtype=float)[None, :], np.asarray(eligible, dtype=bool)[None, :],
                                   np.array([u], dtype=float), fixed)
    return int(idx[0]), float(prop[0]), probs[0]


def runner_up_many(cfg: PolicyConfig, ev: np.ndarray, eligible: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The action each decision was taken against: the best other eligible action, -1 if there is none.

    Ranked as the greedy rule ranks them: a channel by its gain over ``none``, ``none`` by the
    margin a channel must beat (ties: catalogue order). For an offer it is the closest competitor
    (``none`` or another channel); for no offer, the channel that would have been offered.
    Reasons explain ``EV(chosen) − EV(runner-up)``.

    Examples
    --------
    >>> cfg = PolicyConfig(channels=["chat", "email"], offer_margin=0.5)
    >>> runner_up_many(cfg, np.array([[0.0, 2.0, 0.2], [0.0, 0.3, 0.1]]), np.ones((2, 3), bool), np.array([1, 0])).tolist()
    [0, 1]
    """
    ev = np.asarray(ev, dtype=float)
    n = len(ev)
    gain = np.where(eligible, ev - ev[:, :1], -np.inf)
    gain[:, 0] = cfg.offer_margin
    gain[np.arange(n), np.asarray(chosen, dtype=int)] = -np.inf
    best = np.argmax(gain, axis=1)
    return np.where(np.isneginf(gain[np.arange(n), best]), -1, best)


def runner_up_one(margin: float, ev: Sequence[float], eligible: Sequence[bool], chosen: int) -> int:
    """:func:`runner_up_many` for one decision, in plain Python (the lazy reasons of one decision).

    Examples
    --------
    >>> runner_up_one(0.5, [0.0, 2.0, 0.2], [True, True, True], 1), runner_up_one(0.5, [0.0, 0.3], [True, False], 0)
    (0, -1)
    """
    ev0 = ev[0]
    best, best_gain = -1, -math.inf
    for j in range(len(ev)):
        if j == chosen or (j and not eligible[j]):  # none ranks by the margin, eligible or not (as above)
            continue
        g = margin if j == 0 else ev[j] - ev0
        if g > best_gain:  # ">": ties go to the first, as argmax
            best, best_gain = j, g
    return best


def eligibility_many(cfg: PolicyConfig, *, device: np.ndarray, language: np.ndarray, offers_shown: np.ndarray,
                     time_since_dismiss_s: np.ndarray, contacts_started: np.ndarray, open_: np.ndarray,
                     wait_s: np.ndarray, lang_ok: np.ndarray, opted_out: np.ndarray) -> np.ndarray:
    """Vectorised :func:`eligibility` (the mask only): arrays of n rows, per-channel ones of shape (n, k).

    ``device`` and ``language`` are code arrays (index in ``schema.DEVICES`` / ``LANGUAGES``, -1 unknown);
    :meth:`EligibilityRules.many` without the texts.
    """
    return _rules_of(cfg).many(device=device, language=language, offers_shown=offers_shown,
                                      time_since_dismiss_s=time_since_dismiss_s, contacts_started=contacts_started,
                                      open_=open_, wait_s=wait_s, lang_ok=lang_ok, opted_out=opted_out, texts=False)[0]


def eligibility_frame(cfg: PolicyConfig, X: Any, C: Any) -> np.ndarray:
    """:func:`eligibility_many` from a feature frame ``X`` (features of :mod:`nextchannel.features`,
    ``prof_optout_<ch>``) and a channel-context frame ``C`` (``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>``)."""
    return _rules_of(cfg).frame(X, C, texts=False)[0]
