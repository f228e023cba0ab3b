"""The UCI Online Shoppers Purchasing Intention data: 12,330 real web-shop sessions, shipped in the package.

The file ``data/online_shoppers_intention.csv.gz`` is the UCI CSV (gzip compressed, values
unchanged); ``data/PROVENANCE.md`` next to it records its source, licence (CC BY 4.0) and
checksums. :func:`load_online_shoppers` parses it with typed columns.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
import io
from typing import Any

import numpy as np
import pandas as pd

from nextchannel.errors import ValidationError

__all__ = ["load_online_shoppers", "ONLINE_SHOPPERS_SHA256", "MONTHS", "VISITOR_TYPES"]

_FILE = "online_shoppers_intention.csv.gz"
#: sha256 of the decompressed CSV, as several independent public copies of the UCI download pin it.
ONLINE_SHOPPERS_SHA256 = "b3055ee355f59134d851d32641183cb4a8b45def7124d2f50442a042f358e0d9"
#: Calendar months in the spelling of the file (June is spelled out; Jan and Apr do not occur).
MONTHS: tuple[str, ...] = ("Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
VISITOR_TYPES: tuple[str, ...] = ("New_Visitor", "Returning_Visitor", "Other")
_COUNTS = ("Administrative", "Informational", "ProductRelated")
_FLOATS = ("Administrative_Duration", "Informational_Duration", "ProductRelated_Duration",
           "BounceRates", "ExitRates", "PageValues", "SpecialDay")
_NOMINAL_CODES = ("OperatingSystems", "Browser", "Region", "TrafficType")
_COLUMNS = ("Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
            "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
            "SpecialDay", "Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType",
            "Weekend", "Revenue")
_TARGET = "Revenue"


def _data_file() -> Any:
    return importlib.resources.files("nextchannel.datasets").joinpath("data", _FILE)


@functools.lru_cache(maxsize=1)
def _frame() -> pd.DataFrame:
    raw = _data_file().read_bytes()
    csv = gzip.decompress(raw)
    digest = hashlib.sha256(csv).hexdigest()
    if digest != ONLINE_SHOPPERS_SHA256:
        raise ValidationError(f"{_FILE} must have sha256 {ONLINE_SHOPPERS_SHA256} (decompressed), "
                              f"got {digest}: the packaged file is damaged; reinstall nextchannel")
    dtypes: dict[str, Any] = {c: "int64" for c in (*_COUNTS, *_NOMINAL_CODES)}
    dtypes.update({c: "float64" for c in _FLOATS})
    dtypes.update({"Month": "str", "VisitorType": "str", "Weekend": "bool", "Revenue": "bool"})
    df = pd.read_csv(io.BytesIO(csv), dtype=dtypes)
    if tuple(df.columns) != _COLUMNS:  # pragma: no cover - guarded by the checksum
        raise ValidationError(f"{_FILE} must have columns {list(_COLUMNS)}, got {list(df.columns)}")
    df["Month"] = pd.Categorical(df["Month"], categories=list(MONTHS), ordered=True)
    df["VisitorType"] = pd.Categorical(df["VisitorType"], categories=list(VISITOR_TYPES))
    for c in _NOMINAL_CODES:
        df[c] = pd.Categorical(df[c], categories=sorted(df[c].unique().tolist()))
    return df


def _numeric(X: pd.DataFrame) -> np.ndarray:
    """Float matrix of the features: months as 1..12, visitor type as its code, booleans as 0/1."""
    cols = []
    for c in X.columns:
        s = X[c]
        if c == "Month":
            cols.append(s.cat.codes.to_numpy(dtype=float) + 1.0)
        elif c == "VisitorType":
            cols.append(s.cat.codes.to_numpy(dtype=float))
        elif c in _NOMINAL_CODES:
            cols.append(s.astype("int64").to_numpy(dtype=float))
        else:
            cols.append(s.to_numpy(dtype=float))
    return np.column_stack(cols)


def load_online_shoppers(*, as_frame: bool = True, return_X_y: bool = False) -> Any:
    """Load the UCI Online Shoppers Purchasing Intention data (12,330 sessions, 18 columns).

    One row per session of an online shop over one year (Jan and Apr are absent), with end-of-session
    aggregates collected by Google Analytics and whether the session ended in a purchase.

    ========================  ==========================  =============================================
    column                    dtype                       meaning
    ========================  ==========================  =============================================
    Administrative            int64                       account/administrative pages viewed
    Administrative_Duration   float64                     seconds on them
    Informational             int64                       informational pages viewed
    Informational_Duration    float64                     seconds on them
    ProductRelated            int64                       product pages viewed
    ProductRelated_Duration   float64                     seconds on them
    BounceRates               float64                     mean Google Analytics bounce rate of the pages
    ExitRates                 float64                     mean exit rate of the pages
    PageValues                float64                     mean page value; includes this session's own
                                                          purchase (look-ahead for a live decision)
    SpecialDay                float64                     closeness to a gift day (0..1)
    Month                     ordered category            ``MONTHS`` (``"June"`` spelled out)
    OperatingSystems          category (int codes 1..8)   anonymised operating system
    Browser                   category (int codes 1..13)  anonymised browser
    Region                    category (int codes 1..9)   anonymised region
    TrafficType               category (int codes 1..20)  anonymised traffic source
    VisitorType               category                    ``VISITOR_TYPES``
    Weekend                   bool                        session on a weekend
    Revenue                   bool                        the session bought (the target; 15.5 % true)
    ========================  ==========================  =============================================

    No cell is missing; 125 rows are exact duplicates (as in the original).

    Parameters
    ----------
    as_frame : bool, default True
        Return pandas objects with the dtypes above. ``False`` returns numpy arrays instead: the
        17 features as a float64 matrix (``Month`` as 1..12, ``VisitorType`` as its category code,
        the anonymised codes as their integers, booleans as 0/1) and the target as a bool array.
    return_X_y : bool, default False
        Return ``(X, y)``, the 17 features and ``Revenue``, instead of one object.

    Returns
    -------
    DataFrame of shape (12330, 18)
        With the defaults.
    (X, y) : (DataFrame (12330, 17), Series (12330,)) or (ndarray, ndarray)
        With ``return_X_y=True``.
    Bunch
        With ``as_frame=False, return_X_y=False``: scikit-learn's dict-like ``Bunch`` with ``data``,
        ``target``, ``feature_names``, ``target_names`` and ``DESCR`` (the provenance record).

    Notes
    -----
    Source: UCI Machine Learning Repository, "Online Shoppers Purchasing Intention Dataset" (id 468,
    DOI 10.24432/C5F88Q); Sakar, Polat, Katircioglu and Kastro, *Neural Computing and Applications*
    (2019). Licence: CC BY 4.0. The shipped file's decompressed sha256 is checked on first load
    (:data:`ONLINE_SHOPPERS_SHA256`); ``nextchannel/datasets/data/PROVENANCE.md`` tells how the copy
    was obtained and verified. Each call returns a fresh copy: changing it does not change the next.

    Examples
    --------
    >>> from nextchannel.datasets import load_online_shoppers
    >>> df = load_online_shoppers()
    >>> df.shape
    (12330, 18)
    >>> int(df["Revenue"].sum()), str(df["Month"].dtype), str(df["Weekend"].dtype)
    (1908, 'category', 'bool')
    >>> X, y = load_online_shoppers(as_frame=False, return_X_y=True)
    >>> X.shape, X.dtype, y.dtype
    ((12330, 17), dtype('float64'), dtype('bool'))
    """
    if not isinstance(as_frame, bool):
        raise ValidationError(f"as_frame must be True or False, got {as_frame!r}")
    if not isinstance(return_X_y, bool):
        raise ValidationError(f"return_X_y must be True or False, got {return_X_y!r}")
    df = _frame().copy()
    X, y = df.drop(columns=[_TARGET]), df[_TARGET]
    if as_frame:
        return (X, y) if return_X_y else df
    data, target = _numeric(X), y.to_numpy(dtype=bool)
    if return_X_y:
        return data, target
    from sklearn.utils import Bunch

    descr = importlib.resources.files("nextchannel.datasets").joinpath("data", "PROVENANCE.md").read_text("utf-8")
    return Bunch(data=data, target=target, feature_names=list(X.columns), target_names=[_TARGET],
                 frame=None, DESCR=descr)
