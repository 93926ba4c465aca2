"""Chat formats: detection from real templates, and each family's parser on its outputs.

The templates in `tests/fixtures/chat_formats/` are those of public GGUF models (source in
each file's first comment); `outputs.json` holds model outputs as token sequences. Every
sequence is also fed one character at a time, which splits every marker across tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paddler.engine._classifier import Section
from paddler.engine._formats import FORMATS, ChatFormat, detect_chat_format
from paddler.engine._template import ChatTemplate
from paddler.engine._tool_calls import compile_tool_validators, parse_tool_calls, tools_to_template
from paddler.wire import (
    Tool,
    ToolCallParsed,
    ToolCallParseFailed,
    UnrecognizedToolCallFormat,
    ValidJson,
    converter,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "chat_formats"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "outputs.json").read_text())["cases"]

TOOLS = [
    converter.structure(
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"{name} tool",
                "parameters": {
                    "type": "object",
                    "properties": {arg: {"type": "string"}},
                    "required": [arg],
                },
            },
        },
        Tool,
    )
    for name, arg in (("get_weather", "city"), ("echo", "text"), ("brave_search", "query"))
]
VALIDATORS = compile_tool_validators(TOOLS)


def template(name: str) -> ChatTemplate:
    return ChatTemplate((FIXTURES / name).read_text(), bos_token="<s>", eos_token="</s>")


def render(case: dict[str, Any]) -> str:
    return template(case["template"]).render(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        enable_thinking=case["enable_thinking"],
        tools=tools_to_template(TOOLS) if case["tools"] else None,
    )


def run(chat_format: ChatFormat, case: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """Feed the tokens as the engine does; the text per section, calls and counts."""
    parser = chat_format.parser(tools=case["tools"], prompt=render(case))
    text = {s: "" for s in Section}
    counts = {s: 0 for s in Section}
    calls: list[dict[str, Any]] = []
    steps = [parser.feed(t) for t in tokens] + [parser.flush()]
    for step in steps:
        for piece in step.pieces:
            text[piece.section] += piece.text
            if piece.closes_tool_call:
                result = parse_tool_calls(piece.call_text, VALIDATORS, chat_format.read_calls)
                assert isinstance(result, ToolCallParsed), result
                calls += [
                    {"name": c.name, "arguments": getattr(c.arguments, "value", None)}
                    for c in result.calls
                ]
        for section, n in step.counts:
            counts[section] += n
    return {"text": text, "counts": counts, "calls": calls}


TEMPLATE_FORMATS = {
    "qwen3-8b.jinja": "hermes",
    "llama-3.1-8b-instruct.jinja": "llama3",
    "mistral-7b-instruct-v0.3.jinja": "mistral",
    "magistral-small-2509.jinja": "mistral",
    "deepseek-r1-distill-qwen-1.5b.jinja": "deepseek_r1",
    "gemma-3-it.jinja": "gemma3",
    "gpt-oss-20b.jinja": "harmony",
}


@pytest.mark.parametrize(("name", "expected"), TEMPLATE_FORMATS.items())
def test_the_template_decides_the_format(name: str, expected: str) -> None:
    """Each public template is recognised as its family's format."""
    detection = detect_chat_format((FIXTURES / name).read_text())
    assert detection.format.name == expected, detection.reason


def test_a_model_without_a_template_is_recognised_by_its_special_tokens() -> None:
    """Gemma 3 270M ships no template; its `<start_of_turn>` token names the family."""
    detection = detect_chat_format(None, lambda text: text == "<start_of_turn>")
    assert detection.format.name == "gemma3"
    assert "<start_of_turn>" in detection.reason


def test_an_unknown_template_gets_the_generic_format() -> None:
    """SmolLM2's plain ChatML template names no family's markers."""
    source = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}{% endfor %}"
    assert detect_chat_format(source).format is FORMATS["generic"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_recorded_output_is_sorted_into_sections(case: dict[str, Any]) -> None:
    """Reasoning, content, undeterminable text and tool calls come out as the model meant."""
    chat_format = detect_chat_format((FIXTURES / case["template"]).read_text()).format
    assert chat_format.name == case["format"]
    got = run(chat_format, case, case["tokens"])
    expect = case["expect"]
    for section in (Section.REASONING, Section.CONTENT, Section.UNDETERMINED):
        assert got["text"][section].strip() == expect.get(section.value, ""), section
    assert got["calls"] == expect.get("tool_calls", [])
    assert sum(got["counts"].values()) == len(case["tokens"])
    if expect.get("tool_calls"):
        assert got["counts"][Section.TOOL_CALL] > 0


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_markers_split_across_tokens_give_the_same_result(case: dict[str, Any]) -> None:
    """One character per token splits every marker; nothing leaks and nothing changes."""
    chat_format = FORMATS[case["format"]]
    whole = run(chat_format, case, case["tokens"])
    chars = run(chat_format, case, list("".join(case["tokens"])))
    assert chars["text"] == whole["text"]
    assert chars["calls"] == whole["calls"]
    assert sum(chars["counts"].values()) == len("".join(case["tokens"]))


def test_qwen3_without_thinking_starts_in_content() -> None:
    """The template closes an empty `<think>` block itself; the answer is plain content."""
    case = next(c for c in CASES if c["id"] == "qwen3-no-thinking")
    parser = FORMATS["hermes"].parser(tools=False, prompt=render(case))
    assert parser.section is Section.CONTENT


def test_deepseek_starts_in_reasoning() -> None:
    """DeepSeek-R1's generation prompt ends with `<think>`: the first tokens are reasoning."""
    case = next(c for c in CASES if c["id"] == "deepseek-r1-reasoning")
    parser = FORMATS["deepseek_r1"].parser(tools=False, prompt=render(case))
    assert parser.section is Section.REASONING


def test_a_tool_call_json_probe_is_only_made_when_tools_were_offered() -> None:
    """Without tools, a JSON answer from Llama 3 streams at once instead of being held."""
    parser = FORMATS["llama3"].parser(tools=False)
    step = parser.feed('{"name": "x"')
    assert [p.text for p in step.pieces] == ['{"name": "x"']
    assert parser.held_tokens == 0


def test_a_held_json_message_counts_against_max_tokens_until_decided() -> None:
    """While a possible JSON call is held its tokens are held, not lost."""
    parser = FORMATS["llama3"].parser(tools=True)
    assert parser.feed('{"na').pieces == ()
    assert parser.held_tokens == 1
    step = parser.flush()
    assert [(p.section, p.text) for p in step.pieces] == [(Section.UNDETERMINED, '{"na')]


def test_broken_call_json_is_a_parse_failure() -> None:
    """A Mistral call whose arguments are cut off is reported, not dropped."""
    reader = FORMATS["mistral"].read_calls
    result = parse_tool_calls('get_weather[ARGS]{"city": ', VALIDATORS, reader)
    assert isinstance(result, ToolCallParseFailed)


def test_text_that_is_not_a_call_is_an_unrecognized_format() -> None:
    """Gemma's fence holding a statement that is not a call keeps the raw text."""
    result = parse_tool_calls("x = 1", VALIDATORS, FORMATS["gemma3"].read_calls)
    assert isinstance(result, UnrecognizedToolCallFormat)
    assert result.text == "x = 1"


def test_hermes_close_marker_outside_json_still_closes_a_non_json_body() -> None:
    """A body that is not JSON (an unbalanced quote) cannot hold the section open forever."""
    parser = FORMATS["hermes"].parser(tools=True)
    parser.feed("<tool_call>")
    step = parser.feed('say "hi</tool_call>after')
    assert [p.text for p in step.pieces if p.section is Section.TOOL_CALL] == ['say "hi', ""]
    assert parser.section is Section.CONTENT


def test_gpt_oss_forced_hermes_call_is_still_parsed() -> None:
    """The OpenAI layer's `tool_choice` grammar writes `<tool_call>`; harmony hands it over."""
    case = next(c for c in CASES if c["id"] == "gpt-oss-function-call")
    tokens = [
        "<tool",
        '_call>\n{"name": "get_weather", ',
        '"arguments": {"city": "Rome"}}\n',
        "</tool_call>",
    ]
    got = run(FORMATS["harmony"], case, tokens)
    assert got["calls"] == [{"name": "get_weather", "arguments": {"city": "Rome"}}]
    assert sum(got["counts"].values()) == len(tokens)


def test_gpt_oss_output_that_is_not_harmony_is_shown_not_swallowed() -> None:
    """A model that ignores the channels still answers: its text comes out undeterminable."""
    case = next(c for c in CASES if c["id"] == "gpt-oss-analysis-final")
    words = ["word "] * 80
    got = run(FORMATS["harmony"], case, words)
    assert got["text"][Section.UNDETERMINED] == "".join(words)
    assert sum(got["counts"].values()) == len(words)


def test_gpt_oss_short_plain_answer_is_shown_at_the_end() -> None:
    """A short answer with no header is held (it could still be one) and shown at the end."""
    case = next(c for c in CASES if c["id"] == "gpt-oss-analysis-final")
    got = run(FORMATS["harmony"], case, ["Paris", "."])
    assert got["text"][Section.UNDETERMINED] == "Paris."


def test_qwen_xml_tag_calls_are_read() -> None:
    """Qwen3-Coder's `<function=...><parameter=...>` calls inside `<tool_call>` parse too."""
    text = "\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n"
    result = parse_tool_calls(text, VALIDATORS, FORMATS["hermes"].read_calls)
    assert isinstance(result, ToolCallParsed)
    assert [(c.name, c.arguments) for c in result.calls] == [
        ("get_weather", ValidJson({"city": "Paris"}))
    ]


def test_a_forced_call_while_reasoning_is_still_a_call() -> None:
    """DeepSeek's prompt opens `<think>`; a `tool_choice` grammar's `<tool_call>` comes at once."""
    case = next(c for c in CASES if c["id"] == "deepseek-r1-tool-call")
    tokens = [
        "<tool_call>",
        '\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n',
        "</tool_call>",
    ]
    got = run(FORMATS["deepseek_r1"], case, tokens)
    assert got["calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert got["text"][Section.REASONING] == ""
