"""Tests of nextchannel.modelset: save/load round trip, a table of bad bundles refused with the
file and the problem, no unpickling, and the default bundle shipped in ``models/default``."""

from __future__ import annotations

import ast
import json
import pathlib
import pickle
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import nextchannel
from nextchannel.bundle import canonical_json, file_sha256, verify_bundle
from nextchannel.diagnostics import expected_calibration_error
from nextchannel.errors import BundleError, ValidationError
from nextchannel.features import feature_names, features_many
from nextchannel.modelset import _MODEL_FILES, DEFAULT_BUNDLE, ModelSet
from nextchannel.simulation import SimConfig, simulate
from nextchannel.training import TrainConfig, context_frame, train

PACKAGE = pathlib.Path(nextchannel.__file__).resolve().parent


@pytest.fixture(scope="module")
def sim():
    return simulate(1500, seed=4)


@pytest.fixture(scope="module")
def model_set(sim) -> ModelSet:
    return train(decisions=sim.decisions, events=sim.events, customers=sim.customers, contacts=sim.contacts,
                 config=TrainConfig(n_estimators=20, offer_n_estimators=20, guard=False))


@pytest.fixture(scope="module")
def rows(sim, model_set) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and channel context of 300 decisions."""
    d = sim.decisions.iloc[::7].head(300)
    X = features_many(d[["session_id", "ts", "customer_id"]], events=sim.events, customers=sim.customers, contacts=sim.contacts, with_profile=True, profile_config=model_set.profile_config)
    return X[list(model_set.feature_names)], context_frame(d, model_set.policy.channels)


@pytest.fixture(scope="module")
def saved(model_set, tmp_path_factory) -> pathlib.Path:
    return model_set.save(tmp_path_factory.mktemp("bundles") / "good")


@pytest.fixture
def copy(saved, tmp_path) -> pathlib.Path:
    """A private copy of the good bundle, to break."""
    return pathlib.Path(shutil.copytree(saved, tmp_path / "bundle"))


def _manifest(p: pathlib.Path) -> dict:
    return json.loads((p / "manifest.json").read_text())


def _rewrite(p: pathlib.Path, name: str, data: bytes) -> None:
    """Replace a file and update its manifest entry, so only the content check can catch it."""
    (p / name).write_bytes(data)
    m = _manifest(p)
    m["files"][name] = {"sha256": file_sha256(p / name), "bytes": len(data)}
    (p / "manifest.json").write_text(canonical_json(m))


def _edit_json(p: pathlib.Path, name: str, fn) -> None:
    obj = json.loads((p / name).read_text())
    fn(obj)
    _rewrite(p, name, canonical_json(obj).encode())


# ---------------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------------
def test_save_load_round_trip(model_set, saved, rows):
    X, ctx = rows
    back = ModelSet.load(saved)
    assert back.version == model_set.version == _manifest(saved)["model_version"]
    assert back.actions == model_set.actions
    assert back.feature_names == model_set.feature_names
    assert back.policy == model_set.policy
    assert back.profile_config == model_set.profile_config
    assert back.meta == json.loads(json.dumps(model_set.meta))
    np.testing.assert_allclose(back.expected_values(X, ctx), model_set.expected_values(X, ctx), rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.offer_model.predict(X), model_set.offer_model.predict(X), rtol=0, atol=1e-12)
    p0, p1 = model_set.outcome_probabilities(X, ctx), back.outcome_probabilities(X, ctx)
    for head in p0:
        np.testing.assert_allclose(p1[head], p0[head], rtol=0, atol=1e-12)
    # saving the loaded set gives the same bundle
    assert ModelSet.load(saved).version == back.version


def test_loaded_learners_are_built_on_first_use_and_equal_the_eager_ones(model_set, saved):
    """A loaded set keeps its learners as their bundle state (texts + metadata) and builds them when
    asked; its version, texts and rebuilt learners equal those of the set that was saved."""
    from nextchannel import models

    back = ModelSet.load(saved)
    assert back._learners == {}
    assert back.version == model_set.version
    assert back.value_texts == model_set.value_texts and back.offer_text == model_set.offer_text
    assert back.offer_feature_names == tuple(model_set.offer_model.feature_names_)
    assert back.context_features == tuple(model_set.value_model.context_features_)
    for name in ("channel_model", "value_model", "offer_model"):
        assert getattr(models, f"{name}_state")(getattr(back, name)) == \
            getattr(models, f"{name}_state")(getattr(model_set, name))
    assert back._content_hash() == model_set.version  # computed again, from the built learners' state


def test_learner_parameters_listed_for_bundles_are_the_learners_own():
    from nextchannel.modelinputs import LEARNER_PARAMS
    from nextchannel.models import ChannelModel, OfferModel, ValueModel

    for name, cls in (("channel_model", ChannelModel), ("value_model", ValueModel), ("offer_model", OfferModel)):
        assert LEARNER_PARAMS[name] == set(cls().get_params())


def test_a_bundle_with_parameters_of_another_version_builds_its_learners_eagerly(copy):
    """Parameters the learners do not list: the learners decide (a missing one takes its default,
    an unknown one refuses the bundle naming the file), as before learners were built lazily."""
    _edit_json(copy, "models.json", lambda m: m["value_model"]["params"].update(not_a_parameter=1))
    with pytest.raises(BundleError, match=r"models\.json: does not hold a valid model set part: .*not_a_parameter"):
        ModelSet.load(copy)


def test_resave_gives_identical_bytes(saved, tmp_path):
    again = ModelSet.load(saved).save(tmp_path / "again")
    for f in sorted(saved.iterdir()):
        assert (again / f.name).read_bytes() == f.read_bytes(), f.name


def test_save_refuses_to_clobber_without_overwrite(model_set, saved):
    with pytest.raises(BundleError, match=r"already exists; pass overwrite=True"):
        model_set.save(saved)


def test_bundle_layout(saved):
    names = sorted(p.name for p in saved.iterdir())
    assert set(_MODEL_FILES) <= set(names)
    assert "manifest.json" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    m = _manifest(saved)
    assert m["kind"] == "nextchannel-modelset"
    assert m["feature_names"] == list(ModelSet.load(saved).feature_names)


def test_expected_feature_names_that_match_load(model_set, saved):
    assert ModelSet.load(saved, expected_feature_names=model_set.feature_names).version == model_set.version


# ---------------------------------------------------------------------------------------------
# The table of bad bundles
# ---------------------------------------------------------------------------------------------
def _missing_model_file(p):
    (p / "channel_leave.txt").unlink()


def _flipped_byte(p):
    raw = bytearray((p / "channel_success.txt").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (p / "channel_success.txt").write_bytes(bytes(raw))


def _truncated_offer(p):
    raw = (p / "offer.txt").read_bytes()
    (p / "offer.txt").write_bytes(raw[:100])


def _malformed_calibration(p):
    raw = (p / "calibration.json").read_bytes()
    _rewrite(p, "calibration.json", raw[: len(raw) // 2])


def _calibration_missing_head(p):
    _edit_json(p, "calibration.json", lambda c: c.pop("leave"))


def _calibration_decreasing(p):
    def edit(c):
        c["accept"] = {"x": [0.0, 0.5, 1.0], "y": [0.9, 0.5, 0.1]}
    _edit_json(p, "calibration.json", edit)


def _unknown_format_version(p):
    m = _manifest(p)
    m["format_version"] = 99
    (p / "manifest.json").write_text(canonical_json(m))


def _models_json_missing_key(p):
    _edit_json(p, "models.json", lambda m: m.pop("profile_config"))


def _models_json_missing_nested_key(p):
    _edit_json(p, "models.json", lambda m: m["channel_model"].pop("actions"))


def _lightgbm_text_not_a_model(p):
    _rewrite(p, "channel_accept.txt", b"this is not a LightGBM model\n")


def _offer_text_not_a_model(p):
    _rewrite(p, "offer.txt", b"tree\nversion=v4\n")


def _policy_bad_value(p):
    _edit_json(p, "policy.json", lambda d: d.__setitem__("annoyance", -1.0))


def _model_version_tampered(p):
    m = _manifest(p)
    m["model_version"] = "m-000000000000"
    (p / "manifest.json").write_text(canonical_json(m))


def _stray_file(p):
    (p / "model.pkl").write_bytes(pickle.dumps({"evil": True}))


def _missing_manifest(p):
    (p / "manifest.json").unlink()


BAD_BUNDLES = [
    pytest.param(_missing_model_file, {}, r"file 'channel_leave\.txt' listed in manifest\.json is missing",
                 id="model-file-missing"),
    pytest.param(_flipped_byte, {}, r"file 'channel_success\.txt' fails its checksum: expected sha256",
                 id="flipped-byte"),
    pytest.param(_truncated_offer, {}, r"file 'offer\.txt' has 100 bytes, manifest\.json lists \d+ \(truncated",
                 id="truncated-model"),
    pytest.param(_malformed_calibration, {}, r"file 'calibration\.json' is not valid JSON",
                 id="calibration-malformed"),
    pytest.param(_calibration_missing_head, {}, r"calibration\.json: missing key 'leave'",
                 id="calibration-missing-head"),
    pytest.param(_calibration_decreasing, {}, r"calibration\.json: .*'y' must be non-decreasing",
                 id="calibration-decreasing"),
    pytest.param(_unknown_format_version, {}, r"manifest\.json has unsupported format_version 99 .*upgrade",
                 id="unknown-format-version"),
    pytest.param(_models_json_missing_key, {}, r"models\.json: missing key 'profile_config'",
                 id="models-json-missing-key"),
    pytest.param(_models_json_missing_nested_key, {}, r"models\.json: missing key 'actions'",
                 id="models-json-missing-nested-key"),
    pytest.param(_lightgbm_text_not_a_model, {}, r"channel_accept\.txt: model text must start with the line 'tree'",
                 id="lightgbm-text-not-a-model"),
    pytest.param(_offer_text_not_a_model, {}, r"offer\.txt: model text is incomplete: no trees and no 'end of trees' line",
                 id="offer-text-not-a-model"),
    pytest.param(_policy_bad_value, {}, r"policy\.json: .*annoyance must be a finite number >= 0, got -1\.0",
                 id="policy-bad-value"),
    pytest.param(_model_version_tampered, {}, r"manifest\.json: model_version 'm-000000000000' does not match",
                 id="model-version-tampered"),
    pytest.param(_stray_file, {}, r"'model\.pkl' is in the bundle folder but not listed in manifest\.json",
                 id="stray-pickle"),
    pytest.param(_missing_manifest, {}, r"manifest\.json is missing", id="manifest-missing"),
    pytest.param(lambda p: None, {"expected_feature_names": ("dwell_s", "n_pages")},
                 r"feature schema mismatch: manifest\.json has feature_schema_hash .*first difference at position 0",
                 id="feature-schema-mismatch"),
]


@pytest.mark.parametrize("breaker, kwargs, match", BAD_BUNDLES)
def test_bad_bundles_are_refused(copy, breaker, kwargs, match):
    breaker(copy)
    with pytest.raises(BundleError, match=match) as info:
        ModelSet.load(copy, **kwargs)
    assert str(copy) in str(info.value)  # the message names the bundle, the match the file and problem


def test_every_table_entry_breaks_a_good_bundle(saved):
    """The table is honest: the untouched bundle loads, with and without a matching schema."""
    ms = ModelSet.load(saved)
    ModelSet.load(saved, expected_feature_names=ms.feature_names)


def test_feature_schema_mismatch_names_the_first_difference(copy, model_set):
    names = list(model_set.feature_names)
    original, names[3] = names[3], "something_else"
    with pytest.raises(BundleError, match=rf"first difference at position 3: bundle has {re.escape(repr(original))}, "
                                          r"expected 'something_else'"):
        ModelSet.load(copy, expected_feature_names=tuple(names))
    with pytest.raises(BundleError, match=r"bundle has \d+ features, expected \d+"):
        ModelSet.load(copy, expected_feature_names=tuple(model_set.feature_names) + ("extra",))


# ---------------------------------------------------------------------------------------------
# Never unpickles
# ---------------------------------------------------------------------------------------------
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "joblib", "cloudpickle", "dill", "shelve", "marshal"}


@pytest.mark.parametrize("module", ["modelset.py", "models.py", "bundle.py"])
def test_module_never_imports_a_pickler(module):
    tree = ast.parse((PACKAGE / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & UNSAFE_MODULES, imported & UNSAFE_MODULES
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            pytest.fail(f"{module} passes allow_pickle")
        if isinstance(node, ast.Attribute) and node.attr in ("read_pickle", "load_pickle"):
            pytest.fail(f"{module} calls {node.attr}")


def test_loading_does_not_unpickle(saved, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during ModelSet.load")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    assert ModelSet.load(saved).version


# ---------------------------------------------------------------------------------------------
# The default bundle shipped in the repository
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def default_set() -> ModelSet:
    return ModelSet.load(DEFAULT_BUNDLE)


def test_default_bundle_loads_and_verifies(default_set):
    assert verify_bundle(DEFAULT_BUNDLE) == []
    assert verify_bundle(DEFAULT_BUNDLE, required_files=_MODEL_FILES,
                         expected_feature_names=default_set.feature_names) == []
    m = _manifest(DEFAULT_BUNDLE)
    assert default_set.version == m["model_version"]
    # trained for the library's own features, so the scorer can feed it
    assert default_set.feature_names == feature_names(default_set.policy.channels)
    assert ModelSet.load(DEFAULT_BUNDLE, expected_feature_names=feature_names(default_set.policy.channels))


def test_default_bundle_is_small():
    total = sum(p.stat().st_size for p in DEFAULT_BUNDLE.iterdir())
    assert total < 5 * 1024 * 1024, total


def test_default_bundle_manifest_lists_window_and_size():
    m = _manifest(DEFAULT_BUNDLE)
    training = m["training"]
    window = training["window"]
    assert 0 < window["first_ts"] < window["last_ts"]
    assert training["rows"] > 10_000 and 0 < training["sessions"] <= training["rows"]
    assert training["events"] > training["rows"]
    assert "offer_margin" in training and training["train_config"]
    for name, entry in m["files"].items():
        assert entry["bytes"] == (DEFAULT_BUNDLE / name).stat().st_size, name


def test_default_bundle_is_calibrated_on_held_out_simulated_data(default_set):
    """Acceptance ECE of the shipped model on a fresh simulation (uniform logging: many offers)."""
    held = simulate(1500, seed=123, config=SimConfig(logging_policy="uniform"))
    d = held.decisions
    X = features_many(d[["session_id", "ts", "customer_id"]], events=held.events, customers=held.customers, contacts=held.contacts, with_profile=True, profile_config=default_set.profile_config)
    p = default_set.outcome_probabilities(X[list(default_set.feature_names)],
                                          context_frame(d, default_set.policy.channels))
    codes = pd.Index(default_set.actions).get_indexer(d["action"])
    offered = codes > 0
    assert offered.sum() > 2000
    p_accept = p["accept"][np.arange(len(d)), codes][offered]
    assert expected_calibration_error(d["accepted"].to_numpy()[offered], p_accept) < 0.05
    p_success = p["success"][np.arange(len(d)), codes]
    assert expected_calibration_error(d["success"].to_numpy(), p_success) < 0.05


# ---------------------------------------------------------------------------------------------
# A model set on the user's own columns and rewards (no channel model)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reward_set() -> ModelSet:
    from nextchannel.policy import PolicyConfig

    rng = np.random.default_rng(4)
    n = 1200
    X = pd.DataFrame({"Kundentyp (ÄÖ)": rng.choice(["neu", "treu"], n), "x": rng.random(n)})
    a = rng.choice(["none", "Brief", "SMS 2"], n)
    r = np.where(a == "Brief", X["x"] - 0.5, np.where(a == "SMS 2", 0.5 - X["x"], 0.0)) + rng.normal(0, .1, n)
    return train(pd.DataFrame({"action": a, "propensity": 1 / 3, "reward": r}), features=X,
                 policy=PolicyConfig(channels=["Brief", "SMS 2"]),
                 config=TrainConfig(n_estimators=15, offer_n_estimators=5, value_n_estimators=10, guard=False))


def test_reward_set_round_trip_and_files(reward_set, tmp_path):
    path = reward_set.save(tmp_path / "r")
    names = sorted(p.name for p in path.iterdir())
    assert names == ["manifest.json", "models.json", "offer.txt", "policy.json", "value_0.txt", "value_1.txt",
                     "value_2.txt"]                       # no funnel files; value files by index ("SMS 2")
    back = ModelSet.load(path)
    assert back.version == reward_set.version and back.outcome == "reward"
    assert back.feature_spec.names == ("Kundentyp (ÄÖ)", "x")
    with pytest.raises(ValidationError, match=r"learned from a plain reward: it has no funnel"):
        back.outcome_probabilities(pd.DataFrame({"f0": [0.0], "f1": [0.5]}))


def test_reward_set_with_a_missing_value_file_is_refused(reward_set, tmp_path):
    path = reward_set.save(tmp_path / "r")
    m = json.loads((path / "manifest.json").read_text())
    del m["files"]["value_2.txt"]
    (path / "value_2.txt").unlink()
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"value_2.txt: required file is missing"):
        ModelSet.load(path)


# Versioned publishing of model sets
# ---------------------------------------------------------------------------------------------
def test_model_set_publish_and_load_from_the_root(model_set, saved, tmp_path):
    from nextchannel.bundle import current_version, published_versions

    root = tmp_path / "root"
    v = model_set.publish(root)
    assert current_version(root) == v.name
    assert {x.name: x.read_bytes() for x in v.iterdir()} == {x.name: x.read_bytes() for x in saved.iterdir()}
    assert ModelSet.load(root).version == model_set.version
    assert model_set.publish(root) == v and published_versions(root) == [v.name]   # idempotent


def test_scorer_reloading_in_a_loop_during_publishes_never_fails(tmp_path):
    """A reader reloads the root's `current` while another thread keeps publishing new versions."""
    import threading

    from nextchannel import Scorer
    from nextchannel.bundle import publish

    root = tmp_path / "root"
    publish(DEFAULT_BUNDLE, root, version="v0")
    scorer = Scorer.load(root)
    stop, failures, reloads = threading.Event(), [], [0]

    def publisher():
        i = 0
        while not stop.is_set():   # same bytes under new names: every publish flips `current` and prunes
            i += 1
            publish(DEFAULT_BUNDLE, root, version=f"v{i}", keep=2)

    t = threading.Thread(target=publisher)
    t.start()
    try:
        for _ in range(8):
            try:
                scorer.reload(root)
                reloads[0] += 1
            except Exception as err:  # noqa: BLE001 - any failure counts
                failures.append(repr(err))
    finally:
        stop.set()
        t.join()
    assert failures == [] and reloads[0] == 8
    assert scorer.model_version == ModelSet.load(DEFAULT_BUNDLE).version


def test_non_finite_expected_values_become_a_counted_fallback(monkeypatch):
    """Defence in depth: loading refuses models that could give them, and decide_one never decides from them."""
    from nextchannel import Scorer

    scorer = Scorer.load()
    st = scorer._c.buffers()
    real = st.stack_p

    def callback_nan() -> np.ndarray:  # the one evaluation of every model, with callback's EV broken
        out = real().copy()
        out[2] = np.nan
        return out

    st.stack_p = callback_nan
    try:
        d = scorer.decide_one({"session_id": "s", "ts": 5.0})
    finally:
        st.stack_p = real
    assert d.action == "none" and d.fallback.startswith("non-finite expected values: callback=nan")
    assert scorer.fallbacks["non-finite expected values"] == 1
    assert scorer.decide_one({"session_id": "s", "ts": 5.0}).fallback is None


def test_signed_save_and_require_signature(model_set, tmp_path, monkeypatch):
    from nextchannel import Scorer

    p = model_set.save(tmp_path / "signed", key="training-key")
    assert ModelSet.load(p, require_signature=True, key="training-key").version == model_set.version
    with pytest.raises(BundleError, match=r"signed with another key"):
        ModelSet.load(p, require_signature=True, key="someone-else")
    monkeypatch.setenv("NEXTCHANNEL_BUNDLE_KEY", "training-key")
    assert Scorer.load(p, require_signature=True).model_version == model_set.version
    unsigned = model_set.save(tmp_path / "unsigned", key=None)
    assert "signature" in _manifest(unsigned)     # the environment's key signs by default
    monkeypatch.delenv("NEXTCHANNEL_BUNDLE_KEY")
    plain = model_set.save(tmp_path / "plain")
    with pytest.raises(BundleError, match=r"is not signed"):
        Scorer.load(plain, require_signature=True, key="training-key")


def test_verify_prints_the_evaluation_and_agrees_with_load(model_set, tmp_path, capsys):
    from nextchannel.cli import main

    ms = ModelSet(model_set.channel_model, model_set.value_model, model_set.offer_model, model_set.policy,
                  model_set.profile_config, meta=model_set.meta,
                  evaluation={"policy_value": {"learned": 1.2345, "never": 0.5}, "test_seed": 7})
    root = tmp_path / "root"
    ms.publish(root)
    assert main(["verify", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok\n  bundle {root} (current version b-")
    assert "evaluation policy_value.learned: 1.234" in out and "evaluation test_seed: 7" in out
    _rewrite(root / "current", "offer.txt", b"tree\nversion=v4\n")
    assert main(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("refused: ") and "offer.txt" in out and out.endswith("1 problem(s)\n")
    with pytest.raises(BundleError, match=r"offer\.txt"):
        ModelSet.load(root)


def test_evaluation_lines_name_the_guard_rule_when_the_bundle_records_one():
    from nextchannel.modelset import evaluation_lines

    g = {"folds": 3, "rows": 10, "values": {"learned": {"value": 0.1, "low": -0.1, "high": 0.3}},
         "best_constant": "none", "learned_minus_best_constant": {"difference": 0.05, "low": -0.2, "high": 0.3},
         "verdict": "not significant", "decision": "learned"}
    assert evaluation_lines({"guard": g})[-1] == "  the bundle decides with: the learned policy"
    last = evaluation_lines({"guard": {**g, "rule": "not_below"}})[-1]
    assert last == "  the bundle decides with: the learned policy (guard rule 'not_below')"
