/*
 * Minimal CBOR (RFC 8949) for a device: a writer that produces the core deterministic
 * encoding (§4.2.1) into a caller's fixed buffer, and a reader for the few items a device
 * receives (receipts). Neither allocates.
 *
 * The writer does not sort map keys: the caller writes them in the deterministic order
 * (bytewise order of the encoded keys; for the small unsigned keys of this protocol that is
 * simply ascending numeric order).
 */
#ifndef MEDLEDGER_CBOR_H
#define MEDLEDGER_CBOR_H

#include <stddef.h>
#include <stdint.h>

enum cbor_error {
    CBOR_OK = 0,
    CBOR_ERR_OVERFLOW,     /* the output buffer is too small */
    CBOR_ERR_TRUNCATED,    /* the input ends inside an item */
    CBOR_ERR_UNSUPPORTED,  /* indefinite lengths or reserved additional information */
    CBOR_ERR_TYPE,         /* an item of another major type than expected */
    CBOR_ERR_DEPTH,        /* nesting deeper than CBOR_MAX_DEPTH while skipping */
};

/* The deepest nesting the reader will skip over. */
#define CBOR_MAX_DEPTH 8

const char *cbor_error_string(enum cbor_error error);

/* A writer over a fixed buffer. The first error sticks: later calls do nothing. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    enum cbor_error error;
} cbor_writer;

void cbor_writer_init(cbor_writer *w, uint8_t *buf, size_t cap);
void cbor_put_uint(cbor_writer *w, uint64_t value);
void cbor_put_int(cbor_writer *w, int64_t value);
void cbor_put_bytes(cbor_writer *w, const uint8_t *bytes, size_t len);
void cbor_put_text(cbor_writer *w, const char *text, size_t len);
void cbor_put_text_z(cbor_writer *w, const char *text); /* a NUL-terminated string */
void cbor_put_array(cbor_writer *w, size_t count);
void cbor_put_map(cbor_writer *w, size_t pairs);
void cbor_put_tag(cbor_writer *w, uint64_t tag);
/* The shortest of half, single and double precision that holds the value exactly; every NaN is
 * written as f97e00 (RFC 8949 §4.2.2). */
void cbor_put_double(cbor_writer *w, double value);

/* CBOR major types. */
enum cbor_major {
    CBOR_UINT = 0,
    CBOR_NINT = 1,
    CBOR_BYTES = 2,
    CBOR_TEXT = 3,
    CBOR_ARRAY = 4,
    CBOR_MAP = 5,
    CBOR_TAG = 6,
    CBOR_SIMPLE = 7,
};

/* A reader over received bytes. Definite lengths only. */
typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
} cbor_reader;

void cbor_reader_init(cbor_reader *r, const uint8_t *buf, size_t len);
/* Reads one head: the major type and its argument (for major 7, the raw additional
 * information value or the float bits). For strings, the content follows at r->pos. */
enum cbor_error cbor_read_head(cbor_reader *r, enum cbor_major *major, uint64_t *argument);
enum cbor_error cbor_read_uint(cbor_reader *r, uint64_t *value);
/* Points *out at the string's bytes inside the input (no copy). */
enum cbor_error cbor_read_text(cbor_reader *r, const uint8_t **out, size_t *len);
enum cbor_error cbor_read_bytes(cbor_reader *r, const uint8_t **out, size_t *len);
enum cbor_error cbor_read_map(cbor_reader *r, uint64_t *pairs);
/* Skips one whole item, nested items included. */
enum cbor_error cbor_skip(cbor_reader *r);

#endif
