"""Prompt tokenization: the model's BOS policy without a doubled BOS."""

from __future__ import annotations

import attrs

from paddler.engine._prepare import _tokenize_prompt


@attrs.define
class Vocab:
    adds_bos: bool
    bos: int = 1

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        body = [self.bos] if text.startswith("<s>") else []
        body += [ord(c) for c in text.removeprefix("<s>")]
        return [self.bos, *body] if add_special and self.adds_bos else body


def test_a_template_that_starts_with_bos_does_not_get_a_second_one() -> None:
    assert _tokenize_prompt(Vocab(adds_bos=True), "<s>hi") == [1, ord("h"), ord("i")]  # type: ignore[arg-type]


def test_bos_is_added_when_the_model_asks_for_it() -> None:
    assert _tokenize_prompt(Vocab(adds_bos=True), "hi") == [1, ord("h"), ord("i")]  # type: ignore[arg-type]


def test_models_without_add_bos_keep_the_text_as_is() -> None:
    assert _tokenize_prompt(Vocab(adds_bos=False), "<s><s>x") == [
        1,
        ord("<"),
        ord("s"),
        ord(">"),
        ord("x"),
    ]  # type: ignore[arg-type]
