"""The dispatch step: hand free slots to buffered waiters, in line order unless a policy picks.

It is synchronous and does no I/O (httpcore's ``_assign_requests_to_connections``): it runs on
every change (request added or gone, agent joined or left, status changed, slot freed), claims
slots, wakes the waiters it served and returns them. The woken tasks do the sending.

The line is the buffer's order (priority with aging, then arrival). Without a pick (least busy)
it is served strictly in that order. A policy's ``pick_waiter`` (cache aware: the waiter whose
prompt the free agent holds) may serve a later waiter first, within ``ReorderBound``:

* it chooses among the first ``window`` waiters only, and
* a waiter is *passed* (someone behind it served first) at most ``max_passes`` times; the
  line the pick sees ends at the first waiter passed that often, so nobody behind it goes
  first. Every waiter is therefore served after at most ``max_passes`` requests that ranked
  behind it, whatever the policy does.

A waiter for which the policy declines every candidate stays in place and later waiters still
get their turn (a policy may want a specific agent for a specific request); such a decline is
the policy's own choice and is not counted as a pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import attrs

from paddler.balancer._buffer import RequestBuffer, Waiter
from paddler.balancer._pool import AgentPool
from paddler.policies import AgentCandidate, PickWaiter, RequestInfo

__all__ = ["DEFAULT_REORDER_BOUND", "ReorderBound", "SelectAgent", "_assign_waiters_to_slots"]

logger = logging.getLogger("paddler.balancer")

SelectAgent = Callable[[RequestInfo, Sequence[AgentCandidate]], AgentCandidate | None]


@attrs.frozen
class ReorderBound:
    """How far a policy may reorder the line (``pick_waiter``, ``follow_up``)."""

    #: The pick chooses among this many waiters at the front of the line.
    window: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    #: A waiter is passed at most this many times (0: never, the line stays in order).
    max_passes: int = attrs.field(default=16, validator=attrs.validators.ge(0))


DEFAULT_REORDER_BOUND = ReorderBound()


def _assign_waiters_to_slots(
    buffer: RequestBuffer,
    pool: AgentPool,
    select: SelectAgent,
    pick: PickWaiter | None = None,
    bound: ReorderBound = DEFAULT_REORDER_BOUND,
) -> list[Waiter]:
    """Assign as many waiters as there are free slots: for the least busy free agent, the
    waiter ``pick`` chooses within ``bound`` (else the first in line), placed by ``select``."""
    assigned: list[Waiter] = []
    declined: set[Waiter] = set()
    window = bound.window if pick is not None and bound.max_passes > 0 else 1
    while True:
        candidates = pool.candidates()
        if not candidates:
            break
        front = buffer.front(window, skip=declined, stop_at_passed=bound.max_passes)
        if not front:
            break
        index = _picked(pick, candidates[0], front) if len(front) > 1 else 0
        waiter = front[index]
        chosen = select(waiter.request, candidates)
        if chosen is None or not pool.claim(chosen.id):
            declined.add(waiter)
            continue
        for earlier in front[:index]:
            earlier.passed += 1
        buffer.remove(waiter)
        waiter.agent_id = chosen.id
        assigned.append(waiter)
        waiter.wake()
    return assigned


def _picked(pick: PickWaiter | None, agent: AgentCandidate, front: list[Waiter]) -> int:
    """The pick's index into ``front``; 0 (the first in line) without one, or when it fails."""
    if pick is None:
        return 0
    try:
        index = pick(agent, [waiter.request for waiter in front])
    except Exception:
        logger.exception("pick_waiter failed; serving the line in order")
        return 0
    if index is None:
        return 0
    if not isinstance(index, int) or not 0 <= index < len(front):
        logger.warning("pick_waiter returned %r, not an index of the %d waiters", index, len(front))
        return 0
    return index
