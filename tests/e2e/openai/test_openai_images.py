"""Images through the real CLI cluster: the OpenAI SDK (chat ``image_url``, Responses
``input_image``) and the native API (NDJSON, and the PyPI ``paddler-client``).

The agent loads the demo model with the test projector (random weights: the answers are noise,
the counts and errors are what is checked). A second, text-only cluster is the
``openai_cluster`` of this directory's conftest.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from e2e_cluster import desired_state, is_done, ndjson, tokens_of
from openai import OpenAI
from openai_cluster import OpenAICluster
from paddler_client import ClientInference
from paddler_client.continue_from_conversation_history_params import (
    ContinueFromConversationHistoryParams,
)
from paddler_client.conversation_message import ConversationMessage
from paddler_client.conversation_message_content_part import (
    ImageUrlContentPart,
    TextContentPart,
)
from paddler_client.image_url import ImageUrl
from paddler_client.inference_message import InferenceMessageKind
from PIL import Image

from image_samples import image_uri, striped_uri, svg_uri

pytestmark = [pytest.mark.e2e, pytest.mark.model]

IMAGE_TOKENS = 16


@pytest.fixture(scope="module")
def vision_cluster(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, projector_path: Path
) -> Iterator[OpenAICluster]:
    cluster = OpenAICluster(tmp_path_factory.mktemp("vision"), model_path)
    try:
        cluster.start_balancer()
        state = desired_state(model_path, context_size=4096)
        state["multimodal_projection"] = {"LocalToAgent": str(projector_path)}
        response = cluster.put_state(state)
        assert response.status_code == 204, response.text
        cluster.start_agent("eyes", 2)
        cluster.wait_ready(1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def vision(vision_cluster: OpenAICluster) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=vision_cluster.openai_url, api_key="unused", max_retries=0, timeout=120.0
    ) as sdk:
        yield sdk


def picture_message(url: str, **image_fields: Any) -> list[Any]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url, **image_fields}},
            ],
        }
    ]


def text_message() -> list[Any]:
    return [{"role": "user", "content": "What is in this picture?"}]


def big_png_uri() -> str:
    out = io.BytesIO()
    Image.new("RGB", (6000, 4000), (10, 120, 200)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


# -- OpenAI chat ---------------------------------------------------------------------------


def test_chat_with_an_image(vision: OpenAI) -> None:
    with_image = vision.chat.completions.create(
        model="any", messages=picture_message(image_uri()), max_tokens=8, temperature=0
    )
    without = vision.chat.completions.create(
        model="any", messages=text_message(), max_tokens=8, temperature=0
    )
    assert with_image.choices[0].message.content
    assert with_image.usage is not None and without.usage is not None
    # the image's 16 tokens (the text is the same but for a newline before the image)
    assert with_image.usage.prompt_tokens - without.usage.prompt_tokens in (16, 17)


def test_chat_streams_with_an_image_and_detail(vision: OpenAI) -> None:
    """``detail`` (sent by many OpenAI clients) is accepted; the stream reports usage."""
    chunks = list(
        vision.chat.completions.create(
            model="any",
            messages=picture_message(striped_uri(), detail="high"),
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = [c.usage for c in chunks if c.usage is not None]
    assert text
    assert usage and usage[0].prompt_tokens > IMAGE_TOKENS


def test_chat_with_an_svg_and_a_jpeg(vision: OpenAI) -> None:
    messages = picture_message(svg_uri())
    messages[0]["content"].append(
        {"type": "image_url", "image_url": {"url": image_uri("blue", fmt="JPEG")}}
    )
    completion = vision.chat.completions.create(model="any", messages=messages, max_tokens=4)
    assert completion.choices[0].finish_reason in ("stop", "length")


def test_an_oversized_image_does_not_hurt_the_agent(
    vision: OpenAI, vision_cluster: OpenAICluster
) -> None:
    completion = vision.chat.completions.create(
        model="any", messages=picture_message(big_png_uri()), max_tokens=4
    )
    assert completion.choices[0].message.content is not None
    assert vision_cluster.agents["eyes"].alive
    plain = vision.chat.completions.create(model="any", messages=text_message(), max_tokens=4)
    assert plain.choices[0].message.content


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "Remote image URLs are not supported"),
        ("data:image/png;base64,@@@", "base64 payload is invalid"),
        ("data:image/png;base64", "no comma"),
        ("data:text/plain;base64,aGVsbG8=", "not an image in a supported format"),
    ],
)
def test_chat_with_a_bad_image_is_a_400(vision: OpenAI, url: str, message: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        vision.chat.completions.create(model="any", messages=picture_message(url), max_tokens=4)
    assert caught.value.status_code == 400
    assert "ImageDecodingFailed" in caught.value.message
    assert message in caught.value.message


def test_chat_stream_with_a_bad_image_is_a_400(vision: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        stream = vision.chat.completions.create(
            model="any",
            messages=picture_message("https://example.com/cat.png"),
            max_tokens=4,
            stream=True,
        )
        list(stream)
    assert "Remote image URLs are not supported" in caught.value.message


def test_chat_image_part_without_a_url_is_a_400(vision: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        vision.chat.completions.create(
            model="any",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            max_tokens=4,
        )
    assert "messages[0].content[0].image_url.url" in caught.value.message


def test_a_text_only_model_rejects_images(client: OpenAI) -> None:
    """The shared cluster of this directory has no projector."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="any", messages=picture_message(image_uri()), max_tokens=4
        )
    assert "MultimodalNotSupported" in caught.value.message
    assert "no multimodal projection" in caught.value.message


# -- OpenAI Responses ------------------------------------------------------------------------


def responses_input(url: str) -> list[Any]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Describe the image."},
                {"type": "input_image", "image_url": url, "detail": "auto"},
            ],
        }
    ]


def test_responses_with_an_input_image(vision: OpenAI) -> None:
    response = vision.responses.create(
        model="any", input=responses_input(image_uri("green")), max_output_tokens=6
    )
    assert response.output_text
    assert response.usage is not None and response.usage.input_tokens > IMAGE_TOKENS


def test_responses_stream_with_an_input_image(vision: OpenAI) -> None:
    events = list(
        vision.responses.create(
            model="any", input=responses_input(striped_uri()), max_output_tokens=6, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds
    assert kinds[-1] in ("response.completed", "response.incomplete")


def test_responses_with_a_bad_image_is_a_400(vision: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        vision.responses.create(
            model="any", input=responses_input("http://127.0.0.1/x.png"), max_output_tokens=4
        )
    assert "Remote image URLs are not supported" in caught.value.message


def test_responses_file_id_images_are_refused(vision: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        vision.responses.create(
            model="any",
            input=[{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}],
            max_output_tokens=4,
        )
    assert "input[0].content[0].file_id" in caught.value.message


# -- the native API ---------------------------------------------------------------------------


def native_body(url: str, max_tokens: int = 6) -> dict[str, Any]:
    return {
        "add_generation_prompt": True,
        "conversation_history": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
        "enable_thinking": False,
        "max_tokens": max_tokens,
    }


def test_native_ndjson_with_an_image(vision_cluster: OpenAICluster) -> None:
    response = vision_cluster.http.post(
        f"{vision_cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=native_body(image_uri()),
    )
    assert response.status_code == 200
    lines = ndjson(response)
    assert is_done(lines[-1])
    usage = lines[-1]["Response"]["response"]["GeneratedToken"]["Done"]["usage"]
    assert usage["input_image_tokens"] == IMAGE_TOKENS
    assert tokens_of(lines)


def test_native_image_detail_key_is_refused(vision_cluster: OpenAICluster) -> None:
    """The native wire type allows only ``url`` in ``image_url``, as Paddler's does."""
    body = native_body(image_uri())
    body["conversation_history"][0]["content"][1]["image_url"]["detail"] = "low"
    response = vision_cluster.http.post(
        f"{vision_cluster.inference_url}/api/v1/continue_from_conversation_history", json=body
    )
    assert response.status_code == 400
    assert "detail" in response.text


def test_native_bad_image_ends_with_image_decoding_failed(vision_cluster: OpenAICluster) -> None:
    response = vision_cluster.http.post(
        f"{vision_cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=native_body("https://example.com/cat.png"),
    )
    assert response.status_code == 200  # the stream has started: errors travel inside it
    (line,) = ndjson(response)
    failure = line["Response"]["response"]["GeneratedToken"]["ImageDecodingFailed"]
    assert failure.startswith("Cannot use the image: Remote image URLs are not supported")


@pytest.mark.anyio
async def test_paddler_client_sends_an_image(vision_cluster: OpenAICluster) -> None:
    params = ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=[
            ConversationMessage(
                role="user",
                content=[
                    TextContentPart(text="What is this?"),
                    ImageUrlContentPart(image_url=ImageUrl(url=striped_uri())),
                ],
            )
        ],
        enable_thinking=False,
        max_tokens=6,
    )
    async with ClientInference(vision_cluster.inference_url) as client:
        messages = [m async for m in client.post_continue_from_conversation_history(params)]
        bad = with_url(params, "data:image/png;base64,!!")
        failed = [m async for m in client.post_continue_from_conversation_history(bad)]
    assert messages[-1].is_done
    assert messages[-1].summary is not None
    assert messages[-1].summary.usage.input_image_tokens == IMAGE_TOKENS
    assert failed[-1].kind is InferenceMessageKind.IMAGE_DECODING_FAILED
    assert "base64" in (failed[-1].error_message or "")


def with_url(params: Any, url: str) -> Any:
    copy = params.model_copy(deep=True)
    copy.conversation_history[0].content[1].image_url.url = url
    return copy
