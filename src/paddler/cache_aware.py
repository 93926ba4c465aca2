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

When every slot is busy and requests wait, two more rules keep caches in use (both within the
balancer's bound on reordering the line, ``paddler.balancer._dispatch.ReorderBound``):

* ``pick_waiter``: a slot that frees on an agent goes to the waiter, among the first in line,
  whose prompt that agent holds the deepest prefix of (ties and no prefix: the first in line).
* ``continues`` (the ``follow_up``): the slot that just finished a conversation's turn is kept
  up to ``follow_up_seconds`` for that conversation's next turn, which it holds. Without it a
  waiter (whose own cache was overwritten long ago) takes the slot, and with more busy
  conversations than slots no turn ever finds its cache.
"""

from __future__ import annotations

import functools
import itertools
from collections import OrderedDict
from collections.abc import Sequence

from paddler.hookspecs import hookimpl
from paddler.policies import AgentCandidate, BalancingPolicy, FollowUp, RequestInfo, least_busy
from paddler.prefixes import request_chain, shared_depth
from paddler.wire import AgentSocketExtension

__all__ = [
    "DEFAULT_FOLLOW_UP_SECONDS",
    "DEFAULT_MAX_EXTRA_BUSY",
    "CacheAware",
    "paddler_balancing_policies",
]

DEFAULT_MAX_EXTRA_BUSY = 2
#: How long a finished turn's slot waits for the next turn while others wait.
DEFAULT_FOLLOW_UP_SECONDS = 0.2
#: Agents whose last use the policy remembers (the oldest are forgotten first).
MAX_REMEMBERED_AGENTS = 10_000
#: Requests whose prefix chain the policy remembers (waiters are looked at on every step).
MAX_REMEMBERED_CHAINS = 1024


@functools.lru_cache(maxsize=4096)
def _held(cached_prefixes: tuple[str, ...]) -> frozenset[str]:
    """An agent's reported hashes as a set (one per reported tuple, which lives until the
    agent's next status)."""
    return frozenset(cached_prefixes)


class CacheAware:
    """Longest cached prefix among agents with a free slot, within ``max_extra_busy``; else
    the least busy agent used least recently. One instance per balancer (it remembers)."""

    def __init__(
        self,
        *,
        max_extra_busy: int = DEFAULT_MAX_EXTRA_BUSY,
        follow_up_seconds: float = DEFAULT_FOLLOW_UP_SECONDS,
    ) -> None:
        if max_extra_busy < 0:
            raise ValueError("max_extra_busy must be at least 0")
        if follow_up_seconds < 0:
            raise ValueError("follow_up_seconds must be at least 0")
        self.max_extra_busy = max_extra_busy
        self.follow_up_seconds = follow_up_seconds
        #: agent id -> when this policy last chose it (insertion order: oldest first).
        self._last_used: dict[str, int] = {}
        self._clock = itertools.count()
        #: request id -> (its params, their chain), the most recently used last.
        self._chains: OrderedDict[str, tuple[object, tuple[str, ...]]] = OrderedDict()

    def policy(self) -> BalancingPolicy:
        """This instance as the ``cache_aware`` policy record."""
        follow_up = FollowUp(self.continues, self.follow_up_seconds)
        return BalancingPolicy(
            "cache_aware",
            self.select,
            "the agent holding the longest cached prefix of the prompt, unless it is"
            f" more than {self.max_extra_busy} requests busier than the least busy one",
            agent_reports=frozenset({AgentSocketExtension.CACHED_PREFIXES}),
            pick_waiter=self.pick_waiter,
            follow_up=follow_up if self.follow_up_seconds > 0 else None,
        )

    def chain(self, request: RequestInfo) -> tuple[str, ...]:
        """``request_chain`` of the request, remembered by request id (a waiter is looked at
        on every dispatch step)."""
        remembered = self._chains.get(request.request_id)
        if remembered is not None and remembered[0] is request.params:
            self._chains.move_to_end(request.request_id)
            return remembered[1]
        chain = request_chain(request.params)
        self._chains[request.request_id] = (request.params, chain)
        if len(self._chains) > MAX_REMEMBERED_CHAINS:
            self._chains.popitem(last=False)
        return chain

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
        chain = self.chain(request)
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

    def pick_waiter(self, agent: AgentCandidate, waiters: Sequence[RequestInfo]) -> int | None:
        """The waiter whose prompt ``agent`` holds the deepest prefix of (first on ties);
        None when it holds none of them."""
        best: int | None = None
        best_depth = 0
        for index, request in enumerate(waiters):
            chain = self.chain(request)
            depth = self.depth(chain, agent) if chain else 0
            if depth > best_depth:
                best, best_depth = index, depth
        return best

    def continues(self, previous: RequestInfo, request: RequestInfo) -> bool:
        """Whether ``request``'s prompt begins with all of ``previous``'s (its next turn)."""
        before = self.chain(previous)
        if not before:
            return False
        after = self.chain(request)
        return len(after) >= len(before) and after[len(before) - 1] == before[-1]

    def _used(self, agent_id: str) -> None:
        self._last_used.pop(agent_id, None)
        self._last_used[agent_id] = next(self._clock)
        if len(self._last_used) > MAX_REMEMBERED_AGENTS:
            del self._last_used[next(iter(self._last_used))]


@hookimpl(trylast=True)
def paddler_balancing_policies() -> Sequence[BalancingPolicy]:
    return (CacheAware().policy(),)
