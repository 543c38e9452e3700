"""What the session knows about each Matrix room: name, topic, members.

It is filled from full room state when a MUC is first built and kept current
from every /sync batch, so routing an event never needs a request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .util import localpart


@dataclass
class Member:
    user_id: str
    display_name: str | None = None
    membership: str = "join"

    @property
    def nick(self) -> str:
        return self.display_name or localpart(self.user_id)


@dataclass
class RoomInfo:
    room_id: str
    name: str | None = None
    topic: str | None = None
    canonical_alias: str | None = None
    is_space: bool = False
    encrypted: bool = False
    power_levels: dict[str, int] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)

    def apply_state(
        self, event_type: str | None, state_key: str | None, content: dict[str, Any]
    ) -> None:
        """Updates this room from one state event (its type, key and content)."""
        if state_key is None:
            return
        if event_type == "m.room.name":
            self.name = _str(content.get("name"))
        elif event_type == "m.room.topic":
            self.topic = _str(content.get("topic"))
        elif event_type == "m.room.canonical_alias":
            self.canonical_alias = _str(content.get("alias"))
        elif event_type == "m.room.encryption":
            self.encrypted = True  # it can never be turned off again
        elif event_type == "m.room.create":
            self.is_space = content.get("type") == "m.space"
        elif event_type == "m.room.power_levels":
            users = content.get("users")
            if isinstance(users, dict):
                self.power_levels = {
                    k: v for k, v in users.items() if isinstance(v, int)
                }
        elif event_type == "m.room.member" and state_key.startswith("@"):
            membership = _str(content.get("membership")) or "leave"
            self.members[state_key] = Member(
                state_key, _str(content.get("displayname")), membership
            )

    def apply_state_events(self, events: Iterable[dict[str, Any]]) -> None:
        for ev in events:
            content = ev.get("content")
            self.apply_state(
                _str(ev.get("type")),
                _str(ev.get("state_key")),
                content if isinstance(content, dict) else {},
            )

    def joined(self) -> list[Member]:
        return [m for m in self.members.values() if m.membership == "join"]

    def display_name(self, own_user_id: str) -> str:
        """The room's name as the Matrix spec computes it for a client."""
        if self.name:
            return self.name
        if self.canonical_alias:
            return self.canonical_alias
        others = sorted(
            (m.nick for m in self.joined() if m.user_id != own_user_id),
            key=str.casefold,
        )
        if not others:
            return "Empty room"
        if len(others) == 1:
            return others[0]
        if len(others) <= 3:
            return ", ".join(others[:-1]) + " and " + others[-1]
        return f"{', '.join(others[:2])} and {len(others) - 2} others"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
