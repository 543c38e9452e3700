/* libFuzzer harness: one event's JSON (a decrypted event as the gateway
 * assembles it) through mx_decode_event_body, then a walk over every record
 * the Python views would read. The first input byte picks the room id the
 * event is checked against, so both "same room" and "another room" run. */
#include <stdint.h>
#include <string.h>

#include "matrix/decode.h"

static volatile size_t sink;

static void touch(const char *s) {
    if (s) sink += strlen(s);
}

static void walk_message(const mx_message *m) {
    if (!m) return;
    touch(m->msgtype), touch(m->body), touch(m->formatted_body), touch(m->url);
    touch(m->filename), touch(m->mimetype), touch(m->thumbnail_url), touch(m->geo_uri);
    if (m->text) sink += m->text_len;
    for (size_t s = 0; s < m->n_mention_spans; s++) touch(m->mention_spans[s].user_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const rooms[] = {"!room:example.org", "!other:example.org", ""};
    const char *room_id = rooms[size ? data[0] % 3 : 0];
    if (size) data++, size--;
    mx_batch *b = NULL;
    const char *reason = NULL;
    if (mx_decode_event_body((const char *)data, size, room_id, &b, &reason) != 0) {
        touch(reason);
        return 0;
    }
    const mx_event *e = &b->rooms[0].timeline.events[0];
    touch(b->rooms[0].room_id);
    touch(e->event_id), touch(e->type), touch(e->sender), touch(e->state_key);
    touch(e->invalid), touch(e->relates_to), touch(e->in_reply_to), touch(e->reaction_key);
    touch(e->redacts), touch(e->reason), touch(e->txn_id), touch(e->membership);
    walk_message(e->message), walk_message(e->new_message);
    sink += (size_t)e->decrypted;
    mx_batch_free(b);
    return 0;
}
