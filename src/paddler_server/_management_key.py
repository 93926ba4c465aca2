"""``--management-api-key``: the management API (and so the admin panel) needs a bearer key.

Every management route wants ``Authorization: Bearer <key>``, including ``/metrics`` (it
names agents, the model and per-key traffic; Prometheus sends the key with its
``authorization`` scrape setting) and the SSE streams (the panel reads them with ``fetch`` so
it can send the header). Two routes stay open: ``/health``, for probes, and the agent socket,
which agents join with their own token (``--agent-token``, see ``_agent_tokens``).

The check is a Litestar guard, so its ``401`` goes through the app's CORS layer and a browser
page on an allowed origin can read it (the panel shows its login prompt on that ``401``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.types import Guard

from paddler_server._agent_tokens import AGENT_SOCKET_PREFIX, AgentTokenGate
from paddler_server._bearer import SecretSet, bearer_token

if TYPE_CHECKING:
    from paddler_server._settings import BalancerSettings

__all__ = ["OPEN_PATHS", "management_access", "management_key_guard"]

#: Paths that never need the management key.
OPEN_PATHS = frozenset({"/health"})


def management_key_guard(keys: SecretSet) -> Guard:
    """A guard refusing, with ``401``, requests that lack one of ``keys`` as a bearer key."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        path = connection.scope["path"]
        if path in OPEN_PATHS or path.startswith(AGENT_SOCKET_PREFIX):
            return
        presented = bearer_token(connection.headers.get("authorization"))
        if presented is None:
            raise NotAuthorizedException(
                "This management API needs its key: send Authorization: Bearer <key> "
                "(the balancer's --management-api-key)",
                headers={"WWW-Authenticate": 'Bearer realm="paddler-management"'},
            )
        if keys.match(presented) is None:
            raise NotAuthorizedException(
                "The management API key is wrong (compare with --management-api-key)",
                headers={
                    "WWW-Authenticate": 'Bearer realm="paddler-management", error="invalid_token"'
                },
            )

    return guard


def management_access(settings: BalancerSettings) -> tuple[list[Guard], list[DefineMiddleware]]:
    """The management app's guards (the management key) and middleware (agent tokens)."""
    guards: list[Guard] = []
    middleware: list[DefineMiddleware] = []
    if settings.management_api_key:
        guards.append(management_key_guard(SecretSet([settings.management_api_key])))
    if settings.agent_tokens:
        middleware.append(DefineMiddleware(AgentTokenGate, tokens=SecretSet(settings.agent_tokens)))
    return guards, middleware
