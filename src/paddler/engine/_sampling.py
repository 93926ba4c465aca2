"""Per-request sampling: the effective settings, and the sampler that carries them out.

The per-request fields come as `paddler.wire.SamplingOverrides`, the record the balancer sends.
"""

from __future__ import annotations

import random

import attrs

from paddler.engine._llama import ChainSampler, FloatRows, GrammarSampler, LlamaContext
from paddler.wire import InferenceParameters, SamplingOverrides


@attrs.frozen
class SamplingSettings:
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    penalty_last_n: int
    penalty_repeat: float
    penalty_frequency: float
    penalty_presence: float
    seed: int

    @classmethod
    def resolve(
        cls, parameters: InferenceParameters, overrides: SamplingOverrides | None
    ) -> SamplingSettings:
        o = overrides or SamplingOverrides()

        def pick(value: float | None, default: float) -> float:
            return default if value is None else value

        return cls(
            temperature=pick(o.temperature, parameters.temperature),
            top_k=parameters.top_k,
            top_p=pick(o.top_p, parameters.top_p),
            min_p=parameters.min_p,
            penalty_last_n=parameters.penalty_last_n,
            penalty_repeat=parameters.penalty_repeat,
            penalty_frequency=pick(o.frequency_penalty, parameters.penalty_frequency),
            penalty_presence=pick(o.presence_penalty, parameters.penalty_presence),
            seed=random.getrandbits(32) if o.seed is None else o.seed,
        )

    @property
    def penalties_active(self) -> bool:
        return self.penalty_last_n != 0 and (
            self.penalty_repeat != 1.0
            or self.penalty_frequency != 0.0
            or self.penalty_presence != 0.0
        )

    @property
    def greedy(self) -> bool:
        """Whether a plain argmax gives the same token as the full chain."""
        return (self.temperature <= 0.0 or self.top_k == 1) and not self.penalties_active


class GrammarRejected(Exception):
    """The grammar allows no token the model could produce here."""


class RequestSampler:
    """Chooses the next token of one request: numpy argmax, or a llama.cpp chain (+ grammar)."""

    def __init__(
        self,
        settings: SamplingSettings,
        grammar: GrammarSampler | None,
        *,
        n_ctx: int,
        n_vocab: int,
    ) -> None:
        self.greedy = settings.greedy and grammar is None
        self._grammar = grammar
        self._chain: ChainSampler | None = None
        self._chain_greedy = settings.greedy
        if not settings.greedy:
            self._chain = ChainSampler(
                penalty_last_n=settings.penalty_last_n,
                penalty_repeat=settings.penalty_repeat,
                penalty_frequency=settings.penalty_frequency,
                penalty_presence=settings.penalty_presence,
                top_k=settings.top_k,
                top_p=settings.top_p,
                min_p=settings.min_p,
                temperature=settings.temperature,
                seed=settings.seed,
                n_ctx=n_ctx,
                n_vocab=n_vocab,
            )

    def prime(self, prompt: list[int]) -> None:
        """Let the penalties see the prompt, as llama-server does (the grammar does not).

        Positions an image fills have negative keys, not tokens: they are skipped.
        """
        if self._chain is not None:
            for token in prompt:
                if token >= 0:
                    self._chain.accept(token)

    def sample(self, ctx: LlamaContext, batch_index: int, logits: FloatRows) -> int:
        """Sample one token (not for the greedy fast path, which the scheduler batches)."""
        if self._grammar is not None:
            candidates = self._grammar.constrain(logits)
            if candidates is None:
                raise GrammarRejected
            token = candidates.argmax() if self._chain is None else self._chain.select(candidates)
            self._grammar.accept(token)
        else:
            assert self._chain is not None
            token = self._chain.sample(ctx, batch_index)
        if self._chain is not None:
            self._chain.accept(token)
        return token

    def free(self) -> None:
        if self._grammar is not None:
            self._grammar.free()
        if self._chain is not None:
            self._chain.free()
