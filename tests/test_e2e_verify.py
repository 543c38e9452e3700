"""The ``verify`` command, end to end: the gateway's Matrix device verified
with the user's recovery key or passphrase (an account set up as Element
does, tests/harness/cross_signing_peer.py), or signed by an identity the
gateway creates for an account without one; as an ad-hoc command and as a
chat command, through the real Synapse, Prosody and gateway. Another
user's ``/keys/query`` judges whether the device ends up signed by the
owner's self-signing key; the gateway's ``--debug`` log is searched for
the secrets."""

from __future__ import annotations

import pytest
from slixmpp import Message

from matridge.crypto.primitives import encode_recovery_key, random_bytes
from tests.conftest import Person, new_matrix_user
from tests.harness.cross_signing_peer import (
    device_signed_by_self_signing_key,
    element_like_account,
    master_key_of,
)
from tests.harness.faultproxy import FaultProxy
from tests.harness.gateway import Gateway
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppError
from tests.scenarios import from_gateway, register

pytestmark = pytest.mark.asyncio(loop_scope="session")

VERIFY = "https://slidge.im/command/matridge/verify"
PASSPHRASE = "correct horse battery staple, verified"


async def chat(person: Person, text: str, *words: str) -> str:
    """Sends ``text`` to the gateway; the body of its reply with ``words``."""
    person.xmpp.send_chat(person.gateway_jid, text)
    reply = await person.xmpp.wait_message(from_gateway(person, *words), timeout=60)
    return str(reply["body"])


def gateway_device(person: Person) -> str:
    """The device the gateway logged in as (named in the registration form)."""
    devices = person.matrix.request("GET", "/devices")["devices"]
    [device] = [d["device_id"] for d in devices if d.get("display_name") == "e2e tests"]
    return str(device)


def signed(person: Person, synapse: Synapse) -> bool:
    """Whether someone else sees the gateway's device signed by the owner."""
    viewer = new_matrix_user(synapse, "viewer")
    return device_signed_by_self_signing_key(
        viewer, person.matrix.user_id, gateway_device(person)
    )


def master_key(person: Person, synapse: Synapse) -> str | None:
    return master_key_of(new_matrix_user(synapse, "viewer"), person.matrix.user_id)


def assert_not_in_log(gateway: Gateway, *secrets: str) -> None:
    log = gateway.log_text()
    for secret in secrets:
        assert secret not in log
        assert "".join(secret.split()) not in log


def bodies_from_gateway(person: Person) -> str:
    return "\n".join(
        str(m["body"])
        for m in person.xmpp.received
        if isinstance(m, Message) and m["from"].bare == person.gateway_jid
    )


# ---- with an identity: the recovery key or the passphrase --------------------


async def test_at_login_then_with_the_recovery_key_in_the_ad_hoc_form(
    person: Person, synapse: Synapse, gateway: Gateway
) -> None:
    identity, storage = element_like_account(person.matrix)
    await register(person, synapse)

    # At login the gateway says the device is unverified and what to do.
    told = await person.xmpp.wait_message(
        from_gateway(person, "not signed", "'verify'"), timeout=60
    )
    assert "recovery key" in told["body"]
    assert not signed(person, synapse)

    iq = await person.xmpp.run_command(
        person.gateway_jid, VERIFY, {"recovery_key": storage.recovery_key}
    )

    notes = person.xmpp.command_notes(iq)
    assert "Verified with your secret storage" in notes
    assert "is verified" in notes
    assert signed(person, synapse)
    assert master_key(person, synapse) == identity.master.public_key
    # Asked again, the command only says so.
    again = await person.xmpp.run_command(person.gateway_jid, VERIFY)
    assert "is verified" in person.xmpp.command_notes(again)
    # The form went through the debug log, its value masked.
    log = gateway.log_text()
    assert 'var="recovery_key"' in log
    assert_not_in_log(gateway, storage.recovery_key)


async def test_the_passphrase_as_a_chat_command(
    person: Person, synapse: Synapse, gateway: Gateway
) -> None:
    identity, _ = element_like_account(person.matrix, passphrase=PASSPHRASE)
    await register(person, synapse)
    await person.xmpp.wait_message(from_gateway(person, "'verify'"), timeout=60)

    status = await chat(person, "verify", "not signed")
    assert "Send 'verify ' followed by your recovery key" in status
    answer = await chat(person, f"verify {PASSPHRASE}", "is verified")

    assert answer.startswith("Verified with your secret storage")
    assert signed(person, synapse)
    assert master_key(person, synapse) == identity.master.public_key
    assert PASSPHRASE not in bodies_from_gateway(person)
    # slixmpp logged the message, with the passphrase masked.
    assert "verify <redacted>" in gateway.log_text()
    assert_not_in_log(gateway, PASSPHRASE)


# ---- without an identity: the gateway creates one ------------------------------


async def test_an_account_without_identity_gets_one_from_the_ad_hoc_form(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    told = await person.xmpp.wait_message(
        from_gateway(person, "no cross-signing identity", "'verify'"), timeout=60
    )
    assert "create one" in told["body"]
    assert master_key(person, synapse) is None

    iq = await person.xmpp.run_command(person.gateway_jid, VERIFY, {"create": "true"})

    notes = person.xmpp.command_notes(iq)
    assert "now has a cross-signing identity" in notes
    assert "is verified" in notes
    assert master_key(person, synapse) is not None
    assert signed(person, synapse)


async def test_declining_creation_and_creating_by_chat(
    person: Person, synapse: Synapse
) -> None:
    await register(person, synapse)
    await person.xmpp.wait_message(from_gateway(person, "'verify'"), timeout=60)

    iq = await person.xmpp.run_command(person.gateway_jid, VERIFY, {"create": "false"})
    assert "Nothing was created" in person.xmpp.command_notes(iq)
    assert master_key(person, synapse) is None

    status = await chat(person, "verify", "no cross-signing identity")
    assert "Send 'verify create'" in status
    answer = await chat(person, "verify create", "is verified")
    assert "now has a cross-signing identity" in answer
    master = master_key(person, synapse)
    assert master is not None
    assert signed(person, synapse)
    # Once made, it is never made again.
    again = await chat(person, "verify create", "Nothing was changed")
    assert "is verified" in again
    assert master_key(person, synapse) == master


# ---- what must not happen --------------------------------------------------------


async def test_a_wrong_recovery_key_is_told_and_signs_nothing(
    person: Person, synapse: Synapse, gateway: Gateway
) -> None:
    _, storage = element_like_account(person.matrix)
    await register(person, synapse)
    wrong = encode_recovery_key(random_bytes(32))

    with pytest.raises(XmppError) as err:
        await person.xmpp.run_command(
            person.gateway_jid, VERIFY, {"recovery_key": wrong}
        )

    assert err.value.condition == "not-acceptable"
    assert "This recovery key does not open your secret storage" in err.value.text
    assert "Nothing was verified" in err.value.text
    typo = await chat(person, f"verify {storage.recovery_key[:-2]}", "Nothing was")
    assert "not a valid recovery key" in typo
    assert not signed(person, synapse)
    assert_not_in_log(gateway, wrong, storage.recovery_key[:-2])


async def test_a_wrong_passphrase_never_brings_a_new_identity(
    person: Person, synapse: Synapse, gateway: Gateway
) -> None:
    identity, _ = element_like_account(person.matrix, passphrase=PASSPHRASE)
    await register(person, synapse)

    answer = await chat(person, "verify not my passphrase", "Nothing was verified")
    assert "This passphrase does not open your secret storage" in answer
    refused = await chat(person, "verify create", "never replaces")
    assert "Nothing was changed" in refused
    with pytest.raises(XmppError) as err:
        await person.xmpp.run_command(
            person.gateway_jid, VERIFY, {"recovery_key": "also not it at all"}
        )
    assert "does not open your secret storage" in err.value.text

    assert master_key(person, synapse) == identity.master.public_key
    assert not signed(person, synapse)
    assert_not_in_log(gateway, "not my passphrase", "also not it at all")


async def test_an_unreachable_homeserver_is_told_and_verifies_later(
    person: Person, synapse: Synapse, proxy: FaultProxy
) -> None:
    _, storage = element_like_account(person.matrix)
    await register(person, synapse, homeserver=proxy.base_url)
    await person.xmpp.wait_message(from_gateway(person, "'verify'"), timeout=60)

    proxy.set_down(True)
    try:
        with pytest.raises(XmppError) as err:
            await person.xmpp.run_command(person.gateway_jid, VERIFY)
        answer = await chat(
            person, f"verify {storage.recovery_key}", "homeserver is unreachable"
        )
    finally:
        proxy.set_down(False)

    assert "homeserver is unreachable" in err.value.text
    assert answer.startswith("Could not verify this gateway's device")
    assert not signed(person, synapse)
    # Back online, the same key works.
    await chat(person, f"verify {storage.recovery_key}", "is verified")
    assert signed(person, synapse)
