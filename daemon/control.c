/*
 * control.c - the control socket: a Unix SOCK_SEQPACKET socket (by default
 * <root>/control) speaking docs/protocol.md, served from the event loop.
 *
 * Each connection keeps the credentials the kernel recorded when the peer
 * connected (SO_PEERCRED, SO_PEERGROUPS); nothing a message says about its
 * sender is believed.  Creating and deleting topics needs uid 0, the
 * daemon's user, or membership of the configured admin group; a HELLO
 * with the register flag makes clients.c watch the peer's pid.  A uid
 * other than root's and ours holds at most max_connections_per_uid
 * connections (1024 in all), so no user can take them all.  Creates
 * and deletes run in topics.c's worker: their connection is parked (not
 * read) until control_answer() sends their RESULT, so each peer's
 * RESULTs stay in order while other peers are served.
 *
 * Invariants: every socket is non-blocking and every reply is sent with
 * MSG_DONTWAIT, so no peer can stall the loop (a peer that does not read
 * its replies is disconnected); every message gets a RESULT when its
 * sequence number can be read, and a connection is closed only when its
 * stream of messages cannot be trusted any more (no magic, a header that
 * lies about the length, an oversized message).  The socket path is in
 * the bus file's daemon block while we listen, and removed when we stop.
 */
#include "shmbusd.h"
#include "coordinator.h"
#include "mirror.h"
#include "mirror_acks.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/ctlproto.h"
#include "../util/error.h"
#include "../util/shareddir.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define MAX_CONNS       CONFIG_MAX_CONNS
#define READ_BATCH      16          /* messages taken from one peer per wake-up */
#define ACCEPT_BATCH    64
#define HEARTBEAT_NS    1000000000LL
#define NOTE_WINDOW_NS  (10 * 1000000000LL)
#define NOTE_BURST      20          /* log lines about bad peers per window */

#define STR_(x) #x
#define VERSION_STR(a, b, c) STR_(a) "." STR_(b) "." STR_(c)
#define SHMBUSD_VERSION VERSION_STR(SHMBUS_VERSION_MAJOR, SHMBUS_VERSION_MINOR, SHMBUS_VERSION_PATCH)

struct control;

struct conn {
	struct control *ctl;
	struct conn *prev, *next;
	int fd;
	struct ucred cred;            /* the peer, as it connected */
	gid_t *groups;                /* its supplementary groups */
	int ngroups;
	uint64_t serial;              /* names it to topics.c, which may answer later */
	bool parked;                  /* a request of it is in topics.c's worker */
};

struct control {
	int fd;                       /* the listening socket */
	int hb_fd;                    /* heartbeat timer */
	char path[PATH_MAX];
	struct ctlsock sock;          /* the socket file we bound (ctlsock.c) */
	bool paused;
	struct conn *conns;
	size_t nconns;
	uint64_t serials;             /* the last connection's serial */
	int64_t note_since;
	unsigned notes, suppressed;
	uint8_t in[CTL_MSG_MAX];
	uint8_t out[CTL_MSG_MAX];
};

/* ------------------------------------------------------------------ */
/* Logging about peers                                                 */

/* "uid 1000 (alice) pid 4242" */
static void peer_name(const struct conn *k, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	getpwuid_r(k->cred.uid, &pw, tmp, sizeof tmp, &res);
	snprintf(buf, len, "uid %u (%s) pid %d", (unsigned)k->cred.uid, res ? res->pw_name : "?",
		 (int)k->cred.pid);
}

/* A notice about a misbehaving peer: at most NOTE_BURST per window, so a
 * peer sending garbage cannot flood the journal. */
static void __attribute__((format(printf, 2, 3))) note(struct control *c, const char *fmt, ...)
{
	int64_t now = mono_ns();
	char line[1024];
	va_list ap;

	if (now - c->note_since > NOTE_WINDOW_NS) {
		if (c->suppressed)
			log_notice("control socket: %u more messages about bad requests were not logged",
				   c->suppressed);
		c->note_since = now;
		c->notes = c->suppressed = 0;
	}
	if (c->notes++ >= NOTE_BURST) {
		c->suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	log_notice("%s", line);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static void conn_close(struct daemon *d, struct conn *k)
{
	struct control *c = k->ctl;

	loop_del(d, k->fd);
	close(k->fd);
	if (k->prev)
		k->prev->next = k->next;
	else
		c->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	c->nconns--;
	coord_conn_closed(d, k->serial); /* its group members: gone at once */
	free(k->groups);
	free(k);
	if (c->paused && loop_mod(d, c->fd, EPOLLIN) == 0)
		c->paused = false;
}

/* Supplementary groups of the peer, as they were when it connected. */
static void peer_groups(struct conn *k)
{
	socklen_t len = 16 * sizeof(gid_t);

	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = realloc(k->groups, len ? len : sizeof(gid_t));

		if (!g)
			return;
		k->groups = g;
		if (getsockopt(k->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			k->ngroups = (int)(len / sizeof(gid_t));
			return;
		}
		if (errno != ERANGE) {
			log_debug("control socket: no SO_PEERGROUPS (%s): only the peer's primary "
				  "group counts", strerror(errno));
			return;
		}
	}
}

/* Send a finished RESULT; -1 if the peer cannot take it (closed by the caller). */
static int send_out(struct control *c, struct conn *k, struct ctl_out *o)
{
	int len = ctl_finish(o);

	if (len < 0) {
		log_err("control socket: a reply did not fit in %u bytes (a bug)", CTL_MSG_MAX);
		return -1;
	}
	if (send(k->fd, c->out, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) == len)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		char who[160];

		peer_name(k, who, sizeof who);
		note(c, "control socket: closing the connection of %s: it does not read its replies",
		     who);
	}
	return -1;
}

/* Start a RESULT for request `type` with sequence number seq. */
static void result(struct control *c, struct ctl_out *o, uint32_t seq, uint16_t type, int status,
		   const char *msg)
{
	ctl_init(o, c->out, sizeof c->out, CTL_RESULT, seq);
	ctl_put_i32(o, CTL_A_STATUS, status);
	ctl_put_u32(o, CTL_A_REQUEST, type);
	if (msg && *msg)
		ctl_put_str(o, CTL_A_MESSAGE, msg);
}

static int reply(struct control *c, struct conn *k, uint32_t seq, uint16_t type, int status,
		 const char *msg)
{
	struct ctl_out o;

	result(c, &o, seq, type, status, msg);
	return send_out(c, k, &o);
}

/* ------------------------------------------------------------------ */
/* Who may administer                                                  */

static bool in_group(const struct conn *k, gid_t gid)
{
	if (k->cred.gid == gid)
		return true;
	for (int i = 0; i < k->ngroups; i++)
		if (k->groups[i] == gid)
			return true;
	return false;
}

static bool may_admin(const struct daemon *d, const struct conn *k)
{
	if (k->cred.uid == 0 || k->cred.uid == geteuid())
		return true;
	return d->cfg.has_admin_gid && in_group(k, d->cfg.admin_gid);
}

/* -EACCES with what would allow it. */
static int refuse(struct daemon *d, struct conn *k, const struct ctl_msg *m, const char *verb)
{
	struct passwd pw, *res = NULL;
	char tmp[1024], msg[PATH_MAX + 768], who[160], uid[16];
	const char *user;

	getpwuid_r(k->cred.uid, &pw, tmp, sizeof tmp, &res);
	snprintf(uid, sizeof uid, "%u", (unsigned)k->cred.uid);
	user = res ? res->pw_name : uid; /* usermod takes a name; a uid at least says who */
	if (d->cfg.has_admin_gid)
		snprintf(msg, sizeof msg, "uid %u (%s) may not %s topics through shmbusd on %s: only "
			 "root, the daemon's user (uid %u) and members of group \"%s\" may; add %s to "
			 "that group (usermod -aG %s %s; it counts from the user's next login) and open the "
			 "bus again", (unsigned)k->cred.uid,
			 res ? res->pw_name : "?", verb, d->cfg.root, (unsigned)geteuid(),
			 d->cfg.admin_group, user, d->cfg.admin_group, user);
	else
		snprintf(msg, sizeof msg, "uid %u (%s) may not %s topics through shmbusd on %s: only "
			 "root and the daemon's user (uid %u) may; set admin_group in the daemon's "
			 "configuration to a group %s is in to allow it", (unsigned)k->cred.uid,
			 res ? res->pw_name : "?", verb, d->cfg.root, (unsigned)geteuid(), user);
	peer_name(k, who, sizeof who);
	d->st.control_errors++;
	note(k->ctl, "control socket: refused to %s topic \"%s\" for %s: not root, the daemon's "
	     "user or in the admin group", verb, m->str[CTL_A_NAME], who);
	return reply(k->ctl, k, m->hdr.seq, m->hdr.type, -EACCES, msg);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

static int do_hello(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	struct control *c = k->ctl;
	bool want = m->has[CTL_A_FLAGS] && (m->num[CTL_A_FLAGS] & CTL_HELLO_REGISTER);
	char msg[256] = "";
	struct ctl_out o;
	int rc = -1;

	if (want && k->cred.pid <= 0)
		snprintf(msg, sizeof msg, "not registered: the peer's pid is not visible from "
			 "shmbusd's pid namespace");
	else if (want && (rc = clients_watch(d, k->cred.pid)) < 0)
		snprintf(msg, sizeof msg, "not registered: cannot watch pid %d: %s (needs Linux "
			 "5.3 for pidfds); stalled claims are aborted after unblock_timeout_ms",
			 (int)k->cred.pid, strerror(-rc));
	if (m->has[CTL_A_PID] && m->num[CTL_A_PID] != (uint64_t)k->cred.pid)
		log_debug("HELLO says pid %llu, but the socket's peer is pid %d: using %d",
			  (unsigned long long)m->num[CTL_A_PID], (int)k->cred.pid, (int)k->cred.pid);
	log_debug("HELLO from pid %d uid %u, libshmbus %llu.%llu.%llu%s", (int)k->cred.pid,
		  (unsigned)k->cred.uid, (unsigned long long)(m->num[CTL_A_CLIENT_VERSION] >> 16),
		  (unsigned long long)(m->num[CTL_A_CLIENT_VERSION] >> 8 & 0xff),
		  (unsigned long long)(m->num[CTL_A_CLIENT_VERSION] & 0xff),
		  rc == 0 ? ", registered" : "");
	result(c, &o, m->hdr.seq, CTL_HELLO, 0, msg);
	ctl_put_u32(&o, CTL_A_PROTOCOL, CTL_VERSION);
	ctl_put_str(&o, CTL_A_VERSION, SHMBUSD_VERSION);
	ctl_put_u32(&o, CTL_A_DAEMON_PID, (uint32_t)getpid());
	ctl_put_u32(&o, CTL_A_REGISTERED, rc == 0);
	return send_out(c, k, &o);
}

/* The options of a TOPIC_CREATE, with the daemon's defaults; 0 or -EINVAL. */
static int create_opts(struct daemon *d, const struct ctl_msg *m, struct shmbus_topic_opts *o,
		       char *msg, size_t len)
{
	unsigned mode = d->cfg.file_mode;

	*o = (struct shmbus_topic_opts){
		.sz = sizeof *o,
		.partitions = (uint32_t)m->num[CTL_A_PARTITIONS],
		.capacity = m->num[CTL_A_CAPACITY],
		.index_capacity = m->num[CTL_A_INDEX_CAPACITY],
		.policy = (enum shmbus_policy)m->num[CTL_A_POLICY],
		.numa_bind = m->has[CTL_A_NUMA_NODE] && ctl_signed(m, CTL_A_NUMA_NODE) >= 0,
		.numa_node = (int)ctl_signed(m, CTL_A_NUMA_NODE),
		.retention_ms = m->has[CTL_A_RETENTION_MS] ? ctl_signed(m, CTL_A_RETENTION_MS)
							   : d->cfg.retention_default_ms,
	};
	if (m->num[CTL_A_POLICY] > SHMBUS_POLICY_BACKPRESSURE) {
		snprintf(msg, len, "topic \"%s\": policy %llu is unknown; use 0 (overwrite) or 1 "
			 "(backpressure)", m->str[CTL_A_NAME], (unsigned long long)m->num[CTL_A_POLICY]);
		return -EINVAL;
	}
	if (m->has[CTL_A_MODE] && m->num[CTL_A_MODE]) {
		mode &= (unsigned)m->num[CTL_A_MODE] & 0777;
		if (!mode) {
			snprintf(msg, len, "topic \"%s\": mode %04llo leaves no permission within "
				 "shmbusd's file_mode %04o; ask for a mode that shares bits with it",
				 m->str[CTL_A_NAME], (unsigned long long)m->num[CTL_A_MODE],
				 d->cfg.file_mode);
			return -EINVAL;
		}
	}
	o->mode = mode;
	return 0;
}

/* Stop reading from k until control_answer() (its request is queued). */
static void park(struct daemon *d, struct conn *k)
{
	k->parked = true;
	loop_mod(d, k->fd, 0); /* a hang-up is still reported: on_conn closes it */
}

static void peer_of(struct conn *k, const struct ctl_msg *m, struct ctl_peer *to)
{
	to->conn = k->serial;
	to->seq = m->hdr.seq;
	to->type = m->hdr.type;
	peer_name(k, to->who, sizeof to->who);
}

static int do_create(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	const char *name = m->str[CTL_A_NAME];
	struct shmbus_topic_opts o;
	struct ctl_peer to;
	char msg[600];
	int rc;

	if (!may_admin(d, k))
		return refuse(d, k, m, "create");
	peer_of(k, m, &to);
	rc = create_opts(d, m, &o, msg, sizeof msg);
	if (rc == 0 && (rc = topics_create(d, &to, name, &o)) < 0)
		snprintf(msg, sizeof msg, "topic \"%s\": shmbusd cannot queue the request: %s",
			 name, strerror(-rc));
	if (rc < 0) {
		log_notice("cannot create topic \"%s\" for %s: %s", name, to.who, msg);
		return reply(k->ctl, k, m->hdr.seq, m->hdr.type, rc, msg);
	}
	park(d, k);
	return 0;
}

static int do_delete(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	const char *name = m->str[CTL_A_NAME];
	struct ctl_peer to;
	char msg[600];
	int rc;

	if (!may_admin(d, k))
		return refuse(d, k, m, "delete");
	peer_of(k, m, &to);
	rc = topics_delete(d, &to, name);
	if (rc < 0) {
		snprintf(msg, sizeof msg, "topic \"%s\": shmbusd cannot queue the request: %s",
			 name, strerror(-rc));
		log_notice("cannot delete topic \"%s\" for %s: %s", name, to.who, msg);
		return reply(k->ctl, k, m->hdr.seq, m->hdr.type, rc, msg);
	}
	park(d, k);
	return 0;
}

static int do_grow(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	const char *name = m->str[CTL_A_NAME];
	uint64_t count = m->num[CTL_A_PARTITIONS];
	struct ctl_peer to;
	char msg[600];
	int rc;

	if (!may_admin(d, k))
		return refuse(d, k, m, "add partitions to");
	peer_of(k, m, &to);
	rc = topics_grow(d, &to, name, count > UINT32_MAX ? UINT32_MAX : (uint32_t)count,
			 m->num[CTL_A_FLAGS] & CTL_GROW_VALIDATE_ONLY);
	if (rc < 0) {
		snprintf(msg, sizeof msg, "topic \"%s\": shmbusd cannot queue the request: %s",
			 name, strerror(-rc));
		log_notice("cannot add partitions to topic \"%s\" for %s: %s", name, to.who, msg);
		return reply(k->ctl, k, m->hdr.seq, m->hdr.type, rc, msg);
	}
	park(d, k);
	return 0;
}

static void answer(struct daemon *d, uint64_t conn, uint32_t seq, uint16_t type, int status,
		   const char *msg, const char *promoted)
{
	struct control *c = d->control;
	struct conn *k = c ? c->conns : NULL;
	struct ctl_out o;

	while (k && k->serial != conn)
		k = k->next;
	if (!k)
		return; /* it hung up meanwhile */
	result(c, &o, seq, type, status, msg);
	if (promoted)
		ctl_put_str(&o, CTL_A_PROMOTED, promoted);
	if (send_out(c, k, &o) < 0) {
		conn_close(d, k);
		return;
	}
	k->parked = false;
	if (loop_mod(d, k->fd, EPOLLIN) < 0)
		conn_close(d, k);
}

void control_answer(struct daemon *d, uint64_t conn, uint32_t seq, uint16_t type, int status,
		    const char *msg)
{
	answer(d, conn, seq, type, status, msg, NULL);
}

void control_answer_promoted(struct daemon *d, uint64_t conn, uint32_t seq, int status,
			     const char *msg, const char *promoted)
{
	/* STATUS is 0 or -errno: the partitions promoted are the lines */
	answer(d, conn, seq, CTL_MIRROR_PROMOTE, status < 0 ? status : 0, msg,
	       status >= 0 ? promoted : NULL);
}

static void put_counters(struct daemon *d, struct ctl_out *o)
{
	const struct shmbus_daemon_stats *s = &d->st;

#define PUT(field, attr, word) ctl_put_u64(o, CTL_A_##attr, s->field);
	DAEMON_STATS(PUT)
#undef PUT
}

static int do_status(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	struct control *c = k->ctl;
	int64_t now = real_ns();
	struct ctl_out o;

	supervise_refresh(d);
	result(c, &o, m->hdr.seq, CTL_STATUS, 0, NULL);
	ctl_put_u32(&o, CTL_A_PROTOCOL, CTL_VERSION);
	ctl_put_str(&o, CTL_A_VERSION, SHMBUSD_VERSION);
	ctl_put_u32(&o, CTL_A_DAEMON_PID, (uint32_t)getpid());
	ctl_put_u32(&o, CTL_A_DAEMON_UID, (uint32_t)geteuid());
	ctl_put_str(&o, CTL_A_ROOT, d->cfg.root);
	ctl_put_str(&o, CTL_A_CONTROL_SOCKET, c->path);
	ctl_put_str(&o, CTL_A_METRICS, d->cfg.metrics);
	ctl_put_str(&o, CTL_A_ADMIN_GROUP, d->cfg.has_admin_gid ? d->cfg.admin_group : "");
	ctl_put_i64(&o, CTL_A_STARTED_NS, d->started_ns);
	ctl_put_u64(&o, CTL_A_UPTIME_MS, now > d->started_ns
				       ? (uint64_t)(now - d->started_ns) / 1000000 : 0);
	ctl_put_i64(&o, CTL_A_HEARTBEAT_NS, dir_daemon_heartbeat(&d->dir));
	ctl_put_i64(&o, CTL_A_UNBLOCK_TIMEOUT_MS, d->cfg.unblock_timeout_ms);
	ctl_put_i64(&o, CTL_A_TICK_MS, d->cfg.tick_ms);
	ctl_put_u32(&o, CTL_A_ON_TMPFS, d->on_tmpfs);
	ctl_put_u64(&o, CTL_A_TOPICS, (uint64_t)dir_list(&d->dir, NULL, 0));
	ctl_put_u64(&o, CTL_A_PARTITION_COUNT, d->table ? d->table->n : 0);
	ctl_put_u64(&o, CTL_A_CLIENTS, clients_count(d));
	ctl_put_str(&o, CTL_A_MIRROR_LISTEN, d->cfg.mlisten.address);
	ctl_put_u32(&o, CTL_A_MIN_MIRRORS, d->cfg.mlisten.min_mirrors);
	put_counters(d, &o);
	return send_out(c, k, &o);
}

/* A consumer-group request (coordinator.h, protocol.md §8). */
static int serve_group(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	struct coord_peer p = { .conn = k->serial, .pid = k->cred.pid, .uid = k->cred.uid,
				.admin = may_admin(d, k) };
	struct ctl_out o;
	int rc;

	peer_name(k, p.who, sizeof p.who);
	result(k->ctl, &o, m->hdr.seq, m->hdr.type, 0, NULL);
	rc = coord_serve(d, &p, m, &o);
	if (rc == 0 && o.overflow) {
		snprintf(p.msg, sizeof p.msg, "the answer to %s does not fit in one control message "
			 "(%u bytes)", ctl_type_name(m->hdr.type), CTL_MSG_MAX);
		rc = -EMSGSIZE;
	}
	if (rc == 0)
		return send_out(k->ctl, k, &o);
	d->st.control_errors++;
	return reply(k->ctl, k, m->hdr.seq, m->hdr.type, rc, p.msg);
}

/* MIRROR_STATUS: what each [mirror] follows, and the mirrors following
 * this host's partitions (of topic NAME, if given), as text
 * (protocol.md §9).  The followers take at most half the message. */
static int do_mirror_status(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	struct control *c = k->ctl;
	size_t room = CTL_MSG_MAX - 1024, used;
	char *text = malloc(room);
	struct ctl_out o;

	if (!text)
		return reply(c, k, m->hdr.seq, m->hdr.type, -ENOMEM, "shmbusd is out of memory");
	used = acks_status_text(m->has[CTL_A_NAME] ? m->str[CTL_A_NAME] : NULL, text, room / 2);
	result(c, &o, m->hdr.seq, CTL_MIRROR_STATUS, 0, NULL);
	ctl_put_str(&o, CTL_A_MIRROR_FOLLOWERS, text);
	mirror_status_text(d, text, room - used - 1);
	ctl_put_str(&o, CTL_A_MIRRORS, text);
	free(text);
	return send_out(c, k, &o);
}

/* MIRROR_PROMOTE: an admin's; run by the worker, as creates and deletes
 * are (the mirror lets go of the topic first, which may take a while). */
static int do_mirror_promote(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	const char *name = m->str[CTL_A_NAME];
	struct ctl_peer to;
	char msg[600];
	int rc;

	if (!may_admin(d, k))
		return refuse(d, k, m, "promote");
	peer_of(k, m, &to);
	rc = topics_promote(d, &to, name);
	if (rc < 0) {
		snprintf(msg, sizeof msg, "topic \"%s\": shmbusd cannot queue the request: %s",
			 name, strerror(-rc));
		return reply(k->ctl, k, m->hdr.seq, m->hdr.type, rc, msg);
	}
	park(d, k);
	return 0;
}

static int unsupported(struct daemon *d, struct conn *k, const struct ctl_msg *m)
{
	char msg[400], what[64], who[160];

	d->st.control_errors++;
	peer_name(k, who, sizeof who);
	note(k->ctl, "control socket: %s sent request type %u, which this shmbusd does not serve",
	     who, m->hdr.type);
	if (m->hdr.type == CTL_RESULT)
		snprintf(what, sizeof what, "RESULT (%u) is a reply, not a request", CTL_RESULT);
	else
		snprintf(what, sizeof what, "request type %u is unknown here", m->hdr.type);
	snprintf(msg, sizeof msg, "shmbusd %s: %s; it serves HELLO, TOPIC_CREATE, TOPIC_DELETE, "
		 "TOPIC_GROW, STATUS, GROUP_*, MIRROR_STATUS and MIRROR_PROMOTE (protocol version %u, docs/protocol.md); upgrade shmbusd for newer "
		 "requests", SHMBUSD_VERSION, what, CTL_VERSION);
	return reply(k->ctl, k, m->hdr.seq, m->hdr.type, -EOPNOTSUPP, msg);
}

/*
 * A message that does not decode: answer it, with its seq if its header
 * can be read, and say whether the connection can go on (its framing is
 * intact: the header was read and agrees with the message's size).
 */
static int malformed(struct daemon *d, struct conn *k, const uint8_t *buf, size_t n, int err)
{
	struct ctl_hdr h = { 0 };
	bool framed = ctl_peek(buf, n < CTL_MSG_MAX ? n : CTL_MSG_MAX, &h) == 0 &&
		      n <= CTL_MSG_MAX && h.length == n;
	char msg[700], who[160];
	int rc;

	snprintf(msg, sizeof msg, "malformed %s request: %s; see docs/protocol.md",
		 ctl_type_name(h.type)[0] ? ctl_type_name(h.type) : "control", shm_errmsg());
	d->st.control_errors++;
	peer_name(k, who, sizeof who);
	note(k->ctl, "control socket: %s from %s%s", msg, who, framed ? "" : "; disconnected");
	rc = reply(k->ctl, k, h.seq, h.type, err, msg);
	return framed ? rc : -1;
}

/* One message of n bytes in c->in: 0 to go on, -1 to close the connection. */
static int serve(struct daemon *d, struct conn *k, size_t n)
{
	struct control *c = k->ctl;
	struct ctl_msg m;
	int rc;

	d->st.control_requests++;
	if (n > CTL_MSG_MAX)
		rc = shm_err(-EMSGSIZE, "a control message of %zu bytes is larger than the maximum, "
			     "%u", n, CTL_MSG_MAX);
	else
		rc = ctl_decode(c->in, n, &m);
	if (rc == 0 && m.hdr.type != CTL_RESULT) /* a RESULT is not a request: unsupported() */
		rc = ctl_check(&m);
	if (rc < 0)
		return malformed(d, k, c->in, n, rc);
	switch (m.hdr.type) {
	case CTL_HELLO:
		return do_hello(d, k, &m);
	case CTL_TOPIC_CREATE:
		return do_create(d, k, &m);
	case CTL_TOPIC_DELETE:
		return do_delete(d, k, &m);
	case CTL_TOPIC_GROW:
		return do_grow(d, k, &m);
	case CTL_STATUS:
		return do_status(d, k, &m);
	case CTL_GROUP_JOIN ... CTL_GROUP_DELETE:
		return serve_group(d, k, &m);
	case CTL_MIRROR_STATUS:
		return do_mirror_status(d, k, &m);
	case CTL_MIRROR_PROMOTE:
		return do_mirror_promote(d, k, &m);
	default:
		return unsupported(d, k, &m);
	}
}

static void on_conn(struct daemon *d, uint32_t events, void *arg)
{
	struct conn *k = arg;

	if (k->parked) {
		/* only a hang-up or an error is reported while parked: nobody
		 * waits for the answer any more */
		if (events & (EPOLLHUP | EPOLLERR))
			conn_close(d, k);
		return;
	}
	/* a hang-up shows as recv() == 0 once the queue is read */
	for (int i = 0; i < READ_BATCH && !k->parked; i++) {
		ssize_t n = recv(k->fd, k->ctl->in, sizeof k->ctl->in, MSG_TRUNC | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0 || serve(d, k, (size_t)n) < 0) {
			conn_close(d, k);
			return;
		}
	}
}

/* Connections open from uid. */
static unsigned conns_of(const struct control *c, uid_t uid)
{
	unsigned n = 0;

	for (const struct conn *k = c->conns; k; k = k->next)
		n += k->cred.uid == uid;
	return n;
}

/*
 * May the new connection k stay?  Root and the daemon's own user count
 * only against MAX_CONNS; every other uid holds at most
 * max_connections_per_uid, so that no user can take them all.  A refusal
 * is the documented RESULT (protocol.md §6: -EUSERS, seq 0), then the
 * connection is closed.
 */
static bool admit(struct daemon *d, struct control *c, struct conn *k)
{
	unsigned limit = d->cfg.max_conns_per_uid, n = 0;
	bool limited = k->cred.uid != 0 && k->cred.uid != geteuid();
	char msg[320], who[160];

	if (c->nconns < MAX_CONNS && (!limited || (n = conns_of(c, k->cred.uid)) < limit))
		return true;
	if (c->nconns >= MAX_CONNS)
		snprintf(msg, sizeof msg, "shmbusd refused the connection: too many connections "
			 "(%d open in all); close bus handles that are not used, or try again later",
			 MAX_CONNS);
	else
		snprintf(msg, sizeof msg, "shmbusd refused the connection: too many connections "
			 "from uid %u (limit %u); close bus handles this user does not use (each "
			 "open bus holds one), or raise max_connections_per_uid in shmbusd.conf",
			 (unsigned)k->cred.uid, limit);
	d->st.control_errors++;
	peer_name(k, who, sizeof who);
	note(c, "control socket: refused a connection from %s: %u of its connections are open "
	     "(max_connections_per_uid %u), %zu in all", who, n, limit, c->nconns);
	reply(c, k, 0, 0, -EUSERS, msg);
	return false;
}

/* Close a refused connection so that its peer reads the refusal: a
 * socket closed with messages unread resets its peer (ECONNRESET), and a
 * client sends its HELLO right after connecting, before we accept. */
static void close_refused(int fd)
{
	uint8_t junk[16];

	for (int i = 0; i < READ_BATCH; i++)
		if (recv(fd, junk, sizeof junk, MSG_DONTWAIT | MSG_TRUNC) <= 0)
			break;
	close(fd);
}

static void conn_open(struct daemon *d, struct control *c, int fd)
{
	socklen_t len = sizeof(struct ucred);
	struct conn *k = calloc(1, sizeof *k);

	if (!k || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &k->cred, &len) < 0) {
		free(k);
		close(fd);
		return;
	}
	k->ctl = c;
	k->fd = fd;
	k->serial = ++c->serials;
	if (!admit(d, c, k)) {
		close_refused(fd);
		free(k);
		return;
	}
	peer_groups(k);
	if (loop_add(d, fd, EPOLLIN, on_conn, k) < 0) {
		close(fd);
		free(k->groups);
		free(k);
		return;
	}
	k->next = c->conns;
	if (c->conns)
		c->conns->prev = k;
	c->conns = k;
	c->nconns++;
}

static void on_listen(struct daemon *d, uint32_t events, void *arg)
{
	struct control *c = arg;

	(void)events;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_open(d, c, fd);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* stop accepting until a connection closes, or the loop would spin */
			log_warn("control socket: cannot accept connections: %s; raise LimitNOFILE "
				 "(or ulimit -n), or close idle bus handles", strerror(errno));
			if (loop_mod(d, c->fd, 0) == 0)
				c->paused = true;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			   errno != ECONNABORTED) {
			log_warn("control socket: accept failed: %s", strerror(errno));
		}
		return;
	}
}

/* ------------------------------------------------------------------ */
/* The socket                                                          */

static int listen_at(struct daemon *d, struct control *c)
{
	_cleanup_close_ int fd = ctlsock_inherit(c->path);
	int rc = 0;

	if (fd >= 0)
		log_info("control socket %s: passed by systemd (socket activation)", c->path);
	else if (fd == -ENOENT)
		fd = ctlsock_bind(d, c->path, &c->sock);
	if (fd < 0)
		return fd;
	if (listen(fd, 128) < 0 || (rc = loop_add(d, fd, EPOLLIN, on_listen, c)) < 0) {
		log_err("cannot listen on the control socket %s: %s", c->path,
			strerror(rc < 0 ? -rc : errno));
		return rc < 0 ? rc : -errno;
	}
	c->fd = fd;
	fd = -1;
	return 0;
}

/* Topic directories and files are born with the root's group: make the
 * topics directory carry it, setgid. */
static void group_topics(struct daemon *d)
{
	struct stat root, st;

	if (fstat(d->rootfd, &root) < 0 || fstat(d->topicsfd, &st) < 0)
		return;
	if (st.st_gid != root.st_gid && fchown(d->topicsfd, (uid_t)-1, root.st_gid) < 0)
		log_warn("%s/topics: cannot give it the root's group (gid %u): %s", d->cfg.root,
			 (unsigned)root.st_gid, strerror(errno));
	if (!(st.st_mode & S_ISGID) && fchmod(d->topicsfd, (st.st_mode & 07777) | S_ISGID) < 0)
		log_warn("%s/topics: cannot make it setgid: %s; topics created through shmbusd "
			 "get the root's group afterwards", d->cfg.root, strerror(errno));
}

static void on_heartbeat(struct daemon *d, uint32_t events, void *arg)
{
	(void)events;
	(void)arg;
	/* clients trust a heartbeat younger than 5 s (protocol.md §1), whatever tick_ms is */
	dir_daemon_beat(&d->dir, real_ns());
}

int control_init(struct daemon *d)
{
	struct control *c;
	int rc;

	dir_daemon_socket_clear(&d->dir);
	if (d->cfg.control_socket[0] != '/') {
		log_err("control_socket \"%s\" is not an absolute path; write e.g. "
			"/run/shmbus/control", d->cfg.control_socket);
		return -EINVAL;
	}
	if (strlen(d->cfg.control_socket) >= DIR_SOCKET_MAX) {
		log_err("control socket path %s is longer than %zu bytes; set a shorter "
			"control_socket", d->cfg.control_socket, DIR_SOCKET_MAX - 1);
		return -ENAMETOOLONG;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	*c = (struct control){ .fd = -1, .hb_fd = -1 };
	d->control = c;
	snprintf(c->path, sizeof c->path, "%s", d->cfg.control_socket);
	group_topics(d);
	rc = listen_at(d, c);
	if (rc == 0) {
		c->hb_fd = loop_timer(d, HEARTBEAT_NS, on_heartbeat, NULL);
		rc = c->hb_fd < 0 ? c->hb_fd : 0;
	}
	if (rc < 0) {
		control_fini(d);
		return rc;
	}
	/* clients find us by this path (protocol.md §1); the pid is already there */
	(void)dir_daemon_socket_set(&d->dir, c->path); /* fits: checked above */
	log_info("control socket %s", c->path);
	return 0;
}

void control_fini(struct daemon *d)
{
	struct control *c = d->control;

	if (!c)
		return;
	dir_daemon_socket_clear(&d->dir);
	while (c->conns)
		conn_close(d, c->conns);
	if (c->fd >= 0) {
		loop_del(d, c->fd);
		close(c->fd);
	}
	if (c->hb_fd >= 0) {
		loop_del(d, c->hb_fd);
		close(c->hb_fd);
	}
	ctlsock_unlink(c->path, &c->sock);
	free(c);
	d->control = NULL;
}
