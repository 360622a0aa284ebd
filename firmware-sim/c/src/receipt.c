#include "receipt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "cbor.h"
#include "cose.h"
#include "reading.h"

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
        if ((key == 1 && out->seq > RECEIPT_UINT_MAX) || (key == 3 && out->height > RECEIPT_UINT_MAX))
            FAIL("key %llu: %llu is above 2^63 - 1", (unsigned long long)key,
                 (unsigned long long)(key == 1 ? out->seq : out->height));
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

/* ---------------------------------------------------------------- trusted managers */

void receipt_trust_init(receipt_trust *t) { memset(t, 0, sizeof *t); }

void receipt_trust_free(receipt_trust *t) {
    for (size_t i = 0; i < t->count; i++) EVP_PKEY_free(t->managers[i].key);
    memset(t, 0, sizeof *t);
}

/* Whether id can be added: the syntax, room, and not there yet. */
static int check_new_manager(const receipt_trust *t, const char *id, char *error, size_t error_cap) {
    if (!reading_valid_device_id(id)) FAIL("the manager id '%s' is not [A-Za-z0-9._-]{1,64}", id);
    if (t->count >= RECEIPT_MAX_MANAGERS) FAIL("at most %d managers (adding %s)", RECEIPT_MAX_MANAGERS, id);
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->managers[i].id, id) == 0) FAIL("the manager %s is named twice", id);
    }
    return 0;
}

/* Stores key (its owner from now on) under id, once check_new_manager said yes. */
static int add_manager(receipt_trust *t, const char *id, EVP_PKEY *key, int alg) {
    receipt_manager *m = &t->managers[t->count];
    memset(m, 0, sizeof *m);
    memcpy(m->id, id, strlen(id) + 1); /* checked: at most RECEIPT_MANAGER_ID_MAX characters */
    m->key = key;
    m->alg = alg;
    t->count++;
    return 0;
}

static void openssl_detail(char *out, size_t cap) {
    unsigned long code = ERR_get_error();
    snprintf(out, cap, "no detail");
    if (code != 0) ERR_error_string_n(code, out, cap);
    ERR_clear_error();
}

int receipt_trust_add_pem(receipt_trust *t, const char *id, const char *path, char *error, size_t error_cap) {
    if (check_new_manager(t, id, error, error_cap) != 0) return -1;
    FILE *file = fopen(path, "r");
    if (file == NULL) FAIL("cannot open %s's public key file %s: %s", id, path, strerror(errno));
    EVP_PKEY *key = PEM_read_PUBKEY(file, NULL, NULL, NULL);
    fclose(file);
    if (key == NULL) {
        char detail[256];
        openssl_detail(detail, sizeof detail);
        FAIL("%s (manager %s) is not a PEM public key (BEGIN PUBLIC KEY): %s", path, id, detail);
    }
    char what[512];
    snprintf(what, sizeof what, "%s (manager %s)", path, id);
    int alg = cose_key_alg(key, what, error, error_cap);
    if (alg == 0) {
        EVP_PKEY_free(key);
        return -1;
    }
    return add_manager(t, id, key, alg);
}

int receipt_trust_add_ed25519(receipt_trust *t, const char *id, const uint8_t public_key[32], char *error,
                              size_t error_cap) {
    if (check_new_manager(t, id, error, error_cap) != 0) return -1;
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key, 32);
    if (key == NULL) {
        char detail[256];
        openssl_detail(detail, sizeof detail);
        FAIL("manager %s: not an Ed25519 public key: %s", id, detail);
    }
    return add_manager(t, id, key, COSE_ALG_EDDSA);
}

/* ---------------------------------------------------------------- opening a received receipt */

const char *receipt_why(int verdict) {
    switch (verdict) {
    case RECEIPT_TRUSTED: return "trusted";
    case RECEIPT_MALFORMED: return "malformed";
    case RECEIPT_UNSIGNED: return "unsigned";
    case RECEIPT_UNKNOWN_SIGNER: return "unknown-signer";
    case RECEIPT_BAD_SIGNATURE: return "bad-signature";
    }
    return "unknown";
}

#define REFUSE(verdict, ...)                          \
    do {                                              \
        snprintf(error, error_cap, __VA_ARGS__);      \
        return (verdict);                             \
    } while (0)

static int is_final(receipt_status status) { return status == RECEIPT_COMMITTED || status == RECEIPT_REJECTED; }

int receipt_open(const receipt_trust *trust, const char *topic, const uint8_t *bytes, size_t len, receipt *out,
                 char *signer, char *error, size_t error_cap) {
    /* The Sig_structure is built here for each signed receipt: static, so nothing is allocated
     * per receipt (the device has one thread). Its size bounds every part: the whole message
     * (protected header and payload inside it), the topic, and the heads around them. */
    static uint8_t tbs[RECEIPT_MAX_BYTES + RECEIPT_TOPIC_MAX + 32];
    char detail[256];
    signer[0] = '\0';
    error[0] = '\0';

    if (len > RECEIPT_MAX_BYTES) REFUSE(RECEIPT_MALFORMED, "a receipt of %zu bytes, over %d", len, RECEIPT_MAX_BYTES);
    if (len == 0 || bytes[0] != 0xD2) {
        /* not tag 18: a bare receipt map, trusted only when it is not final */
        if (receipt_decode(bytes, len, out, detail, sizeof detail) != 0) REFUSE(RECEIPT_MALFORMED, "%s", detail);
        if (is_final(out->status))
            REFUSE(RECEIPT_UNSIGNED, "a %s receipt for seq %llu is not signed by a manager",
                   receipt_status_name(out->status), (unsigned long long)out->seq);
        return RECEIPT_TRUSTED;
    }

    cose_sign1 message;
    if (cose_sign1_parse(bytes, len, &message, detail, sizeof detail) != 0) REFUSE(RECEIPT_MALFORMED, "%s", detail);
    const receipt_manager *manager = NULL;
    for (size_t i = 0; i < trust->count && manager == NULL; i++) {
        const receipt_manager *m = &trust->managers[i];
        if (strlen(m->id) == message.kid_len && memcmp(m->id, message.kid, message.kid_len) == 0) manager = m;
    }
    if (manager == NULL) {
        /* the kid shown only as far as it is a printable id */
        size_t shown = 0;
        while (shown < message.kid_len && message.kid[shown] >= 0x21 && message.kid[shown] <= 0x7E) shown++;
        REFUSE(RECEIPT_UNKNOWN_SIGNER, "the kid '%.*s' (%zu bytes) names none of the %zu trusted managers", (int)shown,
               (const char *)message.kid, message.kid_len, trust->count);
    }
    if (message.alg != manager->alg)
        REFUSE(RECEIPT_BAD_SIGNATURE, "signed with alg %d, but %s's key is alg %d", message.alg, manager->id,
               manager->alg);
    size_t topic_len = strlen(topic), tbs_len;
    if (topic_len > RECEIPT_TOPIC_MAX ||
        cose_sig_structure_aad(message.protected_bytes, message.protected_len, (const uint8_t *)topic, topic_len,
                               message.payload, message.payload_len, tbs, sizeof tbs, &tbs_len) != 0)
        REFUSE(RECEIPT_MALFORMED, "the Sig_structure does not fit %zu bytes", sizeof tbs);
    if (cose_verify(manager->key, manager->alg, tbs, tbs_len, message.signature) != 0)
        REFUSE(RECEIPT_BAD_SIGNATURE, "%s's signature does not verify for %s", manager->id, topic);
    if (receipt_decode(message.payload, message.payload_len, out, detail, sizeof detail) != 0)
        REFUSE(RECEIPT_MALFORMED, "signed by %s, but the payload: %s", manager->id, detail);
    memcpy(signer, manager->id, strlen(manager->id) + 1);
    return RECEIPT_TRUSTED;
}
