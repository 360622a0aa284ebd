#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    return p;
}

/* Returns the end of the value starting at p, or NULL. */
static const char *skip_value(const char *p, int depth) {
    if (depth > 32) return NULL;
    p = skip_space(p);
    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (*p == '\0') return NULL;
            if (*p == '\\') {
                p++;
                if (*p == '\0') return NULL;
            }
        }
        return p + 1;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = skip_space(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = skip_value(p, depth + 1); /* the key */
                if (p == NULL) return NULL;
                p = skip_space(p);
                if (*p != ':') return NULL;
                p++;
            }
            p = skip_value(p, depth + 1);
            if (p == NULL) return NULL;
            p = skip_space(p);
            if (*p == close) return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0) return p + 4;
    if (strncmp(p, "false", 5) == 0) return p + 5;
    const char *start = p;
    while ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E') p++;
    return p > start ? p : NULL;
}

int json_parse(const char *text, json_value *out) {
    const char *start = skip_space(text);
    const char *end = skip_value(start, 0);
    if (end == NULL || *skip_space(end) != '\0') return -1;
    out->start = start;
    out->end = end;
    return 0;
}

int json_get(json_value object, const char *key, json_value *out) {
    if (*object.start != '{') return -1;
    const char *p = skip_space(object.start + 1);
    size_t key_len = strlen(key);
    while (*p == '"') {
        const char *key_end = skip_value(p, 0);
        const char *colon = skip_space(key_end);
        const char *value = skip_space(colon + 1);
        const char *value_end = skip_value(value, 0);
        if (value_end == NULL) return -1;
        if ((size_t)(key_end - p) == key_len + 2 && strncmp(p + 1, key, key_len) == 0) {
            out->start = value;
            out->end = value_end;
            return 0;
        }
        p = skip_space(value_end);
        if (*p != ',') return -1;
        p = skip_space(p + 1);
    }
    return -1;
}

int json_at(json_value array, size_t index, json_value *out) {
    if (*array.start != '[') return -1;
    const char *p = skip_space(array.start + 1);
    if (*p == ']') return -1;
    for (size_t i = 0;; i++) {
        const char *end = skip_value(p, 0);
        if (end == NULL) return -1;
        if (i == index) {
            out->start = p;
            out->end = end;
            return 0;
        }
        p = skip_space(end);
        if (*p != ',') return -1;
        p = skip_space(p + 1);
    }
}

size_t json_count(json_value array) {
    json_value item;
    size_t n = 0;
    while (json_at(array, n, &item) == 0) n++;
    return n;
}

int json_string(json_value value, char *out, size_t cap) {
    if (*value.start != '"') return -1;
    size_t n = 0;
    for (const char *p = value.start + 1; p < value.end - 1; p++) {
        char c = *p;
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'u': {
                char hex[5] = {0};
                if (p + 4 >= value.end) return -1;
                memcpy(hex, p + 1, 4);
                long code = strtol(hex, NULL, 16);
                if (code <= 0 || code >= 0x80) return -1;
                c = (char)code;
                p += 4;
                break;
            }
            default: return -1;
            }
        }
        if (n + 1 >= cap) return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

int json_u64(json_value value, uint64_t *out) {
    if (*value.start < '0' || *value.start > '9') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long n = strtoull(value.start, &end, 10);
    if (errno != 0 || end != value.end) return -1;
    *out = (uint64_t)n;
    return 0;
}

int json_i64(json_value value, int64_t *out) {
    errno = 0;
    char *end = NULL;
    long long n = strtoll(value.start, &end, 10);
    if (errno != 0 || end != value.end) return -1;
    *out = (int64_t)n;
    return 0;
}

int json_number(json_value value, double *out, int *is_float) {
    errno = 0;
    char *end = NULL;
    double d = strtod(value.start, &end);
    if (errno != 0 || end != value.end) return -1;
    *is_float = 0;
    for (const char *p = value.start; p < value.end; p++) {
        if (*p == '.' || *p == 'e' || *p == 'E') *is_float = 1;
    }
    *out = d;
    return 0;
}

int json_bool(json_value value, int *out) {
    if (strncmp(value.start, "true", 4) == 0) {
        *out = 1;
        return 0;
    }
    if (strncmp(value.start, "false", 5) == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}
