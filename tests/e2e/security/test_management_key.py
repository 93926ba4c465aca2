"""``--management-api-key`` on a real ``paddler balancer``: what is closed, what stays open,
and how each client sends the key."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from secured_cluster import SecuredCluster

pytestmark = pytest.mark.e2e

KEY = "management-key-for-tests"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[SecuredCluster]:
    cluster = SecuredCluster(
        tmp_path_factory.mktemp("management-key"), model_path, management_key=KEY
    )
    try:
        cluster.start_balancer("--management-api-key", KEY)
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/agents",
        "/api/v1/agents/stream",
        "/api/v1/buffered_requests",
        "/api/v1/balancer_desired_state",
        "/api/v1/balancer_applicable_state",
        "/api/v1/pools",
        "/api/v1/pools/stream",
        "/api/v1/pools/default/desired_state",
        "/api/v1/pools/default/agents/stream",
        "/api/v1/pools/default/buffered_requests",
        "/metrics",
    ],
)
def test_every_management_route_needs_the_key(cluster: SecuredCluster, path: str) -> None:
    """Without the key, or with a wrong one: 401 in Paddler's error shape, naming the flag."""
    url = cluster.management_url + path
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
        response = httpx.get(url, headers=headers, timeout=10.0)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "--management-api-key" in response.json()["error"]["description"]
    if not path.endswith("/stream"):
        assert cluster.http.get(url).status_code == 200


def test_health_stays_open(cluster: SecuredCluster) -> None:
    """Probes need no key, on the management and the inference service."""
    for url in (cluster.management_url, cluster.inference_url):
        assert httpx.get(f"{url}/health", timeout=10.0).text == "OK"


def test_a_put_without_the_key_changes_nothing(cluster: SecuredCluster, model_path: Path) -> None:
    """The desired state (what every agent downloads) cannot be set without the key."""
    url = f"{cluster.management_url}/api/v1/balancer_desired_state"
    before = cluster.http.get(url).json()
    state = {**before, "model": {"Url": {"url": "https://evil.example/model.gguf"}}}
    assert httpx.put(url, json=state, timeout=10.0).status_code == 401
    assert cluster.http.get(url).json() == before


def test_agents_join_without_the_management_key(cluster: SecuredCluster) -> None:
    """The agent socket is not the management key's: agents have their own --agent-token."""
    cluster.start_agent_with("keyless-agent")
    agents = cluster.wait_agents(lambda agents: len(agents) >= 1, 30.0, "the agent")
    assert [agent["name"] for agent in agents] == ["keyless-agent"]


def test_our_management_client_sends_the_key(cluster: SecuredCluster) -> None:
    """``paddler.client.ManagementClient(api_key=...)``; without it, an HTTP 401 error."""
    from paddler.client import ManagementClient

    async def main() -> None:
        async with ManagementClient(cluster.management_url, api_key=KEY) as client:
            assert (await client.agents()).agents is not None
            assert "requests_buffered" in await client.metrics()
        async with ManagementClient(cluster.management_url) as client:
            with pytest.raises(Exception, match="401"):
                await client.agents()

    asyncio.run(main())


def test_the_paddler_client_package_sends_the_key(cluster: SecuredCluster) -> None:
    """PyPI ``paddler-client``: an ``httpx.AsyncClient`` with the header, as docs/security.md
    shows."""
    from paddler_client.client_management import ClientManagement

    async def main() -> None:
        http = httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"})
        async with http:
            client = ClientManagement(cluster.management_url, http_client=http)
            snapshot = await client.get_agents()
            assert snapshot.agents is not None

    asyncio.run(main())


def test_set_state_takes_the_key(cluster: SecuredCluster, model_path: Path) -> None:
    """``paddler set-state`` reads PADDLER_MANAGEMENT_API_KEY; without it, a plain message."""
    command = [
        sys.executable,
        "-m",
        "paddler_server.cli",
        "set-state",
        "--management-addr",
        f"127.0.0.1:{cluster.management_port}",
        "--no-wait",
        "context_size=1024",
    ]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert "needs its management API key" in refused.stderr
    env = {**os.environ, "PADDLER_MANAGEMENT_API_KEY": KEY}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    url = f"{cluster.management_url}/api/v1/balancer_desired_state"
    assert cluster.http.get(url).json()["inference_parameters"]["context_size"] == 1024
