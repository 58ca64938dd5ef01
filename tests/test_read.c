/*
 * test_read.c - the read protocol (format.md §6) and seeks: nothing to
 * read, lapping, seeks to every held offset and past both ends, the
 * oldest intact record, timestamp seeks, aborted ranges, and damaged
 * frames, which must give -EBADMSG (or -ERANGE), never a crash.
 *
 * Most tests append frames of exactly 64 bytes, so that positions are
 * simple arithmetic (offset o lies at 64 * o) and a lap holds a known
 * number of records.  Tests that give a reader hostile bytes map the
 * partition with an inaccessible page right after the data ring, in a
 * child process: a read past the ring faults the child and fails the
 * test.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shm/append.h"
#include "../util/clock.h"
#include "../util/error.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/guard.h"
#include "../shm/unblock.h"

static void make_part(struct env *e, uint64_t cap, uint64_t icap, struct part *p)
{
	struct part_params prm = { .topic = "orders", .topic_id = 1, .partition = 0, .capacity = cap,
				   .index_capacity = icap, .numa_node = -1, .mode = 0600 };

	env_part_create(e, "0", &prm, p);
}

/* ------------------------------------------------------------------ */
/* Guarded mappings for hostile bytes                                  */

struct child {
	int (*fn)(void *);
	void *arg;
};

/* In the child: die of a fault rather than enter cmocka's handler. */
static int child_main(void *arg)
{
	struct child *ch = arg;

	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	return ch->fn(ch->arg);
}

static void expect_no_crash(int (*fn)(void *), void *arg, const char *what)
{
	struct child ch = { fn, arg };
	int st = tu_wait(tu_fork(child_main, &ch), 30000);

	if (st == 128 + SIGSEGV || st == 128 + SIGBUS)
		fail_msg("%s: read past the data ring (the child died of signal %d)", what, st - 128);
	if (st != 0)
		fail_msg("%s: the child exited with status %d", what, st);
}

/* ------------------------------------------------------------------ */
/* Sequential reads                                                    */

static void empty_partition_reads_nothing_and_keeps_the_cursor(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_cursor c = { 0 };
	struct frame_view v;

	make_part(e, 4096, 0, &p);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_int_equal(c.off, 0);
	assert_int_equal(c.pos, 0);
	assert_int_equal(c.stall_ns, 0);
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_int_equal(c.off, 0);
	assert_int_equal(part_read(&p, &c, &v), 0);
	part_unmap(&p);
}

static void reader_stops_at_a_claim_and_notes_the_stall(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, zc;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	int64_t since;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	part_writer_init(&zc, &p);
	append64(&w, 1);
	assert_int_equal(part_claim(&zc, &meta, 16, 0, 0, &cl), 0);
	append64(&w, 1);
	read_expect(&p, &c, 0);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_true(c.stalled);
	assert_int_equal(c.stall_pos, cl.pos);
	/* the tail when the stall began, for part_unblock (format.md §7) */
	assert_int_equal(c.stall_tail, p.hdr->claim.lo);
	since = part_stall_clock(&c);
	assert_int_not_equal(since, 0);
	/* the stall's time and tail are kept while the frontier does not
	 * move, even as the tail does */
	append64(&w, 1);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_int_equal(part_stall_clock(&c), since);
	assert_int_equal(c.stall_tail, 2 * 64 + cl.len);
	memset(cl.value, 0, 16);
	assert_int_equal(part_commit(&zc, &cl, 16), 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 1);
	assert_false(c.stalled);
	assert_int_equal(part_stall_clock(&c), 0);
	read_expect(&p, &c, 2);
	read_expect(&p, &c, 3);
	part_unmap(&p);
}

/* At the end of what it read, a reader checks the next commit word alone
 * (the claim word's line is the producers'); a claim whose producer never
 * marked its frame is still noticed: within PART_PEEKS_MAX reads, or at
 * the next read after part_cursor_recheck (before a consumer sleeps). */
/*
 * Older bytes at a claim's end whose low 32 bits equal the next offset (a
 * frame's pid word, or a value) are zeroed like any other: before, the
 * zeroing took them for the next claim's word and left them, and a reader
 * at the claim's end took them for a frame (its peek trusts I3): a
 * "damaged frame", or an aborted range that never was.
 */
#define OLD_BYTES(off) (0x9e3779b900000000ULL | (off)) /* state COMMITTED, absurd length */

static void old_bytes_matching_the_next_offset_are_zeroed_past_a_claim(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_view v;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 3);
	*part_commit_word(&p, 4 * 64) = OLD_BYTES(4);
	append64(&w, 1); /* offset 3 at 192, its end 256 is where 4 goes */
	assert_int_equal(*part_commit_word(&p, 4 * 64), 0);
	for (int i = 0; i < 4; i++)
		read_expect(&p, &c, (uint64_t)i);
	assert_int_equal(part_read(&p, &c, &v), 0); /* nothing yet, not damaged */
	append64(&w, 1);
	read_expect(&p, &c, 4);
	part_writer_fini(&w);
}

/* Once the next claim exists, its word is told from older bytes by its
 * producer's announcement (the first word it told) and its index slot. */
static void zeroing_ahead_keeps_the_next_claims_word_and_only_it(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer z, b, loser;
	uint64_t *cw, mine = cw_make(FRAME_CLAIMED, 64, 4);

	make_part(e, 4096, 0, &p);
	part_writer_init(&z, &p);
	part_writer_init(&b, &p);
	part_writer_init(&loser, &p);
	append64(&z, 4);
	cw = part_commit_word(&p, 4 * 64);
	/* z's claim ended at 256; b claimed [256, 320) for offset 4 since */
	p.hdr->claim = (pair128){ .lo = 5 * 64, .hi = 5 };
	part_writer_announce(b.slot, (pair128){ .lo = 4 * 64, .hi = 4 }, mine);
	/* a loser of that CAS, not idle yet, told another first word */
	part_writer_announce(loser.slot, (pair128){ .lo = 4 * 64, .hi = 4 },
			     cw_make(FRAME_CLAIMED, 128, 4));
	/* b has not marked yet: older bytes there go */
	*cw = OLD_BYTES(4);
	part_zero_ahead(&p, 4 * 64, 4);
	assert_int_equal(*cw, 0);
	/* b marked (its index slot not stored yet): its word stays */
	*cw = mine;
	part_zero_ahead(&p, 4 * 64, 4);
	assert_int_equal(*cw, mine);
	/* b marked and indexed, then went idle: its word stays */
	p.index[4 & p.imask] = 4 * 64;
	part_writer_idle(b.slot);
	part_writer_idle(loser.slot);
	part_zero_ahead(&p, 4 * 64, 4);
	assert_int_equal(*cw, mine);
	/* a producer that tells no first word (an older library): the word
	 * is left, as before, since nothing tells it from its own */
	p.index[4 & p.imask] = 0;
	part_writer_announce(b.slot, (pair128){ .lo = 4 * 64, .hi = 4 }, 0);
	*cw = OLD_BYTES(4);
	part_zero_ahead(&p, 4 * 64, 4);
	assert_int_equal(*cw, OLD_BYTES(4));
	/* no claim after z's yet: older bytes go, whatever the slots say */
	p.hdr->claim = (pair128){ .lo = 4 * 64, .hi = 4 };
	part_zero_ahead(&p, 4 * 64, 4);
	assert_int_equal(*cw, 0);
	part_writer_fini(&loser);
	part_writer_fini(&b);
	part_writer_fini(&z);
}

/*
 * The cases the model found in the first form of the rule: an
 * unblocker's ABORTED word for the next offset, stored before its index
 * entries, is left while it holds the guard (else its producer, stopped
 * before marking, would later commit an aborted offset); and older bytes
 * past a claim whose producer died before marking, its slot reaped, are
 * cleared though no announcement tells its first word.
 */
static void zeroing_ahead_leaves_an_abort_and_clears_a_dead_claims_bytes(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer z, b;
	uint64_t *cw, aborted = cw_make(FRAME_ABORTED, 64, 4);

	make_part(e, 4096, 0, &p);
	part_writer_init(&z, &p);
	part_writer_init(&b, &p);
	append64(&z, 4);
	cw = part_commit_word(&p, 4 * 64);
	p.hdr->claim = (pair128){ .lo = 5 * 64, .hi = 5 };
	part_writer_announce(b.slot, (pair128){ .lo = 4 * 64, .hi = 4 },
			     cw_make(FRAME_CLAIMED, 64, 4));
	/* an unblocker holds the guard and has aborted b's claim */
	assert_int_equal(part_guard_take(&p, 4 * 64), 0);
	*cw = aborted;
	part_zero_ahead(&p, 4 * 64, 4);
	assert_int_equal(*cw, aborted);
	/* its index entry, then the release: still left */
	p.index[4 & p.imask] = 4 * 64;
	part_guard_release(&p, 4 * 64);
	part_zero_ahead(&p, 4 * 64, 4);
	assert_int_equal(*cw, aborted);
	/* b died before marking and its slot was reaped: nothing will write
	 * its word, older bytes there go */
	p.index[4 & p.imask] = 0;
	part_writer_idle(b.slot);
	*cw = OLD_BYTES(4);
	part_zero_ahead(&p, 4 * 64, 4);
	assert_int_equal(*cw, 0);
	part_writer_fini(&b);
	part_writer_fini(&z);
}

struct zeroing {
	struct part *p;
	uint64_t pos, off;
};

static void *zero_in_thread(void *arg)
{
	struct zeroing *z = arg;

	part_zero_ahead(z->p, z->pos, z->off);
	return NULL;
}

/* format.md "The model", finding 6: a producer killed after its claim CAS
 * left older bytes carrying its offset's bits at its claim; the claim
 * before it zeroes ahead while an unblocker (shmbusd, after the death,
 * aborting nothing) guards that position.  The zeroing waits for the
 * guard and then clears them; a guard held for longer is waited for at
 * most PART_GUARD_TAKE_NS, and the word left. */
static void zeroing_ahead_waits_for_an_unblock_at_the_next_claim(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer z, b;
	struct part_cursor c = { 0 };
	struct frame_view v;
	struct zeroing arg = { &p, 4 * 64, 4 };
	pthread_t t;
	uint64_t *cw;
	int64_t t0;

	make_part(e, 4096, 0, &p);
	part_writer_init(&z, &p);
	part_writer_init(&b, &p);
	append64(&z, 4);
	cw = part_commit_word(&p, 4 * 64);
	/* b claimed offset 4 and was killed before its first word */
	p.hdr->claim = (pair128){ .lo = 5 * 64, .hi = 5 };
	part_writer_announce(b.slot, (pair128){ .lo = 4 * 64, .hi = 4 },
			     cw_make(FRAME_CLAIMED, 64, 4));
	*cw = OLD_BYTES(4);
	assert_int_equal(part_guard_take(&p, 4 * 64), 0);
	/* a guard that stays: waited for, then the word is left */
	t0 = mono_ns();
	part_zero_ahead(&p, 4 * 64, 4);
	assert_true(mono_ns() - t0 >= PART_GUARD_TAKE_NS);
	assert_int_equal(*cw, OLD_BYTES(4));
	/* a guard released while the zeroing waits: judged again, cleared */
	assert_int_equal(pthread_create(&t, NULL, zero_in_thread, &arg), 0);
	usleep(2000);
	assert_int_equal(*cw, OLD_BYTES(4)); /* never cleared under the guard */
	part_guard_release(&p, 4 * 64);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(*cw, 0);
	/* a reader at offset 4 waits for a claim, no damaged frame */
	for (int i = 0; i < 4; i++)
		read_expect(&p, &c, (uint64_t)i);
	assert_int_equal(part_read(&p, &c, &v), 0);
	part_writer_idle(b.slot);
	part_writer_fini(&b);
	part_writer_fini(&z);
}

/*
 * What the zeroing ahead may still leave past a claim (format.md §4 step
 * 4: a guard held there past its wait, a word equal to the next claim's)
 * is older bytes, and a reader at that offset waits for the claim's own
 * word: while no claim holds the offset, and while its claim has not
 * marked its frame (its index slot).  Before, it reported a damaged frame
 * until the next lap overwrote them.  A marked frame with the same bytes
 * is still damage.  An unmarked one whose producer is gone is a hole,
 * which the reader's unblock aborts: the unblocker, which took a COMMITTED
 * word there for the claim's own, would have left the reader waiting.
 */
static void reader_waits_at_older_bytes_no_claim_has_replaced(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 }, at4;
	struct frame_view v;
	uint64_t *cw;
	const uint64_t older[] = { OLD_BYTES(4), cw_make(FRAME_ABORTED, 8, 4),
				   cw_make(FRAME_PADDING, 128, 4) };

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 4);
	cw = part_commit_word(&p, 4 * 64);
	for (int i = 0; i < 4; i++)
		read_expect(&p, &c, (uint64_t)i);
	for (size_t i = 0; i < sizeof older / sizeof older[0]; i++) {
		*cw = older[i];
		/* no claim holds offset 4 */
		at4 = c;
		shm_err_clear();
		if (part_read(&p, &at4, &v) != 0)
			fail_msg("older word %zu past the last claim: %s", i, shm_errmsg());
		assert_int_equal(at4.off, 4);
		/* offset 4 claimed, its frame not marked yet */
		p.hdr->claim = (pair128){ .lo = 5 * 64, .hi = 5 };
		if (part_read(&p, &at4, &v) != 0)
			fail_msg("older word %zu under an unmarked claim: %s", i, shm_errmsg());
		assert_int_equal(at4.off, 4);
		assert_true(at4.stalled);
		/* marked (index stored), the word still older: damage */
		p.index[4 & p.imask] = 4 * 64;
		assert_int_equal(part_read(&p, &at4, &v), -EBADMSG);
		assert_non_null(strstr(shm_errmsg(), "offset 4"));
		/* unmarked, its producer gone: the stalled reader's unblock
		 * aborts it as a hole, and the reader passes it */
		p.index[4 & p.imask] = 0;
		if (part_unblock(&p, 4, 4 * 64, 0, 0, NULL) != 1)
			fail_msg("older word %zu: not aborted as a hole: %s", i, shm_errmsg());
		assert_int_equal(part_read(&p, &at4, &v), 0);
		assert_int_equal(at4.off, 5);
		p.index[4 & p.imask] = 0;
		p.hdr->claim = (pair128){ .lo = 4 * 64, .hi = 4 };
	}
	/* the next claim takes the word whatever is there, and is read */
	*cw = OLD_BYTES(4);
	append64(&w, 1);
	read_expect(&p, &c, 4);
	part_writer_fini(&w);
}

static void reader_at_a_claim_end_notices_an_unmarked_claim(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_view v;
	int reads = 0;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 3);
	for (int i = 0; i < 3; i++)
		read_expect(&p, &c, (uint64_t)i);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_false(c.stalled);
	/* a producer claims 64 bytes and dies before marking them */
	p.hdr->claim = (pair128){ .lo = 4 * 64, .hi = 4 };
	while (!c.stalled && reads <= PART_PEEKS_MAX) {
		assert_int_equal(part_read(&p, &c, &v), 0);
		reads++;
	}
	assert_true(c.stalled);
	assert_int_equal(c.stall_pos, 3 * 64);
	/* and at once after a recheck */
	p.hdr->claim = (pair128){ .lo = 3 * 64, .hi = 3 };
	c = (struct part_cursor){ 0 };
	for (int i = 0; i < 3; i++)
		read_expect(&p, &c, (uint64_t)i);
	assert_int_equal(part_read(&p, &c, &v), 0); /* peeks from here */
	assert_false(c.stalled);
	p.hdr->claim = (pair128){ .lo = 4 * 64, .hi = 4 };
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_false(c.stalled); /* not seen yet: the claim word was not loaded */
	part_cursor_recheck(&c);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_true(c.stalled);
	/* a record marked at the claim's end is read without the claim word */
	p.hdr->claim = (pair128){ .lo = 3 * 64, .hi = 3 };
	c = (struct part_cursor){ 0 };
	for (int i = 0; i < 3; i++)
		read_expect(&p, &c, (uint64_t)i);
	append64(&w, 1);
	p.hdr->claim.hi = 3; /* as if loaded before that append */
	p.hdr->claim.lo = 3 * 64;
	read_expect(&p, &c, 3);
	part_unmap(&p);
}

/* A reader stalled at a CLAIMED word of its own offset (a producer
 * writing the frame) goes on checking that word alone: the claim word's
 * line stays with the producers until the frame is committed.  A recheck
 * still loads the claim word at once, and a stall at an unmarked word
 * loads it at every check. */
static void reader_at_a_marked_claim_checks_its_word_alone(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, zc;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	pair128 real;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	part_writer_init(&zc, &p);
	append64(&w, 2);
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_false(c.stalled);
	assert_int_equal(part_claim(&zc, &meta, 16, 0, 0, &cl), 0);
	assert_int_equal(cl.pos, 2 * 64);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_true(c.stalled);
	assert_true(c.stall_marked);
	assert_int_equal(c.stall_pos, cl.pos);
	/* a claim word that would say "out of range" is not looked at */
	real = p.hdr->claim;
	p.hdr->claim = (pair128){ .lo = 0, .hi = 0 };
	for (int i = 0; i < 8; i++)
		assert_int_equal(part_read(&p, &c, &v), 0);
	assert_true(c.stalled);
	/* before a sleep it is */
	part_cursor_recheck(&c);
	assert_int_equal(part_read(&p, &c, &v), -ERANGE);
	p.hdr->claim = real;
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_true(c.stall_marked);
	/* the committed frame is read from its word too */
	p.hdr->claim = (pair128){ .lo = 0, .hi = 0 };
	memset(cl.value, 0, 16);
	assert_int_equal(part_commit(&zc, &cl, 16), 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 2);
	assert_false(c.stalled);
	p.hdr->claim = real;
	/* a producer that claimed and died before marking: the reader sees
	 * the claim through the claim word, then loads it at every check */
	p.hdr->claim = (pair128){ .lo = 4 * 64, .hi = 4 };
	part_cursor_recheck(&c);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_true(c.stalled);
	assert_false(c.stall_marked);
	p.hdr->claim = (pair128){ .lo = 3 * 64 + 4096, .hi = 100 }; /* as if lapped */
	assert_int_equal(part_read(&p, &c, &v), -ERANGE);
	part_unmap(&p);
}

static void cursor_past_the_end_is_out_of_range(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 3);
	c = (struct part_cursor){ .off = 4, .pos = 4 * 64 };
	assert_int_equal(part_read(&p, &c, &v), -ERANGE);
	part_unmap(&p);
}

/* A reader a whole ring behind gets -ERANGE, never a newer record in
 * place of the one it expects. */
static void lapped_cursor_is_out_of_range(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_view v;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 10);
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	append64(&w, 64 * 3); /* three laps */
	assert_int_equal(part_read(&p, &c, &v), -ERANGE);
	assert_int_equal(c.off, 2);
	/* the same with a cursor whose frame is exactly a ring behind */
	c = (struct part_cursor){ .off = p.hdr->claim.hi - 64, .pos = p.hdr->claim.lo - 4096 };
	assert_int_equal(part_read(&p, &c, &v), -ERANGE);
	c = (struct part_cursor){ .off = p.hdr->claim.hi - 63, .pos = p.hdr->claim.lo - 4096 + 64 };
	read_expect(&p, &c, p.hdr->claim.hi - 63);
	part_unmap(&p);
}

/* part_intact says whether the bytes of a frame read earlier can have
 * been overwritten: exactly while tail < pos + capacity. */
static void intact_until_the_tail_is_a_ring_ahead(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t pos;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 5);
	for (int i = 0; i < 3; i++)
		assert_int_equal(part_read(&p, &c, &v), 1);
	pos = v.pos;
	assert_int_equal(pos, 128);
	for (int i = 0; i < 200; i++) {
		bool want = p.hdr->claim.lo < pos + 4096;

		if (part_intact(&p, pos) != want)
			fail_msg("tail %llu, frame at %llu: part_intact = %d", (unsigned long long)p.hdr->claim.lo,
				 (unsigned long long)pos, !want);
		append64(&w, 1);
	}
	assert_false(part_intact(&p, pos));
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Seeks                                                               */

/* Many laps of 64-byte frames on an 8 KiB ring: 127 records are intact
 * (the 128th back lies under the word zeroed past the last claim). */
static void seek_reaches_every_held_offset_and_refuses_the_rest(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;
	uint64_t low, end;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 1000);
	part_bounds(&p, &low, &end);
	assert_int_equal(end, 1000);
	assert_int_equal(low, 1000 - 127);
	for (uint64_t o = low; o < end; o++) {
		assert_int_equal(part_seek(&p, &c, o), 0);
		read_expect(&p, &c, o);
		if (o + 1 < end)
			read_expect(&p, &c, o + 1);
	}
	assert_int_equal(part_seek(&p, &c, end), 0);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_int_equal(c.off, end);
	append64(&w, 1);
	read_expect(&p, &c, end);
	part_bounds(&p, &low, &end);
	assert_int_equal(low, 1001 - 127);
	assert_int_equal(end, 1001);
	assert_int_equal(part_seek(&p, &c, end + 1), -ERANGE);
	assert_int_equal(part_seek(&p, &c, UINT64_MAX), -ERANGE);
	assert_int_equal(part_seek(&p, &c, low), 0);
	assert_int_equal(part_seek(&p, &c, low - 1), -ERANGE);
	assert_int_equal(part_seek(&p, &c, 0), -ERANGE);
	part_unmap(&p);
}

/* With fewer index slots than records in a lap, seeks reach the offsets
 * the index still holds. */
static void seek_is_bounded_by_the_index(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	uint64_t low, end;

	make_part(e, 8192, 64, &p);
	part_writer_init(&w, &p);
	append64(&w, 1000);
	part_bounds(&p, &low, &end);
	assert_int_equal(low, 1000 - 64);
	assert_int_equal(part_seek(&p, &c, 1000 - 64), 0);
	read_expect(&p, &c, 1000 - 64);
	assert_int_equal(part_seek(&p, &c, 1000 - 65), -ERANGE);
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_int_equal(c.off, 1000 - 64);
	part_unmap(&p);
}

static void seek_begin_finds_the_oldest_intact_record_at_every_tail(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	for (uint64_t n = 1; n <= 400; n++) {
		uint64_t want;

		append64(&w, 1);
		/* offset o is at 64 o; intact while 64 o + 4096 > tail = 64 n */
		want = n > 63 ? n - 63 : 0;
		assert_int_equal(part_seek_begin(&p, &c), 0);
		if (c.off != want)
			fail_msg("after %llu records, seek_begin at %llu, expected %llu",
				 (unsigned long long)n, (unsigned long long)c.off, (unsigned long long)want);
		read_expect(&p, &c, want);
	}
	part_unmap(&p);
}

static void seek_end_then_read_waits_for_the_next_record(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 100);
	assert_int_equal(part_seek_end(&p, &c), 0);
	assert_int_equal(c.off, 100);
	assert_int_equal(c.pos, 6400);
	assert_int_equal(part_read(&p, &c, &v), 0);
	append64(&w, 2);
	read_expect(&p, &c, 100);
	read_expect(&p, &c, 101);
	part_unmap(&p);
}

static void seek_time_finds_the_first_record_at_or_after(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;
	uint64_t low, end;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 700);
	part_bounds(&p, &low, &end);
	for (int64_t t = ts_of(low) - 25; t <= ts_of(end - 1) + 25; t += 3) {
		uint64_t want = low;

		while (want < end && ts_of(want) < t)
			want++;
		assert_int_equal(part_seek_time(&p, &c, t), 0);
		if (want == end) {
			assert_int_equal(c.off, end);
			assert_int_equal(part_read(&p, &c, &v), 0);
		} else {
			read_expect(&p, &c, want);
		}
	}
	assert_int_equal(part_seek_time(&p, &c, INT64_MIN), 0);
	read_expect(&p, &c, low);
	assert_int_equal(part_seek_time(&p, &c, INT64_MAX), 0);
	assert_int_equal(c.off, end);
	part_unmap(&p);
}

static void seek_time_with_equal_timestamps_finds_the_first_of_them(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;

	make_part(e, 1 << 16, 0, &p);
	part_writer_init(&w, &p);
	for (uint64_t o = 0; o < 300; o++) {
		struct part_rec r = { .value = &o, .value_len = 8, .timestamp_ns = (int64_t)(o / 7) * 100 };
		uint64_t off;

		assert_int_equal(part_append(&w, &r, 1, 0, 0, &off), 1);
	}
	for (int64_t t = 0; t <= 42 * 100; t += 50) {
		uint64_t want = (uint64_t)((t + 99) / 100) * 7;

		assert_int_equal(part_seek_time(&p, &c, t), 0);
		assert_int_equal(part_read(&p, &c, &v), 1);
		assert_int_equal(v.offset, want);
	}
	part_unmap(&p);
}

/* An offset inside an aborted range has no frame of its own: a seek to
 * it lands on the first record after it. */
static void seek_into_aborted_offsets_lands_on_the_next_record(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c;
	uint64_t pos;

	make_part(e, 1 << 16, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 10);
	assert_int_equal(part_claim(&w, &meta, 16, 0, 0, &cl), 0); /* offset 10 */
	assert_int_equal(part_abort(&w, &cl), 0);
	append64(&w, 10); /* 11..20 */
	pos = raw_claim(&p, 3 * 64, 3); /* 21..23, never marked */
	append64(&w, 5); /* 24..28 */
	assert_int_equal(part_unblock(&p, 21, pos, 0, tail_now(&p), NULL), 1);
	for (uint64_t o = 0; o < 29; o++) {
		uint64_t want = o == 10 ? 11 : (o >= 21 && o <= 23) ? 24 : o;

		assert_int_equal(part_seek(&p, &c, o), 0);
		read_expect(&p, &c, want);
	}
	/* timestamps of the aborted offsets: the next record */
	assert_int_equal(part_seek_time(&p, &c, ts_of(10)), 0);
	read_expect(&p, &c, 11);
	assert_int_equal(part_seek_time(&p, &c, ts_of(21)), 0);
	read_expect(&p, &c, 24);
	/* bounds and seek_begin are not fooled by holes */
	assert_int_equal(part_seek_begin(&p, &c), 0);
	read_expect(&p, &c, 0);
	part_unmap(&p);
}

/*
 * An aborted range whose offsets were never marked has no index entries
 * of its own: their slots still hold positions from a lap ago.  The
 * oldest intact record must still be found when such a hole lies
 * in the middle of the index window (where a bisection first looks).
 */
static void seek_begin_is_not_misled_by_an_aborted_range_in_the_middle(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	uint64_t pos, low, end;

	make_part(e, 8192, 0, &p); /* 128 index slots; 127 frames of 64 bytes intact */
	part_writer_init(&w, &p);
	append64(&w, 500);
	pos = raw_claim(&p, 10 * 64, 10); /* 500..509: a producer died after its CAS */
	append64(&w, 49);
	assert_int_equal(part_unblock(&p, 500, pos, 0, tail_now(&p), NULL), 1);
	append64(&w, 65);
	assert_int_equal(p.hdr->claim.hi, 624);
	/* offset o lies at 64 o; intact while 64 o + 8192 > tail = 64 * 624 */
	part_bounds(&p, &low, &end);
	assert_int_equal(part_seek_begin(&p, &c), 0);
	if (c.off != 497 || low != 497)
		fail_msg("seek_begin at %llu, part_bounds low %llu: the oldest intact record is 497",
			 (unsigned long long)c.off, (unsigned long long)low);
	read_expect(&p, &c, 497);
	read_expect(&p, &c, 498);
	read_expect(&p, &c, 499);
	read_expect(&p, &c, 510);
	part_unmap(&p);
}

/* A timestamp seek across an aborted range longer than a probe's reach
 * (here 300 offsets, as a recovery cut or a dead producer's claim to the
 * tail leaves) still finds the first record at or after the time. */
static void seek_time_across_a_long_aborted_range(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	uint64_t pos;

	make_part(e, 1 << 16, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 100);
	pos = raw_claim(&p, 300 * 64, 300); /* 100..399 */
	append64(&w, 100);                  /* 400..499 */
	assert_int_equal(part_unblock(&p, 100, pos, 0, tail_now(&p), NULL), 1);
	assert_int_equal(part_seek_time(&p, &c, ts_of(50)), 0);
	read_expect(&p, &c, 50);
	assert_int_equal(part_seek_time(&p, &c, ts_of(150)), 0);
	read_expect(&p, &c, 400);
	for (uint64_t want = 400; want < 500; want += 7) {
		assert_int_equal(part_seek_time(&p, &c, ts_of(want)), 0);
		if (c.off > want)
			fail_msg("seek to the time of %llu placed the cursor at %llu",
				 (unsigned long long)want, (unsigned long long)c.off);
		read_expect(&p, &c, want);
	}
	part_unmap(&p);
}

/* Retention moves `start`: offsets below it are gone for readers. */
static void offsets_below_start_are_out_of_range(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t low, end;

	make_part(e, 1 << 16, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 50);
	p.hdr->start = 20;
	assert_int_equal(part_read(&p, &c, &v), -ERANGE);
	assert_int_equal(part_seek(&p, &c, 19), -ERANGE);
	assert_int_equal(part_seek(&p, &c, 20), 0);
	read_expect(&p, &c, 20);
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_int_equal(c.off, 20);
	part_bounds(&p, &low, &end);
	assert_int_equal(low, 20);
	assert_int_equal(end, 50);
	part_unmap(&p);
}

/* A damaged `start` beyond the end: seek_begin must not hand out a
 * cursor that part_read calls out of range, or a consumer applying its
 * reset policy (seek_begin again) loops forever. */
static void seek_begin_with_start_past_the_end_gives_a_usable_cursor(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;
	int rc;

	make_part(e, 1 << 16, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 10);
	p.hdr->start = 1000;
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_true(c.off <= p.hdr->claim.hi);
	rc = part_read(&p, &c, &v);
	assert_true(rc != -ERANGE);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Aborted ranges and damage                                           */

/* An aborted range as format.md §3 has it: ABORTED(length, first offset)
 * in the commit word, the offset after the range at frame + 8. */
static void write_abort(struct part *p, uint64_t pos, uint64_t len, uint64_t first, uint64_t end)
{
	*(uint64_t *)(void *)part_at(p, pos + 8) = end;
	*part_commit_word(p, pos) = cw_make(FRAME_ABORTED, len, first);
}

static void aborted_range_is_skipped_with_its_offset_count(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 2);
	pos = raw_claim(&p, 200, 5); /* offsets 2..6 over 200 bytes */
	write_abort(&p, pos, 200, 2, 7);
	append64(&w, 1);
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	read_expect(&p, &c, 7);
	assert_int_equal(c.skipped, 5);
	assert_int_equal(c.pos, p.hdr->claim.lo);
	part_unmap(&p);
}

/* An abort across the ring's end: readers read only its first word. */
static void aborted_range_may_cross_the_ring_end(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 60); /* up to 3840 */
	for (int i = 0; i < 60; i++)
		read_expect(&p, &c, (uint64_t)i);
	pos = raw_claim(&p, 512, 4); /* 3840 .. 4352: over the end */
	write_abort(&p, pos, 512, 60, 64);
	append64(&w, 1);
	read_expect(&p, &c, 64);
	assert_int_equal(c.skipped, 4);
	part_unmap(&p);
}

/*
 * The end offset of an aborted range is stored after the aborting CAS
 * (format.md §3): a reader that finds the word before its end, or a stale
 * end (beyond the claimed offsets, or not past the range's first), waits
 * at the range; it passes as soon as the end is there.
 */
static void aborted_range_waits_for_its_end_offset(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;
	uint64_t pos, *endp, stale[] = { 0, 1, 4, 10, UINT64_MAX };

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = raw_claim(&p, 128, 2); /* offsets 1, 2 */
	endp = (uint64_t *)(void *)part_at(&p, pos + 8);
	for (size_t k = 0; k < sizeof stale / sizeof stale[0]; k++) {
		write_abort(&p, pos, 128, 1, stale[k]);
		c = (struct part_cursor){ .off = 1, .pos = pos };
		if (part_read(&p, &c, &v) != 0 || c.off != 1 || c.pos != pos)
			fail_msg("end offset %llu: the reader did not wait at the range",
				 (unsigned long long)stale[k]);
		assert_true(c.stalled);
		assert_int_equal(c.stall_pos, pos);
		assert_int_equal(c.skipped, 0);
	}
	/* the end lands: the reader passes */
	store_release(endp, 3);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_int_equal(c.off, 3);
	assert_int_equal(c.pos, pos + 128);
	assert_int_equal(c.skipped, 2);
	assert_false(c.stalled);
	append64(&w, 1);
	read_expect(&p, &c, 3);
	part_unmap(&p);
}

/*
 * An ABORTED word that no writer can have written is damage, whatever the
 * offset at frame + 8 says: shorter than the commit word and the end
 * offset (FRAME_ABORT_MIN), or running past the tail (every abort ends at
 * a claim boundary by the tail, and the tail only grows).  Waiting cannot
 * mend it: readers get -EBADMSG naming partition and offset (format.md §6
 * step 4), as a damaged COMMITTED or PADDING word gives them.
 */
static void impossible_aborted_words_are_ebadmsg(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;
	uint64_t pos;
	struct {
		const char *what;
		uint64_t len;
	} bad[] = {
		{ "no length", 0 },
		{ "shorter than an abort", 8 },
		{ "runs past the tail", 4000 },
	};

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = raw_claim(&p, 128, 2); /* offsets 1, 2 */
	p.index[1 & p.imask] = pos; /* marked: damage, not older bytes */
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc;

		write_abort(&p, pos, bad[i].len, 1, 3);
		c = (struct part_cursor){ .off = 1, .pos = pos };
		shm_err_clear();
		rc = part_read(&p, &c, &v);
		if (rc != -EBADMSG)
			fail_msg("ABORTED word that %s: part_read = %d at offset %llu, expected "
				 "-EBADMSG", bad[i].what, rc, (unsigned long long)c.off);
		assert_non_null(strstr(shm_errmsg(), "orders/0"));
		assert_non_null(strstr(shm_errmsg(), "offset 1"));
		assert_int_equal(c.off, 1);
	}
	/* a sound one */
	write_abort(&p, pos, 128, 1, 3);
	c = (struct part_cursor){ .off = 1, .pos = pos };
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_int_equal(c.off, 3);
	assert_int_equal(c.skipped, 2);
	part_unmap(&p);
}

/* A cursor placed at the tail of a damaged claim word (not a frame
 * boundary) reads nothing from there: -EBADMSG naming the fix. */
static void seek_end_to_a_damaged_tail_is_ebadmsg(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 3);
	p.hdr->claim.lo = 3 * 64 + 4;
	assert_int_equal(part_seek_end(&p, &c), 0);
	assert_int_equal(part_read(&p, &c, &v), -EBADMSG);
	assert_non_null(strstr(shm_errmsg(), "claim word is damaged"));
	assert_int_equal(c.pos, 3 * 64 + 4);
	part_unmap(&p);
}

static void padding_that_does_not_end_at_the_ring_end_is_ebadmsg(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_view v;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 3);
	*part_commit_word(&p, 64) = cw_make(FRAME_PADDING, 16, 1);
	read_expect(&p, &c, 0);
	assert_int_equal(part_read(&p, &c, &v), -EBADMSG);
	assert_non_null(strstr(shm_errmsg(), "padding"));
	assert_int_equal(c.off, 1);
	assert_int_equal(c.pos, 64);
	*part_commit_word(&p, 64) = cw_make(FRAME_PADDING, 4096, 1);
	assert_int_equal(part_read(&p, &c, &v), -EBADMSG);
	part_unmap(&p);
}

/* A committed word with the right offset bits is trusted only after
 * every length in the frame is checked. */
static void committed_frame_with_garbage_lengths_is_ebadmsg(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;
	struct frame_hdr *h;
	struct {
		const char *what;
		uint64_t cw;
		uint32_t klen, hlen, vlen;
		uint64_t off;
	} bad[] = {
		{ "shorter than a header", cw_make(FRAME_COMMITTED, 40, 1), 0, 0, 16, 1 },
		{ "length 0", cw_make(FRAME_COMMITTED, 0, 1), 0, 0, 16, 1 },
		{ "longer than the largest frame", cw_make(FRAME_COMMITTED, 2056, 1), 0, 0, 16, 1 },
		{ "longer than the ring", cw_make(FRAME_COMMITTED, 1ULL << 33, 1), 0, 0, 16, 1 },
		{ "key past the frame", cw_make(FRAME_COMMITTED, 64, 1), 17, 0, 16, 1 },
		{ "value past the frame", cw_make(FRAME_COMMITTED, 64, 1), 0, 0, 17, 1 },
		{ "headers past the frame", cw_make(FRAME_COMMITTED, 64, 1), 0, 100, 16, 1 },
		{ "huge lengths", cw_make(FRAME_COMMITTED, 64, 1), UINT32_MAX, UINT32_MAX, UINT32_MAX, 1 },
		{ "wrong offset field", cw_make(FRAME_COMMITTED, 64, 1), 0, 0, 16, 1 + (1ULL << 32) },
	};

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 3);
	h = (struct frame_hdr *)(void *)part_at(&p, 64);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct frame_hdr keep = *h;
		int rc;

		h->commit = bad[i].cw;
		h->key_len = bad[i].klen;
		h->headers_len = bad[i].hlen;
		h->value_len = bad[i].vlen;
		h->offset = bad[i].off;
		c = (struct part_cursor){ .off = 1, .pos = 64 };
		shm_err_clear();
		rc = part_read(&p, &c, &v);
		if (rc != -EBADMSG)
			fail_msg("%s: part_read = %d, expected -EBADMSG", bad[i].what, rc);
		if (!strstr(shm_errmsg(), "orders/0") || !strstr(shm_errmsg(), "offset 1"))
			fail_msg("%s: the message names neither partition nor offset: %s", bad[i].what,
				 shm_errmsg());
		assert_int_equal(c.off, 1);
		*h = keep;
	}
	/* and restored, it reads */
	c = (struct part_cursor){ .off = 1, .pos = 64 };
	read_expect(&p, &c, 1);
	part_unmap(&p);
}

/* A committed frame that would cross the ring's end (only damage makes
 * one) is refused before any byte past the end is read. */
static void committed_frame_crossing_the_ring_end_is_refused(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append64(&w, 63); /* up to 4032 */
	raw_claim(&p, 64, 1);
	p.index[63 & p.imask] = 4032; /* marked: damage, not older bytes */
	*part_commit_word(&p, 4032) = cw_make(FRAME_COMMITTED, 128, 63);
	c = (struct part_cursor){ .off = 63, .pos = 4032 };
	assert_int_equal(part_read(&p, &c, &v), -EBADMSG);
	part_unmap(&p);
}

/*
 * The older lap's bytes under a new claim can look like an ABORTED word:
 * here a value holds the u64 0x8000003e8 (ABORTED, 64 bytes, first offset
 * 1000).  Readers must go on reading the records appended after it, not
 * stop with -EBADMSG (see test_append's
 * claim_landing_on_old_bytes_that_look_aborted_succeeds).
 */
static void old_bytes_that_look_aborted_do_not_wedge_readers(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static uint8_t val[2000];
	uint64_t x = cw_make(FRAME_ABORTED, 64, 1000), off, delivered = 0;
	struct part_rec big = { .value = val, .value_len = 2000 };
	struct part_rec small = { .value = "eight b.", .value_len = 8 };
	struct part_cursor c = { 0 };
	struct frame_view v;
	int rc;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	memcpy(val + 8, &x, 8);
	assert_int_equal(part_append(&w, &big, 1, 0, 0, &off), 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(part_append(&w, &big, 1, 0, 0, &off), 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(part_append(&w, &small, 1, 0, 0, &off), 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	(void)part_append(&w, &small, 1, 0, 0, &off); /* lands on the old u64 */
	for (int i = 0; i < 3; i++)
		assert_int_equal(part_append(&w, &small, 1, 0, 0, &off), 1);
	while ((rc = part_read(&p, &c, &v)) == 1)
		delivered++;
	if (rc < 0)
		fail_msg("reader stopped at offset %llu with %d: %s", (unsigned long long)c.off, rc,
			 shm_errmsg());
	assert_int_equal(c.off, p.hdr->claim.hi);
	assert_true(delivered >= 3);
	part_unmap(&p);
}

/* probe_time (part_seek_time) reads a timestamp at a position the index
 * gives; a hostile index and word must not make it read past the ring. */
static int seek_time_on_hostile_index(void *arg)
{
	struct part *p = arg;
	struct part_cursor c;

	(void)part_seek_time(p, &c, 0);
	(void)part_seek_begin(p, &c);
	return 0;
}

static void seek_time_never_reads_past_the_ring_on_a_hostile_index(void **state)
{
	struct env *e = *state;
	struct part p;
	struct guarded g;

	make_part(e, 4096, 0, &p);
	part_unmap(&p);
	map_guarded(e, &g);
	/* offset 0 "at" the last word of the ring, a lap's end as tail */
	g.p.hdr->claim = (pair128){ .lo = 4096, .hi = 1 };
	g.p.index[0] = 4088;
	*part_commit_word(&g.p, 4088) = cw_make(FRAME_COMMITTED, 48, 0);
	expect_no_crash(seek_time_on_hostile_index, &g.p, "part_seek_time");
	unmap_guarded(&g);
}

static int read_everything(void *arg)
{
	struct part *p = arg;
	struct part_cursor c;
	struct frame_view v;

	for (uint64_t pos = 0; pos < p->cap; pos += 8) {
		c = (struct part_cursor){ .off = 0, .pos = pos };
		for (int i = 0; i < 10 && part_read(p, &c, &v) == 1; i++)
			;
	}
	return 0;
}

/* Frame-shaped junk at every position, the reader pointed at each: it
 * returns errors but reads nothing outside the ring. */
static void reader_never_reads_past_the_ring_on_hostile_words(void **state)
{
	struct env *e = *state;
	struct part p;
	struct guarded g;
	uint64_t words[] = {
		cw_make(FRAME_COMMITTED, 48, 0), cw_make(FRAME_COMMITTED, 2048, 0),
		cw_make(FRAME_PADDING, 8, 0), cw_make(FRAME_ABORTED, 8, 1),
		cw_make(FRAME_CLAIMED, 48, 0), cw_make(FRAME_COMMITTED, 56, 0),
		/* aborts whose end offset lies 8 bytes further: at the ring's
		 * last word, past its end */
		cw_make(FRAME_ABORTED, 16, 0), cw_make(FRAME_ABORTED, 64, 0),
	};

	make_part(e, 4096, 0, &p);
	part_unmap(&p);
	map_guarded(e, &g);
	g.p.hdr->claim = (pair128){ .lo = 4096 + 2048, .hi = 100 };
	for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
		for (uint64_t pos = 0; pos < 4096; pos += 8)
			*part_commit_word(&g.p, pos) = words[k];
		expect_no_crash(read_everything, &g.p, "part_read");
	}
	unmap_guarded(&g);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(empty_partition_reads_nothing_and_keeps_the_cursor),
		T(reader_stops_at_a_claim_and_notes_the_stall),
		T(reader_at_a_claim_end_notices_an_unmarked_claim),
		T(old_bytes_matching_the_next_offset_are_zeroed_past_a_claim),
		T(zeroing_ahead_keeps_the_next_claims_word_and_only_it),
		T(zeroing_ahead_leaves_an_abort_and_clears_a_dead_claims_bytes),
		T(zeroing_ahead_waits_for_an_unblock_at_the_next_claim),
	T(reader_waits_at_older_bytes_no_claim_has_replaced),
		T(reader_at_a_marked_claim_checks_its_word_alone),
		T(cursor_past_the_end_is_out_of_range),
		T(lapped_cursor_is_out_of_range),
		T(intact_until_the_tail_is_a_ring_ahead),
		T(seek_reaches_every_held_offset_and_refuses_the_rest),
		T(seek_is_bounded_by_the_index),
		T(seek_begin_finds_the_oldest_intact_record_at_every_tail),
		T(seek_end_then_read_waits_for_the_next_record),
		T(seek_time_finds_the_first_record_at_or_after),
		T(seek_time_with_equal_timestamps_finds_the_first_of_them),
		T(seek_into_aborted_offsets_lands_on_the_next_record),
		T(seek_begin_is_not_misled_by_an_aborted_range_in_the_middle),
		T(seek_time_across_a_long_aborted_range),
		T(offsets_below_start_are_out_of_range),
		T(seek_begin_with_start_past_the_end_gives_a_usable_cursor),
		T(aborted_range_is_skipped_with_its_offset_count),
		T(aborted_range_may_cross_the_ring_end),
		T(aborted_range_waits_for_its_end_offset),
		T(impossible_aborted_words_are_ebadmsg),
		T(seek_end_to_a_damaged_tail_is_ebadmsg),
		T(padding_that_does_not_end_at_the_ring_end_is_ebadmsg),
		T(committed_frame_with_garbage_lengths_is_ebadmsg),
		T(committed_frame_crossing_the_ring_end_is_refused),
		T(old_bytes_that_look_aborted_do_not_wedge_readers),
		T(seek_time_never_reads_past_the_ring_on_a_hostile_index),
		T(reader_never_reads_past_the_ring_on_hostile_words),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
