/*
 * probes.c - the per-record probes of libshmbus (shm/probes.h lists them).
 *
 * The consumer fires deliver here, in a loop of its own, only while a
 * tracer holds the probe's semaphore: untraced, a poll pays one load and
 * a branch for it, not a loop.
 */
#include "probes.h"

#include "shmbus.h"

void lib_probe_deliver(const struct shmbus_message *msgs, size_t n)
{
	for (const struct shmbus_message *m = msgs, *end = msgs + n; m < end; m++) {
		const char *topic = m->topic;
		long partition = m->partition;
		unsigned long long offset = m->offset;
		long long ts = m->timestamp_ns;

		SHMBUS_PROBE(deliver, topic, partition, offset, ts);
	}
}
