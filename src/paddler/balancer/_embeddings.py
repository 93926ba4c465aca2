"""EmbeddingStream: one batch split into chunks across agents, merged back (spec §4.4)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from types import TracebackType

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paddler._ids import new_id
from paddler._tenancy import current_tenant
from paddler.balancer._config import BalancerConfig
from paddler.balancer._request_metrics import RequestMetrics
from paddler.balancer._slots import SlotDispatcher
from paddler.balancer._stream import InferenceStream, new_request_info
from paddler.errors import EmbeddingsNotEnabled, NoAgents, PaddlerError, StateNotSet
from paddler.wire import (
    AgentDesiredState,
    Embedding,
    EmbeddingDone,
    EmbeddingInputDocument,
    ErrorEnvelope,
    GenerateEmbeddingBatchParams,
    ResponseEnvelope,
)

__all__ = ["EmbeddingStream", "split_documents"]

Item = ResponseEnvelope | ErrorEnvelope
"""What the merged stream yields."""


def split_documents(documents: int, agents: int, cap: int) -> list[int]:
    """Chunk sizes: ``min(docs, max(agents, ceil(docs / cap)))`` contiguous, near-even chunks."""
    if documents <= 0:
        return []
    count = min(documents, max(agents, math.ceil(documents / max(1, cap))))
    base, extra = divmod(documents, count)
    return [base + (1 if index < extra else 0) for index in range(count)]


class EmbeddingStream:
    """``async with balancer.embed(params) as stream: async for item in stream: ...``

    Chunk streams run concurrently in a task group owned by this block, at most one per
    agent at a time: a batch of thousands of documents then holds as many places in the shared
    buffer as a request per agent would, and never fills it for everyone else. Each chunk's
    ``Done`` is dropped and one final ``Embedding: Done`` ends the merged stream. Overflow and
    timeout errors arrive per chunk as ``ErrorEnvelope`` items.

    ``prompt_tokens`` adds up the documents' token counts, which our agents send along with
    each embedding (``document_tokens``, taken off before the item is yielded, so clients see
    Paddler's object); ``counted_documents`` says how many came with one (a Paddler agent
    sends none).
    """

    def __init__(
        self,
        config: BalancerConfig,
        metrics: RequestMetrics,
        slots: SlotDispatcher,
        params: GenerateEmbeddingBatchParams,
        *,
        applicable_state: Callable[[], AgentDesiredState | None],
        headers: dict[str, str],
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._slots = slots
        self._applicable_state = applicable_state
        self._params = params
        self._headers = headers
        self.request_id = new_id()
        self._stack = contextlib.AsyncExitStack()
        self._send: MemoryObjectSendStream[Item] | None = None
        self._receive: MemoryObjectReceiveStream[Item] | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self.prompt_tokens = 0
        self.counted_documents = 0

    @property
    def ready(self) -> bool:
        """The next item has arrived (as ``InferenceStream.ready``)."""
        receive = self._receive
        return receive is not None and receive.statistics().current_buffer_used > 0

    async def __aenter__(self) -> EmbeddingStream:
        try:
            return await self._start()
        except PaddlerError as exc:  # refused before dispatch: counted with its status
            self._metrics.count_request(str(exc.code), current_tenant())
            raise

    async def _start(self) -> EmbeddingStream:
        self._slots.check_accepting("embed")
        state = self._applicable_state()
        if state is None:
            raise StateNotSet("Balancer applicable state is not yet set")
        if not state.inference_parameters.enable_embeddings:
            raise EmbeddingsNotEnabled(
                "Embedding generation is not enabled in the inference parameters"
            )
        agents = len(self._slots.pool)
        if agents == 0:
            raise NoAgents("No agents are currently connected")
        documents = self._params.input_batch
        sizes = split_documents(
            len(documents), agents, state.inference_parameters.embedding_batch_size
        )
        chunks = []
        start = 0
        for size in sizes:
            chunks.append(documents[start : start + size])
            start += size
        self._send, self._receive = anyio.create_memory_object_stream[Item](math.inf)
        self._task_group = await self._stack.enter_async_context(anyio.create_task_group())
        self._task_group.start_soon(self._run_chunks, chunks, anyio.Semaphore(agents))
        return self

    async def _run_chunks(
        self, chunks: list[tuple[EmbeddingInputDocument, ...]], in_flight: anyio.Semaphore
    ) -> None:
        assert self._send is not None
        async with self._send:
            async with anyio.create_task_group() as tg:
                for chunk in chunks:
                    params = GenerateEmbeddingBatchParams(
                        input_batch=tuple(chunk),
                        normalization_method=self._params.normalization_method,
                    )
                    await in_flight.acquire()
                    tg.start_soon(self._run_chunk, params, in_flight)
            await self._send.send(
                ResponseEnvelope(generated_by=None, request_id=new_id(), response=EmbeddingDone())
            )

    async def _run_chunk(
        self, params: GenerateEmbeddingBatchParams, in_flight: anyio.Semaphore
    ) -> None:
        assert self._send is not None
        try:
            info = new_request_info("embed", params, client_request_id=None, headers=self._headers)
            stream = InferenceStream(self._config, self._metrics, self._slots.lease(info), params)
            async with stream:
                async for item in stream:
                    if isinstance(item, ResponseEnvelope) and isinstance(
                        item.response, EmbeddingDone
                    ):
                        continue
                    await self._send.send(self._counted(item))
        finally:
            in_flight.release()

    def _counted(self, item: Item) -> Item:
        """Count an embedding's ``document_tokens`` and take it off the item."""
        if not isinstance(item, ResponseEnvelope) or not isinstance(item.response, Embedding):
            return item
        tokens = item.response.document_tokens
        if tokens is None:
            return item
        self.prompt_tokens += tokens
        self.counted_documents += 1
        return attrs.evolve(item, response=attrs.evolve(item.response, document_tokens=None))

    def __aiter__(self) -> EmbeddingStream:
        return self

    async def __anext__(self) -> Item:
        assert self._receive is not None
        try:
            item: Item = await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        return item

    async def cancel(self) -> None:
        """Stop every chunk; the merged stream then ends."""
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._receive is not None:
            self._receive.close()
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        await self._stack.aclose()
