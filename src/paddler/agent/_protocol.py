"""The agent side of the agent socket as a state machine without I/O (websockets-style).

Feed it what arrived with ``receive(message)``; take what to do from ``events()`` and what to
send from ``outgoing()``. The Agent moves the messages; tests drive this with plain calls.

``extensions`` are the agent-socket extensions the handshake agreed on (see
``paddler.wire.AgentSocketExtension``). Without one, what it covers stays off the wire: to a
Paddler 4.1 balancer the protocol sends only Paddler's messages, fields and issue variants,
and it does not expect drain acknowledgements that such a balancer never sends.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection

import attrs

from paddler.wire import (
    AgentDesiredState,
    AgentIssue,
    AgentRequest,
    AgentRequestPayload,
    AgentResponse,
    AgentSocketExtension,
    AgentToBalancerMessage,
    DeregisterAgent,
    Embedding,
    EngineWorkerCrashed,
    ExtraBufferTypesDisabled,
    RegisterAgent,
    ResponsePayload,
    SamplingOverrides,
    SetState,
    SlotAggregatedStatusSnapshot,
    StopRespondingTo,
    UpdateAgentStatus,
    Version,
    is_terminal_payload,
)

__all__ = [
    "AgentProtocol",
    "DesiredStateReceived",
    "DrainAcknowledged",
    "ProtocolEvent",
    "ProtocolState",
    "RequestReceived",
    "StopRequested",
]

logger = logging.getLogger("paddler.agent")

#: Issue variants of ours (``AgentSocketExtension.EXTRA_ISSUES``); Paddler has no such variant.
EXTRA_ISSUES: tuple[type, ...] = (EngineWorkerCrashed, ExtraBufferTypesDisabled)


@attrs.frozen
class DesiredStateReceived:
    state: AgentDesiredState


@attrs.frozen
class RequestReceived:
    request_id: str
    payload: AgentRequestPayload
    overrides: SamplingOverrides | None = None
    #: The answer text another agent already streamed (extension ``continuation``).
    continuation: str | None = None


@attrs.frozen
class StopRequested:
    request_id: str


@attrs.frozen
class DrainAcknowledged:
    """The balancer has seen our ``slots_total: 0``: nothing more is dispatched to us."""


ProtocolEvent = DesiredStateReceived | RequestReceived | StopRequested | DrainAcknowledged


class ProtocolState(enum.Enum):
    IDLE = 1
    REGISTERED = 2
    CLOSED = 3


class AgentProtocol:
    """One connection's session: register, status, requests in flight, stop, drain ack."""

    def __init__(self, *, name: str | None, extensions: Collection[str] = frozenset()) -> None:
        self.name = name
        self.extensions = frozenset(extensions)
        self.state = ProtocolState.IDLE
        self.balancer_version: str | None = None
        self.in_flight: set[str] = set()
        self._stopped: set[str] = set()
        self._drain_ack_pending = False
        self._events: list[ProtocolEvent] = []
        self._outgoing: list[AgentToBalancerMessage] = []

    # -- inputs --------------------------------------------------------------------------

    def register(self, status: SlotAggregatedStatusSnapshot) -> None:
        if self.state is not ProtocolState.IDLE:
            raise RuntimeError("register() is the first thing sent on a connection")
        self.state = ProtocolState.REGISTERED
        self._outgoing.append(
            RegisterAgent(name=self.name, slot_aggregated_status_snapshot=self._wire(status))
        )

    def report(self, status: SlotAggregatedStatusSnapshot) -> None:
        """Queue a status update; a ``slots_total`` of 0 while serving asks for a drain ack."""
        if self.state is not ProtocolState.REGISTERED:
            return
        self._outgoing.append(UpdateAgentStatus(slot_aggregated_status_snapshot=self._wire(status)))

    def begin_drain(self, status: SlotAggregatedStatusSnapshot) -> bool:
        """Report ``status`` (slots_total 0); True when the balancer will acknowledge it.

        Only a balancer that announced ``drain_ack`` does (in order, by a second
        ``Version``); a Paddler 4.1 balancer never does, so nothing is awaited from it.
        """
        self._drain_ack_pending = AgentSocketExtension.DRAIN_ACK in self.extensions
        self.report(status)
        return self._drain_ack_pending

    def _wire(self, status: SlotAggregatedStatusSnapshot) -> SlotAggregatedStatusSnapshot:
        """The status as this balancer can read it (without our issue variants or cached
        prefixes, unless it announced ``extra_issues`` / ``cached_prefixes``: Paddler cannot
        parse a status with a variant or field it lacks)."""
        if (
            status.cached_prefixes is not None
            and AgentSocketExtension.CACHED_PREFIXES not in self.extensions
        ):
            status = attrs.evolve(status, cached_prefixes=None)
        if AgentSocketExtension.EXTRA_ISSUES in self.extensions:
            return status
        issues: tuple[AgentIssue, ...] = tuple(
            i for i in status.issues if not isinstance(i, EXTRA_ISSUES)
        )
        return status if issues == status.issues else attrs.evolve(status, issues=issues)

    def respond(self, request_id: str, payload: ResponsePayload) -> bool:
        """Queue a response; False (nothing sent) when the request is not in flight."""
        if self.state is not ProtocolState.REGISTERED or request_id not in self.in_flight:
            return False
        if (
            isinstance(payload, Embedding)
            and payload.document_tokens is not None
            and AgentSocketExtension.EMBEDDING_TOKEN_COUNTS not in self.extensions
        ):
            payload = attrs.evolve(payload, document_tokens=None)
        self._outgoing.append(
            AgentResponse(generated_by=self.name, request_id=request_id, response=payload)
        )
        if is_terminal_payload(payload):
            self.in_flight.discard(request_id)
            self._stopped.discard(request_id)
        return True

    def deregister(self) -> None:
        if self.state is ProtocolState.REGISTERED:
            self._outgoing.append(DeregisterAgent())
        self.state = ProtocolState.CLOSED

    def receive(self, message: object) -> None:
        """Take one decoded message from the balancer; anything unexpected is logged."""
        if self.state is ProtocolState.CLOSED:
            return
        if isinstance(message, Version):
            if self.balancer_version is None:
                self.balancer_version = message.version
            elif self._drain_ack_pending:
                self._drain_ack_pending = False
                self._events.append(DrainAcknowledged())
        elif isinstance(message, SetState):
            self._events.append(DesiredStateReceived(message.desired_state))
        elif isinstance(message, AgentRequest):
            if message.id in self.in_flight:
                logger.warning("duplicate request id %s ignored", message.id)
                return
            self.in_flight.add(message.id)
            self._events.append(
                RequestReceived(
                    message.id, message.request, message.sampling_overrides, message.continuation
                )
            )
        elif isinstance(message, StopRespondingTo):
            if message.request_id in self.in_flight and message.request_id not in self._stopped:
                self._stopped.add(message.request_id)
                self._events.append(StopRequested(message.request_id))
            else:
                logger.debug("stop for request %s not in flight ignored", message.request_id)
        else:
            logger.warning("unexpected message from balancer: %r", message)

    # -- outputs -------------------------------------------------------------------------

    def events(self) -> list[ProtocolEvent]:
        events, self._events = self._events, []
        return events

    def outgoing(self) -> list[AgentToBalancerMessage]:
        messages, self._outgoing = self._outgoing, []
        return messages

    @property
    def drain_ack_pending(self) -> bool:
        return self._drain_ack_pending
