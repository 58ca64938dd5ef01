/*
 * append.h - appending to a partition: any number of producers in any
 * number of processes, lock-free (format.md §4).
 */
#ifndef SHMBUS_SHM_APPEND_H
#define SHMBUS_SHM_APPEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "backpressure.h"
#include "notify.h"
#include "partition.h"

/*
 * A writer: one producer's state for one partition.  Used by one thread at
 * a time; any number of writers, in any processes, append concurrently.
 */
struct part_writer {
	struct part *p;
	uint64_t bp_limit;   /* backpressure: tail allowed without a rescan */
	uint64_t bp_gen;     /* registry generation bp_limit was computed in */
	pair128 seen;        /* last claim word seen: the next CAS's guess */
	struct part_writer_slot *slot; /* announcements (format.md §4) */
	uint64_t lap_limit;  /* claims may end here without lapping a busy claim */
	bool holding;        /* a zero-copy claim is held (one at a time) */
	int stopped_by;      /* why the last part_append stopped (0: it did not) */
	int64_t next_reap;   /* backpressure: when dead consumers may be reaped */
};

/* Begin a writer: takes one of the partition's 64 announcement slots
 * (-EUSERS if live processes hold them all).  End it with fini. */
int part_writer_init(struct part_writer *w, struct part *p);
void part_writer_fini(struct part_writer *w);

/* One record to append.  headers points at an encoded section
 * (frame_headers_encode) of headers_len bytes. */
struct part_rec {
	const void *key;
	const void *value;
	const void *headers;
	uint32_t key_len;
	uint32_t value_len;
	uint32_t headers_len;
	uint16_t header_count;
	uint16_t flags;          /* FRAME_F_KEY_NULL, FRAME_F_VALUE_NULL */
	int64_t timestamp_ns;
};

/* Append flags */
#define PART_APPEND_BLOCK 1u /* backpressure: wait for room, until the deadline */

/*
 * Append up to n records, in order, at consecutive offsets.  The records
 * that fit before the ring's end are claimed with one CAS; the call goes
 * on until all n are appended.  Returns the number appended (n unless an
 * error stopped it after some) with *ret_first_off the offset of the first,
 * or -errno: -EMSGSIZE (record larger than the partition's max frame),
 * -EAGAIN (backpressure: a registered consumer has not read the bytes;
 * with PART_APPEND_BLOCK, only after the deadline), -EIDRM (deleted),
 * -ECANCELED (an unblocker aborted this claim: the producer was stalled
 * past the unblock timeout), -EROFS (a read-only mapping or a replica),
 * -EBUSY (another producer's claim a whole lap behind is still being
 * written, past the deadline; or this writer holds a zero-copy claim).
 */
int part_append(struct part_writer *w, const struct part_rec *recs, size_t n, unsigned flags,
		int64_t deadline_ns, uint64_t *ret_first_off);

/* A zero-copy claim: the caller writes the value in place, then commits
 * or aborts.  Readers wait at this offset until then. */
struct part_claim {
	uint64_t pos;            /* frame position */
	uint64_t off;
	uint64_t len;            /* frame length */
	uint64_t pad_pos;        /* padding before the frame, or UINT64_MAX */
	struct frame_hdr *frame;
	uint8_t *value;          /* value_len bytes, writable until commit */
	uint32_t value_cap;
};

/*
 * Claim room for one record whose key and headers are copied now and
 * whose value (up to value_cap bytes) the caller writes at c->value.
 */
int part_claim(struct part_writer *w, const struct part_rec *meta, uint32_t value_cap,
	       unsigned flags, int64_t deadline_ns, struct part_claim *c);

/* Publish a claim with its final value length (<= value_cap). */
int part_commit(struct part_writer *w, struct part_claim *c, uint32_t value_len);

/* Give a claim up: readers skip its offset. */
int part_abort(struct part_writer *w, struct part_claim *c);


#endif
