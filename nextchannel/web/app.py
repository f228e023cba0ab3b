"""The reference ASGI service: browser events in, a decision out, everything logged for retraining.

Where it sits: tracker.js → **service** → session store → :meth:`Scorer.decide_one` → offer →
tracker → ``/v1/outcome`` → logs → training. Built on Starlette; run it with uvicorn
(``nextchannel serve``) or mount it in a team's own ASGI application.

Endpoints
---------
``POST /v1/events``
    ``{"session_id": str, "events": [event, ...], "customer_id": str (optional)}``. Each event
    is ``{"ts": seconds, "type": ..., <fields of that type>}`` (:data:`nextchannel.schema.EVENT_FIELDS`;
    fields beyond those are dropped, so free text cannot ride along). An ``offer_shown``,
    ``offer_accepted``, ``offer_dismissed`` or ``contact_started`` event carrying the
    ``decision_id`` of the offer is also logged as that decision's outcome (how the tracker reports
    them: in order with the other events). The events update the
    session's state, the scorer decides, and the answer is ``{"decision": {"decision_id",
    "action", "channel", "offer", "render", "model_version"}}`` where ``render`` holds the texts of
    the offer in the visitor's language (None without an offer).
``POST /v1/outcome``
    ``{"decision_id": str, "outcome": "shown"|"accepted"|"dismissed"|"contact_started"|"solved",
    "session_id": str, "channel": str, "ts": seconds}`` (the last three optional). With a
    ``session_id``, ``channel`` and ``ts`` the matching event (``offer_shown``, ...) also enters the
    session's state, so the next decision knows an offer was shown or dismissed.
``GET /healthz``, ``GET /metrics`` (Prometheus text), ``POST /admin/reload`` (``Authorization:
Bearer <token>``, body ``{"path": bundle}`` optional; answers 404 unless a token is configured).
``GET /nextchannel/tracker.js`` serves the tracker (minified, :mod:`nextchannel.web.tracker`).

A bad payload gets a 4xx whose message names the field; the service never answers 500 because
of a payload. When the scorer cannot decide normally it still answers a safe ``none`` decision
(its reason counted in ``nextchannel_fallbacks_total``); when the session store is down it
answers 503 with a ``none`` decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from nextchannel.errors import NextChannelError, ValidationError, excerpt
from nextchannel.features import SessionState
from nextchannel.policy import Decision
from nextchannel.schema import EVENT_FIELDS, LANGUAGES, NONE_ACTION, validate_event
from nextchannel.web.logs import OUTCOMES, DecisionLog
from nextchannel.web.metrics import Metrics
from nextchannel.web.offers import OfferRenderer
from nextchannel.web.stores import MemoryStore, SessionStore, StoreError
from nextchannel.web.tracker import tracker_source

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError("nextchannel.web needs Starlette and uvicorn: pip install 'nextchannel[web]'") from err

__all__ = ["create_app", "StaticContext", "app_from_env"]

logger = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_OUTCOME_EVENT = {"shown": "offer_shown", "accepted": "offer_accepted", "dismissed": "offer_dismissed",
                  "contact_started": "contact_started"}
_EVENT_OUTCOME = {v: k for k, v in _OUTCOME_EVENT.items()}
_MAX_STR = 200  # longest string kept in an event field (page paths, field names)


class _Bad(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StaticContext:
    """The default channel-context provider: the same context for every request.

    A contact centre feeds its live figures by passing any callable that returns the context
    mapping instead (``open_<ch>``, ``wait_<ch>_s``, ``languages_<ch>``, or nested per channel,
    as :meth:`Scorer.decide_one` reads it); it is called once per request, so cache there.

    Examples
    --------
    >>> ctx = StaticContext({"chat": {"open": True, "wait_s": 30, "languages": ["en", "de"]}})
    >>> ctx()["chat"]["wait_s"]
    30
    """

    def __init__(self, context: Mapping[str, Any] | None = None) -> None:
        self.context = dict(context or {})

    def __call__(self) -> Mapping[str, Any]:
        return self.context


def _anonymous_profile(customer_id: str) -> Mapping[str, Any]:
    return {"customer_id": customer_id}


def _context_columns(context: Mapping[str, Any], channels: tuple[str, ...], language: str | None) -> dict[str, Any]:
    """The flat ``open_/wait_/lang_ok_`` columns of a decision log row for this request's context."""
    from nextchannel.context import context_spec  # the one definition of how a context is read

    try:
        open_, wait, lang_ok = context_spec(channels).parse_one(context, language)
    except (NextChannelError, TypeError, ValueError):
        return {}  # the scorer answered a counted fallback for this context; the log says so in `fallback`
    row: dict[str, Any] = {}
    for ch, o, w, lk in zip(channels, open_, wait, lang_ok):
        row.update({f"open_{ch}": o, f"wait_{ch}_s": w, f"lang_ok_{ch}": lk})
    return row


def _str_field(v: Any) -> Any:
    return v[:_MAX_STR] if isinstance(v, str) else v


def _scalar(v: Any) -> bool:
    """What an event field may hold: a JSON scalar — finite numbers, strings encodable as UTF-8.

    Lists and objects (possibly nested ~1,000 deep, which ``json.loads`` accepts), ``NaN`` and
    ``Infinity`` (which it accepts too) and strings with a lone surrogate (``"\\ud800"`` is valid
    JSON) never reach the state, the logs (strict UTF-8 JSON) or a message.
    """
    t = type(v)
    if v is None or t is bool or t is int:
        return True
    if t is float:
        return v - v == 0.0
    if t is str:
        if v.isascii():
            return True
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    return False


def _parse_events(body: Any, max_events: int,
                  channels: Any) -> tuple[str, str | None, list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(body, dict):
        raise _Bad(400, f"body must be a JSON object, got {type(body).__name__}")
    sid = body.get("session_id")
    if not isinstance(sid, str) or not _ID.match(sid):
        raise _Bad(400, f"session_id must be a string of 1-128 letters, digits or '_.:-', got {excerpt(sid)}")
    cid = body.get("customer_id")
    if cid is not None and (not isinstance(cid, str) or not _ID.match(cid)):
        raise _Bad(400, "customer_id must be a string of 1-128 letters, digits or '_.:-'")
    events = body.get("events")
    if not isinstance(events, list):
        raise _Bad(400, f"events must be a list of events, got {type(events).__name__}")
    if len(events) > max_events:
        raise _Bad(413, f"events must hold at most {max_events} events per request, got {len(events)}")
    out: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    last_ts = None
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise _Bad(422, f"events[{i}] must be an object, got {type(e).__name__}")
        if e.get("session_id", sid) != sid:
            raise _Bad(422, f"events[{i}].session_id must be the body's session_id {sid!r} or absent")
        etype = e.get("type")
        clean = {"session_id": sid, "ts": e.get("ts"), "type": etype}
        for f in EVENT_FIELDS.get(etype, ()) if isinstance(etype, str) else ():
            if f in e:
                clean[f] = _str_field(e[f])
        for f, v in clean.items():
            if not _scalar(v):
                raise _Bad(422, f"events[{i}].{f} must be a string, finite number, boolean or null, "
                                f"got {excerpt(v)}")
        if etype == "session_start" and cid is not None and clean.get("customer_id") in (None, ""):
            clean["customer_id"] = cid
        try:
            validate_event(clean, channels, last_ts=last_ts)
        except ValidationError as err:
            raise _Bad(422, f"events[{i}]: {err}") from None
        last_ts = float(clean["ts"])
        out.append(clean)
        did = e.get("decision_id")
        if etype in _EVENT_OUTCOME and isinstance(did, str) and _ID.match(did):
            # the tracker reports what happened to an offer in its event stream (one ordered channel)
            outcomes.append({"decision_id": did, "outcome": _EVENT_OUTCOME[etype], "session_id": sid,
                             "channel": clean.get("channel"), "ts": last_ts})
    return sid, cid, out, outcomes


def _parse_outcome(body: Any, channels: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Bad(400, f"body must be a JSON object, got {type(body).__name__}")
    did = body.get("decision_id")
    if not isinstance(did, str) or not _ID.match(did):
        raise _Bad(400, "decision_id must be the decision_id of a decision (1-128 letters, digits or '_.:-')")
    outcome = body.get("outcome")
    if type(outcome) is not str or outcome not in OUTCOMES:
        raise _Bad(400, f"outcome must be one of {list(OUTCOMES)}, got {excerpt(outcome)}")
    rec: dict[str, Any] = {"decision_id": did, "outcome": outcome}
    sid = body.get("session_id")
    if sid is not None:
        if not isinstance(sid, str) or not _ID.match(sid):
            raise _Bad(400, "session_id must be a string of 1-128 letters, digits or '_.:-'")
        rec["session_id"] = sid
    ch = body.get("channel")
    if ch is not None:
        if type(ch) is not str or ch not in channels.names:
            raise _Bad(400, f"channel must be one of {list(channels.names)}, got {excerpt(ch)}")
        rec["channel"] = ch
    ts = body.get("ts")
    if ts is not None:
        if type(ts) not in (int, float) or (type(ts) is int and ts.bit_length() > 1000) or not math.isfinite(ts):
            raise _Bad(400, f"ts must be a finite number of seconds, got {excerpt(ts)}")
        rec["ts"] = float(ts)
    return rec


async def _read_json(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _Bad(413, f"body must be at most {max_bytes} bytes, got {declared}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _Bad(413, f"body must be at most {max_bytes} bytes")
        chunks.append(chunk)
    try:  # any content type: sendBeacon posts text/plain to stay a simple (preflight-free) request
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as err:
        raise _Bad(400, f"body must be JSON: {err}"[:300]) from None
    except RecursionError:  # arrays/objects nested deeper than the parser's stack allows
        raise _Bad(400, "body must be JSON nested less deep (the parser's recursion limit was reached)") from None


def _safe_none(scorer: Any, why: str) -> Decision:
    """The answer when the service itself cannot decide (the scorer's own fallbacks cover bad signals)."""
    return Decision(action=NONE_ACTION, offer=False, channel=None, ev={}, offer_score=math.nan, propensity=1.0,
                    model_version=scorer.model_version, fallback=why)


def _language(state: SessionState) -> str | None:
    code = state.ctx_language
    return LANGUAGES[int(code)] if code == code and 0 <= code < len(LANGUAGES) else None


def create_app(scorer: Any, store: SessionStore | None = None, log: DecisionLog | None = None,
               context: Callable[[], Mapping[str, Any]] | Mapping[str, Any] | None = None, *,
               profiles: Callable[[str], Mapping[str, Any] | None] | None = None,
               offers: OfferRenderer | None = None, cors_origins: tuple[str, ...] | list[str] = (),
               max_body_bytes: int = 64 * 1024, max_events: int = 200, admin_token: str | None = None,
               bundle_path: str | Path | None = None, static_dir: str | Path | None = None,
               watch_s: float | None = None) -> Starlette:
    """The ASGI application of the reference service.

    Parameters
    ----------
    scorer : Scorer
        Decides; :meth:`Scorer.reload` swaps bundles for ``/admin/reload``.
    store : SessionStore, optional
        Session states (default: a :class:`~nextchannel.web.stores.MemoryStore`; use a
        :class:`~nextchannel.web.stores.RedisStore` with more than one worker).
    log : DecisionLog, optional
        Where decisions, outcomes and events are written (default: not logged).
    context : callable or dict, optional
        Channel-context provider, called per request (a dict is wrapped in :class:`StaticContext`;
        default: every channel open, no wait).
    profiles : callable, optional
        ``customer_id -> customer dict`` of :func:`nextchannel.profile.profile_one` (or None) for
        known customers (default: known, without history). A failing provider gives the
        anonymous profile and is counted as a fallback.
    offers : OfferRenderer, optional
        Texts and links of the offers.
    cors_origins : sequence of str, default ()
        Origins allowed to call the API from a browser (``()``: same origin only).
    max_body_bytes, max_events : int, default 65536, 200
        Bounds of one request.
    admin_token : str, optional
        Enables ``POST /admin/reload`` for requests bearing it.
    bundle_path : str or Path, optional
        What ``/admin/reload`` loads when the request names no path (a bundle or a publish root).
    static_dir : str or Path, optional
        A folder served at ``/`` (the example shop).
    watch_s : float, optional
        When ``bundle_path`` is a publish root (:func:`nextchannel.bundle.publish`), check its
        ``current`` version every ``watch_s`` seconds and reload on a change — how every worker
        process picks up a newly published bundle (``/admin/reload`` reaches one worker only).

    Examples
    --------
    >>> from starlette.testclient import TestClient
    >>> from nextchannel import Scorer
    >>> client = TestClient(create_app(Scorer.load()))
    >>> r = client.post("/v1/events", json={"session_id": "s1", "events": [
    ...     {"ts": 0.0, "type": "session_start", "device": "desktop", "language": "de"},
    ...     {"ts": 1.0, "type": "page_view", "page": "/", "page_type": "home"}]})
    >>> r.status_code, r.json()["decision"]["action"]
    (200, 'none')
    >>> r = client.post("/v1/events", json={"session_id": "s1", "events": [{"ts": 2.0, "type": "scroll"}]})
    >>> r.status_code, r.json()["error"]
    (422, 'events[0]: depth of a scroll event is required, got None')
    """
    store = store if store is not None else MemoryStore()
    provider = StaticContext(context) if context is None or isinstance(context, Mapping) else context
    profile_of = profiles or _anonymous_profile
    renderer = offers or OfferRenderer()
    metrics = Metrics()

    def channels() -> Any:  # read per request: a reloaded bundle may name other channels
        return scorer.model_set.policy.channels

    def decide(state: SessionState, events: list[dict[str, Any]], customer: Any, ctx: Any) -> tuple[Any, ...]:
        # runs inside the store's atomic update; may run again on a conflict, so it only computes
        accepted = apply(state, events)
        t = time.perf_counter()
        d = scorer.decide_one(state, customer=customer, context=ctx) if ctx is not None else \
            _safe_none(scorer, "context provider failed")
        decide_s = time.perf_counter() - t
        return d, accepted, _language(state), state.last_ts if state.last_ts != -math.inf else 0.0, decide_s

    def apply(state: SessionState, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        accepted = []
        for e in events:
            before = state.n_malformed
            state.update(e)
            if state.n_malformed == before:  # only events the state took are logged (batch = online)
                accepted.append(e)
        return accepted

    async def run_store(fn: Callable[..., Any], *args: Any) -> Any:
        if store.blocking:
            return await run_in_threadpool(fn, *args)
        return fn(*args)

    def safe_answer(why: str, status: int, t0: float) -> JSONResponse:
        d = _safe_none(scorer, why)
        metrics.decision(d.action, d.fallback, time.perf_counter() - t0, 0.0)
        body: dict[str, Any] = {"decision": {"decision_id": None, "action": d.action, "channel": None, "offer": False,
                                             "render": None, "model_version": d.model_version}}
        if status != 200:
            body["error"] = why
        return JSONResponse(body, status_code=status)

    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        metrics.bad_request(status)
        return JSONResponse({"error": message, **extra}, status_code=status)

    async def events_endpoint(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            body = await _read_json(request, max_body_bytes)
            sid, cid, events, outcomes = _parse_events(body, max_events, channels())
        except _Bad as bad:
            return error(bad.status, str(bad))
        try:
            ctx = provider()
        except Exception:  # a failing provider must not take the site down
            logger.exception("channel context provider failed")
            ctx = None
        customer = None
        if cid is not None:
            try:
                customer = profile_of(cid)
            except Exception:
                logger.exception("customer profile provider failed")
                metrics.fallback("profile provider failed")
        try:
            d, accepted, lang, now_ts, decide_s = await run_store(
                store.update, sid, lambda s: decide(s, events, customer, ctx))
        except StoreError as err:
            logger.error("session store failed: %s", err)
            return safe_answer("session store unavailable", 503, t0)
        except Exception:  # a bug must not take the site down: answer 'none', log it, count it
            logger.exception("deciding failed")
            return safe_answer("internal error", 200, t0)
        decision_id = uuid.uuid4().hex
        render = renderer.render(d.channel, lang) if d.offer else None
        if log is not None:
            rec = {"decision_id": decision_id, "session_id": sid, "ts": now_ts, "action": d.action,
                   "propensity": d.propensity, "customer_id": cid, "model_version": d.model_version,
                   "offer_score": d.offer_score if d.offer_score == d.offer_score else None,
                   "fallback": d.fallback}
            rec.update(_context_columns(ctx or {}, channels().names, lang))
            log.events(accepted)
            log.decision(rec)
            for o in outcomes:
                log.outcome({**o, "received_ts": time.time()})
        for o in outcomes:
            metrics.outcome(o["outcome"])
        metrics.decision(d.action, d.fallback, time.perf_counter() - t0, decide_s)
        return JSONResponse({"decision": {"decision_id": decision_id, "action": d.action, "channel": d.channel,
                                          "offer": d.offer, "render": render, "model_version": d.model_version}})

    async def outcome_endpoint(request: Request) -> Response:
        try:
            rec = _parse_outcome(await _read_json(request, max_body_bytes), channels())
        except _Bad as bad:
            return error(bad.status, str(bad))
        etype = _OUTCOME_EVENT.get(rec["outcome"])
        entered: list[dict[str, Any]] = []
        if etype and {"session_id", "channel", "ts"} <= rec.keys():
            ev = {"session_id": rec["session_id"], "ts": rec["ts"], "type": etype, "channel": rec["channel"]}
            try:
                entered = await run_store(store.update, rec["session_id"], lambda s: apply(s, [ev]))
            except StoreError as err:
                logger.error("session store failed: %s", err)
                return error(503, "session store unavailable")
        metrics.outcome(rec["outcome"])
        if log is not None:
            log.events(entered)
            log.outcome({**rec, "received_ts": time.time()})
        return JSONResponse({"ok": True, "state_updated": bool(entered)})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model_version": scorer.model_version})

    async def metrics_endpoint(request: Request) -> Response:
        fb = dict(scorer.fallbacks)
        stats = store.stats()
        text = metrics.render(scorer.model_version, stats)
        extra = "".join(f'nextchannel_scorer_fallbacks_total{{reason="{r}"}} {n}\n' for r, n in sorted(fb.items()))
        return PlainTextResponse(text + extra, media_type="text/plain; version=0.0.4")

    async def reload_endpoint(request: Request) -> Response:
        if not admin_token:
            return error(404, "admin endpoints are disabled (no admin token configured)")
        auth = request.headers.get("authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {admin_token}".encode()):
            return error(401, "authorization must be 'Bearer <admin token>'")
        try:
            length = request.headers.get("content-length") or "0"
            body = await _read_json(request, max_body_bytes) if not length.isdigit() or int(length) else {}
        except _Bad as bad:
            return error(bad.status, str(bad))
        path = body.get("path", bundle_path) if isinstance(body, dict) else None
        if path is None:
            return error(400, "path must name a bundle or publish root (none configured)")
        if not isinstance(path, (str, Path)) or (isinstance(path, str) and not _scalar(path)):
            return error(400, f"path must be a string naming a bundle or publish root, got {excerpt(path)}")
        old = scorer.model_version
        try:
            await run_in_threadpool(scorer.reload, str(path))
        except (NextChannelError, OSError, ValueError) as err:
            return error(400, f"path: bundle could not be loaded: {err}"[:500])
        logger.info("bundle reloaded: %s -> %s", old, scorer.model_version)
        return JSONResponse({"model_version": scorer.model_version, "previous": old})

    tracker_js = tracker_source(minified=True)

    async def tracker(request: Request) -> Response:
        return Response(tracker_js, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300"})

    routes = [Route("/v1/events", events_endpoint, methods=["POST"]),
              Route("/v1/outcome", outcome_endpoint, methods=["POST"]),
              Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics_endpoint, methods=["GET"]),
              Route("/admin/reload", reload_endpoint, methods=["POST"]),
              Route("/nextchannel/tracker.js", tracker, methods=["GET"])]
    if static_dir is not None:
        routes.append(Mount("/", StaticFiles(directory=str(static_dir), html=True)))
    middleware = [Middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["POST", "GET"],
                             allow_headers=["content-type"], max_age=600)] if cors_origins else []
    async def watch(root: str) -> None:
        from nextchannel.bundle import current_version

        seen = current_version(root)
        while True:
            await asyncio.sleep(float(watch_s or 0))
            try:
                version = current_version(root)
                if version and version != seen:
                    await run_in_threadpool(scorer.reload, root)
                    logger.info("published bundle %s picked up", version)
                    seen = version
            except (NextChannelError, OSError, ValueError) as err:  # keep deciding with the bundle we have
                logger.warning("could not reload the published bundle: %s", err)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        from nextchannel.bundle import is_publish_root

        task = None
        if watch_s and bundle_path is not None and is_publish_root(bundle_path):
            task = asyncio.create_task(watch(str(bundle_path)))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            if log is not None:
                log.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.scorer, app.state.store, app.state.log, app.state.metrics = scorer, store, log, metrics
    return app


def app_from_env() -> Starlette:
    """The app a ``nextchannel serve`` worker runs, configured by ``NEXTCHANNEL_SERVE`` (JSON).

    Keys: ``bundle``, ``store``, ``log_dir``, ``cors_origins``, ``context`` (a JSON file of the
    static channel context), ``offers`` (a JSON file ``{"links": ..., "texts": ...}``),
    ``static_dir``, ``max_events``, ``max_body_bytes``, ``idle_timeout_s``, ``watch_s``, ``exploration``
    (``{"exploration": "epsilon", "epsilon": 0.1}`` overriding the bundle's policy). The admin
    token comes from ``NEXTCHANNEL_ADMIN_TOKEN`` (never from a file on the command line).
    """
    import os
    from dataclasses import replace

    from nextchannel.modelset import DEFAULT_BUNDLE, ModelSet
    from nextchannel.scorer import Scorer
    from nextchannel.web.stores import store_from_url

    cfg = json.loads(os.environ.get("NEXTCHANNEL_SERVE", "{}"))
    bundle = cfg.get("bundle") or DEFAULT_BUNDLE
    ms = ModelSet.load(bundle)
    if cfg.get("exploration"):  # a new model set: its version then names the exploring policy too
        ms = ModelSet(ms.channel_model, ms.value_model, ms.offer_model, replace(ms.policy, **cfg["exploration"]),
                      ms.profile_config, meta=ms.meta, evaluation=ms.evaluation)
    scorer = Scorer(ms, seed=int(cfg.get("seed", 0)))
    store = store_from_url(cfg.get("store"), idle_timeout_s=float(cfg.get("idle_timeout_s", 1800.0)))
    log = DecisionLog(cfg["log_dir"]) if cfg.get("log_dir") else None
    context = json.loads(Path(cfg["context"]).read_text()) if cfg.get("context") else None
    offers = None
    if cfg.get("offers"):
        o = json.loads(Path(cfg["offers"]).read_text())
        offers = OfferRenderer(links=o.get("links"), texts=o.get("texts"))
    return create_app(scorer, store=store, log=log, context=context, offers=offers,
                      cors_origins=tuple(cfg.get("cors_origins", ())), max_events=int(cfg.get("max_events", 200)),
                      max_body_bytes=int(cfg.get("max_body_bytes", 64 * 1024)),
                      admin_token=os.environ.get("NEXTCHANNEL_ADMIN_TOKEN") or None,
                      bundle_path=bundle, static_dir=cfg.get("static_dir"), watch_s=cfg.get("watch_s"))
