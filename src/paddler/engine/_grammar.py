"""Grammar constraints: GBNF as given, JSON Schema converted to GBNF, both checked by llama.cpp."""

from __future__ import annotations

from llama_cpp.llama_grammar import json_schema_to_gbnf

from paddler.engine._grammar_limits import GrammarLimitError, check_gbnf, load_json_schema
from paddler.engine._llama import GrammarSampler, LlamaError, LlamaModel
from paddler.wire import (
    GbnfGrammar,
    GrammarConstraint,
    GrammarInitializationFailed,
    GrammarSyntaxError,
    JsonSchemaGrammar,
)

GrammarFailure = GrammarSyntaxError | GrammarInitializationFailed


def to_gbnf(constraint: GrammarConstraint) -> tuple[str, str] | GrammarSyntaxError:
    """The GBNF text and root rule of a constraint, or the syntax error to report.

    Limits are checked before the converter or llama.cpp's parser sees anything (see
    `paddler.engine._grammar_limits`).
    """
    if isinstance(constraint, GbnfGrammar):
        try:
            check_gbnf(constraint.grammar)
        except GrammarLimitError as exc:
            return GrammarSyntaxError(f"Grammar rejected: {exc}")
        return constraint.grammar, constraint.root
    assert isinstance(constraint, JsonSchemaGrammar)
    try:
        load_json_schema(constraint.schema)
    except GrammarLimitError as exc:
        return GrammarSyntaxError(f"JSON schema rejected: {exc}")
    except ValueError as exc:
        return GrammarSyntaxError(f"Invalid JSON schema: {exc}")
    try:
        gbnf = json_schema_to_gbnf(constraint.schema)
    except Exception as exc:  # the converter raises a variety of errors for bad schemas
        return GrammarSyntaxError(f"Invalid JSON schema: {exc}")
    try:
        check_gbnf(gbnf)
    except GrammarLimitError as exc:
        return GrammarSyntaxError(f"JSON schema rejected: its grammar is too large ({exc})")
    return gbnf, "root"


def make_grammar_sampler(
    model: LlamaModel, constraint: GrammarConstraint
) -> GrammarSampler | GrammarFailure:
    """A grammar sampler, or the error variant; a bad grammar never reaches a decode."""
    resolved = to_gbnf(constraint)
    if isinstance(resolved, GrammarSyntaxError):
        return resolved
    gbnf, root = resolved
    if not gbnf.strip():
        return GrammarSyntaxError("The grammar is empty")
    try:
        return GrammarSampler(model, gbnf, root)
    except LlamaError:
        return GrammarSyntaxError(f"llama.cpp could not parse the grammar (root rule '{root}')")
    except Exception as exc:
        return GrammarInitializationFailed(f"Grammar sampler failed to start: {exc}")
