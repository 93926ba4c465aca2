"""Every random id the library makes, in one place; both the agent and the balancer import it.

``new_id()`` is what Paddler's nanoids look like (21 URL-safe characters): agent ids and
request ids. ``openai_id(prefix)`` is the OpenAI shape (``chatcmpl-``/``call_`` then 24 hex
digits), for response and tool-call ids.
"""

from __future__ import annotations

import secrets

__all__ = ["new_id", "openai_id"]


def new_id() -> str:
    """21 random URL-safe characters (126 bits), as Paddler's nanoid ids."""
    return secrets.token_urlsafe(16)[:21]


def openai_id(prefix: str) -> str:
    """``prefix`` then 24 random hex digits, as OpenAI's ids (``chatcmpl-…``, ``call_…``)."""
    return f"{prefix}{secrets.token_hex(12)}"
