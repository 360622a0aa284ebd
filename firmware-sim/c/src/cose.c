#include "cose.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
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

int cose_sig_structure(const uint8_t *protected_bytes, size_t protected_len, const uint8_t *payload,
                       size_t payload_len, uint8_t *out, size_t cap, size_t *len) {
    cbor_writer w;
    cbor_writer_init(&w, out, cap);
    cbor_put_array(&w, 4);
    cbor_put_text_z(&w, "Signature1");
    cbor_put_bytes(&w, protected_bytes, protected_len);
    cbor_put_bytes(&w, NULL, 0); /* external_aad: empty in this protocol */
    cbor_put_bytes(&w, payload, payload_len);
    if (w.error != CBOR_OK) return -1;
    *len = w.len;
    return 0;
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
    int alg;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
        alg = COSE_ALG_EDDSA;
    } else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        char group[64] = "";
        size_t group_len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof group, &group_len) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            snprintf(error, error_cap, "%s: an EC key on curve '%s'; only P-256 (ES256) is supported", path, group);
            EVP_PKEY_free(key);
            return -1;
        }
        alg = COSE_ALG_ES256;
    } else {
        snprintf(error, error_cap, "%s: the key is neither Ed25519 nor P-256", path);
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
