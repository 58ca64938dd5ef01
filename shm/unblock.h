/*
 * unblock.h - aborting a claim whose producer is gone or stuck
 * (format.md §7), and the helpers shared with reading and recovery: which
 * offset a commit word belongs to, the extent of an aborted range, and
 * the next claim boundary.  The writers' announcements it reads are in
 * writers.h (included here, for the callers that took them from here).
 */
#ifndef SHMBUS_SHM_UNBLOCK_H
#define SHMBUS_SHM_UNBLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "partition.h"
#include "writers.h"

/* Abort even when the claiming process is alive (the daemon does this
 * after the unblock timeout: a stuck producer must not stop everyone). */
#define PART_UNBLOCK_FORCE 1u

/*
 * Abort the claim that holds a reader's frontier at (off, pos), the
 * caller having seen it stalled for the unblock timeout (since the tail
 * was `stall_tail`, kept for callers that want to log it).  A CLAIMED frame is aborted if its process is gone (or
 * with PART_UNBLOCK_FORCE); an unmarked claim (its producer died between
 * its claim and its first write) is aborted up to the next claim boundary;
 * an aborted range whose end offset was never stored gets it.
 *
 * It works under the unblock guard (guard.h): no claim laps pos
 * meanwhile.
 *
 * Returns 1 if it aborted something, 0 if there was nothing to do (the
 * claim progressed meanwhile), -EBUSY if the claimant lives (*ret_pid
 * names it), the hole cannot yet be bounded safely or another unblocker
 * holds the guard, -ERANGE if (off, pos) has been overwritten.  After aborting a CLAIMED frame *ret_pid is
 * its (dead) producer, whose later claims the caller may abort at once.
 */
int part_unblock(struct part *p, uint64_t off, uint64_t pos, unsigned flags, uint64_t stall_tail,
		 pid_t *ret_pid);

/* Has the claim of `off`, at `pos`, marked its frame?  Its index slot
 * then holds its frame's position: `pos`, or the ring's next lap start
 * after a padding from `pos` (append_mark() stores it after taking the
 * claim's words, an unblocker before it releases its guard; older offsets
 * sit at lower positions, so no older value of the slot is either). */
bool part_offset_marked(const struct part *p, uint64_t pos, uint64_t off);

/* Surely not marked yet: part_offset_marked() says no, and no later offset
 * can have reused the slot (`off` is within the index's capacity of the
 * end offset `next`).  A word for `off` at `pos` that is not CLAIMED is
 * then older bytes (format.md §6 step 2, §7). */
bool part_offset_unmarked(const struct part *p, uint64_t pos, uint64_t off, uint64_t next);

/* The process that claimed the CLAIMED frame of `off` at `pos`, else 0. */
pid_t part_claimant(const struct part *p, uint64_t off, uint64_t pos);

/* Was commit word w written for offset `off`?  (format.md §3: every state
 * carries its offset's low 32 bits, so a word of an older lap never is.) */
static inline bool part_cw_for(uint64_t w, uint64_t off)
{
	return w != 0 && cw_off(w) == (uint32_t)off;
}

/*
 * Can the end {tail, next} follow a frame boundary (off, pos)?  Every
 * offset between them takes at least one 8-byte word of the ring (a frame
 * takes 48; an aborted range keeps the bytes of the claims it covers), and
 * the tail is never behind a boundary.  A claim word that says otherwise
 * is damaged, and loops bounded by it would run for ever (format.md §6).
 */
static inline bool part_end_plausible(uint64_t off, uint64_t pos, uint64_t tail, uint64_t next)
{
	return pos <= tail && off <= next && next - off <= (tail - pos) / FRAME_ALIGN;
}

/* -EBADMSG, with a message naming the partition, its claim word and the
 * fix. */
int part_end_damaged(const struct part *p, uint64_t tail, uint64_t next);

/*
 * The offset after the aborted range of `off` at `pos` (len bytes), as
 * stored at frame + 8, if it is one: off < end <= next and the range ends
 * by `tail`.  0 if it is not (yet) there.
 */
uint64_t part_abort_end(const struct part *p, uint64_t off, uint64_t pos, uint64_t len,
			uint64_t tail, uint64_t next);

/*
 * Zero the commit word at `pos` unless it was written for `off` (the
 * offset whose frame goes there next), so the frame that lands there never
 * shows a reader bytes of an older lap (format.md §4 step 4, I3).  Older
 * bytes whose low 32 bits happen to equal `off` (a frame's pid, a value)
 * are told from that claim's own word by the claim word and the writers'
 * announcements; only when neither can tell is such a word left.  While
 * an unblocker guards pos it waits (bounded) and judges again.  Losing the
 * CAS means its owner wrote it first.
 */
void part_zero_ahead(struct part *p, uint64_t pos, uint64_t off);

/*
 * The first claim boundary after `pos` (offset `off`) that is known: a
 * boundary a writer announced, or a frame marked for its offset (among
 * the offsets the bytes up to the tail, at most a lap, can hold), or the
 * end {tail, next}.  *ret_pos gets its position; returns its offset.
 */
uint64_t part_next_boundary(struct part *p, uint64_t off, uint64_t pos, uint64_t tail,
			    uint64_t next, uint64_t *ret_pos);

/*
 * After an ABORTED word for `off` at `pos` is in place: publish the offset
 * after the range (end_off), point the index of every aborted offset at
 * the range (positions stay monotonic in the index), count, wake readers.
 * For recovery, which holds the partition exclusively: an unblocker, which
 * works while producers append, has a lap-proof version of its own
 * (unblock.c).
 */
void part_abort_finish(struct part *p, uint64_t off, uint64_t pos, uint64_t end_off);

/*
 * Abort every frame of the claim that starts at (off, pos), a boundary a
 * writer announced: up to the next claim boundary, CLAIMED frames and
 * unmarked holes alike (forced: the producer is stuck).  With `only` (a
 * writer that died, format.md §7): only CLAIMED frames that carry its pid;
 * its last announcement may be a claim word another producer won, and an
 * unmarked hole may be that producer's, so holes are left to the readers'
 * and the stuck-claim timeouts.  Returns the offsets aborted, or -EBADMSG
 * if the partition is damaged there (shm_errmsg() says how).
 */
int64_t part_abort_claim(struct part *p, uint64_t off, uint64_t pos, pid_t only);

#endif
