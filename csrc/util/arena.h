/* A bump allocator for the records of one decoded response: many small
 * allocations, all freed together with the batch that owns the arena. */
#ifndef MATRIDGE_ARENA_H
#define MATRIDGE_ARENA_H

#include <stddef.h>

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
