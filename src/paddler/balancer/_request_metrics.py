"""What the balancer reports while requests run, and its own outcome counts.

``BalancerMetricsLike`` is what a metrics backend implements (``paddler.metrics.BalancerMetrics``
does). ``RequestMetrics`` is the one the streams and the dispatch talk to, one per model pool:
it keeps the completed/failed/cancelled counts that ``Balancer.statistics()`` shows and forwards
everything to the backend, if there is one, with the pool's name as ``pool=`` (left out for
``default``, so a backend written before pools keeps working).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from paddler.wire import DEFAULT_POOL

if TYPE_CHECKING:
    from paddler._tenancy import Tenant

__all__ = ["BalancerMetricsLike", "RequestMetrics"]


class BalancerMetricsLike(Protocol):
    """What the balancer reports to (``paddler.metrics.BalancerMetrics`` implements it)."""

    def observe_buffer_wait(self, seconds: float, *, pool: str = DEFAULT_POOL) -> None: ...
    def observe_time_to_first_token(self, seconds: float, *, pool: str = DEFAULT_POOL) -> None: ...
    def observe_inter_token_latency(self, seconds: float) -> None: ...
    def count_tokens(
        self, *, prompt: int, cached_prompt: int, generated: int, pool: str = DEFAULT_POOL
    ) -> None: ...
    def count_request(self, outcome: str, *, pool: str = DEFAULT_POOL) -> None: ...
    def record_generated_tokens(self, agent_id: str, count: int = 1) -> None: ...


class RequestMetrics:
    """Counts request outcomes (``ok``, ``cancelled``, or a status) and forwards to ``backend``.

    A request's tenant (an API key, see ``paddler._tenancy``) hears its outcome and buffer wait
    too.
    """

    def __init__(
        self, backend: BalancerMetricsLike | None = None, *, pool: str = DEFAULT_POOL
    ) -> None:
        self.backend = backend
        #: The model pool whose requests these are (the ``pool`` label).
        self.pool = pool
        self._pool: dict[str, str] = {} if pool == DEFAULT_POOL else {"pool": pool}
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        #: Re-dispatches by kind (``count_recovery``).
        self.recoveries: dict[str, int] = {}

    @property
    def observing(self) -> bool:
        """Whether per-token observations go anywhere (skipped on the hot path otherwise)."""
        return self.backend is not None

    def count_request(self, outcome: str, tenant: Tenant | None = None) -> None:
        if tenant is not None:
            tenant.count_request(outcome)
        if outcome == "ok":
            self.completed += 1
        elif outcome == "cancelled":
            self.cancelled += 1
        else:
            self.failed += 1
        if self.backend is not None:
            self.backend.count_request(outcome, **self._pool)

    def count_recovery(self, kind: str) -> None:
        """A request was re-dispatched (``"retried"`` before its first token, ``"resumed"``
        after it) or ended in an error after one (``"failed_after_retry"``)."""
        self.recoveries[kind] = self.recoveries.get(kind, 0) + 1
        count = getattr(self.backend, "count_recovery", None)  # optional for a backend
        if count is not None:
            count(kind)

    def observe_buffer_wait(self, seconds: float, tenant: Tenant | None = None) -> None:
        if tenant is not None:
            tenant.observe_buffer_wait(seconds)
        if self.backend is not None:
            self.backend.observe_buffer_wait(seconds, **self._pool)

    def observe_time_to_first_token(self, seconds: float) -> None:
        if self.backend is not None:
            self.backend.observe_time_to_first_token(seconds, **self._pool)

    def observe_inter_token_latency(self, seconds: float) -> None:
        if self.backend is not None:
            self.backend.observe_inter_token_latency(seconds)

    def count_tokens(self, *, prompt: int, cached_prompt: int, generated: int) -> None:
        if self.backend is not None:
            self.backend.count_tokens(
                prompt=prompt, cached_prompt=cached_prompt, generated=generated, **self._pool
            )

    def record_generated_tokens(self, agent_id: str, count: int = 1) -> None:
        if self.backend is not None:
            self.backend.record_generated_tokens(agent_id, count)
