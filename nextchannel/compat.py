"""Shims for optional dependencies and for modules that are moving, in one place.

Nothing here is public API. :func:`training_module` finds the training module under its new name
(``training``) or its old one (``train``): a package attribute named ``train`` can be shadowed by
the module of the same name, so callers take the function from the module. :func:`import_dask`
imports the optional Dask stack (``pip install "nextchannel[dask]"``) or raises an ImportError
saying which extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["training_module", "import_dask", "is_dask_collection"]


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
