/*
 * test_mp_backpressure.c - the backpressure policy across processes: a
 * registered consumer that reads slowly is never overwritten (it gets
 * every offset exactly once, no lap, and its zero-copy views stay intact
 * until its next poll) while the producer gets -EAGAIN or waits; and a
 * registered consumer killed with SIGKILL does not hold producers back
 * forever.
 *
 * Frames are 256 bytes and tile the 64 KiB ring, so these tests do not
 * depend on how frames of different sizes overlap older ones
 * (test_mp_wrap.c covers that).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "test_mp.h"

#define CAP        (64u << 10)
#define VALUE      208u                  /* + 48-byte header = 256 */
#define PER_RING   (CAP / 256)
#define NRECS      (40u * PER_RING)

struct shared {
	volatile int eagain_seen;  /* producer -> consumer: it hit the limit */
	volatile int consumer_up;  /* consumer -> others: registered */
	uint64_t eagains;
	uint64_t sent;
};

struct bp_arg {
	const char *root;
	struct shared *sh;
	bool block;            /* producer: wait for room (no timeout) */
	bool pause_first;      /* consumer: read nothing until the producer is held */
	int cpu;
};

static void make_bp_topic(struct mp_env *env)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = CAP, .policy = SHMBUS_POLICY_BACKPRESSURE);

	assert_ok(shmbus_topic_create(env->bus, "bp", &o));
}

static struct shmbus_partition_info info_of(shmbus *bus)
{
	SHMBUS_OPTS(shmbus_partition_info, info);

	CHILD_CHECK(shmbus_partition_info(bus, "bp", 0, &info) == 0, "partition_info");
	return info;
}

/* ------------------------------------------------------------------ */
/* Producer                                                            */

static int producer_main(void *argp)
{
	const struct bp_arg *a = argp;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = a->block);
	static uint8_t val[VALUE];
	shmbus_producer *p = NULL;
	uint64_t rng = 3, seq = 0, off;
	int64_t end = tu_ms() + 20000;
	shmbus *bus;
	int rc;

	tu_pin(a->cpu);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_producer_new(bus, "bp", &po, &p) == 0, "producer_new");
	mp_seal(val, VALUE, seq, 0, &rng);
	while (seq < NRECS) {
		struct shmbus_record r = { .value = val, .value_len = VALUE };

		rc = shmbus_producer_send(p, 0, &r, &off);
		if (rc == -EAGAIN && !a->block) {
			a->sh->eagains++;
			mp_set(&a->sh->eagain_seen, 1);
			CHILD_CHECK(tu_ms() < end, "still refused at %llu", (unsigned long long)seq);
			sched_yield();
			continue;
		}
		CHILD_CHECK(rc == 0 && off == seq, "send %llu = %d (offset %llu)",
			    (unsigned long long)seq, rc, (unsigned long long)off);
		a->sh->sent = ++seq;
		mp_seal(val, VALUE, seq, 0, &rng);
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Consumers                                                           */

/* Reads all NRECS slowly and checks each offset arrives once, intact. */
static int consumer_main(void *argp)
{
	const struct bp_arg *a = argp;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .reset = SHMBUS_RESET_ERROR);
	static struct shmbus_message msgs[4];
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	shmbus_consumer *c = NULL;
	int64_t end = tu_ms() + 20000;
	uint64_t next = 0, polls = 0;
	shmbus *bus;

	tu_pin(a->cpu);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, "bp", 0, 0) == 0, "assign");
	CHILD_CHECK(info_of(bus).registered_consumers >= 1, "not registered");
	mp_set(&a->sh->consumer_up, 1);
	if (a->pause_first) {
		/* read nothing until the producer has been held back */
		if (a->block) {
			while (info_of(bus).backpressure_blocks == 0)
				CHILD_CHECK(tu_ms() < end, "the producer was never held back");
		} else {
			CHILD_CHECK(mp_await(&a->sh->eagain_seen, 20000), "no -EAGAIN");
		}
		/* held back a whole ring short of our unread records */
		mp_sleep_us(20000);
		CHILD_CHECK(info_of(bus).high <= PER_RING, "%llu records appended over an unread ring",
			    (unsigned long long)info_of(bus).high);
	}
	while (next < NRECS) {
		int n = shmbus_consumer_poll(c, msgs, 4, 100);

		CHILD_CHECK(tu_ms() < end, "stuck at %llu", (unsigned long long)next);
		CHILD_CHECK(n >= 0, "poll at %llu = %d", (unsigned long long)next, n);
		if (n > 0 && ++polls % 16 == 0)
			mp_sleep_us(2000); /* producers press on our views meanwhile */
		for (int i = 0; i < n; i++) {
			uint64_t seq;
			uint32_t prod;

			CHILD_CHECK(msgs[i].offset == next, "offset %llu, expected %llu",
				    (unsigned long long)msgs[i].offset, (unsigned long long)next);
			CHILD_CHECK(mp_unseal(msgs[i].value, msgs[i].value_len, &seq, &prod) &&
				    seq == next, "record %llu damaged", (unsigned long long)next);
			/* backpressure: a registered consumer's views are not overwritten */
			CHILD_CHECK(shmbus_message_valid(&msgs[i]) == 0, "view %llu overwritten",
				    (unsigned long long)next);
			next++;
		}
	}
	CHILD_CHECK(shmbus_consumer_poll(c, msgs, 4, 20) == 0, "records past the end");
	shmbus_consumer_stats(c, &st);
	CHILD_CHECK(st.delivered == NRECS && st.laps == 0 && st.lost == 0,
		    "delivered %llu laps %llu lost %llu", (unsigned long long)st.delivered,
		    (unsigned long long)st.laps, (unsigned long long)st.lost);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/* Registers, reports it, and stays registered without reading. */
static int idle_consumer_main(void *argp)
{
	const struct bp_arg *a = argp;
	shmbus_consumer *c = NULL;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(shmbus_consumer_new(bus, NULL, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, "bp", 0, 0) == 0, "assign");
	mp_set(&a->sh->consumer_up, 1);
	for (;;)
		pause();
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void wait_registered(struct mp_env *env, uint32_t n)
{
	int64_t end = tu_ms() + 10000;
	SHMBUS_OPTS(shmbus_partition_info, info);

	do {
		assert_true(tu_ms() < end);
		mp_sleep_us(500);
		assert_ok(shmbus_partition_info(env->bus, "bp", 0, &info));
	} while (info.registered_consumers < n);
}

static void run_slow_consumer(struct mp_env *env, bool block)
{
	struct bp_arg a = { .root = env->root, .sh = mp_shared(sizeof(struct shared)),
			    .block = block, .pause_first = true };
	struct bp_arg ca = a;
	SHMBUS_OPTS(shmbus_partition_info, info);
	pid_t pids[2];

	make_bp_topic(env);
	a.cpu = 0;
	ca.cpu = 1;
	pids[0] = mp_spawn(consumer_main, &ca);
	assert_true(mp_await(&a.sh->consumer_up, 10000));
	pids[1] = mp_spawn(producer_main, &a);
	mp_wait_ok(pids, 2, 25000, "consumer and producer");
	assert_ok(shmbus_partition_info(env->bus, "bp", 0, &info));
	print_message("# %s: %u records through a %u-record ring, %llu -EAGAIN, %llu blocks\n",
		      block ? "blocking" : "non-blocking", NRECS, PER_RING,
		      (unsigned long long)a.sh->eagains,
		      (unsigned long long)info.backpressure_blocks);
	assert_int_equal(info.high, NRECS);
	assert_true(info.backpressure_blocks > 0);
	assert_int_equal(info.registered_consumers, 0); /* unregistered when freed */
	if (!block)
		assert_true(a.sh->eagains > 0);
	munmap(a.sh, sizeof(struct shared));
}

/* A non-blocking producer gets -EAGAIN while the consumer has not read. */
static void test_bp_slow_consumer_eagain(void **state)
{
	run_slow_consumer(*state, false);
}

/* A blocking producer waits instead. */
static void test_bp_slow_consumer_blocking(void **state)
{
	run_slow_consumer(*state, true);
}

/*
 * A registered consumer killed with SIGKILL (and reaped) while the
 * producer waits for it: the producer reaps its slot and goes on, and
 * still never overwrites the other, living consumer.
 */
static void test_bp_killed_consumer_releases_producer(void **state)
{
	struct mp_env *env = *state;
	struct bp_arg a = { .root = env->root, .sh = mp_shared(sizeof(struct shared)),
			    .block = true };
	struct bp_arg ca = a;
	SHMBUS_OPTS(shmbus_partition_info, info);
	pid_t idle, pids[2];
	int64_t end;

	make_bp_topic(env);
	idle = mp_spawn(idle_consumer_main, &a);
	wait_registered(env, 1);
	ca.cpu = 1;
	pids[0] = mp_spawn(consumer_main, &ca);
	wait_registered(env, 2);
	a.cpu = 0;
	pids[1] = mp_spawn(producer_main, &a);
	/* wait until the idle consumer holds the producer back */
	end = tu_ms() + 10000;
	do {
		assert_true(tu_ms() < end);
		mp_sleep_us(1000);
		assert_ok(shmbus_partition_info(env->bus, "bp", 0, &info));
	} while (info.backpressure_blocks == 0 || info.high < PER_RING - 1);
	mp_sleep_us(20000);
	assert_ok(shmbus_partition_info(env->bus, "bp", 0, &info));
	assert_true(info.high <= PER_RING);
	kill(idle, SIGKILL);
	assert_int_equal(mp_reap(idle, 5000), 128 + SIGKILL);
	mp_wait_ok(pids, 2, 20000, "consumer and producer");
	assert_ok(shmbus_partition_info(env->bus, "bp", 0, &info));
	assert_int_equal(info.high, NRECS);
	assert_int_equal(info.registered_consumers, 0);
	munmap(a.sh, sizeof(struct shared));
}

/* The consumer dies, but its parent is the producer, busy producing: the
 * dead consumer stays a zombie until the producer is done. */
static int producing_parent_main(void *argp)
{
	const struct bp_arg *a = argp;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true, .block_timeout_ms = 3000);
	static uint8_t val[VALUE];
	shmbus_producer *p = NULL;
	uint64_t rng = 5;
	shmbus *bus;
	pid_t kid;
	int rc, st;

	kid = fork();
	CHILD_CHECK(kid >= 0, "fork");
	if (kid == 0) {
		shmbus_consumer *c = NULL;

		bus = mp_open(a->root);
		CHILD_CHECK(shmbus_consumer_new(bus, NULL, &c) == 0, "consumer_new");
		CHILD_CHECK(shmbus_consumer_assign(c, "bp", 0, 0) == 0, "assign");
		mp_set(&a->sh->consumer_up, 1);
		raise(SIGKILL);
		_exit(1);
	}
	CHILD_CHECK(mp_await(&a->sh->consumer_up, 10000), "the consumer did not register");
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_producer_new(bus, "bp", &po, &p) == 0, "producer_new");
	for (uint64_t seq = 0; seq < 4 * PER_RING; seq++) {
		struct shmbus_record r = { .value = val, .value_len = VALUE };

		mp_seal(val, VALUE, seq, 0, &rng);
		rc = shmbus_producer_send(p, 0, &r, NULL);
		if (rc < 0) {
			kill(kid, SIGKILL);
			waitpid(kid, NULL, 0);
		}
		CHILD_CHECK(rc == 0, "send %llu = %d after waiting 3 s: a consumer killed before the "
			    "producer started, a zombie until its parent (this process) reaps it, "
			    "still holds the producer back", (unsigned long long)seq, rc);
	}
	CHILD_CHECK(waitpid(kid, &st, 0) == kid && WIFSIGNALED(st), "consumer status");
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

static void test_bp_killed_consumer_not_yet_reaped(void **state)
{
	struct mp_env *env = *state;
	struct bp_arg a = { .root = env->root, .sh = mp_shared(sizeof(struct shared)) };
	pid_t pid;

	make_bp_topic(env);
	pid = mp_spawn(producing_parent_main, &a);
	mp_wait_ok(&pid, 1, 15000, "producer (parent of the killed consumer)");
	munmap(a.sh, sizeof(struct shared));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bp_slow_consumer_eagain, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_bp_slow_consumer_blocking, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_bp_killed_consumer_releases_producer, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_bp_killed_consumer_not_yet_reaped, mp_setup,
						mp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
