"""AgentPool: the connected agents, what they report, and the balancer's own busy counts.

Only ``slots_total`` (and the rest of the status) comes from the agent; ``slots_busy`` is
counted here, claimed and released synchronously, so on one event loop a claim is atomic
(spec §12.2 wants a compare-and-swap; a sync step without awaits gives the same guarantee).
"""

from __future__ import annotations

import heapq
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, overload

import attrs

from paddler.policies import AgentCandidate, Candidates
from paddler.wire import SlotAggregatedStatusSnapshot

if TYPE_CHECKING:
    from paddler.balancer._connection import AgentConnection
    from paddler.wire import AgentControllerSnapshot

__all__ = ["AgentEntry", "AgentPool"]


#: The status fields whose change matters: not the agent's own busy count, not the version,
#: not the cached prefixes (they only steer the ``cache_aware`` policy, which reads the stored
#: status). Read as one tuple, so every agent's once-a-second heartbeat is one comparison.
_comparable: Callable[[SlotAggregatedStatusSnapshot], tuple[object, ...]] = operator.attrgetter(
    *(
        field.name
        for field in attrs.fields(SlotAggregatedStatusSnapshot)
        if field.name not in ("slots_processing", "version", "cached_prefixes")
    )
)


@attrs.define(eq=False)
class AgentEntry:
    """One registered agent (mutable runtime state, owned by the balancer)."""

    id: str
    name: str | None
    status: SlotAggregatedStatusSnapshot
    #: Its socket's outbox and routes; None only for entries built without one (tests).
    connection: AgentConnection | None = None
    #: Requests the balancer dispatched here and has not seen end.
    dispatched: int = 0
    #: Requests the agent was already serving when it registered (its ``slots_processing``
    #: in ``RegisterAgent``, as Paddler seeds it): after a reconnect they still hold slots.
    #: Paddler keeps this count for good; we lower it as the agent reports fewer in flight.
    inherited: int = 0
    #: Agent-socket extensions both ends announced (``paddler.wire.AgentSocketExtension``);
    #: empty for a Paddler 4.1 agent.
    extensions: frozenset[str] = frozenset()
    #: Whether dropping sampling overrides for this (Paddler) agent was logged already.
    overrides_dropped_logged: bool = False
    connected_at: float = attrs.field(factory=time.monotonic)

    @property
    def slots_busy(self) -> int:
        return self.dispatched + self.inherited

    @property
    def slots_total(self) -> int:
        return max(0, self.status.slots_total)

    @property
    def slots_free(self) -> int:
        return self.slots_total - self.slots_busy

    def snapshot(self) -> AgentControllerSnapshot:
        """As the management API shows it: ``slots_processing`` is the balancer's count."""
        from paddler.wire import AgentControllerSnapshot

        status = self.status
        return AgentControllerSnapshot(
            id=self.id,
            name=self.name,
            desired_slots_total=status.desired_slots_total,
            slots_total=status.slots_total,
            slots_processing=self.slots_busy,
            download_current=status.download_current,
            download_total=status.download_total,
            download_filename=status.download_filename,
            download_indeterminate=status.download_indeterminate,
            issues=status.issues,
            model_path=status.model_path,
            state_application_status=status.state_application_status,
            uses_chat_template_override=status.uses_chat_template_override,
        )

    def candidate(self) -> AgentCandidate:
        return AgentCandidate(
            id=self.id,
            name=self.name,
            slots_total=self.slots_total,
            slots_busy=self.slots_busy,
            snapshot=self.status,
        )


class AgentPool:
    """The registered agents in registration order, with balancer-side slot accounting.

    Agents with a free slot are also indexed by their busy count, and the slot totals are kept
    as running sums, so that finding the least busy agent, claiming, releasing and applying a
    status cost the same with one agent or thousands. ``AgentEntry``'s counts and status
    change only through this class (``claim``, ``release``, ``apply_status``).
    """

    def __init__(self) -> None:
        self._agents: dict[str, AgentEntry] = {}
        #: busy count -> the agents with a free slot at that count.
        self._free: dict[int, _Bucket] = {}
        #: agent id -> its key in ``_free`` (only agents with a free slot are indexed).
        self._level: dict[str, int] = {}
        #: agent id -> its registration number: ties go to the agent registered first.
        self._order: dict[str, int] = {}
        self._registered = 0
        self._slots_total = 0
        self._slots_busy = 0
        self._view = _FreeAgents(self)

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[AgentEntry]:
        return iter(list(self._agents.values()))

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    def get(self, agent_id: str) -> AgentEntry | None:
        return self._agents.get(agent_id)

    def add(self, entry: AgentEntry) -> None:
        if entry.id in self._agents:
            raise ValueError(f"agent {entry.id!r} is already registered")
        self._agents[entry.id] = entry
        self._order[entry.id] = self._registered
        self._registered += 1
        self._slots_total += entry.slots_total
        self._slots_busy += entry.slots_busy
        self._index(entry)

    def remove(self, agent_id: str) -> AgentEntry | None:
        entry = self._agents.pop(agent_id, None)
        if entry is not None:
            self._unindex(entry)
            del self._order[agent_id]
            self._slots_total -= entry.slots_total
            self._slots_busy -= entry.slots_busy
        return entry

    def apply_status(self, agent_id: str, status: SlotAggregatedStatusSnapshot) -> bool:
        """Take a reported status; return True when it changed something that matters.

        Snapshots older than the newest seen are discarded (they can cross on the wire).
        """
        entry = self._agents.get(agent_id)
        if entry is None or status.version < entry.status.version:
            return False
        changed: bool = _comparable(status) != _comparable(entry.status)
        inherited = min(entry.inherited, max(0, status.slots_processing))
        if not changed and inherited == entry.inherited:
            entry.status = status  # the usual heartbeat: nothing to re-index
            return False
        self._unindex(entry)
        self._slots_total -= entry.slots_total
        self._slots_busy -= entry.slots_busy
        entry.status = status
        entry.inherited = inherited  # some of what it served at registration may have ended
        self._slots_total += entry.slots_total
        self._slots_busy += entry.slots_busy
        self._index(entry)
        return True

    def candidates(self) -> Candidates:
        """Agents that can take one more request now (never one with 0 slots or draining).

        A live view, least busy first (see ``paddler.policies.Candidates``).
        """
        return self._view

    def claim(self, agent_id: str) -> bool:
        """Count one more request on ``agent_id``; False if it has no free slot (or is gone)."""
        entry = self._agents.get(agent_id)
        if entry is None or entry.slots_free <= 0:
            return False
        self._unindex(entry)
        entry.dispatched += 1
        self._slots_busy += 1
        self._index(entry)
        return True

    def release(self, agent_id: str) -> bool:
        """Count one request less on ``agent_id``; False if the agent is no longer registered."""
        entry = self._agents.get(agent_id)
        if entry is None:
            return False
        if entry.dispatched > 0:
            self._unindex(entry)
            entry.dispatched -= 1
            self._slots_busy -= 1
            self._index(entry)
        return True

    @property
    def slots_total(self) -> int:
        return self._slots_total

    @property
    def slots_busy(self) -> int:
        return self._slots_busy

    # -- the free-slot index -------------------------------------------------------------

    def _index(self, entry: AgentEntry) -> None:
        if entry.slots_free > 0:
            level = entry.slots_busy
            bucket = self._free.get(level)
            if bucket is None:
                bucket = self._free[level] = _Bucket()
            bucket.add(self._order[entry.id], entry)
            self._level[entry.id] = level

    def _unindex(self, entry: AgentEntry) -> None:
        level = self._level.pop(entry.id, None)
        if level is not None:
            bucket = self._free[level]
            bucket.discard(entry.id)
            if not bucket.members:
                del self._free[level]

    def _least_busy(self) -> AgentEntry | None:
        if not self._free:
            return None
        return self._free[min(self._free)].first()  # as many keys as distinct busy counts

    def _free_entries(self) -> Iterator[AgentEntry]:
        for level in sorted(self._free):
            yield from self._free[level].ordered()

    def _free_entry(self, agent_id: str) -> AgentEntry | None:
        return self._agents.get(agent_id) if agent_id in self._level else None


class _Bucket:
    """The agents with a free slot at one busy count, first registered first.

    ``members`` says who is in; ``heap`` orders them by registration number, with stale
    entries (agents that left since) skipped when they reach the top and compacted away when
    they outnumber the members, so adding, removing and finding the first are O(log n).
    """

    __slots__ = ("heap", "members")

    def __init__(self) -> None:
        self.members: dict[str, tuple[int, AgentEntry]] = {}
        self.heap: list[tuple[int, str]] = []

    def add(self, order: int, entry: AgentEntry) -> None:
        self.members[entry.id] = (order, entry)
        heapq.heappush(self.heap, (order, entry.id))
        if len(self.heap) > 2 * len(self.members) + 16:
            self.heap = sorted((order, agent_id) for agent_id, (order, _) in self.members.items())

    def discard(self, agent_id: str) -> None:
        del self.members[agent_id]

    def first(self) -> AgentEntry:
        heap, members = self.heap, self.members
        while heap[0][1] not in members:
            heapq.heappop(heap)
        return members[heap[0][1]][1]

    def ordered(self) -> list[AgentEntry]:
        return [entry for _, entry in sorted(self.members.values(), key=lambda item: item[0])]


class _FreeAgents(Candidates):
    """The pool's agents with a free slot, as the ``Candidates`` a policy is given."""

    def __init__(self, pool: AgentPool) -> None:
        self._pool = pool

    def __len__(self) -> int:
        return len(self._pool._level)

    def __iter__(self) -> Iterator[AgentCandidate]:
        return (entry.candidate() for entry in self._pool._free_entries())

    @overload
    def __getitem__(self, index: int) -> AgentCandidate: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[AgentCandidate]: ...
    def __getitem__(self, index: int | slice) -> AgentCandidate | Sequence[AgentCandidate]:
        if index == 0:
            entry = self._pool._least_busy()
            if entry is None:
                raise IndexError("no candidates")
            return entry.candidate()
        return list(self)[index]

    def __repr__(self) -> str:
        return f"<Candidates [{len(self)} agents with a free slot]>"

    def least_busy(self) -> AgentCandidate | None:
        entry = self._pool._least_busy()
        return None if entry is None else entry.candidate()

    def get(self, agent_id: str) -> AgentCandidate | None:
        entry = self._pool._free_entry(agent_id)
        return None if entry is None else entry.candidate()
