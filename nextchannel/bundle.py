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

import contextlib
import ctypes
import errno
import hashlib
import hmac
import json
import logging
import os
import pathlib
import re
import secrets
import shutil
import stat
import sys
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterator, Mapping, NamedTuple, Sequence, Union

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

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
    "publish",
    "publish_files",
    "current_version",
    "published_versions",
    "is_publish_root",
    "signing_key",
    "key_id",
    "KEY_ENV",
    "CURRENT",
    "MAX_MANIFEST_BYTES",
    "MAX_FILE_BYTES",
    "MAX_BUNDLE_BYTES",
]

logger = logging.getLogger(__name__)

#: Version of the on-disk layout written by :func:`write_bundle`.
FORMAT_VERSION = 1
#: Layout versions :func:`read_bundle` can read.
SUPPORTED_FORMAT_VERSIONS: tuple[int, ...] = (1,)
MANIFEST_NAME = "manifest.json"
#: Manifest keys the library owns; a caller's manifest must not set them.
_RESERVED_KEYS = ("format_version", "library_version", "files", "signature")
_REQUIRED_KEYS = ("format_version", "library_version", "files")
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


def _build_manifest(manifest: Mapping[str, Any], encoded: Mapping[str, bytes], key: str | bytes | None = None,
                    *, library_version: str | None = None) -> bytes:
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
    fields["library_version"] = library_version or _library_version()
    fields["files"] = {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                       for name, data in encoded.items()}
    secret = signing_key(key)
    if secret is not None:
        fields["signature"] = _signature(fields, secret)
    return canonical_json(fields).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------
#: Environment variable holding the signing key when none is passed.
KEY_ENV = "NEXTCHANNEL_BUNDLE_KEY"
_SIGNATURE_ALGORITHM = "hmac-sha256"


def signing_key(key: str | bytes | None = None) -> bytes | None:
    """The signing key as bytes: ``key`` if given, else ``$NEXTCHANNEL_BUNDLE_KEY``, else None.

    Examples
    --------
    >>> signing_key("s3cret")
    b's3cret'
    """
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise ValidationError(f"key must be a non-empty str or bytes, got {type(key).__name__}")
    return bytes(key)


def key_id(key: bytes) -> str:
    """A short public name of a key (so that "signed with another key" can say which), not the key.

    Examples
    --------
    >>> key_id(b"s3cret") == key_id(b"s3cret") != key_id(b"other")
    True
    """
    return hashlib.sha256(b"nextchannel bundle key id\0" + key).hexdigest()[:12]


def _signature(fields: Mapping[str, Any], key: bytes) -> dict[str, str]:
    # Signed text: the canonical manifest without its signature. It lists every file's sha256 and
    # size, so the signature covers every byte of the bundle.
    body = {k: v for k, v in fields.items() if k != "signature"}
    mac = hmac.new(key, canonical_json(body).encode("utf-8"), hashlib.sha256).hexdigest()
    return {"algorithm": _SIGNATURE_ALGORITHM, "key_id": key_id(key), "value": mac}


def _signature_problem(manifest: Mapping[str, Any], key: bytes) -> str | None:
    sig = manifest.get("signature")
    if sig is None:
        return f"{MANIFEST_NAME} is not signed; require_signature=True refuses unsigned bundles"
    if not (isinstance(sig, dict) and sig.get("algorithm") == _SIGNATURE_ALGORITHM
            and isinstance(sig.get("value"), str) and isinstance(sig.get("key_id"), str)):
        return f"{MANIFEST_NAME} key 'signature' must be {{algorithm: {_SIGNATURE_ALGORITHM!r}, key_id, value}}"
    expected = _signature(manifest, key)
    if sig["key_id"] != expected["key_id"]:
        return (f"{MANIFEST_NAME} is signed with another key (key id {sig['key_id'][:12]!r}, expected "
                f"{expected['key_id']!r})")
    if not hmac.compare_digest(sig["value"], expected["value"]):
        return f"{MANIFEST_NAME} signature does not match its content (altered after signing)"
    return None


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
                 manifest: Mapping[str, Any], *, overwrite: bool = False,
                 key: str | bytes | None = None) -> pathlib.Path:
    """Write a bundle folder atomically: readers see the whole old bundle or the whole new one.

    Each file is written into a temporary sibling folder ``.<name>.tmp-<random>`` (same parent,
    so the final rename is atomic on one file system), fsynced, checksummed into
    ``manifest.json`` (written last), the folder fsynced, then renamed to ``path``. On any error
    the temporary folder is removed and ``path`` is untouched.

    With ``overwrite=True`` an existing bundle is replaced by one atomic exchange of the two
    folders (Linux ``renameat2(RENAME_EXCHANGE)``): there is no instant at which ``path`` is
    missing or half written. The old bundle then sits in the temporary folder and is deleted.
    Where the exchange is not available (other systems, or file systems without it) the old
    folder is renamed aside to ``.<name>.old-<random>`` and the new one renamed into place; for
    the instant between those two renames ``path`` does not exist (:func:`read_bundle` retries).

    Writers to one parent folder take an exclusive lock on it (``flock`` on the folder, POSIX),
    so any ``.<name>.tmp-*`` or ``.<name>.old-*`` folder found while holding it belongs to a
    writer that died (SIGKILL, power loss); it is deleted before writing. A dead writer never
    leaves a partial ``path``: stale folders are aside, and have no manifest until complete.

    For serving, prefer :func:`publish` (versioned folders and a ``current`` symlink).

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
        (a given one must match). ``format_version``, ``library_version``, ``files`` and
        ``signature`` are set here and must not be passed. No timestamp is added: same inputs
        give the same bytes.
    overwrite : bool, default False
        Replace an existing bundle at ``path``. Only a folder holding ``manifest.json`` (or an
        empty folder) is replaced; anything else is refused.
    key : str or bytes, optional
        Signing key (default: the ``NEXTCHANNEL_BUNDLE_KEY`` environment variable, if set). The
        manifest then carries an HMAC-SHA256 ``signature`` over its canonical text, which holds
        every file's sha256 (see :func:`read_bundle`'s ``require_signature``).

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
    manifest_bytes = _build_manifest(manifest, encoded, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BundleError(f"could not create the folder {os.fspath(path.parent)!r}: {err}") from err
    with _locked(path.parent):
        _remove_stale(path.parent, (f".{path.name}.tmp-", f".{path.name}.old-"))
        exists = os.path.lexists(path)
        if exists and not overwrite:
            raise BundleError(f"bundle path {os.fspath(path)!r} already exists; pass overwrite=True to replace it")
        if exists and not _looks_replaceable(path):
            raise BundleError(
                f"refusing to replace {os.fspath(path)!r}: it is not a bundle folder (no {MANIFEST_NAME}) "
                f"and not an empty folder")
        tmp = _write_temp_folder(path, encoded, manifest_bytes)
        try:
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


def _write_temp_folder(path: pathlib.Path, encoded: Mapping[str, bytes], manifest_bytes: bytes) -> pathlib.Path:
    """A complete, fsynced bundle in a fresh temporary sibling of ``path``; removed on failure."""
    try:
        tmp = _make_temp_sibling(path)
    except OSError as err:
        raise BundleError(f"could not create a temporary folder next to {os.fspath(path)!r}: {err}") from err
    try:
        for name in sorted(encoded):
            _write_file(tmp / name, encoded[name])
        # Manifest last: a folder with a manifest is complete, even a stale temp one.
        _write_file(tmp / MANIFEST_NAME, manifest_bytes)
        _fsync_dir(tmp)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise BundleError(f"could not write bundle {os.fspath(path)!r}: {err}") from err
        raise
    return tmp


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported here."""
    fn = _renameat2()
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # kernel or file system without RENAME_EXCHANGE: fall back to two renames
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_RENAMEAT2: list[Any] = []


def _renameat2() -> Any:
    if not _RENAMEAT2:
        fn = None
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fn = libc.renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                fn.restype = ctypes.c_int
            except (OSError, AttributeError):  # pragma: no cover - glibc < 2.28, musl
                fn = None
        _RENAMEAT2.append(fn)
    return _RENAMEAT2[0]


def _swap_into_place(tmp: pathlib.Path, path: pathlib.Path) -> None:
    """Put the folder ``tmp`` at ``path`` and delete the folder that was there."""
    if _exchange(tmp, path):
        _fsync_dir(path.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
        return
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


@contextlib.contextmanager
def _locked(folder: pathlib.Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (flock on the folder itself; no lock file to leave behind).

    The kernel drops the lock when its holder dies, so whatever temporary entry a writer finds
    while holding it was left by a writer that is gone.
    """
    if fcntl is None:  # pragma: no cover - Windows: one publisher at a time, by convention
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as err:
        raise BundleError(f"could not open the folder {os.fspath(folder)!r} to lock it: {err}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_stale(folder: pathlib.Path, prefixes: tuple[str, ...]) -> int:
    """Delete entries of ``folder`` whose names start with one of ``prefixes``; call under the lock."""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(prefixes):
            continue
        p = folder / name
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                os.unlink(p)
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.warning("could not delete the stale temporary entry %s: %s", p, err)
    if removed:
        logger.info("deleted %d stale temporary entr%s of dead writers in %s", removed,
                    "y" if removed == 1 else "ies", folder)
    return removed


# ---------------------------------------------------------------------------------------------
# Versioned publishing: <root>/<version>/ and an atomic <root>/current symlink
# ---------------------------------------------------------------------------------------------
CURRENT = "current"
_ROOT_TEMP_PREFIXES = (".tmp-", ".trash-", f".{CURRENT}.tmp-")


def is_publish_root(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a publish root: a folder with a ``current`` symlink and no manifest.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> is_publish_root(tempfile.mkdtemp())
    False
    """
    path = pathlib.Path(path)
    return (path / CURRENT).is_symlink() and not os.path.lexists(path / MANIFEST_NAME)


def current_version(root: str | os.PathLike[str]) -> str | None:
    """The version ``<root>/current`` points at, or None if nothing was published there yet.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> current_version(root) is None
    True
    >>> v = publish_files({"model.txt": "tree\\n"}, {"model_version": "a"}, root)
    >>> current_version(root) == v.name
    True
    """
    link = pathlib.Path(root) / CURRENT
    try:
        target = os.readlink(link)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        if err.errno == errno.EINVAL:  # exists but is not a symlink
            raise BundleError(f"{os.fspath(link)!r} exists but is not a symlink; not a publish root") from err
        raise BundleError(f"could not read {os.fspath(link)!r}: {err}") from err
    return os.path.basename(target.rstrip("/"))


def _resolve(path: pathlib.Path) -> pathlib.Path:
    """A publish root resolves to the version folder ``current`` names; any other path to itself."""
    if is_publish_root(path):
        version = current_version(path)
        if version:
            return path / version
    return path


def _version_name_problem(version: Any) -> str | None:
    if not isinstance(version, str) or not _NAME_RE.fullmatch(version) or version == CURRENT:
        return (f"version must be a plain name of letters, digits, '_', '-', '.' (not starting with '.', "
                f"not {CURRENT!r}), got {version!r}")
    return None


def publish(source: Any, root: str | os.PathLike[str], *, version: str | None = None, keep: int = 5,
            key: str | bytes | None = None) -> pathlib.Path:
    """Publish a bundle as ``<root>/<version>/`` and point ``<root>/current`` at it, atomically.

    The version folder is written whole in a temporary folder and renamed into place; then a new
    symlink is made under a temporary name and renamed over ``current`` (``os.replace``), so
    ``current`` always exists and always names a complete bundle. :func:`read_bundle`,
    ``ModelSet.load``, ``Scorer.load`` and ``Scorer.reload`` accept ``root`` and follow
    ``current``; a reader that resolved ``current`` just before a flip reads the (still complete)
    previous version, and one that loses a race with the pruning of old versions reads again.

    Publishing the same bytes again is a no-op (the default version is the manifest's content
    hash). Publishing an older version's bytes again points ``current`` back at it (a rollback).
    Publishers to one root are serialised by a lock on the root folder; temporary entries of
    publishers that died are deleted by the next publish.

    Parameters
    ----------
    source : ModelSet or str or path-like
        A model set (anything with ``bundle_contents()``), or a bundle folder or publish root,
        which is verified and republished as it is (re-signed if a key is given).
    root : str or path-like
        The publish root; created if missing.
    version : str, optional
        Folder name of this version (default: ``b-`` and 16 hex digits of the manifest's sha256).
        An existing version with other content is refused.
    keep : int, default 5
        Versions to keep, counting ``current``; older ones (by publish time) are deleted.
    key : str or bytes, optional
        Signing key (default: ``NEXTCHANNEL_BUNDLE_KEY`` if set), as in :func:`write_bundle`.

    Returns
    -------
    pathlib.Path
        ``<root>/<version>``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> src = write_bundle(pathlib.Path(tempfile.mkdtemp()) / "b", {"model.txt": "tree\\n"}, {})
    >>> v1 = publish(src, root)
    >>> publish(src, root) == v1                       # same bytes: nothing new
    True
    >>> read_bundle(root).text("model.txt"), current_version(root) == v1.name
    ('tree\\n', True)
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValidationError(f"keep must be an int >= 1, got {keep!r}")
    if hasattr(source, "bundle_contents"):
        files, fields = source.bundle_contents()
        encoded = _encode_files(files)
        manifest_bytes = _build_manifest(fields, encoded, key)
    elif isinstance(source, (str, os.PathLike)):
        b = read_bundle(source)
        encoded = dict(b.files)
        fields = {k: v for k, v in b.manifest.items() if k not in _RESERVED_KEYS}
        manifest_bytes = _build_manifest(fields, encoded, key, library_version=b.library_version)
    else:
        raise ValidationError(f"source must be a ModelSet or a bundle folder, got {type(source).__name__}")
    return _publish_encoded(encoded, manifest_bytes, pathlib.Path(root), version, keep)


def publish_files(files: Mapping[str, FileContent], manifest: Mapping[str, Any], root: str | os.PathLike[str],
                  *, version: str | None = None, keep: int = 5, key: str | bytes | None = None) -> pathlib.Path:
    """:func:`publish` for files and manifest fields as :func:`write_bundle` takes them.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> publish_files({"model.txt": "tree\\n"}, {}, root, version="v1").name
    'v1'
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValidationError(f"keep must be an int >= 1, got {keep!r}")
    encoded = _encode_files(files)
    return _publish_encoded(encoded, _build_manifest(manifest, encoded, key), pathlib.Path(root), version, keep)


def _publish_encoded(encoded: Mapping[str, bytes], manifest_bytes: bytes, root: pathlib.Path,
                     version: str | None, keep: int) -> pathlib.Path:
    if version is None:
        version = "b-" + hashlib.sha256(manifest_bytes).hexdigest()[:16]
    problem = _version_name_problem(version)
    if problem:
        raise ValidationError(problem)
    if os.path.lexists(root / MANIFEST_NAME):
        raise BundleError(f"publish root {os.fspath(root)!r} is itself a bundle folder; give a folder of versions")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BundleError(f"could not create the publish root {os.fspath(root)!r}: {err}") from err
    dest = root / version
    with _locked(root):
        _remove_stale(root, _ROOT_TEMP_PREFIXES)
        try:
            if os.path.lexists(dest):
                _check_same_version(dest, manifest_bytes)
            else:
                tmp = _write_temp_folder(root / f"tmp-{version}", encoded, manifest_bytes)
                try:
                    os.rename(tmp, dest)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
            if current_version(root) != version:
                _point_current(root, version)
                logger.info("published %s as the current version of %s", version, root)
            os.utime(dest)  # publish time orders the versions for `keep`
            _fsync_dir(root)
            _prune(root, keep)
        except OSError as err:
            raise BundleError(f"could not publish to {os.fspath(root)!r}: {err}") from err
    return dest


def _check_same_version(dest: pathlib.Path, manifest_bytes: bytes) -> None:
    try:
        with open(dest / MANIFEST_NAME, "rb") as f:
            existing = f.read(len(manifest_bytes) + 1)
    except OSError:
        existing = b""
    if existing != manifest_bytes:
        raise BundleError(f"version {dest.name!r} is already published in {os.fspath(dest.parent)!r} with "
                          f"other content; publish under another version")
    problems = verify_bundle(dest)
    if problems:
        raise BundleError(f"version {dest.name!r} is already published but damaged: {problems[0]}")


def _point_current(root: pathlib.Path, version: str) -> None:
    # A relative target, so that the root can be moved or mounted elsewhere.
    link = root / CURRENT
    if os.path.lexists(link) and not link.is_symlink():
        raise BundleError(f"{os.fspath(link)!r} exists but is not a symlink; not a publish root")
    tmp = root / f".{CURRENT}.tmp-{secrets.token_hex(6)}"
    os.symlink(version, tmp)
    try:
        os.replace(tmp, link)  # atomic: `current` names the old version or the new, never nothing
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def published_versions(root: str | os.PathLike[str]) -> list[str]:
    """Versions present under a publish root, newest publish first.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> published_versions(tempfile.mkdtemp())
    []
    """
    root = pathlib.Path(root)
    found = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for e in entries:
        if e.name == CURRENT or e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
            continue
        try:
            found.append((e.stat(follow_symlinks=False).st_mtime_ns, e.name))
        except FileNotFoundError:  # pragma: no cover - pruned meanwhile
            continue
    return [name for _, name in sorted(found, reverse=True)]


def _prune(root: pathlib.Path, keep: int) -> None:
    current = current_version(root)
    versions = [v for v in published_versions(root) if v != current]
    for name in versions[max(keep - 1, 0):]:
        # Renamed aside first: a publisher killed mid-delete leaves a `.trash-*` entry (cleaned
        # next time), never a half-deleted folder under a version's name.
        trash = root / f".trash-{name}-{secrets.token_hex(4)}"
        try:
            os.rename(root / name, trash)
        except FileNotFoundError:  # pragma: no cover
            continue
        shutil.rmtree(trash, ignore_errors=True)
        logger.info("deleted old version %s of %s", name, root)


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
    if len(d) != len(pairs):  # linear: one pass with a set, only when there is a duplicate
        seen: set[str] = set()
        dupes: set[str] = set()
        for k, _ in pairs:
            (dupes if k in seen else seen).add(k)
        shown = sorted(dupes)
        more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
        raise ValueError(f"duplicate keys {shown[:5]}{more}")
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


class _SizeProblem(Exception):
    """A file refused before (or instead of) reading it: wrong type or size."""


#: Largest ``manifest.json`` read (bytes); a larger one is refused without reading it.
MAX_MANIFEST_BYTES = 16 << 20
#: Largest single data file of a bundle (bytes), checked with ``fstat`` before reading.
MAX_FILE_BYTES = 256 << 20
#: Largest sum of a bundle's listed file sizes (bytes).
MAX_BUNDLE_BYTES = 1 << 30


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

    def read(self, name: str, expected_bytes: int | None = None, limit: int | None = None) -> bytes:
        """The bytes of file ``name``, checked to be a regular file within the size limits before reading.

        Raises :class:`_SizeProblem` (without reading) if the file's size differs from
        ``expected_bytes`` or exceeds ``limit``; OSError for anything the OS refuses.
        """
        if self.fd is None:  # pragma: no cover - Windows
            f = open(self.path / name, "rb")
        else:
            # O_NONBLOCK: opening a FIFO put in place of a file must not wait for a writer.
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            f = os.fdopen(os.open(name, flags, dir_fd=self.fd), "rb")
        with f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise _SizeProblem("is not a regular file")
            if limit is not None and st.st_size > limit:
                raise _SizeProblem(f"has {st.st_size} bytes, more than the limit of {limit} bytes "
                                   f"(refused without reading it)")
            if expected_bytes is not None and st.st_size != expected_bytes:
                raise _SizeProblem(f"has {st.st_size} bytes, {MANIFEST_NAME} lists {expected_bytes} "
                                   f"(truncated or altered)")
            cap = st.st_size if limit is None else min(st.st_size, limit)
            data = f.read(cap + 1)  # one byte more: a file that grew since fstat is caught below
        if len(data) > cap:
            raise _SizeProblem("grew while being read")
        return data

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
                  required_files: Sequence[str], secret: bytes | None
                  ) -> tuple[Bundle | None, list[_Problem], tuple | None]:
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
        return _inspect_folder(folder, where, expected_hash, expected_names, required_files, secret)
    finally:
        folder.close()


def _inspect_folder(folder: _Folder, where: str, expected_hash: str | None,
                    expected_names: list[str] | None, required_files: Sequence[str], secret: bytes | None
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
        raw = folder.read(MANIFEST_NAME, limit=MAX_MANIFEST_BYTES)
    except _SizeProblem as err:
        return fatal(f"{MANIFEST_NAME} {err}")
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

    total = sum(entry["bytes"] for entry in listed.values())
    if total > MAX_BUNDLE_BYTES:
        return fatal(f"{MANIFEST_NAME} lists {total} bytes of files, more than the limit of {MAX_BUNDLE_BYTES}")
    if secret is not None:
        problem = _signature_problem(manifest, secret)
        if problem:
            return fatal(problem)

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
            content = folder.read(name, expected_bytes=expected["bytes"], limit=MAX_FILE_BYTES)
        except _SizeProblem as err:
            add(f"file {name!r} {err}")
            continue
        except OSError as err:
            add(f"could not read file {name!r}: {err}", err)
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
             expected_feature_names: Sequence[str] | None, required_files: Sequence[str],
             require_signature: bool = False, key: str | bytes | None = None
             ) -> tuple[Bundle | None, list[_Problem]]:
    path = pathlib.Path(path)
    secret = None
    if require_signature:
        secret = signing_key(key)
        if secret is None:
            raise ValidationError(f"require_signature=True needs the key: pass key= or set {KEY_ENV}")
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
    # A publish root is read through its `current` symlink, resolved afresh on each attempt.
    for attempt in range(4):
        target = _resolve(path)
        bundle, problems, ident = _inspect_once(target, expected_feature_hash, expected_names, required, secret)
        if not problems:
            break
        # Retry only if what path names changed under us: `current` flipped, the folder was
        # replaced, or (the two-rename fallback of write_bundle, or a version pruned after we
        # resolved `current`) it vanished for an instant.
        if ident is None:
            if attempt == 0 or _resolve(path) != target:
                time.sleep(0.001)
                continue
            break
        if _resolve(path) == target and _identity(target) == ident:
            break
        logger.info("bundle %s was replaced while being read; reading it again", path)
    return bundle, problems


def read_bundle(path: str | os.PathLike[str], *, expected_feature_hash: str | None = None,
                required_files: Sequence[str] = (),
                expected_feature_names: Sequence[str] | None = None,
                require_signature: bool = False, key: str | bytes | None = None) -> Bundle:
    """Read and verify a bundle; refuse it with a precise :class:`BundleError` if anything is off.

    Checks, in order: the folder exists and is a folder; ``manifest.json`` is present, valid
    strict JSON (no NaN, no duplicate keys), has ``format_version`` (a supported one),
    ``library_version`` and ``files``; every listed name is a plain name; required files are
    listed; the listed sizes are within :data:`MAX_FILE_BYTES` / :data:`MAX_BUNDLE_BYTES`; with
    ``require_signature`` the signature is made with the key; the feature schema matches; no
    unlisted entry is in the folder (refused: it may be tampering or a half-copied bundle); every
    listed file is a regular file (not a symlink or FIFO) of the listed size (checked with
    ``fstat`` before reading, so an oversized file is never read) and sha256; every ``.json``
    file parses (duplicate keys refused). Nothing is executed or unpickled.

    ``path`` may be a publish root (see :func:`publish`): its ``current`` symlink is followed,
    and read again if it flips while the bundle is being read.

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
    require_signature : bool, default False
        Refuse a bundle that is unsigned, signed with another key, or altered after signing.
    key : str or bytes, optional
        The signing key for ``require_signature`` (default: ``$NEXTCHANNEL_BUNDLE_KEY``).

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
    bundle, problems = _inspect(path, expected_feature_hash, expected_feature_names, required_files,
                                require_signature, key)
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
                  expected_feature_names: Sequence[str] | None = None,
                  require_signature: bool = False, key: str | bytes | None = None) -> list[str]:
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
    _, problems = _inspect(path, expected_feature_hash, expected_feature_names, required_files,
                           require_signature, key)
    return [p.message for p in problems]
