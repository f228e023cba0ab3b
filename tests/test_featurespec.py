"""Tests of nextchannel.featurespec: the user's columns as data — kinds and levels read from a frame,
the per-request and the batch executor agree on every value (Hypothesis, with awkward names,
categorical, text, bool, missing and unseen levels), JSON round-trips, and bad inputs are refused
naming the column."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel.errors import ConstantModelWarning, ValidationError
from nextchannel.featurespec import FeatureSpec

AWKWARD = ["plan: type", "visits, 30 d", "stage", "région", 'say "hi"', "a b  c", "action_code", "f0"]


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "plan: type": pd.Categorical(rng.choice(["basic", "gold", "silver"], n)),
        "visits, 30 d": rng.poisson(3, n).astype(float),
        "stage": rng.random(n) < 0.5,
        "région": rng.choice(np.array(["nord", "süd", None], dtype=object), n),
        'say "hi"': rng.integers(0, 5, n),
        "f0": rng.normal(size=n),
    })


def test_kinds_levels_and_internal_names():
    X = _frame(np.random.default_rng(0), 300)
    spec = FeatureSpec.fit(X)
    assert spec.names == tuple(X.columns)
    assert [c.kind for c in spec.columns] == ["category", "numeric", "bool", "category", "numeric", "numeric"]
    assert spec.columns[0].levels == ("basic", "gold", "silver")  # a Categorical keeps its own order
    assert set(spec.columns[3].levels) == {"nord", "süd"}          # missing is not a level
    # the user's "f0" keeps its name; the models see generated names that never collide
    assert spec.internal_names == ("f0", "f1", "f2", "f3", "f4", "f5")
    assert spec.display_name("f5") == "f0" and spec.display_name("f0") == "plan: type"


def test_json_round_trip_is_exact():
    spec = FeatureSpec.fit(_frame(np.random.default_rng(1), 200), builtin=("device", "language"))
    d = json.loads(json.dumps(spec.to_dict()))
    assert FeatureSpec.from_dict(d) == spec and FeatureSpec.from_dict(d).to_dict() == spec.to_dict()


_value = st.one_of(st.none(), st.just(float("nan")), st.sampled_from(["basic", "gold", "silver", "platinum", "nord",
                                                                        "süd", "", "GOLD"]),
                   st.integers(-3, 9), st.floats(-1e6, 1e6, allow_nan=False), st.booleans())


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


SPEC = FeatureSpec.fit(_frame(np.random.default_rng(2), 400).assign(mixed=["a", 1, 2.0, None] * 100))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({name: _value for name in SPEC.names}), min_size=1, max_size=12))
def test_encode_one_equals_transform_row_by_row(rows):
    """One definition, two executors: per-request dict and batch frame give the same inputs, or both
    refuse the same value with the same message."""
    frame = pd.DataFrame({name: pd.Series([r[name] for r in rows], dtype=object) for name in SPEC.names})
    try:
        batch = SPEC.transform(frame).to_numpy()
    except ValidationError as err:
        batch_err = str(err).split(" at row")[0]
        one_errs = set()
        for r in rows:
            try:
                SPEC.encode_one(r)
            except ValidationError as e:
                one_errs.add(str(e))
        assert batch_err in one_errs
        return
    for i, r in enumerate(rows):
        one = SPEC.encode_one(r)
        assert all(_same(a, b) for a, b in zip(one, batch[i])), (r, one, batch[i])


def test_typed_frame_equals_dicts():
    """A typed frame (Categorical, bool, int) at serving time encodes as its rows' dicts do."""
    X = _frame(np.random.default_rng(3), 50)
    X.loc[3, "visits, 30 d"] = np.nan
    X["plan: type"] = X["plan: type"].cat.add_categories(["platinum"])
    X.loc[4, "plan: type"] = "platinum"  # unseen in training
    spec = FeatureSpec.fit(_frame(np.random.default_rng(4), 300))
    batch = spec.transform(X).to_numpy()
    for i in range(len(X)):
        one = spec.encode_one({k: X[k].iloc[i] for k in X.columns})
        assert all(_same(a, b) for a, b in zip(one, batch[i]))
    assert math.isnan(batch[4, 0]) and math.isnan(batch[3, 1])


def test_constant_columns_warn():
    X = pd.DataFrame({"always one": np.ones(100), "x": np.arange(100.0)})
    spec = FeatureSpec.fit(X)
    with pytest.warns(ConstantModelWarning, match=r"\['always one'\] hold a single value"):
        spec.warn_constant(spec.transform(X))


@pytest.mark.parametrize("make, match", [
    (lambda: FeatureSpec.fit([[1, 2]]), r"features must be a pandas DataFrame \(one row per decision\), got list"),
    (lambda: FeatureSpec.fit(pd.DataFrame({0: [1.0]})), r"features column names must be non-empty strings, got 0"),
    (lambda: FeatureSpec.fit(pd.DataFrame([[1, 2]], columns=["a", "a"])),
     r"features column names must be distinct, got duplicates \['a'\]"),
    (lambda: FeatureSpec.fit(pd.DataFrame({"signup": pd.to_datetime(["2024-01-01"])})),
     r"features column 'signup' must be numeric, boolean, categorical or text, got dtype datetime64"),
    (lambda: FeatureSpec.fit(pd.DataFrame({"x": [1.0]})).encode_one({"x": "many"}),
     r"feature 'x' must be a number or missing, got 'many'"),
    (lambda: FeatureSpec.fit(pd.DataFrame({"x": [1.0]})).transform(pd.DataFrame({"x": [1.0, np.inf]})),
     r"feature 'x' must be finite or missing, got inf at row 1"),
    (lambda: FeatureSpec.fit(pd.DataFrame({"x": [1.0]})).transform(pd.DataFrame({"y": [1.0]})),
     r"features must have the columns the model set was trained on \['x'\], missing \['x'\]"),
    (lambda: FeatureSpec.from_dict({"columns": [{"name": "x", "internal": "f0", "kind": "numeric",
                                                 "missing": "zero"}]}), r"unknown keys or handling"),
    (lambda: FeatureSpec.from_dict({"columns": [{"name": "x", "internal": "f0", "kind": "text"}]}),
     r"kind of feature 'x' must be one of \['numeric', 'bool', 'category'\], got 'text'"),
], ids=["not-a-frame", "int-name", "duplicate-names", "datetime", "text-for-number", "inf", "missing-column",
        "unknown-handling", "unknown-kind"])
def test_bad_inputs(make, match):
    with pytest.raises(ValidationError, match=match):
        make()
