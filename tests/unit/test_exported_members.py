"""The top-level namespace: a flat, sorted ``__all__`` of names that all resolve."""

from __future__ import annotations

import paddler


def test_all_is_sorted_and_public() -> None:
    """``__all__`` is sorted and holds only public names."""
    assert paddler.__all__ == sorted(paddler.__all__)
    assert all(not name.startswith("_") for name in paddler.__all__)


def test_every_exported_name_resolves() -> None:
    """Each name in ``__all__`` imports, and the public names of ``dir()`` are exactly it."""
    for name in paddler.__all__:
        assert getattr(paddler, name) is not None, name
    public = {
        name
        for name in dir(paddler)
        if not name.startswith("_")
        and name not in {"annotations", "importlib", "TYPE_CHECKING", "Any"}
        and not isinstance(getattr(paddler, name), type(paddler))
    }
    assert public == set(paddler.__all__)


def test_errors_share_one_base_and_carry_codes() -> None:
    """Every library error is a PaddlerError with the integer code the server maps."""
    codes = {
        "BufferFull": 503,
        "BufferTimeout": 504,
        "InferenceItemTimeout": 504,
        "AgentGone": 502,
        "UnknownAgent": 404,
        "AgentRpcTimeout": 504,
        "GenerationDisabled": 501,
        "InvalidRequest": 400,
    }
    for name, code in codes.items():
        error = getattr(paddler, name)
        assert issubclass(error, paddler.PaddlerError)
        assert error.code == code
    assert issubclass(paddler.BufferTimeout, TimeoutError)
