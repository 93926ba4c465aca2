"""OpenAI's error envelope, and how Paddler's failures map to its status codes.

Every failure the OpenAI layer reports becomes an ``OpenAIError``: before a response has
started it is sent as ``{"error": {"message", "type", "param", "code"}}`` with a fitting HTTP
status; after, the stream carries the same envelope in-band.
"""

from __future__ import annotations

from typing import Any

from paddler.balancer import failure_status
from paddler.errors import PaddlerError
from paddler.wire import ImageExceedsBatchSize, SamplerError, TokenGenerationDisabled

__all__ = [
    "RETRY_AFTER_SECONDS",
    "OpenAIError",
    "error_from_code",
    "error_from_paddler",
    "error_from_result",
    "invalid",
]

#: What a 503 (buffer full, shutting down) asks the client to wait before retrying.
RETRY_AFTER_SECONDS = 1

_TYPES = {400: "invalid_request_error", 404: "not_found_error", 504: "timeout"}
_CODES = {
    501: "generation_disabled",
    502: "agent_gone",
    503: "service_unavailable",
    504: "timeout",
}


class OpenAIError(Exception):
    """A failure with its HTTP status and OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code if code is not None else _CODES.get(status)
        self.type = type or _TYPES.get(status, "server_error")

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` on 503, as the OpenAI SDK's retry logic reads it."""
        return {"retry-after": str(RETRY_AFTER_SECONDS)} if self.status == 503 else {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid(param: str, message: str, *, code: str = "invalid_value") -> OpenAIError:
    """A 400 that names the offending field (``messages[2].role``)."""
    return OpenAIError(400, f"{param}: {message}", param=param, code=code)


def error_from_code(code: int, description: str) -> OpenAIError:
    """An ``ErrorEnvelope`` (503 overflow, 504 timeout, 502 agent gone, ...)."""
    status = code if 400 <= code <= 599 else 500
    return OpenAIError(status, description)


def error_from_paddler(exc: PaddlerError) -> OpenAIError:
    code = exc.code if 400 <= exc.code <= 599 else 500
    return OpenAIError(code, exc.description, param=getattr(exc, "field", None))


def error_from_result(result: object) -> OpenAIError:
    """A terminal error variant of ``GeneratedTokenResult``: the request's fault or the server's."""
    message = getattr(result, "message", None)
    if isinstance(result, ImageExceedsBatchSize):
        message = f"the image needs {result.image_tokens} tokens but n_batch is {result.n_batch}"
    text = f"{type(result).__name__}: {message}" if message else type(result).__name__
    status = failure_status(result) or 500
    if isinstance(result, TokenGenerationDisabled):
        return OpenAIError(501, text)
    if status == 400 and isinstance(result, SamplerError):  # a prompt that cannot fit
        return OpenAIError(400, text, param="messages", code="context_length_exceeded")
    return OpenAIError(status, text, code=_snake(type(result).__name__))


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
