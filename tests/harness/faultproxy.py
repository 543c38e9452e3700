"""An HTTP proxy of our own between the gateway and Synapse, for faults.

Each request is read whole, then either forwarded to the upstream server on a
fresh connection or answered by the first matching fault rule: an HTTP error
(5xx, 429 with ``retry_after_ms``), a dropped connection, a stall, a body cut
short, or no answer at all. The proxy can also be taken "down" (every
connection refused at once) and keeps a log of the requests it saw, so tests
can check that nothing hammers the server.

It runs its own asyncio loop on a thread, so it keeps serving while a test
blocks.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .ports import free_port

__all__ = ["Fault", "FaultProxy", "Seen"]

_MAX_HEAD = 64 * 1024


@dataclass
class Fault:
    """What to do with requests whose ``METHOD path`` matches ``match``.

    ``action`` is one of: ``status`` (answer ``status`` with ``body``),
    ``drop`` (close without answering), ``stall`` (wait ``seconds``, then
    forward), ``truncate`` (forward the answer's head but only the first
    ``keep`` bytes of its body), ``hang`` (never answer). ``times`` bounds
    how many requests it applies to (None: all).
    """

    match: str
    action: str
    status: int = 500
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    keep: int = 0
    times: int | None = None
    hits: int = 0

    def __post_init__(self) -> None:
        self._re = re.compile(self.match)

    def applies(self, line: str) -> bool:
        return (self.times is None or self.hits < self.times) and bool(
            self._re.search(line)
        )


@dataclass
class Seen:
    at: float  # time.monotonic()
    method: str
    path: str
    outcome: str  # "forwarded", or the fault's action


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.down = False
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- control (from any thread) ------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def set_down(self, down: bool) -> None:
        """Down: every open connection is cut and new ones are closed at once."""
        self.down = down
        if down:
            self._call(self._cut_all())

    def requests(
        self, predicate: Callable[[Seen], bool] = lambda s: True
    ) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if predicate(s)]

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # ---- the server (on the proxy's loop) ------------------------------------

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        await self._cut_all()
        if self._server:
            self._server.close()
        # Finish every connection task here, not at garbage collection time
        # after the loop is gone.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _cut_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.down:
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                head, body = request
                if not await self._handle(head, body, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    def _pick(self, line: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.applies(line):
                    fault.hits += 1
                    return fault
        return None

    async def _handle(
        self, head: bytes, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Answers one request; False when the connection must close."""
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, path = [*request_line.split(" "), "", ""][:2]
        fault = self._pick(f"{method} {path}")
        if fault is None and path.startswith("/.well-known/matrix/client"):
            # Clients that discover the homeserver through the proxy must
            # keep talking to it, not to Synapse behind it.
            with self._lock:
                self.seen.append(Seen(time.monotonic(), method, path, "well-known"))
            payload = json.dumps({"m.homeserver": {"base_url": self.base_url}})
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n{payload}".encode()
            )
            await writer.drain()
            return True
        outcome = fault.action if fault else "forwarded"
        with self._lock:
            self.seen.append(Seen(time.monotonic(), method, path, outcome))
        if fault is None:
            return await self._forward(head, body, writer)
        if fault.action == "status":
            payload = json.dumps(fault.body).encode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in fault.headers.items())
            writer.write(
                f"HTTP/1.1 {fault.status} Fault\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n{extra}\r\n".encode()
                + payload
            )
            await writer.drain()
            return True
        if fault.action == "drop":
            return False
        if fault.action == "hang":
            await asyncio.Event().wait()  # until the connection is cut
        if fault.action == "stall":
            await asyncio.sleep(fault.seconds)
            return await self._forward(head, body, writer)
        if fault.action == "truncate":
            answer = await self._fetch(head, body)
            head_end = answer.find(b"\r\n\r\n") + 4
            writer.write(answer[: head_end + fault.keep])
            await writer.drain()
            return False
        raise ValueError(f"unknown fault action {fault.action!r}")

    async def _fetch(self, head: bytes, body: bytes) -> bytes:
        """The upstream's whole answer, on a connection of its own."""
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            up_writer.write(_with_connection_close(head) + body)
            await up_writer.drain()
            return await up_reader.read()
        finally:
            up_writer.close()

    async def _forward(
        self, head: bytes, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            answer = await self._fetch(head, body)
        except OSError:
            return False  # the upstream is down: the client sees a dropped connection
        writer.write(answer)
        await writer.drain()
        return False  # the upstream closed after its answer; so do we


def _with_connection_close(head: bytes) -> bytes:
    lines = [
        line
        for line in head.split(b"\r\n")
        if line and not line.lower().startswith(b"connection:")
    ]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise
        return None
    except asyncio.LimitOverrunError as e:
        raise ValueError("request head too large") from e
    if len(head) > _MAX_HEAD:
        raise ValueError("request head too large")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked request bodies are not supported by this proxy")
    body = await reader.readexactly(length) if length else b""
    return head, body
