/*
 * clock.h - time for timestamps, deadlines and stall timers.
 */
#ifndef SHMBUS_SHM_CLOCK_H
#define SHMBUS_SHM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static inline int64_t real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/* CLOCK_REALTIME in ns from the TSC where the kernel trusts it (within tens
 * of ns of clock_gettime); clock_gettime elsewhere.  For timestamps. */
int64_t fast_real_ns(void);

#endif
