"""Upgrading a deployment: today's gateway on a database the previous release
(matridge a98ee76, slidge 0.4.2, Python 3.11) wrote.

The fixture in tests/fixtures/upgrade_from_0_4/ was made by running that
release with its own test harness; make_fixture.py there is the script, and
its docstring gives the exact commands. In short: Ada registered with the old
gateway, which announced Fran's "Book club" room (an invitation) and offered
Fran's direct chat as a contact; three messages in each room reached Ada's
XMPP client; the gateway was stopped cleanly (SIGTERM, exit code 0); then
Fran sent three more messages in each room while it was down. The fixture
keeps the old gateway's slidge.sqlite, the homeserver's database and signing
key, and (scenario.json) the secrets Synapse must keep, the ids and bodies.

Here a Synapse is brought back from those files (on a new port), with a fresh
Prosody, and today's gateway starts on the old slidge.sqlite. Exactly one
value of it is rewritten first: the homeserver URL in Ada's
legacy_module_data, whose port was the old Synapse's (a homeserver that moved
would need the same). Everything else is as the old release left it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import sqlite3
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import slidge
from alembic.script import ScriptDirectory
from slixmpp import Message, Presence

from matridge.ids import matrix_id_to_jid_local
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.prosody import Prosody
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppClient, XmppError

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIXTURE = Path(__file__).parent / "fixtures" / "upgrade_from_0_4"
OLD_ALEMBIC_REVISION = "39ce1636571a"  # slidge 0.4.2's newest migration

NS_CONFERENCE = "jabber:x:conference"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

GROUP_LIVE = "Book club, after the upgrade"
DIRECT_LIVE = "Direct, after the upgrade"


# ---- what the old release left ------------------------------------------------


def scenario() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURE / "scenario.json").read_text())
    return loaded


def module_data(db: Path, jid: str) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute(
            "SELECT legacy_module_data FROM user_account WHERE jid = ?", (jid,)
        ).fetchone()
    finally:
        con.close()
    assert row is not None, f"{jid} is not registered in {db}"
    data: dict[str, Any] = json.loads(row[0])
    return data


def unpack_old_gateway_db(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    db = home / "slidge.sqlite"
    with gzip.open(FIXTURE / "slidge.sqlite.gz", "rb") as f, db.open("wb") as out:
        shutil.copyfileobj(f, out)
    return db


def move_homeserver(db: Path, jid: str, old_url: str, new_url: str) -> None:
    """The one value rewritten in the old database: the homeserver's URL (only
    its port differs), in place in the stored JSON text."""
    con = sqlite3.connect(db)
    try:
        (text,) = con.execute(
            "SELECT legacy_module_data FROM user_account WHERE jid = ?", (jid,)
        ).fetchone()
        assert text.count(json.dumps(old_url)) == 1, text
        with con:
            con.execute(
                "UPDATE user_account SET legacy_module_data = ? WHERE jid = ?",
                (text.replace(json.dumps(old_url), json.dumps(new_url)), jid),
            )
    finally:
        con.close()


def unpack_homeserver(workdir: Path, saved: dict[str, Any]) -> Synapse:
    workdir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(FIXTURE / "synapse.tar.gz") as tar:
        tar.extractall(workdir, filter="data")
    assert saved["server_name"] == Synapse.server_name
    return Synapse(
        workdir,
        registration_shared_secret=saved["registration_shared_secret"],
        macaroon_secret_key=saved["macaroon_secret_key"],
        form_secret=saved["form_secret"],
    )


def slidge_head_revision() -> str:
    scripts = ScriptDirectory(str(Path(slidge.__file__).parent / "db" / "alembic"))
    head = scripts.get_current_head()
    assert head is not None
    return head


# ---- XMPP -------------------------------------------------------------------------


def body_from(
    jid: str, mtype: str, body: str | None = None
) -> Callable[[Message], bool]:
    def match(m: Message) -> bool:
        return (
            m["type"] == mtype
            and m["from"].bare == jid
            and bool(m["body"])
            and (body is None or m["body"] == body)
        )

    return match


def join_history_and_live(
    received: list[Message], room_jid: str
) -> tuple[list[Message], list[Message]]:
    """The room's messages with a body, split where the join's history ends:
    at the subject, which XEP-0045 sends after the history."""
    history: list[Message] = []
    live: list[Message] = []
    current = history
    for m in received:
        if m["type"] != "groupchat" or m["from"].bare != room_jid:
            continue
        if m.xml.find(f"{{{m.namespace}}}subject") is not None:
            current = live
        if m["body"]:
            current.append(m)
    return history, live


def invites_to(jid: str) -> Callable[[Message], bool]:
    """A direct (XEP-0249) or mediated (XEP-0045) invitation to ``jid``."""

    def match(m: Message) -> bool:
        direct = m.xml.find(f"{{{NS_CONFERENCE}}}x")
        if direct is not None and direct.get("jid") == jid:
            return True
        return m["from"].bare == jid and (
            m.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}invite") is not None
        )

    return match


async def join_when_allowed(
    xmpp: XmppClient,
    room_jid: str,
    nick: str,
    within: float = 60,
) -> None:
    """Joins with the room's history (up to 50 messages), retrying while the
    gateway still refuses the join."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await xmpp.join_muc(room_jid, nick, history=50)
            return
        except XmppError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(1)


# ---- the upgraded deployment ---------------------------------------------------------


@dataclass
class Upgraded:
    scenario: dict[str, Any]
    old_data: dict[str, Any]  # Ada's legacy_module_data as 0.4 left it
    synapse: Synapse
    gateway: Gateway
    xmpp: XmppClient
    fran: MatrixUser
    live_ids: dict[str, str]  # room kind -> event id of the after-upgrade message
    # What went wrong on the way, by step, for the tests to report.
    problems: dict[str, str] = field(default_factory=dict)
    archive: list[Message] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.gateway.home / "slidge.sqlite"

    @property
    def room_jid(self) -> str:
        jid: str = self.scenario["group"]["room_jid"]
        return jid

    @property
    def direct_jid(self) -> str:
        """The JID the direct room would have as a group chat."""
        return self.room_jid.replace(
            matrix_id_to_jid_local(self.scenario["group"]["room_id"]),
            matrix_id_to_jid_local(self.scenario["direct"]["room_id"]),
        )

    @property
    def fran_jid(self) -> str:
        jid: str = self.scenario["friend"]["jid"]
        return jid

    def received(self, match: Callable[[Message], bool]) -> list[Message]:
        return [m for m in self.xmpp.received if isinstance(m, Message) and match(m)]

    def bodies(self, match: Callable[[Message], bool]) -> list[str]:
        return [str(m["body"]) for m in self.received(match)]


async def step(up: Upgraded, name: str, waiting: Awaitable[object]) -> None:
    """Waits; a timeout or an XMPP error is kept, with the gateway's log, as
    the problem of step `name`."""
    try:
        await waiting
    except (TimeoutError, XmppError) as e:
        lines = up.gateway.log_text().splitlines()
        log = "\n".join([x for x in lines if "sqlalchemy" not in x][-40:])
        up.problems[name] = f"{e}\n--- gateway log, SQL left out ---\n{log}"


async def resume(up: Upgraded) -> None:
    """What Ada sees of the upgraded gateway: the login, then a message sent
    now in each room, relayed live. Once that one is here, everything the
    gateway had to relay before it in that room is too."""
    xmpp, person = up.xmpp, up.scenario["person"]
    # Logged in from what the old release stored, without registering.
    await step(
        up,
        "login",
        xmpp.wait_presence(
            lambda p: (
                p["from"].bare == up.gateway.jid and "Connected as" in p["status"]
            ),
            timeout=90,
        ),
    )
    if up.problems:
        return
    direct_id = up.scenario["direct"]["room_id"]
    up.live_ids["direct"] = up.fran.send_text(direct_id, DIRECT_LIVE)
    await step(
        up,
        "direct",
        xmpp.wait_message(body_from(up.fran_jid, "chat", DIRECT_LIVE), timeout=60),
    )
    # A client joins its bookmarked rooms again, asking for their history.
    await step(up, "join", join_when_allowed(xmpp, up.room_jid, person["name"]))
    if "join" in up.problems:
        return
    group_id = up.scenario["group"]["room_id"]
    up.live_ids["group"] = up.fran.send_text(group_id, GROUP_LIVE)
    await step(
        up,
        "group",
        xmpp.wait_message(body_from(up.room_jid, "groupchat", GROUP_LIVE), timeout=60),
    )
    # Room for late duplicates (a backfill, a replayed batch) to show: more
    # than one sync long-poll.
    await asyncio.sleep(6)
    try:
        up.archive = await xmpp.mam_messages(up.room_jid)
    except Exception as e:
        up.problems["archive"] = repr(e)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def upgraded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Upgraded]:
    saved = scenario()
    person = saved["person"]
    work = tmp_path_factory.mktemp("upgrade")
    synapse = unpack_homeserver(work / "synapse", saved["synapse"])
    prosody = Prosody(work / "prosody", privilege=False)
    gateway = Gateway(work / "gateway", prosody, "--sync-timeout-ms=5000")
    xmpp: XmppClient | None = None
    try:
        synapse.start()
        prosody.start()
        assert prosody.component_jid == saved["gateway_jid"]
        assert f"{person['name']}@{prosody.domain}" == person["jid"]
        db = unpack_old_gateway_db(gateway.home)
        old_data = module_data(db, person["jid"])
        old_port = saved["synapse"]["port"]
        assert old_data["homeserver"] == f"http://127.0.0.1:{old_port}"
        move_homeserver(
            db, person["jid"], old_data["homeserver"], synapse.base_url.rstrip("/")
        )
        fran = MatrixUser.login(
            synapse.base_url, saved["friend"]["name"], saved["friend"]["password"]
        )
        # Ada's client is online before the gateway comes back, as it would
        # be: what the gateway relays on login reaches it live.
        xmpp = await XmppClient.connect_to(
            person["jid"], "any", "127.0.0.1", prosody.c2s_port
        )
        gateway.start()
        up = Upgraded(saved, old_data, synapse, gateway, xmpp, fran, {})
        await resume(up)
        yield up
    finally:
        # The gateway first: slidge raises SIGTERM as an exception wherever it
        # lands, and one landing in the handler of Ada's going offline is
        # swallowed (the process then waits for SIGKILL).
        gateway.stop()
        if xmpp is not None:
            await xmpp.disconnect_and_wait()
        prosody.stop()
        synapse.stop()


def no_problem(up: Upgraded, *steps: str) -> None:
    for name in steps:
        assert name not in up.problems, f"{name}: {up.problems[name]}"


# ---- the tests ---------------------------------------------------------------------


async def test_slidge_migrates_the_old_database_and_logs_the_user_in(
    upgraded: Upgraded,
) -> None:
    no_problem(upgraded, "login")
    con = sqlite3.connect(f"file:{upgraded.db}?mode=ro", uri=True)
    try:
        (revision,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        con.close()
    assert revision == slidge_head_revision() != OLD_ALEMBIC_REVISION
    assert f"Running upgrade {OLD_ALEMBIC_REVISION} ->" in upgraded.gateway.log_text()
    # No registration was asked for: the gateway never said it needs one.
    assert not upgraded.received(
        lambda m: (
            m["from"].bare == upgraded.gateway.jid
            and "Register again" in str(m["body"])
        )
    )


async def test_the_matrix_session_and_device_are_the_same(upgraded: Upgraded) -> None:
    no_problem(upgraded, "login")
    person = upgraded.scenario["person"]
    old, now = upgraded.old_data, module_data(upgraded.db, person["jid"])
    assert now["device_id"] == old["device_id"] == person["gateway_device_id"]
    assert now["access_token"] == old["access_token"]
    assert now["user_id"] == old["user_id"] == person["user_id"]
    assert now["announced_rooms"] == old["announced_rooms"]
    # The sync position moved on from where the old release left it.
    assert now["since"] != old["since"]
    # Synapse still lists Ada's own session and that one gateway device only.
    ada = MatrixUser(upgraded.synapse.base_url, person["setup_access_token"], "")
    devices = sorted(d["device_id"] for d in ada.request("GET", "/devices")["devices"])
    assert devices == person["devices"]


async def test_direct_messages_sent_while_down_arrive_once_and_none_again(
    upgraded: Upgraded,
) -> None:
    no_problem(upgraded, "login", "direct")
    direct = upgraded.scenario["direct"]
    chat = upgraded.bodies(body_from(upgraded.fran_jid, "chat"))
    # Those sent while the gateway was down, once each and in order, then
    # the one sent after the upgrade; none of those delivered before the stop.
    assert chat == [*list(direct["after"]), DIRECT_LIVE]
    # The direct chat's delivery mark was kept, and moved on.
    person = upgraded.scenario["person"]
    marks = module_data(upgraded.db, person["jid"])["direct_marks"]
    assert (
        upgraded.old_data["direct_marks"][direct["room_id"]]
        == list(direct["before"].values())[-1]
    )
    assert marks[direct["room_id"]] == upgraded.live_ids["direct"]


async def test_group_messages_sent_while_down_arrive_once_and_none_again(
    upgraded: Upgraded,
) -> None:
    no_problem(upgraded, "login", "join", "group", "archive")
    group = upgraded.scenario["group"]
    history, live = join_history_and_live(
        upgraded.received(lambda m: True), upgraded.room_jid
    )
    shown = [str(m["body"]) for m in history + live]
    # Each message sent while the gateway was down, once (in the join's
    # history or live), then the one sent after the upgrade, live.
    assert [b for b in shown if b not in group["before"]] == [
        *group["after"],
        GROUP_LIVE,
    ], shown
    assert live and live[-1]["body"] == GROUP_LIVE, shown
    # Those delivered before the stop come at most once, as the join's
    # history, never as new messages.
    again = [str(m["body"]) for m in history if m["body"] in group["before"]]
    assert len(set(again)) == len(again), shown
    assert not [m for m in live if m["body"] in group["before"]], shown
    # The room's archive holds every message once, in order.
    archived = [str(m["body"]) for m in upgraded.archive if m["body"]]
    assert archived == [*group["before"], *group["after"], GROUP_LIVE]


async def test_the_room_is_not_announced_again_and_the_contact_stays(
    upgraded: Upgraded,
) -> None:
    no_problem(upgraded, "login", "direct")
    assert upgraded.received(invites_to(upgraded.room_jid)) == []
    # Fran is still a contact: her messages come as a 1:1 chat (above), her
    # direct room is not offered as a group, and the gateway still has her.
    assert upgraded.received(invites_to(upgraded.direct_jid)) == []
    person = upgraded.scenario["person"]
    con = sqlite3.connect(f"file:{upgraded.db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT contact.legacy_id, contact.is_friend FROM contact"
            " JOIN user_account ON contact.user_account_id = user_account.id"
            " WHERE user_account.jid = ?",
            (person["jid"],),
        ).fetchall()
    finally:
        con.close()
    assert (upgraded.scenario["friend"]["user_id"], 1) in rows
    # And it shows her to Ada as a contact again: her presence came.
    assert [
        p
        for p in upgraded.xmpp.received
        if isinstance(p, Presence) and p["from"].bare == upgraded.fran_jid
    ]
