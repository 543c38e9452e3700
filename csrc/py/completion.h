/* Delivery of finished requests to Python (loop thread, GIL held). */
#ifndef MATRIDGE_COMPLETION_H
#define MATRIDGE_COMPLETION_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "engine/engine.h"

/* Gives each request kind its deliver operation. Module init calls it,
 * before any request can complete. */
void mx_completion_register_kinds(void);

/* Delivers one finished request to Python through its kind, and frees it. */
void mx_completion_deliver(mx_state *st, mx_request *r);

#endif
