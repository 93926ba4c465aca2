"""CORS origins: exact ones only, including those of a panel on every interface."""

from __future__ import annotations

import socket
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # litestar's Dependency() at import
    from paddler_server._http import cors_config

from paddler_server._options import parse_address
from paddler_server._origins import panel_origins


def test_no_origins_means_no_cors() -> None:
    """Without origins the services send no CORS headers at all."""
    assert cors_config([]) is None


def test_explicit_origins_are_allowed_exactly() -> None:
    """An explicit origin is allowed, another host is not."""
    config = cors_config(["http://panel.internal:8062"])
    assert config is not None
    assert config.is_origin_allowed("http://panel.internal:8062")
    assert not config.is_origin_allowed("http://evil.example:8062")


def test_a_wildcard_origin_is_not_a_pattern() -> None:
    """``http://0.0.0.0:8062`` is taken literally: no other host on that port is allowed."""
    config = cors_config(["http://0.0.0.0:8062"])
    assert config is not None
    assert not config.is_origin_allowed("http://evil.example:8062")


def test_a_panel_on_every_interface_lists_exact_origins() -> None:
    """Loopback names, this machine's name and --allowed-hosts; a wildcard entry is not one."""
    origins = panel_origins(
        parse_address("0.0.0.0:8062"), allowed_hosts=("gpu.lan", "*.example.com")
    )
    config = cors_config(origins)
    assert config is not None
    for origin in ("http://localhost:8062", "http://127.0.0.1:8062", "http://gpu.lan:8062"):
        assert config.is_origin_allowed(origin), origin
    assert f"http://{socket.gethostname()}:8062" in origins
    assert not config.is_origin_allowed("http://evil.example:8062")
    assert not any("example.com" in origin for origin in origins)


def test_a_tls_panel_on_loopback_has_https_origins() -> None:
    """With --tls-cert the panel is opened over https, by any loopback name."""
    assert panel_origins(parse_address("127.0.0.1:8062"), tls=True) == (
        "https://127.0.0.1:8062",
        "https://localhost:8062",
        "https://[::1]:8062",
    )
