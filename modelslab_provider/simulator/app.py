"""The simulator's aiohttp application and its asyncio-native server handle.

This is the only module that imports aiohttp; the response logic lives in ``state.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from . import batch as sim_batch
from .state import ENDPOINTS, PREFIXES, Reply, SimConfig, SimState, error_reply, fingerprint, redact

log = logging.getLogger("modelslab_provider.simulator")

STATE: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
VIDEO: web.AppKey[bytes] = web.AppKey("sim_video", bytes)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Ctx:
    """Per-request scratch space shared by the middleware and the handler (lives for one request)."""

    entry: dict[str, Any] | None = None
    body: dict[str, Any] = field(default_factory=dict)
    key: Any = None
    body_error: str | None = None
    dropped: bool = False


_CTX: ContextVar[_Ctx] = ContextVar("modelslab_simulator_request")

_HTML_405 = (
    "<!DOCTYPE html>\n<html><head><title>405 Method Not Allowed</title></head>\n"
    "<body><h1>Method Not Allowed</h1><p>The {method} method is not supported for this route. "
    "Supported methods: POST.</p></body></html>\n"
)


def sample_video() -> bytes:
    """Bytes of the small real MP4 shipped as package data."""
    return resources.files(__package__).joinpath("data", "sample.mp4").read_bytes()


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _to_response(reply: Reply) -> web.Response:
    body = reply.body
    if isinstance(body, dict | list):
        return web.json_response(body, status=reply.status)
    if isinstance(body, str):
        return web.Response(status=reply.status, text=body, content_type=reply.content_type)
    data = body if isinstance(body, bytes) else b""
    return web.Response(status=reply.status, body=data, content_type=reply.content_type)


async def _send(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Play out delays and drops, note the job id in the request log, then answer."""
    while reply.delay:
        await asyncio.sleep(reply.delay)
        reply = reply.then() if reply.then is not None else Reply(200, {})
    ctx = _CTX.get()
    if ctx.entry is not None and reply.job_id is not None:
        ctx.entry["job_id"] = reply.job_id
    if reply.drop:
        ctx.dropped = True
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=200)
    return _to_response(reply)


def _body_or_error(ctx: _Ctx) -> Reply | None:
    if ctx.body_error:
        return error_reply(ctx.body_error, 400)
    return None


# ----- middleware ----------------------------------------------------------------------------


def _parse_api_body(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    if not raw.strip():
        return {}, None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None, "Invalid JSON body"
    if not isinstance(parsed, dict):
        return None, "Request body must be a JSON object"
    return parsed, None


async def _record(request: web.Request, state: SimState, ctx: _Ctx) -> dict[str, Any]:
    """Log the request without its key: header and query names, key fingerprint, redacted body."""
    entry: dict[str, Any] = {
        "ts": time.time(),
        "method": request.method,
        "path": request.path,
        "job_id": None,
        "key_present": False,
        "key_fingerprint": None,
        "key_in_headers": False,
        "key_in_query": "key" in request.query,
        "headers": sorted(request.headers.keys()),
        "query": sorted(request.query.keys()),
        "body": None,
        "status": None,
    }
    if request.path.startswith("/api/"):
        body, problem = _parse_api_body(await request.read())
        key = body.get("key") if body is not None else None
        if problem or body is None:
            ctx.body_error = problem
            entry["body_error"] = problem
        else:
            ctx.body = body
            ctx.key = key
            entry["body"] = redact(body, key)
        if isinstance(key, str) and key:
            entry["key_present"] = True
            entry["key_fingerprint"] = fingerprint(key)
            entry["key_in_headers"] = any(key in value for value in request.headers.values())
            entry["key_in_query"] = entry["key_in_query"] or any(key in v for v in request.query.values())
    return state.record(entry)


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    ctx = _Ctx()
    _CTX.set(ctx)
    entry = None if request.path.startswith("/_sim/") else await _record(request, state, ctx)
    ctx.entry = entry
    try:
        response = await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        response = web.Response(
            status=405,
            text=_HTML_405.format(method=request.method),
            content_type="text/html",
            headers={"Allow": ", ".join(sorted(exc.allowed_methods))},
        )
    except web.HTTPNotFound:
        response = web.json_response({"status": "error", "message": "Not found"}, status=404)
    if entry is not None:
        dropped = ctx.dropped
        entry["status"] = None if dropped else response.status
        log.info(
            "%s %s -> %s job=%s key=%s",
            request.method,
            request.path,
            "dropped" if dropped else response.status,
            entry["job_id"],
            entry["key_fingerprint"],
        )
    return response


# ----- API handlers --------------------------------------------------------------------------


def _submit_handler(version: str, endpoint: str) -> Handler:
    async def submit(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        ctx = _CTX.get()
        reply = _body_or_error(ctx) or state.submit(version, endpoint, ctx.body, ctx.key, _base_url(request))
        return await _send(request, reply)

    return submit


def _fetch_handler(version: str) -> Handler:
    async def fetch(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        ctx = _CTX.get()
        id_text = request.match_info["id"]
        if ctx.entry is not None:
            ctx.entry["job_id"] = int(id_text) if id_text.isdigit() else id_text
        reply = _body_or_error(ctx) or state.fetch(version, id_text, ctx.key, _base_url(request))
        return await _send(request, reply)

    return fetch


async def _batch_submit(request: web.Request) -> web.StreamResponse:
    ctx = _CTX.get()
    state = request.app[STATE]
    reply = _body_or_error(ctx) or sim_batch.submit_batch(state, ctx.body, ctx.key, _base_url(request))
    return await _send(request, reply)


async def _batch_fetch(request: web.Request) -> web.StreamResponse:
    ctx = _CTX.get()
    id_text = request.match_info["id"]
    if ctx.entry is not None:
        ctx.entry["job_id"] = int(id_text) if id_text.isdigit() else id_text
    reply = _body_or_error(ctx) or sim_batch.fetch_batch(
        request.app[STATE], id_text, ctx.key, _base_url(request)
    )
    return await _send(request, reply)


async def _admin_batches(request: web.Request) -> web.StreamResponse:
    return web.json_response(sim_batch.batches_snapshot(request.app[STATE]))


async def _wallet(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    ctx = _CTX.get()
    reply = _body_or_error(ctx) or state.check_key(ctx.key, submit=False)
    if reply is None:
        balance = 0.0 if "nocredit" in ctx.key else float(state.config.balance)
        reply = Reply(200, {"status": "success", "data": {"balance": balance, "currency": "USD"}})
    return await _send(request, reply)


async def _request_count(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    ctx = _CTX.get()
    reply = _body_or_error(ctx) or state.check_key(ctx.key, submit=False)
    if reply is None:
        count = state.processing_count(ctx.key)
        body = {
            "status": "success",
            "processing_count": count,
            "message": f"You have {count} request(s) in processing.",
        }
        reply = Reply(200, body)
    return await _send(request, reply)


async def _file(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.counters["file_requests"] += 1
    if not state.file_available(request.match_info["name"]):
        return web.Response(status=404, text="Not Found", content_type="text/plain")
    return web.Response(
        body=request.app[VIDEO], content_type="video/mp4", headers={"Cache-Control": "no-store"}
    )


# ----- admin handlers ------------------------------------------------------------------------


async def _admin_requests(request: web.Request) -> web.StreamResponse:
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return web.json_response({"status": "error", "message": "since must be an integer"}, status=400)
    return web.json_response(request.app[STATE].requests_snapshot(since))


async def _admin_jobs(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].jobs_snapshot())


async def _admin_stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].stats_snapshot())


async def _admin_get_config(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].config.public())


async def _admin_set_config(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body, problem = _parse_api_body(await request.read())
    if problem or body is None:
        return web.json_response({"status": "error", "message": problem}, status=400)
    try:
        state.config.update(**body)
    except (ValueError, TypeError) as exc:
        return web.json_response({"status": "error", "message": str(exc)}, status=400)
    return web.json_response(state.config.public())


async def _admin_reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE].reset()
    return web.json_response({"status": "ok"})


def _admin_force(outcome: str) -> Handler:
    async def force(request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["id"]
        if not request.app[STATE].force(job_id, outcome):
            return web.json_response({"status": "error", "message": "Request not found"}, status=404)
        return web.json_response({"status": "ok", "id": job_id, "forced": outcome})

    return force


async def _admin_health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def make_app(state: SimState | None = None) -> web.Application:
    """Build the aiohttp application around a ``SimState`` (a fresh default one if not given)."""
    app = web.Application(middlewares=[_middleware])
    app[STATE] = state or SimState()
    app[VIDEO] = sample_video()
    router = app.router
    for version, endpoints in ENDPOINTS.items():
        prefix = PREFIXES[version]
        for endpoint in sorted(endpoints):
            router.add_post(f"{prefix}/{endpoint}", _submit_handler(version, endpoint))
        router.add_post(prefix + "/fetch/{id}", _fetch_handler(version))
    router.add_post("/api/v6/video/batch", _batch_submit)
    router.add_post("/api/v6/video/batch/fetch/{id}", _batch_fetch)
    router.add_get("/_sim/batches", _admin_batches)
    router.add_post("/api/wallet_balance", _wallet)
    router.add_route("GET", "/api/v6/processing/request_count", _request_count)
    router.add_post("/api/v6/processing/request_count", _request_count)
    router.add_get("/files/{name}", _file)
    router.add_get("/proxy/{name}", _file)
    router.add_get("/_sim/health", _admin_health)
    router.add_get("/_sim/requests", _admin_requests)
    router.add_get("/_sim/jobs", _admin_jobs)
    router.add_get("/_sim/stats", _admin_stats)
    router.add_get("/_sim/config", _admin_get_config)
    router.add_post("/_sim/config", _admin_set_config)
    router.add_post("/_sim/reset", _admin_reset)
    router.add_post("/_sim/jobs/{id}/complete", _admin_force("success"))
    router.add_post("/_sim/jobs/{id}/fail", _admin_force("failed"))
    return app


class SimulatorServer:
    """A running simulator on the current event loop (see ``start_simulator``)."""

    def __init__(self, runner: web.AppRunner, state: SimState, host: str, port: int) -> None:
        self.runner = runner
        self.state = state
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop listening and close open connections."""
        await self.runner.cleanup()


async def start_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int | None = None,
    state: SimState | None = None,
    **config: Any,
) -> SimulatorServer:
    """Start the simulator on the running loop; ``config`` takes ``SimConfig`` settings."""
    if state is None:
        cfg = SimConfig()
        cfg.update(**config)
        state = SimState(cfg, seed=seed)
    runner = web.AppRunner(make_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104
    return SimulatorServer(runner, state, shown_host, bound_port)
