/*
 * test_status_repair.c - recovery checks a partition's status word against
 * the bus directory (format.md §2, §8): one damaged byte that marks a
 * partition of a live topic deleted or read-only is repaired and reported
 * by shmbus_partition_recover, by `shmbus recover` (even while other
 * processes use the partition, when the scan itself is refused), by
 * shmbusd's start-up recovery and by its tick while it runs; sends and
 * reads then work again.  A topic
 * that really was deleted (or deleted and recreated) stays deleted for
 * the users of its old files.
 *
 * Each test has its own root under /dev/shm; children and daemons are
 * killed by pid, and every wait has a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shmbus.h"
#include "lib/cliutil.h"
#include "lib/daemonutil.h"
#include "lib/testutil.h"
#include "../lib/internal.h"

#define STATUS_AT 512 /* format.md §2 */

struct env {
	char *root;
	struct tu_daemon d;
	pid_t child;
};

static int setup(void **state)
{
	static struct env env;

	memset(&env, 0, sizeof env);
	env.root = tu_tmpdir("status");
	*state = &env;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	if (e->child > 0)
		tu_wait((kill(e->child, SIGKILL), e->child), 5000);
	if (e->d.pid > 0)
		tu_daemon_stop(&e->d, 5000);
	if (e->d.log[0])
		unlink(e->d.log);
	tu_rmrf(e->root);
	free(e->root);
	return 0;
}

static shmbus *open_bus(const char *root)
{
	return tu_open(root);
}

static void make_topic(shmbus *bus, const char *name)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1, .capacity = 65536);

	assert_ok(shmbus_topic_create(bus, name, &o));
}

/* The low byte of the status word of <root>/topics/<topic>/0. */
static int status_byte(const char *root, const char *topic)
{
	char path[512];
	uint8_t b = 0;
	int fd;

	snprintf(path, sizeof path, "%s/topics/%s/0", root, topic);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, &b, 1, STATUS_AT) != 1)
		fail_msg("cannot read %s: %s", path, strerror(errno));
	close(fd);
	return b;
}

/* One damaged byte: OR `bits` into the status word's low byte, as a stray
 * write would, behind every process's back. */
static void damage_status(const char *root, const char *topic, uint8_t bits)
{
	char path[512];
	uint8_t b;
	int fd;

	snprintf(path, sizeof path, "%s/topics/%s/0", root, topic);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || pread(fd, &b, 1, STATUS_AT) != 1)
		fail_msg("cannot read %s: %s", path, strerror(errno));
	b |= bits;
	if (pwrite(fd, &b, 1, STATUS_AT) != 1)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	close(fd);
}

static int send_str(shmbus_producer *p, const char *s)
{
	struct shmbus_record r = { .value = s, .value_len = strlen(s) };

	return shmbus_producer_send(p, 0, &r, NULL);
}

static shmbus_consumer *consumer_of(shmbus *bus, const char *topic)
{
	SHMBUS_OPTS(shmbus_consumer_opts, o, .copy = true);
	shmbus_consumer *c = NULL;

	assert_ok(shmbus_consumer_new(bus, &o, &c));
	assert_ok(shmbus_consumer_assign(c, topic, 0, SHMBUS_OFFSET_BEGINNING));
	return c;
}

/* Poll until `want` records came, each "v<i>" for i = first..; fails on
 * an error or after 5 s. */
static void expect_values(shmbus_consumer *c, int first, int want)
{
	int64_t end = tu_ms() + 5000;
	int got = 0;

	while (got < want) {
		struct shmbus_message m[8];
		int n = shmbus_consumer_poll(c, m, 8, 100);
		char v[32];

		if (n < 0)
			fail_msg("poll = %d: %s", n, shmbus_errmsg());
		for (int i = 0; i < n; i++, got++) {
			snprintf(v, sizeof v, "v%d", first + got);
			if (m[i].value_len != strlen(v) || memcmp(m[i].value, v, m[i].value_len))
				fail_msg("record %d is \"%.*s\", not \"%s\"", got, (int)m[i].value_len,
					 (const char *)m[i].value, v);
		}
		if (tu_ms() > end)
			fail_msg("%d of %d records after 5 s", got, want);
	}
}

#define assert_has(text, needle)                                                       \
	do {                                                                           \
		if (!strstr((text), (needle)))                                         \
			fail_msg("\"%s\" is not in:\n%s", (needle), (text));           \
	} while (0)

/* ------------------------------------------------------------------ */

/* The case: a damaged DELETED bit on a live topic.  Before the
 * fix, recovery reported nothing and sends and reads kept failing with
 * "topic was deleted". */
static void deleted_mark_on_a_live_topic_is_repaired(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	shmbus_producer *p = NULL;
	shmbus_consumer *c;
	struct shmbus_recovery r = { .sz = sizeof r };

	make_topic(bus, "t");
	assert_ok(shmbus_producer_new(bus, "t", NULL, &p));
	c = consumer_of(bus, "t");
	assert_ok(send_str(p, "v0"));
	expect_values(c, 0, 1);

	damage_status(e->root, "t", PART_STATUS_DELETED);
	assert_int_equal(send_str(p, "v1"), -EIDRM);
	{
		struct shmbus_message m;

		assert_int_equal(shmbus_consumer_poll(c, &m, 1, 0), -EIDRM);
	}

	assert_ok(shmbus_partition_recover(bus, "t", 0, &r));
	assert_int_equal(r.repaired, SHMBUS_REPAIRED_DELETED);
	assert_int_equal(status_byte(e->root, "t"), 0);
	assert_int_equal(r.frames, 1);
	/* the same producer and consumer go on */
	assert_ok(send_str(p, "v1"));
	expect_values(c, 1, 1);
	/* nothing left to repair */
	assert_ok(shmbus_partition_recover(bus, "t", 0, &r));
	assert_int_equal(r.repaired, 0);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	shmbus_close(bus);
}

/* A damaged REPLICA (read-only) bit: sends said "read-only". */
static void readonly_mark_on_a_live_topic_is_repaired(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	shmbus_producer *p = NULL;
	shmbus_consumer *c;
	struct shmbus_recovery r = { .sz = sizeof r };

	make_topic(bus, "t");
	assert_ok(shmbus_producer_new(bus, "t", NULL, &p));
	assert_ok(send_str(p, "v0"));
	damage_status(e->root, "t", PART_STATUS_REPLICA | 0x80);
	assert_int_equal(send_str(p, "v1"), -EROFS);
	if (!strstr(shmbus_errmsg(), "read-only"))
		fail_msg("the send error does not say read-only: %s", shmbus_errmsg());

	assert_ok(shmbus_partition_recover(bus, "t", 0, &r));
	assert_int_equal(r.repaired, SHMBUS_REPAIRED_READONLY | SHMBUS_REPAIRED_UNKNOWN);
	assert_int_equal(status_byte(e->root, "t"), 0);
	assert_ok(send_str(p, "v1"));
	c = consumer_of(bus, "t");
	expect_values(c, 0, 2);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	shmbus_close(bus);
}

/*
 * A topic that was really deleted keeps its mark: the old incarnation's
 * partition, checked against the directory (where its topic is gone, then
 * recreated under a new id), stays DELETED, and a DELETED mark an
 * interrupted delete did not leave is set.  Its old users keep -EIDRM.
 */
static void really_deleted_topic_stays_deleted(void **state)
{
	struct env *e = *state;
	shmbus *a = open_bus(e->root), *b = open_bus(e->root);
	shmbus_producer *p = NULL;
	struct bus_topic old;
	struct shmbus_recovery r = { .sz = sizeof r };
	struct pmap *m;
	uint32_t repaired = 99;

	make_topic(a, "t");
	assert_ok(shmbus_producer_new(a, "t", NULL, &p));
	assert_ok(send_str(p, "v0"));
	assert_ok(dir_lookup(&a->dir, "t", &old));
	assert_ok(cache_get(a, &old, 0, &m));

	assert_ok(shmbus_topic_delete(b, "t"));
	assert_int_equal(send_str(p, "v1"), -EIDRM);
	assert_ok(topic_status_repair(a, "t", m, &repaired));
	assert_int_equal(repaired, 0);
	assert_true(part_deleted(&m->part));

	make_topic(b, "t"); /* a new incarnation, a new id */
	assert_ok(shmbus_partition_recover(a, "t", 0, &r));
	assert_int_equal(r.repaired, 0);
	assert_int_equal(send_str(p, "v1"), -EIDRM);
	/* an old file whose mark was lost gets it back */
	__atomic_fetch_and(&m->part.hdr->status, ~PART_STATUS_DELETED, __ATOMIC_SEQ_CST);
	assert_ok(topic_status_repair(a, "t", m, &repaired));
	assert_int_equal(repaired, SHMBUS_REPAIRED_DELETED);
	assert_true(part_deleted(&m->part));
	assert_int_equal(send_str(p, "v1"), -EIDRM);
	/* the new incarnation works */
	{
		shmbus_producer *q = NULL;

		assert_ok(shmbus_producer_new(b, "t", NULL, &q));
		assert_ok(send_str(q, "v0"));
		shmbus_producer_free(q);
	}
	cache_put(m);
	shmbus_producer_free(p);
	shmbus_close(a);
	shmbus_close(b);
}

/* `shmbus recover` repairs the mark and says so; then sends work. */
static void cli_recover_repairs_and_reports(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	shmbus_producer *p = NULL;
	shmbus_consumer *c;
	char out[4096];

	make_topic(bus, "t");
	shmbus_close(bus);
	damage_status(e->root, "t", PART_STATUS_DELETED);

	assert_int_equal(tu_cli_run(e->root, (const char *[]){ "recover", "t", NULL }, out,
				    sizeof out, 30000), 0);
	assert_has(out, "t/0:");
	assert_has(out, "repaired:       the partition was marked deleted, but topic \"t\" exists");

	bus = open_bus(e->root);
	assert_ok(shmbus_producer_new(bus, "t", NULL, &p));
	assert_ok(send_str(p, "v0"));
	c = consumer_of(bus, "t");
	expect_values(c, 0, 1);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	shmbus_close(bus);

	/* a clean partition says so */
	assert_int_equal(tu_cli_run(e->root, (const char *[]){ "recover", "t", NULL }, out,
				    sizeof out, 30000), 0);
	assert_has(out, "repaired:       nothing");
}

/* While another process uses the partition, the scan is refused, but the
 * mark is repaired, the message says so, and that process can send. */
static void cli_recover_repairs_a_partition_in_use(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	shmbus_producer *p = NULL;
	char out[4096];

	make_topic(bus, "t");
	assert_ok(shmbus_producer_new(bus, "t", NULL, &p));
	assert_ok(send_str(p, "v0"));
	damage_status(e->root, "t", PART_STATUS_REPLICA);
	assert_int_equal(send_str(p, "v1"), -EROFS);

	assert_int_equal(tu_cli_run(e->root, (const char *[]){ "recover", "t", NULL }, out,
				    sizeof out, 30000), 1);
	assert_has(out, "in use by other processes");
	assert_has(out, "marked read-only");
	assert_has(out, "repaired");
	assert_ok(send_str(p, "v1"));
	shmbus_producer_free(p);
	shmbus_close(bus);
}

/* shmbusd's start-up recovery repairs it too, and logs it. */
static void daemon_startup_repairs_the_mark(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	shmbus_producer *p = NULL;
	const char *args[] = { "--log-level", "debug", NULL };

	make_topic(bus, "t");
	shmbus_close(bus);
	damage_status(e->root, "t", PART_STATUS_DELETED);
	if (tu_daemon_start(&e->d, e->root, args, NULL, 5000) < 0)
		fail_msg("shmbusd did not start on %s", e->root);
	if (!tu_daemon_log_has(&e->d, "partition t/0: marked deleted, but topic \"t\" exists", 3000)) {
		tu_daemon_dump(&e->d);
		fail_msg("the daemon did not log the repair");
	}
	assert_int_equal(status_byte(e->root, "t"), 0);
	bus = open_bus(e->root);
	assert_ok(shmbus_producer_new(bus, "t", NULL, &p));
	assert_ok(send_str(p, "v0"));
	shmbus_producer_free(p);
	shmbus_close(bus);
}

/* The daemon's counter of status words it set right (counters file). */
static uint64_t daemon_repaired(shmbus *bus)
{
	SHMBUS_OPTS(shmbus_daemon_counters, c);

	assert_ok(shmbus_daemon_counters(bus, &c));
	return c.stats.status_repaired;
}

/*
 * The rest: a byte damaged while shmbusd runs.  Its tick checks
 * the status words against the directory and repairs the mark within a
 * few ticks (100 ms each by default: two looks, then the repair), logs
 * and counts it; the producer that got -EIDRM, and then one that got
 * -EROFS, send again without a restart.  Before, the mark stayed until
 * the next start.
 */
static void daemon_repairs_the_mark_while_running(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	shmbus_producer *p = NULL;
	shmbus_consumer *c;
	const char *args[] = { "--log-level", "debug", NULL };
	int64_t t0, took;

	make_topic(bus, "t");
	if (tu_daemon_start(&e->d, e->root, args, NULL, 5000) < 0)
		fail_msg("shmbusd did not start on %s", e->root);
	assert_ok(shmbus_producer_new(bus, "t", NULL, &p));
	assert_ok(send_str(p, "v0"));
	c = consumer_of(bus, "t");
	expect_values(c, 0, 1);
	assert_int_equal(daemon_repaired(bus), 0);

	damage_status(e->root, "t", PART_STATUS_DELETED);
	assert_int_equal(send_str(p, "v1"), -EIDRM); /* the repair needs two looks a tick apart */
	t0 = tu_ms();
	while (status_byte(e->root, "t") != 0 && tu_ms() - t0 < 3000)
		usleep(5000);
	took = tu_ms() - t0;
	assert_int_equal(status_byte(e->root, "t"), 0);
	printf("# a DELETED mark damaged while shmbusd ran was repaired after %lld ms\n",
	       (long long)took);
	assert_true(took <= 1000); /* a few ticks of 100 ms */
	if (!tu_daemon_log_has(&e->d, "partition t/0: marked deleted, but topic \"t\" exists", 3000) ||
	    !tu_daemon_log_has(&e->d, "found while shmbusd ran", 1000)) {
		tu_daemon_dump(&e->d);
		fail_msg("the daemon did not log the repair");
	}
	assert_ok(send_str(p, "v1"));
	expect_values(c, 1, 1);

	/* a read-only mark, and a bit no version defines */
	damage_status(e->root, "t", PART_STATUS_REPLICA | 0x80);
	assert_int_equal(send_str(p, "v2"), -EROFS);
	t0 = tu_ms();
	while (status_byte(e->root, "t") != 0 && tu_ms() - t0 < 3000)
		usleep(5000);
	assert_int_equal(status_byte(e->root, "t"), 0);
	assert_ok(send_str(p, "v2"));
	expect_values(c, 2, 1);
	t0 = tu_ms();
	while (daemon_repaired(bus) < 2 && tu_ms() - t0 < 3000)
		usleep(20000); /* the counters file is written each tick */
	assert_int_equal(daemon_repaired(bus), 2);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	shmbus_close(bus);
}

/* A topic deleted while shmbusd runs keeps its mark: the tick's check
 * never unmarks a partition whose topic is gone. */
static void daemon_leaves_a_deleted_topic_deleted(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	shmbus_producer *p = NULL;

	make_topic(bus, "t");
	if (tu_daemon_start(&e->d, e->root, NULL, NULL, 5000) < 0)
		fail_msg("shmbusd did not start on %s", e->root);
	assert_ok(shmbus_producer_new(bus, "t", NULL, &p));
	assert_ok(send_str(p, "v0"));
	assert_ok(shmbus_topic_delete(bus, "t"));
	usleep(600000); /* six ticks */
	assert_int_equal(send_str(p, "v1"), -EIDRM);
	assert_int_equal(tu_daemon_log_count(&e->d, "repaired"), 0);
	assert_int_equal(daemon_repaired(bus), 0);
	shmbus_producer_free(p);
	shmbus_close(bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(deleted_mark_on_a_live_topic_is_repaired),
		T(readonly_mark_on_a_live_topic_is_repaired),
		T(really_deleted_topic_stays_deleted),
		T(cli_recover_repairs_and_reports),
		T(cli_recover_repairs_a_partition_in_use),
		T(daemon_startup_repairs_the_mark),
		T(daemon_repairs_the_mark_while_running),
		T(daemon_leaves_a_deleted_topic_deleted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
