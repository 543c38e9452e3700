/* String-keyed hash map: linear probing with backward-shift deletion, so no
 * tombstones accumulate when members come and go in a big room. */
#include "util/strmap.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Keep the load factor under 3/4. */
#define MIN_CAP 8

static uint64_t new_seed(void) {
    static atomic_uint_fast64_t counter;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = 0x9e3779b97f4a7c15u * (atomic_fetch_add(&counter, 1) + 1); /* no entropy yet */
    return seed;
}

void mx_strmap_init(mx_strmap *m) {
    m->slots = NULL;
    m->cap = m->len = 0;
    m->seed = new_seed();
}

void mx_strmap_release(mx_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

/* FNV-1a over the bytes, seeded, with a final avalanche (splitmix64). */
static uint64_t hash_str(uint64_t seed, const char *s) {
    uint64_t h = 0xcbf29ce484222325u ^ seed;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3u;
    }
    h ^= seed;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

static size_t find(const mx_strmap *m, const char *key, uint64_t h) {
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    while (m->slots[i].key) {
        if (m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0) return i;
        i = (i + 1) & mask;
    }
    return i; /* the empty slot where `key` would go */
}

void *mx_strmap_get(const mx_strmap *m, const char *key) {
    if (!m->len) return NULL;
    size_t i = find(m, key, hash_str(m->seed, key));
    return m->slots[i].key ? m->slots[i].value : NULL;
}

static int grow_to(mx_strmap *m, size_t cap) {
    mx_strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    mx_strmap_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = slots;
    m->cap = cap;
    for (size_t j = 0; j < old_cap; j++) {
        if (!old[j].key) continue;
        size_t i = (size_t)old[j].hash & (cap - 1);
        while (slots[i].key) i = (i + 1) & (cap - 1);
        slots[i] = old[j];
    }
    free(old);
    return 0;
}

int mx_strmap_reserve(mx_strmap *m, size_t n) {
    size_t cap = m->cap ? m->cap : MIN_CAP;
    while (n >= cap / 4 * 3) {
        if (cap > SIZE_MAX / 2 / sizeof(mx_strmap_slot)) return -1;
        cap *= 2;
    }
    return cap == m->cap ? 0 : grow_to(m, cap);
}

int mx_strmap_put(mx_strmap *m, const char *key, void *value, void **old) {
    if (old) *old = NULL;
    uint64_t h = hash_str(m->seed, key);
    if (m->len) {
        size_t i = find(m, key, h);
        if (m->slots[i].key) { /* replace: the new value may own a new key */
            if (old) *old = m->slots[i].value;
            m->slots[i].key = key;
            m->slots[i].value = value;
            return 0;
        }
    }
    if (mx_strmap_reserve(m, m->len + 1) < 0) return -1;
    size_t i = find(m, key, h);
    m->slots[i] = (mx_strmap_slot){key, value, h};
    m->len++;
    return 0;
}

void *mx_strmap_remove(mx_strmap *m, const char *key) {
    if (!m->len) return NULL;
    size_t mask = m->cap - 1;
    size_t i = find(m, key, hash_str(m->seed, key));
    if (!m->slots[i].key) return NULL;
    void *value = m->slots[i].value;
    /* Shift back the entries of the probe run that follow the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key) break;
        size_t home = (size_t)m->slots[j].hash & mask;
        /* Move j into the hole i unless its home lies cyclically in (i, j]. */
        int home_between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!home_between) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (mx_strmap_slot){NULL, NULL, 0};
    m->len--;
    return value;
}
