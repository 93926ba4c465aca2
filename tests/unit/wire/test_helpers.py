"""Small helpers on wire values: terminal checks, usage totals, the tool-schema check."""

from __future__ import annotations

import pytest

from paddler import wire

USAGE = wire.TokenUsage(
    prompt_tokens=10,
    cached_prompt_tokens=4,
    input_image_tokens=0,
    input_audio_tokens=0,
    content_tokens=5,
    reasoning_tokens=3,
    tool_call_tokens=2,
    undeterminable_tokens=1,
)


@pytest.mark.parametrize(
    "result",
    [
        wire.ContentToken("a"),
        wire.ReasoningToken("a"),
        wire.ToolCallToken("a"),
        wire.UndeterminableToken("a"),
        wire.ToolCallParsed(()),
        wire.ToolCallParseFailed("x"),
        wire.ToolCallValidationFailed(("x",)),
        wire.UnrecognizedToolCallFormat("t", "e"),
    ],
)
def test_streaming_results_are_not_terminal(result: wire.GeneratedTokenResult) -> None:
    """Tokens and tool-call events do not end a stream."""
    assert not wire.is_terminal(result)


@pytest.mark.parametrize(
    "result",
    [
        wire.Done(USAGE),
        wire.ChatTemplateError("x"),
        wire.DetokenizationFailed("x"),
        wire.GrammarIncompatibleWithThinking("x"),
        wire.GrammarInitializationFailed("x"),
        wire.GrammarRejectedModelOutput("x"),
        wire.GrammarSyntaxError("x"),
        wire.ImageDecodingFailed("x"),
        wire.ImageExceedsBatchSize(3, 2),
        wire.MultimodalNotSupported("x"),
        wire.SamplerError("x"),
        wire.TokenGenerationDisabled("x"),
        wire.ToolSchemaInvalid("x"),
    ],
)
def test_done_and_errors_are_terminal(result: wire.GeneratedTokenResult) -> None:
    """``Done`` and every error variant end a generation stream."""
    assert wire.is_terminal(result)


def test_embedding_terminals() -> None:
    """Only an embedding and an oversized document leave an embedding stream open."""
    embedding = wire.Embedding(
        embedding=(0.5,),
        normalization_method=wire.L2(),
        pooling_type=wire.PoolingType.LAST,
        source_document_id="d",
    )
    oversized = wire.DocumentExceedsBatchSize(document_tokens=9, n_batch=8, source_document_id="d")
    assert not wire.is_embedding_terminal(embedding)
    assert not wire.is_embedding_terminal(oversized)
    for terminal in [
        wire.EmbeddingDone(),
        wire.EmbeddingsDisabled(),
        wire.EmbeddingError("x"),
        wire.EmbeddingRejectedDueToActiveTokenGeneration(),
        wire.NoEmbeddingsProduced(),
    ]:
        assert wire.is_embedding_terminal(terminal)


def test_usage_completion_tokens() -> None:
    """Completion tokens are content + reasoning + tool-call + undeterminable."""
    assert USAGE.completion_tokens == 11


def test_usage_total_tokens() -> None:
    """Total tokens are prompt + completion tokens."""
    assert USAGE.total_tokens == 21


def _tool(required: tuple[str, ...] | None, properties: dict[str, object] | None) -> wire.Tool:
    schema = wire.ValidatedParametersSchema(type="object", properties=properties, required=required)
    return wire.Tool(wire.Function(name="get_weather", description="d", parameters=schema))


def test_tool_schema_problems_accepts_consistent_schema() -> None:
    """Every required name present in properties: no problem."""
    assert wire.tool_schema_problems([_tool(("city",), {"city": {"type": "string"}})]) == []


def test_tool_schema_problems_names_missing_property() -> None:
    """A required name missing from properties is reported with tool and property."""
    assert wire.tool_schema_problems([_tool(("city", "unit"), {"city": {}})]) == [
        "tool 'get_weather': required property 'unit' is not in properties"
    ]


def test_tool_schema_problems_without_properties() -> None:
    """Required names with no properties at all are all reported."""
    assert len(wire.tool_schema_problems([_tool(("a", "b"), None)])) == 2


def test_tool_schema_problems_ignores_tools_without_schema() -> None:
    """A tool without parameters, or without required, is fine."""
    tools = [wire.Tool(wire.Function(name="f", description="d")), _tool(None, None)]
    assert wire.tool_schema_problems(tools) == []
