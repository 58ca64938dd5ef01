/*
 * unblock.c - stalled claims (format.md §7).
 *
 * A producer killed between its claim and its commit leaves a hole at
 * which every reader stops.  Whoever sees the frontier stalled for the
 * unblock timeout (a reader with no daemon, or shmbusd) calls
 * part_unblock().  The abort is a CAS on the commit word at the hole; the
 * producer's own writes to that word are CASes too, so a slow producer
 * whose claim was aborted gets -ECANCELED and no frame is ever both.
 *
 * An unmarked hole is aborted up to the first claim boundary after it.
 * Boundaries come from writers' announcements (each writer publishes the
 * claim word it is about to CAS, before the CAS), so a live producer's
 * claim that is not marked yet is never swallowed by the range.
 *
 * An unblocker works under the unblock guard (guard.h): it takes the
 * guard at the position it aborts, then loads the claim word, so no claim
 * laps that position while it loads and writes the words there.  Without
 * it, an unblocker delayed for a lap of the ring after its lap check
 * would abort a committed record of the next lap, or write its end
 * offset over one.  Index entries it replaces only if they do not lead
 * past the aborted range (a later offset's, the index lapping first).
 */
#include "unblock.h"

#include <errno.h>

#include "../util/error.h"
#include "frame.h"
#include "guard.h"
#include "notify.h"
#include "probes.h"
#include "truncate.h"
#include "../util/proc.h"
#include "../util/testpoint.h"

uint64_t part_abort_end(const struct part *p, uint64_t off, uint64_t pos, uint64_t len,
			uint64_t tail, uint64_t next)
{
	const uint64_t *endp = (const uint64_t *)(const void *)part_at(p, pos + 8);
	uint64_t end;

	if (len < FRAME_ABORT_MIN || pos + len > tail || (pos & p->mask) + 16 > p->cap)
		return 0;
	/* pairs with store_release of the end in abort_publish() */
	end = load_acquire(endp);
	return end > off && end <= next ? end : 0;
}

int part_end_damaged(const struct part *p, uint64_t tail, uint64_t next)
{
	return shm_err(-EBADMSG, "partition %s/%u: its claim word is damaged (tail %llu, next "
		       "%llu: more offsets than the ring can hold); run recovery on it",
		       p->hdr->topic, p->partition, (unsigned long long)tail,
		       (unsigned long long)next);
}

/* (unblock.h) */
bool part_offset_marked(const struct part *p, uint64_t pos, uint64_t off)
{
	uint64_t q = load_acquire(&p->index[off & p->imask]);

	return q == pos || (q > pos && !(q & p->mask) && (pos & p->mask) + (q - pos) == p->cap);
}

/* (unblock.h) */
bool part_offset_unmarked(const struct part *p, uint64_t pos, uint64_t off, uint64_t next)
{
	return next - off <= p->icap && !part_offset_marked(p, pos, off);
}

enum ahead {
	AHEAD_KEEP,    /* the claim's own word, or cannot tell */
	AHEAD_OLD,     /* surely older bytes */
	AHEAD_GUARDED, /* an unblocker guards pos: ask again once it is done */
};

/*
 * Is w, a word at `pos` with the low 32 bits of `off` loaded just before,
 * older bytes rather than a word written for `off`?  Only a sure "yes"
 * lets part_zero_ahead() clear it:
 * - the tail, loaded after w, is still `pos`: no claim of `off` existed
 *   when w was loaded, and its producer writes only after its claim CAS;
 * - or the claim exists and has not marked (index), no busy writer
 *   announcing {pos, off} (the one whose CAS won, and losers not yet idle)
 *   told w as its first word, none of them leaves it untold (`first` 0:
 *   an older library), no unblocker guards `pos` (one may have just
 *   aborted that claim: its ABORTED word is no older bytes, and it stores
 *   the index before it releases the guard; the caller asks again once it
 *   has), and the index, loaded again after all that, still says not
 *   marked (a winner gone idle meanwhile, or that unblocker, marked
 *   first).  With no busy announcement at all, the claim's producer died
 *   before marking and its slot was reaped: its word will never come, and
 *   an unblocker will abort the hole.
 * A torn announcement leaves the word (format.md §4 step 4).
 */
static enum ahead ahead_judge(struct part *p, uint64_t pos, uint64_t off, uint64_t w)
{
	uint64_t mask;

	/* seq_cst: ordered after the load of w */
	if (load_seq_cst(&p->hdr->claim.lo) == pos)
		return AHEAD_OLD;
	if (part_offset_marked(p, pos, off))
		return AHEAD_KEEP;
	for (mask = part_writers_taken(p); mask; mask &= mask - 1) {
		struct part_writer_ann a;

		if (!part_writer_read(p, __builtin_ctzll(mask), &a)) {
			if (a.pid)
				return AHEAD_KEEP; /* being announced: cannot tell */
			continue;
		}
		if (!a.busy || a.pos != pos || a.off != off)
			continue;
		if (a.first == w || !part_cw_for(a.first, off))
			return AHEAD_KEEP; /* its word, or a writer that does not tell */
	}
	/* an unblocker aborts a claim at the position it guards; pairs with
	 * the CAS that takes the guard (guard.c) */
	if (load_seq_cst(&p->hdr->unblock_guard.lo) == (pos | PART_GUARD_HELD))
		return AHEAD_GUARDED;
	fence_acquire();
	return !part_offset_marked(p, pos, off) && load_acquire(part_commit_word(p, pos)) == w
		       ? AHEAD_OLD
		       : AHEAD_KEEP;
}

#define ZERO_WAITS 4 /* unblocks at that position in a row the zeroing waits for */

/*
 * Under an unblocker's guard at pos the word cannot be judged: it may be
 * that unblocker's abort, index not stored yet (format.md "The model",
 * finding 5).  Leaving it then left older bytes past a claim that is then
 * committed (finding 6): wait for the guard's release and judge again.
 * An unblock is short; a guard held past PART_GUARD_TAKE_NS (a holder
 * stopped or dead mid-abort), or taken at pos again and again, leaves the
 * word as before.  A caller that holds the guard holds it elsewhere: the
 * guard is one word.
 */
void part_zero_ahead(struct part *p, uint64_t pos, uint64_t off)
{
	uint64_t *cw = part_commit_word(p, pos);

	for (int round = 0;; round++) {
		uint64_t w = load_acquire(cw);
		enum ahead a = AHEAD_OLD;

		if (w == 0)
			return;
		if (part_cw_for(w, off))
			a = ahead_judge(p, pos, off, w);
		if (a == AHEAD_OLD)
			(void)cas(cw, &w, 0);
		if (a != AHEAD_GUARDED || round == ZERO_WAITS || !part_guard_wait_at(p, pos))
			return;
	}
}

uint64_t part_next_boundary(struct part *p, uint64_t off, uint64_t pos, uint64_t tail,
			    uint64_t next, uint64_t *ret_pos)
{
	uint64_t best_pos = tail, best_off = next, span, last;

	/* announcements first: a claim announced before its CAS is seen here
	 * if the CAS is inside {tail, next} (format.md §7) */
	for (int i = 0; i < PART_MAX_WRITERS; i++) {
		struct part_writer_ann a;

		if (part_writer_read(p, i, &a) && a.pos > pos && a.pos < best_pos &&
		    a.off > off && a.off < best_off && !(a.pos & (FRAME_ALIGN - 1))) {
			best_pos = a.pos;
			best_off = a.off;
		}
	}
	/* then frames marked for their offsets, in case a writer's slot was
	 * reused since.  A frame at q < best_pos is at most (q - pos) / 48
	 * offsets after off (format.md §6 step 4): look no further than the
	 * bytes there allow, within a lap, never as far as a damaged `next`
	 * says */
	span = best_pos <= pos ? 0 : best_pos - pos < p->cap ? best_pos - pos : p->cap;
	last = best_off > off && best_off - off > span / FRAME_ALIGN ? off + 1 + span / FRAME_ALIGN
								 : best_off;
	for (uint64_t o = off + 1; o < last; o++) {
		uint64_t q = load_acquire(&p->index[o & p->imask]), w;

		if ((q & (FRAME_ALIGN - 1)) || q <= pos || q >= best_pos)
			continue;
		w = load_acquire(part_commit_word(p, q));
		if (part_cw_for(w, o)) {
			best_pos = q;
			best_off = o;
			break;
		}
	}
	*ret_pos = best_pos;
	return best_off;
}

pid_t part_claimant(const struct part *p, uint64_t off, uint64_t pos)
{
	uint64_t w = load_acquire(part_commit_word(p, pos)), len = cw_len(w);
	const struct frame_hdr *h = (const void *)part_at(p, pos);

	pid_t pid;

	if (cw_state(w) != FRAME_CLAIMED || !part_cw_for(w, off) || len < FRAME_HDR_SIZE ||
	    len > p->max_frame || (pos & p->mask) + len > p->cap)
		return 0;
	/* stored before the CLAIMED word was released (format.md §4 step 4) */
	pid = (pid_t)load_relaxed(&h->pid);
	return pid > 0 ? pid : -1;
}

void part_abort_finish(struct part *p, uint64_t off, uint64_t pos, uint64_t end_off)
{
	/* pairs with load_acquire of the end in part_abort_end() */
	store_release((uint64_t *)(void *)part_at(p, pos + 8), end_off);
	for (uint64_t o = off; o < end_off && o - off < p->icap; o++)
		store_relaxed(&p->index[o & p->imask], pos);
	fetch_add(&p->hdr->aborted_claims, end_off - off);
	part_notify(p);
}

/*
 * Under the guard (guard.h) no claim laps `pos`, unless we were stopped
 * for longer than producers wait for the guard: then one took it away,
 * and may lap pos.  Checked before each store.
 */
static bool guard_lost(struct part *p, uint64_t pos)
{
	return !part_guard_kept(p, pos);
}

/*
 * part_abort_finish() for an unblocker, which works while producers
 * append: the end offset (if the guard is still ours), then the
 * index entries of the aborted offsets, each replaced only if it does not
 * lead at or past the range's end (`end_pos`): such an entry is a later
 * offset's, whose slot the index (icap slots, filled by frames of 48
 * bytes) may reach before the ring laps.  -ERANGE if lapped.
 */
static int abort_publish(struct part *p, uint64_t off, uint64_t pos, uint64_t end_off,
			 uint64_t end_pos)
{
	if (guard_lost(p, pos))
		return -ERANGE;
	/* pairs with load_acquire of the end in part_abort_end() */
	store_release((uint64_t *)(void *)part_at(p, pos + 8), end_off);
	for (uint64_t o = off; o < end_off && o - off < p->icap; o++) {
		uint64_t *slot = &p->index[o & p->imask], q = load_relaxed(slot);

		/* a few tries: a failed CAS means a producer wrote the slot */
		for (int t = 0; t < 4 && q < end_pos && q != pos; t++)
			if (cas(slot, &q, pos))
				break;
	}
	fetch_add(&p->hdr->aborted_claims, end_off - off);
	part_notify(p);
	return 1;
}

static int abort_claimed(struct part *p, uint64_t off, uint64_t pos, uint64_t w, unsigned flags,
			 pid_t only, pid_t *ret_pid)
{
	uint64_t len = cw_len(w);
	pid_t pid = part_claimant(p, off, pos);
	int rc;

	/* for a death, the dead producer's frames alone (format.md §7) */
	if (only && pid != only)
		return -EBUSY;
	if (!(flags & PART_UNBLOCK_FORCE) && proc_alive(pid, 0)) {
		if (ret_pid)
			*ret_pid = pid;
		return -EBUSY;
	}
	if (guard_lost(p, pos))
		return -ERANGE;
	part_zero_ahead(p, pos + len, off + 1);
	if (!cas(part_commit_word(p, pos), &w, cw_make(FRAME_ABORTED, len, off)))
		return 0;
	SHM_TESTPOINT(unblock_after_cas);
	rc = abort_publish(p, off, pos, off + 1, pos + len);
	if (rc < 0)
		return rc;
	SHMBUS_PROBE(unblock, p->hdr->topic, p->partition, off, 1, pid);
	if (ret_pid)
		*ret_pid = pid;
	return 1;
}

/* An abort whose end offset never landed (its aborter died between its
 * CAS and the store, or a stopped producer overwrote it): store it. */
static int repair_abort(struct part *p, uint64_t off, uint64_t pos, uint64_t w, pair128 snap)
{
	uint64_t end, end_off;

	if (part_abort_end(p, off, pos, cw_len(w), snap.lo, snap.hi))
		return 0;
	end_off = part_next_boundary(p, off, pos, snap.lo, snap.hi, &end);
	if (end != pos + cw_len(w))
		return -EBUSY;
	return abort_publish(p, off, pos, end_off, end);
}

/* A claim never marked: abort it up to the first claim boundary after it
 * (format.md §7).  Not for a death (`only`): whose claim an empty word is
 * cannot be told, and the dead writer's last announcement may be a claim
 * word another producer won; the readers that stall at it abort it after
 * their unblock timeout. */
static int abort_hole(struct part *p, uint64_t off, uint64_t pos, uint64_t w, pair128 snap,
		      pid_t only)
{
	uint64_t end, end_off;
	int rc;

	if (only)
		return -EBUSY;
	end_off = part_next_boundary(p, off, pos, snap.lo, snap.hi, &end);
	if (end - pos < FRAME_ABORT_MIN)
		return -EBUSY;
	if (guard_lost(p, pos))
		return -ERANGE;
	part_zero_ahead(p, end, end_off);
	/* pairs with load_acquire of the commit word in part_read() */
	if (!cas(part_commit_word(p, pos), &w, cw_make(FRAME_ABORTED, end - pos, off)))
		return 0;
	SHM_TESTPOINT(unblock_after_cas);
	rc = abort_publish(p, off, pos, end_off, end);
	if (rc < 0)
		return rc;
	SHMBUS_PROBE(unblock, p->hdr->topic, p->partition, off, end_off - off, -1);
	return 1;
}

/*
 * A word for `off` at `pos` that no claim of `off` wrote: older bytes the
 * zeroing ahead left (format.md §4 step 4, §7).  A COMMITTED or ABORTED
 * word while the offset is not marked: every claim marks its frame before
 * it commits or aborts it, and an unblocker stores the index before it
 * releases the guard we now hold (one that died first left its abort
 * unmarked: repaired first where its length ends at a claim boundary).  A
 * PADDING word only if no claim writes such a padding, as its claim takes
 * a padding word before it stores the index.  Beyond the index's capacity
 * of the end the slot may be a later offset's, and the word is taken as
 * its claim's.  Its claim is a hole.
 */
static bool left_older(const struct part *p, uint64_t off, uint64_t pos, uint64_t w, pair128 snap)
{
	switch (cw_state(w)) {
	case FRAME_COMMITTED:
	case FRAME_ABORTED:
		break;
	case FRAME_PADDING:
		if (part_padding_ok(p, pos, cw_len(w), off, snap.lo))
			return false;
		break;
	default:
		return false;
	}
	return part_offset_unmarked(p, pos, off, snap.hi);
}

/* part_unblock() with the guard held at pos: the claim word is loaded
 * after the guard was taken, so its tail bounds every claim that did not
 * see the guard (guard.h). */
static int unblock_at(struct part *p, uint64_t off, uint64_t pos, unsigned flags, pid_t only,
		      pid_t *ret_pid)
{
	pair128 snap = load_pair(&p->hdr->claim);
	uint64_t w;
	int rc;

	if (off >= snap.hi)
		return 0;
	if ((snap.lo & (FRAME_ALIGN - 1)) || snap.lo >= PART_POS_MAX)
		return shm_err(-EBADMSG, "partition %s/%u: its claim word is damaged (tail %llu); "
			       "run recovery on it", p->hdr->topic, p->partition,
			       (unsigned long long)snap.lo);
	if (snap.lo >= pos + p->cap)
		return -ERANGE;
	if (!part_end_plausible(off, pos, snap.lo, snap.hi))
		return part_end_damaged(p, snap.lo, snap.hi);
	w = load_acquire(part_commit_word(p, pos));
	if (part_cw_for(w, off)) {
		switch (cw_state(w)) {
		case FRAME_COMMITTED:
		case FRAME_PADDING:
			if (left_older(p, off, pos, w, snap))
				break; /* older bytes: a hole */
			return 0; /* the claim moved on */
		case FRAME_ABORTED:
			rc = repair_abort(p, off, pos, w, snap);
			if (rc != -EBUSY || !left_older(p, off, pos, w, snap))
				return rc;
			break; /* older bytes, no claim's length: a hole */
		case FRAME_CLAIMED:
			if (part_claimant(p, off, pos))
				return abort_claimed(p, off, pos, w, flags, only, ret_pid);
			break; /* a length that does not fit: damaged, abort as a hole */
		}
	}
	return abort_hole(p, off, pos, w, snap, only);
}

/* part_unblock(), for the claims of process `only` alone if it is not 0
 * (a death), with the guard taken around it. */
static int unblock(struct part *p, uint64_t off, uint64_t pos, unsigned flags, pid_t only,
		   pid_t *ret_pid)
{
	int rc;

	if (p->readonly)
		return -EROFS;
	if (pos & (FRAME_ALIGN - 1))
		return shm_err(-EBADMSG, "partition %s/%u: position %llu is not a frame boundary; "
			       "run recovery on it", p->hdr->topic, p->partition,
			       (unsigned long long)pos);
	rc = part_guard_take(p, pos);
	if (rc)
		return rc;
	rc = unblock_at(p, off, pos, flags, only, ret_pid);
	part_guard_release(p, pos);
	return rc;
}

int part_unblock(struct part *p, uint64_t off, uint64_t pos, unsigned flags, uint64_t stall_tail,
		 pid_t *ret_pid)
{
	(void)stall_tail;
	return unblock(p, off, pos, flags, 0, ret_pid);
}

/* Nothing from shared memory bounds the walk but the ring: a claim ends
 * within a lap of its start, and each step passes at least 8 bytes. */
int64_t part_abort_claim(struct part *p, uint64_t off, uint64_t pos, pid_t only)
{
	pair128 snap = load_pair(&p->hdr->claim);
	uint64_t end, end_off = part_next_boundary(p, off, pos, snap.lo, snap.hi, &end), done = 0;

	if (end > pos + p->cap)
		end = pos + p->cap;
	while (pos < end && off < end_off) {
		uint64_t w, len, e;
		int rc = unblock(p, off, pos, PART_UNBLOCK_FORCE, only, NULL);

		if (rc == 1)
			done++;
		else if (rc == -EBADMSG)
			return done ? (int64_t)done : rc;
		w = load_acquire(part_commit_word(p, pos));
		len = cw_len(w);
		if (!part_cw_for(w, off) || len == 0)
			break;
		if (cw_state(w) == FRAME_PADDING) {
			if (!(pos & p->mask) || (pos & p->mask) + len != p->cap)
				break; /* not a padding any claim writes */
			pos += len;
			continue;
		}
		if (cw_state(w) == FRAME_ABORTED) {
			e = part_abort_end(p, off, pos, len, snap.lo, snap.hi);
			if (!e)
				break;
			done += e - off - 1;
			off = e;
		} else {
			off++;
		}
		pos += len;
	}
	return (int64_t)done;
}
