"""The agent: dials a balancer, applies the desired state, serves slots on its engine.

What a library user needs: the ``Agent`` and its config and status; the ``Engine`` Protocol,
``EngineSpec`` and ``EngineLoader`` for a custom engine; ``resolve_model`` and its progress
and error types for fetching a model outside an agent. The session protocol, the Reconciler
and the issue rules are internal parts (``paddler.agent._protocol``, ``._reconciler``,
``._sources``).
"""

from paddler.agent._agent import Agent, AgentState
from paddler.agent._config import AgentConfig
from paddler.agent._engine import Engine, EngineLoader, EngineSpec, EngineStream
from paddler.agent._sources import (
    DownloadProgress,
    DownloadProgressCallback,
    ModelSourceError,
    resolve_model,
)
from paddler.agent._status import AgentStatus

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentState",
    "AgentStatus",
    "DownloadProgress",
    "DownloadProgressCallback",
    "Engine",
    "EngineLoader",
    "EngineSpec",
    "EngineStream",
    "ModelSourceError",
    "resolve_model",
]
