"""Tests of nextchannel.evaluate.compare: champion against challenger on the same logs, paired."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nextchannel.errors import ValidationError
from nextchannel.evaluate import Comparison, Estimate, compare, dr, snips

ACTIONS = ["none", "chat", "phone"]


def _bandit(n: int = 3000, seed: int = 1):
    """Uniform logging over 3 actions; action 'phone' is worth 1.0 on average, 'none' 0.2, 'chat' 0.5."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, size=n)
    means = np.array([0.2, 0.5, 1.0])
    reward = means[a] + rng.normal(0.0, 1.0, size=n)
    logs = pd.DataFrame({"action": np.array(ACTIONS, dtype=object)[a], "propensity": 1.0 / 3, "reward": reward})
    hat = np.tile(means + 0.1, (n, 1)) + rng.normal(0.0, 0.05, size=(n, 3))   # a decent reward model
    return logs, hat


def _always(j: int, n: int) -> np.ndarray:
    t = np.zeros((n, 3))
    t[:, j] = 1.0
    return t


@pytest.mark.parametrize("estimator", ["dr", "snips", "ips", "dm"])
@pytest.mark.parametrize("ci_method", ["normal", "bootstrap"])
def test_identical_policies_are_not_distinguishable_with_exact_zero(estimator, ci_method):
    logs, hat = _bandit(500)
    pol = np.full((500, 3), 1.0 / 3)
    c = compare(logs, champion=pol, challenger=pol.copy(), actions=ACTIONS, reward_hat=hat, estimator=estimator, ci_method=ci_method, n_bootstrap=200)
    assert c.difference == 0.0 and c.low == 0.0 and c.high == 0.0
    assert c.verdict == "not distinguishable"
    assert c.champion == c.challenger


@pytest.mark.parametrize("estimator", ["dr", "snips"])
@pytest.mark.parametrize("ci_method", ["normal", "bootstrap"])
def test_clearly_better_and_swapped_worse(estimator, ci_method):
    logs, hat = _bandit()
    n = len(logs)
    champ, chall = _always(0, n), _always(2, n)
    c = compare(logs, champion=champ, challenger=chall, actions=ACTIONS, reward_hat=hat, estimator=estimator, ci_method=ci_method, n_bootstrap=300)
    assert isinstance(c, Comparison) and c.verdict == "better"
    assert c.difference == pytest.approx(c.challenger.value - c.champion.value)
    assert 0.6 < c.difference < 1.0            # true difference 0.8
    assert c.low < c.difference < c.high and c.low > 0
    w = compare(logs, champion=chall, challenger=champ, actions=ACTIONS, reward_hat=hat, estimator=estimator, ci_method=ci_method, n_bootstrap=300)
    assert w.verdict == "worse"
    assert w.difference == pytest.approx(-c.difference)


def test_min_effect_makes_a_small_gain_not_distinguishable():
    logs, hat = _bandit()
    n = len(logs)
    c = compare(logs, champion=_always(0, n), challenger=_always(2, n), actions=ACTIONS, reward_hat=hat, min_effect=2.0)
    assert c.low > 0 and c.verdict == "not distinguishable" and c.min_effect == 2.0


@pytest.mark.parametrize("estimator", ["dr", "snips"])
def test_paired_interval_is_narrower_than_separate_intervals(estimator):
    # Two close policies: challenger moves 10% of the mass from 'none' to 'phone'.
    logs, hat = _bandit()
    n = len(logs)
    champ = np.tile([0.6, 0.2, 0.2], (n, 1))
    chall = np.tile([0.5, 0.2, 0.3], (n, 1))
    c = compare(logs, champion=champ, challenger=chall, actions=ACTIONS, reward_hat=hat, estimator=estimator)
    separate = math.sqrt(c.champion.se ** 2 + c.challenger.se ** 2)
    assert c.se < 0.5 * separate
    assert c.high - c.low < 0.5 * (c.champion.high - c.champion.low)


def _same_estimate(a: Estimate, b: Estimate) -> None:
    # Same resamples; the bootstrap sums may differ in the last bit (one matrix product over 2 vs 1 columns).
    da, db = a.to_dict(), b.to_dict()
    for k in ("low", "high"):
        assert da.pop(k) == pytest.approx(db.pop(k), rel=1e-12, abs=1e-12)
    assert da == db


def test_per_policy_estimates_equal_the_estimators_own():
    logs, hat = _bandit(800)
    n = len(logs)
    champ, chall = np.full((n, 3), 1 / 3), _always(1, n)
    codes = pd.Index(ACTIONS).get_indexer(logs["action"])
    for method in ("normal", "bootstrap"):
        c = compare(logs, champion=champ, challenger=chall, actions=ACTIONS, reward_hat=hat, ci_method=method, n_bootstrap=200, random_state=7)
        own = dr(logs["reward"], codes, logs["propensity"], chall, hat, ci=0.95, ci_method=method,
                 n_bootstrap=200, random_state=7)
        _same_estimate(c.challenger, own)
        s = compare(logs, champion=champ, challenger=chall, actions=ACTIONS, estimator="snips", ci_method=method, n_bootstrap=200, random_state=7)
        own_s = snips(logs["reward"], codes, logs["propensity"], champ, ci=0.95, ci_method=method,
                      n_bootstrap=200, random_state=7)
        _same_estimate(s.champion, own_s)


def test_snips_delta_method_agrees_with_paired_bootstrap():
    logs, _ = _bandit(2000)
    n = len(logs)
    champ = np.tile([0.6, 0.2, 0.2], (n, 1))
    chall = np.tile([0.2, 0.2, 0.6], (n, 1))
    a = compare(logs, champion=champ, challenger=chall, actions=ACTIONS, estimator="snips", ci_method="normal")
    b = compare(logs, champion=champ, challenger=chall, actions=ACTIONS, estimator="snips", ci_method="bootstrap", n_bootstrap=500)
    assert a.difference == b.difference
    assert (b.high - b.low) == pytest.approx(a.high - a.low, rel=0.2)


def test_decision_frames_and_ev_columns_are_accepted():
    logs, hat = _bandit(400)
    n = len(logs)
    champ = pd.DataFrame({"session_id": "s", **{f"p_{a}": _always(0, n)[:, j] for j, a in enumerate(ACTIONS)},
                          **{f"ev_{a}": hat[:, j] for j, a in enumerate(ACTIONS)}, "p_accept": 0.3})
    chall = pd.DataFrame({a: _always(2, n)[:, j] for j, a in enumerate(ACTIONS)})
    c = compare(logs, champion=champ, challenger=chall, actions=ACTIONS, reward_hat=champ)
    ref = compare(logs, champion=_always(0, n), challenger=_always(2, n), actions=ACTIONS, reward_hat=hat)
    assert c == ref
    d = c.to_dict()
    assert d["verdict"] == "better" and d["challenger"]["estimator"] == "dr" and d["n"] == n


def test_inputs_are_not_mutated_and_result_is_frozen():
    logs, hat = _bandit(200)
    champ = np.full((200, 3), 1 / 3)
    before = (logs.copy(), champ.copy(), hat.copy())
    c = compare(logs, champion=champ, challenger=_always(1, 200), actions=ACTIONS, reward_hat=hat)
    pd.testing.assert_frame_equal(logs, before[0])
    assert np.array_equal(champ, before[1]) and np.array_equal(hat, before[2])
    with pytest.raises(AttributeError):
        c.verdict = "better"  # type: ignore[misc]
    assert isinstance(c.champion, Estimate)


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------
_LOGS = pd.DataFrame({"action": ["none", "chat", "phone", "chat"], "propensity": 0.5, "reward": [0.0, 1.0, 0.5, 0.0]})
_POL = np.full((4, 3), 1 / 3)
_HAT = np.zeros((4, 3))


def _frame(cols, index=None):
    return pd.DataFrame({c: 1 / len(cols) for c in cols}, index=index if index is not None else range(4))


BAD = [
    (dict(champion=np.full((3, 3), 1 / 3)),
     r"champion must have shape \(n, n_actions\) = \(4, 3\): one row per logged round .* got shape \(3, 3\)"),
    (dict(challenger=np.full((4, 2), 0.5)),
     r"challenger must have shape \(n, n_actions\) = \(4, 3\).*\['none', 'chat', 'phone'\].*got shape \(4, 2\)"),
    (dict(champion=np.full(4, 1.0)), r"champion must be a 2-D array of shape \(n, n_actions\), got shape \(4,\)"),
    (dict(champion=_frame(["p_none", "p_chat"])),
     r"champion must have a column p_<action> \(or <action>\) for every action .* missing \['p_phone'\]"),
    (dict(challenger=_frame(["p_none", "p_chat", "p_phone", "p_email", "ev_email"])),
     r"challenger has p_<action> columns for actions \['email'\] that are not in actions"),
    (dict(champion=_frame(["p_none", "p_chat", "p_phone"], index=[10, 11, 12, 13])),
     r"champion must have the same index as logs"),
    (dict(champion=_frame(["p_none", "p_chat", "p_phone"], index=range(5))),
     r"champion must have one row per logged round: expected 4 rows \(len\(logs\)\), got 5"),
    (dict(actions=["none", "chat"]),
     r"logs\['action'\] must hold names among actions \['none', 'chat'\], got 'phone' at row 2"),
    (dict(actions="none"), r"actions must be a sequence of action names, got the string 'none'"),
    (dict(actions=["none", "chat", "chat"]), r"actions must be a non-empty sequence of distinct names"),
    (dict(champion=np.full((4, 3), 0.5)), r"champion rows must sum to 1 .* got 1.5 in row 0"),
    (dict(challenger=np.array([[1.5, -0.5, 0.0]] * 4)), r"challenger must hold probabilities >= 0, got -0.5"),
    (dict(estimator="switch-dr"), r"estimator must be one of \['ips', 'snips', 'dm', 'dr'\], got 'switch-dr'"),
    (dict(reward_hat=None), r"estimator 'dr' needs reward_hat: expected an array of shape \(n, 3\), got None"),
    (dict(reward_hat=np.zeros((4, 2))), r"reward_hat must have shape \(n, 3\)"),
    (dict(ci=None), r"ci must be a confidence level in \(0, 1\) for a comparison, got None"),
    (dict(ci=1.5), r"ci must be a confidence level in \(0, 1\) or None, got 1.5"),
    (dict(ci_method="bca"), r"ci_method must be 'bootstrap' or 'normal', got 'bca'"),
    (dict(min_effect=-0.1), r"min_effect must be a finite number >= 0, got -0.1"),
    (dict(logs=_LOGS.drop(columns="propensity")), r"logs must have columns .* missing \['propensity'\]"),
    (dict(logs=_LOGS.assign(propensity=[0.5, 0.0, 0.5, 0.5])), r"propensity must be in \(0, 1\], got 0.0 at row 1"),
]


@pytest.mark.parametrize("change, match", BAD)
def test_bad_inputs_raise_precise_validation_errors(change, match):
    kw = dict(champion=_POL, challenger=_POL, logs=_LOGS, actions=ACTIONS, reward_hat=_HAT)
    kw.update(change)
    with pytest.raises(ValidationError, match=match):
        compare(kw.pop("logs"), **kw)
