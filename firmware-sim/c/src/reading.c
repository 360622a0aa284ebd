#include "reading.h"

#include <string.h>

#include "cbor.h"

static int id_char(char c, int device) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') return 1;
    return device && ((c >= 'A' && c <= 'Z') || c == '.' || c == '_');
}

static int valid_id(const char *id, size_t max, int device) {
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        if (n >= max || !id_char(id[n], device)) return 0;
    }
    return n >= 1;
}

int reading_valid_channel_id(const char *id) { return valid_id(id, CHANNEL_ID_MAX, 0); }
int reading_valid_device_id(const char *id) { return valid_id(id, DEVICE_ID_MAX, 1); }

int reading_encode_payload(const reading *r, uint8_t *out, size_t cap, size_t *len) {
    if (r->record_count < 1 || r->record_count > READING_MAX_RECORDS) return -1;
    cbor_writer w;
    cbor_writer_init(&w, out, cap);
    /* Keys 1..5 and 0..2 are one-byte keys: ascending order is the deterministic order. */
    cbor_put_map(&w, 5);
    cbor_put_uint(&w, 1);
    cbor_put_text_z(&w, r->channel);
    cbor_put_uint(&w, 2);
    cbor_put_text_z(&w, r->device);
    cbor_put_uint(&w, 3);
    cbor_put_uint(&w, r->seq);
    cbor_put_uint(&w, 4);
    cbor_put_uint(&w, r->time_ms);
    cbor_put_uint(&w, 5);
    cbor_put_array(&w, r->record_count);
    for (size_t i = 0; i < r->record_count; i++) {
        const reading_record *record = &r->records[i];
        cbor_put_map(&w, 3);
        cbor_put_uint(&w, 0);
        cbor_put_text_z(&w, record->code);
        cbor_put_uint(&w, 1);
        cbor_put_text_z(&w, record->unit);
        cbor_put_uint(&w, 2);
        if (record->is_float) {
            cbor_put_double(&w, record->float_value);
        } else {
            cbor_put_int(&w, record->integer_value);
        }
    }
    if (w.error != CBOR_OK) return -1;
    *len = w.len;
    return 0;
}

const reading_kind reading_kinds[] = {
    {"bp", "blood pressure: systolic 8480-6 and diastolic 8462-4, integers in mm[Hg]"},
    {"glucose", "capillary glucose 41653-7, integer mg/dL"},
    {"glucose-mmol", "blood glucose 15074-8, mmol/L with one decimal (a float)"},
    {"temperature", "body temperature 8310-5, Cel with one decimal (a float)"},
    {"heart-rate", "heart rate 8867-4, integer /min"},
    {"spo2", "oxygen saturation 59408-5, integer %"},
    {"vitals", "heart rate, SpO2 and body temperature in one reading (three records)"},
    {NULL, NULL},
};

const reading_kind *reading_kind_named(const char *name) {
    for (const reading_kind *kind = reading_kinds; kind->name != NULL; kind++) {
        if (strcmp(kind->name, name) == 0) return kind;
    }
    return NULL;
}

/* SplitMix64: one well-mixed 64-bit value per (seed, seq, draw). */
static uint64_t mix(uint64_t x) {
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* A value in lo..hi drawn from the state. */
static int64_t draw(uint64_t *state, int64_t lo, int64_t hi) {
    *state = mix(*state);
    return lo + (int64_t)(*state % (uint64_t)(hi - lo + 1));
}

static void integer_record(reading_record *record, const char *code, const char *unit, int64_t value) {
    record->code = code;
    record->unit = unit;
    record->is_float = 0;
    record->integer_value = value;
    record->float_value = 0;
}

/* A value with one decimal, tenths/10.0: the double nearest to it, as a parser of "36.6" gives. */
static void tenths_record(reading_record *record, const char *code, const char *unit, int64_t tenths) {
    record->code = code;
    record->unit = unit;
    record->is_float = 1;
    record->integer_value = 0;
    record->float_value = (double)tenths / 10.0;
}

void reading_sample(const reading_kind *kind, uint64_t seed, uint64_t seq, reading *r) {
    uint64_t state = mix(seed ^ mix(seq));
    const char *name = kind->name;
    r->record_count = 0;
    if (strcmp(name, "bp") == 0) {
        int64_t systolic = draw(&state, 105, 150);
        int64_t diastolic = draw(&state, 60, systolic - 35 < 95 ? systolic - 35 : 95);
        integer_record(&r->records[0], "8480-6", "mm[Hg]", systolic);
        integer_record(&r->records[1], "8462-4", "mm[Hg]", diastolic);
        r->record_count = 2;
    } else if (strcmp(name, "glucose") == 0) {
        integer_record(&r->records[0], "41653-7", "mg/dL", draw(&state, 70, 180));
        r->record_count = 1;
    } else if (strcmp(name, "glucose-mmol") == 0) {
        tenths_record(&r->records[0], "15074-8", "mmol/L", draw(&state, 39, 100));
        r->record_count = 1;
    } else if (strcmp(name, "temperature") == 0) {
        tenths_record(&r->records[0], "8310-5", "Cel", draw(&state, 360, 379));
        r->record_count = 1;
    } else if (strcmp(name, "heart-rate") == 0) {
        integer_record(&r->records[0], "8867-4", "/min", draw(&state, 55, 110));
        r->record_count = 1;
    } else if (strcmp(name, "spo2") == 0) {
        integer_record(&r->records[0], "59408-5", "%", draw(&state, 92, 100));
        r->record_count = 1;
    } else if (strcmp(name, "vitals") == 0) {
        integer_record(&r->records[0], "8867-4", "/min", draw(&state, 55, 110));
        integer_record(&r->records[1], "59408-5", "%", draw(&state, 92, 100));
        tenths_record(&r->records[2], "8310-5", "Cel", draw(&state, 360, 379));
        r->record_count = 3;
    }
}
