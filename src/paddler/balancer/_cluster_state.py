"""ClusterState: the desired state, what every agent is told, and adopting the agents' model.

Adoption: with ``memory://`` (or a new state file) a restarted balancer has only the default
state, whose model is ``"None"``; pushing it would make every agent that reconnects drop the
model it is serving. Instead, while nothing is stored, an agent that registers with a loaded
model is not sent the default, and once the serving agents agree on one model file the
balancer adopts it as its desired state (logged at INFO, and stored like a set one):
``LocalToAgent(<that path>)``, with the chat template override the agents use (asked over the
agent socket). Agents that join later load it.

Paddler's agent socket carries no inference parameters from agents, so the adopted state has
the default ones; the agents that were serving keep theirs (they are never sent the adopted
state). Any ``PUT`` of the desired state ends the adoption, as a stored state would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from paddler._changes import Changes
from paddler.balancer._desired_state import to_agent_desired_state, validate_desired_state
from paddler.balancer._pool import AgentEntry, AgentPool
from paddler.errors import PaddlerError
from paddler.wire import (
    DEFAULT_POOL,
    AgentDesiredState,
    BalancerDesiredState,
    ChatTemplate,
    LocalToAgentModel,
    SetState,
)

if TYPE_CHECKING:
    from paddler.balancer._state_store import StateStore

__all__ = ["ClusterState"]

logger = logging.getLogger("paddler.balancer")

#: Asks one agent for its chat template override (``Balancer.get_chat_template_override``).
AskTemplate = Callable[[str], Awaitable[ChatTemplate | None]]
#: Runs a coroutine function in the balancer's task group; False when it is closing.
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], bool]


class ClusterState:
    """The desired state (stored, or adopted) and the applicable state agents are sent."""

    def __init__(
        self,
        pool: AgentPool,
        state_store: StateStore | None = None,
        *,
        parent: Changes | None = None,
        pool_name: str = DEFAULT_POOL,
    ) -> None:
        self._pool = pool
        self._store = state_store
        #: How the store is told which pool: nothing for ``default``, so a store that keeps
        #: one state (written before pools) keeps working.
        self._store_pool: dict[str, str] = {} if pool_name == DEFAULT_POOL else {"pool": pool_name}
        self.changed = Changes(parent)
        self._desired: BalancerDesiredState | None = None
        self._applicable: AgentDesiredState | None = None
        #: Nothing was stored: agents serving a model keep it and it is adopted.
        self._adopting = False
        #: The model file being adopted, between the decision and the adopted state.
        self._adoption_pending: str | None = None
        self._adopted: AgentDesiredState | None = None

    @property
    def applicable(self) -> AgentDesiredState | None:
        return self._applicable

    @property
    def generation_enabled(self) -> bool:
        """False in embeddings mode (token generation is off cluster-wide)."""
        state = self._applicable
        return state is None or not state.inference_parameters.enable_embeddings

    async def load(self) -> None:
        """Take the stored state (the default when nothing is stored, which starts adoption)."""
        if self._store is not None:
            desired = await self._store.load(**self._store_pool)
        else:
            desired = BalancerDesiredState.default()
        self._take(desired)

    def load_default(self) -> None:
        """Start from the default state, as when nothing is stored (a pool made at run time)."""
        self._take(BalancerDesiredState.default())

    def _take(self, desired: BalancerDesiredState) -> None:
        self._desired = desired
        self._apply(desired)
        self._adopting = desired == BalancerDesiredState.default()

    async def get_desired(self) -> BalancerDesiredState:
        if self._store is not None:
            return await self._store.load(**self._store_pool)
        return self._desired or BalancerDesiredState.default()

    async def set_desired(self, state: BalancerDesiredState) -> None:
        """Validate (``InvalidRequest`` names the field), store, then push to every agent."""
        validate_desired_state(state)
        if self._store is not None:
            await self._store.store(state, **self._store_pool)
        self._adopting, self._adopted, self._adoption_pending = False, None, None
        self._desired = state
        self._apply(state)

    def _apply(self, state: BalancerDesiredState) -> None:
        applicable = to_agent_desired_state(state)
        self._applicable = applicable
        for entry in self._pool:
            if entry.connection is not None:
                entry.connection.send_nowait(SetState(desired_state=applicable))
        self.changed.notify()

    def close(self) -> None:
        self.changed.close()

    # -- agents registering --------------------------------------------------------------

    def registered(self, entry: AgentEntry, *, spawn: Spawn, ask_template: AskTemplate) -> None:
        """A new agent: send it the applicable state (unless it keeps its own), then see
        whether the serving agents' model can be adopted."""
        applicable = self._applicable
        if applicable is not None and not self.keeps_own_state(entry):
            assert entry.connection is not None
            entry.connection.send_nowait(SetState(desired_state=applicable))
        self._consider_adoption(spawn, ask_template)

    def keeps_own_state(self, entry: AgentEntry) -> bool:
        """True when ``entry`` must not be sent the applicable state: it serves a model while
        the balancer has none of its own, or it serves the model the balancer adopted from it."""
        path = entry.status.model_path
        if path is None:
            return False
        if self._adopting or self._adoption_pending == path:
            # While the adoption is on its way (it may ask an agent for its chat template), an
            # agent that registers serving the same file must not be sent the default state.
            return True
        adopted = self._adopted
        return (
            adopted is not None
            and self._applicable is adopted
            and adopted.model == LocalToAgentModel(path=path)
        )

    def _consider_adoption(self, spawn: Spawn, ask_template: AskTemplate) -> None:
        """Adopt the serving agents' model if they agree on one."""
        if not self._adopting:
            return
        serving = [e for e in self._pool if e.status.model_path is not None]
        if not serving:
            return
        paths = sorted({e.status.model_path for e in serving if e.status.model_path})
        if len(paths) > 1:
            logger.warning(
                "agents serve different models (%s); not adopting any: they keep serving until "
                "a desired state is set",
                ", ".join(paths),
            )
            return
        source, path = serving[0], paths[0]

        async def adopt() -> None:
            try:
                await self._adopt(source, path, ask_template)
            finally:
                if self._adoption_pending == path:
                    self._adoption_pending = None

        self._adopting = False
        self._adoption_pending = path
        if not spawn(adopt):
            self._adoption_pending = None

    async def _adopt(self, source: AgentEntry, path: str, ask_template: AskTemplate) -> None:
        override: ChatTemplate | None = None
        if source.status.uses_chat_template_override:
            try:
                override = await ask_template(source.id)
            except PaddlerError as exc:
                logger.warning("cannot ask agent %s for its chat template: %s", source.id, exc)
        if self._desired is not None and self._desired != BalancerDesiredState.default():
            return  # a state was set meanwhile
        state = BalancerDesiredState(
            model=LocalToAgentModel(path=path),
            chat_template_override=override,
            use_chat_template_override=override is not None,
        )
        if self._store is not None:
            try:
                await self._store.store(state, **self._store_pool)
            except Exception:  # the adoption still holds for this run
                logger.exception("cannot store the adopted state")
        self._desired = state
        adopted = to_agent_desired_state(state)
        self._adopted = adopted
        self._applicable = adopted
        logger.info(
            "no desired state was stored; adopted the model the agents serve: %s%s (their "
            "inference parameters are not reported, so the adopted state has the defaults; set "
            "the desired state to change them)",
            path,
            " with their chat template override" if override is not None else "",
        )
        for entry in self._pool:
            if entry.connection is not None and not self.keeps_own_state(entry):
                entry.connection.send_nowait(SetState(desired_state=adopted))
        self.changed.notify()
