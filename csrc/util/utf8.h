/* What building a Python str from UTF-8 needs to know, found once without
 * the GIL, so that the str is made in one pass of the right width instead
 * of decoded, widened and copied while the loop waits. */
#ifndef MATRIDGE_UTF8_H
#define MATRIDGE_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t len;     /* bytes */
    uint32_t chars;   /* code points */
    uint32_t maxchar; /* the largest code point; 0: not valid UTF-8 (or too long), decode it */
} mx_utf8_info;

/* Fills `out` for s[0..len). Valid means well-formed UTF-8 as Python's
 * strict decoder reads it: no overlong forms, surrogates or code points
 * above U+10FFFF. */
void mx_utf8_measure(const char *s, size_t len, mx_utf8_info *out);

/* The code point at *p of a string mx_utf8_measure found valid; advances
 * *p past it. */
static inline uint32_t mx_utf8_next(const unsigned char **p) {
    const unsigned char *s = *p;
    uint32_t c = s[0];
    if (c < 0x80) {
        *p = s + 1;
        return c;
    }
    if (c < 0xE0) {
        *p = s + 2;
        return ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    }
    if (c < 0xF0) {
        *p = s + 3;
        return ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    }
    *p = s + 4;
    return ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
}

#endif
