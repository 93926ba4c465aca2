"""Change notification: a version counter and an event, so subscribers never miss a change.

Shared by the balancer and the agent (neither package imports the other for it).
"""

from __future__ import annotations

import anyio

__all__ = ["Changes"]


class Changes:
    """``notify()`` bumps the version; ``wait_beyond(v)`` returns once the version is past v.

    Events are created lazily because anyio needs a running backend to make one. A ``parent``
    is notified of every change too (one ``Changes`` that covers several).
    """

    def __init__(self, parent: Changes | None = None) -> None:
        self.version = 0
        self.closed = False
        self.parent = parent
        self._event: anyio.Event | None = None

    def notify(self) -> None:
        self.version += 1
        if self._event is not None:
            self._event.set()
            self._event = None
        if self.parent is not None:
            self.parent.notify()

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.notify()

    async def wait_beyond(self, version: int) -> int:
        while self.version <= version and not self.closed:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        return self.version
