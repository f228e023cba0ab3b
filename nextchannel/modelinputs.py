"""What the learners read and how their bundle state is laid out, without the learners themselves.

Where it sits: beside :mod:`nextchannel.models` (the LightGBM/scikit-learn learners), for the code
that only reads a bundle — :mod:`nextchannel.modelset` and the scorer — so that serving a bundle
imports neither scikit-learn nor the ``lightgbm`` Python package. :mod:`nextchannel.models`
re-exports these names.

Examples
--------
>>> context_columns(("chat",))
['open_chat', 'wait_chat_s', 'lang_ok_chat']
>>> lgb_names(["wait_chat_s", "wait_Spring E-Mail_s"])
['wait_chat_s', 'col1']
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["HEADS", "CONTEXT_COLUMNS", "LEARNER_PARAMS", "context_columns", "lgb_names"]

#: Per-action channel-context inputs of the channel model, appended after the features.
CONTEXT_COLUMNS: tuple[str, ...] = ("action_code", "stage", "ctx_wait_s", "ctx_lang_ok")
#: The channel model's outcome heads.
HEADS: tuple[str, ...] = ("accept", "success", "leave")

_BASE_PARAMS = ("calibration_fraction", "categorical_features", "colsample_bytree", "learning_rate",
                "min_child_samples", "n_estimators", "n_jobs", "num_leaves", "random_state", "reg_lambda",
                "subsample")
#: The constructor parameters of each learner (``get_params()`` keys), as a bundle's ``models.json``
#: stores them; a test holds them equal to the learners' own.
LEARNER_PARAMS: dict[str, frozenset[str]] = {
    "channel_model": frozenset(_BASE_PARAMS),
    "value_model": frozenset(_BASE_PARAMS),
    "offer_model": frozenset(_BASE_PARAMS + ("max_weight", "target")),
}

_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def context_columns(channels: Sequence[str]) -> list[str]:
    """The per-request channel-context inputs of the value model, in order."""
    return [f"{kind}_{c}{unit}" for c in channels for kind, unit in (("open", ""), ("wait", "_s"), ("lang_ok", ""))]


def lgb_names(names: Sequence[str]) -> list[str]:
    """The feature names handed to LightGBM: a name as it is where LightGBM keeps it intact, else
    ``col<i>`` (LightGBM refuses JSON characters and rewrites spaces; channel names such as
    "Spring E-Mail" reach it through context columns like ``wait_Spring E-Mail_s``)."""
    out = [n if _SAFE_NAME.fullmatch(n) else f"col{i}" for i, n in enumerate(names)]
    if len(set(out)) != len(out):
        out = [f"col{i}" for i in range(len(names))]
    return out
