/*
 * test_unblock.c - stalled claims (format.md §7): a claim whose producer
 * lives is left alone (-EBUSY) unless forced; one whose producer died is
 * aborted and readers go on; an empty word at the frontier (a producer
 * that died between its claim CAS and its first write) is aborted up to
 * the first claim boundary after it: one a writer announced, a frame the
 * index leads to, or the tail.  The producer's own commit is a CAS from
 * CLAIMED, so a forced abort wins and the late commit gets -ECANCELED: a
 * frame is never both.  A producer stopped between its claim and its
 * first write finds its claim aborted by the exact word its first CAS
 * refuses.  Every abort is checked to the word: ABORTED(length, first
 * offset), the end offset at frame + 8, the index of each aborted offset.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../shm/append.h"
#include "../shm/error.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/unblock.h"

static void make_part(struct env *e, uint64_t cap, struct part *p)
{
	struct part_params prm = { .topic = "t", .topic_id = 1, .capacity = cap, .numa_node = -1,
				   .mode = 0600 };

	env_part_create(e, "0", &prm, p);
}

static void read_nothing(struct part *p, struct part_cursor *c)
{
	struct frame_view v;

	assert_int_equal(part_read(p, c, &v), 0);
}

/* The word at pos is ABORTED(len, first), its range ends at offset `end`,
 * and the index of every aborted offset leads to the range (format.md §7). */
#define expect_abort(p, pos, len, first, end) expect_abort_at(p, pos, len, first, end, __LINE__)

static void expect_abort_at(const struct part *p, uint64_t pos, uint64_t len, uint64_t first,
			    uint64_t end, int line)
{
	uint64_t w = load_acquire(part_commit_word(p, pos));

	if (w != cw_make(FRAME_ABORTED, len, first) || end_at(p, pos) != end)
		fail_msg("line %d: at position %llu: word %#llx (state %d, %llu bytes, offset bits "
			 "%u), end offset %llu; expected ABORTED of %llu bytes for offset %llu, "
			 "ending at offset %llu", line, (unsigned long long)pos,
			 (unsigned long long)w, (int)cw_state(w), (unsigned long long)cw_len(w),
			 cw_off(w), (unsigned long long)end_at(p, pos), (unsigned long long)len,
			 (unsigned long long)first, (unsigned long long)end);
	for (uint64_t o = first; o < end; o++)
		if (p->index[o & p->imask] != pos)
			fail_msg("line %d: the index of aborted offset %llu holds %llu, not the "
				 "range at %llu", line, (unsigned long long)o,
				 (unsigned long long)p->index[o & p->imask], (unsigned long long)pos);
}

/*
 * Step 3 of format.md §4 as append.c's claim() takes it: publish the
 * claim word in the writer's slot (seqlock: seq odd, pos, off, WRITER_BUSY,
 * seq even; nothing for a writer without a slot), then CAS {tail, next}
 * forward.
 * Nothing else: the producer stops (or dies) right after its CAS, before
 * it marks anything.  Returns the claim's position.
 */
static uint64_t announce_and_claim(struct part_writer *w, uint64_t bytes, uint64_t n)
{
	struct part_writer_slot *s = w->slot;
	pair128 cur = load_pair(&w->p->hdr->claim);

	if (s) {
		uint64_t seq = load_relaxed(&s->seq);

		store_relaxed(&s->seq, seq + 1);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		store_relaxed(&s->pos, cur.lo);
		store_relaxed(&s->off, cur.hi);
		store_relaxed(&s->flags, WRITER_BUSY);
		store_release(&s->seq, seq + 2);
	}
	assert_true(cas128(&w->p->hdr->claim, &cur,
			   (pair128){ .lo = cur.lo + bytes, .hi = cur.hi + n }));
	w->seen = (pair128){ .lo = cur.lo + bytes, .hi = cur.hi + n };
	return cur.lo;
}

/*
 * Steps 4 and 5 for a claim of one 64-byte frame of offset `off` at
 * `pos`, as append.c takes them (mark_claimed, fill, commit_frame): the
 * pid; the first word by a CAS from whatever it holds that refuses exactly
 * ABORTED(claim length, off); then the offset field, the index, the word
 * past the claim; the record (a 16-byte value naming its offset); the
 * commit CAS.  False if the claim was aborted: the producer's -ECANCELED.
 */
static bool mark_fill_commit(struct part *p, uint64_t pos, uint64_t off)
{
	struct frame_hdr *h = (struct frame_hdr *)(void *)part_at(p, pos);
	uint64_t aborted = cw_make(FRAME_ABORTED, 64, off), w, val[2] = { off, ~off };

	h->pid = (uint32_t)getpid();
	w = load_acquire(&h->commit);
	do {
		if (w == aborted)
			return false;
	} while (!cas(&h->commit, &w, cw_make(FRAME_CLAIMED, 64, off)));
	h->offset = off;
	p->index[off & p->imask] = pos;
	part_zero_ahead(p, pos + 64, off + 1);
	h->timestamp_ns = ts_of(off);
	h->key_len = 0;
	h->headers_len = 0;
	h->header_count = 0;
	h->flags = 0;
	h->value_len = 16;
	memcpy((uint8_t *)h + FRAME_HDR_SIZE, val, 16);
	h->crc = frame_crc(h, 16);
	w = cw_make(FRAME_CLAIMED, 64, off);
	return cas(&h->commit, &w, cw_make(FRAME_COMMITTED, 64, off));
}

/* The producer's frames are published (append.c's idle()): others may
 * lap its claim from now on. */
static void writer_idle(struct part_writer *w)
{
	if (w->slot)
		store_release(&w->slot->flags, 0u);
}

/* A pid that no longer exists: a child that exited and was reaped. */
static int exit_now(void *arg)
{
	(void)arg;
	return 0;
}

static pid_t dead_pid(void)
{
	pid_t pid = tu_fork(exit_now, NULL);

	assert_int_equal(tu_wait(pid, 10000), 0);
	assert_true(kill(pid, 0) < 0 && errno == ESRCH);
	return pid;
}

/* ------------------------------------------------------------------ */

static void claim_of_a_living_producer_is_ebusy(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, zc;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	pid_t pid = 0;
	uint64_t before;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&zc, &p);
	append64(&w, 1);
	assert_int_equal(part_claim(&zc, &meta, 16, 0, 0, &cl), 0);
	append64(&w, 1);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	before = *part_commit_word(&p, cl.pos);
	assert_int_equal(part_unblock(&p, c.off, c.stall_pos, 0, c.stall_tail, &pid), -EBUSY);
	assert_int_equal(pid, getpid());
	assert_int_equal(*part_commit_word(&p, cl.pos), before);
	assert_int_equal(p.hdr->aborted_claims, 0);
	/* it commits later and is read */
	memset(cl.value, 0, 16);
	assert_int_equal(part_commit(&zc, &cl, 16), 0);
	assert_int_equal(part_read(&p, &c, &(struct frame_view){ 0 }), 1);
	read_expect(&p, &c, 2);
	part_unmap(&p);
}

struct child_claim {
	struct part *p;
	int records;
};

/* In a child: append, claim one more, and die without committing. */
static int claim_and_die(void *arg)
{
	struct child_claim *cc = arg;
	struct part_writer w;
	struct part_rec meta = { 0 };
	struct part_claim cl;

	part_writer_init(&w, cc->p);
	append64(&w, (uint64_t)cc->records);
	return part_claim(&w, &meta, 16, 0, 0, &cl) == 0 ? 0 : 1;
}

static void claim_of_a_dead_producer_is_aborted_and_readers_go_on(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct child_claim cc;
	pid_t pid, who = 0;
	uint64_t cw;

	make_part(e, 4096, &p);
	cc = (struct child_claim){ .p = &p, .records = 2 };
	pid = tu_fork(claim_and_die, &cc);
	assert_int_equal(tu_wait(pid, 10000), 0);
	assert_int_equal(p.hdr->claim.hi, 3);
	part_writer_init(&w, &p);
	append64(&w, 2); /* offsets 3, 4 after the dead claim */
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	read_nothing(&p, &c);
	assert_int_equal(c.off, 2);
	assert_true(c.stalled);
	assert_int_equal(c.stall_pos, 128);
	assert_int_equal(c.stall_tail, p.hdr->claim.lo);
	cw = *part_commit_word(&p, c.stall_pos);
	assert_int_equal(cw_state(cw), FRAME_CLAIMED);
	assert_int_equal(((struct frame_hdr *)(void *)part_at(&p, c.stall_pos))->pid, pid);
	assert_int_equal(part_claimant(&p, 2, 128), pid);
	assert_int_equal(part_claimant(&p, 3, 128), 0); /* not the claim of offset 3 */
	assert_int_equal(part_claimant(&p, 0, 0), 0);   /* committed: nobody's claim */
	assert_int_equal(part_unblock(&p, c.off, c.stall_pos, 0, c.stall_tail, &who), 1);
	/* the aborted frame's own offset in the word, the next at frame + 8 */
	expect_abort(&p, 128, 64, 2, 3);
	/* who died, so the caller can abort its later claims at once */
	assert_int_equal(who, pid);
	assert_int_equal(part_claimant(&p, 2, 128), 0);
	assert_int_equal(p.hdr->aborted_claims, 1);
	read_expect(&p, &c, 3);
	read_expect(&p, &c, 4);
	assert_int_equal(c.skipped, 1);
	read_nothing(&p, &c);
	/* a second unblock finds nothing to do */
	assert_int_equal(part_unblock(&p, 2, 128, 0, tail_now(&p), NULL), 0);
	assert_int_equal(p.hdr->aborted_claims, 1);
	part_unmap(&p);
}

/* The same with the CLAIMED word written by hand for a pid that is gone. */
static void hand_written_claim_of_a_gone_pid_is_aborted(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_hdr *h;
	uint64_t pos;
	pid_t who = 0;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = raw_claim(&p, 64, 1);
	h = (struct frame_hdr *)(void *)part_at(&p, pos);
	h->offset = 1;
	h->pid = (uint32_t)dead_pid();
	h->commit = cw_make(FRAME_CLAIMED, 64, 1);
	append64(&w, 1);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_claimant(&p, 1, pos), (pid_t)h->pid);
	assert_int_equal(part_unblock(&p, 1, pos, 0, tail_now(&p), &who), 1);
	expect_abort(&p, pos, 64, 1, 2);
	assert_int_equal(who, (pid_t)h->pid);
	read_expect(&p, &c, 2);
	part_unmap(&p);
}

static void forced_abort_wins_over_a_late_commit(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, zc;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&zc, &p);
	append64(&w, 1);
	assert_int_equal(part_claim(&zc, &meta, 16, 0, 0, &cl), 0);
	append64(&w, 1);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, cl.pos, PART_UNBLOCK_FORCE, tail_now(&p), NULL), 1);
	assert_int_equal(p.hdr->aborted_claims, 1);
	expect_abort(&p, cl.pos, cl.len, 1, 2);
	memset(cl.value, 0x77, 16);
	assert_int_equal(part_commit(&zc, &cl, 16), -ECANCELED);
	/* the late commit changed neither the word nor the end offset */
	expect_abort(&p, cl.pos, cl.len, 1, 2);
	read_expect(&p, &c, 2);
	read_nothing(&p, &c);
	/* nobody ever sees the cancelled record */
	assert_int_equal(part_seek_begin(&p, &c), 0);
	while (part_read(&p, &c, &v) == 1)
		assert_int_not_equal(v.offset, 1);
	part_unmap(&p);
}

/* Claimed but never marked: the abort reaches the next frame the index
 * knows, and skips exactly the offsets in between. */
static void unmarked_claim_is_aborted_up_to_the_next_indexed_frame(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 2);
	pos = raw_claim(&p, 3 * 64, 3); /* 2, 3, 4 */
	append64(&w, 2);                /* 5, 6 */
	/* the writer leaves: its announcements are gone with its slot, so
	 * only the index knows where offset 5 begins */
	part_writer_fini(&w);
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	read_nothing(&p, &c);
	assert_int_equal(c.stall_pos, pos);
	assert_int_equal(part_unblock(&p, 2, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 3 * 64, 2, 5);
	assert_int_equal(p.hdr->aborted_claims, 3);
	read_expect(&p, &c, 5);
	read_expect(&p, &c, 6);
	assert_int_equal(c.skipped, 3);
	part_unmap(&p);
}

static void unmarked_claim_at_the_tail_is_aborted_to_the_tail(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = raw_claim(&p, 500 & ~7ULL, 4);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 496, 1, 5);
	assert_int_equal(p.hdr->aborted_claims, 4);
	read_nothing(&p, &c);
	assert_int_equal(c.off, 5);
	assert_int_equal(c.pos, p.hdr->claim.lo);
	append64(&w, 1);
	read_expect(&p, &c, 5);
	part_unmap(&p);
}

/* A claim that would have started with PADDING near the ring's end and
 * was never marked: the aborted range crosses the end. */
static void unmarked_claim_across_the_ring_end_is_aborted(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 62); /* up to 3968 */
	for (uint64_t o = 0; o < 62; o++)
		read_expect(&p, &c, o);
	pos = raw_claim(&p, 128 + 256, 1); /* 128 of padding, a 256-byte frame */
	append64(&w, 2);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 62, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 128 + 256, 62, 63);
	read_expect(&p, &c, 63);
	read_expect(&p, &c, 64);
	assert_int_equal(c.pos, p.hdr->claim.lo);
	part_unmap(&p);
}

/* A CLAIMED word whose length cannot be right is no guide: the abort
 * falls back to the next indexed frame. */
static void claimed_word_with_a_bad_length_is_aborted_to_the_next_frame(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = raw_claim(&p, 128, 2);
	((struct frame_hdr *)(void *)part_at(&p, pos))->pid = (uint32_t)dead_pid();
	*part_commit_word(&p, pos) = cw_make(FRAME_CLAIMED, 8, 1); /* shorter than a header */
	append64(&w, 1);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 128, 1, 3);
	read_expect(&p, &c, 3);
	assert_int_equal(c.skipped, 2);
	part_unmap(&p);
}

/* The word past an aborted range is cleared of older bytes (I3), so the
 * next claim there never shows them to readers. */
static void word_past_an_aborted_range_is_zeroed(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	uint64_t pos;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = raw_claim(&p, 128, 2);
	/* an older lap's commit word, for an older offset, past the claim */
	*part_commit_word(&p, pos + 128) = cw_make(FRAME_COMMITTED, 64, 0);
	assert_int_equal(part_unblock(&p, 1, pos, 0, tail_now(&p), NULL), 1);
	assert_int_equal(*part_commit_word(&p, pos + 128), 0);
	part_unmap(&p);
}

static void nothing_to_abort_when_the_claim_moved_on(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 3);
	/* committed; the end; past it */
	assert_int_equal(part_unblock(&p, 1, 64, PART_UNBLOCK_FORCE, tail_now(&p), NULL), 0);
	assert_int_equal(part_unblock(&p, 3, 192, PART_UNBLOCK_FORCE, tail_now(&p), NULL), 0);
	assert_int_equal(part_unblock(&p, 9, 192, PART_UNBLOCK_FORCE, tail_now(&p), NULL), 0);
	assert_int_equal(cw_state(*part_commit_word(&p, 64)), FRAME_COMMITTED);
	assert_int_equal(p.hdr->aborted_claims, 0);
	part_unmap(&p);
}

static void unblock_of_an_overwritten_position_is_erange(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 200);
	assert_int_equal(part_unblock(&p, 5, 5 * 64, PART_UNBLOCK_FORCE, tail_now(&p), NULL),
			 -ERANGE);
	part_unmap(&p);
}

static void unblock_through_a_readonly_mapping_is_erofs(void **state)
{
	struct env *e = *state;
	struct part p, ro;
	struct part_writer w;
	uint64_t pos;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	pos = raw_claim(&p, 64, 1);
	assert_ok(part_open(e->dirfd, "0", true, "0", &ro));
	assert_int_equal(part_unblock(&ro, 0, pos, PART_UNBLOCK_FORCE, tail_now(&ro), NULL),
			 -EROFS);
	assert_int_equal(*part_commit_word(&p, pos), 0);
	part_unmap(&ro);
	part_unmap(&p);
}

/*
 * Appending is an announcement and a claim CAS, then marking (format.md
 * §4 steps 3 and 4).  A producer that claimed after a dead one and has not
 * marked its frame yet when the unblocker looks for the range's end is
 * alive: its record, committed a moment later with success, must reach
 * readers.  The live producer has a writer slot (part_writer_init) and
 * takes append.c's steps by hand, stopped where the race stops it: after
 * its announcement and CAS, before its first write.
 */
static void range_abort_does_not_swallow_a_live_claim_in_flight(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, dead_w, live_w;
	struct part_cursor c = { 0 };
	uint64_t dead, live;
	int rc;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&dead_w, &p);
	part_writer_init(&live_w, &p);
	assert_non_null(live_w.slot);
	append64(&w, 1);                            /* offset 0 */
	dead = announce_and_claim(&dead_w, 64, 1);  /* offset 1: died after its CAS */
	live = announce_and_claim(&live_w, 64, 1);  /* offset 2: between CAS and marking */
	append64(&w, 1);                            /* offset 3, committed */
	assert_int_equal(live, dead + 64);
	assert_int_equal(live_w.slot->pos, live);
	assert_int_equal(live_w.slot->off, 2);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, dead, 0, c.stall_tail, NULL), 1);
	/* the range stops at the live claim's announced boundary */
	expect_abort(&p, dead, 64, 1, 2);
	assert_int_equal(p.hdr->aborted_claims, 1);
	assert_int_equal(*part_commit_word(&p, live), 0);
	/* the live producer goes on: marks, fills, commits, with success */
	if (!mark_fill_commit(&p, live, 2))
		fail_msg("the live producer's claim was aborted: its word holds %#llx",
			 (unsigned long long)*part_commit_word(&p, live));
	writer_idle(&live_w);
	/* so a reader must deliver offset 2, then 3 */
	rc = part_read(&p, &c, &(struct frame_view){ 0 });
	if (rc != 1)
		fail_msg("the committed record at offset 2 was skipped: part_read = %d, cursor at "
			 "offset %llu after skipping %llu", rc, (unsigned long long)c.off,
			 (unsigned long long)c.skipped);
	c = (struct part_cursor){ 0 };
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 2);
	read_expect(&p, &c, 3);
	assert_int_equal(c.skipped, 1);
	read_nothing(&p, &c);
	part_writer_fini(&live_w);
	part_writer_fini(&dead_w);
	part_writer_fini(&w);
	part_unmap(&p);
}

/*
 * Several unmarked claims in a row, each announced: every range abort ends
 * at the least announced boundary after its start, whichever slot holds
 * it; a writer's announcement of its own claim's start (the dead one's)
 * bounds nothing.
 */
static void announcements_bound_a_range_abort(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, d, a, b;
	struct part_cursor c = { 0 };
	uint64_t dpos, apos, bpos;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);                   /* offset 0 at 0 */
	/* take slots so the later boundary sits in an earlier slot */
	part_writer_init(&b, &p);
	part_writer_init(&a, &p);
	part_writer_init(&d, &p);
	dpos = announce_and_claim(&d, 3 * 64, 3); /* 1..3, dies */
	apos = announce_and_claim(&a, 64, 1);     /* 4, stopped */
	bpos = announce_and_claim(&b, 64, 1);     /* 5, stopped */
	assert_int_equal(dpos, 64);
	assert_int_equal(apos, 256);
	assert_int_equal(bpos, 320);
	assert_true(b.slot < a.slot);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, dpos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, dpos, 3 * 64, 1, 4);
	assert_int_equal(p.hdr->aborted_claims, 3);
	/* the reader passes the range and waits at a's claim */
	read_nothing(&p, &c);
	assert_int_equal(c.off, 4);
	assert_int_equal(c.pos, apos);
	assert_int_equal(c.skipped, 3);
	/* a dies too: its range ends where b announced */
	assert_int_equal(part_unblock(&p, 4, apos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, apos, 64, 4, 5);
	/* b was only stopped: it marks and commits, and is read */
	assert_true(mark_fill_commit(&p, bpos, 5));
	writer_idle(&b);
	read_expect(&p, &c, 5);
	assert_int_equal(c.pos, p.hdr->claim.lo);
	read_nothing(&p, &c);
	/* and the slots of writers that left bound nothing */
	part_writer_fini(&a);
	part_writer_fini(&b);
	part_writer_fini(&d);
	part_writer_fini(&w);
	part_unmap(&p);
}

static void roll_back(struct part *p, pair128 to)
{
	p->hdr->claim = to;
}

/*
 * A producer stopped between its claim CAS and its first write, whose
 * claim was aborted meanwhile, must get -ECANCELED and write nothing that
 * readers use: part_unblock writes exactly the word mark_claimed refuses,
 * ABORTED(claim length, first offset).  The producer here is the real
 * part_append: once the unblocker has aborted the claim, the claim word is
 * put back as the stopped producer found it and part_append replays that
 * producer's CAS, so its steps 4 and 5 run over what the unblocker left.
 */
static void stopped_producer_whose_claim_was_aborted_gets_ecanceled(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, s;
	struct part_cursor c = { 0 };
	uint64_t val[2][2] = { { 1, ~1ULL }, { 2, ~2ULL } }, off = 77, pos;
	struct part_rec r[2] = { { .value = val[0], .value_len = 16 },
				 { .value = val[1], .value_len = 16 } };
	pair128 before;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&s, &p);
	append64(&w, 1);
	before = p.hdr->claim;
	pos = announce_and_claim(&s, 2 * 64, 2); /* a batch of two: offsets 1, 2 */
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), 1);
	/* the word of the whole claim: its length, its first offset */
	assert_int_equal(*part_commit_word(&p, pos), cw_make(FRAME_ABORTED, 2 * 64, 1));
	expect_abort(&p, pos, 2 * 64, 1, 3);
	/* the stopped producer resumes */
	roll_back(&p, before);
	s.seen = before;
	assert_int_equal(part_append(&s, r, 2, 0, 0, &off), -ECANCELED);
	assert_int_equal(off, 77);
	assert_int_equal(p.hdr->claim.lo, pos + 2 * 64);
	assert_int_equal(p.hdr->claim.hi, 3);
	/* it wrote neither word nor offset field, nor the second frame */
	expect_abort(&p, pos, 2 * 64, 1, 3);
	assert_int_equal(*part_commit_word(&p, pos + 64), 0);
	/* readers pass the range and read on */
	read_nothing(&p, &c);
	assert_int_equal(c.off, 3);
	assert_int_equal(c.skipped, 2);
	append64(&s, 1);
	read_expect(&p, &c, 3);
	part_writer_fini(&s);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* The same for a claim that starts with PADDING to the ring's end: the
 * stopped producer marks its first frame (inside the aborted range, where
 * no reader looks), finds the padding's word aborted, and undoes it. */
static void stopped_producer_whose_padded_claim_was_aborted_gets_ecanceled(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, s;
	struct part_cursor c = { 0 };
	uint8_t val[160] = { 0 };
	struct part_rec r = { .value = val, .value_len = sizeof val }; /* a 208-byte frame */
	uint64_t off, pos;
	pair128 before;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&s, &p);
	append64(&w, 62); /* up to 3968: 128 bytes left in the lap */
	for (uint64_t o = 0; o < 62; o++)
		read_expect(&p, &c, o);
	before = p.hdr->claim;
	pos = announce_and_claim(&s, 128 + 208, 1);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 62, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 128 + 208, 62, 63);
	roll_back(&p, before);
	s.seen = before;
	assert_int_equal(part_append(&s, &r, 1, 0, 0, &off), -ECANCELED);
	assert_int_equal(p.hdr->claim.lo, 4096 + 208);
	/* the range's word and end are the unblocker's; the frame inside it
	 * was aborted by its producer, never left CLAIMED */
	expect_abort(&p, pos, 128 + 208, 62, 63);
	assert_int_equal(*part_commit_word(&p, 4096), cw_make(FRAME_ABORTED, 208, 62));
	read_nothing(&p, &c);
	assert_int_equal(c.off, 63);
	assert_int_equal(c.pos, 4096 + 208);
	append64(&w, 1);
	read_expect(&p, &c, 63);
	part_writer_fini(&s);
	part_writer_fini(&w);
	part_unmap(&p);
}

/*
 * An aborter that dies between its CAS and the store of the end offset
 * (format.md §3) leaves an ABORTED word whose frame + 8 holds whatever was
 * there.  Readers wait at it; the next part_unblock finds the end again
 * and stores it, and readers pass.
 */
static void abort_without_its_end_offset_is_repaired(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t stale[] = { 0, 1, 1000, UINT64_MAX };

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	for (size_t k = 0; k < sizeof stale / sizeof stale[0]; k++) {
		uint64_t o = p.hdr->claim.hi, pos = raw_claim(&p, 2 * 64, 2);

		append64(&w, 1); /* o + 2 */
		*part_commit_word(&p, pos) = cw_make(FRAME_ABORTED, 2 * 64, o);
		*(uint64_t *)(void *)part_at(&p, pos + 8) = stale[k] ? o + stale[k] - 1 : 0;
		read_nothing(&p, &c);
		assert_int_equal(c.off, o);
		assert_int_equal(c.pos, pos);
		assert_true(c.stalled);
		assert_int_equal(part_unblock(&p, o, pos, 0, c.stall_tail, NULL), 1);
		expect_abort(&p, pos, 2 * 64, o, o + 2);
		/* once is enough */
		assert_int_equal(part_unblock(&p, o, pos, 0, c.stall_tail, NULL), 0);
		read_expect(&p, &c, o + 2);
		read_nothing(&p, &c);
	}
	part_unmap(&p);
}

/* A range whose length is not a claim boundary cannot be given an end
 * safely: part_unblock stores none, and readers keep waiting rather than
 * skip offsets the range does not cover. */
static void abort_that_ends_at_no_boundary_is_not_given_an_end(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = raw_claim(&p, 2 * 64, 2);
	append64(&w, 1);
	*part_commit_word(&p, pos) = cw_make(FRAME_ABORTED, 64, 1); /* half the claim */
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), -EBUSY);
	assert_int_equal(end_at(&p, pos), 0);
	read_nothing(&p, &c);
	assert_int_equal(c.off, 1);
	part_unmap(&p);
}


/*
 * No claim ever starts 8 bytes before the ring's end (format.md §4 step
 * 1): an abort of a dead claim there would have no room for its end
 * offset.  A record that would leave the tail there ends at the ring's
 * end instead, its frame 8 bytes longer than its content, and reads back
 * whole; a dead claim after it starts at the next lap and is passed.
 */
static void no_claim_starts_8_bytes_before_the_ring_end(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t val = 0x1122334455667788ULL, off, pos;
	struct part_rec r56 = { .value = &val, .value_len = 8 }; /* a 56-byte frame */

	make_part(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 63);
	assert_int_equal(part_append(&w, &r56, 1, 0, 0, &off), 1);
	assert_int_equal(p.hdr->claim.lo, 4096); /* not 4088 */
	/* a whole lap is written: offset 0's word was zeroed for the next */
	assert_int_equal(part_read(&p, &c, &v), -ERANGE);
	assert_int_equal(part_seek(&p, &c, 1), 0);
	for (uint64_t o = 1; o < 63; o++)
		assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 63);
	assert_int_equal(v.len, 64);
	assert_int_equal(v.value_len, 8);
	assert_memory_equal(v.value, &val, 8);
	pos = raw_claim(&p, 64, 1);  /* offset 64 dies unmarked at the next lap */
	assert_int_equal(pos, 4096);
	append64(&w, 1);             /* offset 65 */
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 64, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 64, 64, 65);
	read_expect(&p, &c, 65);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Hostile bytes                                                       */

static int unblock_last_word(void *arg)
{
	struct part *p = arg;

	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	(void)part_unblock(p, 0, p->cap - 8, 0, tail_now(p), NULL);
	return 0;
}

/* A CLAIMED word in the ring's last 8 bytes (only damage puts one there:
 * a frame is at least 48 bytes) must be bounds-checked before the pid
 * field 40 bytes further is read. */
static void claimed_word_at_the_ring_end_is_checked_before_its_pid_is_read(void **state)
{
	struct env *e = *state;
	struct part p;
	struct guarded g;
	int st;

	make_part(e, 4096, &p);
	part_unmap(&p);
	map_guarded(e, &g);
	g.p.hdr->claim = (pair128){ .lo = 4096, .hi = 1 };
	*part_commit_word(&g.p, 4088) = cw_make(FRAME_CLAIMED, 48, 0);
	st = tu_wait(tu_fork(unblock_last_word, &g.p), 30000);
	if (st != 0)
		fail_msg("part_unblock read past the data ring: the child died with status %d (signal %d)",
			 st, st > 128 ? st - 128 : 0);
	unmap_guarded(&g);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(claim_of_a_living_producer_is_ebusy),
		T(claim_of_a_dead_producer_is_aborted_and_readers_go_on),
		T(hand_written_claim_of_a_gone_pid_is_aborted),
		T(forced_abort_wins_over_a_late_commit),
		T(unmarked_claim_is_aborted_up_to_the_next_indexed_frame),
		T(unmarked_claim_at_the_tail_is_aborted_to_the_tail),
		T(unmarked_claim_across_the_ring_end_is_aborted),
		T(claimed_word_with_a_bad_length_is_aborted_to_the_next_frame),
		T(word_past_an_aborted_range_is_zeroed),
		T(nothing_to_abort_when_the_claim_moved_on),
		T(range_abort_does_not_swallow_a_live_claim_in_flight),
		T(announcements_bound_a_range_abort),
		T(stopped_producer_whose_claim_was_aborted_gets_ecanceled),
		T(stopped_producer_whose_padded_claim_was_aborted_gets_ecanceled),
		T(abort_without_its_end_offset_is_repaired),
		T(abort_that_ends_at_no_boundary_is_not_given_an_end),
		T(no_claim_starts_8_bytes_before_the_ring_end),
		T(unblock_of_an_overwritten_position_is_erange),
		T(unblock_through_a_readonly_mapping_is_erofs),
		T(claimed_word_at_the_ring_end_is_checked_before_its_pid_is_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
