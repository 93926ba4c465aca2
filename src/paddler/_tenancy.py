"""Who sent a request: a ``Tenant`` (an API key's name and priority), carried in a context var.

The server's key check knows the tenant; the balancer, several calls further down (the OpenAI
layer, the inference socket's request tasks, embedding chunks), needs it for the buffer order
and per-key counts. A context variable carries it there without threading a parameter through
every handler: ``with serving_tenant(t): ...`` around the request, and every ``generate`` or
``embed`` started inside (tasks spawned inside too: they copy the context) belongs to ``t``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Tenant", "current_tenant", "serving_tenant"]


class Tenant:
    """A request's owner, told what happens to each of its requests (plain base: no-ops).

    :param name: the key's name; what metrics and logs show, never the key itself.
    :param priority: higher is served first from the buffer (see ``RequestBuffer``).
    """

    def __init__(self, name: str, *, priority: int = 0) -> None:
        self.name = name
        self.priority = priority

    def __repr__(self) -> str:
        return f"<Tenant {self.name!r} priority={self.priority}>"

    def observe_buffer_wait(self, seconds: float) -> None:
        """One of its requests left the buffer (for a slot, or by timeout) after ``seconds``."""

    def count_tokens(self, *, prompt: int, generated: int) -> None:
        """One of its requests ended with this usage (``Done``; a stopped request's too)."""

    def count_request(self, outcome: str) -> None:
        """One of its requests finished: ``"ok"``, ``"cancelled"`` or the HTTP status."""


_CURRENT: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar(
    "paddler_tenant", default=None
)


def current_tenant() -> Tenant | None:
    """The tenant of the request being handled in this context, if any."""
    return _CURRENT.get()


@contextmanager
def serving_tenant(tenant: Tenant | None) -> Iterator[None]:
    """Requests started inside this block (and in tasks spawned inside) belong to ``tenant``."""
    token = _CURRENT.set(tenant)
    try:
        yield
    finally:
        _CURRENT.reset(token)
