"""Prefix fingerprints: the agent's picture of its slots and the balancer's view of a request
must agree, turn after turn, and stay small; a Paddler 4.1 balancer never sees them."""

from __future__ import annotations

import json

import attrs

from paddler.agent._protocol import AgentProtocol
from paddler.agent._slot_prefixes import SlotPrefixes
from paddler.prefixes import (
    BLOCK_CHARS,
    KEEP_DEEPEST,
    compact,
    conversation_chain,
    raw_prompt_chain,
    request_chain,
    shared_depth,
)
from paddler.wire import (
    AgentSocketExtension,
    AgentStateApplicationStatus,
    AgentToBalancerMessage,
    ContentToken,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    ConversationMessage,
    Done,
    Function,
    GenerateEmbeddingBatchParams,
    NoNormalization,
    ReasoningToken,
    SamplerError,
    SlotAggregatedStatusSnapshot,
    TokenUsage,
    Tool,
    UpdateAgentStatus,
    converter,
)

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


def chat(
    *messages: tuple[str, str], tools: tuple[Tool, ...] = ()
) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=tuple(ConversationMessage(role=r, content=c) for r, c in messages),
        enable_thinking=False,
        max_tokens=16,
        tools=tools,
    )


def serve(prefixes: SlotPrefixes, params: object, reply: str) -> None:
    """What the agent does for one request that completes with ``reply``."""
    slot = prefixes.take(params)
    assert slot is not None
    for word in reply.split(" "):
        assert not prefixes.observe(slot, ContentToken(word + " "))
    assert prefixes.observe(slot, Done(USAGE))


SYSTEM = ("system", "You are terse.")
EMBED = GenerateEmbeddingBatchParams(input_batch=(), normalization_method=NoNormalization())


def test_the_next_turn_shares_the_whole_previous_turn_with_what_the_slot_reports() -> None:
    """After turn 1 completes, turn 2's chain (computed by the balancer from the request)
    shares every message of turn 1 and the generated reply with what the agent reports."""
    prefixes = SlotPrefixes(2)
    turn_1 = chat(SYSTEM, ("user", "Name a colour."))
    serve(prefixes, turn_1, "Blue.")
    turn_2 = chat(SYSTEM, ("user", "Name a colour."), ("assistant", "Blue. "), ("user", "Another?"))
    held = set(prefixes.hashes())
    assert shared_depth(request_chain(turn_2), held) == 3  # system, user, assistant
    # A reply the client edited still shares the prompt that turn 1 sent.
    edited = chat(SYSTEM, ("user", "Name a colour."), ("assistant", "Red."), ("user", "Another?"))
    assert shared_depth(request_chain(edited), held) == 2
    other = chat(("system", "You are verbose."), ("user", "Name a colour."))
    assert shared_depth(request_chain(other), held) == 0


def test_reasoning_is_not_part_of_the_reply_the_client_sends_back() -> None:
    prefixes = SlotPrefixes(1)
    turn_1 = chat(("user", "Hi"))
    slot = prefixes.take(turn_1)
    prefixes.observe(slot, ReasoningToken("greet them"))
    prefixes.observe(slot, ContentToken("Hello!"))
    prefixes.observe(slot, Done(USAGE))
    turn_2 = chat(("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"))
    assert shared_depth(request_chain(turn_2), set(prefixes.hashes())) == 2


def test_chains_are_canonical_and_cover_the_tools() -> None:
    """Equal requests hash equally however they were built; other tools, other chain."""
    a = chat(SYSTEM, ("user", "x"))
    b = converter.loads(converter.dumps(a), ContinueFromConversationHistoryParams)
    assert request_chain(a) == request_chain(b)
    tool = Tool(Function(name="now", description="The time."))
    assert request_chain(chat(SYSTEM, ("user", "x"), tools=(tool,)))[0] != request_chain(a)[0]
    assert all(len(h) == 12 for h in request_chain(a))
    assert (
        request_chain(GenerateEmbeddingBatchParams(input_batch=(), normalization_method=None)) == ()
    )  # type: ignore[arg-type]


def test_raw_prompts_hash_full_blocks_and_a_continuation_shares_them() -> None:
    text = "a" * (BLOCK_CHARS * 3 + 10)
    assert len(raw_prompt_chain(text)) == 3
    assert raw_prompt_chain("short") == ()
    prefixes = SlotPrefixes(1)
    params = ContinueFromRawPromptParams(raw_prompt=text, max_tokens=8)
    serve(prefixes, params, "b" * BLOCK_CHARS)
    longer = ContinueFromRawPromptParams(
        raw_prompt=text + "b" * BLOCK_CHARS + "c" * 600, max_tokens=8
    )
    assert shared_depth(request_chain(longer), set(prefixes.hashes())) == 4


def test_reports_stay_bounded_to_the_deepest_half_of_each_slot() -> None:
    """Only hashes a request could reuse: the engine takes a slot for its cache when they
    share at least half of it."""
    messages = [ConversationMessage(role="user", content=str(i)) for i in range(1000)]
    chain = conversation_chain(messages)
    assert compact(chain) == chain[-KEEP_DEEPEST:]
    assert compact(chain[:5]) == chain[2:5]  # depths 3, 4, 5 of 5
    assert compact(chain[:4]) == chain[1:4]
    assert compact(chain[:1]) == chain[:1] and compact(()) == ()


def test_a_new_conversation_sharing_only_the_system_prompt_is_not_sent_to_its_holder() -> None:
    prefixes = SlotPrefixes(2)
    serve(prefixes, chat(SYSTEM, ("user", "Name a colour.")), "Blue.")
    other = chat(SYSTEM, ("user", "Name a fruit."))
    assert shared_depth(request_chain(other), set(prefixes.hashes())) == 0
    slot = prefixes.take(other)  # and the engine gives it the empty slot
    assert slot is prefixes.slots[1]


def test_the_mirror_chooses_slots_as_the_engine_does() -> None:
    """Longest shared prefix among free slots, else the least cached; busy slots are not
    reported; a stopped request leaves its prompt behind."""
    prefixes = SlotPrefixes(2)
    a1, b1 = chat(("user", "a")), chat(("user", "b"))
    serve(prefixes, a1, "A")
    serve(prefixes, b1, "B")  # the other, empty slot
    a2 = chat(("user", "a"), ("assistant", "A "), ("user", "a again"))
    slot = prefixes.take(a2)
    assert slot is not None and slot is prefixes.slots[0]
    assert shared_depth(request_chain(a2), set(prefixes.hashes())) == 0  # its slot is busy now
    assert shared_depth(request_chain(chat(("user", "b"))), set(prefixes.hashes())) == 1
    assert prefixes.observe(slot, SamplerError("stopped")) is True  # terminal: slot is free
    a3 = chat(("user", "a"), ("assistant", "A "), ("user", "a again"), ("assistant", "x"))
    assert shared_depth(request_chain(a3), set(prefixes.hashes())) == 3
    assert prefixes.take(EMBED) is None


def test_a_new_engine_starts_with_empty_slots() -> None:
    prefixes = SlotPrefixes(1)
    first, second = object(), object()
    slot = prefixes.take(chat(("user", "a")), owner=first)
    prefixes.observe(slot, Done(USAGE))
    assert prefixes.hashes()
    prefixes.release(prefixes.take(chat(("user", "b")), owner=second))
    assert set(prefixes.hashes()) == set(request_chain(chat(("user", "b"))))


def status(cached: tuple[str, ...] | None) -> SlotAggregatedStatusSnapshot:
    return SlotAggregatedStatusSnapshot(
        desired_slots_total=1,
        slots_total=1,
        slots_processing=0,
        download_current=0,
        download_total=0,
        download_indeterminate=False,
        issues=(),
        state_application_status=AgentStateApplicationStatus.APPLIED,
        uses_chat_template_override=False,
        version=1,
        cached_prefixes=cached,
    )


def reported(extensions: frozenset[str]) -> dict[str, object]:
    protocol = AgentProtocol(name="a", extensions=extensions)
    protocol.register(status(None))
    protocol.report(status(("abc123abc123",)))
    message = protocol.outgoing()[-1]
    assert isinstance(message, UpdateAgentStatus)
    wire = json.loads(converter.dumps(message, AgentToBalancerMessage))
    snapshot: dict[str, object] = wire["Notification"]["UpdateAgentStatus"][
        "slot_aggregated_status_snapshot"
    ]
    return snapshot


def test_only_a_balancer_that_announced_the_extension_gets_the_hashes() -> None:
    assert "cached_prefixes" not in reported(frozenset())  # Paddler 4.1 rejects unknown fields
    assert reported(frozenset({AgentSocketExtension.CACHED_PREFIXES}))["cached_prefixes"] == [
        "abc123abc123"
    ]
    roundtrip = converter.loads(converter.dumps(status(("ff",))), SlotAggregatedStatusSnapshot)
    assert roundtrip == status(("ff",))
    assert "cached_prefixes" not in converter.dumps(attrs.evolve(status(None)))
