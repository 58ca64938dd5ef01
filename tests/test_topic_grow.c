/*
 * test_topic_grow.c - a topic gains partitions (issue #11's "topics gain
 * partitions"; Kafka's `kafka-topics --alter --partitions N`):
 *
 *  - while a producer child sends round-robin through a real shmbusd and
 *    `shmbus consume` reads the whole topic, the topic grows from 2 to 5:
 *    every record is read once, and the new partitions get records;
 *  - an existing producer's keys spread over the new count at its next
 *    send (with and without linger), in the embedded mode (no daemon);
 *  - shrinking, keeping the count, more than 16384, an unknown topic and a
 *    replica are refused with messages that name the topic, its count,
 *    and the fix (library and `shmbus topic alter`);
 *  - a cooperative-sticky group of two members on a 2-partition topic
 *    that grows to 6: within a bound all six are owned, three each, the
 *    two old ones never revoked, and records sent to the new partitions
 *    before anyone owned them are read although the members start
 *    uncommitted partitions at their end; a pattern subscriber follows a
 *    grow too;
 *  - a grow killed -9 (at test points of the real path) after making its
 *    files leaves the topic as it was and working; the next admin call, or
 *    shmbusd at start, removes the files it made, and the topic grows
 *    again.
 *
 * Children and daemons are killed by pid; every wait has a deadline.
 */
#include "test_daemon.h"

#include <dirent.h>
#include <sys/wait.h>

#include "lib/clirun.h"
#include "lib/testpoints.h"
#include "../lib/shmbus_private.h"

#define SETTLE_MS    5000   /* a rebalance onto new partitions: a bound, not a speed */
#define N_RECORDS    30000
#define CAP          (2u << 20)

static int setup(void **state)
{
	return daemon_setup(state);
}

static int teardown(void **state)
{
	reap_children();
	return daemon_teardown(state);
}

static shmbus *open_bus(const char *root)
{
	return tu_open(root); /* makes the bus file if no daemon made it yet */
}

/* Entries in <root>/topics/<name> (-1: no such directory). */
static int files_of(const char *root, const char *name)
{
	char path[512];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof path, "%s/topics/%s", root, name);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(dir);
	return n;
}

static uint32_t partitions_of(shmbus *bus, const char *topic)
{
	SHMBUS_OPTS(shmbus_topic_info, ti);

	assert_ok(shmbus_topic_describe(bus, topic, &ti));
	return ti.partitions;
}

static int grow(shmbus *bus, const char *topic, uint32_t count)
{
	return shmbus_topic_add_partitions(bus, topic, count, NULL);
}

#define expect_msg(needle)                                                              \
	do {                                                                            \
		if (!strstr(shmbus_errmsg(), (needle)))                                 \
			fail_msg("message \"%s\" lacks \"%s\"", shmbus_errmsg(), (needle)); \
	} while (0)

/* ------------------------------------------------------------------ */
/* Growing under load                                                  */

struct load {
	const char *root;
	volatile int sent;               /* records sent so far */
	volatile int per_part[16];       /* records sent to each partition */
	volatile int failed;
};

/* Round-robin sends of "000123" values, paced so the grow lands midway. */
static int producer_main(void *arg)
{
	struct load *l = arg;
	shmbus *bus = mp_open(l->root);
	shmbus_producer *p;
	char v[16];

	CHILD_CHECK(shmbus_producer_new(bus, "load", NULL, &p) == 0, "producer: %s",
		    shmbus_errmsg());
	for (int i = 0; i < N_RECORDS; i++) {
		struct shmbus_record r = { .value = v };
		int part;

		r.value_len = (size_t)snprintf(v, sizeof v, "%06d", i);
		part = shmbus_producer_send(p, SHMBUS_PARTITION_ANY, &r, NULL);
		CHILD_CHECK(part >= 0 && part < 16, "send %d = %d: %s", i, part, shmbus_errmsg());
		__atomic_fetch_add(&l->per_part[part], 1, __ATOMIC_RELAXED);
		__atomic_store_n(&l->sent, i + 1, __ATOMIC_RELEASE);
		if (i % 200 == 199)
			mp_sleep_us(2000);
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* Check the consumer's "PARTITION VALUE" lines: each value once. */
static void expect_each_once(const char *out, int *per_part)
{
	static uint8_t seen[N_RECORDS];
	const char *at = out;
	int lines = 0;

	memset(seen, 0, sizeof seen);
	while (*at) {
		int part, seq;

		if (sscanf(at, "%d %d", &part, &seq) != 2 || part < 0 || part >= 16 || seq < 0 ||
		    seq >= N_RECORDS)
			fail_msg("bad line at %.40s", at);
		if (seen[seq]++)
			fail_msg("record %d read twice", seq);
		per_part[part]++;
		lines++;
		at = strchr(at, '\n');
		if (!at)
			break;
		at++;
	}
	assert_int_equal(lines, N_RECORDS);
}

static void grow_while_producing_and_consuming_loses_nothing(void **state)
{
	struct env *e = *state;
	struct load *l = mp_shared(sizeof *l);
	char count[16];
	int got[16] = { 0 };
	struct child c;
	struct run r = { 0 };
	shmbus *bus;
	pid_t pid;

	start_or_fail(&e->d[0], e->root, NULL, NULL);
	bus = open_bus(e->root);
	create_topic(bus, "load", 2, CAP, 0);
	snprintf(count, sizeof count, "%d", N_RECORDS);
	c = spawn(e->root, NULL, ARGS("consume", "load", "-c", count, "-f", "%p %s\\n"));
	l->root = e->root;
	pid = mp_spawn(producer_main, l);
	assert_true(mp_await(&l->sent, 10000) || l->sent > 0);
	while (__atomic_load_n(&l->sent, __ATOMIC_ACQUIRE) < N_RECORDS / 3)
		mp_sleep_us(1000);
	assert_ok(grow(bus, "load", 5)); /* through shmbusd */
	assert_int_equal(partitions_of(bus, "load"), 5);
	mp_wait_ok(&pid, 1, 30000, "producer");
	pump(&c, &r, NULL, 0, tu_ms() + 20000, N_RECORDS);
	finish(&c, &r, tu_ms() + 5000);
	expect_ok(&r, "shmbus consume of the growing topic");
	expect_each_once(r.out, got);
	for (int p = 0; p < 5; p++) {
		print_message("# partition %d: %d sent, %d read\n", p, l->per_part[p], got[p]);
		assert_int_equal(got[p], l->per_part[p]);
		assert_true(l->per_part[p] > 0); /* the new ones too */
	}
	assert_true(tu_daemon_log_has(&e->d[0], "topic \"load\" has 5 partitions now", 1000));
	run_free(&r);
	munmap(l, sizeof *l);
	shmbus_close(bus);
}

/* An existing producer, keyed, with and without linger, embedded mode. */
static void existing_producers_use_the_new_partitions(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	SHMBUS_OPTS(shmbus_producer_opts, lo, .linger_us = 1000);
	shmbus_producer *plain, *lingering, *probe;
	char key[16];
	int k, want = -1;

	create_topic(bus, "keys", 2, 1 << 16, 0);
	assert_ok(shmbus_producer_new(bus, "keys", NULL, &plain));
	assert_ok(shmbus_producer_new(bus, "keys", &lo, &lingering));
	assert_ok(grow(bus, "keys", 7));
	/* a key that lands past the old partitions, as a new producer sees it */
	assert_ok(shmbus_producer_new(bus, "keys", NULL, &probe));
	assert_int_equal(shmbus_producer_partitions(probe), 7);
	for (k = 0; k < 1000 && want < 2; k++) {
		snprintf(key, sizeof key, "k%d", k);
		want = shmbus_producer_partition_for(probe, key, strlen(key));
	}
	shmbus_producer_free(probe);
	assert_true(want >= 2);
	{
		struct shmbus_record r = { .key = key, .key_len = strlen(key), .value = "v",
					   .value_len = 1 };
		SHMBUS_OPTS(shmbus_partition_info, pi);

		assert_int_equal(shmbus_producer_send(plain, SHMBUS_PARTITION_ANY, &r, NULL), want);
		assert_int_equal(shmbus_producer_partitions(plain), 7);
		assert_int_equal(shmbus_producer_send(lingering, SHMBUS_PARTITION_ANY, &r, NULL),
				 want);
		assert_ok(shmbus_producer_flush(lingering));
		assert_ok(shmbus_partition_info(bus, "keys", (uint32_t)want, &pi));
		assert_int_equal(pi.high, 2);
		/* an explicit partition that is new works at once too */
		assert_int_equal(shmbus_producer_send(plain, 6, &r, NULL), 6);
	}
	shmbus_producer_free(plain);
	shmbus_producer_free(lingering);
	shmbus_close(bus);
}

/* ------------------------------------------------------------------ */
/* Refusals                                                            */

static void shrinking_and_other_mistakes_are_refused(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	SHMBUS_OPTS(shmbus_add_partitions_opts, dry, .validate_only = true);
	SHMBUS_OPTS(shmbus_topic_opts, ro, .partitions = 2, .capacity = 1 << 16);
	struct run r = { 0 };

	create_topic(bus, "t", 3, 1 << 16, 0);
	assert_int_equal(grow(bus, "t", 2), -EINVAL);
	expect_msg("topic \"t\" has 3 partitions: partitions can only be added");
	assert_int_equal(grow(bus, "t", 3), -EINVAL);
	expect_msg("ask for more than 3");
	assert_int_equal(grow(bus, "t", 16385), -EINVAL);
	expect_msg("16384");
	assert_int_equal(grow(bus, "nope", 4), -ENOENT);
	expect_msg("topic \"nope\" does not exist");
	assert_ok(shmbus_topic_add_partitions(bus, "t", 9, &dry));
	assert_int_equal(partitions_of(bus, "t"), 3);
	assert_int_equal(files_of(e->root, "t"), 3);

	/* a mirror's replica: grow its source */
	assert_ok(admin_replica_create(bus, "rep", &ro, "rep (src.example:7001)", NULL));
	assert_int_equal(grow(bus, "rep", 4), -EROFS);
	expect_msg("replica mirrored from rep (src.example:7001)");
	expect_msg("add partitions to the source topic");
	assert_int_equal(partitions_of(bus, "rep"), 2);

	/* the same through the command, with shmbusd serving the root */
	start_or_fail(&e->d[0], e->root, NULL, NULL);
	CLI(&r, e->root, NULL, "topic", "alter", "t", "--partitions", "2");
	expect_status(&r, 1, "alter to fewer partitions");
	expect_contains(r.err, "topic \"t\" has 3 partitions: partitions can only be added",
			"shrink message");
	run_free(&r);
	CLI(&r, e->root, NULL, "topic", "alter", "rep", "--partitions", "5");
	expect_status(&r, 1, "alter of a replica");
	expect_contains(r.err, "add partitions to the source topic", "replica message");
	run_free(&r);
	CLI(&r, e->root, NULL, "topic", "alter", "t", "--partitions", "4", "--dry-run");
	expect_ok(&r, "dry run");
	expect_contains(r.out, "can grow from 3 to 4", "dry run output");
	run_free(&r);
	CLI(&r, e->root, NULL, "topic", "alter", "t", "--partitions", "4");
	expect_ok(&r, "alter");
	expect_contains(r.out, "topic \"t\": 4 partitions, was 3", "alter output");
	run_free(&r);
	CLI(&r, e->root, NULL, "topic", "list");
	expect_ok(&r, "list");
	expect_row(r.out, "t 4 64 KiB overwrite", "list shows the new count");
	run_free(&r);
	CLI(&r, e->root, NULL, "topic", "describe", "t");
	expect_ok(&r, "describe");
	expect_contains(r.out, "partitions:      4", "describe shows the new count");
	run_free(&r);
	assert_int_equal(files_of(e->root, "t"), 4);
	shmbus_close(bus);
}

/* ------------------------------------------------------------------ */
/* Consumer groups                                                     */

struct mctx {
	int revoked;                      /* partitions revoked from this member */
	int got[64];                      /* records read, per partition */
};

static void count_revoked(void *ctx, shmbus_member *m, const struct shmbus_topic_partition *tp,
			  size_t n)
{
	(void)m;
	(void)tp;
	((struct mctx *)ctx)->revoked += (int)n;
}

/* A member that starts partitions without a commit at their end (Kafka's
 * default auto.offset.reset=latest). */
static shmbus_member *join(shmbus *bus, const char *topic, const char *pattern,
			   struct mctx *ctx)
{
	const char *topics[1] = { topic };
	SHMBUS_OPTS(shmbus_member_opts, o, .group = "g", .topics = topic ? topics : NULL,
		    .ntopics = topic ? 1 : 0, .pattern = pattern,
		    .assignor = SHMBUS_ASSIGNOR_COOPERATIVE_STICKY, .on_revoked = count_revoked,
		    .ctx = ctx);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .reset = SHMBUS_RESET_LATEST);
	shmbus_member *m = NULL;
	int rc;

	o.consumer = &co;
	rc = shmbus_member_subscribe(bus, &o, &m);
	if (rc)
		fail_msg("subscribe = %d: %s", rc, shmbus_errmsg());
	return m;
}

/* The member's partitions as a bit mask (after a poll applies changes,
 * counting the records it reads). */
static uint64_t owned(shmbus_member *m, struct mctx *ctx)
{
	struct shmbus_topic_partition tp[64];
	struct shmbus_message msgs[8];
	uint64_t mask = 0;
	int n = shmbus_member_poll(m, msgs, 8, 0);

	if (n < 0)
		fail_msg("poll = %d: %s", n, shmbus_errmsg());
	for (int i = 0; i < n; i++)
		if (msgs[i].partition >= 0 && msgs[i].partition < 64)
			ctx->got[msgs[i].partition]++;
	n = shmbus_member_assignment(m, tp, 64);
	for (int i = 0; i < n && i < 64; i++)
		mask |= 1ull << tp[i].partition;
	return mask;
}

/* Poll the members until they own `want` partitions each, disjoint and
 * covering [0, total); the masks they settled on. */
static int64_t settle(shmbus_member **ms, struct mctx *ctx, int n, const int *want, int total,
		      uint64_t *masks)
{
	int64_t start = tu_ms(), end = start + SETTLE_MS;

	for (;;) {
		uint64_t all = 0;
		bool ok = true;

		for (int i = 0; i < n; i++) {
			masks[i] = owned(ms[i], &ctx[i]);
			ok &= __builtin_popcountll(masks[i]) == want[i] && !(all & masks[i]);
			all |= masks[i];
		}
		if (ok && all == (total == 64 ? ~0ull : (1ull << total) - 1))
			return tu_ms() - start;
		if (tu_ms() > end) {
			for (int i = 0; i < n; i++)
				print_message("# member %d owns %#llx, wants %d\n", i,
					      (unsigned long long)masks[i], want[i]);
			fail_msg("the group did not settle on %d partitions", total);
		}
		mp_sleep_us(1000);
	}
}

static void group_rebalances_onto_new_partitions_cooperatively(void **state)
{
	struct env *e = *state;
	shmbus *b0, *b1;
	struct mctx ctx[2] = { { 0 }, { 0 } };
	shmbus_member *ms[2];
	uint64_t before[2], after[2];
	static const int one[2] = { 1, 1 }, three[2] = { 3, 3 };
	struct shmbus_record r = { .value = "new", .value_len = 3 };
	shmbus_producer *p;
	int64_t ms_taken;

	start_or_fail(&e->d[0], e->root, NULL, NULL);
	b0 = open_bus(e->root);
	b1 = open_bus(e->root);
	create_topic(b0, "grp", 2, 1 << 16, 0);
	ms[0] = join(b0, "grp", NULL, &ctx[0]);
	ms[1] = join(b1, "grp", NULL, &ctx[1]);
	settle(ms, ctx, 2, one, 2, before);
	ctx[0].revoked = ctx[1].revoked = 0;
	assert_ok(grow(b0, "grp", 6));
	/* a record in each new partition before any member owns it: the group
	 * starts new partitions at 0, so none is skipped, even at "latest" */
	assert_ok(shmbus_producer_new(b0, "grp", NULL, &p));
	for (int32_t k = 2; k < 6; k++)
		assert_int_equal(shmbus_producer_send(p, k, &r, NULL), k);
	ms_taken = settle(ms, ctx, 2, three, 6, after);
	print_message("# 2 -> 6 partitions: every one owned after %lld ms\n", (long long)ms_taken);
	for (int i = 0; i < 2; i++) {
		assert_true((after[i] & before[i]) == before[i]); /* kept what it had */
		assert_int_equal(ctx[i].revoked, 0);
	}
	for (int64_t end = tu_ms() + SETTLE_MS; tu_ms() < end;) {
		int read = 0;

		for (int k = 2; k < 6; k++)
			read += ctx[0].got[k] + ctx[1].got[k];
		if (read == 4)
			break;
		owned(ms[0], &ctx[0]);
		owned(ms[1], &ctx[1]);
		mp_sleep_us(1000);
	}
	for (int k = 2; k < 6; k++)
		assert_int_equal(ctx[0].got[k] + ctx[1].got[k], 1);
	shmbus_producer_free(p);
	shmbus_member_free(ms[0]);
	shmbus_member_free(ms[1]);
	shmbus_close(b0);
	shmbus_close(b1);
}

static void pattern_subscriber_follows_a_grow(void **state)
{
	struct env *e = *state;
	shmbus *bus;
	struct mctx ctx = { 0 };
	shmbus_member *m;
	uint64_t mask;
	int want;

	start_or_fail(&e->d[0], e->root, NULL, NULL);
	bus = open_bus(e->root);
	create_topic(bus, "pat.a", 1, 1 << 16, 0);
	m = join(bus, NULL, "pat\\..*", &ctx);
	want = 1;
	settle(&m, &ctx, 1, &want, 1, &mask);
	assert_ok(grow(bus, "pat.a", 4));
	want = 4;
	settle(&m, &ctx, 1, &want, 4, &mask);
	assert_int_equal(ctx.revoked, 0);
	shmbus_member_free(m);
	shmbus_close(bus);
}

/* ------------------------------------------------------------------ */
/* A grow killed in the middle                                         */

struct grow_args {
	const char *root;
	const char *topic;
	uint32_t count;
};

static int grow_main(void *arg)
{
	const struct grow_args *a = arg;
	shmbus *bus = mp_open(a->root);
	int rc = grow(bus, a->topic, a->count);

	fprintf(stderr, "grow returned %d: %s\n", rc, shmbus_errmsg());
	return 1; /* it was to die first */
}

/* Produce one record to each partition and read it back. */
static void topic_works(shmbus *bus, const char *topic, uint32_t parts)
{
	shmbus_producer *p;
	shmbus_consumer *c;
	struct shmbus_message msg[8];
	uint32_t got = 0;
	int64_t end = tu_ms() + 5000;

	assert_ok(shmbus_producer_new(bus, topic, NULL, &p));
	assert_int_equal(shmbus_producer_partitions(p), (int)parts);
	for (uint32_t i = 0; i < parts; i++) {
		struct shmbus_record r = { .value = "x", .value_len = 1 };

		assert_int_equal(shmbus_producer_send(p, (int32_t)i, &r, NULL), (int)i);
	}
	assert_ok(shmbus_consumer_new(bus, NULL, &c));
	assert_ok(shmbus_consumer_assign(c, topic, SHMBUS_PARTITION_ANY, SHMBUS_OFFSET_END));
	for (uint32_t i = 0; i < parts; i++) {
		struct shmbus_record r = { .value = "y", .value_len = 1 };

		assert_int_equal(shmbus_producer_send(p, (int32_t)i, &r, NULL), (int)i);
	}
	while (got < parts && tu_ms() < end) {
		int n = shmbus_consumer_poll(c, msg, 8, 50);

		assert_true(n >= 0);
		got += (uint32_t)n;
	}
	assert_int_equal(got, parts);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
}

static void grow_killed_before_publishing_is_swept(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	struct grow_args a = { .root = e->root, .topic = "crash", .count = 5 };

	create_topic(bus, "crash", 2, 1 << 16, 0);
	/* every new file made, the entry not yet published */
	tp_die_at("grow_before_publish", 1, grow_main, &a);
	assert_int_equal(partitions_of(bus, "crash"), 2);
	assert_int_equal(files_of(e->root, "crash"), 5);  /* three left over */
	topic_works(bus, "crash", 2);                      /* the bus works as it was */
	/* the next admin call sweeps them: never as a half-made topic */
	create_topic(bus, "other", 1, 1 << 16, 0);
	assert_int_equal(files_of(e->root, "crash"), 2);
	assert_int_equal(partitions_of(bus, "crash"), 2);
	assert_ok(grow(bus, "crash", 4));
	assert_int_equal(files_of(e->root, "crash"), 4);
	topic_works(bus, "crash", 4);
	shmbus_close(bus);
}

static void grow_killed_midway_is_swept_by_shmbusd_at_start(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	struct grow_args a = { .root = e->root, .topic = "mid", .count = 8 };

	create_topic(bus, "mid", 3, 1 << 16, 0);
	/* killed after the second of five new partitions */
	tp_die_at("topic_partition_made", 2, grow_main, &a);
	assert_int_equal(partitions_of(bus, "mid"), 3);
	assert_int_equal(files_of(e->root, "mid"), 5);
	start_or_fail(&e->d[0], e->root, NULL, NULL);
	assert_true(tu_daemon_log_has(&e->d[0], "of topic \"mid\" past its partitions: left by "
				      "an interrupted grow", 2000));
	assert_int_equal(tu_daemon_log_count(&e->d[0], "half-made topic"), 0);
	assert_int_equal(files_of(e->root, "mid"), 3);
	assert_int_equal(partitions_of(bus, "mid"), 3);
	topic_works(bus, "mid", 3);
	assert_ok(grow(bus, "mid", 8)); /* through shmbusd now */
	assert_int_equal(files_of(e->root, "mid"), 8);
	topic_works(bus, "mid", 8);
	shmbus_close(bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(grow_while_producing_and_consuming_loses_nothing),
		T(existing_producers_use_the_new_partitions),
		T(shrinking_and_other_mistakes_are_refused),
		T(group_rebalances_onto_new_partitions_cooperatively),
		T(pattern_subscriber_follows_a_grow),
		T(grow_killed_before_publishing_is_swept),
		T(grow_killed_midway_is_swept_by_shmbusd_at_start),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
