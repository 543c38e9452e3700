"""The pure parts of finding and joining: reading what the user typed, and the
sync-status text for states the end-to-end tests cannot easily reach."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from slixmpp.exceptions import XMPPError

from matridge.commands import describe_sync
from matridge.search import normalise_address
from matridge.sync_status import SyncHealth


@pytest.mark.parametrize(
    ("typed", "address"),
    [
        ("#room:example.org", "#room:example.org"),
        ("  !abc:example.org \n", "!abc:example.org"),
        ("!AbCdEf123", "!AbCdEf123"),  # room version 12: no server part
        ("@alice:example.org", "@alice:example.org"),
        ("https://matrix.to/#/#room:example.org", "#room:example.org"),
        ("https://matrix.to/#/!abc:example.org/$event?via=x.org", "!abc:example.org"),
    ],
)
def test_addresses_are_read_from_what_was_typed(typed: str, address: str) -> None:
    assert normalise_address(typed) == address


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "is not a Matrix address"),
        ("room", "is not a Matrix address"),
        ("!", "is not a Matrix address"),
        ("#two words:example.org", "is not a Matrix address"),
        ("#room", "Room aliases look like #room:example.org"),
        ("@alice:", "User ids look like @alice:example.org"),
    ],
)
def test_bad_addresses_are_refused_in_words(typed: str, words: str) -> None:
    with pytest.raises(XMPPError) as err:
        normalise_address(typed)
    assert err.value.condition == "bad-request"
    assert words in err.value.text


class FakeRooms:
    def room_ids(self) -> tuple[str, ...]:
        return ()


def fake_session(health: SyncHealth, syncing: bool = True, logged: bool = True) -> Any:
    matrix = SimpleNamespace(
        syncing=syncing, homeserver="https://hs.example", rooms=FakeRooms()
    )
    return SimpleNamespace(
        matrix=matrix, sync_health=health, logged=logged, user_id="@me:hs.example"
    )


def test_status_before_the_first_answer() -> None:
    text = describe_sync(fake_session(SyncHealth()))
    assert "Connection: connecting (no sync answer yet)" in text
    assert "Last sync: none since login" in text
    assert "Joined rooms: 0" in text


def test_status_while_retrying_names_the_error_until_a_batch_succeeds() -> None:
    health = SyncHealth()
    health.batch_done("s1")
    health.failed(ConnectionError("connection refused"), fatal=False)
    assert "Connection: reconnecting after an error: connection refused" in (
        describe_sync(fake_session(health))
    )
    health.batch_done("s2")
    text = describe_sync(fake_session(health))
    assert "Connection: connected" in text
    assert "2 batches since login" in text
    assert "Sync token: s2" in text


def test_status_after_matrix_ended_the_session() -> None:
    health = SyncHealth()
    health.failed(RuntimeError("M_UNKNOWN_TOKEN"), fatal=True)
    text = describe_sync(fake_session(health, syncing=False))
    assert "Connection: stopped: M_UNKNOWN_TOKEN" in text
    assert "Sync loop: stopped" in text


def test_status_without_a_matrix_session() -> None:
    session = SimpleNamespace(matrix=None, sync_health=SyncHealth(), logged=False)
    assert "not connected" in describe_sync(session)  # type: ignore[arg-type]
