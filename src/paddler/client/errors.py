"""What ``paddler.client`` raises, in one hierarchy::

    ClientError (paddler.errors.PaddlerError)
    ├── HTTPStatusError          the server answered with a 4xx/5xx status (``status_code``)
    ├── ServerError              an ``Error`` envelope arrived (``code``, ``description``)
    ├── ConnectionDropped        the connection closed before the request finished
    ├── ServerUnreachable        the server could not be reached (refused, DNS, TLS)
    └── ResponseDecodeError      the server sent something that is not a wire message

Errors of foreign libraries (httpx, websockets, cattrs) are translated at the boundary and
chained (``raise ... from exc``).
"""

from __future__ import annotations

from paddler.errors import PaddlerError

__all__ = [
    "ClientError",
    "ConnectionDropped",
    "HTTPStatusError",
    "ResponseDecodeError",
    "ServerError",
    "ServerUnreachable",
]


class ClientError(PaddlerError):
    """Base of every error ``paddler.client`` raises."""


class HTTPStatusError(ClientError):
    """A response with an error status; ``body`` is the response text."""

    def __init__(self, status_code: int, body: str, *, url: str = "") -> None:
        super().__init__(f"HTTP {status_code} from {url or 'the server'}: {body.strip()[:500]}")
        self.status_code = status_code
        self.code = status_code
        self.body = body
        self.url = url


class ServerError(ClientError):
    """An ``Error`` envelope: 503 buffer full, 504 timeout, 502 agent gone, ..."""

    def __init__(self, code: int, description: str, *, request_id: str | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.error_description = description
        self.request_id = request_id


class ConnectionDropped(ClientError):
    """The WebSocket or HTTP stream closed before the request's terminal message."""

    def __init__(self, request_id: str | None, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(f"connection dropped before request {request_id} finished{detail}")
        self.request_id = request_id


class ServerUnreachable(ClientError):
    """The server could not be reached (refused, DNS, TLS, handshake)."""


class ResponseDecodeError(ClientError):
    """A message from the server is not valid wire JSON; ``raw`` is what arrived."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw
