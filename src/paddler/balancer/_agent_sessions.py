"""AgentSessions: the balancer's side of every agent socket (handshake, registration, status,
drain acknowledgement, management RPCs).

Each registered agent gets an ``AgentConnection`` (its outbox and routes) and an entry in its
model pool's agent pool; what the agent reports goes there, and every change runs that pool's
dispatch step. Agent ids are unique across the pools.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection

import anyio

from paddler.balancer._config import BalancerConfig
from paddler.balancer._connection import AgentConnection, AgentStream
from paddler.balancer._model_pool import ModelPool
from paddler.balancer._pool import AgentEntry
from paddler.errors import AgentGone, UnknownAgent
from paddler.wire import (
    SUPPORTED_EXTENSIONS,
    AgentRequestPayload,
    AgentSocketExtension,
    AgentToBalancerMessage,
    BalancerToAgentMessage,
    ChatTemplate,
    ChatTemplateOverrideResponse,
    DeregisterAgent,
    GetChatTemplateOverride,
    GetModelMetadata,
    ModelMetadata,
    ModelMetadataResponse,
    RegisterAgent,
    ResponsePayload,
    UpdateAgentStatus,
    Version,
)

__all__ = ["PADDLER_PROTOCOL_VERSION", "REGISTER_TIMEOUT", "AgentSessions"]

logger = logging.getLogger("paddler.balancer")

PADDLER_PROTOCOL_VERSION = "4.1.0"
REGISTER_TIMEOUT = 10.0


class AgentSessions:
    """Serves agent sockets into their model pools and answers for their RPCs."""

    def __init__(self, config: BalancerConfig) -> None:
        self._config = config
        #: Every registered agent's model pool, by agent id.
        self._pools: dict[str, ModelPool] = {}

    def pool_of(self, agent_id: str) -> ModelPool | None:
        return self._pools.get(agent_id)

    async def serve(
        self, agent_id: str, stream: AgentStream, extensions: Collection[str], pool: ModelPool
    ) -> None:
        """Handshake, register in ``pool``, then pump messages both ways until the socket ends.

        Nothing beyond Paddler's wire is sent without the extensions both ends announced.
        """
        first = await _handshake(agent_id, stream)
        if first is None:
            return
        if agent_id in self._pools:
            logger.warning("agent %s is already registered; closing the new socket", agent_id)
            return
        agents, slots = pool.slots.pool, pool.slots
        status = first.slot_aggregated_status_snapshot
        connection = AgentConnection(agent_id)
        entry = AgentEntry(
            id=agent_id,
            name=first.name,
            status=status,
            connection=connection,
            inherited=max(0, status.slots_processing),
            extensions=frozenset(extensions) & SUPPORTED_EXTENSIONS,
        )
        agents.add(entry)
        self._pools[agent_id] = pool
        logger.info(
            "agent registered id=%s name=%s pool=%s extensions=%s",
            agent_id,
            entry.name,
            pool.name,
            ",".join(sorted(entry.extensions)) or "none (a Paddler 4.1 agent)",
        )
        pool.cluster.registered(
            entry, spawn=slots.spawn, ask_template=self.get_chat_template_override
        )
        slots.pool_changed()
        try:
            await connection.run(stream, functools.partial(self._on_message, pool, entry))
        finally:
            agents.remove(agent_id)
            del self._pools[agent_id]
            logger.info("agent gone id=%s name=%s pool=%s", agent_id, entry.name, pool.name)
            slots.pool_changed()

    def _on_message(
        self,
        pool: ModelPool,
        entry: AgentEntry,
        message: AgentToBalancerMessage | BalancerToAgentMessage,
    ) -> bool:
        """Apply one message that is not a response (sync, no I/O); False ends the socket."""
        if isinstance(message, UpdateAgentStatus):
            before = entry.slots_total
            status = message.slot_aggregated_status_snapshot
            changed = pool.slots.pool.apply_status(entry.id, status)
            if (
                before > 0
                and entry.slots_total == 0
                and entry.status is status
                and AgentSocketExtension.DRAIN_ACK in entry.extensions
                and entry.connection is not None
            ):
                # The agent is draining: acknowledge on the socket, in order, so it knows
                # every request dispatched before this point has already reached it.
                entry.connection.send_nowait(Version(version=PADDLER_PROTOCOL_VERSION))
            if changed:
                pool.slots.pool_changed()
            return True
        if isinstance(message, DeregisterAgent):
            logger.info("agent deregistered id=%s", entry.id)
            return False
        logger.warning("agent %s sent unexpected %s", entry.id, type(message).__name__)
        return True

    # -- management RPCs -----------------------------------------------------------------

    async def get_chat_template_override(self, agent_id: str) -> ChatTemplate | None:
        response = await self.call(agent_id, GetChatTemplateOverride())
        if not isinstance(response, ChatTemplateOverrideResponse):
            raise AgentGone(f"agent answered with {type(response).__name__}")
        return response.chat_template_override

    async def get_model_metadata(self, agent_id: str) -> ModelMetadata | None:
        response = await self.call(agent_id, GetModelMetadata())
        if not isinstance(response, ModelMetadataResponse):
            raise AgentGone(f"agent answered with {type(response).__name__}")
        return response.model_metadata

    async def call(self, agent_id: str, payload: AgentRequestPayload) -> ResponsePayload:
        """One management request to ``agent_id``, bounded by ``agent_rpc_timeout``."""
        pool = self._pools.get(agent_id)
        entry = pool.slots.pool.get(agent_id) if pool is not None else None
        if entry is None or entry.connection is None:
            raise UnknownAgent(f"Agent {agent_id!r} is not registered")
        return await entry.connection.call(payload, answer_within=self._config.agent_rpc_timeout)


async def _handshake(agent_id: str, stream: AgentStream) -> RegisterAgent | None:
    """Send our version, then read the agent's ``RegisterAgent`` (None: no registration)."""
    try:
        await stream.send(Version(version=PADDLER_PROTOCOL_VERSION))
        with anyio.fail_after(REGISTER_TIMEOUT):
            first = await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return None
    except TimeoutError:
        logger.warning("agent %s did not register within %ss", agent_id, REGISTER_TIMEOUT)
        return None
    if not isinstance(first, RegisterAgent):
        logger.warning("agent %s sent %s before RegisterAgent", agent_id, type(first).__name__)
        return None
    return first
