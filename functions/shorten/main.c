/* shorten (wagi): a URL shortener on the function's key-value store.
 *   POST /fn/shorten        body: an http(s) URL -> 201, the short code as the body
 *                           (and Location: /fn/shorten/<code>)
 *   GET  /fn/shorten/<code> -> 302 with Location set to the URL; unknown code -> 404
 * Codes are a counter in base 62, so they are short and never collide. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unifaas.h"

#define URL_MAX 4096

static void answer(int status, const char *text) {
    printf("Status: %d\nContent-Type: text/plain\n\n%s\n", status, text);
}

static void base62(int64_t n, char *out) {
    static const char digits[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char tmp[16];
    int i = 0;
    do {
        tmp[i++] = digits[n % 62];
        n /= 62;
    } while (n > 0);
    for (int j = 0; j < i; j++) out[j] = tmp[i - 1 - j];
    out[i] = '\0';
}

static int shorten(void) {
    char url[URL_MAX + 2];
    size_t len = fread(url, 1, URL_MAX + 1, stdin);
    while (len > 0 && (url[len - 1] == '\n' || url[len - 1] == '\r' || url[len - 1] == ' '))
        len--;
    url[len] = '\0';
    if (len > URL_MAX) {
        answer(413, "the URL is too long");
        return 0;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        answer(400, "POST an http:// or https:// URL as the body");
        return 0;
    }
    int64_t next = 0;
    int32_t rc = unifaas_kv_incr("next", 4, 1, &next);
    if (rc != UNIFAAS_OK) {
        printf("Status: 503\nContent-Type: text/plain\n\nkv_incr: %s\n", unifaas_status_name(rc));
        return 0;
    }
    char code[16], key[32];
    base62(next, code);
    snprintf(key, sizeof key, "url:%s", code);
    rc = unifaas_kv_set(key, (uint32_t)strlen(key), url, (uint32_t)len);
    if (rc != UNIFAAS_OK) {
        printf("Status: 507\nContent-Type: text/plain\n\nkv_set: %s\n", unifaas_status_name(rc));
        return 0;
    }
    const char *script = getenv("SCRIPT_NAME");
    printf("Status: 201\nContent-Type: text/plain\nLocation: %s/%s\n\n%s\n", script ? script : "",
           code, code);
    return 0;
}

static int resolve(const char *code) {
    char key[300];
    int n = snprintf(key, sizeof key, "url:%s", code);
    if (!*code || n < 0 || (size_t)n >= sizeof key) {
        answer(404, "no such code");
        return 0;
    }
    char *url = NULL;
    uint32_t len = 0;
    int32_t rc = unifaas_kv_get_str(key, &url, &len);
    if (rc == UNIFAAS_NOT_FOUND) {
        answer(404, "no such code");
    } else if (rc != UNIFAAS_OK) {
        printf("Status: 503\nContent-Type: text/plain\n\nkv_get: %s\n", unifaas_status_name(rc));
    } else {
        printf("Status: 302\nLocation: %s\nContent-Type: text/plain\n\n%s\n", url, url);
        free(url);
    }
    return 0;
}

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");
    if (!method) method = "GET";
    if (!path) path = "";
    if (strcmp(method, "POST") == 0 && (!*path || strcmp(path, "/") == 0)) return shorten();
    if (strcmp(method, "GET") == 0 && path[0] == '/') return resolve(path + 1);
    answer(405, "POST a URL to /fn/shorten, or GET /fn/shorten/<code>");
    return 0;
}
