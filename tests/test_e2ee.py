"""End-to-end encryption through the gateway, end to end: Megolm both ways
in group chats and direct chats, relations sent encrypted, session
rotation, a key that arrives late turning a placeholder into the message,
no room key for a device its owner never cross-signed, and the keys kept
through a restart and a SIGKILL of the gateway.

The other side is matrix-nio (tests/harness/nio_peer.py), whose device its
owner cross-signed as Element would. What is checked is what people see:
the XMPP body, and the Matrix event nio decrypts (the server holding only
``m.room.encrypted``)."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from slixmpp import Message

from tests.conftest import Person, new_person, unique
from tests.harness.cross_signing_peer import device_signed_by_self_signing_key
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.nio_peer import NioPeer, open_other_device, open_peer
from tests.harness.prosody import Prosody
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppClient
from tests.scenarios import groupchat_from, register
from tests.test_e2e_contacts import chat_from, contact_jid, mark_direct, wait_offered
from tests.test_e2e_media import http_get, sims_file
from tests.test_media import png

pytestmark = pytest.mark.asyncio(loop_scope="session")

NINA = "Nina Nio"  # the nio peer's display name, its nick in group chats
LOCK = "🔒"  # how the gateway's placeholder for an unreadable message begins


# ---- the gateway's device ---------------------------------------------------


async def gateway_device(person: Person, timeout: float = 60) -> str:  # noqa: ASYNC109
    """The device id of the gateway's login, once its keys are on the
    homeserver: the only device of the person's account with keys (the
    account's own set-up login uploads none)."""
    deadline = time.monotonic() + timeout
    while True:
        res = await asyncio.to_thread(
            person.matrix.request,
            "POST",
            "/keys/query",
            {"device_keys": {person.matrix.user_id: []}},
        )
        devices = res.get("device_keys", {}).get(person.matrix.user_id, {})
        if len(devices) == 1:
            (device_id,) = devices
            assert isinstance(device_id, str)
            return device_id
        assert len(devices) < 2, f"more than one device with keys: {list(devices)}"
        if time.monotonic() > deadline:
            raise TimeoutError("the gateway's device never uploaded its keys")
        await asyncio.sleep(0.5)


def raw_event(viewer: MatrixUser, room_id: str, event_id: str) -> dict[str, Any]:
    """An event as the homeserver holds it."""
    return viewer.request("GET", f"/rooms/{_q(room_id)}/event/{_q(event_id)}")


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def assert_encrypted_on_the_server(peer: NioPeer, room_id: str, event_id: str) -> str:
    """The event is ``m.room.encrypted`` (Megolm, no plaintext body) on
    the homeserver; returns its session id."""
    event = raw_event(peer.raw, room_id, event_id)
    assert event["type"] == "m.room.encrypted", event
    content = event["content"]
    assert content["algorithm"] == "m.megolm.v1.aes-sha2", content
    assert "body" not in content
    session_id = content["session_id"]
    assert isinstance(session_id, str)
    return session_id


def decrypted(
    room_id: str, sender: str, predicate: Callable[[dict[str, Any]], bool]
) -> Callable[[dict[str, Any]], bool]:
    """A nio event of ``room_id`` from ``sender`` that nio decrypted."""

    def match(event: dict[str, Any]) -> bool:
        return (
            event["room_id"] == room_id
            and event.get("sender") == sender
            and event.get("decrypted") is True
            and predicate(event)
        )

    return match


def body_is(body: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("content", {}).get("body") == body


# ---- scenarios --------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def peer(synapse: Synapse, tmp_path: Path) -> AsyncIterator[NioPeer]:
    async with open_peer(synapse, tmp_path / "nio", display_name=NINA) as p:
        yield p


@dataclass
class Encrypted:
    """A person registered with the gateway, in an encrypted room with a
    nio peer: a group chat (``jid`` the MUC) or a direct chat (``jid`` the
    contact)."""

    person: Person
    peer: NioPeer
    room_id: str
    jid: str
    device_id: str  # the gateway's device

    def from_peer(self, body: str | None = None) -> Callable[[Message], bool]:
        group = groupchat_from(self.jid, body)
        direct = chat_from(self.jid, body)
        return lambda m: group(m) or direct(m)

    def send(self, body: str) -> str:
        """The person writes ``body`` from XMPP; returns the stanza id."""
        if self.is_group:
            return self.person.xmpp.send_groupchat(self.jid, body)
        return self.person.xmpp.send_chat(self.jid, body)

    @property
    def is_group(self) -> bool:
        return self.jid == self.person.room_jid(self.room_id)

    def stanza(self, body: str | None = None) -> Message:
        """A message to the room or contact with id == origin-id."""
        xmpp = self.person.xmpp
        mtype = "groupchat" if self.is_group else "chat"
        msg = xmpp.make_message(mto=self.jid, mtype=mtype)  # type: ignore[arg-type]
        if body is not None:
            msg["body"] = body
        msg_id = unique("m")
        msg["id"] = msg_id
        msg["origin_id"]["id"] = msg_id
        return msg

    async def from_xmpp(self, body: str) -> dict[str, Any]:
        """The person's message as nio decrypted it (failing if it came in
        the clear)."""
        event = await self.peer.wait_event(
            lambda e: (
                e["room_id"] == self.room_id
                and e.get("sender") == self.person.matrix.user_id
                and body_is(body)(e)
            )
        )
        assert event["decrypted"], f"sent in the clear into an encrypted room: {event}"
        return event


async def encrypted_group(
    person: Person,
    synapse: Synapse,
    peer: NioPeer,
    rotation: dict[str, int] | None = None,
) -> Encrypted:
    """The peer's encrypted room, joined by the person, who then registers
    and joins it as a MUC."""
    room_id = peer.create_encrypted_room(
        [person.matrix.user_id], name="Secret club", rotation=rotation
    )
    person.matrix.join(room_id)
    await register(person, synapse)
    room_jid = person.room_jid(room_id)
    await person.xmpp.join_muc(room_jid, person.name)
    device_id = await gateway_device(person)
    await peer.knows_devices(person.matrix.user_id, device_id)
    return Encrypted(person, peer, room_id, room_jid, device_id)


async def encrypted_direct(
    person: Person, synapse: Synapse, peer: NioPeer
) -> Encrypted:
    """An encrypted direct chat the peer opened with the person, who then
    registers: the peer is a contact."""
    room_id = peer.create_encrypted_room([person.matrix.user_id], is_direct=True)
    person.matrix.join(room_id)
    mark_direct(person.matrix, peer.user_id, room_id)
    await register(person, synapse)
    jid = contact_jid(person, peer.user_id)
    await wait_offered(person, jid)
    device_id = await gateway_device(person)
    await peer.knows_devices(person.matrix.user_id, device_id)
    return Encrypted(person, peer, room_id, jid, device_id)


@pytest_asyncio.fixture(loop_scope="session")
async def group(person: Person, synapse: Synapse, peer: NioPeer) -> Encrypted:
    return await encrypted_group(person, synapse, peer)


@pytest_asyncio.fixture(loop_scope="session")
async def direct(person: Person, synapse: Synapse, peer: NioPeer) -> Encrypted:
    return await encrypted_direct(person, synapse, peer)


# ---- the harness itself -----------------------------------------------------


async def test_the_peer_device_is_cross_signed_and_the_other_is_not(
    synapse: Synapse, tmp_path: Path, peer: NioPeer
) -> None:
    async with open_peer(synapse, tmp_path / "plain", cross_signed=False) as plain:
        assert device_signed_by_self_signing_key(
            plain.raw, peer.user_id, peer.device_id
        )
        assert not device_signed_by_self_signing_key(
            peer.raw, plain.user_id, plain.device_id
        )


# ---- Megolm both ways -------------------------------------------------------


async def both_ways(chat: Encrypted) -> None:
    secret = unique("a secret for the gateway ")
    event_id = await chat.peer.send_text(chat.room_id, secret)
    assert_encrypted_on_the_server(chat.peer, chat.room_id, event_id)
    await chat.person.xmpp.wait_message(chat.from_peer(secret), timeout=60)

    answer = unique("an answer from xmpp ")
    chat.send(answer)
    event = await chat.from_xmpp(answer)
    assert event["type"] == "m.room.message"
    assert event["content"]["msgtype"] == "m.text"
    assert_encrypted_on_the_server(chat.peer, chat.room_id, event["event_id"])


async def test_megolm_both_ways_in_a_group_chat(group: Encrypted) -> None:
    assert group.is_group
    await both_ways(group)


async def test_megolm_both_ways_in_a_direct_chat(direct: Encrypted) -> None:
    assert not direct.is_group
    await both_ways(direct)


# ---- relations from XMPP, encrypted -----------------------------------------


async def test_a_reply_a_reaction_and_an_edit_from_xmpp_arrive_encrypted(
    group: Encrypted,
) -> None:
    peer, me = group.peer, group.person.matrix.user_id
    question = await peer.send_text(group.room_id, "Coffee?")
    await group.person.xmpp.wait_message(group.from_peer("Coffee?"), timeout=60)

    answer = group.stanza("Yes please")
    answer["reply"]["id"] = question
    answer["reply"]["to"] = f"{group.jid}/{NINA}"
    answer["reply"].add_quoted_fallback("Coffee?", NINA)
    answer.send()
    reply = await group.from_xmpp("Yes please")
    assert reply["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": question}}
    assert_encrypted_on_the_server(peer, group.room_id, reply["event_id"])

    reaction = group.stanza()
    group.person.xmpp.plugin["xep_0444"].set_reactions(
        reaction, to_id=question, reactions=["👍"]
    )
    reaction.send()
    thumbs = await peer.wait_event(
        decrypted(group.room_id, me, lambda e: e["type"] == "m.reaction")
    )
    assert thumbs["content"]["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": question,
        "key": "👍",
    }
    assert_encrypted_on_the_server(peer, group.room_id, thumbs["event_id"])

    typo = group.stanza("See you at noom")
    typo.send()
    first = await group.from_xmpp("See you at noom")
    fix = group.stanza("See you at noon")
    fix["replace"]["id"] = typo["id"]
    fix.send()
    edit = await peer.wait_event(
        decrypted(
            group.room_id,
            me,
            lambda e: (
                e["content"].get("m.new_content", {}).get("body") == "See you at noon"
            ),
        )
    )
    assert edit["content"]["m.relates_to"] == {
        "rel_type": "m.replace",
        "event_id": first["event_id"],
    }
    assert_encrypted_on_the_server(peer, group.room_id, edit["event_id"])


async def test_an_encrypted_reply_and_edit_from_matrix_arrive_as_such(
    group: Encrypted,
) -> None:
    peer, xmpp = group.peer, group.person.xmpp
    group.send("Tea or coffee?")
    question = await group.from_xmpp("Tea or coffee?")
    await peer.send_text(
        group.room_id,
        "Tea",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": question["event_id"]}}},
    )
    reply = await xmpp.wait_message(
        lambda m: group.from_peer()(m) and "reply" in m, timeout=60
    )
    assert reply["reply"]["id"] == question["event_id"]
    assert reply["reply"].strip_fallback_content() == "Tea"

    typo = await peer.send_text(group.room_id, "See you at 5")
    first = await xmpp.wait_message(group.from_peer("See you at 5"), timeout=60)
    await peer.send_text(
        group.room_id,
        "* See you at 6",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "See you at 6"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": typo},
        },
    )
    fixed = await xmpp.wait_message(group.from_peer("See you at 6"), timeout=60)
    assert fixed["replace"]["id"] == first["id"]


# ---- rotation ---------------------------------------------------------------


async def test_the_session_rotates_after_the_rooms_message_count(
    person: Person, synapse: Synapse, peer: NioPeer
) -> None:
    chat = await encrypted_group(
        person, synapse, peer, rotation={"rotation_period_msgs": 2}
    )
    sessions = []
    for i in range(3):
        body = f"counted message {i}"
        chat.send(body)
        event = await chat.from_xmpp(body)
        sessions.append(
            assert_encrypted_on_the_server(peer, chat.room_id, event["event_id"])
        )
    assert sessions[0] == sessions[1], "rotated before the count was reached"
    assert sessions[2] != sessions[1], "the third message used an exhausted session"


async def test_the_session_rotates_after_the_rooms_period(
    person: Person, synapse: Synapse, peer: NioPeer
) -> None:
    """A period of 1 ms: any later message is past it (each is sent after
    the previous one made the round trip to nio)."""
    chat = await encrypted_group(
        person, synapse, peer, rotation={"rotation_period_ms": 1}
    )
    sessions = []
    for i in range(2):
        body = f"timed message {i}"
        chat.send(body)
        event = await chat.from_xmpp(body)
        sessions.append(event["session_id"])
    assert sessions[0] != sessions[1]


async def test_the_session_rotates_when_a_member_leaves(
    group: Encrypted, synapse: Synapse, tmp_path: Path
) -> None:
    async with open_peer(synapse, tmp_path / "bea", display_name="Bea") as bea:
        group.peer.raw.invite(group.room_id, bea.user_id)
        await bea.join(group.room_id)
        await group.person.xmpp.wait_presence(
            lambda p: p["from"] == f"{group.jid}/Bea" and p["type"] != "unavailable",
            timeout=60,
        )
        group.send("before Bea leaves")
        before = await group.from_xmpp("before Bea leaves")
        # Bea had the key: she was one of the recipients.
        await bea.wait_event(
            decrypted(
                group.room_id, group.person.matrix.user_id, body_is("before Bea leaves")
            )
        )
        await bea.leave(group.room_id)
        await group.person.xmpp.wait_presence(
            lambda p: p["from"] == f"{group.jid}/Bea" and p["type"] == "unavailable",
            timeout=60,
        )
        group.send("after Bea left")
        after = await group.from_xmpp("after Bea left")
        assert after["session_id"] != before["session_id"]
        # The key went out before the event: Bea's next sync would bring it.
        await bea.sync()
        assert not bea.has_room_key(group.room_id, after["session_id"])


async def test_the_session_rotates_when_a_device_goes_away(
    group: Encrypted, synapse: Synapse, tmp_path: Path
) -> None:
    peer, me = group.peer, group.person.matrix.user_id
    async with open_other_device(synapse, tmp_path / "phone", peer) as phone:
        await phone.sync()
        group.send("read on both devices")
        before = await group.from_xmpp("read on both devices")
        # The phone had the key: it was one of the recipients.
        await phone.wait_event(
            decrypted(group.room_id, me, body_is("read on both devices"))
        )
        await phone.log_out()
    # A message from Nina sent after the logout comes in the batch that
    # reports her device list changed, or after it: once it is shown, the
    # gateway knows the phone is gone.
    await peer.send_text(group.room_id, "my phone is gone")
    await group.person.xmpp.wait_message(
        group.from_peer("my phone is gone"), timeout=60
    )
    group.send("after the phone went away")
    after = await group.from_xmpp("after the phone went away")
    assert after["session_id"] != before["session_id"]


# ---- a key that arrives late ------------------------------------------------


async def late_key_corrects_the_placeholder(chat: Encrypted) -> None:
    text = unique("said before the key came ")
    late = await chat.peer.send_text_withholding_key(
        chat.room_id, text, chat.person.matrix.user_id, chat.device_id
    )
    placeholder = await chat.person.xmpp.wait_message(
        lambda m: chat.from_peer()(m) and m["body"].startswith(LOCK), timeout=60
    )
    assert text not in placeholder["body"]
    await chat.peer.send_late_key(late, chat.person.matrix.user_id, chat.device_id)
    corrected = await chat.person.xmpp.wait_message(chat.from_peer(text), timeout=60)
    assert corrected["replace"]["id"] == placeholder["id"]


async def test_a_late_key_turns_the_placeholder_into_the_message_in_a_group(
    group: Encrypted,
) -> None:
    await late_key_corrects_the_placeholder(group)


async def test_a_late_key_turns_the_placeholder_into_the_message_in_a_direct_chat(
    direct: Encrypted,
) -> None:
    await late_key_corrects_the_placeholder(direct)


# ---- only cross-signed devices get room keys --------------------------------


async def test_a_device_its_owner_did_not_cross_sign_gets_withheld_unverified(
    group: Encrypted, synapse: Synapse, tmp_path: Path
) -> None:
    async with open_peer(
        synapse, tmp_path / "plain", cross_signed=False, display_name="Una"
    ) as una:
        group.peer.raw.invite(group.room_id, una.user_id)
        await una.join(group.room_id)
        await group.person.xmpp.wait_presence(
            lambda p: p["from"] == f"{group.jid}/Una" and p["type"] != "unavailable",
            timeout=60,
        )
        group.send("for verified eyes only")
        read = await group.from_xmpp("for verified eyes only")  # Nina reads it
        withheld = await una.wait_to_device(
            lambda e: (
                e.get("type") == "m.room_key.withheld"
                and e.get("content", {}).get("session_id") == read["session_id"]
            )
        )
        content = withheld["content"]
        assert content["code"] == "m.unverified"
        assert content["room_id"] == group.room_id
        assert content["algorithm"] == "m.megolm.v1.aes-sha2"
        assert withheld["sender"] == group.person.matrix.user_id
        await una.sync()
        assert not [
            e
            for e in una.events
            if e.get("decrypted") and body_is("for verified eyes only")(e)
        ], "the unverified device could read the message"


# ---- files ------------------------------------------------------------------


async def test_encrypted_files_both_ways(group: Encrypted, prosody: Prosody) -> None:
    data = png(23, 11)
    await group.peer.send_encrypted_file(
        group.room_id, data, "secret.png", "image/png", msgtype="m.image"
    )
    shown = await group.person.xmpp.wait_message(
        lambda m: group.from_peer()(m) and bool(m["oob"]["url"]), timeout=60
    )
    assert await http_get(shown["oob"]["url"]) == data
    assert sims_file(shown)["name"] == "secret.png"

    sent = b"minutes of the secret meeting\n" * 50
    url = await group.person.xmpp.upload(prosody.upload_jid, "minutes.txt", sent)
    group.person.xmpp.send_file_link(group.jid, url)
    event = await group.peer.wait_event(
        decrypted(
            group.room_id,
            group.person.matrix.user_id,
            lambda e: e["content"].get("body") == "minutes.txt",
        )
    )
    content = event["content"]
    assert "url" not in content, "an encrypted room got a file in the clear"
    assert group.peer.download_decrypted(content["file"]) == sent
    assert_encrypted_on_the_server(group.peer, group.room_id, event["event_id"])


# ---- keys kept through restarts ---------------------------------------------


@pytest.fixture
def own_prosody(tmp_path: Path) -> Iterator[Prosody]:
    server = Prosody(tmp_path / "prosody", privilege=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Restartable:
    """An encrypted direct chat through a gateway of the test's own."""

    gateway: Gateway
    chat: Encrypted


@pytest_asyncio.fixture(loop_scope="session")
async def restartable(
    tmp_path: Path, own_prosody: Prosody, synapse: Synapse, peer: NioPeer
) -> AsyncIterator[Restartable]:
    gateway = Gateway(tmp_path / "gateway", own_prosody, "--sync-timeout-ms=5000")
    gateway.start()
    try:
        async with new_person(synapse, own_prosody, gateway) as person:
            chat = await encrypted_direct(person, synapse, peer)
            yield Restartable(gateway, chat)
    finally:
        gateway.stop()


def placeholders(client: XmppClient, jid: str) -> list[str]:
    return [
        m["body"]
        for m in client.received
        if isinstance(m, Message)
        and m["from"].bare == jid
        and m["body"].startswith(LOCK)
    ]


async def readable_after_restart(r: Restartable, bodies: list[str]) -> None:
    """Each body reaches the person, none of them as a placeholder, and
    the gateway still writes encrypted to the peer."""
    chat = r.chat
    for body in bodies:
        await chat.person.xmpp.wait_message(chat.from_peer(body), timeout=120)
    assert placeholders(chat.person.xmpp, chat.jid) == []
    chat.send("written after the restart")
    event = await chat.from_xmpp("written after the restart")
    assert_encrypted_on_the_server(chat.peer, chat.room_id, event["event_id"])


async def test_keys_survive_a_gateway_restart(restartable: Restartable) -> None:
    chat = restartable.chat
    await chat.peer.send_text(chat.room_id, "before the restart")
    await chat.person.xmpp.wait_message(chat.from_peer("before the restart"), 60)
    await asyncio.to_thread(restartable.gateway.stop)
    # While it is down: one in the session it has, one in a new session
    # whose key waits for it as a to-device message.
    await chat.peer.send_text(chat.room_id, "while down, the same session")
    chat.peer.new_session(chat.room_id)
    await chat.peer.send_text(chat.room_id, "while down, a new session")
    await asyncio.to_thread(restartable.gateway.start)
    await readable_after_restart(
        restartable, ["while down, the same session", "while down, a new session"]
    )


async def test_a_key_that_came_just_before_a_sigkill_is_kept(
    restartable: Restartable,
) -> None:
    chat = restartable.chat
    # A new session: its key comes with the message, in the same batch.
    chat.peer.new_session(chat.room_id)
    await chat.peer.send_text(chat.room_id, "just before the kill")
    await chat.person.xmpp.wait_message(chat.from_peer("just before the kill"), 60)
    await asyncio.to_thread(restartable.gateway.kill)
    # Only that key opens this one: it must have been kept.
    await chat.peer.send_text(chat.room_id, "after the kill, that session")
    await asyncio.to_thread(restartable.gateway.start)
    await readable_after_restart(restartable, ["after the kill, that session"])


async def test_keys_of_a_batch_cut_by_a_sigkill_are_not_lost(
    restartable: Restartable,
) -> None:
    """A stream of messages, each in a session of its own, goes on while
    the gateway is killed right after showing one of them: whichever batch
    the kill cut, every message is readable after the restart."""
    chat = restartable.chat
    bodies = [f"streamed through the kill {i}" for i in range(8)]

    async def stream() -> None:
        for body in bodies:
            chat.peer.new_session(chat.room_id)
            await chat.peer.send_text(chat.room_id, body)
            await asyncio.sleep(0.3)

    sender = asyncio.create_task(stream())
    await chat.person.xmpp.wait_message(chat.from_peer(bodies[1]), 60)
    await asyncio.to_thread(restartable.gateway.kill)
    await sender
    await asyncio.to_thread(restartable.gateway.start)
    await readable_after_restart(restartable, bodies[2:])
