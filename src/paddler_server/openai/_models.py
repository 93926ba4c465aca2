"""OpenAI model ids: which pool a request's ``model`` selects, and what ``/v1/models`` lists.

A pool's name is its model id, and ``--model-alias ALIAS=POOL`` adds names. While ``default``
is the only pool the balancer knows, any ``model`` goes there (Paddler accepts any name), and
``/v1/models`` lists one id as before: ``--served-model-name`` when given, else the loaded model
file's stem (an agent's ``model_path``), else the stem of what the desired state points at.
With more pools, ``/v1/models`` lists the pools that are serving, and an unknown ``model`` is a
404 ``model_not_found``; the default pool's id above then stays a name of ``default``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import attrs

from paddler.balancer import Balancer  # at run time: Litestar reads this record's fields
from paddler.wire import DEFAULT_POOL, HuggingFaceModel, LocalToAgentModel, NoModel, UrlModel
from paddler_server._pool_routing import key_may_use
from paddler_server.openai._errors import OpenAIError

__all__ = ["ModelNames", "model_not_found"]

#: Echoed when no model is configured and the request named none.
FALLBACK_NAME = "paddler"


def _name_of_desired(model: object) -> str | None:
    if isinstance(model, HuggingFaceModel):
        return PurePath(model.filename).stem
    if isinstance(model, LocalToAgentModel):
        return PurePath(model.path).stem
    if isinstance(model, UrlModel):
        return PurePath(model.url.split("?", 1)[0]).stem or None
    return None


def model_not_found(model: str) -> OpenAIError:
    """OpenAI's 404 for a model that is not served here, or that the caller's key may not use
    (worded the same, so a key learns nothing about pools it cannot use)."""
    return OpenAIError(
        404,
        f"The model {model!r} does not exist",
        param="model",
        code="model_not_found",
    )


@attrs.define
class ModelNames:
    """The model ids of one balancer's pools, and the pool each id selects.

    An id is something a client can type: ``SmolLM2-135M-Instruct.Q4_1``, not the GGUF's
    ``general.name`` (often with spaces).
    """

    balancer: Balancer
    served_name: str | None = None
    #: ``--model-alias``: alias → pool.
    aliases: Mapping[str, str] = attrs.field(factory=dict)
    created: int = attrs.Factory(lambda: int(time.time()))

    def _only_default(self) -> bool:
        return self.balancer.pool_names() == (DEFAULT_POOL,)

    async def current(self) -> str | None:
        """The default pool's model id, or ``None`` when no model is configured."""
        return self._default_id()

    def _default_id(self) -> str | None:
        if self.served_name:
            return self.served_name
        snapshot = self.balancer.agents_snapshot(DEFAULT_POOL)
        for agent in snapshot.agents:
            if agent.model_path is not None:
                return PurePath(agent.model_path).stem
        try:
            state = self.balancer.applicable_state
        except Exception:
            state = None
        model = getattr(state, "model", NoModel())
        return _name_of_desired(model)

    def pool_of(self, requested: str | None) -> str:
        """The pool a request naming ``requested`` goes to; ``model_not_found`` (404) for an
        unknown name or one the request's API key may not use."""
        if self._only_default():
            pool = DEFAULT_POOL  # Paddler's leniency: the name does not matter
        elif not requested:
            pool = DEFAULT_POOL
        else:
            pool = self.aliases.get(requested, requested)
            if not self.balancer.has_pool(pool) and pool == self._default_id():
                pool = DEFAULT_POOL  # the id clients saw before a second pool appeared
            if not self.balancer.has_pool(pool):
                raise model_not_found(requested)
        if not key_may_use(pool, self.aliases):
            raise model_not_found(requested or pool)
        return pool

    async def echo(self, requested: str | None) -> str:
        """What a response's ``model`` field says: the request's name, else the served one."""
        if requested:
            return requested
        return await self.current() or FALLBACK_NAME

    async def route(self, requested: str | None) -> tuple[str, str]:
        """``(pool, echoed name)`` for a request's ``model`` (see ``pool_of``, ``echo``)."""
        return self.pool_of(requested), await self.echo(requested)

    async def ids(self) -> list[str]:
        """The ids ``/v1/models`` lists, for the current request's API key."""
        if self._only_default():
            if not key_may_use(DEFAULT_POOL, self.aliases):
                return []
            name = await self.current()
            ids = [] if name is None else [name]
            serving = {DEFAULT_POOL}
        else:
            serving = {
                pool.name
                for pool in self.balancer.pools_snapshot()
                if pool.serving and key_may_use(pool.name, self.aliases)
            }
            ids = [name for name in self.balancer.pool_names() if name in serving]
            default_id = self._default_id() if DEFAULT_POOL in serving else None
            if default_id is not None and not self.balancer.has_pool(default_id):
                ids.append(default_id)
        ids += [alias for alias, pool in self.aliases.items() if pool in serving]
        return list(dict.fromkeys(ids))

    async def listing(self) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_object(name) for name in await self.ids()]}

    def model_object(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "paddler"}
