"""Per-API-key counters: requests by outcome, tokens in and out, buffer wait.

Every series is labelled ``key_name`` with the key's ``name`` (from the keys file, or the
stable ``key-<digest prefix>`` name of a ``--api-key``), never with the key itself. A key
appears once it has been used; a key removed by a reload keeps its last values until restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["KEY_REFUSAL_REASONS", "KeyMetrics"]

#: Values of the ``reason`` label of ``<prefix>api_key_refused_total``.
KEY_REFUSAL_REASONS = ("missing", "invalid")


class KeyMetrics:
    """The per-key series of one balancer, registered in each of ``registries``."""

    def __init__(
        self,
        *,
        prefix: str,
        registries: Iterable[CollectorRegistry],
        buffer_wait_buckets: tuple[float, ...],
    ) -> None:
        self._requests = Counter(
            f"{prefix}key_requests",
            "Finished inference requests per API key, by outcome (ok, cancelled, or the HTTP "
            "status; 429 for a key's limit)",
            ["key_name", "outcome"],
            registry=None,
        )
        self._prompt = Counter(
            f"{prefix}key_prompt_tokens",
            "Prompt tokens of an API key's finished requests",
            ["key_name"],
            registry=None,
        )
        self._generated = Counter(
            f"{prefix}key_generated_tokens",
            "Tokens generated for an API key",
            ["key_name"],
            registry=None,
        )
        self._buffer_wait = Histogram(
            f"{prefix}key_buffer_wait_seconds",
            "Time an API key's requests waited in the buffer for a free slot",
            ["key_name"],
            buckets=buffer_wait_buckets,
            registry=None,
        )
        self._refused = Counter(
            f"{prefix}api_key_refused",
            "Requests refused with 401 because their API key was missing or wrong",
            ["reason"],
            registry=None,
        )
        for reason in KEY_REFUSAL_REASONS:
            self._refused.labels(reason)
        # labels() takes a lock and builds a key each call; these are per request, so the
        # children are kept (a handful of keys times a handful of outcomes).
        self._children: dict[tuple[str, ...], Any] = {}
        for registry in registries:
            for collector in (
                self._requests,
                self._prompt,
                self._generated,
                self._buffer_wait,
                self._refused,
            ):
                registry.register(collector)

    def _child(self, kind: str, metric: Any, *labels: str) -> Any:
        key = (kind, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count_request(self, key_name: str, outcome: str) -> None:
        """One of the key's requests finished with ``outcome``."""
        self._child("requests", self._requests, key_name, outcome).inc()

    def count_tokens(self, key_name: str, *, prompt: int, generated: int) -> None:
        """Add one finished request's usage to the key's token counters."""
        self._child("prompt", self._prompt, key_name).inc(max(prompt, 0))
        self._child("generated", self._generated, key_name).inc(max(generated, 0))

    def observe_buffer_wait(self, key_name: str, seconds: float) -> None:
        """One of the key's requests left the buffer after ``seconds``."""
        self._child("wait", self._buffer_wait, key_name).observe(seconds)

    def count_refused(self, reason: str) -> None:
        """A request was refused: its key was ``"missing"`` or ``"invalid"``."""
        self._refused.labels(reason).inc()
