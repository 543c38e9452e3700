"""Direct chats as contacts, end to end: a Matrix direct room shows as an XMPP
contact (name, avatar, presence), its messages as 1:1 chat, and writing to
the contact reaches the room (or a new one)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image
from slixmpp import JID, Message, Presence

from matridge.ids import matrix_id_to_jid_local
from tests.conftest import Person, new_matrix_user, new_person, unique
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.prosody import Prosody
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppError
from tests.scenarios import book_club, groupchat_from, register
from tests.test_e2e_commands import rooms_table
from tests.test_e2e_media import http_get, send_file, sims_file
from tests.test_e2e_messages import (
    content_of,
    redact,
    send_receipt,
    set_typing,
    states_and_marker_reach_matrix,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

NS_CONFERENCE = "jabber:x:conference"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NS_IDLE = "urn:xmpp:idle:1"


# ---- Matrix set-up helpers ------------------------------------------------------


def q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def direct_of(user: MatrixUser) -> dict[str, list[str]]:
    """The user's m.direct (empty if unset)."""
    try:
        return user.request("GET", f"/user/{q(user.user_id)}/account_data/m.direct")
    except Exception:
        return {}


def mark_direct(user: MatrixUser, other: str, room_id: str) -> None:
    """What a Matrix client does on a new direct chat: list it in m.direct."""
    content = direct_of(user)
    content.setdefault(other, []).append(room_id)
    user.request("PUT", f"/user/{q(user.user_id)}/account_data/m.direct", content)


def open_direct_room(person: Person, friend: MatrixUser) -> str:
    """A direct room the friend opened with the person, joined and listed in
    the person's m.direct (as their Matrix client would)."""
    room_id = friend.create_room(
        invite=[person.matrix.user_id], is_direct=True, preset="trusted_private_chat"
    )
    person.matrix.join(room_id)
    mark_direct(person.matrix, friend.user_id, room_id)
    return room_id


def set_presence(user: MatrixUser, presence: str, status: str | None = None) -> None:
    body: dict[str, str] = {"presence": presence}
    if status is not None:
        body["status_msg"] = status
    user.request("PUT", f"/presence/{q(user.user_id)}/status", body)


def png(color: tuple[int, int, int], size: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG")
    return out.getvalue()


def set_avatar(user: MatrixUser, data: bytes) -> None:
    req = urllib.request.Request(
        f"{user.base_url}/_matrix/media/v3/upload?filename=me.png",
        data=data,
        method="POST",
        headers={
            "Content-Type": "image/png",
            "Authorization": f"Bearer {user.access_token}",
        },
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        mxc = json.loads(resp.read())["content_uri"]
    user.request("PUT", f"/profile/{q(user.user_id)}/avatar_url", {"avatar_url": mxc})


# ---- XMPP helpers ---------------------------------------------------------------


def contact_jid(person: Person, user_id: str) -> str:
    return f"{matrix_id_to_jid_local(user_id)}@{person.gateway_jid}"


def chat_from(jid: str, body: str | None = None) -> Callable[[Message], bool]:
    def match(m: Message) -> bool:
        return (
            m["type"] == "chat"
            and m["from"].bare == jid
            and (body is None or m["body"] == body)
        )

    return match


def presence_from(jid: str, ptype: str | None = None) -> Callable[[Presence], bool]:
    def match(p: Presence) -> bool:
        return p["from"].bare == jid and (ptype is None or p["type"] == ptype)

    return match


async def wait_offered(person: Person, jid: str, timeout: float = 30) -> str:  # noqa: ASYNC109
    """Waits until the gateway offers contact `jid` for the user's roster;
    returns the name it gives. With XEP-0356 privileges (when Prosody has
    mod_privilege) it pushes the contact into the roster, else it sends a
    subscription request with a XEP-0172 nick."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    roster = person.xmpp.client_roster
    while True:
        if jid in roster and roster[jid]["name"]:
            return str(roster[jid]["name"])
        for p in person.xmpp.received:
            if isinstance(p, Presence) and presence_from(jid, "subscribe")(p):
                return str(p["nick"]["nick"])
        if loop.time() > deadline:
            raise TimeoutError(f"{jid} was never offered for the roster")
        await asyncio.sleep(0.2)


def is_invitation_to(room_jid: str) -> Callable[[Message], bool]:
    def match(m: Message) -> bool:
        x = m.xml.find(f"{{{NS_CONFERENCE}}}x")
        return x is not None and x.get("jid") == room_jid

    return match


def invitations_to(person: Person, room_jid: str) -> list[Message]:
    match = is_invitation_to(room_jid)
    return [m for m in person.xmpp.received if isinstance(m, Message) and match(m)]


@dataclass
class Direct:
    """A person registered with the gateway, with a direct chat with Dana."""

    person: Person
    friend: MatrixUser
    room_id: str
    jid: str  # Dana's contact JID


@pytest_asyncio.fixture(loop_scope="session")
async def direct(person: Person, synapse: Synapse) -> Direct:
    friend = new_matrix_user(synapse, "dana", "Direct Dana")
    room_id = open_direct_room(person, friend)
    await register(person, synapse)
    jid = contact_jid(person, friend.user_id)
    await wait_offered(person, jid)
    return Direct(person, friend, room_id, jid)


# ---- 1. direct rooms as contacts -------------------------------------------------


async def test_a_direct_room_is_a_contact_with_name_and_avatar_not_a_muc(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "dana", "Direct Dana")
    set_avatar(friend, png((200, 30, 40)))
    room_id = open_direct_room(person, friend)
    _, club_room = book_club(person, synapse)  # an ordinary room beside it
    await register(person, synapse)
    jid = contact_jid(person, friend.user_id)

    # The contact is offered for the roster under its Matrix display name.
    assert await wait_offered(person, jid) == "Direct Dana"

    # The ordinary room is announced as a group chat; the direct room is not
    # (both lists are filled at login; slidge 0.5 sends the announcement from
    # a task once the session is ready, so it may come just after "Connected").
    await person.xmpp.wait_message(
        is_invitation_to(person.room_jid(club_room)), timeout=30
    )
    assert invitations_to(person, person.room_jid(room_id)) == []

    # The avatar is the Matrix profile picture (re-encoded by slidge, the
    # same image).
    items = await person.xmpp.pubsub_items(jid, NS_AVATAR_DATA)
    assert len(items) == 1
    image = Image.open(io.BytesIO(base64.b64decode(items[0].text)))
    assert image.size == (16, 16)
    assert image.convert("RGB").getpixel((8, 8)) == (200, 30, 40)


# ---- 2. messages as 1:1 chat ------------------------------------------------------


async def test_a_direct_message_arrives_as_chat_from_the_contact(
    direct: Direct,
) -> None:
    body = "Coffee later? " + unique("")
    direct.friend.send_text(direct.room_id, body)
    msg = await direct.person.xmpp.wait_message(chat_from(direct.jid, body), timeout=30)
    assert msg["from"].bare == direct.jid
    # Nothing of it came as a group chat message.
    assert not any(
        isinstance(m, Message) and m["type"] == "groupchat" and m["body"] == body
        for m in direct.person.xmpp.received
    )


async def test_a_live_edit_in_a_direct_chat_is_a_correction(direct: Direct) -> None:
    xmpp = direct.person.xmpp
    event_id = direct.friend.send_text(direct.room_id, "See you at 5")
    first = await xmpp.wait_message(chat_from(direct.jid, "See you at 5"), timeout=30)
    direct.friend.send_event(
        direct.room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* See you at 6",
            "m.new_content": {"msgtype": "m.text", "body": "See you at 6"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        },
    )
    fixed = await xmpp.wait_message(chat_from(direct.jid, "See you at 6"), timeout=30)
    assert fixed["replace"]["id"] == first["id"]


async def test_a_direct_chat_stays_a_contact_after_logging_in_again(
    direct: Direct,
) -> None:
    """A sync resumed from its token does not repeat m.direct: the gateway
    must fetch it on login, or the direct room would turn into a group."""
    xmpp = direct.person.xmpp
    gateway = direct.person.gateway_jid
    xmpp.send_chat(gateway, "logout")
    await xmpp.wait_message(
        lambda m: m["from"].bare == gateway and "Disconnected from Matrix" in m["body"],
        timeout=30,
    )
    xmpp.send_chat(gateway, "re-login")
    await xmpp.wait_presence(
        lambda p: p["from"].bare == gateway and "Connected as" in p["status"],
        timeout=60,
    )
    body = "Still there? " + unique("")
    direct.friend.send_text(direct.room_id, body)
    await xmpp.wait_message(chat_from(direct.jid, body), timeout=30)
    assert invitations_to(direct.person, direct.person.room_jid(direct.room_id)) == []


async def test_a_reaction_in_a_direct_chat_comes_from_the_contact(
    direct: Direct,
) -> None:
    xmpp = direct.person.xmpp
    event_id = direct.friend.send_text(direct.room_id, "Lunch at noon")
    first = await xmpp.wait_message(chat_from(direct.jid, "Lunch at noon"), timeout=30)
    direct.friend.send_event(
        direct.room_id,
        "m.reaction",
        {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": event_id,
                "key": "👍",
            }
        },
    )
    reaction = await xmpp.wait_message(
        lambda m: (
            m["from"].bare == direct.jid
            and m.xml.find("{urn:xmpp:reactions:0}reactions") is not None
        ),
        timeout=30,
    )
    assert reaction["type"] == "chat"
    assert reaction["reactions"]["id"] == first["id"]
    assert {r["value"] for r in reaction["reactions"]} == {"👍"}


# ---- 3. writing to a contact -------------------------------------------------------


async def test_writing_to_a_contact_goes_to_the_existing_direct_room(
    direct: Direct,
) -> None:
    body = "Sure, 5 works " + unique("")
    direct.person.xmpp.send_chat(direct.jid, body)
    event = await direct.friend.wait_for_message_async(
        direct.room_id, lambda e: e.get("content", {}).get("body") == body, timeout=30
    )
    assert event["sender"] == direct.person.matrix.user_id
    # No second direct room was made for it.
    assert direct_of(direct.person.matrix) == {direct.friend.user_id: [direct.room_id]}


async def test_a_second_direct_room_with_someone_leaves_replies_in_the_first(
    direct: Direct,
) -> None:
    person, friend = direct.person, direct.friend
    # Another Matrix client opened a second direct room with Dana.
    second = open_direct_room(person, friend)
    in_second = "in the second room " + unique("")
    friend.send_text(second, in_second)
    await person.xmpp.wait_message(chat_from(direct.jid, in_second), timeout=30)
    in_first = "back in the first " + unique("")
    friend.send_text(direct.room_id, in_first)
    await person.xmpp.wait_message(chat_from(direct.jid, in_first), timeout=30)
    # Messages from either room come from the contact; the contact stays
    # tied to the first room, whichever room spoke last.
    answer = "answered where we began " + unique("")
    person.xmpp.send_chat(direct.jid, answer)
    await friend.wait_for_message_async(
        direct.room_id, lambda e: e.get("content", {}).get("body") == answer, timeout=30
    )


async def test_direct_chats_are_not_listed_as_group_chats(direct: Direct) -> None:
    rooms = await rooms_table(direct.person)
    assert direct.person.room_jid(direct.room_id) not in [r["jid"] for r in rooms]


async def test_writing_to_a_new_contact_opens_a_direct_room(
    direct: Direct, synapse: Synapse
) -> None:
    person = direct.person
    newcomer = new_matrix_user(synapse, "nell", "New Nell")
    jid = contact_jid(person, newcomer.user_id)
    body = "Hi Nell, it's me " + unique("")
    person.xmpp.send_chat(jid, body)

    # Nell is invited to a direct room...
    async def invited_room() -> str:
        since = None
        for _ in range(100):
            answer = await asyncio.to_thread(newcomer.sync, since, 1000)
            since = answer["next_batch"]
            invites = answer.get("rooms", {}).get("invite", {})
            if invites:
                return str(next(iter(invites)))
        raise TimeoutError("no invitation for Nell")

    room_id = await invited_room()
    member = person.matrix.state(room_id, "m.room.member", newcomer.user_id)
    assert member == {"membership": "invite", "is_direct": True, **member}
    newcomer.join(room_id)
    # The message is there (the gateway sends it once m.direct is written)...
    await newcomer.wait_for_message_async(
        room_id, lambda e: e.get("content", {}).get("body") == body, timeout=30
    )
    # ...and the person's m.direct records the room, beside the older entry.
    assert direct_of(person.matrix) == {
        direct.friend.user_id: [direct.room_id],
        newcomer.user_id: [room_id],
    }
    # Her answer comes back from her contact.
    newcomer.send_text(room_id, "Hello you!")
    await person.xmpp.wait_message(chat_from(jid, "Hello you!"), timeout=30)
    # The new direct room was never shown as a group chat.
    assert invitations_to(person, person.room_jid(room_id)) == []


# ---- 4. presence ------------------------------------------------------------------


async def test_matrix_presence_of_a_contact_is_xmpp_presence(direct: Direct) -> None:
    xmpp = direct.person.xmpp
    set_presence(direct.friend, "online", "Reading")
    await xmpp.wait_presence(
        lambda p: (
            p["from"].bare == direct.jid
            and p["type"] == "available"
            and p["show"] == ""
            and p["status"] == "Reading"  # active now: no "last seen"
        ),
        timeout=30,
    )

    set_presence(direct.friend, "unavailable", "At lunch")
    away = await xmpp.wait_presence(
        lambda p: p["from"].bare == direct.jid and p["show"] == "away", timeout=30
    )
    assert away["status"].startswith("At lunch")
    # Matrix's last_active_ago, as XEP-0319 idle time.
    idle = away.xml.find(f"{{{NS_IDLE}}}idle")
    assert idle is not None
    assert idle.get("since")

    set_presence(direct.friend, "offline")
    await xmpp.wait_presence(presence_from(direct.jid, "unavailable"), timeout=30)


# ---- 5. a third member makes it a group ----------------------------------------------


async def test_a_direct_room_with_a_third_member_becomes_a_muc(
    direct: Direct, synapse: Synapse
) -> None:
    person = direct.person
    third = new_matrix_user(synapse, "theo", "Third Theo")
    direct.friend.invite(direct.room_id, third.user_id)
    third.join(direct.room_id)

    room_jid = person.room_jid(direct.room_id)
    await person.xmpp.wait_message(is_invitation_to(room_jid), timeout=30)
    await person.xmpp.join_muc(room_jid, person.name)
    body = "Hello both " + unique("")
    direct.friend.send_text(direct.room_id, body)
    msg = await person.xmpp.wait_message(groupchat_from(room_jid, body), timeout=30)
    assert msg["from"].resource == "Direct Dana"
    assert not any(
        isinstance(m, Message) and m["type"] == "chat" and m["body"] == body
        for m in person.xmpp.received
    )


# ---- 6. search -----------------------------------------------------------------------


async def test_searching_a_user_id_gives_their_contact(
    direct: Direct, synapse: Synapse
) -> None:
    person = direct.person
    other = new_matrix_user(synapse, "sam", "Searched Sam")
    rows = await person.xmpp.search(person.gateway_jid, {"address": other.user_id})
    jid = contact_jid(person, other.user_id)
    assert rows == [{"name": "Searched Sam", "user_id": other.user_id, "jid": jid}]

    # The contact is usable at once: writing opens the direct chat.
    person.xmpp.send_chat(jid, "Found you")
    for _ in range(100):
        if direct_of(person.matrix).get(other.user_id):
            break
        await asyncio.sleep(0.3)
    assert len(direct_of(person.matrix)[other.user_id]) == 1


async def test_searching_an_unknown_user_says_so(direct: Direct) -> None:
    person = direct.person
    with pytest.raises(XmppError) as err:
        await person.xmpp.search(
            person.gateway_jid, {"address": "@nobody-" + unique("") + ":localhost"}
        )
    assert err.value.condition == "item-not-found"
    assert "knows no user" in err.value.text

    with pytest.raises(XmppError) as err:
        await person.xmpp.search(person.gateway_jid, {"address": "@no-server"})
    assert err.value.condition == "bad-request"


# ---- 7. direct chats others start -------------------------------------------------


def joined(user: MatrixUser, room_id: str) -> bool:
    return room_id in user.joined_rooms()


async def test_a_direct_chat_someone_starts_becomes_their_contact(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    friend = new_matrix_user(synapse, "olga", "Opening Olga")
    jid = contact_jid(person, friend.user_id)
    room_id = friend.create_room(
        invite=[person.matrix.user_id], is_direct=True, preset="trusted_private_chat"
    )
    first = "Hi, it's Olga " + unique("")
    friend.send_text(room_id, first)  # maybe before the gateway accepts

    # The gateway accepts the invitation and offers Olga as a contact; her
    # message arrives from her, as 1:1 chat.
    assert await wait_offered(person, jid) == "Opening Olga"
    await person.xmpp.wait_message(chat_from(jid, first), timeout=30)
    assert joined(person.matrix, room_id)
    # The room is recorded as a direct chat with her, as Matrix clients do.
    assert direct_of(person.matrix) == {friend.user_id: [room_id]}

    second = "Are you there? " + unique("")
    friend.send_text(room_id, second)
    await person.xmpp.wait_message(chat_from(jid, second), timeout=30)
    # Answering the contact goes to the room she started.
    answer = "Yes! " + unique("")
    person.xmpp.send_chat(jid, answer)
    await friend.wait_for_message_async(
        room_id, lambda e: e.get("content", {}).get("body") == answer, timeout=30
    )
    # Never a group chat: no invitation to it, no groupchat message from it.
    room_jid = person.room_jid(room_id)
    assert invitations_to(person, room_jid) == []
    assert not any(
        isinstance(m, Message) and m["from"].bare == room_jid
        for m in person.xmpp.received
    )
    assert direct_of(person.matrix) == {friend.user_id: [room_id]}


async def test_invitations_that_are_not_a_one_to_one_direct_chat_stay_muc_invitations(
    direct: Direct, synapse: Synapse
) -> None:
    person = direct.person
    me = person.matrix.user_id
    # An ordinary invitation (not marked direct).
    host = new_matrix_user(synapse, "gil", "Group Gil")
    group = host.create_room(name="Plans", invite=[me])
    await person.xmpp.wait_message(is_invitation_to(person.room_jid(group)), timeout=30)
    # A room marked direct that already has a third member: the invite state
    # shows only the inviter, so the gateway joins, sees the group, and shows
    # it as a group chat (announced like any room) without recording it as a
    # direct chat.
    third = new_matrix_user(synapse, "tara", "Third Tara")
    crowded = host.create_room(invite=[third.user_id])
    third.join(crowded)
    host.send_state(
        crowded, "m.room.member", {"membership": "invite", "is_direct": True}, me
    )
    crowded_jid = person.room_jid(crowded)
    await person.xmpp.wait_message(is_invitation_to(crowded_jid), timeout=30)
    await person.xmpp.join_muc(crowded_jid, person.name)
    body = "Hello all " + unique("")
    host.send_text(crowded, body)
    await person.xmpp.wait_message(groupchat_from(crowded_jid, body), timeout=30)

    assert not joined(person.matrix, group)
    assert direct_of(person.matrix) == {direct.friend.user_id: [direct.room_id]}
    host_jid = contact_jid(person, host.user_id)
    assert not any(
        isinstance(m, Message) and m["from"].bare == host_jid
        for m in person.xmpp.received
    )


# ---- 8. what a direct chat shares with group chats ---------------------------------


def chat_stanza(direct: Direct, body: str | None = None) -> Message:
    """A chat message to the contact, with a fresh id == origin-id."""
    msg = direct.person.xmpp.make_message(mto=direct.jid, mtype="chat")
    if body is not None:
        msg["body"] = body
    msg_id = uuid.uuid4().hex
    msg["id"] = msg_id
    msg["origin_id"]["id"] = msg_id
    return msg


async def room_event(direct: Direct, predicate: Any) -> dict[str, Any]:
    return await direct.friend.wait_for_message_async(
        direct.room_id, predicate, timeout=30
    )


async def test_typing_and_read_receipts_in_a_direct_chat_come_from_the_contact(
    direct: Direct,
) -> None:
    friend, xmpp = direct.friend, direct.person.xmpp

    def chat_state(state: str) -> Callable[[Message], bool]:
        return lambda m: chat_from(direct.jid)(m) and m["chat_state"] == state

    set_typing(friend, direct.room_id, True)
    await xmpp.wait_message(chat_state("composing"), timeout=30)
    set_typing(friend, direct.room_id, False)
    await xmpp.wait_message(chat_state("paused"), timeout=30)

    event_id = friend.send_text(direct.room_id, "read me")
    await xmpp.wait_message(chat_from(direct.jid, "read me"), timeout=30)
    send_receipt(friend, direct.room_id, event_id)
    await xmpp.wait_message(
        lambda m: chat_from(direct.jid)(m) and m["displayed"]["id"] == event_id,
        timeout=30,
    )


async def test_chat_states_and_displayed_markers_to_a_contact_reach_matrix(
    direct: Direct,
) -> None:
    await states_and_marker_reach_matrix(
        lambda: chat_stanza(direct),
        direct.friend,
        direct.room_id,
        direct.person.matrix.user_id,
        lambda body: direct.person.xmpp.wait_message(
            chat_from(direct.jid, body), timeout=30
        ),
    )


async def test_retractions_in_a_direct_chat_both_ways(direct: Direct) -> None:
    xmpp = direct.person.xmpp
    # The contact deletes a message on Matrix: a retraction (XEP-0424) from them.
    oops = direct.friend.send_text(direct.room_id, "oops, wrong person")
    await xmpp.wait_message(chat_from(direct.jid, "oops, wrong person"), timeout=30)
    redact(direct.friend, direct.room_id, oops)
    retraction = await xmpp.wait_message(
        lambda m: "retract" in m and m["retract"]["id"] == oops, timeout=30
    )
    assert retraction["from"].bare == direct.jid
    assert retraction["type"] == "chat"

    # The user retracts their message from XMPP: it is redacted on Matrix.
    regret = chat_stanza(direct, "I regret this " + unique(""))
    regret.send()
    sent = await room_event(
        direct, lambda e: content_of(e).get("body") == regret["body"]
    )
    retract = chat_stanza(direct)
    retract["retract"]["id"] = regret["id"]
    retract.send()
    redaction = await room_event(
        direct,
        lambda e: (
            e["type"] == "m.room.redaction" and e.get("redacts") == sent["event_id"]
        ),
    )
    assert redaction["sender"] == direct.person.matrix.user_id


async def test_a_reply_to_a_contact_reaches_matrix_as_a_reply(direct: Direct) -> None:
    question = direct.friend.send_text(direct.room_id, "Tea or coffee?")
    await direct.person.xmpp.wait_message(
        chat_from(direct.jid, "Tea or coffee?"), timeout=30
    )
    answer = chat_stanza(direct, "Tea, thanks")
    answer["reply"]["id"] = question
    answer["reply"]["to"] = direct.jid
    answer["reply"].add_quoted_fallback("Tea or coffee?", "Direct Dana")
    answer.send()
    event = await room_event(
        direct, lambda e: content_of(e).get("body") == "Tea, thanks"
    )
    assert content_of(event)["m.relates_to"] == {
        "m.in_reply_to": {"event_id": question}
    }


async def test_a_file_in_a_direct_chat_arrives_as_an_attachment_from_the_contact(
    direct: Direct,
) -> None:
    data = os.urandom(20_000)
    event_id = send_file(
        direct.friend, direct.room_id, data, "m.file", "notes.pdf", "application/pdf"
    )
    msg = await direct.person.xmpp.wait_message(
        lambda m: chat_from(direct.jid)(m) and bool(m["oob"]["url"]), timeout=60
    )
    assert msg["id"] == event_id
    assert await http_get(msg["oob"]["url"]) == data
    described = sims_file(msg)
    assert described["name"] == "notes.pdf"
    assert described["media-type"] == "application/pdf"


# ---- with XEP-0356 privileges: roster push and carbons ----


def privilege_module_dirs() -> list[Path]:
    """Where to look for mod_privilege besides the system's module paths:
    $MATRIDGE_PROSODY_MODULES (e.g. an unpacked prosody-modules .deb)."""
    extra = os.environ.get("MATRIDGE_PROSODY_MODULES")
    return [Path(extra)] if extra else []


@pytest.fixture(scope="module")
def privileged_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """A second Prosody that grants the gateway XEP-0356 privileges (roster,
    outgoing messages), with its own gateway on the shared Synapse."""
    try:
        prosody = Prosody(
            tmp_path_factory.mktemp("prosody-privileged"),
            privilege=True,
            plugin_dirs=privilege_module_dirs(),
        )
    except RuntimeError as e:
        pytest.skip(
            f"{e}: set MATRIDGE_PROSODY_MODULES to a directory holding "
            "mod_privilege (apt-get download prosody-modules; dpkg-deb -x)"
        )
    with prosody:
        gw = Gateway(tmp_path_factory.mktemp("gateway-privileged"), prosody)
        gw.start()
        try:
            yield gw
        finally:
            gw.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def privileged_person(
    synapse: Synapse, privileged_gateway: Gateway
) -> AsyncIterator[Person]:
    gateway = privileged_gateway
    async with new_person(synapse, gateway.prosody, gateway) as someone:
        yield someone


async def test_with_privileges_the_contact_is_pushed_and_own_messages_are_carbons(
    privileged_person: Person, synapse: Synapse
) -> None:
    person = privileged_person
    friend = new_matrix_user(synapse, "dana", "Direct Dana")
    room_id = open_direct_room(person, friend)
    await register(person, synapse)
    jid = contact_jid(person, friend.user_id)

    # The gateway puts the contact in the user's roster itself (XEP-0356),
    # named after the Matrix display name.
    for _ in range(100):
        if jid in person.xmpp.client_roster and person.xmpp.client_roster[jid]["name"]:
            break
        await asyncio.sleep(0.2)
    assert person.xmpp.client_roster[jid]["name"] == "Direct Dana"

    # What the user writes from another Matrix client shows in XMPP as their
    # own message to the contact (a carbon), not as the contact's.
    await person.xmpp.enable_carbons()
    body = "Written in Element " + unique("")
    person.matrix.send_text(room_id, body)
    carbon = await person.xmpp.wait_message(
        lambda m: (sent := sent_carbon(m)) is not None and sent["body"] == body,
        timeout=30,
    )
    sent = sent_carbon(carbon)
    assert sent is not None
    assert sent["to"].bare == jid
    assert sent["from"].bare == JID(person.xmpp.boundjid).bare
    assert not any(
        isinstance(m, Message) and m["from"].bare == jid and m["body"] == body
        for m in person.xmpp.received
    )


def sent_carbon(m: Message) -> Message | None:
    """The message a "sent" carbon (XEP-0280) forwards, if `m` is one."""
    if m.xml.find("{urn:xmpp:carbons:2}sent") is None:
        return None
    return m["carbon_sent"]  # type: ignore[no-any-return]


async def test_with_privileges_reading_on_another_matrix_client_is_a_carbon_marker(
    privileged_person: Person, synapse: Synapse
) -> None:
    person = privileged_person
    friend = new_matrix_user(synapse, "dana", "Direct Dana")
    room_id = open_direct_room(person, friend)
    await register(person, synapse)
    jid = contact_jid(person, friend.user_id)
    await wait_offered(person, jid)
    await person.xmpp.enable_carbons()

    event_id = friend.send_text(room_id, "read this in Element")
    await person.xmpp.wait_message(chat_from(jid, "read this in Element"), timeout=30)
    # The user reads it on another Matrix client: their XMPP clients mark it
    # displayed too, as a marker the user sent to the contact (a carbon).
    send_receipt(person.matrix, room_id, event_id)
    carbon = await person.xmpp.wait_message(
        lambda m: (
            (sent := sent_carbon(m)) is not None and sent["displayed"]["id"] == event_id
        ),
        timeout=30,
    )
    sent = sent_carbon(carbon)
    assert sent is not None
    assert sent["to"].bare == jid
    assert not any(
        isinstance(m, Message)
        and m["from"].bare == jid
        and m["displayed"]["id"] == event_id
        for m in person.xmpp.received
    )


# ---- with --direct-invites-as-groups: direct chats are offered, not accepted ----


@pytest.fixture(scope="module")
def cautious_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway (on its own Prosody) that offers direct invitations as
    group-chat invitations instead of accepting them."""
    with Prosody(tmp_path_factory.mktemp("prosody-cautious"), privilege=False) as xs:
        gw = Gateway(
            tmp_path_factory.mktemp("gateway-cautious"),
            xs,
            "--direct-invites-as-groups",
        )
        gw.start()
        try:
            yield gw
        finally:
            gw.stop()


async def test_a_gateway_can_offer_direct_chats_instead_of_accepting_them(
    synapse: Synapse, cautious_gateway: Gateway
) -> None:
    gateway = cautious_gateway
    async with new_person(synapse, gateway.prosody, gateway) as person:
        await register(person, synapse)
        stranger = new_matrix_user(synapse, "stan", "Stranger Stan")
        room_id = stranger.create_room(
            invite=[person.matrix.user_id],
            is_direct=True,
            preset="trusted_private_chat",
        )
        room_jid = person.room_jid(room_id)
        # Offered like any room's invitation; not joined, not a contact.
        await person.xmpp.wait_message(is_invitation_to(room_jid), timeout=30)
        assert not joined(person.matrix, room_id)
        assert direct_of(person.matrix) == {}
        # Accepting it (joining the MUC) joins the room, as a group chat.
        await person.xmpp.join_muc(room_jid, person.name)
        assert joined(person.matrix, room_id)
