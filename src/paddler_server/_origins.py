"""The admin panel's browser origins, named exactly (CORS has no any-host pattern).

A panel on one address has one origin; a loopback one is opened as ``localhost``,
``127.0.0.1`` or ``[::1]`` alike, so it has those three. A panel on every interface
(``0.0.0.0:PORT``, ``[::]:PORT``) is opened by some name of this machine, so its origins are
``SCHEME://NAME:PORT`` for each name the balancer knows: the loopback names, the machine's
host name, fully qualified name and addresses, and the exact ``--allowed-hosts`` entries. Any
other name (a DNS alias, a NAT address) goes in ``--allowed-hosts`` or the CORS flags.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from paddler_server._host_check import is_loopback_host
from paddler_server._options import Address

__all__ = ["machine_names", "panel_origins"]

_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
LOOPBACK_ORIGIN_HOSTS = ("localhost", "127.0.0.1", "::1")


def machine_names() -> list[str]:
    """This machine's host name, fully qualified name and their addresses (best effort)."""
    names = [socket.gethostname(), socket.getfqdn()]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        infos = []
    names += [str(info[4][0]) for info in infos]
    return [name for name in dict.fromkeys(names) if name]


def _origin(scheme: str, host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{scheme}://{host}:{port}"


def panel_origins(
    panel: Address | None, *, tls: bool = False, allowed_hosts: Iterable[str] = ()
) -> tuple[str, ...]:
    """Every exact origin the panel at ``panel`` is opened from (none when it is off)."""
    if panel is None:
        return ()
    scheme = "https" if tls else "http"
    if is_loopback_host(panel.host):  # opened as localhost, 127.0.0.1 or [::1] alike
        hosts = [panel.host, *LOOPBACK_ORIGIN_HOSTS]
        return tuple(dict.fromkeys(_origin(scheme, host, panel.port) for host in hosts))
    if panel.host not in _WILDCARD_HOSTS:
        return (_origin(scheme, panel.host, panel.port),)
    hosts = [
        *LOOPBACK_ORIGIN_HOSTS,
        *machine_names(),
        *(host for host in allowed_hosts if not host.startswith(("*", "."))),
    ]
    return tuple(dict.fromkeys(_origin(scheme, host, panel.port) for host in hosts))
