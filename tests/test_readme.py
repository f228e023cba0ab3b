"""The README's examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_web_backend_example_runs(tmp_path, monkeypatch):
    code = _python_blocks()[0]
    assert "Scorer.load()" in code
    # the example reloads from "models/new": point it at a copy of the default bundle
    import shutil

    from nextchannel.modelset import DEFAULT_BUNDLE

    shutil.copytree(DEFAULT_BUNDLE, tmp_path / "models" / "new")
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(code, str(README), "exec"), env)
    d = env["decision"]
    assert d.fallback is None and d.action in env["scorer"].actions
    assert "phone: closed" in d.why_not
    assert env["log_record"]["model_version"] == d.model_version


def test_quickstart_commands_are_the_ones_ci_runs():
    text = README.read_text()
    block = re.search(r"<!-- test-command -->\n```bash\n(.*?)\n```", text, flags=re.S).group(1)
    assert "pytest" in block and ".[test]" in block
    ci = (README.parent / ".ci" / "run").read_text()
    assert "test-command" in ci


def test_own_data_example_runs():
    code = next(b for b in _python_blocks() if "features=X" in b)
    env: dict = {}
    exec(compile(code, str(README), "exec"), env)
    ms, one, batch = env["ms"], env["one"], env["batch"]
    assert ms.evaluation["guard"]["verdict"] == "better" and ms.constant_action is None
    assert one.why_not == ("WhatsApp: closed",) and one.action == "Spring E-Mail"
    assert one.reasons and all(r.startswith(("plan: type", "visits, 30 d", "stage")) for r in one.reasons)
    X = env["X"]
    rows = [{k: X[k].iloc[i] for k in X.columns} for i in range(300)]
    assert list(batch["action"].iloc[:300]) == [env["scorer"].decide_one(r).action for r in rows]
