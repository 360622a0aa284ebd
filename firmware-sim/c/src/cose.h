/*
 * COSE_Sign1 (RFC 9052) as PROTOCOL.md uses it: protected {1: alg, 4: kid}, unprotected {},
 * the signature over Sig_structure = ["Signature1", protected, external_aad, payload]; the
 * device's signing key (OpenSSL, Ed25519 or ECDSA P-256); and the receiving side for a manager's
 * signed receipts: a parser of COSE_Sign1 and signature verification with a public key.
 *
 * external_aad is empty for readings, and the receipts topic's UTF-8 for signed receipts.
 */
#ifndef MEDLEDGER_COSE_H
#define MEDLEDGER_COSE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "reading.h"

#define COSE_ALG_EDDSA (-8) /* Ed25519 */
#define COSE_ALG_ES256 (-7) /* ECDSA P-256 with SHA-256 */
#define COSE_TAG_SIGN1 18
#define COSE_SIGNATURE_BYTES 64 /* Ed25519, and ES256 as r || s */
#define COSE_KID_MAX 64         /* a kid is a device or manager id: at most 64 bytes */
#define COSE_HEADER_MAX_PAIRS 16 /* the most entries the parser reads in the protected header */

/* Room for each intermediate: a protected header with a 64-byte kid, a payload and the
 * Sig_structure around it. */
#define COSE_PROTECTED_MAX 80
#define COSE_PAYLOAD_MAX READING_MAX_BYTES
#define COSE_TBS_MAX (COSE_PAYLOAD_MAX + COSE_PROTECTED_MAX + 32)

/* The protected header's bytes: the map {1: alg, 4: kid} (kid: the device id's UTF-8, as a
 * byte string). Returns 0, or -1 if out is too small. */
int cose_protected_header(int alg, const char *kid, uint8_t *out, size_t cap, size_t *len);

/* Sig_structure = ["Signature1", protected, h'', payload] (RFC 9052 §4.4): a reading's, with an
 * empty external_aad. */
int cose_sig_structure(const uint8_t *protected_bytes, size_t protected_len, const uint8_t *payload,
                       size_t payload_len, uint8_t *out, size_t cap, size_t *len);

/* Sig_structure = ["Signature1", protected, external_aad, payload] with the given external_aad
 * (a signed receipt's: the receipts topic's UTF-8). aad may be NULL when aad_len is 0. Returns 0,
 * or -1 if out is too small. */
int cose_sig_structure_aad(const uint8_t *protected_bytes, size_t protected_len, const uint8_t *aad, size_t aad_len,
                           const uint8_t *payload, size_t payload_len, uint8_t *out, size_t cap, size_t *len);

/* 18([protected, {}, payload, signature]). */
int cose_sign1_encode(const uint8_t *protected_bytes, size_t protected_len, const uint8_t *payload,
                      size_t payload_len, const uint8_t *signature, size_t signature_len, uint8_t *out,
                      size_t cap, size_t *len);

/* A received COSE_Sign1, as pointers into the bytes it was parsed from (nothing is copied). */
typedef struct {
    const uint8_t *protected_bytes; /* the protected header's bytes, as signed */
    size_t protected_len;
    int alg;                        /* label 1 of the protected header: a negative integer */
    const uint8_t *kid;             /* label 4 of the protected header: 0 to COSE_KID_MAX bytes */
    size_t kid_len;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *signature;       /* COSE_SIGNATURE_BYTES */
} cose_sign1;

/* Parses 18([protected bstr, unprotected map, payload bstr, signature bstr]) from bytes[0..len):
 * tag 18, an array of exactly 4, a protected header that is a map holding 1 (alg, a negative
 * integer) and 4 (kid, a byte string of at most COSE_KID_MAX bytes) with nothing after it (other
 * labels are skipped, 1 or 4 twice is refused), an unprotected map (its contents are skipped), a
 * signature of exactly 64 bytes, and nothing after the message. Every length is checked against
 * the input; nothing is allocated. Returns 0, or -1 with what is wrong in error. */
int cose_sign1_parse(const uint8_t *bytes, size_t len, cose_sign1 *out, char *error, size_t error_cap);

/* Whether sig is alg's signature of tbs by the public key: Ed25519 (alg -8, the key an Ed25519
 * key) or ES256 (alg -7, the key a P-256 key, sig r || s). Returns 0 when it verifies, -1 when it
 * does not (also for an alg that does not fit the key, or a failure inside OpenSSL). Allocates only
 * inside OpenSSL's calls and frees all of it before returning. */
int cose_verify(EVP_PKEY *key, int alg, const uint8_t *tbs, size_t tbs_len, const uint8_t sig[COSE_SIGNATURE_BYTES]);

/* An ECDSA signature as DER (SEQUENCE of two INTEGERs, what OpenSSL returns) to COSE's fixed
 * r || s, each left-padded to 32 bytes. Returns 0, or -1 if der is not such a signature. */
int cose_ecdsa_der_to_raw(const uint8_t *der, size_t der_len, uint8_t raw[COSE_SIGNATURE_BYTES]);

/* The COSE algorithm of a key: COSE_ALG_EDDSA for Ed25519, COSE_ALG_ES256 for P-256. Any other
 * key returns 0 with what it is in error (prefixed by `what`, e.g. the file's path). */
int cose_key_alg(EVP_PKEY *key, const char *what, char *error, size_t error_cap);

/* The device's key. Allocated once at start-up (OpenSSL allocates inside its own calls). */
typedef struct {
    EVP_PKEY *key;
    EVP_MD_CTX *ctx;
    int alg; /* COSE_ALG_EDDSA or COSE_ALG_ES256 */
} cose_signer;

/* Loads a PEM private key (PKCS#8 Ed25519 or P-256, or SEC1 P-256). On failure returns -1 and
 * writes what failed into error. */
int cose_signer_load_pem(cose_signer *s, const char *path, char *error, size_t error_cap);
/* A signer from a raw Ed25519 seed (for test vectors). */
int cose_signer_from_ed25519_seed(cose_signer *s, const uint8_t seed[32]);
void cose_signer_free(cose_signer *s);
/* The raw public key: Ed25519 32 bytes, P-256 65 bytes (uncompressed SEC1). */
int cose_signer_public_key(const cose_signer *s, uint8_t *out, size_t cap, size_t *len);
/* Signs tbs into sig (64 bytes). Returns 0 or -1. */
int cose_signer_sign(cose_signer *s, const uint8_t *tbs, size_t tbs_len, uint8_t sig[COSE_SIGNATURE_BYTES]);

/* The whole device side: encodes the reading, signs it and writes the COSE_Sign1 message.
 * Returns 0, or -1 with a reason in error (too large, signing failed). */
int cose_sign_reading(cose_signer *s, const reading *r, uint8_t *out, size_t cap, size_t *len, char *error,
                      size_t error_cap);

#endif
