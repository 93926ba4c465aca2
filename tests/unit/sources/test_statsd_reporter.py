"""StatsD: the three gauges arrive as datagrams at a UDP socket the test opens."""

from __future__ import annotations

import anyio
import pytest
from attrs import define

from paddler.metrics import StatsdReporter, statsd_datagram

pytestmark = pytest.mark.anyio


@define
class Statistics:
    slots_total: int = 4
    slots_busy: int = 1
    requests_buffered: int = 0


def test_datagram_format():
    assert statsd_datagram(Statistics(), prefix="p_") == (
        b"p_slots_processing:1|g\np_slots_total:4|g\np_requests_buffered:0|g"
    )


async def test_gauges_arrive_every_interval():
    statistics = Statistics()
    async with await anyio.create_udp_socket(local_host="127.0.0.1") as receiver:
        port = receiver.extra(anyio.abc.SocketAttribute.local_port)
        reporter = StatsdReporter(host="127.0.0.1", port=port, prefix="paddler_", interval=0.01)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(reporter.run, lambda: statistics)
                first, _ = await receiver.receive()
                statistics.slots_busy = 3
                statistics.requests_buffered = 7
                while True:  # the next report after the change carries the new values
                    later, _ = await receiver.receive()
                    if later != first:
                        break
                tg.cancel_scope.cancel()

    assert first.decode().splitlines() == [
        "paddler_slots_processing:1|g",
        "paddler_slots_total:4|g",
        "paddler_requests_buffered:0|g",
    ]
    assert later.decode().splitlines() == [
        "paddler_slots_processing:3|g",
        "paddler_slots_total:4|g",
        "paddler_requests_buffered:7|g",
    ]


async def test_nobody_listening_does_not_stop_the_reporter(free_udp_port):
    """UDP to a closed port fails (ICMP); the reporter logs and keeps reporting."""
    calls = 0
    five = anyio.Event()

    def source() -> Statistics:
        nonlocal calls
        calls += 1
        if calls == 5:
            five.set()
        return Statistics()

    reporter = StatsdReporter(host="127.0.0.1", port=free_udp_port, interval=0.001)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reporter.run, source)
            await five.wait()
            tg.cancel_scope.cancel()


@pytest.fixture
def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        StatsdReporter(host="127.0.0.1", port=8125, interval=0)
