/* A bump allocator for the records of one decoded response: many small
 * allocations, all freed together with the batch that owns the arena. */
#ifndef MATRIDGE_ARENA_H
#define MATRIDGE_ARENA_H

#include <stddef.h>

/* Defined when AddressSanitizer instruments this build: the arena then puts
 * a red zone after every allocation, and callers that carve many records
 * out of one allocation take them one by one instead. */
#if defined(__SANITIZE_ADDRESS__)
#define MX_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MX_ARENA_ASAN 1
#endif
#endif

typedef struct mx_arena_block mx_arena_block;

typedef struct {
    mx_arena_block *head; /* owned chain of blocks, newest first */
    size_t next_block;    /* size of the next block: grows with use */
} mx_arena;

/* Zeroed memory aligned for any record, or NULL on allocation failure.
 * The arena owns it; it lives until mx_arena_free. */
void *mx_arena_alloc(mx_arena *a, size_t size);
/* Like mx_arena_alloc, without zeroing. */
void *mx_arena_alloc_raw(mx_arena *a, size_t size);
/* A NUL-terminated copy of s[0..len) owned by the arena, or NULL. */
char *mx_arena_strndup(mx_arena *a, const char *s, size_t len);
void mx_arena_free(mx_arena *a);

#endif
