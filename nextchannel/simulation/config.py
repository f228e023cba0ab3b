"""The simulated world's configuration: :class:`SimConfig`, :class:`ChannelSim` and the presets.

Where it sits: every other module of :mod:`nextchannel.simulation` reads a :class:`SimConfig`;
nothing here draws a random number. A config is a frozen, validated dataclass that round-trips
through JSON; shifted worlds (other channel costs, device mix, queue levels, problem rates) are
other configs, built with :meth:`SimConfig.shifted` or ``dataclasses.replace``.

Examples
--------
>>> cfg = SimConfig.shifted("long_queues")
>>> cfg.queue_scale, SimConfig.from_json(cfg.to_json()) == cfg
(3.0, True)
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from nextchannel.errors import ConfigError
from nextchannel.schema import DEVICES, LANGUAGES, PAGE_TYPES, REFERRERS, ChannelCatalogue

__all__ = ["AGE_BANDS", "INTENTS", "PROBLEMS", "LOGGING_POLICIES", "SHIFTS", "DEFAULT_CHANNEL_SIMS",
           "ChannelSim", "SimConfig"]

#: Age bands of customers, youngest first.
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
#: Session intents.
INTENTS: tuple[str, ...] = ("browse", "buy", "support")
#: Latent problem states at a decision point.
PROBLEMS: tuple[str, ...] = ("none", "simple", "complex")
#: Logging policies the simulator knows (``SimConfig.logging_policy``).
LOGGING_POLICIES: tuple[str, ...] = ("uniform", "rule_epsilon")
#: Names accepted by :meth:`SimConfig.shifted`.
SHIFTS: tuple[str, ...] = ("phone_costly", "long_queues", "mobile_heavy", "problem_heavy")


def _fail(name: str, expected: str, got: Any) -> None:
    raise ConfigError(f"{name} must be {expected}, got {got!r}")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and math.isfinite(float(v))


def _check_prob(name: str, v: Any) -> None:
    if not _is_num(v) or not 0.0 <= float(v) <= 1.0:
        _fail(name, "a probability in [0, 1]", v)


def _check_nonneg(name: str, v: Any) -> None:
    if not _is_num(v) or float(v) < 0.0:
        _fail(name, "a finite number >= 0", v)


def _check_pos(name: str, v: Any) -> None:
    if not _is_num(v) or float(v) <= 0.0:
        _fail(name, "a finite number > 0", v)


def _check_finite(name: str, v: Any) -> None:
    if not _is_num(v):
        _fail(name, "a finite number", v)


def _check_mix(name: str, v: Any, n: int, labels: tuple[str, ...] | None = None) -> None:
    what = f"a tuple of {n} probabilities" + (f" (for {list(labels)})" if labels else "") + " summing to 1"
    if not isinstance(v, tuple) or len(v) != n or not all(_is_num(x) and float(x) >= 0 for x in v) \
            or abs(sum(float(x) for x in v) - 1.0) > 1e-6:
        _fail(name, what, v)


def _check_rates(name: str, v: Any, n: int = 2, what: str = "(no problem, problem)") -> None:
    if not isinstance(v, tuple) or len(v) != n or not all(_is_num(x) and 0 <= float(x) <= 1 for x in v):
        _fail(name, f"a tuple of {n} probabilities {what}", v)


def _tupled(v: Any) -> Any:
    """Lists (from JSON or a caller) become tuples, recursively, so configs compare and hash."""
    if isinstance(v, list):
        return tuple(_tupled(x) for x in v)
    return v


@dataclass(frozen=True)
class ChannelSim:
    """How one channel behaves in the simulated world.

    Parameters
    ----------
    name : str
        Channel name; :class:`SimConfig` requires one ``ChannelSim`` per catalogue channel, in
        catalogue order.
    cost : float
        Cost of an accepted offer (agent time, telephony), in the same units as
        ``SimConfig.value_success``. Default order: phone > callback ≈ chat > messaging > email >
        self_service (tiny).
    accept_base : float
        Base acceptance logit of a visitor who needs help, with average affinity.
    affinity_mean : float
        Mean latent affinity (an additive acceptance logit) of customers for this channel.
    affinity_age_slope : float
        Change of the latent affinity per age band, centred on the middle band (positive: older
        customers like the channel more, e.g. phone; negative: messaging).
    device_fit : tuple of 3 float
        Acceptance logit offset by the session's device (desktop, mobile, tablet), e.g. messaging
        fits mobile. Half of it also enters the latent affinity of the device a customer prefers.
    work_hours_desktop : float
        Acceptance logit offset for desktop visitors during their local working hours (Mon-Fri,
        9-17): voice channels are awkward at an office desk.
    open_hours : tuple of 2 float
        Opening hours ``[start, end)`` in service-local hours (``SimConfig.service_utc_offset_s``);
        ``(0, 24)`` means always open.
    open_weekdays : tuple of int
        Service-local weekdays the channel is open, 0 = Monday.
    base_wait_s : float
        Mean queue wait at average load for a live channel (seconds); must be 0 for a channel the
        catalogue marks as not live.
    languages : tuple of str
        Languages (from ``nextchannel.schema.LANGUAGES``) the channel serves.
    solve_simple, solve_complex : float
        Probability that an accepted contact solves a simple / complex problem (language matched,
        no wait).
    handling_median_s : float
        Median handling time of a contact (history only).
    opt_out_rate : float
        Share of customers who opted out of this channel.
    """

    name: str
    cost: float
    accept_base: float = -0.5
    affinity_mean: float = 0.0
    affinity_age_slope: float = 0.0
    device_fit: tuple[float, float, float] = (0.0, 0.0, 0.0)
    work_hours_desktop: float = 0.0
    open_hours: tuple[float, float] = (0.0, 24.0)
    open_weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    base_wait_s: float = 0.0
    languages: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl", "pl")
    solve_simple: float = 0.7
    solve_complex: float = 0.5
    handling_median_s: float = 600.0
    opt_out_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _tupled(getattr(self, f.name)))
        p = f"channel_sims[{self.name!r}]."
        if not isinstance(self.name, str) or not self.name:
            _fail("channel_sims[].name", "a non-empty channel name", self.name)
        for k in ("cost", "base_wait_s"):
            _check_nonneg(p + k, getattr(self, k))
        _check_pos(p + "handling_median_s", self.handling_median_s)
        for k in ("accept_base", "affinity_mean", "affinity_age_slope", "work_hours_desktop"):
            _check_finite(p + k, getattr(self, k))
        for k in ("solve_simple", "solve_complex", "opt_out_rate"):
            _check_prob(p + k, getattr(self, k))
        if not isinstance(self.device_fit, tuple) or len(self.device_fit) != len(DEVICES) \
                or not all(_is_num(x) for x in self.device_fit):
            _fail(p + "device_fit", f"a tuple of {len(DEVICES)} finite numbers for {list(DEVICES)}",
                  self.device_fit)
        oh = self.open_hours
        if not isinstance(oh, tuple) or len(oh) != 2 or not all(_is_num(x) for x in oh) \
                or not 0 <= oh[0] < oh[1] <= 24:
            _fail(p + "open_hours", "a tuple (start, end) with 0 <= start < end <= 24", oh)
        wd = self.open_weekdays
        if not isinstance(wd, tuple) or not wd or not all(
                isinstance(x, (int, np.integer)) and not isinstance(x, bool) and 0 <= x <= 6 for x in wd) \
                or len(set(wd)) != len(wd):
            _fail(p + "open_weekdays", "a non-empty tuple of distinct weekdays in 0..6", wd)
        if not isinstance(self.languages, tuple) or not all(x in LANGUAGES for x in self.languages):
            _fail(p + "languages", f"a tuple of languages from {list(LANGUAGES)}", self.languages)


#: The default world's channels (for ``ChannelCatalogue.default()``).
DEFAULT_CHANNEL_SIMS: tuple[ChannelSim, ...] = (
    ChannelSim("chat", cost=3.0, accept_base=-0.3, affinity_mean=0.3, affinity_age_slope=-0.25, device_fit=(0.2, 0.0, 0.0),
               open_hours=(8.0, 22.0), base_wait_s=60.0, languages=("en", "de", "fr", "es"),
               solve_simple=0.85, solve_complex=0.7, handling_median_s=480.0, opt_out_rate=0.02),
    ChannelSim("callback", cost=3.5, accept_base=-0.5, affinity_mean=-0.3, affinity_age_slope=0.15, device_fit=(-0.2, 0.2, 0.0),
               work_hours_desktop=-0.6, open_hours=(8.0, 18.0), open_weekdays=(0, 1, 2, 3, 4),
               base_wait_s=150.0, languages=("en", "de", "fr"), solve_simple=0.85, solve_complex=0.75,
               handling_median_s=540.0, opt_out_rate=0.05),
    ChannelSim("phone", cost=6.0, accept_base=-0.9, affinity_mean=0.4, affinity_age_slope=0.35, device_fit=(-0.3, 0.3, -0.2),
               work_hours_desktop=-0.8, open_hours=(8.0, 18.0), open_weekdays=(0, 1, 2, 3, 4, 5),
               base_wait_s=120.0, languages=("en", "de", "fr", "es", "it"), solve_simple=0.9,
               solve_complex=0.8, handling_median_s=420.0, opt_out_rate=0.03),
    ChannelSim("email", cost=1.5, accept_base=-1.0, affinity_mean=0.2, affinity_age_slope=0.1, device_fit=(0.2, -0.3, 0.0),
               languages=("en", "de", "fr", "es", "it", "nl", "pl"), solve_simple=0.6, solve_complex=0.45,
               handling_median_s=900.0, opt_out_rate=0.08),
    ChannelSim("messaging", cost=2.0, accept_base=-0.8, affinity_mean=-0.2, affinity_age_slope=-0.35, device_fit=(-0.6, 0.7, 0.1),
               languages=("en", "de", "fr", "es", "nl"), solve_simple=0.7, solve_complex=0.55,
               handling_median_s=1200.0, opt_out_rate=0.08),
    ChannelSim("self_service", cost=0.1, accept_base=0.2, affinity_age_slope=-0.2, device_fit=(0.0, 0.1, 0.0),
               languages=("en", "de", "fr", "es", "it", "nl", "pl"), solve_simple=0.75, solve_complex=0.08,
               handling_median_s=180.0, opt_out_rate=0.0),
)

_DEFAULT_HOURLY = (0.2, 0.1, 0.08, 0.06, 0.06, 0.1, 0.25, 0.5, 0.8, 1.0, 1.1, 1.15,
                   1.2, 1.1, 1.05, 1.0, 1.0, 1.05, 1.15, 1.3, 1.35, 1.2, 0.8, 0.4)

# Page-to-page routes per intent: weights of the next page type given the current one ("start":
# the landing page). Hesitation (back, revisit, help visits) overrides the route; see SimConfig.
_ROUTES: dict[str, dict[str, dict[str, float]]] = {
    "browse": {
        "start": {"home": 5, "category": 2, "product": 2, "search": 1},
        "home": {"category": 5, "search": 2, "product": 2, "pricing": 1},
        "category": {"product": 6, "category": 2, "search": 1, "home": 1},
        "product": {"product": 4, "category": 3, "cart": 1, "search": 1, "pricing": 1},
        "search": {"product": 7, "search": 2, "category": 1},
        "cart": {"product": 4, "checkout": 2, "category": 4},
        "checkout": {"cart": 5, "product": 5},
        "account": {"home": 5, "category": 5},
        "help": {"home": 4, "category": 3, "product": 3},
        "contact": {"home": 5, "help": 5},
        "pricing": {"product": 5, "category": 3, "home": 2},
    },
    "buy": {
        "start": {"home": 3, "product": 3, "search": 3, "category": 1},
        "home": {"category": 4, "search": 4, "product": 2},
        "category": {"product": 8, "category": 1, "search": 1},
        "product": {"cart": 5, "product": 3, "category": 1, "pricing": 1},
        "search": {"product": 8, "search": 2},
        "cart": {"checkout": 7, "product": 3},
        "checkout": {"checkout": 6, "cart": 2, "account": 2},
        "account": {"checkout": 7, "cart": 3},
        "help": {"checkout": 4, "cart": 3, "product": 3},
        "contact": {"checkout": 5, "help": 5},
        "pricing": {"product": 6, "cart": 4},
    },
    "support": {
        "start": {"home": 3, "help": 3, "account": 3, "search": 1},
        "home": {"help": 4, "account": 3, "contact": 2, "search": 1},
        "category": {"help": 5, "product": 5},
        "product": {"help": 5, "contact": 3, "product": 2},
        "search": {"help": 6, "product": 4},
        "cart": {"help": 5, "checkout": 5},
        "checkout": {"help": 5, "account": 5},
        "account": {"account": 3, "help": 4, "contact": 3},
        "help": {"help": 4, "contact": 3, "account": 2, "search": 1},
        "contact": {"contact": 2, "help": 4, "account": 4},
        "pricing": {"help": 5, "contact": 5},
    },
}

# Fields of SimConfig that are fixed-length tuples of floats: name -> (length, kind, labels).
_MIXES = {
    "age_mix": (len(AGE_BANDS), AGE_BANDS),
    "device_mix": (len(DEVICES), DEVICES),
    "language_mix": (len(LANGUAGES), LANGUAGES),
    "referrer_mix": (len(REFERRERS), REFERRERS),
    "intent_mix": (len(INTENTS), INTENTS),
}
_RATE_PAIRS = ("idle_rate", "back_rate", "revisit_rate", "help_rate", "form_error_rate",
               "cart_remove_rate", "search_rate", "search_zero_rate", "exit_intent_rate",
               "scroll_up_rate")
_PROBS = ("p_known", "p_returning_known", "p_returning_anonymous", "p_device_pref",
          "p_satisfaction_missing", "p_complex", "p_distracted", "p_comparer", "p_quiet_problem",
          "distracted_idle_rate", "comparer_back_rate", "comparer_revisit_rate", "p_decide_page_view",
          "p_decide_idle", "p_leave_unresolved", "p_leave_after_contact", "p_leave_annoyed",
          "lang_mismatch_success", "epsilon", "p_purchase", "p_purchase_after_help", "p_cart_add")
_POSITIVE = ("sessions_per_customer", "dwell_median_s", "idle_median_s", "problem_idle_median_s",
             "distracted_idle_median_s", "accept_wait_scale_s", "abandon_wait_scale_s", "queue_scale",
             "problem_dwell_factor", "price_median", "reaction_median_s")
_NONNEG = ("history_days", "history_contacts_mean", "affinity_sd", "device_pref_affinity",
           "dwell_sd", "value_success", "annoyance", "leave_cost", "queue_load_power",
           "queue_noise_sd", "queue_slot_sd", "problem_extra_pages", "rule_idle_s", "weekend_traffic")
_FINITE = ("epoch_start_s", "service_utc_offset_s", "accept_no_need_logit", "complex_human_logit",
           "opt_out_logit")


@dataclass(frozen=True)
class SimConfig:
    """Every knob of the simulated world; a frozen, validated, JSON round-tripping config.

    Shifted worlds are just other configs: ``dataclasses.replace(cfg, queue_scale=3.0)`` or
    :meth:`shifted`. Tuples aligned with a vocabulary follow its order (``DEVICES``,
    ``LANGUAGES``, ``REFERRERS``, :data:`AGE_BANDS`, :data:`INTENTS`); pairs named ``*_rate`` are
    per-page probabilities ``(without an active problem, with one)``.

    Parameters
    ----------
    channels : ChannelCatalogue
        The channels (actions are ``("none", *channels.names)``).
    channel_sims : tuple of ChannelSim
        One per catalogue channel, same order: costs, acceptance, opening hours, queues,
        languages, solve rates (see :class:`ChannelSim`).
    epoch_start_s : float
        Start of the simulated period, Unix seconds UTC (default 2026-01-05 00:00 UTC, a Monday).
    n_days : int
        Length of the simulated period in days; session starts spread over it.
    service_utc_offset_s : float
        UTC offset of the service's clock: opening hours and the traffic profile are in it.
    hourly_traffic : tuple of 24 float
        Relative session arrivals per service-local hour; also the queue load profile.
    weekend_traffic : float
        Relative traffic on Saturday and Sunday (weekdays 1).
    p_known : float
        Probability that a session belongs to a known (logged-in) customer; others are anonymous.
    sessions_per_customer : float
        Mean sessions per known customer in the period (sets the number of customers).
    p_returning_known, p_returning_anonymous : float
        Probability that the ``session_start`` says ``returning`` for known / anonymous visitors.
    age_mix, device_mix, language_mix, referrer_mix, intent_mix : tuple of float
        Population shares (each sums to 1). ``device_mix`` default has a third of traffic mobile.
    p_device_pref : float
        Probability that a known customer's session uses their preferred device.
    language_utc_offset_s : tuple of float
        Visitors' UTC offset per language (``LANGUAGES`` order), written to ``session_start``.
    affinity_sd : float
        Standard deviation of the individual part of latent channel affinities (logit scale).
    device_pref_affinity : float
        Share of ``ChannelSim.device_fit`` of the preferred device that enters latent affinity.
    history_days : float
        Length of the contact history before ``epoch_start_s``, in days.
    history_contacts_mean : float
        Mean number of past contacts per customer (channel drawn from the softmax of affinity).
    p_satisfaction_missing : float
        Share of past contacts without a satisfaction score (NaN).
    problem_rate : tuple of 3 float
        Probability that a session of each intent (browse, buy, support) meets a problem.
    p_complex : float
        Probability that a problem is complex (needs a human) rather than simple.
    problem_extra_pages : float
        Mean extra pages a visitor browses after a problem arises (Poisson).
    mean_pages : tuple of 3 float
        Mean planned pages per session by intent (geometric).
    dwell_median_s, dwell_sd : float
        Median page dwell time and the log-scale spread.
    problem_dwell_factor : float
        Dwell multiplier while a (non-quiet) problem is active.
    idle_median_s, problem_idle_median_s, distracted_idle_median_s : float
        Median idle duration without a problem, with one, for a distracted visitor.
    p_distracted : float
        Share of visitors who idle a lot without any problem (hesitation without need).
    distracted_idle_rate : float
        Per-page idle probability of a distracted visitor.
    p_comparer : float
        Share of visitors who compare (back-and-forth, revisits) without any problem.
    comparer_back_rate, comparer_revisit_rate : float
        Their per-page probabilities of going back / revisiting.
    p_quiet_problem : float
        Share of problems that show little: the visitor keeps the no-problem signal rates.
    idle_rate, back_rate, revisit_rate, help_rate, form_error_rate, cart_remove_rate, search_rate,
    search_zero_rate, exit_intent_rate, scroll_up_rate : tuple of 2 float
        Hesitation signals ``(without problem, with problem)`` per page: an idle period; going back
        to the page before; revisiting an earlier page; visiting help/contact; form errors (on
        checkout, account, contact pages); a cart removal (on the cart page); a search; a search
        with no results; exit intent; scrolling up.
    p_cart_add : float
        Probability of a cart addition on a product page in a buy session.
    p_purchase : float
        Probability of a purchase on a checkout page of a buy session without an active problem.
    p_purchase_after_help : float
        Probability of a purchase after a successful contact in a session with a cart.
    price_median : float
        Median product price (cart and purchase values).
    reaction_median_s : float
        Median time between an offer shown and the visitor's answer.
    p_decide_page_view, p_decide_idle : float
        Probability that a page view / an idle period is a decision point.
    max_decisions : int
        Maximum decision points per session.
    value_success : float
        Value of a resolved problem (``success``).
    annoyance : float
        Cost of a dismissed offer.
    leave_cost : float
        Cost of a visitor leaving the site because of the decision (``left``).
    accept_no_need_logit : float
        Acceptance logit offset for a visitor who needs no help (strongly negative).
    complex_human_logit : float
        With a complex problem, acceptance logit + this for human channels, - this for others.
    opt_out_logit : float
        Acceptance logit offset for a channel the customer opted out of.
    accept_wait_scale_s : float
        Acceptance of a live channel is multiplied by ``exp(-wait_s / accept_wait_scale_s)``.
    abandon_wait_scale_s : float
        Success of a live channel is multiplied by ``exp(-wait_s / abandon_wait_scale_s)``
        (visitors abandon long queues).
    lang_mismatch_success : float
        Success multiplier when the channel does not serve the visitor's language.
    p_self_resolve : tuple of 2 float
        Probability that a visitor solves a (simple, complex) problem alone at a decision point
        (the success of ``none``, and of a dismissed offer).
    p_leave_unresolved : float
        Probability that a visitor with an unresolved problem leaves the site at a decision point.
    p_leave_after_contact : float
        Probability of leaving after an accepted contact that failed to solve the problem.
    p_leave_annoyed : float
        Probability that a visitor who needs no help leaves after dismissing an offer.
    queue_scale : float
        Multiplier of every live channel's queue wait (the "long_queues" shift sets 3).
    queue_load_power : float
        Queue wait grows as ``load ** queue_load_power`` with the hourly load (mean load = 1).
    queue_slot_sd, queue_noise_sd : float
        Log-scale spread of the wait per (day, hour) slot and per request.
    logging_policy : {"rule_epsilon", "uniform"}
        ``uniform``: every allowed action (none and every open channel) with equal probability.
        ``rule_epsilon``: the rule action with probability ``1 - epsilon`` plus ``epsilon``
        spread uniformly over allowed actions.
    epsilon : float
        Exploration share of ``rule_epsilon``.
    rule_channel : str
        The rule offers this channel (if open) ...
    rule_pages : tuple of str
        ... on these page types ...
    rule_idle_s : float
        ... after at least this much idle time on the current page; otherwise ``none``.
    """

    channels: ChannelCatalogue = field(default_factory=ChannelCatalogue.default)
    channel_sims: tuple[ChannelSim, ...] = DEFAULT_CHANNEL_SIMS
    # time
    epoch_start_s: float = 1767571200.0
    n_days: int = 28
    service_utc_offset_s: float = 3600.0
    hourly_traffic: tuple[float, ...] = _DEFAULT_HOURLY
    weekend_traffic: float = 0.7
    # population
    p_known: float = 0.5
    sessions_per_customer: float = 1.5
    p_returning_known: float = 0.85
    p_returning_anonymous: float = 0.25
    age_mix: tuple[float, ...] = (0.12, 0.22, 0.2, 0.18, 0.15, 0.13)
    device_mix: tuple[float, ...] = (0.57, 0.33, 0.10)
    p_device_pref: float = 0.7
    language_mix: tuple[float, ...] = (0.45, 0.2, 0.12, 0.08, 0.05, 0.04, 0.03, 0.03)
    language_utc_offset_s: tuple[float, ...] = (0.0, 3600.0, 3600.0, 3600.0, 3600.0, 3600.0, 3600.0, 7200.0)
    referrer_mix: tuple[float, ...] = (0.3, 0.35, 0.12, 0.1, 0.08, 0.05)
    affinity_sd: float = 0.7
    device_pref_affinity: float = 0.5
    # history
    history_days: float = 365.0
    history_contacts_mean: float = 2.0
    p_satisfaction_missing: float = 0.5
    # sessions and problems
    intent_mix: tuple[float, ...] = (0.5, 0.35, 0.15)
    problem_rate: tuple[float, ...] = (0.12, 0.3, 0.85)
    p_complex: float = 0.4
    problem_extra_pages: float = 2.0
    mean_pages: tuple[float, ...] = (6.0, 8.0, 5.0)
    dwell_median_s: float = 20.0
    dwell_sd: float = 0.8
    problem_dwell_factor: float = 1.7
    idle_median_s: float = 15.0
    problem_idle_median_s: float = 40.0
    distracted_idle_median_s: float = 60.0
    p_distracted: float = 0.12
    distracted_idle_rate: float = 0.5
    p_comparer: float = 0.15
    comparer_back_rate: float = 0.25
    comparer_revisit_rate: float = 0.2
    p_quiet_problem: float = 0.25
    idle_rate: tuple[float, ...] = (0.12, 0.55)
    back_rate: tuple[float, ...] = (0.05, 0.3)
    revisit_rate: tuple[float, ...] = (0.05, 0.15)
    help_rate: tuple[float, ...] = (0.02, 0.25)
    form_error_rate: tuple[float, ...] = (0.08, 0.5)
    cart_remove_rate: tuple[float, ...] = (0.06, 0.3)
    search_rate: tuple[float, ...] = (0.08, 0.2)
    search_zero_rate: tuple[float, ...] = (0.1, 0.5)
    exit_intent_rate: tuple[float, ...] = (0.02, 0.1)
    scroll_up_rate: tuple[float, ...] = (0.15, 0.4)
    p_cart_add: float = 0.5
    p_purchase: float = 0.35
    p_purchase_after_help: float = 0.5
    price_median: float = 60.0
    reaction_median_s: float = 6.0
    # decision points
    p_decide_page_view: float = 0.4
    p_decide_idle: float = 0.9
    max_decisions: int = 6
    # reward
    value_success: float = 20.0
    annoyance: float = 1.0
    leave_cost: float = 5.0
    # acceptance and success
    accept_no_need_logit: float = -2.5
    complex_human_logit: float = 0.5
    opt_out_logit: float = -2.5
    accept_wait_scale_s: float = 450.0
    abandon_wait_scale_s: float = 900.0
    lang_mismatch_success: float = 0.4
    p_self_resolve: tuple[float, ...] = (0.3, 0.05)
    p_leave_unresolved: float = 0.2
    p_leave_after_contact: float = 0.3
    p_leave_annoyed: float = 0.08
    # queues
    queue_scale: float = 1.0
    queue_load_power: float = 1.5
    queue_slot_sd: float = 0.35
    queue_noise_sd: float = 0.3
    # logging policy
    logging_policy: str = "rule_epsilon"
    epsilon: float = 0.3
    rule_channel: str = "chat"
    rule_pages: tuple[str, ...] = ("cart", "checkout")
    rule_idle_s: float = 30.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "channel_sims":
                v = tuple(c if isinstance(c, ChannelSim) else
                          ChannelSim(**c) if isinstance(c, Mapping) else c for c in _tupled(v))
            elif f.name == "channels" and isinstance(v, Mapping):
                v = ChannelCatalogue.from_dict(v)
            else:
                v = _tupled(v)
            object.__setattr__(self, f.name, v)
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.channels, ChannelCatalogue):
            _fail("channels", "a ChannelCatalogue", self.channels)
        sims = self.channel_sims
        if not isinstance(sims, tuple) or not all(isinstance(c, ChannelSim) for c in sims):
            _fail("channel_sims", "a tuple of ChannelSim", sims)
        if tuple(c.name for c in sims) != self.channels.names:
            _fail("channel_sims", f"one ChannelSim per channel in catalogue order {list(self.channels.names)}",
                  [c.name for c in sims])
        for c in sims:
            if not self.channels[c.name].live and c.base_wait_s != 0:
                _fail(f"channel_sims[{c.name!r}].base_wait_s", "0 for a channel that is not live",
                      c.base_wait_s)
        if not isinstance(self.n_days, int) or isinstance(self.n_days, bool) or self.n_days < 1:
            _fail("n_days", "an integer >= 1", self.n_days)
        if not isinstance(self.max_decisions, int) or isinstance(self.max_decisions, bool) \
                or self.max_decisions < 0:
            _fail("max_decisions", "an integer >= 0", self.max_decisions)
        for k in _PROBS:
            _check_prob(k, getattr(self, k))
        for k in _POSITIVE:
            _check_pos(k, getattr(self, k))
        for k in _NONNEG:
            _check_nonneg(k, getattr(self, k))
        for k in _FINITE:
            _check_finite(k, getattr(self, k))
        if not -86400 < self.service_utc_offset_s < 86400:
            _fail("service_utc_offset_s", "in (-86400, 86400)", self.service_utc_offset_s)
        for k, (n, labels) in _MIXES.items():
            _check_mix(k, getattr(self, k), n, labels)
        for k in _RATE_PAIRS:
            _check_rates(k, getattr(self, k))
        _check_rates("problem_rate", self.problem_rate, 3, f"for {list(INTENTS)}")
        _check_rates("p_self_resolve", self.p_self_resolve, 2, "(simple, complex)")
        ht = self.hourly_traffic
        if not isinstance(ht, tuple) or len(ht) != 24 or not all(_is_num(x) and x >= 0 for x in ht) \
                or sum(ht) <= 0:
            _fail("hourly_traffic", "a tuple of 24 finite numbers >= 0 with a positive sum", ht)
        mp = self.mean_pages
        if not isinstance(mp, tuple) or len(mp) != 3 or not all(_is_num(x) and x >= 1 for x in mp):
            _fail("mean_pages", f"a tuple of 3 numbers >= 1 for {list(INTENTS)}", mp)
        lo = self.language_utc_offset_s
        if not isinstance(lo, tuple) or len(lo) != len(LANGUAGES) or not all(
                _is_num(x) and -86400 < x < 86400 for x in lo):
            _fail("language_utc_offset_s", f"a tuple of {len(LANGUAGES)} offsets in (-86400, 86400)", lo)
        if self.logging_policy not in LOGGING_POLICIES:
            _fail("logging_policy", f"one of {list(LOGGING_POLICIES)}", self.logging_policy)
        if self.rule_channel not in self.channels.names:
            _fail("rule_channel", f"one of {list(self.channels.names)}", self.rule_channel)
        rp = self.rule_pages
        if not isinstance(rp, tuple) or not all(x in PAGE_TYPES for x in rp):
            _fail("rule_pages", f"a tuple of page types from {list(PAGE_TYPES)}", rp)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict (tuples become lists); :meth:`from_dict` inverts it exactly.

        Examples
        --------
        >>> cfg = SimConfig(epsilon=0.2)
        >>> SimConfig.from_dict(cfg.to_dict()) == cfg
        True
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "channels":
                out[f.name] = v.to_dict()
            elif f.name == "channel_sims":
                out[f.name] = [_listed(dataclasses.asdict(c)) for c in v]
            else:
                out[f.name] = _listed(v)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SimConfig":
        """Build a config from :meth:`to_dict` output; unknown keys raise ConfigError."""
        if not isinstance(d, Mapping):
            _fail("config", "a mapping (dict)", type(d).__name__)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"config keys must be among SimConfig's fields, got unknown {unknown}")
        kw = dict(d)
        if "channels" in kw and isinstance(kw["channels"], Mapping):
            kw["channels"] = ChannelCatalogue.from_dict(kw["channels"])
        if "channel_sims" in kw:
            try:
                kw["channel_sims"] = tuple(c if isinstance(c, ChannelSim) else ChannelSim(**c)
                                           for c in kw["channel_sims"])
            except TypeError as err:
                raise ConfigError(f"channel_sims must be a list of ChannelSim fields, got {err}") from err
        return cls(**kw)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "SimConfig":
        """Inverse of :meth:`to_json`.

        Examples
        --------
        >>> cfg = SimConfig.shifted("long_queues")
        >>> SimConfig.from_json(cfg.to_json()) == cfg
        True
        """
        try:
            d = json.loads(s)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"config JSON must be valid JSON text, got error: {err}") from err
        return cls.from_dict(d)

    # -- shifted worlds ----------------------------------------------------------------------
    def channel_sim(self, name: str) -> ChannelSim:
        """The :class:`ChannelSim` of channel ``name``."""
        return self.channel_sims[self.channels.names.index(self.channels.check(name))]

    def with_channel(self, name: str, **changes: Any) -> "SimConfig":
        """A copy with one channel's settings changed (``dataclasses.replace`` on it).

        Examples
        --------
        >>> SimConfig().with_channel("phone", cost=12.0).channel_sim("phone").cost
        12.0
        """
        i = self.channels.names.index(self.channels.check(name))
        sims = list(self.channel_sims)
        sims[i] = dataclasses.replace(sims[i], **changes)
        return dataclasses.replace(self, channel_sims=tuple(sims))

    @classmethod
    def shifted(cls, name: str, base: "SimConfig | None" = None) -> "SimConfig":
        """A shifted world: ``base`` (default config) with one documented change.

        ``phone_costly``: phone cost x2; ``long_queues``: live queues 3x longer; ``mobile_heavy``:
        60% of sessions on mobile; ``problem_heavy``: problem rates x1.5 (capped at 1).

        Examples
        --------
        >>> SimConfig.shifted("mobile_heavy").device_mix
        (0.32, 0.6, 0.08)
        """
        base = base if base is not None else cls()
        if name == "phone_costly":
            return base.with_channel("phone", cost=base.channel_sim("phone").cost * 2)
        if name == "long_queues":
            return dataclasses.replace(base, queue_scale=base.queue_scale * 3)
        if name == "mobile_heavy":
            return dataclasses.replace(base, device_mix=(0.32, 0.6, 0.08))
        if name == "problem_heavy":
            return dataclasses.replace(base, problem_rate=tuple(min(1.0, 1.5 * p) for p in base.problem_rate))
        raise ConfigError(f"shift name must be one of {list(SHIFTS)}, got {name!r}")


def _listed(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_listed(x) for x in v]
    if isinstance(v, dict):
        return {k: _listed(x) for k, x in v.items()}
    return v
