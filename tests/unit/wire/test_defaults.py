"""Defaults: Paddler's values in Python, serde's rules on the wire."""

from __future__ import annotations

import json

from paddler import wire
from paddler.wire import converter


def test_inference_parameters_defaults_are_paddlers() -> None:
    """The Python defaults are Paddler's documented defaults (spec §5.1)."""
    assert json.loads(converter.dumps(wire.InferenceParameters())) == {
        "n_batch": 2048,
        "context_size": 8192,
        "embedding_batch_size": 256,
        "enable_embeddings": False,
        "image_resize_to_fit": 1024,
        "k_cache_dtype": "Q8_0",
        "v_cache_dtype": "Q8_0",
        "min_p": 0.05,
        "n_gpu_layers": 0,
        "penalty_frequency": 0.0,
        "penalty_last_n": -1,
        "penalty_presence": 0.8,
        "penalty_repeat": 1.1,
        "pooling_type": "Last",
        "temperature": 0.8,
        "top_k": 80,
        "top_p": 0.8,
    }


def test_deterministic_preset() -> None:
    """``deterministic()`` is greedy with penalties off and everything else default."""
    params = wire.InferenceParameters.deterministic()
    assert (params.temperature, params.top_k, params.top_p, params.min_p) == (0.0, 1, 1.0, 0.0)
    assert (params.penalty_frequency, params.penalty_presence, params.penalty_repeat) == (
        0.0,
        0.0,
        1.0,
    )
    assert params.n_batch == 2048


def test_balancer_desired_state_default() -> None:
    """The default desired state has no model, default parameters and no override."""
    state = wire.BalancerDesiredState.default()
    assert state.model == wire.NoModel()
    assert state.multimodal_projection == wire.NoModel()
    assert state.inference_parameters == wire.InferenceParameters()
    assert state.chat_template_override is None
    assert state.use_chat_template_override is False


def test_conversation_optional_fields_default() -> None:
    """``grammar``, ``parse_tool_calls`` and ``tools`` may be left out (null, false, empty)."""
    params = converter.loads(
        '{"add_generation_prompt":true,"conversation_history":[],"enable_thinking":false,'
        '"max_tokens":5}',
        wire.ContinueFromConversationHistoryParams,
    )
    assert (params.grammar, params.parse_tool_calls, params.tools) == (None, False, ())


def test_raw_prompt_grammar_optional() -> None:
    """A raw-prompt request without ``grammar`` is accepted."""
    params = converter.loads('{"raw_prompt":"x","max_tokens":1}', wire.ContinueFromRawPromptParams)
    assert params.grammar is None


def test_option_fields_may_be_missing() -> None:
    """serde reads a missing ``Option`` field as None (here ``chat_template_override``)."""
    document = json.loads(converter.dumps(wire.BalancerDesiredState.default()))
    del document["chat_template_override"]
    state = converter.loads(json.dumps(document), wire.BalancerDesiredState)
    assert state == wire.BalancerDesiredState.default()


def test_optional_fields_written_as_null() -> None:
    """Option fields are written as ``null`` (serde's default), e.g. ``grammar``."""
    params = wire.ContinueFromRawPromptParams(raw_prompt="x", max_tokens=1)
    assert json.loads(converter.dumps(params)) == {
        "raw_prompt": "x",
        "max_tokens": 1,
        "grammar": None,
    }


def test_tool_schema_leaves_out_absent_keys() -> None:
    """A tool schema writes only the keys it has (a JSON Schema with nulls would not compile)."""
    tool = wire.Tool(
        wire.Function(
            name="f", description="d", parameters=wire.ValidatedParametersSchema(type="object")
        )
    )
    assert json.loads(converter.dumps(tool)) == {
        "type": "function",
        "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
    }


def test_tool_without_parameters() -> None:
    """A tool without parameters leaves the key out and reads back without it."""
    tool = wire.Tool(wire.Function(name="f", description="d"))
    text = converter.dumps(tool)
    assert json.loads(text) == {"type": "function", "function": {"name": "f", "description": "d"}}
    assert converter.loads(text, wire.Tool) == tool


def test_additional_properties_key_name() -> None:
    """``additional_properties`` is written as ``additionalProperties``."""
    schema = wire.ValidatedParametersSchema(
        type="object", properties={}, required=(), additional_properties=False
    )
    assert json.loads(converter.dumps(schema)) == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


def test_tool_type_required() -> None:
    """A tool without ``"type"`` is rejected although Python fills it in."""
    try:
        converter.loads('{"function":{"name":"f","description":"d"}}', wire.Tool)
    except wire.WireError as error:
        assert error.problems == ("$.type: required field missing",)
    else:
        raise AssertionError("expected WireError")
