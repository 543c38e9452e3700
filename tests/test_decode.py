"""The C decoder over /sync fixtures written for the purpose: every event type
the gateway routes, and hostile input that must be flagged, not crash."""

from __future__ import annotations

import gc
import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from matridge import _core

FIXTURES = Path(__file__).parent / "fixtures" / "sync"


def load(name: str) -> _core.SyncBatch:
    return _core.decode_sync((FIXTURES / name).read_bytes())


def sync_with_timeline(*events: Any) -> bytes:
    body = {
        "next_batch": "s1",
        "rooms": {"join": {"!r:x": {"timeline": {"events": list(events)}}}},
    }
    return json.dumps(body).encode()


def message(body: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": "$m",
        "sender": "@a:x",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body},
        **extra,
    }


@pytest.fixture(scope="module")
def batch() -> _core.SyncBatch:
    return load("every_event_type.json")


@pytest.fixture(scope="module")
def by_id(batch: _core.SyncBatch) -> dict[str, _core.Event]:
    room = next(r for r in batch.rooms if r.membership == "join")
    return {e.event_id: e for e in (*room.state, *room.timeline) if e.event_id}


def msg(ev: _core.Event) -> _core.Message:
    assert ev.message is not None, ev
    return ev.message


# ---- the batch and its rooms ---------------------------------------------


def test_batch_parts(batch: _core.SyncBatch) -> None:
    assert batch.next_batch == "s72595_4483_1934"
    assert [(r.room_id, r.membership) for r in batch.rooms] == [
        ("!room:example.org", "join"),
        ("!invited:example.org", "invite"),
        ("!left:example.org", "leave"),
        ("!knocked:example.org", "knock"),
    ]
    (direct,) = batch.account_data
    assert direct.kind == "direct"
    assert direct.direct == {"@bob:example.org": ["!dm:example.org"]}
    (presence,) = batch.presence
    assert (presence.sender, presence.presence, presence.status_msg) == (
        "@bob:example.org",
        "unavailable",
        "lunch",
    )
    assert presence.last_active_ago == 60000
    assert presence.currently_active is False
    assert [e.type for e in batch.to_device] == ["m.room_key_request"]
    assert batch.device_lists_changed == ("@bob:example.org",)
    assert batch.device_lists_left == ("@eve:example.org",)


def test_joined_room_parts(batch: _core.SyncBatch) -> None:
    room = batch.rooms[0]
    assert room.limited is True
    assert room.prev_batch == "t34-23535_0_0"
    assert len(room.timeline) == 34
    assert [e.kind for e in room.state] == ["create", "join_rules"]
    assert room.typing == ("@bob:example.org",)
    assert [tuple(r) for r in room.receipts] == [
        ("$ev1", "m.read", "@bob:example.org", 1700000000100, None),
        ("$ev1", "m.read.private", "@carol:example.org", 1700000000200, "main"),
    ]
    assert room.receipts[1].thread_id == "main"
    assert [e.type for e in room.account_data] == ["m.fully_read"]
    assert (room.notification_count, room.highlight_count) == (4, 1)
    assert room.heroes == ("@bob:example.org", "@carol:example.org")
    assert (room.joined_member_count, room.invited_member_count) == (3, 1)


def test_other_sections(batch: _core.SyncBatch) -> None:
    invited, left, knocked = batch.rooms[1:]
    name, member = invited.state
    assert (name.name, name.event_id, name.invalid) == ("Secret", None, None)
    assert member.membership == "invite" and member.is_direct is True
    assert invited.timeline == () and invited.typing is None
    (leave,) = left.timeline
    assert leave.membership == "leave"
    assert knocked.state[0].membership == "knock"
    assert invited.notification_count is None and invited.heroes == ()


# ---- messages --------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_id", "msgtype", "body"),
    [
        ("$ev1", "m.text", "hello"),
        ("$ev2", "m.notice", "beep"),
        ("$ev3", "m.emote", "waves"),
        ("$ev10", "org.example.custom", "fallback text"),
    ],
)
def test_text_msgtypes(
    by_id: dict[str, _core.Event], event_id: str, msgtype: str, body: str
) -> None:
    ev = by_id[event_id]
    assert ev.kind == "message" and ev.invalid is None
    assert (msg(ev).msgtype, msg(ev).body, msg(ev).text) == (msgtype, body, body)
    assert (ev.msgtype, ev.body) == (msgtype, body)


def test_formatted_body(by_id: dict[str, _core.Event]) -> None:
    m = msg(by_id["$ev4"])
    assert (m.format, m.formatted_body) == ("org.matrix.custom.html", "<b>bold</b>")
    assert m.text == "*bold*"  # XEP-0393, converted on the engine thread


def html_message(body: str, html: str, **content: Any) -> dict[str, Any]:
    return message(
        body,
        content={
            "msgtype": "m.text",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
            **content,
        },
    )


def test_html_reply_with_pills() -> None:
    html = (
        "<mx-reply><blockquote>In reply to <a href='https://matrix.to/#/@b:x'>"
        "@b:x</a></blockquote></mx-reply>Thanks "
        "<a href='https://matrix.to/#/@b:x'>Bób</a>, <i>really</i>"
    )
    reply = {"m.relates_to": {"m.in_reply_to": {"event_id": "$0"}}}
    ev = html_message("> <@b:x> hi\n\nThanks Bób, really", html, **reply)
    (decoded,) = _core.decode_sync(sync_with_timeline(ev)).rooms[0].timeline
    m = msg(decoded)
    assert m.text == "Thanks Bób, _really_"
    ((start, end, user_id),) = m.mention_spans
    assert (m.text[start:end], user_id) == ("Bób", "@b:x")


def test_html_without_text_falls_back_to_the_body() -> None:
    ev = html_message("plain words", "<mx-reply>only a fallback</mx-reply>")
    (decoded,) = _core.decode_sync(sync_with_timeline(ev)).rooms[0].timeline
    assert msg(decoded).text == "plain words"


def test_other_formats_are_not_converted() -> None:
    ev = message(
        "plain",
        content={
            "msgtype": "m.text",
            "body": "plain",
            "format": "org.example.other",
            "formatted_body": "<b>x</b>",
        },
    )
    (decoded,) = _core.decode_sync(sync_with_timeline(ev)).rooms[0].timeline
    assert msg(decoded).text == "plain"


def test_media_messages(by_id: dict[str, _core.Event]) -> None:
    image = msg(by_id["$ev5"])
    assert (image.url, image.mimetype, image.size, image.width, image.height) == (
        "mxc://example.org/cat",
        "image/png",
        4096,
        640,
        480,
    )
    assert image.thumbnail_url == "mxc://example.org/thumb"
    assert image.duration is None and image.encrypted_file is False
    file = msg(by_id["$ev6"])
    assert (file.filename, file.body, file.size) == (
        "report.pdf",
        "see attached",
        123456,
    )
    audio = msg(by_id["$ev7"])
    assert (audio.msgtype, audio.duration, audio.width) == ("m.audio", 3500, None)
    video = msg(by_id["$ev8"])
    assert (video.width, video.height, video.duration) == (1280, 720, 10000)
    location = msg(by_id["$ev9"])
    assert location.geo_uri == "geo:51.5008,0.1247"


def test_sticker(by_id: dict[str, _core.Event]) -> None:
    ev = by_id["$ev32"]
    assert ev.kind == "sticker" and ev.invalid is None
    m = msg(ev)
    assert (m.msgtype, m.url, m.mimetype, m.width) == (
        None,
        "mxc://example.org/sticker",
        "image/webp",
        256,
    )


def test_reply_fallback_stripped(by_id: dict[str, _core.Event]) -> None:
    ev = by_id["$ev11"]
    assert ev.in_reply_to == "$ev1" and ev.rel_type is None
    assert msg(ev).body.startswith("> <@bob:example.org>")  # type: ignore[union-attr]
    assert msg(ev).text == "my reply"


def test_fallback_only_stripped_for_replies() -> None:
    (ev,) = (
        _core.decode_sync(sync_with_timeline(message("> quoted\n\nmine")))
        .rooms[0]
        .timeline
    )
    assert msg(ev).text == "> quoted\n\nmine"


def test_edit(by_id: dict[str, _core.Event]) -> None:
    ev = by_id["$ev12"]
    assert (ev.rel_type, ev.relates_to) == ("m.replace", "$ev1")
    assert msg(ev).body == " * hello there"
    assert ev.new_message is not None
    assert (ev.new_message.msgtype, ev.new_message.text) == ("m.text", "hello there")


def test_relations(by_id: dict[str, _core.Event]) -> None:
    reaction = by_id["$ev13"]
    assert reaction.kind == "reaction" and reaction.message is None
    assert (reaction.rel_type, reaction.relates_to, reaction.reaction_key) == (
        "m.annotation",
        "$ev1",
        "👍",
    )
    reference = by_id["$ev14"]
    assert (reference.rel_type, reference.relates_to) == ("m.reference", "$ev2")
    thread = by_id["$ev15"]
    assert (thread.rel_type, thread.thread_root, thread.is_falling_back) == (
        "m.thread",
        "$ev1",
        True,
    )
    assert thread.in_reply_to == "$ev1"
    assert by_id["$ev1"].thread_root is None and by_id["$ev1"].is_falling_back is False


def test_mentions(by_id: dict[str, _core.Event]) -> None:
    m = msg(by_id["$ev16"])
    assert m.has_mentions is True
    assert m.mentioned_user_ids == ("@bob:example.org",)
    assert m.mentions_room is False
    assert msg(by_id["$ev1"]).has_mentions is False
    assert msg(by_id["$ev1"]).mentioned_user_ids == ()


def test_redactions(by_id: dict[str, _core.Event]) -> None:
    v11 = by_id["$ev17"]
    assert (v11.kind, v11.redacts, v11.reason) == ("redaction", "$ev3", "spam")
    old = by_id["$ev18"]
    assert (old.redacts, old.reason, old.invalid) == ("$ev4", "old style", None)
    redacted = by_id["$ev19"]
    assert redacted.redacted is True and redacted.invalid is None
    assert redacted.message is None and redacted.content == {}
    assert by_id["$ev1"].redacted is False


def test_encrypted_is_flagged(by_id: dict[str, _core.Event]) -> None:
    ev = by_id["$ev33"]
    assert (ev.kind, ev.encrypted, ev.invalid, ev.message) == (
        "encrypted",
        True,
        None,
        None,
    )
    assert by_id["$ev1"].encrypted is False


def test_unknown_type(by_id: dict[str, _core.Event]) -> None:
    ev = by_id["$ev34"]
    assert (ev.kind, ev.invalid) == ("other", None)
    assert ev.content == {"anything": [1, 2, 3]}
    assert ev.name is None and ev.message is None


# ---- state -------------------------------------------------------------------


def test_member_events(by_id: dict[str, _core.Event]) -> None:
    join = by_id["$ev20"]
    assert (join.membership, join.prev_membership, join.displayname) == (
        "join",
        "invite",
        "Carol",
    )
    assert join.avatar_url == "mxc://example.org/carol"
    assert join.is_state and join.state_key == "@carol:example.org"
    ban = by_id["$ev21"]
    assert (ban.membership, ban.reason, ban.state_key) == (
        "ban",
        "rude",
        "@dave:example.org",
    )


def test_room_state_accessors(by_id: dict[str, _core.Event]) -> None:
    assert by_id["$ev22"].name == "The Room"
    assert by_id["$ev23"].topic == "Talk here"
    assert by_id["$ev24"].avatar_url == "mxc://example.org/roomavatar"
    alias = by_id["$ev25"]
    assert alias.canonical_alias == "#room:example.org"
    assert alias.alt_aliases == ("#other:example.org",)
    assert by_id["$ev26"].power_levels == {
        "users": {"@alice:example.org": 100},
        "users_default": 0,
    }
    assert by_id["$ev27"].encryption_algorithm == "m.megolm.v1.aes-sha2"
    assert by_id["$ev28"].replacement_room == "!new:example.org"
    assert by_id["$ev29"].child_via == ("example.org",)
    assert by_id["$ev30"].parent_via == ("example.org",)
    assert by_id["$ev31"].pinned == ("$ev1", "$ev2")
    create, join_rules = by_id["$ev35"], by_id["$ev36"]
    assert create.room_type == "m.space" and join_rules.join_rule == "invite"


def test_accessors_are_none_for_other_kinds(by_id: dict[str, _core.Event]) -> None:
    text = by_id["$ev1"]
    for attr in ("name", "topic", "membership", "power_levels", "pinned", "presence"):
        assert getattr(text, attr) is None, attr
    assert not by_id["$ev22"].is_direct


def test_source_is_the_whole_event(by_id: dict[str, _core.Event]) -> None:
    src = by_id["$ev20"].source
    assert src["unsigned"] == {"prev_content": {"membership": "invite"}}
    assert src["state_key"] == "@carol:example.org"


def test_views_outlive_the_batch_reference() -> None:
    ev = load("every_event_type.json").rooms[0].timeline[0]
    m = ev.message
    del ev
    gc.collect()
    assert m is not None and m.body == "hello"


# ---- hostile input -------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile() -> _core.SyncBatch:
    return load("hostile.json")


def test_hostile_batch_survives(hostile: _core.SyncBatch) -> None:
    assert hostile.next_batch == "s_hostile"
    assert hostile.presence == ()
    assert [e.invalid for e in hostile.account_data] == [
        "the event is not a JSON object",
        "the event's 'content' is not an object",
    ]
    assert hostile.device_lists_changed == ("@ok:example.org",)
    assert hostile.device_lists_left == ()
    # The string "room" is skipped; the object one decodes.
    rooms = [r.room_id for r in hostile.rooms]
    assert rooms == ["!hostile:example.org", "!inv:example.org"]


def test_hostile_room_fields(hostile: _core.SyncBatch) -> None:
    room = hostile.rooms[0]
    assert room.limited is False and room.prev_batch is None
    assert room.state == ()
    assert room.heroes == ()
    assert room.joined_member_count is None and room.invited_member_count is None
    assert room.notification_count is None and room.highlight_count is None
    assert room.typing == ()
    assert room.receipts == ()
    assert [e.invalid for e in room.ephemeral][2] == "the event has no 'content'"


EXPECTED_INVALID = {
    0: "the event is not a JSON object",
    1: "the event is not a JSON object",
    2: "the event is not a JSON object",
    3: "the event has no string 'type'",
    4: "the event has no string 'type'",
    5: "the event has no string 'sender'",
    6: "the event has no 'content'",
    7: "the event's 'content' is not an object",
    8: "the event has no string 'event_id'",
    9: "the message has no string 'body'",
    10: "the message has no string 'msgtype'",
    11: "the reaction has no annotation key",
    12: "the redaction names no event",
    13: "the member event has no string 'membership'",
    14: "the sticker has no string 'url'",
}


def test_hostile_events_flagged_with_reasons(hostile: _core.SyncBatch) -> None:
    timeline = hostile.rooms[0].timeline
    assert len(timeline) == 20
    for i, ev in enumerate(timeline):
        assert ev.invalid == EXPECTED_INVALID.get(i), (i, ev.invalid)
    assert timeline[-1].body == "survivor"


def test_hostile_values_read_as_absent(hostile: _core.SyncBatch) -> None:
    timeline = hostile.rooms[0].timeline
    huge = timeline[15]
    assert huge.origin_server_ts == 0
    m = msg(huge)
    assert (m.url, m.size, m.width, m.height, m.duration, m.mimetype) == (
        None,
        None,
        None,
        None,
        None,
        None,
    )
    # Duplicate keys: the first one wins, consistently.
    dup = timeline[16]
    assert dup.body == "first" and dup.origin_server_ts == 0
    bad_rel = timeline[17]
    assert (bad_rel.rel_type, bad_rel.relates_to, bad_rel.in_reply_to) == (None,) * 3
    assert bad_rel.new_message is None and bad_rel.invalid is None
    assert timeline[18].name is None and timeline[18].invalid is None


def test_stripped_state_needs_state_key(hostile: _core.SyncBatch) -> None:
    (ev,) = hostile.rooms[1].state
    assert ev.invalid == "the stripped state event has no string 'state_key'"


def test_invalid_utf8_is_replaced() -> None:
    (ev,) = load("invalid_utf8.json").rooms[0].timeline
    assert ev.invalid is None
    assert ev.sender == "@a\ufffd:example.org"
    assert ev.body is not None and ev.body.endswith(" ok") and "\ufffd" in ev.body
    assert "\ufffd" in msg(ev).text
    assert ev.source["content"]["msgtype"] == "m.text"


def test_deep_nesting() -> None:
    # Within the parser's limit: decodes, and reading the content is refused
    # in words rather than exhausting the stack.
    deep = "[" * 600 + "]" * 600
    body = sync_with_timeline(message()).replace(
        b'"body": "hi"', b'"body": "hi", "d": ' + deep.encode()
    )
    (ev,) = _core.decode_sync(body).rooms[0].timeline
    assert ev.invalid is None and msg(ev).body == "hi"
    with pytest.raises(ValueError, match="nested too deeply"):
        ev.content  # noqa: B018
    # Beyond it: the response is refused as a whole, with a reason.
    too_deep = b'{"next_batch": "s", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(ValueError, match="not valid JSON"):
        _core.decode_sync(too_deep)


def test_enormous_strings() -> None:
    big = "x" * (8 * 1024 * 1024)
    (ev,) = _core.decode_sync(sync_with_timeline(message(big))).rooms[0].timeline
    assert ev.invalid is None and len(msg(ev).text) == len(big)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"rooms": {}}', "no 'next_batch'"),
        (b'{"next_batch": 5}', "no 'next_batch'"),
        (b'{"next_batch": "s", ', "not valid JSON"),
    ],
)
def test_unusable_responses_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        _core.decode_sync(data)


def test_decoding_releases_the_gil() -> None:
    # With a long switch interval, another Python thread only runs while this
    # one has released the GIL: so it counts only if decoding releases it.
    events = [message(f"m{i}", event_id=f"$e{i}") for i in range(50000)]
    data = sync_with_timeline(*events)
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    t = threading.Thread(target=count)
    try:
        t.start()
        before = ticks
        batch = _core.decode_sync(data)
        during = ticks - before
    finally:
        done.set()
        t.join()
        sys.setswitchinterval(interval)
    assert len(batch.rooms[0].timeline) == 50000
    assert during > 0


# Bodies of every str width, and bytes that are not UTF-8 (overlong forms,
# surrogates, truncated sequences, code points above U+10FFFF), read back as
# Python's own decoder reads them: the views build strs from the decoder's
# measurements and must never disagree with it.
UTF8_CASES: list[bytes] = [
    b"plain ascii, longer than eight bytes",
    "café naïve".encode(),
    "ÿ at the top of latin-1".encode(),
    "日本語 and Ā".encode(),
    "emoji 🎉 and 👍 beside é and 日".encode(),
    "\U0010ffff last".encode(),
    b"overlong \xc0\xaf slash",
    b"overlong three \xe0\x80\xaf",
    b"overlong four \xf0\x80\x80\xaf",
    b"surrogate \xed\xa0\x80 half",
    b"too high \xf4\x90\x80\x80",
    b"truncated \xe6\x97",
    b"truncated at the end \xf0\x9f\x8e",
    b"lone continuation \x80\xbf bytes",
    b"\xff\xfe invalid lead bytes",
]


@pytest.mark.parametrize("raw", UTF8_CASES)
def test_bodies_decode_as_python_decodes_them(raw: bytes) -> None:
    body = sync_with_timeline(message("BODY")).replace(b'"BODY"', b'"' + raw + b'"')
    (ev,) = _core.decode_sync(body).rooms[0].timeline
    expected = raw.decode("utf-8", "replace")
    assert ev.body == expected
    assert msg(ev).text == expected
