/* The engine's wait: epoll over libcurl's sockets and the wake-up eventfd,
 * libcurl's timer as a deadline (sockets.h). */
#define _GNU_SOURCE
#include "engine/sockets.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/engine.h" /* mx_now_ms */

/* Ready sockets taken per epoll_wait; more simply wait for the next call. */
#define MX_EVENTS_PER_WAIT 256

/* Records whether `fd` is in the epoll set. 0, or -1 when the table cannot
 * grow (out of memory). */
static int set_watched(mx_sockets *s, curl_socket_t fd, unsigned char on) {
    size_t i = (size_t)fd;
    if (i >= s->watched_len) {
        if (!on) return 0;
        size_t len = s->watched_len ? s->watched_len : 1024;
        while (len <= i) len *= 2;
        unsigned char *grown = realloc(s->watched, len);
        if (!grown) return -1;
        memset(grown + s->watched_len, 0, len - s->watched_len);
        s->watched = grown;
        s->watched_len = len;
    }
    s->watched[i] = on;
    return 0;
}

static int is_watched(const mx_sockets *s, curl_socket_t fd) {
    return (size_t)fd < s->watched_len && s->watched[fd];
}

static void unwatch(mx_sockets *s, curl_socket_t fd) {
    if (!is_watched(s, fd)) return;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    set_watched(s, fd, 0);
}

/* libcurl tells which of a socket's directions it waits for, or that it is
 * done with the socket. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    (void)socketp;
    mx_sockets *s = userp;
    if (what == CURL_POLL_REMOVE) {
        unwatch(s, fd); /* nothing when closed already: the number may be another's */
        return 0;
    }
    struct epoll_event ev = {.data.fd = fd};
    if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
    /* Out of memory or over max_user_watches, the transfer hears nothing
     * and ends at its own timeout or stall guard: returning -1 instead
     * would make libcurl fail every transfer of the multi handle. */
    if (set_watched(s, fd, 1) != 0) return 0;
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT &&
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        set_watched(s, fd, 0);
    return 0;
}

static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *address) {
    (void)purpose;
    mx_sockets *s = clientp;
    int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    set_watched(s, fd, 0); /* a number used before starts afresh */
    return fd;
}

static int close_socket(void *clientp, curl_socket_t fd) {
    unwatch(clientp, fd);
    return close(fd);
}

void mx_sockets_hook_easy(mx_sockets *s, CURL *easy) {
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, s);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, s);
}

/* libcurl's single timer: -1 removes it, 0 means "as soon as you can". */
static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    mx_sockets *s = userp;
    s->curl_at = timeout_ms < 0 ? INT64_MAX : mx_now_ms() + timeout_ms;
    return 0;
}

int mx_sockets_open(mx_sockets *s, CURLM *multi) {
    s->multi = multi;
    s->curl_at = INT64_MAX;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) return -1;
    s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (s->wakefd >= 0) ev.data.fd = s->wakefd;
    if (s->wakefd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) != 0) {
        int err = errno;
        if (s->wakefd >= 0) close(s->wakefd);
        close(s->epfd);
        s->wakefd = s->epfd = -1;
        errno = err;
        return -1;
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, s);
    return 0;
}

void mx_sockets_wake(mx_sockets *s) {
    if (s->wakefd < 0) return;
    uint64_t one = 1;
    /* A full counter still leaves the fd readable, so a failed write is fine. */
    ssize_t w = write(s->wakefd, &one, sizeof one);
    (void)w;
}

static int wait_ms(int64_t until, int64_t now) {
    if (until == INT64_MAX) return -1;
    if (until <= now) return 0;
    return until - now > INT_MAX ? INT_MAX : (int)(until - now);
}

void mx_sockets_wait(mx_sockets *s, int64_t until_ms) {
    int64_t until = s->curl_at < until_ms ? s->curl_at : until_ms;
    struct epoll_event events[MX_EVENTS_PER_WAIT];
    int n = epoll_wait(s->epfd, events, MX_EVENTS_PER_WAIT, wait_ms(until, mx_now_ms()));
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        if (fd == s->wakefd) {
            uint64_t v;
            ssize_t r = read(s->wakefd, &v, sizeof v); /* the whole counter */
            (void)r;
            continue;
        }
        int flags = 0;
        if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(s->multi, fd, flags, &s->running);
    }
    if (s->curl_at <= mx_now_ms()) {
        /* Cleared first: libcurl sets the next one from inside the call. */
        s->curl_at = INT64_MAX;
        curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &s->running);
    }
}
