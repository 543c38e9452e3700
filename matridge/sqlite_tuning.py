"""slidge's SQLite database, opened for a gateway's write pattern.

slidge keeps its archive, its sessions and matridge's saved data in one
SQLite file, and commits after each message it archives. In SQLite's default
rollback-journal mode with ``synchronous=FULL`` each commit waits for the
disk several times, and the event loop waits with it: that was most of the
time the gateway spent relaying a message. In WAL mode with
``synchronous=NORMAL`` a commit appends to the write-ahead log and the disk
is synced at checkpoints: a commit survives the gateway being killed (what
the delivery guarantees are about); only an operating-system crash or a
power cut can lose the last moments, which the restarted gateway fetches
again from the homeserver since the saved sync token goes back with them.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


def _tune(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def install() -> None:
    """Every SQLite connection opened from now on (slidge opens its
    database after importing the plugin) is tuned."""
    if not event.contains(Engine, "connect", _tune):
        event.listen(Engine, "connect", _tune)
