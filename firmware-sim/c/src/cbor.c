#include "cbor.h"

#include <string.h>

const char *cbor_error_string(enum cbor_error error) {
    switch (error) {
    case CBOR_OK: return "ok";
    case CBOR_ERR_OVERFLOW: return "output buffer too small";
    case CBOR_ERR_TRUNCATED: return "input ends inside an item";
    case CBOR_ERR_UNSUPPORTED: return "indefinite length or reserved encoding";
    case CBOR_ERR_TYPE: return "unexpected item type";
    case CBOR_ERR_DEPTH: return "nested too deeply";
    }
    return "unknown CBOR error";
}

void cbor_writer_init(cbor_writer *w, uint8_t *buf, size_t cap) {
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->error = CBOR_OK;
}

static int reserve(cbor_writer *w, size_t n) {
    if (w->error != CBOR_OK) return 0;
    if (n > w->cap - w->len) {
        w->error = CBOR_ERR_OVERFLOW;
        return 0;
    }
    return 1;
}

static void put_big_endian(cbor_writer *w, uint64_t value, size_t bytes) {
    for (size_t i = 0; i < bytes; i++) {
        w->buf[w->len + i] = (uint8_t)(value >> (8 * (bytes - 1 - i)));
    }
    w->len += bytes;
}

/* A head in its shortest form: the argument in the initial byte below 24, else in 1, 2, 4 or 8
 * following bytes (RFC 8949 §4.2.1, "preferred serialization" of arguments). */
static void put_head(cbor_writer *w, enum cbor_major major, uint64_t argument) {
    uint8_t initial = (uint8_t)(major << 5);
    size_t extra;
    uint8_t info;
    if (argument < 24) {
        extra = 0;
        info = (uint8_t)argument;
    } else if (argument <= 0xFF) {
        extra = 1;
        info = 24;
    } else if (argument <= 0xFFFF) {
        extra = 2;
        info = 25;
    } else if (argument <= 0xFFFFFFFFu) {
        extra = 4;
        info = 26;
    } else {
        extra = 8;
        info = 27;
    }
    if (!reserve(w, 1 + extra)) return;
    w->buf[w->len++] = initial | info;
    put_big_endian(w, argument, extra);
}

void cbor_put_uint(cbor_writer *w, uint64_t value) { put_head(w, CBOR_UINT, value); }

void cbor_put_int(cbor_writer *w, int64_t value) {
    if (value >= 0) {
        put_head(w, CBOR_UINT, (uint64_t)value);
    } else {
        /* -1 - value, computed without overflow for INT64_MIN. */
        put_head(w, CBOR_NINT, (uint64_t)(-(value + 1)));
    }
}

static void put_string(cbor_writer *w, enum cbor_major major, const uint8_t *bytes, size_t len) {
    put_head(w, major, (uint64_t)len);
    if (!reserve(w, len)) return;
    if (len > 0) memcpy(w->buf + w->len, bytes, len);
    w->len += len;
}

void cbor_put_bytes(cbor_writer *w, const uint8_t *bytes, size_t len) { put_string(w, CBOR_BYTES, bytes, len); }

void cbor_put_text(cbor_writer *w, const char *text, size_t len) {
    put_string(w, CBOR_TEXT, (const uint8_t *)text, len);
}

void cbor_put_text_z(cbor_writer *w, const char *text) { cbor_put_text(w, text, strlen(text)); }

void cbor_put_array(cbor_writer *w, size_t count) { put_head(w, CBOR_ARRAY, (uint64_t)count); }

void cbor_put_map(cbor_writer *w, size_t pairs) { put_head(w, CBOR_MAP, (uint64_t)pairs); }

void cbor_put_tag(cbor_writer *w, uint64_t tag) { put_head(w, CBOR_TAG, tag); }

/*
 * Floats: the value decides the width, from the bits of the double alone (no float casts, so no
 * dependence on the FPU's rounding mode and no undefined conversions of out-of-range values).
 * A double is (-1)^s * 1.f * 2^E (normal) with a 52-bit f. It fits a narrower format exactly
 * when E is within that format's range and the bits that format cannot hold are zero.
 */
void cbor_put_double(cbor_writer *w, double value) {
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint64_t sign = bits >> 63;
    int biased = (int)((bits >> 52) & 0x7FF);
    uint64_t fraction = bits & ((UINT64_C(1) << 52) - 1);
    uint64_t half = UINT64_MAX, single = UINT64_MAX;

    if (biased == 0x7FF) {
        half = fraction != 0 ? 0x7E00 : ((sign << 15) | 0x7C00); /* NaN (canonical) or infinity */
    } else if (biased == 0 && fraction == 0) {
        half = sign << 15; /* zero, keeping its sign */
    } else if (biased != 0) {
        int exponent = biased - 1023;
        uint64_t significand = (UINT64_C(1) << 52) | fraction;
        if (exponent >= -14 && exponent <= 15) {
            if ((fraction & ((UINT64_C(1) << 42) - 1)) == 0) {
                half = (sign << 15) | ((uint64_t)(exponent + 15) << 10) | (fraction >> 42);
            }
        } else if (exponent >= -24 && exponent < -14) {
            /* A subnormal half k * 2^-24: k = significand * 2^(exponent - 28). */
            unsigned shift = (unsigned)(28 - exponent);
            if ((significand & ((UINT64_C(1) << shift) - 1)) == 0) half = (sign << 15) | (significand >> shift);
        }
        if (half == UINT64_MAX) {
            if (exponent >= -126 && exponent <= 127) {
                if ((fraction & ((UINT64_C(1) << 29) - 1)) == 0) {
                    single = (sign << 31) | ((uint64_t)(exponent + 127) << 23) | (fraction >> 29);
                }
            } else if (exponent >= -149 && exponent < -126) {
                /* A subnormal single k * 2^-149: k = significand * 2^(exponent + 97). */
                unsigned shift = (unsigned)(-97 - exponent);
                if ((significand & ((UINT64_C(1) << shift) - 1)) == 0) single = (sign << 31) | (significand >> shift);
            }
        }
    }
    /* (A subnormal double is too small for either narrower format.) */

    if (half != UINT64_MAX) {
        if (!reserve(w, 3)) return;
        w->buf[w->len++] = 0xF9;
        put_big_endian(w, half, 2);
    } else if (single != UINT64_MAX) {
        if (!reserve(w, 5)) return;
        w->buf[w->len++] = 0xFA;
        put_big_endian(w, single, 4);
    } else {
        if (!reserve(w, 9)) return;
        w->buf[w->len++] = 0xFB;
        put_big_endian(w, bits, 8);
    }
}

void cbor_reader_init(cbor_reader *r, const uint8_t *buf, size_t len) {
    r->buf = buf;
    r->len = len;
    r->pos = 0;
}

enum cbor_error cbor_read_head(cbor_reader *r, enum cbor_major *major, uint64_t *argument) {
    if (r->pos >= r->len) return CBOR_ERR_TRUNCATED;
    uint8_t initial = r->buf[r->pos];
    uint8_t info = initial & 0x1F;
    size_t extra;
    if (info < 24) {
        extra = 0;
    } else if (info <= 27) {
        extra = (size_t)1 << (info - 24);
    } else {
        return CBOR_ERR_UNSUPPORTED; /* 28..30 reserved, 31 indefinite length / break */
    }
    if (extra > r->len - r->pos - 1) return CBOR_ERR_TRUNCATED;
    uint64_t value = info < 24 ? info : 0;
    for (size_t i = 0; i < extra; i++) value = (value << 8) | r->buf[r->pos + 1 + i];
    r->pos += 1 + extra;
    *major = (enum cbor_major)(initial >> 5);
    *argument = value;
    return CBOR_OK;
}

static enum cbor_error expect(cbor_reader *r, enum cbor_major want, uint64_t *argument) {
    size_t start = r->pos;
    enum cbor_major major;
    enum cbor_error error = cbor_read_head(r, &major, argument);
    if (error != CBOR_OK) return error;
    if (major != want) {
        r->pos = start;
        return CBOR_ERR_TYPE;
    }
    return CBOR_OK;
}

enum cbor_error cbor_read_uint(cbor_reader *r, uint64_t *value) { return expect(r, CBOR_UINT, value); }

static enum cbor_error read_string(cbor_reader *r, enum cbor_major want, const uint8_t **out, size_t *len) {
    uint64_t length;
    enum cbor_error error = expect(r, want, &length);
    if (error != CBOR_OK) return error;
    if (length > r->len - r->pos) return CBOR_ERR_TRUNCATED;
    *out = r->buf + r->pos;
    *len = (size_t)length;
    r->pos += (size_t)length;
    return CBOR_OK;
}

enum cbor_error cbor_read_text(cbor_reader *r, const uint8_t **out, size_t *len) {
    return read_string(r, CBOR_TEXT, out, len);
}

enum cbor_error cbor_read_bytes(cbor_reader *r, const uint8_t **out, size_t *len) {
    return read_string(r, CBOR_BYTES, out, len);
}

enum cbor_error cbor_read_map(cbor_reader *r, uint64_t *pairs) { return expect(r, CBOR_MAP, pairs); }

static enum cbor_error skip(cbor_reader *r, int depth) {
    if (depth > CBOR_MAX_DEPTH) return CBOR_ERR_DEPTH;
    enum cbor_major major;
    uint64_t argument;
    enum cbor_error error = cbor_read_head(r, &major, &argument);
    if (error != CBOR_OK) return error;
    switch (major) {
    case CBOR_UINT:
    case CBOR_NINT:
    case CBOR_SIMPLE:
        return CBOR_OK;
    case CBOR_BYTES:
    case CBOR_TEXT:
        if (argument > r->len - r->pos) return CBOR_ERR_TRUNCATED;
        r->pos += (size_t)argument;
        return CBOR_OK;
    case CBOR_TAG:
        return skip(r, depth + 1);
    case CBOR_ARRAY:
    case CBOR_MAP: {
        /* Every item takes at least one byte: a count beyond the input is truncated. */
        if (argument > r->len - r->pos) return CBOR_ERR_TRUNCATED;
        uint64_t items = major == CBOR_MAP ? argument * 2 : argument;
        for (uint64_t i = 0; i < items; i++) {
            error = skip(r, depth + 1);
            if (error != CBOR_OK) return error;
        }
        return CBOR_OK;
    }
    }
    return CBOR_ERR_UNSUPPORTED;
}

enum cbor_error cbor_skip(cbor_reader *r) { return skip(r, 0); }
