"""Records real Synapse responses as fuzzing seeds.

Starts a throwaway Synapse, plays a conversation with every kind of event
the decoder handles (messages of each msgtype, HTML, replies, a thread,
edits, reactions, redactions, membership and room state changes, typing and
receipts), and saves the raw /sync and /messages bodies under fuzz/seeds/.

    .venv/bin/python -m fuzz.record_seeds
"""

from __future__ import annotations

import json
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse

SEEDS = Path(__file__).parent / "seeds"


def raw(user: MatrixUser, path: str, query: dict[str, str]) -> bytes:
    url = f"{user.base_url}/_matrix/client/v3{path}?{urllib.parse.urlencode(query)}"
    req = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {user.access_token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        body: bytes = resp.read()
    return body


def converse(alice: MatrixUser, bob: MatrixUser) -> str:
    room = alice.create_room(name="Seeds", topic="where fuzzing starts")
    alice.invite(room, bob.user_id)
    bob.join(room)
    first = alice.send_text(room, "hello")
    html = {
        "msgtype": "m.text",
        "body": "**bold** and a link",
        "format": "org.matrix.custom.html",
        "formatted_body": '<b>bold</b> and <a href="https://example.org">a link</a>',
    }
    alice.send_event(room, "m.room.message", html)
    bob.send_event(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": f"> <{alice.user_id}> hello\n\nhi!",
            "m.relates_to": {"m.in_reply_to": {"event_id": first}},
        },
    )
    bob.send_event(room, "m.room.message", {"msgtype": "m.emote", "body": "waves"})
    bob.send_event(room, "m.room.message", {"msgtype": "m.notice", "body": "a notice"})
    media: dict[str, Any] = {"url": "mxc://localhost/abc", "info": {"size": 10}}
    for msgtype in ("m.image", "m.file", "m.audio", "m.video"):
        alice.send_event(
            room, "m.room.message", {"msgtype": msgtype, "body": "f", **media}
        )
    alice.send_event(
        room,
        "m.room.message",
        {"msgtype": "m.location", "body": "here", "geo_uri": "geo:1,2"},
    )
    alice.send_event(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* hello again",
            "m.new_content": {"msgtype": "m.text", "body": "hello again"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    bob.send_event(
        room,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}},
    )
    bob.send_event(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "in a thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": first},
        },
    )
    oops = bob.send_text(room, "oops")
    bob.request(
        "PUT",
        f"/rooms/{urllib.parse.quote(room)}/redact/{urllib.parse.quote(oops)}/t1",
        {},
    )
    alice.set_topic(room, "a new topic")
    bob.request(
        "PUT",
        f"/rooms/{urllib.parse.quote(room)}/typing/{urllib.parse.quote(bob.user_id)}",
        {"typing": True, "timeout": 30000},
    )
    bob.request(
        "POST",
        f"/rooms/{urllib.parse.quote(room)}/receipt/m.read/{urllib.parse.quote(first)}",
        {},
    )
    return room


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Synapse(Path(tmp)) as synapse:
        users = []
        for name in ("alice", "bob"):
            info = synapse.register_user(name, "pw")
            users.append(
                MatrixUser(synapse.base_url, info["access_token"], info["user_id"])
            )
        alice, bob = users
        initial = raw(alice, "/sync", {"timeout": "0"})
        room = converse(alice, bob)
        since = json.loads(initial)["next_batch"]
        seeds = {
            "fuzz_sync/synapse_initial.json": raw(alice, "/sync", {"timeout": "0"}),
            "fuzz_sync/synapse_incremental.json": raw(
                alice, "/sync", {"timeout": "0", "since": since}
            ),
        }
        path = f"/rooms/{urllib.parse.quote(room)}/messages"
        pages, token = [], None
        lazy = json.dumps({"lazy_load_members": True})
        while True:
            query = {
                "dir": "b",
                "limit": "6",
                "filter": lazy,
                **({"from": token} if token else {}),
            }
            page = raw(alice, path, query)
            pages.append(page)
            token = json.loads(page).get("end")
            if not token:
                break
        seeds["fuzz_history/synapse_pages"] = b"\0" + b"\0".join(pages)
        for name, body in seeds.items():
            (SEEDS / name).write_bytes(body)
            print(f"{name}: {len(body)} bytes")


if __name__ == "__main__":
    main()
