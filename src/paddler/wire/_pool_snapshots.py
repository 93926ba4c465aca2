"""What the management API shows of the model pools (``GET /api/v1/pools``, our extension)."""

from __future__ import annotations

from attrs import frozen

from ._state import AgentDesiredModel

__all__ = ["PoolListSnapshot", "PoolSummary"]


@frozen(kw_only=True)
class PoolSummary:
    """One pool: its agents and slots, its buffer, and the model its desired state names.

    ``serving`` is true when at least one of its agents has a model loaded (the pools that
    ``/v1/models`` lists).
    """

    name: str
    agents: int
    slots_total: int
    slots_busy: int
    buffered_requests: int
    desired_model: AgentDesiredModel
    serving: bool
    generation_enabled: bool


@frozen
class PoolListSnapshot:
    """``GET /api/v1/pools``: ``default`` first, then the others by name."""

    pools: tuple[PoolSummary, ...]
