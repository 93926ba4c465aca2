"""A real cluster (balancer + agent CLI subprocesses) and a real Chromium for the panel tests.

One cluster and one browser per module keep the browser tests fast; each test gets its own
page. Waiting is done on the management SSE stream or with Playwright's auto-waiting
``expect``, never by sleeping.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e_cluster import (
    Cluster,
    conversation,
    desired_state,
    free_port,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
#: Context size the cluster starts with; the model-page test swaps away from it.
INITIAL_CONTEXT_SIZE = 2048


class PanelCluster(Cluster):
    """A ``Cluster`` whose balancer also serves the admin panel and keeps its desired state in
    a file (so that it survives the restart test)."""

    def __init__(self, tmp: Path, model_path: Path) -> None:
        self.panel_addr = f"127.0.0.1:{free_port()}"
        super().__init__(
            tmp,
            model_path,
            web_admin_panel_addr=self.panel_addr,
            state_database=(tmp / "state.json").as_uri(),
        )
        self.initial_context_size = INITIAL_CONTEXT_SIZE

    @property
    def panel_url(self) -> str:
        return f"http://{self.panel_addr}"

    @property
    def management_addr(self) -> str:
        return f"127.0.0.1:{self.management_port}"

    @property
    def inference_addr(self) -> str:
        return f"127.0.0.1:{self.inference_port}"

    def put_desired_state(self, state: dict[str, Any]) -> None:
        response = self.put_state(state)
        assert response.status_code == 204, response.text

    def get(self, path: str) -> Any:
        return self.http.get(f"{self.management_url}{path}", timeout=5.0).json()

    def generate_in_background(self, prompt: str, max_tokens: int) -> threading.Thread:
        """Stream one chat answer over HTTP NDJSON on a thread (load for the live views)."""
        url = f"{self.inference_url}/api/v1/continue_from_conversation_history"
        body = conversation(prompt, max_tokens)

        def run() -> None:
            with httpx.stream("POST", url, json=body, timeout=60.0) as response:
                for _line in response.iter_lines():
                    pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def wait_applied(self, name: str, slots: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until agent ``name`` has applied the state and reports ``slots`` slots."""
        return self.wait_agents(
            lambda agents: any(
                a["name"] == name
                and a["slots_total"] == slots
                and a["state_application_status"] == "Applied"
                for a in agents
            ),
            timeout,
            f"agent {name} to apply the state with {slots} slots",
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[PanelCluster]:
    cluster = PanelCluster(tmp_path_factory.mktemp("panel-cluster"), model_path)
    try:
        cluster.start_balancer()
        cluster.put_desired_state(
            desired_state(model_path, context_size=INITIAL_CONTEXT_SIZE, penalty_last_n=-1)
        )
        cluster.start_agent("panel-agent", slots=2)
        cluster.wait_applied("panel-agent", 2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian Chromium is missing: apt-get install -y chromium (scripts/bootstrap)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 860},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A fresh tab; JavaScript errors on it fail the test."""
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def save_screenshot() -> Callable[[Any, str], None]:
    """Save a full-page screenshot into docs/screenshots/ (the docs show them)."""

    def save(page: Any, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar belongs at the top
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

    return save
