/* Requests: their lifetime, the default retry policy, and the plain JSON
 * kind (request.h). */
#define _GNU_SOURCE /* explicit_bzero, strdup */
#include "engine/request.h"

#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/files.h"
#include "matrix/decode.h"

/* The plain API call: the future resolves with the parsed JSON answer. */
mx_request_kind mx_kind_json = {.name = "json"};

mx_request *mx_request_new(mx_method method, const char *url, mx_request_kind *kind) {
    mx_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (url && !(r->url = strdup(url))) {
        free(r);
        return NULL;
    }
    r->id = mx_engine_next_id();
    r->method = method;
    r->kind = kind;
    r->timeout_ms = 60000;
    r->max_body = MX_MAX_RESPONSE;
    return r;
}

void mx_wipe(void *p, size_t n) {
    /* explicit_bzero: a memset before free is a dead store the optimiser
     * removes; this one it must keep. */
    if (p) explicit_bzero(p, n);
}

void mx_secret_free(char *s) {
    if (!s) return;
    mx_wipe(s, strlen(s));
    free(s);
}

/* curl_slist_append copies each line, the Authorization header included:
 * those copies are wiped before the list goes. */
void mx_headers_free(struct curl_slist *h) {
    for (struct curl_slist *l = h; l; l = l->next)
        if (l->data) mx_wipe(l->data, strlen(l->data));
    curl_slist_free_all(h);
}

void mx_request_free(mx_request *r) {
    if (!r) return;
    mx_headers_free(r->headers);
    free(r->url);
    free(r->fallback_url);
    /* Login bodies carry passwords. */
    if (r->body) mx_wipe(r->body, r->body_len);
    free(r->body);
    free(r->content_type);
    if (r->upload) fclose(r->upload);
    mx_file_sink_free(r->sink);
    free(r->resp_content_type);
    free(r->resp_filename);
    if (r->kind_data && r->kind->free_data) r->kind->free_data(r->kind_data);
    mx_secret_free(r->token); /* no credentials left in freed memory */
    free(r->response.data);
    cJSON_Delete(r->json);
    mx_batch_free(r->batch);
    mx_account_decref(r->account);
    free(r);
}

static const char *json_errcode(const cJSON *body) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "errcode");
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The server lacks the endpoint (spec: 404/400 M_UNRECOGNIZED, or 405). */
static int endpoint_missing(const mx_request *r) {
    long c = r->http_status;
    int unrecognized = strcmp(json_errcode(r->json), "M_UNRECOGNIZED") == 0;
    return c == 405 || ((c == 404 || c == 400) && unrecognized);
}

long mx_request_retry_default(mx_request *r) {
    if (r->http_status == 429 && r->attempts < MX_MAX_RATE_LIMIT_RETRIES) {
        long wait = r->retry_after_ms > 0 ? r->retry_after_ms : 1000L << r->attempts;
        if (wait > 60000) wait = 60000;
        r->attempts++;
        return wait;
    }
    if (r->fallback_url && !r->used_fallback && endpoint_missing(r)) {
        free(r->url);
        r->url = r->fallback_url;
        r->fallback_url = NULL;
        r->used_fallback = 1;
        return 0;
    }
    return MX_DONE;
}
