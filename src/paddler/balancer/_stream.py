"""InferenceStream: one request from buffer to terminal, with the guards of spec §3.5.

The consumer (an HTTP handler, a socket session, a test) owns this object and iterates it;
the agent connection owns the send end of the per-request memory stream and routes the
agent's responses into it. Every failure after ``__aenter__`` becomes an ``ErrorEnvelope`` in
the stream (streaming has started for the client), so the consumer only relays items.
"""

from __future__ import annotations

import logging
import math
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from paddler._tenancy import current_tenant
from paddler.balancer._ids import new_request_id
from paddler.balancer._outcomes import outcome_of
from paddler.balancer._trace import Trace
from paddler.errors import AgentGone, InferenceItemTimeout, PaddlerError, ShuttingDown
from paddler.policies import RequestInfo
from paddler.wire import (
    AgentRequest,
    AgentResponse,
    AgentSocketExtension,
    ContentToken,
    Done,
    EmbeddingDone,
    ErrorBody,
    ErrorEnvelope,
    ReasoningToken,
    ResponseEnvelope,
    SamplingOverrides,
    StopRespondingTo,
    TokenUsage,
    ToolCallToken,
    UndeterminableToken,
    is_terminal_payload,
)

if TYPE_CHECKING:
    from paddler.balancer._balancer import Balancer
    from paddler.balancer._pool import AgentEntry

__all__ = ["OVERFLOW", "ROUTE_LIMIT", "SHUTDOWN", "InferenceStream"]

logger = logging.getLogger("paddler.balancer")

SHUTDOWN: Any = object()
"""Pushed into every route when the balancer shuts down."""

OVERFLOW: Any = object()
"""Pushed into a route whose consumer let ``ROUTE_LIMIT`` items pile up; the request stops."""

ROUTE_LIMIT = 4096
"""Items a request's route may hold before its unread stream is stopped: a consumer that reads
nothing must not make the balancer keep every token an agent sends."""

# Items that are one generated token each (what TTFT, inter-token latency and tokens/s count).
_TOKEN_TYPES = (ContentToken, ReasoningToken, ToolCallToken, UndeterminableToken)
# Tokens for an agent's tokens/s are handed to the metrics in batches at most this often
# (and when the request ends): the gauge averages over seconds, a call per token buys nothing.
_TOKEN_FLUSH_INTERVAL = 0.1


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
        balancer: Balancer,
        request: RequestInfo,
        payload: Any,
        *,
        overrides: SamplingOverrides | None = None,
    ) -> None:
        self._balancer = balancer
        self._info = request
        self._payload = payload
        self._overrides = overrides
        # "" is a client's id too (the inference socket echoes it); only None means none.
        client_id = request.client_request_id
        self.request_id = request.request_id if client_id is None else client_id
        self.agent_request_id = request.request_id
        self.agent_id: str | None = None
        self._entry: AgentEntry | None = None
        self._receive: MemoryObjectReceiveStream[Any] | None = None
        self._acquire_scope: anyio.CancelScope | None = None
        self._started = False
        self._finished = False
        self._released = False
        self._cancelled = False
        self._stop_sent = False
        self._draining = False
        self._created_at = time.monotonic()
        self._last_item_at: float | None = None
        self._unrecorded_tokens = 0
        self._tokens_recorded_at = self._created_at

    def __repr__(self) -> str:
        state = "finished" if self._finished else ("streaming" if self._entry else "pending")
        return f"<InferenceStream [{self.request_id} {state} agent={self.agent_id}]>"

    async def __aenter__(self) -> InferenceStream:
        try:
            self._balancer._check_accepting(self._info.kind)
        except PaddlerError as exc:  # refused before dispatch: counted with its status
            self._finished = True
            self._balancer._count_request(str(exc.code), self._info.tenant)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._entry is not None and not self._released and not self._draining:
            self._send_stop()
            if self._receive is not None and not self._balancer._spawn_drain(self):
                self._release()
            if not self._finished:
                self._finished = True
                self._balancer._count_request("cancelled", self._info.tenant)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def __aiter__(self) -> InferenceStream:
        return self

    async def cancel(self) -> None:
        """Stop this request: buffered → ends now; dispatched → agent ends it with ``Done``."""
        if self._cancelled or self._finished:
            return
        self._cancelled = True
        if self._entry is None:
            if self._acquire_scope is not None:
                self._acquire_scope.cancel()
        else:
            self._send_stop()

    async def __anext__(self) -> ResponseEnvelope | ErrorEnvelope:
        if self._finished:
            raise StopAsyncIteration
        if not self._started:
            self._started = True
            try:
                await self._dispatch()
            except PaddlerError as exc:
                return self._fail(exc, outcome=str(exc.code))
            if self._entry is None:  # cancelled while buffered
                self._finished = True
                self._balancer._count_request("cancelled", self._info.tenant)
                return self._cancelled_terminal()
        return await self._next_item()

    # -- dispatch ------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        if self._cancelled:
            return
        with (
            Trace("dispatch", logger, request_id=self.agent_request_id, kind=self._info.kind),
            anyio.CancelScope() as self._acquire_scope,
        ):
            entry = await self._balancer._acquire(self._info)
        if self._acquire_scope.cancelled_caught:
            return
        send, self._receive = anyio.create_memory_object_stream[Any](math.inf)
        self._entry = entry
        self.agent_id = entry.id
        entry.routes[self.agent_request_id] = send
        try:
            assert entry.outbox is not None
            entry.outbox.send_nowait(
                AgentRequest(
                    id=self.agent_request_id,
                    request=self._payload,
                    sampling_overrides=_overrides_for(entry, self._overrides),
                )
            )
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            self._release()
            raise AgentGone("Agent controller connection closed") from exc
        if self.cancelled:  # cancel() ran while the request was being placed
            self._send_stop()

    # -- streaming -----------------------------------------------------------------------

    async def _next_item(self) -> ResponseEnvelope | ErrorEnvelope:
        assert self._receive is not None and self._entry is not None
        timeout = self._balancer.config.inference_item_timeout
        item: Any = None
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
            self._release()
            return self._fail(AgentGone("Agent controller connection closed"), outcome="502")
        if item is None:
            self._send_stop()
            if not self._balancer._spawn_drain(self):
                self._release()
            millis = round(timeout * 1000)
            return self._fail(
                InferenceItemTimeout(
                    f"Inference timed out after {millis}ms waiting for next token. "
                    "Increase --inference-item-timeout if the model needs longer."
                ),
                outcome="504",
            )
        if item is SHUTDOWN:
            self._send_stop()
            self._release()
            return self._fail(ShuttingDown("balancer is shutting down"), outcome="503")
        if item is OVERFLOW:
            self._release()  # the agent was told to stop when the route overflowed
            return self._fail(
                InferenceItemTimeout(
                    f"The stream was stopped: its reader let {ROUTE_LIMIT} items pile up"
                ),
                outcome="504",
            )
        assert isinstance(item, AgentResponse)
        payload = item.response
        self._observe(payload)
        if is_terminal_payload(payload):
            self._finished = True
            self._release()
            self._balancer._count_request(
                outcome_of(payload, cancelled=self._cancelled), self._info.tenant
            )
        return ResponseEnvelope(
            generated_by=self._entry.name, request_id=self.request_id, response=payload
        )

    def _observe(self, payload: Any) -> None:
        """Feed the metrics as items pass: a token item counts for its agent's tokens/s and is
        observed as TTFT or inter-token latency; ``Done`` adds its usage to the counters."""
        if isinstance(payload, Done):
            self._tell_usage(payload)
        metrics = self._balancer.metrics
        if metrics is not None:
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
        tenant = self._info.tenant
        if tenant is not None:
            usage = done.usage
            tenant.count_tokens(prompt=usage.prompt_tokens, generated=usage.completion_tokens)

    def _record_tokens(self, now: float) -> None:
        metrics = self._balancer.metrics
        if self._unrecorded_tokens and metrics is not None and self.agent_id is not None:
            metrics.record_generated_tokens(self.agent_id, self._unrecorded_tokens)
        self._unrecorded_tokens = 0
        self._tokens_recorded_at = now

    def _fail(self, exc: PaddlerError, *, outcome: str) -> ErrorEnvelope:
        self._finished = True
        self._balancer._count_request(outcome, self._info.tenant)
        return ErrorEnvelope(
            request_id=self.request_id, error=ErrorBody(code=exc.code, description=str(exc))
        )

    def _cancelled_terminal(self) -> ResponseEnvelope:
        payload: Any = EmbeddingDone() if self._info.kind == "embed" else Done(usage=_empty_usage())
        return ResponseEnvelope(generated_by=None, request_id=self.request_id, response=payload)

    # -- cleanup -------------------------------------------------------------------------

    def _send_stop(self) -> None:
        if self._stop_sent or self._entry is None or self._released:
            return
        self._stop_sent = True
        outbox = self._entry.outbox
        if outbox is None:
            return
        try:
            outbox.send_nowait(StopRespondingTo(request_id=self.agent_request_id))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def _release(self) -> None:
        """Free the balancer-side slot exactly once and stop routing to this request."""
        if self._released or self._entry is None:
            return
        self._released = True
        self._record_tokens(time.monotonic())
        send = self._entry.routes.pop(self.agent_request_id, None)
        if send is not None:
            send.close()
        if self._receive is not None:
            self._receive.close()
        self._balancer._release_slot(self._entry.id)

    async def _drain(self) -> None:
        """After a stop: read and drop until the agent's terminal, or one more item timeout."""
        self._draining = True
        try:
            receive = self._receive
            if receive is None:
                return
            timeout = self._balancer.config.inference_item_timeout
            while True:
                with anyio.move_on_after(timeout) as scope:
                    try:
                        item = await receive.receive()
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        return
                if scope.cancelled_caught or item is SHUTDOWN or item is OVERFLOW:
                    return
                if isinstance(item, AgentResponse) and is_terminal_payload(item.response):
                    if isinstance(item.response, Done):  # a stopped request used tokens too
                        self._tell_usage(item.response)
                    return
        finally:
            self._release()


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
    kind: Any, params: Any, *, client_request_id: str | None, headers: Any
) -> RequestInfo:
    return RequestInfo(
        request_id=(
            f"{new_request_id()}:{client_request_id}" if client_request_id else new_request_id()
        ),
        kind=kind,
        params=params,
        headers=dict(headers or {}),
        client_request_id=client_request_id,
        tenant=current_tenant(),
    )
