/* Parsing JSON into an arena. cJSON allocates every node and string with
 * its own malloc; for a /sync body that is millions of calls, and as many
 * frees later. Parsing into the batch's arena makes both a few big blocks. */
#ifndef MATRIDGE_JSONPARSE_H
#define MATRIDGE_JSONPARSE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "util/arena.h"

/* Sanitizer builds parse with plain malloc, so ASan sees every node. */
#ifndef MX_JSON_IN_ARENA
#define MX_JSON_IN_ARENA 1
#endif

/* Routes cJSON's allocations through matridge's hooks. Call once, before
 * any other thread uses cJSON (module init does). Outside
 * mx_json_parse_in_arena the hooks are plain malloc and free. */
void mx_json_install_hooks(void);

/* Parses `data` with plain malloc; the caller cJSON_Deletes the tree. NULL
 * when the data is not JSON (or memory ran out). Every parse in matridge
 * goes through here or mx_json_parse_in_arena: see parse_lock. */
cJSON *mx_json_parse(const char *data, size_t len);

/* Parses `data` with every node and string in `arena`. The tree is freed
 * with the arena; only when MX_JSON_IN_ARENA is 0 must the caller
 * cJSON_Delete it. NULL when the data is not JSON (or memory ran out), or
 * with *hijacked set to 1 when cJSON's allocation hooks are no longer
 * matridge's (another user of the shared libcjson installed its own): the
 * parse is refused rather than leak every tree. */
cJSON *mx_json_parse_in_arena(const char *data, size_t len, mx_arena *arena, int *hijacked);

/* What to say when *hijacked was set. */
#define MX_JSON_HOOKS_REPLACED                                                                \
    "cJSON's allocation hooks were replaced by another user of libcjson in this process; "   \
    "matridge cannot parse into its arenas"

#endif
