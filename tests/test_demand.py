"""Channel demand: unserved demand attributed to closed / queue / language with its value, what-ifs."""

import numpy as np
import pandas as pd
import pytest

from nextchannel.demand import channel_demand, default_what_ifs, service_clock, what_if
from nextchannel.errors import ValidationError
from nextchannel.policy import PolicyConfig
from nextchannel.schema import LANGUAGES

POLICY = PolicyConfig()


@pytest.fixture(scope="module")
def tiny_model():
    from nextchannel import TrainConfig, features_many, simulate
    from nextchannel.compat import training_module

    sim = simulate(1500, seed=4)
    ms = training_module().train(decisions=sim.decisions, events=sim.events, customers=sim.customers, contacts=sim.contacts,
               config=TrainConfig(n_estimators=20, offer_n_estimators=5, value_n_estimators=15),
               policy=PolicyConfig.from_sim(sim.config))
    X = features_many(sim.decisions[["session_id", "ts", "customer_id"]], events=sim.events, customers=sim.customers, contacts=sim.contacts, with_profile=True)
    return sim, ms, X
NAMES = POLICY.channels.names


class StubModelSet:
    """A value model we can compute by hand: chat is worth 2, email 0.5, the rest -1, none 0."""

    feature_names = ("language",)
    policy = POLICY

    def expected_values(self, X, C):
        ev = np.full((len(X), len(POLICY.actions)), -1.0)
        ev[:, 0] = 0.0
        ev[:, 1 + NAMES.index("chat")] = 2.0
        ev[:, 1 + NAMES.index("email")] = 0.5
        return ev


def _logs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    t0 = 1_767_571_200.0  # a Monday, 00:00 UTC
    ts = t0 + rng.uniform(0, 7 * 86400, n)
    hour, _ = service_clock(ts)
    d = pd.DataFrame({"session_id": [f"s{i}" for i in range(n)], "ts": ts, "action": "none"})
    for ch in NAMES:
        d[f"open_{ch}"] = 1.0
        d[f"wait_{ch}_s"] = 0.0
        d[f"lang_ok_{ch}"] = 1.0
    d["open_chat"] = ((hour >= 8) & (hour < 20)).astype(float)
    d["wait_chat_s"] = np.where(rng.random(n) < 0.2, 900.0, 30.0)   # over the 300 s limit
    lang = rng.integers(0, len(LANGUAGES), n)
    d["lang_ok_chat"] = (lang < 4).astype(float)
    X = pd.DataFrame({"language": lang.astype(float)})
    return d, X


def test_unserved_demand_is_attributed_in_order_and_valued():
    d, X = _logs()
    res = channel_demand(d, model_set=StubModelSet(), X=X)
    closed = d["open_chat"] == 0
    queue = ~closed & (d["wait_chat_s"] > 300)
    lang = ~closed & ~queue & (d["lang_ok_chat"] == 0)
    t = res.unserved.set_index("reason")
    assert set(res.unserved["channel"]) == {"chat"}
    for reason, mask in (("closed", closed), ("queue", queue), ("language", lang)):
        assert t.loc[reason, "decision_points"] == mask.sum()
        # the best available action is email (0.5) where chat (2.0) is not available
        assert t.loc[reason, "value_lost"] == pytest.approx(1.5 * mask.sum())
    assert res.value_lost_per_point == pytest.approx(1.5 * (closed | queue | lang).mean())
    # every point is offer-worthy; chat's open share per hour follows its hours
    assert res.by_hour["offer_worthy"].sum() == len(d)
    by_hour = res.by_hour.groupby(level="hour")["open_chat"].mean()
    assert by_hour.loc[8:19].eq(1).all() and by_hour.loc[[0, 7, 20, 23]].eq(0).all()  # its hours
    assert res.languages.loc["en", "served_chat"] == 1.0 and res.languages.loc["pl", "served_chat"] == 0.0


def test_what_if_opening_serving_and_shortening_queue_recover_exactly_the_lost_value():
    d, X = _logs()
    ms = StubModelSet()
    closed = d["open_chat"] == 0
    usable = (d["wait_chat_s"] <= 300) & (d["lang_ok_chat"] == 1)
    w = what_if(d, model_set=ms, X=X, channel="chat", open_hours=(0, 24))
    assert w["difference"] == pytest.approx(1.5 * (closed & usable).mean())
    assert w["offer_share_after"] - w["offer_share_before"] == pytest.approx((closed & usable).mean())
    # closing chat outside 10-12h on weekdays loses value
    w2 = what_if(d, model_set=ms, X=X, channel="chat", open_hours=(10, 12), open_weekdays=range(5))
    assert w2["difference"] < 0 and "open 10-12h on Mon,Tue,Wed,Thu,Fri" == w2["change"]
    w3 = what_if(d, model_set=ms, X=X, channel="chat", wait_factor=0.0)
    assert w3["difference"] == pytest.approx(1.5 * (~closed & (d["wait_chat_s"] > 300) & (d["lang_ok_chat"] == 1)).mean())
    w4 = what_if(d, model_set=ms, X=X, channel="chat", languages=LANGUAGES)
    assert w4["difference"] > 0
    table = default_what_ifs(d, model_set=ms, X=X)
    assert table["difference"].is_monotonic_decreasing and {"chat"} <= set(table["channel"])


def test_real_model_set_on_simulated_logs(tiny_model):
    sim, ms, X = tiny_model
    res = channel_demand(sim.decisions, model_set=ms, X=X, events=sim.events, utc_offset_s=sim.config.service_utc_offset_s, what_ifs=True)
    assert res.n == len(sim.decisions)
    assert set(res.unserved["reason"]) <= {"closed", "queue", "language"}
    assert (res.unserved["value_lost"] >= -1e-9).all()
    assert res.pages["contacts"].sum() == sim.events["type"].isin(["contact_started", "offer_accepted"]).sum()
    assert len(res.what_ifs) and res.to_dict()["n"] == res.n


@pytest.mark.parametrize("kwargs, match", [
    ({"channel": "fax", "open_hours": (0, 24)}, "channel must be one of"),
    ({"channel": "chat"}, "what_if needs a change"),
    ({"channel": "chat", "open_hours": (20, 8)}, r"open_hours must be \(start, end\)"),
    ({"channel": "chat", "open_weekdays": [7]}, "open_weekdays must be weekdays in 0..6"),
    ({"channel": "chat", "languages": ["klingon"]}, r"languages must be among .* got \['klingon'\]"),
    ({"channel": "chat", "wait_factor": -1}, "wait_factor must be a number >= 0, got -1"),
])
def test_what_if_bad_arguments(kwargs, match):
    d, X = _logs(50)
    with pytest.raises(ValidationError, match=match):
        what_if(d, model_set=StubModelSet(), X=X, **kwargs)


def test_bad_inputs():
    d, X = _logs(50)
    with pytest.raises(ValidationError, match="one row per decision"):
        channel_demand(d, model_set=StubModelSet(), X=X.iloc[:10])
    with pytest.raises(ValidationError, match=r"missing \['language'\]"):
        channel_demand(d, model_set=StubModelSet(), X=X.rename(columns={"language": "lang"}))
