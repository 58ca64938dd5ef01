/*
 * test_group_coord.c - consumer groups coordinated by a real shmbusd
 * (issue #11): members in this process (one bus handle each, so one
 * control connection each) and in child processes that join, leave,
 * crash (kill -9), stop (SIGSTOP) and come back (static membership).
 *
 * A tracker in shared memory checks, at every assignment callback, that
 * no partition is owned by two live members; the parent checks that every
 * partition ends up owned while members exist, that committed offsets
 * only go forward, and, across cooperative rebalances with
 * commit-on-revoke, that every record is processed exactly once.
 */
#include "test_daemon.h"

#include <sys/wait.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "../util/clock.h"
#include "../util/ctlproto.h"

#define MAXP      64
#define MAXOFF    4096
#define SETTLE_MS 5000

/* What members and the parent share. */
struct tracker {
	int32_t owner[MAXP];          /* pid owning partition p (0: none) */
	int32_t dead[MP_MAX_KIDS];    /* pids the parent killed */
	int violations;
	char why[256];
	uint32_t seen[MAXP][MAXOFF];  /* times each record was processed */
	int stop;                     /* members leave when set */
	int stop_slot[MP_MAX_KIDS];   /* one member leaves */
	int assigned_calls, revoked_calls;
	int64_t first_record_ns[MP_MAX_KIDS];
};

static struct tracker *T;

static bool pid_dead(pid_t pid)
{
	char path[64], st = 0;
	FILE *f;

	for (int i = 0; i < MP_MAX_KIDS; i++)
		if (__atomic_load_n(&T->dead[i], __ATOMIC_ACQUIRE) == pid)
			return true;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fscanf(f, "%*d %*s %c", &st) != 1)
		st = 'Z';
	fclose(f);
	/* a stopped process processes nothing: the coordinator may move its
	 * partitions (after its session timeout) */
	return st == 'Z' || st == 'X' || st == 'T' || st == 't';
}

static void on_assigned(void *ctx, shmbus_member *m, const struct shmbus_topic_partition *tp,
			size_t n)
{
	(void)ctx;
	(void)m;
	__atomic_fetch_add(&T->assigned_calls, 1, __ATOMIC_SEQ_CST);
	for (size_t i = 0; i < n; i++) {
		int32_t p = tp[i].partition, cur = 0, me = getpid();

		if (p >= MAXP)
			continue;
		/* a previous owner must be gone (released, or dead); wait a little
		 * for a killed one to finish dying */
		for (int tries = 0; !__atomic_compare_exchange_n(&T->owner[p], &cur, me, false,
								 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		     tries++, cur = 0) {
			if (cur == me)
				break;
			if (pid_dead(cur)) {
				__atomic_compare_exchange_n(&T->owner[p], &cur, 0, false,
							    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
				continue;
			}
			if (tries > 500) {
				snprintf(T->why, sizeof T->why, "partition %d given to pid %d while "
					 "live pid %d owns it", p, me, cur);
				__atomic_fetch_add(&T->violations, 1, __ATOMIC_SEQ_CST);
				break;
			}
			mp_sleep_us(1000);
		}
	}
}

static void on_revoked(void *ctx, shmbus_member *m, const struct shmbus_topic_partition *tp,
		       size_t n)
{
	int32_t me = getpid();

	(void)ctx;
	(void)m;
	__atomic_fetch_add(&T->revoked_calls, 1, __ATOMIC_SEQ_CST);
	for (size_t i = 0; i < n; i++) {
		int32_t cur = me;

		if (tp[i].partition < MAXP)
			__atomic_compare_exchange_n(&T->owner[tp[i].partition], &cur, 0, false,
						    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
}

struct member_args {
	const char *root;
	const char *group;
	const char *topic;
	const char *pattern;
	const char *instance;
	enum shmbus_assignor assignor;
	int session_ms;
	int slot;                     /* index into first_record_ns */
};

static int subscribe(shmbus *bus, const struct member_args *a, shmbus_member **ret)
{
	const char *topics[1] = { a->topic };
	SHMBUS_OPTS(shmbus_member_opts, o, .group = a->group, .topics = a->pattern ? NULL : topics,
		    .ntopics = a->pattern ? 0 : 1, .pattern = a->pattern,
		    .instance_id = a->instance, .assignor = a->assignor,
		    .session_timeout_ms = a->session_ms, .on_assigned = on_assigned,
		    .on_revoked = on_revoked);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .reset = SHMBUS_RESET_EARLIEST);

	o.consumer = &co;
	return shmbus_member_subscribe(bus, &o, ret);
}

/* A member process: read and count every record until told to stop. */
static int member_main(void *arg)
{
	const struct member_args *a = arg;
	shmbus *bus = mp_open(a->root);
	struct shmbus_message msgs[64];
	shmbus_member *m;
	int rc = subscribe(bus, a, &m);

	CHILD_CHECK(rc == 0, "subscribe = %d: %s", rc, shmbus_errmsg());
	while (!__atomic_load_n(&T->stop, __ATOMIC_ACQUIRE) &&
	       !(a->slot >= 0 && __atomic_load_n(&T->stop_slot[a->slot], __ATOMIC_ACQUIRE))) {
		int n = shmbus_member_poll(m, msgs, 64, 20);

		CHILD_CHECK(n >= 0, "poll = %d: %s", n, shmbus_errmsg());
		if (n > 0 && a->slot >= 0 && !T->first_record_ns[a->slot])
			T->first_record_ns[a->slot] = mono_ns();
		for (int i = 0; i < n; i++) {
			int32_t p = msgs[i].partition, owner;

			if (p >= MAXP || msgs[i].offset >= MAXOFF)
				continue;
			owner = __atomic_load_n(&T->owner[p], __ATOMIC_ACQUIRE);
			if (owner != getpid()) {
				snprintf(T->why, sizeof T->why, "pid %d processed %d@%llu while pid %d "
					 "owns it", (int)getpid(), p, (unsigned long long)msgs[i].offset,
					 owner);
				__atomic_fetch_add(&T->violations, 1, __ATOMIC_SEQ_CST);
			}
			__atomic_fetch_add(&T->seen[p][msgs[i].offset], 1, __ATOMIC_SEQ_CST);
		}
	}
	shmbus_member_free(m);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */

static int setup(void **state)
{
	struct env *e;

	daemon_setup(state);
	e = *state;
	T = mp_shared(sizeof *T);
	start_or_fail(&e->d[0], e->root, NULL, NULL);
	return 0;
}

static int teardown(void **state)
{
	if (T)
		munmap(T, sizeof *T);
	T = NULL;
	return daemon_teardown(state);
}

static shmbus *open_bus(struct env *e)
{
	SHMBUS_OPTS(shmbus_open_opts, o, .root = e->root);
	shmbus *bus = NULL;

	assert_ok(shmbus_open(&o, &bus));
	return bus;
}

/* Partitions of [0, n) owned per the tracker (by live pids). */
static int owned_count(int n)
{
	int k = 0;

	for (int p = 0; p < n; p++)
		k += __atomic_load_n(&T->owner[p], __ATOMIC_ACQUIRE) != 0;
	return k;
}

/* Wait until every one of n partitions is owned by a pid other than `not`. */
static bool all_owned(int n, pid_t not, int ms)
{
	int64_t end = tu_ms() + ms;

	for (;;) {
		int k = 0;

		for (int p = 0; p < n; p++) {
			int32_t o = __atomic_load_n(&T->owner[p], __ATOMIC_ACQUIRE);

			k += o != 0 && o != not;
		}
		if (k == n)
			return true;
		if (tu_ms() > end)
			return false;
		mp_sleep_us(200);
	}
}

static void produce(shmbus *bus, const char *topic, int parts, int per_part)
{
	shmbus_producer *p;

	assert_ok(shmbus_producer_new(bus, topic, NULL, &p));
	for (int k = 0; k < per_part; k++)
		for (int i = 0; i < parts; i++)
			send_str(p, i, "r", NULL);
	shmbus_producer_free(p);
}

/* Every record of [0, per_part) of each partition processed exactly once. */
static void expect_exactly_once(int parts, int per_part)
{
	for (int p = 0; p < parts; p++)
		for (int off = 0; off < per_part; off++)
			if (T->seen[p][off] != 1)
				fail_msg("record %d@%d was processed %u times", p, off, T->seen[p][off]);
}

static void wait_seen(int parts, int per_part, int ms)
{
	int64_t end = tu_ms() + ms;

	for (int p = 0; p < parts; p++)
		while (!__atomic_load_n(&T->seen[p][per_part - 1], __ATOMIC_ACQUIRE)) {
			if (tu_ms() > end)
				fail_msg("partition %d: record %d was never processed", p, per_part - 1);
			mp_sleep_us(500);
		}
}

/* Committed offsets of the group only go forward (except by reset). */
struct commits {
	uint64_t last[MAXP];
	bool seen[MAXP];
};

static int check_commit(void *ctx, const char *topic, int32_t partition, uint64_t offset,
			int64_t commit_ns)
{
	struct commits *c = ctx;

	(void)topic;
	(void)commit_ns;
	if (partition >= MAXP)
		return 0;
	if (c->seen[partition] && offset < c->last[partition])
		fail_msg("the committed offset of partition %d went back from %llu to %llu",
			 partition, (unsigned long long)c->last[partition], (unsigned long long)offset);
	c->last[partition] = offset;
	c->seen[partition] = true;
	return 0;
}

static void sample(shmbus *bus, const char *group, struct commits *c)
{
	int rc = shmbus_group_offsets(bus, group, check_commit, c);

	assert_true(rc == 0 || rc == -ENOENT);
}

static void no_violations(void)
{
	if (T->violations)
		fail_msg("%d violations; the last: %s", T->violations, T->why);
}

static pid_t spawn_member(struct member_args *a)
{
	return mp_spawn(member_main, a);
}

static void stop_all(pid_t *pids, int n)
{
	mp_set(&T->stop, 1);
	for (int i = 0; i < n; i++)
		if (pids[i] > 0 && mp_reap(pids[i], 10000) != 0)
			fail_msg("member %d (pid %d) did not leave cleanly", i, (int)pids[i]);
}

static int owned_by(pid_t pid, int n)
{
	int k = 0;

	for (int p = 0; p < n; p++)
		k += __atomic_load_n(&T->owner[p], __ATOMIC_ACQUIRE) == pid;
	return k;
}

/* Until pid owns want partitions (and all n are owned), sampling commits. */
static void wait_share(shmbus *bus, pid_t pid, int want, int n, struct commits *c)
{
	int64_t end = tu_ms() + SETTLE_MS;

	while (owned_by(pid, n) < want || owned_count(n) < n) {
		if (tu_ms() > end)
			fail_msg("pid %d owns %d partitions, not %d (%d of %d owned)", (int)pid,
				 owned_by(pid, n), want, owned_count(n), n);
		if (c)
			sample(bus, "g", c);
		mp_sleep_us(500);
	}
}

/* Members join and leave while records flow: every record is processed
 * exactly once (commit on revoke), no partition has two live owners, and
 * committed offsets only go forward. */
static void join_and_leave_process_every_record_once(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e);
	struct commits c = { 0 };
	struct member_args a[3];
	pid_t pids[3] = { 0 };

	create_topic(bus, "t", 8, 1 << 20, 0);
	for (int i = 0; i < 3; i++)
		a[i] = (struct member_args){ .root = e->root, .group = "g", .topic = "t", .slot = i };
	pids[0] = spawn_member(&a[0]);
	wait_share(bus, pids[0], 8, 8, &c);
	produce(bus, "t", 8, 100);
	pids[1] = spawn_member(&a[1]);
	wait_share(bus, pids[1], 4, 8, &c);
	produce(bus, "t", 8, 100);
	pids[2] = spawn_member(&a[2]);
	wait_share(bus, pids[2], 2, 8, &c);
	produce(bus, "t", 8, 100);
	mp_set(&T->stop_slot[1], 1); /* one leaves */
	assert_int_equal(mp_reap(pids[1], 10000), 0);
	pids[1] = 0;
	produce(bus, "t", 8, 100);
	wait_seen(8, 400, 10000);
	sample(bus, "g", &c);
	stop_all(pids, 3);
	no_violations();
	expect_exactly_once(8, 400);
	shmbus_close(bus);
}

/* kill -9: the dead member's partitions move to the others at once. */
static void killed_member_partitions_move_at_once(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e);
	struct member_args a[3];
	pid_t pids[3];
	int64_t t0;

	create_topic(bus, "t", 12, 1 << 20, 0);
	for (int i = 0; i < 3; i++) {
		a[i] = (struct member_args){ .root = e->root, .group = "g", .topic = "t", .slot = i };
		pids[i] = spawn_member(&a[i]);
	}
	for (int i = 0; i < 3; i++)
		wait_share(bus, pids[i], 4, 12, NULL);
	t0 = mono_ns();
	kill(pids[1], SIGKILL);
	T->dead[0] = pids[1];
	if (!all_owned(12, pids[1], SETTLE_MS))
		fail_msg("the killed member's partitions did not move");
	print_message("# kill -9 to all partitions owned by the others: %.2f ms\n",
		      (double)(mono_ns() - t0) / 1e6);
	mp_reap(pids[1], 5000);
	pids[1] = 0;
	produce(bus, "t", 12, 20);
	wait_seen(12, 20, 10000);
	stop_all(pids, 3);
	no_violations();
	shmbus_close(bus);
}

/* SIGSTOP: a stuck member loses its partitions after the session
 * timeout; resumed, it reads nothing it lost, and joins again. */
static void stopped_member_loses_partitions_after_session_timeout(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e);
	struct member_args a[2];
	pid_t pids[2];

	create_topic(bus, "t", 4, 1 << 20, 0);
	for (int i = 0; i < 2; i++) {
		a[i] = (struct member_args){ .root = e->root, .group = "g", .topic = "t",
					     .session_ms = 300, .slot = i };
		pids[i] = spawn_member(&a[i]);
		wait_share(bus, pids[i], i ? 2 : 4, 4, NULL);
	}
	kill(pids[1], SIGSTOP);
	if (!all_owned(4, pids[1], SETTLE_MS))
		fail_msg("the stopped member kept its partitions");
	assert_true(tu_daemon_log_has(&e->d[0], "session timeout", 2000));
	produce(bus, "t", 4, 50);
	kill(pids[1], SIGCONT);
	wait_seen(4, 50, 10000);
	wait_share(bus, pids[1], 2, 4, NULL); /* it came back as a new member */
	produce(bus, "t", 4, 50);
	wait_seen(4, 100, 10000);
	stop_all(pids, 2);
	no_violations();
	shmbus_close(bus);
}

/* Static membership: a member that restarts with its instance id within
 * the session timeout gets its partitions back; nobody else moves. */
static void static_member_comes_back_to_its_partitions(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e);
	struct member_args a[3];
	int32_t before[8];
	pid_t pids[3];
	int revoked;

	create_topic(bus, "t", 8, 1 << 20, 0);
	a[0] = (struct member_args){ .root = e->root, .group = "g", .topic = "t",
				     .instance = "worker-1", .session_ms = 5000, .slot = 0 };
	a[1] = (struct member_args){ .root = e->root, .group = "g", .topic = "t", .slot = 1 };
	a[2] = a[0];
	a[2].slot = 2;
	pids[0] = spawn_member(&a[0]);
	wait_share(bus, pids[0], 8, 8, NULL);
	pids[1] = spawn_member(&a[1]);
	wait_share(bus, pids[1], 4, 8, NULL);
	wait_share(bus, pids[0], 4, 8, NULL);
	memcpy(before, T->owner, sizeof before);
	revoked = T->revoked_calls;
	kill(pids[0], SIGKILL);
	T->dead[0] = pids[0];
	mp_reap(pids[0], 5000);
	pids[0] = 0;
	mp_sleep_us(300000);
	/* nobody took the static member's partitions */
	assert_memory_equal(before, T->owner, sizeof before);
	pids[2] = spawn_member(&a[2]);
	wait_share(bus, pids[2], 4, 8, NULL);
	for (int p = 0; p < 8; p++)
		if (before[p] == pids[1])
			assert_int_equal(T->owner[p], pids[1]);
	assert_int_equal(T->revoked_calls, revoked); /* no rebalance */
	assert_true(tu_daemon_log_has(&e->d[0], "came back", 1000));
	stop_all(pids, 3);
	no_violations();
	shmbus_close(bus);
}

/* ------------------------------------------------------------------ */
/* In this process: one bus handle per member                          */

static shmbus_member *join_here(shmbus *bus, const char *topic, const char *pattern,
				enum shmbus_assignor as, int session_ms)
{
	const char *topics[1] = { topic };
	SHMBUS_OPTS(shmbus_member_opts, o, .group = "g", .topics = topic ? topics : NULL,
		    .ntopics = topic ? 1 : 0, .pattern = pattern, .assignor = as,
		    .session_timeout_ms = session_ms);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .reset = SHMBUS_RESET_EARLIEST);
	shmbus_member *m = NULL;
	int rc;

	o.consumer = &co;
	rc = shmbus_member_subscribe(bus, &o, &m);
	if (rc)
		fail_msg("subscribe = %d: %s", rc, shmbus_errmsg());
	return m;
}

static int assigned(shmbus_member *m)
{
	struct shmbus_message msgs[8];
	int n = shmbus_member_poll(m, msgs, 8, 0);

	if (n < 0)
		fail_msg("poll = %d: %s", n, shmbus_errmsg());
	return shmbus_member_assignment(m, NULL, 0);
}

/* Poll every member until their counts are `want` (n members). */
static void settle(shmbus_member **ms, const int *want, int n)
{
	int64_t end = tu_ms() + SETTLE_MS;

	for (;;) {
		bool ok = true;

		for (int i = 0; i < n; i++)
			ok &= assigned(ms[i]) == want[i];
		if (ok)
			return;
		if (tu_ms() > end) {
			for (int i = 0; i < n; i++)
				print_message("# member %d has %d, wants %d\n", i, assigned(ms[i]),
					      want[i]);
			fail_msg("the group did not settle");
		}
		mp_sleep_us(1000);
	}
}

static void assignors_share_as_they_say(void **state)
{
	struct env *e = *state;
	shmbus *b1 = open_bus(e), *b2 = open_bus(e);
	static const struct { enum shmbus_assignor a; int want[2]; } cases[] = {
		{ SHMBUS_ASSIGNOR_RANGE, { 4, 2 } },
		{ SHMBUS_ASSIGNOR_ROUND_ROBIN, { 3, 3 } },
		{ SHMBUS_ASSIGNOR_COOPERATIVE_STICKY, { 3, 3 } },
	};

	create_topic(b1, "x.a", 3, 1 << 16, 0);
	create_topic(b1, "x.b", 3, 1 << 16, 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		shmbus_member *ms[2];
		struct shmbus_group_desc d = { .sz = sizeof d };

		ms[0] = join_here(b1, NULL, "x\\..*", cases[i].a, 0);
		ms[1] = join_here(b2, NULL, "x\\..*", cases[i].a, 0);
		settle(ms, cases[i].want, 2);
		assert_ok(shmbus_group_describe(b1, "g", &d, NULL, NULL, NULL));
		assert_int_equal(d.members, 2);
		assert_string_equal(d.state, "stable");
		shmbus_member_free(ms[0]);
		shmbus_member_free(ms[1]);
	}
	shmbus_close(b1);
	shmbus_close(b2);
}

static void pattern_follows_topics_created_later(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e);
	shmbus_member *m = join_here(bus, NULL, "ev\\..*", 0, 0);
	int want;

	assert_int_equal(assigned(m), 0);
	create_topic(bus, "ev.a", 2, 1 << 16, 0);
	want = 2;
	settle(&m, &want, 1);
	create_topic(bus, "ev.b", 3, 1 << 16, 0);
	create_topic(bus, "other", 1, 1 << 16, 0);
	want = 5;
	settle(&m, &want, 1);
	assert_ok(shmbus_topic_delete(bus, "ev.a"));
	want = 3;
	settle(&m, &want, 1);
	shmbus_member_free(m);
	shmbus_close(bus);
}

/* A member that stopped polling past its session timeout is fenced: its
 * commit fails with -ESTALE and a message that says so, and the new
 * owner's commit stands. */
static void commit_after_fencing_is_estale(void **state)
{
	struct env *e = *state;
	shmbus *b1 = open_bus(e), *b2 = open_bus(e);
	shmbus_member *a, *b;
	uint64_t off = 0;
	int want = 2;

	create_topic(b1, "f", 2, 1 << 16, 0);
	a = join_here(b1, "f", NULL, 0, 100);
	settle(&a, &want, 1);
	assert_ok(shmbus_member_commit_offset(a, "f", 0, 1));
	b = join_here(b2, "f", NULL, 0, 100);
	/* only b polls: a times out and b gets everything */
	settle(&b, &want, 1);
	assert_ok(shmbus_member_commit_offset(b, "f", 0, 7));
	assert_int_equal(shmbus_member_commit_offset(a, "f", 0, 3), -ESTALE);
	assert_non_null(strstr(shmbus_errmsg(), "moved to another member"));
	assert_non_null(strstr(shmbus_errmsg(), "f/0"));
	{
		shmbus_consumer *c;
		SHMBUS_OPTS(shmbus_consumer_opts, co, .group = "g");

		assert_ok(shmbus_consumer_new(b1, &co, &c));
		assert_ok(shmbus_consumer_committed(c, "f", 0, &off));
		assert_int_equal(off, 7);
		/* a manual commit into a coordinated group is refused too */
		assert_int_equal(shmbus_consumer_commit_offset(c, "f", 0, 1), -ESTALE);
		assert_non_null(strstr(shmbus_errmsg(), "coordinated by shmbusd"));
		shmbus_consumer_free(c);
	}
	shmbus_member_free(a);
	shmbus_member_free(b);
	shmbus_close(b1);
	shmbus_close(b2);
}

/* A member whose poll loop stopped (it heartbeats only from poll) loses
 * its partitions after the group's max-poll interval, long before its
 * session timeout. */
static void member_that_stops_polling_loses_partitions_after_max_poll(void **state)
{
	struct env *e = *state;
	shmbus *b1 = open_bus(e), *b2 = open_bus(e);
	const char *topics[1] = { "mp" };
	SHMBUS_OPTS(shmbus_member_opts, o, .group = "g", .topics = topics, .ntopics = 1,
		    .session_timeout_ms = 60000, .max_poll_interval_ms = 150);
	shmbus_member *a, *b;
	int want = 2;

	create_topic(b1, "mp", 2, 1 << 16, 0);
	assert_ok(shmbus_member_subscribe(b1, &o, &a));
	settle(&a, &want, 1);
	assert_ok(shmbus_member_subscribe(b2, &o, &b));
	settle(&b, &want, 1); /* only b polls */
	assert_true(tu_daemon_log_has(&e->d[0], "max poll interval 150 ms", 2000));
	shmbus_member_free(a);
	shmbus_member_free(b);
	shmbus_close(b1);
	shmbus_close(b2);
}

/* shmbusd stops: the member reads on with what it has; a new daemon
 * takes the group over and the member joins it again. */
static void member_survives_a_daemon_restart(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e);
	shmbus_member *m = join_here(bus, "dr", NULL, 0, 0);
	struct shmbus_message msgs[16];
	struct shmbus_member_info info = { .sz = sizeof info };
	uint64_t first_id;
	int want = 2, got = 0;

	create_topic(bus, "dr", 2, 1 << 16, 0);
	settle(&m, &want, 1);
	assert_ok(shmbus_member_info(m, &info));
	first_id = info.member_id;
	stop_ok(&e->d[0]);
	produce(bus, "dr", 2, 3);
	for (int64_t end = tu_ms() + 5000; got < 6 && tu_ms() < end;) {
		int n = shmbus_member_poll(m, msgs, 16, 10);

		if (n < 0)
			fail_msg("poll without a daemon = %d: %s", n, shmbus_errmsg());
		got += n;
	}
	assert_int_equal(got, 6);
	start_or_fail(&e->d[1], e->root, NULL, NULL);
	for (int64_t end = tu_ms() + 5000;; mp_sleep_us(2000)) {
		assert_true(shmbus_member_poll(m, msgs, 16, 0) >= 0);
		assert_ok(shmbus_member_info(m, &info));
		if (shmbus_member_assignment(m, NULL, 0) == 2 && info.member_id != first_id)
			break;
		if (tu_ms() > end)
			fail_msg("the member did not join the new daemon");
	}
	assert_ok(shmbus_member_commit(m)); /* fenced anew by the new daemon, and valid */
	shmbus_member_free(m);
	shmbus_close(bus);
}

struct rows {
	int n;
	uint64_t committed[8];
	uint64_t lag[8];
};

static int count_part(void *ctx, const struct shmbus_group_partition *p)
{
	struct rows *r = ctx;

	if (p->partition < 8) {
		r->committed[p->partition] = p->committed_valid ? p->committed : ~0ULL;
		r->lag[p->partition] = p->lag;
	}
	r->n++;
	return 0;
}

static void errors_name_the_group_and_the_fix(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e);
	shmbus_member *m;
	const char *topics[1] = { "t" };
	SHMBUS_OPTS(shmbus_member_opts, bad, .group = "g", .pattern = "ev[");
	SHMBUS_OPTS(shmbus_group_reset_opts, r, .topic = "t", .to = SHMBUS_RESET_TO_EARLIEST);
	struct shmbus_group_desc d = { .sz = sizeof d };

	create_topic(bus, "t", 2, 1 << 16, 0);
	assert_int_equal(shmbus_group_describe(bus, "nosuch", &d, NULL, NULL, NULL), -ENOENT);
	assert_non_null(strstr(shmbus_errmsg(), "unknown group \"nosuch\""));
	assert_int_equal(shmbus_member_subscribe(bus, &bad, &m), -EINVAL);
	assert_non_null(strstr(shmbus_errmsg(), "does not compile"));
	m = join_here(bus, "t", NULL, 0, 0);
	assert_int_equal(shmbus_group_reset_offsets(bus, "g", &r), -EBUSY);
	assert_non_null(strstr(shmbus_errmsg(), "has 1 member"));
	assert_int_equal(shmbus_group_delete(bus, "g"), -EBUSY);
	shmbus_member_free(m);
	/* without a daemon: subscribe says how to start one */
	stop_ok(&e->d[0]);
	bad.pattern = NULL;
	bad.topics = topics;
	bad.ntopics = 1;
	assert_int_equal(shmbus_member_subscribe(bus, &bad, &m), -ENOTCONN);
	assert_non_null(strstr(shmbus_errmsg(), "shmbusd --root"));
	shmbus_close(bus);
}

static void reset_offsets_and_describe(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e);
	struct shmbus_message msgs[64];
	shmbus_member *m;
	struct rows rows = { 0 };
	struct shmbus_group_desc d = { .sz = sizeof d };
	SHMBUS_OPTS(shmbus_group_reset_opts, r, .topic = "t", .to = SHMBUS_RESET_TO_EARLIEST,
		    .dry_run = true);
	int got = 0, want = 2;

	create_topic(bus, "t", 2, 1 << 16, 0);
	m = join_here(bus, "t", NULL, 0, 0);
	settle(&m, &want, 1);
	produce(bus, "t", 2, 10);
	for (int64_t end = tu_ms() + 5000; got < 20 && tu_ms() < end;) {
		int n = shmbus_member_poll(m, msgs, 64, 10);

		if (n < 0)
			fail_msg("poll = %d: %s", n, shmbus_errmsg());
		got += n;
	}
	assert_int_equal(got, 20);
	shmbus_member_free(m); /* leaving commits */
	assert_ok(shmbus_group_describe(bus, "g", &d, NULL, count_part, &rows));
	assert_string_equal(d.state, "empty");
	assert_int_equal(rows.n, 2);
	assert_int_equal(rows.committed[0], 10);
	assert_int_equal(rows.lag[1], 0);
	assert_ok(shmbus_group_reset_offsets(bus, "g", &r)); /* dry run: nothing written */
	memset(&rows, 0, sizeof rows);
	assert_ok(shmbus_group_describe(bus, "g", &d, NULL, count_part, &rows));
	assert_int_equal(rows.committed[0], 10);
	r.dry_run = false;
	assert_ok(shmbus_group_reset_offsets(bus, "g", &r));
	r.to = SHMBUS_RESET_SHIFT_BY;
	r.value = 3;
	assert_ok(shmbus_group_reset_offsets(bus, "g", &r));
	memset(&rows, 0, sizeof rows);
	assert_ok(shmbus_group_describe(bus, "g", &d, NULL, count_part, &rows));
	assert_int_equal(rows.committed[0], 3);
	assert_int_equal(rows.lag[0], 7);
	assert_ok(shmbus_group_delete(bus, "g"));
	assert_int_equal(shmbus_group_describe(bus, "g", &d, NULL, NULL, NULL), -ENOENT);
	shmbus_close(bus);
}

/* ------------------------------------------------------------------ */
/* Malformed group requests on a raw connection                       */

static int raw_connect(const char *root)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control", root);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		fail_msg("connect %s: %s", sa.sun_path, strerror(errno));
	return fd;
}

/* Send o, read the RESULT: its status, and its message into msg. */
static int ask(int fd, struct ctl_out *o, char *msg, size_t len)
{
	static uint8_t in[CTL_MSG_MAX];
	struct ctl_msg r;
	int n = ctl_finish(o);
	ssize_t got;

	assert_true(n > 0);
	assert_int_equal(send(fd, o->buf, (size_t)n, 0), n);
	got = recv(fd, in, sizeof in, 0);
	assert_true(got > 0);
	assert_ok(ctl_decode(in, (size_t)got, &r));
	snprintf(msg, len, "%s", r.has[CTL_A_MESSAGE] ? r.str[CTL_A_MESSAGE] : "");
	return (int)ctl_signed(&r, CTL_A_STATUS);
}

static void malformed_group_requests_get_clear_errors(void **state)
{
	struct env *e = *state;
	int fd = raw_connect(e->root);
	uint8_t buf[512];
	struct ctl_out o;
	char msg[800];

	ctl_init(&o, buf, sizeof buf, CTL_GROUP_HEARTBEAT, 1);
	ctl_put_str(&o, CTL_A_GROUP, "g");
	assert_int_equal(ask(fd, &o, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "MEMBER_ID"));

	ctl_init(&o, buf, sizeof buf, CTL_GROUP_HEARTBEAT, 2);
	ctl_put_str(&o, CTL_A_GROUP, "g");
	ctl_put_u64(&o, CTL_A_MEMBER_ID, 99);
	assert_int_equal(ask(fd, &o, msg, sizeof msg), -ENOENT);
	assert_non_null(strstr(msg, "join again"));

	ctl_init(&o, buf, sizeof buf, CTL_GROUP_JOIN, 3);
	ctl_put_str(&o, CTL_A_GROUP, "no/slashes");
	ctl_put_str(&o, CTL_A_TOPIC_LIST, "t");
	assert_int_equal(ask(fd, &o, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "not a valid group name"));

	ctl_init(&o, buf, sizeof buf, CTL_GROUP_JOIN, 4);
	ctl_put_str(&o, CTL_A_GROUP, "g");
	ctl_put_str(&o, CTL_A_TOPIC_LIST, "ok\nbad topic");
	assert_int_equal(ask(fd, &o, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "not a valid topic name"));

	ctl_init(&o, buf, sizeof buf, CTL_GROUP_JOIN, 5);
	ctl_put_str(&o, CTL_A_GROUP, "g");
	ctl_put_str(&o, CTL_A_TOPIC_LIST, "t");
	ctl_put_str(&o, CTL_A_ASSIGNOR, "fastest");
	assert_int_equal(ask(fd, &o, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "assignor \"fastest\" is unknown"));

	ctl_init(&o, buf, sizeof buf, CTL_GROUP_JOIN, 6);
	ctl_put_str(&o, CTL_A_GROUP, "g");
	ctl_put_str(&o, CTL_A_TOPIC_LIST, "t");
	ctl_put_i64(&o, CTL_A_SESSION_TIMEOUT_MS, -5);
	assert_int_equal(ask(fd, &o, msg, sizeof msg), -EINVAL);
	assert_non_null(strstr(msg, "SESSION_TIMEOUT_MS"));

	/* a ragged OFFSETS attribute (33 bytes): refused, nothing written */
	{
		shmbus *bus = open_bus(e);
		SHMBUS_OPTS(shmbus_consumer_opts, co, .group = "g");
		shmbus_consumer *c;

		assert_ok(shmbus_consumer_new(bus, &co, &c)); /* makes the group file */
		ctl_init(&o, buf, sizeof buf, CTL_GROUP_RESET, 7);
		ctl_put_str(&o, CTL_A_GROUP, "g");
		ctl_put_bytes(&o, CTL_A_OFFSETS, (uint8_t[33]){ 1 }, 33);
		assert_int_equal(ask(fd, &o, msg, sizeof msg), -EBADMSG);
		assert_non_null(strstr(msg, "not a multiple of 32"));
		shmbus_consumer_free(c);
		shmbus_close(bus);
	}

	ctl_init(&o, buf, sizeof buf, CTL_GROUP_DESCRIBE, 8);
	ctl_put_str(&o, CTL_A_GROUP, "nosuch");
	assert_int_equal(ask(fd, &o, msg, sizeof msg), -ENOENT);
	assert_non_null(strstr(msg, "unknown group"));
	/* the daemon is still there, and the connection too */
	ctl_init(&o, buf, sizeof buf, CTL_GROUP_LIST, 9);
	assert_int_equal(ask(fd, &o, msg, sizeof msg), 0);
	close(fd);
}

int main(void)
{
#define C(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		C(assignors_share_as_they_say),
		C(pattern_follows_topics_created_later),
		C(commit_after_fencing_is_estale),
		C(member_survives_a_daemon_restart),
		C(member_that_stops_polling_loses_partitions_after_max_poll),
		C(errors_name_the_group_and_the_fix),
		C(reset_offsets_and_describe),
		C(malformed_group_requests_get_clear_errors),
		C(join_and_leave_process_every_record_once),
		C(killed_member_partitions_move_at_once),
		C(stopped_member_loses_partitions_after_session_timeout),
		C(static_member_comes_back_to_its_partitions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
