"""A small HTTP proxy for tests: forwards to a real server and injects faults on a schedule.

Faults, by the number of the POST request (1-based) modulo the schedule's length:
``429`` (with Retry-After), ``500``, ``stall`` (waits past the client's timeout, then drops the
connection), ``truncated`` (half of the real body, then the connection closes), ``nonjson``
(status 200, a JSON content type, an HTML body), ``ok`` (passes through). Any request whose body
contains ``always_fail`` gets a 500 every time, so that some rows fail for good.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients that gave up on a stalled request hang up mid-write; that is the point


DEFAULT_SCHEDULE = ("ok", "429", "ok", "500", "ok", "stall", "ok", "truncated", "ok", "nonjson")


class FaultProxy:
    def __init__(self, upstream: str, schedule=DEFAULT_SCHEDULE, stall_seconds: float = 4.0,
                 always_fail: str = "always_fail"):
        self.upstream = upstream.rstrip("/")
        self.schedule, self.stall_seconds, self.always_fail = tuple(schedule), stall_seconds, always_fail
        self.counts: Counter = Counter()
        self.auth_headers: list[str] = []
        self._n = 0
        self._lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_fault(self, body: bytes) -> str:
        with self._lock:
            self._n += 1
            fault = self.schedule[(self._n - 1) % len(self.schedule)]
            if self.always_fail.encode() in body:
                fault = "500"
            self.counts[fault] += 1
            return fault

    def _forward(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.upstream + path, data=body, method=method,
                                     headers={k: v for k, v in headers.items()
                                              if k.lower() in ("content-type", "authorization", "accept")})
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def _handler(proxy):  # noqa: N805 - the handler class closes over the proxy
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json", extra=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                status, _, body = proxy._forward("GET", self.path, None, dict(self.headers))
                self._send(status, body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.auth_headers.append(self.headers.get("Authorization", ""))
                fault = proxy._next_fault(body)
                if fault == "429":
                    return self._send(429, b'{"error": {"message": "slow down"}}', extra={"Retry-After": "1"})
                if fault == "500":
                    return self._send(500, b'{"error": {"message": "injected failure"}}')
                if fault == "stall":
                    time.sleep(proxy.stall_seconds)
                    self.close_connection = True
                    return
                status, _, upstream = proxy._forward("POST", self.path, body, dict(self.headers))
                if fault == "truncated":
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(upstream)))
                    self.end_headers()
                    self.wfile.write(upstream[: len(upstream) // 2])
                    self.close_connection = True
                    return
                if fault == "nonjson":
                    return self._send(200, b"<html><body>502 Bad Gateway</body></html>")
                self._send(status, upstream)

        return Handler
