/*
 * test_daemon.h - what tests/test_daemon*.c share: a tmpfs root and a
 * scratch directory per test (and a disk root under /var/tmp when a test
 * asks for one), the daemons it started, killed at teardown by pid, and
 * helpers to write configurations, read logs and hold a claim in a child
 * that is then killed.  On top of lib/daemonutil.h and test_mp.h.
 *
 * Everything is static inline: each test binary uses a different subset.
 */
#ifndef SHMBUS_TEST_DAEMON_H
#define SHMBUS_TEST_DAEMON_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "lib/daemonutil.h"
#include "test_mp.h"

#define READY_MS 5000   /* start-up, up to READY=1 */
#define STOP_MS  5000   /* SIGTERM to exit */

struct env {
	char *root;                 /* tmpfs root (tu_tmpdir) */
	char scratch[300];          /* configs and extra logs: ROOT.x/ */
	char disk[300];             /* a disk root, when a test makes one */
	struct tu_daemon d[3];
};

static inline int daemon_setup(void **state)
{
	static struct env env;

	memset(&env, 0, sizeof env);
	env.root = tu_tmpdir("daemon");
	snprintf(env.scratch, sizeof env.scratch, "%s.x", env.root);
	if (mkdir(env.scratch, 0700) < 0)
		fail_msg("mkdir %s: %s", env.scratch, strerror(errno));
	*state = &env;
	return 0;
}

static inline int daemon_teardown(void **state)
{
	struct env *env = *state;

	mp_kill_all();
	for (int i = 0; i < 3; i++) {
		tu_daemon_kill(&env->d[i]);
		if (env->d[i].log[0])
			unlink(env->d[i].log);
	}
	tu_rmrf(env->root);
	tu_rmrf(env->scratch);
	if (env->disk[0]) {
		char log[320];

		snprintf(log, sizeof log, "%s.shmbusd.log", env->disk);
		unlink(log);
		tu_rmrf(env->disk);
	}
	free(env->root);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static inline void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		fail_msg("cannot write %s: %s", path, strerror(errno));
}

/* A file of the scratch directory, written; returns its path (static). */
static inline const char *conf(struct env *env, const char *name, const char *text)
{
	static char path[4][400];
	static int i;
	char *p = path[i++ % 4];

	snprintf(p, sizeof path[0], "%s/%s", env->scratch, name);
	write_file(p, text);
	return p;
}

/* The whole file as a string (malloc'd; "" if unreadable). */
static inline char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, (1 << 20) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

/* Fail, with the daemon's log, unless its log has `needle` within ms. */
static inline void expect_log(struct tu_daemon *d, const char *needle, int ms)
{
	if (!tu_daemon_log_has(d, needle, ms)) {
		tu_daemon_dump(d);
		fail_msg("the daemon's log has no \"%s\" after %d ms", needle, ms);
	}
}

static inline void start_or_fail(struct tu_daemon *d, const char *root, const char *const *args,
			  const char *const *env)
{
	if (tu_daemon_start(d, root, args, env, READY_MS) < 0)
		fail_msg("shmbusd did not start on %s", root);
}

static inline void stop_ok(struct tu_daemon *d)
{
	int st = tu_daemon_stop(d, STOP_MS);

	if (st != 0) {
		tu_daemon_dump(d);
		fail_msg("shmbusd exited with %d on SIGTERM, not 0", st);
	}
}

/* A root on a disk filesystem (the page cache is the shared memory);
 * skips the test when /var/tmp is tmpfs. */
static inline void disk_root(struct env *env)
{
	struct statfs sf;
	char tmpl[] = "/var/tmp/shmbus-test-disk-XXXXXX";

	if (!mkdtemp(tmpl))
		fail_msg("mkdtemp %s: %s", tmpl, strerror(errno));
	snprintf(env->disk, sizeof env->disk, "%s", tmpl);
	if (statfs(env->disk, &sf) < 0 || sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)
		tu_skip("/var/tmp is not on a disk filesystem here");
}

static inline void create_topic(shmbus *bus, const char *name, uint32_t parts, uint64_t cap,
			 int64_t retention_ms)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = parts, .capacity = cap,
		    .retention_ms = retention_ms);

	assert_ok(shmbus_topic_create(bus, name, &o));
}

static inline void send_str(shmbus_producer *p, int32_t part, const char *s, uint64_t *off)
{
	struct shmbus_record r = { .value = s, .value_len = strlen(s) };

	assert_ok(shmbus_producer_send(p, part, &r, off));
}

static inline uint64_t low_offset(shmbus *bus, const char *topic, uint32_t part)
{
	SHMBUS_OPTS(shmbus_partition_info, pi);

	assert_ok(shmbus_partition_info(bus, topic, part, &pi));
	return pi.low;
}

/*
 * A producer that appends `before` records, claims (zero-copy), tells the
 * parent, and waits to be killed.  claimer_start() forks it and waits
 * until it has opened the bus; claimer_kill() lets it make its producer,
 * write and claim, then kills it.
 *
 * The daemon aborts a dead process's claim at once if it knows the
 * process (it registered over the control socket, or the daemon found it
 * in a writer slot when it mapped the partition), else after
 * unblock_timeout_ms (the unblocker).  A claimer started while no daemon
 * serves the root, and let go once the daemon runs, is neither: its claim
 * is the unblocker's.
 */
struct claimer {
	const char *root, *topic;
	int before;                 /* records sent first */
	volatile int opened, go, claimed;
	int64_t claim_ms;
	uint64_t claim_off;
	pid_t pid;
};

static inline int claimer_main(void *argp)
{
	struct claimer *a = argp;
	struct shmbus_record meta = { .key = "k", .key_len = 1 };
	shmbus_producer *p = NULL;
	struct shmbus_claim c;
	shmbus *bus = mp_open(a->root);
	char v[32];

	mp_set(&a->opened, 1);
	CHILD_CHECK(mp_await(&a->go, 30000), "no go within 30 s");
	CHILD_CHECK(shmbus_producer_new(bus, a->topic, NULL, &p) == 0, "producer_new");
	for (int i = 0; i < a->before; i++) {
		struct shmbus_record r = { .value = v, .value_len = 0 };

		r.value_len = (size_t)snprintf(v, sizeof v, "before-%d", i);
		CHILD_CHECK(shmbus_producer_send(p, 0, &r, NULL) == 0, "send");
	}
	CHILD_CHECK(shmbus_producer_claim(p, 0, &meta, 64, &c) == 0, "claim");
	memcpy(c.value, "never committed", 15);
	a->claim_off = c.offset;
	a->claim_ms = tu_ms();
	mp_set(&a->claimed, 1);
	for (;;)
		pause();
	return 0;
}

static inline void claimer_start(struct claimer *a)
{
	a->pid = mp_spawn(claimer_main, a);
	if (!mp_await(&a->opened, 5000))
		fail_msg("the claimer did not open the bus within 5 s");
}

/* Let it claim, and kill it once it holds its claim; returns its pid. */
static inline pid_t claimer_kill(struct claimer *a)
{
	mp_set(&a->go, 1);
	if (!mp_await(&a->claimed, 5000))
		fail_msg("the claimer did not claim within 5 s");
	kill(a->pid, SIGKILL);
	assert_int_equal(mp_reap(a->pid, 2000), 128 + SIGKILL);
	return a->pid;
}

static inline pid_t kill_claimer(struct claimer *a)
{
	claimer_start(a);
	return claimer_kill(a);
}

/* Has the daemon aborted the claim of dead process `pid`, by its
 * unblocker or, if the process had registered, through its pidfd? */
static inline bool claim_aborted(struct tu_daemon *d, pid_t pid, int ms)
{
	char unblocked[96], gone[96];
	int64_t end = tu_ms() + ms;

	snprintf(unblocked, sizeof unblocked, "of a claim pid %d has held", (int)pid);
	snprintf(gone, sizeof gone, "client pid %d exited: 1 claimed offset aborted", (int)pid);
	do {
		if (tu_daemon_log_has(d, unblocked, 0) || tu_daemon_log_has(d, gone, 0))
			return true;
		mp_sleep_us(20000);
	} while (tu_ms() < end);
	return false;
}

#endif
