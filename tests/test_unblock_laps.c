/*
 * test_unblock_laps.c - the three defects model/ring.pml found in the
 * stalled-claim protocol (docs/format.md "The model"), each forced here
 * with the real code stopped at a test point (util/testpoint.h):
 *
 *   1. an unblocker delayed for a lap of the ring wrote its end offset
 *      over the next lap's record (format.md §7: now it works under the
 *      unblock guard, which producers do not lap, and checks the tail
 *      before each store once a producer stopped waiting for it);
 *   2. shmbusd, told of a writer's death, aborted the claim at the
 *      writer's last announcement, which another, live producer may have
 *      won (now only frames marked with the dead pid);
 *   3. a reader passing an aborted range trusted the end offset at
 *      frame + 8 after a lap, and skipped the next lap's records as
 *      aborted (now it checks the tail after loading it).
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "../shm/append.h"
#include "../shm/guard.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/unblock.h"
#include "../util/clock.h"
#include "../util/error.h"

/* append64()'s records, n of them, from a thread: 0 or part_append's error */
struct lapper {
	struct part *p;
	uint64_t n;
	int rc;
};

static int lap_run(void *arg)
{
	struct lapper *l = arg;
	struct part_writer w;

	if (part_writer_init(&w, l->p) < 0)
		return l->rc = -EUSERS;
	for (uint64_t i = 0; i < l->n; i++) {
		uint64_t o = load_acquire(&l->p->hdr->claim.hi), val[2] = { o, ~o }, off;
		struct part_rec r = { .value = val, .value_len = 16, .timestamp_ns = ts_of(o) };
		int rc = part_append(&w, &r, 1, 0, 0, &off);

		if (rc != 1) {
			l->rc = rc;
			break;
		}
	}
	part_writer_fini(&w);
	return 0;
}

static void *lap_thread(void *arg)
{
	lap_run(arg);
	return NULL;
}

/* part_unblock() of one offset, run where the test stops or kills it */
struct unblocker {
	struct part *p;
	uint64_t off, pos;
	int rc;
};

static int unblock_run(void *arg)
{
	struct unblocker *u = arg;

	u->rc = part_unblock(u->p, u->off, u->pos, 0, tail_now(u->p), NULL);
	return 0;
}

/* Every record from the oldest the ring holds to the end is append64()'s,
 * in order, none reported damaged; the oldest is at most `oldest`. */
static void read_all(struct part *p, uint64_t oldest)
{
	struct part_cursor c;
	struct frame_view v;
	uint64_t o, end = load_acquire(&p->hdr->claim.hi);
	int rc;

	assert_int_equal(part_seek_begin(p, &c), 0);
	o = c.off;
	assert_true(o <= oldest);
	while ((rc = part_read(p, &c, &v)) == 1)
		expect64(&v, o++);
	if (rc != 0 || o != end)
		fail_msg("reading from the oldest record stopped at offset %llu with %d (%s), before "
			 "the end %llu: %s", (unsigned long long)o, rc, strerror(-rc),
			 (unsigned long long)end, rc == -EBADMSG ? shm_errmsg() : "");
}

/* ------------------------------------------------------------------ */
/* Finding 1                                                           */

/*
 * 4096 bytes, 64 records a lap.  Offset 1 at position 64 is a hole (its
 * producer died after its claim CAS).  An unblocker aborts it and is
 * stopped right after its CAS, before it stores the end offset at
 * 64 + 8, while a producer appends a lap: offset 65 lands at 4160, the
 * same place.  The producer must wait for the unblocker (it holds the
 * guard at 64); before the guard it went on, and the unblocker's late end
 * offset then overwrote offset 65's header, a record readers refused as
 * damaged.
 */
static void a_stopped_unblocker_is_never_lapped(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct unblocker u = { .p = &p, .off = 1, .pos = 64 };
	struct lapper l = { .p = &p, .n = 70 };
	struct tp_stop s;
	pthread_t t;
	bool lapped;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	assert_int_equal(raw_claim(&p, 64, 1), 64);
	append64(&w, 1);
	tp_stop_at(&s, "unblock_after_cas", 1, unblock_run, &u);
	assert_int_equal(*part_commit_word(&p, 64), cw_make(FRAME_ABORTED, 64, 1));
	assert_int_equal(pthread_create(&t, NULL, lap_thread, &l), 0);
	usleep(200000);
	/* the claim that laps position 64 may be made, but nothing of it
	 * is written while the unblocker holds the guard */
	lapped = tail_now(&p) > 64 + 4096 + 64 ||
		 *part_commit_word(&p, 64) != cw_make(FRAME_ABORTED, 64, 1);
	assert_int_equal(tp_resume(&s), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(l.rc, 0);
	/* offset 65, at 4160 over the aborted range, is intact (before the
	 * guard, the late end offset made it a damaged frame) */
	read_all(&p, 65);
	assert_false(lapped);
	assert_int_equal(u.rc, 1);
	part_writer_fini(&w);
	part_unmap(&p);
}

/*
 * The unblocker stopped longer than producers wait for it (a second): the
 * producer laps it, and the unblocker, when it goes on, finds the lap
 * before it stores anything (-ERANGE): the next lap's records are intact.
 */
static void an_unblocker_stopped_too_long_stores_nothing_once_lapped(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct unblocker u = { .p = &p, .off = 1, .pos = 64 };
	struct lapper l = { .p = &p, .n = 70 };
	struct tp_stop s;
	int64_t t0 = mono_ns(), took;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	assert_int_equal(raw_claim(&p, 64, 1), 64);
	append64(&w, 1);
	tp_stop_at(&s, "unblock_after_cas", 1, unblock_run, &u);
	assert_int_equal(lap_run(&l), 0);
	assert_int_equal(l.rc, 0);
	took = (mono_ns() - t0) / 1000000;
	/* it waited for the guard, then gave up on it */
	assert_true(took >= PART_GUARD_WAIT_NS / 1000000 - 50);
	assert_int_equal(tp_resume(&s), 0);
	assert_int_equal(u.rc, -ERANGE);
	read_all(&p, 65);
	part_writer_fini(&w);
	part_unmap(&p);
}

static bool guard_held(const struct part *p)
{
	return load_acquire(&p->hdr->unblock_guard.lo) & PART_GUARD_HELD;
}

/* An unblocker killed holding the guard holds nobody back: the next
 * unblocker and producers clear the guard of a process that is gone. */
static void a_dead_unblockers_guard_is_cleared(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct unblocker u = { .p = &p, .off = 1, .pos = 64 };
	int64_t t0;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	assert_int_equal(raw_claim(&p, 64, 1), 64);
	append64(&w, 1);
	tp_die_at("unblock_after_cas", 1, unblock_run, &u);
	assert_true(guard_held(&p));
	/* its end offset never landed: the next unblock repairs it */
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, 64, 0, tail_now(&p), NULL), 1);
	expect_abort(&p, 64, 64, 1, 2);
	assert_false(guard_held(&p));
	read_expect(&p, &c, 2);
	/* and a producer lapping a dead holder's position goes on at once */
	assert_int_equal(raw_claim(&p, 64, 1), 192);
	append64(&w, 1);
	tp_die_at("unblock_after_cas", 1, unblock_run,
		  &(struct unblocker){ .p = &p, .off = 3, .pos = 192 });
	assert_true(guard_held(&p));
	t0 = mono_ns();
	append64(&w, 70);
	assert_true(mono_ns() - t0 < PART_GUARD_WAIT_NS / 2);
	assert_false(guard_held(&p));
	read_all(&p, 67);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Finding 2                                                           */

static bool dead_slot(struct part *p, pid_t pid, struct part_writer_ann *ret)
{
	for (int i = 0; i < PART_MAX_WRITERS; i++)
		if (part_writer_read(p, i, ret) && ret->pid == (uint32_t)pid)
			return true;
	return false;
}

/*
 * A writer killed after announcing {64, 1} and before its claim CAS; a
 * live producer then claims {64, 1} and is stopped before marking it.
 * What shmbusd does at the death (supervise_client_gone(): the claim at
 * the dead writer's busy announcement, for the dead pid) must leave the
 * live producer's claim alone: it commits, and readers get it.
 */
static void a_death_never_aborts_another_producers_claim(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, live_w;
	struct part_cursor c = { 0 };
	struct part_writer_ann a;
	struct prod lp;
	struct tp_stop s;
	pid_t dead;
	int64_t n;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&live_w, &p);
	lp = (struct prod){ .p = &p, .w = &live_w, .n = 1 };
	append64(&w, 1);
	assert_int_equal(killed_at(&p, "claim_announced", 1, NULL, &dead), 64);
	assert_int_equal(stopped_at(&s, &lp, "claim_after_cas", 1), 64);
	assert_true(dead_slot(&p, dead, &a));
	assert_true(a.busy);
	assert_int_equal(a.pos, 64);
	assert_int_equal(a.off, 1);
	n = part_abort_claim(&p, a.off, a.pos, dead);
	assert_int_equal(tp_resume(&s), 0);
	if (n != 0 || lp.rc != 1)
		fail_msg("the death of pid %d aborted %lld offset(s): the live producer's append "
			 "of offset 1 = %d", (int)dead, (long long)n, lp.rc);
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	read_nothing(&p, &c);
	part_writer_fini(&live_w);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* The dead writer's own marked frames are still aborted at once. */
static void a_death_aborts_the_dead_writers_frames(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct part_writer_ann a;
	pid_t dead;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	assert_int_equal(killed_at(&p, "mark_done", 1, NULL, &dead), 64);
	append64(&w, 1);
	assert_true(dead_slot(&p, dead, &a));
	assert_true(a.busy);
	/* someone else's pid aborts nothing */
	assert_int_equal(part_abort_claim(&p, a.off, a.pos, dead + 1000000), 0);
	assert_int_equal(*part_commit_word(&p, 64), cw_make(FRAME_CLAIMED, 64, 1));
	assert_int_equal(part_abort_claim(&p, a.off, a.pos, dead), 1);
	expect_abort(&p, 64, 64, 1, 2);
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 2);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Finding 3                                                           */

struct reader {
	struct part *p;
	struct part_cursor c;
	struct frame_view v;
	int rc;
};

static int read_run(void *arg)
{
	struct reader *r = arg;

	r->rc = part_read(r->p, &r->c, &r->v);
	return 0;
}

/*
 * Offset 10 at 640 is an aborted range (end offset 11).  A reader that
 * loaded its word is stopped before it loads the end offset while the
 * ring laps it: 640 + 4096 then holds offset 74, whose frame + 8 says 74.
 * The reader must report the lap at offset 10; before the fix it took 74
 * for the range's end and skipped offsets 10 to 73, 21 to 73 of them
 * intact, committed records, as aborted (and its consumer, seeking back
 * to the offset it lost, lost them silently).
 */
static void a_reader_lapped_inside_an_aborted_range_reports_the_lap(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct reader r = { .p = &p };
	struct tp_stop s;
	uint64_t pos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 10);
	pos = raw_claim(&p, 64, 1);
	append64(&w, 10);
	assert_int_equal(part_unblock(&p, 10, pos, 0, tail_now(&p), NULL), 1);
	expect_abort(&p, 640, 64, 10, 11);
	assert_int_equal(part_seek_begin(&p, &r.c), 0);
	for (uint64_t o = 0; o < 10; o++)
		read_expect(&p, &r.c, o);
	tp_stop_at(&s, "read_aborted", 1, read_run, &r);
	append64(&w, 64);
	assert_int_equal(end_at(&p, 640 + 4096), 74);
	assert_int_equal(tp_resume(&s), 0);
	if (r.rc != -ERANGE || r.c.off != 10 || r.c.skipped != 0)
		fail_msg("a reader lapped inside the aborted range of offset 10 returned %d at offset "
			 "%llu, having skipped %llu offsets as aborted; expected the lap (-ERANGE) at "
			 "offset 10", r.rc, (unsigned long long)r.c.off,
			 (unsigned long long)r.c.skipped);
	part_writer_fini(&w);
	part_unmap(&p);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(a_stopped_unblocker_is_never_lapped),
		T(an_unblocker_stopped_too_long_stores_nothing_once_lapped),
		T(a_dead_unblockers_guard_is_cleared),
		T(a_death_never_aborts_another_producers_claim),
		T(a_death_aborts_the_dead_writers_frames),
		T(a_reader_lapped_inside_an_aborted_range_reports_the_lap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
