/* /sync decoding: walks the parsed tree once and records what the gateway
 * routes on, so that Python reads fields without walking JSON itself. */
#include "matrix/decode.h"

#include <stdlib.h>
#include <string.h>

#include "matrix/html.h"
#include "matrix/words.h"
#include "util/jsonparse.h"

/* ---- small readers: wrong types read as absent ---------------------------- */

static const cJSON *get(const cJSON *obj, const char *key) {
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static const char *str_field(const cJSON *obj, const char *key) {
    const cJSON *v = get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *obj_field(const cJSON *obj, const char *key) {
    const cJSON *v = get(obj, key);
    return cJSON_IsObject(v) ? v : NULL;
}

/* A non-negative integer below 2^53, else -1 (huge, negative, fractional or
 * not a number). */
static int64_t uint_of(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(int64_t)d) return -1;
    return (int64_t)d;
}

static int64_t uint_field(const cJSON *obj, const char *key) { return uint_of(get(obj, key)); }

/* The type tests inline (cJSON_IsString is a call into the shared library):
 * these run for every member of every event. */
static const char *str_of(const cJSON *v) {
    return v && (v->type & 0xFF) == cJSON_String ? v->valuestring : NULL;
}

static const cJSON *obj_of(const cJSON *v) {
    return v && (v->type & 0xFF) == cJSON_Object ? v : NULL;
}

/* Events are read in one pass over their members (and their content's)
 * rather than one cJSON_GetObjectItem scan per field: MEMBER keeps the
 * first member of that name, as cJSON_GetObjectItem would find it. */
#define MEMBER(slot, name)                                                  \
    if (strcmp(key, name) == 0) {                                           \
        if (!(slot)) (slot) = c;                                            \
        continue;                                                           \
    }

/* The content members any event kind reads. */
typedef struct {
    const cJSON *msgtype, *body, *format, *formatted_body, *url, *file, *filename, *geo_uri,
        *info, *mentions, *relates_to, *new_content, *redacts, *reason, *membership;
} content_members;

static void scan_content(const cJSON *content, content_members *m) {
    memset(m, 0, sizeof *m);
    for (const cJSON *c = content->child; c; c = c->next) {
        const char *key = c->string;
        if (!key) continue;
        switch (key[0]) {
        case 'b': MEMBER(m->body, "body"); break;
        case 'f':
            MEMBER(m->format, "format");
            MEMBER(m->formatted_body, "formatted_body");
            MEMBER(m->file, "file");
            MEMBER(m->filename, "filename");
            break;
        case 'g': MEMBER(m->geo_uri, "geo_uri"); break;
        case 'i': MEMBER(m->info, "info"); break;
        case 'm':
            MEMBER(m->msgtype, "msgtype");
            MEMBER(m->relates_to, "m.relates_to");
            MEMBER(m->mentions, "m.mentions");
            MEMBER(m->new_content, "m.new_content");
            MEMBER(m->membership, "membership");
            break;
        case 'r':
            MEMBER(m->redacts, "redacts");
            MEMBER(m->reason, "reason");
            break;
        case 'u': MEMBER(m->url, "url"); break;
        default: break;
        }
    }
}

/* ---- event kinds ---------------------------------------------------------- */

static const struct {
    mx_word_id type;
    mx_event_kind kind;
} KINDS[] = {
    {MX_W_M_ROOM_MESSAGE, MX_EV_MESSAGE},
    {MX_W_M_STICKER, MX_EV_STICKER},
    {MX_W_M_REACTION, MX_EV_REACTION},
    {MX_W_M_ROOM_REDACTION, MX_EV_REDACTION},
    {MX_W_M_ROOM_ENCRYPTED, MX_EV_ENCRYPTED},
    {MX_W_M_ROOM_MEMBER, MX_EV_MEMBER},
    {MX_W_M_ROOM_NAME, MX_EV_NAME},
    {MX_W_M_ROOM_TOPIC, MX_EV_TOPIC},
    {MX_W_M_ROOM_AVATAR, MX_EV_AVATAR},
    {MX_W_M_ROOM_CANONICAL_ALIAS, MX_EV_CANONICAL_ALIAS},
    {MX_W_M_ROOM_POWER_LEVELS, MX_EV_POWER_LEVELS},
    {MX_W_M_ROOM_ENCRYPTION, MX_EV_ENCRYPTION},
    {MX_W_M_ROOM_TOMBSTONE, MX_EV_TOMBSTONE},
    {MX_W_M_ROOM_CREATE, MX_EV_CREATE},
    {MX_W_M_ROOM_JOIN_RULES, MX_EV_JOIN_RULES},
    {MX_W_M_ROOM_PINNED_EVENTS, MX_EV_PINNED},
    {MX_W_M_SPACE_CHILD, MX_EV_SPACE_CHILD},
    {MX_W_M_SPACE_PARENT, MX_EV_SPACE_PARENT},
    {MX_W_M_TYPING, MX_EV_TYPING},
    {MX_W_M_RECEIPT, MX_EV_RECEIPT},
    {MX_W_M_PRESENCE, MX_EV_PRESENCE},
    {MX_W_M_DIRECT, MX_EV_DIRECT},
};

/* The kind of an event type; a known type is pointed at its word. */
static mx_event_kind kind_of(const char **type) {
    /* Every known type starts with "m."; most traffic is m.room.message. */
    const char *t = *type;
    if (!t || t[0] != 'm' || t[1] != '.') return MX_EV_OTHER;
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++) {
        if (strcmp(t, mx_words[KINDS[i].type]) == 0) {
            *type = mx_words[KINDS[i].type];
            return KINDS[i].kind;
        }
    }
    return MX_EV_OTHER;
}

/* ---- message content ------------------------------------------------------ */

/* The plain body without the rich-reply fallback: the leading "> " lines and
 * the blank line after them (only when the event is a reply). */
static const char *strip_reply_fallback(const char *body, size_t *len) {
    const char *p = body;
    if (*p != '>') return body;
    while (*p == '>') {
        const char *nl = strchr(p, '\n');
        if (!nl) return body; /* nothing but quote: keep it all */
        p = nl + 1;
    }
    if (*p == '\n') p++;
    *len -= (size_t)(p - body);
    return p;
}

/* The HTML converted on this thread (no GIL): text and pills into the arena. */
static int convert_html(mx_arena *arena, mx_message *m) {
    mx_styled styled;
    if (mx_html_to_styled(m->formatted_body, strlen(m->formatted_body), &styled) != 0) return -1;
    int rc = -1;
    char *text = mx_arena_strndup(arena, styled.text, styled.len);
    mx_mention_span *spans =
        styled.n_mentions ? mx_arena_alloc(arena, styled.n_mentions * sizeof *spans) : NULL;
    if (!text || (styled.n_mentions && !spans)) goto done;
    for (size_t i = 0; i < styled.n_mentions; i++) {
        const mx_mention *src = &styled.mentions[i];
        spans[i].start = src->start;
        spans[i].end = src->end;
        if (!(spans[i].user_id = mx_arena_strndup(arena, src->user_id, strlen(src->user_id))))
            goto done;
    }
    m->text = text;
    m->text_len = styled.len;
    m->mention_spans = spans;
    m->n_mention_spans = styled.n_mentions;
    rc = 0;
done:
    mx_styled_free(&styled);
    return rc;
}

/* content.info of media: one pass, absent numbers -1. */
static void decode_info(const cJSON *info, mx_message *m) {
    const cJSON *mimetype = NULL, *thumbnail = NULL, *size = NULL, *w = NULL, *h = NULL,
                *duration = NULL;
    for (const cJSON *c = info ? info->child : NULL; c; c = c->next) {
        const char *key = c->string;
        if (!key) continue;
        switch (key[0]) {
        case 'm': MEMBER(mimetype, "mimetype"); break;
        case 't': MEMBER(thumbnail, "thumbnail_url"); break;
        case 's': MEMBER(size, "size"); break;
        case 'w': MEMBER(w, "w"); break;
        case 'h': MEMBER(h, "h"); break;
        case 'd': MEMBER(duration, "duration"); break;
        default: break;
        }
    }
    m->mimetype = str_of(mimetype);
    m->thumbnail_url = str_of(thumbnail);
    m->size = uint_of(size);
    m->width = uint_of(w);
    m->height = uint_of(h);
    m->duration = uint_of(duration);
}

/* `body_info`: the measure of content.body when the caller has it. */
static int decode_message(mx_arena *arena, const content_members *cm, int is_reply,
                          const mx_utf8_info *body_info, mx_message **out) {
    mx_message *m = mx_arena_alloc(arena, sizeof *m);
    if (!m) return -1;
    m->msgtype = mx_word_msgtype(str_of(cm->msgtype));
    m->body = str_of(cm->body);
    m->format = mx_word_format(str_of(cm->format));
    m->formatted_body = str_of(cm->formatted_body);
    m->url = str_of(cm->url);
    const cJSON *file = obj_of(cm->file);
    if (!m->url && file) {
        m->url = str_field(file, "url");
        m->encrypted_file = 1;
    }
    m->filename = str_of(cm->filename);
    m->geo_uri = str_of(cm->geo_uri);
    decode_info(obj_of(cm->info), m);
    m->mentions = obj_of(cm->mentions);
    *out = m;
    if (m->formatted_body && m->format == mx_words[MX_W_HTML_FORMAT]) {
        if (convert_html(arena, m) != 0) return -1;
        /* HTML with no text at all (only a reply fallback, say): use the body. */
        if (m->text_len == 0 && m->body) m->text = NULL;
    }
    if (!m->text && m->body) {
        size_t len = strlen(m->body);
        m->text = is_reply ? strip_reply_fallback(m->body, &len) : m->body;
        m->text_len = len;
    }
    if (m->text == m->body && body_info && m->text_len == body_info->len)
        m->text_info = *body_info; /* the body as it is: measured already */
    else if (m->text)
        mx_utf8_measure(m->text, m->text_len, &m->text_info);
    return 0;
}

/* ---- one event ------------------------------------------------------------ */

static void decode_relation(mx_event *ev, const cJSON *rel) {
    if (!rel) return;
    const cJSON *rel_type = NULL, *event_id = NULL, *reply = NULL, *falling_back = NULL,
                *key_node = NULL;
    for (const cJSON *c = rel->child; c; c = c->next) {
        const char *key = c->string;
        if (!key) continue;
        switch (key[0]) {
        case 'r': MEMBER(rel_type, "rel_type"); break;
        case 'e': MEMBER(event_id, "event_id"); break;
        case 'm': MEMBER(reply, "m.in_reply_to"); break;
        case 'i': MEMBER(falling_back, "is_falling_back"); break;
        case 'k': MEMBER(key_node, "key"); break;
        default: break;
        }
    }
    ev->rel_type = mx_word_rel_type(str_of(rel_type));
    ev->relates_to = str_of(event_id);
    ev->in_reply_to = str_field(obj_of(reply), "event_id");
    ev->is_falling_back = cJSON_IsTrue(falling_back);
    if (ev->rel_type == mx_words[MX_W_M_ANNOTATION]) ev->reaction_key = str_of(key_node);
    if (ev->rel_type && !ev->relates_to) ev->rel_type = NULL; /* a relation to nothing */
}

/* The first reason the event cannot be used, or NULL. */
static const char *check(const mx_event *ev, const cJSON *content, mx_shape shape) {
    if (!ev->type) return "the event has no string 'type'";
    if (!content) return "the event has no 'content'";
    if (!cJSON_IsObject(content)) return "the event's 'content' is not an object";
    if (shape == MX_SHAPE_BASIC) return NULL;
    if (!ev->sender) return "the event has no string 'sender'";
    if (shape == MX_SHAPE_STRIPPED) {
        return ev->state_key ? NULL : "the stripped state event has no string 'state_key'";
    }
    if (!ev->event_id) return "the event has no string 'event_id'";
    if (ev->redacted) return NULL; /* content was emptied by a redaction */
    switch (ev->kind) {
    case MX_EV_MESSAGE:
        if (!ev->body) return "the message has no string 'body'";
        if (!ev->msgtype) return "the message has no string 'msgtype'";
        break;
    case MX_EV_STICKER:
        if (!ev->message || !ev->message->url) return "the sticker has no string 'url'";
        break;
    case MX_EV_REACTION:
        if (!ev->reaction_key) return "the reaction has no annotation key";
        break;
    case MX_EV_REDACTION:
        if (!ev->redacts) return "the redaction names no event";
        break;
    case MX_EV_MEMBER:
        if (!ev->membership) return "the member event has no string 'membership'";
        if (!ev->state_key) return "the member event has no 'state_key'";
        break;
    default:
        break;
    }
    return NULL;
}

/* unsigned: the transaction id, whether a redaction emptied the content,
 * and the previous membership. */
static void decode_unsigned(mx_event *ev, const cJSON *unsig) {
    const cJSON *txn = NULL, *redacted_because = NULL, *prev_content = NULL;
    for (const cJSON *c = unsig ? unsig->child : NULL; c; c = c->next) {
        const char *key = c->string;
        if (!key) continue;
        switch (key[0]) {
        case 't': MEMBER(txn, "transaction_id"); break;
        case 'r': MEMBER(redacted_because, "redacted_because"); break;
        case 'p': MEMBER(prev_content, "prev_content"); break;
        default: break;
        }
    }
    ev->txn_id = str_of(txn);
    ev->redacted = obj_of(redacted_because) != NULL;
    ev->prev_membership = mx_word_membership(str_field(obj_of(prev_content), "membership"));
}

int mx_decode_event(mx_arena *arena, const cJSON *node, mx_shape shape, mx_event *ev) {
    memset(ev, 0, sizeof *ev);
    ev->node = node;
    if (!cJSON_IsObject(node)) {
        ev->invalid = "the event is not a JSON object";
        return 0;
    }
    const cJSON *type = NULL, *sender = NULL, *event_id = NULL, *state_key = NULL, *ts = NULL,
                *content = NULL, *unsig = NULL, *redacts = NULL;
    for (const cJSON *c = node->child; c; c = c->next) {
        const char *key = c->string;
        if (!key) continue;
        switch (key[0]) {
        case 't': MEMBER(type, "type"); break;
        case 's':
            MEMBER(sender, "sender");
            MEMBER(state_key, "state_key");
            break;
        case 'e': MEMBER(event_id, "event_id"); break;
        case 'o': MEMBER(ts, "origin_server_ts"); break;
        case 'c': MEMBER(content, "content"); break;
        case 'u': MEMBER(unsig, "unsigned"); break;
        case 'r': MEMBER(redacts, "redacts"); break;
        default: break;
        }
    }
    ev->type = str_of(type);
    ev->kind = kind_of(&ev->type);
    ev->sender = str_of(sender);
    ev->event_id = str_of(event_id);
    ev->state_key = str_of(state_key);
    int64_t t = uint_of(ts);
    ev->origin_server_ts = t < 0 ? 0 : t;
    decode_unsigned(ev, obj_of(unsig));
    if (cJSON_IsObject(content)) {
        content_members cm;
        scan_content(content, &cm);
        ev->content = content;
        ev->msgtype = mx_word_msgtype(str_of(cm.msgtype));
        ev->body = str_of(cm.body);
        if (ev->body) mx_utf8_measure(ev->body, strlen(ev->body), &ev->body_info);
        decode_relation(ev, obj_of(cm.relates_to));
        switch (ev->kind) {
        case MX_EV_MESSAGE:
        case MX_EV_STICKER:
            if (!ev->redacted &&
                decode_message(arena, &cm, ev->in_reply_to != NULL, ev->body ? &ev->body_info : NULL,
                               &ev->message) != 0)
                return -1;
            if (ev->rel_type == mx_words[MX_W_M_REPLACE] &&
                cJSON_IsObject(cm.new_content)) {
                content_members nc;
                scan_content(cm.new_content, &nc);
                if (decode_message(arena, &nc, 0, NULL, &ev->new_message) != 0) return -1;
            }
            break;
        case MX_EV_REDACTION:
            /* Room v11 moved `redacts` into the content; older rooms have it
             * at the top level. */
            ev->redacts = str_of(cm.redacts);
            if (!ev->redacts) ev->redacts = str_of(redacts);
            ev->reason = str_of(cm.reason);
            break;
        case MX_EV_MEMBER:
            ev->membership = mx_word_membership(str_of(cm.membership));
            ev->reason = str_of(cm.reason);
            break;
        default:
            break;
        }
    }
    ev->invalid = check(ev, content, shape);
    return 0;
}

int mx_decode_events(mx_arena *arena, const cJSON *array, mx_shape shape, mx_events *out) {
    out->events = NULL;
    out->n = 0;
    if (!cJSON_IsArray(array)) return 0;
    size_t n = mx_json_size(array);
    if (n == 0) return 0;
    if (n > SIZE_MAX / sizeof(mx_event)) return -1;
    mx_event *evs = mx_arena_alloc_raw(arena, n * sizeof *evs); /* each decode zeroes its own */
    if (!evs) return -1;
    size_t i = 0;
    for (const cJSON *e = array->child; e && i < n; e = e->next)
        if (mx_decode_event(arena, e, shape, &evs[i++]) != 0) return -1;
    out->events = evs;
    out->n = i;
    return 0;
}

/* ---- rooms ---------------------------------------------------------------- */

/* The string items of a JSON array, in an arena array. */
static int str_array(mx_arena *arena, const cJSON *array, const char ***out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!cJSON_IsArray(array)) return 0;
    size_t n = 0;
    for (const cJSON *c = array->child; c; c = c->next) n += cJSON_IsString(c) ? 1 : 0;
    if (n == 0) return 0;
    const char **items = mx_arena_alloc(arena, n * sizeof *items);
    if (!items) return -1;
    size_t i = 0;
    for (const cJSON *c = array->child; c; c = c->next)
        if (cJSON_IsString(c)) items[i++] = c->valuestring;
    *out = items;
    *n_out = n;
    return 0;
}

static size_t count_receipts(const cJSON *content) {
    size_t n = 0;
    for (const cJSON *ev = content->child; ev; ev = ev->next)
        if (cJSON_IsObject(ev))
            for (const cJSON *type = ev->child; type; type = type->next)
                if (cJSON_IsObject(type)) n += mx_json_size(type);
    return n;
}

/* m.receipt content: {event_id: {receipt_type: {user_id: {ts, thread_id}}}},
 * appended to room->receipts, which has room for `cap` in all
 * (decode_ephemeral sizes it once for all the room's receipt events). */
static void decode_receipts(const cJSON *content, mx_room *room, size_t cap) {
    mx_receipt *out = room->receipts;
    size_t i = room->n_receipts;
    for (const cJSON *ev = content->child; ev; ev = ev->next) {
        if (!cJSON_IsObject(ev) || !ev->string) continue;
        for (const cJSON *type = ev->child; type; type = type->next) {
            if (!cJSON_IsObject(type) || !type->string) continue;
            for (const cJSON *user = type->child; user; user = user->next) {
                if (!cJSON_IsObject(user) || !user->string) continue;
                if (i == cap) break; /* only if the sizes lied */
                mx_receipt *r = &out[i++];
                r->event_id = ev->string;
                r->receipt_type = mx_word_receipt_type(type->string);
                r->user_id = user->string;
                r->ts = uint_field(user, "ts");
                r->thread_id = str_field(user, "thread_id");
            }
        }
    }
    room->n_receipts = i;
}

static int decode_ephemeral(mx_arena *arena, const cJSON *array, mx_room *room) {
    if (mx_decode_events(arena, array, MX_SHAPE_BASIC, &room->ephemeral) != 0) return -1;
    /* One array for every receipt event of the room: many m.receipt events
     * must not copy the receipts before them again each time. */
    size_t n_receipts = 0;
    for (size_t i = 0; i < room->ephemeral.n; i++) {
        const mx_event *ev = &room->ephemeral.events[i];
        if (!ev->invalid && ev->kind == MX_EV_RECEIPT) n_receipts += count_receipts(ev->content);
    }
    if (n_receipts && !(room->receipts = mx_arena_alloc(arena, n_receipts * sizeof *room->receipts)))
        return -1;
    for (size_t i = 0; i < room->ephemeral.n; i++) {
        const mx_event *ev = &room->ephemeral.events[i];
        if (ev->invalid) continue;
        if (ev->kind == MX_EV_TYPING) {
            room->has_typing = 1;
            if (str_array(arena, get(ev->content, "user_ids"), &room->typing, &room->n_typing))
                return -1;
        } else if (ev->kind == MX_EV_RECEIPT) {
            decode_receipts(ev->content, room, n_receipts);
        }
    }
    return 0;
}

static int decode_room(mx_arena *arena, const cJSON *r, mx_membership m, mx_room *room) {
    room->room_id = r->string;
    room->membership = m;
    room->notification_count = room->highlight_count = -1;
    room->joined_member_count = room->invited_member_count = -1;
    if (m == MX_ROOM_INVITE)
        return mx_decode_events(arena, get(obj_field(r, "invite_state"), "events"),
                                MX_SHAPE_STRIPPED, &room->state);
    if (m == MX_ROOM_KNOCK)
        return mx_decode_events(arena, get(obj_field(r, "knock_state"), "events"),
                                MX_SHAPE_STRIPPED, &room->state);
    const cJSON *tl = obj_field(r, "timeline");
    room->limited = cJSON_IsTrue(get(tl, "limited"));
    room->prev_batch = str_field(tl, "prev_batch");
    const cJSON *unread = obj_field(r, "unread_notifications");
    room->notification_count = uint_field(unread, "notification_count");
    room->highlight_count = uint_field(unread, "highlight_count");
    const cJSON *summary = obj_field(r, "summary");
    room->joined_member_count = uint_field(summary, "m.joined_member_count");
    room->invited_member_count = uint_field(summary, "m.invited_member_count");
    if (str_array(arena, get(summary, "m.heroes"), &room->heroes, &room->n_heroes) != 0 ||
        mx_decode_events(arena, get(tl, "events"), MX_SHAPE_ROOM, &room->timeline) != 0 ||
        mx_decode_events(arena, get(obj_field(r, "state"), "events"), MX_SHAPE_ROOM,
                         &room->state) != 0 ||
        mx_decode_events(arena, get(obj_field(r, "account_data"), "events"), MX_SHAPE_BASIC,
                         &room->account_data) != 0)
        return -1;
    return decode_ephemeral(arena, get(obj_field(r, "ephemeral"), "events"), room);
}

static size_t count_members(const cJSON *obj) {
    return cJSON_IsObject(obj) ? mx_json_size(obj) : 0;
}

/* Appends the section's rooms to b->rooms, which has room for `cap`. */
static int decode_section(mx_arena *arena, const cJSON *section, mx_membership m, mx_batch *b,
                          size_t cap) {
    if (!cJSON_IsObject(section)) return 0;
    for (const cJSON *r = section->child; r && b->n_rooms < cap; r = r->next) {
        if (!cJSON_IsObject(r) || !r->string) continue; /* a malformed room is skipped */
        if (decode_room(arena, r, m, &b->rooms[b->n_rooms++]) != 0) return -1;
    }
    return 0;
}

/* device_one_time_keys_count: {algorithm: count}; counts that are not
 * non-negative integers are left out rather than guessed. */
static int key_counts(mx_arena *arena, const cJSON *obj, mx_batch *b) {
    size_t n = count_members(obj);
    if (n == 0) return 0;
    mx_key_count *counts = mx_arena_alloc(arena, n * sizeof *counts);
    if (!counts) return -1;
    size_t i = 0;
    for (const cJSON *c = obj->child; c && i < n; c = c->next) {
        int64_t count = uint_of(c);
        if (!c->string || count < 0) continue;
        counts[i].algorithm = c->string;
        counts[i++].count = count;
    }
    b->one_time_key_counts = counts;
    b->n_one_time_key_counts = i;
    return 0;
}

/* The end-to-end encryption fields of the top level (to-device events are
 * decoded with the other event lists). */
static int decode_device_keys(mx_batch *b, const cJSON *root) {
    mx_arena *a = &b->arena;
    const cJSON *devices = obj_field(root, "device_lists");
    const cJSON *fallback = get(root, "device_unused_fallback_key_types");
    b->has_fallback_key_types = cJSON_IsArray(fallback);
    if (str_array(a, get(devices, "changed"), &b->devices_changed, &b->n_devices_changed) != 0 ||
        str_array(a, get(devices, "left"), &b->devices_left, &b->n_devices_left) != 0 ||
        str_array(a, fallback, &b->fallback_key_types, &b->n_fallback_key_types) != 0)
        return -1;
    return key_counts(a, obj_field(root, "device_one_time_keys_count"), b);
}

static int decode_batch(mx_batch *b, const cJSON *root) {
    mx_arena *a = &b->arena;
    const cJSON *rooms = obj_field(root, "rooms");
    const cJSON *join = get(rooms, "join"), *invite = get(rooms, "invite");
    const cJSON *leave = get(rooms, "leave"), *knock = get(rooms, "knock");
    size_t total =
        count_members(join) + count_members(invite) + count_members(leave) + count_members(knock);
    if (total && !(b->rooms = mx_arena_alloc(a, total * sizeof *b->rooms))) return -1;
    if (decode_section(a, join, MX_ROOM_JOIN, b, total) != 0 ||
        decode_section(a, invite, MX_ROOM_INVITE, b, total) != 0 ||
        decode_section(a, leave, MX_ROOM_LEAVE, b, total) != 0 ||
        decode_section(a, knock, MX_ROOM_KNOCK, b, total) != 0 ||
        mx_decode_events(a, get(obj_field(root, "account_data"), "events"), MX_SHAPE_BASIC,
                         &b->account_data) != 0 ||
        mx_decode_events(a, get(obj_field(root, "presence"), "events"), MX_SHAPE_BASIC,
                         &b->presence) != 0 ||
        mx_decode_events(a, get(obj_field(root, "to_device"), "events"), MX_SHAPE_BASIC,
                         &b->to_device) != 0)
        return -1;
    return decode_device_keys(b, root);
}

/* Checks the top level of `b->root` and decodes it. */
static int decode_root(mx_batch *b, const char **reason) {
    if (!cJSON_IsObject(b->root)) {
        *reason = "the body is not a JSON object";
        return -1;
    }
    b->next_batch = str_field(b->root, "next_batch");
    if (!b->next_batch) {
        *reason = "it has no 'next_batch' token";
        return -1;
    }
    if (decode_batch(b, b->root) != 0) {
        *reason = "out of memory";
        return -1;
    }
    return 0;
}

int mx_decode_sync_body(const char *data, size_t len, mx_batch **out, const char **reason) {
    *out = NULL;
    mx_batch *b = calloc(1, sizeof *b);
    if (!b) {
        *reason = "out of memory";
        return -1;
    }
    b->root = mx_json_parse_in_arena(data, len, &b->arena);
    if (!b->root) {
        *reason = "it is not valid JSON";
        mx_batch_free(b);
        return -1;
    }
    if (decode_root(b, reason) != 0) {
        mx_batch_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

/* Makes `b` one room whose timeline is `ev` alone: the shape the views of
 * a single decoded event expect. */
static void hold_one_event(mx_batch *b, mx_room *room, mx_event *ev) {
    room->notification_count = room->highlight_count = -1;
    room->joined_member_count = room->invited_member_count = -1;
    room->timeline.events = ev;
    room->timeline.n = 1;
    b->rooms = room;
    b->n_rooms = 1;
}

int mx_decode_one_event(cJSON *root, mx_batch **out) {
    *out = NULL;
    mx_batch *b = calloc(1, sizeof *b);
    if (!b) return -1;
    mx_room *room = mx_arena_alloc(&b->arena, sizeof *room);
    mx_event *ev = mx_arena_alloc(&b->arena, sizeof *ev);
    if (!room || !ev || mx_decode_event(&b->arena, root, MX_SHAPE_ROOM, ev) != 0) {
        mx_batch_free(b); /* root is not attached yet */
        return -1;
    }
    hold_one_event(b, room, ev);
    b->root = root;
    b->root_malloced = 1;
    *out = b;
    return 0;
}

int mx_decode_event_body(const char *data, size_t len, const char *room_id, mx_batch **out,
                         const char **reason) {
    *out = NULL;
    *reason = "out of memory";
    mx_batch *b = calloc(1, sizeof *b);
    if (!b) return -1;
    mx_room *room = NULL;
    mx_event *ev = NULL;
    b->root = mx_json_parse_in_arena(data, len, &b->arena);
    if (!b->root) {
        /* The arena parser returns NULL for bad JSON and for no memory:
         * bad JSON is by far the likelier. */
        *reason = "it is not valid JSON";
        goto fail;
    }
    if (!cJSON_IsObject(b->root)) {
        *reason = "it is not a JSON object";
        goto fail;
    }
    room = mx_arena_alloc(&b->arena, sizeof *room);
    ev = mx_arena_alloc(&b->arena, sizeof *ev);
    if (!room || !ev || !(room->room_id = mx_arena_strndup(&b->arena, room_id, strlen(room_id))) ||
        mx_decode_event(&b->arena, b->root, MX_SHAPE_ROOM, ev) != 0)
        goto fail;
    ev->decrypted = 1;
    /* A plaintext claiming another room must not be shown in this one. */
    const char *claimed = str_field(b->root, "room_id");
    if (!ev->invalid && claimed && strcmp(claimed, room_id) != 0)
        ev->invalid = "the event names another room";
    room->membership = MX_ROOM_JOIN;
    hold_one_event(b, room, ev);
    *out = b;
    return 0;
fail:
    mx_batch_free(b);
    return -1;
}

void mx_batch_free(mx_batch *b) {
    if (!b) return;
    if (b->root_malloced) cJSON_Delete(b->root);
    mx_arena_free(&b->arena);
    free(b);
}

const char *mx_batch_next_token(const mx_batch *b) { return b->next_batch; }
