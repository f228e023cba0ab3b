"""Decision, outcome and event logs of the service, in the form :func:`nextchannel.train` reads.

Where it sits: service → **logs** → training (``train(decisions=..., events=...)``). Each worker
process appends JSON lines to its own files (``<dir>/{decisions,outcomes,events}/<host>-<pid>-<n>.jsonl``),
rotated by size, so several workers never interleave a line. :func:`read_logs` joins them back:

* ``decisions`` — one row per decision: ``decision_id``, ``session_id``, ``ts``, ``action``,
  ``propensity`` (probability of the logged action), ``accepted``, ``dismissed``, ``success``
  (from the outcomes), ``customer_id`` (pseudonymised), ``open_<ch>``, ``wait_<ch>_s``,
  ``lang_ok_<ch>``, ``model_version``, ``offer_score``, ``fallback``;
* ``events`` — every event that entered a session's state, in :data:`nextchannel.schema.EVENT_COLUMNS`;
* ``outcomes`` — the raw outcome records (``decision_id``, ``outcome``, ``ts``, ...).

Customer ids are pseudonymised by a keyed hash (HMAC-SHA256) by default: the key comes from the
``key`` argument, else the ``NEXTCHANNEL_LOG_KEY`` environment variable, else a random key created
once in ``<dir>/.pseudonym-key`` (readable by the owner only) and shared by every worker writing
there. The same customer gets the same pseudonym in every file, so profiles can be joined.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import socket
import threading
from hashlib import sha256
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import pandas as pd

from nextchannel.errors import ConfigError, ValidationError
from nextchannel.schema import EVENT_COLUMNS

__all__ = ["DecisionLog", "LogFrames", "read_logs", "export_parquet", "pseudonymise", "OUTCOMES",
           "OUTCOME_ALIASES", "join_outcomes"]

#: Outcomes ``/v1/outcome`` accepts, and the decision column each one sets.
OUTCOMES: dict[str, str | None] = {"shown": None, "accepted": "accepted", "dismissed": "dismissed",
                                   "contact_started": "contact_started", "solved": "success"}
#: Outcome names an outcome log from elsewhere may also hold, and the decision column each one sets.
OUTCOME_ALIASES: dict[str, str] = {"success": "success", "left": "left"}
_KINDS = ("decisions", "outcomes", "events")


def _rows(frame: pd.DataFrame, mask: Any, column: str, limit: int = 5) -> str:
    idx = [i for i, m in enumerate(mask) if m]
    shown = frame.iloc[idx[:limit]]
    if {"_source", "_row"} <= set(frame.columns):
        where = [f"{s} row {r}" for s, r in zip(shown["_source"], shown["_row"])]
    else:
        where = [f"row {i}" for i in idx[:limit]]
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"{len(idx)} row(s): " + ", ".join(f"{w} ({v!r})" for w, v in zip(where, shown[column])) + more


def join_outcomes(decisions: pd.DataFrame, *, outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """Each decision's outcome columns from an outcome log (``decision_id``, ``outcome``): the one join
    of the service's logs (:func:`read_logs`) and of the retraining job.

    A decision's column is true if it was already, or if an outcome record of that decision says so
    (``accepted``, ``dismissed``, ``contact_started``, ``solved`` -> ``success``; from other systems
    also ``success`` and ``left``). The columns of :data:`OUTCOMES` always exist afterwards (false
    where nothing was recorded); ``left`` when some record says so. ``shown`` sets nothing; records
    of unknown decisions are ignored.

    Raises
    ------
    ValidationError
        Missing ``decision_id`` / ``outcome`` columns, or an outcome outside the vocabulary (the rows named).

    Examples
    --------
    >>> d = pd.DataFrame({"decision_id": ["d1", "d2"], "accepted": [False, False]})
    >>> o = pd.DataFrame({"decision_id": ["d2", "d2"], "outcome": ["accepted", "solved"]})
    >>> join_outcomes(d, outcomes=o)[["accepted", "success", "contact_started"]].to_numpy().tolist()
    [[False, False, False], [True, True, False]]
    """
    vocabulary = {**OUTCOMES, **OUTCOME_ALIASES}
    if "decision_id" not in decisions.columns:
        raise ValidationError("decisions must have the column 'decision_id' to join outcomes to, missing it")
    if outcomes is None or not len(outcomes):
        outcomes = pd.DataFrame({"decision_id": pd.Series([], dtype=object), "outcome": pd.Series([], dtype=object)})
    missing = [c for c in ("decision_id", "outcome") if c not in outcomes.columns]
    if missing:
        raise ValidationError(f"outcomes must have columns ['decision_id', 'outcome'], missing {missing}")
    unknown = ~outcomes["outcome"].isin(list(vocabulary)).to_numpy()
    if unknown.any():
        raise ValidationError(f"outcomes.outcome must be one of {sorted(vocabulary)}; "
                              f"{_rows(outcomes, unknown, 'outcome')}")
    d = decisions.copy()
    always = {c for c in OUTCOMES.values() if c is not None}
    for outcome, col in vocabulary.items():
        if col is None:
            continue
        ids = set(outcomes.loc[outcomes["outcome"] == outcome, "decision_id"])
        if ids or col in always:
            prev = d[col].fillna(False).astype(bool) if col in d.columns else False
            d[col] = prev | d["decision_id"].isin(ids)
    return d


def pseudonymise(customer_id: str, key: bytes) -> str:
    """A stable pseudonym of ``customer_id`` under ``key`` (HMAC-SHA256, 32 hex digits).

    Examples
    --------
    >>> pseudonymise("c-1001", b"k") == pseudonymise("c-1001", b"k") != pseudonymise("c-1001", b"other")
    True
    >>> len(pseudonymise("c-1001", b"k"))
    32
    """
    return hmac.new(key, str(customer_id).encode(), sha256).hexdigest()[:32]


def _load_key(directory: Path, key: bytes | str | None) -> bytes:
    if key is not None:
        return key.encode() if isinstance(key, str) else bytes(key)
    env = os.environ.get("NEXTCHANNEL_LOG_KEY")
    if env:
        return env.encode()
    path = directory / ".pseudonym-key"
    try:  # the first worker creates the key; the others (and restarts) read it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):
            data = path.read_bytes().strip()
            if data:
                return data
            threading.Event().wait(0.01)  # another worker is writing it right now
        raise ConfigError(f"pseudonym key file {path} is empty")
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


class _Rotating:
    """Append-only JSON-lines file of one kind, rotated when it exceeds ``max_bytes``."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.max_bytes = directory, max_bytes
        self.stem = f"{socket.gethostname()}-{os.getpid()}"
        self.n = 0
        self.f: Any = None
        self.lock = threading.Lock()

    def _open(self) -> None:
        while True:
            path = self.directory / f"{self.stem}-{self.n:05d}.jsonl"
            if not path.exists() or path.stat().st_size < self.max_bytes:
                break
            self.n += 1
        self.f = open(path, "a", encoding="utf-8")

    def write(self, lines: Iterable[str]) -> None:
        with self.lock:
            if self.f is None:
                self._open()
            self.f.write("".join(line + "\n" for line in lines))
            self.f.flush()  # a crashed worker loses at most the line being written
            if self.f.tell() >= self.max_bytes:
                self.f.close()
                self.n += 1
                self.f = None

    def close(self) -> None:
        with self.lock:
            if self.f is not None:
                self.f.close()
                self.f = None


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=lambda x: None)


class DecisionLog:
    """Writes the service's decisions, outcomes and events as rotated JSON-lines files.

    Parameters
    ----------
    directory : str or Path
        Folder of the logs (created if missing).
    key : bytes or str, optional
        Pseudonymisation key (see the module docstring for the default).
    pseudonymise_ids : bool, default True
        Replace customer ids by their keyed hash. Switch off only where the logs may hold them.
    max_bytes : int, default 64 MiB
        A file is closed and the next one started beyond this size.

    Examples
    --------
    >>> import tempfile
    >>> log = DecisionLog(tempfile.mkdtemp(), key=b"k")
    >>> rec = log.decision({"decision_id": "d1", "session_id": "s", "ts": 5.0, "action": "chat",
    ...                     "propensity": 0.9, "customer_id": "c-1"})
    >>> rec["customer_id"] == pseudonymise("c-1", b"k"), rec["accepted"]
    (True, False)
    >>> _ = log.outcome({"decision_id": "d1", "outcome": "accepted", "ts": 9.0})
    >>> read_logs(log.directory).decisions[["action", "accepted", "success"]].to_dict("records")
    [{'action': 'chat', 'accepted': True, 'success': False}]
    """

    def __init__(self, directory: str | Path, *, key: bytes | str | None = None, pseudonymise_ids: bool = True,
                 max_bytes: int = 64 * 2**20) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
            raise ConfigError(f"max_bytes must be an integer >= 1024, got {max_bytes!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pseudonymise_ids = pseudonymise_ids
        self._key = _load_key(self.directory, key) if pseudonymise_ids else b""
        self._files = {k: _Rotating(self.directory / k, max_bytes) for k in _KINDS}

    def customer(self, customer_id: Any) -> Any:
        """The id as it is logged (its pseudonym, or None when absent)."""
        if customer_id is None or customer_id == "":
            return None
        return pseudonymise(customer_id, self._key) if self.pseudonymise_ids else customer_id

    def decision(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Log one decision (outcome columns start False; :func:`read_logs` fills them in)."""
        rec = {"accepted": False, "dismissed": False, "success": False, **record}
        rec["customer_id"] = self.customer(rec.get("customer_id"))
        self._files["decisions"].write([_dumps(rec)])
        return rec

    def outcome(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Log one outcome record (``decision_id``, ``outcome``, ...)."""
        rec = dict(record)
        self._files["outcomes"].write([_dumps(rec)])
        return rec

    def events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Log events that entered a session's state (``customer_id`` pseudonymised)."""
        lines = []
        for e in events:
            rec = dict(e)
            if "customer_id" in rec:
                rec["customer_id"] = self.customer(rec["customer_id"])
            lines.append(_dumps(rec))
        if lines:
            self._files["events"].write(lines)

    def close(self) -> None:
        for f in self._files.values():
            f.close()


class LogFrames(NamedTuple):
    """What :func:`read_logs` returns."""

    decisions: pd.DataFrame
    events: pd.DataFrame
    outcomes: pd.DataFrame


def _read_kind(directory: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):  # a line cut short by a crash is not a record
                    rows.append(json.loads(line))
    return rows


def read_logs(directory: str | Path) -> LogFrames:
    """Read a log folder back as the frames ``train(decisions=..., events=...)`` takes.

    Decisions are sorted by ``(ts, decision_id)``, events stably by ``ts``; each outcome sets
    its decision's column (``accepted``, ``dismissed``, ``contact_started``, ``success`` for
    ``solved``).
    """
    directory = Path(directory)
    dec = pd.DataFrame(_read_kind(directory / "decisions"))
    out = pd.DataFrame(_read_kind(directory / "outcomes"), columns=None)
    ev = pd.DataFrame(_read_kind(directory / "events"))
    ev = ev.reindex(columns=list(EVENT_COLUMNS) + [c for c in ev.columns if c not in EVENT_COLUMNS])
    if len(ev):
        ev = ev.sort_values("ts", kind="stable").reset_index(drop=True)
    if len(dec):
        dec = join_outcomes(dec, outcomes=out).sort_values(["ts", "decision_id"], kind="stable").reset_index(drop=True)
    return LogFrames(dec, ev, out)


def export_parquet(directory: str | Path, out: str | Path) -> dict[str, Path]:
    """Write :func:`read_logs` of ``directory`` as ``decisions.parquet``, ``events.parquet``, ``outcomes.parquet``.

    Needs pyarrow (``pip install pyarrow``); ``nextchannel train --decisions x.parquet`` reads them.

    Examples
    --------
    >>> import tempfile
    >>> log = DecisionLog(tempfile.mkdtemp(), key=b"k")
    >>> _ = log.decision({"decision_id": "d1", "session_id": "s", "ts": 5.0, "action": "none", "propensity": 1.0})
    >>> paths = export_parquet(log.directory, tempfile.mkdtemp())
    >>> pd.read_parquet(paths["decisions"])["action"].tolist()
    ['none']
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise ConfigError("export_parquet needs pyarrow: pip install pyarrow") from err
    frames = read_logs(directory)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames._asdict().items():
        paths[name] = out / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    return paths
