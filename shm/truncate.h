/*
 * truncate.h - cutting a partition's end back to an offset (format.md
 * §14): what a mirror does when its log and its source's part (an old
 * source that comes back as a mirror of the replica promoted in its
 * place, docs/protocol.md §M9).  Offsets go back; positions never do.
 *
 * The records cut stay where they lie in the ring; the word of the first
 * of them becomes a padding that jumps to the tail (the cut's jump), and
 * the claim word's next offset goes back to the cut.  The new records
 * then follow at the tail, so no byte a reader may still be reading is
 * written over before the ring laps it (format.md §6 step 3 holds as it
 * is), readers behind the cut pass the jump into the new records, and
 * readers at or past it find the header's `cuts` count changed and are
 * told (part_read's -ESTALE), never handed a record of the new log at an
 * offset where they read one of the old.
 */
#ifndef SHMBUS_SHM_TRUNCATE_H
#define SHMBUS_SHM_TRUNCATE_H

#include <stdbool.h>
#include <stdint.h>

#include "partition.h"

/* A padding of offset `off` a reader may pass (format.md §3, §14): one
 * to the ring's end from inside a lap, or a cut's jump: shorter than a
 * lap, ending at or before the tail, at a word that is zero (nothing
 * marked there yet) or written for `off` (the record after the cut). */
static inline bool part_padding_ok(const struct part *p, uint64_t pos, uint64_t len,
				   uint64_t off, uint64_t tail)
{
	uint64_t w;

	if ((pos & p->mask) && (pos & p->mask) + len == p->cap)
		return true;
	if (len < FRAME_ALIGN || len >= p->cap || pos + len > tail)
		return false;
	/* pairs with the CAS that marks the frame there (format.md §4 step 4) */
	w = __atomic_load_n((const uint64_t *)(const void *)(p->data + ((pos + len) & p->mask)),
			    __ATOMIC_ACQUIRE);
	return w == 0 || (uint32_t)w == (uint32_t)off;
}

/* What a cut took away. */
struct part_cut {
	uint64_t from, to;       /* offsets [from, to) cut: from the cut to the old end */
	uint64_t records;        /* committed records among them */
	uint64_t bytes;          /* ring bytes the jump passes over */
};

/*
 * Cut p's end back to offset `off`: the offsets from `off` (or from the
 * start of the aborted range holding it) to the end are gone, the next
 * append gets that offset, the epoch history loses the entries that
 * start at or after it, and `start` goes down to it if it was above.
 * The caller is the partition's only writer (a replica's mirror) with no
 * claim in flight.  1 with *r filled, 0 if the end is at or below off
 * already, or -errno: -EBUSY (a cut under way, or the end moved: another
 * writer), -EBADMSG (the log cannot be walked to off), with a message.
 */
int part_truncate(struct part *p, uint64_t off, struct part_cut *r);

/*
 * At start-up, before anything appends: a cut its writer did not finish
 * (killed) is finished if its claim word was already set back, else
 * undone; readers wait while `cuts` is odd.  1 if there was one, 0 if
 * not, -errno.
 */
int part_truncate_settle(struct part *p);

#endif
