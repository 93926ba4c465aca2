"""TLS with a CA made in the test (``trustme``): a real balancer on https/wss, a real agent
joining over wss with ``--tls-ca``, and a real inference request over https."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from secured_cluster import SecuredCluster, wait_for_log

pytestmark = [pytest.mark.e2e, pytest.mark.model]

TOKEN = "tls-agent-token"


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate chain, server key) for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (directory / name for name in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key_file))
    return ca_file, cert_file, key_file


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, ca_files: tuple[Path, Path, Path]
) -> Iterator[SecuredCluster]:
    ca_file, cert_file, key_file = ca_files
    cluster = SecuredCluster(tmp_path_factory.mktemp("tls-cluster"), model_path, ca_file=ca_file)
    try:
        cluster.start_balancer(
            "--tls-cert", str(cert_file), "--tls-key", str(key_file), "--agent-token", TOKEN
        )
        cluster.load_model()
        cluster.start_agent_with(
            "tls-agent",
            "--token",
            TOKEN,
            "--tls-ca",
            str(ca_file),
            management=f"wss://127.0.0.1:{cluster.management_port}",
        )
        cluster.wait_ready(1)
        yield cluster
    finally:
        cluster.stop()


def test_inference_over_https_through_an_agent_on_wss(cluster: SecuredCluster) -> None:
    """The agent joined over wss (checked against the private CA) and answers over https."""
    body = {
        "add_generation_prompt": True,
        "conversation_history": [{"role": "user", "content": "Say hello."}],
        "enable_thinking": False,
        "max_tokens": 8,
    }
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history", json=body
    )
    assert response.status_code == 200, response.text
    assert response.url.scheme == "https"
    lines = response.text.splitlines()
    assert any('"ContentToken"' in line for line in lines)
    assert '"Done"' in lines[-1]


def test_an_agent_that_does_not_trust_the_certificate_is_not_joined(
    cluster: SecuredCluster,
) -> None:
    """Without --tls-ca the private CA is unknown: the agent says so and keeps retrying."""
    agent = cluster.start_agent_with(
        "untrusting", "--token", TOKEN, management=f"https://127.0.0.1:{cluster.management_port}"
    )
    log = wait_for_log(agent, "CERTIFICATE_VERIFY_FAILED")
    assert "wss://127.0.0.1" in log
    assert agent.alive
    assert [agent["name"] for agent in cluster.agents_snapshot()] == ["tls-agent"]


def test_plain_http_is_not_served(cluster: SecuredCluster) -> None:
    """The TLS port speaks only TLS."""
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{cluster.inference_port}/health", timeout=10.0)
