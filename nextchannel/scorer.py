"""The in-process scorer: load a model bundle once, decide per request or for a whole log.

Where it sits: bundle → **scorer** → Decision → logs. A web backend holds one :class:`Scorer`
and calls :meth:`Scorer.decide_one` on each request; a job or notebook calls
:meth:`Scorer.decide_many` on a decision log. Both go through one private core
(:meth:`Scorer._decide_rows`), so they give the same answers row by row.

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

from nextchannel.errors import NextChannelError, ValidationError
from nextchannel.fastpredict import FastBooster
from nextchannel.explain import top_reasons
from nextchannel.features import SESSION_FEATURES, SessionState, features_many
from nextchannel.modelset import DEFAULT_BUNDLE, ModelSet
from nextchannel.policy import Decision, choose, eligibility
from nextchannel.profile import profile_into, profile_one
from nextchannel.schema import DEVICES, LANGUAGES, NONE_ACTION
from nextchannel.train import context_frame

__all__ = ["Scorer", "decision_uniform"]

logger = logging.getLogger(__name__)


def decision_uniform(seed: int, session_id: Any, ts: float) -> float:
    """A uniform number in [0, 1) determined by the decision point (for reproducible exploration)."""
    h = hashlib.blake2b(f"{seed}|{session_id}|{float(ts)!r}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def _context_row(context: Mapping[str, Any] | None, channels: Sequence[str], language: str | None) -> dict[str, float]:
    """Flat per-request channel context (``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>``) with defaults.

    Accepts the flat keys of a decision log, or per channel ``languages_<ch>`` (languages served),
    or a nested ``{"chat": {"open": True, "wait_s": 40, "languages": ["en"]}}``.
    """
    ctx = dict(context or {})
    row: dict[str, float] = {}
    for ch in channels:
        nested = ctx.get(ch) if isinstance(ctx.get(ch), Mapping) else {}
        is_open = nested.get("open", ctx.get(f"open_{ch}", True))
        wait = nested.get("wait_s", ctx.get(f"wait_{ch}_s", 0.0))
        langs = nested.get("languages", ctx.get(f"languages_{ch}"))
        lang_ok = ctx.get(f"lang_ok_{ch}", True) if langs is None else (language is None or language in langs)
        row[f"open_{ch}"] = 1.0 if bool(is_open) else 0.0
        w = float(wait)
        if not math.isfinite(w) or w < 0:
            raise ValidationError(f"wait_s for channel {ch!r} must be a finite number >= 0, got {wait!r}")
        row[f"wait_{ch}_s"] = w
        row[f"lang_ok_{ch}"] = 1.0 if bool(lang_ok) else 0.0
    return row


def _context_lists(context: Mapping[str, Any] | None, channels: Sequence[str],
                   language: str | None) -> tuple[list[bool], list[float], list[bool]]:
    """Per-channel (open, wait_s, language served) from a request's context (see :func:`_context_row`)."""
    if not context:
        k = len(channels)
        return [True] * k, [0.0] * k, [True] * k
    row = _context_row(context, channels, language)
    return ([row[f"open_{c}"] > 0 for c in channels], [row[f"wait_{c}_s"] for c in channels],
            [row[f"lang_ok_{c}"] > 0 for c in channels])


def _context_fast(c: "_Compiled", context: Mapping[str, Any] | None,
                  language: str | None) -> tuple[list[bool], list[float], list[bool]]:
    """:func:`_context_lists` for the flat form without building intermediate dicts."""
    if not context:
        k = len(c.channels)
        return [True] * k, [0.0] * k, [True] * k
    if not c.channel_set.isdisjoint(context):  # nested form: the general parser
        return _context_lists(context, c.channels, language)
    get = context.get
    open_, wait, lang_ok = [], [], []
    for (ko, kw, kl, kls), ch in zip(c.ctx_keys, c.channels):
        open_.append(bool(get(ko, True)))
        w = get(kw, 0.0)
        wf = float(w)
        if wf - wf != 0.0 or wf < 0:
            raise ValidationError(f"wait_s for channel {ch!r} must be a finite number >= 0, got {w!r}")
        wait.append(wf)
        langs = get(kls)
        lang_ok.append(bool(get(kl, True)) if langs is None else (language is None or language in langs))
    return open_, wait, lang_ok


class _Compiled:
    """A model set prepared for the per-request path: fast boosters, layouts, policy constants.

    Immutable once built; the scorer swaps a whole ``_Compiled`` on reload, so a request that
    took a reference sees one model set from start to end. Per-thread buffers and predictors live
    in ``self.local`` (a FastConfig handle serialises calls, so each thread gets its own).
    """

    def __init__(self, ms: ModelSet) -> None:
        self.ms = ms
        names = list(ms.feature_names)
        n_sess = len(SESSION_FEATURES)
        if tuple(names[:n_sess]) != SESSION_FEATURES:
            raise ValidationError("the bundle's features do not start with this library's session features; "
                                  "retrain the bundle with this version")
        self.n_features = len(names)
        self.n_session = n_sess
        self.profile_offset = n_sess
        vm = ms.value_model
        self.ctx_names = list(vm.context_features_)
        self.n_row = len(names) + len(self.ctx_names)
        self.index = {n: i for i, n in enumerate(names)}
        pol = ms.policy
        self.actions = pol.actions
        self.channels = pol.channels.names
        self.value = [FastBooster(b.model_to_string()) for b in vm.boosters_]
        self.offer = FastBooster(ms.offer_model.booster_.model_to_string())
        self.offer_contrib = FastBooster(ms.offer_model.booster_.model_to_string(), predict_type="contrib")
        self.offer_features = list(ms.offer_model.feature_names_)
        if self.offer_features != names:
            raise ValidationError("the offer model's features differ from the value model's")
        self.i_device, self.i_language = self.index["device"], self.index["language"]
        self.i_shown, self.i_since_dismiss = self.index["offers_shown"], self.index["time_since_dismiss_s"]
        self.i_contacts = self.index["contacts_started"]
        self.i_optout = [self.index.get(f"prof_optout_{c}") for c in self.channels]
        self.ctx_keys = [(f"open_{c}", f"wait_{c}_s", f"lang_ok_{c}", f"languages_{c}") for c in self.channels]
        self.channel_set = frozenset(self.channels)
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
        for fb in (*self.value, self.offer, self.offer_contrib):
            fb.close()


class _ThreadState:
    __slots__ = ("row", "feat", "ev_out", "value_p", "offer_out", "offer_p", "contrib_out", "contrib_p")

    def __init__(self, c: _Compiled) -> None:
        self.row = np.full(c.n_row, np.nan)
        self.feat = self.row[: c.n_features]            # a view: the offer model reads the prefix
        self.ev_out = [np.zeros(1) for _ in c.value]
        self.value_p = [fb.bind(self.row, o).predict for fb, o in zip(c.value, self.ev_out)]
        self.offer_out = np.zeros(1)
        self.offer_p = c.offer.bind(self.feat, self.offer_out).predict
        self.contrib_out = np.zeros(c.n_features + 1)
        self.contrib_p = c.offer_contrib.bind(self.feat, self.contrib_out).predict


def _choose_fast(margin: float, exploration: str, epsilon: float, temperature: float, ev: list[float],
                 ok: list[bool], u: float) -> tuple[int, float]:
    """Pure-Python twin of :func:`nextchannel.policy.choose` (same action and probability)."""
    n = len(ev)
    ev0 = ev[0]
    best, best_gain = 0, -math.inf
    for j in range(1, n):
        if ok[j]:
            g = ev[j] - ev0
            if g > best_gain:
                best, best_gain = j, g
    greedy = best if best and best_gain > margin else 0
    if exploration == "none":
        return greedy, 1.0
    if exploration == "epsilon":
        k = sum(ok)
        probs = [(epsilon / k if ok[j] else 0.0) for j in range(n)]
        probs[greedy] += 1.0 - epsilon
    else:
        gains = [margin] + [(ev[j] - ev0) if ok[j] else -math.inf for j in range(1, n)]
        top = max(g for g, o in zip(gains, ok) if o) / temperature
        w = [math.exp(g / temperature - top) if ok[j] else 0.0 for j, g in enumerate(gains)]
        tot = math.fsum(w)
        probs = [x / tot for x in w]
    # same draw as choose(): cumulative sums in numpy's order
    cum = np.cumsum(probs)
    idx = min(int(np.searchsorted(cum, u * cum[-1], side="right")), n - 1)
    while probs[idx] == 0.0:
        idx -= 1
    return idx, float(probs[idx])


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
                 reasons: str = "offers") -> None:
        if reasons not in ("offers", "all"):
            raise ValidationError(f"reasons must be 'offers' or 'all', got {reasons!r}")
        self.reasons = reasons
        self._c = _Compiled(model_set)
        self.strict = strict
        self.seed = seed
        self.n_reasons = n_reasons
        self.fallbacks: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs: Any) -> "Scorer":
        """Load a bundle (default: ``models/default`` shipped with the package)."""
        return cls(ModelSet.load(path if path is not None else DEFAULT_BUNDLE), **kwargs)

    def reload(self, path: str | Path) -> None:
        """Swap in another bundle atomically: a request sees either the old set or the new one."""
        compiled = _Compiled(ModelSet.load(path))
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
    def decide_one(self, session: Any, customer: Mapping[str, Any] | None = None,
                   context: Mapping[str, Any] | None = None, now: float | None = None) -> Decision:
        """Decide for one decision point (the fast path: no pandas, no per-call arrays).

        Parameters
        ----------
        session : SessionState, or a dict
            A :class:`~nextchannel.features.SessionState`, or ``{"session_id": ..., "events": [...]}``
            (replayed), or a dict of session feature values by name (what a backend that computes
            its own signals holds; missing features count as missing; ``ts`` or ``now`` gives the time).
        customer : dict, optional
            The request-time customer dict of :func:`nextchannel.profile.profile_one`.
        context : dict, optional
            Per-request channel context: ``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>`` or
            ``languages_<ch>``, or nested ``{"chat": {"open": ..., "wait_s": ..., "languages": [...]}}``
            (defaults: open, no wait, language served).
        now : float, optional
            Decision time in seconds (default: the session's last event).

        Returns
        -------
        Decision
            Never raises on malformed signals unless ``strict``: a safe ``none`` decision whose
            ``fallback`` says why (counted in :attr:`fallbacks`).
        """
        c = self._c  # one reference for the whole request: reload cannot mix two model sets
        try:
            st = c.buffers()
            row = st.row
            if isinstance(session, SessionState):
                sid = session.session_id
                now_ts = session._now(now)
                if now_ts - now_ts != 0.0:
                    raise ValidationError(f"now must be a finite number of seconds, got {now!r}")
                session.features_into(row, now_ts, 0)
            elif isinstance(session, Mapping) and "events" in session:
                state = SessionState(session.get("session_id"), strict=self.strict)
                state.update_many(session["events"])
                sid, now_ts = state.session_id, state._now(now)
                if now_ts - now_ts != 0.0:
                    raise ValidationError(f"now must be a finite number of seconds, got {now!r}")
                state.features_into(row, now_ts, 0)
            elif isinstance(session, Mapping):
                sid = session.get("session_id")
                now_ts = float(now if now is not None else session.get("ts", math.nan))
                if now_ts - now_ts != 0.0:
                    raise ValidationError(f"now must be a finite number of seconds for a feature dict, got {now!r}")
                get = session.get
                for i, name in enumerate(SESSION_FEATURES):
                    row[i] = float(get(name, math.nan))
            else:
                raise ValidationError(f"session must be a SessionState or a dict, got {type(session).__name__}")
            profile_into(row, c.profile_offset, customer, now_ts, c.ms.profile_config, strict=self.strict)
            f = row  # feature values, read back as Python floats below
            lang = _lang_name(f[c.i_language])
            open_, wait, lang_ok = _context_fast(c, context, lang)
            base = c.n_features
            for j in range(len(c.channels)):
                row[base + 3 * j] = 1.0 if open_[j] else 0.0
                row[base + 3 * j + 1] = wait[j]
                row[base + 3 * j + 2] = 1.0 if lang_ok[j] else 0.0
            ev = [p()[0] for p in st.value_p]
            tau = st.offer_p()[0]
        except (NextChannelError, TypeError, ValueError, KeyError, AttributeError, OverflowError) as err:
            if self.strict:
                raise
            return self._fallback(c.ms, f"malformed signals: {err}")
        pol = c.ms.policy
        opted = [j is not None and f[j] >= 1 for j in c.i_optout]
        ok, why = eligibility(pol, device=_dev_name(f[c.i_device]), language=lang, offers_shown=f[c.i_shown],
                              time_since_dismiss_s=f[c.i_since_dismiss], contacts_started=f[c.i_contacts],
                              open_=open_, wait_s=wait, lang_ok=lang_ok, opted_out=opted)
        u = decision_uniform(self.seed, sid, now_ts) if pol.exploration != "none" else 0.0
        a, prop = _choose_fast(pol.offer_margin, pol.exploration, pol.epsilon, pol.temperature, ev, ok, u)
        reasons: tuple[str, ...] = ()
        if self.n_reasons and (a != 0 or self.reasons == "all"):
            contrib = st.contrib_p()
            reasons = tuple(top_reasons(c.offer_features, st.feat.tolist(), contrib[:-1].tolist(), offer=a != 0,
                                        k=self.n_reasons))
        action = c.actions[a]
        return Decision(action=action, offer=a != 0, channel=None if a == 0 else action,
                        ev=dict(zip(c.actions, ev)), offer_score=float(tau), propensity=prop,
                        model_version=c.ms.version, reasons=reasons, why_not=tuple(why))

    # -- per request ----------------------------------------------------------------------------
    def decide_one_plain(self, session: Any, customer: Mapping[str, Any] | None = None,
                   context: Mapping[str, Any] | None = None, now: float | None = None) -> Decision:
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
        """
        ms = self._c.ms
        try:
            feats, sid, now_ts = self._session_features(session, now)
            feats.update(profile_one(customer, now_ts, ms.profile_config))
            language = _lang_name(feats.get("language", -1.0))
            ctx = _context_row(context, ms.policy.channels.names, language)
            X = pd.DataFrame([[feats.get(n, math.nan) for n in ms.feature_names]], columns=list(ms.feature_names))
            C = pd.DataFrame([ctx])
            rows = self._decide_rows(ms, X, C, [sid], [now_ts])
            return rows[0]
        except (NextChannelError, TypeError, ValueError, KeyError, AttributeError) as err:
            if self.strict:
                raise
            return self._fallback(ms, f"malformed signals: {err}")

    def _fallback(self, ms: ModelSet, why: str) -> Decision:
        with self._lock:
            self.fallbacks[why.split(":")[0]] += 1
        logger.debug("safe fallback decision: %s", why)
        return Decision(action=NONE_ACTION, offer=False, channel=None, ev={a: math.nan for a in ms.actions},
                        offer_score=math.nan, propensity=1.0, model_version=ms.version, fallback=why)

    def _session_features(self, session: Any, now: float | None) -> tuple[dict[str, float], Any, float]:
        if isinstance(session, SessionState):
            st = session
        elif isinstance(session, Mapping) and "events" in session:
            st = SessionState(session.get("session_id"), strict=self.strict)
            st.update_many(session["events"])
        elif isinstance(session, Mapping):
            feats = {k: float(v) for k, v in session.items() if k in SESSION_FEATURES}
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
    def decide_many(self, decisions: pd.DataFrame, events: pd.DataFrame, customers: pd.DataFrame | None = None,
                    contacts: pd.DataFrame | None = None) -> pd.DataFrame:
        """Decide at every decision point of a log (point-in-time features from ``events``).

        Returns a DataFrame with the index of ``decisions`` and columns ``action``, ``offer``,
        ``channel``, ``propensity``, ``offer_score``, ``ev_<action>`` and ``p_<action>`` (the
        policy's probability of each action), ``reasons`` and ``why_not`` (phrases joined by " | ").
        """
        ms = self._c.ms
        at_cols = ["session_id", "ts"] + (["customer_id"] if "customer_id" in decisions.columns else [])
        X = features_many(events, decisions[at_cols], customers, contacts, with_profile=True,
                          profile_config=ms.profile_config)[list(ms.feature_names)]
        C = context_frame(decisions, ms.policy.channels)
        out = self._decide_rows(ms, X, C, decisions["session_id"].tolist(), decisions["ts"].astype(float).tolist(),
                                with_probs=True)
        recs = []
        for d, probs in out:
            rec = {"action": d.action, "offer": d.offer, "channel": d.channel, "propensity": d.propensity,
                   "offer_score": d.offer_score, "model_version": d.model_version,
                   "reasons": " | ".join(d.reasons), "why_not": " | ".join(d.why_not)}
            rec.update({f"ev_{a}": d.ev[a] for a in ms.actions})
            rec.update({f"p_{a}": float(p) for a, p in zip(ms.actions, probs)})
            recs.append(rec)
        return pd.DataFrame(recs, index=decisions.index)

    # -- the shared core ----------------------------------------------------------------------------
    def _decide_rows(self, ms: ModelSet, X: pd.DataFrame, C: pd.DataFrame, session_ids: Sequence[Any],
                     ts: Sequence[float], with_probs: bool = False) -> list[Any]:
        pol = ms.policy
        names = pol.channels.names
        ev = ms.expected_values(X, C)
        tau = ms.offer_model.predict(X)
        contrib = ms.offer_model.contributions(X) if self.n_reasons else None  # TODO only offered rows
        feat_names = list(ms.offer_model.feature_names_)
        Xv = X.to_numpy(dtype=float, na_value=np.nan)
        col = {n: i for i, n in enumerate(X.columns)}
        Cv = C.to_numpy(dtype=float)
        ccol = {n: i for i, n in enumerate(C.columns)}
        i_open = [ccol[f"open_{c}"] for c in names]
        i_wait = [ccol[f"wait_{c}_s"] for c in names]
        i_lang = [ccol[f"lang_ok_{c}"] for c in names]
        i_opt = [col.get(f"prof_optout_{c}") for c in names]
        i_feat = [col[n] for n in feat_names]
        out: list[Any] = []
        for i in range(len(X)):
            f = Xv[i]
            ok, why = eligibility(
                pol, device=_dev_name(f[col["device"]]), language=_lang_name(f[col["language"]]),
                offers_shown=f[col["offers_shown"]], time_since_dismiss_s=f[col["time_since_dismiss_s"]],
                contacts_started=f[col["contacts_started"]],
                open_=Cv[i, i_open] > 0, wait_s=Cv[i, i_wait], lang_ok=Cv[i, i_lang] > 0,
                opted_out=[j is not None and f[j] >= 1 for j in i_opt])
            u = decision_uniform(self.seed, session_ids[i], ts[i])
            a, p, probs = choose(pol, ev[i], ok, u)
            action = pol.actions[a]
            reasons: tuple[str, ...] = ()
            if contrib is not None and (a != 0 or self.reasons == "all"):
                reasons = tuple(top_reasons(feat_names, f[i_feat].tolist(), contrib[i, :-1].tolist(),
                                            offer=a != 0, k=self.n_reasons))
            d = Decision(action=action, offer=a != 0, channel=None if a == 0 else action,
                         ev={act: float(v) for act, v in zip(pol.actions, ev[i])}, offer_score=float(tau[i]),
                         propensity=p, model_version=ms.version, reasons=reasons, why_not=tuple(why))
            out.append((d, probs) if with_probs else d)
        return out


def _dev_name(code: float) -> str | None:
    i = int(code) if code == code else -1
    return DEVICES[i] if 0 <= i < len(DEVICES) else None


def _lang_name(code: float) -> str | None:
    i = int(code) if code == code else -1
    return LANGUAGES[i] if 0 <= i < len(LANGUAGES) else None
