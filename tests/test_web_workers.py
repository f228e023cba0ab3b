"""Two `nextchannel serve` worker processes sharing Redis: one session spread over both, and a worker killed mid-session."""

from __future__ import annotations

import json
import math
import signal
import urllib.request

import pytest

from _web_support import free_port, redis_url, start_server, stop, wait_for_port  # noqa: F401 - fixture
from nextchannel import Scorer
from nextchannel.features import SessionState
from nextchannel.web.stores import RedisStore

CTX = {"chat": {"open": True, "wait_s": 30, "languages": ["en", "de"]}, "phone": {"open": False}}


def _post(base, body):
    req = urllib.request.Request(base + "/v1/events", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["decision"]


def _batches(sid, t0=1_767_261_600.0):
    pages = [("/", "home"), ("/p/1", "product"), ("/cart", "cart"), ("/checkout", "checkout"), ("/cart", "cart"),
             ("/checkout", "checkout")]
    out = [[{"ts": t0, "type": "session_start", "device": "desktop", "language": "de"}]]
    t = t0
    for k, (page, ptype) in enumerate(pages):
        t += 20
        b = [{"ts": t, "type": "page_view", "page": page, "page_type": ptype}]
        if ptype == "checkout":
            b += [{"ts": t + 5, "type": "form_error", "field": "zip"}, {"ts": t + 40, "type": "idle", "duration_s": 30.0}]
            t += 40
        out.append(b)
    return out


@pytest.fixture(scope="module")
def workers(redis_url, tmp_path_factory):
    d = tmp_path_factory.mktemp("workers")
    ctx = d / "context.json"
    ctx.write_text(json.dumps(CTX))
    ports = [free_port(), free_port()]
    procs = [start_server(p, ["--store", redis_url, "--context", str(ctx), "--log-dir", str(d / "logs")],
                          d / f"w{i}.out") for i, p in enumerate(ports)]
    try:
        for p, proc in zip(ports, procs):
            wait_for_port(p, proc, timeout_s=90)
        yield [f"http://127.0.0.1:{p}" for p in ports], procs, redis_url
    finally:
        for proc in procs:
            stop(proc)


def _same(a, b):
    return a.keys() == b.keys() and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a.values(), b.values()))


def test_concurrent_requests_of_one_session_on_both_workers_lose_no_event(workers):
    import threading

    (a, b), procs, url = workers
    sid, n = "hot-1", 25
    _post(a, {"session_id": sid, "events": [{"ts": 5.0, "type": "session_start", "device": "mobile"}]})

    def hammer(base):
        for _ in range(n):
            _post(base, {"session_id": sid, "events": [{"ts": 5.0, "type": "click"}, {"ts": 5.0, "type": "click"}]})

    threads = [threading.Thread(target=hammer, args=(t,)) for t in (a, b)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert RedisStore(url).get(sid).features_one()["clicks"] == 2 * 2 * n

def test_one_session_over_two_workers_equals_one_process_and_survives_a_killed_worker(workers):
    (a, b), procs, url = workers
    scorer = Scorer.load()
    store = RedisStore(url)
    sid = "spread-1"
    ref = SessionState(sid)
    batches = _batches(sid)
    for i, batch in enumerate(batches):
        got = _post([a, b][i % 2], {"session_id": sid, "events": batch})  # alternate workers
        ref.update_many([dict(e, session_id=sid) for e in batch])
        want = scorer.decide_one(ref, context=CTX)
        assert got["action"] == want.action, i
        assert _same(store.get(sid).features_one(), ref.features_one())
    assert want.action != "none"  # the session did reach an offer, decided alike
    # kill worker a (no clean shutdown) mid-session: the state lives in Redis, worker b carries on
    sid2 = "killed-1"
    ref2 = SessionState(sid2)
    batches2 = _batches(sid2)
    for batch in batches2[:3]:
        _post(a, {"session_id": sid2, "events": batch})
        ref2.update_many([dict(e, session_id=sid2) for e in batch])
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait(10)
    for batch in batches2[3:]:
        got = _post(b, {"session_id": sid2, "events": batch})
        ref2.update_many([dict(e, session_id=sid2) for e in batch])
    assert _same(store.get(sid2).features_one(), ref2.features_one())
    assert got["action"] == scorer.decide_one(ref2, context=CTX).action
    assert store.get(sid2).n_events == sum(len(x) for x in batches2)

