"""History paging and aggregation in the C core, over /messages pages written
for the purpose (the live path through Synapse is tested end to end)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from matridge import _core

ALICE, BOB = "@alice:x", "@bob:x"


class Room:
    """Builds a room's events in time order and serves them as pages."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(
        self, type_: str, content: dict[str, Any], sender: str = ALICE, **extra: Any
    ) -> str:
        event_id = f"$e{len(self.events)}"
        self.events.append(
            {
                "type": type_,
                "event_id": event_id,
                "sender": sender,
                "origin_server_ts": 1000 + len(self.events),
                "content": content,
                **extra,
            }
        )
        return event_id

    def text(self, body: str, sender: str = ALICE, **content: Any) -> str:
        return self.add(
            "m.room.message", {"msgtype": "m.text", "body": body, **content}, sender
        )

    def edit(self, target: str, body: str, sender: str = ALICE) -> str:
        return self.text(
            f"* {body}",
            sender,
            **{
                "m.new_content": {"msgtype": "m.text", "body": body},
                "m.relates_to": {"rel_type": "m.replace", "event_id": target},
            },
        )

    def react(self, target: str, key: str, sender: str = ALICE) -> str:
        relates = {"rel_type": "m.annotation", "event_id": target, "key": key}
        return self.add("m.reaction", {"m.relates_to": relates}, sender)

    def redact(self, target: str, sender: str = ALICE) -> str:
        return self.add("m.room.redaction", {"redacts": target}, sender)

    def pages(self, size: int, backwards: bool = True) -> list[bytes]:
        """/messages bodies, as Synapse would page this room."""
        events = self.events[::-1] if backwards else self.events
        out = []
        for i in range(0, len(events), size):
            chunk = events[i : i + size]
            body: dict[str, Any] = {"chunk": chunk, "start": f"t{i}"}
            if i + size < len(events):
                body["end"] = f"t{i + size}"
            out.append(json.dumps(body).encode())
        return out


def bodies(history: _core.History) -> list[str | None]:
    return [e.body for e in history.events]


def test_pages_come_out_oldest_first() -> None:
    room = Room()
    for i in range(25):
        room.text(f"m{i}")
    history = _core.history_from_pages(room.pages(10))
    assert bodies(history) == [f"m{i}" for i in range(25)]
    assert (history.fetched, history.pages, history.stopped) == (25, 3, "end")
    assert history.end is None


def test_forwards_paging() -> None:
    room = Room()
    for i in range(5):
        room.text(f"m{i}")
    history = _core.history_from_pages(room.pages(2, backwards=False), backwards=False)
    assert bodies(history) == [f"m{i}" for i in range(5)]


def test_stops_at_an_event() -> None:
    room = Room()
    ids = [room.text(f"m{i}") for i in range(30)]
    history = _core.history_from_pages(room.pages(10), until_event_id=ids[12])
    assert bodies(history) == [f"m{i}" for i in range(13, 30)]
    assert history.stopped == "event"
    # Paging stopped in the second page: the third was never needed.
    assert history.pages == 2


def test_stops_at_a_time() -> None:
    room = Room()
    for i in range(10):
        room.text(f"m{i}")
    history = _core.history_from_pages(room.pages(4), until_ts=1005)
    assert bodies(history) == ["m5", "m6", "m7", "m8", "m9"]
    assert history.stopped == "timestamp"


def test_stops_at_a_count_with_a_token_to_continue() -> None:
    room = Room()
    for i in range(30):
        room.text(f"m{i}")
    history = _core.history_from_pages(room.pages(10), limit=20)
    assert bodies(history) == [f"m{i}" for i in range(10, 30)]
    assert (history.stopped, history.end) == ("count", "t20")


def test_runs_out_of_pages() -> None:
    room = Room()
    for i in range(30):
        room.text(f"m{i}")
    history = _core.history_from_pages(room.pages(10)[:1])
    assert (history.stopped, history.end, len(history.events)) == (
        "incomplete",
        "t10",
        10,
    )


def test_edits_are_applied_once() -> None:
    room = Room()
    original = room.text("hello")
    room.edit(original, "hello there")
    room.edit(original, "hello world")
    room.edit(original, "hijacked", sender=BOB)  # not the sender: ignored
    history = _core.history_from_pages(room.pages(3))
    assert [e.event_id for e in history.events] == [original]
    edit = history.replacement(original)
    assert edit is not None and edit.new_message is not None
    assert edit.new_message.body == "hello world"
    assert history.replacement("$unknown") is None


def test_edit_of_an_edit_is_ignored() -> None:
    room = Room()
    original = room.text("a")
    first = room.edit(original, "b")
    room.edit(first, "c")
    history = _core.history_from_pages(room.pages(10))
    edit = history.replacement(original)
    assert edit is not None and edit.new_message is not None
    assert edit.new_message.body == "b"
    assert bodies(history) == ["a"]


def test_edits_of_older_messages_remain() -> None:
    room = Room()
    old = room.text("before the range")
    room.text("in range")
    room.edit(old, "fixed")
    history = _core.history_from_pages(room.pages(10), until_event_id=old)
    assert [(e.body, e.rel_type) for e in history.events] == [
        ("in range", None),
        ("* fixed", "m.replace"),
    ]


def test_redacted_messages_are_gone() -> None:
    room = Room()
    keep = room.text("keep")
    gone = room.text("oops")
    room.redact(gone)
    room.add(
        "m.room.message",
        {},
        unsigned={"redacted_because": {"type": "m.room.redaction", "content": {}}},
    )
    history = _core.history_from_pages(room.pages(10))
    assert [e.event_id for e in history.events] == [keep]


def test_redaction_of_an_older_message_remains() -> None:
    room = Room()
    old = room.text("delivered earlier")
    room.text("new")
    room.redact(old)
    history = _core.history_from_pages(room.pages(10), until_event_id=old)
    assert [(e.kind, e.redacts) for e in history.events] == [
        ("message", None),
        ("redaction", old),
    ]


def test_reactions_are_gathered_per_sender() -> None:
    room = Room()
    msg = room.text("react to me")
    room.react(msg, "👍")
    room.react(msg, "👍")  # the same key twice counts once
    room.react(msg, "🎉")
    room.react(msg, "👍", sender=BOB)
    withdrawn = room.react(msg, "😢", sender=BOB)
    room.redact(withdrawn, sender=BOB)
    history = _core.history_from_pages(room.pages(4))
    assert [e.event_id for e in history.events] == [msg]
    assert history.reactions(msg) == {ALICE: ["👍", "🎉"], BOB: ["👍"]}
    assert history.reactions("$unknown") == {}


def test_reactions_to_redacted_or_older_messages() -> None:
    room = Room()
    old = room.text("old")
    gone = room.text("gone")
    room.react(gone, "👍")
    room.redact(gone)
    room.react(old, "❤️")
    history = _core.history_from_pages(room.pages(10), until_event_id=old)
    assert [(e.kind, e.reaction_key) for e in history.events] == [("reaction", "❤️")]


def test_replies_threads_and_state_stay_in_order() -> None:
    room = Room()
    room.add("m.room.member", {"membership": "join"}, BOB, state_key=BOB)
    root = room.text("root")
    room.text(
        "in thread",
        BOB,
        **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}},
    )
    room.add("m.room.topic", {"topic": "new topic"}, state_key="")
    room.text("reply", **{"m.relates_to": {"m.in_reply_to": {"event_id": root}}})
    room.add("m.room.member", {"membership": "leave"}, BOB, state_key=BOB)
    history = _core.history_from_pages(room.pages(2))
    assert [e.kind for e in history.events] == [
        "member",
        "message",
        "message",
        "topic",
        "message",
        "member",
    ]
    thread, reply = history.events[2], history.events[4]
    assert thread.thread_root == root and reply.in_reply_to == root


def test_invalid_events_are_left_out() -> None:
    room = Room()
    room.text("fine")
    room.events.append({"type": "m.room.message", "content": {"body": "no id"}})
    room.events.append("not an event")  # type: ignore[arg-type]
    history = _core.history_from_pages(room.pages(10))
    assert bodies(history) == ["fine"]
    assert history.fetched == 3


def test_member_state_comes_along() -> None:
    page = {
        "chunk": [],
        "start": "t0",
        "state": [
            {
                "type": "m.room.member",
                "event_id": "$m",
                "sender": BOB,
                "state_key": BOB,
                "origin_server_ts": 1,
                "content": {"membership": "join", "displayname": "Bob"},
            }
        ],
    }
    history = _core.history_from_pages([json.dumps(page).encode()])
    assert [e.displayname for e in history.state] == ["Bob"]
    assert history.stopped == "end"


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "no 'chunk' array"),
        (b'{"chunk": {}}', "no 'chunk' array"),
        (b'{"chunk": []}', "no 'start' token"),
    ],
)
def test_bad_pages_are_refused(page: bytes, reason: str) -> None:
    room = Room()
    room.text("first page")
    good = json.dumps({"chunk": room.events, "start": "a", "end": "b"}).encode()
    with pytest.raises(ValueError, match=f"page 1 .*{reason}"):
        _core.history_from_pages([good, page])
