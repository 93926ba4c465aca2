"""ModelPool: one model pool's agents, buffer, policy calls, desired state and counts.

A pool bundles what a whole cluster had before pools: a ``SlotDispatcher`` (its agents, its
own buffer with its own ``max_buffered_requests``, the dispatch step) and a ``ClusterState``
(its desired state, adoption and swaps), plus the ``RequestMetrics`` that label what it serves
with its name. A request placed in a pool only ever lands on that pool's agents.
``PoolRegistry`` holds the pools of one balancer, ``default`` first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pluggy
from attrs import frozen

from paddler._changes import Changes
from paddler.balancer._cluster_state import ClusterState
from paddler.balancer._config import BalancerConfig
from paddler.balancer._request_metrics import BalancerMetricsLike, RequestMetrics
from paddler.balancer._slots import SlotDispatcher
from paddler.errors import UnknownPool
from paddler.wire import (
    DEFAULT_POOL,
    AgentDesiredModel,
    AgentDesiredState,
    NoModel,
    validate_pool_name,
)

if TYPE_CHECKING:
    from paddler.balancer._state_store import StateStore

__all__ = ["ModelPool", "PoolRegistry", "PoolSnapshot"]

logger = logging.getLogger("paddler.balancer")


@frozen(kw_only=True)
class PoolSnapshot:
    """One pool as the management API shows it.

    ``desired_model`` is the model of the pool's applicable state (``NoModel`` when none);
    ``serving`` is true when at least one of its agents has a model loaded.
    """

    name: str
    agents: int
    slots_total: int
    slots_busy: int
    requests_buffered: int
    desired_model: AgentDesiredModel
    serving: bool
    generation_enabled: bool


class ModelPool:
    """One pool: ``slots`` (agents, buffer, dispatch), ``cluster`` (desired state), ``metrics``.

    Its changes bubble up: agent changes to ``agents_parent``, buffer changes to
    ``buffer_parent`` (the balancer-wide subscriptions), everything to ``parent``.
    """

    def __init__(
        self,
        name: str,
        config: BalancerConfig,
        plugin_manager: pluggy.PluginManager,
        backend: BalancerMetricsLike | None,
        state_store: StateStore | None,
        *,
        parent: Changes,
        agents_parent: Changes,
        buffer_parent: Changes,
    ) -> None:
        self.name = name
        self.metrics = RequestMetrics(backend, pool=name)
        self.slots = SlotDispatcher(
            config,
            plugin_manager,
            self.metrics,
            generation_enabled=lambda: self.cluster.generation_enabled,
            parent=parent,
            name=name,
        )
        self.slots.agents_changed.parent = agents_parent
        self.slots.buffer_changed.parent = buffer_parent
        self.cluster = ClusterState(self.slots.pool, state_store, parent=parent, pool_name=name)

    def __repr__(self) -> str:
        pool = self.slots.pool
        return (
            f"<ModelPool {self.name} [agents: {len(pool)}, slots: "
            f"{pool.slots_busy}/{pool.slots_total} busy, {len(self.slots.buffer)} buffered]>"
        )

    def snapshot(self) -> PoolSnapshot:
        pool = self.slots.pool
        applicable = self.cluster.applicable
        return PoolSnapshot(
            name=self.name,
            agents=len(pool),
            slots_total=pool.slots_total,
            slots_busy=pool.slots_busy,
            requests_buffered=len(self.slots.buffer),
            desired_model=applicable.model if applicable is not None else NoModel(),
            serving=any(e.status.model_path is not None or e.slots_total > 0 for e in pool),
            generation_enabled=self.cluster.generation_enabled,
        )

    @property
    def applicable_state(self) -> AgentDesiredState | None:
        return self.cluster.applicable

    def close(self) -> None:
        self.slots.close()
        self.cluster.close()


class PoolRegistry:
    """The pools of one balancer by name; ``make(name)`` builds a missing one."""

    def __init__(self, make: Callable[[str], ModelPool], *, changed: Changes) -> None:
        self._make = make
        self._changed = changed
        self._pools: dict[str, ModelPool] = {}
        self.default = self.ensure(DEFAULT_POOL)

    def __iter__(self) -> Iterator[ModelPool]:
        """``default`` first, then by name."""
        yield self.default
        for name in sorted(self._pools):
            if name != DEFAULT_POOL:
                yield self._pools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._pools

    def names(self) -> tuple[str, ...]:
        return tuple(pool.name for pool in self)

    def get(self, name: str) -> ModelPool:
        """The pool named ``name`` (``UnknownPool`` when there is none)."""
        pool = self._pools.get(name)
        if pool is None:
            raise UnknownPool(
                f"Unknown pool {name!r}: no agent joined it and no desired state was set for it "
                f"(known pools: {', '.join(self.names())})"
            )
        return pool

    def ensure(self, name: str) -> ModelPool:
        """The pool named ``name``, made now if there is none (``InvalidRequest`` for a name
        off ``paddler.wire.POOL_NAME_RULE``)."""
        pool = self._pools.get(name)
        if pool is None:
            pool = self._make(validate_pool_name(name))
            self._pools[name] = pool
            if name != DEFAULT_POOL:
                logger.info("model pool %s created", name)
            self._changed.notify()
        return pool

    def find(self, name: str | None) -> list[ModelPool]:
        """Every pool for ``None``, else the one named (``UnknownPool`` if there is none)."""
        return list(self) if name is None else [self.get(name)]
