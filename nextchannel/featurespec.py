"""The feature specification: which features a model set reads, and how a user's columns become numbers.

Where it sits: features → **feature specification** → models. A model set reads the library's
built-in session and profile features (computed from events and contact logs by
:mod:`nextchannel.features`) and/or the user's own per-decision columns. This module holds the
specification of the latter as data — each column's name as the user wrote it, its kind
(``numeric``, ``bool`` or ``category``), its category levels and their codes, and the handling of
missing values and unseen levels — so that a bundle carries it as JSON and the scorer rebuilds
the same row from a request's dict as training built from a DataFrame.

Models never see the user's names: each column gets a generated internal name (``f0``, ``f1``,
…), safe for LightGBM and distinct from every internal input (``stage``, ``action_code``…), and the
specification maps it back, so reasons, reports and errors speak the user's names.

Encoding (one definition, two executors: :meth:`FeatureSpec.encode_one` per request and
:meth:`FeatureSpec.transform` per frame; a property test holds them equal):

* ``numeric`` — the value as a float; missing (None, NaN, ``pd.NA``) stays NaN; text or ±inf is refused.
* ``bool`` — True/False as 1/0 (numbers are read as numbers); missing stays NaN.
* ``category`` — the level's code (its position in ``levels``); missing and a level never seen in
  training both become NaN (LightGBM's "missing"), so an unseen level is treated like a missing one.
  A level is matched by its text (``str(value)``; an integer-valued float ``2.0`` reads as ``"2"``).

Examples
--------
>>> import pandas as pd
>>> X = pd.DataFrame({"plan type": ["gold", "basic", None], "tenure (days)": [10, 400, 35],
...                   "stage": [True, False, True]})
>>> spec = FeatureSpec.fit(X)
>>> [(c.name, c.internal, c.kind) for c in spec.columns]
[('plan type', 'f0', 'category'), ('tenure (days)', 'f1', 'numeric'), ('stage', 'f2', 'bool')]
>>> spec.transform(X).to_numpy().tolist()[0], spec.encode_one({"plan type": "gold", "tenure (days)": 10, "stage": True})
([1.0, 10.0, 1.0], [1.0, 10.0, 1.0])
>>> spec.encode_one({"plan type": "platinum"})    # unseen level and missing columns: NaN
[nan, nan, nan]
>>> FeatureSpec.from_dict(spec.to_dict()) == spec
True
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from nextchannel.compat import is_pandas_missing, lazy_module
from nextchannel.errors import ConstantModelWarning, ValidationError

if TYPE_CHECKING:
    import pandas as pd
else:  # imported when a batch path first uses it: the per-request path never does
    pd = lazy_module("pandas")

__all__ = ["FeatureSpec", "ColumnSpec", "KINDS", "MAX_LEVELS"]

logger = logging.getLogger(__name__)

#: Kinds of a user column.
KINDS: tuple[str, ...] = ("numeric", "bool", "category")
#: Most levels a category column keeps (the most frequent ones); rarer levels read as unseen.
MAX_LEVELS = 500


def _is_missing(v: Any) -> bool:
    if v is None or is_pandas_missing(v):
        return True
    if isinstance(v, (float, np.floating)):
        return bool(v != v)
    return False


def _level_key(v: Any) -> str | None:
    """The text a category level is matched by (None when missing)."""
    if _is_missing(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v)


@dataclass(frozen=True)
class ColumnSpec:
    """One of the user's columns.

    Parameters
    ----------
    name : str
        The column's name as the user gave it (any text).
    internal : str
        The generated name the models use (``f<i>``).
    kind : {"numeric", "bool", "category"}
    levels : tuple of str
        Category levels in code order (``category`` only).
    """

    name: str
    internal: str
    kind: str
    levels: tuple[str, ...] = ()
    _codes: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError(f"feature column names must be non-empty strings, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValidationError(f"kind of feature {self.name!r} must be one of {list(KINDS)}, got {self.kind!r}")
        levels = tuple(str(x) for x in self.levels)
        if len(set(levels)) != len(levels):
            raise ValidationError(f"levels of feature {self.name!r} must be distinct, got {list(levels)[:10]}")
        if self.kind != "category" and levels:
            raise ValidationError(f"feature {self.name!r} of kind {self.kind!r} must have no levels, got {len(levels)}")
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "_codes", {lv: i for i, lv in enumerate(levels)})

    # -- the per-value rule (the definition both executors follow) --------------------------------
    def encode(self, v: Any) -> float:
        """The model input for one value (see the module docstring)."""
        if self.kind == "category":
            key = _level_key(v)
            code = None if key is None else self._codes.get(key)
            return math.nan if code is None else float(code)
        if _is_missing(v):
            return math.nan
        if isinstance(v, (str, bytes)) or not isinstance(v, (int, float, np.integer, np.floating, np.bool_)):
            raise ValidationError(f"feature {self.name!r} must be a {'number' if self.kind == 'numeric' else 'bool'} "
                                  f"or missing, got {v!r}")
        x = float(v)
        if math.isinf(x):
            raise ValidationError(f"feature {self.name!r} must be finite or missing, got {v!r}")
        return x

    def encode_many(self, s: pd.Series) -> np.ndarray:
        """:meth:`encode` over a column, vectorised for the common dtypes."""
        if self.kind == "category":
            values = s.astype(object).to_numpy()
            keys = pd.Series([_level_key(v) for v in values], index=s.index, dtype=object)
            return keys.map(self._codes).to_numpy(dtype=float, na_value=np.nan)
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            x = s.to_numpy(dtype=float, na_value=np.nan)
        else:
            x = np.array([self.encode(v) for v in s.astype(object).to_numpy()], dtype=float)
        bad = np.isinf(x)
        if bad.any():
            raise ValidationError(f"feature {self.name!r} must be finite or missing, got {float(x[bad][0])!r} at row "
                                  f"{s.index[np.flatnonzero(bad)[0]]!r}")
        return x

    def phrase(self, x: float) -> str:
        """The encoded value ``x`` in words, under the user's name."""
        if x != x:
            return f"{self.name}: missing or new" if self.kind == "category" else f"{self.name}: missing"
        if self.kind == "category":
            i = int(x)
            return f"{self.name} = {self.levels[i]}" if 0 <= i < len(self.levels) else f"{self.name}: missing or new"
        if self.kind == "bool":
            return f"{self.name}: {'yes' if x >= 0.5 else 'no'}"
        return f"{self.name} = {x:,.4g}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "internal": self.internal, "kind": self.kind}
        if self.kind == "category":
            d.update(levels=list(self.levels), unseen="missing")
        d["missing"] = "missing"
        return d


def _kind_of(name: str, s: pd.Series) -> str:
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dt):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt) \
            or pd.api.types.is_complex_dtype(dt):
        raise ValidationError(f"features column {name!r} must be numeric, boolean, categorical or text, got dtype "
                              f"{dt} (convert times to numbers, e.g. seconds since an event)")
    if pd.api.types.is_numeric_dtype(dt):
        return "numeric"
    values = s.dropna()
    if len(values) and values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        return "bool"
    return "category"


def _levels_of(name: str, s: pd.Series, max_levels: int) -> tuple[str, ...]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        keys = [_level_key(v) for v in s.cat.categories]
        levels = list(dict.fromkeys(k for k in keys if k is not None))
    else:
        counts = pd.Series([_level_key(v) for v in s.astype(object).to_numpy()], dtype=object).value_counts()
        # most frequent first, ties by text: a deterministic order for the same data
        levels = sorted(counts.index, key=lambda k: (-counts[k], k))
    if len(levels) > max_levels:
        msg = (f"features column {name!r} has {len(levels)} levels; the {max_levels} most frequent are kept and "
               f"the others read as unseen (missing)")
        warnings.warn(msg, UserWarning, stacklevel=4)
        logger.warning(msg)
        levels = levels[:max_levels]
    return tuple(levels)


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a model set reads: built-in ones (by name) and the user's own columns.

    Parameters
    ----------
    builtin : tuple of str
        Names of the built-in session and profile features (:mod:`nextchannel.features`), in
        model order; empty when the model set reads only the user's columns.
    columns : tuple of ColumnSpec
        The user's columns, in model order after the built-in features.
    """

    builtin: tuple[str, ...] = ()
    columns: tuple[ColumnSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "builtin", tuple(self.builtin))
        object.__setattr__(self, "columns", tuple(c if isinstance(c, ColumnSpec) else ColumnSpec(
            name=c["name"], internal=c["internal"], kind=c["kind"], levels=tuple(c.get("levels", ())))
            for c in self.columns))
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValidationError(f"feature column names must be distinct, got duplicates "
                                  f"{sorted({n for n in names if names.count(n) > 1})}")
        internal = list(self.builtin) + [c.internal for c in self.columns]
        if len(set(internal)) != len(internal):
            raise ValidationError("internal feature names must be distinct")

    @classmethod
    def fit(cls, features: pd.DataFrame, builtin: Sequence[str] = (), *, max_levels: int = MAX_LEVELS) -> "FeatureSpec":
        """The specification of a user's feature frame (kinds and levels read from the data).

        Raises
        ------
        ValidationError
            Not a DataFrame, non-text or duplicate column names, a column of an unsupported dtype.
        """
        if not isinstance(features, pd.DataFrame):
            raise ValidationError(f"features must be a pandas DataFrame (one row per decision), got "
                                  f"{type(features).__name__}")
        bad = [c for c in features.columns if not isinstance(c, str) or not c]
        if bad:
            raise ValidationError(f"features column names must be non-empty strings, got {bad[0]!r}")
        if features.columns.duplicated().any():
            raise ValidationError(f"features column names must be distinct, got duplicates "
                                  f"{sorted(set(features.columns[features.columns.duplicated()]))}")
        cols = []
        for i, name in enumerate(features.columns):
            s = features[name]
            kind = _kind_of(name, s)
            levels = _levels_of(name, s, max_levels) if kind == "category" else ()
            cols.append(ColumnSpec(name, f"f{i}", kind, levels))
        return cls(tuple(builtin), tuple(cols))

    # -- names ------------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """The user's column names (in model order)."""
        return tuple(c.name for c in self.columns)

    @property
    def internal_names(self) -> tuple[str, ...]:
        """Every model input name: built-in features, then the user's columns' internal names."""
        return self.builtin + tuple(c.internal for c in self.columns)

    @property
    def categorical_internal(self) -> tuple[str, ...]:
        return tuple(c.internal for c in self.columns if c.kind == "category")

    def display_name(self, internal: str) -> str:
        """The user's name of a model input (a built-in feature keeps its own)."""
        for c in self.columns:
            if c.internal == internal:
                return c.name
        return internal

    # -- the two executors ------------------------------------------------------------------------
    def transform(self, features: pd.DataFrame) -> pd.DataFrame:
        """Model inputs of the user's columns for a frame (internal names, float; the frame's index)."""
        if not isinstance(features, pd.DataFrame):
            raise ValidationError(f"features must be a pandas DataFrame, got {type(features).__name__}")
        missing = [c.name for c in self.columns if c.name not in features.columns]
        if missing:
            raise ValidationError(f"features must have the columns the model set was trained on "
                                  f"{list(self.names)[:10]}, missing {missing[:10]}")
        return pd.DataFrame({c.internal: c.encode_many(features[c.name]) for c in self.columns},
                            index=features.index, columns=[c.internal for c in self.columns])

    def encode_one(self, values: Mapping[str, Any]) -> list[float]:
        """Model inputs of the user's columns for one request's dict (a missing key is a missing value)."""
        get = values.get
        return [c.encode(get(c.name)) for c in self.columns]

    def phraser(self, builtin: Callable[[str, Mapping[str, float]], str]) -> Callable[[str, Mapping[str, float]], str]:
        """A ``phrase(internal_name, features)`` that speaks the user's names for the user's columns."""
        by_internal = {c.internal: c for c in self.columns}
        if not by_internal:
            return builtin

        def phrase(name: str, feats: Mapping[str, float]) -> str:
            col = by_internal.get(name)
            return builtin(name, feats) if col is None else col.phrase(feats.get(name, math.nan))

        return phrase

    def warn_constant(self, X: pd.DataFrame) -> list[str]:
        """Warn (:class:`~nextchannel.errors.ConstantModelWarning`) about user columns with one value."""
        const = [c.name for c in self.columns if X[c.internal].nunique(dropna=False) <= 1]
        if const:
            msg = (f"features columns {const[:10]} hold a single value in the training data: the models cannot "
                   f"use them")
            warnings.warn(msg, ConstantModelWarning, stacklevel=3)
            logger.warning(msg)
        return const

    # -- data ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"builtin": list(self.builtin), "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureSpec":
        if not isinstance(d, Mapping) or not isinstance(d.get("columns", []), list):
            raise ValidationError(f"feature_spec must be a dict with 'builtin' and 'columns' lists, got {d!r:.80}")
        for c in d.get("columns", []):
            unknown = sorted(set(c) - {"name", "internal", "kind", "levels", "unseen", "missing"})
            if unknown or c.get("unseen", "missing") != "missing" or c.get("missing", "missing") != "missing":
                raise ValidationError(f"feature_spec column {c.get('name')!r} has unknown keys or handling: {c}")
        return cls(tuple(d.get("builtin", ())), tuple(d.get("columns", ())))
