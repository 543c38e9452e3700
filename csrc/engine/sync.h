/* The per-account /sync state machine, run on the engine thread.
 *
 * An account the engine knows as syncing is in one of these phases, derived
 * each time the engine looks at it (mx_sync_step):
 *   stopping  Python no longer wants the loop: cancel the long-poll, report
 *             "stopped" to the loop thread, leave the engine's list;
 *   polling   one /sync request in flight;
 *   held      MX_MAX_UNDELIVERED batches wait for Python's sync_ack;
 *   waiting   backing off after an error (or a 429) until next_sync_ms;
 *   due       nothing in flight, not held, not waiting: start the next /sync.
 * Every start_sync/stop_sync bumps the account's generation: requests and
 * batches of an older generation are cancelled or dropped, never delivered.
 */
#ifndef MATRIDGE_SYNC_H
#define MATRIDGE_SYNC_H

#include "engine/engine.h"

/* Advances one account's loop. Returns 1 when the loop has ended and the
 * account must leave the engine's list, else 0. */
int mx_sync_step(mx_account *a, int64_t now);
/* One /sync request of an account's loop; its end goes through the loop's
 * state machine before Python hears of it. */
extern mx_request_kind mx_kind_sync;
/* No transfer: tells the loop thread that an account's sync loop ended. */
extern mx_request_kind mx_kind_sync_stopped;
/* The start_sync call a sync request serves (its generation). */
unsigned mx_sync_generation_of(const mx_request *r);
/* When the account next needs the engine's attention without any I/O or
 * poke (its backoff ends), or INT64_MAX: a /sync is in flight, or the loop
 * is held until Python acknowledges a batch. */
int64_t mx_sync_wake_at(mx_account *a);
/* Tells the loop thread that the account's sync loop is over, so that it
 * drops the references the loop held (SYNC_STOPPED). Harmless when the loop
 * was restarted or already reported: delivery checks. */
void mx_sync_report_stopped(mx_account *a);
/* Makes sure the account holds the note mx_sync_report_stopped sends (any
 * thread; start_sync calls it). 0, or -1 when out of memory. */
int mx_sync_prepare_stop_note(mx_account *a);
/* Whether a failed /sync ends the loop: the token is no longer valid. */
int mx_sync_error_is_fatal(const mx_request *r);

#endif
