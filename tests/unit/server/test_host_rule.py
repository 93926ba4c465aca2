"""Which Host headers a balancer service answers (DNS rebinding protection)."""

from __future__ import annotations

import pytest

from paddler_server._host_check import HostRule, parse_allowed_hosts, split_host


def test_split_host_drops_port_brackets_and_case() -> None:
    """A Host header's name is compared without its port, brackets or case."""
    assert split_host("LocalHost:8061") == "localhost"
    assert split_host("[::1]:8061") == "::1"
    assert split_host("127.0.0.1") == "127.0.0.1"
    assert split_host("example.com.:80") == "example.com"


def test_a_loopback_service_answers_loopback_names_only() -> None:
    """Bound to 127.0.0.1, it answers localhost, 127.x and ::1, not a rebound domain."""
    rule = HostRule("127.0.0.1")
    for host in ("localhost:8061", "127.0.0.1:8061", "127.4.5.6", "[::1]:1", "app.localhost"):
        assert rule.allows(host), host
    assert not rule.allows("evil.example:8061")
    assert not rule.allows("10.0.0.5:8061")


def test_allowed_hosts_extend_the_loopback_list() -> None:
    """--allowed-hosts adds exact names and *.suffix wildcards."""
    rule = HostRule("127.0.0.1", parse_allowed_hosts(["gpu.lan,*.example.com"]))
    assert rule.allows("gpu.lan:8061")
    assert rule.allows("a.example.com")
    assert not rule.allows("example.com.evil")
    assert rule.allows("localhost")


def test_a_wildcard_bind_checks_only_with_allowed_hosts() -> None:
    """On 0.0.0.0 any name reaches the service, unless --allowed-hosts narrows it."""
    assert HostRule("0.0.0.0").allows("anything:1")
    narrowed = HostRule("0.0.0.0", ("gpu.lan",))
    assert narrowed.allows("gpu.lan") and narrowed.allows("127.0.0.1")
    assert not narrowed.allows("evil.example")
    assert HostRule("127.0.0.1", ("*",)).allows("evil.example")


def test_a_missing_host_passes() -> None:
    """Only browsers can be rebound, and browsers always send Host."""
    assert HostRule("127.0.0.1").allows(None)


@pytest.mark.parametrize("bad", ["http://x.com", "x.com:80", "x.com/path"])
def test_allowed_hosts_refuse_urls_and_ports(bad: str) -> None:
    """An entry with a scheme, port or path is a usage error naming it."""
    with pytest.raises(ValueError, match=r"x\.com"):
        parse_allowed_hosts([bad])
