/*
 * test_mirror_epochs.c - epochs in mirroring, between real shmbusd in
 * network namespaces (tests/lib/netlab.c; docs/protocol.md §M9, §M10,
 * format.md §14).  Needs root and `ip netns`; skips with the reason
 * otherwise.
 *
 *  - A source partition recreated (deleted, created again: a new epoch):
 *    the mirror stops it, with the error in its log and status, and its
 *    replica is left as it was; with resync = on the replica is dropped
 *    and mirrored again, byte-identical.
 *  - Promote, and the old source coming back: A -> B; B's link goes down
 *    and A takes records B never gets; A is killed (-9); `shmbus mirror
 *    promote orders` on B; producers go on on B from B's end; A is
 *    restarted as a mirror of B: it cuts what it had past the promotion,
 *    reporting the offsets, and is then byte-identical to B.  A consumer
 *    on A that had read past the cut is told (-ESTALE) and reads B's
 *    records from the cut.  The epoch histories survive a restart of
 *    both daemons, and A then follows B without cutting again.
 *  - A plain topic of the mirror's own name is left alone unless the
 *    source continues its log (then it is taken over, here with nothing
 *    to cut).
 *  - A chain A -> B -> C: B promoted; C takes B's new epoch mid-stream.
 */
#include "lib/cliutil.h"
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../shm/epochs.h"
#include "../shm/partition.h"

#define PARTS   2
#define WAIT_MS 20000

static const char listen_a[] = "[mirror-listen]\naddress = 10.201.0.1:9093\ntls = off\n"
			       "timeout_ms = 2000\n";
static const char listen_b[] = "[mirror-listen]\naddress = 10.201.0.2:9093\ntls = off\n"
			       "timeout_ms = 2000\n";
static const char from_a[] = "[mirror \"from-a\"]\nsource = 10.201.0.1:9093\ntopics = orders\n"
			     "tls = off\ntimeout_ms = 2000\n";
static const char from_b[] = "[mirror \"from-b\"]\nsource = 10.201.0.2:9093\ntopics = orders\n"
			     "tls = off\ntimeout_ms = 2000\n";

static int setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 2);
	return 0;
}

static int setup3(void **state)
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

/* Host i's config: the sections given, one after another. */
static void config(struct tu_lab *l, int i, const char *a, const char *b)
{
	char text[1024];

	snprintf(text, sizeof text, "%s\n%s", a, b ? b : "");
	tu_lab_config(l, i, text);
}

static shmbus *make_topic(const char *root)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = PARTS, .capacity = 4u << 20);
	shmbus *bus = tu_open(root);

	assert_int_equal(shmbus_topic_create(bus, "orders", &o), 0);
	return bus;
}

/* `count` records to each partition, values naming the host and offset;
 * the first offset must be `from`. */
static void produce(shmbus *bus, char host, uint64_t from, uint64_t count)
{
	shmbus_producer *p;
	char val[300];

	assert_int_equal(shmbus_producer_new(bus, "orders", NULL, &p), 0);
	for (int32_t part = 0; part < PARTS; part++)
		for (uint64_t i = from; i < from + count; i++) {
			struct shmbus_record r = { .key = "k", .key_len = 1, .value = val };
			uint64_t off = 0;
			int k = snprintf(val, sizeof val, "%c:%d:%llu:", host, part,
					 (unsigned long long)i);

			memset(val + k, host, sizeof val - (size_t)k);
			r.value_len = (size_t)k + (size_t)(i * 7 % 200);
			assert_int_equal(shmbus_producer_send(p, part, &r, &off), part);
			assert_int_equal(off, i);
		}
	shmbus_producer_free(p);
}

/* Host i's log says `needle` within ms; else every log is shown. */
static void expect_log(struct tu_lab *l, int i, const char *needle, int ms)
{
	if (tu_daemon_log_has(&l->d[i], needle, ms))
		return;
	for (int j = 0; j < l->hosts; j++)
		if (l->d[j].pid > 0)
			tu_daemon_dump(&l->d[j]);
	fail_msg("host %c's log never said \"%s\"", 'a' + i, needle);
}

static void caught_up(struct tu_lab *l, int src, int dst)
{
	tu_lab_caught_up(l, l->root[src], l->root[dst], "orders", PARTS, WAIT_MS);
}

/* The mirror status lines of host i, for topic "orders" only. */
static int status_of(struct tu_lab *l, int i, struct shmbus_mirror_status *m, int max)
{
	struct shmbus_mirror_status all[8] = { { .sz = sizeof all[0] } };
	shmbus *bus = tu_open(l->root[i]);
	int n = shmbus_mirror_status(bus, all, 8), k = 0;

	assert_true(n >= 0);
	for (int j = 0; j < n && j < 8 && k < max; j++)
		if (!strcmp(all[j].topic, "orders"))
			m[k++] = all[j];
	shmbus_close(bus);
	return k;
}

/* Wait up to ms for host i's status to show partition `part` in state. */
static bool status_reaches(struct tu_lab *l, int i, int part, const char *state, int ms)
{
	int64_t until = tu_ms() + ms;

	while (tu_ms() < until) {
		struct shmbus_mirror_status m[PARTS];
		int n = status_of(l, i, m, PARTS);

		for (int j = 0; j < n; j++)
			if (m[j].partition == part && !strcmp(m[j].state, state))
				return true;
		usleep(50000);
	}
	return false;
}

static void history(const char *root, uint32_t part, struct epoch_hist *h)
{
	char dir[400], name[16];
	struct part p;
	int fd;

	snprintf(dir, sizeof dir, "%s/topics/orders", root);
	snprintf(name, sizeof name, "%u", part);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(part_open(fd, name, true, name, &p), 0);
	close(fd);
	assert_int_equal(part_epochs_read(&p, h), 0);
	part_unmap(&p);
}

static void same_history(const char *a, const char *b)
{
	for (uint32_t i = 0; i < PARTS; i++) {
		struct epoch_hist ha, hb;

		history(a, i, &ha);
		history(b, i, &hb);
		assert_int_equal(ha.n, hb.n);
		assert_memory_equal(ha.e, hb.e, ha.n * sizeof ha.e[0]);
	}
}

/* ------------------------------------------------------------------ */

static void a_recreated_source_stops_the_mirror_unless_it_resyncs(void **state)
{
	struct tu_lab *l = *state;
	struct shmbus_mirror_status m[PARTS];
	shmbus *a;

	tu_lab_need(l);
	config(l, 0, listen_a, NULL);
	config(l, 1, from_a, NULL);
	tu_lab_start(l, 0);
	a = make_topic(l->root[0]);
	produce(a, 'A', 0, 400);
	tu_lab_start(l, 1);
	caught_up(l, 0, 1);
	/* recreated on the source: a new epoch, fewer records */
	assert_int_equal(shmbus_topic_delete(a, "orders"), 0);
	shmbus_close(a);
	a = make_topic(l->root[0]);
	produce(a, 'N', 0, 250);
	expect_log(l, 1, "the source partition was recreated", WAIT_MS);
	expect_log(l, 1, "set resync = on in [mirror \"from-a\"]", 0);
	assert_true(status_reaches(l, 1, 0, "stopped", WAIT_MS));
	assert_true(status_reaches(l, 1, 1, "stopped", WAIT_MS));
	assert_int_equal(status_of(l, 1, m, PARTS), PARTS);
	for (int i = 0; i < PARTS; i++) {
		assert_true(m[i].recreated >= 1);
		assert_non_null(strstr(m[i].last_error, "source recreated"));
		assert_int_equal(m[i].end, 400); /* the replica is left as it was */
		assert_int_equal(tu_part_high(l->root[1], "orders", (uint32_t)i), 400);
	}
	/* resync = on: dropped, mirrored again from the source's start */
	tu_lab_kill(l, 1);
	config(l, 1, from_a, "resync = on\n");
	tu_lab_start(l, 1);
	expect_log(l, 1, "is dropped and mirrored again", WAIT_MS);
	caught_up(l, 0, 1);
	tu_replica_identical(l->root[0], l->root[1], "orders", PARTS, false);
	same_history(l->root[0], l->root[1]);
	assert_true(status_reaches(l, 1, 0, "streaming", WAIT_MS));
	shmbus_close(a);
}

/* A consumer of A's partition 0, at its end. */
static shmbus_consumer *consumer_at_end(shmbus *bus, uint64_t end)
{
	SHMBUS_OPTS(shmbus_consumer_opts, o, .copy = true);
	struct shmbus_message msgs[64];
	shmbus_consumer *c;
	uint64_t seen = 0;

	assert_int_equal(shmbus_consumer_new(bus, &o, &c), 0);
	assert_int_equal(shmbus_consumer_assign(c, "orders", 0, 0), 0);
	while (seen < end) {
		int n = shmbus_consumer_poll(c, msgs, 64, 1000);

		assert_true(n > 0);
		seen += (uint64_t)n;
	}
	return c;
}

static void expect_record(const struct shmbus_message *m, char host, uint64_t off)
{
	char want[40];
	int k = snprintf(want, sizeof want, "%c:0:%llu:", host, (unsigned long long)off);

	assert_int_equal(m->offset, off);
	assert_true(m->value_len >= (size_t)k);
	assert_memory_equal(m->value, want, (size_t)k);
}

/* Host i's mirror gave up its connection (silent past timeout_ms). */
static void wait_disconnected(struct tu_lab *l, int i)
{
	int64_t until = tu_ms() + 15000;

	while (tu_ms() < until) {
		if (tu_daemon_log_has(&l->d[i], "reconnecting", 0))
			return;
		usleep(50000);
	}
	tu_daemon_dump(&l->d[i]);
	fail_msg("host %c's mirror did not give up its silent connection", 'a' + i);
}

static void the_old_source_cuts_at_the_promotion_and_follows(void **state)
{
	struct tu_lab *l = *state;
	struct shmbus_mirror_status m[PARTS];
	struct shmbus_message msgs[64];
	shmbus_consumer *c;
	shmbus *a, *b;
	char out[4096];
	const char *const promote[] = { "mirror", "promote", "orders", NULL };
	int n;

	tu_lab_need(l);
	config(l, 0, listen_a, NULL);
	config(l, 1, from_a, listen_b);
	tu_lab_start(l, 0);
	a = make_topic(l->root[0]);
	produce(a, 'A', 0, 1000);
	tu_lab_start(l, 1);
	caught_up(l, 0, 1);
	/* B is cut off; A takes records B never gets, then dies */
	tu_lab_link(l, 1, false);
	produce(a, 'A', 1000, 200);
	tu_lab_kill(l, 0);
	/* A's kernel keeps retransmitting what its dead daemon had sent (an
	 * orphaned socket), and B's connection would take it once the link
	 * is back: wait until B gave that connection up (timeout_ms) */
	wait_disconnected(l, 1);
	tu_lab_link(l, 1, true);
	assert_int_equal(tu_part_high(l->root[1], "orders", 0), 1000);

	/* promote on B; producers go on from B's end */
	if (tu_cli_run(l->root[1], promote, out, sizeof out, 60000) != 0) {
		tu_daemon_dump(&l->d[1]);
		fail_msg("shmbus mirror promote failed: %s", out);
	}
	assert_non_null(strstr(out, "promoted topic \"orders\": 2 partitions"));
	assert_non_null(strstr(out, "from offset 1000"));
	expect_log(l, 1, "no longer follows topic \"orders\"", 0);
	assert_int_equal(tu_cli_run(l->root[1], promote, out, sizeof out, 60000), 1);
	assert_non_null(strstr(out, "is not a replica"));
	b = tu_open(l->root[1]);
	produce(b, 'B', 1000, 300);
	{
		struct epoch_hist h;

		history(l->root[1], 0, &h);
		assert_int_equal(h.n, 2);
		assert_int_equal(h.e[1].start, 1000);
	}

	/* A comes back on its own first: a local consumer reads to its end */
	config(l, 0, "", NULL);
	tu_lab_start(l, 0);
	shmbus_close(a);
	a = tu_open(l->root[0]);
	c = consumer_at_end(a, 1200);
	tu_daemon_stop(&l->d[0], 10000);

	/* then as a mirror of B: it cuts 1000..1199 and follows B */
	config(l, 0, from_b, NULL);
	tu_lab_start(l, 0);
	expect_log(l, 0, "is now a replica of the source", WAIT_MS);
	expect_log(l, 0, "cut offsets 1000..1199 (200 offsets, 200 "
				      "records)", WAIT_MS);
	caught_up(l, 1, 0);
	tu_replica_identical(l->root[1], l->root[0], "orders", PARTS, false);
	same_history(l->root[1], l->root[0]);
	assert_true(status_reaches(l, 0, 1, "streaming", WAIT_MS));
	assert_int_equal(status_of(l, 0, m, PARTS), PARTS);
	for (int i = 0; i < PARTS; i++) {
		assert_int_equal(m[i].cut, 200);
		assert_int_equal(m[i].recreated, 0);
		assert_non_null(strstr(m[i].last_error, "cut offsets 1000..1199"));
	}
	/* the consumer that had read A's 1000..1199 is told, then reads B's */
	n = shmbus_consumer_poll(c, msgs, 64, 2000);
	assert_int_equal(n, -ESTALE);
	assert_errmsg_has("cut back to offset 1000 while this consumer stood at 1200");
	n = shmbus_consumer_poll(c, msgs, 64, 2000);
	assert_true(n > 0);
	expect_record(&msgs[0], 'B', 1000);
	shmbus_consumer_free(c);

	/* more on B: A follows; histories survive both daemons' restarts */
	produce(b, 'B', 1300, 100);
	caught_up(l, 1, 0);
	tu_lab_kill(l, 0);
	tu_daemon_stop(&l->d[1], 10000);
	tu_lab_start(l, 1);
	tu_lab_start(l, 0);
	produce(b, 'B', 1400, 100);
	caught_up(l, 1, 0);
	tu_replica_identical(l->root[1], l->root[0], "orders", PARTS, false);
	same_history(l->root[1], l->root[0]);
	assert_int_equal(tu_daemon_log_count(&l->d[0], "cut offsets"), 0);
	assert_true(status_reaches(l, 0, 0, "streaming", WAIT_MS));
	assert_int_equal(status_of(l, 0, m, PARTS), PARTS);
	assert_int_equal(m[0].cut, 0);
	{
		struct epoch_hist h;

		history(l->root[0], 0, &h);
		assert_int_equal(h.n, 2);
		assert_int_equal(m[0].epoch, h.e[1].epoch);
	}
	/* B's stale [mirror "from-a"] never takes B's topic back */
	assert_int_equal(tu_daemon_log_count(&l->d[1], "is now a replica"), 0);
	shmbus_close(a);
	shmbus_close(b);
}


/* A plain topic of the mirror's own is left alone (it keeps taking its
 * producers); one whose log the source continues (its source was
 * promoted from it, with nothing to cut) is taken over and followed. */
static void a_plain_topic_is_taken_over_only_if_the_source_continues_it(void **state)
{
	struct tu_lab *l = *state;
	struct shmbus_mirror_status m[PARTS];
	const char *const promote[] = { "mirror", "promote", "orders", NULL };
	char out[4096];
	shmbus *a, *b;

	tu_lab_need(l);
	config(l, 0, listen_a, NULL);
	config(l, 1, from_a, listen_b);
	tu_lab_start(l, 0);
	a = make_topic(l->root[0]);
	produce(a, 'A', 0, 300);
	b = make_topic(l->root[1]); /* B's own log of that name */
	produce(b, 'B', 0, 50);
	tu_lab_start(l, 1);
	expect_log(l, 1, "the source does not continue this host's log", WAIT_MS);
	assert_true(status_reaches(l, 1, 0, "stopped", WAIT_MS));
	assert_int_equal(status_of(l, 1, m, PARTS), PARTS);
	assert_non_null(strstr(m[0].last_error, "a topic of this host's own"));
	produce(b, 'B', 50, 10); /* still B's, still writable */
	assert_int_equal(tu_part_high(l->root[1], "orders", 0), 60);

	/* B's topic goes; B mirrors A, A dies with nothing B lacks */
	assert_int_equal(shmbus_topic_delete(b, "orders"), 0);
	tu_daemon_stop(&l->d[1], 10000);
	tu_lab_start(l, 1);
	caught_up(l, 0, 1);
	tu_lab_kill(l, 0);
	if (tu_cli_run(l->root[1], promote, out, sizeof out, 60000) != 0) {
		tu_daemon_dump(&l->d[1]);
		fail_msg("shmbus mirror promote failed: %s", out);
	}
	produce(b, 'C', 300, 40);
	/* A back as B's mirror: taken over, nothing cut, followed */
	config(l, 0, from_b, NULL);
	tu_lab_start(l, 0);
	expect_log(l, 0, "is now a replica of the source", WAIT_MS);
	caught_up(l, 1, 0);
	tu_replica_identical(l->root[1], l->root[0], "orders", PARTS, false);
	same_history(l->root[1], l->root[0]);
	assert_int_equal(tu_daemon_log_count(&l->d[0], "cut offsets"), 0);
	assert_true(status_reaches(l, 0, 1, "streaming", WAIT_MS));
	shmbus_close(a);
	shmbus_close(b);
}

/* A chain A -> B -> C: B promoted after A is lost; C, still streaming
 * from B, takes B's new epoch and goes on, nothing cut. */
static void a_chain_follows_its_middle_promoted(void **state)
{
	struct tu_lab *l = *state;
	const char *const promote[] = { "mirror", "promote", "orders", NULL };
	char out[4096];
	shmbus *a, *b;

	tu_lab_need(l);
	config(l, 0, listen_a, NULL);
	config(l, 1, from_a, listen_b);
	config(l, 2, from_b, NULL);
	tu_lab_start(l, 0);
	a = make_topic(l->root[0]);
	produce(a, 'A', 0, 500);
	tu_lab_start(l, 1);
	tu_lab_start(l, 2);
	caught_up(l, 0, 1);
	caught_up(l, 1, 2);
	tu_lab_kill(l, 0);
	if (tu_cli_run(l->root[1], promote, out, sizeof out, 60000) != 0) {
		tu_daemon_dump(&l->d[1]);
		fail_msg("shmbus mirror promote failed: %s", out);
	}
	b = tu_open(l->root[1]);
	produce(b, 'B', 500, 200);
	caught_up(l, 1, 2);
	tu_replica_identical(l->root[1], l->root[2], "orders", PARTS, false);
	same_history(l->root[1], l->root[2]);
	assert_int_equal(tu_daemon_log_count(&l->d[2], "cut offsets"), 0);
	assert_int_equal(tu_daemon_log_count(&l->d[2], "recreated"), 0);
	shmbus_close(a);
	shmbus_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_recreated_source_stops_the_mirror_unless_it_resyncs,
						setup, teardown),
		cmocka_unit_test_setup_teardown(the_old_source_cuts_at_the_promotion_and_follows,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			a_plain_topic_is_taken_over_only_if_the_source_continues_it, setup,
			teardown),
		cmocka_unit_test_setup_teardown(a_chain_follows_its_middle_promoted, setup3,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
