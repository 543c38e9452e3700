"""Media through the engine: upload (bytes, or streamed from a file) and
download (bytes, or streamed to a file) via the authenticated v1 endpoints,
size caps, thumbnails, and the fallback to the legacy endpoints."""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from pathlib import Path

import pytest

from matridge.matrix import MatrixClient, TooLargeError, parse_mxc
from tests.api_helpers import logged_in
from tests.conftest import new_matrix_user
from tests.harness.fake_homeserver import Answer, fake_homeserver
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG, so that Synapse can thumbnail it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 7 % 256, y * 5 % 256, 90)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_upload_bytes_then_download_them_via_v1(synapse: Synapse) -> None:
    client, _ = await logged_in(synapse)
    data = os.urandom(200_000)
    mxc = await client.upload(data, "application/octet-stream", "blob é.bin")
    assert mxc.startswith("mxc://")
    media = await client.download(mxc, max_bytes=1 << 20)
    assert media.data == data
    assert media.size == len(data)
    assert media.path is None
    assert media.content_type == "application/octet-stream"
    assert media.filename == "blob é.bin"
    # Another user fetches the same bytes through the server.
    other = MatrixClient(synapse.base_url, new_matrix_user(synapse, "o").access_token)
    assert (await other.download(mxc, max_bytes=1 << 20)).data == data


async def test_upload_streamed_from_a_file_and_download_to_a_file(
    synapse: Synapse, tmp_path: Path
) -> None:
    client, _ = await logged_in(synapse)
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(3_000_000))
    mxc = await client.upload_file(source, "application/x-test", "in.bin")
    target_dir = tmp_path / "out"
    target_dir.mkdir()
    target = target_dir / "copy.bin"
    media = await client.download(mxc, max_bytes=10_000_000, path=target)
    assert target.read_bytes() == source.read_bytes()
    assert media.path == str(target)
    assert media.data is None
    assert media.size == 3_000_000
    assert leftovers(target_dir) == ["copy.bin"]


async def test_an_unreadable_upload_file_fails_at_once(
    synapse: Synapse, tmp_path: Path
) -> None:
    client, _ = await logged_in(synapse)
    with pytest.raises(FileNotFoundError):
        await client.upload_file(tmp_path / "missing", "text/plain")


async def test_a_download_over_the_cap_fails_and_leaves_no_file(
    synapse: Synapse, tmp_path: Path
) -> None:
    client, _ = await logged_in(synapse)
    mxc = await client.upload(os.urandom(50_000), "application/octet-stream")
    with pytest.raises(TooLargeError, match="limit"):
        await client.download(mxc, max_bytes=10_000, path=tmp_path / "big.bin")
    assert leftovers(tmp_path) == []
    with pytest.raises(TooLargeError):
        await client.download(mxc, max_bytes=49_999)
    assert (await client.download(mxc, max_bytes=50_000)).size == 50_000


async def test_a_body_of_unannounced_size_is_cut_at_the_cap(tmp_path: Path) -> None:
    path = "/_matrix/client/v1/media/download/example.org/stream"
    chunked = {"Transfer-Encoding": "chunked", "Content-Type": "text/plain"}
    with fake_homeserver() as fake:
        fake.route(path, Answer(200, b"x" * 100_000, chunked))
        client = MatrixClient(fake.base_url, "t")
        with pytest.raises(TooLargeError, match="limit"):
            await client.download("mxc://example.org/stream", 50_000, tmp_path / "s")
        assert leftovers(tmp_path) == []
        media = await client.download(
            "mxc://example.org/stream", 100_000, tmp_path / "s"
        )
        assert media.size == 100_000
        assert leftovers(tmp_path) == ["s"]


async def test_a_cancelled_download_leaves_no_file(tmp_path: Path) -> None:
    path = "/_matrix/client/v1/media/download/example.org/late"
    with fake_homeserver() as fake:
        fake.route(path, Answer(200, b"late", delay=30))
        fake.route("/_matrix/client/versions", Answer(200, {"versions": []}))
        client = MatrixClient(fake.base_url, "t")
        task = asyncio.ensure_future(
            client.download("mxc://example.org/late", 100, tmp_path / "late")
        )
        await asyncio.to_thread(fake.wait_for_request, path)
        assert len(leftovers(tmp_path)) == 1  # the temporary file
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The engine handles the cancel before it answers this later call.
        await client.versions()
        assert leftovers(tmp_path) == []


async def test_a_failed_download_leaves_no_file(
    synapse: Synapse, tmp_path: Path
) -> None:
    client, _ = await logged_in(synapse)
    with pytest.raises(Exception) as err:
        await client.download(
            "mxc://localhost/NoSuchMedia", max_bytes=1000, path=tmp_path / "x"
        )
    assert getattr(err.value, "status", None) == 404
    assert leftovers(tmp_path) == []


async def test_thumbnail_of_an_image(synapse: Synapse, tmp_path: Path) -> None:
    client, _ = await logged_in(synapse)
    mxc = await client.upload(png(320, 240), "image/png", "pic.png")
    thumb = await client.thumbnail(mxc, 32, 32, max_bytes=1 << 20, method="crop")
    assert thumb.content_type and thumb.content_type.startswith("image/")
    assert thumb.data and thumb.size == len(thumb.data) and thumb.size > 0
    to_file = await client.thumbnail(
        mxc, 32, 32, max_bytes=1 << 20, path=tmp_path / "t.png"
    )
    assert (tmp_path / "t.png").read_bytes()[:4] == thumb.data[:4]
    assert to_file.size == (tmp_path / "t.png").stat().st_size


async def test_downloads_fall_back_to_legacy_media_when_v1_is_missing(
    tmp_path: Path,
) -> None:
    body = b"legacy bytes"
    served = Answer(
        200,
        body,
        {
            "Content-Type": "text/plain",
            "Content-Disposition": "attachment; filename*=utf-8''na%C3%AFve.txt",
        },
    )
    with fake_homeserver() as fake:
        fake.route("/_matrix/media/v3/download/example.org/abc", served)
        client = MatrixClient(fake.base_url, "t")
        # v1 unknown: 404 M_UNRECOGNIZED (the fake's default for any route).
        media = await client.download("mxc://example.org/abc", 100)
        assert (media.data, media.filename, media.content_type) == (
            body,
            "naïve.txt",
            "text/plain",
        )
        fake.route(
            "/_matrix/client/v1/media/thumbnail/example.org/abc",
            Answer(405, b"", {"Content-Type": "text/plain"}),
        )
        fake.route("/_matrix/media/v3/thumbnail/example.org/abc", served)
        thumb = await client.thumbnail(
            "mxc://example.org/abc", 10, 10, 100, path=tmp_path / "t"
        )
        assert (tmp_path / "t").read_bytes() == body
        assert thumb.size == len(body)
        (legacy,) = fake.requests_to("/_matrix/media/v3/thumbnail/example.org/abc")
        assert legacy.query == {"width": ["10"], "height": ["10"], "method": ["scale"]}


async def test_a_real_404_does_not_fall_back() -> None:
    with fake_homeserver() as fake:
        fake.route(
            "/_matrix/client/v1/media/download/example.org/gone",
            Answer(404, {"errcode": "M_NOT_FOUND", "error": "gone"}),
        )
        with pytest.raises(Exception) as err:
            await MatrixClient(fake.base_url, "t").download("mxc://example.org/gone", 9)
        assert getattr(err.value, "errcode", None) == "M_NOT_FOUND"
        assert not fake.requests_to("/_matrix/media/v3/download/example.org/gone")


async def test_rate_limited_downloads_are_retried(tmp_path: Path) -> None:
    path = "/_matrix/client/v1/media/download/example.org/slow"
    with fake_homeserver() as fake:
        fake.route(
            path,
            Answer(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 20}),
            Answer(200, b"finally", {"Content-Type": "text/plain"}),
        )
        client = MatrixClient(fake.base_url, "t")
        media = await client.download("mxc://example.org/slow", 100, tmp_path / "f")
        assert (tmp_path / "f").read_bytes() == b"finally"
        assert media.size == 7
        assert len(fake.requests_to(path)) == 2


async def test_mxc_uris_are_checked() -> None:
    assert parse_mxc("mxc://server.org/abc123") == ("server.org", "abc123")
    for bad in ("http://x/y", "mxc://server", "mxc:///id", "mxc://s/a/b"):
        with pytest.raises(ValueError):
            parse_mxc(bad)
