"""The one converter between wire classes and Paddler's exact JSON (cattrs ``preconf`` shape).

``make_converter()`` builds a fresh ``WireConverter``; ``configure_converter(c)`` registers our
hooks on any cattrs ``Converter``. ``paddler.wire.converter`` is the shared instance.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar, overload

import attrs
from cattrs import Converter
from cattrs.errors import AttributeValidationNote, ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.strategies import configure_tagged_union

from . import _agent_socket as agent
from . import _embedding as emb
from . import _generation as gen
from . import _inference_socket as inf
from . import _issues as issues
from . import _requests as req
from . import _sampling as sampling
from . import _snapshots as snapshots
from . import _state as state
from ._errors import WireError, WireProblem, describe_structure_error
from ._json import DEFAULT_MAX_JSON_DEPTH, F32_OVERFLOW, parse_json
from ._markers import F32, REQUIRED_KEY, to_f32, to_f32_list
from ._strategies import configure_externally_tagged_union, union_members

__all__ = ["WireConverter", "configure_converter", "make_converter"]

T = TypeVar("T")

_TAGS: dict[type, str] = {
    state.NoModel: "None",
    state.HuggingFaceModel: "HuggingFace",
    state.LocalToAgentModel: "LocalToAgent",
    state.UrlModel: "Url",
    emb.NoNormalization: "None",
    emb.EmbeddingDone: "Done",
    emb.EmbeddingError: "Error",
    req.ContinueFromConversationHistoryParams: "ContinueFromConversationHistory",
    req.ContinueFromRawPromptParams: "ContinueFromRawPrompt",
    emb.GenerateEmbeddingBatchParams: "GenerateEmbeddingBatch",
    agent.ChatTemplateOverrideResponse: "ChatTemplateOverride",
    agent.ModelMetadataResponse: "ModelMetadata",
    agent.AgentRequest: "Request",
    agent.AgentResponse: "Response",
    inf.InferenceRequest: "Request",
    inf.ResponseEnvelope: "Response",
    inf.ErrorEnvelope: "Error",
    inf.TokenGenerationDisabledNotification: "TokenGenerationDisabled",
    inf.TokenGenerationEnabledNotification: "TokenGenerationEnabled",
}

# Wire key names that are not the attribute name.
_RENAMES: dict[tuple[type, str], str] = {
    (req.ValidatedParametersSchema, "additional_properties"): "additionalProperties",
}

# Optional fields that serde leaves out (instead of writing null) when absent; and our own
# extension fields, left out at their default (None, or an empty ``stop``).
_OMIT_IF_NONE: set[tuple[type, str]] = {
    (req.ValidatedParametersSchema, "properties"),
    (req.ValidatedParametersSchema, "required"),
    (req.ValidatedParametersSchema, "additional_properties"),
    (req.Function, "parameters"),
    (agent.AgentRequest, "sampling_overrides"),
    (agent.AgentRequest, "continuation"),
    (emb.Embedding, "document_tokens"),
    (snapshots.SlotAggregatedStatusSnapshot, "cached_prefixes"),
    *((sampling.SamplingOverrides, a.name) for a in attrs.fields(sampling.SamplingOverrides)),
}

# Externally tagged unions, in the order that decides a class's "home" union for dumps().
_EXTERNAL: list[tuple[str, Any, dict[str, Any]]] = [
    ("AgentDesiredModel", state.AgentDesiredModel, {}),
    ("EmbeddingNormalizationMethod", emb.EmbeddingNormalizationMethod, {}),
    ("ToolCallArguments", gen.ToolCallArguments, {}),
    ("GeneratedTokenResult", gen.GeneratedTokenResult, {}),
    ("EmbeddingResult", emb.EmbeddingResult, {}),
    ("AgentIssue", issues.AgentIssue, {}),
    (
        "BalancerToAgentMessage",
        agent.BalancerToAgentMessage,
        {"Notification": agent.BalancerNotification},
    ),
    (
        "AgentToBalancerMessage",
        agent.AgentToBalancerMessage,
        {"Notification": agent.AgentNotification},
    ),
    (
        "InferenceServerMessage",
        inf.InferenceServerMessage,
        {"Notification": agent.StopRespondingTo},
    ),
    (
        "InferenceClientMessage",
        inf.InferenceClientMessage,
        {"Notification": inf.InferenceClientNotification},
    ),
    ("AgentRequestPayload", agent.AgentRequestPayload, {}),
    ("InferenceRequestPayload", inf.InferenceRequestPayload, {}),
    (
        "ResponsePayload",
        agent.ResponsePayload,
        {"GeneratedToken": gen.GeneratedTokenResult, "Embedding": emb.EmbeddingResult},
    ),
]
# Request bodies are documents of their own (HTTP bodies), never written as a variant by default.
_NOT_HOMED = {
    req.ContinueFromConversationHistoryParams,
    req.ContinueFromRawPromptParams,
    emb.GenerateEmbeddingBatchParams,
}

_INTERNAL: list[tuple[Any, dict[type, str]]] = [
    (req.ContentPart, {req.TextPart: "text", req.ImageUrlPart: "image_url"}),
    (req.GrammarConstraint, {req.GbnfGrammar: "gbnf", req.JsonSchemaGrammar: "json_schema"}),
]


def _tag(cl: type) -> str:
    return _TAGS.get(cl, cl.__name__)


def _strict(expected: type, *accepted: type) -> Callable[[Any, Any], Any]:
    """serde does not coerce: ``"5"`` is not an int and ``1`` is not a bool."""
    allowed = accepted or (expected,)

    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and expected is not bool:
            raise WireProblem(f"invalid value for type, expected {expected.__name__}")
        if not isinstance(value, allowed):
            raise WireProblem(f"invalid value for type, expected {expected.__name__}")
        return expected(value)

    return structure


def _structure_enum(value: Any, cl: type[enum.Enum]) -> enum.Enum:
    """Our enums are ``StrEnum``s: without this, cattrs would read them as plain ``str``."""
    if not isinstance(value, str):
        raise WireProblem(f"invalid value for type, expected {cl.__name__}")
    try:
        return cl(value)
    except ValueError:
        expected = ", ".join(str(member.value) for member in cl)
        raise WireProblem(f"unknown {cl.__name__} {value!r}, expected one of: {expected}") from None


def _structure_float(value: Any, _: Any) -> float:
    """A finite double: ints are accepted (serde reads ``1`` as ``1.0``) unless they overflow."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireProblem("invalid value for type, expected float")
    try:
        number = float(value)
    except OverflowError:
        raise WireProblem("number out of range for a float") from None
    if not math.isfinite(number):
        raise WireProblem("number out of range for a float (NaN and infinity are not allowed)")
    return number


def _structure_f32(value: Any, _: Any) -> float:
    number = _structure_float(value, None)
    if abs(number) >= F32_OVERFLOW:
        raise WireProblem(f"number out of range for an f32 (|value| must be below {F32_MAX:g})")
    return to_f32(number)


#: The largest finite f32, for messages.
F32_MAX = 3.4028234663852886e38


def _structure_f32_vector(value: Any, _: Any) -> tuple[float, ...]:
    """Vectors are read as given (Rust already wrote shortest f32 decimals); see ``to_f32``."""
    if not isinstance(value, list):
        raise WireProblem("invalid value for type, expected a list of floats")
    for index, item in enumerate(value):
        if type(item) is not float and (isinstance(item, bool) or not isinstance(item, int)):
            raise WireProblem(f"invalid value at index {index}, expected float")
    try:
        values = tuple(map(float, value))
    except OverflowError:
        raise WireProblem("number out of range for an f32 in the vector") from None
    if values and not (max(values) < F32_OVERFLOW and min(values) > -F32_OVERFLOW):
        index = next(i for i, v in enumerate(values) if not abs(v) < F32_OVERFLOW)
        raise WireProblem(f"invalid value at index {index}, number out of range for an f32")
    return values


def _missing(cl: type, names: list[str], extra: set[str]) -> ClassValidationError:
    errors: list[Exception] = [ForbiddenExtraKeysError("", cl, extra)] if extra else []
    for name in names:
        error = KeyError(name)
        error.add_note(AttributeValidationNote(f"Required field {name!r} missing", name, None))
        errors.append(error)
    return ClassValidationError(f"While structuring {cl.__name__}", errors, cl)


def _attrs_structure_factory(converter: Converter) -> Callable[[type], Any]:
    def factory(cl: type) -> Any:
        fields = attrs.fields(attrs.resolve_types(cl))
        overrides: dict[str, Any] = {
            a.name: override(rename=_RENAMES[(cl, a.name)])
            for a in fields
            if (cl, a.name) in _RENAMES
        }
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cl, converter, _cattrs_forbid_extra_keys=True, **overrides
        )
        known = {_RENAMES.get((cl, a.name), a.name) for a in fields}
        required = [
            _RENAMES.get((cl, a.name), a.name) for a in fields if a.metadata.get(REQUIRED_KEY)
        ]

        def structure(value: Any, _: Any) -> Any:
            if not isinstance(value, dict):
                raise WireProblem(f"expected an object ({cl.__name__})")
            missing = [name for name in required if name not in value]
            if missing:
                raise _missing(cl, missing, set(value) - known)
            return inner(value, cl)

        return structure

    return factory


def _attrs_unstructure_factory(converter: Converter) -> Callable[[type], Any]:
    def factory(cl: type) -> Any:
        fields = attrs.fields(attrs.resolve_types(cl))
        overrides: dict[str, Any] = {}
        for a in fields:
            key = (cl, a.name)
            if key in _RENAMES or key in _OMIT_IF_NONE:
                overrides[a.name] = override(
                    rename=_RENAMES.get(key), omit_if_default=key in _OMIT_IF_NONE
                )
        return make_dict_unstructure_fn(cl, converter, **overrides)

    return factory


class WireConverter(Converter):
    """A cattrs ``Converter`` with ``loads``/``dumps`` for compact JSON text."""

    home_unions: dict[type, Any]

    @overload
    def loads(self, data: str | bytes | bytearray, cls: type[T], *, max_depth: int = ...) -> T: ...
    @overload
    def loads(self, data: str | bytes | bytearray, cls: object, *, max_depth: int = ...) -> Any: ...
    def loads(
        self, data: str | bytes | bytearray, cls: Any, *, max_depth: int = DEFAULT_MAX_JSON_DEPTH
    ) -> Any:
        """Parse JSON text into ``cls``; raises ``WireError`` naming the path of each problem.

        NaN, infinities, numbers that overflow and nesting deeper than ``max_depth`` are
        rejected as invalid JSON (see ``parse_json``).
        """
        value = parse_json(data, max_depth=max_depth)
        try:
            return self.structure(value, cls)
        except RecursionError:
            raise WireError(["$: document is nested too deeply"]) from None
        except Exception as exc:
            raise WireError(describe_structure_error(exc)) from exc

    def dumps(self, obj: Any, cls: Any = None) -> str:
        """Compact JSON text. Without ``cls``, a variant class is written as its union."""
        if cls is None:
            cls = getattr(self, "home_unions", {}).get(obj.__class__, obj.__class__)
        return json.dumps(
            self.unstructure(obj, cls),
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        )


def configure_converter(converter: Converter) -> None:
    """Register every hook the wire classes need on ``converter``."""
    converter.register_structure_hook(str, _strict(str))
    converter.register_structure_hook(int, _strict(int))
    converter.register_structure_hook(bool, _strict(bool))
    converter.register_structure_hook(float, _structure_float)
    # singledispatch goes by MRO: StrEnum comes before str, so our enums get this hook.
    converter.register_structure_hook(enum.StrEnum, _structure_enum)
    converter.register_structure_hook(enum.Enum, _structure_enum)
    converter.register_structure_hook_func(lambda t: t == F32, _structure_f32)
    converter.register_unstructure_hook_func(lambda t: t == F32, to_f32)
    converter.register_structure_hook_func(lambda t: t == tuple[F32, ...], _structure_f32_vector)
    converter.register_unstructure_hook_func(lambda t: t == tuple[F32, ...], to_f32_list)

    def structure_content(value: Any, _: Any) -> str | tuple[req.ContentPart, ...]:
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            parts: tuple[req.ContentPart, ...] = converter.structure(
                value, tuple[req.ContentPart, ...]
            )
            return parts
        raise WireProblem("expected a string or a list of content parts")

    def unstructure_content(value: str | tuple[req.ContentPart, ...]) -> Any:
        if isinstance(value, str):
            return value
        return converter.unstructure(value, tuple[req.ContentPart, ...])

    content_type = str | tuple[req.ContentPart, ...]
    converter.register_structure_hook_func(lambda t: t == content_type, structure_content)
    converter.register_unstructure_hook_func(lambda t: t == content_type, unstructure_content)

    converter.register_structure_hook_factory(attrs.has, _attrs_structure_factory(converter))
    converter.register_unstructure_hook_factory(attrs.has, _attrs_unstructure_factory(converter))

    for union, tags in _INTERNAL:
        configure_tagged_union(union, converter, tag_generator=tags.__getitem__, tag_name="type")
        _check_internal_tags(converter, union, tags)

    homes: dict[type, Any] = {}
    for union, tags in _INTERNAL:
        homes.update(dict.fromkeys(tags, union))
    for name, union, groups in _EXTERNAL:
        configure_externally_tagged_union(
            union, converter, tag_generator=_tag, groups=groups, name=name
        )
        for member in union_members(union):
            if member not in _NOT_HOMED:
                homes.setdefault(member, union)
    for union, _ in _INTERNAL:
        _configure_optional(converter, union)
    for _, union, _ in _EXTERNAL:
        _configure_optional(converter, union)
    if isinstance(converter, WireConverter):
        converter.home_unions = homes


def _check_internal_tags(converter: Converter, union: Any, tags: dict[type, str]) -> None:
    """Give an unknown or missing ``"type"`` a clear message (cattrs raises a bare KeyError)."""
    inner = converter.get_structure_hook(union)
    names = sorted(tags.values())

    def structure(value: Any, cl: Any) -> Any:
        if not isinstance(value, dict):
            raise WireProblem('expected an object with a "type" key')
        if "type" not in value:
            raise WireProblem(f'missing "type", expected one of: {", ".join(names)}')
        if value["type"] not in names:
            raise WireProblem(
                f"unknown type {value['type']!r}, expected one of: {', '.join(names)}"
            )
        return inner(value, cl)

    converter.register_structure_hook(union, structure)


def _configure_optional(converter: Converter, union: Any) -> None:
    """``U | None`` goes through our hooks for ``U`` (cattrs would treat it as a new union)."""
    optional = union | None

    def structure(value: Any, _: Any) -> Any:
        return None if value is None else converter.structure(value, union)

    def unstructure(value: Any) -> Any:
        return None if value is None else converter.unstructure(value, union)

    converter.register_structure_hook_func(lambda t: t == optional, structure)
    converter.register_unstructure_hook_func(lambda t: t == optional, unstructure)


def make_converter() -> WireConverter:
    """A new converter configured for Paddler's wire format (strict: extra keys rejected)."""
    converter = WireConverter(forbid_extra_keys=True)
    configure_converter(converter)
    return converter
