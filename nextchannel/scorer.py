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

import functools
import hashlib
import logging
import math
import threading
from collections import Counter
from pathlib import Path
from types import CodeType
from collections.abc import Mapping  # not typing.Mapping: isinstance on it is slow
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from nextchannel.compat import lazy_module
from nextchannel.context import context_spec
from nextchannel.conventions import accepts_old_form
from nextchannel.errors import NextChannelError, ValidationError, excerpt
from nextchannel.explain import PathContributions, phrase, top_reasons_many, top_reasons_one
from nextchannel.fastpredict import ModelStack
from nextchannel.features import SESSION_FEATURES, SessionState, features_many
from nextchannel.modelset import DEFAULT_BUNDLE, ModelSet, guard_phrase
from nextchannel.policy import (Decision, EligibilityRules, _new_decision, choose, choose_many, code_name, greedy_many,
                                greedy_one, runner_up_many, runner_up_one)
from nextchannel.profile import (PreparedProfile, _max_contacts, _profile_core, _resolve_config, prepare_one, profile_into,
                                 profile_one)
from nextchannel.schema import DEVICES, LANGUAGES, NONE_ACTION, Limits, canonical_id

if TYPE_CHECKING:
    import pandas as pd
else:  # imported when a batch path first uses it: the per-request path never does
    pd = lazy_module("pandas")

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
    """A model set prepared for the per-request path: one model stack, layouts, policy rules.

    Immutable once built; the scorer swaps a whole ``_Compiled`` on reload, so a request that
    took a reference sees one model set from start to end. Per-thread buffers and predictors live
    in ``self.local`` (a FastConfig handle serialises calls, so each thread gets its own).

    The value models (one per action) and the offer model are evaluated as one
    :class:`~nextchannel.fastpredict.ModelStack`: one C call per request, one per batch. The row
    is [built-in session + profile features] [the user's columns] [channel context]; the offer
    model reads its prefix.
    """

    def __init__(self, ms: ModelSet) -> None:
        self.ms = ms
        names = list(ms.feature_names)
        spec = ms.feature_spec
        n_sess = len(SESSION_FEATURES)
        self.web = bool(spec.builtin)
        if self.web and tuple(names[:n_sess]) != SESSION_FEATURES:
            raise ValidationError("the bundle's built-in features do not start with this library's session features; "
                                  "retrain the bundle with this version")
        self.names = names
        self.n_features = len(names)
        self.n_builtin = len(spec.builtin)
        self.n_session = n_sess if self.web else 0
        self.profile_offset = self.n_session
        self.user_offset = self.n_builtin
        self.user_encoders = [col.encode for col in spec.columns]
        self.user_names = list(spec.names)
        self.phrase = spec.phraser(phrase)
        self.ctx_names = list(ms.context_features)
        self.row_names = tuple(names + self.ctx_names)   # what the value models read, in order
        self.n_row = len(self.row_names)
        self.index = {n: i for i, n in enumerate(names)}
        pol = ms.policy
        self.policy = pol
        self.actions = pol.actions
        self.n_actions = len(self.actions)
        self.channels = pol.channels.names
        self.constant = None if ms.constant_action is None else self.actions.index(ms.constant_action)
        self.constant_reasons = () if ms.constant_action is None else (guard_phrase(ms.constant_action),)
        if list(ms.offer_feature_names) != names:
            raise ValidationError("the offer model's features differ from the value model's")
        self.stack = ModelStack([*ms.value_texts, ms.offer_text])
        self.paths = PathContributions(self.stack.text, self.stack.num_models, self.n_row)
        self.rules = EligibilityRules(pol)
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
        self.profile_layout = _resolve_config(ms.profile_config)._layout if self.web else None
        self.profile_values = anon.tolist()
        self.default_context = np.tile([1.0, 0.0, 1.0], len(self.channels))
        self.default_lists = ([True] * len(self.channels), [0.0] * len(self.channels), [True] * len(self.channels))
        self.local = threading.local()

    def buffers(self) -> "_ThreadState":
        """This thread's row buffer and predictors (created on first use in the thread)."""
        loc = self.local
        st = getattr(loc, "st", None)
        if st is None:
            st = _ThreadState(self)
            loc.st = st
        return st

    def matrix(self, X: pd.DataFrame, C: pd.DataFrame) -> np.ndarray:
        """The batch rows: features then the channel context, float64, C order."""
        M = np.empty((len(X), self.n_row))
        M[:, :self.n_features] = X[self.names].to_numpy(dtype=float, na_value=np.nan)
        M[:, self.n_features:] = C[self.ctx_names].to_numpy(dtype=float, na_value=np.nan)
        return M

    def reasons_many(self, M: np.ndarray, ev: np.ndarray, eligible: np.ndarray, chosen: np.ndarray, k: int,
                     num_threads: int = 1) -> list[list[str]]:
        """The reasons of decisions (rows of ``M``): the value models' path contributions to
        ``EV(chosen) − EV(runner-up)`` (:func:`~nextchannel.policy.runner_up_many`), in words.

        The batch executor of :meth:`explain_one`: the same two models' leaves per row
        (:meth:`~nextchannel.fastpredict.ModelStack.pair_leaves_many`), the same sums
        (:meth:`~nextchannel.explain.PathContributions.difference_pairs`), equal bit for bit.
        """
        out: list[list[str]] = [[] for _ in range(len(M))]
        rival = runner_up_many(self.policy, ev, eligible, chosen)
        rows = np.flatnonzero(rival >= 0)
        if not len(rows) or not k:
            return out
        first, second = chosen[rows], rival[rows]
        leaves = self.stack.pair_leaves_many(M[rows], first, second, num_threads)
        contrib = self.paths.difference_pairs(leaves, first, second)
        texts = top_reasons_many(self.row_names, M[rows], contrib, np.ones(len(rows), dtype=bool), k=k,
                                 phrase_fn=self.phrase)
        for i, t in zip(rows, texts):
            out[i] = t
        return out

    def explain_one(self, row: np.ndarray, ev: list[float], eligible: list[bool], chosen: int, k: int) -> list[str]:
        """A lazy ``Decision.reasons``: :meth:`reasons_many` on the decision's own row, equal bit for bit.

        Walks only the two value models it compares (chosen and runner-up), each through its own
        single-row leaf predictor, in the thread that reads the reasons. It never raises into the
        caller (the web path): a failure is logged and gives no reasons.
        """
        try:
            rival = runner_up_one(self.policy.offer_margin, ev, eligible, chosen)
            if rival < 0 or not k:
                return []
            st = self.buffers()
            st.leaf_row[:] = row
            contrib = self.paths.difference_one(st.pair_leaves(self, chosen, rival), chosen, rival)
            return top_reasons_one(self.row_names, row, contrib, k=k, phrase_fn=self.phrase)
        except Exception:
            logger.error("could not compute a decision's reasons; giving none", exc_info=True)
            return []

    def close(self) -> None:
        stack = getattr(self, "stack", None)
        if stack is not None:
            stack.close()

    def __del__(self) -> None:
        # Reached when the last request (or lazy reasons) holding this model set has finished after a
        # reload (nothing here refers back to self): free the LightGBM handles now. Left to themselves
        # they would wait for a full garbage-collector pass, as each FastBooster sits in a reference
        # cycle through its per-thread state.
        try:
            self.close()
        except Exception:  # interpreter shutdown  # pragma: no cover
            pass


class _ThreadState:
    __slots__ = ("row", "session_view", "out", "stack_p", "leaf_row", "leaf_pair", "leaf_preds")

    def __init__(self, c: _Compiled) -> None:
        # no reference back to c: the per-thread state must not keep a replaced model set alive
        self.row = np.full(c.n_row, np.nan)
        self.session_view = self.row[: c.n_session]     # a view: the session features
        self.out = np.zeros(c.stack.num_models)
        self.stack_p = c.stack.raw.bind(self.row, self.out).predict
        self.leaf_row = np.full(c.n_row, np.nan)
        # the leaves of two value models' trees (chosen, runner-up), each padded to the stack's trees per model
        self.leaf_pair = np.zeros(2 * c.stack.num_iterations)
        self.leaf_preds: dict[tuple[int, int], Any] = {}

    def pair_leaves(self, c: _Compiled, first: int, second: int) -> np.ndarray:
        """:attr:`leaf_pair` for :attr:`leaf_row`: the leaf of each tree of value model ``first``, then of ``second``."""
        for half, m in ((0, first), (1, second)):
            p = self.leaf_preds.get((m, half))
            if p is None:  # a predictor writing straight into its half (a shorter model leaves zeros after it)
                fb = c.stack.parts("leaf")[m]
                start = half * c.stack.num_iterations
                p = fb.bind(self.leaf_row, self.leaf_pair[start:start + fb.num_outputs]).predict
                self.leaf_preds[(m, half)] = p
            p()
        return self.leaf_pair


_PART_OF_STEP: dict[CodeType, str] = {}


def _step(part: str) -> Any:
    """Name a step of ``decide_one`` by the argument it reads (named in fallbacks and strict errors).

    The step itself runs unwrapped (a wrapper with its own ``try`` cost ~0.3 µs per step on every
    request); when a request fails, :func:`_failed_part` finds the step in the traceback.
    """
    def mark(fn: Any) -> Any:
        _PART_OF_STEP[fn.__code__] = part
        return fn
    return mark


def _failed_part(err: BaseException) -> str:
    """The part a failure of ``decide_one`` was reading: the step called from ``decide_one`` it came out of."""
    tb = err.__traceback__
    called = tb.tb_next if tb is not None else None   # tb is decide_one's own frame
    if called is None:
        return "request"
    return _PART_OF_STEP.get(called.tb_frame.f_code, "request")


_NANS = (math.nan,) * len(SESSION_FEATURES)
_isinf, _count_nonzero = np.isinf, np.count_nonzero


def _finite_now(now_ts: float, now: Any, what: str = "") -> float:
    if now_ts - now_ts != 0.0:
        raise ValidationError(f"now must be a finite number of seconds{what}, got {now!r}")
    return now_ts


@_step("session")
def _session_source(scorer: "Scorer", c: _Compiled, session: Any) -> Any:
    """The session as a SessionState (an events dict is replayed) or a feature dict."""
    if type(session) is dict and "events" not in session:
        return session
    if isinstance(session, SessionState):
        return session
    if isinstance(session, Mapping) and "events" in session:
        state = SessionState(session.get("session_id"), strict=scorer.strict, channels=c.ms.policy.channels,
                             limits=scorer.limits)
        state.update_many(_event_list(session["events"]))
        return state
    if isinstance(session, Mapping):
        return session
    raise ValidationError(f"session must be a SessionState or a dict, got {type(session).__name__}")


@_step("now")
def _session_time(src: Any, now: Any) -> tuple[Any, float]:
    """(session id, decision time) of a SessionState or a feature dict."""
    if isinstance(src, SessionState):
        return src.session_id, _finite_now(src._now(now), now)
    return src.get("session_id"), _finite_now(float(now if now is not None else src.get("ts", math.nan)), now,
                                              " for a feature dict")


@_step("session")
def _write_session(c: _Compiled, st: _ThreadState, src: Any, now_ts: float) -> None:
    row = st.row
    if isinstance(src, SessionState):
        src.features_into(row, now_ts, 0)
        return
    get = src.get
    head = st.session_view
    try:  # one conversion for the whole vector; the loop below only explains a failure
        head[:] = list(map(get, SESSION_FEATURES, _NANS))
        clean = not _count_nonzero(_isinf(head))
    except (TypeError, ValueError, OverflowError):
        clean = False
    if not clean:
        for i, name in enumerate(SESSION_FEATURES):
            row[i] = _feature_value(name, get(name, math.nan))


@_step("customer")
def _write_customer(scorer: "Scorer", c: _Compiled, row: np.ndarray, customer: Any, now_ts: float) -> None:
    if customer is None:
        row[c.profile_offset:c.n_builtin] = c.anon_profile
    else:  # profile_into's core without its argument checks (the layout and the row are the scorer's own);
        # into a list, then one slice write: element writes into a numpy array cost ~80 ns each
        values = c.profile_values[:]
        _profile_core(customer, now_ts, c.profile_layout, scorer.strict, values, 0, _max_contacts(scorer.limits))
        row[c.profile_offset:c.n_builtin] = values


@_step("features")
def _own_source(c: _Compiled, own: Any, now: Any) -> tuple[Any, float]:
    """(session id, decision time) of a bundle without web features, from the user's feature dict."""
    if not isinstance(own, Mapping):
        raise ValidationError(f"features must be a dict of the bundle's columns (e.g. {c.user_names[:3]}), "
                              f"got {type(own).__name__}")
    return own.get("session_id"), _finite_now(float(now if now is not None else own.get("ts", 0.0)), now)


@_step("features")
def _write_own(c: _Compiled, row: np.ndarray, own: Any) -> None:
    get = (own if own is not None else {}).get
    off = c.user_offset
    for i, (enc, name) in enumerate(zip(c.user_encoders, c.user_names)):
        row[off + i] = enc(get(name))


@_step("context")
def _write_context(c: _Compiled, row: np.ndarray, context: Any) -> tuple[list[bool], list[float], list[bool]]:
    """Parse the channel context into the row's tail; (open, wait_s, language served) per channel."""
    base = c.n_features
    if not context:
        row[base:] = c.default_context
        return c.default_lists
    usual = c.ctx_spec.usual_one(context)   # needs no language: no row read, no code lookup
    open_, wait, lang_ok = usual if usual is not None else \
        c.ctx_spec.parse_one(context, _lang_name(row[c.i_language]) if c.web else None)
    tail = row[base:]   # (open, wait_s, language served) per channel; numpy writes a bool as 1.0 / 0.0
    tail[0::3], tail[1::3], tail[2::3] = open_, wait, lang_ok
    return open_, wait, lang_ok


@_step("models")
def _evaluate(c: _Compiled, st: _ThreadState) -> list[float]:
    """Every action's EV then the offer score, plain floats (one C call for all the models)."""
    return c.stack.finish_one(st.stack_p())


@_step("policy")
def _eligible(c: _Compiled, row: np.ndarray, ctx: tuple[list[bool], list[float], list[bool]]
              ) -> tuple[list[bool], list[str]]:
    open_, wait, lang_ok = ctx
    f = row.tolist()  # plain floats: Python compares them faster than numpy scalars
    opted = [0.0 if j is None else f[j] for j in c.i_optout]
    if c.web:
        return c.rules.check(f[c.i_device], f[c.i_language], f[c.i_shown], f[c.i_since_dismiss], f[c.i_contacts],
                             open_, wait, lang_ok, opted)
    # no session: the contact rules have nothing to block on
    return c.rules.check(-1.0, -1.0, 0.0, math.nan, 0.0, open_, wait, lang_ok, opted)


def _eligible_many(c: _Compiled, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_eligible` for the rows of a batch matrix (features then the channel context), vectorised:
    the inputs are the columns the per-request step reads from its row."""
    n = len(M)
    tail = M[:, c.n_features:]
    opted = np.column_stack([np.zeros(n) if j is None else M[:, j] for j in c.i_optout])
    if c.web:
        session = dict(device=M[:, c.i_device], language=M[:, c.i_language], offers_shown=M[:, c.i_shown],
                       time_since_dismiss_s=M[:, c.i_since_dismiss], contacts_started=M[:, c.i_contacts])
    else:  # no session: the contact rules have nothing to block on
        session = dict(device=np.full(n, -1.0), language=np.full(n, -1.0), offers_shown=np.zeros(n),
                       time_since_dismiss_s=np.full(n, math.nan), contacts_started=np.zeros(n))
    return c.rules.many(**session, open_=tail[:, 0::3], wait_s=tail[:, 1::3], lang_ok=tail[:, 2::3], opted_out=opted)


@_step("policy")
def _choose(scorer: "Scorer", c: _Compiled, ev: list[float], ok: list[bool], sid: Any, now_ts: float
            ) -> tuple[int, float]:
    pol = c.policy
    if pol.exploration == "none":
        return greedy_one(pol.offer_margin, ev, ok, c.constant), 1.0
    # the vectorised choose() itself, so that the logged propensity is bit-identical to decide_many's
    a, prop, _ = choose(pol, np.array(ev), ok, decision_uniform(scorer.seed, sid, now_ts), c.constant)
    return a, prop



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
    n_jobs : int, default 1
        Threads of the model evaluation in :meth:`decide_many` (LightGBM's OpenMP threads; 0: its
        default). :meth:`decide_one` always evaluates on the calling thread alone.

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
                 reasons: str = "offers", limits: Limits | None = None, n_jobs: int = 1) -> None:
        if reasons not in ("offers", "all"):
            raise ValidationError(f"reasons must be 'offers' or 'all', got {reasons!r}")
        if limits is not None and not isinstance(limits, Limits):
            raise ValidationError(f"limits must be a Limits or None, got {type(limits).__name__}")
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 0:
            raise ValidationError(f"n_jobs must be an int >= 0, got {n_jobs!r}")
        self.reasons = reasons
        self.limits = limits
        self.n_jobs = n_jobs
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

    def prepare_customer(self, customer: Mapping[str, Any] | None) -> PreparedProfile:
        """A known customer's profile computed once, to pass as ``customer`` on every request of a session.

        The decisions equal those made from the dict itself; a request then costs a copy of the stored
        profile instead of reading the contact history. Prepare again, or call
        :meth:`~nextchannel.profile.PreparedProfile.with_contact`, when a contact happens.

        Examples
        --------
        >>> scorer = Scorer.load()
        >>> cust = {"customer_id": "c1", "contacts": [{"ts": 0.0, "channel": "chat", "resolved": True}]}
        >>> prepared = scorer.prepare_customer(cust)
        >>> s = {"session_id": "s1", "ts": 60.0, "pages_viewed": 3}
        >>> scorer.decide_one(s, prepared) == scorer.decide_one(s, cust)
        True
        """
        return prepare_one(customer, self._c.ms.profile_config, strict=self.strict, limits=self.limits)

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
            ``fallback`` says why (counted in :attr:`fallbacks`). Its ``reasons`` are computed when
            first read.

        Notes
        -----
        The steps, each named by the argument it reads (the name a fallback gives): the session
        (features into the row buffer) and its time, the customer (profile), the user's own
        columns, the channel context; then one evaluation of every model, the eligibility rules
        and the choice. Reasons are left for later: the decision keeps a copy of its row.
        """
        c = self._c  # one reference for the whole request: reload cannot mix two model sets
        try:
            st = c.buffers()
            row = st.row
            own = features
            if c.web:
                src = _session_source(self, c, session)
                sid, now_ts = _session_time(src, now)
                _write_session(c, st, src, now_ts)
                _write_customer(self, c, row, customer, now_ts)
            else:
                own = session if own is None else own
                sid, now_ts = _own_source(c, own, now)
            if c.user_encoders:
                _write_own(c, row, own)
            ctx = _write_context(c, row, context)
            scores = _evaluate(c, st)
            ev = scores[:c.n_actions]
            total = sum(ev)   # finite unless some value is NaN or infinite (or the sum overflows: checked then)
            if total - total != 0.0 and not all(v - v == 0.0 for v in ev):  # never decide from such values
                return self._fallback(c.ms, "non-finite expected values: " + ", ".join(
                    f"{name}={v!r}" for name, v in zip(c.actions, ev) if v - v != 0.0))
            ok, why = _eligible(c, row, ctx)
            a, prop = _choose(self, c, ev, ok, sid, now_ts)
        except Exception as err:  # the web path contains every failure, named by its step (see _contain)
            return self._contain(c.ms, _failed_part(err), err)
        action = c.actions[a]
        return _new_decision(action, a != 0, None if a == 0 else action, dict(zip(c.actions, ev)), scores[c.n_actions],
                             prop, c.ms.version, self._reasons_of(c, row, ev, ok, a), tuple(why))

    def _reasons_of(self, c: _Compiled, row: np.ndarray, ev: list[float], ok: list[bool], a: int) -> Any:
        """A decision's reasons: the guard's phrase, none, or a function computing them when read."""
        if c.constant is not None:
            return c.constant_reasons
        if not self.n_reasons or (a == 0 and self.reasons != "all"):
            return ()
        return functools.partial(c.explain_one, row.copy(), ev, ok, a, self.n_reasons)

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
        c = self._c
        ms = c.ms
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
            r = self._decide_frame(c, X, C, [sid], np.array([now_ts]), pd.RangeIndex(1)).iloc[0]
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
        c = self._c
        ms = c.ms
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
        needs_language = "language" in X.columns and any(str(col).startswith("languages_") for col in decisions.columns)
        language = [_lang_name(x) for x in X["language"].to_numpy(dtype=float)] if needs_language else None
        C = c.ctx_spec.parse_many(decisions, language)
        sids = decisions["session_id"].tolist() if "session_id" in decisions.columns else [None] * len(decisions)
        ts = pd.to_numeric(decisions["ts"]).to_numpy(dtype=float) if "ts" in decisions.columns else np.zeros(len(X))
        return self._decide_frame(c, X, C, sids, ts, decisions.index)

    def _decide_frame(self, c: _Compiled, X: pd.DataFrame, C: pd.DataFrame, session_ids: Sequence[Any],
                      ts: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """The batch core: the same steps as :meth:`decide_one`, on arrays (one model evaluation)."""
        ms, pol = c.ms, c.policy
        actions = c.actions
        n = len(X)
        M = c.matrix(X, C)
        scores = c.stack.predict_many(M, self.n_jobs)
        ev, tau = scores[:, :c.n_actions], scores[:, c.n_actions]
        elig, why = _eligible_many(c, M)
        rows = np.arange(n)
        if pol.exploration == "none":
            a = greedy_many(pol, ev, elig, fixed=c.constant)
            probs = np.zeros((n, len(actions)))
            probs[rows, a] = 1.0
        else:  # the hash per decision point is per row; the draw is vectorised (choose() is its one-row case)
            u = np.array([decision_uniform(self.seed, sid, t) for sid, t in zip(session_ids, ts.tolist())])
            a, _, probs = choose_many(pol, ev, elig, u, c.constant)
        prop = probs[rows, a]
        reasons = np.full(n, "", dtype=object)
        if c.constant is not None:  # the guard fell back: every decision says so, and nothing else
            reasons[:] = c.constant_reasons[0]
        elif self.n_reasons:
            todo = np.flatnonzero(a != 0) if self.reasons == "offers" else rows
            if len(todo):
                texts = c.reasons_many(M[todo], ev[todo], elig[todo], a[todo], self.n_reasons, num_threads=self.n_jobs)
                reasons[todo] = [" | ".join(t) for t in texts]
        act = np.asarray(actions, dtype=object)[a]
        out = {"action": act, "offer": a != 0, "channel": np.where(a != 0, act, None), "propensity": prop,
               "offer_score": tau, "model_version": ms.version, "reasons": reasons, "why_not": why}
        out.update({f"ev_{x}": ev[:, j] for j, x in enumerate(actions)})
        out.update({f"p_{x}": probs[:, j] for j, x in enumerate(actions)})
        return pd.DataFrame(out, index=index)


def _dev_name(code: float) -> str | None:
    return code_name(DEVICES, code)


def _lang_name(code: float) -> str | None:
    return code_name(LANGUAGES, code)
