/*
 * bare.h - the bare round trip: two processes bouncing a counter through
 * two shared words, spinning, or sleeping in FUTEX_WAIT on a shared (not
 * private) futex and woken by FUTEX_WAKE, as the bus wakes a sleeping
 * consumer.  It is the floor a bus's round trip is measured against:
 * `shmbus bench` and `make bench` alternate it with the bus's round trips
 * in the same pair of processes (workloads.c), and `make bench` measures
 * it alone as the cache-line and futex limits (bench/limits.c).
 */
#ifndef SHMBUS_CLI_BARE_H
#define SHMBUS_CLI_BARE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Round trips [from, from + n): worker 0 (role 0) posts i to *ping and
 * waits for it on *pong, worker 1 echoes.  The words start at 0 and the
 * counters at from + 1, so consecutive calls continue one sequence.
 * Worker 0 stores each round trip's clock ticks (measure.h) in out[]
 * (may be NULL).  The words sit on different cache lines, written by one
 * side each.  0, or -1 past the workers' deadline (workers_why()).
 */
int bare_trips(uint32_t *ping, uint32_t *pong, bool blocking, int role, uint64_t from,
	       uint64_t n, uint64_t *out);

#endif
