/* counter (wagi): GET /fn/counter/<any path> answers how many times that path was
 * requested, counting from 1, kept in the function's key-value store. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unifaas.h"

int main(void) {
    const char *path = getenv("PATH_INFO");
    if (!path || !*path) path = "/";
    char key[300];
    int n = snprintf(key, sizeof key, "hits:%s", path);
    if (n < 0 || (size_t)n >= sizeof key) {
        printf("Status: 414\nContent-Type: text/plain\n\npath too long\n");
        return 0;
    }
    int64_t count = 0;
    int32_t rc = unifaas_kv_incr(key, (uint32_t)n, 1, &count);
    if (rc == UNIFAAS_KEY_TOO_LARGE) {
        printf("Status: 414\nContent-Type: text/plain\n\npath too long\n");
    } else if (rc != UNIFAAS_OK) {
        printf("Status: 503\nContent-Type: text/plain\n\nkv_incr: %s\n", unifaas_status_name(rc));
    } else {
        printf("Content-Type: text/plain\n\n%" PRId64 "\n", count);
    }
    return 0;
}
