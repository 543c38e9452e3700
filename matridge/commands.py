"""Commands matridge adds to slidge's: each is an ad-hoc command (XEP-0050) and
a chat command (a message to the gateway's JID starting with CHAT_COMMAND)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slidge.command import (
    Command,
    CommandAccess,
    FormField,
    TableResult,
)
from slidge.command.base import FormSession, FormValues
from slixmpp import JID
from slixmpp.exceptions import XMPPError

from . import logsafety, verification
from .errors import logged_in, matrix_errors
from .ids import is_user_id, jid_local_to_matrix_id, room_jid
from .matrix import RoomInfo
from .search import join_room, normalise_address, room_result

if TYPE_CHECKING:
    from .session import Session

NODE = "https://slidge.im/command/matridge/"


def _joined_rooms(session: Session) -> list[RoomInfo]:
    """The rooms shown as group chats: joined, not spaces, not direct chats
    (those are contacts); sorted by name."""
    rooms = session.matrix.rooms
    joined = [
        info
        for room_id in rooms.room_ids()
        if session.directs.user_of(room_id) is None
        and (info := rooms.get(room_id)) is not None
        and info.membership == "join"
        and not info.is_space
    ]
    return sorted(joined, key=lambda r: (r.display_name.casefold(), r.room_id))


class Logout(Command):  # type: ignore[type-arg]
    NAME = "🔌 Disconnect from Matrix"
    HELP = (
        "Stop receiving from and sending to Matrix, keeping your registration; "
        "'re-login' reconnects and delivers what arrived in between."
    )
    CHAT_COMMAND = "logout"
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(self, session: Session | None, _ifrom: Any, *_: str) -> str:
        assert session is not None
        await session.logout()
        session.logged = False
        session.send_gateway_status("Disconnected from Matrix", show="xa")
        return "Disconnected from Matrix. Send 're-login' to reconnect."


class ListRooms(Command):  # type: ignore[type-arg]
    NAME = "📋 List your Matrix rooms"
    HELP = "Your joined Matrix rooms: name, alias, member count and group chat JID."
    CHAT_COMMAND = "rooms"
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(self, session: Session | None, _ifrom: Any, *_: str) -> TableResult:
        s = logged_in(session)
        await s.ready
        return TableResult(
            description="Your Matrix rooms",
            fields=[
                FormField("name", "Name"),
                FormField("alias", "Alias"),
                FormField("members", "Members"),
                FormField("jid", "Group chat", type="jid-single"),
            ],
            items=[
                {
                    "name": info.display_name,
                    "alias": info.canonical_alias or "",
                    "members": str(info.joined_count),
                    "jid": str(room_jid(s.xmpp.boundjid.bare, info.room_id)),
                }
                for info in _joined_rooms(s)
            ],
            jids_are_mucs=True,
        )


class JoinRoom(Command):  # type: ignore[type-arg]
    NAME = "🚪 Join a Matrix room"
    HELP = (
        "Join a Matrix room by its alias (#room:example.org) or id (!abc…); "
        "answers with its group chat JID. Chat: join #room:example.org"
    )
    CHAT_COMMAND = "join"
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(
        self, session: Session | None, _ifrom: Any, *args: str
    ) -> TableResult | FormSession[Session]:
        s = logged_in(session)
        await s.ready
        if args:
            return await self.join(s, " ".join(args))
        return FormSession(
            title="Join a Matrix room",
            instructions="The room's alias (#room:example.org) or id (!abc…).",
            fields=[FormField("address", "Room alias or id", required=True)],
            handler=self.finish,
        )

    async def finish(
        self, values: FormValues, session: Session | None, _ifrom: JID
    ) -> TableResult:
        return await self.join(logged_in(session), str(values.get("address") or ""))

    @staticmethod
    async def join(session: Session, address: str) -> TableResult:
        muc = await join_room(session, address)
        return room_result(muc, "You joined this Matrix room")


class LeaveRoom(Command):  # type: ignore[type-arg]
    NAME = "👋 Leave a Matrix room"
    HELP = (
        "Leave one of your Matrix rooms: on Matrix, and its group chat goes from "
        "your bookmarks. Chat: leave, or leave #room:example.org"
    )
    CHAT_COMMAND = "leave"
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(
        self, session: Session | None, _ifrom: Any, *args: str
    ) -> str | FormSession[Session]:
        s = logged_in(session)
        await s.ready
        if args:
            return await self.leave(s, " ".join(args))
        rooms = _joined_rooms(s)
        if not rooms:
            raise XMPPError("item-not-found", "You are in no Matrix room.")
        return FormSession(
            title="Leave a Matrix room",
            instructions="The room you leave, on Matrix and here.",
            fields=[
                FormField(
                    "room",
                    "Room",
                    required=True,
                    type="list-single",
                    options=[
                        {
                            "label": _room_label(info),
                            "value": info.room_id,
                        }
                        for info in rooms
                    ],
                )
            ],
            handler=self.finish,
        )

    async def finish(
        self, values: FormValues, session: Session | None, _ifrom: JID
    ) -> str:
        return await self.leave(logged_in(session), str(values.get("room") or ""))

    @staticmethod
    async def leave(session: Session, which: str) -> str:
        room_id = _find_joined_room(session, which.strip())
        info = session.room_info(room_id)
        name = info.display_name if info else room_id
        # Before leaving: afterwards the room's state is no longer readable.
        muc = await session.bookmarks.by_legacy_id(room_id)
        # Forgotten before the leave, so that the leave coming back through
        # sync (possibly before the answer to ours) is not handled a second
        # time; remembered again if Matrix refuses it.
        session.state.forget_announced(room_id)
        try:
            with matrix_errors(f"leave {name}"):
                await session.matrix.leave(room_id)
        except XMPPError:
            session.state.remember_announced(room_id)
            raise
        await muc.remove_from_bookmarks()
        await session.bookmarks.remove(muc, reason="You left this room.")
        await _until_synced_out(session, room_id)
        return f"You left {name} on Matrix."


async def _until_synced_out(session: Session, room_id: str, within: float = 10) -> None:
    """Waits (a little) for sync to bring the leave into the room cache, so
    that 'rooms' right after 'leave' no longer lists the room."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        info = session.room_info(room_id)
        if info is None or info.membership != "join" or not session.matrix.syncing:
            return
        await asyncio.sleep(0.1)


def _room_label(info: RoomInfo) -> str:
    alias = f" ({info.canonical_alias})" if info.canonical_alias else ""
    return info.display_name + alias


def _find_joined_room(session: Session, which: str) -> str:
    """The joined room that ``which`` names: a room id, an alias, or the group
    chat's JID."""
    if "@" in which and which.endswith(session.xmpp.boundjid.bare):
        which = jid_local_to_matrix_id(JID(which).node)
    which = normalise_address(which)
    for info in _joined_rooms(session):
        if which == info.room_id or which in (info.canonical_alias, *info.alt_aliases):
            return info.room_id
    raise XMPPError(
        "item-not-found",
        f"You are not in a Matrix room {which}. Send 'rooms' to list yours.",
    )


class CreateRoom(Command):  # type: ignore[type-arg]
    NAME = "🆕 Create a Matrix room"
    HELP = (
        "Create a private Matrix room with a name, an optional topic and people "
        "to invite (Matrix ids); answers with its group chat JID."
    )
    CHAT_COMMAND = "create-room"
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(
        self, session: Session | None, _ifrom: Any, *args: str
    ) -> TableResult | FormSession[Session]:
        s = logged_in(session)
        await s.ready
        if args:
            return await self.create(s, " ".join(args), None, [])
        return FormSession(
            title="Create a Matrix room",
            instructions=(
                "A private room. Invite people by their Matrix ids "
                "(@alice:example.org), separated by spaces; a space alone for "
                "nobody."
            ),
            fields=[
                FormField("name", "Name", required=True),
                FormField("topic", "Topic (optional)"),
                # Not text-multi: slidge 0.4 refuses its ad-hoc submissions.
                FormField("invite", "Invite (Matrix ids, separated by spaces)"),
            ],
            handler=self.finish,
        )

    async def finish(
        self, values: FormValues, session: Session | None, _ifrom: JID
    ) -> TableResult:
        raw = values.get("invite") or []
        if isinstance(raw, list):
            lines = [str(x) for x in raw]
        else:
            lines = [str(raw)] if isinstance(raw, str) else []
        topic = str(values.get("topic") or "").strip() or None
        return await self.create(
            logged_in(session), str(values.get("name") or ""), topic, lines
        )

    @staticmethod
    async def create(
        session: Session, name: str, topic: str | None, invite_lines: list[str]
    ) -> TableResult:
        name = name.strip()
        if not name:
            raise XMPPError("bad-request", "Give the new room a name.")
        invitees = [u for line in invite_lines for u in re.split(r"[\s,]+", line) if u]
        bad = [u for u in invitees if not is_user_id(u)]
        if bad:
            raise XMPPError(
                "bad-request",
                f"Not Matrix user ids: {', '.join(bad)}. They look like "
                "@alice:example.org.",
            )
        with matrix_errors(f"create the room {name}"):
            room_id = await session.matrix.create_room(
                name=name, topic=topic, invite=invitees, preset="private_chat"
            )
        # Its complete state, read once: slidge hands it to update_info.
        info = await session.load_room_state(room_id)
        muc = await session.bookmarks.show(room_id, info)
        if muc is None:
            raise XMPPError(
                "internal-server-error", f"The new room {room_id} cannot be shown."
            )
        if muc.name != name:
            # A sync taken while Matrix was still creating the room showed it
            # first, nameless.
            await muc.update_info(info)
        return room_result(muc, f"Your new Matrix room {name}")


class Verify(Command):  # type: ignore[type-arg]
    NAME = "🔑 Verify the gateway's Matrix device"
    HELP = (
        "Whether your other Matrix devices can trust the gateway's, and the way "
        "to make them: your recovery key or security passphrase, or a new "
        "cross-signing identity if your account has none. Chat: verify, "
        "verify <recovery key or passphrase>, verify create"
    )
    CHAT_COMMAND = verification.COMMAND
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(
        self, session: Session | None, _ifrom: Any, *args: str
    ) -> str | FormSession[Session]:
        # slidge split the message at single spaces: joined back, it is
        # exactly what the user typed. Masked before anything can log it.
        text = " ".join(args)
        creating = text.strip().casefold() == verification.CREATE
        if not creating:
            logsafety.remember(text)
        ad_hoc = verification.run_from_ad_hoc()
        try:
            s = logged_in(session)
            if not args:
                return await verification.status(s, ad_hoc)
            if creating:
                return await verification.create_identity(s)
            return await verification.verify(s, text, ad_hoc)
        except XMPPError as e:
            if ad_hoc:
                raise
            # slidge would answer a chat command's error as a tuple.
            return e.text or "The gateway's device could not be verified."


class SyncStatus(Command):  # type: ignore[type-arg]
    NAME = "📡 Matrix sync status"
    HELP = (
        "Whether the gateway is connected to Matrix, when it last synced, how "
        "many rooms you are in, and the last error."
    )
    CHAT_COMMAND = "sync-status"
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER

    async def run(self, session: Session | None, _ifrom: Any, *_: str) -> str:
        assert session is not None
        return describe_sync(session)


def describe_sync(session: Session) -> str:
    matrix = session.matrix
    health = session.sync_health
    if matrix is None:
        return "Connection: not connected (no Matrix session; try 're-login')."
    running = matrix.syncing
    if health.stopped is not None:
        state = f"stopped: {health.stopped}"
    elif not session.logged or not running:
        state = "disconnected (send 're-login' to reconnect)"
    elif health.last_error is not None:
        state = f"reconnecting after an error: {health.last_error}"
    elif health.last_batch_at is None:
        state = "connecting (no sync answer yet)"
    else:
        state = "connected"
    lines = [
        f"Connection: {state}",
        f"Matrix account: {session.user_id} on {matrix.homeserver}",
    ]
    age = health.age()
    if health.last_batch_at is None or age is None:
        lines.append("Last sync: none since login")
    else:
        when = datetime.fromtimestamp(health.last_batch_at, UTC)
        lines.append(
            f"Last sync: {when:%Y-%m-%d %H:%M:%S} UTC ({age:.0f} s ago), "
            f"{health.batches} batches since login"
        )
    lines.append(f"Sync token: {health.next_batch or 'none yet'}")
    lines.append(f"Joined rooms: {len(_joined_rooms(session))}")
    lines.append(f"Sync loop: {'running' if running else 'stopped'}")
    return "\n".join(lines)
