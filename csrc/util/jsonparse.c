/* JSON parsing: cJSON with malloc for small bodies, and matridge's own
 * in-place parser for the responses it decodes into arenas.
 *
 * The arena parser builds the same cJSON trees (the same node layout, the
 * first child's `prev` pointing at the last) so every reader keeps using
 * cJSON's accessors. It is several times faster than cJSON's parser on a
 * /sync body because it
 * - copies the body once into the arena and ends each string and key there
 *   in place (escapes shrink, never grow), instead of one allocation and
 *   copy per string;
 * - takes its nodes from the arena in runs, not one hook call per node;
 * - reads integers and short decimals without strtod and localeconv;
 * - is a loop with an explicit stack instead of recursion.
 * It also records each array's and object's item count (mx_json_size).
 * It is strict RFC 8259 (no trailing garbage, no leading zeros, JSON
 * whitespace only), nests at most MX_JSON_MAX_DEPTH deep like cJSON, and
 * does not validate UTF-8 (the Python views replace bad bytes). */
#include "util/jsonparse.h"

#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cJSON records its last error in a global that every parse writes, even
 * a successful one: parses on different threads (the engine; Python threads
 * in RoomCache.apply_*) take turns. The arena parser has no global state. */
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;

size_t mx_json_size(const cJSON *c) {
    if (!c || !(c->type & (cJSON_Array | cJSON_Object))) return 0;
    if (c->valueint > 0) return (size_t)c->valueint;
    size_t n = 0;
    for (const cJSON *e = c->child; e; e = e->next) n++;
    return n;
}

cJSON *mx_json_parse(const char *data, size_t len) {
    pthread_mutex_lock(&parse_lock);
    cJSON *root = cJSON_ParseWithLength(data, len);
    pthread_mutex_unlock(&parse_lock);
    return root;
}

/* ---- the arena parser ----------------------------------------------------- */

/* NUL bytes after the copy: the string scan reads 16 bytes at a time and
 * the literal checks compare 5, never past the padding. */
#define PAD 16
/* Nodes taken from the arena at once, growing from FIRST_RUN to LAST_RUN so
 * a small body wastes little. */
#define FIRST_RUN 16u
#define LAST_RUN 4096u

typedef struct {
    mx_arena *arena;
    cJSON *nodes; /* unused nodes of the current run */
    size_t n_nodes, next_run;
} node_source;

static cJSON *new_node(node_source *ns, int type) {
#ifdef MX_ARENA_ASAN
    /* One allocation per node, so ASan puts a red zone after each. */
    cJSON *n = mx_arena_alloc_raw(ns->arena, sizeof *n);
    if (!n) return NULL;
#else
    if (ns->n_nodes == 0) {
        if (ns->next_run < FIRST_RUN) ns->next_run = FIRST_RUN;
        ns->nodes = mx_arena_alloc_raw(ns->arena, ns->next_run * sizeof(cJSON));
        if (!ns->nodes) return NULL;
        ns->n_nodes = ns->next_run;
        if (ns->next_run < LAST_RUN) ns->next_run *= 2;
    }
    cJSON *n = ns->nodes++;
    ns->n_nodes--;
#endif
    n->next = n->prev = n->child = NULL;
    n->type = type;
    n->valuestring = n->string = NULL;
    n->valueint = 0;
    n->valuedouble = 0;
    return n;
}

static char *skip_ws(char *s) {
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t') s++;
    return s;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Writes the UTF-8 of the \u escape at r (after "\u") to w. Returns the
 * read position after it (a surrogate pair takes two escapes), or NULL. */
static char *unicode_escape(char *r, char **w) {
    unsigned cp, lo;
    if (hex4(r, &cp) != 0) return NULL;
    r += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL; /* a lone low surrogate */
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (r[0] != '\\' || r[1] != 'u' || hex4(r + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            return NULL;
        r += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    unsigned char *o = (unsigned char *)*w;
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | (cp >> 6));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | (cp >> 12));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | (cp >> 18));
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *w = (char *)o;
    return r;
}

#if defined(__SSE2__)
#include <emmintrin.h>
#define RUN_WIDTH 16u
#else
#define RUN_WIDTH 8u
#endif

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
/* Non-zero when one of the 8 bytes of v is zero; its lowest set bit marks
 * the first such byte (little-endian). */
#define HAS_ZERO(v) (((v) - ONES) & ~(v) & HIGHS)

/* How many bytes from s before the first quote, backslash or NUL among the
 * next RUN_WIDTH bytes; RUN_WIDTH when there is none. */
static unsigned clean_run(const char *s) {
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i hits = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
        _mm_cmpeq_epi8(v, _mm_setzero_si128()));
    unsigned mask = (unsigned)_mm_movemask_epi8(hits);
    return mask ? (unsigned)__builtin_ctz(mask) : RUN_WIDTH;
#else
    uint64_t v;
    memcpy(&v, s, sizeof v);
    uint64_t mask = HAS_ZERO(v ^ (ONES * '"')) | HAS_ZERO(v ^ (ONES * '\\')) | HAS_ZERO(v);
    return mask ? (unsigned)__builtin_ctzll(mask) / 8 : RUN_WIDTH;
#endif
}

/* The string whose first character is at s (after the opening quote): ends
 * it in place and returns the position after its closing quote, or NULL. */
static char *parse_string(char *s, const char *end) {
    for (;;) {
        unsigned run = clean_run(s);
        s += run;
        if (run == RUN_WIDTH) continue;
        if (*s == '"') {
            *s = '\0';
            return s + 1;
        }
        if (*s == '\\') break;
        if (s >= end) return NULL; /* a NUL: the end of the input, or one inside the string */
        s++;
    }
    /* Escapes: copy down from r to w. */
    char *w = s, *r = s;
    for (;;) {
        char c = *r;
        if (c == '"') {
            *w = '\0';
            return r + 1;
        }
        if (c == '\0' && r >= end) return NULL;
        if (c != '\\') {
            *w++ = c;
            r++;
            continue;
        }
        switch (r[1]) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u':
            if (!(r = unicode_escape(r + 2, &w))) return NULL;
            continue;
        default: return NULL;
        }
        r += 2;
    }
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Exactly representable powers of ten: a mantissa below 2^53 times or over
 * one of them rounds correctly (Clinger's fast path). */
static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The rare number outside the fast path: strtod on a copy that uses the
 * locale's decimal point, as cJSON does. */
static int slow_number(mx_arena *arena, const char *start, size_t len, double *out) {
    char *copy = mx_arena_strndup(arena, start, len);
    if (!copy) return -1;
    const struct lconv *lc = localeconv();
    char point = lc && lc->decimal_point && lc->decimal_point[0] ? lc->decimal_point[0] : '.';
    char *dot = strchr(copy, '.');
    if (dot) *dot = point;
    *out = strtod(copy, NULL);
    return 0;
}

/* The number at s into n; returns the position after it, or NULL. */
static char *parse_number(mx_arena *arena, char *s, cJSON *n) {
    char *start = s;
    int neg = *s == '-';
    if (neg) s++;
    uint64_t m = 0;
    int digits = 0, exp10 = 0, exact = 1;
    if (*s == '0') {
        s++;
    } else if (is_digit(*s)) {
        for (; is_digit(*s); s++) {
            if (digits == 19) {
                exact = 0;
                continue;
            }
            m = m * 10 + (uint64_t)(*s - '0');
            digits++;
        }
    } else {
        return NULL;
    }
    if (*s == '.') {
        s++;
        if (!is_digit(*s)) return NULL;
        for (; is_digit(*s); s++) {
            if (digits == 19) {
                exact = 0;
                continue;
            }
            m = m * 10 + (uint64_t)(*s - '0');
            digits += m != 0; /* leading zeros of 0.000x are not significant */
            exp10--;
        }
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        int eneg = *s == '-';
        if (*s == '-' || *s == '+') s++;
        if (!is_digit(*s)) return NULL;
        int e = 0;
        for (; is_digit(*s); s++)
            if (e < 100000) e = e * 10 + (*s - '0');
        exp10 += eneg ? -e : e;
    }
    double d;
    if (exact && m <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        d = (double)m;
        d = exp10 < 0 ? d / POW10[-exp10] : d * POW10[exp10];
        if (neg) d = -d;
    } else if (slow_number(arena, start, (size_t)(s - start), &d) != 0) {
        return NULL;
    }
    n->valuedouble = d;
    /* cJSON's valueint: the number saturated to int. */
    if (d >= INT_MAX) n->valueint = INT_MAX;
    else if (d <= (double)INT_MIN) n->valueint = INT_MIN;
    else n->valueint = (int)d;
    return s;
}

typedef struct {
    cJSON *node; /* an open object or array */
    cJSON *last; /* its last child so far */
    size_t n;    /* its children so far */
} open_container;

cJSON *mx_json_parse_in_arena(const char *data, size_t len, mx_arena *arena) {
    if (len > SIZE_MAX - PAD) return NULL;
    /* The copy the tree's strings and keys end in (owned by the arena). */
    char *buf = mx_arena_alloc_raw(arena, len + PAD);
    if (!buf) return NULL;
    memcpy(buf, data, len);
    memset(buf + len, 0, PAD);
    const char *end = buf + len;
    node_source ns = {.arena = arena};
    open_container stack[MX_JSON_MAX_DEPTH];
    size_t depth = 0;
    cJSON *root = NULL;
    char *key = NULL; /* the member name of the next value, in an object */

    char *s = buf;
    if ((unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF)
        s += 3; /* a UTF-8 byte order mark, which cJSON skips too */
    s = skip_ws(s);

value:;
    cJSON *n;
    switch (*s) {
    case '{':
    case '[':
        if (depth == MX_JSON_MAX_DEPTH) return NULL;
        if (!(n = new_node(&ns, *s == '{' ? cJSON_Object : cJSON_Array))) return NULL;
        break;
    case '"':
        if (!(n = new_node(&ns, cJSON_String))) return NULL;
        n->valuestring = s + 1;
        if (!(s = parse_string(s + 1, end))) return NULL;
        break;
    case 't':
        if (memcmp(s, "true", 4) != 0 || !(n = new_node(&ns, cJSON_True))) return NULL;
        n->valueint = 1;
        s += 4;
        break;
    case 'f':
        if (memcmp(s, "false", 5) != 0 || !(n = new_node(&ns, cJSON_False))) return NULL;
        s += 5;
        break;
    case 'n':
        if (memcmp(s, "null", 4) != 0 || !(n = new_node(&ns, cJSON_NULL))) return NULL;
        s += 4;
        break;
    default:
        if (*s != '-' && !is_digit(*s)) return NULL;
        if (!(n = new_node(&ns, cJSON_Number)) || !(s = parse_number(arena, s, n))) return NULL;
        break;
    }
    n->string = key;
    key = NULL;
    if (depth == 0) {
        root = n;
    } else {
        open_container *top = &stack[depth - 1];
        if (top->last) {
            top->last->next = n;
            n->prev = top->last;
        } else {
            top->node->child = n;
        }
        top->last = n;
        top->n++;
    }
    if (n->type == cJSON_Object || n->type == cJSON_Array) {
        stack[depth++] = (open_container){.node = n, .last = NULL, .n = 0};
        s = skip_ws(s + 1);
        if (*s == (n->type == cJSON_Object ? '}' : ']')) {
            s++;
            depth--;
            goto after_value;
        }
        if (n->type == cJSON_Object) goto member;
        goto value;
    }

after_value:
    s = skip_ws(s);
    if (depth == 0) return s == end ? root : NULL;
    {
        open_container *top = &stack[depth - 1];
        int object = top->node->type == cJSON_Object;
        if (*s == ',') {
            s = skip_ws(s + 1);
            if (object) goto member;
            goto value;
        }
        if (*s != (object ? '}' : ']')) return NULL;
        s++;
        top->node->child->prev = top->last; /* cJSON's link to the last child */
        top->node->valueint = top->n <= INT_MAX ? (int)top->n : 0; /* see mx_json_size */
        depth--;
        goto after_value;
    }

member:
    if (*s != '"') return NULL;
    key = s + 1;
    if (!(s = parse_string(s + 1, end))) return NULL;
    s = skip_ws(s);
    if (*s != ':') return NULL;
    s = skip_ws(s + 1);
    goto value;
}
