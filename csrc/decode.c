/* /sync decoding: walks the parsed tree once and records what the gateway
 * routes on, so that Python reads fields without walking JSON itself. */
#include "decode.h"

#include <stdlib.h>
#include <string.h>

static const char *str_field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void mx_decode_event(const cJSON *node, mx_event *ev) {
    memset(ev, 0, sizeof *ev);
    ev->node = node;
    if (!cJSON_IsObject(node)) {
        ev->invalid = "the event is not a JSON object";
        return;
    }
    ev->type = str_field(node, "type");
    ev->sender = str_field(node, "sender");
    ev->event_id = str_field(node, "event_id");
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(node, "state_key");
    ev->state_key = cJSON_IsString(sk) ? sk->valuestring : NULL;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(node, "origin_server_ts");
    if (cJSON_IsNumber(ts) && ts->valuedouble >= 0 && ts->valuedouble < 9.0e15)
        ev->origin_server_ts = (int64_t)ts->valuedouble;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(node, "content");
    if (cJSON_IsObject(content)) {
        ev->content = content;
        ev->msgtype = str_field(content, "msgtype");
        ev->body = str_field(content, "body");
    }
    const cJSON *unsig = cJSON_GetObjectItemCaseSensitive(node, "unsigned");
    if (cJSON_IsObject(unsig)) ev->txn_id = str_field(unsig, "transaction_id");

    if (!ev->type)
        ev->invalid = "the event has no string 'type'";
    else if (!ev->sender)
        ev->invalid = "the event has no string 'sender'";
    else if (!content)
        ev->invalid = "the event has no 'content'";
    else if (!cJSON_IsObject(content))
        ev->invalid = "the event's 'content' is not an object";
}

/* Decodes `array` (may be NULL or of the wrong type) into an owned array. */
static int decode_events(const cJSON *array, mx_event **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!cJSON_IsArray(array)) return 0;
    size_t n = (size_t)cJSON_GetArraySize(array);
    if (n == 0) return 0;
    mx_event *evs = calloc(n, sizeof *evs);
    if (!evs) return -1;
    size_t i = 0;
    for (const cJSON *e = array->child; e && i < n; e = e->next) mx_decode_event(e, &evs[i++]);
    *out = evs;
    *n_out = i;
    return 0;
}

static const cJSON *path(const cJSON *obj, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, a);
    return b ? cJSON_GetObjectItemCaseSensitive(v, b) : v;
}

static int decode_section(const cJSON *section, mx_membership m, mx_room *rooms, size_t *n) {
    if (!cJSON_IsObject(section)) return 0;
    for (const cJSON *r = section->child; r; r = r->next) {
        if (!cJSON_IsObject(r) || !r->string) continue; /* a malformed room is skipped */
        mx_room *room = &rooms[(*n)++];
        room->room_id = r->string;
        room->membership = m;
        int rc;
        if (m == MX_ROOM_INVITE) {
            rc = decode_events(path(r, "invite_state", "events"), &room->state, &room->n_state);
        } else {
            const cJSON *tl = cJSON_GetObjectItemCaseSensitive(r, "timeline");
            room->limited = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tl, "limited"));
            room->prev_batch = str_field(tl, "prev_batch");
            rc = decode_events(cJSON_GetObjectItemCaseSensitive(tl, "events"), &room->timeline,
                               &room->n_timeline);
            if (rc == 0)
                rc = decode_events(path(r, "state", "events"), &room->state, &room->n_state);
        }
        if (rc != 0) return -1;
    }
    return 0;
}

static size_t count_members(const cJSON *obj) {
    return cJSON_IsObject(obj) ? (size_t)cJSON_GetArraySize(obj) : 0;
}

int mx_decode_sync(cJSON *root, mx_batch **out, const char **reason) {
    *out = NULL;
    if (!cJSON_IsObject(root)) {
        *reason = "the body is not a JSON object";
        return -1;
    }
    const char *next = str_field(root, "next_batch");
    if (!next) {
        *reason = "it has no 'next_batch' token";
        return -1;
    }
    mx_batch *b = calloc(1, sizeof *b);
    if (!b) {
        *reason = "out of memory";
        return -1;
    }
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(root, "rooms");
    const cJSON *join = cJSON_GetObjectItemCaseSensitive(rooms, "join");
    const cJSON *invite = cJSON_GetObjectItemCaseSensitive(rooms, "invite");
    const cJSON *leave = cJSON_GetObjectItemCaseSensitive(rooms, "leave");
    size_t total = count_members(join) + count_members(invite) + count_members(leave);
    if (total && !(b->rooms = calloc(total, sizeof *b->rooms))) {
        free(b);
        *reason = "out of memory";
        return -1;
    }
    if (decode_section(join, MX_ROOM_JOIN, b->rooms, &b->n_rooms) != 0 ||
        decode_section(invite, MX_ROOM_INVITE, b->rooms, &b->n_rooms) != 0 ||
        decode_section(leave, MX_ROOM_LEAVE, b->rooms, &b->n_rooms) != 0) {
        b->root = NULL; /* root stays the caller's on failure */
        mx_batch_free(b);
        *reason = "out of memory";
        return -1;
    }
    b->root = root;
    b->next_batch = next;
    *out = b;
    return 0;
}

void mx_batch_free(mx_batch *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n_rooms; i++) {
        free(b->rooms[i].timeline);
        free(b->rooms[i].state);
    }
    free(b->rooms);
    cJSON_Delete(b->root);
    free(b);
}

const char *mx_batch_next_token(const mx_batch *b) { return b->next_batch; }
