"""``paddler set-state``'s change of the desired state (the GET/PUT is in the docs tests)."""

from __future__ import annotations

import pytest

from paddler.wire import BalancerDesiredState, LocalToAgentModel, PoolingType
from paddler_server._set_state import SetStateError, changed_state


def test_parameters_change_and_everything_else_stays() -> None:
    state = BalancerDesiredState.default()
    changed = changed_state(
        state, ["enable_embeddings=true", "pooling_type=Mean", "context_size=4096"]
    )
    parameters = changed.inference_parameters
    assert parameters.enable_embeddings is True
    assert parameters.pooling_type is PoolingType.MEAN
    assert parameters.context_size == 4096
    assert parameters.top_k == state.inference_parameters.top_k
    assert changed.model == state.model


def test_model_path_and_template() -> None:
    changed = changed_state(
        BalancerDesiredState.default(), model_path="/m.gguf", chat_template="{{ x }}"
    )
    assert changed.model == LocalToAgentModel(path="/m.gguf")
    assert changed.use_chat_template_override
    assert not changed_state(changed, model_template=True).use_chat_template_override


@pytest.mark.parametrize(
    ("assignment", "says"),
    [
        ("enable_embeddings", "NAME=VALUE"),
        ("embeddings=true", "not an inference parameter"),
        ("context_size=big", "context_size"),
    ],
)
def test_bad_changes_say_what_is_wrong(assignment: str, says: str) -> None:
    with pytest.raises(SetStateError, match=says):
        changed_state(BalancerDesiredState.default(), [assignment])
