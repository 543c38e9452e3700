/* Bump allocation in 64 KiB blocks; larger requests get a block of their own. */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE (64u * 1024u)
#define ALIGN alignof(max_align_t)

struct mx_arena_block {
    mx_arena_block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

void *mx_arena_alloc(mx_arena *a, size_t size) {
    if (size > SIZE_MAX - ALIGN - BLOCK_SIZE) return NULL;
    size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    mx_arena_block *b = a->head;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > BLOCK_SIZE ? size : BLOCK_SIZE;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->used = 0;
        b->cap = cap;
        /* A dedicated big block goes behind the head so the head's free
         * space stays usable. */
        if (size > BLOCK_SIZE && a->head) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *mx_arena_strndup(mx_arena *a, const char *s, size_t len) {
    if (len == SIZE_MAX) return NULL;
    char *p = mx_arena_alloc(a, len + 1);
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
}
