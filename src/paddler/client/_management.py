"""``ManagementClient``: the management API (agents, buffer, desired state, metrics, pools).

A ``pool`` argument names a model pool (``/api/v1/pools/{pool}/...``, our extension). Without
one, or with ``"default"`` for the desired state, the client uses Paddler's own routes, so it
keeps working against a Paddler balancer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx

from paddler.client._http import (
    HttpClientBase,
    check_status,
    iter_sse_data,
    json_headers,
    map_httpx_errors,
)
from paddler.client.errors import ResponseDecodeError
from paddler.wire import (
    DEFAULT_POOL,
    AgentControllerPoolSnapshot,
    AgentDesiredState,
    BalancerDesiredState,
    BufferedRequestsSnapshot,
    ChatTemplate,
    ModelMetadata,
    PoolListSnapshot,
    WireError,
    converter,
)

__all__ = ["DEFAULT_MANAGEMENT_URL", "ManagementClient"]

DEFAULT_MANAGEMENT_URL = "http://127.0.0.1:8060"

T = TypeVar("T")


def _decode(text: str, cls: Any) -> Any:
    try:
        return converter.loads(text, cls)
    except WireError as exc:
        raise ResponseDecodeError(str(exc), text) from exc


def _in_pool(pool: str | None, path: str) -> str:
    """``/api/v1/{path}`` (every pool), or the same resource of one pool."""
    if pool is None:
        return f"/api/v1/{path}"
    return f"/api/v1/pools/{quote(pool, safe='')}/{path}"


def _state_path(pool: str) -> str:
    if pool == DEFAULT_POOL:
        return "/api/v1/balancer_desired_state"
    return _in_pool(pool, "desired_state")


class ManagementClient(HttpClientBase):
    """Talks to a balancer's management service (``--management-addr``)."""

    def __init__(
        self,
        base_url: str = DEFAULT_MANAGEMENT_URL,
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        api_key: str | None = None,
    ) -> None:
        """:param api_key: the balancer's ``--management-api-key``, sent on every request
        as ``Authorization: Bearer``."""
        super().__init__(base_url, http_client, timeout)
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}

    def __repr__(self) -> str:
        return f"<ManagementClient [{self.base_url}]>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _request(
        self, method: str, path: str, *, content: str | None = None
    ) -> httpx.Response:
        with map_httpx_errors():
            response = await self._http.request(
                method,
                f"{self.base_url}{path}",
                content=content,
                headers={**self._headers, **(json_headers() if content is not None else {})},
            )
        await check_status(response)
        return response

    async def _get(self, path: str, cls: Any) -> Any:
        return _decode((await self._request("GET", path)).text, cls)

    async def _stream(self, path: str, cls: type[T]) -> AsyncIterator[T]:
        with map_httpx_errors():
            async with self._http.stream(
                "GET",
                f"{self.base_url}{path}",
                headers=self._headers,
                timeout=httpx.Timeout(10.0, read=None),
            ) as response:
                await check_status(response)
                async for data in iter_sse_data(response):
                    yield _decode(data, cls)

    async def health(self) -> str:
        return (await self._request("GET", "/health")).text

    async def agents(self, pool: str | None = None) -> AgentControllerPoolSnapshot:
        """Every agent, or those of ``pool``."""
        result: AgentControllerPoolSnapshot = await self._get(
            _in_pool(pool, "agents"), AgentControllerPoolSnapshot
        )
        return result

    def agents_stream(self, pool: str | None = None) -> AsyncIterator[AgentControllerPoolSnapshot]:
        """The current snapshot, then one after every change (server-sent events)."""
        return self._stream(_in_pool(pool, "agents/stream"), AgentControllerPoolSnapshot)

    async def buffered_requests(self, pool: str | None = None) -> BufferedRequestsSnapshot:
        """The requests waiting for a slot: in every pool, or in ``pool``."""
        result: BufferedRequestsSnapshot = await self._get(
            _in_pool(pool, "buffered_requests"), BufferedRequestsSnapshot
        )
        return result

    def buffered_requests_stream(
        self, pool: str | None = None
    ) -> AsyncIterator[BufferedRequestsSnapshot]:
        return self._stream(_in_pool(pool, "buffered_requests/stream"), BufferedRequestsSnapshot)

    async def pools(self) -> PoolListSnapshot:
        """Every model pool the balancer knows, ``default`` first."""
        result: PoolListSnapshot = await self._get("/api/v1/pools", PoolListSnapshot)
        return result

    def pools_stream(self) -> AsyncIterator[PoolListSnapshot]:
        """The pools now, then after every change (server-sent events)."""
        return self._stream("/api/v1/pools/stream", PoolListSnapshot)

    async def get_desired_state(self, pool: str = DEFAULT_POOL) -> BalancerDesiredState:
        """``pool``'s desired state; an unknown pool is an ``HTTPStatusError`` 404."""
        result: BalancerDesiredState = await self._get(_state_path(pool), BalancerDesiredState)
        return result

    async def set_desired_state(
        self, state: BalancerDesiredState, pool: str = DEFAULT_POOL
    ) -> None:
        """Set ``pool``'s desired state (a new name creates the pool); its agents load it."""
        await self._request("PUT", _state_path(pool), content=converter.dumps(state))

    async def balancer_desired_state(self) -> BalancerDesiredState:
        result: BalancerDesiredState = await self._get(
            "/api/v1/balancer_desired_state", BalancerDesiredState
        )
        return result

    async def put_balancer_desired_state(self, state: BalancerDesiredState) -> None:
        await self._request("PUT", "/api/v1/balancer_desired_state", content=converter.dumps(state))

    async def balancer_applicable_state(self) -> AgentDesiredState | None:
        result: AgentDesiredState | None = await self._get(
            "/api/v1/balancer_applicable_state", AgentDesiredState | None
        )
        return result

    async def chat_template_override(self, agent_id: str) -> ChatTemplate | None:
        result: ChatTemplate | None = await self._get(
            f"/api/v1/agent/{agent_id}/chat_template_override", ChatTemplate | None
        )
        return result

    async def model_metadata(self, agent_id: str) -> ModelMetadata | None:
        result: ModelMetadata | None = await self._get(
            f"/api/v1/agent/{agent_id}/model_metadata", ModelMetadata | None
        )
        return result

    async def metrics(self) -> str:
        """Prometheus text exposition."""
        return (await self._request("GET", "/metrics")).text
