"""What every Paddler service shares: ``/health``, CORS, the error table, wire responses.

Wire types cross the HTTP edge explicitly through ``paddler.wire.converter`` (never through
Litestar's own serializer), and every ``PaddlerError`` (``WireError`` included) maps to HTTP
in one table, :func:`exception_handlers`, by the status its class declares as ``code``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from litestar import MediaType, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import SkipValidation
from litestar.types import ExceptionHandlersMap

from paddler.balancer import Balancer
from paddler.errors import PaddlerError
from paddler.wire import WireError, converter
from paddler.wire._json import DEFAULT_MAX_JSON_DEPTH

__all__ = [
    "BalancerDep",
    "ShutdownDep",
    "cors_config",
    "dependencies",
    "error_response",
    "exception_handlers",
    "health",
    "read_wire",
    "status_of",
    "wire_response",
]

logger = logging.getLogger("paddler_server.http")

#: Injected objects are ours, not request data: Litestar must not try to validate them (a
#: stand-in balancer in a test is no ``Balancer`` instance, and checking costs every request).
BalancerDep = SkipValidation[NamedDependency[Balancer]]
ShutdownDep = NamedDependency[anyio.Event | None]

#: CORS of every service (spec §2.1).
CORS_METHODS = ["DELETE", "GET", "POST", "PUT", "OPTIONS"]
#: ``Paddler-Pool`` (``paddler.wire.POOL_HEADER``): a browser may choose a pool too.
CORS_HEADERS = ["Accept", "Authorization", "Content-Type", "Paddler-Pool"]


def cors_config(origins: Sequence[str]) -> CORSConfig | None:
    """CORS for an explicit list of exact origins; ``None`` (no CORS headers) when empty.

    There is no pattern: a panel on every interface lists its origins one by one
    (``paddler_server._origins``).
    """
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(dict.fromkeys(origins)),
        allow_methods=CORS_METHODS,  # type: ignore[arg-type]
        allow_headers=CORS_HEADERS,
        max_age=3600,
    )


@get("/health", media_type=MediaType.TEXT, sync_to_thread=False, include_in_schema=False)
def health() -> str:
    """Liveness: ``200 OK`` as text/plain."""
    return "OK"


def error_response(
    status: int,
    description: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    """A JSON error body ``{"error": {"code", "description"[, "field"]}}``."""
    body: dict[str, Any] = {"code": status, "description": description}
    if field is not None:
        body["field"] = field
    return Response(
        json.dumps({"error": body}).encode(),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def status_of(exc: PaddlerError) -> int:
    """The HTTP status of ``exc``: its ``code`` (see ``paddler.errors``), 500 if not a status."""
    code = exc.code
    return code if isinstance(code, int) and 400 <= code <= 599 else 500


def _field_of(exc: BaseException) -> str | None:
    field = getattr(exc, "field", None)
    if isinstance(field, str):
        return field
    message = str(exc)
    if message.startswith("$"):
        return message.split(":", 1)[0]
    return None


def _handle_paddler_error(request: Request[Any, Any, Any], exc: PaddlerError) -> Response[bytes]:
    status = status_of(exc)
    if status >= 500:
        logger.info("request failed path=%s status=%d error=%s", request.url.path, status, exc)
    prefix = "Invalid request parameters: " if status == 400 else ""
    return error_response(status, f"{prefix}{exc}", field=_field_of(exc))


def _handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if exc.status_code == 413:
        return error_response(413, _too_large(request))
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def _too_large(request: Request[Any, Any, Any]) -> str:
    try:
        limit = request.route_handler.resolve_request_max_body_size()
    except Exception:
        limit = None
    if not isinstance(limit, int):
        return "Request body is too large"
    return f"Request body is larger than the limit of {limit} bytes (--max-body-bytes)"


def exception_handlers(*, on_rejected: Callable[[int], None] | None = None) -> ExceptionHandlersMap:
    """The one table from exceptions to HTTP responses, shared by every app.

    :param on_rejected: called with the status of every request refused by a handler (the
        inference service passes ``balancer.count_rejected``, so bad input shows in /metrics).
    """
    handlers: ExceptionHandlersMap = {
        PaddlerError: _handle_paddler_error,  # WireError is one: 400 naming the field
        HTTPException: _handle_http_exception,
    }
    if on_rejected is None:
        return handlers
    counting: ExceptionHandlersMap = {}
    for exc_type, handle in handlers.items():

        def counted(
            request: Request[Any, Any, Any], exc: Exception, handle: Any = handle
        ) -> Response[bytes]:
            response: Response[bytes] = handle(request, exc)
            on_rejected(response.status_code or 500)
            return response

        counting[exc_type] = counted
    return counting


def read_wire(body: bytes, cls: type[Any], *, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Any:
    """Parse a request body as the wire type ``cls``; a ``WireError`` becomes a 400.

    NaN, infinities and nesting deeper than ``max_depth`` are ``WireError``s too.
    """
    if not body.strip():
        raise WireError(["$: request body is empty; expected a JSON document"])
    return converter.loads(body, cls, max_depth=max_depth)


def wire_response(obj: Any, cls: Any = None, *, status_code: int = 200) -> Response[bytes]:
    """A JSON response with the exact wire encoding of ``obj``."""
    text = converter.dumps(obj, cls) if cls is not None else converter.dumps(obj)
    return Response(text.encode(), status_code=status_code, media_type=MediaType.JSON)


def dependencies(**values: Any) -> dict[str, Provide]:
    """Inject fixed objects (the ``Balancer``, the shutdown event, metrics) by name."""

    def provider(value: Any) -> Provide:
        def provide() -> Any:
            return value

        return Provide(provide, sync_to_thread=False, use_cache=True)

    return {name: provider(value) for name, value in values.items()}
