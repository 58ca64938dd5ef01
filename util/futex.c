/*
 * futex.c - thin wrappers over futex(2) and futex_waitv(2) for words in
 * shared mappings.  All deadlines are absolute CLOCK_MONOTONIC.
 */
#include "futex.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif

static struct timespec to_timespec(int64_t ns)
{
	return (struct timespec){ .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
}

int futex_wait_shared(uint32_t *word, uint32_t expected, int64_t deadline_ns)
{
	struct timespec ts = to_timespec(deadline_ns);
	long rc;

	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
	rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected,
		     deadline_ns ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
	if (rc == 0)
		return 0;
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

int futex_wake_shared(uint32_t *word)
{
	long rc = syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);

	return rc < 0 ? -errno : (int)rc;
}

struct waitv_entry {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};

static int have_waitv = 1; /* cleared once the kernel says ENOSYS */

int futex_wait_many(uint32_t *const *words, const uint32_t *expected, size_t n,
		    int64_t deadline_ns)
{
	struct waitv_entry v[SHM_FUTEX_MAX_WAITV];
	struct timespec ts = to_timespec(deadline_ns);
	struct timespec now;
	int64_t short_deadline;
	long rc;

	if (n == 0 || n > SHM_FUTEX_MAX_WAITV)
		return -EINVAL;
	if (n == 1)
		return futex_wait_shared(words[0], expected[0], deadline_ns);
	if (__atomic_load_n(&have_waitv, __ATOMIC_RELAXED)) {
		for (size_t i = 0; i < n; i++)
			v[i] = (struct waitv_entry){ .val = expected[i],
						     .uaddr = (uintptr_t)words[i],
						     .flags = FUTEX2_SIZE_U32 };
		rc = syscall(SYS_futex_waitv, v, (unsigned)n, 0,
			     deadline_ns ? &ts : NULL, CLOCK_MONOTONIC);
		if (rc >= 0)
			return 0;
		if (errno != ENOSYS)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		__atomic_store_n(&have_waitv, 0, __ATOMIC_RELAXED);
	}
	/* Fallback: any word already changed returns at once; otherwise
	 * sleep on the first with a short deadline and let the caller poll. */
	for (size_t i = 0; i < n; i++)
		if (__atomic_load_n(words[i], __ATOMIC_ACQUIRE) != expected[i])
			return -EAGAIN;
	clock_gettime(CLOCK_MONOTONIC, &now);
	short_deadline = now.tv_sec * 1000000000LL + now.tv_nsec + SHM_FUTEX_FALLBACK_NS;
	if (deadline_ns && deadline_ns < short_deadline)
		short_deadline = deadline_ns;
	rc = futex_wait_shared(words[0], expected[0], short_deadline);
	if (rc == -ETIMEDOUT && (!deadline_ns || short_deadline < deadline_ns))
		return 0;
	return (int)rc;
}

uint32_t futex_word_prepare(uint32_t *word)
{
	uint32_t n = __atomic_load_n(word, __ATOMIC_ACQUIRE);

	while (!(n & 0x80000000u))
		if (__atomic_compare_exchange_n(word, &n, n | 0x80000000u, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			return n | 0x80000000u;
	return n;
}

void futex_word_wake(uint32_t *word)
{
	uint32_t n = __atomic_load_n(word, __ATOMIC_SEQ_CST);

	if (__builtin_expect(!(n & 0x80000000u), 1))
		return;
	while (n & 0x80000000u) {
		if (__atomic_compare_exchange_n(word, &n, (n + 1) & ~0x80000000u, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			futex_wake_shared(word);
			return;
		}
	}
}
