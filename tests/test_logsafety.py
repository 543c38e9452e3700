"""Secrets are redacted from log records, whichever library logs them."""

from __future__ import annotations

import logging

import pytest

from matridge import logsafety


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '<field var="password"><value>hunter2secret</value></field>',
            '<field var="password"><value><redacted></value></field>',
        ),
        (
            "<field type='text-private' var='password'>\n<value>s3cr3t!</value>",
            "<field type='text-private' var='password'>\n<value><redacted></value>",
        ),
        (
            '(\'{"user_id": "@a:x", "access_token": "syt_abc_def", "since": "s1"}\',)',
            '(\'{"user_id": "@a:x", "access_token": "<redacted>", "since": "s1"}\',)',
        ),
        ("{'password': 'it\\'s me'}", "{'password': '<redacted>'}"),
        (
            '{"since": "s1", "crypto_store_key": "q0Tz+k/AbC"}',
            '{"since": "s1", "crypto_store_key": "<redacted>"}',
        ),
        (
            '<field var="recovery_key"><value>EsTc LW2K PGiF</value></field>',
            '<field var="recovery_key"><value><redacted></value></field>',
        ),
        ("Authorization: Bearer syt_xyz", "Authorization: Bearer <redacted>"),
        (
            '<message to="gw"><body>verify EsTc LW2K\nPGiF</body></message>',
            '<message to="gw"><body>verify <redacted></body></message>',
        ),
        (
            "<body xml:lang='en'>Verify my &lt;pass&gt; phrase</body>",
            "<body xml:lang='en'>Verify <redacted></body>",
        ),
        ("<body>verifying is fun</body>", None),
        ('<field var="username"><value>alice</value>', None),
    ],
)
def test_patterns(text: str, expected: str | None) -> None:
    assert logsafety.redact(text) == (expected or text)


def test_remembered_values_and_records(caplog: pytest.LogCaptureFixture) -> None:
    logsafety.install()
    logsafety.install()  # idempotent
    logsafety.remember("opaque-token-123456")
    logsafety.remember("abc")  # too short to match safely: ignored
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG):
        log.debug("sending %s to %s", "opaque-token-123456", "abc")
        log.debug("%d%%", 5)
    # Only this logger's records: a collected task of an earlier test may
    # log on its own meanwhile.
    mine = [r.getMessage() for r in caplog.records if r.name == "some.library"]
    assert mine == ["sending <redacted> to abc", "5%"]
