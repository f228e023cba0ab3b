"""Shims for optional dependencies and for modules that are moving, in one place.

Nothing here is public API. :func:`training_module` finds the training module under its new name
(``training``) or its old one (``train``): a package attribute named ``train`` can be shadowed by
the module of the same name, so callers take the function from the module. :func:`import_dask`
imports the optional Dask stack (``pip install "nextchannel[dask]"``) or raises an ImportError
saying which extra to install. :func:`lazy_module` stands for a heavy module (pandas) in the modules
the web scorer imports, so that serving imports it only when a batch path first uses it;
:func:`is_pandas_na` tells ``pandas.NA`` apart without importing pandas.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

__all__ = ["training_module", "import_dask", "is_dask_collection", "lazy_module", "is_pandas_na",
           "is_pandas_missing"]


class _LazyModule:
    """Stands for a module and imports it on the first attribute read (then reads are plain lookups)."""

    def __init__(self, name: str) -> None:
        self.__name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self.__name), attr)
        setattr(self, attr, value)  # module attributes do not change: later reads skip this method
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__name!r}>"


def lazy_module(name: str) -> Any:
    """The module ``name`` if it is imported already, else a stand-in that imports it when first used.

    The stand-in is not put in ``sys.modules``: ``"pandas" in sys.modules`` still says whether pandas
    was really imported. Code on the per-request path must not read its attributes.

    Examples
    --------
    >>> lazy_module("json").dumps([1])
    '[1]'
    """
    return sys.modules.get(name) or _LazyModule(name)


def is_pandas_na(v: Any) -> bool:
    """``v is pandas.NA``, without importing pandas (no value can be ``pandas.NA`` before it is imported)."""
    pd = sys.modules.get("pandas")
    return pd is not None and v is getattr(pd, "NA", None)


def is_pandas_missing(v: Any) -> bool:
    """``v`` is ``pandas.NA`` or ``pandas.NaT``, without importing pandas."""
    pd = sys.modules.get("pandas")
    return pd is not None and (v is getattr(pd, "NA", None) or v is getattr(pd, "NaT", None))


def training_module() -> ModuleType:
    """The module holding ``train``, ``TrainConfig``, ``logged_reward`` and ``context_frame``."""
    for name in ("nextchannel.training", "nextchannel.train"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
    raise ImportError("nextchannel has neither a training nor a train module")  # pragma: no cover


def import_dask() -> tuple[ModuleType, ModuleType]:
    """``(dask.dataframe, distributed)``, or ImportError naming the extra."""
    try:
        import dask.dataframe as dd
        import distributed
    except ImportError as err:
        raise ImportError('this needs Dask: pip install "nextchannel[dask]" (dask[dataframe], distributed)') from err
    return dd, distributed


def is_dask_collection(x: Any) -> bool:
    """True for a Dask DataFrame/Series, without importing Dask when it was not imported yet."""
    import sys

    if "dask" not in sys.modules:
        return False
    from dask.base import is_dask_collection as _is

    return bool(_is(x))
