"""Paddler for Python: an LLM load balancer and serving platform built on llama.cpp.

The top level names the main objects; they are imported on first use, so ``import paddler``
stays light (llama.cpp loads only when the engine is used). Wire types live in
``paddler.wire``, transports in ``paddler.transports``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paddler.agent import Agent, AgentConfig
    from paddler.balancer import (
        AgentCandidate,
        Balancer,
        BalancerConfig,
        BalancerStatistics,
        RequestInfo,
    )
    from paddler.engine import LlamaEngine, Slot
    from paddler.engine._scheduler import Scheduler
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
    )
    from paddler.hookspecs import hookimpl
    from paddler.plugins import get_plugin_manager
    from paddler.transports import AgentTransport
    from paddler.wire import WireError

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
    "WireError",
    "get_plugin_manager",
    "hookimpl",
]

_WHERE = {
    "Agent": "paddler.agent",
    "AgentConfig": "paddler.agent",
    "AgentCandidate": "paddler.balancer",
    "Balancer": "paddler.balancer",
    "BalancerConfig": "paddler.balancer",
    "BalancerStatistics": "paddler.balancer",
    "RequestInfo": "paddler.balancer",
    "LlamaEngine": "paddler.engine",
    "Slot": "paddler.engine",
    "Scheduler": "paddler.engine._scheduler",
    "AgentTransport": "paddler.transports",
    "WireError": "paddler.wire",
    "get_plugin_manager": "paddler.plugins",
    "hookimpl": "paddler.hookspecs",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(_WHERE.get(name, "paddler.errors"))
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'paddler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
