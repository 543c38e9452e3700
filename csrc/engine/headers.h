/* Response headers, captured for every transfer: status line, Content-Type,
 * the Content-Disposition filename, Retry-After, and a Content-Length over
 * the request's cap. Engine thread. */
#ifndef MATRIDGE_HEADERS_H
#define MATRIDGE_HEADERS_H

#include "engine/engine.h"

/* libcurl header callback (userdata: the mx_request): records the status,
 * Content-Type, the Content-Disposition filename and Retry-After, and
 * refuses a 2xx body announced larger than the request's cap. */
size_t mx_on_header(char *buf, size_t size, size_t nitems, void *userdata);

#endif
