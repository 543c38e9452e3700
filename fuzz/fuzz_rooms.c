/* libFuzzer harness for the room state cache (rooms.c): a sequence of /sync
 * bodies and room-state answers applied in any order, as the engine applies
 * them (a state answer may come back after syncs newer than it), then every
 * room read back the way the Python views read it.
 *
 * Input: chunks separated by a NUL byte. A chunk's first byte says what it
 * is; the rest is JSON:
 *   'S' a /sync body, parsed into an arena and decoded as the engine does,
 *       then applied to the cache;
 *   'T' then one byte r, then one byte a: the state list of room
 *       !r<r % 4>:x, asked for `a % 4` syncs ago;
 *   'U' the account's own user id (no JSON: the bytes are the id).
 * Other chunks are skipped. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "matrix/decode.h"
#include "util/jsonparse.h"
#include "matrix/rooms.h"

static volatile size_t sink;

static void touch(const char *s) {
    if (s) sink += strlen(s);
}

static void touch_list(const mx_strlist *l) {
    for (size_t i = 0; i < l->n; i++) touch(l->items[i]);
}

static void apply_sync(mx_rooms *c, const char *data, size_t len) {
    mx_batch *b = NULL;
    const char *reason;
    if (mx_decode_sync_body(data, len, &b, &reason) != 0) return;
    mx_rooms_apply_sync(c, b->root);
    mx_batch_free(b);
}

static void apply_state(mx_rooms *c, const char *data, size_t len) {
    if (len < 2) return;
    char room_id[8] = "!r0:x";
    room_id[2] = (char)('0' + (unsigned char)data[0] % 4);
    uint64_t now = mx_rooms_seq(c), back = (unsigned char)data[1] % 4;
    cJSON *root = mx_json_parse(data + 2, len - 2);
    if (!root) return;
    mx_rooms_apply_state(c, room_id, root, now >= back ? now - back : 0);
    cJSON_Delete(root);
}

static void set_user(mx_rooms *c, const char *data, size_t len) {
    char *id = malloc(len + 1);
    if (!id) return;
    memcpy(id, data, len);
    id[len] = '\0';
    mx_rooms_set_user_id(c, id);
    free(id);
}

static void read_back(mx_rooms *c) {
    char **ids;
    size_t n;
    if (mx_rooms_ids(c, &ids, &n) != 0) return;
    for (size_t i = 0; i < n; i++) {
        int err;
        mx_room_state *s = mx_rooms_snapshot(c, ids[i], &err);
        if (s) {
            touch(s->display_name), touch(s->name), touch(s->topic), touch(s->avatar_url);
            touch(s->canonical_alias), touch(s->room_version), touch(s->room_type);
            touch(s->join_rule), touch(s->tombstone_room), touch(s->tombstone_body);
            touch_list(&s->alt_aliases), touch_list(&s->heroes), touch_list(&s->creators);
            touch_list(&s->space_children), touch_list(&s->space_parents);
            touch_list(&s->pinned_events), touch_list(&s->direct_users);
            sink += (size_t)(s->joined_count + s->invited_count);
            size_t pos = 0;
            const mx_member *m;
            int budget = 64; /* display names scan the table: a few suffice */
            while ((m = mx_members_next(s->members, &pos))) {
                touch(m->display_name), touch(m->avatar_url);
                sink += (size_t)mx_room_power_level(s, m->user_id);
                if (budget-- > 0) {
                    char *name = mx_room_member_display_name(s, m->user_id);
                    touch(name);
                    free(name);
                    char *same = mx_rooms_member_name(c, ids[i], m->user_id, &err);
                    touch(same);
                    free(same);
                }
            }
            for (size_t k = 0; k < s->power.n_users; k++) touch(s->power.users[k].key);
            for (size_t k = 0; k < s->power.n_events; k++) touch(s->power.events[k].key);
            mx_room_state_free(s);
        }
        free(ids[i]);
    }
    free(ids);
    mx_direct_room *d;
    if (mx_rooms_direct(c, &d, &n) == 0) {
        for (size_t i = 0; i < n; i++) touch(d[i].room_id), touch_list(&d[i].users);
        mx_direct_rooms_free(d, n);
    }
    sink += mx_rooms_len(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mx_rooms *c = mx_rooms_new();
    if (!c) return 0;
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        const char *stop = nul ? nul : end;
        size_t len = (size_t)(stop - p);
        if (len > 0) {
            switch (p[0]) {
            case 'S':
                apply_sync(c, p + 1, len - 1);
                break;
            case 'T':
                apply_state(c, p + 1, len - 1);
                break;
            case 'U':
                set_user(c, p + 1, len - 1);
                break;
            default:
                break;
            }
        }
        p = nul ? nul + 1 : end;
    }
    read_back(c);
    mx_rooms_decref(c);
    return 0;
}
