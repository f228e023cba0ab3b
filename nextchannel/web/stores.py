"""Session stores: where the service keeps one :class:`~nextchannel.features.SessionState` per visitor.

Where it sits: browser events → service → **session store** → scorer. One worker process can
keep states in memory (:class:`MemoryStore`); several workers (or a restart that must not lose
sessions) share them in Redis (:class:`RedisStore`), serialised without pickle by
:meth:`SessionState.to_bytes`. A session is closed after 30 minutes without events by default, as
web analytics tools close one.

Both stores offer one operation, :meth:`SessionStore.update`: load (or create) a session's state,
apply a function to it, save it — atomically for that session, so that two requests of one
session arriving at two workers at once never lose an event. The function may run more than once
(Redis retries an optimistic transaction on a conflict): it must only compute, not log or send.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, TypeVar

from nextchannel.errors import ConfigError, NextChannelError, ValidationError
from nextchannel.features import SessionState

__all__ = ["SessionStore", "MemoryStore", "RedisStore", "store_from_url", "StoreError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Sessions are closed after this long without an event (seconds).
DEFAULT_IDLE_TIMEOUT_S = 1800.0


class StoreError(NextChannelError, RuntimeError):
    """The session store could not be reached or kept failing (e.g. Redis down)."""


class SessionStore:
    """What the service needs from a session store (subclass it to plug in another backend).

    Attributes
    ----------
    blocking : bool
        Whether :meth:`update` waits on the network (the service then runs it in a thread pool
        instead of on the event loop).
    """

    blocking: bool = False

    def update(self, session_id: str, fn: Callable[[SessionState], T]) -> T:
        """Apply ``fn`` to the session's state (a fresh one if unknown or expired), save, return its result."""
        raise NotImplementedError

    def get(self, session_id: str) -> SessionState | None:
        """The session's state, or None if unknown or expired (a copy: changing it changes nothing)."""
        raise NotImplementedError

    def delete(self, session_id: str) -> None:
        """Forget a session."""
        raise NotImplementedError

    def stats(self) -> dict[str, float]:
        """Figures for the metrics endpoint (``sessions``, ``expired``, ``evicted``, ...)."""
        return {}

    def close(self) -> None:
        """Release connections."""


def _check_timeout(idle_timeout_s: Any) -> float:
    if isinstance(idle_timeout_s, bool) or not isinstance(idle_timeout_s, (int, float)) or not idle_timeout_s > 0:
        raise ConfigError(f"idle_timeout_s must be a number > 0, got {idle_timeout_s!r}")
    return float(idle_timeout_s)


class MemoryStore(SessionStore):
    """Session states in this process's memory: bounded, least recently used first out, idle expiry.

    Parameters
    ----------
    max_sessions : int, default 100_000
        At most this many sessions are held; the least recently updated one is dropped first.
    idle_timeout_s : float, default 1800
        A session without an update for this long is forgotten (the next event starts a new state).
    clock : callable, default time.monotonic
        Seconds, for tests.

    Examples
    --------
    >>> store = MemoryStore(max_sessions=2)
    >>> ev = {"session_id": "a", "ts": 1.0, "type": "click"}
    >>> store.update("a", lambda s: s.update(ev) or s.features_one()["clicks"])
    1.0
    >>> store.update("a", lambda s: s.update(ev) or s.features_one()["clicks"])
    2.0
    >>> _ = store.update("b", lambda s: None); _ = store.update("c", lambda s: None)
    >>> store.get("a") is None, store.stats()["evicted"]
    (True, 1.0)
    """

    blocking = False

    def __init__(self, max_sessions: int = 100_000, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
            raise ConfigError(f"max_sessions must be an integer >= 1, got {max_sessions!r}")
        self.max_sessions = max_sessions
        self.idle_timeout_s = _check_timeout(idle_timeout_s)
        self.clock = clock
        self._states: OrderedDict[str, tuple[float, SessionState]] = OrderedDict()
        self._lock = threading.Lock()
        self._expired = 0
        self._evicted = 0

    def _expire(self, now: float) -> None:
        # entries are ordered by last update, so the expired ones are at the front
        while self._states:
            sid, (seen, _) = next(iter(self._states.items()))
            if now - seen < self.idle_timeout_s:
                break
            del self._states[sid]
            self._expired += 1

    def update(self, session_id: str, fn: Callable[[SessionState], T]) -> T:
        with self._lock:  # one process: a lock makes each session's update atomic (fn is microseconds)
            now = self.clock()
            self._expire(now)
            entry = self._states.pop(session_id, None)
            state = entry[1] if entry is not None else SessionState(session_id)
            try:
                return fn(state)
            finally:
                self._states[session_id] = (now, state)
                while len(self._states) > self.max_sessions:
                    self._states.popitem(last=False)
                    self._evicted += 1

    def get(self, session_id: str) -> SessionState | None:
        with self._lock:
            self._expire(self.clock())
            entry = self._states.get(session_id)
            return None if entry is None else SessionState.from_dict(entry[1].to_dict())

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._states.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._states)

    def stats(self) -> dict[str, float]:
        return {"sessions": float(len(self._states)), "expired": float(self._expired),
                "evicted": float(self._evicted)}


class RedisStore(SessionStore):
    """Session states in Redis, shared by every worker: compact versioned JSON, expiry by TTL.

    The update of one session is an optimistic transaction (``WATCH`` the key, read, apply,
    ``MULTI``/``SET ... EX``/``EXEC``; retried when another worker changed the key meanwhile), so
    concurrent requests of one session on different workers apply every event exactly once. A
    stored state that cannot be read (written by an incompatible version) is replaced by a fresh
    one and counted in ``stats()["unreadable"]``.

    Parameters
    ----------
    url : str, default "redis://127.0.0.1:6379/0"
        Redis URL (``redis://host:port/db``, ``rediss://`` for TLS, ``unix://path``).
    idle_timeout_s : float, default 1800
        TTL of a session's key, renewed on every update.
    prefix : str, default "nextchannel:session:"
        Key prefix (one Redis can serve several sites).
    max_retries : int, default 50
        Conflicting transactions retried before :class:`StoreError` is raised.
    client : redis.Redis, optional
        An existing client (``url`` is then ignored).

    Examples
    --------
    >>> store = RedisStore("redis://127.0.0.1:6379/0", idle_timeout_s=600)  # connects on first use
    >>> store.blocking, store.idle_timeout_s
    (True, 600.0)
    """

    blocking = True

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                 prefix: str = "nextchannel:session:", max_retries: int = 50, client: Any = None) -> None:
        try:
            import redis
        except ImportError as err:  # pragma: no cover - depends on the installation
            raise ConfigError("RedisStore needs redis-py: pip install 'nextchannel[web]'") from err
        self._redis = redis
        self.url = url
        self.idle_timeout_s = _check_timeout(idle_timeout_s)
        self.prefix = prefix
        self.max_retries = max_retries
        self._client = client if client is not None else redis.Redis.from_url(url, socket_timeout=5.0,
                                                                              socket_connect_timeout=5.0)
        self._ttl_ms = max(1, int(round(self.idle_timeout_s * 1000)))
        self._counts_lock = threading.Lock()
        self._conflicts = 0
        self._unreadable = 0

    def _key(self, session_id: str) -> str:
        return self.prefix + session_id

    def _load(self, raw: bytes | None, session_id: str) -> SessionState:
        if raw is None:
            return SessionState(session_id)
        try:
            state = SessionState.from_bytes(raw)
        except ValidationError as err:
            with self._counts_lock:
                self._unreadable += 1
            logger.warning("unreadable session state replaced by a fresh one: %s", err)
            return SessionState(session_id)
        return state

    def update(self, session_id: str, fn: Callable[[SessionState], T]) -> T:
        key = self._key(session_id)
        try:
            with self._client.pipeline(transaction=True) as pipe:
                for _ in range(self.max_retries):
                    try:
                        pipe.watch(key)
                        state = self._load(pipe.get(key), session_id)
                        result = fn(state)
                        pipe.multi()
                        pipe.set(key, state.to_bytes(), px=self._ttl_ms)
                        pipe.execute()
                        return result
                    except self._redis.WatchError:
                        with self._counts_lock:
                            self._conflicts += 1
                        continue
        except self._redis.RedisError as err:
            raise StoreError(f"Redis session store at {self.url} failed: {err}") from err
        raise StoreError(f"session update gave up after {self.max_retries} conflicting transactions")

    def get(self, session_id: str) -> SessionState | None:
        try:
            raw = self._client.get(self._key(session_id))
        except self._redis.RedisError as err:
            raise StoreError(f"Redis session store at {self.url} failed: {err}") from err
        return None if raw is None else self._load(raw, session_id)

    def delete(self, session_id: str) -> None:
        try:
            self._client.delete(self._key(session_id))
        except self._redis.RedisError as err:
            raise StoreError(f"Redis session store at {self.url} failed: {err}") from err

    def stats(self) -> dict[str, float]:
        return {"conflicts": float(self._conflicts), "unreadable": float(self._unreadable)}

    def close(self) -> None:
        self._client.close()


def store_from_url(spec: str | None, *, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                   max_sessions: int = 100_000) -> SessionStore:
    """The store named by ``spec``: ``"memory"`` (default) or a Redis URL (``redis://...``).

    Examples
    --------
    >>> type(store_from_url("memory")).__name__
    'MemoryStore'
    >>> store_from_url("sqlite://x")
    Traceback (most recent call last):
    ...
    nextchannel.errors.ConfigError: store must be 'memory' or a redis:// (rediss://, unix://) URL, got 'sqlite://x'
    """
    if spec in (None, "", "memory"):
        return MemoryStore(max_sessions=max_sessions, idle_timeout_s=idle_timeout_s)
    if isinstance(spec, str) and spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(spec, idle_timeout_s=idle_timeout_s)
    raise ConfigError(f"store must be 'memory' or a redis:// (rediss://, unix://) URL, got {spec!r}")
