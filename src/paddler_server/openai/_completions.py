"""``POST /v1/completions``: the legacy text completion, mapped to a raw-prompt request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from paddler._ids import openai_id
from paddler.wire import DEFAULT_POOL, ContinueFromRawPromptParams, SamplingOverrides
from paddler_server.openai._chat_request import read_grammar_extension
from paddler_server.openai._errors import invalid
from paddler_server.openai._fields import Object, opt_bool, opt_int, opt_object, opt_str
from paddler_server.openai._generation import generate, sse_results
from paddler_server.openai._respond import Responder, sse_event
from paddler_server.openai._sampling import read_sampling
from paddler_server.openai._turn import Turn, now

if TYPE_CHECKING:
    from paddler.balancer import Balancer

__all__ = ["CompletionRequest", "answer_completion", "read_completion_request"]

#: OpenAI's default for this endpoint.
DEFAULT_MAX_TOKENS = 16


@attrs.frozen
class CompletionRequest:
    params: ContinueFromRawPromptParams
    overrides: SamplingOverrides | None
    model: str | None
    stream: bool
    include_usage: bool
    echo: bool


def _read_prompt(body: Object) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        raise invalid(
            "prompt", "only one prompt per request is supported", code="unsupported_value"
        )
    if not isinstance(prompt, str):
        raise invalid("prompt", "expected a string (token arrays are not supported)")
    if not prompt:
        # The engine has nothing to continue from; it would fail later as a 500.
        raise invalid("prompt", "must not be empty")
    return prompt


def read_completion_request(body: Object) -> CompletionRequest:
    for name in ("n", "best_of"):
        value = opt_int(body, name)
        if value is not None and value != 1:
            raise invalid(name, f"only {name}=1 is supported", code="unsupported_value")
    if body.get("logprobs") is not None:
        raise invalid("logprobs", "log probabilities are not supported", code="unsupported_value")
    if body.get("suffix"):
        raise invalid(
            "suffix", "suffix (fill-in-the-middle) is not supported", code="unsupported_value"
        )
    if body.get("logit_bias"):
        raise invalid("logit_bias", "logit bias is not supported", code="unsupported_value")
    options = opt_object(body, "stream_options")
    return CompletionRequest(
        params=ContinueFromRawPromptParams(
            raw_prompt=_read_prompt(body),
            max_tokens=opt_int(body, "max_tokens", minimum=1) or DEFAULT_MAX_TOKENS,
            grammar=read_grammar_extension(body),
        ),
        overrides=read_sampling(body),
        model=opt_str(body, "model"),
        stream=bool(opt_bool(body, "stream")),
        include_usage=bool(options and opt_bool(options, "include_usage", "stream_options")),
        echo=bool(opt_bool(body, "echo")),
    )


def _usage(turn: Turn) -> dict[str, Any]:
    assert turn.usage is not None
    return {
        "prompt_tokens": turn.usage.prompt_tokens,
        "completion_tokens": turn.usage.completion_tokens,
        "total_tokens": turn.usage.total_tokens,
    }


async def answer_completion(
    balancer: Balancer,
    request: CompletionRequest,
    model: str,
    responder: Responder,
    *,
    pool: str = DEFAULT_POOL,
) -> None:
    completion_id = openai_id("cmpl-")
    created = now()
    turn = Turn(max_tokens=request.params.max_tokens)
    prefix = request.params.raw_prompt if request.echo else ""

    def body(text: str, finish_reason: str | None, **extra: Any) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_paddler",
            "choices": [
                {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
            ],
            **extra,
        }

    async with generate(balancer, request.params, request.overrides, pool=pool) as results:
        if not request.stream:
            async for result in results:
                turn.feed(result)
            await responder.json(body(prefix + turn.text, turn.finish_reason, usage=_usage(turn)))
            return
        async with sse_results(results, responder) as stream:
            if prefix:
                await responder.send(sse_event(body(prefix, None)))
            async for result in stream:
                delta = turn.feed(result)
                if delta is not None and delta[0] == "content" and delta[1]:
                    await responder.send(sse_event(body(delta[1], None)), hold=results.ready)
            await responder.send(sse_event(body("", turn.finish_reason)))
            if request.include_usage and turn.usage is not None:
                usage_chunk = body("", None, usage=_usage(turn))
                usage_chunk["choices"] = []
                await responder.send(sse_event(usage_chunk))
