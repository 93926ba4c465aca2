"""``paddler.client``'s public names: sorted, resolvable, and the errors share one base."""

from __future__ import annotations

import paddler.client
from paddler.client import errors
from paddler.errors import PaddlerError


def test_all_is_sorted_and_resolves() -> None:
    assert paddler.client.__all__ == sorted(paddler.client.__all__)
    for name in paddler.client.__all__:
        assert getattr(paddler.client, name) is not None


def test_every_client_error_is_a_paddler_error() -> None:
    for name in errors.__all__:
        error = getattr(errors, name)
        assert issubclass(error, errors.ClientError)
        assert issubclass(error, PaddlerError)
