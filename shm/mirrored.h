/*
 * mirrored.h - a partition's mirrored offset (format.md §15): offsets
 * below it are held by at least min_mirrors mirrors, as the source's
 * shmbusd learned from their acknowledgements (docs/protocol.md §M11).
 * Kafka's high watermark.
 *
 * One writer, the source's shmbusd (daemon/mirror_acks.c), raises it;
 * it never moves back while the partition lives, and never past the
 * partition's end.  Each raise wakes whoever sleeps on its own futex
 * word (bit 31: someone waits): producers with acks=mirrors and
 * consumers with isolation=mirrored.  Its own word, not the notify word,
 * so that a waiter for the mirrored offset is not woken by every commit,
 * and producers pay nothing for it.
 */
#ifndef SHMBUS_SHM_MIRRORED_H
#define SHMBUS_SHM_MIRRORED_H

#include <stdint.h>

#include "partition.h"

/* The mirrored offset: every offset below it is mirrored. */
uint64_t part_mirrored(const struct part *p);

/*
 * Raise the mirrored offset to `end` if that is higher, capped at the
 * partition's end (a mirror cannot hold what was never appended here),
 * and wake its waiters.  Returns the mirrored offset after the call.
 * Safe from any thread and process; the source's shmbusd is its caller.
 */
uint64_t part_mirrored_raise(struct part *p, uint64_t end);

/*
 * Blocking: announce a waiter on the mirrored offset's futex word and
 * return the value to pass to the futex wait; re-check part_mirrored()
 * after this call and before sleeping, or a raise may be missed.  A
 * read-only mapping cannot announce itself: its waiter must poll.
 */
uint32_t part_mirrored_prepare(struct part *p);

/* The futex word part_mirrored_prepare() announced the waiter in (for
 * futex_wait_many(), with the value it returned). */
uint32_t *part_mirrored_word(struct part *p);

/*
 * Wait until offset `off` is mirrored (off < part_mirrored()), or until
 * deadline_ns (CLOCK_MONOTONIC; 0: forever).  0, -ETIMEDOUT, or -EIDRM
 * if the partition is deleted meanwhile.
 */
int part_mirrored_wait(struct part *p, uint64_t off, int64_t deadline_ns);

#endif
