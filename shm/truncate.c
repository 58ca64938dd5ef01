/*
 * truncate.c - cutting a partition's end back to an offset (format.md
 * §14), with readers mapped and reading.
 *
 * 1. Find the entry where the cut offset begins (a frame, the padding
 *    before one, or the aborted range that holds it: the cut then starts
 *    at the range's first offset) and its position P; the tail T.
 * 2. Make `cuts` odd (CAS): a reader that checks it now waits (reads
 *    nothing) until the cut is done; store the cut's offset and P.
 * 3. Set the claim word's next offset back: {T, N} -> {T, cut} (CAS: if
 *    it moved, another writer appends, and the cut is given up as a cut
 *    of nothing).
 * 4. Turn the word at P into a padding to T (the jump): a reader behind
 *    the cut passes from its last kept record to T, where the next
 *    append puts the record of the cut offset.
 * 5. Lower `start` to the cut if it was above, set a replica's resume
 *    point and the mirrored offset to it, drop the epochs that begin at
 *    or after it, count the offsets, and make `cuts` even (release):
 *    readers that find it changed compare their offset with the cut's.
 *
 * Positions only grow: the records cut keep their bytes until the ring
 * laps them, so a reader copying one when the cut happens copies it
 * whole, and the lap check of format.md §6 step 3 stays exact.
 */
#include "truncate.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "../util/error.h"
#include "epochs.h"
#include "notify.h"
#include "read.h"
#include "unblock.h"

#define WALK_MAX (1ULL << 24) /* entries walked to the cut: more than any seek leaves */

static int unwalkable(const struct part *p, uint64_t off, uint64_t at, const char *why)
{
	return shm_err(-EBADMSG, "partition %s/%u: cannot cut its end back to offset %llu: at "
		       "offset %llu %s; run recovery on it", p->hdr->topic, p->partition,
		       (unsigned long long)off, (unsigned long long)at, why);
}

/* Step 1: the entry where `off` begins, walked to from the nearest known
 * frame at or before it: its first offset and position. */
static int entry_of(struct part *p, uint64_t off, pair128 snap, uint64_t *ret_off,
		    uint64_t *ret_pos)
{
	struct part_cursor c;
	uint64_t lo, end, o, pos;

	part_bounds(p, &lo, &end);
	if (off < lo) {
		/* older than anything held: everything held goes */
		part_seek_begin(p, &c);
		*ret_off = off;
		*ret_pos = c.off < snap.hi ? c.pos : snap.lo;
		return 0;
	}
	if (part_seek(p, &c, off) < 0)
		return unwalkable(p, off, off, "no frame before it is known");
	o = c.off;
	pos = c.pos;
	for (uint64_t n = 0; n < WALK_MAX && pos < snap.lo && o < snap.hi; n++) {
		uint64_t w = load_acquire(part_commit_word(p, pos)), len = cw_len(w), e;

		if (!part_cw_for(w, o) || len < FRAME_ALIGN || len > snap.lo - pos)
			return unwalkable(p, off, o, "no entry is where the one before it ends");
		switch (cw_state(w)) {
		case FRAME_COMMITTED:
			if (o == off)
				goto found;
			o++;
			break;
		case FRAME_PADDING:
			if (o == off)
				goto found;
			break;
		case FRAME_ABORTED:
			e = part_abort_end(p, o, pos, len, snap.lo, snap.hi);
			if (!e)
				return unwalkable(p, off, o, "an aborted range has no end");
			if (off < e)
				goto found;
			o = e;
			break;
		default:
			return unwalkable(p, off, o, "a claim is in flight (the cut needs the "
					  "partition's only writer, idle)");
		}
		pos += len;
	}
	return unwalkable(p, off, o, "the walk ran past the end");
found:
	*ret_off = o;
	*ret_pos = pos;
	return 0;
}

/* The committed records in [pos, tail) from offset `off`: for the report. */
static uint64_t count_records(struct part *p, uint64_t off, uint64_t pos, pair128 snap)
{
	uint64_t n = 0;

	while (pos < snap.lo && off < snap.hi) {
		uint64_t w = load_acquire(part_commit_word(p, pos)), len = cw_len(w), e;

		if (!part_cw_for(w, off) || len < FRAME_ALIGN || len > snap.lo - pos)
			break;
		if (cw_state(w) == FRAME_COMMITTED) {
			n++;
			off++;
		} else if (cw_state(w) == FRAME_ABORTED) {
			e = part_abort_end(p, off, pos, len, snap.lo, snap.hi);
			if (!e)
				break;
			off = e;
		} else if (cw_state(w) != FRAME_PADDING) {
			break;
		}
		pos += len;
	}
	return n;
}

/* Step 5, and the end of a cut a killed writer left. */
static void finish(struct part *p, uint64_t odd, uint64_t from, uint64_t tail, uint64_t cut)
{
	uint64_t start = load_acquire(&p->hdr->start);
	pair128 done = load_pair(&p->hdr->replica_done);

	/* pairs with the load_acquire of start in part_read() (retired) */
	while (start > from && !cas(&p->hdr->start, &start, from))
		;
	if (part_is_replica(p))
		while (!cas128(&p->hdr->replica_done, &done, (pair128){ .lo = tail, .hi = from }))
			;
	if (load_relaxed(&p->hdr->mirrored) > from)
		store_relaxed(&p->hdr->mirrored, from);
	if (part_epochs_trim(p, from) < 0)
		shm_err_clear();
	fetch_add_relaxed(&p->hdr->cut_total, cut);
	/* the cut is done: pairs with the load_acquire of cuts in part_read()
	 * and in the seeks */
	store_release(&p->hdr->cuts, odd + 1);
	part_notify(p);
	if (!p->on_tmpfs)
		(void)msync(p->hdr, PART_PAGE, MS_SYNC);
}

/* A cut given up, or one a killed writer never began: a cut of nothing,
 * which no reader is past. */
static void nothing_cut(struct part *p, uint64_t odd)
{
	store_relaxed(&p->hdr->cut_off, PART_POS_MAX);
	store_release(&p->hdr->cuts, odd + 1);
	part_notify(p);
}

int part_truncate(struct part *p, uint64_t off, struct part_cut *r)
{
	pair128 snap = load_pair(&p->hdr->claim);
	uint64_t g = load_acquire(&p->hdr->cuts), from = 0, pos = 0;
	int rc;

	memset(r, 0, sizeof *r);
	if (p->readonly)
		return shm_err(-EROFS, "partition %s/%u is mapped read-only: it cannot be cut",
			       p->hdr->topic, p->partition);
	if (off >= snap.hi)
		return 0;
	if (g & 1)
		return shm_err(-EBUSY, "partition %s/%u: another cut is under way",
			       p->hdr->topic, p->partition);
	rc = entry_of(p, off, snap, &from, &pos);
	if (rc)
		return rc;
	*r = (struct part_cut){ .from = from, .to = snap.hi, .bytes = snap.lo - pos,
				.records = count_records(p, from, pos, snap) };
	/* step 2 */
	if (!cas(&p->hdr->cuts, &g, g + 1))
		return shm_err(-EBUSY, "partition %s/%u: another cut began meanwhile",
			       p->hdr->topic, p->partition);
	store_relaxed(&p->hdr->cut_off, from);
	store_relaxed(&p->hdr->cut_pos, pos);
	/* step 3 */
	if (!cas128(&p->hdr->claim, &snap, (pair128){ .lo = snap.lo, .hi = from })) {
		nothing_cut(p, g + 1);
		return shm_err(-EBUSY, "partition %s/%u: its end moved while it was cut back: "
			       "another process appends; nothing was cut", p->hdr->topic,
			       p->partition);
	}
	part_zero_ahead(p, snap.lo, from); /* I3 for the new next offset */
	/* step 4: pairs with the load_acquire of the commit word in part_read() */
	if (pos < snap.lo)
		store_release(part_commit_word(p, pos),
			      cw_make(FRAME_PADDING, snap.lo - pos, from));
	finish(p, g + 1, from, snap.lo, snap.hi - from);
	return 1;
}

int part_truncate_settle(struct part *p)
{
	uint64_t g = load_acquire(&p->hdr->cuts), from, pos, w;
	pair128 snap = load_pair(&p->hdr->claim);

	if (!(g & 1))
		return 0;
	if (p->readonly)
		return -EROFS;
	from = load_relaxed(&p->hdr->cut_off);
	pos = load_relaxed(&p->hdr->cut_pos);
	if (snap.hi != from || pos > snap.lo || snap.lo - pos >= p->cap || (pos & (FRAME_ALIGN - 1))) {
		nothing_cut(p, g);
		return 1;
	}
	/* the end went back: lay the jump if it is not there yet */
	w = pos < snap.lo ? load_acquire(part_commit_word(p, pos)) : 0;
	if (pos < snap.lo && part_cw_for(w, from) &&
	    w != cw_make(FRAME_PADDING, snap.lo - pos, from))
		store_release(part_commit_word(p, pos),
			      cw_make(FRAME_PADDING, snap.lo - pos, from));
	finish(p, g, from, snap.lo, 0);
	return 1;
}
