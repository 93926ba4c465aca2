"""The dispatch step: hand free slots to buffered waiters, first come first served.

It is synchronous and does no I/O (httpcore's ``_assign_requests_to_connections``): it runs on
every change (request added or gone, agent joined or left, status changed, slot freed), claims
slots, wakes the waiters it served and returns them. The woken tasks do the sending.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from paddler.balancer._buffer import RequestBuffer, Waiter
from paddler.balancer._pool import AgentPool
from paddler.policies import AgentCandidate, RequestInfo

__all__ = ["SelectAgent", "_assign_waiters_to_slots"]

SelectAgent = Callable[[RequestInfo, Sequence[AgentCandidate]], AgentCandidate | None]


def _assign_waiters_to_slots(
    buffer: RequestBuffer, pool: AgentPool, select: SelectAgent
) -> list[Waiter]:
    """Assign as many waiters as there are free slots, in arrival order.

    A waiter for which the policy declines every candidate stays in place and later waiters
    still get their turn (a policy may want a specific agent for a specific request).
    """
    assigned: list[Waiter] = []
    for waiter in buffer:
        candidates = pool.candidates()
        if not candidates:
            break
        chosen = select(waiter.request, candidates)
        if chosen is None or not pool.claim(chosen.id):
            continue
        buffer.remove(waiter)
        waiter.agent_id = chosen.id
        assigned.append(waiter)
        waiter.wake()
    return assigned
