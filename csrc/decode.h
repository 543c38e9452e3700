/* Decoding of /sync responses into compact records, on the engine thread.
 *
 * A batch owns the cJSON tree it was decoded from; every string pointer in
 * the records points into that tree, so nothing is copied and the Python
 * views only need to keep the batch alive. */
#ifndef MATRIDGE_DECODE_H
#define MATRIDGE_DECODE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { MX_ROOM_JOIN, MX_ROOM_INVITE, MX_ROOM_LEAVE } mx_membership;

typedef struct {
    const cJSON *node;      /* the whole event object */
    const cJSON *content;   /* may be NULL */
    const char *event_id;   /* NULL for stripped invite state */
    const char *type;
    const char *sender;
    const char *state_key;  /* NULL unless a state event */
    const char *txn_id;     /* unsigned.transaction_id: only on our own sends */
    const char *msgtype;    /* content.msgtype, may be NULL */
    const char *body;       /* content.body, may be NULL */
    int64_t origin_server_ts;
    const char *invalid;    /* NULL, or why the event cannot be used */
} mx_event;

typedef struct {
    const char *room_id;
    mx_membership membership;
    int limited;
    const char *prev_batch;
    mx_event *timeline; /* owned array */
    size_t n_timeline;
    mx_event *state;    /* owned array (invite_state for invites) */
    size_t n_state;
} mx_room;

typedef struct mx_batch {
    cJSON *root; /* owned */
    const char *next_batch;
    mx_room *rooms; /* owned array */
    size_t n_rooms;
} mx_batch;

/* Decodes a /sync body. On success takes ownership of `root`, stores the
 * batch in *out and returns 0. On failure returns -1, leaves `root` to the
 * caller and sets *reason to a static explanation. */
int mx_decode_sync(cJSON *root, mx_batch **out, const char **reason);
void mx_batch_free(mx_batch *b);
const char *mx_batch_next_token(const mx_batch *b);

/* Decodes one event object into `ev` (never fails: a bad event is marked
 * invalid with a reason). */
void mx_decode_event(const cJSON *node, mx_event *ev);

#endif
