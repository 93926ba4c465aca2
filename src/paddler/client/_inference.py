"""``InferenceClient``: generation over the inference WebSocket or NDJSON, and embeddings."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from paddler._ids import new_id
from paddler.client._http import HttpClientBase, check_status, json_headers, map_httpx_errors
from paddler.client._socket import InferenceSocket
from paddler.client._stream import ResponseStream, Routed, is_final, new_route
from paddler.client._urls import inference_socket_url
from paddler.client.errors import ClientError, ResponseDecodeError
from paddler.wire import (
    POOL_HEADER,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    ErrorEnvelope,
    GenerateEmbeddingBatchParams,
    InferenceClientMessage,
    InferenceClientNotification,
    ResponseEnvelope,
    WireError,
    converter,
    validate_pool_name,
)

__all__ = ["DEFAULT_INFERENCE_URL", "InferenceClient"]

logger = logging.getLogger("paddler.client")

DEFAULT_INFERENCE_URL = "http://127.0.0.1:8061"


def _unwrapped(group: BaseExceptionGroup, raised: BaseException | None) -> BaseException:
    """What leaves ``async with``: the block's own exception as it was raised (``except
    HTTPStatusError`` around the block catches it), else a background task's single error;
    only several unrelated errors stay a group."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    if raised is not None and any(leaf is raised for leaf in leaves):
        return raised
    return leaves[0] if len(leaves) == 1 else group


class InferenceClient(HttpClientBase):
    """Talks to a balancer's inference service (``--inference-addr``).

    Use it as ``async with InferenceClient(url) as client``: the client owns the background
    tasks that read the WebSocket and the NDJSON streams. Each request returns an
    ``ResponseStream`` of ``paddler.wire.ResponseEnvelope``s.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_INFERENCE_URL,
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 300.0,
        api_key: str | None = None,
        pool: str | None = None,
    ) -> None:
        """:param api_key: one of the balancer's ``--api-key``s, sent as ``Authorization:
        Bearer`` on every request and on the WebSocket handshake.
        :param pool: the model pool every request of this client goes to, sent as the
            ``Paddler-Pool`` header (``None``: no header, the ``default`` pool). A name off
            the pool-name rule raises ``paddler.errors.InvalidRequest`` here."""
        super().__init__(base_url, http_client, timeout)
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        if pool is not None:
            self._headers[POOL_HEADER] = validate_pool_name(pool)
        self._tg: TaskGroup | None = None
        self._socket: InferenceSocket | None = None

    def __repr__(self) -> str:
        in_flight = self._socket.in_flight if self._socket else 0
        return f"<InferenceClient [{self.base_url} | {in_flight} on the socket]>"

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise RuntimeError("InferenceClient is already open; use one `async with` per client")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg, self._tg = self._tg, None
        assert tg is not None
        try:
            await self.aclose()
        finally:
            tg.cancel_scope.cancel()
            try:
                await tg.__aexit__(exc_type, exc, tb)
            except BaseExceptionGroup as group:
                plain = _unwrapped(group, exc)
                if plain is group:
                    raise
                context = plain.__context__
                try:
                    raise plain
                finally:
                    plain.__context__ = context  # not "during handling of the group"

    async def aclose(self) -> None:
        if self._socket is not None:
            await self._socket.aclose()
        await super().aclose()

    def _task_group(self) -> TaskGroup:
        if self._tg is None:
            raise RuntimeError(
                "streaming needs the client's background tasks: "
                "use `async with InferenceClient(...)`"
            )
        return self._tg

    @property
    def socket(self) -> InferenceSocket:
        if self._socket is None:
            self._socket = InferenceSocket(
                inference_socket_url(self.base_url), self._task_group(), headers=self._headers
            )
        return self._socket

    @property
    def token_generation_enabled(self) -> bool | None:
        """What the socket last heard: ``False`` in embeddings mode, ``None`` if not yet known."""
        return self._socket.token_generation_enabled if self._socket else None

    async def health(self) -> str:
        with map_httpx_errors():
            response = await self._http.get(f"{self.base_url}/health")
        await check_status(response)
        return response.text

    # --- over the WebSocket -------------------------------------------------------------

    async def continue_from_conversation_history(
        self, params: ContinueFromConversationHistoryParams
    ) -> ResponseStream:
        """Generate over the shared WebSocket; cancellable at any point."""
        return await self._over_socket(params)

    async def continue_from_raw_prompt(self, params: ContinueFromRawPromptParams) -> ResponseStream:
        return await self._over_socket(params)

    async def _over_socket(
        self, params: ContinueFromConversationHistoryParams | ContinueFromRawPromptParams
    ) -> ResponseStream:
        socket = self.socket
        request_id = new_id()
        send, receive = new_route()
        await socket.submit(request_id, params, send)
        return ResponseStream(
            request_id, receive, socket.stop, lambda rid: socket.stop(rid, keep_route=True)
        )

    async def notifications(self) -> AsyncIterator[InferenceClientNotification]:
        """``TokenGenerationDisabled``/``Enabled`` as the cluster switches modes."""
        async for notification in self.socket.notifications():
            yield notification

    # --- over HTTP (NDJSON) -------------------------------------------------------------

    async def post_continue_from_conversation_history(
        self, params: ContinueFromConversationHistoryParams
    ) -> ResponseStream:
        """The same, over one NDJSON response; stopping closes the response."""
        return await self._over_http("continue_from_conversation_history", params)

    async def post_continue_from_raw_prompt(
        self, params: ContinueFromRawPromptParams
    ) -> ResponseStream:
        return await self._over_http("continue_from_raw_prompt", params)

    async def generate_embedding_batch(
        self, params: GenerateEmbeddingBatchParams
    ) -> ResponseStream:
        """Embeddings over NDJSON. Per-chunk failures arrive as ``ServerError`` from the
        iterator only after the embeddings that did succeed; the last item is ``EmbeddingDone``."""
        return await self._over_http("generate_embedding_batch", params, inline_errors=True)

    async def _over_http(
        self, path: str, params: Any, *, inline_errors: bool = False
    ) -> ResponseStream:
        tg = self._task_group()
        send, receive = new_route()
        request = self._http.build_request(
            "POST",
            f"{self.base_url}/api/v1/{path}",
            content=converter.dumps(params),
            headers={**self._headers, **json_headers()},
        )
        with map_httpx_errors():
            response = await self._http.send(request, stream=True)
        try:
            await check_status(response)
        except ClientError:
            await response.aclose()
            raise
        scope = anyio.CancelScope()
        request_id = new_id()
        tg.start_soon(self._pump, response, send, scope, request_id, inline_errors)
        return ResponseStream(request_id, receive, lambda _rid: scope.cancel())

    @staticmethod
    async def _pump(
        response: httpx.Response,
        send: MemoryObjectSendStream[Routed],
        scope: anyio.CancelScope,
        request_id: str,
        inline_errors: bool,
    ) -> None:
        errors: list[ErrorEnvelope] = []
        with scope, send:
            try:
                with map_httpx_errors(request_id):
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        try:
                            message: Any = converter.loads(line, InferenceClientMessage)
                        except WireError as exc:
                            send.send_nowait(ResponseDecodeError(str(exc), line))
                            return
                        if isinstance(message, ErrorEnvelope) and inline_errors:
                            errors.append(message)
                            continue
                        if isinstance(message, ResponseEnvelope | ErrorEnvelope):
                            if (
                                isinstance(message, ResponseEnvelope)
                                and is_final(message)
                                and errors
                            ):
                                send.send_nowait(errors[0])
                                return
                            send.send_nowait(message)
                            if isinstance(message, ErrorEnvelope) or is_final(message):
                                return
            except ClientError as exc:
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    send.send_nowait(exc)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the reader abandoned the stream; closing the response stops the request
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
