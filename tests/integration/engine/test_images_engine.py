"""Images through the real engine (llama.cpp + mtmd, the demo model, the test projector).

The projector's weights are random, so what the model says about an image is noise; these tests
check what a user can tell: images are accepted or refused with the right result, their tokens
are counted, they run beside plain requests without changing those, and the prompt cache never
reuses an image as if it were text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import attrs
import pytest
from engine_test_helpers import collect, content, done

from image_samples import image_uri, striped_uri, svg_uri
from paddler.engine import LlamaEngine
from paddler.testing.make_projector import write_projector
from paddler.wire import (
    ContentPart,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    GeneratedTokenResult,
    ImageDecodingFailed,
    ImageExceedsBatchSize,
    ImageUrl,
    ImageUrlPart,
    InferenceParameters,
    MultimodalNotSupported,
    TextPart,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

IMAGE_TOKENS = 16  # the test projector: 64 px images in 16 px patches


def parameters(**changes: object) -> InferenceParameters:
    fields: dict[str, object] = {"context_size": 4096, "n_batch": 512, **changes}
    return attrs.evolve(InferenceParameters.deterministic(), **fields)


def ask(
    *images: str, text: str = "What is in this picture?", max_tokens: int = 12
) -> ContinueFromConversationHistoryParams:
    parts: list[ContentPart] = [TextPart(text)]
    parts.extend(ImageUrlPart(ImageUrl(url)) for url in images)
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(
            ConversationMessage(role="system", content="You describe pictures."),
            ConversationMessage(role="user", content=tuple(parts)),
        ),
        enable_thinking=False,
        max_tokens=max_tokens,
    )


def plain(
    text: str = "Name three colours.", max_tokens: int = 16
) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(ConversationMessage(role="user", content=text),),
        enable_thinking=False,
        max_tokens=max_tokens,
    )


@pytest.fixture(scope="module")
async def engine(model_path: Path, projector_path: Path) -> AsyncIterator[LlamaEngine]:
    async with await LlamaEngine.load(
        model_path, parameters(), slots=2, multimodal_projection=projector_path
    ) as engine:
        yield engine


async def test_an_image_request_generates_and_counts_its_image(engine: LlamaEngine) -> None:
    results = await collect(engine.generate(ask(image_uri())))
    usage = done(results).usage
    assert usage.input_image_tokens == IMAGE_TOKENS
    assert usage.prompt_tokens > IMAGE_TOKENS  # the text around it, plus the image
    assert usage.content_tokens > 0


async def test_two_images_count_twice(engine: LlamaEngine) -> None:
    usage = done(await collect(engine.generate(ask(image_uri("red"), striped_uri())))).usage
    assert usage.input_image_tokens == 2 * IMAGE_TOKENS


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP", "WEBP"])
async def test_every_bitmap_format_is_accepted(engine: LlamaEngine, fmt: str) -> None:
    usage = done(await collect(engine.generate(ask(image_uri(fmt=fmt), max_tokens=2)))).usage
    assert usage.input_image_tokens == IMAGE_TOKENS


async def test_an_svg_is_accepted(engine: LlamaEngine) -> None:
    usage = done(await collect(engine.generate(ask(svg_uri(), max_tokens=2)))).usage
    assert usage.input_image_tokens == IMAGE_TOKENS


async def test_an_oversized_image_is_resized_and_the_engine_lives_on(engine: LlamaEngine) -> None:
    huge = image_uri("green", size=(6000, 4000))
    usage = done(await collect(engine.generate(ask(huge, max_tokens=2)))).usage
    assert usage.input_image_tokens == IMAGE_TOKENS
    assert content(await collect(engine.generate(plain(max_tokens=4))))
    assert engine.crashed is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "Remote image URLs are not supported"),
        ("data:image/png;base64,@@@@", "base64 payload is invalid"),
        ("data:image/png;base64", "no comma"),
    ],
)
async def test_bad_images_are_image_decoding_failed(
    engine: LlamaEngine, url: str, message: str
) -> None:
    results = await collect(engine.generate(ask(url)))
    assert len(results) == 1
    assert isinstance(results[0], ImageDecodingFailed)
    assert message in results[0].message


async def test_the_second_of_two_images_is_named_when_it_is_bad(engine: LlamaEngine) -> None:
    results = await collect(engine.generate(ask(image_uri(), "https://x.test/b.png")))
    assert isinstance(results[0], ImageDecodingFailed)
    assert results[0].message.startswith("Cannot use image 2 of 2: Remote image URLs")


async def test_plain_and_image_requests_run_together_unchanged(engine: LlamaEngine) -> None:
    """A plain request generates the same text alone and beside an image request, and the two
    together take about as many steps as the longer alone: they share the batches (the
    image's text rides them, its embeddings decode between two of them)."""

    def steps() -> int:
        return engine.statistics().steps

    start = steps()
    alone = content(await collect(engine.generate(plain())))
    plain_steps, start = steps() - start, steps()
    await collect(engine.generate(ask(striped_uri(), max_tokens=16)))
    image_steps, start = steps() - start, steps()
    together: dict[str, list[GeneratedTokenResult]] = {}

    async def run(name: str, params: ContinueFromConversationHistoryParams) -> None:
        together[name] = await collect(engine.generate(params))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "image", ask(striped_uri(), max_tokens=16))
        tg.start_soon(run, "plain", plain())
    together_steps = steps() - start
    assert content(together["plain"]) == alone
    assert done(together["image"]).usage.input_image_tokens == IMAGE_TOKENS
    # about as many as the longer of the two alone (one after the other would be the sum)
    assert together_steps <= max(plain_steps, image_steps) + 3, (
        together_steps,
        plain_steps,
        image_steps,
    )


async def test_two_image_requests_at_once_both_generate(engine: LlamaEngine) -> None:
    alone = content(await collect(engine.generate(ask(striped_uri(), max_tokens=8))))
    outcomes: list[list[GeneratedTokenResult]] = []

    async def run(url: str) -> None:
        outcomes.append(await collect(engine.generate(ask(url, max_tokens=8))))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, striped_uri())
        tg.start_soon(run, image_uri("blue"))
    for results in outcomes:
        assert done(results).usage.input_image_tokens == IMAGE_TOKENS
        assert done(results).usage.content_tokens > 0
    assert alone in [content(r) for r in outcomes]


async def test_the_prompt_cache_stops_at_an_image(model_path: Path, projector_path: Path) -> None:
    """One slot: the same question with the same image twice, then with another image. The
    cache reuses only the text before the image, every time (never the image's positions),
    and each answer is the one a fresh slot gives."""
    async with await LlamaEngine.load(
        model_path, parameters(), slots=1, multimodal_projection=projector_path
    ) as engine:
        first = await collect(engine.generate(ask(striped_uri())))
        again = await collect(engine.generate(ask(striped_uri())))
        other = await collect(engine.generate(ask(image_uri("red"))))
        text_only = await collect(engine.generate(ask()))  # the same text, no image at all
    cached = [done(r).usage.cached_prompt_tokens for r in (first, again, other)]
    assert cached[0] == 0
    assert cached[1] == cached[2] > 0  # the system prompt and the text before the image
    assert cached[1] < done(again).usage.prompt_tokens - IMAGE_TOKENS
    assert content(again) == content(first)
    assert content(other) != content(first)  # the images do make a difference
    async with await LlamaEngine.load(
        model_path, parameters(), slots=1, multimodal_projection=projector_path
    ) as fresh:
        assert content(await collect(fresh.generate(ask(image_uri("red"))))) == content(other)
        assert content(await collect(fresh.generate(ask()))) == content(text_only)


async def test_an_image_larger_than_n_batch_is_refused(model_path: Path, tmp_path: Path) -> None:
    big = write_projector(tmp_path / "big.gguf", image_size=128, patch_size=8)  # 256 tokens
    async with await LlamaEngine.load(
        model_path, parameters(n_batch=128), slots=1, multimodal_projection=big
    ) as engine:
        results = await collect(engine.generate(ask(image_uri())))
        assert results == [ImageExceedsBatchSize(image_tokens=256, n_batch=128)]
        assert content(await collect(engine.generate(plain(max_tokens=4))))


async def test_an_image_that_fills_n_batch_works(model_path: Path, tmp_path: Path) -> None:
    big = write_projector(tmp_path / "big.gguf", image_size=128, patch_size=8)  # 256 tokens
    async with await LlamaEngine.load(
        model_path, parameters(n_batch=256), slots=1, multimodal_projection=big
    ) as engine:
        usage = done(await collect(engine.generate(ask(image_uri(), max_tokens=3)))).usage
        assert usage.input_image_tokens == 256
        assert engine.statistics().input_image_tokens == 256


async def test_a_text_only_model_rejects_images(model_path: Path) -> None:
    async with await LlamaEngine.load(model_path, parameters(), slots=1) as engine:
        results = await collect(engine.generate(ask(image_uri())))
    assert len(results) == 1
    assert isinstance(results[0], MultimodalNotSupported)
    assert "no multimodal projection" in results[0].message
