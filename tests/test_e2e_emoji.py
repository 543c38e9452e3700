"""Emoji verification through the whole gateway: the user's other Matrix
device (tests/harness/sas_peer.py) asks to verify the gateway's device, the
XMPP user accepts in the gateway's chat, sees the same emoji as that device
shows and types 'emoji match'; then the gateway receives the user's keys
and its device is cross-signed for everyone to see."""

from __future__ import annotations

import asyncio

import pytest

from matridge.crypto.cross_signing import MEGOLM_BACKUP
from matridge.crypto.primitives import random_bytes
from matridge.crypto.sas import EMOJI
from matridge.emoji_commands import Emoji
from tests.conftest import Person
from tests.harness.cross_signing_peer import (
    Identity,
    device_signed_by_self_signing_key,
    identity_secrets,
    publish,
)
from tests.harness.sas_peer import SasPeer
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppError
from tests.scenarios import from_gateway, register

pytestmark = pytest.mark.asyncio(loop_scope="session")

V = "m.key.verification."


def gateway_device(person: Person) -> str:
    devices = person.matrix.request("GET", "/devices")["devices"]
    [device] = [d["device_id"] for d in devices if d.get("display_name") == "e2e tests"]
    assert isinstance(device, str)
    return device


async def registered_beside_a_peer(
    person: Person, synapse: Synapse
) -> tuple[SasPeer, str]:
    """The user's other device (not cross-signed), then their registration:
    the peer and the gateway's device id."""
    peer = await asyncio.to_thread(
        SasPeer.login, synapse.base_url, person.name, person.password
    )
    await register(person, synapse)
    return peer, gateway_device(person)


async def test_emoji_verification_in_the_gateway_chat(
    person: Person, synapse: Synapse
) -> None:
    peer = await asyncio.to_thread(
        SasPeer.login, synapse.base_url, person.name, person.password
    )
    identity = Identity.generate(peer.user_id)
    await asyncio.to_thread(publish, peer.user, identity, person.password)
    await asyncio.to_thread(peer.cross_sign_device, identity, peer.device_id)
    await register(person, synapse)
    ours = gateway_device(person)
    assert not device_signed_by_self_signing_key(peer.user, peer.user_id, ours)

    txn = await asyncio.to_thread(peer.request, ours)
    await person.xmpp.wait_message(
        from_gateway(person, "asks to verify", peer.device_id, "emoji accept"),
        timeout=60,
    )
    person.xmpp.send_chat(person.gateway_jid, "emoji accept")
    await person.xmpp.wait_message(from_gateway(person, "Accepted"), timeout=30)
    await asyncio.to_thread(peer.wait_for, V + "ready", 60)
    await asyncio.to_thread(peer.start, txn)
    accept = await asyncio.to_thread(peer.wait_for, V + "accept", 60)
    peer.sas[txn].commitment = accept["commitment"]
    await asyncio.to_thread(peer.send_key, txn)
    key = await asyncio.to_thread(peer.wait_for, V + "key", 60)
    peer.their_key(txn, key)

    shown = await person.xmpp.wait_message(
        from_gateway(person, "Compare these emoji", "emoji match"), timeout=60
    )
    expected = [
        f"{symbol}  {name}" for symbol, name in (EMOJI[i] for i in peer.sas[txn].emoji)
    ]
    lines = [line for line in shown["body"].splitlines() if line in expected]
    assert lines == expected
    numbers = " ".join(str(n) for n in peer.sas[txn].decimals)
    assert f"the numbers {numbers}" in shown["body"]

    await asyncio.to_thread(peer.send_mac, txn, identity.master.public_key)
    person.xmpp.send_chat(person.gateway_jid, "emoji match")
    our_mac = await asyncio.to_thread(peer.wait_for, V + "mac", 60)
    peer.check_mac(
        txn,
        our_mac,
        {
            f"ed25519:{ours}": peer.user.request(
                "POST", "/keys/query", {"device_keys": {peer.user_id: [ours]}}
            )["device_keys"][peer.user_id][ours]["keys"][f"ed25519:{ours}"],
            f"ed25519:{identity.master.public_key}": identity.master.public_key,
        },
    )
    await asyncio.to_thread(peer.wait_for, V + "done", 60)
    await asyncio.to_thread(peer.done, txn)
    await person.xmpp.wait_message(from_gateway(person, "Verified"), timeout=60)

    secrets = identity_secrets(identity) | {MEGOLM_BACKUP: random_bytes(32)}
    await asyncio.to_thread(peer.answer_secret_requests, secrets, 4)
    await person.xmpp.wait_message(
        from_gateway(person, "is verified", ours), timeout=60
    )
    assert device_signed_by_self_signing_key(peer.user, peer.user_id, ours)


async def test_the_emoji_commands_answer_when_nothing_is_going_on(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    # Ad-hoc: the form's answer, with no verification going on.
    with pytest.raises(XmppError) as err:
        await person.xmpp.run_command(
            person.gateway_jid, Emoji.NODE, {"answer": "match"}
        )
    assert "No emoji verification is waiting" in err.value.text
    # Chat: no other device of the user to ask.
    person.xmpp.send_chat(person.gateway_jid, "emoji-verify")
    await person.xmpp.wait_message(
        from_gateway(person, "You have no other Matrix device"), timeout=30
    )
    person.xmpp.send_chat(person.gateway_jid, "emoji-verify NOSUCHDEVICE")
    await person.xmpp.wait_message(
        from_gateway(person, "No other device of yours is called NOSUCHDEVICE"),
        timeout=30,
    )


async def test_emoji_verify_from_xmpp_and_a_mismatch(
    person: Person, synapse: Synapse
) -> None:
    peer, ours = await registered_beside_a_peer(person, synapse)

    person.xmpp.send_chat(person.gateway_jid, f"emoji-verify {peer.device_id}")
    await person.xmpp.wait_message(
        from_gateway(person, "Verification request sent to", peer.device_id),
        timeout=30,
    )
    request = await asyncio.to_thread(peer.wait_for, V + "request", 60)
    assert request["from_device"] == ours
    txn = await asyncio.to_thread(peer.ready, request)
    start = await asyncio.to_thread(peer.wait_for, V + "start", 60)
    await asyncio.to_thread(peer.accept, start)
    key = await asyncio.to_thread(peer.wait_for, V + "key", 60)
    peer.their_key(txn, key)
    await asyncio.to_thread(peer.send_key, txn)
    shown = await person.xmpp.wait_message(
        from_gateway(person, "Compare these emoji"), timeout=60
    )
    for i in peer.sas[txn].emoji:
        assert EMOJI[i][1] in shown["body"]

    person.xmpp.send_chat(person.gateway_jid, "emoji mismatch")
    cancel = await asyncio.to_thread(peer.wait_for, V + "cancel", 60)
    assert cancel["code"] == "m.mismatched_sas"
    await person.xmpp.wait_message(
        from_gateway(person, "did not match", "nothing was trusted"), timeout=30
    )
    assert not device_signed_by_self_signing_key(peer.user, peer.user_id, ours)


async def test_a_verification_going_on_is_cancelled_when_the_user_unregisters(
    person: Person, synapse: Synapse
) -> None:
    peer, ours = await registered_beside_a_peer(person, synapse)
    txn = await asyncio.to_thread(peer.request, ours)
    await person.xmpp.wait_message(
        from_gateway(person, "asks to verify", peer.device_id), timeout=60
    )
    person.xmpp.send_chat(person.gateway_jid, "emoji accept")
    await asyncio.to_thread(peer.wait_for, V + "ready", 60)

    # The other device is told, rather than left waiting for a gateway
    # device that no longer exists.
    await person.xmpp.plugin["xep_0077"].cancel_registration(
        jid=person.gateway_jid, timeout=30
    )
    cancel = await asyncio.to_thread(peer.wait_for, V + "cancel", 60)
    assert cancel["code"] == "m.user"
    assert cancel["transaction_id"] == txn
