"""Interop with the PyPI ``paddler-client`` (pydantic models): it reads what we write and we
read what it sends, exactly as it serialises on the wire (``exclude_none=True, by_alias=True``).
"""

from __future__ import annotations

import json
from typing import Any

import paddler_client.balancer_desired_state as pc_state
import pytest
from paddler_client.agent_controller_pool_snapshot import AgentControllerPoolSnapshot
from paddler_client.agent_desired_model import AgentDesiredModel
from paddler_client.buffered_request_manager_snapshot import (
    BufferedRequestManagerSnapshot,
)
from paddler_client.chat_template import ChatTemplate
from paddler_client.continue_from_conversation_history_params import (
    ContinueFromConversationHistoryParams,
)
from paddler_client.continue_from_raw_prompt_params import ContinueFromRawPromptParams
from paddler_client.conversation_message import ConversationMessage
from paddler_client.conversation_message_content_part import (
    ImageUrlContentPart,
    TextContentPart,
)
from paddler_client.embedding_input_document import EmbeddingInputDocument
from paddler_client.embedding_normalization_method import (
    EmbeddingNormalizationMethod,
)
from paddler_client.generate_embedding_batch_params import (
    GenerateEmbeddingBatchParams,
)
from paddler_client.grammar_constraint import (
    GbnfGrammarConstraint,
    JsonSchemaGrammarConstraint,
)
from paddler_client.huggingface_model_reference import HuggingFaceModelReference
from paddler_client.image_url import ImageUrl
from paddler_client.inference_message import (
    InferenceMessageKind,
    parse_inference_client_message,
)
from paddler_client.inference_parameters import InferenceParameters
from paddler_client.kv_cache_dtype import KvCacheDtype
from paddler_client.model_metadata import ModelMetadata
from paddler_client.pooling_type import PoolingType
from paddler_client.tool import Function, Tool
from paddler_client.url_model_reference import UrlModelReference
from paddler_client.validated_parameters_schema import ValidatedParametersSchema

from paddler import wire
from paddler.wire import converter

BalancerDesiredState = pc_state.BalancerDesiredState


def _as_sent(model: Any) -> str:
    """What paddler-client puts on the wire for a request or state body."""
    return json.dumps(model.model_dump(mode="json", exclude_none=True, by_alias=True))


def _their_state() -> Any:
    return BalancerDesiredState(
        chat_template_override=ChatTemplate(content="{{ messages }}"),
        use_chat_template_override=True,
        model=AgentDesiredModel.from_huggingface(
            HuggingFaceModelReference(
                repo_id="Qwen/Qwen3-0.6B-GGUF", revision="main", filename="q.gguf"
            )
        ),
        multimodal_projection=AgentDesiredModel.from_url(
            UrlModelReference(url="https://host/mmproj.gguf")
        ),
        inference_parameters=InferenceParameters(
            temperature=0.2, top_k=1, k_cache_dtype=KvCacheDtype.F16, pooling_type=PoolingType.MEAN
        ),
    )


def test_reads_their_desired_state() -> None:
    """Their ``put_balancer_desired_state`` body reads into our ``BalancerDesiredState``."""
    text = _their_state().model_dump_json(exclude_none=True, by_alias=True)
    assert converter.loads(text, wire.BalancerDesiredState) == wire.BalancerDesiredState(
        chat_template_override=wire.ChatTemplate("{{ messages }}"),
        use_chat_template_override=True,
        model=wire.HuggingFaceModel("Qwen/Qwen3-0.6B-GGUF", "main", "q.gguf"),
        multimodal_projection=wire.UrlModel("https://host/mmproj.gguf"),
        inference_parameters=wire.InferenceParameters(
            temperature=0.2,
            top_k=1,
            k_cache_dtype=wire.KvCacheDtype.F16,
            pooling_type=wire.PoolingType.MEAN,
        ),
    )


def test_reads_their_default_state() -> None:
    """Their default state (override left out as None) reads as our default state."""
    text = BalancerDesiredState().model_dump_json(exclude_none=True, by_alias=True)
    assert converter.loads(text, wire.BalancerDesiredState) == wire.BalancerDesiredState.default()


def test_reads_their_local_model() -> None:
    """Their ``local_to_agent`` model reads as our ``LocalToAgentModel``."""
    text = AgentDesiredModel.local_to_agent("/m.gguf").model_dump_json()
    assert converter.loads(text, wire.AgentDesiredModel) == wire.LocalToAgentModel("/m.gguf")


def test_they_read_our_desired_state() -> None:
    """Our desired state validates with their model and means the same."""
    ours = converter.loads(
        _their_state().model_dump_json(exclude_none=True, by_alias=True),
        wire.BalancerDesiredState,
    )
    theirs = BalancerDesiredState.model_validate_json(converter.dumps(ours))
    assert theirs == _their_state()


def test_they_read_our_default_state() -> None:
    """Our default state equals their default state."""
    text = converter.dumps(wire.BalancerDesiredState.default())
    assert BalancerDesiredState.model_validate_json(text) == BalancerDesiredState()


def _their_conversation() -> Any:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=[
            ConversationMessage(role="system", content="Be brief."),
            ConversationMessage(
                role="user",
                content=[
                    TextContentPart(text="What is this?"),
                    ImageUrlContentPart(image_url=ImageUrl(url="data:image/png;base64,AA==")),
                ],
            ),
        ],
        enable_thinking=False,
        max_tokens=64,
        grammar=JsonSchemaGrammarConstraint(schema_value='{"type":"object"}'),
        tools=[
            Tool(
                function=Function(
                    name="get_weather",
                    description="Weather for a city",
                    parameters=ValidatedParametersSchema(
                        type="object",
                        properties={"city": {"type": "string"}},
                        required=["city"],
                        additional_properties=False,
                    ),
                )
            )
        ],
    )


OUR_CONVERSATION = wire.ContinueFromConversationHistoryParams(
    add_generation_prompt=True,
    conversation_history=(
        wire.ConversationMessage("system", "Be brief."),
        wire.ConversationMessage(
            "user",
            (
                wire.TextPart("What is this?"),
                wire.ImageUrlPart(wire.ImageUrl("data:image/png;base64,AA==")),
            ),
        ),
    ),
    enable_thinking=False,
    max_tokens=64,
    grammar=wire.JsonSchemaGrammar('{"type":"object"}'),
    tools=(
        wire.Tool(
            wire.Function(
                name="get_weather",
                description="Weather for a city",
                parameters=wire.ValidatedParametersSchema(
                    type="object",
                    properties={"city": {"type": "string"}},
                    required=("city",),
                    additional_properties=False,
                ),
            )
        ),
    ),
)


def test_reads_their_conversation_request() -> None:
    """Their conversation body (no ``parse_tool_calls``) reads with the flag defaulting to false."""
    params = converter.loads(
        _as_sent(_their_conversation()), wire.ContinueFromConversationHistoryParams
    )
    assert params == OUR_CONVERSATION
    assert params.parse_tool_calls is False


def test_reads_their_socket_request() -> None:
    """Their inference-socket request frame reads as our ``InferenceRequest``."""
    frame = json.dumps(
        {
            "Request": {
                "id": "5d4c",
                "request": {
                    "ContinueFromConversationHistory": json.loads(_as_sent(_their_conversation()))
                },
            }
        }
    )
    assert converter.loads(frame, wire.InferenceServerMessage) == wire.InferenceRequest(
        "5d4c", OUR_CONVERSATION
    )


def test_they_read_our_conversation_request() -> None:
    """Our conversation body validates with their model (they ignore ``parse_tool_calls``)."""
    theirs = ContinueFromConversationHistoryParams.model_validate_json(
        converter.dumps(OUR_CONVERSATION)
    )
    assert theirs == _their_conversation()


def test_raw_prompt_both_ways() -> None:
    """A raw-prompt body with a GBNF grammar crosses both ways unchanged."""
    their = ContinueFromRawPromptParams(
        raw_prompt="<|im_start|>user\nhi",
        max_tokens=8,
        grammar=GbnfGrammarConstraint(grammar='root ::= "yes"', root="root"),
    )
    ours = converter.loads(_as_sent(their), wire.ContinueFromRawPromptParams)
    assert ours == wire.ContinueFromRawPromptParams(
        raw_prompt="<|im_start|>user\nhi",
        max_tokens=8,
        grammar=wire.GbnfGrammar('root ::= "yes"', "root"),
    )
    assert ContinueFromRawPromptParams.model_validate_json(converter.dumps(ours)) == their


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (EmbeddingNormalizationMethod.l2(), wire.L2()),
        (EmbeddingNormalizationMethod.none(), wire.NoNormalization()),
        (EmbeddingNormalizationMethod.rms_norm(1e-6), wire.RmsNorm(1e-6)),
    ],
    ids=["l2", "none", "rms"],
)
def test_embedding_batch_both_ways(theirs: Any, ours: wire.EmbeddingNormalizationMethod) -> None:
    """An embedding batch with each normalization method crosses both ways unchanged."""
    their_params = GenerateEmbeddingBatchParams(
        input_batch=[EmbeddingInputDocument(id="doc-1", content="hello")],
        normalization_method=theirs,
    )
    our_params = wire.GenerateEmbeddingBatchParams(
        input_batch=(wire.EmbeddingInputDocument("doc-1", "hello"),), normalization_method=ours
    )
    assert converter.loads(_as_sent(their_params), wire.GenerateEmbeddingBatchParams) == our_params
    assert GenerateEmbeddingBatchParams.model_validate_json(converter.dumps(our_params)) == (
        their_params
    )


SNAPSHOT = wire.AgentControllerSnapshot(
    id="a1",
    name="llm-1",
    desired_slots_total=4,
    slots_total=4,
    slots_processing=1,
    download_current=10,
    download_total=20,
    download_filename=None,
    download_indeterminate=False,
    issues=(
        wire.ModelFileDoesNotExist("/m.gguf"),
        wire.SlotCannotStart(error="boom", slot_index=2),
    ),
    model_path="/m.gguf",
    state_application_status=wire.AgentStateApplicationStatus.STUCK,
    uses_chat_template_override=False,
)


def test_they_read_our_agents_snapshot() -> None:
    """Our agents snapshot validates with theirs, issues included."""
    theirs = AgentControllerPoolSnapshot.model_validate_json(
        converter.dumps(wire.AgentControllerPoolSnapshot((SNAPSHOT,)))
    )
    (agent,) = theirs.agents
    assert (agent.id, agent.slots_processing, agent.state_application_status) == ("a1", 1, "Stuck")
    assert [(i.variant, i.params) for i in agent.issues] == [
        ("ModelFileDoesNotExist", {"model_path": "/m.gguf"}),
        ("SlotCannotStart", {"error": "boom", "slot_index": 2}),
    ]


def test_we_read_their_agents_snapshot() -> None:
    """Their agents snapshot, serialised, reads back as ours."""
    theirs = AgentControllerPoolSnapshot.model_validate_json(
        converter.dumps(wire.AgentControllerPoolSnapshot((SNAPSHOT,)))
    )
    text = theirs.model_dump_json()
    assert converter.loads(text, wire.AgentControllerPoolSnapshot) == (
        wire.AgentControllerPoolSnapshot((SNAPSHOT,))
    )


def test_they_read_our_small_documents() -> None:
    """Buffered-requests and model-metadata documents validate with theirs."""
    buffered = BufferedRequestManagerSnapshot.model_validate_json(
        converter.dumps(wire.BufferedRequestsSnapshot(3))
    )
    metadata = ModelMetadata.model_validate_json(
        converter.dumps(wire.ModelMetadata({"general.architecture": "llama"}))
    )
    assert buffered.buffered_requests_current == 3
    assert metadata.metadata == {"general.architecture": "llama"}


def _line(response: wire.ResponsePayload) -> str:
    return converter.dumps(
        wire.ResponseEnvelope(generated_by="agent-a", request_id="r1", response=response)
    )


def test_their_parser_reads_our_token() -> None:
    """Their stream parser reads our content-token line."""
    message = parse_inference_client_message(_line(wire.ContentToken("Hel")))
    assert (message.kind, message.token, message.generated_by) == (
        InferenceMessageKind.CONTENT_TOKEN,
        "Hel",
        "agent-a",
    )


def test_their_parser_reads_our_done() -> None:
    """Their stream parser reads our ``Done`` with the usage counts."""
    usage = wire.TokenUsage(
        prompt_tokens=12,
        cached_prompt_tokens=3,
        input_image_tokens=0,
        input_audio_tokens=0,
        content_tokens=40,
        reasoning_tokens=2,
        tool_call_tokens=0,
        undeterminable_tokens=0,
    )
    message = parse_inference_client_message(_line(wire.Done(usage)))
    assert message.kind == InferenceMessageKind.DONE
    assert message.summary is not None
    assert message.summary.usage.total_tokens == usage.total_tokens == 54


def test_their_parser_reads_our_tool_calls() -> None:
    """Their parser reads our parsed tool calls, valid and invalid arguments."""
    calls = (
        wire.ParsedToolCall("c1", "get_weather", wire.ValidJson({"city": "Paris"})),
        wire.ParsedToolCall("c2", "f", wire.InvalidJson("{oops")),
    )
    message = parse_inference_client_message(_line(wire.ToolCallParsed(calls)))
    assert message.kind == InferenceMessageKind.TOOL_CALL_PARSED
    assert message.parsed_tool_calls is not None
    assert [c.arguments for c in message.parsed_tool_calls] == [
        type(message.parsed_tool_calls[0].arguments)({"city": "Paris"}),
        type(message.parsed_tool_calls[1].arguments)("{oops"),
    ]


def test_their_parser_reads_our_embedding() -> None:
    """Their parser reads our embedding line with the vector intact."""
    embedding = wire.Embedding(
        embedding=(0.25, -0.5),
        normalization_method=wire.RmsNorm(1e-6),
        pooling_type=wire.PoolingType.MEAN,
        source_document_id="doc-1",
    )
    message = parse_inference_client_message(_line(embedding))
    assert message.kind == InferenceMessageKind.EMBEDDING
    assert message.embedding_data is not None
    assert message.embedding_data.embedding == [0.25, -0.5]
    assert message.embedding_data.normalization_method == EmbeddingNormalizationMethod.rms_norm(
        1e-6
    )


def test_their_parser_reads_our_error_envelope() -> None:
    """Their parser reads our ``Error`` envelope's code and description."""
    text = converter.dumps(
        wire.ErrorEnvelope("r1", wire.ErrorBody(503, "Buffered requests overflow"))
    )
    message = parse_inference_client_message(text)
    assert (message.kind, message.error_code, message.error_message) == (
        InferenceMessageKind.SERVER_ERROR,
        503,
        "Buffered requests overflow",
    )
