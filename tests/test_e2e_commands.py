"""Finding and joining, end to end: search (XEP-0055, jabber:iq:gateway, the
``find`` chat command) and matridge's commands, both as ad-hoc commands
(XEP-0050) and as chat messages to the gateway, through the real servers."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import pytest
from slixmpp import JID

from matridge.ids import jid_local_to_matrix_id
from tests.conftest import Person, new_matrix_user, unique
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppError
from tests.scenarios import Club, from_gateway, groupchat_from, register

pytestmark = pytest.mark.asyncio(loop_scope="session")

NODE = "https://slidge.im/command/matridge/"
NS_SEARCH = "jabber:iq:search"
NS_GATEWAY = "jabber:iq:gateway"
NS_DATA = "jabber:x:data"
NS_CONFERENCE = "jabber:x:conference"


# ---- set-up helpers ---------------------------------------------------------


def public_room(owner: MatrixUser, name: str) -> tuple[str, str]:
    """A public room with an alias; returns (room id, alias)."""
    local = unique("room")
    room_id: str = owner.request(
        "POST",
        "/createRoom",
        {"preset": "public_chat", "name": name, "room_alias_name": local},
    )["room_id"]
    server = owner.user_id.split(":", 1)[1]
    return room_id, f"#{local}:{server}"


def joined(user: MatrixUser, room_id: str) -> set[str]:
    return set(user.joined_members(room_id))


async def search(person: Person, address: str) -> list[dict[str, str]]:
    """XEP-0055 search with the gateway's form; the result rows."""
    iq = person.xmpp.make_iq_set(ito=person.gateway_jid)
    query = ET.SubElement(iq.xml, f"{{{NS_SEARCH}}}query")
    form = ET.SubElement(query, f"{{{NS_DATA}}}x", type="submit")
    field = ET.SubElement(form, f"{{{NS_DATA}}}field", var="address")
    ET.SubElement(field, f"{{{NS_DATA}}}value").text = address
    answer = await person.xmpp._send_iq(iq, 60)
    rows = []
    for item in answer.xml.iterfind(f"{{{NS_SEARCH}}}query/{{{NS_DATA}}}x/{{*}}item"):
        rows.append(
            {
                f.get("var", ""): f.findtext(f"{{{NS_DATA}}}value") or ""
                for f in item.iterfind(f"{{{NS_DATA}}}field")
            }
        )
    return rows


async def rooms_table(person: Person) -> list[dict[str, str]]:
    iq = await person.xmpp.run_command(person.gateway_jid, NODE + "rooms")
    return person.xmpp.command_table(iq)


# ---- search -----------------------------------------------------------------


async def test_searching_an_alias_joins_the_room_and_answers_its_muc(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend", "Friendly Fran")
    room_id, alias = public_room(friend, "Open house")
    await register(person, synapse)

    rows = await search(person, alias)

    assert rows == [
        {"name": "Open house", "alias": alias, "jid": person.room_jid(room_id)}
    ]
    assert person.matrix.user_id in joined(friend, room_id)
    presences = await person.xmpp.join_muc(rows[0]["jid"], person.name)
    assert "Friendly Fran" in {p["from"].resource for p in presences}


async def test_a_room_id_joins_through_jabber_iq_gateway(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend")
    room_id, _ = public_room(friend, "By id")
    await register(person, synapse)

    iq = person.xmpp.make_iq_set(ito=person.gateway_jid)
    query = ET.SubElement(iq.xml, f"{{{NS_GATEWAY}}}query")
    ET.SubElement(query, f"{{{NS_GATEWAY}}}prompt").text = room_id
    answer = await person.xmpp._send_iq(iq, 60)

    assert answer.xml.findtext(f"{{{NS_GATEWAY}}}query/{{*}}jid") == person.room_jid(
        room_id
    )
    assert person.matrix.user_id in joined(friend, room_id)


async def test_search_says_what_is_wrong_with_bad_input(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend")
    private = friend.create_room(name="Invite only")
    server = friend.user_id.split(":", 1)[1]
    await register(person, synapse)

    cases = [
        ("general", "bad-request", "is not a Matrix address"),
        ("#general", "bad-request", "has no server part"),
        (f"#{unique('nowhere')}:{server}", "item-not-found", "No Matrix room has"),
        (private, "forbidden", "ask one of its members for an invitation"),
        (f"@{unique('nobody')}:{server}", "item-not-found", "knows no user"),
    ]
    for address, condition, words in cases:
        with pytest.raises(XmppError) as err:
            await search(person, address)
        assert (err.value.condition, words in err.value.text) == (condition, True), (
            address,
            err.value,
        )
    assert person.matrix.user_id not in joined(friend, private)


async def test_the_find_chat_command_joins_by_alias(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend")
    room_id, alias = public_room(friend, "Found by chat")
    await register(person, synapse)

    person.xmpp.send_chat(person.gateway_jid, f"find {alias}")

    reply = await person.xmpp.wait_message(
        from_gateway(person, "xmpp:", "?join"), timeout=60
    )
    assert f"xmpp:{person.room_jid(room_id)}?join" in unquote(reply["body"])
    assert person.matrix.user_id in joined(friend, room_id)


# ---- rooms, join, leave -----------------------------------------------------


async def test_rooms_lists_name_alias_members_and_muc_of_each_room(
    club: Club,
) -> None:
    person = club.person
    other_id, alias = public_room(club.friend, "Second room")
    person.matrix.join(other_id)
    # The gateway announces the room once the person's join reaches it.
    await person.xmpp.wait_message(
        lambda m: (
            (x := m.xml.find(f"{{{NS_CONFERENCE}}}x")) is not None
            and x.get("jid") == person.room_jid(other_id)
        ),
        timeout=60,
    )

    rows = await rooms_table(person)

    assert rows == [
        {
            "name": "Book club",
            "alias": "",
            "members": "2",
            "jid": club.room_jid,
        },
        {
            "name": "Second room",
            "alias": alias,
            "members": "2",
            "jid": person.room_jid(other_id),
        },
    ]


async def test_rooms_as_a_chat_command(club: Club) -> None:
    club.person.xmpp.send_chat(club.person.gateway_jid, "rooms")
    reply = await club.person.xmpp.wait_message(
        from_gateway(club.person, "Your Matrix rooms"), timeout=60
    )
    assert "Name: Book club" in reply["body"]
    assert "Members: 2" in reply["body"]


async def test_join_by_alias_with_the_ad_hoc_form(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend")
    room_id, alias = public_room(friend, "Joined by form")
    await register(person, synapse)

    iq = await person.xmpp.run_command(
        person.gateway_jid, NODE + "join", {"address": alias}
    )

    assert person.xmpp.command_table(iq) == [
        {"name": "Joined by form", "alias": alias, "jid": person.room_jid(room_id)}
    ]
    assert person.matrix.user_id in joined(friend, room_id)
    assert [r["jid"] for r in await rooms_table(person)] == [person.room_jid(room_id)]


async def test_join_refuses_an_unknown_alias_in_words(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    server = person.matrix.user_id.split(":", 1)[1]
    with pytest.raises(XmppError) as err:
        await person.xmpp.run_command(
            person.gateway_jid,
            NODE + "join",
            {"address": f"#{unique('nope')}:{server}"},
        )
    assert err.value.condition == "item-not-found"
    assert "No Matrix room has the alias" in err.value.text


async def test_join_as_a_chat_command(person: Person, synapse: Synapse) -> None:
    friend = new_matrix_user(synapse, "friend")
    room_id, alias = public_room(friend, "Joined by chat")
    await register(person, synapse)

    person.xmpp.send_chat(person.gateway_jid, f"join {alias}")

    await person.xmpp.wait_message(
        from_gateway(person, "You joined this Matrix room", "Joined by chat"),
        timeout=60,
    )
    assert person.matrix.user_id in joined(friend, room_id)


async def test_leave_with_the_ad_hoc_form_leaves_matrix_and_drops_the_muc(
    club: Club,
) -> None:
    person = club.person
    iq = await person.xmpp.run_command(
        person.gateway_jid, NODE + "leave", {"room": club.room_id}
    )

    assert "You left Book club" in person.xmpp.command_notes(iq)
    assert person.matrix.user_id not in joined(club.friend, club.room_id)
    # Out of the group chat, and no longer one of the user's rooms.
    await person.xmpp.wait_presence(
        lambda p: p["from"].bare == club.room_jid and p["type"] == "unavailable",
        timeout=30,
    )
    assert await rooms_table(person) == []
    # slidge's own list of the user's groups no longer has it either.
    person.xmpp.send_chat(person.gateway_jid, "groups")
    await person.xmpp.wait_message(from_gateway(person, "Empty results"), timeout=30)
    # Its address no longer opens a group chat.
    with pytest.raises(XmppError) as err:
        await person.xmpp.join_muc(club.room_jid, person.name)
    assert "You are not in this Matrix room" in err.value.text


async def test_leave_as_a_chat_command_by_alias(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend")
    room_id, alias = public_room(friend, "Left by chat")
    person.matrix.join(room_id)
    await register(person, synapse)
    assert [r["name"] for r in await rooms_table(person)] == ["Left by chat"]

    person.xmpp.send_chat(person.gateway_jid, f"leave {alias}")

    await person.xmpp.wait_message(
        from_gateway(person, "You left Left by chat"), timeout=60
    )
    assert person.matrix.user_id not in joined(friend, room_id)
    assert await rooms_table(person) == []

    # Joining again brings the group chat back.
    iq = await person.xmpp.run_command(
        person.gateway_jid, NODE + "join", {"address": alias}
    )
    assert [r["jid"] for r in person.xmpp.command_table(iq)] == [
        person.room_jid(room_id)
    ]
    # The sync batch of the leave may come after the join's own state load
    # (a loaded machine): the list follows once the join's batch is in.
    deadline = asyncio.get_running_loop().time() + 30
    while [r["name"] for r in await rooms_table(person)] != ["Left by chat"]:
        assert asyncio.get_running_loop().time() < deadline, "never listed again"
        await asyncio.sleep(0.5)
    presences = await person.xmpp.join_muc(person.room_jid(room_id), person.name)
    assert presences[-1]["from"].bare == person.room_jid(room_id)


# ---- create -----------------------------------------------------------------


async def test_create_room_with_topic_and_invitee(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend")
    await register(person, synapse)

    iq = await person.xmpp.run_command(
        person.gateway_jid,
        NODE + "create-room",
        {"name": "Planning", "topic": "What we do next", "invite": friend.user_id},
    )

    [row] = person.xmpp.command_table(iq)
    assert row["name"] == "Planning"
    room_id = jid_local_to_matrix_id(JID(row["jid"]).node)
    assert person.matrix.state(room_id, "m.room.topic")["topic"] == "What we do next"
    assert room_id in friend.sync()["rooms"]["invite"]
    presences = await person.xmpp.join_muc(row["jid"], person.name)
    assert presences[-1]["from"].bare == row["jid"]


async def test_create_room_refuses_what_is_not_a_matrix_id(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    with pytest.raises(XmppError) as err:
        await person.xmpp.run_command(
            person.gateway_jid,
            NODE + "create-room",
            {"name": "Nope", "invite": "alice@example.org"},
        )
    assert err.value.condition == "bad-request"
    assert "Not Matrix user ids: alice@example.org" in err.value.text
    assert person.matrix.joined_rooms() == []


async def test_create_room_as_a_chat_command(person: Person, synapse: Synapse) -> None:
    await register(person, synapse)
    person.xmpp.send_chat(person.gateway_jid, "create-room Made by chat")
    await person.xmpp.wait_message(
        from_gateway(person, "Your new Matrix room Made by chat"), timeout=60
    )
    [room_id] = person.matrix.joined_rooms()
    assert person.matrix.state(room_id, "m.room.name") == {"name": "Made by chat"}


# ---- sync status and logout -------------------------------------------------


async def test_sync_status_and_logout_as_ad_hoc_commands(club: Club) -> None:
    person = club.person
    club.friend.send_text(club.room_id, "status check")
    await person.xmpp.wait_message(
        groupchat_from(club.room_jid, "status check"), timeout=30
    )

    status = person.xmpp.command_notes(
        await person.xmpp.run_command(person.gateway_jid, NODE + "sync-status")
    )
    assert "Connection: connected" in status
    assert f"Matrix account: {person.matrix.user_id}" in status
    assert "Joined rooms: 1" in status
    assert "Sync loop: running" in status
    assert "Last sync: none" not in status

    notes = person.xmpp.command_notes(
        await person.xmpp.run_command(person.gateway_jid, NODE + "logout")
    )
    assert "Disconnected from Matrix" in notes

    person.xmpp.send_chat(person.gateway_jid, "sync-status")
    reply = await person.xmpp.wait_message(
        from_gateway(person, "Connection:"), timeout=30
    )
    assert "Connection: disconnected" in reply["body"]
    assert "Sync loop: stopped" in reply["body"]

    # Logged out, the Matrix commands are refused until re-login.
    with pytest.raises(XmppError) as err:
        await person.xmpp.run_command(person.gateway_jid, NODE + "rooms")
    assert err.value.condition == "forbidden"


async def test_a_room_version_12_id_without_server_joins(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend")
    room_id: str = friend.request(
        "POST",
        "/createRoom",
        {"preset": "public_chat", "name": "Hydra", "room_version": "12"},
    )["room_id"]
    assert ":" not in room_id  # the room id format of version 12
    await register(person, synapse)

    rows = await search(person, room_id)

    assert [(r["name"], r["jid"]) for r in rows] == [
        ("Hydra", person.room_jid(room_id))
    ]
    assert person.matrix.user_id in joined(friend, room_id)


async def test_join_asks_for_the_address_in_a_chat(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend")
    room_id, alias = public_room(friend, "Asked for")
    await register(person, synapse)

    person.xmpp.send_chat(person.gateway_jid, "join")
    await person.xmpp.wait_message(
        from_gateway(person, "Room alias or id?"), timeout=60
    )
    person.xmpp.send_chat(person.gateway_jid, alias)

    reply = await person.xmpp.wait_message(
        from_gateway(person, "You joined this Matrix room"), timeout=60
    )
    assert f"xmpp:{person.room_jid(room_id)}?join" in unquote(reply["body"])
    assert person.matrix.user_id in joined(friend, room_id)
