"""The per-user key store: it keeps everything across a reopen and a SIGKILL,
refuses a wrong or missing key without touching the file, and never writes a
key in the clear."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from matridge.crypto import primitives as p
from matridge.crypto.store import (
    InboundGroupRecord,
    KeyStore,
    OutboundGroupRecord,
    StoreError,
    StoreKeyError,
    decode_store_key,
    new_store_key,
    store_path,
)

ROOM = "!room:hs"


@pytest.fixture
def key() -> bytes:
    return decode_store_key(new_store_key())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return store_path(tmp_path, "juliet@capulet.lit")


def store_files(path: Path) -> list[Path]:
    return [f for f in path.parent.iterdir() if f.name.startswith(path.name)]


def test_store_path_is_under_home_and_names_no_one(tmp_path: Path) -> None:
    path = store_path(tmp_path, "juliet@capulet.lit")
    assert path.parent == tmp_path / "matridge" / "keys"
    assert "juliet" not in path.name
    assert path != store_path(tmp_path, "romeo@montague.lit")


def test_everything_survives_close_and_reopen(path: Path, key: bytes) -> None:
    account = p.OlmAccount()
    bob = p.OlmAccount()
    bob.generate_one_time_keys(1)
    (otk,) = bob.one_time_keys.values()
    olm = account.create_outbound_session(bob.curve25519, otk)
    bob_session, _ = bob.create_inbound_session(account.curve25519, olm.encrypt(b"x"))
    outbound = p.MegolmOutbound()
    outbound.encrypt(b"advance the index")
    theirs = p.MegolmOutbound()
    inbound = p.MegolmInbound.from_session_key(theirs.session_key)
    device = {"user_id": "@bob:hs", "device_id": "BOB", "keys": {"ed25519:BOB": "k"}}

    with KeyStore.open(path, key) as store, store.transaction():
        store.save_account(account)
        store.save_olm_session(bob.curve25519, olm, used_ms=10)
        store.save_inbound_group_session(
            InboundGroupRecord(ROOM, "senderkey", inbound, "signkey", imported=False)
        )
        store.save_outbound_group_session(
            OutboundGroupRecord(ROOM, outbound, 1234, frozenset({("@bob:hs", "BOB")}))
        )
        store.track_users(["@bob:hs", "@carol:hs"])
        store.replace_devices("@bob:hs", {"BOB": device})
        assert store.remember_megolm_index("senderkey", inbound.session_id, 0, "$e", 5)
        store.save_secret("m.cross_signing.master", b"seed bytes")
        store.save_sync_token("s42")

    with KeyStore.open(path, key, create=False) as store:
        again = store.account()
        assert again is not None and again.ed25519 == account.ed25519
        (session,) = store.olm_sessions(bob.curve25519)
        assert session.session_id == olm.session_id
        assert session.decrypt(bob_session.encrypt(b"reply")) == b"reply"
        record = store.inbound_group_session(ROOM, "senderkey", inbound.session_id)
        assert record is not None and record.sender_ed25519 == "signkey"
        assert not record.imported
        assert record.session.decrypt(theirs.encrypt(b"m")).plaintext == b"m"
        out = store.outbound_group_session(ROOM)
        assert out is not None and out.session.message_index == 1
        assert out.session.session_key == outbound.session_key
        assert (out.created_ms, out.shared_with) == (1234, {("@bob:hs", "BOB")})
        assert store.tracked_users() == {"@bob:hs": False, "@carol:hs": True}
        assert store.devices("@bob:hs") == {"BOB": device}
        assert store.secret("m.cross_signing.master") == b"seed bytes"
        assert store.secret("m.cross_signing.self_signing") is None
        assert store.sync_token() == "s42"
        with store.transaction():
            # the same event again is a re-delivery; another event is a replay
            assert store.remember_megolm_index(
                "senderkey", inbound.session_id, 0, "$e", 5
            )
            assert not store.remember_megolm_index(
                "senderkey", inbound.session_id, 0, "$other", 6
            )


def test_olm_sessions_come_most_recent_first(path: Path, key: bytes) -> None:
    alice, bob = p.OlmAccount(), p.OlmAccount()
    bob.generate_one_time_keys(2)
    first, second = (
        alice.create_outbound_session(bob.curve25519, k)
        for k in bob.one_time_keys.values()
    )
    with KeyStore.open(path, key) as store:
        with store.transaction():
            store.save_olm_session(bob.curve25519, first, used_ms=1)
            store.save_olm_session(bob.curve25519, second, used_ms=2)
        ids = [s.session_id for s in store.olm_sessions(bob.curve25519)]
        assert ids == [second.session_id, first.session_id]
        with store.transaction():
            store.save_olm_session(bob.curve25519, first, used_ms=3)
        assert store.olm_sessions(bob.curve25519)[0].session_id == first.session_id
        assert store.olm_sessions("someone else") == []


def test_device_lists_follow_changes_and_leaves(path: Path, key: bytes) -> None:
    with KeyStore.open(path, key) as store:
        with store.transaction():
            store.replace_devices("@bob:hs", {"A": {"d": 1}, "B": {"d": 2}})
            store.mark_outdated(["@bob:hs", "@untracked:hs"])
        assert store.tracked_users() == {"@bob:hs": True}
        with store.transaction():
            store.replace_devices("@bob:hs", {"B": {"d": 3}})
        assert store.devices("@bob:hs") == {"B": {"d": 3}}
        assert store.tracked_users() == {"@bob:hs": False}
        with store.transaction():
            store.untrack_users(["@bob:hs"])
        assert store.tracked_users() == {} and store.devices("@bob:hs") == {}


def test_a_failed_transaction_leaves_nothing(path: Path, key: bytes) -> None:
    with KeyStore.open(path, key) as store:
        with store.transaction():
            store.save_sync_token("before")
        with pytest.raises(RuntimeError), store.transaction():
            store.save_sync_token("after")
            with store.transaction():  # nested blocks join the outer one
                store.save_secret("x", b"y")
            raise RuntimeError("processing the batch failed")
        assert store.sync_token() == "before" and store.secret("x") is None
        with store.transaction():
            store.drop_outbound_group_session(ROOM)  # usable after a rollback


def test_writes_outside_a_transaction_are_refused(path: Path, key: bytes) -> None:
    with KeyStore.open(path, key) as store:
        with pytest.raises(StoreError, match=r"inside store\.transaction"):
            store.save_sync_token("t")
        assert store.sync_token() is None


def test_wrong_or_missing_key_is_a_clear_error_and_changes_nothing(
    path: Path, key: bytes
) -> None:
    with KeyStore.open(path, key) as store, store.transaction():
        store.save_account(p.OlmAccount())
    before = {f.name: f.read_bytes() for f in store_files(path)}
    with pytest.raises(StoreKeyError, match="does not open with this store key"):
        KeyStore.open(path, decode_store_key(new_store_key()))
    with pytest.raises(StoreKeyError, match="cannot be opened without its key"):
        KeyStore.open(path, None)
    with pytest.raises(StoreKeyError, match="32 bytes"):
        KeyStore.open(path, b"short")
    with pytest.raises(StoreKeyError):
        decode_store_key("not base64!")
    assert {f.name: f.read_bytes() for f in store_files(path)} == before
    with KeyStore.open(path, key) as store:
        assert store.account() is not None  # the right key still opens it


def test_a_missing_store_is_not_created_when_asked_not_to(
    path: Path, key: bytes
) -> None:
    with pytest.raises(StoreError, match="no key store"):
        KeyStore.open(path, key, create=False)
    assert not path.exists()


def test_a_file_that_is_not_a_store_is_a_clear_error(path: Path, key: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StoreError, match="is not readable"):
        KeyStore.open(path, key)


def test_a_changed_value_is_reported_not_used(path: Path, key: bytes) -> None:
    with KeyStore.open(path, key) as store, store.transaction():
        store.save_secret("a", b"1")
        store.save_secret("b", b"2")
    db = sqlite3.connect(path)
    with db:  # move b's sealed value onto a
        db.execute(
            "UPDATE secrets SET value=(SELECT value FROM secrets WHERE name='b')"
        )
    db.close()
    with KeyStore.open(path, key) as store:
        with pytest.raises(StoreError, match="damaged"):
            store.secret("a")


def test_store_files_are_private(path: Path, key: bytes) -> None:
    with KeyStore.open(path, key) as store:
        with store.transaction():
            store.save_secret("s", b"v")
        for f in store_files(path):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_no_key_material_in_the_clear_on_disk(path: Path, key: bytes) -> None:
    outbound = p.MegolmOutbound()
    inbound = p.MegolmInbound.from_session_key(outbound.session_key)
    exported = inbound.export_at(0)
    assert exported is not None
    seed = p.SigningKey.generate().seed
    account = p.OlmAccount()
    needles = [
        key,
        p.b64encode(key).encode(),
        seed,
        p.b64encode(seed).encode(),
        p.b64decode(outbound.session_key),
        outbound.session_key.encode(),
        exported.encode(),
        p.b64decode(exported),
        # unpickled under the store's key: the pickle's plaintext never lands
        account.pickle(bytes(32)).encode(),
    ]
    store = KeyStore.open(path, key)
    with store.transaction():
        store.save_account(account)
        store.save_outbound_group_session(
            OutboundGroupRecord(ROOM, outbound, 0, frozenset())
        )
        store.save_inbound_group_session(
            InboundGroupRecord(ROOM, "sender", inbound, "sign", imported=True)
        )
        store.save_secret("m.cross_signing.master", seed)
        store.save_secret("m.cross_signing.master.b64", p.b64encode(seed).encode())
        store.save_sync_token("token-marker-value")

    def on_disk() -> bytes:
        return b"".join(f.read_bytes() for f in store_files(path))

    for snapshot in (on_disk(), (store.close(), on_disk())[1]):  # with WAL, then folded
        assert b"token-marker-value" not in snapshot  # values are sealed at all
        for needle in needles:
            assert needle not in snapshot


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from matridge.crypto.store import KeyStore

    path, key, mode = Path(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3]
    store = KeyStore.open(path, key)
    if mode == "hold":
        with store.transaction():
            store.save_sync_token("committed")
            store.replace_devices("@a:hs", {"OLD": {"n": 0}})
        print("committed", flush=True)
        with store.transaction():
            store.save_sync_token("uncommitted")
            store.replace_devices("@a:hs", {f"D{i}": {"n": i} for i in range(2000)})
            print("mid-transaction", flush=True)
            sys.stdin.read()  # until killed
    else:  # commit batch after batch until killed
        i = 0
        while True:
            i += 1
            with store.transaction():
                store.save_sync_token(str(i))
                store.replace_devices("@a:hs", {f"D{i}": {"n": i}})
                store.save_secret("last", str(i).encode())
            print(i, flush=True)
    """
)


def run_child(path: Path, key: bytes, mode: str, wait_for: int) -> list[str]:
    """Starts a child that writes the store, reads ``wait_for`` lines of its
    progress, SIGKILLs it, and returns those lines."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), key.hex(), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    lines = []
    try:
        for _ in range(wait_for):
            line = child.stdout.readline()
            assert line, "the child died early"
            lines.append(line.strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return lines


def test_sigkill_mid_transaction_keeps_the_last_commit(path: Path, key: bytes) -> None:
    assert run_child(path, key, "hold", 2) == ["committed", "mid-transaction"]
    with KeyStore.open(path, key) as store:
        assert store.sync_token() == "committed"
        assert store.devices("@a:hs") == {"OLD": {"n": 0}}


def test_sigkill_between_commits_keeps_every_reported_commit_whole(
    path: Path, key: bytes
) -> None:
    lines = run_child(path, key, "loop", 30)
    with KeyStore.open(path, key) as store:
        token = store.sync_token()
        assert token is not None
        # durable: everything reported committed is there (a later commit may be too)
        assert int(token) >= int(lines[-1])
        # atomic: the token and the rest of its transaction go together
        assert store.devices("@a:hs") == {f"D{token}": {"n": int(token)}}
        assert store.secret("last") == token.encode()


def test_the_store_key_never_appears_in_reprs(path: Path, key: bytes) -> None:
    with KeyStore.open(path, key) as store:
        shown = repr(store) + repr(p.StoreCipher(key))
    assert key.hex() not in shown and p.b64encode(key) not in shown
    assert hashlib.sha256(b"juliet@capulet.lit").hexdigest()[:32] in repr(store)


def test_json_values_are_sealed_kept_and_forgotten(path: Path, key: bytes) -> None:
    with KeyStore.open(path, key) as store:
        with pytest.raises(StoreError, match="transaction"):
            store.put_json("withheld", {"code": "m.unverified"})
        with store.transaction():
            store.put_json("withheld", {"code": "m.unverified"})
            store.put_json("gone", True)
        with store.transaction():
            store.put_json("gone", None)
    assert b"m.unverified" not in b"".join(f.read_bytes() for f in store_files(path))
    with KeyStore.open(path, key) as store:
        assert store.get_json("withheld") == {"code": "m.unverified"}
        assert store.get_json("gone") is None


def test_a_released_store_reopens_on_its_next_use(path: Path, key: bytes) -> None:
    store = KeyStore.open(path, key)
    with store.transaction():
        store.save_secret("a", b"1")
        store.release()  # inside a transaction: kept open
        store.save_secret("b", b"2")
    store.release()
    assert store._conn is None  # nothing held while idle
    assert (store.secret("a"), store.secret("b")) == (b"1", b"2")
    with store.transaction():
        store.save_secret("c", b"3")
    store.close()
    assert store.closed
    with pytest.raises(StoreError, match="closed"):
        store.secret("a")
    with KeyStore.open(path, key) as again:
        assert again.secret("c") == b"3"
