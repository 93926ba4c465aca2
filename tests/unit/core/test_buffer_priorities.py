"""The buffer's order: higher priority first, FIFO within a priority, and aging.

Arrival times are given explicitly (``Waiter.enqueued_at``), so aging is tested without a clock.
"""

from __future__ import annotations

from paddler._tenancy import Tenant
from paddler.balancer._buffer import PRIORITY_AGING_SECONDS, RequestBuffer, Waiter
from paddler.policies import RequestInfo


def waiter(name: str, *, at: float, priority: int | None = None) -> Waiter:
    tenant = None if priority is None else Tenant(f"key-{priority}", priority=priority)
    request = RequestInfo(request_id=name, kind="generate", tenant=tenant)
    return Waiter(request, enqueued_at=at)


def order(buffer: RequestBuffer) -> list[str]:
    return [w.request.request_id for w in buffer]


def test_without_priorities_the_buffer_is_fifo() -> None:
    """No tenants (no API keys): served in arrival order, as before priorities existed."""
    buffer = RequestBuffer(10)
    for i in range(5):
        buffer.enqueue_nowait(waiter(f"r{i}", at=100.0))  # even with equal times
    assert order(buffer) == ["r0", "r1", "r2", "r3", "r4"]


def test_higher_priority_first_and_fifo_within_a_priority() -> None:
    """A later high-priority request goes ahead of earlier low ones; equals keep their order."""
    buffer = RequestBuffer(10)
    buffer.enqueue_nowait(waiter("low1", at=100.0, priority=0))
    buffer.enqueue_nowait(waiter("low2", at=100.1, priority=0))
    buffer.enqueue_nowait(waiter("high1", at=100.2, priority=10))
    buffer.enqueue_nowait(waiter("mid", at=100.3, priority=5))
    buffer.enqueue_nowait(waiter("high2", at=100.4, priority=10))
    buffer.enqueue_nowait(waiter("low3", at=100.5))
    assert order(buffer) == ["high1", "high2", "mid", "low1", "low2", "low3"]


def test_aging_a_long_wait_beats_a_higher_priority() -> None:
    """Priority p counts as arriving p * aging seconds earlier: a priority-0 request that has
    waited longer than that is served before a new priority-p one, so it cannot starve."""
    aging = PRIORITY_AGING_SECONDS
    buffer = RequestBuffer(10)
    buffer.enqueue_nowait(waiter("old-low", at=100.0, priority=0))
    buffer.enqueue_nowait(waiter("recent-low", at=100.0 + 8 * aging, priority=0))
    buffer.enqueue_nowait(waiter("high", at=100.0 + 10.5 * aging, priority=10))
    assert order(buffer) == ["old-low", "high", "recent-low"]


def test_aging_rate_is_a_parameter() -> None:
    """With 0.1 s per level, priority 10 only jumps requests that arrived in the last second."""
    buffer = RequestBuffer(10, aging=0.1)
    buffer.enqueue_nowait(waiter("low", at=100.0, priority=0))
    buffer.enqueue_nowait(waiter("high", at=102.0, priority=10))
    assert order(buffer) == ["low", "high"]


def test_remove_and_drain_keep_the_order() -> None:
    """Removing a waiter (cancelled, timed out) leaves the rest in order."""
    buffer = RequestBuffer(10)
    first = buffer.enqueue_nowait(waiter("a", at=1.0, priority=1))
    buffer.enqueue_nowait(waiter("b", at=2.0, priority=3))
    buffer.enqueue_nowait(waiter("c", at=3.0, priority=2))
    assert buffer.remove(first)
    assert not buffer.remove(first)
    assert [w.request.request_id for w in buffer.drain()] == ["b", "c"]
    assert len(buffer) == 0
