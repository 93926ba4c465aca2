"""Turn request params into an `ActiveRequest` (template, tokens, grammar, tools, sampler)."""

from __future__ import annotations

import logging
import weakref

import attrs

from paddler.engine._classifier import StopStringFilter
from paddler.engine._formats import ChatFormat, Detection, detect_chat_format
from paddler.engine._grammar import forced_tool_call_grammar, make_grammar_sampler
from paddler.engine._llama import GrammarSampler, LlamaModel
from paddler.engine._mtmd import Projector
from paddler.engine._multimodal import (
    ImageSpan,
    MultimodalPrompt,
    image_urls,
    tokenize_with_images,
)
from paddler.engine._request import ActiveRequest
from paddler.engine._sampling import RequestSampler, SamplingSettings
from paddler.engine._template import ChatTemplate, TemplateRenderError, message_to_template
from paddler.engine._tool_calls import ToolSchemaError, compile_tool_validators, tools_to_template
from paddler.wire import (
    ChatTemplateError,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GeneratedTokenResult,
    GrammarConstraint,
    GrammarIncompatibleWithThinking,
    GrammarSyntaxError,
    InferenceParameters,
    MultimodalNotSupported,
    SamplerError,
    SamplingOverrides,
    ToolSchemaInvalid,
)

GenerationParams = ContinueFromConversationHistoryParams | ContinueFromRawPromptParams

logger = logging.getLogger("paddler.engine")

_detections: weakref.WeakKeyDictionary[LlamaModel, dict[str | None, Detection]] = (
    weakref.WeakKeyDictionary()
)


def is_special_token(model: LlamaModel, text: str) -> bool:
    """True when `text` is one special token of the model's vocabulary (not plain text)."""
    special = model.tokenize(text, add_special=False, parse_special=True)
    plain = model.tokenize(text, add_special=False, parse_special=False)
    return len(special) == 1 and len(plain) > 1


def chat_format_of(model: LlamaModel, template: ChatTemplate | None) -> Detection:
    """The model's chat format, detected once per model and template (spec §6.5)."""
    source = template.source if template is not None else None
    per_model = _detections.setdefault(model, {})
    found = per_model.get(source)
    if found is None:
        found = detect_chat_format(source, lambda text: is_special_token(model, text))
        per_model[source] = found
        logger.info("chat format: %s (%s)", found.format.name, found.reason)
    return found


@attrs.frozen
class PrepareContext:
    model: LlamaModel
    template: ChatTemplate | None
    parameters: InferenceParameters
    n_ctx: int
    #: KV cells one request may fill (``LlamaContext.n_ctx_seq``); None = ``n_ctx``.
    n_ctx_seq: int | None = None
    #: The multimodal projection, when one is loaded: requests may then carry images.
    projector: Projector | None = None

    @property
    def chat_format(self) -> ChatFormat:
        return chat_format_of(self.model, self.template).format

    @property
    def prompt_limit(self) -> int:
        """A prompt must be shorter than this many tokens (one generated token must fit)."""
        return self.n_ctx_seq if self.n_ctx_seq is not None else self.n_ctx


def _prompt_too_long(model: LlamaModel, text: str, n_ctx: int) -> SamplerError | None:
    """Refuse, before tokenizing, a prompt that cannot fit the context whatever its tokens.

    A text of B bytes has at least B / longest-token tokens; only a text longer than the
    context in bytes needs the vocabulary's longest token (computed once per model).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size < n_ctx:
        return None
    longest = model.longest_piece()
    if size // longest < n_ctx:
        return None
    return SamplerError(
        f"The prompt is {size} bytes, at least {size // longest} tokens; "
        f"this agent's context holds {n_ctx} tokens per request"
    )


def _tokenize_prompt(model: LlamaModel, text: str) -> list[int]:
    """Tokenize with the model's BOS policy, without doubling a BOS the text already has."""
    tokens = model.tokenize(text, add_special=True, parse_special=True)
    if model.adds_bos and len(tokens) >= 2 and tokens[0] == tokens[1] == model.bos:
        del tokens[0]
    return tokens


def grammar_of(
    params: GenerationParams, overrides: SamplingOverrides | None
) -> GrammarConstraint | GrammarSyntaxError | None:
    """The request's grammar: its own, or the one its ``forced_tools`` call for (never both)."""
    forced = overrides.forced_tools if overrides is not None else ()
    if not forced:
        return params.grammar
    if params.grammar is not None:
        return GrammarSyntaxError("A forced tool call cannot be combined with a grammar")
    if not isinstance(params, ContinueFromConversationHistoryParams):
        return GrammarSyntaxError("A forced tool call needs a conversation request with tools")
    return forced_tool_call_grammar(params.tools, forced)


def prepare(
    request_id: int,
    params: GenerationParams,
    overrides: SamplingOverrides | None,
    ctx: PrepareContext,
    *,
    continuation: str | None = None,
) -> ActiveRequest | GeneratedTokenResult:
    """The request ready for a slot, or the terminal result that ends it at once.

    ``continuation`` resumes an answer another agent streamed part of: its text follows the
    rendered prompt, its tokens count as generated content (usage, ``max_tokens``), and the
    classifier and penalties see it as they saw it there. Only plain answers resume: a
    grammar's or a tool parser's state after that text is not rebuilt, so such a request is
    refused (the balancer never sends one).
    """
    validators = None
    offers_tools = False
    constraint = grammar_of(params, overrides)
    if isinstance(constraint, GrammarSyntaxError):
        return constraint
    if continuation and (
        constraint is not None
        or (isinstance(params, ContinueFromConversationHistoryParams) and params.tools)
    ):
        return SamplerError("An answer under a grammar or with tools cannot be continued")
    if isinstance(params, ContinueFromConversationHistoryParams):
        if constraint is not None and params.enable_thinking:
            return GrammarIncompatibleWithThinking(
                "Grammar constraints are incompatible with thinking mode"
            )
        try:
            compiled = compile_tool_validators(params.tools)
        except ToolSchemaError as exc:
            return ToolSchemaInvalid(str(exc))
        if params.parse_tool_calls and params.tools:
            validators = compiled
        offers_tools = bool(params.tools) and constraint is None
        urls = image_urls(params.conversation_history)
        if urls and ctx.projector is None:
            return MultimodalNotSupported(
                "This agent has no multimodal projection loaded; images are not supported"
            )
        if ctx.template is None:
            return ChatTemplateError("No chat template is loaded (embeddings mode)")
        messages = [message_to_template(m.role, m.content) for m in params.conversation_history]
        try:
            text = ctx.template.render(
                messages,
                add_generation_prompt=params.add_generation_prompt,
                enable_thinking=params.enable_thinking,
                tools=tools_to_template(params.tools),
            )
        except TemplateRenderError as exc:
            return ChatTemplateError(str(exc))
    else:
        text = params.raw_prompt
        urls = []
    too_long = _prompt_too_long(ctx.model, text, ctx.prompt_limit)
    if too_long is not None:
        return too_long
    images: list[ImageSpan] = []
    if urls and ctx.projector is not None:
        made = tokenize_with_images(
            ctx.projector,
            ctx.model,
            text,
            urls,
            max_side=ctx.parameters.image_resize_to_fit,
            n_batch=min(ctx.parameters.n_batch, ctx.n_ctx),  # llama.cpp clamps it to n_ctx
        )
        if not isinstance(made, MultimodalPrompt):
            return made
        prompt, images = made.keys, made.images
    else:
        prompt = _tokenize_prompt(ctx.model, text)
    continued: list[int] = []
    if continuation:
        continued = ctx.model.tokenize(continuation, add_special=False, parse_special=False)
        prompt = prompt + continued
    if len(prompt) >= ctx.prompt_limit:
        return SamplerError(
            f"The prompt is {len(prompt)} tokens; this agent's context holds "
            f"{ctx.prompt_limit} per request (and needs room for at least one generated token)"
        )
    grammar: GrammarSampler | None = None
    if constraint is not None:
        constrained = make_grammar_sampler(ctx.model, constraint)
        if not isinstance(constrained, GrammarSampler):
            return constrained
        grammar = constrained
    settings = SamplingSettings.resolve(ctx.parameters, overrides)
    sampler = RequestSampler(settings, grammar, n_ctx=ctx.n_ctx, n_vocab=ctx.model.n_vocab)
    sampler.prime(prompt)
    chat_format = ctx.chat_format
    return ActiveRequest(
        id=request_id,
        prompt=prompt,
        max_tokens=params.max_tokens,
        sampler=sampler,
        # primed with the prompt: a template that opens `<think>` starts the answer in it
        classifier=chat_format.parser(tools=offers_tools, prompt=text + (continuation or "")),
        stop_filter=StopStringFilter(overrides.stop if overrides else ()),
        tool_validators=validators,
        images=images,
        read_calls=chat_format.read_calls,
        continued_tokens=len(continued),
        content_tokens=len(continued),
    )
