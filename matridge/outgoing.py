"""The Matrix event contents of what the XMPP user sends: text with its
styling as HTML, replies, thread messages, edits and reactions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from .formatting import styling_to_html

HTML_FORMAT = "org.matrix.custom.html"


# A mention span: start, end (in the text) and the Matrix user id.
Mention = tuple[int, int, str]

# Private-use characters that stand for a mention while the styling is
# turned into HTML, so the pill's own HTML is never styled or escaped.
_PILL_OPEN, _PILL_CLOSE = "\ue000", "\ue001"


def split_emote(body: str) -> tuple[str, str]:
    """The msgtype and text of what the user wrote: ``/me`` makes an emote."""
    if body.startswith("/me "):
        return "m.emote", body[4:]
    return "m.text", body


def text_content(body: str, mentions: Sequence[Mention] = ()) -> dict[str, Any]:
    """An ``m.room.message`` content for a text: ``/me`` makes an emote,
    XEP-0393 styling adds the HTML ``formatted_body``, and `mentions` (spans
    of the text without ``/me``) become pills and ``m.mentions``."""
    msgtype, text = split_emote(body)
    content: dict[str, Any] = {"msgtype": msgtype, "body": text}
    marked = _mark_pills(text, mentions)
    html = styling_to_html(marked)
    if html is None and mentions:
        html = escape(marked, quote=False).replace("\n", "<br>")
    if html is not None:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = _pills(html, text, mentions)
    if mentions:
        content["m.mentions"] = {"user_ids": sorted({m[2] for m in mentions})}
    return content


# What may follow a name for it to count as a mention ("Fran: hi", "Fran, …").
_AFTER_NAME = frozenset(" \t\n:,;.!?)")


def find_mentions(text: str, names: Mapping[str, str]) -> list[Mention]:
    """The mentions in `text` of `names` (the name shown → its user id): a
    name counts where it stands as a whole word, after the start, a space,
    "@" or "(", and before the end, a space or punctuation. Longer names win
    over the shorter names inside them; spans never overlap."""
    found: list[Mention] = []
    taken = [False] * len(text)
    for name in sorted(names, key=len, reverse=True):
        if len(name) < 2:
            continue  # a one-letter name would match everywhere
        start = text.find(name)
        while start >= 0:
            end = start + len(name)
            before_ok = start == 0 or text[start - 1] in " \t\n@("
            after_ok = end == len(text) or text[end] in _AFTER_NAME
            if before_ok and after_ok and not any(taken[start:end]):
                found.append((start, end, names[name]))
                taken[start:end] = [True] * len(name)
            start = text.find(name, end)
    return sorted(found)


def merge_mentions(first: Sequence[Mention], more: Sequence[Mention]) -> list[Mention]:
    """`first` with those of `more` that overlap none of it, in text order."""
    merged = list(first)
    for span in more:
        if all(span[1] <= m[0] or span[0] >= m[1] for m in merged):
            merged.append(span)
    return sorted(merged)


def _mark_pills(text: str, mentions: Sequence[Mention]) -> str:
    """`text` with each mention replaced by its numbered placeholder."""
    out, cursor = [], 0
    for i, (start, end, _) in enumerate(mentions):
        out.append(text[cursor:start] + f"{_PILL_OPEN}{i}{_PILL_CLOSE}")
        cursor = end
    return "".join(out) + text[cursor:]


def _pills(html: str, text: str, mentions: Sequence[Mention]) -> str:
    """The placeholders of `html` as Matrix pills (matrix.to links)."""
    for i, (start, end, user_id) in enumerate(mentions):
        link = f"https://matrix.to/#/{quote(user_id, safe='@:')}"
        name = escape(text[start:end], quote=False)
        html = html.replace(
            f"{_PILL_OPEN}{i}{_PILL_CLOSE}", f'<a href="{link}">{name}</a>'
        )
    return html


def relate(
    content: dict[str, Any], reply_to: str | None, thread_root: str | None
) -> dict[str, Any]:
    """`content` as a reply to event `reply_to` and/or a message of the
    thread rooted at `thread_root`."""
    relates: dict[str, Any] = {}
    if thread_root is not None:
        relates = {"rel_type": "m.thread", "event_id": thread_root}
        if reply_to is None:
            # Not a reply: only a thread message (this is not a fallback
            # pointing at the latest message, which this gateway may not know).
            return {**content, "m.relates_to": relates}
        relates["is_falling_back"] = False
    if reply_to is not None:
        relates["m.in_reply_to"] = {"event_id": reply_to}
    return {**content, "m.relates_to": relates} if relates else content


def edit_content(target: str, new: dict[str, Any]) -> dict[str, Any]:
    """An edit (``m.replace``) of event `target` to the content `new`, with
    a fallback body marked by a leading asterisk for clients without edits."""
    content: dict[str, Any] = {
        "msgtype": new["msgtype"],
        "body": "* " + new["body"],
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }
    if "formatted_body" in new:
        content["format"] = new["format"]
        content["formatted_body"] = "* " + new["formatted_body"]
    return content


def reaction_content(target: str, key: str) -> dict[str, Any]:
    return {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}
    }
