"""The ``cache_aware`` balancing policy: send a request where its prompt is already cached.

Agents that negotiated the ``cached_prefixes`` extension report, in every status, the
``paddler.prefixes`` hashes of what their idle slots hold. For a generation request the policy
computes the same chain from the request and picks the candidate holding the deepest prefix
of it (ties: the less busy). The agent's engine then gives the request the slot with that
prefix, so only the new part of the prompt is evaluated.

The rule against hot spots: the cache holder is chosen only while its busy count is at most
``max_extra_busy`` (default 2) above the least busy candidate's. Beyond that the request goes
to the least busy agent, which then caches the prefix too, so a prefix that every request
shares (a long system prompt) spreads over the agents instead of piling onto one.

Requests with no cached prefix anywhere (first turns, embeddings, agents without the
extension) go to a least busy agent, and among equally busy ones to the one this policy sent
a request to least recently. Plain least busy would send every request of a quiet cluster to
the same first idle agent, whose slots would then keep overwriting each other while the other
agents sit empty; rotating spreads the conversations, so each keeps its slot somewhere.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

from paddler.hookspecs import hookimpl
from paddler.policies import AgentCandidate, BalancingPolicy, RequestInfo, least_busy
from paddler.prefixes import request_chain, shared_depth
from paddler.wire import AgentSocketExtension

__all__ = ["DEFAULT_MAX_EXTRA_BUSY", "CacheAware", "paddler_balancing_policies"]

DEFAULT_MAX_EXTRA_BUSY = 2
#: Agents whose last use the policy remembers (the oldest are forgotten first).
MAX_REMEMBERED_AGENTS = 10_000


@functools.lru_cache(maxsize=4096)
def _held(cached_prefixes: tuple[str, ...]) -> frozenset[str]:
    """An agent's reported hashes as a set (one per reported tuple, which lives until the
    agent's next status)."""
    return frozenset(cached_prefixes)


class CacheAware:
    """Longest cached prefix among agents with a free slot, within ``max_extra_busy``; else
    the least busy agent used least recently. One instance per balancer (it remembers)."""

    def __init__(self, *, max_extra_busy: int = DEFAULT_MAX_EXTRA_BUSY) -> None:
        if max_extra_busy < 0:
            raise ValueError("max_extra_busy must be at least 0")
        self.max_extra_busy = max_extra_busy
        #: agent id -> when this policy last chose it (insertion order: oldest first).
        self._last_used: dict[str, int] = {}
        self._clock = itertools.count()

    def depth(self, chain: Sequence[str], candidate: AgentCandidate) -> int:
        """How many leading messages (or text blocks) of the request ``candidate`` holds."""
        snapshot = candidate.snapshot
        if snapshot is None or not snapshot.cached_prefixes:
            return 0
        return shared_depth(chain, _held(snapshot.cached_prefixes))

    def select(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> AgentCandidate | None:
        least = least_busy(candidates)
        if least is None:
            return None
        chain = request_chain(request.params)
        fallback, fallback_used = least, self._last_used.get(least.id, -1)
        best: AgentCandidate | None = None
        best_key = (0, 0)
        for candidate in candidates:  # one step per agent (see paddler.policies.Candidates)
            if candidate.slots_free <= 0:
                continue
            used = self._last_used.get(candidate.id, -1)
            if candidate.slots_busy == least.slots_busy and used < fallback_used:
                fallback, fallback_used = candidate, used
            if not chain:
                continue
            key = (self.depth(chain, candidate), -candidate.slots_busy)
            if key[0] > 0 and (best is None or key > best_key):
                best, best_key = candidate, key
        if best is None or best.slots_busy - least.slots_busy > self.max_extra_busy:
            best = fallback
        self._used(best.id)
        return best

    def _used(self, agent_id: str) -> None:
        self._last_used.pop(agent_id, None)
        self._last_used[agent_id] = next(self._clock)
        if len(self._last_used) > MAX_REMEMBERED_AGENTS:
            del self._last_used[next(iter(self._last_used))]


@hookimpl(trylast=True)
def paddler_balancing_policies() -> Sequence[BalancingPolicy]:
    return (
        BalancingPolicy(
            "cache_aware",
            CacheAware().select,
            "the agent holding the longest cached prefix of the prompt, unless it is"
            f" more than {DEFAULT_MAX_EXTRA_BUSY} requests busier than the least busy one",
            agent_reports=frozenset({AgentSocketExtension.CACHED_PREFIXES}),
        ),
    )
