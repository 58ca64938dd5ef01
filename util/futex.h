/*
 * futex.h - shared (cross-process) futex waits and wakes.
 *
 * Never FUTEX_PRIVATE: the words live in files mapped by many processes.
 * futex_waitv (Linux 5.16) waits on the notify words of many partitions at
 * once; where the kernel lacks it, futex_wait_many falls back to sleeping
 * on the first word with a short timeout, so a wake on another word is
 * noticed within SHM_FUTEX_FALLBACK_NS.
 */
#ifndef SHMBUS_SHM_FUTEX_H
#define SHMBUS_SHM_FUTEX_H

#include <stddef.h>
#include <stdint.h>

#define SHM_FUTEX_MAX_WAITV 128
#define SHM_FUTEX_FALLBACK_NS 1000000LL

/* Sleep while *word == expected, until woken or `deadline_ns`
 * (CLOCK_MONOTONIC, 0 = forever).  0 on wake, -EAGAIN if the word had
 * changed, -ETIMEDOUT, -EINTR. */
int futex_wait_shared(uint32_t *word, uint32_t expected, int64_t deadline_ns);

/* Wake every waiter on word; returns the number woken or -errno. */
int futex_wake_shared(uint32_t *word);

/* Sleep until any words[i] differs from expected[i] (or a wake, or the
 * deadline).  n <= SHM_FUTEX_MAX_WAITV. */
int futex_wait_many(uint32_t *const *words, const uint32_t *expected, size_t n,
		    int64_t deadline_ns);

/*
 * A wake-up word: a counter with a waiter bit (bit 31).  A sleeper sets
 * the bit (futex_word_prepare), re-checks its condition, then sleeps on the
 * value returned.  A waker, after a full barrier since its change, calls
 * futex_word_wake: one load when nobody sleeps; else it clears the bit
 * with the CAS that bumps the counter, and wakes everyone.  A sleeper that
 * died leaves the bit set: it costs one spurious wake.
 */
uint32_t futex_word_prepare(uint32_t *word);
void futex_word_wake(uint32_t *word);

#endif
