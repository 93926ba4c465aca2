"""The agent: dials a balancer, applies the desired state, serves slots on its engine."""

from paddler.agent._agent import Agent, AgentConfig, AgentState
from paddler.agent._protocol import (
    AgentProtocol,
    DesiredStateReceived,
    DrainAcknowledged,
    ProtocolEvent,
    ProtocolState,
    RequestReceived,
    StopRequested,
)
from paddler.agent._reconciler import EngineLoader, Reconciler
from paddler.agent._sources import (
    DownloadProgress,
    DownloadProgressCallback,
    IssueEvent,
    ModelLoaded,
    ModelLoadFailed,
    ModelSourceError,
    SourceFailed,
    SourceResolved,
    issues_after,
    model_source_label,
    resolve_model,
)
from paddler.agent._status import AgentStatus

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentProtocol",
    "AgentState",
    "AgentStatus",
    "DesiredStateReceived",
    "DownloadProgress",
    "DownloadProgressCallback",
    "DrainAcknowledged",
    "EngineLoader",
    "IssueEvent",
    "ModelLoadFailed",
    "ModelLoaded",
    "ModelSourceError",
    "ProtocolEvent",
    "ProtocolState",
    "Reconciler",
    "RequestReceived",
    "SourceFailed",
    "SourceResolved",
    "StopRequested",
    "issues_after",
    "model_source_label",
    "resolve_model",
]
