#include "receipt.h"

#include <stdio.h>
#include <string.h>

#include "cbor.h"

const char *receipt_status_name(receipt_status status) {
    switch (status) {
    case RECEIPT_ACCEPTED: return "accepted";
    case RECEIPT_COMMITTED: return "committed";
    case RECEIPT_REJECTED: return "rejected";
    case RECEIPT_BUSY: return "busy";
    }
    return "unknown";
}

static int text_is(const uint8_t *text, size_t len, const char *want) {
    return len == strlen(want) && memcmp(text, want, len) == 0;
}

#define FAIL(...)                                     \
    do {                                              \
        snprintf(error, error_cap, __VA_ARGS__);      \
        return -1;                                    \
    } while (0)

int receipt_decode(const uint8_t *bytes, size_t len, receipt *out, char *error, size_t error_cap) {
    cbor_reader r;
    cbor_reader_init(&r, bytes, len);
    uint64_t pairs;
    enum cbor_error e = cbor_read_map(&r, &pairs);
    if (e != CBOR_OK) FAIL("a receipt is a CBOR map (%s)", cbor_error_string(e));
    if (pairs > 16) FAIL("a receipt has at most 16 entries, not %llu", (unsigned long long)pairs);

    unsigned seen = 0; /* bit k: key k was present */
    const uint8_t *status = NULL, *hash = NULL, *reason = NULL;
    size_t status_len = 0, hash_len = 0, reason_len = 0;
    memset(out, 0, sizeof *out);
    for (uint64_t i = 0; i < pairs; i++) {
        uint64_t key;
        e = cbor_read_uint(&r, &key);
        if (e == CBOR_ERR_TYPE) {
            /* a key of another type: not ours, skip the pair */
            if ((e = cbor_skip(&r)) != CBOR_OK || (e = cbor_skip(&r)) != CBOR_OK) FAIL("entry %llu: %s",
                (unsigned long long)i, cbor_error_string(e));
            continue;
        }
        if (e != CBOR_OK) FAIL("entry %llu: %s", (unsigned long long)i, cbor_error_string(e));
        if (key >= 1 && key <= 5) {
            if (seen & (1u << key)) FAIL("key %llu appears twice", (unsigned long long)key);
            seen |= 1u << key;
        }
        switch (key) {
        case 1: e = cbor_read_uint(&r, &out->seq); break;
        case 2: e = cbor_read_text(&r, &status, &status_len); break;
        case 3: e = cbor_read_uint(&r, &out->height); break;
        case 4: e = cbor_read_bytes(&r, &hash, &hash_len); break;
        case 5: e = cbor_read_text(&r, &reason, &reason_len); break;
        default: e = cbor_skip(&r); break;
        }
        if (e != CBOR_OK) FAIL("key %llu: %s", (unsigned long long)key, cbor_error_string(e));
    }
    if (r.pos != r.len) FAIL("%zu bytes after the receipt's map", r.len - r.pos);
    if (!(seen & (1u << 1)) || !(seen & (1u << 2))) FAIL("a receipt needs 1 (seq) and 2 (status)");

    if (text_is(status, status_len, "accepted")) {
        out->status = RECEIPT_ACCEPTED;
    } else if (text_is(status, status_len, "busy")) {
        out->status = RECEIPT_BUSY;
    } else if (text_is(status, status_len, "committed")) {
        if (!(seen & (1u << 3)) || hash == NULL || hash_len != 32)
            FAIL("a committed receipt needs 3 (height) and 4 (a 32-byte block hash)");
        out->status = RECEIPT_COMMITTED;
        memcpy(out->block_hash, hash, 32);
    } else if (text_is(status, status_len, "rejected")) {
        if (reason == NULL || reason_len < 1 || reason_len >= RECEIPT_REASON_MAX)
            FAIL("a rejected receipt needs 5 (a reason of 1 to %d characters)", RECEIPT_REASON_MAX - 1);
        for (size_t i = 0; i < reason_len; i++) {
            uint8_t c = reason[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                FAIL("the rejection reason is not [a-z0-9-]");
        }
        out->status = RECEIPT_REJECTED;
        memcpy(out->reason, reason, reason_len);
        out->reason[reason_len] = '\0';
    } else {
        FAIL("unknown receipt status '%.*s'", (int)(status_len < 32 ? status_len : 32), (const char *)status);
    }
    return 0;
}
