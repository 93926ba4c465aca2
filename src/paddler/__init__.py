"""Paddler for Python: an LLM load balancer and serving platform built on llama.cpp.

The top level names what a program needs to run a cluster: the two main objects and their
configs, the engine, the plugin seams and every error a caller may catch. Each name also lives
in its sub-package (``paddler.X is paddler.<package>.X``), where the rest of that package is:
wire types in ``paddler.wire``, transports in ``paddler.transports``, clients in
``paddler.client``, state stores in ``paddler.balancer``. Names are imported on first use, so
``import paddler`` stays light (llama.cpp loads only when the engine is used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paddler.agent import Agent, AgentConfig
    from paddler.balancer import Balancer, BalancerConfig, BalancerStatistics
    from paddler.engine import LlamaEngine, Scheduler, Slot
    from paddler.errors import (
        AgentGone,
        AgentRpcTimeout,
        BufferFull,
        BufferTimeout,
        ConnectError,
        EmbeddingsNotEnabled,
        GenerationDisabled,
        InferenceItemTimeout,
        InvalidRequest,
        NoAgents,
        PaddlerError,
        ProtocolError,
        ShuttingDown,
        StateNotSet,
        TransportError,
        UnknownAgent,
        UnknownPool,
    )
    from paddler.hookspecs import hookimpl
    from paddler.plugins import get_plugin_manager
    from paddler.policies import AgentCandidate, RequestInfo
    from paddler.transports import AgentTransport
    from paddler.wire import WireError

#: Where each name lives; every module here is public and lists the name in its ``__all__``.
_WHERE = {
    "Agent": "paddler.agent",
    "AgentCandidate": "paddler.policies",
    "AgentConfig": "paddler.agent",
    "AgentGone": "paddler.errors",
    "AgentRpcTimeout": "paddler.errors",
    "AgentTransport": "paddler.transports",
    "Balancer": "paddler.balancer",
    "BalancerConfig": "paddler.balancer",
    "BalancerStatistics": "paddler.balancer",
    "BufferFull": "paddler.errors",
    "BufferTimeout": "paddler.errors",
    "ConnectError": "paddler.errors",
    "EmbeddingsNotEnabled": "paddler.errors",
    "GenerationDisabled": "paddler.errors",
    "InferenceItemTimeout": "paddler.errors",
    "InvalidRequest": "paddler.errors",
    "LlamaEngine": "paddler.engine",
    "NoAgents": "paddler.errors",
    "PaddlerError": "paddler.errors",
    "ProtocolError": "paddler.errors",
    "RequestInfo": "paddler.policies",
    "Scheduler": "paddler.engine",
    "ShuttingDown": "paddler.errors",
    "Slot": "paddler.engine",
    "StateNotSet": "paddler.errors",
    "TransportError": "paddler.errors",
    "UnknownAgent": "paddler.errors",
    "UnknownPool": "paddler.errors",
    "WireError": "paddler.wire",
    "get_plugin_manager": "paddler.plugins",
    "hookimpl": "paddler.hookspecs",
}

__all__ = [
    "Agent",
    "AgentCandidate",
    "AgentConfig",
    "AgentGone",
    "AgentRpcTimeout",
    "AgentTransport",
    "Balancer",
    "BalancerConfig",
    "BalancerStatistics",
    "BufferFull",
    "BufferTimeout",
    "ConnectError",
    "EmbeddingsNotEnabled",
    "GenerationDisabled",
    "InferenceItemTimeout",
    "InvalidRequest",
    "LlamaEngine",
    "NoAgents",
    "PaddlerError",
    "ProtocolError",
    "RequestInfo",
    "Scheduler",
    "ShuttingDown",
    "Slot",
    "StateNotSet",
    "TransportError",
    "UnknownAgent",
    "UnknownPool",
    "WireError",
    "get_plugin_manager",
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(_WHERE[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'paddler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
