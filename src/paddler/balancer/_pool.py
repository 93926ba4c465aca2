"""AgentPool: the connected agents, what they report, and the balancer's own busy counts.

Only ``slots_total`` (and the rest of the status) comes from the agent; ``slots_busy`` is
counted here, claimed and released synchronously, so on one event loop a claim is atomic
(spec §12.2 wants a compare-and-swap; a sync step without awaits gives the same guarantee).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from paddler.policies import AgentCandidate

if TYPE_CHECKING:
    from paddler.balancer._connection import AgentConnection
    from paddler.wire import AgentControllerSnapshot, SlotAggregatedStatusSnapshot

__all__ = ["AgentEntry", "AgentPool"]


def _comparable(status: SlotAggregatedStatusSnapshot) -> Any:
    """The status without the fields that do not count as a change."""
    return attrs.evolve(status, slots_processing=0, version=0)


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
    """The registered agents in registration order, with balancer-side slot accounting."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentEntry] = {}

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

    def remove(self, agent_id: str) -> AgentEntry | None:
        return self._agents.pop(agent_id, None)

    def apply_status(self, agent_id: str, status: SlotAggregatedStatusSnapshot) -> bool:
        """Take a reported status; return True when it changed something that matters.

        Snapshots older than the newest seen are discarded (they can cross on the wire).
        """
        entry = self._agents.get(agent_id)
        if entry is None or status.version < entry.status.version:
            return False
        changed: bool = _comparable(status) != _comparable(entry.status)
        entry.status = status
        inherited = min(entry.inherited, max(0, status.slots_processing))
        if inherited != entry.inherited:  # some of what it was serving at registration ended
            entry.inherited = inherited
            changed = True
        return changed

    def candidates(self) -> list[AgentCandidate]:
        """Agents that can take one more request now (never one with 0 slots or draining)."""
        return [entry.candidate() for entry in self._agents.values() if entry.slots_free > 0]

    def claim(self, agent_id: str) -> bool:
        """Count one more request on ``agent_id``; False if it has no free slot (or is gone)."""
        entry = self._agents.get(agent_id)
        if entry is None or entry.slots_free <= 0:
            return False
        entry.dispatched += 1
        return True

    def release(self, agent_id: str) -> bool:
        """Count one request less on ``agent_id``; False if the agent is no longer registered."""
        entry = self._agents.get(agent_id)
        if entry is None:
            return False
        entry.dispatched = max(0, entry.dispatched - 1)
        return True

    @property
    def slots_total(self) -> int:
        return sum(entry.slots_total for entry in self._agents.values())

    @property
    def slots_busy(self) -> int:
        return sum(entry.slots_busy for entry in self._agents.values())
