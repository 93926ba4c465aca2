"""InferenceStream: one request from buffer to terminal, with the guards of spec §3.5.

The consumer (an HTTP handler, a socket session, a test) owns this object and iterates it;
the agent's ``AgentConnection`` routes the agent's responses into the request's route. Every
failure after ``__aenter__`` becomes an ``ErrorEnvelope`` in the stream (streaming has started
for the client), so the consumer only relays items.

The stream knows the balancer only through its ``SlotLease`` (the slot it holds, freed exactly
once), the config (timeouts) and the metrics it reports to.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from types import TracebackType

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

from paddler._ids import new_id
from paddler._tenancy import current_tenant
from paddler.balancer._config import BalancerConfig
from paddler.balancer._connection import ROUTE_LIMIT, AgentConnection, RouteEnd, RouteItem
from paddler.balancer._outcomes import outcome_of
from paddler.balancer._pool import AgentEntry
from paddler.balancer._recovery import (
    MAX_RECOVERIES,
    agent_failed,
    opted_out,
    resumable_request,
)
from paddler.balancer._request_metrics import RequestMetrics
from paddler.balancer._slots import SlotLease
from paddler.balancer._trace import Trace
from paddler.errors import AgentGone, InferenceItemTimeout, PaddlerError, ShuttingDown
from paddler.policies import RequestInfo, RequestKind, RequestParams
from paddler.wire import (
    AgentRequest,
    AgentSocketExtension,
    ContentToken,
    Done,
    EmbeddingDone,
    ErrorBody,
    ErrorEnvelope,
    ReasoningToken,
    ResponseEnvelope,
    ResponsePayload,
    SamplerError,
    SamplingOverrides,
    TokenUsage,
    ToolCallToken,
    UndeterminableToken,
    is_terminal_payload,
)

__all__ = ["InferenceStream", "StreamState", "new_request_info"]

logger = logging.getLogger("paddler.balancer")

# Items that are one generated token each (what TTFT, inter-token latency and tokens/s count).
_TOKEN_TYPES = (ContentToken, ReasoningToken, ToolCallToken, UndeterminableToken)
# Tokens for an agent's tokens/s are handed to the metrics in batches at most this often
# (and when the request ends): the gauge averages over seconds, a call per token buys nothing.
_TOKEN_FLUSH_INTERVAL = 0.1


class StreamState(enum.Enum):
    #: Made by ``generate()``; not entered yet.
    NEW = "new"
    #: Entered; the first ``__anext__`` places the request.
    OPEN = "open"
    #: Waiting for a slot (in the buffer, or being claimed).
    WAITING = "waiting"
    #: Sent to an agent; its items flow.
    STREAMING = "streaming"
    #: ``cancel()`` asked the agent to stop; its terminal (``Done``) still comes through.
    STOPPING = "stopping"
    #: The consumer has seen the end (a terminal, an error, or it left the block). A slot
    #: still held is freed by the lease, after a drain when the agent was told to stop.
    FINISHED = "finished"


def _empty_usage() -> TokenUsage:
    return TokenUsage(
        prompt_tokens=0,
        cached_prompt_tokens=0,
        input_image_tokens=0,
        input_audio_tokens=0,
        content_tokens=0,
        reasoning_tokens=0,
        tool_call_tokens=0,
        undeterminable_tokens=0,
    )


class InferenceStream:
    """``async with balancer.generate(params) as stream: async for item in stream: ...``

    Items are ``ResponseEnvelope`` / ``ErrorEnvelope``; iteration stops after a terminal.
    ``await stream.cancel()`` asks the agent to stop; the stream then ends with ``Done``
    (the usage so far). Leaving the block early cancels too, and the slot counts as busy until
    the agent confirms (the drain runs in the balancer's task group).
    """

    def __init__(
        self,
        config: BalancerConfig,
        metrics: RequestMetrics,
        lease: SlotLease,
        payload: RequestParams,
        *,
        overrides: SamplingOverrides | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._lease = lease
        self._payload = payload
        self._overrides = overrides
        request = lease.request
        # "" is a client's id too (the inference socket echoes it); only None means none.
        client_id = request.client_request_id
        self.request_id = request.request_id if client_id is None else client_id
        self.agent_request_id = request.request_id
        self.agent_id: str | None = None
        self._state = StreamState.NEW
        #: The client asked to stop (``cancel()``): a ``Done`` then counts as cancelled.
        self._cancelled = False
        self._agent_name: str | None = None
        self._connection: AgentConnection | None = None
        self._receive: MemoryObjectReceiveStream[RouteItem] | None = None
        self._acquire_scope: anyio.CancelScope | None = None
        self._created_at = time.monotonic()
        self._last_item_at: float | None = None
        self._unrecorded_tokens = 0
        self._tokens_recorded_at = self._created_at
        # Recovery (``_recovery.py``): re-dispatch on a lost agent, resume a plain answer.
        self._recovering = (
            config.stream_recovery and request.kind == "generate" and not opted_out(request.headers)
        )
        self._resumable = self._recovering and resumable_request(payload, overrides)
        #: Items the client was given (any: a retry is possible only before the first).
        self._relayed = 0
        #: The content streamed so far, for a resume (kept only while one is possible).
        self._streamed: list[str] = []
        #: Re-dispatches so far (at most ``MAX_RECOVERIES``).
        self.recoveries = 0

    def __repr__(self) -> str:
        state = self._state.name.lower()
        return f"<InferenceStream [{self.request_id} {state} agent={self.agent_id}]>"

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def request(self) -> RequestInfo:
        return self._lease.request

    @property
    def ready(self) -> bool:
        """The next item has arrived, so ``__anext__`` returns without waiting: a writer may
        hold what it has and send it together with the next (one socket write, one wake of
        the client, for all the tokens one agent frame batch brought)."""
        receive = self._receive
        return (
            self._state in (StreamState.STREAMING, StreamState.STOPPING)
            and receive is not None
            and receive.statistics().current_buffer_used > 0
        )

    async def __aenter__(self) -> InferenceStream:
        if self._state is not StreamState.NEW:
            raise RuntimeError(
                f"An InferenceStream is entered once (this one is {self._state.name.lower()})."
            )
        try:
            self._lease.open()
        except PaddlerError as exc:  # refused before dispatch: counted with its status
            self._state = StreamState.FINISHED
            self._count(str(exc.code))
            raise
        self._state = StreamState.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        if state in (StreamState.STREAMING, StreamState.STOPPING):  # left before the end
            self._stop()
            self._state = StreamState.FINISHED
            self._drain_then_release()
            self._count("cancelled")
        elif state is StreamState.WAITING:  # its task was cancelled while it waited
            self._state = StreamState.FINISHED
            self._count("cancelled")
        self._lease.close()

    def __aiter__(self) -> InferenceStream:
        return self

    async def cancel(self) -> None:
        """Stop this request: buffered → ends now; dispatched → agent ends it with ``Done``."""
        if self._cancelled or self._state is StreamState.FINISHED:
            return
        self._cancelled = True
        if self._state is StreamState.WAITING:
            if self._acquire_scope is not None:
                self._acquire_scope.cancel()
        else:
            self._stop()

    async def __anext__(self) -> ResponseEnvelope | ErrorEnvelope:
        state = self._state
        if state is StreamState.FINISHED:
            raise StopAsyncIteration
        if state is StreamState.NEW:
            raise RuntimeError("Enter the stream first: async with balancer.generate(...) as s")
        if state is StreamState.OPEN:
            try:
                placed = await self._dispatch()
            except AgentGone as exc:  # the chosen agent went before the request reached it
                return await self._recover_or_fail(exc, outcome="502")
            except PaddlerError as exc:
                return self._fail(exc, outcome=str(exc.code))
            if not placed:  # cancelled while buffered
                self._state = StreamState.FINISHED
                self._count("cancelled")
                return self._cancelled_terminal()
        return await self._next_item()

    # -- dispatch ------------------------------------------------------------------------

    async def _dispatch(self) -> bool:
        """Claim a slot and send the request; False when it was cancelled first."""
        if self._cancelled:
            return False
        self._state = StreamState.WAITING
        request = self._lease.request
        with (
            Trace("dispatch", logger, request_id=self.agent_request_id, kind=request.kind),
            anyio.CancelScope() as self._acquire_scope,
        ):
            entry = await self._lease.acquire()
        if self._acquire_scope.cancelled_caught:
            return False
        self._acquire_scope = None
        connection = entry.connection
        if connection is None or connection.closed:
            self._lease.release()
            raise AgentGone("Agent controller connection closed")
        self.agent_id, self._agent_name = entry.id, entry.name
        self._connection = connection
        self._receive = connection.open_route(self.agent_request_id)
        message = AgentRequest(
            id=self.agent_request_id,
            request=self._payload,
            sampling_overrides=_overrides_for(entry, self._overrides),
            continuation="".join(self._streamed) if self._relayed else None,
        )
        if not connection.send_nowait(message):
            self._free()
            raise AgentGone("Agent controller connection closed")
        self._state = StreamState.STREAMING
        if self.cancelled:  # cancel() ran while the request was being placed
            self._stop()
        return True

    # -- streaming -----------------------------------------------------------------------

    async def _next_item(self) -> ResponseEnvelope | ErrorEnvelope:
        assert self._receive is not None
        timeout = self._config.inference_item_timeout
        item: RouteItem | None = None
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                # Fast path: an item is already queued. No cancel scope and no yield per token
                # (a yield here costs a whole event-loop pass per token); the consumer's send
                # is where the task yields when the client socket applies back-pressure.
                item = self._receive.receive_nowait()
            except anyio.WouldBlock:
                with anyio.move_on_after(timeout):
                    item = await self._receive.receive()
        except anyio.EndOfStream:
            return await self._recover_or_fail(
                AgentGone("Agent controller connection closed"), outcome="502"
            )
        if item is None:
            self._stop()
            self._state = StreamState.FINISHED
            self._drain_then_release()
            millis = round(timeout * 1000)
            return self._fail(
                InferenceItemTimeout(
                    f"Inference timed out after {millis}ms waiting for next token. "
                    "Increase --inference-item-timeout if the model needs longer."
                ),
                outcome="504",
            )
        if item is RouteEnd.SHUTDOWN:
            self._stop()
            self._free()
            return self._fail(ShuttingDown("balancer is shutting down"), outcome="503")
        if item is RouteEnd.OVERFLOW:
            self._free()  # the agent was told to stop when the route overflowed
            return self._fail(
                InferenceItemTimeout(
                    f"The stream was stopped: its reader let {ROUTE_LIMIT} items pile up"
                ),
                outcome="504",
            )
        assert not isinstance(item, RouteEnd)
        payload = item.response
        if self._recovering:
            if (
                agent_failed(payload)
                and self._may_recover()
                and self._lease.can_be_served(self._renewed_request())
            ):
                assert isinstance(payload, SamplerError)
                return await self._recover_or_fail(AgentGone(payload.message), outcome="502")
            self._note(payload)
        if self._metrics.observing:
            self._observe(payload)
        if is_terminal_payload(payload):
            self._state = StreamState.FINISHED
            self._free()
            if isinstance(payload, Done):
                self._tell_usage(payload)
            self._count(outcome_of(payload, cancelled=self._cancelled))
        return ResponseEnvelope(
            generated_by=self._agent_name, request_id=self.request_id, response=payload
        )

    # -- recovery ------------------------------------------------------------------------

    def _note(self, payload: ResponsePayload) -> None:
        """Keep what a resume needs: the content streamed so far (any other item, such as
        reasoning or a tool call, makes the answer one that does not resume)."""
        if is_terminal_payload(payload):
            return
        self._relayed += 1
        if not self._resumable:
            return
        if isinstance(payload, ContentToken):
            self._streamed.append(payload.text)
        else:
            self._resumable = False
            self._streamed.clear()

    def _may_recover(self) -> bool:
        return (
            self._recovering
            and not self._cancelled
            and self.recoveries < MAX_RECOVERIES
            and (not self._relayed or self._resumable)
        )

    async def _recover_or_fail(
        self, exc: PaddlerError, *, outcome: str
    ) -> ResponseEnvelope | ErrorEnvelope:
        """The agent is lost (or failed as an agent): dispatch the request again elsewhere,
        with the streamed text as its continuation once tokens went out; else the error."""
        while True:
            self._free()
            if not (self._may_recover() and self._renew()):
                return self._fail(self._unrecovered(exc), outcome=outcome)
            try:
                placed = await self._dispatch()
            except AgentGone as again:
                exc = again
                continue
            except PaddlerError as other:
                return self._fail(other, outcome=str(other.code))
            if not placed:  # cancelled while it waited for another agent
                self._state = StreamState.FINISHED
                self._count("cancelled")
                return self._cancelled_terminal()
            return await self._next_item()

    def _renew(self) -> bool:
        """A new lease for the same request, away from the agents it failed on; False when
        no agent of the pool could take it (then the client gets the error at once)."""
        renewed = self._renewed_request()
        if not self._lease.can_be_served(renewed):
            return False
        self._lease = self._lease.renew(renewed)
        self.recoveries += 1
        self._metrics.count_recovery("resumed" if self._relayed else "retried")
        logger.info(
            "request %s %s after agent %s was lost or failed (%d of %d)",
            self.agent_request_id,
            "resumed" if self._relayed else "retried",
            self.agent_id,
            self.recoveries,
            MAX_RECOVERIES,
        )
        self.agent_id = self._agent_name = None
        self._connection = None
        self._receive = None
        self._state = StreamState.OPEN
        return True

    def _renewed_request(self) -> RequestInfo:
        """The request, excluding the agent it is on; a resume also needs ``continuation``."""
        request = self._lease.request
        excluded = request.excluded_agents
        if self.agent_id is not None:
            excluded = excluded | {self.agent_id}
        required = request.required_extensions
        if self._relayed:
            required = required | {AgentSocketExtension.CONTINUATION}
        return attrs.evolve(request, excluded_agents=excluded, required_extensions=required)

    def _unrecovered(self, exc: PaddlerError) -> PaddlerError:
        """The error the client gets, saying why the request was not recovered."""
        if not self._recovering or self._cancelled:
            return exc
        if self.recoveries >= MAX_RECOVERIES:
            return AgentGone(f"{exc} (the request was dispatched {self.recoveries + 1} times)")
        if self._relayed and not self._resumable:
            return AgentGone(
                f"{exc} after the answer began; an answer with reasoning, tool calls or a "
                "grammar is not resumed on another agent"
            )
        return exc

    def _observe(self, payload: ResponsePayload) -> None:
        """Feed the metrics as items pass: a token item counts for its agent's tokens/s and is
        observed as TTFT or inter-token latency; ``Done`` adds its usage to the counters."""
        metrics = self._metrics
        now = time.monotonic()
        if isinstance(payload, Done):
            usage = payload.usage
            metrics.count_tokens(
                prompt=usage.prompt_tokens,
                cached_prompt=usage.cached_prompt_tokens,
                generated=usage.completion_tokens,
            )
        elif isinstance(payload, _TOKEN_TYPES):
            self._unrecorded_tokens += 1
            if now - self._tokens_recorded_at >= _TOKEN_FLUSH_INTERVAL:
                self._record_tokens(now)
            if self._last_item_at is None:
                metrics.observe_time_to_first_token(now - self._created_at)
            else:
                metrics.observe_inter_token_latency(now - self._last_item_at)
            self._last_item_at = now

    def _tell_usage(self, done: Done) -> None:
        """The request's tenant hears its usage (what a tokens-per-minute limit counts)."""
        tenant = self._lease.request.tenant
        if tenant is not None:
            usage = done.usage
            tenant.count_tokens(prompt=usage.prompt_tokens, generated=usage.completion_tokens)

    def _record_tokens(self, now: float) -> None:
        if self._unrecorded_tokens and self.agent_id is not None:
            self._metrics.record_generated_tokens(self.agent_id, self._unrecorded_tokens)
        self._unrecorded_tokens = 0
        self._tokens_recorded_at = now

    def _count(self, outcome: str) -> None:
        if self.recoveries and outcome not in ("ok", "cancelled"):
            self._metrics.count_recovery("failed_after_retry")
        self._metrics.count_request(outcome, self._lease.request.tenant)

    def _fail(self, exc: PaddlerError, *, outcome: str) -> ErrorEnvelope:
        self._state = StreamState.FINISHED
        self._count(outcome)
        return ErrorEnvelope(
            request_id=self.request_id, error=ErrorBody(code=exc.code, description=str(exc))
        )

    def _cancelled_terminal(self) -> ResponseEnvelope:
        payload: Done | EmbeddingDone = (
            EmbeddingDone() if self._lease.request.kind == "embed" else Done(usage=_empty_usage())
        )
        return ResponseEnvelope(generated_by=None, request_id=self.request_id, response=payload)

    # -- cleanup -------------------------------------------------------------------------

    def _stop(self) -> None:
        """Tell the agent to stop (once: only a streaming request is told)."""
        if self._state is StreamState.STREAMING and self._connection is not None:
            self._state = StreamState.STOPPING
            self._connection.stop(self.agent_request_id)

    def _close_route(self) -> None:
        """Stop routing to this request (what the agent still sends is dropped)."""
        self._record_tokens(time.monotonic())
        if self._connection is not None:
            self._connection.close_route(self.agent_request_id)
        if self._receive is not None:
            self._receive.close()

    def _drain_then_release(self) -> None:
        """The agent was told to stop: hold the slot until its terminal (or one more item
        timeout) in the background, or free it now when the balancer is closing."""
        if not self._lease.release_after(self._drain):
            self._close_route()

    def _free(self) -> None:
        """Close the route and give the slot back (the lease frees it exactly once)."""
        self._close_route()
        self._lease.release()

    async def _drain(self) -> None:
        """After a stop: read and drop until the agent's terminal, or one more item timeout.

        The lease holds the slot until this returns (``SlotLease.release_after``).
        """
        try:
            receive = self._receive
            if receive is None:
                return
            timeout = self._config.inference_item_timeout
            while True:
                with anyio.move_on_after(timeout) as scope:
                    try:
                        item = await receive.receive()
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        return
                if scope.cancelled_caught or isinstance(item, RouteEnd):
                    return
                if is_terminal_payload(item.response):
                    if isinstance(item.response, Done):  # a stopped request used tokens too
                        self._tell_usage(item.response)
                    return
        finally:
            self._close_route()


def _overrides_for(
    entry: AgentEntry, overrides: SamplingOverrides | None
) -> SamplingOverrides | None:
    """The overrides, for an agent that understands them; None for a Paddler 4.1 agent.

    A Rust agent rejects a ``Request`` with a field it does not know and never answers, so the
    request would hang until the item timeout. Such an agent serves the request with the
    cluster's sampling parameters instead, which is what Paddler's own OpenAI layer does with
    these fields (it ignores them); the first time, this is logged for that agent.
    """
    if overrides is None or AgentSocketExtension.SAMPLING_OVERRIDES in entry.extensions:
        return overrides
    if not entry.overrides_dropped_logged:
        entry.overrides_dropped_logged = True
        logger.warning(
            "agent %s does not announce the sampling_overrides extension (a Paddler agent?): "
            "requests it serves use the cluster's sampling parameters; per-request "
            "temperature, top_p, seed, stop and penalties are ignored there",
            entry.name or entry.id,
        )
    return None


def new_request_info(
    kind: RequestKind,
    params: RequestParams,
    *,
    client_request_id: str | None,
    headers: Mapping[str, str] | None,
) -> RequestInfo:
    """A request's info, with an id unique across clients and the tenant of this context."""
    return RequestInfo(
        request_id=(f"{new_id()}:{client_request_id}" if client_request_id else new_id()),
        kind=kind,
        params=params,
        headers=dict(headers or {}),
        client_request_id=client_request_id,
        tenant=current_tenant(),
    )
