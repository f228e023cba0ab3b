"""Tests of nextchannel.models: scikit-learn conventions, monotone wait, any number of actions,
calibration, and the offer model's uplift recovery, fallback and input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from nextchannel.diagnostics import expected_calibration_error
from nextchannel.errors import NotFittedError, ValidationError
from nextchannel.models import (
    HEADS,
    Calibrator,
    ChannelModel,
    NoRandomisationWarning,
    OfferModel,
    channel_model_from_state,
    channel_model_state,
    offer_model_from_state,
    offer_model_state,
)

ACTIONS = ("none", "chat", "phone")


# ---------------------------------------------------------------------------------------------
# A small synthetic world where acceptance and success truly fall with the wait
# ---------------------------------------------------------------------------------------------
def _world(n: int, seed: int, actions: tuple[str, ...] = ACTIONS) -> dict:
    """Logged decisions with known outcome probabilities.

    The seed must differ from the model's random_state (0): the first uniform draw of both would
    coincide, and the calibration hold-out would become exactly the rows with ``stuck < 0.2``.
    """
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"stuck": rng.random(n), "idle_s": rng.exponential(30, n),
                      "device": rng.integers(0, 3, n).astype(float)})
    action = rng.choice(np.array(actions, dtype=object), n)
    channels = actions[1:]
    ctx = {}
    for ch in channels:
        ctx[f"wait_{ch}_s"] = rng.uniform(0, 900, n)
        ctx[f"lang_ok_{ch}"] = rng.random(n) < 0.9
    ctx = pd.DataFrame(ctx)
    wait = np.zeros(n)
    lang = np.ones(n, dtype=bool)
    for ch in channels:
        rows = action == ch
        wait[rows] = ctx[f"wait_{ch}_s"].to_numpy()[rows]
        lang[rows] = ctx[f"lang_ok_{ch}"].to_numpy()[rows]
    z = -1.5 + 3 * X["stuck"].to_numpy() + 0.01 * X["idle_s"].to_numpy() - wait / 300
    p_accept = np.where(action == "none", 0.0, 1 / (1 + np.exp(-z)))
    accepted = rng.random(n) < p_accept
    p_success = np.where(accepted, 0.8 * np.exp(-wait / 1200) * np.where(lang, 1.0, 0.5), 0.15 * X["stuck"].to_numpy())
    success = rng.random(n) < p_success
    left = ~success & (rng.random(n) < 0.1)
    return {"X": X, "action": action, "context": ctx, "accepted": accepted, "success": success, "left": left}


def _fit(w: dict, actions: tuple[str, ...] = ACTIONS, **params) -> ChannelModel:
    params.setdefault("n_estimators", 20)
    return ChannelModel(**params).fit(w["X"], w["action"], accepted=w["accepted"], success=w["success"],
                                      left=w["left"], context=w["context"], actions=actions)


@pytest.fixture(scope="module")
def world() -> dict:
    return _world(8000, seed=10)


@pytest.fixture(scope="module")
def channel_model(world) -> ChannelModel:
    return _fit(world, n_estimators=30)


@pytest.fixture(scope="module")
def bandit() -> dict:
    """A randomised two-arm bandit with a known uplift: offering chat pays iff stuck > 0.5."""
    rng = np.random.default_rng(21)
    n = 4000
    X = pd.DataFrame({"stuck": rng.random(n), "noise": rng.normal(size=n)})
    action = np.where(rng.random(n) < 0.5, "chat", "none").astype(object)
    tau = 2 * X["stuck"].to_numpy() - 1
    reward = np.where(action == "chat", tau, 0.0) + rng.normal(0, 0.3, n)
    q_true = np.column_stack([np.zeros(n), tau])
    return {"X": X, "action": action, "reward": reward, "propensity": np.full(n, 0.5), "q_true": q_true,
            "rng": rng}


# ---------------------------------------------------------------------------------------------
# scikit-learn conventions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [ChannelModel, OfferModel])
def test_init_stores_params_untouched(cls):
    cats = ["device"]  # a list, not converted to a tuple
    m = cls(n_estimators=7, categorical_features=cats, random_state=3, calibration_fraction=0.1)
    assert m.categorical_features is cats
    assert (m.n_estimators, m.random_state, m.calibration_fraction) == (7, 3, 0.1)
    # even a bad value is stored, and only refused by fit
    bad = cls(n_estimators=0)
    assert bad.n_estimators == 0
    assert not hasattr(bad, "n_features_in_")


@pytest.mark.parametrize("cls", [ChannelModel, OfferModel])
def test_get_set_params_round_trip(cls):
    m = cls(n_estimators=11, learning_rate=0.2)
    params = m.get_params()
    assert params["n_estimators"] == 11 and params["learning_rate"] == 0.2
    other = cls().set_params(**params)
    assert other.get_params() == params
    assert m.set_params(num_leaves=5) is m and m.num_leaves == 5


def test_offer_model_has_its_own_params():
    params = OfferModel(max_weight=7.0, target="dm").get_params()
    assert params["max_weight"] == 7.0 and params["target"] == "dm"
    assert "max_weight" not in ChannelModel().get_params()


def test_clone_gives_an_unfitted_copy_with_equal_params(channel_model):
    c = clone(channel_model)
    assert c.get_params() == channel_model.get_params()
    assert not hasattr(c, "boosters_")
    with pytest.raises(NotFittedError, match="not fitted yet"):
        c.predict_proba(pd.DataFrame({"stuck": [0.5], "idle_s": [1.0], "device": [0.0]}))


def test_predict_before_fit_raises_not_fitted():
    X = pd.DataFrame({"a": [1.0]})
    with pytest.raises(NotFittedError, match="ChannelModel is not fitted yet"):
        ChannelModel().predict_proba(X)
    with pytest.raises(NotFittedError, match="OfferModel is not fitted yet"):
        OfferModel().predict(X)
    with pytest.raises(NotFittedError, match="OfferModel is not fitted yet"):
        OfferModel().contributions(X)
    with pytest.raises(NotFittedError):
        channel_model_state(ChannelModel())
    assert issubclass(NotFittedError, AttributeError)  # hasattr-style checks keep working


def test_a_failed_fit_leaves_the_estimator_unfitted(world):
    m = ChannelModel(n_estimators=5)
    short_ctx = world["context"].head(10)
    with pytest.raises(ValidationError, match="context must have"):
        m.fit(world["X"], world["action"], accepted=world["accepted"], success=world["success"],
              context=short_ctx, actions=ACTIONS)
    with pytest.raises(NotFittedError):
        m.predict_proba(world["X"].head(2))
    o = OfferModel(n_estimators=5)
    n = 200
    with pytest.raises(ValidationError, match="reward_hat must have shape"):
        o.fit(pd.DataFrame({"a": np.arange(n, dtype=float)}), np.where(np.arange(n) % 2, "chat", "none"),
              np.zeros(n), np.full(n, 0.5), reward_hat=np.zeros((n, 5)), actions=("none", "chat"))
    with pytest.raises(NotFittedError):
        o.predict(pd.DataFrame({"a": [1.0]}))


def test_fit_does_not_mutate_inputs(world):
    X, ctx = world["X"].copy(), world["context"].copy()
    action = world["action"].copy()
    _fit({**world, "X": X, "context": ctx, "action": action}, n_estimators=3)
    pd.testing.assert_frame_equal(X, world["X"])
    pd.testing.assert_frame_equal(ctx, world["context"])
    np.testing.assert_array_equal(action, world["action"])


def test_same_random_state_same_model(world):
    small = {k: (v.iloc[:1500] if isinstance(v, pd.DataFrame) else v[:1500]) for k, v in world.items()}
    a = channel_model_state(_fit(small, n_estimators=5, random_state=4))
    b = channel_model_state(_fit(small, n_estimators=5, random_state=4))
    assert a == b


# ---------------------------------------------------------------------------------------------
# Channel model: monotone in wait (Hypothesis)
# ---------------------------------------------------------------------------------------------
def test_calibrators_are_monotone_non_decreasing(channel_model):
    for head in HEADS:
        cal = channel_model.calibrators_[head]
        assert np.all(np.diff(cal.x_) >= 0) and np.all(np.diff(cal.y_) >= 0), head
        grid = np.linspace(-0.1, 1.1, 241)
        assert np.all(np.diff(cal.transform(grid)) >= 0), head
    # the fitted model really is calibrated (not the identity), so the order check above means something
    assert any(len(channel_model.calibrators_[h].x_) > 2 for h in HEADS)


@pytest.fixture(scope="module")
def overfit_model(world) -> ChannelModel:
    """Deep, fast-learning trees that chase noise: without the monotone constraints this model's
    acceptance and success rise with the wait on about one row in ten."""
    return _fit(world, n_estimators=60, num_leaves=31, min_child_samples=5, learning_rate=0.2)


_row = st.tuples(st.floats(0, 1), st.floats(0, 600), st.sampled_from([0.0, 1.0, 2.0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_row, min_size=1, max_size=20), channel=st.sampled_from(ACTIONS[1:]),
       waits=st.lists(st.floats(0, 3600), min_size=2, max_size=8), other_wait=st.floats(0, 3600),
       lang_ok=st.booleans())
def test_longer_wait_never_raises_accept_or_success(overfit_model, rows, channel, waits, other_wait, lang_ok):
    """For every pair wait_a < wait_b (checked along the sorted chain of drawn waits), with only
    ``wait_<channel>_s`` changed: P(accept) and P(success) of that channel do not rise."""
    X = pd.DataFrame(rows, columns=["stuck", "idle_s", "device"])
    chain = np.sort(np.asarray(waits))
    n, m = len(X), len(chain)
    # one batch: every row at every wait of the chain (row-major: row i's waits are consecutive)
    Xb = X.iloc[np.repeat(np.arange(n), m)].reset_index(drop=True)
    ctx = {}
    for ch in ACTIONS[1:]:
        ctx[f"wait_{ch}_s"] = np.tile(chain, n) if ch == channel else np.full(n * m, other_wait)
        ctx[f"lang_ok_{ch}"] = np.full(n * m, lang_ok)
    p = overfit_model.predict_proba(Xb, pd.DataFrame(ctx))
    j = ACTIONS.index(channel)
    for head in ("accept", "success"):
        q = p[head][:, j].reshape(n, m)
        assert np.all(np.diff(q, axis=1) <= 0), (head, chain, q)
    others = [i for i in range(len(ACTIONS)) if i != j]
    for head in HEADS:  # only the channel's own wait moved: the other actions are untouched
        q = p[head][:, others].reshape(n, m, -1)
        np.testing.assert_array_equal(q, np.broadcast_to(q[:, :1], q.shape))


def test_wait_effect_is_learned_not_flat(channel_model, world):
    """The property above is not vacuous: acceptance does fall with the wait, by a lot."""
    X = world["X"].head(300)
    ctx = world["context"].head(300)
    short, long_ = ctx.copy(), ctx.copy()
    short["wait_chat_s"], long_["wait_chat_s"] = 0.0, 900.0
    pa_short = channel_model.predict_proba(X, short)["accept"][:, 1]
    pa_long = channel_model.predict_proba(X, long_)["accept"][:, 1]
    assert pa_short.mean() > pa_long.mean() + 0.2


# ---------------------------------------------------------------------------------------------
# Channel model: any number of actions, shapes, row = batch
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [
    ("chat", "phone"),
    ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"),
], ids=["2-channels", "9-made-up-channels"])
def test_any_number_of_channels(channels):
    actions = ("none", *channels)
    w = _world(3000, seed=33, actions=actions)
    m = _fit(w, actions=actions, n_estimators=5)
    assert m.actions_ == actions
    p = m.predict_proba(w["X"].head(7), context=w["context"].head(7))
    assert sorted(p) == sorted(HEADS)
    for head in HEADS:
        assert p[head].shape == (7, len(actions))
        assert np.all((p[head] >= 0) & (p[head] <= 1))
    np.testing.assert_array_equal(p["accept"][:, 0], 0.0)
    assert np.all(p["accept"][:, 1:] > 0)


def test_actions_default_to_none_plus_sorted_channels_seen(world):
    m = ChannelModel(n_estimators=3).fit(world["X"], world["action"], accepted=world["accepted"],
                                         success=world["success"], context=world["context"])
    assert m.actions_ == ("none", "chat", "phone")


def test_declared_channel_never_logged_still_gets_a_column(world):
    actions = ("none", "chat", "phone", "email")
    m = _fit(world, actions=actions, n_estimators=3)
    p = m.predict_proba(world["X"].head(4), world["context"].head(4))
    assert p["accept"].shape == (4, 4)


def test_row_by_row_equals_batch(channel_model, world):
    X, ctx = world["X"].iloc[:25], world["context"].iloc[:25]
    batch = channel_model.predict_proba(X, ctx)
    for i in range(len(X)):
        one = channel_model.predict_proba(X.iloc[[i]], ctx.iloc[[i]])
        for head in HEADS:
            np.testing.assert_allclose(one[head][0], batch[head][i], rtol=0, atol=1e-12)


def test_index_labels_do_not_matter(channel_model, world):
    """Rows are read by position: duplicated or shuffled index labels give the same answers."""
    X, ctx = world["X"].iloc[:6].copy(), world["context"].iloc[:6].copy()
    ref = channel_model.predict_proba(X, ctx)
    X.index = [5, 5, 0, 0, 9, 5]
    ctx.index = [1, 2, 3, 3, 3, 0]
    got = channel_model.predict_proba(X, ctx)
    for head in HEADS:
        np.testing.assert_array_equal(got[head], ref[head])


def test_columns_are_matched_by_name(channel_model, world):
    X, ctx = world["X"].iloc[:5], world["context"].iloc[:5]
    ref = channel_model.predict_proba(X, ctx)
    shuffled = X[["device", "stuck", "idle_s"]].assign(extra=1.0)
    got = channel_model.predict_proba(shuffled, ctx)
    np.testing.assert_array_equal(got["success"], ref["success"])
    with pytest.raises(ValidationError, match=r"missing features .*'idle_s'"):
        channel_model.predict_proba(X[["stuck", "device"]], ctx)


@pytest.mark.parametrize("change, match", [
    (lambda w: {**w, "X": w["X"].assign(device=w["X"]["device"].astype(str))}, r"X columns must be numeric"),
    (lambda w: {**w, "X": w["X"].to_numpy()}, r"X must be a pandas DataFrame"),
    (lambda w: {**w, "accepted": w["accepted"][:10]}, r"accepted must be a 1-D array of length"),
    (lambda w: {**w, "action": np.where(w["action"] == "chat", "fax", w["action"])}, r"action values must be one of"),
    (lambda w: {**w, "accepted": np.ones(len(w["action"]), bool)}, r"accepted must be False where action is 'none'"),
], ids=["non-numeric-X", "not-a-frame", "short-label", "unknown-action", "accepted-without-offer"])
def test_channel_model_bad_inputs(world, change, match):
    w = change(world)
    with pytest.raises(ValidationError, match=match):
        ChannelModel(n_estimators=2).fit(w["X"], w["action"], accepted=w["accepted"], success=w["success"],
                                         context=w["context"], actions=ACTIONS)


def test_channel_model_bad_params(world):
    with pytest.raises(ValidationError, match=r"n_estimators must be an integer >= 1, got 0"):
        _fit(world, n_estimators=0)
    with pytest.raises(ValidationError, match=r"calibration_fraction must be in \[0, 1\), got 1.0"):
        _fit(world, calibration_fraction=1.0)
    with pytest.raises(ValidationError, match=r"actions must start with 'none'"):
        _fit(world, actions=("chat", "none", "phone"))


def test_state_round_trip_predicts_the_same(channel_model, world):
    meta, texts = channel_model_state(channel_model)
    back = channel_model_from_state(meta, texts)
    X, ctx = world["X"].iloc[:50], world["context"].iloc[:50]
    a, b = channel_model.predict_proba(X, ctx), back.predict_proba(X, ctx)
    for head in HEADS:
        np.testing.assert_array_equal(a[head], b[head])
    params = {**channel_model.get_params(), "categorical_features": []}  # JSON keeps lists
    assert back.get_params() == params
    assert channel_model.categorical_features == ()  # saving did not touch the model's own params


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------
def test_calibrator_round_trip():
    rng = np.random.default_rng(3)
    p = rng.random(500)
    y = rng.random(500) < p ** 2
    c = Calibrator.fit(p, y)
    d = c.to_dict()
    back = Calibrator.from_dict(d)
    assert back.to_dict() == d
    grid = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(back.transform(grid), c.transform(grid))
    assert np.all(np.diff(c.transform(grid)) >= 0)
    np.testing.assert_array_equal(Calibrator.identity().transform(grid), grid)


@pytest.mark.parametrize("d, match", [
    ({"x": [0.0, 0.5, 1.0], "y": [0.0, 1.0]}, r"equal-length finite arrays .* got x of shape \(3,\) and y of shape \(2,\)"),
    ({"x": [0.0, 1.0, 0.5], "y": [0.0, 0.5, 1.0]}, r"'x' \(non-decreasing\)"),
    ({"x": [0.0, float("nan")], "y": [0.0, 1.0]}, r"finite arrays"),
    ({"x": [0.0, 1.0], "y": [0.0, float("inf")]}, r"finite arrays"),
    ({"x": [], "y": []}, r"got x of shape \(0,\)"),
    ({"x": [[0.0, 1.0]], "y": [[0.0, 1.0]]}, r"got x of shape \(1, 2\)"),
    ({"x": [0.0, 1.0], "y": [0.9, 0.1]}, r"'y' must be non-decreasing probabilities .* decreasing"),
    ({"x": [0.0, 1.0], "y": [0.0, 1.5]}, r"'y' must be non-decreasing probabilities in \[0, 1\], got values from 0 to 1.5"),
    ({"x": ["a", "b"], "y": [0.0, 1.0]}, r"'x' and 'y' must hold numbers"),
    ({"x": [0.0, 1.0]}, r"keys 'x' and 'y', got dict with keys \['x'\]"),
    ([0.0, 1.0], r"must be a mapping with keys 'x' and 'y', got list"),
], ids=["length", "x-decreasing", "x-nan", "y-inf", "empty", "2-d", "y-decreasing", "y-above-1", "strings",
        "missing-y", "not-a-mapping"])
def test_calibrator_refuses_bad_arrays(d, match):
    with pytest.raises(ValidationError, match=match):
        Calibrator.from_dict(d)


def test_calibration_makes_a_miscalibrated_learner_calibrated():
    """Twenty slow trees are under-confident; the isotonic step must fix that on held-out rows.

    The same learner without calibration fails the bound, so the bound is a real check.
    """
    train_w, held = _world(20000, seed=10), _world(6000, seed=11)
    codes = pd.Index(ACTIONS).get_indexer(held["action"])
    offered = codes > 0
    rows = np.arange(len(codes))
    ece = {}
    for frac in (0.3, 0.0):
        m = _fit(train_w, n_estimators=20, calibration_fraction=frac)
        p = m.predict_proba(held["X"], held["context"])
        ece[frac] = {
            "accept": expected_calibration_error(held["accepted"][offered], p["accept"][rows, codes][offered]),
            "success": expected_calibration_error(held["success"], p["success"][rows, codes]),
        }
    assert offered.sum() > 3000
    assert ece[0.3]["accept"] < 0.05, ece
    assert ece[0.3]["success"] < 0.05, ece
    assert ece[0.0]["accept"] > 0.05, ece  # without calibration the same learner fails the bound
    assert ece[0.0]["accept"] > 2 * ece[0.3]["accept"], ece


def test_no_calibration_means_identity(world):
    m = _fit({k: (v.iloc[:1000] if isinstance(v, pd.DataFrame) else v[:1000]) for k, v in world.items()},
             n_estimators=3, calibration_fraction=0.0)
    for head in HEADS:
        assert m.calibrators_[head].to_dict() == Calibrator.identity().to_dict()
    assert not m.holdout_.any()


# ---------------------------------------------------------------------------------------------
# Offer model
# ---------------------------------------------------------------------------------------------
def _sign_agreement(m: OfferModel) -> float:
    stuck = np.r_[np.linspace(0.0, 0.3, 16), np.linspace(0.7, 1.0, 16)]
    tau = m.predict(pd.DataFrame({"stuck": stuck, "noise": np.zeros(len(stuck))}))
    return float(np.mean(np.sign(tau) == np.sign(2 * stuck - 1)))


@pytest.mark.parametrize("target", ["dr", "dm"])
def test_offer_model_recovers_the_uplift_sign(bandit, target):
    b = bandit
    # DR gets an outcome model that knows nothing (zeros: pure inverse propensity weighting);
    # DM needs a decent one: the truth plus noise.
    q = np.zeros_like(b["q_true"]) if target == "dr" else b["q_true"] + b["rng"].normal(0, 0.2, b["q_true"].shape)
    m = OfferModel(n_estimators=40, target=target).fit(b["X"], b["action"], b["reward"], b["propensity"],
                                                        reward_hat=q, actions=("none", "chat"))
    assert m.fallback_ is False
    assert _sign_agreement(m) >= 0.95


def test_dr_corrects_a_biased_outcome_model_and_dm_does_not(bandit):
    """With q claiming every offer gains +1, DM believes it; DR's correction restores the truth."""
    b = bandit
    q = np.column_stack([np.zeros(len(b["action"])), np.ones(len(b["action"]))])
    dr = OfferModel(n_estimators=40, target="dr").fit(b["X"], b["action"], b["reward"], b["propensity"],
                                                      reward_hat=q, actions=("none", "chat"))
    dm = OfferModel(n_estimators=40, target="dm").fit(b["X"], b["action"], b["reward"], b["propensity"],
                                                      reward_hat=q, actions=("none", "chat"))
    assert _sign_agreement(dr) >= 0.95
    assert _sign_agreement(dm) <= 0.55  # DM says "offer" everywhere


def test_offer_model_with_several_channels_uses_offer_action(bandit):
    b = bandit
    n = len(b["action"])
    rng = np.random.default_rng(5)
    action = rng.choice(np.array(["none", "chat", "email"], dtype=object), n)
    tau = 2 * b["X"]["stuck"].to_numpy() - 1
    reward = np.where(action == "email", tau, np.where(action == "chat", -1.0, 0.0)) + rng.normal(0, 0.3, n)
    m = OfferModel(n_estimators=40, target="dr").fit(b["X"], action, reward, np.full(n, 1 / 3),
                                                     offer_action=np.full(n, "email"),
                                                     actions=("none", "chat", "email"))
    assert _sign_agreement(m) >= 0.9


def test_no_randomisation_warns_and_falls_back(bandit):
    b = bandit
    need = b["X"]["stuck"].to_numpy() > 0.6
    with pytest.warns(NoRandomisationWarning, match="no randomisation"):
        m = OfferModel(n_estimators=20).fit(b["X"], b["action"], b["reward"], np.ones(len(b["action"])),
                                            actions=("none", "chat"), need=need)
    assert m.fallback_ is True
    p = m.predict(b["X"].head(200))
    assert np.all((p >= 0) & (p <= 1))
    # the fallback learned the need-for-help label
    assert p[need[:200]].mean() > p[~need[:200]].mean() + 0.3
    meta, text = offer_model_state(m)
    assert meta["fallback"] is True
    np.testing.assert_array_equal(offer_model_from_state(meta, text).predict(b["X"].head(5)), p[:5])


def test_randomised_logs_do_not_warn(bandit, recwarn):
    b = bandit
    OfferModel(n_estimators=5).fit(b["X"], b["action"], b["reward"], b["propensity"], actions=("none", "chat"))
    assert not [w for w in recwarn if issubclass(w.category, NoRandomisationWarning)]


def _offer_args(b: dict) -> dict:
    n = len(b["action"])
    return {"X": b["X"], "action": b["action"].copy(), "reward": b["reward"].copy(),
            "propensity": b["propensity"].copy(), "reward_hat": np.zeros((n, 2))}


def _set(key, value_fn):
    def change(a):
        a[key] = value_fn(a)
        return a
    return change


@pytest.mark.parametrize("change, match", [
    (_set("reward", lambda a: np.where(np.arange(len(a["reward"])) == 3, np.nan, a["reward"])),
     r"reward must be finite numbers, got NaN or inf"),
    (_set("propensity", lambda a: np.where(np.arange(len(a["propensity"])) == 0, 1.5, a["propensity"])),
     r"propensity must be in \[0, 1\], got values in \[0.5, 1.5\]"),
    (_set("propensity", lambda a: np.where(np.arange(len(a["propensity"])) == 0, np.nan, a["propensity"])),
     r"propensity must be in \[0, 1\]"),
    (_set("propensity", lambda a: np.where(np.arange(len(a["propensity"])) == 0, 0.0, a["propensity"])),
     r"propensity must be > 0 for every logged decision when logs are randomised, got 1 zeros"),
    (_set("reward_hat", lambda a: np.zeros((len(a["reward"]), 3))),
     r"reward_hat must have shape \(4000, 2\), got \(4000, 3\)"),
    (_set("action", lambda a: np.where(np.arange(len(a["action"])) == 0, "fax", a["action"])),
     r"action values must be one of \['none', 'chat'\], got \['fax'\]"),
    (_set("X", lambda a: a["X"].to_numpy()), r"X must be a pandas DataFrame of numeric features, got ndarray"),
    (_set("X", lambda a: a["X"].assign(page=["home"] * len(a["X"]))), r"X columns must be numeric, .*\['page'\]"),
    (_set("reward", lambda a: a["reward"][:-1]), r"reward must be a 1-D array of length 4000 \(rows of X\), got shape \(3999,\)"),
    (_set("propensity", lambda a: np.array(["high"] * len(a["propensity"]))), r"propensity must hold float64 values"),
], ids=["reward-nan", "propensity-above-1", "propensity-nan", "propensity-zero", "reward-hat-shape",
        "unknown-action", "not-a-frame", "non-numeric-column", "short-reward", "propensity-strings"])
def test_offer_model_bad_inputs(bandit, change, match):
    a = change(_offer_args(bandit))
    with pytest.raises(ValidationError, match=match):
        OfferModel(n_estimators=2).fit(a["X"], a["action"], a["reward"], a["propensity"],
                                       reward_hat=a["reward_hat"], actions=("none", "chat"))


def test_offer_model_bad_params_and_offer_action(bandit):
    a = _offer_args(bandit)
    with pytest.raises(ValidationError, match=r"target must be 'dr' or 'dm', got 'ipw'"):
        OfferModel(target="ipw").fit(a["X"], a["action"], a["reward"], a["propensity"])
    with pytest.raises(ValidationError, match=r"offer_action must be channels of \['chat'\]"):
        OfferModel(n_estimators=2).fit(a["X"], a["action"], a["reward"], a["propensity"],
                                       offer_action=np.full(len(a["action"]), "none"), actions=("none", "chat"))


def test_offer_model_predict_checks_features(bandit):
    b = bandit
    m = OfferModel(n_estimators=3).fit(b["X"], b["action"], b["reward"], b["propensity"], actions=("none", "chat"))
    with pytest.raises(ValidationError, match=r"X is missing features the model was fitted on: \['noise'\]"):
        m.predict(b["X"][["stuck"]])
    assert m.contributions(b["X"].head(3)).shape == (3, 3)  # 2 features + expected value
