/* The protocol's repeated words, one copy each (words.h). */
#include "matrix/words.h"

#include <string.h>

#define MX_WORD_TEXT(name, text) [MX_W_##name] = text,
const char mx_words[MX_WORD_COUNT][MX_WORD_SIZE] = {MX_WORDS(MX_WORD_TEXT)};
#undef MX_WORD_TEXT

/* The canonical copy of s among words [first, last], else s. The most
 * frequent word of each field comes first. */
static const char *among(const char *s, mx_word_id first, mx_word_id last) {
    if (!s) return NULL;
    for (int w = first; w <= (int)last; w++)
        if (strcmp(s, mx_words[w]) == 0) return mx_words[w];
    return s;
}

const char *mx_word_msgtype(const char *s) { return among(s, MX_W_M_TEXT, MX_W_M_LOCATION); }
const char *mx_word_membership(const char *s) { return among(s, MX_W_JOIN, MX_W_KNOCK); }
const char *mx_word_rel_type(const char *s) { return among(s, MX_W_M_REPLACE, MX_W_M_THREAD); }

const char *mx_word_receipt_type(const char *s) {
    return among(s, MX_W_M_READ, MX_W_M_READ_PRIVATE);
}

const char *mx_word_format(const char *s) { return among(s, MX_W_HTML_FORMAT, MX_W_HTML_FORMAT); }
