"""Tests of nextchannel.diagnostics: uplift curves and their areas, uplift at k, calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel.diagnostics import (
    calibration_curve, expected_calibration_error, qini_auc, qini_curve, uplift_at_k, uplift_auc,
    uplift_curve)
from nextchannel.errors import ValidationError

# rows 0 and 1 tie on score 0.9 and are targeted together
Y = [1, 1, 0, 0, 1, 0]
T = [1, 0, 1, 0, 1, 0]
S = [0.9, 0.9, 0.5, 0.4, 0.3, 0.1]
X = [0, 1 / 3, 1 / 2, 2 / 3, 5 / 6, 1]
# k=2: T{y=1}, C{y=1}: Q = 1 - 1*(1/1) = 0          U = (1/1 - 1/1)*2 = 0
# k=3: + T{y=0}:       Q = 1 - 1*(2/1) = -1         U = (1/2 - 1/1)*3 = -1.5
# k=4: + C{y=0}:       Q = 1 - 1*(2/2) = 0          U = (1/2 - 1/2)*4 = 0
# k=5: + T{y=1}:       Q = 2 - 1*(3/2) = 0.5        U = (2/3 - 1/2)*5 = 5/6
# k=6: + C{y=0}:       Q = 2 - 1*(3/3) = 1          U = (2/3 - 1/3)*6 = 2
QINI = [0, 0, -1, 0, 0.5, 1]
UPLIFT = [0, 0, -1.5, 0, 5 / 6, 2]


def test_qini_curve_by_hand_with_ties():
    qc = qini_curve(Y, T, S)
    assert list(qc.columns) == ["fraction_targeted", "n_targeted", "gain", "random"]
    assert qc["n_targeted"].tolist() == [0, 2, 3, 4, 5, 6]
    assert qc["fraction_targeted"].tolist() == pytest.approx(X)
    assert qc["gain"].tolist() == pytest.approx(QINI)
    assert qc["random"].tolist() == pytest.approx(X)      # line from (0, 0) to (1, Q(n) = 1)


def test_uplift_curve_by_hand_with_ties():
    uc = uplift_curve(Y, T, S)
    assert uc["gain"].tolist() == pytest.approx(UPLIFT)
    assert uc["random"].tolist() == pytest.approx([2 * x for x in X])


def test_qini_auc_by_hand():
    # trapezoids: 0 + (1/6)(-1/2) + (1/6)(-1/2) + (1/6)(1/4) + (1/6)(3/4) = 0
    assert qini_auc(Y, T, S, normalize=False) == pytest.approx(0.0)
    # perfect ranking by y*(2t-1): {0, 4} then {2, 3, 5} then {1}: Q = 0, 2, 2, 1 at x = 0, 1/3, 5/6, 1
    # area 1/3 + 1 + 1/4 = 19/12; random area Q(n)/2 = 1/2
    assert qini_auc(Y, T, S) == pytest.approx((0 - 0.5) / (19 / 12 - 0.5))   # -6/13


def test_uplift_auc_by_hand():
    # trapezoids: (1/6)(-3/4) + (1/6)(-3/4) + (1/6)(5/12) + (1/6)(17/12) = 1/18
    assert uplift_auc(Y, T, S, normalize=False) == pytest.approx(1 / 18)
    # perfect (n_CR = 1 = n_TN, so treated before control): TR {0, 4}, CN {3, 5}, TN {2}, CR {1}
    # U at k = 0, 2, 4, 5, 6: 0, 2, 4, (2/3)*5, 2; x = 0, 1/3, 2/3, 5/6, 1
    area_perfect = (1 / 3) * 1 + (1 / 3) * 3 + (1 / 6) * (4 + 10 / 3) / 2 + (1 / 6) * (10 / 3 + 2) / 2
    assert uplift_auc(Y, T, S) == pytest.approx((1 / 18 - 1) / (area_perfect - 1))


def test_perfect_and_random_rankings():
    rng = np.random.default_rng(0)
    n = 2000
    t = rng.integers(0, 2, n)
    x = rng.random(n)
    y = (rng.random(n) < 0.2 + 0.3 * t * x).astype(int)     # uplift grows with x
    assert qini_auc(y, t, y * (2 * t - 1)) == pytest.approx(1.0)
    assert qini_auc(y, t, np.zeros(n)) == pytest.approx(0.0, abs=1e-12)   # one tie group = random line
    assert uplift_auc(y, t, np.zeros(n)) == pytest.approx(0.0, abs=1e-12)
    assert qini_auc(y, t, x) > 0.1 and uplift_auc(y, t, x) > 0.1
    assert qini_auc(y, t, -x) < -0.1


def test_constant_propensity_equals_unweighted():
    for fn in (qini_curve, uplift_curve):
        a, b = fn(Y, T, S), fn(Y, T, S, propensity=np.full(6, 0.3))
        pd.testing.assert_frame_equal(a, b)
    assert qini_auc(Y, T, S, propensity=np.full(6, 0.7)) == pytest.approx(qini_auc(Y, T, S))


def test_inverse_propensity_weighting_by_hand():
    y, t, e = [1, 0, 1, 0], [1, 1, 0, 0], [0.8, 0.4, 0.5, 0.5]
    # treated weights 1/0.8 = 1.25, 1/0.4 = 2.5, rescaled to sum 2: 2/3, 4/3; controls 2, 2 -> 1, 1
    # treated mean (2/3*1 + 4/3*0)/2 = 1/3; control mean 1/2
    assert uplift_at_k(y, t, [4, 3, 2, 1], k=1.0, propensity=e) == pytest.approx(1 / 3 - 1 / 2)
    assert uplift_at_k(y, t, [4, 3, 2, 1], k=1.0) == pytest.approx(0.0)


def test_weighting_removes_confounding():
    # treatment more likely where the baseline is high; the true uplift is 0.1 everywhere
    rng = np.random.default_rng(1)
    n = 40_000
    x = rng.random(n)
    e = 0.2 + 0.6 * x
    t = (rng.random(n) < e).astype(int)
    y = (rng.random(n) < 0.1 + 0.5 * x + 0.1 * t).astype(int)
    naive = uplift_at_k(y, t, x, k=1.0)
    weighted = uplift_at_k(y, t, x, k=1.0, propensity=e)
    assert naive == pytest.approx(0.2, abs=0.025)        # 0.1 + 0.5 * (E[x|t=1] - E[x|t=0]) = 0.1 + 0.5 * 0.2
    assert weighted == pytest.approx(0.1, abs=0.025)


def test_uplift_at_k_by_hand():
    # top ceil(0.5 * 6) = 3 rows: 0 (T, 1), 1 (C, 1), 2 (T, 0): 1/2 - 1/1
    assert uplift_at_k(Y, T, S, k=0.5) == pytest.approx(-0.5)
    # k = 0.34 -> ceil(2.04) = 3 rows as well; k = 1: 2/3 - 1/3
    assert uplift_at_k(Y, T, S, k=0.34) == pytest.approx(-0.5)
    assert uplift_at_k(Y, T, S, k=1.0) == pytest.approx(1 / 3)


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------
P8 = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
Y8 = [0, 0, 1, 0, 1, 1, 0, 1]


def test_calibration_curve_quantile_by_hand():
    # edges = quantiles at 0, .5, 1 = (0.1, 0.45, 0.8)
    cc = calibration_curve(Y8, P8, n_bins=2)
    assert list(cc.columns) == ["bin_low", "bin_high", "mean_predicted", "observed_rate", "count"]
    assert cc["bin_high"].tolist() == pytest.approx([0.45, 0.8])
    assert cc["mean_predicted"].tolist() == pytest.approx([0.25, 0.65])    # (.1+.2+.3+.4)/4, (.5+.6+.7+.8)/4
    assert cc["observed_rate"].tolist() == pytest.approx([0.25, 0.75])     # 1/4, 3/4
    assert cc["count"].tolist() == [4, 4]
    # ECE = 4/8 * |0.25 - 0.25| + 4/8 * |0.75 - 0.65|
    assert expected_calibration_error(Y8, P8, n_bins=2) == pytest.approx(0.05)


def test_calibration_curve_uniform_edges_and_empty_bins():
    # bins [0, .25), [.25, .5), [.5, .75), [.75, 1]: 0.5 goes up to bin 2, 1.0 into the last bin,
    # bin 1 is empty and left out
    y, p = [0, 1, 1, 0, 1], [0.1, 0.2, 0.5, 0.7, 1.0]
    cc = calibration_curve(y, p, n_bins=4, strategy="uniform")
    assert cc["bin_low"].tolist() == pytest.approx([0.0, 0.5, 0.75])
    assert cc["count"].tolist() == [2, 2, 1]
    assert cc["mean_predicted"].tolist() == pytest.approx([0.15, 0.6, 1.0])
    assert cc["observed_rate"].tolist() == pytest.approx([0.5, 0.5, 1.0])
    # ECE = 2/5 * 0.35 + 2/5 * 0.1 + 1/5 * 0
    assert expected_calibration_error(y, p, n_bins=4, strategy="uniform") == pytest.approx(0.18)


def test_calibration_curve_constant_predictions_make_one_bin():
    cc = calibration_curve([0, 1, 1, 1], [0.5] * 4, n_bins=5)
    assert cc["count"].tolist() == [4] and cc["observed_rate"].tolist() == [0.75]


def test_perfectly_calibrated_predictions_have_small_ece():
    rng = np.random.default_rng(3)
    p = rng.beta(1, 8, 50_000)
    y = (rng.random(p.shape[0]) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p * 1.5, 0, 1)) > 0.03


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------
BAD_UPLIFT = [
    (dict(treatment=[1, 0, 2, 0, 1, 0]), r"treatment must hold 0/1 values, got 2.0 at row 2"),
    (dict(treatment=[1, 1, 1, 1, 1, 1]), r"treatment must hold both treated \(1\) and control \(0\) rows, got 6 treated of 6"),
    (dict(treatment=[1, 0, 1]), r"treatment must have one entry per row like y: expected length 6, got 3"),
    (dict(uplift_score=[0.1, np.nan, 0, 0, 0, 0]), r"uplift_score must hold finite numbers, got missing \(NaN\) value at row 1"),
    (dict(y=[]), r"y must hold at least one row"),
    (dict(y=[[1, 0, 0, 0, 1, 0]]), r"y must be a 1-D array"),
    (dict(propensity=[0.5, 0.5, 1.0, 0.5, 0.5, 0.5]), r"propensity \(of treatment\) must be in \(0, 1\), got 1.0 at row 2"),
    (dict(propensity=[0.5, 0.5]), r"propensity must have one entry per row"),
]


@pytest.mark.parametrize("over, match", BAD_UPLIFT)
@pytest.mark.parametrize("fn", [qini_curve, uplift_curve, qini_auc, uplift_auc])
def test_uplift_bad_inputs(fn, over, match):
    kw = dict(y=Y, treatment=T, uplift_score=S)
    kw.update(over)
    with pytest.raises(ValidationError, match=match):
        fn(**kw)


def test_uplift_special_errors():
    with pytest.raises(ValidationError, match=r"qini_auc is undefined with normalize=True.*use normalize=False"):
        qini_auc([0, 0, 0, 0], [1, 0, 1, 0], [1, 2, 3, 4])
    with pytest.raises(ValidationError, match=r"uplift_auc with normalize=True needs a 0/1 outcome"):
        uplift_auc([0.5, 0, 2, 0], [1, 0, 1, 0], [1, 2, 3, 4])
    # non-binary outcome, raw area: order rows 3 (C, 0), 2 (T, 2), 1 (C, 0), 0 (T, 0.5)
    # U = 0, 0, (2 - 0)*2, (2 - 0)*3, (1.25 - 0)*4 at x step 1/4: 0 + 0.5 + 1.25 + 1.375
    assert uplift_auc([0.5, 0, 2, 0], [1, 0, 1, 0], [1, 2, 3, 4], normalize=False) == pytest.approx(3.125)
    with pytest.raises(ValidationError, match=r"top 2 row\(s\) \(k=0.3\) hold 2 treated and 0 control"):
        uplift_at_k([1, 0, 1, 0], [1, 1, 0, 0], [4, 3, 2, 1], k=0.3)
    with pytest.raises(ValidationError, match=r"k must be a fraction of rows in \(0, 1\], got 0"):
        uplift_at_k(Y, T, S, k=0)
    with pytest.raises(ValidationError, match=r"k must be a fraction of rows in \(0, 1\], got 1.5"):
        uplift_at_k(Y, T, S, k=1.5)


BAD_CALIBRATION = [
    (dict(y=[0, 1, 2]), r"y must hold 0/1 values, got 2.0 at row 2"),
    (dict(p=[0.1, 1.2, 0.3]), r"p must hold probabilities in \[0, 1\], got 1.2 at row 1"),
    (dict(p=[0.1, np.nan, 0.3]), r"p must hold finite numbers, got missing \(NaN\) value at row 1"),
    (dict(p=[0.1, 0.2]), r"p must have one entry per row like y: expected length 3, got 2"),
    (dict(n_bins=0), r"n_bins must be an integer >= 1, got 0"),
    (dict(n_bins=2.5), r"n_bins must be an integer >= 1, got 2.5"),
    (dict(strategy="kmeans"), r"strategy must be 'quantile' or 'uniform', got 'kmeans'"),
]


@pytest.mark.parametrize("over, match", BAD_CALIBRATION)
@pytest.mark.parametrize("fn", [calibration_curve, expected_calibration_error])
def test_calibration_bad_inputs(fn, over, match):
    kw = dict(y=[0, 1, 1], p=[0.1, 0.2, 0.3])
    kw.update(over)
    with pytest.raises(ValidationError, match=match):
        fn(**kw)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------
@st.composite
def uplift_data(draw):
    n = draw(st.integers(4, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = rng.integers(0, 2, n)
    t[0], t[1] = 0, 1
    y = rng.integers(0, 2, n)
    y[0] = 1
    score = rng.integers(0, 6, n).astype(float)     # many ties on purpose
    return y, t, score, rng.permutation(n)


@settings(max_examples=40, deadline=None)
@given(uplift_data())
def test_uplift_curves_invariant_to_row_order_and_monotone_score_maps(data):
    y, t, s, perm = data
    for fn in (qini_curve, uplift_curve):
        a = fn(y, t, s)
        pd.testing.assert_frame_equal(a, fn(y[perm], t[perm], s[perm]))
        pd.testing.assert_frame_equal(a, fn(y, t, np.exp(s) * 3 - 1))
        # the end point does not depend on the ranking
        assert a["gain"].iloc[-1] == pytest.approx(fn(y, t, -s)["gain"].iloc[-1])
    assert qini_auc(y, t, s) == pytest.approx(qini_auc(y[perm], t[perm], s[perm]))
