"""Grammar constraints: GBNF as given, JSON Schema converted to GBNF, both checked by llama.cpp."""

from __future__ import annotations

import json

from llama_cpp.llama_grammar import json_schema_to_gbnf

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
    """The GBNF text and root rule of a constraint, or the syntax error to report."""
    if isinstance(constraint, GbnfGrammar):
        return constraint.grammar, constraint.root
    assert isinstance(constraint, JsonSchemaGrammar)
    try:
        json.loads(constraint.schema)
        return json_schema_to_gbnf(constraint.schema), "root"
    except Exception as exc:  # the converter raises a variety of errors for bad schemas
        return GrammarSyntaxError(f"Invalid JSON schema: {exc}")


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
