"""What the C core hands the end-to-end encryption code: the device's key
counts and fallback key types, to-device events and m.room.encrypted events
with their fields, and decode_event, which turns a decrypted event into the
same view a clear one gets. Offline over /sync shapes from the spec, then
through a real Synapse and the engine's sync loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nio
import pytest

from matridge import _core
from matridge.crypto.primitives import random_bytes
from matridge.crypto.store import KeyStore
from matridge.matrix import (
    Event,
    MatrixClient,
    SyncBatch,
    decode_event,
    decrypted_event,
    sync_filter_for,
)
from tests.api_helpers import logged_in
from tests.harness.synapse import Synapse
from tests.test_crypto_device import encrypted_room, nio_sync, nio_user, our_device
from tests.test_sync import Recorder

MEGOLM = "m.megolm.v1.aes-sha2"
OLM = "m.olm.v1.curve25519-aes-sha2"
ROOM = "!room:example.org"

# Key material shaped as the spec shows it (unpadded base64); Synapse checks
# neither the keys nor their signatures on upload.
SENDER_KEY = "mXEhqnBGV3U1fwFEw6GvNtcXNHJOkiCpJQyfTTXjvVI"
SESSION_ID = "qfDx4vKZvJ7tJ2Rp0m4mqgZcJnU8cPIzhpDK2cS2wNo"
MEGOLM_CIPHERTEXT = "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg"

MEGOLM_CONTENT = {
    "algorithm": MEGOLM,
    "sender_key": SENDER_KEY,
    "device_id": "RJYKSTBOIE",
    "session_id": SESSION_ID,
    "ciphertext": MEGOLM_CIPHERTEXT,
}

OLM_CONTENT = {
    "algorithm": OLM,
    "sender_key": SENDER_KEY,
    "ciphertext": {
        "7qZcfnBmbEGzxxaWfBjElJuvn7BZx+2gg7yChk3kS5o": {"type": 0, "body": "Awogbase64"}
    },
}


def sync_body(**top: Any) -> bytes:
    return json.dumps({"next_batch": "s72595_4483_1934", **top}).encode()


def encrypted_room_event(**extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.encrypted",
        "event_id": "$enc:example.org",
        "sender": "@alice:example.org",
        "origin_server_ts": 1432735824653,
        "unsigned": {"age": 1234},
        "content": dict(MEGOLM_CONTENT),
        **extra,
    }


def timeline_of(*events: dict[str, Any]) -> bytes:
    return sync_body(rooms={"join": {ROOM: {"timeline": {"events": list(events)}}}})


# ---- the device's key counts ------------------------------------------------


def test_key_counts_and_fallback_types_as_the_spec_shows_them() -> None:
    batch = _core.decode_sync(
        sync_body(
            device_one_time_keys_count={"signed_curve25519": 20, "curve25519": 0},
            device_unused_fallback_key_types=["signed_curve25519"],
            device_lists={
                "changed": ["@alice:example.org"],
                "left": ["@bob:example.org"],
            },
        )
    )
    assert batch.one_time_key_counts == {"signed_curve25519": 20, "curve25519": 0}
    assert batch.unused_fallback_key_types == ("signed_curve25519",)
    assert batch.device_lists_changed == ("@alice:example.org",)
    assert batch.device_lists_left == ("@bob:example.org",)


def test_absent_fallback_types_are_unknown_and_empty_ones_are_none_unused() -> None:
    absent = _core.decode_sync(sync_body())
    assert absent.unused_fallback_key_types is None
    assert absent.one_time_key_counts == {}
    empty = _core.decode_sync(sync_body(device_unused_fallback_key_types=[]))
    assert empty.unused_fallback_key_types == ()


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"signed_curve25519": -1}, {}),
        ({"signed_curve25519": 1.5}, {}),
        ({"signed_curve25519": "20"}, {}),
        ({"signed_curve25519": 1e300}, {}),
        ({"a": None, "b": 3}, {"b": 3}),
        ([1, 2], {}),
        ("20", {}),
    ],
)
def test_counts_that_are_not_counts_are_left_out(counts: Any, expected: Any) -> None:
    batch = _core.decode_sync(sync_body(device_one_time_keys_count=counts))
    assert batch.one_time_key_counts == expected


@pytest.mark.parametrize("types", ["signed_curve25519", {"a": 1}, 7, None])
def test_fallback_types_that_are_not_a_list_read_as_unknown(types: Any) -> None:
    batch = _core.decode_sync(sync_body(device_unused_fallback_key_types=types))
    assert batch.unused_fallback_key_types is None


def test_with_duplicate_algorithms_the_first_count_wins() -> None:
    data = (
        b'{"next_batch": "s", "device_one_time_keys_count": {"a": 1, "a": 2, "b": 3}}'
    )
    assert _core.decode_sync(data).one_time_key_counts == {"a": 1, "b": 3}


def test_fallback_types_keep_only_strings() -> None:
    batch = _core.decode_sync(
        sync_body(device_unused_fallback_key_types=["signed_curve25519", 1, None])
    )
    assert batch.unused_fallback_key_types == ("signed_curve25519",)


# ---- to-device and m.room.encrypted ----------------------------------------


def test_to_device_events_carry_their_content_and_olm_fields() -> None:
    olm = {
        "type": "m.room.encrypted",
        "sender": "@alice:example.org",
        "content": OLM_CONTENT,
    }
    custom = {
        "type": "org.example.ping",
        "sender": "@alice:example.org",
        "content": {"nested": {"list": [1, "two", None, True]}},
    }
    batch = _core.decode_sync(sync_body(to_device={"events": [olm, custom, "junk"]}))
    first, second, junk = batch.to_device
    assert (first.kind, first.encrypted, first.decrypted) == ("encrypted", True, False)
    assert first.invalid is None
    assert (first.algorithm, first.sender_key) == (OLM, SENDER_KEY)
    assert first.ciphertext == OLM_CONTENT["ciphertext"]
    assert first.session_id is None
    assert first.content == OLM_CONTENT
    assert first.source == olm  # what Device.process_to_device takes
    assert second.content == custom["content"]
    assert second.algorithm is None  # typed fields only for m.room.encrypted
    assert junk.invalid is not None


def test_megolm_timeline_event_fields() -> None:
    (room,) = _core.decode_sync(timeline_of(encrypted_room_event())).rooms
    (ev,) = room.timeline
    assert (ev.kind, ev.encrypted, ev.decrypted, ev.invalid) == (
        "encrypted",
        True,
        False,
        None,
    )
    assert (ev.algorithm, ev.sender_key, ev.session_id, ev.device_id) == (
        MEGOLM,
        SENDER_KEY,
        SESSION_ID,
        "RJYKSTBOIE",
    )
    assert ev.ciphertext == MEGOLM_CIPHERTEXT
    assert ev.content == MEGOLM_CONTENT
    assert ev.message is None


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"algorithm": 1, "sender_key": [], "session_id": {}, "ciphertext": 5},
        {"ciphertext": ["a"], "device_id": None},
    ],
)
def test_encrypted_fields_of_the_wrong_type_read_as_none(
    content: dict[str, Any],
) -> None:
    (room,) = _core.decode_sync(
        timeline_of(encrypted_room_event(content=content))
    ).rooms
    (ev,) = room.timeline
    assert ev.encrypted
    assert (
        ev.algorithm,
        ev.sender_key,
        ev.session_id,
        ev.ciphertext,
        ev.device_id,
    ) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_other_events_have_no_encrypted_fields() -> None:
    clear = {
        "type": "m.room.message",
        "event_id": "$c",
        "sender": "@a:x",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "x", **MEGOLM_CONTENT},
    }
    (room,) = _core.decode_sync(timeline_of(clear)).rooms
    (ev,) = room.timeline
    assert (ev.algorithm, ev.ciphertext, ev.encrypted, ev.decrypted) == (
        None,
        None,
        False,
        False,
    )


# ---- decode_event: decrypted events decode like clear ones -----------------

# What a view shows the inbound code: a decrypted event must match a clear
# one on each of these.
EVENT_FIELDS = (
    "event_id type sender origin_server_ts kind msgtype body invalid rel_type "
    "relates_to in_reply_to reaction_key is_falling_back thread_root redacted "
    "transaction_id content"
).split()
MESSAGE_FIELDS = (
    "msgtype body format formatted_body text url filename mimetype "
    "thumbnail_url size width height duration encrypted_file geo_uri "
    "mention_spans mentioned_user_ids mentions_room has_mentions"
).split()


def clear_event(
    content: dict[str, Any], type: str = "m.room.message"
) -> dict[str, Any]:
    return {
        "type": type,
        "event_id": "$decrypted:example.org",
        "sender": "@alice:example.org",
        "origin_server_ts": 1432735824653,
        "unsigned": {"age": 5, "transaction_id": "m1"},
        "room_id": ROOM,
        "content": content,
    }


def message_view(msg: Any) -> dict[str, Any] | None:
    if msg is None:
        return None
    return {name: getattr(msg, name) for name in MESSAGE_FIELDS}


def event_view(ev: Event) -> dict[str, Any]:
    view = {name: getattr(ev, name) for name in EVENT_FIELDS}
    view["message"] = message_view(ev.message)
    view["new_message"] = message_view(ev.new_message)
    return view


PLAINTEXTS = {
    "text": {"msgtype": "m.text", "body": "hello *there*"},
    "html": {
        "msgtype": "m.text",
        "body": "hello there",
        "format": "org.matrix.custom.html",
        "formatted_body": "<b>hello</b> <i>there</i> <a href='https://matrix.to/#/@bob:x'>Bob</a>",
    },
    "reply": {
        "msgtype": "m.text",
        "body": "> <@bob:x> original\n\nthe answer",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$original:example.org"}},
    },
    "image": {
        "msgtype": "m.image",
        "body": "cat.png",
        "url": "mxc://example.org/cat",
        "info": {"mimetype": "image/png", "size": 31037, "w": 394, "h": 398},
    },
    "encrypted image": {
        "msgtype": "m.image",
        "body": "cat.png",
        "file": {"url": "mxc://example.org/secretcat", "v": "v2"},
        "info": {"mimetype": "image/png", "size": 31037},
    },
    "edit": {
        "msgtype": "m.text",
        "body": "* fixed",
        "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$old:example.org"},
    },
    "thread": {
        "msgtype": "m.text",
        "body": "in thread",
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": "$root:example.org",
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": "$last:example.org"},
        },
    },
}


@pytest.mark.parametrize("name", sorted(PLAINTEXTS))
def test_a_decrypted_message_decodes_like_the_clear_one(name: str) -> None:
    source = clear_event(PLAINTEXTS[name])
    (room,) = _core.decode_sync(timeline_of(source)).rooms
    (clear,) = room.timeline
    decrypted = decode_event(json.dumps(source).encode(), ROOM)
    assert decrypted.decrypted and not clear.decrypted
    assert not decrypted.encrypted
    assert event_view(decrypted) == event_view(clear)
    assert decrypted.source == source
    assert decrypted.message is not None


def test_decoded_html_and_relations_are_the_expected_ones() -> None:
    html = decode_event(json.dumps(clear_event(PLAINTEXTS["html"])).encode(), ROOM)
    assert html.message is not None and html.message.text == "*hello* _there_ Bob"
    reply = decode_event(json.dumps(clear_event(PLAINTEXTS["reply"])).encode(), ROOM)
    assert reply.in_reply_to == "$original:example.org"
    assert reply.message is not None and reply.message.text == "the answer"
    image = decode_event(json.dumps(clear_event(PLAINTEXTS["image"])).encode(), ROOM)
    assert image.message is not None
    assert (image.message.url, image.message.mimetype, image.message.size) == (
        "mxc://example.org/cat",
        "image/png",
        31037,
    )
    assert (image.message.width, image.message.height) == (394, 398)


def test_decrypted_event_merges_the_outer_event_and_the_plaintext() -> None:
    (room,) = _core.decode_sync(timeline_of(encrypted_room_event())).rooms
    (outer,) = room.timeline
    plaintext = {
        "type": "m.room.message",
        "content": PLAINTEXTS["html"],
        "room_id": ROOM,
    }
    ev = decrypted_event(outer, plaintext, ROOM)
    assert ev.decrypted and ev.invalid is None
    assert (ev.event_id, ev.sender, ev.origin_server_ts) == (
        "$enc:example.org",
        "@alice:example.org",
        1432735824653,
    )
    assert ev.kind == "message" and ev.body == "hello there"
    assert ev.source["unsigned"] == {"age": 1234}


def test_a_relation_kept_only_in_the_clear_reaches_the_decrypted_event() -> None:
    relation = {"rel_type": "m.annotation", "event_id": "$msg:x", "key": "👍"}
    outer_event = encrypted_room_event()
    outer_event["content"] = {**MEGOLM_CONTENT, "m.relates_to": relation}
    (room,) = _core.decode_sync(timeline_of(outer_event)).rooms
    (outer,) = room.timeline
    reaction = decrypted_event(outer, {"type": "m.reaction", "content": {}}, ROOM)
    assert reaction.kind == "reaction"
    assert (reaction.relates_to, reaction.reaction_key) == ("$msg:x", "👍")
    # A relation in the plaintext is the one that counts.
    reply = decrypted_event(
        outer, {"type": "m.room.message", "content": PLAINTEXTS["reply"]}, ROOM
    )
    assert reply.in_reply_to == "$original:example.org"


def test_a_plaintext_from_another_room_is_invalid() -> None:
    (room,) = _core.decode_sync(timeline_of(encrypted_room_event())).rooms
    (outer,) = room.timeline
    plaintext = {
        "type": "m.room.message",
        "content": PLAINTEXTS["text"],
        "room_id": "!other:x",
    }
    ev = decrypted_event(outer, plaintext, ROOM)
    assert ev.invalid == "the event names another room"
    assert ev.body == "hello *there*"  # still readable for a log line


def test_a_plaintext_without_room_id_is_taken_as_this_room() -> None:
    source = clear_event(PLAINTEXTS["text"])
    del source["room_id"]
    assert decode_event(json.dumps(source).encode(), ROOM).invalid is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"type": "m.room.message"} trailing', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'"m.room.message"', "not a JSON object"),
        (b"null", "not a JSON object"),
    ],
)
def test_malformed_event_json_is_a_value_error(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=f"cannot decode this event: it is {reason}"):
        decode_event(data, ROOM)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({}, "the event has no string 'type'"),
        ({"type": "m.room.message"}, "the event has no 'content'"),
        (clear_event({"msgtype": "m.text"}), "the message has no string 'body'"),
        (
            {**clear_event(PLAINTEXTS["text"]), "event_id": 5},
            "the event has no string 'event_id'",
        ),
        (
            {**clear_event(PLAINTEXTS["text"]), "content": []},
            "the event's 'content' is not an object",
        ),
    ],
)
def test_events_missing_fields_decode_as_invalid(
    event: dict[str, Any], reason: str
) -> None:
    assert decode_event(json.dumps(event).encode(), ROOM).invalid == reason


def test_decode_event_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        decode_event("a str is not bytes", ROOM)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decode_event(b"{}", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        decode_event(b"{}", "!a\0b")
    view = decode_event(
        memoryview(bytearray(json.dumps(clear_event(PLAINTEXTS["text"])).encode())),
        ROOM,
    )
    assert view.body == "hello *there*"


def test_a_decoded_event_outlives_its_input() -> None:
    data = bytearray(json.dumps(clear_event(PLAINTEXTS["html"])).encode())
    ev = decode_event(data, ROOM)
    msg = ev.message
    data[:] = b"x" * len(data)
    del ev
    assert msg is not None and msg.text == "*hello* _there_ Bob"


# ---- through Synapse and the engine's sync loop ----------------------------

pytestmark_asyncio = pytest.mark.asyncio(loop_scope="session")


async def device_id_of(client: MatrixClient) -> str:
    whoami = await client.request("GET", "/_matrix/client/v3/account/whoami")
    return str(whoami["device_id"])


async def batch_where(rec: Recorder, client: MatrixClient, ok: Any) -> SyncBatch:
    """The first batch of the loop for which ok(batch) holds (each one acked)."""
    for _ in range(20):
        batch = await rec.batch()
        client.sync_ack()
        if ok(batch):
            return batch
    raise AssertionError("no batch brought it")


@pytestmark_asyncio
async def test_uploaded_keys_are_counted_in_the_next_batch(synapse: Synapse) -> None:
    client, me = await logged_in(synapse, "otk")
    device = await device_id_of(client)
    rec = Recorder()
    rec.start(client)
    try:
        first = await rec.batch()
        client.sync_ack()
        assert first.one_time_key_counts.get("signed_curve25519", 0) == 0
        assert first.unused_fallback_key_types == ()
        signatures = {me.user_id: {f"ed25519:{device}": "c2lnbmF0dXJl"}}
        uploaded = await client.request(
            "POST",
            "/_matrix/client/v3/keys/upload",
            body={
                "one_time_keys": {
                    f"signed_curve25519:AAAAA{i}": {
                        "key": f"{SENDER_KEY[:-1]}{i}",
                        "signatures": signatures,
                    }
                    for i in range(3)
                },
                "fallback_keys": {
                    "signed_curve25519:AAAAAG": {
                        "key": SESSION_ID,
                        "fallback": True,
                        "signatures": signatures,
                    }
                },
            },
        )
        assert uploaded["one_time_key_counts"]["signed_curve25519"] == 3
        batch = await batch_where(
            rec, client, lambda b: b.one_time_key_counts.get("signed_curve25519") == 3
        )
        assert batch.unused_fallback_key_types == ("signed_curve25519",)
    finally:
        client.stop_sync()


@pytestmark_asyncio
async def test_to_device_and_encrypted_events_arrive_whole(synapse: Synapse) -> None:
    client, me = await logged_in(synapse, "e2eeme")
    friend_client, friend = await logged_in(synapse, "e2eefriend")
    device = await device_id_of(client)
    room = me.create_room(name="Encrypted shapes")
    me.invite(room, friend.user_id)
    friend.join(room)
    rec = Recorder()
    # The session's own filter: it must let to-device events through.
    rec.start(client, sync_filter=sync_filter_for(me.user_id))
    try:
        await rec.batch()
        client.sync_ack()
        await friend_client.request(
            "PUT",
            "/_matrix/client/v3/sendToDevice/{}/{}",
            "m.room.encrypted",
            "txn-olm-1",
            body={"messages": {me.user_id: {device: OLM_CONTENT}}},
        )
        event_id = friend.send_event(room, "m.room.encrypted", MEGOLM_CONTENT)
        got: dict[str, Event] = {}

        def seen(batch: SyncBatch) -> bool:
            for ev in batch.to_device:
                got["to_device"] = ev
            for r in batch.rooms:
                for ev in r.timeline:
                    if ev.event_id == event_id:
                        got["room"] = ev
            return len(got) == 2

        await batch_where(rec, client, seen)
    finally:
        client.stop_sync()
    td = got["to_device"]
    assert (td.type, td.sender, td.kind) == (
        "m.room.encrypted",
        friend.user_id,
        "encrypted",
    )
    assert (td.algorithm, td.sender_key, td.ciphertext) == (
        OLM,
        SENDER_KEY,
        OLM_CONTENT["ciphertext"],
    )
    assert td.content == OLM_CONTENT
    assert td.source["content"] == OLM_CONTENT and td.source["sender"] == friend.user_id
    ev = got["room"]
    assert ev.invalid is None and ev.encrypted and not ev.decrypted
    assert (ev.algorithm, ev.session_id, ev.ciphertext, ev.device_id) == (
        MEGOLM,
        SESSION_ID,
        MEGOLM_CIPHERTEXT,
        "RJYKSTBOIE",
    )
    # What the gateway does once vodozemac gave the plaintext back.
    plaintext = {
        "type": "m.room.message",
        "content": PLAINTEXTS["reply"],
        "room_id": room,
    }
    clear = decrypted_event(ev, plaintext, room)
    assert (clear.event_id, clear.sender, clear.kind) == (
        event_id,
        friend.user_id,
        "message",
    )
    assert clear.in_reply_to == "$original:example.org"
    assert clear.message is not None and clear.message.text == "the answer"


@pytestmark_asyncio
async def test_the_engines_batches_feed_the_device_and_a_megolm_message_decodes(
    synapse: Synapse, tmp_path: Path
) -> None:
    """The whole path with a real other device (matrix-nio): the key counts
    of a batch go to Device.replenish, its to-device events (as their
    source) to Device.process_to_device, and the Megolm event of the
    timeline, decrypted with the room key they brought, decodes through
    decrypted_event into the view a clear message gets."""
    store = KeyStore.open(tmp_path / "keys.sqlite", random_bytes(32))
    try:
        ours = await our_device(synapse, store)
        await ours.device.upload_keys()
        async with nio_user(synapse, tmp_path) as peer:
            room = encrypted_room(ours, peer)
            await nio_sync(peer)
            client = ours.client
            rec = Recorder()
            rec.start(client, sync_filter=sync_filter_for(ours.device.user_id))
            try:
                first = await rec.batch()
                client.sync_ack()
                counts = await ours.device.replenish(
                    first.one_time_key_counts, first.unused_fallback_key_types
                )
                assert counts["signed_curve25519"] == ours.device.one_time_key_target
                sent = await peer.room_send(
                    room,
                    "m.room.message",
                    {
                        "msgtype": "m.text",
                        "body": "over megolm",
                        "format": "org.matrix.custom.html",
                        "formatted_body": "<b>over</b> megolm",
                    },
                    ignore_unverified_devices=True,
                )
                assert isinstance(sent, nio.RoomSendResponse), sent
                to_device: list[dict[str, Any]] = []
                found: list[Event] = []

                def seen(batch: SyncBatch) -> bool:
                    to_device.extend(ev.source for ev in batch.to_device)
                    found.extend(
                        ev
                        for r in batch.rooms
                        for ev in r.timeline
                        if ev.event_id == sent.event_id
                    )
                    return bool(to_device and found)

                await batch_where(rec, client, seen)
            finally:
                client.stop_sync()
            await ours.device.track_senders(to_device)
            result = ours.device.process_to_device(to_device)
            assert result.refused == []
            (outer,) = found
            assert outer.encrypted and outer.algorithm == MEGOLM
            assert isinstance(outer.ciphertext, str) and outer.session_id is not None
            assert outer.sender_key is not None
            assert result.room_keys == [(room, outer.sender_key, outer.session_id)]
            record = store.inbound_group_session(
                room, outer.sender_key, outer.session_id
            )
            assert record is not None
            plaintext = json.loads(record.session.decrypt(outer.ciphertext).plaintext)
            clear = decrypted_event(outer, plaintext, room)
            assert clear.invalid is None and clear.decrypted and not clear.encrypted
            assert (clear.event_id, clear.sender, clear.kind) == (
                sent.event_id,
                peer.user_id,
                "message",
            )
            assert clear.body == "over megolm"
            assert clear.message is not None and clear.message.text == "*over* megolm"
    finally:
        store.close()
