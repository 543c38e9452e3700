"""The XMPP server goes away and comes back: slidge exits when it loses the
server, and a supervisor (the admin guide's systemd unit) starts it again
until the server is back. Through that, every Matrix message reaches the
user exactly once (live, as offline delivery, or in the archives), and
every message the user sent before the outage reaches Matrix exactly once.

Each test runs its own Prosody and gateway, since it stops that Prosody."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
import pytest_asyncio
from slixmpp import Message

from tests.conftest import Person, unique
from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.prosody import Prosody
from tests.harness.supervisor import RESTART_SECONDS, Supervisor
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppClient
from tests.scenarios import book_club, register
from tests.test_e2e_contacts import contact_jid, open_direct_room, wait_offered

pytestmark = pytest.mark.asyncio(loop_scope="session")

# slidge's exit status when it loses the XMPP server.
LOST_SERVER = 10


@dataclass
class Outage:
    """A person registered with a gateway of their own (supervised, through
    a fault proxy to Synapse), in a group chat and a direct chat with a
    friend, on a Prosody the test may stop."""

    prosody: Prosody
    gateway: Gateway
    supervisor: Supervisor
    proxy: FaultProxy
    person: Person
    friend: MatrixUser
    group_id: str
    group_jid: str
    direct_id: str
    contact: str
    clients: list[XmppClient]  # every XMPP connection the person made

    async def reconnect(self) -> XmppClient:
        """The person's client connects again, once Prosody is back, and
        rejoins the group chat once the restarted gateway logged them in."""
        client = await XmppClient.connect_to(
            f"{self.person.name}@{self.prosody.domain}",
            "any",
            "127.0.0.1",
            self.prosody.c2s_port,
        )
        for old in self.clients:
            old.cancel_connection_attempt()
        self.clients.append(client)
        self.person.xmpp = client
        deadline = time.monotonic() + 120
        while True:
            try:
                await client.join_muc(self.group_jid, self.person.name, history=0)
                return client
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)

    def live(self, jid: str, body: str) -> int:
        """How many times a message with `body` from `jid` arrived live."""
        return sum(
            1
            for client in self.clients
            for m in client.received
            if isinstance(m, Message) and m["from"].bare == jid and m["body"] == body
        )


@pytest.fixture
def own_prosody(tmp_path: Path) -> Iterator[Prosody]:
    server = Prosody(tmp_path / "prosody", privilege=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def outage(
    tmp_path: Path, own_prosody: Prosody, synapse: Synapse
) -> AsyncIterator[Outage]:
    gateway = Gateway(tmp_path / "gateway", own_prosody, "--sync-timeout-ms=5000")
    with FaultProxy("127.0.0.1", synapse.port) as proxy:
        supervisor = Supervisor(gateway)
        supervisor.__enter__()
        name = unique("user")
        info = synapse.register_user(name, "pw")
        matrix = MatrixUser(synapse.base_url, info["access_token"], info["user_id"])
        client = await XmppClient.connect_to(
            f"{name}@{own_prosody.domain}", "any", "127.0.0.1", own_prosody.c2s_port
        )
        person = Person(name, "pw", matrix, client, gateway.jid)
        clients = [client]
        try:
            friend, group_id = book_club(person, synapse)
            direct_id = open_direct_room(person, friend)
            await register(person, synapse, homeserver=proxy.base_url)
            group_jid = person.room_jid(group_id)
            await client.join_muc(group_jid, name)
            contact = contact_jid(person, friend.user_id)
            await wait_offered(person, contact)
            yield Outage(
                own_prosody,
                gateway,
                supervisor,
                proxy,
                person,
                friend,
                group_id,
                group_jid,
                direct_id,
                contact,
                clients,
            )
        finally:
            supervisor.__exit__(None, None, None)  # no restarts while stopping
            for c in clients:
                c.cancel_connection_attempt()
                c.abort()
            gateway.stop()


def in_background(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


async def archived(client: XmppClient, archive: str | None, jid: str) -> list[str]:
    """The bodies of an archive's messages from `jid`, oldest first."""
    return [
        m["body"]
        for m in await client.mam_messages(archive)
        if m["from"].bare == jid and m["body"]
    ]


async def until(what: str, check: Callable[[], bool], timeout: float = 120) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.2)


async def assert_each_once(outage: Outage, group: list[str], direct: list[str]) -> None:
    """Every group message is in the room's archive on the gateway once, and
    every direct message in the user's own archive on Prosody once; none
    arrived live twice."""
    client = outage.person.xmpp
    deadline = time.monotonic() + 120
    while True:
        in_group = await archived(client, outage.group_jid, outage.group_jid)
        in_direct = await archived(client, None, outage.contact)
        if set(group) <= set(in_group) and set(direct) <= set(in_direct):
            break
        assert time.monotonic() < deadline, (
            f"missing from the group's archive: {set(group) - set(in_group)}; "
            f"missing from the user's archive: {set(direct) - set(in_direct)}"
        )
        await asyncio.sleep(1)
    await asyncio.sleep(2)  # anything doubled comes right behind
    in_group = await archived(client, outage.group_jid, outage.group_jid)
    in_direct = await archived(client, None, outage.contact)
    for body in group:
        assert in_group.count(body) == 1, (body, in_group)
        assert outage.live(outage.group_jid, body) <= 1, body
    for body in direct:
        assert in_direct.count(body) == 1, (body, in_direct)
        assert outage.live(outage.contact, body) <= 1, body


def from_group(outage: Outage, body: str) -> Callable[[Message], bool]:
    return lambda m: m["from"].bare == outage.group_jid and m["body"] == body


async def test_matrix_messages_sent_through_an_xmpp_server_restart_arrive_once(
    outage: Outage,
) -> None:
    """Prosody stops (SIGTERM) in the middle of two streams of Matrix
    messages, one in a group chat and one in a direct chat, and comes back
    while they go on."""
    group = [f"group stream {i}" for i in range(24)]
    direct = [f"direct stream {i}" for i in range(24)]

    def stream() -> None:
        for g, d in zip(group, direct, strict=True):
            outage.friend.send_text(outage.group_id, g)
            outage.friend.send_text(outage.direct_id, d)
            time.sleep(0.25)

    sender = in_background(stream)
    # Well into the streams, as seen by the user:
    await outage.person.xmpp.wait_message(from_group(outage, group[4]), 60)
    await asyncio.to_thread(outage.prosody.stop)
    await asyncio.to_thread(outage.supervisor.wait_exits, 1)
    assert outage.supervisor.exit_codes[0] == LOST_SERVER
    # Down for longer than the supervisor's restart delay: the gateway is
    # started again while there is no server to connect to.
    await asyncio.sleep(RESTART_SECONDS + 3)
    await asyncio.to_thread(outage.prosody.start)
    await outage.reconnect()
    await asyncio.to_thread(sender.join)
    await assert_each_once(outage, group, direct)


async def test_messages_a_hung_xmpp_server_never_took_are_shown_again(
    outage: Outage,
) -> None:
    """Prosody hangs (SIGSTOP) and then dies (SIGKILL): the stanzas the
    gateway wrote to it meanwhile are lost with it. The gateway recorded
    none of them as delivered, so the restarted gateway shows them again."""
    group = [f"while hung {i}" for i in range(5)]
    direct = [f"direct while hung {i}" for i in range(5)]
    assert outage.prosody.proc is not None
    os.kill(outage.prosody.proc.pid, signal.SIGSTOP)
    try:
        for g, d in zip(group, direct, strict=True):
            await asyncio.to_thread(outage.friend.send_text, outage.group_id, g)
            await asyncio.to_thread(outage.friend.send_text, outage.direct_id, d)
        # The gateway wrote every one of them into the hung server's socket
        # (its --debug log shows each stanza it sends).
        await until(
            "the gateway sent the messages to the hung server",
            lambda: all(
                re.search(f">{re.escape(body)}</body>", outage.gateway.log_text())
                for body in group + direct
            ),
        )
    finally:
        await asyncio.to_thread(outage.prosody.kill)
    await asyncio.to_thread(outage.supervisor.wait_exits, 1)
    await asyncio.to_thread(outage.prosody.start)
    await outage.reconnect()
    await assert_each_once(outage, group, direct)


async def test_xmpp_messages_received_before_the_server_stops_reach_matrix_once(
    outage: Outage,
) -> None:
    """The user sends to the group and the direct chat; Prosody stops while
    the gateway is still sending them to a slow homeserver. The gateway
    sends them all before it exits, and nothing twice after its restart."""
    group = [f"from xmpp to the group {i}" for i in range(3)]
    direct = [f"from xmpp to the friend {i}" for i in range(3)]
    outage.proxy.add(
        Fault(r"^PUT /_matrix/client/v3/rooms/.*/send/", "stall", seconds=2)
    )
    for g, d in zip(group, direct, strict=True):
        outage.person.xmpp.send_groupchat(outage.group_jid, g)
        outage.person.xmpp.send_chat(outage.contact, d)

    def sending(room_id: str) -> bool:
        return any(
            room_id in unquote(seen.path) and "/send/" in seen.path
            for seen in outage.proxy.requests()
        )

    # Both rooms' first sends are under way (the others wait behind them).
    await until(
        "the gateway is sending",
        lambda: sending(outage.group_id) and sending(outage.direct_id),
    )
    await asyncio.to_thread(outage.prosody.stop)
    await asyncio.to_thread(outage.supervisor.wait_exits, 1)
    assert outage.supervisor.exit_codes[0] == LOST_SERVER
    outage.proxy.clear()
    await asyncio.to_thread(outage.prosody.start)
    await outage.reconnect()

    def bodies(room_id: str) -> list[str]:
        return [
            e["content"].get("body", "")
            for e in outage.friend.messages(room_id, limit=100)
            if e["type"] == "m.room.message"
        ]

    for room_id, sent in ((outage.group_id, group), (outage.direct_id, direct)):
        on_matrix = await asyncio.to_thread(bodies, room_id)
        for body in sent:
            assert on_matrix.count(body) == 1, (body, on_matrix)
    # The restarted gateway sent nothing again (it never resends on its own,
    # and the user's client did not resend either).
    outage.friend.send_text(outage.group_id, "after the restart")
    await outage.person.xmpp.wait_message(from_group(outage, "after the restart"), 60)
    for room_id, sent in ((outage.group_id, group), (outage.direct_id, direct)):
        on_matrix = await asyncio.to_thread(bodies, room_id)
        for body in sent:
            assert on_matrix.count(body) == 1, (body, on_matrix)


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_the_supervisor_restarts_as_the_admin_guides_unit_does() -> None:
    """The tests' supervisor is the unit the admin guide ships."""
    guide = (Path(__file__).parent.parent / "docs" / "admin.rst").read_text()
    assert re.search(r"^\s*Restart=always$", guide, re.M)
    delay = re.search(r"^\s*RestartSec=(\d+)$", guide, re.M)
    assert delay is not None and float(delay.group(1)) == RESTART_SECONDS
