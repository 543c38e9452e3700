/* Paging through /messages and aggregating what it returns. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "matrix/history.h"

#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"
#include "util/jsonparse.h"

mx_history *mx_history_new(int backwards, const char *until_event_id, int64_t until_ts,
                           size_t max_events) {
    mx_history *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    if (until_event_id && !(h->until_event_id = strdup(until_event_id))) {
        free(h);
        return NULL;
    }
    h->backwards = backwards;
    h->until_ts = until_ts;
    h->max_events = max_events;
    h->tail = &h->pages;
    return h;
}

static void page_free(mx_page *p) {
    mx_arena_free(&p->arena);
    free(p);
}

void mx_history_free(mx_history *h) {
    if (!h) return;
    mx_page *p = h->pages;
    while (p) {
        mx_page *next = p->next;
        page_free(p);
        p = next;
    }
    mx_arena_free(&h->arena);
    free(h->until_event_id);
    free(h);
}

/* ---- paging --------------------------------------------------------------- */

static const char *str_field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Whether `ev`, met while paging, is where paging stops (it is excluded). */
static mx_stop stops_at(const mx_history *h, const mx_event *ev) {
    if (h->until_event_id && ev->event_id && strcmp(ev->event_id, h->until_event_id) == 0)
        return MX_STOP_EVENT;
    if (h->until_ts >= 0 && !ev->invalid) {
        if (h->backwards ? ev->origin_server_ts < h->until_ts : ev->origin_server_ts > h->until_ts)
            return MX_STOP_TIMESTAMP;
    }
    if (h->max_events && h->n_raw >= h->max_events) return MX_STOP_COUNT;
    return MX_STOP_NONE;
}

int mx_history_add_page(mx_history *h, const char *body, size_t len, const char **reason) {
    if (h->stop != MX_STOP_NONE) {
        *reason = "paging has already stopped";
        return -1;
    }
    mx_page *p = calloc(1, sizeof *p);
    if (!p) {
        *reason = "out of memory";
        return -1;
    }
    p->root = mx_json_parse_in_arena(body, len, &p->arena);
    const cJSON *chunk = cJSON_GetObjectItemCaseSensitive(p->root, "chunk");
    if (!p->root) {
        *reason = "it is not valid JSON";
    } else if (!cJSON_IsObject(p->root) || !cJSON_IsArray(chunk)) {
        *reason = "it has no 'chunk' array";
    } else if (!(p->start = str_field(p->root, "start"))) {
        *reason = "it has no 'start' token";
    } else if (mx_decode_events(&p->arena, chunk, MX_SHAPE_ROOM, &p->chunk) != 0 ||
               mx_decode_events(&p->arena, cJSON_GetObjectItemCaseSensitive(p->root, "state"),
                                MX_SHAPE_ROOM, &p->state) != 0) {
        *reason = "out of memory";
    } else {
        *reason = NULL;
    }
    if (*reason) {
        page_free(p);
        return -1;
    }
    p->end = str_field(p->root, "end");
    for (; p->n_used < p->chunk.n; p->n_used++) {
        mx_stop s = stops_at(h, &p->chunk.events[p->n_used]);
        if (s != MX_STOP_NONE) {
            h->stop = s;
            break;
        }
        h->n_raw++;
    }
    /* A full page that reaches the bound exactly also stops here. */
    if (h->stop == MX_STOP_NONE && h->max_events && h->n_raw >= h->max_events)
        h->stop = MX_STOP_COUNT;
    /* No `end` (or an empty chunk) means there is nothing further. */
    if (h->stop == MX_STOP_NONE && (!p->end || p->chunk.n == 0)) h->stop = MX_STOP_END;
    h->token = p->end;
    *h->tail = p;
    h->tail = &p->next;
    return 0;
}

/* ---- aggregation ------------------------------------------------------------ */

static int is_rel(const mx_event *ev, const char *rel_type) {
    return ev->rel_type && strcmp(ev->rel_type, rel_type) == 0;
}

/* Events dropped from the output (folded into another, or gone). */
typedef struct {
    const mx_event **all; /* oldest first */
    unsigned char *drop;
    size_t n;
    mx_strmap ids; /* event id -> its slot in `all` (seeded: ids are remote input) */
} agg;

/* Index of the event `id` in range, if any. */
static int find(const agg *a, const char *id, size_t *i) {
    const mx_event **slot = id ? mx_strmap_get(&a->ids, id) : NULL;
    if (!slot) return 0;
    *i = (size_t)(slot - a->all);
    return 1;
}

/* Redactions of events in range remove both; a redaction of something
 * older stays, so the caller can retract what it already delivered. */
static void apply_redactions(agg *a) {
    for (size_t i = 0; i < a->n; i++) {
        const mx_event *ev = a->all[i];
        if (ev->redacted) a->drop[i] = 1;
        size_t t;
        if (ev->kind == MX_EV_REDACTION && ev->redacts && find(a, ev->redacts, &t)) {
            a->drop[t] = 1;
            a->drop[i] = 1;
        }
    }
}

/* The latest valid edit of each original in range: same sender, and the
 * original is not itself an edit (the spec ignores edits of edits). */
static void apply_edits(agg *a, const mx_event **replacements) {
    for (size_t i = 0; i < a->n; i++) {
        const mx_event *ev = a->all[i];
        if (a->drop[i] || !is_rel(ev, "m.replace")) continue;
        size_t t;
        if (!find(a, ev->relates_to, &t)) continue; /* edits something older: kept */
        a->drop[i] = 1;
        const mx_event *orig = a->all[t];
        if (a->drop[t] || is_rel(orig, "m.replace") || !ev->new_message || !orig->sender ||
            strcmp(orig->sender, ev->sender) != 0)
            continue;
        const mx_event *prev = replacements[t];
        if (!prev || ev->origin_server_ts >= prev->origin_server_ts) replacements[t] = ev;
    }
}

static int gather_reactions(agg *a, mx_arena *arena, mx_reactions *out) {
    /* Count per target first, then fill, so each list is one allocation. */
    size_t *count = calloc(a->n ? a->n : 1, sizeof *count);
    if (!count) return -1;
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < a->n; i++) {
            const mx_event *ev = a->all[i];
            size_t t;
            if (a->drop[i] || ev->kind != MX_EV_REACTION || !ev->reaction_key ||
                !find(a, ev->relates_to, &t))
                continue;
            if (pass == 0) {
                count[t]++;
                continue;
            }
            a->drop[i] = 1;
            if (a->drop[t]) continue; /* a reaction to something gone */
            mx_reactions *r = &out[t];
            if (!r->items && !(r->items = mx_arena_alloc(arena, count[t] * sizeof *r->items))) {
                free(count);
                return -1;
            }
            r->items[r->n++] = (mx_reaction){ev->sender, ev->reaction_key, ev->event_id};
        }
    }
    free(count);
    return 0;
}

/* Aggregates into the arrays of `h`; `a` (its id map included) is the
 * caller's to release. */
static int aggregate(mx_history *h, agg *a_out) {
    agg a = {0};
    mx_strmap_init(&a.ids);
    size_t n = 0;
    for (mx_page *p = h->pages; p; p = p->next) n += p->n_used;
    a.all = mx_arena_alloc(&h->arena, (n ? n : 1) * sizeof *a.all);
    a.drop = mx_arena_alloc(&h->arena, n ? n : 1);
    *a_out = a;
    if (!a.all || !a.drop || mx_strmap_reserve(&a.ids, n) != 0) return -1;
    /* Oldest first: backwards pages come newest first, in reverse order. */
    size_t i = h->backwards ? n : 0;
    for (mx_page *p = h->pages; p; p = p->next)
        for (size_t k = 0; k < p->n_used; k++) {
            const mx_event *ev = &p->chunk.events[k];
            a.all[h->backwards ? --i : i++] = ev;
        }
    a.n = n;
    for (i = 0; i < n; i++) {
        if (a.all[i]->invalid || !a.all[i]->event_id)
            a.drop[i] = 1;
        else if (mx_strmap_put(&a.ids, a.all[i]->event_id, (void *)&a.all[i], NULL) != 0)
            return -1;
    }
    a_out->ids = a.ids;
    const mx_event **repl = mx_arena_alloc(&h->arena, (n ? n : 1) * sizeof *repl);
    mx_reactions *reacts = mx_arena_alloc(&h->arena, (n ? n : 1) * sizeof *reacts);
    if (!repl || !reacts) return -1;
    apply_redactions(&a);
    apply_edits(&a, repl);
    if (gather_reactions(&a, &h->arena, reacts) != 0) return -1;

    /* Compact the survivors, keeping their replacements and reactions. */
    size_t out = 0;
    for (i = 0; i < n; i++) {
        if (a.drop[i]) continue;
        a.all[out] = a.all[i];
        repl[out] = repl[i];
        reacts[out] = reacts[i];
        out++;
    }
    h->events = a.all;
    h->replacements = repl;
    h->reactions = reacts;
    h->n_events = out;
    return 0;
}

int mx_history_aggregate(mx_history *h) {
    agg a;
    int rc = aggregate(h, &a);
    mx_strmap_release(&a.ids);
    return rc;
}
