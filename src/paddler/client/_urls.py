"""Service URLs: a base URL (``http://127.0.0.1:8061``) and the paths the API uses."""

from __future__ import annotations

__all__ = ["inference_socket_url", "normalize_base_url"]


def normalize_base_url(url: str) -> str:
    """``127.0.0.1:8061`` → ``http://127.0.0.1:8061``; no trailing slash."""
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def inference_socket_url(base_url: str) -> str:
    """http → ws, https → wss, path ``/api/v1/inference_socket``."""
    scheme, rest = base_url.split("://", 1)
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return f"{ws_scheme}://{rest}/api/v1/inference_socket"
