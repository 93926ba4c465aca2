"""What callers hold: a request's result stream, and the engine's statistics record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

from paddler.wire import EmbeddingResult, GeneratedTokenResult

T = TypeVar("T")


@attrs.frozen
class EngineStatistics:
    """A snapshot of the engine's counters (cumulative since load)."""

    slots_total: int
    slots_busy: int
    requests_completed: int
    tokens_generated: int
    prompt_tokens: int
    cached_prompt_tokens: int
    evictions: int
    steps: int
    step_seconds: float
    decode_seconds: float
    #: Tokens the images of prompts became (they are part of ``prompt_tokens``).
    input_image_tokens: int = 0

    @property
    def python_share(self) -> float:
        """Share of step time spent outside `llama_decode` (Python, sampling, delivery)."""
        if self.step_seconds <= 0:
            return 0.0
        return 1.0 - self.decode_seconds / self.step_seconds


class ResultStream(Generic[T]):
    """Results of one request; the last one is terminal. Closing it early cancels the request."""

    def __init__(
        self,
        request_id: int,
        receive: MemoryObjectReceiveStream[T],
        cancel: Callable[[int], None],
    ) -> None:
        self._request_id = request_id
        self._receive: MemoryObjectReceiveStream[T] = receive
        self._send_cancel = cancel
        self._ended = False

    def __aiter__(self) -> ResultStream[T]:
        return self

    async def __anext__(self) -> T:
        try:
            # A result already delivered is returned without a loop pass: the results of one
            # delivery then reach the agent's writer together, which sends them as one frame.
            try:
                return self._receive.receive_nowait()
            except anyio.WouldBlock:
                return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._ended = True
            self._receive.close()
            raise StopAsyncIteration from None

    async def cancel(self) -> None:
        """Ask the engine to stop; the stream then ends with `Done` and the usage so far."""
        if not self._ended:
            self._send_cancel(self._request_id)
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._close()
        await anyio.lowlevel.checkpoint()

    def _close(self) -> None:
        if not self._ended:
            self._ended = True
            self._send_cancel(self._request_id)
        self._receive.close()

    def __del__(self) -> None:
        # A consumer that drops the stream without closing it still frees the slot.
        if not getattr(self, "_ended", True):
            self._close()

    async def __aenter__(self) -> ResultStream[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


GenerationStream = ResultStream[GeneratedTokenResult]
EmbeddingResultStream = ResultStream[EmbeddingResult]
