"""What a finished request counts as: ``ok``, ``cancelled``, or the status its client sees.

One classification for the balancer's counters and the OpenAI layer's HTTP statuses, so a
request that ends in ``ChatTemplateError`` is a 400 in both places.
"""

from __future__ import annotations

from paddler.wire import (
    ChatTemplateError,
    Done,
    EmbeddingDone,
    EmbeddingsDisabled,
    GrammarIncompatibleWithThinking,
    GrammarInitializationFailed,
    GrammarSyntaxError,
    ImageDecodingFailed,
    ImageExceedsBatchSize,
    MultimodalNotSupported,
    SamplerError,
    TokenGenerationDisabled,
    ToolSchemaInvalid,
)

__all__ = ["BAD_INPUT_RESULTS", "failure_status", "outcome_of"]

#: Terminal results that are the request's fault: the client sees 400.
BAD_INPUT_RESULTS = (
    GrammarIncompatibleWithThinking,
    GrammarSyntaxError,
    GrammarInitializationFailed,
    ImageDecodingFailed,
    ImageExceedsBatchSize,
    MultimodalNotSupported,
    ToolSchemaInvalid,
    ChatTemplateError,
)


def failure_status(result: object) -> int | None:
    """The status a terminal result stands for: None for success, 400 for bad input,
    501 when generation or embeddings are switched off, 500 for the server's own failures."""
    if isinstance(result, Done | EmbeddingDone):
        return None
    if isinstance(result, TokenGenerationDisabled | EmbeddingsDisabled):
        return 501
    if isinstance(result, BAD_INPUT_RESULTS) or _is_prompt_problem(result):
        return 400
    return 500


def _is_prompt_problem(result: object) -> bool:
    """The engine reports a prompt that is empty or cannot fit as a ``SamplerError`` (the wire
    has no variant for it), with a message that starts this way."""
    return isinstance(result, SamplerError) and result.message.startswith("The prompt is ")


def outcome_of(result: object, *, cancelled: bool = False) -> str:
    """The ``outcome`` label of a request that ended with ``result``."""
    status = failure_status(result)
    if status is None:
        return "cancelled" if cancelled else "ok"
    return str(status)
