"""Bearer credentials: read ``Authorization: Bearer ...`` and compare keys in constant time.

Every secret the balancer checks (the management key, agent join tokens, inference API keys)
goes through :class:`SecretSet`, which keeps only SHA-256 digests and compares a presented
value against each of them with ``hmac.compare_digest``: how long a check takes says nothing
about how much of a key was right, and no key is ever kept or logged in the clear.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

__all__ = ["SecretSet", "bearer_token", "digest"]


def digest(secret: str) -> bytes:
    """The SHA-256 of ``secret`` (UTF-8): what is kept and compared instead of the secret."""
    return hashlib.sha256(secret.encode()).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <token>`` header value, else ``None``.

    The scheme is case-insensitive (RFC 7235); surrounding spaces are ignored.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class SecretSet:
    """A set of accepted secrets, kept as digests; ``match`` says which one was presented.

    Each check compares against every digest (no early exit), so timing depends only on how
    many secrets there are.
    """

    def __init__(self, secrets: Iterable[str] = (), *, digests: Iterable[bytes] = ()) -> None:
        self._digests = tuple([*(digest(secret) for secret in secrets), *digests])

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"<SecretSet [{len(self._digests)} secrets]>"

    def match(self, presented: str | None) -> bytes | None:
        """The digest of ``presented`` if it is one of the secrets, else ``None``."""
        if presented is None:
            return None
        candidate = digest(presented)
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(candidate, known)
        return candidate if found else None

    def __contains__(self, presented: object) -> bool:
        return isinstance(presented, str) and self.match(presented) is not None
