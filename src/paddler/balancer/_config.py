"""BalancerConfig and BalancerStatistics: plain frozen records."""

from __future__ import annotations

import attrs

__all__ = ["BalancerConfig", "BalancerStatistics"]


@attrs.frozen
class BalancerConfig:
    """How the balancer buffers and times out requests. Durations are seconds (floats).

    The CLI's millisecond flags divide by 1000. ``inproc_name`` registers the balancer so that
    agents in the same process can connect to ``inproc://<inproc_name>``.
    """

    buffered_request_timeout: float = 10.0
    inference_item_timeout: float = 30.0
    max_buffered_requests: int = 30
    agent_rpc_timeout: float = 3.0
    inproc_name: str | None = None
    #: A client that reads nothing for this long is cut off, and its request stopped.
    client_write_timeout: float = 30.0
    #: Re-dispatch a request whose agent is lost or fails before its first token, and resume
    #: a plain answer on another agent after it (``docs/failover.md``). False keeps the old
    #: behaviour: the client gets the error (``paddler balancer --no-stream-recovery``).
    stream_recovery: bool = True


@attrs.frozen
class BalancerStatistics:
    """Live counts, for ``/metrics``, StatsD and the admin panel."""

    agents: int
    slots_total: int
    slots_busy: int
    requests_buffered: int
    requests_active: int
    requests_completed: int
    #: Ended in an error, or refused (bad input, buffer full, timeouts): not the cancelled.
    requests_failed: int
    generation_enabled: bool
    #: Stopped by their client (``cancel()``, a disconnect) before they finished.
    requests_cancelled: int = 0
