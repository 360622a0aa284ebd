/*
 * Just enough JSON to read the test vectors: values are spans of the (NUL-terminated) text,
 * looked up by key or index. Test code only; not used by the device.
 */
#ifndef MEDLEDGER_TEST_JSON_H
#define MEDLEDGER_TEST_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *start; /* first character of the value */
    const char *end;   /* one past its last character */
} json_value;

/* The whole document; -1 when it is not one valid JSON value. */
int json_parse(const char *text, json_value *out);
int json_get(json_value object, const char *key, json_value *out);
int json_at(json_value array, size_t index, json_value *out);
size_t json_count(json_value array);
/* A string's content with escapes decoded (\n \" \\ \/ \t \uXXXX below 0x80); -1 if not a string or too long. */
int json_string(json_value value, char *out, size_t cap);
int json_u64(json_value value, uint64_t *out);
int json_i64(json_value value, int64_t *out);
/* A number; *is_float says whether it was written with a fraction or exponent. */
int json_number(json_value value, double *out, int *is_float);
int json_bool(json_value value, int *out);

#endif
