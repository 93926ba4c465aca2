"""OpenAPI documents for the three balancer services, written from the wire spec.

The services serve no schema (``openapi_config=None``) and their handlers read raw bodies,
so Litestar could only describe paths. These documents give schemathesis the body shapes of
spec §2.2-§2.4 (strict objects, externally tagged enums) so that its positive cases reach
the handlers' deeper checks and its negative cases break them one rule at a time.

Generation stays cheap on purpose: ``max_tokens`` is small in positive cases and the fuzz
cluster's context is short, so even a negative case with a huge ``max_tokens`` ends soon.
"""

from __future__ import annotations

from typing import Any

__all__ = ["inference_document", "management_document", "openai_document"]

MAX_TOKENS = {"type": "integer", "minimum": 1, "maximum": 8}
SHORT_TEXT = {"type": "string", "maxLength": 40}


def _strict(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _unit_or_tagged(units: list[str], tagged: dict[str, Any]) -> dict[str, Any]:
    """A serde externally tagged enum: bare strings for unit variants, one-key objects."""
    options: list[dict[str, Any]] = [{"type": "string", "enum": units}] if units else []
    options += [_strict({tag: body}) for tag, body in tagged.items()]
    return {"oneOf": options} if len(options) > 1 else options[0]


PART = {
    "oneOf": [
        _strict({"type": {"type": "string", "enum": ["text"]}, "text": SHORT_TEXT}),
        _strict(
            {
                "type": {"type": "string", "enum": ["image_url"]},
                "image_url": _strict({"url": SHORT_TEXT}),
            }
        ),
    ]
}
MESSAGE = _strict(
    {
        "role": {"type": "string", "enum": ["system", "user", "assistant", "tool"]},
        "content": {"oneOf": [SHORT_TEXT, {"type": "array", "items": PART, "maxItems": 2}]},
    }
)
GRAMMAR = {
    "nullable": True,
    "oneOf": [
        _strict(
            {
                "type": {"type": "string", "enum": ["gbnf"]},
                "grammar": {"type": "string", "maxLength": 60},
                "root": {"type": "string", "maxLength": 10},
            }
        ),
        _strict(
            {
                "type": {"type": "string", "enum": ["json_schema"]},
                "schema": {"type": "string", "maxLength": 80},
            }
        ),
    ],
}
TOOL = _strict(
    {
        "type": {"type": "string", "enum": ["function"]},
        "function": _strict(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 20},
                "description": SHORT_TEXT,
                "parameters": _strict(
                    {
                        "type": {"type": "string", "enum": ["object", "string", "array"]},
                        "properties": {"type": "object", "maxProperties": 2},
                        "required": {"type": "array", "items": SHORT_TEXT, "maxItems": 2},
                        "additionalProperties": {"type": "boolean"},
                    },
                    required=["type"],
                ),
            },
            required=["name"],
        ),
    }
)
CONVERSATION = _strict(
    {
        "add_generation_prompt": {"type": "boolean"},
        "conversation_history": {"type": "array", "items": MESSAGE, "maxItems": 3},
        "enable_thinking": {"type": "boolean"},
        "max_tokens": MAX_TOKENS,
        "grammar": GRAMMAR,
        "parse_tool_calls": {"type": "boolean"},
        "tools": {"type": "array", "items": TOOL, "maxItems": 2},
    },
    required=["add_generation_prompt", "conversation_history", "enable_thinking", "max_tokens"],
)
RAW_PROMPT = _strict(
    {
        "raw_prompt": {"type": "string", "maxLength": 80},
        "max_tokens": MAX_TOKENS,
        "grammar": GRAMMAR,
    },
    required=["raw_prompt", "max_tokens"],
)
EMBEDDING_BATCH = _strict(
    {
        "input_batch": {
            "type": "array",
            "items": _strict({"id": SHORT_TEXT, "content": SHORT_TEXT}),
            "maxItems": 3,
        },
        "normalization_method": _unit_or_tagged(
            ["None", "L2"], {"RmsNorm": _strict({"epsilon": {"type": "number"}})}
        ),
    }
)


def _document(title: str, paths: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": title, "version": "4.1.0"}, "paths": paths}


def _post(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "a stream or an answer"}},
        }
    }


def _get(parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"responses": {"200": {"description": "ok"}}}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def inference_document() -> dict[str, Any]:
    """Spec §2.2: the NDJSON endpoints (the WebSocket is fuzzed with hypothesis)."""
    return _document(
        "paddler inference",
        {
            "/health": _get(),
            "/api/v1/continue_from_conversation_history": _post(CONVERSATION),
            "/api/v1/continue_from_raw_prompt": _post(RAW_PROMPT),
            "/api/v1/generate_embedding_batch": _post(EMBEDDING_BATCH),
        },
    )


def management_document(agent_id: str) -> dict[str, Any]:
    """Spec §2.4, reads only: a PUT that succeeds would change the cluster under the fuzz
    (its bodies are fuzzed separately, always invalid, by ``test_fuzz_desired_state``)."""
    agent = [
        {
            "name": "agent_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 40, "example": agent_id},
        }
    ]
    return _document(
        "paddler management",
        {
            "/health": _get(),
            "/metrics": _get(),
            "/api/v1/agents": _get(),
            "/api/v1/buffered_requests": _get(),
            "/api/v1/balancer_desired_state": _get(),
            "/api/v1/balancer_applicable_state": _get(),
            "/api/v1/agent/{agent_id}/chat_template_override": _get(agent),
            "/api/v1/agent/{agent_id}/model_metadata": _get(agent),
        },
    )


OPENAI_MESSAGE = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "nullable": True,
            "oneOf": [
                SHORT_TEXT,
                {"type": "array", "items": PART, "maxItems": 2},
            ],
        },
        "tool_call_id": SHORT_TEXT,
    },
    "required": ["role", "content"],
}
SAMPLING = {
    "model": SHORT_TEXT,
    "stream": {"type": "boolean"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "seed": {"type": "integer"},
    "stop": {"oneOf": [SHORT_TEXT, {"type": "array", "items": SHORT_TEXT, "maxItems": 2}]},
}
OPENAI_TOOL = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 20},
                "parameters": {"type": "object"},
            },
            "required": ["name"],
        },
    },
    "required": ["type", "function"],
}
CHAT = {
    "type": "object",
    "properties": {
        **SAMPLING,
        "messages": {"type": "array", "items": OPENAI_MESSAGE, "minItems": 1, "maxItems": 3},
        "max_completion_tokens": MAX_TOKENS,
        "max_tokens": MAX_TOKENS,
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "tools": {"type": "array", "items": OPENAI_TOOL, "maxItems": 2},
        "tool_choice": {"oneOf": [{"type": "string", "enum": ["auto", "none", "required"]}]},
        "response_format": {
            "oneOf": [
                {"type": "object", "properties": {"type": {"type": "string", "enum": ["text"]}}},
                {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["json_object", "json_schema"]},
                        "json_schema": {"type": "object"},
                    },
                },
            ]
        },
    },
    "required": ["model", "messages", "max_completion_tokens"],
}
COMPLETION = {
    "type": "object",
    "properties": {**SAMPLING, "prompt": SHORT_TEXT, "max_tokens": MAX_TOKENS},
    "required": ["model", "prompt", "max_tokens"],
}
RESPONSES = {
    "type": "object",
    "properties": {
        **SAMPLING,
        "input": {"oneOf": [SHORT_TEXT, {"type": "array", "items": OPENAI_MESSAGE, "maxItems": 3}]},
        "instructions": SHORT_TEXT,
        "max_output_tokens": MAX_TOKENS,
        "reasoning": {"type": "object", "properties": {"effort": {"type": "string"}}},
        "text": {"type": "object", "properties": {"format": {"type": "object"}}},
        "tools": {"type": "array", "maxItems": 2, "items": {"type": "object"}},
    },
    "required": ["model", "input", "max_output_tokens"],
}
EMBEDDINGS = {
    "type": "object",
    "properties": {
        "model": SHORT_TEXT,
        "input": {"oneOf": [SHORT_TEXT, {"type": "array", "items": SHORT_TEXT, "maxItems": 3}]},
        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
        "dimensions": {"type": "integer"},
    },
    "required": ["model", "input"],
}


def openai_document() -> dict[str, Any]:
    """The OpenAI-compatible service (docs/openai.md)."""
    model = [
        {
            "name": "model_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 40},
        }
    ]
    return _document(
        "paddler openai",
        {
            "/health": _get(),
            "/v1/models": _get(),
            "/v1/models/{model_id}": _get(model),
            "/v1/chat/completions": _post(CHAT),
            "/v1/completions": _post(COMPLETION),
            "/v1/responses": _post(RESPONSES),
            "/v1/embeddings": _post(EMBEDDINGS),
        },
    )
