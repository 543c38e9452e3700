/* The single-event request kind (oneevent.h). */
#include "engine/oneevent.h"

#include <stdio.h>

#include "matrix/decode.h"

/* Decoded here, off the GIL; the batch owns the tree from now on. */
static long on_body(mx_request *r) {
    if (mx_decode_one_event(r->json, &r->batch) == 0) {
        r->json = NULL;
    } else {
        r->status = MX_ERR_NOMEM;
        snprintf(r->errbuf, sizeof r->errbuf, "out of memory decoding the event");
    }
    return MX_DONE;
}

mx_request_kind mx_kind_event = {.name = "event", .on_body = on_body};
