"""The decoders compared, each as `decode` (bytes → the library's result) and
`walk` (that result → what a gateway needs to route every event).

The walk reads, for each state and timeline event of every room, the room
id, event type, sender, event id, and body and msgtype where the library's
model has them: what matridge needs to route an event. It yields one
`Tally` per room, so the loop-stall benchmark can hand the loop back between
rooms as the plugin does (it awaits per room).

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Tally = tuple[int, int, int]  # events, events with a body, body characters


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


def matridge_walk(batch: Any) -> Iterator[Tally]:
    for room in batch.rooms:
        room_id = room.room_id
        events = bodies = chars = 0
        for events_of in (room.state, room.timeline):
            for ev in events_of:
                route = (room_id, ev.type, ev.sender, ev.event_id, ev.msgtype)
                body = ev.body
                events += 1
                if body is not None:
                    bodies += 1
                    chars += len(body)
                del route
        yield events, bodies, chars


# ---- plain dicts (json, orjson, msgspec without types) ----------------------


def walk_dicts(sync: Any) -> Iterator[Tally]:
    rooms = sync.get("rooms") or {}
    for section, parts in (
        ("join", ("state", "timeline")),
        ("invite", ("invite_state",)),
        ("leave", ("state", "timeline")),
    ):
        for room_id, room in (rooms.get(section) or {}).items():
            events = bodies = chars = 0
            for part in parts:
                for ev in (room.get(part) or {}).get("events") or ():
                    content = ev.get("content")
                    if not isinstance(content, dict):
                        content = {}
                    body = content.get("body")
                    msgtype = content.get("msgtype")
                    route = (room_id, ev.get("type"), ev.get("sender"))
                    route += (ev.get("event_id"), msgtype)
                    events += 1
                    if isinstance(body, str):
                        bodies += 1
                        chars += len(body)
                    del route
            yield events, bodies, chars


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


def _walk_typed_events(room_id: str, evs: list[Any]) -> Tally:
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
        yield _add(
            _walk_typed_events(room_id, joined.state.events),
            _walk_typed_events(room_id, joined.timeline.events),
        )
    for room_id, invited in rooms.invite.items():
        yield _walk_typed_events(room_id, invited.invite_state.events)
    for room_id, left in rooms.leave.items():
        yield _add(
            _walk_typed_events(room_id, left.state.events),
            _walk_typed_events(room_id, left.timeline.events),
        )


def _add(a: Tally, b: Tally) -> Tally:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


# ---- matrix-nio -------------------------------------------------------------


def _nio_decode(data: bytes) -> Any:
    from nio import SyncResponse

    return SyncResponse.from_dict(json.loads(data))


def _walk_objects(room_id: str, evs: Any) -> Tally:
    events = bodies = chars = 0
    for ev in evs:
        # nio routes by class (callbacks per event class); mautrix by .type.
        route = (room_id, getattr(ev, "type", None) or type(ev), ev.sender)
        route += (getattr(ev, "event_id", None), getattr(ev, "msgtype", None))
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
        yield _add(
            _walk_objects(room_id, joined.state),
            _walk_objects(room_id, joined.timeline.events),
        )
    for room_id, invited in rooms.invite.items():
        yield _walk_objects(room_id, invited.invite_state)
    for room_id, left in rooms.leave.items():
        yield _add(
            _walk_objects(room_id, left.state),
            _walk_objects(room_id, left.timeline.events),
        )


# ---- mautrix ----------------------------------------------------------------


def _mautrix_decode(data: bytes) -> Any:
    """`Syncer.handle_sync` minus dispatching: every event it would hand to
    handlers, deserialised the same way, grouped by room."""
    from mautrix.types import (
        AccountDataEvent,
        EphemeralEvent,
        Event,
        GenericEvent,
        StateEvent,
        StrippedStateEvent,
        ToDeviceEvent,
    )
    from mautrix.types.util import SerializerError

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


def mautrix_walk(decoded: Any) -> Iterator[Tally]:
    _glob, rooms = decoded
    for room_id, routed, _other in rooms:
        events = bodies = chars = 0
        for ev in routed:
            content = ev.content
            msgtype = getattr(content, "msgtype", None)
            route = (
                room_id,
                ev.type,
                ev.sender,
                getattr(ev, "event_id", None),
                msgtype,
            )
            body = getattr(content, "body", None)
            events += 1
            if isinstance(body, str):
                bodies += 1
                chars += len(body)
            del route
        yield events, bodies, chars


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
