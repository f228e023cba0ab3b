"""The web path contains every failure of its input; bugs of the library are told apart, not disguised."""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextchannel.errors import ValidationError
from nextchannel.features import SESSION_FEATURES, SessionState
from nextchannel.modelset import DEFAULT_BUNDLE, ModelSet
from nextchannel.scorer import Scorer, decision_uniform


@pytest.fixture(scope="module")
def default_set() -> ModelSet:
    return ModelSet.load(DEFAULT_BUNDLE)


def _state() -> SessionState:
    s = SessionState("s1")
    s.update({"session_id": "s1", "ts": 0.0, "type": "session_start", "device": "desktop", "language": "en"})
    s.update({"session_id": "s1", "ts": 1.0, "type": "page_view", "page": "/checkout", "page_type": "checkout"})
    s.update({"session_id": "s1", "ts": 50.0, "type": "form_error", "field": "zip"})
    return s


def _deep(depth: int):
    v: object = 1.0
    for _ in range(depth):
        v = [v]
    return v


class _Hostile:
    def __init__(self, exc: type[BaseException]) -> None:
        self.exc = exc

    def _boom(self, *a):
        raise self.exc("hostile")

    __float__ = __bool__ = __hash__ = __eq__ = __lt__ = __str__ = __repr__ = __len__ = __iter__ = _boom


class _HostileMapping(dict):
    def get(self, *a):
        raise LookupError("hostile mapping")


HOSTILE = [
    pytest.param(lambda: ({"form_errors": _Hostile(RuntimeError), "ts": 5.0}, None, None, None), id="feature-raises"),
    pytest.param(lambda: (_state(), None, {"wait_chat_s": _deep(994)}, 60.0), id="context-depth-994"),
    pytest.param(lambda: (_state(), None, {"chat": _Hostile(RecursionError)}, 60.0), id="context-recursion"),
    pytest.param(lambda: ({"form_errors": _Hostile(MemoryError), "ts": 5.0}, None, None, None),
                 id="feature-memoryerror"),
    pytest.param(lambda: (_state(), _HostileMapping(customer_id="c"), None, 60.0), id="customer-mapping-raises"),
    pytest.param(lambda: (_state(), None, _HostileMapping(open_chat=True), 60.0), id="context-mapping-raises"),
    pytest.param(lambda: ({"session_id": np.array(["a", "b"]), "events": []}, None, None, 60.0), id="array-session-id"),
    pytest.param(lambda: ({"session_id": "s", "events": [{"session_id": "s", "ts": 1.0, "type": "page_view",
                                                          "page": 10**5000}]}, None, None, 10**5000), id="huge-ints"),
    pytest.param(lambda: (_state(), None, {"wait_chat_s": "x" * 1_000_000}, 60.0), id="1mb-string"),
    pytest.param(lambda: (_state(), None, None, _Hostile(ZeroDivisionError)), id="now-raises"),
    pytest.param(lambda: ({n: _deep(994) for n in SESSION_FEATURES} | {"ts": 1.0}, None, None, None),
                 id="features-depth-994"),
]


@pytest.mark.parametrize("make", HOSTILE)
def test_hostile_input_becomes_a_counted_fallback_with_a_short_message(default_set, make):
    scorer = Scorer(default_set)
    d = scorer.decide_one(*make())
    assert d.fallback is not None and d.fallback.startswith("malformed signals: "), d.fallback
    assert len(d.fallback) < 400, len(d.fallback)
    assert d.action == "none" and d.propensity == 1.0
    assert scorer.fallbacks == {"malformed signals": 1}
    plain = scorer.decide_one_plain(*make())
    assert plain.fallback is not None and plain.fallback.startswith("malformed signals") and len(plain.fallback) < 400
    with pytest.raises(ValidationError):
        Scorer(default_set, strict=True).decide_one(*make())


def test_a_library_bug_is_logged_at_error_and_counted_apart(default_set, caplog):
    scorer = Scorer(default_set)
    scorer._c.i_optout = [10**6] * len(scorer._c.i_optout)   # corrupt internal state: an IndexError in our code
    with caplog.at_level(logging.ERROR, logger="nextchannel"):
        d = scorer.decide_one(_state(), None, None, 60.0)
    assert d.fallback == "library error: policy: IndexError"
    assert scorer.fallbacks == {"library error": 1}
    rec = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert rec and rec[0].exc_info is not None and "IndexError" in caplog.text
    strict = Scorer(default_set, strict=True)
    strict._c.i_optout = scorer._c.i_optout
    with pytest.raises(IndexError):
        strict.decide_one(_state(), None, None, 60.0)


def test_a_float_read_id_column_keeps_decide_many_equal_to_decide_one(default_set):
    pol = dataclasses.replace(default_set.policy, exploration="epsilon", epsilon=0.5)
    ms = ModelSet(default_set.channel_model, default_set.value_model, default_set.offer_model, pol,
                  default_set.profile_config, default_set.meta)
    scorer = Scorer(ms, seed=3)
    s = _state()
    feats = s.features_one(60.0)
    frame = pd.DataFrame([{**feats, **{n: 0.0 for n in ms.feature_names if n not in feats}}] * 40)
    frame["session_id"] = np.arange(40, dtype=float)          # ids read back as floats: 0.0, 1.0, ...
    frame["ts"] = 60.0
    many = scorer.decide_many(frame)
    for i in range(40):
        one = scorer.decide_one({**frame.iloc[i][list(ms.feature_names)].to_dict(), "session_id": i, "ts": 60.0})
        assert (one.action, one.propensity) == (many["action"].iloc[i], many["propensity"].iloc[i]), i
    assert many["action"].nunique() > 1        # exploration did vary the actions
    assert decision_uniform(3, 7, 1.0) == decision_uniform(3, 7.0, 1.0) == decision_uniform(3, "7", 1.0)


def test_decide_many_refuses_a_malformed_context_naming_the_row(default_set):
    s = _state()
    frame = pd.DataFrame([s.features_one(60.0)] * 3)
    for n in default_set.feature_names:
        if n not in frame:
            frame[n] = 0.0
    frame["session_id"], frame["ts"] = "s1", 60.0
    frame["open_phone"] = [True, "maybe", False]
    with pytest.raises(ValidationError, match="row 1: open_phone must be a boolean"):
        Scorer(default_set).decide_many(frame)


def _fuzz_payloads():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import fuzz_payloads
    finally:
        sys.path.pop(0)
    return fuzz_payloads


def test_fuzz_sample_nothing_escapes_and_nothing_is_nan(default_set):
    """A small sample of benchmarks/fuzz_payloads.py (the full run there drives >= 100,000 payloads)."""
    r = _fuzz_payloads().run(1_500, seed=1, scorer=Scorer(default_set))
    assert r["calls"] == 1_500
    assert r["escaped"] == 0, r["escaped_examples"]
    assert r["nan_in_normal_decisions"] == 0
    assert "library error" not in r["fallbacks"], r["fallbacks"]
    assert r["fallbacks"].get("malformed signals", 0) > 200


def test_web_fuzz_sample_no_server_error_and_nothing_is_nan(default_set):
    """A sample of the HTTP fuzz (``fuzz_payloads.py --web``): hostile bodies, nesting, sizes, encodings,
    content types and methods through the service's endpoints answer 2xx/3xx/4xx, never a 5xx."""
    r = _fuzz_payloads().run_web(3_000, seed=2, scorer=Scorer(default_set))
    assert r["requests"] == 3_000
    assert r["server_errors"] == 0, r["server_error_examples"]
    assert r["nan_in_normal_decisions"] == 0 and r["unreadable_200_bodies"] == 0
    status = r["status"]
    assert all(100 <= s < 500 for s in status), status
    # the sample reaches every answer: decisions, refused bodies, oversize, unknown fields, auth, routing
    assert status.get(200, 0) > 300 and r["decisions"] > 300
    for s in (400, 401, 404, 405, 413, 422):
        assert status.get(s, 0) > 0, (s, status)
