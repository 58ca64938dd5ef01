/*
 * test_mp_idle_producers.c - the shape of a soak: four producer
 * processes on one 1 MiB overwrite partition, each sending as fast as it
 * can in bursts of random length and idling a few milliseconds between
 * bursts and after any failure.  Other producers lap an idle one's last
 * position many times over.
 *
 * -EBUSY is right only while another producer holds a claim a whole lap
 * behind, that is while it is inside a send (stopped or descheduled in the
 * middle of it) or holds a zero-copy claim.  A fifth process does the
 * latter now and then, 20 ms at a time, so that the four are refused and
 * back off for up to 50 ms, as an application would.  A producer that is idle
 * holds no claim, so no send may fail naming it.  Each producer publishes
 * when it enters and leaves send() (the holder: its claim); a send that
 * fails with -EBUSY checks the producer its message names: if that one was
 * idle from the start of the failed send to its end, the refusal was
 * wrong.  After the soak, with all of them idle, another producer laps the
 * ring three times without a refusal.
 *
 * No speed is asserted; the counts are printed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "test_mp.h"

#define CAP       (1u << 20)
#define NPROD     4         /* soak producers; one more process holds claims */
#define NPROC     (NPROD + 1)
#define HOLD_MS   20
#define BACKOFF_MS 50        /* at most, after a refusal */
#define VLEN      24u       /* 48-byte header + 24: 72-byte frames */
#define SOAK_MS   2000
#define BURST_MAX 4000

struct prod {
	int pid;
	volatile uint64_t calls;     /* odd while inside send() */
	uint64_t sent, busy, busy_on_idle, other_errors;
	char wrong[256];             /* the first refusal that named an idle producer */
};

struct shared {
	volatile int ready, go, stop;
	struct prod p[NPROC];
};

struct arg {
	const char *root;
	struct shared *sh;
	int id;
};

/* The producer an -EBUSY message names, or -1. */
static int named(const struct shared *sh, const char *msg)
{
	const char *at = strstr(msg, "(pid ");
	long pid;

	if (!at)
		return -1;
	pid = strtol(at + 5, NULL, 10);
	for (int i = 0; i < NPROC; i++)
		if (sh->p[i].pid == pid)
			return i;
	return -1;
}

static uint64_t calls_of(const struct shared *sh, int i)
{
	return __atomic_load_n(&sh->p[i].calls, __ATOMIC_ACQUIRE);
}

/* One send, with the others' state at its start; an -EBUSY that names a
 * producer idle all along is counted as wrong. */
static int send_one(struct arg *a, shmbus_producer *pr, const struct shmbus_record *r)
{
	struct prod *me = &a->sh->p[a->id];
	uint64_t before[NPROC];
	int rc, j;

	for (int i = 0; i < NPROC; i++)
		before[i] = calls_of(a->sh, i);
	__atomic_store_n(&me->calls, me->calls + 1, __ATOMIC_RELEASE);
	rc = shmbus_producer_send(pr, 0, r, NULL);
	__atomic_store_n(&me->calls, me->calls + 1, __ATOMIC_RELEASE);
	if (rc >= 0) {
		me->sent++;
		return rc;
	}
	if (rc != -EBUSY) {
		me->other_errors++;
		return rc;
	}
	me->busy++;
	j = named(a->sh, shmbus_errmsg());
	if (j < 0 || (before[j] % 2 == 0 && calls_of(a->sh, j) == before[j])) {
		if (me->busy_on_idle++ == 0)
			snprintf(me->wrong, sizeof me->wrong, "%s (that producer was %s)",
				 shmbus_errmsg(), j < 0 ? "none of the soak's" : "idle all along");
	}
	return rc;
}

static int producer_main(void *argp)
{
	struct arg *a = argp;
	static uint8_t val[VLEN];
	struct shmbus_record r = { .value = val, .value_len = VLEN };
	uint64_t rng = 1000 + (uint64_t)a->id;
	shmbus_producer *pr = NULL;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(shmbus_producer_new(bus, "soak", NULL, &pr) == 0, "producer_new");
	__atomic_fetch_add(&a->sh->ready, 1, __ATOMIC_ACQ_REL);
	CHILD_CHECK(mp_await(&a->sh->go, 10000), "no go");
	while (!__atomic_load_n(&a->sh->stop, __ATOMIC_ACQUIRE)) {
		uint64_t burst = 1 + mp_rand(&rng) % BURST_MAX;

		for (uint64_t i = 0; i < burst; i++) {
			int rc;

			memcpy(val, &i, sizeof i);
			rc = send_one(a, pr, &r);
			CHILD_CHECK(rc >= 0 || rc == -EBUSY, "send = %d", rc);
			if (rc == -EBUSY) {
				/* back off, then go on */
				mp_sleep_us((long)(mp_rand(&rng) % (BACKOFF_MS * 1000)));
				break;
			}
		}
		mp_sleep_us((long)(mp_rand(&rng) % 3000));
	}
	shmbus_producer_free(pr);
	shmbus_close(bus);
	return 0;
}

/* Now and then, holds a zero-copy claim for HOLD_MS (a producer stopped
 * between its claim and its commit): the others are refused, rightly. */
static int holder_main(void *argp)
{
	struct arg *a = argp;
	struct prod *me = &a->sh->p[a->id];
	struct shmbus_record meta = { 0 };
	shmbus_producer *pr = NULL;
	shmbus *bus = mp_open(a->root);
	uint64_t rng = 77;

	CHILD_CHECK(shmbus_producer_new(bus, "soak", NULL, &pr) == 0, "producer_new");
	__atomic_fetch_add(&a->sh->ready, 1, __ATOMIC_ACQ_REL);
	CHILD_CHECK(mp_await(&a->sh->go, 10000), "no go");
	while (!__atomic_load_n(&a->sh->stop, __ATOMIC_ACQUIRE)) {
		struct shmbus_claim c;
		int rc;

		mp_sleep_us(100000 + (long)(mp_rand(&rng) % 100000));
		__atomic_store_n(&me->calls, me->calls + 1, __ATOMIC_RELEASE);
		rc = shmbus_producer_claim(pr, 0, &meta, VLEN, &c);
		CHILD_CHECK(rc == 0 || rc == -EBUSY, "claim = %d", rc);
		if (rc == 0) {
			mp_sleep_us(HOLD_MS * 1000);
			CHILD_CHECK(shmbus_producer_commit(pr, &c, VLEN) == 0, "commit");
			me->sent++;
		}
		__atomic_store_n(&me->calls, me->calls + 1, __ATOMIC_RELEASE);
	}
	shmbus_producer_free(pr);
	shmbus_close(bus);
	return 0;
}

/* With every soak producer idle, a fresh one laps the ring three times. */
static void fresh_producer_laps(struct mp_env *env)
{
	static uint8_t val[VLEN];
	struct shmbus_record r = { .value = val, .value_len = VLEN };
	shmbus_producer *pr = NULL;

	assert_ok(shmbus_producer_new(env->bus, "soak", NULL, &pr));
	for (uint64_t i = 0; i < 3 * CAP / 72; i++) {
		int rc = shmbus_producer_send(pr, 0, &r, NULL);

		if (rc < 0)
			fail_msg("with the soak's producers idle, a fresh producer's send %llu = %d: %s",
				 (unsigned long long)i, rc, shmbus_errmsg());
	}
	shmbus_producer_free(pr);
}

static void test_idle_producers_hold_nobody_back(void **state)
{
	struct mp_env *env = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = CAP);
	struct shared *sh = mp_shared(sizeof *sh);
	struct arg args[NPROC];
	pid_t pids[NPROC];
	uint64_t sent = 0, busy = 0, wrong = 0;

	assert_ok(shmbus_topic_create(env->bus, "soak", &o));
	for (int i = 0; i < NPROC; i++) {
		args[i] = (struct arg){ .root = env->root, .sh = sh, .id = i };
		pids[i] = mp_spawn(i < NPROD ? producer_main : holder_main, &args[i]);
		sh->p[i].pid = pids[i];
	}
	for (int64_t end = tu_ms() + 10000; __atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE) < NPROC;)
		if (tu_ms() > end)
			fail_msg("the producers did not start");
	mp_set(&sh->go, 1);
	mp_sleep_us(SOAK_MS * 1000);
	mp_set(&sh->stop, 1);
	mp_wait_ok(pids, NPROC, 20000, "producer");
	for (int i = 0; i < NPROD; i++) {
		sent += sh->p[i].sent;
		busy += sh->p[i].busy;
		wrong += sh->p[i].busy_on_idle;
		if (sh->p[i].wrong[0])
			print_message("# producer %d: %s\n", i, sh->p[i].wrong);
	}
	print_message("# %d producers, %d ms, %llu claims held: %llu records sent, %llu refused "
		      "with -EBUSY, %llu of them naming an idle producer\n", NPROD, SOAK_MS,
		      (unsigned long long)sh->p[NPROD].sent, (unsigned long long)sent,
		      (unsigned long long)busy, (unsigned long long)wrong);
	if (wrong)
		fail_msg("%llu sends were refused with -EBUSY naming a producer that was idle",
			 (unsigned long long)wrong);
	fresh_producer_laps(env);
	munmap(sh, sizeof *sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_idle_producers_hold_nobody_back, mp_setup,
						mp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
