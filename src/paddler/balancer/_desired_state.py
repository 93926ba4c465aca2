"""Desired state: validation and conversion to what agents are told (spec §3.6, §5.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paddler.errors import InvalidRequest

if TYPE_CHECKING:
    from paddler.wire import AgentDesiredState, BalancerDesiredState

__all__ = ["to_agent_desired_state", "validate_desired_state"]


def validate_desired_state(state: BalancerDesiredState) -> None:
    """Raise ``InvalidRequest`` naming the field when the state cannot be applied."""
    parameters = state.inference_parameters
    for field in ("embedding_batch_size", "image_resize_to_fit"):
        value = getattr(parameters, field)
        if value <= 0:
            raise InvalidRequest(
                f"inference_parameters.{field} must be greater than 0 (got {value})",
                field=f"inference_parameters.{field}",
            )


def to_agent_desired_state(state: BalancerDesiredState) -> AgentDesiredState:
    """What every agent is told: the override is kept only when it is to be used."""
    from paddler.wire import AgentDesiredState

    return AgentDesiredState(
        chat_template_override=(
            state.chat_template_override if state.use_chat_template_override else None
        ),
        inference_parameters=state.inference_parameters,
        model=state.model,
        multimodal_projection=state.multimodal_projection,
    )
