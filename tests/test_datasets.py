"""nextchannel.datasets: the shipped Online Shoppers data loads with its dtypes, provenance and licence,
and a built wheel carries it (a plain, non-editable install finds it)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nextchannel
from nextchannel.datasets import load_online_shoppers
from nextchannel.datasets.online_shoppers import MONTHS, ONLINE_SHOPPERS_SHA256, VISITOR_TYPES
from nextchannel.errors import ValidationError

ROOT = Path(__file__).resolve().parents[1]
DATA = importlib.resources.files("nextchannel.datasets").joinpath("data")


def test_shape_columns_and_dtypes() -> None:
    df = load_online_shoppers()
    assert df.shape == (12330, 18)
    assert list(df.columns)[:3] == ["Administrative", "Administrative_Duration", "Informational"]
    assert df.columns[-1] == "Revenue"
    for c in ("Administrative", "Informational", "ProductRelated"):
        assert df[c].dtype == np.int64, c
    for c in ("ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues", "SpecialDay"):
        assert df[c].dtype == np.float64, c
    assert df["Weekend"].dtype == bool and df["Revenue"].dtype == bool
    assert isinstance(df["Month"].dtype, pd.CategoricalDtype) and df["Month"].cat.ordered
    assert tuple(df["Month"].cat.categories) == MONTHS
    assert tuple(df["VisitorType"].cat.categories) == VISITOR_TYPES
    assert list(df["Browser"].cat.categories) == list(range(1, 14))
    assert not df.isna().any().any(), "a value did not parse into its category"


def test_figures_match_the_provenance_record() -> None:
    df = load_online_shoppers()
    assert int(df["Revenue"].sum()) == 1908
    assert df["VisitorType"].value_counts().to_dict() == {"Returning_Visitor": 10551, "New_Visitor": 1694, "Other": 85}
    assert int(df.duplicated().sum()) == 125
    assert set(df["Month"].unique()) == set(MONTHS) - {"Jan", "Apr"}
    assert round(float((df["PageValues"] > 0).mean()), 3) == 0.221


def test_return_X_y_and_numeric_arrays_agree_with_the_frame() -> None:
    df = load_online_shoppers()
    X, y = load_online_shoppers(return_X_y=True)
    assert list(X.columns) == list(df.columns[:-1]) and y.name == "Revenue"
    pd.testing.assert_frame_equal(X, df.drop(columns="Revenue"))
    Xa, ya = load_online_shoppers(as_frame=False, return_X_y=True)
    assert Xa.shape == (12330, 17) and Xa.dtype == np.float64 and ya.dtype == bool
    np.testing.assert_array_equal(ya, df["Revenue"].to_numpy())
    cols = list(X.columns)
    month = Xa[:, cols.index("Month")]
    assert set(month) == {2.0, 3.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0}  # calendar months, June = 6
    np.testing.assert_array_equal(month, [MONTHS.index(m) + 1.0 for m in df["Month"]])
    np.testing.assert_array_equal(Xa[:, cols.index("Browser")], df["Browser"].astype(int).to_numpy(dtype=float))
    np.testing.assert_array_equal(Xa[:, cols.index("ProductRelated_Duration")], df["ProductRelated_Duration"])
    bunch = load_online_shoppers(as_frame=False)
    assert bunch.feature_names == cols and bunch.target_names == ["Revenue"]
    assert "CC BY 4.0" in bunch.DESCR
    np.testing.assert_array_equal(bunch["data"], Xa)


def test_each_call_returns_a_fresh_copy() -> None:
    a = load_online_shoppers()
    a.loc[0, "PageValues"] = -1.0
    a["Month"] = a["Month"].cat.rename_categories(lambda m: m.upper())
    b = load_online_shoppers()
    assert b.loc[0, "PageValues"] == 0.0 and "Feb" in b["Month"].cat.categories


@pytest.mark.parametrize("kwargs, match", [
    ({"as_frame": "yes"}, r"as_frame must be True or False, got 'yes'"),
    ({"return_X_y": 1}, r"return_X_y must be True or False, got 1"),
])
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        load_online_shoppers(**kwargs)


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        load_online_shoppers(True)  # type: ignore[misc]


def test_shipped_file_checksum_provenance_and_licence() -> None:
    csv = gzip.decompress(DATA.joinpath("online_shoppers_intention.csv.gz").read_bytes())
    assert hashlib.sha256(csv).hexdigest() == ONLINE_SHOPPERS_SHA256
    prov = DATA.joinpath("PROVENANCE.md").read_text("utf-8")
    assert ONLINE_SHOPPERS_SHA256 in prov and "CC BY 4.0" in prov and "10.24432/C5F88Q" in prov


def test_public_name_in_the_package_map() -> None:
    assert nextchannel.load_online_shoppers is load_online_shoppers
    assert "load_online_shoppers" in nextchannel.__all__


def test_nothing_reads_shared_data_outside_the_repo() -> None:
    """The code stands alone: no module, test or notebook points at a shared folder beside the repo."""
    offenders = []
    for p in [*ROOT.joinpath("nextchannel").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py"),
              *ROOT.joinpath("benchmarks").rglob("*.py"),
              *ROOT.joinpath("notebooks").glob("*.ipynb")]:
        text = p.read_text("utf-8")
        if "shared" "/data" in text.replace("\\", "/") and p.name != Path(__file__).name:
            offenders.append(str(p.relative_to(ROOT)))
    assert offenders == []


def test_a_built_wheel_ships_the_data_and_a_plain_install_loads_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("nextchannel", "models"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("nextchannel-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"nextchannel/datasets/data/online_shoppers_intention.csv.gz",
            "nextchannel/datasets/data/PROVENANCE.md"} <= names
    # every module of the source tree is in the wheel (an explicit package list misses new subpackages)
    modules = {p.relative_to(ROOT).as_posix() for p in ROOT.joinpath("nextchannel").rglob("*.py")}
    assert sorted(modules - names) == []
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = (f"import sys; sys.path.insert(0, {str(target)!r}); import nextchannel as nc; "
            "print(nc.__file__); print(nc.load_online_shoppers().shape); "
            "import nextchannel.adapters, nextchannel.simulation; print(nextchannel.adapters.__file__)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith(str(target)), out
    assert out[1] == "(12330, 18)"
    assert out[2].startswith(str(target)), out
