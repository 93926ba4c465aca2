"""The balancer's resource limits (one ``--max-...`` flag each) and the connection limit.

A load balancer is shared: one client must not be able to take memory, sockets or event-loop
time from the others. Every limit here is enforced with an answer that says which limit was
hit: 413 for a body, close code 1009 for a frame, 503 (HTTP) or close code 1013 (WebSocket)
for connections, an ``Error`` envelope 429 for in-flight requests and 400 for request ids and
nesting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import attrs
import click
from litestar.di import NamedDependency

from paddler.wire._json import DEFAULT_MAX_JSON_DEPTH

__all__ = ["ConnectionLimit", "LimitsDep", "ServerLimits", "limit_options"]

logger = logging.getLogger("paddler_server.limits")

MIB = 1024 * 1024
#: WebSocket close code "try again later" (RFC 6455 registry).
TRY_AGAIN_LATER = 1013


@attrs.frozen(kw_only=True)
class ServerLimits:
    """Limits of one balancer's services; the defaults are the flags' defaults (docs/cli.md).

    :param max_connections: open HTTP requests plus WebSockets, per service.
    :param max_body_bytes: an inference (and OpenAI) request body.
    :param max_frame_bytes: one WebSocket message (inference socket and agent sockets).
    :param max_in_flight_per_socket: requests running at once on one inference WebSocket.
    :param max_json_depth: nesting of arrays and objects in any JSON document read.
    :param max_request_id_length: characters of a client's request id (echoed in every frame).
    """

    max_connections: int = 1024
    max_body_bytes: int = 16 * MIB
    max_frame_bytes: int = 16 * MIB
    max_in_flight_per_socket: int = 64
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    max_request_id_length: int = 256


#: Injected into handlers by name (ours, not request data: Litestar does not validate it).
LimitsDep = NamedDependency[ServerLimits]


class ConnectionLimit:
    """ASGI wrapper: at most ``limit`` HTTP requests and WebSockets open at once in ``app``.

    One more HTTP request gets 503 with a JSON body naming the limit (and ``Retry-After``);
    one more WebSocket is accepted and closed at once with 1013 and the same reason, so the
    client sees why. What is already open is not touched.
    """

    def __init__(self, app: Any, limit: int, *, service: str, flag: str = "--max-connections"):
        self.app = app
        self.limit = limit
        self.service = service
        self.flag = flag
        self.open = 0
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the wrapped Litestar app's attributes stay reachable

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.open >= self.limit:
            self.refused += 1
            logger.warning(
                "connection refused service=%s open=%d limit=%d",
                self.service,
                self.open,
                self.limit,
            )
            await self._refuse(kind, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1

    @property
    def description(self) -> str:
        return (
            f"Too many open connections to the {self.service} service "
            f"(limit {self.limit}, {self.flag}); retry later"
        )

    async def _refuse(self, kind: str, receive: Any, send: Any) -> None:
        if kind == "websocket":
            message = await receive()
            if message.get("type") != "websocket.connect":
                return
            await send({"type": "websocket.accept"})
            # A close reason is at most 123 bytes.
            reason = f"Too many connections (limit {self.limit}, {self.flag})"[:123]
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": reason})
            return
        body = json.dumps({"error": {"code": 503, "description": self.description}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


_HELP = {
    "max_connections": "Open HTTP requests plus WebSockets per service (inference, management, "
    "OpenAI); one more gets 503 (HTTP) or close code 1013 (WebSocket).",
    "max_body_bytes": "Largest inference or OpenAI request body, in bytes (images travel "
    "inside it as data URIs); a bigger one gets 413.",
    "max_frame_bytes": "Largest WebSocket message, in bytes (inference and agent sockets); a "
    "bigger one closes that socket with code 1009.",
    "max_in_flight_per_socket": "Requests running at once on one inference WebSocket; one more "
    "gets an Error envelope 429.",
    "max_json_depth": "Deepest nesting of arrays and objects in a JSON document read from a "
    "client (HTTP body or WebSocket message); deeper gets 400.",
    "max_request_id_length": "Longest request id on the inference WebSocket, in characters "
    "(it is echoed in every token frame); a longer one gets an Error envelope 400.",
}


def limit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One ``--max-...`` option per ``ServerLimits`` field, defaults from the class."""
    for attribute in reversed(attrs.fields(ServerLimits)):
        command = click.option(
            f"--{attribute.name.replace('_', '-')}",
            attribute.name,
            type=click.IntRange(min=1),
            default=attribute.default,
            show_default=True,
            help=_HELP[attribute.name],
        )(command)
    return command
