"""RequestBuffer: first-come first-served waiters for a slot, bounded in number."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

import anyio
import attrs

from paddler.errors import BufferFull
from paddler.policies import RequestInfo

__all__ = ["RequestBuffer", "Waiter"]


@attrs.define(eq=False)
class Waiter:
    """A request waiting for a slot; ``agent_id`` is set when the dispatch step assigns one."""

    request: RequestInfo
    event: anyio.Event | None = None
    agent_id: str | None = None
    error: BaseException | None = None
    enqueued_at: float = attrs.field(factory=time.monotonic)

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()


class RequestBuffer:
    """FIFO of waiters. ``enqueue_nowait`` raises ``BufferFull`` at ``max_buffered``."""

    def __init__(self, max_buffered: int) -> None:
        self.max_buffered = max_buffered
        self._waiters: deque[Waiter] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    def __iter__(self) -> Iterator[Waiter]:
        return iter(list(self._waiters))

    def enqueue_nowait(self, waiter: Waiter) -> Waiter:
        if len(self._waiters) >= self.max_buffered:
            raise BufferFull("Buffered requests overflow")
        self._waiters.append(waiter)
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
