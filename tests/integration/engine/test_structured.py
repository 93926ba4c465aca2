"""Grammars, tool calls, templates and their errors; the engine keeps serving after each."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from engine_test_helpers import chat, collect, content, done

from paddler.engine import LlamaEngine
from paddler.engine._errors import ChatTemplateDoesNotCompile, ModelCannotBeLoaded, SlotCannotStart
from paddler.wire import (
    ChatTemplateError,
    ContinueFromRawPromptParams,
    ConversationMessage,
    Function,
    GbnfGrammar,
    GrammarIncompatibleWithThinking,
    GrammarSyntaxError,
    ImageUrl,
    ImageUrlPart,
    InferenceParameters,
    JsonSchemaGrammar,
    MultimodalNotSupported,
    ReasoningToken,
    SamplingOverrides,
    TextPart,
    Tool,
    ToolCallParsed,
    ToolCallToken,
    ToolCallValidationFailed,
    ToolSchemaInvalid,
    ValidatedParametersSchema,
    ValidJson,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

# The model's own template, wrapped so that one message content makes it fail to render.
EXPLODING = "{% if messages[-1]['content'] == 'explode' %}{{ raise_exception('boom') }}{% endif %}"

WEATHER = Tool(
    function=Function(
        name="get_weather",
        description="Weather for a city",
        parameters=ValidatedParametersSchema(
            type="object",
            properties={"city": {"type": "string"}},
            required=("city",),
        ),
    )
)


@pytest.fixture(scope="module")
async def engine(model_path: Path) -> AsyncIterator[LlamaEngine]:
    params = attrs.evolve(InferenceParameters.deterministic(), context_size=2048, n_batch=256)
    probe = await LlamaEngine.load(model_path, params, slots=1)
    template = probe.model_chat_template
    await probe.aclose()
    assert template
    async with await LlamaEngine.load(
        model_path, params, slots=2, chat_template_override=EXPLODING + template
    ) as engine:
        yield engine


async def still_serving(engine: LlamaEngine) -> None:
    assert content(await collect(engine.generate(chat(("user", "Hi"), max_tokens=4))))


async def test_gbnf_grammar_forces_the_output(engine: LlamaEngine) -> None:
    grammar = GbnfGrammar(grammar='root ::= "yes" | "no"', root="root")
    results = await collect(engine.generate(chat(("user", "Is the sky green?"), grammar=grammar)))
    assert content(results) in {"yes", "no"}
    done(results)


async def test_json_schema_yields_valid_json(engine: LlamaEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    params = chat(
        ("user", "Describe a person as JSON."),
        max_tokens=80,
        grammar=JsonSchemaGrammar(json.dumps(schema)),
    )
    results = await collect(engine.generate(params))
    value = json.loads(content(results))
    assert set(value) == {"name", "age"}
    assert isinstance(value["age"], int)


async def test_bad_grammar_is_an_error_and_the_engine_keeps_serving(engine: LlamaEngine) -> None:
    for bad in (
        GbnfGrammar(grammar='root ::= "yes', root="root"),
        GbnfGrammar(grammar="root ::= x", root="root"),
        JsonSchemaGrammar("{not json"),
    ):
        results = await collect(engine.generate(chat(("user", "Hi"), grammar=bad)))
        assert len(results) == 1
        assert isinstance(results[0], GrammarSyntaxError)
    await still_serving(engine)


async def test_grammar_with_thinking_is_refused(engine: LlamaEngine) -> None:
    params = attrs.evolve(
        chat(("user", "Hi"), grammar=GbnfGrammar(grammar='root ::= "a"', root="root")),
        enable_thinking=True,
    )
    results = await collect(engine.generate(params))
    assert isinstance(results[-1], GrammarIncompatibleWithThinking)


async def test_template_render_error_is_terminal(engine: LlamaEngine) -> None:
    results = await collect(engine.generate(chat(("user", "explode"))))
    assert len(results) == 1
    assert isinstance(results[0], ChatTemplateError)
    assert "boom" in results[0].message
    await still_serving(engine)


TOOL_GRAMMAR = r"""root ::= "<tool_call>" call "</tool_call>"
call ::= "{\"name\": \"" name "\", \"arguments\": {\"city\": \"Paris\"}}"
name ::= "get_weather"
"""


async def test_forced_tool_call_is_parsed(engine: LlamaEngine) -> None:
    params = chat(
        ("user", "What is the weather in Paris?"),
        max_tokens=60,
        grammar=GbnfGrammar(grammar=TOOL_GRAMMAR, root="root"),
        tools=(WEATHER,),
        parse_tool_calls=True,
    )
    results = await collect(engine.generate(params))
    raw = "".join(r.text for r in results if isinstance(r, ToolCallToken))
    assert json.loads(raw) == {"name": "get_weather", "arguments": {"city": "Paris"}}
    parsed = [r for r in results if isinstance(r, ToolCallParsed)]
    assert len(parsed) == 1
    (call,) = parsed[0].calls
    assert call.name == "get_weather"
    assert call.arguments == ValidJson({"city": "Paris"})
    usage = done(results).usage
    assert usage.tool_call_tokens > 0
    assert usage.content_tokens == 0


async def test_forced_tools_make_the_engine_build_the_call_grammar(engine: LlamaEngine) -> None:
    """``forced_tools`` (what the OpenAI layer sends for tool_choice): the engine converts the
    tool's schema itself, and the answer is one parsed call to that tool."""
    clock = Tool(function=Function(name="get_time", description="The time", parameters=None))
    params = chat(
        ("user", "What is the weather in Paris?"),
        max_tokens=80,
        tools=(WEATHER, clock),
        parse_tool_calls=True,
    )
    forced = SamplingOverrides(temperature=0.0, forced_tools=("get_weather",))
    results = await collect(engine.generate(params, overrides=forced))
    parsed = [r for r in results if isinstance(r, ToolCallParsed)]
    assert len(parsed) == 1, results
    (call,) = parsed[0].calls
    assert call.name == "get_weather"
    assert isinstance(call.arguments, ValidJson)
    assert isinstance(call.arguments.value["city"], str)
    assert done(results).usage.content_tokens == 0
    unknown = SamplingOverrides(forced_tools=("nope",))
    (error,) = await collect(engine.generate(params, overrides=unknown))
    assert isinstance(error, GrammarSyntaxError)
    assert "'nope'" in error.message
    await still_serving(engine)


async def test_tool_call_with_wrong_arguments_fails_validation(engine: LlamaEngine) -> None:
    call = r"{\"name\": \"get_weather\", \"arguments\": {\"town\": 1}}"
    grammar = f'root ::= "<tool_call>{call}</tool_call>"'
    params = chat(
        ("user", "Weather?"),
        max_tokens=60,
        grammar=GbnfGrammar(grammar=grammar, root="root"),
        tools=(WEATHER,),
        parse_tool_calls=True,
    )
    results = await collect(engine.generate(params))
    (failed,) = [r for r in results if isinstance(r, ToolCallValidationFailed)]
    assert "city" in failed.messages[0]


async def test_tool_calls_are_streamed_raw_without_parsing(engine: LlamaEngine) -> None:
    raw = "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"
    grammar = r'root ::= "<tool_call>{\"name\": \"x\"}</tool_call>"'
    results = await collect(
        engine.generate(
            ContinueFromRawPromptParams(
                raw_prompt=raw, max_tokens=40, grammar=GbnfGrammar(grammar=grammar, root="root")
            )
        )
    )
    assert "".join(r.text for r in results if isinstance(r, ToolCallToken)) == '{"name": "x"}'
    assert not any(isinstance(r, ToolCallParsed) for r in results)


async def test_invalid_tool_schema_is_terminal(engine: LlamaEngine) -> None:
    broken = Tool(
        function=Function(
            name="f",
            description="",
            parameters=ValidatedParametersSchema(type="no-such-type"),
        )
    )
    results = await collect(engine.generate(chat(("user", "Hi"), tools=(broken,))))
    assert isinstance(results[-1], ToolSchemaInvalid)


async def test_template_that_does_not_compile_fails_the_load(model_path: Path) -> None:
    with pytest.raises(ChatTemplateDoesNotCompile) as info:
        await LlamaEngine.load(
            model_path,
            InferenceParameters.deterministic(),
            slots=1,
            chat_template_override="{% for %}",
        )
    assert info.value.template == "{% for %}"


async def test_missing_model_fails_the_load(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf")
    for path in (broken, tmp_path / "missing.gguf"):
        with pytest.raises(ModelCannotBeLoaded):
            await LlamaEngine.load(path, InferenceParameters.deterministic(), slots=1)


async def test_think_markers_make_reasoning_tokens(engine: LlamaEngine) -> None:
    """Text between `<think>` markers streams as reasoning and is counted as such."""
    raw = "<|im_start|>user\nAgree?<|im_end|>\n<|im_start|>assistant\n"
    grammar = GbnfGrammar(grammar='root ::= "<think>I should agree.</think>yes"', root="root")
    params = ContinueFromRawPromptParams(raw_prompt=raw, max_tokens=40, grammar=grammar)
    results = await collect(engine.generate(params))
    reasoning = "".join(r.text for r in results if isinstance(r, ReasoningToken))
    assert reasoning == "I should agree."
    assert content(results) == "yes"
    usage = done(results).usage
    assert usage.reasoning_tokens > 0
    assert usage.content_tokens > 0
    assert usage.tool_call_tokens == 0


async def test_images_without_a_projection_are_not_supported(engine: LlamaEngine) -> None:
    image = ImageUrlPart(image_url=ImageUrl(url="data:image/png;base64,iVBORw0KGgo="))
    message = ConversationMessage(role="user", content=(TextPart(text="What is this?"), image))
    params = attrs.evolve(chat(("user", "x")), conversation_history=(message,))
    results = await collect(engine.generate(params))
    assert len(results) == 1
    assert isinstance(results[0], MultimodalNotSupported)
    await still_serving(engine)


async def test_slots_that_cannot_start(model_path: Path) -> None:
    """More slots than batch tokens, or than llama.cpp's 256 sequences, fail the load cleanly."""
    params = attrs.evolve(InferenceParameters.deterministic(), n_batch=4)
    with pytest.raises(SlotCannotStart):
        await LlamaEngine.load(model_path, params, slots=8)
    with pytest.raises(SlotCannotStart, match="n_seq_max=257"):
        await LlamaEngine.load(model_path, InferenceParameters.deterministic(), slots=257)
