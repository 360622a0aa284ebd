/*
 * mqtt-bare: the plain-libmosquitto side of MedLedger's MQTT throughput comparison.
 *
 * One process, two connections (each with libmosquitto's own network thread, loop_start): a
 * subscriber on bench/<tag>/#, and a publisher that hands COUNT messages of SIZE bytes to
 * mosquitto_publish as fast as it takes them (libmosquitto queues what exceeds its in-flight
 * window). The clock runs from the first publish to the last message received. Prints one JSON
 * line.
 *
 *   mqtt-bare --port P [--host H] [--qos 0|1] [--count N] [--size BYTES] [--inflight N] [--tag T]
 */
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_long received;
static atomic_int subscribed;
static atomic_int connected;
static struct timespec last_receive;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq;
    (void)obj;
    if (rc == 0) atomic_fetch_add(&connected, 1);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted) {
    (void)mosq;
    (void)obj;
    (void)mid;
    (void)count;
    (void)granted;
    atomic_store(&subscribed, 1);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *message) {
    (void)mosq;
    (void)obj;
    (void)message;
    atomic_fetch_add(&received, 1);
    pthread_mutex_lock(&lock);
    clock_gettime(CLOCK_MONOTONIC, &last_receive);
    pthread_mutex_unlock(&lock);
}

static struct mosquitto *make(const char *id, int inflight) {
    struct mosquitto *mosq = mosquitto_new(id, true, NULL);
    if (!mosq) {
        fprintf(stderr, "mosquitto_new failed\n");
        exit(1);
    }
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_max_inflight_messages_set(mosq, (unsigned int)inflight);
    mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, inflight);
    mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, inflight);
    mosquitto_connect_callback_set(mosq, on_connect);
    return mosq;
}

static void wait_for(atomic_int *flag, int value, const char *what) {
    double deadline = now() + 10;
    while (atomic_load(flag) < value) {
        if (now() > deadline) {
            fprintf(stderr, "mqtt-bare: timed out waiting for %s\n", what);
            exit(1);
        }
        usleep(1000);
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    const char *tag = "c";
    int port = 0, qos = 1, size = 64, inflight = 500;
    long count = 100000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--qos")) qos = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--count")) count = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--inflight")) inflight = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tag")) tag = argv[i + 1];
        else {
            fprintf(stderr, "mqtt-bare: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port <= 0 || count <= 0 || size < 8 || (qos != 0 && qos != 1)) {
        fprintf(stderr, "usage: mqtt-bare --port P [--host H] [--qos 0|1] [--count N] [--size BYTES] [--inflight N]\n");
        return 2;
    }
    mosquitto_lib_init();
    char filter[128], topic[128], id[128];
    snprintf(filter, sizeof filter, "bench/%s-%d/#", tag, (int)getpid());
    snprintf(topic, sizeof topic, "bench/%s-%d/x", tag, (int)getpid());

    snprintf(id, sizeof id, "bare-sub-%d", (int)getpid());
    struct mosquitto *sub = make(id, inflight);
    mosquitto_subscribe_callback_set(sub, on_subscribe);
    mosquitto_message_callback_set(sub, on_message);
    snprintf(id, sizeof id, "bare-pub-%d", (int)getpid());
    struct mosquitto *pub = make(id, inflight);
    if (mosquitto_connect(sub, host, port, 60) || mosquitto_connect(pub, host, port, 60)) {
        fprintf(stderr, "mqtt-bare: cannot connect to %s:%d\n", host, port);
        return 1;
    }
    mosquitto_loop_start(sub);
    mosquitto_loop_start(pub);
    wait_for(&connected, 2, "CONNACK");
    mosquitto_subscribe(sub, NULL, filter, qos);
    wait_for(&subscribed, 1, "SUBACK");

    unsigned char *payload = calloc(1, (size_t)size);
    double start = now();
    for (long i = 0; i < count; i++) {
        memcpy(payload, &i, sizeof i);
        int rc = mosquitto_publish(pub, NULL, topic, size, payload, qos, false);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "mqtt-bare: publish failed: %s\n", mosquitto_strerror(rc));
            return 1;
        }
    }
    /* Wait for every message, or for two seconds without one (QoS 0 may lose some). */
    double idle_since = now();
    long seen = 0;
    while (atomic_load(&received) < count) {
        long current = atomic_load(&received);
        if (current != seen) {
            seen = current;
            idle_since = now();
        } else if (now() - idle_since > 2.0) {
            break;
        }
        usleep(200);
    }
    pthread_mutex_lock(&lock);
    double end = (double)last_receive.tv_sec + (double)last_receive.tv_nsec / 1e9;
    pthread_mutex_unlock(&lock);
    long got = atomic_load(&received);
    double seconds = end - start;
    printf("{\"impl\":\"c\",\"qos\":%d,\"count\":%ld,\"received\":%ld,\"seconds\":%.6f,\"rate\":%.1f}\n", qos, count,
           got, seconds, seconds > 0 ? (double)got / seconds : 0.0);
    fflush(stdout);
    mosquitto_disconnect(pub);
    mosquitto_disconnect(sub);
    mosquitto_loop_stop(pub, false);
    mosquitto_loop_stop(sub, false);
    mosquitto_destroy(pub);
    mosquitto_destroy(sub);
    mosquitto_lib_cleanup();
    free(payload);
    return got == count ? 0 : 3;
}
