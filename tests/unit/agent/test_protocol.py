"""The agent-socket session as plain synchronous calls (no I/O)."""

from __future__ import annotations

import attrs

from paddler.agent._protocol import (
    AgentProtocol,
    DesiredStateReceived,
    DrainAcknowledged,
    RequestReceived,
    StopRequested,
)
from paddler.wire import (
    L2,
    SUPPORTED_EXTENSIONS,
    AgentDesiredState,
    AgentRequest,
    AgentResponse,
    AgentStateApplicationStatus,
    AgentToBalancerMessage,
    ContentToken,
    ContinueFromRawPromptParams,
    DeregisterAgent,
    Done,
    Embedding,
    EngineWorkerCrashed,
    GenerateEmbeddingBatchParams,
    InferenceParameters,
    ModelCannotBeLoaded,
    NoModel,
    PoolingType,
    RegisterAgent,
    SetState,
    SlotAggregatedStatusSnapshot,
    StopRespondingTo,
    TokenUsage,
    UpdateAgentStatus,
    Version,
    converter,
)

PARAMS = ContinueFromRawPromptParams(raw_prompt="x", max_tokens=1)
USAGE = TokenUsage(
    prompt_tokens=1,
    cached_prompt_tokens=0,
    input_image_tokens=0,
    input_audio_tokens=0,
    content_tokens=0,
    reasoning_tokens=0,
    tool_call_tokens=0,
    undeterminable_tokens=0,
)


def status(slots: int = 1) -> SlotAggregatedStatusSnapshot:
    return SlotAggregatedStatusSnapshot(
        desired_slots_total=1,
        slots_total=slots,
        slots_processing=0,
        download_current=0,
        download_total=0,
        download_indeterminate=False,
        issues=(),
        state_application_status=AgentStateApplicationStatus.APPLIED,
        uses_chat_template_override=False,
        version=1,
    )


def registered(extensions: frozenset[str] = SUPPORTED_EXTENSIONS) -> AgentProtocol:
    """A session with our balancer (every extension), unless ``extensions`` says otherwise."""
    protocol = AgentProtocol(name="a", extensions=extensions)
    protocol.register(status())
    protocol.receive(Version(version="4.1.0"))
    protocol.outgoing()
    return protocol


def test_register_is_the_first_message() -> None:
    """Registering queues RegisterAgent with the name and the snapshot."""
    protocol = AgentProtocol(name="a")
    protocol.register(status())
    (message,) = protocol.outgoing()
    assert message == RegisterAgent(name="a", slot_aggregated_status_snapshot=status())


def test_requests_and_set_state_become_events() -> None:
    """A request and a SetState each become one event, in order."""
    protocol = registered()
    state = AgentDesiredState(
        inference_parameters=InferenceParameters(), model=NoModel(), multimodal_projection=NoModel()
    )
    protocol.receive(SetState(desired_state=state))
    protocol.receive(AgentRequest(id="r1", request=PARAMS))
    assert protocol.events() == [DesiredStateReceived(state), RequestReceived("r1", PARAMS)]


def test_duplicate_request_id_is_ignored() -> None:
    """A second request with an id in flight does not start a second request."""
    protocol = registered()
    protocol.receive(AgentRequest(id="r1", request=PARAMS))
    protocol.receive(AgentRequest(id="r1", request=PARAMS))
    assert len(protocol.events()) == 1


def test_stop_for_unknown_or_finished_request_is_ignored() -> None:
    """StopRespondingTo for a request that is not in flight yields nothing."""
    protocol = registered()
    protocol.receive(StopRespondingTo("nobody"))
    protocol.receive(AgentRequest(id="r1", request=PARAMS))
    protocol.respond("r1", Done(usage=USAGE))
    protocol.events()
    protocol.receive(StopRespondingTo("r1"))
    assert protocol.events() == []


def test_stop_is_reported_once() -> None:
    """Repeated stops for one request yield one StopRequested."""
    protocol = registered()
    protocol.receive(AgentRequest(id="r1", request=PARAMS))
    protocol.events()
    protocol.receive(StopRespondingTo("r1"))
    protocol.receive(StopRespondingTo("r1"))
    assert protocol.events() == [StopRequested("r1")]


def test_responses_after_terminal_are_not_sent() -> None:
    """Out-of-order results after the terminal are dropped, never sent."""
    protocol = registered()
    protocol.receive(AgentRequest(id="r1", request=PARAMS))
    assert protocol.respond("r1", ContentToken("a"))
    assert protocol.respond("r1", Done(usage=USAGE))
    assert not protocol.respond("r1", ContentToken("late"))
    sent = protocol.outgoing()
    assert [type(m) for m in sent] == [AgentResponse, AgentResponse]
    assert protocol.in_flight == set()


def test_garbage_is_logged_and_skipped() -> None:
    """Unexpected objects change nothing and the session stays usable."""
    protocol = registered()
    protocol.receive(None)
    protocol.receive({"Request": "garbage"})
    protocol.receive(AgentRequest(id="r1", request=PARAMS))
    assert protocol.events() == [RequestReceived("r1", PARAMS)]


def test_drain_is_acknowledged_by_the_next_version() -> None:
    """After begin_drain, the balancer's next Version is the acknowledgement."""
    protocol = registered()
    assert protocol.begin_drain(status(slots=0)) is True
    assert protocol.outgoing() == [UpdateAgentStatus(slot_aggregated_status_snapshot=status(0))]
    assert protocol.events() == []
    protocol.receive(Version(version="4.1.0"))
    assert protocol.events() == [DrainAcknowledged()]
    assert not protocol.drain_ack_pending


def test_handshake_version_is_not_a_drain_ack() -> None:
    """The Version sent at connect only records the balancer's version."""
    protocol = AgentProtocol(name=None, extensions=SUPPORTED_EXTENSIONS)
    protocol.register(status())
    protocol.begin_drain(status(0))
    protocol.receive(Version(version="4.1.0"))
    assert protocol.balancer_version == "4.1.0"
    assert protocol.events() == []


def test_deregister_then_nothing_more() -> None:
    """After deregister, incoming messages are ignored."""
    protocol = registered()
    protocol.deregister()
    assert protocol.outgoing() == [DeregisterAgent()]
    protocol.receive(AgentRequest(id="r1", request=PARAMS))
    assert protocol.events() == []


def test_any_message_sequence_keeps_the_session_consistent() -> None:
    """Random requests, stops, replies and garbage never raise or answer twice."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    ids = st.sampled_from(["r1", "r2", "r3"])
    steps = st.lists(
        st.one_of(
            st.builds(lambda i: ("request", i), ids),
            st.builds(lambda i: ("stop", i), ids),
            st.builds(lambda i: ("token", i), ids),
            st.builds(lambda i: ("done", i), ids),
            st.just(("garbage", "")),
            st.just(("version", "")),
        ),
        max_size=40,
    )

    @settings(max_examples=200, deadline=None)
    @given(steps)
    def run(sequence: list[tuple[str, str]]) -> None:
        protocol = registered()
        terminals: dict[str, int] = {}
        for kind, request_id in sequence:
            if kind == "request":
                protocol.receive(AgentRequest(id=request_id, request=PARAMS))
            elif kind == "stop":
                protocol.receive(StopRespondingTo(request_id))
            elif kind == "token":
                protocol.respond(request_id, ContentToken("t"))
            elif kind == "done" and protocol.respond(request_id, Done(usage=USAGE)):
                terminals[request_id] = terminals.get(request_id, 0) + 1
            elif kind == "garbage":
                protocol.receive(object())
            else:
                protocol.receive(Version(version="4.1.0"))
            events = protocol.events()
            for event in events:
                if isinstance(event, StopRequested):
                    assert event.request_id in protocol.in_flight
        sent = [m for m in protocol.outgoing() if isinstance(m, AgentResponse)]
        for message in sent:
            assert message.request_id in terminals or message.request_id in protocol.in_flight
        requests = sum(1 for kind, _ in sequence if kind == "request")
        assert sum(terminals.values()) <= requests

    run()


def test_a_paddler_balancer_is_not_expected_to_acknowledge_a_drain() -> None:
    """Without drain_ack (a Paddler 4.1 balancer) begin_drain says no ack will come, and a
    later Version is only a Version."""
    protocol = registered(extensions=frozenset())
    assert protocol.begin_drain(status(slots=0)) is False
    assert protocol.outgoing() == [UpdateAgentStatus(slot_aggregated_status_snapshot=status(0))]
    assert not protocol.drain_ack_pending
    protocol.receive(Version(version="4.1.0"))
    assert protocol.events() == []


def test_our_issue_variants_reach_only_a_balancer_that_reads_them() -> None:
    """Paddler cannot parse a status with an issue variant it lacks: ours are left out for it
    (Paddler's own variants stay), and sent to a balancer that announced extra_issues."""
    crash = EngineWorkerCrashed(error="the engine worker died")
    missing = ModelCannotBeLoaded(model_path="/m.gguf")
    with_issues = attrs.evolve(status(), issues=(crash, missing))

    paddler = AgentProtocol(name="a", extensions=frozenset())
    paddler.register(with_issues)
    paddler.report(with_issues)
    first, update = paddler.outgoing()
    assert first.slot_aggregated_status_snapshot.issues == (missing,)
    assert update.slot_aggregated_status_snapshot.issues == (missing,)

    ours = AgentProtocol(name="a", extensions=SUPPORTED_EXTENSIONS)
    ours.register(with_issues)
    assert ours.outgoing()[0].slot_aggregated_status_snapshot.issues == (crash, missing)


def test_embedding_token_counts_reach_only_a_balancer_that_reads_them() -> None:
    """document_tokens is our field: a Paddler balancer (deny_unknown_fields) gets the
    embedding without it."""
    embedding = Embedding(
        embedding=(1.0,),
        normalization_method=L2(),
        pooling_type=PoolingType.LAST,
        source_document_id="d",
        document_tokens=4,
    )
    batch = GenerateEmbeddingBatchParams(input_batch=(), normalization_method=L2())
    for extensions, expected in ((frozenset(), None), (SUPPORTED_EXTENSIONS, 4)):
        protocol = registered(extensions=extensions)
        protocol.receive(AgentRequest(id="e", request=batch))
        assert protocol.respond("e", embedding)
        (sent,) = protocol.outgoing()
        assert sent.response.document_tokens == expected
        wire = converter.dumps(sent, AgentToBalancerMessage)
        assert ("document_tokens" in wire) is (expected is not None)
