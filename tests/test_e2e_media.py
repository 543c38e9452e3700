"""Files both ways, end to end: Matrix media reaches the XMPP user as an
attachment on Prosody's upload service (bytes intact), and files the user
sends over XMPP reach the Matrix room as media events; what cannot go (too
large, unreachable, an encrypted file that does not decrypt) arrives as a
readable text or error; encrypted files are decrypted on the way."""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slixmpp import Message

from matridge.crypto.primitives import encrypt_attachment
from matridge.media import (
    describe_file,
    human_size,
    msgtype_for,
    name_from_url,
    safe_file_name,
)
from tests.conftest import MEDIA_MAX_BYTES, Person, unique
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.ports import free_port
from tests.harness.prosody import Prosody
from tests.harness.synapse import Synapse
from tests.scenarios import Club, book_club, groupchat_from, register
from tests.test_media import png

pytestmark = pytest.mark.asyncio(loop_scope="session")

NS_STICKERS = "urn:xmpp:stickers:0"
NS_SIMS = "urn:xmpp:sims:1"
NS_FILE = "urn:xmpp:jingle:apps:file-transfer:5"


async def http_get(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        resp.raise_for_status()
        return await resp.read()


def file_from(room_jid: str, nick: str) -> Callable[[Message], bool]:
    """A groupchat message carrying a file link (XEP-0066), from `nick`."""

    def match(m: Message) -> bool:
        return (
            groupchat_from(room_jid)(m)
            and m["from"].resource == nick
            and bool(m["oob"]["url"])
        )

    return match


def sims_file(m: Message) -> dict[str, str]:
    """The XEP-0385 file description of an attachment: name, media-type, size."""
    found = m.xml.find(f".//{{{NS_SIMS}}}media-sharing/{{{NS_FILE}}}file")
    assert found is not None, f"no SIMS file in {m}"
    return {child.tag.split("}")[1]: child.text or "" for child in found}


def send_file(
    user: MatrixUser,
    room_id: str,
    data: bytes,
    msgtype: str,
    name: str,
    mimetype: str,
    body: str | None = None,
    info: dict[str, Any] | None = None,
) -> str:
    mxc = user.upload(data, mimetype, name)
    content: dict[str, Any] = {
        "msgtype": msgtype,
        "body": body or name,
        "url": mxc,
        "info": {"mimetype": mimetype, "size": len(data)} if info is None else info,
    }
    if body is not None:
        content["filename"] = name
    return user.send_event(room_id, "m.room.message", content)


def media_leftovers(gateway: Gateway) -> list[str]:
    return sorted(p.name for p in gateway.tmp.iterdir() if "matridge-media" in p.name)


async def settled(club: Club) -> None:
    """Waits until the gateway has relayed everything sent so far: a text
    sent now arrives after it (events are relayed one after the other)."""
    marker = unique("marker ")
    club.friend.send_text(club.room_id, marker)
    await club.person.xmpp.wait_message(groupchat_from(club.room_jid, marker), 60)


# ---- Matrix → XMPP ---------------------------------------------------------


async def test_a_matrix_image_arrives_as_an_attachment_with_its_bytes(
    club: Club, gateway: Gateway
) -> None:
    data = png(31, 17)
    event_id = send_file(
        club.friend, club.room_id, data, "m.image", "sunset.png", "image/png"
    )
    msg = await club.person.xmpp.wait_message(
        file_from(club.room_jid, "Friendly Fran"), timeout=60
    )
    url = msg["oob"]["url"]
    assert url.startswith(("http://", "https://"))
    assert msg["body"] == url  # what clients need to show it inline
    assert msg["stanza_id"]["id"] == event_id
    assert await http_get(url) == data
    described = sims_file(msg)
    assert described["name"] == "sunset.png"
    assert described["media-type"] == "image/png"
    assert described["size"] == str(len(data))
    await settled(club)
    assert media_leftovers(gateway) == []


@pytest.mark.parametrize(
    ("msgtype", "name", "mimetype"),
    [
        ("m.file", "minutes.pdf", "application/pdf"),
        ("m.audio", "voice.ogg", "audio/ogg"),
        ("m.video", "clip.mp4", "video/mp4"),
    ],
)
async def test_matrix_files_audio_and_video_arrive_as_attachments(
    club: Club, msgtype: str, name: str, mimetype: str
) -> None:
    data = os.urandom(50_000)
    send_file(club.friend, club.room_id, data, msgtype, name, mimetype)
    msg = await club.person.xmpp.wait_message(
        file_from(club.room_jid, "Friendly Fran"), timeout=60
    )
    assert await http_get(msg["oob"]["url"]) == data
    described = sims_file(msg)
    assert described["name"] == name
    assert described["media-type"] == mimetype


async def test_a_matrix_sticker_arrives_as_an_xmpp_sticker(club: Club) -> None:
    data = png(12, 12)
    mxc = club.friend.upload(data, "image/png", "wave.png")
    club.friend.send_event(
        club.room_id,
        "m.sticker",
        {
            "body": "Waving hand",
            "url": mxc,
            "info": {"mimetype": "image/png", "size": len(data), "w": 12, "h": 12},
        },
    )
    msg = await club.person.xmpp.wait_message(
        file_from(club.room_jid, "Friendly Fran"), timeout=60
    )
    assert msg.xml.find(f"{{{NS_STICKERS}}}sticker") is not None
    assert await http_get(msg["oob"]["url"]) == data


async def test_a_caption_arrives_after_the_file(club: Club) -> None:
    data = png(9, 4)
    event_id = send_file(
        club.friend,
        club.room_id,
        data,
        "m.image",
        "map.png",
        "image/png",
        body="Here is the way to the library",
    )
    msg = await club.person.xmpp.wait_message(
        file_from(club.room_jid, "Friendly Fran"), timeout=60
    )
    assert msg["stanza_id"]["id"] == event_id
    assert sims_file(msg)["name"] == "map.png"
    assert await http_get(msg["oob"]["url"]) == data
    await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "Here is the way to the library"), timeout=30
    )


async def test_a_file_over_the_cap_becomes_a_readable_text(club: Club) -> None:
    data = os.urandom(MEDIA_MAX_BYTES + 100_000)
    # Announced with its size: not even downloaded.
    send_file(club.friend, club.room_id, data, "m.file", "big.iso", "x-test/iso")
    msg = await club.person.xmpp.wait_message(
        lambda m: groupchat_from(club.room_jid)(m) and "big.iso" in m["body"], 60
    )
    assert "1.1 MB" in msg["body"]
    assert "limit of 1.0 MB" in msg["body"]
    assert "Matrix client" in msg["body"]
    assert not msg["oob"]["url"]
    # Without a size: the download stops at the cap.
    send_file(
        club.friend,
        club.room_id,
        data,
        "m.file",
        "quiet.iso",
        "x-test/iso",
        info={"mimetype": "x-test/iso"},
    )
    msg = await club.person.xmpp.wait_message(
        lambda m: groupchat_from(club.room_jid)(m) and "quiet.iso" in m["body"], 60
    )
    assert "limit of 1.0 MB" in msg["body"]
    assert not msg["oob"]["url"]


async def test_a_file_that_cannot_be_fetched_becomes_a_readable_text(
    club: Club,
) -> None:
    server = club.friend.user_id.split(":", 1)[1]
    club.friend.send_event(
        club.room_id,
        "m.room.message",
        {
            "msgtype": "m.file",
            "body": "ghost.pdf",
            "url": f"mxc://{server}/{uuid.uuid4().hex}",
        },
    )
    msg = await club.person.xmpp.wait_message(
        lambda m: groupchat_from(club.room_jid)(m) and "ghost.pdf" in m["body"], 60
    )
    assert msg["body"].startswith(
        "[ghost.pdf: could not be fetched from Matrix: the homeserver answered 404"
    )


def send_encrypted_file(
    user: MatrixUser,
    room_id: str,
    data: bytes,
    name: str,
    mimetype: str,
    change_ciphertext: bool = False,
) -> str:
    """Sends `data` as a Matrix client sends a file into an encrypted room:
    the ciphertext in the media repository, a ``file`` object naming it."""
    plain, out = io.BytesIO(data), io.BytesIO()
    key = encrypt_attachment(plain, out)
    ciphertext = bytearray(out.getvalue())
    if change_ciphertext:
        ciphertext[len(ciphertext) // 2] ^= 0x80
    mxc = user.upload(bytes(ciphertext), "application/octet-stream", "encrypted")
    return user.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": msgtype_for(mimetype),
            "body": name,
            "file": {"url": mxc, **key.to_json()},
            "info": {"mimetype": mimetype, "size": len(data)},
        },
    )


async def test_an_encrypted_matrix_file_arrives_decrypted(
    club: Club, gateway: Gateway
) -> None:
    data = png(23, 19)
    event_id = send_encrypted_file(
        club.friend, club.room_id, data, "secret.png", "image/png"
    )
    msg = await club.person.xmpp.wait_message(
        file_from(club.room_jid, "Friendly Fran"), timeout=60
    )
    assert msg["stanza_id"]["id"] == event_id
    assert await http_get(msg["oob"]["url"]) == data
    assert sims_file(msg)["name"] == "secret.png"
    assert sims_file(msg)["media-type"] == "image/png"
    await settled(club)  # the temp folder goes once the file was shown
    assert media_leftovers(gateway) == []


async def test_an_encrypted_file_with_a_wrong_hash_becomes_a_readable_text(
    club: Club, gateway: Gateway
) -> None:
    send_encrypted_file(
        club.friend,
        club.room_id,
        os.urandom(3000),
        "diary.txt",
        "text/plain",
        change_ciphertext=True,
    )
    msg = await club.person.xmpp.wait_message(
        lambda m: groupchat_from(club.room_jid)(m) and "diary.txt" in m["body"], 60
    )
    assert "could not be decrypted: its hash does not match" in msg["body"]
    assert not msg["oob"]["url"]
    assert "Not showing the encrypted file" in gateway.log_text()
    # The gateway goes on relaying.
    await settled(club)


async def test_a_location_arrives_as_a_geo_uri(club: Club) -> None:
    club.friend.send_event(
        club.room_id,
        "m.room.message",
        {
            "msgtype": "m.location",
            "body": "Meeting point",
            "geo_uri": "geo:51.5008,0.1247;u=35",
        },
    )
    await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "Meeting point geo:51.5008,0.1247;u=35"), 60
    )


async def test_an_image_in_history_reaches_the_archive(
    person: Person, synapse: Synapse
) -> None:
    friend, room_id = book_club(person, synapse)
    data = png(21, 13)
    send_file(friend, room_id, data, "m.image", "old.png", "image/png")
    await register(person, synapse)
    room_jid = person.room_jid(room_id)
    await person.xmpp.join_muc(room_jid, person.name)
    deadline = time.monotonic() + 60
    while True:
        archive = await person.xmpp.mam_messages(room_jid)
        files = [m for m in archive if m["oob"]["url"]]
        if files or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert len(files) == 1
    assert files[0]["from"].resource == "Friendly Fran"
    assert await http_get(files[0]["oob"]["url"]) == data
    assert sims_file(files[0])["name"] == "old.png"


# ---- XMPP → Matrix ---------------------------------------------------------


async def wait_own_event(
    club: Club, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    return await club.friend.wait_for_message_async(
        club.room_id,
        lambda e: e["sender"] == club.person.matrix.user_id and predicate(e),
        timeout=60,
    )


async def test_an_xmpp_image_reaches_matrix_with_its_info(
    club: Club, prosody: Prosody, gateway: Gateway
) -> None:
    data = png(40, 30)
    # No content type anywhere: the gateway sees it is a PNG.
    url = await club.person.xmpp.upload(prosody.upload_jid, "photo.png", data)
    club.person.xmpp.send_file_link(club.room_jid, url)
    event = await wait_own_event(
        club, lambda e: e["content"].get("filename") == "photo.png"
    )
    content = event["content"]
    assert event["type"] == "m.room.message"
    assert content["msgtype"] == "m.image"
    assert content["body"] == "photo.png"
    assert content["info"] == {
        "mimetype": "image/png",
        "size": len(data),
        "w": 40,
        "h": 30,
    }
    assert club.friend.download(content["url"]) == data
    # The file was uploaded before the event was sent, so it is gone by now.
    assert media_leftovers(gateway) == []


async def test_an_xmpp_file_with_a_caption_reaches_matrix(
    club: Club, prosody: Prosody
) -> None:
    data = b"minutes of the meeting\n" * 100
    url = await club.person.xmpp.upload(
        prosody.upload_jid, "minutes.txt", data, "text/plain"
    )
    club.person.xmpp.send_file_link(club.room_jid, url, caption="Read before Tuesday")
    event = await wait_own_event(
        club, lambda e: e["content"].get("filename") == "minutes.txt"
    )
    content = event["content"]
    assert content["msgtype"] == "m.file"
    # The spec's media caption: body next to a differing filename.
    assert content["body"] == "Read before Tuesday"
    assert content["info"] == {"mimetype": "text/plain", "size": len(data)}
    assert club.friend.download(content["url"]) == data


async def test_an_xmpp_file_sent_as_a_reply_stays_a_reply(
    club: Club, prosody: Prosody
) -> None:
    question = club.friend.send_text(club.room_id, "Got the agenda?")
    await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "Got the agenda?"), timeout=30
    )
    url = await club.person.xmpp.upload(
        prosody.upload_jid, "agenda.txt", b"1. coffee\n", "text/plain"
    )
    author = f"{club.room_jid}/Friendly Fran"
    club.person.xmpp.send_file_link(club.room_jid, url, reply_to=(question, author))
    event = await wait_own_event(
        club, lambda e: e["content"].get("filename") == "agenda.txt"
    )
    assert event["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": question}}


async def test_xmpp_audio_and_video_get_their_msgtypes(
    club: Club, prosody: Prosody
) -> None:
    for name, mimetype, msgtype in [
        ("song.ogg", "audio/ogg", "m.audio"),
        ("holiday.mp4", "video/mp4", "m.video"),
    ]:
        data = os.urandom(20_000)
        url = await club.person.xmpp.upload(prosody.upload_jid, name, data, mimetype)
        club.person.xmpp.send_file_link(club.room_jid, url)
        event = await wait_own_event(
            club, lambda e, name=name: e["content"].get("filename") == name
        )
        assert event["content"]["msgtype"] == msgtype
        assert event["content"]["info"]["mimetype"] == mimetype
        assert club.friend.download(event["content"]["url"]) == data


async def test_an_xmpp_sticker_reaches_matrix_as_a_sticker(
    club: Club, prosody: Prosody
) -> None:
    data = png(16, 16)
    url = await club.person.xmpp.upload(prosody.upload_jid, "cat.png", data)
    club.person.xmpp.send_file_link(club.room_jid, url, sticker=True)
    event = await wait_own_event(club, lambda e: e["type"] == "m.sticker")
    content = event["content"]
    assert content["body"] == "sticker"
    assert content["info"] == {
        "mimetype": "image/png",
        "size": len(data),
        "w": 16,
        "h": 16,
    }
    assert club.friend.download(content["url"]) == data


@pytest.mark.parametrize("failure", ["404", "closed port", "over the cap"])
async def test_a_file_that_cannot_be_fetched_is_refused_by_name(
    club: Club, prosody: Prosody, gateway: Gateway, failure: str
) -> None:
    name = unique("report-") + ".pdf"
    if failure == "404":
        url = f"{prosody.http_url}/file_share/{uuid.uuid4().hex}/{name}"
    elif failure == "closed port":
        url = f"http://localhost:{free_port()}/{name}"  # an allowed host
    else:
        data = os.urandom(MEDIA_MAX_BYTES + 1)
        url = await club.person.xmpp.upload(
            prosody.upload_jid, name, data, "application/pdf"
        )
    msg_id = club.person.xmpp.send_file_link(club.room_jid, url)
    error = await club.person.xmpp.wait_message(
        lambda m: m["type"] == "error" and m["id"] == msg_id, timeout=60
    )
    text = error["error"]["text"]
    assert name in text
    if failure == "over the cap":
        assert error["error"]["condition"] == "not-acceptable"
        assert "limit of 1.0 MB" in text
        assert f"Not sending {name} to Matrix" in gateway.log_text()
    else:
        assert error["error"]["condition"] == "item-not-found"
        assert f"Could not fetch {name}" in gateway.log_text()
    # Nothing reached the room, and the gateway still relays.
    await settled(club)
    own = [
        e
        for e in club.friend.messages(club.room_id)
        if e["sender"] == club.person.matrix.user_id
    ]
    assert [e for e in own if name in str(e["content"])] == []
    assert media_leftovers(gateway) == []


# ---- the helpers' edge cases -------------------------------------------------


async def test_file_names_lose_directories_and_control_characters() -> None:
    assert safe_file_name("../../etc/passwd") == "passwd"
    assert safe_file_name("C:\\Users\\a\\cv.pdf") == "cv.pdf"
    assert safe_file_name("bad\x00\nname.txt") == "badname.txt"
    assert safe_file_name(".hidden") == "hidden"
    assert safe_file_name("") == "file"
    assert safe_file_name(None, "sticker") == "sticker"
    long = safe_file_name("x" * 500 + ".jpeg")
    assert len(long) == 200 and long.endswith(".jpeg")
    assert name_from_url("http://h/share/abc/na%C3%AFve%20file.txt?x=1") == (
        "naïve file.txt"
    )


async def test_sizes_read_as_people_write_them() -> None:
    assert human_size(999) == "999 bytes"
    assert human_size(1_100_000) == "1.1 MB"
    assert human_size(50_000_000) == "50.0 MB"
    assert human_size(3 * 10**12) == "3000.0 GB"


async def test_the_content_type_comes_from_the_client_then_the_bytes(
    tmp_path: Path,
) -> None:
    image = tmp_path / "image.bin"
    image.write_bytes(png(5, 3))
    sniffed = await describe_file(image, "image.bin", None, "application/octet-stream")
    assert (sniffed.mimetype, sniffed.width, sniffed.height) == ("image/png", 5, 3)
    declared = await describe_file(image, "image.bin", "image/x-custom")
    assert (declared.mimetype, declared.width) == ("image/x-custom", 5)
    # Declared as no image: no dimensions even though the bytes are one.
    other = await describe_file(image, "image.bin", "application/x-custom")
    assert (other.mimetype, other.width) == ("application/x-custom", None)
    text = tmp_path / "notes.md"
    text.write_bytes(b"# notes\n")
    assert (await describe_file(text, "notes.md", None, None)).mimetype in (
        "text/markdown",
        "text/x-markdown",
    )
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\x01")
    assert (await describe_file(blob, "blob", None, None)).mimetype == (
        "application/octet-stream"
    )
    assert msgtype_for("Image/JPEG") == "m.image"
    assert msgtype_for("audio/ogg; codecs=opus") == "m.audio"
    assert msgtype_for("application/pdf") == "m.file"
