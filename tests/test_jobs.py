"""The retraining job: exit codes, idempotence, CSV = Parquet, bad inputs named, a worsened week keeps the champion."""

import dataclasses
import json
import os
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

from nextchannel import simulate, PolicyConfig, SimConfig, TrainConfig  # noqa: I001 (simulate first: see compat)
from nextchannel.cli import main
from nextchannel.jobs import EXIT_CODES, read_table, retrain

SIM = dataclasses.replace(SimConfig(), n_days=14)
# guard=False: on logs this small the guard often falls back to a constant action for both models,
# which would leave nothing to compare (the guard has its own tests).
TRAIN = TrainConfig(n_estimators=25, offer_n_estimators=5, value_n_estimators=15, guard=False)
DAY = 86400.0


@pytest.fixture(scope="module")
def world():
    sim = simulate(5000, seed=21, config=SIM)
    # the truth is not in a real log
    decisions = sim.decisions.drop(columns=[c for c in sim.decisions.columns
                                            if c.startswith("ev_") or c in ("needs_help", "problem", "reward")])
    return sim, decisions


@pytest.fixture(scope="module")
def files(world, tmp_path_factory):
    """The same logs as CSV files and as folders of Parquet chunks; policy and config as JSON."""
    sim, decisions = world
    d = tmp_path_factory.mktemp("logs")
    decisions.to_csv(d / "decisions.csv", index=False)
    sim.events.to_csv(d / "events.csv", index=False)
    for name, frame in (("decisions", decisions), ("events", sim.events)):
        (d / name).mkdir()
        half = len(frame) // 2
        frame.iloc[:half].to_parquet(d / name / "part-0.parquet")
        frame.iloc[half:].to_parquet(d / name / "part-1.parquet")
    (d / "policy.json").write_text(PolicyConfig.from_sim(SIM).to_json())
    (d / "config.json").write_text(TRAIN.to_json())
    return d


def _run(capsys, *args):
    code = main(["retrain", "-q", *map(str, args)])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out   # exactly one line on stdout: the JSON summary
    return code, json.loads(out[0])


def _bundle_bytes(root: pathlib.Path) -> dict[str, bytes]:
    target = root / os.readlink(root / "current")
    return {p.name: p.read_bytes() for p in sorted(target.iterdir())}


def test_cli_publishes_then_is_idempotent_and_parquet_gives_the_same_bundle(files, tmp_path, capsys):
    root = tmp_path / "models"
    common = ["--policy", files / "policy.json", "--config", files / "config.json", "--root", root, "--window-days", 7]
    code, s = _run(capsys, "--decisions", files / "decisions.csv", "--events", files / "events.csv", *common,
                   "--report", tmp_path / "report")
    assert code == 0 and s["status"] == "published" and s["champion"] is None
    assert s["version"] == os.readlink(root / "current") == s["challenger"]
    assert s["window"]["train_rows"] > s["window"]["test_rows"] > 0 and s["window"]["split"] < s["window"]["until"]
    first = _bundle_bytes(root)
    report = tmp_path / "report"
    assert {"index.html", "run.md", "run.json", "drift_features.csv", "demand_by_hour.png", "unserved.png",
            "demand_what_ifs.csv"} <= {p.name for p in report.iterdir()}
    assert "## Drift" in (report / "run.md").read_text() and "## Channel demand" in (report / "run.md").read_text()

    # same inputs again: no second publish, same bytes
    code, s2 = _run(capsys, "--decisions", files / "decisions.csv", "--events", files / "events.csv", *common,
                    "--no-report")
    assert code == 0 and s2["status"] == "unchanged" and s2["version"] == s["version"]
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == sorted(["current", s["version"]])
    assert _bundle_bytes(root) == first

    # the same logs as folders of Parquet chunks: the same model, hence still unchanged
    code, s3 = _run(capsys, "--decisions", files / "decisions", "--events", files / "events", *common, "--no-report")
    assert (code, s3["status"], s3["model_version"]) == (0, "unchanged", s["model_version"])


def test_worsened_week_keeps_the_champion_and_a_clean_one_is_published(world, tmp_path):
    sim, decisions = world
    root = tmp_path / "models"
    policy = PolicyConfig.from_sim(SIM)
    t0 = SIM.epoch_start_s
    week1 = decisions["ts"] < t0 + 7 * DAY
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        champ = retrain(decisions=decisions[week1], events=sim.events, root=root, policy=policy, config=TRAIN,
                        report=False)
        assert champ.status == "published"
        # The second week's logs are broken on purpose: "solved" flipped for every accepted offer of its
        # first half (the part the challenger trains on); the held-out second half is intact.
        bad = decisions[~week1].copy()
        train_part = (bad["ts"] < t0 + 10.5 * DAY) & bad["accepted"].astype(bool)
        bad.loc[train_part, "success"] = ~bad.loc[train_part, "success"].astype(bool)
        kept = retrain(decisions=bad, events=sim.events, root=root, policy=policy, config=TRAIN,
                       until=t0 + 14 * DAY, test_days=3.5, report=False)
    assert kept.status == "champion_kept" and kept.exit_code == EXIT_CODES["champion_kept"] == 3
    assert kept.comparison["verdict"] == "worse" and kept.comparison["difference"] < 0
    assert kept.version == champ.version == os.readlink(root / "current")
    assert kept.challenger_version is None


def test_require_better_keeps_an_indistinguishable_challenger(world, tmp_path):
    sim, decisions = world
    root = tmp_path / "models"
    policy = PolicyConfig.from_sim(SIM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = retrain(decisions=decisions, events=sim.events, root=root, policy=policy, config=TRAIN,
                        window_days=4, report=False)
        other = dataclasses.replace(TRAIN, random_state=1)
        res = retrain(decisions=decisions, events=sim.events, root=root, policy=policy, config=other,
                      window_days=4, require="better", min_effect=0.5, report=False)
    assert first.status == "published"
    assert res.comparison["verdict"] == "not distinguishable" and res.status == "champion_kept"
    # non-inferior puts the burden of proof on the challenger: a lower bound below -margin keeps the champion
    low = res.comparison["low"]
    assert low < 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strict = retrain(decisions=decisions, events=sim.events, root=root, policy=policy, config=other,
                         window_days=4, require="non-inferior", margin=-low / 2, report=False)
        loose = retrain(decisions=decisions, events=sim.events, root=root, policy=policy, config=other,
                        window_days=4, require="non-inferior", margin=-low * 2, report=False)
    assert strict.comparison["low"] == pytest.approx(low) and strict.status == "champion_kept"
    assert loose.status == "published" and "non-inferior (margin" in loose.reason


def _mutate(files, tmp_path, fn, name="decisions.csv"):
    d = pd.read_csv(files / name)
    d = fn(d)
    path = tmp_path / name
    d.to_csv(path, index=False)
    return path


BAD = [
    (lambda d: d.drop(columns="propensity"), r"decisions \(decisions.csv\) must have columns .* missing \['propensity'\]"),
    (lambda d: d.assign(propensity=d["propensity"].where(d.index != 3, 1.7)),
     r"decisions.propensity must be a number in \[0, 1\].*1 row\(s\): decisions.csv row 4 \(1.7\)"),
    (lambda d: d.assign(action=d["action"].where(~d.index.isin([5, 9]), "fax")),
     r"decisions.action must be one of .*2 row\(s\): decisions.csv row 6 \('fax'\), decisions.csv row 10"),
    (lambda d: d.assign(ts=d["ts"].astype(object).where(d.index != 0, "yesterday")),
     r"decisions.ts must be a finite number.*decisions.csv row 1 \('yesterday'\)"),
    (lambda d: d.assign(accepted=d["accepted"].astype(object).where(d.index != 2, "maybe")),
     r"decisions.accepted must be true/false .*decisions.csv row 3 \('maybe'\)"),
]


@pytest.mark.parametrize("mutate, match", BAD)
def test_bad_decisions_are_named_with_file_column_and_rows(files, tmp_path, capsys, mutate, match):
    path = _mutate(files, tmp_path, mutate)
    code = main(["retrain", "-q", "--decisions", str(path), "--events", str(files / "events.csv"),
                 "--root", str(tmp_path / "m")])
    captured = capsys.readouterr()
    assert code == 2
    summary = json.loads(captured.out)
    assert summary["status"] == "bad_input" and summary["exit_code"] == 2
    import re
    assert re.search(match, captured.err), captured.err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args, match", [
    (["--events", "{files}/nope.csv"], r"events must be a file or folder .*nope.csv' does not exist"),
    (["--events", "{tmp}/bad.jsonl"], r"events .*bad.jsonl' is not a readable JSON lines file"),
    (["--events", "{files}/decisions.csv"], r"events \(decisions.csv\) must have columns \['session_id', 'ts', 'type'\]"),
    (["--events", "{files}/events.csv", "--since", "not a date"], "since must be a date"),
    (["--events", "{files}/events.csv", "--policy", "{files}/config.json"], r"policy file .*config.json"),
    (["--events", "{files}/events.csv", "--since", "2030-01-01"], r"must be at least 200 .* got 0"),
])
def test_bad_inputs_and_options_exit_2(files, tmp_path, capsys, args, match):
    (tmp_path / "bad.jsonl").write_text('{"session_id": "a", \n')
    args = [a.format(files=files, tmp=tmp_path) for a in args]
    code = main(["retrain", "-q", "--decisions", str(files / "decisions.csv"), *args, "--root", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2
    import re
    assert re.search(match, err), err


def test_bad_parquet_file_is_named(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "part-0.parquet").write_bytes(b"not parquet")
    from nextchannel.errors import ValidationError

    with pytest.raises(ValidationError, match=r"decisions .*part-0.parquet' is not a readable Parquet file"):
        read_table(tmp_path / "d", "decisions")


def test_anything_else_exits_1(files, tmp_path, capsys):
    root = tmp_path / "root-is-a-file"
    root.write_text("x")
    code, s = _run(capsys, "--decisions", files / "decisions.csv", "--events", files / "events.csv",
                   "--config", files / "config.json", "--root", root, "--no-report", "--window-days", 4)
    assert code == 1 and s["status"] == "error" and s["exit_code"] == 1


def test_a_reader_reloading_current_in_a_loop_never_fails_while_retrain_publishes(world, tmp_path):
    import threading

    from nextchannel import Scorer

    sim, decisions = world
    root = tmp_path / "models"
    policy = PolicyConfig.from_sim(SIM)
    week1 = decisions["ts"] < SIM.epoch_start_s + 7 * DAY
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = retrain(decisions=decisions[week1], events=sim.events, root=root, policy=policy, config=TRAIN,
                        report=False)
    scorer = Scorer.load(root)
    seen, errors, stop = set(), [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                scorer.reload(root)
                seen.add(scorer.model_version)
            except Exception as err:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(err)

    t = threading.Thread(target=reader)
    t.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            second = retrain(decisions=decisions, events=sim.events, root=root, policy=policy,
                             config=dataclasses.replace(TRAIN, random_state=3), require="not-worse",
                             min_effect=10.0, report=False)   # a margin no difference clears: publish
    finally:
        stop.set()
        t.join()
    scorer.reload(root)
    seen.add(scorer.model_version)
    assert errors == []
    assert second.status == "published" and second.version != first.version
    assert {first.model_version, second.model_version} <= seen


def test_one_outcome_join_for_the_service_logs_and_the_job(tmp_path):
    from nextchannel.errors import ValidationError
    from nextchannel.jobs import read_table
    from nextchannel.web.logs import DecisionLog, join_outcomes, read_logs

    log = DecisionLog(tmp_path, key=b"k")
    for i in range(3):
        log.decision({"decision_id": f"d{i}", "session_id": "s", "ts": float(i), "action": "none", "propensity": 1.0})
    for did, outcome in (("d1", "accepted"), ("d1", "solved"), ("d2", "contact_started"), ("d0", "shown")):
        log.outcome({"decision_id": did, "outcome": outcome, "ts": 9.0})
    log.close()
    cols = ["decision_id", "accepted", "dismissed", "contact_started", "success"]
    service = read_logs(tmp_path).decisions[cols]
    job = join_outcomes(read_table(tmp_path / "decisions", "decisions"), outcomes=read_table(tmp_path / "outcomes", "outcomes"))
    pd.testing.assert_frame_equal(job[cols].sort_values("decision_id").reset_index(drop=True), service)
    assert service.set_index("decision_id").loc["d1", ["accepted", "success"]].tolist() == [True, True]
    bad = read_table(tmp_path / "outcomes", "outcomes")
    bad.loc[2, "outcome"] = "bought"
    with pytest.raises(ValidationError, match=r"outcomes\.outcome must be one of .* row 3 \('bought'\)"):
        join_outcomes(read_table(tmp_path / "decisions", "decisions"), outcomes=bad)
