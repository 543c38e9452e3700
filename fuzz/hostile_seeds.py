"""Writes the hostile-room seeds of fuzz_rooms and fuzz_sync (issue 13):
huge lists, deep nesting and extreme integers, and sync and state answers in
orders the engine can see. Run once after changing it:

    .venv/bin/python -m fuzz.hostile_seeds
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEEDS = Path(__file__).parent / "seeds"
FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures"
ROOM = "!r0:x"
ME = "@me:x"


def state(type: str, content: Any, key: str = "", sender: str = ME) -> dict[str, Any]:
    return {"type": type, "state_key": key, "sender": sender, "content": content}


def member(user: str, membership: str = "join") -> dict[str, Any]:
    return state(
        "m.room.member", {"membership": membership, "displayname": "n"}, user, user
    )


def sync(events: list[Any], room: str = ROOM, **extra: Any) -> dict[str, Any]:
    return {
        "next_batch": "n",
        "rooms": {"join": {room: {"state": {"events": events}}}},
        **extra,
    }


def S(body: Any) -> bytes:
    return b"S" + json.dumps(body).encode()


def T(room: int, back: int, events: Any) -> bytes:
    return b"T" + bytes([48 + room, 48 + back]) + json.dumps(events).encode()


def deep(n: int) -> Any:
    v: Any = "x"
    for _ in range(n):
        v = {"a": [v]}
    return v


EXTREME = [
    "-9223372036854775808",
    "9223372036854775807",
    "9007199254740992",
    "-9007199254740991",
    "+5",
    "-",
    "",
    "1e3",
    1e308,
    -1e308,
    9007199254740993,
    -0.0,
    0.5,
    1.5e-300,
    True,
    None,
    [],
    {},
]


def rooms_seeds() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    initial = (FIXTURES / "rooms" / "initial_sync.json").read_bytes()
    seeds["initial_then_state"] = b"\0".join(
        [b"U@me:example.org", b"S" + initial, T(0, 0, [member(ME), member("@a:x")])]
    )
    seeds["stale_state_after_leave"] = b"\0".join(
        [
            b"U" + ME.encode(),
            S(sync([member(ME), member("@a:x")])),
            S(sync([member("@a:x", "leave"), member("@b:x")])),
            T(0, 1, [member(ME), member("@a:x"), member("@c:x")]),
            T(1, 0, [member(ME, "invite")]),
        ]
    )
    big = [f"$e{i % 3000}" for i in range(6000)]
    aliases = [f"#a{i}:x" for i in range(5000)]
    users = {f"@u{i}:x": i for i in range(4500)}
    seeds["huge_lists"] = S(
        sync(
            [
                member(ME),
                state("m.room.pinned_events", {"pinned": big}),
                state(
                    "m.room.canonical_alias", {"alias": "#m:x", "alt_aliases": aliases}
                ),
                state(
                    "m.room.create",
                    {
                        "room_version": "12",
                        "additional_creators": [f"@c{i % 4000}:x" for i in range(6000)],
                    },
                ),
            ]
        )
    )
    seeds["huge_power_levels"] = S(
        sync(
            [
                member(ME),
                state("m.room.power_levels", {"users": users, "events": users}),
            ]
        )
    )
    seeds["huge_direct"] = S(
        {
            "next_batch": "n",
            "account_data": {
                "events": [
                    {
                        "type": "m.direct",
                        "content": {
                            "@d:x": [f"!d{i}:x" for i in range(5000)],
                            "@e:x": ["!d1:x"] * 5000,
                        },
                    }
                ]
            },
        }
    )
    seeds["many_members"] = S(sync([member(f"@m{i}:x") for i in range(2000)]))
    seeds["deep_nesting"] = b"\0".join(
        [
            S(sync([member(ME), state("m.room.name", {"name": deep(900)})])),
            T(0, 0, [state("m.room.topic", {"topic": deep(900)})]),
        ]
    )
    seeds["extreme_integers"] = (
        S(
            sync(
                [
                    member(ME),
                    state(
                        "m.room.power_levels",
                        {
                            "users": {f"@x{i}:x": v for i, v in enumerate(EXTREME)},
                            "users_default": "-9223372036854775808",
                            "ban": 1e308,
                            "events": {"m.room.name": "9223372036854775807"},
                        },
                    ),
                    state("m.room.create", {"room_version": "99999999999999999999"}),
                ]
            )
        )
        + b"\0"
        + S(
            {
                "next_batch": "n",
                "rooms": {
                    "join": {
                        ROOM: {
                            "summary": {
                                "m.joined_member_count": -1,
                                "m.invited_member_count": 1e308,
                                "m.heroes": ["@h:x"] * 10,
                            }
                        }
                    }
                },
            }
        )
    )
    return seeds


def sync_seeds() -> dict[str, bytes]:
    receipts = [
        {
            "type": "m.receipt",
            "content": {f"$e{i}": {"m.read": {f"@u{i}:x": {"ts": i}}}},
        }
        for i in range(2000)
    ]
    return {
        "hostile_receipts.json": json.dumps(
            {
                "next_batch": "n",
                "rooms": {"join": {ROOM: {"ephemeral": {"events": receipts}}}},
            }
        ).encode(),
        "hostile_integers.json": json.dumps(
            {
                "next_batch": "n",
                "rooms": {
                    "join": {
                        ROOM: {
                            "unread_notifications": {"notification_count": 1e308},
                            "timeline": {
                                "events": [
                                    {
                                        "type": "m.room.message",
                                        "event_id": "$1",
                                        "sender": "@a:x",
                                        "origin_server_ts": v,
                                        "content": {"body": "x", "msgtype": "m.text"},
                                    }
                                    for v in EXTREME
                                ]
                            },
                        }
                    }
                },
            }
        ).encode(),
        "hostile_deep.json": json.dumps(
            {
                "next_batch": "n",
                "account_data": {"events": [{"type": "x", "content": deep(900)}]},
            }
        ).encode(),
    }


def main() -> None:
    for name, data in rooms_seeds().items():
        (SEEDS / "fuzz_rooms" / name).write_bytes(data)
    for name, data in sync_seeds().items():
        (SEEDS / "fuzz_sync" / name).write_bytes(data)


if __name__ == "__main__":
    main()
