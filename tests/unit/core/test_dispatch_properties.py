"""Property test: any sequence of joins, leaves, claims and releases keeps the books straight."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from paddler.balancer._buffer import RequestBuffer, Waiter
from paddler.balancer._dispatch import _assign_waiters_to_slots
from paddler.balancer._pool import AgentEntry, AgentPool
from paddler.policies import AgentCandidate, RequestInfo, least_busy
from paddler.wire import AgentStateApplicationStatus, SlotAggregatedStatusSnapshot


def status(slots: int, version: int) -> SlotAggregatedStatusSnapshot:
    return SlotAggregatedStatusSnapshot(
        desired_slots_total=slots,
        slots_total=slots,
        slots_processing=0,
        download_current=0,
        download_total=0,
        download_indeterminate=False,
        issues=(),
        state_application_status=AgentStateApplicationStatus.APPLIED,
        uses_chat_template_override=False,
        version=version,
    )


def select(request: RequestInfo, candidates: Sequence[AgentCandidate]) -> AgentCandidate | None:
    return least_busy(candidates)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("leave"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("resize"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("request"), st.just(0), st.just(0)),
        st.tuples(st.just("finish"), st.integers(0, 50), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_dispatch_never_over_subscribes_and_stays_fifo(ops: list[tuple[str, int, int]]) -> None:
    pool, buffer = AgentPool(), RequestBuffer(max_buffered=1000)
    running: list[Waiter] = []
    served_order: list[int] = []
    counter = 0
    for version, (op, a, b) in enumerate(ops, start=1):
        agent_id = f"a{a}"
        if op == "join" and agent_id not in pool:
            pool.add(AgentEntry(id=agent_id, name=None, status=status(b, version)))
        elif op == "leave":
            pool.remove(agent_id)
            running = [w for w in running if w.agent_id != agent_id]
        elif op == "resize" and agent_id in pool:
            pool.apply_status(agent_id, status(b, version))
        elif op == "request":
            buffer.enqueue_nowait(Waiter(RequestInfo(request_id=str(counter), kind="generate")))
            counter += 1
        elif op == "finish" and running:
            waiter = running.pop(a % len(running))
            assert waiter.agent_id is not None
            pool.release(waiter.agent_id)
        assigned = _assign_waiters_to_slots(buffer, pool, select)
        running.extend(assigned)
        served_order.extend(int(w.request.request_id) for w in assigned)
        for entry in pool:
            assert entry.slots_busy >= 0
            busy_here = sum(1 for w in running if w.agent_id == entry.id)
            assert entry.slots_busy == busy_here
            # shrinking (draining) may leave in-flight requests above the new total, but
            # nothing new was dispatched to a full agent:
            assert all(
                w.agent_id != entry.id or entry.slots_total > 0 or busy_here for w in assigned
            )
        if len(buffer):
            assert all(entry.slots_free <= 0 for entry in pool)
        check_index(pool)
    assert served_order == sorted(served_order)


def check_index(pool: AgentPool) -> None:
    """The running totals and the free-slot index agree with a scan of every agent."""
    entries = list(pool)
    assert pool.slots_total == sum(e.slots_total for e in entries)
    assert pool.slots_busy == sum(e.slots_busy for e in entries)
    candidates = pool.candidates()
    free = {e.id for e in entries if e.slots_free > 0}
    assert {c.id for c in candidates} == free and len(candidates) == len(free)
    registered = {e.id: index for index, e in enumerate(entries)}
    order = [(c.slots_busy, registered[c.id]) for c in candidates]
    assert order == sorted(order), "least busy first, ties in registration order"
    busy = [c.slots_busy for c in candidates]
    best = candidates.least_busy()
    if free:
        assert best is not None and best.slots_busy == min(busy) and best == candidates[0]
        assert all(candidates.get(agent_id) is not None for agent_id in free)
    else:
        assert best is None
    assert candidates.get("nobody") is None
