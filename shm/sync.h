/*
 * sync.h - writing what was appended to a partition on a disk root to
 * the disk (msync), for a mirror that acknowledges only what is on disk
 * (`ack = flushed`, docs/shmbusd.conf.md).  shmbusd's periodic flush of
 * every partition ([flush]) is daemon/supervise.c.
 */
#ifndef SHMBUS_SHM_SYNC_H
#define SHMBUS_SHM_SYNC_H

#include <stdint.h>

#include "partition.h"

/* How far a partition was synced: the claim word {tail, next} then. */
struct part_synced {
	uint64_t tail;
	uint64_t next;
};

/*
 * msync (MS_SYNC) what was appended since *s: the data ring's bytes from
 * s->tail to the tail now (at most a ring), the index slots of offsets
 * s->next to the end now (at most the index), then the header's first
 * page (its claim word, a replica's resume point).  On success *s is
 * the claim word loaded before the writes: every frame published before
 * it is on disk.  Claims still open are written again by the next sync.
 * For a partition with one writer between its appends (a replica).
 * 0, or -errno (*s unchanged).
 */
int part_sync(struct part *p, struct part_synced *s);

#endif
