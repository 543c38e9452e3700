/* libFuzzer harness: a /sync body through the parser and decoder, then a
 * walk over every record the Python views would read. */
#include <stdint.h>
#include <string.h>

#include "matrix/decode.h"

static volatile size_t sink;

static void touch(const char *s) {
    if (s) sink += strlen(s);
}

static void walk_events(const mx_events *evs) {
    for (size_t i = 0; i < evs->n; i++) {
        const mx_event *e = &evs->events[i];
        touch(e->event_id), touch(e->type), touch(e->sender), touch(e->state_key);
        touch(e->invalid), touch(e->relates_to), touch(e->reaction_key), touch(e->redacts);
        const mx_message *msgs[] = {e->message, e->new_message};
        for (int k = 0; k < 2; k++) {
            const mx_message *m = msgs[k];
            if (!m) continue;
            touch(m->body), touch(m->formatted_body), touch(m->url), touch(m->mimetype);
            if (m->text) sink += m->text_len;
            for (size_t s = 0; s < m->n_mention_spans; s++) touch(m->mention_spans[s].user_id);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mx_batch *b = NULL;
    const char *reason = NULL;
    if (mx_decode_sync_body((const char *)data, size, &b, &reason) != 0) return 0;
    for (size_t i = 0; i < b->n_rooms; i++) {
        const mx_room *r = &b->rooms[i];
        touch(r->room_id), touch(r->prev_batch);
        walk_events(&r->timeline), walk_events(&r->state);
        walk_events(&r->ephemeral), walk_events(&r->account_data);
        for (size_t k = 0; k < r->n_receipts; k++) touch(r->receipts[k].user_id);
        for (size_t k = 0; k < r->n_typing; k++) touch(r->typing[k]);
        for (size_t k = 0; k < r->n_heroes; k++) touch(r->heroes[k]);
    }
    walk_events(&b->account_data), walk_events(&b->presence), walk_events(&b->to_device);
    for (size_t k = 0; k < b->n_one_time_key_counts; k++)
        touch(b->one_time_key_counts[k].algorithm), sink += (size_t)b->one_time_key_counts[k].count;
    for (size_t k = 0; k < b->n_fallback_key_types; k++) touch(b->fallback_key_types[k]);
    mx_batch_free(b);
    return 0;
}
