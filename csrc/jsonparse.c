/* cJSON's allocation hooks, redirected to an arena on the thread that is
 * parsing into one. */
#include "jsonparse.h"

#include <stdlib.h>

/* The arena of the parse running on this thread, if any. */
static _Thread_local mx_arena *parse_arena;

static void *hook_malloc(size_t size) {
    return parse_arena ? mx_arena_alloc_raw(parse_arena, size) : malloc(size);
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

cJSON *mx_json_parse_in_arena(const char *data, size_t len, mx_arena *arena) {
#if !MX_JSON_IN_ARENA
    (void)arena;
    return cJSON_ParseWithLength(data, len);
#endif
    parse_arena = arena;
    cJSON *root = cJSON_ParseWithLength(data, len);
    parse_arena = NULL;
    return root;
}
