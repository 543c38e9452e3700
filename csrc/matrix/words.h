/* The words of the Matrix protocol that events repeat: event types,
 * msgtypes, memberships, relation and receipt types, the HTML format.
 *
 * The decoder points a record's field at the one copy here when its value
 * is one of them (mx_word_*), so the Python views can hand out one interned
 * str per word instead of building a new one per event, without reading
 * the event's own bytes again (mx_word_index). */
#ifndef MATRIDGE_WORDS_H
#define MATRIDGE_WORDS_H

#include <stdint.h>

/* X(name, text): every word, grouped by the field it appears in. */
#define MX_WORDS(X)                                            \
    /* event types: the kinds of decode.h, in the same order */ \
    X(M_ROOM_MESSAGE, "m.room.message")                        \
    X(M_STICKER, "m.sticker")                                  \
    X(M_REACTION, "m.reaction")                                \
    X(M_ROOM_REDACTION, "m.room.redaction")                    \
    X(M_ROOM_ENCRYPTED, "m.room.encrypted")                    \
    X(M_ROOM_MEMBER, "m.room.member")                          \
    X(M_ROOM_NAME, "m.room.name")                              \
    X(M_ROOM_TOPIC, "m.room.topic")                            \
    X(M_ROOM_AVATAR, "m.room.avatar")                          \
    X(M_ROOM_CANONICAL_ALIAS, "m.room.canonical_alias")        \
    X(M_ROOM_POWER_LEVELS, "m.room.power_levels")              \
    X(M_ROOM_ENCRYPTION, "m.room.encryption")                  \
    X(M_ROOM_TOMBSTONE, "m.room.tombstone")                    \
    X(M_ROOM_CREATE, "m.room.create")                          \
    X(M_ROOM_JOIN_RULES, "m.room.join_rules")                  \
    X(M_ROOM_PINNED_EVENTS, "m.room.pinned_events")            \
    X(M_SPACE_CHILD, "m.space.child")                          \
    X(M_SPACE_PARENT, "m.space.parent")                        \
    X(M_TYPING, "m.typing")                                    \
    X(M_RECEIPT, "m.receipt")                                  \
    X(M_PRESENCE, "m.presence")                                \
    X(M_DIRECT, "m.direct")                                    \
    /* msgtypes */                                             \
    X(M_TEXT, "m.text")                                        \
    X(M_NOTICE, "m.notice")                                    \
    X(M_EMOTE, "m.emote")                                      \
    X(M_IMAGE, "m.image")                                      \
    X(M_FILE, "m.file")                                        \
    X(M_AUDIO, "m.audio")                                      \
    X(M_VIDEO, "m.video")                                      \
    X(M_LOCATION, "m.location")                                \
    /* memberships */                                          \
    X(JOIN, "join")                                            \
    X(INVITE, "invite")                                        \
    X(LEAVE, "leave")                                          \
    X(BAN, "ban")                                              \
    X(KNOCK, "knock")                                          \
    /* relation types */                                       \
    X(M_REPLACE, "m.replace")                                  \
    X(M_ANNOTATION, "m.annotation")                            \
    X(M_REFERENCE, "m.reference")                              \
    X(M_THREAD, "m.thread")                                    \
    /* receipt types */                                        \
    X(M_READ, "m.read")                                        \
    X(M_READ_PRIVATE, "m.read.private")                        \
    /* message formats */                                      \
    X(HTML_FORMAT, "org.matrix.custom.html")

#define MX_WORD_ENUM(name, text) MX_W_##name,
typedef enum { MX_WORDS(MX_WORD_ENUM) MX_WORD_COUNT } mx_word_id;
#undef MX_WORD_ENUM

/* Longest word + NUL, rounded up: the words are rows of one array, so
 * whether a pointer is one of them is a range check. */
#define MX_WORD_SIZE 32

extern const char mx_words[MX_WORD_COUNT][MX_WORD_SIZE];

/* The canonical copy of `s` among the words of one field, or `s` itself
 * (also for NULL). */
const char *mx_word_msgtype(const char *s);
const char *mx_word_membership(const char *s);
const char *mx_word_rel_type(const char *s);
const char *mx_word_receipt_type(const char *s);
const char *mx_word_format(const char *s);

/* Which word `p` is when it points at a canonical copy, else -1. Never
 * reads through `p`. */
static inline int mx_word_index(const char *p) {
    uintptr_t a = (uintptr_t)p, first = (uintptr_t)mx_words[0];
    if (a < first || a >= first + sizeof mx_words) return -1;
    return (a - first) % MX_WORD_SIZE ? -1 : (int)((a - first) / MX_WORD_SIZE);
}

#endif
