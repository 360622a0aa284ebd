/*
 * A reading's payload (PROTOCOL.md, "Payload map") and the kinds of measurement this device can
 * simulate.
 */
#ifndef MEDLEDGER_READING_H
#define MEDLEDGER_READING_H

#include <stddef.h>
#include <stdint.h>

/* The protocol's limits. */
#define READING_MAX_RECORDS 16
#define READING_MAX_BYTES 1024 /* a whole signed reading, as a manager accepts it */
#define CHANNEL_ID_MAX 32
#define DEVICE_ID_MAX 64

/* One measurement: {0: LOINC code, 1: UCUM unit, 2: value}. */
typedef struct {
    const char *code;
    const char *unit;
    int is_float;  /* 0: integer_value is sent; 1: float_value is sent */
    int64_t integer_value;
    double float_value;
} reading_record;

typedef struct {
    const char *channel;
    const char *device;
    uint64_t seq;
    uint64_t time_ms;
    size_t record_count;
    reading_record records[READING_MAX_RECORDS];
} reading;

/* Whether an id has the protocol's syntax: channel [a-z0-9-]{1,32}, device [A-Za-z0-9._-]{1,64}. */
int reading_valid_channel_id(const char *id);
int reading_valid_device_id(const char *id);

/* Writes the payload map {1: channel, 2: device, 3: seq, 4: time, 5: [records]} in
 * deterministic CBOR. Returns 0, or -1 when out is too small or the reading has 0 or more than
 * 16 records. */
int reading_encode_payload(const reading *r, uint8_t *out, size_t cap, size_t *len);

/* A simulated sensor: which records a sample holds and how its values are drawn. */
typedef struct {
    const char *name;        /* the --kind value */
    const char *description; /* for --help */
} reading_kind;

/* The kinds, terminated by an entry whose name is NULL. */
extern const reading_kind reading_kinds[];

/* The kind named name, or NULL. */
const reading_kind *reading_kind_named(const char *name);

/* Fills r's records with a plausible sample of kind, drawn deterministically from (seed, seq).
 * The code and unit strings are static. */
void reading_sample(const reading_kind *kind, uint64_t seed, uint64_t seq, reading *r);

#endif
