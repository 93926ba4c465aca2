"""Prometheus metrics of one balancer, each ``BalancerMetrics`` in a registry of its own.

Paddler's three cluster gauges keep their exact names and HELP texts, and like Paddler we print
a gauge's whole value as an integer (``paddler_slots_total 8``, where prometheus_client would
write ``8.0``); the histograms, counters and per-agent gauges are ours, to explain where
latency goes (DESIGN §5.6). Every name is listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from paddler.metrics._keys import KeyMetrics
from paddler.wire import DEFAULT_POOL, AgentControllerPoolSnapshot

__all__ = [
    "BUFFER_WAIT_BUCKETS",
    "INTER_TOKEN_LATENCY_BUCKETS",
    "REQUEST_OUTCOMES",
    "TIME_TO_FIRST_TOKEN_BUCKETS",
    "BalancerMetrics",
    "ClusterStatistics",
    "PoolStatistics",
]

#: Seconds a request waited in the buffer: most wait nothing, a queue backs up to the timeout.
BUFFER_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Seconds to the first token: prompt processing, from tens of ms to long prompts on CPU.
TIME_TO_FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60)
#: Seconds between two tokens of one stream: a few ms on a GPU to a few hundred on a busy CPU.
INTER_TOKEN_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5,
)  # fmt: skip
#: The stream-recovery counters (``docs/failover.md``), one series each.
RECOVERY_SERIES = {
    "retried": "Requests dispatched again after their agent was lost or failed before "
    "their first token (one per re-dispatch)",
    "resumed": "Streams continued on another agent after their agent was lost mid-answer "
    "(one per resume)",
    "failed_after_retry": "Requests that ended in an error although they were retried or resumed",
}
#: Values of the ``outcome`` label of ``<prefix>requests_total`` (the HTTP status or "ok").
REQUEST_OUTCOMES = ("ok", "cancelled", "400", "500", "501", "502", "503", "504")
#: Window over which per-agent tokens/s is measured, in seconds.
TOKENS_PER_SECOND_WINDOW = 10.0


class ClusterStatistics(Protocol):
    """What :meth:`BalancerMetrics.render` needs; ``paddler.balancer.BalancerStatistics`` fits."""

    @property
    def slots_total(self) -> int: ...

    @property
    def slots_busy(self) -> int: ...

    @property
    def requests_buffered(self) -> int: ...


class PoolStatistics(ClusterStatistics, Protocol):
    """One pool's gauges; ``paddler.balancer.PoolSnapshot`` fits."""

    @property
    def name(self) -> str: ...

    @property
    def agents(self) -> int: ...


class BalancerMetrics:
    """Collects a balancer's measurements and renders them in the Prometheus text format.

    The balancer calls the ``observe_*``/``count_*``/``record_*`` methods as requests go;
    ``/metrics`` calls :meth:`render` with the current statistics and agents snapshot.

    Each request, token and buffer series has a twin named ``<prefix>pool_...`` with a
    ``pool`` label (the model pool that served it); the unlabelled ones stay the whole
    balancer's, with Paddler's names.
    """

    def __init__(self, *, prefix: str = "paddler_") -> None:
        self.prefix = prefix
        #: Every metric (the gauges too), for programs that read or export it themselves.
        self.registry = CollectorRegistry(auto_describe=True)
        self._snapshot = _SnapshotCollector(prefix)
        self.registry.register(self._snapshot)
        #: Everything but the gauges, which ``render`` writes itself (integers as integers).
        self._counted = CollectorRegistry(auto_describe=True)
        self._buffer_wait = Histogram(
            f"{prefix}buffer_wait_seconds",
            "Time requests waited in the balancer's buffer for a free slot",
            buckets=BUFFER_WAIT_BUCKETS,
            registry=self.registry,
        )
        self._ttft = Histogram(
            f"{prefix}time_to_first_token_seconds",
            "Time from a request's arrival to its first generated token",
            buckets=TIME_TO_FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self._itl = Histogram(
            f"{prefix}inter_token_latency_seconds",
            "Time between two consecutive tokens of one response",
            buckets=INTER_TOKEN_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._prompt = Counter(
            f"{prefix}prompt_tokens", "Prompt tokens of finished requests", registry=self.registry
        )
        self._cached = Counter(
            f"{prefix}cached_prompt_tokens",
            "Prompt tokens served from a slot's KV cache instead of being decoded",
            registry=self.registry,
        )
        self._generated = Counter(
            f"{prefix}generated_tokens", "Tokens generated", registry=self.registry
        )
        self._requests = Counter(
            f"{prefix}requests",
            "Finished inference requests by outcome (ok, cancelled, or the HTTP status)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in REQUEST_OUTCOMES:
            self._requests.labels(outcome)
        self._slow_clients = Counter(
            f"{prefix}slow_clients_cut",
            "Responses cut off because their client read nothing for the write deadline",
            registry=self.registry,
        )
        self._pool_buffer_wait = Histogram(
            f"{prefix}pool_buffer_wait_seconds",
            "Time requests waited in their model pool's buffer for a free slot",
            ["pool"],
            buckets=BUFFER_WAIT_BUCKETS,
            registry=self.registry,
        )
        self._pool_ttft = Histogram(
            f"{prefix}pool_time_to_first_token_seconds",
            "Time from a request's arrival to its first generated token, by model pool",
            ["pool"],
            buckets=TIME_TO_FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self._pool_prompt = Counter(
            f"{prefix}pool_prompt_tokens",
            "Prompt tokens of finished requests, by model pool",
            ["pool"],
            registry=self.registry,
        )
        self._pool_cached = Counter(
            f"{prefix}pool_cached_prompt_tokens",
            "Prompt tokens served from a slot's KV cache, by model pool",
            ["pool"],
            registry=self.registry,
        )
        self._pool_generated = Counter(
            f"{prefix}pool_generated_tokens",
            "Tokens generated, by model pool",
            ["pool"],
            registry=self.registry,
        )
        self._pool_requests = Counter(
            f"{prefix}pool_requests",
            "Finished inference requests by model pool and outcome",
            ["pool", "outcome"],
            registry=self.registry,
        )
        for outcome in REQUEST_OUTCOMES:
            self._pool_requests.labels(DEFAULT_POOL, outcome)
        for collector in (
            self._pool_buffer_wait,
            self._pool_ttft,
            self._pool_prompt,
            self._pool_cached,
            self._pool_generated,
            self._pool_requests,
            self._buffer_wait,
            self._ttft,
            self._itl,
            self._prompt,
            self._cached,
            self._generated,
            self._requests,
            self._slow_clients,
        ):
            self._counted.register(collector)
        #: Stream recovery (``docs/failover.md``): one counter per kind.
        self._recoveries = {
            kind: Counter(f"{prefix}requests_{kind}", documentation, registry=self.registry)
            for kind, documentation in RECOVERY_SERIES.items()
        }
        for counter in self._recoveries.values():
            self._counted.register(counter)
        #: Per-API-key series (``key_name`` label), fed by the server's key check.
        self.keys = KeyMetrics(
            prefix=prefix,
            registries=(self.registry, self._counted),
            buffer_wait_buckets=BUFFER_WAIT_BUCKETS,
        )

    def __repr__(self) -> str:
        return f"<BalancerMetrics prefix={self.prefix!r}>"

    def observe_buffer_wait(self, seconds: float, *, pool: str = DEFAULT_POOL) -> None:
        """A request left the buffer (for a slot, or by timeout) after ``seconds``."""
        self._buffer_wait.observe(seconds)
        self._pool_buffer_wait.labels(pool).observe(seconds)

    def observe_time_to_first_token(self, seconds: float, *, pool: str = DEFAULT_POOL) -> None:
        """A request got its first token ``seconds`` after it arrived (buffer wait included)."""
        self._ttft.observe(seconds)
        self._pool_ttft.labels(pool).observe(seconds)

    def observe_inter_token_latency(self, seconds: float) -> None:
        """One more token arrived ``seconds`` after the previous token of the same request."""
        self._itl.observe(seconds)

    def count_tokens(
        self, *, prompt: int, cached_prompt: int, generated: int, pool: str = DEFAULT_POOL
    ) -> None:
        """Add a finished request's ``usage`` (the ``Done`` token counts)."""
        prompt, cached_prompt, generated = max(prompt, 0), max(cached_prompt, 0), max(generated, 0)
        self._prompt.inc(prompt)
        self._cached.inc(cached_prompt)
        self._generated.inc(generated)
        self._pool_prompt.labels(pool).inc(prompt)
        self._pool_cached.labels(pool).inc(cached_prompt)
        self._pool_generated.labels(pool).inc(generated)

    def count_request(self, outcome: str, *, pool: str = DEFAULT_POOL) -> None:
        """A request finished: ``"ok"``, ``"cancelled"`` or the HTTP status as text."""
        self._requests.labels(outcome).inc()
        self._pool_requests.labels(pool, outcome).inc()

    def count_recovery(self, kind: str) -> None:
        """A request was ``"retried"``, ``"resumed"``, or ``"failed_after_retry"``."""
        counter = self._recoveries.get(kind)
        if counter is not None:
            counter.inc()

    def count_slow_client(self) -> None:
        """A response was cut off: its client stopped reading (``--client-write-timeout``)."""
        self._slow_clients.inc()

    def record_generated_tokens(self, agent_id: str, count: int = 1) -> None:
        """``count`` tokens arrived from ``agent_id`` now (feeds its tokens/s gauge)."""
        self._snapshot.record_tokens(agent_id, count, time.monotonic())

    def render(
        self,
        statistics: ClusterStatistics,
        agents: AgentControllerPoolSnapshot | None = None,
        pools: Sequence[PoolStatistics] = (),
    ) -> bytes:
        """Every metric in the Prometheus text format, the three Paddler gauges first.

        ``pools`` (``Balancer.pools_snapshot()``) adds the per-pool gauges."""
        with self._snapshot.showing(statistics, agents, pools):
            gauges = "".join(_gauge_text(family) for family in self._snapshot.collect())
        return gauges.encode() + generate_latest(self._counted)


class _SnapshotCollector(Collector):
    """The gauges read from the balancer's live state at scrape time."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._lock = threading.RLock()
        self._statistics: ClusterStatistics | None = None
        self._agents: AgentControllerPoolSnapshot | None = None
        self._pools: Sequence[PoolStatistics] = ()
        self._tokens: dict[str, deque[tuple[float, int]]] = {}

    def record_tokens(self, agent_id: str, count: int, now: float) -> None:
        with self._lock:
            window = self._tokens.setdefault(agent_id, deque())
            window.append((now, count))
            _trim(window, now)

    def tokens_per_second(self, agent_id: str, now: float) -> float:
        window = self._tokens.get(agent_id)
        if not window:
            return 0.0
        _trim(window, now)
        return sum(count for _, count in window) / TOKENS_PER_SECOND_WINDOW

    @contextmanager
    def showing(
        self,
        statistics: ClusterStatistics,
        agents: AgentControllerPoolSnapshot | None,
        pools: Sequence[PoolStatistics] = (),
    ) -> Iterator[None]:
        """Hold these values while the registry is rendered."""
        with self._lock:
            self._statistics, self._agents, self._pools = statistics, agents, pools
            try:
                yield
            finally:
                self._statistics, self._agents, self._pools = None, None, ()

    def describe(self) -> Iterable[Metric]:
        return []  # names depend on the agents present; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        statistics = self._statistics
        if statistics is not None:
            yield _gauge(
                f"{p}slots_processing", "Number of processing slots", statistics.slots_busy
            )
            yield _gauge(f"{p}slots_total", "Number of total slots", statistics.slots_total)
            yield _gauge(
                f"{p}requests_buffered", "Number of buffered requests", statistics.requests_buffered
            )
        if self._pools:
            yield from _pool_gauges(p, self._pools)
        if self._agents is None:
            return
        labels = ["agent_id", "agent_name"]
        total = GaugeMetricFamily(
            f"{p}agent_slots_total", "Slots the agent has started", labels=labels
        )
        busy = GaugeMetricFamily(
            f"{p}agent_slots_processing",
            "Slots of the agent the balancer has a request on",
            labels=labels,
        )
        desired = GaugeMetricFamily(
            f"{p}agent_desired_slots_total", "Slots the agent was started with", labels=labels
        )
        rate = GaugeMetricFamily(
            f"{p}agent_tokens_per_second",
            f"Tokens the agent generated per second over the last {TOKENS_PER_SECOND_WINDOW:g} s",
            labels=labels,
        )
        now = time.monotonic()
        present = set()
        for agent in self._agents.agents:
            values = [agent.id, agent.name or ""]
            present.add(agent.id)
            total.add_metric(values, agent.slots_total)
            busy.add_metric(values, agent.slots_processing)
            desired.add_metric(values, agent.desired_slots_total)
            rate.add_metric(values, self.tokens_per_second(agent.id, now))
        for gone in set(self._tokens) - present:
            del self._tokens[gone]
        yield from (total, busy, desired, rate)


def _pool_gauges(p: str, pools: Sequence[PoolStatistics]) -> Iterator[GaugeMetricFamily]:
    families = (
        (f"{p}pool_agents", "Agents registered in the model pool", lambda s: s.agents),
        (f"{p}pool_slots_total", "Slots of the model pool's agents", lambda s: s.slots_total),
        (
            f"{p}pool_slots_processing",
            "Slots of the model pool the balancer has a request on",
            lambda s: s.slots_busy,
        ),
        (
            f"{p}pool_requests_buffered",
            "Requests waiting in the model pool's buffer",
            lambda s: s.requests_buffered,
        ),
    )
    value: Callable[[PoolStatistics], int]
    for name, documentation, value in families:
        family = GaugeMetricFamily(name, documentation, labels=["pool"])
        for pool in pools:
            family.add_metric([pool.name], value(pool))
        yield family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _number(value: float) -> str:
    """A whole value as an integer (as Paddler prints its gauges), any other as Go prints it."""
    if float(value).is_integer():
        return str(int(value))
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _escape(text: str, *, quote: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _gauge_text(family: Metric) -> str:
    """One gauge family in the text exposition format (version 0.0.4)."""
    lines = [
        f"# HELP {family.name} {_escape(family.documentation)}",
        f"# TYPE {family.name} gauge",
    ]
    for sample in family.samples:
        labels = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in sample.labels.items())
        name = f"{sample.name}{{{labels}}}" if labels else sample.name
        lines.append(f"{name} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


def _trim(window: deque[tuple[float, int]], now: float) -> None:
    while window and window[0][0] < now - TOKENS_PER_SECOND_WINDOW:
        window.popleft()
