/*
 * mirror_source.c - the source side of mirroring: shmbusd serves this
 * host's partitions to mirrors ([mirror-listen], docs/protocol.md part 2).
 *
 * One thread accepts; each mirror's connection has a thread of its own
 * (at most MAX_CONNS), blocking with timeouts, off the daemon's event
 * loop: sending a batch may wait for the mirror to read, and the loop
 * must never wait (docs/design-notes.md "Mirroring runs in threads").
 *
 * A connection: HELLO, then LISTs and FETCHes from the mirror; for each
 * fetch the thread reads the partition with its own cursor (read.h) and
 * sends DATA batches of the frames as they lie in the ring, by writev
 * from the mapping (no copy per record), then a trailer saying whether
 * the bytes were still intact after the kernel took them (format.md §6
 * step 3).  Before any record of a fetch, and whenever its history
 * changes, the thread sends the partition's epoch history (EPOCHS), and
 * streams only to a mirror whose log is a prefix of this one's: another
 * waits for the mirror to cut its own and fetch again (mirror_epoch.c,
 * protocol.md §M9).  With nothing to send it sleeps on the partitions'
 * futex notify words and on its socket at once (mirror_wait.c): a commit
 * wakes it, never a timer, never a spin.  The socket is the flow control: a
 * send waits at most timeout_ms for the mirror to read, so nothing is
 * buffered here beyond the kernel's socket buffer.
 */
#include "mirror.h"
#include "mirror_acks.h"
#include "mirror_id.h"
#include "mirror_link.h"
#include "mirror_wait.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "../shm/probes.h"
#include "../shm/read.h"
#include "../util/error.h"

#define MAX_CONNS     64      /* mirrors served at once */
#define MAX_FETCHES   4096    /* partitions one mirror follows */
#define BATCH_IOV     256     /* runs of frames in one DATA (and its aborted ranges) */
#define HEARTBEAT_NS  1000000000LL

struct fetch {
	uint32_t id;
	char topic[PART_NAME_MAX + 1];
	uint32_t partition;
	struct pmap *m;
	struct part *p;
	struct part_cursor c;
	uint64_t next;               /* the offset the mirror expects next */
	bool placed;                 /* the cursor is placed at next */
	struct follower *fl;         /* its position, for the mirrored offset; NULL
				      * while held */
	bool told;                   /* a DATA went (the mirror knows the end) */
	uint64_t epochs_sent;        /* the history's word in the last EPOCHS sent */
	bool held;                   /* the mirror's log is not a prefix of this one:
				      * nothing streams until it fetches again */
};

struct conn {
	struct daemon *d;
	int fd;
	struct mlink *link;          /* the transport over fd: plain TCP or TLS */
	char peer[96];               /* "10.0.0.2:41234" */
	char host[MP_NAME_MAX + 1];  /* the mirror's name, from HELLO */
	char section[MP_NAME_MAX + 1]; /* its [mirror "NAME"], from HELLO (version 3) */
	char cert[200];              /* its certificate's subject, "" */
	struct acks_mirror who;      /* all of it, for mirror_acks.c (§M12) */
	atomic_bool replaced;        /* a newer connection of the same mirror took over */
	struct fetch *fetches;
	size_t nfetches;
	uint8_t rx[2 * MP_CTL_MAX];
	size_t rxlen;
	int64_t heard_ns, sent_ns;   /* CLOCK_MONOTONIC */
	bool sent_something;
	struct mwait w;              /* its sleep on partitions and socket */
};

struct source {
	int lfd;
	pthread_t acceptor;
	bool started;
	atomic_int conns;
	int stop_pipe[2];
	pthread_mutex_t lock;        /* guards fds, tls and ided */
	int fds[MAX_CONNS];
	struct mlink_ctx *tls;       /* tls = on: the context of new connections (a
				      * SIGHUP may swap it: mirror_source_tls_swap) */
	struct conn *ided[MAX_CONNS]; /* connections of mirrors with an id (under lock) */
	atomic_bool told_v2;         /* a version-2 mirror's fallback was logged */
	atomic_ullong accepted, refused, bytes, records, gaps; /* for metrics */
	atomic_bool listening;       /* started, as the metrics thread sees it */
};

static struct source src = { .lfd = -1, .stop_pipe = { -1, -1 },
			      .lock = PTHREAD_MUTEX_INITIALIZER };

/* Remember a connection's fd (to shut it down at stop), or forget it. */
static void track(int fd, bool add)
{
	pthread_mutex_lock(&src.lock);
	for (int i = 0; i < MAX_CONNS; i++)
		if (add ? src.fds[i] <= 0 : src.fds[i] == fd) {
			src.fds[i] = add ? fd : 0;
			break;
		}
	pthread_mutex_unlock(&src.lock);
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */

static int send_msg(struct conn *c, const struct mp_msg *m)
{
	uint8_t buf[MP_CTL_MAX];
	struct iovec iov = { .iov_base = buf, .iov_len = mp_encode(m, buf, sizeof buf) };

	if (!iov.iov_len)
		return -EINVAL;
	c->sent_ns = mono_ns();
	return mlink_send(c->link, &iov, 1, false);
}

/* ------------------------------------------------------------------ */
/* DATA batches                                                        */

struct batch {
	struct iovec iov[2 * BATCH_IOV + 2];
	uint64_t holes[BATCH_IOV][2];      /* synthesised aborted ranges */
	int niov, nholes;
	uint32_t count;
	size_t bytes;
	uint64_t first_pos;          /* of the first frame; UINT64_MAX: none */
	uint64_t next;               /* the offset after what the entries cover */
};

static void add_hole(struct batch *b, uint64_t from, uint64_t to)
{
	uint64_t *h = b->holes[b->nholes++];

	h[0] = htole64(cw_make(FRAME_ABORTED, FRAME_ABORT_MIN, from));
	h[1] = htole64(to);
	b->iov[b->niov++] = (struct iovec){ .iov_base = h, .iov_len = FRAME_ABORT_MIN };
	b->bytes += FRAME_ABORT_MIN;
	b->count++;
}

/* A frame into the batch: where it follows the last one in the ring (the
 * common case: no padding or aborted range between), it lengthens that
 * piece, so a batch of small records is a few iovecs, not one each. */
static void add_frame(struct batch *b, uint8_t *at, uint64_t len)
{
	struct iovec *last = &b->iov[b->niov - 1];

	if (b->niov > 1 && (uint8_t *)last->iov_base + last->iov_len == at)
		last->iov_len += len;
	else
		b->iov[b->niov++] = (struct iovec){ .iov_base = at, .iov_len = len };
	b->bytes += len;
}

/* The offsets the mirror asks for are no longer here: tell it, go on from
 * the oldest held. */
static int send_gap(struct conn *c, struct fetch *f)
{
	uint64_t lo, end;
	struct mp_msg m = { .type = MP_GAP };

	part_bounds(f->p, &lo, &end);
	if (lo <= f->next)
		return 0; /* it came back into range (a racing lap): just retry */
	log_warn("mirror %s (%s): %s/%u: offsets %llu..%llu are no longer held here "
		 "(retention or a lap of the ring); the mirror records a gap", c->host, c->peer,
		 f->topic, f->partition, (unsigned long long)f->next, (unsigned long long)lo - 1);
	atomic_fetch_add(&src.gaps, 1);
	m.u.gap.id = f->id;
	m.u.gap.from = f->next;
	m.u.gap.to = lo;
	f->next = lo;
	f->placed = false;
	return send_msg(c, &m);
}

/* Gather up to a batch of frames at f's cursor into b; 0 or -ERANGE
 * (lapped before anything was gathered) or -EIDRM. */
static int gather(struct fetch *f, struct batch *b)
{
	struct frame_view v;
	int rc;

	b->next = f->next;
	while (b->nholes < BATCH_IOV - 1 && b->niov < 2 * BATCH_IOV) {
		struct part_cursor save = f->c;

		rc = part_read(f->p, &f->c, &v);
		if (rc <= 0) {
			if (rc < 0 && b->count == 0)
				return rc;
			if (rc < 0)
				f->c = save; /* the next batch meets it */
			break;
		}
		if (b->count && b->bytes + v.len > MP_BATCH_BYTES) {
			f->c = save; /* the next batch starts with it */
			break;
		}
		if (v.offset > b->next)
			add_hole(b, b->next, v.offset);
		if (b->first_pos == UINT64_MAX)
			b->first_pos = v.pos;
		add_frame(b, part_at(f->p, v.pos), v.len);
		b->count++;
		b->next = v.offset + 1;
	}
	if (f->c.off > b->next && b->nholes < BATCH_IOV) {
		add_hole(b, b->next, f->c.off); /* aborted offsets at the end */
		b->next = f->c.off;
	}
	return 0;
}

/* The fetch's partition's epoch history and end (protocol.md §M9). */
static int send_epochs(struct conn *c, struct fetch *f)
{
	struct mp_msg m;

	if (mirror_epochs_msg(f->p, f->id, &m, &f->epochs_sent) < 0) {
		log_err("mirror %s (%s): %s/%u: %s; not served", c->host, c->peer, f->topic,
			f->partition, shm_errmsg());
		f->held = true;
		return 0;
	}
	return send_msg(c, &m);
}

/* Place the cursor at f->next: 0, 1 (a GAP or EPOCHS was sent), or
 * -errno. */
static int place(struct conn *c, struct fetch *f)
{
	uint64_t lo, end;
	int rc;

	if (f->placed)
		return 0;
	part_bounds(f->p, &lo, &end);
	if (f->next > end) {
		/* this log is shorter than the mirror's (recreated, or cut back
		 * here): its epochs tell it what to do (protocol.md §M9) */
		log_notice("mirror %s (%s): %s/%u: it asks from offset %llu, past this end %llu: "
			   "it is told this log's epochs, and fetches again once it has cut its "
			   "own, or stops", c->host, c->peer, f->topic, f->partition,
			   (unsigned long long)f->next, (unsigned long long)end);
		f->held = true;
		acks_unfollow(f->fl); /* its position is past this log's end */
		f->fl = NULL;
		return send_epochs(c, f) ?: 1;
	}
	if (f->next < lo)
		return send_gap(c, f) ?: 1;
	memset(&f->c, 0, sizeof f->c);
	rc = part_seek(f->p, &f->c, f->next);
	if (rc == -ERANGE)
		return send_gap(c, f) ?: 1;
	f->placed = rc == 0;
	return rc;
}

/* A batch sent, for a tracer.  Out of line, so that the probe's
 * arguments are registers, not the thread-local batch (an address form
 * libbpf 1.1 cannot read). */
static __attribute__((noinline)) void probe_send(const struct fetch *f, uint64_t count,
						  uint64_t bytes)
{
	SHMBUS_PROBE(mirror_send, f->topic, f->partition, f->next, count, bytes);
}

/* Nothing past the fetch's offset: an empty DATA (count 0, first = next)
 * says so once, with the end, so the mirror knows it is caught up (its
 * lag, protocol.md §M4).  1, or -errno. */
static int tell_end(struct conn *c, struct fetch *f)
{
	uint8_t head[MP_DATA_HEAD], trailer[MP_TRAILER];
	struct iovec iov[2] = { { .iov_base = head, .iov_len = sizeof head },
				{ .iov_base = trailer, .iov_len = sizeof trailer } };
	uint64_t lo, end;
	int rc;

	part_bounds(f->p, &lo, &end);
	mp_data_head(head, f->id, 0, f->next, f->next, end > f->next ? end : f->next, 0);
	mp_data_trailer(trailer, true);
	rc = mlink_send(c->link, iov, 2, false);
	if (rc)
		return rc;
	c->sent_ns = mono_ns();
	f->told = true;
	return 1;
}

/* Send what f has to send: 1 if a batch went, 0 if nothing was new, or
 * -errno (the connection is done) or -ERANGE/-EIDRM (the fetch is). */
static int serve_fetch(struct conn *c, struct fetch *f)
{
	static _Thread_local struct batch b;
	uint8_t head[MP_DATA_HEAD], trailer[MP_TRAILER];
	struct part_cursor before;
	uint64_t lo, end;
	bool intact;
	int rc;

	if (f->held)
		return 0;
	if (part_epochs_version(f->p->hdr) != f->epochs_sent)
		return send_epochs(c, f) ?: 1; /* its history changed: the mirror hears first */
	rc = place(c, f);
	if (rc)
		return rc == 1 ? 1 : rc;
	before = f->c;
	b.niov = 1;
	b.nholes = 0;
	b.count = 0;
	b.bytes = 0;
	b.first_pos = UINT64_MAX;
	rc = gather(f, &b);
	if (rc == -ERANGE) {
		f->placed = false;
		return send_gap(c, f) ?: 1;
	}
	if (rc == -ESTALE) {
		/* this log was cut back below the mirror's position: it hears
		 * the new epochs and cuts its own (protocol.md §M9) */
		log_notice("mirror %s (%s): %s/%u was cut back to offset %llu here, below the "
			   "mirror's %llu: it is told this log's epochs", c->host, c->peer,
			   f->topic, f->partition, (unsigned long long)f->c.off,
			   (unsigned long long)f->next);
		f->held = true;
		return send_epochs(c, f) ?: 1;
	}
	if (rc || b.count == 0)
		return rc ? rc : f->told ? 0 : tell_end(c, f);
	part_bounds(f->p, &lo, &end);
	{
		uint64_t next = b.next;

		mp_data_head(head, f->id, b.count, f->next, next, end > next ? end : next, b.bytes);
		b.iov[0] = (struct iovec){ .iov_base = head, .iov_len = MP_DATA_HEAD };
		rc = mlink_send(c->link, b.iov, b.niov, true);
		/* the kernel has the bytes: were they intact all along? */
		intact = b.first_pos == UINT64_MAX || part_intact(f->p, b.first_pos);
		mp_data_trailer(trailer, intact);
		if (rc == 0) {
			struct iovec t = { .iov_base = trailer, .iov_len = sizeof trailer };

			rc = mlink_send(c->link, &t, 1, false);
		}
		if (rc)
			return rc;
		c->sent_ns = mono_ns();
		f->told = true;
		if (intact) {
			probe_send(f, b.count, b.bytes);
			atomic_fetch_add(&src.bytes, b.bytes);
			atomic_fetch_add(&src.records, next - f->next);
			f->next = next;
		} else {
			f->c = before; /* the mirror drops it; the next read finds the lap */
		}
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

/* An ACK, for a tracer: the mirror's end on one of its fetches. */
static void probe_ack(const struct conn *c, const struct mp_msg *m)
{
	if (!SHMBUS_PROBE_ENABLED(mirror_ack))
		return;
	for (size_t i = 0; i < c->nfetches; i++)
		if (c->fetches[i].id == m->u.ack.id)
			SHMBUS_PROBE(mirror_ack, c->fetches[i].topic, c->fetches[i].partition,
				     m->u.ack.end);
}

/* An ACK: the mirror's position on one of its fetches (§M9). */
static void on_ack(const struct conn *c, const struct mp_msg *m)
{
	for (size_t i = 0; i < c->nfetches; i++)
		if (c->fetches[i].id == m->u.ack.id && c->fetches[i].p)
			acks_ack(c->fetches[i].fl, m->u.ack.end, c->fetches[i].next);
}

static int do_list(struct conn *c, const struct mp_msg *req)
{
	struct bus_topic *all = malloc(BUS_MAX_TOPICS * sizeof *all);
	struct mp_msg m = { .type = MP_TOPIC };
	uint32_t matched = 0;
	int n, rc = 0;

	if (!all)
		return -ENOMEM;
	n = dir_list(&c->d->dir, all, BUS_MAX_TOPICS);
	for (int i = 0; i < n && i < (int)BUS_MAX_TOPICS && rc == 0; i++) {
		if (!mp_pattern_match(req->u.list.pattern, all[i].name))
			continue;
		snprintf(m.u.topic.name, sizeof m.u.topic.name, "%s", all[i].name);
		m.u.topic.topic_id = all[i].id;
		m.u.topic.capacity = all[i].capacity;
		m.u.topic.index_capacity = all[i].index_capacity;
		m.u.topic.partitions = all[i].partitions;
		m.u.topic.policy = all[i].policy;
		rc = send_msg(c, &m);
		matched++;
	}
	free(all);
	if (rc)
		return rc;
	m = (struct mp_msg){ .type = MP_LIST_END, .u.list_end.count = matched };
	return send_msg(c, &m);
}

/* The fetch with this id, or NULL. */
static struct fetch *fetch_of(struct conn *c, uint32_t id)
{
	for (size_t i = 0; i < c->nfetches; i++)
		if (c->fetches[i].id == id)
			return &c->fetches[i];
	return NULL;
}

/* A FETCH: a new fetch, or one that replaces the fetch of its id (the
 * mirror fetches again after it cut its log, protocol.md §M9).  The
 * partition's epochs go first; records follow only if the mirror's log
 * is a prefix of this one. */
/* f serves nothing more: its follower (the mirrored offset's count) and
 * its mapping go. */
static void fetch_release(struct fetch *f)
{
	acks_unfollow(f->fl);
	f->fl = NULL;
	cache_put(f->m);
	f->m = NULL;
	f->p = NULL;
}

static int do_fetch(struct conn *c, const struct mp_msg *req)
{
	struct mp_msg no = { .type = MP_UNKNOWN, .u.unknown = { .id = req->u.fetch.id,
								 .code = -ENOENT } };
	struct mp_msg ep;
	struct bus_topic t;
	struct fetch *f = fetch_of(c, req->u.fetch.id);

	if (f) {
		fetch_release(f); /* fetched again (after a cut, or a STOP) */
	} else if (c->nfetches >= MAX_FETCHES) {
		return -EMFILE;
	} else {
		f = &c->fetches[c->nfetches++];
		*f = (struct fetch){ .id = req->u.fetch.id };
	}
	if (dir_lookup(&c->d->dir, req->u.fetch.name, &t) < 0 ||
	    req->u.fetch.partition >= t.partitions)
		return send_msg(c, &no);
	*f = (struct fetch){ .id = req->u.fetch.id, .partition = req->u.fetch.partition,
			     .next = req->u.fetch.from };
	snprintf(f->topic, sizeof f->topic, "%s", t.name);
	if (cache_get(c->d->bus, &t, f->partition, &f->m) < 0)
		return send_msg(c, &no);
	f->p = pmap_part(f->m);
	if (mirror_epochs_msg(f->p, f->id, &ep, &f->epochs_sent) < 0) {
		log_err("mirror %s (%s): %s/%u: %s; not served", c->host, c->peer, f->topic,
			f->partition, shm_errmsg());
		fetch_release(f);
		return send_msg(c, &no);
	}
	f->held = !mirror_fetch_ok(&ep, req->u.fetch.epoch, f->next);
	if (f->held)
		log_notice("mirror %s (%s) asks for %s/%u from offset %llu under epoch %016llx, "
			   "which this log does not continue (this end %llu): it is told this "
			   "log's epochs, and cuts its own or stops", c->host, c->peer, f->topic,
			   f->partition, (unsigned long long)f->next,
			   (unsigned long long)req->u.fetch.epoch, (unsigned long long)ep.u.epochs.end);
	else
		f->fl = acks_follow(&c->who, f->topic, f->p, f->next);
	if (!f->held)
		log_info("mirror %s (%s) follows %s/%u from offset %llu", c->host, c->peer,
			 f->topic, f->partition, (unsigned long long)f->next);
	return send_msg(c, &ep);
}

/* A STOP: the mirror no longer follows this fetch (its id may be fetched
 * again). */
static int do_stop(struct conn *c, const struct mp_msg *req)
{
	struct fetch *f = fetch_of(c, req->u.stop.id);

	if (f && f->m) {
		log_info("mirror %s (%s) stops following %s/%u", c->host, c->peer, f->topic,
			 f->partition);
		fetch_release(f);
	}
	return 0;
}

/* One message from the mirror: 0, or -errno with why (closes). */
static int handle(struct conn *c, const uint8_t *buf, uint32_t len, const char **why)
{
	struct mp_msg m;
	int rc = mp_decode(buf, len, MP_FROM_MIRROR, &m);

	if (rc)
		return *why = "a malformed message", rc;
	switch (m.type) {
	case MP_LIST:
		return do_list(c, &m);
	case MP_FETCH:
		rc = do_fetch(c, &m);
		if (rc == -EMFILE)
			*why = "more FETCHes than a mirror may have";
		return rc;
	case MP_STOP:
		return do_stop(c, &m);
	case MP_ACK:
		probe_ack(c, &m);
		on_ack(c, &m);
		return 0;
	case MP_ERROR:
		log_warn("mirror %s (%s) says: %s", c->host, c->peer, m.u.error.text);
		return *why = "it sent ERROR", -ECONNABORTED;
	default:
		return *why = "a second HELLO", -EPROTO;
	}
}

/* Handle each whole message in c->rx: 0, or -errno with why. */
static int process(struct conn *c, const char **why)
{
	size_t at = 0;
	int rc = 0;

	while (rc == 0) {
		uint32_t len;
		uint16_t type;

		rc = mp_peek(c->rx + at, c->rxlen - at, MP_FROM_MIRROR, 0, &len, &type);
		if (rc == -EAGAIN || (rc == 0 && len > c->rxlen - at)) {
			rc = 0;
			break;
		}
		if (rc) {
			*why = rc == -EMSGSIZE ? "an oversized message" : "a malformed message header";
			break;
		}
		rc = handle(c, c->rx + at, len, why);
		at += len;
	}
	memmove(c->rx, c->rx + at, c->rxlen - at);
	c->rxlen -= at;
	return rc;
}

/* Read what the mirror sent and handle it: 0, or -errno with why. */
static int receive(struct conn *c, const char **why)
{
	ssize_t k = mlink_recv(c->link, c->rx + c->rxlen, sizeof c->rx - c->rxlen);

	if (k == 0)
		return *why = "it closed the connection", -ECONNRESET;
	if (k < 0)
		return k == -EAGAIN ? 0 : (*why = mlink_why(c->link), (int)k);
	c->rxlen += (size_t)k;
	c->heard_ns = mono_ns();
	return process(c, why);
}

/* ------------------------------------------------------------------ */
/* A connection                                                        */

static bool stopping(void)
{
	struct pollfd p = { .fd = src.stop_pipe[0], .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* ERROR to the mirror before closing: what it logs. */
static void refuse(struct conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(struct conn *c, int code, const char *fmt, ...)
{
	struct mp_msg m = { .type = MP_ERROR, .u.error.code = code };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m.u.error.text, sizeof m.u.error.text, fmt, ap);
	va_end(ap);
	log_warn("mirror %s (%s) refused: %s", c->host[0] ? c->host : "?", c->peer,
		 m.u.error.text);
	(void)send_msg(c, &m);
}

/* HELLO within the timeout, answered with ours: 0 or -errno with why. */
static int handshake(struct conn *c, int64_t timeout_ms, const char **why)
{
	struct mp_msg m = { .type = MP_HELLO_OK };
	int64_t until = mono_ns() + timeout_ms * 1000000;
	uint32_t len = 0;
	uint16_t type;
	int rc = -EAGAIN;

	while (rc == -EAGAIN || (rc == 0 && len > c->rxlen)) {
		int64_t left = (until - mono_ns()) / 1000000;
		ssize_t k;

		if (left <= 0 || mlink_wait(c->link, -1, (int)left) <= 0)
			return *why = "no HELLO in time", -ETIMEDOUT;
		k = mlink_recv(c->link, c->rx + c->rxlen, sizeof c->rx - c->rxlen);
		if (k == -EAGAIN)
			continue; /* a TLS record that was not data */
		if (k <= 0)
			return *why = "it closed the connection before HELLO", -ECONNRESET;
		c->rxlen += (size_t)k;
		if (mlink_looks_tls(c->rx, c->rxlen) && mlink_auth(c->link) == MP_AUTH_NONE) {
			m = (struct mp_msg){ .type = MP_ERROR, .u.error.code = -EPROTO };
			snprintf(m.u.error.text, sizeof m.u.error.text, "this source serves mirrors "
				 "over plain TCP ([mirror-listen] tls = off), not TLS");
			send_msg(c, &m); /* in the clear: its TLS says "not TLS" */
			return *why = "it speaks TLS (tls = on in its [mirror] section), and this "
				      "listener has tls = off", -EPROTO;
		}
		rc = mp_peek(c->rx, c->rxlen, MP_FROM_MIRROR, 0, &len, &type);
	}
	if (rc || type != MP_HELLO || mp_decode(c->rx, len, MP_FROM_MIRROR, &m) < 0)
		return *why = "its first message is not a well-formed HELLO", -EPROTO;
	snprintf(c->host, sizeof c->host, "%s", m.u.hello.host);
	if (m.u.hello.version < MP_VERSION_MIN || m.u.hello.version > MP_VERSION) {
		refuse(c, -EPROTO, "this source speaks mirroring protocol version %u (mirror ids) "
		       "and version %u (epochs), the mirror %u: upgrade the older shmbusd",
		       MP_VERSION, MP_VERSION_MIN, m.u.hello.version);
		return *why = "it speaks another protocol version (refused with ERROR)", -EPROTO;
	}
	if (m.u.hello.version >= 3) {
		memcpy(c->who.id, m.u.hello.id, MP_ID_SIZE);
		mirror_id_hex(c->who.id, c->who.id_hex);
		snprintf(c->section, sizeof c->section, "%s", m.u.hello.link);
	}
	if (m.u.hello.auth != mlink_auth(c->link))
		return *why = m.u.hello.auth == MP_AUTH_TLS ? "its HELLO says TLS but arrived in plain "
			      "TCP (a TLS proxy before this listener?)" : "its HELLO says plain TCP but "
			      "arrived over TLS", -EPROTO;
	memmove(c->rx, c->rx + len, c->rxlen - len);
	c->rxlen -= len;
	/* the mirror's version: a version-2 mirror reads a HELLO_OK of 2 */
	m = (struct mp_msg){ .type = MP_HELLO_OK, .u.hello.version = m.u.hello.version };
	memcpy(m.u.hello.id, mirror_id(), MP_ID_SIZE);
	gethostname(m.u.hello.host, sizeof m.u.hello.host - 1);
	if (!m.u.hello.host[0])
		snprintf(m.u.hello.host, sizeof m.u.hello.host, "shmbusd");
	return send_msg(c, &m);
}

/* One round: serve each fetch once; 1 if any sent, or -errno. */
static int serve_round(struct conn *c, const char **why)
{
	int any = 0;

	for (size_t i = 0; i < c->nfetches; i++) {
		struct fetch *f = &c->fetches[i];
		int rc;

		if (!f->p)
			continue;
		rc = serve_fetch(c, f);
		if (rc == -ERANGE || rc == -EIDRM) {
			struct mp_msg gone = { .type = MP_UNKNOWN,
					       .u.unknown = { .id = f->id, .code = -EIDRM } };

			if (rc == -EIDRM)
				log_warn("mirror %s (%s): %s/%u was deleted here; it is no longer "
					 "served", c->host, c->peer, f->topic, f->partition);
			/* the mirror lists the topics again: recreated, it is
			 * a new log (protocol.md §M9) */
			if (rc == -EIDRM && send_msg(c, &gone) < 0)
				return *why = "it has not read for timeout_ms", -ETIMEDOUT;
			fetch_release(f);
			continue;
		}
		if (rc < 0) {
			*why = rc == -ETIMEDOUT ? "it has not read for timeout_ms" : strerror(-rc);
			return rc;
		}
		any |= rc;
	}
	return any;
}

/*
 * Nothing was new: sleep until a partition has records, the mirror
 * sends, shmbusd stops, or a heartbeat or the silence timeout is due
 * (protocol.md §M5).  0, or -errno with why.
 */
static int idle(struct conn *c, int64_t timeout_ns, const char **why)
{
	int64_t due = c->sent_ns + HEARTBEAT_NS;
	struct mwait_set s;
	int sent;

	if (c->heard_ns + timeout_ns + 1000000 < due)
		due = c->heard_ns + timeout_ns + 1000000;
	mwait_prepare(&c->w, &s);
	for (size_t i = 0; i < c->nfetches; i++)
		if (c->fetches[i].p)
			mwait_add(&s, c->fetches[i].p);
	/* look again after announcing the waits, or a wake may be missed */
	sent = serve_round(c, why);
	if (sent == 0 && !mwait_input(&c->w) && !mlink_buffered(c->link))
		mwait_sleep(&s, due);
	return sent < 0 ? sent : 0;
}

/* A version-2 mirror has no id: said once, as it weakens the count. */
static void tell_v2(const struct conn *c)
{
	if (atomic_exchange(&src.told_v2, true))
		return;
	log_warn("mirror %s (%s) speaks mirroring protocol version 2, without a mirror id: it is "
		 "counted by its host name and address, so if it connects again from another "
		 "address before its old connection times out here it counts twice toward "
		 "min_mirrors meanwhile; upgrade its shmbusd (said once)", c->host, c->peer);
}

/*
 * Who the mirror is (protocol.md §M12), for mirror_acks.c; a newer
 * connection of the same mirror and section replaces the older ones at
 * once: their followers count no more, and they are shut down (their
 * threads end, saying why).
 */
static void identify(struct conn *c)
{
	size_t slot = MAX_CONNS;

	if (!c->who.id_hex[0]) {
		tell_v2(c);
		return;
	}
	pthread_mutex_lock(&src.lock);
	for (size_t i = 0; i < MAX_CONNS; i++) {
		struct conn *o = src.ided[i];

		if (!o) {
			slot = slot < MAX_CONNS ? slot : i;
			continue;
		}
		if (memcmp(o->who.id, c->who.id, MP_ID_SIZE) || strcmp(o->section, c->section) ||
		    atomic_exchange(&o->replaced, true))
			continue;
		log_notice("mirror %s (id %s, [mirror \"%s\"]) connected again from %s: its "
			   "connection from %s is closed (replaced by a new connection from the same "
			   "mirror)", c->host, c->who.id_hex, c->section, c->peer, o->peer);
		/* its followers count no more, then its thread is woken to end;
		 * a FETCH it still takes counts once with ours (one id) */
		acks_replace(&o->who);
		shutdown(o->fd, SHUT_RDWR);
	}
	if (slot < MAX_CONNS)
		src.ided[slot] = c;
	pthread_mutex_unlock(&src.lock);
}

/* The connection ends: no newer one may shut its fd down any more. */
static void unidentify(struct conn *c)
{
	pthread_mutex_lock(&src.lock);
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (src.ided[i] == c)
			src.ided[i] = NULL;
	pthread_mutex_unlock(&src.lock);
}

static const char *serve_conn(struct conn *c)
{
	const struct config_mirror_listen *l = &c->d->cfg.mlisten;
	const char *why = "";
	struct mlink_ctx *x;
	char how[300];
	int rc;

	pthread_mutex_lock(&src.lock); /* against mirror_source_tls_swap */
	x = mlink_ctx_get(src.tls);
	pthread_mutex_unlock(&src.lock);
	rc = mlink_handshake(c->link, x, true); /* the link keeps x to its end */

	if (rc) {
		atomic_fetch_add(&src.refused, 1);
		log_warn("mirror connection from %s refused: %s", c->peer, mlink_why(c->link));
		return NULL;
	}
	rc = handshake(c, l->timeout_ms, &why);
	if (rc) {
		atomic_fetch_add(&src.refused, 1);
		return why[0] ? why : strerror(-rc);
	}
	atomic_fetch_add(&src.accepted, 1);
	mlink_describe(c->link, how, sizeof how);
	mlink_peer_name(c->link, c->cert, sizeof c->cert);
	if (c->who.id_hex[0])
		log_info("mirror %s (id %s%s%s, [mirror \"%s\"]) connected from %s (%s)", c->host,
			 c->who.id_hex, c->cert[0] ? ", certificate " : "", c->cert, c->section,
			 c->peer, how);
	else
		log_info("mirror %s connected from %s (%s)", c->host, c->peer, how);
	identify(c);
	c->heard_ns = mono_ns();
	if (process(c, &why)) /* what came with the HELLO */
		return why;
	if (mwait_start(&c->w, c->fd, src.stop_pipe[0]) < 0)
		return "no thread to watch its socket";
	while (!stopping()) {
		int sent = serve_round(c, &why);

		if (sent < 0)
			return why;
		/* input the watcher saw, or bytes OpenSSL read ahead of it */
		if (mwait_input(&c->w) || mlink_buffered(c->link)) {
			rc = receive(c, &why);
			mwait_drained(&c->w);
			if (rc)
				return why;
		}
		if (!sent && idle(c, l->timeout_ms * 1000000, &why) < 0)
			return why;
		if (mono_ns() - c->heard_ns > l->timeout_ms * 1000000)
			return "it sent nothing for timeout_ms";
		if (mono_ns() - c->sent_ns > HEARTBEAT_NS) {
			struct mp_msg hb = { .type = MP_HEARTBEAT };

			if (send_msg(c, &hb))
				return "it has not read for timeout_ms";
		}
	}
	return "shmbusd is stopping";
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	const char *why;

	rcu_register_thread();
	why = serve_conn(c);
	unidentify(c);
	if (why && atomic_load(&c->replaced))
		why = "replaced by a new connection from the same mirror";
	mwait_stop(&c->w);
	if (why) /* NULL: refused before HELLO, and logged */
		log_notice("mirror %s (%s) disconnected: %s", c->host[0] ? c->host : "?", c->peer,
			   why);
	for (size_t i = 0; i < c->nfetches; i++) {
		acks_unfollow(c->fetches[i].fl);
		cache_put(c->fetches[i].m);
	}
	if (c->host[0])
		acks_gone(&c->who, why);
	rcu_unregister_thread();
	track(c->fd, false);
	mlink_close(c->link); /* and its fd */
	free(c->fetches);
	free(c);
	atomic_fetch_sub(&src.conns, 1);
	return NULL;
}

static void peer_name(const struct sockaddr_storage *sa, socklen_t len, char *buf, size_t n)
{
	char host[64], port[8];

	if (getnameinfo((const struct sockaddr *)sa, len, host, sizeof host, port, sizeof port,
			NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(buf, n, "?");
	else
		snprintf(buf, n, "%s:%s", host, port);
}

static void start_conn(struct daemon *d, int fd, const char *peer)
{
	struct timeval tv = { .tv_sec = d->cfg.mlisten.timeout_ms / 1000,
			      .tv_usec = (d->cfg.mlisten.timeout_ms % 1000) * 1000 };
	struct conn *c = calloc(1, sizeof *c);
	int one = 1;
	pthread_attr_t at;
	pthread_t t;

	if (c)
		c->fetches = calloc(MAX_FETCHES, sizeof *c->fetches);
	if (c && c->fetches)
		c->link = mlink_new(fd, peer, d->cfg.mlisten.timeout_ms, src.stop_pipe[0]);
	if (!c || !c->link || atomic_load(&src.conns) >= MAX_CONNS) {
		log_warn("mirror connection from %s refused: %s", peer,
			 c && c->link ? "64 mirrors are served already" : "out of memory");
		atomic_fetch_add(&src.refused, 1);
		if (c) {
			free(c->fetches);
			free(c->link);
		}
		free(c);
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	*c = (struct conn){ .d = d, .fd = fd, .link = c->link, .fetches = c->fetches,
			    .sent_ns = mono_ns() };
	snprintf(c->peer, sizeof c->peer, "%s", peer);
	c->who = (struct acks_mirror){ .host = c->host, .peer = c->peer, .link = c->section,
				       .cert = c->cert };
	atomic_fetch_add(&src.conns, 1);
	track(fd, true);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, conn_main, c)) {
		log_warn("mirror connection from %s refused: no thread for it", peer);
		atomic_fetch_add(&src.refused, 1);
		track(fd, false);
		atomic_fetch_sub(&src.conns, 1);
		mlink_close(c->link);
		free(c->fetches);
		free(c);
	}
	pthread_attr_destroy(&at);
}

static void *accept_main(void *arg)
{
	struct daemon *d = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = src.lfd, .events = POLLIN },
				       { .fd = src.stop_pipe[0], .events = POLLIN } };
		struct sockaddr_storage sa;
		socklen_t len = sizeof sa;
		char peer[96];
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(src.lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		peer_name(&sa, len, peer, sizeof peer);
		start_conn(d, fd, peer);
	}
	return NULL;
}

static int listen_on(const char *spec)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE }, *ai;
	char host[128], port[8];
	int fd, one = 1, rc;

	if (config_metrics_split(spec, host, sizeof host, port, sizeof port) < 0)
		return -EINVAL;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc)
		return -EADDRNOTAVAIL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
			rc = -errno;
			close(fd);
			fd = rc;
		}
	} else {
		fd = -errno;
	}
	freeaddrinfo(ai);
	return fd;
}

int mirror_source_init(struct daemon *d)
{
	const char *addr = d->cfg.mlisten.address;

	if (!addr[0])
		return 0;
	if (mirror_id_load(d) < 0)
		return -EINVAL;
	if (mlink_ctx_new(&d->cfg.mlisten.creds, d->cfg.mlisten.tls == 1, true, "[mirror-listen]",
			  NULL, &src.tls) < 0)
		return -EINVAL;
	acks_init(d->cfg.mlisten.min_mirrors);
	src.lfd = listen_on(addr);
	if (src.lfd < 0) {
		log_err("[mirror-listen] cannot listen on %s: %s; free the port or change address",
			addr, strerror(-src.lfd));
		return src.lfd;
	}
	if (pipe2(src.stop_pipe, O_CLOEXEC) < 0 ||
	    pthread_create(&src.acceptor, NULL, accept_main, d)) {
		log_err("[mirror-listen] cannot start its thread");
		return -ENOMEM;
	}
	src.started = true;
	atomic_store(&src.listening, true);
	if (src.tls) {
		log_notice("[mirror-listen] serves mirrors on %s over %s; kernel TLS: %s", addr,
			   mlink_ctx_describe(src.tls), mlink_ktls_offered());
		mirror_certs_loaded("[mirror-listen]", src.tls);
	}
	else
		log_warn("[mirror-listen] serves mirrors on %s over plain TCP (tls = off): records "
			 "travel unencrypted and any host that reaches the port may read every "
			 "topic; use it only on a network you trust", addr);
	return 0;
}

void mirror_source_fini(struct daemon *d)
{
	(void)d;
	atomic_store(&src.listening, false);
	if (src.started) {
		if (write(src.stop_pipe[1], "x", 1) < 0)
			log_debug("mirror source: cannot signal its threads to stop");
		pthread_join(src.acceptor, NULL);
		/* connections see the pipe within a round; one blocked in a send
		 * is woken by the shutdown */
		pthread_mutex_lock(&src.lock);
		for (int i = 0; i < MAX_CONNS; i++)
			if (src.fds[i] > 0)
				shutdown(src.fds[i], SHUT_RDWR);
		pthread_mutex_unlock(&src.lock);
		for (int i = 0; i < 2000 && atomic_load(&src.conns) > 0; i++)
			usleep(5000);
		if (atomic_load(&src.conns) > 0)
			log_warn("mirror source: %d connections did not end in 10 s",
				 atomic_load(&src.conns));
		src.started = false;
	}
	if (src.lfd >= 0)
		close(src.lfd);
	src.lfd = -1;
	pthread_mutex_lock(&src.lock);
	mlink_ctx_put(src.tls); /* a connection still running holds its own reference */
	src.tls = NULL;
	pthread_mutex_unlock(&src.lock);
}

bool mirror_source_tls_swap(struct mlink_ctx *x)
{
	struct mlink_ctx *old;

	pthread_mutex_lock(&src.lock);
	old = src.tls;
	if (old && src.started)
		src.tls = x;
	pthread_mutex_unlock(&src.lock);
	if (!old || old == x)
		return false;
	mlink_ctx_put(old); /* freed when the last connection made with it ends */
	return true;
}

void mirror_source_stats(struct mirror_source_stats *ret)
{
	*ret = (struct mirror_source_stats){
		.listening = atomic_load(&src.listening),
		.connections = (uint64_t)atomic_load(&src.conns),
		.accepted = atomic_load(&src.accepted),
		.refused = atomic_load(&src.refused),
		.bytes = atomic_load(&src.bytes),
		.records = atomic_load(&src.records),
		.gaps = atomic_load(&src.gaps),
	};
}
