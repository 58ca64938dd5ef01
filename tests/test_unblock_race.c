/*
 * test_unblock_race.c - a producer stopped, alive, in the middle of its
 * append while the unblocker runs (format.md §4, §7).  Its commit is a
 * CAS from CLAIMED, so a forced abort wins and the late commit gets
 * -ECANCELED: a frame is never both; stopped between the commits of a
 * batch, it aborts the rest itself.  Stopped between its claim and its
 * first write, it is never swallowed by the range abort of a dead claim
 * before it (its announcement bounds the range), and if its own empty
 * word is aborted, it finds the exact word its first CAS refuses.
 *
 * The producers are the real part_append (or part_claim) in a thread
 * stopped at a test point of append.c (util/testpoint.h); dead ones before
 * them are killed at one in a child process.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <string.h>

#include "../shm/append.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/unblock.h"

static void forced_abort_wins_over_a_late_commit(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, zc;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;

	env_part_default(e, 4096, &p);
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

/* The same race in part_append: a producer stopped with its record
 * filled, before its commit CAS (format.md §4 step 5), is alive, so only
 * a forced abort takes its frame; its commit then fails, and part_append
 * reports -ECANCELED with nothing appended. */
static void forced_abort_wins_over_a_producer_stopped_before_its_commit(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct prod pr = { .p = &p, .n = 1 };
	struct tp_stop s;
	uint64_t pos;
	pid_t who = 0;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = stopped_at(&s, &pr, "fill_done", 1); /* offset 1 */
	append64(&w, 1);                           /* offset 2 */
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(c.stall_pos, pos);
	assert_int_equal(*part_commit_word(&p, pos), cw_make(FRAME_CLAIMED, 64, 1));
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, &who), -EBUSY);
	assert_int_equal(who, getpid());
	assert_int_equal(p.hdr->aborted_claims, 0);
	assert_int_equal(part_unblock(&p, 1, pos, PART_UNBLOCK_FORCE, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 64, 1, 2);
	assert_int_equal(tp_resume(&s), 0);
	assert_int_equal(pr.rc, -ECANCELED);
	assert_int_equal(pr.off, 77);
	/* the failed commit changed neither the word nor the end offset */
	expect_abort(&p, pos, 64, 1, 2);
	read_expect(&p, &c, 2);
	read_nothing(&p, &c);
	never_read(&p, 1);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* Stopped between the commits of a batch (format.md §4 step 5), its next
 * frame force-aborted: the producer aborts the rest of its batch itself
 * and reports the one record it appended, stopped by -ECANCELED. */
static void forced_abort_between_the_commits_of_a_batch_cancels_the_rest(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct prod pr = { .p = &p, .n = 3 };
	struct tp_stop s;
	uint64_t pos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = stopped_at(&s, &pr, "publish_after_frame", 1); /* 1 committed; 2, 3 CLAIMED */
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	read_nothing(&p, &c);
	assert_int_equal(c.stall_pos, pos + 64);
	assert_int_equal(*part_commit_word(&p, pos + 128), cw_make(FRAME_CLAIMED, 64, 3));
	assert_int_equal(part_unblock(&p, 2, pos + 64, PART_UNBLOCK_FORCE, c.stall_tail, NULL), 1);
	expect_abort(&p, pos + 64, 64, 2, 3);
	assert_int_equal(tp_resume(&s), 0);
	assert_int_equal(pr.rc, 1);
	assert_int_equal(pr.off, 1);
	assert_int_equal(pr.stopped_by, -ECANCELED);
	/* the rest of the batch: aborted by its producer, with its end */
	expect_abort(&p, pos + 128, 64, 3, 4);
	assert_int_equal(p.hdr->aborted_claims, 1);
	append64(&w, 1);
	read_expect(&p, &c, 4);
	assert_int_equal(c.skipped, 2);
	never_read(&p, 2);
	never_read(&p, 3);
	part_writer_fini(&w);
	part_unmap(&p);
}

/*
 * Appending is an announcement and a claim CAS, then marking (format.md
 * §4 steps 3 and 4).  A producer that claimed after a dead one and has not
 * marked its frame yet when the unblocker looks for the range's end is
 * alive: its record, committed a moment later with success, must reach
 * readers.  The live producer is part_append stopped where the race
 * stops it: after its announcement and CAS, before its first write.
 */
static void range_abort_does_not_swallow_a_live_claim_in_flight(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, live_w;
	struct part_cursor c = { 0 };
	struct prod lp;
	struct tp_stop s;
	uint64_t dead, live;
	int rc;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&live_w, &p);
	assert_non_null(live_w.slot);
	lp = (struct prod){ .p = &p, .w = &live_w, .n = 1 };
	append64(&w, 1);                                       /* offset 0 */
	dead = killed_at(&p, "claim_after_cas", 1, NULL, NULL); /* offset 1: died after its CAS */
	live = stopped_at(&s, &lp, "claim_after_cas", 1);      /* offset 2: between CAS and marking */
	append64(&w, 1);                                       /* offset 3, committed */
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
	assert_int_equal(tp_resume(&s), 0);
	if (lp.rc != 1)
		fail_msg("the live producer's claim was aborted: part_append = %d, its word holds %#llx",
			 lp.rc, (unsigned long long)*part_commit_word(&p, live));
	assert_int_equal(lp.off, 2);
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
	part_writer_fini(&w);
	part_unmap(&p);
}

/*
 * Several unmarked claims in a row, each announced: every range abort ends
 * at the least announced boundary after its start, whichever slot holds
 * it; a writer's announcement of its own claim's start (the dead one's)
 * bounds nothing.  A stopped producer whose empty word was aborted as a
 * hole finds its claim aborted when it goes on (-ECANCELED).
 */
static void announcements_bound_a_range_abort(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, a, b;
	struct part_cursor c = { 0 };
	struct prod pa = { .p = &p, .w = &a, .n = 1 }, pb = { .p = &p, .w = &b, .n = 1 };
	struct tp_stop sa, sb;
	uint64_t dpos, apos, bpos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);                   /* offset 0 at 0 */
	/* take slots so the later boundary sits in an earlier slot */
	part_writer_init(&b, &p);
	part_writer_init(&a, &p);
	dpos = killed_at(&p, "claim_after_cas", 3, NULL, NULL); /* 1..3, dies */
	apos = stopped_at(&sa, &pa, "claim_after_cas", 1);     /* 4, stopped */
	bpos = stopped_at(&sb, &pb, "claim_after_cas", 1);     /* 5, stopped */
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
	/* a's word stays empty: its range ends where b announced */
	assert_int_equal(part_unblock(&p, 4, apos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, apos, 64, 4, 5);
	/* b was only stopped: it marks and commits, and is read */
	assert_int_equal(tp_resume(&sb), 0);
	assert_int_equal(pb.rc, 1);
	assert_int_equal(pb.off, 5);
	read_expect(&p, &c, 5);
	assert_int_equal(c.pos, p.hdr->claim.lo);
	read_nothing(&p, &c);
	/* a goes on and finds its claim aborted: it writes nothing */
	assert_int_equal(tp_resume(&sa), 0);
	assert_int_equal(pa.rc, -ECANCELED);
	assert_int_equal(pa.off, 77);
	expect_abort(&p, apos, 64, 4, 5);
	read_nothing(&p, &c);
	/* and the slots of writers that left bound nothing */
	part_writer_fini(&a);
	part_writer_fini(&b);
	part_writer_fini(&w);
	part_unmap(&p);
}

/*
 * A producer stopped between its claim CAS and its first write, whose
 * claim was aborted meanwhile, must get -ECANCELED and write nothing that
 * readers use: part_unblock writes exactly the word mark_claimed refuses,
 * ABORTED(claim length, first offset).
 */
static void stopped_producer_whose_claim_was_aborted_gets_ecanceled(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, sw;
	struct part_cursor c = { 0 };
	struct prod pr = { .p = &p, .w = &sw, .n = 2 }; /* a batch of two: offsets 1, 2 */
	struct tp_stop s;
	uint64_t pos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&sw, &p);
	append64(&w, 1);
	pos = stopped_at(&s, &pr, "claim_after_cas", 1);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), 1);
	/* the word of the whole claim: its length, its first offset */
	assert_int_equal(*part_commit_word(&p, pos), cw_make(FRAME_ABORTED, 2 * 64, 1));
	expect_abort(&p, pos, 2 * 64, 1, 3);
	/* the stopped producer resumes */
	assert_int_equal(tp_resume(&s), 0);
	assert_int_equal(pr.rc, -ECANCELED);
	assert_int_equal(pr.off, 77);
	assert_int_equal(p.hdr->claim.lo, pos + 2 * 64);
	assert_int_equal(p.hdr->claim.hi, 3);
	/* it wrote neither word nor offset field, nor the second frame */
	expect_abort(&p, pos, 2 * 64, 1, 3);
	assert_int_equal(*part_commit_word(&p, pos + 64), 0);
	/* readers pass the range and read on; the writer appends again */
	read_nothing(&p, &c);
	assert_int_equal(c.off, 3);
	assert_int_equal(c.skipped, 2);
	append64(&sw, 1);
	read_expect(&p, &c, 3);
	part_writer_fini(&sw);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* The same for a claim that starts with PADDING to the ring's end,
 * stopped after its CAS or with its first frame marked (format.md §4 step
 * 4: the frame, inside the range where no reader looks, before the
 * padding): it finds the padding's word aborted, and undoes the frame. */
static void stopped_producer_whose_padded_claim_was_aborted_gets_ecanceled(void **state)
{
	static const char *const windows[] = { "claim_after_cas", "mark_first_frame" };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
		struct part p;
		struct part_writer w;
		struct part_cursor c = { 0 };
		struct prod pr = { .p = &p, .n = 1, .vlen = { 160 } }; /* a 208-byte frame */
		struct tp_stop s;
		uint64_t pos;

		env_part_default(e, 4096, &p);
		part_writer_init(&w, &p);
		append64(&w, 62); /* up to 3968: 128 bytes left in the lap */
		for (uint64_t o = 0; o < 62; o++)
			read_expect(&p, &c, o);
		pos = stopped_at(&s, &pr, windows[i], 1);
		if (i == 1)
			assert_int_equal(*part_commit_word(&p, 4096), cw_make(FRAME_CLAIMED, 208, 62));
		read_nothing(&p, &c);
		assert_int_equal(part_unblock(&p, 62, pos, 0, c.stall_tail, NULL), 1);
		expect_abort(&p, pos, 128 + 208, 62, 63);
		assert_int_equal(tp_resume(&s), 0);
		assert_int_equal(pr.rc, -ECANCELED);
		assert_int_equal(p.hdr->claim.lo, 4096 + 208);
		/* the range's word and end are the unblocker's; the frame inside
		 * it was aborted by its producer, never left CLAIMED */
		expect_abort(&p, pos, 128 + 208, 62, 63);
		assert_int_equal(*part_commit_word(&p, 4096), cw_make(FRAME_ABORTED, 208, 62));
		read_nothing(&p, &c);
		assert_int_equal(c.off, 63);
		assert_int_equal(c.pos, 4096 + 208);
		append64(&w, 1);
		read_expect(&p, &c, 63);
		part_writer_fini(&w);
		part_unmap(&p);
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(forced_abort_wins_over_a_late_commit),
		T(forced_abort_wins_over_a_producer_stopped_before_its_commit),
		T(forced_abort_between_the_commits_of_a_batch_cancels_the_rest),
		T(range_abort_does_not_swallow_a_live_claim_in_flight),
		T(announcements_bound_a_range_abort),
		T(stopped_producer_whose_claim_was_aborted_gets_ecanceled),
		T(stopped_producer_whose_padded_claim_was_aborted_gets_ecanceled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
