/*
 * test_horizon.c - the horizon word (format.md §2, §4 step 3, §6 step 3;
 * shm/horizon.h): producers raise it over a claim before the claim CAS,
 * a step ahead; readers' lap checks trust it to say "intact" and ask the
 * tail otherwise; partitions of version 1 (no horizon) are read with the
 * tail; a damaged horizon never hides a
 * lap; recovery sets it.
 *
 * Partitions of 4096 bytes and records of exactly 64 bytes: offset o
 * lies at 64 * o, a lap holds 64 records, and the step is 4096 / 16 =
 * 256 bytes.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <string.h>

#include "../shm/append.h"
#include "../shm/horizon.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/recover.h"
#include "../util/error.h"

#define CAP 4096u
#define STEP 256u

static uint64_t horizon_now(const struct part *p)
{
	return load_acquire(&p->hdr->horizon);
}

/* Was the frame at pos, read before this call, lost? (part_first_lost of
 * one frame, offset above any `start`) */
static bool lost(const struct part *p, uint64_t pos)
{
	uint64_t off = UINT64_MAX / 2;

	return part_first_lost(p, &pos, &off, 1, sizeof pos) == 0;
}

/* Read offset 0 (at position 0) into *v and check it. */
static void read_first(struct part *p, struct part_cursor *c, struct frame_view *v)
{
	assert_int_equal(part_seek(p, c, 0), 0);
	assert_int_equal(part_read(p, c, v), 1);
	expect64(v, 0);
	assert_int_equal(v->pos, 0);
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */

/* A new partition's horizon covers its empty claim (tail 0 + 8); the
 * first claim raises it to its end + 8 + a step, and claims inside that
 * leave it. */
static void a_claim_raises_the_horizon_a_step_ahead(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;

	env_part_default(e, CAP, &p);
	assert_true(p.horizon);
	assert_int_equal(p.horizon_step, STEP);
	assert_int_equal(p.hdr->version, PART_VERSION);
	assert_int_equal(horizon_now(&p), 8);
	part_writer_init(&w, &p);
	append64(&w, 1);
	assert_int_equal(horizon_now(&p), 64 + 8 + STEP);
	append64(&w, 4); /* ends at 320: 328 is covered */
	assert_int_equal(horizon_now(&p), 64 + 8 + STEP);
	append64(&w, 1);
	assert_int_equal(horizon_now(&p), 384 + 8 + STEP);
	/* over many laps it stays within a step of the tail, and is written
	 * about once per step */
	for (int i = 0; i < 1000; i++) {
		uint64_t h;

		append64(&w, 1);
		h = horizon_now(&p);
		assert_true(h >= tail_now(&p) + 8);
		assert_true(h <= tail_now(&p) + 8 + STEP);
	}
	part_writer_fini(&w);
	part_unmap(&p);
}

/*
 * The order the model checks (BUG_HORIZON_AFTER_WRITE): a producer
 * stopped right before its claim CAS has already raised the horizon over
 * the claim, so nothing of it can be written beyond the horizon.
 */
static void the_horizon_covers_a_claim_before_its_cas(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct prod pr = { .p = &p, .n = 1 };
	struct tp_stop s;

	env_part_default(e, CAP, &p);
	part_writer_init(&w, &p);
	append64(&w, 5); /* tail 320, horizon 328 */
	assert_int_equal(horizon_now(&p), 64 + 8 + STEP);
	assert_int_equal(stopped_at(&s, &pr, "claim_announced", 1), 320);
	assert_int_equal(tail_now(&p), 320);
	assert_int_equal(horizon_now(&p), 384 + 8 + STEP);
	assert_int_equal(tp_resume(&s), 0);
	assert_int_equal(pr.rc, 1);
	assert_int_equal(tail_now(&p), 384);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Readers                                                             */

/*
 * A producer stopped after writing the payload that laps a frame a
 * reader holds (not committed yet): the horizon no longer shows the
 * frame intact, and the reader's check reports it lost.
 */
static void a_reader_finds_its_frame_lapped_through_the_horizon(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;
	struct prod pr = { .p = &p, .n = 1 };
	struct tp_stop s;

	env_part_default(e, CAP, &p);
	part_writer_init(&w, &p);
	append64(&w, 63);
	read_first(&p, &c, &v);
	append64(&w, 1); /* a lap: tail 4096 */
	/* the record at 4096 overwrites offset 0's bytes */
	assert_int_equal(stopped_at(&s, &pr, "fill_done", 1), CAP);
	assert_false(part_horizon_intact(&p, horizon_now(&p), v.pos));
	assert_true(lost(&p, v.pos));
	assert_false(part_intact(&p, v.pos));
	assert_int_equal(tp_resume(&s), 0);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* A frame the horizon shows intact is judged without the claim word:
 * even a tail that says "lapped" (here moved by hand, and put back) is
 * not loaded.  This is what spares the producers' line. */
static void a_plausible_horizon_answers_without_the_tail(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;
	pair128 saved;

	env_part_default(e, CAP, &p);
	part_writer_init(&w, &p);
	append64(&w, 10);
	read_first(&p, &c, &v);
	assert_true(part_horizon_intact(&p, horizon_now(&p), v.pos));
	saved = p.hdr->claim;
	p.hdr->claim.lo = saved.lo + 10 * CAP;
	assert_false(lost(&p, v.pos));
	assert_true(part_intact(&p, v.pos));
	p.hdr->claim = saved;
	part_writer_fini(&w);
	part_unmap(&p);
}

/* A frame within a step of its lap: the horizon is past it, the tail
 * decides, so it is not reported lapped before it is. */
static void a_frame_a_step_from_its_lap_is_judged_by_the_tail(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;

	env_part_default(e, CAP, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	read_first(&p, &c, &v);
	append64(&w, 62); /* tail 4032: one record short of the lap */
	assert_false(part_horizon_intact(&p, horizon_now(&p), v.pos));
	assert_false(lost(&p, v.pos));
	append64(&w, 1); /* tail 4096: offset 0's word is zeroed (§4 step 4) */
	assert_true(lost(&p, v.pos));
	part_writer_fini(&w);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Compatibility                                                       */

/* Append a lap and a half, then check what a reader at offset 0 and one
 * at the last lap's records say: lost, and intact. */
static void laps_by_the_tail(struct part *p)
{
	struct part_writer w;
	struct part_cursor c;
	struct frame_view v;

	part_writer_init(&w, p);
	append64(&w, 1);
	read_first(p, &c, &v);
	append64(&w, 95);
	assert_true(lost(p, v.pos));
	assert_int_equal(part_seek(p, &c, 90), 0);
	for (uint64_t o = 90; o < 96; o++) {
		assert_int_equal(part_read(p, &c, &v), 1);
		expect64(&v, o);
		assert_false(lost(p, v.pos));
	}
	part_writer_fini(&w);
}

/*
 * A partition of format version 1 (made by a library from before the
 * horizon: the word is zero there) opens, is appended to without the
 * horizon being touched, and is read with the tail.
 */
static void a_version_1_partition_is_read_with_the_tail(void **state)
{
	struct env *e = *state;
	struct part p;

	env_part_default(e, CAP, &p);
	p.hdr->version = PART_VERSION_NO_HORIZON;
	p.hdr->horizon = 0;
	part_unmap(&p);
	if (part_open(e->dirfd, "0", false, "t/0", &p))
		fail_msg("a version 1 partition is refused: %s", shm_errmsg());
	assert_false(p.horizon);
	laps_by_the_tail(&p);
	assert_int_equal(horizon_now(&p), 0);
	part_unmap(&p);
}

/*
 * A backpressure partition keeps the horizon too (format.md §2): with
 * nobody registered its producers lap like any, and a reader a lap behind
 * is told so; a registered consumer a whole ring behind holds the
 * producers back, and where the horizon a step ahead cannot show its
 * frame intact, the tail does: it is never reported lapped early.
 */
static void a_backpressure_partition_keeps_the_horizon(void **state)
{
	struct env *e = *state;
	struct part_params prm = { .topic = "t", .topic_id = 1, .capacity = CAP,
				   .policy = PART_POLICY_BACKPRESSURE, .numa_node = -1,
				   .mode = 0600 };
	struct part p;
	struct part_writer w;
	struct part_rec r = { .value = "0123456789abcdef", .value_len = 16 }; /* 64 bytes */
	int slot, n = 0;

	env_part_create(e, "0", &prm, &p);
	assert_true(p.horizon);
	assert_int_equal(horizon_now(&p), 8);
	laps_by_the_tail(&p);
	assert_true(horizon_now(&p) >= tail_now(&p) + 8);
	assert_true(horizon_now(&p) <= tail_now(&p) + 8 + STEP);
	/* a consumer registered at the tail holds the producer a ring later */
	slot = part_bp_register(&p, tail_now(&p), 96, "c");
	assert_true(slot >= 0);
	part_writer_init(&w, &p);
	while (part_append(&w, &r, 1, 0, 0, NULL) == 1)
		n++;
	assert_int_equal(n, (CAP - 8) / 64); /* up to the backpressure limit */
	assert_true(horizon_now(&p) >= tail_now(&p) + 8);
	assert_false(lost(&p, 96 * 64));
	assert_false(lost(&p, tail_now(&p) - 64));
	/* the horizon a step past its frame's next lap: the tail decides */
	p.hdr->horizon = 96 * 64 + CAP + STEP;
	assert_false(lost(&p, 96 * 64));
	part_bp_unregister(&p, slot);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* A version the library does not know is refused, naming the version. */
static void a_newer_version_is_refused(void **state)
{
	struct env *e = *state;
	struct part p;

	env_part_default(e, CAP, &p);
	p.hdr->version = PART_VERSION + 1;
	part_unmap(&p);
	assert_int_equal(part_open(e->dirfd, "0", false, "t/0", &p), -EPROTO);
	assert_non_null(strstr(shm_errmsg(), "version 3"));
}

/* ------------------------------------------------------------------ */
/* Damage                                                              */

/*
 * A horizon damaged low (zero, or below the least end + 8 of a frame at
 * the position read, pos + 56) is not trusted:
 * the tail judges, a lap is still reported, an intact frame still
 * delivered; the next claim raises it over the tail again.  One damaged
 * high (absurd) says nothing either: the tail judges.
 */
static void a_damaged_horizon_never_hides_a_lap(void **state)
{
	static const uint64_t bad[] = { 0, 40, UINT64_MAX, 1ULL << 62, CAP * 1000 };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct part p;
		struct part_writer w;
		struct part_cursor c;
		struct frame_view v;

		env_part_default(e, CAP, &p);
		part_writer_init(&w, &p);
		append64(&w, 2);
		read_first(&p, &c, &v);
		store_seq_cst(&p.hdr->horizon, bad[i]);
		assert_false(lost(&p, v.pos));
		assert_true(part_intact(&p, v.pos));
		/* a lap by the claim word alone (as a producer that died
		 * right after its CAS; raw_claim covers only what it claims) */
		store_seq_cst(&p.hdr->horizon, bad[i]);
		raw_claim(&p, CAP, 1);
		store_seq_cst(&p.hdr->horizon, bad[i]);
		assert_true(lost(&p, v.pos));
		assert_false(part_intact(&p, v.pos));
		part_writer_fini(&w);
		part_unmap(&p);
	}
}

/* The next claim repairs a horizon damaged low. */
static void a_claim_repairs_a_horizon_damaged_low(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;

	env_part_default(e, CAP, &p);
	part_writer_init(&w, &p);
	append64(&w, 20);
	store_seq_cst(&p.hdr->horizon, 0);
	append64(&w, 1);
	assert_int_equal(horizon_now(&p), 21 * 64 + 8 + STEP);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* Recovery sets the horizon to its rebuilt tail + 8, whatever it was. */
static void recovery_sets_the_horizon(void **state)
{
	static const uint64_t bad[] = { 0, UINT64_MAX, 3 };
	struct env *e = *state;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct part p;
		struct part_writer w;
		struct part_recovery r;

		env_part_default(e, CAP, &p);
		part_writer_init(&w, &p);
		append64(&w, 70);
		part_writer_fini(&w);
		store_seq_cst(&p.hdr->horizon, bad[i]);
		if (part_recover(&p, &r))
			fail_msg("part_recover: %s", shm_errmsg());
		assert_int_equal(r.new_tail, 70 * 64);
		assert_int_equal(horizon_now(&p), 70 * 64 + 8);
		part_unmap(&p);
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(a_claim_raises_the_horizon_a_step_ahead),
		T(the_horizon_covers_a_claim_before_its_cas),
		T(a_reader_finds_its_frame_lapped_through_the_horizon),
		T(a_plausible_horizon_answers_without_the_tail),
		T(a_frame_a_step_from_its_lap_is_judged_by_the_tail),
		T(a_version_1_partition_is_read_with_the_tail),
		T(a_backpressure_partition_keeps_the_horizon),
		T(a_newer_version_is_refused),
		T(a_damaged_horizon_never_hides_a_lap),
		T(a_claim_repairs_a_horizon_damaged_low),
		T(recovery_sets_the_horizon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
