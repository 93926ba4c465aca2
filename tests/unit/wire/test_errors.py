"""``loads`` rejects what Paddler rejects, and says where (a ``WireError`` naming JSON paths)."""

from __future__ import annotations

import json

import pytest

from paddler import wire
from paddler.wire import WireError, converter


def _state(**changes: object) -> str:
    document = json.loads(converter.dumps(wire.BalancerDesiredState.default()))
    document.update(changes)
    return json.dumps(document)


def _problems(text: str | bytes, cls: object) -> tuple[str, ...]:
    with pytest.raises(WireError) as info:
        converter.loads(text, cls)
    return info.value.problems


def test_wire_error_is_value_error() -> None:
    """``WireError`` is a ``ValueError``, so generic handlers of bad input catch it."""
    assert issubclass(WireError, ValueError)


def test_invalid_json_text() -> None:
    """Text that is not JSON is reported as such."""
    with pytest.raises(WireError, match=r"^invalid JSON: "):
        converter.loads("{nope", wire.ChatTemplate)


def test_invalid_utf8_bytes() -> None:
    """Bytes that are not UTF-8 are reported as invalid JSON, not a crash."""
    with pytest.raises(WireError, match=r"^invalid JSON: "):
        converter.loads(b"\xff\xfe{", wire.ChatTemplate)


def test_wrong_type_names_nested_path() -> None:
    """A string where an int belongs is reported at its full path."""
    params = json.loads(converter.dumps(wire.InferenceParameters()))
    params["top_k"] = "80"
    assert _problems(_state(inference_parameters=params), wire.BalancerDesiredState) == (
        "$.inference_parameters.top_k: invalid value for type, expected int",
    )


def test_extra_key_is_named() -> None:
    """An unknown key is rejected by name (serde ``deny_unknown_fields``)."""
    assert _problems(_state(bogus=1), wire.BalancerDesiredState) == ("$.bogus: extra field",)


def test_all_problems_reported_together() -> None:
    """Several problems in one document are all listed, joined in the message."""
    params = json.loads(converter.dumps(wire.InferenceParameters()))
    params["top_k"] = "80"
    with pytest.raises(WireError) as info:
        converter.loads(_state(inference_parameters=params, bogus=1), wire.BalancerDesiredState)
    assert set(info.value.problems) == {
        "$.inference_parameters.top_k: invalid value for type, expected int",
        "$.bogus: extra field",
    }
    assert str(info.value) == "; ".join(info.value.problems)


def test_inference_parameters_fields_are_required() -> None:
    """Every ``InferenceParameters`` field is required on the wire, defaults notwithstanding."""
    params = json.loads(converter.dumps(wire.InferenceParameters()))
    del params["temperature"]
    assert _problems(json.dumps(params), wire.InferenceParameters) == (
        "$.temperature: required field missing",
    )


def test_balancer_desired_state_requires_model() -> None:
    """A desired state without ``model`` is rejected (PUT must send the full document)."""
    document = json.loads(_state())
    del document["model"]
    assert _problems(json.dumps(document), wire.BalancerDesiredState) == (
        "$.model: required field missing",
    )


def test_bool_is_not_an_int() -> None:
    """``true`` is not accepted where an integer belongs (serde does not coerce)."""
    assert _problems('{"buffered_requests_current": true}', wire.BufferedRequestsSnapshot) == (
        "$.buffered_requests_current: invalid value for type, expected int",
    )


def test_int_is_not_a_string() -> None:
    """A number is not accepted where a string belongs."""
    assert _problems('{"content": 5}', wire.ChatTemplate) == (
        "$.content: invalid value for type, expected str",
    )


def test_float_field_rejects_string() -> None:
    """A float field does not parse numeric strings."""
    params = json.loads(converter.dumps(wire.InferenceParameters()))
    params["temperature"] = "0.5"
    assert _problems(json.dumps(params), wire.InferenceParameters) == (
        "$.temperature: invalid value for type, expected float",
    )


def test_unknown_enum_value() -> None:
    """An unknown pooling type is rejected at its path."""
    params = json.loads(converter.dumps(wire.InferenceParameters()))
    params["pooling_type"] = "Max"
    assert _problems(json.dumps(params), wire.InferenceParameters) == (
        "$.pooling_type: unknown PoolingType 'Max', expected one of: "
        "Unspecified, None, Mean, Cls, Last, Rank",
    )


def test_unknown_variant_lists_expected() -> None:
    """An unknown externally tagged variant names the variants it could have been."""
    (problem,) = _problems('{"HuggingFace2":{}}', wire.AgentDesiredModel)
    assert problem.startswith("$: unknown variant 'HuggingFace2' of AgentDesiredModel")
    assert "LocalToAgent" in problem


def test_unit_variant_needs_no_object() -> None:
    """A data variant written as a bare string is rejected."""
    assert _problems('"Done"', wire.GeneratedTokenResult) == (
        "$: variant 'Done' of GeneratedTokenResult needs data",
    )


def test_variant_payload_error_has_variant_in_path() -> None:
    """A bad payload is reported under its variant tag."""
    assert _problems('{"ContentToken": 5}', wire.GeneratedTokenResult) == (
        "$.ContentToken: invalid value for type, expected str",
    )


def test_object_with_two_keys_is_not_a_variant() -> None:
    """A variant object must have exactly one key."""
    (problem,) = _problems('{"ContentToken":"a","ReasoningToken":"b"}', wire.GeneratedTokenResult)
    assert problem.startswith("$: expected a GeneratedTokenResult variant")


def test_nested_message_path() -> None:
    """A problem deep in a socket message names every level of the path."""
    text = (
        '{"Notification":{"SetState":{"desired_state":'
        '{"model":"None","multimodal_projection":"None"}}}}'
    )
    assert _problems(text, wire.BalancerToAgentMessage) == (
        "$.Notification.SetState.desired_state.inference_parameters: required field missing",
    )


def test_list_index_in_path() -> None:
    """A bad list item is reported with its index."""
    text = '{"input_batch":[{"id":"a","content":"x"},{"id":"b"}],"normalization_method":"L2"}'
    assert _problems(text, wire.GenerateEmbeddingBatchParams) == (
        "$.input_batch[1].content: required field missing",
    )


def test_unknown_grammar_type() -> None:
    """An unknown internally tagged ``type`` lists the known ones."""
    text = '{"raw_prompt":"x","max_tokens":1,"grammar":{"type":"regex","regex":"a"}}'
    assert _problems(text, wire.ContinueFromRawPromptParams) == (
        "$.grammar: unknown type 'regex', expected one of: gbnf, json_schema",
    )


def test_missing_content_part_type() -> None:
    """A content part without ``type`` is rejected."""
    text = '{"role":"user","content":[{"text":"hi"}]}'
    (problem,) = _problems(text, wire.ConversationMessage)
    assert problem.startswith('$.content[0]: missing "type"')


def test_image_url_rejects_detail() -> None:
    """``image_url`` allows only ``url`` (OpenAI's ``detail`` is rejected)."""
    text = (
        '{"role":"user","content":'
        '[{"type":"image_url","image_url":{"url":"data:,","detail":"low"}}]}'
    )
    assert _problems(text, wire.ConversationMessage) == (
        "$.content[0].image_url.detail: extra field",
    )


def test_message_content_must_be_string_or_list() -> None:
    """A null message content is rejected."""
    (problem,) = _problems('{"role":"user","content":null}', wire.ConversationMessage)
    assert problem == "$.content: expected a string or a list of content parts"


def test_tool_parameters_reject_unknown_keys() -> None:
    """A tool schema with a key beyond type/properties/required/additionalProperties fails."""
    text = '{"name":"f","description":"d","parameters":{"type":"object","$schema":"x"}}'
    assert _problems(text, wire.Function) == ("$.parameters['$schema']: extra field",)


def test_tool_parameters_require_type() -> None:
    """A tool schema without ``type`` is rejected."""
    text = '{"name":"f","description":"d","parameters":{"properties":{}}}'
    assert _problems(text, wire.Function) == ("$.parameters.type: required field missing",)


def test_tool_type_must_be_function() -> None:
    """Only ``{"type":"function"}`` tools exist."""
    (problem,) = _problems(
        '{"type":"web_search","function":{"name":"f","description":"d"}}', wire.Tool
    )
    assert problem.startswith("$.type: ")


def test_enum_reads_as_enum_member() -> None:
    """A known enum value reads as the enum member, not a plain string."""
    params = converter.loads(converter.dumps(wire.InferenceParameters()), wire.InferenceParameters)
    assert type(params.pooling_type) is wire.PoolingType
    assert type(params.k_cache_dtype) is wire.KvCacheDtype


def test_document_must_be_object() -> None:
    """A list where an object belongs is reported at the path."""
    assert _problems('{"agents":[[]]}', wire.AgentControllerPoolSnapshot) == (
        "$.agents[0]: expected an object (AgentControllerSnapshot)",
    )
