"""The relay benchmark's keyed row: what API keys and their limits add to each request.

Two measurements, both reusing ``balancer.py``'s harness (its ``Cluster``, fixed-token agents
and inference-socket client):

* **in process**, without sockets: one request through ``ApiKeyGuard`` (header scan, SHA-256,
  constant-time compare, limits admitted and released, the tenant in context) and the
  per-request tenant reports (outcome, tokens, buffer wait into the per-key Prometheus series),
  against the same app unguarded. Low noise: this is the figure the budget is about.
* **end to end**: two real balancers side by side, one open and one with ``--api-keys-file``
  (a key with every limit set, so every check runs, and a priority). One-stream rows send
  requests alternately to the two (open, keyed, open, ...), so both see the same moments of a
  busy machine; the 32-stream row runs one balancer after the other. Median of the rounds.
  Added p50 = keyed - open, on the inference socket (limits per request) and on HTTP NDJSON
  (the key checked on every request). On a shared machine this difference is at the edge of
  the noise; the in-process figure is not.

    python benchmarks/keyed.py            # both
    python benchmarks/keyed.py --quick    # fewer requests, one round
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

import balancer as harness
from paddler.metrics import BalancerMetrics
from paddler_server._api_keys import ApiKeyStore, load_keys_file
from paddler_server._key_guard import ApiKeyGuard

KEY = "bench-key-7f3a9c"
KEYS_FILE = f"""
[[keys]]
name = "bench"
key = "{KEY}"
requests_per_minute = 1000000000
tokens_per_minute = 1000000000000
max_concurrent_requests = 1000000
priority = 5
"""

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/api/v1/continue_from_raw_prompt",
    "headers": [
        (b"host", b"127.0.0.1:8061"),
        (b"user-agent", b"python-httpx/0.28.1"),
        (b"accept", b"*/*"),
        (b"content-type", b"application/json"),
        (b"content-length", b"38"),
        (b"authorization", f"Bearer {KEY}".encode()),
    ],
}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def _receive() -> Any:
    return {"type": "http.request", "body": b""}


async def _send(message: Any) -> None:
    return None


def _keys(tmp: Path) -> Path:
    path = tmp / "keys.toml"
    path.write_text(KEYS_FILE)
    return path


async def in_process(calls: int, rounds: int) -> dict[str, float]:
    """Seconds per request: the open app, the guarded app, the per-request tenant reports."""
    metrics = BalancerMetrics()
    store = ApiKeyStore(load_keys_file(_keys(Path(tempfile.mkdtemp()))), metrics=metrics.keys)
    guarded = ApiKeyGuard(_app, store, style="paddler")
    tenant = store.authenticate(KEY)
    assert tenant is not None

    async def per_call(app: Any) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await app(SCOPE, _receive, _send)
        return (time.perf_counter() - started) / calls

    def reports() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            tenant.limiter.admit()  # what a socket request does instead of the HTTP guard
            tenant.observe_buffer_wait(0.0)
            tenant.count_tokens(prompt=3, generated=16)
            tenant.count_request("ok")
            tenant.limiter.release()
        return (time.perf_counter() - started) / calls

    cells: dict[str, list[float]] = {"open": [], "guarded": [], "reports": []}
    for _ in range(rounds):
        cells["open"].append(await per_call(_app))
        cells["guarded"].append(await per_call(guarded))
        cells["reports"].append(reports())
    return {name: harness.median(values) for name, values in cells.items()}


async def paired_socket(urls: dict[str, str], requests: int, tokens: int) -> dict[str, float]:
    """One stream per balancer, requests alternating between them (open, keyed, open, ...), so
    both see the same moments of a busy machine; the p50 of each."""
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    sockets = {name: await connect(url, max_size=None) for name, url in urls.items()}
    clients = {name: harness.SocketClient(socket) for name, socket in sockets.items()}
    try:
        async with anyio.create_task_group() as readers:
            for client in clients.values():
                readers.start_soon(client.reader)
            for _ in range(requests):
                for name, client in clients.items():
                    latencies[name].append(await client.request(tokens))
            readers.cancel_scope.cancel()
    finally:
        for socket in sockets.values():
            await socket.close()
    return {name: harness.percentile(values, 0.5) for name, values in latencies.items()}


async def paired_http(
    bases: dict[str, tuple[str, dict[str, str]]], requests: int
) -> dict[str, float]:
    """Sequential 1-token NDJSON requests, alternating between the balancers; p50 of each."""
    body = {"raw_prompt": "x", "max_tokens": 1}
    latencies: dict[str, list[float]] = {name: [] for name in bases}
    clients = {
        name: httpx.AsyncClient(timeout=60, headers=headers) for name, (_, headers) in bases.items()
    }
    try:
        for _ in range(requests):
            for name, (base, _) in bases.items():
                started = time.perf_counter()
                response = await clients[name].post(
                    f"{base}/api/v1/continue_from_raw_prompt", json=body
                )
                latencies[name].append(time.perf_counter() - started)
                assert b'"Done"' in response.content, response.content[:200]
    finally:
        for client in clients.values():
            await client.aclose()
    return {name: harness.percentile(values, 0.5) for name, values in latencies.items()}


async def end_to_end(rounds: int, scale: float, tokens: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="paddler-keyed-"))
    clusters = await anyio.to_thread.run_sync(
        lambda: (
            harness.Cluster(agents=1, slots=64),
            harness.Cluster(agents=1, slots=64, extra_args=["--api-keys-file", str(_keys(tmp))]),
        )
    )
    open_cluster, keyed_cluster = clusters
    urls = {
        "open": f"ws://{open_cluster.inference}/api/v1/inference_socket",
        "keyed": f"ws://key:{KEY}@{keyed_cluster.inference}/api/v1/inference_socket",
    }
    bases = {
        "open": (f"http://{open_cluster.inference}", {}),
        "keyed": (f"http://{keyed_cluster.inference}", {"authorization": f"Bearer {KEY}"}),
    }
    cells: dict[str, list[float]] = {}

    def keep(path: str, p50s: dict[str, float]) -> None:
        for name, value in p50s.items():
            cells.setdefault(f"{name} {path}", []).append(value)

    requests = max(100, int(1000 * scale))
    try:
        for url in urls.values():  # warm up (imports, connections)
            await harness.balancer_latencies(url, 8, 200, tokens, 4)
        for _ in range(rounds):
            keep("ws 1x1", await paired_socket(urls, requests, 1))
            keep(f"ws 1x{tokens}", await paired_socket(urls, requests, tokens))
            keep("http 1x1", await paired_http(bases, requests))
            for name, url in urls.items():  # 32 streams at once: one balancer after the other
                through, _ = await harness.balancer_latencies(url, 32, 4 * requests, tokens, 8)
                cells.setdefault(f"{name} ws 32x{tokens}", []).append(
                    harness.percentile(through, 0.5)
                )
    finally:
        for cluster in clusters:
            cluster.stop()
    return {name: harness.median(values) for name, values in cells.items()}


def report(local: dict[str, float], remote: dict[str, float] | None, tokens: int) -> None:
    print("Keyed row: what an API key with every limit set adds per request (p50)")
    added = local["guarded"] - local["open"]
    print(
        f"  in process: HTTP key check + limits {added * 1e3:7.4f} ms, per-request limits "
        f"and per-key metrics {local['reports'] * 1e3:7.4f} ms, together "
        f"{(added + local['reports']) * 1e3:7.4f} ms"
    )
    if remote is None:
        return
    print(f"  end to end ({tokens} tokens unless noted; keyed - open):")
    print(f"{'path':>22} {'open p50':>9} {'keyed p50':>10} {'added p50':>10}  (ms)")
    rows = (
        ("socket, 1 stream, 1 tok", "ws 1x1"),
        (f"socket, 1 stream, {tokens} tok", f"ws 1x{tokens}"),
        (f"socket, 32 streams, {tokens}", f"ws 32x{tokens}"),
        ("HTTP NDJSON, 1 tok", "http 1x1"),
    )
    for label, key in rows:
        plain, keyed = remote[f"open {key}"], remote[f"keyed {key}"]
        print(
            f"{label:>22} {harness.ms(plain):>9} {harness.ms(keyed):>10} "
            f"{harness.ms(keyed - plain):>10}"
        )


async def benchmark(quick: bool, tokens: int, rounds: int, local_only: bool) -> None:
    scale = 0.25 if quick else 1.0
    rounds = 1 if quick else rounds
    print(harness.load_average())
    local = await in_process(int(20000 * scale), max(rounds, 3))
    remote = None if local_only else await end_to_end(rounds, scale, tokens)
    print(harness.load_average())
    report(local, remote, tokens)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per request")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians)")
    parser.add_argument("--in-process", action="store_true", help="skip the real balancers")
    args = parser.parse_args()
    anyio.run(
        benchmark,
        args.quick,
        args.tokens,
        args.rounds,
        args.in_process,
        backend_options=harness._backend_options(),
    )


if __name__ == "__main__":
    main()
