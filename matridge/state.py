"""What one account's session remembers: bounded maps, and the per-account
state the rest of the plugin reads and writes.

- :class:`Bounded` — the one bounded map (oldest forgotten first) behind
  every cache here: seen event ids, recent events, remembered reactions.
- :class:`ChatMemory` — what one room's conversation remembers between
  events (slidge makes a new MUC or Contact object for each lookup, so it
  cannot live there).
- :class:`AccountState` — the seen ids, the rooms' memories, and the
  announced rooms, saved with the user's registration (the direct chats'
  delivery marks are :mod:`matridge.server_ack`'s).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from . import config
from .matrix import Event

# Reactions remembered per room, to undo them when they are redacted.
REMEMBERED_REACTIONS = 2000


class Bounded[K, V]:
    """A map that keeps at most `size` entries, forgetting the least
    recently written first."""

    def __init__(self, size: int) -> None:
        self._size = max(size, 1)
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def items(self) -> Iterator[tuple[K, V]]:
        return iter(self._items.items())


class RecentIds(Bounded[str, None]):
    """A bounded set of ids."""

    def add(self, item: str) -> None:
        self.put(item, None)


class Reaction(NamedTuple):
    target: str  # the event reacted to
    sender: str
    key: str


class ReactionLog(Bounded[str, Reaction]):
    """Reaction event id → (target, sender, key) for the recent reactions of
    one room: a redacted reaction no longer says what it was. It also knows
    for which (target, sender) it holds every reaction, so that those need
    not be read from the homeserver again."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self._complete: set[tuple[str, str]] = set()

    def put(self, key: str, value: Reaction) -> None:
        new, before = key not in self, len(self)
        super().put(key, value)
        if new and len(self) == before:
            # The oldest was forgotten to make room: no set is known whole.
            self._complete.clear()

    def is_complete(self, target: str, sender: str) -> bool:
        return (target, sender) in self._complete

    def mark_complete(self, target: str, sender: str) -> None:
        self._complete.add((target, sender))

    def keys(self, target: str, sender: str) -> dict[str, str]:
        """The remembered reactions of `sender` on `target`: key → event id."""
        return {
            r.key: event_id
            for event_id, r in self.items()
            if r.target == target and r.sender == sender
        }


@dataclass
class ChatMemory:
    # Recent messages as the decoder's lazy views, for quoting replies. A
    # view keeps its batch (or history) alive: the bound keeps that small.
    recent: Bounded[str, Event] = field(
        default_factory=lambda: Bounded(config.RECENT_EVENTS_CACHE)
    )
    # Reaction event id → (target, sender, key), for redactions of reactions.
    reactions: ReactionLog = field(
        default_factory=lambda: ReactionLog(REMEMBERED_REACTIONS)
    )
    # The Matrix users shown as composing now.
    typing: set[str] = field(default_factory=set)
    # The event of the user's last read receipt sent from XMPP (its return
    # through sync is not shown again).
    own_read_receipt: str | None = None
    # Whether Matrix was last told the user is typing.
    typing_sent: bool = False
    # The names that make a mention in the user's messages (name shown →
    # user id), built from the members once and kept until the room's
    # state changes (see AccountState.state_changed).
    mention_names: dict[str, str] | None = None


class Store(Protocol):
    """Where the session keeps what survives a restart (slidge's
    ``legacy_module_data`` of the user)."""

    @property
    def saved(self) -> Mapping[str, Any]: ...

    def save(self, data: dict[str, Any]) -> None: ...


class AccountState:
    """The memory of one account's session."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Event ids already shown (or deliberately skipped).
        self.seen = RecentIds(config.MESSAGE_ID_MEMORY)
        self._memories: dict[str, ChatMemory] = {}
        # Rooms whose invitation was shown since the gateway started.
        self.invitations_sent: set[str] = set()
        self._announced: set[str] | None = None  # read once, then kept

    # ---- per room ----------------------------------------------------------

    def memory(self, room_id: str) -> ChatMemory:
        """What the conversation of `room_id` remembers between events."""
        memory = self._memories.get(room_id)
        if memory is None:
            memory = self._memories[room_id] = ChatMemory()
        return memory

    def state_changed(self, room_id: str) -> None:
        """The room cache has new state for `room_id` (a sync batch or a
        full state load): what was derived from its members goes."""
        memory = self._memories.get(room_id)
        if memory is not None:
            memory.mention_names = None

    def forget_room(self, room_id: str) -> None:
        """A left room's memory goes: its recent events hold their sync
        batches alive."""
        self._memories.pop(room_id, None)

    # ---- announced rooms (saved) -------------------------------------------

    @property
    def announced(self) -> frozenset[str]:
        """Rooms already added to the user's bookmarks or invited to."""
        if self._announced is None:
            rooms = self._store.saved.get("announced_rooms")
            self._announced = set(rooms) if isinstance(rooms, list) else set()
        return frozenset(self._announced)

    def remember_announced(self, room_id: str) -> None:
        if room_id not in self.announced:
            assert self._announced is not None
            self._announced.add(room_id)
            self._store.save({"announced_rooms": sorted(self._announced)})

    def forget_announced(self, room_id: str) -> None:
        if room_id in self.announced:
            assert self._announced is not None
            self._announced.discard(room_id)
            self._store.save({"announced_rooms": sorted(self._announced)})
