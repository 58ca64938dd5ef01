/*
 * recover.c - the recovery scan (format.md §8).
 *
 * Two strategies.  Normally the claim word and index are sound and the
 * scan walks the log from its lowest readable offset, following frame
 * lengths.  If they are not (random bytes over the header or index), it
 * rebuilds them from the data alone: it finds the valid frame with the
 * highest offset, then the longest chain of valid frames that ends there.
 *
 * The data is untrusted throughout: every frame is checked (lengths
 * inside the ring, offset field, commit bits, CRC32C, record headers)
 * before anything it says is used.
 *
 * The status word is set right separately (part_status_repair), against
 * what the caller read in the bus directory: it needs the admin lock, not
 * the exclusive hold the scan needs.
 */
#include "recover.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "append.h"
#include "frame.h"
#include "guard.h"
#include "horizon.h"
#include "../util/proc.h"
#include "truncate.h"
#include "unblock.h"

struct walker {
	struct part *p;
	struct part_recovery *r;
	uint64_t tail, next; /* bounds of the claimed region */
};

static bool len_fits(const struct part *p, uint64_t pos, uint64_t len)
{
	return len >= FRAME_HDR_SIZE && len <= p->max_frame && (pos & p->mask) + len <= p->cap;
}

static const struct frame_hdr *frame_at(const struct part *p, uint64_t pos)
{
	return (const struct frame_hdr *)(const void *)part_at(p, pos);
}

/* A committed frame for `off` at `pos`, whole and with a good CRC?  NULL
 * if so, else what is wrong. */
static const char *check_frame(const struct part *p, uint64_t pos, uint64_t off, uint64_t w)
{
	const struct frame_hdr *h = frame_at(p, pos);
	uint64_t len = cw_len(w);
	struct frame_view v;

	if (cw_state(w) != FRAME_COMMITTED || cw_off(w) != (uint32_t)off)
		return "no committed frame for the offset";
	if (off >= PART_POS_MAX)
		return "offset out of range";
	if (!len_fits(p, pos, len) || frame_parse(h, len, off, &v) < 0)
		return "frame lengths are damaged";
	if (frame_crc(h, frame_payload_len(&v)) != v.crc)
		return "CRC mismatch";
	if (frame_headers_check(v.headers, v.headers_len, v.header_count) < 0)
		return "record headers are damaged";
	return NULL;
}

/* Within [pos + 8, limit), the first committed frame for an offset in
 * (off, before) with a good CRC: a frame the index lost. */
static uint64_t physical_anchor(struct part *p, uint64_t off, uint64_t pos, uint64_t limit,
				uint64_t before, uint64_t *ret_pos)
{
	for (uint64_t q = pos + FRAME_ALIGN; q < limit; q += FRAME_ALIGN) {
		uint64_t w = *part_commit_word(p, q);
		const struct frame_hdr *h = frame_at(p, q);
		uint64_t o;

		if (cw_state(w) != FRAME_COMMITTED || (q & p->mask) + FRAME_HDR_SIZE > p->cap)
			continue;
		o = h->offset;
		if (o <= off || o >= before || check_frame(p, q, o, w))
			continue;
		*ret_pos = q;
		return o;
	}
	*ret_pos = limit;
	return before;
}

static void set_reason(struct part_recovery *r, uint64_t off, uint64_t pos, const char *why)
{
	snprintf(r->reason, sizeof r->reason, "%s at offset %llu (position %llu)", why,
		 (unsigned long long)off, (unsigned long long)pos);
}

/* The offset after an aborted range of `o` at pos (len bytes): the one
 * stored at frame + 8, else the one the next word carries, else the end. */
static uint64_t abort_end(struct walker *wk, uint64_t o, uint64_t pos, uint64_t len)
{
	struct part *p = wk->p;
	uint64_t end = part_abort_end(p, o, pos, len, wk->tail, wk->next), b = pos + len, w;
	uint32_t d;

	if (end || len < FRAME_ABORT_MIN || b > wk->tail)
		return end;
	if (b == wk->tail)
		return wk->next;
	w = *part_commit_word(p, b);
	d = cw_off(w) - (uint32_t)o;
	return w && d >= 1 && d <= wk->next - o ? o + d : 0;
}

/* Walk from (o, pos) to the tail; returns where the valid log ends. */
static void walk(struct walker *wk, uint64_t *io, uint64_t *ipos)
{
	struct part *p = wk->p;
	uint64_t o = *io, pos = *ipos;

	while (pos < wk->tail && o < wk->next) {
		uint64_t *cwp = part_commit_word(p, pos), w = *cwp, len = cw_len(w), q, a;
		const char *bad;

		switch (part_cw_for(w, o) ? cw_state(w) : (enum frame_state)-1) {
		case FRAME_COMMITTED:
			bad = check_frame(p, pos, o, w);
			if (bad || pos + len > wk->tail) {
				set_reason(wk->r, o, pos, bad ? bad : "frame runs past the tail");
				goto out;
			}
			p->index[o & p->imask] = pos;
			wk->r->frames++;
			o++;
			pos += len;
			continue;
		case FRAME_PADDING:
			/* to the ring's end, or a cut's jump (format.md §14) */
			if (!part_padding_ok(p, pos, len, o, wk->tail) || pos + len > wk->tail) {
				set_reason(wk->r, o, pos, "padding is damaged");
				goto out;
			}
			pos += len;
			continue;
		case FRAME_ABORTED:
			a = abort_end(wk, o, pos, len);
			if (!a) {
				set_reason(wk->r, o, pos, "aborted range is damaged");
				goto out;
			}
			part_abort_finish(p, o, pos, a);
			o = a;
			pos += len;
			continue;
		case FRAME_CLAIMED:
			if (!len_fits(p, pos, len) || pos + len > wk->tail)
				break;
			/* A claim its producer never committed: nobody appends
			 * during recovery, so its producer is gone. */
			*cwp = cw_make(FRAME_ABORTED, len, o);
			part_abort_finish(p, o, pos, o + 1);
			wk->r->aborted++;
			o++;
			pos += len;
			continue;
		default:
			break;
		}
		/* Nothing written for `o` here: a producer died between its claim
		 * and its first write.  Abort up to the next claim boundary that
		 * is known, announced, indexed, or found by a scan of the bytes. */
		a = part_next_boundary(p, o, pos, wk->tail, wk->next, &q);
		a = physical_anchor(p, o, pos, q, a, &q);
		if (q - pos < FRAME_ABORT_MIN) {
			set_reason(wk->r, o, pos, "no frame where one should start");
			goto out;
		}
		*cwp = cw_make(FRAME_ABORTED, q - pos, o);
		part_abort_finish(p, o, pos, a);
		wk->r->aborted += a - o;
		o = a;
		pos = q;
	}
out:
	*io = o;
	*ipos = pos;
}

/* The lowest offset whose index entry leads to its frame. */
static bool find_start(struct part *p, uint64_t tail, uint64_t next, uint64_t *ret_off,
		       uint64_t *ret_pos)
{
	uint64_t lo = next > p->icap ? next - p->icap : 0;

	if (p->hdr->start > lo)
		lo = p->hdr->start;
	if (lo == next) {
		*ret_off = next;
		*ret_pos = tail;
		return true;
	}
	for (uint64_t o = lo; o < next; o++) {
		uint64_t q = p->index[o & p->imask], w;

		if ((q & (FRAME_ALIGN - 1)) || q >= tail || tail >= q + p->cap)
			continue;
		w = *part_commit_word(p, q);
		if (part_cw_for(w, o)) {
			*ret_off = o;
			*ret_pos = q;
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Rebuild from the data alone                                         */

/* The next valid committed frame at or after physical position `ph`
 * (< cap): its physical position, or cap if none. */
static uint64_t scan_valid(struct part *p, uint64_t ph, uint64_t *ret_off, uint64_t *ret_len)
{
	for (; ph + FRAME_HDR_SIZE <= p->cap; ph += FRAME_ALIGN) {
		uint64_t w = *part_commit_word(p, ph);
		uint64_t o = frame_at(p, ph)->offset;

		if (cw_state(w) == FRAME_COMMITTED && !check_frame(p, ph, o, w)) {
			*ret_off = o;
			*ret_len = cw_len(w);
			return ph;
		}
	}
	return p->cap;
}

/*
 * Follow the chain of frames from (o, ph) until offset `last` is passed.
 * Returns true with *dist the chain's length in bytes if it ends exactly
 * after `last`; false with *dist where it broke.
 */
static bool chain_to(struct part *p, uint64_t o, uint64_t ph, uint64_t last, uint64_t *dist)
{
	*dist = 0;
	while (*dist < p->cap) {
		uint64_t w = *part_commit_word(p, ph), len = cw_len(w);

		if (cw_state(w) == FRAME_COMMITTED) {
			if (check_frame(p, ph, o, w))
				return false;
			if (o == last) {
				*dist += len;
				return true;
			}
			o++;
		} else if (cw_state(w) == FRAME_PADDING && cw_off(w) == (uint32_t)o &&
			   len >= FRAME_ALIGN && len < p->cap) {
			/* padding: the same offset at the next lap's start, or
			 * after a cut's jump (format.md §14) */
		} else if (cw_state(w) == FRAME_ABORTED && part_cw_for(w, o) &&
			   len >= FRAME_ABORT_MIN && len < p->cap && (ph & p->mask) + 16 <= p->cap &&
			   *(const uint64_t *)(const void *)part_at(p, ph + 8) > o &&
			   *(const uint64_t *)(const void *)part_at(p, ph + 8) <= last) {
			o = *(const uint64_t *)(const void *)part_at(p, ph + 8);
		} else {
			return false;
		}
		*dist += len;
		ph = (ph + len) & p->mask;
	}
	return false;
}

static void rebuild(struct part *p, struct part_recovery *r)
{
	uint64_t best_off = 0, best_ph = p->cap, best_len = 0, o, len, ph, tail_ph, lap;
	uint64_t chain = 0, s_off = 0;

	r->rebuilt = true;
	lap = (r->old_tail < (1ULL << 62) ? r->old_tail / p->cap : 0) + 1;
	/* 1. the valid frame with the highest offset ends the log */
	for (ph = scan_valid(p, 0, &o, &len); ph < p->cap; ph = scan_valid(p, ph + len, &o, &len))
		if (best_ph == p->cap || o > best_off) {
			best_off = o;
			best_ph = ph;
			best_len = len;
		}
	if (best_ph == p->cap) {
		uint64_t next = r->old_next < PART_POS_MAX ? r->old_next : 0;

		r->new_tail = lap * p->cap;
		r->new_next = next;
		r->first_off = next;
		p->hdr->start = next;
		snprintf(r->reason, sizeof r->reason, "no valid frame in the ring");
		return;
	}
	tail_ph = (best_ph + best_len) & p->mask;
	/* 2. the earliest frame whose chain reaches it: try candidates from
	 * the oldest bytes (just past the tail) forward; a broken chain rules
	 * out every start before its break, so resume past the break */
	for (uint64_t k = 0; k < p->cap;) {
		uint64_t at = (tail_ph + k) & p->mask, w = *part_commit_word(p, at), dist, co;

		if ((at & p->mask) + FRAME_HDR_SIZE > p->cap || cw_state(w) != FRAME_COMMITTED ||
		    check_frame(p, at, co = frame_at(p, at)->offset, w) || co > best_off) {
			k += FRAME_ALIGN;
			continue;
		}
		if (chain_to(p, co, at, best_off, &dist) && ((at + dist) & p->mask) == tail_ph) {
			s_off = co;
			chain = dist;
			break;
		}
		k += dist > FRAME_ALIGN ? dist : FRAME_ALIGN;
	}
	if (!chain) {
		s_off = best_off;
		chain = best_len;
	}
	/* 3. absolute positions: the new tail lies a lap past the old one */
	r->new_tail = lap * p->cap + tail_ph;
	r->new_next = best_off + 1;
	r->first_off = s_off;
	p->hdr->start = s_off;
	{
		struct walker wk = { .p = p, .r = r, .tail = r->new_tail, .next = r->new_next };
		uint64_t wo = s_off, wpos = r->new_tail - chain;

		walk(&wk, &wo, &wpos);
	}
}

/*
 * Cut the log at (o, pos).  Offsets and positions never go back: one
 * aborted range covers the cut bytes and offsets up to the old end, so
 * readers waiting at the old end, and groups committed past the cut,
 * resume at the next new record.
 */
static void cut(struct part *p, struct part_recovery *r, uint64_t o, uint64_t pos, pair128 claim)
{
	r->cut = claim.hi - o;
	r->cut_bytes = claim.lo - pos;
	if (!r->reason[0])
		set_reason(r, o, pos, "the log ends before the claim word says");
	if (o < claim.hi && claim.lo - pos >= FRAME_ABORT_MIN) {
		*part_commit_word(p, pos) = cw_make(FRAME_ABORTED, claim.lo - pos, o);
		part_abort_finish(p, o, pos, claim.hi);
		r->new_tail = claim.lo;
		r->new_next = claim.hi;
		return;
	}
	/* no room for a range (a damaged claim word): the bytes go */
	r->new_tail = pos;
	r->new_next = o;
}

/* Free the writer and consumer slots, and the unblock guard, of processes
 * that are gone. */
static void release_dead_slots(struct part *p)
{
	part_guard_clear_dead(p);
	for (int i = 0; i < PART_MAX_WRITERS; i++) {
		struct part_writer_slot *s = &p->hdr->writers[i];

		if (s->pid && !proc_alive((pid_t)s->pid, s->start_time))
			part_writer_slot_free(p, s, s->pid);
	}
	part_bp_reap(p);
}

int part_recover(struct part *p, struct part_recovery *r)
{
	struct walker wk = { .p = p, .r = r };
	pair128 claim = p->hdr->claim;
	uint64_t o, pos;

	if (p->readonly)
		return -EROFS;
	memset(r, 0, sizeof *r);
	r->old_tail = claim.lo;
	r->old_next = claim.hi;
	wk.tail = claim.lo;
	wk.next = claim.hi;
	if ((claim.lo & (FRAME_ALIGN - 1)) || claim.hi < p->hdr->start ||
	    claim.lo >= PART_POS_MAX || claim.hi >= PART_POS_MAX ||
	    !find_start(p, claim.lo, claim.hi, &o, &pos)) {
		rebuild(p, r);
	} else {
		r->first_off = o;
		if (o > p->hdr->start)
			p->hdr->start = o;
		walk(&wk, &o, &pos);
		r->new_tail = pos;
		r->new_next = o;
		if (o < claim.hi || pos < claim.lo)
			cut(p, r, o, pos, claim);
	}
	*part_commit_word(p, r->new_tail) = 0;
	p->hdr->claim = (pair128){ .lo = r->new_tail, .hi = r->new_next };
	part_horizon_reset(p, r->new_tail); /* horizon >= tail + 8 (§8) */
	release_dead_slots(p);
	p->hdr->recoveries++;
	p->hdr->recovered_cut += r->cut;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return 0;
}

int part_status_repair(struct part *p, bool live, uint64_t want, uint64_t *ret_old)
{
	uint64_t old = load_acquire(&p->hdr->status);

	if (p->readonly)
		return -EROFS;
	if (!live) {
		*ret_old = old;
		if (!(old & PART_STATUS_DELETED))
			part_mark_deleted(p); /* wakes its waiters, who then see it */
		return 0;
	}
	/* only admin calls write the word, under the admin lock we hold; the
	 * CAS keeps a concurrent writer outside it from being undone blindly */
	while (old != want && !cas(&p->hdr->status, &old, want))
		;
	*ret_old = old;
	return 0;
}
