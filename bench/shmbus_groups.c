/*
 * shmbus_groups.c - consumer groups coordinated by shmbusd (issue #11):
 *
 *  - groups.M<n>: n member processes share a 64-partition topic.  Each
 *    event kills one member (kill -9) that owns partitions, writes one
 *    record to each of its partitions once it is dead, and times from the
 *    kill to the last of those records being read by the others
 *    ("kill_p50"); then starts a replacement member and times from the
 *    start of its subscribe to its first record, while records arrive on
 *    every partition every half millisecond ("join_p50").
 *  - groups.poll: the cost of reading one record through a group member
 *    against a manually assigned consumer, on one partition of 1M records
 *    (zero-copy, batches of 256), and their ratio.
 *
 * It starts its own shmbusd (--shmbusd PATH, default $BUILD/shmbusd or
 * build/shmbusd) on a temporary root under --tmpdir (default /dev/shm),
 * and stops it by pid at the end.
 */
#include "common.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus.h"

#define NPART 64
#define MAXM  64
#define EVENT_TIMEOUT_NS (5LL * 1000000000)

struct gshared {
	int32_t owner[NPART];
	int64_t marker_read[NPART];   /* when a member read a record "m" */
	int64_t sub_start[MAXM + 1];  /* a member's subscribe began */
	int64_t first[MAXM + 1];      /* its first record */
	int stop;
};

static struct gshared *G;
static char root[PATH_MAX];
static const char *tmpdir = "/dev/shm";
static const char *shmbusd;
static pid_t daemon_pid;
static shmbus *bus;

static int own_opt(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return 0;
	if (!strcmp(argv[*i], "--tmpdir"))
		tmpdir = argv[++*i];
	else if (!strcmp(argv[*i], "--shmbusd"))
		shmbusd = argv[++*i];
	else
		return 0;
	return 1;
}

static void on_assigned(void *ctx, shmbus_member *m, const struct shmbus_topic_partition *tp,
			size_t n)
{
	(void)ctx;
	(void)m;
	for (size_t i = 0; i < n; i++)
		if (tp[i].partition < NPART)
			__atomic_store_n(&G->owner[tp[i].partition], getpid(), __ATOMIC_RELEASE);
}

static int member(int slot, const char *group, const char *topic)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = root, .no_create = true);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .reset = SHMBUS_RESET_LATEST);
	const char *topics[1] = { topic };
	SHMBUS_OPTS(shmbus_member_opts, o, .group = group, .topics = topics, .ntopics = 1,
		    .consumer = &co, .on_assigned = on_assigned);
	struct shmbus_message msgs[64];
	shmbus_member *m;
	shmbus *b;

	if (shmbus_open(&oo, &b) < 0)
		return 1;
	G->sub_start[slot] = mono_ns();
	if (shmbus_member_subscribe(b, &o, &m) < 0) {
		fprintf(stderr, "member: %s\n", shmbus_errmsg());
		return 1;
	}
	while (!__atomic_load_n(&G->stop, __ATOMIC_ACQUIRE)) {
		int n = shmbus_member_poll(m, msgs, 64, 100);
		int64_t now = mono_ns();

		if (n < 0)
			return 1;
		if (n > 0 && !G->first[slot])
			G->first[slot] = now;
		for (int i = 0; i < n; i++)
			if (msgs[i].value_len == 1 && *(const char *)msgs[i].value == 'm' &&
			    msgs[i].partition < NPART)
				__atomic_store_n(&G->marker_read[msgs[i].partition], now,
						 __ATOMIC_RELEASE);
	}
	shmbus_member_free(m);
	shmbus_close(b);
	return 0;
}

static pid_t spawn(int slot, const char *group, const char *topic)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(member(slot, group, topic));
	return pid;
}

/* ------------------------------------------------------------------ */
/* The daemon and the root                                             */

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p) < 0 ? 0 : 0;
}

static int start_daemon(void)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = root);
	SHMBUS_OPTS(shmbus_daemon_status, st);
	char path[PATH_MAX];

	snprintf(root, sizeof root, "%s/shmbus-groups-bench-XXXXXX", tmpdir);
	if (!mkdtemp(root))
		return workers_fail("mkdtemp %s: %s", root, strerror(errno));
	if (!shmbusd) {
		snprintf(path, sizeof path, "%s/shmbusd", getenv("BUILD") ? getenv("BUILD") : "build");
		shmbusd = strdup(path);
	}
	daemon_pid = fork();
	if (daemon_pid == 0) {
		char log[PATH_MAX + 16];
		FILE *f;

		snprintf(log, sizeof log, "%s.log", root);
		f = freopen(log, "w", stderr);
		if (f)
			dup2(fileno(f), 1);
		execl(shmbusd, shmbusd, "--root", root, (char *)NULL);
		_exit(127);
	}
	if (shmbus_open(&oo, &bus) < 0)
		return workers_fail("shmbus_open %s: %s", root, shmbus_errmsg());
	for (int i = 0; i < 100; i++) {
		shmbus_close(bus);
		if (shmbus_open(&oo, &bus) == 0 && shmbus_daemon_status(bus, &st) == 0)
			return 0;
		usleep(50000);
	}
	return workers_fail("%s did not start on %s", shmbusd, root);
}

static void stop_daemon(void)
{
	shmbus_close(bus);
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
	}
	nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	{
		char log[PATH_MAX + 16];

		snprintf(log, sizeof log, "%s.log", root);
		unlink(log);
	}
}

static void send_to(const char *topic, int32_t p, const char *v)
{
	shmbus_producer *pr;
	struct shmbus_record r = { .value = v, .value_len = strlen(v) };

	if (shmbus_producer_new(bus, topic, NULL, &pr) == 0) {
		shmbus_producer_send(pr, p, &r, NULL);
		shmbus_producer_free(pr);
	}
}

/* ------------------------------------------------------------------ */
/* Kill and join                                                       */

struct mcase {
	int m;
	char topic[64], group[64];
	pid_t pids[MAXM + 1];
};

/* Every partition owned by a live member, and each of the m at least its floor share. */
static bool stable(const struct mcase *c, pid_t dead)
{
	int per[MAXM + 1] = { 0 };

	for (int p = 0; p < NPART; p++) {
		int32_t o = __atomic_load_n(&G->owner[p], __ATOMIC_ACQUIRE);
		int k;

		if (!o || o == dead)
			return false;
		for (k = 0; k <= MAXM && c->pids[k] != o; k++)
			;
		if (k <= MAXM)
			per[k]++;
	}
	for (int k = 0; k <= MAXM; k++)
		if (c->pids[k] > 0 && per[k] < NPART / c->m)
			return false;
	return true;
}

static int await_stable(const struct mcase *c, pid_t dead)
{
	int64_t end = mono_ns() + 4 * EVENT_TIMEOUT_NS;

	while (!stable(c, dead))
		if (mono_ns() > end)
			return workers_fail("the group of %d did not settle", c->m);
		else
			usleep(200);
	return 0;
}

/* One kill -9: the time until the victim's partitions are read elsewhere. */
static int kill_one(struct mcase *c, int slot, double *ms)
{
	pid_t v = c->pids[slot];
	bool mine[NPART];
	int64_t t0, last = 0;

	for (int p = 0; p < NPART; p++) {
		mine[p] = G->owner[p] == v;
		G->marker_read[p] = 0;
	}
	t0 = mono_ns();
	kill(v, SIGKILL);
	waitpid(v, NULL, 0);
	c->pids[slot] = 0;
	for (int p = 0; p < NPART; p++)
		if (mine[p])
			send_to(c->topic, p, "m");
	for (int p = 0; p < NPART; p++) {
		while (mine[p] && !__atomic_load_n(&G->marker_read[p], __ATOMIC_ACQUIRE))
			if (mono_ns() - t0 > EVENT_TIMEOUT_NS)
				return workers_fail("partition %d was not read after the kill", p);
		if (mine[p] && G->marker_read[p] > last)
			last = G->marker_read[p];
	}
	*ms = (double)(last - t0) / 1e6;
	return 0;
}

/* A new member: the time from its subscribe to its first record. */
static int join_one(struct mcase *c, int slot, double *ms)
{
	int64_t t0 = mono_ns();

	G->first[slot] = G->sub_start[slot] = 0;
	c->pids[slot] = spawn(slot, c->group, c->topic);
	while (!__atomic_load_n(&G->first[slot], __ATOMIC_ACQUIRE)) {
		for (int p = 0; p < NPART; p++)
			send_to(c->topic, p, "r");
		usleep(500);
		if (mono_ns() - t0 > EVENT_TIMEOUT_NS)
			return workers_fail("the new member read nothing in 5 s");
	}
	*ms = (double)(G->first[slot] - G->sub_start[slot]) / 1e6;
	return 0;
}

static int by_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int run_m(void *arg, double *out)
{
	struct mcase *c = arg;
	int events = B.quick ? 5 : 11, rc = 0;
	double kills[16], joins[16];
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = NPART, .capacity = 1 << 16);
	static int serial;

	snprintf(c->topic, sizeof c->topic, "t%d", ++serial);
	snprintf(c->group, sizeof c->group, "g%d", serial);
	if (shmbus_topic_create(bus, c->topic, &to) < 0)
		return workers_fail("topic: %s", shmbus_errmsg());
	memset(G, 0, sizeof *G);
	memset(c->pids, 0, sizeof c->pids);
	for (int i = 0; i < c->m; i++)
		c->pids[i] = spawn(i, c->group, c->topic);
	rc = await_stable(c, 0);
	for (int e = 0; rc == 0 && e < events; e++) {
		int slot = e % c->m;
		pid_t v = c->pids[slot];

		rc = kill_one(c, slot, &kills[e]);
		if (rc == 0)
			rc = await_stable(c, v);
		if (rc == 0)
			rc = join_one(c, slot, &joins[e]);
		if (rc == 0)
			rc = await_stable(c, v);
	}
	__atomic_store_n(&G->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i <= MAXM; i++)
		if (c->pids[i] > 0)
			waitpid(c->pids[i], NULL, 0);
	shmbus_topic_delete(bus, c->topic);
	if (rc)
		return rc;
	qsort(kills, (size_t)events, sizeof kills[0], by_double);
	qsort(joins, (size_t)events, sizeof joins[0], by_double);
	out[0] = kills[events / 2];
	out[1] = joins[events / 2];
	out[2] = kills[events - 1];
	out[3] = joins[events - 1];
	return 0;
}

/* ------------------------------------------------------------------ */
/* Poll cost                                                           */

#define POLL_RECORDS 1000000

static double read_all(shmbus_consumer *c, shmbus_member *m)
{
	struct shmbus_message msgs[256];
	int64_t t0 = mono_ns();
	long got = 0;

	while (got < POLL_RECORDS) {
		int n = m ? shmbus_member_poll(m, msgs, 256, 100) : shmbus_consumer_poll(c, msgs, 256, 100);

		if (n <= 0)
			return -1;
		got += n;
	}
	return (double)(mono_ns() - t0) / POLL_RECORDS;
}

static int run_poll(void *arg, double *out)
{
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = 1, .capacity = 1 << 26);
	const char *topics[1] = { "pc" };
	SHMBUS_OPTS(shmbus_consumer_opts, co, .reset = SHMBUS_RESET_EARLIEST);
	SHMBUS_OPTS(shmbus_member_opts, mo, .group = "pc", .topics = topics, .ntopics = 1,
		    .consumer = &co, .auto_commit_ms = -1);
	shmbus_producer *p;
	shmbus_consumer *c;
	shmbus_member *m;
	char v[16] = "0123456789abcde";

	(void)arg;
	shmbus_topic_delete(bus, "pc");
	shmbus_group_delete(bus, "pc");
	if (shmbus_topic_create(bus, "pc", &to) < 0 || shmbus_producer_new(bus, "pc", NULL, &p) < 0)
		return workers_fail("topic pc: %s", shmbus_errmsg());
	for (int i = 0; i < POLL_RECORDS; i++) {
		struct shmbus_record r = { .value = v, .value_len = 15 };

		shmbus_producer_send(p, 0, &r, NULL);
	}
	shmbus_producer_free(p);
	/* alternate, best of three each: the first pass also warms the caches */
	out[0] = out[1] = 1e9;
	for (int k = 0; k < 3; k++) {
		double t;

		if (shmbus_consumer_new(bus, &co, &c) < 0 || shmbus_consumer_assign(c, "pc", 0, 0) < 0)
			return workers_fail("consumer: %s", shmbus_errmsg());
		t = read_all(c, NULL);
		shmbus_consumer_free(c);
		out[0] = t > 0 && t < out[0] ? t : out[0];
		shmbus_group_delete(bus, "pc");
		if (shmbus_member_subscribe(bus, &mo, &m) < 0)
			return workers_fail("member: %s", shmbus_errmsg());
		t = read_all(NULL, m);
		shmbus_member_free(m);
		out[1] = t > 0 && t < out[1] ? t : out[1];
	}
	if (out[0] <= 0 || out[1] <= 0)
		return workers_fail("a reader stopped early");
	out[2] = out[1] / out[0];
	return 0;
}

int main(int argc, char **argv)
{
	static const struct bmetric mm[] = {
		{ "kill_p50", "ms", LOWER }, { "join_p50", "ms", LOWER },
		{ "kill_max", "ms", LOWER }, { "join_max", "ms", LOWER },
	};
	static const struct bmetric pm[] = {
		{ "manual", "ns/record", LOWER }, { "member", "ns/record", LOWER },
		{ "ratio", "x", LOWER },
	};
	static const int sizes[] = { 2, 8, 64 };

	b_init("shmbus_groups", argc, argv, own_opt,
	       " [--tmpdir DIR] [--shmbusd PATH (default $BUILD/shmbusd)]");
	G = b_shared(sizeof *G);
	if (!G || start_daemon() < 0) {
		fprintf(stderr, "shmbus_groups: %s\n", workers_why());
		stop_daemon();
		return 1;
	}
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct mcase c = { .m = sizes[i] };
		char id[32], title[96];

		snprintf(id, sizeof id, "groups.M%d", sizes[i]);
		snprintf(title, sizeof title, "rebalance, %d members over %d partitions", sizes[i],
			 NPART);
		b_case(id, title, "kill -9 of a member to all its partitions read by the others; "
		       "a new member's subscribe to its first record (median of the events of a "
		       "run)", mm, 4, run_m, &c);
	}
	b_case("groups.poll", "poll: group member vs manual assignment",
	       "1M records of 15 B on one partition, zero-copy, batches of 256; best of three "
	       "alternating passes each", pm, 3, run_poll,
	       NULL);
	stop_daemon();
	return b_exit();
}
