"""Built-in balancing policy: least busy by the balancer's own absolute count (spec §4.1)."""

from __future__ import annotations

from collections.abc import Sequence

from paddler.balancer._selection import AgentCandidate, RequestInfo
from paddler.hookspecs import hookimpl

__all__ = ["least_busy", "paddler_select_agent"]


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
