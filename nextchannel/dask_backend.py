"""Dask executors: featurisation and training on a ``distributed`` cluster, equal to the pandas path.

Where it sits: beside the batch executors (events → **features / training on Dask** → model set);
an optional layer (``pip install "nextchannel[dask]"``) that nothing on the scoring path imports.

Featurisation (:func:`features_many`) uses that point-in-time features depend only on the
session's own events (and, for profiles, on the customer's contacts): events and decision points
are co-partitioned by session -- partition ``i`` of the events holds whole sessions and partition
``i`` of the decision points exactly their points -- and the pandas executor
:func:`nextchannel.features.features_many` runs on each pair. How the pairs are made: files
written together (``copartitioned=True``: zipped, nothing moves), event partitions that already
hold whole sessions (``partitioned_by_session=True``: only the points move, joined on the cluster
to a table of each partition's session ids), or neither (both shuffled on the cluster by a hash of
``session_id``). Only the customer tables are sent to every worker. The result equals the pandas
executor's value for value (property-tested on the same random event logs as the online = batch
test); for a Dask ``at`` it stays a Dask DataFrame on the cluster.

Training (:func:`train`) runs :func:`nextchannel.train` unchanged, with every LightGBM booster fitted
by ``lightgbm.dask`` on the cluster (data-parallel: the rows are split over the workers, which
build each tree together over the network). Data-parallel trees are not bit-identical to serial
ones; the benchmark compares the two bundles' policy values on the same fresh sessions. Nor are two
Dask trainings on the same inputs bit-identical: LightGBM's data-parallel bins and trees depend on
which rows each network rank holds and on the ranks' order, and ``lightgbm.dask`` orders the ranks
as the scheduler lists the workers holding the data, which varies between runs (measured: four
trainings of one input on one LocalCluster gave four different bundles). What is guaranteed is the
job's idempotence: :func:`nextchannel.jobs.retrain` hashes its inputs (the event log on the
workers) and a run on the inputs of the current champion publishes nothing (status ``unchanged``).

Examples
--------
>>> import pandas as pd
>>> ev = pd.DataFrame({"session_id": ["a", "a", "b"], "ts": [0.0, 5.0, 1.0],
...                    "type": ["page_view", "form_error", "click"], "page_type": ["cart", None, None]})
>>> at = pd.DataFrame({"session_id": ["a", "b"], "ts": [9.0, 2.0]})
>>> with client(processes=False) as c:                      # doctest: +SKIP
...     features_many(at, events=ev, client=c)["form_errors"].tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import Any, Iterator

import numpy as np
import pandas as pd

from nextchannel.compat import import_dask, is_dask_collection, training_module
from nextchannel.conventions import accepts_old_form
from nextchannel.errors import ValidationError
from nextchannel.schema import canonical_ids

__all__ = ["client", "close", "features_many", "train", "partition_by_session", "collect_events",
           "in_cluster_training", "read_events", "read_parquet", "window_events", "digest"]

logger = logging.getLogger(__name__)
_PART = "_nc_part"
_ORDER = "_nc_order"
_AT = "_nc_at"
_IDX = "_nc_index"
_SID = "_nc_sid"


def client(address: str | None = None, *, n_workers: int = 2, threads_per_worker: int = 1,
           processes: bool = True, memory_limit: str | None = None) -> Any:
    """A ``distributed.Client``: of the scheduler at ``address``, else of a new LocalCluster.

    ``lightgbm.dask`` needs the workers in separate processes (each runs its own LightGBM network
    node), hence ``processes=True`` by default; featurisation alone works with threads too.

    The local workers are started without the ``MALLOC_TRIM_THRESHOLD_=65536`` that ``distributed``
    sets for worker processes by default: fixing any malloc threshold turns off glibc's adaptive
    one, so every large numpy array becomes a fresh ``mmap`` whose pages fault in on first touch;
    measured on one 420k-event partition, featurisation cost 2.5 times the CPU (6.5 times the minor
    page faults) with it. Workers of a cluster of your own get it from their dask configuration
    (``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null`` removes it).
    """
    import dask

    _, distributed = import_dask()
    if address:
        return distributed.Client(address)
    kwargs: dict[str, Any] = dict(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                                  dashboard_address=None)
    if memory_limit is not None:
        kwargs["memory_limit"] = memory_limit
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = distributed.LocalCluster(**kwargs)
    return distributed.Client(cluster)


def close(c: Any) -> None:
    """Close a client and, if it started one, its LocalCluster."""
    cluster = getattr(c, "cluster", None)
    c.close()
    if cluster is not None and type(cluster).__name__ == "LocalCluster":
        cluster.close()


def _session_part(session_id: Any, n: int) -> np.ndarray:
    """Partition number of each session id: a hash of its canonical id (as the pandas executor reads
    ids), modulo ``n``."""
    ids = pd.Series(canonical_ids(session_id), dtype=object).fillna("")
    return (pd.util.hash_array(ids.to_numpy(dtype=object)) % np.uint64(n)).astype(np.int64)


def _plain(part: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain columns of their categories' type: partitions read with their own
    dictionaries (:func:`read_parquet`) have different categories, which a shuffle cannot mix."""
    cats = {c: part[c].cat.categories.dtype for c in part.columns if isinstance(part[c].dtype, pd.CategoricalDtype)}
    return part.astype(cats) if cats else part


def _tag_events(part: pd.DataFrame, n: int, partition_info: dict | None = None) -> pd.DataFrame:
    # position in the log as (input partition, row): keeps ties in ts in arrival order after a shuffle,
    # without a pass over the log to count each partition's rows first
    k = np.int64(partition_info["number"] if partition_info else 0)
    return _plain(part).assign(**{_ORDER: k * np.int64(1 << 40) + np.arange(len(part), dtype=np.int64),
                                  _PART: _session_part(part["session_id"], n)})


@accepts_old_form(old=("events", "npartitions"))
def partition_by_session(events: Any, *, npartitions: int) -> Any:
    """A Dask DataFrame of ``events`` whose partitions each hold whole sessions (hash of ``session_id``),
    with the column ``_nc_order`` (position in the log) that keeps ties in ``ts`` in arrival order.

    Decision points shuffled on the same key (``_nc_part``) with the same ``npartitions`` land in the
    partition of their session's events.
    """
    dd, _ = import_dask()
    if not is_dask_collection(events):
        events = dd.from_pandas(events, npartitions=max(1, min(npartitions, len(events) // 1000 + 1)), sort=False)
    meta = _tag_events(events._meta, npartitions)
    tagged = events.map_partitions(_tag_events, npartitions, meta=meta)
    return tagged.shuffle(_PART, npartitions=npartitions)


def _sessions_of(part: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
    """The canonical session ids of one partition of events, with the partition's number."""
    ids = pd.unique(pd.Series(canonical_ids(part["session_id"]), dtype=object).dropna())
    k = partition_info["number"] if partition_info else 0
    return pd.DataFrame({_SID: pd.Series(ids, dtype=object), _PART: np.full(len(ids), k, dtype=np.int64)})


def _number_points(part: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
    """Decision points of a Dask ``at`` with an id (``_nc_at``) and their index kept in ``_nc_index``."""
    k = np.int64(partition_info["number"] if partition_info else 0)
    return part.assign(**{_AT: k * np.int64(1 << 40) + np.arange(len(part), dtype=np.int64),
                          _IDX: part.index.to_numpy()})


def _with_sid(part: pd.DataFrame) -> pd.DataFrame:
    return part.assign(**{_SID: pd.Series(canonical_ids(part["session_id"]), index=part.index, dtype=object)})


def _hash_key(part: pd.DataFrame, n: int) -> pd.DataFrame:
    return part.assign(**{_PART: _session_part(part["session_id"], n)})


def _features_part(part: pd.DataFrame, at: pd.DataFrame, customers: Any = None, contacts: Any = None,
                   fm_kwargs: dict | None = None) -> pd.DataFrame:
    """The pandas executor on one partition: its events and exactly the decision points of its sessions."""
    from nextchannel.features import features_many as pandas_features_many

    if _ORDER in part.columns:
        part = part.sort_values(_ORDER, kind="stable")
    part = part.drop(columns=[_PART, _ORDER], errors="ignore")
    kwargs = dict(fm_kwargs or {})
    if customers is not None or contacts is not None:
        kwargs.update(customers=customers, contacts=contacts)
    cols = [c for c in ("session_id", "ts", "customer_id") if c in at.columns]
    out = pandas_features_many(at[cols].reset_index(drop=True), events=part, **kwargs)
    out[_AT] = at[_AT].to_numpy(dtype=np.int64)
    if _IDX in at.columns:
        out.index = pd.Index(at[_IDX].to_numpy())
    return out


def _in_order(pieces: list[pd.DataFrame], at: pd.DataFrame) -> pd.DataFrame:
    """The pieces of a pandas ``at`` back in its order and with its index; each point exactly once."""
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        raise ValidationError("no features were computed")  # pragma: no cover - at is not empty here
    out = pd.concat(pieces) if len(pieces) > 1 else pieces[0]
    pos = out[_AT].to_numpy(dtype=np.int64)
    counts = np.bincount(pos, minlength=len(at)) if len(pos) else np.zeros(len(at), dtype=np.int64)
    if len(counts) != len(at) or (counts != 1).any():
        dup = int(np.flatnonzero(counts != 1)[0])
        raise ValidationError("events must be partitioned by session with partitioned_by_session=True, but the "
                              f"session of decision point {at.index[dup]!r} ({at['session_id'].iloc[dup]!r}) has "
                              "events in more than one partition; pass partitioned_by_session=False to repartition")
    return out.iloc[np.argsort(pos, kind="stable")].drop(columns=_AT).set_axis(at.index)


@accepts_old_form(old=("events", "at", "customers", "contacts"), renamed={"at": "decisions"})
def features_many(decisions: Any, *, events: Any, customers: Any = None, contacts: Any = None, client: Any = None,
                  npartitions: int | None = None, partitioned_by_session: bool = False, copartitioned: bool = False,
                  **kwargs: Any) -> Any:
    """:func:`nextchannel.features.features_many` on a Dask cluster; the same frame as the pandas executor.

    Events and decision points are co-partitioned by session: each task gets one partition of events
    that holds whole sessions and exactly the decision points of those sessions, and runs the pandas
    executor on them. Dask inputs never pass through this process: the events stay on the workers
    (shuffled there by a hash of ``session_id``, or used as they are when their partitions already
    hold whole sessions) and the decision points go to their session's partition on the cluster.

    Parameters
    ----------
    decisions : pandas or Dask DataFrame
        Decision points (``session_id``, ``ts``, optional ``customer_id``); called ``at`` below.
        (Called ``at`` and second before 0.2.)
    events : pandas or Dask DataFrame, keyword-only
        The event log.
    customers, contacts : pandas DataFrame, optional
        Sent whole to every worker (profiles are per customer, not per session).
    client : distributed.Client, str or None
        A client, a scheduler address, or None for the current default client.
    npartitions : int, optional
        Session partitions when the library repartitions (default: the events' partitions, at
        least twice the workers).
    partitioned_by_session : bool, default False
        The events' partitions already hold whole sessions (e.g. Parquet files written per batch of
        sessions): the events are not shuffled; the decision points are joined, on the cluster, to
        a table of each partition's session ids and sent to that partition.
    copartitioned : bool, default False
        ``events`` and ``at`` are Dask DataFrames with the same number of partitions, partition
        ``i`` of ``at`` holding the decision points of the sessions whose events are in partition
        ``i`` of ``events`` (e.g. both written per batch of sessions, or per hash bucket of
        ``session_id``): nothing is shuffled or joined; partition ``i`` is featurised with
        partition ``i``. A point whose session's events are elsewhere gets the features of a
        session without events, so this is a promise of the caller, like ``partitioned_by_session``.
    **kwargs
        ``with_profile``, ``profile_config``, ``validate``, ``channels``, ``limits`` as for the
        pandas executor.

    Returns
    -------
    DataFrame
        For a pandas ``at``: a pandas frame equal to the pandas executor's (one row per row of
        ``at``, same index and order, one column per feature). For a Dask ``at``: a Dask DataFrame
        of those rows (``at``'s index, in partition order rather than ``at``'s order), to be written
        or reduced on the cluster.

    Raises
    ------
    ValidationError
        Bad arguments, or ``partitioned_by_session=True`` while a session has events in more than one
        partition.
    """
    import dask

    at = decisions
    dd, distributed = import_dask()
    c = _as_client(client, distributed)
    for name, frame in (("customers", customers), ("contacts", contacts)):
        if is_dask_collection(frame):
            raise ValidationError(f"{name} must be a pandas DataFrame (it is sent to every worker), got a Dask one")
    at_lazy = is_dask_collection(at)
    at_cols = list(at._meta.columns) if at_lazy else list(at.columns) if isinstance(at, pd.DataFrame) else []
    if not {"session_id", "ts"} <= set(at_cols):
        raise ValidationError("decisions must be a DataFrame with columns ['session_id', 'ts']")
    if not isinstance(events, pd.DataFrame) and not is_dask_collection(events):
        raise ValidationError(f"events must be a pandas or Dask DataFrame, got {type(events).__name__}")
    keep = [col for col in ("session_id", "ts", "customer_id") if col in at_cols]
    n_workers = max(1, len(c.scheduler_info().get("workers", {})))
    if not is_dask_collection(events):  # pandas events (already here): split them with their points
        if at_lazy:
            at = c.compute(at, sync=True)
        n = npartitions or 2 * n_workers
        pts = at[keep].assign(**{_AT: np.arange(len(at), dtype=np.int64)})
        ev_part, at_part = _session_part(events["session_id"], n), _session_part(at["session_id"], n)
        cust_f = None if customers is None else c.scatter(customers, broadcast=True, hash=False)
        cont_f = None if contacts is None else c.scatter(contacts, broadcast=True, hash=False)
        futures = [c.submit(_features_part, events.loc[ev_part == i], pts.loc[at_part == i], cust_f, cont_f,
                            dict(kwargs), pure=False) for i in range(n) if (at_part == i).any()]
        return _in_order(c.gather(futures), at)

    if copartitioned and (not at_lazy or at.npartitions != events.npartitions):
        raise ValidationError("copartitioned=True needs events and decisions as Dask DataFrames with the same number "
                              f"of partitions, got {getattr(at, 'npartitions', 'a pandas frame')} and "
                              f"{events.npartitions}")
    if at_lazy:
        pts = at[keep].map_partitions(_number_points, meta=_number_points(at._meta[keep]))
    else:
        pts = dd.from_pandas(at[keep].assign(**{_AT: np.arange(len(at), dtype=np.int64)}),
                            npartitions=max(1, min(2 * n_workers, len(at) // 50_000 + 1)), sort=False)
    if copartitioned:  # partition i of the points goes with partition i of the events, as they are
        ev, pts_parts = events, pts
    elif partitioned_by_session:
        ev, n = events, events.npartitions
        smap = ev.map_partitions(_sessions_of, meta=_sessions_of(ev._meta))
        keyed = pts.map_partitions(_with_sid, meta=_with_sid(pts._meta)).merge(smap, on=_SID, how="left")
        keyed = keyed.assign(**{_PART: keyed[_PART].fillna(0).astype(np.int64)}).drop(columns=_SID)
        keyed = c.persist(keyed)
        n_keyed = int(c.compute(keyed.map_partitions(len).sum(), sync=True))
        n_pts = int(c.compute(pts.map_partitions(len).sum(), sync=True)) if at_lazy else len(at)
        if n_keyed != n_pts:
            raise ValidationError("events must be partitioned by session with partitioned_by_session=True, but the "
                                  f"session of {n_keyed - n_pts} decision point(s) has events in more than one "
                                  "partition; pass partitioned_by_session=False to repartition")
        # known divisions 0, 1, ..., n-1: partition i of the points holds _nc_part == i, the i-th events partition
        pts_parts = keyed.set_index(_PART, divisions=list(range(n)) + [n - 1])
    else:
        n = npartitions or max(2 * n_workers, events.npartitions)
        ev = partition_by_session(events, npartitions=n)
        pts_parts = pts.map_partitions(_hash_key, n, meta=_hash_key(pts._meta, n)).shuffle(_PART, npartitions=n)
    small = [None if t is None else t.iloc[:0] for t in (customers, contacts)]
    meta = _features_part(ev._meta, pts._meta, *small, dict(kwargs))
    tables = [None if t is None else dask.delayed(t, pure=True) for t in (customers, contacts)]
    out = dd.map_partitions(_features_part, ev, pts_parts, *tables, dict(kwargs), meta=meta, align_dataframes=False,
                            enforce_metadata=False)
    if at_lazy:
        return out.drop(columns=_AT)
    return _in_order([c.compute(out, sync=True)], at)


@accepts_old_form(old=("events", "session_ids"))
def collect_events(events: Any, *, session_ids: Any) -> pd.DataFrame:
    """The events of the given sessions, computed to pandas (small windows and tests only: the
    retraining job keeps Dask events on the cluster)."""
    wanted = set(pd.unique(pd.Series(session_ids)))
    return events.map_partitions(lambda p: p.loc[p["session_id"].isin(wanted).to_numpy()]).compute()


def _as_client(c: Any, distributed: Any) -> Any:
    if c is None:
        return distributed.get_client()
    if isinstance(c, str):
        return distributed.Client(c)
    return c


# ---------------------------------------------------------------------------------------------
# Training through lightgbm.dask
# ---------------------------------------------------------------------------------------------
_PATCH_LOCK = threading.RLock()
_ACTIVE = threading.local()


def in_cluster_training() -> bool:
    """True inside :func:`train`'s swap (so that ``train``'s own Dask hook does not dispatch again)."""
    return bool(getattr(_ACTIVE, "on", False))


class _DaskLightGBM:
    """Stands in for the ``lightgbm`` module inside :mod:`nextchannel.models` while training: ``train``
    fits on the cluster through ``lightgbm.dask``; everything else is LightGBM's own."""

    def __init__(self, lgb: Any, client: Any) -> None:
        self._lgb = lgb
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lgb, name)

    def train(self, params: dict, train_set: Any, num_boost_round: int = 100, **kwargs: Any) -> Any:
        import dask.array as da
        import lightgbm.dask as lgb_dask

        if kwargs:
            raise ValidationError(f"the Dask training path supports lightgbm.train(params, dataset, rounds) only, got "
                                  f"{sorted(kwargs)}")
        X = np.asarray(train_set.data, dtype=float)
        y = np.asarray(train_set.label, dtype=float)
        w = train_set.weight
        # Chunk i lives on the i-th worker (by address): every worker gets rows (a LightGBM network
        # of all workers) in fixed chunks. The ranks' order is lightgbm.dask's, which varies between
        # runs, so the trees are not byte-identical across runs (see the module docstring).
        workers = sorted(self._client.scheduler_info().get("workers", {}))
        bounds = np.linspace(0, len(X), len(workers) + 1).astype(int)
        keep_alive: list[Any] = []  # scattered data lives as long as its futures are referenced

        def placed(a: np.ndarray) -> Any:
            blocks = []
            for i, w in enumerate(workers):
                part = a[bounds[i]:bounds[i + 1]]
                fut = self._client.scatter(part, workers=[w], direct=True, hash=False)
                keep_alive.append(fut)
                blocks.append(da.from_delayed(fut, shape=part.shape, dtype=part.dtype))
            return da.concatenate(blocks, axis=0)

        Xd, yd = placed(X), placed(y)
        wd = None if w is None else placed(np.asarray(w, dtype=float))
        p = dict(params)
        p.pop("verbose", None)
        p.pop("verbosity", None)
        p.setdefault("deterministic", True)
        model = lgb_dask.DaskLGBMRegressor(client=self._client, n_estimators=int(num_boost_round), verbose=-1, **p)
        fit_kw: dict[str, Any] = {}
        if train_set.feature_name not in (None, "auto"):
            fit_kw["feature_name"] = list(train_set.feature_name)
        if train_set.categorical_feature not in (None, "auto"):
            fit_kw["categorical_feature"] = list(train_set.categorical_feature)
        model.fit(Xd, yd, sample_weight=wd, **fit_kw)
        booster = model.booster_
        del keep_alive
        return booster


@contextlib.contextmanager
def _on_cluster(c: Any, tm: Any) -> Iterator[None]:
    """Inside: the training module's featurisation and :mod:`nextchannel.models`' LightGBM fits run on
    the cluster. One Dask training at a time per process: the swap is module-wide."""
    import lightgbm

    from nextchannel import models

    def dask_features(decisions: Any, **kw: Any) -> pd.DataFrame:
        return features_many(decisions, client=c, **kw)

    with _PATCH_LOCK:
        saved = tm.features_many
        models.lgb, tm.features_many = _DaskLightGBM(lightgbm, c), dask_features
        _ACTIVE.on = True
        try:
            yield
        finally:
            models.lgb, tm.features_many = lightgbm, saved
            _ACTIVE.on = False


def train(*, client: Any = None, events: Any = None, decisions: Any, **kwargs: Any) -> Any:
    """:func:`nextchannel.train` with featurisation and every LightGBM fit on a Dask cluster.

    Parameters
    ----------
    client : distributed.Client, str or None
        A client, a scheduler address, or None for the current default client.
    events : pandas or Dask DataFrame
        The event log; featurised on the cluster (:func:`features_many`).
    decisions : pandas or Dask DataFrame
        As for ``train``; a Dask one is computed (one row per decision point, small beside the events).
    **kwargs
        Every other keyword argument of ``train`` (``customers``, ``contacts``, ``config``,
        ``policy``, ``features``, ...).

    Returns
    -------
    ModelSet
    """
    _, distributed = import_dask()
    c = _as_client(client, distributed)
    if is_dask_collection(decisions):
        decisions = decisions.compute()
    tm = training_module()
    with _on_cluster(c, tm):
        return tm.train(decisions=decisions, events=events, **kwargs)


# ---------------------------------------------------------------------------------------------
# The retraining job's event log on the cluster (never collected here)
# ---------------------------------------------------------------------------------------------
def _read_parquet_file(path: str, text: list[str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(path, read_dictionary=text).to_pandas()


def read_parquet(files: Any) -> Any:
    """A Dask DataFrame of Parquet files, one partition per file (partition ``i`` is file ``i``), text
    columns read as dictionaries (pandas categoricals, each partition with its own categories).

    Featurisation then looks each distinct value up once (measured on one 420k-event file: the
    same CPU to read as plain string columns, about a fifth less to featurise). Every file must
    have the first file's columns; a shuffle turns the categoricals back into plain columns.

    Examples
    --------
    >>> import pandas as pd, pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"session_id": ["a"], "ts": [1.0], "type": ["click"]}).to_parquet(d / "e.parquet")
    >>> ev = read_parquet([d / "e.parquet"])                                # doctest: +SKIP
    >>> ev.npartitions, str(ev.compute()["type"].dtype)                     # doctest: +SKIP
    (1, 'category')
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dask.dataframe.utils import clear_known_categories

    dd, _ = import_dask()
    paths = [str(f) for f in ([files] if isinstance(files, (str, bytes)) or not hasattr(files, "__iter__")
                              else files)]
    if not paths:
        raise ValidationError("read_parquet needs at least one file, got none")
    schema = pq.read_schema(paths[0])
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    meta = clear_known_categories(pq.read_table(paths[0], read_dictionary=text).slice(0, 0).to_pandas())
    return dd.from_map(_read_parquet_file, paths, text=text, meta=meta, enforce_metadata=False)


def read_events(source: Any) -> tuple[Any, list[str]]:
    """A Dask DataFrame of an event log file or folder (CSV, Parquet, JSON lines), one partition per
    file, and the files' names (partition ``i`` is file ``i``, for messages).

    Examples
    --------
    >>> import pandas as pd, pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"session_id": ["a"], "ts": [1.0], "type": ["click"]}).to_csv(d / "e.csv", index=False)
    >>> ev, files = read_events(d)
    >>> ev.npartitions, files
    (1, ['e.csv'])
    """
    import pathlib

    from nextchannel.jobs import table_files

    dd, _ = import_dask()
    if is_dask_collection(source):
        return source, []
    path = pathlib.Path(source)
    files = table_files(path, "events")
    names = [str(f.relative_to(path)) if path.is_dir() else f.name for f in files]
    parts = []
    for f in files:
        low = f.name.lower()
        if low.endswith((".parquet", ".pq")):
            parts.append(read_parquet([f]))
        elif low.endswith((".jsonl", ".json")):
            parts.append(dd.read_json(str(f), lines=True, blocksize=None))
        else:
            parts.append(dd.read_csv(str(f), blocksize=None))
    cols = [set(p._meta.columns) for p in parts]
    for name, c in zip(names, cols):
        missing = [k for k in ("session_id", "ts", "type") if k not in c]
        if missing:
            raise ValidationError(f"events ({name}) must have columns ['session_id', 'ts', 'type'], missing {missing}")
    if len(parts) == 1:
        return parts[0], names
    union = sorted(set().union(*cols))
    return dd.concat([p.assign(**{k: np.nan for k in union if k not in p._meta.columns})[union] for p in parts]), names


def _checked_events(part: pd.DataFrame, files: list[str], hi: float | None, sessions: Any,
                    partition_info: dict | None = None) -> pd.DataFrame:
    k = partition_info["number"] if partition_info else 0
    ts = pd.to_numeric(part["ts"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(ts))
    if len(bad):
        where = files[k] if k < len(files) else f"partition {k}"
        rows = ", ".join(f"row {i + 1} ({part['ts'].iloc[i]!r})" for i in bad[:5])
        raise ValidationError(f"events.ts must be a finite number (epoch seconds); {len(bad)} row(s) of {where}: {rows}"
                              + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
    part = part.assign(ts=ts)
    keep = pd.Series(canonical_ids(part["session_id"]), dtype=object).isin(sessions).to_numpy()
    if hi is not None:
        keep &= ts < hi
    return part.loc[keep]


def window_events(events: Any, *, files: list[str], until: float | None, sessions: Any) -> Any:
    """The events of the window's sessions (before ``until``), with ``ts`` checked; lazy: a bad row
    raises :class:`~nextchannel.errors.ValidationError` naming its file when the log is first read."""
    import dask

    wanted = dask.delayed(frozenset(pd.Series(canonical_ids(pd.Series(sessions)), dtype=object).dropna()), pure=True)
    meta = events._meta.assign(ts=np.array([], dtype=float))
    return events.map_partitions(_checked_events, files, until, wanted, meta=meta)


def _digest_part(part: pd.DataFrame) -> pd.DataFrame:
    import hashlib

    cols = sorted(map(str, part.columns))
    h = hashlib.sha256(json.dumps(cols).encode())
    if len(part):
        h.update(pd.util.hash_pandas_object(part[cols], index=False).to_numpy().tobytes())
    return pd.DataFrame({"digest": [h.hexdigest()], "rows": [len(part)]})


def digest(events: Any, *, client: Any) -> str:
    """sha256 over each partition's row hashes (computed on the workers), in partition order."""
    import hashlib

    parts = client.compute(events.map_partitions(_digest_part, meta=_digest_part(events._meta.iloc[:0])), sync=True)
    return hashlib.sha256("".join(parts["digest"]).encode()).hexdigest()
