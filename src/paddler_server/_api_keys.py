"""Inference API keys: ``--api-key`` values, the ``--api-keys-file`` TOML, and the live store.

Only SHA-256 digests are kept (``_bearer.SecretSet``); a key's ``name`` is what logs and
``/metrics`` show. A ``--api-key`` gets the stable name ``key-<first 8 hex digits of its
SHA-256>``. Each named key has one ``KeyTenant`` for the life of the process: a reload that
keeps a name keeps its counters and requests in flight, with the new limits and priority.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from paddler._tenancy import Tenant
from paddler.errors import InvalidRequest
from paddler.wire import validate_pool_name
from paddler_server._bearer import SecretSet, digest
from paddler_server._key_limits import KeyLimiter, KeyLimits

__all__ = [
    "ApiKey",
    "ApiKeyStore",
    "KeyTenant",
    "KeysFileError",
    "flag_key_name",
    "keys_from_flags",
    "load_keys_file",
]

logger = logging.getLogger("paddler_server.api_keys")

_FIELDS = {
    "name",
    "key",
    "key_sha256",
    "requests_per_minute",
    "tokens_per_minute",
    "max_concurrent_requests",
    "priority",
    "models",
}
_LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "max_concurrent_requests")
_SHA256_HEX = re.compile(r"\A[0-9a-fA-F]{64}\Z")


@attrs.frozen(kw_only=True)
class ApiKey:
    """One accepted key. ``models``: the pools (or model aliases) it may use; ``None``: all
    (enforced in ``_pool_routing``)."""

    name: str
    digest: bytes = attrs.field(repr=False)
    limits: KeyLimits = attrs.field(factory=KeyLimits)
    priority: int = 0
    models: tuple[str, ...] | None = None


class KeysFileError(ValueError):
    """A keys file that cannot be used; the message names the file, the entry and the field."""


def flag_key_name(key: str) -> str:
    """The non-secret name of a ``--api-key`` (stable across restarts for the same key)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def keys_from_flags(keys: Iterable[str]) -> list[ApiKey]:
    """``--api-key`` values (and ``PADDLER_API_KEYS``): no limits, priority 0."""
    found: dict[bytes, ApiKey] = {}
    for key in keys:
        if not key.strip():
            raise ValueError("--api-key: an API key may not be empty")
        if key != key.strip():
            raise ValueError("--api-key: an API key may not start or end with spaces")
        found.setdefault(digest(key), ApiKey(name=flag_key_name(key), digest=digest(key)))
    return list(found.values())


def load_keys_file(path: Path) -> list[ApiKey]:
    """Read and check a keys file; ``KeysFileError`` says what is wrong and where."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeysFileError(f"{path}: cannot read the API keys file: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"{path}: not valid TOML: {exc}") from exc
    extra = set(document) - {"keys"}
    if extra:
        raise KeysFileError(
            f"{path}: unknown top-level field {sorted(extra)[0]!r}; expected only [[keys]] tables"
        )
    entries = document.get("keys", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise KeysFileError(f"{path}: 'keys' must be an array of tables, written [[keys]]")
    keys: list[ApiKey] = []
    names: set[str] = set()
    digests: dict[bytes, str] = {}
    for number, entry in enumerate(entries, start=1):
        key = _parse_entry(path, number, entry)
        where = _where(path, number, entry)
        if key.name in names:
            raise KeysFileError(f"{where}: name: {key.name!r} is used by an earlier entry")
        if key.digest in digests:
            raise KeysFileError(f"{where}: key: the same key as entry {digests[key.digest]!r}")
        names.add(key.name)
        digests[key.digest] = key.name
        keys.append(key)
    return keys


def _where(path: Path, number: int, entry: dict[str, Any]) -> str:
    name = entry.get("name")
    label = f" ({name!r})" if isinstance(name, str) and name else ""
    return f"{path}: [[keys]] entry {number}{label}"


def _parse_entry(path: Path, number: int, entry: dict[str, Any]) -> ApiKey:
    where = _where(path, number, entry)
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise KeysFileError(
            f"{where}: {unknown[0]}: unknown field; expected {', '.join(sorted(_FIELDS))}"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise KeysFileError(f"{where}: name: required, a non-empty string")
    if "key" in entry and "key_sha256" in entry:
        raise KeysFileError(f"{where}: key: give either key or key_sha256, not both")
    if "key" in entry:
        secret = entry["key"]
        if not isinstance(secret, str) or not secret.strip():
            raise KeysFileError(f"{where}: key: must be a non-empty string")
        if secret != secret.strip():
            raise KeysFileError(f"{where}: key: may not start or end with spaces")
        key_digest = digest(secret)
    elif "key_sha256" in entry:
        hexdigest = entry["key_sha256"]
        if not isinstance(hexdigest, str) or not _SHA256_HEX.match(hexdigest):
            raise KeysFileError(
                f"{where}: key_sha256: must be 64 hex digits (the SHA-256 of the key, "
                "e.g. printf %s KEY | sha256sum)"
            )
        key_digest = bytes.fromhex(hexdigest)
    else:
        raise KeysFileError(f"{where}: key: required (or key_sha256)")
    limits = {field: _positive(where, field, entry.get(field)) for field in _LIMIT_FIELDS}
    priority = entry.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise KeysFileError(f"{where}: priority: must be an integer, got {priority!r}")
    return ApiKey(
        name=name,
        digest=key_digest,
        limits=KeyLimits(**limits),
        priority=priority,
        models=_models(where, entry.get("models")),
    )


def _positive(where: str, field: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise KeysFileError(f"{where}: {field}: must be a positive integer, got {value!r}")
    return value


def _models(where: str, value: Any) -> tuple[str, ...] | None:
    """Pool names (or ``--model-alias`` names, which follow the same rule)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise KeysFileError(f"{where}: models: must be a list of non-empty strings")
    for model in value:
        try:
            validate_pool_name(model)
        except InvalidRequest as exc:  # it could never match a pool: a typo, said at once
            raise KeysFileError(f"{where}: models: {exc}") from exc
    return tuple(value)


class KeyTenant(Tenant):
    """A key as the balancer's tenant: its limiter and its ``/metrics`` series."""

    def __init__(self, key: ApiKey, *, metrics: Any = None) -> None:
        super().__init__(key.name, priority=key.priority)
        self.key = key
        self.limiter = KeyLimiter(key.name, key.limits)
        self._metrics = metrics  # paddler.metrics.KeyMetrics, or None

    def update(self, key: ApiKey) -> None:
        """A reload changed this key's settings (same name)."""
        self.key = key
        self.priority = key.priority
        self.limiter.limits = key.limits

    def observe_buffer_wait(self, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_buffer_wait(self.name, seconds)

    def count_tokens(self, *, prompt: int, generated: int) -> None:
        self.limiter.add_tokens(prompt + generated)
        if self._metrics is not None:
            self._metrics.count_tokens(self.name, prompt=prompt, generated=generated)

    def count_request(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.count_request(self.name, outcome)


class ApiKeyStore:
    """The keys a service accepts now; empty means the service is open (Paddler's default)."""

    def __init__(self, keys: Sequence[ApiKey] = (), *, metrics: Any = None) -> None:
        self._metrics = metrics
        self._tenants: dict[str, KeyTenant] = {}
        self._secrets = SecretSet()
        self._by_digest: dict[bytes, KeyTenant] = {}
        self.replace(keys)

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    def __repr__(self) -> str:
        return f"<ApiKeyStore [{len(self._by_digest)} keys]>"

    @property
    def metrics(self) -> Any:
        return self._metrics

    @property
    def names(self) -> list[str]:
        return sorted(tenant.name for tenant in self._by_digest.values())

    def replace(self, keys: Sequence[ApiKey]) -> None:
        """Accept exactly ``keys`` from now on (a reload); names already known keep state."""
        names = [key.name for key in keys]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate is not None:
            raise KeysFileError(f"two API keys are named {duplicate!r}")
        by_digest: dict[bytes, KeyTenant] = {}
        for key in keys:
            tenant = self._tenants.get(key.name)
            if tenant is None:
                tenant = self._tenants[key.name] = KeyTenant(key, metrics=self._metrics)
            else:
                tenant.update(key)
            by_digest[key.digest] = tenant
        # Swapped whole, so a request checked during a reload sees the old or the new keys.
        self._secrets, self._by_digest = SecretSet(digests=by_digest), by_digest

    def authenticate(self, presented: str | None) -> KeyTenant | None:
        """The tenant of ``presented`` if it is an accepted key (constant-time compare)."""
        found = self._secrets.match(presented)
        return None if found is None else self._by_digest.get(found)

    def count_refused(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.count_refused(reason)
