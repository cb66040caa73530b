/* json-transform (raw ABI): reads a JSON object from stdin and answers with
 * statistics over its "numbers" array.
 *
 *   in:  {"numbers": [3, 1.5, -2, 10]}          (other keys are ignored)
 *   out: {"count":4,"sum":12.5,"mean":3.125,"min":-2,"max":10}
 *
 * An empty array gives count 0, sum 0 and null for mean/min/max. Bad input
 * (not JSON, no "numbers" array, a non-number in it) prints
 * {"error":"bad_request","message":"..."} and exits 1, so the platform answers 500
 * with that body. A small hand-written parser: enough JSON for this shape.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT (1 << 20)
#define MAX_DEPTH 32

static const char *p; /* parse cursor */

static void fail(const char *message) {
    printf("{\"error\":\"bad_request\",\"message\":\"%s\"}\n", message);
    exit(1);
}

static void skip_ws(void) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
}

static void expect(char c, const char *message) {
    skip_ws();
    if (*p != c) fail(message);
    p++;
}

/* Skips a JSON string starting at the opening quote; returns its start and length
 * (escapes are kept as-is: only key comparison needs the text). */
static const char *string(size_t *len) {
    expect('"', "expected a string");
    const char *start = p;
    while (*p != '"') {
        if (*p == '\0') fail("unterminated string");
        if (*p == '\\' && p[1] != '\0') p++;
        p++;
    }
    *len = (size_t)(p - start);
    p++;
    return start;
}

static double number(void) {
    skip_ws();
    char *end;
    if (!(*p == '-' || (*p >= '0' && *p <= '9'))) fail("numbers must hold only numbers");
    double v = strtod(p, &end);
    if (end == p || !isfinite(v)) fail("invalid number");
    p = end;
    return v;
}

static void skip_value(int depth) {
    if (depth > MAX_DEPTH) fail("nested too deeply");
    skip_ws();
    size_t len;
    if (*p == '"') {
        string(&len);
    } else if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p++;
        skip_ws();
        if (*p == close) {
            p++;
            return;
        }
        for (;;) {
            if (close == '}') {
                string(&len);
                expect(':', "expected ':'");
            }
            skip_value(depth + 1);
            skip_ws();
            if (*p == ',') {
                p++;
                continue;
            }
            expect(close, "expected ',' or the end of a list or object");
            return;
        }
    } else if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0) {
        p += 4;
    } else if (strncmp(p, "false", 5) == 0) {
        p += 5;
    } else {
        number();
    }
}

/* Prints a number the short way: integers without a fraction. */
static void print_number(double v) {
    if (v == floor(v) && fabs(v) < 1e15)
        printf("%.0f", v);
    else
        printf("%.15g", v);
}

int main(void) {
    static char input[MAX_INPUT + 1];
    size_t n = fread(input, 1, MAX_INPUT + 1, stdin);
    if (n > MAX_INPUT) fail("request too large (1 MiB at most)");
    input[n] = '\0';
    p = input;

    int found = 0;
    long count = 0;
    double sum = 0, min = 0, max = 0;
    expect('{', "expected a JSON object like {\\\"numbers\\\":[1,2,3]}");
    skip_ws();
    if (*p == '}') fail("missing \\\"numbers\\\"");
    for (;;) {
        size_t len;
        const char *key = string(&len);
        expect(':', "expected ':'");
        if (len == 7 && strncmp(key, "numbers", 7) == 0) {
            found = 1;
            expect('[', "numbers must be an array");
            skip_ws();
            if (*p == ']') {
                p++;
            } else {
                for (;;) {
                    double v = number();
                    if (count == 0 || v < min) min = v;
                    if (count == 0 || v > max) max = v;
                    sum += v;
                    count++;
                    skip_ws();
                    if (*p == ',') {
                        p++;
                        continue;
                    }
                    expect(']', "expected ',' or ']' in numbers");
                    break;
                }
            }
        } else {
            skip_value(0);
        }
        skip_ws();
        if (*p == ',') {
            p++;
            continue;
        }
        expect('}', "expected ',' or '}'");
        break;
    }
    skip_ws();
    if (*p != '\0') fail("trailing data after the object");
    if (!found) fail("missing \\\"numbers\\\"");

    printf("{\"count\":%ld,\"sum\":", count);
    print_number(sum);
    if (count == 0) {
        printf(",\"mean\":null,\"min\":null,\"max\":null}\n");
        return 0;
    }
    printf(",\"mean\":");
    print_number(sum / (double)count);
    printf(",\"min\":");
    print_number(min);
    printf(",\"max\":");
    print_number(max);
    printf("}\n");
    return 0;
}
