"""Grammar and JSON-schema limits: pure checks that run before any conversion."""

from __future__ import annotations

import json

import pytest

from paddler.engine._grammar import to_gbnf
from paddler.wire import GbnfGrammar, GrammarSyntaxError, JsonSchemaGrammar
from paddler.wire._grammar_limits import (
    MAX_GBNF_BYTES,
    MAX_GBNF_NESTING,
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_REPETITION,
    GrammarLimitError,
    check_gbnf,
    check_json_schema,
    load_json_schema,
    pattern_repetition,
)


def test_string_bomb_is_rejected_naming_the_keyword():
    """maxLength 10,000,000 (an 80 MB grammar once converted) is refused where it stands."""
    schema = {"type": "object", "properties": {"bio": {"type": "string", "maxLength": 10**7}}}
    with pytest.raises(GrammarLimitError) as info:
        check_json_schema(schema)
    assert info.value.location == ("properties", "bio", "maxLength")
    assert str(info.value).startswith("properties.bio.maxLength: 10000000 is larger")


@pytest.mark.parametrize("keyword", ["minLength", "minItems", "maxItems", "maxProperties"])
def test_every_repetition_bound_is_limited(keyword):
    """All the bounds the converter expands into copies of a rule are capped."""
    check_json_schema({keyword: MAX_SCHEMA_REPETITION})
    with pytest.raises(GrammarLimitError):
        check_json_schema({keyword: MAX_SCHEMA_REPETITION + 1})


def test_nested_pattern_counts_multiply():
    """``(a{100}){100}`` expands to 10,000 copies; sequential counts do not multiply."""
    assert pattern_repetition(r"^(a{100}){100}$") == 10_000
    assert pattern_repetition(r"^\d{4}-\d{2}-\d{2}$") == 4
    assert pattern_repetition(r"^[a-z{}]{3,64}@x{2}$") == 64
    assert pattern_repetition(r"^\{5000\}$") == 1  # escaped braces are literals
    with pytest.raises(GrammarLimitError) as info:
        check_json_schema({"type": "string", "pattern": "^(a{100}){100}$"})
    assert info.value.location == ("pattern",)


def test_remote_refs_are_refused():
    """The converter would fetch an https $ref over the network; only local refs pass."""
    check_json_schema({"$defs": {"x": {"type": "integer"}}, "$ref": "#/$defs/x"})
    with pytest.raises(GrammarLimitError, match="only local references"):
        check_json_schema({"$ref": "https://example.invalid/schema.json"})


def test_data_keywords_are_not_read_as_schemas():
    """An enum value that looks like a schema keyword is data, not a bound."""
    check_json_schema({"enum": [{"maxLength": 10**9}], "const": {"pattern": "(a{999}){999}"}})


def test_depth_and_size_are_limited():
    """A deep or huge schema is refused before json_schema_to_gbnf sees it."""
    deep: dict[str, object] = {"type": "string"}
    for _ in range(200):
        deep = {"type": "array", "items": deep}
    with pytest.raises(GrammarLimitError, match="nested deeper"):
        check_json_schema(deep)
    with pytest.raises(GrammarLimitError, match="nested deeper"):
        load_json_schema("[" * 100_000 + "]" * 100_000)
    big = json.dumps({"enum": ["x" * 1000] * (MAX_SCHEMA_BYTES // 1000)})
    with pytest.raises(GrammarLimitError, match="bytes"):
        load_json_schema(big)


def test_gbnf_limits():
    """Size, group nesting (llama.cpp's parser recursion) and {m,n} counts of GBNF text."""
    check_gbnf('root ::= ("a" | "(") [)(] "b"{2,5} # ((((( a comment\n')
    with pytest.raises(GrammarLimitError, match="bytes"):
        check_gbnf("root ::= " + '"a" ' * (MAX_GBNF_BYTES // 4))
    depth = MAX_GBNF_NESTING + 1
    with pytest.raises(GrammarLimitError, match="nests groups"):
        check_gbnf("root ::= " + '("a" ' * depth + ")?" * depth)
    with pytest.raises(GrammarLimitError, match="repeats"):
        check_gbnf('root ::= "a"{0,99999}')


def test_engine_reports_limits_as_grammar_syntax_errors():
    """The engine's conversion step gives the spec's terminal GrammarSyntaxError, quickly."""
    bomb = JsonSchemaGrammar(json.dumps({"type": "string", "maxLength": 10**7}))
    result = to_gbnf(bomb)
    assert isinstance(result, GrammarSyntaxError)
    assert "maxLength" in result.message
    deep = GbnfGrammar(grammar="root ::= " + '("a" ' * 30_000 + ")?" * 30_000, root="root")
    result = to_gbnf(deep)
    assert isinstance(result, GrammarSyntaxError)
    assert "nests groups" in result.message
    ok = to_gbnf(JsonSchemaGrammar(json.dumps({"type": "string", "maxLength": 20})))
    assert isinstance(ok, tuple)


def test_grammar_problem_names_the_field_for_a_400():
    """The check a server runs before dispatch: a JSON path and a message, or None."""
    from paddler.wire._grammar_limits import grammar_problem

    bomb = JsonSchemaGrammar(json.dumps({"properties": {"bio": {"maxLength": 10**7}}}))
    field, message = grammar_problem(bomb) or ("", "")
    assert field == "$.grammar.schema.properties.bio.maxLength"
    assert "larger than the limit" in message
    deep = GbnfGrammar(grammar="root ::= " + '("a" ' * 5000 + ")?" * 5000, root="root")
    assert grammar_problem(deep) == (
        "$.grammar.grammar",
        f"the grammar nests groups deeper than {MAX_GBNF_NESTING} levels",
    )
    assert grammar_problem(JsonSchemaGrammar("{nope")) is not None
    assert grammar_problem(GbnfGrammar(grammar='root ::= "a"', root="root")) is None
    assert grammar_problem(None) is None
