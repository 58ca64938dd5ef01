/*
 * test_mirrored.c - the mirrored offset of a partition (shm/mirrored.c,
 * format.md §15) and the msync of what was appended (shm/sync.c), on
 * partition files alone: no daemon, no root.
 *
 * The offset is raised, never lowered, never past the partition's end;
 * a waiter returns once its offset is below it, at its deadline, or when
 * the partition is deleted; a raise wakes a waiter sleeping in another
 * process through the futex word (its waiter bit is seen set, then
 * cleared by the raise), and a waiter on a read-only mapping, which
 * cannot announce itself, polls.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>

#include "../shm/mirrored.h"
#include "../shm/sync.h"
#include "../util/clock.h"

/* A partition "0" with n records of 64 bytes. */
static void part_with(struct env *e, uint64_t n, struct part *p)
{
	struct part_writer w;

	env_part_default(e, 65536, p);
	assert_int_equal(part_writer_init(&w, p), 0);
	append64(&w, n);
	part_writer_fini(&w);
}

static void raise_never_moves_back_nor_past_the_end(void **state)
{
	struct part p;

	part_with(*state, 10, &p);
	assert_int_equal(part_mirrored(&p), 0);
	assert_int_equal(part_mirrored_raise(&p, 5), 5);
	assert_int_equal(part_mirrored(&p), 5);
	/* a mirror that fell behind (or a slower one) moves nothing back */
	assert_int_equal(part_mirrored_raise(&p, 3), 5);
	assert_int_equal(part_mirrored_raise(&p, 0), 5);
	assert_int_equal(part_mirrored(&p), 5);
	/* no mirror holds what was never appended here */
	assert_int_equal(part_mirrored_raise(&p, 1000), 10);
	assert_int_equal(part_mirrored(&p), 10);
	assert_int_equal(p.hdr->mirrored, 10);
	part_unmap(&p);
}

static void wait_returns_once_mirrored_or_at_the_deadline(void **state)
{
	struct part p;
	int64_t t0;

	part_with(*state, 10, &p);
	part_mirrored_raise(&p, 4);
	assert_int_equal(part_mirrored_wait(&p, 3, mono_ns() + 1000000000LL), 0);
	t0 = mono_ns();
	assert_int_equal(part_mirrored_wait(&p, 4, t0 + 150000000LL), -ETIMEDOUT);
	assert_true(mono_ns() - t0 >= 150000000LL);
	assert_true(mono_ns() - t0 < 2000000000LL);
	/* a deadline already past: no wait at all */
	assert_int_equal(part_mirrored_wait(&p, 9, mono_ns() - 1), -ETIMEDOUT);
	part_unmap(&p);
}

/* Child: wait for offset 7 up to 10 s; exit 0 if it was mirrored. */
static int wait_for_7(void *arg)
{
	struct env *e = arg;
	struct part p;

	if (part_open(e->dirfd, "0", false, "0", &p) < 0)
		return 2;
	return part_mirrored_wait(&p, 7, mono_ns() + 10000000000LL) == 0 ? 0 : 1;
}

static void a_raise_wakes_a_waiter_in_another_process(void **state)
{
	struct env *e = *state;
	struct part p;
	uint32_t before;
	int64_t t0;
	pid_t pid;

	part_with(e, 10, &p);
	part_mirrored_raise(&p, 7);
	pid = tu_fork(wait_for_7, e);
	/* it announces itself in the wake word before sleeping */
	for (t0 = tu_ms(); !(load_acquire(&p.hdr->mirrored_wake) & NOTIFY_WAITERS); usleep(1000))
		assert_true(tu_ms() - t0 < 5000);
	usleep(20000); /* and sleeps */
	before = load_acquire(&p.hdr->mirrored_wake);
	t0 = tu_ms();
	assert_int_equal(part_mirrored_raise(&p, 8), 8);
	/* the raise cleared the bit and bumped the word: a FUTEX_WAKE went */
	assert_false(load_acquire(&p.hdr->mirrored_wake) & NOTIFY_WAITERS);
	assert_int_equal(load_acquire(&p.hdr->mirrored_wake), (before + 1) & ~NOTIFY_WAITERS);
	assert_int_equal(tu_wait(pid, 5000), 0);
	/* woken, not found by its 100 ms re-check */
	assert_true(tu_ms() - t0 < 90);
	/* a raise with nobody waiting leaves the word as it is */
	before = load_acquire(&p.hdr->mirrored_wake);
	part_mirrored_raise(&p, 9);
	assert_int_equal(load_acquire(&p.hdr->mirrored_wake), before);
	part_unmap(&p);
}

static void *delete_later(void *arg)
{
	usleep(50000);
	part_mark_deleted(arg);
	return NULL;
}

static void a_deleted_partition_ends_the_wait(void **state)
{
	struct part p;
	pthread_t t;
	int64_t t0 = tu_ms();

	part_with(*state, 10, &p);
	assert_int_equal(pthread_create(&t, NULL, delete_later, &p), 0);
	assert_int_equal(part_mirrored_wait(&p, 5, mono_ns() + 10000000000LL), -EIDRM);
	assert_true(tu_ms() - t0 < 2000);
	pthread_join(t, NULL);
	part_unmap(&p);
}

static void *raise_later(void *arg)
{
	usleep(30000);
	part_mirrored_raise(arg, 6);
	return NULL;
}

static void a_read_only_waiter_polls(void **state)
{
	struct env *e = *state;
	struct part p, ro;
	pthread_t t;
	int64_t t0;

	part_with(e, 10, &p);
	assert_int_equal(part_open(e->dirfd, "0", true, "0", &ro), 0);
	assert_true(ro.readonly);
	assert_int_equal(pthread_create(&t, NULL, raise_later, &p), 0);
	t0 = tu_ms();
	assert_int_equal(part_mirrored_wait(&ro, 5, mono_ns() + 10000000000LL), 0);
	assert_true(tu_ms() - t0 < 1000);
	/* it never set the waiter bit it cannot write */
	assert_false(load_acquire(&p.hdr->mirrored_wake) & NOTIFY_WAITERS);
	pthread_join(t, NULL);
	part_unmap(&ro);
	part_unmap(&p);
}

static void sync_follows_the_claim_word_across_laps(void **state)
{
	struct part_synced s = { 0 };
	struct part_writer w;
	struct part p;
	pair128 now;

	part_with(*state, 10, &p);
	assert_int_equal(part_sync(&p, &s), 0);
	now = load_pair(&p.hdr->claim);
	assert_int_equal(s.tail, now.lo);
	assert_int_equal(s.next, now.hi);
	/* more than a ring and an index since: each is synced whole, once */
	assert_int_equal(part_writer_init(&w, &p), 0);
	append64(&w, 3000);
	part_writer_fini(&w);
	assert_int_equal(part_sync(&p, &s), 0);
	now = load_pair(&p.hdr->claim);
	assert_int_equal(s.tail, now.lo);
	assert_int_equal(s.next, 3010);
	/* nothing new: nothing to write, still 0 */
	assert_int_equal(part_sync(&p, &s), 0);
	assert_int_equal(s.next, 3010);
	part_unmap(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(raise_never_moves_back_nor_past_the_end, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(wait_returns_once_mirrored_or_at_the_deadline,
						env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(a_raise_wakes_a_waiter_in_another_process, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(a_deleted_partition_ends_the_wait, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(a_read_only_waiter_polls, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(sync_follows_the_claim_word_across_laps, env_setup,
						env_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
