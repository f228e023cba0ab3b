"""Channel context: one definition, two executors (per request, per decision log) that agree."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextchannel.context import ContextSpec, context_spec
from nextchannel.errors import ValidationError

CHANNELS = ("chat", "phone")
SPEC = ContextSpec(CHANNELS)

_bools = st.sampled_from([True, False, np.True_, np.False_, 0, 1, 0.0, 1.0, 2, -1, 0.5, "true", "False", "YES",
                          "no", "open", "closed", "maybe", "", None, math.nan, [True], "0", "1"])
_waits = st.one_of(st.floats(0, 1e6, allow_nan=False), st.integers(0, 10**6),
                   st.sampled_from([None, math.nan, -3, -0.5, math.inf, -math.inf, True, False, "30", [30], 10**400,
                                    np.float32(2.5), np.int64(7)]))
_langs = st.one_of(st.lists(st.sampled_from(["en", "de", "fr", "other"]), max_size=3),
                   st.sampled_from([None, "english-only", "en", ["en", 1], ("de",), {"x": 1}, 5]))
_keys = {**{f"open_{c}": _bools for c in CHANNELS}, **{f"lang_ok_{c}": _bools for c in CHANNELS},
         **{f"wait_{c}_s": _waits for c in CHANNELS}, **{f"languages_{c}": _langs for c in CHANNELS}}


@st.composite
def contexts(draw):
    return {k: draw(v) for k, v in _keys.items() if draw(st.booleans())}


def _one(ctx, lang):
    try:
        o, w, lk = SPEC.parse_one(ctx, lang)
    except ValidationError as err:
        return None, str(err)
    return np.array([x for j in range(len(CHANNELS)) for x in (float(o[j]), w[j], float(lk[j]))]), ""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(contexts(), min_size=1, max_size=12), data=st.data())
def test_parse_one_equals_parse_many(rows, data):
    """Value for value and message for message, on frames of object columns and of inferred dtypes."""
    langs = [data.draw(st.sampled_from(["en", "de", None])) for _ in rows]
    for frame in (pd.DataFrame(rows, dtype=object, columns=sorted(_keys)), pd.DataFrame(rows)):
        exact = frame.dtypes.eq(object).all()
        many = SPEC.parse_many(frame, langs, strict=False)
        assert list(many.columns) == SPEC.columns + ["context_error"]
        for i, (ctx, lang) in enumerate(zip(rows, langs)):
            vals, err = _one(ctx, lang)
            got_err = many["context_error"].iloc[i]
            assert bool(err) == bool(got_err), (ctx, lang, err, got_err)
            if exact:
                assert err == got_err
            if not err:
                np.testing.assert_array_equal(many[SPEC.columns].iloc[i].to_numpy(dtype=float), vals)


def test_defaults_and_documented_forms():
    assert SPEC.parse_one(None) == ([True, True], [0.0, 0.0], [True, True])
    assert SPEC.parse_one({}) == ([True, True], [0.0, 0.0], [True, True])
    ctx = {"open_chat": "FALSE", "open_phone": np.True_, "wait_chat_s": np.int64(12), "languages_phone": ["de"],
           "lang_ok_chat": 0, "unrelated": object()}
    assert SPEC.parse_one(ctx, "en") == ([False, True], [12.0, 0.0], [False, False])
    assert SPEC.parse_one(ctx, None)[2] == [False, True]     # unknown language: served wherever a list is given
    nested = {"chat": {"open": False, "wait_s": 5, "languages": ["en"]}, "open_chat": True, "wait_phone_s": 3}
    assert SPEC.parse_one(nested, "en") == ([False, True], [5.0, 3.0], [True, True])


@pytest.mark.parametrize("ctx,match", [
    ({"open_phone": "maybe"}, r"open_phone must be a boolean \(True/False, 0/1 or one of .*\), got 'maybe'"),
    ({"open_phone": 2}, "open_phone must be a boolean .* got 2"),
    ({"wait_chat_s": True}, r"wait_chat_s must be a finite number >= 0 \(seconds\), got True"),
    ({"wait_chat_s": "30"}, "wait_chat_s must be a finite number >= 0 .* got '30'"),
    ({"wait_chat_s": -3}, "got -3"),
    ({"wait_chat_s": math.inf}, "got inf"),
    ({"wait_chat_s": 10**400}, "got <int of 1329 bits>"),
    ({"languages_chat": "english-only"}, r"languages_chat must be a list of language codes like \['en', 'de'\], "
                                         "got 'english-only'"),
    ({"languages_chat": ["en", 1]}, "languages_chat must be a list of language codes"),
    ({"chat": "open"}, r"context\['chat'\] must be a dict"),
    ({"chat": {"wait_s": -1}}, r"context\['chat'\]\['wait_s'\] must be a finite number >= 0"),
    ({"wait_chat_s": "x" * 10_000}, r"got 'x{60}'\.\.\. \(10000 chars\)$"),
    (["open_chat"], "context must be a dict"),
])
def test_malformed_values_are_refused_with_the_key_and_value(ctx, match):
    with pytest.raises(ValidationError, match=match):
        SPEC.parse_one(ctx, "en")
    assert SPEC.error_one(ctx, "en")


def test_parse_many_strict_names_the_row_and_fills_absent_columns():
    frame = pd.DataFrame({"open_chat": [True, "no"], "wait_phone_s": [1.0, -2.0]}, index=[10, 11])
    with pytest.raises(ValidationError, match=r"^row 11: wait_phone_s must be a finite number >= 0 \(seconds\), got -2.0$"):
        SPEC.parse_many(pd.DataFrame({"wait_phone_s": [1.0, -2.0]}, index=[10, 11]))
    ok = SPEC.parse_many(frame.iloc[:1])
    assert ok.loc[10].tolist() == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    lenient = SPEC.parse_many(frame, strict=False)
    assert lenient["context_error"].tolist() == ["", "wait_phone_s must be a finite number >= 0 (seconds), got -2.0"]
    assert lenient.loc[11, "wait_phone_s"] == 0.0   # a malformed row carries the defaults and its message


def test_spec_is_cached_and_checks_its_channels():
    assert context_spec(CHANNELS) is context_spec(list(CHANNELS))
    with pytest.raises(ValidationError, match="channels must be a non-empty sequence"):
        ContextSpec([])


_usual_values = {**{f"open_{c}": st.sampled_from([True, False, None, 1, "yes"]) for c in CHANNELS},
                 **{f"lang_ok_{c}": st.sampled_from([True, False, np.False_]) for c in CHANNELS},
                 **{f"wait_{c}_s": st.sampled_from([0.0, -0.0, 12.5, 30, -1.0, math.nan, math.inf]) for c in CHANNELS},
                 **{f"languages_{c}": st.sampled_from([None, ["en"]]) for c in CHANNELS},
                 **{c: st.just({"open": False}) for c in CHANNELS}}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_compiled_usual_request_reads_as_the_full_reader(data):
    """parse_one's compiled path for the usual request (flat bools and float waits) gives what the full
    reader gives, and hands every other context (other types, languages, nested, bad values) to it."""
    ctx = {k: data.draw(v) for k, v in _usual_values.items() if data.draw(st.booleans())}
    lang = data.draw(st.sampled_from(["en", None]))
    try:
        full = SPEC._one(ctx, lang)
    except Exception as err:
        full = type(err)
    usual = SPEC._usual(ctx)
    assert usual is None or usual == full
    plain = all((k.startswith(("open_", "lang_ok_")) and v in (True, False) and type(v) is bool)
                or (k.startswith("wait_") and type(v) is float and math.isfinite(v) and v >= 0) for k, v in ctx.items())
    assert (usual is not None) == plain, ctx
    got = SPEC.parse_one(ctx, lang) if not isinstance(full, type) else full
    assert got == full


def test_channel_names_never_enter_the_compiled_source():
    """A channel name is data (it may come from a bundle): names with quotes, backslashes or code read the same."""
    names = ["chat", "a'b", 'c"d\\', "x'); import os; ('"]
    spec = context_spec(names)
    ctx = {f"open_{names[1]}": False, f"wait_{names[3]}_s": 12.0, f"lang_ok_{names[2]}": False}
    assert spec._usual(ctx) == ([True, False, True, True], [0.0, 0.0, 0.0, 12.0], [True, True, False, True])
    assert spec._usual(ctx) == spec.parse_one(ctx)
    assert not any(n in spec._usual.__code__.co_consts for n in (f"open_{names[1]}", f"wait_{names[3]}_s"))
