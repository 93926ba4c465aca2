"""How an agent reaches a balancer: ``ws://``/``wss://``, ``inproc://``, or a mock."""

from paddler.transports._base import AgentSocket, AgentTransport
from paddler.transports._inproc import InProcTransport, register_inproc, unregister_inproc
from paddler.transports._mock import MockConnection, MockTransport

__all__ = [
    "AgentSocket",
    "AgentTransport",
    "InProcTransport",
    "MockConnection",
    "MockTransport",
    "register_inproc",
    "unregister_inproc",
]
