/*
 * unblock.h - aborting a claim whose producer is gone or stuck
 * (format.md §7), and the checks shared with recovery: whether a commit
 * word belongs to an offset, and where the next known frame starts.
 */
#ifndef SHMBUS_SHM_UNBLOCK_H
#define SHMBUS_SHM_UNBLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "partition.h"

/* Abort even when the claiming process is alive (the daemon does this
 * after the unblock timeout: a stuck producer must not stop everyone). */
#define PART_UNBLOCK_FORCE 1u

/*
 * Abort the claim that holds a reader's frontier at (off, pos), the
 * caller having seen it stalled for the unblock timeout.  A CLAIMED frame
 * is aborted if its process is gone (or with PART_UNBLOCK_FORCE); an empty
 * word (the producer died between its claim and its first write) is
 * aborted together with every offset up to the next known frame.
 *
 * Returns 1 if aborted, 0 if there was nothing to abort (the claim
 * progressed meanwhile), -EBUSY if the claimant lives (*ret_pid names
 * it), -ERANGE if (off, pos) has been overwritten.
 */
int part_unblock(struct part *p, uint64_t off, uint64_t pos, unsigned flags, pid_t *ret_pid);

/* Is commit word w one written for offset `off` in this lap? */
bool part_cw_for(uint64_t w, uint64_t off);

/*
 * The first offset after `off` whose frame is known (its index entry
 * points past `pos` at a word written for it), or `next` itself; its
 * position in *ret_pos.  Used to bound an abort over frames never marked.
 */
uint64_t part_next_anchor(struct part *p, uint64_t off, uint64_t pos, uint64_t tail,
			  uint64_t next, uint64_t *ret_pos);

/*
 * Zero the commit word at `pos` unless it was written for `off` (the
 * offset whose frame goes there next), so the frame that lands there never
 * shows a reader bytes of an older lap (format.md §4, step 4).  Losing the
 * CAS means its owner wrote it first.
 */
void part_zero_ahead(struct part *p, uint64_t pos, uint64_t off);

#endif
