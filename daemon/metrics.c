/*
 * metrics.c - the daemon's counters in shared memory, its systemd status
 * line, and the HTTP endpoint that serves them to Prometheus.
 *
 * Each tick the main thread writes the counters file (format.md §12):
 * the daemon's block (health: pid, start, heartbeat, state; and struct
 * dstats) and, per supervised partition, the append rates supervise.c
 * sampled.  `shmbus status` and `shmbus stats` read that file, with or
 * without the daemon running.  The daemon makes the file afresh at each
 * start; if it cannot, it keeps the same table in private memory so the
 * endpoint still works, and says `shmbus status` will not see it.
 *
 * With --metrics ADDR:PORT, libmicrohttpd serves GET /metrics from its
 * own thread (exposition.c builds the text); we bind the socket ourselves
 * so that a failure names the address, the reason and the fix, and the
 * daemon then refuses to start.  Any other path is 404, any other method
 * 405; connections are capped and time out.
 */
#include "shmbusd.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../util/clock.h"
#include "../shm/counters.h"
#include "../util/proc.h"

#define HTTP_MAX_CONNECTIONS 32
#define HTTP_TIMEOUT_S       10
#define HTTP_BACKLOG         32

struct metrics {
	struct daemon *d;
	struct ctr_file ctr;         /* mapped for the daemon's life; the HTTP
				      * thread reads it, the main thread writes */
	bool ctr_private;            /* no file: anonymous memory */
	struct MHD_Daemon *http;
	char addr[160];              /* "ADDR:PORT" bound; "": no endpoint */
	bool ipv6;
	uint64_t swept_gen;          /* directory generation of the last sweep */
	uint64_t rates_full;         /* partitions without an entry, last tick */
	char status[256];            /* the last STATUS= line sent */
};

static uint64_t version_word(void)
{
	return (uint64_t)SHMBUS_VERSION_MAJOR << 16 | SHMBUS_VERSION_MINOR << 8 |
	       SHMBUS_VERSION_PATCH;
}

/* ------------------------------------------------------------------ */
/* The counters file (main thread)                                     */

/* The daemon's block as of now. */
static void daemon_block(struct metrics *m, uint64_t state, struct ctr_daemon *v)
{
	struct daemon *d = m->d;
	uint64_t start;

	memset(v, 0, sizeof *v);
	v->pid = (uint64_t)proc_self(&start);
	v->start_time = start;
	v->state = state;
	v->version = version_word();
	v->started_ns = d->started_ns;
	v->heartbeat_ns = real_ns();
	v->tick_ns = d->cfg.tick_ms * 1000000;
	v->partitions = d->table ? d->table->n : 0;
	v->clients = clients_count(d);
#define SET(field, attr, word) v->word = d->st.field;
	DAEMON_STATS(SET)
#undef SET
	v->rates_full = m->rates_full;
}

/* Without a file, the same table in memory of our own. */
static int ctr_private(struct metrics *m)
{
	size_t len = CTR_HEADER_SIZE + (size_t)CTR_SLOTS * sizeof(struct ctr_part);
	void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (base == MAP_FAILED)
		return -errno;
	m->ctr = (struct ctr_file){
		.hdr = base,
		.slots = (struct ctr_part *)(void *)((uint8_t *)base + CTR_HEADER_SIZE),
		.nslots = CTR_SLOTS, .map_len = len, .writable = true,
	};
	m->ctr_private = true;
	return 0;
}

static int counters_open(struct metrics *m)
{
	struct daemon *d = m->d;
	int rc = ctr_create(d->rootfd, m->addr, &m->ctr);

	if (rc == 0)
		return 0;
	log_warn("cannot make %s/%s: %s; `shmbus status` will not show the daemon's counters "
		 "(the metrics endpoint still serves them)", d->cfg.root, CTR_FILE, shmbus_errmsg());
	rc = ctr_private(m);
	if (rc < 0)
		log_err("cannot allocate the daemon's counters: %s", strerror(-rc));
	return rc;
}

/* Rates of every supervised partition; sweep entries of the gone. */
static void write_rates(struct metrics *m)
{
	struct dtable *t = m->d->table;
	uint64_t tick = m->d->st.ticks, full = 0;
	int64_t now = real_ns();

	for (size_t i = 0; t && i < t->n; i++) {
		struct dpart *dp = t->parts[i];
		struct ctr_rate r = {
			.tick = tick, .sampled_ns = now, .end_offset = dp->last_next,
			.tail = dp->last_tail, .records_per_s = dp->rate_records,
			.bytes_per_s = dp->rate_bytes,
		};

		if (part_deleted(dp->part))
			continue;
		if (ctr_part_write(&m->ctr, dp->topic_id, dp->partition, &r) == -ENOSPC)
			full++;
	}
	if (full && full != m->rates_full)
		log_warn("the counters file holds rates of %u partitions; %llu more have none "
			 "(metrics and `shmbus stats` show no rate for them)", CTR_SLOTS,
			 (unsigned long long)full);
	m->rates_full = full;
	if (t && t->dir_gen != m->swept_gen) {
		ctr_part_sweep(&m->ctr, tick);
		m->swept_gen = t->dir_gen;
	}
}

/* STATUS= for systemd: one line, sent when it changes. */
static void send_status(struct metrics *m)
{
	struct daemon *d = m->d;
	const struct shmbus_daemon_recovery *r = &d->st.recovery;
	char line[sizeof m->status];
	size_t n = d->table ? d->table->n : 0, c = clients_count(d);

	snprintf(line, sizeof line, "%zu partition%s, %zu client%s, %llu claim%s unblocked; "
		 "start-up recovery: %llu recovered, %llu in use, %llu failed, %llu offsets cut",
		 n, n == 1 ? "" : "s", c, c == 1 ? "" : "s", (unsigned long long)d->st.unblocked,
		 d->st.unblocked == 1 ? "" : "s", (unsigned long long)r->recovered,
		 (unsigned long long)r->in_use, (unsigned long long)r->failed,
		 (unsigned long long)r->cut);
	if (!strcmp(line, m->status))
		return;
	snprintf(m->status, sizeof m->status, "%s", line);
	notify_status(d, "%s", line);
}

/* ------------------------------------------------------------------ */
/* The HTTP endpoint                                                   */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
								 MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **con_cls)
{
	struct MHD_Response *r;
	enum MHD_Result rc;
	size_t len;
	char *text;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)con_cls;
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, "404 not found: the metrics are at /metrics\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "405 method not allowed: use GET\n");
	struct metrics *m = cls;

	text = exposition_render(m->d, &m->ctr, &len);
	if (!text)
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "500 out of memory\n");
	r = MHD_create_response_from_buffer_with_free_callback(len, text, free);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_warn("metrics endpoint: %s", line);
}

static const char *bind_hint(int err)
{
	switch (err) {
	case EADDRINUSE:
		return "another process listens there: stop it, or choose another port with "
		       "--metrics ADDR:PORT (or metrics = in the configuration)";
	case EACCES:
		return "ports below 1024 need CAP_NET_BIND_SERVICE: choose a port above 1023";
	case EADDRNOTAVAIL:
		return "no interface of this host has that address: use 127.0.0.1, or an "
		       "address `ip addr` lists";
	default:
		return "fix --metrics ADDR:PORT (or metrics = in the configuration), or leave it "
		       "empty to serve no metrics";
	}
}

/* "ADDR:PORT" of what fd is bound to (the port chosen, for port 0). */
static void bound_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[INET6_ADDRSTRLEN + 8], port[8];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
			NI_NUMERICHOST | NI_NUMERICSERV))
		return;
	snprintf(out, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* A listening socket on spec; -1 after logging why not. */
static int listen_on(struct metrics *m, const char *spec)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE }, *ai;
	char host[128], port[8];
	int fd, rc, one = 1;

	if (config_metrics_split(spec, host, sizeof host, port, sizeof port) < 0) {
		log_err("--metrics \"%s\" is not ADDR:PORT; write e.g. 127.0.0.1:9465", spec);
		return -1;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc) {
		log_err("cannot serve metrics on %s: %s; write an address this host has, e.g. "
			"127.0.0.1:%s", spec, gai_strerror(rc), port);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, HTTP_BACKLOG) < 0) {
		int err = errno;

		log_err("cannot serve metrics on %s: %s; %s", spec, strerror(err), bind_hint(err));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	m->ipv6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	snprintf(m->addr, sizeof m->addr, "%s", spec);
	bound_name(fd, m->addr, sizeof m->addr);
	return fd;
}

/* Serve on the socket listen_on() made. */
static int http_start(struct metrics *m, int fd)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

	if (m->ipv6)
		flags |= MHD_USE_IPv6;
	m->http = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
				   MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
				   MHD_OPTION_LISTEN_SOCKET, fd,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
				   MHD_OPTION_END);
	if (!m->http) {
		/* the socket is left open: whether libmicrohttpd closed it on
		 * failure depends on its version, and the daemon exits now */
		log_err("cannot start the metrics endpoint on %s (libmicrohttpd refused; its "
			"message is above); leave --metrics empty to run without it", m->addr);
		return -1;
	}
	log_notice("serving Prometheus metrics on http://%s/metrics", m->addr);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Life                                                                */

static void counters_close(struct metrics *m)
{
	if (m->ctr_private)
		munmap(m->ctr.hdr, m->ctr.map_len);
	else
		ctr_close(&m->ctr);
	m->ctr.hdr = NULL;
}

int metrics_init(struct daemon *d)
{
	struct metrics *m = calloc(1, sizeof *m);
	struct ctr_daemon v;
	int fd = -1;

	if (!m) {
		log_err("cannot start metrics: out of memory");
		return -1;
	}
	m->d = d;
	/* bind first: the counters file names the address really bound */
	if ((d->cfg.metrics[0] && (fd = listen_on(m, d->cfg.metrics)) < 0) ||
	    counters_open(m) < 0) {
		if (fd >= 0)
			close(fd);
		free(m);
		return -1;
	}
	daemon_block(m, CTR_STATE_RUNNING, &v);
	ctr_daemon_write(&m->ctr, &v);
	if (fd >= 0 && http_start(m, fd) < 0) {
		daemon_block(m, CTR_STATE_STOPPED, &v);
		ctr_daemon_write(&m->ctr, &v);
		counters_close(m);
		free(m);
		return -1;
	}
	d->metrics = m;
	return 0; /* STATUS= from the first tick: READY=1 comes first */
}

void metrics_tick(struct daemon *d)
{
	struct metrics *m = d->metrics;
	struct ctr_daemon v;

	if (!m)
		return;
	write_rates(m);
	daemon_block(m, CTR_STATE_RUNNING, &v);
	ctr_daemon_write(&m->ctr, &v);
	send_status(m);
}

void metrics_fini(struct daemon *d)
{
	struct metrics *m = d->metrics;
	struct ctr_daemon v;

	if (!m)
		return;
	if (m->http)
		MHD_stop_daemon(m->http); /* joins its thread, closes its socket */
	daemon_block(m, CTR_STATE_STOPPED, &v);
	ctr_daemon_write(&m->ctr, &v);
	counters_close(m);
	free(m);
	d->metrics = NULL;
}
