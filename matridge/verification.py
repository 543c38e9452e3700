"""What the ``verify`` command says and does: the gateway's Matrix device
verified with the user's recovery key or security passphrase, or signed by
a cross-signing identity the gateway creates for an account that has none
(matridge/crypto/cross_signing.py does the work; this is the conversation).

The secret the user gives is masked in the logs before anything else
happens to it, never echoed back, and never asked for in a chat exchange
(each answer would be a message of its own, logged with ``--debug`` and
kept in the user's archives): as a chat command it comes in one message,
``verify <recovery key or passphrase>``, whose body logsafety masks.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from slidge.command import FormField
from slidge.command.adhoc import AdhocProvider
from slidge.command.base import FormSession, FormValues
from slixmpp import JID
from slixmpp.exceptions import XMPPError
from slixmpp.types import ErrorConditions

from . import logsafety
from .crypto.cross_signing import (
    CrossSigningError,
    IdentityExists,
    IdentityMismatch,
    NoIdentity,
    State,
    Status,
)
from .crypto.primitives import CryptoError
from .crypto.secret_storage import SecretStorageError
from .errors import logged_in

if TYPE_CHECKING:
    from .encryption import Encryption
    from .session import Session

COMMAND = "verify"
CREATE = "create"
# The form fields. "recovery_key" is one of the names logsafety masks.
SECRET_FIELD = "recovery_key"
CREATE_FIELD = "create"

_CHAT_SECRET = (
    f"Send '{COMMAND} ' followed by your recovery key or security passphrase "
    "(the ad-hoc command keeps it out of your chat history)."
)
_CHAT_CREATE = (
    f"Send '{COMMAND} {CREATE}' to have the gateway create one, or set up "
    f"recovery in Element and send '{COMMAND} ' followed by your recovery key."
)
# Why creating an identity in the gateway is the second choice.
_CREATION_CAVEAT = (
    "The gateway keeps the new identity's private keys and does not put them "
    "in secret storage, so your other Matrix clients cannot verify "
    "themselves against it: if you use Element too, rather set up recovery "
    "there and give the gateway your recovery key."
)


class Refused(XMPPError):
    """Verification did not happen; ``text`` says why and what to do."""

    def __init__(self, condition: ErrorConditions, text: str) -> None:
        super().__init__(condition, text)


def run_from_ad_hoc() -> bool:
    """Whether the command runs as an ad-hoc command rather than a chat
    message: slidge calls ``Command.run`` the same way for both, and only
    an ad-hoc form may ask for the secret. Anything else counts as chat,
    which never asks for it."""
    frame = sys._getframe(1)
    while frame is not None:
        if isinstance(frame.f_locals.get("self"), AdhocProvider):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def encryption_of(session: Session) -> Encryption:
    if session.encryption is None:
        raise Refused(
            "service-unavailable",
            "End-to-end encryption is off for this session (at login the "
            "gateway could not open its key store or publish its device's "
            "keys), so there is no device to verify. Send 'logout' and then "
            "'re-login' to try again.",
        )
    return session.encryption


async def current_status(encryption: Encryption) -> Status:
    try:
        return await encryption.status()
    except CryptoError as e:
        # What the homeserver publishes does not check out.
        raise Refused(
            "service-unavailable",
            f"The gateway cannot tell whether its device is verified: {e}.",
        ) from None


async def status(session: Session, ad_hoc: bool) -> str | FormSession[Session]:
    """The device's status; in an ad-hoc command, the form that acts on it."""
    current = await current_status(encryption_of(session))
    if current.state is State.VERIFIED:
        return current.sentence
    if current.state is State.UNSIGNED:
        if not ad_hoc:
            return f"{current.sentence} {_CHAT_SECRET}"
        return FormSession(
            title="Verify this gateway's Matrix device",
            instructions=current.sentence,
            fields=[
                FormField(
                    SECRET_FIELD,
                    "Recovery key or security passphrase",
                    required=True,
                    private=True,
                )
            ],
            handler=_with_secret,
        )
    if not ad_hoc:
        return f"{current.sentence} {_CHAT_CREATE}"
    return FormSession(
        title="Create a cross-signing identity",
        instructions=f"{current.sentence} {_CREATION_CAVEAT}",
        fields=[
            FormField(
                CREATE_FIELD,
                "Create a cross-signing identity and sign this device with it",
                type="boolean",
                value="false",
            )
        ],
        handler=_create_if_asked,
    )


async def verify(session: Session, secret: str, ad_hoc: bool) -> str:
    """Verifies the device with the recovery key or passphrase."""
    logsafety.remember(secret)
    logsafety.remember("".join(secret.split()))
    if not secret.strip():
        raise Refused("bad-request", "Give your recovery key or security passphrase.")
    encryption = encryption_of(session)
    try:
        done = await encryption.verify(secret)
    except NoIdentity as e:
        how = (
            f"run '{COMMAND}' again to create one"
            if ad_hoc
            else f"send '{COMMAND} {CREATE}' to create one"
        )
        raise Refused("item-not-found", f"{_sentence(e)} ({how}).") from None
    except IdentityMismatch as e:
        raise Refused(
            "conflict",
            f"{_sentence(e)}. Your identity was probably reset in another "
            "client: set up recovery again there and give the new recovery key.",
        ) from None
    except (SecretStorageError, CrossSigningError) as e:
        raise Refused(
            "not-acceptable", f"{_sentence(e)}. Nothing was verified."
        ) from None
    except CryptoError as e:
        raise Refused(
            "internal-server-error",
            f"This gateway's device could not be verified ({e}). Nothing was verified.",
        ) from None
    return _done(done, "Verified with your secret storage.")


async def create_identity(session: Session) -> str:
    """Creates an identity for an account that has none; never replaces one."""
    encryption = encryption_of(session)
    current = await current_status(encryption)
    if current.state is State.VERIFIED:
        return f"Nothing was changed. {current.sentence}"
    try:
        done = await encryption.create_identity()
    except IdentityExists as e:
        raise Refused("conflict", f"{_sentence(e)}. Nothing was changed.") from None
    except CrossSigningError as e:
        raise Refused(
            "not-acceptable", f"{_sentence(e)}. Nothing was created."
        ) from None
    except CryptoError as e:
        raise Refused(
            "internal-server-error",
            f"No cross-signing identity could be created ({e}).",
        ) from None
    return _done(done, "Your Matrix account now has a cross-signing identity.")


async def _with_secret(values: FormValues, session: Session | None, _ifrom: JID) -> str:
    secret = values.get(SECRET_FIELD)
    return await verify(
        logged_in(session), secret if isinstance(secret, str) else "", True
    )


async def _create_if_asked(
    values: FormValues, session: Session | None, _ifrom: JID
) -> str:
    if values.get(CREATE_FIELD) is not True:
        return "Nothing was created. This gateway's device stays unverified."
    return await create_identity(logged_in(session))


def _done(result: Status, what: str) -> str:
    # The status as the homeserver now shows it, not as we hope it is.
    return f"{what} {result.sentence}"


def _sentence(e: Exception) -> str:
    text = str(e)
    return text[:1].upper() + text[1:]
