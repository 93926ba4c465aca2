"""``paddler set-state``: change a few fields of the desired state without writing the document.

Paddler's PUT takes the whole ``BalancerDesiredState``; this reads it, changes what was asked
(the model, inference parameters, the chat template override), checks the result with the wire
converter, and puts it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
import httpx

from paddler.wire import (
    BalancerDesiredState,
    ChatTemplate,
    InferenceParameters,
    LocalToAgentModel,
    WireError,
    converter,
)

__all__ = ["SetStateError", "changed_state", "set_state"]

_PARAMETERS = {field.name: field for field in attrs.fields(InferenceParameters)}


class SetStateError(ValueError):
    """A change that cannot be applied; the message says which one and why."""


def _parameter(assignment: str) -> tuple[str, Any]:
    name, sep, text = assignment.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SetStateError(f"{assignment!r} is not NAME=VALUE, e.g. enable_embeddings=true")
    if name not in _PARAMETERS:
        known = ", ".join(sorted(_PARAMETERS))
        raise SetStateError(f"{name!r} is not an inference parameter; known: {known}")
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        value = text  # enum values (pooling_type=Mean, k_cache_dtype=F16) need no quotes
    return name, value


def changed_state(
    state: BalancerDesiredState,
    assignments: Sequence[str] = (),
    *,
    model_path: str | None = None,
    chat_template: str | None = None,
    model_template: bool = False,
) -> BalancerDesiredState:
    """``state`` with the changes applied; raises ``SetStateError`` naming a bad one."""
    document: dict[str, Any] = converter.unstructure(state)
    for assignment in assignments:
        name, value = _parameter(assignment)
        document["inference_parameters"][name] = value
    try:
        result = converter.loads(json.dumps(document), BalancerDesiredState)
    except WireError as exc:
        raise SetStateError(str(exc)) from exc
    if model_path is not None:
        result = attrs.evolve(result, model=LocalToAgentModel(path=model_path))
    if chat_template is not None:
        result = attrs.evolve(
            result,
            chat_template_override=ChatTemplate(content=chat_template),
            use_chat_template_override=True,
        )
    if model_template:
        result = attrs.evolve(result, use_chat_template_override=False)
    return result


def set_state(management_url: str, change: Any) -> BalancerDesiredState:
    """GET the desired state, apply ``change(state) -> state``, PUT it back; the new state."""
    url = f"{management_url.rstrip('/')}/api/v1/balancer_desired_state"
    with httpx.Client(timeout=30.0) as http:
        try:
            current = http.get(url)
            current.raise_for_status()
            state = change(converter.loads(current.content, BalancerDesiredState))
            put = http.put(
                url,
                content=converter.dumps(state, BalancerDesiredState),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise SetStateError(f"cannot talk to {url}: {exc}") from exc
        if put.status_code != 204:
            raise SetStateError(f"the balancer refused the state ({put.status_code}): {put.text}")
    return state  # type: ignore[no-any-return]
