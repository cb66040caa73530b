/* fetch (wagi): GET /fn/fetch?url=<URL> fetches the URL through the host and answers
 * with the upstream status and body. The host refuses hosts that are not on the
 * function's allow-list (deploy --allow-host HOST[:PORT]): that is a 403 from here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "unifaas.h"

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The URL-decoded value of query parameter url= (at most size-1 bytes); 1 if present. */
static int url_param(const char *query, char *out, size_t size) {
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        if (!end) end = p + strlen(p);
        if (strncmp(p, "url=", 4) == 0) {
            size_t n = 0;
            for (const char *s = p + 4; s < end && n + 1 < size; s++) {
                if (*s == '%' && end - s > 2 && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
                    out[n++] = (char)(hexval(s[1]) * 16 + hexval(s[2]));
                    s += 2;
                } else {
                    out[n++] = *s == '+' ? ' ' : *s;
                }
            }
            out[n] = '\0';
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* The upstream's Content-Type, found in the headers of the last response (handle 1:
 * this function makes one request per call). */
static const char *content_type(void) {
    static char headers[8192];
    uint32_t len = 0;
    if (unifaas_http_headers(1, headers, sizeof headers - 1, &len) != UNIFAAS_OK) goto fallback;
    headers[len] = '\0';
    for (char *line = headers; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (strncasecmp(line, "content-type:", 13) == 0) {
            line += 13;
            while (*line == ' ') line++;
            return line;
        }
        line = next;
    }
fallback:
    return "application/octet-stream";
}

int main(void) {
    const char *query = getenv("QUERY_STRING");
    char url[4096];
    if (!query || !url_param(query, url, sizeof url) || !*url) {
        printf("Status: 400\nContent-Type: text/plain\n\nask for /fn/fetch?url=<URL>\n");
        return 0;
    }
    uint32_t status = 0, len = 0;
    char *body = NULL;
    int32_t rc = unifaas_http_get(url, &status, &body, &len);
    if (rc == UNIFAAS_HOST_DENIED) {
        printf("Status: 403\nContent-Type: text/plain\n\n"
               "host_denied: the host of %s is not on this function's allow-list\n", url);
        return 0;
    }
    if (rc != UNIFAAS_OK) {
        printf("Status: %d\nContent-Type: text/plain\n\n%s: fetching %s failed\n",
               rc == UNIFAAS_HTTP_TIMEOUT ? 504 : 502, unifaas_status_name(rc), url);
        return 0;
    }
    printf("Status: %u\nContent-Type: %s\n\n", (unsigned)status, content_type());
    fwrite(body, 1, len, stdout);
    free(body);
    return 0;
}
