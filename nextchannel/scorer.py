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
from nextchannel.explain import top_reasons
from nextchannel.features import SESSION_FEATURES, SessionState, features_many
from nextchannel.modelset import DEFAULT_BUNDLE, ModelSet
from nextchannel.policy import Decision, choose, eligibility
from nextchannel.profile import profile_one
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

    def __init__(self, model_set: ModelSet, *, strict: bool = False, seed: int = 0, n_reasons: int = 3) -> None:
        self._ms = model_set
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
        ms = ModelSet.load(path)
        if ms.feature_names != self._ms.feature_names:
            logger.info("reloaded bundle has a different feature schema; requests adapt")
        self._ms = ms  # one reference assignment: atomic under the GIL

    @property
    def model_set(self) -> ModelSet:
        return self._ms

    @property
    def actions(self) -> tuple[str, ...]:
        return self._ms.actions

    @property
    def model_version(self) -> str:
        return self._ms.version

    # -- per request ----------------------------------------------------------------------------
    def decide_one(self, session: Any, customer: Mapping[str, Any] | None = None,
                   context: Mapping[str, Any] | None = None, now: float | None = None) -> Decision:
        """Decide for one decision point.

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
        ms = self._ms
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
        ms = self._ms
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
        contrib = ms.offer_model.contributions(X) if self.n_reasons else None
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
            if contrib is not None:
                reasons = tuple(top_reasons(feat_names, f[i_feat].tolist(), contrib[i, :-1],
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
