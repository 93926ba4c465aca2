"""Every number of the desired state is range-checked before it is stored (issue 10 point 1)."""

from __future__ import annotations

import attrs
import pytest

from paddler.balancer import validate_desired_state
from paddler.balancer._desired_state import PARAMETER_RANGES
from paddler.errors import InvalidRequest
from paddler.wire import BalancerDesiredState, InferenceParameters


def _state(**parameters: object) -> BalancerDesiredState:
    return BalancerDesiredState(
        inference_parameters=attrs.evolve(InferenceParameters(), **parameters)
    )


def test_defaults_and_the_deterministic_preset_are_valid() -> None:
    validate_desired_state(BalancerDesiredState())
    validate_desired_state(
        BalancerDesiredState(inference_parameters=InferenceParameters.deterministic())
    )


@pytest.mark.parametrize("name", sorted(PARAMETER_RANGES))
def test_both_ends_are_valid_and_beyond_is_refused_naming_the_field(name: str) -> None:
    low, high = PARAMETER_RANGES[name]
    kind = type(getattr(InferenceParameters(), name))
    validate_desired_state(_state(**{name: kind(low)}))
    validate_desired_state(_state(**{name: kind(high)}))
    for bad in (low - 1, high + 1) if kind is int else (low - 0.5, high * 2 + 1):
        with pytest.raises(InvalidRequest) as caught:
            validate_desired_state(_state(**{name: kind(bad)}))
        assert caught.value.field == f"$.inference_parameters.{name}"
        assert name in str(caught.value)


def test_non_finite_float_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="finite"):
        validate_desired_state(_state(temperature=float("nan")))


@pytest.mark.parametrize(
    ("literal", "field"),
    [("NaN", "temperature"), ("1e999", "top_p"), ("1e39", "min_p"), ("0", "context_size")],
)
def test_state_file_with_a_bad_number_is_refused_at_startup(
    tmp_path: pytest.TempPathFactory, literal: str, field: str
) -> None:
    """A hand-edited (or old) state file never gets in: opening it names the field."""
    import json
    from pathlib import Path

    from paddler.balancer import StateStoreError, open_state_store
    from paddler.wire import converter

    document = json.loads(converter.dumps(BalancerDesiredState()))
    document["inference_parameters"][field] = 123456
    path = Path(str(tmp_path)) / "state.json"
    text = json.dumps({"balancer_desired_state": document, "version": "1"})
    path.write_text(text.replace("123456", literal))
    with pytest.raises(StateStoreError, match=rf"inference_parameters\.{field}"):
        open_state_store(f"file://{path}")
