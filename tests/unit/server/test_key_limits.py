"""A key's limits: sliding 60 s windows, Retry-After, and nothing counted for a refusal."""

from __future__ import annotations

import pytest

from paddler_server._key_limits import KeyLimiter, KeyLimits, LimitExceeded


class Clock:
    """A clock the test moves by hand (the limiter takes its time source as a parameter)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_slides_and_says_when() -> None:
    """The third request in a minute is refused with the seconds until the first leaves."""
    clock = Clock()
    limiter = KeyLimiter("a", KeyLimits(requests_per_minute=2), clock=clock)
    limiter.admit()
    clock.now += 10
    limiter.admit()
    clock.now += 5
    with pytest.raises(LimitExceeded) as info:
        limiter.admit()
    assert info.value.limit == "requests_per_minute"
    assert info.value.retry_after == 45
    assert info.value.kind == "requests"
    assert 'API key "a" is over its requests_per_minute limit (2)' in str(info.value)
    assert limiter.in_flight == 2  # the refusal took nothing
    clock.now += 45
    limiter.admit()


def test_concurrency_is_released_by_the_end_of_a_request() -> None:
    """max_concurrent_requests counts requests between admit and release."""
    limiter = KeyLimiter("a", KeyLimits(max_concurrent_requests=1), clock=Clock())
    limiter.admit()
    with pytest.raises(LimitExceeded, match="max_concurrent_requests limit"):
        limiter.admit()
    limiter.release()
    limiter.admit()
    assert limiter.in_flight == 1


def test_tokens_per_minute_counts_usage_after_the_fact() -> None:
    """Requests are admitted while the last minute's usage is under the limit; a big one takes
    the key over, and it waits until enough usage is older than a minute."""
    clock = Clock()
    limiter = KeyLimiter("a", KeyLimits(tokens_per_minute=100), clock=clock)
    limiter.admit()
    limiter.add_tokens(60)
    clock.now += 20
    limiter.admit()  # 60 < 100: still admitted
    limiter.add_tokens(70)
    clock.now += 1
    with pytest.raises(LimitExceeded) as info:
        limiter.admit()
    assert info.value.kind == "tokens"
    assert info.value.retry_after == 39  # the first 60 leave at +60 s, then 70 < 100
    clock.now += 39
    limiter.admit()


def test_a_reload_changes_limits_of_a_live_limiter() -> None:
    """New limits apply at once to the counts already there."""
    clock = Clock()
    limiter = KeyLimiter("a", KeyLimits(), clock=clock)
    limiter.admit()
    limiter.admit()
    limiter.limits = KeyLimits(max_concurrent_requests=2)
    with pytest.raises(LimitExceeded):
        limiter.admit()
