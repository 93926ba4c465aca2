"""Balancer: agents in, requests out; owns the slots, the cluster state and a task group.

The parts it is made of, each in its own module: one ``ModelPool`` per model pool (its
``SlotDispatcher``: agents, buffer, policy, leases; its ``ClusterState``: desired state and
adoption), held in a ``PoolRegistry``; ``AgentSessions`` (every agent's socket and RPCs) with
one ``AgentConnection`` per agent (its outbox and routes), and ``InferenceStream`` /
``EmbeddingStream`` (one request each).
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import attrs
import pluggy

from paddler._changes import Changes
from paddler._tenancy import current_tenant
from paddler.balancer._agent_sessions import PADDLER_PROTOCOL_VERSION, AgentSessions
from paddler.balancer._buffer import RequestBuffer
from paddler.balancer._config import BalancerConfig, BalancerStatistics
from paddler.balancer._connection import AgentStream
from paddler.balancer._embeddings import EmbeddingStream
from paddler.balancer._model_pool import ModelPool, PoolRegistry, PoolSnapshot
from paddler.balancer._pool import AgentPool
from paddler.balancer._request_metrics import BalancerMetricsLike
from paddler.balancer._stream import InferenceStream, new_request_info
from paddler.errors import ShuttingDown
from paddler.wire import (
    DEFAULT_POOL,
    POLICY_REPORT_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    AgentControllerPoolSnapshot,
    AgentDesiredState,
    BalancerDesiredState,
    BufferedRequestsSnapshot,
    ChatTemplate,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
    ModelMetadata,
    SamplingOverrides,
    validate_pool_name,
)

if TYPE_CHECKING:
    from paddler.balancer._state_store import StateStore

__all__ = [
    "PADDLER_PROTOCOL_VERSION",
    "Balancer",
    "BalancerMetricsLike",
    "BalancerState",
    "PoolSnapshot",
]

logger = logging.getLogger("paddler.balancer")


class BalancerState(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


class Balancer:
    """``async with Balancer(BalancerConfig()) as balancer:`` -- see docs/dev/contracts.md."""

    def __init__(
        self,
        config: BalancerConfig | None = None,
        *,
        state_store: StateStore | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        metrics: BalancerMetricsLike | None = None,
    ) -> None:
        if plugin_manager is None:
            from paddler.plugins import get_plugin_manager

            plugin_manager = get_plugin_manager()
        self.config = config or BalancerConfig()
        self.plugin_manager = plugin_manager
        self.metrics = metrics
        #: Bumped on every change to agents, slots, the buffer, open requests, desired state
        #: or the set of pools, in any pool.
        self._changed = Changes()
        #: Bumped on every change to any pool's agents, and to any pool's buffer.
        self._agents_changed = Changes(self._changed)
        self._buffer_changed = Changes(self._changed)
        self._state_store = state_store
        self._task_group: anyio.abc.TaskGroup | None = None
        #: Set once the stored pools are loaded; pools made after that start empty.
        self._pools_loaded = False
        self._pools = PoolRegistry(self._make_pool, changed=self._changed)
        #: The ``default`` pool's dispatcher and state (every request of a one-pool cluster).
        self._slots = self._pools.default.slots
        self._cluster = self._pools.default.cluster
        self._requests = self._pools.default.metrics
        self._agents = AgentSessions(self.config)
        self._state = BalancerState.UNOPENED
        self._closing = False
        self._shutdown: anyio.Event | None = None

    def __repr__(self) -> str:
        s = self.statistics()
        pools = "" if len(self.pool_names()) == 1 else f" | pools: {len(self.pool_names())}"
        return (
            f"<Balancer [requests: {s.requests_active} active, {s.requests_buffered} buffered"
            f" | agents: {s.agents}, slots: {s.slots_busy}/{s.slots_total} busy{pools}]>"
        )

    @property
    def pool(self) -> AgentPool:
        """The ``default`` pool's agents (internal; read ``statistics()`` or
        ``agents_snapshot()``)."""
        return self._slots.pool

    @property
    def buffer(self) -> RequestBuffer:
        """The ``default`` pool's waiting requests (internal; read ``statistics()``)."""
        return self._slots.buffer

    # -- model pools ---------------------------------------------------------------------

    def _make_pool(self, name: str) -> ModelPool:
        from paddler.balancer._state_store import keeps_pools

        store = self._state_store
        if store is not None and name != DEFAULT_POOL and not keeps_pools(store):
            logger.warning(
                "the state store %r keeps only the default pool's state; pool %s's desired "
                "state is kept in memory for this run",
                store,
                name,
            )
            store = None
        pool = ModelPool(
            name,
            self.config,
            self.plugin_manager,
            self.metrics,
            store,
            parent=self._changed,
            agents_parent=self._agents_changed,
            buffer_parent=self._buffer_changed,
        )
        if self._pools_loaded and self._task_group is not None:
            pool.cluster.load_default()  # made while running: nothing is stored for it
            pool.slots.start(self._task_group)
        return pool

    def _pool(self, name: str) -> ModelPool:
        """The pool named ``name`` (``UnknownPool`` when there is none)."""
        return self._pools.get(name)

    def pool_names(self) -> tuple[str, ...]:
        """The known pools: ``default`` first, then by name."""
        return self._pools.names()

    def has_pool(self, name: str) -> bool:
        return name in self._pools

    def pool_of_agent(self, agent_id: str) -> str | None:
        """The pool agent ``agent_id`` joined (None when it is not registered)."""
        pool = self._agents.pool_of(agent_id)
        return pool.name if pool is not None else None

    def pools_snapshot(self) -> tuple[PoolSnapshot, ...]:
        """Every pool's agents, slots, buffer and model, in ``pool_names()`` order."""
        return tuple(pool.snapshot() for pool in self._pools)

    async def subscribe_pools(self) -> AsyncIterator[tuple[PoolSnapshot, ...]]:
        """``pools_snapshot()`` now, then each time it changes, until shutdown."""
        last: tuple[PoolSnapshot, ...] | None = None
        async for _ in self._subscribe(self._changed):
            snapshot = self.pools_snapshot()
            if snapshot != last:
                last = snapshot
                yield snapshot

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Balancer:
        if self._state is not BalancerState.UNOPENED:
            raise RuntimeError(
                "A Balancer can be opened only once; create a new one instead "
                f"(this one is {self._state.name.lower()})."
            )
        self._state = BalancerState.OPENED
        self._shutdown = anyio.Event()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        try:
            await self._load_pools()
            for pool in self._pools:
                pool.slots.start(self._task_group)
            if self.config.inproc_name is not None:
                from paddler.transports._inproc import register_inproc

                register_inproc(self.config.inproc_name, self)
        except BaseException:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._state = BalancerState.CLOSED
            raise
        return self

    async def _load_pools(self) -> None:
        """Make every pool the store has a state for, and load each pool's state."""
        store = self._state_store
        if store is not None:
            from paddler.balancer._state_store import keeps_pools

            if keeps_pools(store):
                for name in await store.stored_pools():
                    self._pools.ensure(name)
        for pool in self._pools:
            await pool.cluster.load()
        self._pools_loaded = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Answer every in-flight and buffered request with 503, close agent sockets, stop."""
        if self._state is not BalancerState.OPENED or self._closing:
            return
        self._closing = True
        if self.config.inproc_name is not None:
            from paddler.transports._inproc import unregister_inproc

            unregister_inproc(self.config.inproc_name, self)
        for pool in self._pools:
            pool.close()
        self._agents_changed.close()
        self._buffer_changed.close()
        self._changed.close()
        assert self._shutdown is not None and self._task_group is not None
        self._shutdown.set()
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)
        self._state = BalancerState.CLOSED

    @property
    def closing(self) -> bool:
        return self._closing

    # -- agents --------------------------------------------------------------------------

    def accept_agent(
        self,
        agent_id: str,
        stream: AgentStream,
        *,
        extensions: Collection[str] = SUPPORTED_EXTENSIONS,
        pool: str = DEFAULT_POOL,
    ) -> None:
        """Serve ``stream`` in the balancer's own task group (used by ``inproc://``, whose
        agents are ours and speak every extension); ``InvalidRequest`` for a bad pool name."""
        if self._task_group is None or self._closing:
            raise ShuttingDown("balancer is not accepting agents")
        validate_pool_name(pool)
        self._task_group.start_soon(
            functools.partial(self.serve_agent, agent_id, stream, extensions=extensions, pool=pool)
        )

    @property
    def agent_extensions(self) -> frozenset[str]:
        """The agent-socket extensions to agree to now: all of ours, except policy reports
        (``cached_prefixes``) that the chosen balancing policy does not read, since each costs
        every request a status frame."""
        from paddler.policies import chosen_agent_reports

        reports = chosen_agent_reports(self.plugin_manager) & POLICY_REPORT_EXTENSIONS
        return (SUPPORTED_EXTENSIONS - POLICY_REPORT_EXTENSIONS) | reports

    async def serve_agent(
        self,
        agent_id: str,
        stream: AgentStream,
        *,
        extensions: Collection[str] = (),
        pool: str = DEFAULT_POOL,
    ) -> None:
        """Run one agent's socket until it deregisters, disconnects or the balancer stops.

        ``stream`` carries wire objects (``AgentToBalancerMessage`` in,
        ``BalancerToAgentMessage`` out); undecodable frames are the stream's business.
        ``extensions`` are the ``paddler.wire.AgentSocketExtension`` names the agent announced
        (the WebSocket handshake's ``Paddler-Extensions`` header); the default, none, is a
        Paddler 4.1 agent, which gets exactly Paddler's wire. ``pool`` is the model pool it
        joins (the handshake's ``Paddler-Pool`` header), made if new; ``InvalidRequest`` for a
        name off ``paddler.wire.POOL_NAME_RULE`` (the stream is closed).
        """
        if self._shutdown is None or self._closing:
            await stream.aclose()
            return
        try:
            model_pool = self._pools.ensure(pool)
        except BaseException:
            await stream.aclose()
            raise
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._close_on_shutdown, tg.cancel_scope)
                await self._agents.serve(agent_id, stream, extensions, model_pool)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _close_on_shutdown(self, scope: anyio.CancelScope) -> None:
        assert self._shutdown is not None
        await self._shutdown.wait()
        scope.cancel()

    # -- requests ------------------------------------------------------------------------

    def count_rejected(self, status: int, *, pool: str = DEFAULT_POOL) -> None:
        """Count a request refused before it reached the buffer (a 400 for bad input, ...).

        The HTTP services call this for what they reject themselves; it shows in
        ``statistics().requests_failed`` and as ``requests_total{outcome="<status>"}``; the
        tenant being served in this context (an API key) counts it too. ``pool`` labels it
        (the ``default`` pool's series when that pool is unknown).
        """
        metrics = self._pools.get(pool).metrics if pool in self._pools else self._requests
        metrics.count_request(str(status), current_tenant())

    def generate(
        self,
        params: ContinueFromConversationHistoryParams | ContinueFromRawPromptParams,
        *,
        pool: str = DEFAULT_POOL,
        client_request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        overrides: SamplingOverrides | None = None,
    ) -> InferenceStream:
        """Stream one generation; see ``InferenceStream``.

        ``client_request_id`` is echoed in every envelope; the id the agent sees is made
        unique per request, so ids never collide across clients. ``overrides`` (a
        ``paddler.wire.SamplingOverrides``) travel with the request to the agent's engine;
        empty ones are dropped. ``pool`` is the model pool whose agents serve it
        (``UnknownPool`` when there is no such pool; one without agents buffers it).
        """
        model_pool = self._pools.get(pool)
        info = new_request_info(
            "generate", params, client_request_id=client_request_id, headers=headers
        )
        if overrides == SamplingOverrides():
            overrides = None
        lease = model_pool.slots.lease(info)
        return InferenceStream(self.config, model_pool.metrics, lease, params, overrides=overrides)

    def embed(
        self,
        params: GenerateEmbeddingBatchParams,
        *,
        pool: str = DEFAULT_POOL,
        headers: Mapping[str, str] | None = None,
    ) -> EmbeddingStream:
        """Stream an embedding batch, split across ``pool``'s agents (spec §4.4;
        ``UnknownPool`` when there is no such pool)."""
        model_pool = self._pools.get(pool)
        return EmbeddingStream(
            self.config,
            model_pool.metrics,
            model_pool.slots,
            params,
            applicable_state=lambda: model_pool.cluster.applicable,
            headers=dict(headers or {}),
        )

    # -- desired state -------------------------------------------------------------------

    async def get_desired_state(self, pool: str = DEFAULT_POOL) -> BalancerDesiredState:
        """``pool``'s desired state (``UnknownPool`` when there is no such pool)."""
        return await self._pools.get(pool).cluster.get_desired()

    async def set_desired_state(
        self, state: BalancerDesiredState, pool: str = DEFAULT_POOL
    ) -> None:
        """Validate (``InvalidRequest`` names the field), store, then push to every agent of
        ``pool``, which is made if new (``InvalidRequest`` for a bad pool name)."""
        validate_pool_name(pool)
        if pool not in self._pools:
            from paddler.balancer._desired_state import validate_desired_state

            validate_desired_state(state)  # a bad state makes no pool
        await self._pools.ensure(pool).cluster.set_desired(state)

    @property
    def applicable_state(self) -> AgentDesiredState | None:
        """The ``default`` pool's applicable state (``applicable_state_of`` for another)."""
        return self._cluster.applicable

    def applicable_state_of(self, pool: str) -> AgentDesiredState | None:
        """What ``pool``'s agents are told to run (None when its pool is unknown)."""
        return self._pools.get(pool).cluster.applicable if pool in self._pools else None

    @property
    def generation_enabled(self) -> bool:
        """False in embeddings mode (the ``default`` pool's; ``generation_enabled_in``)."""
        return self._cluster.generation_enabled

    def generation_enabled_in(self, pool: str) -> bool:
        """False while ``pool`` is in embeddings mode (``UnknownPool`` for no such pool)."""
        return self._pools.get(pool).cluster.generation_enabled

    async def wait_applicable_state_changed(self, pool: str = DEFAULT_POOL) -> None:
        changes = self._pools.get(pool).cluster.changed
        await changes.wait_beyond(changes.version)

    async def subscribe_generation_enabled(self, pool: str = DEFAULT_POOL) -> AsyncIterator[bool]:
        """``pool``'s ``generation_enabled`` now, then each time it flips (until shutdown)."""
        cluster = self._pools.get(pool).cluster
        changes = cluster.changed
        current = cluster.generation_enabled
        seen = changes.version
        yield current
        while not changes.closed:
            seen = await changes.wait_beyond(seen)
            if changes.is_closed():
                return
            if cluster.generation_enabled != current:
                current = cluster.generation_enabled
                yield current

    # -- agent RPCs ----------------------------------------------------------------------

    async def get_chat_template_override(self, agent_id: str) -> ChatTemplate | None:
        """The chat template override agent ``agent_id`` uses (``UnknownAgent``,
        ``AgentRpcTimeout``, ``AgentGone`` when it cannot say)."""
        return await self._agents.get_chat_template_override(agent_id)

    async def get_model_metadata(self, agent_id: str) -> ModelMetadata | None:
        """The GGUF metadata of the model agent ``agent_id`` serves."""
        return await self._agents.get_model_metadata(agent_id)

    # -- snapshots and waits -------------------------------------------------------------

    def agents_snapshot(self, pool: str | None = None) -> AgentControllerPoolSnapshot:
        """``pool``'s agents; every agent of every pool for None (``UnknownPool``)."""
        pools = self._pools.find(pool)
        return AgentControllerPoolSnapshot(
            agents=tuple(e.snapshot() for p in pools for e in p.slots.pool)
        )

    def buffered_requests_snapshot(self, pool: str | None = None) -> BufferedRequestsSnapshot:
        """How many requests wait in ``pool``'s buffer; in all buffers for None."""
        pools = self._pools.find(pool)
        return BufferedRequestsSnapshot(
            buffered_requests_current=sum(len(p.slots.buffer) for p in pools)
        )

    async def subscribe_agents(
        self, pool: str | None = None
    ) -> AsyncIterator[AgentControllerPoolSnapshot]:
        """``agents_snapshot(pool)`` now, then after every change, until shutdown."""
        changes = (
            self._agents_changed if pool is None else self._pools.get(pool).slots.agents_changed
        )
        async for _ in self._subscribe(changes):
            yield self.agents_snapshot(pool)

    async def subscribe_buffered_requests(
        self, pool: str | None = None
    ) -> AsyncIterator[BufferedRequestsSnapshot]:
        """``buffered_requests_snapshot(pool)`` now, then after every change, until shutdown."""
        changes = (
            self._buffer_changed if pool is None else self._pools.get(pool).slots.buffer_changed
        )
        last: int | None = None
        async for _ in self._subscribe(changes):
            snapshot = self.buffered_requests_snapshot(pool)
            if snapshot.buffered_requests_current != last:
                last = snapshot.buffered_requests_current
                yield snapshot

    async def _subscribe(self, changes: Changes) -> AsyncIterator[int]:
        seen = changes.version
        yield seen
        while not changes.closed:
            seen = await changes.wait_beyond(seen)
            if changes.is_closed():
                return
            yield seen

    async def wait_statistics(
        self, predicate: Callable[[BalancerStatistics], bool], *, pool: str | None = None
    ) -> BalancerStatistics:
        """Return ``statistics(pool)`` once ``predicate`` holds for it.

        It is checked now and after every change to the agents, their slots, the buffer, the
        open requests or the desired state (no polling). Raises ``ShuttingDown`` if the
        balancer stops first. A pool that does not exist yet counts as empty until it does.
        """
        changes = self._changed
        seen = changes.version
        while True:
            statistics = self.statistics(pool) if pool is None or pool in self._pools else _EMPTY
            if predicate(statistics):
                return statistics
            if changes.closed:
                raise ShuttingDown("balancer is shutting down")
            seen = await changes.wait_beyond(seen)

    async def wait_agents(
        self, count: int = 1, *, with_slots: bool = True, pool: str | None = None
    ) -> None:
        """Return once ``count`` agents are registered (with slots, unless told otherwise),
        in ``pool`` or in all pools together for None."""

        def ready(_: BalancerStatistics) -> bool:
            pools = self._pools.find(pool) if pool is None or pool in self._pools else []
            agents = [e for p in pools for e in p.slots.pool if e.slots_total > 0 or not with_slots]
            return len(agents) >= count

        await self.wait_statistics(ready)

    async def wait_slots_busy(self, count: int = 1, *, pool: str | None = None) -> None:
        """Return once at least ``count`` slots are busy (dispatched and not yet ended)."""
        await self.wait_statistics(lambda s: s.slots_busy >= count, pool=pool)

    async def wait_buffered(self, count: int = 1, *, pool: str | None = None) -> None:
        """Return once at least ``count`` requests wait in the buffer for a slot."""
        await self.wait_statistics(lambda s: s.requests_buffered >= count, pool=pool)

    async def wait_idle(self, *, pool: str | None = None) -> None:
        """Return once no slot is busy and no request is buffered (every request has ended,
        including the drains of stopped ones)."""
        await self.wait_statistics(
            lambda s: s.slots_busy == 0 and s.requests_buffered == 0, pool=pool
        )

    def statistics(self, pool: str | None = None) -> BalancerStatistics:
        """The counts of ``pool``, or of the whole balancer for None (``UnknownPool``).

        ``generation_enabled`` is the ``default`` pool's for the whole balancer."""
        pools = self._pools.find(pool)
        return _statistics(pools, generation_enabled=pools[0].cluster.generation_enabled)


_EMPTY = BalancerStatistics(
    agents=0,
    slots_total=0,
    slots_busy=0,
    requests_buffered=0,
    requests_active=0,
    requests_completed=0,
    requests_failed=0,
    requests_cancelled=0,
    generation_enabled=True,
)


def _statistics(pools: Iterable[ModelPool], *, generation_enabled: bool) -> BalancerStatistics:
    """The sum of ``pools``' counts."""
    total = attrs.evolve(_EMPTY, generation_enabled=generation_enabled)
    for pool in pools:
        agents, requests = pool.slots.pool, pool.metrics
        total = attrs.evolve(
            total,
            agents=total.agents + len(agents),
            slots_total=total.slots_total + agents.slots_total,
            slots_busy=total.slots_busy + agents.slots_busy,
            requests_buffered=total.requests_buffered + len(pool.slots.buffer),
            requests_active=total.requests_active + len(pool.slots.active),
            requests_completed=total.requests_completed + requests.completed,
            requests_failed=total.requests_failed + requests.failed,
            requests_cancelled=total.requests_cancelled + requests.cancelled,
        )
    return total
