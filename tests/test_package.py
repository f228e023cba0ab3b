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


_HEAVY = ("lightgbm", "sklearn", "scipy", "pandas", "tqdm", "matplotlib", "dask", "distributed",
          "nextchannel.models", "nextchannel.training", "nextchannel.simulate", "nextchannel.simulation",
          "nextchannel.evaluate", "nextchannel.report", "nextchannel.plots")


def _loaded_after(code: str) -> list[str]:
    probe = code + f"; import sys; print(sorted(m for m in {_HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return eval(out.strip().splitlines()[-1])


def test_import_does_not_load_heavy_modules():
    assert _loaded_after("import nextchannel, nextchannel.features, nextchannel.policy, nextchannel.context") == []


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
    """The serving path — import the scorer, load the shipped bundle, decide per request (with lazy
    reasons read) — loads none of LightGBM's Python package, scikit-learn, SciPy, pandas, tqdm,
    matplotlib, Dask, the learners, training or the simulator: LightGBM's library is opened with
    ctypes, the learners are built from the bundle's texts only when asked for, pandas is imported
    by the batch paths only."""
    assert _loaded_after("import nextchannel.scorer") == []
    serve = ("from nextchannel.scorer import Scorer; from nextchannel.features import SessionState; "
             "s = Scorer.load(); st = SessionState('s1'); "
             "st.update({'session_id': 's1', 'ts': 0.0, 'type': 'session_start', 'device': 'desktop', 'language': 'en'}); "
             "c = {'customer_id': 'c1', 'contacts': [{'ts': 1.0, 'channel': 'chat', 'resolved': True}]}; "
             "ds = [s.decide_one(st, c, {'wait_chat_s': 30.0, 'open_phone': False}, now=5.0), "
             "s.decide_one({'session_id': 's2', 'ts': 3.0, 'pages': 40, 'checkout_errors': 3}, None, None), "
             "s.decide_one({'session_id': 's3', 'ts': 3.0}, c, {'chat': {'open': True, 'languages': ['en']}})]; "
             "[d.reasons for d in ds]; assert not any(d.fallback for d in ds)")
    assert _loaded_after(serve) == []
    # the batch path and the learners still load what they need
    assert _loaded_after("from nextchannel.scorer import Scorer; Scorer.load().model_set.value_model") == \
        ["lightgbm", "nextchannel.models", "pandas", "scipy", "sklearn"]


def test_scorer_opens_the_library_lightgbm_loads():
    """The library opened with ctypes (found without importing ``lightgbm``) is the file ``lightgbm`` loads."""
    code = ("import os, sys; from nextchannel.fastpredict import lightgbm_library_path; p = lightgbm_library_path(); "
            "assert 'lightgbm' not in sys.modules; import lightgbm.basic; "
            "print(os.path.samefile(p, lightgbm.basic._LIB._name))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


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
