"""Which model pool a request goes to, and whether its API key may use that pool.

The native API names the pool in the ``Paddler-Pool`` header (``paddler.wire.POOL_HEADER``; no
header: ``default``, exactly as Paddler); the OpenAI API names it in ``model``
(``openai._models.ModelNames``), where ``--model-alias ALIAS=POOL`` adds more names. Both end
in the same checks: a pool that exists, and an API key whose ``models`` list (aliases resolved)
includes it. A refused key gets 403 on the native API; the OpenAI layer answers 404
``model_not_found`` instead, as OpenAI does for a model the caller has no access to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from paddler._tenancy import current_tenant
from paddler.errors import InvalidRequest, PaddlerError, UnknownPool
from paddler.wire import DEFAULT_POOL, POOL_HEADER, validate_pool_name
from paddler_server._api_keys import KeyTenant

if TYPE_CHECKING:
    from paddler.balancer import Balancer

__all__ = [
    "POOL_SUBPROTOCOL_PREFIX",
    "PoolNotAllowed",
    "check_key_may_use",
    "key_may_use",
    "native_pool",
    "parse_model_aliases",
    "unknown_pool",
]

#: The lower-case header name, as the apps' header dicts hold it.
POOL_HEADER_KEY = POOL_HEADER.lower()
#: A browser cannot set headers on a WebSocket: it offers the subprotocol
#: ``paddler.pool.NAME`` (beside ``paddler``) instead of the header.
POOL_SUBPROTOCOL_PREFIX = "paddler.pool."


class PoolNotAllowed(PaddlerError):
    """The request's API key lists ``models`` and the request's pool is not among them."""

    code = 403

    def __init__(self, pool: str, key: str) -> None:
        super().__init__(
            f"The API key {key!r} may not use the pool {pool!r} (it is not in the key's models)"
        )
        self.pool = pool


def parse_model_aliases(values: Iterable[str]) -> dict[str, str]:
    """``--model-alias ALIAS=POOL`` values as ``{alias: pool}``; ``ValueError`` says which
    value is wrong and why (the CLI prefixes the flag)."""
    aliases: dict[str, str] = {}
    for value in values:
        alias, sep, pool = value.partition("=")
        alias, pool = alias.strip(), pool.strip()
        if not sep or not alias or not pool:
            raise ValueError(f"{value!r} is not ALIAS=POOL, e.g. gpt-4o-mini=chat")
        for part in (alias, pool):
            try:
                validate_pool_name(part)
            except InvalidRequest as exc:
                raise ValueError(f"{value!r}: {exc}") from exc
        if alias == DEFAULT_POOL:
            raise ValueError(f"{value!r}: {DEFAULT_POOL!r} is a pool's name, not an alias")
        if alias == pool:
            raise ValueError(f"{value!r}: an alias must differ from its pool")
        if aliases.get(alias, pool) != pool:
            raise ValueError(f"{value!r}: {alias!r} is already an alias of {aliases[alias]!r}")
        aliases[alias] = pool
    for alias, pool in aliases.items():
        if pool in aliases:
            raise ValueError(
                f"{alias}={pool}: {pool!r} is itself an alias (of {aliases[pool]!r}); "
                "an alias names a pool, not another alias"
            )
    return aliases


def _key_pools(aliases: Mapping[str, str]) -> tuple[str, frozenset[str]] | None:
    """The current request's key name and the pools its ``models`` allow; ``None``: any."""
    tenant = current_tenant()
    if not isinstance(tenant, KeyTenant) or tenant.key.models is None:
        return None
    return tenant.name, frozenset(aliases.get(model, model) for model in tenant.key.models)


def key_may_use(pool: str, aliases: Mapping[str, str]) -> bool:
    """Whether the current request's API key may use ``pool`` (no keys, or no ``models``:
    every pool)."""
    allowed = _key_pools(aliases)
    return allowed is None or pool in allowed[1]


def check_key_may_use(pool: str, aliases: Mapping[str, str]) -> None:
    """``PoolNotAllowed`` (403) unless the current request's key may use ``pool``."""
    allowed = _key_pools(aliases)
    if allowed is not None and pool not in allowed[1]:
        raise PoolNotAllowed(pool, allowed[0])


def unknown_pool(name: str) -> UnknownPool:
    return UnknownPool(
        f"Unknown pool {name!r}: no agent joined it (paddler agent --pool {name}) and no "
        f"desired state was set for it (PUT /api/v1/pools/{name}/desired_state)"
    )


def native_pool(
    headers: Mapping[str, str],
    balancer: Balancer,
    aliases: Mapping[str, str] | None = None,
    *,
    subprotocols: Iterable[str] = (),
) -> str:
    """The pool a native request names in ``Paddler-Pool`` (lower-case ``headers``), or, on a
    WebSocket without the header, in a ``paddler.pool.NAME`` subprotocol it offers.

    Neither: ``default``. A name off the pool-name rule is ``InvalidRequest`` (400) naming
    the header; a pool the balancer does not know is ``UnknownPool`` (404); a key that may not
    use it is ``PoolNotAllowed`` (403).
    """
    value, source = headers.get(POOL_HEADER_KEY), f"{POOL_HEADER} header"
    if value is None:
        offered = (p for p in subprotocols if p.startswith(POOL_SUBPROTOCOL_PREFIX))
        value = next((p.removeprefix(POOL_SUBPROTOCOL_PREFIX) for p in offered), None)
        source = f"{POOL_SUBPROTOCOL_PREFIX}NAME subprotocol"
    pool = DEFAULT_POOL
    if value is not None:
        try:
            pool = validate_pool_name(value)
        except InvalidRequest as exc:
            raise InvalidRequest(f"{source}: {exc}", field=POOL_HEADER) from exc
        if not balancer.has_pool(pool):
            raise unknown_pool(pool)
    check_key_may_use(pool, aliases or {})
    return pool
