/*
 * test_daemon_retention.c - time retention with a real shmbusd: the
 * daemon moves a partition's start within a bounded time after records
 * age out, however long its supervision tick, and a consumer never
 * receives a record below the start, even one that was already at the
 * end of the log when the records came and read nothing since.
 *
 * Each test uses its own root, kills only the daemon it started (by pid)
 * and bounds every wait.
 */
#include "test_daemon.h"

#define RETENTION_MS 200

static int64_t real_ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until the partition's low offset reaches `low`; the ms it took
 * from t0, or -1 after timeout_ms. */
static int64_t wait_low(shmbus *bus, const char *topic, uint64_t low, int64_t t0, int timeout_ms)
{
	while (low_offset(bus, topic, 0) < low) {
		if (tu_ms() - t0 > timeout_ms)
			return -1;
		mp_sleep_us(2000);
	}
	return tu_ms() - t0;
}

static void send_n(shmbus_producer *p, int n)
{
	for (int i = 0; i < n; i++)
		send_str(p, 0, "aging", NULL);
}

/*
 * A daemon whose tick is 5 s (legal: checks of stalled claims and flushes
 * need not be frequent) still retires records of a 200 ms retention soon
 * after they age: the retention timer follows the shortest retention, not
 * the tick.  Before the fix the records lived until the next tick, about
 * 5 s.
 */
static void retention_follows_the_retention_not_the_tick(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	const char *f = conf(env, "slow.conf",
			     "[daemon]\ntick_ms = 5000\nunblock_timeout_ms = 5000\n");
	const char *args[] = { "--config", f, "--log-level", "debug", NULL };
	shmbus *bus = tu_open(env->root);
	shmbus_producer *p = NULL;
	int64_t t0, moved;

	start_or_fail(d, env->root, args, NULL);
	create_topic(bus, "r", 1, 64 << 10, RETENTION_MS);
	assert_ok(shmbus_producer_new(bus, "r", NULL, &p));
	t0 = tu_ms();
	send_n(p, 20);
	moved = wait_low(bus, "r", 20, t0, 8000);
	if (moved < 0) {
		tu_daemon_dump(d);
		fail_msg("records of a %d ms retention were not retired within 8 s", RETENTION_MS);
	}
	print_message("# records of a %d ms retention retired after %lld ms (tick 5 s)\n",
		      RETENTION_MS, (long long)moved);
	if (moved < RETENTION_MS - 10 || moved > RETENTION_MS + 600)
		fail_msg("records of a %d ms retention were retired after %lld ms, with a 5 s tick",
			 RETENTION_MS, (long long)moved);
	expect_log(d, "partition r/0: retention retired offsets 0..19", 1000);
	shmbus_producer_free(p);
	stop_ok(d);
	shmbus_close(bus);
}

struct lap_report {
	int calls;
	uint64_t from, to;
};

static void on_lapped(void *ctx, const char *topic, int32_t partition, uint64_t lost_from,
		      uint64_t resumed_at)
{
	struct lap_report *r = ctx;

	(void)topic;
	(void)partition;
	if (r->calls++ == 0)
		r->from = lost_from;
	r->to = resumed_at;
}

/*
 * A consumer that read up to the end of the log, then reads nothing for
 * longer than the retention: the records that came meanwhile were
 * retired, and its next poll must not deliver them.  It reports them lost
 * (offsets 5..24, resuming at 25) as for any offset out of range.  Before
 * the fix the poll delivered all 20, each older than the retention: the
 * reader checked `start` against the end it had last seen, and at the end
 * of what it had read it looked at the next commit word alone.
 */
static void consumer_at_the_end_gets_nothing_below_the_start(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	const char *f = conf(env, "ret.conf", "[daemon]\ntick_ms = 20\n");
	const char *args[] = { "--config", f, NULL };
	struct lap_report lr = { 0 };
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .reset = SHMBUS_RESET_EARLIEST,
		    .on_lapped = on_lapped, .ctx = &lr);
	struct shmbus_message msgs[32];
	struct shmbus_consumer_stats cs = { .sz = sizeof cs };
	shmbus *bus = tu_open(env->root);
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	uint64_t pos;
	int n;

	start_or_fail(d, env->root, args, NULL);
	create_topic(bus, "r", 1, 64 << 10, RETENTION_MS);
	assert_ok(shmbus_producer_new(bus, "r", NULL, &p));
	assert_ok(shmbus_consumer_new(bus, &co, &c));
	assert_ok(shmbus_consumer_assign(c, "r", 0, SHMBUS_OFFSET_BEGINNING));
	send_n(p, 5);
	for (int got = 0; got < 5; got += n) {
		n = shmbus_consumer_poll(c, msgs, 32, 1000);
		assert_true(n > 0);
	}
	assert_int_equal(shmbus_consumer_poll(c, msgs, 32, 0), 0);   /* caught up */
	send_n(p, 20);
	if (wait_low(bus, "r", 25, tu_ms(), 5000) < 0)
		fail_msg("the records were not retired within 5 s");
	n = shmbus_consumer_poll(c, msgs, 32, 100);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++)
		if (msgs[i].offset < 25)
			fail_msg("record %llu delivered %lld ms old, below the start 25 (retention "
				 "%d ms)", (unsigned long long)msgs[i].offset,
				 (long long)((real_ns_now() - msgs[i].timestamp_ns) / 1000000),
				 RETENTION_MS);
	assert_int_equal(n, 0);
	assert_ok(shmbus_consumer_position(c, "r", 0, &pos));
	assert_int_equal(pos, 25);
	assert_ok(shmbus_consumer_stats(c, &cs));
	assert_int_equal(cs.lost, 20);
	assert_int_equal(lr.calls, 1);
	assert_int_equal(lr.from, 5);
	assert_int_equal(lr.to, 25);
	/* and what comes next is delivered */
	send_str(p, 0, "fresh", NULL);
	assert_int_equal(shmbus_consumer_poll(c, msgs, 32, 1000), 1);
	assert_int_equal(msgs[0].offset, 25);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	stop_ok(d);
	shmbus_close(bus);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, daemon_setup, daemon_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(retention_follows_the_retention_not_the_tick),
		TEST(consumer_at_the_end_gets_nothing_below_the_start),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
