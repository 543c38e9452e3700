/* Matrix HTML (format "org.matrix.custom.html") -> plain text with XEP-0393
 * "Message Styling", plus the user mentions (pills) found on the way.
 *
 * Pure C: no Python, no static mutable state, so the engine thread may call
 * it while decoding events, without the GIL. Time and memory are linear in
 * the input; hostile input degrades to text. */
#ifndef MATRIDGE_HTML_H
#define MATRIDGE_HTML_H

#include <stddef.h>

/* A user pill: text[start:end] (in code points, i.e. Python string indices)
 * is the link text; user_id ("@user:server") is owned by the mx_styled. */
typedef struct {
    size_t start, end;
    char *user_id;
} mx_mention;

/* The converted message. text is valid UTF-8 (only characters XML 1.0
 * allows), NUL-terminated, len bytes long. Everything is owned: release it
 * with mx_styled_free. */
typedef struct {
    char *text;
    size_t len;
    mx_mention *mentions;
    size_t n_mentions;
} mx_styled;

/* Converts len bytes of HTML (any bytes: invalid UTF-8 and NULs become
 * U+FFFD). Returns 0 and fills *out, or -1 when memory runs out (then *out
 * is zeroed and nothing is left to free). */
int mx_html_to_styled(const char *html, size_t len, mx_styled *out);

/* Frees what mx_html_to_styled filled in, and zeroes *s. NULL-safe. */
void mx_styled_free(mx_styled *s);

#endif
