"""The README's examples run as written: every ```python block is executed.

The rule for blocks that need data (documented in the README's Development section): a block runs
in a fresh namespace, in a temporary folder holding ``models/current`` and ``models/new`` (copies of
the default bundle). A block preceded by ``<!-- readme-test: logs -->`` finds small simulated logs
already defined (``events``, ``decisions``, ``customers``, ``contacts``, ``policy``);
``weblogs`` gives it a ``logs/`` folder written by the reference service (60 small sessions);
``replace "<text>" "<by>"`` runs it with that text replaced (to run a big example at a small size);
``env NAME=value`` sets an environment variable; ``cwd repo`` runs it in the repository's root (for
examples that read the test fixtures). Markers combine with ``;``. Any other marker fails the test,
so a block can not be skipped silently.
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"(?:<!--\s*readme-test:(?P<marker>[^>]*)-->\s*\n)?```python\n(?P<code>.*?)```", flags=re.S)


def _python_blocks() -> list[tuple[str, str]]:
    return [(m.group("marker") or "", m.group("code")) for m in _BLOCK.finditer(README.read_text())]


@pytest.fixture(scope="module")
def small_logs():
    from nextchannel.cli import _sim_api
    from nextchannel.policy import PolicyConfig

    SimConfig, simulate, _ = _sim_api()
    sim = simulate(400, seed=11)
    return {"events": sim.events, "decisions": sim.decisions, "customers": sim.customers,
            "contacts": sim.contacts, "policy": PolicyConfig.from_sim(SimConfig())}


def _service_logs(folder: Path) -> None:
    """A logs/ folder as the reference service writes it: 60 short sessions, offers and outcomes."""
    from _web_support import write_service_logs

    write_service_logs(folder)


def _run(code: str, marker: str, tmp_path, monkeypatch, small_logs) -> dict:
    from nextchannel.modelset import DEFAULT_BUNDLE

    for name in ("current", "new"):
        shutil.copytree(DEFAULT_BUNDLE, tmp_path / "models" / name)
    monkeypatch.chdir(tmp_path)
    env: dict = {"__name__": "readme"}
    for part in filter(None, (p.strip() for p in marker.split(";"))):
        words = shlex.split(part)
        if words == ["logs"]:
            env.update(small_logs)
        elif words == ["weblogs"]:
            _service_logs(tmp_path / "logs")
        elif words == ["cwd", "repo"]:
            monkeypatch.chdir(README.parent)
        elif len(words) == 2 and words[0] == "env" and "=" in words[1]:
            monkeypatch.setenv(*words[1].split("=", 1))
        elif len(words) == 3 and words[0] == "replace":
            assert words[1] in code, f"readme-test marker replaces {words[1]!r}, which the block does not hold"
            code = code.replace(words[1], words[2])
        else:
            raise AssertionError(f"unknown readme-test marker {part!r} (known: logs; weblogs; cwd repo; "
                                 "env NAME=value; replace \"a\" \"b\")")
    exec(compile(code, str(README), "exec"), env)
    return env


def test_readme_has_python_blocks():
    assert len(_python_blocks()) >= 2


@pytest.mark.parametrize("i", range(len(_python_blocks())))
def test_every_python_block_runs(i, tmp_path, monkeypatch, small_logs):
    marker, code = _python_blocks()[i]
    env = _run(code, marker, tmp_path, monkeypatch, small_logs)
    if "Scorer.load()" in code and "decision" in env:   # the web backend example: what it promises
        d = env["decision"]
        assert d.fallback is None and d.action in env["scorer"].actions
        assert "phone: closed" in d.why_not
        assert env["log_record"]["model_version"] == d.model_version
    if "features=X" in code:   # the own-data example: what it promises
        _check_own_data_example(env)


def _check_own_data_example(env: dict) -> None:
    ms, one, batch = env["ms"], env["one"], env["batch"]
    assert ms.evaluation["guard"]["verdict"] == "better" and ms.constant_action is None
    assert one.why_not == ("WhatsApp: closed",) and one.action == "Spring E-Mail"
    assert one.reasons and all(r.startswith(("plan: type", "visits, 30 d", "stage")) for r in one.reasons)
    X = env["X"]
    rows = [{k: X[k].iloc[i] for k in X.columns} for i in range(300)]
    assert list(batch["action"].iloc[:300]) == [env["scorer"].decide_one(r).action for r in rows]


def test_quickstart_commands_are_the_ones_ci_runs():
    text = README.read_text()
    block = re.search(r"<!-- test-command -->\n```bash\n(.*?)\n```", text, flags=re.S).group(1)
    assert "pytest" in block and ".[test]" in block
    ci = (README.parent / ".ci" / "run").read_text()
    assert "test-command" in ci


