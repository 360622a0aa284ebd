/*
 * A manager's receipt (PROTOCOL.md, "A receipt"): the CBOR map
 * {1: seq, 2: status, 3: height, 4: block hash, 5: reason}.
 */
#ifndef MEDLEDGER_RECEIPT_H
#define MEDLEDGER_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RECEIPT_ACCEPTED,  /* queued for a block: keep the reading */
    RECEIPT_COMMITTED, /* in a committed block: the reading may be dropped */
    RECEIPT_REJECTED,  /* refused for a reason: resending the same bytes cannot help */
    RECEIPT_BUSY,      /* the manager's pool was full: keep the reading and send it again later */
} receipt_status;

#define RECEIPT_REASON_MAX 32

typedef struct {
    uint64_t seq;
    receipt_status status;
    uint64_t height;                  /* committed only */
    uint8_t block_hash[32];           /* committed only */
    char reason[RECEIPT_REASON_MAX];  /* rejected only; NUL-terminated */
} receipt;

/* Decodes a receipt (any valid definite-length encoding; unknown keys are skipped). Returns 0,
 * or -1 with what is wrong in error. */
int receipt_decode(const uint8_t *bytes, size_t len, receipt *out, char *error, size_t error_cap);

const char *receipt_status_name(receipt_status status);

#endif
