"""The package map: every public name resolves, and light imports stay light."""

import subprocess
from pathlib import Path
import sys

import nextchannel


def test_every_public_name_resolves():
    for name in nextchannel.__all__:
        assert getattr(nextchannel, name) is not None, name


def test_import_does_not_load_heavy_modules():
    code = ("import sys, nextchannel, nextchannel.features, nextchannel.policy; "
            "heavy = [m for m in ('matplotlib', 'dask', 'nextchannel.simulation', 'nextchannel.evaluate') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_py_typed_ships():
    import importlib.resources

    assert importlib.resources.files("nextchannel").joinpath("py.typed").is_file()


def test_default_bundle_is_found_and_packaged():
    """Scorer.load() finds models/default; pyproject installs it as package data for plain installs."""
    from nextchannel.modelset import DEFAULT_BUNDLE

    assert (DEFAULT_BUNDLE / "manifest.json").is_file()
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"nextchannel.default_bundle" = "models/default"' in text


def test_every_subpackage_is_listed_for_installation():
    # pyproject lists packages explicitly (the default bundle is mapped in from models/): a subpackage
    # missing there is missing from a plain `pip install .`.
    import pathlib
    import tomllib

    root = pathlib.Path(nextchannel.__file__).parent
    listed = set(tomllib.loads((root.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    subpackages = {"nextchannel." + p.parent.relative_to(root).as_posix().replace("/", ".")
                   for p in root.rglob("__init__.py") if p.parent != root}
    assert subpackages <= listed, sorted(subpackages - listed)
