"""One API key's limits: requests per minute, tokens per minute, requests at once.

Windows slide over the last 60 seconds. A request is admitted only if every limit allows it,
and nothing is counted for a refused one (no window entry, no concurrency slot). Tokens are
known only once a request ends (its ``Done`` usage, prompt plus completion), so a
tokens-per-minute limit admits requests while the key's last 60 s are under it, and one long
request can take the key over; the key then waits until enough of its usage is older than a
minute.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import attrs

__all__ = ["WINDOW_SECONDS", "KeyLimiter", "KeyLimits", "LimitExceeded"]

#: The sliding window of the per-minute limits, in seconds.
WINDOW_SECONDS = 60.0


@attrs.frozen(kw_only=True)
class KeyLimits:
    """``None`` is no limit."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_requests: int | None = None


class LimitExceeded(Exception):
    """A request over one of its key's limits; ``retry_after`` is whole seconds (>= 1)."""

    def __init__(self, key_name: str, limit: str, value: int, retry_after: int) -> None:
        self.key_name = key_name
        self.limit = limit
        self.value = value
        self.retry_after = retry_after
        super().__init__(
            f'API key "{key_name}" is over its {limit} limit ({value}); retry in {retry_after} s'
        )

    @property
    def kind(self) -> str:
        """``tokens`` or ``requests`` (OpenAI's error type for a rate limit)."""
        return "tokens" if self.limit == "tokens_per_minute" else "requests"


class KeyLimiter:
    """The live counts behind one key's limits; ``limits`` may be replaced by a reload."""

    def __init__(
        self, key_name: str, limits: KeyLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.key_name = key_name
        self.limits = limits
        self.in_flight = 0
        self._clock = clock
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()
        self._tokens_in_window = 0

    def __repr__(self) -> str:
        return (
            f"<KeyLimiter {self.key_name!r} [in flight: {self.in_flight}, last minute: "
            f"{len(self._requests)} requests, {self._tokens_in_window} tokens]>"
        )

    @property
    def limited(self) -> bool:
        return self.limits != KeyLimits()

    def admit(self) -> None:
        """Count one more request, or raise ``LimitExceeded`` and count nothing."""
        limits = self.limits
        if not self.limited:
            self.in_flight += 1
            return
        now = self._clock()
        self._trim(now)
        cap = limits.max_concurrent_requests
        if cap is not None and self.in_flight >= cap:
            raise LimitExceeded(self.key_name, "max_concurrent_requests", cap, 1)
        rpm = limits.requests_per_minute
        if rpm is not None and len(self._requests) >= rpm:
            # The oldest of the last ``rpm`` requests must leave the window first.
            wait = self._requests[len(self._requests) - rpm] + WINDOW_SECONDS - now
            raise LimitExceeded(self.key_name, "requests_per_minute", rpm, _seconds(wait))
        tpm = limits.tokens_per_minute
        if tpm is not None and self._tokens_in_window >= tpm:
            raise LimitExceeded(
                self.key_name, "tokens_per_minute", tpm, self._tokens_wait(tpm, now)
            )
        if rpm is not None:
            self._requests.append(now)
        self.in_flight += 1

    def release(self) -> None:
        """An admitted request ended (however it ended)."""
        self.in_flight = max(self.in_flight - 1, 0)

    def add_tokens(self, count: int) -> None:
        """A request of this key used ``count`` tokens (prompt plus completion)."""
        if count <= 0 or self.limits.tokens_per_minute is None:
            return
        now = self._clock()
        self._tokens.append((now, count))
        self._tokens_in_window += count
        self._trim(now)

    def _trim(self, now: float) -> None:
        start = now - WINDOW_SECONDS
        requests = self._requests
        while requests and requests[0] <= start:
            requests.popleft()
        tokens = self._tokens
        while tokens and tokens[0][0] <= start:
            self._tokens_in_window -= tokens.popleft()[1]

    def _tokens_wait(self, tpm: int, now: float) -> int:
        """Seconds until the usage in the window is under ``tpm`` again."""
        remaining = self._tokens_in_window
        for at, count in self._tokens:
            remaining -= count
            if remaining < tpm:
                return _seconds(at + WINDOW_SECONDS - now)
        return 1


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
