/*
 * test_topic_create.c - creating large topics (issue #7, item 6): room on
 * the root's filesystem is checked before any file is made, with a
 * message that names the topic, the bytes needed and free, and the fix;
 * partitions per topic are bounded; a topic half made by a creator killed
 * -9 is removed by the next create or delete, by `shmbus topic delete`
 * of its name, and by shmbusd at start; and shmbusd creates off its event
 * loop, so STATUS and the watchdog are answered while a large create runs,
 * and SIGTERM during one stops the daemon at once without leaving a
 * half-made topic.
 *
 * Sizes stay modest (the machine is small and /dev/shm is shared): a few
 * thousand 4 KiB partitions show what a hundred thousand 16 MiB ones
 * would.  The full-filesystem test mounts an 16 MiB tmpfs, so it needs
 * root and skips with the reason otherwise.  Children and daemons are
 * killed by pid; every wait has a deadline.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus.h"
#include "lib/cliutil.h"
#include "lib/daemonutil.h"
#include "lib/testutil.h"
#include "../util/ctlproto.h"

#define READY_MS 5000
/* A daemon that maps thousands of partitions unmaps them when it stops:
 * 0.1 s here, but under TSan (which looks at every page liburcu's
 * call_rcu thread frees) up to 20 s.  A bound, not a speed. */
#define STOP_MS  30000
#if defined(__SANITIZE_THREAD__)
#define MANY     500    /* partitions of a "large" create: still a second under TSan */
#else
#define MANY     5000
#endif

struct env {
	char *dir;          /* tu_tmpdir: the root is under it */
	char root[300];
	bool mounted;       /* a tmpfs was mounted on dir */
	struct tu_daemon d;
	pid_t child;
	char log[320];
};

static int setup(void **state)
{
	static struct env env;

	memset(&env, 0, sizeof env);
	env.dir = tu_tmpdir("create");
	snprintf(env.root, sizeof env.root, "%s/root", env.dir);
	snprintf(env.log, sizeof env.log, "%s.cli.log", env.dir);
	*state = &env;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	if (e->child > 0)
		tu_wait((kill(e->child, SIGKILL), e->child), 5000);
	if (e->d.pid > 0)
		tu_daemon_stop(&e->d, STOP_MS);
	if (e->d.log[0])
		unlink(e->d.log);
	unlink(e->log);
	if (e->mounted)
		umount2(e->dir, MNT_DETACH);
	tu_rmrf(e->dir);
	free(e->dir);
	return 0;
}

static shmbus *open_bus(const char *root)
{
	return tu_open(root);
}

static int create(shmbus *bus, const char *name, uint32_t parts, uint64_t cap)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = parts, .capacity = cap);

	return shmbus_topic_create(bus, name, &o);
}

/* Entries in <root>/topics/<name> (-1: no such directory). */
static int files_of(const char *root, const char *name)
{
	char path[512];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof path, "%s/topics/%s", root, name);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(dir);
	return n;
}

#define assert_has(text, needle)                                                       \
	do {                                                                           \
		if (!strstr((text), (needle)))                                         \
			fail_msg("\"%s\" is not in:\n%s", (needle), (text));           \
	} while (0)

static void start_daemon(struct env *e, const char *const *env)
{
	const char *args[] = { "--log-level", "debug", NULL };

	if (tu_daemon_start(&e->d, e->root, args, env, READY_MS) < 0)
		fail_msg("shmbusd did not start on %s", e->root);
}

static void stop_daemon(struct env *e)
{
	int st = tu_daemon_stop(&e->d, STOP_MS);

	if (st != 0) {
		tu_daemon_dump(&e->d);
		fail_msg("shmbusd exited with %d on SIGTERM, not 0", st);
	}
	e->d.pid = 0;
}

/*
 * Leave a half-made topic: `shmbus topic create NAME` of MANY partitions,
 * killed -9 once it has made some files (stopped first, so it cannot
 * finish meanwhile).
 */
static void half_make(struct env *e, const char *name)
{
	char parts[16];
	int64_t end = tu_ms() + 20000;

	snprintf(parts, sizeof parts, "%d", MANY);
	e->child = tu_cli_spawn(e->root, e->log, (const char *[]){ "topic", "create", name,
				"--partitions", parts, "--capacity", "4K", NULL });
	while (files_of(e->root, name) < 20) {
		if (tu_ms() > end || waitpid(e->child, NULL, WNOHANG) == e->child)
			fail_msg("the creator made %d files of %s, then ended or stalled",
				 files_of(e->root, name), name);
		usleep(200);
	}
	kill(e->child, SIGSTOP);
	if (files_of(e->root, name) >= MANY)
		fail_msg("the creator finished before it was stopped; raise MANY");
	kill(e->child, SIGKILL);
	assert_int_equal(tu_wait(e->child, 5000), 128 + SIGKILL);
	e->child = 0;
}

/* ------------------------------------------------------------------ */
/* Room and bounds                                                     */

static void mount_small(struct env *e)
{
	if (geteuid() != 0)
		tu_skip("mounting a small tmpfs needs root (uid %u)", (unsigned)geteuid());
	if (mount("tmpfs", e->dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0700") < 0)
		tu_skip("cannot mount a tmpfs here: %s", strerror(errno));
	e->mounted = true;
}

/* 4 partitions of 4 MiB need 4 x 4730880 bytes; the 16 MiB filesystem
 * holding the root's own files has less free. */
static void creation_refused_up_front_when_the_filesystem_is_too_small(void **state)
{
	struct env *e = *state;
	shmbus *bus;
	int rc;

	mount_small(e);
	bus = open_bus(e->root);
	rc = create(bus, "big", 4, 4 << 20);
	assert_int_equal(rc, -ENOSPC);
	assert_has(shmbus_errmsg(), "topic \"big\"");
	assert_has(shmbus_errmsg(), "18923520 bytes");
	assert_has(shmbus_errmsg(), "free");
	assert_has(shmbus_errmsg(), "--partitions");
	assert_has(shmbus_errmsg(), "--capacity");
	assert_int_equal(files_of(e->root, "big"), -1);
	/* what fits is made */
	assert_ok(create(bus, "small", 2, 1 << 20));
	shmbus_close(bus);

	/* through shmbusd: the same refusal, from the daemon */
	start_daemon(e, NULL);
	bus = open_bus(e->root);
	rc = create(bus, "big", 4, 4 << 20);
	assert_int_equal(rc, -ENOSPC);
	assert_has(shmbus_errmsg(), "18923520 bytes");
	assert_has(shmbus_errmsg(), "free");
	assert_int_equal(files_of(e->root, "big"), -1);
	shmbus_close(bus);
	stop_daemon(e);
}

static void partitions_per_topic_are_bounded(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);
	char out[4096];

	assert_int_equal(create(bus, "wide", 16385, 4096), -EINVAL);
	assert_has(shmbus_errmsg(), "topic \"wide\"");
	assert_has(shmbus_errmsg(), "16384");
	assert_int_equal(files_of(e->root, "wide"), -1);
	shmbus_close(bus);
	assert_int_equal(tu_cli_run(e->root, (const char *[]){ "topic", "create", "wide",
				    "--partitions", "100000", NULL }, out, sizeof out, 30000), 1);
	assert_has(out, "100000 partitions");
	assert_has(out, "16384");
}

/* ------------------------------------------------------------------ */
/* Half-made topics                                                    */

/* The issue's case: `topic list` hid it and `topic delete` said it did
 * not exist; now delete removes it. */
static void topic_delete_removes_a_half_made_topic(void **state)
{
	struct env *e = *state;
	char out[4096];

	half_make(e, "half");
	assert_int_equal(tu_cli_run(e->root, (const char *[]){ "topic", "list", NULL }, out,
				    sizeof out, 30000), 0);
	assert_null(strstr(out, "half"));
	assert_int_equal(tu_cli_run(e->root, (const char *[]){ "topic", "delete", "half", NULL },
				    out, sizeof out, 30000), 0);
	assert_int_equal(files_of(e->root, "half"), -1);
	/* a name that never existed is still an error */
	assert_int_equal(tu_cli_run(e->root, (const char *[]){ "topic", "delete", "never", NULL },
				    out, sizeof out, 30000), 1);
	assert_has(out, "\"never\"");
}

/* Any next create or delete (of another topic) removes it. */
static void next_create_or_delete_removes_half_made_topics(void **state)
{
	struct env *e = *state;
	shmbus *bus;

	half_make(e, "half");
	bus = open_bus(e->root);
	assert_ok(create(bus, "other", 1, 4096));
	assert_int_equal(files_of(e->root, "half"), -1);
	shmbus_close(bus);

	half_make(e, "half2");
	bus = open_bus(e->root);
	assert_ok(shmbus_topic_delete(bus, "other"));
	assert_int_equal(files_of(e->root, "half2"), -1);
	assert_int_equal(files_of(e->root, "other"), -1);
	shmbus_close(bus);
}

static void daemon_start_removes_half_made_topics(void **state)
{
	struct env *e = *state;
	shmbus *bus = open_bus(e->root);

	assert_ok(create(bus, "kept", 2, 4096));
	shmbus_close(bus);
	half_make(e, "half");
	start_daemon(e, NULL);
	if (!tu_daemon_log_has(&e->d, "removed half-made topic \"half\"", 3000)) {
		tu_daemon_dump(&e->d);
		fail_msg("the daemon did not log the removal");
	}
	assert_int_equal(files_of(e->root, "half"), -1);
	assert_int_equal(files_of(e->root, "kept"), 2);
	stop_daemon(e);
}

/* ------------------------------------------------------------------ */
/* shmbusd stays responsive                                            */

struct creator {
	const char *root;
};

/* A client asking shmbusd for a topic of MANY partitions; exits 0 if it
 * was created, 3 if the daemon answered -ECANCELED (it is stopping). */
static int creator_main(void *arg)
{
	struct creator *c = arg;
	shmbus *bus = NULL;
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = c->root);
	int rc;

	if (shmbus_open(&oo, &bus) < 0)
		return 2;
	rc = create(bus, "many", MANY, 4096);
	if (rc < 0)
		fprintf(stderr, "creator: %d: %s\n", rc, shmbus_errmsg());
	shmbus_close(bus);
	return rc == 0 ? 0 : rc == -ECANCELED ? 3 : 1;
}

static pid_t start_creator(struct env *e)
{
	static struct creator c;
	int64_t end = tu_ms() + 20000;

	c.root = e->root;
	e->child = tu_fork(creator_main, &c);
	while (files_of(e->root, "many") < 20) {
		if (tu_ms() > end || waitpid(e->child, NULL, WNOHANG) == e->child)
			fail_msg("the daemon made %d files of \"many\", then ended or stalled",
				 files_of(e->root, "many"));
		usleep(200);
	}
	return e->child;
}

/*
 * While shmbusd creates a large topic, STATUS is answered and the
 * watchdog pinged.  Before the fix the create ran in the event loop, and
 * neither happened until it was done.  Checked by order, not by speed:
 * the answers must come while the create is still running.
 */
static void status_and_watchdog_are_served_during_a_large_create(void **state)
{
	struct env *e = *state;
	const char *env[] = { "WATCHDOG_USEC=100000", "WATCHDOG_PID=@PID@", NULL };
	int answered = 0, pings = 0, st;
	int64_t worst = 0;
	shmbus *bus;

	start_daemon(e, env);
	bus = open_bus(e->root);
	start_creator(e);
	tu_daemon_notes_clear(&e->d);
	while (waitpid(e->child, &st, WNOHANG) == 0) {
		SHMBUS_OPTS(shmbus_daemon_status, s);
		struct shmbus_topic_info ti = { .sz = sizeof ti };
		int64_t t0 = tu_ms();

		assert_ok(shmbus_daemon_status(bus, &s));
		if (tu_ms() - t0 > worst)
			worst = tu_ms() - t0;
		/* answered before the topic was published: mid-create */
		if (shmbus_topic_describe(bus, "many", &ti) == -ENOENT)
			answered++;
		pings = tu_daemon_notes_copy(&e->d, "WATCHDOG=1", NULL, 0);
		usleep(20000);
	}
	e->child = 0;
	printf("# %d STATUS answers during the create (slowest %lld ms), %d watchdog pings\n",
	       answered, (long long)worst, pings);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(answered >= 3);
	assert_true(pings >= 1);
	assert_int_equal(files_of(e->root, "many"), MANY);
	{
		SHMBUS_OPTS(shmbus_daemon_status, s);

		assert_ok(shmbus_daemon_status(bus, &s));
		assert_int_equal(s.partitions, MANY);
	}
	shmbus_close(bus);
	stop_daemon(e);
}

/* SIGTERM mid-create: the daemon stops at once and cleanly, answers the
 * create with -ECANCELED, and leaves no half-made topic. */
static void sigterm_during_a_large_create_stops_cleanly(void **state)
{
	struct env *e = *state;
	int64_t t0;
	shmbus *bus;
	int st;

	start_daemon(e, NULL);
	start_creator(e);
	t0 = tu_ms();
	st = tu_daemon_stop(&e->d, STOP_MS);
	printf("# shmbusd exited %lld ms after SIGTERM, with %d\n", (long long)(tu_ms() - t0), st);
	if (st != 0) {
		tu_daemon_dump(&e->d);
		fail_msg("shmbusd exited with %d on SIGTERM during a create, not 0", st);
	}
	e->d.pid = 0;
	assert_int_equal(tu_wait(e->child, 10000), 3);
	e->child = 0;
	assert_true(tu_daemon_log_has(&e->d, "topic \"many\"", 0));
	assert_int_equal(files_of(e->root, "many"), -1);
	bus = open_bus(e->root);
	{
		struct shmbus_topic_info ti = { .sz = sizeof ti };

		assert_int_equal(shmbus_topic_describe(bus, "many", &ti), -ENOENT);
	}
	shmbus_close(bus);
}

/* One RESULT from fd within 10 s: its seq and status. */
static void raw_result(int fd, uint32_t *seq, int64_t *status)
{
	static uint8_t buf[CTL_MSG_MAX];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct ctl_msg m;
	ssize_t n;

	if (poll(&pfd, 1, 10000) <= 0)
		fail_msg("no RESULT within 10 s");
	n = recv(fd, buf, sizeof buf, 0);
	if (n <= 0 || ctl_decode(buf, (size_t)n, &m) < 0 || m.hdr.type != CTL_RESULT)
		fail_msg("not a RESULT (recv = %zd)", n);
	*seq = m.hdr.seq;
	*status = ctl_signed(&m, CTL_A_STATUS);
}

/* A peer that pipelines TOPIC_CREATE and STATUS gets their RESULTs in
 * order (protocol.md §3), though the create is served by the worker. */
static void pipelined_results_stay_in_order(void **state)
{
	struct env *e = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t buf[512];
	struct ctl_out o;
	uint32_t seq;
	int64_t st;
	int fd, len;

	start_daemon(e, NULL);
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%.*s/control",
			     (int)sizeof sa.sun_path - 9, e->root) >= sizeof sa.sun_path)
		fail_msg("the root's path is too long for a socket address");
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		fail_msg("connect %s: %s", sa.sun_path, strerror(errno));
	ctl_init(&o, buf, sizeof buf, CTL_TOPIC_CREATE, 1);
	ctl_put_str(&o, CTL_A_NAME, "many");
	ctl_put_u32(&o, CTL_A_PARTITIONS, MANY / 5);
	ctl_put_u64(&o, CTL_A_CAPACITY, 4096);
	len = ctl_finish(&o);
	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	ctl_init(&o, buf, sizeof buf, CTL_STATUS, 2);
	len = ctl_finish(&o);
	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	raw_result(fd, &seq, &st);
	assert_int_equal(seq, 1);
	assert_int_equal(st, 0);
	raw_result(fd, &seq, &st);
	assert_int_equal(seq, 2);
	assert_int_equal(st, 0);
	assert_int_equal(files_of(e->root, "many"), MANY / 5);
	/* a peer that hangs up before its answer leaves the daemon serving */
	ctl_init(&o, buf, sizeof buf, CTL_TOPIC_DELETE, 3);
	ctl_put_str(&o, CTL_A_NAME, "many");
	len = ctl_finish(&o);
	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	close(fd);
	{
		shmbus *bus = open_bus(e->root);
		SHMBUS_OPTS(shmbus_daemon_status, s);
		int64_t end = tu_ms() + 10000;

		while (files_of(e->root, "many") >= 0 && tu_ms() < end)
			usleep(10000);
		assert_int_equal(files_of(e->root, "many"), -1);
		assert_ok(shmbus_daemon_status(bus, &s));
		shmbus_close(bus);
	}
	stop_daemon(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(creation_refused_up_front_when_the_filesystem_is_too_small),
		T(partitions_per_topic_are_bounded),
		T(topic_delete_removes_a_half_made_topic),
		T(next_create_or_delete_removes_half_made_topics),
		T(daemon_start_removes_half_made_topics),
		T(status_and_watchdog_are_served_during_a_large_create),
		T(sigterm_during_a_large_create_stops_cleanly),
		T(pipelined_results_stay_in_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
