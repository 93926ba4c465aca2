"""Host checks (DNS rebinding) and exact CORS origins on a real ``paddler balancer``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from secured_cluster import SecuredCluster, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[SecuredCluster]:
    panel_port = free_port()
    cluster = SecuredCluster(
        tmp_path_factory.mktemp("host-check"),
        model_path,
        web_admin_panel_addr=f"0.0.0.0:{panel_port}",
    )
    cluster.panel_port = panel_port  # type: ignore[attr-defined]
    try:
        cluster.start_balancer("--allowed-hosts", "paddler.example.com,*.gpu.example")
        yield cluster
    finally:
        cluster.stop()


def get(url: str, host: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers={"Host": host, **headers}, timeout=10.0)


def test_a_rebound_name_is_refused_on_every_loopback_service(cluster: SecuredCluster) -> None:
    """A page on evil.example pointed at 127.0.0.1 gets 403, naming the host and the flag."""
    for url in (f"{cluster.management_url}/api/v1/agents", f"{cluster.inference_url}/health"):
        response = get(url, "evil.example:8061")
        assert response.status_code == 403
        description = response.json()["error"]["description"]
        assert "'evil.example:8061'" in description and "--allowed-hosts" in description


def test_loopback_names_and_allowed_hosts_are_answered(cluster: SecuredCluster) -> None:
    """localhost, 127.0.0.1, [::1] and the --allowed-hosts entries (with wildcards) pass."""
    url = f"{cluster.management_url}/api/v1/agents"
    port = cluster.management_port
    for host in (
        f"localhost:{port}",
        f"127.0.0.1:{port}",
        f"[::1]:{port}",
        "paddler.example.com",
        "box1.gpu.example",
    ):
        assert get(url, host).status_code == 200, host
    assert get(url, "gpu.example").status_code == 403


def test_a_websocket_handshake_with_a_rebound_host_is_refused(cluster: SecuredCluster) -> None:
    """The inference socket is checked at the handshake too (a raw upgrade request: client
    libraries set Host from the URL)."""
    request = (
        "GET /api/v1/inference_socket HTTP/1.1\r\n"
        "Host: evil.example\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", cluster.inference_port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 403"), answer


def test_the_panel_on_every_interface_allows_exact_origins_only(cluster: SecuredCluster) -> None:
    """CORS names exact origins (loopback names, --allowed-hosts), no any-host pattern."""
    port = cluster.panel_port  # type: ignore[attr-defined]
    url = f"{cluster.management_url}/api/v1/agents"

    def allowed(origin: str) -> bool:
        response = get(url, "127.0.0.1", Origin=origin)
        return response.headers.get("access-control-allow-origin") == origin

    assert allowed(f"http://localhost:{port}")
    assert allowed(f"http://127.0.0.1:{port}")
    assert allowed(f"http://paddler.example.com:{port}")
    assert not allowed(f"http://evil.example:{port}")
    assert not allowed(f"http://10.66.66.66:{port}")
