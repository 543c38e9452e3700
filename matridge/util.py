"""The original design's mixin for the entities that show Matrix events on
XMPP (:class:`matridge.group.Participant`, :class:`matridge.contact.Contact`);
the rendering itself is :mod:`matridge.render`'s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slixmpp import Message as XMPPMessage

from .render import MentionTarget, add_references, send_matrix_event

if TYPE_CHECKING:
    from slidge.util.types import MessageReference

    from .matrix import Event


class MatrixMixin:
    """Sends decoded Matrix events to XMPP as this entity."""

    def _send(self, stanza: Any, *args: Any, **send_kwargs: Any) -> Any:
        # slidge hands send_text's extra keywords down to here: `references`
        # carries the mentions, added before the stanza is archived and sent
        # (slidge 0.5 keeps them in its archive, but has no API to add them).
        refs = send_kwargs.pop("references", None)
        if refs and isinstance(stanza, XMPPMessage):
            add_references(stanza, refs)
        return super()._send(stanza, *args, **send_kwargs)  # type: ignore[misc]

    async def send_matrix_message(
        self,
        event: Event,
        archive_only: bool = False,
        replacement: Event | None = None,
        reply_to: MessageReference | None = None,
        mentions: Mapping[str, MentionTarget] | None = None,
        **send_kwargs: Any,
    ) -> None:
        """An ``m.room.message``, ``m.sticker`` or ``m.room.encrypted``
        event, shown as this entity's (see :func:`render.send_matrix_event`)."""
        await send_matrix_event(
            self,  # type: ignore[arg-type]  # the entity it is mixed into
            event,
            archive_only,
            replacement,
            reply_to,
            mentions,
            **send_kwargs,
        )
