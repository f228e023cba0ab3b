"""Exact, fast single-row LightGBM evaluation for the in-process scorer.

This module sits between the ``models`` (which train LightGBM boosters) and the ``scorer``
(which answers one request at a time): the scorer loads each model's text once into a
:class:`FastBooster` and, per request, writes the feature vector into a preallocated row
buffer and calls :meth:`Predictor.predict`.

Why not ``lightgbm.Booster.predict``? For one row it spends most of its time in Python
(parameter strings, shape checks, array conversion) and builds a new C++ predictor on
every call. LightGBM's C API has a single-row fast path,
``LGBM_BoosterPredictForMatSingleRowFastInit`` / ``LGBM_BoosterPredictForMatSingleRowFast``,
that parses the configuration once and keeps the predictor. We call it through ``ctypes``
on the very library the ``lightgbm`` package ships, so the trees are walked by the same
compiled code and the outputs are bit-for-bit those of ``Booster.predict``.

Rules this module keeps:

* every numpy buffer whose address is handed to C is referenced by the Python object
  that hands it over (a ``ctypes`` pointer does not keep an array alive);
* a FastConfig handle serialises its calls behind its own lock, so each thread gets its
  own handle, created lazily on that thread's first use and freed on :meth:`FastBooster.close`
  (or when the thread's last reference to it goes);
* closing while other threads predict is safe: ``close`` waits for calls in flight, and
  later calls raise :class:`~nextchannel.errors.NextChannelError` instead of touching
  freed memory;
* the per-call cost on top of LightGBM's own is one uncontended lock and a few attribute
  reads (about 0.3 µs measured here), which is what makes ``close`` safe;
* model text is checked completely in Python (:mod:`nextchannel.modeltext`) before it
  reaches C, so text that would make LightGBM abort the process (truncated trees, CRLF line
  ends, non-numeric tree fields), loop for ever or read out of bounds (a child index or a
  split feature out of range) raises :class:`~nextchannel.errors.BundleError` instead.

Examples
--------
>>> import numpy as np, lightgbm as lgb
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
>>> booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
...                     lgb.Dataset(X, y), num_boost_round=5)
>>> fb = FastBooster(booster.model_to_string())
>>> p = fb.predictor()
>>> p.row[:] = X[0]
>>> out = p.predict()
>>> bool(abs(out[0] - booster.predict(X[:1])[0]) < 1e-12)
True
>>> fb.close()
"""

from __future__ import annotations

import ctypes
import math
import logging
import threading
import weakref
from typing import Any, Iterator, Literal

import numpy as np

from nextchannel.errors import BundleError, ConfigError, NextChannelError, ValidationError
from nextchannel.modeltext import check_model_text

__all__ = ["FastBooster", "ModelStack", "Predictor", "lightgbm_library_path", "live_handles", "stack_model_texts"]

logger = logging.getLogger(__name__)

PredictType = Literal["normal", "raw", "leaf", "contrib"]

# C_API_PREDICT_* and C_API_DTYPE_* from LightGBM's c_api.h
_PREDICT_TYPES: dict[str, int] = {"normal": 0, "raw": 1, "leaf": 2, "contrib": 3}
_C_API_DTYPE_FLOAT64 = 1
_MAX_ROWS_PER_CALL = 2**31 - 1  # nrow is an int32_t in LGBM_BoosterPredictForMat

_c_void_p = ctypes.c_void_p
_c_int = ctypes.c_int
_c_int32 = ctypes.c_int32
_c_int64 = ctypes.c_int64
_c_char_p = ctypes.c_char_p


def lightgbm_library_path() -> str:
    """The ``lib_lightgbm`` file the installed ``lightgbm`` package loads, found without importing it.

    Importing ``lightgbm`` imports scikit-learn, SciPy and pandas when they are installed (about
    a second); the scorer needs only the shared library. This follows the search order of
    LightGBM's own ``libpath.py`` (the package's parent folder, then its ``bin`` and ``lib``
    folders), starting from the package folder that :func:`importlib.util.find_spec` reports
    without running the package.

    Raises
    ------
    ImportError
        ``lightgbm`` is not installed, or its folder holds no library file (the paths tried named).

    Examples
    --------
    >>> import os
    >>> os.path.basename(lightgbm_library_path()).startswith("lib_lightgbm")
    True
    """
    import importlib.util
    import platform
    from pathlib import Path

    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the lightgbm package is not installed (pip install lightgbm)")
    package = (Path(list(spec.submodule_search_locations)[0]) / "libpath.py").resolve().parent
    folders = [package.parent, package / "bin", package / "lib"]
    system = platform.system()
    if system in ("Windows", "Microsoft"):
        folders += [package.parent / "Release", package.parent / "windows" / "x64" / "DLL"]
        name = "lib_lightgbm.dll"
    else:
        name = "lib_lightgbm.dylib" if system == "Darwin" else "lib_lightgbm.so"
    for folder in folders:
        if (folder / name).is_file():
            return str(folder / name)
    raise ImportError("cannot find lightgbm's library file in: " + ", ".join(str(f / name) for f in folders))


def _load_library() -> ctypes.CDLL:
    """Open ``lib_lightgbm``, the very file the ``lightgbm`` package loads (:func:`lightgbm_library_path`).

    If the ``lightgbm`` package is imported too, ``dlopen`` hands both the process's one copy of the
    library, but this ``CDLL`` has its own function objects, so setting ``argtypes`` here cannot
    change how the ``lightgbm`` package calls the same functions.
    """
    lib = ctypes.CDLL(lightgbm_library_path())
    signatures: dict[str, list[Any]] = {
        # int LGBM_BoosterLoadModelFromString(const char*, int* out_num_iterations, BoosterHandle*)
        "LGBM_BoosterLoadModelFromString": [_c_char_p, ctypes.POINTER(_c_int), ctypes.POINTER(_c_void_p)],
        "LGBM_BoosterFree": [_c_void_p],
        "LGBM_BoosterGetNumFeature": [_c_void_p, ctypes.POINTER(_c_int)],
        "LGBM_BoosterGetNumClasses": [_c_void_p, ctypes.POINTER(_c_int)],
        # int LGBM_BoosterCalcNumPredict(handle, int num_row, int predict_type,
        #                                int start_iteration, int num_iteration, int64_t* out_len)
        "LGBM_BoosterCalcNumPredict": [_c_void_p, _c_int, _c_int, _c_int, _c_int, ctypes.POINTER(_c_int64)],
        # int ...FastInit(handle, int predict_type, int start_iteration, int num_iteration,
        #                 int data_type, int32_t ncol, const char* parameter, FastConfigHandle* out)
        "LGBM_BoosterPredictForMatSingleRowFastInit": [
            _c_void_p, _c_int, _c_int, _c_int, _c_int, _c_int32, _c_char_p, ctypes.POINTER(_c_void_p),
        ],
        # int ...Fast(FastConfigHandle, const void* data, int64_t* out_len, double* out_result);
        # all four as addresses, prepared once per Predictor
        "LGBM_BoosterPredictForMatSingleRowFast": [_c_void_p, _c_void_p, _c_void_p, _c_void_p],
        "LGBM_FastConfigFree": [_c_void_p],
        # int LGBM_BoosterPredictForMat(handle, const void* data, int data_type, int32_t nrow,
        #     int32_t ncol, int is_row_major, int predict_type, int start_iteration,
        #     int num_iteration, const char* parameter, int64_t* out_len, double* out_result)
        "LGBM_BoosterPredictForMat": [
            _c_void_p, _c_void_p, _c_int, _c_int32, _c_int32, _c_int, _c_int, _c_int, _c_int,
            _c_char_p, ctypes.POINTER(_c_int64), _c_void_p,
        ],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = _c_int
    lib.LGBM_GetLastError.argtypes = []
    lib.LGBM_GetLastError.restype = _c_char_p
    return lib


_LIB = _load_library()
_PREDICT_ONE_ROW = _LIB.LGBM_BoosterPredictForMatSingleRowFast

# live handle counts, for leak checks and monitoring
_live_lock = threading.Lock()
_live = {"booster": 0, "fast_config": 0}


def _count(kind: str, delta: int) -> None:
    with _live_lock:
        _live[kind] += delta


def live_handles() -> dict[str, int]:
    """Numbers of LightGBM handles this module holds right now, by kind.

    Returns
    -------
    dict
        ``{"booster": n, "fast_config": m}``: open booster handles (one per open
        :class:`FastBooster`) and FastConfig handles (one per thread that predicted with a
        still-open booster).

    Examples
    --------
    >>> sorted(live_handles())
    ['booster', 'fast_config']
    """
    with _live_lock:
        return dict(_live)


def _last_error() -> str:
    msg = _LIB.LGBM_GetLastError()  # thread-local in LightGBM: read it right after the failure
    return msg.decode("utf-8", "replace") if msg else "(LightGBM gave no message)"


# --- model text checks ---------------------------------------------------------------------

def _check_model_text(model_str: object) -> bytes:
    """Return the model text as bytes, or raise BundleError for text that is not sound LightGBM text.

    LightGBM parses the trees of a text inside an OpenMP loop; a parse error there calls
    ``std::terminate`` and takes the whole process down, and its tree walk trusts child indices
    and split features. :func:`nextchannel.modeltext.check_model_text` proves the whole text sound
    in Python first (tree sizes, fields, numbers, child structure, features), so such text raises
    :class:`~nextchannel.errors.BundleError` instead.
    """
    if not isinstance(model_str, str):
        raise BundleError(
            f"model_str must be LightGBM model text (a str), got {type(model_str).__name__}"
        )
    check_model_text(model_str, where="model_str")
    return model_str.encode("utf-8")


# --- handles ---------------------------------------------------------------------------------


class _FastConfig:
    """One FastConfig handle: the single-row predictor of one thread.

    Its ``lock`` is held during every call, and by :meth:`free`, so that a handle is never
    freed while a call through it is running. The lock is only contended at close time.
    """

    __slots__ = ("handle", "lock", "owner", "__weakref__")

    def __init__(self, owner: FastBooster) -> None:
        handle = _c_void_p()
        params = f"num_threads={owner._num_threads}".encode()
        rc = _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            owner._handle, owner._c_predict_type, 0, -1, _C_API_DTYPE_FLOAT64,
            owner.num_features, params, ctypes.byref(handle),
        )
        if rc != 0:
            raise NextChannelError(f"LightGBM could not set up single-row prediction: {_last_error()}")
        _count("fast_config", +1)
        self.handle: _c_void_p | None = handle
        self.lock = threading.Lock()
        self.owner = owner  # keeps the booster handle alive as long as this handle is

    def free(self) -> None:
        with self.lock:
            handle, self.handle = self.handle, None
            if handle is not None:
                _LIB.LGBM_FastConfigFree(handle)
                _count("fast_config", -1)

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # interpreter shutdown: module globals may be gone  # pragma: no cover
            pass


class Predictor:
    """Single-row prediction through preallocated buffers, for one thread.

    Made by :meth:`FastBooster.predictor` (owns fresh buffers) or :meth:`FastBooster.bind`
    (uses the caller's). All checks are done when it is made; :meth:`predict` only calls C.
    Use a predictor from the thread that made it: it shares that thread's FastConfig handle.

    Attributes
    ----------
    row : numpy.ndarray of float64, shape (num_features,)
        The input features, NaN for missing. Write into it (``p.row[:] = x``); read-only
        attribute, as C holds its address.
    out : numpy.ndarray of float64, shape (num_outputs,)
        The outputs of the last :meth:`predict`.

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); y = X[:, 0] + rng.normal(size=200)
    >>> b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
    ...               lgb.Dataset(X, y), num_boost_round=5)
    >>> fb = FastBooster(b.model_to_string())
    >>> row, out = np.zeros(3), np.zeros(1)
    >>> p = fb.bind(row, out)
    >>> row[:] = X[1]
    >>> _ = p.predict()
    >>> bool(out[0] == b.predict(X[1:2])[0])
    True
    >>> fb.close()
    """

    __slots__ = ("_row", "_out", "_fc", "_args", "_out_len")

    def __init__(self, fc: _FastConfig, row: np.ndarray, out: np.ndarray) -> None:
        # These references keep the arrays alive: C gets only their addresses. ``row`` and
        # ``out`` are read-only properties, so that rebinding cannot drop an array C uses.
        self._row = row
        self._out = out
        self._out_len = _c_int64(0)
        self._fc = fc
        self._args = (
            _c_void_p(row.ctypes.data),
            _c_void_p(ctypes.addressof(self._out_len)),
            _c_void_p(out.ctypes.data),
        )

    @property
    def row(self) -> np.ndarray:
        """The input buffer, shape ``(num_features,)``; write into it, NaN for missing."""
        return self._row

    @property
    def out(self) -> np.ndarray:
        """The output buffer, shape ``(num_outputs,)``, holding the last prediction."""
        return self._out

    def predict(self) -> np.ndarray:
        """Predict for :attr:`row` into :attr:`out` and return :attr:`out` (no copy).

        Raises
        ------
        NextChannelError
            The booster was closed, or LightGBM reported an error (its message included).
        """
        fc = self._fc
        row_p, len_p, out_p = self._args
        with fc.lock:
            handle = fc.handle
            if handle is None:
                raise NextChannelError("FastBooster is closed; load the model again to predict")
            rc = _PREDICT_ONE_ROW(handle, row_p, len_p, out_p)
        if rc != 0:
            raise NextChannelError(f"LightGBM single-row prediction failed: {_last_error()}")
        return self._out


class FastBooster:
    """A LightGBM model for fast, exact single-row prediction through LightGBM's C API.

    Parameters
    ----------
    model_str : str
        Model text, as from ``lightgbm.Booster.model_to_string()``.
    predict_type : {"normal", "raw", "leaf", "contrib"}, default "normal"
        ``"normal"``: transformed output (probabilities for binary and multiclass, the
        prediction for regression); ``"raw"``: raw scores; ``"leaf"``: the index of the leaf
        each tree puts the row in (one value per tree, in the text's tree order); ``"contrib"``:
        SHAP feature contributions, ``num_features + 1`` values per class (the last is the
        expected value).
    num_threads : int, default 1
        Passed to LightGBM as ``num_threads`` for each thread's handle and for
        :meth:`predict_many`. Note that LightGBM applies it with ``omp_set_num_threads``
        in the calling thread. ``0`` leaves OpenMP's setting alone (and uses it for batches).

    Attributes
    ----------
    num_features : int
        Length of a row.
    num_class : int
        1 for binary and regression, K for a K-class model.
    num_outputs : int
        Length of one row's output: ``num_class``, the number of trees for ``"leaf"``, or
        ``(num_features + 1) * num_class`` for ``"contrib"``.
    predict_type : str

    Raises
    ------
    BundleError
        The model text is not a LightGBM model (LightGBM's message included).
    ConfigError
        ``predict_type`` or ``num_threads`` is invalid.

    Notes
    -----
    Thread safety: every method may be called from many threads. Each thread gets its own
    FastConfig handle on first use; :class:`Predictor` objects must stay with the thread
    that made them. :meth:`close` frees every handle (waiting for calls in flight).
    Without ``close`` the handles go with the last reference, at the garbage collector's
    next pass (the per-thread state makes a reference cycle), so close a model you replace.

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4)); y = rng.integers(0, 3, 300)
    >>> b = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
    ...                "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=5)
    >>> with FastBooster(b.model_to_string()) as fb:
    ...     print(fb.num_features, fb.num_outputs)
    ...     bool(np.array_equal(fb.predict_many(X[:5]), b.predict(X[:5])))
    4 3
    True
    """

    def __init__(
        self,
        model_str: str,
        *,
        predict_type: PredictType = "normal",
        num_threads: int = 1,
    ) -> None:
        if not isinstance(predict_type, str) or predict_type not in _PREDICT_TYPES:
            raise ConfigError(
                f"predict_type must be one of {sorted(_PREDICT_TYPES)}, got {predict_type!r}"
            )
        is_int = isinstance(num_threads, (int, np.integer)) and not isinstance(num_threads, bool)
        if not is_int or num_threads < 0:
            raise ConfigError(f"num_threads must be an int >= 0, got {num_threads!r}")
        self.predict_type: str = predict_type
        self._c_predict_type = _PREDICT_TYPES[predict_type]
        self._num_threads = int(num_threads)
        self._lock = threading.RLock()
        self._batches_done = threading.Condition(self._lock)
        self._batches_in_flight = 0
        self._closing = False
        self._fast_configs: weakref.WeakSet[_FastConfig] = weakref.WeakSet()
        self._local = threading.local()
        self._handle: _c_void_p | None = None

        data = _check_model_text(model_str)
        handle = _c_void_p()
        num_iterations = _c_int(0)
        rc = _LIB.LGBM_BoosterLoadModelFromString(data, ctypes.byref(num_iterations), ctypes.byref(handle))
        if rc != 0:
            raise BundleError(f"LightGBM could not load the model text: {_last_error()}")
        self._handle = handle
        _count("booster", +1)

        n_features, n_class, n_out = _c_int(0), _c_int(0), _c_int64(0)
        self._call(_LIB.LGBM_BoosterGetNumFeature(handle, ctypes.byref(n_features)))
        self._call(_LIB.LGBM_BoosterGetNumClasses(handle, ctypes.byref(n_class)))
        self._call(
            _LIB.LGBM_BoosterCalcNumPredict(handle, 1, self._c_predict_type, 0, -1, ctypes.byref(n_out))
        )
        self.num_features: int = n_features.value
        self.num_class: int = n_class.value
        self.num_outputs: int = int(n_out.value)
        self.num_iterations: int = num_iterations.value
        expected = (self.num_iterations if predict_type == "leaf" else 1) * self.num_class \
            * (self.num_features + 1 if predict_type == "contrib" else 1)
        if self.num_outputs != expected:  # pragma: no cover - would mean a LightGBM change
            raise NextChannelError(
                f"LightGBM reports {self.num_outputs} outputs per row, expected {expected}"
            )
        logger.debug(
            "loaded LightGBM model: %d iterations, %d features, %d classes, predict_type=%s",
            self.num_iterations, self.num_features, self.num_class, predict_type,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    @staticmethod
    def _call(rc: int) -> None:
        if rc != 0:
            raise NextChannelError(f"LightGBM call failed: {_last_error()}")

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._handle is None

    def close(self) -> None:
        """Free the booster and every thread's FastConfig handle. Idempotent.

        Waits for predictions in flight in other threads; later calls raise
        :class:`~nextchannel.errors.NextChannelError`.
        """
        with self._lock:
            if self._handle is None:
                return
            self._closing = True  # refuse new work while waiting for batches in flight
            self._batches_done.wait_for(lambda: self._batches_in_flight == 0)
            for fc in list(self._fast_configs):
                fc.free()
            _LIB.LGBM_BoosterFree(self._handle)
            self._handle = None
            _count("booster", -1)
            self._local = threading.local()  # drop this thread's cached predictors

    def __enter__(self) -> FastBooster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Reached when nothing outside a reference cycle (self -> thread-local -> handle ->
        # self) refers to us; finalizers run before the cycle is torn down, so close() can
        # still free the FastConfig handles before the booster they point into.
        try:
            if getattr(self, "_handle", None) is not None:
                self.close()
        except Exception:  # interpreter shutdown  # pragma: no cover
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.num_iterations} iterations"
        return (
            f"FastBooster(num_features={self.num_features}, num_class={self.num_class}, "
            f"predict_type={self.predict_type!r}, {state})"
        )

    # -- per-thread state ------------------------------------------------------------------

    def _thread_fast_config(self) -> _FastConfig:
        fc = getattr(self._local, "fc", None)
        if fc is None or fc.handle is None:
            with self._lock:
                if self._handle is None or self._closing:
                    raise NextChannelError("FastBooster is closed; load the model again to predict")
                fc = _FastConfig(self)
                self._fast_configs.add(fc)
            self._local.fc = fc
        return fc

    # -- single rows ---------------------------------------------------------------------------

    def _check_buffers(self, row: object, out: object) -> None:
        for name, arr, size, writeable in (
            ("row", row, self.num_features, False),
            ("out", out, self.num_outputs, True),
        ):
            if not isinstance(arr, np.ndarray):
                raise ValidationError(f"{name} must be a numpy.ndarray, got {type(arr).__name__}")
            if arr.dtype != np.float64:
                raise ValidationError(f"{name} must have dtype float64, got {arr.dtype}")
            if arr.shape != (size,):
                raise ValidationError(f"{name} must have shape ({size},), got {arr.shape}")
            if not (arr.flags.c_contiguous and arr.flags.aligned):
                raise ValidationError(
                    f"{name} must be a C-contiguous, aligned array (use np.ascontiguousarray)"
                )
            if writeable and not arr.flags.writeable:
                raise ValidationError(f"{name} must be writeable")
        if np.shares_memory(row, out):
            raise ValidationError("row and out must not share memory")

    def bind(self, row: np.ndarray, out: np.ndarray) -> Predictor:
        """Make a :class:`Predictor` on the caller's buffers, for the calling thread.

        Parameters
        ----------
        row : numpy.ndarray of float64, shape (num_features,)
            C-contiguous input buffer; NaN means missing.
        out : numpy.ndarray of float64, shape (num_outputs,)
            C-contiguous, writeable output buffer, not overlapping ``row``.

        Returns
        -------
        Predictor
            Keeps references to both arrays.

        Raises
        ------
        ValidationError
            Wrong type, dtype, shape or layout, naming the buffer and what it got.

        Examples
        --------
        >>> import numpy as np, lightgbm as lgb
        >>> X = np.random.default_rng(0).normal(size=(100, 2)); y = (X[:, 1] > 0).astype(int)
        >>> b = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
        ...               lgb.Dataset(X, y), num_boost_round=3)
        >>> fb = FastBooster(b.model_to_string())
        >>> fb.bind(np.zeros(3), np.zeros(1))
        Traceback (most recent call last):
        ...
        nextchannel.errors.ValidationError: row must have shape (2,), got (3,)
        >>> fb.close()
        """
        self._check_buffers(row, out)
        return Predictor(self._thread_fast_config(), row, out)

    def predictor(self) -> Predictor:
        """The calling thread's own :class:`Predictor`, with buffers it owns.

        The first call in a thread makes it (``row`` filled with NaN); later calls in the
        same thread return the same object.

        Examples
        --------
        >>> import numpy as np, lightgbm as lgb
        >>> X = np.random.default_rng(0).normal(size=(100, 2)); y = (X[:, 1] > 0).astype(int)
        >>> b = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
        ...               lgb.Dataset(X, y), num_boost_round=3)
        >>> fb = FastBooster(b.model_to_string())
        >>> p = fb.predictor()
        >>> p is fb.predictor(), p.row.shape, p.out.shape
        (True, (2,), (1,))
        >>> fb.close()
        """
        p = getattr(self._local, "predictor", None)
        if p is None or p._fc.handle is None:
            fc = self._thread_fast_config()
            p = Predictor(fc, np.full(self.num_features, np.nan), np.zeros(self.num_outputs))
            self._local.predictor = p
        return p

    def predict_into(self, row: np.ndarray, out: np.ndarray) -> None:
        """Predict one row into ``out``.

        The buffers are checked the first time this thread passes them; while a thread keeps
        passing the same two arrays, a call does no checks and no allocation.

        Parameters
        ----------
        row : numpy.ndarray of float64, shape (num_features,)
        out : numpy.ndarray of float64, shape (num_outputs,)

        Examples
        --------
        >>> import numpy as np, lightgbm as lgb
        >>> X = np.random.default_rng(0).normal(size=(100, 2)); y = X[:, 0]
        >>> b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
        ...               lgb.Dataset(X, y), num_boost_round=3)
        >>> fb = FastBooster(b.model_to_string())
        >>> row, out = X[3].copy(), np.empty(1)
        >>> fb.predict_into(row, out)
        >>> bool(out[0] == b.predict(X[3:4])[0])
        True
        >>> fb.close()
        """
        p = getattr(self._local, "bound", None)
        if p is None or p._row is not row or p._out is not out or p._fc.handle is None:
            p = self.bind(row, out)
            self._local.bound = p
        p.predict()

    def predict_one(self, row: Any) -> np.ndarray:
        """Predict one row given as any 1-D sequence of numbers; returns a new array.

        Convenient, not the fastest path: it copies ``row`` and the result.

        Examples
        --------
        >>> import numpy as np, lightgbm as lgb
        >>> X = np.random.default_rng(0).normal(size=(100, 2)); y = X[:, 0]
        >>> b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
        ...               lgb.Dataset(X, y), num_boost_round=3)
        >>> fb = FastBooster(b.model_to_string())
        >>> fb.predict_one([0.5, float("nan")]).shape
        (1,)
        >>> fb.close()
        """
        try:
            values = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValidationError(f"row must be numbers, got {type(row).__name__}: {err}") from err
        if values.shape != (self.num_features,):
            raise ValidationError(f"row must have shape ({self.num_features},), got {values.shape}")
        p = self.predictor()
        p.row[:] = values
        return p.predict().copy()

    # -- batches -------------------------------------------------------------------------------

    def predict_many(self, X: Any, num_threads: int | None = None) -> np.ndarray:
        """Predict many rows with one call to ``LGBM_BoosterPredictForMat``.

        Parameters
        ----------
        X : array-like of shape (n_rows, num_features)
            Converted to a C-contiguous float64 array (a copy only if needed).
        num_threads : int, optional
            Threads for this batch (default: the booster's ``num_threads``).

        Returns
        -------
        numpy.ndarray
            Shaped like ``lightgbm.Booster.predict``'s output: ``(n_rows,)`` when
            ``num_outputs == 1``, else ``(n_rows, num_outputs)``.

        Examples
        --------
        >>> import numpy as np, lightgbm as lgb
        >>> X = np.random.default_rng(0).normal(size=(100, 2)); y = (X[:, 1] > 0).astype(int)
        >>> b = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
        ...               lgb.Dataset(X, y), num_boost_round=3)
        >>> fb = FastBooster(b.model_to_string(), predict_type="contrib")
        >>> fb.predict_many(X[:4]).shape
        (4, 3)
        >>> fb.close()
        """
        try:
            mat = np.ascontiguousarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValidationError(f"X must be a 2-D array of numbers: {err}") from err
        if mat.ndim != 2 or mat.shape[1] != self.num_features:
            raise ValidationError(
                f"X must have shape (n_rows, {self.num_features}), got {mat.shape}"
            )
        out = np.empty((mat.shape[0], self.num_outputs), dtype=np.float64)
        for start in range(0, mat.shape[0], _MAX_ROWS_PER_CALL):
            chunk = mat[start:start + _MAX_ROWS_PER_CALL]
            self._predict_mat(chunk, out[start:start + chunk.shape[0]], num_threads)
        return out[:, 0] if self.num_outputs == 1 else out

    def _predict_mat(self, mat: np.ndarray, out: np.ndarray, num_threads: int | None = None) -> None:
        threads = self._num_threads if num_threads is None else int(num_threads)
        if threads < 0:
            raise ConfigError(f"num_threads must be an int >= 0, got {num_threads!r}")
        params = f"num_threads={threads}".encode()
        out_len = _c_int64(0)
        with self._lock:  # register the call, so that close() waits for it
            handle = self._handle
            if handle is None or self._closing:
                raise NextChannelError("FastBooster is closed; load the model again to predict")
            self._batches_in_flight += 1
        try:  # outside our lock: batches from several threads run side by side
            rc = _LIB.LGBM_BoosterPredictForMat(
                handle, mat.ctypes.data, _C_API_DTYPE_FLOAT64, mat.shape[0], mat.shape[1],
                1, self._c_predict_type, 0, -1, params, ctypes.byref(out_len), out.ctypes.data,
            )
        finally:
            with self._lock:
                self._batches_in_flight -= 1
                self._batches_done.notify_all()
        if rc != 0:
            raise NextChannelError(f"LightGBM batch prediction failed: {_last_error()}")
        if out_len.value != out.size:  # pragma: no cover - would mean a LightGBM change
            raise NextChannelError(f"LightGBM wrote {out_len.value} values, expected {out.size}")


# --- several models in one evaluation ---------------------------------------------------------

# Output transforms LightGBM applies to a single-output model's raw score, by objective. The stack
# evaluates raw scores in C and applies these in Python (identity for the regression family).
_IDENTITY_OBJECTIVES = frozenset({"regression", "regression_l1", "huber", "fair", "quantile", "mape"})
_EXP_OBJECTIVES = frozenset({"poisson", "gamma", "tweedie"})
_EMPTY_TREE = ("num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\nleft_child=\n"
               "right_child=\nleaf_value=0\nleaf_weight=\nleaf_count=0\ninternal_value=\ninternal_weight=\n"
               "internal_count=\nis_linear=0\nshrinkage=1\n\n\n")


class _Transform:
    """One model's output transform: ``raw / n_iterations`` for averaged models, then the objective's link."""

    __slots__ = ("kind", "sigmoid", "divisor")

    def __init__(self, objective: str | None, divisor: float) -> None:
        tokens = (objective or "regression").split(" ")
        name = tokens[0]
        opts = dict(t.split(":", 1) for t in tokens[1:] if ":" in t)
        self.divisor = divisor
        self.sigmoid = float(opts.get("sigmoid", 1.0))
        if name in _IDENTITY_OBJECTIVES:
            self.kind = "identity"
        elif name == "binary":
            self.kind = "sigmoid"
        elif name == "cross_entropy":
            self.kind, self.sigmoid = "sigmoid", 1.0
        elif name in _EXP_OBJECTIVES:
            self.kind = "exp"
        else:
            raise BundleError(f"a stacked model must have a single-output objective (regression, binary, poisson, "
                              f"...), got {name!r}")

    @property
    def identity(self) -> bool:
        return self.kind == "identity" and self.divisor == 1.0

    def one(self, raw: float) -> float:
        x = raw / self.divisor if self.divisor != 1.0 else raw
        if self.kind == "sigmoid":  # as LightGBM: 1 / (1 + exp(-sigmoid * x))
            return 1.0 / (1.0 + math.exp(-self.sigmoid * x))
        if self.kind == "exp":
            return math.exp(x)
        return x

    def many(self, raw: np.ndarray) -> np.ndarray:
        x = raw / self.divisor if self.divisor != 1.0 else raw
        if self.kind == "sigmoid":
            return 1.0 / (1.0 + np.exp(-self.sigmoid * x))
        if self.kind == "exp":
            return np.exp(x)
        return x


def _split_model_text(text: str) -> tuple[dict[str, str], list[str]]:
    """(header fields, tree blocks without their ``Tree=i`` line) of sound LightGBM text."""
    data = _check_model_text(text)  # proven sound (and cached): the byte arithmetic below can trust it
    first = data.find(b"\nTree=")
    end = first + 1 if first >= 0 else data.find(b"\nend of trees")
    header = {}
    for line in data[:end].decode("utf-8").split("\n")[1:]:
        key, sep, value = line.partition("=")
        if sep:
            header[key] = value
    blocks, pos = [], end
    for size in (int(tok) for tok in header.get("tree_sizes", "").split()):
        block = data[pos:pos + size].decode("ascii")
        blocks.append(block[block.index("\n") + 1:])
        pos += size
    return header, blocks


def stack_model_texts(texts: "list[str] | tuple[str, ...]") -> tuple[str, tuple[_Transform, ...]]:
    """Several single-output models' texts as one model in LightGBM's multiclass layout.

    Model ``k`` becomes class ``k``: iteration ``i`` holds tree ``i`` of every model (a single-leaf
    tree of value 0 where a model has fewer trees), so one call returns every model's raw score,
    summed over its own trees in its own order (the padding adds exact zeros). The text has no
    objective, so LightGBM returns raw scores; each model's output transform is returned beside it.
    The models may read different numbers of features (a prefix of the first model's row, e.g. an
    offer model without the channel context): the stack reads the widest row, named as the first
    model's.

    Returns
    -------
    (str, tuple)
        The stacked model text (checked by :func:`nextchannel.modeltext.check_model_text` like any
        other) and one transform per model (raw score -> the model's own output).

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3)); y = X[:, 0] + rng.normal(size=300)
    >>> reg = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), 7)
    >>> clf = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
    ...                 lgb.Dataset(X[:, :2], (y > 0).astype(int)), 4)
    >>> text, transforms = stack_model_texts([reg.model_to_string(), clf.model_to_string()])
    >>> with ModelStack([reg.model_to_string(), clf.model_to_string()]) as stack:
    ...     both = stack.predict_many(X[:50])
    >>> bool(np.allclose(both[:, 0], reg.predict(X[:50]), rtol=0, atol=1e-12)
    ...      and np.allclose(both[:, 1], clf.predict(X[:50, :2]), rtol=0, atol=1e-12))
    True
    """
    if not texts:
        raise ValidationError("stack_model_texts needs at least one model text, got none")
    parts = [_split_model_text(t) for t in texts]
    transforms = []
    for k, (header, blocks) in enumerate(parts):
        if header.get("num_tree_per_iteration", header.get("num_class", "1")) != "1":
            raise BundleError(f"model {k} of a stack must have one output, got num_tree_per_iteration="
                              f"{header.get('num_tree_per_iteration')}")
        transforms.append(_Transform(header.get("objective"), float(len(blocks)) if "average_output" in header
                                     else 1.0))
    widest = max(range(len(parts)), key=lambda k: int(parts[k][0]["max_feature_idx"]))
    head = parts[widest][0]
    names, infos = head["feature_names"], head["feature_infos"]
    wide = names.split(" ")
    for k, (header, _) in enumerate(parts):
        own = header["feature_names"].split(" ")
        if wide[:len(own)] != own:
            raise BundleError(f"the models of a stack must read one row: model {k}'s features are not a prefix of "
                              f"the widest model's")
    n_iter = max(len(blocks) for _, blocks in parts)
    k_models = len(parts)
    trees = []
    for i in range(n_iter):
        for _, blocks in parts:
            trees.append(f"Tree={len(trees)}\n" + (blocks[i] if i < len(blocks) else _EMPTY_TREE))
    sizes = " ".join(str(len(t)) for t in trees)
    text = (f"tree\nversion=v4\nnum_class={k_models}\nnum_tree_per_iteration={k_models}\nlabel_index=0\n"
            f"max_feature_idx={head['max_feature_idx']}\nfeature_names={names}\nfeature_infos={infos}\n"
            f"tree_sizes={sizes}\n\n" + "".join(trees) + "end of trees\n")
    return text, tuple(transforms)


class ModelStack:
    """Several single-output LightGBM models evaluated together: one C call per row or per batch.

    The scorer's value models (one per action) and its offer model make one stack: one
    single-row call instead of one per model (each call costs about 3 µs before any tree is
    walked). Outputs equal each model's own ``Booster.predict`` (raw scores are summed in the
    same order; the output transform is LightGBM's formula, applied in Python).

    Parameters
    ----------
    texts : sequence of str
        The models' LightGBM text (see :func:`stack_model_texts`).
    num_threads : int, default 1

    Attributes
    ----------
    num_models : int
    num_features : int
        Length of a row (the widest model's).
    num_iterations : int
        Trees per model after padding.
    raw : FastBooster
        The stack's raw-score booster (``num_models`` outputs per row).

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> X = np.random.default_rng(1).normal(size=(200, 2))
    >>> a = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 0]), 5)
    >>> b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 1]), 3)
    >>> stack = ModelStack([a.model_to_string(), b.model_to_string()])
    >>> p = stack.raw.bind(X[0].copy(), np.zeros(2))
    >>> out = stack.finish_one(p.predict())
    >>> bool(out == [a.predict(X[:1])[0], b.predict(X[:1])[0]])
    True
    >>> stack.close()
    """

    #: Batches longer than this are evaluated group by group of models (see :meth:`predict_many`).
    MANY_ROWS = 256
    #: A long batch evaluates consecutive models together up to about this many trees per call (see
    #: :meth:`groups`): measured on the default bundle (60-tree models), groups of 2–3 models gave
    #: 15–20% more rows/s than one model per call and 30% more than the whole 480-tree stack.
    TREES_PER_CALL = 192

    def __init__(self, texts: "list[str] | tuple[str, ...]", *, num_threads: int = 1) -> None:
        self.texts = tuple(texts)
        self.text, self.transforms = stack_model_texts(self.texts)
        self._num_threads = num_threads
        self.raw = FastBooster(self.text, predict_type="raw", num_threads=num_threads)
        self.num_models = self.raw.num_class
        self.num_features = self.raw.num_features
        self.num_iterations = self.raw.num_iterations
        self._custom = tuple((k, t) for k, t in enumerate(self.transforms) if not t.identity)
        self._leaf: FastBooster | None = None
        self._leaf_lock = threading.Lock()
        self._parts: dict[str, tuple[FastBooster, ...]] = {}
        self._groups: dict[str, tuple[tuple[int, int, FastBooster], ...]] = {}
        self.group_bounds = self._group_bounds()

    def _group_bounds(self) -> tuple[tuple[int, int], ...]:
        """(first, end) model indices of the groups: consecutive models, at most :attr:`TREES_PER_CALL`
        trees per group after padding to the group's longest model, at least one model per group."""
        trees = [len(_split_model_text(t)[1]) for t in self.texts]
        bounds, start = [], 0
        while start < len(trees):
            end = start + 1
            while end < len(trees) and max(trees[start:end + 1]) * (end + 1 - start) <= self.TREES_PER_CALL:
                end += 1
            bounds.append((start, end))
            start = end
        return tuple(bounds)

    def groups(self, predict_type: str = "raw") -> tuple[tuple[int, int, FastBooster], ...]:
        """``(first, end, booster)`` per group of :attr:`group_bounds`: a group's models stacked (one model:
        its own booster of :meth:`parts`), of ``predict_type`` ("raw" or "leaf"), made on first use."""
        got = self._groups.get(predict_type)
        if got is None:
            own = self.parts(predict_type) if any(e - b == 1 for b, e in self.group_bounds) else ()
            with self._leaf_lock:
                if predict_type not in self._groups:
                    self._groups[predict_type] = tuple(
                        (b, e, own[b] if e - b == 1 else FastBooster(stack_model_texts(self.texts[b:e])[0],
                                                                     predict_type=predict_type,
                                                                     num_threads=self._num_threads))
                        for b, e in self.group_bounds)
                got = self._groups[predict_type]
        return got

    def parts(self, predict_type: str = "raw") -> tuple[FastBooster, ...]:
        """Each model's own booster of ``predict_type`` ("raw" or "leaf"), made on first use.

        Batches of many rows evaluate model by model (:meth:`predict_many`, :meth:`leaf_many`), and
        an explanation walks only the models it compares; every user shares these boosters.
        """
        fbs = self._parts.get(predict_type)
        if fbs is None:
            with self._leaf_lock:
                if predict_type not in self._parts:
                    self._parts[predict_type] = tuple(
                        FastBooster(t, predict_type=predict_type, num_threads=self._num_threads) for t in self.texts)
                fbs = self._parts[predict_type]
        return fbs

    @property
    def leaf(self) -> FastBooster:
        """The stack's leaf-index booster (made on first use: only explanations need it)."""
        fb = self._leaf
        if fb is None:
            with self._leaf_lock:
                if self._leaf is None:
                    self._leaf = FastBooster(self.text, predict_type="leaf", num_threads=self._num_threads)
                fb = self._leaf
        return fb

    def _group_by_group(self, X: Any, predict_type: str,
                        num_threads: int | None) -> Iterator[tuple[int, int, FastBooster, np.ndarray]]:
        """(first model, end model, the group's booster, its output for all rows) per group, for a batch
        over :attr:`MANY_ROWS`."""
        try:
            mat = np.ascontiguousarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValidationError(f"X must be a 2-D array of numbers: {err}") from err
        if mat.ndim != 2 or mat.shape[1] != self.num_features:
            raise ValidationError(f"X must have shape (n_rows, {self.num_features}), got {mat.shape}")
        for first, end, fb in self.groups(predict_type):  # a group reads the row's first num_features columns
            yield first, end, fb, fb.predict_many(mat if fb.num_features == mat.shape[1] else mat[:, :fb.num_features],
                                                  num_threads)

    def leaf_many(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """:attr:`leaf` ``.predict_many(X)``: leaf indices, ``num_iterations * num_models`` per row (tree-major).

        Batches over :attr:`MANY_ROWS` rows are walked group by group, as in :meth:`predict_many`
        (a padding tree has one leaf, index 0); the result is the same array.
        """
        if len(X) <= self.MANY_ROWS:
            return self.leaf.predict_many(X, num_threads)
        out = np.zeros((len(X), self.num_iterations, self.num_models))
        for first, end, fb, part in self._group_by_group(X, "leaf", num_threads):
            out[:, :fb.num_iterations, first:end] = part.reshape(len(X), fb.num_iterations, end - first)
        return out.reshape(len(X), -1)

    def pair_leaves_many(self, X: np.ndarray, first: np.ndarray, second: np.ndarray,
                         num_threads: int | None = None) -> np.ndarray:
        """Per row, the leaves of model ``first[r]``'s trees then of model ``second[r]``'s, padded with 0.

        Shape ``(n_rows, 2 * num_iterations)``: what an explanation of ``first`` against ``second``
        reads (:meth:`~nextchannel.explain.PathContributions.difference_pairs`). Each model walks only
        the rows that compare it (its own leaf booster of :meth:`parts`), so a batch walks two models
        per row instead of the whole stack. Equal to the stack's leaves of those trees (tested).
        """
        X = np.asarray(X, dtype=np.float64)
        first, second = np.asarray(first, dtype=np.intp), np.asarray(second, dtype=np.intp)
        T = self.num_iterations
        out = np.zeros((len(X), 2 * T))
        leaf = self.parts("leaf")
        for m in np.unique(np.concatenate([first, second])).tolist():
            fb = leaf[m]
            as_first, as_second = np.flatnonzero(first == m), np.flatnonzero(second == m)
            rows = np.concatenate([as_first, as_second])
            got = fb.predict_many(np.ascontiguousarray(X[rows, :fb.num_features]), num_threads).reshape(len(rows), -1)
            out[as_first, :got.shape[1]] = got[:len(as_first)]
            out[as_second, T:T + got.shape[1]] = got[len(as_first):]
        return out

    def finish_one(self, raw: np.ndarray) -> list[float]:
        """One row's raw scores (the raw booster's output) as each model's output, plain floats."""
        out = raw.tolist()
        for k, t in self._custom:
            out[k] = t.one(out[k])
        return out

    def predict_many(self, X: Any, num_threads: int | None = None) -> np.ndarray:
        """Every model's output for many rows, shape ``(n_rows, num_models)``.

        Up to :attr:`MANY_ROWS` rows take one C call on the stack. Larger batches evaluate each group of
        models (:meth:`groups`) on all rows in turn: LightGBM walks every tree of a row before the next
        row, and a group's trees stay in cache where the whole stack's do not, while each call converts
        a row once for all the models of its group (measured on the default bundle, 480 trees: one
        model per call 24% more rows/s than the stack in one call, groups of three 15–20% more again).
        The sums are the same trees in the same order, so the outputs are equal bit for bit.
        """
        if len(X) <= self.MANY_ROWS:
            raw = self.raw.predict_many(X, num_threads).reshape(-1, self.num_models)
        else:
            raw = np.empty((len(X), self.num_models))
            for first, end, _, part in self._group_by_group(X, "raw", num_threads):
                raw[:, first:end] = part.reshape(len(X), end - first)
        for k, t in self._custom:
            raw[:, k] = t.many(raw[:, k])
        return raw

    def close(self) -> None:
        """Free the boosters (see :meth:`FastBooster.close`). Idempotent."""
        self.raw.close()
        if self._leaf is not None:
            self._leaf.close()
        for fbs in self._parts.values():
            for fb in fbs:
                fb.close()
        for groups in self._groups.values():
            for _, _, fb in groups:
                fb.close()

    def __enter__(self) -> "ModelStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
