"""`make demo`: a complete local deployment on loopback.

Synapse, Prosody and the gateway, a demo Matrix account in a demo room with
a friend, and a demo XMPP account already registered with the gateway.
Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path
from urllib.parse import quote

from .gateway import Gateway
from .matrix_user import MatrixUser
from .ports import port_open
from .prosody import Prosody
from .synapse import Synapse
from .xmpp_client import XmppClient

ROOT = Path(__file__).resolve().parents[2] / ".demo"
XMPP_USER = "demo"
XMPP_PASSWORD = "demo"  # Prosody here accepts any password
MATRIX_PASSWORD = "demo-password"


async def link_demo_account(prosody: Prosody, synapse: Synapse) -> None:
    client = await XmppClient.connect_to(
        f"{XMPP_USER}@{prosody.domain}", XMPP_PASSWORD, "127.0.0.1", prosody.c2s_port
    )
    try:
        await client.register_with(
            prosody.component_jid,
            {
                "homeserver": synapse.base_url,
                "username": XMPP_USER,
                "password": MATRIX_PASSWORD,
                "device": "matridge demo",
            },
            timeout=60,
        )
    finally:
        await client.disconnect_and_wait()


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    synapse = Synapse(ROOT / "synapse")
    prosody = Prosody(ROOT / "prosody")
    if not port_open(5222):
        prosody.c2s_port = 5222  # the standard port, so clients need no setting
    synapse.start()
    prosody.start()

    demo = synapse.register_user(XMPP_USER, MATRIX_PASSWORD)
    friend_info = synapse.register_user("fran", "fran-password")
    friend = MatrixUser(
        synapse.base_url, friend_info["access_token"], friend_info["user_id"]
    )
    friend.set_displayname("Fran (Matrix)")
    me = MatrixUser(synapse.base_url, demo["access_token"], demo["user_id"])
    room = friend.create_room(
        name="Demo room", topic="Say hello from XMPP", invite=[me.user_id]
    )
    me.join(room)
    friend.send_text(room, "Welcome to the matridge demo room!")
    # A direct chat with Fran, which the gateway shows as a contact.
    direct = friend.create_room(
        invite=[me.user_id], is_direct=True, preset="trusted_private_chat"
    )
    me.join(direct)
    me.request(
        "PUT",
        f"/user/{quote(me.user_id, safe='')}/account_data/m.direct",
        {friend.user_id: [direct]},
    )
    friend.send_text(direct, "Hi! This direct chat is a contact on XMPP.")

    gateway = Gateway(ROOT / "gateway", prosody)
    gateway.start()
    asyncio.run(link_demo_account(prosody, synapse))

    shown = (
        "in your bookmarks"
        if prosody.has_privilege
        else "a group chat the gateway invites you to"
    )
    print(
        f"""
matridge demo is running (logs in {ROOT}).

Connect any XMPP client to:
  server   127.0.0.1, port {prosody.c2s_port} (plain text, no TLS)
  account  {XMPP_USER}@{prosody.domain}   password: anything
The account is registered with the gateway {prosody.component_jid} and linked
to the Matrix account {me.user_id}. "Demo room" is {shown}, and
Fran is a contact for your direct chat with her.

Matrix side: {synapse.base_url} — log in as fran / fran-password with any
Matrix client to answer from Matrix.

Press Ctrl-C to stop.
""",
        flush=True,
    )
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        gateway.stop()
        prosody.stop()
        synapse.stop()


if __name__ == "__main__":
    main()
