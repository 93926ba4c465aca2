"""The admin panel's login prompt in a real Chromium, against a real balancer started with
``--management-api-key`` and ``--api-key``: it asks for the management key on the first 401,
keeps it in the tab's session storage, sends it as a bearer header (the live streams too) and
logs out; the prompt page asks for an API key when the inference socket is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_cluster import Cluster, free_port
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

KEY = "panel-login-key"
API_KEY = "panel-inference-key"
STORAGE_KEY = "paddler.managementApiKey"


@pytest.fixture(scope="module")
def panel_url(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[str]:
    panel_addr = f"127.0.0.1:{free_port()}"
    cluster = Cluster(
        tmp_path_factory.mktemp("panel-login"), model_path, web_admin_panel_addr=panel_addr
    )
    try:
        cluster.start_balancer(
            "--management-api-key", KEY, "--api-key", API_KEY, "--agent-token", "join-token"
        )
        yield f"http://{panel_addr}"
    finally:
        cluster.stop()


def log_in(page: Any, key: str) -> None:
    dialog = page.locator("[data-role=login]")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Management API key").fill(key)
    with page.expect_navigation():
        dialog.get_by_role("button", name="Log in").click()


def test_the_panel_asks_for_the_key_and_sends_it(
    panel_url: str, page: Any, save_screenshot: Callable[[Any, str], None]
) -> None:
    """A wrong key is refused with a message; the right one opens the live dashboard, and
    every management call (the SSE streams included) carries it as a header, never in a URL."""
    page.goto(panel_url + "/")
    message = page.locator("[data-role=login-message]")
    expect(message).to_contain_text("needs a key")
    save_screenshot(page, "panel-login.png")

    log_in(page, "not-the-key")
    expect(message).to_contain_text("refused this key")

    management_requests: list[Any] = []
    page.on(
        "request",
        lambda request: management_requests.append(request) if "/api/v1/" in request.url else None,
    )
    log_in(page, KEY)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("[data-role=login]")).to_have_count(0)
    assert page.evaluate(f"sessionStorage.getItem('{STORAGE_KEY}')") == KEY
    # The "add an agent" command says a join token is needed (never what it is).
    expect(page.locator(".command-box")).to_contain_text("--token $PADDLER_AGENT_TOKEN")

    streams = [r for r in management_requests if r.url.endswith("/stream")]
    assert {r.url.rsplit("/api/v1/", 1)[1] for r in streams} >= {
        "pools/stream",
        "pools/default/agents/stream",
        "pools/default/buffered_requests/stream",
    }
    for request in management_requests:
        assert request.headers.get("authorization") == f"Bearer {KEY}", request.url
        assert KEY not in request.url


def test_the_key_is_kept_per_tab_and_log_out_forgets_it(panel_url: str, page: Any) -> None:
    """Another page of the same tab needs no new login; "Log out" asks again."""
    page.goto(panel_url + "/")
    log_in(page, KEY)
    with page.expect_response(
        lambda response: (
            response.url.endswith("/api/v1/balancer_desired_state") and response.status == 200
        )
    ):
        page.goto(panel_url + "/model")
    expect(page.locator("[data-role=login]")).to_have_count(0)
    with page.expect_navigation():
        page.locator("[data-role=logout]").click()
    expect(page.locator("[data-role=login]")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{STORAGE_KEY}')") is None


def test_the_prompt_page_asks_for_an_api_key(panel_url: str, page: Any) -> None:
    """The inference socket is refused without a key; a wrong key is refused too; with the
    right one (offered as a subprotocol) the socket goes live."""
    page.goto(panel_url + "/")
    log_in(page, KEY)
    page.goto(panel_url + "/prompt")
    form = page.locator("[data-role=api-key]")
    message = page.locator("[data-role=api-key-message]")
    state = page.locator("[data-role=socket-state]")

    def use_key(key: str) -> None:
        form.get_by_label("API key").fill(key)
        with page.expect_navigation():
            form.get_by_role("button", name="Use this key").click()

    expect(message).to_contain_text("needs an API key")
    use_key("wrong-key")
    expect(message).to_contain_text("refused this API key")
    use_key(API_KEY)
    expect(state).to_have_attribute("data-state", "live")
    expect(form).to_be_hidden()
