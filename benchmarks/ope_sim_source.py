"""The nextchannel simulator as a data source for ``benchmarks/ope_coverage.py``.

Run:  .venv/bin/python benchmarks/ope_coverage.py --source ope_sim_source:nextchannel_sim --seeds 20 --n 15000

Each seed simulates a fresh world log (about ``n`` decision points: ``n // 2.7`` sessions) logged by
the simulator's exploring logging policy (a trigger rule with 30% uniform exploration over open
channels, propensities logged). Three target policies, computed with the shipped default bundle:
"learned (greedy)", "learned, 20% exploration" (epsilon-greedy over eligible actions) and "never
offer". The reward model for DM/DR is the bundle's value model. True values are exact, from the
simulator's oracle columns: mean_i sum_a target[i, a] · ev_a(i) over the logged decision points.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nextchannel.features import features_many  # noqa: E402
from nextchannel.policy import eligibility_frame, greedy_many  # noqa: E402
from nextchannel.scorer import Scorer  # noqa: E402
from nextchannel.simulation import simulate  # noqa: E402
from nextchannel.training import context_frame  # noqa: E402

_SCORER: Scorer | None = None


def nextchannel_sim(seed: int, n: int) -> dict[str, Any]:
    global _SCORER
    if _SCORER is None:
        _SCORER = Scorer.load()
    ms = _SCORER.model_set
    pol = ms.policy
    sim = simulate(max(100, int(n / 2.7)), seed=10_000 + seed)
    d = sim.decisions
    X = features_many(d[["session_id", "ts", "customer_id"]], events=sim.events, customers=sim.customers, contacts=sim.contacts)[list(ms.feature_names)]
    C = context_frame(d, pol.channels)
    q = ms.expected_values(X, C)
    elig = eligibility_frame(pol, X, C)
    k = len(pol.actions)
    rows = np.arange(len(d))
    greedy = np.zeros((len(d), k))
    greedy[rows, greedy_many(pol, q, elig)] = 1.0
    uniform = elig / elig.sum(axis=1, keepdims=True)
    explore = 0.8 * greedy + 0.2 * uniform
    never = np.zeros((len(d), k))
    never[:, 0] = 1.0
    ev = d[[f"ev_{a}" for a in pol.actions]].to_numpy()
    targets = {"learned (greedy)": greedy, "learned, 20% exploration": explore, "never offer": never}
    return {
        "reward": d["reward"].to_numpy(dtype=float),
        "action": np.asarray(pol.actions and [pol.actions.index(a) for a in d["action"]]),
        "propensity": d["propensity"].to_numpy(dtype=float),
        "reward_hat": q,
        "targets": targets,
        "true_values": {name: float((t * ev).sum(axis=1).mean()) for name, t in targets.items()},
    }
