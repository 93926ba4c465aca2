"""``paddler set-state``: change a few fields of the desired state without writing the document.

Paddler's PUT takes the whole ``BalancerDesiredState``; this reads it, changes what was asked
(the model, inference parameters, the chat template override), checks the result with the wire
converter, and puts it back.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import attrs
import httpx

from paddler.wire import (
    DEFAULT_POOL,
    BalancerDesiredState,
    ChatTemplate,
    InferenceParameters,
    LocalToAgentModel,
    NoModel,
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
    multimodal_projection: str | None = None,
    no_multimodal_projection: bool = False,
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
    if multimodal_projection is not None and no_multimodal_projection:
        raise SetStateError("give either a multimodal projection or none, not both")
    if multimodal_projection is not None:
        projection = LocalToAgentModel(path=multimodal_projection)
        result = attrs.evolve(result, multimodal_projection=projection)
    if no_multimodal_projection:
        result = attrs.evolve(result, multimodal_projection=NoModel())
    if chat_template is not None:
        result = attrs.evolve(
            result,
            chat_template_override=ChatTemplate(content=chat_template),
            use_chat_template_override=True,
        )
    if model_template:
        result = attrs.evolve(result, use_chat_template_override=False)
    return result


def set_state(
    management_url: str,
    change: Callable[[BalancerDesiredState], BalancerDesiredState],
    *,
    wait: float | None = None,
    api_key: str | None = None,
    verify: ssl.SSLContext | bool = True,
    pool: str = DEFAULT_POOL,
) -> BalancerDesiredState:
    """GET the desired state, apply ``change(state) -> state``, PUT it back; the new state.

    With ``wait`` (seconds), return only once every agent has loaded the new state: the agents
    stream is opened before the PUT, so the swap (``slots_total`` dropping to 0, then back) is
    seen in order, however fast it is. ``api_key`` is the balancer's management key;
    ``verify`` checks an https balancer's certificate (an ``ssl`` context for a private CA).
    ``pool`` names the model pool to change (only its agents are waited for); the ``default``
    pool uses Paddler's routes. A pool the balancer does not know yet starts from the default
    document, and the PUT creates it.
    """
    base = management_url.rstrip("/")
    url, agents_url = _urls(base, pool)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=30.0, headers=headers, verify=verify) as http:
        try:
            current = http.get(url)
            if current.status_code == 401:
                raise SetStateError(
                    f"{base} needs its management API key (--management-api-key, or "
                    f"PADDLER_MANAGEMENT_API_KEY): {_description(current)}"
                )
            new_pool = current.status_code == 404 and pool != DEFAULT_POOL
            if new_pool:  # the PUT creates it; no agent has joined it to wait for
                old = BalancerDesiredState.default()
            else:
                if current.status_code == 400:
                    raise SetStateError(f"the balancer refused: {_description(current)}")
                current.raise_for_status()
                old = converter.loads(current.content, BalancerDesiredState)
            state = change(old)
            if wait is None or state == old or new_pool:
                _put(http, url, state)
                return state
            with http.stream("GET", agents_url, timeout=httpx.Timeout(30.0, read=wait)) as events:
                snapshots = _agent_lists(events.iter_lines())
                first = next(snapshots)
                _put(http, url, state)
                if first:
                    _wait_reloaded(snapshots, wait)
        except httpx.HTTPError as exc:
            raise SetStateError(f"cannot talk to {base}: {exc}") from exc
    return state


def _urls(base: str, pool: str) -> tuple[str, str]:
    """The desired-state and agents-stream URLs of ``pool``."""
    if pool == DEFAULT_POOL:
        return f"{base}/api/v1/balancer_desired_state", f"{base}/api/v1/agents/stream"
    prefix = f"{base}/api/v1/pools/{quote(pool, safe='')}"
    return f"{prefix}/desired_state", f"{prefix}/agents/stream"


def _description(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["description"])
    except (ValueError, KeyError, TypeError):
        return response.text


def _put(http: httpx.Client, url: str, state: BalancerDesiredState) -> None:
    put = http.put(
        url,
        content=converter.dumps(state, BalancerDesiredState),
        headers={"content-type": "application/json"},
    )
    if put.status_code != 204:
        raise SetStateError(f"the balancer refused the state ({put.status_code}): {put.text}")


def _agent_lists(lines: Iterator[str]) -> Iterator[list[dict[str, Any]]]:
    for line in lines:
        if line.startswith("data:"):
            yield json.loads(line[5:])["agents"]


def _wait_reloaded(snapshots: Iterator[list[dict[str, Any]]], wait: float) -> None:
    deadline = time.monotonic() + wait
    swapping = False
    for agents in snapshots:
        ready = all(
            a["state_application_status"] == "Applied"
            and (a["slots_total"] > 0 or a["model_path"] is None)
            for a in agents
        )
        if not ready:
            swapping = True
        elif swapping:
            return
        if time.monotonic() > deadline:
            break
    raise SetStateError(f"the agents did not load the new state within {wait:g} s")
