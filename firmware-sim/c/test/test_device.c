/*
 * Unit tests of the C device's encoders and its fixed-size state, against the shared test vectors
 * (firmware-sim/vectors, made by MedLedgerCore) and the examples of RFC 8949 Appendix A.
 *
 *   build/test-device ../vectors
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../src/cbor.h"
#include "../src/cose.h"
#include "../src/reading.h"
#include "../src/receipt.h"
#include "../src/ring.h"
#include "../src/seqfile.h"
#include "json.h"

static int checks = 0;
static int failures = 0;
static const char *vectors_dir = "../vectors";

#define CHECK(condition, ...)                                    \
    do {                                                         \
        checks++;                                                \
        if (!(condition)) {                                      \
            failures++;                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
        }                                                        \
    } while (0)

static void to_hex(const uint8_t *bytes, size_t len, char *out) {
    for (size_t i = 0; i < len; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    out[2 * len] = '\0';
}

static size_t from_hex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) return (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        unsigned byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return (size_t)-1;
        out[i] = (uint8_t)byte;
    }
    return n;
}

/* Compares bytes with expected hex, naming what differs. */
static void check_hex(const char *what, const uint8_t *bytes, size_t len, const char *expected) {
    static char got[4 * READING_MAX_BYTES + 1];
    if (len * 2 >= sizeof got) {
        CHECK(0, "%s: %zu bytes, too long to compare", what, len);
        return;
    }
    to_hex(bytes, len, got);
    CHECK(strcmp(got, expected) == 0, "%s:\n  got      %s\n  expected %s", what, got, expected);
}

static char *read_file(const char *name) {
    static char text[65536];
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", vectors_dir, name);
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t n = fread(text, 1, sizeof text - 1, file);
    int full = !feof(file);
    fclose(file);
    if (full) {
        fprintf(stderr, "%s is over %zu bytes\n", path, sizeof text - 1);
        exit(2);
    }
    text[n] = '\0';
    return text;
}

/* ------------------------------------------------------------------ CBOR writer */

static void test_cbor_writer_rfc8949_examples(void) {
    uint8_t buf[64];
    cbor_writer w;
    char what[64];

    static const struct {
        uint64_t value;
        const char *hex;
    } unsigned_examples[] = {
        {0, "00"}, {1, "01"}, {10, "0a"}, {23, "17"}, {24, "1818"}, {25, "1819"}, {100, "1864"},
        {1000, "1903e8"}, {1000000, "1a000f4240"}, {UINT64_C(1000000000000), "1b000000e8d4a51000"},
        {UINT64_C(18446744073709551615), "1bffffffffffffffff"},
    };
    for (size_t i = 0; i < sizeof unsigned_examples / sizeof unsigned_examples[0]; i++) {
        cbor_writer_init(&w, buf, sizeof buf);
        cbor_put_uint(&w, unsigned_examples[i].value);
        snprintf(what, sizeof what, "uint %llu", (unsigned long long)unsigned_examples[i].value);
        check_hex(what, buf, w.len, unsigned_examples[i].hex);
    }

    static const struct {
        int64_t value;
        const char *hex;
    } int_examples[] = {
        {-1, "20"}, {-10, "29"}, {-100, "3863"}, {-1000, "3903e7"}, {INT64_MIN, "3b7fffffffffffffff"},
        {-24, "37"}, {-25, "3818"}, {INT64_MAX, "1b7fffffffffffffff"},
    };
    for (size_t i = 0; i < sizeof int_examples / sizeof int_examples[0]; i++) {
        cbor_writer_init(&w, buf, sizeof buf);
        cbor_put_int(&w, int_examples[i].value);
        snprintf(what, sizeof what, "int %lld", (long long)int_examples[i].value);
        check_hex(what, buf, w.len, int_examples[i].hex);
    }

    /* RFC 8949 Appendix A's floats, each in its preferred (shortest exact) form, and a few more
     * edges of the half and single ranges. */
    static const struct {
        double value;
        const char *hex;
    } float_examples[] = {
        {0.0, "f90000"},
        {-0.0, "f98000"},
        {1.0, "f93c00"},
        {1.1, "fb3ff199999999999a"},
        {1.5, "f93e00"},
        {65504.0, "f97bff"},
        {100000.0, "fa47c35000"},
        {3.4028234663852886e+38, "fa7f7fffff"},
        {1.0e+300, "fb7e37e43c8800759c"},
        {5.960464477539063e-8, "f90001"},
        {0.00006103515625, "f90400"},
        {-4.0, "f9c400"},
        {-4.1, "fbc010666666666666"},
        {65505.0, "fa477fe100"},           /* just above half's largest: single */
        {65536.0, "fa47800000"},           /* 2^16: beyond half's exponents */
        {2.9802322387695312e-8, "fa33000000"}, /* 2^-25: below half's smallest subnormal */
        {8.940696716308594e-8, "fa33c00000"},  /* 1.5 * 2^-24: not a multiple of 2^-24 */
        {1.401298464324817e-45, "fa00000001"}, /* single's smallest subnormal */
        {7.006492321624085e-46, "fb3690000000000000"}, /* half of it: a double */
        {3.4028235677973366e+38, "fb47effffff0000000"}, /* between single's largest and 2^128 */
        {4100.125, "fa45802100"},
        {36.6, "fb40424ccccccccccd"},
        {5.5, "f94580"},
    };
    for (size_t i = 0; i < sizeof float_examples / sizeof float_examples[0]; i++) {
        cbor_writer_init(&w, buf, sizeof buf);
        cbor_put_double(&w, float_examples[i].value);
        snprintf(what, sizeof what, "float %.17g", float_examples[i].value);
        check_hex(what, buf, w.len, float_examples[i].hex);
    }
    const double specials[3] = {INFINITY, NAN, -INFINITY};
    const char *special_hex[3] = {"f97c00", "f97e00", "f9fc00"};
    for (int i = 0; i < 3; i++) {
        cbor_writer_init(&w, buf, sizeof buf);
        cbor_put_double(&w, specials[i]);
        check_hex(special_hex[i], buf, w.len, special_hex[i]);
    }

    cbor_writer_init(&w, buf, sizeof buf);
    cbor_put_text_z(&w, "");
    cbor_put_text_z(&w, "a");
    cbor_put_text_z(&w, "IETF");
    cbor_put_text_z(&w, "\"\\");
    cbor_put_text_z(&w, "\xc3\xbc");
    check_hex("text strings", buf, w.len, "606161644945544662225c62c3bc");

    cbor_writer_init(&w, buf, sizeof buf);
    cbor_put_bytes(&w, NULL, 0);
    cbor_put_bytes(&w, (const uint8_t *)"\x01\x02\x03\x04", 4);
    check_hex("byte strings", buf, w.len, "404401020304");

    /* [1, [2, 3], [4, 5]], {1: 2, 3: 4}, 1(1363896240), [] and {} */
    cbor_writer_init(&w, buf, sizeof buf);
    cbor_put_array(&w, 3);
    cbor_put_uint(&w, 1);
    cbor_put_array(&w, 2);
    cbor_put_uint(&w, 2);
    cbor_put_uint(&w, 3);
    cbor_put_array(&w, 2);
    cbor_put_uint(&w, 4);
    cbor_put_uint(&w, 5);
    cbor_put_map(&w, 2);
    cbor_put_uint(&w, 1);
    cbor_put_uint(&w, 2);
    cbor_put_uint(&w, 3);
    cbor_put_uint(&w, 4);
    cbor_put_tag(&w, 1);
    cbor_put_uint(&w, 1363896240);
    cbor_put_array(&w, 0);
    cbor_put_map(&w, 0);
    check_hex("nested items", buf, w.len, "8301820203820405a201020304c11a514b67b080a0");

    /* 25 items: the array head takes a one-byte argument */
    cbor_writer_init(&w, buf, sizeof buf);
    cbor_put_array(&w, 25);
    check_hex("array of 25", buf, w.len, "9819");
}

static void test_cbor_writer_overflow(void) {
    uint8_t buf[4];
    cbor_writer w;
    cbor_writer_init(&w, buf, sizeof buf);
    cbor_put_uint(&w, 1000); /* 3 bytes */
    CHECK(w.error == CBOR_OK && w.len == 3, "three bytes fit four");
    cbor_put_uint(&w, 1000); /* does not fit */
    CHECK(w.error == CBOR_ERR_OVERFLOW, "overflow is reported");
    CHECK(w.len == 3, "nothing partial is written (len %zu)", w.len);
    cbor_put_uint(&w, 1);
    CHECK(w.error == CBOR_ERR_OVERFLOW && w.len == 3, "the error sticks");

    cbor_writer_init(&w, buf, sizeof buf);
    cbor_put_text_z(&w, "abcd"); /* head 1 + 4 > 4 */
    CHECK(w.error == CBOR_ERR_OVERFLOW, "a string that does not fit");
}

/* ------------------------------------------------------------------ CBOR reader */

static void test_cbor_reader(void) {
    cbor_reader r;
    enum cbor_major major;
    uint64_t argument;

    static const uint8_t heads[] = {0x17, 0x18, 0x18, 0x19, 0x01, 0x00, 0x1b, 0, 0, 0, 1, 0, 0, 0, 0};
    cbor_reader_init(&r, heads, sizeof heads);
    CHECK(cbor_read_head(&r, &major, &argument) == CBOR_OK && major == CBOR_UINT && argument == 23, "23");
    CHECK(cbor_read_head(&r, &major, &argument) == CBOR_OK && argument == 24, "24");
    CHECK(cbor_read_head(&r, &major, &argument) == CBOR_OK && argument == 256, "256");
    CHECK(cbor_read_head(&r, &major, &argument) == CBOR_OK && argument == UINT64_C(4294967296), "2^32");
    CHECK(cbor_read_head(&r, &major, &argument) == CBOR_ERR_TRUNCATED, "end of input");

    static const uint8_t truncated[] = {0x1a, 0x00, 0x01};
    cbor_reader_init(&r, truncated, sizeof truncated);
    CHECK(cbor_read_head(&r, &major, &argument) == CBOR_ERR_TRUNCATED, "a truncated argument");

    static const uint8_t indefinite[] = {0x9f, 0x01, 0xff};
    cbor_reader_init(&r, indefinite, sizeof indefinite);
    CHECK(cbor_skip(&r) == CBOR_ERR_UNSUPPORTED, "indefinite lengths are refused");

    static const uint8_t reserved[] = {0x1c};
    cbor_reader_init(&r, reserved, sizeof reserved);
    CHECK(cbor_read_head(&r, &major, &argument) == CBOR_ERR_UNSUPPORTED, "reserved additional information");

    /* {"a": [1, {2: h'0102'}], 3: 1.5} followed by 7 */
    static const uint8_t nested[] = {0xa2, 0x61, 0x61, 0x82, 0x01, 0xa1, 0x02, 0x42, 0x01, 0x02,
                                     0x03, 0xf9, 0x3e, 0x00, 0x07};
    cbor_reader_init(&r, nested, sizeof nested);
    CHECK(cbor_skip(&r) == CBOR_OK && r.pos == sizeof nested - 1, "skips a nested map (pos %zu)", r.pos);
    uint64_t seven;
    CHECK(cbor_read_uint(&r, &seven) == CBOR_OK && seven == 7, "reads what follows");

    static const uint8_t long_string[] = {0x45, 0x01, 0x02};
    cbor_reader_init(&r, long_string, sizeof long_string);
    const uint8_t *bytes;
    size_t len;
    CHECK(cbor_read_bytes(&r, &bytes, &len) == CBOR_ERR_TRUNCATED, "a string longer than the input");

    static const uint8_t huge_array[] = {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    cbor_reader_init(&r, huge_array, sizeof huge_array);
    CHECK(cbor_skip(&r) == CBOR_ERR_TRUNCATED, "an array count beyond the input");

    uint8_t deep[CBOR_MAX_DEPTH + 3];
    memset(deep, 0x81, sizeof deep); /* [[[[...]]]] */
    deep[sizeof deep - 1] = 0x00;
    cbor_reader_init(&r, deep, sizeof deep);
    CHECK(cbor_skip(&r) == CBOR_ERR_DEPTH, "nesting deeper than CBOR_MAX_DEPTH");

    static const uint8_t text[] = {0x63, 'a', 'b', 'c'};
    cbor_reader_init(&r, text, sizeof text);
    uint64_t number;
    CHECK(cbor_read_uint(&r, &number) == CBOR_ERR_TYPE && r.pos == 0, "a type mismatch leaves the position");
    CHECK(cbor_read_text(&r, &bytes, &len) == CBOR_OK && len == 3 && memcmp(bytes, "abc", 3) == 0, "text");
}

/* ------------------------------------------------------------------ readings and COSE */

/* Fills a reading from a vector's "reading" object; strings go into the caller's storage. */
typedef struct {
    char channel[CHANNEL_ID_MAX + 1];
    char device[DEVICE_ID_MAX + 1];
    char codes[READING_MAX_RECORDS][16];
    char units[READING_MAX_RECORDS][16];
    char value_hex[READING_MAX_RECORDS][24];
} reading_strings;

static int reading_from_json(json_value object, reading *r, reading_strings *s) {
    json_value v, records, record;
    if (json_get(object, "channel", &v) != 0 || json_string(v, s->channel, sizeof s->channel) != 0) return -1;
    if (json_get(object, "device", &v) != 0 || json_string(v, s->device, sizeof s->device) != 0) return -1;
    if (json_get(object, "seq", &v) != 0 || json_u64(v, &r->seq) != 0) return -1;
    if (json_get(object, "time", &v) != 0 || json_u64(v, &r->time_ms) != 0) return -1;
    if (json_get(object, "records", &records) != 0) return -1;
    r->channel = s->channel;
    r->device = s->device;
    r->record_count = json_count(records);
    if (r->record_count < 1 || r->record_count > READING_MAX_RECORDS) return -1;
    for (size_t i = 0; i < r->record_count; i++) {
        reading_record *out = &r->records[i];
        if (json_at(records, i, &record) != 0) return -1;
        if (json_get(record, "code", &v) != 0 || json_string(v, s->codes[i], sizeof s->codes[i]) != 0) return -1;
        if (json_get(record, "unit", &v) != 0 || json_string(v, s->units[i], sizeof s->units[i]) != 0) return -1;
        if (json_get(record, "valueCBORHex", &v) != 0 || json_string(v, s->value_hex[i], sizeof s->value_hex[i]) != 0)
            return -1;
        double number;
        int is_float;
        if (json_get(record, "value", &v) != 0 || json_number(v, &number, &is_float) != 0) return -1;
        out->code = s->codes[i];
        out->unit = s->units[i];
        out->is_float = is_float;
        out->float_value = is_float ? number : 0;
        out->integer_value = 0;
        if (!is_float && json_i64(v, &out->integer_value) != 0) return -1;
    }
    return 0;
}

static int write_temp_file(const char *text, char *path, size_t cap) {
    snprintf(path, cap, "/tmp/medledger-device-test-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    return ok ? 0 : -1;
}

static int hex_field(json_value item, const char *key, char *out, size_t cap) {
    json_value v;
    return json_get(item, key, &v) == 0 && json_string(v, out, cap) == 0 ? 0 : -1;
}

/* The verifier's side of ES256, for the tests: r || s back to DER, then OpenSSL verifies. */
static size_t ecdsa_raw_to_der(const uint8_t raw[64], uint8_t *der) {
    size_t n = 2;
    for (int part = 0; part < 2; part++) {
        const uint8_t *x = raw + 32 * part;
        size_t skip = 0;
        while (skip < 31 && x[skip] == 0) skip++;
        size_t len = 32 - skip;
        int pad = (x[skip] & 0x80) != 0;
        der[n++] = 0x02;
        der[n++] = (uint8_t)(len + (size_t)pad);
        if (pad) der[n++] = 0x00;
        memcpy(der + n, x + skip, len);
        n += len;
    }
    der[0] = 0x30;
    der[1] = (uint8_t)(n - 2);
    return n;
}

static int verify_with(const cose_signer *signer, const uint8_t *tbs, size_t tbs_len, const uint8_t sig[64]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) return 0;
    int ok;
    if (signer->alg == COSE_ALG_EDDSA) {
        ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, signer->key) == 1 &&
             EVP_DigestVerify(ctx, sig, 64, tbs, tbs_len) == 1;
    } else {
        uint8_t der[80];
        size_t der_len = ecdsa_raw_to_der(sig, der);
        ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, signer->key) == 1 &&
             EVP_DigestVerify(ctx, der, der_len, tbs, tbs_len) == 1;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

static void test_reading_vectors(const char *file, int expect_alg) {
    json_value root, cases, item, v;
    char *text = read_file(file);
    CHECK(json_parse(text, &root) == 0, "%s is JSON", file);
    CHECK(json_get(root, "cases", &cases) == 0 && json_count(cases) > 0, "%s has cases", file);
    size_t count = json_count(cases);
    for (size_t i = 0; i < count; i++) {
        static char name[64], key_hex[130], public_hex[140], pem[1024], payload_hex[2100], protected_hex[200];
        static char tbs_hex[2300], signature_hex[140], cose_hex[2100];
        static reading r;
        static reading_strings strings;
        int deterministic = 0;
        int64_t alg = 0;
        CHECK(json_at(cases, i, &item) == 0, "case %zu", i);
        if (json_get(item, "name", &v) != 0 || json_string(v, name, sizeof name) != 0) snprintf(name, sizeof name, "?");
        CHECK(json_get(item, "alg", &v) == 0 && json_i64(v, &alg) == 0 && alg == expect_alg, "%s: alg", name);
        CHECK(json_get(item, "deterministic", &v) == 0 && json_bool(v, &deterministic) == 0, "%s: deterministic",
              name);
        int fields = hex_field(item, "privateKeyHex", key_hex, sizeof key_hex) |
                     hex_field(item, "publicKeyHex", public_hex, sizeof public_hex) |
                     hex_field(item, "privateKeyPEM", pem, sizeof pem) |
                     hex_field(item, "payloadHex", payload_hex, sizeof payload_hex) |
                     hex_field(item, "protectedHex", protected_hex, sizeof protected_hex) |
                     hex_field(item, "sigStructureHex", tbs_hex, sizeof tbs_hex) |
                     hex_field(item, "signatureHex", signature_hex, sizeof signature_hex) |
                     hex_field(item, "coseHex", cose_hex, sizeof cose_hex);
        CHECK(fields == 0, "%s: every field is present", name);
        CHECK(json_get(item, "reading", &v) == 0 && reading_from_json(v, &r, &strings) == 0, "%s: the reading", name);
        if (failures > 0) return;

        char what[128];
        uint8_t value[16];
        for (size_t k = 0; k < r.record_count; k++) {
            cbor_writer w;
            cbor_writer_init(&w, value, sizeof value);
            if (r.records[k].is_float) {
                cbor_put_double(&w, r.records[k].float_value);
            } else {
                cbor_put_int(&w, r.records[k].integer_value);
            }
            snprintf(what, sizeof what, "%s: record %zu's value", name, k);
            check_hex(what, value, w.len, strings.value_hex[k]);
        }

        static uint8_t payload[COSE_PAYLOAD_MAX], protected_bytes[COSE_PROTECTED_MAX], tbs[COSE_TBS_MAX];
        static uint8_t message[READING_MAX_BYTES];
        size_t payload_len, protected_len, tbs_len, message_len;
        CHECK(reading_encode_payload(&r, payload, sizeof payload, &payload_len) == 0, "%s: payload", name);
        snprintf(what, sizeof what, "%s: payload", name);
        check_hex(what, payload, payload_len, payload_hex);
        CHECK(cose_protected_header((int)alg, r.device, protected_bytes, sizeof protected_bytes, &protected_len) == 0,
              "%s: protected", name);
        snprintf(what, sizeof what, "%s: protected header", name);
        check_hex(what, protected_bytes, protected_len, protected_hex);
        CHECK(cose_sig_structure(protected_bytes, protected_len, payload, payload_len, tbs, sizeof tbs, &tbs_len) == 0,
              "%s: Sig_structure", name);
        snprintf(what, sizeof what, "%s: Sig_structure", name);
        check_hex(what, tbs, tbs_len, tbs_hex);

        /* The key, from its PEM as the device loads it. */
        char key_path[64];
        CHECK(write_temp_file(pem, key_path, sizeof key_path) == 0, "temporary key file");
        cose_signer signer;
        char error[512] = "";
        CHECK(cose_signer_load_pem(&signer, key_path, error, sizeof error) == 0, "%s: loading the PEM: %s", name,
              error);
        unlink(key_path);
        if (failures > 0) return;
        CHECK(signer.alg == (int)alg, "%s: the PEM key's algorithm is %d", name, signer.alg);
        uint8_t public_key[80];
        size_t public_len = 0;
        CHECK(cose_signer_public_key(&signer, public_key, sizeof public_key, &public_len) == 0, "%s: public key",
              name);
        snprintf(what, sizeof what, "%s: public key", name);
        check_hex(what, public_key, public_len, public_hex);

        uint8_t vector_signature[64];
        CHECK(from_hex(signature_hex, vector_signature, sizeof vector_signature) == 64, "%s: 64-byte signature", name);
        CHECK(verify_with(&signer, tbs, tbs_len, vector_signature), "%s: the vector's signature verifies", name);

        CHECK(cose_sign_reading(&signer, &r, message, sizeof message, &message_len, error, sizeof error) == 0,
              "%s: signing: %s", name, error);
        if (deterministic) {
            snprintf(what, sizeof what, "%s: the whole COSE_Sign1", name);
            check_hex(what, message, message_len, cose_hex);
            if (alg == COSE_ALG_EDDSA) {
                /* the same from the raw seed */
                uint8_t seed[32];
                cose_signer raw;
                CHECK(from_hex(key_hex, seed, sizeof seed) == 32 && cose_signer_from_ed25519_seed(&raw, seed) == 0,
                      "%s: seed", name);
                uint8_t sig[64];
                CHECK(cose_signer_sign(&raw, tbs, tbs_len, sig) == 0, "%s: sign with the seed", name);
                snprintf(what, sizeof what, "%s: signature from the seed", name);
                check_hex(what, sig, sizeof sig, signature_hex);
                cose_signer_free(&raw);
            }
        } else {
            /* ES256: our own signature differs, but it verifies and the rest is identical */
            const uint8_t *own_signature = message + message_len - 64;
            CHECK(verify_with(&signer, tbs, tbs_len, own_signature), "%s: a fresh signature verifies", name);
            uint8_t vector_message[READING_MAX_BYTES];
            size_t vector_len = from_hex(cose_hex, vector_message, sizeof vector_message);
            CHECK(vector_len == message_len && memcmp(vector_message, message, message_len - 64) == 0,
                  "%s: the COSE_Sign1 up to the signature", name);
            size_t encoded_len;
            uint8_t again[READING_MAX_BYTES];
            CHECK(cose_sign1_encode(protected_bytes, protected_len, payload, payload_len, vector_signature, 64, again,
                                    sizeof again, &encoded_len) == 0,
                  "%s: encode with the vector's signature", name);
            snprintf(what, sizeof what, "%s: COSE_Sign1 with the vector's signature", name);
            check_hex(what, again, encoded_len, cose_hex);
        }
        cose_signer_free(&signer);
    }
}

static void test_sign_reading_limits(void) {
    cose_signer signer;
    uint8_t seed[32] = {1};
    CHECK(cose_signer_from_ed25519_seed(&signer, seed) == 0, "signer");
    reading r;
    memset(&r, 0, sizeof r);
    r.channel = "ward-7";
    r.device = "cuff-1";
    r.seq = 1;
    r.time_ms = 1;
    uint8_t out[READING_MAX_BYTES];
    size_t len;
    char error[256] = "";
    CHECK(cose_sign_reading(&signer, &r, out, sizeof out, &len, error, sizeof error) != 0, "no records is refused");
    CHECK(strstr(error, "no records") != NULL, "the error names it: %s", error);
    reading_sample(reading_kind_named("bp"), 1, 1, &r);
    CHECK(cose_sign_reading(&signer, &r, out, 100, &len, error, sizeof error) != 0, "a too small buffer is refused");
    CHECK(strstr(error, "too-large") != NULL, "the error names it: %s", error);

    /* The longest ids and 16 records still fit a manager's 1024-byte limit. */
    static char channel[CHANNEL_ID_MAX + 1], device[DEVICE_ID_MAX + 1];
    memset(channel, 'c', CHANNEL_ID_MAX);
    memset(device, 'D', DEVICE_ID_MAX);
    r.channel = channel;
    r.device = device;
    r.seq = UINT64_MAX;
    r.time_ms = UINT64_MAX;
    r.record_count = READING_MAX_RECORDS;
    for (size_t i = 0; i < READING_MAX_RECORDS; i++) {
        r.records[i].code = "59408-5";
        r.records[i].unit = "mmol/L";
        r.records[i].is_float = 1;
        r.records[i].float_value = 36.6;
    }
    CHECK(cose_sign_reading(&signer, &r, out, sizeof out, &len, error, sizeof error) == 0 && len <= 1024,
          "the largest reading fits: %s (%zu bytes)", error, len);
    cose_signer_free(&signer);

    cose_signer missing;
    CHECK(cose_signer_load_pem(&missing, "/nonexistent/key.pem", error, sizeof error) != 0, "a missing key file");
    CHECK(strstr(error, "/nonexistent/key.pem") != NULL, "the error names the file: %s", error);
    char path[64];
    CHECK(write_temp_file("not a key\n", path, sizeof path) == 0, "temporary file");
    CHECK(cose_signer_load_pem(&missing, path, error, sizeof error) != 0, "a file that is not a key");
    CHECK(strstr(error, "not an unencrypted PEM private key") != NULL, "the error says so: %s", error);
    unlink(path);
}

static void test_ecdsa_der(void) {
    uint8_t raw[64];
    /* r = 0x80 00.. (needs the 0x00 pad: 33 bytes), s = 0x01 (one byte, left-padded) */
    uint8_t der[80] = {0x30, 0x26, 0x02, 0x21, 0x00, 0x80};
    size_t n = 6 + 31;
    der[n++] = 0x02;
    der[n++] = 0x01;
    der[n++] = 0x01;
    CHECK(n == 0x26 + 2, "test DER length");
    CHECK(cose_ecdsa_der_to_raw(der, n, raw) == 0, "a padded r and a short s");
    CHECK(raw[0] == 0x80 && raw[31] == 0 && raw[32] == 0 && raw[63] == 1, "r and s in place");

    uint8_t back[80];
    size_t back_len = ecdsa_raw_to_der(raw, back);
    CHECK(back_len == n && memcmp(back, der, n) == 0, "raw to DER and back");

    uint8_t bad[80];
    memcpy(bad, der, n);
    bad[0] = 0x31;
    CHECK(cose_ecdsa_der_to_raw(bad, n, raw) != 0, "not a SEQUENCE");
    memcpy(bad, der, n);
    bad[1]++;
    CHECK(cose_ecdsa_der_to_raw(bad, n, raw) != 0, "a wrong SEQUENCE length");
    memcpy(bad, der, n);
    bad[n] = 0;
    CHECK(cose_ecdsa_der_to_raw(bad, n + 1, raw) != 0, "trailing bytes");
    static const uint8_t negative[] = {0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01};
    CHECK(cose_ecdsa_der_to_raw(negative, sizeof negative, raw) != 0, "a negative INTEGER");
    static const uint8_t padded[] = {0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01};
    CHECK(cose_ecdsa_der_to_raw(padded, sizeof padded, raw) != 0, "a non-minimal INTEGER");
    static const uint8_t ok_small[] = {0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07};
    CHECK(cose_ecdsa_der_to_raw(ok_small, sizeof ok_small, raw) == 0 && raw[31] == 5 && raw[63] == 7,
          "small r and s");
}

/* ------------------------------------------------------------------ receipts */

static void test_receipt_vectors(void) {
    json_value root, cases, item, v;
    char *text = read_file("receipts.json");
    CHECK(json_parse(text, &root) == 0 && json_get(root, "cases", &cases) == 0, "receipts.json");
    size_t count = json_count(cases);
    CHECK(count >= 8, "receipt cases: %zu", count);
    for (size_t i = 0; i < count; i++) {
        char name[64] = "?", hex[300], status[16], reason[RECEIPT_REASON_MAX], error[256];
        uint8_t bytes[150];
        int valid = 0;
        json_at(cases, i, &item);
        if (json_get(item, "name", &v) == 0) json_string(v, name, sizeof name);
        CHECK(json_get(item, "valid", &v) == 0 && json_bool(v, &valid) == 0, "%s: valid", name);
        CHECK(hex_field(item, "hex", hex, sizeof hex) == 0, "%s: hex", name);
        size_t len = from_hex(hex, bytes, sizeof bytes);
        receipt rc;
        int decoded = receipt_decode(bytes, len, &rc, error, sizeof error);
        if (!valid) {
            CHECK(decoded != 0, "%s must be refused", name);
            continue;
        }
        CHECK(decoded == 0, "%s decodes: %s", name, error);
        uint64_t seq;
        CHECK(json_get(item, "seq", &v) == 0 && json_u64(v, &seq) == 0 && rc.seq == seq, "%s: seq", name);
        CHECK(json_get(item, "status", &v) == 0 && json_string(v, status, sizeof status) == 0 &&
                  strcmp(status, receipt_status_name(rc.status)) == 0,
              "%s: status %s", name, receipt_status_name(rc.status));
        if (rc.status == RECEIPT_COMMITTED) {
            uint64_t height;
            char hash_hex[70];
            CHECK(json_get(item, "height", &v) == 0 && json_u64(v, &height) == 0 && rc.height == height, "%s: height",
                  name);
            CHECK(hex_field(item, "blockHashHex", hash_hex, sizeof hash_hex) == 0, "%s: hash", name);
            check_hex(name, rc.block_hash, 32, hash_hex);
        }
        if (rc.status == RECEIPT_REJECTED) {
            CHECK(json_get(item, "reason", &v) == 0 && json_string(v, reason, sizeof reason) == 0 &&
                      strcmp(reason, rc.reason) == 0,
                  "%s: reason %s", name, rc.reason);
        }
    }
}

static void test_receipt_decoder_edges(void) {
    receipt rc;
    char error[256];
    /* {1: 9, 2: "accepted", 9: [1, {}], "x": 0}: unknown keys are skipped */
    static const uint8_t extra[] = {0xa4, 0x01, 0x09, 0x02, 0x68, 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd',
                                    0x09, 0x82, 0x01, 0xa0, 0x61, 'x', 0x00};
    CHECK(receipt_decode(extra, sizeof extra, &rc, error, sizeof error) == 0 && rc.seq == 9 &&
              rc.status == RECEIPT_ACCEPTED,
          "unknown keys are skipped: %s", error);
    static const uint8_t twice[] = {0xa3, 0x01, 0x09, 0x01, 0x0a, 0x02, 0x68, 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd'};
    CHECK(receipt_decode(twice, sizeof twice, &rc, error, sizeof error) != 0 && strstr(error, "twice") != NULL,
          "a key twice: %s", error);
    static const uint8_t trailing[] = {0xa2, 0x01, 0x09, 0x02, 0x68, 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd', 0x00};
    CHECK(receipt_decode(trailing, sizeof trailing, &rc, error, sizeof error) != 0, "trailing bytes: %s", error);
    static const uint8_t bad_reason[] = {0xa3, 0x01, 0x09, 0x02, 0x68, 'r', 'e', 'j', 'e', 'c', 't', 'e', 'd',
                                         0x05, 0x62, 'A', '\n'};
    CHECK(receipt_decode(bad_reason, sizeof bad_reason, &rc, error, sizeof error) != 0, "a reason with odd bytes");
    CHECK(receipt_decode(NULL, 0, &rc, error, sizeof error) != 0, "empty input");

    /* every unsigned integer of the protocol is 0 ... 2^63 - 1 */
    static const uint8_t seq_max[] = {0xa2, 0x01, 0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0x02, 0x68, 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd'};
    CHECK(receipt_decode(seq_max, sizeof seq_max, &rc, error, sizeof error) == 0 && rc.seq == RECEIPT_UINT_MAX,
          "seq 2^63 - 1: %s", error);
    static const uint8_t seq_over[] = {0xa2, 0x01, 0x1b, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                       0x02, 0x68, 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd'};
    CHECK(receipt_decode(seq_over, sizeof seq_over, &rc, error, sizeof error) != 0 && strstr(error, "2^63") != NULL,
          "seq 2^63 is refused: %s", error);
    static const uint8_t seq_top[] = {0xa2, 0x01, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0x02, 0x68, 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd'};
    CHECK(receipt_decode(seq_top, sizeof seq_top, &rc, error, sizeof error) != 0, "seq 2^64 - 1 is refused");
    /* {1: 1, 2: "committed", 3: HEIGHT, 4: h'00' x 32} */
    uint8_t committed[64] = {0xa4, 0x01, 0x01, 0x02, 0x69, 'c', 'o', 'm', 'm', 'i', 't', 't', 'e', 'd', 0x03, 0x1b};
    size_t n = 16;
    committed[n++] = 0x7f;
    for (int i = 0; i < 7; i++) committed[n++] = 0xff;
    committed[n++] = 0x04;
    committed[n++] = 0x58;
    committed[n++] = 0x20;
    memset(committed + n, 0, 32);
    n += 32;
    CHECK(receipt_decode(committed, n, &rc, error, sizeof error) == 0 && rc.height == RECEIPT_UINT_MAX,
          "height 2^63 - 1: %s", error);
    committed[16] = 0x80;
    for (int i = 17; i < 24; i++) committed[i] = 0x00;
    CHECK(receipt_decode(committed, n, &rc, error, sizeof error) != 0 && strstr(error, "2^63") != NULL,
          "height 2^63 is refused: %s", error);
}

/* ------------------------------------------------------------------ signed receipts */

/* A receipt map {1: seq, 2: status, 3: height, 4: hash, 5: reason} (3 and 4 for committed, 5 for
 * rejected and busy). */
static size_t receipt_payload(uint64_t seq, const char *status, uint64_t height, const char *reason, uint8_t *out,
                              size_t cap) {
    cbor_writer w;
    cbor_writer_init(&w, out, cap);
    int committed = strcmp(status, "committed") == 0;
    cbor_put_map(&w, committed || reason != NULL ? (committed ? 4 : 3) : 2);
    cbor_put_uint(&w, 1);
    cbor_put_uint(&w, seq);
    cbor_put_uint(&w, 2);
    cbor_put_text_z(&w, status);
    if (committed) {
        uint8_t hash[32];
        for (int i = 0; i < 32; i++) hash[i] = (uint8_t)i;
        cbor_put_uint(&w, 3);
        cbor_put_uint(&w, height);
        cbor_put_uint(&w, 4);
        cbor_put_bytes(&w, hash, sizeof hash);
    } else if (reason != NULL) {
        cbor_put_uint(&w, 5);
        cbor_put_text_z(&w, reason);
    }
    return w.error == CBOR_OK ? w.len : 0;
}

/* A manager's signed receipt: 18([{1: alg, 4: kid}, {}, payload, signature over Sig_structure
 * with the topic as external_aad]). header_alg is what the protected header claims. */
static size_t sign_receipt(cose_signer *signer, int header_alg, const char *kid, const char *topic,
                           const uint8_t *payload, size_t payload_len, uint8_t *out, size_t cap) {
    uint8_t protected_bytes[COSE_PROTECTED_MAX], tbs[COSE_TBS_MAX + 300], signature[COSE_SIGNATURE_BYTES];
    size_t protected_len, tbs_len, len;
    if (cose_protected_header(header_alg, kid, protected_bytes, sizeof protected_bytes, &protected_len) != 0) return 0;
    if (cose_sig_structure_aad(protected_bytes, protected_len, (const uint8_t *)topic, strlen(topic), payload,
                               payload_len, tbs, sizeof tbs, &tbs_len) != 0)
        return 0;
    if (cose_signer_sign(signer, tbs, tbs_len, signature) != 0) return 0;
    if (cose_sign1_encode(protected_bytes, protected_len, payload, payload_len, signature, sizeof signature, out, cap,
                          &len) != 0)
        return 0;
    return len;
}

/* receipt_open over a copy of exactly len bytes on the heap, so that AddressSanitizer sees any
 * read past the end. */
static int open_exact(const receipt_trust *trust, const char *topic, const uint8_t *bytes, size_t len, receipt *out,
                      char *signer, char *error, size_t error_cap) {
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    if (len > 0) memcpy(copy, bytes, len);
    int verdict = receipt_open(trust, topic, copy, len, out, signer, error, error_cap);
    free(copy);
    return verdict;
}

static void test_signed_receipt_vectors(void) {
    json_value root, managers, cases, item, v;
    char *text = read_file("signed-receipts.json");
    CHECK(json_parse(text, &root) == 0, "signed-receipts.json is JSON");
    char topic[RECEIPT_TOPIC_MAX + 1] = "";
    CHECK(json_get(root, "topic", &v) == 0 && json_string(v, topic, sizeof topic) == 0, "topic");
    CHECK(json_get(root, "managers", &managers) == 0 && json_count(managers) >= 1, "managers");
    CHECK(json_get(root, "cases", &cases) == 0 && json_count(cases) >= 8, "cases");
    if (failures > 0) return;

    /* The same managers twice: from the raw keys, and from their PEM files as a device loads them. */
    static receipt_trust from_raw, from_pem, only_first;
    receipt_trust_init(&from_raw);
    receipt_trust_init(&from_pem);
    receipt_trust_init(&only_first);
    char error[512] = "";
    for (size_t i = 0; i < json_count(managers); i++) {
        char id[80] = "?", key_hex[80], pem[512], path[64];
        uint8_t key[32];
        int64_t alg = 0;
        json_at(managers, i, &item);
        CHECK(json_get(item, "id", &v) == 0 && json_string(v, id, sizeof id) == 0, "manager %zu: id", i);
        CHECK(json_get(item, "alg", &v) == 0 && json_i64(v, &alg) == 0 && alg == COSE_ALG_EDDSA, "%s: alg", id);
        CHECK(hex_field(item, "publicKeyHex", key_hex, sizeof key_hex) == 0 && from_hex(key_hex, key, sizeof key) == 32,
              "%s: publicKeyHex", id);
        CHECK(hex_field(item, "publicKeyPEM", pem, sizeof pem) == 0, "%s: publicKeyPEM", id);
        CHECK(receipt_trust_add_ed25519(&from_raw, id, key, error, sizeof error) == 0, "%s from raw: %s", id, error);
        if (i == 0) CHECK(receipt_trust_add_ed25519(&only_first, id, key, error, sizeof error) == 0, "%s", error);
        CHECK(write_temp_file(pem, path, sizeof path) == 0, "temporary PEM file");
        CHECK(receipt_trust_add_pem(&from_pem, id, path, error, sizeof error) == 0, "%s from PEM: %s", id, error);
        CHECK(from_pem.managers[from_pem.count - 1].alg == COSE_ALG_EDDSA, "%s: the PEM key is Ed25519", id);
        unlink(path);
    }
    CHECK(from_raw.count == json_count(managers) && from_pem.count == json_count(managers), "every manager loaded");
    if (failures > 0) return;

    const receipt_trust *trusts[2] = {&from_raw, &from_pem};
    size_t count = json_count(cases);
    for (size_t i = 0; i < count; i++) {
        char name[64] = "?", hex[600], status[16] = "", why[32] = "";
        static uint8_t bytes[300];
        int trusted = 0;
        uint64_t seq = 0;
        json_at(cases, i, &item);
        if (json_get(item, "name", &v) == 0) json_string(v, name, sizeof name);
        CHECK(json_get(item, "trusted", &v) == 0 && json_bool(v, &trusted) == 0, "%s: trusted", name);
        CHECK(json_get(item, "seq", &v) == 0 && json_u64(v, &seq) == 0, "%s: seq", name);
        CHECK(json_get(item, "status", &v) == 0 && json_string(v, status, sizeof status) == 0, "%s: status", name);
        CHECK(hex_field(item, "hex", hex, sizeof hex) == 0, "%s: hex", name);
        if (!trusted) CHECK(json_get(item, "why", &v) == 0 && json_string(v, why, sizeof why) == 0, "%s: why", name);
        size_t len = from_hex(hex, bytes, sizeof bytes);
        CHECK(len != (size_t)-1 && len > 0, "%s: the hex", name);
        if (len == (size_t)-1) continue;
        int signed_message = bytes[0] == 0xD2;

        for (int t = 0; t < 2; t++) {
            receipt rc;
            char signer[RECEIPT_MANAGER_ID_MAX + 1] = "x";
            int verdict = open_exact(trusts[t], topic, bytes, len, &rc, signer, error, sizeof error);
            const char *via = t == 0 ? "raw keys" : "PEM keys";
            if (trusted) {
                CHECK(verdict == RECEIPT_TRUSTED, "%s (%s) is trusted: %s: %s", name, via, receipt_why(verdict), error);
                if (verdict != RECEIPT_TRUSTED) continue;
                CHECK(rc.seq == seq, "%s: seq %llu", name, (unsigned long long)rc.seq);
                CHECK(strcmp(status, receipt_status_name(rc.status)) == 0, "%s: status %s", name,
                      receipt_status_name(rc.status));
                if (signed_message) {
                    CHECK(signer[0] != '\0', "%s: the signer is named", name);
                    CHECK(strstr(name, "manager-2") == NULL || strcmp(signer, "manager-2") == 0, "%s: signer %s", name,
                          signer);
                } else {
                    CHECK(signer[0] == '\0', "%s: a bare receipt has no signer (%s)", name, signer);
                }
            } else {
                CHECK(verdict != RECEIPT_TRUSTED && strcmp(receipt_why(verdict), why) == 0,
                      "%s (%s) is refused as %s, not %s: %s", name, via, why, receipt_why(verdict), error);
            }
        }

        /* Signed for this topic only: for another device or channel, a trusted signed receipt
         * no longer verifies (a bare one is unaffected). */
        receipt rc;
        char signer[RECEIPT_MANAGER_ID_MAX + 1];
        static const char *others[] = {"medledger/v1/ward-7/receipts/cuff-2", "medledger/v1/ward-8/receipts/cuff-1",
                                       "medledger/v1/ward-7/receipts/cuff-1/", ""};
        for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
            int verdict = open_exact(&from_raw, others[k], bytes, len, &rc, signer, error, sizeof error);
            if (trusted && signed_message) {
                CHECK(verdict == RECEIPT_BAD_SIGNATURE, "%s on '%s': %s", name, others[k], receipt_why(verdict));
            } else if (trusted) {
                CHECK(verdict == RECEIPT_TRUSTED, "%s (bare) on '%s': %s", name, others[k], receipt_why(verdict));
            } else if (strcmp(name, "committed-for-another-device") == 0 && k == 0) {
                /* it was signed for cuff-2's topic: there it verifies */
                CHECK(verdict == RECEIPT_TRUSTED && rc.seq == seq, "%s on '%s' (its own topic) is trusted: %s", name,
                      others[k], error);
            } else {
                CHECK(verdict != RECEIPT_TRUSTED, "%s on '%s' stays refused", name, others[k]);
            }
        }

        /* Trusting manager-1 only: manager-2's receipt names no trusted manager. */
        int verdict = open_exact(&only_first, topic, bytes, len, &rc, signer, error, sizeof error);
        if (strstr(name, "manager-2") != NULL) {
            CHECK(verdict == RECEIPT_UNKNOWN_SIGNER, "%s with manager-1 only: %s", name, receipt_why(verdict));
        } else {
            CHECK((verdict == RECEIPT_TRUSTED) == trusted, "%s with manager-1 only: %s", name, receipt_why(verdict));
        }

        /* No trusted managers at all: nothing final is trusted. */
        static receipt_trust empty;
        receipt_trust_init(&empty);
        verdict = open_exact(&empty, topic, bytes, len, &rc, signer, error, sizeof error);
        CHECK(signed_message ? verdict == RECEIPT_UNKNOWN_SIGNER : (verdict == RECEIPT_TRUSTED) == trusted,
              "%s with no managers: %s", name, receipt_why(verdict));
    }
    receipt_trust_free(&from_raw);
    receipt_trust_free(&from_pem);
    receipt_trust_free(&only_first);
    CHECK(from_raw.count == 0 && from_raw.managers[0].key == NULL, "receipt_trust_free empties the store");
}

static int write_key_pem(EVP_PKEY *key, int private_key, char *path, size_t cap) {
    snprintf(path, cap, "/tmp/medledger-device-test-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *file = fdopen(fd, "w");
    if (file == NULL) {
        close(fd);
        return -1;
    }
    int ok = private_key ? PEM_write_PrivateKey(file, key, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_PUBKEY(file, key);
    return fclose(file) == 0 && ok == 1 ? 0 : -1;
}

static void test_signed_receipts_es256(void) {
    const char *topic = "medledger/v1/ward-7/receipts/cuff-1";
    char error[512] = "", private_path[64], public_path[64];
    EVP_PKEY *key = EVP_EC_gen("P-256");
    CHECK(key != NULL, "a P-256 key");
    if (key == NULL) return;
    CHECK(write_key_pem(key, 1, private_path, sizeof private_path) == 0 &&
              write_key_pem(key, 0, public_path, sizeof public_path) == 0,
          "the key's PEM files");
    EVP_PKEY_free(key);

    cose_signer manager;
    CHECK(cose_signer_load_pem(&manager, private_path, error, sizeof error) == 0 && manager.alg == COSE_ALG_ES256,
          "the manager's signing key: %s", error);
    static receipt_trust trust;
    receipt_trust_init(&trust);
    CHECK(receipt_trust_add_pem(&trust, "manager-es", public_path, error, sizeof error) == 0, "trust: %s", error);
    CHECK(trust.count == 1 && trust.managers[0].alg == COSE_ALG_ES256, "the public key is ES256");
    unlink(private_path);
    unlink(public_path);
    if (failures > 0) return;

    uint8_t payload[128], message[512];
    size_t payload_len = receipt_payload(77, "committed", 12, NULL, payload, sizeof payload);
    CHECK(payload_len > 0, "payload");
    size_t len = sign_receipt(&manager, COSE_ALG_ES256, "manager-es", topic, payload, payload_len, message,
                              sizeof message);
    CHECK(len > 0 && message[0] == 0xD2, "a signed ES256 receipt");

    /* the parts, and cose_verify on its own */
    cose_sign1 parsed;
    CHECK(cose_sign1_parse(message, len, &parsed, error, sizeof error) == 0, "parses: %s", error);
    CHECK(parsed.alg == COSE_ALG_ES256 && parsed.kid_len == 10 && memcmp(parsed.kid, "manager-es", 10) == 0 &&
              parsed.payload_len == payload_len && memcmp(parsed.payload, payload, payload_len) == 0,
          "alg, kid and payload");
    uint8_t tbs[COSE_TBS_MAX + 300];
    size_t tbs_len;
    CHECK(cose_sig_structure_aad(parsed.protected_bytes, parsed.protected_len, (const uint8_t *)topic, strlen(topic),
                                 parsed.payload, parsed.payload_len, tbs, sizeof tbs, &tbs_len) == 0,
          "Sig_structure");
    CHECK(cose_verify(trust.managers[0].key, COSE_ALG_ES256, tbs, tbs_len, parsed.signature) == 0, "ES256 verifies");
    CHECK(cose_verify(trust.managers[0].key, COSE_ALG_EDDSA, tbs, tbs_len, parsed.signature) != 0,
          "not as EdDSA with a P-256 key");
    tbs[tbs_len - 1] ^= 1;
    CHECK(cose_verify(trust.managers[0].key, COSE_ALG_ES256, tbs, tbs_len, parsed.signature) != 0,
          "not over other bytes");
    uint8_t zero[COSE_SIGNATURE_BYTES] = {0};
    CHECK(cose_verify(trust.managers[0].key, COSE_ALG_ES256, tbs, tbs_len, zero) != 0, "r = s = 0 does not verify");

    receipt rc;
    char signer[RECEIPT_MANAGER_ID_MAX + 1];
    int verdict = open_exact(&trust, topic, message, len, &rc, signer, error, sizeof error);
    CHECK(verdict == RECEIPT_TRUSTED && rc.seq == 77 && rc.status == RECEIPT_COMMITTED && rc.height == 12 &&
              strcmp(signer, "manager-es") == 0,
          "an ES256 receipt is trusted: %s: %s", receipt_why(verdict), error);
    verdict = open_exact(&trust, "medledger/v1/ward-7/receipts/cuff-2", message, len, &rc, signer, error, sizeof error);
    CHECK(verdict == RECEIPT_BAD_SIGNATURE, "for another topic it does not verify: %s", receipt_why(verdict));
    message[len - 1] ^= 0x40;
    verdict = open_exact(&trust, topic, message, len, &rc, signer, error, sizeof error);
    CHECK(verdict == RECEIPT_BAD_SIGNATURE, "a changed s: %s", receipt_why(verdict));

    /* the protected header claims EdDSA for a manager whose key is ES256 */
    len = sign_receipt(&manager, COSE_ALG_EDDSA, "manager-es", topic, payload, payload_len, message, sizeof message);
    verdict = open_exact(&trust, topic, message, len, &rc, signer, error, sizeof error);
    CHECK(verdict == RECEIPT_BAD_SIGNATURE && strstr(error, "alg") != NULL, "an alg that is not the key's: %s",
          error);

    /* a signed rejected receipt, and a signed accepted one (allowed, not required) */
    payload_len = receipt_payload(78, "rejected", 0, "clock-skew", payload, sizeof payload);
    len = sign_receipt(&manager, COSE_ALG_ES256, "manager-es", topic, payload, payload_len, message, sizeof message);
    verdict = open_exact(&trust, topic, message, len, &rc, signer, error, sizeof error);
    CHECK(verdict == RECEIPT_TRUSTED && rc.status == RECEIPT_REJECTED && strcmp(rc.reason, "clock-skew") == 0,
          "a signed rejected receipt: %s", error);
    payload_len = receipt_payload(79, "accepted", 0, NULL, payload, sizeof payload);
    len = sign_receipt(&manager, COSE_ALG_ES256, "manager-es", topic, payload, payload_len, message, sizeof message);
    verdict = open_exact(&trust, topic, message, len, &rc, signer, error, sizeof error);
    CHECK(verdict == RECEIPT_TRUSTED && rc.status == RECEIPT_ACCEPTED && strcmp(signer, "manager-es") == 0,
          "a signed accepted receipt: %s", error);

    cose_signer_free(&manager);
    receipt_trust_free(&trust);
}

static void test_signed_receipt_parser_edges(void) {
    const char *topic = "medledger/v1/ward-7/receipts/cuff-1";
    uint8_t seed[32] = {7, 7, 7};
    cose_signer manager;
    CHECK(cose_signer_from_ed25519_seed(&manager, seed) == 0, "signer");
    uint8_t public_key[32];
    size_t public_len = 0;
    CHECK(cose_signer_public_key(&manager, public_key, sizeof public_key, &public_len) == 0 && public_len == 32,
          "public key");
    static receipt_trust trust;
    receipt_trust_init(&trust);
    char error[512] = "", signer[RECEIPT_MANAGER_ID_MAX + 1];
    CHECK(receipt_trust_add_ed25519(&trust, "manager-1", public_key, error, sizeof error) == 0, "%s", error);
    if (failures > 0) return;

    uint8_t payload[128], message[512], bad[600];
    size_t payload_len = receipt_payload(41, "committed", 9, NULL, payload, sizeof payload);
    size_t len = sign_receipt(&manager, COSE_ALG_EDDSA, "manager-1", topic, payload, payload_len, message,
                              sizeof message);
    receipt rc;
    cose_sign1 parsed;
    CHECK(len > 0 && open_exact(&trust, topic, message, len, &rc, signer, error, sizeof error) == RECEIPT_TRUSTED &&
              rc.seq == 41 && strcmp(signer, "manager-1") == 0,
          "the valid receipt: %s", error);

    /* cut at every length: refused, never read past the end */
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n > 0 ? n : 1);
        if (copy == NULL) exit(2);
        memcpy(copy, message, n);
        CHECK(cose_sign1_parse(copy, n, &parsed, error, sizeof error) != 0, "cut to %zu bytes: parse refuses", n);
        int verdict = receipt_open(&trust, topic, copy, n, &rc, signer, error, sizeof error);
        CHECK(verdict == RECEIPT_MALFORMED, "cut to %zu bytes: %s", n, receipt_why(verdict));
        free(copy);
    }
    /* every single changed bit: never trusted */
    int trusted_flips = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, message, len);
            bad[i] ^= (uint8_t)(1u << bit);
            int verdict = open_exact(&trust, topic, bad, len, &rc, signer, error, sizeof error);
            if (verdict == RECEIPT_TRUSTED) trusted_flips++;
        }
    }
    CHECK(trusted_flips == 0, "%d single-bit changes were trusted", trusted_flips);

    /* the wrong tag: 17 (COSE_Mac0), or 18 missing */
    memcpy(bad, message, len);
    bad[0] = 0xD1;
    CHECK(cose_sign1_parse(bad, len, &parsed, error, sizeof error) != 0 && strstr(error, "tag") != NULL,
          "tag 17: %s", error);
    CHECK(open_exact(&trust, topic, bad, len, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED, "tag 17");
    CHECK(cose_sign1_parse(message + 1, len - 1, &parsed, error, sizeof error) != 0, "untagged: %s", error);
    /* the tag in a longer head (d8 12) parses, but a device takes only the d2 form as signed */
    bad[0] = 0xD8;
    bad[1] = 0x12;
    memcpy(bad + 2, message + 1, len - 1);
    CHECK(cose_sign1_parse(bad, len + 1, &parsed, error, sizeof error) == 0, "d8 12 is tag 18: %s", error);
    CHECK(open_exact(&trust, topic, bad, len + 1, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED,
          "a receipt not starting with d2 is a bare map or nothing");

    uint8_t protected_bytes[COSE_PROTECTED_MAX], sig[COSE_SIGNATURE_BYTES] = {0};
    size_t protected_len, bad_len;
    CHECK(cose_protected_header(COSE_ALG_EDDSA, "manager-1", protected_bytes, sizeof protected_bytes,
                                &protected_len) == 0,
          "protected");

    /* a 63-byte and a 65-byte signature */
    CHECK(cose_sign1_encode(protected_bytes, protected_len, payload, payload_len, message + len - 64, 63, bad,
                            sizeof bad, &bad_len) == 0,
          "encode");
    CHECK(cose_sign1_parse(bad, bad_len, &parsed, error, sizeof error) != 0 && strstr(error, "63") != NULL,
          "a 63-byte signature: %s", error);
    CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED, "63 bytes");
    uint8_t long_sig[65] = {0};
    CHECK(cose_sign1_encode(protected_bytes, protected_len, payload, payload_len, long_sig, 65, bad, sizeof bad,
                            &bad_len) == 0 &&
              cose_sign1_parse(bad, bad_len, &parsed, error, sizeof error) != 0,
          "a 65-byte signature: %s", error);

    /* trailing bytes */
    memcpy(bad, message, len);
    bad[len] = 0x00;
    CHECK(cose_sign1_parse(bad, len + 1, &parsed, error, sizeof error) != 0 && strstr(error, "after") != NULL,
          "a trailing byte: %s", error);
    CHECK(open_exact(&trust, topic, bad, len + 1, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED, "trailing");

    /* kid: 64 bytes parse (and name no manager), 65 are too long */
    char kid[COSE_KID_MAX + 2];
    memset(kid, 'k', sizeof kid);
    kid[COSE_KID_MAX] = '\0';
    bad_len = sign_receipt(&manager, COSE_ALG_EDDSA, kid, topic, payload, payload_len, bad, sizeof bad);
    CHECK(bad_len > 0 && cose_sign1_parse(bad, bad_len, &parsed, error, sizeof error) == 0 &&
              parsed.kid_len == COSE_KID_MAX,
          "a 64-byte kid: %s", error);
    CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_UNKNOWN_SIGNER,
          "a 64-byte kid names no manager: %s", error);
    kid[COSE_KID_MAX] = 'k';
    kid[COSE_KID_MAX + 1] = '\0';
    bad_len = sign_receipt(&manager, COSE_ALG_EDDSA, kid, topic, payload, payload_len, bad, sizeof bad);
    CHECK(bad_len > 0 && cose_sign1_parse(bad, bad_len, &parsed, error, sizeof error) != 0 &&
              strstr(error, "kid") != NULL,
          "a 65-byte kid: %s", error);
    CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED, "65 bytes");

    /* a kid that is a prefix, or an extension, of a manager's id */
    bad_len = sign_receipt(&manager, COSE_ALG_EDDSA, "manager-", topic, payload, payload_len, bad, sizeof bad);
    CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_UNKNOWN_SIGNER,
          "kid 'manager-': %s", error);
    bad_len = sign_receipt(&manager, COSE_ALG_EDDSA, "manager-10", topic, payload, payload_len, bad, sizeof bad);
    CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_UNKNOWN_SIGNER,
          "kid 'manager-10': %s", error);

    /* an algorithm the protocol does not know, under a manager's kid */
    bad_len = sign_receipt(&manager, -35, "manager-1", topic, payload, payload_len, bad, sizeof bad);
    CHECK(cose_sign1_parse(bad, bad_len, &parsed, error, sizeof error) == 0 && parsed.alg == -35, "alg -35 parses");
    CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_BAD_SIGNATURE,
          "alg -35: %s", error);

    /* protected headers that are not {1: negative alg, 4: kid bstr} */
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t len;
    } headers[] = {
        {"no kid", {0xa1, 0x01, 0x27}, 3},
        {"no alg", {0xa1, 0x04, 0x41, 'm'}, 4},
        {"alg positive", {0xa2, 0x01, 0x08, 0x04, 0x41, 'm'}, 6},
        {"alg text", {0xa2, 0x01, 0x61, 'E', 0x04, 0x41, 'm'}, 7},
        {"alg below INT_MIN", {0xa2, 0x01, 0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x04, 0x41, 'm'}, 14},
        {"kid text", {0xa2, 0x01, 0x27, 0x04, 0x61, 'm'}, 6},
        {"alg twice", {0xa3, 0x01, 0x27, 0x01, 0x27, 0x04, 0x41, 'm'}, 8},
        {"kid twice", {0xa3, 0x01, 0x27, 0x04, 0x41, 'm', 0x04, 0x41, 'm'}, 9},
        {"a byte after the map", {0xa2, 0x01, 0x27, 0x04, 0x41, 'm', 0x00}, 7},
        {"not a map", {0x82, 0x01, 0x27}, 3},
        {"empty", {0}, 0},
        {"kid longer than the header", {0xa2, 0x01, 0x27, 0x04, 0x45, 'm'}, 6},
        {"a map of 2^64 - 1 pairs", {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        CHECK(cose_sign1_encode(headers[i].bytes, headers[i].len, payload, payload_len, sig, sizeof sig, bad,
                                sizeof bad, &bad_len) == 0,
              "encode");
        CHECK(cose_sign1_parse(bad, bad_len, &parsed, error, sizeof error) != 0, "protected %s is refused",
              headers[i].what);
        CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED,
              "protected %s: malformed", headers[i].what);
    }
    /* other labels in the protected header are skipped: {1: -8, 3: 0, 4: kid, -1: "x", "y": [1]} */
    static const uint8_t extra_labels[] = {0xa5, 0x01, 0x27, 0x03, 0x00, 0x04, 0x49, 'm', 'a', 'n', 'a', 'g', 'e',
                                           'r', '-', '1', 0x20, 0x61, 'x', 0x61, 'y', 0x81, 0x01};
    uint8_t tbs[COSE_TBS_MAX + 300];
    size_t tbs_len;
    CHECK(cose_sig_structure_aad(extra_labels, sizeof extra_labels, (const uint8_t *)topic, strlen(topic), payload,
                                 payload_len, tbs, sizeof tbs, &tbs_len) == 0 &&
              cose_signer_sign(&manager, tbs, tbs_len, sig) == 0 &&
              cose_sign1_encode(extra_labels, sizeof extra_labels, payload, payload_len, sig, sizeof sig, bad,
                                sizeof bad, &bad_len) == 0,
          "a receipt with more protected labels");
    CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_TRUSTED,
          "other protected labels are skipped: %s", error);

    /* the unprotected header: any map, its contents skipped (not covered by the signature) */
    static const uint8_t prefix[] = {0xd2, 0x84};
    cbor_writer w;
    cbor_writer_init(&w, bad, sizeof bad);
    cbor_put_tag(&w, COSE_TAG_SIGN1);
    cbor_put_array(&w, 4);
    cbor_put_bytes(&w, protected_bytes, protected_len);
    cbor_put_map(&w, 2);
    cbor_put_uint(&w, 4);
    cbor_put_bytes(&w, (const uint8_t *)"someone", 7);
    cbor_put_text_z(&w, "note");
    cbor_put_array(&w, 2);
    cbor_put_map(&w, 0);
    cbor_put_uint(&w, 1);
    cbor_put_bytes(&w, payload, payload_len);
    cbor_put_bytes(&w, message + len - 64, 64);
    CHECK(w.error == CBOR_OK && memcmp(w.buf, prefix, 2) == 0, "encode");
    CHECK(open_exact(&trust, topic, bad, w.len, &rc, signer, error, sizeof error) == RECEIPT_TRUSTED &&
              strcmp(signer, "manager-1") == 0,
          "an unprotected header with contents is skipped (its kid does not count): %s", error);
    /* the unprotected header is not a map; a truncated one */
    static const uint8_t not_map[] = {0xd2, 0x84, 0x46, 0xa2, 0x01, 0x27, 0x04, 0x41, 'm', 0x80, 0x40, 0x58, 0x40};
    CHECK(open_exact(&trust, topic, not_map, sizeof not_map, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED &&
              strstr(error, "unprotected") != NULL,
          "the unprotected header is an array: %s", error);
    static const uint8_t huge_map[] = {0xd2, 0x84, 0x46, 0xa2, 0x01, 0x27, 0x04, 0x41, 'm', 0xbb,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    CHECK(cose_sign1_parse(huge_map, sizeof huge_map, &parsed, error, sizeof error) != 0 &&
              strstr(error, "unprotected") != NULL,
          "an unprotected map of 2^64 - 1 pairs: %s", error);

    /* an array of 3, or of 5 */
    static const uint8_t three[] = {0xd2, 0x83, 0x40, 0xa0, 0x40};
    CHECK(cose_sign1_parse(three, sizeof three, &parsed, error, sizeof error) != 0, "an array of 3");
    memcpy(bad, message, len);
    bad[1] = 0x85;
    bad[len] = 0x40;
    CHECK(cose_sign1_parse(bad, len + 1, &parsed, error, sizeof error) != 0, "an array of 5");

    /* verified, but the payload is not a receipt */
    static const uint8_t not_receipt[] = {0x82, 0x01, 0x02};
    bad_len = sign_receipt(&manager, COSE_ALG_EDDSA, "manager-1", topic, not_receipt, sizeof not_receipt, bad,
                           sizeof bad);
    CHECK(open_exact(&trust, topic, bad, bad_len, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED &&
              strstr(error, "manager-1") != NULL,
          "a signed payload that is no receipt: %s", error);

    /* bare maps: final ones are unsigned, others trusted, garbage malformed, too long malformed */
    CHECK(open_exact(&trust, topic, payload, payload_len, &rc, signer, error, sizeof error) == RECEIPT_UNSIGNED &&
              strstr(error, "seq 41") != NULL,
          "a bare committed receipt: %s", error);
    payload_len = receipt_payload(5, "busy", 0, "mempool-full", payload, sizeof payload);
    CHECK(open_exact(&trust, topic, payload, payload_len, &rc, signer, error, sizeof error) == RECEIPT_TRUSTED &&
              rc.status == RECEIPT_BUSY && signer[0] == '\0',
          "a bare busy receipt: %s", error);
    static const uint8_t garbage[] = {0xff, 0x00};
    CHECK(open_exact(&trust, topic, garbage, sizeof garbage, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED,
          "garbage");
    static uint8_t big[RECEIPT_MAX_BYTES + 1];
    memcpy(big, message, len);
    CHECK(open_exact(&trust, topic, big, sizeof big, &rc, signer, error, sizeof error) == RECEIPT_MALFORMED,
          "over %d bytes", RECEIPT_MAX_BYTES);

    CHECK(strcmp(receipt_why(RECEIPT_TRUSTED), "trusted") == 0 &&
              strcmp(receipt_why(RECEIPT_MALFORMED), "malformed") == 0 && strcmp(receipt_why(RECEIPT_UNSIGNED), "unsigned") == 0 &&
              strcmp(receipt_why(RECEIPT_UNKNOWN_SIGNER), "unknown-signer") == 0 &&
              strcmp(receipt_why(RECEIPT_BAD_SIGNATURE), "bad-signature") == 0,
          "the why names");
    cose_signer_free(&manager);
    receipt_trust_free(&trust);
}

static void test_receipt_trust_store(void) {
    static receipt_trust trust;
    receipt_trust_init(&trust);
    char error[512] = "", path[64], id[32];
    uint8_t key[32] = {0};
    key[0] = 9;

    CHECK(receipt_trust_add_ed25519(&trust, "bad id", key, error, sizeof error) != 0 && strstr(error, "bad id") != NULL,
          "an id with a space: %s", error);
    CHECK(receipt_trust_add_ed25519(&trust, "", key, error, sizeof error) != 0, "an empty id");
    char long_id[RECEIPT_MANAGER_ID_MAX + 2];
    memset(long_id, 'm', sizeof long_id);
    long_id[RECEIPT_MANAGER_ID_MAX + 1] = '\0';
    CHECK(receipt_trust_add_ed25519(&trust, long_id, key, error, sizeof error) != 0, "a 65-character id");
    long_id[RECEIPT_MANAGER_ID_MAX] = '\0';
    CHECK(receipt_trust_add_ed25519(&trust, long_id, key, error, sizeof error) == 0, "a 64-character id: %s", error);
    CHECK(receipt_trust_add_ed25519(&trust, long_id, key, error, sizeof error) != 0 && strstr(error, "twice") != NULL,
          "the same id twice: %s", error);
    for (int i = 1; i < RECEIPT_MAX_MANAGERS; i++) {
        snprintf(id, sizeof id, "manager-%d", i);
        CHECK(receipt_trust_add_ed25519(&trust, id, key, error, sizeof error) == 0, "%s: %s", id, error);
    }
    CHECK(trust.count == RECEIPT_MAX_MANAGERS, "%d managers", RECEIPT_MAX_MANAGERS);
    CHECK(receipt_trust_add_ed25519(&trust, "one-more", key, error, sizeof error) != 0 &&
              strstr(error, "at most") != NULL,
          "a ninth: %s", error);
    receipt_trust_free(&trust);

    CHECK(receipt_trust_add_pem(&trust, "manager-1", "/nonexistent/m1.pub", error, sizeof error) != 0 &&
              strstr(error, "/nonexistent/m1.pub") != NULL,
          "a missing file: %s", error);
    CHECK(write_temp_file("not a key\n", path, sizeof path) == 0, "temporary file");
    CHECK(receipt_trust_add_pem(&trust, "manager-1", path, error, sizeof error) != 0 &&
              strstr(error, "PEM public key") != NULL,
          "not a key: %s", error);
    unlink(path);

    /* a private key is not a public key file; P-384 and RSA are refused */
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    CHECK(ed != NULL && write_key_pem(ed, 1, path, sizeof path) == 0, "an Ed25519 private key file");
    CHECK(receipt_trust_add_pem(&trust, "manager-1", path, error, sizeof error) != 0, "a private key file: %s", error);
    unlink(path);
    CHECK(ed != NULL && write_key_pem(ed, 0, path, sizeof path) == 0, "an Ed25519 public key file");
    CHECK(receipt_trust_add_pem(&trust, "manager-1", path, error, sizeof error) == 0 &&
              trust.managers[0].alg == COSE_ALG_EDDSA,
          "an Ed25519 public key file: %s", error);
    unlink(path);
    EVP_PKEY_free(ed);
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    CHECK(p384 != NULL && write_key_pem(p384, 0, path, sizeof path) == 0, "a P-384 public key file");
    CHECK(receipt_trust_add_pem(&trust, "manager-2", path, error, sizeof error) != 0 && strstr(error, "P-256") != NULL,
          "P-384: %s", error);
    unlink(path);
    EVP_PKEY_free(p384);
    EVP_PKEY *rsa = EVP_RSA_gen(1024);
    CHECK(rsa != NULL && write_key_pem(rsa, 0, path, sizeof path) == 0, "an RSA public key file");
    CHECK(receipt_trust_add_pem(&trust, "manager-2", path, error, sizeof error) != 0, "RSA: %s", error);
    unlink(path);
    EVP_PKEY_free(rsa);
    CHECK(trust.count == 1, "only the good key was added");
    receipt_trust_free(&trust);
    ERR_clear_error();
}

/* ------------------------------------------------------------------ ring, seq file, ids, samples */

static void test_ring(void) {
    static ring r;
    ring_init(&r);
    uint8_t bytes[4] = {1, 2, 3, 4};
    for (uint64_t seq = 1; seq <= RING_CAPACITY; seq++) {
        CHECK(ring_push(&r, seq, bytes, sizeof bytes) != NULL, "push %llu", (unsigned long long)seq);
    }
    CHECK(ring_full(&r) && r.live == RING_CAPACITY, "full at capacity");
    CHECK(ring_push(&r, 999, bytes, sizeof bytes) == NULL, "a full ring refuses (never overwrites)");
    CHECK(ring_find(&r, 1) != NULL && ring_find(&r, 1)->seq == 1, "the oldest is still there");

    ring_release(&r, ring_find(&r, 3)); /* a hole in the middle */
    CHECK(r.live == RING_CAPACITY - 1 && ring_full(&r), "a hole does not free space before the older ones");
    CHECK(ring_find(&r, 3) == NULL, "a released reading is gone");
    ring_release(&r, ring_find(&r, 2));
    ring_release(&r, ring_find(&r, 1));
    CHECK(r.count == RING_CAPACITY - 3 && !ring_full(&r), "releasing the oldest frees it and the holes after it");
    CHECK(ring_at(&r, 0)->seq == 4, "the oldest is now 4");
    for (uint64_t seq = RING_CAPACITY + 1; seq <= RING_CAPACITY + 3; seq++) {
        CHECK(ring_push(&r, seq, bytes, sizeof bytes) != NULL, "push after wrapping %llu", (unsigned long long)seq);
    }
    CHECK(ring_full(&r), "full again");
    CHECK(ring_at(&r, r.count - 1)->seq == RING_CAPACITY + 3, "the newest is last");
    for (size_t i = 0; i < r.count; i++) {
        CHECK(ring_at(&r, i)->seq == 4 + i, "oldest first after wrapping");
    }
    for (uint64_t seq = 4; seq <= RING_CAPACITY + 3; seq++) ring_release(&r, ring_find(&r, seq));
    CHECK(r.count == 0 && r.live == 0, "empty");
    uint8_t big[READING_MAX_BYTES + 1] = {0};
    CHECK(ring_push(&r, 1, big, sizeof big) == NULL, "a message over 1024 bytes is refused");
}

static void test_seqfile(void) {
    char dir[] = "/tmp/medledger-seq-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temporary directory");
    char path[128], tmp[140], error[512];
    snprintf(path, sizeof path, "%s/device.seq", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    uint64_t last = 99;
    CHECK(seqfile_read(path, &last, error, sizeof error) == 0 && last == 0, "a missing file is seq 0");
    CHECK(seqfile_write(path, 41, error, sizeof error) == 0, "write: %s", error);
    CHECK(seqfile_write(path, 42, error, sizeof error) == 0, "write again: %s", error);
    CHECK(seqfile_read(path, &last, error, sizeof error) == 0 && last == 42, "read back 42 (%llu)",
          (unsigned long long)last);
    CHECK(access(tmp, F_OK) != 0, "no temporary file is left");
    FILE *file = fopen(path, "r");
    char text[32] = "";
    CHECK(file != NULL && fgets(text, sizeof text, file) != NULL && strcmp(text, "42\n") == 0, "the file holds 42");
    if (file != NULL) fclose(file);
    CHECK(seqfile_write(path, UINT64_MAX, error, sizeof error) == 0 && seqfile_read(path, &last, error, sizeof error) == 0 &&
              last == UINT64_MAX,
          "the largest seq");

    static const char *bad[] = {"", "abc\n", "12x\n", "12\n\n", "-1\n", "18446744073709551616\n", " 5\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        file = fopen(path, "w");
        CHECK(file != NULL, "rewrite");
        if (file == NULL) continue;
        fputs(bad[i], file);
        fclose(file);
        CHECK(seqfile_read(path, &last, error, sizeof error) != 0 && strstr(error, path) != NULL,
              "'%s' is refused, naming the file: %s", bad[i], error);
    }
    char missing_dir[160];
    snprintf(missing_dir, sizeof missing_dir, "%s/no/such/dir/seq", dir);
    CHECK(seqfile_write(missing_dir, 1, error, sizeof error) != 0 && strstr(error, "cannot create") != NULL,
          "an unwritable place: %s", error);
    unlink(path);
    rmdir(dir);
}

static void test_ids(void) {
    CHECK(reading_valid_channel_id("ward-7"), "ward-7");
    CHECK(!reading_valid_channel_id(""), "empty channel");
    CHECK(!reading_valid_channel_id("Ward-7"), "upper case channel");
    CHECK(!reading_valid_channel_id("ward_7"), "underscore in a channel");
    CHECK(reading_valid_channel_id("abcdefghijklmnopqrstuvwxyz012345"), "32 characters");
    CHECK(!reading_valid_channel_id("abcdefghijklmnopqrstuvwxyz0123456"), "33 characters");
    CHECK(reading_valid_device_id("Cuff_1.a-b"), "Cuff_1.a-b");
    CHECK(!reading_valid_device_id("cuff/1"), "slash in a device id");
    CHECK(!reading_valid_device_id("cuff 1"), "space in a device id");
    CHECK(!reading_valid_device_id("cuff#"), "MQTT wildcard in a device id");
    char long_id[DEVICE_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id);
    long_id[DEVICE_ID_MAX] = '\0';
    CHECK(reading_valid_device_id(long_id), "64 characters");
    long_id[DEVICE_ID_MAX] = 'a';
    long_id[DEVICE_ID_MAX + 1] = '\0';
    CHECK(!reading_valid_device_id(long_id), "65 characters");
}

static void test_samples(void) {
    /* the plausible ranges of the project's kinds table (MedLedgerCore's MeasurementKind.standard) */
    static const struct {
        const char *code, *unit;
        double lo, hi;
    } kinds[] = {
        {"8480-6", "mm[Hg]", 20, 300}, {"8462-4", "mm[Hg]", 10, 200}, {"41653-7", "mg/dL", 10, 1500},
        {"15074-8", "mmol/L", 0.5, 85}, {"8310-5", "Cel", 20, 45}, {"8867-4", "/min", 10, 350},
        {"59408-5", "%", 30, 100},
    };
    for (const reading_kind *kind = reading_kinds; kind->name != NULL; kind++) {
        for (uint64_t seq = 1; seq <= 200; seq++) {
            reading a, b;
            reading_sample(kind, 7, seq, &a);
            reading_sample(kind, 7, seq, &b);
            CHECK(a.record_count >= 1 && a.record_count <= 3, "%s: records", kind->name);
            for (size_t i = 0; i < a.record_count; i++) {
                const reading_record *record = &a.records[i];
                double value = record->is_float ? record->float_value : (double)record->integer_value;
                int known = 0;
                for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
                    if (strcmp(kinds[k].code, record->code) == 0) {
                        known = 1;
                        CHECK(strcmp(kinds[k].unit, record->unit) == 0, "%s: unit of %s", kind->name, record->code);
                        CHECK(value >= kinds[k].lo && value <= kinds[k].hi, "%s: %g is plausible", kind->name, value);
                    }
                }
                CHECK(known, "%s: %s is a standard code", kind->name, record->code);
                CHECK(record->is_float == b.records[i].is_float && record->integer_value == b.records[i].integer_value &&
                          record->float_value == b.records[i].float_value,
                      "%s: the same seed and seq give the same value", kind->name);
            }
            if (strcmp(kind->name, "bp") == 0) {
                CHECK(a.records[1].integer_value < a.records[0].integer_value, "diastolic below systolic");
            }
        }
    }
    CHECK(reading_kind_named("bp") != NULL && reading_kind_named("nonsense") == NULL, "kinds by name");
}

int main(int argc, char **argv) {
    if (argc > 1) vectors_dir = argv[1];
    test_cbor_writer_rfc8949_examples();
    test_cbor_writer_overflow();
    test_cbor_reader();
    test_reading_vectors("reading-ed25519.json", COSE_ALG_EDDSA);
    test_reading_vectors("reading-es256.json", COSE_ALG_ES256);
    test_sign_reading_limits();
    test_ecdsa_der();
    test_receipt_vectors();
    test_receipt_decoder_edges();
    test_signed_receipt_vectors();
    test_signed_receipts_es256();
    test_signed_receipt_parser_edges();
    test_receipt_trust_store();
    test_ring();
    test_seqfile();
    test_ids();
    test_samples();
    if (failures > 0) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test-device: all %d checks passed (vectors from %s)\n", checks, vectors_dir);
    return 0;
}
