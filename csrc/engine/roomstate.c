/* The room-state request kind (roomstate.h). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "engine/roomstate.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *room_id;     /* owned */
    uint64_t asked_at; /* the cache's sync count when the transfer started */
} room_state_data;

static void free_data(void *p) {
    room_state_data *d = p;
    free(d->room_id);
    free(d);
}

/* Syncs are applied on the engine thread too: any applied after this point
 * may be newer than the answer. */
static void on_start(mx_request *r) {
    room_state_data *d = r->kind_data;
    d->asked_at = mx_rooms_seq(r->account->rooms);
}

/* A room's full state: the cache learns every member, not only the
 * lazy-loaded ones. A body that is not a list changes nothing; on ENOMEM
 * the cache keeps what it had. Python still gets the JSON answer. */
static long on_body(mx_request *r) {
    room_state_data *d = r->kind_data;
    mx_rooms_apply_state(r->account->rooms, d->room_id, r->json, d->asked_at);
    return MX_DONE;
}

mx_request_kind mx_kind_room_state = {
    .name = "room state",
    .on_start = on_start,
    .on_body = on_body,
    .free_data = free_data,
};

int mx_room_state_request_init(mx_request *r, const char *room_id) {
    room_state_data *d = calloc(1, sizeof *d);
    if (!d || !(d->room_id = strdup(room_id))) {
        free(d);
        return -1;
    }
    r->kind_data = d;
    return 0;
}
