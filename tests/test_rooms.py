"""The room state cache (csrc/matrix/rooms.c) through RoomCache, from JSON fixtures
and from a real Synapse /sync."""

from __future__ import annotations

import json
import random
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from matridge._core import CREATOR_POWER_LEVEL, RoomCache, RoomInfo
from tests.conftest import new_matrix_user
from tests.harness.synapse import Synapse

FIXTURES = Path(__file__).parent / "fixtures" / "rooms"
ME = "@me:example.org"
ALICE = "@alice:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:example.org"
DAN = "@dan:matrix.org"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def room(cache: RoomCache, room_id: str) -> RoomInfo:
    info = cache.get(room_id)
    assert info is not None, f"{room_id} is not in the cache"
    return info


def state_event(type: str, content: Any, state_key: str = "", **extra: Any) -> Any:
    return {
        "type": type,
        "state_key": state_key,
        "sender": ME,
        "content": content,
        **extra,
    }


def join_sync(room_id: str, events: list[Any], **room_extra: Any) -> bytes:
    body = {"rooms": {"join": {room_id: {"state": {"events": events}, **room_extra}}}}
    return json.dumps(body).encode()


@pytest.fixture
def cache() -> RoomCache:
    c = RoomCache(ME)
    c.apply_sync(fixture("initial_sync"))
    return c


# ---- fields --------------------------------------------------------------


def test_every_room_of_the_initial_sync_is_cached(cache: RoomCache) -> None:
    ids = cache.room_ids()
    assert list(ids) == sorted(ids)
    assert len(cache) == len(ids) == 18
    assert "!named:example.org" in cache
    assert "!invited:example.org" in cache
    assert "!unknown:example.org" not in cache
    assert 42 not in cache
    assert cache.get("!unknown:example.org") is None


def test_a_named_room_has_all_its_state(cache: RoomCache) -> None:
    r = room(cache, "!named:example.org")
    assert r.room_id == "!named:example.org"
    assert r.membership == "join"
    assert r.avatar_url == "mxc://example.org/room"
    assert r.canonical_alias == "#named:example.org"
    assert r.alt_aliases == ("#alt1:example.org", "#alt2:example.org")
    assert r.join_rule == "invite"
    assert r.pinned_events == ("$pin1", "$pin2")
    assert r.encrypted is True
    assert r.encryption_algorithm == "m.megolm.v1.aes-sha2"
    assert r.tombstone is None
    assert r.is_space is False
    assert r.room_version == "10"
    assert r.creators == (ME,)
    assert r.is_direct is False
    assert r.direct_user_ids == ()
    assert (r.joined_count, r.invited_count) == (2, 1)


def test_timeline_state_overrides_the_state_section(cache: RoomCache) -> None:
    r = room(cache, "!named:example.org")
    assert r.name == r.display_name == "New name"
    assert r.topic == "New topic"


def test_members_carry_membership_display_name_and_avatar(cache: RoomCache) -> None:
    members = room(cache, "!named:example.org").members
    assert set(members) == {ME, ALICE, BOB}
    alice = members[ALICE]
    assert alice.user_id == ALICE
    assert alice.membership == "join"
    assert alice.display_name == "Alice"
    assert alice.avatar_url == "mxc://example.org/alice"
    assert members[BOB].membership == "invite"
    assert members[ME].avatar_url is None


def test_power_levels_as_in_the_event(cache: RoomCache) -> None:
    r = room(cache, "!named:example.org")
    assert r.has_power_levels
    assert r.power_levels == {
        "users": {ME: 100, ALICE: 50},
        "users_default": 10,
        "events": {"m.room.name": 75, "m.room.power_levels": 100},
        "events_default": 5,
        "state_default": 60,
        "ban": 70,
        "kick": 65,
        "redact": 55,
        "invite": 20,
        "notifications": {"room": 40},
    }
    assert r.power_level(ME) == 100
    assert r.power_level(ALICE) == 50
    assert r.power_level(BOB) == 10  # users_default
    with pytest.raises(TypeError):
        r.power_level(5)  # type: ignore[arg-type]


def test_power_levels_default_per_spec_without_the_event(cache: RoomCache) -> None:
    r = room(cache, "!v11:example.org")
    assert not r.has_power_levels
    assert r.power_levels == {
        "users": {},
        "users_default": 0,
        "events": {},
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": {"room": 50},
    }


@pytest.mark.parametrize(
    ("room_id", "expected"),
    [
        ("!named:example.org", "New name"),
        ("!alias:example.org", "#alias:example.org"),  # empty m.room.name ignored
        ("!one:example.org", "Alice"),
        ("!pair:example.org", "Alice and Bob"),
        ("!heroes:example.org", "Alice, Bob and 3 others"),
        ("!counted:example.org", "Bob, Carol and Dan"),  # no summary: from members
        ("!empty:example.org", "Empty Room (was Gone)"),
        ("!alone:example.org", "Empty Room"),
        ("!invited:example.org", "Come in"),
        ("!dupnames:example.org", "Sams"),
    ],
)
def test_display_name_follows_the_spec(
    cache: RoomCache, room_id: str, expected: str
) -> None:
    assert room(cache, room_id).display_name == expected


def test_heroes_come_from_the_summary_else_from_members(cache: RoomCache) -> None:
    assert room(cache, "!heroes:example.org").heroes == (ALICE, BOB)
    counted = room(cache, "!counted:example.org")
    # Sorted by user id, joined/invited only, never the account itself.
    assert counted.heroes == (BOB, CAROL, DAN)
    assert (counted.joined_count, counted.invited_count) == (4, 0)


def test_heroes_leave_out_the_account_only_once_it_is_known() -> None:
    events = [
        state_event("m.room.member", {"membership": "join"}, ME),
        state_event("m.room.member", {"membership": "join"}, ALICE),
    ]
    c = RoomCache()
    c.apply_sync(join_sync("!r:example.org", events))
    assert c.user_id is None
    assert room(c, "!r:example.org").display_name == f"{ALICE} and {ME}"
    c.user_id = ME
    assert c.user_id == ME
    assert room(c, "!r:example.org").display_name == ALICE


def test_more_than_five_members_name_a_room_by_five_and_a_count() -> None:
    users = [f"@u{i}:example.org" for i in range(8)]
    events = [state_event("m.room.member", {"membership": "join"}, u) for u in users]
    c = RoomCache(ME)
    c.apply_sync(join_sync("!r:example.org", events))
    r = room(c, "!r:example.org")
    assert r.heroes == tuple(users[:5])
    assert r.display_name == ", ".join(users[:5]) + " and 2 others"


def test_display_names_are_disambiguated(cache: RoomCache) -> None:
    r = room(cache, "!dupnames:example.org")
    assert r.member_display_name("@sam1:example.org") == "Sam (@sam1:example.org)"
    assert r.member_display_name("@sam2:example.org") == "Sam (@sam2:example.org)"
    # Left, but shares its name with a joined member.
    assert r.member_display_name("@sam3:example.org") == "Sam (@sam3:example.org)"
    assert r.member_display_name("@solo:example.org") == "Solo"
    assert r.member_display_name("@noname:example.org") == "@noname:example.org"
    assert r.member_display_name("@empty:example.org") == "@empty:example.org"
    assert r.member_display_name("@stranger:x.org") == "@stranger:x.org"
    assert r.members["@sam1:example.org"].display_name == "Sam"


def test_the_cache_names_a_member_without_a_snapshot(cache: RoomCache) -> None:
    room_id = "!dupnames:example.org"
    snapshot = room(cache, room_id)
    for user in ("@sam1:example.org", "@sam3:example.org", "@solo:example.org"):
        name = cache.member_display_name(room_id, user)
        assert name == snapshot.member_display_name(user)
    # Unknown members and rooms say so, rather than inventing a name.
    assert cache.member_display_name(room_id, "@stranger:x.org") is None
    assert (
        cache.member_display_name("!nowhere:example.org", "@solo:example.org") is None
    )
    with pytest.raises(TypeError):
        cache.member_display_name(room_id)  # type: ignore[call-arg]


def test_a_left_member_does_not_make_a_joined_name_ambiguous() -> None:
    events = [
        state_event(
            "m.room.member", {"membership": "join", "displayname": "Kim"}, ALICE
        ),
        state_event(
            "m.room.member", {"membership": "leave", "displayname": "Kim"}, BOB
        ),
    ]
    c = RoomCache(ME)
    c.apply_sync(join_sync("!r:example.org", events))
    r = room(c, "!r:example.org")
    assert r.member_display_name(ALICE) == "Kim"
    assert r.member_display_name(BOB) == f"Kim ({BOB})"


def test_spaces_children_and_parents(cache: RoomCache) -> None:
    space = room(cache, "!space:example.org")
    assert space.is_space
    assert space.room_type == "m.space"
    # Children without a non-empty `via` do not count.
    assert space.space_children == ("!child:example.org", "!named:example.org")
    assert room(cache, "!child:example.org").space_parents == ("!space:example.org",)
    cache.apply_sync(fixture("second_sync"))
    assert room(cache, "!space:example.org").space_children == (
        "!added:example.org",
        "!named:example.org",
    )


def test_tombstone_from_the_timeline(cache: RoomCache) -> None:
    assert room(cache, "!tomb:example.org").tombstone == (
        "!new:example.org",
        "This room has been replaced",
    )


def test_room_version_12_creators_have_infinite_power(cache: RoomCache) -> None:
    assert CREATOR_POWER_LEVEL == 2**53
    r = room(cache, "!v12:example.org")
    assert r.creators == (ME, ALICE)
    assert r.power_level(ME) == CREATOR_POWER_LEVEL
    assert r.power_level(ALICE) == CREATOR_POWER_LEVEL
    assert r.power_level(BOB) == 50
    assert r.power_level(CAROL) == 0


def test_without_power_levels_the_creator_has_100(cache: RoomCache) -> None:
    v11 = room(cache, "!v11:example.org")  # room version 11: the sender creates
    assert v11.creators == (ALICE,)
    assert v11.power_level(ALICE) == 100
    assert v11.power_level(ME) == 0
    counted = room(cache, "!counted:example.org")  # version 10: content.creator
    assert counted.power_level(ME) == 100
    assert counted.power_level(CAROL) == 0


def test_room_version_12_without_power_levels() -> None:
    events = [
        state_event("m.room.create", {"room_version": "12"}),
        state_event("m.room.member", {"membership": "join"}, ALICE),
    ]
    c = RoomCache(ME)
    c.apply_sync(join_sync("!r:example.org", events))
    r = room(c, "!r:example.org")
    assert r.power_level(ME) == CREATOR_POWER_LEVEL
    assert r.power_level(ALICE) == 0


def test_direct_chats_come_from_m_direct(cache: RoomCache) -> None:
    dm = room(cache, "!dm:example.org")
    assert dm.is_direct
    assert dm.direct_user_ids == (ALICE,)
    assert cache.direct_rooms() == {
        "!dm:example.org": ALICE,
        "!dmcarol:example.org": CAROL,
    }


def test_a_room_stops_being_direct_when_m_direct_drops_it(cache: RoomCache) -> None:
    cache.apply_sync(fixture("second_sync"))
    assert not room(cache, "!dm:example.org").is_direct
    assert room(cache, "!dm:example.org").direct_user_ids == ()
    assert room(cache, "!dmcarol:example.org").direct_user_ids == (CAROL, BOB)
    assert cache.direct_rooms() == {
        "!dmcarol:example.org": CAROL,
        "!dmbob:example.org": BOB,
    }


def test_invited_rooms_read_the_stripped_state(cache: RoomCache) -> None:
    r = room(cache, "!invited:example.org")
    assert r.membership == "invite"
    assert r.name == "Come in"
    assert r.join_rule == "invite"
    assert r.members[BOB].membership == "join"
    assert r.members[ME].membership == "invite"
    assert r.power_level(BOB) == 100  # the creator, no power levels known


def test_a_left_room_keeps_its_last_known_state(cache: RoomCache) -> None:
    cache.apply_sync(fixture("second_sync"))
    r = room(cache, "!left:example.org")
    assert r.membership == "leave"
    assert r.name == "Soon left"
    assert r.topic == "Still here"
    assert r.members[ME].membership == "leave"


def test_an_incremental_sync_updates_and_keeps(cache: RoomCache) -> None:
    cache.apply_sync(fixture("second_sync"))
    r = room(cache, "!named:example.org")
    assert r.name == "Newest name"
    assert r.topic == "New topic"  # untouched state stays
    assert r.members[BOB].membership == "join"
    assert (r.joined_count, r.invited_count) == (3, 0)
    # A garbled encryption event cannot turn encryption off.
    assert r.encrypted
    assert r.encryption_algorithm == "m.megolm.v1.aes-sha2"


def test_heroes_sharing_a_name_are_disambiguated_in_the_room_name(
    cache: RoomCache,
) -> None:
    cache.apply_sync(fixture("second_sync"))  # Bob joins !one as "Alice"
    assert room(cache, "!one:example.org").display_name == (
        f"Alice ({ALICE}) and Alice ({BOB})"
    )


def test_a_snapshot_does_not_change_when_a_batch_applies(cache: RoomCache) -> None:
    before = room(cache, "!named:example.org")
    members_before = before.members
    cache.apply_sync(fixture("second_sync"))
    assert before.name == "New name"
    assert before.members[BOB].membership == "invite"
    assert members_before[BOB].membership == "invite"
    assert before.joined_count == 2
    after = room(cache, "!named:example.org")
    assert after.members[BOB].membership == "join"
    # What a caller does to the dict it got does not reach the snapshot.
    members_before.clear()
    assert BOB in before.members


def test_state_after_replaces_state_and_timeline() -> None:
    body = {
        "rooms": {
            "join": {
                "!r:example.org": {
                    "state_after": {
                        "events": [state_event("m.room.name", {"name": "After"})]
                    },
                    "timeline": {
                        "events": [state_event("m.room.name", {"name": "Timeline"})]
                    },
                }
            }
        }
    }
    c = RoomCache(ME)
    c.apply_sync(json.dumps(body).encode())
    assert room(c, "!r:example.org").name == "After"


def test_knocked_rooms_read_the_knock_state() -> None:
    body = {
        "rooms": {
            "knock": {
                "!k:example.org": {
                    "knock_state": {
                        "events": [state_event("m.room.name", {"name": "Knock knock"})]
                    }
                }
            }
        }
    }
    c = RoomCache(ME)
    c.apply_sync(json.dumps(body).encode())
    r = room(c, "!k:example.org")
    assert (r.membership, r.name) == ("knock", "Knock knock")


# ---- full state lists ------------------------------------------------------


def test_a_full_state_list_makes_a_room() -> None:
    c = RoomCache(ME)
    c.apply_state("!fetched:example.org", fixture("state_list"))
    r = room(c, "!fetched:example.org")
    assert r.membership == "join"  # from the account's own member event
    assert (r.name, r.topic) == ("Fetched", "Full state")
    assert r.members[CAROL].membership == "ban"
    assert r.power_level(ME) == 30
    assert r.power_level(BOB) == 100
    assert (r.joined_count, r.invited_count) == (2, 0)


def test_a_full_state_list_replaces_a_rooms_state(cache: RoomCache) -> None:
    cache.apply_state("!named:example.org", fixture("state_list"))
    r = room(cache, "!named:example.org")
    assert r.membership == "join"
    assert (r.name, r.topic) == ("Fetched", "Full state")
    assert r.canonical_alias is None
    assert ALICE not in r.members
    assert (r.joined_count, r.invited_count) == (2, 0)


def test_bad_full_state_lists_are_refused() -> None:
    c = RoomCache(ME)
    with pytest.raises(ValueError, match="array"):
        c.apply_state("!r:example.org", b'{"not": "a list"}')
    with pytest.raises(ValueError, match="room id"):
        c.apply_state("no-sigil", b"[]")
    with pytest.raises(ValueError, match="JSON"):
        c.apply_state("!r:example.org", b"[{")
    with pytest.raises(TypeError):
        c.apply_state("!r:example.org", "[]")  # type: ignore[arg-type]
    assert len(c) == 0


# ---- hostile input ---------------------------------------------------------


def test_hostile_events_are_skipped_while_the_rest_applies() -> None:
    c = RoomCache(ME)
    c.apply_sync(fixture("hostile_sync"))
    assert c.room_ids() == ("!inv:example.org", "!ok:example.org")
    r = room(c, "!ok:example.org")
    assert r.name == r.display_name == "Good name"
    assert r.topic is None
    assert r.avatar_url is None
    assert r.canonical_alias is None
    assert r.alt_aliases == ("#fine:example.org",)
    assert set(r.members) == {ME, "@typed:example.org"}
    typed = r.members["@typed:example.org"]
    assert (typed.display_name, typed.avatar_url) == (None, None)
    assert r.power_levels == {
        "users": {ME: 100, "@str:example.org": 75},
        "users_default": 0,
        "events": {},
        "events_default": 0,
        "state_default": -5,
        "ban": 50,
        "kick": 30,
        "redact": 50,
        "invite": 0,
        "notifications": {"room": 50},
    }
    assert r.join_rule is None
    assert r.pinned_events == ("$good",)
    assert r.tombstone is None
    assert r.space_children == ("!kid2:example.org",)
    # A garbled summary is ignored: counts come from members.
    assert (r.joined_count, r.invited_count) == (2, 0)
    assert c.direct_rooms() == {"!ok:example.org": ALICE}
    assert room(c, "!inv:example.org").membership == "invite"
    assert room(c, "!inv:example.org").display_name == "Empty Room"


def test_enormous_strings_are_ignored_value_by_value() -> None:
    huge = "x" * (2 * 1024 * 1024)
    events = [
        state_event("m.room.member", {"membership": "join"}, ME),
        state_event("m.room.topic", {"topic": "kept"}),
        state_event("m.room.name", {"name": huge}),
        state_event(
            "m.room.member", {"membership": "join", "displayname": huge}, ALICE
        ),
        state_event(
            "m.room.member", {"membership": "join"}, "@" + "y" * 300 + ":x.org"
        ),
        state_event("m.room.canonical_alias", {"alias": "#" + huge}),
        state_event(huge, {"name": "huge type"}),
        state_event("m.room.pinned_events", {"pinned": ["$" + huge, "$ok"]}),
    ]
    c = RoomCache(ME)
    c.apply_sync(join_sync("!r:example.org", events))
    r = room(c, "!r:example.org")
    assert r.topic == "kept"
    assert r.name is None
    assert r.canonical_alias is None
    assert r.pinned_events == ("$ok",)
    assert set(r.members) == {ME, ALICE}
    assert r.members[ALICE].display_name is None
    assert r.display_name == ALICE


def test_long_lists_are_capped() -> None:
    pinned = [f"$e{i}" for i in range(10_000)]
    c = RoomCache(ME)
    c.apply_sync(
        join_sync(
            "!r:example.org", [state_event("m.room.pinned_events", {"pinned": pinned})]
        )
    )
    assert room(c, "!r:example.org").pinned_events == tuple(pinned[:4096])


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", ValueError),
        (b"{", ValueError),
        (b"\xff\xfe", ValueError),
        (b"[1, 2]", ValueError),
        (b'"just a string"', ValueError),
        (b"[" * 100_000 + b"]" * 100_000, ValueError),
    ],
)
def test_bad_sync_bodies_raise(data: bytes, error: type[Exception]) -> None:
    c = RoomCache(ME)
    with pytest.raises(error):
        c.apply_sync(data)
    assert len(c) == 0


def test_apply_sync_wants_bytes() -> None:
    with pytest.raises(TypeError, match="bytes"):
        RoomCache().apply_sync("{}")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RoomCache().get(b"!r:example.org")  # type: ignore[arg-type]


def test_room_ids_with_a_nul_never_match_a_shorter_id(cache: RoomCache) -> None:
    with pytest.raises(ValueError, match="NUL"):
        cache.get("!named:example.org\0tail")
    assert "!named:example.org\0tail" not in cache
    assert "!named:example.org" in cache


def mutate(value: Any, rng: random.Random) -> Any:
    """A random corruption of a JSON value: swapped types, dropped keys."""
    choice = rng.random()
    if choice < 0.05:
        return rng.choice([None, 0, -1, 1e308, "", "x" * 300, [], {}, True])
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if rng.random() < 0.05:
                continue
            out[k] = mutate(v, rng)
        return out
    if isinstance(value, list):
        return [mutate(v, rng) for v in value if rng.random() > 0.05]
    return value


def test_randomly_corrupted_syncs_never_break_the_cache() -> None:
    rng = random.Random(20240611)
    original = json.loads(fixture("initial_sync"))
    c = RoomCache(ME)
    for _ in range(200):
        corrupted = mutate(original, rng)
        try:
            c.apply_sync(json.dumps(corrupted).encode())
        except ValueError:
            assert not isinstance(corrupted, dict)
        for room_id in c.room_ids():
            r = room(c, room_id)
            assert isinstance(r.display_name, str)
            assert all(m.user_id == u for u, m in r.members.items())
            r.power_levels  # noqa: B018 - builds every value once
    c.apply_sync(fixture("initial_sync"))
    assert room(c, "!named:example.org").name == "New name"


# ---- scale and threads -------------------------------------------------------


def test_a_room_with_ten_thousand_members() -> None:
    n = 10_000
    events = [
        state_event(
            "m.room.member",
            {"membership": "join", "displayname": f"User {i % 5000}"},
            f"@user{i}:example.org",
        )
        for i in range(n)
    ]
    c = RoomCache(ME)
    c.apply_sync(join_sync("!big:example.org", events))
    r = room(c, "!big:example.org")
    assert len(r.members) == n
    assert r.joined_count == n
    assert r.member_display_name("@user7:example.org") == "User 7 (@user7:example.org)"
    # One of each pair leaves: the other's name is unique again.
    leave = [
        state_event("m.room.member", {"membership": "leave"}, f"@user{i}:example.org")
        for i in range(5000, n)
    ]
    c.apply_sync(join_sync("!big:example.org", leave))
    after = room(c, "!big:example.org")
    assert after.member_display_name("@user7:example.org") == "User 7"
    assert after.joined_count == 5000
    assert r.joined_count == n  # the earlier snapshot is untouched


def test_snapshots_read_while_another_thread_applies_batches() -> None:
    rounds = 300
    c = RoomCache(ME)
    c.apply_sync(join_sync("!r:example.org", []))

    def batch(i: int) -> bytes:
        # One batch changes the name, a member and the member count together.
        events = [
            state_event("m.room.name", {"name": f"Round {i}"}),
            state_event(
                "m.room.member",
                {"membership": "join", "displayname": f"Round {i}"},
                ALICE,
            ),
            state_event("m.room.member", {"membership": "join"}, f"@n{i}:example.org"),
        ]
        return join_sync("!r:example.org", events)

    batches = [batch(i) for i in range(rounds)]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for b in batches:
                c.apply_sync(b)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=writer)
    t.start()
    seen: set[int] = set()
    while t.is_alive() or not seen:
        r = room(c, "!r:example.org")
        if r.name is None:
            continue
        i = int(r.name.split()[1])
        seen.add(i)
        # Every snapshot shows one whole batch, never half of one.
        assert r.members[ALICE].display_name == r.name
        assert r.joined_count == i + 2 == len(r.members)
        assert r.name == f"Round {i}"
    t.join()
    assert not errors
    assert room(c, "!r:example.org").name == f"Round {rounds - 1}"


# ---- against Synapse ---------------------------------------------------------


def test_a_real_sync_from_synapse(synapse: Synapse) -> None:
    owner = new_matrix_user(synapse, "roomsowner", "Olive Owner")
    guest = new_matrix_user(synapse, "roomsguest", "Gus Guest")
    room_id = owner.request(
        "POST",
        "/createRoom",
        {
            "preset": "private_chat",
            "room_version": "10",  # the creator is listed in `users` below
            "name": "Cache test",
            "topic": "What the cache sees",
            "power_level_content_override": {
                "users": {owner.user_id: 100, guest.user_id: 42},
                "events_default": 7,
            },
        },
    )["room_id"]
    owner.invite(room_id, guest.user_id)
    guest.join(room_id)

    req = urllib.request.Request(
        f"{synapse.base_url}/_matrix/client/v3/sync",
        headers={"Authorization": f"Bearer {owner.access_token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()

    c = RoomCache(owner.user_id)
    c.apply_sync(body)
    r = room(c, room_id)
    assert r.membership == "join"
    assert r.name == r.display_name == "Cache test"
    assert r.topic == "What the cache sees"
    assert r.join_rule == "invite"
    assert r.creators == (owner.user_id,)
    assert r.room_version == "10"
    assert r.joined_count == 2
    assert r.invited_count == 0
    assert r.members[guest.user_id].membership == "join"
    assert r.members[guest.user_id].display_name == "Gus Guest"
    assert r.member_display_name(owner.user_id) == "Olive Owner"
    assert r.power_level(guest.user_id) == 42
    assert r.power_levels["events_default"] == 7
    assert r.power_level("@nobody:example.org") == 0
    assert r.power_level(owner.user_id) == 100
