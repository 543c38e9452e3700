/* Parsing JSON. cJSON allocates every node and string with its own malloc;
 * for a /sync body that is millions of calls, and as many frees later.
 * Responses that are decoded into records are parsed by matridge's own
 * parser into the records' arena instead (jsonparse.c says how). */
#ifndef MATRIDGE_JSONPARSE_H
#define MATRIDGE_JSONPARSE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "util/arena.h"

/* How deep arrays and objects may nest: cJSON's own limit. */
#define MX_JSON_MAX_DEPTH 1000

/* Parses `data` with cJSON and plain malloc; the caller cJSON_Deletes the
 * tree. NULL when the data is not JSON (or memory ran out). */
cJSON *mx_json_parse(const char *data, size_t len);

/* Parses `data` into `arena`: a cJSON tree whose nodes, strings and keys
 * all live in the arena and go with it (never cJSON_Delete it, nor change
 * it with cJSON's functions). NULL when the data is not JSON (RFC 8259,
 * nesting at most MX_JSON_MAX_DEPTH) or memory ran out; what the arena
 * took by then is freed with it. Thread-safe, no lock.
 *
 * Each array and object of such a tree has its number of items in
 * `valueint`, where cJSON leaves 0 for them: walking the list to count it
 * first jumps over every item's subtree, a cache miss per item in a big
 * body. */
cJSON *mx_json_parse_in_arena(const char *data, size_t len, mx_arena *arena);

/* The number of items of an array or object (0 for anything else): the
 * count the arena parser recorded, else the list walked. */
size_t mx_json_size(const cJSON *c);

#endif
