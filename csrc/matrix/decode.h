/* Decoding of /sync responses into compact records, on the engine thread.
 *
 * A batch owns the cJSON tree it was decoded from and an arena for the
 * records; every string pointer in the records points into the tree or the
 * arena, so nothing is copied twice and the Python views only need to keep
 * the batch alive. */
#ifndef MATRIDGE_DECODE_H
#define MATRIDGE_DECODE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "util/arena.h"
#include "util/utf8.h"

typedef enum { MX_ROOM_JOIN, MX_ROOM_INVITE, MX_ROOM_LEAVE, MX_ROOM_KNOCK } mx_membership;

/* What an event is, so routing is a switch rather than string compares. */
typedef enum {
    MX_EV_OTHER,
    MX_EV_MESSAGE,   /* m.room.message */
    MX_EV_STICKER,   /* m.sticker */
    MX_EV_REACTION,  /* m.reaction */
    MX_EV_REDACTION, /* m.room.redaction */
    MX_EV_ENCRYPTED, /* m.room.encrypted: recognised, not decrypted */
    MX_EV_MEMBER,
    MX_EV_NAME,
    MX_EV_TOPIC,
    MX_EV_AVATAR,
    MX_EV_CANONICAL_ALIAS,
    MX_EV_POWER_LEVELS,
    MX_EV_ENCRYPTION,
    MX_EV_TOMBSTONE,
    MX_EV_CREATE,
    MX_EV_JOIN_RULES,
    MX_EV_PINNED,
    MX_EV_SPACE_CHILD,
    MX_EV_SPACE_PARENT,
    MX_EV_TYPING,  /* ephemeral m.typing */
    MX_EV_RECEIPT, /* ephemeral m.receipt */
    MX_EV_PRESENCE,
    MX_EV_DIRECT, /* account data m.direct */
    MX_EV_KIND_COUNT
} mx_event_kind;

/* Which fields an event must have where it was found. */
typedef enum {
    MX_SHAPE_ROOM,     /* timeline and state: ids, sender, timestamp */
    MX_SHAPE_STRIPPED, /* invite/knock state: type, state_key, sender, content */
    MX_SHAPE_BASIC     /* account data, ephemeral: type and content */
} mx_shape;

/* A user mentioned in a formatted body: code-point offsets into `text`. */
typedef struct {
    size_t start, end;
    const char *user_id;
} mx_mention_span;

/* The displayable part of a message (or of an edit's m.new_content). */
typedef struct {
    const char *msgtype; /* NULL for stickers */
    const char *body;
    const char *format;
    const char *formatted_body;
    const char *url;           /* mxc:// URI of the media, if any */
    const char *filename;      /* content.filename, else NULL */
    const char *mimetype;      /* info.mimetype */
    const char *thumbnail_url; /* info.thumbnail_url */
    const char *geo_uri;       /* m.location */
    int64_t size, width, height, duration; /* info.*, -1 when absent */
    int encrypted_file;        /* media in content.file (E2EE attachment) */
    /* Plain text with XEP-0393 styling, reply fallback removed (arena). */
    const char *text;
    size_t text_len;
    mx_utf8_info text_info;
    mx_mention_span *mention_spans; /* arena array */
    size_t n_mention_spans;
    const cJSON *mentions; /* m.mentions object, may be NULL */
} mx_message;

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
    mx_utf8_info body_info; /* of body, when there is one */
    int64_t origin_server_ts;
    const char *invalid;    /* NULL, or why the event cannot be used */
    mx_event_kind kind;
    int redacted; /* unsigned.redacted_because: content was stripped */

    /* m.relates_to */
    const char *rel_type;     /* m.replace, m.annotation, m.reference, m.thread */
    const char *relates_to;   /* event id the relation points at */
    const char *in_reply_to;  /* m.in_reply_to.event_id */
    const char *reaction_key; /* m.annotation key */
    int is_falling_back;
    int decrypted; /* built by the gateway from a decrypted m.room.encrypted */

    const char *redacts; /* m.room.redaction target (content or top level) */
    const char *reason;  /* redaction or membership reason */
    const char *membership;      /* m.room.member */
    const char *prev_membership; /* unsigned.prev_content.membership */
    mx_message *message;     /* m.room.message / m.sticker, arena; NULL otherwise */
    mx_message *new_message; /* m.replace's m.new_content, arena; NULL otherwise */
} mx_event;

typedef struct {
    const char *event_id;
    const char *receipt_type; /* m.read, m.read.private, ... */
    const char *user_id;
    int64_t ts; /* -1 when absent */
    const char *thread_id;
} mx_receipt;

typedef struct {
    mx_event *events; /* arena array */
    size_t n;
} mx_events;

typedef struct {
    const char *room_id;
    mx_membership membership;
    int limited;
    const char *prev_batch;
    mx_events timeline;
    mx_events state; /* invite_state / knock_state for those sections */
    mx_events ephemeral;
    mx_events account_data;
    const char **typing; /* arena array of user ids; NULL when no m.typing came */
    size_t n_typing;
    int has_typing;
    mx_receipt *receipts; /* arena array */
    size_t n_receipts;
    int64_t notification_count, highlight_count; /* -1 when absent */
    const char **heroes; /* arena array */
    size_t n_heroes;
    int64_t joined_member_count, invited_member_count; /* -1 when absent */
} mx_room;

/* One entry of device_one_time_keys_count: unused one-time keys the server
 * holds for this device, per key algorithm. */
typedef struct {
    const char *algorithm;
    int64_t count;
} mx_key_count;

typedef struct mx_batch {
    cJSON *root;       /* owned: in the arena, or (root_malloced) by cJSON */
    int root_malloced; /* root came from mx_json_parse: free with cJSON_Delete */
    mx_arena arena; /* owns rooms, events, messages and converted text */
    const char *next_batch;
    mx_room *rooms; /* arena array */
    size_t n_rooms;
    mx_events account_data;
    mx_events presence;
    mx_events to_device;
    const char **devices_changed, **devices_left; /* arena arrays */
    size_t n_devices_changed, n_devices_left;
    mx_key_count *one_time_key_counts; /* arena array */
    size_t n_one_time_key_counts;
    /* device_unused_fallback_key_types (arena array), and whether the server
     * sent it at all: absent means "unknown", not "none unused". */
    const char **fallback_key_types;
    size_t n_fallback_key_types;
    int has_fallback_key_types;
    /* Set for batches of an engine sync loop: the start_sync call they
     * serve, and (loop thread, GIL) whether Python acknowledged it. */
    unsigned sync_generation;
    int from_sync_loop;
    int acked;
} mx_batch;

/* Parses (into the batch's arena) and decodes a /sync body. On success
 * stores the batch in *out and returns 0; on failure returns -1 with *reason
 * set to a static explanation. */
int mx_decode_sync_body(const char *data, size_t len, mx_batch **out, const char **reason);

void mx_batch_free(mx_batch *b);
const char *mx_batch_next_token(const mx_batch *b);

/* A batch holding one room event (the body of GET /rooms/{id}/event/{id})
 * as its only room's only timeline event. Takes ownership of `root` on
 * success (0); -1 on ENOMEM, leaving root to the caller. */
int mx_decode_one_event(cJSON *root, mx_batch **out);

/* A batch holding one room event given as JSON text: the event the gateway
 * assembles after decrypting an m.room.encrypted one (the plaintext's type
 * and content with the outer event's ids), decoded as a timeline event of
 * `room_id` and marked decrypted. The JSON is parsed into the batch's arena.
 * 0 with *out set, or -1 with *reason set to a static explanation (not
 * JSON, not an object, out of memory). An event naming another room than
 * `room_id` is decoded as invalid. */
int mx_decode_event_body(const char *data, size_t len, const char *room_id, mx_batch **out,
                         const char **reason);

/* Decodes a JSON array of events (or NULL / a non-array: no events) into
 * arena records. Never fails on bad events (they are marked invalid with a
 * reason); returns -1 only when the arena cannot allocate. */
int mx_decode_events(mx_arena *arena, const cJSON *array, mx_shape shape, mx_events *out);

/* Decodes one event object into `ev`; message records go into `arena`.
 * Returns -1 only on allocation failure. */
int mx_decode_event(mx_arena *arena, const cJSON *node, mx_shape shape, mx_event *ev);

#endif
