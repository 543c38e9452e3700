"""An XMPP test client (slixmpp) that buffers everything it receives.

Runs on the asyncio loop of the test that creates it. Every incoming
<message/> and <presence/> is recorded; ``wait_message``/``wait_presence``
take the first *matching* one out of the buffer and leave the others for
later waits, so a test can look for things in any order.
"""

# Helpers take explicit timeout= arguments on purpose: tests read better.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast
from xml.etree import ElementTree as ET

import slixmpp
from slixmpp import JID, Iq, Message, Presence
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

__all__ = ["XmppClient", "XmppError"]

log = logging.getLogger(__name__)

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

_PLUGINS = (
    "xep_0030",  # disco
    "xep_0004",  # data forms
    "xep_0045",  # MUC
    "xep_0050",  # ad-hoc commands
    "xep_0077",  # in-band registration
    "xep_0199",  # ping
    "xep_0313",  # MAM
    "xep_0359",  # stanza/origin ids
    "xep_0308",  # corrections
    "xep_0461",  # replies
    "xep_0066",  # out-of-band data (file links)
    "xep_0363",  # HTTP file upload
)

# ---- messages ----
_MESSAGE_PLUGINS = (
    "xep_0085",  # chat states
    "xep_0333",  # chat markers
    "xep_0372",  # references (mentions)
    "xep_0424",  # retractions
    "xep_0425",  # moderation
    "xep_0444",  # reactions
)

S = TypeVar("S", Message, Presence)


class XmppError(Exception):
    """An error IQ (or presence) from the other side, or a failed login."""

    def __init__(self, condition: str, text: str = "", stanza: Any = None) -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text
        self.stanza = stanza

    @classmethod
    def from_iq_error(cls, e: IqError) -> XmppError:
        err = e.iq["error"]
        return cls(str(err["condition"]), str(err["text"]), e.iq)


def _summary(stanzas: list[Any], limit: int = 10) -> str:
    """Short dump of (unmatched) stanzas for timeout messages."""
    shown = [str(s)[:400] for s in stanzas[-limit:]]
    more = f" (+{len(stanzas) - limit} older)" if len(stanzas) > limit else ""
    return f"{len(stanzas)} pending{more}:\n  " + "\n  ".join(shown)


class XmppClient(slixmpp.ClientXMPP):
    """Plain-text c2s client for loopback Prosody; create via :meth:`connect_to`."""

    def __init__(self, jid: str, password: str) -> None:
        super().__init__(jid, password)
        # No TLS anywhere on loopback: only try the plain TCP connection.
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        self.plugin["feature_mechanisms"].unencrypted_plain = True
        for name in _PLUGINS:
            # Tolerate older slixmpp versions lacking some of them.
            if importlib.util.find_spec(f"slixmpp.plugins.{name}") is None:
                log.warning("slixmpp plugin %s unavailable", name)
                continue
            self.register_plugin(name)

        # Unconsumed stanzas, oldest first, plus a full log for debugging.
        self.pending_messages: list[Message] = []
        self.pending_presences: list[Presence] = []
        self.received: list[Message | Presence] = []
        self._waiters: set[asyncio.Event] = set()
        self.roster_iq: Iq | None = None

        self.register_handler(
            Callback("harness messages", StanzaPath("message"), self._on_message)
        )
        self.register_handler(
            Callback("harness presences", StanzaPath("presence"), self._on_presence)
        )

        # ---- messages ----
        # Stanza plugins for chat states, markers, mentions, retractions,
        # moderation and reactions.
        for name in _MESSAGE_PLUGINS:
            self.register_plugin(name)

    # --- connection -------------------------------------------------------

    @classmethod
    async def connect_to(
        cls,
        jid: str,
        password: str,
        host: str = "127.0.0.1",
        port: int = 5222,
        timeout: float = 20,
    ) -> XmppClient:
        """Connect, authenticate, send initial presence and fetch the roster."""
        client = cls(jid, password)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        last_error: list[str] = []

        def on_session_start(_: Any) -> None:
            if not done.done():
                done.set_result(None)

        def on_auth_failed(_: Any) -> None:
            if not done.done():
                done.set_exception(XmppError("not-authorized", f"login as {jid}"))

        def on_connection_failed(err: Any) -> None:
            # slixmpp keeps retrying on its own; remember why for the error.
            last_error.append(str(err))

        client.add_event_handler("session_start", on_session_start)
        client.add_event_handler("failed_all_auth", on_auth_failed)
        client.add_event_handler("connection_failed", on_connection_failed)
        client.connect(host, port)
        try:
            await asyncio.wait_for(done, timeout)
        except (TimeoutError, XmppError) as e:
            # abort() alone leaves slixmpp's reconnect loop running when no
            # transport was ever established.
            client.cancel_connection_attempt()
            client.abort()
            if isinstance(e, XmppError):
                raise
            raise TimeoutError(
                f"XMPP login as {jid} via {host}:{port} timed out after "
                f"{timeout}s; connection errors: {last_error or 'none'}"
            ) from None
        finally:
            client.del_event_handler("session_start", on_session_start)
            client.del_event_handler("failed_all_auth", on_auth_failed)
            client.del_event_handler("connection_failed", on_connection_failed)

        client.send_presence()
        client.roster_iq = await client.get_roster(timeout=timeout)
        return client

    async def disconnect_and_wait(self, timeout: float = 10) -> None:
        """Bounded close. (``await client.disconnect()`` also works: slixmpp
        returns a future and aborts the socket after its ``wait`` seconds.)"""
        try:
            await asyncio.wait_for(self.disconnect(), timeout)
        except TimeoutError:
            self.abort()

    # --- buffering --------------------------------------------------------

    def _on_message(self, stanza: StanzaBase) -> None:
        msg = cast(Message, stanza)
        self.pending_messages.append(msg)
        self.received.append(msg)
        self._wake()

    def _on_presence(self, stanza: StanzaBase) -> None:
        pres = cast(Presence, stanza)
        self.pending_presences.append(pres)
        self.received.append(pres)
        self._wake()

    def _wake(self) -> None:
        for ev in self._waiters:
            ev.set()

    async def _wait(
        self,
        kind: str,
        buffer: list[S],
        predicate: Callable[[S], bool],
        timeout: float,
    ) -> S:
        deadline = time.monotonic() + timeout
        ev = asyncio.Event()
        self._waiters.add(ev)
        try:
            while True:
                for i, stanza in enumerate(buffer):
                    if predicate(stanza):
                        del buffer[i]
                        return stanza
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self.boundjid}: no matching {kind} after {timeout}s; "
                        + _summary(buffer)
                    )
                ev.clear()
                try:
                    await asyncio.wait_for(ev.wait(), remaining)
                except TimeoutError:
                    pass  # loop once more, then raise with a summary
        finally:
            self._waiters.discard(ev)

    async def wait_message(
        self, predicate: Callable[[Message], bool] = lambda m: True, timeout: float = 20
    ) -> Message:
        """Remove and return the first buffered/incoming matching message."""
        return await self._wait("message", self.pending_messages, predicate, timeout)

    async def wait_presence(
        self,
        predicate: Callable[[Presence], bool] = lambda p: True,
        timeout: float = 20,
    ) -> Presence:
        """Remove and return the first buffered/incoming matching presence."""
        return await self._wait("presence", self.pending_presences, predicate, timeout)

    # --- requests ---------------------------------------------------------

    async def _send_iq(self, iq: Iq, timeout: float) -> Iq:
        try:
            # Iq.send is untyped in slixmpp.
            return cast(Iq, await iq.send(timeout=timeout))  # type: ignore[no-untyped-call]
        except IqError as e:
            raise XmppError.from_iq_error(e) from None
        except IqTimeout:
            raise TimeoutError(
                f"no answer to IQ {iq['type']} to {iq['to']} after {timeout}s"
            ) from None

    async def register_with(
        self, gateway_jid: str, fields: Mapping[str, str], timeout: float = 20
    ) -> Iq:
        """XEP-0077 registration using the gateway's data form.

        Fields not given keep the form's default value. Raises XmppError
        (condition, text) if the gateway rejects the registration.
        """
        get = self.make_iq_get(queryxmlns="jabber:iq:register", ito=gateway_jid)
        form_iq = await self._send_iq(get, timeout)
        form = form_iq["register"]["form"]
        if form.xml.find("{jabber:x:data}field") is None:
            raise XmppError(
                "bad-request", f"{gateway_jid} offered no data form: {form_iq}"
            )
        known = set(form.get_fields())
        unknown = set(fields) - known
        if unknown:
            raise ValueError(
                f"fields {sorted(unknown)} not in {gateway_jid}'s form "
                f"(has {sorted(known)})"
            )

        submit = self.make_iq_set(ito=gateway_jid)
        sub_form = submit["register"]["form"]
        sub_form["type"] = "submit"
        for var, field in form.get_fields().items():
            value = fields.get(var, field["value"])
            new = sub_form.add_field(var=var, ftype=field["type"])
            new["value"] = value
        return await self._send_iq(submit, timeout)

    async def disco_info(
        self, jid: str, node: str | None = None, timeout: float = 20
    ) -> Iq:
        try:
            result: Iq = await self.plugin["xep_0030"].get_info(
                jid=JID(jid), node=node, timeout=timeout, cached=False
            )
            return result
        except IqError as e:
            raise XmppError.from_iq_error(e) from None

    async def disco_items(
        self, jid: str, node: str | None = None, timeout: float = 20
    ) -> Iq:
        try:
            result: Iq = await self.plugin["xep_0030"].get_items(
                jid=JID(jid), node=node, timeout=timeout
            )
            return result
        except IqError as e:
            raise XmppError.from_iq_error(e) from None

    # --- MUC and chat -----------------------------------------------------

    async def join_muc(
        self,
        room_jid: str,
        nick: str,
        history: int | None = 0,
        timeout: float = 20,
    ) -> list[Presence]:
        """Join and return the room's presences up to our own (code 110).

        ``history`` is sent as maxstanzas; None asks for the room default.
        History/subject messages stay in the message buffer.
        """
        room = JID(room_jid).bare
        pres = self.make_presence(pto=f"{room}/{nick}")
        x = ET.SubElement(pres.xml, f"{{{NS_MUC}}}x")
        if history is not None:
            ET.SubElement(x, f"{{{NS_MUC}}}history", maxstanzas=str(history))
        pres.send()

        collected: list[Presence] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                p = await self.wait_presence(
                    lambda p: p["from"].bare == room,
                    timeout=max(0.0, deadline - time.monotonic()),
                )
            except TimeoutError:
                raise TimeoutError(
                    f"{self.boundjid}: no self-presence (110) from {room} after "
                    f"{timeout}s; room presences so far: {[str(p) for p in collected]}"
                ) from None
            if p["type"] == "error":
                raise XmppError(
                    str(p["error"]["condition"]), str(p["error"]["text"]), p
                )
            collected.append(p)
            codes = {
                s.get("code")
                for s in p.xml.iterfind(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}status")
            }
            if "110" in codes:
                return collected

    async def mam_messages(
        self, archive_jid: str | None, page_size: int = 250
    ) -> list[Message]:
        """Every message of an archive (XEP-0313), oldest first; None: the
        user's own archive on their server (its results carry no sender)."""
        out: list[Message] = []
        results = self.plugin["xep_0313"].iterate(
            jid=JID(archive_jid).bare if archive_jid else None,
            rsm={"max": page_size},
        )
        async for result in results:
            out.append(result["mam_result"]["forwarded"]["stanza"])
        return out

    def _send_body(self, to: str, body: str, mtype: str) -> str:
        msg = self.make_message(mto=to, mbody=body, mtype=mtype)  # type: ignore[arg-type]
        msg_id = uuid.uuid4().hex
        msg["id"] = msg_id
        # Like modern clients: origin-id == id, which gateways use for dedup.
        msg["origin_id"]["id"] = msg_id
        msg.send()
        return msg_id

    def send_groupchat(self, room_jid: str, body: str) -> str:
        return self._send_body(JID(room_jid).bare, body, "groupchat")

    def send_chat(self, jid: str, body: str) -> str:
        return self._send_body(jid, body, "chat")

    # ---- commands ----

    async def run_command(
        self,
        jid: str,
        node: str,
        *answers: Mapping[str, str | list[str]],
        timeout: float = 60,
    ) -> Iq:
        """Runs an ad-hoc command (XEP-0050): executes ``node``, then submits
        each of ``answers`` to the form the previous step returned. Returns
        the last answer (its ``command`` holds the notes or result form);
        raises XmppError if a step is refused or a form is left unanswered."""
        xep_0050 = self.plugin["xep_0050"]
        iq = cast(Iq, await self._command_step(xep_0050, jid, node, timeout))
        for answer in answers:
            command = iq["command"]
            if command["status"] != "executing":
                raise XmppError(
                    "bad-request", f"{node} ended before all answers were given: {iq}"
                )
            form = command["form"]
            submit = form.__class__()
            submit["type"] = "submit"
            for var, asked in form.get_fields().items():
                if var in answer:
                    field = submit.add_field(var=var, ftype=asked["type"])
                    field["value"] = answer[var]
            iq = await self._command_step(
                xep_0050,
                jid,
                node,
                timeout,
                action="complete",
                sessionid=command["sessionid"],
                payload=submit,
            )
        if iq["command"]["status"] == "executing":
            raise XmppError("bad-request", f"{node} asks for more: {iq}")
        return iq

    async def _command_step(
        self, xep_0050: Any, jid: str, node: str, timeout: float, **kwargs: Any
    ) -> Iq:
        try:
            return cast(
                Iq,
                await xep_0050.send_command(JID(jid), node, timeout=timeout, **kwargs),
            )
        except IqError as e:
            raise XmppError.from_iq_error(e) from None
        except IqTimeout:
            raise TimeoutError(
                f"no answer to command {node} after {timeout}s"
            ) from None

    @staticmethod
    def command_notes(iq: Iq) -> str:
        """The text of a finished command's notes."""
        return "\n".join(str(note[1]) for note in iq["command"]["notes"])

    @staticmethod
    def command_table(iq: Iq) -> list[dict[str, str]]:
        """The rows of a finished command's result form."""
        items = iq["command"]["form"]["items"]
        return [{k: str(v) for k, v in item.items()} for item in items]

    # ---- media ----

    async def upload(
        self,
        service_jid: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        timeout: float = 30,
    ) -> str:
        """Uploads `data` to an XEP-0363 service; returns the GET URL."""
        import aiohttp  # a slidge dependency; only the media tests need it

        slot_iq = self.plugin["xep_0363"].request_slot(
            JID(service_jid), name, len(data), content_type, timeout=timeout
        )
        try:
            iq = cast(Iq, await slot_iq)
        except IqError as e:
            raise XmppError.from_iq_error(e) from None
        slot = iq["http_upload_slot"]
        headers = {h["name"]: h["value"] for h in slot["put"]["headers"]}
        headers["Content-Type"] = content_type or "application/octet-stream"
        async with (
            aiohttp.ClientSession() as http,
            http.put(slot["put"]["url"], data=data, headers=headers) as resp,
        ):
            resp.raise_for_status()
        return cast(str, slot["get"]["url"])

    def send_file_link(
        self,
        to: str,
        url: str,
        mtype: str = "groupchat",
        caption: str | None = None,
        sticker: bool = False,
        reply_to: tuple[str, str] | None = None,
    ) -> str:
        """Sends a file as clients do: the URL as body with XEP-0066 OOB, a
        caption as a separate line of the body; a sticker with XEP-0449;
        `reply_to` (message id, author JID) makes it a XEP-0461 reply."""
        body = url if caption is None else f"{url}\n{caption}"
        msg = self.make_message(mto=JID(to).bare, mbody=body, mtype=mtype)  # type: ignore[arg-type]
        msg["oob"]["url"] = url
        if reply_to is not None:
            msg["reply"]["id"], msg["reply"]["to"] = reply_to
        if sticker:
            ET.SubElement(msg.xml, "{urn:xmpp:stickers:0}sticker")
        msg_id = uuid.uuid4().hex
        msg["id"] = msg_id
        msg["origin_id"]["id"] = msg_id
        msg.send()
        return msg_id

    # ---- contacts ----

    async def search(
        self, jid: str, values: Mapping[str, str], timeout: float = 30
    ) -> list[dict[str, str]]:
        """Jabber search (XEP-0055) with a data form: the result rows."""
        if "xep_0055" not in self.plugin:
            self.register_plugin("xep_0055")
        iq = self.make_iq_set(ito=JID(jid))
        form = iq["search"]["form"]
        form["type"] = "submit"
        for var, value in values.items():
            form.add_field(var=var, value=value)
        reply = await self._send_iq(iq, timeout)
        items = reply["search"]["form"]["items"]
        return [{k: str(v) for k, v in item.items()} for item in items]

    async def pubsub_items(self, jid: str, node: str, timeout: float = 30) -> list[Any]:
        """The payloads of a PEP/pubsub node's items (XEP-0060)."""
        if "xep_0060" not in self.plugin:
            self.register_plugin("xep_0060")
        iq = self.make_iq_get(ito=JID(jid))
        iq["pubsub"]["items"]["node"] = node
        reply = await self._send_iq(iq, timeout)
        return [item.get_payload() for item in reply["pubsub"]["items"]]

    async def enable_carbons(self, timeout: float = 30) -> None:
        """Asks the server for copies of what other resources send (XEP-0280)."""
        if "xep_0280" not in self.plugin:
            self.register_plugin("xep_0280")
        await self.plugin["xep_0280"].enable(timeout=timeout)
