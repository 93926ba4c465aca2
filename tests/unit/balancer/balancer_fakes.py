"""A scripted agent speaking wire objects over memory streams (no model, no sockets)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import anyio
import attrs
from anyio.streams.stapled import StapledObjectStream

from paddler.balancer import Balancer, InferenceStream
from paddler.wire import (
    DEFAULT_POOL,
    L2,
    AgentRequest,
    AgentResponse,
    AgentStateApplicationStatus,
    ChatTemplate,
    ChatTemplateOverrideResponse,
    ContentToken,
    Done,
    Embedding,
    EmbeddingDone,
    GenerateEmbeddingBatchParams,
    GetChatTemplateOverride,
    PoolingType,
    RegisterAgent,
    SetState,
    SlotAggregatedStatusSnapshot,
    StopRespondingTo,
    TokenUsage,
    UpdateAgentStatus,
    Version,
)


async def until_dispatched(balancer: Balancer, stream: InferenceStream) -> None:
    """Read ``stream``'s first item in a task until its request holds a slot, then stop
    reading (the stream stays open, the agent holding the request)."""
    busy = balancer.statistics().slots_busy
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream.__anext__)
        with anyio.fail_after(5):
            await balancer.wait_slots_busy(busy + 1)
        tg.cancel_scope.cancel()


def status(
    slots_total: int, version: int = 1, desired: int | None = None
) -> SlotAggregatedStatusSnapshot:
    return SlotAggregatedStatusSnapshot(
        desired_slots_total=slots_total if desired is None else desired,
        slots_total=slots_total,
        slots_processing=0,
        download_current=0,
        download_total=0,
        download_indeterminate=False,
        issues=(),
        model_path=None,
        state_application_status=AgentStateApplicationStatus.APPLIED,
        uses_chat_template_override=False,
        version=version,
    )


def usage(content: int) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=3,
        cached_prompt_tokens=0,
        input_image_tokens=0,
        input_audio_tokens=0,
        content_tokens=content,
        reasoning_tokens=0,
        tool_call_tokens=0,
        undeterminable_tokens=0,
    )


class FakeAgent:
    """Registers with ``slots``; answers generation with ``tokens`` then ``Done``.

    With ``hold=True`` it answers nothing until ``release()``; a StopRespondingTo ends the
    request with ``Done`` (unless ``ignore_stop``).
    """

    def __init__(
        self,
        balancer: Balancer,
        agent_id: str,
        slots: int,
        *,
        name: str | None = None,
        tokens: tuple[str, ...] = ("Hel", "lo"),
        hold: bool = False,
        ignore_stop: bool = False,
        busy_at_registration: int = 0,
        count_embedding_tokens: bool = False,
        model_path: str | None = None,
        uses_chat_template_override: bool = False,
        pool: str = DEFAULT_POOL,
    ) -> None:
        self.balancer = balancer
        self.pool = pool
        self.agent_id = agent_id
        self.slots = slots
        self.name = name or agent_id
        self.tokens = tokens
        self.hold = hold
        self.ignore_stop = ignore_stop
        self.busy_at_registration = busy_at_registration
        self.count_embedding_tokens = count_embedding_tokens
        self.model_path = model_path
        self.uses_chat_template_override = uses_chat_template_override
        self.requests: list[AgentRequest] = []
        self.stops: list[str] = []
        self.states: list[SetState] = []
        self.versions: list[Version] = []
        self.pending: dict[str, int] = {}
        self.version = 1
        self._released = anyio.Event()
        self.changed = anyio.Event()
        to_balancer_send, to_balancer_receive = anyio.create_memory_object_stream[Any](math.inf)
        to_agent_send, to_agent_receive = anyio.create_memory_object_stream[Any](math.inf)
        self.balancer_side = StapledObjectStream(to_agent_send, to_balancer_receive)
        self.send_stream = to_balancer_send
        self.receive_stream = to_agent_receive

    def _changed(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        """Return once ``predicate()`` holds, re-checked after each message this agent reads."""
        with anyio.fail_after(5):  # a safety net, not a timing assertion
            while not predicate():
                await self.changed.wait()

    def registration(self) -> RegisterAgent:
        snapshot = attrs.evolve(
            status(self.slots),
            slots_processing=self.busy_at_registration,
            model_path=self.model_path,
            uses_chat_template_override=self.uses_chat_template_override,
        )
        return RegisterAgent(name=self.name, slot_aggregated_status_snapshot=snapshot)

    async def start(self) -> None:
        self.balancer.accept_agent(self.agent_id, self.balancer_side, pool=self.pool)
        await self.send_stream.send(self.registration())

    async def set_slots(self, slots: int, *, processing: int = 0) -> None:
        self.version += 1
        self.slots = slots
        snapshot = attrs.evolve(status(slots, self.version), slots_processing=processing)
        await self.send_stream.send(UpdateAgentStatus(slot_aggregated_status_snapshot=snapshot))

    async def disconnect(self) -> None:
        await self.send_stream.aclose()

    def release(self) -> None:
        self._released.set()

    async def send(self, request_id: str, response: Any) -> None:
        await self.send_stream.send(
            AgentResponse(generated_by=self.name, request_id=request_id, response=response)
        )

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            try:
                async for message in self.receive_stream:
                    if isinstance(message, Version):
                        self.versions.append(message)
                    elif isinstance(message, SetState):
                        self.states.append(message)
                    elif isinstance(message, StopRespondingTo):
                        self.stops.append(message.request_id)
                        if not self.ignore_stop and message.request_id in self.pending:
                            sent = self.pending.pop(message.request_id)
                            await self.send(message.request_id, Done(usage=usage(sent)))
                    elif isinstance(message, AgentRequest):
                        self.requests.append(message)
                        tg.start_soon(self._serve, message)
                    self._changed()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            tg.cancel_scope.cancel()

    async def _serve(self, message: AgentRequest) -> None:
        request = message.request
        if isinstance(request, GetChatTemplateOverride):
            if self.hold:
                await self._released.wait()
            await self.send(message.id, ChatTemplateOverrideResponse(ChatTemplate("T")))
            return
        self.pending[message.id] = 0
        if self.hold:
            await self._released.wait()
        if isinstance(request, GenerateEmbeddingBatchParams):
            for document in request.input_batch:
                await self.send(
                    message.id,
                    Embedding(
                        embedding=(1.0, 0.0),
                        normalization_method=L2(),
                        pooling_type=PoolingType.LAST,
                        source_document_id=document.id,
                        document_tokens=len(document.content.split())
                        if self.count_embedding_tokens
                        else None,
                    ),
                )
            self.pending.pop(message.id, None)
            await self.send(message.id, EmbeddingDone())
            return
        for token in self.tokens:
            if message.id not in self.pending:
                return
            self.pending[message.id] += 1
            await self.send(message.id, ContentToken(token))
        if self.pending.pop(message.id, None) is not None:
            await self.send(message.id, Done(usage=usage(len(self.tokens))))
