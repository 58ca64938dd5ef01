/*
 * ackrtt.h - the round trip of a producer's send, measured through the
 * public API only: a plain send (acks=local) against one that waits for
 * the mirrors (acks=mirrors, docs/protocol.md §M11).  For the mirroring
 * tests, and for a benchmark that wants the same figures.
 */
#ifndef SHMBUS_ACKRTT_H
#define SHMBUS_ACKRTT_H

#include <stddef.h>
#include <stdint.h>

#include "shmbus.h"

struct tu_rtt {
	size_t n;            /* sends measured */
	double p50_us, p99_us, max_us;
	int err;             /* 0, or the first send's -errno (then the figures are 0) */
};

/*
 * Send n records of value_len bytes, one at a time, to `partition` of
 * `topic` through a producer with `acks` (ack timeout 5 s), and measure
 * each send's wall time (CLOCK_MONOTONIC around the call).
 */
void tu_rtt_measure(shmbus *bus, const char *topic, int32_t partition, enum shmbus_acks acks,
		    size_t n, size_t value_len, struct tu_rtt *ret);

#endif
