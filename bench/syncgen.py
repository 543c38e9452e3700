"""A large, realistic /sync response, the same bytes for the same seed.

The shape follows the client-server spec's ``GET /_matrix/client/v3/sync``
answer as Synapse writes it (compact UTF-8 JSON): joined rooms with state,
timeline, ephemeral and account data, some invites and left rooms, global
account data, presence, to-device and device lists. Timelines mix the event
types a gateway sees every day, in proportions picked by weight.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

SERVERS = ("example.org", "matrix.org", "chat.example.net", "kde.org")
WORDS = (
    "the meeting is moved to thursday please review the patch before merge "
    "lunch anyone deploy failed again works for me can you share logs "
    "ok thanks see you tomorrow build green release notes draft ready "
    "café naïve über déjà-vu straße 日本語 테스트 привет 🎉 👍 🚀 ❤️ 😂"
).split()
EMOJI = ("👍", "❤️", "😂", "🎉", "🚀", "👀", "✅", "🙏")
MIMES = (("image/png", ".png"), ("image/jpeg", ".jpg"), ("image/webp", ".webp"))
FILES = (
    ("application/pdf", ".pdf"),
    ("application/zip", ".zip"),
    ("text/plain", ".txt"),
)

# Timeline event kinds and their weights (per 1000 events).
TIMELINE_MIX: tuple[tuple[str, int], ...] = (
    ("text", 430),
    ("formatted", 90),
    ("notice", 40),
    ("emote", 15),
    ("image", 45),
    ("file", 20),
    ("reply", 80),
    ("edit", 40),
    ("reaction", 110),
    ("redaction", 15),
    ("redacted", 10),
    ("encrypted", 60),
    ("member", 35),
    ("name", 3),
    ("topic", 3),
    ("power_levels", 4),
)


@dataclass(frozen=True)
class Size:
    joined_rooms: int
    timeline_events: int
    invites: int
    left_rooms: int
    users: int

    @property
    def label(self) -> str:
        return f"{self.joined_rooms}r-{self.timeline_events}e"


FULL = Size(
    joined_rooms=500, timeline_events=100_000, invites=20, left_rooms=10, users=3000
)
QUICK = Size(
    joined_rooms=50, timeline_events=10_000, invites=4, left_rooms=2, users=400
)


class _Gen:
    def __init__(self, seed: int, size: Size) -> None:
        self.rng = random.Random(seed)
        self.size = size
        self.ts = 1_700_000_000_000
        self.users = [self._user_id(i) for i in range(size.users)]
        self.me = self.users[0]
        names = ("Alice", "Bob", "Chloé", "Dmitri", "Eun-ji", "Fatima", "Gus", "Hana")
        self.display = {
            u: f"{self.rng.choice(names)} {self.rng.randrange(100)}" for u in self.users
        }
        self.kinds = [k for k, _ in TIMELINE_MIX]
        self.weights = [w for _, w in TIMELINE_MIX]

    # ---- identifiers ----------------------------------------------------

    def _user_id(self, i: int) -> str:
        return f"@user{i}:{SERVERS[i % len(SERVERS)]}"

    def _opaque(self, nbytes: int) -> str:
        raw = self.rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def event_id(self) -> str:
        return "$" + self._opaque(32)

    def room_id(self) -> str:
        return f"!{self._opaque(13)}:{self.rng.choice(SERVERS)}"

    def mxc(self) -> str:
        return f"mxc://{self.rng.choice(SERVERS)}/{self._opaque(18)}"

    def sentence(self, lo: int = 2, hi: int = 24) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(lo, hi)))

    # ---- events ---------------------------------------------------------

    def base(self, etype: str, sender: str, content: JSON) -> JSON:
        self.ts += self.rng.randint(200, 60_000)
        ev: JSON = {
            "type": etype,
            "sender": sender,
            "content": content,
            "origin_server_ts": self.ts,
            "event_id": self.event_id(),
            "unsigned": {"age": self.rng.randint(10, 10_000_000)},
        }
        if sender == self.me and self.rng.random() < 0.5:
            ev["unsigned"]["transaction_id"] = f"m{self.ts}.{self.rng.randrange(99)}"
        return ev

    def state(self, etype: str, sender: str, key: str, content: JSON) -> JSON:
        ev = self.base(etype, sender, content)
        ev["state_key"] = key
        return ev

    def member(self, user: str, membership: str = "join") -> JSON:
        content: JSON = {"membership": membership, "displayname": self.display[user]}
        if self.rng.random() < 0.6:
            content["avatar_url"] = self.mxc()
        return self.state("m.room.member", user, user, content)

    def power_levels(self, creator: str, members: list[str]) -> JSON:
        users = {creator: 100}
        users.update({u: 50 for u in members[:3]})
        return self.state(
            "m.room.power_levels",
            creator,
            "",
            {
                "users": users,
                "users_default": 0,
                "events": {
                    "m.room.name": 50,
                    "m.room.power_levels": 100,
                    "m.room.history_visibility": 100,
                    "m.room.canonical_alias": 50,
                    "m.room.avatar": 50,
                    "m.room.tombstone": 100,
                    "m.room.server_acl": 100,
                    "m.room.encryption": 100,
                },
                "events_default": 0,
                "state_default": 50,
                "ban": 50,
                "kick": 50,
                "redact": 50,
                "invite": 0,
                "historical": 100,
            },
        )

    def message(self, sender: str, kind: str, recent: list[JSON]) -> JSON:
        rng = self.rng
        if kind in ("text", "notice", "emote"):
            msgtype = {"text": "m.text", "notice": "m.notice", "emote": "m.emote"}[kind]
            return self.base(
                "m.room.message", sender, {"msgtype": msgtype, "body": self.sentence()}
            )
        if kind == "formatted":
            words = self.sentence(3, 12)
            return self.base(
                "m.room.message",
                sender,
                {
                    "msgtype": "m.text",
                    "body": f"**{words}** see `code`",
                    "format": "org.matrix.custom.html",
                    "formatted_body": f"<strong>{words}</strong> see <code>code</code>",
                },
            )
        if kind in ("image", "file"):
            mime, ext = rng.choice(MIMES if kind == "image" else FILES)
            name = f"{rng.choice(WORDS)}-{rng.randrange(1000)}{ext}"
            info: JSON = {"mimetype": mime, "size": rng.randint(1_000, 5_000_000)}
            content: JSON = {"msgtype": f"m.{kind}", "body": name, "url": self.mxc()}
            if kind == "image":
                info.update(w=rng.randint(64, 4000), h=rng.randint(64, 4000))
                info["thumbnail_url"] = self.mxc()
                info["thumbnail_info"] = {"mimetype": "image/jpeg", "w": 320, "h": 240}
            else:
                content["filename"] = name
            content["info"] = info
            return self.base("m.room.message", sender, content)
        target = rng.choice(recent) if recent else None
        if target is None or kind == "reply":
            quoted = target["content"].get("body", "") if target else ""
            quoted_sender = target["sender"] if target else self.me
            text = self.sentence()
            content = {
                "msgtype": "m.text",
                "body": f"> <{quoted_sender}> {quoted}\n\n{text}",
                "format": "org.matrix.custom.html",
                "formatted_body": (
                    '<mx-reply><blockquote><a href="https://matrix.to/#/!r/$e">'
                    f'In reply to</a> <a href="https://matrix.to/#/{quoted_sender}">'
                    f"{quoted_sender}</a><br>{quoted}</blockquote></mx-reply>{text}"
                ),
            }
            if target is not None:
                content["m.relates_to"] = {
                    "m.in_reply_to": {"event_id": target["event_id"]}
                }
            return self.base("m.room.message", sender, content)
        if kind == "edit":
            text = self.sentence()
            return self.base(
                "m.room.message",
                target["sender"],
                {
                    "msgtype": "m.text",
                    "body": f" * {text}",
                    "m.new_content": {"msgtype": "m.text", "body": text},
                    "m.relates_to": {
                        "rel_type": "m.replace",
                        "event_id": target["event_id"],
                    },
                },
            )
        if kind == "reaction":
            return self.base(
                "m.reaction",
                sender,
                {
                    "m.relates_to": {
                        "rel_type": "m.annotation",
                        "event_id": target["event_id"],
                        "key": rng.choice(EMOJI),
                    }
                },
            )
        if kind == "redaction":
            ev = self.base(
                "m.room.redaction",
                sender,
                {"redacts": target["event_id"], "reason": "spam"},
            )
            ev["redacts"] = target["event_id"]
            return ev
        # "redacted": a message whose content the server has stripped.
        ev = self.base("m.room.message", sender, {})
        ev["unsigned"]["redacted_because"] = {
            "type": "m.room.redaction",
            "sender": sender,
            "content": {},
            "redacts": ev["event_id"],
            "origin_server_ts": self.ts,
            "event_id": self.event_id(),
        }
        return ev

    def encrypted(self, sender: str) -> JSON:
        return self.base(
            "m.room.encrypted",
            sender,
            {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": self._opaque(self.rng.randint(120, 600)),
                "device_id": self._opaque(7).upper(),
                "sender_key": self._opaque(32),
                "session_id": self._opaque(32),
            },
        )

    def timeline_event(self, members: list[str], recent: list[JSON]) -> JSON:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        sender = self.rng.choice(members)
        if kind == "encrypted":
            return self.encrypted(sender)
        if kind == "member":
            user = self.rng.choice(self.users)
            return self.member(user, self.rng.choice(("join", "join", "leave")))
        if kind == "name":
            return self.state("m.room.name", sender, "", {"name": self.sentence(1, 4)})
        if kind == "topic":
            return self.state("m.room.topic", sender, "", {"topic": self.sentence()})
        if kind == "power_levels":
            return self.power_levels(sender, members)
        return self.message(sender, kind, recent)

    # ---- rooms ----------------------------------------------------------

    def joined_room(self, n_events: int) -> JSON:
        rng = self.rng
        members = [self.me, *rng.sample(self.users[1:], rng.randint(2, 40))]
        creator = members[1]
        state = [
            self.state(
                "m.room.create", creator, "", {"room_version": "10", "creator": creator}
            ),
            self.state("m.room.join_rules", creator, "", {"join_rule": "invite"}),
            self.state(
                "m.room.history_visibility",
                creator,
                "",
                {"history_visibility": "shared"},
            ),
            self.power_levels(creator, members),
        ]
        if rng.random() < 0.8:
            state.append(
                self.state("m.room.name", creator, "", {"name": self.sentence(1, 4)})
            )
        if rng.random() < 0.5:
            state.append(
                self.state("m.room.topic", creator, "", {"topic": self.sentence()})
            )
        if rng.random() < 0.3:
            state.append(
                self.state(
                    "m.room.encryption",
                    creator,
                    "",
                    {
                        "algorithm": "m.megolm.v1.aes-sha2",
                        "rotation_period_ms": 604800000,
                    },
                )
            )
        # Lazy-loaded members: the senders of the timeline, at most 12 here.
        speakers = members[: min(len(members), 12)]
        state += [self.member(u) for u in speakers]
        timeline: list[JSON] = []
        for _ in range(n_events):
            timeline.append(self.timeline_event(speakers, timeline[-20:]))
        last = timeline[-1]["event_id"] if timeline else self.event_id()
        receipts = {
            last: {
                "m.read": {
                    u: {"ts": self.ts - rng.randint(0, 100_000)}
                    for u in rng.sample(speakers, min(len(speakers), 5))
                }
            }
        }
        room: JSON = {
            "summary": {
                "m.heroes": speakers[1:6],
                "m.joined_member_count": len(members),
                "m.invited_member_count": 0,
            },
            "state": {"events": state},
            "timeline": {
                "events": timeline,
                "limited": n_events >= 50,
                "prev_batch": f"t{rng.randrange(10**6)}-{rng.randrange(10**6)}",
            },
            "ephemeral": {
                "events": [
                    {
                        "type": "m.typing",
                        "content": {
                            "user_ids": rng.sample(speakers, min(2, len(speakers)))
                        },
                    },
                    {"type": "m.receipt", "content": receipts},
                ]
            },
            "account_data": {
                "events": [
                    {"type": "m.fully_read", "content": {"event_id": last}},
                    {"type": "m.tag", "content": {"tags": {"u.work": {"order": 0.5}}}},
                ]
            },
            "unread_notifications": {
                "notification_count": rng.randint(0, 50),
                "highlight_count": rng.randint(0, 3),
            },
        }
        return room

    def invited_room(self) -> JSON:
        inviter = self.rng.choice(self.users[1:])
        stripped = [
            {"type": "m.room.name", "sender": inviter, "state_key": "",
             "content": {"name": self.sentence(1, 4)}},
            {"type": "m.room.join_rules", "sender": inviter, "state_key": "",
             "content": {"join_rule": "invite"}},
            {"type": "m.room.member", "sender": inviter, "state_key": inviter,
             "content": {"membership": "join", "displayname": self.display[inviter]}},
            {"type": "m.room.member", "sender": inviter, "state_key": self.me,
             "content": {"membership": "invite"}},
        ]  # fmt: skip
        return {"invite_state": {"events": stripped}}

    def left_room(self) -> JSON:
        leave = self.member(self.me, "leave")
        return {
            "state": {"events": []},
            "timeline": {"events": [leave], "limited": False},
        }

    def sync(self) -> JSON:
        size, rng = self.size, self.rng
        # Room sizes are skewed like real accounts: a few busy rooms, many quiet.
        weights = [rng.paretovariate(1.2) for _ in range(size.joined_rooms)]
        total = sum(weights)
        counts = [max(1, int(size.timeline_events * w / total)) for w in weights]
        counts[0] += size.timeline_events - sum(counts)
        counts[0] = max(counts[0], 1)
        join = {self.room_id(): self.joined_room(n) for n in counts}
        invite = {self.room_id(): self.invited_room() for _ in range(size.invites)}
        leave = {self.room_id(): self.left_room() for _ in range(size.left_rooms)}
        direct: dict[str, list[str]] = {}
        for rid in list(join)[: size.joined_rooms // 5]:
            direct.setdefault(rng.choice(self.users[1:]), []).append(rid)
        presence = [
            {
                "type": "m.presence",
                "sender": u,
                "content": {
                    "presence": rng.choice(("online", "unavailable", "offline")),
                    "last_active_ago": rng.randint(0, 10**7),
                    "currently_active": rng.random() < 0.3,
                },
            }
            for u in rng.sample(self.users, min(len(self.users), 200))
        ]
        token = f"s{rng.randrange(10**9)}_{rng.randrange(10**6)}_0_1_1_1_1_1_1"
        return {
            "next_batch": token,
            "account_data": {
                "events": [
                    {"type": "m.direct", "content": direct},
                    {"type": "m.push_rules", "content": {"global": {"override": []}}},
                ]
            },
            "presence": {"events": presence},
            "to_device": {"events": []},
            "device_lists": {"changed": self.users[1:20], "left": []},
            "device_one_time_keys_count": {"signed_curve25519": 50},
            "rooms": {"join": join, "invite": invite, "leave": leave},
        }


def generate(seed: int, size: Size) -> bytes:
    """The response as compact UTF-8 JSON, as Synapse sends it."""
    body = _Gen(seed, size).sync()
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def cached(seed: int, size: Size, cache_dir: Path) -> Path:
    """The path of the generated response, generating it once per seed/size."""
    path = cache_dir / f"sync-{seed}-{size.label}.json"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(generate(seed, size))
        tmp.replace(path)
    return path
