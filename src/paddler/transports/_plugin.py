"""The built-in transports, registered as a default plugin (``trylast``)."""

from __future__ import annotations

from paddler.hookspecs import hookimpl
from paddler.transports._base import AgentTransport

__all__ = ["paddler_transport_for_url"]


@hookimpl(trylast=True)
def paddler_transport_for_url(url: str) -> AgentTransport | None:
    if url.startswith("inproc://"):
        from paddler.transports._inproc import InProcTransport

        return InProcTransport()
    if url.startswith(("ws://", "wss://")):
        from paddler.transports._websocket import WebSocketTransport

        transport: AgentTransport = WebSocketTransport()
        return transport
    return None
