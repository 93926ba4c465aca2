"""Agent join tokens (``--agent-token``), checked at the agent socket's WebSocket handshake.

An agent presents its token as ``Authorization: Bearer <token>`` on the upgrade request
(``paddler agent --token``). Without the right one the handshake is answered ``401``/``403``
with a reason, before the balancer sees the agent: it never registers, never gets a prompt.

Agent ids are bound to tokens: the first token an id registers with is the only one that can
use that id again, for as long as the balancer runs. With one shared token every agent holds
the same token, so the binding stops only agents without it; give each machine its own token
(``--agent-token`` is repeatable) and an agent holding one token can no longer take over the
id of an agent holding another.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from paddler_server._bearer import SecretSet, bearer_token
from paddler_server._refusal import refuse, scope_header

__all__ = ["AGENT_SOCKET_PREFIX", "AgentTokenGate"]

logger = logging.getLogger("paddler_server.agent_tokens")

AGENT_SOCKET_PREFIX = "/api/v1/agent_socket/"
#: Seconds between warnings about the same refused agent id.
WARN_EVERY = 60.0
MAX_WARNED_IDS = 4096


class AgentTokenGate:
    """ASGI middleware for the management service: agent sockets need an accepted token."""

    def __init__(self, app: Any, tokens: SecretSet) -> None:
        if not tokens:
            raise ValueError("AgentTokenGate needs at least one token")
        self.app = app
        self.tokens = tokens
        #: agent id -> digest of the token it first registered with.
        self._bound: dict[str, bytes] = {}
        #: agent id -> when its last refusal was logged as a warning.
        self._warned: dict[str, float] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "websocket" or not path.startswith(AGENT_SOCKET_PREFIX):
            await self.app(scope, receive, send)
            return
        agent_id = path[len(AGENT_SOCKET_PREFIX) :]
        refusal = self.check(agent_id, scope_header(scope, b"authorization"))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, reason = refusal
        client = scope.get("client") or ("?", 0)
        level = logging.WARNING if self._first_in_a_while(agent_id) else logging.DEBUG
        logger.log(level, "agent refused agent=%s client=%s reason=%s", agent_id, client[0], reason)
        await refuse(scope, receive, send, status, reason)

    def _first_in_a_while(self, agent_id: str) -> bool:
        """Whether this id's refusal is the first in ``WARN_EVERY`` seconds (an agent retries
        every second; its refusals after the first are debug lines)."""
        now = time.monotonic()
        if len(self._warned) > MAX_WARNED_IDS:
            self._warned.clear()  # ids are the caller's choice: keep the table small
        if now - self._warned.get(agent_id, -WARN_EVERY) < WARN_EVERY:
            return False
        self._warned[agent_id] = now
        return True

    def check(self, agent_id: str, authorization: str | None) -> tuple[int, str] | None:
        """``None`` when the agent may register, else ``(status, reason)``; binds new ids."""
        token = bearer_token(authorization)
        if token is None:
            return 401, "this balancer needs an agent token (paddler agent --token)"
        token_digest = self.tokens.match(token)
        if token_digest is None:
            return 403, "the agent token is not one this balancer accepts"
        bound = self._bound.setdefault(agent_id, token_digest)
        if bound != token_digest:
            return 403, f"agent id {agent_id!r} belongs to an agent with another token"
        return None
