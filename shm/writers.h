/*
 * writers.h - the writers' announcement slots (format.md §4 step 3).
 *
 * Each producer holds one slot of the partition header's page 2.  Before
 * each claim CAS it announces the claim word it bases the CAS on, marked
 * busy until its frames are published; the announcement is seqlocked
 * (seq odd while pos and off change).  Supervisors and unblockers read
 * slots only through part_writer_read(), so a {pos, off} pair they act on
 * is always one announcement; other producers read the busy marks so as
 * never to lap a claim still being written.
 */
#ifndef SHMBUS_SHM_WRITERS_H
#define SHMBUS_SHM_WRITERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "partition.h"

/* Writer announcement slots: NULL if all 64 are held by live processes
 * (dead holders are reaped first). */
struct part_writer_slot *part_writer_slot_take(struct part *p);
void part_writer_slot_give(struct part *p, struct part_writer_slot *s);

/* Free slot s if `pid` still holds it (a supervisor reaping a writer that
 * is gone); false if someone else took it meanwhile. */
bool part_writer_slot_free(struct part *p, struct part_writer_slot *s, uint32_t pid);

/*
 * Step 3: publish the claim word cur = {pos, off} the writer of slot s is
 * about to CAS from, marked busy, so an unblocker knows the boundary even
 * before the claim is marked, and the word its claim will write first at
 * pos, so that the previous claim's producer can tell that word from
 * older bytes there (part_zero_ahead()) (seqlock: pairs with read_slot() in
 * writers.c; the CAS that follows is a full barrier).
 */
static inline void part_writer_announce(struct part_writer_slot *s, pair128 cur, uint64_t first)
{
	uint64_t seq;

	if (!s)
		return;
	seq = load_relaxed(&s->seq);
	store_relaxed(&s->seq, seq + 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	store_relaxed(&s->pos, cur.lo);
	store_relaxed(&s->off, cur.hi);
	store_relaxed(&s->first, first);
	store_relaxed(&s->flags, WRITER_BUSY);
	store_release(&s->seq, seq + 2);
}

/* No claim of slot s's writer is being written: its frames are
 * published, or its claim CAS failed, so others may lap its announced
 * position (format.md §4 steps 3 and 6).  Only the mark is cleared: pos
 * and off stay, a real claim boundary for part_writer_read().  Pairs with
 * the load_acquire of flags in part_writer_lowest_busy(): our writes are
 * done before theirs. */
static inline void part_writer_idle(struct part_writer_slot *s)
{
	if (s)
		store_release(&s->flags, 0u);
}

/* What a supervisor sees of writer slot i. */
struct part_writer_ann {
	uint32_t pid;          /* 0: free */
	bool busy;             /* WRITER_BUSY: a claim is being made or written */
	uint64_t seq;          /* the announcement's sequence number */
	uint64_t pos, off;     /* the claim boundary announced (format.md §4 step 3) */
	uint64_t first;        /* the first word of that claim (0: not told) */
};

/* The writer slots taken (bit i: slot i), for part_writer_read(). */
uint64_t part_writers_taken(const struct part *p);

/* Slot i's announcement, read through its seqlock: true if *ret holds
 * one announcement, pos and off of the same claim; false if the slot is
 * free or its writer is announcing (ret->pid is set either way). */
bool part_writer_read(const struct part *p, int i, struct part_writer_ann *ret);

/* Free writer slot i if `pid` still holds it: part_writer_slot_free(). */
bool part_writer_reap(struct part *p, int i, uint32_t pid);

/* The position of the oldest claim still being written (a busy writer's
 * announcement), or `tail` if none is. */
uint64_t part_oldest_open_claim(const struct part *p, uint64_t tail);

/* The busy writer other than `self` whose announced position is lowest
 * and below *min (which it gets), or NULL if none is: a claim another
 * producer must not lap (format.md §4 step 2). */
struct part_writer_slot *part_writer_lowest_busy(struct part *p,
						 const struct part_writer_slot *self, uint64_t *min);

/* If the process holding slot s is gone, clear its busy mark (its claim
 * no longer holds anyone back; the unblocker aborts it) and return true. */
bool part_writer_unmark_dead(struct part_writer_slot *s);

/* The process holding slot s (0: none). */
uint32_t part_writer_pid(const struct part_writer_slot *s);

#endif
