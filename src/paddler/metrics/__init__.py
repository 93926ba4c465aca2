"""Metrics of a balancer: Prometheus ``/metrics`` text and a StatsD push (spec §7, DESIGN §5.6)."""

from ._keys import KEY_REFUSAL_REASONS, KeyMetrics
from ._prometheus import (
    BUFFER_WAIT_BUCKETS,
    INTER_TOKEN_LATENCY_BUCKETS,
    REQUEST_OUTCOMES,
    TIME_TO_FIRST_TOKEN_BUCKETS,
    BalancerMetrics,
    ClusterStatistics,
)
from ._statsd import StatsdReporter, statsd_datagrams, statsd_name

__all__ = [
    "BUFFER_WAIT_BUCKETS",
    "INTER_TOKEN_LATENCY_BUCKETS",
    "KEY_REFUSAL_REASONS",
    "REQUEST_OUTCOMES",
    "TIME_TO_FIRST_TOKEN_BUCKETS",
    "BalancerMetrics",
    "ClusterStatistics",
    "KeyMetrics",
    "StatsdReporter",
    "statsd_datagrams",
    "statsd_name",
]
