"""Blocking wrappers: the async clients run on an event loop in a helper thread.

For scripts and notebooks without an event loop. Streams become plain iterators; closing one
(or leaving its ``with`` block) stops the request on the server just as the async one does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.from_thread
from anyio.abc import TaskStatus
from anyio.from_thread import BlockingPortal

from paddler.client._inference import DEFAULT_INFERENCE_URL, InferenceClient
from paddler.client._management import DEFAULT_MANAGEMENT_URL, ManagementClient
from paddler.client._stream import ResponseStream
from paddler.wire import (
    DEFAULT_POOL,
    AgentControllerPoolSnapshot,
    AgentDesiredState,
    BalancerDesiredState,
    BufferedRequestsSnapshot,
    ChatTemplate,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
    ModelMetadata,
    PoolListSnapshot,
    ResponseEnvelope,
    TokenUsage,
)

__all__ = ["SyncInferenceClient", "SyncManagementClient", "SyncResponseStream"]

T = TypeVar("T")


class _PortalOwner:
    """Owns a blocking portal (an event loop thread) for as long as the client is open."""

    def __init__(self) -> None:
        self._portal_cm: AbstractContextManager[BlockingPortal] = (
            anyio.from_thread.start_blocking_portal()
        )
        self._portal = self._portal_cm.__enter__()

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        result: T = self._portal.call(fn, *args)
        return result

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._portal.call(iterator.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                self._portal.call(aclose)

    def _close_portal(self) -> None:
        self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class SyncResponseStream:
    """A blocking ``ResponseStream``."""

    def __init__(self, owner: _PortalOwner, stream: ResponseStream) -> None:
        self._owner = owner
        self._stream = stream
        self.request_id = stream.request_id

    def __iter__(self) -> Iterator[ResponseEnvelope]:
        return self

    def __next__(self) -> ResponseEnvelope:
        try:
            return self._owner._call(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def usage(self) -> TokenUsage | None:
        return self._stream.usage

    def text(self) -> str:
        return self._owner._call(self._stream.text)

    def cancel(self, *, grace: float = 5.0) -> TokenUsage | None:
        return self._owner._call(lambda: self._stream.cancel(grace=grace))

    def close(self) -> None:
        self._owner._call(self._stream.aclose)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Stop an unfinished request from this thread through the portal (the async stream's
        # own finalizer must not touch the event loop from a foreign thread).
        try:
            self.close()
        except Exception:
            pass


class SyncInferenceClient(_PortalOwner):
    """``InferenceClient`` without ``async``: ``with SyncInferenceClient(url) as client``."""

    def __init__(
        self,
        base_url: str = DEFAULT_INFERENCE_URL,
        *,
        timeout: float = 300.0,
        api_key: str | None = None,
        pool: str | None = None,
    ) -> None:
        super().__init__()
        started: tuple[InferenceClient, anyio.Event] = self._portal.start_task(
            self._host, base_url, timeout, api_key, pool
        )[1]
        self._client, self._stop_event = started

    @staticmethod
    async def _host(
        base_url: str,
        http_timeout: float,
        api_key: str | None,
        pool: str | None,
        *,
        task_status: TaskStatus[tuple[InferenceClient, anyio.Event]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        stop = anyio.Event()
        async with InferenceClient(
            base_url, timeout=http_timeout, api_key=api_key, pool=pool
        ) as client:
            task_status.started((client, stop))
            await stop.wait()

    def close(self) -> None:
        if not self._stop_event.is_set():
            self._portal.call(self._stop_event.set)
            self._close_portal()

    def health(self) -> str:
        return self._call(self._client.health)

    def continue_from_conversation_history(
        self, params: ContinueFromConversationHistoryParams
    ) -> SyncResponseStream:
        stream = self._call(self._client.continue_from_conversation_history, params)
        return SyncResponseStream(self, stream)

    def continue_from_raw_prompt(self, params: ContinueFromRawPromptParams) -> SyncResponseStream:
        return SyncResponseStream(self, self._call(self._client.continue_from_raw_prompt, params))

    def post_continue_from_conversation_history(
        self, params: ContinueFromConversationHistoryParams
    ) -> SyncResponseStream:
        stream = self._call(self._client.post_continue_from_conversation_history, params)
        return SyncResponseStream(self, stream)

    def generate_embedding_batch(self, params: GenerateEmbeddingBatchParams) -> SyncResponseStream:
        return SyncResponseStream(self, self._call(self._client.generate_embedding_batch, params))


class SyncManagementClient(_PortalOwner):
    """``ManagementClient`` without ``async``."""

    def __init__(
        self,
        base_url: str = DEFAULT_MANAGEMENT_URL,
        *,
        timeout: float = 30.0,
        api_key: str | None = None,
    ) -> None:
        super().__init__()
        self._client = ManagementClient(base_url, timeout=timeout, api_key=api_key)
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._call(self._client.aclose)
            self._close_portal()

    def health(self) -> str:
        return self._call(self._client.health)

    def agents(self, pool: str | None = None) -> AgentControllerPoolSnapshot:
        return self._call(self._client.agents, pool)

    def agents_stream(self, pool: str | None = None) -> Iterator[AgentControllerPoolSnapshot]:
        return self._iterate(self._client.agents_stream(pool))

    def buffered_requests(self, pool: str | None = None) -> BufferedRequestsSnapshot:
        return self._call(self._client.buffered_requests, pool)

    def buffered_requests_stream(
        self, pool: str | None = None
    ) -> Iterator[BufferedRequestsSnapshot]:
        return self._iterate(self._client.buffered_requests_stream(pool))

    def pools(self) -> PoolListSnapshot:
        return self._call(self._client.pools)

    def pools_stream(self) -> Iterator[PoolListSnapshot]:
        return self._iterate(self._client.pools_stream())

    def get_desired_state(self, pool: str = DEFAULT_POOL) -> BalancerDesiredState:
        return self._call(self._client.get_desired_state, pool)

    def set_desired_state(self, state: BalancerDesiredState, pool: str = DEFAULT_POOL) -> None:
        self._call(self._client.set_desired_state, state, pool)

    def balancer_desired_state(self) -> BalancerDesiredState:
        return self._call(self._client.balancer_desired_state)

    def put_balancer_desired_state(self, state: BalancerDesiredState) -> None:
        self._call(self._client.put_balancer_desired_state, state)

    def balancer_applicable_state(self) -> AgentDesiredState | None:
        return self._call(self._client.balancer_applicable_state)

    def chat_template_override(self, agent_id: str) -> ChatTemplate | None:
        return self._call(self._client.chat_template_override, agent_id)

    def model_metadata(self, agent_id: str) -> ModelMetadata | None:
        return self._call(self._client.model_metadata, agent_id)

    def metrics(self) -> str:
        return self._call(self._client.metrics)
