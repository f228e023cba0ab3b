"""Policy: config round trip and validation, eligibility and why-not, exploration probabilities."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextchannel.errors import ConfigError
from nextchannel.policy import (
    Decision,
    PolicyConfig,
    choose,
    eligibility,
    eligibility_many,
    expected_values,
    greedy_many,
)
from nextchannel.schema import DEVICES, LANGUAGES

K = 6


def _elig(cfg, **kw):
    base = dict(device="desktop", language="en", offers_shown=0, time_since_dismiss_s=math.nan, contacts_started=0,
                open_=[True] * K, wait_s=[0.0] * K, lang_ok=[True] * K, opted_out=[False] * K)
    base.update(kw)
    return eligibility(cfg, **base)


def test_why_not_texts():
    cfg = PolicyConfig(unsuitable_devices={"phone": ["tablet"]})
    ok, why = _elig(cfg, device="tablet", open_=[True, True, False, True, True, True],
                    wait_s=[1800.0, 0, 0, 0, 0, 0], lang_ok=[True, False, True, True, True, True],
                    opted_out=[False, False, False, True, False, False])
    assert why == ["chat: wait 1,800 s over the 300 s limit", "callback: language 'en' not served",
                   "phone: closed", "email: customer opted out"]
    assert ok == [True, False, False, False, False, True, True]
    ok, why = _elig(cfg, device="tablet")
    assert why == ["phone: not offered on tablet"]


@pytest.mark.parametrize("kw,text", [
    (dict(contacts_started=1), "all: a contact has already started in this session"),
    (dict(offers_shown=2), "all: 2 offers already shown (max 2 per session)"),
    (dict(time_since_dismiss_s=20.0), "all: cooldown after a dismissal 20 s ago"),
])
def test_contact_rules_block_every_offer(kw, text):
    ok, why = _elig(PolicyConfig(), **kw)
    assert ok == [True] + [False] * K and why == [text]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_eligibility_many_equals_eligibility(data):
    cfg = PolicyConfig(unsuitable_devices={"phone": ["desktop"], "callback": ["tablet"]}, max_offers_per_session=2)
    n = 5
    dev = np.array(data.draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n)))
    lang = np.array(data.draw(st.lists(st.integers(-1, len(LANGUAGES) - 1), min_size=n, max_size=n)))
    shown = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=float)
    since = np.array(data.draw(st.lists(st.sampled_from([math.nan, 5.0, 119.9, 120.0, 500.0]), min_size=n, max_size=n)))
    contacts = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=float)
    bools = st.lists(st.lists(st.booleans(), min_size=K, max_size=K), min_size=n, max_size=n)
    open_, lang_ok, opt = (np.array(data.draw(bools)) for _ in range(3))
    wait = np.array(data.draw(st.lists(st.lists(st.sampled_from([0.0, 299.0, 300.0, 301.0, 2000.0]), min_size=K,
                                                 max_size=K), min_size=n, max_size=n)))
    many = eligibility_many(cfg, device=dev, language=lang, offers_shown=shown, time_since_dismiss_s=since,
                            contacts_started=contacts, open_=open_, wait_s=wait, lang_ok=lang_ok, opted_out=opt)
    for i in range(n):
        one, _ = eligibility(cfg, device=DEVICES[dev[i]] if dev[i] >= 0 else None,
                             language=LANGUAGES[lang[i]] if lang[i] >= 0 else None, offers_shown=shown[i],
                             time_since_dismiss_s=since[i], contacts_started=contacts[i], open_=open_[i],
                             wait_s=wait[i], lang_ok=lang_ok[i], opted_out=opt[i])
        assert many[i].tolist() == one


def test_greedy_respects_margin_and_eligibility():
    cfg = PolicyConfig(offer_margin=0.5)
    ev = np.array([0.0, 0.4, 2.0, 0.6, -1, -1, -1])
    elig = np.array([True, True, False, True, True, True, True])
    a, p, probs = choose(cfg, ev, elig, u=0.3)
    assert (a, p) == (3, 1.0)                         # phone: best eligible, beats none by 0.6 > 0.5
    assert greedy_many(cfg, ev[None], elig[None]).tolist() == [3]
    assert greedy_many(cfg, ev[None], elig[None], margin=0.7).tolist() == [0]


def _tied_values(data, n: int = 8) -> tuple[PolicyConfig, np.ndarray, np.ndarray]:
    """A policy of 4 channels, and EVs and eligibility of n decisions on few levels (ties common; none eligible)."""
    cfg = PolicyConfig(channels=["a", "b", "c", "d"], offer_margin=data.draw(st.sampled_from([0.0, 0.5, 1.0])))
    ev = np.array(data.draw(st.lists(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5]), min_size=5, max_size=5),
                                     min_size=n, max_size=n)))
    elig = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=n, max_size=n)))
    elig[:, 0] = True
    return cfg, ev, elig


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_runner_up_one_equals_runner_up_many_ties_included(data):
    """The action a decision is explained against: the per-request executor (lazy reasons) equals the
    vectorised one (decide_many's reasons), on few levels so that ties are common."""
    from nextchannel.policy import runner_up_many, runner_up_one

    cfg, ev, elig = _tied_values(data)
    n = len(ev)
    chosen = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    many = runner_up_many(cfg, ev, elig, chosen)
    for i in range(n):
        assert runner_up_one(cfg.offer_margin, ev[i].tolist(), elig[i].tolist(), int(chosen[i])) == many[i], i


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=7, max_size=7), st.lists(st.booleans(), min_size=6, max_size=6),
       st.sampled_from(["none", "epsilon", "softmax", "softmax_floor"]), st.floats(0, 0.999))
def test_choose_probabilities_are_exact(ev, elig, exploration, u):
    floor = 0.05 if exploration == "softmax_floor" else 0.0
    cfg = PolicyConfig(exploration=exploration.removesuffix("_floor"), epsilon=0.2, temperature=0.7,
                       explore_floor=floor)
    eligible = np.array([True] + elig)
    a, p, probs = choose(cfg, np.array(ev), eligible, u)
    assert abs(probs.sum() - 1) < 1e-12 and (probs[~eligible] == 0).all()
    assert eligible[a] and p == probs[a] > 0
    # the empirical frequency of each action over a grid of u equals its probability
    grid = (np.arange(4000) + 0.5) / 4000
    freq = np.bincount([choose(cfg, np.array(ev), eligible, x)[0] for x in grid], minlength=7) / 4000
    assert np.abs(freq - probs).max() <= 1 / 4000 + 1e-9


def test_expected_values_formula():
    cfg = PolicyConfig(value_success=10, channel_cost={"chat": 2.0}, annoyance=1.0, leave_cost=4.0)
    k = len(cfg.actions)
    pa, ps, pl = np.zeros(k), np.full(k, 0.5), np.full(k, 0.25)
    pa[1] = 0.4
    ev = expected_values(cfg, pa, ps, pl)
    assert ev[0] == pytest.approx(10 * 0.5 - 4 * 0.25)
    assert ev[1] == pytest.approx(10 * 0.5 - 2 * 0.4 - 1 * 0.6 - 4 * 0.25)


@pytest.mark.parametrize("kw,match", [
    (dict(value_success=-1), "value_success must be a finite number >= 0, got -1"),
    (dict(channel_cost={"pigeon": 1.0}), "channel_cost keys must be channels of"),
    (dict(wait_limit_s={"chat": float("nan")}), r"wait_limit_s\['chat'\] must be a finite number"),
    (dict(unsuitable_devices={"phone": ["fridge"]}), r"unsuitable_devices\['phone'\] must be a list of devices"),
    (dict(exploration="greedy"), "exploration must be one of"),
    (dict(epsilon=1.5), r"epsilon must be a number in \[0, 1\], got 1.5"),
    (dict(max_offers_per_session=-1), "max_offers_per_session must be an integer >= 0"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(explore_floor=1.0), r"explore_floor must be a number in \[0, 1\), got 1.0"),
    (dict(explore_floor=-0.1), r"explore_floor must be a number in \[0, 1\), got -0.1"),
])
def test_bad_config(kw, match):
    with pytest.raises(ConfigError, match=match):
        PolicyConfig(**kw)


def test_json_round_trip_and_unknown_keys():
    cfg = PolicyConfig(offer_margin=0.3, unsuitable_devices={"phone": ["desktop"]}, exploration="softmax")
    assert PolicyConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="unknown keys"):
        PolicyConfig.from_dict({"value": 1})


def test_decision_to_dict_is_json_ready():
    import json

    d = Decision(action="chat", offer=True, channel="chat", ev={"none": 0.1, "chat": float("nan")}, offer_score=0.3,
                 propensity=0.95, model_version="m-1", reasons=("idle 45 s on checkout",), why_not=("phone: closed",))
    rec = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert rec["ev"]["chat"] is None and rec["reasons"] == ["idle 45 s on checkout"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_vectorised_why_not_texts_equal_eligibility(data):
    import pandas as pd

    from nextchannel.scorer import _dev_name, _lang_name

    cfg = PolicyConfig(unsuitable_devices={"phone": ["desktop"]}, max_offers_per_session=2)
    names = cfg.channels.names
    n = 6
    draw = lambda s: data.draw(st.lists(s, min_size=n, max_size=n))  # noqa: E731
    X = pd.DataFrame({
        "device": draw(st.integers(-1, 2)), "language": draw(st.integers(-1, len(LANGUAGES) - 1)),
        "offers_shown": draw(st.integers(0, 3)), "contacts_started": draw(st.integers(0, 1)),
        "time_since_dismiss_s": draw(st.sampled_from([math.nan, 20.0, 500.0])),
        **{f"prof_optout_{c}": draw(st.sampled_from([0.0, 1.0])) for c in names},
    }).astype(float)
    C = pd.DataFrame({**{f"open_{c}": draw(st.sampled_from([0.0, 1.0])) for c in names},
                      **{f"wait_{c}_s": draw(st.sampled_from([0.0, 250.0, 2000.0])) for c in names},
                      **{f"lang_ok_{c}": draw(st.sampled_from([0.0, 1.0])) for c in names}})
    from nextchannel.policy import EligibilityRules, eligibility_frame

    elig, got = EligibilityRules(cfg).frame(X, C)
    assert np.array_equal(elig, eligibility_frame(cfg, X, C))
    for i in range(n):
        r, c = X.iloc[i], C.iloc[i]
        _, why = eligibility(cfg, device=_dev_name(r["device"]), language=_lang_name(r["language"]),
                             offers_shown=r["offers_shown"], time_since_dismiss_s=r["time_since_dismiss_s"],
                             contacts_started=r["contacts_started"], open_=[c[f"open_{x}"] > 0 for x in names],
                             wait_s=[c[f"wait_{x}_s"] for x in names], lang_ok=[c[f"lang_ok_{x}"] > 0 for x in names],
                             opted_out=[r[f"prof_optout_{x}"] >= 1 for x in names])
        assert got[i] == " | ".join(why)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_greedy_one_equals_greedy_many_ties_included(data):
    """The greedy choice: one rule, a per-request and a vectorised executor (and choose() without
    exploration), equal on values drawn from a few levels, so that ties are common."""
    from nextchannel.policy import greedy_one

    cfg, ev, elig = _tied_values(data)
    n = len(ev)
    fixed = data.draw(st.sampled_from([None, 2]))
    many = greedy_many(cfg, ev, elig, fixed=fixed)
    for i in range(n):
        assert greedy_one(cfg.offer_margin, ev[i].tolist(), elig[i].tolist(), fixed) == many[i], i
        assert choose(cfg, ev[i], elig[i], 0.5, fixed)[0] == many[i], i


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_choose_equals_choose_many_row_by_row(data):
    """Exploration: choose() (per request) = choose_many() (batch), action, propensity and probabilities."""
    from nextchannel.policy import choose_many

    kind = data.draw(st.sampled_from(["epsilon", "softmax"]))
    cfg = PolicyConfig(channels=["a", "b", "c"], exploration=kind, epsilon=0.3, temperature=0.7,
                       explore_floor=data.draw(st.sampled_from([0.0, 0.02])))
    n = 10
    ev = np.array(data.draw(st.lists(st.lists(st.floats(-3, 3), min_size=4, max_size=4), min_size=n, max_size=n)))
    elig = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=n, max_size=n)))
    elig[:, 0] = True
    u = np.array(data.draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=n, max_size=n)))
    fixed = data.draw(st.sampled_from([None, 1]))
    idx, prop, probs = choose_many(cfg, ev, elig, u, fixed)
    for i in range(n):
        a, p, pr = choose(cfg, ev[i], elig[i], float(u[i]), fixed)
        assert (a, p) == (idx[i], prop[i]) and np.array_equal(pr, probs[i]) and elig[i, a], i


def test_softmax_floor_keeps_every_eligible_action_explored():
    """A clearly worse action gets ~0 under plain softmax; the floor keeps floor / n_eligible for it."""
    from nextchannel.policy import choose_many

    ev = np.array([[0.0, -8.0, 0.4, -3.0], [0.0, 1.0, -9.0, 0.2]])
    elig = np.array([[True, True, True, False], [True, True, True, True]])
    u = np.array([0.3, 0.7])
    plain = PolicyConfig(channels=["a", "b", "c"], exploration="softmax", temperature=0.1, offer_margin=0.25)
    floored = dataclasses.replace(plain, explore_floor=0.06)
    p0 = choose_many(plain, ev, elig, u)[2]
    p1 = choose_many(floored, ev, elig, u)[2]
    assert p0[0, 1] < 1e-30 and p0[1, 2] < 1e-30
    assert np.all(p1[elig] >= 0.06 / elig.sum(axis=1, keepdims=True).repeat(4, axis=1)[elig] - 1e-15)
    assert (p1[~elig] == 0).all() and np.allclose(p1.sum(axis=1), 1)
    assert np.allclose(p1, 0.94 * p0 + np.where(elig, 0.06 / elig.sum(axis=1, keepdims=True), 0))
    # JSON: written only when set, so bundles written before the field existed read and write as before
    assert "explore_floor" not in plain.to_dict() and PolicyConfig.from_json(floored.to_json()) == floored


# ---------------------------------------------------------------------------------------------
# The user's own channels
# ---------------------------------------------------------------------------------------------
def test_own_channel_names_get_defaults():
    from nextchannel.schema import Channel

    cfg = PolicyConfig(channels=["Spring E-Mail", "WhatsApp", "chat"], channel_cost={"WhatsApp": 0.4})
    assert cfg.actions == ("none", "Spring E-Mail", "WhatsApp", "chat")
    assert cfg.cost_vector().tolist() == [0.0, 0.0, 0.4, 0.0]     # a given dict: only what is set
    assert dict(cfg.wait_limit_s) == {"chat": 300.0}               # library defaults for known names only
    assert PolicyConfig(channels=["chat", "Fax"]).channel_cost == {"chat": 3.0}
    assert not cfg.channels["WhatsApp"].live and cfg.channels["WhatsApp"].human
    assert PolicyConfig.from_json(cfg.to_json()) == cfg
    assert Channel("Hotline", live=True).live


@pytest.mark.parametrize("kw, match", [
    (dict(channels=["a|b"]), r"channel name must be non-empty text .* got 'a\|b'"),
    (dict(channels=[" chat"]), r"channel name must be .* surrounding spaces, got ' chat'"),
    (dict(channels=["none"]), r"channel name 'none' is reserved"),
    (dict(channels=["x", "x"]), r"channel names must be unique, got duplicates \['x'\]"),
    (dict(channels=[]), r"channel catalogue must hold at least one channel"),
    (dict(channels="WhatsApp"), r"channels must be a ChannelCatalogue or a list of channel names, got str"),
    (dict(channels=["WhatsApp"], channel_cost={"chat": 1.0}),
     r"channel_cost keys must be channels of \['WhatsApp'\], got 'chat'"),
    (dict(channels=["WhatsApp"], wait_limit_s={"WhatsApp": -1}), r"wait_limit_s\['WhatsApp'\] must be a finite number >= 0, got -1"),
], ids=["pipe", "spaces", "none", "duplicate", "empty", "string", "cost-of-unknown", "negative-limit"])
def test_bad_own_channels(kw, match):
    with pytest.raises(ConfigError, match=match):
        PolicyConfig(**kw)


@settings(max_examples=60, deadline=None)
@given(ev=st.lists(st.floats(-5, 5), min_size=4, max_size=4), elig=st.lists(st.booleans(), min_size=3, max_size=3),
       fixed=st.integers(0, 3), u=st.floats(0, 0.999), exploration=st.sampled_from(["none", "epsilon", "softmax"]))
def test_fixed_action_choice_equals_vectorised(ev, elig, fixed, u, exploration):
    """The guard's constant action: choose() and greedy_many() agree; it is taken where eligible."""
    cfg = PolicyConfig(channels=["a", "b", "c"], exploration=exploration, epsilon=0.2)
    ok = np.array([True, *elig])
    a, p, probs = choose(cfg, np.array(ev), ok, u, fixed=fixed)
    greedy = greedy_many(cfg, np.array([ev]), ok[None, :], fixed=fixed)[0]
    assert greedy == (fixed if ok[fixed] else 0)
    assert probs[~ok].sum() == 0 and abs(probs.sum() - 1) < 1e-12 and p == probs[a]
    if exploration == "none":
        assert a == greedy and p == 1.0
    else:
        assert probs[greedy] == probs.max()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_compiled_rules_equal_the_vectorised_executor_for_any_config(data):
    """The per-request executor is the rule table compiled into source: on random configs (rules on and
    off, device rules, wait limits) and inputs with NaN and boundary values it gives the mask and the
    texts of the vectorised executor."""
    from nextchannel.policy import EligibilityRules

    names = PolicyConfig().channels.names
    cfg = PolicyConfig(
        no_offer_after_contact=data.draw(st.booleans()), max_offers_per_session=data.draw(st.integers(0, 3)),
        cooldown_after_dismiss_s=data.draw(st.sampled_from([0.0, 120.0])),
        wait_limit_s=data.draw(st.dictionaries(st.sampled_from(names), st.sampled_from([0.0, 60.0, 300.0]))),
        unsuitable_devices=data.draw(st.dictionaries(st.sampled_from(names),
                                                     st.lists(st.sampled_from(DEVICES), max_size=2))))
    rules = EligibilityRules(cfg)
    num = st.sampled_from([math.nan, -1.0, 0.0, 1.0, 2.0, 60.0, 120.0, 300.0])
    chans = lambda s: data.draw(st.lists(s, min_size=K, max_size=K))  # noqa: E731
    kw = dict(device=data.draw(st.sampled_from([math.nan, -1.0, 0.0, 1.0, 2.0])),
              language=data.draw(st.sampled_from([math.nan, -1.0, 0.0, 1.0])),
              offers_shown=data.draw(num), time_since_dismiss_s=data.draw(num), contacts_started=data.draw(num),
              open_=chans(num), wait_s=chans(num), lang_ok=chans(num), opted_out=chans(num))
    ok, why = rules.one(**kw)
    mask, texts = rules.many(**{k: np.array([v], dtype=float) for k, v in kw.items()})   # one row
    assert ok == mask[0].tolist()
    assert " | ".join(why) == texts[0]


def test_fast_decision_equals_the_dataclass():
    from nextchannel.policy import _new_decision

    fields = dict(action="chat", offer=True, channel="chat", ev={"none": 0.1, "chat": 0.4}, offer_score=0.3,
                  propensity=0.95, model_version="m-1", reasons=("idle 45 s on checkout",), why_not=("phone: closed",))
    d = Decision(**fields)
    fast = _new_decision(**fields)
    assert fast == d and fast.__dict__ == d.__dict__ and fast.to_dict() == d.to_dict()
    lazy = _new_decision(**{**fields, "reasons": lambda: ["computed"]})
    assert lazy.reasons == ("computed",) and lazy.fallback is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.action = "none"
