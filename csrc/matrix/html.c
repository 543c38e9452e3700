/* Matrix HTML -> plain text with XEP-0393 styling (see html.h).
 *
 * One forward pass: a tolerant tokenizer feeds tags, text and entities to a
 * renderer that writes the output lazily. Whitespace, line breaks and style
 * markers are owed ("pending") and only written when visible text follows,
 * which is how runs of blank lines, markers around nothing and markers
 * outside surrounding whitespace are avoided without any backtracking.
 *
 * Bounds that keep hostile input linear: the element stack holds at most
 * MAX_DEPTH elements (deeper tags are ignored, their text kept); at most one
 * marker per style is open; line prefixes (quotes, list indents) stop growing
 * after MAX_PREFIX levels; a failed tag ends the parse with the rest as text,
 * so nothing is ever scanned twice. */
#include "matrix/html.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 256     /* element stack; deeper start tags are ignored */
#define MAX_PREFIX 8      /* quote / list levels that get a line prefix */
#define MAX_LANG 32       /* code block language, bytes */
#define MAX_BULLET 24     /* "-1000000000. " fits */
#define MAX_ENTITY_NAME 8 /* longest HTML 4 entity name ("thetasym") */
#define MAX_USER_ID 255   /* the spec's limit on user ids, bytes */
#define REPLACEMENT 0xFFFD

/* ---- growable byte buffer ------------------------------------------------ */

typedef struct {
    char *p; /* owned; NUL-terminated once anything was written */
    size_t len, cap;
} sbuf;

static int sbuf_reserve(sbuf *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1) return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int sbuf_put(sbuf *b, const char *s, size_t n) {
    if (sbuf_reserve(b, n) < 0) return -1;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* ---- characters ----------------------------------------------------------- */

static int is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n'; }
static int is_alpha(char ch) { return (ch | 0x20) >= 'a' && (ch | 0x20) <= 'z'; }
static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static int is_alnum(char ch) { return is_alpha(ch) || is_digit(ch); }
static char lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch | 0x20) : ch; }

static int hex_value(char ch) {
    if (is_digit(ch)) return ch - '0';
    ch = lower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Case-insensitive: does s (n bytes) start with the lowercase ASCII `prefix`? */
static int starts_with_ci(const char *s, size_t n, const char *prefix) {
    size_t k = strlen(prefix);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++)
        if (lower(s[i]) != prefix[i]) return 0;
    return 1;
}

/* A code point that may appear in the output: XML 1.0 forbids NUL, most C0
 * controls, surrogates and U+FFFE/U+FFFF, and slidge has to put the text in
 * XML. CR becomes LF (HTML's newline normalisation), FF a space. */
static uint32_t clean_code_point(uint32_t cp) {
    if (cp == '\r') return '\n';
    if (cp == '\f') return ' ';
    if (cp < 0x20 && cp != '\t' && cp != '\n') return REPLACEMENT;
    if (cp >= 0xD800 && cp <= 0xDFFF) return REPLACEMENT;
    if (cp == 0xFFFE || cp == 0xFFFF || cp > 0x10FFFF) return REPLACEMENT;
    return cp;
}

static size_t utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one character of s[0..n) (n >= 1) into *cp and returns the bytes it
 * took. An ill-formed sequence gives U+FFFD for its maximal valid prefix
 * (Unicode's recommended practice, as Python's "replace" does). A whole
 * encoded surrogate (as "surrogatepass" writes it) is one U+FFFD. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        v = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        v = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) {
            if (n >= 3 && s[1] >= 0xA0 && s[1] <= 0xBF && s[2] >= 0x80 && s[2] <= 0xBF) {
                *cp = REPLACEMENT;
                return 3;
            }
            hi = 0x9F;
        }
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        v = b & 0x07;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        *cp = REPLACEMENT;
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *cp = REPLACEMENT;
            return i;
        }
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return i;
}

/* The input made safe to tokenize: valid UTF-8 of allowed characters only,
 * LF line ends. Returns an owned buffer (caller frees), or NULL on ENOMEM. */
static char *sanitize(const char *in, size_t len, size_t *out_len) {
    sbuf b = {0};
    if (sbuf_reserve(&b, len) < 0) return NULL;
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    while (i < len) {
        size_t run = i; /* copy plain ASCII runs in one go */
        while (run < len && s[run] >= 0x20 && s[run] < 0x80) run++;
        if (run > i) {
            if (sbuf_put(&b, in + i, run - i) < 0) goto fail;
            i = run;
            continue;
        }
        uint32_t cp;
        size_t took = utf8_decode(s + i, len - i, &cp);
        if (cp == '\r' && i + 1 < len && s[i + 1] == '\n') took = 2, cp = '\n';
        i += took;
        char enc[4];
        if (sbuf_put(&b, enc, utf8_encode(clean_code_point(cp), enc)) < 0) goto fail;
    }
    if (sbuf_put(&b, "", 0) < 0) goto fail; /* a buffer even for empty input */
    *out_len = b.len;
    return b.p;
fail:
    free(b.p);
    return NULL;
}

/* ---- entities ----------------------------------------------------------- */

typedef struct {
    const char *name;
    uint32_t cp;
} entity;

/* The HTML 4 named entities and XML's apos, sorted bytewise for bsearch. */
static const entity ENTITIES[] = {
    {"AElig", 198}, {"Aacute", 193}, {"Acirc", 194}, {"Agrave", 192}, {"Alpha", 913},
    {"Aring", 197}, {"Atilde", 195}, {"Auml", 196}, {"Beta", 914}, {"Ccedil", 199},
    {"Chi", 935}, {"Dagger", 8225}, {"Delta", 916}, {"ETH", 208}, {"Eacute", 201},
    {"Ecirc", 202}, {"Egrave", 200}, {"Epsilon", 917}, {"Eta", 919}, {"Euml", 203},
    {"Gamma", 915}, {"Iacute", 205}, {"Icirc", 206}, {"Igrave", 204}, {"Iota", 921},
    {"Iuml", 207}, {"Kappa", 922}, {"Lambda", 923}, {"Mu", 924}, {"Ntilde", 209},
    {"Nu", 925}, {"OElig", 338}, {"Oacute", 211}, {"Ocirc", 212}, {"Ograve", 210},
    {"Omega", 937}, {"Omicron", 927}, {"Oslash", 216}, {"Otilde", 213}, {"Ouml", 214},
    {"Phi", 934}, {"Pi", 928}, {"Prime", 8243}, {"Psi", 936}, {"Rho", 929},
    {"Scaron", 352}, {"Sigma", 931}, {"THORN", 222}, {"Tau", 932}, {"Theta", 920},
    {"Uacute", 218}, {"Ucirc", 219}, {"Ugrave", 217}, {"Upsilon", 933}, {"Uuml", 220},
    {"Xi", 926}, {"Yacute", 221}, {"Yuml", 376}, {"Zeta", 918}, {"aacute", 225},
    {"acirc", 226}, {"acute", 180}, {"aelig", 230}, {"agrave", 224}, {"alefsym", 8501},
    {"alpha", 945}, {"amp", 38}, {"and", 8743}, {"ang", 8736}, {"apos", 39},
    {"aring", 229}, {"asymp", 8776}, {"atilde", 227}, {"auml", 228}, {"bdquo", 8222},
    {"beta", 946}, {"brvbar", 166}, {"bull", 8226}, {"cap", 8745}, {"ccedil", 231},
    {"cedil", 184}, {"cent", 162}, {"chi", 967}, {"circ", 710}, {"clubs", 9827},
    {"cong", 8773}, {"copy", 169}, {"crarr", 8629}, {"cup", 8746}, {"curren", 164},
    {"dArr", 8659}, {"dagger", 8224}, {"darr", 8595}, {"deg", 176}, {"delta", 948},
    {"diams", 9830}, {"divide", 247}, {"eacute", 233}, {"ecirc", 234}, {"egrave", 232},
    {"empty", 8709}, {"emsp", 8195}, {"ensp", 8194}, {"epsilon", 949}, {"equiv", 8801},
    {"eta", 951}, {"eth", 240}, {"euml", 235}, {"euro", 8364}, {"exist", 8707},
    {"fnof", 402}, {"forall", 8704}, {"frac12", 189}, {"frac14", 188}, {"frac34", 190},
    {"frasl", 8260}, {"gamma", 947}, {"ge", 8805}, {"gt", 62}, {"hArr", 8660},
    {"harr", 8596}, {"hearts", 9829}, {"hellip", 8230}, {"iacute", 237}, {"icirc", 238},
    {"iexcl", 161}, {"igrave", 236}, {"image", 8465}, {"infin", 8734}, {"int", 8747},
    {"iota", 953}, {"iquest", 191}, {"isin", 8712}, {"iuml", 239}, {"kappa", 954},
    {"lArr", 8656}, {"lambda", 955}, {"lang", 9001}, {"laquo", 171}, {"larr", 8592},
    {"lceil", 8968}, {"ldquo", 8220}, {"le", 8804}, {"lfloor", 8970}, {"lowast", 8727},
    {"loz", 9674}, {"lrm", 8206}, {"lsaquo", 8249}, {"lsquo", 8216}, {"lt", 60},
    {"macr", 175}, {"mdash", 8212}, {"micro", 181}, {"middot", 183}, {"minus", 8722},
    {"mu", 956}, {"nabla", 8711}, {"nbsp", 160}, {"ndash", 8211}, {"ne", 8800},
    {"ni", 8715}, {"not", 172}, {"notin", 8713}, {"nsub", 8836}, {"ntilde", 241},
    {"nu", 957}, {"oacute", 243}, {"ocirc", 244}, {"oelig", 339}, {"ograve", 242},
    {"oline", 8254}, {"omega", 969}, {"omicron", 959}, {"oplus", 8853}, {"or", 8744},
    {"ordf", 170}, {"ordm", 186}, {"oslash", 248}, {"otilde", 245}, {"otimes", 8855},
    {"ouml", 246}, {"para", 182}, {"part", 8706}, {"permil", 8240}, {"perp", 8869},
    {"phi", 966}, {"pi", 960}, {"piv", 982}, {"plusmn", 177}, {"pound", 163},
    {"prime", 8242}, {"prod", 8719}, {"prop", 8733}, {"psi", 968}, {"quot", 34},
    {"rArr", 8658}, {"radic", 8730}, {"rang", 9002}, {"raquo", 187}, {"rarr", 8594},
    {"rceil", 8969}, {"rdquo", 8221}, {"real", 8476}, {"reg", 174}, {"rfloor", 8971},
    {"rho", 961}, {"rlm", 8207}, {"rsaquo", 8250}, {"rsquo", 8217}, {"sbquo", 8218},
    {"scaron", 353}, {"sdot", 8901}, {"sect", 167}, {"shy", 173}, {"sigma", 963},
    {"sigmaf", 962}, {"sim", 8764}, {"spades", 9824}, {"sub", 8834}, {"sube", 8838},
    {"sum", 8721}, {"sup", 8835}, {"sup1", 185}, {"sup2", 178}, {"sup3", 179},
    {"supe", 8839}, {"szlig", 223}, {"tau", 964}, {"there4", 8756}, {"theta", 952},
    {"thetasym", 977}, {"thinsp", 8201}, {"thorn", 254}, {"tilde", 732}, {"times", 215},
    {"trade", 8482}, {"uArr", 8657}, {"uacute", 250}, {"uarr", 8593}, {"ucirc", 251},
    {"ugrave", 249}, {"uml", 168}, {"upsih", 978}, {"upsilon", 965}, {"uuml", 252},
    {"weierp", 8472}, {"xi", 958}, {"yacute", 253}, {"yen", 165}, {"yuml", 255},
    {"zeta", 950}, {"zwj", 8205}, {"zwnj", 8204},
};

static int entity_cmp(const void *key, const void *item) {
    return strcmp(key, ((const entity *)item)->name);
}

/* Parses the character reference at s[i] == '&'. Returns the bytes it spans
 * and sets *cp (already cleaned), or 0 when it is not one (the '&' is then
 * literal text, and so is an unknown name). Named references need their ';';
 * numeric ones may omit it, as in HTML. */
static size_t parse_entity(const char *s, size_t n, size_t i, uint32_t *cp) {
    size_t p = i + 1;
    if (p < n && s[p] == '#') {
        p++;
        int hex = p < n && lower(s[p]) == 'x';
        if (hex) p++;
        size_t digits = p;
        uint32_t v = 0;
        int too_big = 0;
        for (; p < n; p++) {
            int d = hex ? hex_value(s[p]) : is_digit(s[p]) ? s[p] - '0' : -1;
            if (d < 0) break;
            if (!too_big) {
                v = v * (hex ? 16 : 10) + (uint32_t)d;
                too_big = v > 0x10FFFF;
            }
        }
        if (p == digits) return 0;
        if (p < n && s[p] == ';') p++;
        *cp = too_big || v == 0 ? REPLACEMENT : clean_code_point(v);
        return p - i;
    }
    size_t start = p;
    while (p < n && p - start <= MAX_ENTITY_NAME && is_alnum(s[p])) p++;
    size_t len = p - start;
    if (len == 0 || len > MAX_ENTITY_NAME || p >= n || s[p] != ';') return 0;
    char name[MAX_ENTITY_NAME + 1];
    memcpy(name, s + start, len);
    name[len] = '\0';
    const entity *e = bsearch(name, ENTITIES, sizeof ENTITIES / sizeof ENTITIES[0],
                              sizeof ENTITIES[0], entity_cmp);
    if (!e) return 0;
    *cp = e->cp;
    return p + 1 - i;
}

/* s[0..n) with its character references decoded: an owned NUL-terminated
 * string (caller frees), or NULL on ENOMEM. */
static char *decode_entities(const char *s, size_t n, size_t *out_len) {
    sbuf b = {0};
    if (sbuf_reserve(&b, n) < 0) return NULL;
    size_t i = 0;
    while (i < n) {
        const char *amp = memchr(s + i, '&', n - i);
        size_t upto = amp ? (size_t)(amp - s) : n;
        sbuf_put(&b, s + i, upto - i); /* reserved above: cannot fail */
        i = upto;
        if (i >= n) break;
        uint32_t cp;
        size_t took = parse_entity(s, n, i, &cp);
        if (!took) {
            sbuf_put(&b, "&", 1);
            i++;
            continue;
        }
        char enc[4];
        if (sbuf_put(&b, enc, utf8_encode(cp, enc)) < 0) {
            free(b.p);
            return NULL;
        }
        i += took;
    }
    b.p[b.len] = '\0';
    if (out_len) *out_len = b.len;
    return b.p;
}

/* ---- tags ----------------------------------------------------------------- */

enum action {
    ACT_STYLE,    /* inline emphasis: a marker around the text */
    ACT_HEADING,  /* its own paragraph, bold */
    ACT_LINK,     /* text, then the target when it says something else */
    ACT_PRE,      /* ``` code block */
    ACT_CODE,     /* `inline code`, or the language of a code block */
    ACT_QUOTE,    /* "> " before each line */
    ACT_UL,       /* "• " items */
    ACT_OL,       /* "1. " items */
    ACT_ITEM,     /* a list item */
    ACT_HIDDEN,   /* parsed, but nothing inside is shown */
    ACT_RAW,      /* raw text element: skipped up to its end tag */
    ACT_LINE,     /* starts and ends on a line of its own */
    ACT_PARAGRAPH, /* like ACT_LINE, with a blank line around it */
    ACT_BR,
    ACT_IMG,
    ACT_TABLE, /* table or row: resets the cell count */
    ACT_CELL,
    ACT_SPAN, /* spoilers */
};

typedef struct {
    const char *name;
    unsigned char action;
    char marker; /* ACT_STYLE's XEP-0393 directive */
} tag_rule;

/* Tags not listed are unknown: the tag is ignored and its text kept. Listed
 * first are the ones Matrix clients send most. */
static const tag_rule TAGS[] = {
    {"p", ACT_PARAGRAPH, 0},    {"br", ACT_BR, 0},
    {"a", ACT_LINK, 0},         {"b", ACT_STYLE, '*'},
    {"strong", ACT_STYLE, '*'}, {"i", ACT_STYLE, '_'},
    {"em", ACT_STYLE, '_'},     {"code", ACT_CODE, 0},
    {"pre", ACT_PRE, 0},        {"blockquote", ACT_QUOTE, 0},
    {"mx-reply", ACT_HIDDEN, 0}, {"span", ACT_SPAN, 0},
    {"ul", ACT_UL, 0},          {"ol", ACT_OL, 0},
    {"li", ACT_ITEM, 0},        {"del", ACT_STYLE, '~'},
    {"s", ACT_STYLE, '~'},      {"strike", ACT_STYLE, '~'},
    {"h1", ACT_HEADING, 0},     {"h2", ACT_HEADING, 0},
    {"h3", ACT_HEADING, 0},     {"h4", ACT_HEADING, 0},
    {"h5", ACT_HEADING, 0},     {"h6", ACT_HEADING, 0},
    {"div", ACT_LINE, 0},       {"hr", ACT_PARAGRAPH, 0},
    {"img", ACT_IMG, 0},        {"table", ACT_TABLE, 0},
    {"tr", ACT_TABLE, 0},       {"td", ACT_CELL, 0},
    {"th", ACT_CELL, 0},        {"caption", ACT_LINE, 0},
    {"details", ACT_LINE, 0},   {"summary", ACT_LINE, 0},
    {"head", ACT_HIDDEN, 0},    {"script", ACT_RAW, 0},
    {"style", ACT_RAW, 0},      {"title", ACT_RAW, 0},
    {"template", ACT_RAW, 0},   {"iframe", ACT_RAW, 0},
    {"noembed", ACT_RAW, 0},    {"noframes", ACT_RAW, 0},
    {"dl", ACT_LINE, 0},        {"dt", ACT_LINE, 0},
    {"dd", ACT_LINE, 0},        {"section", ACT_LINE, 0},
    {"article", ACT_LINE, 0},   {"header", ACT_LINE, 0},
    {"footer", ACT_LINE, 0},    {"main", ACT_LINE, 0},
    {"nav", ACT_LINE, 0},       {"aside", ACT_LINE, 0},
    {"figure", ACT_LINE, 0},    {"figcaption", ACT_LINE, 0},
    {"address", ACT_LINE, 0},   {"center", ACT_LINE, 0},
};
#define N_TAGS (sizeof TAGS / sizeof TAGS[0])
#define MAX_TAG_NAME 10 /* longest name above */
_Static_assert(N_TAGS <= 255, "element.tag is an unsigned char");

/* The tag's index in TAGS, or -1 when unknown. name is lowercase. */
static int find_tag(const char *name, size_t len) {
    if (len > MAX_TAG_NAME) return -1;
    for (size_t k = 0; k < N_TAGS; k++)
        if (strlen(TAGS[k].name) == len && memcmp(TAGS[k].name, name, len) == 0)
            return (int)k;
    return -1;
}

typedef struct {
    const char *value; /* into the input; not decoded */
    size_t len;
    int present;
} attr;

typedef struct {
    char name[MAX_TAG_NAME + 1]; /* lowercase; only valid when name_len fits */
    size_t name_len;
    int self_closing;
    attr href, alt, title, start, klass, spoiler;
} tag_token;

static void keep_attr(tag_token *t, const char *name, size_t len, const char *v,
                      size_t vlen) {
    static const struct {
        const char *name;
        size_t offset;
    } wanted[] = {
        {"href", offsetof(tag_token, href)},   {"alt", offsetof(tag_token, alt)},
        {"title", offsetof(tag_token, title)}, {"start", offsetof(tag_token, start)},
        {"class", offsetof(tag_token, klass)},
        {"data-mx-spoiler", offsetof(tag_token, spoiler)},
    };
    for (size_t k = 0; k < sizeof wanted / sizeof wanted[0]; k++) {
        if (strlen(wanted[k].name) != len || !starts_with_ci(name, len, wanted[k].name))
            continue;
        attr *a = (attr *)((char *)t + wanted[k].offset);
        if (!a->present) { /* as in HTML, the first one wins */
            a->value = v;
            a->len = vlen;
            a->present = 1;
        }
        return;
    }
}

/* Tokenizes the tag whose name starts at s[p] (after "<" or "</"). Returns
 * the index after its '>', or 0 when the input ends inside the tag. Values
 * may be quoted with " or ', unquoted, or absent. */
static size_t parse_tag(const char *s, size_t n, size_t p, tag_token *t) {
    size_t start = p;
    while (p < n && !is_ws(s[p]) && s[p] != '/' && s[p] != '>') p++;
    t->name_len = p - start;
    for (size_t k = 0; k < t->name_len && k < MAX_TAG_NAME; k++)
        t->name[k] = lower(s[start + k]);
    t->name[t->name_len < MAX_TAG_NAME ? t->name_len : MAX_TAG_NAME] = '\0';
    for (;;) {
        while (p < n && is_ws(s[p])) p++;
        if (p >= n) return 0;
        if (s[p] == '>') return p + 1;
        if (s[p] == '/') {
            p++;
            if (p < n && s[p] == '>') {
                t->self_closing = 1;
                return p + 1;
            }
            continue;
        }
        size_t name = p++; /* a name may start with '=' */
        while (p < n && !is_ws(s[p]) && s[p] != '/' && s[p] != '>' && s[p] != '=') p++;
        size_t name_len = p - name;
        while (p < n && is_ws(s[p])) p++;
        const char *value = s + p;
        size_t value_len = 0;
        if (p < n && s[p] == '=') {
            p++;
            while (p < n && is_ws(s[p])) p++;
            if (p >= n) return 0;
            if (s[p] == '"' || s[p] == '\'') {
                const char *close = memchr(s + p + 1, s[p], n - p - 1);
                if (!close) return 0;
                value = s + p + 1;
                value_len = (size_t)(close - value);
                p = (size_t)(close - s) + 1;
            } else {
                value = s + p;
                while (p < n && !is_ws(s[p]) && s[p] != '>') p++;
                value_len = (size_t)(s + p - value);
            }
        }
        keep_attr(t, s + name, name_len, value, value_len);
    }
}

/* ---- the renderer ----------------------------------------------------------- */

enum kind { K_INERT, K_STYLE, K_LINK, K_PRE, K_CODE, K_QUOTE, K_LIST, K_ITEM, K_HIDDEN };

typedef struct {
    unsigned char kind;        /* enum kind */
    unsigned char tag;         /* index in TAGS, for end tags */
    unsigned char has_marker;  /* owns the top entry of the marker stack */
    unsigned char prefixed;    /* owns the top entry of the prefix stack */
    unsigned char paragraph;   /* a heading: blank line after it */
    unsigned char outer_pre;   /* the pre that owns the code block */
    unsigned char inline_code; /* K_CODE outside a code block */
    unsigned char ordered;     /* K_LIST: ol */
    unsigned char bullet_done; /* K_ITEM: bullet written, later lines indent */
    unsigned char bullet_len, bullet_cols;
    char bullet[MAX_BULLET];
    int item;     /* innermost open li since the innermost list, or -1 */
    int list;     /* innermost open list, or -1 */
    long counter; /* K_LIST: next ordered item number */
} element;

typedef struct {
    sbuf out;
    size_t out_cp; /* code points in out */
    mx_mention *mentions; /* owned, with their user ids */
    size_t n_mentions, cap_mentions;
    int oom; /* sticky: every writer becomes a no-op */

    /* owed before the next visible text */
    int pending_space;
    int pending_breaks; /* newlines, at most 2 (one blank line) */
    int break_quotes;   /* fewest quote levels seen while breaks were owed */
    int line_start;     /* the next text begins a line: write its prefix */

    int hidden; /* open mx-reply / head elements */

    /* XEP-0393 markers of the open style elements, outermost first; the
     * first `opened` have been written on the current line. */
    char markers[4];
    int n_markers, opened;
    int code_depth; /* open inline code: no markers inside */
    size_t rejoin_at; /* out.len right after an element closed its marker */

    /* code block */
    int pre_depth;
    int fence_done;      /* the opening ``` line is written */
    int pre_skip_newline; /* HTML drops a newline right after <pre> */
    size_t pre_newlines; /* owed inside the block, verbatim */
    char lang[MAX_LANG + 1];
    size_t lang_len;

    /* elements that prefix lines (quotes, list items), outermost first */
    int prefix[MAX_PREFIX];
    int n_prefix, quotes;

    size_t cells; /* cells so far in the current table row */

    /* the open link, if any */
    int link; /* its element index, or -1 */
    char *href; /* owned, entities decoded, or NULL */
    size_t href_len;
    char *target_id; /* owned: the Matrix id of a permalink, or NULL */
    int link_started;
    size_t link_start_cp, link_end_cp;
    sbuf link_text; /* the words written inside, up to href_len + 1 bytes */
    int link_text_long;

    int depth;
    unsigned open_tags[N_TAGS]; /* open elements per tag, for end tags */
    /* Last, and not zeroed: push() sets each element as it opens, and only
     * open ones are read. Zeroing all of it cost more than the conversion
     * of a short message. */
    element stack[MAX_DEPTH];
} conv;

static void put(conv *c, const char *s, size_t n) {
    if (c->oom || n == 0) return;
    if (sbuf_put(&c->out, s, n) < 0) {
        c->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c->out_cp++;
}

static void open_markers(conv *c) {
    /* "<b>a</b><b>b</b>": take back the marker just closed ("*ab*", not
     * "*a**b*", which XEP-0393 would not read as two bold spans) */
    if (c->opened < c->n_markers && c->out.len == c->rejoin_at && c->out.len &&
        c->markers[c->opened] == c->out.p[c->out.len - 1]) {
        c->out.p[--c->out.len] = '\0';
        c->out_cp--;
        c->opened++;
    }
    for (; c->opened < c->n_markers; c->opened++) put(c, &c->markers[c->opened], 1);
}

/* Markers may not span lines (XEP-0393): close them at a line end; they
 * open again before the next text. */
static void close_markers(conv *c) {
    while (c->opened > 0) put(c, &c->markers[--c->opened], 1);
}

static const char SPACES[] = "                        "; /* MAX_BULLET wide */

static void line_prefix(conv *c) {
    for (int k = 0; k < c->n_prefix; k++) {
        element *e = &c->stack[c->prefix[k]];
        if (e->kind == K_QUOTE) {
            put(c, "> ", 2);
        } else if (!e->bullet_done) {
            put(c, e->bullet, e->bullet_len);
            e->bullet_done = 1;
        } else {
            put(c, SPACES, e->bullet_cols);
        }
    }
}

/* A blank line inside `quotes` quotes: ">", "> >" ... (no list indent). */
static void blank_prefix(conv *c, int quotes) {
    for (int k = 0; k < quotes; k++) put(c, k ? " >" : ">", k ? 2 : 1);
}

/* Writes what is owed before visible text; returns 1 if that was whitespace. */
static int flush(conv *c) {
    int wrote_space = 0;
    if (c->pending_breaks && c->out.len) {
        close_markers(c);
        int quotes = c->break_quotes < c->quotes ? c->break_quotes : c->quotes;
        put(c, "\n", 1);
        for (int k = 1; k < c->pending_breaks; k++) {
            blank_prefix(c, quotes);
            put(c, "\n", 1);
        }
        c->line_start = 1;
        wrote_space = 1;
    }
    c->pending_breaks = 0;
    if (c->line_start) {
        line_prefix(c);
        c->line_start = 0;
        c->pending_space = 0;
    } else if (c->pending_space) {
        put(c, " ", 1);
        c->pending_space = 0;
        wrote_space = 1;
    }
    return wrote_space;
}

/* Inside a code block: the opening fence, then the owed newlines. */
static void flush_pre(conv *c) {
    if (!c->fence_done) {
        put(c, "```", 3);
        put(c, c->lang, c->lang_len);
        c->fence_done = 1;
        c->pre_newlines++;
    }
    c->pre_skip_newline = 0;
    for (; c->pre_newlines; c->pre_newlines--) {
        put(c, "\n", 1);
        if (c->pre_newlines > 1)
            blank_prefix(c, c->quotes);
        else
            line_prefix(c);
    }
}

static void link_text_add(conv *c, const char *s, size_t n) {
    if (c->link_text_long) return;
    if (c->link_text.len + n > c->href_len + 1) {
        c->link_text_long = 1; /* longer than the target: cannot be equal */
        return;
    }
    if (sbuf_put(&c->link_text, s, n) < 0) c->oom = 1;
}

/* Writes visible text s[0..n) (no whitespace outside code blocks). */
static void visible(conv *c, const char *s, size_t n) {
    if (c->hidden || c->oom || n == 0) return;
    int gap = flush(c);
    if (c->pre_depth)
        flush_pre(c);
    else
        open_markers(c);
    if (c->link >= 0) {
        if (!c->link_started) {
            c->link_started = 1;
            c->link_start_cp = c->out_cp;
        } else if (gap) {
            link_text_add(c, " ", 1);
        }
        link_text_add(c, s, n);
    }
    put(c, s, n);
    if (c->link >= 0) c->link_end_cp = c->out_cp;
}

/* Text from the document: whitespace collapses outside code blocks. */
static void text(conv *c, const char *s, size_t n) {
    if (c->hidden || c->oom) return;
    size_t i = 0;
    while (i < n) {
        if (c->pre_depth) {
            if (s[i] == '\n') {
                if (c->pre_skip_newline)
                    c->pre_skip_newline = 0;
                else
                    c->pre_newlines++;
                i++;
                continue;
            }
            const char *nl = memchr(s + i, '\n', n - i);
            size_t j = nl ? (size_t)(nl - s) : n;
            visible(c, s + i, j - i);
            i = j;
        } else if (is_ws(s[i])) {
            c->pending_space = 1;
            while (i < n && is_ws(s[i])) i++;
        } else {
            size_t j = i;
            while (j < n && !is_ws(s[j])) j++;
            visible(c, s + i, j - i);
            i = j;
        }
    }
}

/* Owes a line break (level 1) or a blank line (level 2) before more text. */
static void request_break(conv *c, int level) {
    if (c->hidden || c->pre_depth) return;
    if (!c->pending_breaks || c->quotes < c->break_quotes) c->break_quotes = c->quotes;
    if (level > c->pending_breaks) c->pending_breaks = level;
}

static void hard_break(conv *c) {
    if (c->hidden) return;
    if (c->pre_depth) {
        c->pre_newlines++;
        c->pre_skip_newline = 0;
        return;
    }
    if (!c->pending_breaks || c->quotes < c->break_quotes) c->break_quotes = c->quotes;
    if (c->pending_breaks < 2) c->pending_breaks++;
    c->pending_space = 0;
}

/* ---- links and pills -------------------------------------------------------- */

/* The Matrix id a permalink names, as an owned string ("@user:server",
 * "#alias:server" or "!room:server"): https://matrix.to/#/<id>[/...][?...]
 * with the id maybe percent-encoded, or matrix:u/<user>, matrix:r/<alias>,
 * matrix:roomid/<room>. NULL for other links and malformed ids; sets *oom on
 * ENOMEM. */
static char *permalink_id(const char *href, size_t n, int *oom) {
    size_t p;
    char sigil = 0; /* matrix: URIs leave the sigil out */
    if (starts_with_ci(href, n, "https://matrix.to/#/"))
        p = 20;
    else if (starts_with_ci(href, n, "http://matrix.to/#/"))
        p = 19;
    else if (starts_with_ci(href, n, "matrix:u/"))
        p = 9, sigil = '@';
    else if (starts_with_ci(href, n, "matrix:r/"))
        p = 9, sigil = '#';
    else if (starts_with_ci(href, n, "matrix:roomid/"))
        p = 14, sigil = '!';
    else
        return NULL;
    size_t end = p; /* the id ends where an event, query or fragment starts */
    while (end < n && href[end] != '?' && href[end] != '/' && (!sigil || href[end] != '#'))
        end++;
    if (end - p > 3 * MAX_USER_ID) return NULL;
    char *id = malloc(end - p + 2); /* owned by the caller */
    if (!id) {
        *oom = 1;
        return NULL;
    }
    size_t len = 0;
    if (sigil) id[len++] = sigil;
    for (size_t i = p; i < end; i++) {
        int hi, lo;
        if (href[i] == '%' && i + 2 < end && (hi = hex_value(href[i + 1])) >= 0 &&
            (lo = hex_value(href[i + 2])) >= 0) {
            id[len++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            id[len++] = href[i];
        }
    }
    id[len] = '\0';
    /* sigil, localpart, ':', server; printable ASCII without '/' */
    const char *colon = memchr(id, ':', len);
    int ok = len <= MAX_USER_ID && len && strchr("@#!", id[0]) && colon &&
             colon > id + 1 && (size_t)(colon - id) + 1 < len;
    for (size_t i = 0; ok && i < len; i++)
        ok = id[i] > 0x20 && id[i] < 0x7F && id[i] != '/';
    if (!ok) {
        free(id);
        return NULL;
    }
    return id;
}

/* Does the link text say what the target says? ("mailto:" and one trailing
 * slash do not count.) */
static int link_text_is_target(const conv *c, const char *href, const char *id) {
    if (c->link_text_long) return 0;
    if (id && c->link_text.len == strlen(id) && memcmp(c->link_text.p, id, strlen(id)) == 0)
        return 1; /* a room permalink showing the room's alias or id */
    size_t from = starts_with_ci(href, c->href_len, "mailto:") ? 7 : 0;
    size_t to = c->href_len;
    if (to > from && href[to - 1] == '/') to--;
    size_t tn = c->link_text.len;
    if (tn && c->link_text.p[tn - 1] == '/') tn--;
    return tn == to - from && (tn == 0 || memcmp(c->link_text.p, href + from, tn) == 0);
}

static void add_mention(conv *c, size_t start, size_t end, char *user_id) {
    if (c->n_mentions == c->cap_mentions) {
        size_t cap = c->cap_mentions ? c->cap_mentions * 2 : 4;
        mx_mention *m = realloc(c->mentions, cap * sizeof *m);
        if (!m) {
            free(user_id);
            c->oom = 1;
            return;
        }
        c->mentions = m;
        c->cap_mentions = cap;
    }
    c->mentions[c->n_mentions++] = (mx_mention){start, end, user_id};
}

static void close_link(conv *c) {
    char *href = c->href, *id = c->target_id; /* owned here from now on */
    char *user = id && id[0] == '@' ? id : NULL;
    int started = c->link_started;
    c->link = -1;
    c->href = c->target_id = NULL;
    if (c->hidden || c->oom) {
        free(user);
    } else if (user) {
        if (!started) { /* a pill without text: show whom it names */
            c->link = MAX_DEPTH; /* track the span; no element owns it */
            c->link_started = 0;
            visible(c, user, strlen(user));
            started = c->link_started;
            c->link = -1;
        }
        if (started)
            add_mention(c, c->link_start_cp, c->link_end_cp, user);
        else
            free(user);
    } else if (href && c->href_len && !link_text_is_target(c, href, id)) {
        if (started) c->pending_space = 1;
        /* "<target>"; whitespace in it would split it, so percent-encode it */
        sbuf b = {0};
        int fail = sbuf_put(&b, "<", 1) < 0;
        for (size_t i = 0; !fail && i < c->href_len; i++)
            fail = is_ws(href[i]) ? sbuf_put(&b, "%20", 3) < 0
                                  : sbuf_put(&b, href + i, 1) < 0;
        if (fail || sbuf_put(&b, ">", 1) < 0)
            c->oom = 1;
        else
            visible(c, b.p, b.len);
        free(b.p);
    }
    if (!user) free(id);
    free(href);
    c->link_text.len = 0;
    c->link_text_long = 0;
    c->link_started = 0;
}

/* ---- the element stack ------------------------------------------------------ */

static element *push(conv *c, int tag, enum kind kind) {
    if (c->depth >= MAX_DEPTH) return NULL;
    element *e = &c->stack[c->depth];
    const element *parent = c->depth ? &c->stack[c->depth - 1] : NULL;
    memset(e, 0, sizeof *e);
    e->kind = (unsigned char)kind;
    e->tag = (unsigned char)tag;
    e->item = parent ? parent->item : -1;
    e->list = parent ? parent->list : -1;
    c->open_tags[tag]++;
    c->depth++;
    return e;
}

static void push_marker(conv *c, element *e, char marker) {
    if (c->pre_depth || c->code_depth) return; /* no styling inside code */
    for (int k = 0; k < c->n_markers; k++)
        if (c->markers[k] == marker) return; /* already styled so */
    c->markers[c->n_markers++] = marker;
    e->has_marker = 1;
}

static void push_prefix(conv *c, element *e) {
    if (c->n_prefix >= MAX_PREFIX) return;
    c->prefix[c->n_prefix++] = (int)(e - c->stack);
    e->prefixed = 1;
    if (e->kind == K_QUOTE) c->quotes++;
}

static void pop(conv *c) {
    element *e = &c->stack[--c->depth];
    c->open_tags[e->tag]--;
    if (e->has_marker) {
        c->n_markers--;
        if (c->opened > c->n_markers) {
            c->opened = c->n_markers;
            put(c, &c->markers[c->n_markers], 1);
            c->rejoin_at = c->out.len;
        }
    }
    if (e->prefixed) {
        c->n_prefix--;
        if (e->kind == K_QUOTE) c->quotes--;
    }
    switch ((enum kind)e->kind) {
    case K_STYLE:
        if (e->paragraph) request_break(c, 2);
        break;
    case K_LINK:
        close_link(c);
        break;
    case K_PRE:
        c->pre_depth--;
        if (e->outer_pre) {
            if (c->fence_done && !c->hidden) {
                put(c, "\n", 1);
                line_prefix(c);
                put(c, "```", 3);
            }
            c->fence_done = 0;
            c->pre_newlines = 0;
            c->lang_len = 0;
            c->lang[0] = '\0';
            request_break(c, 2);
        }
        break;
    case K_CODE:
        if (e->inline_code) c->code_depth--;
        break;
    case K_QUOTE:
    case K_LIST:
    case K_ITEM:
        request_break(c, 1);
        break;
    case K_HIDDEN:
        c->hidden--;
        break;
    case K_INERT:
        break;
    }
}

static void pop_to(conv *c, int index) {
    while (c->depth > index) pop(c);
}

/* ---- start and end tags ----------------------------------------------------- */

/* The language of a code block, from class="language-xyz". */
static void take_language(conv *c, const attr *klass) {
    if (c->fence_done || c->lang_len || !klass->present) return;
    const char *s = klass->value;
    size_t n = klass->len;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !is_ws(s[i - 1])) continue; /* only at a class start */
        if (!starts_with_ci(s + i, n - i, "language-")) continue;
        size_t len = 0;
        for (size_t j = i + 9; j < n && len < MAX_LANG; j++) {
            char ch = s[j];
            if (!is_alnum(ch) && ch != '-' && ch != '_' && ch != '+' && ch != '#' &&
                ch != '.')
                break;
            c->lang[len++] = ch;
        }
        c->lang[len] = '\0';
        c->lang_len = len;
        return;
    }
}

/* <ol start="n">: the first number, kept to a sane range. */
static long list_start(const attr *start) {
    if (!start->present) return 1;
    const char *s = start->value;
    size_t n = start->len, i = 0;
    while (i < n && is_ws(s[i])) i++;
    int negative = i < n && s[i] == '-';
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    if (i >= n || !is_digit(s[i])) return 1;
    long v = 0;
    for (; i < n && is_digit(s[i]); i++)
        if (v < 1000000000L) v = v * 10 + (s[i] - '0');
    if (v > 1000000000L) v = 1000000000L;
    return negative ? -v : v;
}

static void start_item(conv *c, int tag) {
    const element *top = c->depth ? &c->stack[c->depth - 1] : NULL;
    if (top && top->item >= 0) pop_to(c, top->item); /* <li> closes the last one */
    if (c->depth >= MAX_DEPTH) return;
    request_break(c, 1);
    element *e = push(c, tag, K_ITEM);
    e->item = (int)(e - c->stack);
    element *list = e->list >= 0 ? &c->stack[e->list] : NULL;
    if (list && list->ordered) {
        int len = snprintf(e->bullet, sizeof e->bullet, "%ld. ", list->counter);
        e->bullet_len = e->bullet_cols = (unsigned char)len;
        if (list->counter < 2000000000L) list->counter++;
    } else {
        memcpy(e->bullet, "\xe2\x80\xa2 ", 4); /* "• " */
        e->bullet_len = 4;
        e->bullet_cols = 2;
    }
    push_prefix(c, e);
}

static void start_link(conv *c, int tag, const tag_token *t) {
    if (c->link != -1 || c->hidden) { /* links do not nest; hidden ones do nothing */
        push(c, tag, K_INERT);
        return;
    }
    char *href = NULL, *id = NULL; /* owned here until handed to c */
    size_t href_len = 0;
    if (t->href.present) {
        href = decode_entities(t->href.value, t->href.len, &href_len);
        if (!href) {
            c->oom = 1;
            return;
        }
        id = permalink_id(href, href_len, &c->oom);
    }
    element *e = push(c, tag, K_LINK);
    if (!e) {
        free(href);
        free(id);
        return;
    }
    c->link = (int)(e - c->stack);
    c->href = href;
    c->href_len = href_len;
    c->target_id = id;
    c->link_started = 0;
    c->link_text.len = 0;
    c->link_text_long = 0;
}

/* Writes an attribute's decoded value as document text. */
static void attr_text(conv *c, const attr *a) {
    size_t len;
    char *v = decode_entities(a->value, a->len, &len); /* owned here */
    if (!v) {
        c->oom = 1;
        return;
    }
    text(c, v, len);
    free(v);
}

static int attr_has_text(const attr *a) {
    for (size_t i = 0; i < a->len; i++)
        if (!is_ws(a->value[i])) return 1;
    return 0;
}

static void start_tag(conv *c, int tag, const tag_token *t) {
    const tag_rule *rule = &TAGS[tag];
    int before = c->depth;
    element *e = NULL;
    switch ((enum action)rule->action) {
    case ACT_STYLE:
        if ((e = push(c, tag, K_STYLE))) push_marker(c, e, rule->marker);
        break;
    case ACT_HEADING:
        if (c->depth >= MAX_DEPTH) break;
        request_break(c, 2);
        e = push(c, tag, K_STYLE);
        e->paragraph = 1;
        push_marker(c, e, '*');
        break;
    case ACT_LINK:
        start_link(c, tag, t);
        break;
    case ACT_PRE:
        if (c->depth >= MAX_DEPTH) break;
        request_break(c, 2);
        e = push(c, tag, K_PRE);
        if (c->pre_depth++ == 0) {
            e->outer_pre = 1;
            c->fence_done = 0;
            c->pre_newlines = 0;
            c->pre_skip_newline = 1;
            c->lang_len = 0;
            c->lang[0] = '\0';
            take_language(c, &t->klass);
        }
        break;
    case ACT_CODE:
        if (!(e = push(c, tag, K_CODE))) break;
        if (c->pre_depth) {
            take_language(c, &t->klass);
        } else {
            push_marker(c, e, '`');
            e->inline_code = 1;
            c->code_depth++;
        }
        break;
    case ACT_QUOTE:
        if (c->depth >= MAX_DEPTH) break;
        request_break(c, 1);
        push_prefix(c, push(c, tag, K_QUOTE));
        break;
    case ACT_UL:
    case ACT_OL:
        if (c->depth >= MAX_DEPTH) break;
        request_break(c, 1);
        e = push(c, tag, K_LIST);
        e->list = (int)(e - c->stack);
        e->item = -1;
        e->ordered = rule->action == ACT_OL;
        e->counter = list_start(&t->start);
        break;
    case ACT_ITEM:
        start_item(c, tag);
        break;
    case ACT_HIDDEN:
        if (push(c, tag, K_HIDDEN)) c->hidden++;
        break;
    case ACT_RAW: /* the caller skips the content */
        break;
    case ACT_LINE:
        request_break(c, 1);
        break;
    case ACT_PARAGRAPH:
        request_break(c, 2);
        break;
    case ACT_BR:
        hard_break(c);
        break;
    case ACT_IMG:
        if (attr_has_text(&t->alt))
            attr_text(c, &t->alt);
        else if (attr_has_text(&t->title))
            attr_text(c, &t->title);
        break;
    case ACT_TABLE:
        request_break(c, 1);
        c->cells = 0;
        break;
    case ACT_CELL:
        if (c->cells++ > 0 && !c->hidden) {
            c->pending_space = 1;
            visible(c, "|", 1);
            c->pending_space = 1;
        }
        break;
    case ACT_SPAN:
        if (attr_has_text(&t->spoiler)) { /* keep the reason: "(reason) text" */
            text(c, "(", 1);
            attr_text(c, &t->spoiler);
            text(c, ") ", 2);
        }
        break;
    }
    /* <x/>: XHTML-style empty element, which is kinder than HTML's reading */
    if (t->self_closing && c->depth > before) pop_to(c, before);
}

static void end_tag(conv *c, int tag) {
    const tag_rule *rule = &TAGS[tag];
    if (c->open_tags[tag]) {
        int k = c->depth - 1;
        while (c->stack[k].tag != tag) k--;
        pop_to(c, k);
        return;
    }
    switch ((enum action)rule->action) {
    case ACT_LINE:
        request_break(c, 1);
        break;
    case ACT_PARAGRAPH:
        request_break(c, 2);
        break;
    case ACT_TABLE:
        request_break(c, 1);
        c->cells = 0;
        break;
    default:
        break; /* no opener: nothing to close */
    }
}

/* ---- the tokenizer ----------------------------------------------------------- */

/* Index after the end tag </name...> of a raw text element, from p on; n if
 * there is none (the rest is then its content, as in HTML). */
static size_t skip_raw_text(const char *s, size_t n, size_t p, const char *name) {
    size_t len = strlen(name);
    while (p < n) {
        const char *lt = memchr(s + p, '<', n - p);
        if (!lt) return n;
        size_t q = (size_t)(lt - s);
        size_t after = q + 2 + len;
        if (after <= n && s[q + 1] == '/' && starts_with_ci(s + q + 2, len, name) &&
            (after == n || is_ws(s[after]) || s[after] == '/' || s[after] == '>')) {
            const char *gt = memchr(s + after - 1, '>', n - after + 1);
            return gt ? (size_t)(gt - s) + 1 : n;
        }
        p = q + 1;
    }
    return n;
}

/* Handles the markup at s[i] == '<' and returns where text resumes. */
static size_t markup(conv *c, const char *s, size_t n, size_t i) {
    size_t p = i + 1;
    if (p < n && s[p] == '!') {
        if (p + 2 < n && s[p + 1] == '-' && s[p + 2] == '-') { /* <!-- comment --> */
            size_t q = p + 3;
            if (q < n && s[q] == '>') return q + 1;
            if (q + 1 < n && s[q] == '-' && s[q + 1] == '>') return q + 2;
            for (; q + 2 < n; q++)
                if (s[q] == '-' && s[q + 1] == '-' && s[q + 2] == '>') return q + 3;
            return n; /* unterminated: the rest is comment, as in HTML */
        }
    }
    if (p < n && (s[p] == '!' || s[p] == '?' ||
                  (s[p] == '/' && p + 1 < n && !is_alpha(s[p + 1])))) {
        /* <!DOCTYPE>, <?xml?>, </3>: bogus comments up to '>' */
        const char *gt = memchr(s + p, '>', n - p);
        if (gt) return (size_t)(gt - s) + 1;
        text(c, s + i, n - i);
        return n;
    }
    int end = p < n && s[p] == '/';
    if (end) p++;
    if (p >= n || !is_alpha(s[p])) { /* "a < b": a stray '<' is text */
        text(c, s + i, p - i);
        return p;
    }
    tag_token t;
    memset(&t, 0, sizeof t);
    size_t after = parse_tag(s, n, p, &t);
    if (!after) { /* the input ends inside the tag: keep it as text */
        text(c, s + i, n - i);
        return n;
    }
    int tag = find_tag(t.name, t.name_len);
    if (tag < 0) return after; /* unknown tag: ignored, its text kept */
    if (end) {
        end_tag(c, tag);
        return after;
    }
    start_tag(c, tag, &t);
    if (TAGS[tag].action == ACT_RAW && !t.self_closing)
        return skip_raw_text(s, n, after, TAGS[tag].name);
    return after;
}

static void convert(conv *c, const char *s, size_t n) {
    size_t i = 0;
    while (i < n && !c->oom) {
        if (s[i] == '<') {
            i = markup(c, s, n, i);
        } else if (s[i] == '&') {
            uint32_t cp;
            size_t took = parse_entity(s, n, i, &cp);
            if (took) {
                char enc[4];
                text(c, enc, utf8_encode(cp, enc));
                i += took;
            } else {
                text(c, "&", 1);
                i++;
            }
        } else {
            size_t j = i + 1;
            while (j < n && s[j] != '<' && s[j] != '&') j++;
            text(c, s + i, j - i);
            i = j;
        }
    }
    pop_to(c, 0); /* close what is still open: markers, code block, link */
}

/* ---- the API ---------------------------------------------------------------- */

static void free_mentions(mx_mention *m, size_t n) {
    for (size_t k = 0; k < n; k++) free(m[k].user_id);
    free(m);
}

int mx_html_to_styled(const char *html, size_t len, mx_styled *out) {
    memset(out, 0, sizeof *out);
    size_t clean_len;
    char *clean = sanitize(html, len, &clean_len); /* owned here */
    if (!clean) return -1;
    conv *c = malloc(sizeof *c); /* owned here: too big for a thread stack */
    if (!c) {
        free(clean);
        return -1;
    }
    memset(c, 0, offsetof(conv, stack));
    c->line_start = 1;
    c->link = -1;
    convert(c, clean, clean_len);
    free(clean);
    if (!c->oom && !c->out.p) c->oom = sbuf_put(&c->out, "", 0) < 0;
    free(c->href);
    free(c->target_id);
    free(c->link_text.p);
    if (c->oom) {
        free(c->out.p);
        free_mentions(c->mentions, c->n_mentions);
        free(c);
        return -1;
    }
    /* Trim: leading whitespace (written only by table cells or code) moves
     * the mentions; trailing whitespace may cut them short. */
    char *t = c->out.p;
    size_t lead = 0, n = c->out.len;
    while (lead < n && is_ws(t[lead])) lead++;
    while (n > lead && is_ws(t[n - 1])) n--;
    size_t total_cp = c->out_cp - lead - (c->out.len - n);
    memmove(t, t + lead, n - lead);
    n -= lead;
    t[n] = '\0';
    for (size_t k = 0; k < c->n_mentions; k++) {
        mx_mention *m = &c->mentions[k];
        m->start = m->start > lead ? m->start - lead : 0;
        m->end = m->end > lead ? m->end - lead : 0;
        if (m->end > total_cp) m->end = total_cp;
        if (m->start > m->end) m->start = m->end;
    }
    out->text = t;
    out->len = n;
    out->mentions = c->mentions;
    out->n_mentions = c->n_mentions;
    free(c);
    return 0;
}

void mx_styled_free(mx_styled *s) {
    if (!s) return;
    free(s->text);
    free_mentions(s->mentions, s->n_mentions);
    memset(s, 0, sizeof *s);
}
