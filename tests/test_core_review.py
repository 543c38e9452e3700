"""Regression tests for the defects a review of csrc/ found (issue 13), one
or more per defect, numbered as in the issue. Each failed before its fix."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest

from matridge import _core
from matridge.matrix import MAX_UNDELIVERED, MatrixClient, MatrixError, SyncBatch
from tests.harness.fake_homeserver import Answer, fake_homeserver

SYNC = "/_matrix/client/v3/sync"
ME = "@me:example.org"
ROOM = "!room:example.org"


def member(user_id: str, membership: str) -> dict[str, Any]:
    return {
        "type": "m.room.member",
        "state_key": user_id,
        "sender": user_id,
        "content": {"membership": membership},
    }


def sync_body(room_id: str, events: list[Any], **extra: Any) -> bytes:
    body = {"rooms": {"join": {room_id: {"state": {"events": events}}}}, **extra}
    return json.dumps(body).encode()


async def until(cond: Any, what: str, seconds: float = 20) -> None:
    """Lets the loop process completions until `cond()` holds."""
    for _ in range(int(seconds * 100)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# ---- 1. stop_sync before the engine saw start_sync --------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_1_a_loop_stopped_before_the_engine_saw_it_frees_the_client() -> None:
    # Many clients started and stopped at once: for most of them the engine
    # takes both pokes in one turn. Each must still release its Client and
    # callbacks (and so the session graph behind them).
    alive: list[weakref.ref[Any]] = []
    for _ in range(200):
        client = MatrixClient("http://127.0.0.1:9", "t")

        def on_batch(b: SyncBatch) -> None:
            pass

        client.start_sync(on_batch, lambda e, fatal: None, None, 0)
        client.stop_sync()
        alive.append(weakref.ref(on_batch))
        del client, on_batch
    await until(
        lambda: gc.collect() >= 0 and not any(r() is not None for r in alive),
        "every stopped loop to release its callbacks",
    )


# ---- 2. a fatal error whose text does not decode ------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_2_a_fatal_error_cut_inside_a_character_still_reaches_python() -> None:
    # 'a' then 2-byte characters: the 400-byte cut of the message falls in
    # the middle of one. The errcode itself is not UTF-8 either.
    body = (
        b'{"errcode": "M_UNKNOWN_TOKEN\xff", "error": "a' + "é".encode() * 300 + b'"}'
    )
    with fake_homeserver() as fake:
        fake.route(SYNC, Answer(401, body))
        client = MatrixClient(fake.base_url, "t")
        errors: list[tuple[Exception, bool]] = []
        client.start_sync(lambda b: None, lambda e, f: errors.append((e, f)), None, 0)
        try:
            await until(lambda: errors, "the fatal error")
        finally:
            client.stop_sync()
    error, fatal = errors[0]
    assert isinstance(error, MatrixError)
    assert fatal
    assert error.status == 401
    assert "\ufffd" in str(error)


# ---- 3. token wiping ------------------------------------------------------------


def test_3_secrets_are_wiped_with_a_call_the_compiler_keeps() -> None:
    # A memset before free is a dead store that -O2 removes: the extension
    # must call explicit_bzero (which it also uses on libcurl's header copies).
    so = _core.__file__
    assert so is not None
    out = subprocess.run(
        ["nm", "-D", "--undefined-only", so], capture_output=True, text=True, check=True
    ).stdout
    assert "explicit_bzero" in out


# ---- 4. a state answer older than the sync batches applied meanwhile ---------


def test_4_a_stale_state_answer_does_not_revert_newer_sync_changes() -> None:
    cache = _core.RoomCache(ME)
    cache.apply_sync(sync_body(ROOM, [member(ME, "join"), member("@alice:x", "join")]))
    asked_at = cache.sync_count  # the state request goes out here
    # While it is in flight, sync says alice left and bob joined.
    cache.apply_sync(
        sync_body(ROOM, [member("@alice:x", "leave"), member("@bob:x", "join")])
    )
    # The answer was computed before those changes; it also knows carol.
    answer = [
        member(ME, "join"),
        member("@alice:x", "join"),
        member("@carol:x", "join"),
    ]
    cache.apply_state(ROOM, json.dumps(answer).encode(), asked_at)
    info = cache.get(ROOM)
    assert info is not None
    members = info.members
    assert members["@alice:x"].membership == "leave"
    assert members["@bob:x"].membership == "join"
    assert members["@carol:x"].membership == "join"  # what the answer adds


def test_4_a_state_answer_newer_than_every_sync_replaces_the_room() -> None:
    cache = _core.RoomCache(ME)
    cache.apply_sync(sync_body(ROOM, [member(ME, "join"), member("@alice:x", "join")]))
    asked_at = cache.sync_count
    answer = [member(ME, "join"), member("@alice:x", "leave")]
    cache.apply_state(ROOM, json.dumps(answer).encode(), asked_at=asked_at)
    info = cache.get(ROOM)
    assert info is not None
    assert info.members["@alice:x"].membership == "leave"


# ---- 5. power levels at and beyond the integer limits ------------------------


def test_5_power_levels_outside_the_json_range_are_ignored() -> None:
    users = {
        "@min:x": "-9223372036854775808",  # llabs(LLONG_MIN) was undefined
        "@over:x": "9007199254740992",
        "@under:x": -9007199254740992,
        "@edge:x": "-9007199254740991",
        "@num:x": 9007199254740991,
    }
    pl = {
        "type": "m.room.power_levels",
        "state_key": "",
        "sender": ME,
        "content": {"users": users, "users_default": 7},
    }
    cache = _core.RoomCache(ME)
    cache.apply_sync(sync_body(ROOM, [member(ME, "join"), pl]))
    info = cache.get(ROOM)
    assert info is not None
    assert info.power_level("@min:x") == 7
    assert info.power_level("@over:x") == 7
    assert info.power_level("@under:x") == 7
    assert info.power_level("@edge:x") == -9007199254740991
    assert info.power_level("@num:x") == 9007199254740991


# ---- 6. hostile lists: correct (their cost is in bench/) ----------------------


def test_6_long_lists_with_duplicates_keep_first_occurrences_in_order() -> None:
    pinned = [f"$e{i % 3000}" for i in range(10000)]  # duplicates, > the cap
    aliases = [f"#a{i}:x" for i in range(5000)] + ["#a0:x"]
    events = [
        member(ME, "join"),
        {
            "type": "m.room.pinned_events",
            "state_key": "",
            "sender": ME,
            "content": {"pinned": pinned},
        },
        {
            "type": "m.room.canonical_alias",
            "state_key": "",
            "sender": ME,
            "content": {"alias": "#main:x", "alt_aliases": aliases},
        },
    ]
    cache = _core.RoomCache(ME)
    cache.apply_sync(sync_body(ROOM, events))
    info = cache.get(ROOM)
    assert info is not None
    assert info.pinned_events == tuple(f"$e{i}" for i in range(3000))
    assert info.alt_aliases == tuple(f"#a{i}:x" for i in range(4096))


def test_6_m_direct_with_repeated_users_and_rooms() -> None:
    content = {
        "@a:x": ["!r1:x", "!r1:x", "!r2:x"],
        "@b:x": ["!r1:x"],
    }
    body = {"account_data": {"events": [{"type": "m.direct", "content": content}]}}
    raw = json.dumps(body).encode()
    # A repeated user key: the first one counts.
    raw = raw.replace(b'"@b:x": ["!r1:x"]', b'"@b:x": ["!r1:x"], "@a:x": ["!r3:x"]')
    cache = _core.RoomCache(ME)
    cache.apply_sync(raw)
    assert cache.direct_rooms() == {"!r1:x": "@a:x", "!r2:x": "@a:x"}


def test_6_receipts_of_many_receipt_events_are_all_kept_in_order() -> None:
    def receipt(i: int) -> dict[str, Any]:
        return {
            "type": "m.receipt",
            "content": {f"$ev{i}": {"m.read": {f"@u{i}:x": {"ts": i}}}},
        }

    body = {
        "rooms": {
            "join": {ROOM: {"ephemeral": {"events": [receipt(i) for i in range(50)]}}}
        }
    }
    batch = _core.decode_sync(json.dumps({"next_batch": "n", **body}).encode())
    (room,) = batch.rooms
    assert [(r.event_id, r.user_id, r.ts) for r in room.receipts] == [
        (f"$ev{i}", f"@u{i}:x", i) for i in range(50)
    ]


# ---- 7. a callback that restarts the loop -----------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_7_a_callback_restarting_the_loop_is_kept_alive_while_it_runs() -> None:
    with fake_homeserver() as fake:
        fake.route(SYNC, *(Answer(200, {"next_batch": f"n{i}"}) for i in range(5)))
        client = MatrixClient(fake.base_url, "t")
        seen: list[bool] = []
        me: list[weakref.ref[Any]] = []

        def restart(batch: SyncBatch) -> None:
            if seen:
                return
            # Replaces on_batch: the partial's only reference was the client's.
            client.start_sync(lambda b: None, lambda e, f: None, None, 0)
            gc.collect()
            seen.append(me[0]() is not None)

        cb = functools.partial(restart)
        me.append(weakref.ref(cb))
        client.start_sync(cb, lambda e, f: None, None, 0)
        del cb
        try:
            await until(lambda: seen, "the first batch")
        finally:
            client.stop_sync()
    assert seen == [True]


# ---- 8. bad UTF-8 in power level keys and m.direct room ids -------------------


def test_8_one_bad_key_does_not_make_the_getters_raise() -> None:
    pl = (
        b'{"type": "m.room.power_levels", "state_key": "", "sender": "@me:example.org",'
        b' "content": {"users": {"@\xff:x": 50, "@ok:x": 60}}}'
    )
    me = json.dumps(member(ME, "join")).encode()
    direct = b'{"type": "m.direct", "content": {"@a:x": ["!\xfe:x", "!good:x"]}}'
    raw = (
        b'{"rooms": {"join": {"!room:example.org": {"state": {"events": ['
        + me
        + b", "
        + pl
        + b']}}}}, "account_data": {"events": ['
        + direct
        + b"]}}"
    )
    cache = _core.RoomCache(ME)
    cache.apply_sync(raw)
    info = cache.get(ROOM)
    assert info is not None
    users = info.power_levels["users"]
    assert users["@ok:x"] == 60
    assert users["@\ufffd:x"] == 50
    assert cache.direct_rooms() == {"!\ufffd:x": "@a:x", "!good:x": "@a:x"}


# ---- 9. JSON both ways: duplicate keys, NUL ----------------------------------


def test_9_a_duplicate_key_reads_the_same_in_fields_and_content() -> None:
    ev = (
        b'{"type": "m.room.message", "event_id": "$1", "sender": "@a:x",'
        b' "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "first",'
        b' "body": "second"}}'
    )
    raw = (
        b'{"next_batch": "n", "rooms": {"join": {"!r:x": {"timeline": {"events": ['
        + ev
        + b"]}}}}}"
    )
    (room,) = _core.decode_sync(raw).rooms
    (event,) = room.timeline
    assert event.message is not None
    assert event.message.text == "first"
    assert event.content["body"] == "first"
    assert event.source["content"]["body"] == "first"


@pytest.mark.asyncio(loop_scope="session")
async def test_9_a_nul_in_a_string_or_key_is_refused_not_cut() -> None:
    client = _core.Client("http://127.0.0.1:9", "t")
    fut = asyncio.get_running_loop().create_future()
    with pytest.raises(ValueError, match="NUL"):
        client.send_event(fut, ROOM, "m.room.message", "t1", {"body": "a\x00b"})
    with pytest.raises(ValueError, match="NUL"):
        client.send_event(fut, ROOM, "m.room.message", "t2", {"bo\x00dy": "ab"})
    assert not fut.done()


# ---- 10. acknowledging a batch from before a restart --------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_10_an_ack_of_a_batch_from_an_earlier_loop_is_ignored() -> None:
    with fake_homeserver() as fake:
        fake.route(SYNC, *(Answer(200, {"next_batch": f"n{i}"}) for i in range(20)))
        client = MatrixClient(fake.base_url, "t")
        batches: list[SyncBatch] = []

        def start() -> None:
            client.start_sync(batches.append, lambda e, f: None, None, 0)

        start()
        try:
            await until(
                lambda: len(batches) == MAX_UNDELIVERED, "the first loop's batches"
            )
            old = list(batches)
            batches.clear()
            start()  # a restart: nothing of the old loop waits any more
            await until(
                lambda: len(batches) == MAX_UNDELIVERED, "the new loop's batches"
            )
            sent = len(fake.requests_to(SYNC))
            for b in old:
                client._c.sync_ack(b)
            client._c.sync_ack(batch=old[0])
            await asyncio.sleep(0.3)
            # The new loop still holds MAX_UNDELIVERED batches unacknowledged.
            assert len(fake.requests_to(SYNC)) == sent
            assert len(batches) == MAX_UNDELIVERED
            client._c.sync_ack(batches[0])
            client._c.sync_ack(batches[0])  # twice the same: counts once
            await until(lambda: len(batches) == MAX_UNDELIVERED + 1, "one more batch")
            await asyncio.sleep(0.3)
            assert len(batches) == MAX_UNDELIVERED + 1
        finally:
            client.stop_sync()


# ---- 11. process-wide state --------------------------------------------------

FOREIGN_HOOKS = """
import ctypes, json
from matridge import _core
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t)
FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
calls = [0]
def counted_malloc(n):
    calls[0] += 1
    return libc.malloc(n)
class Hooks(ctypes.Structure):
    _fields_ = [("malloc_fn", MALLOC), ("free_fn", FREE)]
hooks = Hooks(MALLOC(counted_malloc), FREE(lambda p: libc.free(p)))
lib = ctypes.CDLL("libcjson.so.1")
lib.cJSON_malloc.restype = ctypes.c_void_p
lib.cJSON_malloc.argtypes = [ctypes.c_size_t]
lib.cJSON_free.argtypes = [ctypes.c_void_p]
lib.cJSON_InitHooks(ctypes.byref(hooks))  # another user of libcjson installs its own
lib.cJSON_free(lib.cJSON_malloc(8))
print("hooks live:", calls[0])
calls[0] = 0
event = {"type": "m.room.message", "event_id": "$e", "sender": "@a:x",
         "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "hi"}}
room = {"timeline": {"events": [event]}}
body = json.dumps({"next_batch": "n", "rooms": {"join": {"!r:x": room}}}).encode()
(ev,) = _core.decode_sync(body).rooms[0].timeline
print("decoded:", ev.body, ev.sender)
print("through the hooks:", calls[0])
"""


def test_11_decoding_does_not_go_through_cjsons_process_wide_hooks() -> None:
    # cJSON_InitHooks sets globals of the shared libcjson: decoding parses
    # with matridge's own parser into the batch's arena, so another user's
    # hooks neither see nor serve any of it (and matridge installs none).
    out = subprocess.run(
        [sys.executable, "-c", FOREIGN_HOOKS],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    ).stdout
    assert "hooks live: 1" in out, out
    assert "decoded: hi @a:x" in out, out
    assert "through the hooks: 0" in out, out


# The extension file itself, not the matridge package (whose other imports
# may refuse subinterpreters for reasons of their own), in an interpreter
# that shares the GIL: one with its own GIL refuses every module that does not
# declare support for that, slot or not.
SUBINTERPRETER = """
import _interpreters
from matridge import _core
cfg = _interpreters.new_config("isolated", gil="shared")
code = (
    "import importlib.machinery as m, importlib.util as u\\n"
    "spec = u.spec_from_file_location('matridge._core', %r)\\n"
    "u.module_from_spec(spec)\\n" % (_core.__file__,)
)
err = _interpreters.exec(_interpreters.create(cfg), code)
print("imported" if err is None else err.msg)
"""


def test_11_the_module_refuses_a_second_interpreter() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SUBINTERPRETER],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    ).stdout.strip()
    assert "does not support loading in subinterpreters" in out, out


def test_9_a_power_level_given_twice_keeps_the_first() -> None:
    # qsort is not stable: which duplicate survived depended on the order.
    keys = ", ".join(f'"@u{i}:x": {i}' for i in range(40))
    pl = (
        '{"type": "m.room.power_levels", "state_key": "", "sender": "@me:example.org",'
        f' "content": {{"users": {{"@dup:x": 1, {keys}, "@dup:x": 2, "@dup:x": 3}}}}}}'
    )
    me = json.dumps(member(ME, "join"))
    raw = '{"rooms": {"join": {"!room:example.org": {"state": {"events": [%s, %s]}}}}}'
    cache = _core.RoomCache(ME)
    cache.apply_sync((raw % (me, pl)).encode())
    info = cache.get(ROOM)
    assert info is not None
    assert info.power_level("@dup:x") == 1
    assert info.power_levels["users"]["@dup:x"] == 1


def test_room_ids_of_an_empty_cache() -> None:
    # Found by fuzz_rooms: qsort(NULL, 0) is undefined (UBSan).
    assert _core.RoomCache(ME).room_ids() == ()
