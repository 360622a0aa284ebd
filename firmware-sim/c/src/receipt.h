/*
 * A manager's receipt (PROTOCOL.md, "A receipt"): the CBOR map
 * {1: seq, 2: status, 3: height, 4: block hash, 5: reason}; and how a device opens one it
 * receives (PROTOCOL.md, "Signed receipts"): a "committed" or "rejected" receipt counts only when
 * it is a COSE_Sign1 over that map, signed by a manager of the channel (kid: the manager's id),
 * with the device's receipts topic as external_aad. "accepted" and "busy" may come bare.
 */
#ifndef MEDLEDGER_RECEIPT_H
#define MEDLEDGER_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

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

/* The protocol's largest unsigned integer: every seq and height is 0 ... 2^63 - 1. */
#define RECEIPT_UINT_MAX UINT64_C(0x7FFFFFFFFFFFFFFF)

/* Decodes the receipt map (any valid definite-length encoding; unknown keys are skipped; a seq or
 * height above RECEIPT_UINT_MAX is refused). Returns 0, or -1 with what is wrong in error. */
int receipt_decode(const uint8_t *bytes, size_t len, receipt *out, char *error, size_t error_cap);

const char *receipt_status_name(receipt_status status);

/* ---------------------------------------------------------------- trusted managers */

#define RECEIPT_MAX_MANAGERS 8
#define RECEIPT_MANAGER_ID_MAX 64 /* [A-Za-z0-9._-]{1,64}, as the genesis names the manager */
#define RECEIPT_MAX_BYTES 1024    /* the largest receipt message a device opens */
#define RECEIPT_TOPIC_MAX 256     /* the longest receipts topic (the external_aad) */

typedef struct {
    char id[RECEIPT_MANAGER_ID_MAX + 1];
    EVP_PKEY *key; /* its public key */
    int alg;       /* COSE_ALG_EDDSA or COSE_ALG_ES256 */
} receipt_manager;

/* The managers whose signed receipts a device trusts. Filled once at start-up (OpenSSL allocates
 * the keys inside its own calls); receipt_trust_free releases them. */
typedef struct {
    receipt_manager managers[RECEIPT_MAX_MANAGERS];
    size_t count;
} receipt_trust;

void receipt_trust_init(receipt_trust *t);
void receipt_trust_free(receipt_trust *t);
/* Adds a manager from a PEM public key file (SubjectPublicKeyInfo, "BEGIN PUBLIC KEY"): Ed25519
 * or P-256 only. Returns 0, or -1 with what failed in error (a bad id, an id already there, more
 * than RECEIPT_MAX_MANAGERS, a file that cannot be read or holds no such key). */
int receipt_trust_add_pem(receipt_trust *t, const char *id, const char *path, char *error, size_t error_cap);
/* Adds a manager from a raw 32-byte Ed25519 public key (for test vectors). */
int receipt_trust_add_ed25519(receipt_trust *t, const char *id, const uint8_t public_key[32], char *error,
                              size_t error_cap);

/* What receipt_open found. */
enum receipt_verdict {
    RECEIPT_TRUSTED = 0,         /* act on it */
    RECEIPT_MALFORMED = -1,      /* the bytes are not a receipt, or not a COSE_Sign1 over one */
    RECEIPT_UNSIGNED = -2,       /* a committed or rejected receipt that is a bare map */
    RECEIPT_UNKNOWN_SIGNER = -3, /* signed, but the kid names none of the trusted managers */
    RECEIPT_BAD_SIGNATURE = -4,  /* signed with a manager's kid, but it does not verify for this topic
                                    (another key, another topic, changed bytes, or an alg that is not
                                    the key's) */
};

/* The verdict's name, as the protocol names it: "trusted", "malformed", "unsigned",
 * "unknown-signer", "bad-signature". */
const char *receipt_why(int verdict);

/* Opens a receipt received on topic (the device's receipts topic, at most RECEIPT_TOPIC_MAX
 * bytes; the signature must cover it). A message starting with 0xD2 (tag 18) is a COSE_Sign1:
 * its kid must name a trusted manager, its alg be that manager's, its signature verify over
 * Sig_structure with the topic's UTF-8 as external_aad, and its payload be a receipt map. Anything
 * else is a bare receipt map, taken only when "accepted" or "busy".
 *
 * Returns RECEIPT_TRUSTED (0) and fills out, with the signing manager's id in signer (a buffer of
 * RECEIPT_MANAGER_ID_MAX + 1; "" for a bare receipt); or a negative enum receipt_verdict with
 * what is wrong in error, and out and signer not to be used. Nothing is allocated but inside
 * OpenSSL's verification. */
int receipt_open(const receipt_trust *trust, const char *topic, const uint8_t *bytes, size_t len, receipt *out,
                 char *signer, char *error, size_t error_cap);

#endif
