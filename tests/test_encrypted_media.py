"""Encrypted attachments through the real media repository: a file sent
into an encrypted room is uploaded as ciphertext and named by a ``file``
object, and an event's ``file`` is downloaded, checked and decrypted before
it is shown. What cannot be decrypted (a changed file, a malformed
description) becomes a text naming the file and the reason.

These drive :mod:`matridge.media` directly with a logged-in MatrixClient; the
XMPP side is a recorder standing in for the slidge entity, the outbound side
one standing in for Outbound (the whole gateway's tests are elsewhere)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import os
import threading
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from slidge.util.types import LegacyAttachment, XMPPAttachment

from matridge import config, encrypted_media, media
from matridge.crypto.primitives import (
    AttachmentKey,
    decrypt_attachment,
    encrypt_attachment,
)
from matridge.matrix import MatrixClient, RoomInfo, decode_event
from matridge.outbound import Outbound
from matridge.state import RecentIds
from tests.api_helpers import logged_in
from tests.conftest import new_matrix_user
from tests.harness.fake_homeserver import Answer, FakeHomeserver, fake_homeserver
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.test_media import png

pytestmark = pytest.mark.asyncio(loop_scope="session")

CAP = 3_000_000  # the cap these tests run with, over the 2 MB file


@pytest.fixture(autouse=True)
def media_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MEDIA_MAX_BYTES", CAP)


@pytest.fixture
def upload_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHomeserver]:
    """Stands in for the XMPP server's upload service, on loopback (so it is
    listed in FETCH_ALLOW_HOSTS, as an admin lists theirs)."""
    monkeypatch.setattr(config, "FETCH_ALLOW_HOSTS", "127.0.0.1")
    with fake_homeserver() as fake:
        yield fake


# ---- stand-ins for the parts around media.py --------------------------------


@dataclass
class Shown:
    """One file as the XMPP side received it (read before the gateway's
    temporary directory goes)."""

    name: str | None
    content_type: str | None
    size: int | None
    data: bytes
    path: Path
    beside: list[str]  # the other files in its temporary directory


@dataclass
class Recorder:
    """The slidge entity showing a Matrix user's messages (a MediaSender)."""

    session: Any
    texts: list[str] = field(default_factory=list)
    files: list[Shown] = field(default_factory=list)

    def send_text(self, body: str, legacy_msg_id: str | None = None, **_: Any) -> None:
        self.texts.append(body)

    async def send_files(
        self,
        attachments: Collection[LegacyAttachment],
        legacy_msg_id: str | None = None,
        body: str | None = None,
        **_: Any,
    ) -> None:
        for a in attachments:
            assert a.path is not None
            path = Path(a.path)
            data = await asyncio.to_thread(path.read_bytes)
            beside = sorted(p.name for p in path.parent.iterdir() if p != path)
            self.files.append(Shown(a.name, a.content_type, a.size, data, path, beside))


@dataclass
class SentEvents:
    """Stands in for Outbound: records what would be sent, and asks the
    real Outbound whether a room is encrypted."""

    matrix: MatrixClient
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def is_encrypted(self, room_id: str) -> bool:
        return await Outbound(self.matrix, "x@y", RecentIds(10)).is_encrypted(room_id)

    def txn_id(self, part: int = 0) -> str:
        return f"t{uuid.uuid4().hex}.{part}"

    async def send(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        txn_id: str | None = None,
    ) -> str:
        self.events.append((room_id, event_type, content))
        return f"${uuid.uuid4().hex}"


@dataclass
class StandInSession:
    """What media.py reads of a session: the client, the sends, and the
    room cache the way matridge's Session reads it."""

    matrix: MatrixClient
    outbound: SentEvents = field(init=False)

    def __post_init__(self) -> None:
        self.outbound = SentEvents(self.matrix)

    def room_info(self, room_id: str) -> RoomInfo | None:
        return self.matrix.rooms.get(room_id)

    async def load_room_state(self, room_id: str) -> RoomInfo:
        info = await self.matrix.load_room_state(room_id)
        assert info is not None
        return info


def event_with(content: dict[str, Any], room_id: str = "!room:localhost") -> Any:
    """A timeline event carrying `content`, decoded as the engine decodes one."""
    source = {
        "type": "m.room.message",
        "event_id": f"${uuid.uuid4().hex}",
        "sender": "@fran:localhost",
        "origin_server_ts": 1_700_000_000_000,
        "room_id": room_id,
        "content": content,
    }
    return decode_event(json.dumps(source).encode(), room_id)


async def show(matrix: MatrixClient, content: dict[str, Any]) -> Recorder:
    """Shows a Matrix file event to the recorder, as render.py does."""
    shown = Recorder(session=StandInSession(matrix))
    event = event_with(content)
    assert event.message is not None and event.message.encrypted_file
    await media.send_matrix_media(
        shown,
        event,
        event.message,
        when=None,
        archive_only=False,
        reply_to=None,
        thread=None,
    )
    return shown


def encrypt(data: bytes) -> tuple[bytes, AttachmentKey]:
    out = io.BytesIO()
    key = encrypt_attachment(io.BytesIO(data), out)
    return out.getvalue(), key


def encrypted_content(
    user: MatrixUser, data: bytes, name: str, mimetype: str, *, size: bool = True
) -> dict[str, Any]:
    """A Matrix client's event content for `data` sent as an encrypted file:
    the ciphertext in the media repository, a ``file`` object naming it."""
    ciphertext, key = encrypt(data)
    mxc = user.upload(ciphertext, "application/octet-stream", "encrypted")
    info: dict[str, Any] = {"mimetype": mimetype}
    if size:
        info["size"] = len(data)
    return {
        "msgtype": "m.file",
        "body": name,
        "file": {"url": mxc, **key.to_json()},
        "info": info,
    }


# ---- XMPP → Matrix → XMPP ---------------------------------------------------


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "clear"])
async def test_a_file_for_an_encrypted_room_round_trips_as_ciphertext(
    synapse: Synapse, upload_service: FakeHomeserver, encrypted: bool
) -> None:
    client, user = await logged_in(synapse, "encmedia")
    room_id = user.create_room(name="secrets")
    if encrypted:
        user.send_state(
            room_id, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}
        )
    data = png(64, 48)
    upload_service.route("/share/holiday.png", Answer(body=data))
    session = StandInSession(client)
    attachment = XMPPAttachment(url=f"{upload_service.base_url}/share/holiday.png")

    await media.send_xmpp_attachments(session, room_id, [attachment], "Look!")

    [(_, event_type, content)] = session.outbound.events
    assert event_type == "m.room.message"
    assert content["msgtype"] == "m.image"
    assert content["body"] == "Look!" and content["filename"] == "holiday.png"
    # info describes the picture itself, encrypted or not.
    assert content["info"] == {
        "mimetype": "image/png",
        "size": len(data),
        "w": 64,
        "h": 48,
    }
    other = new_matrix_user(synapse, "reader")
    if not encrypted:
        assert "file" not in content
        assert other.download(content["url"]) == data
        return
    assert "url" not in content
    file = content["file"]
    assert set(file) == {"url", "key", "iv", "hashes", "v"}
    assert file["v"] == "v2"
    assert file["key"]["kty"] == "oct" and file["key"]["alg"] == "A256CTR"
    assert file["key"]["key_ops"] == ["encrypt", "decrypt"]
    assert file["key"]["ext"] is True
    # The media repository holds ciphertext with the announced hash...
    ciphertext = other.download(file["url"])
    assert ciphertext != data and len(ciphertext) == len(data)
    digest = base64.b64encode(hashlib.sha256(ciphertext).digest()).decode().rstrip("=")
    assert file["hashes"]["sha256"] == digest
    plain = io.BytesIO()
    decrypt_attachment(io.BytesIO(ciphertext), plain, AttachmentKey.from_json(file))
    assert plain.getvalue() == data
    # ...and the content, as a Matrix client would send it, shows the picture.
    shown = await show(client, content)
    assert shown.texts == []
    [picture] = shown.files
    assert picture.data == data
    assert (picture.name, picture.content_type, picture.size) == (
        "holiday.png",
        "image/png",
        len(data),
    )
    # The ciphertext went once decrypted, the temporary directory with the
    # transfer.
    assert picture.beside == []
    assert not picture.path.parent.exists()


async def test_each_file_gets_its_own_key(synapse: Synapse, tmp_path: Path) -> None:
    client, user = await logged_in(synapse, "encmedia")
    session = StandInSession(client)
    data = os.urandom(5000)
    with_keys = []
    path = tmp_path / "same.bin"
    path.write_bytes(data)
    file = media.LocalFile(path, "same.bin", len(data), "application/x-test")
    for _ in range(2):
        with_keys.append(await media.upload_media(session, file, encrypt=True))
    first, second = (u.content_fields()["file"] for u in with_keys)
    assert first["key"]["k"] != second["key"]["k"]
    assert first["iv"] != second["iv"]
    assert first["url"] != second["url"]
    assert user.download(first["url"]) != user.download(second["url"])


@dataclass
class Sticker:
    """An XMPP sticker as slidge hands it over (a StickerProtocol)."""

    path: Path
    content_type: str | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    fallback: str | None = None
    reply: None = None
    thread: str | None = None


async def test_a_sticker_for_an_encrypted_room_is_encrypted_too(
    synapse: Synapse, tmp_path: Path
) -> None:
    client, user = await logged_in(synapse, "encmedia")
    room_id = user.create_room()
    user.send_state(room_id, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
    data = png(16, 16)
    path = tmp_path / "cat.png"
    path.write_bytes(data)
    session = StandInSession(client)
    await media.send_sticker(session, room_id, Sticker(path))
    [(_, event_type, content)] = session.outbound.events
    assert event_type == "m.sticker"
    assert "url" not in content
    key = AttachmentKey.from_json(content["file"])
    plain = io.BytesIO()
    decrypt_attachment(io.BytesIO(user.download(content["file"]["url"])), plain, key)
    assert plain.getvalue() == data
    assert content["info"] == {
        "mimetype": "image/png",
        "size": len(data),
        "w": 16,
        "h": 16,
    }


async def test_the_latest_edit_of_an_encrypted_file_is_shown_in_history(
    synapse: Synapse,
) -> None:
    # History shows an event as its latest edit: the file comes from the
    # edit's m.new_content, not from the original event.
    client, user = await logged_in(synapse, "encmedia")
    old = encrypted_content(user, b"first draft", "draft.txt", "text/plain")
    new = encrypted_content(user, b"final text", "final.txt", "text/plain")
    original = event_with(old)
    edit = event_with(
        {
            "msgtype": "m.file",
            "body": "* final.txt",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": original.event_id},
        }
    )
    assert edit.new_message is not None
    shown = Recorder(session=StandInSession(client))
    await media.send_matrix_media(
        shown,
        original,
        edit.new_message,
        when=None,
        archive_only=False,
        reply_to=None,
        thread=None,
        content_event=edit,
    )
    assert shown.texts == []
    assert [(f.name, f.data) for f in shown.files] == [("final.txt", b"final text")]


# ---- Matrix → XMPP: what cannot be decrypted ---------------------------------


async def test_a_changed_ciphertext_becomes_a_text_naming_the_file(
    synapse: Synapse, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="matridge")
    client, user = await logged_in(synapse, "encmedia")
    data = os.urandom(40_000)
    ciphertext, key = encrypt(data)
    changed = bytearray(ciphertext)
    changed[1000] ^= 1
    mxc = user.upload(bytes(changed), "application/octet-stream", "encrypted")
    content = {
        "msgtype": "m.file",
        "body": "minutes.pdf",
        "file": {"url": mxc, **key.to_json()},
        "info": {"mimetype": "application/pdf", "size": len(data)},
    }
    shown = await show(client, content)
    assert shown.files == []
    [text] = shown.texts
    assert "minutes.pdf" in text
    assert "could not be decrypted: its hash does not match" in text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(mxc in w and "SHA-256" in w for w in warnings), warnings
    assert content["file"]["key"]["k"] not in caplog.text


MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "no key": ({"key": None}, "needs key, iv and hashes.sha256"),
    "no hash": ({"hashes": {}}, "needs key, iv and hashes.sha256"),
    "old version": ({"v": "v1"}, "unknown encrypted file version"),
    "another cipher": ({"alg": "A128CBC"}, "not an A256CTR oct key"),
    "short iv": ({"iv": "AAAA"}, "wrong length"),
    "no url": ({"url": 42}, "its description has no URL"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_file_object_becomes_a_text_naming_the_file(
    synapse: Synapse, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.INFO, logger="matridge")
    client, user = await logged_in(synapse, "encmedia")
    content = encrypted_content(user, b"dear diary", "diary.txt", "text/plain")
    change, reason = MALFORMED[case]
    file = content["file"]
    secret = file["key"]["k"]
    if "alg" in change:
        file["key"]["alg"] = change["alg"]
    else:
        file.update(change)
    shown = await show(client, content)
    assert shown.files == []
    [text] = shown.texts
    assert text.startswith("🔒 diary.txt: ")
    assert "could not be decrypted" in text
    assert reason in text
    assert "Not showing the encrypted file" in caplog.text
    assert secret not in caplog.text and secret not in text


# ---- large files: off the event loop, and the cap -----------------------------


async def test_a_large_encrypted_file_is_decrypted_and_encrypted_off_the_loop(
    synapse: Synapse,
    upload_service: FakeHomeserver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: dict[str, list[int]] = {"encrypt": [], "decrypt": []}

    def spy_encrypt(src: Any, dst: Any) -> AttachmentKey:
        threads["encrypt"].append(threading.get_ident())
        return encrypt_attachment(src, dst)

    def spy_decrypt(src: Any, dst: Any, key: AttachmentKey) -> None:
        threads["decrypt"].append(threading.get_ident())
        decrypt_attachment(src, dst, key)

    monkeypatch.setattr(encrypted_media, "encrypt_attachment", spy_encrypt)
    monkeypatch.setattr(encrypted_media, "decrypt_attachment", spy_decrypt)
    loop_thread = threading.get_ident()
    client, user = await logged_in(synapse, "encmedia")
    room_id = user.create_room()
    user.send_state(room_id, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
    session = StandInSession(client)

    for size, off_loop in [(2_000_000, True), (1000, False)]:
        data = os.urandom(size)
        upload_service.route(f"/share/{size}.bin", Answer(body=data))
        url = f"{upload_service.base_url}/share/{size}.bin"
        await media.send_xmpp_attachments(
            session, room_id, [XMPPAttachment(url=url)], ""
        )
        content = session.outbound.events[-1][2]
        shown = await show(client, content)
        assert [f.data for f in shown.files] == [data]
        for kind in ("encrypt", "decrypt"):
            ran_on = threads[kind].pop()
            assert (ran_on != loop_thread) is off_loop, (size, kind)


async def test_an_encrypted_file_over_the_cap_becomes_the_over_cap_text(
    synapse: Synapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "MEDIA_MAX_BYTES", 100_000)
    client, user = await logged_in(synapse, "encmedia")
    data = os.urandom(150_000)
    for announced in (True, False):
        # Announced: refused before the download; not announced: the
        # download of the ciphertext stops at the cap.
        content = encrypted_content(
            user, data, "film.mkv", "video/x-matroska", size=announced
        )
        shown = await show(client, content)
        assert shown.files == []
        [text] = shown.texts
        assert text == media.over_cap_text(
            "film.mkv", len(data) if announced else None, 100_000
        )
