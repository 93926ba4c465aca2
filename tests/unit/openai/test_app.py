"""The OpenAI app over a scripted balancer: what the SDK parses for each kind of result.

The real model cannot think or fail on demand, so reasoning, errors mid-stream and status
mapping are checked here with a balancer double that replays wire messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from litestar.testing import TestClient
from openai import OpenAI

from paddler.errors import BufferFull
from paddler.wire import (
    AgentControllerPoolSnapshot,
    ContentToken,
    Done,
    ErrorBody,
    ErrorEnvelope,
    GrammarSyntaxError,
    ParsedToolCall,
    ReasoningToken,
    ResponseEnvelope,
    TokenGenerationDisabled,
    TokenUsage,
    ToolCallParsed,
    ValidJson,
)
from paddler_server._settings import BalancerSettings
from paddler_server.openai import create_openai_app

USAGE = TokenUsage(
    prompt_tokens=5,
    cached_prompt_tokens=2,
    input_image_tokens=0,
    input_audio_tokens=0,
    content_tokens=2,
    reasoning_tokens=1,
    tool_call_tokens=4,
    undeterminable_tokens=0,
)


def envelope(result: Any) -> ResponseEnvelope:
    return ResponseEnvelope(generated_by="a", request_id="r", response=result)


class Replay:
    def __init__(self, items: list[Any]) -> None:
        self.items = list(items)

    async def __aenter__(self) -> Replay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @property
    def ready(self) -> bool:
        """As ``InferenceStream.ready``: every scripted item has already arrived."""
        return bool(self.items)

    def __aiter__(self) -> Replay:
        return self

    async def __anext__(self) -> Any:
        if not self.items:
            raise StopAsyncIteration
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


class ScriptedBalancer:
    """Replays ``script`` for every generation; records what it was asked."""

    applicable_state = None

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.calls: list[tuple[Any, Any]] = []

    def pool_names(self) -> tuple[str, ...]:
        return ("default",)  # one pool: any model goes there

    def generate(self, params: Any, *, overrides: Any = None, pool: str = "default") -> Replay:
        self.calls.append((params, overrides))
        return Replay(self.script)

    def agents_snapshot(self, pool: str | None = None) -> AgentControllerPoolSnapshot:
        return AgentControllerPoolSnapshot(agents=())

    def count_rejected(self, status: int) -> None:
        """A refused request is counted by a real balancer; this one keeps no statistics."""


@pytest.fixture
def balancer() -> ScriptedBalancer:
    return ScriptedBalancer()


@pytest.fixture
def sdk(balancer: ScriptedBalancer) -> Iterator[OpenAI]:
    with TestClient(create_openai_app(balancer)) as http:
        yield OpenAI(
            base_url="http://testserver.local/v1", api_key="x", http_client=http, max_retries=0
        )


HI: Any = [{"role": "user", "content": "hi"}]


def test_reasoning_and_tool_calls_in_a_whole_answer(
    sdk: OpenAI, balancer: ScriptedBalancer
) -> None:
    call = ParsedToolCall(id="call_1", name="f", arguments=ValidJson({"a": 1}))
    balancer.script = [
        envelope(ReasoningToken("think")),
        envelope(ContentToken("Hi")),
        envelope(ToolCallParsed((call,))),
        envelope(Done(USAGE)),
    ]
    answer = sdk.chat.completions.create(model="m", messages=HI)
    message = answer.choices[0].message
    assert message.reasoning_content == "think"  # type: ignore[attr-defined]
    assert message.content == "Hi"
    assert message.tool_calls is not None and message.tool_calls[0].id == "call_1"
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 7
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 2
    assert answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == 1


def test_reasoning_streams_as_reasoning_content(sdk: OpenAI, balancer: ScriptedBalancer) -> None:
    balancer.script = [
        envelope(ReasoningToken("th")),
        envelope(ContentToken("Hi")),
        envelope(Done(USAGE)),
    ]
    chunks = list(sdk.chat.completions.create(model="m", messages=HI, stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    assert [getattr(d, "reasoning_content", None) for d in deltas][1] == "th"
    assert deltas[2].content == "Hi"


def test_an_error_before_output_is_an_http_status(sdk: OpenAI, balancer: ScriptedBalancer) -> None:
    balancer.script = [ErrorEnvelope(request_id="r", error=ErrorBody(504, "timed out"))]
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="m", messages=HI, stream=True)
    assert info.value.status_code == 504
    balancer.script = [BufferFull("Buffered requests overflow")]
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="m", messages=HI)
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"] == "1"
    balancer.script = [envelope(TokenGenerationDisabled("embeddings mode"))]
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="m", messages=HI)
    assert info.value.status_code == 501
    balancer.script = [envelope(GrammarSyntaxError("bad"))]
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="m", messages=HI)


def test_an_error_mid_stream_is_in_band(sdk: OpenAI, balancer: ScriptedBalancer) -> None:
    balancer.script = [
        envelope(ContentToken("Hi")),
        ErrorEnvelope(request_id="r", error=ErrorBody(502, "agent gone")),
    ]
    with pytest.raises(openai.APIError) as info:
        list(sdk.chat.completions.create(model="m", messages=HI, stream=True))
    assert "agent gone" in str(info.value)


def test_responses_failed_event_mid_stream(sdk: OpenAI, balancer: ScriptedBalancer) -> None:
    balancer.script = [
        envelope(ContentToken("Hi")),
        ErrorEnvelope(request_id="r", error=ErrorBody(502, "agent gone")),
    ]
    events = list(sdk.responses.create(model="m", input="hi", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None  # type: ignore[union-attr]


def test_overrides_reach_the_balancer(sdk: OpenAI, balancer: ScriptedBalancer) -> None:
    balancer.script = [envelope(Done(USAGE))]
    sdk.chat.completions.create(model="m", messages=HI, temperature=0.2, seed=5, stop=["x"])
    _, overrides = balancer.calls[-1]
    assert (overrides.temperature, overrides.seed, overrides.stop) == (0.2, 5, ("x",))


def test_responses_reasoning_message_and_call_items(
    sdk: OpenAI, balancer: ScriptedBalancer
) -> None:
    """Reasoning, text and a call become three output items, whole or streamed."""
    call = ParsedToolCall(id="call_9", name="f", arguments=ValidJson({}))
    script = [
        envelope(ReasoningToken("th")),
        envelope(ReasoningToken("ink")),
        envelope(ContentToken("Hi")),
        envelope(ToolCallParsed((call,))),
        envelope(Done(USAGE)),
    ]
    balancer.script = list(script)
    response = sdk.responses.create(model="m", input="hi")
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    assert response.output_text == "Hi"
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 1
    balancer.script = list(script)
    events = list(sdk.responses.create(model="m", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds.count("response.reasoning_text.delta") == 2
    assert kinds.count("response.output_item.done") == 3
    final = events[-1]
    assert final.type == "response.completed"
    assert [item.type for item in final.response.output] == [
        "reasoning",
        "message",
        "function_call",
    ]


def test_responses_stream_cut_off_by_max_output_tokens_ends_incomplete(
    sdk: OpenAI, balancer: ScriptedBalancer
) -> None:
    """As OpenAI: the last event is response.incomplete (not .completed), with the reason."""
    script = [envelope(ContentToken("a")), envelope(ContentToken("b")), envelope(Done(USAGE))]
    balancer.script = list(script)  # USAGE counts 3 completion tokens: the limit of 3 is hit
    events = list(sdk.responses.create(model="m", input="hi", max_output_tokens=3, stream=True))
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.status == "incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert "response.completed" not in [e.type for e in events]

    balancer.script = list(script)
    events = list(sdk.responses.create(model="m", input="hi", max_output_tokens=4, stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.status == "completed"


def test_chat_request_id_and_model_echo(sdk: OpenAI, balancer: ScriptedBalancer) -> None:
    balancer.script = [envelope(ContentToken("Hi")), envelope(Done(USAGE))]
    answer = sdk.chat.completions.create(model="my-model", messages=HI)
    assert answer.model == "my-model"
    assert answer.id.startswith("chatcmpl-")


def test_a_served_model_name_is_what_models_lists(balancer: ScriptedBalancer) -> None:
    """``--served-model-name`` names the model; any requested name is still echoed."""
    app = create_openai_app(balancer, BalancerSettings(served_model_name="smol"))
    with TestClient(app) as http:
        sdk = OpenAI(
            base_url="http://testserver.local/v1", api_key="x", http_client=http, max_retries=0
        )
        assert [m.id for m in sdk.models.list().data] == ["smol"]
        assert sdk.models.retrieve("smol").id == "smol"
        balancer.script = [envelope(ContentToken("Hi")), envelope(Done(USAGE))]
        answer = sdk.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=2)
        assert answer.model == "gpt-4o"
