"""Balancer: agents in, requests out; owns the pool, the buffer, the desired state, a task group."""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.abc
import pluggy
from anyio.abc import ObjectStream

from paddler._changes import Changes
from paddler._tenancy import Tenant, current_tenant
from paddler.balancer._agent_socket import PADDLER_PROTOCOL_VERSION, serve_registered_agent
from paddler.balancer._buffer import RequestBuffer, Waiter
from paddler.balancer._config import BalancerConfig, BalancerStatistics
from paddler.balancer._desired_state import to_agent_desired_state, validate_desired_state
from paddler.balancer._dispatch import _assign_waiters_to_slots
from paddler.balancer._embeddings import EmbeddingStream
from paddler.balancer._pool import AgentEntry, AgentPool
from paddler.balancer._rpc import call_agent
from paddler.balancer._stream import SHUTDOWN, InferenceStream, new_request_info
from paddler.errors import (
    AgentGone,
    BufferTimeout,
    GenerationDisabled,
    ShuttingDown,
)
from paddler.policies import AgentCandidate, RequestInfo, RequestKind, least_busy
from paddler.wire import (
    SUPPORTED_EXTENSIONS,
    AgentControllerPoolSnapshot,
    AgentDesiredState,
    BalancerDesiredState,
    BufferedRequestsSnapshot,
    ChatTemplate,
    ChatTemplateOverrideResponse,
    GetChatTemplateOverride,
    GetModelMetadata,
    ModelMetadata,
    ModelMetadataResponse,
    SamplingOverrides,
    SetState,
)

if TYPE_CHECKING:
    from paddler.balancer._state_store import StateStore

__all__ = ["PADDLER_PROTOCOL_VERSION", "Balancer", "BalancerMetricsLike", "BalancerState"]

logger = logging.getLogger("paddler.balancer")


class BalancerMetricsLike(Protocol):
    """What the balancer reports to (``paddler.metrics.BalancerMetrics`` implements it)."""

    def observe_buffer_wait(self, seconds: float) -> None: ...
    def observe_time_to_first_token(self, seconds: float) -> None: ...
    def observe_inter_token_latency(self, seconds: float) -> None: ...
    def count_tokens(self, *, prompt: int, cached_prompt: int, generated: int) -> None: ...
    def count_request(self, outcome: str) -> None: ...
    def record_generated_tokens(self, agent_id: str, count: int = 1) -> None: ...


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
        self.pool = AgentPool()
        self.buffer = RequestBuffer(self.config.max_buffered_requests)
        self._state_store = state_store
        self._state = BalancerState.UNOPENED
        self._closing = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._shutdown: anyio.Event | None = None
        self._desired: BalancerDesiredState | None = None
        self._applicable: AgentDesiredState | None = None
        #: Nothing was stored: agents serving a model keep it and it is adopted (_adoption).
        self._adopting = False
        #: The model file being adopted, between the decision and the adopted state.
        self._adoption_pending: str | None = None
        self._adopted: AgentDesiredState | None = None
        self._agents_changed = Changes()
        self._buffer_changed = Changes()
        self._state_changed = Changes()
        self._active: set[InferenceStream] = set()
        self._completed = 0
        self._failed = 0
        self._cancelled = 0

    def __repr__(self) -> str:
        return (
            f"<Balancer [requests: {len(self._active)} active, {len(self.buffer)} buffered"
            f" | agents: {len(self.pool)}, slots: {self.pool.slots_busy}/{self.pool.slots_total}"
            " busy]>"
        )

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
            if self._state_store is not None:
                desired = await self._state_store.load()
            else:
                desired = BalancerDesiredState.default()
            self._desired = desired
            self._apply(desired)
            self._adopting = desired == BalancerDesiredState.default()
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
        for waiter in self.buffer.drain():
            waiter.error = ShuttingDown("balancer is shutting down")
            waiter.wake()
        for entry in self.pool:
            for route in list(entry.routes.values()):
                try:
                    route.send_nowait(SHUTDOWN)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    pass
        assert self._shutdown is not None and self._task_group is not None
        self._shutdown.set()
        for changes in (self._agents_changed, self._buffer_changed, self._state_changed):
            changes.close()
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
        stream: ObjectStream[Any],
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

    async def serve_agent(
        self, agent_id: str, stream: ObjectStream[Any], *, extensions: Collection[str] = ()
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
                await self._serve_agent(agent_id, stream, extensions)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _close_on_shutdown(self, scope: anyio.CancelScope) -> None:
        assert self._shutdown is not None
        await self._shutdown.wait()
        scope.cancel()

    async def _serve_agent(
        self, agent_id: str, stream: ObjectStream[Any], extensions: Collection[str] = ()
    ) -> None:
        await serve_registered_agent(self, agent_id, stream, extensions)

    def _pool_changed(self) -> None:
        assigned = _assign_waiters_to_slots(self.buffer, self.pool, self._select)
        if assigned:
            self._buffer_changed.notify()
        self._agents_changed.notify()

    def _select(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> AgentCandidate | None:
        try:
            chosen = self.plugin_manager.hook.paddler_select_agent(
                request=request, candidates=list(candidates)
            )
        except Exception:
            logger.exception("paddler_select_agent failed; using least busy")
            chosen = least_busy(candidates)
        if chosen is not None and not any(c.id == chosen.id for c in candidates):
            logger.warning("policy chose %r, which is not a candidate", chosen)
            return None
        return chosen  # type: ignore[no-any-return]

    # -- slots ---------------------------------------------------------------------------

    async def _acquire(self, request: RequestInfo) -> AgentEntry:
        """A claimed slot on some agent: at once if free and nobody waits, else buffered."""
        if self._closing:
            raise ShuttingDown("balancer is shutting down")
        started = time.monotonic()
        if not len(self.buffer):
            candidates = self.pool.candidates()
            if candidates:
                chosen = self._select(request, candidates)
                if chosen is not None and self.pool.claim(chosen.id):
                    self._agents_changed.notify()
                    self._observe_wait(started, request)
                    return self._entry(chosen.id)
        waiter = self.buffer.enqueue_nowait(Waiter(request, event=anyio.Event()))
        self._buffer_changed.notify()
        # A slot may be free that the policy declined for earlier waiters but takes for us.
        if _assign_waiters_to_slots(self.buffer, self.pool, self._select):
            self._buffer_changed.notify()
            self._agents_changed.notify()
        assert waiter.event is not None
        try:
            with anyio.fail_after(self.config.buffered_request_timeout):
                await waiter.event.wait()
        except BaseException as exc:
            if waiter.agent_id is None:
                if self.buffer.remove(waiter):
                    self._buffer_changed.notify()
            else:
                self._release_slot(waiter.agent_id)
            if isinstance(exc, TimeoutError) and waiter.error is None:
                self._observe_wait(started, request)  # a wait that ended by timeout is a wait too
                raise BufferTimeout("Waiting for available slot timed out") from None
            raise
        if waiter.error is not None:
            raise waiter.error
        assert waiter.agent_id is not None
        self._observe_wait(started, request)
        return self._entry(waiter.agent_id)

    def _entry(self, agent_id: str) -> AgentEntry:
        entry = self.pool.get(agent_id)
        if entry is None:
            raise AgentGone("Agent controller connection closed")
        return entry

    def _observe_wait(self, started: float, request: RequestInfo) -> None:
        seconds = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.observe_buffer_wait(seconds)
        if request.tenant is not None:
            request.tenant.observe_buffer_wait(seconds)

    def _release_slot(self, agent_id: str) -> None:
        if self.pool.release(agent_id):
            self._pool_changed()

    def _spawn_drain(self, stream: InferenceStream) -> bool:
        if self._task_group is None or self._closing:
            return False
        stream._draining = True
        self._task_group.start_soon(stream._drain)
        return True

    def count_rejected(self, status: int) -> None:
        """Count a request refused before it reached the buffer (a 400 for bad input, ...).

        The HTTP services call this for what they reject themselves; it shows in
        ``statistics().requests_failed`` and as ``requests_total{outcome="<status>"}``; the
        tenant being served in this context (an API key) counts it too.
        """
        self._count_request(str(status), current_tenant())

    def _count_request(self, outcome: str, tenant: Tenant | None = None) -> None:
        if tenant is not None:
            tenant.count_request(outcome)
        if outcome == "ok":
            self._completed += 1
        elif outcome == "cancelled":
            self._cancelled += 1
        else:
            self._failed += 1
        if self.metrics is not None:
            self.metrics.count_request(outcome)

    def _check_accepting(self, kind: RequestKind) -> None:
        if self._state is not BalancerState.OPENED or self._closing:
            raise ShuttingDown("balancer is shutting down")
        if kind == "generate" and not self.generation_enabled:
            raise GenerationDisabled(
                "Token generation is disabled while the cluster is configured for embeddings"
            )

    # -- requests ------------------------------------------------------------------------

    def generate(
        self,
        params: Any,
        *,
        client_request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        overrides: SamplingOverrides | None = None,
    ) -> InferenceStream:
        """Stream one generation (``ContinueFrom...Params``); see ``InferenceStream``.

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
        return _Tracked(self, info, params, overrides=overrides)

    def embed(self, params: Any, *, headers: Mapping[str, str] | None = None) -> EmbeddingStream:
        """Stream an embedding batch, split across agents (spec §4.4)."""
        return EmbeddingStream(self, params, headers=dict(headers or {}))

    def _inference_stream(self, kind: RequestKind, params: Any, headers: Mapping[str, str]) -> Any:
        info = new_request_info(kind, params, client_request_id=None, headers=headers)
        return _Tracked(self, info, params)

    # -- desired state -------------------------------------------------------------------

    async def get_desired_state(self) -> BalancerDesiredState:
        if self._state_store is not None:
            return await self._state_store.load()
        return self._desired or BalancerDesiredState.default()

    async def set_desired_state(self, state: BalancerDesiredState) -> None:
        """Validate (``InvalidRequest`` names the field), store, then push to every agent."""
        validate_desired_state(state)
        if self._state_store is not None:
            await self._state_store.store(state)
        self._adopting, self._adopted, self._adoption_pending = False, None, None
        self._desired = state
        self._apply(state)

    def _apply(self, state: BalancerDesiredState) -> None:
        applicable = to_agent_desired_state(state)
        self._applicable = applicable
        for entry in self.pool:
            if entry.outbox is not None:
                try:
                    entry.outbox.send_nowait(SetState(desired_state=applicable))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    pass
        self._state_changed.notify()

    @property
    def applicable_state(self) -> AgentDesiredState | None:
        return self._applicable

    @property
    def generation_enabled(self) -> bool:
        """False in embeddings mode (token generation is off cluster-wide)."""
        state = self._applicable
        return state is None or not state.inference_parameters.enable_embeddings

    async def wait_applicable_state_changed(self) -> None:
        await self._state_changed.wait_beyond(self._state_changed.version)

    async def subscribe_generation_enabled(self) -> AsyncIterator[bool]:
        """``generation_enabled`` now, then each time it flips (until shutdown)."""
        current = self.generation_enabled
        seen = self._state_changed.version
        yield current
        while not self._state_changed.closed:
            seen = await self._state_changed.wait_beyond(seen)
            if self._state_changed.is_closed():
                return
            if self.generation_enabled != current:
                current = self.generation_enabled
                yield current

    # -- agent RPCs ----------------------------------------------------------------------

    async def get_chat_template_override(self, agent_id: str) -> ChatTemplate | None:
        response = await self._rpc(agent_id, GetChatTemplateOverride())
        if not isinstance(response, ChatTemplateOverrideResponse):
            raise AgentGone(f"agent answered with {type(response).__name__}")
        return response.chat_template_override

    async def get_model_metadata(self, agent_id: str) -> ModelMetadata | None:
        response = await self._rpc(agent_id, GetModelMetadata())
        if not isinstance(response, ModelMetadataResponse):
            raise AgentGone(f"agent answered with {type(response).__name__}")
        return response.model_metadata

    async def _rpc(self, agent_id: str, payload: Any) -> Any:
        return await call_agent(self, agent_id, payload)

    # -- snapshots -----------------------------------------------------------------------

    def agents_snapshot(self) -> AgentControllerPoolSnapshot:
        return AgentControllerPoolSnapshot(agents=tuple(e.snapshot() for e in self.pool))

    def buffered_requests_snapshot(self) -> BufferedRequestsSnapshot:
        return BufferedRequestsSnapshot(buffered_requests_current=len(self.buffer))

    async def subscribe_agents(self) -> AsyncIterator[AgentControllerPoolSnapshot]:
        """The agents snapshot now, then after every change, until shutdown."""
        async for _ in self._subscribe(self._agents_changed):
            yield self.agents_snapshot()

    async def subscribe_buffered_requests(self) -> AsyncIterator[BufferedRequestsSnapshot]:
        """The buffered-requests snapshot now, then after every change, until shutdown."""
        last: int | None = None
        async for _ in self._subscribe(self._buffer_changed):
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

    async def wait_agents(self, count: int = 1, *, with_slots: bool = True) -> None:
        """Return once ``count`` agents are registered (with slots, unless told otherwise)."""
        seen = self._agents_changed.version
        while True:
            ready = [e for e in self.pool if e.slots_total > 0 or not with_slots]
            if len(ready) >= count:
                return
            if self._agents_changed.closed:
                raise ShuttingDown("balancer is shutting down")
            seen = await self._agents_changed.wait_beyond(seen)

    def statistics(self) -> BalancerStatistics:
        return BalancerStatistics(
            agents=len(self.pool),
            slots_total=self.pool.slots_total,
            slots_busy=self.pool.slots_busy,
            requests_buffered=len(self.buffer),
            requests_active=len(self._active),
            requests_completed=self._completed,
            requests_failed=self._failed,
            requests_cancelled=self._cancelled,
            generation_enabled=self.generation_enabled,
        )


class _Tracked(InferenceStream):
    """An InferenceStream counted in ``requests_active`` while it is open."""

    async def __aenter__(self) -> InferenceStream:
        await super().__aenter__()
        self._balancer._active.add(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._balancer._active.discard(self)
        await super().__aexit__(exc_type, exc, tb)
