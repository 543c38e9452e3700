"""Rich messages end to end, both ways, in a group chat: styling, mentions,
replies, threads, edits, reactions, redactions, typing and read receipts.
Real Synapse, Prosody, gateway and slixmpp client."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from slixmpp import JID, Message

from tests.harness.matrix_user import MatrixError, MatrixUser
from tests.scenarios import Club, groupchat_from

pytestmark = pytest.mark.asyncio(loop_scope="session")

FRAN = "Friendly Fran"


# ---- Matrix-side helpers ----------------------------------------------------


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def redact(user: MatrixUser, room_id: str, event_id: str, reason: str = "") -> str:
    body = {"reason": reason} if reason else {}
    path = f"/rooms/{_q(room_id)}/redact/{_q(event_id)}/r{time.time_ns()}"
    redaction: str = user.request("PUT", path, body)["event_id"]
    return redaction


def react(user: MatrixUser, room_id: str, target: str, key: str) -> str:
    relates = {"rel_type": "m.annotation", "event_id": target, "key": key}
    return user.send_event(room_id, "m.reaction", {"m.relates_to": relates})


def set_typing(user: MatrixUser, room_id: str, typing: bool) -> None:
    path = f"/rooms/{_q(room_id)}/typing/{_q(user.user_id)}"
    user.request("PUT", path, {"typing": typing, "timeout": 30000})


def send_receipt(user: MatrixUser, room_id: str, event_id: str) -> None:
    path = f"/rooms/{_q(room_id)}/receipt/m.read/{_q(event_id)}"
    user.request("POST", path, {})


def is_redacted(event: dict[str, Any]) -> bool:
    return "redacted_because" in event.get("unsigned", {})


class EphemeralWatch:
    """Follows one user's /sync for a room's typing notices and receipts."""

    def __init__(self, user: MatrixUser, room_id: str) -> None:
        self.user = user
        self.room_id = room_id
        self.since: str | None = None

    async def wait(self, predicate: Any, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        seen: list[Any] = []
        while time.monotonic() < deadline:
            res = await asyncio.to_thread(
                self.user.sync, self.since, 1000 if self.since else 0
            )
            self.since = res["next_batch"]
            room = res.get("rooms", {}).get("join", {}).get(self.room_id, {})
            for event in room.get("ephemeral", {}).get("events", []):
                seen.append(event)
                if predicate(event):
                    return event  # type: ignore[no-any-return]
        raise TimeoutError(f"no matching ephemeral event; saw {seen[-10:]}")


async def matrix_event(club: Club, predicate: Any) -> dict[str, Any]:
    return await club.friend.wait_for_message_async(club.room_id, predicate, timeout=30)


def content_of(event: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = event.get("content", {})
    return content


# ---- XMPP-side helpers ------------------------------------------------------


def from_fran(club: Club) -> Any:
    def match(m: Message) -> bool:
        return m["from"].bare == club.room_jid and m["from"].resource == FRAN

    return match


async def relayed(club: Club, body: str) -> Message:
    """Waits for a Matrix message's arrival on XMPP."""
    return await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, body), timeout=30
    )


def groupchat_stanza(club: Club, body: str | None = None) -> Message:
    """A groupchat message to the room with fresh id == origin-id."""
    xmpp = club.person.xmpp
    msg = xmpp.make_message(mto=club.room_jid, mtype="groupchat")
    if body is not None:
        msg["body"] = body
    msg_id = uuid.uuid4().hex
    msg["id"] = msg_id
    msg["origin_id"]["id"] = msg_id
    return msg


def references(msg: Message) -> list[tuple[int, int, str]]:
    return [
        (int(r.get("begin", -1)), int(r.get("end", -1)), r.get("uri", ""))
        for r in msg.xml.iter("{urn:xmpp:reference:0}reference")
        if r.get("type") == "mention"
    ]


# ---- Matrix → XMPP ----------------------------------------------------------


async def test_a_notice_and_formatted_text_arrive_styled(club: Club) -> None:
    club.friend.send_event(
        club.room_id,
        "m.room.message",
        {"msgtype": "m.notice", "body": "Meeting moved to Friday"},
    )
    notice = await relayed(club, "Meeting moved to Friday")
    assert notice["from"].resource == FRAN

    club.friend.send_event(
        club.room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "bold and gone",
            "format": "org.matrix.custom.html",
            "formatted_body": "<strong>bold</strong> and <del>gone</del>",
        },
    )
    await relayed(club, "*bold* and ~gone~")


async def test_mentions_show_xmpp_nicks_with_references(club: Club) -> None:
    person_id = club.person.matrix.user_id
    club.friend.send_event(
        club.room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "Some Name: ask Fran",
            "format": "org.matrix.custom.html",
            "formatted_body": (
                f'<a href="https://matrix.to/#/{person_id}">Some Name</a>: ask '
                f'<a href="https://matrix.to/#/{club.friend.user_id}">Fran</a>'
            ),
            "m.mentions": {"user_ids": [person_id]},
        },
    )
    expected = f"{club.nick}: ask {FRAN}"
    msg = await relayed(club, expected)
    # The user's own nick is in the text (clients highlight it), and each
    # mention is a reference to the occupant.
    fran_at = expected.index(FRAN)
    wanted = [
        (0, len(club.nick), f"xmpp:{club.room_jid}/{club.nick}"),
        (fran_at, fran_at + len(FRAN), f"xmpp:{club.room_jid}/{FRAN}"),
    ]
    assert references(msg) == wanted
    # slidge 0.5 keeps them in its archive too (the payload column).
    archived = [
        m
        for m in await club.person.xmpp.mam_messages(club.room_jid)
        if m["body"] == expected
    ]
    assert len(archived) == 1
    assert references(archived[0]) == wanted


async def test_replies_quote_without_the_matrix_fallback_and_threads(
    club: Club,
) -> None:
    friend = club.friend
    question = friend.send_text(club.room_id, "What did you think?")
    await relayed(club, "What did you think?")

    def reply(body: str, html: str | None) -> None:
        content: dict[str, Any] = {
            "msgtype": "m.text",
            "body": f"> <{friend.user_id}> What did you think?\n\n{body}",
            "m.relates_to": {"m.in_reply_to": {"event_id": question}},
        }
        if html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = (
                "<mx-reply><blockquote><a>In reply to</a> "
                f"{friend.user_id}<br>What did you think?</blockquote></mx-reply>"
                + html
            )
        friend.send_event(club.room_id, "m.room.message", content)

    def is_reply(m: Message) -> bool:
        return m["from"].bare == club.room_jid and "reply" in m

    reply("Loved it", "Loved <em>it</em>")
    rich = await club.person.xmpp.wait_message(is_reply, timeout=30)
    reply("Plain too", None)
    plain = await club.person.xmpp.wait_message(is_reply, timeout=30)

    for msg, text in ((rich, "Loved _it_"), (plain, "Plain too")):
        assert msg["reply"]["id"] == question
        assert msg["reply"]["to"] == f"{club.room_jid}/{FRAN}"
        # Only the XEP-0461 quote slidge adds remains besides the text.
        assert msg["reply"].strip_fallback_content() == text
        assert "In reply to" not in msg["body"]
        assert f"<{friend.user_id}>" not in msg["body"]
        assert "What did you think?" in msg["reply"].get_fallback_body()

    friend.send_event(
        club.room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "a thread answer",
            "m.relates_to": {"rel_type": "m.thread", "event_id": question},
        },
    )
    threaded = await relayed(club, "a thread answer")
    assert threaded["thread"] == question


async def test_edits_reactions_and_redactions_arrive_live(club: Club) -> None:
    friend, xmpp = club.friend, club.person.xmpp
    target = friend.send_text(club.room_id, "teh book")
    await relayed(club, "teh book")

    # An edit is a correction of the original.
    friend.send_event(
        club.room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* the book",
            "m.new_content": {"msgtype": "m.text", "body": "the book"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )
    correction = await relayed(club, "the book")
    assert correction["replace"]["id"] == target

    # Reactions: each brings the sender's whole set; a redacted one leaves it.
    def reactions(values: set[str]) -> Any:
        def match(m: Message) -> bool:
            return (
                from_fran(club)(m)
                and "reactions" in m
                and m["reactions"]["id"] == target
                and m["reactions"].get_values() == values
            )

        return match

    thumbs = react(friend, club.room_id, target, "👍")
    await xmpp.wait_message(reactions({"👍"}), timeout=30)
    react(friend, club.room_id, target, "🎉")
    await xmpp.wait_message(reactions({"👍", "🎉"}), timeout=30)
    redact(friend, club.room_id, thumbs)
    await xmpp.wait_message(reactions({"🎉"}), timeout=30)

    # A message redacted by its sender is retracted (XEP-0424).
    oops = friend.send_text(club.room_id, "oops, wrong room")
    await relayed(club, "oops, wrong room")
    redact(friend, club.room_id, oops)
    retraction = await xmpp.wait_message(
        lambda m: "retract" in m and m["retract"]["id"] == oops, timeout=30
    )
    assert retraction["from"] == f"{club.room_jid}/{FRAN}"
    assert retraction.xml.find(".//{*}moderated") is None

    # Fran (the room's admin) redacting the user's message is a moderation.
    own = club.person.matrix.send_text(club.room_id, "sent from Element")
    await relayed(club, "sent from Element")
    redact(friend, club.room_id, own, reason="off topic")
    moderation = await xmpp.wait_message(
        lambda m: "retract" in m and m["retract"]["id"] == own, timeout=30
    )
    moderated = moderation.xml.find(".//{*}moderated")
    assert moderated is not None
    assert moderated.get("by") == f"{club.room_jid}/{FRAN}"
    assert moderation["retract"]["reason"] == "off topic"


async def test_typing_and_read_receipts_become_chat_states_and_markers(
    club: Club,
) -> None:
    friend, xmpp = club.friend, club.person.xmpp

    def chat_state(state: str) -> Any:
        return lambda m: from_fran(club)(m) and m["chat_state"] == state

    set_typing(friend, club.room_id, True)
    await xmpp.wait_message(chat_state("composing"), timeout=30)
    set_typing(friend, club.room_id, False)
    await xmpp.wait_message(chat_state("paused"), timeout=30)

    first = friend.send_text(club.room_id, "read me")
    await relayed(club, "read me")
    send_receipt(friend, club.room_id, first)
    await xmpp.wait_message(
        lambda m: from_fran(club)(m) and m["displayed"]["id"] == first, timeout=30
    )

    # The user's own receipt from another Matrix client marks it read on XMPP.
    second = friend.send_text(club.room_id, "read me elsewhere")
    await relayed(club, "read me elsewhere")
    send_receipt(club.person.matrix, club.room_id, second)
    own = await xmpp.wait_message(
        lambda m: m["from"].bare == club.room_jid and m["displayed"]["id"] == second,
        timeout=30,
    )
    assert own["from"].resource == club.nick


# ---- XMPP → Matrix ----------------------------------------------------------


async def test_styled_text_and_emotes_reach_matrix_as_html(club: Club) -> None:
    club.person.xmpp.send_groupchat(club.room_jid, "*bold* and _it_ <3")
    event = await matrix_event(
        club, lambda e: content_of(e).get("body") == "*bold* and _it_ <3"
    )
    content = content_of(event)
    assert content["format"] == "org.matrix.custom.html"
    assert content["formatted_body"] == "<strong>bold</strong> and <em>it</em> &lt;3"

    club.person.xmpp.send_groupchat(club.room_jid, "/me waves")
    emote = await matrix_event(club, lambda e: content_of(e).get("body") == "waves")
    assert content_of(emote)["msgtype"] == "m.emote"
    assert "formatted_body" not in content_of(emote)


async def test_replies_and_corrections_reach_matrix(club: Club) -> None:
    question = club.friend.send_text(club.room_id, "Coffee?")
    await relayed(club, "Coffee?")

    answer = groupchat_stanza(club, "Yes please")
    answer["reply"]["id"] = question
    answer["reply"]["to"] = f"{club.room_jid}/{FRAN}"
    answer["reply"].add_quoted_fallback("Coffee?", FRAN)
    answer.send()
    event = await matrix_event(
        club, lambda e: content_of(e).get("body") == "Yes please"
    )
    assert content_of(event)["m.relates_to"] == {
        "m.in_reply_to": {"event_id": question}
    }

    in_thread = groupchat_stanza(club, "Threaded answer")
    in_thread["thread"] = question
    in_thread.send()
    threaded = await matrix_event(
        club, lambda e: content_of(e).get("body") == "Threaded answer"
    )
    assert content_of(threaded)["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": question,
    }

    first = groupchat_stanza(club, "See you at noom")
    first.send()
    typo = await matrix_event(
        club, lambda e: content_of(e).get("body") == "See you at noom"
    )
    fix = groupchat_stanza(club, "See you at *noon*")
    fix["replace"]["id"] = first["id"]
    fix.send()
    edit = await matrix_event(
        club, lambda e: content_of(e).get("m.new_content") is not None
    )
    content = content_of(edit)
    assert content["m.relates_to"] == {
        "rel_type": "m.replace",
        "event_id": typo["event_id"],
    }
    assert content["body"] == "* See you at *noon*"
    assert content["m.new_content"]["body"] == "See you at *noon*"
    assert content["m.new_content"]["formatted_body"] == (
        "See you at <strong>noon</strong>"
    )


async def test_reactions_and_retractions_reach_matrix(club: Club) -> None:
    xmpp, me = club.person.xmpp, club.person.matrix.user_id
    target = club.friend.send_text(club.room_id, "React to this")
    await relayed(club, "React to this")

    def send_reactions(*emojis: str) -> None:
        msg = groupchat_stanza(club)
        xmpp.plugin["xep_0444"].set_reactions(msg, to_id=target, reactions=emojis)
        msg.send()

    def my_reaction(key: str) -> Any:
        def match(e: dict[str, Any]) -> bool:
            rel = content_of(e).get("m.relates_to", {})
            return (
                e["type"] == "m.reaction"
                and e["sender"] == me
                and rel.get("event_id") == target
                and rel.get("key") == key
            )

        return match

    send_reactions("👍", "🎉")
    thumbs = await matrix_event(club, my_reaction("👍"))
    await matrix_event(club, my_reaction("🎉"))

    send_reactions("🎉")
    await matrix_event(
        club,
        lambda e: (
            e["type"] == "m.room.redaction" and e.get("redacts") == thumbs["event_id"]
        ),
    )
    events = await asyncio.to_thread(club.friend.messages, club.room_id)
    live = [e for e in events if not is_redacted(e)]
    assert [content_of(e)["m.relates_to"]["key"] for e in live if my_reaction("🎉")(e)]
    assert not [e for e in live if my_reaction("👍")(e)]

    regret = groupchat_stanza(club, "I regret this")
    regret.send()
    sent = await matrix_event(
        club, lambda e: content_of(e).get("body") == "I regret this"
    )
    retract = groupchat_stanza(club)
    retract["retract"]["id"] = regret["id"]
    retract.send()
    await matrix_event(
        club,
        lambda e: (
            e["type"] == "m.room.redaction" and e.get("redacts") == sent["event_id"]
        ),
    )


async def states_and_marker_reach_matrix(
    stanza: Callable[[], Message],
    friend: MatrixUser,
    room_id: str,
    me: str,
    shown: Callable[[str], Awaitable[object]],
) -> str:
    """Composing then paused (stanzas from `stanza()`) become Matrix typing
    and its end; a displayed marker on a message the friend sends (relayed
    when `shown(body)` returns) becomes the user's read receipt. Returns the
    event id read."""
    watch = EphemeralWatch(friend, room_id)
    composing = stanza()
    composing["chat_state"] = "composing"
    composing.send()
    await watch.wait(
        lambda e: e["type"] == "m.typing" and me in e["content"]["user_ids"]
    )
    paused = stanza()
    paused["chat_state"] = "paused"
    paused.send()
    await watch.wait(
        lambda e: e["type"] == "m.typing" and me not in e["content"]["user_ids"]
    )

    latest = friend.send_text(room_id, "Did you see this?")
    await shown("Did you see this?")
    marker = stanza()
    marker["displayed"]["id"] = latest
    marker.send()
    await watch.wait(
        lambda e: (
            e["type"] == "m.receipt"
            and me in e["content"].get(latest, {}).get("m.read", {})
        )
    )
    return latest


async def test_chat_states_and_displayed_markers_reach_matrix(club: Club) -> None:
    me = club.person.matrix.user_id
    latest = await states_and_marker_reach_matrix(
        lambda: groupchat_stanza(club),
        club.friend,
        club.room_id,
        me,
        lambda body: relayed(club, body),
    )
    # Synapse may write the fully-read marker just after the receipt is out.
    path = f"/user/{_q(me)}/rooms/{_q(club.room_id)}/account_data/m.fully_read"
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            fully_read = await asyncio.to_thread(
                club.person.matrix.request, "GET", path
            )
        except MatrixError as e:
            if e.status != 404 or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        if fully_read.get("event_id") == latest:
            break
        assert asyncio.get_running_loop().time() < deadline, fully_read
        await asyncio.sleep(0.2)


async def test_a_moderator_removes_a_message_from_xmpp(club: Club) -> None:
    friend, me = club.friend, club.person.matrix.user_id
    levels = friend.state(club.room_id, "m.room.power_levels")
    levels.setdefault("users", {})[me] = 50
    friend.send_state(club.room_id, "m.room.power_levels", levels)
    spam = friend.send_text(club.room_id, "buy cheap watches")
    await relayed(club, "buy cheap watches")

    await club.person.xmpp.plugin["xep_0425"].moderate(
        JID(club.room_jid), spam, "spam", timeout=30
    )
    redaction = await matrix_event(
        club, lambda e: e["type"] == "m.room.redaction" and e.get("redacts") == spam
    )
    assert redaction["sender"] == me
    assert content_of(redaction).get("reason") == "spam"
    moderation = await club.person.xmpp.wait_message(
        lambda m: "retract" in m and m["retract"]["id"] == spam, timeout=30
    )
    moderated = moderation.xml.find(".//{*}moderated")
    assert moderated is not None
    assert moderated.get("by") == f"{club.room_jid}/{club.nick}"


async def test_a_nick_written_in_xmpp_is_a_matrix_mention(club: Club) -> None:
    text = f"{FRAN}: the *agenda* is out"
    groupchat_stanza(club, text).send()
    event = await matrix_event(club, lambda e: content_of(e).get("body") == text)
    content = content_of(event)
    fran = club.friend.user_id
    assert content["m.mentions"] == {"user_ids": [fran]}
    assert content["formatted_body"] == (
        f'<a href="https://matrix.to/#/{fran}">{FRAN}</a>: the '
        "<strong>agenda</strong> is out"
    )
