/*
 * test_api.c - libshmbus through its public header only: bus roots,
 * topics and their errors, producers and consumers (views and copies,
 * headers, keys and partitions, zero-copy claims), seeks, lag, reset
 * policies on a lapped consumer, consumer groups, backpressure in one
 * process, deletion under live handles, options structs from older
 * callers, and the error texts.
 *
 * Tests that lap a ring send 16-byte values without a key: 64-byte
 * frames, so a 4 KiB ring holds a known number of records.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "shmbus.h"

struct env {
	char *root;
	shmbus *bus;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);

	e->root = tu_tmpdir("api");
	e->bus = tu_open(e->root);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	shmbus_close(e->bus);
	tu_rmrf(e->root);
	free(e->root);
	free(e);
	return 0;
}

static void make_topic(shmbus *bus, const char *name, uint32_t partitions, uint64_t capacity,
		       enum shmbus_policy policy)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = partitions, .capacity = capacity,
		    .policy = policy);

	assert_ok(shmbus_topic_create(bus, name, &o));
}

static shmbus_producer *producer(shmbus *bus, const char *topic)
{
	shmbus_producer *p = NULL;

	assert_ok(shmbus_producer_new(bus, topic, NULL, &p));
	return p;
}

static shmbus_consumer *consumer(shmbus *bus, const struct shmbus_consumer_opts *o)
{
	shmbus_consumer *c = NULL;

	assert_ok(shmbus_consumer_new(bus, o, &c));
	return c;
}

/* A 16-byte value naming n: with no key, a 64-byte frame. */
static int send16(shmbus_producer *p, int32_t partition, uint64_t n, uint64_t *ret_off)
{
	uint64_t val[2] = { n, ~n };
	struct shmbus_record r = { .value = val, .value_len = 16 };

	return shmbus_producer_send(p, partition, &r, ret_off);
}

static void send16_n(shmbus_producer *p, int32_t partition, uint64_t first, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		assert_ok(send16(p, partition, first + i, NULL));
}

static uint64_t val16(const struct shmbus_message *m)
{
	uint64_t v[2];

	assert_int_equal(m->value_len, 16);
	memcpy(v, m->value, 16);
	assert_int_equal(v[1], ~v[0]);
	return v[0];
}

static int poll_now(shmbus_consumer *c, struct shmbus_message *m, size_t max)
{
	int n = shmbus_consumer_poll(c, m, max, 0);

	if (n < 0)
		fail_msg("poll = %d (%s): %s", n, shmbus_strerror(n), shmbus_errmsg());
	return n;
}

/* ------------------------------------------------------------------ */
/* Roots                                                               */

static void open_makes_the_root_layout(void **state)
{
	struct env *e = *state;
	char path[512];
	struct stat st;

	assert_string_equal(shmbus_root(e->bus), e->root);
	snprintf(path, sizeof path, "%s/bus", e->root);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	snprintf(path, sizeof path, "%s/topics", e->root);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(path, sizeof path, "%s/groups", e->root);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
}

static void nested_root_is_created_and_reopened(void **state)
{
	struct env *e = *state;
	char root[512];
	shmbus *b1, *b2;
	SHMBUS_OPTS(shmbus_topic_info, info);

	snprintf(root, sizeof root, "%s/a/b/c", e->root);
	b1 = tu_open(root);
	make_topic(b1, "x", 2, 4096, SHMBUS_POLICY_OVERWRITE);
	b2 = tu_open(root);
	assert_ok(shmbus_topic_describe(b2, "x", &info));
	assert_int_equal(info.partitions, 2);
	shmbus_close(b2);
	shmbus_close(b1);
}

static void default_root_honours_the_environment(void **state)
{
	struct env *e = *state;
	char buf[512], want[512], *old_root = getenv("SHMBUS_ROOT"), *old_xdg = getenv("XDG_RUNTIME_DIR");
	char saved_root[512] = "", saved_xdg[512] = "", busfile[600];
	shmbus *bus = NULL;

	if (old_root)
		snprintf(saved_root, sizeof saved_root, "%s", old_root);
	if (old_xdg)
		snprintf(saved_xdg, sizeof saved_xdg, "%s", old_xdg);
	snprintf(want, sizeof want, "%s/from-env", e->root);
	setenv("SHMBUS_ROOT", want, 1);
	assert_int_equal(shmbus_default_root(buf, sizeof buf), (int)strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(shmbus_default_root(buf, 4), -ENAMETOOLONG);
	assert_ok(shmbus_open(NULL, &bus));
	assert_string_equal(shmbus_root(bus), want);
	shmbus_close(bus);
	snprintf(busfile, sizeof busfile, "%s/bus", want);
	assert_int_equal(access(busfile, F_OK), 0);
	/* without SHMBUS_ROOT: $XDG_RUNTIME_DIR/shmbus, else /dev/shm/shmbus-$UID */
	unsetenv("SHMBUS_ROOT");
	setenv("XDG_RUNTIME_DIR", e->root, 1);
	snprintf(want, sizeof want, "%s/shmbus", e->root);
	assert_int_equal(shmbus_default_root(buf, sizeof buf), (int)strlen(want));
	assert_string_equal(buf, want);
	unsetenv("XDG_RUNTIME_DIR");
	snprintf(want, sizeof want, "/dev/shm/shmbus-%u", (unsigned)getuid());
	assert_int_equal(shmbus_default_root(buf, sizeof buf), (int)strlen(want));
	assert_string_equal(buf, want);
	if (saved_root[0])
		setenv("SHMBUS_ROOT", saved_root, 1);
	if (saved_xdg[0])
		setenv("XDG_RUNTIME_DIR", saved_xdg, 1);
}

static void no_create_on_a_missing_root_is_enoent_naming_it(void **state)
{
	struct env *e = *state;
	char root[512];
	shmbus *bus = NULL;
	SHMBUS_OPTS(shmbus_open_opts, o, .root = root, .no_create = true);

	snprintf(root, sizeof root, "%s/missing", e->root);
	assert_int_equal(shmbus_open(&o, &bus), -ENOENT);
	assert_null(bus);
	assert_errmsg_has(root);
	/* an existing directory that is not a root */
	assert_int_equal(mkdir(root, 0700), 0);
	assert_int_equal(shmbus_open(&o, &bus), -ENOENT);
	assert_errmsg_has(root);
}

/* ------------------------------------------------------------------ */
/* Topics                                                              */

static void topic_is_created_described_listed_and_deleted(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 3, .capacity = 65536,
		    .policy = SHMBUS_POLICY_BACKPRESSURE, .retention_ms = 5000);
	SHMBUS_OPTS(shmbus_topic_info, info);
	struct shmbus_topic_info list[4] = { { .sz = sizeof list[0] } };
	struct shmbus_partition_info pi[3] = { { .sz = sizeof pi[0] }, { .sz = sizeof pi[0] },
					       { .sz = sizeof pi[0] } };
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	assert_ok(shmbus_topic_create(e->bus, "orders", &o));
	assert_ok(shmbus_topic_describe(e->bus, "orders", &info));
	assert_string_equal(info.name, "orders");
	assert_int_equal(info.partitions, 3);
	assert_int_equal(info.capacity, 65536);
	assert_int_equal(info.index_capacity, 65536 / 64);
	assert_int_equal(info.policy, SHMBUS_POLICY_BACKPRESSURE);
	assert_int_equal(info.retention_ms, 5000);
	assert_int_equal(info.numa_node, -1);
	assert_int_not_equal(info.id, 0);
	assert_true(info.created_ns >= (int64_t)ts.tv_sec * 1000000000 - 1000000000);
	make_topic(e->bus, "payments", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	assert_int_equal(shmbus_topic_list(e->bus, list, 4), 2);
	assert_int_equal(shmbus_topic_list(e->bus, list, 1), 2);
	for (uint32_t i = 0; i < 3; i++) {
		assert_ok(shmbus_partition_info(e->bus, "orders", i, &pi[i]));
		assert_int_equal(pi[i].capacity, 65536);
		assert_int_equal(pi[i].low, 0);
		assert_int_equal(pi[i].high, 0);
		assert_int_equal(pi[i].tail, 0);
		assert_int_equal(pi[i].policy, SHMBUS_POLICY_BACKPRESSURE);
		assert_false(pi[i].deleted);
		assert_int_not_equal(pi[i].epoch, 0);
	}
	assert_int_not_equal(pi[0].epoch, pi[1].epoch);
	assert_int_equal(shmbus_partition_info(e->bus, "orders", 3, &pi[0]), -EINVAL);
	assert_errmsg_has("orders");
	assert_ok(shmbus_topic_delete(e->bus, "orders"));
	assert_int_equal(shmbus_topic_describe(e->bus, "orders", &info), -ENOENT);
	assert_errmsg_has("\"orders\"");
	assert_int_equal(shmbus_topic_list(e->bus, list, 4), 1);
	assert_string_equal(list[0].name, "payments");
}

static void topic_errors_name_the_topic(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, bad_cap, .capacity = 5000);
	SHMBUS_OPTS(shmbus_topic_opts, bad_ret, .capacity = 4096, .retention_ms = -1);
	SHMBUS_OPTS(shmbus_topic_opts, too_many, .capacity = 4096, .partitions = 1000000);
	SHMBUS_OPTS(shmbus_topic_opts, bad_policy, .capacity = 4096, .policy = 7);
	SHMBUS_OPTS(shmbus_topic_info, info);
	shmbus_producer *p = NULL;

	assert_int_equal(shmbus_topic_create(e->bus, "bad/name", NULL), -EINVAL);
	assert_errmsg_has("bad/name");
	assert_int_equal(shmbus_topic_create(e->bus, "..", NULL), -EINVAL);
	assert_int_equal(shmbus_topic_create(e->bus, "", NULL), -EINVAL);
	assert_int_equal(shmbus_topic_create(e->bus, NULL, NULL), -EINVAL);
	assert_int_equal(shmbus_topic_create(e->bus, "capacity", &bad_cap), -EINVAL);
	assert_errmsg_has("\"capacity\"");
	assert_errmsg_has("5000");
	assert_int_equal(shmbus_topic_create(e->bus, "retention", &bad_ret), -EINVAL);
	assert_errmsg_has("\"retention\"");
	assert_int_equal(shmbus_topic_create(e->bus, "many", &too_many), -EINVAL);
	assert_errmsg_has("\"many\"");
	assert_int_equal(shmbus_topic_create(e->bus, "policy", &bad_policy), -EINVAL);
	assert_errmsg_has("\"policy\"");
	assert_int_equal(shmbus_topic_list(e->bus, NULL, 0), 0);
	make_topic(e->bus, "dup", 2, 4096, SHMBUS_POLICY_OVERWRITE);
	assert_int_equal(shmbus_topic_create(e->bus, "dup", NULL), -EEXIST);
	assert_errmsg_has("\"dup\"");
	assert_ok(shmbus_topic_describe(e->bus, "dup", &info));
	assert_int_equal(info.partitions, 2);
	assert_int_equal(shmbus_topic_delete(e->bus, "ghost"), -ENOENT);
	assert_errmsg_has("\"ghost\"");
	assert_int_equal(shmbus_topic_describe(e->bus, "ghost", &info), -ENOENT);
	assert_errmsg_has("\"ghost\"");
	assert_int_equal(shmbus_producer_new(e->bus, "ghost", NULL, &p), -ENOENT);
	assert_errmsg_has("\"ghost\"");
	assert_null(p);
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

static void record_round_trips_with_key_value_headers_and_timestamp(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	struct shmbus_header h[2] = {
		{ .name = "trace", .name_len = 5, .value = "t-1", .value_len = 3 },
		{ .name = "empty", .name_len = 5, .value = "", .value_len = 0 },
	};
	struct shmbus_record r = { .key = "k1", .key_len = 2, .value = "hello", .value_len = 5,
				   .headers = h, .header_count = 2, .timestamp_ns = 1700000000000000001LL };
	struct shmbus_message m[4];
	uint64_t off = 99;

	make_topic(e->bus, "t", 1, 65536, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_int_equal(shmbus_producer_partitions(p), 1);
	assert_ok(shmbus_consumer_assign(c, "t", 0, SHMBUS_OFFSET_BEGINNING));
	assert_int_equal(shmbus_producer_send(p, 0, &r, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(poll_now(c, m, 4), 1);
	assert_string_equal(m[0].topic, "t");
	assert_int_equal(m[0].partition, 0);
	assert_int_equal(m[0].offset, 0);
	assert_int_equal(m[0].timestamp_ns, 1700000000000000001LL);
	assert_int_equal(m[0].flags, 0);
	assert_int_equal(m[0].key_len, 2);
	assert_memory_equal(m[0].key, "k1", 2);
	assert_int_equal(m[0].value_len, 5);
	assert_memory_equal(m[0].value, "hello", 5);
	assert_int_equal(m[0].header_count, 2);
	assert_int_equal(shmbus_message_valid(&m[0]), 0);
	assert_int_equal(poll_now(c, m, 4), 0);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void null_key_empty_key_tombstone_and_default_timestamp(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	struct shmbus_record r[3] = {
		{ .key = NULL, .value = "v", .value_len = 1 },
		{ .key = "", .key_len = 0, .value = "", .value_len = 0 },
		{ .key = "gone", .key_len = 4, .value = NULL, .value_len = 123 },
	};
	struct shmbus_message m[4];
	struct timespec t0, t1;

	make_topic(e->bus, "t", 1, 65536, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	clock_gettime(CLOCK_REALTIME, &t0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(shmbus_producer_send(p, 0, &r[i], NULL), 0);
	clock_gettime(CLOCK_REALTIME, &t1);
	assert_int_equal(poll_now(c, m, 4), 3);
	assert_int_equal(m[0].flags, SHMBUS_MSG_KEY_NULL);
	assert_null(m[0].key);
	assert_int_equal(m[0].key_len, 0);
	assert_int_equal(m[1].flags, 0);
	assert_non_null(m[1].key); /* empty, not null */
	assert_int_equal(m[1].key_len, 0);
	assert_non_null(m[1].value);
	assert_int_equal(m[1].value_len, 0);
	assert_int_equal(m[2].flags, SHMBUS_MSG_VALUE_NULL);
	assert_null(m[2].value);
	assert_int_equal(m[2].value_len, 0);
	for (int i = 0; i < 3; i++) {
		int64_t lo = (int64_t)t0.tv_sec * 1000000000 + t0.tv_nsec - 1000000;
		int64_t hi = (int64_t)t1.tv_sec * 1000000000 + t1.tv_nsec + 1000000;

		if (m[i].timestamp_ns < lo || m[i].timestamp_ns > hi)
			fail_msg("default timestamp %lld is not the send time [%lld, %lld]",
				 (long long)m[i].timestamp_ns, (long long)lo, (long long)hi);
	}
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void headers_are_read_by_index_and_by_last_name(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	struct shmbus_header h[4] = {
		{ .name = "a", .name_len = 1, .value = "1", .value_len = 1 },
		{ .name = "b", .name_len = 1, .value = NULL },
		{ .name = "", .name_len = 0, .value = "x", .value_len = 1 },
		{ .name = "a", .name_len = 1, .value = "22", .value_len = 2 },
	};
	struct shmbus_record r = { .value = "v", .value_len = 1, .headers = h, .header_count = 4 };
	struct shmbus_message m[2];
	struct shmbus_header got;

	make_topic(e->bus, "t", 1, 65536, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_producer_send(p, 0, &r, NULL));
	assert_ok(shmbus_producer_send(p, 0, &r, NULL));
	for (int copy = 0; copy < 2; copy++) {
		SHMBUS_OPTS(shmbus_consumer_opts, o, .copy = copy);
		shmbus_consumer *c = consumer(e->bus, &o);

		assert_ok(shmbus_consumer_assign(c, "t", 0, copy));
		assert_int_equal(poll_now(c, m, 1), 1);
		assert_int_equal(m[0].header_count, 4);
		for (size_t i = 0; i < 4; i++) {
			assert_int_equal(shmbus_message_header(&m[0], i, &got), 0);
			assert_int_equal(got.name_len, h[i].name_len);
			assert_memory_equal(got.name, h[i].name, h[i].name_len);
			if (h[i].value) {
				assert_int_equal(got.value_len, h[i].value_len);
				assert_memory_equal(got.value, h[i].value, h[i].value_len);
			} else {
				assert_null(got.value);
			}
		}
		assert_int_equal(shmbus_message_header(&m[0], 4, &got), -ENOENT);
		assert_int_equal(shmbus_message_header_last(&m[0], "a", &got), 0);
		assert_int_equal(got.value_len, 2);
		assert_memory_equal(got.value, "22", 2);
		assert_int_equal(shmbus_message_header_last(&m[0], "b", &got), 0);
		assert_null(got.value);
		assert_int_equal(shmbus_message_header_last(&m[0], "", &got), 0);
		assert_memory_equal(got.value, "x", 1);
		assert_int_equal(shmbus_message_header_last(&m[0], "A", &got), -ENOENT);
		assert_int_equal(shmbus_message_header_last(&m[0], "ab", &got), -ENOENT);
		shmbus_consumer_free(c);
	}
	/* a message without headers */
	r.header_count = 0;
	r.headers = NULL;
	{
		shmbus_consumer *c = consumer(e->bus, NULL);

		assert_ok(shmbus_producer_send(p, 0, &r, NULL));
		assert_ok(shmbus_consumer_assign(c, "t", 0, 2));
		assert_int_equal(poll_now(c, m, 1), 1);
		assert_int_equal(m[0].header_count, 0);
		assert_int_equal(shmbus_message_header(&m[0], 0, &got), -ENOENT);
		assert_int_equal(shmbus_message_header_last(&m[0], "a", &got), -ENOENT);
		shmbus_consumer_free(c);
	}
	shmbus_producer_free(p);
}

/* Copies survive the ring being overwritten; views report it. */
static void copies_outlive_overwrites_and_views_report_them(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	SHMBUS_OPTS(shmbus_consumer_opts, oc, .copy = true);
	shmbus_consumer *cc = consumer(e->bus, &oc), *cv = consumer(e->bus, NULL);
	struct shmbus_message mc[8], mv[8];

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(cc, "t", 0, 0));
	assert_ok(shmbus_consumer_assign(cv, "t", 0, 0));
	send16_n(p, 0, 0, 8);
	assert_int_equal(poll_now(cc, mc, 8), 8);
	assert_int_equal(poll_now(cv, mv, 8), 8);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(shmbus_message_valid(&mv[i]), 0);
		assert_int_equal(shmbus_message_valid(&mc[i]), 0);
	}
	send16_n(p, 0, 1000, 64 * 3); /* three laps over them */
	for (int i = 0; i < 8; i++) {
		assert_int_equal(val16(&mc[i]), (uint64_t)i);
		assert_int_equal(mc[i].offset, (uint64_t)i);
		assert_int_equal(shmbus_message_valid(&mc[i]), 0);
		assert_int_equal(shmbus_message_valid(&mv[i]), -ERANGE);
	}
	shmbus_producer_free(p);
	shmbus_consumer_free(cc);
	shmbus_consumer_free(cv);
}

/* Copy mode across partitions and a buffer that has to grow mid-poll. */
static void copy_mode_keeps_every_record_of_a_large_poll(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .copy = true);
	shmbus_consumer *c = consumer(e->bus, &o);
	static struct shmbus_message m[200];
	static uint8_t big[20000];
	int n, seen[4] = { 0 };

	make_topic(e->bus, "t", 4, 1 << 20, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	for (int i = 0; i < 200; i++) {
		struct shmbus_record r = { .value = big, .value_len = 1000 + (size_t)i * 90 };

		memset(big, i, r.value_len);
		assert_int_equal(shmbus_producer_send(p, i % 4, &r, NULL), i % 4);
	}
	assert_ok(shmbus_consumer_assign(c, "t", SHMBUS_PARTITION_ANY, 0));
	n = poll_now(c, m, 200);
	assert_int_equal(n, 200);
	for (int k = 0; k < n; k++) {
		int i = (int)m[k].offset * 4 + m[k].partition;
		const uint8_t *v = m[k].value;

		assert_int_equal(m[k].value_len, 1000 + (size_t)i * 90);
		for (size_t b = 0; b < m[k].value_len; b++)
			if (v[b] != (uint8_t)i)
				fail_msg("copied record %d byte %zu is %d", i, b, v[b]);
		/* in offset order within a partition */
		assert_int_equal(m[k].offset, (uint64_t)seen[m[k].partition]++);
	}
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* ------------------------------------------------------------------ */
/* Partitions                                                          */

static void keyed_records_go_where_partition_for_says(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	static struct shmbus_message m[600];
	int where[500], n, rr[8] = { 0 };

	make_topic(e->bus, "t", 8, 1 << 16, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_int_equal(shmbus_producer_partitions(p), 8);
	for (int i = 0; i < 500; i++) {
		char key[32];
		int len = snprintf(key, sizeof key, "customer-%d", i * 7919);
		struct shmbus_record r = { .key = key, .key_len = (size_t)len, .value = &i, .value_len = 4 };

		where[i] = shmbus_producer_partition_for(p, key, (size_t)len);
		assert_true(where[i] >= 0 && where[i] < 8);
		assert_int_equal(shmbus_producer_send(p, SHMBUS_PARTITION_ANY, &r, NULL), where[i]);
	}
	assert_int_equal(shmbus_producer_partition_for(p, NULL, 3), -EINVAL);
	/* Kafka: murmur2("21") = -973932308, & 0x7fffffff = 1173551340 */
	assert_int_equal(shmbus_producer_partition_for(p, "21", 2), 1173551340 % 8);
	assert_ok(shmbus_consumer_assign(c, "t", SHMBUS_PARTITION_ANY, 0));
	n = poll_now(c, m, 600);
	assert_int_equal(n, 500);
	for (int k = 0; k < n; k++) {
		int i;

		memcpy(&i, m[k].value, 4);
		assert_int_equal(m[k].partition, where[i]);
	}
	/* without a key: round-robin over every partition */
	for (int i = 0; i < 16; i++) {
		struct shmbus_record r = { .value = "x", .value_len = 1 };
		int part = shmbus_producer_send(p, SHMBUS_PARTITION_ANY, &r, NULL);

		assert_true(part >= 0 && part < 8);
		rr[part]++;
	}
	for (int i = 0; i < 8; i++)
		assert_int_equal(rr[i], 2);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void bad_partition_numbers_are_einval_naming_the_topic(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	struct shmbus_record r = { .value = "x", .value_len = 1 };

	make_topic(e->bus, "four", 4, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "four");
	assert_int_equal(shmbus_producer_send(p, 4, &r, NULL), -EINVAL);
	assert_errmsg_has("\"four\"");
	assert_errmsg_has("4 partitions");
	assert_int_equal(shmbus_producer_send(p, -7, &r, NULL), -EINVAL);
	assert_int_equal(shmbus_consumer_assign(c, "four", 9, 0), -EINVAL);
	assert_errmsg_has("\"four\"");
	assert_int_equal(shmbus_consumer_assign(c, "nope", 0, 0), -ENOENT);
	assert_errmsg_has("\"nope\"");
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void batch_goes_in_order_to_the_right_partitions(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	static struct shmbus_record r[300];
	static char keys[300][16];
	static struct shmbus_message m[400];
	uint64_t next[4] = { 0 };
	int n;

	make_topic(e->bus, "t", 4, 1 << 16, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	for (int i = 0; i < 300; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i / 3); /* runs of equal keys */
		r[i] = (struct shmbus_record){ .key = keys[i], .key_len = strlen(keys[i]),
					       .value = &r[i], .value_len = sizeof(void *) };
	}
	assert_int_equal(shmbus_producer_send_batch(p, SHMBUS_PARTITION_ANY, r, 300), 300);
	assert_int_equal(shmbus_producer_send_batch(p, 2, r, 100), 100);
	assert_ok(shmbus_consumer_assign(c, "t", SHMBUS_PARTITION_ANY, 0));
	n = poll_now(c, m, 400);
	assert_int_equal(n, 400);
	for (int k = 0; k < n; k++) {
		const struct shmbus_record *src;

		memcpy(&src, m[k].value, sizeof src);
		assert_int_equal(m[k].offset, next[m[k].partition]++);
		if (src >= r && src < r + 300) {
			int i = (int)(src - r);

			assert_true(m[k].partition == 2 ||
				    m[k].partition == shmbus_producer_partition_for(p, keys[i], strlen(keys[i])));
			assert_memory_equal(m[k].key, keys[i], strlen(keys[i]));
		}
	}
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void zero_copy_claims_commit_and_abort(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	struct shmbus_record meta = { .key = "zc", .key_len = 2 };
	struct shmbus_claim a, b;
	struct shmbus_message m[4];

	make_topic(e->bus, "t", 1, 65536, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	assert_ok(shmbus_producer_claim(p, 0, &meta, 100, &a));
	assert_int_equal(a.offset, 0);
	assert_int_equal(a.partition, 0);
	assert_int_equal(a.value_cap, 100);
	assert_int_equal(poll_now(c, m, 4), 0); /* waits at the claim */
	memcpy(a.value, "in place", 8);
	assert_ok(shmbus_producer_commit(p, &a, 8));
	assert_int_equal(shmbus_producer_commit(p, &a, 8), -EINVAL); /* not live any more */
	assert_ok(shmbus_producer_claim(p, 0, &meta, 50, &b));
	assert_int_equal(b.offset, 1);
	assert_ok(shmbus_producer_abort(p, &b));
	assert_int_equal(shmbus_producer_abort(p, &b), -EINVAL);
	assert_ok(send16(p, 0, 7, NULL));
	assert_int_equal(poll_now(c, m, 4), 2);
	assert_int_equal(m[0].offset, 0);
	assert_int_equal(m[0].value_len, 8);
	assert_memory_equal(m[0].value, "in place", 8);
	assert_memory_equal(m[0].key, "zc", 2);
	assert_int_equal(m[0].flags, 0); /* a claim is never a tombstone */
	assert_int_equal(m[1].offset, 2);
	assert_int_equal(val16(&m[1]), 7);
	/* committing more than the claim holds aborts it: it is no longer
	 * live, and readers pass over its offset instead of waiting there */
	assert_ok(shmbus_producer_claim(p, 0, &meta, 10, &a));
	assert_int_equal(a.offset, 3);
	assert_int_equal(shmbus_producer_commit(p, &a, 11), -EINVAL);
	assert_errmsg_has("aborted");
	assert_int_equal(shmbus_producer_abort(p, &a), -EINVAL);
	assert_int_equal(shmbus_producer_commit(p, &a, 1), -EINVAL);
	assert_ok(send16(p, 0, 9, NULL));
	assert_int_equal(poll_now(c, m, 4), 1);
	assert_int_equal(m[0].offset, 4);
	assert_int_equal(val16(&m[0]), 9);
	assert_int_equal(shmbus_producer_claim(p, 0, &meta, 1 << 20, &a), -EMSGSIZE);
	assert_errmsg_has("t/0");
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void record_larger_than_half_the_ring_is_emsgsize(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	static uint8_t big[4096];
	struct shmbus_record r = { .value = big, .value_len = 2048 - 48 + 1 };

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_int_equal(shmbus_producer_send(p, 0, &r, NULL), -EMSGSIZE);
	assert_errmsg_has("t/0");
	r.value_len = 2048 - 48;
	assert_int_equal(shmbus_producer_send(p, 0, &r, NULL), 0);
	shmbus_producer_free(p);
}

/* Varied records over many laps of a small ring: every send succeeds
 * and a consumer following closely reads each one. */
static void sends_of_varied_sizes_keep_working_over_many_laps(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	struct shmbus_message m[4];
	static uint8_t val[1500];
	uint64_t off;

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	for (uint32_t i = 0; i < 5000; i++) {
		char key[16];
		int klen = snprintf(key, sizeof key, "id-%u", i);
		struct shmbus_record r = { .key = key, .key_len = (size_t)klen, .value = val,
					   .value_len = (i * 37) % 1400 };
		int rc;

		memset(val, (int)(i & 0xff), r.value_len);
		rc = shmbus_producer_send(p, 0, &r, &off);
		if (rc != 0)
			fail_msg("send %u (lap %u) = %d (%s): %s", i, i / 10, rc, shmbus_strerror(rc),
				 shmbus_errmsg());
		assert_int_equal(off, i);
		assert_int_equal(poll_now(c, m, 4), 1);
		assert_int_equal(m[0].offset, i);
		assert_int_equal(m[0].value_len, r.value_len);
		assert_memory_equal(m[0].key, key, (size_t)klen);
	}
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* ------------------------------------------------------------------ */
/* Positions                                                           */

static void seek_position_and_lag(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	struct shmbus_message m[16];
	uint64_t pos, lag;

	make_topic(e->bus, "t", 2, 1 << 16, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	send16_n(p, 0, 0, 100);
	send16_n(p, 1, 0, 30);
	assert_ok(shmbus_consumer_assign(c, "t", 0, SHMBUS_OFFSET_BEGINNING));
	assert_ok(shmbus_consumer_position(c, "t", 0, &pos));
	assert_int_equal(pos, 0);
	assert_ok(shmbus_consumer_lag(c, "t", 0, &lag));
	assert_int_equal(lag, 100);
	assert_int_equal(poll_now(c, m, 10), 10);
	assert_ok(shmbus_consumer_position(c, "t", 0, &pos));
	assert_int_equal(pos, 10);
	assert_ok(shmbus_consumer_lag(c, "t", 0, &lag));
	assert_int_equal(lag, 90);
	assert_ok(shmbus_consumer_seek(c, "t", 0, 50));
	assert_ok(shmbus_consumer_position(c, "t", 0, &pos));
	assert_int_equal(pos, 50);
	assert_int_equal(poll_now(c, m, 1), 1);
	assert_int_equal(m[0].offset, 50);
	assert_int_equal(val16(&m[0]), 50);
	assert_ok(shmbus_consumer_seek(c, "t", 0, SHMBUS_OFFSET_END));
	assert_ok(shmbus_consumer_lag(c, "t", 0, &lag));
	assert_int_equal(lag, 0);
	assert_int_equal(poll_now(c, m, 1), 0);
	assert_int_equal(shmbus_consumer_seek(c, "t", 0, 101), -ERANGE);
	assert_errmsg_has("t/0");
	assert_errmsg_has("holds offsets 0..99 (the next appended gets 100)");
	assert_int_equal(shmbus_consumer_seek(c, "t", 0, -9), -EINVAL);
	/* the failed seeks left the position alone */
	assert_ok(shmbus_consumer_position(c, "t", 0, &pos));
	assert_int_equal(pos, 100);
	/* lag of a whole topic sums its assigned partitions */
	assert_ok(shmbus_consumer_assign(c, "t", 1, 10));
	assert_ok(shmbus_consumer_lag(c, "t", SHMBUS_PARTITION_ANY, &lag));
	assert_int_equal(lag, 20);
	assert_int_equal(shmbus_consumer_position(c, "t", 3, &pos), -ENOENT);
	assert_int_equal(shmbus_consumer_seek(c, "other", 0, 0), -ENOENT);
	/* assigning again moves the position */
	assert_ok(shmbus_consumer_assign(c, "t", 0, 42));
	assert_ok(shmbus_consumer_position(c, "t", 0, &pos));
	assert_int_equal(pos, 42);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void seek_timestamp_finds_the_first_record_at_or_after(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	shmbus_consumer *c = consumer(e->bus, NULL);
	struct shmbus_message m[1];
	uint64_t pos;

	make_topic(e->bus, "t", 1, 1 << 16, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	for (int64_t i = 0; i < 200; i++) {
		struct shmbus_record r = { .value = "v", .value_len = 1, .timestamp_ns = 1000 + i * 10 };

		assert_ok(shmbus_producer_send(p, 0, &r, NULL));
	}
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	assert_ok(shmbus_consumer_seek_timestamp(c, "t", 0, 1000 + 77 * 10 - 3));
	assert_int_equal(poll_now(c, m, 1), 1);
	assert_int_equal(m[0].offset, 77);
	assert_ok(shmbus_consumer_seek_timestamp(c, "t", 0, 1000 + 120 * 10));
	assert_int_equal(poll_now(c, m, 1), 1);
	assert_int_equal(m[0].offset, 120);
	assert_ok(shmbus_consumer_seek_timestamp(c, "t", 0, 0));
	assert_ok(shmbus_consumer_position(c, "t", 0, &pos));
	assert_int_equal(pos, 0);
	assert_ok(shmbus_consumer_seek_timestamp(c, "t", 0, 999999));
	assert_ok(shmbus_consumer_position(c, "t", 0, &pos));
	assert_int_equal(pos, 200);
	assert_int_equal(shmbus_consumer_seek_timestamp(c, "t", 1, 0), -ENOENT);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* ------------------------------------------------------------------ */
/* Lapped consumers                                                    */

struct lapped {
	int calls;
	char topic[32];
	int32_t partition;
	uint64_t lost_from, resumed_at;
};

static void on_lapped(void *ctx, const char *topic, int32_t partition, uint64_t lost_from,
		      uint64_t resumed_at)
{
	struct lapped *l = ctx;

	l->calls++;
	snprintf(l->topic, sizeof l->topic, "%s", topic);
	l->partition = partition;
	l->lost_from = lost_from;
	l->resumed_at = resumed_at;
}

static void lapped_consumer_resets_to_the_earliest_record(void **state)
{
	struct env *e = *state;
	struct lapped l = { 0 };
	SHMBUS_OPTS(shmbus_consumer_opts, o, .reset = SHMBUS_RESET_EARLIEST, .on_lapped = on_lapped,
		    .ctx = &l);
	shmbus_consumer *c = consumer(e->bus, &o);
	shmbus_producer *p;
	SHMBUS_OPTS(shmbus_partition_info, pi);
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	struct shmbus_message m[8];

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	send16_n(p, 0, 0, 5);
	assert_int_equal(poll_now(c, m, 2), 2);
	send16_n(p, 0, 5, 300);
	assert_ok(shmbus_partition_info(e->bus, "t", 0, &pi));
	assert_int_equal(pi.high, 305);
	assert_int_equal(pi.low, 305 - 63);
	assert_int_equal(poll_now(c, m, 8), 8);
	assert_int_equal(l.calls, 1);
	assert_string_equal(l.topic, "t");
	assert_int_equal(l.partition, 0);
	assert_int_equal(l.lost_from, 2);
	assert_int_equal(l.resumed_at, pi.low);
	assert_int_equal(m[0].offset, pi.low);
	assert_int_equal(val16(&m[0]), pi.low);
	assert_int_equal(m[7].offset, pi.low + 7);
	assert_ok(shmbus_consumer_stats(c, &st));
	assert_int_equal(st.laps, 1);
	assert_int_equal(st.lost, pi.low - 2);
	assert_int_equal(st.delivered, 10);
	assert_ok(shmbus_partition_info(e->bus, "t", 0, &pi));
	assert_int_equal(pi.lapped_reads, 1);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void lapped_consumer_resets_to_the_latest_record(void **state)
{
	struct env *e = *state;
	struct lapped l = { 0 };
	SHMBUS_OPTS(shmbus_consumer_opts, o, .reset = SHMBUS_RESET_LATEST, .on_lapped = on_lapped,
		    .ctx = &l);
	shmbus_consumer *c = consumer(e->bus, &o);
	shmbus_producer *p;
	struct shmbus_message m[8];
	uint64_t off;

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	send16_n(p, 0, 0, 300);
	assert_int_equal(poll_now(c, m, 8), 0);
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.lost_from, 0);
	assert_int_equal(l.resumed_at, 300);
	assert_ok(send16(p, 0, 300, &off));
	assert_int_equal(poll_now(c, m, 8), 1);
	assert_int_equal(m[0].offset, 300);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* A consumer waiting at the padding at the ring's end, which the next
 * lap overwrites before the record after it: that record is still held,
 * so it is delivered, and no lap is reported (not even with reset=error). */
static void overwritten_padding_before_a_held_record_is_no_lap(void **state)
{
	struct env *e = *state;
	struct lapped l = { 0 };
	SHMBUS_OPTS(shmbus_consumer_opts, o, .reset = SHMBUS_RESET_ERROR, .on_lapped = on_lapped,
		    .ctx = &l);
	shmbus_consumer *c = consumer(e->bus, &o);
	shmbus_producer *p;
	SHMBUS_OPTS(shmbus_partition_info, pi);
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	struct shmbus_message m[8];
	static uint8_t v[1000];
	struct shmbus_record big = { .value = v, .value_len = 1000 }; /* 1048-byte frames */
	struct shmbus_record small = { .value = v, .value_len = 100 };

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	for (int i = 0; i < 3; i++) /* [0, 3144) */
		assert_ok(shmbus_producer_send(p, 0, &big, NULL));
	assert_int_equal(poll_now(c, m, 8), 3); /* the cursor waits at 3144 */
	for (int i = 0; i < 3; i++) /* padding [3144, 4096), then [4096, 7240) */
		assert_ok(shmbus_producer_send(p, 0, &big, NULL));
	assert_ok(shmbus_producer_send(p, 0, &small, NULL)); /* over the padding's word */
	assert_ok(shmbus_partition_info(e->bus, "t", 0, &pi));
	assert_int_equal(pi.tail, 7240 + 152);
	assert_int_equal(pi.low, 3);
	assert_int_equal(poll_now(c, m, 8), 4);
	assert_int_equal(m[0].offset, 3);
	assert_int_equal(m[3].offset, 6);
	assert_int_equal(m[3].value_len, 100);
	assert_int_equal(l.calls, 0);
	assert_ok(shmbus_consumer_stats(c, &st));
	assert_int_equal(st.laps, 0);
	assert_int_equal(st.lost, 0);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void lapped_consumer_with_reset_error_gets_erange_until_it_seeks(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .reset = SHMBUS_RESET_ERROR);
	shmbus_consumer *c = consumer(e->bus, &o);
	shmbus_producer *p;
	struct shmbus_message m[8];
	uint64_t pos;

	make_topic(e->bus, "lapme", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "lapme");
	assert_ok(shmbus_consumer_assign(c, "lapme", 0, 0));
	send16_n(p, 0, 0, 300);
	assert_int_equal(shmbus_consumer_poll(c, m, 8, 0), -ERANGE);
	assert_errmsg_has("lapme/0");
	assert_int_equal(shmbus_consumer_poll(c, m, 8, 0), -ERANGE);
	assert_ok(shmbus_consumer_position(c, "lapme", 0, &pos));
	assert_int_equal(pos, 0);
	assert_ok(shmbus_consumer_seek(c, "lapme", 0, SHMBUS_OFFSET_BEGINNING));
	assert_int_equal(poll_now(c, m, 8), 8);
	assert_int_equal(m[0].offset, 300 - 63);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* Assigning at an offset already overwritten is refused, naming the
 * partition; the oldest held offset is accepted. */
static void assign_to_an_overwritten_offset_is_erange(void **state)
{
	struct env *e = *state;
	shmbus_consumer *c = consumer(e->bus, NULL);
	shmbus_producer *p;

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	send16_n(p, 0, 0, 300);
	assert_int_equal(shmbus_consumer_assign(c, "t", 0, 5), -ERANGE);
	assert_errmsg_has("t/0");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 300 - 63));
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* ------------------------------------------------------------------ */
/* Groups                                                              */

struct names {
	int n;
	char name[4][32];
};

static int collect_group(void *ctx, const char *group)
{
	struct names *g = ctx;

	if (g->n < 4)
		snprintf(g->name[g->n], sizeof g->name[0], "%s", group);
	g->n++;
	return 0;
}

struct offsets {
	int n;
	uint64_t sum;
	char topic[32];
};

static int collect_offset(void *ctx, const char *topic, int32_t partition, uint64_t offset,
			  int64_t commit_ns)
{
	struct offsets *o = ctx;

	assert_true(commit_ns > 0);
	snprintf(o->topic, sizeof o->topic, "%s", topic);
	o->n++;
	o->sum += offset * 10 + (uint64_t)partition;
	return 0;
}

static void group_commits_are_read_back_and_resume_a_consumer(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .group = "billing");
	shmbus_consumer *c = consumer(e->bus, &o), *c2;
	shmbus_producer *p;
	struct shmbus_message m[8];
	struct names g = { 0 };
	struct offsets off = { 0 };
	uint64_t got, pos;

	make_topic(e->bus, "t", 2, 1 << 16, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	send16_n(p, 0, 0, 20);
	send16_n(p, 1, 0, 20);
	assert_ok(shmbus_consumer_assign(c, "t", 0, SHMBUS_OFFSET_COMMITTED));
	assert_int_equal(shmbus_consumer_committed(c, "t", 0, &got), -ENOENT);
	assert_errmsg_has("billing");
	/* no commit yet: the reset policy (latest) decides */
	assert_ok(shmbus_consumer_position(c, "t", 0, &pos));
	assert_int_equal(pos, 20);
	assert_ok(shmbus_consumer_seek(c, "t", 0, 0));
	assert_int_equal(poll_now(c, m, 5), 5);
	assert_ok(shmbus_consumer_commit(c));
	assert_ok(shmbus_consumer_committed(c, "t", 0, &got));
	assert_int_equal(got, 5);
	assert_ok(shmbus_consumer_commit_offset(c, "t", 1, 7));
	assert_ok(shmbus_consumer_committed(c, "t", 1, &got));
	assert_int_equal(got, 7);
	assert_int_equal(shmbus_consumer_commit_offset(c, "t", 2, 7), -EINVAL);
	/* another member of the group starts where the group left off */
	c2 = consumer(e->bus, &o);
	assert_ok(shmbus_consumer_assign(c2, "t", SHMBUS_PARTITION_ANY, SHMBUS_OFFSET_COMMITTED));
	assert_ok(shmbus_consumer_position(c2, "t", 0, &pos));
	assert_int_equal(pos, 5);
	assert_ok(shmbus_consumer_position(c2, "t", 1, &pos));
	assert_int_equal(pos, 7);
	assert_int_equal(poll_now(c2, m, 1), 1);
	assert_true((m[0].partition == 0 && m[0].offset == 5) || (m[0].partition == 1 && m[0].offset == 7));
	assert_ok(shmbus_group_list(e->bus, collect_group, &g));
	assert_int_equal(g.n, 1);
	assert_string_equal(g.name[0], "billing");
	assert_ok(shmbus_group_offsets(e->bus, "billing", collect_offset, &off));
	assert_int_equal(off.n, 2);
	assert_int_equal(off.sum, 5 * 10 + 0 + 7 * 10 + 1);
	assert_string_equal(off.topic, "t");
	assert_ok(shmbus_group_delete(e->bus, "billing"));
	assert_int_equal(shmbus_group_delete(e->bus, "billing"), -ENOENT);
	assert_int_equal(shmbus_group_offsets(e->bus, "billing", collect_offset, &off), -ENOENT);
	shmbus_consumer_free(c2);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void committed_start_without_a_commit_follows_the_reset_policy(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, early, .group = "g1", .reset = SHMBUS_RESET_EARLIEST);
	SHMBUS_OPTS(shmbus_consumer_opts, err, .group = "g2", .reset = SHMBUS_RESET_ERROR);
	shmbus_consumer *c1 = consumer(e->bus, &early), *c2 = consumer(e->bus, &err), *c3;
	shmbus_producer *p;
	uint64_t pos;

	make_topic(e->bus, "t", 1, 1 << 16, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	send16_n(p, 0, 0, 10);
	assert_ok(shmbus_consumer_assign(c1, "t", 0, SHMBUS_OFFSET_COMMITTED));
	assert_ok(shmbus_consumer_position(c1, "t", 0, &pos));
	assert_int_equal(pos, 0);
	assert_int_equal(shmbus_consumer_assign(c2, "t", 0, SHMBUS_OFFSET_COMMITTED), -ERANGE);
	assert_errmsg_has("g2");
	/* without a group: commits are refused */
	c3 = consumer(e->bus, NULL);
	assert_ok(shmbus_consumer_assign(c3, "t", 0, 0));
	assert_int_equal(shmbus_consumer_commit(c3), -EINVAL);
	assert_int_equal(shmbus_consumer_committed(c3, "t", 0, &pos), -EINVAL);
	shmbus_consumer_free(c3);
	shmbus_producer_free(p);
	shmbus_consumer_free(c2);
	shmbus_consumer_free(c1);
}

/* ------------------------------------------------------------------ */
/* Backpressure                                                        */

static void backpressure_holds_the_producer_behind_a_registered_consumer(void **state)
{
	struct env *e = *state;
	shmbus_consumer *c = consumer(e->bus, NULL);
	SHMBUS_OPTS(shmbus_consumer_opts, free_o, .no_register = true);
	shmbus_consumer *free_c = consumer(e->bus, &free_o);
	shmbus_producer *p;
	SHMBUS_OPTS(shmbus_partition_info, pi);
	struct shmbus_message m[128];
	uint64_t n = 0;
	int rc, got = 0;

	make_topic(e->bus, "bp", 1, 4096, SHMBUS_POLICY_BACKPRESSURE);
	p = producer(e->bus, "bp");
	assert_ok(shmbus_consumer_assign(c, "bp", 0, 0));
	assert_ok(shmbus_consumer_assign(free_c, "bp", 0, 0));
	while ((rc = send16(p, 0, n, NULL)) == 0)
		n++;
	assert_int_equal(rc, -EAGAIN);
	assert_errmsg_has("bp/0");
	assert_errmsg_has("backpressure");
	assert_int_equal(n, (4096 - 8) / 64);
	assert_ok(shmbus_partition_info(e->bus, "bp", 0, &pi));
	assert_int_equal(pi.registered_consumers, 1);
	assert_int_equal(pi.min_consumer_lag, n);
	assert_true(pi.backpressure_blocks >= 1);
	/* views of a poll stay whole while the producer is held back */
	assert_int_equal(poll_now(c, m, 128), (int)n);
	assert_int_equal(send16(p, 0, n, NULL), -EAGAIN);
	for (uint64_t i = 0; i < n; i++) {
		assert_int_equal(shmbus_message_valid(&m[i]), 0);
		assert_int_equal(val16(&m[i]), i);
	}
	/* the next poll releases them */
	assert_int_equal(poll_now(c, m, 128), 0);
	assert_ok(send16(p, 0, n, NULL));
	assert_int_equal(poll_now(c, m, 128), 1);
	assert_int_equal(m[0].offset, n);
	/* a consumer that leaves no longer holds anyone back */
	shmbus_consumer_free(c);
	for (int i = 0; i < 300; i++)
		assert_ok(send16(p, 0, n + 1 + (uint64_t)i, NULL));
	got = shmbus_consumer_poll(free_c, m, 128, 0); /* it never registered: it was lapped */
	assert_true(got >= 0);
	shmbus_producer_free(p);
	shmbus_consumer_free(free_c);
}

static void blocking_producer_gives_up_after_its_timeout(void **state)
{
	struct env *e = *state;
	shmbus_consumer *c = consumer(e->bus, NULL);
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true, .block_timeout_ms = 100);
	shmbus_producer *p = NULL;
	int64_t t0, ms;
	uint64_t n = 0;

	make_topic(e->bus, "bp", 1, 4096, SHMBUS_POLICY_BACKPRESSURE);
	assert_ok(shmbus_producer_new(e->bus, "bp", &po, &p));
	assert_ok(shmbus_consumer_assign(c, "bp", 0, SHMBUS_OFFSET_END));
	for (; n < (4096 - 8) / 64; n++)
		assert_ok(send16(p, 0, n, NULL));
	t0 = tu_ms();
	assert_int_equal(send16(p, 0, n, NULL), -EAGAIN);
	ms = tu_ms() - t0;
	if (ms < 100 || ms > 5000)
		fail_msg("a blocking send gave up after %lld ms, not about 100", (long long)ms);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* ------------------------------------------------------------------ */
/* Deletion                                                            */

static void deleted_topic_gives_eidrm_to_producers_and_consumers(void **state)
{
	struct env *e = *state;
	shmbus_consumer *c = consumer(e->bus, NULL);
	shmbus_producer *p;
	struct shmbus_message m[4];
	SHMBUS_OPTS(shmbus_partition_info, pi);

	make_topic(e->bus, "doomed", 2, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "doomed");
	assert_ok(shmbus_consumer_assign(c, "doomed", SHMBUS_PARTITION_ANY, 0));
	send16_n(p, 0, 0, 3);
	assert_ok(shmbus_topic_delete(e->bus, "doomed"));
	assert_int_equal(send16(p, 0, 3, NULL), -EIDRM);
	assert_errmsg_has("\"doomed\"");
	assert_int_equal(send16(p, 1, 3, NULL), -EIDRM);
	assert_int_equal(shmbus_consumer_poll(c, m, 4, 0), -EIDRM);
	assert_errmsg_has("\"doomed\"");
	assert_int_equal(shmbus_partition_info(e->bus, "doomed", 0, &pi), -ENOENT);
	assert_ok(shmbus_consumer_unassign(c, "doomed", SHMBUS_PARTITION_ANY));
	assert_int_equal(shmbus_consumer_poll(c, m, 4, 0), -EINVAL);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void recreated_topic_is_new_and_old_handles_stay_refused(void **state)
{
	struct env *e = *state;
	shmbus_consumer *old_c = consumer(e->bus, NULL), *new_c = consumer(e->bus, NULL);
	shmbus_producer *old_p, *new_p;
	SHMBUS_OPTS(shmbus_topic_info, before);
	SHMBUS_OPTS(shmbus_topic_info, after);
	struct shmbus_message m[8];
	uint64_t off;

	make_topic(e->bus, "phoenix", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	assert_ok(shmbus_topic_describe(e->bus, "phoenix", &before));
	old_p = producer(e->bus, "phoenix");
	assert_ok(shmbus_consumer_assign(old_c, "phoenix", 0, 0));
	send16_n(old_p, 0, 0, 5);
	assert_ok(shmbus_topic_delete(e->bus, "phoenix"));
	make_topic(e->bus, "phoenix", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	assert_ok(shmbus_topic_describe(e->bus, "phoenix", &after));
	assert_true(after.id > before.id);
	assert_int_equal(send16(old_p, 0, 99, NULL), -EIDRM);
	assert_int_equal(shmbus_consumer_poll(old_c, m, 8, 0), -EIDRM);
	new_p = producer(e->bus, "phoenix");
	assert_ok(send16(new_p, 0, 1000, &off));
	assert_int_equal(off, 0);
	assert_ok(shmbus_consumer_assign(new_c, "phoenix", 0, SHMBUS_OFFSET_BEGINNING));
	assert_int_equal(poll_now(new_c, m, 8), 1);
	assert_int_equal(val16(&m[0]), 1000);
	/* still refused after the new topic is in use */
	assert_int_equal(send16(old_p, 0, 99, NULL), -EIDRM);
	shmbus_producer_free(old_p);
	shmbus_producer_free(new_p);
	shmbus_consumer_free(old_c);
	shmbus_consumer_free(new_c);
}

/* ------------------------------------------------------------------ */
/* Partition numbers, recovery, claims of live producers               */

static void partition_info_counts_what_happened(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;
	SHMBUS_OPTS(shmbus_partition_info, pi);
	SHMBUS_OPTS(shmbus_recovery, r);

	make_topic(e->bus, "t", 1, 1 << 16, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	send16_n(p, 0, 0, 25);
	assert_ok(shmbus_partition_info(e->bus, "t", 0, &pi));
	assert_int_equal(pi.low, 0);
	assert_int_equal(pi.high, 25);
	assert_int_equal(pi.tail, 25 * 64);
	assert_int_equal(pi.capacity, 1 << 16);
	assert_int_equal(pi.registered_consumers, 0);
	assert_int_equal(pi.recoveries, 0);
	assert_ok(shmbus_partition_recover(e->bus, "t", 0, &r));
	assert_int_equal(r.first_offset, 0);
	assert_int_equal(r.end_offset, 25);
	assert_int_equal(r.frames, 25);
	assert_int_equal(r.cut, 0);
	assert_false(r.rebuilt);
	assert_string_equal(r.reason, "");
	assert_ok(shmbus_partition_info(e->bus, "t", 0, &pi));
	assert_int_equal(pi.recoveries, 1);
	assert_int_equal(shmbus_partition_recover(e->bus, "t", 1, &r), -EINVAL);
	shmbus_producer_free(p);
}

/* A damaged record is refused with check_crc, and the consumer goes on
 * after it.  The record's byte is changed in the partition file, at the
 * place docs/format.md gives it. */
static void check_crc_refuses_a_damaged_record_and_moves_past_it(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .check_crc = true);
	shmbus_consumer *c = consumer(e->bus, &o);
	shmbus_producer *p;
	struct shmbus_message m[8];
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	char path[512];
	uint8_t byte;
	int fd, n;
	/* capacity 4096, 64 index slots: data after the 12288-byte header
	 * and one page of index (format.md §1) */
	off_t data = 12288 + 4096, at = data + 3 * 64 + 48 + 5;

	SHMBUS_OPTS(shmbus_topic_opts, to, .capacity = 4096, .index_capacity = 64);
	assert_ok(shmbus_topic_create(e->bus, "crc", &to));
	p = producer(e->bus, "crc");
	send16_n(p, 0, 0, 6);
	snprintf(path, sizeof path, "%s/topics/crc/0", e->root);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, at), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, at), 1);
	close(fd);
	assert_ok(shmbus_consumer_assign(c, "crc", 0, 0));
	n = shmbus_consumer_poll(c, m, 8, 0);
	assert_int_equal(n, 3); /* the good ones before it */
	assert_int_equal(shmbus_consumer_poll(c, m, 8, 0), -EBADMSG);
	assert_errmsg_has("crc/0");
	assert_errmsg_has("offset 3");
	n = poll_now(c, m, 8);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].offset, 4);
	assert_ok(shmbus_consumer_stats(c, &st));
	assert_int_equal(st.crc_errors, 1);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* A claim whose producer is alive is never aborted by consumers, however
 * long it stalls; they wait, and read it once it is committed. */
static void consumers_wait_for_a_live_producers_claim(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .unblock_timeout_ms = 10, .spin_us = -1);
	shmbus_consumer *c = consumer(e->bus, &o);
	shmbus_producer *p, *q;
	struct shmbus_record meta = { 0 };
	struct shmbus_claim cl;
	struct shmbus_message m[4];
	SHMBUS_OPTS(shmbus_consumer_stats, st);

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	q = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	assert_ok(shmbus_producer_claim(p, 0, &meta, 16, &cl));
	assert_ok(send16(q, 0, 1, NULL));
	assert_int_equal(shmbus_consumer_poll(c, m, 4, 60), 0);
	assert_ok(shmbus_consumer_stats(c, &st));
	assert_int_equal(st.unblocked, 0);
	memset(cl.value, 0, 16);
	assert_ok(shmbus_producer_commit(p, &cl, 16));
	assert_int_equal(poll_now(c, m, 4), 2);
	assert_int_equal(m[0].offset, 0);
	assert_int_equal(m[1].offset, 1);
	shmbus_producer_free(q);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

/* In a child: two producers of this process claim offsets 0 and 1, and
 * the process dies without committing either. */
static int claim_two_and_die(void *arg)
{
	SHMBUS_OPTS(shmbus_open_opts, o, .root = arg);
	shmbus *bus = NULL;
	shmbus_producer *p[2] = { NULL, NULL };
	struct shmbus_record meta = { 0 };
	struct shmbus_claim cl;

	if (shmbus_open(&o, &bus))
		return 1;
	for (int i = 0; i < 2; i++)
		if (shmbus_producer_new(bus, "t", NULL, &p[i]) ||
		    shmbus_producer_claim(p[i], 0, &meta, 16, &cl) || cl.offset != (uint64_t)i)
			return 2;
	return 0;
}

/*
 * A consumer that found a producer dead aborts that process's later
 * claims at once: one unblock timeout for all of them, not one each.
 */
static void dead_producers_later_claims_are_aborted_after_one_timeout(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .unblock_timeout_ms = 400);
	shmbus_consumer *c = consumer(e->bus, &o);
	shmbus_producer *p;
	struct shmbus_message m[4];
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	int64_t t0, ms;
	int n = 0;

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	assert_int_equal(tu_wait(tu_fork(claim_two_and_die, e->root), 10000), 0);
	p = producer(e->bus, "t");
	assert_ok(send16(p, 0, 2, NULL));
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	t0 = tu_ms();
	while (n == 0 && tu_ms() - t0 < 5000) {
		n = shmbus_consumer_poll(c, m, 4, 1000);
		assert_true(n >= 0);
	}
	ms = tu_ms() - t0;
	assert_int_equal(n, 1);
	assert_int_equal(m[0].offset, 2);
	assert_int_equal(val16(&m[0]), 2);
	assert_ok(shmbus_consumer_stats(c, &st));
	assert_int_equal(st.unblocked, 2);
	if (ms < 390 || ms >= 790)
		fail_msg("the two dead claims were passed after %lld ms; one timeout is 400 ms",
			 (long long)ms);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void poll_timeout_waits_about_that_long(void **state)
{
	struct env *e = *state;
	shmbus_consumer *c = consumer(e->bus, NULL);
	struct shmbus_message m[1];
	int64_t t0, ms;

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	t0 = tu_ms();
	assert_int_equal(shmbus_consumer_poll(c, m, 1, 50), 0);
	ms = tu_ms() - t0;
	assert_true(ms >= 49 && ms < 5000);
	assert_int_equal(shmbus_consumer_poll(c, m, 0, 0), 0);
	shmbus_consumer_free(c);
}

/* ------------------------------------------------------------------ */
/* Conventions                                                         */

/* A caller built against an older header passes a smaller struct: the
 * fields past its `sz` are not read, whatever the memory holds there. */
static void options_from_an_older_caller_are_read_up_to_their_size(void **state)
{
	struct env *e = *state;
	struct shmbus_topic_opts to = { .sz = offsetof(struct shmbus_topic_opts, capacity),
					.partitions = 2, .capacity = 12345, .index_capacity = 7,
					.policy = 9, .retention_ms = -5 };
	struct shmbus_consumer_opts co = { .sz = offsetof(struct shmbus_consumer_opts, reset),
					   .group = "old", .reset = 99, .spin_us = 1 };
	struct shmbus_open_opts oo = { .sz = sizeof(size_t), .root = "/nonexistent/never" };
	SHMBUS_OPTS(shmbus_topic_info, info);
	shmbus_consumer *c = NULL;
	shmbus *bus = NULL;
	char saved[512] = "", *env = getenv("SHMBUS_ROOT");

	assert_ok(shmbus_topic_create(e->bus, "old", &to));
	assert_ok(shmbus_topic_describe(e->bus, "old", &info));
	assert_int_equal(info.partitions, 2);
	assert_int_equal(info.capacity, SHMBUS_DEFAULT_CAPACITY);
	assert_int_equal(info.policy, SHMBUS_POLICY_OVERWRITE);
	assert_int_equal(info.retention_ms, 0);
	assert_ok(shmbus_consumer_new(e->bus, &co, &c));
	assert_ok(shmbus_consumer_assign(c, "old", 0, 0));
	assert_ok(shmbus_consumer_commit(c)); /* the group was read */
	shmbus_consumer_free(c);
	if (env)
		snprintf(saved, sizeof saved, "%s", env);
	setenv("SHMBUS_ROOT", e->root, 1);
	assert_ok(shmbus_open(&oo, &bus));
	assert_string_equal(shmbus_root(bus), e->root);
	shmbus_close(bus);
	if (saved[0])
		setenv("SHMBUS_ROOT", saved, 1);
	else
		unsetenv("SHMBUS_ROOT");
}

static void consumer_options_are_checked(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, bad_reset, .reset = 3);
	SHMBUS_OPTS(shmbus_consumer_opts, bad_group, .group = "no/slash");
	shmbus_consumer *c = NULL;

	assert_int_equal(shmbus_consumer_new(e->bus, &bad_reset, &c), -EINVAL);
	assert_int_equal(shmbus_consumer_new(e->bus, &bad_group, &c), -EINVAL);
	assert_errmsg_has("no/slash");
	assert_null(c);
	c = consumer(e->bus, NULL);
	assert_int_equal(shmbus_consumer_poll(c, NULL, 0, 0), -EINVAL); /* nothing assigned */
	assert_int_equal(shmbus_consumer_unassign(c, "t", 0), -ENOENT);
	shmbus_consumer_free(c);
}

static void destructors_accept_null(void **state)
{
	(void)state;
	shmbus_close(NULL);
	shmbus_producer_free(NULL);
	shmbus_consumer_free(NULL);
}

static void error_texts_name_the_bus_meanings(void **state)
{
	static const struct {
		int err;
		const char *word;
	} texts[] = {
		{ EAGAIN, "consumer" }, { ERANGE, "out of range" }, { EIDRM, "deleted" },
		{ ECANCELED, "aborted" }, { EMSGSIZE, "larger" }, { EBADMSG, "damaged" },
		{ EPROTO, "version" }, { EROFS, "read-only" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		if (!strstr(shmbus_strerror(-texts[i].err), texts[i].word))
			fail_msg("shmbus_strerror(-%d) = \"%s\"", texts[i].err,
				 shmbus_strerror(-texts[i].err));
		assert_string_equal(shmbus_strerror(texts[i].err), shmbus_strerror(-texts[i].err));
	}
	assert_string_equal(shmbus_strerror(0), "success");
	assert_string_equal(shmbus_strerror(-ENOENT), strerror(ENOENT));
	assert_string_equal(shmbus_strerror(-EEXIST), strerror(EEXIST));
}

/* Copy mode keeps an empty value and an empty key apart from null ones,
 * even when the first records a consumer copies hold no bytes at all (it
 * had no copy buffer yet, and handed out NULL for both). */
static void copies_keep_empty_apart_from_null(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .copy = true);
	shmbus_consumer *c = consumer(e->bus, &o);
	shmbus_producer *p;
	struct shmbus_record empty = { .key = "", .key_len = 0, .value = "", .value_len = 0 };
	struct shmbus_record null = { 0 };
	struct shmbus_message m[4];

	make_topic(e->bus, "t", 1, 4096, SHMBUS_POLICY_OVERWRITE);
	p = producer(e->bus, "t");
	assert_ok(shmbus_consumer_assign(c, "t", 0, 0));
	assert_ok(shmbus_producer_send(p, 0, &empty, NULL));
	assert_int_equal(poll_now(c, m, 4), 1);
	assert_non_null(m[0].value);
	assert_non_null(m[0].key);
	assert_int_equal(m[0].flags, 0);
	assert_ok(shmbus_producer_send(p, 0, &null, NULL));
	assert_int_equal(poll_now(c, m, 4), 1);
	assert_null(m[0].value);
	assert_null(m[0].key);
	assert_int_equal(m[0].flags, SHMBUS_MSG_KEY_NULL | SHMBUS_MSG_VALUE_NULL);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(open_makes_the_root_layout),
		T(nested_root_is_created_and_reopened),
		T(default_root_honours_the_environment),
		T(no_create_on_a_missing_root_is_enoent_naming_it),
		T(topic_is_created_described_listed_and_deleted),
		T(topic_errors_name_the_topic),
		T(record_round_trips_with_key_value_headers_and_timestamp),
		T(null_key_empty_key_tombstone_and_default_timestamp),
		T(headers_are_read_by_index_and_by_last_name),
		T(copies_outlive_overwrites_and_views_report_them),
		T(copy_mode_keeps_every_record_of_a_large_poll),
		T(keyed_records_go_where_partition_for_says),
		T(bad_partition_numbers_are_einval_naming_the_topic),
		T(batch_goes_in_order_to_the_right_partitions),
		T(zero_copy_claims_commit_and_abort),
		T(record_larger_than_half_the_ring_is_emsgsize),
		T(sends_of_varied_sizes_keep_working_over_many_laps),
		T(seek_position_and_lag),
		T(seek_timestamp_finds_the_first_record_at_or_after),
		T(lapped_consumer_resets_to_the_earliest_record),
		T(lapped_consumer_resets_to_the_latest_record),
		T(overwritten_padding_before_a_held_record_is_no_lap),
		T(lapped_consumer_with_reset_error_gets_erange_until_it_seeks),
		T(assign_to_an_overwritten_offset_is_erange),
		T(group_commits_are_read_back_and_resume_a_consumer),
		T(committed_start_without_a_commit_follows_the_reset_policy),
		T(backpressure_holds_the_producer_behind_a_registered_consumer),
		T(blocking_producer_gives_up_after_its_timeout),
		T(deleted_topic_gives_eidrm_to_producers_and_consumers),
		T(recreated_topic_is_new_and_old_handles_stay_refused),
		T(partition_info_counts_what_happened),
		T(check_crc_refuses_a_damaged_record_and_moves_past_it),
		T(consumers_wait_for_a_live_producers_claim),
		T(dead_producers_later_claims_are_aborted_after_one_timeout),
		T(poll_timeout_waits_about_that_long),
		T(options_from_an_older_caller_are_read_up_to_their_size),
		T(consumer_options_are_checked),
		T(destructors_accept_null),
		T(error_texts_name_the_bus_meanings),
		T(copies_keep_empty_apart_from_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
