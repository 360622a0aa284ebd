#ifndef MEDLEDGER_CMOSQUITTO_SHIM_H
#define MEDLEDGER_CMOSQUITTO_SHIM_H

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* epoll_event is a packed struct on x86_64; these helpers keep it on the C side. */

static inline int medledger_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event;
    memset(&event, 0, sizeof(event));
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &event);
}

/* Waits for events and writes each one's data and event mask into the two arrays. */
static inline int medledger_epoll_wait(int epfd, uint64_t *datas, uint32_t *masks, int max, int timeout_ms) {
    struct epoll_event events[256];
    if (max > 256) max = 256;
    int count = epoll_wait(epfd, events, max, timeout_ms);
    for (int i = 0; i < count; i++) {
        datas[i] = events[i].data.u64;
        masks[i] = events[i].events;
    }
    return count;
}
#endif

static inline int medledger_errno(void) { return errno; }

#endif
