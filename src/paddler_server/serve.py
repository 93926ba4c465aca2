"""Run several ASGI apps, one uvicorn ``Server`` per address, in one anyio task group.

uvicorn can host many ``Server`` instances on one event loop as long as none of them
installs signal handlers: the caller (the CLI) owns SIGINT/SIGTERM and asks for a graceful
stop by setting the ``shutdown`` event. Apps are served with lifespan off, because the
objects they expose (the ``Balancer``) are owned by the caller, not by the apps.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections.abc import Generator, Sequence
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus

from paddler_server._tls import TlsFiles

__all__ = ["BoundAddress", "serve_apps"]

logger = logging.getLogger("paddler_server.serve")

#: Paddler's WebSocket limit: 50 MiB per frame and per reassembled message.
WEBSOCKET_MAX_SIZE = 50 * 1024 * 1024
#: The server pings every 3 s (spec §2.2 and §3.1).
WEBSOCKET_PING_INTERVAL = 3.0

BoundAddress = tuple[str, int]
AppAddress = tuple[Any, str, int]


#: Kernel send buffer of every client connection (accepted sockets inherit the listener's).
#: Without a bound, Linux lets one grow to 4 MiB, so a client that stops reading would take
#: tens of thousands of tokens to notice; with it, the write deadline starts within ~200 KB.
CLIENT_SEND_BUFFER = 64 * 1024


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever runs it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        for listener in getattr(self, "servers", []):
            for sock in listener.sockets:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SEND_BUFFER)


def _config(
    app: Any,
    host: str,
    port: int,
    grace_period: float,
    ws_max_size: int,
    tls: TlsFiles | None = None,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        ws_max_size=ws_max_size,
        ws_ping_interval=WEBSOCKET_PING_INTERVAL,
        ws_ping_timeout=WEBSOCKET_PING_INTERVAL * 3,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=max(1, math.ceil(grace_period)),
        server_header=False,
        ssl_certfile=None if tls is None else str(tls.cert),
        ssl_keyfile=None if tls is None else str(tls.key),
    )


def _bound_address(server: uvicorn.Server, host: str, port: int) -> BoundAddress:
    for listener in getattr(server, "servers", []):
        for sock in listener.sockets:
            name = sock.getsockname()
            return (host, int(name[1]))
    return (host, port)


async def serve_apps(
    apps: Sequence[AppAddress],
    *,
    shutdown: anyio.Event | None = None,
    grace_period: float = 3.0,
    ws_max_size: int = WEBSOCKET_MAX_SIZE,
    tls: TlsFiles | None = None,
    task_status: TaskStatus[list[BoundAddress]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve each ``(app, host, port)`` until ``shutdown`` is set or the task is cancelled.

    ``ws_max_size`` bounds one WebSocket message (bigger ones close the socket with 1009).
    ``tls`` serves every app over TLS with that certificate (``--tls-cert``/``--tls-key``).

    Reports the bound addresses (port 0 resolved to the real port) through ``task_status``
    once every server listens. A server that cannot bind (address in use) raises
    ``OSError`` naming the address, and the others are stopped.
    """
    servers = [
        _Server(_config(app, host, port, grace_period, ws_max_size, tls))
        for app, host, port in apps
    ]
    failure: list[BaseException] = []

    async def run_one(server: _Server) -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits when a bind fails
            failure.append(OSError(f"cannot listen on {server.config.host}:{server.config.port}"))
            raise failure[-1] from exc

    async with anyio.create_task_group() as tg:
        for server in servers:
            tg.start_soon(run_one, server)
        try:
            while not all(server.started for server in servers):
                if failure:
                    raise failure[0]
                await anyio.sleep(0.01)
            bound = [
                _bound_address(server, host, port)
                for server, (_, host, port) in zip(servers, apps, strict=True)
            ]
            for host, port in bound:
                logger.info("listening address=%s:%d", host, port)
            task_status.started(bound)
            if shutdown is None:
                await anyio.sleep_forever()
            else:
                await shutdown.wait()
        finally:
            # Graceful: each server stops accepting, lets open responses finish for up to
            # the grace period, then returns; the task group waits for all of them.
            for server in servers:
                server.should_exit = True
