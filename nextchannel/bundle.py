"""Model bundles on disk: a folder of plain data files described by a checksummed manifest.

A bundle is what training publishes and the scorer loads (``training → bundle → scorer``). It is
a folder holding ``manifest.json`` and data files: LightGBM models as text
(``Booster.model_to_string()``), calibration tables and configs as JSON. Nothing is pickled and
loading never executes code: the worst a bad bundle can do is be refused.

This module is generic storage with verification; the training code decides which files a model
set has. :func:`write_bundle` publishes atomically (write a sibling temp folder, fsync, rename);
:func:`read_bundle` verifies everything before returning (:class:`~nextchannel.errors.BundleError`
names the file and the problem); :func:`verify_bundle` lists the problems without raising.

What the checksums protect against: truncation, bit rot, half-copied folders, hand edits and
stray files. They are not a signature: whoever can rewrite a data file can rewrite the manifest
too. Sign or hash ``manifest.json`` out of band if bundles cross a trust boundary.

Layout of ``manifest.json`` (format version 1), canonical JSON with sorted keys::

    {"format_version": 1, "library_version": "0.1.0",
     "files": {"offer_model.txt": {"bytes": 12345, "sha256": "…"}, …},
     "feature_names": [...], "feature_schema_hash": "…",   # optional
     ...any other fields the caller passes}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import re
import secrets
import shutil
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Sequence, Union

from nextchannel.errors import BundleError, ValidationError

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "MANIFEST_NAME",
    "Bundle",
    "canonical_json",
    "feature_schema_hash",
    "file_sha256",
    "write_bundle",
    "read_bundle",
    "verify_bundle",
]

logger = logging.getLogger(__name__)

#: Version of the on-disk layout written by :func:`write_bundle`.
FORMAT_VERSION = 1
#: Layout versions :func:`read_bundle` can read.
SUPPORTED_FORMAT_VERSIONS: tuple[int, ...] = (1,)
MANIFEST_NAME = "manifest.json"
#: Manifest keys the library owns; a caller's manifest must not set them.
_RESERVED_KEYS = ("format_version", "library_version", "files")
_REQUIRED_KEYS = _RESERVED_KEYS
# Plain names only: no separators, no "..", no hidden files, nothing a shell or Windows mangles.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
# Reading through a directory descriptor pins one folder: a reader never mixes files of two
# bundles even if a writer swaps the folder mid-read (see read_bundle).
_DIR_FD = os.open in os.supports_dir_fd and os.scandir in os.supports_fd

FileContent = Union[str, bytes, dict, list]


# ---------------------------------------------------------------------------------------------
# Canonical forms
# ---------------------------------------------------------------------------------------------
def canonical_json(obj: Any) -> str:
    """The one JSON text of ``obj`` that bundles store: sorted keys, indent 1, no NaN, final newline.

    Raises
    ------
    ValidationError
        If ``obj`` holds something JSON cannot represent exactly (NaN, infinity, numpy scalars,
        arbitrary objects).

    Examples
    --------
    >>> print(canonical_json({"b": 1, "a": [0.5, "x"]}), end="")
    {
     "a": [
      0.5,
      "x"
     ],
     "b": 1
    }
    """
    try:
        return json.dumps(obj, sort_keys=True, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValidationError(
            f"bundle JSON content must hold only dicts with str keys, lists, str, int, finite float, "
            f"bool and None; got {err}") from err


def feature_schema_hash(feature_names: Sequence[str], feature_spec: Mapping[str, Any] | None = None) -> str:
    """sha256 hex digest identifying an ordered list of feature names (and their specification).

    The hashed text is ``json.dumps(list(feature_names), separators=(",", ":"))`` in UTF-8
    (ASCII-escaped). Order matters: a model reads columns by position. With a ``feature_spec``
    (the user's own columns: names, kinds, category levels and codes, missing and unseen handling)
    the hashed text is the canonical JSON of ``{"feature_names": [...], "feature_spec": {...}}``, so
    a changed level or code changes the hash.

    Parameters
    ----------
    feature_names : sequence of str
        Distinct, non-empty names in the order the model sees them.
    feature_spec : dict, optional
        JSON-able specification of the features (see :mod:`nextchannel.featurespec`).

    Examples
    --------
    >>> feature_schema_hash(["dwell_s", "n_pages"])[:12]
    '9b87309c11aa'
    >>> feature_schema_hash(["n_pages", "dwell_s"]) == feature_schema_hash(["dwell_s", "n_pages"])
    False
    """
    names = _check_feature_names(feature_names, "feature_names")
    if feature_spec is None:
        text = json.dumps(names, separators=(",", ":"), ensure_ascii=True)
    else:
        text = canonical_json({"feature_names": names, "feature_spec": feature_spec})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_feature_names(feature_names: Any, what: str) -> list[str]:
    if isinstance(feature_names, (str, bytes)) or not isinstance(feature_names, Sequence):
        raise ValidationError(f"{what} must be a sequence of str, got {type(feature_names).__name__}")
    names = list(feature_names)
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ValidationError(f"{what} must be non-empty strings, got {bad[0]!r}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError(f"{what} must be distinct, got duplicates {dupes}")
    return names


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks.

    Raises
    ------
    BundleError
        If the file cannot be read (the OS error is chained).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:12]
    'ba7816bf8f01'
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
    except OSError as err:
        raise BundleError(f"could not read file {os.fspath(path)!r} to checksum it: {err}") from err
    return h.hexdigest()


def _name_problem(name: Any) -> str | None:
    """Why ``name`` is not a valid bundle file name, or None."""
    if not isinstance(name, str):
        return f"file name must be a str, got {type(name).__name__}"
    if name == MANIFEST_NAME:
        return f"file name {name!r} is reserved for the manifest"
    if not _NAME_RE.fullmatch(name):
        return (f"file name must be a plain name of letters, digits, '_', '-', '.' (not starting "
                f"with '.', no folders, at most 200 chars), got {name!r}")
    return None


def _library_version() -> str:
    # Imported here, not at the top: the package __init__ imports this module.
    from nextchannel import __version__
    return __version__


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def _encode_files(files: Mapping[str, FileContent]) -> dict[str, bytes]:
    if not isinstance(files, Mapping):
        raise ValidationError(f"files must be a mapping of file name to content, got {type(files).__name__}")
    encoded: dict[str, bytes] = {}
    lowered: dict[str, str] = {}
    for name, content in files.items():
        problem = _name_problem(name)
        if problem:
            raise ValidationError(problem)
        # Case-insensitive file systems (macOS, Windows) would merge these two files into one.
        if name.lower() in lowered:
            raise ValidationError(
                f"file names must differ in more than letter case, got {lowered[name.lower()]!r} and {name!r}")
        lowered[name.lower()] = name
        if isinstance(content, (dict, list)):
            if not name.endswith(".json"):
                raise ValidationError(f"file {name!r} holds a dict/list, so its name must end in '.json'")
            data = canonical_json(content).encode("utf-8")
        elif isinstance(content, str):
            data = content.encode("utf-8")
        elif isinstance(content, (bytes, bytearray, memoryview)):
            data = bytes(content)
        else:
            raise ValidationError(
                f"content of file {name!r} must be str, bytes, dict or list, got {type(content).__name__}")
        if name.endswith(".json"):
            # Never publish a bundle that read_bundle would refuse.
            problem = _json_problem(data)
            if problem:
                raise ValidationError(f"file {name!r} is not valid JSON: {problem}")
        encoded[name] = data
    return encoded


def _build_manifest(manifest: Mapping[str, Any], encoded: Mapping[str, bytes]) -> bytes:
    if not isinstance(manifest, Mapping):
        raise ValidationError(f"manifest must be a mapping, got {type(manifest).__name__}")
    reserved = [k for k in _RESERVED_KEYS if k in manifest]
    if reserved:
        raise ValidationError(
            f"manifest keys {list(_RESERVED_KEYS)} are set by write_bundle, got {reserved} from the caller")
    fields = dict(manifest)
    if "feature_names" in fields:
        computed = feature_schema_hash(_check_feature_names(fields["feature_names"], "manifest feature_names"),
                                       fields.get("feature_spec"))
        given = fields.setdefault("feature_schema_hash", computed)
        if given != computed:
            raise ValidationError(
                f"manifest feature_schema_hash must match its feature_names: expected {computed}, got {given!r}")
        fields["feature_names"] = list(fields["feature_names"])
    fields["format_version"] = FORMAT_VERSION
    fields["library_version"] = _library_version()
    fields["files"] = {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                       for name, data in encoded.items()}
    return canonical_json(fields).encode("utf-8")


def _write_file(path: pathlib.Path, data: bytes) -> None:
    # Binary mode: no newline translation, so the checksum is of exactly these bytes.
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: pathlib.Path) -> None:
    """Make a folder's entries (new names, renames) durable."""
    if os.name == "nt":  # Windows cannot open a folder for fsync; NTFS journals its metadata.
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sibling_name(path: pathlib.Path, tag: str) -> pathlib.Path:
    return path.with_name(f".{path.name}.{tag}-{secrets.token_hex(6)}")


def _make_temp_sibling(path: pathlib.Path) -> pathlib.Path:
    # Same parent folder, so the final rename stays on one file system and is atomic. os.mkdir
    # (not tempfile.mkdtemp, which makes 0o700) so the published folder gets the usual umask mode.
    for _ in range(100):
        tmp = _sibling_name(path, "tmp")
        try:
            os.mkdir(tmp)
            return tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
    raise BundleError(f"could not create a temporary folder next to {path}")  # pragma: no cover


def _looks_replaceable(path: pathlib.Path) -> bool:
    """Only an empty folder or a folder with a manifest may be replaced, never e.g. a home folder."""
    if path.is_symlink() or not path.is_dir():
        return False
    return (path / MANIFEST_NAME).is_file() or not any(path.iterdir())


def write_bundle(path: str | os.PathLike[str], files: Mapping[str, FileContent],
                 manifest: Mapping[str, Any], *, overwrite: bool = False) -> pathlib.Path:
    """Write a bundle folder atomically: readers see the whole bundle or none of it.

    Each file is written into a temporary sibling folder ``.<name>.tmp-<random>`` (same parent,
    so the final rename is atomic on one file system), fsynced, checksummed into
    ``manifest.json`` (written last), the folder fsynced, then renamed to ``path``. On any error
    the temporary folder is removed and ``path`` is untouched. A hard crash (power loss,
    SIGKILL) can leave a stale ``.<name>.tmp-*`` folder behind, never a partial ``path``; such
    folders are safe to delete when no publish is running.

    With ``overwrite=True`` an existing bundle is replaced by two renames: the old folder is
    renamed aside to ``.<name>.old-<random>``, the new one renamed into place, the old one
    deleted. A reader therefore sees the old complete folder or the new complete folder; for
    the instant between the two renames (microseconds; no data is copied) ``path`` does not
    exist and :func:`read_bundle` reports "does not exist" rather than a half-written bundle.
    If the second rename fails, the old folder is renamed back. Publish to one ``path`` from one
    process at a time.

    Parameters
    ----------
    path : str or path-like
        The bundle folder to create. Missing parent folders are created.
    files : mapping of str to str, bytes, dict or list
        File name → content. Names are plain (``[A-Za-z0-9_][A-Za-z0-9_.-]*``; no folders, no
        ``..``, not ``manifest.json``). ``dict``/``list`` are stored as canonical JSON
        (:func:`canonical_json`) and need a ``.json`` name; ``str`` as UTF-8; ``bytes`` as is.
        Any ``.json`` file must parse as strict JSON (no NaN).
    manifest : mapping
        Extra JSON fields for ``manifest.json`` (model version, training window, LightGBM
        version…). If it has ``feature_names``, ``feature_schema_hash`` is computed from them
        (a given one must match). ``format_version``, ``library_version`` and ``files`` are set
        here and must not be passed. No timestamp is added: same inputs give the same bytes.
    overwrite : bool, default False
        Replace an existing bundle at ``path``. Only a folder holding ``manifest.json`` (or an
        empty folder) is replaced; anything else is refused.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValidationError
        Bad file names, contents or manifest fields (nothing is written).
    BundleError
        ``path`` exists (and ``overwrite`` is False, or it is not a bundle), or the OS failed
        (error chained).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> p = write_bundle(root / "v1", {"model.txt": "tree\\n", "calibration.json": {"x": [0, 1]}},
    ...                  {"model_version": "v1", "feature_names": ["dwell_s", "n_pages"]})
    >>> sorted(f.name for f in p.iterdir())
    ['calibration.json', 'manifest.json', 'model.txt']
    >>> write_bundle(root / "v1", {}, {})
    Traceback (most recent call last):
    ...
    nextchannel.errors.BundleError: bundle path ... already exists; pass overwrite=True to replace it
    """
    path = pathlib.Path(path)
    if path.name in ("", ".", ".."):
        raise ValidationError(f"path must name a bundle folder, got {os.fspath(path)!r}")
    encoded = _encode_files(files)
    manifest_bytes = _build_manifest(manifest, encoded)

    exists = os.path.lexists(path)
    if exists and not overwrite:
        raise BundleError(f"bundle path {os.fspath(path)!r} already exists; pass overwrite=True to replace it")
    if exists and not _looks_replaceable(path):
        raise BundleError(
            f"refusing to replace {os.fspath(path)!r}: it is not a bundle folder (no {MANIFEST_NAME}) "
            f"and not an empty folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _make_temp_sibling(path)
    except OSError as err:
        raise BundleError(f"could not create a temporary folder next to {os.fspath(path)!r}: {err}") from err

    try:
        for name in sorted(encoded):
            _write_file(tmp / name, encoded[name])
        # Manifest last: a folder with a manifest is complete, even a stale temp one.
        _write_file(tmp / MANIFEST_NAME, manifest_bytes)
        _fsync_dir(tmp)
        if exists:
            _swap_into_place(tmp, path)
        else:
            # On POSIX, rename onto an existing non-empty folder fails, so a publisher that
            # raced us in between is not clobbered.
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise BundleError(f"could not write bundle {os.fspath(path)!r}: {err}") from err
        raise
    logger.info("wrote bundle %s (%d files)", path, len(encoded))
    return path


def _swap_into_place(tmp: pathlib.Path, path: pathlib.Path) -> None:
    old = _sibling_name(path, "old")
    os.replace(path, old)
    # Between these two renames path does not exist; readers see "does not exist", never a mix.
    try:
        os.replace(tmp, path)
    except BaseException:
        try:
            os.replace(old, path)
        except OSError:  # pragma: no cover - needs a second OS failure
            logger.error("could not restore the previous bundle; it is kept at %s", old)
        raise
    _fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.lexists(old):  # pragma: no cover - e.g. a file held open on Windows
        logger.warning("could not delete the previous bundle at %s; delete it by hand", old)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    """A verified bundle in memory: its manifest and the bytes of every file.

    Every byte was checked against the manifest's sha256 when the bundle was read; accessors
    never touch the disk again, so a bundle replaced on disk later does not change this object.

    Attributes
    ----------
    path : pathlib.Path
        Folder it was read from.
    manifest : dict
        Parsed ``manifest.json`` (a private copy).
    files : mapping of str to bytes
        Read-only view: file name → verified bytes.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = write_bundle(pathlib.Path(tempfile.mkdtemp()) / "b",
    ...                  {"model.txt": "tree\\n", "calibration.json": {"x": [0, 1]}}, {"model_version": "v1"})
    >>> b = read_bundle(p, required_files=["model.txt"])
    >>> b.names
    ('calibration.json', 'model.txt')
    >>> b.text("model.txt")
    'tree\\n'
    >>> b.json("calibration.json")
    {'x': [0, 1]}
    >>> b.manifest["model_version"], b.format_version
    ('v1', 1)
    """

    path: pathlib.Path
    manifest: dict[str, Any]
    files: Mapping[str, bytes]

    @property
    def names(self) -> tuple[str, ...]:
        """File names (without ``manifest.json``), sorted."""
        return tuple(sorted(self.files))

    @property
    def format_version(self) -> int:
        return int(self.manifest["format_version"])

    @property
    def library_version(self) -> str:
        return str(self.manifest["library_version"])

    @property
    def feature_schema_hash(self) -> str | None:
        return self.manifest.get("feature_schema_hash")

    def _data(self, name: str) -> bytes:
        try:
            return self.files[name]
        except KeyError:
            raise BundleError(
                f"bundle {os.fspath(self.path)!r} has no file {name!r}; it holds {list(self.names)}") from None

    def text(self, name: str) -> str:
        """Content of file ``name`` decoded as UTF-8 (e.g. a LightGBM model for ``model_str=``)."""
        data = self._data(name)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise BundleError(f"bundle {os.fspath(self.path)!r}: file {name!r} is not UTF-8 text: {err}") from err

    def json(self, name: str) -> Any:
        """Content of JSON file ``name``, parsed afresh on each call (callers may mutate it)."""
        if not name.endswith(".json"):
            raise BundleError(f"bundle {os.fspath(self.path)!r}: file {name!r} is not a .json file")
        return _strict_json_loads(self._data(name))


class _Problem(NamedTuple):
    message: str
    cause: BaseException | None = None


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-finite number {token} is not allowed")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        dupes = sorted({k for k, _ in pairs if sum(1 for k2, _ in pairs if k2 == k) > 1})
        raise ValueError(f"duplicate keys {dupes}")
    return d


def _strict_json_loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant,
                      object_pairs_hook=_no_duplicate_keys)


def _json_problem(data: bytes) -> str | None:
    try:
        _strict_json_loads(data)
    except UnicodeDecodeError as err:
        return f"not UTF-8 text ({err.reason} at byte {err.start})"
    except json.JSONDecodeError as err:
        return f"{err.msg} at line {err.lineno}, column {err.colno}"
    except (ValueError, RecursionError) as err:
        return str(err) or type(err).__name__
    return None


class _Folder:
    """One bundle folder, pinned by a directory descriptor where the OS allows it."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.fd: int | None = None
        if _DIR_FD:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            st = os.fstat(self.fd)
        else:  # pragma: no cover - Windows
            st = os.stat(path)
        self.identity = (st.st_dev, st.st_ino)

    def entries(self) -> dict[str, bool]:
        """Entry name → whether it is a regular file (symlinks are not)."""
        with os.scandir(self.fd if self.fd is not None else self.path) as it:
            return {e.name: e.is_file(follow_symlinks=False) for e in it}

    def read(self, name: str) -> bytes:
        if self.fd is None:  # pragma: no cover - Windows
            return (self.path / name).read_bytes()
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=self.fd)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _identity(path: pathlib.Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _first_difference(got: Sequence[Any], expected: Sequence[str]) -> str:
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            return f"first difference at position {i}: bundle has {g!r}, expected {e!r}"
    if len(got) != len(expected):
        return f"bundle has {len(got)} features, expected {len(expected)}"
    return "the names agree but the hashes differ"  # pragma: no cover - manifest checked for this


def _inspect_once(path: pathlib.Path, expected_hash: str | None, expected_names: list[str] | None,
                  required_files: Sequence[str]) -> tuple[Bundle | None, list[_Problem], tuple | None]:
    """Check one bundle folder; return (bundle or None, problems, folder identity)."""
    where = f"bundle {os.fspath(path)!r}"
    try:
        st = os.stat(path)
    except FileNotFoundError as err:
        return None, [_Problem(f"bundle folder {os.fspath(path)!r} does not exist", err)], None
    except OSError as err:
        return None, [_Problem(f"could not access bundle folder {os.fspath(path)!r}: {err}", err)], None
    if not os.path.isdir(path):
        kind = "a file" if os.path.isfile(path) else "not a folder"
        return None, [_Problem(f"bundle path {os.fspath(path)!r} is {kind}, expected a bundle folder")], None
    try:
        folder = _Folder(path)
    except OSError as err:
        return None, [_Problem(f"could not open bundle folder {os.fspath(path)!r}: {err}", err)], None
    try:
        return _inspect_folder(folder, where, expected_hash, expected_names, required_files)
    finally:
        folder.close()


def _inspect_folder(folder: _Folder, where: str, expected_hash: str | None,
                    expected_names: list[str] | None, required_files: Sequence[str]
                    ) -> tuple[Bundle | None, list[_Problem], tuple | None]:
    ident = folder.identity

    def fatal(message: str, cause: BaseException | None = None) -> tuple[None, list[_Problem], tuple]:
        return None, [_Problem(f"{where}: {message}", cause)], ident

    try:
        entries = folder.entries()
    except OSError as err:
        return fatal(f"could not list the folder: {err}", err)
    if MANIFEST_NAME not in entries:
        return fatal(f"{MANIFEST_NAME} is missing")
    try:
        raw = folder.read(MANIFEST_NAME)
    except OSError as err:
        return fatal(f"could not read {MANIFEST_NAME}: {err}", err)
    try:
        manifest = _strict_json_loads(raw)
    except UnicodeDecodeError as err:
        return fatal(f"{MANIFEST_NAME} is not valid JSON: not UTF-8 ({err.reason} at byte {err.start})", err)
    except json.JSONDecodeError as err:
        return fatal(f"{MANIFEST_NAME} is not valid JSON: {err.msg} at line {err.lineno}, "
                     f"column {err.colno}", err)
    except (ValueError, RecursionError) as err:
        return fatal(f"{MANIFEST_NAME} is not valid JSON: {err}", err)
    if not isinstance(manifest, dict):
        return fatal(f"{MANIFEST_NAME} must hold a JSON object, got {type(manifest).__name__}")
    for key in _REQUIRED_KEYS:
        if key not in manifest:
            return fatal(f"{MANIFEST_NAME} is missing required key {key!r}")
    version = manifest["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version not in SUPPORTED_FORMAT_VERSIONS:
        hint = ""
        if isinstance(version, int) and not isinstance(version, bool) and version > max(SUPPORTED_FORMAT_VERSIONS):
            hint = f" (written by nextchannel {manifest.get('library_version')!r}; upgrade nextchannel)"
        return fatal(f"{MANIFEST_NAME} has unsupported format_version {version!r}{hint}; nextchannel "
                     f"{_library_version()} reads format versions {list(SUPPORTED_FORMAT_VERSIONS)}")
    if not isinstance(manifest["library_version"], str):
        return fatal(f"{MANIFEST_NAME} key 'library_version' must be a str, "
                     f"got {type(manifest['library_version']).__name__}")
    listed = manifest["files"]
    if not isinstance(listed, dict):
        return fatal(f"{MANIFEST_NAME} key 'files' must be an object of file name → "
                     f"{{sha256, bytes}}, got {type(listed).__name__}")
    for name, entry in listed.items():
        problem = _name_problem(name)
        if problem:
            return fatal(f"{MANIFEST_NAME} lists a bad {problem}")
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and _HEX64_RE.fullmatch(entry["sha256"]) and isinstance(entry.get("bytes"), int)
                and not isinstance(entry.get("bytes"), bool) and entry["bytes"] >= 0):
            return fatal(f"{MANIFEST_NAME} entry for file {name!r} must be {{\"sha256\": <64 lowercase hex>, "
                         f"\"bytes\": <int >= 0>}}, got {entry!r}")

    problems: list[_Problem] = []

    def add(message: str, cause: BaseException | None = None) -> None:
        problems.append(_Problem(f"{where}: {message}", cause))

    for name in required_files:
        if name not in listed:
            add(f"required file {name!r} is not listed in {MANIFEST_NAME} (listed: {sorted(listed)})")

    # Feature schema: the manifest must agree with itself, then with the caller.
    got_hash = manifest.get("feature_schema_hash")
    got_names = manifest.get("feature_names")
    if got_names is not None:
        try:
            own_hash = feature_schema_hash(got_names, manifest.get("feature_spec"))
        except ValidationError as err:
            add(f"{MANIFEST_NAME} key 'feature_names' is invalid: {err}", err)
        else:
            if got_hash is not None and got_hash != own_hash:
                add(f"{MANIFEST_NAME} is inconsistent: feature_names hash to {own_hash[:12]}…, "
                    f"but feature_schema_hash is {str(got_hash)[:12]}…")
    if expected_hash is not None:
        if got_hash is None:
            add(f"{MANIFEST_NAME} has no feature_schema_hash, expected {expected_hash[:12]}…")
        elif got_hash != expected_hash:
            detail = ""
            if isinstance(got_names, list) and expected_names is not None:
                detail = "; " + _first_difference(got_names, expected_names)
            elif isinstance(got_names, list):
                detail = f"; the bundle's {len(got_names)} feature_names start {got_names[:5]}"
            add(f"feature schema mismatch: {MANIFEST_NAME} has feature_schema_hash "
                f"{str(got_hash)[:12]}…, expected {expected_hash[:12]}…{detail}")

    # Stray entries: a file nobody listed may be a tampered or half-copied bundle; refuse.
    for name in sorted(entries):
        if name != MANIFEST_NAME and name not in listed:
            add(f"{name!r} is in the bundle folder but not listed in {MANIFEST_NAME}; refusing a "
                f"bundle that may have been tampered with")
        elif not entries[name]:
            add(f"{name!r} is not a regular file (a folder or symlink)")

    data: dict[str, bytes] = {}
    for name in sorted(listed):
        expected = listed[name]
        if name not in entries:
            add(f"file {name!r} listed in {MANIFEST_NAME} is missing")
            continue
        if not entries[name]:
            continue  # reported above
        try:
            content = folder.read(name)
        except OSError as err:
            add(f"could not read file {name!r}: {err}", err)
            continue
        if len(content) != expected["bytes"]:
            add(f"file {name!r} has {len(content)} bytes, {MANIFEST_NAME} lists {expected['bytes']} "
                f"(truncated or altered)")
            continue
        digest = hashlib.sha256(content).hexdigest()
        if digest != expected["sha256"]:
            add(f"file {name!r} fails its checksum: expected sha256 {expected['sha256'][:12]}…, "
                f"got {digest[:12]}…")
            continue
        if name.endswith(".json"):
            problem = _json_problem(content)
            if problem:
                add(f"file {name!r} is not valid JSON: {problem}")
                continue
        data[name] = content

    if problems:
        return None, problems, ident
    if manifest["library_version"] != _library_version():
        logger.info("bundle %s was written by nextchannel %s; this is %s",
                    folder.path, manifest["library_version"], _library_version())
    return Bundle(path=folder.path, manifest=manifest, files=MappingProxyType(data)), [], ident


def _inspect(path: str | os.PathLike[str], expected_feature_hash: str | None,
             expected_feature_names: Sequence[str] | None, required_files: Sequence[str]
             ) -> tuple[Bundle | None, list[_Problem]]:
    path = pathlib.Path(path)
    expected_names = None
    if expected_feature_names is not None:
        expected_names = _check_feature_names(expected_feature_names, "expected_feature_names")
        names_hash = feature_schema_hash(expected_names)
        if expected_feature_hash is not None and expected_feature_hash != names_hash:
            raise ValidationError(
                f"expected_feature_hash must match expected_feature_names: expected {names_hash}, "
                f"got {expected_feature_hash!r}")
        expected_feature_hash = names_hash
    if expected_feature_hash is not None and not (
            isinstance(expected_feature_hash, str) and _HEX64_RE.fullmatch(expected_feature_hash)):
        raise ValidationError(f"expected_feature_hash must be 64 lowercase hex characters, "
                              f"got {expected_feature_hash!r}")
    if isinstance(required_files, str):
        raise ValidationError(f"required_files must be a sequence of file names, got the str {required_files!r}")
    required = list(required_files)
    bundle, problems = None, []
    # A writer may swap the folder while we read it (overwrite=True). The pinned folder keeps
    # us from mixing two bundles; if the old one vanished under us, read the new one instead.
    for _ in range(3):
        bundle, problems, ident = _inspect_once(path, expected_feature_hash, expected_names, required)
        # Retry only if the folder we read is no longer the one at path (replaced or, for the
        # instant between a replace's two renames, absent).
        if not problems or ident is None or _identity(path) == ident:
            break
        logger.info("bundle %s was replaced while being read; reading it again", path)
    return bundle, problems


def read_bundle(path: str | os.PathLike[str], *, expected_feature_hash: str | None = None,
                required_files: Sequence[str] = (),
                expected_feature_names: Sequence[str] | None = None) -> Bundle:
    """Read and verify a bundle; refuse it with a precise :class:`BundleError` if anything is off.

    Checks, in order: the folder exists and is a folder; ``manifest.json`` is present, valid
    strict JSON (no NaN, no duplicate keys), has ``format_version`` (a supported one),
    ``library_version`` and ``files``; every listed name is a plain name; required files are
    listed; the feature schema matches; no unlisted entry is in the folder (refused: it may be
    tampering or a half-copied bundle); every listed file is present, of the listed size and
    sha256; every ``.json`` file parses. Nothing is executed or unpickled.

    A bundle written by another nextchannel version is accepted if its ``format_version`` is
    supported (logged at INFO); feature compatibility is the job of the feature schema hash.

    Parameters
    ----------
    path : str or path-like
        Bundle folder.
    expected_feature_hash : str, optional
        :func:`feature_schema_hash` of the features the caller will feed; the manifest's
        ``feature_schema_hash`` must equal it.
    required_files : sequence of str, default ()
        Files the caller needs; each must be listed in the manifest.
    expected_feature_names : sequence of str, optional
        Alternative to ``expected_feature_hash`` (its hash is used); a mismatch message then
        names the first differing feature.

    Returns
    -------
    Bundle

    Raises
    ------
    BundleError
        With the first problem found (and how many more there are); OS errors are chained.
    ValidationError
        Bad arguments.

    Examples
    --------
    >>> read_bundle("/nonexistent/bundle")
    Traceback (most recent call last):
    ...
    nextchannel.errors.BundleError: bundle folder '/nonexistent/bundle' does not exist
    """
    bundle, problems = _inspect(path, expected_feature_hash, expected_feature_names, required_files)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" \
            if len(problems) > 1 else ""
        raise BundleError(first.message + more) from first.cause
    assert bundle is not None
    logger.debug("read bundle %s (%d files)", bundle.path, len(bundle.files))
    return bundle


def verify_bundle(path: str | os.PathLike[str], *, expected_feature_hash: str | None = None,
                  required_files: Sequence[str] = (),
                  expected_feature_names: Sequence[str] | None = None) -> list[str]:
    """List every problem :func:`read_bundle` would refuse a bundle for; ``[]`` if it is sound.

    Takes the same arguments as :func:`read_bundle`. Never raises for a bad bundle (for
    ``nextchannel bundle verify``); bad arguments still raise :class:`ValidationError`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = write_bundle(pathlib.Path(tempfile.mkdtemp()) / "b", {"model.txt": "tree\\n"}, {})
    >>> verify_bundle(p)
    []
    >>> _ = (p / "model.txt").write_bytes(b"TREE\\n")
    >>> verify_bundle(p)
    ["bundle '...': file 'model.txt' fails its checksum: expected sha256 ..., got ..."]
    """
    _, problems = _inspect(path, expected_feature_hash, expected_feature_names, required_files)
    return [p.message for p in problems]
