"""Model pools on the wire: the default pool's name, the header that names a pool, the rule.

An agent joins one pool (``paddler agent --pool NAME``) by sending ``POOL_HEADER`` in its
WebSocket upgrade; a Paddler 4.1 balancer ignores the header, and no header means
``DEFAULT_POOL``. Clients of the native inference API choose a pool with the same header.
"""

from __future__ import annotations

import re

from paddler.errors import InvalidRequest

__all__ = ["DEFAULT_POOL", "POOL_HEADER", "POOL_NAME_RULE", "validate_pool_name"]

#: The pool of every agent and request that names none (all of a Paddler cluster).
DEFAULT_POOL = "default"
#: The handshake (and native inference) header whose value is a pool name.
POOL_HEADER = "Paddler-Pool"
#: What a pool name may be: usable as a URL path segment and as an OpenAI model id.
POOL_NAME_RULE = "[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"

_POOL_NAME = re.compile(POOL_NAME_RULE)


def validate_pool_name(name: str) -> str:
    """``name`` if it is a valid pool name; else ``InvalidRequest`` naming it and the rule."""
    if not isinstance(name, str) or _POOL_NAME.fullmatch(name) is None:
        raise InvalidRequest(
            f"invalid pool name {name!r}: a pool name is 1 to 128 characters, letters, digits "
            "and . _ : - (matching " + POOL_NAME_RULE + "), starting with a letter or digit",
            field="pool",
        )
    return name
