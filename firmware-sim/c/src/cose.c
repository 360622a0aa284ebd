#include "cose.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "cbor.h"

int cose_protected_header(int alg, const char *kid, uint8_t *out, size_t cap, size_t *len) {
    cbor_writer w;
    cbor_writer_init(&w, out, cap);
    cbor_put_map(&w, 2);
    cbor_put_uint(&w, 1);
    cbor_put_int(&w, alg);
    cbor_put_uint(&w, 4);
    cbor_put_bytes(&w, (const uint8_t *)kid, strlen(kid));
    if (w.error != CBOR_OK) return -1;
    *len = w.len;
    return 0;
}

int cose_sig_structure_aad(const uint8_t *protected_bytes, size_t protected_len, const uint8_t *aad, size_t aad_len,
                           const uint8_t *payload, size_t payload_len, uint8_t *out, size_t cap, size_t *len) {
    cbor_writer w;
    cbor_writer_init(&w, out, cap);
    cbor_put_array(&w, 4);
    cbor_put_text_z(&w, "Signature1");
    cbor_put_bytes(&w, protected_bytes, protected_len);
    cbor_put_bytes(&w, aad, aad_len);
    cbor_put_bytes(&w, payload, payload_len);
    if (w.error != CBOR_OK) return -1;
    *len = w.len;
    return 0;
}

int cose_sig_structure(const uint8_t *protected_bytes, size_t protected_len, const uint8_t *payload,
                       size_t payload_len, uint8_t *out, size_t cap, size_t *len) {
    /* external_aad: empty for a reading */
    return cose_sig_structure_aad(protected_bytes, protected_len, NULL, 0, payload, payload_len, out, cap, len);
}

int cose_sign1_encode(const uint8_t *protected_bytes, size_t protected_len, const uint8_t *payload,
                      size_t payload_len, const uint8_t *signature, size_t signature_len, uint8_t *out,
                      size_t cap, size_t *len) {
    cbor_writer w;
    cbor_writer_init(&w, out, cap);
    cbor_put_tag(&w, COSE_TAG_SIGN1);
    cbor_put_array(&w, 4);
    cbor_put_bytes(&w, protected_bytes, protected_len);
    cbor_put_map(&w, 0); /* unprotected: {} */
    cbor_put_bytes(&w, payload, payload_len);
    cbor_put_bytes(&w, signature, signature_len);
    if (w.error != CBOR_OK) return -1;
    *len = w.len;
    return 0;
}

#define PARSE_FAIL(...)                               \
    do {                                              \
        snprintf(error, error_cap, __VA_ARGS__);      \
        return -1;                                    \
    } while (0)

/* The protected header's map: {1: alg, 4: kid}, other labels skipped, nothing after the map. */
static int parse_protected(const uint8_t *bytes, size_t len, cose_sign1 *out, char *error, size_t error_cap) {
    cbor_reader r;
    cbor_reader_init(&r, bytes, len);
    uint64_t pairs;
    enum cbor_error e = cbor_read_map(&r, &pairs);
    if (e != CBOR_OK) PARSE_FAIL("the protected header is not a map (%s)", cbor_error_string(e));
    if (pairs > COSE_HEADER_MAX_PAIRS)
        PARSE_FAIL("the protected header has %llu entries, at most %d are read", (unsigned long long)pairs,
                   COSE_HEADER_MAX_PAIRS);
    int have_alg = 0, have_kid = 0;
    for (uint64_t i = 0; i < pairs; i++) {
        uint64_t label;
        e = cbor_read_uint(&r, &label);
        if (e == CBOR_ERR_TYPE) {
            /* a negative or text label: not one this protocol uses, skip the pair */
            if ((e = cbor_skip(&r)) != CBOR_OK || (e = cbor_skip(&r)) != CBOR_OK)
                PARSE_FAIL("protected header entry %llu: %s", (unsigned long long)i, cbor_error_string(e));
            continue;
        }
        if (e != CBOR_OK) PARSE_FAIL("protected header entry %llu: %s", (unsigned long long)i, cbor_error_string(e));
        if (label == 1) {
            enum cbor_major major;
            uint64_t argument;
            if (have_alg) PARSE_FAIL("the protected header has 1 (alg) twice");
            have_alg = 1;
            e = cbor_read_head(&r, &major, &argument);
            if (e != CBOR_OK) PARSE_FAIL("the protected alg: %s", cbor_error_string(e));
            /* a negative integer -1 - argument that fits an int */
            if (major != CBOR_NINT || argument > (uint64_t)INT_MAX)
                PARSE_FAIL("the protected alg is not a negative integer (-8 EdDSA or -7 ES256)");
            out->alg = -1 - (int)argument;
        } else if (label == 4) {
            if (have_kid) PARSE_FAIL("the protected header has 4 (kid) twice");
            have_kid = 1;
            e = cbor_read_bytes(&r, &out->kid, &out->kid_len);
            if (e != CBOR_OK) PARSE_FAIL("the protected kid is not a byte string (%s)", cbor_error_string(e));
            if (out->kid_len > COSE_KID_MAX)
                PARSE_FAIL("the protected kid has %zu bytes, at most %d", out->kid_len, COSE_KID_MAX);
        } else {
            e = cbor_skip(&r);
            if (e != CBOR_OK) PARSE_FAIL("protected header label %llu: %s", (unsigned long long)label,
                                         cbor_error_string(e));
        }
    }
    if (r.pos != r.len) PARSE_FAIL("%zu bytes after the protected header's map", r.len - r.pos);
    if (!have_alg || !have_kid) PARSE_FAIL("the protected header needs 1 (alg) and 4 (kid)");
    return 0;
}

int cose_sign1_parse(const uint8_t *bytes, size_t len, cose_sign1 *out, char *error, size_t error_cap) {
    cbor_reader r;
    enum cbor_major major;
    uint64_t argument, pairs;
    const uint8_t *signature;
    size_t signature_len;
    enum cbor_error e;

    memset(out, 0, sizeof *out);
    cbor_reader_init(&r, bytes, len);
    if ((e = cbor_read_head(&r, &major, &argument)) != CBOR_OK) PARSE_FAIL("COSE_Sign1: %s", cbor_error_string(e));
    if (major != CBOR_TAG || argument != COSE_TAG_SIGN1) PARSE_FAIL("not COSE_Sign1: no tag %d", COSE_TAG_SIGN1);
    if ((e = cbor_read_head(&r, &major, &argument)) != CBOR_OK) PARSE_FAIL("COSE_Sign1: %s", cbor_error_string(e));
    if (major != CBOR_ARRAY || argument != 4) PARSE_FAIL("COSE_Sign1 is an array of 4");

    if ((e = cbor_read_bytes(&r, &out->protected_bytes, &out->protected_len)) != CBOR_OK)
        PARSE_FAIL("the protected header is not a byte string (%s)", cbor_error_string(e));
    if (parse_protected(out->protected_bytes, out->protected_len, out, error, error_cap) != 0) return -1;

    if ((e = cbor_read_map(&r, &pairs)) != CBOR_OK)
        PARSE_FAIL("the unprotected header is not a map (%s)", cbor_error_string(e));
    for (uint64_t i = 0; i < pairs; i++) {
        /* each skip consumes at least one byte or fails, so a huge count ends at the input's end */
        if ((e = cbor_skip(&r)) != CBOR_OK || (e = cbor_skip(&r)) != CBOR_OK)
            PARSE_FAIL("the unprotected header: %s", cbor_error_string(e));
    }

    if ((e = cbor_read_bytes(&r, &out->payload, &out->payload_len)) != CBOR_OK)
        PARSE_FAIL("the payload is not a byte string (%s)", cbor_error_string(e));
    if ((e = cbor_read_bytes(&r, &signature, &signature_len)) != CBOR_OK)
        PARSE_FAIL("the signature is not a byte string (%s)", cbor_error_string(e));
    if (signature_len != COSE_SIGNATURE_BYTES)
        PARSE_FAIL("the signature has %zu bytes, not %d", signature_len, COSE_SIGNATURE_BYTES);
    out->signature = signature;
    if (r.pos != r.len) PARSE_FAIL("%zu bytes after the COSE_Sign1", r.len - r.pos);
    return 0;
}

/* r || s to the DER ECDSA-Sig-Value OpenSSL verifies. Returns its length, or 0. */
static size_t ecdsa_raw_to_der(const uint8_t sig[COSE_SIGNATURE_BYTES], uint8_t *der, size_t cap) {
    size_t result = 0;
    ECDSA_SIG *ecdsa = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL);
    BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
    if (ecdsa == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(ecdsa, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(ecdsa);
        return 0;
    }
    /* r and s now belong to ecdsa */
    int n = i2d_ECDSA_SIG(ecdsa, NULL);
    if (n > 0 && (size_t)n <= cap) {
        uint8_t *p = der;
        if (i2d_ECDSA_SIG(ecdsa, &p) == n) result = (size_t)n;
    }
    ECDSA_SIG_free(ecdsa);
    return result;
}

int cose_verify(EVP_PKEY *key, int alg, const uint8_t *tbs, size_t tbs_len, const uint8_t sig[COSE_SIGNATURE_BYTES]) {
    int result = -1;
    if (key == NULL) return -1;
    int type = EVP_PKEY_get_base_id(key);
    if (!(alg == COSE_ALG_EDDSA && type == EVP_PKEY_ED25519) && !(alg == COSE_ALG_ES256 && type == EVP_PKEY_EC))
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        ERR_clear_error();
        return -1;
    }
    if (alg == COSE_ALG_EDDSA) {
        /* Ed25519 hashes internally: no digest, and one-shot verification only. */
        if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
            EVP_DigestVerify(ctx, sig, COSE_SIGNATURE_BYTES, tbs, tbs_len) == 1) {
            result = 0;
        }
    } else {
        uint8_t der[80]; /* SEQUENCE of two INTEGERs of at most 33 bytes: 72 */
        size_t der_len = ecdsa_raw_to_der(sig, der, sizeof der);
        if (der_len > 0 && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
            EVP_DigestVerify(ctx, der, der_len, tbs, tbs_len) == 1) {
            result = 0;
        }
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return result;
}

/* One DER INTEGER holding a positive value below 2^256, copied right-aligned into out[32]. */
static int der_integer(const uint8_t *der, size_t der_len, size_t *pos, uint8_t out[32]) {
    if (*pos + 2 > der_len || der[*pos] != 0x02) return -1;
    size_t n = der[*pos + 1];
    size_t start = *pos + 2;
    if (n < 1 || n > 33 || n > der_len - start) return -1;
    const uint8_t *value = der + start;
    size_t value_len = n;
    if (value[0] & 0x80) return -1; /* negative: not an ECDSA component */
    if (n > 1 && value[0] == 0x00 && !(value[1] & 0x80)) return -1; /* not minimal */
    if (n == 33) {
        value++; /* the 0x00 that keeps a high first byte positive */
        value_len--;
    }
    memset(out, 0, 32);
    memcpy(out + (32 - value_len), value, value_len);
    *pos = start + n;
    return 0;
}

int cose_ecdsa_der_to_raw(const uint8_t *der, size_t der_len, uint8_t raw[COSE_SIGNATURE_BYTES]) {
    /* SEQUENCE (short length: at most 2 * 35 bytes of content) { INTEGER r, INTEGER s } */
    if (der_len < 8 || der[0] != 0x30 || der[1] >= 0x80 || (size_t)der[1] + 2 != der_len) return -1;
    size_t pos = 2;
    if (der_integer(der, der_len, &pos, raw) != 0) return -1;
    if (der_integer(der, der_len, &pos, raw + 32) != 0) return -1;
    return pos == der_len ? 0 : -1;
}

static int no_password(char *buf, int size, int rwflag, void *userdata) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return 0; /* an encrypted key is refused rather than prompting on a terminal */
}

static void openssl_reason(char *error, size_t error_cap, const char *what) {
    unsigned long code = ERR_get_error();
    char detail[256] = "no detail";
    if (code != 0) ERR_error_string_n(code, detail, sizeof detail);
    snprintf(error, error_cap, "%s: %s", what, detail);
    ERR_clear_error();
}

int cose_key_alg(EVP_PKEY *key, const char *what, char *error, size_t error_cap) {
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) return COSE_ALG_EDDSA;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        char group[64] = "";
        size_t group_len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof group, &group_len) == 1 &&
            (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
            return COSE_ALG_ES256;
        }
        ERR_clear_error();
        snprintf(error, error_cap, "%s: an EC key on curve '%s'; only P-256 (ES256) is supported", what, group);
        return 0;
    }
    snprintf(error, error_cap, "%s: the key is neither Ed25519 nor P-256", what);
    return 0;
}

int cose_signer_load_pem(cose_signer *s, const char *path, char *error, size_t error_cap) {
    memset(s, 0, sizeof *s);
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        snprintf(error, error_cap, "cannot open the key file %s: %s", path, strerror(errno));
        return -1;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(file, NULL, no_password, NULL);
    fclose(file);
    if (key == NULL) {
        char what[512];
        snprintf(what, sizeof what, "%s is not an unencrypted PEM private key", path);
        openssl_reason(error, error_cap, what);
        return -1;
    }
    int alg = cose_key_alg(key, path, error, error_cap);
    if (alg == 0) {
        EVP_PKEY_free(key);
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        openssl_reason(error, error_cap, "EVP_MD_CTX_new");
        EVP_PKEY_free(key);
        return -1;
    }
    s->key = key;
    s->ctx = ctx;
    s->alg = alg;
    return 0;
}

int cose_signer_from_ed25519_seed(cose_signer *s, const uint8_t seed[32]) {
    memset(s, 0, sizeof *s);
    s->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    if (s->key == NULL) return -1;
    s->ctx = EVP_MD_CTX_new();
    if (s->ctx == NULL) {
        EVP_PKEY_free(s->key);
        s->key = NULL;
        return -1;
    }
    s->alg = COSE_ALG_EDDSA;
    return 0;
}

void cose_signer_free(cose_signer *s) {
    EVP_MD_CTX_free(s->ctx);
    EVP_PKEY_free(s->key);
    memset(s, 0, sizeof *s);
}

int cose_signer_public_key(const cose_signer *s, uint8_t *out, size_t cap, size_t *len) {
    if (s->alg == COSE_ALG_EDDSA) {
        size_t n = cap;
        if (EVP_PKEY_get_raw_public_key(s->key, out, &n) != 1) return -1;
        *len = n;
        return 0;
    }
    if (EVP_PKEY_get_octet_string_param(s->key, OSSL_PKEY_PARAM_PUB_KEY, out, cap, len) != 1) return -1;
    return 0;
}

int cose_signer_sign(cose_signer *s, const uint8_t *tbs, size_t tbs_len, uint8_t sig[COSE_SIGNATURE_BYTES]) {
    int result = -1;
    if (EVP_MD_CTX_reset(s->ctx) != 1) return -1;
    if (s->alg == COSE_ALG_EDDSA) {
        /* Ed25519 hashes internally: no digest, and one-shot signing only. */
        size_t n = COSE_SIGNATURE_BYTES;
        if (EVP_DigestSignInit(s->ctx, NULL, NULL, NULL, s->key) == 1 &&
            EVP_DigestSign(s->ctx, sig, &n, tbs, tbs_len) == 1 && n == COSE_SIGNATURE_BYTES) {
            result = 0;
        }
    } else {
        uint8_t der[80];
        size_t n = sizeof der;
        if (EVP_DigestSignInit(s->ctx, NULL, EVP_sha256(), NULL, s->key) == 1 &&
            EVP_DigestSign(s->ctx, der, &n, tbs, tbs_len) == 1 && cose_ecdsa_der_to_raw(der, n, sig) == 0) {
            result = 0;
        }
    }
    ERR_clear_error();
    return result;
}

int cose_sign_reading(cose_signer *s, const reading *r, uint8_t *out, size_t cap, size_t *len, char *error,
                      size_t error_cap) {
    /* Scratch space for one reading at a time: static, so nothing is allocated per reading. */
    static uint8_t payload[COSE_PAYLOAD_MAX];
    static uint8_t protected_bytes[COSE_PROTECTED_MAX];
    static uint8_t tbs[COSE_TBS_MAX];
    uint8_t signature[COSE_SIGNATURE_BYTES];
    size_t payload_len, protected_len, tbs_len;

    if (reading_encode_payload(r, payload, sizeof payload, &payload_len) != 0) {
        snprintf(error, error_cap, "seq %llu: the payload does not fit %d bytes (or has no records)",
                 (unsigned long long)r->seq, COSE_PAYLOAD_MAX);
        return -1;
    }
    if (cose_protected_header(s->alg, r->device, protected_bytes, sizeof protected_bytes, &protected_len) != 0) {
        snprintf(error, error_cap, "the protected header does not fit %d bytes", COSE_PROTECTED_MAX);
        return -1;
    }
    if (cose_sig_structure(protected_bytes, protected_len, payload, payload_len, tbs, sizeof tbs, &tbs_len) != 0) {
        snprintf(error, error_cap, "seq %llu: the Sig_structure does not fit %d bytes", (unsigned long long)r->seq,
                 COSE_TBS_MAX);
        return -1;
    }
    if (cose_signer_sign(s, tbs, tbs_len, signature) != 0) {
        snprintf(error, error_cap, "seq %llu: signing failed (OpenSSL)", (unsigned long long)r->seq);
        return -1;
    }
    size_t limit = cap < READING_MAX_BYTES ? cap : READING_MAX_BYTES;
    if (cose_sign1_encode(protected_bytes, protected_len, payload, payload_len, signature, sizeof signature, out,
                          limit, len) != 0) {
        snprintf(error, error_cap, "seq %llu: the signed reading is over %zu bytes (a manager rejects it as too-large)",
                 (unsigned long long)r->seq, limit);
        return -1;
    }
    return 0;
}
