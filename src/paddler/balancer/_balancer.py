"""Balancer: agents in, requests out; owns the slots, the cluster state and a task group.

The parts it is made of, each in its own module: ``SlotDispatcher`` (pool, buffer, policy,
leases), ``ClusterState`` (desired state and adoption), ``AgentSessions`` (every agent's
socket and RPCs) with one ``AgentConnection`` per agent (its outbox and routes), and
``InferenceStream`` / ``EmbeddingStream`` (one request each).
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pluggy

from paddler._changes import Changes
from paddler._tenancy import current_tenant
from paddler.balancer._agent_sessions import PADDLER_PROTOCOL_VERSION, AgentSessions
from paddler.balancer._buffer import RequestBuffer
from paddler.balancer._cluster_state import ClusterState
from paddler.balancer._config import BalancerConfig, BalancerStatistics
from paddler.balancer._connection import AgentStream
from paddler.balancer._embeddings import EmbeddingStream
from paddler.balancer._pool import AgentPool
from paddler.balancer._request_metrics import BalancerMetricsLike, RequestMetrics
from paddler.balancer._slots import SlotDispatcher
from paddler.balancer._stream import InferenceStream, new_request_info
from paddler.errors import ShuttingDown
from paddler.wire import (
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
)

if TYPE_CHECKING:
    from paddler.balancer._state_store import StateStore

__all__ = ["PADDLER_PROTOCOL_VERSION", "Balancer", "BalancerMetricsLike", "BalancerState"]

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
        #: Bumped on every change to agents, slots, the buffer, open requests or desired state.
        self._changed = Changes()
        self._requests = RequestMetrics(metrics)
        self._slots = SlotDispatcher(
            self.config,
            plugin_manager,
            self._requests,
            generation_enabled=lambda: self.generation_enabled,
            parent=self._changed,
        )
        self._cluster = ClusterState(self._slots.pool, state_store, parent=self._changed)
        self._agents = AgentSessions(self.config, self._slots, self._cluster)
        self._state = BalancerState.UNOPENED
        self._closing = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._shutdown: anyio.Event | None = None

    def __repr__(self) -> str:
        pool = self.pool
        return (
            f"<Balancer [requests: {len(self._slots.active)} active, {len(self.buffer)} buffered"
            f" | agents: {len(pool)}, slots: {pool.slots_busy}/{pool.slots_total} busy]>"
        )

    @property
    def pool(self) -> AgentPool:
        """The registered agents (internal; read ``statistics()`` or ``agents_snapshot()``)."""
        return self._slots.pool

    @property
    def buffer(self) -> RequestBuffer:
        """The requests waiting for a slot (internal; read ``statistics()``)."""
        return self._slots.buffer

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
            await self._cluster.load()
            self._slots.start(self._task_group)
            if self.config.inproc_name is not None:
                from paddler.transports._inproc import register_inproc

                register_inproc(self.config.inproc_name, self)
        except BaseException:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._state = BalancerState.CLOSED
            raise
        return self

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
        self._slots.close()
        self._cluster.close()
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
    ) -> None:
        """Serve ``stream`` in the balancer's own task group (used by ``inproc://``, whose
        agents are ours and speak every extension)."""
        if self._task_group is None or self._closing:
            raise ShuttingDown("balancer is not accepting agents")
        self._task_group.start_soon(
            functools.partial(self.serve_agent, agent_id, stream, extensions=extensions)
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
        self, agent_id: str, stream: AgentStream, *, extensions: Collection[str] = ()
    ) -> None:
        """Run one agent's socket until it deregisters, disconnects or the balancer stops.

        ``stream`` carries wire objects (``AgentToBalancerMessage`` in,
        ``BalancerToAgentMessage`` out); undecodable frames are the stream's business.
        ``extensions`` are the ``paddler.wire.AgentSocketExtension`` names the agent announced
        (the WebSocket handshake's ``Paddler-Extensions`` header); the default, none, is a
        Paddler 4.1 agent, which gets exactly Paddler's wire.
        """
        if self._shutdown is None or self._closing:
            await stream.aclose()
            return
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._close_on_shutdown, tg.cancel_scope)
                await self._agents.serve(agent_id, stream, extensions)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _close_on_shutdown(self, scope: anyio.CancelScope) -> None:
        assert self._shutdown is not None
        await self._shutdown.wait()
        scope.cancel()

    # -- requests ------------------------------------------------------------------------

    def count_rejected(self, status: int) -> None:
        """Count a request refused before it reached the buffer (a 400 for bad input, ...).

        The HTTP services call this for what they reject themselves; it shows in
        ``statistics().requests_failed`` and as ``requests_total{outcome="<status>"}``; the
        tenant being served in this context (an API key) counts it too.
        """
        self._requests.count_request(str(status), current_tenant())

    def generate(
        self,
        params: ContinueFromConversationHistoryParams | ContinueFromRawPromptParams,
        *,
        client_request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        overrides: SamplingOverrides | None = None,
    ) -> InferenceStream:
        """Stream one generation; see ``InferenceStream``.

        ``client_request_id`` is echoed in every envelope; the id the agent sees is made
        unique per request, so ids never collide across clients. ``overrides`` (a
        ``paddler.wire.SamplingOverrides``) travel with the request to the agent's engine;
        empty ones are dropped.
        """
        info = new_request_info(
            "generate", params, client_request_id=client_request_id, headers=headers
        )
        if overrides == SamplingOverrides():
            overrides = None
        lease = self._slots.lease(info)
        return InferenceStream(self.config, self._requests, lease, params, overrides=overrides)

    def embed(
        self, params: GenerateEmbeddingBatchParams, *, headers: Mapping[str, str] | None = None
    ) -> EmbeddingStream:
        """Stream an embedding batch, split across agents (spec §4.4)."""
        return EmbeddingStream(
            self.config,
            self._requests,
            self._slots,
            params,
            applicable_state=lambda: self.applicable_state,
            headers=dict(headers or {}),
        )

    # -- desired state -------------------------------------------------------------------

    async def get_desired_state(self) -> BalancerDesiredState:
        return await self._cluster.get_desired()

    async def set_desired_state(self, state: BalancerDesiredState) -> None:
        """Validate (``InvalidRequest`` names the field), store, then push to every agent."""
        await self._cluster.set_desired(state)

    @property
    def applicable_state(self) -> AgentDesiredState | None:
        return self._cluster.applicable

    @property
    def generation_enabled(self) -> bool:
        """False in embeddings mode (token generation is off cluster-wide)."""
        return self._cluster.generation_enabled

    async def wait_applicable_state_changed(self) -> None:
        changes = self._cluster.changed
        await changes.wait_beyond(changes.version)

    async def subscribe_generation_enabled(self) -> AsyncIterator[bool]:
        """``generation_enabled`` now, then each time it flips (until shutdown)."""
        changes = self._cluster.changed
        current = self.generation_enabled
        seen = changes.version
        yield current
        while not changes.closed:
            seen = await changes.wait_beyond(seen)
            if changes.is_closed():
                return
            if self.generation_enabled != current:
                current = self.generation_enabled
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

    def agents_snapshot(self) -> AgentControllerPoolSnapshot:
        return AgentControllerPoolSnapshot(agents=tuple(e.snapshot() for e in self.pool))

    def buffered_requests_snapshot(self) -> BufferedRequestsSnapshot:
        return BufferedRequestsSnapshot(buffered_requests_current=len(self.buffer))

    async def subscribe_agents(self) -> AsyncIterator[AgentControllerPoolSnapshot]:
        """The agents snapshot now, then after every change, until shutdown."""
        async for _ in self._subscribe(self._slots.agents_changed):
            yield self.agents_snapshot()

    async def subscribe_buffered_requests(self) -> AsyncIterator[BufferedRequestsSnapshot]:
        """The buffered-requests snapshot now, then after every change, until shutdown."""
        last: int | None = None
        async for _ in self._subscribe(self._slots.buffer_changed):
            snapshot = self.buffered_requests_snapshot()
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
        self, predicate: Callable[[BalancerStatistics], bool]
    ) -> BalancerStatistics:
        """Return ``statistics()`` once ``predicate`` holds for it.

        It is checked now and after every change to the agents, their slots, the buffer, the
        open requests or the desired state (no polling). Raises ``ShuttingDown`` if the
        balancer stops first.
        """
        changes = self._changed
        seen = changes.version
        while True:
            statistics = self.statistics()
            if predicate(statistics):
                return statistics
            if changes.closed:
                raise ShuttingDown("balancer is shutting down")
            seen = await changes.wait_beyond(seen)

    async def wait_agents(self, count: int = 1, *, with_slots: bool = True) -> None:
        """Return once ``count`` agents are registered (with slots, unless told otherwise)."""

        def ready(_: BalancerStatistics) -> bool:
            agents = [e for e in self.pool if e.slots_total > 0 or not with_slots]
            return len(agents) >= count

        await self.wait_statistics(ready)

    async def wait_slots_busy(self, count: int = 1) -> None:
        """Return once at least ``count`` slots are busy (dispatched and not yet ended)."""
        await self.wait_statistics(lambda s: s.slots_busy >= count)

    async def wait_buffered(self, count: int = 1) -> None:
        """Return once at least ``count`` requests wait in the buffer for a slot."""
        await self.wait_statistics(lambda s: s.requests_buffered >= count)

    async def wait_idle(self) -> None:
        """Return once no slot is busy and no request is buffered (every request has ended,
        including the drains of stopped ones)."""
        await self.wait_statistics(lambda s: s.slots_busy == 0 and s.requests_buffered == 0)

    def statistics(self) -> BalancerStatistics:
        pool, requests = self.pool, self._requests
        return BalancerStatistics(
            agents=len(pool),
            slots_total=pool.slots_total,
            slots_busy=pool.slots_busy,
            requests_buffered=len(self.buffer),
            requests_active=len(self._slots.active),
            requests_completed=requests.completed,
            requests_failed=requests.failed,
            requests_cancelled=requests.cancelled,
            generation_enabled=self.generation_enabled,
        )
