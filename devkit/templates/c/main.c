// __NAME__: a unifaas function in C (WAGI: the request's method and path in the
// environment, its body on stdin; CGI headers, a blank line, then the body on stdout).
// It answers JSON saying what it received and how often it was called, a count kept in
// its key-value store through unifaas.h's hostcalls (which also do outbound HTTP).
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "unifaas.h"

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");
    char buf[4096];
    size_t received = 0, got;
    while ((got = fread(buf, 1, sizeof buf, stdin)) > 0) {
        received += got;
    }
    printf("Content-Type: application/json\n\n");
    printf("{\"function\": \"__NAME__\", \"language\": \"c\", \"method\": ");
    json_string(method ? method : "");
    printf(", \"path\": ");
    json_string(path && *path ? path : "/");
    printf(", \"received_bytes\": %zu, \"calls\": ", received);
    int64_t calls = 0;
    if (unifaas_kv_incr("calls", 5, 1, &calls) == UNIFAAS_OK) {
        printf("%" PRId64 "}\n", calls);
    } else {  /* no store here (unifaas run), or a quota */
        printf("null}\n");
    }
    return 0;
}
