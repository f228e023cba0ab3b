"""Dask executors: featurisation equal to pandas (same random logs as the parity property), training through
lightgbm.dask on a two-worker LocalCluster, ``retrain --dask-scheduler`` end to end; the scorer never imports Dask."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("dask.dataframe")   # an optional extra; the test extra installs it
pytest.importorskip("distributed")

import dask.dataframe as dd  # noqa: E402

from nextchannel import dask_backend  # noqa: E402
from nextchannel.features import features_many  # noqa: E402
from test_features import SESSIONS, _frame, event_logs  # noqa: E402  (the parity property's random logs)


@pytest.fixture(scope="module")
def cluster():
    # processes: lightgbm.dask runs one LightGBM network node per worker process
    c = dask_backend.client(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB")
    yield c
    dask_backend.close(c)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=event_logs(), data=st.data())
def test_dask_features_equal_pandas_on_the_parity_streams(cluster, rows, data):
    ts_pool = sorted({r["ts"] for r in rows}) or [0.0]
    at = pd.DataFrame([{"session_id": data.draw(st.sampled_from(SESSIONS + ["zz"])),
                        "ts": data.draw(st.sampled_from(ts_pool)) + data.draw(st.sampled_from([0.0, 0.1, 30.0, -1.0]))}
                       for _ in range(data.draw(st.integers(1, 8)))])
    events = _frame(rows)
    expected = features_many(at, events=events)
    got = dask_backend.features_many(at, events=events, client=cluster, npartitions=data.draw(st.integers(1, 4)))
    pd.testing.assert_frame_equal(got, expected)


def test_dask_dataframes_dispatch_with_profiles_and_presplit_partitions(cluster, tiny_sim):
    sim = tiny_sim
    at = sim.decisions[["session_id", "ts", "customer_id"]]
    expected = features_many(at, events=sim.events, customers=sim.customers, contacts=sim.contacts)
    ev = dd.from_pandas(sim.events, npartitions=3, sort=False)   # partitions split sessions: repartitioned
    with cluster.as_current():
        got = features_many(at, events=ev, customers=sim.customers, contacts=sim.contacts)
    pd.testing.assert_frame_equal(got, expected)
    # partitions that already hold whole sessions are used as they are
    sessions = pd.unique(sim.events["session_id"])
    parts = [sim.events[sim.events["session_id"].isin(sessions[i::2])] for i in range(2)]
    ev2 = dd.concat([dd.from_pandas(p, npartitions=1, sort=False) for p in parts])
    got2 = dask_backend.features_many(at, events=ev2, customers=sim.customers, contacts=sim.contacts, client=cluster, partitioned_by_session=True)
    pd.testing.assert_frame_equal(got2, expected)
    # ... and a claim that does not hold is refused, not answered twice
    from nextchannel.errors import ValidationError

    with pytest.raises(ValidationError, match="has events in more than one partition"):
        dask_backend.features_many(at, events=ev, client=cluster, partitioned_by_session=True)


@pytest.fixture(scope="module")
def tiny_sim():
    from nextchannel import simulate

    return simulate(600, seed=8)


def test_retrain_on_the_cluster_trains_through_lightgbm_dask_and_is_idempotent(cluster, tiny_sim, tmp_path):
    from nextchannel import ModelSet, PolicyConfig, Scorer, TrainConfig

    sim = tiny_sim
    cfg = TrainConfig(n_estimators=10, offer_n_estimators=5, value_n_estimators=8, guard=False)  # fewer fits
    policy = PolicyConfig.from_sim(sim.config)
    # the job end to end through the command, on the running cluster's scheduler; twice: idempotent
    d = tmp_path / "logs"
    d.mkdir()
    sim.decisions.to_parquet(d / "decisions.parquet")
    sim.events.to_parquet(d / "events.parquet")
    (d / "config.json").write_text(cfg.to_json())
    (d / "policy.json").write_text(policy.to_json())
    cmd = [sys.executable, "-m", "nextchannel.cli", "retrain", "-q", "--decisions", str(d / "decisions.parquet"),
           "--events", str(d / "events.parquet"), "--config", str(d / "config.json"), "--policy",
           str(d / "policy.json"), "--root", str(tmp_path / "models"), "--no-report",
           "--dask-scheduler", cluster.scheduler.address]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.strip(), first.stderr[-3000:]
    s1 = json.loads(first.stdout)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.stdout.strip(), second.stderr[-3000:]
    s2 = json.loads(second.stdout)
    assert (s1["status"], s2["status"], second.returncode) == ("published", "unchanged", 0)
    assert s2["version"] == s1["version"]
    # every booster of the published bundle was fitted by the two workers together (LightGBM records
    # its network in the model), and the bundle decides
    ms = ModelSet.load(tmp_path / "models")
    texts = [b.model_to_string() for b in ms.value_model.boosters_] + [ms.offer_model.booster_.model_to_string()]
    assert all("[num_machines: 2]" in t for t in texts)
    out = Scorer(ms).decide_many(sim.decisions.head(50), events=sim.events, customers=sim.customers, contacts=sim.contacts)
    assert set(out["action"]) <= set(policy.actions)


def test_the_scorer_never_imports_dask():
    code = ("import sys, nextchannel.scorer, nextchannel.features, nextchannel.jobs; "
            "print(any(m == 'dask' or m.startswith(('dask.', 'distributed')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_dask_points_give_a_dask_frame_computed_on_the_cluster(cluster, tiny_sim):
    sim = tiny_sim
    at = sim.decisions[["session_id", "ts"]]
    expected = features_many(at, events=sim.events, with_profile=False)
    sessions = pd.unique(sim.events["session_id"])
    halves = [sessions[i::2] for i in range(2)]
    ev = dd.concat([dd.from_pandas(sim.events[sim.events["session_id"].isin(h)], npartitions=1, sort=False)
                    for h in halves])
    at_dd = dd.from_pandas(at, npartitions=3, sort=False)
    for presplit in (True, False):
        got = dask_backend.features_many(at_dd, events=ev, client=cluster, with_profile=False,
                                         partitioned_by_session=presplit)
        assert dd.utils.is_dataframe_like(got._meta) and hasattr(got, "npartitions")   # still lazy
        pd.testing.assert_frame_equal(got.compute().sort_index(), expected.sort_index())
    # points written with their sessions' events (partition i with partition i): zipped, nothing shuffled
    at_co = dd.concat([dd.from_pandas(at[at["session_id"].isin(h)], npartitions=1, sort=False) for h in halves])
    got = dask_backend.features_many(at_co, events=ev, client=cluster, with_profile=False, copartitioned=True)
    pd.testing.assert_frame_equal(got.compute().sort_index(), expected.sort_index())


def test_retrain_with_dask_keeps_the_event_log_on_the_cluster(cluster, tiny_sim, tmp_path, monkeypatch):
    from nextchannel import PolicyConfig, TrainConfig, jobs

    sim = tiny_sim
    (tmp_path / "events").mkdir()
    sessions = pd.unique(sim.events["session_id"])
    for i in range(3):   # files that split no session here, but the job does not rely on that
        sim.events[sim.events["session_id"].isin(sessions[i::3])].to_parquet(tmp_path / "events" / f"p{i}.parquet")
    real_read = jobs.read_table

    def read_no_events(source, what="table"):
        assert what != "events", "the event log was read into the driver"
        return real_read(source, what)

    monkeypatch.setattr(jobs, "read_table", read_no_events)
    monkeypatch.setattr(dask_backend, "collect_events", lambda *a, **k: pytest.fail("events collected"))
    cfg = TrainConfig(n_estimators=8, offer_n_estimators=4, value_n_estimators=6, guard=False)
    kw = dict(decisions=sim.decisions, events=tmp_path / "events", customers=sim.customers, contacts=sim.contacts,
              root=tmp_path / "models", config=cfg, policy=PolicyConfig.from_sim(sim.config), report=False,
              dask=cluster)
    first = jobs.retrain(**kw)
    assert (first.status, first.window["train_rows"] + first.window["test_rows"]) == ("published", len(sim.decisions))
    assert jobs.retrain(**kw).status == "unchanged"   # the digest of the files, hashed on the workers
    # a bad row is named by its file, from the worker that read it
    bad = sim.events[sim.events["session_id"].isin(sessions[0::3])].copy()
    bad.loc[bad.index[4], "ts"] = float("nan")
    bad.to_parquet(tmp_path / "events" / "p0.parquet")
    from nextchannel.errors import ValidationError

    with pytest.raises(ValidationError, match=r"events\.ts must be a finite number.*p0\.parquet: row 5"):
        jobs.retrain(**{**kw, "root": tmp_path / "other"})


def test_copartitioned_needs_dask_points_with_the_events_partition_count(cluster, tiny_sim):
    sim = tiny_sim
    at = sim.decisions[["session_id", "ts"]]
    ev = dd.from_pandas(sim.events, npartitions=2, sort=False)
    from nextchannel.errors import ValidationError
    with pytest.raises(ValidationError, match="same number of partitions, got a pandas frame and 2"):
        dask_backend.features_many(at, events=ev, client=cluster, copartitioned=True)
    with pytest.raises(ValidationError, match="got 3 and 2"):
        dask_backend.features_many(dd.from_pandas(at, npartitions=3, sort=False), events=ev, client=cluster,
                                   copartitioned=True)


def test_parquet_read_as_dictionaries_gives_the_pandas_features_on_every_path(cluster, tiny_sim, tmp_path):
    """``read_parquet``: one partition per file, text columns as categoricals with each file's own
    categories; zipped with their points, joined to their partition or shuffled (categoricals
    turned back into plain columns first), the features are the pandas executor's on plain columns,
    and the log's digest is the digest of the plain log."""
    sim = tiny_sim
    sessions = pd.unique(sim.events["session_id"])
    for i in range(3):
        own = sim.events["session_id"].isin(sessions[i::3])
        sim.events[own].to_parquet(tmp_path / f"ev-{i}.parquet", index=False)
        sim.decisions.loc[sim.decisions["session_id"].isin(sessions[i::3]), ["session_id", "ts"]].to_parquet(
            tmp_path / f"at-{i}.parquet", index=False)
    ev = dask_backend.read_parquet([tmp_path / f"ev-{i}.parquet" for i in range(3)])
    at = dask_backend.read_parquet([tmp_path / f"at-{i}.parquet" for i in range(3)])
    assert ev.npartitions == 3 and isinstance(ev.partitions[1].compute()["type"].dtype, pd.CategoricalDtype)
    plain_ev = pd.concat([pd.read_parquet(tmp_path / f"ev-{i}.parquet") for i in range(3)], ignore_index=True)
    plain_at = pd.concat([pd.read_parquet(tmp_path / f"at-{i}.parquet") for i in range(3)], ignore_index=True)
    expected = features_many(plain_at, events=plain_ev)
    zipped = dask_backend.features_many(at, events=ev, client=cluster, copartitioned=True).compute()
    pd.testing.assert_frame_equal(zipped.reset_index(drop=True), expected)
    for kw in ({"partitioned_by_session": True}, {"npartitions": 2}):
        got = dask_backend.features_many(plain_at, events=ev, client=cluster, **kw)
        pd.testing.assert_frame_equal(got, expected)
    by_file = dd.concat([dd.from_pandas(pd.read_parquet(tmp_path / f"ev-{i}.parquet"), npartitions=1, sort=False)
                         for i in range(3)])
    assert dask_backend.digest(ev, client=cluster) == dask_backend.digest(by_file, client=cluster)
