"""The simulator: synthetic customers, sessions, decision points, logged actions — and the truth.

Where it sits: it *produces* what the rest of the flow consumes (event logs for ``features``,
contact histories for ``profile``, logged bandit feedback for ``models`` and ``evaluate``), and it
is the ground truth no real log has: for every decision point, the exact expected reward of every
action under the true model (``ev_<action>``), so any policy's value, the oracle's value and the
regret are computed, not estimated.

The causal story (DESIGN.md §4), every part a knob of :class:`SimConfig`:

* **Customers** carry latent channel affinities (logit offsets) tied to their age band, their
  preferred device and — through it — their contact history, which is drawn from those
  affinities before the simulated period. About half the sessions are anonymous.
* **Sessions** have an intent (browse, buy, support). A *problem* may arise at some page (support
  visitors arrive with one); it is *simple* (self-service can solve it) or *complex* (needs a
  human). While a problem is active the visitor hesitates — longer dwell, idles, returns to the
  page before, revisits, form errors, help/contact visits, cart removals, searches without
  results, exit intent. The world is honest: some visitors hesitate without a problem
  (distracted, comparing) and some struggle quietly, so signals are informative but noisy.
* **Decision points** come at page views and after idle periods. A *logging policy* picks an
  action (``"none"`` or a channel) with a logged, exact propensity, and the outcome is drawn from
  the true model: acceptance rises with need, affinity and fit to the device, falls with the
  queue wait (and is 0 for a closed channel); success given acceptance depends on the channel's
  fit to the problem, the language match and the wait; an offer to a visitor who needs no help
  annoys and sometimes makes them leave.
* **Reward** of a decision point with action ``a`` (DESIGN.md §3)::

      reward = value_success * success - cost[a] * accepted - annoyance * dismissed - leave_cost * left

  Each decision point is a one-step contextual bandit: reward and ``ev_<action>`` are attributed
  to the action taken there. :func:`expected_reward` gives ``ev`` exactly from the model's
  probabilities, and the logged ``reward`` is a draw whose mean is ``ev`` of the logged action.

Randomness flows only from ``seed`` (``np.random.default_rng``); the same seed and config give
identical frames.

Examples
--------
>>> from nextchannel.simulate import SimConfig, simulate
>>> res = simulate(200, seed=1)
>>> list(res.decisions.columns[:4])
['session_id', 'ts', 'trigger', 'customer_id']
>>> bool((res.decisions["reward"].abs() <= 30).all()), res.config == SimConfig()
(True, True)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from nextchannel.errors import ConfigError
from nextchannel.schema import (
    DEVICES,
    EVENT_COLUMNS,
    LANGUAGES,
    NONE_ACTION,
    PAGE_TYPES,
    REFERRERS,
    ChannelCatalogue,
)

__all__ = [
    "AGE_BANDS",
    "INTENTS",
    "PROBLEMS",
    "LOGGING_POLICIES",
    "SHIFTS",
    "ChannelSim",
    "SimConfig",
    "SimResult",
    "simulate",
    "summary",
    "p_accept",
    "p_success",
    "p_self_resolve",
    "expected_reward",
]

logger = logging.getLogger(__name__)

#: Age bands of customers, youngest first.
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
#: Session intents.
INTENTS: tuple[str, ...] = ("browse", "buy", "support")
#: Latent problem states at a decision point.
PROBLEMS: tuple[str, ...] = ("none", "simple", "complex")
#: Logging policies :func:`simulate` knows.
LOGGING_POLICIES: tuple[str, ...] = ("uniform", "rule_epsilon")
#: Names accepted by :meth:`SimConfig.shifted`.
SHIFTS: tuple[str, ...] = ("phone_costly", "long_queues", "mobile_heavy", "problem_heavy")

_FORM_FIELDS: tuple[str, ...] = ("email", "address", "postcode", "card_number", "phone", "password")
_FORM_PAGES = frozenset({"checkout", "account", "contact"})


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# The true model: one formula each, shared by the per-event loop (floats, math.exp) and the
# vectorised oracle (arrays, np.exp), so ev_<action> and the logged draws cannot drift apart.
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
    :func:`simulate`'s decisions.

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


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SimResult:
    """The simulated world: four frames and the config that made them.

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
        ``lang_ok_<ch>``; the logged ``action`` and its ``propensity``; outcomes ``accepted``,
        ``dismissed``, ``success``, ``left``, ``reward``; latent truth ``needs_help``, ``problem``
        and ``ev_<action>`` for every action.
    config : SimConfig
    """

    customers: pd.DataFrame
    contacts: pd.DataFrame
    events: pd.DataFrame
    decisions: pd.DataFrame
    config: SimConfig


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------
_ET = {t: i for i, t in enumerate(("session_start", "page_view", "scroll", "idle", "click", "form_error",
                                   "form_submit", "cart_add", "cart_remove", "search", "exit_intent",
                                   "offer_shown", "offer_accepted", "offer_dismissed", "contact_started",
                                   "purchase", "session_end"))}
_ET_NAMES = np.array(list(_ET), dtype=object)


def _stream(draw: Callable[[int], np.ndarray], size: int = 1 << 15) -> Callable[[], float]:
    """A fast scalar draw: ``next()`` over numpy-generated blocks (deterministic for the rng)."""
    def blocks():
        while True:
            yield draw(size).tolist()
    return itertools.chain.from_iterable(blocks()).__next__


def _cum(weights: Mapping[str, float]) -> tuple[list[float], list[str]]:
    keys = list(weights)
    tot = float(sum(weights.values()))
    acc, out = 0.0, []
    for k in keys:
        acc += weights[k] / tot
        out.append(acc)
    out[-1] = 1.0 + 1e-12
    return out, keys


def _choice(rng: np.random.Generator, p: tuple[float, ...], n: int) -> np.ndarray:
    cum = np.cumsum(np.asarray(p, dtype=float))
    cum /= cum[-1]
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(p) - 1)


def _customers(cfg: SimConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    C = len(cfg.channels)
    age = _choice(rng, cfg.age_mix, n)
    lang = _choice(rng, cfg.language_mix, n)
    dev = _choice(rng, cfg.device_mix, n)
    aff = _affinity(cfg, rng, age, dev)
    opt = rng.random((n, C)) < np.array([c.opt_out_rate for c in cfg.channel_sims])
    return {"age": age, "lang": lang, "dev": dev, "aff": aff, "opt": opt}


def _affinity(cfg: SimConfig, rng: np.random.Generator, age: np.ndarray, dev: np.ndarray) -> np.ndarray:
    sims = cfg.channel_sims
    mean = np.array([c.affinity_mean for c in sims])
    slope = np.array([c.affinity_age_slope for c in sims])
    fit = np.array([c.device_fit for c in sims])  # (C, 3)
    age_c = age - (len(AGE_BANDS) - 1) / 2.0
    return (mean[None, :] + slope[None, :] * age_c[:, None] + cfg.device_pref_affinity * fit[:, dev].T
            + cfg.affinity_sd * rng.standard_normal((len(age), len(sims))))


def _contacts(cfg: SimConfig, rng: np.random.Generator, cust: dict[str, np.ndarray],
              ids: np.ndarray) -> pd.DataFrame:
    n, C = cust["aff"].shape
    sims = cfg.channel_sims
    rate = cfg.history_contacts_mean * np.exp(0.5 * rng.standard_normal(n) - 0.125)
    counts = rng.poisson(rate)
    owner = np.repeat(np.arange(n), counts)
    m = len(owner)
    # Past channel choice follows the customer's latent affinity (opted-out channels rarely).
    w = np.exp(cust["aff"][owner]) * np.where(cust["opt"][owner], 0.1, 1.0)
    cum = np.cumsum(w, axis=1)
    ch = (rng.random(m)[:, None] * cum[:, -1:] > cum).sum(axis=1)
    ch = np.minimum(ch, C - 1)
    p_res = np.array([(1 - cfg.p_complex) * c.solve_simple + cfg.p_complex * c.solve_complex for c in sims])
    resolved = rng.random(m) < p_res[ch]
    aff_used = cust["aff"][owner, ch] if m else np.zeros(0)
    sat = np.clip(np.round(2.2 + 1.8 * resolved + 0.4 * aff_used + 0.8 * rng.standard_normal(m)), 1, 5)
    sat[rng.random(m) < cfg.p_satisfaction_missing] = np.nan
    handling = np.array([c.handling_median_s for c in sims])[ch] * np.exp(0.6 * rng.standard_normal(m))
    ts = cfg.epoch_start_s - rng.random(m) * cfg.history_days * 86400.0 - 1.0
    order = np.lexsort((ts, owner))
    names = np.array(cfg.channels.names, dtype=object)
    return pd.DataFrame({
        "customer_id": pd.array(ids[owner[order]].astype(object), dtype="str"),
        "ts": ts[order],
        "channel": pd.array(names[ch[order]], dtype="str"),
        "resolved": resolved[order],
        "satisfaction": sat[order],
        "handling_s": handling[order],
    })


def _session_starts(cfg: SimConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    off = cfg.service_utc_offset_s
    day0_local = math.floor((cfg.epoch_start_s + off) / 86400.0)
    wd = (day0_local + np.arange(cfg.n_days) + 3) % 7
    day_w = np.where(wd >= 5, cfg.weekend_traffic, 1.0)
    if day_w.sum() <= 0:
        day_w = np.ones(cfg.n_days)
    day = _choice(rng, tuple(day_w / day_w.sum()), n)
    hour = _choice(rng, cfg.hourly_traffic, n)
    local_s = (day0_local + day) * 86400.0 + (hour + rng.random(n)) * 3600.0
    span = cfg.n_days * 86400.0
    ts = cfg.epoch_start_s + np.mod(local_s - off - cfg.epoch_start_s, span)
    return np.sort(ts)


class _World:
    """Per-run lookup tables for the per-event loop (plain lists: fastest for scalar access)."""

    def __init__(self, cfg: SimConfig, rng: np.random.Generator) -> None:
        sims, cat = cfg.channel_sims, cfg.channels
        self.C = len(sims)
        self.live = [cat[c.name].live for c in sims]
        self.human_sign = [1.0 if cat[c.name].human else -1.0 for c in sims]
        self.cost = [float(c.cost) for c in sims]
        self.accept_base = [float(c.accept_base) for c in sims]
        self.device_fit = [[float(x) for x in c.device_fit] for c in sims]
        self.work_pen = [float(c.work_hours_desktop) for c in sims]
        self.open_start = [float(c.open_hours[0]) for c in sims]
        self.open_end = [float(c.open_hours[1]) for c in sims]
        self.open_days = [frozenset(c.open_weekdays) for c in sims]
        self.solve_simple = [float(c.solve_simple) for c in sims]
        self.solve_complex = [float(c.solve_complex) for c in sims]
        self.lang_ok = [[1.0 if lang in c.languages else 0.0 for c in sims] for lang in LANGUAGES]
        off = cfg.service_utc_offset_s
        self.day0_local = math.floor((cfg.epoch_start_s + off) / 86400.0)
        n_slots = (cfg.n_days + 2) * 24
        self.n_slots = n_slots
        ht = np.asarray(cfg.hourly_traffic, dtype=float)
        load_h = ht / ht.mean()
        days = self.day0_local + np.arange(cfg.n_days + 2)
        day_load = np.where((days + 3) % 7 >= 5, cfg.weekend_traffic, 1.0)
        load = (day_load[:, None] * load_h[None, :]).ravel()
        load = load / load.mean()
        # Mean wait per (service-local day, hour) slot and channel: queues grow with load.
        self.slot_wait = []
        for c in sims:
            if c.base_wait_s > 0:
                w = (c.base_wait_s * cfg.queue_scale * load ** cfg.queue_load_power
                     * np.exp(cfg.queue_slot_sd * rng.standard_normal(n_slots) - cfg.queue_slot_sd ** 2 / 2))
                self.slot_wait.append(w.tolist())
            else:
                self.slot_wait.append(None)
        self.routes = {}
        for intent in INTENTS:
            self.routes[intent] = {k: _cum(v) for k, v in _ROUTES[intent].items()}
        self.pages = {pt: [pt] for pt in PAGE_TYPES}
        self.pages["product"] = [f"product/{j}" for j in range(1, 501)]
        self.pages["category"] = [f"category/{j}" for j in range(1, 21)]
        self.pages["help"] = [f"help/{j}" for j in range(1, 41)]
        self.pages["checkout"] = [f"checkout/{j}" for j in range(1, 4)]


def simulate(n_sessions: int, seed: int = 0, config: SimConfig | None = None) -> SimResult:
    """Simulate ``n_sessions`` sessions of the world ``config`` (default :class:`SimConfig`).

    Parameters
    ----------
    n_sessions : int
        Number of sessions (>= 0).
    seed : int
        Seed of ``np.random.default_rng``; same seed and config give identical frames.
    config : SimConfig, optional

    Returns
    -------
    SimResult
        ``customers``, ``contacts``, ``events``, ``decisions`` frames and the ``config``.

    Examples
    --------
    >>> res = simulate(100, seed=3)
    >>> res.events["session_id"].nunique()
    100
    >>> bool((res.decisions["propensity"] > 0).all())
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
    rng_c, rng_h, rng_s, rng_w, rng_e = (np.random.default_rng(s)
                                         for s in np.random.SeedSequence(int(seed)).spawn(5))
    C = len(cfg.channels)
    names = cfg.channels.names

    # -- customers and their history ----------------------------------------------------------
    n_cust = max(1, int(round(n * cfg.p_known / cfg.sessions_per_customer))) if n else 0
    cust = _customers(cfg, rng_c, n_cust)
    width = max(6, len(str(max(n_cust, 1))))
    cust_ids = np.array([f"c{j:0{width}d}" for j in range(n_cust)], dtype=object)
    customers = pd.DataFrame({
        "customer_id": pd.array(cust_ids, dtype="str"),
        "age_band": pd.array(np.array(AGE_BANDS, dtype=object)[cust["age"]], dtype="str"),
        "language": pd.array(np.array(LANGUAGES, dtype=object)[cust["lang"]], dtype="str"),
        "device_pref": pd.array(np.array(DEVICES, dtype=object)[cust["dev"]], dtype="str"),
        **{f"affinity_{c}": cust["aff"][:, j] for j, c in enumerate(names)},
        **{f"opt_out_{c}": cust["opt"][:, j] for j, c in enumerate(names)},
    })
    contacts = _contacts(cfg, rng_h, cust, cust_ids)

    # -- sessions, vectorised ---------------------------------------------------------------
    r = rng_s
    start = _session_starts(cfg, r, n)
    known = (r.random(n) < cfg.p_known) & (n_cust > 0)
    cidx = np.where(known, r.integers(0, max(n_cust, 1), n), -1)
    anon_dev = _choice(r, cfg.device_mix, n)
    use_pref = known & (r.random(n) < cfg.p_device_pref)
    dev = np.where(use_pref, cust["dev"][np.maximum(cidx, 0)] if n_cust else anon_dev, anon_dev)
    anon_lang = _choice(r, cfg.language_mix, n)
    lang = np.where(known, cust["lang"][np.maximum(cidx, 0)] if n_cust else anon_lang, anon_lang)
    anon_age = _choice(r, cfg.age_mix, n)
    anon_aff = _affinity(cfg, r, anon_age, dev)
    aff = np.where(known[:, None], cust["aff"][np.maximum(cidx, 0)] if n_cust else anon_aff, anon_aff)
    opt = np.where(known[:, None], cust["opt"][np.maximum(cidx, 0)] if n_cust else False, False)
    referrer = _choice(r, cfg.referrer_mix, n)
    returning = r.random(n) < np.where(known, cfg.p_returning_known, cfg.p_returning_anonymous)
    intent = _choice(r, cfg.intent_mix, n)
    has_problem = r.random(n) < np.asarray(cfg.problem_rate)[intent]
    cx = r.random(n) < cfg.p_complex
    n_pages = r.geometric(1.0 / np.asarray(cfg.mean_pages)[intent])
    onset = np.where(intent == 2, 0, np.floor(r.random(n) * n_pages).astype(int))
    onset = np.where(has_problem, onset, -1)
    distracted = r.random(n) < cfg.p_distracted
    comparer = r.random(n) < cfg.p_comparer
    quiet = r.random(n) < cfg.p_quiet_problem
    utc_off = np.asarray(cfg.language_utc_offset_s, dtype=float)[lang]

    world = _World(cfg, rng_w)
    events, dec = _run_sessions(cfg, world, rng_e, n, start.tolist(), intent.tolist(), onset.tolist(),
                                cx.tolist(), n_pages.tolist(), distracted.tolist(), comparer.tolist(),
                                quiet.tolist(), dev.tolist(), lang.tolist(), aff.tolist(), opt.tolist(),
                                utc_off.tolist())

    swidth = max(6, len(str(max(n - 1, 0))))
    sess_ids = np.array([f"s{i:0{swidth}d}" for i in range(n)], dtype=object)
    cust_of_sess = np.where(known, cust_ids[np.maximum(cidx, 0)] if n_cust else None, None).astype(object)
    events_df = _events_frame(events, sess_ids, cust_of_sess, dev, lang, referrer, returning, utc_off, names)
    decisions_df = _decisions_frame(cfg, world, dec, sess_ids, cust_of_sess, dev, lang, aff, opt)
    logger.debug("simulated %d sessions: %d events, %d decision points", n, len(events_df), len(decisions_df))
    return SimResult(customers=customers, contacts=contacts, events=events_df, decisions=decisions_df,
                     config=cfg)


def _run_sessions(cfg: SimConfig, w: _World, rng: np.random.Generator, n: int, start: list, intent: list,
                  onset: list, cx_l: list, n_pages: list, distracted_l: list, comparer_l: list,
                  quiet_l: list, dev_l: list, lang_l: list, aff_l: list, opt_l: list,
                  utc_l: list) -> tuple[list, list]:
    """The per-session loop: events as tuples ``(sess, ts, type, s1, s2, x)``, decisions as tuples."""
    U = _stream(rng.random)
    N = _stream(rng.standard_normal)
    exp, log = math.exp, math.log
    nan = float("nan")
    C = w.C
    ev: list = []
    add = ev.append
    dec: list = []
    dadd = dec.append
    et = _ET
    PV, SCROLL, IDLE, CLICK, FERR, FSUB = et["page_view"], et["scroll"], et["idle"], et["click"], \
        et["form_error"], et["form_submit"]
    CADD, CREM, SEARCH, EXIT, PURCH, END = et["cart_add"], et["cart_remove"], et["search"], \
        et["exit_intent"], et["purchase"], et["session_end"]
    START, SHOWN, ACC, DIS, CONT = et["session_start"], et["offer_shown"], et["offer_accepted"], \
        et["offer_dismissed"], et["contact_started"]
    names = cfg.channels.names
    pages = w.pages
    routes = [w.routes[i] for i in INTENTS]
    rate = {k: getattr(cfg, k) for k in _RATE_PAIRS}
    idle_r, back_r, rev_r, help_r = rate["idle_rate"], rate["back_rate"], rate["revisit_rate"], rate["help_rate"]
    ferr_r, crem_r, srch_r, szero_r = rate["form_error_rate"], rate["cart_remove_rate"], rate["search_rate"], \
        rate["search_zero_rate"]
    exit_r, up_r = rate["exit_intent_rate"], rate["scroll_up_rate"]
    idle_med = (cfg.idle_median_s, cfg.problem_idle_median_s)
    dwell_med, dwell_sd, pdf = cfg.dwell_median_s, cfg.dwell_sd, cfg.problem_dwell_factor
    p_dec_pv, p_dec_idle, max_dec = cfg.p_decide_page_view, cfg.p_decide_idle, cfg.max_decisions
    svc_off, day0, n_slots = cfg.service_utc_offset_s, w.day0_local, w.n_slots
    live, slot_wait = w.live, w.slot_wait
    o_start, o_end, o_days = w.open_start, w.open_end, w.open_days
    q_sd = cfg.queue_noise_sd
    q_mu = -q_sd * q_sd / 2
    uniform = cfg.logging_policy == "uniform"
    eps = cfg.epsilon
    rule_c = names.index(cfg.rule_channel)
    rule_pages = frozenset(cfg.rule_pages)
    rule_idle = cfg.rule_idle_s
    V, A, Lc = cfg.value_success, cfg.annoyance, cfg.leave_cost
    plu, plc, pla = cfg.p_leave_unresolved, cfg.p_leave_after_contact, cfg.p_leave_annoyed
    ps_simple, ps_complex = cfg.p_self_resolve
    acc_scale, ab_scale = cfg.accept_wait_scale_s, cfg.abandon_wait_scale_s
    nn_logit, cx_logit, oo_logit = cfg.accept_no_need_logit, cfg.complex_human_logit, cfg.opt_out_logit
    mismatch = cfg.lang_mismatch_success
    accept_base, dfit, work_pen, hs = w.accept_base, w.device_fit, w.work_pen, w.human_sign
    solve_s, solve_c, cost = w.solve_simple, w.solve_complex, w.cost
    lang_tab = w.lang_ok
    react_med = cfg.reaction_median_s
    price_med = cfg.price_median
    p_cart_add, p_purchase, p_purchase_help = cfg.p_cart_add, cfg.p_purchase, cfg.p_purchase_after_help
    p_distr_idle, distr_idle_med = cfg.distracted_idle_rate, cfg.distracted_idle_median_s
    cmp_back, cmp_rev = cfg.comparer_back_rate, cfg.comparer_revisit_rate
    extra_mean = cfg.problem_extra_pages
    n_prod = len(pages["product"])

    for i in range(n):
        t = start[i]
        add((i, t, START, None, None, nan))
        route = routes[intent[i]]
        is_buy = intent[i] == 1
        on = onset[i]
        cx = 1.0 if cx_l[i] else 0.0
        quiet = quiet_l[i]
        distracted = distracted_l[i]
        comparer = comparer_l[i]
        d = dev_l[i]
        desktop = d == 0
        aff = aff_l[i]
        opt = opt_l[i]
        lok = lang_tab[lang_l[i]]
        uoff = utc_l[i]
        L = n_pages[i]
        need = 0.0
        hist: list = []
        htypes: list = []
        cart = 0.0
        n_dec = 0
        k = 0
        ended = False
        while k < L:
            # -- navigation: hesitation overrides the route -----------------------------------
            s = 1 if (need and not quiet) else 0
            pb = cmp_back if (comparer and back_r[s] < cmp_back) else back_r[s]
            pr = cmp_rev if (comparer and rev_r[s] < cmp_rev) else rev_r[s]
            u = U()
            nh = len(hist)
            if nh >= 2 and u < pb and hist[-2] != hist[-1]:
                page, pt = hist[-2], htypes[-2]
            elif nh >= 3 and u < pb + pr:
                j = int(U() * (nh - 2))
                page, pt = hist[j], htypes[j]
            elif nh >= 1 and u < pb + pr + help_r[s]:
                pt = "help" if U() < 0.7 else "contact"
                lst = pages[pt]
                page = lst[int(U() * len(lst))]
            else:
                cum, keys = route["start" if nh == 0 else htypes[-1]]
                pt = keys[bisect_right(cum, U())]
                lst = pages[pt]
                page = lst[int(U() * len(lst))]
            hist.append(page)
            htypes.append(pt)
            t += 0.3 + 1.5 * U()
            add((i, t, PV, page, pt, nan))
            idle_page = 0.0
            trig = 0
            # -- a decision point at the page view (before this page's problem arises) --------
            if n_dec < max_dec and U() < p_dec_pv:
                trig = 1
            while True:
                if trig:
                    trig_kind = trig
                    trig = 0
                    n_dec += 1
                    # ---- channel context at t -------------------------------------------------
                    loc = t + svc_off
                    lday = int(loc // 86400.0)
                    hod = (loc - lday * 86400.0) / 3600.0
                    wd = (lday + 3) % 7
                    slot = (lday - day0) * 24 + int(hod)
                    slot = 0 if slot < 0 else (n_slots - 1 if slot >= n_slots else slot)
                    ul = t + uoff
                    uday = int(ul // 86400.0)
                    uh = (ul - uday * 86400.0) / 3600.0
                    work = 1.0 if (desktop and (uday + 3) % 7 < 5 and 9.0 <= uh < 17.0) else 0.0
                    opens = []
                    waits = []
                    allowed = [0]
                    for c in range(C):
                        oc = 1.0 if (wd in o_days[c] and o_start[c] <= hod < o_end[c]) else 0.0
                        opens.append(oc)
                        if oc and live[c] and slot_wait[c] is not None:
                            waits.append(slot_wait[c][slot] * exp(q_sd * N() + q_mu))
                        else:
                            waits.append(0.0)
                        if oc:
                            allowed.append(c + 1)
                    # ---- the logging policy -------------------------------------------------
                    na = len(allowed)
                    u = U()
                    if uniform:
                        a = allowed[int(u * na)]
                        prop = 1.0 / na
                    else:
                        ra = rule_c + 1 if (pt in rule_pages and idle_page >= rule_idle and opens[rule_c]) else 0
                        if u < 1.0 - eps:
                            a = ra
                        else:
                            j = int((u - (1.0 - eps)) / eps * na)
                            a = allowed[j if j < na else na - 1]
                        prop = eps / na + (1.0 - eps if a == ra else 0.0)
                    # ---- the outcome, drawn from the true model -----------------------------
                    p_self = _p_self_core(ps_simple, ps_complex, cx)
                    accepted = dismissed = success = left = False
                    if a == 0:
                        if need:
                            success = U() < p_self
                            left = (not success) and U() < plu
                        reward = V * success - Lc * left
                    else:
                        c = a - 1
                        z = _accept_logit(accept_base[c], aff[c], dfit[c][d], work * work_pen[c], need, cx,
                                          hs[c], 1.0 if opt[c] else 0.0, nn_logit, cx_logit, oo_logit)
                        pa = _p_accept_core(z, opens[c], waits[c], acc_scale, exp)
                        accepted = U() < pa
                        dismissed = not accepted
                        if accepted:
                            if need:
                                ps = _p_success_core(solve_s[c], solve_c[c], cx, lok[c], mismatch, waits[c],
                                                     ab_scale, exp)
                                success = U() < ps
                                left = (not success) and U() < plc
                        elif need:
                            success = U() < p_self
                            left = (not success) and U() < plu
                        else:
                            left = U() < pla
                        reward = V * success - cost[c] * accepted - A * dismissed - Lc * left
                    dadd((i, t, trig_kind, need, cx, work, opens, waits, a, prop, accepted, dismissed,
                          success, left, reward))
                    # ---- follow-up events ---------------------------------------------------
                    if a:
                        ch = names[a - 1]
                        t2 = t + 0.5
                        add((i, t2, SHOWN, ch, None, nan))
                        t2 += react_med * exp(0.5 * N())
                        if accepted:
                            add((i, t2, ACC, ch, None, nan))
                            t2 += 1.0 + (waits[a - 1] * exp(0.3 * N()) if live[a - 1] else 0.0)
                            add((i, t2, CONT, ch, None, nan))
                            if success and cart > 0 and U() < p_purchase_help:
                                t2 += 300.0 * exp(0.5 * N())
                                add((i, t2, PURCH, None, None, cart))
                            add((i, t2 + 1.0, END, None, None, nan))
                            ended = True
                            break
                        add((i, t2, DIS, ch, None, nan))
                        t = t2
                    if left:
                        t += 1.0 + 3.0 * U()
                        if U() < 0.6:
                            add((i, t, EXIT, None, None, nan))
                        add((i, t + 0.5, END, None, None, nan))
                        ended = True
                        break
                    if success:
                        need = 0.0  # solved: the hesitation stops
                        on = -2
                    if trig_kind == 2:
                        break  # after an idle: continue the page below
                    # fall through to the page content after a page-view decision
                if k == on:
                    # The problem arises on this page, after its page view.
                    need = 1.0
                    L += int(-log(1.0 - U()) * extra_mean + 0.5) if extra_mean > 0 else 0
                s = 1 if (need and not quiet) else 0
                dwell = dwell_med * exp(dwell_sd * N()) * (pdf if s else 1.0)
                step = dwell * 0.25
                # -- page content ----------------------------------------------------------------
                depth = 0.0
                for _ in range(int(U() * 3.0)):
                    t += step * (0.2 + U())
                    depth = min(1.0, depth + 0.1 + 0.4 * U())
                    add((i, t, SCROLL, None, "up" if U() < up_r[s] else "down", depth))
                if U() < 0.7:
                    t += step * (0.2 + U())
                    add((i, t, CLICK, None, None, nan))
                if pt == "search" or U() < srch_r[s]:
                    t += step * (0.2 + U())
                    nres = 0.0 if U() < szero_r[s] else float(1 + int(U() * 60))
                    add((i, t, SEARCH, None, None, nres))
                if pt == "product" and is_buy and U() < p_cart_add:
                    t += step * (0.2 + U())
                    val = round(price_med * exp(0.6 * N()), 2)
                    cart += val
                    add((i, t, CADD, None, None, val))
                elif pt == "cart" and cart > 0 and U() < crem_r[s]:
                    t += step * (0.2 + U())
                    val = round(cart * (0.2 + 0.6 * U()), 2)
                    cart -= val
                    add((i, t, CREM, None, None, val))
                if pt in _FORM_PAGES:
                    if U() < ferr_r[s]:
                        for _ in range(1 + int(U() * 2.0)):
                            t += step * (0.2 + U())
                            add((i, t, FERR, _FORM_FIELDS[int(U() * 6.0)], None, nan))
                    if U() < 0.6:
                        t += step * (0.2 + U())
                        add((i, t, FSUB, None, None, nan))
                pi = p_distr_idle if (distracted and idle_r[s] < p_distr_idle) else idle_r[s]
                if U() < pi:
                    med = distr_idle_med if (distracted and not s) else idle_med[s]
                    dur = round(med * exp(0.6 * N()), 1)
                    t += dur
                    idle_page += dur
                    add((i, t, IDLE, None, None, dur))
                    if n_dec < max_dec and U() < p_dec_idle:
                        trig = 2
                        continue  # decide now, then finish the page
                break
            if ended:
                break
            if U() < exit_r[1 if (need and not quiet) else 0]:
                t += step * (0.2 + U())
                add((i, t, EXIT, None, None, nan))
            t += step * (0.2 + U())
            if pt == "checkout" and is_buy and not need and U() < p_purchase:
                val = cart if cart > 0 else round(price_med * exp(0.6 * N()), 2)
                add((i, t, PURCH, None, None, val))
                ended = True
                break
            k += 1
        if not ended or ev[-1][2] != END:
            add((i, t + 1.0 + 2.0 * U(), END, None, None, nan))
    return ev, dec


def _events_frame(ev: list, sess_ids: np.ndarray, cust_of_sess: np.ndarray, dev: np.ndarray,
                  lang: np.ndarray, referrer: np.ndarray, returning: np.ndarray, utc_off: np.ndarray,
                  names: tuple[str, ...]) -> pd.DataFrame:
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


def _decisions_frame(cfg: SimConfig, w: _World, dec: list, sess_ids: np.ndarray, cust_of_sess: np.ndarray,
                     dev: np.ndarray, lang: np.ndarray, aff: np.ndarray, opt: np.ndarray) -> pd.DataFrame:
    names = cfg.channels.names
    C = len(names)
    D = len(dec)
    if D:
        (sess_t, ts_t, trig_t, need_t, cx_t, work_t, opens_t, waits_t, a_t, prop_t, acc_t, dis_t,
         succ_t, left_t, rew_t) = zip(*dec)
    else:
        sess_t = ts_t = trig_t = need_t = cx_t = work_t = a_t = prop_t = acc_t = dis_t = succ_t = left_t \
            = rew_t = ()
        opens_t = waits_t = ()
    sess = np.fromiter(sess_t, dtype=np.int64, count=D)
    need = np.fromiter(need_t, dtype=float, count=D)
    cx = np.fromiter(cx_t, dtype=float, count=D)
    work = np.fromiter(work_t, dtype=float, count=D)
    opens = np.array(opens_t, dtype=float).reshape(D, C)
    waits = np.array(waits_t, dtype=float).reshape(D, C)
    a = np.fromiter(a_t, dtype=np.int64, count=D)
    lang_ok = np.array(w.lang_ok, dtype=float)[lang[sess]].reshape(D, C)
    problem_code = (need > 0) * (1 + cx).astype(np.int64)
    d_dev = dev[sess]
    d_aff = aff[sess].reshape(D, C)
    d_opt = opt[sess].reshape(D, C).astype(float)
    # The oracle: exact expected reward of every action, from the same formulas the draws used.
    p_self = _p_self_core(cfg.p_self_resolve[0], cfg.p_self_resolve[1], cx)
    ev = {NONE_ACTION: _ev_none_core(need, p_self, cfg)}
    desk = (d_dev == 0).astype(float)
    for j, ch in enumerate(names):
        fit = np.asarray(w.device_fit[j])[d_dev]
        z = _accept_logit(w.accept_base[j], d_aff[:, j], fit, work * desk * w.work_pen[j], need, cx,
                          w.human_sign[j], d_opt[:, j], cfg.accept_no_need_logit, cfg.complex_human_logit,
                          cfg.opt_out_logit)
        pa = _p_accept_core(z, opens[:, j], waits[:, j], cfg.accept_wait_scale_s, np.exp)
        ps = need * _p_success_core(w.solve_simple[j], w.solve_complex[j], cx, lang_ok[:, j],
                                    cfg.lang_mismatch_success, waits[:, j], cfg.abandon_wait_scale_s, np.exp)
        ev[ch] = _ev_offer_core(need, pa, ps, p_self, w.cost[j], cfg)
    actions = np.array(cfg.channels.actions, dtype=object)
    cols: dict[str, Any] = {
        "session_id": pd.array(sess_ids[sess], dtype="str"),
        "ts": np.fromiter(ts_t, dtype=float, count=D),
        "trigger": pd.array(np.array(["", "page_view", "idle"], dtype=object)[
            np.fromiter(trig_t, dtype=np.int64, count=D)], dtype="str"),
        "customer_id": pd.array(cust_of_sess[sess], dtype="str"),
    }
    for j, ch in enumerate(names):
        cols[f"open_{ch}"] = opens[:, j] > 0
    for j, ch in enumerate(names):
        cols[f"wait_{ch}_s"] = waits[:, j]
    for j, ch in enumerate(names):
        cols[f"lang_ok_{ch}"] = lang_ok[:, j] > 0
    cols.update({
        "action": pd.array(actions[a], dtype="str"),
        "propensity": np.fromiter(prop_t, dtype=float, count=D),
        "accepted": np.fromiter(acc_t, dtype=bool, count=D),
        "dismissed": np.fromiter(dis_t, dtype=bool, count=D),
        "success": np.fromiter(succ_t, dtype=bool, count=D),
        "left": np.fromiter(left_t, dtype=bool, count=D),
        "reward": np.fromiter(rew_t, dtype=float, count=D),
        "needs_help": need > 0,
        "problem": pd.array(np.array(PROBLEMS, dtype=object)[problem_code], dtype="str"),
    })
    for act in cfg.channels.actions:
        cols[f"ev_{act}"] = np.asarray(ev[act], dtype=float) * np.ones(D)
    return pd.DataFrame(cols)


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------
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
