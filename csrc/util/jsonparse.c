/* cJSON's allocation hooks, redirected to an arena on the thread that is
 * parsing into one. */
#include "util/jsonparse.h"

#include <pthread.h>
#include <stdlib.h>

/* cJSON records its last error in a global that every parse writes, even
 * a successful one: parses on different threads (the engine; Python threads
 * in decode_sync and RoomCache.apply_*) take turns. Uncontended in
 * production, where only the engine parses. */
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;

/* The arena of the parse running on this thread, if any. */
static _Thread_local mx_arena *parse_arena;
/* Allocations our hook served during that parse: none means another user
 * of libcjson in this process replaced the hooks (cJSON_InitHooks sets
 * globals of the shared library). */
static _Thread_local size_t arena_allocs;

static void *hook_malloc(size_t size) {
    if (!parse_arena) return malloc(size);
    arena_allocs++;
    return mx_arena_alloc_raw(parse_arena, size);
}

/* cJSON frees only on its own error paths while parsing into an arena:
 * those pieces go with the arena. */
static void hook_free(void *p) {
    if (!parse_arena) free(p);
}

void mx_json_install_hooks(void) {
    cJSON_Hooks hooks = {.malloc_fn = hook_malloc, .free_fn = hook_free};
    cJSON_InitHooks(&hooks);
}

cJSON *mx_json_parse(const char *data, size_t len) {
    pthread_mutex_lock(&parse_lock);
    cJSON *root = cJSON_ParseWithLength(data, len);
    pthread_mutex_unlock(&parse_lock);
    return root;
}

cJSON *mx_json_parse_in_arena(const char *data, size_t len, mx_arena *arena, int *hijacked) {
    *hijacked = 0;
#if !MX_JSON_IN_ARENA
    (void)arena;
    return mx_json_parse(data, len);
#else
    pthread_mutex_lock(&parse_lock);
    parse_arena = arena;
    arena_allocs = 0;
    cJSON *root = cJSON_ParseWithLength(data, len);
    size_t served = arena_allocs;
    parse_arena = NULL;
    if (root && served == 0) {
        /* Every successful parse allocates its root node: it came from
         * someone else's allocator. Give it back through the same hooks
         * (no leak), and refuse loudly rather than parse outside the arena
         * and leak every tree. */
        cJSON_Delete(root);
        root = NULL;
        *hijacked = 1;
    }
    pthread_mutex_unlock(&parse_lock);
    return root;
#endif
}
