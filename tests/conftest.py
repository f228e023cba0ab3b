"""Shared test data: a team's own randomised campaign log (used by several test modules)."""

from __future__ import annotations

import numpy as np
import pandas as pd

OWN_CHANNELS = ["Spring E-Mail", "WhatsApp"]


def own_world(n: int, seed: int, pays: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A randomised campaign log of the user's own: awkward column names, a Categorical, text with
    missing values, a bool named like an internal input. ``pays``: each action's effect depends on
    the features (personalisation pays); else every action adds the same constant everywhere."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "plan: type": pd.Categorical(rng.choice(["basic", "gold", "silver"], n)),
        "visits, 30 d": rng.poisson(3, n).astype(float),
        "stage": rng.random(n) < 0.5,
        "région": rng.choice(np.array(["nord", "süd", None], dtype=object), n),
    })
    X.loc[X.index[::17], "visits, 30 d"] = np.nan
    action = rng.choice(["none", *OWN_CHANNELS], n)
    base = 0.5 * (X["plan: type"] == "gold").to_numpy() + 0.1 * X["visits, 30 d"].fillna(0).to_numpy()
    if pays:
        mail = np.where(X["plan: type"] == "gold", 1.0, -0.5)
        chat = np.where(X["stage"], 0.8, -0.3)
    else:
        mail, chat = np.full(n, 0.3), np.full(n, 0.1)
    effect = np.where(action == OWN_CHANNELS[0], mail, np.where(action == OWN_CHANNELS[1], chat, 0.0))
    d = pd.DataFrame({"action": action, "propensity": 1 / 3, "reward": base + effect + rng.normal(0, 0.3, n)})
    return d, X
