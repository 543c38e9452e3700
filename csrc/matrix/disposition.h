/* Content-Disposition file names (RFC 6266): plain string work, no curl,
 * no Python, any thread. */
#ifndef MATRIDGE_DISPOSITION_H
#define MATRIDGE_DISPOSITION_H

/* The filename of a Content-Disposition value (filename* preferred, per
 * RFC 6266), malloc'd and owned by the caller, or NULL if none. A name is
 * reduced to what follows its last slash; ".", ".." and empty names, and
 * names with an encoded NUL, are refused (NULL). */
char *mx_disposition_filename(const char *value);

#endif
