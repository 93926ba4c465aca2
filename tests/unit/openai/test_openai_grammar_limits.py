"""Schema and grammar bombs get OpenAI's 400 envelope naming the field, before any dispatch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from litestar.testing import TestClient
from openai import OpenAI

from paddler.balancer import BalancerConfig
from paddler.wire import (
    AgentControllerPoolSnapshot,
    ContentToken,
    Done,
    ResponseEnvelope,
    TokenUsage,
)
from paddler_server.openai import create_openai_app
from paddler_server.openai._chat_request import read_chat_request
from paddler_server.openai._errors import OpenAIError

USAGE = TokenUsage(
    prompt_tokens=1,
    cached_prompt_tokens=0,
    input_image_tokens=0,
    input_audio_tokens=0,
    content_tokens=1,
    reasoning_tokens=0,
    tool_call_tokens=0,
    undeterminable_tokens=0,
)
HI: Any = [{"role": "user", "content": "hi"}]
BOMB = {"type": "object", "properties": {"bio": {"type": "string", "maxLength": 10_000_000}}}


class _Answer:
    def __init__(self) -> None:
        self.items = [
            ResponseEnvelope(generated_by="a", request_id="r", response=ContentToken("Hi")),
            ResponseEnvelope(generated_by="a", request_id="r", response=Done(USAGE)),
        ]

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __aiter__(self) -> _Answer:
        return self

    async def __anext__(self) -> Any:
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)


class CountingBalancer:
    applicable_state = None
    config = BalancerConfig()  # the services read their settings (e.g. write deadlines) here

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def pool_names(self) -> tuple[str, ...]:
        return ("default",)  # one pool: any model goes there

    def generate(self, params: Any, *, overrides: Any = None, pool: str = "default") -> _Answer:
        self.calls.append(params)
        return _Answer()

    def agents_snapshot(self, pool: str | None = None) -> AgentControllerPoolSnapshot:
        return AgentControllerPoolSnapshot(agents=())

    def count_rejected(self, status: int) -> None:
        """A refused request is counted by a real balancer; this one keeps no statistics."""


@pytest.fixture
def balancer() -> CountingBalancer:
    return CountingBalancer()


@pytest.fixture
def sdk(balancer: CountingBalancer) -> Iterator[OpenAI]:
    with TestClient(create_openai_app(balancer)) as http:
        yield OpenAI(
            base_url="http://testserver.local/v1", api_key="x", http_client=http, max_retries=0
        )


def tool(parameters: dict[str, Any]) -> Any:
    return {"type": "function", "function": {"name": "save", "parameters": parameters}}


def test_response_format_bomb_is_a_400_naming_the_keyword(
    sdk: OpenAI, balancer: CountingBalancer
) -> None:
    """The 80 MB string schema is refused; an ordinary request still completes after it."""
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": BOMB}}
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="m", messages=HI, response_format=fmt)
    assert info.value.param == "response_format.json_schema.schema.properties.bio.maxLength"
    assert "larger than the limit" in info.value.message
    assert balancer.calls == []
    answer = sdk.chat.completions.create(model="m", messages=HI)
    assert answer.choices[0].message.content == "Hi"


def test_forced_tool_call_bomb_is_a_400_naming_the_tool(
    sdk: OpenAI, balancer: CountingBalancer
) -> None:
    """A forced tool call's schema is checked on the balancer before any agent sees it."""
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model="m", messages=HI, tools=[tool(BOMB)], tool_choice="required"
        )
    assert info.value.param == "tools[0].function.parameters.properties.bio.maxLength"
    assert balancer.calls == []


def test_responses_api_names_the_flat_tool(sdk: OpenAI, balancer: CountingBalancer) -> None:
    """The Responses API's flat tools are named without ``.function``."""
    flat: Any = {"type": "function", "name": "save", "parameters": BOMB}
    with pytest.raises(openai.BadRequestError) as info:
        sdk.responses.create(model="m", input="hi", tools=[flat], tool_choice="required")
    assert info.value.param == "tools[0].parameters.properties.bio.maxLength"


def test_paddler_grammar_extension_is_checked() -> None:
    """A GBNF grammar nested past the parser's safe depth is refused as ``grammar.grammar``."""
    deep = "root ::= " + '("a" ' * 30_000 + ")?" * 30_000
    body = {
        "model": "m",
        "messages": HI,
        "grammar": {"type": "gbnf", "grammar": deep, "root": "root"},
    }
    with pytest.raises(OpenAIError) as info:
        read_chat_request(body)
    assert info.value.status == 400
    assert info.value.param == "grammar.grammar"
    schema = {"type": "json_schema", "schema": '{"type": "string", "pattern": "(a{99}){99}"}'}
    with pytest.raises(OpenAIError) as info:
        read_chat_request({**body, "grammar": schema})
    assert info.value.param == "grammar.schema.pattern"


def test_ordinary_forced_tool_call_passes() -> None:
    """Within the limits nothing is refused: the call is forced through ``forced_tools``."""
    small = {"type": "object", "properties": {"bio": {"type": "string", "maxLength": 50}}}
    request = read_chat_request(
        {"model": "m", "messages": HI, "tools": [tool(small)], "tool_choice": "required"}
    )
    assert request.overrides is not None
    assert request.overrides.forced_tools == ("save",)
