/* How the engine thread waits: one epoll set holding the sockets libcurl
 * asks it to watch (CURLMOPT_SOCKETFUNCTION) and an eventfd other threads
 * write to when they fill one of the engine's inboxes, plus libcurl's one
 * timer (CURLMOPT_TIMERFUNCTION) kept as a deadline.
 *
 * A wake-up hands libcurl only the sockets that are ready
 * (curl_multi_socket_action), so its cost follows the traffic, not the
 * number of transfers: ten thousand idle long-polls cost nothing until one
 * of them moves. Engine thread only, except mx_sockets_wake. */
#ifndef MATRIDGE_SOCKETS_H
#define MATRIDGE_SOCKETS_H

#include <curl/curl.h>
#include <stdint.h>

typedef struct {
    CURLM *multi;     /* borrowed: the engine's multi handle */
    int epfd;         /* owned epoll set; -1 before mx_sockets_open */
    int wakefd;       /* owned eventfd in that set; -1 before mx_sockets_open */
    int64_t curl_at;  /* when libcurl wants its timeout handled; INT64_MAX: never */
    int running;      /* transfers libcurl still has, as it last said */
    /* Which descriptors are in the epoll set, by number (owned array): a
     * socket libcurl has closed is never touched again, even when it later
     * asks to stop watching it (libcurl 7.88 can, after the number was
     * reused by another thread). */
    unsigned char *watched;
    size_t watched_len;
} mx_sockets;

#define MX_SOCKETS_INIT {.epfd = -1, .wakefd = -1, .curl_at = INT64_MAX}

/* Creates the epoll set and the eventfd and hooks them to `multi`.
 * 0, or -1 with errno set (whatever was created is closed again). */
int mx_sockets_open(mx_sockets *s, CURLM *multi);
/* Has libcurl open and close the sockets of `easy` through the engine, so
 * that the epoll set never outlives a socket. */
void mx_sockets_hook_easy(mx_sockets *s, CURL *easy);
/* Any thread: makes the engine's current or next wait return at once. */
void mx_sockets_wake(mx_sockets *s);
/* Waits until a socket is ready, the eventfd is written, libcurl's timer
 * or `until_ms` (monotonic ms; INT64_MAX: none) comes, then lets libcurl
 * act on what is ready or due. Finished transfers are then waiting in
 * curl_multi_info_read. */
void mx_sockets_wait(mx_sockets *s, int64_t until_ms);

#endif
