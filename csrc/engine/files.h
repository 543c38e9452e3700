/* Bodies that are not JSON in memory: uploads streamed from a file,
 * downloads streamed to a file (headers.h has the response headers).
 * Engine thread, except mx_upload_open/mx_file_sink_new which the caller
 * runs before submitting (without the GIL). */
#ifndef MATRIDGE_FILES_H
#define MATRIDGE_FILES_H

#include "engine/engine.h"

/* Opens `path` for a streamed upload: *fp (owned by the caller) and its
 * size. 0, or -1 with errno set. */
int mx_upload_open(const char *path, FILE **fp, curl_off_t *size);
/* libcurl read and seek callbacks over the FILE * of an upload. */
size_t mx_upload_read(char *buf, size_t size, size_t nitems, void *fp);
int mx_upload_seek(void *fp, curl_off_t offset, int origin);

/* A sink whose temporary file is created now, beside `final_path`.
 * Owned by the caller; NULL with errno set on failure. */
mx_file_sink *mx_file_sink_new(const char *final_path);
/* Appends; 0, or -1 with errno set. */
int mx_file_sink_write(mx_file_sink *s, const char *data, size_t n);
/* Empties the temporary file before a retry; 0, or -1 with errno set. */
int mx_file_sink_reset(mx_file_sink *s);
/* Closes and renames the temporary file to the destination; 0, or -1 with
 * errno set (the temporary file is then removed). */
int mx_file_sink_commit(mx_file_sink *s);
/* Closes, removes the temporary file if still there, frees. NULL is fine. */
void mx_file_sink_free(mx_file_sink *s);

#endif
