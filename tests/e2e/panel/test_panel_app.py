"""The admin panel app on its own: shell, assets, favicon, health (no browser, no cluster)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from paddler.balancer import BalancerConfig
from paddler_server._options import Address, parse_address
from paddler_server._settings import BalancerSettings
from paddler_server.admin_panel import create_admin_panel_app

CONFIG = BalancerSettings(
    management_addr=parse_address("localhost:8060"),
    inference_addr=parse_address("127.0.0.1:8061"),
    compat_openai_addr=None,
    balancer=BalancerConfig(buffered_request_timeout=2.5, max_buffered_requests=7),
    statsd_addr=parse_address("statsd.internal:8125"),
    statsd_prefix="fleet_",
    statsd_reporting_interval_ms=5000,
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Litestar]]:
    with TestClient(app=create_admin_panel_app(CONFIG)) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "page"), [("/", "dashboard"), ("/model", "model"), ("/prompt", "prompt")]
)
def test_pages_carry_the_cli_strings(client: TestClient[Litestar], path: str, page: str) -> None:
    """Each page is the shell with the balancer's settings exactly as typed on the CLI."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f'data-page="{page}"' in html
    assert 'data-management-addr="localhost:8060"' in html
    assert 'data-inference-addr="127.0.0.1:8061"' in html
    assert 'data-compat-openai-addr=""' in html
    assert 'data-buffered-request-timeout-millis="2500"' in html
    assert 'data-max-buffered-requests="7"' in html
    assert 'data-statsd-addr="statsd.internal:8125"' in html
    assert 'data-statsd-prefix="fleet_"' in html
    assert 'data-statsd-reporting-interval-millis="5000"' in html


@pytest.mark.parametrize("path", ["/agents", "/model/extra", "/a/b/c.html"])
def test_any_other_path_is_the_shell(client: TestClient[Litestar], path: str) -> None:
    """Paddler's catch-all route: every other path answers 200 with the shell (the script then
    says there is no such page); assets and the favicon keep their own routes."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-page="not-found"' in response.text
    assert 'data-management-addr="localhost:8060"' in response.text
    assert client.get("/static/missing.js").status_code == 404


def test_addresses_are_escaped() -> None:
    """A hostile address string cannot inject markup into the shell."""
    hostile = Address(host="x", port=1, original='x"><script>alert(1)</script>')
    app = create_admin_panel_app(BalancerSettings(management_addr=hostile))
    with TestClient(app=app) as client:
        html = client.get("/").text
    assert "<script>alert(1)</script>" not in html


def test_every_module_the_shell_loads_is_served(client: TestClient[Litestar]) -> None:
    """main.js and everything it imports transitively are served as JavaScript."""
    pending, seen = ["main.js"], set()
    while pending:
        name = pending.pop()
        seen.add(name)
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert "javascript" in response.headers["content-type"], name
        for imported in re.findall(r'from "\./([\w.]+\.js)"', response.text):
            if imported not in seen:
                pending.append(imported)
    assert {"dashboard.js", "model.js", "prompt.js", "api.js"} <= seen
    assert client.get("/static/panel.css").headers["content-type"].startswith("text/css")


def test_favicon_and_health(client: TestClient[Litestar]) -> None:
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 200
    assert favicon.headers["content-type"] == "image/svg+xml"
    assert favicon.text.lstrip().startswith("<svg")
    health = client.get("/health")
    assert (health.status_code, health.text) == (200, "OK")
