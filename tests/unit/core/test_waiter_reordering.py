"""Cache reuse while requests wait: a policy's pick for a freed slot, and follow-up holds.

The pure dispatch step is driven by plain calls (and a property test over random picks); the
holds run on a real ``SlotDispatcher`` with the ``cache_aware`` policy chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel
import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from paddler._tenancy import Tenant
from paddler.balancer._buffer import RequestBuffer, Waiter
from paddler.balancer._config import BalancerConfig
from paddler.balancer._dispatch import ReorderBound, _assign_waiters_to_slots
from paddler.balancer._pool import AgentEntry, AgentPool
from paddler.balancer._request_metrics import RequestMetrics
from paddler.balancer._slots import SlotDispatcher, SlotLease
from paddler.cache_aware import CacheAware
from paddler.hookspecs import hookimpl
from paddler.plugins import get_plugin_manager
from paddler.policies import (
    AgentCandidate,
    BalancingPolicy,
    RequestInfo,
    least_busy,
    use_policy,
)
from paddler.prefixes import compact, held_after
from paddler.wire import (
    AgentStateApplicationStatus,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    SlotAggregatedStatusSnapshot,
)

SYSTEM = ConversationMessage(role="system", content="Be brief.")


def turn(conversation: int, index: int = 0) -> RequestInfo:
    """Turn ``index`` of a conversation: its whole history so far, as a chat client sends it."""
    history = [SYSTEM, ConversationMessage(role="user", content=f"Document {conversation}.")]
    for step in range(index):
        history += [
            ConversationMessage(role="assistant", content=f"Reply {step}."),
            ConversationMessage(role="user", content=f"Question {step}?"),
        ]
    params = ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=tuple(history),
        enable_thinking=False,
        max_tokens=8,
    )
    return RequestInfo(request_id=f"c{conversation}t{index}", kind="generate", params=params)


def holding(slots: int, *requests: RequestInfo, version: int = 1) -> SlotAggregatedStatusSnapshot:
    """An agent's status whose idle slots hold these requests, each with its reply."""
    prefixes: list[str] = []
    for request in requests:
        step = int(request.request_id.split("t")[1])
        prefixes += compact(held_after(request.params, f"Reply {step}."))
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
        cached_prefixes=tuple(prefixes) or None,
    )


def select(request: RequestInfo, candidates: Sequence[AgentCandidate]) -> AgentCandidate | None:
    return least_busy(candidates)


def buffered(buffer: RequestBuffer, *requests: RequestInfo) -> list[Waiter]:
    return [buffer.enqueue_nowait(Waiter(request)) for request in requests]


# -- the pick, in the pure step -------------------------------------------------------------


def test_a_freed_slot_goes_to_the_waiter_whose_conversation_it_holds() -> None:
    """Agent a holds conversation 2's first turn: its second turn goes before 0's and 1's."""
    pool = AgentPool()
    pool.add(AgentEntry(id="a", name=None, status=holding(1, turn(2))))
    buffer = RequestBuffer(10)
    first, second, third = buffered(buffer, turn(0, 1), turn(1, 1), turn(2, 1))
    assigned = _assign_waiters_to_slots(buffer, pool, select, CacheAware().pick_waiter)
    assert assigned == [third]
    assert list(buffer) == [first, second]
    assert (first.passed, second.passed) == (1, 1)


def test_least_busy_serves_the_line_in_order_whatever_the_agent_holds() -> None:
    pool = AgentPool()
    pool.add(AgentEntry(id="a", name=None, status=holding(1, turn(2))))
    buffer = RequestBuffer(10)
    first, _, _ = buffered(buffer, turn(0, 1), turn(1, 1), turn(2, 1))
    assert _assign_waiters_to_slots(buffer, pool, select) == [first]


def test_no_cached_prefix_anywhere_keeps_the_order() -> None:
    pool = AgentPool()
    pool.add(AgentEntry(id="a", name=None, status=holding(1, turn(9))))
    buffer = RequestBuffer(10)
    first, _ = buffered(buffer, turn(0, 1), turn(1, 1))
    assert _assign_waiters_to_slots(buffer, pool, select, CacheAware().pick_waiter) == [first]


def test_the_pick_sees_only_the_front_of_the_line() -> None:
    """Conversation 5's next turn is sixth in line, beyond a window of 4: the head goes."""
    pool = AgentPool()
    pool.add(AgentEntry(id="a", name=None, status=holding(1, turn(5))))
    buffer = RequestBuffer(10)
    waiters = buffered(buffer, *(turn(c, 1) for c in range(6)))
    bound = ReorderBound(window=4)
    pick = CacheAware().pick_waiter
    assert _assign_waiters_to_slots(buffer, pool, select, pick, bound) == [waiters[0]]


def test_a_waiter_passed_max_passes_times_is_served_next() -> None:
    """After two passes the head may not be passed again, even by a cache hit."""
    pool = AgentPool()
    pool.add(AgentEntry(id="a", name=None, status=holding(1, turn(1), turn(2), turn(3))))
    buffer = RequestBuffer(10)
    head, *hits = buffered(buffer, turn(0, 1), turn(1, 1), turn(2, 1), turn(3, 1))
    bound, pick = ReorderBound(max_passes=2), CacheAware().pick_waiter
    served = []
    for _ in range(3):
        served += _assign_waiters_to_slots(buffer, pool, select, pick, bound)
        assert served[-1].agent_id is not None
        pool.release(served[-1].agent_id)
    assert served == [hits[0], hits[1], head]
    assert head.passed == 2


@pytest.mark.parametrize("answer", [7, -1, "0", RuntimeError("boom")])
def test_a_broken_pick_serves_the_line_in_order(answer: object) -> None:
    def pick(agent: AgentCandidate, waiters: Sequence[RequestInfo]) -> int | None:
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    pool = AgentPool()
    pool.add(AgentEntry(id="a", name=None, status=holding(1)))
    buffer = RequestBuffer(10)
    first, _ = buffered(buffer, turn(0), turn(1))
    assert _assign_waiters_to_slots(buffer, pool, select, pick) == [first]


# -- property: random picks never lose a waiter nor break the bound ------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.integers(0, 2), st.integers(0, 3)),
        st.tuples(st.just("leave"), st.integers(0, 2), st.just(0)),
        *[st.tuples(st.just("request"), st.just(0), st.integers(0, 3))] * 3,  # b: priority
        *[st.tuples(st.just("finish"), st.integers(0, 50), st.just(0))] * 3,
    ),
    max_size=100,
)


@settings(max_examples=300, deadline=None)
@example([("join", 0, 1), *[("request", 0, 0)] * 5, *[("finish", 0, 0)] * 5], [1], 3, 1)
@given(
    operations,
    st.lists(st.integers(0, 4), min_size=1, max_size=20),
    st.integers(1, 5),
    st.integers(0, 4),
)
def test_picks_stay_within_the_bound_and_serve_every_waiter_once(
    ops: list[tuple[str, int, int]], picks: list[int], window: int, max_passes: int
) -> None:
    """Whatever the pick answers: each waiter is served once, from the first ``window`` of
    the line, and is passed (someone behind it served first) at most ``max_passes`` times."""
    bound = ReorderBound(window=window, max_passes=max_passes)
    answers = iter(picks * 100)

    def pick(agent: AgentCandidate, waiters: Sequence[RequestInfo]) -> int | None:
        index = next(answers, 0)
        return index if index < len(waiters) else None

    pool, buffer = AgentPool(), RequestBuffer(max_buffered=1000, aging=1.0)
    running: list[Waiter] = []
    served: set[str] = set()
    enqueued: set[str] = set()
    passes: dict[str, int] = {}
    for version, (op, a, b) in enumerate(ops, start=1):
        agent_id = f"a{a}"
        if op == "join" and agent_id not in pool:
            pool.add(AgentEntry(id=agent_id, name=None, status=holding(b, version=version)))
        elif op == "leave":
            pool.remove(agent_id)
            running = [w for w in running if w.agent_id != agent_id]
        elif op == "request":
            tenant = Tenant("t", priority=b)
            request = RequestInfo(request_id=str(len(enqueued)), kind="generate", tenant=tenant)
            buffer.enqueue_nowait(Waiter(request, enqueued_at=float(version)))
            enqueued.add(request.request_id)
            passes[request.request_id] = 0
        elif op == "finish" and running:
            finished = running.pop(a % len(running))
            assert finished.agent_id is not None
            pool.release(finished.agent_id)
        before = list(buffer)
        assigned = _assign_waiters_to_slots(buffer, pool, select, pick, bound)
        for waiter in assigned:
            line = [w for w in before if w not in assigned or w is waiter]
            position = line.index(waiter)
            assert position < window
            for earlier in line[:position]:  # still waiting, and passed by this one
                passes[earlier.request.request_id] += 1
            before.remove(waiter)
            assert waiter.request.request_id not in served, "served twice"
            served.add(waiter.request.request_id)
        running.extend(assigned)
        assert all(count <= max_passes for count in passes.values())
        assert {w.request.request_id: w.passed for w in buffer} == {
            w.request.request_id: passes[w.request.request_id] for w in buffer
        }
        if len(buffer):
            assert all(entry.slots_free <= 0 for entry in pool)
    assert served | {w.request.request_id for w in buffer} == enqueued, "a waiter was lost"


# -- follow-up holds, on a real dispatcher ------------------------------------------------


def dispatcher() -> SlotDispatcher:
    plugin_manager = get_plugin_manager(entry_points=False)
    use_policy(plugin_manager, "cache_aware")
    config = BalancerConfig(buffered_request_timeout=30.0)
    return SlotDispatcher(config, plugin_manager, RequestMetrics(), generation_enabled=lambda: True)


async def acquired(lease: SlotLease, done: anyio.Event) -> None:
    await lease.acquire()
    done.set()


@pytest.mark.anyio
async def test_a_finished_turn_keeps_its_slot_for_the_next_turn() -> None:
    """One slot, a waiter from another conversation: the next turn goes first, the waiter
    once that turn's slot is free (its own hold expires with nobody continuing it)."""
    slots = dispatcher()
    async with anyio.create_task_group() as tg:
        slots.start(tg)
        slots.pool.add(AgentEntry(id="a", name=None, status=holding(1)))
        first = slots.lease(turn(0))
        await first.acquire()
        other, other_done = slots.lease(turn(1)), anyio.Event()
        tg.start_soon(acquired, other, other_done)
        with anyio.fail_after(5):
            while not len(slots.buffer):
                await slots.buffer_changed.wait_beyond(slots.buffer_changed.version)
        (waiter,) = slots.buffer
        first.release()
        assert len(slots.holds.holds) == 1 and not other_done.is_set()
        follow_up = slots.lease(turn(0, 1))
        assert (await follow_up.acquire()).id == "a"
        assert not other_done.is_set() and waiter.passed == 1
        follow_up.release()  # kept again for turn 2, which never comes
        with anyio.fail_after(5):
            await other_done.wait()
        assert other.entry is not None and other.entry.id == "a"
        assert not slots.holds.holds
        other.release()
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_no_slot_is_kept_when_nobody_waits_or_a_waiter_was_passed_enough() -> None:
    slots = dispatcher()
    async with anyio.create_task_group() as tg:
        slots.start(tg)
        slots.pool.add(AgentEntry(id="a", name=None, status=holding(1)))
        lone = slots.lease(turn(0))
        await lone.acquire()
        lone.release()  # nobody waits: the slot is free at once
        assert not slots.holds.holds and slots.pool.slots_busy == 0
        first = slots.lease(turn(1))
        await first.acquire()
        other, other_done = slots.lease(turn(2)), anyio.Event()
        tg.start_soon(acquired, other, other_done)
        with anyio.fail_after(5):
            while not len(slots.buffer):
                await slots.buffer_changed.wait_beyond(slots.buffer_changed.version)
        (waiter,) = slots.buffer
        waiter.passed = slots.holds.bound.max_passes
        first.release()  # the waiter may not be passed again: it gets the slot at once
        with anyio.fail_after(5):
            await other_done.wait()
        assert not slots.holds.holds
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_an_agent_that_leaves_drops_the_slots_kept_there() -> None:
    slots = dispatcher()
    async with anyio.create_task_group() as tg:
        slots.start(tg)
        slots.pool.add(AgentEntry(id="a", name=None, status=holding(1)))
        first = slots.lease(turn(0))
        await first.acquire()
        other, other_done = slots.lease(turn(1)), anyio.Event()
        tg.start_soon(acquired, other, other_done)
        with anyio.fail_after(5):
            while not len(slots.buffer):
                await slots.buffer_changed.wait_beyond(slots.buffer_changed.version)
        first.release()
        assert slots.holds.holds
        slots.pool.remove("a")
        slots.pool.add(AgentEntry(id="a", name=None, status=holding(1, version=2)))
        slots.pool_changed()  # the rejoined agent's slot goes to the waiter
        with anyio.fail_after(5):
            await other_done.wait()
        policy = CacheAware().policy()
        assert slots.holds.take(turn(0, 1), policy.follow_up) is None  # nothing stale is kept
        assert not slots.holds.holds
        assert slots.pool.slots_busy == 1 and other.entry is not None
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_retry_never_takes_a_slot_kept_on_the_agent_it_excludes() -> None:
    """A request that failed on agent a and is retried elsewhere continues the request that
    released a's slot (it is the same prompt), but a kept slot there is not for it."""
    slots = dispatcher()
    async with anyio.create_task_group() as tg:
        slots.start(tg)
        slots.pool.add(AgentEntry(id="a", name=None, status=holding(1)))
        failed = slots.lease(turn(0))
        await failed.acquire()
        other = slots.lease(turn(1))
        tg.start_soon(acquired, other, anyio.Event())
        with anyio.fail_after(5):
            while not len(slots.buffer):
                await slots.buffer_changed.wait_beyond(slots.buffer_changed.version)
        failed.release()
        assert slots.holds.holds
        retry = attrs.evolve(turn(0), excluded_agents=frozenset({"a"}))
        follow_up = CacheAware().policy().follow_up
        assert slots.holds.take(retry, follow_up) is None
        assert slots.holds.take(turn(0, 1), follow_up) is not None  # the next turn may
        tg.cancel_scope.cancel()


# -- property: a real dispatcher with holds never loses, duplicates or overbooks -----------


class _FastFollowUps:
    """``cache_aware`` with a follow-up wait short enough for many examples."""

    @hookimpl
    def paddler_balancing_policies(self) -> Sequence[BalancingPolicy]:
        return (attrs.evolve(CacheAware(follow_up_seconds=0.005).policy(), name="fast"),)


async def _run_holds(ops: list[tuple[str, int]]) -> None:
    plugin_manager = get_plugin_manager(entry_points=False)
    plugin_manager.register(_FastFollowUps())
    use_policy(plugin_manager, "fast")
    config = BalancerConfig(buffered_request_timeout=30.0)
    slots = SlotDispatcher(
        config, plugin_manager, RequestMetrics(), generation_enabled=lambda: True
    )
    granted: list[SlotLease] = []
    grants: dict[str, int] = {}
    asked: list[RequestInfo] = []
    turns: dict[int, int] = {}  # conversation -> its last turn that finished
    pending = 0

    async def ask(request: RequestInfo) -> None:
        nonlocal pending
        lease = slots.lease(request)
        await lease.acquire()
        grants[request.request_id] = grants.get(request.request_id, 0) + 1
        granted.append(lease)
        pending -= 1

    def start(request: RequestInfo) -> None:
        nonlocal pending
        pending += 1
        asked.append(request)
        tg.start_soon(ask, request)

    async def settle() -> None:
        """Until every asking task has its slot or waits in the buffer."""
        with anyio.fail_after(5):
            while pending != len(slots.buffer):
                await anyio.lowlevel.checkpoint()

    def check() -> None:
        holds = len(slots.holds.holds)
        assert slots.pool.slots_busy == len(granted) + holds
        assert all(entry.slots_busy <= entry.slots_total for entry in slots.pool)
        assert all(count == 1 for count in grants.values()), "granted twice"
        assert all(w.passed <= slots.holds.bound.max_passes for w in slots.buffer)

    async with anyio.create_task_group() as tg:
        slots.start(tg)
        slots.pool.add(AgentEntry(id="a", name=None, status=holding(2)))
        slots.pool.add(AgentEntry(id="b", name=None, status=holding(1)))
        for op, n in ops:
            if op == "new":
                conversation = len(turns)
                turns[conversation] = -1
                start(turn(conversation))
            elif op == "finish" and granted:
                lease = granted.pop(n % len(granted))
                conversation, index = (int(x) for x in lease.request.request_id[1:].split("t"))
                turns[conversation] = index
                lease.release()
                if n % 3:  # most conversations go on at once: the next turn
                    start(turn(conversation, index + 1))
            await settle()
            check()
        with anyio.fail_after(10):  # finish everything; kept slots expire
            while pending or granted or slots.holds.holds:
                while granted:
                    granted.pop().release()
                await anyio.sleep(0.001)
                await settle()
                check()
        assert slots.pool.slots_busy == 0 and not len(slots.buffer)
        assert sorted(grants) == sorted(r.request_id for r in asked), "a request was lost"
        tg.cancel_scope.cancel()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["new", "new", "finish", "finish", "finish"]), st.integers(0, 30)
        ),
        max_size=40,
    ),
    st.sampled_from(["asyncio", "trio"]),
)
def test_kept_slots_never_lose_duplicate_or_overbook_a_request(
    ops: list[tuple[str, int]], backend: str
) -> None:
    anyio.run(_run_holds, ops, backend=backend)
