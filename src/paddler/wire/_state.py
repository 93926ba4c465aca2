"""Desired-state documents (spec §5.1, §3.3): which model, which parameters, which template."""

from __future__ import annotations

from typing import Self

from attrs import field, frozen

from ._inference_params import InferenceParameters
from ._markers import WIRE_REQUIRED, newtype

__all__ = [
    "AgentDesiredModel",
    "AgentDesiredState",
    "BalancerDesiredState",
    "ChatTemplate",
    "HuggingFaceModel",
    "LocalToAgentModel",
    "NoModel",
    "UrlModel",
]


@frozen
class ChatTemplate:
    """A Jinja chat template, as text."""

    content: str


@frozen
class NoModel:
    """No model (wire ``"None"``)."""


@frozen
class HuggingFaceModel:
    """A GGUF file in a Hugging Face repository (wire ``{"HuggingFace":{...}}``)."""

    repo_id: str
    revision: str
    filename: str


@newtype
@frozen
class LocalToAgentModel:
    """A path on the agent's own disk (wire ``{"LocalToAgent":"/abs/path.gguf"}``)."""

    path: str


@frozen
class UrlModel:
    """A GGUF downloaded over http(s) (wire ``{"Url":{"url":...}}``)."""

    url: str


AgentDesiredModel = NoModel | HuggingFaceModel | LocalToAgentModel | UrlModel


@frozen(kw_only=True)
class BalancerDesiredState:
    """The stored cluster state (GET/PUT ``/api/v1/balancer_desired_state``)."""

    chat_template_override: ChatTemplate | None = None
    use_chat_template_override: bool = field(default=False, metadata=WIRE_REQUIRED)
    model: AgentDesiredModel = field(factory=NoModel, metadata=WIRE_REQUIRED)
    multimodal_projection: AgentDesiredModel = field(factory=NoModel, metadata=WIRE_REQUIRED)
    inference_parameters: InferenceParameters = field(
        factory=InferenceParameters, metadata=WIRE_REQUIRED
    )

    @classmethod
    def default(cls) -> Self:
        """The state a fresh balancer starts from: no model, default parameters."""
        return cls()


@frozen(kw_only=True)
class AgentDesiredState:
    """What the balancer pushes to agents (``SetState``); the override is already applied."""

    chat_template_override: ChatTemplate | None = None
    inference_parameters: InferenceParameters
    model: AgentDesiredModel
    multimodal_projection: AgentDesiredModel
