/* The per-account room state cache: applies /sync responses and full state
 * lists to per-room records, and hands out snapshots (see rooms.h).
 *
 * Validation policy: an event that is not an object, has no string type or
 * state_key, or has no object content is skipped. Inside a usable event each
 * value is checked on its own; a bad one reads as absent, the rest applies.
 * Only running out of memory fails a call. */
#define _POSIX_C_SOURCE 200809L

#include "matrix/rooms.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"

/* Power level maps are kept whole up to this many entries. */
#define MAX_LEVELS (16u * MX_ROOMS_MAX_LIST)
/* How many members name a room without a name (the spec says 5). */
#define MAX_HEROES 5

struct mx_rooms {
    atomic_size_t refs;
    pthread_mutex_t lock; /* guards everything below */
    mx_strmap rooms;      /* room id -> mx_room_state * (owned) */
    mx_strmap direct;     /* room id -> mx_direct_room * (owned), from m.direct */
    char *user_id;        /* owned; the account's own user id, may be NULL */
    uint64_t seq;         /* /sync bodies applied so far */
};

typedef struct {
    size_t n;    /* joined or invited members showing this name */
    char name[]; /* the map key */
} name_count;

struct mx_members {
    atomic_size_t refs;
    mx_strmap by_user; /* user id -> mx_member * (one reference each) */
    mx_strmap names;   /* display name -> name_count * (owned) */
    size_t joined, invited;
};

/* ---- strings and lists --------------------------------------------------- */

/* An owned copy of s[0..n), NUL-terminated; NULL on ENOMEM. */
static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Copies `s` (may be NULL) into *dst; returns -1 only on ENOMEM. */
static int dup_into(char **dst, const char *s) {
    *dst = NULL;
    if (!s) return 0;
    *dst = dup_n(s, strlen(s));
    return *dst ? 0 : -1;
}

/* Replaces *field with a copy of `s` (NULL clears); -1 on ENOMEM, unchanged. */
static int set_str(char **field, const char *s) {
    char *copy;
    if (dup_into(&copy, s) < 0) return -1;
    free(*field);
    *field = copy;
    return 0;
}

static int bounded(const char *s, size_t max) { return s && strnlen(s, max + 1) <= max; }

/* A Matrix identifier with the given sigil ('@', '!', '#', '$'). */
static int valid_id(const char *s, char sigil) {
    return s && s[0] == sigil && s[1] != '\0' && bounded(s, MX_ROOMS_MAX_ID);
}

static int valid_user_id(const char *s) { return valid_id(s, '@'); }
static int valid_room_id(const char *s) { return valid_id(s, '!'); }
static int valid_event_id(const char *s) { return valid_id(s, '$'); }
static int valid_alias(const char *s) { return valid_id(s, '#'); }
static int valid_mxc(const char *s) {
    return bounded(s, MX_ROOMS_MAX_STR) && strncmp(s, "mxc://", 6) == 0;
}

/* `key` of `obj` when it is a string of at most `max` bytes, else NULL. */
static const char *str_field(const cJSON *obj, const char *key, size_t max) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || !bounded(v->valuestring, max)) return NULL;
    return v->valuestring;
}

static const cJSON *obj_field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsObject(v) ? v : NULL;
}

static const cJSON *array_field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsArray(v) ? v : NULL;
}

static void strlist_clear(mx_strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

/* Linear: for short lists only (creators, a snapshot's lookups). Building
 * lists from hostile input uses strset below. */
static int strlist_has(const mx_strlist *l, const char *s) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], s) == 0) return 1;
    return 0;
}

/* Appends a copy of `s`, growing geometrically; -1 on ENOMEM (the list is
 * unchanged). */
static int strlist_push(mx_strlist *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        char **items = realloc(l->items, cap * sizeof *items);
        if (!items) return -1;
        l->items = items;
        l->cap = cap;
    }
    if (!(l->items[l->n] = dup_n(s, strlen(s)))) return -1;
    l->n++;
    return 0;
}

static int strlist_copy(mx_strlist *dst, const mx_strlist *src) {
    dst->items = NULL;
    dst->n = dst->cap = 0;
    if (!src->n) return 0;
    if (!(dst->items = calloc(src->n, sizeof *dst->items))) return -1;
    for (size_t i = 0; i < src->n; i++) {
        if (!(dst->items[i] = dup_n(src->items[i], strlen(src->items[i])))) {
            dst->n = i;
            strlist_clear(dst);
            return -1;
        }
    }
    dst->n = dst->cap = src->n;
    return 0;
}

/* A list being built without duplicates: the hash set makes each check
 * O(1), so a hostile 4096-item list costs 4096 lookups, not 8 million
 * strcmp calls on the engine thread every account shares. */
typedef struct {
    mx_strlist list;
    mx_strmap seen; /* item -> item; keys are the list's own copies */
} strset;

static void strset_init(strset *s) {
    s->list = (mx_strlist){NULL, 0, 0};
    mx_strmap_init(&s->seen);
}

/* Adds a copy of `v` unless present: 1 added, 0 present, -1 ENOMEM. */
static int strset_add(strset *s, const char *v) {
    if (mx_strmap_get(&s->seen, v)) return 0;
    if (strlist_push(&s->list, v) < 0) return -1;
    char *copy = s->list.items[s->list.n - 1];
    if (mx_strmap_put(&s->seen, copy, copy, NULL) < 0) {
        free(copy);
        s->list.n--;
        return -1;
    }
    return 1;
}

/* Moves the list out (into *out, replacing it) and frees the set. */
static void strset_finish(strset *s, mx_strlist *out) {
    mx_strmap_release(&s->seen);
    strlist_clear(out);
    *out = s->list;
}

static void strset_free(strset *s) {
    mx_strmap_release(&s->seen);
    strlist_clear(&s->list);
}

/* The distinct strings of a JSON array that pass `valid`, in order, at most
 * MX_ROOMS_MAX_LIST of them. Replaces *out; -1 on ENOMEM (unchanged). */
static int strlist_from_json(mx_strlist *out, const cJSON *array, int (*valid)(const char *)) {
    strset set;
    strset_init(&set);
    const cJSON *v;
    cJSON_ArrayForEach(v, array) {
        if (set.list.n >= MX_ROOMS_MAX_LIST) break;
        if (!cJSON_IsString(v) || !valid(v->valuestring)) continue;
        if (strset_add(&set, v->valuestring) < 0) {
            strset_free(&set);
            return -1;
        }
    }
    strset_finish(&set, out);
    return 0;
}

/* Sorted-set operations (space children and parents). */
static size_t sorted_pos(const mx_strlist *l, const char *s, int *found) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->items[mid], s);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int sorted_add(mx_strlist *l, const char *s) {
    int found;
    size_t pos = sorted_pos(l, s, &found);
    if (found) return 0;
    if (l->n >= MX_ROOMS_MAX_LIST) return 0; /* a hostile flood; keep what we have */
    char *copy = dup_n(s, strlen(s));
    if (!copy) return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        char **items = realloc(l->items, cap * sizeof *items);
        if (!items) {
            free(copy);
            return -1;
        }
        l->items = items;
        l->cap = cap;
    }
    memmove(l->items + pos + 1, l->items + pos, (l->n - pos) * sizeof *l->items);
    l->items[pos] = copy;
    l->n++;
    return 0;
}

static void sorted_remove(mx_strlist *l, const char *s) {
    int found;
    size_t pos = sorted_pos(l, s, &found);
    if (!found) return;
    free(l->items[pos]);
    memmove(l->items + pos, l->items + pos + 1, (l->n - pos - 1) * sizeof *l->items);
    l->n--;
}

/* A growable string for composed names; `failed` records ENOMEM. */
typedef struct {
    char *s; /* owned */
    size_t len, cap;
    int failed;
} strbuf;

static void sb_add(strbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

/* ---- members ------------------------------------------------------------- */

void mx_member_incref(const mx_member *m) {
    atomic_fetch_add(&((mx_member *)m)->refs, 1);
}

void mx_member_decref(const mx_member *m) {
    if (m && atomic_fetch_sub(&((mx_member *)m)->refs, 1) == 1) free((mx_member *)m);
}

/* One allocation holding the struct and its strings; refcount 1. */
static mx_member *member_new(const char *user_id, mx_member_state ms, const char *name,
                             const char *avatar, uint64_t seq) {
    size_t lu = strlen(user_id) + 1;
    size_t ln = name ? strlen(name) + 1 : 0;
    size_t la = avatar ? strlen(avatar) + 1 : 0;
    mx_member *m = malloc(sizeof *m + lu + ln + la);
    if (!m) return NULL;
    char *p = (char *)(m + 1);
    atomic_init(&m->refs, 1);
    m->seq = seq;
    m->membership = ms;
    m->user_id = memcpy(p, user_id, lu);
    m->display_name = name ? memcpy(p + lu, name, ln) : NULL;
    m->avatar_url = avatar ? memcpy(p + lu + ln, avatar, la) : NULL;
    return m;
}

static int is_active(const mx_member *m) {
    return m->membership == MX_MEMBER_JOIN || m->membership == MX_MEMBER_INVITE;
}

static mx_members *members_new(void) {
    mx_members *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    atomic_init(&t->refs, 1);
    mx_strmap_init(&t->by_user);
    mx_strmap_init(&t->names);
    return t;
}

static void members_decref(mx_members *t) {
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
    for (size_t i = 0; i < t->by_user.cap; i++)
        if (t->by_user.slots[i].key) mx_member_decref(t->by_user.slots[i].value);
    for (size_t i = 0; i < t->names.cap; i++)
        if (t->names.slots[i].key) free(t->names.slots[i].value);
    mx_strmap_release(&t->by_user);
    mx_strmap_release(&t->names);
    free(t);
}

size_t mx_members_len(const mx_members *t) { return t->by_user.len; }

const mx_member *mx_members_get(const mx_members *t, const char *user_id) {
    return mx_strmap_get(&t->by_user, user_id);
}

const mx_member *mx_members_next(const mx_members *t, size_t *pos) {
    while (*pos < t->by_user.cap) {
        const mx_strmap_slot *slot = &t->by_user.slots[(*pos)++];
        if (slot->key) return slot->value;
    }
    return NULL;
}

static size_t name_users(const mx_members *t, const char *name) {
    const name_count *nc = mx_strmap_get(&t->names, name);
    return nc ? nc->n : 0;
}

static int name_inc(mx_members *t, const char *name) {
    name_count *nc = mx_strmap_get(&t->names, name);
    if (nc) {
        nc->n++;
        return 0;
    }
    size_t len = strlen(name) + 1;
    if (!(nc = malloc(sizeof *nc + len))) return -1;
    nc->n = 1;
    memcpy(nc->name, name, len);
    if (mx_strmap_put(&t->names, nc->name, nc, NULL) < 0) {
        free(nc);
        return -1;
    }
    return 0;
}

static void name_dec(mx_members *t, const char *name) {
    name_count *nc = mx_strmap_get(&t->names, name);
    if (nc && --nc->n == 0) free(mx_strmap_remove(&t->names, name));
}

static void count_member(mx_members *t, const mx_member *m, int sign) {
    size_t *counter = m->membership == MX_MEMBER_JOIN     ? &t->joined
                      : m->membership == MX_MEMBER_INVITE ? &t->invited
                                                          : NULL;
    if (counter) *counter = sign > 0 ? *counter + 1 : *counter - 1;
    if (is_active(m) && m->display_name && sign < 0) name_dec(t, m->display_name);
}

/* Inserts or replaces a member; the reference to `m` moves into the table
 * (also on failure). -1 on ENOMEM. */
static int members_put(mx_members *t, mx_member *m) {
    if (is_active(m) && m->display_name && name_inc(t, m->display_name) < 0) {
        mx_member_decref(m);
        return -1;
    }
    void *old;
    if (mx_strmap_put(&t->by_user, m->user_id, m, &old) < 0) {
        if (is_active(m) && m->display_name) name_dec(t, m->display_name);
        mx_member_decref(m);
        return -1;
    }
    count_member(t, m, +1);
    if (old) {
        count_member(t, old, -1);
        mx_member_decref(old);
    }
    return 0;
}

/* A private copy of `src` sharing its (immutable) members; NULL on ENOMEM. */
static mx_members *members_clone(const mx_members *src) {
    mx_members *t = members_new();
    if (!t) return NULL;
    if (mx_strmap_reserve(&t->by_user, src->by_user.len) < 0 ||
        mx_strmap_reserve(&t->names, src->names.len) < 0)
        goto fail;
    for (size_t i = 0; i < src->by_user.cap; i++) {
        const mx_strmap_slot *s = &src->by_user.slots[i];
        if (!s->key) continue;
        mx_member_incref(s->value);
        /* Cannot fail: the map was reserved large enough. */
        mx_strmap_put(&t->by_user, s->key, s->value, NULL);
    }
    for (size_t i = 0; i < src->names.cap; i++) {
        const mx_strmap_slot *s = &src->names.slots[i];
        if (!s->key) continue;
        const name_count *from = s->value;
        size_t len = strlen(from->name) + 1;
        name_count *nc = malloc(sizeof *nc + len);
        if (!nc) goto fail;
        nc->n = from->n;
        memcpy(nc->name, from->name, len);
        mx_strmap_put(&t->names, nc->name, nc, NULL);
    }
    t->joined = src->joined;
    t->invited = src->invited;
    return t;
fail:
    members_decref(t);
    return NULL;
}

/* The room's member table, cloned first if a snapshot still shares it. */
static mx_members *members_for_write(mx_room_state *r) {
    if (atomic_load(&r->members->refs) > 1) {
        mx_members *own = members_clone(r->members);
        if (!own) return NULL;
        members_decref(r->members);
        r->members = own;
    }
    return r->members;
}

/* ---- power levels -------------------------------------------------------- */

static void power_defaults(mx_power_levels *p) {
    memset(p, 0, sizeof *p);
    p->state_default = p->ban = p->kick = p->redact = p->notifications_room = 50;
}

static void levels_free(mx_level *l, size_t n) {
    for (size_t i = 0; i < n; i++) free(l[i].key);
    free(l);
}

static void power_clear(mx_power_levels *p) {
    levels_free(p->users, p->n_users);
    levels_free(p->events, p->n_events);
    power_defaults(p);
}

/* A power level: an integer within the canonical JSON range; old room
 * versions also allowed decimal strings. */
static int level_value(const cJSON *v, int64_t *out) {
    const double max = 9007199254740991.0;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d != floor(d) || fabs(d) > max) return 0;
        *out = (int64_t)d;
        return 1;
    }
    if (cJSON_IsString(v) && bounded(v->valuestring, 20)) {
        const char *s = v->valuestring;
        const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
        if (!*digits) return 0;
        for (const char *p = digits; *p; p++)
            if (*p < '0' || *p > '9') return 0;
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        /* No llabs: it is undefined for LLONG_MIN, which strtoll returns
         * for "-9223372036854775808". */
        if (errno || *end || x > (long long)max || x < -(long long)max) return 0;
        *out = x;
        return 1;
    }
    return 0;
}

static void level_field(const cJSON *content, const char *key, int64_t *out) {
    level_value(cJSON_GetObjectItemCaseSensitive(content, key), out);
}

static int level_cmp(const void *a, const void *b) {
    return strcmp(((const mx_level *)a)->key, ((const mx_level *)b)->key);
}

/* The valid entries of a {key: level} object, sorted, without duplicate
 * keys. -1 on ENOMEM. */
static int levels_from_json(const cJSON *obj, int (*valid_key)(const char *), mx_level **out,
                            size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!obj) return 0;
    size_t cap = (size_t)cJSON_GetArraySize(obj);
    if (cap > MAX_LEVELS) cap = MAX_LEVELS;
    if (!cap) return 0;
    mx_level *l = calloc(cap, sizeof *l);
    if (!l) return -1;
    size_t n = 0;
    const cJSON *v;
    /* A key given twice: the first one counts, valid or not, as for every
     * other lookup in a JSON object (cJSON_GetObjectItem finds the first). */
    mx_strmap seen;
    mx_strmap_init(&seen);
    cJSON_ArrayForEach(v, obj) {
        int64_t level;
        if (n >= cap) break;
        if (!v->string || mx_strmap_get(&seen, v->string)) continue;
        if (mx_strmap_put(&seen, v->string, (void *)v, NULL) < 0) goto nomem;
        if (!valid_key(v->string) || !level_value(v, &level)) continue;
        if (!(l[n].key = dup_n(v->string, strlen(v->string)))) goto nomem;
        l[n++].level = level;
    }
    mx_strmap_release(&seen);
    qsort(l, n, sizeof *l, level_cmp);
    *out = l;
    *n_out = n;
    return 0;
nomem:
    mx_strmap_release(&seen);
    levels_free(l, n);
    return -1;
}

static int valid_event_type(const char *s) { return s[0] != '\0' && bounded(s, MX_ROOMS_MAX_ID); }

static int apply_power_levels(mx_room_state *r, const cJSON *content) {
    mx_power_levels p;
    power_defaults(&p);
    if (levels_from_json(obj_field(content, "users"), valid_user_id, &p.users, &p.n_users) < 0)
        return -1;
    if (levels_from_json(obj_field(content, "events"), valid_event_type, &p.events,
                         &p.n_events) < 0) {
        levels_free(p.users, p.n_users);
        return -1;
    }
    p.present = 1;
    level_field(content, "users_default", &p.users_default);
    level_field(content, "events_default", &p.events_default);
    level_field(content, "state_default", &p.state_default);
    level_field(content, "ban", &p.ban);
    level_field(content, "kick", &p.kick);
    level_field(content, "redact", &p.redact);
    level_field(content, "invite", &p.invite);
    level_field(obj_field(content, "notifications"), "room", &p.notifications_room);
    power_clear(&r->power);
    r->power = p;
    return 0;
}

static int levels_copy(mx_level **dst, const mx_level *src, size_t n) {
    *dst = NULL;
    if (!n) return 0;
    mx_level *l = calloc(n, sizeof *l);
    if (!l) return -1;
    for (size_t i = 0; i < n; i++) {
        if (!(l[i].key = dup_n(src[i].key, strlen(src[i].key)))) {
            levels_free(l, i);
            return -1;
        }
        l[i].level = src[i].level;
    }
    *dst = l;
    return 0;
}

static const mx_level *levels_find(const mx_level *l, size_t n, const char *key) {
    mx_level probe = {(char *)key, 0};
    return n ? bsearch(&probe, l, n, sizeof *l, level_cmp) : NULL;
}

/* ---- room records -------------------------------------------------------- */

static mx_room_state *room_new(const char *room_id) {
    mx_room_state *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    power_defaults(&r->power);
    r->room_id = dup_n(room_id, strlen(room_id));
    r->members = members_new();
    if (!r->room_id || !r->members) {
        mx_room_state_free(r);
        return NULL;
    }
    r->dirty = 1;
    return r;
}

void mx_room_state_free(mx_room_state *r) {
    if (!r) return;
    char **strs[] = {&r->room_id,        &r->display_name,   &r->name,
                     &r->topic,          &r->avatar_url,     &r->canonical_alias,
                     &r->room_version,   &r->room_type,      &r->encryption_algorithm,
                     &r->tombstone_room, &r->tombstone_body, &r->join_rule};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) free(*strs[i]);
    mx_strlist *lists[] = {&r->alt_aliases,    &r->summary_heroes, &r->heroes,
                           &r->creators,       &r->space_children, &r->space_parents,
                           &r->pinned_events,  &r->direct_users};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) strlist_clear(lists[i]);
    power_clear(&r->power);
    members_decref(r->members);
    free(r);
}

/* A deep copy sharing only the member table; NULL on ENOMEM. */
static mx_room_state *room_copy(const mx_room_state *src) {
    mx_room_state *r = malloc(sizeof *r);
    if (!r) return NULL;
    *r = *src;
    /* Null every owned pointer first, so a failure frees only copies. */
    char **strs[] = {&r->room_id,        &r->display_name,   &r->name,
                     &r->topic,          &r->avatar_url,     &r->canonical_alias,
                     &r->room_version,   &r->room_type,      &r->encryption_algorithm,
                     &r->tombstone_room, &r->tombstone_body, &r->join_rule};
    mx_strlist *lists[] = {&r->alt_aliases,    &r->summary_heroes, &r->heroes,
                           &r->creators,       &r->space_children, &r->space_parents,
                           &r->pinned_events,  &r->direct_users};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) *strs[i] = NULL;
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) *lists[i] = (mx_strlist){NULL, 0, 0};
    r->power.users = r->power.events = NULL;
    r->power.n_users = r->power.n_events = 0;
    r->members = src->members;
    atomic_fetch_add(&r->members->refs, 1);

    const char *const src_strs[] = {
        src->room_id,        src->display_name,   src->name,
        src->topic,          src->avatar_url,     src->canonical_alias,
        src->room_version,   src->room_type,      src->encryption_algorithm,
        src->tombstone_room, src->tombstone_body, src->join_rule};
    const mx_strlist *src_lists[] = {&src->alt_aliases,    &src->summary_heroes,
                                     &src->heroes,         &src->creators,
                                     &src->space_children, &src->space_parents,
                                     &src->pinned_events,  &src->direct_users};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (dup_into(strs[i], src_strs[i]) < 0) goto fail;
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        if (strlist_copy(lists[i], src_lists[i]) < 0) goto fail;
    if (levels_copy(&r->power.users, src->power.users, src->power.n_users) < 0) goto fail;
    r->power.n_users = src->power.n_users;
    if (levels_copy(&r->power.events, src->power.events, src->power.n_events) < 0) goto fail;
    r->power.n_events = src->power.n_events;
    return r;
fail:
    mx_room_state_free(r);
    return NULL;
}

/* ---- state events -------------------------------------------------------- */

static int parse_member_state(const char *s, mx_member_state *out) {
    static const char *names[] = {"join", "invite", "leave", "ban", "knock"};
    if (!s) return 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (mx_member_state)i;
            return 1;
        }
    }
    return 0;
}

static int apply_member(mx_room_state *r, const char *user_id, const cJSON *content) {
    mx_member_state ms;
    if (!valid_user_id(user_id)) return 0;
    if (!parse_member_state(str_field(content, "membership", MX_ROOMS_MAX_ID), &ms)) return 0;
    const char *name = str_field(content, "displayname", MX_ROOMS_MAX_STR);
    if (name && !*name) name = NULL; /* an empty name is no name */
    const char *avatar = str_field(content, "avatar_url", MX_ROOMS_MAX_STR);
    if (!valid_mxc(avatar)) avatar = NULL;
    mx_members *t = members_for_write(r);
    if (!t) return -1;
    mx_member *m = member_new(user_id, ms, name, avatar, r->applying_seq);
    if (!m) return -1;
    return members_put(t, m);
}

/* A non-empty `via` list of strings marks a live space child or parent. */
static int has_via(const cJSON *content) {
    const cJSON *v;
    cJSON_ArrayForEach(v, array_field(content, "via")) {
        if (cJSON_IsString(v) && v->valuestring[0]) return 1;
    }
    return 0;
}

/* Leading decimal room version, or -1 for a non-numeric (experimental) one. */
static long numeric_version(const char *v) {
    if (!v[0] || strlen(v) > 6) return -1;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    return strtol(v, NULL, 10);
}

/* The creators, per room version: `creator` up to v10, the sender from v11,
 * the sender and `additional_creators` from v12 (which outrank everyone). */
static int apply_create(mx_room_state *r, const cJSON *ev, const cJSON *content) {
    const char *version = str_field(content, "room_version", MX_ROOMS_MAX_ID);
    if (!version || !*version) version = "1";
    const char *type = str_field(content, "type", MX_ROOMS_MAX_ID);
    const char *sender = str_field(ev, "sender", MX_ROOMS_MAX_ID);
    if (!valid_user_id(sender)) sender = NULL;
    const char *creator = str_field(content, "creator", MX_ROOMS_MAX_ID);
    if (!valid_user_id(creator)) creator = NULL;
    long v = numeric_version(version);

    strset creators;
    strset_init(&creators);
    const char *first = (v >= 1 && v <= 10) || v < 0 ? (creator ? creator : sender) : sender;
    if (first && strset_add(&creators, first) < 0) goto nomem;
    if (v >= 12) {
        const cJSON *c;
        cJSON_ArrayForEach(c, array_field(content, "additional_creators")) {
            if (creators.list.n >= MX_ROOMS_MAX_LIST) break;
            if (cJSON_IsString(c) && valid_user_id(c->valuestring) &&
                strset_add(&creators, c->valuestring) < 0)
                goto nomem;
        }
    }
    char *version_copy = dup_n(version, strlen(version));
    if (!version_copy) goto nomem;
    if (set_str(&r->room_type, type) < 0) {
        free(version_copy);
        goto nomem;
    }
    free(r->room_version);
    r->room_version = version_copy;
    strset_finish(&creators, &r->creators);
    r->creators_infinite = v >= 12;
    r->has_create = 1;
    return 0;
nomem:
    strset_free(&creators);
    return -1;
}

static int apply_tombstone(mx_room_state *r, const cJSON *content) {
    const char *room = str_field(content, "replacement_room", MX_ROOMS_MAX_ID);
    if (!valid_room_id(room)) room = NULL;
    const char *body = room ? str_field(content, "body", MX_ROOMS_MAX_STR) : NULL;
    if (set_str(&r->tombstone_room, room) < 0) return -1;
    return set_str(&r->tombstone_body, room ? (body ? body : "") : NULL);
}

/* Applies one state event (any origin: state, timeline, stripped state). */
static int apply_event(mx_room_state *r, const cJSON *ev) {
    if (!cJSON_IsObject(ev)) return 0;
    const char *type = str_field(ev, "type", MX_ROOMS_MAX_ID);
    const char *key = str_field(ev, "state_key", MX_ROOMS_MAX_ID);
    const cJSON *content = obj_field(ev, "content");
    if (!type || !key || !content) return 0;
    r->dirty = 1;

    if (strcmp(type, "m.room.member") == 0) return apply_member(r, key, content);
    if (strcmp(type, "m.space.child") == 0 || strcmp(type, "m.space.parent") == 0) {
        if (!valid_room_id(key)) return 0;
        mx_strlist *set = type[8] == 'c' ? &r->space_children : &r->space_parents;
        if (has_via(content)) return sorted_add(set, key);
        sorted_remove(set, key);
        return 0;
    }
    if (key[0] != '\0') return 0; /* the rest are room-wide: state_key "" */

    if (strcmp(type, "m.room.name") == 0) {
        const char *name = str_field(content, "name", MX_ROOMS_MAX_STR);
        return set_str(&r->name, name && *name ? name : NULL);
    }
    if (strcmp(type, "m.room.topic") == 0)
        return set_str(&r->topic, str_field(content, "topic", MX_ROOMS_MAX_STR));
    if (strcmp(type, "m.room.avatar") == 0) {
        const char *url = str_field(content, "url", MX_ROOMS_MAX_STR);
        return set_str(&r->avatar_url, valid_mxc(url) ? url : NULL);
    }
    if (strcmp(type, "m.room.canonical_alias") == 0) {
        const char *alias = str_field(content, "alias", MX_ROOMS_MAX_ID);
        if (strlist_from_json(&r->alt_aliases, array_field(content, "alt_aliases"),
                              valid_alias) < 0)
            return -1;
        return set_str(&r->canonical_alias, valid_alias(alias) ? alias : NULL);
    }
    if (strcmp(type, "m.room.power_levels") == 0) return apply_power_levels(r, content);
    if (strcmp(type, "m.room.create") == 0) return apply_create(r, ev, content);
    if (strcmp(type, "m.room.encryption") == 0) {
        /* Encryption cannot be turned off: even a garbled event keeps the
         * room encrypted, so the gateway never sends clear text into it. */
        r->encrypted = 1;
        const char *alg = str_field(content, "algorithm", MX_ROOMS_MAX_ID);
        return alg && *alg ? set_str(&r->encryption_algorithm, alg) : 0;
    }
    if (strcmp(type, "m.room.tombstone") == 0) return apply_tombstone(r, content);
    if (strcmp(type, "m.room.join_rules") == 0)
        return set_str(&r->join_rule, str_field(content, "join_rule", MX_ROOMS_MAX_ID));
    if (strcmp(type, "m.room.pinned_events") == 0)
        return strlist_from_json(&r->pinned_events, array_field(content, "pinned"),
                                 valid_event_id);
    return 0;
}

/* Applies the events of a JSON array in order. Events without a string
 * state_key are passed over, so a timeline contributes its state events. */
static int apply_events(mx_room_state *r, const cJSON *array) {
    const cJSON *ev;
    cJSON_ArrayForEach(ev, array) {
        if (apply_event(r, ev) < 0) return -1;
    }
    return 0;
}

static const cJSON *events_of(const cJSON *room, const char *section) {
    return array_field(obj_field(room, section), "events");
}

/* ---- derived fields: heroes, counts, display name ------------------------ */

static char *member_display_name(const mx_members *t, const char *user_id) {
    const mx_member *m = mx_members_get(t, user_id);
    if (!m || !m->display_name) return dup_n(user_id, strlen(user_id));
    size_t others = name_users(t, m->display_name) - (is_active(m) ? 1 : 0);
    if (!others) return dup_n(m->display_name, strlen(m->display_name));
    strbuf b = {0};
    sb_add(&b, m->display_name);
    sb_add(&b, " (");
    sb_add(&b, user_id);
    sb_add(&b, ")");
    if (b.failed) free(b.s);
    return b.failed ? NULL : b.s;
}

/* Without a summary: the first MAX_HEROES other members by user id, joined
 * or invited ones, else (an empty room) those who left or were banned. */
static int compute_heroes(const mx_members *t, const char *own, mx_strlist *out) {
    const char *best[MAX_HEROES];
    size_t n = 0;
    for (int pass = 0; pass < 2 && n == 0; pass++) {
        size_t pos = 0;
        const mx_member *m;
        while ((m = mx_members_next(t, &pos))) {
            if (is_active(m) != (pass == 0) || m->membership == MX_MEMBER_KNOCK) continue;
            if (own && strcmp(m->user_id, own) == 0) continue;
            size_t i = n;
            while (i > 0 && strcmp(best[i - 1], m->user_id) > 0) i--;
            if (i >= MAX_HEROES) continue;
            if (n < MAX_HEROES) n++;
            memmove(best + i + 1, best + i, (n - 1 - i) * sizeof *best);
            best[i] = m->user_id;
        }
    }
    strlist_clear(out);
    for (size_t i = 0; i < n; i++)
        if (strlist_push(out, best[i]) < 0) return -1;
    return 0;
}

/* "A", "A and B", "A, B and C", "A, B and 3 others". */
static void join_names(strbuf *b, char **names, size_t n, int64_t others) {
    for (size_t i = 0; i < n; i++) {
        if (i > 0) sb_add(b, i + 1 == n && others <= 0 ? " and " : ", ");
        sb_add(b, names[i]);
    }
    if (others > 0) {
        char num[32];
        snprintf(num, sizeof num, " and %lld other%s", (long long)others,
                 others == 1 ? "" : "s");
        sb_add(b, num);
    }
}

/* The spec's room name algorithm: the name, else the canonical alias, else
 * composed from the heroes and member counts. */
static char *compose_display_name(const mx_room_state *r) {
    if (r->name) return dup_n(r->name, strlen(r->name));
    if (r->canonical_alias) return dup_n(r->canonical_alias, strlen(r->canonical_alias));
    char **names = r->heroes.n ? calloc(r->heroes.n, sizeof *names) : NULL;
    if (r->heroes.n && !names) return NULL;
    strbuf b = {0};
    for (size_t i = 0; i < r->heroes.n; i++)
        if (!(names[i] = member_display_name(r->members, r->heroes.items[i]))) b.failed = 1;
    int64_t total = r->joined_count + r->invited_count;
    int64_t others = total - 1 - (int64_t)r->heroes.n;
    if (!b.failed) {
        if (r->heroes.n == 0) {
            sb_add(&b, "Empty Room");
        } else if (total <= 1) {
            sb_add(&b, "Empty Room (was ");
            join_names(&b, names, r->heroes.n, 0);
            sb_add(&b, ")");
        } else {
            join_names(&b, names, r->heroes.n, others);
        }
    }
    for (size_t i = 0; i < r->heroes.n; i++) free(names[i]);
    free(names);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static int recompute(mx_room_state *r, const char *own_user_id) {
    r->joined_count = r->has_summary_joined ? r->summary_joined : (int64_t)r->members->joined;
    r->invited_count =
        r->has_summary_invited ? r->summary_invited : (int64_t)r->members->invited;
    strlist_clear(&r->heroes);
    int rc = r->has_summary_heroes ? strlist_copy(&r->heroes, &r->summary_heroes)
                                   : compute_heroes(r->members, own_user_id, &r->heroes);
    if (rc < 0) return -1;
    char *name = compose_display_name(r);
    if (!name) return -1;
    free(r->display_name);
    r->display_name = name;
    r->dirty = 0;
    return 0;
}

static int recompute_dirty(mx_rooms *c) {
    int rc = 0;
    for (size_t i = 0; i < c->rooms.cap; i++) {
        mx_room_state *r = c->rooms.slots[i].value;
        if (c->rooms.slots[i].key && r->dirty && recompute(r, c->user_id) < 0) rc = -1;
    }
    return rc;
}

/* ---- /sync --------------------------------------------------------------- */

static void count_field(const cJSON *summary, const char *key, int *has, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(summary, key);
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e12 &&
        v->valuedouble == floor(v->valuedouble)) {
        *has = 1;
        *out = (int64_t)v->valuedouble;
    }
}

static int apply_summary(mx_room_state *r, const cJSON *summary) {
    if (!summary) return 0;
    count_field(summary, "m.joined_member_count", &r->has_summary_joined, &r->summary_joined);
    count_field(summary, "m.invited_member_count", &r->has_summary_invited,
                &r->summary_invited);
    const cJSON *heroes = array_field(summary, "m.heroes");
    if (heroes) {
        if (strlist_from_json(&r->summary_heroes, heroes, valid_user_id) < 0) return -1;
        r->has_summary_heroes = 1;
    }
    return 0;
}

static mx_room_state *room_for(mx_rooms *c, const char *room_id) {
    mx_room_state *r = mx_strmap_get(&c->rooms, room_id);
    if (r) return r;
    if (!(r = room_new(room_id))) return NULL;
    if (mx_strmap_put(&c->rooms, r->room_id, r, NULL) < 0) {
        mx_room_state_free(r);
        return NULL;
    }
    return r;
}

/* One section of rooms (join, invite, knock or leave). */
static int apply_section(mx_rooms *c, const cJSON *section, mx_own_membership own) {
    const cJSON *room;
    cJSON_ArrayForEach(room, section) {
        if (!cJSON_IsObject(room) || !valid_room_id(room->string)) continue;
        mx_room_state *r = room_for(c, room->string);
        if (!r) return -1;
        r->membership = own;
        r->dirty = 1;
        r->synced_seq = r->applying_seq = c->seq;
        if (apply_summary(r, obj_field(room, "summary")) < 0) return -1;
        int rc;
        if (own == MX_OWN_INVITE) {
            rc = apply_events(r, events_of(room, "invite_state"));
        } else if (own == MX_OWN_KNOCK) {
            rc = apply_events(r, events_of(room, "knock_state"));
        } else if (obj_field(room, "state_after")) {
            /* state_after is the whole delta: the timeline must not apply. */
            rc = apply_events(r, events_of(room, "state_after"));
        } else {
            rc = apply_events(r, events_of(room, "state"));
            if (rc == 0) rc = apply_events(r, events_of(room, "timeline"));
        }
        if (rc < 0) return -1;
    }
    return 0;
}

static void direct_free(mx_direct_room *d) {
    if (!d) return;
    free(d->room_id);
    strlist_clear(&d->users);
    free(d);
}

static void direct_map_clear(mx_strmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) direct_free(m->slots[i].value);
    mx_strmap_release(m);
}

/* m.direct content: {user id: [room id, ...]}; replaces the whole map. */
static int apply_direct(mx_rooms *c, const cJSON *content) {
    mx_strmap map, users_seen;
    mx_strmap_init(&map);
    mx_strmap_init(&users_seen);
    const cJSON *user;
    cJSON_ArrayForEach(user, content) {
        if (!valid_user_id(user->string) || !cJSON_IsArray(user)) continue;
        /* A user key repeated in the JSON: the first one counts, as in every
         * other lookup of this object. */
        if (mx_strmap_get(&users_seen, user->string)) continue;
        if (mx_strmap_put(&users_seen, user->string, (void *)user, NULL) < 0) goto nomem;
        const cJSON *room;
        cJSON_ArrayForEach(room, user) {
            if (!cJSON_IsString(room) || !valid_room_id(room->valuestring)) continue;
            mx_direct_room *d = mx_strmap_get(&map, room->valuestring);
            if (!d) {
                if (map.len >= MX_ROOMS_MAX_LIST * 16) continue;
                if (!(d = calloc(1, sizeof *d))) goto nomem;
                if (!(d->room_id = dup_n(room->valuestring, strlen(room->valuestring))) ||
                    mx_strmap_put(&map, d->room_id, d, NULL) < 0) {
                    direct_free(d);
                    goto nomem;
                }
            }
            /* This user's pushes are the last ones of any room's list: a
             * room listed twice for the user is the list's last item. */
            if (d->users.n < MX_ROOMS_MAX_LIST &&
                (d->users.n == 0 || strcmp(d->users.items[d->users.n - 1], user->string) != 0) &&
                strlist_push(&d->users, user->string) < 0)
                goto nomem;
        }
    }
    mx_strmap_release(&users_seen);
    direct_map_clear(&c->direct);
    c->direct = map;
    return 0;
nomem:
    mx_strmap_release(&users_seen);
    direct_map_clear(&map);
    return -1;
}

static int apply_account_data(mx_rooms *c, const cJSON *events) {
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events) {
        if (!cJSON_IsObject(ev)) continue;
        const char *type = str_field(ev, "type", MX_ROOMS_MAX_ID);
        const cJSON *content = obj_field(ev, "content");
        if (type && content && strcmp(type, "m.direct") == 0 && apply_direct(c, content) < 0)
            return -1;
    }
    return 0;
}

int mx_rooms_apply_sync(mx_rooms *c, const cJSON *root) {
    if (!cJSON_IsObject(root)) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    c->seq++;
    const cJSON *rooms = obj_field(root, "rooms");
    int rc = 0;
    /* leave first: a room left and re-joined in one batch ends up joined. */
    if (rooms) {
        static const struct {
            const char *key;
            mx_own_membership own;
        } sections[] = {{"leave", MX_OWN_LEAVE},
                        {"join", MX_OWN_JOIN},
                        {"invite", MX_OWN_INVITE},
                        {"knock", MX_OWN_KNOCK}};
        for (size_t i = 0; i < sizeof sections / sizeof *sections && rc == 0; i++)
            rc = apply_section(c, obj_field(rooms, sections[i].key), sections[i].own);
    }
    if (rc == 0) rc = apply_account_data(c, events_of(root, "account_data"));
    if (recompute_dirty(c) < 0) rc = -1;
    pthread_mutex_unlock(&c->lock);
    if (rc < 0) errno = ENOMEM;
    return rc;
}

uint64_t mx_rooms_seq(mx_rooms *c) {
    pthread_mutex_lock(&c->lock);
    uint64_t seq = c->seq;
    pthread_mutex_unlock(&c->lock);
    return seq;
}

/* Brings the members of a state answer into `old`, a room that /sync
 * changed after the answer was asked for: a member /sync set since then is
 * newer than the answer and stays. -1 on ENOMEM. */
static int merge_members(mx_room_state *old, const mx_members *answer, uint64_t asked_at) {
    size_t pos = 0;
    const mx_member *m;
    while ((m = mx_members_next(answer, &pos))) {
        const mx_member *mine = mx_members_get(old->members, m->user_id);
        if (mine && mine->seq > asked_at) continue;
        mx_members *t = members_for_write(old);
        if (!t) return -1;
        mx_member_incref(m);
        if (members_put(t, (mx_member *)m) < 0) return -1;
    }
    old->dirty = 1;
    return 0;
}

int mx_rooms_apply_state(mx_rooms *c, const char *room_id, const cJSON *events,
                         uint64_t asked_at) {
    if (!valid_room_id(room_id) || !cJSON_IsArray(events)) {
        errno = EINVAL;
        return -1;
    }
    mx_room_state *fresh = room_new(room_id);
    if (!fresh) goto nomem;
    pthread_mutex_lock(&c->lock);
    mx_room_state *old = mx_strmap_get(&c->rooms, room_id);
    if (apply_events(fresh, events) < 0) goto nomem_locked;
    if (old && old->synced_seq > asked_at) {
        int rc = merge_members(old, fresh->members, asked_at);
        if (rc == 0) rc = recompute(old, c->user_id);
        pthread_mutex_unlock(&c->lock);
        mx_room_state_free(fresh);
        if (rc < 0) errno = ENOMEM;
        return rc;
    }
    if (old) {
        fresh->membership = old->membership;
        fresh->synced_seq = old->synced_seq;
    } else {
        const mx_member *me = c->user_id ? mx_members_get(fresh->members, c->user_id) : NULL;
        mx_member_state ms = me ? me->membership : MX_MEMBER_JOIN;
        fresh->membership = ms == MX_MEMBER_INVITE  ? MX_OWN_INVITE
                            : ms == MX_MEMBER_KNOCK ? MX_OWN_KNOCK
                            : ms == MX_MEMBER_JOIN  ? MX_OWN_JOIN
                                                    : MX_OWN_LEAVE;
    }
    if (recompute(fresh, c->user_id) < 0) goto nomem_locked;
    if (mx_strmap_put(&c->rooms, fresh->room_id, fresh, NULL) < 0) goto nomem_locked;
    mx_room_state_free(old);
    pthread_mutex_unlock(&c->lock);
    return 0;
nomem_locked:
    pthread_mutex_unlock(&c->lock);
nomem:
    mx_room_state_free(fresh);
    errno = ENOMEM;
    return -1;
}

/* ---- the cache ----------------------------------------------------------- */

mx_rooms *mx_rooms_new(void) {
    mx_rooms *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&c->refs, 1);
    mx_strmap_init(&c->rooms);
    mx_strmap_init(&c->direct);
    return c;
}

void mx_rooms_incref(mx_rooms *c) { atomic_fetch_add(&c->refs, 1); }

void mx_rooms_decref(mx_rooms *c) {
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    for (size_t i = 0; i < c->rooms.cap; i++)
        if (c->rooms.slots[i].key) mx_room_state_free(c->rooms.slots[i].value);
    mx_strmap_release(&c->rooms);
    direct_map_clear(&c->direct);
    free(c->user_id);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int mx_rooms_set_user_id(mx_rooms *c, const char *user_id) {
    char *copy;
    if (dup_into(&copy, user_id) < 0) {
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    free(c->user_id);
    c->user_id = copy;
    for (size_t i = 0; i < c->rooms.cap; i++)
        if (c->rooms.slots[i].key) ((mx_room_state *)c->rooms.slots[i].value)->dirty = 1;
    int rc = recompute_dirty(c);
    pthread_mutex_unlock(&c->lock);
    if (rc < 0) errno = ENOMEM;
    return rc;
}

char *mx_rooms_user_id(mx_rooms *c, int *err) {
    pthread_mutex_lock(&c->lock);
    char *copy;
    *err = dup_into(&copy, c->user_id) < 0;
    pthread_mutex_unlock(&c->lock);
    return copy;
}

mx_room_state *mx_rooms_snapshot(mx_rooms *c, const char *room_id, int *err) {
    *err = 0;
    pthread_mutex_lock(&c->lock);
    mx_room_state *r = mx_strmap_get(&c->rooms, room_id);
    mx_room_state *s = NULL;
    if (r) {
        /* A room whose recomputation ran out of memory is retried here. */
        if (r->dirty) recompute(r, c->user_id);
        s = r->display_name ? room_copy(r) : NULL;
        const mx_direct_room *d = mx_strmap_get(&c->direct, room_id);
        if (s && d && strlist_copy(&s->direct_users, &d->users) < 0) {
            mx_room_state_free(s);
            s = NULL;
        }
        *err = !s;
    }
    pthread_mutex_unlock(&c->lock);
    return s;
}

char *mx_rooms_member_name(mx_rooms *c, const char *room_id, const char *user_id, int *err) {
    *err = 0;
    pthread_mutex_lock(&c->lock);
    const mx_room_state *r = mx_strmap_get(&c->rooms, room_id);
    char *name = NULL;
    if (r && mx_members_get(r->members, user_id)) {
        name = member_display_name(r->members, user_id);
        *err = !name;
    }
    pthread_mutex_unlock(&c->lock);
    return name;
}

size_t mx_rooms_len(mx_rooms *c) {
    pthread_mutex_lock(&c->lock);
    size_t n = c->rooms.len;
    pthread_mutex_unlock(&c->lock);
    return n;
}

int mx_rooms_contains(mx_rooms *c, const char *room_id) {
    pthread_mutex_lock(&c->lock);
    int found = mx_strmap_get(&c->rooms, room_id) != NULL;
    pthread_mutex_unlock(&c->lock);
    return found;
}

static int str_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mx_rooms_ids(mx_rooms *c, char ***out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&c->lock);
    size_t n = c->rooms.len, k = 0;
    char **ids = n ? calloc(n, sizeof *ids) : NULL;
    int rc = n && !ids ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < c->rooms.cap; i++) {
        if (!c->rooms.slots[i].key) continue;
        if (!(ids[k] = dup_n(c->rooms.slots[i].key, strlen(c->rooms.slots[i].key))))
            rc = -1;
        else
            k++;
    }
    pthread_mutex_unlock(&c->lock);
    if (rc < 0) {
        for (size_t i = 0; i < k; i++) free(ids[i]);
        free(ids);
        return -1;
    }
    if (k) qsort(ids, k, sizeof *ids, str_ptr_cmp); /* qsort(NULL, 0): undefined */
    *out = ids;
    *n_out = k;
    return 0;
}

void mx_direct_rooms_free(mx_direct_room *d, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(d[i].room_id);
        strlist_clear(&d[i].users);
    }
    free(d);
}

static int direct_cmp(const void *a, const void *b) {
    return strcmp(((const mx_direct_room *)a)->room_id, ((const mx_direct_room *)b)->room_id);
}

int mx_rooms_direct(mx_rooms *c, mx_direct_room **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&c->lock);
    size_t n = c->direct.len, k = 0;
    mx_direct_room *d = n ? calloc(n, sizeof *d) : NULL;
    int rc = n && !d ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < c->direct.cap; i++) {
        const mx_direct_room *src = c->direct.slots[i].value;
        if (!c->direct.slots[i].key) continue;
        if (dup_into(&d[k].room_id, src->room_id) < 0 ||
            strlist_copy(&d[k].users, &src->users) < 0) {
            free(d[k].room_id);
            rc = -1;
        } else {
            k++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (rc < 0) {
        mx_direct_rooms_free(d, k);
        return -1;
    }
    if (k) qsort(d, k, sizeof *d, direct_cmp);
    *out = d;
    *n_out = k;
    return 0;
}

/* ---- reading snapshots --------------------------------------------------- */

int64_t mx_room_power_level(const mx_room_state *s, const char *user_id) {
    int creator = s->creators.n && strlist_has(&s->creators, user_id);
    if (creator && s->creators_infinite) return MX_CREATOR_POWER_LEVEL;
    if (s->power.present) {
        const mx_level *l = levels_find(s->power.users, s->power.n_users, user_id);
        return l ? l->level : s->power.users_default;
    }
    /* No power levels event: the creator has 100, everyone else 0. */
    return creator ? 100 : 0;
}

char *mx_room_member_display_name(const mx_room_state *s, const char *user_id) {
    return member_display_name(s->members, user_id);
}
