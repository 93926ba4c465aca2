"""Push Paddler's three cluster gauges to StatsD over UDP (spec §2.6), byte for byte as Paddler.

Paddler's StatsD client (the Rust ``cadence`` crate) writes ``<prefix>.<name>``: it strips any
trailing dots from the prefix and adds exactly one, so the default prefix ``paddler_`` gives
``paddler_.slots_processing`` (an empty prefix gives the bare name). It sends each gauge as a
datagram of its own, ``name:value|g`` with no newline. We do the same, so a StatsD pipeline
fed by Paddler keeps its metric names when the balancer is swapped for this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from ._prometheus import ClusterStatistics

__all__ = ["StatsdReporter", "statsd_datagrams", "statsd_name"]

logger = logging.getLogger("paddler.metrics")


def statsd_name(prefix: str, name: str) -> str:
    """``prefix`` and ``name`` joined as Paddler's client joins them (one dot between)."""
    if not prefix:
        return name
    return f"{prefix.rstrip('.')}.{name}"


def statsd_datagrams(statistics: ClusterStatistics, *, prefix: str = "paddler_") -> list[bytes]:
    """The three gauges, one datagram each, in Paddler's order."""
    gauges = (
        ("slots_processing", statistics.slots_busy),
        ("slots_total", statistics.slots_total),
        ("requests_buffered", statistics.requests_buffered),
    )
    return [f"{statsd_name(prefix, name)}:{int(value)}|g".encode() for name, value in gauges]


class StatsdReporter:
    """Sends the gauges every ``interval`` seconds to ``host:port`` until cancelled.

    Sending is best effort, as UDP is: a failed send is logged and the next one is tried.
    """

    def __init__(
        self, *, host: str, port: int, prefix: str = "paddler_", interval: float = 10.0
    ) -> None:
        if interval <= 0:
            raise ValueError(f"StatsD reporting interval must be positive (got {interval})")
        self.host = host
        self.port = port
        self.prefix = prefix
        self.interval = interval

    def __repr__(self) -> str:
        return f"<StatsdReporter {self.host}:{self.port} every {self.interval:g}s>"

    async def run(
        self,
        source: Callable[[], ClusterStatistics],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Report ``source()`` now and then every interval; returns only when cancelled.

        ``task_status.started()`` is called once the socket is open (``await tg.start(...)``).
        """
        async with await anyio.create_connected_udp_socket(
            remote_host=self.host, remote_port=self.port
        ) as sock:
            task_status.started()
            failing = False
            while True:
                try:
                    for datagram in statsd_datagrams(source(), prefix=self.prefix):
                        await sock.send(datagram)
                    failing = False
                except (OSError, anyio.BrokenResourceError) as exc:  # ICMP port unreachable
                    if not failing:
                        logger.warning("StatsD send to %s:%s failed: %s", self.host, self.port, exc)
                    failing = True
                await anyio.sleep(self.interval)
