/*
 * MedLedger access contracts: the host API (import module "medledger").
 *
 * A contract is a WebAssembly module that exports `void decide(void)` and its memory as
 * "memory". When a block carrying an access request is checked, every validator runs `decide`
 * once; during the call the contract reads the request and the ledger through the functions
 * below and ends by calling exactly one of ml_grant, ml_grant_aggregates or ml_deny.
 *
 * There is no clock but the deciding block's time, no randomness and no I/O. Execution is
 * limited (docs/CONTRACTS.md): running out of instructions or memory, trapping, or returning
 * without a decision is recorded as a denial with that reason.
 *
 * Strings are UTF-8, passed as (pointer, length) and never NUL-terminated. Functions that
 * return a string write at most `cap` bytes to `out` and return its full length, so a caller
 * whose buffer was too small can call again; they return -1 when there is no such value.
 * Lists (kinds, consenting patients, patients) are sorted by their UTF-8 bytes.
 */
#ifndef MEDLEDGER_H
#define MEDLEDGER_H

#include <stdint.h>

#define ML_IMPORT(name) __attribute__((import_module("medledger"), import_name(name)))
#define ML_EXPORT(name) __attribute__((export_name(name)))

/* Roles, as ml_requester_role returns them. */
#define ML_ROLE_RESEARCHER 1
#define ML_ROLE_CLINICIAN 2

/* The request. */
ML_IMPORT("request_kind_count") int32_t ml_request_kind_count(void);
ML_IMPORT("request_kind") int32_t ml_request_kind(int32_t index, char *out, int32_t cap);
ML_IMPORT("request_from") int64_t ml_request_from(void);
ML_IMPORT("request_to") int64_t ml_request_to(void);
ML_IMPORT("request_patient") int32_t ml_request_patient(char *out, int32_t cap);
ML_IMPORT("request_study") int32_t ml_request_study(char *out, int32_t cap);
ML_IMPORT("request_purpose") int32_t ml_request_purpose(char *out, int32_t cap);

/* Who asks: their id, role (ML_ROLE_*) and organisation (-1 when none was registered). */
ML_IMPORT("requester_id") int32_t ml_requester_id(char *out, int32_t cap);
ML_IMPORT("requester_role") int32_t ml_requester_role(void);
ML_IMPORT("requester_organisation") int32_t ml_requester_organisation(char *out, int32_t cap);

/* Where the decision is taken: the deciding block's height and time (ms since the epoch). */
ML_IMPORT("block_height") int64_t ml_block_height(void);
ML_IMPORT("block_time") int64_t ml_block_time(void);

/* A parameter of the contract's deployment, or `fallback` when the deployment does not set it. */
ML_IMPORT("param") int64_t ml_param(const char *name, int32_t len, int64_t fallback);

/* The ledger: consents, treating relationships, the registry. */
ML_IMPORT("consented")
int32_t ml_consented(const char *patient, int32_t patient_len, const char *study, int32_t study_len);
ML_IMPORT("consent_count") int32_t ml_consent_count(const char *study, int32_t study_len);
ML_IMPORT("consent_patient")
int32_t ml_consent_patient(const char *study, int32_t study_len, int32_t index, char *out, int32_t cap);
ML_IMPORT("treating")
int32_t ml_treating(const char *clinician, int32_t clinician_len, const char *patient, int32_t patient_len);
ML_IMPORT("patient_count") int32_t ml_patient_count(void);
ML_IMPORT("patient_at") int32_t ml_patient_at(int32_t index, char *out, int32_t cap);
ML_IMPORT("patient_device_count") int32_t ml_patient_device_count(const char *patient, int32_t patient_len);
ML_IMPORT("kind_known") int32_t ml_kind_known(const char *code, int32_t code_len);

/* The decision: call exactly one, once. Expiry is in ms, block-time terms, after ml_block_time(). */
ML_IMPORT("grant") void ml_grant(int64_t expires_at);
ML_IMPORT("grant_aggregates") void ml_grant_aggregates(int64_t k, int64_t expires_at);
ML_IMPORT("deny") void ml_deny(const char *reason, int32_t reason_len);

/* Small helpers for contracts, which have no C library. */
static inline int32_t ml_strlen(const char *text) {
    int32_t n = 0;
    while (text[n]) n++;
    return n;
}

/* Denies with a NUL-terminated reason. */
static inline void ml_deny_text(const char *reason) { ml_deny(reason, ml_strlen(reason)); }

/* A tiny string builder over a caller's buffer, for denial reasons. */
typedef struct {
    char *data;
    int32_t length;
    int32_t capacity;
} ml_text;

static inline void ml_text_append(ml_text *text, const char *bytes, int32_t length) {
    for (int32_t i = 0; i < length && text->length < text->capacity; i++) text->data[text->length++] = bytes[i];
}

static inline void ml_text_append_cstr(ml_text *text, const char *cstr) { ml_text_append(text, cstr, ml_strlen(cstr)); }

static inline void ml_text_append_int(ml_text *text, int64_t value) {
    char digits[24];
    int32_t n = 0;
    int negative = value < 0;
    unsigned long long magnitude = negative ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude && n < 24);
    if (negative) ml_text_append(text, "-", 1);
    while (n > 0) ml_text_append(text, &digits[--n], 1);
}

static inline void ml_deny_built(const ml_text *text) { ml_deny(text->data, text->length); }

#define ML_DAY_MS (24LL * 60 * 60 * 1000)

#endif
