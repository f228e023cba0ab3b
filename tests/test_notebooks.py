"""The notebooks in notebooks/ run from top to bottom, and are committed without outputs.

Each notebook is executed by nbclient in a fresh ``python3`` kernel, with the working directory
``notebooks/`` and ``NEXTCHANNEL_NOTEBOOK_SMALL=1`` (small sizes: each runs in well under a minute),
headless (``MPLBACKEND=Agg``). The kernel must be this interpreter's: ipykernel installed in the
environment provides the ``python3`` kernel spec, and jupyter_client launches it with
``sys.executable`` — a test checks that, so the notebooks never silently run against another
environment's nextchannel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ("01_quickstart.ipynb", "02_your_own_data.ipynb")
CELL_TIMEOUT_S = 300


@pytest.fixture
def small_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits the environment of the process that starts it.
    monkeypatch.setenv("NEXTCHANNEL_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # ipykernel's debugger otherwise prints a warning about frozen modules on every kernel start
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def _execute(nb: "nbformat.NotebookNode") -> "nbformat.NotebookNode":
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    client.execute()
    return nb


def test_all_notebooks_are_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name} has no code cell"
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{name}: cells {dirty} have outputs or an execution count; strip them before committing"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    first = code[0]
    assert "NEXTCHANNEL_NOTEBOOK_SMALL" in first.source, f"{name}: the first code cell must hold the sizes"


def test_kernel_is_this_environment(small_env: None) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys\nprint(sys.prefix)\nprint(os.getcwd())\nprint(os.environ.get('NEXTCHANNEL_NOTEBOOK_SMALL'))")])
    out = _execute(nb).cells[0].outputs
    lines = "".join(o.get("text", "") for o in out if o.output_type == "stream").splitlines()
    assert lines == [sys.prefix, str(NOTEBOOKS_DIR), "1"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, small_env: None) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    # Raises CellExecutionError (with the cell and its traceback) on the first failing cell.
    _execute(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "a code cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
