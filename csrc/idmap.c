/* Open addressing with linear probing, at most half full. */
#include "idmap.h"

#include <stdint.h>
#include <string.h>

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int mx_idmap_init(mx_idmap *m, mx_arena *arena, size_t n) {
    memset(m, 0, sizeof *m);
    size_t cap = 8;
    while (cap < n * 2) {
        if (cap > SIZE_MAX / 4 / sizeof(size_t)) return -1;
        cap *= 2;
    }
    m->keys = mx_arena_alloc(arena, cap * sizeof *m->keys);
    m->values = mx_arena_alloc_raw(arena, cap * sizeof *m->values);
    if (!m->keys || !m->values) return -1;
    m->cap = cap;
    return 0;
}

static size_t slot(const mx_idmap *m, const char *key) {
    size_t i = (size_t)hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

void mx_idmap_put(mx_idmap *m, const char *key, size_t value) {
    size_t i = slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->len++;
    }
    m->values[i] = value;
}

int mx_idmap_get(const mx_idmap *m, const char *key, size_t *value) {
    if (!m->cap || !key) return 0;
    size_t i = slot(m, key);
    if (!m->keys[i]) return 0;
    *value = m->values[i];
    return 1;
}
