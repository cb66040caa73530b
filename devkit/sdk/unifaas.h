/* unifaas.h: the hostcalls a unifaas function may import (wasm module "unifaas").
 *
 * Every hostcall returns a status (UNIFAAS_OK is 0). Output goes to a buffer you
 * provide: the length written, or on UNIFAAS_BUFFER_TOO_SMALL the length needed,
 * is stored at *out_len, so you can grow the buffer and ask again (the host does
 * not repeat anything: the data is already in the guest). The README's "Hostcalls"
 * section documents each call; the helpers below allocate for you.
 *
 * Build with: clang --target=wasm32-wasi -I functions/sdk ... (make functions does).
 */
#ifndef UNIFAAS_H
#define UNIFAAS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum unifaas_status {
    UNIFAAS_OK = 0,
    UNIFAAS_NOT_FOUND = 1,        /* no such key */
    UNIFAAS_BUFFER_TOO_SMALL = 2, /* *out_len holds the length needed */
    UNIFAAS_INVALID_ARGUMENT = 3, /* pointer outside memory, empty/NUL key, bad URL or method */
    UNIFAAS_KEY_TOO_LARGE = 4,    /* a key over 256 bytes */
    UNIFAAS_VALUE_TOO_LARGE = 5,  /* a value over 1 MiB */
    UNIFAAS_QUOTA_KEYS = 6,       /* the store holds its quota of keys */
    UNIFAAS_QUOTA_BYTES = 7,      /* the store would pass its quota of bytes */
    UNIFAAS_HOST_DENIED = 8,      /* the URL's host is not on the allow-list */
    UNIFAAS_HTTP_TIMEOUT = 9,     /* the request outlived its timeout */
    UNIFAAS_HTTP_TOO_LARGE = 10,  /* the request or response is over its size cap */
    UNIFAAS_HTTP_FAILED = 11,     /* the host could not resolve, connect or read */
    UNIFAAS_LIMIT = 12,           /* the call made as many hostcalls as a call may */
    UNIFAAS_UNAVAILABLE = 13,     /* the platform cannot serve it now */
    UNIFAAS_BAD_HANDLE = 14,      /* no response with that handle in this call */
    UNIFAAS_NOT_A_NUMBER = 15,    /* kv_incr on a value that is not a decimal integer */
};

#define UNIFAAS_IMPORT(name) __attribute__((import_module("unifaas"), import_name(#name)))

/* key-value, scoped to the function (all its versions) */
UNIFAAS_IMPORT(kv_get)
int32_t unifaas_kv_get(const void *key, uint32_t key_len, void *out, uint32_t out_cap,
                       uint32_t *out_len);
UNIFAAS_IMPORT(kv_set)
int32_t unifaas_kv_set(const void *key, uint32_t key_len, const void *value, uint32_t value_len);
UNIFAAS_IMPORT(kv_delete)
int32_t unifaas_kv_delete(const void *key, uint32_t key_len);
/* keys starting with prefix, sorted, each followed by a NUL byte */
UNIFAAS_IMPORT(kv_list)
int32_t unifaas_kv_list(const void *prefix, uint32_t prefix_len, void *out, uint32_t out_cap,
                        uint32_t *out_len);
/* adds delta to a decimal integer value (a missing key counts from 0); *result = new value */
UNIFAAS_IMPORT(kv_incr)
int32_t unifaas_kv_incr(const void *key, uint32_t key_len, int64_t delta, int64_t *result);

/* outbound HTTP: headers are "Name: value\n" lines; *handle names the response */
UNIFAAS_IMPORT(http_request)
int32_t unifaas_http_request(const char *method, uint32_t method_len, const char *url,
                             uint32_t url_len, const char *headers, uint32_t headers_len,
                             const void *body, uint32_t body_len, uint32_t *handle);
UNIFAAS_IMPORT(http_status)
int32_t unifaas_http_status(uint32_t handle, uint32_t *status);
UNIFAAS_IMPORT(http_headers)
int32_t unifaas_http_headers(uint32_t handle, void *out, uint32_t out_cap, uint32_t *out_len);
UNIFAAS_IMPORT(http_body)
int32_t unifaas_http_body(uint32_t handle, void *out, uint32_t out_cap, uint32_t *out_len);

/* -- helpers ---------------------------------------------------------------------- */

static inline const char *unifaas_status_name(int32_t status) {
    static const char *const names[] = {
        "ok",           "not_found",   "buffer_too_small", "invalid_argument",
        "key_too_large", "value_too_large", "quota_keys",  "quota_bytes",
        "host_denied",  "http_timeout", "http_too_large",  "http_failed",
        "limit",        "unavailable", "bad_handle",       "not_a_number",
    };
    if (status < 0 || status >= (int32_t)(sizeof names / sizeof names[0])) return "unknown";
    return names[status];
}

/* Calls fetch(out, cap, &len) with a growing malloc'd buffer until it fits; on
 * UNIFAAS_OK *data (NUL-terminated, free it) and *len are set. */
typedef int32_t (*unifaas_fetch_fn)(const void *ctx, void *out, uint32_t cap, uint32_t *len);

static inline int32_t unifaas_fetch_alloc(unifaas_fetch_fn fetch, const void *ctx, char **data,
                                          uint32_t *len) {
    uint32_t cap = 256;
    for (;;) {
        char *buf = malloc(cap + 1);
        if (!buf) return UNIFAAS_UNAVAILABLE;
        uint32_t need = 0;
        int32_t status = fetch(ctx, buf, cap, &need);
        if (status == UNIFAAS_OK) {
            buf[need] = '\0';
            *data = buf;
            *len = need;
            return status;
        }
        free(buf);
        if (status != UNIFAAS_BUFFER_TOO_SMALL) return status;
        cap = need;
    }
}

struct unifaas__key { const char *key; uint32_t len; };

static inline int32_t unifaas__kv_get_fetch(const void *ctx, void *out, uint32_t cap,
                                            uint32_t *len) {
    const struct unifaas__key *k = ctx;
    return unifaas_kv_get(k->key, k->len, out, cap, len);
}

/* The value of a NUL-terminated key, malloc'd and NUL-terminated. */
static inline int32_t unifaas_kv_get_str(const char *key, char **value, uint32_t *len) {
    struct unifaas__key k = {key, (uint32_t)strlen(key)};
    return unifaas_fetch_alloc(unifaas__kv_get_fetch, &k, value, len);
}

static inline int32_t unifaas_kv_set_str(const char *key, const char *value) {
    return unifaas_kv_set(key, (uint32_t)strlen(key), value, (uint32_t)strlen(value));
}

static inline int32_t unifaas__http_body_fetch(const void *ctx, void *out, uint32_t cap,
                                               uint32_t *len) {
    return unifaas_http_body(*(const uint32_t *)ctx, out, cap, len);
}

/* GET url: the response's status and its body (malloc'd, NUL-terminated). */
static inline int32_t unifaas_http_get(const char *url, uint32_t *status, char **body,
                                       uint32_t *body_len) {
    uint32_t handle = 0;
    int32_t rc = unifaas_http_request("GET", 3, url, (uint32_t)strlen(url), "", 0, "", 0, &handle);
    if (rc != UNIFAAS_OK) return rc;
    rc = unifaas_http_status(handle, status);
    if (rc != UNIFAAS_OK) return rc;
    return unifaas_fetch_alloc(unifaas__http_body_fetch, &handle, body, body_len);
}

#endif
