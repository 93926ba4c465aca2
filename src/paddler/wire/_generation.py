"""What a generation stream yields (``GeneratedTokenResult``, spec §3.4)."""

from __future__ import annotations

from typing import Any

from attrs import frozen

from ._markers import newtype

__all__ = [
    "ChatTemplateError",
    "ContentToken",
    "DetokenizationFailed",
    "Done",
    "GeneratedTokenResult",
    "GrammarIncompatibleWithThinking",
    "GrammarInitializationFailed",
    "GrammarRejectedModelOutput",
    "GrammarSyntaxError",
    "ImageDecodingFailed",
    "ImageExceedsBatchSize",
    "InvalidJson",
    "MultimodalNotSupported",
    "ParsedToolCall",
    "ReasoningToken",
    "SamplerError",
    "TokenGenerationDisabled",
    "TokenUsage",
    "ToolCallArguments",
    "ToolCallParseFailed",
    "ToolCallParsed",
    "ToolCallToken",
    "ToolCallValidationFailed",
    "ToolSchemaInvalid",
    "UndeterminableToken",
    "UnrecognizedToolCallFormat",
    "ValidJson",
    "is_terminal",
]


@frozen(kw_only=True)
class TokenUsage:
    """Token counts of one request, sent in ``Done``."""

    prompt_tokens: int
    cached_prompt_tokens: int
    input_image_tokens: int
    input_audio_tokens: int
    content_tokens: int
    reasoning_tokens: int
    tool_call_tokens: int
    undeterminable_tokens: int

    @property
    def completion_tokens(self) -> int:
        """Content + reasoning + tool-call + undeterminable (what OpenAI calls completion)."""
        return (
            self.content_tokens
            + self.reasoning_tokens
            + self.tool_call_tokens
            + self.undeterminable_tokens
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@newtype
@frozen
class ValidJson:
    """Arguments that parsed as JSON (any JSON value)."""

    value: Any


@newtype
@frozen
class InvalidJson:
    """Arguments that are not JSON, passed through raw."""

    raw: str


ToolCallArguments = ValidJson | InvalidJson


@frozen
class ParsedToolCall:
    id: str
    name: str
    arguments: ToolCallArguments


@newtype
@frozen
class ContentToken:
    """A visible piece of the answer."""

    text: str


@newtype
@frozen
class ReasoningToken:
    """A piece of the model's thinking."""

    text: str


@newtype
@frozen
class ToolCallToken:
    """A raw piece of tool-call text (always streamed, parsed or not)."""

    text: str


@newtype
@frozen
class UndeterminableToken:
    """A piece the classifier could not yet place."""

    text: str


@newtype
@frozen
class ToolCallParsed:
    calls: tuple[ParsedToolCall, ...]


@newtype
@frozen
class ToolCallParseFailed:
    message: str


@newtype
@frozen
class ToolCallValidationFailed:
    messages: tuple[str, ...]


@frozen
class UnrecognizedToolCallFormat:
    text: str
    ffi_error_message: str


@frozen
class Done:
    """The normal end of a generation (also after a cancel, with the usage so far)."""

    usage: TokenUsage


@newtype
@frozen
class ChatTemplateError:
    message: str


@newtype
@frozen
class DetokenizationFailed:
    message: str


@newtype
@frozen
class GrammarIncompatibleWithThinking:
    message: str


@newtype
@frozen
class GrammarInitializationFailed:
    message: str


@newtype
@frozen
class GrammarRejectedModelOutput:
    message: str


@newtype
@frozen
class GrammarSyntaxError:
    message: str


@newtype
@frozen
class ImageDecodingFailed:
    message: str


@newtype
@frozen
class MultimodalNotSupported:
    message: str


@newtype
@frozen
class SamplerError:
    message: str


@newtype
@frozen
class TokenGenerationDisabled:
    message: str


@newtype
@frozen
class ToolSchemaInvalid:
    message: str


@frozen
class ImageExceedsBatchSize:
    image_tokens: int
    n_batch: int


GeneratedTokenResult = (
    ContentToken
    | ReasoningToken
    | ToolCallToken
    | UndeterminableToken
    | ToolCallParsed
    | ToolCallParseFailed
    | ToolCallValidationFailed
    | UnrecognizedToolCallFormat
    | Done
    | ChatTemplateError
    | DetokenizationFailed
    | GrammarIncompatibleWithThinking
    | GrammarInitializationFailed
    | GrammarRejectedModelOutput
    | GrammarSyntaxError
    | ImageDecodingFailed
    | ImageExceedsBatchSize
    | MultimodalNotSupported
    | SamplerError
    | TokenGenerationDisabled
    | ToolSchemaInvalid
)

_NON_TERMINAL = (
    ContentToken,
    ReasoningToken,
    ToolCallToken,
    UndeterminableToken,
    ToolCallParsed,
    ToolCallParseFailed,
    ToolCallValidationFailed,
    UnrecognizedToolCallFormat,
)


def is_terminal(result: GeneratedTokenResult) -> bool:
    """Whether this is the last item of its stream (``Done`` or an error)."""
    return not isinstance(result, _NON_TERMINAL)
