/*
 * test_writer_slots.c - what a supervisor reads of the writers' slots
 * (format.md §4 step 3, §7).  shmbusd aborts a claim through the
 * announcement of a writer slot that stayed busy, with the same sequence
 * number, for the unblock timeout.  The pair it aborts from, {pos, off},
 * must be one announcement: a pos of one claim with the off of the next
 * names no boundary, and aborting from it destroys committed frames.
 *
 * The producer is the real part_claim/part_commit; it moves on exactly
 * between the supervisor's loads of pos and off, at the test point
 * writer_read_pos of part_writer_read() (util/testpoint.h).
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <string.h>

#include "../shm/append.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../util/testpoint.h"
#include "../shm/unblock.h"

/* The producer's next steps, run at writer_read_pos (once). */
static struct {
	struct part_writer *w;
	struct part_claim *held, *next;
	int commit_rc, claim_rc;
	bool fired;
} moves;

static void producer_moves_on(const char *name)
{
	struct part_rec meta = { 0 };

	if (strcmp(name, "writer_read_pos") != 0 || moves.fired)
		return;
	moves.fired = true;
	/* claim 1 is published, claim 2 announced and made */
	moves.commit_rc = part_commit(moves.w, moves.held, 16);
	moves.claim_rc = part_claim(moves.w, &meta, 16, 0, 0, moves.next);
}

/* The daemon's decision (daemon/supervise.c, unstick()): abort from the
 * announcement if the slot is still busy with the sequence number it
 * watched stall. */
static int64_t supervisor_aborts(struct part *p, int slot, uint64_t watched_seq)
{
	struct part_writer_ann a;

	if (!part_writer_read(p, slot, &a) || !a.busy || a.seq != watched_seq)
		return 0;
	return part_abort_claim(p, a.off, a.pos, 0);
}

static void abort_never_takes_a_pair_from_two_claims(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_rec meta = { 0 };
	struct part_claim c1, c2;
	struct part_writer_ann watched;
	struct part_cursor c = { 0 };
	struct frame_view v;
	int slot;

	env_part_default(e, 4096, &p);
	assert_int_equal(part_writer_init(&w, &p), 0);
	/* claim 1 (offset 0 at 0) is held: the slot is busy with its
	 * announcement, which the supervisor watched for the timeout */
	assert_int_equal(part_claim(&w, &meta, 16, 0, 0, &c1), 0);
	slot = __builtin_ctzll(part_writers_taken(&p));
	assert_true(part_writer_read(&p, slot, &watched));
	assert_true(watched.busy);
	assert_int_equal(watched.pos, 0);
	assert_int_equal(watched.off, 0);

	moves = (typeof(moves)){ .w = &w, .held = &c1, .next = &c2 };
	__atomic_store_n(&shm_testpoint_hook, producer_moves_on, __ATOMIC_RELEASE);
	int64_t n = supervisor_aborts(&p, slot, watched.seq);
	__atomic_store_n(&shm_testpoint_hook, NULL, __ATOMIC_RELEASE);
	assert_true(moves.fired);
	assert_int_equal(moves.commit_rc, 0);
	assert_int_equal(moves.claim_rc, 0);

	/* claim 1 was committed before any abort could reach it: it is read */
	if (n != 0)
		print_message("# the supervisor aborted %lld offset(s) from a pair of two claims\n",
			      (long long)n);
	assert_int_equal(part_commit(&w, &c2, 16), 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 1);
	assert_int_equal(n, 0);
	part_writer_fini(&w);
	part_unmap(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(abort_never_takes_a_pair_from_two_claims, env_setup,
						env_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
