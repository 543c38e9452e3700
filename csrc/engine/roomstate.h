/* The room-state request kind: GET /rooms/{id}/state, whose answer also
 * replaces (or, when syncs newer than it came meanwhile, merges into) the
 * room's entry in the account's room cache. */
#ifndef MATRIDGE_ROOMSTATE_H
#define MATRIDGE_ROOMSTATE_H

#include "engine/engine.h"

extern mx_request_kind mx_kind_room_state;

/* Makes `r` (of mx_kind_room_state, with an account) apply its answer to
 * room `room_id`. 0, or -1 when out of memory. */
int mx_room_state_request_init(mx_request *r, const char *room_id);

#endif
