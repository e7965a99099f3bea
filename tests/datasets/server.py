"""A loopback HTTP server for the fetch tests: 127.0.0.1, port 0, Range requests, scripted failures.

Started and stopped per test (see the `server` fixture); every request is recorded with its headers.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


Route = Callable[["_Handler", Request], None]


@dataclass
class LoopbackServer:
    files: dict[str, bytes] = field(default_factory=dict)
    # path -> number of bytes to send before dropping the connection, for the first GET of that path only
    drop_first: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False
    # paths served without Content-Length: the body ends when the server closes the connection
    no_length: set[str] = field(default_factory=set)
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def start(self) -> "LoopbackServer":
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def gets(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server_owner: LoopbackServer

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _record(self, method: str) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(method, self.path, {k: v for k, v in self.headers.items()}, body)
        self.server_owner.requests.append(request)
        return request

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        request = self._record(method)
        owner = self.server_owner
        route = owner.routes.get((method, self.path)) or owner.routes.get((method, urlsplit(self.path).path))
        if route is not None:
            route(self, request)
            return
        if method == "POST" or self.path not in owner.files:
            self.reply(404, b"not found")
            return
        self.serve_bytes(owner.files[self.path], request, head=method == "HEAD")

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def serve_bytes(self, data: bytes, request: Request, head: bool = False) -> None:
        owner = self.server_owner
        start, status, extra = 0, 200, {}
        match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        if match and not owner.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            status, extra = 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        body = data[start:]
        self.send_response(status)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        if self.path in owner.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        drop = owner.drop_first.pop(self.path, None) if request.method == "GET" else None
        if drop is not None:
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


def closed_port_url(path: str = "/file.bin") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
