"""A real local HTTP server standing in for a model host and for the Hugging Face file routes.

It serves files with ``Range`` support and can be told, per path, to answer with a status, to
drop the connection after some bytes, to ignore ``Range``, or to hold the response until the
test releases it; also to misbehave: reset the connection, answer with bytes that are not HTTP,
or send a body without a length. Every request it receives is recorded.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Route:
    body: bytes = b""
    status: int | None = None  # answer this status instead of the file
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on every answer
    drop_after: int | None = None  # close the connection after this many body bytes (once)
    ignore_range: bool = False
    wrong_content_range: bool = False  # answer a Range request with a 206 from byte 0 (once)
    hold: threading.Event | None = None  # wait for this before sending the body
    stall_after: int | None = None  # send this many body bytes, then wait for ``hold`` (once)
    hugging_face: bool = False  # add the hub's metadata headers
    reset: bool = False  # reset the connection (RST) instead of answering
    garbage: bytes | None = None  # write these bytes instead of an HTTP response, then close
    no_length: bool = False  # no Content-Length: the body ends when the connection closes


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up (on purpose, in these tests) are not errors


class FileServer:
    """The server's state, shared with its handler threads."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.got_request = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)

    def add_hugging_face_file(self, repo_id: str, filename: str, body: bytes) -> None:
        self.add(f"/{repo_id}/resolve/main/{filename}", Route(body=body, hugging_face=True))

    def seen(self, path: str, method: str = "GET") -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path == path and r.method == method]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)
        self.got_request.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        for route in self.routes.values():
            if route.hold is not None:
                route.hold.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, *, send_body: bool) -> None:
            server.record(Seen(self.command, self.path, dict(self.headers.items())))
            route = server.routes.get(self.path)
            if route is None:
                self._status(404, {"X-Error-Code": "RepoNotFound"})
                return
            if route.reset:
                linger = struct.pack("ii", 1, 0)  # close with RST, not FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.close_connection = True
                return
            if route.garbage is not None:
                self.wfile.write(route.garbage)
                self.wfile.flush()
                self.close_connection = True
                return
            if route.status is not None:
                self._status(route.status, route.headers)
                return
            body = route.body
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            headers = dict(route.headers)
            if route.hugging_face:
                headers["X-Repo-Commit"] = COMMIT
                headers["ETag"] = '"' + hashlib.sha256(body).hexdigest() + '"'
            if match and route.wrong_content_range:
                route.wrong_content_range = False
                self.send_response(206)
                headers["Content-Range"] = f"bytes 0-{len(body) - 1}/{len(body)}"
            elif match and not route.ignore_range:
                start = int(match.group(1))
                if start >= len(body):
                    headers["Content-Range"] = f"bytes */{len(body)}"
                    self._status(416, headers)
                    return
                self.send_response(206)
                headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            else:
                self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            if route.no_length:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(body) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not send_body:
                return
            payload = body[start:]
            if route.stall_after is not None and route.hold is not None:
                cut, route.stall_after = route.stall_after, None
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                route.hold.wait(30)
                self.close_connection = True
                return
            if route.hold is not None:
                route.hold.wait(30)
            if route.drop_after is not None:
                cut, route.drop_after = route.drop_after, None
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(payload)

        def _status(self, status: int, headers: dict[str, str]) -> None:
            body = f"status {status}".encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
