/* Bump allocation in blocks that double from 64 KiB up to 4 MiB, so a small
 * response stays small and a big one takes few mallocs; requests larger
 * than a block get one of their own. */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BLOCK (64u * 1024u)
#define MAX_BLOCK (4u * 1024u * 1024u)
#define ALIGN alignof(max_align_t)

struct mx_arena_block {
    mx_arena_block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

void *mx_arena_alloc_raw(mx_arena *a, size_t size) {
    if (size > SIZE_MAX - ALIGN - MAX_BLOCK - sizeof(mx_arena_block)) return NULL;
    size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    mx_arena_block *b = a->head;
    if (!b || b->cap - b->used < size) {
        if (a->next_block < MIN_BLOCK) a->next_block = MIN_BLOCK;
        size_t block = a->next_block;
        if (block < MAX_BLOCK) a->next_block = block * 2;
        size_t cap = size > block ? size : block;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->used = 0;
        b->cap = cap;
        /* A dedicated big block goes behind the head so the head's free
         * space stays usable. */
        if (size > block && a->head) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

void *mx_arena_alloc(mx_arena *a, size_t size) {
    void *p = mx_arena_alloc_raw(a, size);
    if (p) memset(p, 0, size);
    return p;
}

char *mx_arena_strndup(mx_arena *a, const char *s, size_t len) {
    if (len == SIZE_MAX) return NULL;
    char *p = mx_arena_alloc_raw(a, len + 1);
    if (!p) return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void mx_arena_free(mx_arena *a) {
    mx_arena_block *b = a->head;
    while (b) {
        mx_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->next_block = 0;
}
