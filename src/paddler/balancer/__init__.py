"""The balancer: agents, slot accounting, the request buffer, dispatch and desired state."""

from paddler.balancer._balancer import PADDLER_PROTOCOL_VERSION, Balancer, BalancerState
from paddler.balancer._buffer import RequestBuffer, Waiter
from paddler.balancer._config import BalancerConfig, BalancerStatistics
from paddler.balancer._desired_state import to_agent_desired_state, validate_desired_state
from paddler.balancer._embeddings import EmbeddingStream, split_documents
from paddler.balancer._outcomes import failure_status, outcome_of
from paddler.balancer._pool import AgentEntry, AgentPool
from paddler.balancer._state_store import (
    FileStateStore,
    MemoryStateStore,
    StateStore,
    StateStoreError,
    open_state_store,
)
from paddler.balancer._stream import InferenceStream
from paddler.policies import AgentCandidate, RequestInfo

__all__ = [
    "PADDLER_PROTOCOL_VERSION",
    "AgentCandidate",
    "AgentEntry",
    "AgentPool",
    "Balancer",
    "BalancerConfig",
    "BalancerState",
    "BalancerStatistics",
    "EmbeddingStream",
    "FileStateStore",
    "InferenceStream",
    "MemoryStateStore",
    "RequestBuffer",
    "RequestInfo",
    "StateStore",
    "StateStoreError",
    "Waiter",
    "failure_status",
    "open_state_store",
    "outcome_of",
    "split_documents",
    "to_agent_desired_state",
    "validate_desired_state",
]
