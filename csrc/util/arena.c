/* Bump allocation in blocks that double from 64 KiB up to 4 MiB, so a small
 * response stays small and a big one takes few mallocs; requests larger
 * than a block get one of their own. */
#define _DEFAULT_SOURCE /* posix_memalign, madvise */
#include "util/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Under AddressSanitizer (MX_ARENA_ASAN, arena.h) every allocation is
 * followed by a poisoned red zone and the unused rest of a block stays
 * poisoned, so an overflow from one record into the next is reported as it
 * would be between mallocs: sanitizer builds run the arena path production
 * runs. */
#ifdef MX_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define REDZONE ALIGN
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define REDZONE 0
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Blocks of a huge page or more are aligned to it and offered to the
 * kernel's transparent huge pages: the first /sync of a big account fills
 * ~150 MiB of them, and faulting that in 4 KiB pages took as long as
 * parsing it. */
#define HUGE_PAGE (2u * 1024u * 1024u)

#define MIN_BLOCK (64u * 1024u)
#define MAX_BLOCK (4u * 1024u * 1024u)
#define ALIGN alignof(max_align_t)

struct mx_arena_block {
    mx_arena_block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

/* Memory for a block of `size` bytes, freed with free(). */
static mx_arena_block *new_block(size_t size) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (size >= HUGE_PAGE) {
        void *p = NULL;
        if (posix_memalign(&p, HUGE_PAGE, size) != 0) return NULL;
        /* Only a hint: without transparent huge pages it changes nothing. */
        (void)madvise(p, size & ~(size_t)(HUGE_PAGE - 1), MADV_HUGEPAGE);
        return p;
    }
#endif
    return malloc(size);
}

void *mx_arena_alloc_raw(mx_arena *a, size_t asked) {
    if (asked > SIZE_MAX - ALIGN - REDZONE - MAX_BLOCK - sizeof(mx_arena_block)) return NULL;
    size_t size = (asked + REDZONE + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    mx_arena_block *b = a->head;
    if (!b || b->cap - b->used < size) {
        if (a->next_block < MIN_BLOCK) a->next_block = MIN_BLOCK;
        size_t block = a->next_block;
        if (block < MAX_BLOCK) a->next_block = block * 2;
        size_t cap = size > block ? size : block;
        if (!(b = new_block(sizeof *b + cap))) return NULL;
        b->used = 0;
        b->cap = cap;
        POISON(b->data, cap);
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
    UNPOISON(p, asked);
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
        UNPOISON(b->data, b->cap);
        free(b);
        b = next;
    }
    a->head = NULL;
    a->next_block = 0;
}
