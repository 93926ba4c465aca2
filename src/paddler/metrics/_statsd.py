"""Push Paddler's three cluster gauges to StatsD over UDP (spec §2.6)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from ._prometheus import ClusterStatistics

__all__ = ["StatsdReporter", "statsd_datagram"]

logger = logging.getLogger("paddler.metrics")


def statsd_datagram(statistics: ClusterStatistics, *, prefix: str = "paddler_") -> bytes:
    """The three gauges as one StatsD packet, one ``name:value|g`` line each."""
    lines = (
        f"{prefix}slots_processing:{statistics.slots_busy}|g",
        f"{prefix}slots_total:{statistics.slots_total}|g",
        f"{prefix}requests_buffered:{statistics.requests_buffered}|g",
    )
    return "\n".join(lines).encode("ascii")


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
                    await sock.send(statsd_datagram(source(), prefix=self.prefix))
                    failing = False
                except (OSError, anyio.BrokenResourceError) as exc:  # ICMP port unreachable
                    if not failing:
                        logger.warning("StatsD send to %s:%s failed: %s", self.host, self.port, exc)
                    failing = True
                await anyio.sleep(self.interval)
