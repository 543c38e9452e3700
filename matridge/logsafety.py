"""Keeps users' secrets out of the logs.

With ``--debug``, slixmpp logs every stanza (registration forms carry the
Matrix password) and SQLAlchemy logs every parameter (the stored session
carries the access token). Each log record is redacted when it is created,
whichever library made it: known secret shapes by pattern, and the exact
values matridge has handled as a backstop.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "<redacted>"

# Field names whose values are secrets, in data forms, JSON, and Python reprs.
# crypto_store_key: the key of the user's key store, kept in slidge's per-user
# data; recovery_key and passphrase: what unlocks the user's secret storage.
_SECRET_KEYS = (
    "password|access_token|refresh_token|login_token|token"
    "|crypto_store_key|recovery_key|passphrase"
)
_PATTERNS = (
    re.compile(
        rf'(<field\b[^>]*\bvar=["\'](?:{_SECRET_KEYS})["\'][^>]*>\s*<value>)[^<]*(</value>)'
    ),
    re.compile(rf'("(?:{_SECRET_KEYS})"\s*:\s*")(?:[^"\\]|\\.)*(")'),
    re.compile(rf"('(?:{_SECRET_KEYS})'\s*:\s*')(?:[^'\\]|\\.)*(')"),
    re.compile(r"(\bBearer\s+)[^\s'\"]+()"),
    # The chat command "verify <recovery key or passphrase>": slixmpp logs
    # the message before any handler can remember the secret.
    re.compile(r"(<body\b[^>]*>\s*(?i:verify)\s+)[^<]*(</body>)"),
)

_lock = threading.Lock()
_known: set[str] = set()
_known_re: re.Pattern[str] | None = None


def remember(secret: str | None) -> None:
    """Redacts this exact value from every later log record."""
    global _known_re
    if not secret or len(secret) < 6:  # too short to be worth matching
        return
    with _lock:
        if secret in _known:
            return
        _known.add(secret)
        alternatives = sorted(_known, key=len, reverse=True)
        _known_re = re.compile("|".join(map(re.escape, alternatives)))


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\1{MASK}\2", text)
    known = _known_re
    return known.sub(MASK, text) if known else text


def install() -> None:
    """Wraps the log record factory (once per process)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "matridge_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    factory.matridge_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
