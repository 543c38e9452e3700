"""What slidge 0.5 changed for a plugin, shown through the real servers:
slidge builds matridge's own classes, lists matridge's commands, calls
``Session.on_unregister``, and survives a failing task of one user."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from matridge import MUC, Bookmarks, Contact, Gateway, Participant, Roster, Session
from matridge.commands import (
    CreateRoom,
    JoinRoom,
    LeaveRoom,
    ListRooms,
    SyncStatus,
    Verify,
)
from matridge.crypto.store import store_path
from matridge.emoji_commands import Emoji, EmojiVerify
from tests.conftest import Person, new_matrix_user, new_person
from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.gateway import Gateway as GatewayProcess
from tests.harness.matrix_user import MatrixUser
from tests.harness.prosody import Prosody
from tests.harness.synapse import Synapse
from tests.scenarios import Club, book_club, groupchat_from, register
from tests.test_e2e_rooms import png, publish_avatar

pytestmark = pytest.mark.asyncio(loop_scope="session")

NS_COMMANDS = "http://jabber.org/protocol/commands"


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_slidge_builds_matridges_own_classes() -> None:
    # slidge 0.5 derives these from the generic parameters only; a plain
    # subclass would leave slidge's abstract classes in their place.
    assert Gateway.session_cls is Session
    assert Session.roster_cls is Roster
    assert Session.bookmarks_cls is Bookmarks
    assert Roster.contact_cls is Contact
    assert Bookmarks.muc_cls is MUC
    assert MUC.participant_cls is Participant
    # The original design documents get_room() as a coroutine.
    assert inspect.iscoroutinefunction(MUC.get_room)


async def test_the_gateway_lists_matridges_commands(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    iq = await person.xmpp.disco_items(person.gateway_jid, node=NS_COMMANDS)
    nodes = {item[1] for item in iq["disco_items"]["items"]}
    for command in (
        ListRooms,
        JoinRoom,
        LeaveRoom,
        CreateRoom,
        SyncStatus,
        Verify,
        Emoji,
        EmojiVerify,
    ):
        assert command.NODE in nodes
    # And as chat commands: 'help' names them.
    person.xmpp.send_chat(person.gateway_jid, "help")
    helped = await person.xmpp.wait_message(
        lambda m: m["from"].bare == person.gateway_jid and "sync-status" in m["body"],
        timeout=30,
    )
    for word in ("rooms", "join", "leave", "create-room", "logout", "verify", "emoji"):
        assert word in helped["body"]


def gateway_devices(user: MatrixUser) -> list[str]:
    devices = user.request("GET", "/devices")["devices"]
    return [d["device_id"] for d in devices if d.get("display_name") == "e2e tests"]


async def test_unregistering_logs_the_matrix_device_out(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    [device] = gateway_devices(person.matrix)
    await person.xmpp.plugin["xep_0077"].cancel_registration(
        jid=person.gateway_jid, timeout=30
    )
    deadline = asyncio.get_running_loop().time() + 30
    while gateway_devices(person.matrix):
        assert asyncio.get_running_loop().time() < deadline, (
            f"the gateway's device {device} is still logged in"
        )
        await asyncio.sleep(0.5)


MEGOLM = "m.megolm.v1.aes-sha2"


def key_store_of(gateway: GatewayProcess, person: Person) -> Path:
    return store_path(gateway.home, person.xmpp.boundjid.bare)


async def test_unregistering_deletes_the_key_store_and_a_new_registration_encrypts(
    person: Person, synapse: Synapse, gateway: GatewayProcess
) -> None:
    await register(person, synapse)
    store = key_store_of(gateway, person)
    assert store.exists()
    await person.xmpp.plugin["xep_0077"].cancel_registration(
        jid=person.gateway_jid, timeout=30
    )
    deadline = asyncio.get_running_loop().time() + 30
    while store.exists():
        assert asyncio.get_running_loop().time() < deadline, "the key store is left"
        await asyncio.sleep(0.5)

    # Registered again: a new device, a new store, and encryption works.
    await register(person, synapse)
    friend = new_matrix_user(synapse, "friend")
    room_id = friend.create_room(name="Secret", invite=[person.matrix.user_id])
    friend.send_state(room_id, "m.room.encryption", {"algorithm": MEGOLM})
    person.matrix.join(room_id)
    room_jid = person.room_jid(room_id)
    await person.xmpp.join_muc(room_jid, person.name)
    person.xmpp.send_groupchat(room_jid, "still private")
    deadline = asyncio.get_running_loop().time() + 30
    while not (
        [
            e
            for e in friend.messages(room_id)
            if e["sender"] == person.matrix.user_id and e["type"] == "m.room.encrypted"
        ]
    ):
        assert asyncio.get_running_loop().time() < deadline, "nothing was sent"
        await asyncio.sleep(0.5)
    assert store.exists()


# ---- a failing task of one user ---------------------------------------------


@pytest.fixture(scope="module")
def own_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway of this module's own: if a failing task stopped it, the
    other tests would not pay for it."""
    with Prosody(tmp_path_factory.mktemp("prosody-tasks"), privilege=False) as xs:
        gw = GatewayProcess(tmp_path_factory.mktemp("gateway-tasks"), xs)
        gw.start()
        try:
            yield gw
        finally:
            gw.stop()


async def test_a_failure_in_one_users_login_tasks_leaves_another_working(
    synapse: Synapse, own_gateway: GatewayProcess
) -> None:
    gateway = own_gateway
    async with (
        new_person(synapse, gateway.prosody, gateway) as steady,
        new_person(synapse, gateway.prosody, gateway) as unlucky,
    ):
        friend, room_id = book_club(steady, synapse)
        await register(steady, synapse)
        room_jid = steady.room_jid(room_id)
        await steady.xmpp.join_muc(room_jid, steady.name)

        # The unlucky one's homeserver refuses every upload: the avatar sync
        # that slidge starts as a task at their login fails inside it. (Any
        # failure that escapes a session task is also caught by
        # Session.create_task, which slidge 0.5 would otherwise turn into a
        # stop of the whole gateway.)
        await publish_avatar(unlucky, png((200, 10, 10)))
        with FaultProxy("127.0.0.1", synapse.port) as proxy:
            proxy.add(Fault(r"^POST /_matrix/media/.*/upload", "status", status=500))
            form = {
                **unlucky.registration_form(synapse),
                "homeserver": proxy.base_url,
            }
            await unlucky.xmpp.register_with(unlucky.gateway_jid, form, timeout=60)
            told = await unlucky.xmpp.wait_message(
                lambda m: (
                    m["from"].bare == unlucky.gateway_jid
                    and "set your avatar" in m["body"]
                ),
                timeout=60,
            )
            # In words, not as slidge's rendering of an exception.
            assert told["body"].startswith("Matrix refused to set your avatar")
            assert any(s.outcome == "status" for s in proxy.requests())

        # The gateway goes on, for the other user both ways.
        assert gateway.proc is not None and gateway.proc.poll() is None
        friend.send_text(room_id, "still here?")
        await steady.xmpp.wait_message(groupchat_from(room_jid, "still here?"), 30)
        steady.xmpp.send_groupchat(room_jid, "yes")
        await friend.wait_for_message_async(
            room_id, lambda e: e.get("content", {}).get("body") == "yes", 30
        )
        assert "Crash in task" not in gateway.log_text()


async def test_slidges_database_commits_without_waiting_for_the_disk(
    club: Club, gateway: GatewayProcess
) -> None:
    # The running gateway opened slidge's database in WAL mode with
    # synchronous=NORMAL (matridge.sqlite_tuning); the mode is the file's.
    club.friend.send_text(club.room_id, "written through the WAL")
    await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "written through the WAL"), timeout=60
    )
    with sqlite3.connect(gateway.home / "slidge.sqlite") as db:
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"
    assert (gateway.home / "slidge.sqlite-wal").exists()
    # The connection option, on a connection that matridge tuned.
    with sqlalchemy.create_engine("sqlite://").connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
