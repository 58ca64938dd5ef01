/*
 * test_writer_mark.c - the busy mark of a writer's slot (format.md §4
 * steps 2, 3 and 6): it says "a claim of mine is being written here, do
 * not lap it", so it must be set only while the writer makes or holds a
 * claim.  A writer that lost its claim CAS, waits for room, or gave up
 * (-EBUSY, -EAGAIN) holds no claim: its mark must be clear, or other
 * writers refuse to lap its stale position and fail with -EBUSY naming a
 * producer that is idle.
 *
 * Everything runs in this process on the real append path; a claim held
 * a lap behind is a zero-copy claim left open.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "../shm/append.h"
#include "../util/clock.h"
#include "../util/error.h"
#include "../shm/partition.h"
#include "../shm/read.h"

#define CAP   4096u
#define VLEN  16u      /* 48-byte header + 16: 64-byte frames */
#define FRAME 64u

struct env {
	char *dir;
	int dirfd;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);

	e->dir = tu_tmpdir("wmark");
	e->dirfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = e;
	return e->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	close(e->dirfd);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static void make_part(struct env *e, uint32_t policy, struct part *p)
{
	struct part_params prm = { .topic = "m", .topic_id = 1, .capacity = CAP, .policy = policy,
				   .numa_node = -1, .mode = 0600 };
	int rc = part_create(e->dirfd, "0", &prm, p);

	if (rc)
		fail_msg("part_create = %d: %s", rc, shm_errmsg());
}

static const uint8_t value[VLEN] = "sixteen bytes..";

static int append_flags(struct part_writer *w, unsigned flags, int64_t deadline_ns)
{
	struct part_rec r = { .value = value, .value_len = VLEN, .flags = FRAME_F_KEY_NULL };

	return part_append(w, &r, 1, flags, deadline_ns, NULL);
}

static int append(struct part_writer *w)
{
	return append_flags(w, 0, 0);
}

static bool marked(const struct part_writer *w)
{
	return load_acquire(&w->slot->flags) & WRITER_BUSY;
}

static void expect_unmarked(const struct part_writer *w, const char *after)
{
	if (marked(w))
		fail_msg("after %s the writer's slot is still marked busy at position %llu "
			 "(the tail is %llu)", after, (unsigned long long)w->slot->pos,
			 (unsigned long long)w->p->hdr->claim.lo);
}

/* A zero-copy claim left open: what a producer stopped between its claim
 * and its commit holds. */
static void hold(struct part_writer *w, struct part_claim *c)
{
	struct part_rec meta = { .flags = FRAME_F_KEY_NULL };

	assert_int_equal(part_claim(w, &meta, VLEN, 0, 0, c), 0);
	memcpy(c->value, value, VLEN);
}

/* Append until the ring refuses to lap the held claim; returns the tail. */
static uint64_t fill_to_the_held_claim(struct part *p, struct part_writer *w)
{
	int rc;

	for (int i = 0; i < 2 * (int)(CAP / FRAME); i++) {
		rc = append(w);
		if (rc == -EBUSY)
			return p->hdr->claim.lo;
		assert_int_equal(rc, 1);
	}
	fail_msg("a claim held a lap behind did not stop the writer");
	return 0;
}

/*
 * Four producers each lose a claim CAS (their last claim word is stale)
 * and then give up with -EBUSY behind a claim held a lap behind; then
 * they idle.  Once the claim is committed, a fresh producer must be able
 * to lap the ring: none of the four holds anything.  (Before the fix their
 * marks stayed at their stale positions and the fresh producer got -EBUSY
 * forever, "a producer (pid N) has held a claim for a whole lap".)
 */
static void writers_that_gave_up_and_idle_do_not_hold_back_a_fresh_one(void **state)
{
	struct env *e = *state;
	struct part_writer idle[4], holder, filler, fresh;
	struct part_claim c;
	struct part p;

	make_part(e, PART_POLICY_OVERWRITE, &p);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(part_writer_init(&idle[i], &p), 0);
		assert_int_equal(append(&idle[i]), 1);
	}
	assert_int_equal(part_writer_init(&holder, &p), 0);
	hold(&holder, &c);
	assert_int_equal(part_writer_init(&filler, &p), 0);
	fill_to_the_held_claim(&p, &filler);
	for (int i = 0; i < 4; i++) {
		pair128 before = p.hdr->claim;

		/* its claim word is a lap old: the CAS fails, then there is
		 * no room without lapping the held claim */
		assert_int_equal(append(&idle[i]), -EBUSY);
		assert_true(idle[i].slot->pos < before.lo);  /* it did announce */
		assert_non_null(strstr(shm_errmsg(), "held a claim for a whole lap"));
		expect_unmarked(&idle[i], "giving up with -EBUSY");
	}
	assert_int_equal(part_commit(&holder, &c, VLEN), 0);
	assert_int_equal(part_writer_init(&fresh, &p), 0);
	for (int i = 0; i < 3 * (int)(CAP / FRAME); i++) {
		int rc = append(&fresh);

		if (rc != 1)
			fail_msg("a fresh producer's append %d = %d, with four producers idle: %s", i,
				 rc, shm_errmsg());
	}
	expect_unmarked(&fresh, "its appends");
	part_writer_fini(&fresh);
	part_writer_fini(&filler);
	part_writer_fini(&holder);
	for (int i = 0; i < 4; i++)
		part_writer_fini(&idle[i]);
	part_unmap(&p);
}

/* A blocking append in another thread, and what its slot showed meanwhile. */
struct waiter {
	struct part_writer *w;
	int rc;
	volatile int done;
};

static void *wait_main(void *arg)
{
	struct waiter *a = arg;

	a->rc = append_flags(a->w, PART_APPEND_BLOCK, mono_ns() + 5 * (int64_t)1000000000);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

#define GRACE_MS 200 /* an announcement and its failed CAS take microseconds */

/* Watch a waiting writer's slot for `ms`.  It may announce a stale claim
 * word, marked, for the moment its CAS takes to fail; it must not stay
 * marked while it waits.  Returns 0, or how long it stayed marked (the
 * caller lets the writer finish before it fails the test). */
static int64_t watch_unmarked(struct waiter *a, int ms)
{
	int64_t end = tu_ms() + ms, since = 0;

	while (tu_ms() < end && !__atomic_load_n(&a->done, __ATOMIC_ACQUIRE)) {
		if (!marked(a->w)) {
			since = 0;
			continue;
		}
		if (!since)
			since = tu_ms();
		if (tu_ms() - since > GRACE_MS)
			return tu_ms() - since;
	}
	if (__atomic_load_n(&a->done, __ATOMIC_ACQUIRE))
		fail_msg("the writer did not wait: append = %d", a->rc);
	return 0;
}

static void expect_unmarked_while_waiting(const struct waiter *a, int64_t marked_ms,
					  uint64_t pos)
{
	if (marked_ms)
		fail_msg("a writer waiting for room was marked busy at position %llu for over %lld "
			 "ms: other writers may not lap it", (unsigned long long)pos,
			 (long long)marked_ms);
	assert_int_equal(a->rc, 1);
}

/* A writer that lost its CAS and now waits for a held claim to be
 * committed (a blocking producer) is not marked while it waits; when the
 * claim commits, it appends. */
static void writer_waiting_behind_a_held_claim_is_not_marked(void **state)
{
	struct env *e = *state;
	struct part_writer waiter, holder, filler;
	struct waiter a = { .w = &waiter };
	struct part_claim c;
	struct part p;
	int64_t marked_ms;
	uint64_t stale;
	pthread_t t;

	make_part(e, PART_POLICY_OVERWRITE, &p);
	assert_int_equal(part_writer_init(&waiter, &p), 0);
	assert_int_equal(append(&waiter), 1);
	assert_int_equal(part_writer_init(&holder, &p), 0);
	hold(&holder, &c);
	assert_int_equal(part_writer_init(&filler, &p), 0);
	fill_to_the_held_claim(&p, &filler);
	assert_int_equal(pthread_create(&t, NULL, wait_main, &a), 0);
	marked_ms = watch_unmarked(&a, 600);
	stale = waiter.slot->pos;
	assert_int_equal(part_commit(&holder, &c, VLEN), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	expect_unmarked_while_waiting(&a, marked_ms, stale);
	expect_unmarked(&waiter, "its append");
	part_writer_fini(&filler);
	part_writer_fini(&holder);
	part_writer_fini(&waiter);
	part_unmap(&p);
}

/* Backpressure: a writer that lost its CAS and is refused room by a
 * registered consumer (-EAGAIN), or waits for it, is not marked; once
 * the consumer moves on it appends. */
static void writer_refused_or_waiting_for_a_consumer_is_not_marked(void **state)
{
	struct env *e = *state;
	struct part_writer w, other;
	struct waiter a = { .w = &w };
	struct part p;
	int64_t marked_ms;
	uint64_t stale;
	pthread_t t;
	int slot, rc;

	make_part(e, PART_POLICY_BACKPRESSURE, &p);
	slot = part_bp_register(&p, 0, 0, "slow");
	assert_true(slot >= 0);
	assert_int_equal(part_writer_init(&w, &p), 0);
	assert_int_equal(append(&w), 1);
	assert_int_equal(part_writer_init(&other, &p), 0);
	while ((rc = append(&other)) == 1)
		;
	assert_int_equal(rc, -EAGAIN);
	/* w's claim word is stale: its CAS fails, then there is no room */
	assert_int_equal(append(&w), -EAGAIN);
	expect_unmarked(&w, "being refused with -EAGAIN");
	assert_int_equal(pthread_create(&t, NULL, wait_main, &a), 0);
	marked_ms = watch_unmarked(&a, 600);
	stale = w.slot->pos;
	part_bp_update(&p, slot, p.hdr->claim.lo, p.hdr->claim.hi);
	assert_int_equal(pthread_join(t, NULL), 0);
	expect_unmarked_while_waiting(&a, marked_ms, stale);
	expect_unmarked(&w, "its append");
	part_bp_unregister(&p, slot);
	part_writer_fini(&other);
	part_writer_fini(&w);
	part_unmap(&p);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(writers_that_gave_up_and_idle_do_not_hold_back_a_fresh_one),
		T(writer_waiting_behind_a_held_claim_is_not_marked),
		T(writer_refused_or_waiting_for_a_consumer_is_not_marked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
