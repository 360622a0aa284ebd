/*
 * medledger-device: a reference sensor device for the MedLedger wire protocol (PROTOCOL.md).
 *
 * It samples a simulated sensor, signs each reading as COSE_Sign1 with its own key, publishes it
 * at QoS 1 on medledger/v1/{channel}/readings/{device}, keeps it in a fixed ring until a
 * "committed" (or "rejected") receipt arrives on medledger/v1/{channel}/receipts/{device}, signed
 * by one of the channel's managers whose public keys it was given (--manager-key), resends every
 * kept reading after each (re)connect, and fails over along its list of brokers.
 *
 * Written as firmware is: one thread, one loop, fixed buffers, no allocation by this program
 * (libmosquitto and OpenSSL allocate inside their own calls; a port to a microcontroller would
 * give them static pools), every return code checked. Progress goes to standard output as one
 * machine-readable line per event (README.md lists them); errors go to standard error.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "cose.h"
#include "reading.h"
#include "receipt.h"
#include "ring.h"
#include "seqfile.h"

#define MAX_BROKERS 8
#define HOST_MAX 256
#define TOPIC_MAX 160
#define LINK_STABLE_MS 5000 /* a connection up this long resets the reconnect back-off */

enum exit_code {
    EXIT_DONE = 0,      /* finished (or stopped by a signal) */
    EXIT_FAILURE_ = 1,  /* a runtime failure: key, seq file, signing */
    EXIT_USAGE = 2,     /* bad command line */
    EXIT_TIMEOUT = 3,   /* --timeout-ms passed */
    EXIT_REJECTED = 4,  /* --exit-when-committed: everything answered, some readings rejected */
};

typedef struct {
    char host[HOST_MAX];
    int port;
} broker_address;

/* --manager-key ID=PEMFILE */
typedef struct {
    char id[RECEIPT_MANAGER_ID_MAX + 1];
    const char *path;
} manager_key;

typedef struct {
    broker_address brokers[MAX_BROKERS];
    size_t broker_count;
    manager_key manager_keys[RECEIPT_MAX_MANAGERS];
    size_t manager_key_count;
    const char *channel;
    const char *device;
    const char *key_path;
    const char *seq_path;
    const reading_kind *kind;
    uint64_t count; /* 0: no limit */
    int64_t interval_ms;
    int has_start_time;
    uint64_t start_time_ms;
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
    const char *username;
    const char *password;
    const char *client_id;
    int exit_when_committed;
    int64_t timeout_ms;        /* 0: none */
    int64_t resend_ms;         /* 0: resend only after a (re)connect */
    int64_t connect_timeout_ms;
    int64_t reconnect_min_ms;
    int64_t reconnect_max_ms;
    int keepalive_s;
    uint64_t seed;
} options;

typedef enum {
    LINK_IDLE,       /* no connection; next attempt at next_attempt_ms */
    LINK_CONNECTING, /* TCP/TLS and CONNECT under way, waiting for CONNACK */
    LINK_CONNECTED,  /* CONNACK accepted, waiting for SUBACK of the receipts topic (the connect
                        timeout covers both waits) */
    LINK_READY,      /* subscribed: readings are published as they are sampled */
} link_state;

/* All of the device's state, allocated statically. */
static struct {
    options opt;
    cose_signer signer;
    receipt_trust trust;       /* the managers whose signed receipts count */
    ring ring;
    struct mosquitto *mosq;
    link_state link;
    size_t broker;             /* index of the broker in use or being tried */
    int64_t attempt_started_ms;
    int64_t next_attempt_ms;
    int64_t ready_since_ms;
    int64_t backoff_ms;
    size_t failed_attempts;    /* consecutive failed attempts, across brokers */
    int subscribe_mid;
    int connack_refused;       /* the CONNACK code when the broker refused, else 0 */
    int link_dropped;          /* on_disconnect ran */
    int link_dropped_rc;
    uint64_t last_seq;         /* the last seq used, as persisted */
    uint64_t sampled;          /* readings sampled in this run */
    uint64_t committed;
    uint64_t rejected;
    uint64_t untrusted;        /* receipts ignored as unsigned, of an unknown signer or a bad signature */
    int ring_full_reported;
    int64_t next_sample_ms;
    char readings_topic[TOPIC_MAX];
    char receipts_topic[TOPIC_MAX];
} dev;

static volatile sig_atomic_t stop_requested = 0;
static char stdout_buffer[4096];

static void on_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

/* One event line on standard output, flushed at once so a supervising process sees it. */
static void emit(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfprintf(stdout, format, args);
    va_end(args);
    fputc('\n', stdout);
    fflush(stdout);
}

static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("error: ", stderr);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
}

static int64_t monotonic_ms(void) {
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) return 0;
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static uint64_t wall_clock_ms(void) {
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0 || now.tv_sec < 0) return 0;
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)(now.tv_nsec / 1000000);
}

static void sleep_ms(int64_t ms) {
    if (ms <= 0) return;
    struct timespec pause = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR && !stop_requested) {
    }
}

/* ---------------------------------------------------------------- command line */

static void usage(FILE *to) {
    fputs("usage: medledger-device --broker HOST:PORT [--broker HOST:PORT ...] --channel ID --device ID\n"
          "                        --key PEM --seq-file PATH --manager-key ID=PEM [--manager-key ...] [options]\n"
          "\n"
          "  --broker HOST:PORT     a broker; repeat for a fail-over list (tried in order, up to 8)\n"
          "  --channel ID           the channel, [a-z0-9-]{1,32}\n"
          "  --device ID            the device id, [A-Za-z0-9._-]{1,64}: kid, MQTT username and client id\n"
          "  --key PEM              the signing key: PKCS#8 Ed25519 (alg -8) or P-256 (ES256, alg -7)\n"
          "  --seq-file PATH        the persisted sequence counter (created when missing)\n"
          "  --manager-key ID=PEM   a manager of the channel, by its id in the genesis, and its public key\n"
          "                         (PEM, Ed25519 or P-256; `medledger channel manager-keys` writes them);\n"
          "                         repeat for each manager, up to 8, at least one. A committed or rejected\n"
          "                         receipt counts only when one of them signed it for this device's topic\n"
          "  --kind KIND            what to sample (default bp):\n",
          to);
    for (const reading_kind *kind = reading_kinds; kind->name != NULL; kind++) {
        fprintf(to, "                           %-13s %s\n", kind->name, kind->description);
    }
    fputs("  --count N              sample N readings, then stop sampling (default 0: no limit)\n"
          "  --interval-ms MS       time between samples (default 1000)\n"
          "  --start-time-ms T      a simulated clock: the n-th reading of this run has time T + n * interval\n"
          "                         (default: the real clock)\n"
          "  --seed N               seed of the simulated values (default 1)\n"
          "  --exit-when-committed  exit 0 once all --count readings are committed (4 if some were rejected)\n"
          "  --timeout-ms MS        exit 3 after MS milliseconds (default 0: never)\n"
          "  --resend-ms MS         also resend a reading unanswered for MS while connected (default 60000;\n"
          "                         0: only after each connect)\n"
          "  --connect-timeout-ms MS  give up on a broker that has not accepted the connection (default 5000)\n"
          "  --reconnect-min-ms MS, --reconnect-max-ms MS  back-off between rounds (default 250, 4000)\n"
          "  --keepalive S          MQTT keep-alive in seconds (default 30)\n"
          "  --client-id ID         the MQTT client id (default: the device id)\n"
          "  --username U, --password P  MQTT credentials (username default: the device id)\n"
          "  --tls-ca FILE          connect with TLS, trusting this CA\n"
          "  --cert FILE, --key-file FILE  a TLS client certificate and its key\n"
          "  --help                 this text\n"
          "\n"
          "Exit status: 0 done or stopped by a signal, 1 runtime failure, 2 usage, 3 timeout, 4 rejections.\n",
          to);
}

static int parse_u64(const char *text, uint64_t *out) {
    if (text[0] < '0' || text[0] > '9') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') return -1;
    *out = (uint64_t)value;
    return 0;
}

static int parse_ms(const char *name, const char *text, int64_t *out) {
    uint64_t value;
    if (parse_u64(text, &value) != 0 || value > (uint64_t)INT32_MAX * 1000) {
        fail("%s wants milliseconds as a whole number, not '%s'", name, text);
        return -1;
    }
    *out = (int64_t)value;
    return 0;
}

static int parse_broker(const char *text, broker_address *out) {
    const char *colon = strrchr(text, ':');
    uint64_t port;
    if (colon == NULL || colon == text || (size_t)(colon - text) >= HOST_MAX || parse_u64(colon + 1, &port) != 0 ||
        port < 1 || port > 65535) {
        fail("--broker wants HOST:PORT (port 1-65535), not '%s'", text);
        return -1;
    }
    memcpy(out->host, text, (size_t)(colon - text));
    out->host[colon - text] = '\0';
    out->port = (int)port;
    return 0;
}

/* --manager-key ID=PEMFILE: the id as the genesis names the manager, its public key's file. */
static int parse_manager_key(const char *text, options *o) {
    const char *equals = strchr(text, '=');
    if (equals == NULL || equals == text || equals[1] == '\0') {
        fail("--manager-key wants ID=PEMFILE (a manager's id and its PEM public key), not '%s'", text);
        return -1;
    }
    size_t id_len = (size_t)(equals - text);
    if (o->manager_key_count == RECEIPT_MAX_MANAGERS) {
        fail("at most %d --manager-key", RECEIPT_MAX_MANAGERS);
        return -1;
    }
    manager_key *key = &o->manager_keys[o->manager_key_count];
    if (id_len > RECEIPT_MANAGER_ID_MAX) {
        fail("--manager-key: the manager id '%.*s' is not [A-Za-z0-9._-]{1,64}", (int)id_len, text);
        return -1;
    }
    memcpy(key->id, text, id_len);
    key->id[id_len] = '\0';
    if (!reading_valid_device_id(key->id)) {
        fail("--manager-key: the manager id '%s' is not [A-Za-z0-9._-]{1,64}", key->id);
        return -1;
    }
    for (size_t i = 0; i < o->manager_key_count; i++) {
        if (strcmp(o->manager_keys[i].id, key->id) == 0) {
            fail("--manager-key names %s twice", key->id);
            return -1;
        }
    }
    key->path = equals + 1;
    o->manager_key_count++;
    return 0;
}

static int parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->kind = reading_kind_named("bp");
    o->interval_ms = 1000;
    o->resend_ms = 60000;
    o->connect_timeout_ms = 5000;
    o->reconnect_min_ms = 250;
    o->reconnect_max_ms = 4000;
    o->keepalive_s = 30;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (strcmp(name, "--help") == 0) {
            usage(stdout);
            exit(EXIT_DONE);
        }
        if (strcmp(name, "--exit-when-committed") == 0) {
            o->exit_when_committed = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fail("%s: unknown option or missing value (see --help)", name);
            return -1;
        }
        const char *value = argv[++i];
        if (strcmp(name, "--broker") == 0) {
            if (o->broker_count == MAX_BROKERS) {
                fail("at most %d brokers", MAX_BROKERS);
                return -1;
            }
            if (parse_broker(value, &o->brokers[o->broker_count]) != 0) return -1;
            o->broker_count++;
        } else if (strcmp(name, "--channel") == 0) {
            o->channel = value;
        } else if (strcmp(name, "--device") == 0) {
            o->device = value;
        } else if (strcmp(name, "--key") == 0) {
            o->key_path = value;
        } else if (strcmp(name, "--seq-file") == 0) {
            o->seq_path = value;
        } else if (strcmp(name, "--manager-key") == 0) {
            if (parse_manager_key(value, o) != 0) return -1;
        } else if (strcmp(name, "--kind") == 0) {
            o->kind = reading_kind_named(value);
            if (o->kind == NULL) {
                fail("--kind: unknown kind '%s' (see --help)", value);
                return -1;
            }
        } else if (strcmp(name, "--count") == 0) {
            if (parse_u64(value, &o->count) != 0) {
                fail("--count wants a whole number, not '%s'", value);
                return -1;
            }
        } else if (strcmp(name, "--interval-ms") == 0) {
            if (parse_ms(name, value, &o->interval_ms) != 0) return -1;
        } else if (strcmp(name, "--start-time-ms") == 0) {
            if (parse_u64(value, &o->start_time_ms) != 0) {
                fail("--start-time-ms wants milliseconds since the Unix epoch, not '%s'", value);
                return -1;
            }
            o->has_start_time = 1;
        } else if (strcmp(name, "--seed") == 0) {
            if (parse_u64(value, &o->seed) != 0) {
                fail("--seed wants a whole number, not '%s'", value);
                return -1;
            }
        } else if (strcmp(name, "--timeout-ms") == 0) {
            if (parse_ms(name, value, &o->timeout_ms) != 0) return -1;
        } else if (strcmp(name, "--resend-ms") == 0) {
            if (parse_ms(name, value, &o->resend_ms) != 0) return -1;
        } else if (strcmp(name, "--connect-timeout-ms") == 0) {
            if (parse_ms(name, value, &o->connect_timeout_ms) != 0) return -1;
        } else if (strcmp(name, "--reconnect-min-ms") == 0) {
            if (parse_ms(name, value, &o->reconnect_min_ms) != 0) return -1;
        } else if (strcmp(name, "--reconnect-max-ms") == 0) {
            if (parse_ms(name, value, &o->reconnect_max_ms) != 0) return -1;
        } else if (strcmp(name, "--keepalive") == 0) {
            uint64_t seconds;
            if (parse_u64(value, &seconds) != 0 || seconds < 5 || seconds > 65535) {
                fail("--keepalive wants seconds from 5 to 65535, not '%s'", value);
                return -1;
            }
            o->keepalive_s = (int)seconds;
        } else if (strcmp(name, "--client-id") == 0) {
            o->client_id = value;
        } else if (strcmp(name, "--username") == 0) {
            o->username = value;
        } else if (strcmp(name, "--password") == 0) {
            o->password = value;
        } else if (strcmp(name, "--tls-ca") == 0) {
            o->tls_ca = value;
        } else if (strcmp(name, "--cert") == 0) {
            o->tls_cert = value;
        } else if (strcmp(name, "--key-file") == 0) {
            o->tls_key = value;
        } else {
            fail("unknown option %s (see --help)", name);
            return -1;
        }
    }
    if (o->broker_count == 0) return fail("at least one --broker HOST:PORT is needed"), -1;
    if (o->channel == NULL) return fail("--channel is needed"), -1;
    if (!reading_valid_channel_id(o->channel)) return fail("--channel '%s' is not [a-z0-9-]{1,32}", o->channel), -1;
    if (o->device == NULL) return fail("--device is needed"), -1;
    if (!reading_valid_device_id(o->device))
        return fail("--device '%s' is not [A-Za-z0-9._-]{1,64}", o->device), -1;
    if (o->key_path == NULL) return fail("--key (the device's PEM private key) is needed"), -1;
    if (o->seq_path == NULL) return fail("--seq-file is needed: without it a restart would reuse seqs"), -1;
    if (o->manager_key_count == 0)
        return fail("at least one --manager-key ID=PEMFILE is needed: a committed or rejected receipt counts only "
                    "when a manager of the channel signed it"),
               -1;
    if (o->exit_when_committed && o->count == 0) return fail("--exit-when-committed needs --count N"), -1;
    if ((o->tls_cert == NULL) != (o->tls_key == NULL)) return fail("--cert and --key-file go together"), -1;
    if (o->tls_cert != NULL && o->tls_ca == NULL) return fail("--cert needs --tls-ca"), -1;
    if (o->password != NULL && o->username == NULL) o->username = o->device;
    if (o->username == NULL) o->username = o->device;
    if (o->client_id == NULL) o->client_id = o->device;
    if (o->reconnect_min_ms < 1) o->reconnect_min_ms = 1;
    if (o->reconnect_max_ms < o->reconnect_min_ms) o->reconnect_max_ms = o->reconnect_min_ms;
    return 0;
}

/* ---------------------------------------------------------------- publishing */

static const broker_address *current_broker(void) { return &dev.opt.brokers[dev.broker]; }

/* Hands one kept reading to libmosquitto (QoS 1). The same bytes every time: a manager knows a
 * retransmission by them. */
static int publish_slot(ring_slot *slot, int64_t now) {
    int rc = mosquitto_publish(dev.mosq, NULL, dev.readings_topic, (int)slot->len, slot->bytes, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        fail("publishing seq %llu: %s", (unsigned long long)slot->seq, mosquitto_strerror(rc));
        return -1;
    }
    emit("%s seq=%llu", slot->sent ? "resent" : "published", (unsigned long long)slot->seq);
    slot->sent = 1;
    slot->last_sent_ms = now;
    return 0;
}

/* After a (re)connect: every kept reading, oldest first. */
static void resend_all(int64_t now) {
    for (size_t i = 0; i < dev.ring.count; i++) {
        ring_slot *slot = ring_at(&dev.ring, i);
        if (slot->live && publish_slot(slot, now) != 0) return;
    }
}

/* While connected: readings left unanswered for --resend-ms. */
static void resend_due(int64_t now) {
    for (size_t i = 0; i < dev.ring.count; i++) {
        ring_slot *slot = ring_at(&dev.ring, i);
        if (slot->live && (!slot->sent || now - slot->last_sent_ms >= dev.opt.resend_ms)) {
            if (publish_slot(slot, now) != 0) return;
        }
    }
}

/* ---------------------------------------------------------------- sampling */

/* Takes one sample: a new seq, persisted first, then the signed reading into the ring.
 * Returns 0, 1 when the ring is full (nothing sampled), or -1 on a failure that must stop the
 * device (the seq cannot be persisted, or signing failed). */
static int sample(int64_t now) {
    if (ring_full(&dev.ring)) {
        if (!dev.ring_full_reported) {
            emit("ring-full capacity=%d", RING_CAPACITY);
            dev.ring_full_reported = 1;
        }
        return 1;
    }
    dev.ring_full_reported = 0;
    char error[512];
    uint64_t seq = dev.last_seq + 1;
    if (seqfile_write(dev.opt.seq_path, seq, error, sizeof error) != 0) {
        fail("cannot persist seq %llu, so no reading can be sampled: %s", (unsigned long long)seq, error);
        return -1;
    }
    dev.last_seq = seq;

    static reading r; /* static: the records array is the largest thing on the stack otherwise */
    r.channel = dev.opt.channel;
    r.device = dev.opt.device;
    r.seq = seq;
    r.time_ms = dev.opt.has_start_time ? dev.opt.start_time_ms + dev.sampled * (uint64_t)dev.opt.interval_ms
                                       : wall_clock_ms();
    reading_sample(dev.opt.kind, dev.opt.seed, seq, &r);

    static uint8_t message[READING_MAX_BYTES];
    size_t len;
    if (cose_sign_reading(&dev.signer, &r, message, sizeof message, &len, error, sizeof error) != 0) {
        fail("%s", error);
        return -1;
    }
    ring_slot *slot = ring_push(&dev.ring, seq, message, len);
    if (slot == NULL) { /* cannot happen: checked above */
        fail("the ring refused seq %llu", (unsigned long long)seq);
        return -1;
    }
    dev.sampled++;
    emit("sampled seq=%llu time=%llu bytes=%zu", (unsigned long long)seq, (unsigned long long)r.time_ms, len);
    if (dev.link == LINK_READY) (void)publish_slot(slot, now);
    return 0;
}

/* ---------------------------------------------------------------- receipts */

/* A receipt counts only when receipt_open trusts it: a committed or rejected one must be signed by
 * a manager given with --manager-key, for this device's receipts topic. Anything else is ignored:
 * the reading stays in the ring and is resent as before. */
static void handle_receipt(const uint8_t *bytes, size_t len) {
    receipt rc;
    char signer[RECEIPT_MANAGER_ID_MAX + 1];
    char error[512];
    int verdict = receipt_open(&dev.trust, dev.receipts_topic, bytes, len, &rc, signer, error, sizeof error);
    if (verdict == RECEIPT_MALFORMED) {
        fail("ignoring a malformed receipt (%zu bytes): %s", len, error);
        emit("bad-receipt bytes=%zu", len);
        return;
    }
    if (verdict != RECEIPT_TRUSTED) {
        dev.untrusted++;
        fail("ignoring an untrusted receipt (%zu bytes, %s): %s", len, receipt_why(verdict), error);
        emit("untrusted-receipt why=%s bytes=%zu", receipt_why(verdict), len);
        return;
    }
    ring_slot *slot = ring_find(&dev.ring, rc.seq);
    if (slot == NULL) {
        /* a reading already answered (a duplicate receipt), or one this run never held */
        emit("stale seq=%llu status=%s", (unsigned long long)rc.seq, receipt_status_name(rc.status));
        return;
    }
    switch (rc.status) {
    case RECEIPT_ACCEPTED:
        slot->accepted = 1;
        emit("accepted seq=%llu", (unsigned long long)rc.seq);
        break;
    case RECEIPT_BUSY:
        /* not taken now: the reading stays in the ring and is resent on the next resend round */
        emit("busy seq=%llu", (unsigned long long)rc.seq);
        break;
    case RECEIPT_COMMITTED: {
        char hash[65];
        for (int i = 0; i < 32; i++) snprintf(hash + 2 * i, 3, "%02x", rc.block_hash[i]);
        ring_release(&dev.ring, slot);
        dev.committed++;
        emit("committed seq=%llu height=%llu block=%s signer=%s", (unsigned long long)rc.seq,
             (unsigned long long)rc.height, hash, signer);
        break;
    }
    case RECEIPT_REJECTED:
        ring_release(&dev.ring, slot);
        dev.rejected++;
        emit("rejected seq=%llu signer=%s reason=%s", (unsigned long long)rc.seq, signer, rc.reason);
        break;
    }
}

/* ---------------------------------------------------------------- the link to a broker */

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
    (void)obj;
    if (rc != 0) {
        dev.connack_refused = rc;
        return;
    }
    dev.link = LINK_CONNECTED;
    emit("broker %s:%d", current_broker()->host, current_broker()->port);
    int sub = mosquitto_subscribe(mosq, &dev.subscribe_mid, dev.receipts_topic, 1);
    if (sub != MOSQ_ERR_SUCCESS) {
        fail("subscribing to %s: %s", dev.receipts_topic, mosquitto_strerror(sub));
        dev.link_dropped = 1;
        dev.link_dropped_rc = sub;
    }
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted) {
    (void)mosq;
    (void)obj;
    if (mid != dev.subscribe_mid || dev.link != LINK_CONNECTED) return;
    if (qos_count < 1 || granted[0] > 2) {
        /* An ACL that hides the receipts: readings still go out, but none can ever be released. */
        fail("the broker refused the subscription to %s; no receipt will arrive", dev.receipts_topic);
    }
    dev.link = LINK_READY;
    dev.ready_since_ms = monotonic_ms();
    resend_all(dev.ready_since_ms);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *message) {
    (void)mosq;
    (void)obj;
    if (message->topic == NULL || strcmp(message->topic, dev.receipts_topic) != 0) return;
    if (message->payloadlen < 0) return;
    handle_receipt((const uint8_t *)message->payload, (size_t)message->payloadlen);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq;
    (void)obj;
    dev.link_dropped = 1;
    dev.link_dropped_rc = rc;
}

static const char *loop_reason(int rc) {
    if (rc == MOSQ_ERR_ERRNO) return strerror(errno);
    return mosquitto_strerror(rc);
}

/* A fresh client for one attempt: no state of an earlier connection survives in libmosquitto
 * (its own retry queue would otherwise resend to the new broker behind the device's back). */
static int prepare_client(char *error, size_t error_cap) {
    int rc;
    if (dev.mosq == NULL) {
        dev.mosq = mosquitto_new(dev.opt.client_id, true, NULL);
        if (dev.mosq == NULL) {
            snprintf(error, error_cap, "mosquitto_new: %s", strerror(errno));
            return -1;
        }
    } else if ((rc = mosquitto_reinitialise(dev.mosq, dev.opt.client_id, true, NULL)) != MOSQ_ERR_SUCCESS) {
        snprintf(error, error_cap, "mosquitto_reinitialise: %s", mosquitto_strerror(rc));
        return -1;
    }
    mosquitto_connect_callback_set(dev.mosq, on_connect);
    mosquitto_subscribe_callback_set(dev.mosq, on_subscribe);
    mosquitto_message_callback_set(dev.mosq, on_message);
    mosquitto_disconnect_callback_set(dev.mosq, on_disconnect);
    if ((rc = mosquitto_int_option(dev.mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311)) != MOSQ_ERR_SUCCESS) {
        snprintf(error, error_cap, "setting MQTT 3.1.1: %s", mosquitto_strerror(rc));
        return -1;
    }
    /* 100 in flight: libmosquitto's default of 20 is fine, 0 (no limit) is pathologically slow. */
    if ((rc = mosquitto_max_inflight_messages_set(dev.mosq, 100)) != MOSQ_ERR_SUCCESS) {
        snprintf(error, error_cap, "setting the in-flight limit: %s", mosquitto_strerror(rc));
        return -1;
    }
    if ((rc = mosquitto_username_pw_set(dev.mosq, dev.opt.username, dev.opt.password)) != MOSQ_ERR_SUCCESS) {
        snprintf(error, error_cap, "setting the username: %s", mosquitto_strerror(rc));
        return -1;
    }
    if (dev.opt.tls_ca != NULL &&
        (rc = mosquitto_tls_set(dev.mosq, dev.opt.tls_ca, NULL, dev.opt.tls_cert, dev.opt.tls_key, NULL)) !=
            MOSQ_ERR_SUCCESS) {
        snprintf(error, error_cap, "TLS set-up with CA %s: %s", dev.opt.tls_ca, mosquitto_strerror(rc));
        return -1;
    }
    return 0;
}

static void close_link(void) {
    if (dev.mosq != NULL) (void)mosquitto_disconnect(dev.mosq); /* fails harmlessly when not connected */
    dev.link = LINK_IDLE;
    dev.connack_refused = 0;
    dev.link_dropped = 0;
}

/* The attempt on the current broker failed: try the next one; after a whole round of failures,
 * wait (exponential back-off) before the next round. */
static void attempt_failed(int64_t now, const char *reason) {
    emit("broker-down %s:%d reason=%s", current_broker()->host, current_broker()->port, reason);
    close_link();
    dev.failed_attempts++;
    dev.broker = (dev.broker + 1) % dev.opt.broker_count;
    if (dev.failed_attempts % dev.opt.broker_count == 0) {
        dev.next_attempt_ms = now + dev.backoff_ms;
        dev.backoff_ms = dev.backoff_ms * 2 > dev.opt.reconnect_max_ms ? dev.opt.reconnect_max_ms : dev.backoff_ms * 2;
    } else {
        dev.next_attempt_ms = now;
    }
}

/* An established connection dropped: after the back-off, try the same broker again first. */
static void link_lost(int64_t now, const char *reason) {
    emit("broker-lost %s:%d reason=%s", current_broker()->host, current_broker()->port, reason);
    close_link();
    dev.next_attempt_ms = now + dev.backoff_ms;
    dev.backoff_ms = dev.backoff_ms * 2 > dev.opt.reconnect_max_ms ? dev.opt.reconnect_max_ms : dev.backoff_ms * 2;
}

static void link_failed(int64_t now, const char *reason) {
    if (dev.link == LINK_CONNECTING) {
        attempt_failed(now, reason);
    } else {
        link_lost(now, reason);
    }
}

static int start_attempt(int64_t now) {
    char error[512];
    if (prepare_client(error, sizeof error) != 0) {
        fail("%s", error);
        return -1;
    }
    const broker_address *broker = current_broker();
    dev.connack_refused = 0;
    dev.link_dropped = 0;
    dev.link = LINK_CONNECTING;
    dev.attempt_started_ms = now;
    int rc = mosquitto_connect_async(dev.mosq, broker->host, broker->port, dev.opt.keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) attempt_failed(now, loop_reason(rc));
    return 0;
}

/* ---------------------------------------------------------------- main */

static int run(void) {
    int64_t started = monotonic_ms();
    dev.next_sample_ms = started;
    dev.next_attempt_ms = started;
    dev.backoff_ms = dev.opt.reconnect_min_ms;
    while (!stop_requested) {
        int64_t now = monotonic_ms();
        if (dev.opt.timeout_ms > 0 && now - started >= dev.opt.timeout_ms) {
            emit("timeout pending=%zu untrusted=%llu", dev.ring.live, (unsigned long long)dev.untrusted);
            return EXIT_TIMEOUT;
        }
        int sampling_done = dev.opt.count > 0 && dev.sampled >= dev.opt.count;
        if (dev.opt.exit_when_committed && sampling_done && dev.ring.live == 0) {
            emit("done sampled=%llu committed=%llu rejected=%llu untrusted=%llu", (unsigned long long)dev.sampled,
                 (unsigned long long)dev.committed, (unsigned long long)dev.rejected,
                 (unsigned long long)dev.untrusted);
            return dev.rejected > 0 ? EXIT_REJECTED : EXIT_DONE;
        }

        if (dev.link == LINK_IDLE && now >= dev.next_attempt_ms) {
            if (start_attempt(now) != 0) return EXIT_FAILURE_;
        } else if ((dev.link == LINK_CONNECTING || dev.link == LINK_CONNECTED) &&
                   now - dev.attempt_started_ms >= dev.opt.connect_timeout_ms) {
            /* No CONNACK, or no SUBACK for the receipts topic, in time: try the next broker. */
            char reason[64];
            snprintf(reason, sizeof reason, "no %s within %lld ms", dev.link == LINK_CONNECTING ? "CONNACK" : "SUBACK",
                     (long long)dev.opt.connect_timeout_ms);
            dev.link = LINK_CONNECTING;
            attempt_failed(now, reason);
        } else if (dev.link == LINK_READY) {
            if (now - dev.ready_since_ms >= LINK_STABLE_MS) {
                dev.backoff_ms = dev.opt.reconnect_min_ms;
                dev.failed_attempts = 0;
            }
            if (dev.opt.resend_ms > 0) resend_due(now);
        }

        if (!sampling_done && now >= dev.next_sample_ms) {
            int sampled = sample(now);
            if (sampled < 0) return EXIT_FAILURE_;
            if (sampled == 0) dev.next_sample_ms = now + dev.opt.interval_ms;
        }

        /* Wait for the network or the next sample, whichever comes first (at most 50 ms). */
        int64_t wait = 50;
        if (!sampling_done && !ring_full(&dev.ring)) {
            int64_t until_sample = dev.next_sample_ms - monotonic_ms();
            if (until_sample < wait) wait = until_sample < 0 ? 0 : until_sample;
        }
        if (dev.link == LINK_IDLE) {
            int64_t until_attempt = dev.next_attempt_ms - monotonic_ms();
            if (until_attempt < wait) wait = until_attempt < 0 ? 0 : until_attempt;
            sleep_ms(wait);
            continue;
        }
        int rc = mosquitto_loop(dev.mosq, (int)wait, 1);
        now = monotonic_ms();
        if (dev.connack_refused != 0) {
            char reason[128];
            snprintf(reason, sizeof reason, "refused: %s", mosquitto_connack_string(dev.connack_refused));
            attempt_failed(now, reason);
        } else if (rc != MOSQ_ERR_SUCCESS) {
            link_failed(now, loop_reason(rc));
        } else if (dev.link_dropped) {
            link_failed(now, dev.link_dropped_rc == 0 ? "disconnected" : mosquitto_strerror(dev.link_dropped_rc));
        }
    }
    emit("stopped pending=%zu untrusted=%llu", dev.ring.live, (unsigned long long)dev.untrusted);
    return EXIT_DONE;
}

int main(int argc, char **argv) {
    if (setvbuf(stdout, stdout_buffer, _IOLBF, sizeof stdout_buffer) != 0) {
        fail("cannot set up standard output");
        return EXIT_FAILURE_;
    }
    if (parse_options(argc, argv, &dev.opt) != 0) return EXIT_USAGE;

    int n = snprintf(dev.readings_topic, sizeof dev.readings_topic, "medledger/v1/%s/readings/%s", dev.opt.channel,
                     dev.opt.device);
    int m = snprintf(dev.receipts_topic, sizeof dev.receipts_topic, "medledger/v1/%s/receipts/%s", dev.opt.channel,
                     dev.opt.device);
    if (n < 0 || m < 0 || (size_t)n >= sizeof dev.readings_topic || (size_t)m >= sizeof dev.receipts_topic) {
        fail("the topics do not fit %d bytes", TOPIC_MAX);
        return EXIT_USAGE;
    }

    char error[512];
    if (cose_signer_load_pem(&dev.signer, dev.opt.key_path, error, sizeof error) != 0) {
        fail("%s", error);
        return EXIT_FAILURE_;
    }
    receipt_trust_init(&dev.trust);
    for (size_t i = 0; i < dev.opt.manager_key_count; i++) {
        const manager_key *key = &dev.opt.manager_keys[i];
        if (receipt_trust_add_pem(&dev.trust, key->id, key->path, error, sizeof error) != 0) {
            fail("--manager-key: %s", error);
            receipt_trust_free(&dev.trust);
            cose_signer_free(&dev.signer);
            return EXIT_FAILURE_;
        }
    }
    if (seqfile_read(dev.opt.seq_path, &dev.last_seq, error, sizeof error) != 0) {
        fail("%s", error);
        receipt_trust_free(&dev.trust);
        cose_signer_free(&dev.signer);
        return EXIT_FAILURE_;
    }
    if (!dev.opt.has_start_time && wall_clock_ms() < UINT64_C(1577836800000)) {
        fprintf(stderr, "warning: the clock reads before 2020; readings will carry wrong times (set it first)\n");
    }
    ring_init(&dev.ring);

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    /* A supervisor may have started us with these blocked (the mask is inherited): unblock them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (sigaction(SIGINT, &action, NULL) != 0 || sigaction(SIGTERM, &action, NULL) != 0 ||
        sigaction(SIGPIPE, &ignore, NULL) != 0 || sigprocmask(SIG_UNBLOCK, &stop_signals, NULL) != 0) {
        fail("installing signal handlers: %s", strerror(errno));
        receipt_trust_free(&dev.trust);
        cose_signer_free(&dev.signer);
        return EXIT_FAILURE_;
    }

    int rc = mosquitto_lib_init();
    if (rc != MOSQ_ERR_SUCCESS) {
        fail("mosquitto_lib_init: %s", mosquitto_strerror(rc));
        receipt_trust_free(&dev.trust);
        cose_signer_free(&dev.signer);
        return EXIT_FAILURE_;
    }
    emit("start device=%s channel=%s alg=%d next-seq=%llu capacity=%d brokers=%zu managers=%zu", dev.opt.device,
         dev.opt.channel, dev.signer.alg, (unsigned long long)(dev.last_seq + 1), RING_CAPACITY, dev.opt.broker_count,
         dev.trust.count);

    int status = run();

    if (dev.mosq != NULL) {
        (void)mosquitto_disconnect(dev.mosq);
        mosquitto_destroy(dev.mosq);
    }
    mosquitto_lib_cleanup();
    receipt_trust_free(&dev.trust);
    cose_signer_free(&dev.signer);
    return status;
}
