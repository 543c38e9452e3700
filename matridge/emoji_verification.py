"""Emoji verification as the XMPP user lives it: what crypto/sas.py and
crypto/secret_sharing.py do, told in words in the gateway's chat, and the
user's answers (the chat and ad-hoc commands of emoji_commands.py).

A verification starts from the user's other Matrix device (they are told
and accept with 'emoji accept') or from here ('emoji-verify'). The emoji
and numbers are shown here; 'emoji match' or 'emoji mismatch' answers.
Once verified, the gateway asks the user's verified devices for the
cross-signing keys and the key backup key, and signs its own device with
the self-signing key when it comes.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from slixmpp.exceptions import XMPPError

from . import config, logsafety
from .crypto.cross_signing import (
    MASTER,
    MEGOLM_BACKUP,
    SELF_SIGNING,
    USER_SIGNING,
    Status,
)
from .crypto.primitives import CryptoError
from .crypto.sas import Phase, Verification, Verifications
from .crypto.secret_sharing import SecretRequests
from .errors import matrix_errors

if TYPE_CHECKING:
    from .encryption import Encryption

log = logging.getLogger(__name__)


class Session(Protocol):
    """What of matridge's Session is used here (session.py imports this
    module, so not the class itself)."""

    @property
    def encryption(self) -> Encryption | None: ...

    def send_gateway_message(self, text: str) -> None: ...

    def create_task(
        self, coro: Coroutine[Any, Any, Any], name: str | None = None
    ) -> asyncio.Task[Any]: ...


_OF_SESSION: weakref.WeakKeyDictionary[Session, EmojiVerification] = (
    weakref.WeakKeyDictionary()
)

_SECRET_WORDS = {
    MASTER: "master key",
    SELF_SIGNING: "self-signing key",
    USER_SIGNING: "user-signing key",
    MEGOLM_BACKUP: "key backup key",
}


def install(session: Session) -> None:
    """Plugs emoji verification into the session's encryption (at each
    login, once the encryption started)."""
    encryption = session.encryption
    if encryption is None:
        return
    old = _OF_SESSION.pop(session, None)
    if old is not None:
        old.close()
    ev = EmojiVerification(session, encryption)
    _OF_SESSION[session] = ev
    encryption.on_to_device("m.key.verification.", ev.verifications.handle)
    encryption.on_to_device("m.secret.send", ev.secrets.handle)


async def uninstall(session: Session) -> None:
    """At logout: no verification outlives its session. The other device
    hears it was cancelled, and no timer fires after the client is gone."""
    ev = _OF_SESSION.pop(session, None)
    if ev is not None:
        await ev.verifications.end("The gateway's session ended")


def of(session: Session) -> EmojiVerification:
    """The session's emoji verification, or an error the user reads."""
    ev = _OF_SESSION.get(session)
    if ev is None or session.encryption is None:
        raise XMPPError(
            "feature-not-implemented",
            "End-to-end encryption is off for this session, so this gateway's "
            "device cannot be verified.",
        )
    return ev


class EmojiVerification:
    """One session's verifications (the :class:`sas.Listener`)."""

    def __init__(self, session: Session, encryption: Encryption) -> None:
        self.session = session
        self.device = encryption.device
        self.verifications = Verifications(
            encryption.device,
            self,
            timeout=float(config.EMOJI_VERIFICATION_TIMEOUT_SECONDS),
        )
        self.secrets = SecretRequests(
            encryption.matrix, encryption.device, self._secrets_came
        )

    def close(self) -> None:
        self.verifications.close()

    def _tell(self, text: str) -> None:
        self.session.send_gateway_message(text)

    def _label(self, device_id: str | None) -> str:
        keys = self.device.devices(self.device.user_id).get(device_id or "") or {}
        unsigned = keys.get("unsigned")
        name = (
            unsigned.get("device_display_name") if isinstance(unsigned, dict) else None
        )
        return f"“{name}” ({device_id})" if isinstance(name, str) else str(device_id)

    # -- what the user is told ----------------------------------------------

    async def requested(self, v: Verification) -> None:
        self._tell(
            f"Your Matrix device {self._label(v.device_id)} asks to verify this "
            "gateway's device by comparing emoji. Send 'emoji accept' to go on, "
            "or 'emoji cancel'."
        )

    async def show(
        self, v: Verification, emoji: list[tuple[str, str]], decimals: tuple[int, ...]
    ) -> None:
        lines = "\n".join(f"{symbol}  {name}" for symbol, name in emoji)
        numbers = " ".join(str(n) for n in decimals)
        # slixmpp logs stanzas with --debug: the SAS stays out of the log.
        logsafety.remember(lines)
        logsafety.remember(numbers)
        self._tell(
            f"Compare these emoji with those your device {self._label(v.device_id)} "
            f"shows:\n{lines}\n(or the numbers {numbers})\n"
            "If they are the same, in the same order, send 'emoji match'; "
            "if not, send 'emoji mismatch'."
        )

    async def verified(self, v: Verification) -> None:
        self._tell(
            f"Verified: your device {self._label(v.device_id)} and this gateway "
            "confirmed each other. Asking your verified devices for your "
            "cross-signing keys and your key backup key…"
        )
        self.session.create_task(self._ask_secrets(), name="secret requests")

    async def cancelled(
        self, v: Verification, code: str, reason: str, by_us: bool
    ) -> None:
        if code == "m.mismatched_sas":
            text = (
                "The emoji did not match: the verification was cancelled and "
                "nothing was trusted. Try again; if they differ again, someone "
                "may be interfering."
            )
        elif code == "m.timeout":
            text = "The emoji verification took too long and was cancelled."
        elif code == "m.accepted":
            text = "The verification was answered on another of your devices."
        elif by_us:
            text = f"The emoji verification was cancelled ({reason or code})."
        else:
            text = (
                f"Your device {self._label(v.device_id)} cancelled the emoji "
                f"verification ({reason or code})."
            )
        self._tell(text)

    async def _ask_secrets(self) -> None:
        with matrix_errors("ask your devices for your keys"):
            asked = await self.secrets.request()
        if not asked:
            self._tell(
                "None of your other devices is verified (cross-signed), so none "
                "was asked for your keys. Give your recovery key with 'verify' "
                "instead."
            )

    async def _secrets_came(self, kept: list[str], status: Status | None) -> None:
        if status is not None:
            self._tell(status.sentence)
        elif kept:
            words = ", ".join(_SECRET_WORDS.get(name, name) for name in kept)
            self._tell(f"Received from your verified device: {words}.")

    # -- what the user answers ------------------------------------------------

    def _current(self, *phases: Phase) -> Verification:
        v = self.verifications.current()
        if v is None or (phases and v.phase not in phases):
            raise XMPPError("bad-request", "No emoji verification is waiting for that.")
        return v

    async def accept(self) -> str:
        v = self._current(Phase.INCOMING)
        with matrix_errors("accept the verification"):
            await self.verifications.accept(v)
        return (
            f"Accepted. Choose to compare emoji on your device "
            f"{self._label(v.device_id)}; the emoji will show here."
        )

    async def confirm(self, matches: bool) -> str:
        v = self._current(Phase.SHOWN)
        with matrix_errors("answer the verification"):
            await self.verifications.confirm(v, matches)
        if not matches:
            return "Cancelled."
        if v.phase is Phase.CANCELLED:
            return "The verification failed: the other device's keys did not check out."
        return "Confirmed; waiting for your other device to confirm too."

    async def cancel(self) -> str:
        v = self._current()
        with matrix_errors("cancel the verification"):
            await self.verifications.cancel(v)
        return "Cancelled."

    async def start(self, which: Sequence[str]) -> str:
        """Asks the named devices (all the user's others when none or
        'all') to verify the gateway's device."""
        own = self.device.user_id
        with matrix_errors("list your devices"):
            await self.device.refresh_own_devices()
        others = [d for d in self.device.devices(own) if d != self.device.device_id]
        wanted = [d for d in which if d.lower() != "all"] or others
        unknown = [d for d in wanted if d not in others]
        if unknown:
            raise XMPPError(
                "item-not-found",
                f"No other device of yours is called {', '.join(unknown)}. "
                f"Your devices: {', '.join(others) or 'none'}.",
            )
        if not wanted:
            raise XMPPError("item-not-found", "You have no other Matrix device.")
        try:
            with matrix_errors("send the verification request"):
                await self.verifications.request(wanted)
        except CryptoError as e:
            raise XMPPError("item-not-found", str(e)) from None
        return (
            "Verification request sent to "
            f"{', '.join(self._label(d) for d in wanted)}. Accept it there; the "
            "emoji will show here."
        )
