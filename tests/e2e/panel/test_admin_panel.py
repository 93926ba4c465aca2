"""The web admin panel in a real Chromium against a real cluster with the real model."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.model]

SWAPPED_CONTEXT_SIZE = 3072
Screenshot = Callable[[Any, str], None]


def agent_card(root: Any, name: str) -> Any:
    """The agent card named ``name`` inside ``root`` (a page or a locator)."""
    page = getattr(root, "page", root)
    return root.locator("article.agent").filter(has=page.locator(".agent-name", has_text=name))


def test_dashboard_shows_agents_live(cluster: Any, page: Any, save_screenshot: Screenshot) -> None:
    """A new agent and its slots appear within seconds; a killed agent disappears."""
    page.goto(cluster.panel_url + "/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("[data-role=agent-command]")).to_have_text(
        f"paddler agent --management-addr {cluster.management_addr} --name my-agent --slots 4"
    )
    expect(page.locator("[data-role=configuration]")).to_contain_text(cluster.inference_addr)
    expect(agent_card(page, "panel-agent")).to_contain_text("0 busy / 2 total")

    cluster.start_agent("panel-extra", slots=1)
    extra = agent_card(page, "panel-extra")
    expect(extra).to_be_visible(timeout=10_000)
    expect(extra).to_contain_text("0 busy / 1 total", timeout=60_000)
    expect(extra.locator(".pill")).to_have_text("ready")
    expect(extra).to_contain_text("SmolLM2")
    expect(page.locator("[data-role=agent-count]")).to_have_text("2")
    expect(page.locator("[data-role=slot-totals]")).to_have_text("0 / 3")
    expect(page.locator("[data-role=desired-context-size]")).to_have_text(
        str(cluster.initial_context_size)
    )

    # Load on every slot: the slots, the tokens/s figure and the chart follow it live.
    load = [
        cluster.generate_in_background(f"Tell a long story about ship number {n}.", 160)
        for n in range(3)
    ]
    expect(page.locator("[data-role=slot-totals]")).to_have_text("3 / 3", timeout=20_000)
    expect(page.locator("[data-role=tokens-per-second]")).to_have_text(
        re.compile(r"^(?!0\.0$)\d+\.\d$"), timeout=20_000
    )
    expect(page.locator("svg.chart polyline[data-series=tps]")).to_be_attached()
    save_screenshot(page, "dashboard.png")
    for thread in load:
        thread.join(timeout=60)
    expect(page.locator("[data-role=slot-totals]")).to_have_text("0 / 3", timeout=20_000)

    cluster.agents["panel-extra"].kill()
    expect(extra).to_have_count(0, timeout=15_000)
    expect(page.locator("[data-role=agent-count]")).to_have_text("1")
    expect(agent_card(page, "panel-agent")).to_be_visible()


def test_model_form_refuses_bad_values(cluster: Any, page: Any) -> None:
    """Malformed input is explained next to its field and nothing is sent."""
    puts: list[str] = []
    page.on(
        "request", lambda request: puts.append(request.url) if request.method == "PUT" else None
    )
    page.goto(cluster.panel_url + "/model")
    model = page.locator("#field-model")
    expect(model).to_have_value(re.compile(r"^agent:///.+\.gguf$"))

    page.locator("#field-context-size").fill("12abc")
    page.locator("#field-top-p").fill("1.5")
    model.fill("agent://models/smol.gguf")
    page.get_by_role("button", name="Apply to cluster").click()

    expect(page.locator("#field-context-size-error")).to_have_text("Must be a whole number.")
    expect(page.locator("#field-context-size")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#field-top-p-error")).to_contain_text("between 0 and 1")
    expect(page.locator("#field-model-error")).to_contain_text("must be absolute")
    expect(page.locator("[data-role=submit-status]")).to_contain_text("Nothing was sent")
    assert puts == []
    state = cluster.get("/api/v1/balancer_desired_state")
    assert state["inference_parameters"]["context_size"] in (
        cluster.initial_context_size,
        SWAPPED_CONTEXT_SIZE,
    )

    page.locator("#field-context-size").fill("4096")
    expect(page.locator("#field-context-size-error")).to_be_hidden()


def test_model_page_shows_a_refusal_from_the_balancer(cluster: Any, page: Any) -> None:
    """When the balancer answers 400 to the PUT, its message is shown and the form stays."""
    refusal = "Invalid desired state: $.inference_parameters.n_batch: too large for this build"

    def refuse_puts(route: Any) -> None:
        if route.request.method == "PUT":
            route.fulfill(status=400, body=refusal, content_type="text/plain")
        else:
            route.fallback()

    page.route("**/api/v1/balancer_desired_state", refuse_puts)
    page.goto(cluster.panel_url + "/model")
    expect(page.locator("#field-model")).to_have_value(re.compile(r"^agent:///"))
    page.get_by_role("button", name="Apply to cluster").click()
    error = page.locator("[data-role=form-error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("The balancer refused this state")
    expect(error).to_contain_text(refusal)
    expect(page.locator("#swap-progress")).to_be_hidden()


def test_model_page_previews_metadata_and_template(cluster: Any, page: Any) -> None:
    """The previews ask a live agent for its model's GGUF metadata and chat template."""
    page.goto(cluster.panel_url + "/model")
    expect(page.locator("#preview-agent")).to_have_value(re.compile(r".+"))
    page.get_by_role("button", name="Model metadata").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("general.architecture")
    dialog.get_by_placeholder("Filter keys…").fill("context_length")
    expect(dialog.locator("tbody tr")).to_have_count(1)
    dialog.get_by_role("button", name="Close").click()

    page.get_by_role("button", name="Model's template").click()
    expect(dialog.locator("pre")).to_contain_text("im_start")
    dialog.get_by_role("button", name="Copy into my template").click()
    expect(page.locator("#template-override")).to_be_checked()
    expect(page.locator("#field-chat-template-override")).to_have_value(re.compile("im_start"))


def test_prompt_streams_and_stop_ends_early(
    cluster: Any, page: Any, save_screenshot: Screenshot
) -> None:
    """Tokens stream into the chat; Stop ends the answer early with its usage."""
    page.goto(cluster.panel_url + "/prompt")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("[data-role=generation-disabled]")).to_be_hidden()

    page.locator("#max-tokens").fill("24")
    page.locator("#prompt-input").fill("What is the capital of France?")
    page.locator("#prompt-input").press("Enter")
    first = page.locator(".message.assistant").nth(0)
    expect(first).to_have_attribute("data-state", "done", timeout=60_000)
    expect(first.locator(".answer")).not_to_be_empty()
    expect(first.locator(".meta")).to_contain_text(re.compile(r"\d+ generated"))
    expect(first.locator(".meta")).to_contain_text("tokens/s")
    expect(first.locator(".meta")).to_contain_text("by panel-agent")

    page.locator("#max-tokens").fill("600")
    page.locator("#prompt-input").fill(
        "Write a very long story about a dragon who learns to paint."
    )
    page.get_by_role("button", name="Send").click()
    second = page.locator(".message.assistant").nth(1)
    expect(second.locator(".answer")).to_contain_text(re.compile(r"\w+ \w+ \w+"), timeout=60_000)
    page.get_by_role("button", name="Stop").click()
    expect(second).to_have_attribute("data-state", "stopped", timeout=30_000)
    meta = second.locator(".meta").inner_text()
    generated = int(re.search(r"(\d+) generated", meta).group(1))  # type: ignore[union-attr]
    assert 0 < generated < 600, meta
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    save_screenshot(page, "prompt.png")


def test_model_page_swaps_context_size(
    cluster: Any, page: Any, save_screenshot: Screenshot
) -> None:
    """Submitting a new context size swaps the cluster, and the dashboard shows it."""
    page.goto(cluster.panel_url + "/model")
    expect(page.locator("#field-model")).to_have_value(re.compile(r"^agent:///"))
    expect(page.locator("#field-context-size")).to_have_value(str(cluster.initial_context_size))
    page.locator("#field-context-size").fill(str(SWAPPED_CONTEXT_SIZE))
    page.get_by_role("button", name="Apply to cluster").click()
    expect(page.locator("[data-role=submit-status]")).to_contain_text("Applied")
    progress = page.locator("#swap-progress")
    expect(progress).to_be_visible()

    state = cluster.get("/api/v1/balancer_desired_state")
    assert state["inference_parameters"]["context_size"] == SWAPPED_CONTEXT_SIZE
    assert state["model"] == {"LocalToAgent": state["model"]["LocalToAgent"]}
    cluster.wait_applied("panel-agent", 2)
    applicable = cluster.get("/api/v1/balancer_applicable_state")
    assert applicable["inference_parameters"]["context_size"] == SWAPPED_CONTEXT_SIZE
    expect(agent_card(progress, "panel-agent")).to_contain_text("0 busy / 2 total")
    expect(progress.locator("[data-role=swap-summary]")).to_have_text(
        "1 of 1 agent applied the new state."
    )
    save_screenshot(page, "model.png")

    page.goto(cluster.panel_url + "/")
    expect(page.locator("[data-role=desired-context-size]")).to_have_text(str(SWAPPED_CONTEXT_SIZE))
    expect(agent_card(page, "panel-agent").locator(".pill")).to_have_text("ready")
    expect(agent_card(page, "panel-agent")).to_contain_text("0 busy / 2 total")


def test_prompt_page_notices_embeddings_mode(cluster: Any, page: Any) -> None:
    """While the cluster is in embeddings mode the chat says so and cannot send."""
    page.goto(cluster.panel_url + "/prompt")
    notice = page.locator("[data-role=generation-disabled]")
    send = page.get_by_role("button", name="Send")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(notice).to_be_hidden()
    expect(send).to_be_enabled()

    state = cluster.get("/api/v1/balancer_desired_state")
    state["inference_parameters"]["enable_embeddings"] = True
    cluster.put_desired_state(state)
    try:
        expect(notice).to_be_visible(timeout=30_000)
        expect(notice).to_contain_text("embeddings mode")
        expect(send).to_be_disabled()
    finally:
        state["inference_parameters"]["enable_embeddings"] = False
        cluster.put_desired_state(state)
    expect(notice).to_be_hidden(timeout=30_000)
    expect(send).to_be_enabled()
    cluster.wait_applied("panel-agent", 2)


def test_dashboard_shows_agent_issues(cluster: Any, page: Any) -> None:
    """An agent that cannot apply the state gets an issues badge; a click shows the details."""
    page.goto(cluster.panel_url + "/")
    card = agent_card(page, "panel-agent")
    expect(card.locator(".pill")).to_have_text("ready")
    state = cluster.get("/api/v1/balancer_desired_state")
    broken = {**state, "model": {"LocalToAgent": "/nonexistent/missing-model.gguf"}}
    cluster.put_desired_state(broken)
    try:
        badge = card.locator("button.badge")
        expect(badge).to_have_text(re.compile(r"^\d+ issues?$"), timeout=30_000)
        expect(card).to_contain_text("0 total")
        badge.click()
        dialog = page.locator("dialog[open]")
        expect(dialog).to_contain_text("ModelFileDoesNotExist")
        expect(dialog).to_contain_text("/nonexistent/missing-model.gguf")
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_have_count(0)
    finally:
        cluster.put_desired_state(state)
    cluster.wait_applied("panel-agent", 2)
    expect(card.locator("button.badge")).to_have_count(0)
    expect(card.locator(".pill")).to_have_text("ready")


def test_dashboard_reconnects_after_a_balancer_restart(cluster: Any, page: Any) -> None:
    """A lost stream is shown as disconnected, and the panel recovers on its own."""
    page.goto(cluster.panel_url + "/")
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "live")
    expect(agent_card(page, "panel-agent")).to_be_visible()

    cluster.balancer.stop()
    expect(connection).to_have_attribute("data-state", "disconnected", timeout=10_000)
    expect(connection).to_have_text("disconnected — retrying")
    expect(page.locator("#agents")).to_have_class(re.compile(r"\bstale\b"))

    cluster.start_balancer()
    expect(connection).to_have_attribute("data-state", "live", timeout=20_000)
    expect(page.locator("#agents")).not_to_have_class(re.compile(r"\bstale\b"))
    cluster.wait_applied("panel-agent", 2)
    expect(agent_card(page, "panel-agent")).to_contain_text("0 busy / 2 total")
