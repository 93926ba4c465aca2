"""The management service (spec §2.4): agents, buffer, desired state, metrics, agent socket;
and the model pools' routes (``_pools_api``).

Handlers stay thin: convert the input, call one ``Balancer`` method, convert the output.
Errors from the balancer (unknown agent, agent gone, RPC timeout) map to HTTP through the
shared table in ``_http``.
"""

from __future__ import annotations

from typing import Any

import anyio
from litestar import (
    Controller,
    Litestar,
    MediaType,
    Request,
    Response,
    WebSocket,
    get,
    put,
    websocket,
)
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_204_NO_CONTENT

from paddler.balancer import Balancer
from paddler.metrics import BalancerMetrics
from paddler.wire import BalancerDesiredState, converter
from paddler_server._agent_socket import serve_agent_socket
from paddler_server._http import (
    BalancerDep,
    ShutdownDep,
    cors_config,
    dependencies,
    exception_handlers,
    health,
    read_wire,
    wire_response,
)
from paddler_server._limits import LimitsDep
from paddler_server._management_key import management_access
from paddler_server._pools_api import PoolsController
from paddler_server._settings import BalancerSettings
from paddler_server._sse import snapshot_stream
from paddler_server._streaming import write_deadline

__all__ = ["PROMETHEUS_CONTENT_TYPE", "create_management_app"]

MetricsDep = NamedDependency[BalancerMetrics]

#: Content type of ``/metrics`` (spec §7).
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8; escaping=values"
MAX_BODY_BYTES = 16 * 1024 * 1024


class AgentsController(Controller):
    path = "/api/v1"

    @get("/agents")
    async def agents(self, balancer: BalancerDep) -> Response[bytes]:
        return wire_response(balancer.agents_snapshot())

    @get("/agents/stream")
    async def agents_stream(self, balancer: BalancerDep, shutdown: ShutdownDep) -> ASGIResponse:
        return snapshot_stream(
            balancer.agents_snapshot,
            balancer.subscribe_agents,
            shutdown=shutdown,
            **write_deadline(balancer),
        )

    @get("/agent/{agent_id:str}/chat_template_override")
    async def chat_template_override(
        self, agent_id: FromPath[str], balancer: BalancerDep
    ) -> Response[bytes]:
        return _optional(await balancer.get_chat_template_override(agent_id))

    @get("/agent/{agent_id:str}/model_metadata")
    async def model_metadata(
        self, agent_id: FromPath[str], balancer: BalancerDep
    ) -> Response[bytes]:
        return _optional(await balancer.get_model_metadata(agent_id))


class BufferedRequestsController(Controller):
    path = "/api/v1/buffered_requests"

    @get("/")
    async def buffered_requests(self, balancer: BalancerDep) -> Response[bytes]:
        return wire_response(balancer.buffered_requests_snapshot())

    @get("/stream")
    async def buffered_requests_stream(
        self, balancer: BalancerDep, shutdown: ShutdownDep
    ) -> ASGIResponse:
        return snapshot_stream(
            balancer.buffered_requests_snapshot,
            balancer.subscribe_buffered_requests,
            shutdown=shutdown,
            **write_deadline(balancer),
        )


class DesiredStateController(Controller):
    path = "/api/v1"

    @get("/balancer_desired_state")
    async def get_desired_state(self, balancer: BalancerDep) -> Response[bytes]:
        return wire_response(await balancer.get_desired_state(), BalancerDesiredState)

    @put("/balancer_desired_state", status_code=HTTP_204_NO_CONTENT)
    async def put_desired_state(
        self, request: Request[Any, Any, Any], balancer: BalancerDep, limits: LimitsDep
    ) -> None:
        body = await request.body()
        state = read_wire(body, BalancerDesiredState, max_depth=limits.max_json_depth)
        await balancer.set_desired_state(state)  # validates first: InvalidRequest -> 400

    @get("/balancer_applicable_state")
    async def applicable_state(self, balancer: BalancerDep) -> Response[bytes]:
        return _optional(balancer.applicable_state)


@get("/metrics", media_type=PROMETHEUS_CONTENT_TYPE)
async def metrics_endpoint(balancer: BalancerDep, metrics: MetricsDep) -> Response[bytes]:
    body = metrics.render(
        balancer.statistics(), balancer.agents_snapshot(), balancer.pools_snapshot()
    )
    # An explicit header: Litestar would append a second charset to a text/ media type.
    return Response(body, headers={"content-type": PROMETHEUS_CONTENT_TYPE})


@websocket("/api/v1/agent_socket/{agent_id:str}")
async def agent_socket(
    socket: WebSocket[Any, Any, Any],
    agent_id: FromPath[str],
    balancer: BalancerDep,
    shutdown: ShutdownDep,
) -> None:
    """An agent's control socket (spec §3), glued to ``balancer.serve_agent``."""
    await serve_agent_socket(socket, agent_id, balancer, shutdown=shutdown)


def _optional(value: Any) -> Response[bytes]:
    if value is None:
        return Response(b"null", media_type=MediaType.JSON)
    return Response(converter.dumps(value).encode(), media_type=MediaType.JSON)


def create_management_app(
    balancer: Balancer,
    settings: BalancerSettings | None = None,
    *,
    metrics: BalancerMetrics,
    shutdown: anyio.Event | None = None,
    debug: bool = False,
) -> Litestar:
    """The management service for ``balancer``; agents connect to its agent socket.

    :param settings: CORS origins (``settings.management_origins``) and the JSON depth of a
        desired state document; the flags' defaults when not given.
    :param metrics: renders ``/metrics`` (names use ``--statsd-prefix``).
    :param shutdown: set by the owner when the server stops: SSE streams end and agent
        sockets close with 1001 "going away".

    ``settings.management_api_key`` and ``settings.agent_tokens`` close the API and the agent
    socket (``_management_key``, ``_agent_tokens``).
    """
    settings = settings or BalancerSettings()
    deps = dependencies(
        balancer=balancer,
        settings=settings,
        shutdown=shutdown,
        metrics=metrics,
        limits=settings.limits,
    )
    guards, middleware = management_access(settings)
    return Litestar(
        route_handlers=[
            health,
            metrics_endpoint,
            AgentsController,
            BufferedRequestsController,
            DesiredStateController,
            PoolsController,
            agent_socket,
        ],
        dependencies=deps,
        exception_handlers=exception_handlers(),
        cors_config=cors_config(settings.management_origins),
        request_max_body_size=MAX_BODY_BYTES,
        guards=guards,
        middleware=middleware,
        openapi_config=None,
        logging_config=None,
        debug=debug,
    )
