/*
 * append.c - the lock-free append protocol (format.md §4).
 *
 * 1. Plan the claim from the last claim word seen: the records that fit
 *    before the ring's end, or PADDING to the end and the records at the
 *    next lap's start.
 * 2. Backpressure policy: refuse (or wait) if the claim would overwrite
 *    a registered consumer's unread bytes.
 * 3. Raise the horizon over the claim if it is not there yet (horizon.h).
 *    Announce the claim word about to be CAS'd in this writer's slot,
 *    marked busy, then CAS {tail, next} -> {tail + bytes, next + k} as one
 *    16-byte word.  A failed CAS clears the mark before anything else: a
 *    writer is marked only while it makes or holds a claim.  A claim that
 *    laps the position an unblocker guards waits for it (guard.h).
 * 4. Write CLAIMED into each frame's commit word (the claim's first word
 *    with a CAS, which fails if an unblocker already aborted this claim),
 *    the index slots, and zero the commit word just past the claim, so the
 *    next claim's frame never shows a reader bytes of an older lap.
 * 5. Write headers, payloads and CRCs; then commit each frame in order
 *    with a CAS CLAIMED -> COMMITTED (release), and wake waiters.
 */
#include "append.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "backpressure.h"
#include "guard.h"
#include "horizon.h"
#include "probes.h"
#include "../util/clock.h"
#include "../util/crc32c.h"
#include "../util/error.h"
#include "../util/proc.h"
#include "../util/testpoint.h"
#include "unblock.h"
#include "append_int.h"

#define RUN_MAX 64 /* records claimed by one CAS */
#define POS_MAX PART_POS_MAX

int part_writer_init(struct part_writer *w, struct part *p)
{
	*w = (struct part_writer){ .p = p, .bp_gen = UINT64_MAX };
	w->seen = load_pair(&p->hdr->claim);
	if (p->readonly)
		return 0; /* appends fail with -EROFS anyway */
	w->slot = part_writer_slot_take(p);
	if (!w->slot) {
		w->p = NULL;
		return shm_err(-EUSERS, "partition %s/%u already has %d producers, its maximum; "
			       "free one, or spread them over more partitions", p->hdr->topic,
			       p->partition, PART_MAX_WRITERS);
	}
	return 0;
}

void part_writer_fini(struct part_writer *w)
{
	if (w->p)
		part_writer_slot_give(w->p, w->slot);
	w->p = NULL;
	w->slot = NULL;
}

/* Step 3 (writers.h): announce the claim word about to be CAS'd; idle
 * once no claim of ours is being written. */
static inline void announce(struct part_writer *w, pair128 cur, uint64_t first)
{
	part_writer_announce(w->slot, cur, first);
}

/* The word a claim planned as pl (from lens, before the last frame grows)
 * takes first at its position: the padding's, or its first frame's
 * CLAIMED word (append_mark()). */
static uint64_t first_word(const struct plan *pl, const uint64_t *lens)
{
	if (pl->pad)
		return cw_make(FRAME_PADDING, pl->pad, pl->off);
	return cw_make(FRAME_CLAIMED, lens[0] + (pl->grow && pl->k == 1 ? FRAME_ALIGN : 0), pl->off);
}

/* No claim of ours is being written (writers.h, format.md §4 steps 3 and 6). */
void append_idle(struct part_writer *w)
{
	part_writer_idle(w->slot);
}

static void backoff(unsigned *round)
{
	if (*round < 64) {
		for (int i = 0; i < 64; i++)
			cpu_relax();
	} else if (*round < 128) {
		sched_yield();
	} else {
		struct timespec ts = { .tv_nsec = 50000 };

		nanosleep(&ts, NULL);
	}
	(*round)++;
}

/* -------------------------------------------------------------------- */
/* Never lap a claim still being written (format.md §4 step 2)          */

#define LAP_WAIT_NS 10000000 /* a non-blocking producer waits this long */

/*
 * Room for a claim ending at `end` without overwriting a claim another
 * writer has not finished?  Load the tail, then scan the busy slots: a
 * claim whose CAS preceded the tail load shows as busy (it was announced
 * before its CAS); claims after it start at or past that tail.  So claims
 * may reach min(busy pos, tail) + capacity - 8 without another scan: about
 * once a lap of this writer's own writing.
 */
static int lap_room(struct part_writer *w, uint64_t end, unsigned flags, int64_t deadline_ns)
{
	struct part *p = w->p;
	int64_t give_up = 0;
	unsigned round = 0;

	for (;;) {
		uint64_t min = load_seq_cst(&p->hdr->claim.lo);
		struct part_writer_slot *blocker = part_writer_lowest_busy(p, w->slot, &min);

		w->lap_limit = min < POS_MAX ? min + p->cap - FRAME_ALIGN : POS_MAX;
		/* no claim in the way: the plan came from a stale claim word, and
		 * its CAS will fail and re-plan */
		if (end <= w->lap_limit || !blocker)
			return 0;
		/* a claim a whole lap behind is still being written */
		if (part_writer_unmark_dead(blocker))
			continue;
		if (!give_up)
			give_up = (flags & PART_APPEND_BLOCK) ? deadline_ns : mono_ns() + LAP_WAIT_NS;
		if (give_up && mono_ns() >= give_up)
			return shm_err(-EBUSY, "partition %s/%u: a producer (pid %u) has held a claim "
				       "for a whole lap of the ring; it must commit or abort it before "
				       "the ring can be overwritten", p->hdr->topic, p->partition,
				       part_writer_pid(blocker));
		if (part_deleted(p))
			return -EIDRM;
		backoff(&round);
	}
}

static struct frame_hdr *frame_at(const struct part *p, uint64_t pos)
{
	return (struct frame_hdr *)(void *)part_at(p, pos);
}

/*
 * Take the first commit word of a claim: CAS whatever is there (zero, or
 * older bytes if the previous claim's producer has not zeroed it yet) to
 * `desired`, unless it holds *aborted, the word an unblocker writes when
 * it aborts exactly this claim (NULL: no abort can be there yet).  False:
 * this claim was aborted.
 */
static bool take_word(struct part *p, uint64_t pos, const uint64_t *aborted, uint64_t desired)
{
	uint64_t *cw = part_commit_word(p, pos);
	uint64_t w = load_acquire(cw);

	for (;;) {
		if (aborted && w == *aborted)
			return false;
		/* pairs with load_acquire of the commit word in part_read() */
		if (cas(cw, &w, desired))
			return true;
	}
}

/* -------------------------------------------------------------------- */
/* Backpressure, the producer's side (format.md §5 step 2; the registry  */
/* is backpressure.c)                                                    */

#define REAP_EVERY_NS 10000000 /* consumers' liveness, at most this often */

/* Room for a claim ending at `end`?  Rescans, reaps dead consumers (at
 * most every 10 ms: it reads /proc), and with PART_APPEND_BLOCK sleeps on
 * the space word until a consumer releases room or the deadline. */
static int bp_room(struct part_writer *w, uint64_t end, unsigned flags, int64_t deadline_ns)
{
	struct part *p = w->p;
	bool counted = false;

	for (;;) {
		int64_t now, until;
		uint32_t v;

		w->bp_limit = part_bp_scan(p, &w->bp_gen);
		if (end <= w->bp_limit)
			return 0;
		if (!counted) {
			fetch_add_relaxed(&p->hdr->bp_blocked, 1);
			SHMBUS_PROBE_IF(bp_blocked, 1, p->hdr->topic, p->partition, shm_probe_bp_holder(p));
			counted = true;
		}
		now = mono_ns();
		if (now >= w->next_reap) {
			w->next_reap = now + REAP_EVERY_NS;
			if (part_bp_reap(p))
				continue;
		}
		if (!(flags & PART_APPEND_BLOCK) || (deadline_ns && now >= deadline_ns))
			return -EAGAIN;
		if (part_deleted(p))
			return -EIDRM;
		/* announce, re-check, sleep: pairs with part_space_wake() in
		 * part_bp_update() */
		v = part_space_prepare(p);
		w->bp_limit = part_bp_scan(p, &w->bp_gen);
		if (end <= w->bp_limit)
			return 0;
		until = now + REAP_EVERY_NS;
		if (deadline_ns && deadline_ns < until)
			until = deadline_ns;
		part_space_wait(p, v, until);
	}
}

/* After our CAS: a consumer that registered meanwhile may sit inside the
 * bytes we claimed (format.md §5, registration race).  We hold the claim,
 * so wait for it to move on; it can, because our claim is ahead of it.
 * A consumer that does not move for a second (stopped, or a damaged slot)
 * is lapped instead: readers check what they read, so it sees -ERANGE. */
static void bp_settle(struct part_writer *w, uint64_t end)
{
	struct part *p = w->p;
	unsigned round = 0;
	int64_t give_up = 0;

	if (load_seq_cst(&p->hdr->bp_gen) == w->bp_gen)
		return;
	while (end > (w->bp_limit = part_bp_scan(p, &w->bp_gen))) {
		if (round % 256 == 255)
			part_bp_reap(p);
		if (round == 64)
			give_up = mono_ns() + 1000000000;
		if (give_up && mono_ns() >= give_up) {
			fetch_add_relaxed(&p->hdr->bp_blocked, 1);
			return;
		}
		backoff(&round);
	}
}

/* -------------------------------------------------------------------- */
/* Claim                                                                */


/*
 * Plan a claim from claim word `cur`: padding to the ring's end if the
 * first frame does not fit before it, then as many frames as fit.  A
 * claim stays 8 bytes short of a whole lap (the word zeroed just past it
 * must never be its own first), and never ends 8 bytes before the ring's
 * end: the next claim would begin with an 8-byte padding, and if its
 * producer died unmarked, the abort of that hole would have no room for
 * its end offset (format.md §3).  Then the last frame grows by 8 bytes (a
 * frame may be longer than its content), or is left to the next claim, or
 * (a lone frame of the maximum size) goes to the next lap.
 */
static void plan(const struct part *p, pair128 cur, const uint64_t *lens, size_t n,
		 struct plan *pl)
{
	uint64_t room = p->cap - (cur.lo & p->mask), pad = 0, total = 0;
	bool grow = false;
	size_t k = 0;

	if (lens[0] > room || (lens[0] + FRAME_ALIGN == room && lens[0] == p->max_frame)) {
		pad = room;
		room = p->cap;
	}
	if (room > p->cap - FRAME_ALIGN - pad)
		room = p->cap - FRAME_ALIGN - pad;
	while (k < n && total + lens[k] <= room)
		total += lens[k++];
	if (((cur.lo + pad + total) & p->mask) == p->cap - FRAME_ALIGN) {
		if (lens[k - 1] + FRAME_ALIGN <= p->max_frame) {
			grow = true;
			total += FRAME_ALIGN;
		} else {
			total -= lens[--k]; /* k > 1: a lone maximal frame was padded */
		}
	}
	*pl = (struct plan){ .pos = cur.lo, .pad = pad, .start = cur.lo + pad, .off = cur.hi,
			     .end = cur.lo + pad + total, .k = k, .grow = grow };
}

int append_claim(struct part_writer *w, uint64_t *lens, size_t n, uint64_t offs, unsigned flags,
		 int64_t deadline_ns, struct plan *pl)
{
	struct part *p = w->p;
	pair128 cur = w->seen;

	for (;;) {
		int rc = 0;

		if (unlikely(cur.lo >= POS_MAX || cur.hi >= POS_MAX || (cur.lo & (FRAME_ALIGN - 1))))
			return shm_err(-EBADMSG, "partition %s/%u: its claim word is damaged (tail "
				       "%llu, next %llu); run recovery on it", p->hdr->topic,
				       p->partition, (unsigned long long)cur.lo,
				       (unsigned long long)cur.hi);
		plan(p, cur, lens, n, pl);
		pl->offs = offs ? offs : pl->k;
		if (pl->end > w->lap_limit)
			rc = lap_room(w, pl->end, flags, deadline_ns);
		else if (p->policy == PART_POLICY_BACKPRESSURE && pl->end > w->bp_limit)
			rc = bp_room(w, pl->end, flags, deadline_ns);
		else {
			/* every byte of the claim below the horizon before
			 * anyone may write it (format.md §4 step 3) */
			part_horizon_cover(p, pl->end);
			announce(w, cur, first_word(pl, lens));
			SHM_TESTPOINT(claim_announced);
			if (cas128(&p->hdr->claim, &cur,
				   (pair128){ .lo = pl->end, .hi = cur.hi + pl->offs })) {
				/* never lap a position being unblocked (format.md §7) */
				part_guard_settle(p, pl->end);
				SHM_TESTPOINT(claim_after_cas);
				SHMBUS_PROBE(append, p->hdr->topic, p->partition, cur.hi, pl->k, pl->end - pl->pos);
				w->seen = (pair128){ .lo = pl->end, .hi = cur.hi + pl->offs };
				if (pl->grow)
					lens[pl->k - 1] += FRAME_ALIGN;
				/* waits holding the claim: it keeps its mark */
				if (p->policy == PART_POLICY_BACKPRESSURE)
					bp_settle(w, pl->end);
				return 0;
			}
			/* cur holds the word that beat us: no claim is ours,
			 * so our mark must not hold other writers back while
			 * we re-plan, wait for room or give up */
			append_idle(w);
			continue;
		}
		if (rc) {
			w->seen = cur; /* the next call starts from a fresher guess */
			return rc;
		}
		cur = load_pair(&p->hdr->claim);
	}
}

void append_abort_range(struct part *p, uint64_t pos, uint64_t off, uint64_t len, uint64_t end)
{
	uint64_t want = cw_make(FRAME_CLAIMED, len, off);

	if (cas(part_commit_word(p, pos), &want, cw_make(FRAME_ABORTED, len, off)))
		/* the offset after the aborted frame (format.md §3); pairs with
		 * load_acquire in part_abort_end() */
		store_release(&((struct frame_hdr *)(void *)part_at(p, pos))->offset, end);
}

/*
 * Step 4: mark every frame of the claim CLAIMED and index it.  The claim's
 * first word (the padding's, or the first frame's) is taken by CAS: an
 * unblocker may have aborted the claim while we were stopped.  Nothing
 * else of the claim is written before that CAS wins, except each frame's
 * pid, which an abort never touches; the offset at frame + 8, where an
 * abort keeps its end offset, is written after.  Later frames of a batch
 * use plain stores: no reader can reach them before the first is
 * resolved.  The first frame is marked before the padding so a reader
 * that passes the padding never finds the older lap at the frame.
 * False: the claim was aborted.
 */
bool append_mark(struct part *p, const struct plan *pl, const uint64_t *lens)
{
	uint32_t pid = (uint32_t)proc_self(NULL);
	uint64_t aborted = cw_make(FRAME_ABORTED, pl->end - pl->pos, pl->off);
	uint64_t fpos = pl->start;

	for (size_t i = 0; i < pl->k; i++) {
		struct frame_hdr *h = frame_at(p, fpos);
		uint64_t cw = cw_make(FRAME_CLAIMED, lens[i], pl->off + i);

		store_relaxed(&h->pid, pid);
		if (i == 0) {
			/* with padding, readers reach the frame only through
			 * the padding, which is not ours yet: no abort here */
			if (!take_word(p, fpos, pl->pad ? NULL : &aborted, cw))
				return false;
			SHM_TESTPOINT(mark_first_frame);
			if (pl->pad && !take_word(p, pl->pos, &aborted,
						  cw_make(FRAME_PADDING, pl->pad, pl->off))) {
				append_abort_range(p, fpos, pl->off, lens[0], pl->off + 1);
				return false;
			}
			SHM_TESTPOINT(mark_first_word);
		} else {
			/* pairs with load_acquire of the commit word in part_read() */
			store_release(&h->commit, cw);
		}
		store_relaxed(&h->offset, pl->off + i);
		store_relaxed(&p->index[(pl->off + i) & p->imask], fpos);
		fpos += lens[i];
	}
	part_zero_ahead(p, pl->end, pl->off + pl->offs);
	SHM_TESTPOINT(mark_done);
	return true;
}

#define STREAM_MIN (256u << 10) /* values copied with non-temporal stores */

#if defined(__x86_64__)
/* Copy a large value into the ring without reading its lines first: a
 * normal store to a line not in the cache fetches it (read for
 * ownership), doubling the memory traffic of a copy into a cold ring. */
__attribute__((target("avx2")))
static void copy_stream(uint8_t *dst, const uint8_t *src, size_t len)
{
	size_t head = (32 - ((uintptr_t)dst & 31)) & 31;

	memcpy(dst, src, head);
	dst += head;
	src += head;
	len -= head;
	for (; len >= 128; dst += 128, src += 128, len -= 128) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(const void *)src);
		__m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + 32));
		__m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(src + 64));
		__m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(src + 96));

		_mm256_stream_si256((__m256i *)(void *)dst, a);
		_mm256_stream_si256((__m256i *)(void *)(dst + 32), b);
		_mm256_stream_si256((__m256i *)(void *)(dst + 64), c);
		_mm256_stream_si256((__m256i *)(void *)(dst + 96), d);
	}
	memcpy(dst, src, len);
	/* streaming stores are weakly ordered: drain them before the commit */
	_mm_sfence();
}

static bool have_avx2(void)
{
	static int cached = -1;

	if (cached < 0) {
		__builtin_cpu_init();
		cached = __builtin_cpu_supports("avx2");
	}
	return cached;
}
#endif

/* Step 5's payload: key, headers, value, and the CRC.  A large value is
 * checksummed in the caller's buffer (still in its cache) and streamed
 * into the ring; a small one is copied, then checksummed with the rest. */
static void fill(struct frame_hdr *h, const struct part_rec *r)
{
	uint8_t *at = (uint8_t *)h + FRAME_HDR_SIZE;

	h->timestamp_ns = r->timestamp_ns;
	h->key_len = r->key_len;
	h->value_len = r->value_len;
	h->headers_len = r->headers_len;
	h->header_count = r->header_count;
	h->flags = r->flags;
	if (r->key_len)
		memcpy(at, r->key, r->key_len);
	at += r->key_len;
	if (r->headers_len)
		memcpy(at, r->headers, r->headers_len);
	at += r->headers_len;
#if defined(__x86_64__)
	if (r->value_len >= STREAM_MIN && have_avx2()) {
		uint32_t c = frame_crc(h, (size_t)r->key_len + r->headers_len);

		h->crc = crc32c(c, r->value, r->value_len);
		copy_stream(at, r->value, r->value_len);
		return;
	}
#endif
	if (r->value_len)
		memcpy(at, r->value, r->value_len);
	h->crc = frame_crc(h, (size_t)r->key_len + r->headers_len + r->value_len);
}

/* Step 5 for one frame: false if an unblocker aborted it first. */
bool append_commit_frame(struct part *p, uint64_t pos, uint64_t off, uint64_t len)
{
	uint64_t want = cw_make(FRAME_CLAIMED, len, off);

	/* pairs with load_acquire of the commit word in part_read() */
	return cas(part_commit_word(p, pos), &want, cw_make(FRAME_COMMITTED, len, off));
}

/* Write and commit a claimed run; returns how many frames were committed
 * (in order: a failure aborts the rest of the run). */
static size_t publish(struct part *p, const struct plan *pl, const struct part_rec *recs,
		      const uint64_t *lens)
{
	uint64_t fpos = pl->start;
	size_t i;

	if (!append_mark(p, pl, lens))
		return 0;
	for (i = 0; i < pl->k; i++) {
		fill(frame_at(p, fpos), &recs[i]);
		fpos += lens[i];
	}
	SHM_TESTPOINT(fill_done);
	fpos = pl->start;
	for (i = 0; i < pl->k; i++) {
		if (!append_commit_frame(p, fpos, pl->off + i, lens[i]))
			break;
		SHM_TESTPOINT(publish_after_frame);
		fpos += lens[i];
	}
	SHMBUS_PROBE_IF(abort, i < pl->k, p->hdr->topic, p->partition, pl->off + i, pl->k - i);
	for (size_t j = i; j < pl->k; j++) {
		append_abort_range(p, fpos, pl->off + j, lens[j], pl->off + j + 1);
		fpos += lens[j];
	}
	return i;
}

/* The writer's one slot announces one claim: commit or abort it first. */
static int held(const struct part_writer *w)
{
	return shm_err(-EBUSY, "partition %s/%u: this producer holds a zero-copy claim; commit or "
		       "abort it before appending again", w->p->hdr->topic, w->p->partition);
}

static int writable(const struct part *p)
{
	uint64_t st = load_relaxed(&p->hdr->status);

	if (unlikely(st & PART_STATUS_DELETED))
		return -EIDRM;
	if (unlikely(p->readonly || (st & PART_STATUS_REPLICA)))
		return -EROFS;
	return 0;
}

int part_append(struct part_writer *w, const struct part_rec *recs, size_t n, unsigned flags,
		int64_t deadline_ns, uint64_t *ret_first_off)
{
	struct part *p = w->p;
	uint64_t lens[RUN_MAX], first = 0;
	size_t done = 0;
	int rc = writable(p);

	if (rc)
		return rc;
	if (unlikely(w->holding))
		return held(w);
	while (done < n) {
		size_t m = n - done < RUN_MAX ? n - done : RUN_MAX, got;
		struct plan pl;

		for (size_t i = 0; i < m; i++) {
			const struct part_rec *r = &recs[done + i];

			lens[i] = frame_size(r->key_len, r->headers_len, r->value_len);
			if (lens[i] > p->max_frame) {
				if (i == 0) {
					rc = -EMSGSIZE;
					goto out;
				}
				m = i;
				break;
			}
		}
		rc = append_claim(w, lens, m, 0, flags, deadline_ns, &pl);
		if (rc)
			goto out;
		got = publish(p, &pl, recs + done, lens);
		SHMBUS_PROBE(commit, p->hdr->topic, p->partition, pl.off, got);
		append_idle(w);
		if (done == 0)
			first = pl.off;
		done += got;
		part_notify(p);
		if (got < pl.k) {
			rc = -ECANCELED;
			goto out;
		}
	}
out:
	w->stopped_by = rc;
	if (done && ret_first_off)
		*ret_first_off = first;
	return done ? (int)done : rc;
}

/* -------------------------------------------------------------------- */
/* Zero-copy claims                                                     */

int part_claim(struct part_writer *w, const struct part_rec *meta, uint32_t value_cap,
	       unsigned flags, int64_t deadline_ns, struct part_claim *c)
{
	struct part *p = w->p;
	uint64_t len = frame_size(meta->key_len, meta->headers_len, value_cap);
	struct frame_hdr *h;
	struct part_rec r = *meta;
	struct plan pl;
	int rc = writable(p);

	if (rc)
		return rc;
	if (w->holding)
		return held(w);
	if (len > p->max_frame)
		return -EMSGSIZE;
	rc = append_claim(w, &len, 1, 0, flags, deadline_ns, &pl);
	if (rc)
		return rc;
	if (!append_mark(p, &pl, &len)) {
		append_idle(w);
		return -ECANCELED;
	}
	w->holding = true;
	h = frame_at(p, pl.start);
	r.value = NULL;
	r.value_len = 0;
	fill(h, &r); /* key and headers now; value and CRC at commit */
	*c = (struct part_claim){ .pos = pl.start, .off = pl.off, .len = len,
				  .pad_pos = pl.pad ? pl.pos : UINT64_MAX, .frame = h,
				  .value = (uint8_t *)h + FRAME_HDR_SIZE + meta->key_len + meta->headers_len,
				  .value_cap = value_cap };
	return 0;
}

int part_commit(struct part_writer *w, struct part_claim *c, uint32_t value_len)
{
	struct part *p = w->p;
	struct frame_hdr *h = c->frame;

	bool ok;

	if (value_len > c->value_cap) {
		part_abort(w, c);
		return -EINVAL;
	}
	h->value_len = value_len;
	h->crc = frame_crc(h, (size_t)h->key_len + h->headers_len + value_len);
	ok = append_commit_frame(p, c->pos, c->off, c->len);
	append_idle(w);
	w->holding = false;
	if (!ok)
		return -ECANCELED;
	SHMBUS_PROBE(commit, p->hdr->topic, p->partition, c->off, 1);
	part_notify(p);
	return 0;
}

int part_abort(struct part_writer *w, struct part_claim *c)
{
	append_abort_range(w->p, c->pos, c->off, c->len, c->off + 1);
	SHMBUS_PROBE(abort, w->p->hdr->topic, w->p->partition, c->off, 1);
	append_idle(w);
	w->holding = false;
	part_notify(w->p);
	return 0;
}
