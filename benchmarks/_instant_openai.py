"""An OpenAI-compatible backend that answers at once: the thing a proxy is measured in front of.

``POST /v1/chat/completions`` answers ``max_tokens`` one-word chunks (streaming, with
``[DONE]``) or one completion (non-streaming); ``GET /v1/models`` lists one model. A bare ASGI
function under uvicorn (httptools, uvloop when installed), so the backend's own cost is as
small as a Python server gets, and it is the same for every proxy in front of it.

    python benchmarks/_instant_openai.py --port 8123
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

MODEL = "fixed"
WORD = "tok"


def _chunk(index: int, content: str | None, finish: str | None) -> bytes:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    if index == 0:
        delta["role"] = "assistant"
    body = {
        "id": "chatcmpl-instant",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _completion(tokens: int) -> bytes:
    body = {
        "id": "chatcmpl-instant",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": WORD * tokens},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
    }
    return json.dumps(body).encode()


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.endswith("/models"):
        payload = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        await _send_json(send, payload.encode())
        return
    request = json.loads(await _read_body(receive) or b"{}")
    tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or 16)
    if not request.get("stream"):
        await _send_json(send, _completion(tokens))
        return
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for index in range(tokens):
        await send(
            {"type": "http.response.body", "body": _chunk(index, WORD, None), "more_body": True}
        )
    await send(
        {"type": "http.response.body", "body": _chunk(tokens, None, "length"), "more_body": True}
    )
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _send_json(send: Any, payload: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off"
    )


if __name__ == "__main__":
    main()
