"""Balancing policies: what a policy sees, and the built-in least-busy policy (spec §4.1).

A policy is a ``paddler_select_agent(request, candidates)`` hook (see ``paddler.hookspecs``).
``RequestInfo`` is the request being placed, ``AgentCandidate`` one agent with a free slot,
``Candidates`` the view of them all that the balancer passes (least busy first). The
built-in policy is this module, registered as a plugin with ``trylast=True`` so that any
installed policy runs first.
"""

from __future__ import annotations

import abc
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
    "Candidates",
    "RequestInfo",
    "RequestKind",
    "RequestParams",
    "candidate_by_id",
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


class Candidates(Sequence[AgentCandidate]):
    """The candidates the balancer passes to a policy: a read-only view, least busy first.

    It is a ``Sequence`` (a policy may iterate it, index it, take ``len``) kept by the
    balancer's pool as slots are claimed and freed, so building it costs nothing however many
    agents there are. Iterating it does cost one step per agent; ``least_busy()`` and
    ``get(agent_id)`` do not. Agents with the same busy count come in the order they reached
    it (the one that has been at that count longest first). Valid only during the hook call.
    """

    @abc.abstractmethod
    def least_busy(self) -> AgentCandidate | None:
        """The first candidate: fewest busy slots (absolute count)."""

    @abc.abstractmethod
    def get(self, agent_id: str) -> AgentCandidate | None:
        """The candidate with this id, if that agent has a free slot."""


def least_busy(candidates: Sequence[AgentCandidate]) -> AgentCandidate | None:
    """The candidate with the fewest busy slots; ties go to the first one.

    On the balancer's ``Candidates`` this takes one step; on a plain sequence it scans.
    """
    if isinstance(candidates, Candidates):
        return candidates.least_busy()
    best: AgentCandidate | None = None
    for candidate in candidates:
        if candidate.slots_free <= 0:
            continue
        if best is None or candidate.slots_busy < best.slots_busy:
            best = candidate
    return best


def candidate_by_id(
    candidates: Sequence[AgentCandidate], agent_id: str | None
) -> AgentCandidate | None:
    """The candidate for ``agent_id`` (one step on ``Candidates``; a scan otherwise)."""
    if agent_id is None:
        return None
    if isinstance(candidates, Candidates):
        return candidates.get(agent_id)
    return next((c for c in candidates if c.id == agent_id), None)


@hookimpl(trylast=True)
def paddler_select_agent(
    request: RequestInfo, candidates: Sequence[AgentCandidate]
) -> AgentCandidate | None:
    return least_busy(candidates)
