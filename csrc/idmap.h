/* A string -> index map for event ids, with its memory in an arena. */
#ifndef MATRIDGE_IDMAP_H
#define MATRIDGE_IDMAP_H

#include <stddef.h>

#include "arena.h"

typedef struct {
    const char **keys; /* arena array; keys are borrowed, not copied */
    size_t *values;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} mx_idmap;

/* Sized for `n` keys. Returns -1 when the arena cannot allocate. */
int mx_idmap_init(mx_idmap *m, mx_arena *arena, size_t n);
/* Inserts or replaces; the map must have been sized for every key. */
void mx_idmap_put(mx_idmap *m, const char *key, size_t value);
/* 1 and *value set when found, else 0. */
int mx_idmap_get(const mx_idmap *m, const char *key, size_t *value);

#endif
