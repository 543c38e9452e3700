"""Files both ways: Matrix media to XMPP attachments, XMPP attachments to
Matrix media.

Matrix → XMPP: the engine downloads the content with the user's token
(authenticated media) into a temporary file, which slidge uploads to the XMPP
upload service and sends as an attachment. XMPP → Matrix: the file behind the
attachment's URL is fetched into a temporary file, uploaded to the Matrix
media repository and sent as an ``m.image``/``m.video``/``m.audio``/``m.file``
(or ``m.sticker``) event. Both ways honour ``MEDIA_MAX_BYTES``; nothing is
lost silently: what cannot be carried becomes a text that says why.

Encrypted attachments (a ``file`` object instead of ``url``) take the same
path with one more step, in :mod:`.encrypted_media`: the downloaded
ciphertext is checked and decrypted before it is shown, and a file for an
encrypted room is encrypted before it is uploaded.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from PIL import Image, UnidentifiedImageError
from slidge.util.types import Avatar, LegacyAttachment, MessageReference
from slixmpp.exceptions import XMPPError

from . import config
from .encrypted_media import (
    CIPHERTEXT_TYPE,
    AttachmentKey,
    HashMismatch,
    MalformedFile,
    decrypt_file,
    encrypt_file,
    encrypted_file_object,
    file_key,
)
from .errors import describe, upload_refused
from .fetchguard import MAX_REDIRECTS, RefusedAddress, check_url, guarded_session
from .matrix import Event, MatrixClient, MatrixError, Message, NetworkError
from .matrix import TooLargeError as MatrixTooLargeError

if TYPE_CHECKING:
    from slidge.util.types import StickerProtocol, XMPPAttachment
    from slixmpp import Message as XMPPMessage

    from .context import MatrixSession

log = logging.getLogger(__name__)

# msgtypes of m.room.message events that carry a file.
FILE_MSGTYPES = frozenset({"m.image", "m.file", "m.audio", "m.video"})

_TEMP_PREFIX = "matridge-media-"


def _temp_prefix() -> str:
    # The process id in the name tells a dead process's leftovers apart.
    return f"{_TEMP_PREFIX}{os.getpid()}-"


def remove_stale_temp_dirs() -> int:
    """Removes the transfer directories that a gateway process killed in the
    middle of a transfer left behind (each up to MEDIA_MAX_BYTES); those of
    live processes, this one or another gateway's, stay. Returns how many
    went. Run once at start-up."""
    removed = 0
    root = Path(tempfile.gettempdir())
    for entry in root.glob(_TEMP_PREFIX + "*"):
        pid_text = entry.name[len(_TEMP_PREFIX) :].split("-", 1)[0]
        pid = int(pid_text) if pid_text.isdigit() else None
        if pid is not None and _alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


@asynccontextmanager
async def _temp_dir() -> AsyncIterator[Path]:
    """A private temporary directory for one transfer, made and removed off
    the event loop (removing a large file can block for a while)."""
    tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix=_temp_prefix())
    try:
        yield Path(tmp)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)


_CHUNK = 64 * 1024
# What a file name may be on disk and in an upload slot.
_MAX_NAME = 200


class MediaSender(Protocol):
    """The XMPP entity that shows a Matrix user's files (Participant, Contact)."""

    @property
    def session(self) -> Any: ...  # matridge's Session: its ``matrix`` client

    def send_text(
        self, body: str, legacy_msg_id: str | None = None, **kwargs: Any
    ) -> XMPPMessage | None: ...

    async def send_files(
        self,
        attachments: Collection[LegacyAttachment],
        legacy_msg_id: str | None = None,
        body: str | None = None,
        **kwargs: Any,
    ) -> None: ...


def human_size(n: int) -> str:
    """``1234567`` → ``1.2 MB`` (decimal units, as file managers show)."""
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError  # the loop always returns


def safe_file_name(name: str | None, fallback: str = "file") -> str:
    """A name fit for disk and upload slots: no directories, no control
    characters, not empty, not too long (the extension is kept)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")
    if not base:
        base = fallback
    if len(base) > _MAX_NAME:
        stem, ext = os.path.splitext(base)
        ext = ext[:20]
        base = stem[: _MAX_NAME - len(ext)] + ext
    return base


def msgtype_for(mimetype: str) -> str:
    """The Matrix msgtype of a file of this content type."""
    major = mimetype.split("/", 1)[0].lower()
    return {"image": "m.image", "video": "m.video", "audio": "m.audio"}.get(
        major, "m.file"
    )


# ---- Matrix → XMPP -------------------------------------------------------


def is_media(event: Event, content: Message | None) -> bool:
    """Whether this message event carries a file (its content as shown)."""
    if content is None:
        return False
    return event.kind == "sticker" or content.msgtype in FILE_MSGTYPES


def over_cap_text(name: str, size: int | None, cap: int) -> str:
    what = f"{name} ({human_size(size)})" if size is not None else name
    return (
        f"📎 {what} is larger than this gateway's limit of {human_size(cap)} "
        "for files, so it was not transferred. See it in a Matrix client."
    )


def fetch_failed_text(name: str, reason: str) -> str:
    return f"[{name}: could not be fetched from Matrix: {reason}]"


def undecryptable_text(name: str, reason: str) -> str:
    return (
        f"🔒 {name}: this end-to-end encrypted file could not be decrypted: "
        f"{reason}. See it in a Matrix client."
    )


# Why an encrypted file is not shown, in words (the user reads them).
HASH_MISMATCH_REASON = "its hash does not match"


def encrypted_file_of(event: Event, content: Message) -> object:
    """The ``file`` object behind `content` in `event`: in its content, or
    in its ``m.new_content`` when `content` is an edit's new content."""
    source = event.content
    candidates = [source.get("file")]
    new_content = source.get("m.new_content")
    if isinstance(new_content, dict):
        candidates.append(new_content.get("file"))
    for file in candidates:
        if isinstance(file, dict) and file.get("url") == content.url:
            return file
    return candidates[0]


async def send_matrix_media(
    sender: MediaSender,
    event: Event,
    content: Message,
    *,
    when: datetime | None,
    archive_only: bool,
    reply_to: MessageReference | None,
    thread: str | None,
    content_event: Event | None = None,
    **send_kwargs: Any,
) -> None:
    """Sends the file of a Matrix message (or sticker) event to XMPP from
    `sender`, with its caption; a text saying why when the file cannot go.
    An encrypted file (``file`` instead of ``url``) is downloaded, checked
    against its hash and decrypted first. `content_event` is the event whose
    content `content` is, when not `event` (its latest edit, in history).
    `send_kwargs` go to slidge's send_* calls as they are (``carbon=``)."""
    matrix: MatrixClient = sender.session.matrix
    name = safe_file_name(content.filename or content.body)
    # Per the spec, a body that is not the file name is a caption.
    caption_text = content.text or content.body
    caption = (
        caption_text
        if content.filename and caption_text and content.body != content.filename
        else None
    )
    common: dict[str, Any] = {
        "when": when,
        "archive_only": archive_only,
        "reply_to": reply_to,
        "thread": thread,
        **send_kwargs,
    }

    def instead(text: str) -> None:
        if caption:
            text = f"{text}\n{caption}"
        sender.send_text(text, legacy_msg_id=event.event_id, **common)

    cap = config.MEDIA_MAX_BYTES
    key: AttachmentKey | None = None
    if content.encrypted_file:
        try:
            key = file_key(encrypted_file_of(content_event or event, content))
        except MalformedFile as e:
            log.warning(
                "Not showing the encrypted file of event %s: %s", event.event_id, e
            )
            instead(undecryptable_text(name, str(e)))
            return
    if not content.url:
        instead(fetch_failed_text(name, "the event has no file URL"))
        return
    if content.size is not None and content.size > cap:
        instead(over_cap_text(name, content.size, cap))
        return
    async with _temp_dir() as tmp:
        path = tmp / name
        # safe_file_name never starts with a dot: no clash with the file.
        download_path = path if key is None else tmp / ".ciphertext"
        try:
            media = await matrix.download(content.url, cap, path=download_path)
        except MatrixTooLargeError:
            instead(over_cap_text(name, content.size, cap))
            return
        except (MatrixError, NetworkError, ValueError) as e:
            log.warning(
                "Could not download %s of event %s: %s", content.url, event.event_id, e
            )
            instead(fetch_failed_text(name, describe(e)))
            return
        if key is not None:
            try:
                await decrypt_file(download_path, path, key, media.size)
            except HashMismatch:
                log.warning(
                    "Not showing the encrypted file %s of event %s: the "
                    "ciphertext's SHA-256 is not the event's",
                    content.url,
                    event.event_id,
                )
                instead(undecryptable_text(name, HASH_MISMATCH_REASON))
                return
            except OSError as e:
                log.warning(
                    "Could not decrypt %s of event %s: %s",
                    content.url,
                    event.event_id,
                    e,
                )
                instead(undecryptable_text(name, "the gateway could not store it"))
                return
            # Only the plaintext stays while it goes to XMPP.
            await asyncio.to_thread(download_path.unlink, True)
        attachment = LegacyAttachment(
            path=path,
            name=name,
            # The server knows ciphertext only: its type says nothing.
            content_type=content.mimetype
            or (media.content_type if key is None else mimetypes.guess_type(name)[0]),
            size=media.size,
            is_sticker=event.kind == "sticker",
        )
        await sender.send_files(
            [attachment], legacy_msg_id=event.event_id, body=caption, **common
        )


# ---- XMPP → Matrix -------------------------------------------------------


class FetchError(Exception):
    """A file the user sent could not be fetched; the text says why."""


class TooLargeError(FetchError):
    pass


class RefusedFetch(FetchError):
    """The URL leads into the gateway's own network: never fetched."""


@dataclass(frozen=True)
class LocalFile:
    """A fetched file and what Matrix should be told about it."""

    path: Path
    name: str
    size: int
    mimetype: str
    width: int | None = None
    height: int | None = None


def _inspect(path: Path) -> tuple[int, tuple[str, int, int] | None]:
    """The file's size, and (mimetype, width, height) if it is an image."""
    return path.stat().st_size, _image_info(path)


def _image_info(path: Path) -> tuple[str, int, int] | None:
    """(mimetype, width, height) if Pillow recognises the file as an image
    (it reads the header only)."""
    try:
        with Image.open(path) as img:
            mime = Image.MIME.get(img.format or "")
            if mime is None:
                return None
            width, height = img.size
            return mime, width, height
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _is_specific(content_type: str | None) -> bool:
    return bool(content_type) and content_type != "application/octet-stream"


async def describe_file(
    path: Path, name: str, declared: str | None, served: str | None = None
) -> LocalFile:
    """What a file is: the content type the client declared, else what its
    bytes show (images), else what the server said, else its name's;
    dimensions for images."""
    size, image = await asyncio.to_thread(_inspect, path)
    if _is_specific(declared):
        assert declared is not None
        mimetype = declared.split(";", 1)[0].strip()
    elif image is not None:
        mimetype = image[0]
    elif _is_specific(served):
        assert served is not None
        mimetype = served.split(";", 1)[0].strip()
    else:
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if image is not None and mimetype.startswith("image/"):
        return LocalFile(path, name, size, mimetype, image[1], image[2])
    return LocalFile(path, name, size, mimetype)


def name_from_url(url: str) -> str:
    """The file name an upload URL ends with (upload services keep it)."""
    path = urllib.parse.urlsplit(url).path
    return safe_file_name(urllib.parse.unquote(path.rsplit("/", 1)[-1]))


async def fetch(
    attachment: XMPPAttachment, directory: Path, cap: int
) -> tuple[Path, str, str | None]:
    """Downloads an attachment's URL into `directory`, at most `cap` bytes;
    returns the file, its name and the Content-Type the server gave.
    Raises FetchError (TooLargeError above the cap, RefusedFetch for an
    address inside the gateway's own network: see :mod:`.fetchguard`)."""
    name = name_from_url(attachment.url)
    path = directory / name
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    url = attachment.url
    try:
        async with guarded_session(timeout=timeout) as http:
            for _ in range(MAX_REDIRECTS + 1):
                check_url(url)
                async with http.get(url, allow_redirects=False) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in _REDIRECTS and location:
                        # Each hop is checked again before it is requested.
                        url = urllib.parse.urljoin(url, location)
                        continue
                    if resp.status >= 400:
                        raise FetchError(f"its server answered HTTP {resp.status}")
                    size = resp.content_length
                    if size is not None and size > cap:
                        raise TooLargeError(human_size(size))
                    await _save(resp, path, cap)
                    return path, name, resp.headers.get("Content-Type")
            raise FetchError(f"it redirects more than {MAX_REDIRECTS} times")
    except RefusedAddress as e:
        raise RefusedFetch(str(e)) from e
    except aiohttp.ClientConnectorError as e:
        if isinstance(e.os_error, RefusedAddress):
            raise RefusedFetch(str(e.os_error)) from e
        raise FetchError(f"its URL could not be fetched ({e})") from e
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        reason = f"its URL could not be fetched ({type(e).__name__}: {e})"
        raise FetchError(reason) from e


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def _save(resp: aiohttp.ClientResponse, path: Path, cap: int) -> None:
    """Writes the body to `path` (at most `cap` bytes), in a thread: a slow
    disk must not stall every user."""
    got = 0
    out = await asyncio.to_thread(path.open, "wb")
    try:
        async for chunk in resp.content.iter_chunked(_CHUNK):
            got += len(chunk)
            if got > cap:
                raise TooLargeError(f"more than {human_size(cap)}")
            await asyncio.to_thread(out.write, chunk)
    finally:
        await asyncio.to_thread(out.close)


@dataclass(frozen=True)
class Uploaded:
    """Where a file went in the media repository: ``mxc``, holding the file
    itself, or its ciphertext when ``key`` is set (an encrypted room)."""

    mxc: str
    key: AttachmentKey | None = None

    def content_fields(self) -> dict[str, Any]:
        """What names the file in an event's content: ``url``, or the
        ``file`` object (and no ``url``) for ciphertext."""
        if self.key is None:
            return {"url": self.mxc}
        return {"file": encrypted_file_object(self.mxc, self.key)}


def file_content(
    msgtype: str, uploaded: Uploaded, file: LocalFile, caption: str | None
) -> dict[str, Any]:
    """The content of a file event; a caption goes in ``body`` next to
    ``filename``, as the spec's media captions say. ``info`` describes the
    file itself (its plaintext, when encrypted)."""
    info: dict[str, Any] = {"mimetype": file.mimetype, "size": file.size}
    if file.width is not None and file.height is not None:
        info["w"], info["h"] = file.width, file.height
    content: dict[str, Any] = {
        "body": caption or file.name,
        "filename": file.name,
        **uploaded.content_fields(),
        "info": info,
    }
    if msgtype != "m.sticker":
        content["msgtype"] = msgtype
    return content


async def upload_media(
    session: MatrixSession, file: LocalFile, *, encrypt: bool
) -> Uploaded:
    """Uploads `file` to the media repository; with `encrypt`, as ciphertext
    under a fresh key (without its name or type: the server learns nothing
    of it). Raises an XMPPError naming the file when that fails."""
    try:
        if not encrypt:
            mxc = await session.matrix.upload_file(file.path, file.mimetype, file.name)
            return Uploaded(mxc)
        async with _temp_dir() as tmp:
            ciphertext = tmp / "ciphertext"
            key = await encrypt_file(file.path, ciphertext, file.size)
            mxc = await session.matrix.upload_file(ciphertext, CIPHERTEXT_TYPE)
            return Uploaded(mxc, key)
    except (MatrixError, NetworkError) as e:
        log.warning("Upload of %s to Matrix failed: %s", file.name, e)
        raise upload_refused(file.name, e) from e
    except OSError as e:
        log.warning("Could not encrypt %s for Matrix: %s", file.name, e)
        raise XMPPError(
            "internal-server-error",
            f"{file.name} could not be sent: the gateway could not encrypt it.",
        ) from e


async def send_xmpp_attachments(
    session: MatrixSession,
    room_id: str,
    attachments: Collection[XMPPAttachment],
    body: str,
    relate: Callable[[dict[str, Any]], dict[str, Any]] = lambda content: content,
) -> str:
    """Sends the user's XMPP attachments to a Matrix room, the first with
    the caption `body` (if any), each through `relate` (a reply, a thread);
    returns the first event's id. Raises an XMPPError naming the file when
    one cannot be fetched or uploaded."""
    cap = config.MEDIA_MAX_BYTES
    encrypt = await session.outbound.is_encrypted(room_id)
    first: str | None = None
    caption: str | None = body.strip() or None
    for part, attachment in enumerate(attachments):
        shown = name_from_url(attachment.url)
        async with _temp_dir() as tmp:
            try:
                path, name, served = await fetch(attachment, tmp, cap)
            except TooLargeError as e:
                log.info("Not sending %s to Matrix: over the cap (%s)", shown, e)
                raise XMPPError(
                    "not-acceptable",
                    f"{shown} was not sent to Matrix: it is larger ({e}) than "
                    f"this gateway's limit of {human_size(cap)} for files.",
                ) from e
            except RefusedFetch as e:
                log.warning("Refused to fetch %s (%s): %s", shown, attachment.url, e)
                raise XMPPError(
                    "forbidden",
                    f"{shown} was not sent to Matrix: the gateway does not fetch "
                    f"files from inside its own network ({e}).",
                ) from e
            except FetchError as e:
                log.warning("Could not fetch %s (%s): %s", shown, attachment.url, e)
                raise XMPPError(
                    "item-not-found",
                    f"{shown} was not sent to Matrix: {e}.",
                ) from e
            file = await describe_file(path, name, attachment.content_type, served)
            uploaded = await upload_media(session, file, encrypt=encrypt)
        msgtype = "m.sticker" if attachment.is_sticker else msgtype_for(file.mimetype)
        content = relate(file_content(msgtype, uploaded, file, caption))
        event_type = "m.sticker" if msgtype == "m.sticker" else "m.room.message"
        # Each file its own transaction id: one id for all would make every
        # file after the first look like a retry of the first.
        event_id = await session.outbound.send(
            room_id, event_type, content, txn_id=session.outbound.txn_id(part)
        )
        first = first or event_id
        caption = None
    assert first is not None  # slidge only calls with at least one attachment
    return first


async def send_sticker(
    session: MatrixSession, room_id: str, sticker: StickerProtocol
) -> str:
    """Sends an XMPP sticker (a file slidge already fetched) as ``m.sticker``."""
    name = safe_file_name(sticker.path.name, "sticker")
    file = await describe_file(sticker.path, name, sticker.content_type)
    if file.size > config.MEDIA_MAX_BYTES:
        raise XMPPError(
            "not-acceptable",
            f"This sticker ({human_size(file.size)}) is larger than this gateway's "
            f"limit of {human_size(config.MEDIA_MAX_BYTES)} for files.",
        )
    encrypt = await session.outbound.is_encrypted(room_id)
    uploaded = await upload_media(session, file, encrypt=encrypt)
    content = file_content("m.sticker", uploaded, file, None)
    # Clients put the sticker's URL in the body as a fallback: not a text.
    fallback = (sticker.fallback or "").strip()
    is_link = fallback.startswith(("http://", "https://")) and " " not in fallback
    content["body"] = "sticker" if not fallback or is_link else fallback
    del content["filename"]
    return await session.outbound.send(room_id, "m.sticker", content)


# ---- avatars ----------------------------------------------------------------

# Avatars bigger than this are not fetched (a picture, not a photo album;
# slidge scales them down anyway).
AVATAR_MAX_BYTES = 10 * 1024 * 1024


class AvatarHolder(Protocol):
    """A MUC or a contact: slidge's avatar property and setter."""

    @property
    def avatar(self) -> Avatar | None: ...

    async def set_avatar(self, avatar: Avatar | None = None) -> None: ...


async def show_avatar(
    holder: AvatarHolder, matrix: MatrixClient, mxc: str | None, whose: str
) -> None:
    """Shows the image at `mxc` as `holder`'s avatar, or none if unset. The
    mxc URI identifies the image, so an unchanged avatar is not fetched
    again; one that cannot be fetched leaves the current one, with a log
    line naming `whose` it is."""
    if not mxc:
        if holder.avatar is not None:
            await holder.set_avatar(None)
        return
    current = holder.avatar
    if current is not None and current.unique_id == mxc:
        return
    try:
        media = await matrix.download(mxc, AVATAR_MAX_BYTES)
    except (MatrixError, NetworkError, MatrixTooLargeError, ValueError) as e:
        log.warning("Could not fetch the avatar %s of %s: %s", mxc, whose, e)
        return
    if media.data:
        await holder.set_avatar(Avatar(data=media.data, unique_id=mxc))
