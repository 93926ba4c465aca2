"""The management API of model pools (our extension): ``/api/v1/pools/...``.

Each pool gets what the cluster has on Paddler's routes: its desired state, its agents and its
buffer, each with a live stream. Paddler's own routes stay the ``default`` pool's (the desired
state) or the whole balancer's (agents, buffer). A name that breaks the pool-name rule answers
400 naming the rule; a well-formed name no pool has answers 404 naming it (``UnknownPool``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from litestar import Controller, Request, Response, get, put
from litestar.params import FromPath
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_204_NO_CONTENT

from paddler.balancer import Balancer, PoolSnapshot
from paddler.wire import (
    BalancerDesiredState,
    PoolListSnapshot,
    PoolSummary,
    validate_pool_name,
)
from paddler_server._http import BalancerDep, ShutdownDep, read_wire, wire_response
from paddler_server._limits import LimitsDep
from paddler_server._pool_routing import unknown_pool
from paddler_server._sse import snapshot_stream
from paddler_server._streaming import write_deadline

__all__ = ["PoolsController", "pool_list"]


def pool_list(pools: Sequence[PoolSnapshot]) -> PoolListSnapshot:
    """The wire document of ``GET /api/v1/pools`` for the balancer's pool snapshots."""
    return PoolListSnapshot(
        tuple(
            PoolSummary(
                name=pool.name,
                agents=pool.agents,
                slots_total=pool.slots_total,
                slots_busy=pool.slots_busy,
                buffered_requests=pool.requests_buffered,
                desired_model=pool.desired_model,
                serving=pool.serving,
                generation_enabled=pool.generation_enabled,
            )
            for pool in pools
        )
    )


def known_pool(balancer: Balancer, name: str) -> str:
    """``name`` when it is a valid name of a pool the balancer knows.

    Raises ``InvalidRequest`` (400) for a malformed name, ``UnknownPool`` (404) for a name no
    pool has.
    """
    validate_pool_name(name)
    if not balancer.has_pool(name):
        raise unknown_pool(name)  # the inference and OpenAI APIs say the same
    return name


class PoolsController(Controller):
    path = "/api/v1/pools"

    @get("/")
    async def pools(self, balancer: BalancerDep) -> Response[bytes]:
        return wire_response(pool_list(balancer.pools_snapshot()))

    @get("/stream")
    async def pools_stream(self, balancer: BalancerDep, shutdown: ShutdownDep) -> ASGIResponse:
        async def subscribe() -> AsyncIterator[PoolListSnapshot]:
            async for pools in balancer.subscribe_pools():
                yield pool_list(pools)

        return snapshot_stream(
            lambda: pool_list(balancer.pools_snapshot()),
            subscribe,
            shutdown=shutdown,
            **write_deadline(balancer),
        )

    @get("/{name:str}/desired_state")
    async def get_desired_state(
        self, name: FromPath[str], balancer: BalancerDep
    ) -> Response[bytes]:
        state = await balancer.get_desired_state(known_pool(balancer, name))
        return wire_response(state, BalancerDesiredState)

    @put("/{name:str}/desired_state", status_code=HTTP_204_NO_CONTENT)
    async def put_desired_state(
        self,
        name: FromPath[str],
        request: Request[Any, Any, Any],
        balancer: BalancerDep,
        limits: LimitsDep,
    ) -> None:
        """Set the pool's desired state; a new name creates the pool (its agents join later)."""
        validate_pool_name(name)
        body = await request.body()
        state = read_wire(body, BalancerDesiredState, max_depth=limits.max_json_depth)
        await balancer.set_desired_state(state, name)  # validates first: InvalidRequest -> 400

    @get("/{name:str}/applicable_state")
    async def applicable_state(self, name: FromPath[str], balancer: BalancerDep) -> Response[bytes]:
        return wire_response(balancer.applicable_state_of(known_pool(balancer, name)))

    @get("/{name:str}/agents")
    async def agents(self, name: FromPath[str], balancer: BalancerDep) -> Response[bytes]:
        return wire_response(balancer.agents_snapshot(known_pool(balancer, name)))

    @get("/{name:str}/agents/stream")
    async def agents_stream(
        self, name: FromPath[str], balancer: BalancerDep, shutdown: ShutdownDep
    ) -> ASGIResponse:
        pool = known_pool(balancer, name)
        return snapshot_stream(
            lambda: balancer.agents_snapshot(pool),
            lambda: balancer.subscribe_agents(pool),
            shutdown=shutdown,
            **write_deadline(balancer),
        )

    @get("/{name:str}/buffered_requests")
    async def buffered_requests(
        self, name: FromPath[str], balancer: BalancerDep
    ) -> Response[bytes]:
        return wire_response(balancer.buffered_requests_snapshot(known_pool(balancer, name)))

    @get("/{name:str}/buffered_requests/stream")
    async def buffered_requests_stream(
        self, name: FromPath[str], balancer: BalancerDep, shutdown: ShutdownDep
    ) -> ASGIResponse:
        pool = known_pool(balancer, name)
        return snapshot_stream(
            lambda: balancer.buffered_requests_snapshot(pool),
            lambda: balancer.subscribe_buffered_requests(pool),
            shutdown=shutdown,
            **write_deadline(balancer),
        )
