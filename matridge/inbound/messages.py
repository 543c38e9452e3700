"""Matrix messages, reactions and redactions, shown in a room's XMPP
conversation (a group chat or a contact's chat): live events, the events of
a gap, and history backfilled into slidge's archive.

Each message goes out from its sender's entity (an occupant, the contact,
or the user themself as a carbon) through :func:`matridge.render.send_matrix_event`,
with its reply quote and its mentions' XMPP names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slidge.util.types import MessageReference

from .. import config
from ..chat import MESSAGE_KINDS, MatrixChat
from ..matrix import Event, History, Member, Message
from ..media import is_media
from ..reactions import current_reactions
from ..render import MentionTarget, message_mentions, message_text, send_matrix_event
from ..state import Reaction

log = logging.getLogger(__name__)


async def fill_gap(chat: MatrixChat, prev_batch: str) -> None:
    """A sync timeline came ``limited``: relays the events between what
    the user last got (`gap_stop`) and that timeline, so none is skipped."""
    history = await chat.account.matrix.history(
        chat.room_id,
        prev_batch,
        until_event_id=await chat.gap_stop(),
        limit=config.GAP_FILL_EVENTS,
    )
    seen = chat.account.state.seen
    fresh = tuple(
        await chat.account.readable_now(
            chat.room_id,
            (e for e in history.events if (e.event_id or "") not in seen),
        )
    )
    n = await relay_history(chat, history, fresh, archive_only=False)
    for e in fresh:
        seen.add(e.event_id or "")
    log.info("Filled a gap of %d events in %s", n, chat.room_id)


async def reply_reference(chat: MatrixChat, event: Event) -> MessageReference | None:
    """The XEP-0461 quote for a reply: the replied-to message's author and
    text, from the recent events (history is relayed oldest first, so a
    reply's target within it is among them) or the homeserver."""
    target_id = event.in_reply_to
    if target_id is None or event.is_falling_back:
        return None
    target = await chat.get_message(target_id)
    if target is None or target.sender is None:
        return MessageReference(target_id)
    # slidge wants the string "user" for the XMPP user's own messages.
    author: Any = (
        "user"
        if target.sender == chat.account.user_id
        else await chat.sender_for(target.sender)
    )
    body = message_text(target.message)
    return MessageReference(target_id, author, body)


async def on_event(chat: MatrixChat, event: Event) -> None:
    """Shows one live timeline event of this room to the XMPP user."""
    if event.kind in MESSAGE_KINDS:
        if chat.account.is_own_echo(event):
            chat.remember_event(event)
            return
        await relay(chat, event)
    elif event.kind == "reaction":
        await on_reaction(chat, event)
    elif event.kind == "redaction":
        await on_redaction(chat, event)


async def relay(
    chat: MatrixChat,
    event: Event,
    archive_only: bool = False,
    history: History | None = None,
) -> None:
    """One message-like event to XMPP, from its sender's entity, with its
    reply quote; from history, with its latest edit applied and its
    reactions."""
    sender = event.sender
    assert sender is not None  # invalid events never get here
    entity = await chat.sender_for(sender)
    event_id = event.event_id or ""
    replacement = history.replacement(event_id) if history else None
    if replacement is not None:
        shown = replacement.new_message
    elif event.rel_type == "m.replace":
        shown = event.new_message
    else:
        shown = event.message
    await send_matrix_event(
        entity,
        event,
        archive_only=archive_only,
        replacement=replacement,
        reply_to=await reply_reference(chat, event),
        mentions=await mention_targets(chat, shown),
        placeholder=chat.account.placeholder(event) if event.encrypted else None,
    )
    chat.remember_event(event)
    if history is None:
        return
    for reactor, keys in history.reactions(event_id).items():
        reacting = await chat.sender_for(reactor)
        reacting.react(event_id, keys, archive_only=archive_only)
    # Remembered like live ones, so that removing one on Matrix later takes
    # it off on XMPP; the history gathered every reaction to this message.
    log = chat.reaction_log
    for reaction_id, reactor, key in history.reaction_events(event_id):
        log.put(reaction_id, Reaction(event_id, reactor, key))
    for reactor in history.reactions(event_id):
        log.mark_complete(event_id, reactor)


async def show_late(chat: MatrixChat, event: Event) -> None:
    """An encrypted message shown as a placeholder, decrypted now that its
    key came: the placeholder is corrected in place (XEP-0308) into it."""
    sender, event_id = event.sender, event.event_id
    if sender is None or event_id is None:
        return
    if event.kind not in MESSAGE_KINDS:
        # A reaction or an edit: shown as if it came now.
        await on_event(chat, event)
        return
    content = event.new_message if event.rel_type == "m.replace" else event.message
    text = message_text(content)
    if text is None:
        return
    entity = await chat.sender_for(sender)
    if event.rel_type == "m.replace" and event.relates_to:
        # The edit corrects its original; its own placeholder says so.
        await on_event(chat, event)
        entity.correct(event_id, f"✏️ {text}")
    elif is_media(event, content):
        # A correction carries text only: the file follows on its own.
        entity.correct(event_id, f"📎 {text}")
        await relay(chat, event)
    else:
        entity.correct(event_id, text)
        chat.remember_event(event)


async def relay_history(
    chat: MatrixChat, history: History, events: tuple[Event, ...], archive_only: bool
) -> int:
    """Relays `events` of paged history, oldest first, with the edits and
    reactions the history gathered; returns how many events went."""
    n = 0
    for event in events:
        sender = event.sender
        if sender is None:
            continue
        if event.kind in MESSAGE_KINDS:
            await relay(chat, event, archive_only=archive_only, history=history)
        elif not archive_only and event.kind in ("reaction", "redaction"):
            # A gap in the live timeline: as if it had come live.
            await on_event(chat, event)
        elif event.kind == "reaction" and event.relates_to and event.reaction_key:
            # A reaction to a message older than this history.
            reacting = await chat.sender_for(sender)
            reacting.react(
                event.relates_to, [event.reaction_key], archive_only=archive_only
            )
        elif event.kind == "redaction" and event.redacts:
            # The removal of a message older than this history.
            redacting = await chat.sender_for(sender)
            redacting.retract(event.redacts, archive_only=archive_only)
        else:
            continue
        n += 1
    return n


async def mention_targets(
    chat: MatrixChat, message: Message | None
) -> dict[str, MentionTarget]:
    """The XMPP names of the users `message` mentions (pills)."""
    targets: dict[str, MentionTarget] = {}
    spans = message_mentions(message)  # none when the text has no pills
    if not spans:
        return targets
    # One snapshot of the members for the whole message.
    info = chat.account.room_info(chat.room_id)
    members = info.members if info is not None else {}
    for _, _, user_id in spans:
        if user_id in targets:
            continue
        target = await mention_target(chat, user_id, members)
        if target is not None:
            targets[user_id] = target
    return targets


async def mention_target(
    chat: MatrixChat, user_id: str, members: Mapping[str, Member]
) -> MentionTarget | None:
    """How a mention of Matrix user `user_id` shows on XMPP; None to
    leave the pill's text as it is (someone not in this room)."""
    if user_id == chat.account.user_id:
        return chat.own_mention_target()
    member = members.get(user_id)
    if member is None or member.membership != "join":
        return None  # showing them would make them appear in the room
    entity = await chat.sender_for(user_id)
    name = getattr(entity, "nickname", None) or getattr(entity, "name", None)
    jid = getattr(entity, "jid", None)
    if not name or jid is None:
        return None
    return MentionTarget(str(name), f"xmpp:{jid}")


async def on_reaction(chat: MatrixChat, event: Event) -> None:
    """A live reaction: its sender's whole set of keys on the message
    goes to XMPP (XEP-0444 replaces the set each time)."""
    target, key, sender = event.relates_to, event.reaction_key, event.sender
    if not target or not key or not sender or not event.event_id:
        return
    chat.reaction_log.put(event.event_id, Reaction(target, sender, key))
    if chat.account.is_own_echo(event):
        return
    await show_reactions(chat, target, sender)


async def show_reactions(chat: MatrixChat, target: str, sender: str) -> None:
    keys = await current_reactions(
        chat.account.matrix, chat.room_id, target, sender, chat.reaction_log
    )
    entity = await chat.sender_for(sender)
    entity.react(target, list(keys))


async def on_redaction(chat: MatrixChat, event: Event) -> None:
    """A live redaction: of a reaction, the sender's remaining reactions
    go to XMPP; of a message, a retraction (XEP-0424) when its sender
    redacted it, else a moderation (XEP-0425) by the redacting user."""
    redacts, redactor = event.redacts, event.sender
    if not redacts or not redactor:
        return
    reaction = chat.reaction_log.pop(redacts)
    if chat.account.is_own_echo(event):
        return  # the user's removal from XMPP: shown already
    if reaction is not None:
        await show_reactions(chat, reaction.target, reaction.sender)
        return
    original = await chat.get_message(redacts)
    chat.recent.pop(redacts)
    if original is None or original.kind not in MESSAGE_KINDS:
        # A reaction this room no longer remembers, an edit, a state
        # event…: nothing XMPP shows as a message.
        log.debug("Redaction of %s: not a message shown here", redacts)
        return
    if original.rel_type == "m.replace":
        # An edit taken back: XMPP corrections cannot be undone.
        log.debug("Redaction of the edit %s: not shown", redacts)
        return
    author = original.sender or redactor
    redacting = await chat.sender_for(redactor)
    moderate = getattr(redacting, "moderate", None)
    if author == redactor or moderate is None:
        (await chat.sender_for(author)).retract(redacts)
    else:
        moderate(redacts, event.reason)
