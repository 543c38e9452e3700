/* The media request kind: the 2xx body is the result, raw, in memory or in
 * the request's file sink (files.h), with the response's type and file
 * name. Download and thumbnail requests use it. */
#ifndef MATRIDGE_MEDIA_H
#define MATRIDGE_MEDIA_H

#include "engine/engine.h"

extern mx_request_kind mx_kind_media;

#endif
