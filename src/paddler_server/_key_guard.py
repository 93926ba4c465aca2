"""ASGI guard of the inference and OpenAI services: API keys, and the keys' limits.

It is installed only when keys are configured (``--api-key``, ``--api-keys-file``): without
them the services are open, as Paddler's are. Installed, it asks for a key on every
path but ``/health`` (and CORS preflights, which browsers send without credentials) needs
``Authorization: Bearer KEY`` (or ``Basic`` with the key as the password, which is what a URL
``http://key:KEY@host`` sends). A WebSocket may instead offer the subprotocols ``paddler`` and
``paddler.bearer.KEY`` (browsers cannot set headers on a WebSocket; a query parameter would
put the key in access logs and browser history, a subprotocol header is not logged); the
server then accepts with ``paddler``.

A missing or wrong key gets 401 in the service's own error shape; an HTTP ``POST`` over one of
its key's limits gets 429 with ``Retry-After``. The key's requests then run with its
``KeyTenant`` in context (``serving_tenant``), which is how the balancer learns the priority
and whom to count. The ``authorization`` header and the bearer subprotocol are removed from
what the app sees, so no key reaches a policy plugin through ``RequestInfo.headers``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from paddler._tenancy import serving_tenant
from paddler_server._api_keys import ApiKeyStore, KeyTenant
from paddler_server._bearer import bearer_token
from paddler_server._key_limits import LimitExceeded

if TYPE_CHECKING:
    from paddler.balancer import Balancer

__all__ = ["BEARER_SUBPROTOCOL_PREFIX", "SUBPROTOCOL", "ApiKeyGuard", "presented_key"]

logger = logging.getLogger("paddler_server.api_keys")

#: What a browser's WebSocket offers beside ``paddler.bearer.KEY``; the server accepts it.
SUBPROTOCOL = "paddler"
BEARER_SUBPROTOCOL_PREFIX = "paddler.bearer."
OPEN_PATHS = frozenset({"/health"})

ErrorStyle = Literal["paddler", "openai"]

MISSING = (
    "Missing API key: send the header Authorization: Bearer <key> "
    "(this service was started with --api-key or --api-keys-file)"
)
INVALID = "Invalid API key"


def presented_key(scope: dict[str, Any]) -> tuple[str | None, list[tuple[bytes, bytes]]]:
    """The key a request presents, and its headers without it (authorization, bearer
    subprotocol)."""
    token: str | None = None
    kept: list[tuple[bytes, bytes]] = []
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            token = token or bearer_token(text) or _basic_password(text)
            continue
        if name == b"sec-websocket-protocol" and BEARER_SUBPROTOCOL_PREFIX.encode() in value:
            offered = [p.strip() for p in value.decode("latin-1").split(",")]
            for protocol in offered:
                if protocol.startswith(BEARER_SUBPROTOCOL_PREFIX) and token is None:
                    token = protocol.removeprefix(BEARER_SUBPROTOCOL_PREFIX) or None
            rest = [p for p in offered if not p.startswith(BEARER_SUBPROTOCOL_PREFIX)]
            if rest:
                kept.append((name, ", ".join(rest).encode("latin-1")))
            continue
        kept.append((name, value))
    return token, kept


class ApiKeyGuard:
    """Wraps one service's ASGI app; ``store`` may change (reloads) while it runs. An empty
    store refuses every request (a keys file with no entries yet)."""

    def __init__(
        self,
        app: Any,
        store: ApiKeyStore,
        *,
        style: ErrorStyle,
        balancer: Balancer | None = None,
        cors_origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.store = store
        self.style = style
        self._balancer = balancer
        self._origins = frozenset(cors_origins)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the wrapped app's attributes stay reachable

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope.get("type")
        if (
            kind not in ("http", "websocket")
            or scope.get("path") in OPEN_PATHS
            or _is_preflight(scope)
        ):
            await self.app(scope, receive, send)
            return
        token, headers = presented_key(scope)
        tenant = self.store.authenticate(token)
        if tenant is None:
            reason = "missing" if token is None else "invalid"
            self.store.count_refused(reason)
            logger.info("API key refused reason=%s path=%s", reason, scope.get("path"))
            await self._refuse_key(scope, receive, send, MISSING if token is None else INVALID)
            return
        scope = {**scope, "headers": headers}
        if kind == "websocket":
            if "subprotocols" in scope:
                scope["subprotocols"] = [
                    p for p in scope["subprotocols"] if not p.startswith(BEARER_SUBPROTOCOL_PREFIX)
                ]
            with serving_tenant(tenant):
                await self.app(scope, receive, _accepting_subprotocol(scope, send))
            return
        if scope.get("method") != "POST":  # listings (GET /v1/models): a key, no limits
            with serving_tenant(tenant):
                await self.app(scope, receive, send)
            return
        try:
            tenant.limiter.admit()
        except LimitExceeded as exc:
            self._count_limited(tenant)
            logger.info("API key over its limit key=%s limit=%s", tenant.name, exc.limit)
            await self._send_http(scope, send, *self._limited(exc))
            return
        try:
            with serving_tenant(tenant):
                await self.app(scope, receive, send)
        finally:
            tenant.limiter.release()

    def _count_limited(self, tenant: KeyTenant) -> None:
        balancer = self._balancer
        with serving_tenant(tenant):
            if balancer is not None:  # global requests_total{outcome="429"}, and the key's own
                balancer.count_rejected(429)
            else:
                tenant.count_request("429")

    # -- refusals -----------------------------------------------------------------------

    def _unauthorized(self, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"www-authenticate": "Bearer"}
        if self.style == "openai":
            body = _openai_error(message, "invalid_request_error", "invalid_api_key")
        else:
            body = {"error": {"code": 401, "description": message}}
        return 401, body, headers

    def _limited(self, exc: LimitExceeded) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"retry-after": str(exc.retry_after)}
        if self.style == "openai":
            body = _openai_error(str(exc), exc.kind, "rate_limit_exceeded")
        else:
            body = {"error": {"code": 429, "description": str(exc)}}
        return 429, body, headers

    async def _refuse_key(self, scope: Any, receive: Any, send: Any, message: str) -> None:
        status, body, headers = self._unauthorized(message)
        if scope["type"] == "http":
            await self._send_http(scope, send, status, body, headers)
            return
        connect = await receive()
        if connect.get("type") != "websocket.connect":
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            raw = self._raw_headers(scope, body, headers)
            await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
            await send({"type": "websocket.http.response.body", "body": _dumps(body)})
        else:  # the server cannot answer a handshake with a body: it answers 403
            await send({"type": "websocket.close", "code": 1008})

    async def _send_http(
        self, scope: Any, send: Any, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        raw = self._raw_headers(scope, body, headers)
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": _dumps(body)})

    def _raw_headers(
        self, scope: Any, body: dict[str, Any], headers: dict[str, str]
    ) -> list[tuple[bytes, bytes]]:
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_dumps(body))).encode()),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        origin = _header(scope, b"origin")
        if origin is not None and origin.decode("latin-1") in self._origins:
            # The browser may read the refusal (the app's CORS rules are not reached).
            raw += [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        return raw


def _accepting_subprotocol(scope: Any, send: Any) -> Any:
    """``send`` that accepts with ``paddler`` when the client offered it (browsers fail a
    socket whose server picks none of the offered subprotocols)."""
    if SUBPROTOCOL not in scope.get("subprotocols", ()):
        return send

    async def accepting(message: Any) -> None:
        if message.get("type") == "websocket.accept" and not message.get("subprotocol"):
            message = {**message, "subprotocol": SUBPROTOCOL}
        await send(message)

    return accepting


def _basic_password(authorization: str) -> str | None:
    """The password of ``Authorization: Basic``: what a URL ``http://key:KEY@host`` sends,
    the one way to give Paddler's own ``paddler-client`` a key on its WebSocket too."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon and password else None


def _openai_error(message: str, kind: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _header(scope: Any, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _is_preflight(scope: Any) -> bool:
    return (
        scope.get("type") == "http"
        and scope.get("method") == "OPTIONS"
        and _header(scope, b"access-control-request-method") is not None
    )
