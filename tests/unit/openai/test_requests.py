"""The OpenAI request mapping: pure functions, no model and no sockets."""

from __future__ import annotations

import json
import logging

import pytest

from paddler.wire import ImageUrlPart, JsonSchemaGrammar, SamplingOverrides, TextPart
from paddler_server.openai._chat_request import read_chat_request
from paddler_server.openai._completions import read_completion_request
from paddler_server.openai._embeddings import read_embedding_request
from paddler_server.openai._errors import OpenAIError
from paddler_server.openai._responses_request import read_responses_request

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def chat(**fields):
    return {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **fields}


def rejected(read, body) -> OpenAIError:
    with pytest.raises(OpenAIError) as info:
        read(body)
    assert info.value.status == 400
    return info.value


def test_plain_chat_defaults():
    """A bare request: thinking on, 2000 tokens, no grammar, no overrides."""
    request = read_chat_request(chat())
    assert request.params.enable_thinking is True
    assert request.params.max_tokens == 2000
    assert request.params.grammar is None
    assert request.overrides is None
    assert not request.stream


def test_max_completion_tokens_wins_over_max_tokens():
    """Both limits are read; the newer name takes precedence."""
    assert read_chat_request(chat(max_tokens=7)).params.max_tokens == 7
    assert read_chat_request(chat(max_tokens=7, max_completion_tokens=9)).params.max_tokens == 9


def test_sampling_fields_become_overrides():
    """temperature, top_p, seed, penalties and stop are honoured per request."""
    request = read_chat_request(
        chat(
            temperature=0,
            top_p=0.5,
            seed=3,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            stop="END",
        )
    )
    assert request.overrides == SamplingOverrides(
        temperature=0.0,
        top_p=0.5,
        seed=3,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        stop=("END",),
    )


def test_image_parts_are_kept():
    """Text and image_url parts map to wire content parts (``detail`` is tolerated)."""
    content = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}},
    ]
    request = read_chat_request(chat(messages=[{"role": "user", "content": content}]))
    parts = request.params.conversation_history[0].content
    assert isinstance(parts[0], TextPart)
    assert isinstance(parts[1], ImageUrlPart)


def test_assistant_tool_calls_and_tool_results_are_mapped():
    """An earlier call is written back in the model's tool-call format; results are tool turns."""
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
    ]
    history = read_chat_request(chat(messages=messages)).params.conversation_history
    assert history[1].role == "assistant"
    assert '"name": "get_weather"' in history[1].content
    assert history[1].content.startswith("<tool_call>")
    assert history[2].role == "tool"
    assert history[2].content == "Sunny"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(n=2), "n"),
        (chat(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (chat(temperature="hot"), "temperature"),
        (chat(temperature=3), "temperature"),
        (chat(max_tokens=0), "max_tokens"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
        (chat(logprobs=True), "logprobs"),
        (chat(response_format={"type": "xml"}), "response_format.type"),
        (
            chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}),
            "tool_choice.function.name",
        ),
        (chat(messages=[]), "messages"),
    ],
)
def test_unsupported_values_name_their_field(body, param):
    """Every 400 says which field is at fault."""
    assert rejected(read_chat_request, body).param == param


def test_other_tool_types_are_dropped_and_logged(caplog):
    """As Paddler: a client that mixes tool types gets the function tools only, not a 400."""
    caplog.set_level(logging.INFO, logger="paddler_server.openai")
    request = read_chat_request(
        chat(tools=[{"type": "web_search"}, WEATHER, {"type": "custom", "name": "x"}])
    )
    assert [t.function.name for t in request.params.tools] == ["get_weather"]
    assert request.params.parse_tool_calls is True
    assert "tools[0]: a tool of type 'web_search' is dropped" in caplog.text
    assert "tools[2]: a tool of type 'custom' is dropped" in caplog.text

    flat = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    responses = read_responses_request(
        {"model": "m", "input": "hi", "tools": [{"type": "file_search"}, flat]}
    )
    assert [t.function.name for t in responses.tools] == ["get_weather"]

    only_others = read_chat_request(
        chat(tools=[{"type": "web_search"}], tool_choice={"type": "web_search"})
    )
    assert only_others.params.tools == ()
    assert only_others.params.parse_tool_calls is False


def test_json_schema_response_format_turns_thinking_off():
    """A grammar needs thinking off, so it is switched off unless asked for explicitly."""
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = read_chat_request(
        chat(
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        )
    )
    assert request.params.enable_thinking is False
    assert isinstance(request.params.grammar, JsonSchemaGrammar)
    assert json.loads(request.params.grammar.schema) == schema
    error = rejected(
        read_chat_request, chat(response_format={"type": "json_object"}, reasoning_effort="high")
    )
    assert error.param == "reasoning_effort"


def test_forced_tool_choice_is_sent_for_the_engine_to_build():
    """A named tool_choice names that tool in ``forced_tools`` (the agent's engine builds the
    grammar); the request itself keeps Paddler's shape, with thinking off."""
    request = read_chat_request(
        chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    )
    assert request.params.grammar is None
    assert request.params.enable_thinking is False
    assert request.params.parse_tool_calls is True
    assert request.overrides == SamplingOverrides(forced_tools=("get_weather",))
    other = {"type": "function", "function": {"name": "get_time"}}
    required = read_chat_request(chat(tools=[WEATHER, other], tool_choice="required", seed=3))
    assert required.overrides == SamplingOverrides(seed=3, forced_tools=("get_weather", "get_time"))
    assert read_chat_request(chat(tools=[WEATHER], tool_choice="auto")).overrides is None
    error = rejected(
        read_chat_request,
        chat(tools=[WEATHER], tool_choice="required", reasoning_effort="high"),
    )
    assert error.param == "reasoning_effort"


def test_tool_choice_none_drops_tools():
    request = read_chat_request(chat(tools=[WEATHER], tool_choice="none"))
    assert request.params.tools == ()
    assert request.params.parse_tool_calls is False


def test_responses_function_call_renders_as_paddler_renders_it():
    """A function_call item is an assistant message whose text is the call as compact JSON
    (call_id, name, arguments as the string sent); consecutive calls stay separate messages."""
    request = read_responses_request(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "Weather in Oslo and Bergen?"},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": '{"city": "Oslo"}',
                },
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "get_weather",
                    "arguments": '{"city":"Bergen ☂"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "Sunny"},
            ],
        }
    )
    history = request.params.conversation_history
    assert [(m.role, m.content) for m in history[1:]] == [
        (
            "assistant",
            '{"call_id":"c1","name":"get_weather","arguments":"{\\"city\\": \\"Oslo\\"}"}',
        ),
        (
            "assistant",
            '{"call_id":"c2","name":"get_weather","arguments":"{\\"city\\":\\"Bergen ☂\\"}"}',
        ),
        ("tool", "Sunny"),
    ]
    missing = {"type": "function_call", "name": "get_weather", "arguments": "{}"}
    assert rejected(read_responses_request, {"model": "m", "input": [missing]}).param == (
        "input[0].call_id"
    )


def test_responses_input_items():
    """instructions, messages, function calls and their outputs become one conversation."""
    request = read_responses_request(
        {
            "model": "m",
            "instructions": "Be brief",
            "input": [
                {"role": "developer", "content": "Use tools"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Weather?"}],
                },
                {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "Sunny"},
                {"type": "reasoning", "id": "rs", "summary": []},
            ],
            "reasoning": {"effort": "none"},
            "max_output_tokens": 12,
        }
    )
    roles = [m.role for m in request.params.conversation_history]
    assert roles == ["system", "system", "user", "assistant", "tool"]
    assert request.params.enable_thinking is False
    assert request.params.max_tokens == 12


def test_responses_text_format_json_schema():
    request = read_responses_request(
        {
            "model": "m",
            "input": "x",
            "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
        }
    )
    assert isinstance(request.params.grammar, JsonSchemaGrammar)
    assert request.params.enable_thinking is False


def test_completion_request():
    request = read_completion_request(
        {"model": "m", "prompt": ["Once"], "max_tokens": 5, "stop": ["\n"], "echo": True}
    )
    assert request.params.raw_prompt == "Once"
    assert request.params.max_tokens == 5
    assert request.echo
    assert request.overrides is not None and request.overrides.stop == ("\n",)
    assert rejected(read_completion_request, {"prompt": [1, 2]}).param == "prompt"
    assert rejected(read_completion_request, {"prompt": ""}).param == "prompt"  # was a 500


def test_embedding_request():
    request = read_embedding_request({"input": ["a", "b"], "encoding_format": "base64"})
    assert [d.content for d in request.params.input_batch] == ["a", "b"]
    assert request.base64
    assert rejected(read_embedding_request, {"input": [[1, 2]]}).param == "input[0]"
    assert rejected(read_embedding_request, {"input": "a", "dimensions": 3}).param == "dimensions"
