/*
 * unblock.c - stalled claims (format.md §7).
 *
 * A producer killed between its claim and its commit leaves a hole at
 * which every reader stops.  Whoever sees the frontier stalled for the
 * unblock timeout (a reader with no daemon, or shmbusd) calls
 * part_unblock().  The abort is a CAS on the frame's commit word; the
 * producer's own commit is a CAS from CLAIMED, so a slow producer whose
 * claim was aborted gets -ECANCELED and no frame is ever both.
 */
#include "unblock.h"

#include <errno.h>

#include "append.h"
#include "frame.h"
#include "proc.h"

bool part_cw_for(uint64_t w, uint64_t off)
{
	uint32_t lo = (uint32_t)off;

	if (w == 0)
		return false;
	if (cw_state(w) == FRAME_ABORTED) {
		uint32_t d = cw_off(w) - lo;

		return d >= 1 && d < 0x80000000u;
	}
	return cw_off(w) == lo;
}

uint64_t part_next_anchor(struct part *p, uint64_t off, uint64_t pos, uint64_t tail,
			  uint64_t next, uint64_t *ret_pos)
{
	for (uint64_t o = off + 1; o < next; o++) {
		uint64_t q = load_acquire(&p->index[o & p->imask]), w;

		if ((q & (FRAME_ALIGN - 1)) || q <= pos || q >= tail)
			continue;
		w = load_acquire(part_commit_word(p, q));
		if (cw_state(w) != FRAME_PADDING && part_cw_for(w, o)) {
			*ret_pos = q;
			return o;
		}
	}
	*ret_pos = tail;
	return next;
}

void part_zero_ahead(struct part *p, uint64_t pos, uint64_t off)
{
	uint64_t *cw = part_commit_word(p, pos);
	uint64_t w = load_acquire(cw);

	if (w != 0 && !part_cw_for(w, off))
		(void)cas(cw, &w, 0);
}

int part_unblock(struct part *p, uint64_t off, uint64_t pos, unsigned flags, pid_t *ret_pid)
{
	pair128 snap = load_pair(&p->hdr->claim);
	uint64_t *cw = part_commit_word(p, pos);
	uint64_t w, end, end_off;

	if (p->readonly)
		return -EROFS;
	if (off >= snap.hi)
		return 0;
	if (snap.lo >= pos + p->cap)
		return -ERANGE;
	w = load_acquire(cw);
	if (cw_state(w) == FRAME_CLAIMED && cw_off(w) == (uint32_t)off) {
		const struct frame_hdr *h = (const void *)part_at(p, pos);
		uint64_t len = cw_len(w);
		/* pid was stored before the CLAIMED word was released */
		pid_t pid = (pid_t)load_relaxed(&h->pid);

		if (len < FRAME_HDR_SIZE || len > p->max_frame || (pos & p->mask) + len > p->cap)
			goto range;
		if (!(flags & PART_UNBLOCK_FORCE) && proc_alive(pid, 0)) {
			if (ret_pid)
				*ret_pid = pid;
			return -EBUSY;
		}
		end = pos + len;
		end_off = off + 1;
	} else if (part_cw_for(w, off)) {
		return 0; /* committed, padding or aborted: the claim moved on */
	} else {
range:
		/* Never marked: abort up to the next frame we can find. */
		end_off = part_next_anchor(p, off, pos, snap.lo, snap.hi, &end);
	}
	/* The word after the aborted range must not show an older lap. */
	part_zero_ahead(p, end, end_off);
	/* pairs with load_acquire of the commit word in part_read() */
	if (!cas(cw, &w, cw_make(FRAME_ABORTED, end - pos, end_off)))
		return 0;
	fetch_add(&p->hdr->aborted_claims, end_off - off);
	part_notify(p);
	return 1;
}
