/* static-site (wagi ABI): serves files from the function's files bundle, which the
 * platform preopens at "/" in the guest (a fresh writable copy per call).
 *
 * PATH_INFO picks the file: "/" and any path ending in "/" serve index.html in that
 * directory. Content-Type comes from the extension. A missing file (or a path with
 * a ".." segment) is a 404; a method other than GET/HEAD is a 405.
 * Deploy with: unifaas deploy static-site static-site.wasm --abi wagi --files functions/static-site/site
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *ext;
    const char *type;
} TYPES[] = {
    {".html", "text/html; charset=utf-8"},  {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},    {".js", "text/javascript; charset=utf-8"},
    {".json", "application/json"},          {".txt", "text/plain; charset=utf-8"},
    {".svg", "image/svg+xml"},              {".png", "image/png"},
    {".jpg", "image/jpeg"},                 {".ico", "image/x-icon"},
};

static const char *content_type(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
            if (strcmp(dot, TYPES[i].ext) == 0) return TYPES[i].type;
    return "application/octet-stream";
}

static int has_dotdot(const char *path) {
    for (const char *s = path; (s = strstr(s, "..")) != NULL; s += 2)
        if ((s == path || s[-1] == '/') && (s[2] == '\0' || s[2] == '/')) return 1;
    return 0;
}

static int not_found(const char *path) {
    printf("Status: 404 Not Found\nContent-Type: text/plain\n\nnot found: %s\n", path);
    return 0;
}

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");
    if (!method) method = "GET";
    if (!path || !*path) path = "/";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        printf("Status: 405 Method Not Allowed\nAllow: GET, HEAD\nContent-Type: text/plain\n\n");
        printf("method not allowed\n");
        return 0;
    }
    if (has_dotdot(path) || strlen(path) > 1024) return not_found(path);

    char file[1100];
    snprintf(file, sizeof file, "%s%s", path, path[strlen(path) - 1] == '/' ? "index.html" : "");
    FILE *f = fopen(file, "rb");
    if (!f) return not_found(path);
    static char buf[65536]; /* static: the default wasm stack is only 64 KiB */
    size_t n = fread(buf, 1, sizeof buf, f);
    if (ferror(f)) return not_found(path); /* e.g. a directory */
    printf("Content-Type: %s\n\n", content_type(file));
    if (strcmp(method, "HEAD") == 0) return 0;
    do {
        fwrite(buf, 1, n, stdout);
    } while ((n = fread(buf, 1, sizeof buf, f)) > 0);
    fclose(f);
    return 0;
}
