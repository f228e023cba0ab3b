"""Hostile payloads through ``Scorer.decide_one``: nothing may escape, nothing may be NaN.

Run:  .venv/bin/python benchmarks/fuzz_payloads.py [--n 100000] [--seed 0] [--web 100000]

Drives ``--n`` hostile requests through ``decide_one`` of the default bundle (lenient, the web
default), drawn from five families, each built from a valid request (a session of events, a
customer dict with contacts, a channel context, ``now``):

* ``json``    — the request serialised to JSON text and mutated (characters flipped, deleted,
  duplicated, inserted), then parsed; texts that no longer parse are counted and dropped (a web
  layer rejects them before the scorer), the rest are decided as parsed;
* ``deep``    — a value replaced by a list/dict nested up to 994 deep (``json.loads`` accepts it);
* ``huge``    — a value replaced by a 1 MB string, an int of 5,000 digits, ``1e308``, ``inf``, NaN,
  100,000 events, 10,000 contacts, 10,000 context keys;
* ``hostile`` — a value replaced by an object whose ``__float__``, ``__bool__``, ``__hash__``,
  ``__eq__``, ``__str__``, ``__repr__`` … raise, a numpy array, a bytes object;
* ``confused`` — a value replaced by one of another type (lists for numbers, dicts for strings, …).

The session is given in the three forms ``decide_one`` takes (a live ``SessionState`` fed the
events, ``{"session_id", "events"}``, a dict of feature values by name). Prints: exceptions that
escaped (goal 0), NaN in a normal (non-fallback) decision (goal 0), fallbacks by reason, the
latency of the hostile calls (p50, p99, p99.9, max) and resident memory before and after.
``run(n, seed)`` is the importable core (``tests/test_bad_input.py`` runs a small sample of it).

``--web N`` then drives N hostile HTTP requests through the reference web service
(``nextchannel.web.create_app``, in process as raw ASGI calls — what uvicorn hands the app — with
a memory store, a decision log and the admin endpoint) in six families: mutated JSON text of valid
``/v1/events``, ``/v1/outcome`` and ``/admin/reload`` bodies; nesting 100 to 30,000 deep; huge
bodies (over the limit, declared or streamed), numbers of 4,000+ digits, ``1e999``/``NaN``
literals, 60 kB strings, 5,000 events; values of the wrong JSON type; broken encodings (invalid
UTF-8, lone surrogate escapes, UTF-16/32, NUL); and HTTP itself (content types, malformed
``content-length``, methods, paths, authorization headers, bodies in 7-byte chunks). Prints 5xx
answers from an unhandled exception (goal 0), NaN in a normal decision (goal 0), answers by status,
latency (p50/p99/p99.9/max) and memory before and after. ``run_web(n, seed)`` is its core.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import re
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

from nextchannel.errors import excerpt
from nextchannel.features import SESSION_FEATURES, SessionState
from nextchannel.scorer import Scorer

_FAMILIES = ("json", "deep", "huge", "hostile", "confused")


class _Hostile:
    """Every conversion, comparison and hash raises (a different exception per instance)."""

    def __init__(self, exc: type[BaseException]) -> None:
        object.__setattr__(self, "_exc", exc)

    def _boom(self, *args: Any) -> Any:
        raise object.__getattribute__(self, "_exc")("hostile object")

    __float__ = __int__ = __index__ = __bool__ = __hash__ = __eq__ = __ne__ = __lt__ = __le__ = _boom
    __gt__ = __ge__ = __str__ = __repr__ = __format__ = __len__ = __iter__ = __getitem__ = __contains__ = _boom
    __round__ = __abs__ = __neg__ = __sub__ = __add__ = __mul__ = __truediv__ = _boom


class _HostileStr(str):
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("hostile str")

    __hash__ = __ne__ = __lt__ = __float__ = __eq__  # type: ignore[assignment]


class _HostileFloat(float):
    def __eq__(self, other: object) -> bool:
        raise ArithmeticError("hostile float")

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __sub__ = __rsub__ = __float__ = __bool__ = __eq__  # type: ignore[assignment]
    __hash__ = float.__hash__


class _HostileMapping(dict):  # type: ignore[type-arg]
    def get(self, *args: Any) -> Any:
        raise KeyError("hostile mapping")

    def __contains__(self, key: object) -> bool:
        raise LookupError("hostile mapping")


def _deep(depth: int, kind: str) -> Any:
    v: Any = 1.0
    for _ in range(depth):
        v = [v] if kind == "list" else {"a": v}
    return v


def _base_request(rng: random.Random, i: int) -> dict[str, Any]:
    sid = f"s{i}"
    t0 = 1_767_600_000.0 + rng.random() * 1e5
    events = [{"session_id": sid, "ts": t0, "type": "session_start", "device": rng.choice(["desktop", "mobile"]),
               "language": rng.choice(["en", "de", "fr"]), "customer_id": rng.choice([None, f"c{i}"]),
               "returning": rng.random() < 0.5, "utc_offset_s": 3600.0}]
    t = t0
    for _ in range(rng.randint(1, 12)):
        t += rng.choice([1.0, 5.0, 30.0, 90.0])
        etype = rng.choice(["page_view", "page_view", "idle", "scroll", "form_error", "click", "cart_add", "search"])
        e: dict[str, Any] = {"session_id": sid, "ts": t, "type": etype}
        if etype == "page_view":
            e.update(page=rng.choice(["/", "/cart", "/checkout", "/help"]),
                     page_type=rng.choice(["home", "cart", "checkout", "help"]))
        elif etype == "idle":
            e["duration_s"] = rng.choice([10.0, 40.0])
        elif etype == "scroll":
            e.update(depth=rng.random(), direction=rng.choice(["up", "down"]))
        elif etype == "form_error":
            e["field"] = "zip"
        elif etype == "cart_add":
            e["value"] = 20.0
        elif etype == "search":
            e["n_results"] = rng.choice([0, 3])
        events.append(e)
    contacts = [{"ts": t0 - 86400.0 * k, "channel": rng.choice(["chat", "phone", "email"]),
                 "resolved": rng.random() < 0.7, "satisfaction": rng.choice([None, 4.0])}
                for k in range(rng.randint(0, 4))]
    customer = None if rng.random() < 0.4 else {"customer_id": f"c{i}", "contacts": contacts,
                                                 "opt_out": rng.choice([[], ["phone"]])}
    context = {"open_phone": rng.random() < 0.7, "wait_chat_s": rng.choice([0.0, 45.0, 300.0]),
               "languages_callback": ["en", "fr"]}
    return {"session": {"session_id": sid, "events": events}, "customer": customer, "context": context,
            "now": t + rng.choice([0.0, 5.0, 60.0])}


class _Pools:
    """Hostile values, built once (a 1 MB string and 100,000 events are reused, not rebuilt per call)."""

    def __init__(self) -> None:
        self.deep = [_deep(d, k) for d in (50, 500, 994) for k in ("list", "dict")]
        big_events = [{"session_id": "s", "ts": float(k), "type": "click"} for k in range(100_000)]
        big_contacts = [{"ts": float(k), "channel": "chat", "resolved": True} for k in range(10_000)]
        self.huge = ["x" * 1_000_000, 10**5000, -(10**5000), 1e308, -1e308, math.inf, -math.inf, math.nan,
                     big_events, big_contacts, {f"k{k}": k for k in range(10_000)}, list(range(100_000)),
                     "\x00" * 1000, "é" * 100_000]
        self.hostile = [_Hostile(e) for e in (RuntimeError, ValueError, TypeError, KeyError, AttributeError,
                                              RecursionError, MemoryError, ZeroDivisionError, OverflowError)]
        self.hostile += [_HostileStr("chat"), _HostileStr("page_view"), _HostileFloat(3.0), _HostileMapping(a=1),
                         np.array([1.0, 2.0]), np.array(["s1", "s2"]), np.float64("nan"), b"\xff\xfe", bytearray(3)]
        self.confused = [None, True, False, 0, -1, 1.5, "", "abc", [], [1, 2], {}, {"x": 1}, ("t",), {1, 2},
                         object(), 1j, "1e999", "nan", "-3", float("-0.0")]


def _paths(obj: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[Any, ...]]:
    """Every (container, key) path of a request, to pick one value to replace."""
    out = []
    if depth > 6:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,), depth + 1))
    elif isinstance(obj, list):
        for k, v in enumerate(obj[:20]):
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,), depth + 1))
    return out


def _replace(req: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = req
    for k in path[:-1]:
        if type(target) not in (dict, list):
            return
        target = target[k]
    if type(target) in (dict, list):
        target[path[-1]] = value


def _mutate_json(rng: random.Random, req: dict[str, Any]) -> Any:
    text = json.dumps(req)
    chars = list(text)
    for _ in range(rng.choice([1, 1, 1, 2])):
        op = rng.random()
        j = rng.randrange(len(chars))
        if op < 0.45:  # mostly inside values: digits, letters, signs
            chars[j] = rng.choice('0123456789.eE-+ntrufalsx')
        elif op < 0.55:
            chars[j] = rng.choice('{}[]":,\\')
        elif op < 0.7:
            del chars[j]
        elif op < 0.8:
            chars.insert(j, rng.choice('0123456789e-"[{'))
        else:
            k = min(len(chars), j + rng.randint(1, 40))
            chars[j:j] = chars[j:k]
    try:
        return json.loads("".join(chars))
    except (ValueError, RecursionError):
        return _UNPARSEABLE


_UNPARSEABLE = object()


def _as_call(rng: random.Random, req: Any) -> tuple[Any, Any, Any, Any]:
    """(session, customer, context, now) in one of the three session forms."""
    if type(req) is not dict:  # the whole request replaced: hand it over as the session
        return req, None, None, None
    session = req.get("session")
    form = rng.random()
    if form < 0.35 and type(session) is dict and isinstance(session.get("events"), list):
        st = SessionState(session.get("session_id") if isinstance(session.get("session_id"), str) else None)
        try:
            st.update_many(session["events"])
        except Exception as err:  # lenient update must never raise: count it as an escape
            raise _Escaped(err) from err
        session = st
    elif form < 0.55 and type(session) is dict:
        feats = {name: rng.choice([0.0, 1.0, 30.0, math.nan]) for name in SESSION_FEATURES}
        feats["session_id"] = session.get("session_id")
        feats["ts"] = req.get("now")
        session = feats
    return session, req.get("customer"), req.get("context"), req.get("now")


class _Escaped(Exception):
    pass


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6
    except OSError:  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def run(n: int = 100_000, seed: int = 0, scorer: Scorer | None = None) -> dict[str, Any]:
    """Drive ``n`` hostile payloads through ``decide_one``; return the figures (see the module docstring)."""
    rng = random.Random(seed)
    scorer = scorer or Scorer.load()
    pools = _Pools()
    bases = [_base_request(rng, i) for i in range(200)]
    for b in bases[:50]:  # warm-up on valid requests
        scorer.decide_one(*_as_call(rng, copy.deepcopy(b)))
    rss_before = _rss_mb()
    escaped: Counter[str] = Counter()
    escaped_examples: list[str] = []
    nan_normal = 0
    unparseable = 0
    families: Counter[str] = Counter()
    lat_ns: list[int] = []
    slowest: list[tuple[int, str]] = []
    i = -1
    while sum(families.values()) < n:
        i += 1
        family = _FAMILIES[i % len(_FAMILIES)]
        base = bases[rng.randrange(len(bases))]
        path: Any = None
        value: Any = None
        if family == "json":
            req: Any = _mutate_json(rng, base)
            if req is _UNPARSEABLE:
                unparseable += 1
                continue
        else:
            req = copy.deepcopy(base)
            paths = _paths(req)  # of the valid request only: never descend into (shared) pool values
            pool = getattr(pools, family)
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                path = rng.choice(paths) if rng.random() < 0.97 else None
                value = pool[rng.randrange(len(pool))]
                if path is None:
                    req = value  # the whole request replaced
                    break
                try:
                    _replace(req, path, value)
                except (TypeError, IndexError, KeyError, AttributeError):
                    pass  # the path ran through a value replaced before
        families[family] += 1
        what = f"{family}: {path if family != 'json' and path is not None else 'whole request'} <- " \
               f"{excerpt(value) if family != 'json' else 'mutated text'}" if family != "json" else "json"
        t0 = time.perf_counter_ns()
        try:
            d = scorer.decide_one(*_as_call(rng, req))
        except BaseException as err:  # noqa: BLE001 - counting everything that escapes is the point
            if isinstance(err, KeyboardInterrupt):
                raise
            cause = err.__cause__ if isinstance(err, _Escaped) else err
            key = f"{'SessionState.update' if isinstance(err, _Escaped) else 'decide_one'}: {type(cause).__name__}"
            escaped[key] += 1
            if len(escaped_examples) < 5:
                escaped_examples.append(f"{key}: {str(cause)[:120]}")
            continue
        finally:
            dt = time.perf_counter_ns() - t0
            lat_ns.append(dt)
            if len(slowest) < 3 or dt > slowest[-1][0]:
                slowest = sorted([*slowest, (dt, what)], reverse=True)[:3]
        if d.fallback is None:
            vals = [*d.ev.values(), d.offer_score, d.propensity]
            if any(v != v for v in vals):
                nan_normal += 1
    rss_after = _rss_mb()
    lat = np.array(lat_ns, dtype=float) / 1e3
    # the cost of the two largest valid requests, bounded by Limits (median of 5 calls each)
    big_events = {"session_id": "s", "events": [{"session_id": "s", "ts": float(k), "type": "click"}
                                                for k in range(100_000)]}
    big_customer = {"customer_id": "c", "contacts": [{"ts": float(k), "channel": "chat", "resolved": True}
                                                     for k in range(10_000)]}
    bounded = {}
    for name, call in (("100,000 events", lambda: scorer.decide_one(big_events, None, None, 2e5)),
                       ("10,000 contacts", lambda: scorer.decide_one(bases[0]["session"], big_customer, None,
                                                                     bases[0]["now"]))):
        ts = []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            call()
            ts.append((time.perf_counter_ns() - t0) / 1e6)
        bounded[name] = float(np.median(ts))
    return {
        "calls": int(sum(families.values())), "families": dict(families), "unparseable_json_dropped": unparseable,
        "escaped": int(sum(escaped.values())), "escaped_by_type": dict(escaped), "escaped_examples": escaped_examples,
        "nan_in_normal_decisions": nan_normal, "fallbacks": dict(scorer.fallbacks),
        "latency_us": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                       "p99.9": float(np.percentile(lat, 99.9)), "max": float(lat.max())} if len(lat) else {},
        "rss_mb_before": rss_before, "rss_mb_after": rss_after,
        "slowest": [f"{dt / 1e3:,.0f} us: {w}" for dt, w in slowest],
        "bounded_request_ms": bounded,
    }


# ---------------------------------------------------------------------------------------------
# The reference web service's HTTP endpoints, driven in process through raw ASGI calls
# ---------------------------------------------------------------------------------------------
_WEB_FAMILIES = ("json", "deep", "huge", "types", "encoding", "http")
_TOKEN = "fuzz-admin-token"


class _CountingScorer:
    """The scorer the app is given: every decision it returns is checked for NaN when not a fallback."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer
        self.nan_normal = 0
        self.decisions = 0

    def decide_one(self, *args: Any, **kwargs: Any) -> Any:
        d = self._scorer.decide_one(*args, **kwargs)
        self.decisions += 1
        if d.fallback is None and any(v != v for v in [*d.ev.values(), d.offer_score, d.propensity]):
            self.nan_normal += 1
        return d

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scorer, name)


async def _asgi_call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]],
                     chunks: list[bytes]) -> tuple[int, bytes, BaseException | None]:
    """One HTTP request through the ASGI app as a server would make it: (status, body, escaped exception)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode("utf-8", "surrogateescape"),
             "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8000)}
    pending = list(chunks) or [b""]
    status = [0]
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    except Exception as err:  # noqa: BLE001 - an exception out of the app is what a server logs as a 500
        return status[0] or 500, b"".join(body), err
    return status[0], b"".join(body), None


def _events_body(base: dict[str, Any]) -> dict[str, Any]:
    sess = base["session"]
    events = [{k: v for k, v in e.items() if k != "session_id"} for e in sess["events"]]
    body: dict[str, Any] = {"session_id": sess["session_id"], "events": events}
    if base["customer"] is not None:
        body["customer_id"] = base["customer"]["customer_id"]
    return body


def _outcome_body(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    return {"decision_id": f"d{rng.randrange(10**6)}", "outcome": rng.choice(["shown", "accepted", "dismissed"]),
            "session_id": base["session"]["session_id"], "channel": rng.choice(["chat", "phone"]),
            "ts": base["now"]}


def _deep_text(depth: int, kind: str) -> str:
    return ("[" * depth + "1" + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


def _put_raw(rng: random.Random, text: str, raw: str) -> str:
    """Replace one JSON value of ``text`` (after a ``:`` or ``[``/``,``) with the raw JSON text ``raw``."""
    spots = [m.end() for m in re.finditer(r'[:\[,]\s*', text)]
    if not spots:
        return raw
    j = rng.choice(spots)
    m = re.match(r'("(?:[^"\\]|\\.)*"|-?[0-9.eE+\-]+|true|false|null)', text[j:])
    end = j + (m.end() if m else 0)
    return text[:j] + raw + text[end:]


def _web_request(rng: random.Random, family: str, base: dict[str, Any]) -> tuple[str, str, list[tuple[bytes, bytes]],
                                                                                list[bytes], str]:
    """(method, path, headers, body chunks, what) of one hostile request of a family."""
    r = rng.random()
    path = "/v1/events" if r < 0.75 else "/v1/outcome" if r < 0.93 else "/admin/reload"
    obj: Any = _events_body(base) if path == "/v1/events" else _outcome_body(rng, base) \
        if path == "/v1/outcome" else {"path": rng.choice(["", "/", "/dev/zero", "models/nowhere", "\x00", "é" * 300])}
    text = json.dumps(obj)
    ctype = b"application/json"
    headers = [(b"authorization", f"Bearer {_TOKEN}".encode())] if rng.random() < 0.5 else []
    method = "POST"
    what = family
    if family == "json":  # the valid body's text mutated; it may no longer parse
        chars = list(text)
        for _ in range(rng.choice([1, 1, 2, 3])):
            j = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.45:
                chars[j] = rng.choice('0123456789.eE-+ntrufalsxNI')
            elif op < 0.6:
                chars[j] = rng.choice('{}[]":,\\')
            elif op < 0.75:
                del chars[j]
            else:
                k = min(len(chars), j + rng.randint(1, 40))
                chars[j:j] = chars[j:k]
        raw = "".join(chars).encode()
    elif family == "deep":  # nesting that json.loads rejects (RecursionError) or accepts (994 deep)
        depth = rng.choice([100, 994, 2_000, 20_000, 30_000])
        kind = rng.choice(["list", "dict"])
        raw = (_deep_text(depth, kind) if rng.random() < 0.3 else _put_raw(rng, text, _deep_text(depth, kind))).encode()
        what = f"deep {kind} {depth}"
    elif family == "huge":
        choice = rng.randrange(8)
        if choice == 0:  # over the body limit, declared
            raw = b" " * 70_000 + text.encode()
        elif choice == 1:  # over the body limit, streamed without a length
            raw = text.encode() + b" " * 200_000
            headers.append((b"transfer-encoding", b"chunked"))
        elif choice == 2:
            raw = _put_raw(rng, text, "9" * rng.choice([400, 4_000, 4_299, 4_301, 20_000])).encode()
        elif choice == 3:
            raw = _put_raw(rng, text, rng.choice(["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1e-999",
                                                  "123456789012345678901234567890"])).encode()
        elif choice == 4:
            raw = _put_raw(rng, text, json.dumps("x" * rng.choice([1_000, 30_000, 60_000]))).encode()
        elif choice == 5 and path == "/v1/events":  # more events than allowed, and exactly as many
            n = rng.choice([200, 201, 5_000])
            raw = json.dumps({**obj, "events": [{"ts": float(k), "type": "click"} for k in range(n)]}).encode()
        elif choice == 6:
            raw = json.dumps({**obj, **{f"k{k}": k for k in range(rng.choice([100, 3_000]))}}).encode()
        else:
            raw = _put_raw(rng, text, json.dumps(list(range(rng.choice([1_000, 10_000]))))).encode()
        what = f"huge #{choice}"
    elif family == "types":  # one value replaced by one of another JSON type
        raw = _put_raw(rng, text, rng.choice(['null', 'true', 'false', '0', '-1', '1.5', '""', '"abc"', '[]', '[1,2]',
                                              '{}', '{"x":1}', '"1e999"', '"nan"', '-0.0', '1e308', '"\\u0000"',
                                              '"s1"', '"page_view"', '"chat"'])).encode()
        if rng.random() < 0.1:
            raw = rng.choice([b"[]", b"null", b"1", b'"x"', b"[{}]", b"{}"])
    elif family == "encoding":
        choice = rng.randrange(7)
        if choice == 0:  # invalid UTF-8 bytes somewhere
            b = bytearray(text.encode())
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] = rng.choice([0xFF, 0xFE, 0xC0, 0x80, 0xED, 0xF5])
            raw = bytes(b)
        elif choice == 1:  # a lone surrogate escape, valid JSON, not encodable as UTF-8
            raw = _put_raw(rng, text, rng.choice(['"\\ud800"', '"a\\udfffb"', '"\\ud83d"'])).encode()
        elif choice == 2:
            raw = text.encode(rng.choice(["utf-16", "utf-16-le", "utf-32", "utf-8-sig"]))
        elif choice == 3:
            raw = text.encode("latin-1", "replace") + "é".encode("latin-1")
        elif choice == 4:
            raw = _put_raw(rng, text, json.dumps("\x00\x01\x1f\u2028\u2029\ufeff" * 5)).encode()
        elif choice == 5:
            raw = _put_raw(rng, text, '"' + "é" * 300 + '"').encode()
        else:  # overlong / truncated multi-byte sequences
            raw = text.encode()[:-1] + b"\xe2\x82"
        what = f"encoding #{choice}"
    else:  # http: content types, lengths, methods, paths
        raw = text.encode()
        choice = rng.randrange(9)
        if choice == 0:
            ctype = rng.choice([b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
                                b"application/xml", b"", b"application/json; charset=utf-16", b"\xff\xfe"])
        elif choice == 1:
            headers.append((b"content-length", rng.choice([b"-1", b"abc", b"99999999999999999999", b"0", b"1", b" 5",
                                                           b"1e3", b"\xff"])))
        elif choice == 2:
            method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
        elif choice == 3:
            path = rng.choice(["/v1/events/", "/v1", "/", "/v1/../admin/reload", "/v1/events%00", "/\u00e9",
                               "/nextchannel/tracker.js", "/healthz", "/metrics", "/x" * 500])
            method = rng.choice(["GET", "POST"])
        elif choice == 4:
            raw = b""
        elif choice == 5:
            headers = [(b"authorization", rng.choice([b"Bearer", b"Bearer " + b"x" * 10_000, b"\xff\xfe",
                                                      f"Bearer {_TOKEN}x".encode(), b"Basic abc"]))]
            path = "/admin/reload"
        elif choice == 6:
            raw = b"\x00" * rng.choice([1, 1000])
        elif choice == 7:  # the body split into many small chunks
            return method, path, headers + [(b"content-type", ctype)], [raw[k:k + 7] for k in range(0, len(raw), 7)], \
                "http: chunked body"
        else:
            headers.append((b"content-type", b"application/json"))  # duplicated header
        what = f"http #{choice}"
    hdrs = headers + ([(b"content-type", ctype)] if ctype else [])
    if not any(k == b"content-length" for k, _ in hdrs) and not any(k == b"transfer-encoding" for k, _ in hdrs):
        hdrs.append((b"content-length", str(len(raw)).encode()))
    return method, path, hdrs, [raw], what


def run_web(n: int = 20_000, seed: int = 0, scorer: Scorer | None = None) -> dict[str, Any]:
    """Drive ``n`` hostile HTTP requests through the reference service (``nextchannel.web.create_app``).

    In process, as raw ASGI calls (no sockets): the app with its default memory store, a
    :class:`~nextchannel.web.logs.DecisionLog` in a temporary folder and the admin endpoint enabled. Counts responses that are a 5xx from an unhandled exception (goal 0; a 503
    from an unavailable store would be a designed answer, and does not occur here), exceptions
    escaping the app, NaN in a normal decision, responses by status, latency and memory.
    """
    import asyncio
    import tempfile

    from nextchannel.web import DecisionLog, create_app

    rng = random.Random(seed)
    counting = _CountingScorer(scorer or Scorer.load())
    tmp = tempfile.TemporaryDirectory(prefix="nextchannel-fuzz-")
    log = DecisionLog(tmp.name, key=b"fuzz")
    app = create_app(counting, log=log, admin_token=_TOKEN)
    bases = [_base_request(rng, i) for i in range(200)]
    statuses: Counter[int] = Counter()
    families: Counter[str] = Counter()
    escaped: Counter[str] = Counter()
    examples: list[str] = []
    lat_ns: list[int] = []
    slowest: list[tuple[int, str]] = []
    bad_bodies = 0

    async def drive() -> tuple[float, float]:
        nonlocal bad_bodies, slowest
        for b in bases[:50]:  # warm-up with valid requests
            raw = json.dumps(_events_body(b)).encode()
            await _asgi_call(app, "POST", "/v1/events", [(b"content-type", b"application/json"),
                                                         (b"content-length", str(len(raw)).encode())], [raw])
        before = _rss_mb()
        for i in range(n):
            family = _WEB_FAMILIES[i % len(_WEB_FAMILIES)]
            method, path, headers, chunks, what = _web_request(rng, family, bases[rng.randrange(len(bases))])
            families[family] += 1
            t0 = time.perf_counter_ns()
            status, body, err = await _asgi_call(app, method, path, headers, chunks)
            dt = time.perf_counter_ns() - t0
            lat_ns.append(dt)
            if len(slowest) < 3 or dt > slowest[-1][0]:
                slowest = sorted([*slowest, (dt, f"{method} {path[:40]} {what}")], reverse=True)[:3]
            statuses[status] += 1
            if err is not None or status >= 500:
                key = f"{path[:40]}: {type(err).__name__ if err else status}"
                escaped[key] += 1
                if len(examples) < 5:
                    examples.append(f"{key} ({what}): {str(err)[:120] if err else body[:120]!r}")
            elif status == 200 and path == "/v1/events" and method == "POST":
                try:
                    json.loads(body)["decision"]["action"]
                except (ValueError, KeyError, TypeError):
                    bad_bodies += 1
        return before, _rss_mb()

    t_start = time.perf_counter()
    try:
        rss_before, rss_after = asyncio.run(drive())
    finally:
        log.close()
        tmp.cleanup()
    lat = np.array(lat_ns, dtype=float) / 1e3
    return {
        "requests": n, "families": dict(families), "status": dict(sorted(statuses.items())),
        "server_errors": int(sum(escaped.values())), "server_errors_by_kind": dict(escaped),
        "server_error_examples": examples, "decisions": counting.decisions,
        "nan_in_normal_decisions": counting.nan_normal, "unreadable_200_bodies": bad_bodies,
        "fallbacks": dict(counting.fallbacks),
        "latency_us": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                       "p99.9": float(np.percentile(lat, 99.9)), "max": float(lat.max())} if len(lat) else {},
        "rss_mb_before": rss_before, "rss_mb_after": rss_after,
        "slowest": [f"{dt / 1e3:,.0f} us: {w}" for dt, w in slowest], "wall_s": time.perf_counter() - t_start,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--web", type=int, default=0, metavar="N",
                    help="also drive N hostile HTTP requests through the web service's endpoints (0: skip)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    ok = True
    if args.n:
        ok = _report_scorer(args) and ok
    if args.web:
        ok = _report_web(args) and ok
    return 0 if ok else 1


def _report_web(args: argparse.Namespace) -> bool:
    w = run_web(args.web, args.seed)
    if args.json:
        print(json.dumps(w, indent=2))
    else:
        print(f"hostile HTTP requests through the web service (in-process ASGI, memory store, decision log): "
              f"{w['requests']:,} requests ({', '.join(f'{k} {v:,}' for k, v in w['families'].items())})")
        print(f"  5xx from an unhandled exception {w['server_errors']:,}   (goal 0) {w['server_errors_by_kind'] or ''}")
        for ex in w["server_error_examples"]:
            print(f"    e.g. {ex}")
        print(f"  NaN in a normal decision     {w['nan_in_normal_decisions']:,}   (goal 0; {w['decisions']:,} decisions)")
        print(f"  responses by status          {w['status']}")
        _print_costs(w, "latency per request         ", "slowest requests            ")
    return w["server_errors"] == 0 and w["nan_in_normal_decisions"] == 0 and w["unreadable_200_bodies"] == 0


def _report_scorer(args: argparse.Namespace) -> bool:
    t0 = time.perf_counter()
    r = run(args.n, args.seed)
    r["wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(r, indent=2))
        return r["escaped"] == 0 and r["nan_in_normal_decisions"] == 0
    print(f"hostile payloads through decide_one (default bundle, lenient): {r['calls']:,} calls "
          f"({', '.join(f'{k} {v:,}' for k, v in r['families'].items())}); "
          f"{r['unparseable_json_dropped']:,} mutated JSON texts did not parse (dropped)")
    print(f"  exceptions escaped           {r['escaped']:,}   (goal 0) {r['escaped_by_type'] or ''}")
    for ex in r["escaped_examples"]:
        print(f"    e.g. {ex}")
    print(f"  NaN in a normal decision     {r['nan_in_normal_decisions']:,}   (goal 0)")
    print(f"  fallbacks by reason          {r['fallbacks']}")
    print(f"  largest valid requests       " + ", ".join(f"{k}: {v:,.1f} ms" for k, v in r["bounded_request_ms"].items())
          + " (median of 5; bounded by Limits)")
    _print_costs(r, "latency of the hostile calls", "slowest calls               ")
    return r["escaped"] == 0 and r["nan_in_normal_decisions"] == 0


def _print_costs(r: dict[str, Any], latency_label: str, slowest_label: str) -> None:
    lat = r["latency_us"]
    print(f"  {latency_label} p50 {lat['p50']:,.0f} us, p99 {lat['p99']:,.0f} us, "
          f"p99.9 {lat['p99.9']:,.0f} us, max {lat['max']:,.0f} us")
    print(f"  {slowest_label} {r['slowest']}")
    print(f"  resident memory              {r['rss_mb_before']:,.1f} MB before, {r['rss_mb_after']:,.1f} MB after")
    print(f"  wall time                    {r['wall_s']:,.1f} s")


if __name__ == "__main__":
    sys.exit(main())
