"""ASGI wrapper: ``Paddler-Stream-Recovery: off`` on an HTTP request opts its generations out
of stream recovery (``docs/failover.md``), for apps whose handlers do not hand the balancer
their headers (the OpenAI service). The native API passes its headers and needs no wrapper."""

from __future__ import annotations

from typing import Any

from paddler.balancer._recovery import OPT_OUT_HEADER, http_request_header

__all__ = ["RecoveryOptOut"]

_HEADER = OPT_OUT_HEADER.encode("latin-1")


class RecoveryOptOut:
    """Runs ``app`` with the request's opt-out header where the balancer reads it (a bad
    value is then the OpenAI layer's 400, after the key and host checks)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the wrapped app's attributes stay reachable

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            for name, value in scope.get("headers", ()):
                if name == _HEADER:
                    with http_request_header(value.decode("latin-1")):
                        await self.app(scope, receive, send)
                    return
        await self.app(scope, receive, send)
