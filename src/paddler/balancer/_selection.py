"""What a balancing policy sees: the request and the candidate agents (plain snapshots)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

RequestKind = Literal["generate", "embed"]


@attrs.frozen
class RequestInfo:
    """The request being placed, as a policy may inspect it.

    ``headers`` are the client's HTTP/WebSocket headers (lower-case keys), so a plugin can route
    by session cookie or ``x-session-id``; ``params`` is the wire request itself.
    """

    request_id: str
    kind: RequestKind
    params: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    client_request_id: str | None = None


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
    snapshot: Any = None

    @property
    def slots_free(self) -> int:
        return self.slots_total - self.slots_busy
