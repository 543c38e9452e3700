/* The single-event request kind: GET /rooms/{id}/event/{id}, decoded on the
 * engine thread like any sync event; the answer is a one-event batch. */
#ifndef MATRIDGE_ONEEVENT_H
#define MATRIDGE_ONEEVENT_H

#include "engine/engine.h"

extern mx_request_kind mx_kind_event;

#endif
