"""SessionState serialisation (pickle-free, versioned) and the session stores (memory, Redis)."""

from __future__ import annotations

import json
import math
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _web_support import redis_url  # noqa: F401 - fixture
from nextchannel.errors import ConfigError, ValidationError
from nextchannel.features import SessionState
from nextchannel.schema import EVENT_FIELDS, PAGE_TYPES
from nextchannel.web.stores import MemoryStore, RedisStore, store_from_url

_values = {
    "page": st.sampled_from(["/", "/p/1", "/cart", "NaN", "", None, 7]),
    "page_type": st.sampled_from(list(PAGE_TYPES) + [None, "nope"]),
    "depth": st.one_of(st.floats(0, 1), st.none()),
    "direction": st.sampled_from(["down", "up", None]),
    "duration_s": st.one_of(st.floats(0, 500), st.none(), st.just(math.inf)),
    "field": st.sampled_from(["zip", None]),
    "value": st.one_of(st.floats(0, 300), st.just(math.nan), st.none()),
    "n_results": st.one_of(st.integers(0, 3), st.none()),
    "channel": st.sampled_from(["chat", "phone"]),
    "device": st.sampled_from(["desktop", "mobile", None]),
    "language": st.sampled_from(["en", "sv", None]),
    "referrer": st.sampled_from(["direct", "nowhere", None]),
    "customer_id": st.sampled_from(["c1", None, ""]),
    "returning": st.sampled_from([True, None]),
    "utc_offset_s": st.sampled_from([0.0, 3600.0, None]),
}


@st.composite
def sessions(draw, max_events=30):
    ts = draw(st.sampled_from([0.0, 1_767_225_600.25]))
    out = []
    for _ in range(draw(st.integers(0, max_events))):
        ts += draw(st.sampled_from([0.0, 0.5, 3.0, 61.0, -5.0]))  # -5: a late event, skipped
        etype = draw(st.sampled_from(list(EVENT_FIELDS) + ["teleport"]))
        e = {"session_id": "s", "ts": ts, "type": etype}
        for f in EVENT_FIELDS.get(etype, ()):
            e[f] = draw(_values[f])
        out.append(e)
    return out


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(x == y or (x != x and y != y) for x, y in zip(a.values(), b.values()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions(), sessions(max_events=10), st.floats(-10, 4000))
def test_round_trip_gives_identical_features_and_evolution(first, more, later):
    s = SessionState("s").update_many(first)
    data = s.to_bytes()
    json.loads(data)  # strict JSON: no NaN/Infinity tokens
    r = SessionState.from_bytes(data)
    assert r.to_bytes() == data
    now = s._now(None) + later
    assert _same(r.features_one(), s.features_one())
    assert _same(r.features_one(now), s.features_one(now))
    for e in more:  # restored state evolves exactly like the original
        s.update(e)
        r.update(e)
    assert _same(r.features_one(), s.features_one()) and r.n_malformed == s.n_malformed
    assert r.to_dict() == s.to_dict()


def test_serialisation_covers_every_slot_generically():
    s = SessionState("s", strict=True).update_many([
        {"session_id": "s", "ts": 1.0, "type": "page_view", "page": "/a", "page_type": "cart"},
        {"session_id": "s", "ts": 2.0, "type": "page_view", "page": "/b", "page_type": "checkout"},
        {"session_id": "s", "ts": 3.0, "type": "scroll", "depth": 0.5, "direction": "up"}])
    d = s.to_dict()
    assert d["_pages"] == {"$set": ["/a", "/b"]} and d["strict"] is True and d["_pv1"] == "/b"
    r = SessionState.from_dict(d)
    for name in SessionState.__slots__:
        assert repr(getattr(r, name)) == repr(getattr(s, name)), name
    assert len(SessionState("s").to_bytes()) < 40


@pytest.mark.parametrize("data, match", [
    (b"not json", "must be JSON"),
    (b"[1, 2]", "must be a dict, got list"),
    (b'{"v": 2}', "format must be 1, got 2"),
    (b'{"v": 1, "n_teleports": 3}', r"unknown attributes \['n_teleports'\]"),
    (b'{"v": 1, "_pages": {"$bag": []}}', "attribute _pages holds an unknown tagged value"),
])
def test_bad_state_bytes_are_refused_precisely(data, match):
    with pytest.raises(ValidationError, match=match):
        SessionState.from_bytes(data)


def _click(sid, ts):
    return {"session_id": sid, "ts": ts, "type": "click"}


def test_memory_store_bounds_and_idle_expiry():
    t = [0.0]
    store = MemoryStore(max_sessions=3, idle_timeout_s=1800, clock=lambda: t[0])
    for sid in "abc":
        store.update(sid, lambda s, sid=sid: s.update(_click(sid, 1.0)))
    t[0] = 1799.0
    store.update("a", lambda s: s.update(_click("a", 2.0)))  # a renewed, b and c not
    t[0] = 1800.5
    assert store.get("b") is None and store.get("c") is None
    assert store.get("a").features_one()["clicks"] == 2.0
    for sid in "defg":
        store.update(sid, lambda s: None)
    assert len(store) == 3 and store.get("a") is None and store.stats()["evicted"] == 2.0
    assert store.stats()["expired"] == 2.0
    copy = store.get("g")
    copy.update(_click("g", 5.0))
    assert store.get("g").features_one()["clicks"] == 0.0  # get returns a copy
    with pytest.raises(ConfigError, match="max_sessions must be an integer >= 1, got 0"):
        MemoryStore(max_sessions=0)
    with pytest.raises(ConfigError, match="idle_timeout_s must be a number > 0"):
        MemoryStore(idle_timeout_s=-1)


def test_memory_store_is_atomic_under_threads():
    store = MemoryStore()
    n_threads, n = 8, 300

    def work(k):
        for i in range(n):
            store.update("s", lambda s: s.update(_click("s", float(i))))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    st_ = store.get("s")
    assert st_.features_one()["clicks"] + st_.n_malformed == n_threads * n


def test_redis_store_round_trip_ttl_and_concurrent_workers(redis_url):
    import redis

    store = RedisStore(redis_url, prefix="t1:", idle_timeout_s=60)
    events = [{"session_id": "r", "ts": 1.0, "type": "session_start", "device": "mobile", "language": "de"},
              {"session_id": "r", "ts": 2.0, "type": "page_view", "page": "/cart", "page_type": "cart"},
              {"session_id": "r", "ts": 9.0, "type": "form_error", "field": "zip"}]
    for e in events:
        store.update("r", lambda s, e=e: s.update(e))
    ref = SessionState("r").update_many(events)
    assert _same(store.get("r").features_one(20.0), ref.features_one(20.0))
    raw = redis.Redis.from_url(redis_url)
    assert 0 < raw.pttl("t1:r") <= 60_000
    assert raw.get("t1:r") == ref.to_bytes()
    # four "workers" (separate clients and connections) hammer one session at once: no event lost
    n_workers, n = 4, 100
    stores = [RedisStore(redis_url, prefix="t1:") for _ in range(n_workers)]

    def work(k):
        for i in range(n):
            stores[k].update("hot", lambda s: s.update(_click("hot", 1.0)))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_workers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert store.get("hot").features_one()["clicks"] == n_workers * n
    assert sum(s.stats()["conflicts"] for s in stores) > 0  # the transactions did collide and retry
    # a state written by an incompatible version starts afresh instead of failing the request
    raw.set("t1:old", b'{"v": 99}')
    assert store.update("old", lambda s: s.n_events) == 0.0 and store.stats()["unreadable"] == 1.0
    store.delete("r")
    assert store.get("r") is None


def test_redis_store_expires_by_ttl(redis_url):
    import time

    store = RedisStore(redis_url, prefix="t2:", idle_timeout_s=0.2)
    store.update("x", lambda s: s.update(_click("x", 1.0)))
    assert store.get("x") is not None
    time.sleep(0.4)
    assert store.get("x") is None


def test_store_from_url():
    assert isinstance(store_from_url("memory"), MemoryStore)
    assert isinstance(store_from_url("redis://127.0.0.1:1/0"), RedisStore)  # lazy: connects on first use
    with pytest.raises(ConfigError, match="store must be 'memory' or a redis://"):
        store_from_url("mongodb://x")


def test_logs_rotate_by_size_and_read_back_whole(tmp_path):
    from nextchannel.web.logs import DecisionLog, read_logs

    log = DecisionLog(tmp_path, key=b"k", max_bytes=2048)
    for i in range(60):
        log.decision({"decision_id": f"d{i:03d}", "session_id": f"s{i % 7}", "ts": float(i), "action": "none",
                      "propensity": 1.0, "customer_id": f"c{i % 3}"})
        log.events([{"session_id": f"s{i % 7}", "ts": float(i), "type": "click"}])
    log.close()
    files = sorted((tmp_path / "decisions").glob("*.jsonl"))
    assert len(files) >= 3 and all(f.stat().st_size < 2048 + 400 for f in files)
    frames = read_logs(tmp_path)
    assert list(frames.decisions["decision_id"]) == [f"d{i:03d}" for i in range(60)]
    assert len(frames.events) == 60 and frames.decisions["customer_id"].nunique() == 3
    # a second writer (another worker, or a restart) shares the pseudonym key created on disk
    a, b = DecisionLog(tmp_path / "x"), DecisionLog(tmp_path / "x")
    assert a.customer("c-1") == b.customer("c-1") != DecisionLog(tmp_path / "y").customer("c-1")
    assert (tmp_path / "x" / ".pseudonym-key").stat().st_mode & 0o077 == 0
