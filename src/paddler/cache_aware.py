"""The ``cache_aware`` balancing policy: send a request where its prompt is already cached.

Agents that negotiated the ``cached_prefixes`` extension report, in every status, the
``paddler.prefixes`` hashes of what their idle slots hold. For a generation request the policy
computes the same chain from the request and picks the candidate holding the deepest prefix
of it (ties: the less busy). The agent's engine then gives the request the slot with that
prefix, so only the new part of the prompt is evaluated.

The rule against hot spots: the cache holder is chosen only while its busy count is at most
``max_extra_busy`` (default 2) above the least busy candidate's. Beyond that the request goes
to the least busy agent, which then caches the prefix too, so a prefix that every request
shares (a long system prompt) spreads over the agents instead of piling onto one. Requests
with no cached prefix anywhere (first turns, embeddings, agents without the extension) go
to the least busy agent, as with ``least_busy``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs

from paddler.hookspecs import hookimpl
from paddler.policies import AgentCandidate, BalancingPolicy, RequestInfo, least_busy
from paddler.prefixes import request_chain, shared_depth

__all__ = ["DEFAULT_MAX_EXTRA_BUSY", "CacheAware", "paddler_balancing_policies"]

DEFAULT_MAX_EXTRA_BUSY = 2


@functools.lru_cache(maxsize=4096)
def _held(cached_prefixes: tuple[str, ...]) -> frozenset[str]:
    """An agent's reported hashes as a set (one per reported tuple, which lives until the
    agent's next status)."""
    return frozenset(cached_prefixes)


@attrs.frozen
class CacheAware:
    """Longest cached prefix among agents with a free slot, within ``max_extra_busy``."""

    max_extra_busy: int = DEFAULT_MAX_EXTRA_BUSY

    def depth(self, chain: Sequence[str], candidate: AgentCandidate) -> int:
        """How many leading messages (or text blocks) of the request ``candidate`` holds."""
        snapshot = candidate.snapshot
        if snapshot is None or not snapshot.cached_prefixes:
            return 0
        return shared_depth(chain, _held(snapshot.cached_prefixes))

    def select(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> AgentCandidate | None:
        fallback = least_busy(candidates)
        chain = request_chain(request.params)
        if fallback is None or not chain:
            return fallback
        best: AgentCandidate | None = None
        best_key = (0, 0)
        for candidate in candidates:  # one step per agent (see paddler.policies.Candidates)
            if candidate.slots_free <= 0:
                continue
            key = (self.depth(chain, candidate), -candidate.slots_busy)
            if key[0] > 0 and (best is None or key > best_key):
                best, best_key = candidate, key
        if best is None or best.slots_busy - fallback.slots_busy > self.max_extra_busy:
            return fallback
        return best


@hookimpl(trylast=True)
def paddler_balancing_policies() -> Sequence[BalancingPolicy]:
    return (
        BalancingPolicy(
            "cache_aware",
            CacheAware().select,
            "the agent holding the longest cached prefix of the prompt, unless it is"
            f" more than {DEFAULT_MAX_EXTRA_BUSY} requests busier than the least busy one",
        ),
    )
