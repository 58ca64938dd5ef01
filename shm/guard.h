/*
 * guard.h - the unblock guard (format.md §7): the position an unblocker
 * works at, published where every producer looks right after its claim
 * CAS, so that no claim laps that position while the unblocker loads and
 * writes the words there (the commit word, the end offset at frame + 8,
 * the word zeroed past the range).
 *
 * The guard is the 16-byte word `unblock_guard` of the header's claim
 * block: zero while free, {pos | 1, pid} while held; it changes only by a
 * 16-byte CAS, so one unblocker holds it at a time.  The pairing is a
 * store-load one, both sides sequentially consistent:
 *
 *   unblocker: CAS the guard to {pos | 1, pid}, then load the claim word;
 *              a tail at or past pos + capacity: lapped, give up (-ERANGE)
 *   producer:  CAS the claim word, then load the guard; a claim ending past
 *              pos + capacity - 8: wait, before writing anything of it
 *
 * Either the unblocker's tail includes the claim (and shows the lap), or
 * the producer sees the guard (and waits): no claim laps a guarded
 * position.  A producer waits while the holder lives, at most
 * PART_GUARD_WAIT_NS (an unblock takes microseconds): then it takes the
 * guard away and laps it, and the unblocker, which checks that it still
 * holds the guard before each of its stores, gives up.  A dead holder's
 * guard is cleared by whoever finds it.
 */
#ifndef SHMBUS_SHM_GUARD_H
#define SHMBUS_SHM_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "partition.h"

#define PART_GUARD_HELD 1ULL              /* bit 0 of the guard's pos word */
#define PART_GUARD_WAIT_NS 1000000000LL   /* a producer waits at most this long */
#define PART_GUARD_TAKE_NS 10000000LL     /* an unblocker waits this long for another */

/* Take the guard at `pos` (8-byte aligned): 0, or -EBUSY if another live
 * unblocker holds it for longer than PART_GUARD_TAKE_NS. */
int part_guard_take(struct part *p, uint64_t pos);

/* Release the guard taken at `pos` (nothing if it was cleared meanwhile). */
void part_guard_release(struct part *p, uint64_t pos);

/* Does this process still hold the guard it took at `pos`?  False once a
 * producer that waited for it too long took it away: what the holder would
 * store at pos may then be lapped. */
bool part_guard_kept(struct part *p, uint64_t pos);

/* Clear the guard if the process holding it is gone (recovery). */
void part_guard_clear_dead(struct part *p);

/* The waiting of part_guard_settle(), out of line. */
void part_guard_wait(struct part *p, uint64_t end);

/* Wait while an unblocker guards exactly `pos`, at most
 * PART_GUARD_TAKE_NS: true once it does not.  The guard is neither taken
 * away nor cleared if its holder is dead: the holder's abort at pos may be
 * half published.  For the zeroing ahead (format.md §4 step 4), which
 * cannot judge a word while an unblocker may be aborting there. */
bool part_guard_wait_at(struct part *p, uint64_t pos);

/*
 * After a claim CAS that ends at `end`: wait while an unblocker guards a
 * position the claim laps (end > pos + capacity - 8).  Nothing of the
 * claim may be written before.  One load on the fast path, of the claim
 * word's own cache line: pairs with the CAS in part_guard_take(), the
 * claim CAS before it being a full barrier.
 */
static inline void part_guard_settle(struct part *p, uint64_t end)
{
	uint64_t g = load_seq_cst(&p->hdr->unblock_guard.lo);

	if (__builtin_expect((g & PART_GUARD_HELD) && end > (g & ~PART_GUARD_HELD) + p->cap -
							      FRAME_ALIGN, 0))
		part_guard_wait(p, end);
}

#endif
