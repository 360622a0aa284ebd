#include "ring.h"

#include <string.h>

void ring_init(ring *r) {
    r->head = 0;
    r->count = 0;
    r->live = 0;
    for (size_t i = 0; i < RING_CAPACITY; i++) {
        r->slots[i].live = 0;
        r->slots[i].len = 0;
    }
}

int ring_full(const ring *r) { return r->count == RING_CAPACITY; }

ring_slot *ring_at(ring *r, size_t i) {
    if (i >= r->count) return NULL;
    return &r->slots[(r->head + i) % RING_CAPACITY];
}

ring_slot *ring_push(ring *r, uint64_t seq, const uint8_t *bytes, size_t len) {
    if (ring_full(r) || len > READING_MAX_BYTES) return NULL;
    ring_slot *slot = &r->slots[(r->head + r->count) % RING_CAPACITY];
    slot->seq = seq;
    slot->live = 1;
    slot->sent = 0;
    slot->accepted = 0;
    slot->last_sent_ms = 0;
    slot->len = len;
    memcpy(slot->bytes, bytes, len);
    r->count++;
    r->live++;
    return slot;
}

ring_slot *ring_find(ring *r, uint64_t seq) {
    for (size_t i = 0; i < r->count; i++) {
        ring_slot *slot = ring_at(r, i);
        if (slot->live && slot->seq == seq) return slot;
    }
    return NULL;
}

void ring_release(ring *r, ring_slot *slot) {
    if (!slot->live) return;
    slot->live = 0;
    r->live--;
    while (r->count > 0 && !r->slots[r->head].live) {
        r->slots[r->head].len = 0;
        r->head = (r->head + 1) % RING_CAPACITY;
        r->count--;
    }
}
