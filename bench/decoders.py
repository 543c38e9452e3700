"""The decoders compared, each as `decode` (bytes → the library's result) and
`walk` (that result → what a gateway needs to route every event).

The walk reads, for each state and timeline event of every room, the room
id, event type, sender, event id, and body and msgtype where the library's
model has them: what matridge needs to route an event. It yields one
`Tally` per slice of at most CHUNK events of a room, so that the loop-stall
benchmark can hand the loop back between slices (the plugin awaits as it
routes) and measures the decoder, not the granularity of the walk.

Each peer is used the way its own client uses it:
- matrix-nio: ``json.loads`` (aiohttp's ``response.json()``), then
  ``SyncResponse.from_dict``, which validates against its JSON schemas and
  builds an object per event;
- mautrix: ``json.loads``, then ``Syncer.handle_sync``'s deserialisation
  (``StateEvent`` / ``Event`` / ``EphemeralEvent`` / ``AccountDataEvent`` /
  ``StrippedStateEvent.deserialize``, with ``room_id`` set on each event),
  without dispatching to handlers;
- msgspec with typed Structs that declare only the routed fields (its best
  case: it skips everything else), and plain ``msgspec.json.decode``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

Tally = tuple[int, int, int]  # events, events with a body, body characters
CHUNK = 200


def chunks(events: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(events), CHUNK):
        yield events[start : start + CHUNK]


@dataclass(frozen=True)
class Decoder:
    name: str
    library: str  # distribution name, for the version line
    decode: Callable[[bytes], Any]
    walk: Callable[[Any], Iterator[Tally]]


def total(tallies: Iterator[Tally]) -> Tally:
    events = bodies = chars = 0
    for e, b, c in tallies:
        events += e
        bodies += b
        chars += c
    return events, bodies, chars


# ---- matridge ------------------------------------------------------------


def _matridge_decode(data: bytes) -> Any:
    from matridge import _core

    return _core.decode_sync(data)


def _matridge_events(room_id: str, evs: Sequence[Any]) -> Tally:
    events = bodies = chars = 0
    for ev in evs:
        route = (room_id, ev.type, ev.sender, ev.event_id, ev.msgtype)
        body = ev.body
        events += 1
        if body is not None:
            bodies += 1
            chars += len(body)
        del route
    return events, bodies, chars


def matridge_walk(batch: Any) -> Iterator[Tally]:
    for room in batch.rooms:
        room_id = room.room_id
        for part in (room.state, room.timeline):
            for evs in chunks(part):
                yield _matridge_events(room_id, evs)


# ---- plain dicts (json, orjson, msgspec without types) ----------------------


def _dict_events(room_id: str, evs: Sequence[Any]) -> Tally:
    events = bodies = chars = 0
    for ev in evs:
        content = ev.get("content")
        if not isinstance(content, dict):
            content = {}
        body = content.get("body")
        msgtype = content.get("msgtype")
        route = (room_id, ev.get("type"), ev.get("sender"), ev.get("event_id"), msgtype)
        events += 1
        if isinstance(body, str):
            bodies += 1
            chars += len(body)
        del route
    return events, bodies, chars


def walk_dicts(sync: Any) -> Iterator[Tally]:
    rooms = sync.get("rooms") or {}
    for section, parts in (
        ("join", ("state", "timeline")),
        ("invite", ("invite_state",)),
        ("leave", ("state", "timeline")),
    ):
        for room_id, room in (rooms.get(section) or {}).items():
            for part in parts:
                for evs in chunks((room.get(part) or {}).get("events") or ()):
                    yield _dict_events(room_id, evs)


def _orjson_decode(data: bytes) -> Any:
    import orjson

    return orjson.loads(data)


def _msgspec_plain_decode(data: bytes) -> Any:
    import msgspec

    return msgspec.json.decode(data)


# ---- msgspec with typed Structs ---------------------------------------------


def _msgspec_typed_decode(data: bytes) -> Any:
    from .msgspec_model import decoder

    return decoder.decode(data)


def _typed_events(room_id: str, evs: Sequence[Any]) -> Tally:
    events = bodies = chars = 0
    for ev in evs:
        content = ev.content
        route = (room_id, ev.type, ev.sender, ev.event_id, content.msgtype)
        body = content.body
        events += 1
        if body is not None:
            bodies += 1
            chars += len(body)
        del route
    return events, bodies, chars


def msgspec_typed_walk(sync: Any) -> Iterator[Tally]:
    rooms = sync.rooms
    for room_id, joined in rooms.join.items():
        for part in (joined.state.events, joined.timeline.events):
            for evs in chunks(part):
                yield _typed_events(room_id, evs)
    for room_id, invited in rooms.invite.items():
        for evs in chunks(invited.invite_state.events):
            yield _typed_events(room_id, evs)
    for room_id, left in rooms.leave.items():
        for part in (left.state.events, left.timeline.events):
            for evs in chunks(part):
                yield _typed_events(room_id, evs)


# ---- matrix-nio -------------------------------------------------------------


def _nio_decode(data: bytes) -> Any:
    from nio import SyncResponse

    return SyncResponse.from_dict(json.loads(data))


def _object_events(room_id: str, evs: Sequence[Any]) -> Tally:
    events = bodies = chars = 0
    for ev in evs:
        # nio routes by class (callbacks per event class).
        route = (room_id, type(ev), ev.sender, getattr(ev, "event_id", None))
        body = getattr(ev, "body", None)
        events += 1
        if isinstance(body, str):
            bodies += 1
            chars += len(body)
        del route
    return events, bodies, chars


def nio_walk(resp: Any) -> Iterator[Tally]:
    if not hasattr(resp, "rooms"):
        raise RuntimeError(f"matrix-nio could not decode the response: {resp}")
    rooms = resp.rooms
    for room_id, joined in rooms.join.items():
        for part in (joined.state, joined.timeline.events):
            for evs in chunks(part):
                yield _object_events(room_id, evs)
    for room_id, invited in rooms.invite.items():
        for evs in chunks(invited.invite_state):
            yield _object_events(room_id, evs)
    for room_id, left in rooms.leave.items():
        for part in (left.state, left.timeline.events):
            for evs in chunks(part):
                yield _object_events(room_id, evs)


# ---- mautrix ----------------------------------------------------------------


def _mautrix_decode(data: bytes) -> Any:
    """`Syncer.handle_sync` minus dispatching: every event it would hand to
    handlers, deserialised the same way, grouped by room."""
    from mautrix.types import (
        AccountDataEvent,
        EphemeralEvent,
        Event,
        GenericEvent,
        SerializerError,
        StateEvent,
        StrippedStateEvent,
        ToDeviceEvent,
    )

    logging.getLogger("mau").setLevel(logging.ERROR)

    def load(kind: Any, raw: Any) -> Any:
        try:
            return kind.deserialize(raw)
        except SerializerError:
            try:
                return GenericEvent.deserialize(raw)
            except SerializerError:
                return None

    sync = json.loads(data)
    glob = [
        load(AccountDataEvent, e)
        for e in sync.get("account_data", {}).get("events", [])
    ]
    glob += [
        load(ToDeviceEvent, e) for e in sync.get("to_device", {}).get("events", [])
    ]
    rooms: list[tuple[str, list[Any], list[Any]]] = []
    raw_rooms = sync.get("rooms", {})
    for room_id, room in raw_rooms.get("join", {}).items():
        routed: list[Any] = []
        for raw in room.get("state", {}).get("events", []):
            raw["room_id"] = room_id
            routed.append(load(StateEvent, raw))
        for raw in room.get("timeline", {}).get("events", []):
            raw["room_id"] = room_id
            routed.append(load(Event, raw))
        other = []
        for raw in room.get("ephemeral", {}).get("events", []):
            raw["room_id"] = room_id
            other.append(load(EphemeralEvent, raw))
        rooms.append((room_id, routed, other))
    for room_id, room in raw_rooms.get("invite", {}).items():
        stripped = room.get("invite_state", {}).get("events", [])
        for raw in stripped:
            raw["room_id"] = room_id
        routed = [load(StrippedStateEvent, raw) for raw in stripped]
        rooms.append((room_id, routed, []))
    for room_id, room in raw_rooms.get("leave", {}).items():
        routed = []
        for raw in room.get("timeline", {}).get("events", []):
            if "state_key" in raw:
                raw["room_id"] = room_id
                routed.append(load(StateEvent, raw))
        rooms.append((room_id, routed, []))
    return glob, rooms


def _mautrix_events(room_id: str, evs: Sequence[Any]) -> Tally:
    events = bodies = chars = 0
    for ev in evs:
        content = ev.content
        event_id, msgtype = (
            getattr(ev, "event_id", None),
            getattr(content, "msgtype", None),
        )
        route = (room_id, ev.type, ev.sender, event_id, msgtype)
        body = getattr(content, "body", None)
        events += 1
        if isinstance(body, str):
            bodies += 1
            chars += len(body)
        del route
    return events, bodies, chars


def mautrix_walk(decoded: Any) -> Iterator[Tally]:
    _glob, rooms = decoded
    for room_id, routed, _other in rooms:
        for evs in chunks(routed):
            yield _mautrix_events(room_id, evs)


DECODERS: dict[str, Decoder] = {
    d.name: d
    for d in (
        Decoder("matridge", "matridge", _matridge_decode, matridge_walk),
        Decoder("orjson", "orjson", _orjson_decode, walk_dicts),
        Decoder(
            "msgspec (Structs)", "msgspec", _msgspec_typed_decode, msgspec_typed_walk
        ),
        Decoder("msgspec (dicts)", "msgspec", _msgspec_plain_decode, walk_dicts),
        Decoder("json", "python", json.loads, walk_dicts),
        Decoder("mautrix", "mautrix", _mautrix_decode, mautrix_walk),
        Decoder("matrix-nio", "matrix-nio", _nio_decode, nio_walk),
    )
}
