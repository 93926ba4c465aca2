"""Slots: the pool, the buffer and the policy behind one object, handing out ``SlotLease``s.

``SlotDispatcher.lease(request)`` gives a request its lease; ``await lease.acquire()`` claims a
slot (at once when one is free and nobody waits, else in the buffer until the dispatch step
assigns one) and ``lease.release()`` gives it back, exactly once. The dispatch step itself
(``_dispatch.py``) stays a pure function of the pool, the buffer and the policy.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import anyio
import anyio.abc
import attrs
import pluggy

from paddler._changes import Changes
from paddler.balancer._buffer import RequestBuffer, Waiter
from paddler.balancer._config import BalancerConfig
from paddler.balancer._dispatch import _assign_waiters_to_slots
from paddler.balancer._holds import FollowUpHolds
from paddler.balancer._pool import AgentEntry, AgentPool
from paddler.balancer._request_metrics import RequestMetrics
from paddler.errors import AgentGone, BufferTimeout, GenerationDisabled, ShuttingDown
from paddler.policies import AgentCandidate, RequestInfo, RequestKind, chosen_policy, least_busy
from paddler.wire import DEFAULT_POOL

__all__ = ["LeaseState", "SlotDispatcher", "SlotLease"]

logger = logging.getLogger("paddler.balancer")


class LeaseState(enum.Enum):
    #: Made for a request that has no slot yet.
    PENDING = 1
    #: Holds one slot on ``lease.entry``'s agent.
    GRANTED = 2
    #: Given back (or never granted and done with).
    RELEASED = 3


class SlotLease:
    """One request's claim on one slot. ``release()`` frees it exactly once, whoever calls it.

    While its request's block runs the lease is *open* (``open()`` ... ``close()``), which is
    what ``requests_active`` counts.
    """

    def __init__(self, dispatcher: SlotDispatcher, request: RequestInfo) -> None:
        self._dispatcher = dispatcher
        self.request = request
        self.state = LeaseState.PENDING
        self.entry: AgentEntry | None = None

    def __repr__(self) -> str:
        agent = self.entry.id if self.entry is not None else None
        return f"<SlotLease [{self.request.request_id} {self.state.name} agent={agent}]>"

    def open(self) -> None:
        """Raise the refusal (``ShuttingDown``, ``GenerationDisabled``) if there is one now."""
        self._dispatcher.check_accepting(self.request.kind)
        self._dispatcher.active.add(self)
        self._dispatcher.requests_changed.notify()

    def close(self) -> None:
        if self in self._dispatcher.active:
            self._dispatcher.active.discard(self)
            self._dispatcher.requests_changed.notify()

    async def acquire(self) -> AgentEntry:
        """Claim a slot (``BufferFull``, ``BufferTimeout``, ``ShuttingDown``, ``AgentGone``)."""
        if self.state is not LeaseState.PENDING:
            raise RuntimeError(f"a lease is acquired once (this one is {self.state.name})")
        entry = await self._dispatcher.acquire(self.request)
        self.entry = entry
        self.state = LeaseState.GRANTED
        return entry

    def release(self) -> bool:
        """Give the slot back; True only the first time a granted lease is released."""
        entry, state = self.entry, self.state
        self.state = LeaseState.RELEASED
        if state is not LeaseState.GRANTED or entry is None:
            return False
        self._dispatcher.release(entry.id, self.request)
        return True

    def can_be_served(self, request: RequestInfo) -> bool:
        """Whether an agent of this pool could take ``request`` (free now or not)."""
        return self._dispatcher.can_be_served(request)

    def renew(self, request: RequestInfo) -> SlotLease:
        """A fresh lease for ``request`` (the same request, re-dispatched: a retry or a resumed
        stream) from the same dispatcher, so in the same pool; this one is released, and the
        open block now counts the new one."""
        self.release()
        renewed = self._dispatcher.lease(request)
        if self in self._dispatcher.active:
            self._dispatcher.active.discard(self)
            self._dispatcher.active.add(renewed)
        return renewed

    def release_after(self, cleanup: Callable[[], Awaitable[None]]) -> bool:
        """Keep the slot until ``cleanup()`` ends (in the balancer's task group), then release.

        When the balancer is closing there is no task group left: the slot is released now,
        ``cleanup`` does not run, and the result is False.
        """
        if self.state is LeaseState.GRANTED and self._dispatcher.spawn(
            functools.partial(self._cleanup_then_release, cleanup)
        ):
            return True
        self.release()
        return False

    async def _cleanup_then_release(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        try:
            await cleanup()
        finally:
            self.release()


class SlotDispatcher:
    """Places requests on agents' slots: the pool's accounting, the buffer, the policy."""

    def __init__(
        self,
        config: BalancerConfig,
        plugin_manager: pluggy.PluginManager,
        metrics: RequestMetrics,
        *,
        generation_enabled: Callable[[], bool],
        parent: Changes | None = None,
        name: str = DEFAULT_POOL,
    ) -> None:
        #: The model pool whose agents these are (each pool has its own dispatcher).
        self.name = name
        self.config = config
        self.plugin_manager = plugin_manager
        self.metrics = metrics
        self.pool = AgentPool()
        self.buffer = RequestBuffer(config.max_buffered_requests)
        self.agents_changed = Changes(parent)
        self.buffer_changed = Changes(parent)
        #: Notified when a request's block opens or closes (``requests_active``).
        self.requests_changed = Changes(parent)
        self.active: set[SlotLease] = set()
        self._generation_enabled = generation_enabled
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closing = False
        self.holds = FollowUpHolds(self.pool, self.buffer, spawn=self.spawn, release=self.release)

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group

    def close(self) -> None:
        """Refuse new requests, answer every buffered one and end every route with SHUTDOWN."""
        self._closing = True
        for waiter in self.buffer.drain():
            waiter.error = ShuttingDown("balancer is shutting down")
            waiter.wake()
        for entry in self.pool:
            if entry.connection is not None:
                entry.connection.shut_down()
        self.agents_changed.close()
        self.buffer_changed.close()
        self.requests_changed.close()

    @property
    def closing(self) -> bool:
        return self._closing

    def lease(self, request: RequestInfo) -> SlotLease:
        if request.pool != self.name:
            request = attrs.evolve(request, pool=self.name)
        return SlotLease(self, request)

    def check_accepting(self, kind: RequestKind) -> None:
        """Raise what a new request of ``kind`` is refused with now, if anything."""
        if self._closing or self._task_group is None:
            raise ShuttingDown("balancer is shutting down")
        if kind == "generate" and not self._generation_enabled():
            raise GenerationDisabled(
                "Token generation is disabled while the cluster is configured for embeddings"
            )

    def spawn(self, function: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``function()`` in the balancer's task group; False when it is closing."""
        if self._task_group is None or self._closing:
            return False
        self._task_group.start_soon(function)
        return True

    # -- the dispatch step ---------------------------------------------------------------

    def pool_changed(self) -> None:
        """Run the dispatch step after any change to the agents, then tell subscribers."""
        if self._assign():
            self.buffer_changed.notify()
        self.agents_changed.notify()

    def _assign(self) -> list[Waiter]:
        policy = chosen_policy(self.plugin_manager)
        pick = policy.pick_waiter if policy is not None else None
        return _assign_waiters_to_slots(self.buffer, self.pool, self.select, pick, self.holds.bound)

    def select(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> AgentCandidate | None:
        """Ask the policy plugins; a failing policy falls back to least busy.

        A retried request's excluded agents (and agents lacking an extension it needs) are
        taken out of the candidates first, so no policy can send it back there.
        """
        if request.excluded_agents or request.required_extensions:
            candidates = self._allowed(request, candidates)
            if not candidates:
                return None
        try:
            chosen = self.plugin_manager.hook.paddler_select_agent(
                request=request, candidates=candidates
            )
        except Exception:
            logger.exception("paddler_select_agent failed; using least busy")
            chosen = least_busy(candidates)
        if chosen is not None and not isinstance(chosen, AgentCandidate):
            logger.warning("policy chose %r, which is not a candidate", chosen)
            return None
        return chosen

    async def acquire(self, request: RequestInfo) -> AgentEntry:
        """A claimed slot on some agent: at once if free and nobody waits, else buffered."""
        if self._closing:
            raise ShuttingDown("balancer is shutting down")
        started = time.monotonic()
        policy = chosen_policy(self.plugin_manager)
        held = self.holds.take(request, policy.follow_up if policy is not None else None)
        if held is not None:  # the slot its previous turn just finished, kept for it
            self._observe_wait(started, request)
            return held
        if not len(self.buffer):
            candidates = self.pool.candidates()
            if candidates:
                chosen = self.select(request, candidates)
                if chosen is not None and self.pool.claim(chosen.id):
                    self.agents_changed.notify()
                    self._observe_wait(started, request)
                    return self._entry(chosen.id)
        waiter = self.buffer.enqueue_nowait(Waiter(request, event=anyio.Event()))
        self.buffer_changed.notify()
        # A slot may be free that the policy declined for earlier waiters but takes for us.
        if self._assign():
            self.buffer_changed.notify()
            self.agents_changed.notify()
        assert waiter.event is not None
        try:
            with anyio.fail_after(self.config.buffered_request_timeout):
                await waiter.event.wait()
        except BaseException as exc:
            if waiter.agent_id is None:
                if self.buffer.remove(waiter):
                    self.buffer_changed.notify()
            else:
                self.release(waiter.agent_id)
            if isinstance(exc, TimeoutError) and waiter.error is None:
                self._observe_wait(started, request)  # a wait that ended by timeout is a wait too
                raise BufferTimeout("Waiting for available slot timed out") from None
            raise
        if waiter.error is not None:
            raise waiter.error
        assert waiter.agent_id is not None
        self._observe_wait(started, request)
        return self._entry(waiter.agent_id)

    def can_be_served(self, request: RequestInfo) -> bool:
        """Some connected agent with slots is allowed for ``request`` (busy or not)."""
        return any(
            entry.slots_total > 0
            and entry.connection is not None
            and not entry.connection.closed
            and entry.id not in request.excluded_agents
            and request.required_extensions <= entry.extensions
            for entry in self.pool
        )

    def _allowed(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> list[AgentCandidate]:
        allowed = []
        for candidate in candidates:
            if candidate.id in request.excluded_agents:
                continue
            entry = self.pool.get(candidate.id)
            if entry is None or not request.required_extensions <= entry.extensions:
                continue
            allowed.append(candidate)
        return allowed

    def release(self, agent_id: str, request: RequestInfo | None = None) -> None:
        """Free one slot, unless the policy keeps it for ``request``'s next turn (``holds``)."""
        policy = chosen_policy(self.plugin_manager) if request is not None else None
        if policy and request and self.holds.keep(agent_id, request, policy.follow_up):
            return
        if self.pool.release(agent_id):
            self.pool_changed()

    def _entry(self, agent_id: str) -> AgentEntry:
        entry = self.pool.get(agent_id)
        if entry is None:
            raise AgentGone("Agent controller connection closed")
        return entry

    def _observe_wait(self, started: float, request: RequestInfo) -> None:
        self.metrics.observe_buffer_wait(time.monotonic() - started, request.tenant)
