"""One client's multiplexed inference WebSocket (spec §2.2), as a session object.

Each request runs in its own task under the session's task group; one writer task owns the
socket's send side. Request ids belong to this connection: the balancer keys requests by its
own ids, so two clients may use the same id. Bad frames get an ``Error`` envelope and the
socket stays open; closing the socket cancels every request it started.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import attrs
from litestar import WebSocket

from paddler._tenancy import current_tenant
from paddler.balancer import Balancer, InferenceStream
from paddler.errors import GenerationDisabled, InvalidRequest, PaddlerError
from paddler.transports._frames import dumps_frame
from paddler.wire import (
    DEFAULT_POOL,
    ErrorBody,
    ErrorEnvelope,
    InferenceClientMessage,
    InferenceRequest,
    InferenceServerMessage,
    ResponseEnvelope,
    StopRespondingTo,
    TokenGenerationDisabled,
    TokenGenerationDisabledNotification,
    TokenGenerationEnabledNotification,
    WireError,
    converter,
    tool_schema_problems,
)
from paddler_server._api_keys import KeyTenant
from paddler_server._key_limits import KeyLimiter, LimitExceeded
from paddler_server._limits import ServerLimits
from paddler_server._streaming import SlowClient, send_within, write_deadline

__all__ = ["InferenceSocketSession", "check_request", "check_tools"]

logger = logging.getLogger("paddler_server.inference_socket")

GOING_AWAY = 1001
SHUTDOWN_REASON = "Server shutting down"


def check_tools(tools: Sequence[Any] | None) -> None:
    """Every name in a tool's ``required`` must exist in its ``properties`` (spec §2.2)."""
    problems = tool_schema_problems(tools or ())
    if problems:
        raise InvalidRequest("; ".join(problems), field="$.tools")


def check_request(params: Any) -> None:
    """A 400 before dispatch for bad tools and for grammars past their limits: a grammar
    bigger than an agent-socket frame would otherwise close the agent's connection."""
    from paddler.wire import grammar_problem

    check_tools(getattr(params, "tools", None))
    problem = grammar_problem(getattr(params, "grammar", None))
    if problem is not None:
        field, message = problem
        raise InvalidRequest(message, field=field)


@attrs.define
class _InFlight:
    scope: anyio.CancelScope
    stream: InferenceStream | None = None
    stop_requested: bool = False
    #: The API key's limiter holding one of its concurrent requests for this one.
    limiter: KeyLimiter | None = None


class InferenceSocketSession:
    """Reads requests and notifications from one socket and streams the answers back."""

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        balancer: Balancer,
        *,
        shutdown: anyio.Event | None,
        limits: ServerLimits | None = None,
        pool: str = DEFAULT_POOL,
    ) -> None:
        """:param pool: where every request of this socket goes (the upgrade's
        ``Paddler-Pool``)."""
        self._socket = socket
        self._balancer = balancer
        self._pool = pool
        self._shutdown = shutdown
        self._limits = limits or ServerLimits()
        self._headers = {key.lower(): value for key, value in socket.headers.items()}
        self._requests: dict[str, _InFlight] = {}
        self._closed = False
        self._scope: anyio.CancelScope | None = None
        deadline = write_deadline(balancer)
        self._write_timeout: float = deadline["write_timeout"]
        self._on_cut: Callable[[], None] = deadline["on_cut"]

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            logger.exception("inference socket session failed")
            raise

    async def _run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._scope = tg.cancel_scope
            tg.start_soon(self._watch_generation_mode)
            if self._shutdown is not None:
                tg.start_soon(self._watch_shutdown, self._shutdown)
            await self._read_loop(tg)
            tg.cancel_scope.cancel()

    # -- reading ------------------------------------------------------------------------

    async def _read_loop(self, tg: anyio.abc.TaskGroup) -> None:
        while True:
            message = await self._socket.receive()
            kind = message.get("type")
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            if not isinstance(text, str):
                continue  # binary frames are ignored (spec §2.2)
            await self._handle_text(text, tg)

    async def _handle_text(self, text: str, tg: anyio.abc.TaskGroup) -> None:
        try:
            message = converter.loads(
                text, InferenceServerMessage, max_depth=self._limits.max_json_depth
            )
        except (WireError, ValueError) as exc:
            request_id = _guess_request_id(text)
            logger.info("malformed inference socket message error=%s", exc)
            await self._send(_error(request_id, 400, f"Invalid message: {exc}"))
            return
        if isinstance(message, InferenceRequest):
            await self._start_request(message.id, message.request, tg)
        elif isinstance(message, StopRespondingTo):
            await self._stop(message.request_id)
        else:
            logger.info("client reported an error message=%s", text[:500])

    async def _start_request(self, request_id: str, request: Any, tg: anyio.abc.TaskGroup) -> None:
        limits = self._limits
        if len(request_id) > limits.max_request_id_length:
            # Answered once, never echoed per token: the id is what the client matches on.
            description = (
                f"Invalid request parameters: $.Request.id: request id is {len(request_id)} "
                f"characters long; the limit is {limits.max_request_id_length} "
                "(--max-request-id-length)"
            )
            await self._send(_error(request_id, 400, description))
            return
        if len(self._requests) >= limits.max_in_flight_per_socket:
            description = (
                f"Too many requests in flight on this connection (limit "
                f"{limits.max_in_flight_per_socket}, --max-in-flight-per-socket); "
                "wait for one to finish"
            )
            await self._send(_error(request_id, 429, description))
            return
        if request_id in self._requests:
            description = f'Request id "{request_id}" is already in flight on this connection'
            await self._send(_error(request_id, 400, description))
            return
        params = request
        try:
            check_request(params)
        except InvalidRequest as exc:
            await self._send(_error(request_id, 400, f"Invalid request parameters: {exc}"))
            return
        limiter = _key_limiter()
        if limiter is not None:
            try:
                limiter.admit()
            except LimitExceeded as exc:  # the key's limit: an Error envelope 429, nothing held
                self._balancer.count_rejected(429)
                await self._send(_error(request_id, 429, str(exc)))
                return
        in_flight = _InFlight(scope=anyio.CancelScope(), limiter=limiter)
        self._requests[request_id] = in_flight
        tg.start_soon(self._serve_request, request_id, params, in_flight)

    async def _stop(self, request_id: str) -> None:
        in_flight = self._requests.get(request_id)
        if in_flight is None:
            return
        in_flight.stop_requested = True
        if in_flight.stream is not None:
            await _cancel_stream(in_flight.stream)

    # -- serving ------------------------------------------------------------------------

    async def _serve_request(self, request_id: str, params: Any, in_flight: _InFlight) -> None:
        try:
            with in_flight.scope:
                await self._stream_request(request_id, params, in_flight)
        finally:
            if in_flight.limiter is not None:
                in_flight.limiter.release()
            if self._requests.get(request_id) is in_flight:
                del self._requests[request_id]

    async def _stream_request(self, request_id: str, params: Any, in_flight: _InFlight) -> None:
        try:  # the balancer refuses generation in embeddings mode (and counts the refusal)
            async with self._balancer.generate(
                params, pool=self._pool, client_request_id=request_id, headers=self._headers
            ) as stream:
                in_flight.stream = stream
                if in_flight.stop_requested:
                    await _cancel_stream(stream)
                async for item in stream:
                    await self._send(item)
        except GenerationDisabled as exc:
            await self._send(_disabled_response(request_id, str(exc)))
        except PaddlerError as exc:
            await self._send(_error(request_id, exc.code, str(exc)))

    # -- writing ------------------------------------------------------------------------

    async def _send(self, item: Any) -> None:
        """Write one message from the request's own task (no writer-task hop per token).

        No lock: the server writes each message whole, so messages of different requests
        cannot interleave, and one request's messages come from one task, in order. A send
        the server takes at once costs no yield and no timer (``send_within``).
        """
        if self._closed:
            return
        text = dumps_frame(item, InferenceClientMessage)
        try:
            await send_within(self._socket.send_text, text, self._write_timeout)
        except SlowClient as exc:  # it stopped reading: cut the socket, free its slots
            logger.info("inference socket client cut off: %s", exc)
            self._on_cut()
            self._closed = True
            if self._scope is not None:
                self._scope.cancel()
        except Exception:  # the client is gone: stop everything on this socket
            logger.debug("inference socket send failed", exc_info=True)
            self._closed = True
            if self._scope is not None:
                self._scope.cancel()

    async def _watch_shutdown(self, shutdown: anyio.Event) -> None:
        await shutdown.wait()
        for request_id, in_flight in list(self._requests.items()):
            in_flight.scope.cancel()
            await self._send(_error(request_id, 503, "Balancer is shutting down"))
        self._closed = True
        try:
            await self._socket.close(code=GOING_AWAY, reason=SHUTDOWN_REASON)
        except Exception:
            logger.debug("inference socket close failed", exc_info=True)
        if self._scope is not None:
            self._scope.cancel()

    async def _watch_generation_mode(self) -> None:
        """Send TokenGenerationDisabled at connect if in embeddings mode, then on each flip."""
        first = True
        async for enabled in self._balancer.subscribe_generation_enabled(self._pool):
            if not (first and enabled):
                await self._send(_mode_notification(disabled=not enabled))
            first = False


def _key_limiter() -> KeyLimiter | None:
    """The limiter of the API key this socket was opened with (None: no keys)."""
    tenant = current_tenant()
    return tenant.limiter if isinstance(tenant, KeyTenant) else None


async def _cancel_stream(stream: InferenceStream) -> None:
    await stream.cancel()


def _disabled_response(request_id: str, message: str) -> ResponseEnvelope:
    return ResponseEnvelope(
        request_id=request_id, response=TokenGenerationDisabled(message=message)
    )


def _mode_notification(*, disabled: bool) -> Any:
    if disabled:
        return TokenGenerationDisabledNotification()
    return TokenGenerationEnabledNotification()


def _error(request_id: str, code: int, description: str) -> ErrorEnvelope:
    return ErrorEnvelope(request_id=request_id, error=ErrorBody(code=code, description=description))


#: ``{"Request":{"id":"..."`` at the start of a frame (how clients write it), for frames that
#: are not JSON we can read (too deep, say): only that request fails, by its id.
_LEADING_ID = re.compile(r'\A\s*\{\s*"Request"\s*:\s*\{\s*"id"\s*:\s*("(?:[^"\\]|\\.)*")')


def _guess_request_id(text: str) -> str:
    """The ``id`` of a request we could not parse, when we can find it."""
    try:
        document = json.loads(text)
        request = document.get("Request", {})
        value = request.get("id") if isinstance(request, dict) else None
        return value if isinstance(value, str) else ""
    except (ValueError, AttributeError, RecursionError):
        pass
    match = _LEADING_ID.match(text)
    if match is None:
        return ""
    try:
        value = json.loads(match.group(1))
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""
