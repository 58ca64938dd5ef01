/*
 * test_counters.c - the counters file (format.md §12): made whole and
 * found by a second mapping; refused with a message naming the file and
 * the fix when damaged, of another version or another machine; the
 * daemon block and partition entries round trip; a full table refuses
 * one more partition and takes it once a dead entry is swept; probing
 * survives collisions and dead entries in the middle of a chain; a
 * reader never sees a torn update, and a writer killed inside one does
 * not hang readers.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../util/clock.h"
#include "../shm/counters.h"
#include "../util/error.h"

struct env {
	char *dir;
	int dirfd;
	struct ctr_file c;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);

	e->dir = tu_tmpdir("counters");
	e->dirfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = e;
	if (e->dirfd < 0 || ctr_create(e->dirfd, "127.0.0.1:9465", &e->c) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	ctr_close(&e->c);
	close(e->dirfd);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static struct ctr_rate rate(uint64_t tick, double records)
{
	return (struct ctr_rate){ .tick = tick, .sampled_ns = 1000 + (int64_t)tick,
				  .end_offset = tick * 10, .tail = tick * 640,
				  .records_per_s = records, .bytes_per_s = records * 64 };
}

static void write_ok(struct ctr_file *c, uint64_t topic, uint32_t part, uint64_t tick, double r)
{
	struct ctr_rate v = rate(tick, r);
	int rc = ctr_part_write(c, topic, part, &v);

	if (rc)
		fail_msg("ctr_part_write(%llu, %u) = %d: %s", (unsigned long long)topic, part, rc,
			 shm_errmsg());
}

static void expect_rate(const struct ctr_file *c, uint64_t topic, uint32_t part, uint64_t tick,
			double r)
{
	struct ctr_rate v;
	int rc = ctr_part_read(c, topic, part, &v);

	if (rc)
		fail_msg("ctr_part_read(%llu, %u) = %d", (unsigned long long)topic, part, rc);
	assert_int_equal(v.tick, tick);
	assert_int_equal(v.end_offset, tick * 10);
	assert_int_equal(v.tail, tick * 640);
	assert_true(v.records_per_s == r);
	assert_true(v.bytes_per_s == r * 64);
}

/* ------------------------------------------------------------------ */
/* The file                                                            */

static void test_create_and_open(void **state)
{
	struct env *e = *state;
	struct ctr_daemon v = { .pid = 4242, .state = CTR_STATE_RUNNING, .version = 0x010000,
				.started_ns = 5, .heartbeat_ns = 6, .tick_ns = 100000000,
				.ticks = 7, .partitions = 3, .unblocked = 2, .rec_cut = 9,
				.rates_full = 1 };
	struct ctr_daemon got;
	struct ctr_file ro;
	struct stat st;

	ctr_daemon_write(&e->c, &v);
	write_ok(&e->c, 1, 0, 1, 12.5);
	assert_int_equal(ctr_open(e->dirfd, false, &ro), 0);
	assert_false(ro.writable);
	assert_string_equal(ro.hdr->endpoint, "127.0.0.1:9465");
	assert_int_equal(ro.hdr->version, CTR_VERSION);
	assert_int_equal(ctr_daemon_read(&ro, &got), 0);
	assert_int_equal(got.pid, 4242);
	assert_int_equal(got.state, CTR_STATE_RUNNING);
	assert_int_equal(got.version, 0x010000);
	assert_int_equal(got.heartbeat_ns, 6);
	assert_int_equal(got.tick_ns, 100000000);
	assert_int_equal(got.ticks, 7);
	assert_int_equal(got.unblocked, 2);
	assert_int_equal(got.rec_cut, 9);
	assert_int_equal(got.rates_full, 1);
	assert_int_equal(got.seq % 2, 0);
	expect_rate(&ro, 1, 0, 1, 12.5);
	ctr_close(&ro);
	ctr_close(NULL); /* a no-op */
	/* whole, and no temporary file left behind */
	assert_int_equal(fstatat(e->dirfd, CTR_FILE, &st, 0), 0);
	assert_int_equal(st.st_size, CTR_HEADER_SIZE + CTR_SLOTS * sizeof(struct ctr_part));
	assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_missing_file(void **state)
{
	struct env *e = *state;
	struct ctr_file c;

	assert_int_equal(unlinkat(e->dirfd, CTR_FILE, 0), 0);
	assert_int_equal(ctr_open(e->dirfd, false, &c), -ENOENT);
}

/* A new daemon's file replaces the old one; readers of the old keep it. */
static void test_recreate(void **state)
{
	struct env *e = *state;
	struct ctr_daemon v = { .pid = 1, .state = CTR_STATE_STOPPED }, got;
	struct ctr_file fresh;

	ctr_daemon_write(&e->c, &v);
	write_ok(&e->c, 3, 1, 4, 1.0);
	assert_int_equal(ctr_create(e->dirfd, NULL, &fresh), 0);
	assert_string_equal(fresh.hdr->endpoint, "");
	assert_int_equal(ctr_daemon_read(&fresh, &got), 0);
	assert_int_equal(got.pid, 0);
	assert_int_equal(ctr_part_read(&fresh, 3, 1, &(struct ctr_rate){ 0 }), -ENOENT);
	/* the old mapping still reads the old values */
	assert_int_equal(ctr_daemon_read(&e->c, &got), 0);
	assert_int_equal(got.pid, 1);
	expect_rate(&e->c, 3, 1, 4, 1.0);
	ctr_close(&fresh);
}

/* Overwrite bytes of the header through a second mapping. */
static void scribble(struct env *e, size_t off, const void *bytes, size_t n)
{
	int fd = openat(e->dirfd, CTR_FILE, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void expect_refused(struct env *e, int err, const char *needle)
{
	struct ctr_file c;
	int rc;

	shm_err_clear();
	rc = ctr_open(e->dirfd, false, &c);
	if (rc != err)
		fail_msg("ctr_open = %d, expected %d (%s)", rc, err, shm_errmsg());
	if (!strstr(shm_errmsg(), needle) || !strstr(shm_errmsg(), "counters file"))
		fail_msg("message \"%s\" lacks \"%s\" or the file's name", shm_errmsg(), needle);
}

static void test_damaged_refused(void **state)
{
	struct env *e = *state;
	uint64_t junk = 0x1122334455667788ULL, endian = 0x0807060504030201ULL, good = CTR_MAGIC;
	uint32_t version = CTR_VERSION + 1, nslots = 7, good_v = CTR_VERSION;
	struct ctr_file c;

	scribble(e, offsetof(struct ctr_header, magic), &junk, sizeof junk);
	expect_refused(e, -EBADMSG, "restart shmbusd");
	scribble(e, offsetof(struct ctr_header, magic), &good, sizeof good);

	scribble(e, offsetof(struct ctr_header, version), &version, sizeof version);
	expect_refused(e, -EPROTO, "format version 2");
	scribble(e, offsetof(struct ctr_header, version), &good_v, sizeof good_v);

	scribble(e, offsetof(struct ctr_header, endian), &endian, sizeof endian);
	expect_refused(e, -EBADMSG, "another machine");
	endian = SHM_ENDIAN_MARK;
	scribble(e, offsetof(struct ctr_header, endian), &endian, sizeof endian);

	scribble(e, offsetof(struct ctr_header, nslots), &nslots, sizeof nslots);
	expect_refused(e, -EBADMSG, "geometry");
	nslots = CTR_SLOTS;
	scribble(e, offsetof(struct ctr_header, nslots), &nslots, sizeof nslots);

	/* whole again */
	assert_int_equal(ctr_open(e->dirfd, false, &c), 0);
	ctr_close(&c);
}

static void test_truncated_refused(void **state)
{
	struct env *e = *state;
	int fd = openat(e->dirfd, CTR_FILE, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, CTR_HEADER_SIZE + 4096), 0); /* entries cut off */
	close(fd);
	expect_refused(e, -EBADMSG, "damaged");
	fd = openat(e->dirfd, CTR_FILE, O_RDWR | O_CLOEXEC);
	assert_int_equal(ftruncate(fd, 100), 0); /* shorter than its header */
	close(fd);
	expect_refused(e, -EBADMSG, "shorter than its header");
}

/* ------------------------------------------------------------------ */
/* Partition entries                                                   */

static void test_entries_round_trip(void **state)
{
	struct env *e = *state;
	struct ctr_rate v;

	/* keys that differ in the topic id, the partition, and both */
	for (uint64_t t = 1; t <= 50; t++)
		for (uint32_t p = 0; p < 100; p++)
			write_ok(&e->c, t, p, t * 1000 + p, (double)(t + p) / 4);
	for (uint64_t t = 1; t <= 50; t++)
		for (uint32_t p = 0; p < 100; p++)
			expect_rate(&e->c, t, p, t * 1000 + p, (double)(t + p) / 4);
	assert_int_equal(ctr_part_read(&e->c, 51, 0, &v), -ENOENT);
	assert_int_equal(ctr_part_read(&e->c, 1, 100, &v), -ENOENT);
	/* an update keeps one entry */
	write_ok(&e->c, 7, 7, 99, 3.5);
	expect_rate(&e->c, 7, 7, 99, 3.5);
	assert_int_equal(ctr_part_sweep(&e->c, 99), 1);
}

/* Every entry taken: each key collides with others, one more is refused;
 * once a partition is gone its entry is reused. */
static void test_table_full(void **state)
{
	struct env *e = *state;
	struct ctr_rate v = rate(1, 1.0);

	for (uint32_t i = 0; i < CTR_SLOTS; i++)
		write_ok(&e->c, 1 + i / 1000, i % 1000, 1, (double)i);
	for (uint32_t i = 0; i < CTR_SLOTS; i += 97)
		expect_rate(&e->c, 1 + i / 1000, i % 1000, 1, (double)i);
	shm_err_clear();
	assert_int_equal(ctr_part_write(&e->c, 999, 0, &v), -ENOSPC);
	assert_non_null(strstr(shm_errmsg(), "full"));
	assert_int_equal(ctr_part_read(&e->c, 999, 0, &v), -ENOENT);

	/* tick 2 writes all but one: the sweep kills that one */
	for (uint32_t i = 1; i < CTR_SLOTS; i++)
		write_ok(&e->c, 1 + i / 1000, i % 1000, 2, (double)i);
	assert_int_equal(ctr_part_sweep(&e->c, 2), CTR_SLOTS - 1);
	assert_int_equal(ctr_part_read(&e->c, 1, 0, &v), -ENOENT);
	write_ok(&e->c, 999, 0, 2, 5.0);
	expect_rate(&e->c, 999, 0, 2, 5.0);
	for (uint32_t i = 1; i < CTR_SLOTS; i += 89)
		expect_rate(&e->c, 1 + i / 1000, i % 1000, 2, (double)i);
}

/* Dead entries inside probe chains: keys past them stay found, inserts
 * reuse them, and after everything dies the table is free again. */
static void test_dead_in_chains(void **state)
{
	struct env *e = *state;
	uint32_t n = CTR_SLOTS * 3 / 4, live = 0;

	for (uint32_t i = 0; i < n; i++)
		write_ok(&e->c, 100 + i / 10, i % 10, 1, (double)i);
	/* every third partition goes away */
	for (uint32_t i = 0; i < n; i++)
		if (i % 3)
			write_ok(&e->c, 100 + i / 10, i % 10, 2, (double)i);
	assert_int_equal(ctr_part_sweep(&e->c, 2), n - (n + 2) / 3);
	for (uint32_t i = 0; i < n; i++) {
		struct ctr_rate v;

		if (i % 3)
			expect_rate(&e->c, 100 + i / 10, i % 10, 2, (double)i);
		else
			assert_int_equal(ctr_part_read(&e->c, 100 + i / 10, i % 10, &v), -ENOENT);
	}
	/* new partitions fill the holes; old ones are still found */
	for (uint32_t i = 0; i < n / 3; i++)
		write_ok(&e->c, 900000 + i, 0, 3, 1.0);
	for (uint32_t i = 0; i < n; i++)
		if (i % 3)
			write_ok(&e->c, 100 + i / 10, i % 10, 3, (double)i);
	assert_int_equal(ctr_part_sweep(&e->c, 3), n / 3 + n - (n + 2) / 3);
	/* everything dies: the table is all free again */
	assert_int_equal(ctr_part_sweep(&e->c, 4), 0);
	for (uint32_t i = 0; i < e->c.nslots; i++)
		live += e->c.slots[i].key != CTR_KEY_FREE;
	assert_int_equal(live, 0);
}

/* ------------------------------------------------------------------ */
/* Consistency                                                         */

struct race {
	struct ctr_file *c;
	int stop;
	uint64_t updates;
};

/* Every field of each update holds the same number. */
static void *writer(void *arg)
{
	struct race *r = arg;
	struct ctr_daemon v;

	for (uint64_t n = 1; !__atomic_load_n(&r->stop, __ATOMIC_RELAXED); n++) {
		struct ctr_rate pr = rate(n, (double)n);

#define SET(f) v.f = n;
		CTR_DAEMON_FIELDS(SET)
#undef SET
		ctr_daemon_write(r->c, &v);
		ctr_part_write(r->c, 5, 5, &pr); /* one key: never full */
		r->updates = n;
	}
	return NULL;
}

/* One read of each; the first inconsistency into why (no cmocka assert
 * while the writer thread runs: a failure would free what it writes). */
static bool check_once(struct ctr_file *c, char *why, size_t len)
{
	struct ctr_daemon v;
	struct ctr_rate pr;

	if (ctr_daemon_read(c, &v) != 0) {
		snprintf(why, len, "the reader gave up on a live writer");
		return false;
	}
#define SAME(f)                                                                        \
	if ((uint64_t)v.f != (uint64_t)v.pid) {                                        \
		snprintf(why, len, #f " is %llu in update %llu", (unsigned long long)v.f, \
			 (unsigned long long)v.pid);                                   \
		return false;                                                          \
	}
	CTR_DAEMON_FIELDS(SAME)
#undef SAME
	if (ctr_part_read(c, 5, 5, &pr) == 0 &&
	    (pr.end_offset != pr.tick * 10 || pr.tail != pr.tick * 640 ||
	     pr.records_per_s != (double)pr.tick)) {
		snprintf(why, len, "entry of tick %llu holds offset %llu, tail %llu",
			 (unsigned long long)pr.tick, (unsigned long long)pr.end_offset,
			 (unsigned long long)pr.tail);
		return false;
	}
	return true;
}

static void test_never_torn(void **state)
{
	struct env *e = *state;
	struct race r = { .c = &e->c };
	int64_t end = tu_ms() + 500;
	uint64_t reads = 0;
	char why[256] = "";
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, writer, &r), 0);
	while (tu_ms() < end && check_once(&e->c, why, sizeof why))
		reads++;
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	if (why[0])
		fail_msg("after %llu good reads: %s", (unsigned long long)reads, why);
	assert_true(reads > 100);
	assert_true(r.updates > 100);
}

/* A writer killed inside an update leaves seq odd: readers give up
 * waiting and say so, instead of spinning forever. */
static void test_dead_writer(void **state)
{
	struct env *e = *state;
	struct ctr_daemon v = { .pid = 77, .ticks = 3 }, got;
	struct ctr_part *slot = NULL;
	struct ctr_rate pr;
	int64_t t0;

	ctr_daemon_write(&e->c, &v);
	write_ok(&e->c, 8, 1, 3, 2.0);
	store_relaxed(&e->c.hdr->daemon.seq, e->c.hdr->daemon.seq + 1);
	t0 = tu_ms();
	assert_int_equal(ctr_daemon_read(&e->c, &got), 1);
	assert_true(tu_ms() - t0 < 2000);
	assert_int_equal(got.pid, 77);
	assert_int_equal(got.ticks, 3);
	for (uint32_t i = 0; i < e->c.nslots; i++)
		if (e->c.slots[i].key == (8ULL << CTR_PARTITION_BITS | 1))
			slot = &e->c.slots[i];
	assert_non_null(slot);
	store_relaxed(&slot->seq, slot->seq + 1);
	assert_int_equal(ctr_part_read(&e->c, 8, 1, &pr), 0);
	assert_int_equal(pr.tick, 3);
}

static void test_heartbeat(void **state)
{
	int64_t tick = 100000000, now = 50LL * 1000000000;

	(void)state;
	assert_true(ctr_heartbeat_fresh(now, tick, now));
	assert_true(ctr_heartbeat_fresh(now - CTR_STALE_TICKS * tick - CTR_STALE_SLACK_NS, tick, now));
	assert_false(ctr_heartbeat_fresh(now - CTR_STALE_TICKS * tick - CTR_STALE_SLACK_NS - 1, tick,
					 now));
	assert_false(ctr_heartbeat_fresh(0, tick, now)); /* never ticked */
	assert_false(ctr_heartbeat_fresh(now - 2 * CTR_STALE_SLACK_NS, 0, now));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recreate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entries_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_in_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_never_torn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_writer, setup, teardown),
		cmocka_unit_test(test_heartbeat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
