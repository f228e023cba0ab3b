"""A table of bad bundles made from models/default, each loaded in a subprocess: refused, naming the file.

Every variant is a copy of the shipped bundle with one thing wrong: each file missing, each file
with a flipped byte, symlinks, FIFOs, pickles, oversized and non-UTF-8 files, and model texts
altered *with their checksums recomputed* (what anyone who can write the folder can do), in the
ways that crash, hang or mislead LightGBM's native parser: a model cut mid-tree, leaves changed
without fixing ``tree_sizes``, CRLF line ends, a threshold ``abc``, ``num_leaves=2000000000``,
``left_child=9999``, a split on feature 100000, NaN leaves, leaves times -1e4, and more.

The loads run in subprocesses, a batch of variants each (one interpreter start per batch, not per
variant); a batch that crashes or hangs is resumed after the variant at fault, which is recorded as
a crash. For every variant: ``Scorer.load`` refuses it with a ``BundleError`` that names the file at
fault, the process survives, and ``nextchannel verify`` refuses it too (exit 1, same file named).
``benchmarks/bench_bad_bundles.py`` prints the table's totals.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Callable

import pytest

from nextchannel.bundle import canonical_json, file_sha256
from nextchannel.modelset import DEFAULT_BUNDLE

FILES = sorted(p.name for p in DEFAULT_BUNDLE.iterdir())   # manifest.json and the 14 data files
DATA_FILES = [n for n in FILES if n != "manifest.json"]
NATIVE_TARGETS = ["channel_accept.txt", "offer.txt", "value_phone.txt"]


# ---------------------------------------------------------------------------------------------
# Editing a bundle copy
# ---------------------------------------------------------------------------------------------
def _manifest(p: pathlib.Path) -> dict:
    return json.loads((p / "manifest.json").read_text())


def _recompute(p: pathlib.Path, name: str) -> None:
    """Make the manifest agree with the file again, as a tamperer would."""
    m = _manifest(p)
    m["files"][name] = {"sha256": file_sha256(p / name), "bytes": (p / name).stat().st_size}
    (p / "manifest.json").write_text(canonical_json(m))


def _write(p: pathlib.Path, name: str, data: bytes, recompute: bool = True) -> None:
    (p / name).write_bytes(data)
    if recompute:
        _recompute(p, name)


def _fix_tree_sizes(text: str) -> str:
    """Rewrite the header's tree_sizes to the blocks' real byte sizes (so only deeper checks can object)."""
    starts = [m.start() for m in re.finditer(r"(?m)^Tree=\d+$", text)]
    end = text.index("\nend of trees") + 1
    sizes = [len(text[a:b].encode()) for a, b in zip(starts, starts[1:] + [end])]
    return re.sub(r"(?m)^tree_sizes=.*$", "tree_sizes=" + " ".join(map(str, sizes)), text, count=1)


def _tree_span(text: str, k: int) -> tuple[int, int]:
    start = text.index(f"\nTree={k}\n") + 1
    nxt = text.find("\nTree=", start)
    return start, (nxt if nxt >= 0 else text.index("\nend of trees")) + 1


def _first_tree(text: str, predicate: Callable[[dict], bool]) -> int:
    k = 0
    while f"\nTree={k}\n" in text:
        a, b = _tree_span(text, k)
        fields = dict(line.split("=", 1) for line in text[a:b].split("\n")[1:] if "=" in line)
        if predicate(fields):
            return k
        k += 1
    raise AssertionError("no tree matches")


def _edit_field(name: str, field: str, fn: Callable[[str], str], tree: Callable[[dict], bool] = lambda f: True,
                fix_sizes: bool = True) -> Callable[[pathlib.Path], None]:
    """A breaker replacing ``field``'s value in the first tree matching ``tree`` of model file ``name``."""
    def breaker(p: pathlib.Path) -> None:
        text = (p / name).read_text()
        k = _first_tree(text, lambda f: int(f["num_leaves"]) > 2 and tree(f))
        a, b = _tree_span(text, k)
        block = re.sub(rf"(?m)^{field}=(.*)$", lambda m: f"{field}={fn(m.group(1))}", text[a:b], count=1)
        text = text[:a] + block + text[b:]
        _write(p, name, (_fix_tree_sizes(text) if fix_sizes else text).encode())
    return breaker


def _edit_text(name: str, fn: Callable[[str], str]) -> Callable[[pathlib.Path], None]:
    def breaker(p: pathlib.Path) -> None:
        _write(p, name, fn((p / name).read_text()).encode())
    return breaker


def _first(value: str, new: str) -> str:
    return " ".join([new] + value.split(" ")[1:])


def _cycle(value: str) -> str:
    """Point the first internal node's left child at the node itself (a loop LightGBM would walk for ever)."""
    left = value.split(" ")
    k = next(i for i, c in enumerate(left) if int(c) > 0)
    left[int(left[k])] = left[k]   # node c = left[k] gets c as its own left child
    return " ".join(left)


def _scale(value: str, factor: float) -> str:
    return " ".join(repr(float(x) * factor) for x in value.split(" "))


def _missing(name: str):
    return lambda p: (p / name).unlink()


def _flip(name: str):
    def breaker(p: pathlib.Path) -> None:
        raw = bytearray((p / name).read_bytes())
        raw[0 if name == "manifest.json" else len(raw) // 2] ^= 0x01  # the manifest's first '{' stops parsing
        (p / name).write_bytes(bytes(raw))
    return breaker


def _symlink(name: str):
    def breaker(p: pathlib.Path) -> None:
        outside = p.parent / f"outside-{name}"
        shutil.copy(p / name, outside)
        (p / name).unlink()
        os.symlink(outside, p / name)
    return breaker


def _fifo(name: str):
    def breaker(p: pathlib.Path) -> None:
        (p / name).unlink()
        os.mkfifo(p / name)
    return breaker


def _oversized(name: str, n_bytes: int, listed: bool):
    """A sparse file of ``n_bytes`` (no disk used); ``listed``: the manifest is edited to list that size."""
    def breaker(p: pathlib.Path) -> None:
        os.truncate(p / name, n_bytes)
        if listed:
            m = _manifest(p)
            m["files"][name]["bytes"] = n_bytes
            (p / "manifest.json").write_text(canonical_json(m))
    return breaker


def _non_utf8(name: str):
    def breaker(p: pathlib.Path) -> None:
        raw = (p / name).read_bytes()
        _write(p, name, raw[:40] + b"\xff\xfe" + raw[40:], recompute=name != "manifest.json")
    return breaker


def _stray(entry: str, make: Callable[[pathlib.Path], None]):
    return lambda p: make(p / entry)


def _manifest_edit(fn: Callable[[dict], None]):
    def breaker(p: pathlib.Path) -> None:
        m = _manifest(p)
        fn(m)
        (p / "manifest.json").write_text(canonical_json(m))
    return breaker


def _models_json_edit(fn: Callable[[dict], None]):
    def breaker(p: pathlib.Path) -> None:
        m = json.loads((p / "models.json").read_text())
        fn(m)
        _write(p, "models.json", canonical_json(m).encode())
    return breaker


def _pickled(name: str):
    return lambda p: _write(p, name, pickle.dumps({"evil": __import__("os").getcwd}))


# ---------------------------------------------------------------------------------------------
# The table: (id, breaker, the file the refusal must name)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    id: str
    breaker: Callable[[pathlib.Path], None]
    names: str


def _native(name: str) -> list[Variant]:
    """The variants that crashed, hung or misled the native parser before, on one model file."""
    return [
        Variant(f"{name}:cut-mid-tree", _edit_text(name, lambda t: t[: t.index("\nleaf_value=", t.index("Tree=3"))]),
                name),
        Variant(f"{name}:leaves-changed-tree-sizes-not", _edit_field(name, "leaf_value", lambda v: v + " 0.5",
                                                                     fix_sizes=False), name),
        Variant(f"{name}:crlf", _edit_text(name, lambda t: t.replace("\n", "\r\n")), name),
        Variant(f"{name}:threshold-abc", _edit_field(name, "threshold", lambda v: _first(v, "abc")), name),
        Variant(f"{name}:num-leaves-2e9", _edit_field(name, "num_leaves", lambda v: "2000000000"), name),
        Variant(f"{name}:left-child-9999", _edit_field(name, "left_child", lambda v: _first(v, "9999")), name),
        Variant(f"{name}:split-on-feature-100000", _edit_field(name, "split_feature", lambda v: _first(v, "100000")),
                name),
        Variant(f"{name}:leaves-nan", _edit_field(name, "leaf_value", lambda v: " ".join("nan" for _ in v.split())),
                name),
    ]


TABLE: list[Variant] = [
    *[Variant(f"missing:{n}", _missing(n), n) for n in FILES],
    *[Variant(f"flipped-byte:{n}", _flip(n), n) for n in FILES],
    *[Variant(f"symlink:{n}", _symlink(n), n) for n in ("manifest.json", "models.json", "channel_leave.txt",
                                                          "value_none.txt")],
    *[Variant(f"fifo:{n}", _fifo(n), n) for n in ("manifest.json", "policy.json", "offer.txt")],
    Variant("pickle:stray-model.pkl", _stray("model.pkl", lambda q: q.write_bytes(pickle.dumps([1]))), "model.pkl"),
    Variant("pickle:as-models.json", _pickled("models.json"), "models.json"),
    Variant("pickle:as-channel_success.txt", _pickled("channel_success.txt"), "channel_success.txt"),
    Variant("oversized:models.json-500MB-unlisted", _oversized("models.json", 500 << 20, listed=False), "models.json"),
    Variant("oversized:models.json-500MB-listed", _oversized("models.json", 500 << 20, listed=True), "models.json"),
    Variant("oversized:manifest.json-100MB", _oversized("manifest.json", 100 << 20, listed=False), "manifest.json"),
    Variant("non-utf8:manifest.json", _non_utf8("manifest.json"), "manifest.json"),
    Variant("non-utf8:models.json", _non_utf8("models.json"), "models.json"),
    Variant("non-utf8:channel_leave.txt", _non_utf8("channel_leave.txt"), "channel_leave.txt"),
    Variant("stray-folder", _stray("extra", lambda q: q.mkdir()), "extra"),
    Variant("duplicate-json-key:policy.json", _edit_text("policy.json", lambda t: t.replace("{", '{"annoyance": 1,', 1)),
            "policy.json"),
    *[v for n in NATIVE_TARGETS for v in _native(n)],
    Variant("value_phone.txt:leaves-times-minus-1e4", _edit_field("value_phone.txt", "leaf_value",
                                                                  lambda v: _scale(v, -1e4)), "value_phone.txt"),
    Variant("value_none.txt:leaves-times-minus-1e4", _edit_field("value_none.txt", "leaf_value",
                                                                 lambda v: _scale(v, -1e4)), "value_none.txt"),
    Variant("value_chat.txt:leaf-1e400", _edit_field("value_chat.txt", "leaf_value", lambda v: _first(v, "1e400")),
            "value_chat.txt"),
    Variant("value_email.txt:cycle", _edit_field("value_email.txt", "left_child", _cycle), "value_email.txt"),
    Variant("value_email.txt:left-child-points-at-root", _edit_field("value_email.txt", "left_child",
                                                                     lambda v: " ".join(["0"] + v.split()[1:])),
            "value_email.txt"),
    Variant("channel_leave.txt:decision-type-99", _edit_field("channel_leave.txt", "decision_type",
                                                              lambda v: _first(v, "99")), "channel_leave.txt"),
    Variant("channel_leave.txt:split-feature-negative", _edit_field("channel_leave.txt", "split_feature",
                                                                    lambda v: _first(v, "-3")), "channel_leave.txt"),
    Variant("channel_success.txt:categorical-index-out-of-range",
            _edit_field("channel_success.txt", "cat_boundaries", lambda v: _first(v, "7"),
                        tree=lambda f: int(f["num_cat"]) > 0), "channel_success.txt"),
    Variant("channel_success.txt:counts-do-not-add-up", _edit_field("channel_success.txt", "internal_count",
                                                                    lambda v: _first(v, str(int(v.split()[0]) + 1))),
            "channel_success.txt"),
    Variant("value_messaging.txt:unknown-field", _edit_field("value_messaging.txt", "shrinkage",
                                                             lambda v: v + "\nevil=1"), "value_messaging.txt"),
    Variant("value_messaging.txt:field-twice", _edit_field("value_messaging.txt", "shrinkage",
                                                           lambda v: v + "\nshrinkage=1"), "value_messaging.txt"),
    Variant("value_self_service.txt:features-renamed", _edit_text("value_self_service.txt",
                                                                  lambda t: t.replace("feature_names=dwell_current_s",
                                                                                      "feature_names=evil", 1)),
            "value_self_service.txt"),
    Variant("value_callback.txt:linear-tree", _edit_field("value_callback.txt", "is_linear", lambda v: "1"),
            "value_callback.txt"),
    Variant("offer.txt:pandas-categorical-deep", _edit_text("offer.txt", lambda t: t.replace(
        "pandas_categorical:null", "pandas_categorical:" + "[" * 100000 + "]" * 100000)), "offer.txt"),
    Variant("models.json:feature-list-wrong", _models_json_edit(lambda m: m["value_model"]["input_features"].reverse()),
            "value_"),
    Variant("manifest.json:format-version-99", _manifest_edit(lambda m: m.__setitem__("format_version", 99)),
            "manifest.json"),
    Variant("manifest.json:model-version-tampered", _manifest_edit(lambda m: m.__setitem__("model_version", "m-0")),
            "manifest.json"),
]

_BATCH_CODE = textwrap.dedent("""
    import contextlib, io, json, sys
    from nextchannel.cli import main
    from nextchannel.scorer import Scorer
    for path in sys.argv[1:]:
        try:
            scorer = Scorer.load(path)
            load = {"status": "loaded", "type": None, "message": ""}
            # what serving would get from a bundle that loaded: one decision (a hang shows as a hung batch)
            d = scorer.decide_one({"session_id": "probe", "ts": 5.0})
            load["nan_in_normal_decision"] = d.fallback is None and not all(v - v == 0 for v in d.ev.values())
        except Exception as err:
            load = {"status": "refused", "type": type(err).__name__, "message": str(err)[:2000]}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(["verify", path])
        print(json.dumps({"path": path, "load": load, "verify_rc": rc, "verify_out": out.getvalue()[:2000],
                          "package": __import__("nextchannel").__file__}), flush=True)
""")


def build(folder: pathlib.Path, table: list[Variant] = TABLE) -> dict[str, pathlib.Path]:
    """Make each variant as a broken copy of models/default under ``folder``."""
    paths = {}
    for i, v in enumerate(table):
        p = folder / f"v{i:03d}" / "bundle"
        shutil.copytree(DEFAULT_BUNDLE, p)
        v.breaker(p)
        paths[v.id] = p
    return paths


def load_all(paths: dict[str, pathlib.Path], batch: int = 40, timeout_s: float = 120.0) -> dict[str, dict]:
    """Load and verify every path in subprocesses, ``batch`` per process; crashes and hangs are attributed."""
    ids = list(paths)
    results: dict[str, dict] = {}
    pos = 0
    while pos < len(ids):
        chunk = ids[pos:pos + batch]
        # cwd: the variants' folder, so that the package comes from the install (or $PYTHONPATH), not the cwd
        proc = subprocess.Popen([sys.executable, "-c", _BATCH_CODE, *(str(paths[i]) for i in chunk)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                cwd=os.path.commonpath([str(p) for p in paths.values()]))
        try:
            out, err = proc.communicate(timeout=timeout_s)
            hung = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            hung = True
        done = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for vid, r in zip(chunk, done):
            results[vid] = {**r, "crash": None}
        pos += len(done)
        if len(done) < len(chunk):  # the next variant killed or hung the process
            results[chunk[len(done)]] = {"crash": "hang" if hung else f"exit {proc.returncode}",
                                         "stderr": err[-500:]}
            pos += 1
    return results


def judge(variant: Variant, r: dict) -> list[str]:
    """What is wrong with the outcome of one variant (empty: refused as it should be)."""
    if r.get("crash"):
        return [f"process {r['crash']}"]
    wrong = []
    load = r["load"]
    if load["status"] != "refused":
        wrong.append("loaded")
    elif load["type"] != "BundleError":
        wrong.append(f"refused with {load['type']}, not BundleError")
    elif variant.names not in load["message"]:
        wrong.append(f"refusal does not name {variant.names!r}: {load['message'][:200]}")
    if r["verify_rc"] != 1:
        wrong.append(f"verify exited {r['verify_rc']}")
    elif variant.names not in r["verify_out"]:
        wrong.append(f"verify does not name {variant.names!r}")
    return wrong


def test_table_is_large_and_every_variant_breaks_the_bundle():
    assert len(TABLE) >= 70 and len({v.id for v in TABLE}) == len(TABLE)


def test_every_bad_bundle_is_refused_in_a_subprocess_naming_the_file(tmp_path):
    paths = build(tmp_path)
    # the good bundle, through the same machinery: it must load (else every refusal would be vacuous)
    shutil.copytree(DEFAULT_BUNDLE, tmp_path / "good")
    results = load_all({**paths, "good": tmp_path / "good"})
    good = results.pop("good")
    assert good["crash"] is None and good["load"]["status"] == "loaded" and good["verify_rc"] == 0, good
    problems = {v.id: judge(v, results[v.id]) for v in TABLE}
    assert {k: p for k, p in problems.items() if p} == {}
