"""Assembles the emulator's aiohttp application and runs it on two ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from sfsync.emulator import login
from sfsync.emulator.certs import server_ssl_context
from sfsync.emulator.cometd import CometdEndpoint
from sfsync.emulator.faults import Faults
from sfsync.emulator.org import DEFAULT_USERS, Org
from sfsync.emulator.rest import RestApi
from sfsync.emulator.store import Store
from sfsync.emulator.streaming import CDC_ENTITIES, StreamingHub

logger = logging.getLogger(__name__)


@dataclass
class Settings:
    """Command-line options of `python -m sfsync.emulator`."""

    data_dir: Path
    host: str = "127.0.0.1"
    https_port: int = 8443
    http_port: int = 8080
    ready_file: Path | None = None
    connect_timeout: float = 110.0
    api_limit: int = 5_000_000
    faults: Faults = field(default_factory=Faults)
    cdc_entities: tuple[str, ...] = CDC_ENTITIES
    clock_offset: float = 0.0


def build_app(org: Org, hub: StreamingHub) -> web.Application:
    """The single app served on both the HTTPS and the plain HTTP port."""

    @web.middleware
    async def added_latency(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        # Fault knob; the admin API stays fast so tests can switch it off.
        delay = org.faults.latency_ms
        if delay > 0 and not request.path.startswith("/_emulator/"):
            await asyncio.sleep(delay / 1000)
        return await handler(request)

    app = web.Application(client_max_size=32 * 1024 * 1024, middlewares=[added_latency])
    rest = RestApi(org)
    cometd = CometdEndpoint(org, hub)

    async def soap(request: web.Request) -> web.Response:
        return await login.soap_login(org, request)

    async def oauth(request: web.Request) -> web.Response:
        return await login.oauth_token(org, request)

    async def root(request: web.Request) -> web.Response:
        return await login.root_login(org, request)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(org.stats_snapshot())

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def clock(request: web.Request) -> web.Response:
        # Fault knob: jump the emulator clock, e.g. past event retention.
        body = await request.json()
        org.clock.advance(float(body.get("advance_seconds", 0)))
        return web.json_response({"offset": org.clock.offset})

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(org.faults.as_dict())

    async def set_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be one JSON object")
            org.faults.update(body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(org.faults.as_dict())

    async def revoke_sessions(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        revoked = org.revoke_sessions((body or {}).get("username"))
        return web.json_response({"revoked": revoked})

    async def forget_clients(request: web.Request) -> web.Response:
        return web.json_response({"forgotten": hub.forget_clients()})

    router = app.router
    router.add_post("/", root)
    router.add_post("/services/Soap/u/{version}", soap)
    router.add_post("/services/Soap/u/{version}/{org_id}", soap)
    router.add_post("/services/oauth2/token", oauth)
    router.add_route("*", "/services/data", rest.handle)
    router.add_route("*", "/services/data/{tail:.*}", rest.handle)
    router.add_post("/cometd/{version}", cometd.handle)
    router.add_post("/cometd/{version}/{tail:.*}", cometd.handle)
    router.add_get("/_emulator/stats", stats)
    router.add_get("/_emulator/health", health)
    router.add_post("/_emulator/clock", clock)
    router.add_get("/_emulator/faults", get_faults)
    router.add_post("/_emulator/faults", set_faults)
    router.add_post("/_emulator/sessions/revoke", revoke_sessions)
    router.add_post("/_emulator/cometd/forget", forget_clients)
    return app


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Lets a restarted emulator take its old ports while they sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _write_ready_file(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, path)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT; state is flushed before returning."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ssl_context, ca_file = server_ssl_context(data_dir)
    store = Store(data_dir / "org.sqlite3")
    org = Org(store, api_limit=settings.api_limit, faults=settings.faults)
    org.clock.advance(settings.clock_offset)
    hub = StreamingHub(
        org, settings.connect_timeout, cdc_entities=settings.cdc_entities
    )
    runner = web.AppRunner(build_app(org, hub), access_log=None)
    await runner.setup()
    https_sock = _bind(settings.host, settings.https_port)
    http_sock = _bind(settings.host, settings.http_port)
    await web.SockSite(
        runner, https_sock, ssl_context=ssl_context, shutdown_timeout=1
    ).start()
    await web.SockSite(runner, http_sock, shutdown_timeout=1).start()
    https_url = f"https://{settings.host}:{https_sock.getsockname()[1]}"
    http_url = f"http://{settings.host}:{http_sock.getsockname()[1]}"

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sweeper = asyncio.create_task(hub.sweep_forever())

    users = {
        spec.key: {
            "username": spec.username,
            "password": spec.password,
            "id": spec.user_id,
        }
        for spec in DEFAULT_USERS
    }
    print(f"HTTPS  {https_url}", flush=True)
    print(f"HTTP   {http_url}", flush=True)
    print(f"CA     {ca_file}", flush=True)
    for key, user in users.items():
        print(f"user   {key}: {user['username']} / {user['password']}", flush=True)
    if settings.ready_file is not None:
        info = {
            "https_url": https_url,
            "http_url": http_url,
            "ca_file": str(ca_file),
            "users": users,
        }
        _write_ready_file(settings.ready_file, info)
    logger.info("emulator listening on %s and %s", https_url, http_url)

    await stop.wait()
    logger.info("emulator stopping")
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    hub.close()
    await runner.cleanup()
    org.flush()
    store.close()
