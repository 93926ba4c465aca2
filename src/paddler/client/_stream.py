"""One generation request's stream of ``ResponseEnvelope``s, and its cancellation.

Leaving a stream early — ``break`` out of ``async with``, ``aclose()``, a cancelled
``__anext__``, or just dropping the last reference — tells the server to stop, so the slot is
freed at once instead of when generation would have ended.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self, get_args

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paddler.client.errors import ConnectionDropped, ServerError
from paddler.wire import (
    ContentToken,
    DocumentExceedsBatchSize,
    Done,
    Embedding,
    EmbeddingResult,
    ErrorEnvelope,
    GeneratedTokenResult,
    ResponseEnvelope,
    Timeout,
    TokenUsage,
    TooManyBufferedRequests,
    UndeterminableToken,
    is_embedding_terminal,
    is_terminal,
)

__all__ = ["ResponseStream", "Routed", "is_final", "new_route"]

_EMBEDDING_RESULTS = get_args(EmbeddingResult)

logger = logging.getLogger("paddler.client")

Routed = ResponseEnvelope | ErrorEnvelope | BaseException
"""What the socket's reader hands one request: a message, or the error that ended it."""


def new_route() -> tuple[MemoryObjectSendStream[Routed], MemoryObjectReceiveStream[Routed]]:
    # Unbounded: the reader must never wait on one slow consumer.
    return anyio.create_memory_object_stream[Routed](math.inf)


def is_final(message: ResponseEnvelope) -> bool:
    """Whether this response ends its request (a terminal token or embedding result)."""
    response: Any = message.response
    if isinstance(response, Embedding | DocumentExceedsBatchSize):
        return False
    if isinstance(response, _EMBEDDING_RESULTS):
        return bool(is_embedding_terminal(response))
    return bool(is_terminal(response))


class ResponseStream:
    """Async iterator of one request's ``ResponseEnvelope``s; ends after the terminal one.

    An ``Error`` envelope raises ``ServerError``; a dropped connection raises
    ``ConnectionDropped``. ``cancel()`` stops generation and waits for the agent's final
    ``Done``; ``aclose()`` (also on ``async with`` exit, ``break`` + garbage collection, and
    task cancellation) stops it without waiting.
    """

    def __init__(
        self,
        request_id: str,
        receive: MemoryObjectReceiveStream[Routed],
        stop: Callable[[str], None],
        request_stop: Callable[[str], None] | None = None,
    ) -> None:
        self.request_id = request_id
        self._receive = receive
        self._stop = stop
        self._request_stop = request_stop
        self._finished = False
        self._thread = threading.get_ident()
        self.usage: TokenUsage | None = None

    def __repr__(self) -> str:
        state = "finished" if self._finished else "open"
        return f"<ResponseStream [{self.request_id} {state}]>"

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ResponseEnvelope:
        if self._finished:
            raise StopAsyncIteration
        try:
            item = await self._receive.receive()
        except anyio.EndOfStream:
            self._finish()
            raise ConnectionDropped(self.request_id) from None
        except BaseException:
            # Cancelled (or interrupted) while waiting: the caller has given up on us.
            self._abandon()
            raise
        if isinstance(item, BaseException):
            self._finish()
            raise item
        if isinstance(item, ErrorEnvelope):
            self._finish()
            raise ServerError(item.error.code, item.error.description, request_id=self.request_id)
        if is_final(item):
            self._finish()
            if isinstance(item.response, Done):
                self.usage = item.response.usage
            elif isinstance(item.response, Timeout | TooManyBufferedRequests):
                # Legacy response kinds; today's balancers send Error envelopes instead.
                code = 504 if isinstance(item.response, Timeout) else 503
                raise ServerError(code, type(item.response).__name__, request_id=self.request_id)
        return item

    async def results(self) -> AsyncIterator[GeneratedTokenResult]:
        """Just the ``GeneratedTokenResult``s, without their envelopes."""
        async for envelope in self:
            yield envelope.response  # type: ignore[misc]

    async def text(self) -> str:
        """Read to the end; the answer text, content and undeterminable tokens.

        Undeterminable tokens are a model family's answer before any marker told its
        section; Paddler's OpenAI layer shows them as content too.
        """
        answer = (ContentToken, UndeterminableToken)
        parts = [m.response.text async for m in self if isinstance(m.response, answer)]
        return "".join(parts)

    async def cancel(self, *, grace: float = 5.0) -> TokenUsage | None:
        """Stop generating and wait (up to ``grace`` s) for the agent's final ``Done``.

        Returns the usage so far (``None`` for HTTP streams, which can only be closed).
        """
        if self._finished:
            return self.usage
        if self._request_stop is None:  # no graceful stop over HTTP: closing is the stop
            self._abandon()
            return None
        self._request_stop(self.request_id)
        with anyio.move_on_after(grace):
            try:
                async for _ in self:
                    pass
            except (ServerError, ConnectionDropped):
                pass
        self._abandon()
        return self.usage

    async def aclose(self) -> None:
        """Stop without waiting for confirmation."""
        self._abandon()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._abandon()

    def _finish(self) -> None:
        self._finished = True
        self._receive.close()

    def _abandon(self) -> None:
        if not self._finished:
            self._finished = True
            try:
                self._stop(self.request_id)
            except Exception:
                logger.debug("could not send StopRespondingTo for %s", self.request_id)
        self._receive.close()

    def __del__(self) -> None:
        # Only on the event loop's thread: memory streams and cancel scopes are not thread-safe.
        if not getattr(self, "_finished", True) and self._thread == threading.get_ident():
            self._abandon()
