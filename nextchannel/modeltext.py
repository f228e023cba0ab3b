"""LightGBM model text checked in pure Python before any native parser sees it.

Where it sits: bundle (verified bytes) → **model text check** → ``lightgbm.Booster`` /
:class:`~nextchannel.fastpredict.FastBooster` → scorer. LightGBM's C++ parser trusts its input:
it parses trees inside an OpenMP loop where a parse error calls ``std::terminate`` (a model cut
mid-tree, leaf arrays that disagree with ``tree_sizes``, CRLF line ends, a threshold ``abc``), it
allocates whatever ``num_leaves`` says, and its tree walk follows child indices without bounds
(``left_child=9999`` loops for ever or reads out of bounds; so does a split on feature 100000).
A bundle's checksums do not help when whoever altered a model also recomputed them.

:func:`check_model_text` therefore accepts only text of the shape LightGBM itself writes
(``Booster.model_to_string()``, format ``v4``) and proves every tree sound: the header's counts
agree with each other and with the caller's feature names; ``tree_sizes`` matches the blocks
byte for byte; every field of every tree is known, appears once, has the exact length and only
finite decimal numbers; split features are within the model's features; decision types are
known; categorical splits index their bitsets in range; child indices form one proper binary
tree from the root that reaches every leaf exactly once (each child numbered after its parent, as
LightGBM numbers them, so no cycle; no orphan; bounded depth);
data counts are positive and add up from the leaves to the root. An error names the file, the
tree and the field. It also returns each output's possible range (the sums of the trees'
smallest and largest leaves), which bounds every prediction the model can make.

Examples
--------
>>> import numpy as np, lightgbm as lgb
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 3)); y = X[:, 0] + rng.normal(size=200)
>>> b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y),
...               num_boost_round=5)
>>> info = check_model_text(b.model_to_string(), where="model.txt", feature_names=["Column_0", "Column_1", "Column_2"])
>>> info.num_trees, info.feature_names[0]
(5, 'Column_0')
>>> lo, hi = info.output_range[0]
>>> bool(lo <= b.predict(X).min() and b.predict(X).max() <= hi)
True
>>> check_model_text(b.model_to_string().replace("left_child=", "left_child=9999 ", 1), where="model.txt")
Traceback (most recent call last):
...
nextchannel.errors.BundleError: model.txt: tree 0: does not end where tree_sizes says (byte ...): the tree's text was changed without fixing tree_sizes, or cut
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from nextchannel.errors import BundleError

__all__ = ["ModelTextSummary", "check_model_text", "MAX_MODEL_TEXT_BYTES", "MAX_TREES", "MAX_LEAVES",
           "MAX_TREE_DEPTH", "MAX_FEATURES"]

#: Largest model text accepted (bytes).
MAX_MODEL_TEXT_BYTES = 256 << 20
#: Most trees in one model.
MAX_TREES = 200_000
#: Most leaves in one tree (LightGBM's own upper limit of ``num_leaves``).
MAX_LEAVES = 131_072
#: Deepest tree accepted: LightGBM's SHAP contributions recurse and allocate by depth.
MAX_TREE_DEPTH = 1_000
#: Most input features of one model.
MAX_FEATURES = 100_000
#: Most classes (outputs) of one model.
MAX_CLASSES = 10_000

# The objectives nextchannel may train, with "key:number" options as LightGBM writes them.
_OBJECTIVES = frozenset({
    "regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie",
    "binary", "multiclass", "multiclassova", "cross_entropy", "cross_entropy_lambda", "lambdarank",
    "rank_xendcg", "custom",
})
_HEADER_KEYS = frozenset({"version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx",
                          "objective", "average_output", "feature_names", "monotone_constraints",
                          "feature_infos", "tree_sizes"})
_TREE_KEYS = ("num_leaves", "num_cat", "split_feature", "split_gain", "threshold", "decision_type",
              "left_child", "right_child", "leaf_value", "leaf_weight", "leaf_count", "internal_value",
              "internal_weight", "internal_count", "cat_boundaries", "cat_threshold", "is_linear", "shrinkage")
_TREE_KEY_SET = frozenset(_TREE_KEYS)
# Per internal node (num_leaves - 1 numbers) and per leaf (num_leaves numbers); all required.
_NODE_INT = ("split_feature", "decision_type", "left_child", "right_child", "internal_count")
_NODE_FLOAT = ("split_gain", "internal_value", "internal_weight")
_LEAF_INT = ("leaf_count",)
_LEAF_FLOAT = ("leaf_value", "leaf_weight")

# Decimal numbers exactly as LightGBM writes them; unambiguous, so matching is linear in the length.
_INT = r"-?[0-9]{1,10}"  # at most 10 digits: no value overflows int64 before the range checks
_FLOAT = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_INTS_RE = re.compile(rf"(?:{_INT}(?: {_INT})*)?")
_FLOATS_RE = re.compile(rf"(?:{_FLOAT}(?: {_FLOAT})*)?")
# Thresholds may be infinite: LightGBM writes ``inf`` for a split that only separates missing values.
_THRESHOLD = rf"(?:{_FLOAT}|-?inf)"
_THRESHOLDS_RE = re.compile(rf"(?:{_THRESHOLD}(?: {_THRESHOLD})*)?")
_INT_RE = re.compile(_INT)
_FEATURE_NAME_RE = re.compile(r"[^\s=]+")
_FEATURE_INFO_RE = re.compile(rf"none|\[{_FLOAT}:{_FLOAT}\]|{_INT}(?::{_INT})*")
_OBJECTIVE_OPTION_RE = re.compile(rf"[a-z_]+:{_FLOAT}")
_IMPORTANCE_RE = re.compile(r"[^\s=]+=[0-9]+")
_PARAMETER_RE = re.compile(r"\[([a-z_0-9]+): ([^\n]*)\]")
# The lightgbm package reads the parameters back (``LGBM_BoosterGetLoadedParam``): LightGBM parses
# the numeric ones with its own number parser (a fatal "Unknown token" on anything else) and the
# package json-decodes the result (control characters break it). So a parameter's value must be a
# plain decimal number where LightGBM writes one, and otherwise plain printable text.
_NUMERIC_PARAMETERS = frozenset("""
    num_iterations learning_rate num_leaves num_threads seed deterministic force_col_wise force_row_wise
    histogram_pool_size max_depth min_data_in_leaf min_sum_hessian_in_leaf bagging_fraction
    pos_bagging_fraction neg_bagging_fraction bagging_freq bagging_seed bagging_by_query feature_fraction
    feature_fraction_bynode feature_fraction_seed extra_trees extra_seed early_stopping_round
    early_stopping_min_delta first_metric_only max_delta_step lambda_l1 lambda_l2 linear_lambda
    min_gain_to_split drop_rate max_drop skip_drop xgboost_dart_mode uniform_drop drop_seed top_rate
    other_rate min_data_per_group max_cat_threshold cat_l2 cat_smooth max_cat_to_onehot top_k
    monotone_penalty refit_decay_rate cegb_tradeoff cegb_penalty_split path_smooth verbosity
    saved_feature_importance_type use_quantized_grad num_grad_quant_bins quant_train_renew_leaf
    stochastic_rounding linear_tree max_bin min_data_in_bin bin_construct_sample_cnt data_random_seed
    is_enable_sparse enable_bundle use_missing zero_as_missing feature_pre_filter pre_partition two_round
    header precise_float_parser objective_seed num_class is_unbalance scale_pos_weight sigmoid
    boost_from_average reg_sqrt alpha fair_c poisson_max_delta_step tweedie_variance_power
    lambdarank_truncation_level lambdarank_norm lambdarank_position_bias_regularization multi_error_top_k
    num_machines local_listen_port time_out gpu_platform_id gpu_device_id gpu_use_dp num_gpu""".split())
_NUMBER_RE = re.compile(_FLOAT)
_INDEX_LIST_RE = re.compile(r"(?:[0-9]{1,9}(?:,[0-9]{1,9})*)?")
_PARAMETER_TEXT_RE = re.compile(r"[A-Za-z0-9_.,:;+\-/ ]*")  # no brackets: one line holds one parameter
_INT32_MAX = 2**31 - 1
_UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class ModelTextSummary:
    """What :func:`check_model_text` learned about a sound model text.

    Attributes
    ----------
    num_trees : int
    num_class : int
    num_tree_per_iteration : int
    feature_names : tuple of str
    output_range : tuple of (float, float)
        Per output (class), the smallest and largest raw score any input can produce: the sums over
        that output's trees of their smallest and largest leaf values (divided by the number of
        iterations for ``average_output`` models).
    """

    num_trees: int
    num_class: int
    num_tree_per_iteration: int
    feature_names: tuple[str, ...]
    output_range: tuple[tuple[float, float], ...]


class _Refuse(Exception):
    pass


def check_model_text(text: str | bytes, *, where: str = "model text", feature_names: Sequence[str] | None = None,
                     max_bytes: int = MAX_MODEL_TEXT_BYTES) -> ModelTextSummary:
    """Check LightGBM model text completely, in Python; refuse it unless every tree is sound.

    Parameters
    ----------
    text : str or bytes
        The model text (UTF-8), as ``Booster.model_to_string()`` writes it.
    where : str, default "model text"
        How to name the text in errors (a bundle passes the file name).
    feature_names : sequence of str, optional
        The features the caller will feed, in order; the model's must be exactly these.
    max_bytes : int
        Largest text accepted.

    Returns
    -------
    ModelTextSummary

    Raises
    ------
    BundleError
        Naming ``where``, the tree and the field at fault.

    Examples
    --------
    >>> check_model_text("tree\\nversion=v4\\n", where="offer.txt")
    Traceback (most recent call last):
    ...
    nextchannel.errors.BundleError: offer.txt: model text is incomplete: no trees and no 'end of trees' line
    """
    names = None if feature_names is None else tuple(feature_names)
    key = None
    try:
        if isinstance(text, (str, bytes, bytearray)) and len(text) <= max_bytes:
            raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
            key = (hashlib.sha256(raw).hexdigest(), max_bytes)
            hit = _PROVEN.get(key)
            if hit is not None:
                _check_names(hit.feature_names, names)  # what _check would find first in a sound text
                return hit
        summary = _check(text, names, max_bytes)
    except _Refuse as err:
        raise BundleError(f"{where}: {err}") from None
    if key is not None:
        with _PROVEN_LOCK:
            if len(_PROVEN) >= 512:
                _PROVEN.clear()
            _PROVEN[key] = summary
    return summary


# Texts already proven sound, by (sha256, limit): the check is a pure function of these and of the
# expected feature names (compared again on a hit), so reloading a bundle whose models did not change
# (and the scorer's FastBoosters built from them) skips proving them again. Only sound texts are remembered.
_PROVEN: dict[tuple[str, int], ModelTextSummary] = {}
_PROVEN_LOCK = threading.Lock()


def _check(text: str | bytes, feature_names: Sequence[str] | None, max_bytes: int) -> ModelTextSummary:
    if isinstance(text, str):
        if len(text) > max_bytes:
            raise _Refuse(f"model text has {len(text)} characters, more than the limit of {max_bytes} bytes")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise _Refuse(f"model text is not encodable as UTF-8 ({err.reason})") from None
    elif isinstance(text, (bytes, bytearray)):
        data = bytes(text)
    else:
        raise _Refuse(f"model text must be str or bytes, got {type(text).__name__}")
    if len(data) > max_bytes:
        raise _Refuse(f"model text has {len(data)} bytes, more than the limit of {max_bytes}")
    if b"\r" in data:
        line = data.count(b"\n", 0, data.index(b"\r")) + 1
        raise _Refuse(f"model text has a CR character on line {line} (CRLF line ends?); LightGBM model text "
                      f"uses LF line ends only")
    if b"\x00" in data:
        raise _Refuse("model text holds a NUL byte")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Refuse(f"model text is not UTF-8 ({err.reason} at byte {err.start})") from None

    if not data.startswith(b"tree\n"):
        raise _Refuse(f"model text must start with the line 'tree', got {_excerpt(data[:20].decode('utf-8'))}")
    first = data.find(b"\nTree=")
    header_end = first + 1 if first >= 0 else data.find(b"\nend of trees")
    if header_end < 0:
        raise _Refuse("model text is incomplete: no trees and no 'end of trees' line")
    header = _header(data[:header_end].decode("utf-8"))
    n_features, names = _header_features(header, feature_names)
    num_class = _header_int(header, "num_class", 1, MAX_CLASSES)
    per_iter = _header_int(header, "num_tree_per_iteration", 1, MAX_CLASSES) \
        if "num_tree_per_iteration" in header else num_class
    _header_int(header, "label_index", 0, _INT32_MAX)
    _check_objective(header.get("objective"))
    sizes_text = header.get("tree_sizes")
    if sizes_text is None:
        raise _Refuse("header has no 'tree_sizes' line (LightGBM writes one; without it the trees cannot be "
                      "checked block by block)")
    if not _INTS_RE.fullmatch(sizes_text):
        raise _Refuse(f"header field 'tree_sizes' must hold positive integers, got {_excerpt(sizes_text)}")
    sizes = [int(tok) for tok in sizes_text.split()]
    if len(sizes) > MAX_TREES:
        raise _Refuse(f"header field 'tree_sizes' lists {len(sizes)} trees, more than the limit of {MAX_TREES}")
    if len(sizes) % per_iter:
        raise _Refuse(f"the model has {len(sizes)} trees, not a multiple of num_tree_per_iteration={per_iter}")

    trees: list[dict[str, str]] = []
    pos = header_end
    for i, size in enumerate(sizes):
        if size <= 0 or pos + size > len(data):
            raise _Refuse(f"tree {i}: tree_sizes says {size} bytes from byte {pos}, but the text ends at byte "
                          f"{len(data)} (cut mid-tree?)")
        block = data[pos:pos + size]
        if not block.startswith(b"Tree=%d\n" % i):
            raise _Refuse(f"tree {i}: does not start where tree_sizes says (byte {pos}): the trees' text was "
                          f"changed without fixing tree_sizes, or cut")
        if not block.endswith(b"\n\n"):
            raise _Refuse(f"tree {i}: does not end where tree_sizes says (byte {pos + size}): the tree's text was "
                          f"changed without fixing tree_sizes, or cut")
        if not block.isascii():
            raise _Refuse(f"tree {i}: holds non-ASCII bytes")
        trees.append(_tree_fields(block.decode("ascii"), i))
        pos += size
    leaves = _check_trees(trees, n_features)
    lo = np.zeros(per_iter)
    hi = np.zeros(per_iter)
    for i, values in enumerate(leaves):
        lo[i % per_iter] += values.min()
        hi[i % per_iter] += values.max()
    rest = data[pos:]
    stripped = rest.lstrip(b"\n")
    if not stripped.startswith(b"end of trees\n") and stripped != b"end of trees":
        raise _Refuse(f"text after the last tree (byte {pos}) must be 'end of trees', got "
                      f"{_excerpt(stripped[:60].decode('utf-8', 'replace'))} (do tree_sizes match the trees?)")
    _check_trailer(stripped.decode("utf-8").split("\n")[1:])
    if "average_output" in header and sizes:
        lo, hi = lo / (len(sizes) // per_iter), hi / (len(sizes) // per_iter)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise _Refuse("the sums of the trees' leaf values overflow to infinity")
    return ModelTextSummary(num_trees=len(sizes), num_class=num_class, num_tree_per_iteration=per_iter,
                            feature_names=names, output_range=tuple(zip(lo.tolist(), hi.tolist())))


def _excerpt(value: Any, n: int = 40) -> str:
    s = str(value)
    return repr(s if len(s) <= n else s[:n] + "…")


def _header(text: str) -> dict[str, str]:
    lines = text.split("\n")
    if lines[0] != "tree":
        raise _Refuse(f"model text must start with the line 'tree', got {_excerpt(lines[0])}")
    header: dict[str, str] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or key not in _HEADER_KEYS:
            raise _Refuse(f"header line {n} must be 'key=value' with a known key, got {_excerpt(line)}")
        if key in header:
            raise _Refuse(f"header field {key!r} appears twice")
        if "=" in value:
            raise _Refuse(f"header field {key!r} holds a second '=' ({_excerpt(value)})")
        header[key] = value
    if header.get("version") != "v4":
        raise _Refuse(f"header field 'version' must be 'v4' (LightGBM 4 text), got {_excerpt(header.get('version'))}")
    return header


def _header_int(header: dict[str, str], key: str, lo: int, hi: int) -> int:
    value = header.get(key)
    if value is None:
        raise _Refuse(f"header has no {key!r} line")
    if not _INT_RE.fullmatch(value) or not lo <= int(value) <= hi:
        raise _Refuse(f"header field {key!r} must be an integer in [{lo}, {hi}], got {_excerpt(value)}")
    return int(value)


def _header_features(header: dict[str, str], expected: Sequence[str] | None) -> tuple[int, tuple[str, ...]]:
    n = _header_int(header, "max_feature_idx", 0, MAX_FEATURES - 1) + 1
    names = tuple(header.get("feature_names", "").split(" ")) if header.get("feature_names") else ()
    if len(names) != n or not all(_FEATURE_NAME_RE.fullmatch(x) for x in names):
        raise _Refuse(f"header field 'feature_names' must list max_feature_idx + 1 = {n} names, got {len(names)}")
    infos = header.get("feature_infos", "").split(" ")
    if len(infos) != n:
        raise _Refuse(f"header field 'feature_infos' must list {n} entries, got {len(infos)}")
    bad = next((x for x in infos if not _FEATURE_INFO_RE.fullmatch(x)), None)
    if bad is not None:
        raise _Refuse(f"header field 'feature_infos' has a malformed entry {_excerpt(bad)}")
    if "monotone_constraints" in header:
        mono = header["monotone_constraints"].split(" ")
        if len(mono) != n or any(x not in ("-1", "0", "1") for x in mono):
            raise _Refuse(f"header field 'monotone_constraints' must list {n} values of -1, 0 or 1")
    _check_names(names, expected)
    return n, names


def _check_names(names: tuple[str, ...], expected: Sequence[str] | None) -> None:
    if expected is not None:
        expected = tuple(expected)
        if names != expected:
            diff = next((i for i, (a, b) in enumerate(zip(names, expected)) if a != b), min(len(names), len(expected)))
            raise _Refuse(f"the model's {len(names)} features differ from the {len(expected)} the bundle expects "
                          f"(first difference at position {diff})")


def _check_objective(value: str | None) -> None:
    if value is None:
        return
    tokens = value.split(" ")
    if tokens[0] not in _OBJECTIVES or not all(_OBJECTIVE_OPTION_RE.fullmatch(t) for t in tokens[1:]):
        raise _Refuse(f"header field 'objective' is not one LightGBM writes: {_excerpt(value)}")


def _check_trailer(lines: list[str]) -> None:
    section = "importances"
    for n, line in enumerate(lines):
        if not line:
            continue
        if line in ("feature_importances:", "parameters:", "end of parameters"):
            section = line
            continue
        if line.startswith("pandas_categorical:"):
            _check_pandas_categorical(line[len("pandas_categorical:"):])
            section = "end"
            continue
        if section == "parameters:" and _PARAMETER_RE.fullmatch(line) and len(line) < 100_000:
            _check_parameter(line)
        elif not (section == "feature_importances:" and _IMPORTANCE_RE.fullmatch(line)):
            raise _Refuse(f"unexpected line after 'end of trees': {_excerpt(line)}")


def _check_parameter(line: str) -> None:
    name, value = _PARAMETER_RE.fullmatch(line).groups()
    if name in _NUMERIC_PARAMETERS:
        ok, want = _NUMBER_RE.fullmatch(value), "a decimal number"
    elif name == "categorical_feature":  # read back as JSON without quotes
        ok, want = _INDEX_LIST_RE.fullmatch(value), "comma-separated feature indices"
    else:
        ok, want = _PARAMETER_TEXT_RE.fullmatch(value), "letters, digits and _.,:;+-/ only"
    if not ok:
        raise _Refuse(f"parameter {name!r} must be {want} (LightGBM reads it back), got {_excerpt(value)}")


def _check_pandas_categorical(value: str) -> None:
    # The lightgbm package json-parses this line itself; refuse what it could choke on.
    if len(value) > 1_000_000:
        raise _Refuse("the pandas_categorical line is longer than 1,000,000 characters")
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        raise _Refuse(f"the pandas_categorical line is not JSON: {_excerpt(value)}") from None
    if obj is not None and not (isinstance(obj, list) and all(
            isinstance(levels, list) and all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                             for x in levels) for levels in obj)):
        raise _Refuse("the pandas_categorical line must be null or a list of lists of category levels")


_PATTERNS = {"int": (_INTS_RE, _INT, "integers"), "float": (_FLOATS_RE, _FLOAT, "finite decimal numbers"),
             "threshold": (_THRESHOLDS_RE, _THRESHOLD, "decimal numbers (or inf)")}
_DTYPES = {"int": np.int64, "float": np.float64, "threshold": np.float64}


def _numbers(fields: dict[str, str], key: str, n: int, kind: str, tree: int, what: str) -> np.ndarray:
    """One tree's field as an array of exactly ``n`` numbers of ``kind``."""
    value = fields.get(key)
    if value is None:
        raise _Refuse(f"tree {tree}: field {key!r} is missing")
    pattern, token, expected = _PATTERNS[kind]
    if not pattern.fullmatch(value):
        bad = next((t for t in value.split(" ") if not re.fullmatch(token, t)), value)
        raise _Refuse(f"tree {tree}: field {key!r} must hold {expected}, got {_excerpt(bad)}")
    tokens = value.split(" ") if value else []
    if len(tokens) != n:
        raise _Refuse(f"tree {tree}: field {key!r} must hold {n} numbers ({what}), got {len(tokens)}")
    out = np.array(tokens, dtype=_DTYPES[kind])
    if kind == "float" and not np.isfinite(out).all():
        raise _Refuse(f"tree {tree}: field {key!r} holds a number too large to be finite")
    return out


# A decimal token that may overflow a double: an exponent of three digits, or a very long token.
_MAY_OVERFLOW_RE = re.compile(r"[eE][-+]?[0-9]{3}|[^ ]{31}")


def _field_arrays(trees: list[dict[str, str]], index: list[int], key: str, lengths: list[int], kind: str,
                  what: str, convert: bool = True) -> list[np.ndarray]:
    """Field ``key`` of the trees ``index`` (of ``lengths`` numbers each), checked in one pass over all of them.

    The fast path matches and converts the joined text once (``convert=False``: only checks it; a
    token of at most 30 characters with a two-digit exponent is always a finite double); on any
    failure the per-tree parser finds the tree at fault and says what is wrong with it.
    """
    values = [trees[i].get(key) for i in index]
    if not values:
        return []
    pattern = _PATTERNS[kind][0]
    if None not in values:
        joined = " ".join(values)
        counts = [v.count(" ") + 1 for v in values]
        if "" not in values and counts == lengths and pattern.fullmatch(joined):
            may_overflow = kind == "float" and _MAY_OVERFLOW_RE.search(joined) is not None
            if not convert and not may_overflow:
                return []
            if kind == "int":  # integers: numpy's C parser (already matched, so nothing is skipped)
                arr = np.fromstring(joined, dtype=np.int64, sep=" ")
            else:
                arr = np.array(joined.split(" "), dtype=np.float64)
            if kind != "float" or np.isfinite(arr).all():
                ends = np.cumsum(counts).tolist()
                return [arr[a:b] for a, b in zip([0, *ends[:-1]], ends)]
    for i, n in zip(index, lengths):
        _numbers(trees[i], key, n, kind, i, what)
    raise AssertionError("unreachable: the per-tree parser accepts what the batch parser refused")  # pragma: no cover


def _tree_fields(block: str, i: int) -> dict[str, str]:
    """The ``field=value`` lines of one tree block, with its scalar fields checked."""
    lines = block.split("\n")
    fields: dict[str, str] = {}
    end = 1
    while end < len(lines) and lines[end]:
        key, sep, value = lines[end].partition("=")
        if not sep or key not in _TREE_KEY_SET:
            raise _Refuse(f"tree {i}: line {end + 1} of the block must be 'field=numbers' with a known field, got "
                          f"{_excerpt(lines[end])}")
        if key in fields:
            raise _Refuse(f"tree {i}: field {key!r} appears twice")
        fields[key] = value
        end += 1
    if any(lines[end:]):
        raise _Refuse(f"tree {i}: text after the tree's blank line inside its tree_sizes bytes")
    num_leaves = _scalar_int(fields, "num_leaves", 1, MAX_LEAVES, i)
    _scalar_int(fields, "num_cat", 0, max(num_leaves - 1, 0), i)
    if fields.get("is_linear", "0") != "0":
        raise _Refuse(f"tree {i}: field 'is_linear' must be 0 (linear trees are not supported in bundles)")
    shrinkage = fields.get("shrinkage", "1")
    if not re.fullmatch(_FLOAT, shrinkage):
        raise _Refuse(f"tree {i}: field 'shrinkage' must be a finite decimal number, got {_excerpt(shrinkage)}")
    if num_leaves == 1:
        # LightGBM ignores the split fields of a one-leaf tree; they must be empty, as it writes them.
        for key in _NODE_INT + _NODE_FLOAT + ("threshold",):
            if fields.get(key):
                raise _Refuse(f"tree {i}: field {key!r} must be empty in a tree of one leaf")
    return fields


def _check_trees(trees: list[dict[str, str]], n_features: int) -> list[np.ndarray]:
    """Check every tree's arrays and structure; return each tree's leaf values."""
    num_leaves = [int(f["num_leaves"]) for f in trees]
    all_trees = list(range(len(trees)))
    leaf_values = _field_arrays(trees, all_trees, "leaf_value", num_leaves, "float", "num_leaves")
    split = [i for i in all_trees if num_leaves[i] > 1]
    nodes = [num_leaves[i] - 1 for i in split]
    leaves = [num_leaves[i] for i in split]
    arrays = {k: _field_arrays(trees, split, k, nodes, "int", "num_leaves - 1") for k in _NODE_INT}
    for k in _NODE_FLOAT:
        _field_arrays(trees, split, k, nodes, "float", "num_leaves - 1", convert=False)
    _field_arrays(trees, split, "threshold", nodes, "threshold", "num_leaves - 1", convert=False)
    arrays["leaf_count"] = _field_arrays(trees, split, "leaf_count", leaves, "int", "num_leaves")
    _field_arrays(trees, split, "leaf_weight", leaves, "float", "num_leaves", convert=False)
    for j, i in enumerate(split):
        _check_tree(trees[i], {k: v[j] for k, v in arrays.items()}, i, n_features)
    return leaf_values


def _check_tree(fields: dict[str, str], a: dict[str, np.ndarray], i: int, n_features: int) -> None:
    """The structure of one tree of two or more leaves, from its parsed arrays."""
    num_leaves = int(fields["num_leaves"])
    feat = a["split_feature"]
    if feat.min() < 0 or feat.max() >= n_features:
        bad = int(feat[(feat < 0) | (feat >= n_features)][0])
        raise _Refuse(f"tree {i}: field 'split_feature' splits on feature {bad}, but the model has {n_features} "
                      f"features (0..{n_features - 1})")
    dt = a["decision_type"]
    if dt.min() < 0 or dt.max() > 11 or ((dt >> 2) & 3).max() > 2:
        bad = int(dt[(dt < 0) | (dt > 11) | (((dt >> 2) & 3) > 2)][0])
        raise _Refuse(f"tree {i}: field 'decision_type' has unknown decision type {bad}")
    _check_categorical(fields, dt, int(fields["num_cat"]), i)
    _check_structure(a["left_child"], a["right_child"], num_leaves, i)
    _check_counts(a["internal_count"], a["leaf_count"], a["left_child"], a["right_child"], i)


def _scalar_int(fields: dict[str, str], key: str, lo: int, hi: int, tree: int) -> int:
    value = fields.get(key)
    if value is None:
        raise _Refuse(f"tree {tree}: field {key!r} is missing")
    if not _INT_RE.fullmatch(value) or len(value) > 11 or not lo <= int(value) <= hi:
        raise _Refuse(f"tree {tree}: field {key!r} must be an integer in [{lo}, {hi}], got {_excerpt(value)}")
    return int(value)


def _check_categorical(fields: dict[str, str], dt: np.ndarray, num_cat: int, i: int) -> None:
    is_cat = (dt & 1).astype(bool)
    if int(is_cat.sum()) != num_cat:
        raise _Refuse(f"tree {i}: field 'num_cat' is {num_cat}, but {int(is_cat.sum())} splits are categorical")
    if num_cat == 0:
        for key in ("cat_boundaries", "cat_threshold"):
            if fields.get(key):
                raise _Refuse(f"tree {i}: field {key!r} must be absent when num_cat is 0")
        return
    threshold = _numbers(fields, "threshold", len(dt), "threshold", i, "num_leaves - 1")
    cat_index = threshold[is_cat]
    if not np.array_equal(np.sort(cat_index), np.arange(num_cat)):
        raise _Refuse(f"tree {i}: field 'threshold' of the categorical splits must number them 0..{num_cat - 1}, "
                      f"once each")
    bounds = _numbers(fields, "cat_boundaries", num_cat + 1, "int", i, "num_cat + 1")
    if bounds[0] != 0 or (np.diff(bounds) <= 0).any() or bounds[-1] > 1_000_000:
        raise _Refuse(f"tree {i}: field 'cat_boundaries' must rise strictly from 0 (to at most 1,000,000)")
    words = _numbers(fields, "cat_threshold", int(bounds[-1]), "int", i, "cat_boundaries[-1]")
    if words.min() < 0 or words.max() > _UINT32_MAX:
        raise _Refuse(f"tree {i}: field 'cat_threshold' must hold 32-bit unsigned bitset words")


def _check_structure(left: np.ndarray, right: np.ndarray, num_leaves: int, i: int) -> None:
    """Children must form one binary tree rooted at node 0 that reaches every node and leaf exactly once."""
    n_nodes = num_leaves - 1
    children = np.concatenate([left, right])
    bad = children[(children < -num_leaves) | (children >= n_nodes)]
    if bad.size:
        field = "left_child" if int(bad[0]) in left.tolist() else "right_child"
        raise _Refuse(f"tree {i}: field {field!r} names child {int(bad[0])}, but the tree has {n_nodes} nodes "
                      f"(0..{n_nodes - 1}) and {num_leaves} leaves (-1..-{num_leaves})")
    # LightGBM numbers nodes in the order it creates them, so a child node's index is always greater
    # than its parent's. Requiring that rules out every cycle (indices rise along any path).
    idx = np.arange(n_nodes)
    for field, c in (("left_child", left), ("right_child", right)):
        back = (c >= 0) & (c <= idx)
        if back.any():
            j = int(np.flatnonzero(back)[0])
            raise _Refuse(f"tree {i}: field {field!r} of node {j} points at node {int(c[j])}, not a later node "
                          f"(a cycle, or a pointer back at the root)")
    nodes = children[children >= 0]
    leaves = ~children[children < 0]
    if np.bincount(nodes, minlength=n_nodes)[1:].tolist() != [1] * (n_nodes - 1) or \
            np.bincount(leaves, minlength=num_leaves).tolist() != [1] * num_leaves:
        raise _Refuse(f"tree {i}: fields 'left_child'/'right_child' must reach every node and every leaf exactly "
                      f"once (a node or leaf is shared or orphaned)")
    # Now every node but the root has one parent, of a smaller index: all are reachable from the root.
    if n_nodes > MAX_TREE_DEPTH:  # only then can the tree be too deep
        depth = [0] * n_nodes
        for node, (lc, rc) in enumerate(zip(left.tolist(), right.tolist())):
            for child in (lc, rc):
                if child >= 0:
                    depth[child] = depth[node] + 1
        if max(depth) + 1 > MAX_TREE_DEPTH:
            raise _Refuse(f"tree {i}: is deeper than {MAX_TREE_DEPTH} levels")


def _check_counts(internal: np.ndarray, leaf: np.ndarray, left: np.ndarray, right: np.ndarray, i: int) -> None:
    if leaf.min() < 0 or internal.min() <= 0 or internal.max() > _INT32_MAX:
        raise _Refuse(f"tree {i}: fields 'internal_count'/'leaf_count' must be counts (> 0 at nodes, >= 0 at leaves)")

    def count(c: np.ndarray) -> np.ndarray:
        return np.where(c >= 0, internal[np.maximum(c, 0)], leaf[np.where(c < 0, ~c, 0)])

    if not np.array_equal(count(left) + count(right), internal):
        raise _Refuse(f"tree {i}: field 'internal_count' must equal the sum of its children's counts")
