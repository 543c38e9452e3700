"""Smoke tests of the real-server harness itself."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.harness.fixtures import prosody, synapse  # noqa: F401
from tests.harness.matrix_user import MatrixError, MatrixUser
from tests.harness.prosody import Prosody
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppClient

NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"


def _unique(prefix: str) -> str:
    # The servers are session-wide; never reuse a name across tests.
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _user(server: Synapse, prefix: str) -> MatrixUser:
    info = server.register_user(_unique(prefix), "pw")
    return MatrixUser(server.base_url, info["access_token"], info["user_id"])


def test_matrix_room_roundtrip(synapse: Synapse) -> None:  # noqa: F811
    alice = _user(synapse, "alice")
    bob = _user(synapse, "bob")
    assert alice.user_id.endswith(":" + synapse.server_name)

    room = alice.create_room(name="Harness room", topic="t", invite=[bob.user_id])
    bob.join(room)
    assert set(bob.joined_members(room)) == {alice.user_id, bob.user_id}

    event_id = alice.send_text(room, "hello from alice")
    event = bob.wait_for_message(room, lambda e: e.get("event_id") == event_id)
    assert event["sender"] == alice.user_id
    assert event["content"]["body"] == "hello from alice"

    names = [
        e["content"].get("name")
        for e in bob.messages(room)
        if e["type"] == "m.room.name"
    ]
    assert names == ["Harness room"]


def test_matrix_login_and_errors(synapse: Synapse) -> None:  # noqa: F811
    name = _unique("carol")
    synapse.register_user(name, "secret-pw")
    carol = MatrixUser.login(synapse.base_url, name, "secret-pw")
    assert carol.user_id == f"@{name}:{synapse.server_name}"
    with pytest.raises(MatrixError) as exc:
        MatrixUser.login(synapse.base_url, name, "wrong")
    assert exc.value.status == 403
    assert exc.value.errcode == "M_FORBIDDEN"


@pytest.mark.asyncio
async def test_xmpp_login_roster_and_buffering(prosody: Prosody) -> None:  # noqa: F811
    client = await XmppClient.connect_to(
        f"alice@{prosody.domain}", "any-password", "127.0.0.1", prosody.c2s_port
    )
    try:
        assert client.roster_iq is not None
        assert client.roster_iq["type"] == "result"

        # Out-of-order waits: the non-matching stanza must stay buffered.
        me = str(client.boundjid)
        first = client.send_chat(me, "first")
        second = client.send_chat(me, "second")
        got2 = await client.wait_message(lambda m: m["id"] == second, timeout=10)
        got1 = await client.wait_message(lambda m: m["id"] == first, timeout=10)
        assert (got1["body"], got2["body"]) == ("first", "second")
        with pytest.raises(TimeoutError):
            await client.wait_message(lambda m: m["body"] == "never", timeout=0.3)

        items = await client.disco_items(prosody.domain)
        jids = {str(item[0]) for item in items["disco_items"]["items"]}
        assert prosody.upload_jid in jids
    finally:
        await client.disconnect_and_wait()


@pytest.mark.asyncio
async def test_http_upload_urls_point_at_loopback(prosody: Prosody) -> None:  # noqa: F811
    client = await XmppClient.connect_to(
        f"bob@{prosody.domain}", "pw", "127.0.0.1", prosody.c2s_port
    )
    try:
        data = b"harness upload"
        iq = client.make_iq_get(ito=prosody.upload_jid)
        request = ET.SubElement(iq.xml, f"{{{NS_UPLOAD}}}request")
        request.attrib.update(
            {"filename": "a.txt", "size": str(len(data)), "content-type": "text/plain"}
        )
        slot = await iq.send(timeout=10)  # type: ignore[no-untyped-call]
        put = slot.xml.find(f"{{{NS_UPLOAD}}}slot/{{{NS_UPLOAD}}}put")
        get = slot.xml.find(f"{{{NS_UPLOAD}}}slot/{{{NS_UPLOAD}}}get")
        assert put is not None and get is not None
        put_url, get_url = put.attrib["url"], get.attrib["url"]
        assert put_url.startswith(prosody.http_url + "/")
        # Prosody 0.12 slots carry an Authorization header for the PUT.
        headers = {
            h.attrib["name"]: (h.text or "")
            for h in put.iterfind(f"{{{NS_UPLOAD}}}header")
        }

        def transfer() -> bytes:
            req = urllib.request.Request(put_url, data=data, method="PUT")
            req.add_header("Content-Type", "text/plain")
            for name, value in headers.items():
                req.add_header(name, value)
            urllib.request.urlopen(req, timeout=10).close()
            with urllib.request.urlopen(get_url, timeout=10) as resp:
                body: bytes = resp.read()
                return body

        assert await asyncio.to_thread(transfer) == data
    finally:
        await client.disconnect_and_wait()


@pytest.mark.asyncio
async def test_xmpp_muc_join_and_groupchat(prosody: Prosody) -> None:  # noqa: F811
    room = f"{_unique('room')}@{prosody.muc_jid}"
    alice = await XmppClient.connect_to(
        f"alice@{prosody.domain}", "pw", "127.0.0.1", prosody.c2s_port
    )
    bob = await XmppClient.connect_to(
        f"bob@{prosody.domain}", "pw", "127.0.0.1", prosody.c2s_port
    )
    try:
        presences = await alice.join_muc(room, "Alice")
        assert [str(p["from"]) for p in presences] == [f"{room}/Alice"]
        # Prosody locks new rooms until configured: accept the default config.
        query = ET.Element(f"{{{NS_MUC_OWNER}}}query")
        ET.SubElement(query, "{jabber:x:data}x", type="submit")
        config = alice.make_iq_set(query, ito=room)
        await config.send(timeout=10)  # type: ignore[no-untyped-call]

        presences = await bob.join_muc(room, "Bob")
        assert {str(p["from"]) for p in presences} == {
            f"{room}/Alice",
            f"{room}/Bob",
        }
        await alice.wait_presence(lambda p: str(p["from"]) == f"{room}/Bob")

        msg_id = bob.send_groupchat(room, "hi room")
        msg = await alice.wait_message(
            lambda m: m["type"] == "groupchat" and m["body"] == "hi room"
        )
        assert str(msg["from"]) == f"{room}/Bob"
        assert msg["origin_id"]["id"] == msg_id
    finally:
        await alice.disconnect_and_wait()
        await bob.disconnect_and_wait()


def test_synapse_restart_keeps_data(tmp_path: Path) -> None:
    # Own server: restarting the session-wide one would disturb other tests.
    with Synapse(tmp_path / "synapse") as server:
        alice = _user(server, "dave")
        room = alice.create_room(name="survives restart")
        event_id = alice.send_text(room, "before restart")
        url = server.base_url
        server.restart(kill=True)
        assert server.base_url == url
        event = alice.wait_for_message(room, lambda e: e.get("event_id") == event_id)
        assert event["content"]["body"] == "before restart"
    assert server.proc is None
