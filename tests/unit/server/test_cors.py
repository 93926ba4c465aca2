"""CORS origins: explicit ones as given, a panel on every interface reachable by any name."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # litestar's Dependency() at import
    from paddler_server._http import cors_config


def test_no_origins_means_no_cors() -> None:
    """Without origins the services send no CORS headers at all."""
    assert cors_config([]) is None


def test_explicit_origins_are_allowed_exactly() -> None:
    """An explicit origin is allowed, another host is not."""
    config = cors_config(["http://panel.internal:8062"])
    assert config is not None
    assert config.is_origin_allowed("http://panel.internal:8062")
    assert not config.is_origin_allowed("http://evil.example:8062")


def test_a_wildcard_panel_address_allows_any_host_on_its_port() -> None:
    """A panel on 0.0.0.0:8062 is opened as http://<some name>:8062; that origin is allowed."""
    config = cors_config(["http://0.0.0.0:8062"])
    assert config is not None
    assert config.is_origin_allowed("http://10.0.0.7:8062")
    assert config.is_origin_allowed("http://gpu-box.lan:8062")
    assert not config.is_origin_allowed("http://10.0.0.7:9999")
