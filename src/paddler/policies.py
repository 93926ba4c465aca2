"""Balancing policies: what a policy sees, and the built-in least-busy policy (spec §4.1).

A policy is a ``paddler_select_agent(request, candidates)`` hook (see ``paddler.hookspecs``).
``RequestInfo`` is the request being placed, ``AgentCandidate`` one agent with a free slot. The
built-in policy is this module, registered as a plugin with ``trylast=True`` so that any
installed policy runs first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import attrs

from paddler._tenancy import Tenant
from paddler.hookspecs import hookimpl
from paddler.wire import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
    SlotAggregatedStatusSnapshot,
)

__all__ = [
    "AgentCandidate",
    "RequestInfo",
    "RequestKind",
    "RequestParams",
    "least_busy",
    "paddler_select_agent",
]

RequestKind = Literal["generate", "embed"]

RequestParams = (
    ContinueFromConversationHistoryParams
    | ContinueFromRawPromptParams
    | GenerateEmbeddingBatchParams
)
"""What a client asks the balancer to place: a generation or an embedding batch (one chunk)."""


@attrs.frozen
class RequestInfo:
    """The request being placed, as a policy may inspect it.

    ``headers`` are the client's HTTP/WebSocket headers (lower-case keys), so a plugin can route
    by session cookie or ``x-session-id``; ``params`` is the wire request itself.
    """

    request_id: str
    kind: RequestKind
    params: RequestParams | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    client_request_id: str | None = None
    #: Who sent it (an API key's name and priority); None when the service has no keys.
    tenant: Tenant | None = None

    @property
    def priority(self) -> int:
        """The tenant's priority (0 without one): higher leaves the buffer first."""
        return 0 if self.tenant is None else self.tenant.priority


@attrs.frozen
class AgentCandidate:
    """An agent that could take the request right now (it has a free slot).

    ``slots_busy`` is the balancer's own count of requests it dispatched there, not what the
    agent reports. ``snapshot`` is the agent's last reported status.
    """

    id: str
    name: str | None
    slots_total: int
    slots_busy: int
    snapshot: SlotAggregatedStatusSnapshot | None = None

    @property
    def slots_free(self) -> int:
        return self.slots_total - self.slots_busy


def least_busy(candidates: Sequence[AgentCandidate]) -> AgentCandidate | None:
    """The candidate with the fewest busy slots; ties go to the first one (pool order)."""
    best: AgentCandidate | None = None
    for candidate in candidates:
        if candidate.slots_free <= 0:
            continue
        if best is None or candidate.slots_busy < best.slots_busy:
            best = candidate
    return best


@hookimpl(trylast=True)
def paddler_select_agent(
    request: RequestInfo, candidates: Sequence[AgentCandidate]
) -> AgentCandidate | None:
    return least_busy(candidates)
