"""Adopting the agents' state: a balancer that starts with nothing stored keeps their model.

With ``memory://`` (or a new state file) a restarted balancer has only the default state,
whose model is ``"None"``; pushing it would make every agent that reconnects drop the model it
is serving. Instead, while nothing is stored, an agent that registers with a loaded model is
not sent the default, and once the serving agents agree on one model file the balancer adopts
it as its desired state (logged at INFO, and stored like a set one):
``LocalToAgent(<that path>)``, with the chat template override the agents use (asked over the
agent socket). Agents that join later load it.

Paddler's agent socket carries no inference parameters from agents, so the adopted state has
the default ones; the agents that were serving keep theirs (they are never sent the adopted
state). Any ``PUT`` of the desired state ends the adoption, as a stored state would.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from paddler.balancer._desired_state import to_agent_desired_state
from paddler.errors import PaddlerError
from paddler.wire import (
    BalancerDesiredState,
    ChatTemplate,
    LocalToAgentModel,
    SetState,
)

if TYPE_CHECKING:
    from paddler.balancer._balancer import Balancer
    from paddler.balancer._pool import AgentEntry

__all__ = ["consider_adoption", "keeps_own_state"]

logger = logging.getLogger("paddler.balancer")


def keeps_own_state(balancer: Balancer, entry: AgentEntry) -> bool:
    """True when ``entry`` must not be sent the applicable state: it serves a model while the
    balancer has none of its own, or it serves the model the balancer adopted from it."""
    path = entry.status.model_path
    if path is None:
        return False
    if balancer._adopting or balancer._adoption_pending == path:
        # While the adoption is on its way (it may ask an agent for its chat template), an
        # agent that registers serving the same file must not be sent the default state.
        return True
    adopted = balancer._adopted
    return (
        adopted is not None
        and balancer._applicable is adopted
        and adopted.model == LocalToAgentModel(path=path)
    )


def consider_adoption(balancer: Balancer) -> None:
    """After an agent registered: adopt the serving agents' model if they agree on one."""
    if not balancer._adopting or balancer._task_group is None:
        return
    serving = [e for e in balancer.pool if e.status.model_path is not None]
    if not serving:
        return
    paths = sorted({e.status.model_path for e in serving if e.status.model_path})
    if len(paths) > 1:
        logger.warning(
            "agents serve different models (%s); not adopting any: they keep serving until a "
            "desired state is set",
            ", ".join(paths),
        )
        return
    balancer._adopting = False
    balancer._adoption_pending = paths[0]
    balancer._task_group.start_soon(_adopt, balancer, serving[0], paths[0])


async def _adopt(balancer: Balancer, source: AgentEntry, path: str) -> None:
    try:
        await _adopt_pending(balancer, source, path)
    finally:
        if balancer._adoption_pending == path:
            balancer._adoption_pending = None


async def _adopt_pending(balancer: Balancer, source: AgentEntry, path: str) -> None:
    override: ChatTemplate | None = None
    if source.status.uses_chat_template_override:
        try:
            override = await balancer.get_chat_template_override(source.id)
        except PaddlerError as exc:
            logger.warning("cannot ask agent %s for its chat template: %s", source.id, exc)
    if balancer._desired is not None and balancer._desired != BalancerDesiredState.default():
        return  # a state was set meanwhile
    state = BalancerDesiredState(
        model=LocalToAgentModel(path=path),
        chat_template_override=override,
        use_chat_template_override=override is not None,
    )
    if balancer._state_store is not None:
        try:
            await balancer._state_store.store(state)
        except Exception:  # the adoption still holds for this run
            logger.exception("cannot store the adopted state")
    balancer._desired = state
    adopted = to_agent_desired_state(state)
    balancer._adopted = adopted
    balancer._applicable = adopted
    logger.info(
        "no desired state was stored; adopted the model the agents serve: %s%s (their "
        "inference parameters are not reported, so the adopted state has the defaults; set "
        "the desired state to change them)",
        path,
        " with their chat template override" if override is not None else "",
    )
    for entry in balancer.pool:
        if entry.outbox is not None and not keeps_own_state(balancer, entry):
            try:
                entry.outbox.send_nowait(SetState(desired_state=adopted))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
    balancer._state_changed.notify()
