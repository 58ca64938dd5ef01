/*
 * daemon.c - the client side of shmbusd's control socket (docs/protocol.md).
 *
 * A bus finds its daemon in the daemon block of the bus file: a pid that
 * is alive with the start time it recorded, a heartbeat younger than five
 * seconds, and the path of its control socket.  It connects, checks that
 * the peer is that daemon (its pid, and a uid of root, ours, or the
 * root's owner, so a forged daemon block cannot send our requests
 * elsewhere), says HELLO with the register flag, and keeps the
 * connection for the life of the handle.  Requests of one handle go one at
 * a time (link_lock): send, then wait for the RESULT with the same seq.
 *
 * With no daemon named there, a socket at <root>/control may still be
 * listened on by systemd for a daemon it starts on the first connection
 * (shmbusd.socket, docs/operations.md): the bus connects, and trusts the
 * peer by its uid alone (the listener is systemd, or
 * systemd-socket-activate, not the daemon), waits longer for the HELLO
 * (the daemon starts, and recovers its partitions, first), and then
 * checks that the daemon that answered is the one the bus file now names.
 *
 * A connection that breaks (the daemon died, or restarted) is dropped;
 * the call then looks for a daemon once more, and without one returns
 * DAEMON_NONE so the caller does the work itself (the embedded mode).  A
 * daemon that is there but silent past the call's deadline gives
 * -ETIMEDOUT instead: it may still be doing the work, and doing it here
 * as well would race it.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/ctlproto.h"
#include "../util/proc.h"

#define HEARTBEAT_STALE_NS (5LL * 1000000000)
#define HELLO_TIMEOUT_MS   2000
#define STATUS_TIMEOUT_MS  5000
#define ADMIN_TIMEOUT_MS   120000  /* creating many large partitions takes a while */
#define ACTIVATE_TIMEOUT_MS 30000  /* a socket-activated daemon's start, recovery included */

#define CLIENT_VERSION \
	((uint32_t)SHMBUS_VERSION_MAJOR << 16 | SHMBUS_VERSION_MINOR << 8 | SHMBUS_VERSION_PATCH)

/* The daemon the bus file names. */
struct served {
	uint32_t pid;             /* 0: one systemd may start (activatable()) */
	char path[DIR_SOCKET_MAX];
};

/* A request being built: its type and what goes in it. */
typedef void (*build_fn)(struct ctl_out *o, const void *arg);

/* Does a daemon serve the root?  0, or -ENOENT with why it does not. */
static int served_by(shmbus *bus, struct served *ret)
{
	struct dir_daemon b;
	uint32_t pid;
	uint64_t start;
	int64_t age;

	dir_daemon_read(&bus->dir, &b); /* the pid first, then the rest of the block */
	pid = b.pid;
	start = b.start_time;
	age = real_ns() - b.heartbeat_ns;

	if (!pid || pid == (uint32_t)proc_self(NULL))
		return lib_err(-ENOENT, "no daemon serves %s", bus->root);
	if (!proc_alive((pid_t)pid, start))
		return lib_err(-ENOENT, "no daemon serves %s (shmbusd pid %u, named in the bus "
			       "file, is gone)", bus->root, pid);
	if (age > HEARTBEAT_STALE_NS || age < -HEARTBEAT_STALE_NS)
		return lib_err(-ENOENT, "no daemon serves %s (shmbusd pid %u has not beaten its "
			       "heartbeat for %lld s: stopped or hung)", bus->root, pid,
			       (long long)(age / 1000000000));
	/* the daemon writes the path before its pid */
	memcpy(ret->path, b.control_socket, sizeof ret->path);
	if (ret->path[0] != '/')
		return lib_err(-ENOENT, "no daemon serves %s (shmbusd pid %u has no control "
			       "socket yet)", bus->root, pid);
	ret->pid = pid;
	return 0;
}

/* No daemon named (or the one named is gone): a socket at <root>/control
 * that someone may listen on to start one (socket activation).  0, or
 * -ENOENT.  A daemon that is there but silent (stopped, hung) is not
 * replaced this way: its clients work without it, as before. */
static int activatable(shmbus *bus, struct served *ret)
{
	struct dir_daemon b;
	struct stat st;
	int n;

	dir_daemon_read(&bus->dir, &b);
	if (b.pid && proc_alive((pid_t)b.pid, b.start_time))
		return -ENOENT;
	if (fstatat(bus->rootfd, CTL_SOCKET_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISSOCK(st.st_mode))
		return -ENOENT;
	n = snprintf(ret->path, sizeof ret->path, "%s/%s", bus->root, CTL_SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof ret->path)
		return -ENOENT;
	ret->pid = 0;
	return 0;
}

/* The peer must be the daemon the bus file names (for one being
 * activated, its listener: its pid is not the daemon's), run by root, by
 * us, or by the owner of the root. */
static bool peer_trusted(shmbus *bus, const struct served *s, const struct ucred *cr)
{
	struct stat st;

	if (s->pid && (uint32_t)cr->pid != s->pid)
		return false;
	if (cr->uid == 0 || cr->uid == geteuid())
		return true;
	return fstat(bus->rootfd, &st) == 0 && st.st_uid == cr->uid;
}

static int link_drop(shmbus *bus)
{
	if (bus->linkfd >= 0)
		close(bus->linkfd);
	bus->linkfd = -1;
	return DAEMON_NONE;
}

/* The connection broke: the daemon exited, or closed it on us. */
static int link_lost(shmbus *bus)
{
	lib_err(-ENOENT, "no daemon serves %s (the connection to shmbusd pid %u broke)",
		bus->root, bus->link_daemon);
	return link_drop(bus);
}

/* A RESULT we cannot read: the daemon speaks something else. */
static int bad_reply(shmbus *bus, const void *buf, size_t len)
{
	struct ctl_hdr h;
	char why[300];

	snprintf(why, sizeof why, "%s", shm_errmsg());
	link_drop(bus);
	if (ctl_peek(buf, len, &h) == 0 && h.version != CTL_VERSION)
		return lib_err(-EPROTO, "shmbusd (pid %u) speaks control protocol version %u, this "
			       "libshmbus version %u; use a libshmbus and shmbusd of one release, or "
			       "open the bus with no_daemon", bus->link_daemon, h.version, CTL_VERSION);
	return lib_err(-EPROTO, "shmbusd (pid %u) sent a reply this libshmbus cannot read: %s; "
		       "use a libshmbus and shmbusd of one release", bus->link_daemon, why);
}

/* Sequence numbers of requests are never 0: a RESULT with seq 0 is the
 * daemon's word on the connection itself (protocol.md §6). */
static uint32_t next_seq(shmbus *bus)
{
	if (++bus->link_seq == 0)
		++bus->link_seq;
	return bus->link_seq;
}

/* Wait for the RESULT of seq: 0, DAEMON_NONE (connection lost),
 * -ETIMEDOUT, -EPROTO.  A RESULT with seq 0 and an error (the daemon
 * refused the connection, and closes it) is returned as the answer. */
static int await(shmbus *bus, uint32_t seq, uint8_t *rbuf, struct ctl_msg *rep, int timeout_ms)
{
	int64_t end = mono_ns() + (int64_t)timeout_ms * 1000000;
	bool reset = false;

	for (;;) {
		struct pollfd pfd = { .fd = bus->linkfd, .events = POLLIN };
		int64_t left = (end - mono_ns()) / 1000000;
		ssize_t n;

		if (left <= 0) {
			link_drop(bus);
			return lib_err(-ETIMEDOUT, "shmbusd (pid %u) did not answer within %d ms; it "
				       "may be busy or hung (see its log)", bus->link_daemon, timeout_ms);
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return link_lost(bus);
		n = recv(bus->linkfd, rbuf, CTL_MSG_MAX, MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		/* a reset is reported once, before what the daemon sent last */
		if (n < 0 && errno == ECONNRESET && !reset) {
			reset = true;
			continue;
		}
		if (n <= 0)
			return link_lost(bus);
		if (n > (ssize_t)CTL_MSG_MAX)
			return bad_reply(bus, rbuf, CTL_MSG_MAX);
		if (ctl_decode(rbuf, (size_t)n, rep) < 0 || ctl_check(rep) < 0 ||
		    rep->hdr.type != CTL_RESULT)
			return bad_reply(bus, rbuf, (size_t)n);
		if (rep->hdr.seq == seq)
			return 0;
		if (rep->hdr.seq == 0 && ctl_signed(rep, CTL_A_STATUS) < 0) {
			link_drop(bus);
			return 0;
		}
		/* a late answer to a request that timed out: not ours */
	}
}

/* Send what o holds and wait for its answer. */
static int call(shmbus *bus, struct ctl_out *o, uint32_t seq, uint8_t *rbuf,
		struct ctl_msg *rep, int timeout_ms)
{
	int len = ctl_finish(o);

	if (len < 0)
		return len;
	if (send(bus->linkfd, o->buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) != len) {
		/* closed on us: perhaps after saying why (a refused connection) */
		if (errno == EPIPE || errno == ECONNRESET)
			return await(bus, seq, rbuf, rep, timeout_ms);
		return link_lost(bus);
	}
	return await(bus, seq, rbuf, rep, timeout_ms);
}

/* The daemon's answer as our return: 0, or its -errno and message. */
static int answer(shmbus *bus, const struct ctl_msg *rep)
{
	int64_t st = ctl_signed(rep, CTL_A_STATUS);

	if (st == 0)
		return 0;
	if (st > 0 || st < -4095)
		return lib_err(-EPROTO, "shmbusd (pid %u) answered with status %lld, not an "
			       "error number", bus->link_daemon, (long long)st);
	if (rep->has[CTL_A_MESSAGE] && rep->str[CTL_A_MESSAGE][0])
		return lib_err((int)st, "%s", rep->str[CTL_A_MESSAGE]);
	return lib_err((int)st, "shmbusd (pid %u) refused: %s", bus->link_daemon,
		       shmbus_strerror((int)st));
}

/* HELLO; *daemon_pid is the pid the daemon says it has (0 if it did not). */
static int hello(shmbus *bus, uint8_t *rbuf, int timeout_ms, uint32_t *daemon_pid)
{
	uint8_t sbuf[256];
	struct ctl_msg rep;
	struct ctl_out o;
	uint32_t seq = next_seq(bus);
	int rc;

	ctl_init(&o, sbuf, sizeof sbuf, CTL_HELLO, seq);
	ctl_put_u32(&o, CTL_A_CLIENT_VERSION, CLIENT_VERSION);
	ctl_put_u32(&o, CTL_A_PID, (uint32_t)proc_self(NULL));
	ctl_put_u32(&o, CTL_A_FLAGS, CTL_HELLO_REGISTER);
	rc = call(bus, &o, seq, rbuf, &rep, timeout_ms);
	if (rc == 0)
		rc = answer(bus, &rep);
	*daemon_pid = rc == 0 ? (uint32_t)rep.num[CTL_A_DAEMON_PID] : 0;
	return rc;
}

/* A daemon started by our connection answered: it must be the one the
 * bus file names now, as a daemon found there would have been. */
static int activated(shmbus *bus, uint32_t daemon_pid)
{
	struct served now;

	if (served_by(bus, &now) < 0 || now.pid != daemon_pid)
		return lib_err(-EPERM, "no daemon serves %s (the daemon started on connecting to "
			       "%s/%s says it is pid %u, but the bus file names %s)", bus->root,
			       bus->root, CTL_SOCKET_NAME, daemon_pid,
			       now.pid ? "another" : "none");
	bus->link_daemon = now.pid;
	return 0;
}

/* Connect to the daemon serving the root and say HELLO: 0, DAEMON_NONE
 * (with a message saying why), or -EUSERS when the daemon refused the
 * connection (too many of this user's), with its message. */
static int link_up(shmbus *bus, uint8_t *rbuf)
{
	struct sockaddr_un sa;
	struct ucred cr = { 0 };
	socklen_t crlen = sizeof cr;
	char why[300] = "";
	uint32_t daemon_pid;
	struct served s;
	int dirfd, fd, rc;

	if (bus->no_daemon)
		return DAEMON_NONE;
	if (served_by(bus, &s) < 0) {
		/* its reason stands unless a socket is found (activatable() sets none) */
		snprintf(why, sizeof why, "%s", shmbus_errmsg());
		if (activatable(bus, &s) < 0)
			return DAEMON_NONE;
	}
	rc = ctl_sockaddr(s.path, &sa, &dirfd);
	fd = rc ? -1 : socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		rc = s.pid ? lib_err(-errno, "no daemon serves %s (shmbusd pid %u: cannot connect to "
				     "%s: %s)", bus->root, s.pid, s.path, strerror(errno))
			   : lib_err(-errno, "%s; nothing listens on %s to start one (%s)", why,
				     s.path, strerror(errno));
	else if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0)
		rc = -errno;
	else if (fd >= 0 && !peer_trusted(bus, &s, &cr))
		rc = lib_err(-EPERM, "no daemon serves %s (%s is served by pid %d uid %u, not by "
			     "shmbusd pid %u)", bus->root, s.path, (int)cr.pid, (unsigned)cr.uid, s.pid);
	if (dirfd >= 0)
		close(dirfd);
	if (rc || fd < 0) {
		if (fd >= 0)
			close(fd);
		return DAEMON_NONE;
	}
	bus->linkfd = fd;
	bus->link_pid = proc_self(NULL);
	bus->link_daemon = s.pid;
	rc = hello(bus, rbuf, s.pid ? HELLO_TIMEOUT_MS : ACTIVATE_TIMEOUT_MS, &daemon_pid);
	if (rc == 0 && !s.pid)
		rc = activated(bus, daemon_pid);
	if (rc) {
		link_drop(bus);
		/* a daemon is there and said no: not a reason to go embedded unseen */
		return rc == -EUSERS ? rc : DAEMON_NONE;
	}
	return 0;
}

/*
 * One request: connect if not connected, send, wait.  A broken old
 * connection is replaced once (the daemon may have restarted); a fresh
 * one that breaks means no daemon.  Called with link_lock held.
 */
static int request(shmbus *bus, uint16_t type, build_fn build, const void *arg,
		   uint8_t *rbuf, struct ctl_msg *rep, int timeout_ms)
{
	uint8_t *sbuf = rbuf + CTL_MSG_MAX; /* run() allocates both */
	struct ctl_out o;

	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = false;
		uint32_t seq;
		int rc;

		if (bus->linkfd >= 0 && bus->link_pid != proc_self(NULL)) {
			close(bus->linkfd); /* our parent's, inherited through fork() */
			bus->linkfd = -1;
		}
		if (bus->linkfd < 0) {
			rc = link_up(bus, rbuf);
			if (rc)
				return rc;
			fresh = true;
		}
		seq = next_seq(bus);
		ctl_init(&o, sbuf, CTL_MSG_MAX, type, seq);
		if (build)
			build(&o, arg);
		rc = call(bus, &o, seq, rbuf, rep, timeout_ms);
		if (rc != DAEMON_NONE || fresh)
			return rc;
	}
	return DAEMON_NONE;
}

/*
 * At shmbus_open.  A refused connection does not fail the open (producers
 * and consumers need no daemon), but leaves its warning in
 * shmbus_errmsg(); administration and status then fail with -EUSERS
 * until a connection is free (request() connects again each time).
 */
void daemon_link_open(shmbus *bus)
{
	char why[400];
	uint8_t *rbuf;
	int rc;

	if (bus->no_daemon || !(rbuf = malloc(CTL_MSG_MAX)))
		return;
	pthread_mutex_lock(&bus->link_lock);
	rc = link_up(bus, rbuf);
	pthread_mutex_unlock(&bus->link_lock);
	free(rbuf);
	if (rc != -EUSERS) {
		shm_err_clear(); /* opening succeeded, with or without a daemon */
		return;
	}
	snprintf(why, sizeof why, "%s", shm_errmsg());
	lib_err(rc, "%s; until one is free this bus works without shmbusd: this process is "
		"not registered (a claim it leaves when it dies waits unblock_timeout_ms), and "
		"topic administration and status fail with -EUSERS", why);
}

void daemon_link_close(shmbus *bus)
{
	if (bus->linkfd >= 0)
		close(bus->linkfd);
	bus->linkfd = -1;
}

/* Run a request and turn the answer into a return value; rep may be NULL. */
static int run(shmbus *bus, uint16_t type, build_fn build, const void *arg, int timeout_ms,
	       void (*read_reply)(const struct ctl_msg *rep, void *out), void *out)
{
	uint8_t *rbuf = malloc(2 * CTL_MSG_MAX); /* the reply, then the request */
	struct ctl_msg rep;
	int rc;

	if (!rbuf)
		return lib_err(-ENOMEM, "out of memory");
	pthread_mutex_lock(&bus->link_lock);
	rc = request(bus, type, build, arg, rbuf, &rep, timeout_ms);
	if (rc == 0) {
		rc = answer(bus, &rep);
		if (rc == 0 && read_reply)
			read_reply(&rep, out);
	}
	pthread_mutex_unlock(&bus->link_lock);
	free(rbuf);
	return rc;
}

int daemon_call(shmbus *bus, uint16_t type, void (*build)(struct ctl_out *o, const void *arg),
		const void *arg, void (*read_reply)(const struct ctl_msg *rep, void *out), void *out,
		int timeout_ms)
{
	if (bus->no_daemon)
		return DAEMON_NONE;
	return run(bus, type, build, arg, timeout_ms, read_reply, out);
}

/* ------------------------------------------------------------------ */
/* Topics                                                              */

struct create_args {
	const char *name;
	const struct shmbus_topic_opts *o;
};

static void build_create(struct ctl_out *out, const void *arg)
{
	const struct create_args *a = arg;
	const struct shmbus_topic_opts *o = a->o;

	ctl_put_str(out, CTL_A_NAME, a->name);
	if (o->partitions)
		ctl_put_u32(out, CTL_A_PARTITIONS, o->partitions);
	if (o->capacity)
		ctl_put_u64(out, CTL_A_CAPACITY, o->capacity);
	if (o->index_capacity)
		ctl_put_u64(out, CTL_A_INDEX_CAPACITY, o->index_capacity);
	ctl_put_u32(out, CTL_A_POLICY, (uint32_t)o->policy);
	if (o->numa_bind)
		ctl_put_i32(out, CTL_A_NUMA_NODE, o->numa_node);
	if (o->retention_ms)
		ctl_put_i64(out, CTL_A_RETENTION_MS, o->retention_ms);
	if (o->mode)
		ctl_put_u32(out, CTL_A_MODE, o->mode);
}

int daemon_topic_create(shmbus *bus, const char *name, const struct shmbus_topic_opts *o)
{
	struct create_args a = { .name = name, .o = o };

	if (bus->no_daemon)
		return DAEMON_NONE;
	return run(bus, CTL_TOPIC_CREATE, build_create, &a, ADMIN_TIMEOUT_MS, NULL, NULL);
}

static void build_name(struct ctl_out *out, const void *arg)
{
	ctl_put_str(out, CTL_A_NAME, arg);
}

struct grow_args {
	const char *name;
	uint32_t count;
	bool validate_only;
};

static void build_grow(struct ctl_out *out, const void *arg)
{
	const struct grow_args *a = arg;

	ctl_put_str(out, CTL_A_NAME, a->name);
	ctl_put_u32(out, CTL_A_PARTITIONS, a->count);
	if (a->validate_only)
		ctl_put_u32(out, CTL_A_FLAGS, CTL_GROW_VALIDATE_ONLY);
}

int daemon_topic_grow(shmbus *bus, const char *name, uint32_t count, bool validate_only)
{
	struct grow_args a = { .name = name, .count = count, .validate_only = validate_only };

	if (bus->no_daemon)
		return DAEMON_NONE;
	return run(bus, CTL_TOPIC_GROW, build_grow, &a, ADMIN_TIMEOUT_MS, NULL, NULL);
}

int daemon_topic_delete(shmbus *bus, const char *name)
{
	if (bus->no_daemon)
		return DAEMON_NONE;
	return run(bus, CTL_TOPIC_DELETE, build_name, name, ADMIN_TIMEOUT_MS, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Status                                                              */

static void copy_str(char *dst, size_t len, const struct ctl_msg *rep, enum ctl_attr a)
{
	snprintf(dst, len, "%s", rep->has[a] ? rep->str[a] : "");
}

static void read_status(const struct ctl_msg *rep, void *out)
{
	struct shmbus_daemon_status *s = out;
	const uint64_t *n = rep->num;

	copy_str(s->version, sizeof s->version, rep, CTL_A_VERSION);
	copy_str(s->root, sizeof s->root, rep, CTL_A_ROOT);
	copy_str(s->control_socket, sizeof s->control_socket, rep, CTL_A_CONTROL_SOCKET);
	copy_str(s->metrics, sizeof s->metrics, rep, CTL_A_METRICS);
	copy_str(s->admin_group, sizeof s->admin_group, rep, CTL_A_ADMIN_GROUP);
	s->pid = (int32_t)n[CTL_A_DAEMON_PID];
	s->uid = (uint32_t)n[CTL_A_DAEMON_UID];
	s->protocol = (uint32_t)n[CTL_A_PROTOCOL];
	s->started_ns = (int64_t)n[CTL_A_STARTED_NS];
	s->uptime_ms = n[CTL_A_UPTIME_MS];
	s->heartbeat_ns = (int64_t)n[CTL_A_HEARTBEAT_NS];
	s->unblock_timeout_ms = (int64_t)n[CTL_A_UNBLOCK_TIMEOUT_MS];
	s->tick_ms = (int64_t)n[CTL_A_TICK_MS];
	s->on_tmpfs = n[CTL_A_ON_TMPFS] != 0;
	s->topics = n[CTL_A_TOPICS];
	s->partitions = n[CTL_A_PARTITION_COUNT];
	s->clients = n[CTL_A_CLIENTS];
	copy_str(s->mirror_listen, sizeof s->mirror_listen, rep, CTL_A_MIRROR_LISTEN);
	s->min_mirrors = (uint32_t)n[CTL_A_MIN_MIRRORS];
#define GET(field, attr, word) s->stats.field = n[CTL_A_##attr];
	DAEMON_STATS(GET)
#undef GET
}

/* -ENOENT for a status without a daemon, with why there is none. */
static int no_daemon(shmbus *bus)
{
	char why[400];

	if (bus->no_daemon)
		return lib_err(-ENOENT, "this bus handle was opened with no_daemon; open one "
			       "without it to ask shmbusd serving %s", bus->root);
	snprintf(why, sizeof why, "%s", shmbus_errmsg());
	if (!strncmp(why, "no daemon serves", 16))
		return lib_err(-ENOENT, "%s; start one with shmbusd --root %s", why, bus->root);
	return lib_err(-ENOENT, "no daemon this libshmbus can use serves %s (%s); start one "
		       "with shmbusd --root %s", bus->root, why[0] ? why : "none found", bus->root);
}

SHMBUS_API int shmbus_daemon_status(shmbus *bus, struct shmbus_daemon_status *ret)
{
	struct shmbus_daemon_status *s;
	int rc = OUT_CHECK(shmbus_daemon_status, ret);

	if (rc < 0)
		return rc;
	s = calloc(1, sizeof *s);
	if (!s)
		return lib_err(-ENOMEM, "out of memory");
	rc = bus->no_daemon ? DAEMON_NONE
			    : run(bus, CTL_STATUS, NULL, NULL, STATUS_TIMEOUT_MS, read_status, s);
	if (rc == DAEMON_NONE)
		rc = no_daemon(bus);
	if (rc == 0)
		OUT_STORE(ret, *s);
	free(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Mirrors (protocol.md §9)                                            */

/* The value of KEY= in a MIRROR_STATUS line (tab-separated KEY=VALUE
 * fields), copied into dst; "" if absent.  The text is the daemon's:
 * bounded by the message it came in, copied with truncation. */
static void field(const char *line, size_t n, const char *key, char *dst, size_t len)
{
	size_t klen = strlen(key);

	dst[0] = '\0';
	for (size_t at = 0; at < n;) {
		const char *f = line + at, *tab = memchr(f, '\t', n - at);
		size_t flen = tab ? (size_t)(tab - f) : n - at;

		if (flen > klen && !memcmp(f, key, klen) && f[klen] == '=') {
			size_t vlen = flen - klen - 1 < len - 1 ? flen - klen - 1 : len - 1;

			memcpy(dst, f + klen + 1, vlen);
			dst[vlen] = '\0';
			return;
		}
		at += flen + 1;
	}
}

static uint64_t field_u64(const char *line, size_t n, const char *key)
{
	char v[32];

	field(line, n, key, v, sizeof v);
	return strtoull(v, NULL, 10);
}

static void mirror_line(const char *line, size_t n, struct shmbus_mirror_status *m)
{
	char part[24];

	memset(m, 0, sizeof *m);
	m->sz = sizeof *m;
	field(line, n, "mirror", m->mirror, sizeof m->mirror);
	field(line, n, "source", m->source, sizeof m->source);
	field(line, n, "topic", m->topic, sizeof m->topic);
	field(line, n, "partition", part, sizeof part);
	m->partition = part[0] ? (int32_t)strtol(part, NULL, 10) : -1;
	m->end = field_u64(line, n, "end");
	m->source_end = field_u64(line, n, "source_end");
	m->lag = field_u64(line, n, "lag");
	field(line, n, "state", m->state, sizeof m->state);
	m->reconnects = field_u64(line, n, "reconnects");
	m->gaps = field_u64(line, n, "gaps");
	field(line, n, "last_error", m->last_error, sizeof m->last_error);
	field(line, n, "tls", m->tls, sizeof m->tls);
	m->lag_ms = field_u64(line, n, "lag_ms");
	m->gap_offsets = field_u64(line, n, "gap_offsets");
	m->bytes = field_u64(line, n, "bytes");
	m->records = field_u64(line, n, "records");
	field(line, n, "epoch", part, sizeof part);
	m->epoch = strtoull(part, NULL, 16);
	m->cut = field_u64(line, n, "cut");
	m->recreated = field_u64(line, n, "recreated");
	field(line, n, "id", m->id, sizeof m->id);
	field(line, n, "source_id", m->source_id, sizeof m->source_id);
}

/* The text of attribute `attr` of a MIRROR_STATUS RESULT, copied. */
struct mirror_text {
	enum ctl_attr attr;
	char *text;
};

static void read_mirrors(const struct ctl_msg *rep, void *out)
{
	struct mirror_text *t = out;

	t->text = strdup(rep->has[t->attr] ? rep->str[t->attr] : "");
}

static void build_mirror_status(struct ctl_out *o, const void *topic)
{
	if (topic)
		ctl_put_str(o, CTL_A_NAME, topic);
}

/* Ask MIRROR_STATUS (of topic, or NULL) for the text of attribute attr:
 * 0 with *ret (to free), or -errno with a message. */
static int mirror_text(shmbus *bus, const char *topic, enum ctl_attr attr, char **ret)
{
	struct mirror_text t = { .attr = attr };
	int rc;

	rc = bus->no_daemon ? DAEMON_NONE
			    : run(bus, CTL_MIRROR_STATUS, build_mirror_status, topic,
				  STATUS_TIMEOUT_MS, read_mirrors, &t);
	if (rc == DAEMON_NONE)
		return no_daemon(bus);
	if (rc < 0)
		return rc;
	if (!t.text)
		return lib_err(-ENOMEM, "out of memory");
	*ret = t.text;
	return 0;
}

/* Each line of text, parsed by parse into a struct of `size` bytes and
 * stored into out[n] (stride bytes apart) while n < max: the lines. */
static int each_line(char *text, void (*parse)(const char *line, size_t n, void *m), void *m,
		     size_t size, void *out, size_t stride, size_t max)
{
	int n = 0;

	for (char *line = text; *line;) {
		char *nl = strchrnul(line, '\n');

		if ((size_t)n < max) {
			parse(line, (size_t)(nl - line), m);
			out_store((char *)out + (size_t)n * stride, stride, m, size);
		}
		n++;
		line = *nl ? nl + 1 : nl;
	}
	return n;
}

static void mirror_parse(const char *line, size_t n, void *m)
{
	mirror_line(line, n, m);
}

SHMBUS_API int shmbus_mirror_status(shmbus *bus, struct shmbus_mirror_status *out, size_t max)
{
	struct shmbus_mirror_status m;
	char *text = NULL;
	size_t stride = 0;
	int rc;

	if (max) {
		rc = OUT_CHECK(shmbus_mirror_status, out);
		if (rc < 0)
			return rc;
		stride = out->sz;
	}
	rc = mirror_text(bus, NULL, CTL_A_MIRRORS, &text);
	if (rc < 0)
		return rc;
	rc = each_line(text, mirror_parse, &m, sizeof m, out, stride, max);
	free(text);
	return rc;
}

static void follower_parse(const char *line, size_t n, void *arg)
{
	struct shmbus_mirror_follower *f = arg;
	char part[16];

	memset(f, 0, sizeof *f);
	f->sz = sizeof *f;
	field(line, n, "host", f->host, sizeof f->host);
	field(line, n, "peer", f->peer, sizeof f->peer);
	field(line, n, "topic", f->topic, sizeof f->topic);
	field(line, n, "partition", part, sizeof part);
	f->partition = part[0] ? (int32_t)strtol(part, NULL, 10) : -1;
	f->acked = field_u64(line, n, "acked");
	f->sent = field_u64(line, n, "sent");
	f->end = field_u64(line, n, "end");
	f->lag = field_u64(line, n, "lag");
	f->mirrored = field_u64(line, n, "mirrored");
	f->ack_age_ms = (int64_t)field_u64(line, n, f->topic[0] ? "ack_age_ms" : "ago_ms");
	field(line, n, "state", f->state, sizeof f->state);
	field(line, n, "last_error", f->last_error, sizeof f->last_error);
	field(line, n, "id", f->id, sizeof f->id);
	field(line, n, "cert", f->cert, sizeof f->cert);
}

SHMBUS_API int shmbus_mirror_followers(shmbus *bus, const char *topic,
				       struct shmbus_mirror_follower *out, size_t max)
{
	struct shmbus_mirror_follower f;
	char *text = NULL;
	size_t stride = 0;
	int rc;

	if (max) {
		rc = OUT_CHECK(shmbus_mirror_follower, out);
		if (rc < 0)
			return rc;
		stride = out->sz;
	}
	rc = mirror_text(bus, topic, CTL_A_MIRROR_FOLLOWERS, &text);
	if (rc < 0)
		return rc;
	rc = each_line(text, follower_parse, &f, sizeof f, out, stride, max);
	free(text);
	return rc;
}

static void read_promoted(const struct ctl_msg *rep, void *out)
{
	char **text = out;

	*text = strdup(rep->has[CTL_A_PROMOTED] ? rep->str[CTL_A_PROMOTED] : "");
}

SHMBUS_API int shmbus_mirror_promote(shmbus *bus, const char *topic, char *report, size_t len)
{
	char *text = NULL;
	int rc;

	if (!topic || !dir_name_valid(topic))
		return lib_err(-EINVAL, "\"%s\" is not a valid topic name", topic ? topic : "(null)");
	rc = bus->no_daemon ? DAEMON_NONE
			    : run(bus, CTL_MIRROR_PROMOTE, build_name, topic, ADMIN_TIMEOUT_MS,
				  read_promoted, &text);
	if (rc == DAEMON_NONE)
		return no_daemon(bus);
	if (rc < 0) {
		if (rc == -EOPNOTSUPP)
			lib_err(rc, "the shmbusd serving %s cannot promote (it is older): upgrade "
				"it", bus->root);
		return rc;
	}
	if (!text)
		return lib_err(-ENOMEM, "out of memory");
	if (report && len)
		snprintf(report, len, "%s", text);
	rc = 0;
	for (const char *c = text; *c; c++)
		rc += *c == '\n';
	free(text);
	return rc;
}
