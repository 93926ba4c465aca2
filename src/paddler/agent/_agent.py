"""Agent: dials the balancer, applies the desired state, serves requests on its engine."""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator
from types import TracebackType

import anyio
import anyio.abc
import pluggy
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paddler._changes import Changes
from paddler._ids import new_id
from paddler.agent._config import AgentConfig
from paddler.agent._engine import Engine, EngineLoader, EngineStream, load_llama_engine
from paddler.agent._protocol import (
    AgentProtocol,
    DesiredStateReceived,
    DrainAcknowledged,
    ProtocolEvent,
    RequestReceived,
    StopRequested,
)
from paddler.agent._reconciler import Reconciler
from paddler.agent._slot_prefixes import SlotPrefixes
from paddler.agent._status import AgentStatus
from paddler.errors import ConnectError, ShuttingDown
from paddler.transports._base import (
    AgentSocket,
    AgentSocketAttribute,
    AgentTransport,
    BatchingSocket,
)
from paddler.wire import (
    DEFAULT_POOL,
    AgentDesiredState,
    AgentSocketExtension,
    AgentStateApplicationStatus,
    AgentToBalancerMessage,
    ChatTemplateOverrideResponse,
    EmbeddingError,
    EmbeddingResult,
    GeneratedTokenResult,
    GenerateEmbeddingBatchParams,
    GetChatTemplateOverride,
    GetModelMetadata,
    ModelMetadata,
    ModelMetadataResponse,
    ResponsePayload,
    SamplerError,
    SlotAggregatedStatusSnapshot,
)

__all__ = ["Agent", "AgentConfig", "AgentState"]

logger = logging.getLogger("paddler.agent")

MIN_REPORT_GAP = 0.05
RESTART_WAIT = 60.0  # how long a request waits for an engine that replaces a crashed one
MAX_BATCH = 256  # messages in one ``frame_batches`` frame (about 40 kB of tokens)
NO_MODEL_MESSAGE = "agent has no model loaded (it is swapping or has none)"

AnyResultStream = EngineStream[GeneratedTokenResult] | EngineStream[EmbeddingResult]


class AgentState(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


class Agent:
    """``async with Agent(AgentConfig(...)) as agent: await agent.wait_registered()``.

    It reconnects every ``reconnect_interval`` forever with the same id, so it survives a
    balancer restart. ``engine_loader`` defaults to ``paddler.engine.LlamaEngine.load``.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        transport: AgentTransport | None = None,
        engine_loader: EngineLoader | None = None,
    ) -> None:
        if config.slots < 1:
            raise ValueError(f"slots must be at least 1, got {config.slots}")
        self.config = config
        self.agent_id = config.agent_id or new_id()
        self.name = config.name
        #: The engine serving requests (None while there is none: no model, or a swap).
        self.engine: Engine | None = None
        self.status = AgentStatus(desired_slots_total=config.slots)
        self._plugin_manager = plugin_manager
        self._transport = transport
        self._reconciler = Reconciler(
            self, engine_loader or load_llama_engine, config=config, status=self.status
        )
        self._idle_changed = Changes()
        self._registrations = Changes()
        self._state = AgentState.UNOPENED
        self._task_group: anyio.abc.TaskGroup | None = None
        self._protocol: AgentProtocol | None = None
        self._outbox: MemoryObjectSendStream[AgentToBalancerMessage] | None = None
        self._writer_done: anyio.Event | None = None
        self._drain_ack: anyio.Event | None = None
        self._in_flight = 0
        self._streams: dict[str, AnyResultStream] = {}
        #: Requests received but not streaming yet, and those of them already told to stop: a
        #: StopRespondingTo can overtake the start of its request and must not be lost.
        self._starting: set[str] = set()
        self._stopped_early: set[str] = set()
        self._prefixes = SlotPrefixes(config.slots)
        self.connected = False

    def __repr__(self) -> str:
        state = self.status.state_application_status.value
        return (
            f"<Agent [{self.name or self.agent_id} {state}, slots: "
            f"{self._in_flight}/{self.status.slots_total} busy, "
            f"{'connected' if self.connected else 'disconnected'}]>"
        )

    @property
    def desired_state(self) -> AgentDesiredState | None:
        """The latest desired state received from the balancer."""
        return self._reconciler.desired

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Agent:
        if self._state is not AgentState.UNOPENED:
            raise RuntimeError("An Agent can be started only once; create a new one instead.")
        self._state = AgentState.OPENED
        if self._transport is None:
            self._transport = self._transport_for(self.config.management_url)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._connection_loop)
        self._task_group.start_soon(self._reconciler.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Deregister (best effort), stop every task, free the engine."""
        if self._state is not AgentState.OPENED:
            return
        self._state = AgentState.CLOSED
        assert self._task_group is not None
        with anyio.CancelScope(shield=True):
            if self._protocol is not None and self._outbox is not None:
                self._protocol.deregister()
                self._flush()
                self._outbox.close()  # the writer sends what is queued, then stops
                with anyio.move_on_after(1.0):
                    if self._writer_done is not None:
                        await self._writer_done.wait()
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)
        self.status.changes.close()  # subscribe_status() ends
        self._reconciler.close()  # wait_applied() raises ShuttingDown
        self._registrations.close()  # so does wait_registered()
        engine, self.engine = self.engine, None
        if engine is not None:
            with anyio.CancelScope(shield=True):
                await engine.aclose()
        if self._transport is not None:
            await self._transport.aclose()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled; ``await tg.start(agent.run)`` returns once registered."""
        async with self:
            await self.wait_registered()
            task_status.started()
            await anyio.sleep_forever()

    def _transport_for(self, url: str) -> AgentTransport:
        pm = self._plugin_manager
        if pm is None:
            from paddler.plugins import get_plugin_manager

            pm = self._plugin_manager = get_plugin_manager()
        transport = pm.hook.paddler_transport_for_url(url=url)
        if transport is None:
            raise ValueError(f"no transport handles {url!r} (try ws://host:port or inproc://name)")
        return transport  # type: ignore[no-any-return]

    # -- waiting -------------------------------------------------------------------------

    async def wait_registered(self) -> None:
        """Return once the agent is registered with a balancer (now or after a reconnect).

        :raises ShuttingDown: if the agent closes first.
        """
        while not self.connected:
            if self._registrations.closed:
                raise ShuttingDown("the agent closed before it registered")
            await self._registrations.wait_beyond(self._registrations.version)

    async def wait_applied(self, state: AgentDesiredState | None = None) -> None:
        """Return once ``state`` has reached this agent and is applied (its model loaded).

        Pass the state you are waiting for (``balancer.applicable_state`` after
        ``set_desired_state``): one still on its way is then waited for, not mistaken for
        the one applied before. Without it, wait for the latest state this agent received.

        :raises ShuttingDown: if the agent closes first.
        """
        await self._reconciler.wait_applied(state)

    async def wait_idle(self) -> None:
        """Return once no request is in flight on this agent."""
        while self._in_flight:
            await self._idle_changed.wait_beyond(self._idle_changed.version)

    async def subscribe_status(self) -> AsyncIterator[SlotAggregatedStatusSnapshot]:
        """The agent's status now, then after each change (coalesced), until it closes.

        Download progress shows here (``download_current`` of ``download_total``); the CLI
        draws its progress bar from it.
        """
        changes = self.status.changes
        seen = -1
        while not changes.is_closed():
            if seen != changes.version:
                seen = changes.version
                yield self.status.snapshot()
            await changes.wait_beyond(seen)

    async def _wait_restarted_engine(self) -> Engine | None:
        """The engine that replaces a crashed one (None if that load fails or takes too long)."""
        changes = self.status.changes
        with anyio.move_on_after(RESTART_WAIT):
            while self._reconciler.restarting:
                await changes.wait_beyond(changes.version)
        return self.engine

    # -- the Reconciler's host -----------------------------------------------------------

    def begin_drain(self) -> anyio.Event | None:
        """Report ``slots_total: 0`` now; the event fires when the balancer acknowledged it."""
        was_serving = self.status.slots_total > 0
        self.status.update(
            slots_total=0, state_application_status=AgentStateApplicationStatus.FRESH
        )
        protocol = self._protocol
        if protocol is None or not was_serving:
            return None
        acknowledged = protocol.begin_drain(self.status.snapshot())
        self._flush()
        if not acknowledged:  # a Paddler 4.1 balancer: no acknowledgement will come
            return None
        self._drain_ack = anyio.Event()
        return self._drain_ack

    async def stop_requests(self) -> int:
        """Cancel every request in flight; each ends with ``Done`` and its usage so far."""
        streams = list(self._streams.values())
        for stream in streams:
            await stream.cancel()
        return len(streams)

    def swap_engine(self, engine: Engine | None) -> None:
        self.engine = engine

    # -- connection ----------------------------------------------------------------------

    async def _connect(self) -> AgentSocket:
        """One connection; ``pool`` is passed only when it is not ``default``, so a transport
        plugin written before pools keeps working."""
        assert self._transport is not None
        url, pool = self.config.management_url, self.config.pool
        if pool == DEFAULT_POOL:
            return await self._transport.connect(url, self.agent_id)
        return await self._transport.connect(url, self.agent_id, pool=pool)

    async def _connection_loop(self) -> None:
        assert self._transport is not None
        failures = 0
        while True:
            try:
                socket = await self._connect()
            except Exception as exc:
                # Say why once (then every minute or so); retrying every second stays quiet.
                level = logging.WARNING if failures % 60 == 0 else logging.DEBUG
                unexpected = not isinstance(exc, ConnectError)
                logger.log(
                    level,
                    "cannot reach the balancer (retrying): %s",
                    exc,
                    exc_info=unexpected and level == logging.WARNING,
                )
                failures += 1
            else:
                failures = 0
                try:
                    await self._serve_connection(socket)
                except Exception:
                    logger.exception("agent connection failed")
                finally:
                    self._set_connected(False)
                    with anyio.CancelScope(shield=True):
                        await socket.aclose()
                logger.info("disconnected from %s", self.config.management_url)
            await anyio.sleep(self.config.reconnect_interval)

    def _set_connected(self, connected: bool) -> None:
        if self.connected != connected:
            self.connected = connected
            self._registrations.notify()

    async def _serve_connection(self, socket: AgentSocket) -> None:
        extensions = socket.extra(AgentSocketAttribute.extensions, frozenset())
        protocol = AgentProtocol(name=self.name, extensions=extensions)
        send, receive = anyio.create_memory_object_stream[AgentToBalancerMessage](float("inf"))
        self._protocol, self._outbox = protocol, send
        self._writer_done = anyio.Event()
        protocol.register(self.status.snapshot())
        self._flush()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write, socket, receive, tg.cancel_scope)
                tg.start_soon(self._report_status, protocol)
                self._set_connected(True)
                logger.info("registered with %s as %s", self.config.management_url, self.agent_id)
                try:
                    async for message in socket:
                        protocol.receive(message)
                        for event in protocol.events():
                            self._handle_event(event, tg)
                        self._flush()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
                tg.cancel_scope.cancel()
        finally:
            if self._protocol is protocol:
                self._protocol, self._outbox = None, None
            send.close()
            if self._drain_ack is not None:
                self._drain_ack.set()  # the new connection registers with slots_total 0

    async def _write(
        self,
        socket: AgentSocket,
        receive: MemoryObjectReceiveStream[AgentToBalancerMessage],
        scope: anyio.CancelScope,
    ) -> None:
        done = self._writer_done
        batching = socket if isinstance(socket, BatchingSocket) else None
        try:
            async with receive:
                while True:
                    # Send what is already queued without a loop pass per message (``async
                    # for`` yields before every item); wait only when the queue is empty.
                    try:
                        message = receive.receive_nowait()
                    except anyio.WouldBlock:
                        message = await receive.receive()
                    if batching is None:
                        await socket.send(message)
                        continue
                    # What else is queued (an engine delivery's other tokens) joins it.
                    batch = [message]
                    while len(batch) < MAX_BATCH:
                        try:
                            batch.append(receive.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    await batching.send_many(batch)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            if done is not None:
                done.set()
        scope.cancel()

    def _flush(self) -> None:
        if self._protocol is None or self._outbox is None:
            return
        for message in self._protocol.outgoing():
            try:
                self._outbox.send_nowait(message)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return

    async def _report_status(self, protocol: AgentProtocol) -> None:
        changes = self.status.changes
        seen = changes.version
        while True:
            with anyio.move_on_after(self.config.status_interval):
                seen = await changes.wait_beyond(seen)
            protocol.report(self.status.snapshot())
            self._flush()
            await anyio.sleep(MIN_REPORT_GAP)  # coalesce bursts such as download progress

    # -- requests ------------------------------------------------------------------------

    def _handle_event(self, event: ProtocolEvent, tg: anyio.abc.TaskGroup) -> None:
        if isinstance(event, DesiredStateReceived):
            self._reconciler.set_desired(event.state)
        elif isinstance(event, RequestReceived):
            assert self._protocol is not None
            self._in_flight += 1
            self.status.update(slots_processing=self._in_flight)
            self._starting.add(event.request_id)
            tg.start_soon(self._serve_request, self._protocol, event)
        elif isinstance(event, StopRequested):
            stream = self._streams.get(event.request_id)
            if stream is not None:
                tg.start_soon(stream.cancel)
            elif event.request_id in self._starting:
                self._stopped_early.add(event.request_id)
        elif isinstance(event, DrainAcknowledged) and self._drain_ack is not None:
            self._drain_ack.set()

    async def _serve_request(self, protocol: AgentProtocol, request: RequestReceived) -> None:
        request_id, payload = request.request_id, request.payload
        try:
            await self._answer(protocol, request)
        except Exception as exc:  # one bad request never takes the connection down
            logger.exception("request %s failed", request_id)
            embedding = isinstance(payload, GenerateEmbeddingBatchParams)
            message = f"agent failed to serve the request: {exc}"
            self._respond(
                protocol,
                request_id,
                EmbeddingError(message) if embedding else SamplerError(message),
            )
        finally:
            self._streams.pop(request_id, None)
            self._starting.discard(request_id)
            self._stopped_early.discard(request_id)
            self._in_flight -= 1
            self.status.update(slots_processing=self._in_flight)
            self._idle_changed.notify()

    def _report_prefixes(self, protocol: AgentProtocol) -> None:
        """Report what the slots hold now, ahead of the reply's last message: a client that
        sends its next turn once the reply ended finds the balancer already knowing."""
        self.status.update(cached_prefixes=self._prefixes.hashes())
        protocol.report(self.status.snapshot())
        self._flush()

    def _respond(self, protocol: AgentProtocol, request_id: str, payload: ResponsePayload) -> None:
        if protocol.respond(request_id, payload) and protocol is self._protocol:
            self._flush()

    async def _answer(self, protocol: AgentProtocol, request: RequestReceived) -> None:
        request_id, payload = request.request_id, request.payload
        engine = self.engine
        if isinstance(payload, GetChatTemplateOverride):
            applied = self._reconciler.applied or self.desired_state
            override = applied.chat_template_override if applied is not None else None
            self._respond(protocol, request_id, ChatTemplateOverrideResponse(override))
            return
        if isinstance(payload, GetModelMetadata):
            metadata = ModelMetadata(metadata=dict(engine.metadata)) if engine is not None else None
            self._respond(protocol, request_id, ModelMetadataResponse(metadata))
            return
        embedding = isinstance(payload, GenerateEmbeddingBatchParams)
        if engine is None and self._reconciler.restarting:
            engine = await self._wait_restarted_engine()
        if engine is None:
            self._respond(
                protocol,
                request_id,
                EmbeddingError(NO_MODEL_MESSAGE) if embedding else SamplerError(NO_MODEL_MESSAGE),
            )
            return
        stream: AnyResultStream
        if isinstance(payload, GenerateEmbeddingBatchParams):
            stream = engine.embed(payload)
        else:
            stream = engine.generate(
                payload, overrides=request.overrides, continuation=request.continuation
            )
        self._streams[request_id] = stream
        self._starting.discard(request_id)
        if request_id in self._stopped_early:
            await stream.cancel()
        # Slot prefixes are tracked and reported only to a balancer whose policy reads them.
        reports_prefixes = AgentSocketExtension.CACHED_PREFIXES in protocol.extensions
        held = self._prefixes.take(payload, owner=engine) if reports_prefixes else None
        if held is not None:
            self.status.update(cached_prefixes=self._prefixes.hashes())
        try:
            async for result in stream:
                if self._prefixes.observe(held, result):
                    self._report_prefixes(protocol)  # before the reply ends: see below
                self._respond(protocol, request_id, result)
        finally:
            if self._prefixes.release(held):
                self.status.update(cached_prefixes=self._prefixes.hashes())
            with anyio.CancelScope(shield=True):
                await stream.aclose()
