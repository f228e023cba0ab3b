"""The package map: every public name resolves to one thing in any order, and light imports stay light."""

import importlib
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import nextchannel


def test_every_public_name_resolves():
    for name in nextchannel.__all__:
        assert getattr(nextchannel, name) is not None, name


def test_no_public_name_is_also_a_module():
    """A package attribute that is both a submodule and a function flips when the submodule is imported."""
    modules = {m.name for m in pkgutil.iter_modules(nextchannel.__path__)}
    assert not modules & set(nextchannel._EXPORTS), sorted(modules & set(nextchannel._EXPORTS))


_TOUCH_EVERY_ORDER = r"""
import importlib, random, sys, types
exports = __import__("nextchannel")._EXPORTS
firsts = sorted({mod: n for n, mod in sorted(exports.items(), reverse=True)}.values())  # one name per module
names = None
bad = []
for k, first in enumerate(firsts):
    for m in [m for m in sys.modules if m == "nextchannel" or m.startswith("nextchannel.")]:
        del sys.modules[m]
    nc = importlib.import_module("nextchannel")
    names = sorted(nc._EXPORTS)
    order = [first] + random.Random(k).sample([n for n in names if n != first], len(names) - 1)
    for n in order:
        getattr(nc, n)
    for n in random.Random(-k).sample(names, len(names)):   # read again after everything is imported
        v = getattr(nc, n)
        home = sys.modules["nextchannel." + nc._EXPORTS[n]]
        if isinstance(v, types.ModuleType) or v is not getattr(home, n):
            bad.append((first, n, type(v).__name__))
print(len(names), bad[:5])
"""


def test_every_name_in_any_order_is_the_same_object():
    """Each module's names touched first, then every other name in a random order: nothing is replaced.

    (One round per module rather than per name: what can replace a name is the import of a module.)"""
    out = subprocess.run([sys.executable, "-c", _TOUCH_EVERY_ORDER], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{len(nextchannel._EXPORTS)} []", out.stdout + out.stderr


def test_public_functions_are_callable_after_any_import():
    code = ("import nextchannel as nc; nc.SimConfig(); nc.TrainConfig(); r = nc.simulate(30, seed=0); "
            "print(type(r).__name__, len(nc.feature_names(with_profile=False)), nc.ChannelCatalogue.default().names[0], "
            "callable(nc.train), callable(nc.simulate))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["SimResult", str(len(nextchannel.feature_names(with_profile=False))), "chat", "True", "True"]


def test_import_does_not_load_heavy_modules():
    code = ("import sys, nextchannel, nextchannel.features, nextchannel.policy, nextchannel.context; "
            "heavy = [m for m in ('matplotlib', 'dask', 'nextchannel.simulate', 'nextchannel.simulation', "
            "'nextchannel.evaluate') if m in sys.modules]; print(heavy)")
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


def test_scorer_import_loads_only_the_web_path():
    """``import nextchannel.scorer`` loads neither training, tqdm, matplotlib, Dask nor the simulator.

    (scikit-learn and SciPy are loaded, by LightGBM itself — ``lightgbm.compat`` imports them whenever
    they are installed — and by the calibration of the channel model; the test records that too, so
    that a change in either is seen.)"""
    code = ("import sys, nextchannel.scorer; "
            "print(sorted(m for m in ('nextchannel.training', 'tqdm', 'matplotlib', 'dask', 'nextchannel.simulate', "
            "'nextchannel.simulation', 'nextchannel.evaluate', 'nextchannel.report', 'nextchannel.plots') "
            "if m in sys.modules)); print('lightgbm' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]", out
    assert out[1] == "True True", out


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
