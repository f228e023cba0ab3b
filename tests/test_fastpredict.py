"""Tests of nextchannel.fastpredict: exact single-row predictions through LightGBM's C API."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nextchannel.errors import BundleError, ConfigError, NextChannelError, ValidationError
from nextchannel.fastpredict import FastBooster, live_handles

TOL = 1e-9
N_FEATURES = 12
CAT_COLS = (10, 11)  # integer-coded categorical features in every model


def _train_data(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES))
    X[rng.random(X.shape) < 0.05] = np.nan
    for c in CAT_COLS:
        X[:, c] = rng.integers(0, 8, n_rows)
    signal = X[:, 0] + X[:, 1] * X[:, 2] - np.nan_to_num(X[:, 3]) + 0.5 * (X[:, 10] % 3)
    return X, signal + rng.normal(scale=0.5, size=n_rows)


def _train(objective: str, rounds: int, **params: object) -> lgb.Booster:
    X, signal = _train_data(2000, seed=1)
    if objective == "binary":
        y = (signal > 0).astype(int)
    elif objective == "multiclass":
        y = np.digitize(signal, np.quantile(signal, [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]))
    else:
        y = signal
    all_params = {"objective": objective, "verbose": -1, "num_threads": 1, "num_leaves": 15,
                  "min_data_in_leaf": 5, "seed": 0, **params}
    data = lgb.Dataset(X, y, categorical_feature=list(CAT_COLS), free_raw_data=False)
    return lgb.train(all_params, data, num_boost_round=rounds)


@pytest.fixture(scope="module")
def binary_model() -> lgb.Booster:
    return _train("binary", 40)


@pytest.fixture(scope="module")
def multiclass_model() -> lgb.Booster:
    return _train("multiclass", 15, num_class=6)


@pytest.fixture(scope="module")
def regression_model() -> lgb.Booster:
    return _train("regression", 30)


def hard_rows(n_rows: int, seed: int) -> np.ndarray:
    """Realistic rows plus the values that go wrong: NaN, +-inf, +-1e300, zeros, odd categories."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=1.5, size=(n_rows, N_FEATURES))
    u = rng.random(X.shape)
    X[u < 0.10] = np.nan
    X[(u >= 0.10) & (u < 0.15)] = 0.0
    X[(u >= 0.15) & (u < 0.16)] = np.inf
    X[(u >= 0.16) & (u < 0.17)] = -np.inf
    X[(u >= 0.17) & (u < 0.18)] = 1e300
    X[(u >= 0.18) & (u < 0.19)] = -1e300
    X[(u >= 0.19) & (u < 0.20)] = 5e-324  # smallest subnormal
    for c in CAT_COLS:
        cats = rng.integers(-2, 12, n_rows).astype(float)  # unseen and negative categories
        v = rng.random(n_rows)
        cats[v < 0.1] = np.nan
        cats[(v >= 0.1) & (v < 0.15)] += 0.5  # non-integer category values
        cats[(v >= 0.15) & (v < 0.17)] = 1e300
        X[:, c] = cats
    return X


def single_rows(fb: FastBooster, X: np.ndarray) -> np.ndarray:
    p = fb.predictor()
    got = np.empty((X.shape[0], fb.num_outputs))
    for i in range(X.shape[0]):
        p.row[:] = X[i]
        got[i] = p.predict()
    return got


def lgb_predict(booster: lgb.Booster, X: np.ndarray, predict_type: str) -> np.ndarray:
    kw = {"raw": {"raw_score": True}, "contrib": {"pred_contrib": True}}.get(predict_type, {})
    ref = booster.predict(X, num_threads=1, **kw)
    return ref.reshape(X.shape[0], -1)


# --- exactness --------------------------------------------------------------------------------

def test_binary_normal_100k_rows_equal_booster_predict(binary_model):
    X = hard_rows(100_000, seed=2)
    with FastBooster(binary_model.model_to_string()) as fb:
        assert (fb.num_features, fb.num_class, fb.num_outputs) == (N_FEATURES, 1, 1)
        got = single_rows(fb, X)
    ref = lgb_predict(binary_model, X, "normal")
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    assert len(np.unique(got)) > 1000  # the rows really reach many different leaves


@pytest.mark.parametrize(
    ("model", "predict_type", "n_rows", "num_outputs"),
    [
        ("binary_model", "raw", 20_000, 1),
        ("binary_model", "contrib", 5_000, N_FEATURES + 1),
        ("multiclass_model", "normal", 10_000, 6),
        ("multiclass_model", "raw", 10_000, 6),
        ("multiclass_model", "contrib", 2_000, 6 * (N_FEATURES + 1)),
        ("regression_model", "normal", 20_000, 1),
        ("regression_model", "contrib", 3_000, N_FEATURES + 1),
    ],
)
def test_single_rows_equal_booster_predict(request, model, predict_type, n_rows, num_outputs):
    booster = request.getfixturevalue(model)
    X = hard_rows(n_rows, seed=3)
    with FastBooster(booster.model_to_string(), predict_type=predict_type) as fb:
        assert fb.num_outputs == num_outputs
        got = single_rows(fb, X)
        batch = fb.predict_many(X)
    ref = lgb_predict(booster, X, predict_type)
    assert ref.shape == (n_rows, num_outputs)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(batch.reshape(n_rows, -1), ref, rtol=0, atol=TOL)


def test_multiclass_probabilities_sum_to_one(multiclass_model):
    with FastBooster(multiclass_model.model_to_string()) as fb:
        got = single_rows(fb, hard_rows(500, seed=4))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)


def test_contrib_sums_to_raw_score(multiclass_model):
    X = hard_rows(300, seed=5)
    s = multiclass_model.model_to_string()
    with FastBooster(s, predict_type="contrib") as contrib, FastBooster(s, predict_type="raw") as raw:
        phi = single_rows(contrib, X).reshape(300, 6, N_FEATURES + 1)
        np.testing.assert_allclose(phi.sum(axis=2), single_rows(raw, X), atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(row=arrays(np.float64, N_FEATURES, elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_any_row_equals_booster_predict(binary_model_str, row):
    fb, booster = binary_model_str
    out = np.empty(1)
    fb.predict_into(row, out)  # a new row array each example: re-binds each time
    assert abs(out[0] - booster.predict(row[None, :], num_threads=1)[0]) <= TOL


@pytest.fixture(scope="module")
def binary_model_str(binary_model):
    fb = FastBooster(binary_model.model_to_string())
    yield fb, binary_model
    fb.close()


def test_predict_paths_agree(regression_model):
    X = hard_rows(50, seed=6)
    with FastBooster(regression_model.model_to_string()) as fb:
        row, out = np.empty(N_FEATURES), np.empty(1)
        bound = fb.bind(row, out)
        for x in X:
            row[:] = x
            via_bind = bound.predict()[0]
            fb.predict_into(row, out)
            assert out[0] == via_bind == fb.predict_one(x)[0] == fb.predict_one(list(x))[0]
        assert fb.predict_many(X).shape == (50,)
        assert fb.predict_many(X[:0]).shape == (0,)


def test_buffers_cannot_be_rebound(binary_model_str):
    fb, _ = binary_model_str
    p = fb.predictor()
    with pytest.raises(AttributeError):
        p.row = np.zeros(N_FEATURES)  # would leave C reading a dropped array
    with pytest.raises(AttributeError):
        p.out = np.zeros(1)


def test_predict_does_not_touch_row_and_is_deterministic(binary_model):
    X = hard_rows(200, seed=7)
    with FastBooster(binary_model.model_to_string(), predict_type="contrib") as fb:
        p = fb.predictor()
        for x in X:
            p.row[:] = x
            first = p.predict().copy()
            np.testing.assert_array_equal(p.row, x)
            np.testing.assert_array_equal(p.predict(), first)


def test_predict_many_accepts_other_layouts(multiclass_model):
    X = hard_rows(100, seed=8)
    with FastBooster(multiclass_model.model_to_string()) as fb:
        ref = fb.predict_many(X)
        np.testing.assert_array_equal(fb.predict_many(np.asfortranarray(X)), ref)
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32
            X32 = X.astype(np.float32)
        np.testing.assert_array_equal(fb.predict_many(X32), fb.predict_many(X32.astype(np.float64)))
        np.testing.assert_array_equal(fb.predict_many(X.tolist()), ref)


# --- threads ----------------------------------------------------------------------------------

def test_many_threads_equal_serial(binary_model):
    n_threads, n_calls = 8, 20_000
    X = hard_rows(n_threads * n_calls, seed=9)
    fb = FastBooster(binary_model.model_to_string())
    serial = single_rows(fb, X)[:, 0]
    results = np.full(X.shape[0], np.nan)
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            p = fb.predictor()
            barrier.wait()
            for i in range(k * n_calls, (k + 1) * n_calls):
                p.row[:] = X[i]
                results[i] = p.predict()[0]
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    before = live_handles()["fast_config"]
    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    np.testing.assert_array_equal(results, serial)
    fb.close()
    assert live_handles()["fast_config"] <= before - 1  # main thread's and all workers' freed


def test_threads_share_one_booster_through_predict_into(multiclass_model):
    X = hard_rows(4 * 2000, seed=10)
    fb = FastBooster(multiclass_model.model_to_string())
    serial = fb.predict_many(X)
    results = np.full_like(serial, np.nan)

    def work(k: int) -> None:
        row, out = np.empty(N_FEATURES), np.empty(6)
        for i in range(k, X.shape[0], 4):
            row[:] = X[i]
            fb.predict_into(row, out)
            results[i] = out

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(results, serial)
    fb.close()


def test_close_while_other_threads_predict_raises_cleanly(binary_model):
    fb = FastBooster(binary_model.model_to_string())
    started = threading.Barrier(3)
    outcomes: list[object] = []

    def work() -> None:
        p = fb.predictor()
        p.row[:] = 0.5
        started.wait()
        try:
            while True:
                p.predict()
                fb.predict_many(np.zeros((3, N_FEATURES)))
        except NextChannelError as err:
            outcomes.append(err)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait()
    fb.close()
    for t in threads:
        t.join(timeout=10)
    assert len(outcomes) == 2 and all("closed" in str(e) for e in outcomes)


# --- handles are freed ------------------------------------------------------------------------

def test_close_frees_every_handle(binary_model):
    s = binary_model.model_to_string()
    gc.collect()
    base = live_handles()
    for _ in range(30):
        fb = FastBooster(s, predict_type="contrib")
        fb.predictor().predict()
        t = threading.Thread(target=lambda: fb.predictor().predict())
        t.start()
        t.join()
        assert live_handles()["booster"] == base["booster"] + 1
        fb.close()
        fb.close()  # idempotent
        assert live_handles() == base
    with pytest.raises(NextChannelError, match="closed"):
        fb.predictor()
    with pytest.raises(NextChannelError, match="closed"):
        fb.predict_many(np.zeros((1, N_FEATURES)))


def test_dropped_booster_and_finished_threads_free_their_handles(binary_model):
    s = binary_model.model_to_string()
    gc.collect()
    base = live_handles()
    fb = FastBooster(s)
    fb.predictor().predict()
    for _ in range(5):
        t = threading.Thread(target=lambda: fb.predictor().predict())
        t.start()
        t.join()
    gc.collect()
    # each finished thread's handle went with the thread; the main thread's one is live
    assert live_handles() == {"booster": base["booster"] + 1, "fast_config": base["fast_config"] + 1}
    p = fb.predictor()
    del fb
    gc.collect()
    assert live_handles()["booster"] == base["booster"] + 1  # p keeps the model alive
    p.row[:] = 0.0
    assert 0.0 < p.predict()[0] < 1.0
    del p
    gc.collect()
    assert live_handles() == base


def test_predictor_of_closed_booster_raises(binary_model):
    fb = FastBooster(binary_model.model_to_string())
    p = fb.predictor()
    fb.close()
    with pytest.raises(NextChannelError, match="closed"):
        p.predict()
    with pytest.raises(NextChannelError, match="closed"):
        fb.predict_into(p.row, p.out)


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not a model", "must start with the line 'tree'"),
        ("", "must start with the line .tree."),
        ("tree\nversion=v4\nnum_class=1\n\nend of trees\n", "header has no 'max_feature_idx' line"),
        (b"tree\n", "must be LightGBM model text"),
        (None, "must be LightGBM model text"),
        ("tree\x00", "NUL"),
    ],
)
def test_bad_model_text_raises_bundle_error(text, match):
    with pytest.raises(BundleError, match=match):
        FastBooster(text)


def test_corrupt_model_text_raises_instead_of_aborting(binary_model):
    # LightGBM parses trees inside an OpenMP loop and calls std::terminate on a parse error
    # there, so run the corruptions in a child process: an abort must fail this test, not
    # take pytest down.
    code = textwrap.dedent(
        r"""
        import sys
        import numpy as np
        from nextchannel.errors import BundleError
        from nextchannel.fastpredict import FastBooster
        s = sys.stdin.read()
        wrong = []
        for n in np.linspace(0, len(s) - 1, 150).astype(int):
            try:
                FastBooster(s[:n]).close()
                loaded = True
            except BundleError:
                loaded = False
            if loaded and "\nend of trees" not in s[:n]:  # a text cut in its trees never loads
                wrong.append(int(n))
        for text in [s.replace("\n", "\r\n"), s.replace("threshold=", "threshold=abc", 1),
                     s.replace("tree_sizes=", "tree_sizes=17 ", 1),
                     s.replace("leaf_value=", "leaf_value=x", 1), s.replace("\nend of trees", "\nend of")]:
            try:
                FastBooster(text).close()
                wrong.append(text[:20])
            except BundleError:
                pass
        print(wrong)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], input=binary_model.model_to_string(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_specific_corruptions_raise_bundle_error(binary_model):
    s = binary_model.model_to_string()
    with pytest.raises(BundleError, match="CR character on line 1"):
        FastBooster(s.replace("\n", "\r\n"))
    with pytest.raises(BundleError, match=r"tree 3: tree_sizes says .*\(cut mid-tree"):
        FastBooster(s[: s.index("\nsplit_gain=", s.index("Tree=3"))] + "\n\n\nend of trees\n")
    with pytest.raises(BundleError, match=r"tree 3: tree_sizes says .*\(cut mid-tree"):
        FastBooster(s[: s.index("Tree=3")])
    with pytest.raises(BundleError, match="tree 0: does not end where tree_sizes says"):
        FastBooster(s.replace("threshold=", "threshold=abc", 1))


def test_prediction_failure_carries_lightgbm_message(binary_model):
    with FastBooster(binary_model.model_to_string()) as fb:
        out = np.empty((2, 1))
        with pytest.raises(NextChannelError, match="number of features in data"):
            fb._predict_mat(np.zeros((2, N_FEATURES + 1)), out)  # bypasses predict_many's check


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"predict_type": "leaves"}, "predict_type must be one of"),
        ({"predict_type": "probability"}, "got 'probability'"),
        ({"predict_type": ["normal"]}, "predict_type must be one of"),
        ({"num_threads": -1}, "num_threads must be an int >= 0, got -1"),
        ({"num_threads": 1.5}, "num_threads"),
        ({"num_threads": True}, "num_threads"),
    ],
)
def test_bad_options_raise_config_error(binary_model, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FastBooster(binary_model.model_to_string(), **kwargs)


_GOOD_OUT = np.zeros(1)
_READONLY = np.zeros(1)
_READONLY.flags.writeable = False
_SHARED = np.zeros(N_FEATURES + 1)


@pytest.mark.parametrize(
    ("row", "out", "match"),
    [
        (np.zeros(N_FEATURES - 1), _GOOD_OUT, rf"row must have shape \({N_FEATURES},\), got \({N_FEATURES - 1},\)"),
        (np.zeros(N_FEATURES + 1), _GOOD_OUT, "row must have shape"),
        (np.zeros((1, N_FEATURES)), _GOOD_OUT, "row must have shape"),
        (np.zeros(N_FEATURES, dtype=np.float32), _GOOD_OUT, "row must have dtype float64, got float32"),
        (np.zeros(N_FEATURES, dtype=np.int64), _GOOD_OUT, "row must have dtype float64, got int64"),
        (np.zeros(2 * N_FEATURES)[::2], _GOOD_OUT, "row must be a C-contiguous"),
        ([0.0] * N_FEATURES, _GOOD_OUT, "row must be a numpy.ndarray, got list"),
        (np.zeros(N_FEATURES), np.zeros(2), r"out must have shape \(1,\), got \(2,\)"),
        (np.zeros(N_FEATURES), np.zeros(1, dtype=np.float32), "out must have dtype float64"),
        (np.zeros(N_FEATURES), _READONLY, "out must be writeable"),
        (_SHARED[:N_FEATURES], _SHARED[N_FEATURES:], None),  # adjacent, not overlapping: fine
        (_SHARED[:N_FEATURES], _SHARED[N_FEATURES - 1 : N_FEATURES], "must not share memory"),
    ],
)
def test_bad_buffers_raise_validation_error_at_bind(binary_model_str, row, out, match):
    fb, _ = binary_model_str
    if match is None:
        fb.bind(row, out).predict()
        return
    with pytest.raises(ValidationError, match=match):
        fb.bind(row, out)
    with pytest.raises(ValidationError, match=match):
        fb.predict_into(row, out)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.zeros((3, N_FEATURES - 1)), rf"X must have shape \(n_rows, {N_FEATURES}\), got \(3, {N_FEATURES - 1}\)"),
        (np.zeros(N_FEATURES), "X must have shape"),
        ([["a"] * N_FEATURES], "X must be a 2-D array of numbers"),
    ],
)
def test_bad_batches_raise_validation_error(binary_model_str, X, match):
    fb, _ = binary_model_str
    with pytest.raises(ValidationError, match=match):
        fb.predict_many(X)


def test_predict_one_rejects_wrong_length(binary_model_str):
    fb, _ = binary_model_str
    with pytest.raises(ValidationError, match="row must have shape"):
        fb.predict_one([1.0, 2.0])
    with pytest.raises(ValidationError, match="row must be numbers"):
        fb.predict_one(["x"] * N_FEATURES)


def test_repr_and_closed(binary_model):
    fb = FastBooster(binary_model.model_to_string(), predict_type="raw")
    assert "predict_type='raw'" in repr(fb) and "40 iterations" in repr(fb) and not fb.closed
    fb.close()
    assert fb.closed and "closed" in repr(fb)


def test_a_stack_of_models_equals_each_model_and_pads_short_ones():
    """Models of different tree counts, objectives and widths in one stack: each output equals the
    model's own Booster.predict (NaN, zeros and extremes included), batch and single-row."""
    from nextchannel.fastpredict import ModelStack

    rng = np.random.default_rng(7)
    X = rng.normal(size=(2000, 5))
    y = X[:, 0] - X[:, 1] + rng.normal(size=2000)
    params = {"verbose": -1, "num_threads": 1}
    models = [
        lgb.train({**params, "objective": "regression"}, lgb.Dataset(X, y), 12),
        lgb.train({**params, "objective": "binary"}, lgb.Dataset(X[:, :3], (y > 0).astype(int)), 5),
        lgb.train({**params, "objective": "regression", "min_data_in_leaf": 10**6}, lgb.Dataset(X, y), 3),  # 1 tree
        lgb.train({**params, "objective": "poisson"}, lgb.Dataset(X, np.exp(y / 4)), 4),
    ]
    assert models[2].num_trees() == 1
    Z = rng.normal(size=(20_000, 5)) * 3
    Z[rng.random(Z.shape) < 0.1] = np.nan
    Z[rng.random(Z.shape) < 0.01] = 1e30
    Z[rng.random(Z.shape) < 0.01] = 0.0
    ref = np.column_stack([m.predict(Z[:, :m.num_feature()], num_threads=1) for m in models])
    with ModelStack([m.model_to_string() for m in models]) as stack:
        assert (stack.num_models, stack.num_features, stack.num_iterations) == (4, 5, 12)
        assert np.max(np.abs(stack.predict_many(Z) - ref)) <= 1e-9
        row, out = np.zeros(5), np.zeros(4)
        p = stack.raw.bind(row, out)
        for i in range(0, 20_000, 50):
            row[:] = Z[i]
            assert np.max(np.abs(np.array(stack.finish_one(p.predict())) - ref[i])) <= 1e-9, i
        leaves = stack.leaf.predict_many(Z[:500]).reshape(500, 12, 4)
        assert np.array_equal(leaves[:, :5, 1], models[1].predict(Z[:500, :3], pred_leaf=True))
        # a long batch is evaluated model by model, a short one in one call on the stack: the same bits
        short = np.vstack([stack.predict_many(Z[i:i + stack.MANY_ROWS]) for i in range(0, 20_000, stack.MANY_ROWS)])
        assert len(Z) > stack.MANY_ROWS and np.array_equal(stack.predict_many(Z), short)
        assert np.array_equal(stack.predict_many(Z, num_threads=2), short)
        assert np.array_equal(stack.leaf_many(Z), stack.leaf.predict_many(Z))
        assert np.array_equal(stack.leaf_many(Z[:100]), stack.leaf.predict_many(Z[:100]))
        with pytest.raises(ValidationError, match="shape"):
            stack.predict_many(Z[:, :4])


@pytest.mark.parametrize("trees_per_call", [1, 12, 24, 48])
def test_a_long_batch_in_groups_of_models_equals_the_stack_bit_for_bit(trees_per_call, monkeypatch):
    """Groups of consecutive models (one model, two, the whole stack) give the one-call stack's bits."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(600, 5))
    y = X[:, 0] - X[:, 1] + rng.normal(size=600)
    params = {"verbose": -1, "num_threads": 1, "num_leaves": 7}
    texts = [lgb.train({**params, "objective": "regression"}, lgb.Dataset(X, y), 12).model_to_string(),
             lgb.train({**params, "objective": "binary"}, lgb.Dataset(X[:, :3], (y > 0).astype(int)), 5).model_to_string(),
             lgb.train({**params, "objective": "regression"}, lgb.Dataset(X, -y), 9).model_to_string(),
             lgb.train({**params, "objective": "poisson"}, lgb.Dataset(X, np.exp(y / 4)), 4).model_to_string()]
    from nextchannel.fastpredict import ModelStack

    monkeypatch.setattr(ModelStack, "TREES_PER_CALL", trees_per_call)
    Z = rng.normal(size=(3_000, 5)) * 3
    Z[rng.random(Z.shape) < 0.1] = np.nan
    with ModelStack(texts) as stack:
        bounds = stack.group_bounds
        assert [b for b, _ in bounds] == [0] + [e for _, e in bounds[:-1]] and bounds[-1][1] == 4
        assert len(bounds) == {1: 4, 12: 4, 24: 2, 48: 1}[trees_per_call], bounds   # 12, 5, 9 and 4 trees
        one_call = np.vstack([stack.predict_many(Z[i:i + stack.MANY_ROWS]) for i in range(0, len(Z), stack.MANY_ROWS)])
        assert np.array_equal(stack.predict_many(Z), one_call)
        assert np.array_equal(stack.leaf_many(Z), stack.leaf.predict_many(Z))


def test_a_stack_refuses_multi_output_models_and_rows_that_differ():
    from nextchannel.errors import BundleError
    from nextchannel.fastpredict import stack_model_texts

    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 3))
    multi = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
                      lgb.Dataset(X, rng.integers(0, 3, 300)), 2)
    reg = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 0]), 2)
    with pytest.raises(BundleError, match="must have one output"):
        stack_model_texts([reg.model_to_string(), multi.model_to_string()])
    other = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
                      lgb.Dataset(X, X[:, 0], feature_name=["a", "b", "c"]), 2)
    with pytest.raises(BundleError, match="not a prefix of the widest"):
        stack_model_texts([reg.model_to_string(), other.model_to_string()])


def test_pair_leaves_many_are_the_stacks_leaves_of_the_two_models():
    """The batch reasons' leaves: per row model ``first``'s trees then ``second``'s, walked model by model
    on the rows that compare it, equal to the stack's leaf output of those trees (padding: leaf 0)."""
    from nextchannel.fastpredict import ModelStack

    rng = np.random.default_rng(12)
    X = rng.normal(size=(500, 4))
    params = {"verbose": -1, "num_threads": 1, "num_leaves": 5}
    texts = [lgb.train({**params, "objective": "regression"}, lgb.Dataset(X, X[:, k] + rng.normal(size=500)),
                       n).model_to_string() for k, n in enumerate((6, 3, 8))]
    Z = rng.normal(size=(400, 4))
    Z[rng.random(Z.shape) < 0.1] = np.nan
    first, second = rng.integers(0, 3, 400), rng.integers(0, 3, 400)
    with ModelStack(texts) as stack:
        got = stack.pair_leaves_many(Z, first, second)
        ref = stack.leaf.predict_many(Z).reshape(400, stack.num_iterations, 3)
        rows = np.arange(400)
        assert got.shape == (400, 2 * stack.num_iterations)
        assert np.array_equal(got[:, :stack.num_iterations], ref[rows, :, first])
        assert np.array_equal(got[:, stack.num_iterations:], ref[rows, :, second])
        # their path contributions: the batch = the lazy one-row gather = the stack-layout batch, bit for bit
        from nextchannel.explain import PathContributions

        paths = PathContributions(stack.text, 3, 4)
        pairs = paths.difference_pairs(got, first, second)
        assert np.array_equal(pairs, paths.difference(ref.reshape(400, -1).astype(np.int64), first, second))
        assert all(np.array_equal(pairs[r], paths.difference_one(got[r], first[r], second[r])) for r in range(400))
