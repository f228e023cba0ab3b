"""The ``nextchannel`` command: every subcommand, its exit codes, and errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nextchannel.cli import _sim_api, main

SMALL = ["--simulate", "400", "--n-estimators", "5"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "bundle"
    assert main(["train", *SMALL, "--out", str(out)]) == 0
    return out


def test_train_from_a_simulation_then_verify(bundle, capsys):
    assert (bundle / "manifest.json").is_file()
    assert main(["verify", str(bundle)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "ok"


def test_train_early_stopping_rounds_reaches_the_train_config(bundle, tmp_path):
    import json

    assert json.loads((bundle / "manifest.json").read_text())["training"]["train_config"]["early_stopping_rounds"] == 30
    out = tmp_path / "fixed"
    assert main(["train", *SMALL, "--early-stopping-rounds", "0", "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["training"]["train_config"]["early_stopping_rounds"] == 0


def test_train_from_files(tmp_path, capsys):
    _, simulate, _ = _sim_api()
    sim = simulate(300, seed=3)
    paths = {}
    for name in ("events", "decisions", "customers", "contacts"):
        paths[name] = tmp_path / f"{name}.csv"
        getattr(sim, name).to_csv(paths[name], index=False)
    args = ["train", "--n-estimators", "5", "--out", str(tmp_path / "b")]
    args += [x for name, p in paths.items() for x in (f"--{name}", str(p))]
    assert main(args) == 0
    assert "trained on" in capsys.readouterr().out


def test_verify_refuses_a_broken_bundle(bundle, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    next(p for p in broken.iterdir() if p.suffix == ".txt").write_text("tree\n")
    assert main(["verify", str(broken)]) == 1
    assert "problem" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "missing")]) == 1


def test_demo_runs_small(capsys):
    assert main(["demo", "--sessions", "400", "--test-sessions", "100", "--trees", "5"]) == 0
    out = capsys.readouterr().out
    assert "Headline" in out and "oracle" in out


def test_loop_runs_small(capsys):
    assert main(["loop", "--weeks", "2", "--sessions", "300", "--n-estimators", "5"]) == 0
    out = capsys.readouterr().out
    assert "value: expected reward per session" in out and "by week: 0.3,0.3,0.2,0.1,0.05,0.02" in out
    assert main(["loop", "--weeks", "1", "--sessions", "200", "--n-estimators", "5", "--explore-schedule", "none",
                 "--explore-floor", "0.05"]) == 0
    assert "softmax exploration (temperature 0.1, floor 0.05)" in capsys.readouterr().out


def test_retrain_bad_input_exits_2_with_a_json_line(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("session_id,ts\n")
    assert main(["retrain", "--decisions", str(tmp_path / "d.csv"), "--events", str(tmp_path / "d.csv"),
                 "--root", str(tmp_path / "root"), "-q"]) == 2
    captured = capsys.readouterr()
    assert '"status": "bad_input"' in captured.out and "Traceback" not in captured.err


def test_report_from_a_decisions_file(tmp_path, capsys):
    import pandas as pd

    pd.DataFrame({"session_id": ["a", "b"], "ts": [0.0, 9.0], "action": ["chat", "none"],
                  "reasons": ["idle 40 s on cart", ""]}).to_csv(tmp_path / "d.csv", index=False)
    assert main(["report", str(tmp_path / "d.csv"), "--out", str(tmp_path / "r")]) == 0
    assert "report written to" in capsys.readouterr().out


@pytest.mark.parametrize("argv,match", [
    (["train", "--simulate", "100", "--config", "c.json", "--n-estimators", "5", "--out", "x"],
     "--n-estimators cannot be combined with --config"),
    (["train", "--simulate", "100", "--config", "c.json", "--early-stopping-rounds", "0", "--out", "x"],
     "--early-stopping-rounds cannot be combined with --config"),
    (["train", "--simulate", "100", "--config", "c.json", "--seed", "3", "--out", "x"],
     "--seed cannot be combined with --config"),
    (["train", "--simulate", "100", "--events", "e.csv", "--out", "x"], "--simulate cannot be combined with --events"),
    (["train", "--world", "long_queues", "--events", "e.csv", "--decisions", "d.csv", "--out", "x"],
     "--world needs --simulate"),
    (["train", "--out", "x"], "give --simulate N, or --decisions with --events and/or --features files"),
    (["train", "--simulate", "0", "--out", "x"], "--simulate must be a number of sessions >= 1, got 0"),
    (["train", "--events", "nope.csv", "--decisions", "nope.csv", "--out", "x"], "file 'nope.csv' does not exist"),
    (["train", "--simulate", "100", "--config", "nope.json", "--out", "x"], "--config file 'nope.json' does not exist"),
    (["report", "nope.csv", "--out", "x"], "decisions_csv must be a readable CSV file"),
    (["demo", "--sessions", "-5"], "nextchannel demo: error: "),
    (["loop", "--config", "c.json", "--n-estimators", "5"], "--n-estimators cannot be combined with --config"),
    (["loop", "--config", "nope.json"], "--config file 'nope.json' does not exist"),
    (["loop", "--config", "c.json", "--target", "session"], "--target cannot be combined with --config"),
    (["loop", "--explore-schedule", "0.3,lots"], "--explore-schedule must be comma-separated shares such as "
                                                 "0.3,0.1,0.02 or 'none', got '0.3,lots'"),
    # the default is a schedule, which sets every week's share: --epsilon alone would be ignored
    (["loop", "--epsilon", "0.2"], "--epsilon and --explore-floor set the fixed exploration: add --explore-schedule none"),
    (["loop", "--explore-floor", "0.05", "--explore-schedule", "0.3,0.1"], "add --explore-schedule none"),
    (["loop", "--weeks", "1", "--gate-folds", "1"], "gate_folds must be an integer >= 2, got 1"),
    (["serve", "--workers", "0"], "nextchannel serve: error: --workers must be >= 1, got 0"),
    (["serve", "--workers", "2", "--store", "memory"], "--workers > 1 needs a shared session store"),
])
def test_bad_usage_exits_2_with_one_line_and_no_traceback(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_errors_of_the_library_reach_the_terminal_without_traceback(tmp_path):
    (tmp_path / "c.json").write_text('{"n_estimators": 0}')
    r = subprocess.run([sys.executable, "-m", "nextchannel.cli", "train", "--simulate", "100", "--config",
                        str(tmp_path / "c.json"), "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "nextchannel train: error: n_estimators must be an integer >= 1, got 0"
    r = subprocess.run([sys.executable, "-m", "nextchannel.cli", "nosuchcommand"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
