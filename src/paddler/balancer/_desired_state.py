"""Desired state: validation and conversion to what agents are told (spec §3.6, §5.1).

Every number an agent hands to llama.cpp is checked here, before it is stored or sent: a value
that llama.cpp cannot use (a zero context, a negative batch, a probability above 1, an integer
that does not fit the C type) would otherwise be accepted with 204 and then fail on every agent,
again on every retry. Paddler's Rust types are unsigned where a negative value means nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from paddler.errors import InvalidRequest

if TYPE_CHECKING:
    from paddler.wire import AgentDesiredState, BalancerDesiredState

__all__ = ["PARAMETER_RANGES", "to_agent_desired_state", "validate_desired_state"]

#: llama.cpp takes these as a C ``int32_t``.
INT32_MAX = 2**31 - 1

#: ``field: (minimum, maximum)``, both inclusive, for every number in ``InferenceParameters``.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "n_batch": (1, INT32_MAX),
    "context_size": (1, INT32_MAX),
    "embedding_batch_size": (1, INT32_MAX),
    "image_resize_to_fit": (1, INT32_MAX),
    "n_gpu_layers": (0, INT32_MAX),
    # -1 means "the whole context" and 0 turns the penalty window off (llama.cpp).
    "penalty_last_n": (-1, INT32_MAX),
    # 0 turns top-k off.
    "top_k": (0, INT32_MAX),
    "temperature": (0.0, 100.0),
    "top_p": (0.0, 1.0),
    "min_p": (0.0, 1.0),
    # logits are divided by it: 0 would make them infinite. 1 turns it off.
    "penalty_repeat": (1e-6, 100.0),
    "penalty_frequency": (-100.0, 100.0),
    "penalty_presence": (-100.0, 100.0),
}


def validate_desired_state(state: BalancerDesiredState) -> None:
    """Raise ``InvalidRequest`` naming the field when the state cannot be applied."""
    parameters = state.inference_parameters
    for name, (low, high) in PARAMETER_RANGES.items():
        value = getattr(parameters, name)
        # The same JSON path format as the wire converter's errors (``$.max_tokens: ...``).
        path = f"$.inference_parameters.{name}"
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"{path}: must be a finite number (got {value})", field=path)
        if not low <= value <= high:
            raise InvalidRequest(
                f"{path}: must be {_range_text(low, high)} (got {value})", field=path
            )


def _range_text(low: float, high: float) -> str:
    if low == 1 and high == INT32_MAX:
        return "greater than 0"  # the common case, in the words users know
    if high == INT32_MAX:
        return f"at least {low}"
    return f"between {low:g} and {high:g}"


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
