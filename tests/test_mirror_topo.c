/*
 * test_mirror_topo.c - mirroring topologies between three real shmbusd,
 * each in a network namespace of its own on one bridge
 * (tests/lib/netlab.c; issue #9 "Topologies").  Needs root and
 * `ip netns`; skips with the reason otherwise.
 *
 *  - fan-out: B and C both mirror A's "orders"; each replica is
 *    byte-identical to A's partitions, and A's metrics count two
 *    mirrors.
 *  - a chain: B mirrors A, and C mirrors B's replica (B serves its
 *    replicas through its own [mirror-listen]); C is byte-identical to A,
 *    aborted claims on A included (they travel as aborted ranges).  The
 *    lag in records and in milliseconds comes back to 0 on both hops
 *    (the library, `shmbus mirror status` and --json say so), and the
 *    metrics say what came through.
 *  - some topics: B mirrors `orders, metrics.*` of A's orders,
 *    metrics.cpu, metrics.mem, logs and metricsx: the first three are
 *    mirrored, byte-identical, the other two are not.
 */
#include "lib/clirun.h"
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PARTS   2
#define WAIT_MS 20000

static const char listen_a[] = "metrics = 10.201.0.1:9465\n\n[mirror-listen]\n"
			       "address = 10.201.0.1:9093\ntls = off\ntimeout_ms = 2000\n";

static int setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 3);
	return 0;
}

static int teardown(void **state)
{
	tu_lab_fini(*state);
	free(*state);
	return 0;
}

/* `count` records to `topic` from `from` on, keys, a header, varied
 * values; every 97th claim is aborted instead (an aborted range). */
static void put_records(shmbus *bus, const char *topic, uint64_t from, uint64_t count)
{
	shmbus_producer *p;
	char key[32], val[600];

	assert_int_equal(shmbus_producer_new(bus, topic, NULL, &p), 0);
	for (uint64_t i = from; i < from + count; i++) {
		struct shmbus_header h = { .name = "n", .name_len = 1, .value = key, .value_len = 3 };
		struct shmbus_record r = { .key = key, .value = val, .headers = &h,
					   .header_count = 1 };
		int32_t part = (int32_t)(i % PARTS);

		r.key_len = (size_t)snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
		r.value_len = (size_t)(i * 37 % sizeof val);
		memset(val, 'a' + (int)(i % 26), r.value_len);
		if (i % 97 == 0) {
			struct shmbus_claim c;

			assert_int_equal(shmbus_producer_claim(p, part, &r, 64, &c), 0);
			assert_int_equal(shmbus_producer_abort(p, &c), 0);
			continue;
		}
		assert_true(shmbus_producer_send(p, part, &r, NULL) >= 0);
	}
	shmbus_producer_free(p);
}

static void create(shmbus *a, const char *topic)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = PARTS, .capacity = 4u << 20);

	assert_int_equal(shmbus_topic_create(a, topic, &o), 0);
}

struct bg {
	shmbus *bus;
	const char *topic;
	uint64_t from, count;
	pthread_t t;
};

static void *produce_main(void *arg)
{
	struct bg *g = arg;

	for (uint64_t i = 0; i < g->count; i += 250) {
		put_records(g->bus, g->topic, g->from + i, 250);
		usleep(5000);
	}
	return NULL;
}

static void mirrored(struct tu_lab *l, int src, int dst, const char *topic)
{
	tu_lab_caught_up(l, l->root[src], l->root[dst], topic, PARTS, WAIT_MS);
	tu_replica_identical(l->root[src], l->root[dst], topic, PARTS, false);
}

static void metrics_of(struct tu_lab *l, int i, char *buf, size_t len)
{
	int rc = tu_lab_http_get(l, i, l->addr[i], 9465, "/metrics", buf, len);

	if (rc)
		fail_msg("GET /metrics of host %c: %s", 'A' + i, strerror(-rc));
}

static void fan_out(void **state)
{
	struct tu_lab *l = *state;
	char *text = malloc(1 << 20);
	struct bg g;
	shmbus *a;

	tu_lab_need(l);
	assert_non_null(text);
	tu_lab_config(l, 0, listen_a);
	for (int i = 1; i < 3; i++)
		tu_lab_config(l, i, "[mirror \"from-a\"]\nsource = 10.201.0.1:9093\n"
			      "topics = orders\ntls = off\ntimeout_ms = 2000\n");
	tu_lab_start(l, 0);
	a = tu_open(l->root[0]);
	create(a, "orders");
	put_records(a, "orders", 0, 1000);
	tu_lab_start(l, 1);
	tu_lab_start(l, 2);
	g = (struct bg){ .bus = a, .topic = "orders", .from = 1000, .count = 5000 };
	assert_int_equal(pthread_create(&g.t, NULL, produce_main, &g), 0);
	pthread_join(g.t, NULL);
	mirrored(l, 0, 1, "orders");
	mirrored(l, 0, 2, "orders");
	metrics_of(l, 0, text, 1 << 20);
	assert_true(tu_metric(text, "shmbus_mirror_source_connections") == 2);
	assert_true(tu_metric(text, "shmbus_mirror_source_connections_total") >= 2);
	assert_true(tu_metric(text, "shmbus_mirror_source_sent_records_total") >= 2 * 6000);
	free(text);
	shmbus_close(a);
}

/* Host i's status for `topic`: every partition caught up, in records and
 * in milliseconds (within a moment of the last append). */
static void lag_zero(struct tu_lab *l, int i, uint64_t *ret_records)
{
	struct shmbus_mirror_status m[PARTS] = { { .sz = sizeof m[0] } };
	shmbus *b = tu_open(l->root[i]);

	for (int k = 0; k < 100; k++) {
		assert_int_equal(shmbus_mirror_status(b, m, PARTS), PARTS);
		if (m[0].lag + m[1].lag + m[0].lag_ms + m[1].lag_ms == 0)
			break;
		usleep(20000);
	}
	*ret_records = 0;
	for (int p = 0; p < PARTS; p++) {
		assert_string_equal(m[p].state, "streaming");
		assert_int_equal(m[p].lag, 0);
		assert_int_equal(m[p].lag_ms, 0);
		assert_int_equal(m[p].gaps, 0);
		assert_int_equal(m[p].end, tu_part_high(l->root[0], "orders", (uint32_t)p));
		assert_true(m[p].bytes > 0);
		*ret_records += m[p].records;
	}
	shmbus_close(b);
}

/* `shmbus mirror status` on host i (a mirror of "from-b"): both
 * partitions at A's end, lag 0 in records and ms, in the table and in
 * JSON. */
static void command_says(struct tu_lab *l, int i)
{
	struct run r;
	char row[160];

	CLI(&r, l->root[i], NULL, "mirror", "status");
	expect_ok(&r, "mirror status");
	expect_contains(r.out, "LAG-MS", "mirror status");
	for (uint32_t p = 0; p < PARTS; p++) {
		uint64_t end = tu_part_high(l->root[0], "orders", p);

		snprintf(row, sizeof row, "\nfrom-b 10.201.0.2:9093 orders %u %llu %llu 0 0 "
			 "streaming", p, (unsigned long long)end, (unsigned long long)end);
		expect_row(r.out, row, "mirror status");
	}
	run_free(&r);
	CLI(&r, l->root[i], NULL, "mirror", "status", "--json");
	expect_ok(&r, "mirror status --json");
	expect_contains(r.out, "\"lag\":0,\"state\":\"streaming\"", "mirror status --json");
	expect_contains(r.out, "\"lag_ms\":0,\"gap_offsets\":0,\"bytes\":", "mirror status --json");
	run_free(&r);
}

static void chain(void **state)
{
	struct tu_lab *l = *state;
	char *text = malloc(1 << 20), sample[256];
	uint64_t got_b, got_c;
	struct bg g;
	shmbus *a;

	tu_lab_need(l);
	assert_non_null(text);
	tu_lab_config(l, 0, listen_a);
	tu_lab_config(l, 1, "[mirror-listen]\naddress = 10.201.0.2:9093\ntls = off\n"
		      "timeout_ms = 2000\n\n[mirror \"from-a\"]\nsource = 10.201.0.1:9093\n"
		      "topics = orders\ntls = off\ntimeout_ms = 2000\n");
	tu_lab_config(l, 2, "metrics = 10.201.0.3:9465\n\n[mirror \"from-b\"]\n"
		      "source = 10.201.0.2:9093\ntopics = orders\ntls = off\ntimeout_ms = 2000\n");
	tu_lab_start(l, 0);
	a = tu_open(l->root[0]);
	create(a, "orders");
	put_records(a, "orders", 0, 1000);
	tu_lab_start(l, 1);
	/* B's replica exists before C lists B's topics */
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", PARTS, WAIT_MS);
	tu_lab_start(l, 2);
	g = (struct bg){ .bus = a, .topic = "orders", .from = 1000, .count = 5000 };
	assert_int_equal(pthread_create(&g.t, NULL, produce_main, &g), 0);
	pthread_join(g.t, NULL);
	mirrored(l, 0, 1, "orders");
	tu_lab_caught_up(l, l->root[0], l->root[2], "orders", PARTS, WAIT_MS);
	tu_replica_identical(l->root[0], l->root[2], "orders", PARTS, false);
	tu_replica_identical(l->root[1], l->root[2], "orders", PARTS, false);
	lag_zero(l, 1, &got_b);
	lag_zero(l, 2, &got_c);
	/* every offset came through both hops (a reconnection would fetch
	 * some again: more, never less) */
	assert_true(got_b >= 6000 && got_c >= 6000);
	metrics_of(l, 2, text, 1 << 20);
	for (int p = 0; p < PARTS; p++) {
		snprintf(sample, sizeof sample, "shmbus_mirror_lag_seconds{mirror=\"from-b\","
			 "source=\"10.201.0.2:9093\",topic=\"orders\",partition=\"%d\"}", p);
		assert_true(tu_metric(text, sample) == 0);
		snprintf(sample, sizeof sample, "shmbus_mirror_end_offset{mirror=\"from-b\","
			 "source=\"10.201.0.2:9093\",topic=\"orders\",partition=\"%d\"}", p);
		assert_true(tu_metric(text, sample) ==
			    (double)tu_part_high(l->root[0], "orders", (uint32_t)p));
		snprintf(sample, sizeof sample, "shmbus_mirror_state{mirror=\"from-b\","
			 "source=\"10.201.0.2:9093\",topic=\"orders\",partition=\"%d\","
			 "state=\"streaming\"}", p);
		assert_true(tu_metric(text, sample) == 1);
	}
	assert_true(tu_metric(text, "shmbus_mirror_connected{mirror=\"from-b\","
			      "source=\"10.201.0.2:9093\"}") == 1);
	command_says(l, 2);
	free(text);
	shmbus_close(a);
}

static void some_topics(void **state)
{
	static const char *const all[] = { "orders", "metrics.cpu", "metrics.mem", "logs",
					   "metricsx" };
	struct tu_lab *l = *state;
	SHMBUS_OPTS(shmbus_topic_info, info);
	shmbus *a, *b;

	tu_lab_need(l);
	tu_lab_config(l, 0, listen_a);
	tu_lab_config(l, 1, "[mirror \"from-a\"]\nsource = 10.201.0.1:9093\n"
		      "topics = orders, metrics.*\ntls = off\ntimeout_ms = 2000\n");
	tu_lab_start(l, 0);
	a = tu_open(l->root[0]);
	for (size_t i = 0; i < 5; i++) {
		create(a, all[i]);
		put_records(a, all[i], 0, 500 + 100 * i);
	}
	tu_lab_start(l, 1);
	for (size_t i = 0; i < 3; i++)
		mirrored(l, 0, 1, all[i]);
	for (size_t i = 0; i < 3; i++)
		put_records(a, all[i], 1000, 300);
	for (size_t i = 0; i < 3; i++)
		mirrored(l, 0, 1, all[i]);
	b = tu_open(l->root[1]);
	assert_int_equal(shmbus_topic_describe(b, "logs", &info), -ENOENT);
	assert_int_equal(shmbus_topic_describe(b, "metricsx", &info), -ENOENT);
	shmbus_close(b);
	shmbus_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(fan_out, setup, teardown),
		cmocka_unit_test_setup_teardown(chain, setup, teardown),
		cmocka_unit_test_setup_teardown(some_topics, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
