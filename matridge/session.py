"""One XMPP user's Matrix session: login, the sync consumer, sends.

The engine runs the /sync loop; this module consumes its batches in order,
routes each event to the right MUC, then persists the batch's token (once
the XMPP server confirmed the direct messages before it: server_ack.py) and
acknowledges it so the engine fetches on. A crash therefore re-delivers the
last batch instead of losing it, and remembered event ids keep re-delivered
events from showing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slidge import BaseSession
from slidge.command import SearchResult
from slidge.core import config as slidge_config
from slidge.util.types import PseudoPresenceShow
from slidge.util.util import merge_resources
from slixmpp import JID
from slixmpp.exceptions import IqError, XMPPError
from slixmpp.types import ResourceDict

from . import config, emoji_verification, key_recovery, logsafety, profile, search
from .contact import Roster
from .crypto.cross_signing import State
from .crypto.primitives import CryptoError
from .crypto.store import remove_store, store_path
from .directs import Directs
from .encryption import STORE_KEY, Encryption
from .errors import matrix_errors
from .group import Bookmarks
from .inbound import batch as inbound
from .inbound import messages
from .matrix import (
    Event,
    MatrixClient,
    MatrixError,
    NetworkError,
    RoomInfo,
    SyncBatch,
)
from .outbound import Outbound
from .server_ack import ServerAck
from .state import AccountState
from .sync_status import SyncHealth

if TYPE_CHECKING:
    from .chat import MatrixChat

# How long the XMPP server may take to confirm what was sent (a ping's
# answer); without one, nothing since the last confirmation is recorded as
# delivered.
SERVER_ACK_TIMEOUT = 60

# How long the groups wait at a first login for the first sync, which
# describes every room at once, before describing them one request each.
INITIAL_SYNC_WAIT = 120


class _SavedData:
    """The user's stored data in slidge, as the account state's Store."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def saved(self) -> Mapping[str, Any]:
        return self._session.user.legacy_module_data

    def save(self, data: dict[str, Any]) -> None:
        self._session.legacy_module_data_update(data)


class Session(BaseSession[Roster, Bookmarks]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.matrix: MatrixClient = None  # type: ignore[assignment]  # set by login
        self.outbound: Outbound = None  # type: ignore[assignment]  # set by login
        self.directs: Directs = None  # type: ignore[assignment]  # set by login
        # None until login, and when the key store or the device failed.
        self.encryption: Encryption | None = None
        self.user_id: str = str(self.user.legacy_module_data.get("user_id", ""))
        self.state = AccountState(_SavedData(self))
        # A lock lives while a send holds or awaits it, so idle rooms cost nothing.
        self._send_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._queue: asyncio.Queue[SyncBatch | None] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self.sync_health = SyncHealth()  # read by the sync-status command
        self._initial_batch: asyncio.Future[SyncBatch | None] | None = None
        self.server_ack = ServerAck(
            self._server_took_it,
            lambda: self.user.legacy_module_data,
            self.legacy_module_data_update,
        )

    # ---- login / logout --------------------------------------------------

    async def login(self) -> str:
        data = self.user.legacy_module_data
        if "password" in data:
            # Never keep the password: older registrations may have stored it.
            self.legacy_module_data_set(
                {k: v for k, v in data.items() if k != "password"}
            )
        homeserver = data.get("homeserver")
        token = data.get("access_token")
        logsafety.remember(token if isinstance(token, str) else None)
        if not isinstance(homeserver, str) or not isinstance(token, str):
            raise RuntimeError(
                "This registration has no Matrix session. Register again with your "
                "homeserver, user name and password."
            )
        self.matrix = MatrixClient(homeserver, token, insecure=config.INSECURE_TLS)
        try:
            who = await self.matrix.whoami()
        except MatrixError as e:
            if e.status == 401:
                raise RuntimeError(
                    "Matrix no longer accepts this gateway's session (it was logged "
                    "out or revoked). Register again with your password to log in."
                ) from e
            raise RuntimeError(f"the homeserver refused us: {e.error}") from e
        except NetworkError as e:
            raise RuntimeError(f"could not reach {homeserver}: {e}") from e
        self.user_id = str(who.get("user_id", self.user_id))
        await self._start_encryption(data.get("device_id") or who.get("device_id"))
        self.outbound = Outbound(
            self.matrix,
            self.user_jid.bare,
            self.state.seen,
            self.encryption.encrypt if self.encryption else None,
        )
        self.directs = Directs(
            self.matrix,
            self.user_id,
            self.load_room_state,
            self.encryption.can_encrypt_for if self.encryption else None,
        )
        profile.apply_default_preferences(self)
        self._start_sync()
        return f"Connected as {self.user_id}"

    async def _start_encryption(self, device_id: object) -> None:
        """Opens the key store and publishes the device's keys; without
        them encrypted rooms show placeholders, and the user is told why."""
        if self.encryption is not None:
            self.encryption.close()
            self.encryption = None
        if not isinstance(device_id, str):
            self.send_gateway_message(
                "This registration does not know its Matrix device, so encrypted "
                "rooms cannot be read or written. Register again to fix it."
            )
            return
        try:
            self.encryption = await Encryption.start(
                self.matrix,
                self.user_id,
                device_id,
                store_path(Path(slidge_config.HOME_DIR), self.user_jid.bare),
                self.user.legacy_module_data,
                self.legacy_module_data_update,
            )
        except (MatrixError, NetworkError, CryptoError, OSError) as e:
            self.log.warning("End-to-end encryption is off for this session: %s", e)
            self.send_gateway_message(
                f"Encrypted Matrix rooms cannot be read or written this session ({e}). "
                "Other rooms work; log in again later to retry."
            )
            return
        self.encryption.attach(self.create_task, self._show_late)
        emoji_verification.install(self)
        key_recovery.install(
            self.encryption, self.create_task, self.send_gateway_message
        )
        self.create_task(self._tell_verification(), name="verification status")

    async def _tell_verification(self) -> None:
        """Until the user verifies the gateway's device, they are told what
        to do: other devices may keep their keys from an unverified one."""
        if self.encryption is None:
            return
        try:
            status = await self.encryption.status()
        except XMPPError as e:  # the homeserver did not answer: told at 'verify'
            self.log.info("Verification status not known: %s", e.text)
            return
        except CryptoError as e:
            self.send_gateway_message(
                f"The gateway cannot tell whether its device is verified: {e}."
            )
            return
        if status.state is not State.VERIFIED:
            self.send_gateway_message(status.sentence)

    def _start_sync(self) -> None:
        since = self.user.legacy_module_data.get("since")
        self.sync_health = SyncHealth()
        self._queue = asyncio.Queue()
        first: asyncio.Future[SyncBatch | None] = (
            asyncio.get_running_loop().create_future()
        )
        if isinstance(since, str):
            first.set_result(None)  # an incremental sync: no initial batch
        self._initial_batch = first

        def arrived(batch: SyncBatch) -> None:
            if not first.done():
                first.set_result(batch)
            self._queue.put_nowait(batch)

        self.matrix.start_sync(
            arrived,
            self._on_sync_error,
            since if isinstance(since, str) else None,
            config.SYNC_TIMEOUT_MS,
        )
        self._consumer = self.create_task(self._consume(), name=f"sync {self.user_id}")

    async def initial_batch(self) -> SyncBatch | None:
        """The first batch of an account's first sync, once it arrived (its
        rooms' state is then in the room cache); None when the sync goes on
        from a saved token, failed, or takes longer than INITIAL_SYNC_WAIT."""
        if self._initial_batch is None:
            return None
        try:
            async with asyncio.timeout(INITIAL_SYNC_WAIT):
                return await asyncio.shield(self._initial_batch)
        except TimeoutError:
            self.log.info("The first sync is slow: rooms are described one by one")
            return None

    async def logout(self) -> None:
        """Stops syncing; the Matrix session itself stays valid for re-login."""
        if self.matrix is not None:
            self.matrix.stop_sync()
        if self._consumer is not None:
            self._queue.put_nowait(None)
            consumer, self._consumer = self._consumer, None
            # slidge may have cancelled it already (unregistration does):
            # wait() never raises that cancellation into the logout.
            _, pending = await asyncio.wait({consumer}, timeout=30)
            if pending:
                consumer.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await emoji_verification.uninstall(self)
        if self.encryption is not None:
            # Sends still running hold the store; the next login opens it anew.
            self.encryption.close()
            self.encryption = None
        # What the XMPP server is confirming is saved with the last token.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self.server_ack.settled()
        self.server_ack.flush()

    async def on_unregister(self) -> None:
        """The user unregistered: the gateway's Matrix device is logged out
        (its token dies with it) and the stored token is forgotten."""
        await self.logout()
        if self.matrix is not None:
            try:
                await self.matrix.logout()
            except (MatrixError, NetworkError) as e:
                self.log.warning("Matrix logout failed: %s", e)
        data = self.user.legacy_module_data
        forgotten = ("access_token", "since", STORE_KEY)
        self.legacy_module_data_set(
            {k: v for k, v in data.items() if k not in forgotten}
        )
        # The device is gone, and its keys with it: a new registration
        # starts a new store under a new key.
        remove_store(store_path(Path(slidge_config.HOME_DIR), self.user_jid.bare))

    def create_task(
        self, coro: Coroutine[Any, Any, Any], name: str | None = None
    ) -> asyncio.Task[Any]:
        """Every task started for this session (by matridge or by slidge on
        its behalf) handles its own failure: slidge 0.5 stops the whole
        gateway on an unhandled exception in a task, and one user's failure
        must never cost the others their gateway."""
        return super().create_task(self._guarded(coro, name), name=name)

    async def _guarded(self, coro: Coroutine[Any, Any, Any], name: str | None) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except XMPPError as e:
            # Already a sentence for the user.
            self.log.warning("Task %r failed: %s", name, e.text or e.condition)
            self.send_gateway_message(e.text or f"Something failed ({e.condition}).")
        except Exception as e:
            self.log.exception("Task %r failed", name)
            self.send_gateway_message(
                f"Something went wrong on the gateway ({type(e).__name__}); your "
                "other chats go on. The gateway's log has the details."
            )
        return None

    # ---- Matrix → XMPP ---------------------------------------------------

    def _on_sync_error(self, error: Exception, fatal: bool) -> None:
        self.sync_health.failed(error, fatal)
        if not fatal:
            self.log.info("Sync failed, retrying with backoff: %s", error)
            return
        self.log.warning("Sync stopped: %s", error)
        soft = getattr(error, "soft_logout", False)
        self.send_gateway_message(
            "Matrix ended this gateway's session"
            + (" (it asks you to log in again)" if soft else " (logged out or revoked)")
            + ". Register again with your password to reconnect."
        )
        self.send_gateway_status("Disconnected: Matrix session ended", show="dnd")
        if self._initial_batch is not None and not self._initial_batch.done():
            self._initial_batch.set_result(None)
        self._queue.put_nowait(None)

    async def _consume(self) -> None:
        # Routing needs the MUCs that bookmarks.fill() creates after login.
        await asyncio.shield(self.bookmarks.ready)
        router = inbound.Router(self, self._save_progress)
        try:
            while (batch := await self._queue.get()) is not None:
                late = await self._before_timeline(batch)
                try:
                    await router.route(batch)
                except Exception:
                    # route() isolates each event; this is a bug, logged whole.
                    self.log.exception("Could not process a sync batch")
                for room_id, event_ids in late:
                    await self._show_late(room_id, event_ids)
                if self.encryption is not None:
                    # Reopened at the next use: idle accounts keep none.
                    self.encryption.store.release()
                self.sync_health.batch_done(batch.next_batch)
                self.matrix.sync_ack(batch)
        finally:
            router.close()

    async def _before_timeline(self, batch: SyncBatch) -> list[tuple[str, list[str]]]:
        """The batch's keys and device lists, before its timeline is read."""
        if self.encryption is None:
            return []
        try:
            return await self.encryption.before_timeline(batch)
        except Exception:
            # A failure here costs the keys of this batch, not its messages.
            self.log.exception("Could not process the encryption part of a batch")
            return []

    async def _show_late(self, room_id: str, event_ids: list[str]) -> None:
        """Corrects the placeholders of events whose key just came; one
        that fails costs only itself (its placeholder stays)."""
        try:
            chat = await self.chat_for(room_id)
        except Exception:
            self.log.exception("Could not show late-decrypted events of %s", room_id)
            return
        if chat is None:
            return
        for event_id in event_ids:
            try:
                event = await self.matrix.get_event(room_id, event_id)
                readable = self.readable(room_id, [event])[0]
                if not readable.encrypted:
                    await messages.show_late(chat, readable)
            except Exception:
                self.log.exception("Could not show %s, decrypted late", event_id)

    def readable(self, room_id: str, events: Iterable[Event]) -> list[Event]:
        """Events of a room as they are read: encrypted ones decrypted when
        their key is here (else left as they are, shown as placeholders)."""
        if self.encryption is None:
            return list(events)
        return self.encryption.readable(room_id, events)

    async def readable_now(self, room_id: str, events: Iterable[Event]) -> list[Event]:
        """History events as they are read, their missing keys looked for
        first (the key backup)."""
        if self.encryption is None:
            return list(events)
        return await self.encryption.readable_now(room_id, events)

    def placeholder(self, event: Event) -> str | None:
        """The text for an encrypted event that could not be read."""
        if self.encryption is None:
            return None
        return self.encryption.placeholder(event)

    def _save_progress(self, token: str) -> None:
        # Saved once the XMPP server confirmed the direct messages shown
        # before it, with their delivery marks: a batch that comes again
        # skips what they cover.
        self.server_ack.batch_done(token)

    async def _server_took_it(self) -> None:
        """Returns once the user's XMPP server answered a ping sent now,
        and so processed every stanza sent before it."""
        try:
            await self.xmpp.plugin["xep_0199"].send_ping(
                JID(self.user_jid.domain),
                ifrom=self.xmpp.boundjid,
                timeout=SERVER_ACK_TIMEOUT,
            )
        except IqError:
            pass  # an error is an answer too: what came before was processed

    async def chat_for(self, room_id: str) -> MatrixChat | None:
        """The XMPP conversation that shows a joined room: the contact of a
        direct chat, else its group chat. None if the room is not shown (a
        space, say)."""
        contact = await self.contacts.contact_for_room(room_id)
        if contact is not None:
            return contact
        return await self.bookmarks.show(room_id)

    def is_own_echo(self, event: Event) -> bool:
        """True for events this gateway sent: slidge already showed them.

        Sends whose answer came first are already in the seen ids; this
        catches those that sync delivers before the send's answer, since
        Synapse shows the transaction id only to the device that sent it."""
        return event.sender == self.user_id and event.transaction_id is not None

    # ---- finding and joining (matridge/search.py) ------------------------

    async def on_search(self, form_values: dict[str, str]) -> SearchResult | None:
        return await search.on_search(self, form_values)

    # ---- room knowledge --------------------------------------------------

    def room_info(self, room_id: str) -> RoomInfo | None:
        """A snapshot of the room from the engine's room cache, if known."""
        return self.matrix.rooms.get(room_id)

    async def load_room_state(self, room_id: str) -> RoomInfo:
        """Refreshes what we know of a room from its full state."""
        with matrix_errors("show this room's state"):
            info = await self.matrix.load_room_state(room_id)
        self.state.state_changed(room_id)
        if info is None:
            raise XMPPError("item-not-found", f"Matrix knows no room {room_id}.")
        return info

    # ---- XMPP → Matrix ---------------------------------------------------

    # ---- the user's XMPP presence and avatar (matridge.profile) --------

    async def on_presence(
        self,
        resource: str,
        show: PseudoPresenceShow,
        status: str,
        resources: dict[str, ResourceDict],
        merged_resource: ResourceDict | None,
    ) -> None:
        """The user's XMPP presence, merged over their online clients, as
        their Matrix presence (``sync_presence`` preference)."""
        if str(show) == "unavailable":  # slidge passes presence types too
            # The roster may still list the client that just went offline.
            others = {r: d for r, d in resources.items() if r != resource}
            merged_resource = merge_resources(others)
        if merged_resource is None:
            await profile.set_presence(self, "unavailable", "", all_gone=True)
            return
        await profile.set_presence(
            self,
            merged_resource["show"] or "available",
            merged_resource["status"],
            all_gone=False,
        )

    async def on_avatar(
        self,
        bytes_: bytes | None,
        hash_: str | None,
        type_: str | None,
        width: int | None,
        height: int | None,
    ) -> None:
        """The user's XMPP avatar as their Matrix avatar (``sync_avatar``).
        slidge calls this from a task at login too, where nobody would see an
        XMPP error: the user is told in a sentence instead."""
        try:
            await profile.set_avatar(self, bytes_, type_)
        except XMPPError as e:
            self.log.warning("Avatar not set on Matrix: %s", e.text)
            self.send_gateway_message(
                e.text or "Your avatar could not be set on Matrix."
            )
