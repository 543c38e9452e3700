/* A hash map from C strings to pointers (open addressing, linear probing).
 *
 * Pure C, no locking: the owner of the map serialises access. The map never
 * owns keys or values: a key must stay valid while it is in the map, which is
 * easiest when the key lives inside the value (a member's user id, a room's
 * room id). Hashes are seeded per map so that keys chosen by a remote server
 * cannot be aimed at one bucket chain in advance. */
#ifndef MATRIDGE_STRMAP_H
#define MATRIDGE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *key; /* NULL: the slot is empty */
    void *value;
    uint64_t hash;
} mx_strmap_slot;

typedef struct {
    mx_strmap_slot *slots; /* owned; NULL until the first insertion */
    size_t cap;            /* 0 or a power of two */
    size_t len;
    uint64_t seed;
} mx_strmap;

/* An empty map (allocates nothing). */
void mx_strmap_init(mx_strmap *m);
/* Frees the slot array only; keys and values are the caller's. */
void mx_strmap_release(mx_strmap *m);
void *mx_strmap_get(const mx_strmap *m, const char *key);
/* Inserts or replaces. *old (if not NULL) receives the replaced value or
 * NULL. Returns 0, or -1 when out of memory (the map is unchanged). */
int mx_strmap_put(mx_strmap *m, const char *key, void *value, void **old);
/* Removes `key`; returns its value, or NULL if it was absent. */
void *mx_strmap_remove(mx_strmap *m, const char *key);
/* Makes room for `n` entries in total; 0 or -1 (out of memory). */
int mx_strmap_reserve(mx_strmap *m, size_t n);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif
