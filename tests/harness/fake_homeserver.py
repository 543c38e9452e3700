"""A tiny scripted HTTP server on loopback, for the failures a real Synapse
will not produce on demand (5xx, 429, missing endpoints, non-JSON bodies).

Each route maps a path (without the query) to a list of answers served in
turn, the last one repeating; every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Answer", "FakeHomeserver", "fake_homeserver"]


@dataclass
class Answer:
    status: int = 200
    body: bytes | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering, to catch a request in flight


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class FakeHomeserver:
    def __init__(self) -> None:
        self.routes: dict[str, list[Answer]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                answer = fake._next(
                    Seen(
                        self.command,
                        url.path,
                        parse_qs(url.query),
                        dict(self.headers),
                        body,
                    )
                )
                time.sleep(answer.delay)
                raw = (
                    json.dumps(answer.body).encode()
                    if isinstance(answer.body, dict)
                    else answer.body
                )
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json", **answer.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                if headers.get("Transfer-Encoding") == "chunked":
                    # No length announced: the client learns the size as it reads.
                    self.end_headers()
                    for i in range(0, len(raw), 4096):
                        piece = raw[i : i + 4096]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self.routes[path] = list(answers)

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def wait_for_request(self, path: str, timeout: float = 30) -> None:
        """Blocks until a request to `path` has arrived (run it in a thread)."""
        with self._arrived:
            if not self._arrived.wait_for(
                lambda: any(s.path == path for s in self.seen), timeout
            ):
                raise TimeoutError(f"no request to {path}")

    def _next(self, seen: Seen) -> Answer:
        with self._lock:
            self.seen.append(seen)
            self._arrived.notify_all()
            answers = self.routes.get(seen.path)
            if not answers:
                return Answer(404, {"errcode": "M_UNRECOGNIZED", "error": "no route"})
            return answers.pop(0) if len(answers) > 1 else answers[0]


@contextmanager
def fake_homeserver() -> Iterator[FakeHomeserver]:
    fake = FakeHomeserver()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
