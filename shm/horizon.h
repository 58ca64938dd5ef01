/*
 * horizon.h - the horizon word: a bound on every byte of the data ring
 * any process may write (format.md §2, §4 step 3, §6 step 3).
 *
 * Readers check after a poll that the frames they read were not lapped.
 * Against the tail, that check loads the claim word, which every producer
 * CASes for every claim: each check takes that line from the producers,
 * and their next claim waits to take it back (docs/perf-notes.md).  The
 * horizon lives on a line of its own that producers write about once per
 * step of bytes, so a reader keeps it in its cache between raises.
 *
 * Invariant (a partition of version 2, either policy): horizon >= tail + 8.
 * A producer raises it to cover its claim and the word zeroed past it
 * before its claim CAS, so before any byte of the claim is written by
 * anyone (the producer, an unblocker, which writes only below tail + 8,
 * or the next claim's zeroing).  Recovery, which holds the partition
 * alone, sets it to its rebuilt tail + 8.  Hence a frame at `pos` read
 * before a load of the horizon that gives h <= pos + capacity was intact.
 *
 * The word is shared memory and may be damaged.  A reader trusts it only
 * to say "intact", and only when it is plausible (at least the read
 * frame's end + 8, which the invariant guarantees); any other value, one
 * too low or one that says "lapped" (a step early, or absurdly high),
 * sends it to the tail, which is exact.  So a damaged horizon costs tail
 * loads or is repaired by the next claim; it never lets a torn record
 * through, except a value damaged low while a producer laps the very
 * frame being read (see format.md §6 step 3).
 */
#ifndef SHMBUS_SHM_HORIZON_H
#define SHMBUS_SHM_HORIZON_H

#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "partition.h"

#define PART_HORIZON_STEP_MAX (64u << 10)

/* How far past a claim's end producers raise the horizon: capacity / 16,
 * at most 64 KiB.  A reader less than about a step from a full lap finds
 * the horizon past its frames and checks them against the tail. */
static inline uint64_t part_horizon_step(uint64_t cap)
{
	return cap / 16 < PART_HORIZON_STEP_MAX ? cap / 16 : PART_HORIZON_STEP_MAX;
}

void part_horizon_raise(struct part *p, uint64_t need);

/*
 * A producer, before its claim CAS (format.md §4 step 3): make the
 * horizon cover [.., end + 8), the claim and the word zeroed past it.
 * One load of a line that stays shared; a CAS about once per step.
 */
static inline void part_horizon_cover(struct part *p, uint64_t end)
{
	/* pairs with the fence_acquire before the horizon load in
	 * part_first_lost() and part_intact(); ordered before our claim
	 * CAS, and that before every write to the claim */
	if (p->horizon && __builtin_expect(load_acquire(&p->hdr->horizon) < end + FRAME_ALIGN, 0))
		part_horizon_raise(p, end + FRAME_ALIGN);
}

/*
 * Does horizon value h show a frame at `pos`, read before h was loaded,
 * intact?  Only a plausible value is trusted: a committed frame (at
 * least 48 bytes) lies below the tail, so h is at least pos + 56.
 * False means "ask the tail", not "lapped".
 */
static inline bool part_horizon_intact(const struct part *p, uint64_t h, uint64_t pos)
{
	return h >= pos + FRAME_HDR_SIZE + FRAME_ALIGN && h <= pos + p->cap;
}

/* The horizon to judge frames by: 0 (never plausible) where it is not
 * kept.  Load after an acquire fence that follows the frames' reads. */
static inline uint64_t part_horizon_load(const struct part *p)
{
	return p->horizon ? load_acquire(&p->hdr->horizon) : 0;
}

/* Recovery (format.md §8), holding the partition alone: the horizon
 * becomes the rebuilt tail + 8, which also repairs a damaged one. */
void part_horizon_reset(struct part *p, uint64_t tail);

#endif
