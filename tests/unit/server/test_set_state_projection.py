"""``paddler set-state --multimodal-projection`` / ``--no-multimodal-projection``."""

from __future__ import annotations

import pytest

from paddler.wire import BalancerDesiredState, LocalToAgentModel, NoModel
from paddler_server._set_state import SetStateError, changed_state


def test_a_projection_is_set_and_removed() -> None:
    state = changed_state(BalancerDesiredState.default(), multimodal_projection="/mm.gguf")
    assert state.multimodal_projection == LocalToAgentModel(path="/mm.gguf")
    assert changed_state(state, ["top_k=5"]).multimodal_projection == state.multimodal_projection
    assert changed_state(state, no_multimodal_projection=True).multimodal_projection == NoModel()


def test_both_at_once_is_an_error() -> None:
    with pytest.raises(SetStateError, match="either a multimodal projection or none"):
        changed_state(
            BalancerDesiredState.default(),
            multimodal_projection="/mm.gguf",
            no_multimodal_projection=True,
        )
