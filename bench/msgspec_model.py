"""msgspec Structs for a /sync response that declare only the fields a
gateway routes on: msgspec's best case, as it skips everything undeclared.

No ``from __future__ import annotations`` here: msgspec resolves these
annotations at class creation.
"""

import msgspec


class Content(msgspec.Struct):
    body: str | None = None
    msgtype: str | None = None


class ClientEvent(msgspec.Struct):
    type: str
    sender: str | None = None
    event_id: str | None = None
    state_key: str | None = None
    content: Content = msgspec.field(default_factory=Content)


class Events(msgspec.Struct):
    events: list[ClientEvent] = msgspec.field(default_factory=list)


class JoinedRoom(msgspec.Struct):
    state: Events = msgspec.field(default_factory=Events)
    timeline: Events = msgspec.field(default_factory=Events)


class InvitedRoom(msgspec.Struct):
    invite_state: Events = msgspec.field(default_factory=Events)


class Rooms(msgspec.Struct):
    join: dict[str, JoinedRoom] = msgspec.field(default_factory=dict)
    invite: dict[str, InvitedRoom] = msgspec.field(default_factory=dict)
    leave: dict[str, JoinedRoom] = msgspec.field(default_factory=dict)


class Sync(msgspec.Struct):
    next_batch: str
    rooms: Rooms = msgspec.field(default_factory=Rooms)


decoder = msgspec.json.Decoder(Sync)
