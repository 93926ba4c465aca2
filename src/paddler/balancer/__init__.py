"""The balancer: agents in, requests out (``Balancer``), its records, streams and state stores.

The parts inside (the agent pool, the request buffer, the dispatch step, agent connections,
slot leases) live in private modules; policies see ``paddler.policies.RequestInfo`` and
``paddler.policies.AgentCandidate``.
"""

from paddler._tenancy import Tenant, current_tenant, serving_tenant
from paddler.balancer._balancer import PADDLER_PROTOCOL_VERSION, Balancer, BalancerState
from paddler.balancer._config import BalancerConfig, BalancerStatistics
from paddler.balancer._desired_state import to_agent_desired_state, validate_desired_state
from paddler.balancer._embeddings import EmbeddingStream
from paddler.balancer._model_pool import PoolSnapshot
from paddler.balancer._outcomes import failure_status, outcome_of
from paddler.balancer._request_metrics import BalancerMetricsLike
from paddler.balancer._state_store import (
    FileStateStore,
    MemoryStateStore,
    StateStore,
    StateStoreError,
    open_state_store,
)
from paddler.balancer._stream import InferenceStream, StreamState

__all__ = [
    "PADDLER_PROTOCOL_VERSION",
    "Balancer",
    "BalancerConfig",
    "BalancerMetricsLike",
    "BalancerState",
    "BalancerStatistics",
    "EmbeddingStream",
    "FileStateStore",
    "InferenceStream",
    "MemoryStateStore",
    "PoolSnapshot",
    "StateStore",
    "StateStoreError",
    "StreamState",
    "Tenant",
    "current_tenant",
    "failure_status",
    "open_state_store",
    "outcome_of",
    "serving_tenant",
    "to_agent_desired_state",
    "validate_desired_state",
]
