"""A URL from a user is never fetched inside the gateway's own network: the
XMPP user shares "files" whose addresses lead there, through the real
upload path (an XMPP message with an out-of-band URL to a group chat), and
the gateway refuses each in words without connecting."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from matridge import fetchguard
from tests.harness.gateway import Gateway
from tests.scenarios import Club

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Target:
    """A small HTTP server the tests point URLs at; it counts requests."""

    def __init__(self, host: str, family: socket.AddressFamily) -> None:
        seen: list[str] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                seen.append(self.path)
                if self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", self.path.split("to=", 1)[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"the admin interface's secrets"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            address_family = family

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Target]:
    target = Target("127.0.0.1", socket.AF_INET)
    yield target
    target.close()


async def refused(club: Club, url: str) -> str:
    """Shares `url` in the group chat; returns the error text it gets."""
    msg_id = club.person.xmpp.send_file_link(club.room_jid, url)
    error = await club.person.xmpp.wait_message(
        lambda m: m["type"] == "error" and m["id"] == msg_id, timeout=60
    )
    assert error["error"]["condition"] == "forbidden", error
    text: str = error["error"]["text"]
    assert "does not fetch files from inside its own network" in text
    return text


async def test_a_loopback_server_is_never_asked(
    club: Club, loopback: Target, gateway: Gateway
) -> None:
    text = await refused(club, f"http://127.0.0.1:{loopback.port}/admin.txt")
    assert "loopback" in text
    assert loopback.seen == []
    assert "Refused to fetch admin.txt" in gateway.log_text()


async def test_ipv6_loopback_is_refused(club: Club) -> None:
    target = Target("::1", socket.AF_INET6)
    try:
        text = await refused(club, f"http://[::1]:{target.port}/admin.txt")
        assert "loopback" in text
        assert target.seen == []
    finally:
        target.close()


# Addresses of each refused class. Nothing listens there; the gateway must
# refuse before it connects, so none of them is ever a target.
REFUSED = {
    "http://10.1.2.3/a.txt": "private",
    "http://172.16.5.4/a.txt": "private",
    "http://192.168.1.1/a.txt": "private",
    "http://100.64.0.1/a.txt": "shared",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://224.0.0.1/a.txt": "multicast",
    "http://0.0.0.0/a.txt": "unspecified",
    "http://[fd00::1]/a.txt": "private",
    "http://[fe80::1]/a.txt": "link-local",
    "http://[::ffff:127.0.0.1]/a.txt": "loopback",
    "http://[::ffff:169.254.169.254]/a.txt": "link-local",
}


@pytest.mark.parametrize("url", sorted(REFUSED))
async def test_each_address_class_is_refused(club: Club, url: str) -> None:
    text = await refused(club, url)
    assert REFUSED[url] in text


async def test_only_http_and_https_are_fetched(club: Club) -> None:
    msg_id = club.person.xmpp.send_file_link(club.room_jid, "file:///etc/passwd")
    error = await club.person.xmpp.wait_message(
        lambda m: m["type"] == "error" and m["id"] == msg_id, timeout=60
    )
    assert "only http and https" in error["error"]["text"]


async def test_a_redirect_from_an_allowed_host_into_the_network_is_refused(
    club: Club, loopback: Target
) -> None:
    # "localhost" is allow-listed (the test Prosody's upload service lives
    # there); it redirects to an address literal that is not.
    inner = Target("127.0.0.1", socket.AF_INET)
    try:
        secret = f"http://127.0.0.1:{inner.port}/admin.txt"
        url = f"http://localhost:{loopback.port}/redirect/x.txt?to={secret}"
        text = await refused(club, url)
        assert "loopback" in text
        assert len(loopback.seen) == 1  # the allowed first hop
        assert inner.seen == []  # never the refused second one
    finally:
        inner.close()


async def test_an_allow_listed_host_is_fetched(club: Club, loopback: Target) -> None:
    url = f"http://localhost:{loopback.port}/notes.txt"
    club.person.xmpp.send_file_link(club.room_jid, url)
    event = await club.friend.wait_for_message_async(
        club.room_id,
        lambda e: e.get("content", {}).get("filename") == "notes.txt",
        timeout=60,
    )
    assert event["content"]["msgtype"] == "m.file"
    assert loopback.seen == ["/notes.txt"]


async def test_a_name_that_resolves_into_the_network_is_refused() -> None:
    # A host name is checked after DNS, on the addresses the connection
    # would use ("localhost" is not allow-listed in this process).
    resolver = fetchguard.GuardedResolver()
    try:
        with pytest.raises(fetchguard.RefusedAddress, match="loopback"):
            await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
    finally:
        await resolver.close()
    assert fetchguard.refusal(fetchguard.ipaddress.ip_address("9.9.9.9")) is None
