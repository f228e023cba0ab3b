"""Tests of nextchannel.evaluate: off-policy estimators, intervals, the DataFrame entry point and
the oracle helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel import evaluate as ev
from nextchannel.errors import ValidationError
from nextchannel.evaluate import (
    Estimate, dm, dr, estimate_policy_value, ips, normalised_value, policy_value_true, snips)

# ---------------------------------------------------------------------------------------------
# A small case computed by hand
# ---------------------------------------------------------------------------------------------
REWARD = np.array([1.0, 0.0, 1.0, 0.5])
ACTION = np.array([0, 1, 2, 1])
PROP = np.array([0.5, 0.25, 0.25, 0.5])
TARGET = np.array([[0.2, 0.8, 0.0],
                   [0.0, 1.0, 0.0],
                   [0.5, 0.0, 0.5],
                   [0.25, 0.5, 0.25]])
HAT = np.array([[0.5, 0.5, 0.5],
                [0.1, 0.2, 0.3],
                [1.0, 0.0, 0.8],
                [0.0, 0.4, 0.4]])
# w = target[i, a_i] / p_i = (0.2/0.5, 1/0.25, 0.5/0.25, 0.5/0.5) = (0.4, 4, 2, 1)
W = np.array([0.4, 4.0, 2.0, 1.0])
# w * r = (0.4, 0, 2, 0.5), sum 2.9
IPS_VALUE = 2.9 / 4                       # 0.725
SNIPS_VALUE = 2.9 / (0.4 + 4 + 2 + 1)     # 2.9 / 7.4
# DM rounds: 0.2*0.5 + 0.8*0.5 = 0.5; 0.2; 0.5*1 + 0.5*0.8 = 0.9; 0.5*0.4 + 0.25*0.4 = 0.3
DM_VALUE = (0.5 + 0.2 + 0.9 + 0.3) / 4    # 0.475
# DR corrections w * (r - hat[a_i]): 0.4*(1-0.5) = 0.2; 4*(0-0.2) = -0.8; 2*(1-0.8) = 0.4; 1*(0.5-0.4) = 0.1
DR_VALUE = (1.9 + (0.2 - 0.8 + 0.4 + 0.1)) / 4   # 0.45


def test_point_estimates_by_hand():
    assert ips(REWARD, ACTION, PROP, TARGET).value == pytest.approx(IPS_VALUE)
    assert snips(REWARD, ACTION, PROP, TARGET).value == pytest.approx(SNIPS_VALUE)
    assert dm(REWARD, ACTION, PROP, TARGET, HAT).value == pytest.approx(DM_VALUE)
    assert dr(REWARD, ACTION, PROP, TARGET, HAT).value == pytest.approx(DR_VALUE)


def test_estimate_without_interval_has_nan_bounds_and_metadata():
    est = ips(REWARD, ACTION, PROP, TARGET)
    assert isinstance(est, Estimate)
    assert (est.estimator, est.n, est.ci, est.ci_method) == ("ips", 4, None, None)
    assert math.isnan(est.low) and math.isnan(est.high)
    with pytest.raises(AttributeError):
        est.value = 1.0  # type: ignore[misc]  # frozen
    assert est.to_dict()["value"] == pytest.approx(IPS_VALUE)


def test_normal_interval_by_hand():
    # IPS contributions (0.4, 0, 2, 0.5): mean 0.725, sample sd with ddof=1, se = sd / sqrt(4)
    c = np.array([0.4, 0.0, 2.0, 0.5])
    sd = math.sqrt(((c - 0.725) ** 2).sum() / 3)
    se = sd / 2
    est = ips(REWARD, ACTION, PROP, TARGET, ci=0.95, ci_method="normal")
    assert est.se == pytest.approx(se)
    assert est.low == pytest.approx(0.725 - 1.959963984540054 * se)
    assert est.high == pytest.approx(0.725 + 1.959963984540054 * se)
    assert est.ci_method == "normal"


def test_snips_delta_method_se_by_hand():
    # influence psi_i = w_i (r_i - V) / mean(w); se = sqrt(sum psi^2 / (n - 1)) / sqrt(n)
    v = SNIPS_VALUE
    psi = W * (REWARD - v) / W.mean()
    se = math.sqrt((psi ** 2).sum() / 3) / 2
    est = snips(REWARD, ACTION, PROP, TARGET, ci=0.9, ci_method="normal")
    assert est.se == pytest.approx(se)
    assert est.high - est.value == pytest.approx(1.6448536269514722 * se)


def test_dr_equals_dm_when_all_weights_are_zero():
    # the target never picks the logged action, so w = 0 and the correction term vanishes
    target = np.array([[0.0, 0.5, 0.5], [0.3, 0.0, 0.7], [1.0, 0.0, 0.0], [0.6, 0.0, 0.4]])
    a = dr(REWARD, ACTION, PROP, target, HAT, ci=0.95, random_state=3)
    b = dm(REWARD, ACTION, PROP, target, HAT, ci=0.95, random_state=3)
    assert a.value == pytest.approx(b.value)
    assert (a.low, a.high) == pytest.approx((b.low, b.high))
    assert ips(REWARD, ACTION, PROP, target).value == 0.0


def test_snips_all_zero_weights_is_nan():
    target = np.array([[0.0, 0.5, 0.5], [0.3, 0.0, 0.7], [1.0, 0.0, 0.0], [0.6, 0.0, 0.4]])
    assert math.isnan(snips(REWARD, ACTION, PROP, target).value)


def test_target_equal_to_logging_policy_gives_mean_reward():
    # w_i = 1 for every round: IPS = SNIPS = plain mean of rewards
    target = np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    for fn in (ips, snips):
        assert fn(REWARD, ACTION, PROP, target).value == pytest.approx(REWARD.mean())


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------
def test_bootstrap_is_deterministic_for_a_seed():
    a = dr(REWARD, ACTION, PROP, TARGET, HAT, ci=0.95, n_bootstrap=300, random_state=7)
    b = dr(REWARD, ACTION, PROP, TARGET, HAT, ci=0.95, n_bootstrap=300, random_state=7)
    c = dr(REWARD, ACTION, PROP, TARGET, HAT, ci=0.95, n_bootstrap=300, random_state=8)
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)
    g = dr(REWARD, ACTION, PROP, TARGET, HAT, ci=0.95, n_bootstrap=300,
           random_state=np.random.default_rng(7))
    assert (g.low, g.high) == (a.low, a.high)
    assert a.low <= a.value <= a.high and a.ci == 0.95 and a.ci_method == "bootstrap"


def test_snips_bootstrap_resamples_numerator_and_denominator_together():
    # reproduce the documented draws with plain index resampling: same rows for both sums
    rng = np.random.default_rng(11)
    idx = rng.integers(0, 4, size=(200, 4), dtype=np.int32)
    reps = (W * REWARD)[idx].sum(axis=1) / W[idx].sum(axis=1)
    lo, hi = np.quantile(reps, [0.05, 0.95])
    est = snips(REWARD, ACTION, PROP, TARGET, ci=0.9, n_bootstrap=200, random_state=11)
    assert (est.low, est.high) == pytest.approx((lo, hi))


def test_bootstrap_does_not_depend_on_chunk_size(monkeypatch):
    rng = np.random.default_rng(0)
    n = 300
    r, a, p, t, h = _bandit_arrays(rng, n)
    whole = dr(r, a, p, t, h, ci=0.95, n_bootstrap=50, random_state=5)
    monkeypatch.setattr(ev, "_BOOTSTRAP_CHUNK_ELEMS", 7 * n)   # 7 resamples per chunk
    chunked = dr(r, a, p, t, h, ci=0.95, n_bootstrap=50, random_state=5)
    assert (whole.low, whole.high) == pytest.approx((chunked.low, chunked.high), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Synthetic bandit with a known true value: unbiasedness and coverage
# ---------------------------------------------------------------------------------------------
N_CONTEXTS, N_ACTIONS = 20, 3
_WORLD = np.random.default_rng(2024)
Q = _WORLD.uniform(0.1, 0.9, size=(N_CONTEXTS, N_ACTIONS))        # true P(reward = 1 | x, a)
LOGGING = _WORLD.dirichlet(np.full(N_ACTIONS, 8.0), size=N_CONTEXTS)  # uniform-ish, all > 0
_greedy = np.eye(N_ACTIONS)[Q.argmax(axis=1)]
TARGET_POLICY = 0.8 * _greedy + 0.2 / N_ACTIONS                     # epsilon-greedy on the truth
TRUE_VALUE = float((TARGET_POLICY * Q).sum(axis=1).mean())          # contexts are uniform
Q_HAT = np.clip(Q + _WORLD.normal(0.0, 0.15, size=Q.shape) + 0.1, 0, 1)  # deliberately wrong


def _bandit_arrays(rng: np.random.Generator, n: int):
    x = rng.integers(0, N_CONTEXTS, n)
    u = rng.random(n)
    a = (u[:, None] > np.cumsum(LOGGING[x], axis=1)).sum(axis=1)
    a = np.minimum(a, N_ACTIONS - 1)
    r = (rng.random(n) < Q[x, a]).astype(float)
    return r, a, LOGGING[x, a], TARGET_POLICY[x], Q_HAT[x]


def test_estimators_are_unbiased_ish_and_cover_on_a_known_bandit():
    rng = np.random.default_rng(123)
    reps, n = 150, 400
    values = {k: [] for k in ("ips", "snips", "dr", "dm")}
    covered = {k: 0 for k in values}
    for _ in range(reps):
        r, a, p, t, h = _bandit_arrays(rng, n)
        for name, fn in (("ips", ips), ("snips", snips)):
            e = fn(r, a, p, t, ci=0.95, ci_method="normal")
            values[name].append(e.value)
            covered[name] += e.low <= TRUE_VALUE <= e.high
        for name, fn in (("dr", dr), ("dm", dm)):
            e = fn(r, a, p, t, h, ci=0.95, ci_method="normal")
            values[name].append(e.value)
            covered[name] += e.low <= TRUE_VALUE <= e.high
    for name in ("ips", "snips", "dr"):
        v = np.asarray(values[name])
        # mean over reps is within 4 Monte-Carlo standard errors of the truth
        assert abs(v.mean() - TRUE_VALUE) < 4 * v.std(ddof=1) / math.sqrt(reps), name
        assert covered[name] / reps >= 0.88, (name, covered[name])
    # DM inherits the reward model's bias: it must be visibly off (the test would catch a DR
    # that silently fell back to DM)
    dm_bias = np.mean(values["dm"]) - TRUE_VALUE
    assert abs(dm_bias) > 0.02 and covered["dm"] / reps < 0.5


def test_bootstrap_coverage_on_a_known_bandit():
    rng = np.random.default_rng(99)
    reps = 40
    hits = {"snips": 0, "dr": 0}
    for _ in range(reps):
        r, a, p, t, h = _bandit_arrays(rng, 300)
        frame = estimate_policy_value(pd.DataFrame({"action": np.array(["a", "b", "c"])[a], "propensity": p, "reward": r}), target=t, actions=["a", "b", "c"], reward_hat=h, estimators=("snips", "dr"), n_bootstrap=200, random_state=int(rng.integers(1 << 30)))
        for k in hits:
            hits[k] += frame.loc[k, "low"] <= TRUE_VALUE <= frame.loc[k, "high"]
    assert hits["snips"] >= 34 and hits["dr"] >= 34, hits   # >= 85% of 40


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------
def _args(**over):
    base = dict(reward=REWARD, action=ACTION, propensity=PROP, target=TARGET, reward_hat=HAT)
    base.update(over)
    return base


BAD_INPUTS = [
    (dict(propensity=[0.5, 0.0, 0.25, 0.5]), r"propensity must be in \(0, 1\], got 0.0 at row 1.*zero propensity"),
    (dict(propensity=[0.5, 0.25, 1.5, 0.5]), r"propensity must be in \(0, 1\], got 1.5 at row 2"),
    (dict(propensity=[0.5, -0.1, 0.25, 0.5]), r"propensity must be in \(0, 1\], got -0.1 at row 1"),
    (dict(propensity=[0.5, 0.25, np.nan, 0.5]), r"propensity must not be missing.*NaN at row 2"),
    (dict(propensity=[0.5, 0.25, 0.25]), r"propensity must have one entry per logged round.*expected length 4, got 3"),
    (dict(action=[0, 1, 2]), r"action must have one entry per logged round.*expected length 4, got 3"),
    (dict(target=TARGET[:3]), r"target must have one entry per logged round.*expected length 4, got 3"),
    (dict(action=[0, 1, 3, 1]), r"action must be an index in \[0, 3\).*got 3 at row 2"),
    (dict(action=[0, -1, 2, 1]), r"action must be an index in \[0, 3\).*got -1 at row 1"),
    (dict(action=[0.0, 1.0, 2.0, 1.0]), r"action must hold integer action indices.*float64"),
    (dict(target=TARGET * 0.9), r"target rows must sum to 1 \(tolerance 1e-06\), got 0.9 in row 0"),
    (dict(target=TARGET + np.array([[0, 0, 2e-6], [0, 0, 0], [0, 0, 0], [0, 0, 0]])),
     r"target rows must sum to 1.*row 0"),
    (dict(target=np.array([[1.2, -0.2, 0], [0, 1, 0], [0.5, 0, 0.5], [0.25, 0.5, 0.25]])),
     r"target must hold probabilities >= 0, got -0.2 at row 0, column 1"),
    (dict(target=np.full((4, 2), 0.5)), r"action must be an index in \[0, 2\).*got 2 at row 2"),
    (dict(target=TARGET[0]), r"target must be a 2-D array of shape \(n, n_actions\), got shape \(3,\)"),
    (dict(reward=[1.0, np.nan, 0.0, 0.0]), r"reward must hold finite numbers, got missing \(NaN\).*row 1"),
    (dict(reward=[]), r"reward must hold at least one logged round"),
    (dict(reward=["a", "b", "c", "d"]), r"reward must be an array of numbers"),
]
BAD_REWARD_HAT = [
    (dict(reward_hat=HAT[:, :2]), r"reward_hat must have the shape of target \(n, n_actions\) = \(4, 3\), got \(4, 2\)"),
    (dict(reward_hat=HAT[:3]), r"reward_hat must have the shape of target.*got \(3, 3\)"),
    (dict(reward_hat=np.where(HAT > 0.9, np.inf, HAT)), r"reward_hat must hold finite numbers, got infinite.*row 2, column 0"),
    (dict(reward_hat=None), r"reward_hat is required by DM and DR"),
]


@pytest.mark.parametrize("over, match", BAD_INPUTS)
@pytest.mark.parametrize("fn", [ips, snips, dm, dr])
def test_bad_inputs_raise_clear_errors(fn, over, match):
    kw = _args(**over)
    if fn in (ips, snips):
        kw.pop("reward_hat")
    with pytest.raises(ValidationError, match=match):
        fn(**kw)


@pytest.mark.parametrize("over, match", BAD_REWARD_HAT)
@pytest.mark.parametrize("fn", [dm, dr])
def test_bad_reward_hat_raises_clear_errors(fn, over, match):
    with pytest.raises(ValidationError, match=match):
        fn(**_args(**over))


BAD_CI = [
    (dict(ci=1.0), r"ci must be a confidence level in \(0, 1\) or None, got 1.0"),
    (dict(ci=0), r"ci must be a confidence level in \(0, 1\) or None, got 0"),
    (dict(ci=0.95, ci_method="t"), r"ci_method must be 'bootstrap' or 'normal', got 't'"),
    (dict(ci=0.95, n_bootstrap=1), r"n_bootstrap must be an integer >= 2, got 1"),
]


@pytest.mark.parametrize("kw, match", BAD_CI)
def test_bad_interval_arguments(kw, match):
    with pytest.raises(ValidationError, match=match):
        ips(REWARD, ACTION, PROP, TARGET, **kw)


def test_validation_error_is_a_value_error():
    with pytest.raises(ValueError):
        ips(REWARD, ACTION, [0.5, 0.0, 0.25, 0.5], TARGET)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------
@st.composite
def logged_rounds(draw):
    n = draw(st.integers(1, 25))
    k = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    target = rng.dirichlet(np.ones(k), size=n)
    return (rng.random(n), rng.integers(0, k, n), rng.uniform(0.05, 1.0, n), target,
            rng.random((n, k)))


@settings(max_examples=40, deadline=None)
@given(logged_rounds(), st.integers(0, 1000))
def test_permutation_invariance_and_no_input_mutation(data, perm_seed):
    r, a, p, t, h = data
    copies = [x.copy() for x in data]
    perm = np.random.default_rng(perm_seed).permutation(len(r))
    for name, fn in (("ips", ips), ("snips", snips)):
        v1 = fn(r, a, p, t).value
        v2 = fn(r[perm], a[perm], p[perm], t[perm]).value
        assert v1 == pytest.approx(v2, rel=1e-9, abs=1e-12), name
    for fn in (dm, dr):
        assert fn(r, a, p, t, h).value == pytest.approx(fn(r[perm], a[perm], p[perm], t[perm], h[perm]).value,
                                                         rel=1e-9, abs=1e-12)
    dr(r, a, p, t, h, ci=0.9, n_bootstrap=20, random_state=0)
    for before, after in zip(copies, data):
        np.testing.assert_array_equal(before, after)


@settings(max_examples=30, deadline=None)
@given(logged_rounds())
def test_snips_lies_within_the_reward_range(data):
    r, a, p, t, _ = data
    v = snips(r, a, p, t).value
    if not math.isnan(v):
        assert r.min() - 1e-12 <= v <= r.max() + 1e-12


# ---------------------------------------------------------------------------------------------
# DataFrame entry point
# ---------------------------------------------------------------------------------------------
ACTIONS = ["none", "chat", "phone"]


def _logs():
    return pd.DataFrame({"action": np.array(ACTIONS)[ACTION], "propensity": PROP, "reward": REWARD},
                        index=[10, 11, 12, 13])


def test_estimate_policy_value_matches_the_array_functions():
    frame = estimate_policy_value(_logs(), target=TARGET, actions=ACTIONS, reward_hat=HAT, n_bootstrap=200, random_state=4)
    assert list(frame.index) == ["ips", "snips", "dm", "dr"] and frame.index.name == "estimator"
    assert list(frame.columns) == ["value", "low", "high", "se", "n"]
    assert frame["value"].tolist() == pytest.approx([IPS_VALUE, SNIPS_VALUE, DM_VALUE, DR_VALUE])
    # one shared set of resamples: each row equals its own function with the same seed
    alone = dr(REWARD, ACTION, PROP, TARGET, HAT, ci=0.95, n_bootstrap=200, random_state=4)
    assert (frame.loc["dr", "low"], frame.loc["dr", "high"]) == pytest.approx((alone.low, alone.high))
    alone = snips(REWARD, ACTION, PROP, TARGET, ci=0.95, n_bootstrap=200, random_state=4)
    assert (frame.loc["snips", "low"], frame.loc["snips", "high"]) == pytest.approx((alone.low, alone.high))


def test_estimate_policy_value_accepts_dataframes_in_any_column_order():
    tgt = pd.DataFrame(TARGET, columns=ACTIONS, index=[10, 11, 12, 13])[["phone", "none", "chat"]]
    hat = pd.DataFrame(HAT, columns=ACTIONS, index=[10, 11, 12, 13])[["chat", "phone", "none"]]
    frame = estimate_policy_value(_logs(), target=tgt, actions=ACTIONS, reward_hat=hat, ci=None)
    assert frame["value"].tolist() == pytest.approx([IPS_VALUE, SNIPS_VALUE, DM_VALUE, DR_VALUE])
    assert frame["low"].isna().all()


def test_estimate_policy_value_without_reward_hat_defaults_to_ips_snips():
    frame = estimate_policy_value(_logs(), target=TARGET, actions=ACTIONS, ci=0.9, ci_method="normal")
    assert list(frame.index) == ["ips", "snips"]
    assert (frame["low"] < frame["value"]).all() and (frame["value"] < frame["high"]).all()


BAD_FRAMES = [
    (dict(logs=_logs().drop(columns="propensity")), r"logs must have columns.*missing \['propensity'\]"),
    (dict(logs=_logs().assign(action=["none", "chat", "fax", "chat"])),
     r"logs\['action'\] must hold names among actions.*got 'fax' at row 12"),
    (dict(estimators=("ips", "dr")), r"estimators \['dr'\] need reward_hat"),
    (dict(estimators=("ips", "magic")), r"estimators must be among"),
    (dict(actions=["none", "chat", "chat"]), r"actions must be a non-empty sequence of distinct names"),
    (dict(target=TARGET[:, :2]), r"target must have shape \(n, 3\).*got shape \(4, 2\)"),
    (dict(target=pd.DataFrame(TARGET[:, :2], columns=["none", "chat"], index=[10, 11, 12, 13])),
     r"target must have a column per action.*missing \['phone'\]"),
    (dict(target=pd.DataFrame(TARGET, columns=ACTIONS)), r"target must have the same index as logs"),
    (dict(logs=_logs().assign(propensity=[0.5, 0.25, None, 0.5])), r"propensity must not be missing"),
    (dict(logs=[1, 2]), r"logs must be a pandas DataFrame, got list"),
]


@pytest.mark.parametrize("over, match", BAD_FRAMES)
def test_estimate_policy_value_bad_inputs(over, match):
    kw = dict(logs=_logs(), target=TARGET, actions=ACTIONS, ci=None)
    kw.update(over)
    with pytest.raises(ValidationError, match=match):
        estimate_policy_value(**kw)


# ---------------------------------------------------------------------------------------------
# Oracle helpers
# ---------------------------------------------------------------------------------------------
def test_policy_value_true_by_hand():
    target = [[1.0, 0.0], [0.25, 0.75]]
    oracle = [[0.2, 0.9], [0.4, 0.8]]
    # (0.2 + (0.25*0.4 + 0.75*0.8)) / 2 = (0.2 + 0.7) / 2
    assert policy_value_true(target, oracle) == pytest.approx(0.45)
    with pytest.raises(ValidationError, match=r"ev must have the shape of target \(2, 2\), got \(2, 3\)"):
        policy_value_true(target, [[0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValidationError, match=r"target rows must sum to 1"):
        policy_value_true([[0.5, 0.4]], [[1.0, 1.0]])


def test_normalised_value():
    assert normalised_value(0.3, 0.1, 0.5) == pytest.approx(0.5)    # (0.3 - 0.1) / (0.5 - 0.1)
    assert normalised_value(0.1, 0.1, 0.5) == 0.0
    assert normalised_value(0.5, 0.1, 0.5) == 1.0
    with pytest.raises(ValidationError, match=r"v_reference must differ from v_never.*got both equal to 0.2"):
        normalised_value(0.3, 0.2, 0.2)
    with pytest.raises(ValidationError, match=r"v_policy must be a finite number, got nan"):
        normalised_value(float("nan"), 0.2, 0.4)


def test_max_weight_clips_importance_weights_by_hand():
    target = [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    hat = [[0.2, 0.4], [0.6, 1.0], [0.1, 0.3]]
    args = ([1.0, 0.0, 1.0], [1, 0, 0], [0.05, 0.5, 0.5], target)
    # round 0: weight 1/0.05 = 20, clipped at 10: 0.4 + 10·0.6; round 1: 0.6 + 2·(0 − 0.6); round 2: w = 0
    assert ev.dr(*args, hat, max_weight=10).value == pytest.approx((6.4 - 0.6 + 0.3) / 3)
    assert ev.dr(*args, hat).value == pytest.approx((12.4 - 0.6 + 0.3) / 3)
    assert ev.ips(*args, max_weight=10).value == pytest.approx(10.0 / 3)
    assert ev.snips(*args, max_weight=10).value == pytest.approx(10.0 / 12.0)
    # a bound above every weight changes nothing
    assert ev.dr(*args, hat, max_weight=1e9).value == ev.dr(*args, hat).value


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "10"])
def test_max_weight_must_be_a_positive_number(bad):
    with pytest.raises(ValidationError, match="max_weight"):
        ev.dr([1.0], [0], [0.5], [[1.0, 0.0]], [[0.0, 0.0]], max_weight=bad)


def test_compare_with_max_weight_pairs_the_clipped_estimates():
    rng = np.random.default_rng(3)
    n = 400
    logs = pd.DataFrame({"action": rng.choice(["none", "chat"], n, p=[0.95, 0.05]), "reward": rng.normal(size=n)})
    logs["propensity"] = np.where(logs["action"] == "chat", 0.05, 0.95)
    hat = rng.normal(size=(n, 2))
    champion = np.tile([1.0, 0.0], (n, 1))
    challenger = np.tile([0.0, 1.0], (n, 1))
    c = ev.compare(logs, champion=champion, challenger=challenger, actions=["none", "chat"], reward_hat=hat,
                   max_weight=5.0)
    codes = (logs["action"] == "chat").to_numpy().astype(int)
    r, p = logs["reward"].to_numpy(), logs["propensity"].to_numpy()
    one = ev.dr(r, codes, p, challenger, hat, max_weight=5.0).value - ev.dr(r, codes, p, champion, hat, max_weight=5.0).value
    assert c.difference == pytest.approx(one)
    unclipped = ev.compare(logs, champion=champion, challenger=challenger, actions=["none", "chat"], reward_hat=hat)
    assert c.high - c.low < unclipped.high - unclipped.low
