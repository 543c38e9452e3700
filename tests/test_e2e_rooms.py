"""Room state, membership and management, both ways, end to end: Synapse,
Prosody, the gateway process and an XMPP client, all real."""

# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from PIL import Image
from slixmpp import Iq, Message, Presence
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form

from matridge.ids import matrix_id_to_jid_local
from tests.conftest import Person, new_matrix_user, unique
from tests.harness.faultproxy import FaultProxy
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppClient, XmppError
from tests.scenarios import Club, groupchat_from, register

pytestmark = pytest.mark.asyncio(loop_scope="session")

NS_CONFERENCE = "jabber:x:conference"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_VCARD_UPDATE = "vcard-temp:x:update"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"


# ---- helpers -----------------------------------------------------------------


def q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def png(color: tuple[int, int, int], size: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG")
    return out.getvalue()


def upload(user: MatrixUser, data: bytes, content_type: str = "image/png") -> str:
    req = urllib.request.Request(
        f"{user.base_url}/_matrix/media/v3/upload?filename=avatar.png",
        data=data,
        method="POST",
    )
    req.add_header("Content-Type", content_type)
    req.add_header("Authorization", f"Bearer {user.access_token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        uri: str = json.loads(resp.read())["content_uri"]
        return uri


def set_power(user: MatrixUser, room_id: str, target: str, level: int) -> None:
    content = user.state(room_id, "m.room.power_levels")
    content.setdefault("users", {})[target] = level
    user.send_state(room_id, "m.room.power_levels", content)


def membership_of(user: MatrixUser, room_id: str, target: str) -> dict[str, Any]:
    return user.state(room_id, "m.room.member", target)


def codes(stanza: Message | Presence) -> set[str]:
    return {
        s.get("code", "")
        for s in stanza.xml.iterfind(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}status")
    }


def item(stanza: Presence) -> ET.Element:
    found = stanza.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
    assert found is not None, str(stanza)
    return found


def reason(stanza: Presence) -> str:
    found = item(stanza).find(f"{{{NS_MUC_USER}}}reason")
    return (found.text or "") if found is not None else ""


def occupant(
    room_jid: str, nick: str, ptype: str = "available"
) -> Callable[[Presence], bool]:
    def match(p: Presence) -> bool:
        return (
            p["from"].bare == room_jid
            and p["from"].resource == nick
            and p["type"] == ptype
        )

    return match


def ranked(
    room_jid: str, nick: str, affiliation: str, role: str
) -> Callable[[Presence], bool]:
    """An available occupant presence with this affiliation and role (slidge
    may send one presence per changed attribute: the last shows both)."""

    def match(p: Presence) -> bool:
        if not occupant(room_jid, nick)(p):
            return False
        found = p.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
        return (
            found is not None
            and found.get("affiliation") == affiliation
            and found.get("role") == role
        )

    return match


def invitation_to(jid: str) -> Callable[[Message], bool]:
    def match(m: Message) -> bool:
        x = m.xml.find(f"{{{NS_CONFERENCE}}}x")
        return x is not None and x.get("jid") == jid

    return match


def invitations(person: Person, jid: str) -> list[Message]:
    match = invitation_to(jid)
    return [m for m in person.xmpp.received if isinstance(m, Message) and match(m)]


async def send_iq(xmpp: XmppClient, iq: Iq, timeout: float = 30) -> Iq:
    try:
        result: Iq = await iq.send(timeout=timeout)  # type: ignore[no-untyped-call]
        return result
    except IqError as e:
        raise XmppError.from_iq_error(e) from None


async def muc_admin(
    xmpp: XmppClient, room_jid: str, nick: str, why: str, **attrs: str
) -> None:
    iq = xmpp.make_iq_set(ito=room_jid)
    query = ET.SubElement(iq.xml, f"{{{NS_MUC_ADMIN}}}query")
    entry = ET.SubElement(query, f"{{{NS_MUC_ADMIN}}}item", nick=nick, **attrs)
    ET.SubElement(entry, f"{{{NS_MUC_ADMIN}}}reason").text = why
    await send_iq(xmpp, iq)


async def run_command(
    xmpp: XmppClient,
    to: str,
    node: str,
    *steps: dict[str, str | list[str]],
) -> Iq:
    """Runs an ad-hoc command (XEP-0050), answering one form per step with
    the form's defaults overridden by that step's values."""
    start = xmpp.make_iq_set(ito=to)
    cmd = ET.SubElement(start.xml, f"{{{NS_COMMANDS}}}command", node=node)
    cmd.set("action", "execute")
    answer = await send_iq(xmpp, start)
    for i, values in enumerate(steps):
        got = answer.xml.find(f"{{{NS_COMMANDS}}}command")
        assert got is not None, str(answer)
        form = got.find(f"{{{NS_DATA}}}x")
        assert form is not None, str(answer)
        submit = xmpp.make_iq_set(ito=to)
        cmd = ET.SubElement(
            submit.xml,
            f"{{{NS_COMMANDS}}}command",
            node=node,
            sessionid=got.get("sessionid", ""),
        )
        cmd.set("action", "complete" if i == len(steps) - 1 else "next")
        x = ET.SubElement(cmd, f"{{{NS_DATA}}}x", type="submit")
        for field in form.iterfind(f"{{{NS_DATA}}}field"):
            var = field.get("var")
            if not var:
                continue
            if var in values:
                wanted = values[var]
                chosen = wanted if isinstance(wanted, list) else [wanted]
            else:
                chosen = [v.text or "" for v in field.iterfind(f"{{{NS_DATA}}}value")]
            out = ET.SubElement(x, f"{{{NS_DATA}}}field", var=var)
            for v in chosen:
                ET.SubElement(out, f"{{{NS_DATA}}}value").text = v
        answer = await send_iq(xmpp, submit)
    return answer


async def join_third_member(club: Club, synapse: Synapse, name: str) -> MatrixUser:
    """A new Matrix user joins the club's room; their occupant shows up."""
    member = new_matrix_user(synapse, "member", name)
    club.friend.invite(club.room_id, member.user_id)
    member.join(club.room_id)
    await club.person.xmpp.wait_presence(occupant(club.room_jid, name), timeout=30)
    return member


# ---- Matrix → XMPP -------------------------------------------------------------


async def test_name_topic_and_avatar_changes_show_live(club: Club) -> None:
    xmpp = club.person.xmpp
    club.friend.set_room_name(club.room_id, "Poetry circle")
    changed = await xmpp.wait_message(
        lambda m: m["from"].bare == club.room_jid and "104" in codes(m), timeout=30
    )
    # A room configuration change (XEP-0045 status 104) from the room itself.
    assert changed["from"].resource == ""

    club.friend.set_topic(club.room_id, "Rhymes on Tuesdays")
    subject = await xmpp.wait_message(
        lambda m: (
            m["from"].bare == club.room_jid and m["subject"] == "Rhymes on Tuesdays"
        ),
        timeout=30,
    )
    assert subject["subject"] == "Rhymes on Tuesdays"

    image = png((200, 30, 90))
    club.friend.send_state(
        club.room_id, "m.room.avatar", {"url": upload(club.friend, image)}
    )

    def with_photo(p: Presence) -> bool:
        photo = p.xml.find(f"{{{NS_VCARD_UPDATE}}}x/{{{NS_VCARD_UPDATE}}}photo")
        return p["from"] == club.room_jid and photo is not None and bool(photo.text)

    presence = await xmpp.wait_presence(with_photo, timeout=30)
    # A small PNG is shown as it is: its hash names the very image.
    photo = presence.xml.find(f"{{{NS_VCARD_UPDATE}}}x/{{{NS_VCARD_UPDATE}}}photo")
    assert photo is not None and photo.text == hashlib.sha1(image).hexdigest()


async def test_joins_renames_leaves_kicks_and_bans_show_as_presence(
    club: Club, synapse: Synapse
) -> None:
    xmpp, room_jid = club.person.xmpp, club.room_jid
    newcomer = await join_third_member(club, synapse, "Nina Newcomer")

    newcomer.set_displayname("Nina Renamed")
    gone = await xmpp.wait_presence(
        occupant(room_jid, "Nina Newcomer", "unavailable"), timeout=30
    )
    assert "303" in codes(gone)
    assert item(gone).get("nick") == "Nina Renamed"
    await xmpp.wait_presence(occupant(room_jid, "Nina Renamed"), timeout=30)

    newcomer.leave(club.room_id)
    left = await xmpp.wait_presence(
        occupant(room_jid, "Nina Renamed", "unavailable"), timeout=30
    )
    assert codes(left) == set()

    kicked = await join_third_member(club, synapse, "Kim Kicked")
    club.friend.request(
        "POST",
        f"/rooms/{q(club.room_id)}/kick",
        {"user_id": kicked.user_id, "reason": "too loud"},
    )
    presence = await xmpp.wait_presence(
        occupant(room_jid, "Kim Kicked", "unavailable"), timeout=30
    )
    assert "307" in codes(presence)
    assert reason(presence) == "too loud"

    banned = await join_third_member(club, synapse, "Bob Banned")
    club.friend.request(
        "POST",
        f"/rooms/{q(club.room_id)}/ban",
        {"user_id": banned.user_id, "reason": "spam"},
    )
    presence = await xmpp.wait_presence(
        occupant(room_jid, "Bob Banned", "unavailable"), timeout=30
    )
    assert "301" in codes(presence)
    assert reason(presence) == "spam"
    assert item(presence).get("affiliation") == "outcast"


async def test_power_levels_become_affiliations_and_roles_live(
    club: Club, synapse: Synapse
) -> None:
    xmpp, room_jid = club.person.xmpp, club.room_jid
    # The room's creator has power 100 (or the creator power of v12 rooms).
    joined = await xmpp.join_muc(room_jid, club.nick)
    fran = [p for p in joined if p["from"].resource == "Friendly Fran"]
    assert fran and item(fran[-1]).get("affiliation") == "owner"

    member = await join_third_member(club, synapse, "Mo Moderator")
    set_power(club.friend, club.room_id, member.user_id, 50)
    await xmpp.wait_presence(
        ranked(room_jid, "Mo Moderator", "admin", "moderator"), timeout=30
    )

    set_power(club.friend, club.room_id, club.person.matrix.user_id, 100)
    own = await xmpp.wait_presence(
        ranked(room_jid, club.nick, "owner", "moderator"), timeout=30
    )
    assert "110" in codes(own)

    set_power(club.friend, club.room_id, member.user_id, 0)
    await xmpp.wait_presence(
        ranked(room_jid, "Mo Moderator", "member", "participant"), timeout=30
    )


@pytest.mark.parametrize(("action", "code"), [("kick", "307"), ("ban", "301")])
async def test_being_kicked_or_banned_takes_the_room_away(
    club: Club, action: str, code: str
) -> None:
    xmpp, room_jid = club.person.xmpp, club.room_jid
    club.friend.request(
        "POST",
        f"/rooms/{q(club.room_id)}/{action}",
        {"user_id": club.person.matrix.user_id, "reason": "off topic"},
    )
    own = await xmpp.wait_presence(
        lambda p: occupant(room_jid, club.nick, "unavailable")(p) and "110" in codes(p),
        timeout=30,
    )
    assert code in codes(own)
    assert club.friend.user_id in reason(own)
    assert "off topic" in reason(own)
    # No longer a room of theirs: it cannot be joined again.
    with pytest.raises(XmppError) as err:
        await xmpp.join_muc(room_jid, club.nick)
    assert err.value.condition == "item-not-found"


async def test_an_invitation_is_offered_and_joining_the_muc_accepts_it(
    club: Club,
) -> None:
    xmpp = club.person.xmpp
    room_id = club.friend.create_room(name="Poetry")
    club.friend.invite(room_id, club.person.matrix.user_id)
    room_jid = club.person.room_jid(room_id)
    invite = await xmpp.wait_message(invitation_to(room_jid), timeout=30)
    assert invite["from"].bare == club.person.gateway_jid
    text = invite.xml.find(f"{{{NS_CONFERENCE}}}x").get("reason")  # type: ignore[union-attr]
    assert "Friendly Fran" in text and "Poetry" in text

    presences = await xmpp.join_muc(room_jid, club.person.name)
    assert "Friendly Fran" in {p["from"].resource for p in presences}
    assert club.person.matrix.user_id in club.friend.joined_members(room_id)
    club.friend.send_text(room_id, "welcome to poetry")
    await xmpp.wait_message(groupchat_from(room_jid, "welcome to poetry"), timeout=30)


async def test_a_room_upgrade_moves_the_user_to_the_successor(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend", "Friendly Fran")
    room_id = friend.create_room(name="Old hall", preset="public_chat")
    person.matrix.join(room_id)
    await register(person, synapse)
    room_jid = person.room_jid(room_id)
    await person.xmpp.join_muc(room_jid, person.name)

    new_id = friend.request(
        "POST", f"/rooms/{q(room_id)}/upgrade", {"new_version": "10"}
    )["replacement_room"]
    new_jid = person.room_jid(new_id)
    notice = await person.xmpp.wait_message(
        lambda m: m["from"].bare == room_jid and new_jid in (m["body"] or ""),
        timeout=30,
    )
    assert "upgraded" in notice["body"]
    await person.xmpp.wait_message(invitation_to(new_jid), timeout=30)
    assert new_id in person.matrix.joined_rooms()
    presences = await person.xmpp.join_muc(new_jid, person.name)
    assert "Friendly Fran" in {p["from"].resource for p in presences}


async def test_spaces_are_not_group_chats_but_their_rooms_are(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "friend", "Friendly Fran")
    space_id = friend.request(
        "POST",
        "/createRoom",
        {"name": "Book space", "creation_content": {"type": "m.space"}},
    )["room_id"]
    room_id = friend.create_room(name="Book room")
    server = friend.user_id.split(":", 1)[1]
    friend.send_state(space_id, "m.space.child", {"via": [server]}, room_id)
    for joined in (space_id, room_id):
        friend.invite(joined, person.matrix.user_id)
        person.matrix.join(joined)
    await register(person, synapse)

    room_jid, space_jid = person.room_jid(room_id), person.room_jid(space_id)
    await person.xmpp.wait_message(invitation_to(room_jid), timeout=30)
    await person.xmpp.join_muc(room_jid, person.name)
    # A live message proves the login's rooms were all handled.
    friend.send_text(room_id, "in the room")
    await person.xmpp.wait_message(groupchat_from(room_jid, "in the room"), timeout=30)
    assert invitations(person, space_jid) == []
    with pytest.raises(XmppError) as err:
        await person.xmpp.join_muc(space_jid, person.name)
    assert "space" in err.value.text

    # Invitations too: a space's is not offered, a room's is.
    space2 = friend.request(
        "POST", "/createRoom", {"creation_content": {"type": "m.space"}}
    )["room_id"]
    room2 = friend.create_room(name="Second room")
    friend.invite(space2, person.matrix.user_id)
    friend.invite(room2, person.matrix.user_id)
    await person.xmpp.wait_message(invitation_to(person.room_jid(room2)), timeout=30)
    assert invitations(person, person.room_jid(space2)) == []


# ---- XMPP → Matrix -------------------------------------------------------------


async def test_the_subject_set_from_xmpp_is_the_topic(club: Club) -> None:
    set_power(club.friend, club.room_id, club.person.matrix.user_id, 50)
    msg = club.person.xmpp.make_message(mto=club.room_jid, mtype="groupchat")
    msg["subject"] = "Chapter 4 next week"
    msg.send()
    topic = await club.friend.wait_for_message_async(
        club.room_id,
        lambda e: (
            e["type"] == "m.room.topic"
            and e["content"].get("topic") == "Chapter 4 next week"
        ),
        timeout=30,
    )
    assert topic["sender"] == club.person.matrix.user_id
    await club.person.xmpp.wait_message(
        lambda m: (
            m["from"].bare == club.room_jid and m["subject"] == "Chapter 4 next week"
        ),
        timeout=30,
    )


async def test_kick_and_ban_from_xmpp_happen_on_matrix(
    club: Club, synapse: Synapse
) -> None:
    xmpp, room_jid = club.person.xmpp, club.room_jid
    set_power(club.friend, club.room_id, club.person.matrix.user_id, 50)
    kicked = await join_third_member(club, synapse, "Kim Kicked")
    await muc_admin(xmpp, room_jid, "Kim Kicked", "too loud", role="none")
    presence = await xmpp.wait_presence(
        occupant(room_jid, "Kim Kicked", "unavailable"), timeout=30
    )
    assert "307" in codes(presence)
    state = membership_of(club.friend, club.room_id, kicked.user_id)
    assert (state["membership"], state.get("reason")) == ("leave", "too loud")

    banned = await join_third_member(club, synapse, "Bob Banned")
    await muc_admin(xmpp, room_jid, "Bob Banned", "spam", affiliation="outcast")
    presence = await xmpp.wait_presence(
        occupant(room_jid, "Bob Banned", "unavailable"), timeout=30
    )
    assert "301" in codes(presence)
    state = membership_of(club.friend, club.room_id, banned.user_id)
    assert (state["membership"], state.get("reason")) == ("ban", "spam")


async def test_an_xmpp_invitation_invites_the_matrix_user(
    club: Club, synapse: Synapse
) -> None:
    guest = new_matrix_user(synapse, "guest", "Gus Guest")
    contact_jid = f"{matrix_id_to_jid_local(guest.user_id)}@{club.person.gateway_jid}"
    msg = club.person.xmpp.make_message(mto=contact_jid)
    x = ET.SubElement(msg.xml, f"{{{NS_CONFERENCE}}}x", jid=club.room_jid)
    x.set("reason", "come read with us")
    msg.send()
    invited = await club.friend.wait_for_message_async(
        club.room_id,
        lambda e: (
            e["type"] == "m.room.member"
            and e.get("state_key") == guest.user_id
            and e["content"].get("membership") == "invite"
        ),
        timeout=30,
    )
    assert invited["sender"] == club.person.matrix.user_id
    assert invited["content"].get("reason") == "come read with us"
    guest.join(club.room_id)
    await club.person.xmpp.wait_presence(
        occupant(club.room_jid, "Gus Guest"), timeout=30
    )


async def test_leaving_the_muc_for_good_leaves_the_matrix_room(club: Club) -> None:
    iq = club.person.xmpp.make_iq_set(ito=club.room_jid)
    query = ET.SubElement(iq.xml, "{jabber:iq:register}query")
    ET.SubElement(query, "{jabber:iq:register}remove")
    await send_iq(club.person.xmpp, iq)
    left = await club.friend.wait_for_message_async(
        club.room_id,
        lambda e: (
            e["type"] == "m.room.member"
            and e.get("state_key") == club.person.matrix.user_id
            and e["content"].get("membership") == "leave"
        ),
        timeout=30,
    )
    assert left["sender"] == club.person.matrix.user_id
    assert club.room_id not in club.person.matrix.joined_rooms()


async def test_creating_a_group_creates_a_matrix_room(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    name = unique("Reading group ")
    result = await run_command(
        person.xmpp,
        person.gateway_jid,
        "https://slidge.im/command/core/groups",
        {"command": "https://slidge.im/command/core/groups/create-group"},
        {"group_name": name},
    )
    named = [
        room_id
        for room_id in person.matrix.joined_rooms()
        if person.matrix.state(room_id, "m.room.name").get("name") == name
    ]
    assert len(named) == 1
    assert person.room_jid(named[0]) in str(result)
    presences = await person.xmpp.join_muc(person.room_jid(named[0]), person.name)
    own = [p for p in presences if "110" in codes(p)]
    assert item(own[-1]).get("affiliation") == "owner"


async def test_presence_goes_to_matrix(club: Club, synapse: Synapse) -> None:
    xmpp = club.person.xmpp
    await run_command(
        xmpp,
        club.person.gateway_jid,
        "https://slidge.im/command/core/preferences",
        {"sync_presence": "true"},
    )
    xmpp.send_presence(pto=club.person.gateway_jid, pstatus="Reading Proust")

    def presence_of_person() -> dict[str, Any]:
        return club.friend.request(
            "GET", f"/presence/{q(club.person.matrix.user_id)}/status"
        )

    await wait_until(lambda: presence_of_person().get("status_msg") == "Reading Proust")
    assert presence_of_person()["presence"] == "online"

    xmpp.send_presence(pto=club.person.gateway_jid, pshow="away", pstatus="Lunch")
    await wait_until(lambda: presence_of_person().get("status_msg") == "Lunch")
    assert presence_of_person()["presence"] == "unavailable"


async def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the condition did not become true")
        await asyncio.sleep(0.3)


async def test_the_xmpp_avatar_becomes_the_matrix_avatar(
    person: Person, synapse: Synapse
) -> None:
    image = png((20, 120, 240))
    await publish_avatar(person, image)
    # Avatar sync is on by default: the gateway fetches it at login.
    await register(person, synapse)

    def avatar_url() -> str | None:
        url = person.matrix.request("GET", f"/profile/{q(person.matrix.user_id)}").get(
            "avatar_url"
        )
        return url if isinstance(url, str) and url else None

    await wait_until(lambda: avatar_url() is not None)
    assert download(person.matrix, str(avatar_url())) == image


async def publish_avatar(person: Person, image: bytes) -> None:
    """Publishes the XMPP user's avatar (XEP-0084), readable by the gateway
    before it is subscribed to the user's presence."""
    raw = person.xmpp
    for plugin in ("xep_0060", "xep_0163", "xep_0084"):
        raw.register_plugin(plugin)
    options = publish_options({"pubsub#access_model": "open"})
    await raw.plugin["xep_0084"].publish_avatar(image, options=options)
    await raw.plugin["xep_0084"].publish_avatar_metadata(
        items=[
            {
                "id": hashlib.sha1(image).hexdigest(),
                "type": "image/png",
                "bytes": str(len(image)),
                "width": "48",
                "height": "48",
            }
        ],
        options=options,
    )


def download(user: MatrixUser, mxc: str) -> bytes:
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    req = urllib.request.Request(
        f"{user.base_url}/_matrix/client/v1/media/download/{server}/{media_id}"
    )
    req.add_header("Authorization", f"Bearer {user.access_token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        data: bytes = resp.read()
        return data


def publish_options(values: dict[str, str]) -> Form:
    form = Form()
    form["type"] = "submit"
    form.add_field(
        var="FORM_TYPE",
        ftype="hidden",
        value="http://jabber.org/protocol/pubsub#publish-options",
    )
    for var, value in values.items():
        form.add_field(var=var, value=value)
    return form


async def test_granting_admin_from_xmpp_sets_the_power_level(
    club: Club, synapse: Synapse
) -> None:
    xmpp, room_jid = club.person.xmpp, club.room_jid
    set_power(club.friend, club.room_id, club.person.matrix.user_id, 100)
    member = await join_third_member(club, synapse, "Ada Admin")
    await muc_admin(xmpp, room_jid, "Ada Admin", "helps a lot", affiliation="admin")
    await xmpp.wait_presence(
        ranked(room_jid, "Ada Admin", "admin", "moderator"), timeout=30
    )
    levels = club.friend.state(club.room_id, "m.room.power_levels")
    assert levels["users"][member.user_id] == 50


async def test_a_first_login_describes_the_rooms_from_the_first_sync(
    person: Person, synapse: Synapse, proxy: FaultProxy
) -> None:
    # Five named rooms, joined before the gateway ever saw the account: the
    # first sync carries their state, so the gateway asks no /state for them.
    friend = new_matrix_user(synapse, "host")
    rooms = {}
    for i in range(5):
        name = f"Described {i}"
        room_id = friend.create_room(name=name, invite=[person.matrix.user_id])
        person.matrix.join(room_id)
        rooms[room_id] = name
    await register(person, synapse, homeserver=proxy.base_url)
    for room_id in rooms:
        await person.xmpp.wait_message(
            invitation_to(person.room_jid(room_id)), timeout=60
        )
    for room_id, name in rooms.items():
        info = await person.xmpp.disco_info(person.room_jid(room_id))
        names = {identity[3] for identity in info["disco_info"]["identities"]}
        assert name in names
    asked = [urllib.parse.unquote(s.path) for s in proxy.requests()]
    described = [p for p in asked if "/state" in p and any(r in p for r in rooms)]
    assert described == []


async def test_the_first_sync_asks_for_short_timelines_and_later_ones_for_full(
    person: Person, synapse: Synapse, proxy: FaultProxy
) -> None:
    # The first sync's timelines are history the gateway does not show:
    # asking for 10 events a room instead of 100 makes a homeserver answer
    # an account in hundreds of rooms in a fraction of the time.
    await register(person, synapse, homeserver=proxy.base_url)
    friend = new_matrix_user(synapse, "talker")
    room_id = friend.create_room(name="Later", invite=[person.matrix.user_id])
    person.matrix.join(room_id)
    await person.xmpp.wait_message(invitation_to(person.room_jid(room_id)), timeout=60)

    def timeline_limits(since: bool) -> set[int]:
        limits = set()
        syncs = [s for s in proxy.requests() if "/v3/sync" in s.path]
        for seen in syncs:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(seen.path).query)
            if ("since" in query) == since:
                room_filter = json.loads(query["filter"][0])["room"]
                limits.add(room_filter["timeline"]["limit"])
        return limits

    assert timeline_limits(since=False) == {10}
    assert timeline_limits(since=True) == {100}
