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
