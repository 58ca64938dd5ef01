/*
 * test_mp_crash.c - producers killed with SIGKILL between claim and
 * commit.  Consumers must get past the hole a dead claim leaves (after
 * their unblock timeout, plus a generous margin), deliver every record
 * committed after it, and never deliver the dead claim; with producers
 * killed at random points of large batches, every record delivered is
 * intact and each producer's records arrive in order, with none missing
 * before the point where it died.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "test_mp.h"

#define MAXPROD      16
#define END_PRODUCER 99u   /* the steady producer's last record */
#define STEADY       0u    /* the steady producer's id */

struct shared {
	volatile int claimed;      /* the victim holds its claim(s) */
	volatile int stop;         /* parent -> steady producer */
	uint64_t claim_off[64];    /* offsets the victim claimed */
	uint32_t nclaims;
	int64_t killed_ms;         /* when the victim was killed */
};

struct crash_arg {
	const char *root;
	const char *topic;
	struct shared *sh;
	uint32_t id;
	uint32_t count;            /* records to send first */
	uint32_t nclaims;          /* victim: claims to hold when killed */
	uint32_t value_len;        /* 0: random sizes */
	bool block;
	int unblock_ms;
	bool copy;
	uint32_t nprod;            /* consumer: producer ids 0..nprod-1 (and END) */
	int hole_deadline_ms;      /* consumer: from the kill to the first record past it */
	int deadline_ms;           /* consumer: to read everything */
	int cpu;
};

static size_t value_size(const struct crash_arg *a, uint64_t *rng)
{
	return a->value_len ? a->value_len : MP_SEAL_MIN + mp_rand(rng) % 600;
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */

/* Sends `count` records, then holds `nclaims` zero-copy claims with half
 * their values written, and waits to be killed. */
static int victim_main(void *argp)
{
	const struct crash_arg *a = argp;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = a->block);
	static uint8_t val[1024];
	shmbus_producer *p = NULL;
	uint64_t rng = 11 + a->id;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(shmbus_producer_new(bus, a->topic, &po, &p) == 0, "producer_new");
	for (uint64_t seq = 0; seq < a->count; seq++) {
		size_t len = value_size(a, &rng);
		struct shmbus_record r = { .value = val, .value_len = len };

		mp_seal(val, len, seq, a->id, &rng);
		CHILD_CHECK(shmbus_producer_send(p, 0, &r, NULL) == 0, "send %llu",
			    (unsigned long long)seq);
	}
	for (uint32_t i = 0; i < a->nclaims; i++) {
		struct shmbus_record meta = { .key = "dead", .key_len = 4 };
		struct shmbus_claim c;
		size_t len = value_size(a, &rng);
		shmbus_producer *holder = p;

		/* one outstanding claim per producer: a producer for each */
		if (i > 0)
			CHILD_CHECK(shmbus_producer_new(bus, a->topic, &po, &holder) == 0,
				    "producer_new");
		CHILD_CHECK(shmbus_producer_claim(holder, 0, &meta, len, &c) == 0, "claim");
		mp_seal(val, len, a->count + i, a->id, &rng);
		memcpy(c.value, val, len / 2);   /* half written, never committed */
		a->sh->claim_off[i] = c.offset;
	}
	a->sh->nclaims = a->nclaims;
	mp_set(&a->sh->claimed, 1);
	for (;;)
		pause();
	return 0;
}

/* Sends until told to stop (at least `count`), then an END record. */
static int steady_main(void *argp)
{
	const struct crash_arg *a = argp;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = a->block);
	static uint8_t val[1024];
	shmbus_producer *p = NULL;
	uint64_t rng = 5, seq = 0;
	shmbus *bus;
	int rc;

	tu_pin(a->cpu);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_producer_new(bus, a->topic, &po, &p) == 0, "producer_new");
	while (seq < a->count || !__atomic_load_n(&a->sh->stop, __ATOMIC_ACQUIRE)) {
		size_t len = value_size(a, &rng);
		struct shmbus_record r = { .value = val, .value_len = len };

		mp_seal(val, len, seq, a->id, &rng);
		rc = shmbus_producer_send(p, 0, &r, NULL);
		CHILD_CHECK(rc == 0, "send %llu = %d", (unsigned long long)seq, rc);
		seq++;
		if (seq % 16 == 0)
			mp_sleep_us(100);
	}
	{
		struct shmbus_record r = { .value = val, .value_len = MP_SEAL_MIN };

		mp_seal(val, MP_SEAL_MIN, seq, END_PRODUCER, &rng);
		CHILD_CHECK(shmbus_producer_send(p, 0, &r, NULL) == 0, "send END");
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* Loops large batches until killed. */
static int batcher_main(void *argp)
{
	const struct crash_arg *a = argp;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = a->block);
	static uint8_t vals[256][1024];
	struct shmbus_record recs[256];
	shmbus_producer *p = NULL;
	uint64_t rng = 100 + a->id, seq = 0;
	shmbus *bus;

	tu_pin(a->cpu);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_producer_new(bus, a->topic, &po, &p) == 0, "producer_new");
	for (;;) {
		int rc;

		for (size_t i = 0; i < 256; i++) {
			size_t len = value_size(a, &rng);

			mp_seal(vals[i], len, seq + i, a->id, &rng);
			recs[i] = (struct shmbus_record){ .value = vals[i], .value_len = len };
		}
		rc = shmbus_producer_send_batch(p, 0, recs, 256);
		CHILD_CHECK(rc == 256, "send_batch = %d", rc);
		seq += 256;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Consumer                                                            */

static int consumer_main(void *argp)
{
	const struct crash_arg *a = argp;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = a->copy, .reset = SHMBUS_RESET_ERROR,
		    .unblock_timeout_ms = a->unblock_ms);
	static struct shmbus_message msgs[64];
	static uint64_t next_seq[MAXPROD];
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	shmbus_consumer *c = NULL;
	int64_t t0 = tu_ms(), last_ms = t0, max_gap = 0, past_hole_ms = 0;
	int64_t last_off = -1;
	uint64_t delivered = 0;
	bool end = false;
	shmbus *bus;

	tu_pin(a->cpu);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, a->topic, 0, 0) == 0, "assign");
	while (!end) {
		int n = shmbus_consumer_poll(c, msgs, 64, 100);
		int64_t now = tu_ms();

		CHILD_CHECK(now < t0 + a->deadline_ms, "still at offset %lld after %d ms",
			    (long long)last_off, a->deadline_ms);
		CHILD_CHECK(n >= 0, "poll after %lld = %d", (long long)last_off, n);
		if (n > 0) {
			if (now - last_ms > max_gap)
				max_gap = now - last_ms;
			last_ms = now;
		}
		for (int i = 0; i < n; i++) {
			const struct shmbus_message *m = &msgs[i];
			uint64_t seq;
			uint32_t prod;

			CHILD_CHECK((int64_t)m->offset > last_off, "offset %llu after %lld",
				    (unsigned long long)m->offset, (long long)last_off);
			last_off = (int64_t)m->offset;
			for (uint32_t k = 0; k < a->sh->nclaims; k++)
				CHILD_CHECK(m->offset != a->sh->claim_off[k],
					    "the dead claim at %llu was delivered",
					    (unsigned long long)m->offset);
			CHILD_CHECK(!(m->key_len == 4 && !memcmp(m->key, "dead", 4)),
				    "a dead claim was delivered at %llu", (unsigned long long)m->offset);
			if (a->sh->nclaims && m->offset > a->sh->claim_off[a->sh->nclaims - 1] &&
			    !past_hole_ms)
				past_hole_ms = now;
			CHILD_CHECK(mp_unseal(m->value, m->value_len, &seq, &prod),
				    "record %llu damaged (%zu bytes)", (unsigned long long)m->offset,
				    m->value_len);
			if (prod == END_PRODUCER) {
				CHILD_CHECK(seq == next_seq[STEADY], "END after %llu of %llu",
					    (unsigned long long)next_seq[STEADY],
					    (unsigned long long)seq);
				end = true;
				break;
			}
			CHILD_CHECK(prod < a->nprod, "producer %u", prod);
			/* dense: a producer dies after its last committed record,
			 * never with a gap before it */
			CHILD_CHECK(seq == next_seq[prod], "producer %u: seq %llu at offset %llu, "
				    "expected %llu", prod, (unsigned long long)seq,
				    (unsigned long long)m->offset, (unsigned long long)next_seq[prod]);
			next_seq[prod]++;
			delivered++;
		}
	}
	shmbus_consumer_stats(c, &st);
	printf("# consumer %d: %llu records, %llu offsets skipped as aborted, %llu claims "
	       "unblocked by it, longest wait %lld ms\n", (int)getpid(),
	       (unsigned long long)delivered, (unsigned long long)st.aborted_skipped,
	       (unsigned long long)st.unblocked, (long long)max_gap);
	fflush(stdout);
	CHILD_CHECK(st.laps == 0 && st.lost == 0, "laps %llu lost %llu", (unsigned long long)st.laps,
		    (unsigned long long)st.lost);
	if (a->sh->nclaims) {
		CHILD_CHECK(st.aborted_skipped >= a->sh->nclaims, "only %llu offsets skipped",
			    (unsigned long long)st.aborted_skipped);
		CHILD_CHECK(past_hole_ms - a->sh->killed_ms <= a->hole_deadline_ms,
			    "first record past the dead claim(s) %lld ms after the kill (unblock "
			    "timeout %d ms)", (long long)(past_hole_ms - a->sh->killed_ms),
			    a->unblock_ms);
	}
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void make_topic(struct mp_env *env, const char *name, uint64_t cap,
		       enum shmbus_policy policy)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = cap, .policy = policy);

	assert_ok(shmbus_topic_create(env->bus, name, &o));
}

/*
 * One producer dies holding `nclaims` claims; a steady producer appends
 * before and after.  With reap=false the dead producer stays a zombie
 * (its parent, the test, has not waited for it) until the consumers end.
 */
static void run_dead_claims(struct mp_env *env, uint32_t nclaims, bool reap, int unblock_ms,
			    int hole_deadline_ms)
{
	struct shared *sh = mp_shared(sizeof *sh);
	struct crash_arg victim = { .root = env->root, .topic = "crash", .sh = sh, .id = 1,
				    .count = 500, .nclaims = nclaims };
	struct crash_arg steady = { .root = env->root, .topic = "crash", .sh = sh, .id = STEADY,
				    .count = 20000, .cpu = 0 };
	struct crash_arg cons[2];
	pid_t vpid, pids[3];

	make_topic(env, "crash", 16 << 20, SHMBUS_POLICY_OVERWRITE);
	for (int j = 0; j < 2; j++) {
		cons[j] = (struct crash_arg){ .root = env->root, .topic = "crash", .sh = sh,
					      .unblock_ms = unblock_ms, .copy = j, .nprod = 2,
					      .hole_deadline_ms = hole_deadline_ms,
					      .deadline_ms = hole_deadline_ms + 3000, .cpu = 1 };
		pids[j] = mp_spawn(consumer_main, &cons[j]);
	}
	pids[2] = mp_spawn(steady_main, &steady);
	vpid = mp_spawn(victim_main, &victim);
	assert_true(mp_await(&sh->claimed, 10000));
	kill(vpid, SIGKILL);
	sh->killed_ms = tu_ms();
	if (reap)
		assert_int_equal(mp_reap(vpid, 5000), 128 + SIGKILL);
	mp_sleep_us(200000);
	mp_set(&sh->stop, 1);
	mp_wait_ok(pids, 3, 25000, "consumers and steady producer");
	if (!reap)
		assert_int_equal(mp_reap(vpid, 5000), 128 + SIGKILL);
	{
		SHMBUS_OPTS(shmbus_partition_info, info);

		assert_ok(shmbus_partition_info(env->bus, "crash", 0, &info));
		assert_true(info.aborted_claims >= nclaims);
	}
	munmap(sh, sizeof *sh);
}

/* kill -9 between claim and commit: consumers abort the dead claim after
 * their unblock timeout (200 ms) and go on. */
static void test_crash_between_claim_and_commit(void **state)
{
	run_dead_claims(*state, 1, true, 200, 200 + 2000);
}

/* The same with the default unblock timeout (1 s). */
static void test_crash_default_unblock_timeout(void **state)
{
	run_dead_claims(*state, 1, true, 0, 1000 + 2000);
}

/* A process that dies holding 40 claims (one per producer, as a process
 * killed in the middle of a batch leaves up to 64 claimed frames): to be
 * passed within the unblock timeout (100 ms) plus a margin, not one
 * timeout per frame. */
static void test_crash_many_open_claims(void **state)
{
	run_dead_claims(*state, 40, true, 100, 100 + 2000);
}

/* The dead producer is a zombie: it no longer runs, but its parent has
 * not collected it yet.  Its claim must still be aborted. */
static void test_crash_claim_of_unreaped_producer(void **state)
{
	run_dead_claims(*state, 1, false, 100, 100 + 2000);
}

/*
 * Producers killed at random points while looping send_batch of 256
 * records, several times, on a backpressure ring (so consumers lose
 * nothing and every producer's records must be dense up to its death).
 */
static void test_crash_mid_batch(void **state)
{
	struct mp_env *env = *state;
	struct shared *sh = mp_shared(sizeof *sh);
	struct crash_arg steady = { .root = env->root, .topic = "batch", .sh = sh, .id = STEADY,
				    .count = 1000, .value_len = 208, .block = true, .cpu = 0 };
	struct crash_arg batcher[MAXPROD], cons[2];
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 1 << 20,
		    .policy = SHMBUS_POLICY_BACKPRESSURE);
	SHMBUS_OPTS(shmbus_partition_info, info);
	uint64_t rng = 2024;
	const int iterations = 10;
	pid_t pids[3];
	int64_t end;

	assert_ok(shmbus_topic_create(env->bus, "batch", &o));
	for (int j = 0; j < 2; j++) {
		cons[j] = (struct crash_arg){ .root = env->root, .topic = "batch", .sh = sh,
					      .unblock_ms = 20, .copy = j, .nprod = 1 + iterations,
					      .deadline_ms = 25000, .cpu = 1 };
		pids[j] = mp_spawn(consumer_main, &cons[j]);
	}
	/* both consumers hold the producers back before anything is sent */
	end = tu_ms() + 10000;
	do {
		assert_true(tu_ms() < end);
		mp_sleep_us(1000);
		assert_ok(shmbus_partition_info(env->bus, "batch", 0, &info));
	} while (info.registered_consumers < 2);
	pids[2] = mp_spawn(steady_main, &steady);
	for (int i = 1; i <= iterations; i++) {
		pid_t b;

		/* 208-byte values: 256-byte frames that tile the ring */
		batcher[i] = (struct crash_arg){ .root = env->root, .topic = "batch", .sh = sh,
						 .id = (uint32_t)i, .value_len = 208, .block = true,
						 .cpu = 0 };
		b = mp_spawn(batcher_main, &batcher[i]);
		mp_sleep_us(2000 + (long)(mp_rand(&rng) % 20000));
		kill(b, SIGKILL);
		assert_int_equal(mp_reap(b, 5000), 128 + SIGKILL);
	}
	mp_set(&sh->stop, 1);
	mp_wait_ok(pids, 3, 25000, "consumers and steady producer");
	assert_ok(shmbus_partition_info(env->bus, "batch", 0, &info));
	print_message("# %d producers killed mid-batch: %llu offsets, %llu aborted\n", iterations,
		      (unsigned long long)info.high, (unsigned long long)info.aborted_claims);
	munmap(sh, sizeof *sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_between_claim_and_commit, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_crash_default_unblock_timeout, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_crash_many_open_claims, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_crash_claim_of_unreaped_producer, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_crash_mid_batch, mp_setup, mp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
