"""check_model_text: LightGBM text LightGBM writes passes; every kind of damage is refused, naming tree and field."""

from __future__ import annotations

import re

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel.errors import BundleError
from nextchannel.modeltext import MAX_LEAVES, check_model_text

FEATURES = ["a", "b", "c", "d"]


def _train(objective: str, **params) -> lgb.Booster:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 4))
    X[:, 3] = rng.integers(0, 6, 400)
    X[rng.random(400) < 0.1, 1] = np.nan
    y = {"regression": X[:, 0] + (X[:, 3] == 2), "binary": (X[:, 0] + (X[:, 3] == 2) > 0.5).astype(float),
         "multiclass": rng.integers(0, 3, 400).astype(float)}[objective]
    p = {"objective": objective, "verbose": -1, "num_threads": 1, "num_leaves": 7, "min_data_in_leaf": 5,
         "seed": 1, **params}
    if objective == "multiclass":
        p["num_class"] = 3
    return lgb.train(p, lgb.Dataset(X, y, feature_name=FEATURES, categorical_feature=[3]), num_boost_round=8)


@pytest.fixture(scope="module")
def text() -> str:
    return _train("regression").model_to_string()


@pytest.mark.parametrize("objective", ["regression", "binary", "multiclass"])
def test_text_lightgbm_writes_passes_and_bounds_the_predictions(objective):
    b = _train(objective)
    info = check_model_text(b.model_to_string(), feature_names=FEATURES)
    assert info.num_trees == b.num_trees() and info.feature_names == tuple(FEATURES)
    raw = b.predict(np.random.default_rng(0).normal(size=(2000, 4)) * 3, raw_score=True).reshape(2000, -1)
    for k, (lo, hi) in enumerate(info.output_range):
        assert lo <= raw[:, k].min() and raw[:, k].max() <= hi


def test_one_leaf_trees_pass():
    X = np.zeros((50, 2))
    b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 100},
                  lgb.Dataset(X, np.ones(50)), num_boost_round=2)
    assert check_model_text(b.model_to_string()).output_range == ((1.0, 1.0),)


def _tree_field(text: str, tree: int, field: str, fn) -> str:
    """Replace ``field`` in tree ``tree`` and fix tree_sizes, so that only the deep checks can object."""
    start = text.index(f"\nTree={tree}\n") + 1
    end = text.index("\n\n\n", start) + 3
    block = re.sub(rf"(?m)^{field}=(.*)$", lambda m: f"{field}={fn(m.group(1))}", text[start:end], count=1)
    text = text[:start] + block + text[end:]
    starts = [m.start() for m in re.finditer(r"(?m)^Tree=\d+$", text)]
    stop = text.index("\nend of trees") + 1
    sizes = [b - a for a, b in zip(starts, starts[1:] + [stop])]
    return re.sub(r"(?m)^tree_sizes=.*$", "tree_sizes=" + " ".join(map(str, sizes)), text, count=1)


def _first(new):
    return lambda v: " ".join([new] + v.split(" ")[1:])


BAD = [
    (lambda t: t.replace("\n", "\r\n"), r"CR character on line 1"),
    (lambda t: t[: t.index("\nleaf_value=", t.index("Tree=3"))], r"tree 3: tree_sizes says .*cut mid-tree"),
    (lambda t: t.replace("leaf_value=", "leaf_value=1 ", 1), r"tree 0: does not end where tree_sizes says"),
    (lambda t: t.replace("version=v4", "version=v3"), r"'version' must be 'v4'"),
    (lambda t: t.replace("max_feature_idx=3", "max_feature_idx=99999"), r"'feature_names' must list .* 100000"),
    (lambda t: t.replace("tree\n", "tree\nnum_class=1\n", 1), r"header field 'num_class' appears twice"),
    (lambda t: t.replace("objective=regression", "objective=evil"), r"'objective' is not one LightGBM writes"),
    (lambda t: t.replace("pandas_categorical:null", "pandas_categorical:{"), r"pandas_categorical line is not JSON"),
    (lambda t: t.replace("\nend of trees", "\nend of trees\nrm -rf /"), r"unexpected line after 'end of trees'"),
    (lambda t: _tree_field(t, 1, "threshold", _first("abc")), r"tree 1: field 'threshold' must hold decimal .*'abc'"),
    (lambda t: _tree_field(t, 1, "threshold", _first("nan")), r"tree 1: field 'threshold' must hold decimal"),
    (lambda t: _tree_field(t, 2, "leaf_value", _first("nan")), r"tree 2: field 'leaf_value' must hold finite"),
    (lambda t: _tree_field(t, 2, "leaf_value", _first("1e999")), r"tree 2: field 'leaf_value' holds a number too"),
    (lambda t: _tree_field(t, 2, "leaf_value", lambda v: v + " 0.5"), r"tree 2: field 'leaf_value' must hold 7"),
    (lambda t: _tree_field(t, 0, "num_leaves", lambda v: "2000000000"),
     rf"tree 0: field 'num_leaves' must be an integer in \[1, {MAX_LEAVES}\]"),
    (lambda t: _tree_field(t, 0, "num_leaves", lambda v: "6"), r"tree 0: field 'leaf_value' must hold 6 numbers"),
    (lambda t: _tree_field(t, 0, "left_child", _first("9999")), r"tree 0: field 'left_child' names child 9999"),
    (lambda t: _tree_field(t, 0, "right_child", _first("-99")), r"tree 0: field 'right_child' names child -99"),
    (lambda t: _tree_field(t, 0, "left_child", _first("0")), r"node 0 points at node 0, not a later node"),
    (lambda t: _tree_field(t, 0, "split_feature", _first("100000")), r"tree 0: .*feature 100000, but the model has 4"),
    (lambda t: _tree_field(t, 0, "decision_type", _first("12")), r"tree 0: field 'decision_type' has unknown .* 12"),
    (lambda t: _tree_field(t, 0, "internal_count", _first("1")), r"'internal_count' must equal the sum"),
    (lambda t: _tree_field(t, 0, "leaf_count", _first("-1")), r"must be counts"),
    (lambda t: _tree_field(t, 0, "is_linear", lambda v: "1"), r"linear trees are not supported"),
    (lambda t: _tree_field(t, 0, "shrinkage", lambda v: v + "\nleaf_const=1"), r"with a known field, got 'leaf_const"),
    (lambda t: _tree_field(t, 0, "shrinkage", lambda v: v + "\nnum_cat=0"), r"field 'num_cat' appears twice"),
    (lambda t: _tree_field(t, 0, "split_gain", lambda v: ""), r"field 'split_gain' must hold 6 numbers"),
]


@pytest.mark.parametrize("damage, match", BAD)
def test_damaged_text_is_refused_naming_tree_and_field(text, damage, match):
    bad = damage(text)
    assert bad != text
    with pytest.raises(BundleError, match=r"^model\.txt: .*" + match):
        check_model_text(bad, where="model.txt")


def test_expected_features_are_enforced(text):
    with pytest.raises(BundleError, match=r"the model's 4 features differ from the 3 the bundle expects"):
        check_model_text(text, feature_names=FEATURES[:3])
    with pytest.raises(BundleError, match=r"first difference at position 1"):
        check_model_text(text, feature_names=["a", "x", "c", "d"])


def test_size_limit_is_checked_before_parsing(text):
    with pytest.raises(BundleError, match=r"more than the limit of 1000"):
        check_model_text(text, max_bytes=1000)


def test_detached_cycle_is_refused(text):
    """Every node has one parent, but two nodes point at each other away from the root."""
    def rewire(t):
        start = t.index("\nTree=0\n") + 1
        fields = dict(line.split("=", 1) for line in t[start:t.index("\n\n", start)].split("\n")[1:])
        left = [int(x) for x in fields["left_child"].split()]
        right = [int(x) for x in fields["right_child"].split()]
        # find an internal node j (not the root) with an internal child k: swap so k points back at j
        j = next(n for n in range(1, len(left)) if left[n] > 0 or right[n] > 0)
        side = left if left[j] > 0 else right
        k = side[j]
        parent_list, p = next((lst, n) for lst in (left, right) for n in range(len(lst)) if lst[n] == j)
        # parent of j now points at k's child slot contents; k points at j: the cycle j -> k -> j
        k_side = left if left[k] != j else right
        parent_list[p], k_side[k] = k_side[k], j
        t2 = _tree_field(t, 0, "left_child", lambda v: " ".join(map(str, left)))
        return _tree_field(t2, 0, "right_child", lambda v: " ".join(map(str, right)))
    with pytest.raises(BundleError, match=r"tree 0: .*(cycle|orphaned|shared)"):
        check_model_text(rewire(text))


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, 10**6), byte=st.integers(0, 255))
def test_random_byte_damage_never_escapes_as_another_error(text, cut, byte):
    """Any single-byte change is either refused with a BundleError or still a sound model LightGBM loads."""
    data = bytearray(text.encode())
    i = cut % len(data)
    data[i] = byte
    try:
        check_model_text(bytes(data))
    except BundleError:
        return
    assert lgb.Booster(model_str=bytes(data).decode("utf-8")).num_trees() > 0  # passed: LightGBM must load it


@pytest.mark.parametrize("old,new,match", [
    ("[learning_rate: 0.1]", "[learning_rate: x.1]", "parameter 'learning_rate' must be a decimal number"),
    ("[boosting: gbdt]", "[boosting: \x01bdt]", "parameter 'boosting' must be letters"),
    ("[metric: l2]", '[metric: l"]', "parameter 'metric' must be letters"),
    ("[categorical_feature: 3]", "[categorical_feature: +]", "parameter 'categorical_feature' must be comma-separated"),
    ("[data: ]\n[valid: ]", "[data: ] [valid: ]", "parameter 'data' must be letters")])
def test_parameters_lightgbm_reads_back_must_be_as_it_writes_them(text, old, new, match):
    """The lightgbm package parses the parameters again (numbers natively, the rest as JSON): found by byte damage."""
    assert old in text
    with pytest.raises(BundleError, match=re.escape(match)):
        check_model_text(text.replace(old, new))
    lgb.Booster(model_str=text)  # the undamaged text loads


def test_numeric_parameter_table_is_what_this_lightgbm_writes(text):
    """Every parameter LightGBM writes as a number is in the table (an upgrade adding one fails here)."""
    from nextchannel.modeltext import _NUMERIC_PARAMETERS
    written = dict(re.fullmatch(r"\[([a-z_0-9]+): (.*)\]", line).groups()
                   for line in text[text.index("parameters:\n") + 12:text.index("\nend of parameters")].split("\n") if line)
    numeric = {k for k, v in written.items() if re.fullmatch(r"-?[0-9.]+(?:e[-+]?[0-9]+)?", v)} - {"categorical_feature"}
    assert numeric == _NUMERIC_PARAMETERS
