"""Direct chats, exactly once through a crash: the gateway killed with
SIGKILL in the middle of a batch of direct messages delivers each of them
once after its restart. Group chats have slidge's archive for this; direct
chats have the delivery mark, saved as each message is shown, and a batch
that comes again skips what its mark says was shown. (The one window left
is a kill between showing a message and saving its mark: one database
write.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from slixmpp import Message

from tests.conftest import Person, new_matrix_user
from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.scenarios import register
from tests.test_e2e_contacts import contact_jid, open_direct_room, wait_offered
from tests.test_faults import stored_direct_mark

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class SlowDirect:
    person: Person
    friend: MatrixUser
    room_id: str
    jid: str
    proxy: FaultProxy


@pytest_asyncio.fixture(loop_scope="session")
async def slow_direct(person: Person, synapse: Synapse) -> AsyncIterator[SlowDirect]:
    """A direct chat whose gateway session reaches Synapse through our
    proxy, so that file downloads can be slowed down."""
    with FaultProxy("127.0.0.1", synapse.port) as proxy:
        friend = new_matrix_user(synapse, "dana", "Direct Dana")
        room_id = open_direct_room(person, friend)
        await register(person, synapse, homeserver=proxy.base_url)
        jid = contact_jid(person, friend.user_id)
        await wait_offered(person, jid)
        yield SlowDirect(person, friend, room_id, jid, proxy)


def file_named(jid: str, name: str) -> Callable[[Message], bool]:
    def match(m: Message) -> bool:
        url = m["oob"]["url"]
        return m["type"] == "chat" and m["from"].bare == jid and url.endswith(name)

    return match


@pytest.mark.parametrize("kill_after", [0, 3])
async def test_a_sigkill_mid_batch_neither_loses_nor_doubles_a_direct_message(
    slow_direct: SlowDirect, gateway: Gateway, kill_after: int
) -> None:
    chat, xmpp = slow_direct, slow_direct.person.xmpp
    mxc = chat.friend.upload(b"a small file\n", "text/plain", "f.txt")
    names = [f"k{kill_after}-file-{i}.txt" for i in range(6)]
    # Sent while the gateway is down, so that they come in one batch; each
    # takes a moment to download, so that the kill lands in that batch.
    gateway.kill()
    for name in names:
        chat.friend.send_event(
            chat.room_id,
            "m.room.message",
            {"msgtype": "m.file", "body": name, "url": mxc, "info": {"size": 13}},
        )
    chat.proxy.add(
        Fault(r"^GET /_matrix/client/v1/media/download/", "stall", seconds=1)
    )
    gateway.start()
    shown = await xmpp.wait_message(file_named(chat.jid, names[kill_after]), 60)
    # Killed once that message's delivery mark is saved (its XMPP id is its
    # Matrix event id), while the rest of the batch is still downloading:
    # the batch's token is not saved, so the whole batch comes again.
    user_jid = str(xmpp.boundjid.bare)
    deadline = asyncio.get_running_loop().time() + 30
    while stored_direct_mark(gateway, user_jid, chat.room_id) != shown["id"]:
        assert asyncio.get_running_loop().time() < deadline, "no mark saved"
        await asyncio.sleep(0.05)
    gateway.kill()
    gateway.start()
    await xmpp.wait_message(file_named(chat.jid, names[-1]), timeout=120)
    await asyncio.sleep(2)  # anything doubled would come right behind
    for name in names:
        shown = [m for m in xmpp.received if isinstance(m, Message)]
        assert len([m for m in shown if file_named(chat.jid, name)(m)]) == 1, name
    # The download the kill interrupted left its temporary directory; the
    # restarted gateway removed it.
    assert [p.name for p in gateway.tmp.iterdir() if "matridge-media" in p.name] == []
