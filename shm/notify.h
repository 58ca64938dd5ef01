/*
 * notify.h - wait and wake on a partition (format.md §4 step 5, §5): the
 * notify word consumers sleep on until records come, and the space word
 * producers sleep on (backpressure) until a consumer releases room.  Both
 * are shared futexes whose bit 31 says someone sleeps (futex.h), so a
 * producer or consumer with nobody waiting pays one load.
 */
#ifndef SHMBUS_SHM_NOTIFY_H
#define SHMBUS_SHM_NOTIFY_H

#include <stdint.h>

#include "partition.h"

/* Wake consumers waiting on the partition, if any registered. */
void part_notify(struct part *p);

/*
 * Blocking: prepare a wait by announcing a waiter in the notify word;
 * returns the value to pass to the futex wait.  Re-check for records
 * after this call and before sleeping, or a wake may be missed.
 */
uint32_t part_wait_prepare(struct part *p);

/* The futex word part_wait_prepare() announced the waiter in: for
 * futex_wait_many(), with the value it returned. */
uint32_t *part_wait_word(struct part *p);

/* Backpressure: a producer announces it waits for room (the value to
 * wait on), re-checks, and sleeps until a consumer moves or until
 * deadline_ns; a consumer that moved wakes it. */
uint32_t part_space_prepare(struct part *p);
void part_space_wait(struct part *p, uint32_t v, int64_t deadline_ns);
void part_space_wake(struct part *p);

#endif
