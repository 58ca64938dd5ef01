/*
 * mirror_sink.c - the mirror side: for each [mirror "NAME"] a thread
 * connects to the source's shmbusd, lists the topics its `topics`
 * patterns match, creates a replica for each that is missing (the
 * source's partitions and capacity), and fetches every partition from
 * the replica's own end: its position is its ack, so a resume after any
 * fault is a FETCH from the end, with no state on the source to lose.
 *
 * Each DATA batch is checked whole and appended by shm/replica.c; a GAP
 * (the source no longer holds what the replica lacks) is recorded there
 * and logged.  Any fault of the connection (refused, reset, silent past
 * timeout_ms, a malformed message) closes it, and the thread connects
 * again after a backoff of 100 ms doubling to 5 s.
 *
 * ACKs (docs/protocol.md §M11): a partition appended to owes its ACK,
 * sent as soon as the messages at hand are handled (or 100 us later
 * while DATA keeps coming), so a producer waiting for acks=mirrors waits
 * for one batch's append, not a timer; with `ack = flushed` the ACK
 * carries only the end that msync wrote (shm/sync.c).  Every partition
 * is ACKed once a second besides (the heartbeat).
 *
 * Before any record of a fetch the source sends its epoch history
 * (EPOCHS): mirror_epoch.c decides whether to follow, cut this host's
 * log back, stop (or resync) a recreated source, or take over a plain
 * local topic the source continues; the replica adopts the source's
 * epochs as it appends (format.md §14, protocol.md §M9).  Promote asks
 * the thread to let go of a topic (mirror_sink_release), which it does
 * between messages.
 */
#include "mirror.h"
#include "group_cut.h"
#include "mirror_id.h"
#include "mirror_lag.h"
#include "mirror_link.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../util/error.h"
#include "../shm/read.h"
#include "../shm/replica.h"
#include "../shm/sync.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define ACK_NS         1000000000LL
#define ACK_SOON_NS    100000LL /* owed ACKs go at least this often while DATA comes */
#define PARTS_MAX      4096
#define DATA_SLACK     8192 /* aborted ranges a DATA may carry beyond its frames */
#define RELIST_DELETED_S 1  /* the source deleted a topic followed: list again */
#define RELIST_MISSING_S 5  /* it does not have one: list again, */
#define RELIST_MISSING_MAX 3 /* so many times in a row */

/* One mirrored partition. */
struct mpart {
	char topic[PART_NAME_MAX + 1];
	uint32_t partition;
	struct pmap *m;
	struct replica r;
	uint64_t max_frame;
	uint64_t source_end;
	bool stopped;                /* the source does not serve it (UNKNOWN), or its
				      * epochs say not to follow it: STOP sent */
	bool ack_owed;               /* appended to since its last ACK */
	struct part_synced synced;   /* ack = flushed: what msync wrote */
	/* epochs (protocol.md §M9) */
	bool awaiting;               /* FETCH sent, its EPOCHS not yet: DATA and GAP
				      * for this id are an older fetch's, dropped */
	bool candidate;              /* a plain local topic of that name: followed only
				      * once it is made a replica (MV_CONVERT) */
	bool gone;                   /* let go of (promoted here, or dropped to resync):
				      * not fetched, not shown */
	bool promoted;               /* gone because promoted here */
	struct epoch_hist src;       /* the source's history, from its last EPOCHS */
	uint64_t epoch;              /* this partition's last epoch, for status */
	uint64_t cut;                /* offsets cut where its log parted from the source's */
	uint64_t recreated;          /* times the source was found recreated */
	unsigned missing;            /* connections in a row the source lacked it */
	char error[200];
	struct mlag lag;             /* its lag in ms (mirror_lag.h) */
	uint64_t bytes, records;     /* received: frame bytes, offsets */
};

struct sink {
	struct daemon *d;
	const struct config_mirror *cfg;
	char label[256];             /* "NAME (HOST:PORT)": in the topic entry and messages */
	pthread_t thread;
	pthread_mutex_t lock;        /* guards what mirror_status_text reads */
	struct mpart *parts;
	size_t nparts;
	uint64_t reconnects;
	bool connected;
	char error[512];
	int fd;
	struct mlink *link;          /* the transport over fd: plain TCP or TLS */
	struct mlink_ctx *tls;       /* tls = on: this section's TLS context, for the
				      * next connection (under lock: a SIGHUP swaps it) */
	char tls_mode[16];           /* the last connection's (mlink_mode), for the status */
	char source_id[2 * MP_ID_SIZE + 1]; /* the source's mirror id (§M12), "" if unknown */
	uint8_t *rx;
	size_t rxcap, rxlen;
	int64_t heard_ns;
	uint32_t *owed;              /* partitions whose ack_owed is set */
	size_t nowed;
	int64_t acked_ns;            /* owed ACKs last sent */
	/* a topic to let go of (promote), asked from another thread */
	pthread_cond_t released;
	char release[PART_NAME_MAX + 1];
	bool resync_pending;         /* a replica was dropped: connect again */
	bool old_source;             /* the source refused version 3: the next HELLO says 2 */
	bool told_old;               /* ... which was logged (once) */
	int64_t relist_ns;           /* connect again then (a topic deleted there); 0: no */
};

static struct sink *sinks;
static size_t nsinks;
/* sinks and nsinks for the metrics thread, which runs from before
 * mirror_sink_init to after mirror_sink_fini */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static int stop_pipe[2] = { -1, -1 };

static void drop_topic(struct sink *s, const char *topic);

static bool stopping(int wait_ms)
{
	struct pollfd p = { .fd = stop_pipe[0], .events = POLLIN };

	return poll(&p, 1, wait_ms) > 0;
}

static void set_error(struct sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct sink *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof s->error, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------ */
/* The connection                                                      */

static int connect_to(struct sink *s)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai;
	struct timeval tv = { .tv_sec = s->cfg->timeout_ms / 1000,
			      .tv_usec = (s->cfg->timeout_ms % 1000) * 1000 };
	char host[128], port[8];
	int fd, one = 1, rc;

	if (config_metrics_split(s->cfg->source, host, sizeof host, port, sizeof port) < 0)
		return -EINVAL;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		set_error(s, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 ? -errno : 0;
	freeaddrinfo(ai);
	if (rc) {
		set_error(s, "cannot connect to %s: %s", s->cfg->source, strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

static int send_msg(struct sink *s, const struct mp_msg *m)
{
	uint8_t buf[MP_CTL_MAX];
	struct iovec iov = { .iov_base = buf, .iov_len = mp_encode(m, buf, sizeof buf) };
	int rc;

	if (!iov.iov_len)
		return -EINVAL;
	rc = mlink_send(s->link, &iov, 1, false);
	if (rc)
		set_error(s, "cannot send to the source: %s", mlink_why(s->link));
	return rc;
}

/* The largest DATA this mirror accepts: its replicas' largest frame, or a
 * batch, whichever is more. */
static size_t data_max(const struct sink *s)
{
	uint64_t most = MP_BATCH_BYTES;

	for (size_t i = 0; i < s->nparts; i++)
		if (s->parts[i].max_frame > most)
			most = s->parts[i].max_frame;
	return (size_t)most + MP_DATA_HEAD + MP_TRAILER + DATA_SLACK;
}

/*
 * The next whole message, into s->rx (8-aligned at its start), waiting
 * up to wait_ms: its length, 0 if none came in time, or -errno with the
 * reason set.
 */
static int next_msg(struct sink *s, int wait_ms, uint16_t *ret_type)
{
	size_t max = data_max(s);

	for (;;) {
		uint32_t len = 0;
		int rc = mp_peek(s->rx, s->rxlen, MP_FROM_SOURCE, max, &len, ret_type);
		ssize_t k;

		if (rc == 0 && len <= s->rxlen)
			return (int)len;
		if (rc && rc != -EAGAIN) {
			set_error(s, "the source sent %s; closing the connection",
				  rc == -EMSGSIZE ? "an oversized message" : "a malformed message");
			return rc;
		}
		if (rc == 0 && len > s->rxcap) {
			uint8_t *grown = realloc(s->rx, len);

			if (!grown)
				return -ENOMEM;
			s->rx = grown;
			s->rxcap = len;
		}
		if (mlink_wait(s->link, stop_pipe[0], wait_ms) <= 0)
			return 0;
		k = mlink_recv(s->link, s->rx + s->rxlen, s->rxcap - s->rxlen);
		if (k == 0 || (k < 0 && k != -EAGAIN)) {
			set_error(s, "the source closed the connection%s%s", k ? ": " : "",
				  k ? mlink_why(s->link) : "");
			return -ECONNRESET;
		}
		if (k > 0) {
			s->rxlen += (size_t)k;
			s->heard_ns = mono_ns();
		}
	}
}

static void consume(struct sink *s, size_t len)
{
	memmove(s->rx, s->rx + len, s->rxlen - len);
	s->rxlen -= len;
}

/* Wait for one message of type `want` (HELLO_OK, TOPIC/LIST_END) within
 * the timeout; ERROR is reported.  Its length, or -errno. */
static int expect(struct sink *s, struct mp_msg *m)
{
	int64_t until = mono_ns() + s->cfg->timeout_ms * 1000000;
	uint16_t type;
	int len;

	do {
		len = next_msg(s, 100, &type);
		if (len < 0)
			return len;
		if (stopping(0))
			return -ECANCELED;
	} while (len == 0 && mono_ns() < until);
	if (len == 0) {
		set_error(s, "the source did not answer within timeout_ms");
		return -ETIMEDOUT;
	}
	if (mp_decode(s->rx, (size_t)len, MP_FROM_SOURCE, m) < 0) {
		set_error(s, "the source sent a malformed %s", mp_type_name(type));
		return -EBADMSG;
	}
	consume(s, (size_t)len);
	if (m->type == MP_ERROR) {
		set_error(s, "the source refused: %s", m->u.error.text);
		return -ECONNREFUSED;
	}
	return len;
}

/* Did a source of protocol version 2 refuse our HELLO of 3?  It says so
 * in an ERROR -EPROTO (protocol.md §M8): the next connection says 2,
 * without this host's mirror id (§M12). */
static void older_source(struct sink *s, const struct mp_msg *m, uint16_t sent)
{
	if (sent < 3 || m->type != MP_ERROR || m->u.error.code != -EPROTO ||
	    !strstr(m->u.error.text, "version 2 "))
		return;
	s->old_source = true;
	if (!s->told_old)
		log_warn("mirror %s: the source speaks mirroring protocol version 2, which has no "
			 "mirror ids: this mirror connects with version 2, and the source counts it "
			 "by its host name and address; upgrade the source's shmbusd (said once)",
			 s->label);
	s->told_old = true;
}

static int handshake(struct sink *s)
{
	uint16_t version = s->old_source ? MP_VERSION_MIN : MP_VERSION;
	struct mp_msg m = { .type = MP_HELLO, .u.hello = { .version = version,
							   .auth = mlink_auth(s->link) } };
	int rc;

	/* tried once at version 2; the connection after it tries 3 again */
	s->old_source = false;
	gethostname(m.u.hello.host, sizeof m.u.hello.host - 1);
	if (!m.u.hello.host[0])
		snprintf(m.u.hello.host, sizeof m.u.hello.host, "shmbusd");
	memcpy(m.u.hello.id, mirror_id(), MP_ID_SIZE);
	snprintf(m.u.hello.link, sizeof m.u.hello.link, "%s", s->cfg->name);
	rc = send_msg(s, &m);
	if (rc == 0)
		rc = expect(s, &m);
	if (rc == -ECONNREFUSED)
		older_source(s, &m, version);
	/* a TLS alert (a certificate refused after the handshake, as TLS 1.3
	 * checks the mirror's) is said already, with its reason */
	if (rc == -ECONNRESET && !mlink_has_why(s->link))
		set_error(s, "the source closed the connection at HELLO without a word: it may "
			  "speak mirroring protocol version 1, and this shmbusd speaks %u (mirror "
			  "ids) and %u (epochs); upgrade the source's shmbusd", MP_VERSION,
			  MP_VERSION_MIN);
	if (rc >= 0 && (m.type != MP_HELLO_OK || m.u.hello.version != version)) {
		set_error(s, "the source answered HELLO with %s of protocol version %u; this "
			  "shmbusd speaks %u: upgrade the older one", mp_type_name(m.type),
			  m.u.hello.version, version);
		rc = -EPROTO;
	}
	if (rc >= 0) {
		pthread_mutex_lock(&s->lock);
		if (version >= 3)
			mirror_id_hex(m.u.hello.id, s->source_id);
		else
			s->source_id[0] = '\0';
		pthread_mutex_unlock(&s->lock);
	}
	return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------ */
/* Replicas                                                            */

static struct mpart *find_part(struct sink *s, const char *topic, uint32_t partition)
{
	for (size_t i = 0; i < s->nparts; i++)
		if (s->parts[i].partition == partition && !strcmp(s->parts[i].topic, topic))
			return &s->parts[i];
	return NULL;
}

/* The local replica of a topic the source listed: created if missing;
 * a replica of another mirror, or of another shape, is left alone with
 * an error (with resync = on, one of this mirror of another shape is
 * dropped and made again).  0; 1 for a plain local topic of the same
 * shape, whose epochs decide (mirror_epoch.c: taken over only if the
 * source continues this host's log); or -errno (logged once per
 * connection). */
static int local_replica(struct sink *s, const struct mp_msg *t, struct bus_topic *ret)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = t->u.topic.partitions,
		    .capacity = t->u.topic.capacity, .index_capacity = t->u.topic.index_capacity,
		    .policy = (enum shmbus_policy)t->u.topic.policy);
	const char *name = t->u.topic.name;
	bool shaped;
	int rc;

	if (dir_lookup(&s->d->dir, name, ret) == 0) {
		shaped = ret->partitions == t->u.topic.partitions &&
			 ret->capacity == t->u.topic.capacity;
		if ((ret->flags & BUS_TOPIC_REPLICA) && strcmp(ret->mirror_source, s->label)) {
			log_err("mirror %s: topic \"%s\" exists here and is another mirror's "
				"replica (%.64s); it is not mirrored (delete it here, or leave it "
				"out of topics)", s->label, name, ret->mirror_source);
			return -EEXIST;
		}
		if (shaped)
			return (ret->flags & BUS_TOPIC_REPLICA) ? 0 : 1;
		if (!(ret->flags & BUS_TOPIC_REPLICA) || !s->cfg->resync) {
			log_err("mirror %s: %s \"%s\" has %u partitions of %llu bytes, the source %u "
				"of %llu; it is not mirrored (delete it here to start over%s)",
				s->label, (ret->flags & BUS_TOPIC_REPLICA) ? "replica" : "topic",
				name, ret->partitions, (unsigned long long)ret->capacity,
				t->u.topic.partitions, (unsigned long long)t->u.topic.capacity,
				(ret->flags & BUS_TOPIC_REPLICA) ? ", or set resync = on" : "");
			return -EEXIST;
		}
		log_warn("mirror %s: replica \"%s\" has %u partitions of %llu bytes, the source "
			 "%u of %llu: the source topic was recreated; resync = on: the replica is "
			 "dropped and mirrored again from the source's start", s->label, name,
			 ret->partitions, (unsigned long long)ret->capacity, t->u.topic.partitions,
			 (unsigned long long)t->u.topic.capacity);
		drop_topic(s, name);
		s->resync_pending = false; /* made again below, in this connection */
	}
	rc = admin_replica_create(s->d->bus, name, &o, s->label, NULL);
	if (rc < 0) {
		log_err("mirror %s: cannot create the replica of topic \"%s\": %s", s->label, name,
			shmbus_errmsg());
		return rc;
	}
	log_notice("mirror %s: created replica topic \"%s\" (%u partitions of %llu bytes)",
		   s->label, name, t->u.topic.partitions, (unsigned long long)t->u.topic.capacity);
	return dir_lookup(&s->d->dir, name, ret) < 0 ? -ENOENT : 0;
}

/* Open partition i of bt into mp (a fresh entry, or one let go of
 * before: hidden from status until it is whole). */
static int open_part(struct sink *s, struct mpart *mp, const struct bus_topic *bt, uint32_t i,
		     bool candidate)
{
	int rc;

	memset(&mp->r, 0, sizeof mp->r);
	mp->partition = i;
	snprintf(mp->topic, sizeof mp->topic, "%s", bt->name);
	mp->candidate = candidate;
	mp->stopped = mp->awaiting = false;
	mp->source_end = 0;
	mp->src.n = 0;
	mp->error[0] = '\0';
	mp->ack_owed = false;
	memset(&mp->synced, 0, sizeof mp->synced);
	mp->lag = (struct mlag){ .since_ns = mono_ns() }; /* not known to be caught up */
	mp->bytes = mp->records = 0;
	rc = cache_get(s->d->bus, bt, i, &mp->m);
	if (rc == 0 && !candidate && replica_open(&mp->r, pmap_part(mp->m)) < 0) {
		log_err("mirror %s: %s", s->label, shm_errmsg());
		cache_put(mp->m);
		rc = -EROFS;
	}
	if (rc) {
		mp->m = NULL;
		return rc;
	}
	mp->max_frame = pmap_part(mp->m)->max_frame;
	return 0;
}

static int adopt_topic(struct sink *s, const struct mp_msg *t)
{
	struct bus_topic bt;
	int rc = local_replica(s, t, &bt);
	bool candidate = rc == 1;

	for (uint32_t i = 0; rc >= 0 && i < bt.partitions; i++) {
		struct mpart *mp = find_part(s, bt.name, i);
		bool fresh = !mp;

		if (mp && (!mp->gone || (mp->promoted && !candidate)))
			continue; /* followed; or promoted here, and not done yet */
		if (fresh && s->nparts >= PARTS_MAX)
			return -EMFILE;
		if (fresh)
			mp = &s->parts[s->nparts];
		rc = open_part(s, mp, &bt, i, candidate);
		if (rc)
			break;
		pthread_mutex_lock(&s->lock);
		mp->gone = mp->promoted = false;
		if (fresh)
			s->nparts++;
		pthread_mutex_unlock(&s->lock);
	}
	return rc < 0 ? rc : 0;
}

/* LIST each pattern; adopt what matches. */
static int list_topics(struct sink *s)
{
	char buf[sizeof s->cfg->topics], *save = NULL;

	snprintf(buf, sizeof buf, "%s", s->cfg->topics);
	for (char *pat = strtok_r(buf, ", \t", &save); pat; pat = strtok_r(NULL, ", \t", &save)) {
		struct mp_msg m = { .type = MP_LIST };
		int rc;

		snprintf(m.u.list.pattern, sizeof m.u.list.pattern, "%s", pat);
		rc = send_msg(s, &m);
		while (rc == 0) {
			rc = expect(s, &m);
			if (rc < 0)
				return rc;
			if (m.type == MP_LIST_END) {
				rc = 0;
				break;
			}
			if (m.type != MP_TOPIC)
				return -EPROTO;
			rc = adopt_topic(s, &m) == -EMFILE ? -EMFILE : 0;
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* The end an ACK may carry: the replica's end; with ack = flushed on a
 * disk root, the end msync has written (syncing what was appended). */
static uint64_t ack_end(struct sink *s, struct mpart *mp)
{
	struct part *p = pmap_part(mp->m);
	int rc;

	if (!s->cfg->ack_flushed || p->on_tmpfs)
		return replica_end(&mp->r);
	rc = part_sync(p, &mp->synced);
	if (rc < 0 && strncmp(mp->error, "msync failed", 12)) { /* said once */
		log_err("mirror %s: %s/%u: msync failed: %s; acknowledging only what was written "
			"before (offset %llu)", s->label, mp->topic, mp->partition, strerror(-rc),
			(unsigned long long)mp->synced.next);
		pthread_mutex_lock(&s->lock);
		snprintf(mp->error, sizeof mp->error, "msync failed: %s", strerror(-rc));
		pthread_mutex_unlock(&s->lock);
	}
	return mp->synced.next;
}

static struct part *mp_part(const struct mpart *mp)
{
	return pmap_part(mp->m);
}

static uint64_t local_end(const struct mpart *mp)
{
	uint64_t tail, end;

	part_ends(mp_part(mp), &tail, &end);
	return end;
}

/* Gaps recorded in its replica (none while it is a plain local topic). */
static void mp_gaps(const struct mpart *mp, uint64_t *ret_gaps, uint64_t *ret_offsets)
{
	*ret_gaps = *ret_offsets = 0;
	if (!mp->candidate && mp->m)
		replica_gaps(&mp->r, ret_gaps, ret_offsets);
}

/* FETCH partition i from its end, under its last epoch; its EPOCHS
 * decides what comes next. */
static int fetch_one(struct sink *s, size_t i)
{
	struct mpart *mp = &s->parts[i];
	struct mp_msg m = { .type = MP_FETCH };

	m.u.fetch.id = (uint32_t)i;
	m.u.fetch.partition = mp->partition;
	/* FETCH's from is a position too (§M11): with ack = flushed, only
	 * once it is on disk */
	if (!mp->candidate)
		ack_end(s, mp);
	m.u.fetch.from = local_end(mp);
	m.u.fetch.epoch = part_epoch_last(mp_part(mp));
	snprintf(m.u.fetch.name, sizeof m.u.fetch.name, "%s", mp->topic);
	pthread_mutex_lock(&s->lock);
	mp->stopped = false;
	mp->awaiting = true;
	mp->epoch = m.u.fetch.epoch;
	pthread_mutex_unlock(&s->lock);
	return send_msg(s, &m);
}

static int fetch_all(struct sink *s)
{
	for (size_t i = 0; i < s->nparts; i++) {
		int rc = s->parts[i].gone ? 0 : fetch_one(s, i);

		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Streaming                                                           */

static struct mpart *part_of(struct sink *s, uint32_t id)
{
	return id < s->nparts ? &s->parts[id] : NULL;
}

/* Appended to: its ACK is owed (sent by send_owed, §M11). */
static void owe(struct sink *s, struct mpart *mp)
{
	if (mp->ack_owed)
		return;
	mp->ack_owed = true;
	s->owed[s->nowed++] = (uint32_t)(mp - s->parts);
}

/* What a DATA tells of the replica's lag, and what it brought
 * (under the lock). */
static void count_data(struct mpart *mp, const struct mp_msg *m, int rc)
{
	int64_t now = mono_ns();

	mlag_heard(&mp->lag, m->u.data.end, now);
	if (rc)
		return;
	mlag_held(&mp->lag, replica_end(&mp->r), now);
	mp->bytes += m->u.data.frames_len;
	mp->records += m->u.data.next - m->u.data.first;
}

/* Connect again (and list the topics) in `secs`, or sooner if asked. */
static void relist_in(struct sink *s, int secs)
{
	int64_t at = mono_ns() + secs * 1000000000LL;

	if (!s->relist_ns || at < s->relist_ns)
		s->relist_ns = at;
}

/* Records for partition mp are appended only while it follows the
 * source: not before its EPOCHS (they are an older fetch's), nor once
 * it was stopped, let go of, or while a plain topic. */
static bool following(const struct mpart *mp)
{
	return !mp->gone && !mp->stopped && !mp->awaiting && !mp->candidate;
}

/* The source's epochs that start below `upto` go into the replica's
 * history before the records do (format.md §14). */
static int adopt_epochs(struct sink *s, struct mpart *mp, uint64_t upto)
{
	int rc = part_epochs_adopt(mp_part(mp), &mp->src, upto);

	if (rc < 0) {
		log_err("mirror %s: %s/%u: cannot take the source's epochs into the replica: %s",
			s->label, mp->topic, mp->partition, shm_errmsg());
		return rc;
	}
	if (rc > 0) {
		pthread_mutex_lock(&s->lock);
		mp->epoch = part_epoch_last(mp_part(mp));
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

static int on_data(struct sink *s, const struct mp_msg *m)
{
	struct mpart *mp = part_of(s, m->u.data.id);
	int rc;

	if (!mp)
		return -EPROTO;
	if (!following(mp))
		return 0; /* an older fetch's, or one stopped: see protocol.md §M9 */
	if (m->u.data.trailer != MP_TRAILER_OK)
		return 0; /* lapped while sent: dropped; the source says GAP next */
	rc = adopt_epochs(s, mp, m->u.data.next);
	for (;;) {
		if (rc)
			break;
		rc = replica_append(&mp->r, m->u.data.frames, m->u.data.frames_len, m->u.data.count,
				    m->u.data.first, m->u.data.next);
		if (rc != -EAGAIN || stopping(1))
			break; /* backpressure: a local consumer holds the ring */
		rc = 0;
	}
	if (rc == 0)
		owe(s, mp);
	pthread_mutex_lock(&s->lock);
	mp->source_end = m->u.data.end;
	count_data(mp, m, rc);
	if (rc == -EIDRM) {
		mp->stopped = true;
		snprintf(mp->error, sizeof mp->error, "the replica was deleted here; restart "
			 "shmbusd to mirror it again");
	} else if (rc) {
		snprintf(mp->error, sizeof mp->error, "%s", shm_errmsg());
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == -EIDRM) {
		log_err("mirror %s: replica %s/%u was deleted here: no longer mirrored until "
			"shmbusd restarts", s->label, mp->topic, mp->partition);
		return 0;
	}
	if (rc == -EBADMSG) {
		log_err("mirror %s: %s; reconnecting", s->label, shm_errmsg());
		set_error(s, "%s", shm_errmsg());
	} else if (rc) {
		log_err("mirror %s: %s/%u: cannot append: %s", s->label, mp->topic, mp->partition,
			shm_errmsg());
	}
	return rc;
}

static int on_gap(struct sink *s, const struct mp_msg *m)
{
	struct mpart *mp = part_of(s, m->u.gap.id);
	int rc;

	if (mp && !following(mp))
		return 0;
	if (!mp || m->u.gap.from != replica_end(&mp->r))
		return -EPROTO;
	rc = adopt_epochs(s, mp, m->u.gap.to);
	if (rc)
		return rc;
	log_warn("mirror %s: %s/%u: offsets %llu..%llu are gone from the source (retention, or "
		 "the source's ring lapped this mirror): recorded in the replica as a gap",
		 s->label, mp->topic, mp->partition, (unsigned long long)m->u.gap.from,
		 (unsigned long long)m->u.gap.to - 1);
	rc = replica_gap(&mp->r, m->u.gap.to);
	if (rc == 0)
		owe(s, mp);
	pthread_mutex_lock(&s->lock);
	mlag_held(&mp->lag, replica_end(&mp->r), mono_ns());
	snprintf(mp->error, sizeof mp->error, "gap: offsets %llu..%llu were gone from the source",
		 (unsigned long long)m->u.gap.from, (unsigned long long)m->u.gap.to - 1);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Epochs (mirror_epoch.c decides; protocol.md §M9)                    */

/* Stop following partition i, saying why (shown in status), and tell
 * the source to stop serving it. */
static int stop_part(struct sink *s, size_t i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int stop_part(struct sink *s, size_t i, const char *fmt, ...)
{
	struct mpart *mp = &s->parts[i];
	struct mp_msg m = { .type = MP_STOP, .u.stop.id = (uint32_t)i };
	va_list ap;

	pthread_mutex_lock(&s->lock);
	mp->stopped = true;
	mp->awaiting = false;
	va_start(ap, fmt);
	vsnprintf(mp->error, sizeof mp->error, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->lock);
	return s->fd >= 0 ? send_msg(s, &m) : 0;
}

/* Let go of every partition of `topic`: STOP (when connected), no more
 * appends, hidden from status; `promoted` keeps it from being taken up
 * again as a replica while its promotion finishes. */
static void let_go(struct sink *s, const char *topic, bool promoted)
{
	for (size_t i = 0; i < s->nparts; i++) {
		struct mpart *mp = &s->parts[i];
		struct mp_msg m = { .type = MP_STOP, .u.stop.id = (uint32_t)i };

		if (mp->gone || strcmp(mp->topic, topic))
			continue;
		if (s->fd >= 0 && send_msg(s, &m) < 0)
			log_debug("mirror %s: cannot send STOP for %s/%u", s->label, topic,
				  mp->partition);
		pthread_mutex_lock(&s->lock);
		mp->gone = true; /* first: status reads the rest under the lock */
		mp->promoted = promoted;
		pthread_mutex_unlock(&s->lock);
		replica_close(&mp->r);
		cache_put(mp->m);
		mp->m = NULL;
	}
}

/* resync = on: the replica goes, and the next connection makes it again
 * and fetches it from the source's start. */
static void drop_topic(struct sink *s, const char *topic)
{
	let_go(s, topic, false);
	if (admin_topic_delete(s->d->bus, topic, NULL) < 0)
		log_err("mirror %s: cannot drop replica \"%s\" to resync: %s", s->label, topic,
			shmbus_errmsg());
	else
		log_notice("mirror %s: dropped replica topic \"%s\" (resync = on)", s->label,
			   topic);
	s->resync_pending = true;
}

/* Wait (at most 2 s) until nothing appends to p: its end unchanged for
 * 100 ms.  A producer that checked the status word before it said
 * REPLICA may still be finishing its append. */
static void wait_quiet(struct part *p)
{
	uint64_t tail, end, t2, e2;

	part_ends(p, &tail, &end);
	for (int i = 0, still = 0; i < 40 && still < 2; i++) {
		if (stopping(50))
			return;
		part_ends(p, &t2, &e2);
		still = t2 == tail && e2 == end ? still + 1 : 0;
		tail = t2;
		end = e2;
	}
}

/* MV_CONVERT: the plain local topic becomes this mirror's replica, every
 * partition of it.  0, or -errno (logged). */
static int convert_topic(struct sink *s, const char *topic, const char *why)
{
	int rc = admin_replica_convert(s->d->bus, topic, s->label);

	if (rc < 0) {
		log_err("mirror %s: cannot make topic \"%s\" a replica: %s", s->label, topic,
			shmbus_errmsg());
		return rc;
	}
	log_warn("mirror %s: topic \"%s\" was this host's own, and the source went on from its "
		 "log under a newer epoch (it was promoted in this host's place; %s): the topic is "
		 "now a replica of the source, local producers are refused, and what this host "
		 "wrote past the source's log is cut", s->label, topic, why);
	for (size_t i = 0; i < s->nparts; i++) {
		struct mpart *mp = &s->parts[i];

		if (mp->gone || !mp->candidate || strcmp(mp->topic, topic))
			continue;
		wait_quiet(mp_part(mp));
		if (replica_open(&mp->r, mp_part(mp)) < 0) {
			log_err("mirror %s: %s", s->label, shm_errmsg());
			stop_part(s, i, "cannot write it as a replica: %s", shm_errmsg());
			continue;
		}
		pthread_mutex_lock(&s->lock);
		mp->candidate = false;
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

/* MV_CUT: cut this host's log back where it parts from the source's,
 * then fetch again from there. */
static int cut_part(struct sink *s, size_t i, uint64_t off)
{
	struct mpart *mp = &s->parts[i];
	struct part_cut c;
	int rc = mirror_epochs_cut(s->label, mp->topic, mp->partition, mp_part(mp), off, &c);

	if (rc < 0)
		return stop_part(s, i, "cannot cut back to offset %llu where this log parts from "
				 "the source's: %s", (unsigned long long)off, shm_errmsg());
	if (rc == 1) {
		pthread_mutex_lock(&s->lock);
		mp->cut += c.to - c.from;
		snprintf(mp->error, sizeof mp->error, "cut offsets %llu..%llu (%llu offsets, %llu "
			 "records) where this log parted from the source's",
			 (unsigned long long)c.from, (unsigned long long)c.to - 1,
			 (unsigned long long)(c.to - c.from), (unsigned long long)c.records);
		pthread_mutex_unlock(&s->lock);
		/* no group resumes past records the source's log puts there */
		groups_cut_back(s->d, mp->topic, mp_part(mp)->topic_id, mp->partition, c.from);
	}
	return fetch_one(s, i);
}

/* MV_RECREATED: stop, or with resync = on start the replica over. */
static int recreated(struct sink *s, size_t i, const char *why)
{
	struct mpart *mp = &s->parts[i];

	pthread_mutex_lock(&s->lock);
	mp->recreated++;
	pthread_mutex_unlock(&s->lock);
	if (s->cfg->resync) {
		log_warn("mirror %s: %s/%u: the source's log shares no epoch with the replica's "
			 "(%s): the source partition was recreated; resync = on: replica topic "
			 "\"%s\" is dropped and mirrored again from the source's start", s->label,
			 mp->topic, mp->partition, why, mp->topic);
		drop_topic(s, mp->topic);
		return 0;
	}
	log_err("mirror %s: %s/%u: the source's log shares no epoch with the replica's (%s): the "
		"source partition was recreated, or another log is served under its name; this "
		"partition is not mirrored: set resync = on in [mirror \"%s\"] to drop the replica "
		"and mirror the source again, or delete the replica here", s->label, mp->topic,
		mp->partition, why, s->cfg->name);
	return stop_part(s, i, "source recreated: no epoch in common with the replica; set "
			 "resync = on, or delete the replica, to mirror it again");
}

static int on_epochs(struct sink *s, const struct mp_msg *m)
{
	struct mpart *mp = part_of(s, m->u.epochs.id);
	size_t i = m->u.epochs.id;
	enum mirror_verdict v;
	char why[700];
	uint64_t off;

	if (!mp)
		return -EPROTO;
	if (mp->gone || (mp->stopped && !mp->awaiting))
		return 0; /* for a fetch this mirror stopped */
	pthread_mutex_lock(&s->lock);
	mp->src = m->u.epochs.hist;
	mp->source_end = m->u.epochs.end;
	mp->missing = 0;
	pthread_mutex_unlock(&s->lock);
	v = mirror_epochs_verdict(mp_part(mp), !mp->candidate, &mp->src, m->u.epochs.end, &off,
				  why, sizeof why);
	if (v == MV_CONVERT) {
		if (convert_topic(s, mp->topic, why) < 0 || mp->candidate)
			return mp->stopped ? 0 : stop_part(s, i, "cannot take it over as a replica");
		v = mirror_epochs_verdict(mp_part(mp), true, &mp->src, m->u.epochs.end, &off, why,
					  sizeof why);
		/* local producers may have appended since the FETCH: fetch
		 * again from the end as it is now, which the source checks */
		if (v == MV_FOLLOW)
			return fetch_one(s, i);
	}
	switch (v) {
	case MV_FOLLOW:
		pthread_mutex_lock(&s->lock);
		mp->awaiting = false;
		pthread_mutex_unlock(&s->lock);
		return 0;
	case MV_CUT:
		return cut_part(s, i, off);
	case MV_RECREATED:
		return recreated(s, i, why);
	default:
		log_err("mirror %s: topic \"%s\" exists here and is not this mirror's replica, and "
			"the source does not continue this host's log of %s/%u (%s); it is left "
			"alone (a promoted topic stays writable): leave it out of topics, or "
			"delete it here to mirror it", s->label, mp->topic, mp->topic, mp->partition,
			why);
		return stop_part(s, i, "a topic of this host's own: the source does not continue "
				 "its log");
	}
}

/* A topic to let go of, asked by mirror_sink_release (promote): done
 * here, between appends. */
static void handle_release(struct sink *s)
{
	char topic[PART_NAME_MAX + 1];

	pthread_mutex_lock(&s->lock);
	snprintf(topic, sizeof topic, "%s", s->release);
	pthread_mutex_unlock(&s->lock);
	if (!topic[0])
		return;
	let_go(s, topic, true);
	log_notice("mirror %s: no longer follows topic \"%s\": promoted here", s->label, topic);
	pthread_mutex_lock(&s->lock);
	s->release[0] = '\0';
	pthread_cond_broadcast(&s->released);
	pthread_mutex_unlock(&s->lock);
}

static int dispatch(struct sink *s, const struct mp_msg *m)
{
	struct mpart *mp;

	switch (m->type) {
	case MP_DATA:
		return on_data(s, m);
	case MP_GAP:
		return on_gap(s, m);
	case MP_EPOCHS:
		return on_epochs(s, m);
	case MP_UNKNOWN:
		mp = part_of(s, m->u.unknown.id);
		if (!mp)
			return -EPROTO;
		if (mp->gone)
			return 0;
		log_err("mirror %s: the source does not serve %s/%u (%s); it is not mirrored until "
			"the source's topics are listed again", s->label, mp->topic, mp->partition,
			strerror(-m->u.unknown.code));
		pthread_mutex_lock(&s->lock);
		mp->stopped = true;
		mlag_lost(&mp->lag, s->heard_ns);
		mp->awaiting = false;
		snprintf(mp->error, sizeof mp->error, "the source does not serve it: %s",
			 strerror(-m->u.unknown.code));
		pthread_mutex_unlock(&s->lock);
		/* deleted there (and maybe made again: a new log, whose epochs
		 * the next connection compares), or missing (maybe between a
		 * delete and a create there): list again, a few times */
		if (m->u.unknown.code == -EIDRM)
			relist_in(s, RELIST_DELETED_S);
		else if (mp->missing++ < RELIST_MISSING_MAX)
			relist_in(s, RELIST_MISSING_S);
		return 0;
	case MP_HEARTBEAT:
		return 0;
	case MP_ERROR:
		set_error(s, "the source closed with: %s", m->u.error.text);
		return -ECONNABORTED;
	default:
		set_error(s, "the source sent %s in mid-stream", mp_type_name(m->type));
		return -EPROTO;
	}
}

static int send_ack(struct sink *s, struct mpart *mp)
{
	struct mp_msg m = { .type = MP_ACK, .u.ack = { .id = (uint32_t)(mp - s->parts) } };

	mp->ack_owed = false;
	m.u.ack.end = ack_end(s, mp);
	return send_msg(s, &m);
}

/* The ACKs owed since the last: at most one per partition. */
static int send_owed(struct sink *s)
{
	int rc = 0;

	for (size_t i = 0; i < s->nowed && rc == 0; i++)
		if (s->parts[s->owed[i]].ack_owed && following(&s->parts[s->owed[i]]))
			rc = send_ack(s, &s->parts[s->owed[i]]);
	s->nowed = 0;
	s->acked_ns = mono_ns();
	return rc;
}

/* Is a whole message waiting in s->rx (so the owed ACKs can wait for
 * it to be handled too)? */
static bool whole_msg(const struct sink *s)
{
	uint32_t len;
	uint16_t type;

	return mp_peek(s->rx, s->rxlen, MP_FROM_SOURCE, SIZE_MAX, &len, &type) == 0 &&
	       len <= s->rxlen;
}

/* ACK each partition followed: a position the source may count as held
 * here (a stopped or diverged one holds nothing of the source's). */
static int send_acks(struct sink *s)
{
	size_t sent = 0;

	s->nowed = 0;
	for (size_t i = 0; i < s->nparts; i++) {
		int rc;

		if (!following(&s->parts[i]))
			continue;
		rc = send_ack(s, &s->parts[i]);
		if (rc)
			return rc;
		sent++;
	}
	if (sent == 0) {
		struct mp_msg m = { .type = MP_ACK, .u.ack = { .id = UINT32_MAX } };

		return send_msg(s, &m);
	}
	return 0;
}

static int stream(struct sink *s)
{
	int64_t acked = 0;

	while (!stopping(0)) {
		struct mp_msg m;
		uint16_t type;
		int len, rc;

		handle_release(s);
		if (s->resync_pending) {
			set_error(s, "a replica was dropped to resync; connecting again");
			return -EAGAIN;
		}
		if (s->relist_ns && mono_ns() >= s->relist_ns) {
			set_error(s, "a topic followed is gone from the source; listing its topics "
				  "again");
			return -EAGAIN;
		}
		if (s->nowed && (!whole_msg(s) || mono_ns() - s->acked_ns >= ACK_SOON_NS)) {
			rc = send_owed(s);
			if (rc) {
				set_error(s, "cannot send to the source: %s", strerror(-rc));
				return rc;
			}
		}
		len = next_msg(s, 100, &type);
		if (len < 0)
			return len;
		if (len > 0) {
			if (mp_decode(s->rx, (size_t)len, MP_FROM_SOURCE, &m) < 0) {
				set_error(s, "the source sent a malformed %s; closing the connection",
					  mp_type_name(type));
				return -EBADMSG;
			}
			rc = dispatch(s, &m);
			consume(s, (size_t)len);
			if (rc)
				return rc;
		}
		if (mono_ns() - s->heard_ns > s->cfg->timeout_ms * 1000000) {
			set_error(s, "the source sent nothing for %lld ms (timeout_ms)",
				  (long long)s->cfg->timeout_ms);
			return -ETIMEDOUT;
		}
		if (mono_ns() - acked > ACK_NS) {
			rc = send_acks(s);
			if (rc) {
				set_error(s, "cannot send to the source: %s", strerror(-rc));
				return rc;
			}
			acked = mono_ns();
		}
	}
	return -ECANCELED;
}

/* The transport over the connected s->fd: TLS first, if configured. */
static int link_up(struct sink *s)
{
	struct mlink_ctx *x;
	char how[300];
	int rc;

	s->link = mlink_new(s->fd, s->cfg->source, s->cfg->timeout_ms, stop_pipe[0]);
	if (!s->link) {
		set_error(s, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->lock);
	x = mlink_ctx_get(s->tls);
	pthread_mutex_unlock(&s->lock);
	rc = mlink_handshake(s->link, x, false); /* the link keeps x to its end */
	if (rc) {
		set_error(s, "%s", mlink_why(s->link));
		return rc;
	}
	mlink_describe(s->link, how, sizeof how);
	log_info("mirror %s: connected to %s (%s)", s->label, s->cfg->source, how);
	pthread_mutex_lock(&s->lock);
	snprintf(s->tls_mode, sizeof s->tls_mode, "%s", mlink_mode(s->link));
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* One connection, from connect to its end: 1 if it streamed, else 0. */
static int session(struct sink *s)
{
	int rc;

	s->rxlen = 0;
	s->resync_pending = false;
	s->relist_ns = 0;
	handle_release(s);
	s->fd = connect_to(s);
	if (s->fd < 0)
		return 0;
	s->heard_ns = mono_ns();
	rc = link_up(s);
	if (rc == 0)
		rc = handshake(s);
	if (rc == 0)
		rc = list_topics(s);
	if (rc == 0)
		rc = fetch_all(s);
	if (rc == 0) {
		log_info("mirror %s: connected; following %zu partitions", s->label, s->nparts);
		pthread_mutex_lock(&s->lock);
		s->connected = true;
		s->error[0] = '\0';
		pthread_mutex_unlock(&s->lock);
		rc = stream(s);
		pthread_mutex_lock(&s->lock);
		s->connected = false;
		for (size_t i = 0; i < s->nparts; i++)
			mlag_lost(&s->parts[i].lag, s->heard_ns);
		pthread_mutex_unlock(&s->lock);
		rc = rc == -ECANCELED ? 1 : (log_warn("mirror %s: connection lost: %s; reconnecting",
						      s->label, s->error), 1);
	} else if (rc != -ECANCELED) {
		log_warn("mirror %s: %s; reconnecting", s->label, s->error);
		rc = 0;
	}
	if (s->link)
		mlink_close(s->link); /* and its fd */
	else
		close(s->fd);
	s->link = NULL;
	s->fd = -1;
	return rc;
}

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	int backoff = BACKOFF_MIN_MS;
	bool told = false;

	rcu_register_thread();
	while (!stopping(0)) {
		if (session(s)) {
			backoff = BACKOFF_MIN_MS;
			told = false;
		} else if (!told) {
			log_warn("mirror %s: %s; retrying with a backoff up to %d ms", s->label,
				 s->error, BACKOFF_MAX_MS);
			told = true;
		}
		for (int waited = 0; waited < backoff && !stopping(0); waited += 50) {
			handle_release(s);
			if (stopping(50))
				break;
		}
		if (stopping(0))
			break;
		pthread_mutex_lock(&s->lock);
		s->reconnects++;
		pthread_mutex_unlock(&s->lock);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	for (size_t i = 0; i < s->nparts; i++) {
		replica_close(&s->parts[i].r);
		cache_put(s->parts[i].m);
	}
	pthread_mutex_lock(&s->lock);
	s->release[0] = '\0'; /* nobody waits for a thread that is gone */
	pthread_cond_broadcast(&s->released);
	pthread_mutex_unlock(&s->lock);
	rcu_unregister_thread();
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Start, stop, status                                                 */

int mirror_sink_init(struct daemon *d)
{
	if (!d->cfg.nmirrors)
		return 0;
	if (mirror_id_load(d) < 0)
		return -EINVAL;
	sinks = calloc(d->cfg.nmirrors, sizeof *sinks);
	if (!sinks || pipe2(stop_pipe, O_CLOEXEC) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < d->cfg.nmirrors; i++) {
		struct sink *s = &sinks[i];
		char section[80], host[128], port[8];

		s->d = d;
		s->cfg = &d->cfg.mirrors[i];
		s->fd = -1;
		snprintf(s->label, sizeof s->label, "%s (%s)", s->cfg->name, s->cfg->source);
		s->label[63] = '\0'; /* it fits the topic entry's mirror_source */
		snprintf(section, sizeof section, "[mirror \"%s\"]", s->cfg->name);
		if (config_metrics_split(s->cfg->source, host, sizeof host, port, sizeof port) < 0)
			host[0] = '\0';
		if (mlink_ctx_new(&s->cfg->creds, s->cfg->tls == 1, false, section, host, &s->tls))
			return -EINVAL;
		snprintf(s->tls_mode, sizeof s->tls_mode, "%s", s->tls ? "on" : "off");
		s->parts = calloc(PARTS_MAX, sizeof *s->parts);
		s->owed = calloc(PARTS_MAX, sizeof *s->owed);
		s->rxcap = data_max(s);
		s->rx = malloc(s->rxcap);
		pthread_mutex_init(&s->lock, NULL);
		pthread_cond_init(&s->released, NULL);
		if (!s->parts || !s->owed || !s->rx ||
		    pthread_create(&s->thread, NULL, sink_main, s)) {
			log_err("mirror %s: cannot start its thread", s->label);
			return -ENOMEM;
		}
		pthread_mutex_lock(&stats_lock);
		nsinks++;
		pthread_mutex_unlock(&stats_lock);
		if (s->tls) {
			log_notice("mirror %s: fetches over %s; kernel TLS: %s", s->label,
				   mlink_ctx_describe(s->tls), mlink_ktls_offered());
			mirror_certs_loaded(section, s->tls);
		}
		else
			log_warn("mirror %s: fetches over plain TCP (tls = off): records travel "
				 "unencrypted; use it only on a network you trust", s->label);
	}
	return 0;
}

void mirror_sink_fini(struct daemon *d)
{
	(void)d;
	if (stop_pipe[1] >= 0 && write(stop_pipe[1], "x", 1) < 0)
		log_debug("mirror: cannot signal its threads to stop");
	pthread_mutex_lock(&stats_lock);
	for (size_t i = 0; i < nsinks; i++) {
		pthread_join(sinks[i].thread, NULL);
		mlink_ctx_put(sinks[i].tls);
		sinks[i].tls = NULL;
		free(sinks[i].parts);
		free(sinks[i].owed);
		free(sinks[i].rx);
		pthread_mutex_destroy(&sinks[i].lock);
		pthread_cond_destroy(&sinks[i].released);
	}
	free(sinks);
	sinks = NULL;
	nsinks = 0;
	pthread_mutex_unlock(&stats_lock);
}

bool mirror_sink_tls_swap(const char *name, struct mlink_ctx *x)
{
	struct mlink_ctx *old = NULL;

	pthread_mutex_lock(&stats_lock);
	for (size_t i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];

		if (strcmp(s->cfg->name, name))
			continue;
		pthread_mutex_lock(&s->lock); /* against link_up */
		old = s->tls;
		if (old)
			s->tls = x;
		pthread_mutex_unlock(&s->lock);
		break;
	}
	pthread_mutex_unlock(&stats_lock);
	if (!old || old == x)
		return false;
	mlink_ctx_put(old); /* freed when the connection made with it ends */
	return true;
}

/* This host's mirror id, as hex, for the status. */
static const char *own_id(void)
{
	static __thread char hex[2 * MP_ID_SIZE + 1];

	mirror_id_hex(mirror_id(), hex);
	return hex;
}

static size_t status_line(const struct sink *s, const struct mpart *mp, char *buf, size_t len)
{
	uint64_t end = local_end(mp), gaps, gap_offsets;
	const char *state = mp->stopped ? "stopped"
			    : s->connected && !mp->awaiting ? "streaming" : "connecting";
	int n, more;

	mp_gaps(mp, &gaps, &gap_offsets);
	n = snprintf(buf, len, "mirror=%s\tsource=%s\ttopic=%s\tpartition=%u\tend=%llu\t"
		     "source_end=%llu\tlag=%llu\tstate=%s\treconnects=%llu\tgaps=%llu\t"
		     "tls=%s\tlast_error=%s", s->cfg->name, s->cfg->source, mp->topic,
		     mp->partition, (unsigned long long)end, (unsigned long long)mp->source_end,
		     (unsigned long long)(mp->source_end > end ? mp->source_end - end : 0), state,
		     (unsigned long long)s->reconnects, (unsigned long long)gaps, s->tls_mode,
		     mp->error[0] ? mp->error : s->error);
	if (n < 0 || (size_t)n >= len)
		return 0;
	more = snprintf(buf + n, len - (size_t)n, "\tlag_ms=%llu\tgap_offsets=%llu\tbytes=%llu\t"
			"records=%llu\tepoch=%016llx\tcut=%llu\trecreated=%llu\tid=%s\t"
			"source_id=%s\n",
			(unsigned long long)mlag_ms(&mp->lag, mono_ns()),
			(unsigned long long)gap_offsets, (unsigned long long)mp->bytes,
			(unsigned long long)mp->records, (unsigned long long)mp->epoch,
			(unsigned long long)mp->cut, (unsigned long long)mp->recreated, own_id(),
			s->source_id);
	return more < 0 || (size_t)more >= len - (size_t)n ? 0 : (size_t)(n + more);
}

size_t mirror_status_text(struct daemon *d, char *buf, size_t len)
{
	size_t used = 0;

	(void)d;
	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];

		size_t shown = 0;

		pthread_mutex_lock(&s->lock);
		for (size_t j = 0; j < s->nparts; j++) {
			size_t n;

			if (s->parts[j].gone)
				continue;
			n = status_line(s, &s->parts[j], buf + used, len - used);
			if (!n)
				break;
			used += n;
			shown++;
		}
		if (shown == 0 && used < len) {
			int n = snprintf(buf + used, len - used, "mirror=%s\tsource=%s\tstate=%s\t"
					 "reconnects=%llu\ttls=%s\tlast_error=%s\tid=%s\t"
					 "source_id=%s\n", s->cfg->name, s->cfg->source,
					 s->connected ? "streaming" : "connecting",
					 (unsigned long long)s->reconnects, s->tls_mode, s->error,
					 own_id(), s->source_id);

			if (n > 0 && (size_t)n < len - used)
				used += (size_t)n;
		}
		pthread_mutex_unlock(&s->lock);
	}
	return used;
}

/* One partition's figures (under its mirror's lock). */
static void part_stats(const struct sink *s, const struct mpart *mp, int64_t now,
		       struct mirror_part_stats *ret)
{
	uint64_t end = local_end(mp);

	*ret = (struct mirror_part_stats){ .partition = mp->partition, .end = end,
					   .source_end = mp->source_end,
					   .lag_records = mp->source_end > end ?
							  mp->source_end - end : 0,
					   .lag_ms = mlag_ms(&mp->lag, now),
					   .reconnects = s->reconnects, .bytes = mp->bytes,
					   .records = mp->records };
	ret->lag_seconds = (double)ret->lag_ms / 1000;
	snprintf(ret->mirror, sizeof ret->mirror, "%s", s->cfg->name);
	snprintf(ret->source, sizeof ret->source, "%s", s->cfg->source);
	snprintf(ret->topic, sizeof ret->topic, "%s", mp->topic);
	ret->state = mp->stopped ? "stopped"
		     : s->connected && !mp->awaiting ? "streaming" : "connecting";
	mp_gaps(mp, &ret->gaps, &ret->gap_offsets);
}

size_t mirror_sink_stats(struct mirror_part_stats *out, size_t max)
{
	int64_t now = mono_ns();
	size_t n = 0;

	pthread_mutex_lock(&stats_lock);
	for (size_t i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];

		pthread_mutex_lock(&s->lock);
		for (size_t j = 0; j < s->nparts; j++) {
			if (s->parts[j].gone)
				continue; /* let go of: not shown (status neither) */
			if (n < max)
				part_stats(s, &s->parts[j], now, &out[n]);
			n++;
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&stats_lock);
	return n;
}

size_t mirror_sink_mirrors(struct mirror_stats *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&stats_lock);
	for (size_t i = 0; i < nsinks && i < max; i++) {
		struct sink *s = &sinks[i];

		pthread_mutex_lock(&s->lock);
		out[i] = (struct mirror_stats){ .connected = s->connected,
						.reconnects = s->reconnects };
		snprintf(out[i].mirror, sizeof out[i].mirror, "%s", s->cfg->name);
		snprintf(out[i].source, sizeof out[i].source, "%s", s->cfg->source);
		pthread_mutex_unlock(&s->lock);
	}
	n = nsinks;
	pthread_mutex_unlock(&stats_lock);
	return n;
}

int mirror_sink_release(struct daemon *d, const char *topic)
{
	(void)d;
	for (size_t i = 0; i < nsinks; i++) {
		struct sink *s = &sinks[i];
		struct timespec until;
		bool follows = false;
		int rc = 0;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5 + 2 * (s->cfg->timeout_ms / 1000 + 1);
		pthread_mutex_lock(&s->lock);
		for (size_t j = 0; j < s->nparts; j++)
			follows |= !s->parts[j].gone && !strcmp(s->parts[j].topic, topic);
		if (follows) {
			snprintf(s->release, sizeof s->release, "%s", topic);
			while (s->release[0] && rc == 0)
				rc = pthread_cond_timedwait(&s->released, &s->lock, &until);
		}
		pthread_mutex_unlock(&s->lock);
		if (rc)
			return -ETIMEDOUT;
	}
	return 0;
}
