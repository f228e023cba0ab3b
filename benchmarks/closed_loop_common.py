"""Shared by the evaluation scripts: the full-information learner as a deployable model set, and
closed-loop value tables (realised value per session with 95% intervals, normalised value).

Not a script; imported by ``eval_policy.py`` and ``learning_curve.py`` (run from the repository
root as ``.venv/bin/python benchmarks/<script>.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from nextchannel import ModelSet, PolicyConfig, Scorer, TrainConfig, simulate
from nextchannel.features import CATEGORICAL_FEATURES, features_many
from nextchannel.models import ValueModel
from nextchannel.simulation import SimConfig, SimResult
from nextchannel.training import context_frame

Z95 = 1.959963984540054


def world_config(name: str) -> SimConfig:
    """The simulated world a benchmark's ``--world`` names: ``"default"`` or one of ``SimConfig.shifted``'s names."""
    return SimConfig() if name == "default" else SimConfig.shifted(name)

#: PolicyConfig fields a variant may set (passed to ``train``: its guard then tests that margin).
POLICY_KEYS = ("offer_margin",)


def _typed(cur: Any, v: str) -> Any:
    if isinstance(cur, bool) or v.lower() in ("true", "false", "warn"):
        return v if v.lower() == "warn" else v.lower() in ("1", "true", "yes")
    return type(cur)(v)


def parse_variant(spec: str, base: TrainConfig, policy: PolicyConfig) -> tuple[str, TrainConfig, PolicyConfig]:
    """``"name:key=value,key=value"`` → (name, TrainConfig, PolicyConfig) — one parser for every script.

    Keys are ``TrainConfig`` fields (``early_stopping_rounds=30``, ``guard=warn``) or ``offer_margin``,
    which goes to the ``PolicyConfig`` given to ``train`` (so that the guard tests the margin the
    bundle will decide with). A spec without ``:`` is a name with no overrides.

    >>> name, t, p = parse_variant("es:early_stopping_rounds=10,offer_margin=0.25", TrainConfig(), PolicyConfig())
    >>> name, t.early_stopping_rounds, p.offer_margin
    ('es', 10, 0.25)
    """
    name, _, sets = spec.partition(":")
    tkw, pkw = {}, {}
    for item in (s for s in sets.split(",") if s):
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {spec!r}: expected key=value, got {item!r}")
        if k in POLICY_KEYS:
            pkw[k] = float(v)
        elif k in {f.name for f in dataclasses.fields(TrainConfig)}:
            tkw[k] = _typed(getattr(base, k), v)
        else:
            raise SystemExit(f"--variant {spec!r}: {k!r} is neither a TrainConfig field nor one of {POLICY_KEYS}")
    return name or "default", dataclasses.replace(base, **tkw), dataclasses.replace(policy, **pkw)


def full_information_model_set(ms: ModelSet, sim: SimResult, *, n_estimators: int = 300, num_leaves: int = 15,
                               learning_rate: float = 0.05, min_child_samples: int = 40,
                               policy: PolicyConfig | None = None) -> ModelSet:
    """``ms`` with its value model replaced by one fitted to every action's *true* expected value.

    Deployed with ``policy`` (default ``ms.policy``; the scripts give the world's, margin 0).

    Same features, same channel context, same policy rules, the same :class:`Scorer` machinery —
    only the targets differ: ``ev_<action>`` of every decision point (which no real log has) instead
    of the funnel's estimates from the logged action's outcome. The upper reference a learner from
    logged feedback is measured against.
    """
    d = sim.decisions
    X = features_many(d[["session_id", "ts", "customer_id"]], events=sim.events, customers=sim.customers, contacts=sim.contacts, profile_config=ms.profile_config)[list(ms.feature_names)]
    C = context_frame(d, ms.policy.channels)
    ev = d[[f"ev_{a}" for a in ms.actions]].to_numpy(dtype=float)
    vm = ValueModel(n_estimators=n_estimators, num_leaves=num_leaves, learning_rate=learning_rate,
                    min_child_samples=min_child_samples, categorical_features=tuple(CATEGORICAL_FEATURES),
                    random_state=0, n_jobs=1).fit(X, C, ev, actions=ms.actions)
    return ModelSet(ms.channel_model, vm, ms.offer_model, policy or ms.policy, ms.profile_config,
                    meta={**ms.meta, "full_information": True})


def closed_loop_row(res: SimResult) -> dict[str, Any]:
    """Value per session (mean, 95% interval across sessions) and offer facts of one run.

    ``value`` is the mean of ``expected_reward`` (per session, the true expected reward of each
    action taken, summed): it has the mean of the realised ``reward`` (also reported, as
    ``realised``) with a fraction of its noise.
    """
    s = res.sessions
    r = s["expected_reward"].to_numpy(dtype=float)
    raw = s["reward"].to_numpy(dtype=float)
    n = len(r)
    se = float(r.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    se_raw = float(raw.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    offers = int(s["offers"].sum())
    return {"value": float(r.mean()), "se": se, "ci_low": float(r.mean()) - Z95 * se,
            "ci_high": float(r.mean()) + Z95 * se, "realised": float(raw.mean()), "realised_se": se_raw,
            "sessions": n,
            "offers_per_session": offers / n if n else math.nan,
            "needless_offer_share": float(s["offers_no_need"].sum() / offers) if offers else 0.0,
            "contacts_per_session": float(s["contacts"].mean()), "solved_rate": float(s["solved"].mean()),
            "left_annoyed_rate": float(s["left_annoyed"].mean())}


def closed_loop_table(policies: Mapping[str, Any], config: SimConfig, n_sessions: int,
                      seeds: tuple[int, ...], per_session: bool = False) -> Any:
    """Each policy deciding live on fresh sessions of every seed; one row per policy (seeds pooled).

    Adds ``norm_vs_full_info`` = (V − V(never)) / (V(full-information) − V(never)) with a 95%
    interval. Every policy meets the same visitors (the population of a seed does not depend on the
    policy), so the interval is computed from per-session *paired* differences to "never offer"
    (delta method for the ratio), which removes the visitor-to-visitor spread they share.
    With ``per_session``, returns ``(table, {name: per-session expected reward})``.
    """
    rows, per_session_values = [], {}
    for name, pol in policies.items():
        t0 = time.perf_counter()
        parts = [simulate(n_sessions, seed=s, config=config, policy=pol) for s in seeds]
        sessions = pd.concat([p.sessions for p in parts], ignore_index=True)
        per_session_values[name] = sessions["expected_reward"].to_numpy(dtype=float)
        row = closed_loop_row(SimResult(customers=parts[0].customers, contacts=parts[0].contacts,
                                        events=parts[0].events, decisions=parts[0].decisions, config=config,
                                        sessions=sessions))
        row["policy"], row["seconds"] = name, time.perf_counter() - t0
        rows.append(row)
    tab = pd.DataFrame(rows).set_index("policy")
    if "never offer" in tab.index and "full-information" in tab.index:
        r0, rf = per_session_values["never offer"], per_session_values["full-information"]
        n = len(r0)
        b = float(np.mean(rf - r0))
        norm, lo, hi, gain_se = [], [], [], []
        for name in tab.index:
            dv = per_session_values[name] - r0
            ratio = float(np.mean(dv)) / b
            se = float(np.std(dv - ratio * (rf - r0), ddof=1) / math.sqrt(n) / abs(b))
            norm.append(ratio)
            lo.append(ratio - Z95 * se)
            hi.append(ratio + Z95 * se)
            gain_se.append(float(np.std(dv, ddof=1) / math.sqrt(n)))
        tab["gain_vs_never"] = tab["value"] - tab.loc["never offer", "value"]
        tab["gain_se_paired"] = gain_se
        tab["norm_vs_full_info"], tab["norm_ci_low"], tab["norm_ci_high"] = norm, lo, hi
    return (tab, per_session_values) if per_session else tab


def deployable(ms: ModelSet) -> Scorer:
    """The scorer a site would run (no reasons: the simulator does not read them)."""
    return Scorer(ms, n_reasons=0)


def append_rows(path: str | Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append result rows to a JSON-lines file (its folder made if needed); returns them as written
    (numpy numbers as plain floats), so a script can summarise what the file now holds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, default=float) for row in rows]
    with path.open("a") as f:
        f.writelines(line + "\n" for line in lines)
    return [json.loads(line) for line in lines]
