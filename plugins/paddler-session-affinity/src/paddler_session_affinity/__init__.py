"""Session affinity for Paddler: one session header, one agent, while it has a free slot.

Installed, it registers through the entry-point group ``paddler`` as the object ``plugin``.
The policy runs before the built-in least-busy one (which is ``trylast``); it returns
``None`` for requests without the header, so those keep the default behaviour.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from paddler.hookspecs import hookimpl
from paddler.policies import AgentCandidate, RequestInfo, candidate_by_id, least_busy

__all__ = ["DEFAULT_HEADER", "SessionAffinity", "plugin"]

DEFAULT_HEADER = "x-paddler-session"
DEFAULT_MAX_SESSIONS = 10_000


class SessionAffinity:
    """Remembers which agent served each session (bounded, least recently used forgotten)."""

    def __init__(self, *, header: str = DEFAULT_HEADER, max_sessions: int = DEFAULT_MAX_SESSIONS):
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.header = header.lower()
        self.max_sessions = max_sessions
        self._agents: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> SessionAffinity:
        """Settings from ``PADDLER_SESSION_HEADER`` and ``PADDLER_SESSION_MAX``."""
        return cls(
            header=os.environ.get("PADDLER_SESSION_HEADER", DEFAULT_HEADER),
            max_sessions=int(os.environ.get("PADDLER_SESSION_MAX", DEFAULT_MAX_SESSIONS)),
        )

    def agent_for(self, session: str) -> str | None:
        """The agent id the session is bound to, if any."""
        with self._lock:
            return self._agents.get(session)

    def __len__(self) -> int:
        return len(self._agents)

    def _remember(self, session: str, agent_id: str) -> None:
        with self._lock:
            self._agents[session] = agent_id
            self._agents.move_to_end(session)
            while len(self._agents) > self.max_sessions:
                self._agents.popitem(last=False)

    def session_of(self, request: RequestInfo) -> str | None:
        for key, value in request.headers.items():
            if key.lower() == self.header and value:
                return value
        return None

    @hookimpl
    def paddler_select_agent(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> AgentCandidate | None:
        """The session's agent if it has a free slot, else the least busy (then remembered)."""
        session = self.session_of(request)
        if session is None:
            return None
        # One step each on the balancer's Candidates, however many agents there are.
        chosen = candidate_by_id(candidates, self.agent_for(session))
        if chosen is None or chosen.slots_free <= 0:
            chosen = least_busy(candidates)
        if chosen is None:
            return None
        self._remember(session, chosen.id)
        return chosen

    @hookimpl
    def paddler_register_commands(self, cli: Any) -> None:
        """``paddler session-affinity``: show the header and limit this plugin uses."""
        import click

        def show_settings() -> None:
            """Show the session-affinity plugin's settings."""
            click.echo(f"header: {self.header}")
            click.echo(f"max sessions: {self.max_sessions}")

        cli.add_command(
            click.Command("session-affinity", callback=show_settings, help=show_settings.__doc__)
        )


plugin = SessionAffinity.from_environment()
