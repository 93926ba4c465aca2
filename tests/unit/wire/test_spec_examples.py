"""Every JSON example of the wire spec §2 to §5 reads into our classes and writes back the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from paddler import wire
from paddler.wire import converter

USAGE = (
    '{"prompt_tokens":12,"cached_prompt_tokens":0,"input_image_tokens":0,"input_audio_tokens":0,'
    '"content_tokens":40,"reasoning_tokens":0,"tool_call_tokens":0,"undeterminable_tokens":0}'
)
PARAMS = converter.dumps(wire.InferenceParameters())
STATUS = (
    '{"desired_slots_total":4,"slots_total":0,"slots_processing":0,"download_current":0,'
    '"download_total":0,"download_indeterminate":true,"download_filename":null,'
    '"issues":[{"ModelFileDoesNotExist":{"model_path":"/m.gguf"}}],"model_path":null,'
    '"state_application_status":"Fresh","uses_chat_template_override":false,"version":17}'
)
CONVERSATION = """
{ "add_generation_prompt": true,
  "conversation_history": [
     {"role":"system","content":"You are..."},
     {"role":"user","content":[{"type":"text","text":"What is this?"},
                               {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],
  "enable_thinking": false,
  "max_tokens": 256,
  "grammar": null,
  "parse_tool_calls": false,
  "tools": [ {"type":"function","function":{"name":"get_weather","description":"...",
              "parameters":{"type":"object","properties":{"city":{"type":"string"}},
                            "required":["city"],"additionalProperties":false}}} ]
}"""
RAW_PROMPT = '{ "raw_prompt": "<|im_start|>user...", "max_tokens": 100, "grammar": null }'
EMBED_BATCH = '{ "input_batch": [ {"id":"doc-1","content":"text"} ], "normalization_method": "L2" }'
AGENT_SNAPSHOT = (
    '{"id":"a1","name":"llm-1","desired_slots_total":4,"slots_total":4,"slots_processing":1,'
    '"download_current":123,"download_total":456,"download_filename":"x.gguf",'
    '"download_indeterminate":false,"issues":[],"model_path":"/root/.cache/model.gguf",'
    '"state_application_status":"Applied","uses_chat_template_override":false}'
)
DESIRED_STATE = (
    '{"chat_template_override":{"content":"{% for m in messages %}..."},'
    '"use_chat_template_override":false,'
    '"model":{"HuggingFace":{"repo_id":"Qwen/Qwen3-0.6B-GGUF","revision":"main",'
    '"filename":"Qwen3-0.6B-Q8_0.gguf"}},'
    '"multimodal_projection":"None","inference_parameters":' + PARAMS + "}"
)
AGENT_STATE = (
    '{"chat_template_override":null,"inference_parameters":' + PARAMS + ","
    '"model":{"LocalToAgent":"/abs/path/on/agent.gguf"},"multimodal_projection":"None"}'
)


def _response(payload: str, generated_by: str = "null") -> str:
    return (
        '{"Response":{"generated_by":'
        + generated_by
        + ',"request_id":"r1","response":'
        + payload
        + "}}"
    )


GENERATED = [
    '{"ContentToken":"Hel"}',
    '{"ReasoningToken":"..."}',
    '{"ToolCallToken":"<tool_call>"}',
    '{"UndeterminableToken":"x"}',
    '{"ToolCallParsed":[{"id":"c1","name":"get_weather","arguments":{"ValidJson":{"city":"Paris"}}},'
    '{"id":"c2","name":"f","arguments":{"InvalidJson":"{oops"}}]}',
    '{"ToolCallParseFailed":"bad"}',
    '{"ToolCallValidationFailed":["unknown tool","missing city"]}',
    '{"UnrecognizedToolCallFormat":{"text":"raw","ffi_error_message":"nope"}}',
    '{"Done":{"usage":' + USAGE + "}}",
    *(
        '{"' + name + '":"message"}'
        for name in [
            "ChatTemplateError",
            "DetokenizationFailed",
            "GrammarIncompatibleWithThinking",
            "GrammarInitializationFailed",
            "GrammarRejectedModelOutput",
            "GrammarSyntaxError",
            "ImageDecodingFailed",
            "MultimodalNotSupported",
            "SamplerError",
            "TokenGenerationDisabled",
            "ToolSchemaInvalid",
        ]
    ),
    '{"ImageExceedsBatchSize":{"image_tokens":3000,"n_batch":2048}}',
]
EMBEDDINGS = [
    '{"Embedding":{"embedding":[0.1,-0.25,1e-06],"normalization_method":"L2",'
    '"pooling_type":"Last","source_document_id":"doc-1"}}',
    '{"DocumentExceedsBatchSize":{"document_tokens":5000,"n_batch":2048,'
    '"source_document_id":"doc-2"}}',
    '"Done"',
    '"EmbeddingsDisabled"',
    '{"Error":"msg"}',
    '"EmbeddingRejectedDueToActiveTokenGeneration"',
    '"NoEmbeddingsProduced"',
]
SIMPLE_ISSUES = [
    "CacheCannotAcquireLock",
    "CacheDirectoryIsNotWritable",
    "CacheStorageIsFull",
    "DownloadInterrupted",
    "DownloadServerDeniedAccess",
    "DownloadServerErrored",
    "DownloadServerIsUnreachable",
    "DownloadServerRejectedRequest",
    "DownloadUrlIsMalformed",
    "ModelCacheIsCorrupted",
    "ModelDoesNotExistAtUrl",
    "HuggingFaceModelDoesNotExist",
    "HuggingFacePermissions",
    "ModelCannotBeLoaded",
    "ModelFileDoesNotExist",
    "MultimodalProjectionCannotBeLoaded",
    "UnableToFindChatTemplate",
]

EXAMPLES: list[tuple[str, Any, str]] = [
    # §2.2 request bodies
    ("conversation-history", wire.ContinueFromConversationHistoryParams, CONVERSATION),
    ("raw-prompt", wire.ContinueFromRawPromptParams, RAW_PROMPT),
    ("embedding-batch-l2", wire.GenerateEmbeddingBatchParams, EMBED_BATCH),
    ("normalization-none", wire.EmbeddingNormalizationMethod, '"None"'),
    ("normalization-rms", wire.EmbeddingNormalizationMethod, '{"RmsNorm":{"epsilon":1e-6}}'),
    (
        "grammar-gbnf",
        wire.GrammarConstraint,
        '{"type":"gbnf","grammar":"root ::= x","root":"root"}',
    ),
    ("grammar-json-schema", wire.GrammarConstraint, '{"type":"json_schema","schema":"{}"}'),
    # §2.2 NDJSON output and inference socket
    (
        "ndjson-content",
        wire.InferenceClientMessage,
        _response('{"GeneratedToken":{"ContentToken":"Hel"}}', '"agent-a"'),
    ),
    (
        "ndjson-reasoning",
        wire.InferenceClientMessage,
        _response('{"GeneratedToken":{"ReasoningToken":"..."}}', '"agent-a"'),
    ),
    (
        "ndjson-done",
        wire.InferenceClientMessage,
        _response('{"GeneratedToken":{"Done":{"usage":' + USAGE + "}}}", '"agent-a"'),
    ),
    (
        "ndjson-error",
        wire.InferenceClientMessage,
        '{"Error":{"request_id":"r1","error":{"code":503,'
        '"description":"Buffered requests overflow"}}}',
    ),
    ("embedding-final-done", wire.InferenceClientMessage, _response('{"Embedding":"Done"}')),
    (
        "generation-disabled-terminal",
        wire.InferenceClientMessage,
        _response('{"GeneratedToken":{"TokenGenerationDisabled":"Token generation is disabled"}}'),
    ),
    (
        "socket-request-conversation",
        wire.InferenceServerMessage,
        '{"Request":{"id":"c1","request":{"ContinueFromConversationHistory":'
        + CONVERSATION
        + "}}}",
    ),
    (
        "socket-request-raw",
        wire.InferenceServerMessage,
        '{"Request":{"id":"c1","request":{"ContinueFromRawPrompt":' + RAW_PROMPT + "}}}",
    ),
    ("socket-stop", wire.InferenceServerMessage, '{"Notification":{"StopRespondingTo":"c1"}}'),
    (
        "socket-client-error",
        wire.InferenceServerMessage,
        '{"Error":{"request_id":"c1","error":{"code":400,"description":"x"}}}',
    ),
    ("socket-disabled", wire.InferenceClientMessage, '{"Notification":"TokenGenerationDisabled"}'),
    ("socket-enabled", wire.InferenceClientMessage, '{"Notification":"TokenGenerationEnabled"}'),
    # §2.4 management documents
    ("agents", wire.AgentControllerPoolSnapshot, '{"agents":[' + AGENT_SNAPSHOT + "]}"),
    ("agents-empty", wire.AgentControllerPoolSnapshot, '{"agents":[]}'),
    ("buffered", wire.BufferedRequestsSnapshot, '{"buffered_requests_current": 3}'),
    ("chat-template", wire.ChatTemplate, '{"content":"{{ x }}"}'),
    ("model-metadata", wire.ModelMetadata, '{"metadata":{"general.architecture":"qwen3"}}'),
    # §3.1 and §3.3 balancer → agent
    ("version", wire.BalancerToAgentMessage, '{"Notification":{"Version":{"version":"4.1.0"}}}'),
    (
        "set-state",
        wire.BalancerToAgentMessage,
        '{"Notification":{"SetState":{"desired_state":' + AGENT_STATE + "}}}",
    ),
    ("stop", wire.BalancerToAgentMessage, '{"Notification":{"StopRespondingTo":"r1"}}'),
    (
        "agent-request-conversation",
        wire.BalancerToAgentMessage,
        '{"Request":{"id":"r1","request":{"ContinueFromConversationHistory":'
        + CONVERSATION
        + "}}}",
    ),
    (
        "agent-request-raw",
        wire.BalancerToAgentMessage,
        '{"Request":{"id":"r1","request":{"ContinueFromRawPrompt":' + RAW_PROMPT + "}}}",
    ),
    (
        "agent-request-embeddings",
        wire.BalancerToAgentMessage,
        '{"Request":{"id":"r1","request":{"GenerateEmbeddingBatch":' + EMBED_BATCH + "}}}",
    ),
    (
        "agent-request-template",
        wire.BalancerToAgentMessage,
        '{"Request":{"id":"r1","request":"GetChatTemplateOverride"}}',
    ),
    (
        "agent-request-metadata",
        wire.BalancerToAgentMessage,
        '{"Request":{"id":"r1","request":"GetModelMetadata"}}',
    ),
    # §3.1, §3.2 and §3.4 agent → balancer
    (
        "register",
        wire.AgentToBalancerMessage,
        '{"Notification":{"RegisterAgent":{"name":null,"slot_aggregated_status_snapshot":'
        + STATUS
        + "}}}",
    ),
    (
        "update-status",
        wire.AgentToBalancerMessage,
        '{"Notification":{"UpdateAgentStatus":{"slot_aggregated_status_snapshot":' + STATUS + "}}}",
    ),
    ("deregister", wire.AgentToBalancerMessage, '{"Notification":"DeregisterAgent"}'),
    ("status-snapshot", wire.SlotAggregatedStatusSnapshot, STATUS),
    (
        "response-template-none",
        wire.AgentToBalancerMessage,
        _response('{"ChatTemplateOverride":null}'),
    ),
    (
        "response-template",
        wire.AgentToBalancerMessage,
        _response('{"ChatTemplateOverride":{"content":".."}}'),
    ),
    ("response-metadata-none", wire.AgentToBalancerMessage, _response('{"ModelMetadata":null}')),
    (
        "response-metadata",
        wire.AgentToBalancerMessage,
        _response('{"ModelMetadata":{"metadata":{"general.name":"x"}}}'),
    ),
    ("response-legacy-timeout", wire.InferenceClientMessage, _response('"Timeout"')),
    (
        "response-legacy-overflow",
        wire.InferenceClientMessage,
        _response('"TooManyBufferedRequests"'),
    ),
    *(
        (f"generated-{i}", wire.AgentToBalancerMessage, _response('{"GeneratedToken":' + g + "}"))
        for i, g in enumerate(GENERATED)
    ),
    *(
        (f"embedding-{i}", wire.AgentToBalancerMessage, _response('{"Embedding":' + e + "}"))
        for i, e in enumerate(EMBEDDINGS)
    ),
    *(
        (f"issue-{name}", wire.AgentIssue, '{"' + name + '":{"model_path":"/m.gguf"}}')
        for name in SIMPLE_ISSUES
    ),
    (
        "issue-template",
        wire.AgentIssue,
        '{"ChatTemplateDoesNotCompile":{"error":"e","model_path":{"model_path":"/m"},'
        '"template_content":"{%"}}',
    ),
    (
        "issue-hf-lock",
        wire.AgentIssue,
        '{"HuggingFaceCannotAcquireLock":{"lock_path":"/l","model_path":{"model_path":"/m"}}}',
    ),
    ("issue-slot", wire.AgentIssue, '{"SlotCannotStart":{"error":"e","slot_index":3}}'),
    # §5.1 state documents
    ("balancer-desired-state", wire.BalancerDesiredState, DESIRED_STATE),
    ("inference-parameters", wire.InferenceParameters, PARAMS),
    ("model-none", wire.AgentDesiredModel, '"None"'),
    ("model-local", wire.AgentDesiredModel, '{"LocalToAgent":"/abs/path/on/agent.gguf"}'),
    ("model-url", wire.AgentDesiredModel, '{"Url":{"url":"https://host/model.gguf"}}'),
]


@pytest.mark.parametrize(("cls", "text"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES])
def test_spec_example_round_trips(cls: Any, text: str) -> None:
    """Reading a spec example and writing it back gives the same JSON document."""
    assert json.loads(converter.dumps(converter.loads(text, cls), cls)) == json.loads(text)


@pytest.mark.parametrize(("cls", "text"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES])
def test_spec_example_dumps_without_cls(cls: Any, text: str) -> None:
    """``dumps(obj)`` without a class writes a message variant in its home union's encoding."""
    obj = converter.loads(text, cls)
    assert json.loads(converter.dumps(obj)) == json.loads(text)


def test_response_reads_into_flat_payload() -> None:
    """A ``GeneratedToken`` response carries the variant class itself, not a wrapper."""
    message = converter.loads(
        _response('{"GeneratedToken":{"ContentToken":"Hi"}}'), wire.AgentToBalancerMessage
    )
    assert message == wire.AgentResponse(request_id="r1", response=wire.ContentToken("Hi"))


def test_register_agent_reads_nested_notification() -> None:
    """``{"Notification":{"RegisterAgent":...}}`` reads as a ``RegisterAgent``."""
    message = converter.loads(
        '{"Notification":{"RegisterAgent":{"name":"n","slot_aggregated_status_snapshot":'
        + STATUS
        + "}}}",
        wire.AgentToBalancerMessage,
    )
    assert isinstance(message, wire.RegisterAgent)
    assert message.name == "n"
    assert message.slot_aggregated_status_snapshot.version == 17
    assert message.slot_aggregated_status_snapshot.issues == (
        wire.ModelFileDoesNotExist("/m.gguf"),
    )


def test_tool_call_arguments_keep_json_value() -> None:
    """``ValidJson`` arguments hold the parsed JSON value; ``InvalidJson`` the raw text."""
    result = converter.loads(GENERATED[4], wire.GeneratedTokenResult)
    assert result == wire.ToolCallParsed(
        (
            wire.ParsedToolCall("c1", "get_weather", wire.ValidJson({"city": "Paris"})),
            wire.ParsedToolCall("c2", "f", wire.InvalidJson("{oops")),
        )
    )


def test_request_body_dumps_as_plain_document() -> None:
    """A request body class is written as its own document, not as a tagged variant."""
    params = wire.ContinueFromRawPromptParams(raw_prompt="x", max_tokens=1)
    assert json.loads(converter.dumps(params)) == {
        "raw_prompt": "x",
        "max_tokens": 1,
        "grammar": None,
    }


def test_rpc_answers_dump_in_response_encoding() -> None:
    """RPC answer payloads without an envelope are written as ``Response`` payload variants."""
    assert (
        converter.dumps(wire.ChatTemplateOverrideResponse(None)) == '{"ChatTemplateOverride":null}'
    )
    assert converter.dumps(wire.GetModelMetadata()) == '"GetModelMetadata"'
