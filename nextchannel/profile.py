"""Customer profile: a known customer's past channel use, as features and consent facts.

In the flow (events → state → features → models → policy → decision) a profile sits beside the
session features: it describes the *customer* behind a session, from the contact history the
business holds. The offer and channel models read its numbers; the policy reads its opt-outs.

Two executors compute the same profile (floats equal within 1e-9, proved by property tests):

* online, :func:`profile_one` / :func:`profile_into`, from the dict a backend holds at request
  time (``{"customer_id": ..., "contacts": [...], "opt_out": [...]}``); lenient by default, as
  it runs on the web path: a malformed contact is skipped, counted and logged at debug level;
* batch, :func:`profiles_many`, from a contact log as of the time of each row of ``at``,
  vectorised with numpy (no Python loop over rows); strict: a bad log raises
  :class:`~nextchannel.errors.ValidationError` (see :func:`validate_contacts`).

Definitions (``now`` is the time the profile is taken; only contacts with ``ts <= now``
count):

* ``prof_known``: 1 if the customer id is present (not None/NaN/empty), else 0;
* ``prof_n_contacts``: number of contacts; ``prof_n_<ch>``: on channel ``ch``;
* ``prof_days_since_last``: ``(now - ts_last) / 86400``, NaN with no contact;
* ``prof_last_channel``: index in the catalogue of the channel of the last contact, -1 with no
  contact. The last contact is the one with the greatest ``ts``; among equal ``ts`` the later in
  log order (row order of the contact log, list order of ``contacts`` in the dict);
* ``prof_share_<ch>``: recency-weighted share of contacts on ``ch``: weights
  ``0.5 ** ((now - ts) / (half_life_days * 86400))``, share = weight on ``ch`` / total weight,
  0 with no contact. Shares are scale-free, so weights are computed relative to the last contact
  (``ts_last`` in place of ``now``): the same shares, but no underflow to 0/0 when every
  contact is many half-lives old;
* ``prof_resolved_<ch>``: share of contacts on ``ch`` marked resolved, NaN with none on ``ch``;
* ``prof_sat_<ch>``: mean satisfaction (1..5) over surveyed contacts on ``ch``, NaN if none;
* ``prof_optout_<ch>``: 1 if the customer opted out of ``ch``, else 0.

Examples
--------
>>> from nextchannel.profile import profile_one
>>> day = 86400.0
>>> cust = {"customer_id": "c1", "opt_out": ["phone"], "contacts": [
...     {"ts": 0.0, "channel": "chat", "resolved": True, "satisfaction": 4.0, "handling_s": 300.0}]}
>>> p = profile_one(cust, now=10 * day)
>>> p["prof_n_chat"], p["prof_share_chat"], p["prof_days_since_last"], p["prof_optout_phone"]
(1.0, 1.0, 10.0, 1.0)
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Mapping  # not typing.Mapping: isinstance on it is slow
from typing import TYPE_CHECKING, Any, MutableSequence

import numpy as np

from nextchannel.compat import is_pandas_na, lazy_module
from nextchannel.errors import ConfigError, ValidationError, excerpt
from nextchannel.conventions import accepts_old_form
from nextchannel.schema import DEFAULT_LIMITS, ChannelCatalogue, Limits

if TYPE_CHECKING:
    import pandas as pd
else:  # imported when a batch path first uses it: the per-request path never does
    pd = lazy_module("pandas")

__all__ = [
    "CONTACT_COLUMNS",
    "ProfileConfig",
    "profile_feature_names",
    "profile_one",
    "profile_into",
    "PreparedProfile",
    "prepare_one",
    "profiles_many",
    "validate_contacts",
    "history_of",
]

logger = logging.getLogger(__name__)

#: Columns a contact log must have (other columns are ignored).
CONTACT_COLUMNS: tuple[str, ...] = ("customer_id", "ts", "channel", "resolved", "satisfaction",
                                    "handling_s")
_DAY_S = 86400.0
_NAN = float("nan")
_GLOBAL_FEATURES = ("prof_known", "prof_n_contacts", "prof_days_since_last", "prof_last_channel")
_PER_CHANNEL = ("n", "share", "resolved", "sat", "optout")
# Upper bound on (at-row, contact) pairs held in memory at once by profiles_many.
_PAIR_CHUNK = 2_000_000


@lru_cache(maxsize=64)
def _names_for(channels: ChannelCatalogue) -> tuple[str, ...]:
    per = tuple(f"prof_{stat}_{ch}" for stat in _PER_CHANNEL for ch in channels.names)
    return _GLOBAL_FEATURES + per


def profile_feature_names(channels: ChannelCatalogue | None = None) -> tuple[str, ...]:
    """Names of the profile features, in their fixed order.

    The order is the four global features (``prof_known``, ``prof_n_contacts``,
    ``prof_days_since_last``, ``prof_last_channel``), then, statistic by statistic, one
    feature per channel in catalogue order: ``prof_n_<ch>``, ``prof_share_<ch>``,
    ``prof_resolved_<ch>``, ``prof_sat_<ch>``, ``prof_optout_<ch>``.

    Parameters
    ----------
    channels : ChannelCatalogue, optional
        Channel catalogue (default: ``ChannelCatalogue.default()``).

    Returns
    -------
    tuple of str
        ``4 + 5 * len(channels)`` names.

    Examples
    --------
    >>> names = profile_feature_names()
    >>> len(names), names[:5]
    (34, ('prof_known', 'prof_n_contacts', 'prof_days_since_last', 'prof_last_channel', 'prof_n_chat'))
    """
    if channels is None:
        channels = _DEFAULT_CHANNELS
    if not isinstance(channels, ChannelCatalogue):
        raise ValidationError(f"channels must be a ChannelCatalogue or None, got {type(channels).__name__}")
    return _names_for(channels)


class _Layout:
    """Precomputed positions and lookups for one config (kept on the config, built once)."""

    __slots__ = ("names", "channels", "n_ch", "channel_names", "index", "hl_s", "i_n", "i_share", "i_res",
                 "i_sat", "i_opt", "n_features", "optout_keys")

    def __init__(self, channels: ChannelCatalogue, half_life_days: float) -> None:
        self.names = _names_for(channels)
        self.channels = channels
        self.channel_names = channels.names
        self.n_ch = n = len(channels)
        self.index = {name: k for k, name in enumerate(channels.names)}
        self.hl_s = float(half_life_days) * _DAY_S
        base = len(_GLOBAL_FEATURES)
        self.i_n, self.i_share, self.i_res, self.i_sat, self.i_opt = (base + j * n for j in range(5))
        self.n_features = base + 5 * n
        self.optout_keys = tuple(f"opt_out_{ch}" for ch in channels.names)


@dataclass(frozen=True)
class ProfileConfig:
    """How profiles are computed: the recency half-life and the channel catalogue.

    Parameters
    ----------
    half_life_days : float, default 90.0
        Half-life of the recency weights of ``prof_share_<ch>``, in days (finite, > 0).
    channels : ChannelCatalogue, default ``ChannelCatalogue.default()``
        Channels, in the order of the per-channel features and of ``prof_last_channel``.

    Examples
    --------
    >>> cfg = ProfileConfig(half_life_days=30.0)
    >>> ProfileConfig.from_json(cfg.to_json()) == cfg
    True
    >>> ProfileConfig(half_life_days=0)
    Traceback (most recent call last):
    ...
    nextchannel.errors.ConfigError: half_life_days must be a finite number > 0, got 0
    """

    half_life_days: float = 90.0
    channels: ChannelCatalogue = field(default_factory=ChannelCatalogue.default)

    def __post_init__(self) -> None:
        hl = self.half_life_days
        if isinstance(hl, bool) or not isinstance(hl, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(hl)) or float(hl) <= 0:
            raise ConfigError(f"half_life_days must be a finite number > 0, got {hl!r}")
        object.__setattr__(self, "half_life_days", float(hl))
        if isinstance(self.channels, Mapping):
            object.__setattr__(self, "channels", ChannelCatalogue.from_dict(self.channels))
        if not isinstance(self.channels, ChannelCatalogue):
            raise ConfigError(f"channels must be a ChannelCatalogue, got {type(self.channels).__name__}")
        names = _names_for(self.channels)
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ConfigError(f"profile feature names must be unique, got duplicates {dupes} "
                              f"(rename the channel that clashes with a global feature)")
        # Not a dataclass field: excluded from eq/hash/repr and from to_dict.
        object.__setattr__(self, "_layout", _Layout(self.channels, self.half_life_days))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The profile feature names for this config (see :func:`profile_feature_names`)."""
        return self._layout.names  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``ProfileConfig.from_dict(c.to_dict()) == c``."""
        return {"half_life_days": self.half_life_days, "channels": self.channels.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProfileConfig":
        if not isinstance(d, Mapping):
            raise ConfigError(f"profile config must be a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - {"half_life_days", "channels"})
        if unknown:
            raise ConfigError("profile config keys must be in ['channels', 'half_life_days'], "
                              f"got unknown {unknown}")
        kwargs: dict[str, Any] = {}
        if "half_life_days" in d:
            kwargs["half_life_days"] = d["half_life_days"]
        if "channels" in d:
            try:
                kwargs["channels"] = ChannelCatalogue.from_dict(d["channels"])
            except (KeyError, TypeError) as err:
                raise ConfigError("channels must be a catalogue dict like "
                                  "{'channels': [{'name': 'chat'}]}, "
                                  f"got {d['channels']!r}") from err
        return cls(**kwargs)

    @classmethod
    def from_json(cls, s: str) -> "ProfileConfig":
        try:
            d = json.loads(s)
        except json.JSONDecodeError as err:
            raise ConfigError(f"profile config must be valid JSON, got {s[:60]!r}: {err}") from err
        return cls.from_dict(d)


_DEFAULT_CHANNELS = ChannelCatalogue.default()
_DEFAULT_CONFIG = ProfileConfig()


def _resolve_config(config: ProfileConfig | None) -> ProfileConfig:
    if config is None:
        return _DEFAULT_CONFIG
    if type(config) is not ProfileConfig and not isinstance(config, ProfileConfig):
        raise ConfigError(f"config must be a ProfileConfig or None, got {type(config).__name__}")
    return config


# ---------------------------------------------------------------------------------------------
# Online
# ---------------------------------------------------------------------------------------------
class _Bad(Exception):
    """A malformed item of a request-time customer dict (internal; becomes ValidationError)."""

    def __init__(self, where: str, expected: str, got: Any) -> None:
        super().__init__(f"{where} must be {expected}, got {excerpt(got)}")


def _is_missing(v: Any) -> bool:
    if isinstance(v, (float, np.floating)):
        return bool(v != v)
    return v is None or is_pandas_na(v)


def _is_number(v: Any) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))


def _read_contact(c: Any, i: int, lay: _Layout) -> tuple[float, int, float, float]:
    """``(ts, channel index, resolved 0/1, satisfaction or NaN)`` of one contact dict, or _Bad.

    Each field has a fast path for the usual Python types (this runs per request) before the
    general check.
    """
    if type(c) is not dict and not isinstance(c, Mapping):
        raise _Bad(f"contacts[{i}]", "a mapping (dict)", c)
    ts = c.get("ts")
    if type(ts) is not float or ts - ts != 0.0:  # ts - ts is NaN for inf and NaN
        try:
            ts_f = float(ts) if _is_number(ts) else math.nan
        except OverflowError:  # an int beyond float range
            ts_f = math.nan
        if ts_f - ts_f != 0.0:
            raise _Bad(f"contacts[{i}].ts", "a finite number", ts)
        ts = ts_f
    ch = c.get("channel")
    k = lay.index.get(ch) if type(ch) is str else None
    if k is None:
        raise _Bad(f"contacts[{i}].channel", f"one of {list(lay.channel_names)}", ch)
    r = c.get("resolved")
    if r is True:
        res = 1.0
    elif r is False:
        res = 0.0
    elif isinstance(r, np.bool_) or (_is_number(r) and (r == 0 or r == 1)):
        res = 1.0 if r else 0.0
    else:
        raise _Bad(f"contacts[{i}].resolved", "a bool", r)
    s = c.get("satisfaction")
    if s is None or is_pandas_na(s):
        sat = _NAN
    elif (type(s) is float or _is_number(s)) and (s != s or 1.0 <= s <= 5.0):
        sat = float(s)
    else:
        raise _Bad(f"contacts[{i}].satisfaction", "a number in [1, 5] or None/NaN (not surveyed)", s)
    h = c.get("handling_s")
    if not (h is None or ((type(h) is float or _is_number(h)) and (h != h or 0.0 <= h < math.inf))
            or is_pandas_na(h)):
        raise _Bad(f"contacts[{i}].handling_s", "a finite number >= 0 or None/NaN (not recorded)", h)
    return ts, k, res, sat


def _read_flag(v: Any, where: str) -> float:
    """0/1 of an opt-out flag; None/NaN mean False. _Bad on anything else."""
    if v is True or isinstance(v, np.bool_) and v:
        return 1.0
    if v is False or _is_missing(v) or isinstance(v, np.bool_):
        return 0.0
    if _is_number(v) and (v == 0 or v == 1):
        return float(v)
    raise _Bad(where, "a bool", v)


def _write_anonymous(out: MutableSequence[float], off: int, lay: _Layout, known: float) -> None:
    out[off] = known
    out[off + 1] = 0.0
    out[off + 2] = _NAN
    out[off + 3] = -1.0
    for k in range(lay.n_ch):
        out[off + lay.i_n + k] = 0.0
        out[off + lay.i_share + k] = 0.0
        out[off + lay.i_res + k] = _NAN
        out[off + lay.i_sat + k] = _NAN
        out[off + lay.i_opt + k] = 0.0


def _profile_core(customer: Any, now: float, lay: _Layout, strict: bool,
                  out: MutableSequence[float], off: int, max_contacts: int = DEFAULT_LIMITS.max_contacts,
                  last: list[float] | None = None) -> int:
    """Write one profile into ``out[off:off + n_features]``; return the number of skipped items.

    The one online core behind :func:`profile_one` and :func:`profile_into`. ``out`` is a list
    or a float64 array; it is written element by element (no temporary array).
    """
    if customer is None:
        _write_anonymous(out, off, lay, 0.0)
        return 0
    if type(customer) is PreparedProfile:
        return customer._write(now, lay, strict, out, off, max_contacts)
    if type(customer) is not dict and not isinstance(customer, Mapping):
        if strict:
            raise ValidationError(f"customer must be a mapping (dict) or None, got {type(customer).__name__}")
        logger.debug("profile: customer is a %s, not a dict; using the anonymous profile",
                     type(customer).__name__)
        _write_anonymous(out, off, lay, 0.0)
        return 1
    cid = customer.get("customer_id")
    known = 0.0 if (_is_missing(cid) or (isinstance(cid, str) and cid == "")) else 1.0
    skipped = 0
    first_bad = ""
    contacts = customer.get("contacts")
    if contacts is None:
        contacts = ()
    elif type(contacts) is not list and not isinstance(contacts, tuple):
        if strict:
            raise ValidationError(f"contacts must be a list of contact dicts, got {type(contacts).__name__}")
        first_bad = f"contacts must be a list of contact dicts, got {type(contacts).__name__}"
        skipped += 1
        contacts = ()
    if len(contacts) > max_contacts:
        if strict:
            raise ValidationError(f"contacts must hold at most limits.max_contacts={max_contacts} contacts, "
                                  f"got {len(contacts)}")
        # the list is in time order: keep the most recent ones, count the rest as skipped
        skipped += len(contacts) - max_contacts
        first_bad = first_bad or f"{len(contacts) - max_contacts} contacts beyond limits.max_contacts={max_contacts}"
        contacts = contacts[-max_contacts:]

    n_ch = lay.n_ch
    n = [0.0] * n_ch
    res = [0.0] * n_ch
    sat_sum = [0.0] * n_ch
    sat_n = [0.0] * n_ch
    kept: list[tuple[float, int]] = []
    t_last = -math.inf
    k_last = -1
    for i, c in enumerate(contacts):
        try:
            ts, k, r, s = _read_contact(c, i, lay)
        except Exception as err:  # _Bad, or a user object's own exception: the contact is unreadable
            msg = str(err) if isinstance(err, _Bad) else f"contacts[{i}] could not be read ({type(err).__name__})"
            if strict:
                raise ValidationError(msg) from None
            skipped += 1
            if not first_bad:
                first_bad = msg
            continue
        if ts > now:
            continue
        n[k] += 1.0
        res[k] += r
        if s == s:
            sat_sum[k] += s
            sat_n[k] += 1.0
        if ts >= t_last:  # ">=": among equal ts the later in list order is the last
            t_last = ts
            k_last = k
        kept.append((ts, k))

    opt = [0.0] * n_ch
    opt_list = customer.get("opt_out")
    if opt_list is not None:
        if isinstance(opt_list, str):
            if strict:
                raise ValidationError(f"opt_out must be a list of channel names, got {excerpt(opt_list)}")
            opt_list = (opt_list,)
        if not isinstance(opt_list, (list, tuple, set, frozenset)):
            if strict:
                raise ValidationError(f"opt_out must be a list of channel names, got {excerpt(opt_list)}")
            skipped += 1
            first_bad = first_bad or f"opt_out must be a list of channel names, got {excerpt(opt_list)}"
            opt_list = ()
        for ch in opt_list:
            k = lay.index.get(ch) if isinstance(ch, str) else None
            if k is None:
                if strict:
                    raise ValidationError(
                        f"opt_out entries must be one of {list(lay.channel_names)}, got {excerpt(ch)}")
                skipped += 1
                first_bad = first_bad or f"opt_out entry {excerpt(ch)} is not a channel"
                continue
            opt[k] = 1.0
    for k, key in enumerate(lay.optout_keys):
        v = customer.get(key)
        if v is None:
            continue
        try:
            flag = _read_flag(v, key)
        except Exception as err:  # _Bad, or a user object's own exception
            if strict:
                raise ValidationError(str(err) if isinstance(err, _Bad) else f"{key} must be a bool, got "
                                      f"{excerpt(v)}") from None
            # Consent: a flag we cannot read is taken as an opt-out (never contact on doubt).
            skipped += 1
            first_bad = first_bad or str(err)
            flag = 1.0
        if flag:
            opt[k] = 1.0

    n_total = len(kept)
    out[off] = known
    out[off + 1] = float(n_total)
    if n_total:
        out[off + 2] = (now - t_last) / _DAY_S
        out[off + 3] = float(k_last)
        w = [0.0] * n_ch
        hl_s = lay.hl_s
        for ts, k in kept:
            w[k] += 0.5 ** ((t_last - ts) / hl_s)
        total_w = 0.0
        for k in range(n_ch):
            total_w += w[k]
    else:
        out[off + 2] = _NAN
        out[off + 3] = -1.0
    i_n, i_share, i_res, i_sat, i_opt = off + lay.i_n, off + lay.i_share, off + lay.i_res, \
        off + lay.i_sat, off + lay.i_opt
    for k in range(n_ch):
        nk = n[k]
        out[i_n + k] = nk
        if nk:
            out[i_share + k] = w[k] / total_w
            out[i_res + k] = res[k] / nk
            out[i_sat + k] = sat_sum[k] / sat_n[k] if sat_n[k] else _NAN
        else:
            out[i_share + k] = 0.0
            out[i_res + k] = _NAN
            out[i_sat + k] = _NAN
        out[i_opt + k] = opt[k]
    if skipped:
        # never the customer id (a personal identifier) in a log record
        logger.debug("profile: skipped %d malformed item(s) of a customer dict, first: %s", skipped, first_bad)
    if last is not None:
        last.append(t_last)  # the last contact's time (-inf without one), for PreparedProfile
    return skipped


class PreparedProfile:
    """A customer's profile computed once (say when a session starts), for every request of the session.

    Made by :func:`prepare_one`; pass it wherever a customer dict goes (:func:`profile_one`,
    :func:`profile_into`, ``Scorer.decide_one``): the answer is the same as for the dict, bit for
    bit, but a request only writes the stored values and the days since the last contact. When a
    contact happens, :meth:`with_contact` gives the updated profile. Immutable, so one may be shared
    by threads.

    The stored values hold when the request's ``now`` is at or after the last contact and the
    profile is read with the configuration, limits and strictness it was prepared with; otherwise
    (an earlier ``now`` excludes contacts) the profile is computed from the dict as usual.

    Attributes
    ----------
    customer : dict or None
        The customer dict it was prepared from.
    skipped : int
        Malformed items skipped when preparing (see :func:`profile_one`).

    Examples
    --------
    >>> cust = {"customer_id": "c1", "contacts": [{"ts": 0.0, "channel": "chat", "resolved": True}]}
    >>> prepared = prepare_one(cust)
    >>> profile_one(prepared, now=86400.0) == profile_one(cust, now=86400.0)
    True
    >>> later = prepared.with_contact({"ts": 100.0, "channel": "email", "resolved": False})
    >>> profile_one(later, now=86400.0)["prof_n_contacts"]
    2.0
    """

    __slots__ = ("customer", "skipped", "_lay", "_config", "_strict", "_max_contacts", "_values", "_t_last",
                 "_n_contacts")

    def __init__(self, customer: Mapping[str, Any] | None, config: ProfileConfig | None = None, *,
                 strict: bool = False, limits: Limits | None = None) -> None:
        cfg = _resolve_config(config)
        lay: _Layout = cfg._layout  # type: ignore[attr-defined]
        if type(customer) is PreparedProfile:
            customer = customer.customer
        self.customer = customer
        self._lay, self._config, self._strict = lay, cfg, bool(strict)
        self._max_contacts = _max_contacts(limits)
        values = [_NAN] * lay.n_features
        last: list[float] = []
        # now = +inf keeps every readable contact; of the values only the days since the last contact
        # depend on now (shares are weighted relative to the last contact), written per request
        self.skipped = _profile_core(customer, math.inf, lay, strict, values, 0, self._max_contacts, last)
        self._n_contacts = values[1]
        self._t_last = last[0] if last else -math.inf
        self._values = values

    def with_contact(self, contact: Mapping[str, Any]) -> "PreparedProfile":
        """The profile after one more contact (appended to the customer's list, as a backend records it)."""
        base = dict(self.customer) if isinstance(self.customer, Mapping) else {}
        contacts = base.get("contacts")
        base["contacts"] = [*(contacts if isinstance(contacts, (list, tuple)) else ()), contact]
        return PreparedProfile(base, self._config, strict=self._strict,
                               limits=Limits(max_contacts=self._max_contacts))

    def _write(self, now: float, lay: _Layout, strict: bool, out: MutableSequence[float], off: int,
               max_contacts: int) -> int:
        if lay is not self._lay or max_contacts != self._max_contacts or strict != self._strict \
                or now < self._t_last:
            return _profile_core(self.customer, now, lay, strict, out, off, max_contacts)
        out[off:off + lay.n_features] = self._values
        if self._n_contacts:
            out[off + 2] = (now - self._t_last) / _DAY_S
        return self.skipped


def prepare_one(customer: Mapping[str, Any] | None, config: ProfileConfig | None = None, *, strict: bool = False,
                limits: Limits | None = None) -> PreparedProfile:
    """Prepare a customer's profile once per session: a :class:`PreparedProfile` to pass instead of the dict.

    Parameters are those of :func:`profile_one` (without ``now``); ``Scorer.prepare_customer`` passes
    the scorer's own.

    Examples
    --------
    >>> p = prepare_one({"customer_id": "c1", "opt_out": ["phone"]})
    >>> profile_one(p, now=0.0)["prof_optout_phone"], p.skipped
    (1.0, 0)
    """
    return PreparedProfile(customer, config, strict=strict, limits=limits)


def _check_now(now: Any) -> float:
    # now comes from the server's clock, not from the visitor: a bad one is a bug, so raise.
    if type(now) is float and now - now == 0.0:
        return now
    if not _is_number(now) or not math.isfinite(now):
        raise ValidationError(f"now must be a finite number (epoch seconds), got {now!r}")
    return float(now)


@accepts_old_form(old=("customer", "as_of", "config"), renamed={"as_of": "now"})
def profile_one(customer: Mapping[str, Any] | None, now: float, config: ProfileConfig | None = None,
                *, strict: bool = False, limits: Limits | None = None) -> dict[str, float]:
    """Profile of one customer at request time, from the dict the backend holds.

    Parameters
    ----------
    customer : mapping or None
        ``{"customer_id": str, "contacts": [contact, ...], "opt_out": [channel, ...]}``; opt-outs
        may also come as boolean keys ``opt_out_<ch>``. A contact is a dict with ``ts`` (finite
        epoch seconds), ``channel`` (a channel of the catalogue), ``resolved`` (bool), and
        optionally ``satisfaction`` (1..5; None/NaN = not surveyed) and ``handling_s`` (>= 0).
        Contacts may come in any order; among equal ``ts`` list order decides the last one.
        None or ``{}`` gives the anonymous profile (``prof_known`` 0, no contacts).
    now : float
        Time of the profile (epoch seconds); only contacts with ``ts <= now`` count. A
        non-finite ``now`` raises :class:`ValidationError` in both modes. (Called ``as_of``
        before 0.2.)
    config : ProfileConfig, optional
        Half-life and channels (default ``ProfileConfig()``).
    strict : bool, default False
        If False (the web path), a malformed contact, opt-out entry or flag is skipped, counted
        and logged at debug level (an unreadable ``opt_out_<ch>`` flag counts as an opt-out;
        the log record never names the customer). If True, it raises :class:`ValidationError`
        naming the field, expected and received.
    limits : Limits, optional
        ``limits.max_contacts`` (default 1,000) bounds the contacts read: beyond it the last ones
        of the list (the most recent, the list being in time order) are read and the rest are
        skipped and counted; strict mode raises.

    Returns
    -------
    dict of str to float
        One value per name of :func:`profile_feature_names`, in that order.

    Examples
    --------
    >>> p = profile_one(None, now=0.0)
    >>> p["prof_known"], p["prof_n_contacts"], p["prof_last_channel"]
    (0.0, 0.0, -1.0)
    >>> bad = {"customer_id": "c1", "contacts": [{"ts": 1.0, "channel": "fax", "resolved": True}]}
    >>> profile_one(bad, now=5.0)["prof_n_contacts"]
    0.0
    >>> profile_one(bad, now=5.0, strict=True)
    Traceback (most recent call last):
    ...
    nextchannel.errors.ValidationError: contacts[0].channel must be one of ['chat', ...], got 'fax'
    """
    lay: _Layout = _resolve_config(config)._layout  # type: ignore[attr-defined]
    out = [_NAN] * lay.n_features
    _profile_core(customer, _check_now(now), lay, strict, out, 0, _max_contacts(limits))
    return dict(zip(lay.names, out))


def _max_contacts(limits: Limits | None) -> int:
    if limits is None:
        return DEFAULT_LIMITS.max_contacts
    if not isinstance(limits, Limits):
        raise ValidationError(f"limits must be a Limits or None, got {type(limits).__name__}")
    return limits.max_contacts


def profile_into(buf: np.ndarray, offset: int, customer: Mapping[str, Any] | None, now: float,
                 config: ProfileConfig | None = None, *, strict: bool = False, limits: Limits | None = None) -> int:
    """Write the profile of :func:`profile_one` into a preallocated buffer (the scorer's path).

    Parameters
    ----------
    buf : numpy.ndarray of float64, shape (n,)
        Destination; ``buf[offset:offset + len(profile_feature_names(...))]`` is overwritten
        element by element (no dict, no temporary array).
    offset : int
        First position written.
    customer, now, config, strict, limits
        As in :func:`profile_one`.

    Returns
    -------
    int
        Number of malformed items skipped (always 0 when ``strict``), for the caller to count.

    Examples
    --------
    >>> import numpy as np
    >>> buf = np.zeros(40)
    >>> cust = {"customer_id": "c1", "contacts": [{"ts": 0.0, "channel": "email", "resolved": False}]}
    >>> profile_into(buf, 2, cust, now=86400.0)
    0
    >>> buf[2:6].tolist()  # known, n_contacts, days_since_last, last_channel (email = 3)
    [1.0, 1.0, 1.0, 3.0]
    """
    lay: _Layout = _resolve_config(config)._layout  # type: ignore[attr-defined]
    now = _check_now(now)
    if not isinstance(buf, np.ndarray) or buf.dtype != np.float64 or buf.ndim != 1:
        got = type(buf).__name__
        if isinstance(buf, np.ndarray):
            got += f" of {buf.dtype} with ndim {buf.ndim}"
        raise ValidationError(f"buf must be a 1-D float64 numpy array, got {got}")
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) \
            or offset < 0 or offset + lay.n_features > buf.shape[0]:
        raise ValidationError(f"offset must leave room for {lay.n_features} values in buf of length "
                              f"{buf.shape[0]}, got {offset!r}")
    return _profile_core(customer, now, lay, strict, buf, offset, _max_contacts(limits))


# ---------------------------------------------------------------------------------------------
# Batch
# ---------------------------------------------------------------------------------------------
def _numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values of a column and a mask of entries that are present but not numbers."""
    if pd.api.types.is_bool_dtype(col.dtype):
        v = col.to_numpy(dtype=float, na_value=np.nan)
        return v, np.ones(len(col), dtype=bool)  # booleans are not numbers here
    v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    not_number = np.isnan(v) & col.notna().to_numpy()
    if col.dtype == object:
        # pd.to_numeric turns True into 1.0: a bool in a numeric column is a mistake.
        not_number |= np.fromiter((isinstance(x, (bool, np.bool_)) for x in col), bool, len(col))
    return v, not_number


def _bool01(col: pd.Series, na_ok: bool) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 floats, mask of bad entries) of a boolean column; bools or 0/1 numbers accepted."""
    if pd.api.types.is_bool_dtype(col.dtype):
        isna = col.isna().to_numpy()
        v = col.to_numpy(dtype=float, na_value=0.0)
        return v, (isna & (not na_ok))
    if pd.api.types.is_numeric_dtype(col.dtype):
        v = col.to_numpy(dtype=float, na_value=np.nan)
        isna = np.isnan(v)
        bad = ~isna & (v != 0) & (v != 1)
        if not na_ok:
            bad |= isna
        return np.where(isna, 0.0, v), bad
    vals = col.to_numpy(dtype=object)
    ok = np.fromiter((x is True or x is False or isinstance(x, np.bool_)
                      or (_is_number(x) and (x == 0 or x == 1))
                      or (na_ok and _is_missing(x)) for x in vals), bool, len(vals))
    v = np.fromiter((1.0 if (ok_i and not _is_missing(x) and x) else 0.0 for x, ok_i in zip(vals, ok)),
                    float, len(vals))
    return v, ~ok


def _raise_first(frame: pd.DataFrame, checks: list[tuple[str, np.ndarray, str]], what: str) -> None:
    """Raise for the first row (then first field) flagged bad in ``checks``, if any."""
    first = None
    for name, bad, expected in checks:
        if bad.any():
            pos = int(np.argmax(bad))
            if first is None or pos < first[0]:
                first = (pos, name, expected)
    if first is None:
        return
    pos, name, expected = first
    label = frame.index[pos]
    got = frame[name].iloc[pos]
    raise ValidationError(f"{what} row {label!r}: {name} must be {expected}, got {got!r}")


@accepts_old_form(old=("contacts", "channels"))
def validate_contacts(contacts: pd.DataFrame, *, channels: ChannelCatalogue | None = None) -> pd.DataFrame:
    """Strictly check a contact log and return it unchanged; raise on the first bad row.

    Required columns: :data:`CONTACT_COLUMNS`. ``customer_id`` a non-empty string; ``ts`` a
    finite number; ``channel`` in the catalogue; ``resolved`` a bool (or 0/1), not missing;
    ``satisfaction`` in [1, 5] or NaN (not surveyed); ``handling_s`` a finite number >= 0 or
    NaN (not recorded). Rows need not be sorted. The message names the row label, the field,
    what was expected and what was received.

    Parameters
    ----------
    contacts : pandas.DataFrame
        The contact log.
    channels : ChannelCatalogue, optional
        Catalogue the channels must belong to (default: the default catalogue).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"customer_id": ["c1", "c1"], "ts": [0.0, 5.0], "channel": ["chat", "fax"],
    ...                     "resolved": [True, False], "satisfaction": [4.0, float("nan")],
    ...                     "handling_s": [60.0, 0.0]})
    >>> validate_contacts(log)
    Traceback (most recent call last):
    ...
    nextchannel.errors.ValidationError: contacts row 1: channel must be one of ['chat', ...], got 'fax'
    """
    channels = channels if channels is not None else _DEFAULT_CHANNELS
    if not isinstance(contacts, pd.DataFrame):
        raise ValidationError(f"contacts must be a pandas DataFrame, got {type(contacts).__name__}")
    missing = [c for c in CONTACT_COLUMNS if c not in contacts.columns]
    if missing:
        raise ValidationError(f"contacts must have columns {list(CONTACT_COLUMNS)}, missing {missing}")
    if len(contacts) == 0:
        return contacts
    cid = contacts["customer_id"]
    if pd.api.types.is_string_dtype(cid.dtype) and cid.dtype != object:
        cid_bad = cid.isna().to_numpy() | (cid == "").fillna(True).to_numpy(dtype=bool)
    else:
        cid_bad = ~np.fromiter((isinstance(x, str) and x != "" for x in cid), bool, len(cid))
    ts, ts_nn = _numeric(contacts["ts"])
    sat, sat_nn = _numeric(contacts["satisfaction"])
    hs, hs_nn = _numeric(contacts["handling_s"])
    _, res_bad = _bool01(contacts["resolved"], na_ok=False)
    ch_bad = ~contacts["channel"].isin(channels.names).to_numpy(dtype=bool)
    with np.errstate(invalid="ignore"):
        checks = [
            ("customer_id", cid_bad, "a non-empty string"),
            ("ts", ts_nn | ~np.isfinite(ts), "a finite number"),
            ("channel", ch_bad, f"one of {list(channels.names)}"),
            ("resolved", res_bad, "a bool"),
            ("satisfaction", sat_nn | ((sat < 1) | (sat > 5)), "a number in [1, 5] or NaN (not surveyed)"),
            ("handling_s", hs_nn | (hs < 0) | np.isinf(hs), "a finite number >= 0 or NaN (not recorded)"),
        ]
    _raise_first(contacts, checks, "contacts")
    return contacts


def _check_at(at: pd.DataFrame) -> np.ndarray:
    if not isinstance(at, pd.DataFrame):
        raise ValidationError(f"decisions must be a pandas DataFrame, got {type(at).__name__}")
    missing = [c for c in ("customer_id", "ts") if c not in at.columns]
    if missing:
        raise ValidationError(f"decisions must have columns ['customer_id', 'ts'], missing {missing}")
    ts, nn = _numeric(at["ts"])
    with np.errstate(invalid="ignore"):
        _raise_first(at, [("ts", nn | ~np.isfinite(ts), "a finite number (epoch seconds)")], "decisions")
    return ts


def _opt_outs(customers: pd.DataFrame, lay: _Layout) -> tuple[pd.Index, list[tuple[int, np.ndarray]]]:
    """Index of customer ids and, per opt-out column present, (channel index, 0/1 values)."""
    if not isinstance(customers, pd.DataFrame):
        raise ValidationError(f"customers must be a pandas DataFrame or None, got {type(customers).__name__}")
    if "customer_id" not in customers.columns:
        raise ValidationError("customers must have a column 'customer_id', missing ['customer_id']")
    cid = customers["customer_id"]
    checks = [("customer_id", cid.isna().to_numpy(dtype=bool), "a customer id (not missing)"),
              ("customer_id", cid.duplicated().to_numpy(dtype=bool), "unique (one row per customer)")]
    cols = []
    for k, key in enumerate(lay.optout_keys):
        if key in customers.columns:
            v, bad = _bool01(customers[key], na_ok=True)
            checks.append((key, bad, "a bool (missing = False)"))
            cols.append((k, v))
    _raise_first(customers, checks, "customers")
    return pd.Index(cid), cols


def _fill_from_contacts(out: np.ndarray, lay: _Layout, at_codes: np.ndarray, now: np.ndarray,
                        contacts: pd.DataFrame, uniques: pd.Index, codes: np.ndarray, max_contacts: int) -> int:
    """Write the contact-based features of every at-row into ``out`` (rows x features).

    Returns the number of (row, contact) pairs left out by ``max_contacts``.
    """
    m = len(contacts)
    ts = contacts["ts"].to_numpy(dtype=float, na_value=np.nan)
    k_ch = pd.Index(lay.channel_names).get_indexer(contacts["channel"])
    res, _ = _bool01(contacts["resolved"], na_ok=False)
    sat = pd.to_numeric(contacts["satisfaction"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    # Sort by (customer, ts, log position): within a customer the contacts counted at now are a
    # prefix of its segment, and the last of that prefix is the "last contact" (ties: later row).
    order = np.lexsort((np.arange(m), ts, codes))
    codes_s, ts_s, k_s, res_s, sat_s = codes[order], ts[order], k_ch[order], res[order], sat[order]
    n_cust = len(uniques)
    seg_start = np.searchsorted(codes_s, np.arange(n_cust + 1), side="left")

    rows = np.flatnonzero(at_codes >= 0)
    if len(rows) == 0:
        return 0
    # Exact per-segment search via ranks: key = customer * R + rank(ts); ties keep "<=" semantics.
    all_ts, inv = np.unique(np.concatenate([ts_s, now[rows]]), return_inverse=True)
    r_c, r_at = inv[:m].astype(np.int64), inv[m:].astype(np.int64)
    big = np.int64(len(all_ts) + 1)
    key_c = codes_s.astype(np.int64) * big + r_c
    key_at = at_codes[rows].astype(np.int64) * big + r_at
    end = np.searchsorted(key_c, key_at, side="right")
    starts = seg_start[at_codes[rows]]
    lens = end - starts
    # Limits.max_contacts: only the most recent contacts of the prefix count (the online core
    # keeps the last max_contacts entries of the time-ordered history).
    excess = np.maximum(lens - max_contacts, 0)
    starts, lens = starts + excess, lens - excess
    has = lens > 0
    rows, starts, lens = rows[has], starts[has], lens[has]
    if len(rows) == 0:
        return int(excess.sum())
    n_ch, hl_s = lay.n_ch, lay.hl_s
    last = starts + lens - 1
    t_last = ts_s[last]
    out[rows, 1] = lens
    out[rows, 2] = (now[rows] - t_last) / _DAY_S
    out[rows, 3] = k_s[last]

    # Expand (at-row, contact) pairs in chunks of bounded size.
    cum = np.cumsum(lens)
    bounds = np.searchsorted(cum, np.arange(_PAIR_CHUNK, int(cum[-1]), _PAIR_CHUNK), side="left")
    edges = np.unique(np.concatenate([[0], bounds, [len(rows)]]))
    for a, b in zip(edges[:-1], edges[1:]):
        r_rows, r_starts, r_lens, r_tlast = rows[a:b], starts[a:b], lens[a:b], t_last[a:b]
        n_r = len(r_rows)
        total = int(r_lens.sum())
        local = np.repeat(np.arange(n_r), r_lens)
        offsets = np.cumsum(r_lens) - r_lens
        pos = np.arange(total) + np.repeat(r_starts - offsets, r_lens)
        g = local * n_ch + k_s[pos]
        size = n_r * n_ch
        w = 0.5 ** ((r_tlast[local] - ts_s[pos]) / hl_s)
        W = np.bincount(g, weights=w, minlength=size).reshape(n_r, n_ch)
        N = np.bincount(g, minlength=size).reshape(n_r, n_ch).astype(float)
        R = np.bincount(g, weights=res_s[pos], minlength=size).reshape(n_r, n_ch)
        sp = sat_s[pos]
        ok = ~np.isnan(sp)
        S = np.bincount(g[ok], weights=sp[ok], minlength=size).reshape(n_r, n_ch)
        SN = np.bincount(g[ok], minlength=size).reshape(n_r, n_ch)
        total_w = np.zeros(n_r)
        for k in range(n_ch):  # same summation order as the online core
            total_w += W[:, k]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[r_rows, lay.i_n:lay.i_n + n_ch] = N
            out[r_rows, lay.i_share:lay.i_share + n_ch] = W / total_w[:, None]
            out[r_rows, lay.i_res:lay.i_res + n_ch] = np.where(N > 0, R / N, np.nan)
            out[r_rows, lay.i_sat:lay.i_sat + n_ch] = np.where(SN > 0, S / SN, np.nan)
    return int(excess.sum())


@accepts_old_form(old=("at", "contacts", "customers", "config"), renamed={"at": "decisions"})
def profiles_many(decisions: pd.DataFrame, *, contacts: pd.DataFrame | None = None,
                  customers: pd.DataFrame | None = None, config: ProfileConfig | None = None,
                  limits: Limits | None = None) -> pd.DataFrame:
    """Profiles of many customers, each as of its own time, from a contact log (batch).

    Row ``i`` of the result is what :func:`profile_one` gives for customer
    ``decisions.customer_id[i]`` at ``now = decisions.ts[i]``, given that customer's contacts up
    to that time in time order (ties: log order) and opt-outs: only contacts with
    ``ts <= decisions.ts[i]`` count (point in time), and of those at most ``limits.max_contacts``,
    the most recent — the bound of the per-request path (which reads the last
    ``max_contacts`` entries of the history it is given), one definition in :class:`Limits`.
    Vectorised: contacts are sorted once by (customer, ts, row), each decision's counted contacts
    are a slice of its customer's segment, and the per-channel sums are ``np.bincount`` over
    (decision, contact) pairs.

    Parameters
    ----------
    decisions : pandas.DataFrame
        Columns ``customer_id`` (None/NaN/empty = anonymous) and ``ts`` (finite epoch seconds).
        (Called ``at`` before 0.2.)
    contacts : pandas.DataFrame or None, keyword-only
        Contact log (see :func:`validate_contacts`, which is applied); None = no contacts.
    customers : pandas.DataFrame, optional
        ``customer_id`` (unique) and optional ``opt_out_<ch>`` bool columns (absent or missing =
        False); other columns are ignored.
    config : ProfileConfig, optional
        Half-life and channels (default ``ProfileConfig()``).
    limits : Limits, optional
        ``limits.max_contacts`` (default 1,000): the most contacts one profile counts.

    Returns
    -------
    pandas.DataFrame
        float64 columns :func:`profile_feature_names`, same length and index as ``decisions``.
        ``result.attrs["skipped"]["over_limit"]`` counts the (decision, contact) pairs left out
        by the bound.

    Raises
    ------
    ValidationError
        On a bad contact log, ``at`` or ``customers`` (row label, field, expected, received).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"customer_id": ["c1", "c1"], "ts": [0.0, 86400.0],
    ...                     "channel": ["chat", "phone"], "resolved": [True, False],
    ...                     "satisfaction": [5.0, float("nan")], "handling_s": [60.0, 300.0]})
    >>> at = pd.DataFrame({"customer_id": ["c1", "c1", None], "ts": [0.0, 2 * 86400.0, 0.0]})
    >>> profiles_many(at, contacts=log)[["prof_known", "prof_n_contacts", "prof_last_channel"]].to_numpy().tolist()
    [[1.0, 1.0, 0.0], [1.0, 2.0, 2.0], [0.0, 0.0, -1.0]]
    """
    lay: _Layout = _resolve_config(config)._layout  # type: ignore[attr-defined]
    max_contacts = _max_contacts(limits)
    at = decisions
    now = _check_at(at)
    over = 0
    n_at = len(at)
    cid_at = at["customer_id"]
    known = cid_at.notna().to_numpy(dtype=bool) & ~cid_at.isin([""]).to_numpy(dtype=bool)
    cid_known = cid_at.where(known, None)

    out = np.zeros((n_at, lay.n_features))
    out[:, 0] = known
    out[:, 2] = np.nan
    out[:, 3] = -1.0
    out[:, lay.i_res:lay.i_opt] = np.nan  # resolved and sat blocks

    if contacts is not None:
        validate_contacts(contacts, channels=lay.channels)
        if len(contacts) and n_at:
            codes, uniques = pd.factorize(contacts["customer_id"])
            uniques = pd.Index(uniques)
            at_codes = np.where(known, uniques.get_indexer(cid_known), -1)
            over = _fill_from_contacts(out, lay, at_codes, now, contacts, uniques, codes, max_contacts)

    if customers is not None:
        ids, cols = _opt_outs(customers, lay)
        if cols and n_at:
            idx = np.where(known, ids.get_indexer(cid_known), -1)
            found = idx >= 0
            for k, v in cols:
                out[found, lay.i_opt + k] = v[idx[found]]

    frame = pd.DataFrame(out, index=at.index, columns=list(lay.names))
    frame.attrs["skipped"] = {"over_limit": over}
    return frame


@accepts_old_form(old=("contacts", "customer_id", "customers"))
def history_of(customer_id: str, *, contacts: pd.DataFrame | None = None,
               customers: pd.DataFrame | None = None) -> dict[str, Any]:
    """The request-time dict of one customer, built from a contact log (and customers table).

    Contacts keep their log order (which breaks ties in ``ts``); missing satisfaction and
    handling time become None; values are plain Python types (JSON-able). No time filter is
    applied: :func:`profile_one` counts only contacts up to its ``now``.

    Parameters
    ----------
    customer_id : str
        The customer.
    contacts : pandas.DataFrame or None, keyword-only
        Contact log with :data:`CONTACT_COLUMNS` (not validated here).
    customers : pandas.DataFrame, optional
        If given, the customer's true ``opt_out_<ch>`` columns become the ``opt_out`` list.

    Returns
    -------
    dict
        ``{"customer_id": ..., "contacts": [...], "opt_out": [...]}``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"customer_id": ["c1", "c2"], "ts": [0.0, 1.0], "channel": ["chat", "email"],
    ...                     "resolved": [True, False], "satisfaction": [float("nan"), 3.0],
    ...                     "handling_s": [60.0, 0.0]})
    >>> history_of("c1", contacts=log)
    {'customer_id': 'c1', 'contacts': [{'ts': 0.0, 'channel': 'chat', 'resolved': True,
     'satisfaction': None, 'handling_s': 60.0}], 'opt_out': []}
    """
    recs: list[dict[str, Any]] = []
    if contacts is not None and len(contacts):
        sub = contacts.loc[(contacts["customer_id"] == customer_id).fillna(False).to_numpy(dtype=bool)]
        for ts, ch, r, s, h in zip(sub["ts"].tolist(), sub["channel"].tolist(), sub["resolved"].tolist(),
                                   sub["satisfaction"].tolist(), sub["handling_s"].tolist()):
            recs.append({"ts": float(ts), "channel": ch, "resolved": bool(r),
                         "satisfaction": None if _is_missing(s) else float(s),
                         "handling_s": None if _is_missing(h) else float(h)})
    opt_out: list[str] = []
    if customers is not None and len(customers):
        sub = customers.loc[(customers["customer_id"] == customer_id).fillna(False).to_numpy(dtype=bool)]
        if len(sub):
            row = sub.iloc[0]
            for col in customers.columns:
                if col.startswith("opt_out_") and not _is_missing(row[col]) and bool(row[col]):
                    opt_out.append(col[len("opt_out_"):])
    return {"customer_id": customer_id, "contacts": recs, "opt_out": opt_out}
