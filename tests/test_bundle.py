"""Tests of nextchannel.bundle: round trip, determinism, atomic publishing and a table of bad bundles."""

from __future__ import annotations

import ast
import errno
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import lightgbm as lgb
import numpy as np
import pytest

import nextchannel.bundle as bundle_mod
from nextchannel.bundle import (
    FORMAT_VERSION,
    Bundle,
    canonical_json,
    feature_schema_hash,
    current_version,
    file_sha256,
    publish,
    publish_files,
    published_versions,
    read_bundle,
    verify_bundle,
    write_bundle,
)
from nextchannel.errors import BundleError, ValidationError

FEATURES = ["dwell_s", "n_pages", "idle_s", "wait_s"]
CALIBRATION = {"x": [0.0, 0.25, 0.5, 0.75, 1.0], "y": [0.0, 0.2, 0.55, 0.8, 1.0], "method": "isotonic"}


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> tuple[str, np.ndarray, np.ndarray]:
    """A tiny real LightGBM model: (model text, rows to predict, its predictions)."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, len(FEATURES)))
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 3] + rng.normal(scale=0.5, size=200) > 0).astype(float)
    params = {"objective": "binary", "num_threads": 1, "verbose": -1, "num_leaves": 7,
              "min_data_in_leaf": 10, "seed": 7}
    booster = lgb.train(params, lgb.Dataset(X, y, feature_name=FEATURES), num_boost_round=15)
    return booster.model_to_string(), X, booster.predict(X)


@pytest.fixture
def files(model) -> dict:
    return {"offer_model.txt": model[0], "calibration.json": CALIBRATION, "notes.bin": b"\x00\xffraw"}


MANIFEST = {"model_version": "2025-01-01.1", "feature_names": FEATURES, "lightgbm_version": "4.7.0"}


@pytest.fixture
def good(tmp_path, files) -> pathlib.Path:
    return write_bundle(tmp_path / "bundle", files, MANIFEST)


def _manifest(p: pathlib.Path) -> dict:
    return json.loads((p / "manifest.json").read_text())


def _rewrite_manifest(p: pathlib.Path, manifest: dict) -> None:
    (p / "manifest.json").write_text(canonical_json(manifest))


def _siblings(p: pathlib.Path) -> list[str]:
    return sorted(x.name for x in p.parent.iterdir())


# ---------------------------------------------------------------------------------------------
# The table of bad bundles
# ---------------------------------------------------------------------------------------------
def _missing_manifest(p):
    (p / "manifest.json").unlink()


def _truncated_manifest(p):
    raw = (p / "manifest.json").read_bytes()
    (p / "manifest.json").write_bytes(raw[: len(raw) // 2])


def _manifest_not_json(p):
    (p / "manifest.json").write_text("format_version = 1\n")


def _manifest_not_object(p):
    (p / "manifest.json").write_text("[1, 2]\n")


def _manifest_without_files(p):
    m = _manifest(p)
    del m["files"]
    _rewrite_manifest(p, m)


def _unknown_format_version(p):
    m = _manifest(p)
    m["format_version"] = 99
    _rewrite_manifest(p, m)


def _missing_file(p):
    (p / "offer_model.txt").unlink()


def _flipped_byte(p):
    raw = bytearray((p / "offer_model.txt").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (p / "offer_model.txt").write_bytes(bytes(raw))


def _truncated_file(p):
    raw = (p / "offer_model.txt").read_bytes()
    (p / "offer_model.txt").write_bytes(raw[:-10])


def _extra_file(p):
    (p / "offer_model.txt.bak").write_text("old model")


def _extra_folder(p):
    (p / "subdir").mkdir()


def _malformed_calibration(p):
    # Checksums updated to match, so only the JSON parse can catch it.
    bad = b'{"x": [0.0, 0.5,\n "y": }\n'
    (p / "calibration.json").write_bytes(bad)
    m = _manifest(p)
    m["files"]["calibration.json"] = {"sha256": file_sha256(p / "calibration.json"), "bytes": len(bad)}
    _rewrite_manifest(p, m)


def _nan_in_calibration(p):
    bad = b'{"x": [NaN]}\n'
    (p / "calibration.json").write_bytes(bad)
    m = _manifest(p)
    m["files"]["calibration.json"] = {"sha256": file_sha256(p / "calibration.json"), "bytes": len(bad)}
    _rewrite_manifest(p, m)


def _path_traversal_in_manifest(p):
    m = _manifest(p)
    m["files"]["../../etc/passwd"] = {"sha256": "0" * 64, "bytes": 1}
    _rewrite_manifest(p, m)


def _bad_checksum_entry(p):
    m = _manifest(p)
    m["files"]["offer_model.txt"]["sha256"] = "not-hex"
    _rewrite_manifest(p, m)


def _inconsistent_feature_hash(p):
    m = _manifest(p)
    m["feature_names"] = list(reversed(m["feature_names"]))
    _rewrite_manifest(p, m)


def _no_folder(p):
    shutil.rmtree(p)


def _path_is_file(p):
    shutil.rmtree(p)
    p.write_text("not a folder")


def _nothing(p):
    pass


OTHER_HASH = feature_schema_hash(["dwell_s", "n_pages", "idle_s", "queue_wait_s"])

# (damage, extra read_bundle kwargs, regex the BundleError message must match)
BAD_BUNDLES = [
    pytest.param(_missing_manifest, {}, r"manifest\.json is missing", id="missing-manifest"),
    pytest.param(_truncated_manifest, {}, r"manifest\.json is not valid JSON: .* at line \d+, column \d+",
                 id="truncated-manifest"),
    pytest.param(_manifest_not_json, {}, r"manifest\.json is not valid JSON: Expecting value at line 1, column 1",
                 id="manifest-not-json"),
    pytest.param(_manifest_not_object, {}, r"manifest\.json must hold a JSON object, got list",
                 id="manifest-not-object"),
    pytest.param(_manifest_without_files, {}, r"manifest\.json is missing required key 'files'",
                 id="manifest-missing-key"),
    pytest.param(_unknown_format_version, {},
                 r"unsupported format_version 99 .*upgrade nextchannel.*reads format versions \[1\]",
                 id="unknown-format-version"),
    pytest.param(_missing_file, {}, r"file 'offer_model\.txt' listed in manifest\.json is missing",
                 id="missing-file"),
    pytest.param(_flipped_byte, {},
                 r"file 'offer_model\.txt' fails its checksum: expected sha256 [0-9a-f]{12}…, got [0-9a-f]{12}…",
                 id="flipped-byte"),
    pytest.param(_truncated_file, {}, r"file 'offer_model\.txt' has \d+ bytes, manifest\.json lists \d+",
                 id="truncated-file"),
    pytest.param(_extra_file, {}, r"'offer_model\.txt\.bak' is in the bundle folder but not listed.*tampered",
                 id="extra-unlisted-file"),
    pytest.param(_extra_folder, {}, r"'subdir' is in the bundle folder but not listed", id="extra-folder"),
    pytest.param(_malformed_calibration, {},
                 r"file 'calibration\.json' is not valid JSON: .* at line 2, column \d+",
                 id="calibration-malformed"),
    pytest.param(_nan_in_calibration, {}, r"file 'calibration\.json' is not valid JSON: non-finite number NaN",
                 id="calibration-nan"),
    pytest.param(_path_traversal_in_manifest, {}, r"manifest\.json lists a bad file name .*'\.\./\.\./etc/passwd'",
                 id="manifest-path-traversal"),
    pytest.param(_bad_checksum_entry, {}, r"entry for file 'offer_model\.txt' must be .*sha256",
                 id="manifest-bad-entry"),
    pytest.param(_inconsistent_feature_hash, {}, r"manifest\.json is inconsistent: feature_names hash to",
                 id="manifest-inconsistent"),
    pytest.param(_nothing, {"expected_feature_hash": OTHER_HASH},
                 rf"feature schema mismatch: .*{feature_schema_hash(FEATURES)[:12]}…, expected {OTHER_HASH[:12]}…"
                 r"; the bundle's 4 feature_names start \['dwell_s'",
                 id="feature-schema-mismatch"),
    pytest.param(_nothing, {"expected_feature_names": ["dwell_s", "n_pages", "idle_s", "queue_wait_s"]},
                 r"feature schema mismatch: .*first difference at position 3: bundle has 'wait_s', "
                 r"expected 'queue_wait_s'", id="feature-names-mismatch"),
    pytest.param(_nothing, {"required_files": ["channel_model.txt"]},
                 r"required file 'channel_model\.txt' is not listed in manifest\.json", id="required-file-absent"),
    pytest.param(_no_folder, {}, r"bundle folder '.*bundle' does not exist", id="path-does-not-exist"),
    pytest.param(_path_is_file, {}, r"bundle path '.*bundle' is a file, expected a bundle folder",
                 id="path-is-a-file"),
]


@pytest.mark.parametrize("damage, kwargs, match", BAD_BUNDLES)
def test_bad_bundle_is_refused(good, damage, kwargs, match):
    assert read_bundle(good, required_files=["offer_model.txt"]).names  # sound before the damage
    damage(good)
    with pytest.raises(BundleError, match=match):
        read_bundle(good, **kwargs)
    # verify_bundle reports the same problem without raising
    problems = verify_bundle(good, **kwargs)
    assert problems and any(re.search(match, p) for p in problems), problems


def test_good_bundle_verifies_clean(good):
    assert verify_bundle(good, expected_feature_hash=feature_schema_hash(FEATURES),
                         required_files=["offer_model.txt", "calibration.json"]) == []


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symlinks")
def test_symlinked_file_is_refused(good, tmp_path):
    outside = tmp_path / "outside.txt"
    shutil.copy(good / "offer_model.txt", outside)
    (good / "offer_model.txt").unlink()
    (good / "offer_model.txt").symlink_to(outside)
    with pytest.raises(BundleError, match=r"'offer_model\.txt' is not a regular file"):
        read_bundle(good)


def test_verify_collects_every_problem(good):
    _flipped_byte(good)
    (good / "calibration.json").write_bytes(b"{}\n")  # size differs from the manifest
    _extra_file(good)
    problems = verify_bundle(good)
    assert len(problems) == 3, problems
    with pytest.raises(BundleError, match=r"\(and 2 more problems\)$"):
        read_bundle(good)


def test_os_errors_are_chained(good, monkeypatch):
    def deny(self, name, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", name)

    monkeypatch.setattr(bundle_mod._Folder, "read", deny)
    with pytest.raises(BundleError, match=r"could not read manifest\.json: .*Permission denied") as info:
        read_bundle(good)
    assert isinstance(info.value.__cause__, PermissionError)


def test_malformed_manifest_error_is_chained(good):
    _truncated_manifest(good)
    with pytest.raises(BundleError) as info:
        read_bundle(good)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


# ---------------------------------------------------------------------------------------------
# Round trip and determinism
# ---------------------------------------------------------------------------------------------
def test_round_trip_lightgbm_model_predicts_identically(good, model):
    text, X, expected = model
    b = read_bundle(good, expected_feature_hash=feature_schema_hash(FEATURES),
                    required_files=["offer_model.txt", "calibration.json"])
    assert isinstance(b, Bundle)
    assert b.text("offer_model.txt") == text
    booster = lgb.Booster(model_str=b.text("offer_model.txt"))
    assert booster.feature_name() == FEATURES
    np.testing.assert_array_equal(booster.predict(X, num_threads=1), expected)
    assert b.json("calibration.json") == CALIBRATION
    assert b.files["notes.bin"] == b"\x00\xffraw"
    assert b.names == ("calibration.json", "notes.bin", "offer_model.txt")
    assert b.manifest["model_version"] == MANIFEST["model_version"]
    assert b.manifest["feature_names"] == FEATURES
    assert b.feature_schema_hash == feature_schema_hash(FEATURES)
    assert b.format_version == FORMAT_VERSION
    import nextchannel
    assert b.library_version == nextchannel.__version__
    assert set(b.manifest["files"]) == set(b.names)
    for name in b.names:
        assert b.manifest["files"][name] == {"sha256": file_sha256(good / name),
                                             "bytes": (good / name).stat().st_size}


def test_bundle_accessors_are_safe(good):
    b = read_bundle(good)
    with pytest.raises(BundleError, match=r"has no file 'channel_model\.txt'; it holds \['calibration\.json'"):
        b.text("channel_model.txt")
    with pytest.raises(BundleError, match=r"'notes\.bin' is not UTF-8 text"):
        b.text("notes.bin")
    with pytest.raises(BundleError, match=r"not a \.json file"):
        b.json("offer_model.txt")
    b.json("calibration.json")["x"].append(99.0)  # a caller mutating its copy ...
    assert b.json("calibration.json") == CALIBRATION  # ... does not change the bundle
    with pytest.raises(TypeError):
        b.files["offer_model.txt"] = b"evil"  # type: ignore[index]
    # The bundle is in memory: deleting the folder does not change it.
    shutil.rmtree(good)
    assert b.json("calibration.json") == CALIBRATION


def test_same_inputs_give_same_bytes(tmp_path, files):
    a = write_bundle(tmp_path / "a", files, MANIFEST)
    # Same content, dict orders shuffled: still the same bytes.
    files2 = dict(reversed(list(files.items())))
    files2["calibration.json"] = dict(reversed(list(CALIBRATION.items())))
    b = write_bundle(tmp_path / "b", files2, dict(reversed(list(MANIFEST.items()))))
    names = sorted(x.name for x in a.iterdir())
    assert names == sorted(x.name for x in b.iterdir()) == sorted([*files, "manifest.json"])
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # Canonical JSON, exactly as documented.
    assert (a / "calibration.json").read_text() == json.dumps(CALIBRATION, sort_keys=True, indent=1) + "\n"


def test_feature_schema_hash_is_pinned_and_order_sensitive():
    # Pinned: changing the canonical form would orphan every published bundle.
    assert feature_schema_hash(["a", "b"]) == "0473ef2dc0d324ab659d3580c1134e9d812035905c4781fdd6d529b0c6860e13"
    assert feature_schema_hash(["a", "b"]) != feature_schema_hash(["b", "a"])
    assert len(feature_schema_hash(FEATURES)) == 64


@pytest.mark.parametrize("names, match", [
    ("dwell_s", r"must be a sequence of str, got str"),
    (["a", ""], r"must be non-empty strings, got ''"),
    (["a", 3], r"must be non-empty strings, got 3"),
    (["a", "b", "a"], r"must be distinct, got duplicates \['a'\]"),
])
def test_feature_schema_hash_rejects_bad_names(names, match):
    with pytest.raises(ValidationError, match=match):
        feature_schema_hash(names)


# ---------------------------------------------------------------------------------------------
# Writing: validation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_files, match", [
    ({"../model.txt": "x"}, r"plain name .*'\.\./model\.txt'"),
    ({"/etc/model.txt": "x"}, r"plain name .*'/etc/model\.txt'"),
    ({"sub/model.txt": "x"}, r"plain name .*'sub/model\.txt'"),
    ({"sub\\model.txt": "x"}, r"plain name"),
    ({"..": "x"}, r"plain name"),
    ({".hidden": "x"}, r"plain name"),
    ({"": "x"}, r"plain name"),
    ({"manifest.json": {}}, r"'manifest\.json' is reserved"),
    ({3: "x"}, r"file name must be a str, got int"),
    ({"Model.txt": "x", "model.txt": "y"}, r"differ in more than letter case"),
    ({"calibration.txt": {"a": 1}}, r"holds a dict/list, so its name must end in '\.json'"),
    ({"calibration.json": {"a": float("nan")}}, r"finite float"),
    ({"calibration.json": {"a": np.float32(1.0)}}, r"JSON content must hold only"),
    ({"calibration.json": "{not json"}, r"file 'calibration\.json' is not valid JSON"),
    ({"model.txt": 3.0}, r"content of file 'model\.txt' must be str, bytes, dict or list, got float"),
])
def test_write_rejects_bad_files(tmp_path, bad_files, match):
    with pytest.raises(ValidationError, match=match):
        write_bundle(tmp_path / "b", bad_files, {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("manifest, match", [
    ({"files": {}}, r"set by write_bundle, got \['files'\]"),
    ({"format_version": 2}, r"set by write_bundle, got \['format_version'\]"),
    ({"feature_names": ["a"], "feature_schema_hash": "0" * 64}, r"must match its feature_names"),
    ({"feature_names": ["a", "a"]}, r"must be distinct"),
    ({"trained_at": object()}, r"JSON content must hold only"),
    ([("a", 1)], r"manifest must be a mapping, got list"),
])
def test_write_rejects_bad_manifest(tmp_path, manifest, match):
    with pytest.raises(ValidationError, match=match):
        write_bundle(tmp_path / "b", {"model.txt": "x"}, manifest)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Writing: existing paths and atomicity
# ---------------------------------------------------------------------------------------------
def test_existing_path_needs_overwrite(good, files):
    before = {x.name: x.read_bytes() for x in good.iterdir()}
    with pytest.raises(BundleError, match=r"already exists; pass overwrite=True"):
        write_bundle(good, {"model.txt": "new"}, {})
    assert {x.name: x.read_bytes() for x in good.iterdir()} == before
    assert _siblings(good) == ["bundle"]


def test_overwrite_replaces_and_cleans_up(good):
    write_bundle(good, {"model.txt": "new model\n"}, {"model_version": "v2"}, overwrite=True)
    b = read_bundle(good)
    assert b.names == ("model.txt",) and b.manifest["model_version"] == "v2"
    assert _siblings(good) == ["bundle"]  # no temp or old folder left behind


def test_overwrite_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(BundleError, match=r"refusing to replace .*not a bundle folder"):
        write_bundle(precious, {"model.txt": "x"}, {}, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "years of work"
    # An empty folder may be filled.
    (tmp_path / "empty").mkdir()
    write_bundle(tmp_path / "empty", {"model.txt": "x"}, {}, overwrite=True)
    assert read_bundle(tmp_path / "empty").names == ("model.txt",)


def _crash_on_call(monkeypatch, target, attr, n, exc):
    """Make target.attr raise exc on its n-th call, delegating every other call."""
    real = getattr(target, attr)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(target, attr, flaky)
    return calls


@pytest.mark.parametrize("exc, raised", [
    (OSError(errno.ENOSPC, "No space left on device"), BundleError),
    (KeyboardInterrupt(), KeyboardInterrupt),
])
def test_crash_mid_write_leaves_nothing(tmp_path, files, monkeypatch, exc, raised):
    calls = _crash_on_call(monkeypatch, bundle_mod, "_write_file", 2, exc)
    with pytest.raises(raised) as info:
        write_bundle(tmp_path / "bundle", files, MANIFEST)
    assert calls["n"] == 2
    if raised is BundleError:
        assert info.value.__cause__ is exc
    assert not os.path.lexists(tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []  # temp folder cleaned up


@pytest.mark.parametrize("where", ["file-writer", "exchange", "rename-new-into-place", "rename-old-aside"])
def test_crash_during_overwrite_keeps_old_bundle(good, monkeypatch, where):
    before = {x.name: x.read_bytes() for x in good.iterdir()}
    crash = OSError(errno.EIO, "Input/output error")
    if where not in ("file-writer", "exchange"):  # the two-rename fallback of systems without an exchange
        monkeypatch.setattr(bundle_mod, "_exchange", lambda a, b: False)
    if where == "file-writer":
        calls = _crash_on_call(monkeypatch, bundle_mod, "_write_file", 1, crash)
    elif where == "exchange":
        calls = _crash_on_call(monkeypatch, bundle_mod, "_exchange", 1, crash)
    elif where == "rename-old-aside":
        calls = _crash_on_call(monkeypatch, bundle_mod.os, "replace", 1, crash)
    else:  # old folder already renamed aside when this fails; it must be renamed back
        calls = _crash_on_call(monkeypatch, bundle_mod.os, "replace", 2, crash)
    with pytest.raises(BundleError, match=r"could not write bundle .*Input/output error"):
        write_bundle(good, {"model.txt": "new"}, {"model_version": "v2"}, overwrite=True)
    assert calls["n"] >= 1
    monkeypatch.undo()
    assert {x.name: x.read_bytes() for x in good.iterdir()} == before
    assert read_bundle(good).manifest["model_version"] == MANIFEST["model_version"]
    assert _siblings(good) == ["bundle"]


def test_hard_crash_never_leaves_a_partial_bundle(tmp_path, good):
    """A real crash (os._exit mid-write, no cleanup) leaves only a stale temp folder aside."""
    old = {x.name: x.read_bytes() for x in good.iterdir()}
    for target, overwrite in ((tmp_path / "fresh", False), (good, True)):
        code = textwrap.dedent(f"""
            import os, nextchannel.bundle as bm
            real, n = bm._write_file, [0]
            def dying(path, data):
                n[0] += 1
                if n[0] == 2:
                    os._exit(3)
                real(path, data)
            bm._write_file = dying
            bm.write_bundle({str(target)!r}, {{"a.txt": "a", "b.txt": "b"}}, {{}}, overwrite={overwrite})
        """)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 3, proc.stderr
    assert not os.path.lexists(tmp_path / "fresh")
    assert {x.name: x.read_bytes() for x in good.iterdir()} == old
    stale = [n for n in _siblings(good) if n != "bundle"]
    assert len(stale) == 2 and all(n.startswith((".fresh.tmp-", ".bundle.tmp-")) for n in stale), stale
    # Stale temp folders have no manifest (written last), so nobody mistakes them for bundles.
    assert all(not (tmp_path / n / "manifest.json").exists() for n in stale)


def test_reader_racing_a_replace_never_mixes_bundles(good, monkeypatch):
    """A replace that lands between a reader's manifest and its files: the reader retries on the new one."""
    new_files = {"offer_model.txt": "new model\n", "calibration.json": {"x": [1]}, "notes.bin": b"new"}
    real_read = bundle_mod._Folder.read
    state = {"swapped": False}

    def read_then_swap(self, name, *args, **kwargs):
        data = real_read(self, name, *args, **kwargs)
        if name == "manifest.json" and not state["swapped"]:
            state["swapped"] = True
            write_bundle(good, new_files, {"model_version": "v2"}, overwrite=True)
        return data

    monkeypatch.setattr(bundle_mod._Folder, "read", read_then_swap)
    b = read_bundle(good)
    assert state["swapped"]
    assert b.manifest["model_version"] == "v2"
    assert b.text("offer_model.txt") == "new model\n" and b.files["notes.bin"] == b"new"


# ---------------------------------------------------------------------------------------------
# Safety of the module itself
# ---------------------------------------------------------------------------------------------
def test_module_never_unpickles_or_executes():
    source = pathlib.Path(bundle_mod.__file__).read_text()
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not calls & {"eval", "exec", "compile", "__import__"}


# ---------------------------------------------------------------------------------------------
# Versioned publishing: <root>/<version>/ + an atomic `current` symlink
# ---------------------------------------------------------------------------------------------
def _hidden(folder: pathlib.Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


def test_publish_layout_and_current(tmp_path, good):
    root = tmp_path / "root"
    v = publish(good, root)
    assert v.parent == root and re.fullmatch(r"b-[0-9a-f]{16}", v.name)
    assert (root / "current").is_symlink() and os.readlink(root / "current") == v.name  # relative target
    assert current_version(root) == v.name and published_versions(root) == [v.name]
    # the published copy is byte-identical to the source, and the root reads as its current bundle
    assert {x.name: x.read_bytes() for x in v.iterdir()} == {x.name: x.read_bytes() for x in good.iterdir()}
    b = read_bundle(root)
    assert b.path == v and b.manifest["model_version"] == MANIFEST["model_version"]
    assert _hidden(root) == []


def test_publish_is_idempotent_and_rolls_back(tmp_path, good, files):
    root = tmp_path / "root"
    v1 = publish(good, root)
    mtime = (root / "current").lstat().st_mtime_ns
    assert publish(good, root) == v1                        # same bytes: the same version, no flip
    assert (root / "current").lstat().st_mtime_ns == mtime and published_versions(root) == [v1.name]
    v2 = publish_files({**files, "offer_model.txt": "other\n"}, MANIFEST, root)
    assert v2 != v1 and current_version(root) == v2.name
    assert publish(good, root) == v1 and current_version(root) == v1.name  # republishing old bytes: rollback
    assert published_versions(root) == [v1.name, v2.name]


def test_publish_keeps_the_newest_versions(tmp_path, files):
    root = tmp_path / "root"
    published = [publish_files({**files, "offer_model.txt": f"model {i}\n"}, MANIFEST, root, keep=3).name
                 for i in range(6)]
    assert published_versions(root) == published[::-1][:3]
    assert current_version(root) == published[-1] and _hidden(root) == []
    publish_files(files, MANIFEST, root, keep=1)
    assert len(published_versions(root)) == 1


@pytest.mark.parametrize("version, match", [
    ("current", r"version must be a plain name"), (".hidden", r"version must be a plain name"),
    ("a/b", r"version must be a plain name"), (7, r"version must be a plain name"),
])
def test_publish_refuses_bad_versions(tmp_path, files, version, match):
    with pytest.raises(ValidationError, match=match):
        publish_files(files, MANIFEST, tmp_path / "root", version=version)


def test_publish_refuses_other_content_under_an_existing_version(tmp_path, files):
    root = tmp_path / "root"
    publish_files(files, MANIFEST, root, version="v1")
    with pytest.raises(BundleError, match=r"version 'v1' is already published .* with other content"):
        publish_files({**files, "offer_model.txt": "other\n"}, MANIFEST, root, version="v1")
    with pytest.raises(ValidationError, match=r"keep must be an int >= 1, got 0"):
        publish_files(files, MANIFEST, root, keep=0)
    with pytest.raises(BundleError, match=r"is itself a bundle folder"):
        publish_files(files, MANIFEST, root / "v1")


def test_publish_and_save_clean_up_after_dead_writers(tmp_path, good, files):
    root = tmp_path / "root"
    publish(good, root)
    # what a publisher killed at the worst moments leaves behind
    (root / ".tmp-b-0123.tmp-abcdef").mkdir()
    (root / ".trash-b-0456-abcd").mkdir()
    os.symlink("nowhere", root / ".current.tmp-abcdef")
    (tmp_path / ".bundle.tmp-abcdef").mkdir()
    (tmp_path / ".bundle.old-abcdef").mkdir()
    (tmp_path / ".bundle.old-abcdef" / "manifest.json").write_text("{}")
    publish_files(files, {"model_version": "x"}, root)
    assert _hidden(root) == []
    write_bundle(good, files, MANIFEST, overwrite=True)
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".bundle")) == []


def test_overwrite_exchanges_without_a_missing_moment(good, monkeypatch, files):
    """A plain-path overwrite is one atomic exchange: `path` exists at every instant."""
    seen = []
    real = bundle_mod._exchange

    def watch(a, b):
        ok = real(a, b)
        seen.append((ok, os.path.isdir(b), (b / "manifest.json").exists()))
        return ok

    monkeypatch.setattr(bundle_mod, "_exchange", watch)
    monkeypatch.setattr(bundle_mod.os, "replace", lambda *a: pytest.fail("no rename may leave a window"))
    write_bundle(good, {**files, "offer_model.txt": "v2\n"}, MANIFEST, overwrite=True)
    assert seen == [(True, True, True)]
    assert read_bundle(good).text("offer_model.txt") == "v2\n" and _siblings(good) == ["bundle"]


def test_signed_publish_and_require_signature(tmp_path, good, monkeypatch):
    root = tmp_path / "root"
    v = publish(good, root, key="training-key")
    assert read_bundle(root, require_signature=True, key="training-key").path == v
    with pytest.raises(BundleError, match=r"signed with another key"):
        read_bundle(root, require_signature=True, key="another-key")
    with pytest.raises(BundleError, match=r"is not signed; require_signature=True refuses unsigned"):
        read_bundle(good, require_signature=True, key="training-key")
    with pytest.raises(ValidationError, match=r"require_signature=True needs the key"):
        read_bundle(good, require_signature=True)
    # the environment variable is the default key, for signing and for checking
    monkeypatch.setenv("NEXTCHANNEL_BUNDLE_KEY", "training-key")
    assert read_bundle(root, require_signature=True).path == v
    # tampering with recomputed checksums is caught by the signature
    m = _manifest(v)
    (v / "offer_model.txt").write_text("evil\n")
    m["files"]["offer_model.txt"] = {"sha256": file_sha256(v / "offer_model.txt"), "bytes": 5}
    _rewrite_manifest(v, m)
    assert read_bundle(root).text("offer_model.txt") == "evil\n"   # checksums alone cannot tell
    with pytest.raises(BundleError, match=r"signature does not match its content"):
        read_bundle(root, require_signature=True)


def test_readers_never_fail_while_publishing(tmp_path, files):
    """Readers of the root in a loop while another thread publishes (and prunes) as fast as it can."""
    import threading

    root = tmp_path / "root"
    contents = [{**files, "offer_model.txt": f"model {i}\n"} for i in range(3)]
    publish_files(contents[0], MANIFEST, root)
    stop, failures, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            try:
                b = read_bundle(root)
                assert b.text("offer_model.txt").startswith("model ")
                reads[0] += 1
            except Exception as err:  # noqa: BLE001 - any failure counts
                failures.append(repr(err))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(60):
        publish_files(contents[i % 3], MANIFEST, root, keep=1)   # keep=1: every flip also deletes the old one
    stop.set()
    for t in threads:
        t.join()
    assert failures == [] and reads[0] > 0


def test_sigkill_during_publish_and_save_always_loads_and_leaves_nothing():
    """A sample of benchmarks/bench_publish_kill.py (100 kills per mode there): 20 SIGKILLs per mode."""
    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "bench_publish_kill.py"
    proc = subprocess.run([sys.executable, str(script), "--kills", "20", "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for r in json.loads(proc.stdout):
        assert r["killed_by_sigkill"] == 20, r          # the kills really landed mid-work
        assert r["failed_loads"] == 0, r
        assert r["stale_after_next_write"] == 0 and r["loads_after"], r


def test_duplicate_keys_are_found_in_one_pass_and_listed_briefly():
    pairs = ",".join(f'"k{i}": {i}' for i in range(20000))
    data = ("{" + pairs + "," + ",".join(f'"k{i}": 0' for i in range(7)) + "}").encode()
    with pytest.raises(ValueError, match=r"^duplicate keys \['k0', 'k1', 'k2', 'k3', 'k4'\] and 2 more$"):
        bundle_mod._strict_json_loads(data)


def test_oversized_file_is_refused_without_reading_it(good, monkeypatch):
    os.truncate(good / "notes.bin", bundle_mod.MAX_FILE_BYTES + 1)   # sparse: no disk used
    m = _manifest(good)
    m["files"]["notes.bin"]["bytes"] = bundle_mod.MAX_FILE_BYTES + 1
    _rewrite_manifest(good, m)
    with pytest.raises(BundleError, match=r"file 'notes\.bin' has \d+ bytes, more than the limit .*without reading"):
        read_bundle(good)


def test_pruning_never_touches_folders_that_are_not_bundles(tmp_path, files):
    root = tmp_path / "root"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "todo.txt").write_text("keep me")
    for i in range(3):
        publish_files({**files, "offer_model.txt": f"m{i}\n"}, MANIFEST, root, keep=1)
    assert (root / "notes" / "todo.txt").read_text() == "keep me" and len(published_versions(root)) == 1
