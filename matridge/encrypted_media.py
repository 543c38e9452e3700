"""Encrypted attachments as files on disk: the spec's "Sending encrypted
attachments" (AES-256-CTR, SHA-256 of the ciphertext) between the
temporary files of :mod:`.media`.

A file in an end-to-end encrypted room is uploaded as ciphertext; the event
names it with a ``file`` object (url, JWK key, iv, hash) instead of ``url``.
The cipher itself lives in :mod:`.crypto.primitives`; this module reads the
``file`` object of an event, builds the one of an upload, and runs the
cipher over files, in a worker thread when the file is large enough that
doing it on the event loop would stall every user.

Nothing here logs, and no exception text carries key material.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .crypto.primitives import (
    AttachmentKey,
    HashMismatch,
    KeyFormatError,
    decrypt_attachment,
    encrypt_attachment,
)

# Up to this size a file is hashed and (de|en)crypted on the event loop:
# AES-CTR with SHA-256 runs at about 1.4 GB/s, so that stalls the loop for
# about 0.2 ms at most, and small files (most of them) spare the shared
# thread pool. Larger files go to a worker thread.
INLINE_MAX_BYTES = 256 * 1024

# What the ciphertext is uploaded as: the media repository must learn
# nothing of the file (its name is not sent either).
CIPHERTEXT_TYPE = "application/octet-stream"

__all__ = [
    "CIPHERTEXT_TYPE",
    "INLINE_MAX_BYTES",
    "AttachmentKey",
    "HashMismatch",
    "MalformedFile",
    "decrypt_file",
    "encrypt_file",
    "encrypted_file_object",
    "file_key",
]


class MalformedFile(ValueError):
    """An event's ``file`` object cannot describe an encrypted file; the
    text says what is wrong, in words fit for the user."""


def file_key(file: object) -> AttachmentKey:
    """The key, iv and hash of an event's ``file`` object, checked (version
    ``v2``, an ``A256CTR`` key, lengths). Raises MalformedFile."""
    if not isinstance(file, Mapping):
        raise MalformedFile("the event has no encrypted file description")
    if not isinstance(file.get("url"), str):
        raise MalformedFile("its description has no URL")
    try:
        return AttachmentKey.from_json(file)
    except KeyFormatError as e:
        # The primitives' texts name fields, never their values.
        raise MalformedFile(f"its description is malformed ({e})") from None


def encrypted_file_object(mxc: str, key: AttachmentKey) -> dict[str, Any]:
    """The ``file`` object of an event for ciphertext uploaded at `mxc`."""
    return {"url": mxc, **key.to_json()}


async def _off_loop_if_large[T](size: int, work: Callable[[], T]) -> T:
    if size > INLINE_MAX_BYTES:
        return await asyncio.to_thread(work)
    return work()


async def decrypt_file(
    ciphertext: Path, plaintext: Path, key: AttachmentKey, size: int
) -> None:
    """Checks the hash of the file `ciphertext` (`size` bytes), then decrypts
    it into `plaintext`. Raises HashMismatch, leaving no `plaintext`, when
    the file is not the one the event announced; OSError when the disk
    fails."""

    def work() -> None:
        try:
            with ciphertext.open("rb") as src, plaintext.open("wb") as dst:
                decrypt_attachment(src, dst, key)
        except HashMismatch:
            plaintext.unlink(missing_ok=True)
            raise

    await _off_loop_if_large(size, work)


async def encrypt_file(plaintext: Path, ciphertext: Path, size: int) -> AttachmentKey:
    """Encrypts the file `plaintext` (`size` bytes) into `ciphertext` with a
    fresh random key and iv; returns them with the ciphertext's hash."""

    def work() -> AttachmentKey:
        with plaintext.open("rb") as src, ciphertext.open("wb") as dst:
            return encrypt_attachment(src, dst)

    return await _off_loop_if_large(size, work)
