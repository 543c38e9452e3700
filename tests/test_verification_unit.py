"""The verify command where the end-to-end tests cannot easily take it: a
session whose encryption did not start, and the chat command's answers
to failures (text, never slidge's error tuple)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from slixmpp import JID

from matridge import logsafety
from matridge.commands import Verify
from matridge.crypto.cross_signing import CrossSigningError
from matridge.verification import Refused, run_from_ad_hoc, status

pytestmark = pytest.mark.asyncio

USER = JID("alice@example.org/phone")


def session_without_encryption() -> Any:
    return SimpleNamespace(matrix=SimpleNamespace(), encryption=None)


async def test_encryption_off_is_a_sentence_saying_what_to_do() -> None:
    with pytest.raises(Refused) as err:
        await status(session_without_encryption(), ad_hoc=True)
    assert err.value.condition == "service-unavailable"
    assert "End-to-end encryption is off for this session" in err.value.text
    assert "'re-login'" in err.value.text


@pytest.mark.parametrize(
    "args", [(), ("create",), ("EsTc", "LW2K", "PGiF"), ("a", "pass", "phrase")]
)
async def test_the_chat_command_answers_failures_in_words(
    args: tuple[str, ...],
) -> None:
    command = Verify(SimpleNamespace())  # type: ignore[arg-type]
    answer = await command.run(session_without_encryption(), USER, *args)
    assert isinstance(answer, str)
    assert answer.startswith("End-to-end encryption is off for this session")


async def test_a_call_from_outside_slidges_ad_hoc_handler_counts_as_chat() -> None:
    assert run_from_ad_hoc() is False


async def test_the_secret_is_masked_but_the_word_create_is_not() -> None:
    command = Verify(SimpleNamespace())  # type: ignore[arg-type]
    await command.run(session_without_encryption(), USER, "create")
    await command.run(session_without_encryption(), USER, "my", "own", "phrase")
    assert logsafety.redact("create_room my own phrase") == "create_room <redacted>"


class UncheckableEncryption:
    """An Encryption whose homeserver publishes keys that do not check out."""

    async def status(self) -> Any:
        raise CrossSigningError("the homeserver's master key is malformed")


@pytest.mark.parametrize("args", [(), ("create",)])
async def test_keys_that_do_not_check_out_are_said_in_words(
    args: tuple[str, ...],
) -> None:
    session = SimpleNamespace(
        matrix=SimpleNamespace(), encryption=UncheckableEncryption()
    )
    command = Verify(SimpleNamespace())  # type: ignore[arg-type]
    answer = await command.run(session, USER, *args)
    assert answer == (
        "The gateway cannot tell whether its device is verified: the "
        "homeserver's master key is malformed."
    )
