/* libFuzzer harness: any bytes through the HTML -> XEP-0393 converter; the
 * result must be NUL-terminated UTF-8 with mention spans inside the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "matrix/html.h"

static size_t code_points(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mx_styled out;
    if (mx_html_to_styled((const char *)data, size, &out) != 0) return 0;
    if (out.text[out.len] != '\0' || strlen(out.text) != out.len) abort();
    size_t n = code_points(out.text, out.len);
    for (size_t i = 0; i < out.n_mentions; i++) {
        const mx_mention *m = &out.mentions[i];
        if (m->start > m->end || m->end > n || !m->user_id || m->user_id[0] != '@') abort();
    }
    mx_styled_free(&out);
    return 0;
}
