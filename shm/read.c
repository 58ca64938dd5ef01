/*
 * read.c - the read protocol (format.md §6) and seeks.
 *
 * A reader trusts nothing but the commit word it loads with acquire, and
 * that only when the word's offset bits say it was written for the offset
 * the reader expects in this lap.  Every length is bounds-checked before
 * use.  A frame is handed out only if the tail, loaded after the frame was
 * read, shows that no producer can have overwritten it meanwhile.
 */
#include "read.h"

#include <errno.h>

#include "clock.h"
#include "error.h"

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

static int damaged(struct part *p, struct part_cursor *c, const char *what)
{
	if (lapped(p, c))
		return -ERANGE;
	return shm_err(-EBADMSG, "partition %s/%u: damaged frame at offset %llu (position %llu): %s; "
		       "seek past it, or run recovery on the partition",
		       p->hdr->topic, p->partition, (unsigned long long)c->off,
		       (unsigned long long)c->pos, what);
}

/* The frontier is not ready: remember since when, unless we are lapped. */
static int not_ready(struct part *p, struct part_cursor *c)
{
	if (lapped(p, c))
		return -ERANGE;
	if (c->stall_ns == 0 || c->stall_pos != c->pos) {
		c->stall_ns = mono_ns();
		c->stall_pos = c->pos;
	}
	return 0;
}

int part_read(struct part *p, struct part_cursor *c, struct frame_view *v)
{
	uint64_t status = load_relaxed(&p->hdr->status);

	if (unlikely(status & PART_STATUS_DELETED))
		return -EIDRM;
	if (unlikely(c->off < load_relaxed(&p->hdr->start)))
		return -ERANGE;
	for (;;) {
		uint64_t w, len;
		uint32_t d;

		if (c->off >= c->next_seen) {
			refresh(p, c);
			if (c->off > c->next_seen)
				return -ERANGE;
			if (c->off == c->next_seen) {
				c->stall_ns = 0;
				return 0;
			}
		}
		/* pairs with the CAS/store_release of the commit word in append.c */
		w = load_acquire(part_commit_word(p, c->pos));
		len = cw_len(w);
		switch (cw_state(w)) {
		case FRAME_COMMITTED:
			if (cw_off(w) != (uint32_t)c->off)
				return not_ready(p, c);
			if (!len_fits(p, c->pos, len) ||
			    frame_parse(frame_at(p, c->pos), len, c->off, v) < 0)
				return damaged(p, c, "lengths do not fit the frame");
			v->pos = c->pos;
			c->off++;
			c->pos += len;
			c->stall_ns = 0;
			if (v->offset < c->skip_until)
				continue;
			return 1;
		case FRAME_PADDING:
			if (cw_off(w) != (uint32_t)c->off)
				return not_ready(p, c);
			if ((c->pos & p->mask) + len != p->cap)
				return damaged(p, c, "padding does not end at the ring's end");
			c->pos += len;
			continue;
		case FRAME_ABORTED:
			d = cw_off(w) - (uint32_t)c->off;
			if (w == 0 || d == 0 || d >= 0x80000000u)
				return not_ready(p, c);
			if (d > c->next_seen - c->off || c->pos + len > c->tail_seen)
				refresh(p, c);
			if (len < FRAME_ALIGN || d > c->next_seen - c->off || c->pos + len > c->tail_seen)
				return damaged(p, c, "aborted range runs past the tail");
			c->off += d;
			c->pos += len;
			c->skipped += d;
			c->stall_ns = 0;
			continue;
		case FRAME_CLAIMED:
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
	uint64_t start = load_acquire(&p->hdr->start);

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

/* The position of `off`, checked against the frame found there. */
static bool resolve(struct part *p, uint64_t off, pair128 snap, uint64_t *ret_pos)
{
	uint64_t q, w;

	if (!index_intact(p, off, snap, &q))
		return false;
	w = load_acquire(part_commit_word(p, q));
	if (w == 0 || cw_state(w) == FRAME_PADDING)
		return false;
	if (cw_state(w) == FRAME_ABORTED) {
		uint32_t d = cw_off(w) - (uint32_t)off;

		if (d == 0 || d >= 0x80000000u)
			return false;
	} else if (cw_off(w) != (uint32_t)off) {
		return false;
	}
	*ret_pos = q;
	return true;
}

static void place(struct part_cursor *c, uint64_t off, uint64_t pos, uint64_t skip_until)
{
	*c = (struct part_cursor){ .off = off, .pos = pos, .skip_until = skip_until };
}

#define RESOLVE_BACK 4096 /* how far back a seek looks for a known frame */

int part_seek(struct part *p, struct part_cursor *c, uint64_t off)
{
	pair128 snap = load_pair(&p->hdr->claim);
	uint64_t lo = low_bound(p, snap), pos;

	if (off == snap.hi) {
		place(c, off, snap.lo, off);
		return 0;
	}
	if (off > snap.hi || off < lo)
		return -ERANGE;
	/* An offset inside an aborted range or still in flight has no index
	 * entry: start at the nearest known frame before it and pass over
	 * what lies between. */
	for (uint64_t o = off, n = 0; n < RESOLVE_BACK; o--, n++) {
		if (resolve(p, o, snap, &pos)) {
			place(c, o, pos, off);
			return 0;
		}
		if (o == lo)
			break;
	}
	return -ERANGE;
}

int part_seek_end(struct part *p, struct part_cursor *c)
{
	pair128 snap = load_pair(&p->hdr->claim);

	place(c, snap.hi, snap.lo, snap.hi);
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
		pair128 snap = load_pair(&p->hdr->claim);
		uint64_t pos, o = first_intact(p, snap, low_bound(p, snap));

		/* An aborted hole has no entry of its own: step to the next. */
		while (o < snap.hi && !resolve(p, o, snap, &pos))
			o++;
		if (o == snap.hi) {
			place(c, snap.hi, snap.lo, snap.hi);
			return 0;
		}
		/* Check the choice was not overwritten while we looked. */
		if (load_acquire(&p->hdr->claim.lo) < pos + p->cap) {
			place(c, o, pos, o);
			return 0;
		}
	}
	return part_seek_end(p, c);
}

/* Timestamp of the first committed frame at or after `off` (within a few
 * offsets), or INT64_MAX if none is found. */
static int64_t probe_time(struct part *p, pair128 snap, uint64_t off)
{
	for (uint64_t o = off; o < snap.hi && o < off + 64; o++) {
		uint64_t pos, w;
		int64_t ts;

		if (!resolve(p, o, snap, &pos))
			continue;
		w = load_acquire(part_commit_word(p, pos));
		if (cw_state(w) != FRAME_COMMITTED)
			continue;
		ts = load_relaxed(&frame_at(p, pos)->timestamp_ns);
		if (part_intact(p, pos))
			return ts;
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

uint32_t part_wait_prepare(struct part *p)
{
	uint32_t n = load_acquire(&p->hdr->notify);

	if (p->readonly)
		return n;
	/* pairs with part_notify()'s load after the producer's commit CAS */
	while (!(n & NOTIFY_WAITERS))
		if (cas(&p->hdr->notify, &n, n | NOTIFY_WAITERS))
			return n | NOTIFY_WAITERS;
	return n;
}
