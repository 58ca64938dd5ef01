/*
 * mirror.h - what the mirroring files of shmbusd share: the source side
 * (mirror_source.c: [mirror-listen]), the mirror side (mirror_sink.c:
 * [mirror "NAME"]) and the status the control socket reports
 * (MIRROR_STATUS, docs/protocol.md §9).  The protocol is docs/protocol.md
 * part 2; replicas are format.md §13.
 */
#ifndef SHMBUSD_MIRROR_H
#define SHMBUSD_MIRROR_H

#include <fcntl.h>
#include <stddef.h>

#include "shmbusd.h"
#include "../util/clock.h"
#include "../shm/mirrorproto.h"

/* Listen for mirrors if [mirror-listen] is configured (a warning says it
 * is plaintext); stop and drop them all. */
int mirror_source_init(struct daemon *d);
void mirror_source_fini(struct daemon *d);

/* Start a thread per [mirror "NAME"]; stop them. */
int mirror_sink_init(struct daemon *d);
void mirror_sink_fini(struct daemon *d);

/* The mirrored partitions' status as text, one partition a line of
 * KEY=VALUE fields separated by tabs (protocol.md §9), into buf;
 * the length written (truncated to fit, at a line's end). */
size_t mirror_status_text(struct daemon *d, char *buf, size_t len);

/* What the metrics endpoint shows of mirroring (docs/metrics.md). */
struct mirror_source_stats {
	bool listening;
	uint64_t connections;        /* mirrors connected now */
	uint64_t accepted;           /* connections that passed the handshake */
	uint64_t refused;            /* refused: too many, a bad HELLO, no thread */
	uint64_t bytes, records;     /* frame bytes and offsets sent in DATA */
	uint64_t gaps;               /* GAPs sent */
};

struct mirror_part_stats {
	char mirror[64], source[128];
	char topic[PART_NAME_MAX + 1];
	uint32_t partition;
	uint64_t end, source_end, lag_records, lag_ms;
	double lag_seconds;          /* lag_ms / 1000 */
	const char *state;           /* "streaming", "connecting", "stopped" */
	uint64_t reconnects, gaps, gap_offsets, bytes, records;
};

/* A [mirror "NAME"] section's connection. */
struct mirror_stats {
	char mirror[64], source[128];
	bool connected;
	uint64_t reconnects;
};

void mirror_source_stats(struct mirror_source_stats *ret);
/* Up to max mirrors into out; how many there are. */
size_t mirror_sink_mirrors(struct mirror_stats *out, size_t max);
/* Up to max mirrored partitions into out; how many there are. */
size_t mirror_sink_stats(struct mirror_part_stats *out, size_t max);

#endif
