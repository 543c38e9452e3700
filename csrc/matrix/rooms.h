/* The per-account room state cache (pure C, no Python).
 *
 * The engine thread applies every /sync response to it (mx_rooms_apply_sync),
 * Python reads it through snapshots (mx_rooms_snapshot). One mutex guards the
 * cache; neither side holds the GIL while it waits for it or works under it.
 *
 * Snapshots are deep copies of one room, except its member table, which is
 * shared copy-on-write: the cache clones a table before changing it while a
 * snapshot still holds it. Member records themselves are immutable and
 * reference counted, so a clone only copies pointers.
 *
 * The cache owns copies of everything it keeps: the parsed /sync tree can be
 * freed as soon as mx_rooms_apply_sync returns. */
#ifndef MATRIDGE_ROOMS_H
#define MATRIDGE_ROOMS_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Room version 12+ creators have infinite power; reported as this value. */
#define MX_CREATOR_POWER_LEVEL ((int64_t)1 << 53)
/* Longest string value kept (a topic, a display name...); longer ones are
 * hostile or broken and are ignored like any other bad value. */
#define MX_ROOMS_MAX_STR (64u * 1024u)
/* Longest identifier kept (user ids, room ids, aliases, event ids). */
#define MX_ROOMS_MAX_ID 255u
/* Most items kept from one list (alt aliases, pinned events, heroes...). */
#define MX_ROOMS_MAX_LIST 4096u

typedef struct mx_rooms mx_rooms;

/* The account's own membership, from the /sync section the room came in. */
typedef enum {
    MX_OWN_JOIN,
    MX_OWN_INVITE,
    MX_OWN_LEAVE,
    MX_OWN_KNOCK
} mx_own_membership;

/* A member's `membership` in its m.room.member event. */
typedef enum {
    MX_MEMBER_JOIN,
    MX_MEMBER_INVITE,
    MX_MEMBER_LEAVE,
    MX_MEMBER_BAN,
    MX_MEMBER_KNOCK
} mx_member_state;

/* One member; immutable once made, shared between tables and snapshots. The
 * strings live in the same allocation as the struct. */
typedef struct mx_member {
    atomic_size_t refs;
    uint64_t seq; /* the cache's sync count when a /sync set it; 0 from a state load */
    mx_member_state membership;
    const char *user_id;
    const char *display_name; /* NULL when unset, empty or bad */
    const char *avatar_url;   /* NULL when unset or bad */
} mx_member;

void mx_member_incref(const mx_member *m);
void mx_member_decref(const mx_member *m);

/* A room's members: user id -> member, with per-name counts for
 * disambiguation. Reference counted; see the copy-on-write note above. */
typedef struct mx_members mx_members;

size_t mx_members_len(const mx_members *t);
const mx_member *mx_members_get(const mx_members *t, const char *user_id);
/* Iteration: start with *pos = 0; returns NULL when done. */
const mx_member *mx_members_next(const mx_members *t, size_t *pos);

typedef struct {
    char **items; /* owned array of owned strings */
    size_t n;
    size_t cap; /* slots allocated in items (>= n) */
} mx_strlist;

typedef struct {
    char *key; /* owned: a user id or an event type */
    int64_t level;
} mx_level;

typedef struct {
    int present; /* an m.room.power_levels event is in the state */
    /* Effective values: the event's, else the spec's defaults. */
    int64_t users_default, events_default, state_default;
    int64_t ban, kick, redact, invite, notifications_room;
    mx_level *users; /* owned, sorted by key */
    size_t n_users;
    mx_level *events; /* owned, sorted by key */
    size_t n_events;
} mx_power_levels;

/* One room's state, as kept in the cache and as handed out in snapshots.
 * Every pointer is owned (NULL when unknown); `members` is a counted
 * reference. Read-only for snapshot holders. */
typedef struct mx_room_state {
    char *room_id;
    mx_own_membership membership;
    char *display_name; /* computed per the spec; never NULL in a snapshot */
    char *name;
    char *topic;
    char *avatar_url;
    char *canonical_alias;
    mx_strlist alt_aliases;
    mx_members *members;
    /* From the /sync summary; kept until the server sends new values. */
    int has_summary_joined, has_summary_invited, has_summary_heroes;
    int64_t summary_joined, summary_invited;
    mx_strlist summary_heroes;
    mx_strlist heroes; /* the summary's, else computed from members */
    int64_t joined_count, invited_count; /* the summary's, else counted */
    mx_power_levels power;
    int has_create;
    char *room_version; /* "1" when the create event does not say */
    char *room_type;    /* m.room.create content.type, e.g. "m.space" */
    mx_strlist creators;
    int creators_infinite; /* room version 12+: creators outrank everyone */
    int encrypted;
    char *encryption_algorithm;
    char *tombstone_room; /* the replacement room, NULL without tombstone */
    char *tombstone_body;
    mx_strlist space_children; /* sorted room ids */
    mx_strlist space_parents;  /* sorted room ids */
    mx_strlist pinned_events;
    char *join_rule;
    mx_strlist direct_users; /* from m.direct; filled in snapshots only */
    int dirty;               /* derived fields need recomputing */
    uint64_t synced_seq;     /* the cache's sync count when a /sync last touched it */
    uint64_t applying_seq;   /* while applying: the seq new members get */
} mx_room_state;

mx_rooms *mx_rooms_new(void); /* NULL on ENOMEM; refcount 1 */
void mx_rooms_incref(mx_rooms *r);
void mx_rooms_decref(mx_rooms *r);

/* The account's own user id (excluded from heroes). NULL clears it.
 * Returns 0, or -1 with errno ENOMEM. */
int mx_rooms_set_user_id(mx_rooms *r, const char *user_id);
/* A copy of the account's user id (caller frees), or NULL if unset. With
 * *err set to 1 when NULL means out of memory. */
char *mx_rooms_user_id(mx_rooms *r, int *err);

/* Applies one /sync response body (engine thread, no GIL). Malformed parts
 * are skipped. Returns 0, or -1 with errno EINVAL (the root is not an
 * object) or ENOMEM (what was applied before stays applied). */
int mx_rooms_apply_sync(mx_rooms *r, const cJSON *sync_root);
/* How many /sync bodies the cache has applied. A state request records it
 * when it goes out and passes it to mx_rooms_apply_state. */
uint64_t mx_rooms_seq(mx_rooms *r);
/* Applies a full state list (the body of GET /rooms/{id}/state) fetched when
 * the cache's sync count was `asked_at`. If no /sync touched the room since,
 * the list replaces the room's state; otherwise the room is newer than the
 * answer where sync spoke: its own fields and every member a /sync set after
 * `asked_at` stay, and the answer only adds or refreshes the other members.
 * Own membership is kept; a room new to the cache takes it from the account's
 * own member event, else "join". Returns 0, or -1 with errno EINVAL (bad room
 * id, not an array) or ENOMEM. */
int mx_rooms_apply_state(mx_rooms *r, const char *room_id, const cJSON *events_array,
                         uint64_t asked_at);

/* A snapshot of one room (caller frees with mx_room_state_free), or NULL:
 * then *err is 0 when the room is unknown, 1 when out of memory. */
mx_room_state *mx_rooms_snapshot(mx_rooms *r, const char *room_id, int *err);
void mx_room_state_free(mx_room_state *s);
/* The disambiguated display name of a member of a room (caller frees), read
 * without copying the room; NULL when the room or member is unknown (*err 0)
 * or out of memory (*err 1). */
char *mx_rooms_member_name(mx_rooms *r, const char *room_id, const char *user_id, int *err);
size_t mx_rooms_len(mx_rooms *r);
int mx_rooms_contains(mx_rooms *r, const char *room_id);
/* Sorted copies of every room id (caller frees each and the array); NULL
 * with *n = 0 when empty. Returns -1 when out of memory. */
int mx_rooms_ids(mx_rooms *r, char ***out, size_t *n);

typedef struct {
    char *room_id;    /* owned */
    mx_strlist users; /* owned, never empty */
} mx_direct_room;

/* A copy of the m.direct rooms, sorted by room id; free with
 * mx_direct_rooms_free. Returns -1 when out of memory. */
int mx_rooms_direct(mx_rooms *r, mx_direct_room **out, size_t *n);
void mx_direct_rooms_free(mx_direct_room *d, size_t n);

/* Reading a snapshot (no lock needed: it is the caller's). */
int64_t mx_room_power_level(const mx_room_state *s, const char *user_id);
/* The disambiguated display name of `user_id` (caller frees), NULL on ENOMEM. */
char *mx_room_member_display_name(const mx_room_state *s, const char *user_id);

#endif
