"""The panel's shell in a real Chromium, served by uvicorn without a cluster behind it.

Checks what the page reads from the shell: Paddler's ``-millis`` data attributes reach the
configuration card, and a path that is no page shows the not-found view (Paddler's catch-all).
The management address points nowhere; the page only shows that it cannot connect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from e2e_cluster import free_port
from playwright.sync_api import expect

from paddler.balancer import BalancerConfig
from paddler_server._options import parse_address
from paddler_server._settings import BalancerSettings
from paddler_server.admin_panel import create_admin_panel_app

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def panel_url() -> Iterator[str]:
    config = BalancerSettings(
        management_addr=parse_address(f"127.0.0.1:{free_port()}"),
        inference_addr=parse_address(f"127.0.0.1:{free_port()}"),
        balancer=BalancerConfig(buffered_request_timeout=2.5),
        statsd_addr=parse_address("statsd.internal:8125"),
        statsd_reporting_interval_ms=7000,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_admin_panel_app(config), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start the panel"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_configuration_comes_from_the_millis_attributes(panel_url: str, page: Any) -> None:
    page.goto(panel_url + "/")
    configuration = page.locator("[data-role=configuration]")
    expect(configuration).to_contain_text("2500 ms")
    expect(configuration).to_contain_text("7000 ms")


def test_an_unknown_path_shows_the_not_found_view(panel_url: str, page: Any) -> None:
    page.goto(panel_url + "/no/such/page")
    expect(page.locator("[data-role=not-found]")).to_contain_text("/no/such/page")
    page.locator("[data-role=not-found] a").click()
    expect(page).to_have_url(panel_url + "/")
    expect(page.locator("[data-role=configuration]")).to_be_visible()
