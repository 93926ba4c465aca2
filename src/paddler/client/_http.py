"""HTTP plumbing shared by the clients: error statuses, NDJSON and SSE bodies."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from paddler.client._urls import normalize_base_url
from paddler.client.errors import ConnectionDropped, HTTPStatusError, ServerUnreachable

__all__ = ["HttpClientBase", "check_status", "iter_sse_data", "json_headers", "map_httpx_errors"]


@contextlib.contextmanager
def map_httpx_errors(request_id: str | None = None) -> Iterator[None]:
    """httpx's exceptions as ``paddler.client.errors`` (chained)."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ServerUnreachable(str(exc) or type(exc).__name__) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout) as exc:
        raise ConnectionDropped(request_id, str(exc) or type(exc).__name__) from exc


async def check_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        body = (await response.aread()).decode(errors="replace")
        raise HTTPStatusError(response.status_code, body, url=str(response.request.url))


async def iter_sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (comments and keep-alives skipped)."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


def json_headers() -> dict[str, Any]:
    return {"content-type": "application/json"}


class HttpClientBase:
    """A client's base URL and the ``httpx.AsyncClient`` it talks through: its own unless one
    is passed in; ``aclose`` closes only its own."""

    def __init__(
        self, base_url: str, http_client: httpx.AsyncClient | None, timeout: float
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
