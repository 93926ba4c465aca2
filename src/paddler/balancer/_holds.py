"""FollowUpHolds: a finished request's slot, kept briefly for the request that continues it.

With more busy conversations than slots, a slot that finishes a turn would go to the first
waiter at once, whose own cache was overwritten long ago, and the finished conversation's next
turn (a few milliseconds later) would queue behind it: no turn would ever find its cache. A
policy with a ``FollowUp`` (cache aware) has the slot kept instead, still claimed, for up to
``follow_up.seconds``; the request that ``continues`` the finished one takes it at once, and
otherwise the slot goes to the line when the time is up.

The bound is the dispatch step's (``ReorderBound.max_passes``): a slot is kept only while no
waiter has been passed that often, and the request that takes it counts as passing every
waiter ranked before it. Waiters lose at most ``seconds`` to a slot kept for nobody.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import attrs

from paddler.balancer._buffer import RequestBuffer
from paddler.balancer._dispatch import DEFAULT_REORDER_BOUND, ReorderBound
from paddler.balancer._pool import AgentEntry, AgentPool
from paddler.policies import FollowUp, RequestInfo

__all__ = ["FollowUpHolds", "Hold"]

logger = logging.getLogger("paddler.balancer")

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], bool]


@attrs.define(eq=False)
class Hold:
    """One kept slot on ``entry``'s agent, for the request that continues ``previous``."""

    entry: AgentEntry
    previous: RequestInfo
    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)


class FollowUpHolds:
    """The kept slots of one dispatcher. ``keep`` at a release, ``take`` at a new request."""

    def __init__(
        self,
        pool: AgentPool,
        buffer: RequestBuffer,
        *,
        spawn: Spawn,
        release: Callable[[str], None],
        bound: ReorderBound = DEFAULT_REORDER_BOUND,
    ) -> None:
        self._pool = pool
        self._buffer = buffer
        self._spawn = spawn
        self._release = release
        self.bound = bound
        self.holds: list[Hold] = []

    def keep(self, agent_id: str, request: RequestInfo, follow_up: FollowUp | None) -> bool:
        """Keep the slot ``request`` just finished on ``agent_id`` (True: it stays claimed).

        Only while others wait (else the slot is free for the next turn anyway), the agent is
        not shrinking, no waiter was passed ``max_passes`` times, and the next turn is not
        already waiting (then the dispatch step's pick finds it).
        """
        if follow_up is None or follow_up.seconds <= 0 or request.kind != "generate":
            return False
        entry = self._pool.get(agent_id)
        if entry is None or entry.slots_busy > entry.slots_total or not len(self._buffer):
            return False
        if not self._buffer.all_passable(self.bound.max_passes):
            return False
        front = self._buffer.front(self.bound.window)
        if any(_continues(follow_up, request, waiter.request) for waiter in front):
            return False
        hold = Hold(entry, request)
        if not self._spawn(functools.partial(self._expire, hold, follow_up.seconds)):
            return False
        self.holds.append(hold)
        return True

    def take(self, request: RequestInfo, follow_up: FollowUp | None) -> AgentEntry | None:
        """The kept slot that ``request`` continues, now its own (already claimed), or None."""
        if follow_up is None or not self.holds:
            return None
        for hold in list(self.holds):
            if self._pool.get(hold.entry.id) is not hold.entry:  # the agent left meanwhile
                self._end(hold)
                continue
            if not _allowed(hold.entry, request) or not _continues(
                follow_up, hold.previous, request
            ):
                continue
            self._end(hold)
            if not self._buffer.all_passable(self.bound.max_passes):
                self._release(hold.entry.id)  # the line goes first now
                return None
            self._buffer.pass_ahead_of(self._buffer.rank_of(request, time.monotonic()))
            return hold.entry
        return None

    def _end(self, hold: Hold) -> None:
        self.holds.remove(hold)
        hold.scope.cancel()

    async def _expire(self, hold: Hold, seconds: float) -> None:
        with hold.scope:
            await anyio.sleep(seconds)
        if hold in self.holds:
            self.holds.remove(hold)
            if self._pool.get(hold.entry.id) is hold.entry:
                self._release(hold.entry.id)


def _allowed(entry: AgentEntry, request: RequestInfo) -> bool:
    """A retried or resumed request never goes back to an agent it excludes (see
    ``SlotDispatcher.select``), nor to one lacking an extension it needs."""
    return (
        entry.id not in request.excluded_agents and request.required_extensions <= entry.extensions
    )


def _continues(follow_up: FollowUp, previous: RequestInfo, request: RequestInfo) -> bool:
    try:
        return follow_up.continues(previous, request)
    except Exception:
        logger.exception("follow_up.continues failed; not a follow-up")
        return False
