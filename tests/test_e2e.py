"""The walking skeleton, end to end: an XMPP client, Prosody, the gateway
process, the C engine and Synapse, all real."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import Any

import pytest

from tests.conftest import Person, new_matrix_user, unique
from tests.harness.fake_homeserver import Answer, fake_homeserver
from tests.harness.gateway import Gateway
from tests.harness.ports import free_port
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppError
from tests.scenarios import (
    Club,
    book_club,
    groupchat_from,
    received_bodies,
    refused_registration,
    register,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

NS_CONFERENCE = "jabber:x:conference"


async def test_a_joined_room_becomes_a_muc_with_its_name_and_members(
    person: Person, synapse: Synapse
) -> None:
    _, room_id = book_club(person, synapse)
    await register(person, synapse)
    room_jid = person.room_jid(room_id)

    # No privileged entity in this deployment: the gateway announces the room
    # with a direct invitation.
    invite = await person.xmpp.wait_message(
        lambda m: (
            (x := m.xml.find(f"{{{NS_CONFERENCE}}}x")) is not None
            and x.get("jid") == room_jid
        ),
        timeout=30,
    )
    assert invite["from"].bare == person.gateway_jid

    info = await person.xmpp.disco_info(room_jid)
    names = [ident[3] for ident in info["disco_info"]["identities"]]
    assert names == ["Book club"]

    presences = await person.xmpp.join_muc(room_jid, person.name)
    nicks = {p["from"].resource for p in presences}
    assert "Friendly Fran" in nicks
    assert len(nicks) == 2  # Fran and the user themself

    subject = await person.xmpp.wait_message(
        lambda m: m["from"].bare == room_jid and m["subject"] != "", timeout=20
    )
    assert subject["subject"] == "Reading together"


async def test_a_matrix_message_reaches_xmpp_with_nick_and_body(club: Club) -> None:
    event_id = club.friend.send_text(club.room_id, "Has anyone finished chapter 3?")
    msg = await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "Has anyone finished chapter 3?"), timeout=30
    )
    assert msg["from"].resource == "Friendly Fran"
    assert msg["stanza_id"]["id"] == event_id


async def test_an_emote_arrives_as_me(club: Club) -> None:
    club.friend.send_event(
        club.room_id, "m.room.message", {"msgtype": "m.emote", "body": "waves"}
    )
    msg = await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "/me waves"), timeout=30
    )
    assert msg["from"].resource == "Friendly Fran"


async def test_an_xmpp_groupchat_message_reaches_matrix_without_echo(
    club: Club,
) -> None:
    body = "I did, it was great " + unique("")
    club.person.xmpp.send_groupchat(club.room_jid, body)

    event = await club.friend.wait_for_message_async(
        club.room_id,
        lambda e: e.get("content", {}).get("body") == body,
        timeout=30,
    )
    assert event["sender"] == club.person.matrix.user_id
    assert event["content"]["msgtype"] == "m.text"

    # The MUC reflects the user's message once, as their own; a later Matrix
    # message proves the sync that carried ours back has been processed.
    club.friend.send_text(club.room_id, "marker after " + body)
    await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "marker after " + body), timeout=30
    )
    copies = received_bodies(club.person, club.room_jid, body)
    assert [m["from"].resource for m in copies] == [club.nick]


async def test_a_wrong_password_is_refused_in_words(
    person: Person, synapse: Synapse
) -> None:
    with pytest.raises(XmppError) as err:
        await person.xmpp.register_with(
            person.gateway_jid,
            person.registration_form(synapse, password="not-the-password"),
            timeout=60,
        )
    assert err.value.condition == "not-authorized"
    assert "refused this user name or password" in err.value.text


async def test_an_unreachable_homeserver_is_refused_in_words(person: Person) -> None:
    form = {
        "homeserver": f"http://127.0.0.1:{free_port()}",
        "username": person.name,
        "password": person.password,
    }
    with pytest.raises(XmppError) as err:
        await person.xmpp.register_with(person.gateway_jid, form, timeout=60)
    assert err.value.condition == "remote-server-not-found"
    assert "Could not reach a Matrix homeserver" in err.value.text


async def test_registration_finds_the_homeserver_through_its_well_known(
    person: Person, synapse: Synapse
) -> None:
    # The server's name answers only with .well-known/matrix/client, as a
    # web site delegating to its homeserver does.
    with fake_homeserver() as site:
        site.route(
            "/.well-known/matrix/client",
            Answer(200, {"m.homeserver": {"base_url": synapse.base_url}}),
        )
        await register(person, synapse, homeserver=site.base_url)
        assert site.requests_to("/.well-known/matrix/client")
        # Only the well-known was asked of the site: the rest went to Synapse.
        assert not site.requests_to("/_matrix/client/v3/login")


async def test_without_a_homeserver_a_bare_user_name_is_refused_in_words(
    person: Person, synapse: Synapse
) -> None:
    form = {**person.registration_form(synapse), "homeserver": ""}
    err = await refused_registration(person, form)
    assert err.condition == "bad-request"
    assert "full Matrix id" in err.text


async def test_logout_and_login_resume_without_duplicates(club: Club) -> None:
    xmpp = club.person.xmpp
    club.friend.send_text(club.room_id, "before the break")
    await xmpp.wait_message(
        groupchat_from(club.room_jid, "before the break"), timeout=30
    )

    xmpp.send_chat(club.person.gateway_jid, "logout")
    await xmpp.wait_message(
        lambda m: (
            m["from"].bare == club.person.gateway_jid
            and "Disconnected from Matrix" in m["body"]
        ),
        timeout=30,
    )
    club.friend.send_text(club.room_id, "while you were away")
    await asyncio.sleep(1)
    assert received_bodies(club.person, club.room_jid, "while you were away") == []

    relogin_at = len(xmpp.received)
    xmpp.send_chat(club.person.gateway_jid, "re-login")
    await xmpp.wait_presence(
        lambda p: (
            p["from"].bare == club.person.gateway_jid and "Connected as" in p["status"]
        ),
        timeout=60,
    )
    # Logging out took the user out of the MUC; like any client, rejoin and
    # catch up from the room's history. (A message arriving while slidge is
    # still sending the join's history can come both live and as history:
    # that is slidge's join, so the live one is sent once history is in.)
    await xmpp.join_muc(club.room_jid, club.person.name, history=None)
    await xmpp.wait_message(
        groupchat_from(club.room_jid, "while you were away"), timeout=30
    )
    club.friend.send_text(club.room_id, "welcome back")
    await xmpp.wait_message(groupchat_from(club.room_jid, "welcome back"), timeout=30)

    for body in ("before the break", "while you were away", "welcome back"):
        got = received_bodies(club.person, club.room_jid, body)
        since_relogin = [m for m in got if xmpp.received.index(m) >= relogin_at]
        # Once after re-login (live, or as history on rejoin), never twice,
        # and every copy is the same message (the same Matrix event).
        assert len(since_relogin) == 1, (body, [str(m) for m in since_relogin])
        assert len({m["stanza_id"]["id"] for m in got}) == 1


async def test_nothing_is_sent_in_clear_text_to_an_encrypted_room(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend", "Friendly Fran")
    room_id = friend.create_room(name="Secret club", invite=[person.matrix.user_id])
    friend.send_state(
        room_id, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}
    )
    person.matrix.join(room_id)
    await register(person, synapse)
    room_jid = person.room_jid(room_id)
    await person.xmpp.join_muc(room_jid, person.name)

    person.xmpp.send_groupchat(room_jid, "this must stay private")
    deadline = time.monotonic() + 30
    sent: list[dict[str, Any]] = []
    while not sent and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        sent = [
            e
            for e in friend.messages(room_id)
            if e["sender"] == person.matrix.user_id
            and e["type"] in ("m.room.message", "m.room.encrypted")
        ]
    assert [e["type"] for e in sent] == ["m.room.encrypted"]
    assert sent[0]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    # A space never occurs in base64 or ids, so a match means clear text.
    assert "stay private" not in json.dumps(sent[0])


async def test_no_password_or_token_reaches_the_gateway_log(
    club: Club, gateway: Gateway
) -> None:
    # The gateway runs with --debug, which logs stanzas and SQL parameters.
    club.friend.send_text(club.room_id, "a message to log")
    await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "a message to log"), timeout=30
    )
    with sqlite3.connect(gateway.home / "slidge.sqlite") as db:
        rows = db.execute("SELECT legacy_module_data FROM user_account").fetchall()
    tokens = [json.loads(data)["access_token"] for (data,) in rows]
    assert tokens, "the registration stored no session"
    log = gateway.log_text()
    assert club.person.name in log  # the log is the right one, and verbose
    assert club.person.password not in log
    for token in tokens:
        assert token not in log


async def test_an_encrypted_message_arrives_as_a_visible_notice(club: Club) -> None:
    event_id = club.friend.send_event(
        club.room_id,
        "m.room.encrypted",
        {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "AwgAEnACbJ3v",
            "device_id": "FRANDEVICE",
            "sender_key": "c2VuZGVyIGtleQ",
            "session_id": "c2Vzc2lvbg",
        },
    )
    msg = await club.person.xmpp.wait_message(
        lambda m: groupchat_from(club.room_jid)(m) and m["stanza_id"]["id"] == event_id,
        timeout=30,
    )
    assert msg["from"].resource == "Friendly Fran"
    assert msg["body"].startswith("🔒")
    assert "its key has not reached this gateway yet" in msg["body"]
