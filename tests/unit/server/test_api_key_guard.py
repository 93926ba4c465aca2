"""API keys over real sockets: the inference and OpenAI apps behind ``ApiKeyGuard``.

A real ``Balancer`` with no agent: an admitted generation waits in the buffer, which is what
holds a key's concurrent request open while the next one is refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from paddler.balancer import Balancer, BalancerConfig
from paddler.metrics import BalancerMetrics
from paddler_server._api_keys import ApiKeyStore, keys_from_flags
from paddler_server._key_guard import ApiKeyGuard
from paddler_server._key_limits import KeyLimits
from paddler_server.inference import create_inference_app
from paddler_server.openai import create_openai_app
from paddler_server.serve import serve_apps

pytestmark = pytest.mark.anyio

RAW = {"raw_prompt": "Hi", "max_tokens": 4, "grammar": None}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Services:
    def __init__(self, balancer: Balancer, store: ApiKeyStore, metrics: BalancerMetrics) -> None:
        self.balancer = balancer
        self.store = store
        self.metrics = metrics
        self.inference = ""
        self.openai = ""

    def metrics_text(self) -> str:
        return self.metrics.render(self.balancer.statistics()).decode()


@pytest.fixture
async def services(request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    """The two services behind one key store; an indirect parameter is the buffer's timeout
    (60 s otherwise)."""
    metrics = BalancerMetrics()
    store = ApiKeyStore(metrics=metrics.keys)
    config = BalancerConfig(buffered_request_timeout=getattr(request, "param", 60.0))
    async with Balancer(config, metrics=metrics) as balancer, anyio.create_task_group() as tg:
        inference = ApiKeyGuard(
            create_inference_app(balancer), store, style="paddler", balancer=balancer
        )
        openai = ApiKeyGuard(create_openai_app(balancer), store, style="openai", balancer=balancer)
        bound = await tg.start(serve_apps, [(inference, "127.0.0.1", 0), (openai, "127.0.0.1", 0)])
        found = Services(balancer, store, metrics)
        found.inference, found.openai = (f"http://{h}:{p}" for h, p in bound)
        yield found
        tg.cancel_scope.cancel()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def use_keys(services: Services, **limits: Any) -> None:
    (key,) = keys_from_flags(["alice-key"])
    services.store.replace([_named(key, "alice", KeyLimits(**limits))])


def _named(key: Any, name: str, limits: KeyLimits) -> Any:
    import attrs

    return attrs.evolve(key, name=name, limits=limits)


async def wait_buffered(balancer: Balancer, count: int) -> None:
    with anyio.fail_after(10):
        async for snapshot in balancer.subscribe_buffered_requests():
            if snapshot.buffered_requests_current == count:
                return


async def wait_released(services: Services) -> None:
    """Until alice's requests in flight are 0: the guard releases a request's slot after its
    response has ended, which no event marks, so this polls (bounded by a safety timeout)."""
    tenant = services.store.authenticate("alice-key")
    assert tenant is not None
    with anyio.fail_after(10):
        while tenant.limiter.in_flight:  # noqa: ASYNC110 - nothing to wait on (see above)
            await anyio.sleep(0.01)


async def test_an_empty_store_refuses_everything(services: Services) -> None:
    """A keys file with no entries yet closes the service (keys may come with a reload)."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{services.inference}/api/v1/continue_from_raw_prompt", headers=bearer("alice-key")
        )
    assert response.status_code == 401


async def test_missing_and_wrong_keys_get_401_in_each_shape(services: Services) -> None:
    """Native routes answer Paddler's error body, /v1 OpenAI's envelope; /health stays open."""
    use_keys(services)
    async with httpx.AsyncClient() as http:
        missing = await http.post(f"{services.inference}/api/v1/continue_from_raw_prompt")
        wrong = await http.post(
            f"{services.inference}/api/v1/continue_from_raw_prompt", headers=bearer("nope")
        )
        openai = await http.post(f"{services.openai}/v1/chat/completions", headers=bearer("nope"))
        models = await http.get(f"{services.openai}/v1/models")
        health = [await http.get(f"{url}/health") for url in (services.inference, services.openai)]
        right = await http.post(
            f"{services.inference}/api/v1/continue_from_raw_prompt", headers=bearer("alice-key")
        )
        basic = await http.post(  # a URL http://key:KEY@host sends the key as Basic auth
            f"{services.inference}/api/v1/continue_from_raw_prompt", auth=("key", "alice-key")
        )
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == 401
    assert "Authorization: Bearer" in missing.json()["error"]["description"]
    assert wrong.json() == {"error": {"code": 401, "description": "Invalid API key"}}
    assert openai.status_code == 401
    assert openai.json()["error"]["code"] == "invalid_api_key"
    assert openai.json()["error"]["type"] == "invalid_request_error"
    assert models.status_code == 401
    assert [r.text for r in health] == ["OK", "OK"]
    assert right.status_code == 400  # past the key check: the empty body is the app's 400
    assert basic.status_code == 400
    text = services.metrics_text()
    assert 'paddler_api_key_refused_total{reason="missing"} 2.0' in text
    assert 'paddler_api_key_refused_total{reason="invalid"} 2.0' in text


async def test_concurrency_limit_429_and_the_slot_comes_back(services: Services) -> None:
    """With max_concurrent_requests = 1, a second request gets 429 and Retry-After while the
    first waits; once the first is gone, the key may send again; the buffered request carries
    the key's name, not its secret."""
    use_keys(services, max_concurrent_requests=1)
    url = f"{services.inference}/api/v1/continue_from_raw_prompt"
    async with httpx.AsyncClient(headers=bearer("alice-key")) as http:
        async with http.stream("POST", url, json=RAW) as first:
            await wait_buffered(services.balancer, 1)
            (waiter,) = list(services.balancer.buffer)
            assert waiter.request.tenant is not None
            assert waiter.request.tenant.name == "alice"
            assert "authorization" not in waiter.request.headers
            second = await http.post(url, json=RAW)
            openai = await http.post(
                f"{services.openai}/v1/completions", json={"model": "m", "prompt": "Hi"}
            )
            assert first.status_code == 200
        await wait_buffered(services.balancer, 0)
        await wait_released(services)
        async with http.stream("POST", url, json=RAW) as third:
            await wait_buffered(services.balancer, 1)
            assert third.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "1"
    assert "max_concurrent_requests limit (1)" in second.json()["error"]["description"]
    assert openai.status_code == 429
    assert openai.json()["error"]["code"] == "rate_limit_exceeded"
    assert openai.headers["retry-after"] == "1"
    text = services.metrics_text()
    assert 'paddler_key_requests_total{key_name="alice",outcome="429"} 2.0' in text
    assert 'paddler_requests_total{outcome="429"} 2.0' in text
    assert "alice-key" not in text


async def test_websocket_header_and_subprotocol_keys(services: Services) -> None:
    """The socket refuses a handshake without a key with 401; it takes the header, or the
    subprotocols paddler + paddler.bearer.KEY (and then accepts with paddler)."""
    use_keys(services, max_concurrent_requests=1)
    url = services.inference.replace("http", "ws") + "/api/v1/inference_socket"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body or b"{}")["error"]["code"] == 401
    async with connect(url, additional_headers=bearer("alice-key")) as socket:
        assert socket.subprotocol is None
    offered: Any = ["paddler", "paddler.bearer.alice-key"]
    async with connect(url, subprotocols=offered) as socket:
        assert socket.subprotocol == "paddler"
        for request_id in ("r1", "r2"):
            frame = {"Request": {"id": request_id, "request": {"ContinueFromRawPrompt": RAW}}}
            await socket.send(json.dumps(frame))
        with anyio.fail_after(10):
            answer = json.loads(await socket.recv())
        await wait_buffered(services.balancer, 1)
        (waiter,) = list(services.balancer.buffer)
        assert "paddler.bearer" not in waiter.request.headers.get("sec-websocket-protocol", "")
    assert answer["Error"]["request_id"] == "r2"
    assert answer["Error"]["error"]["code"] == 429
    await wait_buffered(services.balancer, 0)
    await wait_released(services)


@pytest.mark.parametrize("services", [0.2], indirect=True)
async def test_a_failed_request_gives_its_slot_back(services: Services) -> None:
    """A request that ends in an error (here the buffer's 504: no agent) releases its key's
    concurrent-request slot, and counts once, as 504, for the key."""
    use_keys(services, max_concurrent_requests=1)
    url = f"{services.inference}/api/v1/continue_from_raw_prompt"
    async with httpx.AsyncClient(headers=bearer("alice-key")) as http:
        first = await http.post(url, json=RAW)
        await wait_released(services)
        second = await http.post(url, json=RAW)
    for response in (first, second):
        assert response.status_code == 200  # the stream had started: the error is in-band
        assert json.loads(response.text.splitlines()[-1])["Error"]["error"]["code"] == 504
    text = services.metrics_text()
    assert 'paddler_key_requests_total{key_name="alice",outcome="504"} 2.0' in text
    assert 'paddler_key_requests_total{key_name="alice",outcome="429"}' not in text
