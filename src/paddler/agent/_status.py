"""AgentStatus: the agent's own status, versioned on every change (spec §3.2)."""

from __future__ import annotations

import attrs

from paddler._changes import Changes
from paddler.wire import AgentIssue, AgentStateApplicationStatus, SlotAggregatedStatusSnapshot

__all__ = ["AgentStatus"]


@attrs.define
class AgentStatus:
    """Mutable status; ``update(**fields)`` bumps ``version`` and notifies ``changes``."""

    desired_slots_total: int
    slots_total: int = 0
    slots_processing: int = 0
    download_current: int = 0
    download_total: int = 0
    #: True until a download knows its size, as in Paddler (its initial status says true).
    download_indeterminate: bool = True
    download_filename: str | None = None
    issues: tuple[AgentIssue, ...] = ()
    model_path: str | None = None
    state_application_status: AgentStateApplicationStatus = AgentStateApplicationStatus.FRESH
    uses_chat_template_override: bool = False
    version: int = 0
    #: ``paddler.prefixes`` hashes of what the idle slots hold (``SlotPrefixes.hashes``).
    cached_prefixes: tuple[str, ...] = ()
    changes: Changes = attrs.field(factory=Changes)

    def update(self, **fields: object) -> None:
        changed = False
        for name, value in fields.items():
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed = True
        if changed:
            self.version += 1
            self.changes.notify()

    def snapshot(self) -> SlotAggregatedStatusSnapshot:
        return SlotAggregatedStatusSnapshot(
            desired_slots_total=self.desired_slots_total,
            slots_total=self.slots_total,
            slots_processing=self.slots_processing,
            download_current=self.download_current,
            download_total=self.download_total,
            download_indeterminate=self.download_indeterminate,
            download_filename=self.download_filename,
            issues=self.issues,
            model_path=self.model_path,
            state_application_status=self.state_application_status,
            uses_chat_template_override=self.uses_chat_template_override,
            version=self.version,
            cached_prefixes=self.cached_prefixes or None,
        )
