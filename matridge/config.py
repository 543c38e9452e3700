"""matridge's own options.

slidge turns each upper-case NAME below into ``--name`` on the command line,
``name=`` in its INI files and ``SLIDGE__MATRIDGE_NAME`` in the environment
(two underscores: slidge appends ``_MATRIDGE_`` to ``SLIDGE_``);
``NAME__DOC`` is its help text.
"""

SYNC_TIMEOUT_MS = 30000
SYNC_TIMEOUT_MS__DOC = (
    "How long, in milliseconds, each /sync long-poll may wait on the homeserver "
    "for new events before it returns empty and a new one starts."
)

ALLOW_PLAIN_HTTP = False
ALLOW_PLAIN_HTTP__DOC = (
    "Accept homeserver URLs that start with http:// (no encryption). Only for "
    "homeservers on the same machine or a trusted network, such as tests."
)

INSECURE_TLS = False
INSECURE_TLS__DOC = (
    "Do not verify the homeserver's TLS certificate. Only for local testing with "
    "self-signed certificates: it lets anyone on the path read the traffic."
)

DEVICE_NAME = "matridge"
DEVICE_NAME__DOC = (
    "The device name the gateway's Matrix sessions get when the user leaves the "
    "registration form's device name empty."
)

MESSAGE_ID_MEMORY = 5000
MESSAGE_ID_MEMORY__DOC = (
    "How many recent Matrix event ids each session remembers, so that an event "
    "the homeserver delivers twice reaches XMPP once."
)

BACKFILL_EVENTS = 100
BACKFILL_EVENTS__DOC = (
    "How many Matrix events at most are fetched into a group chat's XMPP archive "
    "when the user first joins it (and to fill a hole after downtime)."
)

GAP_FILL_EVENTS = 1000
GAP_FILL_EVENTS__DOC = (
    "After a long disconnection the homeserver sends only a room's latest events; "
    "this many events at most of the gap before them are fetched and relayed, so "
    "no message is skipped."
)

RECENT_EVENTS_CACHE = 200
RECENT_EVENTS_CACHE__DOC = (
    "How many recent events each group chat keeps at hand to quote replies "
    "without asking the homeserver."
)

SEND_RETRY_SECONDS = 120
SEND_RETRY_SECONDS__DOC = (
    "How long a message from XMPP is retried while the homeserver is unreachable "
    "or failing, before the sender is told it was not sent. Retries reuse the "
    "transaction id, so Matrix never gets the message twice."
)

RELAY_RETRY_SECONDS = 300
RELAY_RETRY_SECONDS__DOC = (
    "How long a Matrix message that could not be shown on XMPP for a passing "
    "reason (the homeserver failing or unreachable, the XMPP side not ready) is "
    "retried, in order within its room, before the user is told it could not be "
    "shown. Other rooms go on meanwhile."
)

FETCH_ALLOW_HOSTS = ""
FETCH_ALLOW_HOSTS__DOC = (
    "Host names, comma-separated, that the gateway may fetch users' files from "
    "although they lead into its own network (loopback, private, link-local "
    "addresses): typically the XMPP server's own upload service. Every other URL "
    "a user sends is refused when it leads there."
)

MEDIA_MAX_BYTES = 50_000_000
MEDIA_MAX_BYTES__DOC = (
    "The largest file, in bytes, the gateway carries either way. A larger Matrix "
    "file reaches XMPP as a text with its name and size (see it in a Matrix "
    "client); a larger XMPP file is refused with an error naming it. The gateway "
    "stores each file in a temporary file while it passes, so this also bounds "
    "its disk use per transfer."
)

DIRECT_INVITES_AS_GROUPS = False
DIRECT_INVITES_AS_GROUPS__DOC = (
    "Offer the direct chats other Matrix users start as group-chat invitations, "
    "which the user accepts or ignores, instead of accepting them at once as "
    "contacts. Turn this on where direct messages from strangers are a nuisance."
)

SHARE_KEYS_WITH_UNVERIFIED_DEVICES = False
SHARE_KEYS_WITH_UNVERIFIED_DEVICES__DOC = (
    "Share the keys of what users send into encrypted Matrix rooms with every "
    "device of the room's members, as Matrix clients did before 2026. Off, the "
    "keys go only to devices their owners have verified (cross-signed), and "
    "the other devices are told the key was withheld because they are not "
    "verified."
)

EMOJI_VERIFICATION_TIMEOUT_SECONDS = 600
EMOJI_VERIFICATION_TIMEOUT_SECONDS__DOC = (
    "How long an interactive (emoji) verification between the gateway's device "
    "and another device of the user may take, from the request to the end, "
    "before it is cancelled (m.timeout) and the user told."
)
