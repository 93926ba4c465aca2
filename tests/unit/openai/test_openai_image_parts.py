"""Image parts in OpenAI request bodies → wire ``image_url`` parts (or a 400 naming the field)."""

from __future__ import annotations

import pytest

from paddler.wire import ImageUrl, ImageUrlPart
from paddler_server.openai._chat_request import read_chat_request
from paddler_server.openai._errors import OpenAIError
from paddler_server.openai._responses_request import read_responses_request

URI = "data:image/png;base64,iVBORw0KGgo="


def chat_parts(*parts: object) -> list[object]:
    body = {"model": "m", "messages": [{"role": "user", "content": list(parts)}]}
    content = read_chat_request(body).params.conversation_history[0].content
    assert not isinstance(content, str)
    return list(content)


def test_chat_image_url_object_with_detail() -> None:
    parts = chat_parts({"type": "image_url", "image_url": {"url": URI, "detail": "high"}})
    assert parts == [ImageUrlPart(ImageUrl(URI))]


def test_chat_image_url_as_a_plain_string() -> None:
    assert chat_parts({"type": "image_url", "image_url": URI}) == [ImageUrlPart(ImageUrl(URI))]


def test_a_remote_url_is_passed_on_for_the_agent_to_refuse() -> None:
    """The agent says why (ImageDecodingFailed, a 400), as Paddler's does."""
    url = "https://example.com/cat.png"
    assert chat_parts({"type": "image_url", "image_url": {"url": url}}) == [
        ImageUrlPart(ImageUrl(url))
    ]


@pytest.mark.parametrize(
    ("image_url", "param"),
    [
        ({}, "messages[0].content[0].image_url.url"),
        ({"url": ""}, "messages[0].content[0].image_url.url"),
        ({"url": 7}, "messages[0].content[0].image_url.url"),
        (None, "messages[0].content[0].image_url"),
    ],
)
def test_chat_image_without_a_url_names_the_field(image_url: object, param: str) -> None:
    with pytest.raises(OpenAIError) as caught:
        chat_parts({"type": "image_url", "image_url": image_url})
    assert caught.value.status == 400
    assert caught.value.param == param
    assert "base64 data URI" in caught.value.message


def responses_parts(*parts: object) -> list[object]:
    body = {"model": "m", "input": [{"role": "user", "content": list(parts)}]}
    content = read_responses_request(body).params.conversation_history[0].content
    assert not isinstance(content, str)
    return list(content)


def test_responses_input_image() -> None:
    parts = responses_parts(
        {"type": "input_text", "text": "What is it?"},
        {"type": "input_image", "image_url": URI, "detail": "auto"},
    )
    assert parts[1] == ImageUrlPart(ImageUrl(URI))


def test_responses_file_id_is_refused() -> None:
    with pytest.raises(OpenAIError) as caught:
        responses_parts({"type": "input_image", "file_id": "file-abc"})
    assert caught.value.status == 400
    assert caught.value.param == "input[0].content[0].file_id"
    assert "uploaded files are not supported" in caught.value.message


def test_responses_input_image_without_url() -> None:
    with pytest.raises(OpenAIError) as caught:
        responses_parts({"type": "input_image"})
    assert caught.value.param == "input[0].content[0].image_url"
