"""The inference service (spec §2.2): NDJSON endpoints and the multiplexed WebSocket.

Early problems (bad JSON, unknown fields, bad tools, embeddings mode) are HTTP errors whose
body names the field. Once the stream has started, everything travels inside it as NDJSON
lines: ``Response`` envelopes, then one terminal item or one ``Error`` envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from litestar import Controller, Litestar, Request, WebSocket, post, websocket
from litestar.datastructures import State
from litestar.response.base import ASGIResponse

from paddler.balancer import Balancer, EmbeddingStream, InferenceStream
from paddler.balancer._recovery import OPT_OUT_HEADER, recovery_off
from paddler.errors import (
    EmbeddingsNotEnabled,
    GenerationDisabled,
    NoAgents,
    PaddlerError,
    StateNotSet,
)
from paddler.transports._frames import dumps_frame
from paddler.wire import (
    DEFAULT_POOL,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    ErrorBody,
    ErrorEnvelope,
    GenerateEmbeddingBatchParams,
    InferenceClientMessage,
)
from paddler_server._http import (
    BalancerDep,
    ShutdownDep,
    cors_config,
    dependencies,
    exception_handlers,
    health,
    read_wire,
    status_of,
)
from paddler_server._inference_socket import InferenceSocketSession, check_request
from paddler_server._key_guard import SUBPROTOCOL
from paddler_server._limits import LimitsDep
from paddler_server._pool_routing import native_pool
from paddler_server._refusal import refuse
from paddler_server._settings import BalancerSettings, SettingsDep
from paddler_server._streaming import WRITE_TIMEOUT, Emit, ProducerStream, write_deadline

__all__ = ["create_inference_app", "ndjson_stream", "refuse_if_generation_disabled"]

logger = logging.getLogger("paddler_server.inference")

NDJSON_HEADERS = {"cache-control": "no-cache"}
SHUTDOWN_DESCRIPTION = "Balancer is shutting down"
INTERNAL = "Failed to generate response"


def refuse_if_generation_disabled(balancer: Balancer, pool: str = DEFAULT_POOL) -> None:
    """Raise ``GenerationDisabled`` (a 501) when ``pool`` is in embeddings mode, before the
    stream starts.

    The balancer refuses such a request too, but only once its stream is entered, after the
    200 headers; this answers with the status instead.
    """
    if not balancer.generation_enabled_in(pool):
        raise GenerationDisabled()


def _headers(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {key.lower(): value for key, value in request.headers.items()}


def _pool(
    headers: dict[str, str],
    balancer: Balancer,
    settings: BalancerSettings,
    subprotocols: Sequence[str] = (),
) -> str:
    """The ``Paddler-Pool`` the request names (``default`` without one); 400/403/404 here,
    and 400 for a ``Paddler-Stream-Recovery`` that is neither off nor on, before any answer
    starts (every native generation route and the socket's upgrade come through here)."""
    recovery_off(headers.get(OPT_OUT_HEADER))
    return native_pool(headers, balancer, dict(settings.model_aliases), subprotocols=subprotocols)


def ndjson_stream(
    open_stream: InferenceStream | EmbeddingStream,
    *,
    shutdown: anyio.Event | None,
    request_id_hint: str | None = None,
    write_timeout: float = WRITE_TIMEOUT,
    on_cut: Callable[[], None] | None = None,
) -> ProducerStream:
    """Stream a ``balancer.generate``/``embed`` context as NDJSON lines.

    ``open_stream`` is the (not yet entered) async context manager. On shutdown the stream
    ends with an ``Error`` envelope 503 for the request.
    """
    seen: dict[str, str] = {}

    async def produce(emit: Emit) -> None:
        held: list[bytes] = []  # lines whose next one had already arrived: written together
        try:
            async with open_stream as stream:
                request_id = getattr(stream, "request_id", None)
                if isinstance(request_id, str):
                    seen["id"] = request_id
                async for item in stream:
                    if "id" not in seen:
                        item_id = getattr(item, "request_id", None)
                        if isinstance(item_id, str):
                            seen["id"] = item_id
                    held.append(_line(item))
                    if not stream.ready:
                        await emit(b"".join(held))
                        held.clear()
        except PaddlerError as exc:
            # Raised after the headers went out: report inside the stream.
            held.append(_line(_error(seen.get("id", request_id_hint or ""), exc.code, str(exc))))
            await emit(b"".join(held))
        except Exception:
            logger.exception("inference stream failed")
            held.append(_line(_error(seen.get("id", request_id_hint or ""), 500, INTERNAL)))
            await emit(b"".join(held))

    def on_shutdown() -> bytes:
        return _line(_error(seen.get("id", request_id_hint or ""), 503, SHUTDOWN_DESCRIPTION))

    return ProducerStream(
        produce,
        media_type="application/json",
        headers=NDJSON_HEADERS,
        shutdown=shutdown,
        on_shutdown=on_shutdown,
        write_timeout=write_timeout,
        on_cut=on_cut,
    )


def _error(request_id: str, code: int, description: str) -> ErrorEnvelope:
    return ErrorEnvelope(request_id=request_id, error=ErrorBody(code=code, description=description))


def _line(item: Any) -> bytes:
    return (dumps_frame(item, InferenceClientMessage) + "\n").encode()


class InferenceController(Controller):
    """The three NDJSON endpoints; each converts the body, calls one Balancer method."""

    path = "/api/v1"

    @post("/continue_from_conversation_history", status_code=200)
    async def continue_from_conversation_history(
        self,
        request: Request[Any, Any, Any],
        balancer: BalancerDep,
        shutdown: ShutdownDep,
        limits: LimitsDep,
        settings: SettingsDep,
    ) -> ASGIResponse:
        params = read_wire(
            await request.body(),
            ContinueFromConversationHistoryParams,
            max_depth=limits.max_json_depth,
        )
        check_request(params)
        headers = _headers(request)
        pool = _pool(headers, balancer, settings)
        refuse_if_generation_disabled(balancer, pool)
        return ndjson_stream(
            balancer.generate(params, pool=pool, headers=headers),
            shutdown=shutdown,
            **write_deadline(balancer),
        )

    @post("/continue_from_raw_prompt", status_code=200)
    async def continue_from_raw_prompt(
        self,
        request: Request[Any, Any, Any],
        balancer: BalancerDep,
        shutdown: ShutdownDep,
        limits: LimitsDep,
        settings: SettingsDep,
    ) -> ASGIResponse:
        params = read_wire(
            await request.body(), ContinueFromRawPromptParams, max_depth=limits.max_json_depth
        )
        check_request(params)
        headers = _headers(request)
        pool = _pool(headers, balancer, settings)
        refuse_if_generation_disabled(balancer, pool)
        return ndjson_stream(
            balancer.generate(params, pool=pool, headers=headers),
            shutdown=shutdown,
            **write_deadline(balancer),
        )

    @post("/generate_embedding_batch", status_code=200)
    async def generate_embedding_batch(
        self,
        request: Request[Any, Any, Any],
        balancer: BalancerDep,
        shutdown: ShutdownDep,
        limits: LimitsDep,
        settings: SettingsDep,
    ) -> ASGIResponse:
        params = read_wire(
            await request.body(), GenerateEmbeddingBatchParams, max_depth=limits.max_json_depth
        )
        headers = _headers(request)
        pool = _pool(headers, balancer, settings)
        state = balancer.applicable_state_of(pool)
        if state is None:
            raise StateNotSet("Balancer applicable state is not yet set")
        if not state.inference_parameters.enable_embeddings:
            raise EmbeddingsNotEnabled()
        if not balancer.agents_snapshot(pool).agents:
            raise NoAgents("No agents are currently connected")
        return ndjson_stream(
            balancer.embed(params, pool=pool, headers=headers),
            shutdown=shutdown,
            **write_deadline(balancer),
        )


@websocket("/api/v1/inference_socket")
async def inference_socket(
    socket: WebSocket[Any, Any, Any],
    balancer: BalancerDep,
    shutdown: ShutdownDep,
    limits: LimitsDep,
    settings: SettingsDep,
) -> None:
    """Multiplexed generation over one WebSocket (spec §2.2); see ``InferenceSocketSession``.

    ``Paddler-Pool`` on the upgrade request (from a browser: the subprotocol
    ``paddler.pool.NAME`` beside ``paddler``) chooses the pool of every request on the socket;
    a bad or unknown one refuses the handshake with its status and reason.
    """
    headers = {key.lower(): value for key, value in socket.headers.items()}
    offered = list(socket.scope.get("subprotocols", ()))
    try:
        pool = _pool(headers, balancer, settings, offered)
    except PaddlerError as exc:
        await refuse(socket.scope, socket.receive, socket.send, status_of(exc), str(exc))
        return
    # A browser fails a socket whose server picks none of the subprotocols it offered.
    await socket.accept(subprotocols=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    session = InferenceSocketSession(socket, balancer, shutdown=shutdown, limits=limits, pool=pool)
    await session.run()


def create_inference_app(
    balancer: Balancer,
    settings: BalancerSettings | None = None,
    *,
    shutdown: anyio.Event | None = None,
    debug: bool = False,
) -> Litestar:
    """The inference service for ``balancer``.

    :param settings: CORS origins (``settings.inference_origins``) and limits: body size (413
        above it), JSON depth, request ids and in-flight requests per WebSocket. The flags'
        defaults when not given.
    :param shutdown: set by the owner when the server stops: open streams end with an
        ``Error`` 503 envelope and sockets close with 1001 "going away".
    """
    settings = settings or BalancerSettings()
    limits = settings.limits
    return Litestar(
        route_handlers=[health, InferenceController, inference_socket],
        dependencies=dependencies(
            balancer=balancer, settings=settings, shutdown=shutdown, limits=limits
        ),
        exception_handlers=exception_handlers(on_rejected=balancer.count_rejected),
        cors_config=cors_config(settings.inference_origins),
        request_max_body_size=limits.max_body_bytes,
        state=State({"service": "inference"}),
        openapi_config=None,
        logging_config=None,
        debug=debug,
    )
