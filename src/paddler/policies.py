"""Balancing policies: what a policy sees, and the built-in least-busy policy (spec §4.1).

A policy is a ``paddler_select_agent(request, candidates)`` hook (see ``paddler.hookspecs``),
or a named ``BalancingPolicy`` that a ``paddler_balancing_policies`` hook offers and
``use_policy`` (``paddler balancer --balancing-policy NAME``) puts in least busy's place.
``RequestInfo`` is the request being placed, ``AgentCandidate`` one agent with a free slot,
``Candidates`` the view of them all that the balancer passes (least busy first). The
built-in policy is this module, registered as a plugin with ``trylast=True`` so that any
installed policy runs first.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import attrs
import pluggy

from paddler._tenancy import Tenant
from paddler.errors import PaddlerError
from paddler.hookspecs import hookimpl
from paddler.wire import (
    DEFAULT_POOL,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
    SlotAggregatedStatusSnapshot,
)

__all__ = [
    "DEFAULT_POLICY",
    "AgentCandidate",
    "BalancingPolicy",
    "Candidates",
    "FollowUp",
    "PickWaiter",
    "RequestInfo",
    "RequestKind",
    "RequestParams",
    "UnknownPolicy",
    "candidate_by_id",
    "chosen_agent_reports",
    "chosen_policy",
    "known_policies",
    "least_busy",
    "paddler_balancing_policies",
    "paddler_select_agent",
    "use_policy",
]

logger = logging.getLogger("paddler.policies")

#: What ``--balancing-policy`` chooses when it is not given.
DEFAULT_POLICY = "least_busy"

RequestKind = Literal["generate", "embed"]

RequestParams = (
    ContinueFromConversationHistoryParams
    | ContinueFromRawPromptParams
    | GenerateEmbeddingBatchParams
)
"""What a client asks the balancer to place: a generation or an embedding batch (one chunk)."""


@attrs.frozen
class RequestInfo:
    """The request being placed, as a policy may inspect it.

    ``headers`` are the client's HTTP/WebSocket headers (lower-case keys), so a plugin can route
    by session cookie or ``x-session-id``; ``params`` is the wire request itself.
    """

    request_id: str
    kind: RequestKind
    params: RequestParams | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    client_request_id: str | None = None
    #: Who sent it (an API key's name and priority); None when the service has no keys.
    tenant: Tenant | None = None
    #: The model pool it was sent to (``paddler.wire.DEFAULT_POOL`` unless one was chosen); the
    #: candidates a policy sees are that pool's agents only.
    pool: str = DEFAULT_POOL
    #: Agents it must not go to: it failed there (a retry or a resumed stream; see
    #: ``docs/failover.md``). The balancer removes them before a policy sees the candidates.
    excluded_agents: frozenset[str] = frozenset()
    #: Agent-socket extensions its agent must speak (``continuation`` for a resumed stream);
    #: agents without them are removed from the candidates too.
    required_extensions: frozenset[str] = frozenset()

    @property
    def priority(self) -> int:
        """The tenant's priority (0 without one): higher leaves the buffer first."""
        return 0 if self.tenant is None else self.tenant.priority


@attrs.frozen
class AgentCandidate:
    """An agent that could take the request right now (it has a free slot).

    ``slots_busy`` is the balancer's own count of requests it dispatched there, not what the
    agent reports. ``snapshot`` is the agent's last reported status.
    """

    id: str
    name: str | None
    slots_total: int
    slots_busy: int
    snapshot: SlotAggregatedStatusSnapshot | None = None

    @property
    def slots_free(self) -> int:
        return self.slots_total - self.slots_busy


class Candidates(Sequence[AgentCandidate]):
    """The candidates the balancer passes to a policy: a read-only view, least busy first.

    It is a ``Sequence`` (a policy may iterate it, index it, take ``len``) kept by the
    balancer's pool as slots are claimed and freed, so building it costs nothing however many
    agents there are. Iterating it does cost one step per agent; ``least_busy()`` and
    ``get(agent_id)`` do not. Agents with the same busy count come in registration order, so
    an idle cluster sends sequential requests to the same first agent (whose prompt cache is
    warm). Valid only during the hook call.
    """

    @abc.abstractmethod
    def least_busy(self) -> AgentCandidate | None:
        """The first candidate: fewest busy slots (absolute count)."""

    @abc.abstractmethod
    def get(self, agent_id: str) -> AgentCandidate | None:
        """The candidate with this id, if that agent has a free slot."""


def least_busy(candidates: Sequence[AgentCandidate]) -> AgentCandidate | None:
    """The candidate with the fewest busy slots; ties go to the first one.

    On the balancer's ``Candidates`` this takes one step; on a plain sequence it scans.
    """
    if isinstance(candidates, Candidates):
        return candidates.least_busy()
    best: AgentCandidate | None = None
    for candidate in candidates:
        if candidate.slots_free <= 0:
            continue
        if best is None or candidate.slots_busy < best.slots_busy:
            best = candidate
    return best


def candidate_by_id(
    candidates: Sequence[AgentCandidate], agent_id: str | None
) -> AgentCandidate | None:
    """The candidate for ``agent_id`` (one step on ``Candidates``; a scan otherwise)."""
    if agent_id is None:
        return None
    if isinstance(candidates, Candidates):
        return candidates.get(agent_id)
    return next((c for c in candidates if c.id == agent_id), None)


@hookimpl(trylast=True)
def paddler_select_agent(
    request: RequestInfo, candidates: Sequence[AgentCandidate]
) -> AgentCandidate | None:
    return least_busy(candidates)


SelectAgent = Callable[[RequestInfo, Sequence[AgentCandidate]], AgentCandidate | None]

PickWaiter = Callable[[AgentCandidate, Sequence[RequestInfo]], int | None]
"""``pick(agent, waiters)``: which of the waiters (the front of the line, in serving order)
should get the free slot on ``agent``, as an index into ``waiters``; ``None`` keeps the order."""


@attrs.frozen
class FollowUp:
    """Keep a slot that just finished a request, while others wait, for the request that
    continues it (a conversation's next turn), which the slot's cache serves best.

    ``continues(previous, request)`` says whether ``request`` continues ``previous``; the
    slot is kept at most ``seconds`` (then it goes to the line). Synchronous, no I/O.
    """

    continues: Callable[[RequestInfo, RequestInfo], bool]
    seconds: float = 0.1


@attrs.frozen
class BalancingPolicy:
    """A policy by name, as ``--balancing-policy`` chooses it.

    ``select`` has ``paddler_select_agent``'s contract: synchronous, no I/O, returns one of
    the candidates or ``None`` (then least busy decides).
    """

    name: str
    select: SelectAgent
    description: str = ""
    #: Agent-socket extensions whose reports the policy reads (``cached_prefixes`` for
    #: ``cache_aware``). Agents report them only while such a policy is chosen: reports cost
    #: every request a status frame.
    agent_reports: frozenset[str] = frozenset()
    #: While requests wait, who gets a slot that frees: ``None`` (least busy's choice) serves
    #: the line in order. A pick may serve a later waiter first, within the balancer's bound
    #: (``ReorderBound`` in ``paddler.balancer._dispatch``: one of the first few waiters, and
    #: never past a waiter that was passed too often).
    pick_waiter: PickWaiter | None = None
    #: Keep a finished request's slot briefly for its continuation (``FollowUp``), within the
    #: same bound; ``None`` frees it at once.
    follow_up: FollowUp | None = None


class UnknownPolicy(PaddlerError, ValueError):
    """``--balancing-policy`` names a policy no installed plugin offers."""


def known_policies(plugin_manager: pluggy.PluginManager) -> dict[str, BalancingPolicy]:
    """Every named policy the plugins offer; for a name offered twice, the first plugin's."""
    known: dict[str, BalancingPolicy] = {}
    for offered in plugin_manager.hook.paddler_balancing_policies():
        for policy in offered:
            if policy.name in known:
                logger.warning(
                    "balancing policy %r is offered twice; keeping the first", policy.name
                )
                continue
            known[policy.name] = policy
    return known


class _ChosenPolicy:
    """The plugin ``use_policy`` registers: the named policy, just ahead of least busy."""

    def __init__(self, policy: BalancingPolicy) -> None:
        self.policy = policy

    @hookimpl(trylast=True)
    def paddler_select_agent(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> AgentCandidate | None:
        return self.policy.select(request, candidates)


_CHOSEN = "paddler.policies.chosen"


def chosen_agent_reports(plugin_manager: pluggy.PluginManager) -> frozenset[str]:
    """The agent reports (extension names) the policy ``use_policy`` chose reads; none for
    least busy."""
    chosen = plugin_manager.get_plugin(_CHOSEN)
    return chosen.policy.agent_reports if isinstance(chosen, _ChosenPolicy) else frozenset()


def chosen_policy(plugin_manager: pluggy.PluginManager) -> BalancingPolicy | None:
    """The policy ``use_policy`` chose (None: least busy, never chosen explicitly)."""
    chosen = plugin_manager.get_plugin(_CHOSEN)
    return chosen.policy if isinstance(chosen, _ChosenPolicy) else None


def use_policy(plugin_manager: pluggy.PluginManager, name: str) -> BalancingPolicy:
    """Make the policy called ``name`` decide what no ``paddler_select_agent`` plugin takes.

    Plugins' own ``paddler_select_agent`` hooks (session affinity, say) still come first;
    least busy stays the last word for requests the policy returns ``None`` for. Calling it
    again replaces the choice. Raises ``UnknownPolicy`` naming the known policies.
    """
    known = known_policies(plugin_manager)
    policy = known.get(name)
    if policy is None:
        raise UnknownPolicy(
            f"unknown balancing policy {name!r}; known policies: {', '.join(sorted(known))}"
        )
    previous = plugin_manager.get_plugin(_CHOSEN)
    if previous is not None:
        plugin_manager.unregister(previous, name=_CHOSEN)
    # Among trylast hooks pluggy calls the earliest registered last: re-register least busy
    # (this module) after the chosen policy so that it stays the last word.
    default = plugin_manager.get_plugin(__name__)
    if default is not None:
        plugin_manager.unregister(default, name=__name__)
    plugin_manager.register(_ChosenPolicy(policy), name=_CHOSEN)
    if default is not None:
        plugin_manager.register(default, name=__name__)
    return policy


def _least_busy_policy(
    request: RequestInfo, candidates: Sequence[AgentCandidate]
) -> AgentCandidate | None:
    return least_busy(candidates)


@hookimpl(trylast=True)
def paddler_balancing_policies() -> Sequence[BalancingPolicy]:
    return (
        BalancingPolicy(
            DEFAULT_POLICY,
            _least_busy_policy,
            "the agent with the fewest busy slots (Paddler's policy)",
        ),
    )
