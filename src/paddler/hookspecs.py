"""Hook specifications of project ``paddler`` (pluggy), all synchronous and free of I/O.

Plugins implement them with ``@paddler.hookimpl``; the built-in behaviour is itself a plugin
(``paddler.policies``, ``paddler.transports``) registered with ``trylast=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from paddler.balancer._state_store import StateStore
    from paddler.policies import AgentCandidate, BalancingPolicy, RequestInfo
    from paddler.transports._base import AgentTransport

__all__ = [
    "hookimpl",
    "hookspec",
    "paddler_balancing_policies",
    "paddler_register_commands",
    "paddler_select_agent",
    "paddler_state_store_for_url",
    "paddler_transport_for_url",
]

hookspec = pluggy.HookspecMarker("paddler")
hookimpl = pluggy.HookimplMarker("paddler")


@hookspec(firstresult=True)
def paddler_select_agent(
    request: RequestInfo, candidates: Sequence[AgentCandidate]
) -> AgentCandidate | None:
    """Choose the agent that serves ``request``.

    :param request: the request being placed (kind, headers, wire params, tenant).
    :param candidates: agents with at least one free slot, never empty: a
        ``paddler.policies.Candidates`` view, least busy first. ``len``, ``candidates[0]``,
        ``candidates.least_busy()`` and ``candidates.get(agent_id)`` cost the same for any
        number of agents; iterating costs one step per agent, on every dispatch.
    :return: one of ``candidates``; ``None`` defers to the next plugin (the built-in least-busy
        policy runs last). Must decide from the snapshot alone, without I/O.
    """


@hookspec
def paddler_balancing_policies() -> Sequence[BalancingPolicy]:
    """Offer named policies that ``paddler balancer --balancing-policy NAME`` can choose.

    The chosen one (``paddler.policies.use_policy``) decides every request that no
    ``paddler_select_agent`` hook of a plugin took; the built-in ones are ``least_busy``
    (the default) and ``cache_aware``. Build the objects here without I/O.

    :return: ``paddler.policies.BalancingPolicy`` records (name, select, description; and
        optionally ``pick_waiter`` and ``follow_up``, which decide who gets a slot while
        requests wait, within the balancer's bound).
    """
    return ()


@hookspec(firstresult=True)
def paddler_transport_for_url(url: str) -> AgentTransport | None:
    """Return a transport able to reach the balancer at ``url``.

    :param url: the management URL an agent was given (``ws://host:port``, ``inproc://name``).
    :return: an ``AgentTransport``, or ``None`` when this plugin does not handle the scheme.
    """


@hookspec(firstresult=True)
def paddler_state_store_for_url(url: str) -> StateStore | None:
    """Return the store that keeps the desired state at ``url`` (``--state-database``).

    ``paddler.balancer.open_state_store`` calls it; the built-in ``memory://`` and ``file://``
    stores answer last. Build the store here without I/O: the balancer calls its async
    ``load()`` when it starts. Raise ``paddler.balancer.StateStoreError`` for a URL of your
    scheme that is malformed (the message reaches the operator as it is).

    :param url: the state database URL, exactly as given.
    :return: a ``paddler.balancer.StateStore``, or ``None`` when this plugin does not handle
        the scheme.
    """


@hookspec
def paddler_register_commands(cli: Any) -> None:
    """Add subcommands to the ``paddler`` command line.

    :param cli: the root ``click.Group``; call ``cli.command()`` / ``cli.add_command()`` on it.
    :return: nothing.
    """
