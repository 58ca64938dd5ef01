/*
 * bare.c - the bare round trip, spinning or through a futex (see bare.h).
 */
#include "bare.h"
#include "workers.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

static int await_word(uint32_t *word, uint32_t want, bool blocking)
{
	struct timespec ts = { .tv_sec = 1 };
	unsigned spins = 0;
	uint32_t v;

	/* pairs with the store_release in post_word() */
	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != want) {
		if (blocking)
			futex(word, FUTEX_WAIT, v, &ts);
		if (blocking ? workers_late() : !workers_spin(&spins))
			return workers_fail("bare round trip stalled at %u", v);
	}
	return 0;
}

static void post_word(uint32_t *word, uint32_t v, bool blocking)
{
	__atomic_store_n(word, v, __ATOMIC_RELEASE); /* pairs with the load in await_word() */
	if (blocking)
		futex(word, FUTEX_WAKE, 1, NULL);
}

int bare_trips(uint32_t *ping, uint32_t *pong, bool blocking, int role, uint64_t from,
	       uint64_t n, uint64_t *out)
{
	for (uint64_t i = from + 1; i <= from + n; i++) {
		uint64_t t0 = measure_ticks();

		if (role == 0) {
			post_word(ping, (uint32_t)i, blocking);
			if (await_word(pong, (uint32_t)i, blocking))
				return -1;
		} else {
			if (await_word(ping, (uint32_t)i, blocking))
				return -1;
			post_word(pong, (uint32_t)i, blocking);
		}
		if (out)
			out[i - 1 - from] = measure_ticks() - t0;
	}
	return 0;
}
