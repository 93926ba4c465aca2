"""The pure dispatch step, the pool and the buffer, driven by plain synchronous calls."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest

from paddler.balancer._buffer import RequestBuffer, Waiter
from paddler.balancer._dispatch import _assign_waiters_to_slots
from paddler.balancer._pool import AgentEntry, AgentPool
from paddler.errors import BufferFull
from paddler.policies import AgentCandidate, RequestInfo, least_busy
from paddler.wire import AgentStateApplicationStatus, SlotAggregatedStatusSnapshot


def status(slots: int, version: int = 1) -> SlotAggregatedStatusSnapshot:
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


def pool_of(**slots: int) -> AgentPool:
    pool = AgentPool()
    for agent_id, total in slots.items():
        pool.add(AgentEntry(id=agent_id, name=None, status=status(total)))
    return pool


def select(request: RequestInfo, candidates: Sequence[AgentCandidate]) -> AgentCandidate | None:
    return least_busy(candidates)


def waiters(buffer: RequestBuffer, count: int) -> list[Waiter]:
    return [
        buffer.enqueue_nowait(Waiter(RequestInfo(request_id=f"r{i}", kind="generate")))
        for i in range(count)
    ]


def test_waiters_are_assigned_in_arrival_order() -> None:
    """With one free slot, the oldest waiter gets it."""
    pool, buffer = pool_of(a=1), RequestBuffer(10)
    first, second = waiters(buffer, 2)
    assert _assign_waiters_to_slots(buffer, pool, select) == [first]
    assert (first.agent_id, second.agent_id) == ("a", None)
    assert list(buffer) == [second]


def test_never_over_subscribes_and_spreads_evenly() -> None:
    """Six waiters on 2+2 slots: four assigned, two per agent, two still waiting."""
    pool, buffer = pool_of(a=2, b=2), RequestBuffer(10)
    waiters(buffer, 6)
    assigned = _assign_waiters_to_slots(buffer, pool, select)
    assert sorted(w.agent_id or "" for w in assigned) == ["a", "a", "b", "b"]
    assert len(buffer) == 2
    assert len(pool.candidates()) == 0


def test_agent_with_no_slots_or_draining_is_never_chosen() -> None:
    """slots_total 0 (no model, or draining for a swap) means no candidate."""
    pool, buffer = pool_of(a=0), RequestBuffer(10)
    waiters(buffer, 1)
    assert _assign_waiters_to_slots(buffer, pool, select) == []
    pool.apply_status("a", status(1, version=2))
    assert len(_assign_waiters_to_slots(buffer, pool, select)) == 1


def test_released_slot_goes_to_the_next_waiter() -> None:
    """Releasing a slot and running the step again serves the next waiter."""
    pool, buffer = pool_of(a=1), RequestBuffer(10)
    _first, second = waiters(buffer, 2)
    _assign_waiters_to_slots(buffer, pool, select)
    assert pool.release("a")
    assert _assign_waiters_to_slots(buffer, pool, select) == [second]


def test_a_declined_waiter_keeps_its_place_while_others_proceed() -> None:
    """A policy returning None for one request does not block the rest."""
    pool, buffer = pool_of(a=1), RequestBuffer(10)
    picky, normal = waiters(buffer, 2)

    def choosy(request: RequestInfo, candidates: Sequence[AgentCandidate]) -> AgentCandidate | None:
        return None if request.request_id == "r0" else candidates[0]

    assert _assign_waiters_to_slots(buffer, pool, choosy) == [normal]
    assert list(buffer) == [picky]


def test_buffer_is_bounded() -> None:
    """enqueue_nowait raises BufferFull at max_buffered (0 disables buffering)."""
    with pytest.raises(BufferFull):
        waiters(RequestBuffer(0), 1)
    buffer = RequestBuffer(2)
    waiters(buffer, 2)
    with pytest.raises(BufferFull):
        buffer.enqueue_nowait(Waiter(RequestInfo(request_id="x", kind="generate")))


def test_status_versions_are_ordered_and_busy_count_is_ours() -> None:
    """Older snapshots are dropped; slots_processing from the agent never overwrites ours."""
    pool = pool_of(a=2)
    assert pool.claim("a")
    assert pool.apply_status("a", status(4, version=3))
    assert not pool.apply_status("a", status(1, version=2))
    entry = pool.get("a")
    assert entry is not None and (entry.slots_total, entry.slots_busy) == (4, 1)
    assert not pool.apply_status("a", status(4, version=4)), "no meaningful change"


def test_claim_fails_on_a_full_or_gone_agent() -> None:
    """A claim is refused when the agent has no free slot or left."""
    pool = pool_of(a=1)
    assert pool.claim("a")
    assert not pool.claim("a")
    pool.remove("a")
    assert not pool.claim("a") and not pool.release("a")


def test_least_busy_is_absolute_with_first_on_tie() -> None:
    """Least busy compares absolute busy counts; ties go to the first candidate."""
    a = AgentCandidate(id="a", name=None, slots_total=8, slots_busy=2)
    b = AgentCandidate(id="b", name=None, slots_total=2, slots_busy=1)
    c = AgentCandidate(id="c", name=None, slots_total=2, slots_busy=1)
    assert least_busy([a, b, c]) is b


def test_inherited_requests_hold_slots_until_the_agent_reports_them_ended() -> None:
    """An agent that registers serving 2 of 3 slots has one candidate slot; when its status
    says they ended, the index and the totals follow."""
    pool = AgentPool()
    pool.add(AgentEntry(id="a", name=None, status=status(3), inherited=2))
    assert (pool.slots_total, pool.slots_busy) == (3, 2)
    assert [c.slots_busy for c in pool.candidates()] == [2]
    ended = attrs.evolve(status(3, version=2), slots_processing=0)
    assert pool.apply_status("a", ended)
    assert (pool.slots_total, pool.slots_busy) == (3, 0)
    best = pool.candidates().least_busy()
    assert best is not None and (best.id, best.slots_free) == ("a", 3)


def test_candidates_are_least_busy_first_and_found_by_id() -> None:
    """The view a policy gets: least busy first, lookups by id, no entry for a full agent."""
    pool = pool_of(a=2, b=2, c=1)
    assert pool.claim("a") and pool.claim("c")
    candidates = pool.candidates()
    assert [c.id for c in candidates] == ["b", "a"]
    assert least_busy(candidates) == candidates[0] and candidates[0].id == "b"
    assert candidates.get("c") is None, "c is full"
    found = candidates.get("a")
    assert found is not None and found.slots_busy == 1


def test_ties_go_to_the_agent_registered_first() -> None:
    """On an idle cluster sequential requests keep going to the first agent (its prompt cache
    is warm), however often its slot was claimed and freed."""
    pool = pool_of(a=2, b=2, c=2)
    for _ in range(3):
        best = pool.candidates().least_busy()
        assert best is not None and best.id == "a"
        assert pool.claim("a") and pool.release("a")
    assert pool.claim("a")
    assert [c.id for c in pool.candidates()] == ["b", "c", "a"]
