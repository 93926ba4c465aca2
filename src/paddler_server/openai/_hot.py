"""The OpenAI app's POST routes, answered without Litestar's routing and dependency injection.

Nearly every request to the OpenAI service is a ``POST`` to one of four paths, and for each
Litestar resolves the route, builds a ``Request``, resolves five injected objects and wraps
every send: about a tenth of the balancer's CPU for one chat completion. ``OpenAIApp`` is the
same Litestar app, but it answers a plain POST to those exact paths itself, with the same
answer function Litestar's handler calls. Plain means what Litestar would do nothing else
with: a ``Content-Length`` within the body limit, and no ``Origin`` when CORS is on. Any
other request (other paths and methods, chunked or oversized bodies, CORS, preflight) goes
through Litestar as before, so its 405s, 413s and CORS headers are unchanged.

The API-key guard, the connection limit and the ``Host`` check wrap this app from outside,
so they see every request either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from litestar import Litestar
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

__all__ = ["HotAnswer", "OpenAIApp"]

#: The response to one POST's raw body (what the route's Litestar handler returns).
HotAnswer = Callable[[bytes], ASGIResponse]


class OpenAIApp(Litestar):
    """A ``Litestar`` app that answers plain POSTs to ``hot_routes`` without routing."""

    _hot_routes: Mapping[str, HotAnswer] = {}
    _max_body: int = 0
    _cors: bool = True

    def serve_hot(self, routes: Mapping[str, HotAnswer], *, max_body: int, cors: bool) -> None:
        """Answer plain POSTs to ``routes`` directly; ``cors``: CORS is on for this app."""
        self._hot_routes = dict(routes)
        self._max_body = max_body
        self._cors = cors

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            answer = self._hot_routes.get(scope["path"])
            if answer is not None and self._is_plain(scope):
                await self._answer(answer, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _is_plain(self, scope: Scope) -> bool:
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return False
            elif name == b"origin" and self._cors:
                return False
        return length is not None and 0 <= length <= self._max_body

    @staticmethod
    async def _answer(answer: HotAnswer, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was in: nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        await answer(raw)(scope, receive, send)
