"""Status snapshots: what an agent reports, and what the management API shows (§2.4, §3.2)."""

from __future__ import annotations

import enum

from attrs import frozen

from ._issues import AgentIssue

__all__ = [
    "AgentControllerPoolSnapshot",
    "AgentControllerSnapshot",
    "AgentStateApplicationStatus",
    "BufferedRequestsSnapshot",
    "ModelMetadata",
    "SlotAggregatedStatusSnapshot",
]


class AgentStateApplicationStatus(enum.StrEnum):
    """How far an agent got applying the desired state."""

    APPLIED = "Applied"
    ATTEMPTED_AND_NOT_APPLIABLE = "AttemptedAndNotAppliable"
    ATTEMPTED_AND_RETRYING = "AttemptedAndRetrying"
    FRESH = "Fresh"
    STUCK = "Stuck"


@frozen(kw_only=True)
class SlotAggregatedStatusSnapshot:
    """An agent's own status; ``version`` grows on every change so stale ones can be dropped."""

    desired_slots_total: int
    slots_total: int
    slots_processing: int
    download_current: int
    download_total: int
    download_indeterminate: bool
    download_filename: str | None = None
    issues: tuple[AgentIssue, ...]
    model_path: str | None = None
    state_application_status: AgentStateApplicationStatus
    uses_chat_template_override: bool
    version: int
    #: Our extension (``cached_prefixes``): ``paddler.prefixes`` hashes of what the agent's
    #: idle slots hold, for the ``cache_aware`` policy; sent only to a balancer that
    #: announced it, never forwarded by the management API.
    cached_prefixes: tuple[str, ...] | None = None


@frozen(kw_only=True)
class AgentControllerSnapshot:
    """One agent as the balancer sees it; ``slots_processing`` is the balancer's count."""

    id: str
    name: str | None = None
    desired_slots_total: int
    slots_total: int
    slots_processing: int
    download_current: int
    download_total: int
    download_filename: str | None = None
    download_indeterminate: bool
    issues: tuple[AgentIssue, ...]
    model_path: str | None = None
    state_application_status: AgentStateApplicationStatus
    uses_chat_template_override: bool


@frozen
class AgentControllerPoolSnapshot:
    """``GET /api/v1/agents``"""

    agents: tuple[AgentControllerSnapshot, ...]


@frozen
class BufferedRequestsSnapshot:
    """``GET /api/v1/buffered_requests``"""

    buffered_requests_current: int


@frozen
class ModelMetadata:
    """All GGUF metadata of the loaded model, values as strings."""

    metadata: dict[str, str]
