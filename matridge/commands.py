"""Commands matridge adds to slidge's (ad-hoc and chat commands)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slidge.command import Command, CommandAccess

if TYPE_CHECKING:
    from .session import Session


class Logout(Command):  # type: ignore[type-arg]
    NAME = "🔌 Disconnect from Matrix"
    HELP = (
        "Stop receiving from and sending to Matrix, keeping your registration; "
        "'re-login' reconnects and delivers what arrived in between."
    )
    CHAT_COMMAND = "logout"
    NODE = "https://slidge.im/command/matridge/" + CHAT_COMMAND
    ACCESS = CommandAccess.USER_LOGGED

    async def run(self, session: Session | None, _ifrom: Any, *_: str) -> str:
        assert session is not None
        await session.logout()
        session.logged = False
        session.send_gateway_status("Disconnected from Matrix", show="xa")
        return "Disconnected from Matrix. Send 're-login' to reconnect."
