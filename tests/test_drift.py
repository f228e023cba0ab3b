"""Drift: PSI per feature (numeric, categorical, missing) and of the action mix; warnings."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel.drift import MIN_SHARE, action_mix, feature_psi, measure_drift, psi
from nextchannel.errors import DriftWarning, ValidationError


def _manual_psi(r, c):
    r = np.maximum(np.asarray(r, float) / np.sum(r), MIN_SHARE)
    c = np.maximum(np.asarray(c, float) / np.sum(c), MIN_SHARE)
    return float(np.sum((c - r) * np.log(c / r)))


def test_psi_matches_the_formula_on_quantile_bins():
    ref = np.arange(100, dtype=float)          # deciles: 10 bins of 10 values
    cur = np.concatenate([np.arange(50), np.full(50, 95.0)])  # half in the top bin
    counts_ref = [10] * 10 + [0]                # + the NaN bin
    counts_cur = [10] * 5 + [0] * 4 + [50] + [0]
    assert psi(ref, cur) == pytest.approx(_manual_psi(counts_ref, counts_cur))


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=20_000)
    same = psi(ref, rng.normal(size=20_000))
    small = psi(ref, rng.normal(0.2, size=20_000))
    large = psi(ref, rng.normal(1.0, size=20_000))
    assert same < 0.01 < small < large
    assert large > 0.25


def test_missing_values_have_their_own_bin():
    ref = pd.Series([1.0, 2.0, 3.0, 4.0] * 25)
    assert psi(ref, ref) == 0.0
    half_missing = pd.Series([1.0, np.nan] * 50)
    assert psi(ref, half_missing) > 1.0
    # NaN in the reference only: the current sample has none -> drift too
    assert psi(half_missing, ref) > 1.0


def test_categorical_levels_unseen_levels_and_codes():
    ref = pd.Series(["desktop"] * 60 + ["mobile"] * 40)
    assert psi(ref, ref.sample(frac=1, random_state=0)) == 0.0
    unseen = pd.Series(["desktop"] * 60 + ["tablet"] * 40)  # "tablet" never in the reference
    assert psi(ref, unseen) == pytest.approx(_manual_psi([60, 40, 0, 0], [60, 0, 40, 0]))
    # numeric codes as categories: 1 -> 2 is as far as 1 -> 0, unlike a quantile bin
    codes = pd.Series([0, 1, 2] * 30)
    t = feature_psi(pd.DataFrame({"device": codes}), pd.DataFrame({"device": codes.replace(1, 2)}),
                    categorical=["device"])
    assert t.loc["device", "kind"] == "categorical"
    assert t.loc["device", "psi"] == pytest.approx(_manual_psi([30, 30, 30, 0, 0], [30, 0, 60, 0, 0]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)), min_size=1, max_size=60),
       st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)), min_size=1, max_size=60))
def test_psi_is_finite_nonnegative_and_zero_on_itself(a, b):
    v = psi(a, b)
    assert math.isfinite(v) and v >= 0
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)


def test_feature_psi_orders_by_psi_and_reports_missing_shares():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"stable": rng.normal(size=3000), "shifted": rng.normal(size=3000),
                        "gone": rng.normal(size=3000), "only_ref": 1.0})
    cur = pd.DataFrame({"stable": rng.normal(size=1000), "shifted": rng.normal(2, size=1000),
                        "gone": np.nan})
    t = feature_psi(ref, cur)
    assert list(t.index)[-1] == "stable" and "only_ref" not in t.index
    assert t.loc["gone", "missing_current"] == 1.0 and t.loc["gone", "missing_reference"] == 0.0


def test_action_mix_table_and_psi():
    t = action_mix(["none"] * 70 + ["chat"] * 30, ["none"] * 40 + ["chat"] * 40 + ["phone"] * 20,
                   actions=["none", "chat"])
    assert list(t.index) == ["none", "chat", "phone"]
    assert t["reference"].tolist() == [0.7, 0.3, 0.0]
    assert t["current"].tolist() == pytest.approx([0.4, 0.4, 0.2])
    assert t.attrs["psi"] == pytest.approx(_manual_psi([70, 30, 0], [40, 40, 20]))


def test_drift_warns_once_naming_what_drifted_and_not_when_stable():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    cur = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(3, size=2000)})
    with pytest.warns(DriftWarning, match=r"1 of 3 measures drifted.*b \("):
        d = measure_drift(ref, cur, reference_actions=["none"] * 2000, current_actions=["none"] * 2000)
    assert d.drifted == ["b"] and d.action_psi == 0.0
    assert bool(d.features.loc["b", "drifted"]) and not bool(d.features.loc["a", "drifted"])
    summary = d.to_dict(top=1)
    assert list(summary["top_features"]) == ["b"] and summary["drifted"] == ["b"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert measure_drift(ref, ref).drifted == []
        assert measure_drift(ref, cur, warn=False).drifted == ["b"]


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": -1}, "threshold must be a finite number >= 0, got -1"),
    ({"threshold": float("nan")}, "threshold must be a finite number"),
    ({"reference_actions": ["none"]}, "must be given together"),
    ({"bins": 1}, "bins must be an integer >= 2, got 1"),
])
def test_bad_arguments(kwargs, match):
    ref = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ValidationError, match=match):
        measure_drift(ref, ref, **kwargs)


def test_bad_inputs():
    with pytest.raises(ValidationError, match="reference must be a pandas DataFrame, got list"):
        feature_psi([1, 2], pd.DataFrame({"a": [1]}))
    with pytest.raises(ValidationError, match="non-empty, got 0 and 1"):
        psi([], [1.0])
    with pytest.raises(ValidationError, match="numeric variable must hold numbers"):
        psi(pd.Series([1.0, 2.0]), pd.Series(["x", "y"]), categorical=False)
