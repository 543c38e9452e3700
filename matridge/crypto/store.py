"""The per-user key store: everything end-to-end encryption must never lose.

One SQLite file per XMPP user (WAL journal, ``synchronous=FULL``) holds the
Olm account, Olm sessions, inbound and outbound Megolm sessions, the Megolm
indices already decrypted (replay detection), the device-list cache, the
tracked users, secrets (cross-signing seeds, the backup key) and the sync
token. Writes happen only inside ``with store.transaction():``, which commits
all or nothing and is on disk when the block returns: the sync loop processes
a batch's to-device messages, stores the new token and commits, in one
transaction, so the homeserver never deletes a to-device message whose
effect is not kept.

Every value column is sealed (AES-256-GCM, :class:`StoreCipher`) under a
random per-user *store key* that is not in this file (see
``docs/architecture.rst``); only ids (room, user, device, session ids and
public Curve25519 sender keys) are plain, for lookups. Nothing here logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import logsafety
from .primitives import (
    CryptoError,
    MacMismatch,
    MegolmInbound,
    MegolmOutbound,
    OlmAccount,
    OlmSession,
    StoreCipher,
    b64decode,
    b64encode,
    random_bytes,
)

SCHEMA_VERSION = 1
_KEY_CHECK = b"matridge key store"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS olm_sessions (
    sender_key TEXT NOT NULL, session_id TEXT NOT NULL,
    last_used INTEGER NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (sender_key, session_id));
CREATE TABLE IF NOT EXISTS inbound_group_sessions (
    room_id TEXT NOT NULL, sender_key TEXT NOT NULL, session_id TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (room_id, sender_key, session_id));
CREATE TABLE IF NOT EXISTS outbound_group_sessions (
    room_id TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS megolm_indices (
    sender_key TEXT NOT NULL, session_id TEXT NOT NULL, message_index INTEGER NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (sender_key, session_id, message_index));
CREATE TABLE IF NOT EXISTS devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (user_id, device_id));
CREATE TABLE IF NOT EXISTS tracked_users (
    user_id TEXT PRIMARY KEY, outdated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class StoreError(CryptoError):
    """The key store cannot be used; the message says why."""


class StoreKeyError(StoreError):
    """The store key is missing, malformed or not this store's."""


def new_store_key() -> str:
    """A fresh random store key, as text for slidge's per-user data."""
    return b64encode(random_bytes(32))


def decode_store_key(text: str) -> bytes:
    """The store key from its text; the text is redacted from logs from now on."""
    logsafety.remember(text)
    try:
        key = b64decode(text)
    except CryptoError:
        raise StoreKeyError("the store key is not valid base64") from None
    if len(key) != 32:
        raise StoreKeyError("the store key does not have 32 bytes")
    return key


def store_path(home_dir: Path, user_jid: str) -> Path:
    """Where a user's key store lives under slidge's home directory. The file
    name is a hash of the bare JID, so a directory listing names no one."""
    name = hashlib.sha256(user_jid.encode("utf-8")).hexdigest()[:32]
    return home_dir / "matridge" / "keys" / f"{name}.sqlite"


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, autocommit=True)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the key store {path.name}: {e}") from None
    try:
        conn.execute("PRAGMA synchronous=FULL")  # a returned commit is on disk
    except sqlite3.Error as e:
        conn.close()
        raise StoreError(f"the key store {path.name} is not readable: {e}") from None
    return conn


def remove_store(path: Path) -> bool:
    """Deletes a key store's files (its device was logged out, or its key
    is gone with the user's data, so it can never open again); False if
    there was none."""
    existed = path.exists()
    for name in (path, *(path.with_name(path.name + x) for x in ("-wal", "-shm"))):
        name.unlink(missing_ok=True)
    return existed


@dataclass(frozen=True, slots=True)
class InboundGroupRecord:
    """An inbound Megolm session and what was said about it when received."""

    room_id: str
    sender_key: str
    session: MegolmInbound
    sender_ed25519: str  # the claimed signing key of the sending device
    imported: bool  # from a forward, backup or export, not from the sender
    # The Curve25519 keys of the devices that forwarded it to us, first
    # forwarder first (``forwarding_curve25519_key_chain``); passed on when
    # we forward or back it up.
    forwarding_chain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboundGroupRecord:
    """Our Megolm session in a room: when it began, and which devices have
    its key (rotation and sharing decisions belong to the device logic)."""

    room_id: str
    session: MegolmOutbound
    created_ms: int
    shared_with: frozenset[tuple[str, str]]  # (user id, device id)


class KeyStore:
    """A user's key store. Open with :meth:`open`; write in transactions."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, cipher: StoreCipher
    ) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._cipher = cipher
        self._depth = 0
        self._closed = False

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, opened again after :meth:`release`."""
        if self._conn is None:
            if self._closed:
                raise StoreError(f"the key store {self.path.name} is closed")
            self._conn = _connect(self.path)
        return self._conn

    def release(self) -> None:
        """Closes the connection until the next use. A connection holds
        about 100 KiB (SQLite's page cache and lookaside) that an idle
        account does not need; reopening costs a fraction of a millisecond."""
        if self._conn is not None and not self._depth:
            self._conn.close()
            self._conn = None

    # -- opening and closing --------------------------------------------------

    @classmethod
    def open(cls, path: Path, key: bytes | None, *, create: bool = True) -> KeyStore:
        """Opens the store at ``path`` with its store key, creating it (and
        its 0700 directory) when missing and ``create`` is set. A wrong or
        missing key raises :class:`StoreKeyError` and changes nothing."""
        exists = path.exists()
        if key is None:
            raise StoreKeyError(
                f"no store key for the key store {path.name}"
                + (": it exists and cannot be opened without its key" if exists else "")
            )
        if len(key) != 32:
            raise StoreKeyError("the store key does not have 32 bytes")
        if not exists and not create:
            raise StoreError(f"no key store at {path}")
        if not exists:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Created 0600 before SQLite writes a byte into it.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        cipher = StoreCipher(key)
        conn = _connect(path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # kept in the file
            store = cls(path, conn, cipher)
            store._check_or_initialise()
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StoreError(
                f"the key store {path.name} is not readable: {e}"
            ) from None
        except BaseException:
            conn.close()
            raise
        return store

    def _check_or_initialise(self) -> None:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE name='meta'"
        ).fetchone()
        check = None
        if row is not None:
            found = self._db.execute(
                "SELECT value FROM meta WHERE name='key_check'"
            ).fetchone()
            check = found[0] if found else None
        if check is None:
            with self.transaction():
                self._db.executescript(_SCHEMA)  # autocommit=True: no implicit COMMIT
                self._put_meta("key_check", _KEY_CHECK)
                self._put_meta("schema", str(SCHEMA_VERSION).encode())
            return
        try:
            self._cipher.open(check, b"meta\0key_check")
        except MacMismatch:
            raise StoreKeyError(
                f"the key store {self.path.name} does not open with this store key "
                "(a wrong key, or another user's store); it was left unchanged"
            ) from None
        version = int(self._get_meta("schema") or b"0")
        if version != SCHEMA_VERSION:
            raise StoreError(f"key store schema {version} is not {SCHEMA_VERSION}")

    def close(self) -> None:
        """Closes the store, folding the WAL into the main file."""
        if self._depth:
            raise StoreError("close() inside a transaction")
        if self._closed:
            return
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<KeyStore {self.path.name}>"

    # -- transactions ----------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes of the block commit together, durably, or not at all
        (an exception rolls back). Nested blocks join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as e:  # e.g. a full disk: nothing of the block is kept
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(
                f"the key store {self.path.name} did not commit: {e}"
            ) from None

    def _writing(self) -> None:
        if not self._depth:
            raise StoreError("key store writes belong inside store.transaction()")

    # -- sealing ---------------------------------------------------------------

    def _seal(self, value: bytes, *row: str) -> bytes:
        return self._cipher.seal(value, "\0".join(row).encode("utf-8"))

    def _open(self, sealed: bytes, *row: str) -> bytes:
        try:
            return self._cipher.open(sealed, "\0".join(row).encode("utf-8"))
        except MacMismatch:
            raise StoreError(
                f"a value in {row[0]} of {self.path.name} is damaged"
            ) from None

    def _seal_json(self, value: Any, *row: str) -> bytes:
        return self._seal(json.dumps(value, separators=(",", ":")).encode(), *row)

    def _open_json(self, sealed: bytes, *row: str) -> Any:
        return json.loads(self._open(sealed, *row))

    def _put_meta(self, name: str, value: bytes) -> None:
        self._writing()
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            (name, self._seal(value, "meta", name)),
        )

    def _get_meta(self, name: str) -> bytes | None:
        row = self._db.execute(
            "SELECT value FROM meta WHERE name=?", (name,)
        ).fetchone()
        return self._open(row[0], "meta", name) if row else None

    # -- the Olm account -----------------------------------------------------

    def save_account(self, account: OlmAccount) -> None:
        self._put_meta("account", account.pickle(self._cipher.pickle_key).encode())

    def account(self) -> OlmAccount | None:
        pickle = self._get_meta("account")
        if pickle is None:
            return None
        return OlmAccount.from_pickle(pickle.decode(), self._cipher.pickle_key)

    # -- the sync token ----------------------------------------------------------

    def save_sync_token(self, token: str) -> None:
        """Saved in the same transaction as the batch's key changes."""
        self._put_meta("since", token.encode())

    def sync_token(self) -> str | None:
        value = self._get_meta("since")
        return value.decode() if value is not None else None

    # -- Olm sessions --------------------------------------------------------------

    def save_olm_session(
        self, sender_key: str, session: OlmSession, used_ms: int
    ) -> None:
        self._writing()
        sealed = self._seal(
            session.pickle(self._cipher.pickle_key).encode(),
            "olm_sessions",
            sender_key,
            session.session_id,
        )
        self._db.execute(
            "INSERT OR REPLACE INTO olm_sessions VALUES (?, ?, ?, ?)",
            (sender_key, session.session_id, used_ms, sealed),
        )

    def olm_sessions(self, sender_key: str) -> list[OlmSession]:
        """A device's sessions, the most recently used first."""
        rows = self._db.execute(
            "SELECT session_id, value FROM olm_sessions WHERE sender_key=? "
            "ORDER BY last_used DESC, session_id",
            (sender_key,),
        ).fetchall()
        return [
            OlmSession.from_pickle(
                self._open(v, "olm_sessions", sender_key, sid).decode(),
                self._cipher.pickle_key,
            )
            for sid, v in rows
        ]

    # -- inbound Megolm sessions ---------------------------------------------------

    def save_inbound_group_session(self, record: InboundGroupRecord) -> None:
        self._writing()
        sid = record.session.session_id
        row = ("inbound_group_sessions", record.room_id, record.sender_key, sid)
        sealed = self._seal_json(
            {
                "pickle": record.session.pickle(self._cipher.pickle_key),
                "sender_ed25519": record.sender_ed25519,
                "imported": record.imported,
                "chain": list(record.forwarding_chain),
            },
            *row,
        )
        self._db.execute(
            "INSERT OR REPLACE INTO inbound_group_sessions VALUES (?, ?, ?, ?)",
            (record.room_id, record.sender_key, sid, sealed),
        )

    def inbound_group_session(
        self, room_id: str, sender_key: str, session_id: str
    ) -> InboundGroupRecord | None:
        found = self._db.execute(
            "SELECT value FROM inbound_group_sessions "
            "WHERE room_id=? AND sender_key=? AND session_id=?",
            (room_id, sender_key, session_id),
        ).fetchone()
        if found is None:
            return None
        data = self._open_json(
            found[0], "inbound_group_sessions", room_id, sender_key, session_id
        )
        return InboundGroupRecord(
            room_id,
            sender_key,
            MegolmInbound.from_pickle(data["pickle"], self._cipher.pickle_key),
            data["sender_ed25519"],
            bool(data["imported"]),
            tuple(data.get("chain", ())),  # absent in stores before the chain
        )

    def remember_megolm_index(
        self, sender_key: str, session_id: str, index: int, event_id: str, ts: int
    ) -> bool:
        """Records that ``event_id`` decrypted at ``index`` of a session.
        False when another event already used that index: a replay, to be
        refused. The same event again (a re-delivered batch) is fine."""
        self._writing()
        row = ("megolm_indices", sender_key, session_id, str(index))
        found = self._db.execute(
            "SELECT value FROM megolm_indices "
            "WHERE sender_key=? AND session_id=? AND message_index=?",
            (sender_key, session_id, index),
        ).fetchone()
        if found is not None:
            seen = self._open_json(found[0], *row)
            return bool(seen["event_id"] == event_id and seen["ts"] == ts)
        self._db.execute(
            "INSERT INTO megolm_indices VALUES (?, ?, ?, ?)",
            (
                sender_key,
                session_id,
                index,
                self._seal_json({"event_id": event_id, "ts": ts}, *row),
            ),
        )
        return True

    # -- outbound Megolm sessions -----------------------------------------------

    def save_outbound_group_session(self, record: OutboundGroupRecord) -> None:
        self._writing()
        sealed = self._seal_json(
            {
                "pickle": record.session.pickle(self._cipher.pickle_key),
                "created_ms": record.created_ms,
                "shared_with": sorted(record.shared_with),
            },
            "outbound_group_sessions",
            record.room_id,
        )
        self._db.execute(
            "INSERT OR REPLACE INTO outbound_group_sessions VALUES (?, ?)",
            (record.room_id, sealed),
        )

    def outbound_group_session(self, room_id: str) -> OutboundGroupRecord | None:
        found = self._db.execute(
            "SELECT value FROM outbound_group_sessions WHERE room_id=?", (room_id,)
        ).fetchone()
        if found is None:
            return None
        data = self._open_json(found[0], "outbound_group_sessions", room_id)
        return OutboundGroupRecord(
            room_id,
            MegolmOutbound.from_pickle(data["pickle"], self._cipher.pickle_key),
            int(data["created_ms"]),
            frozenset((u, d) for u, d in data["shared_with"]),
        )

    def drop_outbound_group_session(self, room_id: str) -> None:
        """Forgets a room's session so the next send starts a new one."""
        self._writing()
        self._db.execute(
            "DELETE FROM outbound_group_sessions WHERE room_id=?", (room_id,)
        )

    # -- device lists ---------------------------------------------------------------

    def track_users(self, user_ids: Iterable[str]) -> None:
        """Starts tracking users' device lists; new ones are outdated."""
        self._writing()
        self._db.executemany(
            "INSERT OR IGNORE INTO tracked_users VALUES (?, 1)",
            [(u,) for u in user_ids],
        )

    def mark_outdated(self, user_ids: Iterable[str]) -> None:
        """``device_lists.changed`` of a sync: tracked users to query again."""
        self._writing()
        self._db.executemany(
            "UPDATE tracked_users SET outdated=1 WHERE user_id=?",
            [(u,) for u in user_ids],
        )

    def untrack_users(self, user_ids: Iterable[str]) -> None:
        """``device_lists.left``: no shared room any more; their devices go."""
        self._writing()
        for user_id in user_ids:
            self._db.execute("DELETE FROM tracked_users WHERE user_id=?", (user_id,))
            self._db.execute("DELETE FROM devices WHERE user_id=?", (user_id,))

    def tracked_users(self) -> dict[str, bool]:
        """Tracked user id -> whether their device list is outdated."""
        rows = self._db.execute(
            "SELECT user_id, outdated FROM tracked_users ORDER BY user_id"
        )
        return {u: bool(o) for u, o in rows}

    def replace_devices(
        self, user_id: str, devices: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """A user's device list from ``/keys/query`` (device id -> the device's
        verified ``device_keys`` object); the user becomes up to date."""
        self._writing()
        self._db.execute("DELETE FROM devices WHERE user_id=?", (user_id,))
        self._db.executemany(
            "INSERT INTO devices VALUES (?, ?, ?)",
            [
                (
                    user_id,
                    device_id,
                    self._seal_json(dict(keys), "devices", user_id, device_id),
                )
                for device_id, keys in devices.items()
            ],
        )
        self._db.execute(
            "INSERT OR REPLACE INTO tracked_users VALUES (?, 0)", (user_id,)
        )

    def devices(self, user_id: str) -> dict[str, dict[str, Any]]:
        rows = self._db.execute(
            "SELECT device_id, value FROM devices WHERE user_id=? ORDER BY device_id",
            (user_id,),
        )
        return {d: self._open_json(v, "devices", user_id, d) for d, v in rows}

    # -- the device's bookkeeping -------------------------------------------------

    def put_json(self, name: str, value: Any) -> None:
        """A small JSON value of the device logic's, sealed (whether the
        device keys are uploaded, withheld notices, cross-signing keys seen
        in ``/keys/query``). ``None`` forgets it."""
        self._writing()
        if value is None:
            self._db.execute("DELETE FROM meta WHERE name=?", ("json\0" + name,))
            return
        self._put_meta("json\0" + name, json.dumps(value).encode())

    def get_json(self, name: str) -> Any:
        value = self._get_meta("json\0" + name)
        return json.loads(value) if value is not None else None

    # -- secrets ----------------------------------------------------------------------

    def save_secret(self, name: str, value: bytes) -> None:
        """A secret of the user's (e.g. ``m.cross_signing.self_signing``)."""
        self._writing()
        self._db.execute(
            "INSERT OR REPLACE INTO secrets VALUES (?, ?)",
            (name, self._seal(value, "secrets", name)),
        )

    def secret(self, name: str) -> bytes | None:
        found = self._db.execute(
            "SELECT value FROM secrets WHERE name=?", (name,)
        ).fetchone()
        return self._open(found[0], "secrets", name) if found else None

    # -- key backup ------------------------------------------------------------
    # Which inbound sessions the server-side key backup already holds, per
    # backup version (ids and the version only: nothing secret). The table
    # is made on first use, so stores made before it need no migration.

    def _backup_table(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS backed_up_sessions ("
            "room_id TEXT NOT NULL, sender_key TEXT NOT NULL, "
            "session_id TEXT NOT NULL, version TEXT NOT NULL, "
            "PRIMARY KEY (room_id, sender_key, session_id))"
        )

    def sessions_not_backed_up(
        self, version: str, limit: int
    ) -> list[InboundGroupRecord]:
        """Up to ``limit`` inbound sessions the backup ``version`` lacks."""
        self._backup_table()
        rows = self._db.execute(
            "SELECT i.room_id, i.sender_key, i.session_id "
            "FROM inbound_group_sessions i LEFT JOIN backed_up_sessions b "
            "ON b.room_id = i.room_id AND b.sender_key = i.sender_key "
            "AND b.session_id = i.session_id "
            "WHERE b.version IS NULL OR b.version != ? "
            "ORDER BY i.room_id, i.sender_key, i.session_id LIMIT ?",
            (version, limit),
        ).fetchall()
        records = [self.inbound_group_session(r, s, i) for r, s, i in rows]
        return [record for record in records if record is not None]

    def mark_backed_up(
        self, version: str, sessions: Iterable[tuple[str, str, str]]
    ) -> None:
        """The backup ``version`` holds these (room id, sender key, session id)."""
        self._writing()
        self._backup_table()
        self._db.executemany(
            "INSERT OR REPLACE INTO backed_up_sessions VALUES (?, ?, ?, ?)",
            [(r, s, i, version) for r, s, i in sessions],
        )

    def forget_backed_up(self, sessions: Iterable[tuple[str, str, str]]) -> None:
        """These sessions go up again (a better copy may have come)."""
        self._writing()
        self._backup_table()
        self._db.executemany(
            "DELETE FROM backed_up_sessions "
            "WHERE room_id=? AND sender_key=? AND session_id=?",
            list(sessions),
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (background work then stops)."""
        return self._closed
