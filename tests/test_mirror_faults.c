/*
 * test_mirror_faults.c - mirroring through faults, between two real
 * shmbusd in network namespaces on a bridge (tests/lib/netlab.c;
 * docs/protocol.md part 2).  Needs root and `ip netns`, and nft for the
 * first test; skips with the reason otherwise.
 *
 * Host A (10.201.0.1) serves [mirror-listen]; host B mirrors "orders"
 * from it.  Records are produced on A by the library while the faults
 * happen, and at the end B's replica is compared with A's partitions
 * frame by frame (tu_replica_identical): every offset A still holds is on
 * B at the same offset with the same bytes.
 *
 *  - packets dropped by nftables inside A's namespace: 30 % of the
 *    mirroring port's packets for 2 s (TCP carries on), then all of them
 *    for 3 s (longer than timeout_ms: the connection dies, reconnects
 *    fail), then the rules are removed: the mirror resumes.
 *  - A's shmbusd killed with SIGKILL and restarted three times
 *    mid-stream: the mirror reconnects each time and resumes from its
 *    end.
 *  - a mirror lapped by its source: a 64 KiB ring on A, B's link down
 *    while A produces several rings' worth, once for less than
 *    timeout_ms (the connection lives; the source's cursor is lapped) and
 *    once for longer (a new connection asks for offsets A no longer
 *    holds): each is a gap, in B's log, its status and its metrics (and
 *    A's); mirroring continues, and every offset A holds is on B (but
 *    for less than a frame's bytes of the oldest: a gap moves the
 *    replica's frames to other places in its ring, netlab.h).
 */
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
#define WAIT_MS 20000 /* a mirror catching up; far more than it takes */
#define METRICS_PORT 9465

static int setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 2);
	if (!l->ok)
		return 0;
	tu_lab_config(l, 0, "metrics = 10.201.0.1:9465\n\n[mirror-listen]\n"
		      "address = 10.201.0.1:9093\ntls = off\ntimeout_ms = 2000\n");
	tu_lab_config(l, 1, "metrics = 10.201.0.2:9465\n\n[mirror \"from-a\"]\n"
		      "source = 10.201.0.1:9093\ntopics = orders\ntls = off\ntimeout_ms = 2000\n");
	return 0;
}

static int teardown(void **state)
{
	tu_lab_fini(*state);
	free(*state);
	return 0;
}

/* `count` records from `from` on, spread over the partitions, with keys,
 * a header and values of varied length up to `vmax` bytes. */
static void produce(shmbus *bus, uint64_t from, uint64_t count, size_t vmax)
{
	shmbus_producer *p;
	char key[32], val[700];

	assert_true(vmax <= sizeof val);
	assert_int_equal(shmbus_producer_new(bus, "orders", NULL, &p), 0);
	for (uint64_t i = from; i < from + count; i++) {
		struct shmbus_header h = { .name = "n", .name_len = 1, .value = key, .value_len = 3 };
		struct shmbus_record r = { .key = key, .value = val, .headers = &h,
					   .header_count = 1 };

		r.key_len = (size_t)snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
		r.value_len = (size_t)(i * 37 % vmax);
		memset(val, 'a' + (int)(i % 26), r.value_len);
		assert_true(shmbus_producer_send(p, (int32_t)(i % PARTS), &r, NULL) >= 0);
	}
	shmbus_producer_free(p);
}

static shmbus *source_topic(struct tu_lab *l, uint64_t capacity)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = PARTS, .capacity = capacity);
	shmbus *a = tu_open(l->root[0]);

	assert_int_equal(shmbus_topic_create(a, "orders", &o), 0);
	return a;
}

/* Records produced in the background, 500 every 10 ms, while a fault
 * happens. */
struct bg {
	shmbus *bus;
	uint64_t from, count;
	pthread_t t;
};

static void *produce_main(void *arg)
{
	struct bg *g = arg;

	for (uint64_t i = 0; i < g->count; i += 500) {
		produce(g->bus, g->from + i, 500, 600);
		usleep(10000);
	}
	return NULL;
}

static void bg_start(struct bg *g, shmbus *bus, uint64_t from, uint64_t count)
{
	*g = (struct bg){ .bus = bus, .from = from, .count = count };
	assert_int_equal(pthread_create(&g->t, NULL, produce_main, g), 0);
}

static void caught_up_and_identical(struct tu_lab *l, bool gaps_ok)
{
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", PARTS, WAIT_MS);
	tu_replica_identical(l->root[0], l->root[1], "orders", PARTS, gaps_ok);
}

/* A rule set for nft, loaded in host i's namespace. */
static void nft(struct tu_lab *l, int i, const char *rules)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof path, "%s/rules.nft", l->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(rules, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(tu_lab_sh(l, i, "nft -f %s", path), 0);
}

static void packets_dropped_then_passed(void **state)
{
	struct tu_lab *l = *state;
	shmbus *a;
	struct bg g;

	tu_lab_need(l);
	if (tu_lab_sh(l, 0, "nft list tables") < 0)
		tu_skip("nft (Debian nftables) is not installed, or nftables is not in the kernel\n");
	tu_lab_start(l, 0);
	a = source_topic(l, 8u << 20);
	produce(a, 0, 2000, 600);
	tu_lab_start(l, 1);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", PARTS, WAIT_MS);
	bg_start(&g, a, 2000, 12000);
	/* 30 % of the mirroring port's packets, both ways, for 2 s */
	nft(l, 0, "table inet shmbt {\n"
		  " chain in { type filter hook input priority 0; "
		  "tcp dport 9093 numgen random mod 100 < 30 drop; }\n"
		  " chain out { type filter hook output priority 0; "
		  "tcp sport 9093 numgen random mod 100 < 30 drop; }\n}\n");
	sleep(2);
	/* then every one of them for 3 s, past timeout_ms */
	nft(l, 0, "flush table inet shmbt\n"
		  "table inet shmbt {\n"
		  " chain in { type filter hook input priority 0; tcp dport 9093 drop; }\n"
		  " chain out { type filter hook output priority 0; tcp sport 9093 drop; }\n}\n");
	sleep(3);
	assert_int_equal(tu_lab_sh(l, 0, "nft delete table inet shmbt"), 0);
	pthread_join(g.t, NULL);
	caught_up_and_identical(l, false);
	assert_true(tu_daemon_log_has(&l->d[1], "connection lost", 0));
	shmbus_close(a);
}

static void source_killed_and_restarted(void **state)
{
	struct tu_lab *l = *state;
	struct shmbus_mirror_status m[PARTS] = { { .sz = sizeof m[0] } };
	shmbus *a, *b;
	struct bg g;

	tu_lab_need(l);
	tu_lab_start(l, 0);
	a = source_topic(l, 8u << 20);
	produce(a, 0, 2000, 600);
	tu_lab_start(l, 1);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", PARTS, WAIT_MS);
	bg_start(&g, a, 2000, 20000);
	for (int k = 0; k < 3; k++) {
		usleep(200000);
		tu_lab_kill(l, 0); /* SIGKILL, mid-stream; the producer goes on */
		usleep(300000);
		tu_lab_start(l, 0);
	}
	pthread_join(g.t, NULL);
	caught_up_and_identical(l, false);
	assert_true(tu_daemon_log_has(&l->d[1], "reconnecting", 0));
	b = tu_open(l->root[1]);
	/* the status follows the last DATA's append within a moment */
	for (int k = 0; k < 100; k++) {
		assert_int_equal(shmbus_mirror_status(b, m, PARTS), PARTS);
		if (m[0].lag + m[1].lag + m[0].lag_ms + m[1].lag_ms == 0)
			break;
		usleep(20000);
	}
	for (int i = 0; i < PARTS; i++) {
		assert_true(m[i].reconnects >= 3);
		assert_int_equal(m[i].gaps, 0);
		assert_int_equal(m[i].lag, 0);
		assert_int_equal(m[i].lag_ms, 0);
		assert_string_equal(m[i].state, "streaming");
	}
	shmbus_close(b);
	shmbus_close(a);
}

/* B's status while it is cut off past timeout_ms: connecting, and its
 * lag in time counts from the last it heard of its source. */
static void stale_shows(struct tu_lab *l, int64_t at_least_ms)
{
	struct shmbus_mirror_status m[PARTS] = { { .sz = sizeof m[0] } };
	shmbus *b = tu_open(l->root[1]);

	assert_int_equal(shmbus_mirror_status(b, m, PARTS), PARTS);
	for (int i = 0; i < PARTS; i++) {
		printf("# cut off: partition %d lag_ms %llu, %s\n", i,
		       (unsigned long long)m[i].lag_ms, m[i].state);
		assert_string_equal(m[i].state, "connecting");
		assert_true(m[i].lag_ms >= (uint64_t)at_least_ms);
	}
	shmbus_close(b);
}

/* B's link down for `ms` while A produces `count` records: several
 * laps of A's 64 KiB ring. */
static void away_while_lapped(struct tu_lab *l, shmbus *a, uint64_t from, uint64_t count, int ms)
{
	int64_t t0 = tu_ms();

	tu_lab_link(l, 1, false);
	produce(a, from, count, 600);
	usleep((useconds_t)ms * 1000);
	if (ms > 2500) /* past timeout_ms (2 s): B gave the connection up */
		stale_shows(l, tu_ms() - t0 - 1000);
	tu_lab_link(l, 1, true);
}

/* B's metrics text (its endpoint, from inside its namespace). */
static void scrape(struct tu_lab *l, int i, char *buf, size_t len)
{
	int rc = tu_lab_http_get(l, i, l->addr[i], METRICS_PORT, "/metrics", buf, len);

	if (rc)
		fail_msg("GET /metrics of host %c: %s", 'A' + i, strerror(-rc));
	assert_non_null(strstr(buf, " 200 "));
}

static void gaps_show(struct tu_lab *l, uint64_t want)
{
	struct shmbus_mirror_status m[PARTS] = { { .sz = sizeof m[0] } };
	shmbus *b = tu_open(l->root[1]);
	uint64_t gaps = 0, offsets = 0;
	char *text = malloc(1 << 20), sample[256];
	double sum = 0, sum_offsets = 0;

	assert_non_null(text);
	assert_int_equal(shmbus_mirror_status(b, m, PARTS), PARTS);
	for (int i = 0; i < PARTS; i++) {
		gaps += m[i].gaps;
		offsets += m[i].gap_offsets;
		assert_string_equal(m[i].state, "streaming");
	}
	printf("# status: %llu gaps over %llu offsets\n", (unsigned long long)gaps,
	       (unsigned long long)offsets);
	assert_true(gaps >= want);
	assert_true(offsets >= gaps);
	scrape(l, 1, text, 1 << 20);
	for (int i = 0; i < PARTS; i++) {
		double v;

		snprintf(sample, sizeof sample, "shmbus_mirror_gaps_total{mirror=\"from-a\","
			 "source=\"10.201.0.1:9093\",topic=\"orders\",partition=\"%d\"}", i);
		v = tu_metric(text, sample);
		assert_true(v >= 0);
		sum += v;
		snprintf(sample, sizeof sample, "shmbus_mirror_gap_offsets_total{mirror=\"from-a\","
			 "source=\"10.201.0.1:9093\",topic=\"orders\",partition=\"%d\"}", i);
		sum_offsets += tu_metric(text, sample);
	}
	assert_true(sum == (double)gaps);
	assert_true(sum_offsets == (double)offsets);
	scrape(l, 0, text, 1 << 20);
	assert_true(tu_metric(text, "shmbus_mirror_source_gaps_total") >= (double)want);
	free(text);
	shmbus_close(b);
}

/* `count` records at a pace a connected mirror keeps up with (20 every
 * 2 ms: a 64 KiB ring laps in about 20 ms), more than a ring's worth:
 * afterwards A's ring and B's hold the same offsets again (B's gap, an
 * aborted range of 8 bytes an offset, took room in B's ring that A's
 * records took in A's; it is overwritten now). */
static void produce_paced(shmbus *a, uint64_t from, uint64_t count)
{
	for (uint64_t i = 0; i < count; i += 20) {
		produce(a, from + i, 20, 600);
		usleep(2000);
	}
}

static void lapped_mirror_records_gaps(void **state)
{
	struct tu_lab *l = *state;
	shmbus *a;

	tu_lab_need(l);
	tu_lab_start(l, 0);
	a = source_topic(l, 64u << 10);
	produce(a, 0, 200, 600);
	tu_lab_start(l, 1);
	caught_up_and_identical(l, false);
	/* away for less than timeout_ms: the connection lives through it */
	away_while_lapped(l, a, 200, 8000, 500);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", PARTS, WAIT_MS);
	gaps_show(l, 1);
	assert_true(tu_daemon_log_has(&l->d[1], "recorded in the replica as a gap", 0));
	assert_true(tu_daemon_log_has(&l->d[0], "no longer held here", 0));
	produce_paced(a, 8200, 1200);
	caught_up_and_identical(l, true);
	/* away for longer: a new connection asks for what is gone */
	away_while_lapped(l, a, 9400, 4000, 3000);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", PARTS, WAIT_MS);
	gaps_show(l, 2);
	/* and it goes on mirroring */
	produce_paced(a, 13400, 1200);
	caught_up_and_identical(l, true);
	shmbus_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(packets_dropped_then_passed, setup, teardown),
		cmocka_unit_test_setup_teardown(source_killed_and_restarted, setup, teardown),
		cmocka_unit_test_setup_teardown(lapped_mirror_records_gaps, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
