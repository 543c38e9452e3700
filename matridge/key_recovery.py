"""Getting the keys of messages this gateway's device was never sent:
the user's server-side key backup, and the user's other devices. Plugs
matridge/crypto/backup.py and key_requests.py into a session's
:class:`Encryption` (:func:`install`), and keeps the backup filled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from .crypto.backup import KeyBackup
from .crypto.key_requests import REQUEST, KeyRequests
from .encryption import Encryption
from .matrix import MatrixError, NetworkError

log = logging.getLogger(__name__)

# Our own new sessions (sending creates them, no sync batch tells of them)
# reach the backup at least this often.
UPLOAD_INTERVAL_S = 600.0


@dataclass(slots=True)
class KeyRecovery:
    """What :func:`install` plugged in, for commands and tests."""

    backup: KeyBackup
    requests: KeyRequests
    nudge: asyncio.Event


def install(
    encryption: Encryption,
    spawn: Callable[[Coroutine[Any, Any, Any], str], object],
    tell: Callable[[str], None] | None = None,
) -> KeyRecovery:
    """Registers the key backup and key requests with ``encryption`` and
    starts (with ``spawn``) the task that uploads new sessions to the backup.
    ``tell`` gets, once each, the sentences saying why the user's key backup
    is not used (a backup that is there but not signed by them, say)."""
    told: set[str] = set()

    def refused(sentence: str) -> None:
        if tell is not None and sentence not in told:
            told.add(sentence)
            tell(sentence[:1].upper() + sentence[1:] + ".")

    backup = KeyBackup(encryption.matrix, encryption.device, on_refused=refused)
    requests = KeyRequests(encryption.device)
    recovery = KeyRecovery(backup, requests, asyncio.Event())
    # The backup first: it answers at once, the other devices later.
    encryption.on_missing_key(backup.find)
    encryption.on_missing_key(requests.find)
    encryption.accept_forwarded(requests.accepts)
    encryption.on_to_device(REQUEST, requests.on_request)
    encryption.on_room_keys(requests.on_room_keys)

    async def arrived(keys: list[tuple[str, str, str]]) -> None:
        backup.arrived(keys)
        recovery.nudge.set()  # uploaded off the sync batch's path

    encryption.on_room_keys(arrived)
    encryption.on_close(recovery.nudge.set)  # the uploader sees it and ends
    spawn(_keep_backed_up(encryption, recovery), "key backup upload")
    return recovery


async def _keep_backed_up(encryption: Encryption, recovery: KeyRecovery) -> None:
    """Uploads new sessions when a batch brings some, and now and then for
    our own; ends when the session's key store is closed."""
    while not encryption.store.closed:
        try:
            await recovery.backup.upload_pending()
        except (MatrixError, NetworkError) as e:
            log.info("Key backup upload failed (retried later): %s", e)
        except Exception:
            if encryption.store.closed:
                return  # the session ended under it
            log.exception("Key backup upload failed (retried later)")
        if encryption.store.closed:
            return
        recovery.nudge.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(UPLOAD_INTERVAL_S):
                await recovery.nudge.wait()
