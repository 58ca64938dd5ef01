/*
 * test_mirror_groupcut.c - consumer groups' committed offsets past a cut
 * (format.md §10, §14): when shmbusd cuts a partition's end back to E,
 * every group's committed offset above E goes back to E, so the group
 * reads the new log's records from E and skips none.  Real daemons in
 * network namespaces (tests/lib/netlab.c); needs root and `ip netns`,
 * skips with the reason otherwise.
 *
 * A -> B; B is cut off and A takes records 1000..1199 that B never gets;
 * on A a coordinated group ("billing") commits 1150 and a manual one
 * ("audit") 500; A dies, B is promoted and takes 1000..1299 of its own;
 * A comes back as a mirror of B and cuts 1000..1199.  Then "billing" is
 * at 1000 (logged, counted in shmbus_daemon_group_offsets_cut_total,
 * shown by `shmbus groups describe`), "audit" is still at 500, and a
 * member of "billing" reads B's records from 1000 on.
 */
#include "lib/clirun.h"
#include "lib/cliutil.h"
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 20000
#define METRICS_PORT 9465

static const char listen_a[] = "metrics = 10.201.0.1:9465\n\n[mirror-listen]\n"
			       "address = 10.201.0.1:9093\ntls = off\ntimeout_ms = 2000\n";
static const char listen_b[] = "[mirror-listen]\naddress = 10.201.0.2:9093\ntls = off\n"
			       "timeout_ms = 2000\n";
static const char from_a[] = "[mirror \"from-a\"]\nsource = 10.201.0.1:9093\ntopics = orders\n"
			     "tls = off\ntimeout_ms = 2000\n";
static const char from_b[] = "metrics = 10.201.0.1:9465\n\n[mirror \"from-b\"]\n"
			     "source = 10.201.0.2:9093\ntopics = orders\ntls = off\n"
			     "timeout_ms = 2000\n";

static int setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 2);
	return 0;
}

static int teardown(void **state)
{
	tu_lab_fini(*state);
	free(*state);
	return 0;
}

/* `count` records to orders/0 from offset `from`, values "H:0:OFFSET:". */
static void produce_orders(shmbus *bus, char host, uint64_t from, uint64_t count)
{
	shmbus_producer *p;
	char val[64];

	assert_int_equal(shmbus_producer_new(bus, "orders", NULL, &p), 0);
	for (uint64_t i = from; i < from + count; i++) {
		struct shmbus_record r = { .value = val };
		uint64_t off = 0;

		r.value_len = (size_t)snprintf(val, sizeof val, "%c:0:%llu:", host,
					       (unsigned long long)i);
		assert_int_equal(shmbus_producer_send(p, 0, &r, &off), 0);
		assert_int_equal(off, i);
	}
	shmbus_producer_free(p);
}

static void expect_log(struct tu_lab *l, int i, const char *needle, int ms)
{
	if (tu_daemon_log_has(&l->d[i], needle, ms))
		return;
	for (int j = 0; j < l->hosts; j++)
		if (l->d[j].pid > 0)
			tu_daemon_dump(&l->d[j]);
	fail_msg("host %c's log never said \"%s\"", 'a' + i, needle);
}

static shmbus_member *join(shmbus *bus)
{
	const char *topics[1] = { "orders" };
	SHMBUS_OPTS(shmbus_consumer_opts, co, .reset = SHMBUS_RESET_EARLIEST, .copy = true);
	SHMBUS_OPTS(shmbus_member_opts, o, .group = "billing", .topics = topics, .ntopics = 1,
		    .auto_commit_ms = -1, .consumer = &co);
	shmbus_member *m = NULL;

	assert_int_equal(shmbus_member_subscribe(bus, &o, &m), 0);
	return m;
}

/* Poll the member until it delivers a record; the first one. */
static void first_record(shmbus_member *m, struct shmbus_message *out, char *val, size_t len)
{
	struct shmbus_message msgs[16];
	int64_t until = tu_ms() + WAIT_MS;

	while (tu_ms() < until) {
		int n = shmbus_member_poll(m, msgs, 16, 200);

		assert_true(n >= 0);
		if (n > 0) {
			*out = msgs[0];
			snprintf(val, len, "%.*s", (int)msgs[0].value_len,
				 (const char *)msgs[0].value);
			return;
		}
	}
	fail_msg("the member of \"billing\" read nothing within %d ms", WAIT_MS);
}

/* The member reads up to offset `upto` (from wherever it starts), then
 * commits `upto`. */
static void read_and_commit(shmbus_member *m, uint64_t upto)
{
	struct shmbus_message msgs[64];
	int64_t until = tu_ms() + WAIT_MS;
	uint64_t next = 0;

	while (next < upto && tu_ms() < until) {
		int n = shmbus_member_poll(m, msgs, 64, 200);

		assert_true(n >= 0);
		if (n > 0)
			next = msgs[n - 1].offset + 1;
	}
	assert_true(next >= upto);
	assert_int_equal(shmbus_member_commit_offset(m, "orders", 0, upto), 0);
}

static void a_group_past_the_cut_resumes_at_the_cut(void **state)
{
	struct tu_lab *l = *state;
	const char *const promote[] = { "mirror", "promote", "orders", NULL };
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = 1, .capacity = 4u << 20);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .group = "audit");
	struct shmbus_message first;
	shmbus_consumer *c;
	shmbus_member *m;
	shmbus *a, *b;
	char out[4096], val[64], *metrics;
	struct run r;

	tu_lab_need(l);
	tu_lab_config(l, 0, listen_a);
	snprintf(out, sizeof out, "%s\n%s", from_a, listen_b);
	tu_lab_config(l, 1, out);
	tu_lab_start(l, 0);
	a = tu_open(l->root[0]);
	assert_int_equal(shmbus_topic_create(a, "orders", &to), 0);
	produce_orders(a, 'A', 0, 1000);
	tu_lab_start(l, 1);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", 1, WAIT_MS);

	/* B cut off: A takes 1000..1199 alone, and its groups read into them */
	tu_lab_link(l, 1, false);
	produce_orders(a, 'A', 1000, 200);
	m = join(a);
	read_and_commit(m, 1150);
	shmbus_member_free(m);
	assert_int_equal(shmbus_consumer_new(a, &co, &c), 0);
	assert_int_equal(shmbus_consumer_commit_offset(c, "orders", 0, 500), 0);
	shmbus_consumer_free(c);
	assert_int_equal(committed(l->root[0], "billing", "orders", 0), 1150);
	assert_int_equal(committed(l->root[0], "audit", "orders", 0), 500);
	shmbus_close(a);
	tu_lab_kill(l, 0);
	/* B gives up its connection to the dead A before the link is back */
	expect_log(l, 1, "reconnecting", 15000);
	tu_lab_link(l, 1, true);

	/* B promoted: it goes on from 1000 with records of its own */
	if (tu_cli_run(l->root[1], promote, out, sizeof out, 60000) != 0) {
		tu_daemon_dump(&l->d[1]);
		fail_msg("shmbus mirror promote failed: %s", out);
	}
	b = tu_open(l->root[1]);
	produce_orders(b, 'B', 1000, 300);

	/* A back as B's mirror: it cuts 1000..1199, and "billing" goes back */
	tu_lab_config(l, 0, from_b);
	tu_lab_start(l, 0);
	expect_log(l, 0, "cut offsets 1000..1199 (200 offsets, 200 records)", WAIT_MS);
	expect_log(l, 0, "group \"billing\": its committed offset of orders/0 moved back from "
		   "1150 to 1000", WAIT_MS);
	tu_lab_caught_up(l, l->root[1], l->root[0], "orders", 1, WAIT_MS);
	tu_replica_identical(l->root[1], l->root[0], "orders", 1, false);
	a = tu_open(l->root[0]);
	assert_int_equal(committed(l->root[0], "billing", "orders", 0), 1000);
	assert_int_equal(committed(l->root[0], "audit", "orders", 0), 500);
	assert_int_equal(tu_daemon_log_count(&l->d[0], "moved back from"), 1);
	metrics = calloc(1, 1 << 20);
	assert_non_null(metrics);
	assert_int_equal(tu_lab_http_get(l, 0, l->addr[0], METRICS_PORT, "/metrics", metrics,
					 1 << 20), 0);
	assert_true(tu_metric(metrics, "shmbus_daemon_group_offsets_cut_total") == 1);
	free(metrics);
	CLI(&r, l->root[0], NULL, "groups", "describe", "billing");
	expect_ok(&r, "groups describe billing");
	printf("# shmbus groups describe billing, after the cut:\n%s", r.out);
	expect_contains(r.out, "1000", "groups describe billing");
	run_free(&r);

	/* a member of "billing" reads B's records from 1000: none skipped */
	m = join(a);
	first_record(m, &first, val, sizeof val);
	assert_int_equal(first.offset, 1000);
	assert_string_equal(val, "B:0:1000:");
	shmbus_member_free(m);
	shmbus_close(a);
	shmbus_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_group_past_the_cut_resumes_at_the_cut, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
