/* UTF-8 measuring for Python strs (utf8.h). */
#include "util/utf8.h"

#include <string.h>

static int cont(unsigned char c) { return (c & 0xC0) == 0x80; }

void mx_utf8_measure(const char *str, size_t len, mx_utf8_info *out) {
    out->len = (uint32_t)len;
    out->chars = 0;
    out->maxchar = 0;
    if (len > UINT32_MAX) return;
    const unsigned char *p = (const unsigned char *)str, *end = p + len;
    /* Only the width matters to Python (ASCII, Latin-1, UCS-2, UCS-4), so
     * ASCII characters need not raise maxchar one by one. */
    uint32_t chars = 0, maxchar = 0x7F;
    while (p < end) {
        /* ASCII runs 8 bytes at a time. */
        if (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, sizeof v);
            if (!(v & 0x8080808080808080ull)) {
                p += 8;
                chars += 8;
                continue;
            }
        }
        unsigned char c = p[0];
        uint32_t cp;
        size_t left = (size_t)(end - p);
        if (c < 0x80) {
            do {
                p++;
                chars++;
            } while (p < end && *p < 0x80);
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (left < 2 || !cont(p[1])) return;
            cp = ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
            p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (left < 3 || !cont(p[1]) || !cont(p[2])) return;
            if (c == 0xE0 && p[1] < 0xA0) return; /* overlong */
            if (c == 0xED && p[1] > 0x9F) return; /* a surrogate */
            cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
            p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (left < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3])) return;
            if (c == 0xF0 && p[1] < 0x90) return; /* overlong */
            if (c == 0xF4 && p[1] > 0x8F) return; /* above U+10FFFF */
            cp = ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) |
                 (p[3] & 0x3Fu);
            p += 4;
        } else {
            return;
        }
        chars++;
        if (cp > maxchar) maxchar = cp;
    }
    out->chars = chars;
    out->maxchar = len ? maxchar : 0;
}
