"""``Host`` header checks against DNS rebinding, around every balancer service.

A web page the operator opens can point its own domain at ``127.0.0.1`` and then call a
balancer on loopback from the operator's browser. The browser sends that domain as ``Host``,
so a service bound to loopback answers only requests whose ``Host`` is a loopback name or
address (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``, ``0.0.0.0``) or one of
``--allowed-hosts``. A service bound to another address checks only when
``--allowed-hosts`` is given (its own address is then allowed too); ``*`` turns the check off.

Refused requests get ``403`` with a message naming the host and the flag; a refused
WebSocket handshake gets the same answer. A request without ``Host`` (HTTP/1.0 tools) passes:
browsers always send one, and only browsers can be rebound.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from paddler_server._refusal import refuse, scope_header

__all__ = ["HostCheck", "HostRule", "is_loopback_host", "parse_allowed_hosts", "split_host"]

logger = logging.getLogger("paddler_server.host_check")

LOOPBACK_NAMES = ("localhost",)


def split_host(value: str) -> str:
    """The host of a ``Host`` header value, lower-cased, without port or IPv6 brackets."""
    host = value.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (no port) is a loopback name or address."""
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _names_this_machine(host: str) -> bool:
    """Loopback, or ``0.0.0.0``/``::``: browsers open those as this machine too, and no DNS
    name (what a rebinding attack needs) is involved."""
    return is_loopback_host(host) or _is_wildcard_bind(host)


def _is_wildcard_bind(host: str) -> bool:
    return host in ("", "0.0.0.0", "::", "[::]")


def parse_allowed_hosts(values: Iterable[str]) -> tuple[str, ...]:
    """``--allowed-hosts`` values (each may list several, comma-separated), normalised.

    An entry is a name or address (``gpu.example.com``, ``10.0.0.5``), ``*.example.com`` or
    ``.example.com`` for every subdomain, or ``*`` for any host. Raises ``ValueError`` naming
    an entry with a scheme, a path or a port.
    """
    hosts: list[str] = []
    for value in values:
        for raw in value.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if "://" in entry or "/" in entry:
                raise ValueError(f"{raw.strip()!r} is not a host name (no scheme or path)")
            bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            if ":" in bare and not _is_ipv6(bare):
                raise ValueError(f"{raw.strip()!r} has a port; give the host name only")
            hosts.append(bare)
    return tuple(dict.fromkeys(hosts))


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


class HostRule:
    """Which ``Host`` values one service answers, from its bind address and the allow-list."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed = tuple(allowed_hosts)
        bind = split_host(bind_host) if bind_host else ""
        self.any_host = "*" in self.allowed or (not self.allowed and not is_loopback_host(bind))
        self._exact = {host for host in self.allowed if not host.startswith(("*.", "."))}
        if bind and not _is_wildcard_bind(bind):
            self._exact.add(bind)
        self._suffixes = tuple(
            "." + host.removeprefix("*.").removeprefix(".")
            for host in self.allowed
            if host.startswith(("*.", "."))
        )

    def allows(self, host_header: str | None) -> bool:
        if self.any_host or host_header is None:
            return True
        host = split_host(host_header)
        return (
            _names_this_machine(host)
            or host in self._exact
            or any(host.endswith(suffix) for suffix in self._suffixes)
        )


class HostCheck:
    """ASGI middleware: refuse requests and WebSocket handshakes whose ``Host`` the rule
    does not allow, before the app sees them."""

    def __init__(self, app: Any, rule: HostRule, *, service: str) -> None:
        self.app = app
        self.rule = rule
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = scope_header(scope, b"host")
        if self.rule.allows(host):
            await self.app(scope, receive, send)
            return
        logger.warning(
            "request refused service=%s host=%r path=%s (not an allowed host)",
            self.service,
            host,
            scope.get("path"),
        )
        description = (
            f"Host {host!r} is not allowed on the {self.service} service; it answers loopback "
            "names only (add this host with --allowed-hosts if it is yours)"
        )
        await refuse(scope, receive, send, 403, description)
