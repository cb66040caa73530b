/* wagi-router: a tiny web app for the wagi ABI (CGI over WASI).
 *
 * Routes on PATH_INFO:
 *   GET /                  text/plain index of the routes
 *   GET /hello?name=NAME   text/plain greeting, NAME defaults to "world"
 *   GET /whoami            application/json with the method and the User-Agent and
 *                          X-Request-Id request headers (HTTP_USER_AGENT, HTTP_X_REQUEST_ID)
 *   ANY /status/NNN        an empty-bodied answer with that status (100..599)
 *   GET /old               302 redirect to /hello (Location header)
 *   anything else          404 Not Found
 * A CGI response is header lines, a blank line, then the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies the URL-decoded value of query parameter `key` into out (at most size-1
 * bytes); returns 1 when the parameter is present. */
static int query_param(const char *query, const char *key, char *out, size_t size) {
    size_t klen = strlen(key);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        if (!end) end = p + strlen(p);
        if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t n = 0;
            for (const char *s = p + klen + 1; s < end && n + 1 < size; s++) {
                if (*s == '+') {
                    out[n++] = ' ';
                } else if (*s == '%' && end - s > 2 && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
                    out[n++] = (char)(hexval(s[1]) * 16 + hexval(s[2]));
                    s += 2;
                } else {
                    out[n++] = *s;
                }
            }
            out[n] = '\0';
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* Writes s as a JSON string literal. */
static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int main(void) {
    const char *path = env("PATH_INFO");
    const char *method = env("REQUEST_METHOD");
    if (*path == '\0') path = "/";

    if (strcmp(path, "/") == 0) {
        printf("Content-Type: text/plain\n\n");
        printf("wagi-router routes: /hello?name=NAME  /whoami  /status/NNN  /old\n");
    } else if (strcmp(path, "/hello") == 0) {
        char name[256] = "world";
        query_param(env("QUERY_STRING"), "name", name, sizeof name);
        printf("Content-Type: text/plain; charset=utf-8\n\n");
        printf("Hello, %s!\n", name);
    } else if (strcmp(path, "/whoami") == 0) {
        printf("Content-Type: application/json\n\n");
        printf("{\"method\":");
        json_string(method);
        printf(",\"user_agent\":");
        json_string(env("HTTP_USER_AGENT"));
        printf(",\"request_id\":");
        json_string(env("HTTP_X_REQUEST_ID"));
        printf("}\n");
    } else if (strncmp(path, "/status/", 8) == 0) {
        char *end;
        long code = strtol(path + 8, &end, 10);
        if (*end != '\0' || end == path + 8 || code < 100 || code > 599) {
            printf("Status: 400 Bad Request\nContent-Type: text/plain\n\n");
            printf("status must be a number from 100 to 599\n");
        } else {
            printf("Status: %ld\nContent-Type: text/plain\n\n", code);
        }
    } else if (strcmp(path, "/old") == 0) {
        printf("Status: 302 Found\nLocation: %s/hello\n\n", env("SCRIPT_NAME"));
    } else {
        printf("Status: 404 Not Found\nContent-Type: text/plain\n\n");
        printf("not found: %s\n", path);
    }
    return 0;
}
