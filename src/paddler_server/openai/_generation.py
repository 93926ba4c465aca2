"""Drive one generation through the balancer and hand back plain ``GeneratedTokenResult``s.

Error envelopes, raised ``PaddlerError``s and terminal error variants all become one
``OpenAIError`` carrying the status the client should see; ``Done`` is the last item.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar, cast

from paddler.balancer import Balancer, InferenceStream
from paddler.errors import PaddlerError
from paddler.wire import (
    DEFAULT_POOL,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    Done,
    ErrorEnvelope,
    GeneratedTokenResult,
    ResponseEnvelope,
    SamplingOverrides,
    Timeout,
    TooManyBufferedRequests,
    is_terminal,
)
from paddler_server.openai._errors import (
    OpenAIError,
    error_from_code,
    error_from_paddler,
    error_from_result,
)
from paddler_server.openai._respond import Responder, sse_event

__all__ = ["Params", "Results", "generate", "prepend", "sse_results", "unwrap_envelope"]

logger = logging.getLogger("paddler_server.openai")

Params = ContinueFromConversationHistoryParams | ContinueFromRawPromptParams


@contextlib.asynccontextmanager
async def generate(
    balancer: Balancer,
    params: Params,
    overrides: SamplingOverrides | None,
    *,
    pool: str = DEFAULT_POOL,
) -> AsyncIterator[Results]:
    """``async with generate(...) as results: async for result in results``; leaving early
    (or being cancelled) cancels the request on its agent."""
    try:
        async with balancer.generate(params, overrides=overrides, pool=pool) as stream:
            yield Results(stream)
    except PaddlerError as exc:
        raise error_from_paddler(exc) from exc


def unwrap_envelope(message: Any) -> Any | None:
    """The result a response envelope carries, ``None`` for any other message; an error
    envelope raises its ``OpenAIError``."""
    if isinstance(message, ErrorEnvelope):
        raise error_from_code(message.error.code, message.error.description)
    return message.response if isinstance(message, ResponseEnvelope) else None


class Results:
    """A generation's ``GeneratedTokenResult``s, ``Done`` last; a failure raises its
    ``OpenAIError``. ``ready`` says the next one has already arrived, so a streaming answer
    may hold what it has and write it together with the next (``Responder.send(hold=)``)."""

    def __init__(self, stream: InferenceStream) -> None:
        self._stream = stream
        self._finished = False

    @property
    def ready(self) -> bool:
        return self._stream.ready

    def __aiter__(self) -> Results:
        return self

    async def __anext__(self) -> GeneratedTokenResult:
        if self._finished:
            raise StopAsyncIteration
        try:
            return await self._next()
        except BaseException:
            self._finished = True  # a failure ends the results
            raise

    async def _next(self) -> GeneratedTokenResult:
        try:
            while True:
                try:
                    message = await anext(self._stream)
                except StopAsyncIteration:
                    raise OpenAIError(502, "The generation ended without a final message") from None
                result = unwrap_envelope(message)
                if result is None:
                    continue
                if isinstance(result, Timeout):
                    raise OpenAIError(504, "The request timed out")
                if isinstance(result, TooManyBufferedRequests):
                    raise OpenAIError(503, "Buffered requests overflow")
                if isinstance(result, Done):
                    self._finished = True
                    return result
                token = cast(GeneratedTokenResult, result)
                if is_terminal(token):
                    raise error_from_result(token)
                return token
        except PaddlerError as exc:
            raise error_from_paddler(exc) from exc


T = TypeVar("T")


async def prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """``first`` and then the rest (the first result was awaited before the response began)."""
    yield first
    async for item in rest:
        yield item


@contextlib.asynccontextmanager
async def sse_results(
    results: AsyncIterator[GeneratedTokenResult], responder: Responder
) -> AsyncIterator[AsyncIterator[GeneratedTokenResult]]:
    """Chat-style streaming: the first result is awaited before the SSE response starts (a
    failure then is still a plain HTTP error), a later failure becomes an error event, and
    ``[DONE]`` ends the stream."""
    iterator = aiter(results)
    first = await anext(iterator)
    await responder.start_sse()
    try:
        yield prepend(first, iterator)
    except OpenAIError as exc:
        await responder.send(sse_event(exc.body()))
    await responder.send(b"data: [DONE]\n\n")
