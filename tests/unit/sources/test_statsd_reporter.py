"""StatsD: the three gauges arrive as datagrams at a UDP socket the test opens.

The expected bytes are Paddler's: its client (Rust ``cadence``) joins prefix and name with one
dot and sends one datagram per gauge.
"""

from __future__ import annotations

import anyio
import pytest
from attrs import define

from paddler.metrics import StatsdReporter, statsd_datagrams, statsd_name

pytestmark = pytest.mark.anyio


@define
class Statistics:
    slots_total: int = 4
    slots_busy: int = 1
    requests_buffered: int = 0


def test_datagrams_are_one_gauge_each() -> None:
    assert statsd_datagrams(Statistics(), prefix="p_") == [
        b"p_.slots_processing:1|g",
        b"p_.slots_total:4|g",
        b"p_.requests_buffered:0|g",
    ]


@pytest.mark.parametrize(
    ("prefix", "name"),
    [
        ("paddler_", "paddler_.slots_total"),
        ("paddler", "paddler.slots_total"),
        ("paddler.", "paddler.slots_total"),
        ("paddler...", "paddler.slots_total"),
        ("", "slots_total"),
    ],
)
def test_prefix_and_name_are_joined_with_one_dot(prefix: str, name: str) -> None:
    assert statsd_name(prefix, "slots_total") == name


async def receive_report(receiver: anyio.abc.UDPSocket) -> list[bytes]:
    """The next three datagrams (one report): each is exactly one gauge."""
    return [(await receiver.receive())[0] for _ in range(3)]


async def test_gauges_arrive_every_interval() -> None:
    statistics = Statistics()
    async with await anyio.create_udp_socket(local_host="127.0.0.1") as receiver:
        port = receiver.extra(anyio.abc.SocketAttribute.local_port)
        reporter = StatsdReporter(host="127.0.0.1", port=port, prefix="paddler_", interval=0.01)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(reporter.run, lambda: statistics)
                first = await receive_report(receiver)
                statistics.slots_busy = 3
                statistics.requests_buffered = 7
                while True:  # the next report after the change carries the new values
                    later = await receive_report(receiver)
                    if later != first:
                        break
                tg.cancel_scope.cancel()

    assert first == [
        b"paddler_.slots_processing:1|g",
        b"paddler_.slots_total:4|g",
        b"paddler_.requests_buffered:0|g",
    ]
    assert later == [
        b"paddler_.slots_processing:3|g",
        b"paddler_.slots_total:4|g",
        b"paddler_.requests_buffered:7|g",
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
