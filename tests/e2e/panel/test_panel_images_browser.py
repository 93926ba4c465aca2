"""The prompt page's image attachment in a real Chromium, against a real cluster whose agent
loads the demo model with the test projector (so images are accepted and counted)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from paddler_server._set_state import changed_state, set_state

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module", autouse=True)
def projector_loaded(cluster: Any, projector_path: Path) -> None:
    """This module's panel cluster (see conftest) with the test projector beside the model."""
    set_state(
        cluster.management_url,
        lambda state: changed_state(state, multimodal_projection=str(projector_path)),
        wait=120.0,
    )


def png(color: str = "orange", size: tuple[int, int] = (80, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def attach(page: Any, name: str, data: bytes, mime: str = "image/png") -> None:
    page.locator("#image-input").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}]
    )


def open_prompt(page: Any, cluster: Any) -> None:
    page.goto(cluster.panel_url + "/prompt")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_an_attached_image_is_sent_inline_and_counted(cluster: Any, page: Any) -> None:
    """The image shows as a thumbnail, travels as a data URI in the socket frame, and the
    answer's usage line counts its 16 tokens; the next message has no image."""
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    open_prompt(page, cluster)
    page.locator("#max-tokens").fill("8")
    attach(page, "sunset.png", png())
    preview = page.locator("[data-role=attachment]")
    expect(preview).to_be_visible()
    expect(preview).to_contain_text("sunset.png")
    expect(preview.locator("img.thumb")).to_have_attribute("src", re.compile(r"^data:image/png"))

    page.locator("#prompt-input").fill("What is in this picture?")
    page.locator("#prompt-input").press("Enter")
    expect(preview).to_be_hidden()
    expect(page.locator(".message.user img.thumb")).to_have_count(1)
    answer = page.locator(".message.assistant").nth(0)
    expect(answer).to_have_attribute("data-state", "done", timeout=60_000)
    expect(answer.locator(".meta")).to_contain_text("16 image")
    sent = [f for f in frames if "ContinueFromConversationHistory" in f]
    assert len(sent) == 1
    assert '"type":"image_url","image_url":{"url":"data:image/png;base64,' in sent[0]

    page.locator("#prompt-input").fill("And now?")
    page.locator("#prompt-input").press("Enter")
    expect(page.locator(".message.assistant").nth(1)).to_have_attribute(
        "data-state", "done", timeout=60_000
    )
    expect(page.locator(".message.user img.thumb")).to_have_count(1)
    # the first image stays in the conversation, so the second turn still counts it
    expect(page.locator(".message.assistant").nth(1).locator(".meta")).to_contain_text("16 image")


def test_an_image_alone_can_be_sent(cluster: Any, page: Any) -> None:
    open_prompt(page, cluster)
    page.locator("#max-tokens").fill("4")
    attach(page, "only.webp", png("teal"), "image/webp")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".message.assistant").nth(0)
    expect(answer).to_have_attribute("data-state", "done", timeout=60_000)


def test_the_attachment_can_be_removed(cluster: Any, page: Any) -> None:
    open_prompt(page, cluster)
    attach(page, "oops.png", png())
    page.get_by_role("button", name="Remove the image").click()
    expect(page.locator("[data-role=attachment]")).to_be_hidden()
    expect(page.locator("#prompt-input")).to_be_focused()


def test_files_that_are_not_images_or_too_big_are_explained(cluster: Any, page: Any) -> None:
    open_prompt(page, cluster)
    attach(page, "notes.txt", b"hello", "text/plain")
    preview = page.locator("[data-role=attachment]")
    expect(preview.get_by_role("alert")).to_contain_text(
        "notes.txt is not a PNG, JPEG, GIF, BMP, WebP or SVG image."
    )
    attach(page, "huge.png", b"\x89PNG" + b"\0" * (21 * 1024 * 1024))
    expect(preview.get_by_role("alert")).to_contain_text(
        "huge.png is 21.0 MiB; an image may be at most 20.0 MiB."
    )
    page.locator("#prompt-input").fill("")
    expect(page.locator(".message")).to_have_count(0)


def test_an_image_the_agent_cannot_use_shows_why(cluster: Any, page: Any) -> None:
    """A file that claims to be a PNG but is not: the agent's ImageDecodingFailed is shown,
    and the question leaves the conversation (the next message works)."""
    open_prompt(page, cluster)
    page.locator("#max-tokens").fill("4")
    attach(page, "broken.png", b"not really a png")
    page.locator("#prompt-input").fill("What is this?")
    page.locator("#prompt-input").press("Enter")
    failed = page.locator(".message.assistant").nth(0)
    expect(failed).to_have_attribute("data-state", "error", timeout=60_000)
    expect(failed.get_by_role("alert")).to_contain_text("ImageDecodingFailed")
    expect(failed.get_by_role("alert")).to_contain_text("not an image in a supported format")
    page.locator("#prompt-input").fill("Say hi.")
    page.locator("#prompt-input").press("Enter")
    expect(page.locator(".message.assistant").nth(1)).to_have_attribute(
        "data-state", "done", timeout=60_000
    )


def test_a_text_only_cluster_refuses_the_image(
    cluster: Any, page: Any, projector_path: Path
) -> None:
    """Without a projector the agent answers MultimodalNotSupported, shown on the page."""
    set_state(
        cluster.management_url,
        lambda state: changed_state(state, no_multimodal_projection=True),
        wait=120.0,
    )
    try:
        open_prompt(page, cluster)
        attach(page, "photo.png", png())
        page.locator("#prompt-input").fill("What is this?")
        page.locator("#prompt-input").press("Enter")
        failed = page.locator(".message.assistant").nth(0)
        expect(failed).to_have_attribute("data-state", "error", timeout=60_000)
        expect(failed.get_by_role("alert")).to_contain_text("MultimodalNotSupported")
    finally:
        set_state(
            cluster.management_url,
            lambda state: changed_state(state, multimodal_projection=str(projector_path)),
            wait=120.0,
        )
