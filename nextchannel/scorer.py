"""The in-process scorer: load a model bundle once, decide per request or for a whole log.

Where it sits: bundle → **scorer** → Decision → logs. A web backend holds one :class:`Scorer`
and calls :meth:`Scorer.decide_one` on each request — the fast path: features written straight
into a preallocated buffer, the models through LightGBM's single-row C API
(:mod:`nextchannel.fastpredict`), a plain-Python policy step. A job or notebook calls
:meth:`Scorer.decide_many` on a decision log — the vectorised batch core
(:meth:`Scorer._decide_frame`); :meth:`Scorer.decide_one_plain` runs that core on one row. Both
use the same definitions (features, value model, :func:`~nextchannel.policy.eligibility`,
:func:`~nextchannel.policy.choose`), and tests hold them equal row by row.

Own data. A bundle trained on the user's own columns (``train(..., features=...)``) carries their
:class:`~nextchannel.featurespec.FeatureSpec`; the row is then [built-in session and profile
features, if the bundle uses them] [the user's columns, encoded by the spec] [channel context], and
``decide_one`` takes the user's columns as a dict (``features=``, or the first argument when the
bundle uses no web features), ``decide_many`` as a frame. A bundle whose guard fell back to a
constant action decides with it wherever it is eligible, saying so in the reasons.

Randomness. With exploration switched on, the uniform number behind each choice is derived from
``(seed, session_id, ts)`` by a hash, so a decision is reproducible, ``decide_many`` equals
``decide_one``, and the logged ``propensity`` is the exact probability of the logged action.

Never take the site down. ``decide_one`` does not raise on malformed signals: it returns a safe
``none`` decision whose ``fallback`` says why, and counts it in :attr:`Scorer.fallbacks`
(``strict=True`` raises instead, for development). Importing this module does not import
matplotlib, Dask or the simulator.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nextchannel.context import context_spec
from nextchannel.conventions import accepts_old_form
from nextchannel.errors import NextChannelError, ValidationError, excerpt
from nextchannel.fastpredict import FastBooster
from nextchannel.explain import phrase, top_reasons, top_reasons_many
from nextchannel.features import SESSION_FEATURES, SessionState, features_many
from nextchannel.modelset import DEFAULT_BUNDLE, ModelSet, guard_phrase
from nextchannel.policy import Decision, choose, eligibility, eligibility_frame, greedy_many
from nextchannel.profile import profile_into, profile_one
from nextchannel.schema import DEVICES, LANGUAGES, NONE_ACTION, Limits, canonical_id

__all__ = ["Scorer", "decision_uniform"]

logger = logging.getLogger(__name__)


def decision_uniform(seed: int, session_id: Any, ts: float) -> float:
    """A uniform number in [0, 1) determined by the decision point (for reproducible exploration).

    The session id enters by its canonical form (:func:`nextchannel.schema.canonical_id`), so that
    ``5``, ``5.0`` and ``"5"`` draw the same number (a float-read id column keeps ``decide_many``
    equal to ``decide_one``); an id that is not one draws as no id.

    Examples
    --------
    >>> decision_uniform(0, 5, 10.0) == decision_uniform(0, 5.0, 10.0) == decision_uniform(0, "5", 10.0)
    True
    """
    try:
        sid = canonical_id(session_id)
    except ValidationError:
        sid = None
    h = hashlib.blake2b(f"{seed}|{sid}|{float(ts)!r}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def _feature_value(name: str, v: Any) -> float:
    """A session feature from a backend's feature dict: a number, NaN for missing; never +-inf."""
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        x = math.inf
    if x - x != 0.0 and x == x:  # inf: no feature means "infinite", and phrases of reasons cannot show it
        raise ValidationError(f"session feature {name!r} must be a finite number or NaN (missing), got {excerpt(v)}")
    return x


_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _about_the_input(err: BaseException) -> bool:
    """Whether an exception raised while reading a request is about the input (else: a library bug).

    About the input: our own validation errors; conversions that failed on a received value
    (``TypeError``, ``ValueError``, ``OverflowError``); absurd sizes or nesting (``MemoryError``,
    ``RecursionError``); and anything raised outside this package's code — by a user object's own
    method (``__float__``, ``__eq__``, ``get``, ...). A ``KeyError``, ``AttributeError``,
    ``IndexError``, ``NameError``, ``ZeroDivisionError``... raised in this package's own code is a
    bug of the library, not a malformed signal.
    """
    if isinstance(err, (NextChannelError, TypeError, ValueError, OverflowError, MemoryError, RecursionError)):
        return True
    tb = err.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is None or not last.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)


def _event_list(events: Any) -> list[Any] | tuple[Any, ...]:
    """The ``events`` of a replayed session: a list (or tuple) of event dicts, else malformed signals."""
    if type(events) is not list and type(events) is not tuple:
        raise ValidationError(f"session events must be a list of event dicts, got {excerpt(events)}")
    return events


def _short_message(err: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an exception, cut and escaped; never raises (str() of its args may)."""
    try:
        text = str(err)
    except Exception:
        text = ""
    if isinstance(err, NextChannelError) and len(text) <= limit:
        return text  # our own messages already quote values as short excerpts
    return f"{type(err).__name__}: {excerpt(text, limit)}" if text else type(err).__name__


class _Compiled:
    """A model set prepared for the per-request path: fast boosters, layouts, policy constants.

    Immutable once built; the scorer swaps a whole ``_Compiled`` on reload, so a request that
    took a reference sees one model set from start to end. Per-thread buffers and predictors live
    in ``self.local`` (a FastConfig handle serialises calls, so each thread gets its own).
    """

    def __init__(self, ms: ModelSet) -> None:
        self.ms = ms
        names = list(ms.feature_names)
        spec = ms.feature_spec
        n_sess = len(SESSION_FEATURES)
        # Row layout: [built-in session + profile features] [the user's columns] [channel context]
        self.web = bool(spec.builtin)
        if self.web and tuple(names[:n_sess]) != SESSION_FEATURES:
            raise ValidationError("the bundle's built-in features do not start with this library's session features; "
                                  "retrain the bundle with this version")
        self.n_features = len(names)
        self.n_builtin = len(spec.builtin)
        self.n_session = n_sess if self.web else 0
        self.profile_offset = self.n_session
        self.user_offset = self.n_builtin
        self.user_encoders = [col.encode for col in spec.columns]
        self.user_names = list(spec.names)
        self.phrase = spec.phraser(phrase)
        vm = ms.value_model
        self.ctx_names = list(vm.context_features_)
        self.n_row = len(names) + len(self.ctx_names)
        self.index = {n: i for i, n in enumerate(names)}
        pol = ms.policy
        self.actions = pol.actions
        self.channels = pol.channels.names
        self.constant = None if ms.constant_action is None else self.actions.index(ms.constant_action)
        self.constant_reasons = () if ms.constant_action is None else (guard_phrase(ms.constant_action),)
        self.value = [FastBooster(b.model_to_string()) for b in vm.boosters_]
        self.offer = FastBooster(ms.offer_model.booster_.model_to_string())
        self.offer_contrib = FastBooster(ms.offer_model.booster_.model_to_string(), predict_type="contrib")
        self.offer_features = list(ms.offer_model.feature_names_)
        if self.offer_features != names:
            raise ValidationError("the offer model's features differ from the value model's")
        if self.web:
            self.i_device, self.i_language = self.index["device"], self.index["language"]
            self.i_shown, self.i_since_dismiss = self.index["offers_shown"], self.index["time_since_dismiss_s"]
            self.i_contacts = self.index["contacts_started"]
        self.i_optout = [self.index.get(f"prof_optout_{c}") for c in self.channels]
        self.ctx_spec = context_spec(pol.channels)
        anon = np.zeros(self.n_builtin - self.profile_offset)
        if self.web:
            profile_into(anon, 0, None, 0.0, ms.profile_config)   # an anonymous profile does not depend on time
        self.anon_profile = anon
        self.default_context = np.tile([1.0, 0.0, 1.0], len(self.channels))
        self.default_lists = ([True] * len(self.channels), [0.0] * len(self.channels), [True] * len(self.channels))
        self.local = threading.local()

    def buffers(self) -> Any:
        """This thread's row buffer and predictors (created on first use in the thread)."""
        loc = self.local
        st = getattr(loc, "st", None)
        if st is None:
            st = _ThreadState(self)
            loc.st = st
        return st

    def close(self) -> None:
        for fb in (*getattr(self, "value", ()), getattr(self, "offer", None), getattr(self, "offer_contrib", None)):
            if fb is not None:
                fb.close()

    def __del__(self) -> None:
        # Reached when the last request holding this model set has finished after a reload (nothing
        # here refers back to self): free the LightGBM handles now. Left to themselves they would
        # wait for a full garbage-collector pass, as each FastBooster sits in a reference cycle
        # through its per-thread state.
        try:
            self.close()
        except Exception:  # interpreter shutdown  # pragma: no cover
            pass


class _ThreadState:
    __slots__ = ("row", "feat", "session_view", "ev_out", "value_p", "offer_out", "offer_p", "contrib_out",
                 "contrib_p")

    def __init__(self, c: _Compiled) -> None:
        self.row = np.full(c.n_row, np.nan)
        self.feat = self.row[: c.n_features]            # a view: the offer model reads the prefix
        self.session_view = self.row[: c.n_session]     # a view: the session features
        self.ev_out = [np.zeros(1) for _ in c.value]
        self.value_p = [fb.bind(self.row, o).predict for fb, o in zip(c.value, self.ev_out)]
        self.offer_out = np.zeros(1)
        self.offer_p = c.offer.bind(self.feat, self.offer_out).predict
        self.contrib_out = np.zeros(c.n_features + 1)
        self.contrib_p = c.offer_contrib.bind(self.feat, self.contrib_out).predict


def _greedy_fast(margin: float, ev: list[float], ok: list[bool]) -> tuple[int, float]:
    """Pure-Python twin of :func:`nextchannel.policy.choose` without exploration (same action)."""
    n = len(ev)
    ev0 = ev[0]
    best, best_gain = 0, -math.inf
    for j in range(1, n):
        if ok[j]:
            g = ev[j] - ev0
            if g > best_gain:
                best, best_gain = j, g
    greedy = best if best and best_gain > margin else 0
    return greedy, 1.0


class Scorer:
    """Decide whether to offer help now, and on which channel.

    Parameters
    ----------
    model_set : ModelSet
    strict : bool, default False
        Raise on malformed signals instead of returning a safe ``none`` decision.
    seed : int, default 0
        Seed of the per-decision exploration draws.
    n_reasons : int, default 3
        How many signals to name in a decision's reasons (0: none).
    reasons : {"offers", "all"}, default "offers"
        Explain offers only (the decisions a CX person asks about; feature contributions cost about
        as much as the model evaluation itself), or every decision.
    limits : Limits, optional
        Bounds on one request (events replayed per session, contacts per customer dict; see
        :class:`nextchannel.schema.Limits`); default ``Limits()``.

    Attributes
    ----------
    fallbacks : Counter
        Safe fallback decisions by cause: ``"malformed signals"`` (the input could not be read) and
        ``"library error"`` (a bug of nextchannel, logged at ERROR with its traceback).

    Examples
    --------
    >>> scorer = Scorer.load()                      # the bundle shipped in models/default
    >>> s = SessionState("s1")
    >>> s.update({"session_id": "s1", "ts": 0.0, "type": "session_start", "device": "desktop", "language": "en"})
    >>> s.update({"session_id": "s1", "ts": 1.0, "type": "page_view", "page": "/checkout", "page_type": "checkout"})
    >>> d = scorer.decide_one(s, now=5.0)
    >>> d.action in scorer.actions and 0 < d.propensity <= 1
    True
    """

    def __init__(self, model_set: ModelSet, *, strict: bool = False, seed: int = 0, n_reasons: int = 3,
                 reasons: str = "offers", limits: Limits | None = None) -> None:
        if reasons not in ("offers", "all"):
            raise ValidationError(f"reasons must be 'offers' or 'all', got {reasons!r}")
        if limits is not None and not isinstance(limits, Limits):
            raise ValidationError(f"limits must be a Limits or None, got {type(limits).__name__}")
        self.reasons = reasons
        self.limits = limits
        self._c = _Compiled(model_set)
        self.strict = strict
        self.seed = seed
        self.n_reasons = n_reasons
        self.fallbacks: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path | None = None, *, require_signature: bool = False,
             key: str | bytes | None = None, **kwargs: Any) -> "Scorer":
        """Load a bundle folder or a publish root's ``current`` (default: ``models/default`` shipped with the package).

        ``require_signature=True`` refuses a bundle not signed with ``key`` (default
        ``$NEXTCHANNEL_BUNDLE_KEY``); other keyword arguments go to :class:`Scorer`.
        """
        ms = ModelSet.load(path if path is not None else DEFAULT_BUNDLE, require_signature=require_signature, key=key)
        return cls(ms, **kwargs)

    def reload(self, path: str | Path, *, require_signature: bool = False, key: str | bytes | None = None) -> None:
        """Swap in another bundle (or a publish root's ``current``) atomically: a request sees the old set or the new one."""
        compiled = _Compiled(ModelSet.load(path, require_signature=require_signature, key=key))
        old = self._c
        self._c = compiled  # one reference assignment: a request holds either the old set or the new one
        logger.info("reloaded model set %s (was %s)", compiled.ms.version, old.ms.version)
        # the old boosters are freed when the last request holding them finishes (reference counting)

    @property
    def model_set(self) -> ModelSet:
        return self._c.ms

    @property
    def actions(self) -> tuple[str, ...]:
        return self._c.ms.actions

    @property
    def model_version(self) -> str:
        return self._c.ms.version

    # -- per request ----------------------------------------------------------------------------
    def decide_one(self, session: Any = None, customer: Mapping[str, Any] | None = None,
                   context: Mapping[str, Any] | None = None, now: float | None = None, *,
                   features: Mapping[str, Any] | None = None) -> Decision:
        """Decide for one decision point (the fast path: no pandas, no per-call arrays).

        Parameters
        ----------
        session : SessionState, or a dict
            A :class:`~nextchannel.features.SessionState`, or ``{"session_id": ..., "events": [...]}``
            (replayed), or a dict of session feature values by name (what a backend that computes
            its own signals holds; missing or NaN features count as missing, a value that is not a
            finite number is malformed; ``ts`` or ``now`` gives the time). For a bundle trained on
            the user's own columns only, the dict of those columns (as ``features``).
        customer : dict, optional
            The request-time customer dict of :func:`nextchannel.profile.profile_one`.
        context : dict, optional
            Per-request channel context: ``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>`` or
            ``languages_<ch>``, or nested ``{"chat": {"open": ..., "wait_s": ..., "languages": [...]}}``
            (defaults: open, no wait, language served).
        now : float, optional
            Decision time in seconds (default: the session's last event).
        features : dict, optional
            The user's own columns by their names, for a bundle trained with ``features=``: numbers,
            booleans, category levels or text; a missing key or None is a missing value, a level
            never seen in training counts as missing. Optional ``session_id`` and ``ts`` keys feed
            the exploration draw (as the columns of :meth:`decide_many`).

        Returns
        -------
        Decision
            Never raises on malformed signals unless ``strict``: a safe ``none`` decision whose
            ``fallback`` says why (counted in :attr:`fallbacks`).
        """
        c = self._c  # one reference for the whole request: reload cannot mix two model sets
        part = "now"  # the argument being read, named in the fallback reason and the strict error
        try:
            st = c.buffers()
            row = st.row
            own = features
            if c.web:
                if isinstance(session, SessionState):
                    sid = session.session_id
                    now_ts = session._now(now)
                    if now_ts - now_ts != 0.0:
                        raise ValidationError(f"now must be a finite number of seconds, got {now!r}")
                    part = "session"
                    session.features_into(row, now_ts, 0)
                elif isinstance(session, Mapping) and "events" in session:
                    part = "session"
                    state = SessionState(session.get("session_id"), strict=self.strict, channels=c.ms.policy.channels,
                                         limits=self.limits)
                    state.update_many(_event_list(session["events"]))
                    part = "now"
                    sid, now_ts = state.session_id, state._now(now)
                    if now_ts - now_ts != 0.0:
                        raise ValidationError(f"now must be a finite number of seconds, got {now!r}")
                    state.features_into(row, now_ts, 0)
                elif isinstance(session, Mapping):
                    sid = session.get("session_id")
                    now_ts = float(now if now is not None else session.get("ts", math.nan))
                    if now_ts - now_ts != 0.0:
                        raise ValidationError(f"now must be a finite number of seconds for a feature dict, got {now!r}")
                    part = "session"
                    get = session.get
                    head = st.session_view
                    try:  # one conversion for the whole vector; the loop below only explains a failure
                        head[:] = [get(name, math.nan) for name in SESSION_FEATURES]
                        clean = not np.isinf(head).any()
                    except (TypeError, ValueError, OverflowError):
                        clean = False
                    if not clean:
                        for i, name in enumerate(SESSION_FEATURES):
                            row[i] = _feature_value(name, get(name, math.nan))
                else:
                    part = "session"
                    raise ValidationError(f"session must be a SessionState or a dict, got {type(session).__name__}")
                part = "customer"
                if customer is None:
                    row[c.profile_offset:c.n_builtin] = c.anon_profile
                else:
                    profile_into(row, c.profile_offset, customer, now_ts, c.ms.profile_config, strict=self.strict,
                                 limits=self.limits)
            else:
                part = "features"
                if own is None:
                    own = session
                if not isinstance(own, Mapping):
                    raise ValidationError(f"features must be a dict of the bundle's columns (e.g. "
                                          f"{c.user_names[:3]}), got {type(own).__name__}")
                sid = own.get("session_id")
                now_ts = float(now if now is not None else own.get("ts", 0.0))
                if now_ts - now_ts != 0.0:
                    raise ValidationError(f"now must be a finite number of seconds, got {now!r}")
            if c.user_encoders:
                part = "features"
                get = (own if own is not None else {}).get
                off = c.user_offset
                for i, (enc, name) in enumerate(zip(c.user_encoders, c.user_names)):
                    row[off + i] = enc(get(name))
            f = row  # feature values, read back as Python floats below
            lang = _lang_name(f[c.i_language]) if c.web else None
            part = "context"
            base = c.n_features
            if not context:
                open_, wait, lang_ok = c.default_lists
                row[base:] = c.default_context
            else:
                open_, wait, lang_ok = c.ctx_spec.parse_one(context, lang)
                for j in range(len(c.channels)):
                    row[base + 3 * j] = 1.0 if open_[j] else 0.0
                    row[base + 3 * j + 1] = wait[j]
                    row[base + 3 * j + 2] = 1.0 if lang_ok[j] else 0.0
            part = "models"
            ev = [float(p()[0]) for p in st.value_p]  # plain floats, as decide_one_plain gives
            if not all(v - v == 0.0 for v in ev):  # NaN or infinite: never decide from such values
                return self._fallback(c.ms, "non-finite expected values: " + ", ".join(
                    f"{name}={v!r}" for name, v in zip(c.actions, ev) if v - v != 0.0))
            tau = st.offer_p()[0]
            part = "policy"
            pol = c.ms.policy
            opted = [j is not None and f[j] >= 1 for j in c.i_optout]
            if c.web:
                ok, why = eligibility(pol, device=_dev_name(f[c.i_device]), language=lang, offers_shown=f[c.i_shown],
                                      time_since_dismiss_s=f[c.i_since_dismiss], contacts_started=f[c.i_contacts],
                                      open_=open_, wait_s=wait, lang_ok=lang_ok, opted_out=opted)
            else:  # no session: the contact rules have nothing to block on
                ok, why = eligibility(pol, device=None, language=None, offers_shown=0.0, time_since_dismiss_s=math.nan,
                                      contacts_started=0.0, open_=open_, wait_s=wait, lang_ok=lang_ok, opted_out=opted)
            reasons: tuple[str, ...] = ()
            if c.constant is not None:  # the guard fell back: the constant action where eligible
                if pol.exploration == "none":
                    a, prop = (c.constant if ok[c.constant] else 0), 1.0
                else:
                    a, prop, _ = choose(pol, np.array(ev), ok, decision_uniform(self.seed, sid, now_ts), c.constant)
                reasons = c.constant_reasons
            elif pol.exploration == "none":
                a, prop = _greedy_fast(pol.offer_margin, ev, ok)
            else:  # numpy's choose() itself, so that the logged propensity is bit-identical to decide_many's
                a, prop, _ = choose(pol, np.array(ev), ok, decision_uniform(self.seed, sid, now_ts))
            if self.n_reasons and c.constant is None and (a != 0 or self.reasons == "all"):
                part = "reasons"
                contrib = st.contrib_p()
                reasons = tuple(top_reasons(c.offer_features, st.feat.tolist(), contrib[:-1].tolist(), offer=a != 0,
                                            k=self.n_reasons, phrase_fn=c.phrase))
        except Exception as err:  # the web path contains every failure (see _contain)
            return self._contain(c.ms, part, err)
        action = c.actions[a]
        return Decision(action=action, offer=a != 0, channel=None if a == 0 else action,
                        ev=dict(zip(c.actions, ev)), offer_score=float(tau), propensity=prop,
                        model_version=c.ms.version, reasons=reasons, why_not=tuple(why))

    # -- per request ----------------------------------------------------------------------------
    def decide_one_plain(self, session: Any = None, customer: Mapping[str, Any] | None = None,
                         context: Mapping[str, Any] | None = None, now: float | None = None, *,
                         features: Mapping[str, Any] | None = None) -> Decision:
        """The correctness-first twin of :meth:`decide_one` (pandas, ``Booster.predict``): same answers, slower.

        Parameters
        ----------
        session : SessionState, or a dict
            A :class:`~nextchannel.features.SessionState`, or ``{"session_id": ..., "events": [...]}``
            (replayed), or a dict of feature values by name (what a backend that computes its own
            signals holds; missing features count as missing).
        customer : dict, optional
            The request-time customer dict of :func:`nextchannel.profile.profile_one`.
        context : dict, optional
            Per-request channel context: ``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>`` or
            ``languages_<ch>`` (defaults: open, no wait, language served).
        now : float, optional
            Decision time (default: the session's last event).
        features : dict, optional
            The user's own columns (see :meth:`decide_one`).
        """
        ms = self._c.ms
        try:
            spec = ms.feature_spec
            if spec.builtin:
                feats, sid, now_ts = self._session_features(session, now)
                feats.update(profile_one(customer, now_ts, ms.profile_config, strict=self.strict, limits=self.limits))
            else:
                features = session if features is None else features
                if not isinstance(features, Mapping):
                    raise ValidationError(f"features must be a dict of the bundle's columns, got {type(features).__name__}")
                feats, sid = {}, features.get("session_id")
                now_ts = float(now if now is not None else features.get("ts", 0.0))
                if not math.isfinite(now_ts):
                    raise ValidationError(f"now must be a finite number of seconds, got {now!r}")
            if spec.columns:
                own = pd.DataFrame({c.name: pd.Series([(features or {}).get(c.name)], dtype=object)
                                    for c in spec.columns})
                feats.update(spec.transform(own).iloc[0].to_dict())
            language = _lang_name(feats.get("language", -1.0))
            o, w, lk = self._c.ctx_spec.parse_one(context, language)
            ctx = {k: v for j, ch in enumerate(ms.policy.channels.names)
                   for k, v in ((f"open_{ch}", float(o[j])), (f"wait_{ch}_s", w[j]), (f"lang_ok_{ch}", float(lk[j])))}
            X = pd.DataFrame([[feats.get(n, math.nan) for n in ms.feature_names]], columns=list(ms.feature_names))
            C = pd.DataFrame([ctx])
            r = self._decide_frame(ms, X, C, [sid], np.array([now_ts]), pd.RangeIndex(1)).iloc[0]
            return Decision(action=r["action"], offer=bool(r["offer"]), channel=r["channel"],
                            ev={a: float(r[f"ev_{a}"]) for a in ms.actions}, offer_score=float(r["offer_score"]),
                            propensity=float(r["propensity"]), model_version=ms.version,
                            reasons=tuple(x for x in r["reasons"].split(" | ") if x),
                            why_not=tuple(x for x in r["why_not"].split(" | ") if x))
        except Exception as err:
            return self._contain(ms, "signals", err)

    def _contain(self, ms: ModelSet, part: str, err: Exception) -> Decision:
        """A failure while deciding: a counted fallback (``strict``: raised), told apart by its cause.

        Malformed input becomes ``fallback="malformed signals: <part>: <short message>"``, counted
        under "malformed signals" and logged at DEBUG; a bug of the library (see
        :func:`_about_the_input`) becomes ``fallback="library error: ..."``, counted under
        "library error" and logged at ERROR with its traceback — never disguised as bad input.
        """
        if _about_the_input(err):
            if self.strict:
                if isinstance(err, NextChannelError):
                    raise err
                raise ValidationError(f"{part} is malformed: {_short_message(err)}") from err
            return self._fallback(ms, f"malformed signals: {part}: {_short_message(err)}")
        if self.strict:
            raise err
        logger.error("decide: library error while reading %s; returning a safe fallback", part, exc_info=err)
        return self._fallback(ms, f"library error: {part}: {type(err).__name__}", level=logging.ERROR)

    def _fallback(self, ms: ModelSet, why: str, level: int = logging.DEBUG) -> Decision:
        with self._lock:
            self.fallbacks[why.split(":")[0]] += 1
        if level == logging.DEBUG:
            logger.debug("safe fallback decision: %s", why)
        return Decision(action=NONE_ACTION, offer=False, channel=None, ev={a: math.nan for a in ms.actions},
                        offer_score=math.nan, propensity=1.0, model_version=ms.version, fallback=why)

    def _session_features(self, session: Any, now: float | None) -> tuple[dict[str, float], Any, float]:
        if isinstance(session, SessionState):
            st = session
        elif isinstance(session, Mapping) and "events" in session:
            st = SessionState(session.get("session_id"), strict=self.strict, channels=self._c.ms.policy.channels,
                              limits=self.limits)
            st.update_many(_event_list(session["events"]))
        elif isinstance(session, Mapping):
            feats = {k: _feature_value(k, v) for k, v in session.items() if k in SESSION_FEATURES}
            sid = session.get("session_id")
            now_ts = float(now if now is not None else session.get("ts", math.nan))
            if not math.isfinite(now_ts):
                raise ValidationError(f"now must be a finite number of seconds for a feature dict, got {now!r}")
            return feats, sid, now_ts
        else:
            raise ValidationError(f"session must be a SessionState or a dict, got {type(session).__name__}")
        now_ts = st._now(now)
        if not math.isfinite(now_ts):
            raise ValidationError(f"now must be a finite number of seconds, got {now!r}")
        return st.features_one(now_ts), st.session_id, now_ts

    # -- many -------------------------------------------------------------------------------------
    @accepts_old_form(old=("decisions", "events", "customers", "contacts", "features"), method=True)
    def decide_many(self, decisions: pd.DataFrame, *, events: pd.DataFrame | None = None,
                    customers: pd.DataFrame | None = None, contacts: pd.DataFrame | None = None,
                    features: pd.DataFrame | None = None) -> pd.DataFrame:
        """Decide at every decision point of a log, vectorised.

        Parameters
        ----------
        decisions : DataFrame
            Decision points: ``session_id``, ``ts`` (and ``customer_id``), and the channel context
            columns ``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>`` (defaults where absent). With
            ``events=None`` it must also hold every built-in feature column of the bundle. For a
            bundle trained on the user's own columns it may be the features frame itself.
        events, customers, contacts : DataFrame, optional
            Logs to build point-in-time features from (:func:`nextchannel.features.features_many`).
        features : DataFrame, optional
            The user's own columns, one row per decision (default: read from ``decisions``).

        Returns
        -------
        DataFrame
            Index of ``decisions``; columns ``action``, ``offer``, ``channel``, ``propensity``,
            ``offer_score``, ``model_version``, ``reasons`` and ``why_not`` (phrases joined by
            " | "), ``ev_<action>`` and ``p_<action>`` (the policy's probability of each action).
            Row by row the same as :meth:`decide_one`.
        """
        ms = self._c.ms
        if not isinstance(decisions, pd.DataFrame):
            raise ValidationError(f"decisions must be a pandas DataFrame, got {type(decisions).__name__}")
        spec = ms.feature_spec
        builtin = list(spec.builtin)
        parts = []
        if builtin and events is not None:
            at_cols = ["session_id", "ts"] + (["customer_id"] if "customer_id" in decisions.columns else [])
            parts.append(features_many(decisions[at_cols], events=events, customers=customers, contacts=contacts,
                                       with_profile=True,
                                       profile_config=ms.profile_config, limits=self.limits)[builtin]
                         .set_axis(decisions.index))
        elif builtin:
            missing = [n for n in builtin if n not in decisions.columns]
            if missing:
                raise ValidationError(f"decisions must hold the bundle's feature columns when events is None, "
                                      f"missing {missing[:5]}")
            parts.append(decisions[builtin])
        if spec.columns:
            own = decisions if features is None else features
            if len(own) != len(decisions):
                raise ValidationError(f"features must have one row per decision: expected {len(decisions)} rows, "
                                      f"got {len(own)}")
            parts.append(spec.transform(own).set_axis(decisions.index))
        X = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        language = [_lang_name(x) for x in X["language"].to_numpy(dtype=float)] if "language" in X.columns else None
        C = context_spec(ms.policy.channels).parse_many(decisions, language)
        sids = decisions["session_id"].tolist() if "session_id" in decisions.columns else [None] * len(decisions)
        ts = pd.to_numeric(decisions["ts"]).to_numpy(dtype=float) if "ts" in decisions.columns else np.zeros(len(X))
        return self._decide_frame(ms, X, C, sids, ts, decisions.index)

    def _decide_frame(self, ms: ModelSet, X: pd.DataFrame, C: pd.DataFrame, session_ids: Sequence[Any],
                      ts: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """The batch core: the same rules as :meth:`decide_one`, on arrays."""
        pol = ms.policy
        actions = pol.actions
        names = pol.channels.names
        n = len(X)
        ev = ms.expected_values(X, C)
        tau = ms.offer_model.predict(X)
        elig = eligibility_frame(pol, X, C)
        fixed = None if ms.constant_action is None else actions.index(ms.constant_action)
        if pol.exploration == "none":
            a = greedy_many(pol, ev, elig, fixed=fixed)
            probs = np.zeros((n, len(actions)))
            probs[np.arange(n), a] = 1.0
        else:
            a = np.zeros(n, dtype=int)
            probs = np.zeros((n, len(actions)))
            for i in range(n):  # the hash per decision point is per row anyway; choose() keeps it exact
                a[i], _, probs[i] = choose(pol, ev[i], elig[i], decision_uniform(self.seed, session_ids[i], ts[i]),
                                           fixed)
        prop = probs[np.arange(n), a]
        # reasons: contributions for the rows that get them only
        reasons = np.full(n, "", dtype=object)
        rows = np.flatnonzero(a != 0) if self.reasons == "offers" else np.arange(n)
        if fixed is not None:  # the guard fell back: every decision says so, and nothing else
            reasons[:] = guard_phrase(ms.constant_action)
        elif self.n_reasons and len(rows):
            feat_names = list(ms.offer_model.feature_names_)
            sub = X.iloc[rows]
            contrib = ms.offer_model.contributions(sub)
            vals = sub[feat_names].to_numpy(dtype=float)
            for i, texts in zip(rows, top_reasons_many(feat_names, vals, contrib[:, :-1], a[rows] != 0,
                                                       k=self.n_reasons, phrase_fn=ms.feature_spec.phraser(phrase))):
                reasons[i] = " | ".join(texts)
        why = _why_not_many(pol, X, C, elig)
        act = np.asarray(actions, dtype=object)[a]
        out = {"action": act, "offer": a != 0, "channel": np.where(a != 0, act, None), "propensity": prop,
               "offer_score": tau, "model_version": ms.version, "reasons": reasons, "why_not": why}
        out.update({f"ev_{x}": ev[:, j] for j, x in enumerate(actions)})
        out.update({f"p_{x}": probs[:, j] for j, x in enumerate(actions)})
        return pd.DataFrame(out, index=index)


def _why_not_many(pol: Any, X: pd.DataFrame, C: pd.DataFrame, elig: np.ndarray) -> np.ndarray:
    """Why-not texts per row, vectorised: the texts :func:`~nextchannel.policy.eligibility` gives.

    Rows whose every action is eligible get ""; the rest are built channel by channel with the same
    rules in the same order (contact rules first, then closed, opted out, language, device, wait);
    a property test holds the two equal.
    """
    n = len(X)
    why = np.full(n, "", dtype=object)
    todo = np.flatnonzero(~elig.all(axis=1))
    if not len(todo):
        return why
    names = pol.channels.names
    f = X.iloc[todo]
    Cs = C.iloc[todo]
    m = len(todo)

    def col(frame: pd.DataFrame, name: str, default: float) -> np.ndarray:
        return frame[name].to_numpy(dtype=float) if name in frame.columns else np.full(m, default)

    shown, since = col(f, "offers_shown", 0), col(f, "time_since_dismiss_s", np.nan)
    contacts = col(f, "contacts_started", 0)
    parts: list[np.ndarray] = []
    blocked = np.full(m, "", dtype=object)
    contact = (contacts > 0) if pol.no_offer_after_contact else np.zeros(m, bool)
    too_many = ~contact & (shown >= pol.max_offers_per_session)
    with np.errstate(invalid="ignore"):
        cooling = ~contact & ~too_many & ~np.isnan(since) & (since < pol.cooldown_after_dismiss_s)
    blocked[contact] = "all: a contact has already started in this session"
    blocked[too_many] = [f"all: {x:.0f} offers already shown (max {pol.max_offers_per_session} per session)"
                         for x in shown[too_many]]
    blocked[cooling] = [f"all: cooldown after a dismissal {x:,.0f} s ago" for x in since[cooling]]
    free = ~(contact | too_many | cooling)
    dev = col(f, "device", -1)
    lang = col(f, "language", -1)
    for ch in names:
        text = np.full(m, "", dtype=object)
        closed = ~(col(Cs, f"open_{ch}", 1) > 0)
        opted = ~closed & (col(f, f"prof_optout_{ch}", 0) >= 1)
        lang_bad = ~closed & ~opted & ~(col(Cs, f"lang_ok_{ch}", 1) > 0)
        bad_dev = [DEVICES.index(d) for d in pol.unsuitable_devices.get(ch, ())]
        dev_bad = ~closed & ~opted & ~lang_bad & np.isin(dev, bad_dev)
        limit = pol.wait_limit_s.get(ch)
        wait = col(Cs, f"wait_{ch}_s", 0)
        wait_bad = ~closed & ~opted & ~lang_bad & ~dev_bad & ((wait > limit) if limit is not None else False)
        text[closed] = f"{ch}: closed"
        text[opted] = f"{ch}: customer opted out"
        text[lang_bad] = [f"{ch}: language {_lang_name(x)!r} not served" for x in lang[lang_bad]]
        text[dev_bad] = [f"{ch}: not offered on {_dev_name(x)}" for x in dev[dev_bad]]
        if limit is not None:
            text[wait_bad] = [f"{ch}: wait {x:,.0f} s over the {limit:,.0f} s limit" for x in wait[wait_bad]]
        text[~free] = ""
        parts.append(text)
    joined = [" | ".join(p for p in row if p) for row in zip(*parts)]
    why[todo] = np.where(free, np.asarray(joined, dtype=object), blocked)
    return why


def _dev_name(code: float) -> str | None:
    i = int(code) if code == code else -1
    return DEVICES[i] if 0 <= i < len(DEVICES) else None


def _lang_name(code: float) -> str | None:
    i = int(code) if code == code else -1
    return LANGUAGES[i] if 0 <= i < len(LANGUAGES) else None
