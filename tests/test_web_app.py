"""The reference service in-process: decisions, bad payloads, outcomes, metrics, reload, CORS, logs → train."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from _web_support import write_service_logs
from starlette.testclient import TestClient

from nextchannel import ModelSet, Scorer, TrainConfig, train
from nextchannel.features import SessionState
from nextchannel.modelset import DEFAULT_BUNDLE
from nextchannel.web.app import create_app
from nextchannel.web.logs import DecisionLog, export_parquet, pseudonymise, read_logs
from nextchannel.web.stores import MemoryStore


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load()


def _hesitating(t0=1_767_225_600.0, lang="de"):
    return [
        {"ts": t0, "type": "session_start", "device": "desktop", "language": lang, "referrer": "search"},
        {"ts": t0 + 1, "type": "page_view", "page": "/cart", "page_type": "cart"},
        {"ts": t0 + 30, "type": "page_view", "page": "/checkout", "page_type": "checkout"},
        {"ts": t0 + 60, "type": "form_error", "field": "zip"},
        {"ts": t0 + 70, "type": "form_error", "field": "zip"},
        {"ts": t0 + 80, "type": "page_view", "page": "/cart", "page_type": "cart"},
        {"ts": t0 + 100, "type": "page_view", "page": "/checkout", "page_type": "checkout"},
        {"ts": t0 + 160, "type": "idle", "duration_s": 55.0},
        {"ts": t0 + 161, "type": "form_error", "field": "card"},
        {"ts": t0 + 230, "type": "idle", "duration_s": 60.0},
    ]


def test_events_decide_like_decide_one_and_render_in_the_visitors_language(scorer, tmp_path):
    log = DecisionLog(tmp_path, key=b"k")
    ctx = {"phone": {"open": False}, "chat": {"wait_s": 20.0, "languages": ["en", "de"]}}
    client = TestClient(create_app(scorer, log=log, context=ctx))
    events = _hesitating()
    dec = None
    for i in range(0, len(events), 3):  # several batches of one session
        r = client.post("/v1/events", json={"session_id": "hes-1", "events": events[i:i + 3], "customer_id": "c-77"})
        assert r.status_code == 200, r.text
        dec = r.json()["decision"]
    ref_events = [dict(e, session_id="hes-1") for e in events]
    ref_events[0]["customer_id"] = "c-77"
    ref = scorer.decide_one(SessionState("hes-1").update_many(ref_events), customer={"customer_id": "c-77"},
                            context=ctx)
    assert dec["action"] == ref.action and dec["model_version"] == scorer.model_version
    assert dec["action"] != "none" and dec["action"] != "phone"  # help offered, never on the closed channel
    assert dec["render"]["lang"] == "de" and dec["render"]["kind"] == dec["channel"]
    frames = read_logs(tmp_path)
    assert len(frames.decisions) == 4 and len(frames.events) == len(events)
    assert set(frames.decisions["customer_id"]) == {pseudonymise("c-77", b"k")}
    assert not frames.decisions["open_phone"].any() and (frames.decisions["wait_chat_s"] == 20.0).all()
    assert "c-77" not in "".join(p.read_text() for p in tmp_path.rglob("*.jsonl"))


BAD = [
    (b"{nope", 400, "body must be JSON"),
    (b"[]", 400, "body must be a JSON object, got list"),
    (json.dumps({"events": []}).encode(), 400, "session_id must be a string"),
    (json.dumps({"session_id": "a b", "events": []}).encode(), 400, "session_id must be a string"),
    (json.dumps({"session_id": "s", "events": {}}).encode(), 400, "events must be a list of events, got dict"),
    (json.dumps({"session_id": "s", "events": [1]}).encode(), 422, r"events\[0\] must be an object, got int"),
    (json.dumps({"session_id": "s", "events": [{"ts": 1, "type": "warp"}]}).encode(), 422,
     r"events\[0\]: type must be one of"),
    (json.dumps({"session_id": "s", "events": [{"ts": "x", "type": "click"}]}).encode(), 422,
     r"events\[0\]: ts of a click event must be a number"),
    (json.dumps({"session_id": "s", "events": [{"ts": 1, "type": "click"}, {"ts": 0, "type": "click"}]}).encode(),
     422, r"events\[1\]: ts of a click event must not go backwards"),
    (json.dumps({"session_id": "s", "events": [{"ts": 1, "type": "scroll", "depth": 3, "direction": "up"}]}).encode(),
     422, r"events\[0\]: depth of a scroll event must be in \[0, 1\], got 3"),
    (json.dumps({"session_id": "s", "events": [{"ts": 1, "type": "click", "session_id": "t"}]}).encode(), 422,
     r"events\[0\].session_id must be the body's session_id"),
    (json.dumps({"session_id": "s", "customer_id": 5, "events": []}).encode(), 400, "customer_id must be a string"),
    (json.dumps({"session_id": "s", "events": [{"ts": 1, "type": "click"}] * 11}).encode(), 413,
     "events must hold at most 10 events per request, got 11"),
    (b"x" * 5000, 413, "body must be at most 4096 bytes"),
]


@pytest.mark.parametrize("body, status, match", BAD)
def test_bad_payloads_get_a_4xx_naming_the_field(scorer, body, status, match):
    client = TestClient(create_app(scorer, max_events=10, max_body_bytes=4096))
    r = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    import re
    assert re.search(match, r.json()["error"]), r.json()["error"]
    assert client.get("/healthz").status_code == 200


def test_free_text_is_dropped_and_a_failing_provider_gives_a_safe_none(scorer, tmp_path):
    log = DecisionLog(tmp_path)
    def broken():
        raise RuntimeError("queue API down")
    client = TestClient(create_app(scorer, log=log, context=broken))
    r = client.post("/v1/events", json={"session_id": "s", "events": [
        {"ts": 1.0, "type": "form_error", "field": "email", "value_typed": "john@example.com"}]})
    assert r.status_code == 200 and r.json()["decision"]["action"] == "none"
    text = "".join(p.read_text() for p in tmp_path.rglob("*.jsonl"))
    assert "john@example.com" not in text and '"field":"email"' in text
    assert 'reason="context provider failed"' in client.get("/metrics").text


def test_outcomes_enter_the_state_and_the_log(scorer, tmp_path):
    store = MemoryStore()
    client = TestClient(create_app(scorer, store=store, log=DecisionLog(tmp_path)))
    client.post("/v1/events", json={"session_id": "o1", "events": [{"ts": 10.0, "type": "click"}]})
    did = json.loads((next((tmp_path / "decisions").glob("*.jsonl"))).read_text())["decision_id"]
    for outcome, ts in (("shown", 11.0), ("dismissed", 12.0)):
        r = client.post("/v1/outcome", json={"decision_id": did, "outcome": outcome, "session_id": "o1",
                                             "channel": "chat", "ts": ts})
        assert r.status_code == 200 and r.json()["state_updated"]
    f = store.get("o1").features_one()
    assert f["offers_shown"] == 1.0 and f["offers_dismissed"] == 1.0
    assert client.post("/v1/outcome", json={"decision_id": did, "outcome": "solved"}).status_code == 200
    for bad, match in (({"outcome": "solved"}, "decision_id must be"), ({"decision_id": did, "outcome": "won"},
                       "outcome must be one of"), ({"decision_id": did, "outcome": "shown", "channel": "fax"},
                       "channel must be one of"), ({"decision_id": did, "outcome": "shown", "ts": "now"},
                       "ts must be a finite number")):
        r = client.post("/v1/outcome", json=bad)
        assert r.status_code == 400 and match in r.json()["error"]
    frames = read_logs(tmp_path)
    row = frames.decisions.iloc[0]
    assert row["dismissed"] and row["success"] and not row["accepted"]
    assert list(frames.events["type"]) == ["click", "offer_shown", "offer_dismissed"]
    text = client.get("/metrics").text
    for line in ('nextchannel_outcomes_total{outcome="dismissed"} 1', "nextchannel_request_seconds_bucket",
                 'nextchannel_decisions_total{action="none"} 1', "nextchannel_model_info{version=",
                 'nextchannel_bad_requests_total{status="400"} 4'):
        assert line in text


def test_admin_reload_is_disabled_without_token_and_swaps_with_one(scorer, tmp_path):
    sc = Scorer.load()
    assert TestClient(create_app(sc)).post("/admin/reload").status_code == 404
    client = TestClient(create_app(sc, admin_token="s3cret", bundle_path=DEFAULT_BUNDLE))
    assert client.post("/admin/reload", headers={"authorization": "Bearer nope"}).status_code == 401
    r = client.post("/admin/reload", headers={"authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["model_version"] == sc.model_version
    r = client.post("/admin/reload", json={"path": str(tmp_path)}, headers={"authorization": "Bearer s3cret"})
    assert r.status_code == 400 and r.json()["error"].startswith("path: bundle could not be loaded")


def test_cors_only_for_configured_origins(scorer):
    closed = TestClient(create_app(scorer))
    pre = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    assert "access-control-allow-origin" not in closed.options("/v1/events", headers=pre).headers
    open_ = TestClient(create_app(scorer, cors_origins=["https://shop.example"]))
    ok = open_.options("/v1/events", headers={**pre, "origin": "https://shop.example"})
    assert ok.headers["access-control-allow-origin"] == "https://shop.example"
    bad = open_.options("/v1/events", headers=pre)
    assert bad.headers.get("access-control-allow-origin") != "https://evil.example"


def test_a_bundle_trains_from_the_logs_the_service_wrote(tmp_path):
    write_service_logs(tmp_path)
    frames = read_logs(tmp_path)
    assert len(frames.decisions) == 240 and frames.decisions["accepted"].any() and frames.decisions["success"].any()
    assert ((frames.decisions["propensity"] > 0) & (frames.decisions["propensity"] <= 1)).all()
    paths = export_parquet(tmp_path, tmp_path / "parquet")  # what a retraining job picks up
    dec, ev = pd.read_parquet(paths["decisions"]), pd.read_parquet(paths["events"])
    assert len(dec) == 240 and list(ev["type"]) == list(frames.events["type"])
    new = train(decisions=dec, events=ev,  # guard off: 240 rows cannot show personalisation pays
                config=TrainConfig(n_estimators=5, offer_n_estimators=5, value_n_estimators=5, n_jobs=1,
                                   min_child_samples=5, guard=False))
    assert new.meta["rows"] == 240 and new.meta["sessions"] == 60
    path = new.save(tmp_path / "bundle")
    assert Scorer.load(path).decide_one(SessionState("x")).action in new.actions


def test_serve_refuses_several_workers_without_a_shared_store(capsys):
    from nextchannel.cli import main

    assert main(["serve", "--workers", "2"]) == 2
    assert "--workers > 1 needs a shared session store" in capsys.readouterr().err


def test_readme_service_example_runs(tmp_path, monkeypatch):
    import re
    import shutil
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "create_app(" in b)
    shutil.copytree(DEFAULT_BUNDLE, tmp_path / "models" / "current")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADMIN_TOKEN", "t0ken")
    env: dict = {}
    exec(compile(code, "README.md", "exec"), env)
    app = env["app"]
    # (the example's Redis host does not exist here: only routes that do not touch the store are called)
    client = TestClient(app)
    assert client.get("/healthz").json()["status"] == "ok"
    r = client.post("/admin/reload", json={"path": "models/current"}, headers={"authorization": "Bearer t0ken"})
    assert r.status_code == 200 and r.json()["model_version"] == Scorer.load().model_version


_json = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats() | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                     max_leaves=12)
_event = st.fixed_dictionaries({"ts": st.one_of(st.floats(), st.integers(), st.text(max_size=3)),
                                "type": st.sampled_from(["click", "scroll", "page_view", "idle", "session_start",
                                                         "offer_shown", "warp"])},
                               optional={"depth": _json, "direction": _json, "page": _json, "page_type": _json,
                                         "duration_s": _json, "channel": _json, "device": _json, "language": _json,
                                         "decision_id": _json, "customer_id": _json})
_body = st.one_of(_json, st.fixed_dictionaries({"session_id": st.sampled_from(["s1", "", "a b", 3]),
                                                "events": st.one_of(st.lists(_event, max_size=5), _json)},
                                               optional={"customer_id": _json}))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=_body, outcome=_json)
def test_no_payload_gets_a_500(scorer, body, outcome):
    client = _FUZZ.setdefault("client", TestClient(create_app(scorer), raise_server_exceptions=False))
    r = client.post("/v1/events", content=json.dumps(body))
    assert r.status_code < 500 and ("decision" in r.json() or "error" in r.json())
    r = client.post("/v1/outcome", content=json.dumps(outcome))
    assert r.status_code < 500


_FUZZ: dict = {}


def test_tracker_is_served_minified_and_under_5_kb_gzipped(scorer):
    from nextchannel.web.tracker import tracker_sizes, tracker_source

    sizes = tracker_sizes()
    assert sizes["minified_gzip"] < 5 * 1024, sizes
    r = TestClient(create_app(scorer)).get("/nextchannel/tracker.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/javascript")
    assert r.text == tracker_source(True) and "/*" not in r.text and "nextchannel" in r.text


def test_every_worker_follows_a_publish_root(tmp_path):
    import time

    from nextchannel.bundle import publish

    root = tmp_path / "published"
    ms1 = ModelSet.load(DEFAULT_BUNDLE)
    publish(ms1, root)
    sc = Scorer.load(root)
    with TestClient(create_app(sc, bundle_path=root, watch_s=0.05)) as client:
        assert client.get("/healthz").json()["model_version"] == ms1.version
        ms2 = ModelSet(ms1.channel_model, ms1.value_model, ms1.offer_model, replace(ms1.policy, offer_margin=0.25),
                       ms1.profile_config, meta=ms1.meta)
        assert ms2.version != ms1.version
        publish(ms2, root)
        for _ in range(200):  # picked up by the watcher (bounded wait, not a timing assertion)
            if client.get("/healthz").json()["model_version"] == ms2.version:
                break
            time.sleep(0.05)
        assert client.get("/healthz").json()["model_version"] == ms2.version
        assert sc.model_set.policy.offer_margin == 0.25
