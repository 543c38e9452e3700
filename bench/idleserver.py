"""A stand-in homeserver that holds many /sync long-polls cheaply, for the
idle-scale benchmark; run as its own process (``python -m bench.idleserver``)
so that serving never competes with the measured client for a core's time
slices more than it must, nor for its GIL.

One asyncio protocol per connection, HTTP/1.1 keep-alive, no framework: ten
thousand held long-polls cost a socket and a timer handle each.

``GET /_matrix/client/v3/sync`` without ``since`` answers a small initial
batch at once; with ``since`` the request is held until its ``timeout``
passes (then answered with an empty batch), or until the benchmark asks for
traffic. Any other path answers ``{}``.

It prints ``port N`` once listening, then obeys lines on stdin:

``held N``          answers ``held`` once N long-polls (with ``since``) are held
``trickle R S``     answers the R oldest held long-polls per second for S
                    seconds, then ``answered K`` (K answered in all)
"""

from __future__ import annotations

import asyncio
import resource
import sys
from urllib.parse import parse_qs, urlsplit

INITIAL = (
    b'{"next_batch":"b0","rooms":{"join":{},"invite":{},"leave":{}},'
    b'"presence":{"events":[]},"account_data":{"events":[]},'
    b'"to_device":{"events":[]}}'
)


def raise_open_files_limit() -> int:
    """Sets the soft RLIMIT_NOFILE to the hard one; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Server:
    def __init__(self) -> None:
        # Held long-polls, oldest first: connection -> its timeout's handle.
        self.held: dict[Connection, asyncio.TimerHandle] = {}
        self.served = 0
        self.held_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def hold(self, conn: Connection, timeout_ms: int) -> None:
        loop = asyncio.get_running_loop()
        self.held[conn] = loop.call_later(timeout_ms / 1000, self.answer, conn)
        for n, fut in list(self.held_waiters):
            if len(self.held) >= n and not fut.done():
                fut.set_result(None)

    def answer(self, conn: Connection) -> None:
        handle = self.held.pop(conn, None)
        if handle is None:
            return
        handle.cancel()
        self.served += 1
        conn.send(b'{"next_batch":"b%d"}' % self.served)

    def drop(self, conn: Connection) -> None:
        handle = self.held.pop(conn, None)
        if handle is not None:
            handle.cancel()

    async def wait_held(self, n: int) -> None:
        if len(self.held) >= n:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held_waiters.append((n, fut))
        await fut
        self.held_waiters.remove((n, fut))

    async def trickle(self, per_s: int, seconds: float) -> int:
        loop = asyncio.get_running_loop()
        start = loop.time()
        answered = 0
        interval = 1 / per_s
        while loop.time() - start < seconds:
            if self.held:
                self.answer(next(iter(self.held)))
                answered += 1
            await asyncio.sleep(interval)
        return answered


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.drop(self)
        self.transport = None

    def send(self, body: bytes) -> None:
        if self.transport is not None:
            self.transport.write(_response(body))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            self.request(head.split(" ")[1])

    def request(self, target: str) -> None:
        url = urlsplit(target)
        if url.path != "/_matrix/client/v3/sync":
            self.send(b"{}")
            return
        query = parse_qs(url.query)
        if "since" not in query:
            self.send(INITIAL)
            return
        self.server.hold(self, int(query.get("timeout", ["30000"])[0]))


async def commands(server: Server) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while line := await reader.readline():
        word, *args = line.decode().split()
        if word == "held":
            await server.wait_held(int(args[0]))
            print("held", flush=True)
        elif word == "trickle":
            answered = await server.trickle(int(args[0]), float(args[1]))
            print(f"answered {answered}", flush=True)


async def main() -> None:
    raise_open_files_limit()
    server = Server()
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: Connection(server), "127.0.0.1", 0, backlog=4096
    )
    port = listener.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    await commands(server)  # until stdin closes
    listener.close()


if __name__ == "__main__":
    asyncio.run(main())
