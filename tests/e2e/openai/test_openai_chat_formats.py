"""The OpenAI layer on a model family other than the demo model's: DeepSeek-R1's template.

The demo model runs with DeepSeek-R1-Distill's real chat template as the override. That
template opens `<think>` at the end of the prompt, so the engine's `deepseek_r1` format
starts the answer in reasoning: the small model never closes it, and its whole answer is
reasoning. A `tool_choice` grammar's call comes back as `tool_calls` / a `function_call`
item even so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_cluster import desired_state
from openai import OpenAI
from openai_cluster import OpenAICluster

pytestmark = pytest.mark.model

TEMPLATE = (
    Path(__file__).parents[2] / "fixtures" / "chat_formats" / "deepseek-r1-distill-qwen-1.5b.jinja"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def deepseek_client(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[OpenAI]:
    cluster = OpenAICluster(tmp_path_factory.mktemp("deepseek"), model_path)
    try:
        cluster.start_balancer()
        state = desired_state(model_path, context_size=2048)
        state["chat_template_override"] = {"content": TEMPLATE.read_text()}
        state["use_chat_template_override"] = True
        response = cluster.put_state(state)
        assert response.status_code == 204, response.text
        cluster.start_agent("agent-0", 1)
        cluster.wait_ready(1)
        with OpenAI(
            base_url=cluster.openai_url, api_key="unused", max_retries=0, timeout=120.0
        ) as sdk:
            yield sdk
    finally:
        cluster.stop()


def test_chat_answer_is_reasoning_content(deepseek_client: OpenAI) -> None:
    """Reasoning is hidden from `content` and carried in `reasoning_content`."""
    answer = deepseek_client.chat.completions.create(
        model="m",
        messages=QUESTION,
        max_completion_tokens=12,  # type: ignore[arg-type]
    )
    message = answer.choices[0].message
    reasoning = getattr(message, "reasoning_content", None) or (message.model_extra or {}).get(
        "reasoning_content"
    )
    assert reasoning
    assert not message.content
    assert answer.usage is not None
    assert answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == 12


def test_forced_call_while_reasoning_comes_back_as_tool_calls(deepseek_client: OpenAI) -> None:
    """tool_choice forces `<tool_call>` right after the template's `<think>`: still a call."""
    answer = deepseek_client.chat.completions.create(
        model="m",
        messages=QUESTION,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)


def test_responses_give_a_function_call_item(deepseek_client: OpenAI) -> None:
    """The Responses API turns the call parsed in the DeepSeek format into a function_call."""
    response = deepseek_client.responses.create(
        model="m",
        input="What is the weather in Paris?",
        tools=[{"type": "function", **WEATHER["function"]}],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=200,
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["get_weather"]  # type: ignore[union-attr]
    assert "city" in json.loads(calls[0].arguments)  # type: ignore[union-attr]
