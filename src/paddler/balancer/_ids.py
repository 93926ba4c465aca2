"""Request ids: random, URL-safe, 21 characters like Paddler's nanoids."""

from __future__ import annotations

import secrets

__all__ = ["new_request_id"]


def new_request_id() -> str:
    return secrets.token_urlsafe(16)[:21]
