/*
 * test_linger.c - a producer's linger (opts.linger_us, batch_bytes,
 * on_delivery, shmbus_producer_flush) through the public header: staged
 * records stay invisible until their run is published, and then come in
 * send order with dense offsets and their exact bytes, whichever event
 * publishes them: flush, batch_bytes reached, linger_us elapsed (the
 * linger thread, with no further call), the producer freed, send_batch
 * or a claim after them.  Also: a record larger than batch_bytes goes
 * alone, several partitions, a run kept staged under backpressure and a
 * run lost to a deleted topic, both reported by flush, and the options'
 * errors.
 *
 * Values are 16 bytes without a key: 64-byte frames.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "shmbus.h"

#define FRAME16 64 /* the frame of a 16-byte value without key or headers */
#define LONG_US 10000000 /* a linger that never expires during a test */

struct env {
	char *root;
	shmbus *bus;
	struct shmbus_delivery dr[64]; /* on_delivery's reports */
	int ndr;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);

	e->root = tu_tmpdir("linger");
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

static void make_topic(struct env *e, const char *name, uint32_t partitions, uint64_t capacity,
		       enum shmbus_policy policy)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = partitions, .capacity = capacity,
		    .policy = policy);

	assert_ok(shmbus_topic_create(e->bus, name, &o));
}

static void on_delivery(void *arg, const struct shmbus_delivery *d)
{
	struct env *e = arg;

	int n = __atomic_load_n(&e->ndr, __ATOMIC_RELAXED);

	if (n < 64) {
		e->dr[n] = *d;
		__atomic_store_n(&e->ndr, n + 1, __ATOMIC_RELEASE); /* pairs with reports() */
	}
}

/* The reports so far, once there are at least n or after 2 s: a report
 * comes after its records are published, so a consumer can see them
 * first (the linger thread calls on_delivery after the publish). */
static int reports(struct env *e, int n)
{
	int64_t end = tu_ms() + 2000;
	int got;

	while ((got = __atomic_load_n(&e->ndr, __ATOMIC_ACQUIRE)) < n && tu_ms() < end)
		usleep(1000);
	return got;
}

static shmbus_producer *lingering(struct env *e, const char *topic, int linger_us,
				  int batch_bytes)
{
	SHMBUS_OPTS(shmbus_producer_opts, o, .linger_us = linger_us, .batch_bytes = batch_bytes,
		    .on_delivery = on_delivery, .delivery_arg = e);
	shmbus_producer *p = NULL;

	assert_ok(shmbus_producer_new(e->bus, topic, &o, &p));
	return p;
}

static shmbus_consumer *reader(struct env *e, const char *topic, int32_t partition)
{
	shmbus_consumer *c = NULL;

	assert_ok(shmbus_consumer_new(e->bus, NULL, &c));
	assert_ok(shmbus_consumer_assign(c, topic, partition, 0));
	return c;
}

/* Send a 16-byte value naming n; returns send's result, the offset in
 * *off. */
static int send16(shmbus_producer *p, int32_t partition, uint64_t n, uint64_t *off)
{
	uint64_t val[2] = { n, ~n };
	struct shmbus_record r = { .value = val, .value_len = 16 };

	return shmbus_producer_send(p, partition, &r, off);
}

/* Send values [first, first + n) to partition; each is staged. */
static void stage_n(shmbus_producer *p, int32_t partition, uint64_t first, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = 0;

		assert_int_equal(send16(p, partition, first + i, &off), partition);
		assert_true(off == SHMBUS_OFFSET_PENDING);
	}
}

static int poll_now(shmbus_consumer *c, struct shmbus_message *m, size_t max)
{
	int n = shmbus_consumer_poll(c, m, max, 0);

	if (n < 0)
		fail_msg("poll = %d (%s): %s", n, shmbus_strerror(n), shmbus_errmsg());
	return n;
}

/* Expect exactly values [first, first + n) at offsets [off, off + n),
 * within timeout_ms; then nothing more. */
static void expect(shmbus_consumer *c, uint64_t first, uint64_t off, int n, int timeout_ms)
{
	struct shmbus_message m[256];
	int64_t until = tu_ms() + timeout_ms;
	int got = 0;

	assert_true(n <= 256);
	while (got < n) {
		int k = shmbus_consumer_poll(c, m + got, (size_t)(n - got), 10);

		assert_true(k >= 0);
		got += k;
		if (got < n && tu_ms() > until)
			fail_msg("%d of %d records after %d ms", got, n, timeout_ms);
	}
	for (int i = 0; i < n; i++) {
		uint64_t v[2];

		assert_int_equal(m[i].offset, off + (uint64_t)i);
		assert_int_equal(m[i].value_len, 16);
		memcpy(v, m[i].value, 16);
		assert_int_equal(v[0], first + (uint64_t)i);
		assert_int_equal(v[1], ~(first + (uint64_t)i));
	}
	assert_int_equal(poll_now(c, m, 256), 0);
}

/* ------------------------------------------------------------------ */

static void staged_records_are_invisible_until_flush(void **state)
{
	struct env *e = *state;
	struct shmbus_message m[8];
	shmbus_producer *p;
	shmbus_consumer *c;

	make_topic(e, "t", 1, 0, SHMBUS_POLICY_OVERWRITE);
	p = lingering(e, "t", LONG_US, 0);
	c = reader(e, "t", 0);
	stage_n(p, 0, 100, 5);
	assert_int_equal(poll_now(c, m, 8), 0);
	assert_int_equal(e->ndr, 0);
	assert_ok(shmbus_producer_flush(p));
	expect(c, 100, 0, 5, 1000);
	/* one run, one report with its first offset */
	assert_int_equal(reports(e, 1), 1);
	assert_int_equal(e->dr[0].partition, 0);
	assert_int_equal(e->dr[0].first_offset, 0);
	assert_int_equal(e->dr[0].count, 5);
	assert_int_equal(e->dr[0].err, 0);
	/* nothing staged: flush has nothing to do */
	assert_ok(shmbus_producer_flush(p));
	assert_int_equal(reports(e, 1), 1);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void a_full_batch_is_published_by_the_send_that_fills_it(void **state)
{
	struct env *e = *state;
	struct shmbus_message m[8];
	shmbus_producer *p;
	shmbus_consumer *c;

	make_topic(e, "t", 1, 0, SHMBUS_POLICY_OVERWRITE);
	p = lingering(e, "t", LONG_US, 4 * FRAME16);
	c = reader(e, "t", 0);
	stage_n(p, 0, 0, 3);
	assert_int_equal(poll_now(c, m, 8), 0);
	stage_n(p, 0, 3, 1); /* batch_bytes reached */
	expect(c, 0, 0, 4, 1000);
	stage_n(p, 0, 4, 3);
	assert_int_equal(poll_now(c, m, 8), 0);
	shmbus_producer_free(p); /* publishes what is staged */
	expect(c, 4, 4, 3, 1000);
	assert_int_equal(reports(e, 2), 2);
	assert_int_equal(e->dr[1].first_offset, 4);
	assert_int_equal(e->dr[1].count, 3);
	shmbus_consumer_free(c);
}

static void a_quiet_producer_publishes_after_linger_us(void **state)
{
	struct env *e = *state;
	const int linger_ms = 200;
	struct shmbus_message m[8];
	shmbus_producer *p;
	shmbus_consumer *c;
	int64_t t0, waited;

	make_topic(e, "t", 1, 0, SHMBUS_POLICY_OVERWRITE);
	p = lingering(e, "t", linger_ms * 1000, 0);
	c = reader(e, "t", 0);
	t0 = tu_ms();
	stage_n(p, 0, 7, 3);
	/* (a machine that stalls this thread for 200 ms would fail this) */
	assert_int_equal(poll_now(c, m, 8), 0);
	/* no call on the producer from here: its thread publishes */
	expect(c, 7, 0, 3, 5000);
	waited = tu_ms() - t0;
	assert_true(waited >= linger_ms - 1);
	print_message("linger %d ms: published after %lld ms\n", linger_ms, (long long)waited);
	assert_int_equal(reports(e, 1), 1);
	/* and again, for a producer whose thread has been asleep */
	t0 = tu_ms();
	stage_n(p, 0, 10, 1);
	expect(c, 10, 3, 1, 5000);
	assert_true(tu_ms() - t0 >= linger_ms - 1);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void the_bound_is_linger_us_at_a_short_linger(void **state)
{
	struct env *e = *state;
	struct shmbus_message m[1];
	shmbus_producer *p;
	shmbus_consumer *c;
	int64_t worst = 0;

	make_topic(e, "t", 1, 0, SHMBUS_POLICY_OVERWRITE);
	p = lingering(e, "t", 1000, 0); /* 1 ms */
	c = reader(e, "t", 0);
	for (uint64_t i = 0; i < 50; i++) {
		int64_t t0 = tu_ms();
		int n = 0;

		stage_n(p, 0, i, 1);
		while (n == 0) {
			n = shmbus_consumer_poll(c, m, 1, 100);
			assert_true(n >= 0);
			assert_true(tu_ms() - t0 < 2000);
		}
		assert_int_equal(m[0].offset, i);
		worst = tu_ms() - t0 > worst ? tu_ms() - t0 : worst;
	}
	print_message("linger 1 ms: slowest of 50 records visible after %lld ms\n",
		      (long long)worst);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void a_record_larger_than_batch_bytes_goes_alone(void **state)
{
	struct env *e = *state;
	struct shmbus_message m[8];
	uint8_t big[1024];
	struct shmbus_record r = { .value = big, .value_len = sizeof big };
	shmbus_producer *p;
	shmbus_consumer *c;
	uint64_t off = 0;

	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	make_topic(e, "t", 1, 0, SHMBUS_POLICY_OVERWRITE);
	p = lingering(e, "t", LONG_US, 4 * FRAME16);
	c = reader(e, "t", 0);
	stage_n(p, 0, 0, 2);
	assert_int_equal(shmbus_producer_send(p, 0, &r, &off), 0);
	assert_int_equal(off, 2); /* after the two staged before it */
	assert_int_equal(poll_now(c, m, 8), 3);
	assert_int_equal(m[0].offset, 0);
	assert_int_equal(m[1].offset, 1);
	assert_int_equal(m[2].offset, 2);
	assert_int_equal(m[2].value_len, sizeof big);
	assert_memory_equal(m[2].value, big, sizeof big);
	assert_int_equal(reports(e, 2), 2);
	assert_int_equal(e->dr[1].first_offset, 2);
	assert_int_equal(e->dr[1].count, 1);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void partitions_keep_their_own_order(void **state)
{
	struct env *e = *state;
	shmbus_consumer *c[3];
	shmbus_producer *p;

	make_topic(e, "t", 3, 0, SHMBUS_POLICY_OVERWRITE);
	p = lingering(e, "t", LONG_US, 0);
	for (int32_t k = 0; k < 3; k++)
		c[k] = reader(e, "t", k);
	/* interleaved: value 1000 k + i goes to partition k */
	for (uint64_t i = 0; i < 40; i++)
		for (int32_t k = 0; k < 3; k++)
			stage_n(p, k, 1000 * (uint64_t)k + i, 1);
	assert_ok(shmbus_producer_flush(p));
	for (int32_t k = 0; k < 3; k++) {
		expect(c[k], 1000 * (uint64_t)k, 0, 40, 1000);
		shmbus_consumer_free(c[k]);
	}
	assert_int_equal(reports(e, 3), 3);
	shmbus_producer_free(p);
}

static void send_batch_and_claims_come_after_staged_records(void **state)
{
	struct env *e = *state;
	uint64_t vals[2][2] = { { 3, ~3ULL }, { 4, ~4ULL } };
	struct shmbus_record recs[2] = { { .value = vals[0], .value_len = 16 },
					 { .value = vals[1], .value_len = 16 } };
	struct shmbus_record meta = { 0 };
	struct shmbus_claim cl;
	shmbus_producer *p;
	shmbus_consumer *c;

	make_topic(e, "t", 1, 0, SHMBUS_POLICY_OVERWRITE);
	p = lingering(e, "t", LONG_US, 0);
	c = reader(e, "t", 0);
	stage_n(p, 0, 0, 3);
	assert_int_equal(shmbus_producer_send_batch(p, 0, recs, 2), 2);
	expect(c, 0, 0, 5, 1000);
	stage_n(p, 0, 5, 2);
	assert_ok(shmbus_producer_claim(p, 0, &meta, 16, &cl));
	assert_int_equal(cl.offset, 7);
	((uint64_t *)cl.value)[0] = 7;
	((uint64_t *)cl.value)[1] = ~7ULL;
	assert_ok(shmbus_producer_commit(p, &cl, 16));
	expect(c, 5, 5, 3, 1000);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void a_run_held_by_backpressure_stays_staged(void **state)
{
	struct env *e = *state;
	struct shmbus_message m[128];
	shmbus_producer *p;
	shmbus_consumer *c;
	int rc;

	/* 4 KiB: 63 frames of 64 bytes */
	make_topic(e, "bp", 1, 4096, SHMBUS_POLICY_BACKPRESSURE);
	c = reader(e, "bp", 0);
	p = lingering(e, "bp", LONG_US, 0);
	stage_n(p, 0, 0, 50);
	assert_ok(shmbus_producer_flush(p));
	stage_n(p, 0, 50, 50);
	rc = shmbus_producer_flush(p);
	assert_int_equal(rc, -EAGAIN);
	assert_non_null(strstr(shmbus_errmsg(), "bp/0"));
	assert_non_null(strstr(shmbus_errmsg(), "backpressure"));
	/* whatever went in before the ring filled came in order */
	rc = poll_now(c, m, 128);
	assert_true(rc >= 50);
	for (int i = 0; i < rc; i++)
		assert_int_equal(m[i].offset, (uint64_t)i);
	assert_int_equal(poll_now(c, m, 128), 0); /* releases them */
	assert_ok(shmbus_producer_flush(p));
	expect(c, (uint64_t)rc, (uint64_t)rc, 100 - rc, 1000);
	for (int i = 0; i < e->ndr; i++)
		assert_int_equal(e->dr[i].err, 0);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
}

static void a_lost_run_is_reported_by_flush(void **state)
{
	struct env *e = *state;
	shmbus_producer *p;

	make_topic(e, "gone", 1, 0, SHMBUS_POLICY_OVERWRITE);
	p = lingering(e, "gone", LONG_US, 0);
	stage_n(p, 0, 0, 4);
	assert_ok(shmbus_topic_delete(e->bus, "gone"));
	assert_int_equal(shmbus_producer_flush(p), -EIDRM);
	assert_non_null(strstr(shmbus_errmsg(), "4 records staged for gone/0 are lost"));
	assert_non_null(strstr(shmbus_errmsg(), "deleted"));
	assert_int_equal(reports(e, 1), 1);
	assert_int_equal(e->dr[0].count, 4);
	assert_int_equal(e->dr[0].err, -EIDRM);
	/* reported once */
	assert_ok(shmbus_producer_flush(p));
	/* a record too large for the ring is refused by send itself */
	{
		static uint8_t huge[1 << 20];
		struct shmbus_record r = { .value = huge, .value_len = sizeof huge };

		make_topic(e, "small", 1, 4096, SHMBUS_POLICY_OVERWRITE);
		shmbus_producer_free(p);
		p = lingering(e, "small", LONG_US, 0);
		assert_int_equal(shmbus_producer_send(p, 0, &r, NULL), -EMSGSIZE);
	}
	shmbus_producer_free(p);
}

static void linger_options_are_checked(void **state)
{
	struct env *e = *state;
	shmbus_producer *p = NULL;

	make_topic(e, "t", 1, 0, SHMBUS_POLICY_OVERWRITE);
	{
		SHMBUS_OPTS(shmbus_producer_opts, o, .linger_us = -1);
		assert_int_equal(shmbus_producer_new(e->bus, "t", &o, &p), -EINVAL);
		assert_non_null(strstr(shmbus_errmsg(), "linger_us"));
	}
	{
		SHMBUS_OPTS(shmbus_producer_opts, o, .batch_bytes = 1024);
		assert_int_equal(shmbus_producer_new(e->bus, "t", &o, &p), -EINVAL);
		assert_non_null(strstr(shmbus_errmsg(), "set linger_us"));
	}
	{
		SHMBUS_OPTS(shmbus_producer_opts, o, .linger_us = 100, .batch_bytes = 1 << 30);
		assert_int_equal(shmbus_producer_new(e->bus, "t", &o, &p), -EINVAL);
		assert_non_null(strstr(shmbus_errmsg(), "batch_bytes"));
	}
	assert_null(p);
	/* without linger, flush has nothing to do and every send is visible */
	assert_ok(shmbus_producer_new(e->bus, "t", NULL, &p));
	{
		uint64_t off = 99;

		assert_int_equal(send16(p, 0, 0, &off), 0);
		assert_int_equal(off, 0);
	}
	assert_ok(shmbus_producer_flush(p));
	shmbus_producer_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(staged_records_are_invisible_until_flush, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_full_batch_is_published_by_the_send_that_fills_it,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_quiet_producer_publishes_after_linger_us, setup,
						teardown),
		cmocka_unit_test_setup_teardown(the_bound_is_linger_us_at_a_short_linger, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_record_larger_than_batch_bytes_goes_alone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(partitions_keep_their_own_order, setup, teardown),
		cmocka_unit_test_setup_teardown(send_batch_and_claims_come_after_staged_records,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_run_held_by_backpressure_stays_staged, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_lost_run_is_reported_by_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(linger_options_are_checked, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
