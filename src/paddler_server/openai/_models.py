"""``GET /v1/models``: the one model the cluster serves, named from its GGUF metadata.

The name is ``general.name`` from the model's metadata (asked of an agent that has it loaded,
once per model path), else the model file's name, else what the desired state points at.
"""

from __future__ import annotations

import logging
import time
from pathlib import PurePath
from typing import Any

import attrs

from paddler.errors import PaddlerError
from paddler.wire import HuggingFaceModel, LocalToAgentModel, NoModel, UrlModel

__all__ = ["ModelNames"]

logger = logging.getLogger("paddler_server.openai")

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


@attrs.define
class ModelNames:
    """Resolves and caches the served model's name for one balancer."""

    balancer: Any
    _by_path: dict[str, str] = attrs.Factory(dict)
    created: int = attrs.Factory(lambda: int(time.time()))

    async def current(self) -> str | None:
        """The loaded model's name, or ``None`` when no model is configured."""
        snapshot = self.balancer.agents_snapshot()
        for agent in snapshot.agents:
            if agent.model_path is None:
                continue
            cached = self._by_path.get(agent.model_path)
            if cached is not None:
                return cached
            name = await self._ask(agent.id) or PurePath(agent.model_path).stem
            self._by_path[agent.model_path] = name
            return name
        try:
            state = self.balancer.applicable_state
        except Exception:
            state = None
        model = getattr(state, "model", NoModel())
        return _name_of_desired(model)

    async def _ask(self, agent_id: str) -> str | None:
        try:
            metadata = await self.balancer.get_model_metadata(agent_id)
        except PaddlerError as exc:
            logger.info("model metadata unavailable from agent %s: %s", agent_id, exc)
            return None
        if metadata is None:
            return None
        name = metadata.metadata.get("general.name")
        return name.strip() or None if isinstance(name, str) else None

    async def echo(self, requested: str | None) -> str:
        """What a response's ``model`` field says: the request's name, else the served one."""
        if requested:
            return requested
        return await self.current() or FALLBACK_NAME

    async def listing(self) -> dict[str, Any]:
        name = await self.current()
        data = [] if name is None else [self.model_object(name)]
        return {"object": "list", "data": data}

    def model_object(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "paddler"}
