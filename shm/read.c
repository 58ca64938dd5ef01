/*
 * read.c - the read protocol (format.md §6) and seeks.
 *
 * A reader trusts nothing but the commit word it loads with acquire, and
 * that only when the word's offset bits say it was written for the offset
 * the reader expects in this lap.  Every length is bounds-checked before
 * use.  A frame is handed out only if the horizon or the tail, loaded
 * after the frame was read, shows that no producer can have overwritten it
 * meanwhile (horizon.h).
 */
#include "read.h"

#include <errno.h>
#include <string.h>

#include "../util/clock.h"
#include "../util/error.h"
#include "../util/testpoint.h"
#include "truncate.h"
#include "unblock.h"

static const struct frame_hdr *frame_at(const struct part *p, uint64_t pos)
{
	return (const struct frame_hdr *)(const void *)part_at(p, pos);
}

static void refresh(struct part *p, struct part_cursor *c)
{
	pair128 snap = load_pair(&p->hdr->claim);

	c->tail_seen = snap.lo;
	c->next_seen = snap.hi;
}

static bool lapped(struct part *p, struct part_cursor *c)
{
	refresh(p, c);
	return c->tail_seen >= c->pos + p->cap;
}

/* A frame length that lies inside the ring without crossing its end. */
static bool len_fits(const struct part *p, uint64_t pos, uint64_t len)
{
	return len >= FRAME_HDR_SIZE && len <= p->max_frame && (pos & p->mask) + len <= p->cap;
}

static int stall(struct part_cursor *c, bool marked);

/*
 * Word w, loaded at c->pos, is no frame for c->off.  It is older bytes,
 * not damage, while no claim holds c->off (it is at or past the end just
 * loaded), or while the claim of c->off has not marked its frame: c->off's
 * index slot, which no later offset can have reused (c->off is within the
 * index's capacity of the end), does not point here.  Such bytes are what
 * the zeroing ahead leaves past a claim when it cannot tell them from the
 * next claim's word (format.md §4 step 4, what is left); the next claim's
 * first word replaces them.  A word changed since w was loaded (its claim
 * marked it meanwhile) is read again.
 */
static bool older_bytes(struct part *p, const struct part_cursor *c, uint64_t w)
{
	if (c->off >= c->next_seen)
		return true;
	if (part_offset_unmarked(p, c->pos, c->off, c->next_seen))
		return true;
	/* the word again, after the index: append_mark() takes the word
	 * before it stores the index, so a claim that marked meanwhile shows
	 * its own word here */
	fence_acquire();
	return load_acquire(part_commit_word(p, c->pos)) != w;
}

/* Damage, unless lapped (the bytes are a later lap's) or older bytes. */
static int damaged(struct part *p, struct part_cursor *c, uint64_t w, const char *what)
{
	if (lapped(p, c))
		return -ERANGE;
	if (older_bytes(p, c, w))
		return stall(c, false);
	return shm_err(-EBADMSG, "partition %s/%u: damaged frame at offset %llu (position %llu): %s; "
		       "seek past it, or run recovery on the partition",
		       p->hdr->topic, p->partition, (unsigned long long)c->off,
		       (unsigned long long)c->pos, what);
}

/* The frontier is not ready: remember where, unless we are lapped.  The
 * time it stalled is taken later, by part_stall_clock(), off the spinning
 * path (a clock read costs as much as a record here).  `marked`: the word
 * there is CLAIMED for c->off, so the claim is in sight without the claim
 * word (part_read). */
static int stall(struct part_cursor *c, bool marked)
{
	if (c->stall_pos != c->pos || !c->stalled) {
		c->stalled = true;
		c->stall_ns = 0;
		c->stall_pos = c->pos;
		c->stall_tail = c->tail_seen;
	}
	c->stall_marked = marked;
	return 0;
}

static int not_ready(struct part *p, struct part_cursor *c)
{
	if (lapped(p, c))
		return -ERANGE;
	if (unlikely(c->off < c->next_seen &&
		     !part_end_plausible(c->off, c->pos, c->tail_seen, c->next_seen)))
		return part_end_damaged(p, c->tail_seen, c->next_seen);
	return stall(c, false);
}

int64_t part_stall_clock(struct part_cursor *c)
{
	if (!c->stalled)
		return 0;
	if (!c->stall_ns)
		c->stall_ns = mono_ns();
	return c->stall_ns;
}

/* The lowest readable offset: `start`, never past the end even if the
 * header is damaged. */
static uint64_t start_of(const struct part *p, uint64_t next)
{
	uint64_t start = load_relaxed(&p->hdr->start);

	return start <= next ? start : next;
}

/* Has c->off been retired (by retention or recovery)?  `start` itself,
 * one load of a read-mostly line, not clamped to the end this cursor last
 * saw: a start moved past that end while the cursor stood at it retires
 * what came meanwhile.  Only a start past that end needs the end again
 * (loaded then), to tell it from a damaged one. */
static bool retired(struct part *p, struct part_cursor *c)
{
	uint64_t start = load_acquire(&p->hdr->start);

	if (likely(c->off >= start))
		return false;
	if (start > c->next_seen)
		refresh(p, c);
	return c->off < start_of(p, c->next_seen);
}

/* An ABORTED frame for c->off: pass over its range, or wait for its end
 * offset (stored just after the aborting CAS). */
static int skip_aborted(struct part *p, struct part_cursor *c, uint64_t w)
{
	uint64_t len = cw_len(w), end;

	SHM_TESTPOINT(read_aborted);
	/* a range to skip is trusted only where nothing can have lapped it:
	 * this bounds a chain of ranges by a lap, whatever the words say */
	if (c->tail_seen >= c->pos + p->cap)
		return -ERANGE;
	end = part_abort_end(p, c->off, c->pos, len, c->tail_seen, c->next_seen);
	if (!end) {
		refresh(p, c);
		if (len < FRAME_ABORT_MIN || c->pos + len > c->tail_seen)
			return damaged(p, c, w, "aborted range is shorter than 16 bytes or runs past "
				       "the tail");
		end = part_abort_end(p, c->off, c->pos, len, c->tail_seen, c->next_seen);
		if (!end)
			return not_ready(p, c);
	}
	/* The end offset is trusted only if nothing lapped the range while it
	 * was loaded: lapped, frame + 8 holds the offset of the next lap's
	 * frame, which passes the checks above, and committed records would be
	 * skipped as aborted.  So the tail once more, after the load (format.md
	 * §6 step 2, as step 3 does for frames): the fence orders the load of
	 * the end before it, and pairs with the claim CAS of the producer that
	 * overwrites it. */
	fence_acquire();
	if (lapped(p, c))
		return -ERANGE;
	c->skipped += end - c->off;
	c->off = end;
	c->pos += len;
	c->stalled = false;
	return 1;
}

/* Where the log's end was last cut back (format.md §14): `cuts` (even)
 * with *ret_off, or an odd value while a cut is under way. */
static uint64_t last_cut(const struct part *p, uint64_t *ret_off)
{
	/* pairs with the store_release of the even count in part_truncate() */
	uint64_t g = load_acquire(&p->hdr->cuts);

	*ret_off = load_relaxed(&p->hdr->cut_off);
	fence_acquire();
	return load_relaxed(&p->hdr->cuts) == g ? g : g | 1;
}

/*
 * The end was cut back since c was placed (format.md §14).  A cursor that
 * had not passed the cut (one cut since, at or below its offset) goes on
 * where it is: the records before the cut are the log's, and the cut's
 * jump leads it to the new ones.  Any other was placed at, or read,
 * records that are gone: it is put at the cut and told (-ESTALE).
 * While a cut is under way, nothing is ready.
 */
static int cut_seen(struct part *p, struct part_cursor *c)
{
	uint64_t off, g = last_cut(p, &off), from = c->off, to;
	bool one = (c->cuts & 1) ? g == c->cuts + 1 : g == c->cuts + 2;

	if (g & 1)
		return 0;
	if (one && c->off <= off) {
		c->cuts = g;
		c->claim_end = false;
		c->stalled = false;
		refresh(p, c); /* the end it saw may be past the cut */
		return 1;
	}
	to = from < off ? from : off;
	if (part_seek(p, c, to) < 0) {
		/* what it would go back to is gone too: a loss, for the reset
		 * policy, never a silent jump back into the new log */
		*c = (struct part_cursor){ .off = to, .cuts = g, .cut_from = from };
		return -ERANGE;
	}
	c->cut_from = from;
	return -ESTALE;
}

int part_read(struct part *p, struct part_cursor *c, struct frame_view *v)
{
	uint64_t status = load_relaxed(&p->hdr->status);

	if (unlikely(status & PART_STATUS_DELETED))
		return -EIDRM;
	/* the same cache line as status; relaxed: equal means no cut seen,
	 * and cut_seen() loads it again with acquire (part_truncate()) */
	if (unlikely(load_relaxed(&p->hdr->cuts) != c->cuts)) {
		int rc = cut_seen(p, c);

		if (rc != 1)
			return rc;
	}
	/* before every record, including one found at the end of what was
	 * read without loading the claim word (checked again after the
	 * read, with the tail: part_after_read()) */
	if (unlikely(retired(p, c)))
		return -ERANGE;
	for (;;) {
		uint64_t w, len;
		int rc;

		if (c->off >= c->next_seen) {
			/* At a claim's end reached by reading, the commit word
			 * is zero or the next claim's (format.md §6, I3): look
			 * at it alone, and leave the claim word's line to the
			 * producers, who write it for every claim.  So too
			 * while that word is CLAIMED for c->off: its producer
			 * is writing the frame, and the claim word would tell
			 * nothing more (an unblock needs the marked word, not
			 * the tail), yet taking its line now makes the
			 * producer's next claim wait to take it back.  The
			 * claim word is still loaded every PART_PEEKS_MAX
			 * checks, to see a claim stalled before it marked its
			 * frame, and on every check while the frontier is
			 * stalled at an unmarked word. */
			if (c->claim_end && (!c->stalled || c->stall_marked) &&
			    c->peeks < PART_PEEKS_MAX) {
				c->peeks++;
				/* pairs with the CAS/store_release of the commit word */
				w = load_acquire(part_commit_word(p, c->pos));
				if (w == 0)
					return 0;
				if (part_cw_for(w, c->off))
					goto have_word;
			}
			c->peeks = 0;
			refresh(p, c);
			if (c->off > c->next_seen || c->off < start_of(p, c->next_seen))
				return -ERANGE;
			/* every read after a seek passes here first; a cursor
			 * placed at a damaged claim word's tail goes no further */
			if (unlikely(c->pos & (FRAME_ALIGN - 1)))
				return shm_err(-EBADMSG, "partition %s/%u: its claim word is "
					       "damaged (tail %llu is not a frame boundary); run "
					       "recovery on it", p->hdr->topic, p->partition,
					       (unsigned long long)c->pos);
			if (c->off == c->next_seen) {
				c->stalled = false;
				return 0;
			}
			/* offsets the ring cannot hold: every loop bounded by
			 * the claim word would run for ever */
			if (unlikely(!part_end_plausible(c->off, c->pos, c->tail_seen, c->next_seen)))
				return part_end_damaged(p, c->tail_seen, c->next_seen);
		}
		/* pairs with the CAS/store_release of the commit word in append.c */
		w = load_acquire(part_commit_word(p, c->pos));
		if (!part_cw_for(w, c->off))
			return not_ready(p, c); /* zero, or a word of another lap */
have_word:
		len = cw_len(w);
		switch (cw_state(w)) {
		case FRAME_COMMITTED:
			if (!len_fits(p, c->pos, len) ||
			    frame_parse(frame_at(p, c->pos), len, c->off, v) < 0)
				return damaged(p, c, w, "lengths do not fit the frame");
			v->pos = c->pos;
			c->off++;
			c->pos += len;
			c->stalled = false;
			c->claim_end = true;
			if (v->offset < c->skip_until)
				continue;
			return 1;
		case FRAME_PADDING:
			/* to the ring's end, or a cut's jump to the new end
			 * (format.md §14); shorter than a lap either way (no
			 * claim pads from a lap's start: a padding that long
			 * would lead back to itself a lap later) */
			if (!part_padding_ok(p, c->pos, len, c->off, c->tail_seen)) {
				refresh(p, c);
				if (!part_padding_ok(p, c->pos, len, c->off, c->tail_seen))
					return damaged(p, c, w, "padding neither ends at the ring's "
						       "end nor jumps to the tail, or fills a "
						       "whole lap");
			}
			c->pos += len;
			continue;
		case FRAME_ABORTED:
			rc = skip_aborted(p, c, w);
			if (rc != 1)
				return rc;
			c->claim_end = true;
			continue;
		case FRAME_CLAIMED:
			return stall(c, true); /* this offset's own claim: not lapped */
		default:
			return not_ready(p, c);
		}
	}
}

/* -------------------------------------------------------------------- */
/* Seeks                                                                */

static uint64_t low_bound(struct part *p, pair128 snap)
{
	uint64_t lo = snap.hi > p->icap ? snap.hi - p->icap : 0;
	uint64_t start = start_of(p, snap.hi);

	return start > lo ? start : lo;
}

/* Is index[off] a position inside the intact part of the ring? */
static bool index_intact(struct part *p, uint64_t off, pair128 snap, uint64_t *ret_pos)
{
	uint64_t q = load_acquire(&p->index[off & p->imask]);

	if ((q & (FRAME_ALIGN - 1)) || q >= snap.lo || snap.lo >= q + p->cap)
		return false;
	*ret_pos = q;
	return true;
}

/* The position of `off`, checked against the frame found there: any word
 * written for `off` (a padding word leads to its frame, an aborted range
 * starts with it). */
static bool resolve(struct part *p, uint64_t off, pair128 snap, uint64_t *ret_pos)
{
	uint64_t q;

	if (!index_intact(p, off, snap, &q) || !part_cw_for(load_acquire(part_commit_word(p, q)), off))
		return false;
	*ret_pos = q;
	return true;
}

/* `cuts` is loaded before anything that placed it was: a cut that
 * begins after that is noticed at the first read (format.md §14). */
static void place(struct part_cursor *c, uint64_t off, uint64_t pos, uint64_t skip_until,
		  uint64_t cuts)
{
	*c = (struct part_cursor){ .off = off, .pos = pos, .skip_until = skip_until,
				   .cuts = cuts };
}

static uint64_t cuts_now(const struct part *p)
{
	/* pairs with the store_release of the count in part_truncate() */
	return load_acquire(&p->hdr->cuts);
}

#define RESOLVE_BACK 4096 /* how far back a seek looks for a known frame */

int part_seek(struct part *p, struct part_cursor *c, uint64_t off)
{
	uint64_t cuts = cuts_now(p);
	pair128 snap = load_pair(&p->hdr->claim);
	uint64_t lo = low_bound(p, snap), pos;

	if (off == snap.hi) {
		place(c, off, snap.lo, off, cuts);
		return 0;
	}
	if (off > snap.hi || off < lo)
		return -ERANGE;
	/* An offset inside an aborted range or still in flight has no index
	 * entry: start at the nearest known frame before it and pass over
	 * what lies between. */
	for (uint64_t o = off, n = 0; n < RESOLVE_BACK; o--, n++) {
		if (resolve(p, o, snap, &pos)) {
			place(c, o, pos, off, cuts);
			return 0;
		}
		if (o == lo)
			break;
	}
	return -ERANGE;
}

int part_seek_end(struct part *p, struct part_cursor *c)
{
	uint64_t cuts = cuts_now(p);
	pair128 snap = load_pair(&p->hdr->claim);

	place(c, snap.hi, snap.lo, snap.hi, cuts);
	return 0;
}

/* Smallest offset in [lo, end) whose index entry is intact, by bisection:
 * positions grow with offsets, so "intact" is false then true. */
static uint64_t first_intact(struct part *p, pair128 snap, uint64_t lo)
{
	uint64_t hi = snap.hi, pos;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (index_intact(p, mid, snap, &pos))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void part_bounds(struct part *p, uint64_t *ret_low, uint64_t *ret_end)
{
	pair128 snap = load_pair(&p->hdr->claim);
	uint64_t pos, o = first_intact(p, snap, low_bound(p, snap));

	while (o < snap.hi && !resolve(p, o, snap, &pos))
		o++;
	*ret_low = o;
	*ret_end = snap.hi;
}

int part_seek_begin(struct part *p, struct part_cursor *c)
{
	for (int tries = 0; tries < 16; tries++) {
		uint64_t cuts = cuts_now(p);
		pair128 snap = load_pair(&p->hdr->claim);
		uint64_t pos, o = first_intact(p, snap, low_bound(p, snap));

		/* An aborted hole has no entry of its own: step to the next. */
		while (o < snap.hi && !resolve(p, o, snap, &pos))
			o++;
		if (o == snap.hi) {
			place(c, snap.hi, snap.lo, snap.hi, cuts);
			return 0;
		}
		/* Check the choice was not overwritten while we looked. */
		if (load_acquire(&p->hdr->claim.lo) < pos + p->cap) {
			place(c, o, pos, o, cuts);
			return 0;
		}
	}
	return part_seek_end(p, c);
}

/* An offset inside an aborted range has its index pointing at the range,
 * whose word belongs to the range's first offset: the offset after the
 * range, or o + 1 if o is not in one. */
static uint64_t inside_abort(struct part *p, uint64_t o, pair128 snap)
{
	uint64_t q, w, end;
	uint32_t back;

	if (!index_intact(p, o, snap, &q))
		return o + 1;
	w = load_acquire(part_commit_word(p, q));
	back = (uint32_t)o - cw_off(w);
	if (w == 0 || cw_state(w) != FRAME_ABORTED || back == 0 || back > o)
		return o + 1;
	end = part_abort_end(p, o - back, q, cw_len(w), snap.lo, snap.hi);
	return end > o ? end : o + 1;
}

/* Timestamp of the first committed frame at or after `off` (within a few
 * frames, an aborted range counting as one), or INT64_MAX if none. */
static int64_t probe_time(struct part *p, pair128 snap, uint64_t off)
{
	uint64_t o = off;

	for (int n = 0; n < 64 && o < snap.hi; n++) {
		uint64_t pos, w, len, end;
		int64_t ts;

		if (!resolve(p, o, snap, &pos)) {
			o = inside_abort(p, o, snap);
			continue;
		}
		w = load_acquire(part_commit_word(p, pos));
		len = cw_len(w);
		if (cw_state(w) == FRAME_ABORTED) {
			end = part_abort_end(p, o, pos, len, snap.lo, snap.hi);
			o = end ? end : o + 1;
			continue;
		}
		if (cw_state(w) != FRAME_COMMITTED || !len_fits(p, pos, len)) {
			o++;
			continue;
		}
		ts = load_relaxed(&frame_at(p, pos)->timestamp_ns);
		if (part_intact(p, pos))
			return ts;
		o++;
	}
	return INT64_MAX;
}

int part_seek_time(struct part *p, struct part_cursor *c, int64_t ts_ns)
{
	pair128 snap = load_pair(&p->hdr->claim);
	uint64_t lo = first_intact(p, snap, low_bound(p, snap)), hi = snap.hi;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (probe_time(p, snap, mid) >= ts_ns)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo >= snap.hi)
		return part_seek_end(p, c);
	if (part_seek(p, c, lo) == 0)
		return 0;
	return part_seek_begin(p, c);
}

size_t part_first_lost(const struct part *p, const uint64_t *pos, const uint64_t *off, size_t n,
		       size_t stride)
{
	const uint8_t *pp = (const uint8_t *)pos, *op = (const uint8_t *)off;
	uint64_t horizon, tail = 0, start;
	bool have_tail = false;

	/* orders the reads of the frames before the loads below; pairs with
	 * the horizon's raise (part_horizon_raise()) before the claim CAS of
	 * the producer that overwrites them, with that claim CAS itself, and
	 * with the CAS of start in part_retire() */
	fence_acquire();
	horizon = part_horizon_load(p);
	start = load_acquire(&p->hdr->start);
	for (size_t i = 0; i < n; i++) {
		uint64_t fpos, foff;

		memcpy(&fpos, pp + i * stride, sizeof fpos);
		memcpy(&foff, op + i * stride, sizeof foff);
		if (foff < start)
			return i;
		if (likely(part_horizon_intact(p, horizon, fpos)))
			continue;
		/* a step from a lap, damaged, or not kept: the tail decides */
		if (!have_tail) {
			tail = load_acquire(&p->hdr->claim.lo);
			have_tail = true;
		}
		if (tail >= fpos + p->cap)
			return i;
	}
	return n;
}

bool part_frame_crc_ok(const struct part *p, uint64_t pos, size_t payload_len)
{
	const struct frame_hdr *h = (const void *)part_at(p, pos);

	return frame_crc(h, payload_len) == load_relaxed(&h->crc);
}

void part_ends(const struct part *p, uint64_t *ret_tail, uint64_t *ret_next)
{
	pair128 snap = load_pair(&p->hdr->claim);

	*ret_tail = snap.lo;
	*ret_next = snap.hi;
}

void part_count_lapped(struct part *p)
{
	fetch_add_relaxed(&p->hdr->lapped_reads, 1);
}

uint64_t part_retire(struct part *p, uint64_t off, uint64_t *ret_from)
{
	uint64_t start = load_acquire(&p->hdr->start);

	while (off > start) {
		/* pairs with the load_acquire of start in part_first_lost() and
		 * retired() */
		if (cas(&p->hdr->start, &start, off)) {
			*ret_from = start;
			part_notify(p);
			return off - start;
		}
	}
	return 0;
}
