"""How an agent reaches a balancer: ``ws://``/``wss://``, ``inproc://``, or a mock."""

from paddler.transports._base import AgentSocket, AgentSocketAttribute, AgentTransport
from paddler.transports._inproc import InProcTransport, register_inproc, unregister_inproc
from paddler.transports._mock import MockConnection, MockTransport
from paddler.transports._websocket import TextFrameStream, WebSocketTransport, agent_socket_url

__all__ = [
    "AgentSocket",
    "AgentSocketAttribute",
    "AgentTransport",
    "InProcTransport",
    "MockConnection",
    "MockTransport",
    "TextFrameStream",
    "WebSocketTransport",
    "agent_socket_url",
    "register_inproc",
    "unregister_inproc",
]
