"""Dask executors: featurisation and training on a ``distributed`` cluster, equal to the pandas path.

Where it sits: beside the batch executors (events → **features / training on Dask** → model set);
an optional layer (``pip install "nextchannel[dask]"``) that nothing on the scoring path imports.

Featurisation (:func:`features_many`) uses that point-in-time features depend only on the
session's own events (and, for profiles, on the customer's contacts): the event log is split into
partitions that each hold whole sessions — as given (``partitioned_by_session=True``, e.g. Parquet
files written per batch of sessions) or by the library (a shuffle on a hash of ``session_id``) —
and the pandas executor :func:`nextchannel.features.features_many` runs on each partition with
that partition's decision points. The decision points (much smaller than the events) and the
customer tables are sent to every worker. The result is a pandas frame equal, value for value, to
the pandas executor's (property-tested on the same random event logs as the online = batch test).

Training (:func:`train`) runs :func:`nextchannel.train` unchanged, with every LightGBM booster fitted
by ``lightgbm.dask`` on the cluster (data-parallel: the rows are split over the workers, which
build each tree together over the network). Data-parallel trees are not bit-identical to serial
ones; the benchmark compares the two bundles' policy values on the same fresh sessions.

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
import logging
import threading
from typing import Any, Iterator

import numpy as np
import pandas as pd

from nextchannel.compat import import_dask, is_dask_collection, training_module
from nextchannel.conventions import accepts_old_form
from nextchannel.errors import ValidationError

__all__ = ["client", "close", "features_many", "train", "partition_by_session", "collect_events",
           "in_cluster_training"]

logger = logging.getLogger(__name__)
_PART = "_nc_part"
_ORDER = "_nc_order"


def client(address: str | None = None, *, n_workers: int = 2, threads_per_worker: int = 1,
           processes: bool = True, memory_limit: str | None = None) -> Any:
    """A ``distributed.Client``: of the scheduler at ``address``, else of a new LocalCluster.

    ``lightgbm.dask`` needs the workers in separate processes (each runs its own LightGBM network
    node), hence ``processes=True`` by default; featurisation alone works with threads too.
    """
    _, distributed = import_dask()
    if address:
        return distributed.Client(address)
    kwargs: dict[str, Any] = dict(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                                  dashboard_address=None)
    if memory_limit is not None:
        kwargs["memory_limit"] = memory_limit
    cluster = distributed.LocalCluster(**kwargs)
    return distributed.Client(cluster)


def close(c: Any) -> None:
    """Close a client and, if it started one, its LocalCluster."""
    cluster = getattr(c, "cluster", None)
    c.close()
    if cluster is not None and type(cluster).__name__ == "LocalCluster":
        cluster.close()


def _session_part(session_id: pd.Series, n: int) -> np.ndarray:
    return (pd.util.hash_array(session_id.astype(str).to_numpy(dtype=object)) % np.uint64(n)).astype(np.int64)


def _with_order(events: Any) -> Any:
    """Add each row's position in the whole log: events with equal ``ts`` keep their order of arrival."""
    lengths = events.map_partitions(len).compute().tolist()
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)

    def number(part: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
        start = offsets[partition_info["number"]] if partition_info else 0
        return part.assign(**{_ORDER: np.arange(start, start + len(part), dtype=np.int64)})

    meta = events._meta.assign(**{_ORDER: np.array([], dtype=np.int64)})
    return events.map_partitions(number, meta=meta)


@accepts_old_form(old=("events", "npartitions"))
def partition_by_session(events: Any, *, npartitions: int) -> Any:
    """A Dask DataFrame of ``events`` whose partitions each hold whole sessions (hash of ``session_id``),
    with the column ``_nc_order`` (position in the log) that keeps ties in ``ts`` in arrival order."""
    dd, _ = import_dask()
    if not is_dask_collection(events):
        events = dd.from_pandas(events, npartitions=max(1, min(npartitions, len(events) // 1000 + 1)), sort=False)
    tagged = _with_order(events)
    tagged = tagged.assign(**{_PART: tagged["session_id"].map_partitions(_session_part, npartitions,
                                                                        meta=("session_id", "i8"))})
    return tagged.shuffle(_PART, npartitions=npartitions)


def _pandas_parts(events: pd.DataFrame, npartitions: int) -> list[pd.DataFrame]:
    # A group keeps the log's row order, so no order column is needed.
    part = _session_part(events["session_id"], npartitions)
    return [g for _, g in events.groupby(part, sort=True)]


def _features_part(part: pd.DataFrame, at: pd.DataFrame, customers: Any, contacts: Any, kwargs: dict) -> pd.DataFrame:
    from nextchannel.features import features_many as pandas_features_many

    if _ORDER in part.columns:
        part = part.sort_values(_ORDER, kind="stable")
    part = part.drop(columns=[_PART, _ORDER], errors="ignore")
    mine = at.loc[at["session_id"].isin(pd.unique(part["session_id"])).to_numpy()]
    if mine.empty:
        return pd.DataFrame()
    if customers is not None or contacts is not None:
        kwargs = {**kwargs, "customers": customers, "contacts": contacts}
    return pandas_features_many(mine, events=part, **kwargs)


@accepts_old_form(old=("events", "at", "customers", "contacts"), renamed={"at": "decisions"})
def features_many(decisions: Any, *, events: Any, customers: Any = None, contacts: Any = None, client: Any = None,
                  npartitions: int | None = None, partitioned_by_session: bool = False, **kwargs: Any) -> pd.DataFrame:
    """:func:`nextchannel.features.features_many` on a Dask cluster; the same frame as the pandas executor.

    Parameters
    ----------
    decisions : pandas or Dask DataFrame
        Decision points (``session_id``, ``ts``, optional ``customer_id``); computed to pandas.
        (Called ``at`` and second before 0.2.)
    events : pandas or Dask DataFrame, keyword-only
        The event log.
    customers, contacts : DataFrame, optional
        Sent whole to every worker (profiles are per customer, not per session).
    client : distributed.Client, str or None
        A client, a scheduler address, or None for the current default client.
    npartitions : int, optional
        Session partitions when the library repartitions (default: the events' partitions, at
        least twice the workers).
    partitioned_by_session : bool, default False
        The events' partitions already hold whole sessions: no shuffle.
    **kwargs
        ``with_profile``, ``profile_config``, ``validate`` as for the pandas executor.

    Returns
    -------
    DataFrame
        One row per row of ``decisions`` (same index and order), one column per feature.
    """
    at = decisions
    dd, distributed = import_dask()
    from nextchannel.features import features_many as pandas_features_many

    c = _as_client(client, distributed)
    if is_dask_collection(at):
        at = at.compute()
    for name, frame in (("customers", customers), ("contacts", contacts)):
        if is_dask_collection(frame):
            raise ValidationError(f"{name} must be a pandas DataFrame (it is sent to every worker), got a Dask one")
    if not isinstance(at, pd.DataFrame) or not {"session_id", "ts"} <= set(at.columns):
        raise ValidationError("decisions must be a DataFrame with columns ['session_id', 'ts']")
    if not isinstance(events, pd.DataFrame) and not is_dask_collection(events):
        raise ValidationError(f"events must be a pandas or Dask DataFrame, got {type(events).__name__}")
    n_workers = max(1, len(c.scheduler_info().get("workers", {})))
    n = npartitions or max(2 * n_workers, getattr(events, "npartitions", 1))
    if not is_dask_collection(events):
        split = _pandas_parts(events, n)   # pandas: split here, no shuffle
        inputs = c.scatter(split, hash=False) if split else []
    elif partitioned_by_session:
        inputs = c.compute(events.to_delayed())
    else:
        inputs = c.compute(partition_by_session(events, npartitions=n).to_delayed())
    at_f = c.scatter(at, broadcast=True, hash=False)
    cust_f = None if customers is None else c.scatter(customers, broadcast=True, hash=False)
    cont_f = None if contacts is None else c.scatter(contacts, broadcast=True, hash=False)
    futures = [c.submit(_features_part, p, at_f, cust_f, cont_f, dict(kwargs), pure=False) for p in inputs]
    pieces = [f for f in c.gather(futures) if len(f)]
    seen = pd.Index([]) if not pieces else pd.concat([p.index.to_series() for p in pieces]).index
    if seen.has_duplicates:
        dup = seen[seen.duplicated()][0]
        raise ValidationError("events must be partitioned by session with partitioned_by_session=True, but the "
                              f"session of decision point {dup!r} ({at.loc[dup, 'session_id']!r}) has events in "
                              "more than one partition; pass partitioned_by_session=False to repartition")
    rest = at.loc[~at.index.isin(seen)]
    if len(rest):  # decision points of sessions without any event: the pandas executor's defaults
        empty = pd.DataFrame({"session_id": pd.Series([], dtype=object), "ts": pd.Series([], dtype=float),
                              "type": pd.Series([], dtype=object)})
        extra = {"customers": customers, "contacts": contacts} if customers is not None or contacts is not None else {}
        pieces.append(pandas_features_many(rest, events=empty, **extra, **kwargs))
    out = pd.concat(pieces) if len(pieces) > 1 else pieces[0]
    return out.loc[at.index]


@accepts_old_form(old=("events", "session_ids"))
def collect_events(events: Any, *, session_ids: Any) -> pd.DataFrame:
    """The events of the given sessions, computed to pandas (for the retraining job's window)."""
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
        # Chunk i lives on the i-th worker (by address), so each LightGBM rank gets the same rows on
        # every run: lightgbm.dask ranks workers by where the first chunks are, and data-parallel
        # trees depend on how the rows are split. Same inputs -> same bundle bytes.
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
