"""The commands of emoji verification (emoji_verification.py): 'emoji'
answers a verification, 'emoji-verify' starts one. Each is an ad-hoc
command (XEP-0050) and a chat command, like those of commands.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slidge.command import Command, CommandAccess, FormField
from slidge.command.base import FormSession, FormValues
from slixmpp import JID
from slixmpp.exceptions import XMPPError

from . import emoji_verification
from .commands import NODE
from .errors import logged_in

if TYPE_CHECKING:
    from .session import Session

_ANSWERS = {
    "accept": "Accept your other device's request",
    "match": "The emoji match",
    "mismatch": "The emoji do not match",
    "cancel": "Cancel the verification",
}


class Emoji(Command):  # type: ignore[type-arg]
    NAME = "😀 Answer an emoji verification"
    HELP = (
        "Answer the emoji verification of this gateway's device: 'emoji accept' "
        "(your other device asked), 'emoji match' or 'emoji mismatch' (after "
        "comparing the emoji), 'emoji cancel'."
    )
    CHAT_COMMAND = "emoji"
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(
        self, session: Session | None, _ifrom: Any, *args: str
    ) -> str | FormSession[Session]:
        s = logged_in(session)
        if args:
            return await self.answer(s, args[0])
        emoji_verification.of(s)  # says so at once if encryption is off
        return FormSession(
            title="Emoji verification",
            instructions="Your answer to the emoji verification going on.",
            fields=[
                FormField(
                    "answer",
                    "Answer",
                    required=True,
                    type="list-single",
                    options=[
                        {"label": label, "value": value}
                        for value, label in _ANSWERS.items()
                    ],
                )
            ],
            handler=self.finish,
        )

    async def finish(
        self, values: FormValues, session: Session | None, _ifrom: JID
    ) -> str:
        return await self.answer(logged_in(session), str(values.get("answer") or ""))

    @staticmethod
    async def answer(session: Session, word: str) -> str:
        ev = emoji_verification.of(session)
        match word.strip().lower():
            case "accept":
                return await ev.accept()
            case "match" | "yes":
                return await ev.confirm(True)
            case "mismatch" | "no":
                return await ev.confirm(False)
            case "cancel":
                return await ev.cancel()
        raise XMPPError(
            "bad-request",
            "Answer with 'emoji accept', 'match', 'mismatch' or 'cancel'.",
        )


class EmojiVerify(Command):  # type: ignore[type-arg]
    NAME = "🔐 Verify this gateway's device with emoji"
    HELP = (
        "Ask your other Matrix devices (or the one named) to verify this "
        "gateway's device by comparing emoji. Chat: emoji-verify, or "
        "emoji-verify DEVICEID"
    )
    CHAT_COMMAND = "emoji-verify"
    NODE = NODE + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(self, session: Session | None, _ifrom: Any, *args: str) -> str:
        s = logged_in(session)
        return await emoji_verification.of(s).start(args)
