"""Bad inputs end their own request with a clear terminal result; the engine keeps serving.

Each test sends one hostile request to a real engine (worker process, SmolLM2) while an
ordinary request is in flight, and checks what the hostile client sees and that the ordinary
request, and the one after, complete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import attrs
import pytest
from engine_test_helpers import chat, collect, content, done

from paddler.engine import LlamaEngine
from paddler.wire import (
    ChatTemplateError,
    ContinueFromRawPromptParams,
    Function,
    GbnfGrammar,
    GeneratedTokenResult,
    GrammarSyntaxError,
    InferenceParameters,
    JsonSchemaGrammar,
    SamplerError,
    Tool,
    ToolCallValidationFailed,
    ValidatedParametersSchema,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

NESTED_RANGES = (
    "{% if messages[-1]['content'] == 'bomb' %}"
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    "{% endif %}"
)
CONTEXT = 1024


@pytest.fixture(scope="module")
async def engine(model_path: Path) -> AsyncIterator[LlamaEngine]:
    params = attrs.evolve(InferenceParameters.deterministic(), context_size=CONTEXT, n_batch=256)
    probe = await LlamaEngine.load(model_path, params, slots=1)
    template = probe.model_chat_template
    await probe.aclose()
    assert template
    async with await LlamaEngine.load(
        model_path, params, slots=2, chat_template_override=NESTED_RANGES + template
    ) as engine:
        yield engine


async def alongside(engine: LlamaEngine, hostile: object) -> list[GeneratedTokenResult]:
    """Run ``hostile`` while an ordinary request generates; both must end, the ordinary one
    with tokens and Done. Returns the hostile request's results."""
    results: dict[str, list[GeneratedTokenResult]] = {}

    async def run(name: str, params: object) -> None:
        results[name] = await collect(engine.generate(params))  # type: ignore[arg-type]

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "ordinary", chat(("user", "Count from one to ten."), max_tokens=6))
            tg.start_soon(run, "hostile", hostile)
    assert content(results["ordinary"])
    done(results["ordinary"])
    after = await collect(engine.generate(chat(("user", "Hi"), max_tokens=2)))
    assert content(after)
    return results["hostile"]


async def test_schema_string_bomb_is_a_grammar_syntax_error(engine: LlamaEngine) -> None:
    bomb = JsonSchemaGrammar(json.dumps({"type": "string", "maxLength": 10_000_000}))
    (result,) = await alongside(engine, chat(("user", "Hi"), grammar=bomb))
    assert isinstance(result, GrammarSyntaxError)
    assert "maxLength: 10000000 is larger than the limit of 1000" in result.message


async def test_deeply_nested_gbnf_does_not_crash_the_worker(engine: LlamaEngine) -> None:
    """30,000 nested groups overflow llama.cpp's recursive parser (a segfault) without the
    limit; with it the request gets GrammarSyntaxError and the ordinary one is untouched."""
    deep = "root ::= " + '("a" ' * 30_000 + ")?" * 30_000
    grammar = GbnfGrammar(grammar=deep, root="root")
    (result,) = await alongside(engine, chat(("user", "Hi"), grammar=grammar))
    assert isinstance(result, GrammarSyntaxError)
    assert "nests groups deeper than" in result.message


async def test_catastrophic_tool_pattern_is_cut_off(engine: LlamaEngine) -> None:
    """The model is made to emit an argument that backtracks exponentially in the pattern."""
    tool = Tool(
        function=Function(
            name="save",
            description="",
            parameters=ValidatedParametersSchema(
                type="object", properties={"s": {"type": "string", "pattern": "^(a|a)*$"}}
            ),
        )
    )
    argument = "a" * 40 + "b"
    call = r"{\"name\": \"save\", \"arguments\": {\"s\": \"" + argument + r"\"}}"
    params = chat(
        ("user", "Save it."),
        max_tokens=80,
        grammar=GbnfGrammar(grammar=f'root ::= "<tool_call>{call}</tool_call>"', root="root"),
        tools=(tool,),
        parse_tool_calls=True,
    )
    results = await alongside(engine, params)
    (failed,) = [r for r in results if isinstance(r, ToolCallValidationFailed)]
    assert "could not be checked" in failed.messages[0]
    done(results)


async def test_prompt_past_the_context_is_refused_before_tokenizing(engine: LlamaEngine) -> None:
    """Bytes alone show that this prompt cannot fit; the message says both sizes."""
    huge = ContinueFromRawPromptParams(raw_prompt="word " * 2_000_000, max_tokens=4)
    (result,) = await alongside(engine, huge)
    assert isinstance(result, SamplerError)
    assert "The prompt is 10000000 bytes" in result.message
    assert f"holds {CONTEXT // 2} tokens" in result.message  # per request: 2 slots share it


async def test_prompt_just_past_the_context_is_refused_after_tokenizing(
    engine: LlamaEngine,
) -> None:
    """A prompt a few tokens too long (its bytes could fit) is measured, then refused."""
    params = ContinueFromRawPromptParams(raw_prompt="hello " * (CONTEXT + 10), max_tokens=4)
    (result,) = await alongside(engine, params)
    assert isinstance(result, SamplerError)
    assert "tokens; this agent's context holds" in result.message


async def test_template_bomb_is_a_chat_template_error(engine: LlamaEngine) -> None:
    """Nested range(100000) loops in a template override end after the render deadline."""
    (result,) = await alongside(engine, chat(("user", "bomb")))
    assert isinstance(result, ChatTemplateError)
    assert "took longer than" in result.message
