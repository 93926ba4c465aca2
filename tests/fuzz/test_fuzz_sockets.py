"""Hypothesis on what schemathesis cannot reach: the inference WebSocket, the agent socket,
the desired-state PUT (only invalid bodies, so the cluster under test stays put), and the
SSE streams. Last, an ordinary request must still complete.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import pytest
from e2e_cluster import Cluster, conversation, is_done, ndjson
from fuzz_settings import EXAMPLES, SLOTS
from fuzz_strategies import bad_desired_state, inference_socket_frames, json_values
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.connection import Connection

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ANSWER_TIMEOUT = 120.0
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES * 3,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    # No shrinking: a failure is reported as found, and the run stays bounded.
    phases=[Phase.explicit, Phase.generate],
)


def terminal_or_error(message: dict[str, Any]) -> str | None:
    """The request id a frame ends, if it ends one."""
    if "Error" in message:
        request_id = message["Error"].get("request_id")
        return request_id if isinstance(request_id, str) else ""
    response = message.get("Response")
    if not isinstance(response, dict):
        return None
    result = response.get("response", {}).get("GeneratedToken")
    if isinstance(result, dict) and next(iter(result)) in {
        "ContentToken",
        "ReasoningToken",
        "ToolCallToken",
        "UndeterminableToken",
        "ToolCallParsed",
        "ToolCallParseFailed",
        "ToolCallValidationFailed",
        "UnrecognizedToolCallFormat",
    }:
        return None
    request_id = response.get("request_id")
    return request_id if isinstance(request_id, str) else ""


def error_code(message: dict[str, Any]) -> int:
    code = message.get("Error", {}).get("error", {}).get("code", 0)
    return code if isinstance(code, int) else 0


def run_session(socket: Connection, frames: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Send ``frames``; return every frame received until each request has its answer."""
    waiting: dict[str, int] = {}
    for kind, data in frames:
        if kind == "request":
            request_id, text = data
            waiting[request_id] = waiting.get(request_id, 0) + 1
            socket.send(text)
        else:
            socket.send(data)
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while any(waiting.values()):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no answer for {waiting} after {frames!r}; got {received}"
        try:
            message = json.loads(socket.recv(timeout=remaining))
        except TimeoutError:
            raise AssertionError(
                f"no answer for {waiting} after {frames!r}; got {received}"
            ) from None
        received.append(message)
        ended = terminal_or_error(message)
        if ended is not None and waiting.get(ended):
            waiting[ended] -= 1
    return received


def ordinary(socket: Connection, request_id: str) -> None:
    frame = {
        "Request": {
            "id": request_id,
            "request": {"ContinueFromConversationHistory": conversation(max_tokens=4)},
        }
    }
    received = run_session(socket, [("request", (request_id, json.dumps(frame)))])
    last = received[-1]
    done = last["Response"]["response"]["GeneratedToken"]
    assert "Done" in done, received


@FUZZ_SETTINGS
@given(frames=inference_socket_frames())
def test_fuzz_inference_socket(cluster: Cluster, frames: list[tuple[str, Any]]) -> None:
    """Every request gets a terminal or an Error for its id, none 5xx; the socket stays up."""
    with connect(cluster.inference_socket_url, open_timeout=10, close_timeout=2) as socket:
        received = run_session(socket, frames)
        server_errors = [m for m in received if error_code(m) >= 500]
        assert not server_errors, f"{frames!r} -> {server_errors}"
        ordinary(socket, "after-fuzz")


@FUZZ_SETTINGS
@given(
    agent_id=st.one_of(st.just("<real>"), st.text(min_size=1, max_size=12)),
    frames=st.lists(
        st.one_of(
            st.builds(json.dumps, json_values),
            st.just('"DeregisterAgent"'),
            st.just('{"Notification":"DeregisterAgent"}'),
            st.builds(
                lambda snapshot: json.dumps(
                    {"Notification": {"RegisterAgent": {"name": "intruder", **snapshot}}}
                ),
                st.dictionaries(st.text(max_size=8), json_values, max_size=3),
            ),
            st.builds(
                lambda rid, result: json.dumps(
                    {
                        "Response": {
                            "generated_by": None,
                            "request_id": rid,
                            "response": {"GeneratedToken": result},
                        }
                    }
                ),
                st.text(max_size=8),
                json_values,
            ),
            st.text(max_size=30),
        ),
        max_size=4,
    ),
)
def test_fuzz_agent_socket(
    cluster: Cluster, agent: dict[str, Any], agent_id: str, frames: list[str]
) -> None:
    """A stranger on the agent socket (even with the real agent's id) cannot unseat it."""
    if agent_id == "<real>":
        agent_id = agent["id"]
    quoted = urllib.parse.quote(agent_id, safe="")
    url = f"ws://127.0.0.1:{cluster.management_port}/api/v1/agent_socket/{quoted}"
    try:
        with connect(url, open_timeout=10, close_timeout=2) as socket:
            for frame in frames:
                socket.send(frame)
            try:
                while True:
                    socket.recv(timeout=0.2)
            except TimeoutError:
                pass
    except (ConnectionClosed, OSError):
        pass
    except Exception as exc:  # websockets' InvalidStatus: an HTTP answer to the upgrade
        status = getattr(getattr(exc, "response", None), "status_code", None)
        assert status is not None and status < 500, repr(exc)
    wait_only_agent(cluster, agent)


def wait_only_agent(cluster: Cluster, agent: dict[str, Any]) -> None:
    """The intruder's registration (if any) goes; the real agent's stays as it was."""
    cluster.wait_agents(
        lambda agents: (
            [(a["id"], a["slots_total"]) for a in agents] == [(agent["id"], agent["slots_total"])]
        ),
        10.0,
        "only the real agent registered",
    )


@pytest.fixture(scope="module")
def good_state(cluster: Cluster) -> dict[str, Any]:
    state: dict[str, Any] = cluster.http.get(
        f"{cluster.management_url}/api/v1/balancer_desired_state"
    ).json()
    return state


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_desired_state(
    cluster: Cluster, good_state: dict[str, Any], data: st.DataObject
) -> None:
    """A bad PUT gets a 4xx and changes nothing (a harmless equivalent may get 204)."""
    body = data.draw(bad_desired_state(good_state))
    try:
        assume(json.loads(body) != good_state)
    except (ValueError, RecursionError):
        pass
    url = f"{cluster.management_url}/api/v1/balancer_desired_state"
    response = cluster.http.put(url, content=body, headers={"content-type": "application/json"})
    stored = cluster.http.get(url)
    assert stored.status_code == 200, stored.text
    if stored.json() != good_state:
        cluster.put_state(good_state)  # put it back before failing, for the next tests
        cluster.wait_ready(1, slots=SLOTS)
    assert response.status_code < 500, f"{body[:300]!r} -> {response.status_code} {response.text}"
    assert stored.json() == good_state, (
        f"{body[:300]!r} -> {response.status_code} changed the state"
    )
    assert 400 <= response.status_code < 500 or response.status_code == 204, response.text


@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate])
@given(
    path=st.sampled_from(["/api/v1/agents/stream", "/api/v1/buffered_requests/stream"]),
    params=st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2),
    # Any header value HTTP allows (no control characters; obs-text bytes are fine).
    last_event_id=st.one_of(
        st.none(), st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=10)
    ),
)
def test_fuzz_sse_streams(
    cluster: Cluster, path: str, params: dict[str, str], last_event_id: str | None
) -> None:
    """The SSE streams answer any query and Last-Event-ID with a first snapshot."""
    headers: dict[str, bytes] = {}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id.encode()
    with cluster.http.stream(
        "GET", f"{cluster.management_url}{path}", params=params, headers=headers, timeout=10.0
    ) as response:
        assert response.status_code < 500, response.read()
        if response.status_code != 200:
            return
        for line in response.iter_lines():
            if line.startswith("data:"):
                json.loads(line[5:])
                break


def test_ordinary_request_after_fuzzing(cluster: Cluster) -> None:
    """Named last in the module: after all of the above, a plain generation completes."""
    response = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_conversation_history",
        json=conversation(max_tokens=8),
    )
    assert response.status_code == 200, response.text
    assert is_done(ndjson(response)[-1]), response.text
