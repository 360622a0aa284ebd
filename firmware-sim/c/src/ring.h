/*
 * The device's store of unacknowledged readings: a fixed ring of signed messages, oldest first.
 * A reading enters when it is sampled and leaves when a receipt says it is committed (or
 * rejected). Nothing is ever overwritten: when the ring is full, the device stops sampling.
 *
 * A reading that leaves from the middle (committed out of order) leaves a hole that is
 * reused once every older reading has left too: the ring frees space from its oldest end only.
 */
#ifndef MEDLEDGER_RING_H
#define MEDLEDGER_RING_H

#include <stddef.h>
#include <stdint.h>

#include "reading.h"

#ifndef RING_CAPACITY
#define RING_CAPACITY 64
#endif

typedef struct {
    uint64_t seq;
    int live;      /* 1 while no committed or rejected receipt has arrived */
    int sent;      /* published at least once */
    int accepted;  /* an "accepted" receipt arrived (still kept: only "committed" releases it) */
    int64_t last_sent_ms;
    size_t len;
    uint8_t bytes[READING_MAX_BYTES]; /* the signed reading, exactly as it is sent every time */
} ring_slot;

typedef struct {
    ring_slot slots[RING_CAPACITY];
    size_t head;  /* index of the oldest occupied slot */
    size_t count; /* occupied slots, live or holes, from head */
    size_t live;  /* live slots */
} ring;

void ring_init(ring *r);
int ring_full(const ring *r);
/* Stores a signed reading; NULL when the ring is full or the message is too long. */
ring_slot *ring_push(ring *r, uint64_t seq, const uint8_t *bytes, size_t len);
/* The live slot holding seq, or NULL. */
ring_slot *ring_find(ring *r, uint64_t seq);
/* The i-th occupied slot from the oldest (0 <= i < count); it may be a hole (live == 0). */
ring_slot *ring_at(ring *r, size_t i);
/* Marks a live slot done, and frees every done slot at the oldest end. */
void ring_release(ring *r, ring_slot *slot);

#endif
