"""The per-request channel context: is each channel open, how long is its wait, does it serve the visitor's language.

Where it sits: request → **channel context** → value model (context features) and policy
(eligibility). The backend knows, at request time, which channels are staffed and how long their
queues are; a decision log records the same per decision point. This module is the one definition
of how that context is read, with two executors:

* :meth:`ContextSpec.parse_one` — one request's context dict (the web path, no pandas);
* :meth:`ContextSpec.parse_many` — the context columns of a decision log (training, ``decide_many``),
  vectorised per column (typed columns with numpy; object columns with the same scalar readers).

A property test holds the two equal, value for value and message for message.

The rules (strict by type; the received value is quoted, shortened, in every message)
--------------------------------------------------------------------------------------
For each channel ``ch`` of the catalogue, in catalogue order:

``open_<ch>`` — whether the channel is open (default: open). A boolean: ``True``/``False``
(Python or numpy), the numbers ``0``/``1``, or one of the strings :data:`TRUE_STRINGS` /
:data:`FALSE_STRINGS` (any case). ``"maybe"``, ``2`` or a list is malformed.

``wait_<ch>_s`` — the expected wait in seconds (default 0). A finite number ``>= 0`` (``int``,
``float`` or numpy, never a boolean, never a string): ``True``, ``"30"``, ``-3`` or ``inf`` is
malformed.

``languages_<ch>`` — the languages the channel serves: a list (or tuple/set) of language codes
(strings, as the session's ``language``, e.g. ``["en", "de"]``); the channel serves the visitor
when the visitor's language is unknown or in the list — by equality, never by substring, so
``"english-only"`` (a string, not a list) is malformed. Without it, ``lang_ok_<ch>`` (a boolean
as above, default True) says directly whether the language is served.

Absent values — a missing key, ``None``, NaN or ``pd.NA`` (a table's empty cell) — take the
default. The per-request form may also nest the values per channel,
``{"chat": {"open": True, "wait_s": 40, "languages": ["en"]}}``; a nested value overrides the flat
key, and a nested entry that is not a dict is malformed. Keys that name nothing above are ignored.

Malformed context is never silently read as something else: strict use raises
:class:`~nextchannel.errors.ValidationError` naming the key, the expected and the received value
(and, in batch, the row); the web path turns the same message into a counted fallback decision.

Examples
--------
>>> from nextchannel.context import ContextSpec
>>> spec = ContextSpec(["chat", "phone"])
>>> spec.parse_one({"open_phone": "false", "wait_chat_s": 40, "languages_chat": ["de"]}, language="en")
([True, False], [40.0, 0.0], [False, True])
>>> spec.parse_one({"wait_chat_s": True}, language=None)
Traceback (most recent call last):
...
nextchannel.errors.ValidationError: wait_chat_s must be a finite number >= 0 (seconds), got True
"""

from __future__ import annotations

import math
from collections.abc import Mapping  # not typing.Mapping: isinstance on it is slow
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from nextchannel.compat import is_pandas_na, lazy_module
from nextchannel.errors import ValidationError, excerpt

if TYPE_CHECKING:
    import pandas as pd
else:  # imported when a batch path first uses it: the per-request path never does
    pd = lazy_module("pandas")

__all__ = ["ContextSpec", "TRUE_STRINGS", "FALSE_STRINGS", "context_spec"]

#: Strings read as True / False by the boolean keys (compared case-insensitively).
TRUE_STRINGS: tuple[str, ...] = ("true", "1", "yes", "open")
FALSE_STRINGS: tuple[str, ...] = ("false", "0", "no", "closed")
_BOOL_STRINGS = {**{s: True for s in TRUE_STRINGS}, **{s: False for s in FALSE_STRINGS}}
_BOOL_EXPECTED = f"a boolean (True/False, 0/1 or one of {list(TRUE_STRINGS + FALSE_STRINGS)})"
_WAIT_EXPECTED = "a finite number >= 0 (seconds)"
_LANG_EXPECTED = "a list of language codes like ['en', 'de']"
# exact types only: a subclass could run its own comparisons, and a context value is visitor-side data
_NUMBER_TYPES = frozenset({int, float} | {t for t in np.sctypeDict.values()
                                          if isinstance(t, type) and issubclass(t, (np.integer, np.floating))})


class _Malformed(Exception):
    """One malformed value (internal): carries the message the public error and the fallback give."""


def _absent(v: Any) -> bool:
    if type(v) in _NUMBER_TYPES:
        return bool(v != v)
    return v is None or is_pandas_na(v)


def _bad(key: str, expected: str, v: Any) -> _Malformed:
    return _Malformed(f"{key} must be {expected}, got {excerpt(v)}")


def _read_bool(key: str, v: Any, default: bool) -> bool:
    if v is True or v is False:
        return v
    if _absent(v):
        return default
    t = type(v)
    if t is np.bool_:
        return bool(v)
    if t is str or t is np.str_:
        b = _BOOL_STRINGS.get(str.lower(v))
        if b is not None:
            return b
    elif t in _NUMBER_TYPES:
        if v == 0 or v == 1:
            return bool(v == 1)
    raise _bad(key, _BOOL_EXPECTED, v)


def _read_wait(key: str, v: Any) -> float:
    if type(v) is float and v - v == 0.0 and v >= 0.0:
        return v
    if _absent(v):
        return 0.0
    if type(v) in _NUMBER_TYPES:
        try:
            w = float(v)
        except OverflowError:  # an int beyond float range
            w = math.inf
        if w - w == 0.0 and w >= 0.0:
            return w
    raise _bad(key, _WAIT_EXPECTED, v)


def _read_langs(key: str, v: Any, language: str | None) -> bool:
    """Whether the visitor's language is served, from a list of codes; _Malformed otherwise."""
    if type(v) in (list, tuple, set, frozenset):
        if all(type(x) is str for x in v):
            return language is None or language in v
    raise _bad(key, _LANG_EXPECTED, v)


class ContextSpec:
    """The channel-context definition for one channel catalogue, with its two executors.

    Parameters
    ----------
    channels : sequence of str, or a ChannelCatalogue
        The channels, in catalogue order (the order of the returned lists and columns).

    Examples
    --------
    >>> import pandas as pd
    >>> spec = ContextSpec(["chat"])
    >>> spec.parse_many(pd.DataFrame({"open_chat": [True, False], "wait_chat_s": [0.0, 35.0]}))
       open_chat  wait_chat_s  lang_ok_chat
    0        1.0          0.0           1.0
    1        0.0         35.0           1.0
    """

    def __init__(self, channels: Any) -> None:
        names = tuple(getattr(channels, "names", channels))
        if not names or not all(type(c) is str for c in names):
            raise ValidationError(f"channels must be a non-empty sequence of channel names, got {excerpt(channels)}")
        self.channels: tuple[str, ...] = names
        self._keys = tuple((c, f"open_{c}", f"wait_{c}_s", f"lang_ok_{c}", f"languages_{c}") for c in names)
        self._channel_set = frozenset(names)
        k = len(names)
        self._defaults = ([True] * k, [0.0] * k, [True] * k)
        self._usual = self._compile_usual()

    def _compile_usual(self) -> Any:
        """:meth:`_one` for the usual request, written out as one plain function per catalogue.

        The usual request: flat keys only, each ``open_<ch>`` / ``lang_ok_<ch>`` True, False or absent,
        each ``wait_<ch>_s`` a finite float >= 0 or absent, no ``languages_<ch>``. The function returns
        what :meth:`_one` returns for it, and None for any other context (which :meth:`_one` then reads
        in full, errors included), so it adds no rule of its own.
        """
        # the keys are bound as default arguments (read as fast as constants): no channel name, which may
        # come from a bundle, is ever written into the source
        k = len(self._keys)
        keys = {f"{tag}{j}": key for j, (_, *ks) in enumerate(self._keys) for tag, key in zip(("KO", "KW", "KL", "KS"), ks)}
        lines = ["def usual(ctx, " + ", ".join(f"{name}={name}" for name in keys) + "):", "    get = ctx.get"]
        conds = []
        for j in range(k):
            lines.append(f"    o{j} = get(KO{j}, True); w{j} = get(KW{j}, 0.0); l{j} = get(KL{j}, True)")
            conds.append(f"(o{j} is True or o{j} is False) and type(w{j}) is float and w{j} - w{j} == 0.0 and "
                         f"w{j} >= 0.0 and (l{j} is True or l{j} is False) and KS{j} not in ctx")
        lines += ["    if " + " and ".join(f"({c})" for c in conds) + " and CHANNELS.isdisjoint(ctx):",
                  "        return [" + ", ".join(f"o{j}" for j in range(k)) + "], [" +
                  ", ".join(f"w{j}" for j in range(k)) + "], [" + ", ".join(f"l{j}" for j in range(k)) + "]",
                  "    return None"]
        env: dict[str, Any] = {"CHANNELS": self._channel_set, **keys}
        exec(compile("\n".join(lines) + "\n", "<nextchannel.context usual request>", "exec"), env)  # noqa: S102
        return env["usual"]

    @property
    def columns(self) -> list[str]:
        """The flat columns :meth:`parse_many` returns: ``open_<ch>``, ``wait_<ch>_s``, ``lang_ok_<ch>`` per channel."""
        return [col for _, ko, kw, kl, _ in self._keys for col in (ko, kw, kl)]

    # -- per request ------------------------------------------------------------------------------
    def parse_one(self, context: Mapping[str, Any] | None, language: str | None = None
                  ) -> tuple[list[bool], list[float], list[bool]]:
        """Per-channel ``(open, wait_s, language served)`` of one request's context.

        Parameters
        ----------
        context : dict or None
            Flat keys (``open_<ch>``, ``wait_<ch>_s``, ``languages_<ch>``, ``lang_ok_<ch>``) and/or
            nested per-channel dicts; None or ``{}`` gives the defaults (open, no wait, served).
        language : str or None
            The visitor's language code (None: unknown, served everywhere).

        Raises
        ------
        ValidationError
            On the first malformed value, in catalogue order (open, wait, languages per channel).
        """
        if not context:
            o, w, lk = self._defaults
            return list(o), list(w), list(lk)
        if type(context) is dict:
            got = self._usual(context)
            if got is not None:
                return got
        return self._full_one(context, language)

    def usual_one(self, context: Any) -> tuple[list[bool], list[float], list[bool]] | None:
        """:meth:`parse_one` of the usual request (a dict of flat booleans and float waits, no language
        lists), which needs no visitor language; None for any other context (read it with :meth:`parse_one`)."""
        return self._usual(context) if type(context) is dict and context else None

    def _full_one(self, context: Any, language: str | None) -> tuple[list[bool], list[float], list[bool]]:
        if not isinstance(context, Mapping):
            raise ValidationError(f"context must be a dict of channel context values, got {excerpt(context)}")
        try:
            return self._one(context, language)
        except _Malformed as err:
            raise ValidationError(str(err)) from None

    def _one(self, ctx: Mapping[str, Any], language: str | None) -> tuple[list[bool], list[float], list[bool]]:
        get = ctx.get
        nested_form = not self._channel_set.isdisjoint(ctx)
        open_: list[bool] = []
        wait: list[float] = []
        lang_ok: list[bool] = []
        for ch, ko, kw, kl, kls in self._keys:
            o, w, ls = get(ko), get(kw), get(kls)
            if nested_form and ch in ctx:
                nested = ctx[ch]
                if not isinstance(nested, Mapping):
                    if not _absent(nested):
                        raise _bad(f"context[{ch!r}]", "a dict like {'open': True, 'wait_s': 30, 'languages': ['en']}",
                                   nested)
                else:
                    ng = nested.get
                    o = ng("open", o)
                    w = ng("wait_s", w)
                    ls = ng("languages", ls)
                    ko, kw, kls = f"context[{ch!r}]['open']" if "open" in nested else ko, \
                        f"context[{ch!r}]['wait_s']" if "wait_s" in nested else kw, \
                        f"context[{ch!r}]['languages']" if "languages" in nested else kls
            # the usual values inline (True/False, a float wait, no language list), the rest read in full
            open_.append(o if o is True or o is False else _read_bool(ko, o, True))
            wait.append(w if type(w) is float and w - w == 0.0 and w >= 0.0 else _read_wait(kw, w))
            if ls is None or _absent(ls):
                lk = get(kl)
                lang_ok.append(lk if lk is True or lk is False else _read_bool(kl, lk, True))
            else:
                lang_ok.append(_read_langs(kls, ls, language))
        return open_, wait, lang_ok

    def error_one(self, context: Any, language: str | None = None) -> str:
        """The message :meth:`parse_one` would raise, or ``""`` when the context is well-formed."""
        try:
            self.parse_one(context, language)
        except ValidationError as err:
            return str(err)
        return ""

    # -- many -------------------------------------------------------------------------------------
    def parse_many(self, frame: pd.DataFrame, language: Sequence[str | None] | np.ndarray | None = None, *,
                   strict: bool = True) -> pd.DataFrame:
        """The flat context columns of a decision log, as floats (defaults where a column is absent).

        Parameters
        ----------
        frame : DataFrame
            Decision points with any of the flat context columns (nested dicts are a per-request
            form only).
        language : sequence of str or None, optional
            The visitor's language per row (None: unknown), needed for ``languages_<ch>`` columns.
        strict : bool, default True
            Raise :class:`ValidationError` on the first malformed row (the message names its label).
            If False, a malformed row gets the defaults and its message in an extra column
            ``context_error`` (``""`` on clean rows), for the caller to fall back and count.

        Returns
        -------
        DataFrame
            Index of ``frame``; per channel ``open_<ch>`` and ``lang_ok_<ch>`` (1.0/0.0) and
            ``wait_<ch>_s``, in catalogue order; plus ``context_error`` when not strict.
        """
        if not isinstance(frame, pd.DataFrame):
            raise ValidationError(f"decisions must be a pandas DataFrame, got {type(frame).__name__}")
        n = len(frame)
        cols = frame.columns
        langs = np.full(n, None, dtype=object) if language is None else np.asarray(language, dtype=object)
        if len(langs) != n:
            raise ValidationError(f"language must give one value per row ({n}), got {len(langs)}")
        errors = np.full(n, "", dtype=object)
        out: dict[str, np.ndarray] = {}
        for ch, ko, kw, kl, kls in self._keys:
            o, e_o = _bool_column(frame[ko], ko, True) if ko in cols else (np.ones(n), None)
            w, e_w = _wait_column(frame[kw], kw) if kw in cols else (np.zeros(n), None)
            if kls in cols:
                lk, e_l = _langs_column(frame[kls], kls, langs)
                if kl in cols:  # lang_ok fills the rows whose languages are absent
                    fb, e_fb = _bool_column(frame[kl], kl, True)
                    absent = frame[kls].isna().to_numpy() if frame[kls].dtype != object else \
                        np.array([_absent(x) for x in frame[kls].tolist()], dtype=bool)
                    lk = np.where(absent, fb, lk)
                    if e_fb is not None:
                        e_l = np.where(absent & (e_fb != ""), e_fb, e_l if e_l is not None else "")
            elif kl in cols:
                lk, e_l = _bool_column(frame[kl], kl, True)
            else:
                lk, e_l = np.ones(n), None
            for e in (e_o, e_w, e_l):  # the first error in catalogue order, as parse_one raises it
                if e is not None:
                    errors = np.where((errors == "") & (e != ""), e, errors)
            out[ko], out[kw], out[kl] = o, w, lk
        result = pd.DataFrame(out, index=frame.index)
        bad = errors != ""
        if bad.any():
            if strict:
                i = int(np.flatnonzero(bad)[0])
                label = frame.index[i]
                raise ValidationError(f"row {label.item() if isinstance(label, np.generic) else label}: {errors[i]}")
            defaults = {c: (0.0 if c.startswith("wait_") else 1.0) for c in result.columns}
            for c, d in defaults.items():
                result.loc[bad, c] = d
        if not strict:
            result["context_error"] = errors
        return result


def _elementwise(col: pd.Series, read: Any) -> tuple[np.ndarray, np.ndarray | None]:
    vals = np.empty(len(col))
    errs = np.full(len(col), "", dtype=object)
    any_bad = False
    for i, x in enumerate(col.tolist() if col.dtype != object else col.to_numpy(dtype=object)):
        try:
            vals[i] = read(x)
        except _Malformed as err:
            vals[i] = math.nan
            errs[i] = str(err)
            any_bad = True
    return vals, (errs if any_bad else None)


def _bool_column(col: pd.Series, key: str, default: bool) -> tuple[np.ndarray, np.ndarray | None]:
    kind = col.dtype.kind
    if kind == "b":
        return col.to_numpy(dtype=float), None
    if kind in "iuf":
        v = col.to_numpy(dtype=float)
        ok = np.isnan(v) | (v == 0) | (v == 1)
        if ok.all():
            return np.where(np.isnan(v), 1.0 if default else 0.0, v), None
    return _elementwise(col, lambda x: 1.0 if _read_bool(key, x, default) else 0.0)


def _wait_column(col: pd.Series, key: str) -> tuple[np.ndarray, np.ndarray | None]:
    if col.dtype.kind in "iuf":
        v = col.to_numpy(dtype=float)
        ok = np.isnan(v) | (np.isfinite(v) & (v >= 0))
        if ok.all():
            return np.where(np.isnan(v), 0.0, v), None
        if col.dtype.kind == "f":  # float columns hold only floats: the scalar rule on the bad ones
            errs = np.full(len(v), "", dtype=object)
            errs[~ok] = [str(_bad(key, _WAIT_EXPECTED, float(x))) for x in v[~ok]]
            return np.where(ok, np.where(np.isnan(v), 0.0, v), np.nan), errs
    return _elementwise(col, lambda x: _read_wait(key, x))


def _langs_column(col: pd.Series, key: str, langs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    vals = np.empty(len(col))
    errs = np.full(len(col), "", dtype=object)
    any_bad = False
    for i, (x, lang) in enumerate(zip(col.to_numpy(dtype=object), langs)):
        if _absent(x):
            vals[i] = 1.0
            continue
        try:
            vals[i] = 1.0 if _read_langs(key, x, lang) else 0.0
        except _Malformed as err:
            vals[i] = math.nan
            errs[i] = str(err)
            any_bad = True
    return vals, (errs if any_bad else None)


_SPECS: dict[tuple[str, ...], ContextSpec] = {}


def context_spec(channels: Any) -> ContextSpec:
    """The (cached) :class:`ContextSpec` of a catalogue or a sequence of channel names.

    Examples
    --------
    >>> context_spec(["chat"]) is context_spec(("chat",))
    True
    """
    key = tuple(getattr(channels, "names", channels))
    spec = _SPECS.get(key)
    if spec is None:
        spec = _SPECS[key] = ContextSpec(key)
    return spec
