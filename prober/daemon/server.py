"""HTTP endpoints of the daemon: /metrics, /healthz, /probe, /-/reload and the status page.

/probe takes a configured target's *name*, never a URL, host or address: only configured
targets can be probed through the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST

from prober.daemon.core import Daemon
from prober.daemon.statuspage import status_page
from prober.daemon.tasks import TaskInputError, TaskRequest
from prober.daemon.webconfig import BasicAuth, WebConfig, server_ssl_context
from prober.errors import one_line
from prober.kinds.base import utc_now

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DAEMON = web.AppKey("daemon", Daemon)
log = logging.getLogger("cdnprobe")


def make_app(daemon: Daemon, auth: BasicAuth | None = None) -> web.Application:
    app = web.Application(middlewares=[_require(auth)] if auth else [])
    app[DAEMON] = daemon
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/probe", _probe)
    app.router.add_post("/-/reload", _reload)
    app.router.add_post("/api/v1/targets/{name}/checks", _create_task)
    app.router.add_get("/api/v1/checks/{id}", _get_task)
    app.router.add_get("/api/v1/checks/{id}/wait", _wait_task)
    app.router.add_get("/", _status)
    return app


def _require(auth: BasicAuth) -> Middleware:
    @web.middleware
    async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        # bcrypt is slow by design: check it off the event loop, scrapes keep flowing.
        if await asyncio.to_thread(auth.allows, request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(
            status=401,
            text="Unauthorized\n",
            headers={"WWW-Authenticate": 'Basic realm="cdnprobe"'},
        )

    return basic_auth


async def _metrics(request: web.Request) -> web.StreamResponse:
    """The cached exposition, gzip-encoded when the scraper accepts it (Prometheus does),
    written part by part: at a million series one copy of the whole body would cost more
    than the rest of the scrape."""
    daemon = request.app[DAEMON]
    response = web.StreamResponse(
        headers={"Content-Type": CONTENT_TYPE_LATEST, "Vary": "Accept-Encoding"}
    )
    gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    if gzip:
        response.headers["Content-Encoding"] = "gzip"
    response.content_length, parts = daemon.exposition_body(gzip)
    await response.prepare(request)
    if request.method != "HEAD":  # a StreamResponse writes what it is given, even for HEAD
        for part in parts:
            await response.write(part)
    await response.write_eof()
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _probe(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    name = request.query.get("target", "")
    runner = daemon.runners.get(name)
    if runner is None:
        return web.Response(status=404, text="unknown target: only configured targets are probed\n")
    snapshot = await runner.cycle_now()
    body = Daemon.exposition_of([snapshot])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _one_line(status: int, text: str) -> web.Response:
    return web.json_response({"error": one_line(text)[:300]}, status=status)


async def _create_task(request: web.Request) -> web.Response:
    """Only configured targets: an unknown name is a 404 and fetches nothing."""
    daemon = request.app[DAEMON]
    name = request.match_info["name"]
    if name not in daemon.runners:
        return _one_line(404, f"unknown target {name!r}: only configured targets are checked")
    raw = await request.content.read(65537)
    if len(raw) > 65536:
        return _one_line(400, "body over 64 KiB")
    try:
        body = json.loads(raw) if raw.strip() else None
        task = daemon.tasks.create(name, TaskRequest.parse(body))
    except (ValueError, TaskInputError) as exc:  # json's errors are ValueErrors
        return _one_line(400, f"bad task body: {exc}")
    if task is None:
        return _one_line(404, f"unknown target {name!r}")
    return web.json_response({"id": task.id, "target": name, "state": task.state}, status=202)


async def _get_task(request: web.Request) -> web.Response:
    task = request.app[DAEMON].tasks.get(request.match_info["id"])
    if task is None:
        return _one_line(404, "unknown or expired task")
    return web.json_response(task.document())


async def _wait_task(request: web.Request) -> web.Response:
    task = request.app[DAEMON].tasks.get(request.match_info["id"])
    if task is None:
        return _one_line(404, "unknown or expired task")
    text = request.query.get("timeout", "30")
    try:
        timeout = float(text)
    except ValueError:
        return _one_line(400, f"timeout: expected seconds, got {text[:40]!r}")
    if not 0 <= timeout <= 300:
        return _one_line(400, "timeout: must be between 0 and 300 seconds")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(task.done.wait(), timeout)
    return web.json_response(task.document())


async def _reload(request: web.Request) -> web.Response:
    error = await request.app[DAEMON].reload()
    if error is not None:
        return web.Response(status=500, text=f"reload failed, old config kept: {error}\n")
    return web.Response(text="reloaded\n")


async def _status(request: web.Request) -> web.Response:
    page = status_page(request.app[DAEMON].snapshots(), utc_now())
    return web.Response(text=page, content_type="text/html")


def settle_collector() -> None:
    """Before the daemon starts. Everything allocated so far (modules, config) lives as long
    as the process: keep it out of the collector's full passes, which otherwise walk it again
    every few cycles. And collect the young generation every 10 000 allocations, not 700: a
    cycle makes and drops a few records per probe, all of them acyclic (refcounting frees
    them), and at 700 the collector ran 3-4 full passes over every live record each cycle
    (10% of the CPU at 100k probes; 0.3 passes and 2-3% at 10 000, bench/README.md)."""
    gc.collect()  # garbage first: frozen objects are never collected
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def split_listen(listen: str) -> tuple[str | None, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    return (host or None), int(port)


async def serve(
    daemon: Daemon,
    listen: str,
    *,
    on_listening: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    grace_s: float = 3.0,
    web_config: WebConfig | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`); SIGHUP reloads. OSError if the port is busy."""
    users = web_config.basic_auth_users if web_config else {}
    app = make_app(daemon, BasicAuth(users) if users else None)
    app_runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await app_runner.setup()
    host, port = split_listen(listen)
    context = server_ssl_context(web_config) if web_config else None
    site = web.TCPSite(app_runner, host, port, reuse_address=True, ssl_context=context)
    try:
        await site.start()
    except OSError:
        await app_runner.cleanup()
        raise
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[str | None]] = set()
    settle_collector()

    def on_hup() -> None:
        task = loop.create_task(daemon.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    daemon.start()
    if on_listening is not None:
        on_listening(_bound_address(app_runner, listen))
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("stopping: draining running cycles (up to %.0fs)", grace_s)
        await daemon.stop(grace_s)
        await asyncio.gather(*reloads, return_exceptions=True)
        await app_runner.cleanup()


def _bound_address(app_runner: web.AppRunner, listen: str) -> str:
    for address in app_runner.addresses:
        if isinstance(address, tuple):
            host, port = address[0], address[1]
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return listen
