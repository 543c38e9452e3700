"""Bad input from XMPP gets a clear error, and the session goes on."""

from __future__ import annotations

import pytest

from tests.harness.xmpp_client import XmppError
from tests.scenarios import Club, groupchat_from

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_joining_something_that_is_not_a_room_is_refused(club: Club) -> None:
    with pytest.raises(XmppError) as e:
        await club.person.xmpp.join_muc(
            f"not-a-room@{club.person.gateway_jid}", club.person.name, timeout=30
        )
    assert e.value.condition == "item-not-found"
    assert "is not a Matrix room id" in e.value.text


async def test_joining_an_unknown_room_is_refused(club: Club) -> None:
    with pytest.raises(XmppError) as e:
        await club.person.xmpp.join_muc(
            f"^nowhere@{club.person.gateway_jid}", club.person.name, timeout=30
        )
    assert e.value.condition in ("item-not-found", "forbidden", "not-allowed")
    assert e.value.text


async def test_an_oversize_message_is_refused_and_the_room_still_works(
    club: Club,
) -> None:
    xmpp = club.person.xmpp
    msg_id = xmpp.send_groupchat(club.room_jid, "x" * 70000)
    error = await xmpp.wait_message(
        lambda m: m["type"] == "error" and m["id"] == msg_id, timeout=30
    )
    assert error["error"]["condition"] == "not-acceptable"
    assert "too long for Matrix" in error["error"]["text"]
    club.friend.send_text(club.room_id, "still here")
    await xmpp.wait_message(groupchat_from(club.room_jid, "still here"), timeout=30)
    sent = [
        e
        for e in club.friend.messages(club.room_id)
        if len(e["content"].get("body", "")) > 60000
    ]
    assert sent == []
