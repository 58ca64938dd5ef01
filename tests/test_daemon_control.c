/*
 * test_daemon_control.c - shmbusd's control socket (docs/protocol.md)
 * against real daemon processes: topic administration through the
 * daemon (mode, group, log), STATUS, HELLO registration (a client killed
 * -9 inside a zero-copy claim has it aborted at once, through the pidfd
 * and not the unblock timeout), who may administer (a refused
 * unprivileged peer, an admin group), malformed and hostile messages
 * (the daemon answers, stays up and serves the next client), a client
 * that does not read its replies, the socket's path (stale, in use,
 * longer than sun_path), and the library's fallback to the embedded mode
 * when no daemon runs, when it is killed, or when asked.
 *
 * Each test runs its own daemon on its own root, kills only processes it
 * started, by pid, and waits for nothing without a deadline.  Tests that
 * change credentials need root and skip with the reason otherwise.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "lib/daemonutil.h"
#include "../util/clock.h"
#include "../util/ctlproto.h"

#define READY_MS 5000
#define STOP_MS  5000
#define NOBODY   65534

struct env {
	char *root;
	char conf[300];
	char sock[300];             /* <root>/control */
	struct tu_daemon d;
	shmbus *bus;
	char group[64];             /* a group a test made, deleted at teardown */
	pid_t child;                /* a child a test may leave behind on failure */
};

static uint8_t rbuf[CTL_MSG_MAX + 1];

static int setup(void **state)
{
	static struct env env;

	memset(&env, 0, sizeof env);
	env.root = tu_tmpdir("ctl");
	snprintf(env.conf, sizeof env.conf, "%s.conf", env.root);
	snprintf(env.sock, sizeof env.sock, "%s/control", env.root);
	*state = &env;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];
	int rc = 0;

	if (e->child > 0) {
		kill(e->child, SIGKILL);
		waitpid(e->child, NULL, 0);
	}
	shmbus_close(e->bus);
	/* every daemon must stop cleanly (under ASan: without a leak) */
	if (e->d.pid > 0 && tu_daemon_stop(&e->d, STOP_MS) != 0) {
		tu_daemon_dump(&e->d);
		rc = -1;
	}
	unlink(e->d.log);
	unlink(e->conf);
	tu_rmrf(e->root);
	free(e->root);
	if (e->group[0]) {
		snprintf(cmd, sizeof cmd, "groupdel %s >/dev/null 2>&1", e->group);
		if (system(cmd) != 0)
			fprintf(stderr, "# could not delete group %s\n", e->group);
	}
	return rc;
}

/* Start a daemon on e->root with conf (NULL: built-in defaults). */
static void start(struct env *e, const char *conf)
{
	const char *with[] = { "--config", e->conf, "--log-level", "debug", NULL };
	const char *without[] = { "--log-level", "debug", NULL };
	FILE *f;

	if (conf) {
		f = fopen(e->conf, "w");
		assert_non_null(f);
		fputs(conf, f);
		fclose(f);
	}
	if (tu_daemon_start(&e->d, e->root, conf ? with : without, NULL, READY_MS) < 0)
		fail_msg("shmbusd did not start on %s", e->root);
}

static struct shmbus_daemon_status *status_of(shmbus *bus)
{
	static struct shmbus_daemon_status s;

	memset(&s, 0, sizeof s);
	s.sz = sizeof s;
	assert_ok(shmbus_daemon_status(bus, &s));
	return &s;
}

#define assert_log_has(e, needle)                                                        \
	do {                                                                             \
		if (!tu_daemon_log_has(&(e)->d, (needle), 3000)) {                       \
			tu_daemon_dump(&(e)->d);                                         \
			fail_msg("the daemon's log does not have \"%s\"", (needle));     \
		}                                                                        \
	} while (0)

static void file_at(const struct env *e, const char *rel, struct stat *st)
{
	char path[512];

	snprintf(path, sizeof path, "%s/%s", e->root, rel);
	if (stat(path, st) < 0)
		fail_msg("stat %s: %s", path, strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Raw protocol                                                        */

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		fail_msg("connect %s: %s", path, strerror(errno));
	return fd;
}

/* One packet within timeout_ms: its length, 0 at end of file, -1 with
 * errno (ETIMEDOUT on timeout). */
static ssize_t raw_recv(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, timeout_ms) <= 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	return recv(fd, rbuf, sizeof rbuf, 0);
}

/* A header, written by hand so it can lie. */
static size_t raw_hdr(uint8_t *buf, uint16_t version, uint16_t type, uint32_t length, uint32_t seq)
{
	uint32_t magic = htole32(CTL_MAGIC);

	length = htole32(length);
	seq = htole32(seq);
	version = htole16(version);
	type = htole16(type);
	memcpy(buf, &magic, 4);
	memcpy(buf + 4, &version, 2);
	memcpy(buf + 6, &type, 2);
	memcpy(buf + 8, &length, 4);
	memcpy(buf + 12, &seq, 4);
	return CTL_HDR_SIZE;
}

/* An attribute written by hand: value as given, padded to 4. */
static size_t raw_attr(uint8_t *at, uint16_t type, uint16_t claimed, const void *v, size_t len)
{
	uint16_t t = htole16(type), l = htole16(claimed);

	memcpy(at, &t, 2);
	memcpy(at + 2, &l, 2);
	memcpy(at + 4, v, len);
	memset(at + 4 + len, 0, (4 - len % 4) % 4);
	return 4 + len + (4 - len % 4) % 4;
}

/* Send len bytes and expect a RESULT with status and seq whose message
 * has needle (if not NULL). */
static void expect_result(int fd, const void *msg, size_t len, int status, uint32_t seq,
			  const char *needle)
{
	struct ctl_msg m;
	ssize_t n;

	if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
		fail_msg("send %zu bytes: %s", len, strerror(errno));
	n = raw_recv(fd, 5000);
	if (n <= 0)
		fail_msg("no RESULT (recv = %zd) for a %zu-byte message", n, len);
	if (ctl_decode(rbuf, (size_t)n, &m) < 0 || m.hdr.type != CTL_RESULT ||
	    !m.has[CTL_A_STATUS])
		fail_msg("the reply is not a RESULT: %s", shmbus_errmsg());
	if (ctl_signed(&m, CTL_A_STATUS) != status || m.hdr.seq != seq)
		fail_msg("RESULT status %lld seq %u, expected %d seq %u (\"%s\")",
			 (long long)ctl_signed(&m, CTL_A_STATUS), m.hdr.seq, status, seq,
			 m.has[CTL_A_MESSAGE] ? m.str[CTL_A_MESSAGE] : "");
	if (needle && (!m.has[CTL_A_MESSAGE] || !strstr(m.str[CTL_A_MESSAGE], needle)))
		fail_msg("the RESULT's message does not mention \"%s\": \"%s\"", needle,
			 m.has[CTL_A_MESSAGE] ? m.str[CTL_A_MESSAGE] : "(none)");
}

static void expect_closed(int fd)
{
	ssize_t n = raw_recv(fd, 3000);

	if (n != 0)
		fail_msg("the daemon kept the connection open (recv = %zd)", n);
}

/* A valid message built with the codec. */
static size_t build(uint8_t *buf, uint16_t type, uint32_t seq, const char *name)
{
	struct ctl_out o;

	ctl_init(&o, buf, CTL_MSG_MAX, type, seq);
	if (name)
		ctl_put_str(&o, CTL_A_NAME, name);
	return (size_t)ctl_finish(&o);
}

/* ------------------------------------------------------------------ */
/* Administration through the daemon                                   */

static void test_create_delete_through_daemon(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 3, .capacity = 65536);
	SHMBUS_OPTS(shmbus_topic_opts, narrow, .capacity = 65536, .mode = 0600);
	struct shmbus_daemon_status *s;
	SHMBUS_OPTS(shmbus_topic_info, ti);
	gid_t gid = geteuid() == 0 ? NOBODY : getegid();
	char line[200];
	struct stat st;

	/* the root's group is what topic files must get */
	if (geteuid() == 0 && chown(e->root, 0, gid) < 0)
		fail_msg("chown %s: %s", e->root, strerror(errno));
	start(e, "[daemon]\nfile_mode = 0640\n");
	e->bus = tu_open(e->root);
	assert_ok(shmbus_topic_create(e->bus, "orders", &o));
	snprintf(line, sizeof line, "created topic \"orders\" (3 partitions, mode 0640) for uid %u",
		 (unsigned)geteuid());
	assert_log_has(e, line);
	snprintf(line, sizeof line, "pid %d", (int)getpid());
	assert_log_has(e, line);
	for (int i = 0; i < 3; i++) {
		char rel[64];

		snprintf(rel, sizeof rel, "topics/orders/%d", i);
		file_at(e, rel, &st);
		assert_int_equal(st.st_mode & 0777, 0640);
		assert_int_equal(st.st_gid, gid);
		assert_int_equal(st.st_uid, geteuid());
	}
	file_at(e, "topics/orders", &st);
	assert_int_equal(st.st_gid, gid);
	assert_ok(shmbus_topic_describe(e->bus, "orders", &ti));
	assert_int_equal(ti.partitions, 3);

	/* a narrower mode is honoured, a wider one is not */
	assert_ok(shmbus_topic_create(e->bus, "narrow", &narrow));
	file_at(e, "topics/narrow/0", &st);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* the daemon's errors come back with its message */
	assert_int_equal(shmbus_topic_create(e->bus, "orders", &o), -EEXIST);
	assert_errmsg_has("already exists");
	assert_int_equal(shmbus_topic_create(e->bus, "bad/name", &o), -EINVAL);

	assert_ok(shmbus_topic_delete(e->bus, "orders"));
	assert_log_has(e, "deleted topic \"orders\"");
	assert_int_equal(shmbus_topic_describe(e->bus, "orders", &ti), -ENOENT);
	assert_int_equal(stat(e->d.log, &st), 0);
	{
		char path[512];

		snprintf(path, sizeof path, "%s/topics/orders", e->root);
		assert_int_equal(access(path, F_OK), -1);
	}
	s = status_of(e->bus);
	assert_int_equal(s->stats.topics_created, 2);
	assert_int_equal(s->stats.topics_deleted, 1);
	assert_int_equal(s->topics, 1);
}

static void test_status(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 2, .capacity = 65536);
	struct shmbus_daemon_status *s, part;
	int64_t now;

	start(e, "[daemon]\nunblock_timeout_ms = 2500\ntick_ms = 50\n");
	e->bus = tu_open(e->root);
	assert_ok(shmbus_topic_create(e->bus, "t", &o));
	s = status_of(e->bus);
	now = real_ns();
	assert_int_equal(s->pid, e->d.pid);
	assert_int_equal(s->uid, geteuid());
	assert_int_equal(s->protocol, CTL_VERSION);
	assert_string_equal(s->version, "1.0.0");
	assert_string_equal(s->root, e->root);
	assert_string_equal(s->control_socket, e->sock);
	assert_string_equal(s->admin_group, "");
	assert_true(s->started_ns > 0 && s->started_ns <= now);
	assert_true(s->uptime_ms < 60000);
	assert_true(s->heartbeat_ns > now - 5000000000LL && s->heartbeat_ns <= now + 1000000000LL);
	assert_int_equal(s->unblock_timeout_ms, 2500);
	assert_int_equal(s->tick_ms, 50);
	assert_true(s->on_tmpfs);
	assert_int_equal(s->topics, 1);
	assert_int_equal(s->partitions, 2);
	assert_true(s->clients >= 1);          /* this process registered */
	assert_true(s->stats.control_requests >= 3); /* HELLO, TOPIC_CREATE, STATUS */
	assert_int_equal(s->stats.control_errors, 0);
	assert_int_equal(s->stats.topics_created, 1);

	/* an older caller's smaller struct: nothing past its sz is written */
	memset(&part, 0xab, sizeof part);
	part.sz = offsetof(struct shmbus_daemon_status, root);
	assert_ok(shmbus_daemon_status(e->bus, &part));
	assert_int_equal(part.pid, e->d.pid);
	assert_int_equal((uint8_t)part.root[0], 0xab);
	assert_int_equal(part.sz, offsetof(struct shmbus_daemon_status, root));
}

static void test_status_without_daemon(void **state)
{
	struct env *e = *state;
	struct shmbus_daemon_status s = { .sz = sizeof s };
	char fix[400];

	e->bus = tu_open(e->root);
	assert_int_equal(shmbus_daemon_status(e->bus, &s), -ENOENT);
	snprintf(fix, sizeof fix, "start one with shmbusd --root %s", e->root);
	assert_errmsg_has(fix);
	assert_errmsg_has("no daemon serves");
	s.sz = 0;
	assert_int_equal(shmbus_daemon_status(e->bus, &s), -EINVAL);
	assert_errmsg_has("SHMBUS_OPTS");
}

/* ------------------------------------------------------------------ */
/* HELLO: registered clients                                           */

struct claimer {
	const char *root;
	int ready;                  /* write end of a pipe */
};

static int claim_and_wait(void *arg)
{
	struct claimer *c = arg;
	struct shmbus_record meta = { 0 };
	struct shmbus_claim cl;
	shmbus_producer *p;
	shmbus *bus;

	CHILD_CHECK(shmbus_open(&(struct shmbus_open_opts){ .sz = sizeof(struct shmbus_open_opts),
							     .root = c->root }, &bus) == 0, "open");
	CHILD_CHECK(shmbus_producer_new(bus, "claims", NULL, &p) == 0, "producer");
	CHILD_CHECK(shmbus_producer_claim(p, 0, &meta, 16, &cl) == 0, "claim");
	CHILD_CHECK(cl.offset == 0, "claimed offset %llu", (unsigned long long)cl.offset);
	CHILD_CHECK(write(c->ready, "x", 1) == 1, "pipe");
	for (;;)
		pause(); /* killed -9 here, inside the claim */
}

static void test_registered_client_claim_aborted_at_once(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .unblock_timeout_ms = 60000,
		    .spin_us = -1);
	struct shmbus_record rec = { .value = "after", .value_len = 5 };
	struct shmbus_message msg;
	struct claimer cl = { .root = e->root };
	shmbus_producer *p;
	shmbus_consumer *c;
	int fds[2], n = 0;
	char line[160], x;
	int64_t t0, took;
	pid_t child;

	/* neither the daemon's unblocker nor the consumer's would act within a minute */
	start(e, "[daemon]\nunblock_timeout_ms = 60000\n");
	e->bus = tu_open(e->root);
	assert_ok(shmbus_topic_create(e->bus, "claims", &o));
	assert_int_equal(pipe(fds), 0);
	cl.ready = fds[1];
	child = e->child = tu_fork(claim_and_wait, &cl);
	if (read(fds[0], &x, 1) != 1)
		fail_msg("the claiming child died: status %d", tu_wait(child, 1000));
	close(fds[0]);
	close(fds[1]);

	assert_ok(shmbus_producer_new(e->bus, "claims", NULL, &p));
	assert_ok(shmbus_producer_send(p, 0, &rec, NULL)); /* offset 1, behind the claim */
	assert_ok(shmbus_consumer_new(e->bus, &co, &c));
	assert_ok(shmbus_consumer_assign(c, "claims", 0, SHMBUS_OFFSET_BEGINNING));
	assert_int_equal(shmbus_consumer_poll(c, &msg, 1, 200), 0); /* held at the claim */

	kill(child, SIGKILL);
	assert_int_equal(tu_wait(child, 5000), 128 + SIGKILL);
	e->child = 0;
	t0 = tu_ms();
	while (n == 0 && tu_ms() - t0 < 5000)
		n = shmbus_consumer_poll(c, &msg, 1, 100);
	took = tu_ms() - t0;
	if (n != 1 || took > 3000)
		fail_msg("the consumer was held at the dead client's claim for %lld ms (poll = %d): "
			 "the daemon did not abort it through its pidfd", (long long)took, n);
	assert_int_equal(msg.offset, 1);
	snprintf(line, sizeof line, "watching client pid %d", (int)child);
	assert_log_has(e, line);
	snprintf(line, sizeof line, "client pid %d exited: 1 claimed offset aborted", (int)child);
	assert_log_has(e, line);
	assert_true(status_of(e->bus)->stats.unblocked >= 1);
	assert_true(status_of(e->bus)->stats.clients_gone >= 1);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
}

/* A child says HELLO with someone else's pid: the daemon watches the
 * child's, from SO_PEERCRED. */
static int hello_lying(void *arg)
{
	struct env *e = arg;
	uint8_t buf[256];
	struct ctl_out o;
	struct ctl_msg m;
	int fd = raw_connect(e->sock);
	ssize_t n;

	ctl_init(&o, buf, sizeof buf, CTL_HELLO, 7);
	ctl_put_u32(&o, CTL_A_PID, (uint32_t)getppid());
	ctl_put_u32(&o, CTL_A_FLAGS, CTL_HELLO_REGISTER);
	n = ctl_finish(&o);
	CHILD_CHECK(send(fd, buf, (size_t)n, 0) == n, "send");
	n = raw_recv(fd, 5000);
	CHILD_CHECK(n > 0 && ctl_decode(rbuf, (size_t)n, &m) == 0, "reply");
	CHILD_CHECK(ctl_signed(&m, CTL_A_STATUS) == 0 && m.num[CTL_A_REGISTERED] == 1,
		    "status %lld registered %llu", (long long)ctl_signed(&m, CTL_A_STATUS),
		    (unsigned long long)m.num[CTL_A_REGISTERED]);
	CHILD_CHECK(m.num[CTL_A_DAEMON_PID] == (uint64_t)e->d.pid, "daemon pid");
	return 0;
}

static void test_hello_registers_peer_pid(void **state)
{
	struct env *e = *state;
	char line[160];
	pid_t child;

	start(e, NULL);
	child = tu_fork(hello_lying, e);
	assert_int_equal(tu_wait(child, 5000), 0);
	snprintf(line, sizeof line, "HELLO says pid %d, but the socket's peer is pid %d",
		 (int)getpid(), (int)child);
	assert_log_has(e, line);
	snprintf(line, sizeof line, "client pid %d exited", (int)child);
	assert_log_has(e, line);
}

/* ------------------------------------------------------------------ */
/* Who may administer                                                  */

static int open_up_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	(void)flag;
	if (S_ISSOCK(st->st_mode))
		return 0;
	return chown(path, (uid_t)-1, NOBODY) < 0 ||
	       chmod(path, S_ISDIR(st->st_mode) ? 02770 : 0660) < 0 ? -1 : 0;
}

/* Share the root with group NOBODY, as the service's root is shared with
 * group shmbus (a root every user may write is refused; the socket
 * follows the root's group and mode). */
static void open_up(const char *root)
{
	if (nftw(root, open_up_one, 16, FTW_PHYS) < 0)
		fail_msg("chgrp/chmod -R %s: %s", root, strerror(errno));
}

struct peer {
	const char *root;
	gid_t gid;                  /* primary */
	gid_t extra;                /* a supplementary group, or 0 */
	const char *create;         /* topic to create */
	int expect;                 /* what create must return */
	const char *needle;         /* in the message of a refusal */
	const char *del;            /* topic to delete (expect the same), or NULL */
};

static int as_peer(void *arg)
{
	const struct peer *pr = arg;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = pr->root, .no_create = true);
	struct shmbus_daemon_status s = { .sz = sizeof s };
	shmbus *bus;
	int rc;

	CHILD_CHECK(setgroups(pr->extra ? 1 : 0, &pr->extra) == 0, "setgroups");
	CHILD_CHECK(setgid(pr->gid) == 0 && setuid(NOBODY) == 0, "drop privileges");
	CHILD_CHECK(shmbus_open(&oo, &bus) == 0, "open as uid %d", NOBODY);
	rc = shmbus_topic_create(bus, pr->create, &o);
	CHILD_CHECK(rc == pr->expect, "create \"%s\" = %d, expected %d", pr->create, rc, pr->expect);
	CHILD_CHECK(!pr->needle || strstr(shmbus_errmsg(), pr->needle), "message lacks \"%s\"",
		    pr->needle);
	if (pr->del) {
		rc = shmbus_topic_delete(bus, pr->del);
		CHILD_CHECK(rc == pr->expect, "delete \"%s\" = %d", pr->del, rc);
	}
	CHILD_CHECK(shmbus_daemon_status(bus, &s) == 0, "status");
	CHILD_CHECK(s.pid > 0, "status pid");
	shmbus_close(bus);
	return 0;
}

static void test_refused_peer(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);
	struct peer pr = { .root = e->root, .gid = NOBODY, .create = "forbidden",
			   .expect = -EACCES, .needle = "set admin_group", .del = "kept" };
	SHMBUS_OPTS(shmbus_topic_info, ti);

	if (geteuid() != 0)
		tu_skip("changing to uid %d needs root", NOBODY);
	open_up(e->root);
	start(e, NULL);
	e->bus = tu_open(e->root);
	assert_ok(shmbus_topic_create(e->bus, "kept", &o));
	open_up(e->root);
	assert_int_equal(tu_wait(tu_fork(as_peer, &pr), 10000), 0);
	assert_int_equal(shmbus_topic_describe(e->bus, "forbidden", &ti), -ENOENT);
	assert_ok(shmbus_topic_describe(e->bus, "kept", &ti));
	assert_log_has(e, "refused to create topic \"forbidden\" for uid 65534");
	assert_log_has(e, "refused to delete topic \"kept\" for uid 65534");
	assert_true(status_of(e->bus)->stats.control_errors >= 2);
}

static void test_admin_group(void **state)
{
	struct env *e = *state;
	struct peer member = { .root = e->root, .gid = NOBODY, .create = "by-member" };
	struct peer primary = { .root = e->root, .create = "by-primary", .del = "by-member" };
	struct peer outsider = { .root = e->root, .gid = NOBODY, .create = "by-outsider",
				 .expect = -EACCES, .needle = "usermod -aG" };
	char cmd[160], conf[200];
	struct group *g;
	struct stat st;

	if (geteuid() != 0)
		tu_skip("creating a group and changing to uid %d need root", NOBODY);
	snprintf(e->group, sizeof e->group, "shmbusctl%d", (int)getpid());
	snprintf(cmd, sizeof cmd, "groupadd %s >/dev/null 2>&1", e->group);
	if (system(cmd) != 0) {
		e->group[0] = '\0';
		tu_skip("groupadd could not create a group (is it installed?)");
	}
	g = getgrnam(e->group);
	assert_non_null(g);
	member.extra = g->gr_gid;
	primary.gid = g->gr_gid;
	primary.extra = NOBODY; /* to enter the root, shared with group NOBODY */
	open_up(e->root);
	snprintf(conf, sizeof conf, "[daemon]\nadmin_group = %s\n", e->group);
	start(e, conf);
	e->bus = tu_open(e->root);
	open_up(e->root);
	assert_int_equal(tu_wait(tu_fork(as_peer, &member), 10000), 0);
	/* made by the daemon: its owner, the root's group */
	file_at(e, "topics/by-member/0", &st);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, NOBODY);
	assert_int_equal(tu_wait(tu_fork(as_peer, &primary), 10000), 0);
	assert_int_equal(tu_wait(tu_fork(as_peer, &outsider), 10000), 0);
	assert_log_has(e, "created topic \"by-member\" (1 partition, mode 0660) for uid 65534");
	assert_log_has(e, "deleted topic \"by-member\" for uid 65534");
	assert_log_has(e, "created topic \"by-primary\"");
	assert_string_equal(status_of(e->bus)->admin_group, e->group);
}

/* ------------------------------------------------------------------ */
/* Malformed messages                                                  */

static void test_malformed_framing(void **state)
{
	struct env *e = *state;
	uint8_t buf[128], *big;
	size_t n;
	int fd;

	start(e, NULL);
	/* garbage: no magic, no seq to echo */
	for (size_t i = 0; i < 37; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	fd = raw_connect(e->sock);
	expect_result(fd, buf, 37, -EBADMSG, 0, "not a shmbus control message");
	expect_closed(fd);
	close(fd);
	/* shorter than a header */
	fd = raw_connect(e->sock);
	raw_hdr(buf, 1, CTL_STATUS, 16, 5);
	expect_result(fd, buf, 10, -EBADMSG, 0, "shorter than its 16-byte header");
	expect_closed(fd);
	close(fd);
	/* a header that lies about the length */
	fd = raw_connect(e->sock);
	n = raw_hdr(buf, 1, CTL_STATUS, 1000, 6);
	n += raw_attr(buf + n, 999, 4, "abcd", 4);
	expect_result(fd, buf, n, -EBADMSG, 6, "says it is 1000 bytes long");
	expect_closed(fd);
	close(fd);
	/* larger than the maximum */
	big = calloc(1, 70000);
	raw_hdr(big, 1, CTL_STATUS, 70000, 8);
	fd = raw_connect(e->sock);
	expect_result(fd, big, 70000, -EMSGSIZE, 8, "larger than the maximum");
	expect_closed(fd);
	close(fd);
	free(big);
	/* an empty packet */
	fd = raw_connect(e->sock);
	assert_int_equal(send(fd, buf, 0, 0), 0);
	expect_closed(fd);
	close(fd);
	e->bus = tu_open(e->root);
	assert_true(status_of(e->bus)->stats.control_errors >= 4);
}

static void test_malformed_attributes(void **state)
{
	struct env *e = *state;
	uint8_t buf[256];
	uint16_t two = 4;
	size_t n;
	int fd;

	start(e, NULL);
	fd = raw_connect(e->sock);
	/* a version not spoken: -EPROTO naming both, and the connection goes on */
	raw_hdr(buf, 9, CTL_STATUS, 16, 11);
	expect_result(fd, buf, 16, -EPROTO, 11, "version 9 is not spoken here: this side speaks "
		      "version 1");
	/* unknown request type, and a RESULT sent as a request */
	raw_hdr(buf, 1, 77, 16, 12);
	expect_result(fd, buf, 16, -EOPNOTSUPP, 12, "request type 77 is unknown");
	raw_hdr(buf, 1, CTL_RESULT, 16, 13);
	expect_result(fd, buf, 16, -EOPNOTSUPP, 13, "is a reply");
	/* an attribute that claims more than the message holds */
	n = raw_hdr(buf, 1, CTL_TOPIC_DELETE, 0, 14);
	n += raw_attr(buf + n, CTL_A_NAME, 5000, "orders", 7);
	raw_hdr(buf, 1, CTL_TOPIC_DELETE, (uint32_t)n, 14);
	expect_result(fd, buf, n, -EBADMSG, 14, "claims 5000 bytes");
	/* a known attribute of the wrong size */
	n = raw_hdr(buf, 1, CTL_TOPIC_CREATE, 0, 15);
	n += raw_attr(buf + n, CTL_A_NAME, 2, "x", 2);
	n += raw_attr(buf + n, CTL_A_PARTITIONS, 2, &two, 2);
	raw_hdr(buf, 1, CTL_TOPIC_CREATE, (uint32_t)n, 15);
	expect_result(fd, buf, n, -EBADMSG, 15, "PARTITIONS");
	/* a string without its NUL, and one with a NUL inside */
	n = raw_hdr(buf, 1, CTL_TOPIC_DELETE, 0, 16);
	n += raw_attr(buf + n, CTL_A_NAME, 3, "abc", 3);
	raw_hdr(buf, 1, CTL_TOPIC_DELETE, (uint32_t)n, 16);
	expect_result(fd, buf, n, -EBADMSG, 16, "NUL");
	n = raw_hdr(buf, 1, CTL_TOPIC_DELETE, 0, 17);
	n += raw_attr(buf + n, CTL_A_NAME, 4, "a\0b", 4);
	raw_hdr(buf, 1, CTL_TOPIC_DELETE, (uint32_t)n, 17);
	expect_result(fd, buf, n, -EBADMSG, 17, "NUL");
	/* an attribute twice */
	n = raw_hdr(buf, 1, CTL_TOPIC_DELETE, 0, 18);
	n += raw_attr(buf + n, CTL_A_NAME, 2, "a", 2);
	n += raw_attr(buf + n, CTL_A_NAME, 2, "b", 2);
	raw_hdr(buf, 1, CTL_TOPIC_DELETE, (uint32_t)n, 18);
	expect_result(fd, buf, n, -EBADMSG, 18, "twice");
	/* stray bytes after the last attribute */
	n = raw_hdr(buf, 1, CTL_STATUS, 18, 19);
	expect_result(fd, buf, 18, -EBADMSG, 19, "stray bytes");
	/* a required attribute missing */
	n = build(buf, CTL_TOPIC_CREATE, 20, NULL);
	expect_result(fd, buf, n, -EINVAL, 20, "needs the NAME attribute");
	/* a name that would leave the topics directory */
	n = build(buf, CTL_TOPIC_CREATE, 21, "../../etc");
	expect_result(fd, buf, n, -EINVAL, 21, "not a valid topic name");
	/* unknown attributes are skipped: forward compatibility */
	n = raw_hdr(buf, 1, CTL_STATUS, 0, 22);
	n += raw_attr(buf + n, 999, 6, "future", 6);
	n += raw_attr(buf + n, 1000, 0, "", 0);
	raw_hdr(buf, 1, CTL_STATUS, (uint32_t)n, 22);
	expect_result(fd, buf, n, 0, 22, NULL);
	/* the same connection still works, and so does the next client */
	n = build(buf, CTL_STATUS, 23, NULL);
	expect_result(fd, buf, n, 0, 23, NULL);
	close(fd);
	assert_int_equal(kill(e->d.pid, 0), 0);
	e->bus = tu_open(e->root);
	assert_true(status_of(e->bus)->stats.control_errors >= 10);
	assert_log_has(e, "malformed TOPIC_DELETE request");
}

/* A client that sends and never reads is cut off; others are served. */
static void test_slow_reader_cut_off(void **state)
{
	struct env *e = *state;
	uint8_t buf[64];
	size_t n;
	int fd, sent = 0;
	int64_t t0;
	ssize_t r;

	start(e, NULL);
	fd = raw_connect(e->sock);
	n = build(buf, CTL_STATUS, 1, NULL);
	t0 = tu_ms();
	while (sent < 20000 && tu_ms() - t0 < 5000) {
		if (send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n)
			sent++;
		else if (errno == EAGAIN)
			usleep(1000);
		else
			break; /* cut off already */
	}
	t0 = tu_ms();
	e->bus = tu_open(e->root);
	assert_int_equal(status_of(e->bus)->pid, e->d.pid);
	assert_true(tu_ms() - t0 < 3000);
	assert_log_has(e, "does not read its replies");
	/* the replies sent before the cut can be read, then the end (a reset
	 * if the daemon closed with requests of ours still unread) */
	while ((r = raw_recv(fd, 2000)) > 0)
		;
	if (r < 0 && errno != ECONNRESET)
		fail_msg("the daemon did not close the flooding connection: %s", strerror(errno));
	close(fd);
}

/* ------------------------------------------------------------------ */
/* The socket's path                                                   */

static int listener(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof sa.sun_path)
		fail_msg("%s is too long for a socket path", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
		fail_msg("listen at %s: %s", path, strerror(errno));
	return fd;
}

static void test_socket_path_in_use_then_stale(void **state)
{
	struct env *e = *state;
	char path[300], conf[400];
	int fd;

	snprintf(path, sizeof path, "%s.sock", e->root);
	snprintf(conf, sizeof conf, "[daemon]\ncontrol_socket = %s\n", path);
	fd = listener(path);
	{
		FILE *f = fopen(e->conf, "w");

		fputs(conf, f);
		fclose(f);
	}
	{
		const char *args[] = { "--config", e->conf, NULL };

		fprintf(stderr, "# a start refused on purpose (its log follows):\n");
		assert_int_equal(tu_daemon_start(&e->d, e->root, args, NULL, 1500), -1);
	}
	assert_log_has(e, "another process listens there");
	close(fd); /* the file stays: a stale socket */
	start(e, conf);
	assert_log_has(e, "removed the stale control socket");
	e->bus = tu_open(e->root);
	assert_string_equal(status_of(e->bus)->control_socket, path);
	assert_int_equal(tu_daemon_stop(&e->d, STOP_MS), 0);
	assert_int_equal(access(path, F_OK), -1); /* unlinked at stop */
	unlink(path);
}

static void test_socket_path_longer_than_sun_path(void **state)
{
	struct env *e = *state;
	char dir[400], path[450], conf[500];
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);

	snprintf(dir, sizeof dir, "%s/%s", e->root,
		 "a-directory-with-a-name-long-enough-that-the-socket-path-will-not-fit-sun_path");
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof path, "%s/control", dir);
	assert_true(strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path));
	snprintf(conf, sizeof conf, "[daemon]\ncontrol_socket = %s\n", path);
	start(e, conf);
	e->bus = tu_open(e->root);
	assert_string_equal(status_of(e->bus)->control_socket, path);
	assert_ok(shmbus_topic_create(e->bus, "long", &o));
	assert_log_has(e, "created topic \"long\"");
}

static void test_stop_clears_socket(void **state)
{
	struct env *e = *state;
	struct shmbus_daemon_status s = { .sz = sizeof s };

	start(e, NULL);
	e->bus = tu_open(e->root);
	assert_int_equal(access(e->sock, F_OK), 0);
	assert_int_equal(tu_daemon_stop(&e->d, STOP_MS), 0);
	assert_int_equal(access(e->sock, F_OK), -1);
	assert_int_equal(shmbus_daemon_status(e->bus, &s), -ENOENT);
}

/* ------------------------------------------------------------------ */
/* Falling back to the embedded mode                                   */

static void test_fallback_without_daemon(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);
	SHMBUS_OPTS(shmbus_topic_info, ti);

	e->bus = tu_open(e->root);
	assert_ok(shmbus_topic_create(e->bus, "alone", &o));
	assert_ok(shmbus_topic_describe(e->bus, "alone", &ti));
	assert_ok(shmbus_topic_delete(e->bus, "alone"));
	assert_int_equal(shmbus_topic_describe(e->bus, "alone", &ti), -ENOENT);
}

static void test_fallback_when_daemon_killed(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);
	struct shmbus_daemon_status s = { .sz = sizeof s };
	SHMBUS_OPTS(shmbus_topic_info, ti);

	start(e, NULL);
	e->bus = tu_open(e->root);
	assert_ok(shmbus_topic_create(e->bus, "before", &o));
	assert_log_has(e, "created topic \"before\"");
	tu_daemon_kill(&e->d); /* its socket file and daemon block stay behind */
	assert_int_equal(access(e->sock, F_OK), 0);
	assert_ok(shmbus_topic_create(e->bus, "after-kill", &o));
	assert_ok(shmbus_topic_describe(e->bus, "after-kill", &ti));
	assert_ok(shmbus_topic_delete(e->bus, "before"));
	assert_int_equal(shmbus_daemon_status(e->bus, &s), -ENOENT);
	assert_errmsg_has("is gone");
	/* a new daemon: the same handle finds it again */
	start(e, NULL);
	assert_log_has(e, "removed the stale control socket");
	assert_ok(shmbus_topic_create(e->bus, "after-restart", &o));
	assert_log_has(e, "created topic \"after-restart\"");
	assert_int_equal(status_of(e->bus)->pid, e->d.pid);
}

static void test_no_daemon_option(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = e->root, .no_daemon = true);
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);
	struct shmbus_daemon_status s = { .sz = sizeof s };

	start(e, NULL);
	assert_ok(shmbus_open(&oo, &e->bus));
	assert_ok(shmbus_topic_create(e->bus, "embedded", &o));
	assert_int_equal(shmbus_daemon_status(e->bus, &s), -ENOENT);
	assert_errmsg_has("no_daemon");
	assert_false(tu_daemon_log_has(&e->d, "created topic \"embedded\"", 300));
	assert_false(tu_daemon_log_has(&e->d, "HELLO from", 0));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_create_delete_through_daemon),
		T(test_status),
		T(test_status_without_daemon),
		T(test_registered_client_claim_aborted_at_once),
		T(test_hello_registers_peer_pid),
		T(test_refused_peer),
		T(test_admin_group),
		T(test_malformed_framing),
		T(test_malformed_attributes),
		T(test_slow_reader_cut_off),
		T(test_socket_path_in_use_then_stale),
		T(test_socket_path_longer_than_sun_path),
		T(test_stop_clears_socket),
		T(test_fallback_without_daemon),
		T(test_fallback_when_daemon_killed),
		T(test_no_daemon_option),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
