"""The Matrix event contents of what the XMPP user sends: text with its
styling as HTML, replies, thread messages, edits and reactions."""

from __future__ import annotations

from typing import Any

from .formatting import styling_to_html

HTML_FORMAT = "org.matrix.custom.html"


def text_content(body: str) -> dict[str, Any]:
    """An ``m.room.message`` content for a text: ``/me`` makes an emote, and
    XEP-0393 styling adds the HTML ``formatted_body``."""
    if body.startswith("/me "):
        content: dict[str, Any] = {"msgtype": "m.emote", "body": body[4:]}
    else:
        content = {"msgtype": "m.text", "body": body}
    html = styling_to_html(content["body"])
    if html is not None:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = html
    return content


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


def is_event_id(legacy_id: str | None) -> bool:
    """Whether an id slidge maps to is a Matrix event id (``$…``)."""
    return bool(legacy_id) and str(legacy_id).startswith("$")
