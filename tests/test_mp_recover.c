/*
 * test_mp_recover.c - shmbus_partition_recover after crashes and damage.
 *
 * A writer killed with SIGKILL while appending leaves claims it never
 * committed; recovery (run with no producer) must turn them into aborts
 * and cut nothing that was committed: every record a consumer saw before
 * the kill reads back, by offset, with the same bytes, and appending
 * afterwards continues at the old end offset.
 *
 * Then random bytes over a partition file's hot header fields (claim
 * word, status/start), index and data, and forged commit words and
 * lengths: recovery and a full read must end in clear errors or cut
 * tails, never a crash or a hang (the reader runs in a child, which must
 * exit normally, with a guard page after the partition's mapping so that
 * any read past it faults), and a successful recovery never lets a
 * damaged record through.  The same damage is also read without recovery.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "test_mp.h"

#define MAX_OFFS   (1u << 20)

/* what consumers saw: seen[o] = 1 << 32 | CRC32 of the value */
struct shared {
	volatile int stop;
	uint64_t seen[MAX_OFFS];
};

struct rec_arg {
	const char *root;
	const char *topic;
	struct shared *sh;
	uint32_t round;
	uint64_t start;        /* consumer: first offset; producer: the offset it must get */
	uint64_t count;        /* producer: records to send, then exit (0: until killed) */
	uint64_t end;          /* reader: read up to here */
	int cpu;
};

static bool seen(const struct shared *sh, uint64_t off, uint32_t *crc)
{
	uint64_t v = off < MAX_OFFS ? sh->seen[off] : 0;

	*crc = (uint32_t)v;
	return v >> 32;
}

/* ------------------------------------------------------------------ */
/* Writer, killed while appending                                      */

static int writer_main(void *argp)
{
	const struct rec_arg *a = argp;
	static uint8_t vals[32][700];
	struct shmbus_record recs[32];
	shmbus_producer *p = NULL;
	uint64_t rng = 77 + a->round, seq = 0, off;
	shmbus *bus;

	tu_pin(a->cpu);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_producer_new(bus, a->topic, NULL, &p) == 0, "producer_new");
	while (!a->count || seq < a->count) {
		size_t n = seq && seq % 3 == 0 ? 32 : 1;

		for (size_t i = 0; i < n; i++) {
			size_t len = MP_SEAL_MIN + mp_rand(&rng) % 600;

			mp_seal(vals[i], len, seq + i, a->round, &rng);
			recs[i] = (struct shmbus_record){ .value = vals[i], .value_len = len };
		}
		if (n == 1 && seq % 5 == 1) {
			struct shmbus_claim c;

			CHILD_CHECK(shmbus_producer_claim(p, 0, &recs[0], recs[0].value_len, &c) == 0,
				    "claim");
			off = c.offset;
			memcpy(c.value, vals[0], recs[0].value_len);
			CHILD_CHECK(shmbus_producer_commit(p, &c, recs[0].value_len) == 0, "commit");
		} else if (n == 1) {
			CHILD_CHECK(shmbus_producer_send(p, 0, &recs[0], &off) == 0, "send");
		} else {
			CHILD_CHECK(shmbus_producer_send_batch(p, 0, recs, n) == (int)n, "send_batch");
			off = a->start + seq; /* checked by the first single send */
		}
		/* offsets continue where recovery left the log, never back */
		CHILD_CHECK(seq > 0 || n > 1 || off == a->start, "first offset %llu, expected %llu",
			    (unsigned long long)off, (unsigned long long)a->start);
		seq += n;
		if (seq % 8 == 0)
			mp_sleep_us(50);
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* Records every record it sees (until told to stop) into sh->seen. */
static int watcher_main(void *argp)
{
	const struct rec_arg *a = argp;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .reset = SHMBUS_RESET_ERROR);
	static struct shmbus_message msgs[64];
	shmbus_consumer *c = NULL;
	int64_t end = tu_ms() + 20000;
	shmbus *bus;

	tu_pin(a->cpu);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, a->topic, 0, (int64_t)a->start) == 0, "assign");
	for (;;) {
		bool stop = __atomic_load_n(&a->sh->stop, __ATOMIC_ACQUIRE);
		int n = shmbus_consumer_poll(c, msgs, 64, stop ? 0 : 10);

		CHILD_CHECK(n >= 0 && tu_ms() < end, "poll = %d", n);
		for (int i = 0; i < n; i++) {
			uint64_t seq;
			uint32_t prod;

			CHILD_CHECK(mp_unseal(msgs[i].value, msgs[i].value_len, &seq, &prod) &&
				    prod == a->round && msgs[i].offset < MAX_OFFS,
				    "record %llu damaged", (unsigned long long)msgs[i].offset);
			a->sh->seen[msgs[i].offset] =
				1ull << 32 | mp_crc32(msgs[i].value, msgs[i].value_len);
		}
		if (stop && n == 0)
			break;
	}
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/* After recovery: reads [start, end) and checks it against sh->seen. */
static int reader_main(void *argp)
{
	const struct rec_arg *a = argp;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .check_crc = true,
		    .reset = SHMBUS_RESET_ERROR, .unblock_timeout_ms = 50);
	static struct shmbus_message msgs[64];
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	shmbus_consumer *c = NULL;
	int64_t t0 = tu_ms();
	uint64_t pos = a->start, delivered = 0;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, a->topic, 0, (int64_t)a->start) == 0, "assign %llu",
		    (unsigned long long)a->start);
	while (pos < a->end) {
		int n = shmbus_consumer_poll(c, msgs, 64, 50);

		CHILD_CHECK(n >= 0, "poll at %llu = %d", (unsigned long long)pos, n);
		CHILD_CHECK(tu_ms() < t0 + 10000, "stuck at %llu of %llu", (unsigned long long)pos,
			    (unsigned long long)a->end);
		for (int i = 0; i < n; i++) {
			const struct shmbus_message *m = &msgs[i];
			uint64_t seq;
			uint32_t prod, crc;

			CHILD_CHECK(m->offset >= pos, "offset %llu before %llu",
				    (unsigned long long)m->offset, (unsigned long long)pos);
			/* a record seen before the kill and skipped now was cut */
			for (uint64_t o = pos; o < m->offset; o++)
				CHILD_CHECK(!seen(a->sh, o, &crc), "committed record %llu (seen before "
					    "the kill) is gone after recovery", (unsigned long long)o);
			CHILD_CHECK(mp_unseal(m->value, m->value_len, &seq, &prod),
				    "record %llu damaged after recovery", (unsigned long long)m->offset);
			if (seen(a->sh, m->offset, &crc))
				CHILD_CHECK(crc == mp_crc32(m->value, m->value_len),
					    "record %llu changed by recovery", (unsigned long long)m->offset);
			pos = m->offset + 1;
			delivered++;
		}
		CHILD_CHECK(shmbus_consumer_position(c, a->topic, 0, &pos) == 0, "position");
	}
	for (uint64_t o = pos; o < a->end; o++) {
		uint32_t crc;

		CHILD_CHECK(!seen(a->sh, o, &crc), "record %llu lost", (unsigned long long)o);
	}
	shmbus_consumer_stats(c, &st);
	CHILD_CHECK(delivered + st.aborted_skipped == a->end - a->start && st.lost == 0,
		    "%llu delivered + %llu aborted != %llu offsets (lost %llu)",
		    (unsigned long long)delivered, (unsigned long long)st.aborted_skipped,
		    (unsigned long long)(a->end - a->start), (unsigned long long)st.lost);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Killed writers, then recovery                                       */

static void recover_and_check(struct mp_env *env, struct shared *sh, const char *topic,
			      uint64_t first, struct shmbus_recovery *ret)
{
	SHMBUS_OPTS(shmbus_partition_info, before);
	SHMBUS_OPTS(shmbus_partition_info, after);
	SHMBUS_OPTS(shmbus_recovery, r);
	struct rec_arg ra = { .root = env->root, .topic = topic, .sh = sh, .start = first };
	uint64_t maxseen = 0, nseen = 0;
	pid_t pid;

	for (uint64_t o = 0; o < MAX_OFFS; o++) {
		if (sh->seen[o] >> 32) {
			maxseen = o;
			nseen++;
		}
	}
	assert_ok(shmbus_partition_info(env->bus, topic, 0, &before));
	assert_ok(shmbus_partition_recover(env->bus, topic, 0, &r));
	assert_ok(shmbus_partition_info(env->bus, topic, 0, &after));
	/* a killed writer leaves no damaged committed frame: nothing is cut,
	 * offsets stay where they were */
	if (r.cut || r.end_offset != before.high || r.first_offset > first || r.frames < nseen ||
	    (nseen && r.end_offset <= maxseen))
		fail_msg("recovery report: first %llu end %llu frames %llu aborted %llu cut %llu "
			 "(%s); before: %llu..%llu, seen %llu records up to %llu",
			 (unsigned long long)r.first_offset, (unsigned long long)r.end_offset,
			 (unsigned long long)r.frames, (unsigned long long)r.aborted,
			 (unsigned long long)r.cut, r.reason, (unsigned long long)before.low,
			 (unsigned long long)before.high, (unsigned long long)nseen,
			 (unsigned long long)maxseen);
	assert_int_equal(after.high, r.end_offset);
	assert_int_equal(after.recoveries, before.recoveries + 1);
	ra.end = r.end_offset;
	pid = mp_spawn(reader_main, &ra);
	mp_wait_ok(&pid, 1, 15000, "reader after recovery");
	*ret = r;
}

/* Rounds of: a writer appends while a consumer watches; kill -9 the writer
 * at a random moment; recover; read everything back; the next writer
 * continues at the recovered end offset. */
static void test_recover_after_killed_writer(void **state)
{
	struct mp_env *env = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 32 << 20);
	struct shared *sh = mp_shared(sizeof *sh);
	uint64_t rng = 99, next = 0, aborted = 0;

	assert_ok(shmbus_topic_create(env->bus, "rec", &o));
	for (uint32_t round = 1; round <= 8; round++) {
		struct rec_arg wa = { .root = env->root, .topic = "rec", .sh = sh, .round = round,
				      .start = next, .cpu = 0 };
		struct rec_arg ca = wa;
		SHMBUS_OPTS(shmbus_recovery, r);
		pid_t w, c;

		ca.cpu = 1;
		sh->stop = 0;
		c = mp_spawn(watcher_main, &ca);
		w = mp_spawn(writer_main, &wa);
		mp_sleep_us(3000 + (long)(mp_rand(&rng) % 30000));
		kill(w, SIGKILL);
		assert_int_equal(mp_reap(w, 5000), 128 + SIGKILL);
		mp_set(&sh->stop, 1);
		mp_wait_ok(&c, 1, 10000, "watcher");
		recover_and_check(env, sh, "rec", 0, &r);
		aborted += r.aborted;
		next = r.end_offset;
	}
	print_message("# 8 writers killed: %llu offsets, %llu aborted by recovery\n",
		      (unsigned long long)next, (unsigned long long)aborted);
	munmap(sh, sizeof *sh);
}

/* A writer killed holding claims (one half written, one untouched): recovery
 * aborts exactly those, and a new writer goes on after them. */
static int claimer_main(void *argp)
{
	const struct rec_arg *a = argp;
	static uint8_t val[300];
	shmbus_producer *p = NULL, *p2 = NULL;
	struct shmbus_claim c1, c2;
	uint64_t rng = 1;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(shmbus_producer_new(bus, a->topic, NULL, &p) == 0, "producer_new");
	/* one outstanding claim per producer: a second producer for the second */
	CHILD_CHECK(shmbus_producer_new(bus, a->topic, NULL, &p2) == 0, "producer_new");
	for (uint64_t seq = 0; seq < 100; seq++) {
		struct shmbus_record r = { .value = val, .value_len = 100 + seq };

		mp_seal(val, r.value_len, seq, a->round, &rng);
		CHILD_CHECK(shmbus_producer_send(p, 0, &r, NULL) == 0, "send");
		a->sh->seen[seq] = 1ull << 32 | mp_crc32(val, r.value_len);
	}
	CHILD_CHECK(shmbus_producer_claim(p, 0, &(struct shmbus_record){ 0 }, 200, &c1) == 0,
		    "claim");
	memset(c1.value, 0xab, 100);
	CHILD_CHECK(shmbus_producer_claim(p, 0, &(struct shmbus_record){ 0 }, 200, &c1) == -EBUSY,
		    "a second claim on one producer");
	CHILD_CHECK(shmbus_producer_claim(p2, 0, &(struct shmbus_record){ 0 }, 200, &c2) == 0,
		    "claim");
	raise(SIGKILL);
	return 1;
}

static void test_recover_dead_claims(void **state)
{
	struct mp_env *env = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 1 << 20);
	struct shared *sh = mp_shared(sizeof *sh);
	struct rec_arg a = { .root = env->root, .topic = "claims", .sh = sh, .round = 1 };
	SHMBUS_OPTS(shmbus_recovery, r);
	pid_t pid;

	assert_ok(shmbus_topic_create(env->bus, "claims", &o));
	pid = mp_spawn(claimer_main, &a);
	assert_int_equal(mp_reap(pid, 10000), 128 + SIGKILL);
	recover_and_check(env, sh, "claims", 0, &r);
	assert_int_equal(r.end_offset, 102);
	assert_int_equal(r.aborted, 2);
	assert_int_equal(r.frames, 100);
	assert_int_equal(r.cut, 0);
	/* appending goes on at 102 */
	a.start = 102;
	a.round = 2;
	a.count = 1000;
	pid = mp_spawn(writer_main, &a);
	mp_wait_ok(&pid, 1, 10000, "writer after recovery");
	{
		SHMBUS_OPTS(shmbus_partition_info, info);

		assert_ok(shmbus_partition_info(env->bus, "claims", 0, &info));
		assert_true(info.high >= 102 + 1000);
		assert_true(info.tail < info.capacity);
	}
	munmap(sh, sizeof *sh);
}

/* ------------------------------------------------------------------ */
/* Random damage                                                       */

struct dmg_arg {
	const char *root;
	const char *topic;
	uint64_t rng;
	bool recover;          /* recover, then read; else read the damage as it is */
	struct dmg_result *res;
};

struct dmg_result {
	int recover_rc;
	uint64_t delivered, errors, cut;
	bool rebuilt;
};

/* Read the whole partition, up to `high`; errors are fine, a crash or a
 * hang is not.  strict: every record must be intact (recovery checked
 * them all). */
static void read_all(shmbus *bus, const struct dmg_arg *a, bool strict, uint64_t high)
{
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = !strict, .reset = SHMBUS_RESET_EARLIEST,
		    .unblock_timeout_ms = 5);
	static struct shmbus_message msgs[64];
	shmbus_consumer *c = NULL;
	int64_t t0 = tu_ms();
	uint64_t pos = 0;
	int empty = 0;

	if (shmbus_consumer_new(bus, &co, &c) < 0 ||
	    shmbus_consumer_assign(c, a->topic, 0, SHMBUS_OFFSET_BEGINNING) < 0) {
		CHILD_CHECK(shmbus_errmsg()[0], "assign failed without a message");
		shmbus_consumer_free(c);
		return;
	}
	for (;;) {
		int n = shmbus_consumer_poll(c, msgs, 64, 1);

		CHILD_CHECK(tu_ms() < t0 + 2000, "reading for 2 s (at %llu)", (unsigned long long)pos);
		if (n < 0) {
			CHILD_CHECK(shmbus_errmsg()[0], "error %d without a message", n);
			if (strict)
				a->res->errors++;
			if (getenv("MP_VERBOSE"))
				fprintf(stderr, "%s read: %s\n", strict ? "recovered" : "damaged",
					shmbus_errmsg());
			if (n == -EIDRM || ++empty > 20)
				break;
			if (shmbus_consumer_position(c, a->topic, 0, &pos) == 0)
				shmbus_consumer_seek(c, a->topic, 0, (int64_t)pos + 1);
			continue;
		}
		for (int i = 0; i < n; i++) {
			uint64_t seq;
			uint32_t prod;

			/* recovery checked every frame it kept */
			CHILD_CHECK(!strict ||
				    mp_unseal(msgs[i].value, msgs[i].value_len, &seq, &prod),
				    "record %llu damaged after a successful recovery",
				    (unsigned long long)msgs[i].offset);
			a->res->delivered += strict;
		}
		/* the end, or nothing more for 20 polls (four unblock timeouts) */
		if (n > 0)
			empty = 0;
		else if (shmbus_consumer_position(c, a->topic, 0, &pos) < 0 || pos >= high ||
			 ++empty > 20)
			break;
	}
	shmbus_consumer_free(c);
}

/*
 * Make the next mapping of `len` bytes (the partition, mapped by the
 * library's first call on it) end at an inaccessible page, so that a
 * read past its end faults every time instead of landing, by the luck of
 * the address-space layout, in a neighbouring mapping: reserve len + a
 * page and release all but its top page, which stays PROT_NONE.  mmap
 * places the next mapping of that size in the gap below the guard.  The
 * guard is never unmapped, so no other thread (a sanitizer's) can take
 * its place in between.
 */
static void guard_next_map(size_t len)
{
	uint8_t *a = mmap(NULL, len + 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHILD_CHECK(a != MAP_FAILED, "mmap");
	CHILD_CHECK(munmap(a, len) == 0, "munmap");
}

/* Recover the damaged partition, read it and append one record (or,
 * without recovery, just read it as it is): any outcome but a crash, a
 * hang, or a damaged record after a successful recovery. */
static int damaged_reader_main(void *argp)
{
	const struct dmg_arg *a = argp;
	SHMBUS_OPTS(shmbus_recovery, r);
	shmbus_producer *p = NULL;
	uint64_t high = 0;
	shmbus *bus = mp_open(a->root);
	char path[512];
	struct stat st;
	int rc;

	snprintf(path, sizeof path, "%s/topics/%s/0", a->root, a->topic);
	CHILD_CHECK(stat(path, &st) == 0, "stat %s", path);
	guard_next_map((size_t)st.st_size);
	if (!a->recover) {
		SHMBUS_OPTS(shmbus_partition_info, info);

		read_all(bus, a, false,
			 shmbus_partition_info(bus, a->topic, 0, &info) == 0 ? info.high : 0);
		shmbus_close(bus);
		return 0;
	}
	rc = shmbus_partition_recover(bus, a->topic, 0, &r);
	a->res->recover_rc = rc;
	CHILD_CHECK(rc == 0 || shmbus_errmsg()[0], "recovery failed (%d) without a message", rc);
	if (rc == 0) {
		a->res->cut = r.cut;
		a->res->rebuilt = r.rebuilt;
		high = r.end_offset;
		read_all(bus, a, true, high);
	}
	/* appending after recovery: works, or fails with a clear error */
	if (shmbus_producer_new(bus, a->topic, NULL, &p) == 0) {
		uint8_t v[64];
		uint64_t rng = a->rng, off;
		struct shmbus_record rec = { .value = v, .value_len = sizeof v };

		mp_seal(v, sizeof v, 0, 9, &rng);
		rc = shmbus_producer_send(p, 0, &rec, &off);
		CHILD_CHECK(rc >= 0 || shmbus_errmsg()[0], "send failed (%d) without a message", rc);
		if (rc >= 0 && a->res->recover_rc == 0)
			CHILD_CHECK(off >= high, "appended at %llu, below the recovered end %llu",
				    (unsigned long long)off, (unsigned long long)high);
		shmbus_producer_free(p);
	}
	shmbus_close(bus);
	return 0;
}

/* Fill a topic: < 1 lap of mixed sizes, or 2.5 laps of 256-byte frames;
 * sometimes a claim left open.  Through a bus of its own, closed after,
 * so this process keeps no mapping that would make recovery refuse the
 * partition as in use. */
static void fill(struct mp_env *env, const char *topic, uint64_t *rng)
{
	shmbus *bus = mp_open(env->root);
	shmbus_producer *p = NULL;
	uint8_t val[1200];
	bool wrap = mp_rand(rng) & 1;
	uint64_t bytes = 0, limit = wrap ? 160 << 10 : 48 << 10;

	assert_ok(shmbus_producer_new(bus, topic, NULL, &p));
	for (uint64_t seq = 0; bytes < limit; seq++) {
		size_t len = wrap ? 208 : MP_SEAL_MIN + mp_rand(rng) % 1000;
		struct shmbus_record r = { .value = val, .value_len = len };

		mp_seal(val, len, seq, 1, rng);
		assert_ok(shmbus_producer_send(p, 0, &r, NULL));
		bytes += (48 + len + 7) & ~7ull;
	}
	if (mp_rand(rng) % 4 == 0) {
		struct shmbus_claim c;

		assert_ok(shmbus_producer_claim(p, 0, &(struct shmbus_record){ 0 }, wrap ? 208 : 100,
						&c));
		memset(c.value, 0x5a, 50); /* never committed */
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
}

/* Random bytes over the claim word, status/start, the index and the data. */
static void scribble(const char *path, uint64_t *rng, char *what, size_t wlen)
{
	int fd = open(path, O_RDWR);
	struct stat st;
	uint8_t *base;
	uint64_t index_off, data_off, cap, n = 1 + mp_rand(rng) % 4;
	size_t used = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(base != MAP_FAILED);
	close(fd);
	/* the geometry, from the header's identity (format.md §2) */
	memcpy(&index_off, base + 40, 8);
	memcpy(&data_off, base + 56, 8);
	memcpy(&cap, base + 64, 8);
	assert_true(index_off >= 4096 && index_off < data_off && data_off < (uint64_t)st.st_size);
	what[0] = '\0';
	for (uint64_t k = 0; k < n; k++) {
		uint64_t where = mp_rand(rng) % 8, at, len, q, hoff, w, units;
		const char *name;

		switch (where) {
		case 0: /* the claim word {tail, next} */
			at = 640 + mp_rand(rng) % 16;
			len = 1 + mp_rand(rng) % (656 - at);
			name = "claim";
			break;
		case 1: /* status and start */
			at = 512 + mp_rand(rng) % 16;
			len = 1 + mp_rand(rng) % (528 - at);
			name = "status/start";
			break;
		case 2: /* the offset index */
			at = index_off + (mp_rand(rng) % (data_off - index_off)) / 8 * 8;
			len = 8 * (1 + mp_rand(rng) % 8);
			name = "index";
			break;
		case 3: /* a word of the data, aligned: commit words live there */
			at = data_off + (mp_rand(rng) % ((uint64_t)st.st_size - data_off)) / 8 * 8;
			len = 8;
			name = "data word";
			break;
		case 4: /* a run of data bytes */
			at = data_off + mp_rand(rng) % ((uint64_t)st.st_size - data_off);
			len = 1 + mp_rand(rng) % 64;
			name = "data bytes";
			break;
		case 6: /* a plausible commit word, for the frame's own offset, at a frame
			 * the index points to: any state, any length */
		case 7: /* or that frame's key, value and headers lengths */
			memcpy(&q, base + index_off + (mp_rand(rng) % ((data_off - index_off) / 8)) * 8,
			       8);
			at = data_off + (q & (cap - 1) & ~7ull);
			if (at + 48 > (uint64_t)st.st_size) {
				at = data_off;
			}
			memcpy(&hoff, base + at + 8, 8);
			if (where == 7) {
				at += 24;
				len = 0;
				for (int f = 0; f < 3; f++) {
					uint32_t v32 = (uint32_t)(mp_rand(rng) % 3 == 0 ? mp_rand(rng)
											  : mp_rand(rng) % 256);

					memcpy(base + at + 4 * f, &v32, 4);
				}
				name = "frame lengths";
				break;
			}
			units = mp_rand(rng) % 3 == 0 ? mp_rand(rng) % (1u << 30)
						      : mp_rand(rng) % (2 * cap / 8);
			w = (mp_rand(rng) % 4) << 62 | units << 32;
			w |= (uint32_t)(hoff + (w >> 62 == 0 ? 1 + mp_rand(rng) % 4 : 0));
			memcpy(base + at, &w, 8);
			len = 0;
			name = "commit word";
			break;
		default: /* one bit anywhere past the identity */
			at = 512 + mp_rand(rng) % ((uint64_t)st.st_size - 512);
			len = 0;
			name = "bit";
			break;
		}
		if (at + len > (uint64_t)st.st_size)
			len = (uint64_t)st.st_size - at;
		if (len == 0 && where < 6)
			base[at] ^= (uint8_t)(1u << (mp_rand(rng) % 8));
		for (uint64_t i = 0; i < len; i++)
			base[at + i] = (uint8_t)mp_rand(rng);
		used += (size_t)snprintf(what + used, wlen - used, "%s%s@%llu+%llu", k ? ", " : "",
					 name, (unsigned long long)at, (unsigned long long)len);
		if (used >= wlen)
			used = wlen - 1;
	}
	munmap(base, (size_t)st.st_size);
}

static void run_damage(struct mp_env *env, bool recover, uint64_t seed)
{
	struct dmg_result *res = mp_shared(sizeof *res);
	uint64_t rng = seed, ok = 0, failed = 0, errors = 0, delivered = 0, rebuilt = 0, cut = 0;
	int bad = 0;
	const int iterations = 200;

	int it;

	for (it = 0; it < iterations; it++) {
		SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 64 << 10);
		char topic[32], path[512], what[400];
		struct dmg_arg a = { .root = env->root, .topic = topic, .recover = recover,
				     .res = res };
		pid_t pid;
		int st;

		snprintf(topic, sizeof topic, "dmg%d", it);
		assert_ok(shmbus_topic_create(env->bus, topic, &o));
		fill(env, topic, &rng);
		snprintf(path, sizeof path, "%s/topics/%s/0", env->root, topic);
		scribble(path, &rng, what, sizeof what);
		memset(res, 0, sizeof *res);
		a.rng = mp_rand(&rng);
		pid = mp_spawn(damaged_reader_main, &a);
		st = mp_reap(pid, 3000);
		if (st != 0) {
			char buf[64];

			/* go on: the kinds of failure tell more than the first */
			print_error("iteration %d (damage: %s): the reader %s\n", it, what,
				    mp_status_str(st, buf, sizeof buf));
			if (++bad == 5)
				break;
		}
		ok += res->recover_rc == 0;
		failed += res->recover_rc != 0;
		errors += res->errors;
		delivered += res->delivered;
		rebuilt += res->rebuilt;
		cut += res->cut > 0;
		assert_ok(shmbus_topic_delete(env->bus, topic));
	}
	if (recover)
		print_message("# %d damaged partitions: recovery ok %llu (rebuilt %llu, cut %llu), "
			      "refused %llu; then %llu records read, %llu read errors\n",
			      it + (it < iterations), (unsigned long long)ok,
			      (unsigned long long)rebuilt, (unsigned long long)cut,
			      (unsigned long long)failed, (unsigned long long)delivered,
			      (unsigned long long)errors);
	munmap(res, sizeof *res);
	if (bad)
		fail_msg("%d damaged partitions crashed or hung the reader", bad);
}

/* Random bytes over the hot header fields, index and data, then
 * shmbus_partition_recover and a full read (200 partitions, fixed seed). */
static void test_recover_random_damage(void **state)
{
	run_damage(*state, true, 0x5eed);
}

/* The same damage read as it is, without recovery: consumers must return
 * clear errors, never crash or spin. */
static void test_read_random_damage_unrecovered(void **state)
{
	run_damage(*state, false, 0xbad5eed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_recover_after_killed_writer, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_recover_dead_claims, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_recover_random_damage, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_read_random_damage_unrecovered, mp_setup,
						mp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
