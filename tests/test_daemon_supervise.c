/*
 * test_daemon_supervise.c - what a real shmbusd does to the partitions
 * of its root: the unblocker aborts the claim of a producer killed
 * between claim and commit; kill -9 of the daemon under load stops no
 * producer or consumer and loses or duplicates nothing, and a restarted
 * daemon takes over; a disk root damaged at its tail is recovered and
 * reported at the next start; time retention; the flush policy of disk
 * roots, observed through the kernel's page flags.
 *
 * Every test uses its own root (and, for disk roots, a directory under
 * /var/tmp), kills only the processes it started, by pid, and has a
 * deadline for everything it waits for.
 */
#include "test_daemon.h"
#include "../shm/format.h"

/* ------------------------------------------------------------------ */
/* The unblocker                                                       */

/* A producer killed between claim and commit, no consumer attached: the
 * daemon aborts the claim after unblock_timeout_ms (plus a tick), and a
 * consumer that comes later passes the hole without waiting itself. */
static void test_unblock_dead_producer(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	const char *f = conf(env, "unblock.conf", "[daemon]\nunblock_timeout_ms = 300\ntick_ms = 20\n");
	const char *args[] = { "--config", f, NULL };
	struct claimer *cl = mp_shared(sizeof *cl);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .check_crc = true,
		    .unblock_timeout_ms = 60000, .reset = SHMBUS_RESET_ERROR);
	struct shmbus_message msgs[8];
	SHMBUS_OPTS(shmbus_consumer_stats, cs);
	SHMBUS_OPTS(shmbus_partition_info, pi);
	shmbus *bus = tu_open(env->root);
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	uint64_t after, want[] = { 0, 1, 2, 4 };
	char needle[200];
	int64_t seen, early;
	int got = 0;
	pid_t pid;

	create_topic(bus, "t", 1, 64 << 10, 0);
	/* it opens the bus before the daemon runs and writes after: neither
	 * registered nor found in a writer slot, its claim is the unblocker's */
	*cl = (struct claimer){ .root = env->root, .topic = "t", .before = 3 };
	claimer_start(cl);
	start_or_fail(d, env->root, args, NULL);
	pid = claimer_kill(cl);
	assert_int_equal(cl->claim_off, 3);
	/* not before the timeout */
	early = cl->claim_ms + 200 - tu_ms();
	if (early > 0)
		mp_sleep_us(early * 1000);
	assert_int_equal(tu_daemon_log_count(d, "of a claim pid"), 0);
	snprintf(needle, sizeof needle, "partition t/0: aborted 1 offset of a claim pid %d has held "
		 "for over 300 ms (from offset 3)", (int)pid);
	expect_log(d, needle, 3000);
	seen = tu_ms() - cl->claim_ms;
	if (seen > 300 + 2 * 20 + 300)
		fail_msg("the claim was aborted %lld ms after it was made; the timeout is 300 ms",
			 (long long)seen);

	/* a consumer that comes afterwards goes past the hole at once */
	assert_ok(shmbus_producer_new(bus, "t", NULL, &p));
	send_str(p, 0, "after", &after);
	assert_int_equal(after, 4);
	assert_ok(shmbus_consumer_new(bus, &co, &c));
	assert_ok(shmbus_consumer_assign(c, "t", 0, SHMBUS_OFFSET_BEGINNING));
	for (int64_t end = tu_ms() + 2000; got < 4 && tu_ms() < end;) {
		int n = shmbus_consumer_poll(c, msgs, 8, 100);

		assert_true(n >= 0);
		for (int i = 0; i < n; i++, got++) {
			assert_true(got < 4);
			assert_int_equal(msgs[i].offset, want[got]);
		}
	}
	assert_int_equal(got, 4);
	assert_ok(shmbus_consumer_stats(c, &cs));
	assert_int_equal(cs.aborted_skipped, 1);
	assert_int_equal(cs.unblocked, 0);   /* the daemon did it, not the consumer */
	assert_ok(shmbus_partition_info(bus, "t", 0, &pi));
	assert_int_equal(pi.aborted_claims, 1);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	stop_ok(d);
	shmbus_close(bus);
	munmap(cl, sizeof *cl);
}

/* ------------------------------------------------------------------ */
/* kill -9 of the daemon under load                                    */

#define K9_PROD   3
#define K9_CONS   2
#define K9_N      20000            /* records per producer */
#define K9_PARTS  2

struct k9_shared {
	const char *root;
	int id;
	volatile uint64_t sent[K9_PROD];
	volatile uint64_t got[K9_CONS];
};

struct k9_arg {
	struct k9_shared *sh;
	int id;
};

/* Producer `id`: record seq goes to partition seq % K9_PARTS, sealed
 * with (seq, id) and a CRC the test computes itself. */
static int k9_producer(void *argp)
{
	const struct k9_arg *a = argp;
	shmbus_producer *p = NULL;
	uint64_t rng = 1000 + (uint64_t)a->id;
	static uint8_t val[256];
	shmbus *bus = mp_open(a->sh->root);

	CHILD_CHECK(shmbus_producer_new(bus, "load", NULL, &p) == 0, "producer_new");
	for (uint64_t seq = 0; seq < K9_N; seq++) {
		size_t len = MP_SEAL_MIN + mp_rand(&rng) % 200;
		struct shmbus_record r = { .value = val, .value_len = len };
		int rc;

		mp_seal(val, len, seq, (uint32_t)a->id, &rng);
		rc = shmbus_producer_send(p, (int32_t)(seq % K9_PARTS), &r, NULL);
		CHILD_CHECK(rc == (int)(seq % K9_PARTS), "send %llu = %d", (unsigned long long)seq, rc);
		__atomic_store_n(&a->sh->sent[a->id], seq + 1, __ATOMIC_RELEASE);
		if (seq % 10 == 9)
			mp_sleep_us(1000);
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* Consumer `id`: every partition from the beginning; each producer's
 * records of a partition arrive whole, in order, once. */
static int k9_consumer(void *argp)
{
	const struct k9_arg *a = argp;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .check_crc = true,
		    .reset = SHMBUS_RESET_ERROR, .name = "k9");
	static struct shmbus_message msgs[128];
	uint64_t next[K9_PROD][K9_PARTS], total = 0;
	shmbus_consumer *c = NULL;
	int64_t end = tu_ms() + 30000, quiet = 0;
	const uint64_t all = (uint64_t)K9_PROD * K9_N;
	shmbus *bus = mp_open(a->sh->root);

	for (int i = 0; i < K9_PROD; i++)
		for (int k = 0; k < K9_PARTS; k++)
			next[i][k] = (uint64_t)k;
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, "load", SHMBUS_PARTITION_ANY,
					   SHMBUS_OFFSET_BEGINNING) == 0, "assign");
	for (;;) {
		int n = shmbus_consumer_poll(c, msgs, 128, 50);

		CHILD_CHECK(n >= 0, "poll = %d after %llu records", n, (unsigned long long)total);
		CHILD_CHECK(tu_ms() < end, "%llu of %d records after 30 s",
			    (unsigned long long)total, K9_PROD * K9_N);
		/* once all have come, nothing more may: no duplicate at the end */
		CHILD_CHECK(!quiet || n == 0, "%d records past the %llu expected", n,
			    (unsigned long long)all);
		for (int i = 0; i < n; i++) {
			uint64_t seq;
			uint32_t prod;
			int32_t part = msgs[i].partition;

			CHILD_CHECK(mp_unseal(msgs[i].value, msgs[i].value_len, &seq, &prod),
				    "damaged record at %d/%llu", part,
				    (unsigned long long)msgs[i].offset);
			CHILD_CHECK(prod < K9_PROD && part >= 0 && part < K9_PARTS &&
				    seq % K9_PARTS == (uint64_t)part, "misplaced record");
			CHILD_CHECK(seq == next[prod][part], "producer %u partition %d: seq %llu, "
				    "expected %llu (%s)", prod, part, (unsigned long long)seq,
				    (unsigned long long)next[prod][part],
				    seq < next[prod][part] ? "duplicate" : "lost");
			next[prod][part] += K9_PARTS;
			total++;
		}
		__atomic_store_n(&a->sh->got[a->id], total, __ATOMIC_RELEASE);
		if (total == all && !quiet)
			quiet = tu_ms() + 300;
		if (quiet && tu_ms() > quiet)
			break;
	}
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

static uint64_t min_of(volatile uint64_t *v, int n)
{
	uint64_t m = UINT64_MAX;

	for (int i = 0; i < n; i++) {
		uint64_t x = __atomic_load_n(&v[i], __ATOMIC_ACQUIRE);

		m = x < m ? x : m;
	}
	return m;
}

static bool wait_min(volatile uint64_t *v, int n, uint64_t at_least, int ms)
{
	int64_t end = tu_ms() + ms;

	while (min_of(v, n) < at_least) {
		if (tu_ms() > end)
			return false;
		mp_sleep_us(2000);
	}
	return true;
}

static void test_kill9_under_load(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d1 = &env->d[0], *d2 = &env->d[1];
	const char *f = conf(env, "k9.conf", "[daemon]\ntick_ms = 20\nunblock_timeout_ms = 200\n");
	const char *args[] = { "--config", f, NULL };
	struct k9_shared *sh = mp_shared(sizeof *sh);
	struct claimer *cl = mp_shared(sizeof *cl);
	struct k9_arg ka[K9_PROD + K9_CONS];
	uint64_t aborted = 0;
	pid_t pid;
	pid_t pids[K9_PROD + K9_CONS];
	SHMBUS_OPTS(shmbus_partition_info, pi);
	uint64_t sent_at_kill, got_at_kill, high = 0;
	shmbus *bus = tu_open(env->root);

	create_topic(bus, "load", K9_PARTS, 16 << 20, 0);   /* no lap: every byte stays */
	start_or_fail(d1, env->root, args, NULL);
	sh->root = env->root;
	for (int i = 0; i < K9_CONS; i++) {
		ka[i] = (struct k9_arg){ sh, i };
		pids[i] = mp_spawn(k9_consumer, &ka[i]);
	}
	for (int i = 0; i < K9_PROD; i++) {
		ka[K9_CONS + i] = (struct k9_arg){ sh, i };
		pids[K9_CONS + i] = mp_spawn(k9_producer, &ka[K9_CONS + i]);
	}
	if (!wait_min(sh->sent, K9_PROD, K9_N / 5, 10000))
		fail_msg("the producers did not get going");
	/* mid-run */
	tu_daemon_kill(d1);
	sent_at_kill = min_of(sh->sent, K9_PROD);
	got_at_kill = min_of(sh->got, K9_CONS);
	assert_true(sent_at_kill < K9_N);
	/* without a daemon, producers and consumers go on */
	if (!wait_min(sh->sent, K9_PROD, sent_at_kill + 1000, 5000) ||
	    !wait_min(sh->got, K9_CONS, got_at_kill + 1000, 5000))
		fail_msg("producers or consumers stopped with the daemon (sent %llu, got %llu)",
			 (unsigned long long)min_of(sh->sent, K9_PROD),
			 (unsigned long long)min_of(sh->got, K9_CONS));
	/* a restarted daemon takes the same root over, leaving the
	 * partitions in use alone */
	start_or_fail(d2, env->root, args, NULL);
	assert_true(min_of(sh->sent, K9_PROD) < K9_N || min_of(sh->got, K9_CONS) < K9_PROD * K9_N);
	expect_log(d2, "partition load/0 is in use by running processes: not recovered", 0);
	expect_log(d2, "partition load/1 is in use by running processes: not recovered", 0);
	expect_log(d2, "supervising 2 partitions", 0);
	/* ... and supervises them: a producer dying inside its claim now is
	 * unblocked by the new daemon (before the consumers' own 1 s) */
	*cl = (struct claimer){ .root = env->root, .topic = "load" };
	pid = kill_claimer(cl);
	if (!claim_aborted(d2, pid, 3000)) {
		tu_daemon_dump(d2);
		fail_msg("the restarted daemon did not abort the claim of dead pid %d", (int)pid);
	}
	mp_wait_ok(pids, K9_PROD + K9_CONS, 40000, "producer/consumer");
	for (uint32_t k = 0; k < K9_PARTS; k++) {
		assert_ok(shmbus_partition_info(bus, "load", k, &pi));
		aborted += pi.aborted_claims;
		high += pi.high;
	}
	assert_int_equal(aborted, 1);
	assert_int_equal(high, (uint64_t)K9_PROD * K9_N + 1);
	assert_int_equal(tu_daemon_log_count(d2, "error:"), 0);
	stop_ok(d2);
	shmbus_close(bus);
	munmap(sh, sizeof *sh);
	munmap(cl, sizeof *cl);
}

/* ------------------------------------------------------------------ */
/* Disk roots: recovery at start, flush                                */

/* Overwrite, in a partition file, the bytes of `marker` (found once). */
static void corrupt_marker(const char *file, const char *marker)
{
	int fd = open(file, O_RDWR);
	struct stat st;
	uint8_t *m, *hit, *again;
	size_t len = strlen(marker);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	hit = memmem(m, (size_t)st.st_size, marker, len);
	assert_non_null(hit);
	again = memmem(hit + 1, (size_t)st.st_size - (size_t)(hit + 1 - m), marker, len);
	assert_null(again);
	memset(hit, 'X', len);
	assert_int_equal(msync(m, (size_t)st.st_size, MS_SYNC), 0);
	munmap(m, (size_t)st.st_size);
	close(fd);
}

/* Records appended, everything stopped, the last frame damaged on disk:
 * the next daemon cuts the tail there, says so, and readers get every
 * record before the cut; offsets never go back. */
static void test_disk_recovery(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .check_crc = true,
		    .reset = SHMBUS_RESET_ERROR);
	struct shmbus_message msgs[64];
	SHMBUS_OPTS(shmbus_partition_info, pi);
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	char file[400], v[64];
	uint64_t off;
	shmbus *bus;
	int got = 0;

	disk_root(env);
	bus = tu_open(env->disk);
	create_topic(bus, "d", 1, 64 << 10, 0);
	assert_ok(shmbus_producer_new(bus, "d", NULL, &p));
	for (int i = 0; i < 49; i++) {
		snprintf(v, sizeof v, "record-%03d-of-the-disk-root", i);
		send_str(p, 0, v, NULL);
	}
	send_str(p, 0, "LAST-RECORD-TAIL-MARKER-7f3a9c", &off);
	assert_int_equal(off, 49);
	shmbus_producer_free(p);
	shmbus_close(bus);   /* no process maps it now */

	snprintf(file, sizeof file, "%s/topics/d/0", env->disk);
	corrupt_marker(file, "LAST-RECORD-TAIL-MARKER-7f3a9c");

	start_or_fail(d, env->disk, NULL, NULL);
	expect_log(d, "partition d/0: recovered: 49 records checked, 0 dead claims aborted, 1 "
		   "offsets (", 0);
	expect_log(d, "; readable 0..50", 0);
	assert_int_equal(tu_daemon_log_count(d, "warning: partition d/0: recovered"), 1);

	bus = tu_open(env->disk);
	assert_ok(shmbus_partition_info(bus, "d", 0, &pi));
	assert_int_equal(pi.recovered_cut, 1);
	assert_int_equal(pi.high, 50);          /* the cut offset is not reused */
	assert_ok(shmbus_consumer_new(bus, &co, &c));
	assert_ok(shmbus_consumer_assign(c, "d", 0, SHMBUS_OFFSET_BEGINNING));
	for (int64_t end = tu_ms() + 2000; got < 49 && tu_ms() < end;) {
		int n = shmbus_consumer_poll(c, msgs, 64, 100);

		assert_true(n >= 0);
		for (int i = 0; i < n; i++, got++) {
			assert_int_equal(msgs[i].offset, (uint64_t)got);
			snprintf(v, sizeof v, "record-%03d-of-the-disk-root", got);
			assert_int_equal(msgs[i].value_len, strlen(v));
			assert_memory_equal(msgs[i].value, v, strlen(v));
		}
	}
	assert_int_equal(got, 49);
	assert_int_equal(shmbus_consumer_poll(c, msgs, 64, 200), 0);   /* the cut record is gone */
	/* the next record gets the next offset, and readers reach it */
	assert_ok(shmbus_producer_new(bus, "d", NULL, &p));
	send_str(p, 0, "after the cut", &off);
	assert_int_equal(off, 50);
	assert_int_equal(shmbus_consumer_poll(c, msgs, 64, 2000), 1);
	assert_int_equal(msgs[0].offset, 50);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	stop_ok(d);

	/* repaired once: the next start finds nothing to cut */
	start_or_fail(d, env->disk, NULL, NULL);
	expect_log(d, "partition d/0: ", 1000);
	assert_int_equal(tu_daemon_log_count(d, "recovered:"), 0);
	stop_ok(d);
}

/*
 * Pages of [pos, pos + len) of a partition's data ring that the kernel
 * holds dirty or under writeback (from /proc/self/pagemap and
 * /proc/kpageflags), or -1 if this process may not read them.
 */
#define KPF_DIRTY     4
#define KPF_WRITEBACK 8

static long dirty_pages(const char *file, uint64_t pos, uint64_t len)
{
	struct part_header h;
	int fd = open(file, O_RDONLY), pm = open("/proc/self/pagemap", O_RDONLY),
	    kf = open("/proc/kpageflags", O_RDONLY);
	uint64_t first = pos & ~4095ULL, span = ((pos + len + 4095) & ~4095ULL) - first;
	long dirty = 0;
	volatile uint8_t *m;

	if (fd < 0 || pm < 0 || kf < 0 || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
		dirty = -1;
		goto out;
	}
	m = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, (off_t)(h.data_offset + first));
	if (m == MAP_FAILED) {
		dirty = -1;
		goto out;
	}
	for (uint64_t o = 0; o < span; o += 4096) {
		uint64_t e = 0, flags = 0, pfn;

		(void)m[o];   /* map the page */
		if (pread(pm, &e, 8, (off_t)(((uintptr_t)m + o) / 4096 * 8)) != 8 || !(e >> 63))
			continue;
		pfn = e & ((1ULL << 55) - 1);
		if (!pfn || pread(kf, &flags, 8, (off_t)(pfn * 8)) != 8) {
			dirty = -1;     /* PFNs hidden: not privileged */
			break;
		}
		dirty += (flags >> KPF_DIRTY & 1) | (flags >> KPF_WRITEBACK & 1);
	}
	munmap((void *)m, span);
out:
	if (fd >= 0)
		close(fd);
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return dirty;
}

/* Wait until no page of the range is dirty; the ms it took, or -1. */
static int64_t wait_clean(const char *file, uint64_t pos, uint64_t len, int ms)
{
	int64_t t0 = tu_ms();

	while (dirty_pages(file, pos, len) > 0) {
		if (tu_ms() - t0 > ms)
			return -1;
		mp_sleep_us(10000);
	}
	return tu_ms() - t0;
}

static void send_bulk(shmbus_producer *p, int n, size_t len)
{
	static uint8_t v[4096];

	memset(v, 'v', sizeof v);
	for (int i = 0; i < n; i++) {
		struct shmbus_record r = { .value = v, .value_len = len };

		assert_ok(shmbus_producer_send(p, 0, &r, NULL));
	}
}

/* The flush policy on a disk root: what is appended reaches the disk
 * within interval_ms (plus a tick), or once `records` were appended;
 * with neither, the daemon leaves it to the kernel. */
static void test_disk_flush(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	static const struct {
		const char *conf;
		int first, second;      /* records appended before and after the check */
		bool flushed_first;     /* the first batch is flushed by itself */
	} cases[] = {
		{ "[daemon]\ntick_ms = 20\n[flush]\ninterval_ms = 50\nrecords = 0\n", 60, 0, true },
		{ "[daemon]\ntick_ms = 20\n[flush]\ninterval_ms = 0\nrecords = 100\n", 60, 60, false },
		{ "[daemon]\ntick_ms = 20\n[flush]\ninterval_ms = 0\nrecords = 0\n", 60, 0, false },
	};
	char file[400], *expire;
	shmbus *bus;

	disk_root(env);
	if (access("/proc/kpageflags", R_OK) < 0)
		tu_skip("/proc/kpageflags is not readable (not root): page states cannot be seen");
	/* "not flushed yet" means the kernel has not written the pages back
	 * by itself either: it does after vm.dirty_expire_centisecs */
	expire = slurp("/proc/sys/vm/dirty_expire_centisecs");
	if (atoi(expire) < 300)
		tu_skip("vm.dirty_expire_centisecs is %d: the kernel writes pages back within the "
			"test's waits", atoi(expire));
	free(expire);
	bus = tu_open(env->disk);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *f = conf(env, "flush.conf", cases[i].conf);
		const char *args[] = { "--config", f, "--log-level", "debug", NULL };
		SHMBUS_OPTS(shmbus_partition_info, pi);
		shmbus_producer *p = NULL;
		char topic[16];
		uint64_t from;
		long dirty;

		snprintf(topic, sizeof topic, "f%zu", i);
		create_topic(bus, topic, 1, 256 << 10, 0);
		snprintf(file, sizeof file, "%s/topics/%s/0", env->disk, topic);
		start_or_fail(d, env->disk, args, NULL);
		assert_ok(shmbus_producer_new(bus, topic, NULL, &p));
		assert_ok(shmbus_partition_info(bus, topic, 0, &pi));
		from = pi.tail;
		send_bulk(p, cases[i].first, 1000);
		assert_ok(shmbus_partition_info(bus, topic, 0, &pi));
		dirty = dirty_pages(file, from, pi.tail - from);
		if (dirty <= 0)
			tu_skip("appended pages are not seen dirty (%ld): cannot observe flushing",
				dirty);
		if (cases[i].flushed_first) {
			int64_t ms = wait_clean(file, from, pi.tail - from, 1000);

			if (ms < 0)
				fail_msg("%s: %ld dirty pages still dirty after 1 s", cases[i].conf,
					 dirty_pages(file, from, pi.tail - from));
		} else {
			mp_sleep_us(400000);
			dirty = dirty_pages(file, from, pi.tail - from);
			if (dirty <= 0)
				fail_msg("%s: flushed after %d records", cases[i].conf, cases[i].first);
		}
		if (cases[i].second) {
			send_bulk(p, cases[i].second, 1000);
			assert_ok(shmbus_partition_info(bus, topic, 0, &pi));
			if (wait_clean(file, from, pi.tail - from, 1000) < 0)
				fail_msg("%s: not flushed after %d records", cases[i].conf,
					 cases[i].first + cases[i].second);
		}
		assert_int_equal(tu_daemon_log_count(d, "flush failed"), 0);
		shmbus_producer_free(p);
		stop_ok(d);
	}
	shmbus_close(bus);
}

/* A record whose claim was open while a flush ran is flushed once it is
 * committed: a flush stops at the oldest claim still being written. */
static void test_disk_flush_open_claim(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	const char *f = conf(env, "claim.conf", "[daemon]\ntick_ms = 20\nunblock_timeout_ms = 10000\n"
			     "[flush]\ninterval_ms = 50\n");
	const char *args[] = { "--config", f, NULL };
	struct shmbus_record meta = { .key = "big", .key_len = 3 };
	SHMBUS_OPTS(shmbus_partition_info, pi);
	shmbus_producer *slow = NULL, *fast = NULL;
	struct shmbus_claim c;
	uint64_t from, after;
	char file[400];
	shmbus *bus;

	disk_root(env);
	if (access("/proc/kpageflags", R_OK) < 0)
		tu_skip("/proc/kpageflags is not readable (not root): page states cannot be seen");
	bus = tu_open(env->disk);
	create_topic(bus, "c", 1, 256 << 10, 0);
	snprintf(file, sizeof file, "%s/topics/c/0", env->disk);
	start_or_fail(d, env->disk, args, NULL);
	assert_ok(shmbus_producer_new(bus, "c", NULL, &slow));
	assert_ok(shmbus_producer_new(bus, "c", NULL, &fast));
	assert_ok(shmbus_partition_info(bus, "c", 0, &pi));
	from = pi.tail;
	/* a 16 KiB record, claimed and half written ... */
	assert_ok(shmbus_producer_claim(slow, 0, &meta, 16384, &c));
	memset(c.value, 'a', 8192);
	/* ... while others append after it and a flush runs */
	send_bulk(fast, 8, 500);
	assert_ok(shmbus_partition_info(bus, "c", 0, &pi));
	after = pi.tail;
	if (wait_clean(file, from + 16384 + 64, after - from - 16384 - 64, 1000) < 0)
		fail_msg("the records after the claim were not flushed");
	/* the claim completes; more records come, flushes go on */
	memset((char *)c.value + 8192, 'b', 8192);
	assert_ok(shmbus_producer_commit(slow, &c, 16384));
	send_bulk(fast, 8, 500);
	mp_sleep_us(400000);
	if (dirty_pages(file, from, 16384) > 0)
		fail_msg("the committed record's pages (positions %llu..%llu) were never flushed: "
			 "%ld still dirty 400 ms after its commit", (unsigned long long)from,
			 (unsigned long long)from + 16384, dirty_pages(file, from, 16384));
	shmbus_producer_free(slow);
	shmbus_producer_free(fast);
	stop_ok(d);
	shmbus_close(bus);
}

/* ------------------------------------------------------------------ */
/* Retention by time                                                   */

static void test_retention_by_time(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	const char *f = conf(env, "ret.conf", "[daemon]\ntick_ms = 20\n");
	const char *args[] = { "--config", f, "--log-level", "debug", NULL };
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .reset = SHMBUS_RESET_ERROR);
	struct shmbus_message msgs[32];
	shmbus *bus = tu_open(env->root);
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	uint64_t pos;
	int64_t t0, moved;
	char v[32];

	start_or_fail(d, env->root, args, NULL);
	/* created while the daemon runs: it picks the topic up */
	create_topic(bus, "r", 1, 64 << 10, 300);
	assert_ok(shmbus_producer_new(bus, "r", NULL, &p));
	t0 = tu_ms();
	for (int i = 0; i < 20; i++) {
		snprintf(v, sizeof v, "old-%d", i);
		send_str(p, 0, v, NULL);
	}
	/* retention passes run every min(tick, 300 / 8 ms): a pass between
	 * two of the sends (a descheduled test) retires them in two moves */
	while (low_offset(bus, "r", 0) < 20 && tu_ms() - t0 < 3000)
		mp_sleep_us(5000);
	moved = tu_ms() - t0;
	if (low_offset(bus, "r", 0) != 20) {
		tu_daemon_dump(d);
		fail_msg("low offset %llu after %lld ms, expected 20",
			 (unsigned long long)low_offset(bus, "r", 0), (long long)moved);
	}
	if (moved < 290 || moved > 300 + 2 * 20 + 400)
		fail_msg("records of retention 300 ms retired after %lld ms", (long long)moved);
	expect_log(d, "partition r/0: retention retired offsets 0..", 1000);
	expect_log(d, "..19", 0);

	/* a consumer from the beginning starts past them */
	send_str(p, 0, "new", NULL);
	assert_ok(shmbus_consumer_new(bus, &co, &c));
	assert_ok(shmbus_consumer_assign(c, "r", 0, SHMBUS_OFFSET_BEGINNING));
	assert_ok(shmbus_consumer_position(c, "r", 0, &pos));
	assert_int_equal(pos, 20);
	assert_int_equal(shmbus_consumer_poll(c, msgs, 32, 1000), 1);
	assert_int_equal(msgs[0].offset, 20);
	assert_int_equal(msgs[0].value_len, 3);
	assert_int_equal(low_offset(bus, "r", 0), 20);   /* the new one is kept, for now */
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	stop_ok(d);
	shmbus_close(bus);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, daemon_setup, daemon_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_unblock_dead_producer),
		TEST(test_kill9_under_load),
		TEST(test_disk_recovery),
		TEST(test_disk_flush),
		TEST(test_disk_flush_open_claim),
		TEST(test_retention_by_time),
	};

	/* TEST_FILTER=test_reload* runs a subset */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
