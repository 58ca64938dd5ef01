/*
 * read.h - reading a partition: any number of readers, never a torn or
 * stale record (format.md §6).
 */
#ifndef SHMBUS_SHM_READ_H
#define SHMBUS_SHM_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "horizon.h"
#include "notify.h"
#include "partition.h"

/* A reader's place in one partition.  Process-local; one thread at a time. */
struct part_cursor {
	uint64_t off;          /* next offset to deliver */
	uint64_t pos;          /* where its frame (or padding before it) lies */
	uint64_t skip_until;   /* offsets below this are passed silently (seek) */
	uint64_t next_seen;    /* claim word's next offset, as last loaded */
	uint64_t tail_seen;    /* claim word's tail, as last loaded */
	bool stalled;          /* a claim holds the frontier at stall_pos */
	bool stall_marked;     /* ... and its word there is CLAIMED for off */
	int64_t stall_ns;      /* when it was first seen stalled (0: not yet timed) */
	uint64_t stall_pos;
	uint64_t stall_tail;   /* the tail when it stalled */
	uint64_t skipped;      /* offsets passed over as aborted */
	bool claim_end;        /* pos is where a claim ended, reached by reading */
	uint32_t peeks;        /* frontier checks since the claim word's last load */
	uint64_t cuts;         /* the header's `cuts` when placed (format.md §14) */
	uint64_t cut_from;     /* after -ESTALE: the offset it stood at before the cut */
};

/* Checks of the frontier's commit word alone before the claim word is
 * loaded again (see part_read): enough that a reader spinning at the
 * frontier rarely takes the claim word's line from the producers (about
 * once in 1024 polls), few enough that a claim whose producer died
 * unmarked is seen within about 100 us of spinning, far inside the
 * unblock timeout (and at once before a sleep). */
#define PART_PEEKS_MAX 1024

/* Make the next part_read load the claim word: before a sleep, so that a
 * stalled claim is seen and timed. */
static inline void part_cursor_recheck(struct part_cursor *c)
{
	c->peeks = PART_PEEKS_MAX;
}

/*
 * The next record at c->off.  Returns 1 with *v describing it in place
 * (cursor advanced), 0 if none is ready (c->stalled when a claim holds the
 * frontier), -ERANGE if c->off has been overwritten or retired
 * (apply the reset policy), -EIDRM if the partition was deleted, -EBADMSG
 * if a frame is damaged (message in shm_errmsg()), -ESTALE if the
 * partition's end was cut back below c->off since the cursor was placed
 * (format.md §14: records it read are no longer the log's; the cursor is
 * now at the cut, c->cut_from says where it stood).
 *
 * In overwrite mode the bytes behind *v may be overwritten at any time:
 * check part_intact(p, v->pos) after copying or using them.
 */
int part_read(struct part *p, struct part_cursor *c, struct frame_view *v);

/* Were the bytes of a frame at `pos` still intact?  Call after reading
 * them: the acquire fence orders those reads before the loads of the
 * horizon and, if it cannot tell, of the tail (format.md §6 step 3). */
static inline bool part_intact(const struct part *p, uint64_t pos)
{
	fence_acquire();
	if (part_horizon_intact(p, part_horizon_load(p), pos))
		return true;
	return load_acquire(&p->hdr->claim.lo) < pos + p->cap;
}

/*
 * Step 3 of a read (format.md §6), for a run of n frames read (or
 * copied): the first i whose frame, read at pos[i] for offset off[i], may
 * have been overwritten meanwhile (tail >= pos + capacity) or retired
 * (off < start); n if none was.  One load of the horizon and of `start`,
 * after an acquire fence that orders the reads before them, checks the
 * whole run; the tail is loaded only for frames the horizon cannot show
 * intact (horizon.h).  pos and off point into an array of n elements of `stride`
 * bytes each (the caller's messages).
 */
size_t part_first_lost(const struct part *p, const uint64_t *pos, const uint64_t *off, size_t n,
		       size_t stride);

/* Does the CRC32C stored in the frame at `pos` match its header and
 * payload_len bytes of payload?  Over the shared bytes: check
 * part_first_lost() afterwards. */
bool part_frame_crc_ok(const struct part *p, uint64_t pos, size_t payload_len);

/* The claim word: the tail and the next offset to be claimed. */
void part_ends(const struct part *p, uint64_t *ret_tail, uint64_t *ret_next);

/* Count a read that found its offset overwritten (the lapped_reads
 * counter). */
void part_count_lapped(struct part *p);

/* Retention: retire the offsets below `off` (move `start` up to it,
 * never back).  Returns how many were retired, *ret_from the first of
 * them; 0 if `start` was already there. */
uint64_t part_retire(struct part *p, uint64_t off, uint64_t *ret_from);

/* When the frontier was first found stalled (CLOCK_MONOTONIC; taken now
 * if not yet), or 0 if it is not stalled.  Call before sleeping and when
 * deciding to unblock. */
int64_t part_stall_clock(struct part_cursor *c);

/* Seeks.  0 or -ERANGE (offset outside [earliest, end]). */
int part_seek(struct part *p, struct part_cursor *c, uint64_t off);
int part_seek_begin(struct part *p, struct part_cursor *c);
int part_seek_end(struct part *p, struct part_cursor *c);

/* The first record with a timestamp >= ts_ns (end if none).  Exact when
 * timestamps do not decrease along the log (the default: append time). */
int part_seek_time(struct part *p, struct part_cursor *c, int64_t ts_ns);

/* Lowest offset still readable, and the end offset. */
void part_bounds(struct part *p, uint64_t *ret_low, uint64_t *ret_end);

#endif
