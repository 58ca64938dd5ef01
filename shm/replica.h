/*
 * replica.h - a mirror's replica partition: the frames a source sent,
 * appended at their own offsets, byte for byte (docs/format.md §13).
 *
 * A replica carries PART_STATUS_REPLICA: producers get -EROFS, and its
 * one writer is the mirror (shmbusd's mirror_sink.c) through these calls.
 * Readers, the unblocker and recovery see an ordinary partition.
 */
#ifndef SHMBUS_SHM_REPLICA_H
#define SHMBUS_SHM_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "append.h"
#include "partition.h"

struct replica {
	struct part *p;
	struct part_writer w;
};

/* Begin writing replica partition p (it must carry PART_STATUS_REPLICA:
 * else -EROFS with a message).  End with replica_close. */
int replica_open(struct replica *r, struct part *p);
void replica_close(struct replica *r);

/* The offset the next frame must have: the replica's end. */
uint64_t replica_end(const struct replica *r);

/*
 * Append a DATA batch (shm/mirrorproto.h): `count` entries covering
 * offsets [first, next).  The whole batch is checked first (first must be
 * the replica's end; every frame's CRC32C, lengths and offset; the
 * entries must cover exactly [first, next)), so a bad batch appends
 * nothing: -EBADMSG with a message naming the partition, the offset and
 * what is wrong.  Then the frames are appended as they are (offsets,
 * timestamps, keys, values, headers, pid, CRC), aborted ranges as
 * aborted ranges.  `frames` must not change during the call (the
 * mirror's own receive buffer): it is checked once, then copied.
 * Returns 0, or -EAGAIN (backpressure: a local consumer holds the ring;
 * try again), -EIDRM, -ECANCELED, -EBUSY.
 */
int replica_append(struct replica *r, const uint8_t *frames, size_t len, uint32_t count,
		   uint64_t first, uint64_t next);

/*
 * Record a gap: the source no longer holds offsets [end, to) the replica
 * never got.  They become an aborted range (readers skip them, as any
 * aborted offsets) and are counted in the header (mirror_gaps,
 * mirror_gap_offsets), never passed over silently.  0 or -errno.
 */
int replica_gap(struct replica *r, uint64_t to);

/* The gaps recorded in the replica's header since it was created, and
 * the offsets they cover (durable: they outlive the mirror's daemon). */
void replica_gaps(const struct replica *r, uint64_t *ret_gaps, uint64_t *ret_offsets);

/*
 * Before a mirror appends again after it died: set the replica's end back
 * to the last frame it published, over the claims it left unpublished
 * (none of them readable), so those offsets are appended again.  0 with
 * *ret_cut the offsets taken back; -ESTALE (message) if an unblocker
 * aborted them first: they stay aborted.  Run it with no mirror writing.
 */
int replica_resume(struct part *p, uint64_t *ret_cut);

#endif
