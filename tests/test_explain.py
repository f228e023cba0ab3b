"""Reasons: phrases and ranking; the vectorised ranking equals the per-row one."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel.explain import phrase, top_reasons, top_reasons_many, top_reasons_one
from nextchannel.features import feature_names


def test_phrases_read_naturally():
    f = {"idle_current_page_s": 45.0, "page_type": 5.0, "form_errors": 3.0, "prof_share_chat": 0.5}
    assert phrase("idle_current_page_s", f) == "idle 45 s on checkout"
    assert phrase("form_errors", f) == "3 form errors"
    assert phrase("prof_share_chat", f) == "50% of past contacts by chat"
    assert phrase("form_errors", {"form_errors": float("nan")}) == "form errors unknown"


def test_offer_names_drivers_for_and_none_names_drivers_against():
    names = ["form_errors", "help_views", "clicks"]
    vals = [3.0, 2.0, 1.0]
    contrib = [0.5, -0.4, 0.1]
    assert top_reasons(names, vals, contrib, offer=True, k=2) == ["3 form errors", "1 click"]
    assert top_reasons(names, vals, contrib, offer=False, k=2) == ["2 help/contact page views"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_top_reasons_many_equals_top_reasons_and_one(data):
    names = list(feature_names())
    n = data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 10_000)))
    values = rng.integers(-1, 5, size=(n, len(names))).astype(float)
    contrib = rng.normal(size=(n, len(names))) * (rng.random((n, len(names))) < data.draw(st.sampled_from([0.02, 0.3, 1.0])))
    offer = rng.random(n) < 0.5
    k = data.draw(st.integers(1, 5))
    many = top_reasons_many(names, values, contrib, offer, k=k)
    for r in range(n):
        assert many[r] == top_reasons(names, values[r].tolist(), contrib[r].tolist(), offer=bool(offer[r]), k=k)
        assert many[r] == top_reasons_one(names, values[r], contrib[r], offer=bool(offer[r]), k=k)
