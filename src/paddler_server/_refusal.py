"""Refusing a request or a WebSocket handshake from ASGI middleware, with a reason.

The checks in front of the apps (``Host``, agent join tokens) answer before any app runs, in
Paddler's error shape ``{"error": {"code", "description"}}``, so a client can read why.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["refuse", "scope_header"]


def scope_header(scope: Any, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes) in an ASGI scope."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def refuse(scope: Any, receive: Any, send: Any, status: int, description: str) -> None:
    """Answer ``status`` with Paddler's error body, to a request or a WebSocket handshake.

    A handshake gets a real HTTP answer where the server supports it (uvicorn's
    ``websocket.http.response`` extension), so the client can read why; elsewhere it is
    closed before it is accepted (the server then answers 403).
    """
    body = json.dumps({"error": {"code": status, "description": description}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await receive()  # websocket.connect: the handshake request has arrived
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008, "reason": description[:120]})
