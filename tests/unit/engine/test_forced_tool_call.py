"""The grammar a forced tool call gets, built in the engine from the request's own tools."""

from __future__ import annotations

from paddler.engine._grammar import TOOL_CALL_ROOT, forced_tool_call_grammar
from paddler.engine._prepare import grammar_of
from paddler.wire import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    ConversationMessage,
    Function,
    GbnfGrammar,
    GrammarSyntaxError,
    JsonSchemaGrammar,
    SamplingOverrides,
    Tool,
    ValidatedParametersSchema,
)

WEATHER = Tool(
    Function(
        name="get_weather",
        description="",
        parameters=ValidatedParametersSchema(
            type="object", properties={"city": {"type": "string"}}, required=("city",)
        ),
    )
)
CLOCK = Tool(Function(name="get_time", description="", parameters=None))


def chat(**fields: object) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(ConversationMessage(role="user", content="hi"),),
        enable_thinking=False,
        max_tokens=8,
        **fields,  # type: ignore[arg-type]
    )


def test_one_forced_tool_admits_only_a_call_to_it() -> None:
    grammar = forced_tool_call_grammar((WEATHER, CLOCK), ("get_weather",))
    assert isinstance(grammar, GbnfGrammar)
    assert grammar.root == TOOL_CALL_ROOT
    assert grammar.grammar.startswith(f'{TOOL_CALL_ROOT} ::= "<tool_call>\\n" root')
    assert "get_weather" in grammar.grammar and "get_time" not in grammar.grammar
    assert "city" in grammar.grammar


def test_several_forced_tools_admit_a_call_to_any_of_them() -> None:
    grammar = forced_tool_call_grammar((WEATHER, CLOCK), ("get_weather", "get_time"))
    assert isinstance(grammar, GbnfGrammar)
    assert "get_weather" in grammar.grammar and "get_time" in grammar.grammar


def test_a_name_that_is_not_a_tool_is_a_syntax_error() -> None:
    error = forced_tool_call_grammar((WEATHER,), ("get_weather", "nope"))
    assert error == GrammarSyntaxError("forced_tools names 'nope', not in the request's tools")


def test_the_request_grammar_is_its_own_or_the_forced_one_never_both() -> None:
    """No overrides: the request's grammar as is; forced tools next to a grammar, or on a raw
    prompt (which has no tools), end the request with a syntax error."""
    schema = JsonSchemaGrammar('{"type": "object"}')
    assert grammar_of(chat(grammar=schema), None) is schema
    assert grammar_of(chat(grammar=schema), SamplingOverrides(seed=1)) is schema
    forced = SamplingOverrides(forced_tools=("get_weather",))
    made = grammar_of(chat(tools=(WEATHER,)), forced)
    assert isinstance(made, GbnfGrammar) and made.root == TOOL_CALL_ROOT
    both = grammar_of(chat(tools=(WEATHER,), grammar=schema), forced)
    assert both == GrammarSyntaxError("A forced tool call cannot be combined with a grammar")
    raw = grammar_of(ContinueFromRawPromptParams(raw_prompt="x", max_tokens=1), forced)
    assert isinstance(raw, GrammarSyntaxError)
