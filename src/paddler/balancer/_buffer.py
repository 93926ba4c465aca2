"""RequestBuffer: waiters for a slot, higher priority first, bounded in number.

Order: higher ``RequestInfo.priority`` first, first come first served within a priority, and
aging so that a low priority never starves: a request of priority ``p`` is placed as if it had
arrived ``p * aging`` seconds earlier (``aging`` is ``PRIORITY_AGING_SECONDS``, one second per
level by default). Equivalently, a waiting request gains one level per ``aging`` seconds of
wait. So a request of priority 10 goes ahead of priority-0 requests that arrived up to 10 s
before it, and behind any that have waited longer; with every priority 0 (no API keys) this is
plain FIFO. Since the rank does not change while a request waits, the order is kept sorted at
enqueue and never recomputed.

A policy may serve a later waiter first (``BalancingPolicy.pick_waiter``, for a cache hit);
``Waiter.passed`` counts how often that happened to a waiter, which the dispatch step bounds.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Collection, Iterator

import anyio
import attrs

from paddler.errors import BufferFull
from paddler.policies import RequestInfo

__all__ = ["PRIORITY_AGING_SECONDS", "RequestBuffer", "Waiter"]

#: Seconds of waiting worth one priority level (see the module docstring).
PRIORITY_AGING_SECONDS = 1.0


@attrs.define(eq=False)
class Waiter:
    """A request waiting for a slot; ``agent_id`` is set when the dispatch step assigns one."""

    request: RequestInfo
    event: anyio.Event | None = None
    agent_id: str | None = None
    error: BaseException | None = None
    enqueued_at: float = attrs.field(factory=time.monotonic)
    #: Place in the buffer: (arrival moved earlier by the priority, arrival sequence).
    rank: tuple[float, int] = attrs.field(default=(0.0, 0), init=False)
    #: How many requests behind this one in line were served before it (see ``_dispatch``).
    passed: int = attrs.field(default=0, init=False)

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()


class RequestBuffer:
    """Waiters in serving order (priority with aging, then FIFO); iterating gives that order.

    ``enqueue_nowait`` raises ``BufferFull`` at ``max_buffered``.
    """

    def __init__(self, max_buffered: int, *, aging: float = PRIORITY_AGING_SECONDS) -> None:
        self.max_buffered = max_buffered
        self.aging = aging
        self._waiters: list[Waiter] = []
        self._arrivals = itertools.count()

    def __len__(self) -> int:
        return len(self._waiters)

    def __iter__(self) -> Iterator[Waiter]:
        return iter(list(self._waiters))

    def front(
        self, limit: int, *, skip: Collection[Waiter] = (), stop_at_passed: int | None = None
    ) -> list[Waiter]:
        """The first ``limit`` waiters in serving order, leaving out ``skip``. With
        ``stop_at_passed``, the front ends at (and includes) the first waiter passed that often:
        nobody behind it may be served before it."""
        front: list[Waiter] = []
        for waiter in self._waiters:
            if waiter in skip:
                continue
            front.append(waiter)
            if len(front) >= limit or (
                stop_at_passed is not None and waiter.passed >= stop_at_passed
            ):
                break
        return front

    def rank_of(self, request: RequestInfo, arrived: float) -> float:
        """Where a request arriving at ``arrived`` (``time.monotonic()``) goes in line."""
        return arrived - self.aging * request.priority

    def all_passable(self, max_passes: int) -> bool:
        """Whether every waiter was passed fewer than ``max_passes`` times (so once more is
        within the bound)."""
        return all(waiter.passed < max_passes for waiter in self._waiters)

    def pass_ahead_of(self, rank: float) -> None:
        """Count one pass for every waiter ranked before ``rank`` (a request served first)."""
        for waiter in self._waiters:
            if waiter.rank[0] > rank:
                break
            waiter.passed += 1

    def enqueue_nowait(self, waiter: Waiter) -> Waiter:
        if len(self._waiters) >= self.max_buffered:
            raise BufferFull("Buffered requests overflow")
        waiter.rank = (self.rank_of(waiter.request, waiter.enqueued_at), next(self._arrivals))
        bisect.insort(self._waiters, waiter, key=_rank)
        return waiter

    def remove(self, waiter: Waiter) -> bool:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            return False
        return True

    def drain(self) -> list[Waiter]:
        waiters = list(self._waiters)
        self._waiters.clear()
        return waiters


def _rank(waiter: Waiter) -> tuple[float, int]:
    return waiter.rank
