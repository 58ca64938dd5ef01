/*
 * replica.c - appending what a mirror's source sent to a replica
 * partition (format.md §13), with the claim, mark and publish steps of
 * append.c (format.md §4), so every invariant of the ring holds as for
 * any producer:
 *
 * 1. Check the whole batch (mp_entry_next): every entry starts at the
 *    offset the previous one ended, the first at the replica's end.
 * 2. Runs of committed frames are claimed as part_append claims records
 *    (one CAS for up to 64), marked CLAIMED and indexed; each frame's
 *    bytes after the commit word are copied from the batch (the pid
 *    last, just before its commit: while CLAIMED the pid is ours, for
 *    the unblocker), then committed in order.
 * 3. An aborted range (offsets the source has no record at) and a gap
 *    are claimed as one frame of 8 bytes per offset (at least 16) that
 *    takes all their offsets, marked, indexed and aborted at once with
 *    its end offset: format.md §6 step 4's bound (an offset takes at
 *    least a word of the ring) holds, and a long gap is several ranges.
 */
#include "replica.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "append_int.h"
#include "../util/clock.h"
#include "../util/error.h"
#include "mirrorproto.h"

#define RUN_MAX 64
#define BLOCK_NS 1000000000LL /* backpressure: wait this long for room */

int replica_open(struct replica *r, struct part *p)
{
	uint64_t st = load_relaxed(&p->hdr->status);

	if (p->readonly || !(st & PART_STATUS_REPLICA) || (st & PART_STATUS_DELETED))
		return shm_err(-EROFS, "partition %s/%u is not a writable replica (status %#llx); "
			       "a mirror writes only topics it created as replicas", p->hdr->topic,
			       p->partition, (unsigned long long)st);
	r->p = p;
	return part_writer_init(&r->w, p);
}

void replica_close(struct replica *r)
{
	if (r->p)
		part_writer_fini(&r->w);
	r->p = NULL;
}

uint64_t replica_end(const struct replica *r)
{
	return load_pair(&r->p->hdr->claim).hi;
}

static int writable(struct replica *r)
{
	uint64_t st = load_relaxed(&r->p->hdr->status);

	if (st & PART_STATUS_DELETED)
		return -EIDRM;
	return (st & PART_STATUS_REPLICA) ? 0 : -EROFS;
}

/* The resume point: everything before {pos, off} is published.  One
 * writer; the 16-byte CAS makes the pair atomic for replica_resume. */
static void set_done(struct part *p, uint64_t pos, uint64_t off)
{
	pair128 cur = load_pair(&p->hdr->replica_done);

	while (!cas128(&p->hdr->replica_done, &cur, (pair128){ .lo = pos, .hi = off }))
		;
}

/* Our claim must begin at the offset the batch holds: nobody else writes
 * a replica, so anything else means another writer got in. */
static int claimed_at(struct replica *r, const struct plan *pl, uint64_t off)
{
	if (pl->off == off)
		return 0;
	return shm_err(-EBUSY, "replica %s/%u: a claim for offset %llu got offset %llu: another "
		       "process writes this replica; only its mirror may", r->p->hdr->topic,
		       r->p->partition, (unsigned long long)off, (unsigned long long)pl->off);
}

/* Step 3: offsets [off, end) as aborted ranges. */
static int put_hole(struct replica *r, uint64_t off, uint64_t end)
{
	struct part *p = r->p;

	while (off < end) {
		uint64_t n = end - off, len;
		struct plan pl;
		int rc;

		if (n > p->max_frame / FRAME_ALIGN - 1)
			n = p->max_frame / FRAME_ALIGN - 1;
		len = n < 2 ? FRAME_ABORT_MIN : n * FRAME_ALIGN;
		rc = append_claim(&r->w, &len, 1, n, PART_APPEND_BLOCK, mono_ns() + BLOCK_NS, &pl);
		if (rc)
			return rc;
		if (!append_mark(p, &pl, &len)) {
			append_idle(&r->w);
			return -ECANCELED;
		}
		/* the range's offsets lead to it (format.md §7), at most a
		 * whole index of them */
		for (uint64_t i = 1; i < n && i <= p->imask; i++)
			store_relaxed(&p->index[(off + i) & p->imask], pl.start);
		append_abort_range(p, pl.start, off, len, off + n);
		set_done(p, pl.end, off + n);
		append_idle(&r->w);
		rc = claimed_at(r, &pl, off);
		if (rc)
			return rc;
		off += n;
	}
	part_notify(p);
	return 0;
}

/* Step 2 for one claimed run of frames. */
static size_t copy_run(struct part *p, const struct plan *pl, const struct mp_entry *e,
		       const uint64_t *lens)
{
	uint64_t pos = pl->start;
	size_t i;

	for (i = 0; i < pl->k; i++) {
		uint8_t *dst = part_at(p, pos);

		/* everything after the commit word but the pid */
		memcpy(dst + 8, e[i].frame + 8, offsetof(struct frame_hdr, pid) - 8);
		memcpy(dst + FRAME_CRC_END, e[i].frame + FRAME_CRC_END, e[i].len - FRAME_CRC_END);
		pos += lens[i];
	}
	pos = pl->start;
	for (i = 0; i < pl->k; i++) {
		struct frame_hdr *h = (struct frame_hdr *)(void *)part_at(p, pos);
		uint32_t pid;

		memcpy(&pid, e[i].frame + offsetof(struct frame_hdr, pid), sizeof pid);
		store_relaxed(&h->pid, pid);
		if (!append_commit_frame(p, pos, pl->off + i, lens[i]))
			break;
		pos += lens[i];
		set_done(p, pos, pl->off + i + 1);
	}
	for (size_t j = i; j < pl->k; j++) {
		append_abort_range(p, pos, pl->off + j, lens[j], pl->off + j + 1);
		pos += lens[j];
	}
	return i;
}

static int put_run(struct replica *r, const struct mp_entry *e, size_t n)
{
	uint64_t lens[RUN_MAX];

	while (n) {
		struct plan pl;
		size_t got;
		int rc;

		for (size_t i = 0; i < n; i++)
			lens[i] = e[i].len;
		rc = append_claim(&r->w, lens, n, 0, PART_APPEND_BLOCK, mono_ns() + BLOCK_NS, &pl);
		if (rc)
			return rc;
		if (!append_mark(r->p, &pl, lens)) {
			append_idle(&r->w);
			return -ECANCELED;
		}
		got = copy_run(r->p, &pl, e, lens);
		append_idle(&r->w);
		part_notify(r->p);
		rc = claimed_at(r, &pl, e[0].off);
		if (rc)
			return rc;
		if (got < pl.k)
			return -ECANCELED;
		e += got;
		n -= got;
	}
	return 0;
}

/* Step 1: the whole batch, before anything is appended. */
static int check_batch(struct replica *r, const uint8_t *frames, size_t len, uint32_t count,
		       uint64_t first, uint64_t next)
{
	uint64_t off = first, end = replica_end(r);
	size_t at = 0, seen = 0;
	struct mp_entry e;
	const char *why = "";
	int rc;

	if (first != end)
		return shm_err(-EBADMSG, "replica %s/%u: a batch starts at offset %llu, but the "
			       "replica ends at %llu (offsets must continue)", r->p->hdr->topic,
			       r->p->partition, (unsigned long long)first, (unsigned long long)end);
	while ((rc = mp_entry_next(frames, len, &at, off, r->p->max_frame, &e, &why)) == 1) {
		off = e.end;
		seen++;
	}
	if (rc == 0 && (off != next || seen != count)) {
		why = "its entries do not cover the offsets it declares";
		rc = -EBADMSG;
	}
	if (rc)
		return shm_err(rc, "replica %s/%u: a batch from the source is refused at offset "
			       "%llu: %s; nothing of it was appended", r->p->hdr->topic,
			       r->p->partition, (unsigned long long)off, why);
	return 0;
}

/* Step 2's walk over a batch step 1 checked whole: the entry at *at,
 * decoded again without its checks (its CRC32C was the larger part of an
 * append of small records).  The batch is the mirror's own buffer, which
 * nothing changes in between. */
static void checked_next(const uint8_t *frames, size_t *at, uint64_t off, struct mp_entry *e)
{
	uint64_t cw, end;

	memcpy(&cw, frames + *at, sizeof cw);
	cw = le64toh(cw);
	*e = (struct mp_entry){ .off = off, .end = off + 1, .frame = frames + *at,
				.len = cw_len(cw), .record = cw_state(cw) == FRAME_COMMITTED };
	if (!e->record) {
		memcpy(&end, frames + *at + 8, sizeof end);
		e->end = le64toh(end);
	}
	*at += e->len;
}

int replica_append(struct replica *r, const uint8_t *frames, size_t len, uint32_t count,
		   uint64_t first, uint64_t next)
{
	struct mp_entry run[RUN_MAX], e;
	size_t at = 0, n = 0;
	int rc = writable(r);

	if (rc == 0)
		rc = check_batch(r, frames, len, count, first, next);
	while (rc == 0 && at < len) {
		checked_next(frames, &at, first, &e);
		first = e.end;
		if (e.record)
			run[n++] = e;
		if (n && (!e.record || n == RUN_MAX)) {
			rc = put_run(r, run, n);
			n = 0;
		}
		if (rc == 0 && !e.record)
			rc = put_hole(r, e.off, e.end);
	}
	if (rc == 0 && n)
		rc = put_run(r, run, n);
	return rc;
}

int replica_gap(struct replica *r, uint64_t to)
{
	uint64_t end = replica_end(r);
	int rc = writable(r);

	if (rc || to <= end)
		return rc;
	fetch_add_relaxed(&r->p->hdr->mirror_gaps, 1);
	fetch_add_relaxed(&r->p->hdr->mirror_gap_offsets, to - end);
	return put_hole(r, end, to);
}

void replica_gaps(const struct replica *r, uint64_t *ret_gaps, uint64_t *ret_offsets)
{
	*ret_gaps = load_relaxed(&r->p->hdr->mirror_gaps);
	*ret_offsets = load_relaxed(&r->p->hdr->mirror_gap_offsets);
}

/*
 * The mirror died (kill -9) between a claim and its last publication: the
 * claim word is past replica_done, and the frames between are CLAIMED by a
 * process that is gone (or unmarked).  None of them was readable (readers
 * stop at the first unpublished frame), so the claim word is set back to
 * replica_done and their commit words are zeroed, the frontier's last
 * (format.md I3): the mirror appends those offsets again, from the source.
 * If an unblocker already aborted one of them (readers may have passed
 * it), nothing is cut: those offsets stay aborted, reported as a gap.
 */
static bool dead_region_unread(struct part *p, uint64_t pos, uint64_t tail)
{
	while (pos < tail) {
		uint64_t w = load_acquire(part_commit_word(p, pos)), len = cw_len(w);

		if (w == 0)
			return true;  /* unmarked: nothing beyond is reachable */
		if (cw_state(w) == FRAME_ABORTED || cw_state(w) == FRAME_COMMITTED ||
		    len < FRAME_ALIGN || len > tail - pos)
			return false;
		pos += len;
	}
	return true;
}

static void zero_region(struct part *p, uint64_t from, uint64_t tail)
{
	uint64_t at[RUN_MAX + 2], pos = from;
	int n = 0;

	while (pos < tail && n < RUN_MAX + 2) {
		uint64_t w = load_acquire(part_commit_word(p, pos));

		if (w == 0 || cw_len(w) < FRAME_ALIGN)
			break;
		at[n++] = pos;
		pos += cw_len(w);
	}
	while (n-- > 0) /* the frontier's word last; pairs with part_read's acquire */
		store_release(part_commit_word(p, at[n]), 0);
}

int replica_resume(struct part *p, uint64_t *ret_cut)
{
	pair128 end = load_pair(&p->hdr->claim), done = load_pair(&p->hdr->replica_done);

	*ret_cut = 0;
	if (end.lo == done.lo && end.hi == done.hi)
		return 0;
	if (done.lo > end.lo || done.hi > end.hi || end.lo - done.lo >= p->cap ||
	    !dead_region_unread(p, done.lo, end.lo))
		return shm_err(-ESTALE, "replica %s/%u: offsets %llu..%llu were claimed by its "
			       "mirror when it stopped and cannot be taken back (an unblocker "
			       "aborted them, or the resume point is older than a lap); they stay "
			       "aborted", p->hdr->topic, p->partition, (unsigned long long)done.hi,
			       (unsigned long long)end.hi - 1);
	if (!cas128(&p->hdr->claim, &end, done))
		return shm_err(-EBUSY, "replica %s/%u: its claim word moved while it was resumed: "
			       "another process writes it", p->hdr->topic, p->partition);
	zero_region(p, done.lo, end.lo);
	*ret_cut = end.hi - done.hi;
	return 0;
}
