/* The media request kind (media.h). */
#include "engine/media.h"

/* Any type is welcome; the body is not JSON; the default retry policy (a
 * 429 waits, a server without the authenticated endpoint gets the legacy
 * one) applies. */
mx_request_kind mx_kind_media = {.name = "media", .raw_body = 1, .accept = "Accept: */*"};
