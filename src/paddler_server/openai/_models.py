"""``GET /v1/models``: the one model the cluster serves, under an id a client can type.

The id is ``--served-model-name`` when given, else the loaded model file's stem (an agent's
``model_path``), else the stem of what the desired state points at.
"""

from __future__ import annotations

import time
from pathlib import PurePath
from typing import Any

import attrs

from paddler.balancer import Balancer  # at run time: Litestar reads this record's fields
from paddler.wire import HuggingFaceModel, LocalToAgentModel, NoModel, UrlModel

__all__ = ["ModelNames"]

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
    """The served model's id for one balancer: ``served_name`` if given, else the file stem.

    An id is something a client can type: ``SmolLM2-135M-Instruct.Q4_1``, not the GGUF's
    ``general.name`` (often with spaces). Requests may still name any model; it is echoed.
    """

    balancer: Balancer
    served_name: str | None = None
    created: int = attrs.Factory(lambda: int(time.time()))

    async def current(self) -> str | None:
        """The served model's id, or ``None`` when no model is configured."""
        if self.served_name:
            return self.served_name
        snapshot = self.balancer.agents_snapshot()
        for agent in snapshot.agents:
            if agent.model_path is not None:
                return PurePath(agent.model_path).stem
        try:
            state = self.balancer.applicable_state
        except Exception:
            state = None
        model = getattr(state, "model", NoModel())
        return _name_of_desired(model)

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
