/*
 * test_hostile_words.c - a few bytes written into a partition by any
 * process with write access never hang a reader or the unblocker: every
 * loop over offsets or positions read from shared memory is bounded by
 * what the ring can hold (its capacity, its index), and what cannot be
 * gives -EBADMSG with "run recovery".
 *
 * Each call under test runs in a child with a deadline: before the fix,
 * the child spun for ever and was killed.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "../shm/append.h"
#include "../util/clock.h"
#include "../util/error.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/unblock.h"
#include "test_mp.h"

#define HUGE_NEXT (1ULL << 60)

struct env {
	char *dir;
	int dirfd;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);

	e->dir = tu_tmpdir("hostile");
	e->dirfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = e;
	return e->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	mp_kill_all();
	close(e->dirfd);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static void make_part(struct env *e, uint64_t cap, struct part *p)
{
	struct part_params prm = { .topic = "h", .topic_id = 1, .capacity = cap, .numa_node = -1,
				   .mode = 0600 };
	int rc = part_create(e->dirfd, "0", &prm, p);

	if (rc)
		fail_msg("part_create = %d: %s", rc, shm_errmsg());
}

/* Append n records of 64 bytes. */
static void append64(struct part *p, uint64_t n)
{
	struct part_writer w;
	uint8_t val[16] = "0123456789abcdef";
	struct part_rec r = { .value = val, .value_len = 16 };

	assert_int_equal(part_writer_init(&w, p), 0);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(part_append(&w, &r, 1, 0, 0, NULL), 1);
	part_writer_fini(&w);
}

/* Read on up to the end. */
static void read_to_end(struct part *p, struct part_cursor *c)
{
	struct frame_view v;

	while (part_read(p, c, &v) == 1)
		;
	assert_int_equal(c->off, p->hdr->claim.hi);
}

/* Run fn in a child, which must exit 0 within 5 s. */
static void in_child(int (*fn)(void *), void *arg, const char *what)
{
	pid_t pid = mp_spawn(fn, arg);
	int st = mp_reap(pid, 5000);

	if (st < 0)
		fail_msg("%s did not return within 5 s (the child was killed)", what);
	if (st != 0)
		fail_msg("%s: the child exited with status %d", what, st);
}

#define EXPECT_DAMAGED(call, what)                                                        \
	do {                                                                              \
		int rc_ = (call);                                                         \
		CHILD_CHECK(rc_ == -EBADMSG && strstr(shm_errmsg(), "recovery"),         \
			    "%s = %d (%s), expected -EBADMSG saying to run recovery", what, \
			    rc_, shm_errmsg());                                           \
	} while (0)

/* ------------------------------------------------------------------ */
/* A claim word whose `next` no ring could hold                        */

/* A reader's partition and cursor, for a child to use. */
struct reader_at {
	struct part *p;
	struct part_cursor c;
};

static int read_and_unblock_at_a_huge_next(void *arg)
{
	struct reader_at *h = arg;
	struct part *p = h->p;
	struct part_cursor c = h->c, from0 = { 0 };
	uint64_t tail = p->hdr->claim.lo, pos, off;
	struct frame_view v;

	part_cursor_recheck(&c);
	EXPECT_DAMAGED(part_read(p, &c, &v), "part_read at the end");
	EXPECT_DAMAGED(part_read(p, &from0, &v), "part_read from offset 0");
	c = h->c;
	EXPECT_DAMAGED(part_unblock(p, c.off, c.pos, 0, tail, NULL), "part_unblock");
	EXPECT_DAMAGED(part_unblock(p, c.off, c.pos, PART_UNBLOCK_FORCE, tail, NULL),
		       "part_unblock forced");
	/* the search for the next claim boundary stops at what the index holds */
	off = part_next_boundary(p, c.off, c.pos, tail, HUGE_NEXT, &pos);
	CHILD_CHECK(pos == tail && off == HUGE_NEXT, "boundary %llu at %llu",
		    (unsigned long long)off, (unsigned long long)pos);
	return 0;
}

/* Eight bytes: the claim word's `next` set to 2^60.  Before the fix a
 * reader at the end stalled, and its unblocker (and shmbusd's) looped up
 * to `next` looking for the next claim boundary. */
static void claim_word_with_an_impossible_next_is_ebadmsg(void **state)
{
	struct env *e = *state;
	struct reader_at h;
	struct part p;

	make_part(e, 64 << 10, &p);
	append64(&p, 10);
	h = (struct reader_at){ .p = &p };
	read_to_end(&p, &h.c);
	store_release(&p.hdr->claim.hi, HUGE_NEXT);
	in_child(read_and_unblock_at_a_huge_next, &h, "reading at a claim word with next 2^60");
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* A padding word that fills a whole lap                               */

static int read_at_a_lap_long_padding(void *arg)
{
	struct reader_at *r = arg;
	struct frame_view v;

	EXPECT_DAMAGED(part_read(r->p, &r->c, &v), "part_read at a padding a lap long");
	return 0;
}

/* A reader at the start of a lap finds PADDING for its offset, as long as
 * the ring: "to the ring's end" from there is the same place a lap later.
 * Before the fix the reader followed it round and round. */
static void padding_a_whole_lap_long_is_ebadmsg(void **state)
{
	struct env *e = *state;
	struct reader_at r;
	struct part p;

	make_part(e, 4096, &p);
	r = (struct reader_at){ .p = &p };
	append64(&p, 32);
	read_to_end(&p, &r.c);
	append64(&p, 32);                       /* up to the lap's end */
	read_to_end(&p, &r.c);
	assert_int_equal(r.c.pos, 4096);
	*part_commit_word(&p, r.c.pos) = cw_make(FRAME_PADDING, 4096, r.c.off);
	p.hdr->claim = (pair128){ .lo = 4096 + 2048, .hi = r.c.off + 1 };
	/* its claim marked it (an unmarked one's word is older bytes, waited
	 * for: test_read) */
	p.index[r.c.off & p.imask] = r.c.pos;
	part_cursor_recheck(&r.c);
	in_child(read_at_a_lap_long_padding, &r, "reading at a padding a lap long");
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* The same eight bytes under a consumer in poll()                     */

struct poller {
	const char *root;
	volatile int caught_up, damaged;
	int rc;
	int64_t ms;
	char msg[512];
};

static int poller_main(void *arg)
{
	struct poller *a = arg;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .unblock_timeout_ms = 50);
	struct shmbus_message msgs[16];
	shmbus_consumer *c = NULL;
	shmbus *bus = mp_open(a->root);
	int got = 0, n;
	int64_t t0;

	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, "t", 0, SHMBUS_OFFSET_BEGINNING) == 0, "assign");
	while (got < 10) {
		n = shmbus_consumer_poll(c, msgs, 16, 1000);
		CHILD_CHECK(n > 0, "poll = %d", n);
		got += n;
	}
	CHILD_CHECK(shmbus_consumer_poll(c, msgs, 16, 0) == 0, "records past the end");
	mp_set(&a->caught_up, 1);
	CHILD_CHECK(mp_await(&a->damaged, 5000), "not damaged");
	t0 = tu_ms();
	a->rc = shmbus_consumer_poll(c, msgs, 16, 500);
	a->ms = tu_ms() - t0;
	snprintf(a->msg, sizeof a->msg, "%s", shmbus_errmsg());
	/* and again: the damage stays until recovery */
	CHILD_CHECK(shmbus_consumer_poll(c, msgs, 16, 500) == -EBADMSG, "second poll");
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/* A consumer caught up at the end of a partition whose claim word's
 * `next` becomes 2^60 gets -EBADMSG from poll(500 ms), within the
 * timeout, saying to run recovery.  Before the fix the poll never
 * returned. */
static void consumer_poll_on_an_impossible_next_is_ebadmsg_in_time(void **state)
{
	struct env *e = *state;
	char root[300], file[400];
	struct poller *a = mp_shared(sizeof *a);
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 64 << 10);
	shmbus_producer *pr = NULL;
	struct shmbus_record r = { .value = "v", .value_len = 1 };
	uint64_t next = HUGE_NEXT;
	shmbus *bus;
	pid_t pid;
	int fd, st;

	snprintf(root, sizeof root, "%s/root", e->dir);
	bus = tu_open(root);
	assert_ok(shmbus_topic_create(bus, "t", &o));
	assert_ok(shmbus_producer_new(bus, "t", NULL, &pr));
	for (int i = 0; i < 10; i++)
		assert_ok(shmbus_producer_send(pr, 0, &r, NULL));
	a->root = root;
	pid = mp_spawn(poller_main, a);
	if (!mp_await(&a->caught_up, 5000))
		fail_msg("the consumer did not catch up");
	snprintf(file, sizeof file, "%s/topics/t/0", root);
	fd = open(file, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &next, sizeof next, offsetof(struct part_header, claim) + 8), 8);
	close(fd);
	mp_set(&a->damaged, 1);
	st = mp_reap(pid, 5000);
	if (st < 0)
		fail_msg("poll(500 ms) on a claim word with next 2^60 did not return within 5 s");
	assert_int_equal(st, 0);
	if (a->rc != -EBADMSG || !strstr(a->msg, "recovery"))
		fail_msg("poll = %d (%s), expected -EBADMSG saying to run recovery", a->rc, a->msg);
	if (a->ms > 500 + 500)
		fail_msg("poll(500 ms) returned after %lld ms", (long long)a->ms);
	shmbus_producer_free(pr);
	shmbus_close(bus);
	munmap(a, sizeof *a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(claim_word_with_an_impossible_next_is_ebadmsg),
		T(padding_a_whole_lap_long_is_ebadmsg),
		T(consumer_poll_on_an_impossible_next_is_ebadmsg_in_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
