/*
 * exposition.c - what GET /metrics answers: the Prometheus text format
 * 0.0.4 (HELP and TYPE before each family, then `name{labels} value`
 * lines), built from one snapshot of the bus.  docs/metrics.md lists and
 * explains every metric.
 *
 * Runs in libmicrohttpd's thread, beside the main thread, so it reads
 * only what is safe to share: the partition table under rcu_read_lock
 * (copied out, so the read-side section stays short), partition headers
 * and group files with atomic loads, and the daemon's own counters and
 * rates from the seqlocked counters file (format.md §12), never from
 * d->st or struct dpart, which the main thread writes plainly.
 * Label values are escaped as the format says.
 */
#include "shmbusd.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-bp.h>

#include "../util/clock.h"
#include "../shm/counters.h"
#include "../shm/groups.h"
#include "coordinator.h"
#include "group_cut.h"
#include "mirror.h"
#include "../shm/read.h"
#include "../shm/stats.h"

/* ------------------------------------------------------------------ */
/* The exposition text (HTTP thread)                                   */

struct buf {
	char *p;
	size_t len, cap;
	bool failed;                 /* out of memory: the scrape fails */
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Room for `need` more bytes and a NUL. */
static bool grow(struct buf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 65536;
	char *grown;

	while (cap < b->len + need + 1)
		cap *= 2;
	if (cap == b->cap)
		return true;
	grown = realloc(b->p, cap);
	if (!grown)
		return false;
	b->p = grown;
	b->cap = cap;
	return true;
}

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->failed || n < 0 || !grow(b, (size_t)n)) {
		b->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A label value: backslash, double quote and line feed escaped. */
static void put_label(struct buf *b, const char *name, const char *value)
{
	put(b, "%s=\"", name);
	for (const char *s = value; *s; s++) {
		if (*s == '\\')
			put(b, "\\\\");
		else if (*s == '"')
			put(b, "\\\"");
		else if (*s == '\n')
			put(b, "\\n");
		else
			put(b, "%c", *s);
	}
	put(b, "\"");
}

static void put_family(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* 15 significant digits when they give v back, else 17 (which always do). */
static const char *shortest(char *out, size_t len, double v)
{
	snprintf(out, len, "%.15g", v);
	if (strtod(out, NULL) != v)
		snprintf(out, len, "%.17g", v);
	return out;
}

static void put_double(struct buf *b, double v)
{
	char num[40];

	if (isnan(v))
		put(b, "NaN\n");
	else if (isinf(v))
		put(b, "%sInf\n", v > 0 ? "+" : "-");
	else
		put(b, "%s\n", shortest(num, sizeof num, v));
}

/* ------------------------------------------------------------------ */
/* What a scrape reads                                                 */

/* One partition, copied out of the RCU-protected table. */
struct psnap {
	char topic[PART_NAME_MAX + 1];
	uint64_t topic_id;
	uint32_t partition;
	uint64_t start, end, records, tail, capacity;
	uint64_t mirrored;
	uint64_t aborted, lapped, bp_blocked, recoveries, cut;
	uint64_t consumers, waiters;
	bool has_rate;
	double rate_records, rate_bytes;
};

/* One committed offset of a group. */
struct gsnap {
	char group[PART_NAME_MAX + 1];
	const struct psnap *p;
	uint64_t committed;
};

struct scrape {
	struct daemon *d;
	const struct ctr_file *ctr;
	struct psnap *parts;
	size_t nparts;
	const struct psnap **by_key;  /* sorted by {topic id, partition} */
	struct gsnap *groups;
	size_t ngroups, gcap;
	const char *group;            /* the group being read */
	struct ctr_daemon daemon;
	bool daemon_torn;
};

static int by_name(const void *a, const void *b)
{
	const struct psnap *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);

	return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static void copy_part(struct psnap *s, const struct dpart *dp)
{
	struct part_stats st;

	part_stats_read(dp->part, &st);
	snprintf(s->topic, sizeof s->topic, "%s", dp->topic);
	s->topic_id = dp->topic_id;
	s->partition = dp->partition;
	s->start = st.low;
	s->end = st.end;
	s->records = s->end - s->start;
	s->mirrored = st.mirrored;
	s->tail = st.tail;
	s->capacity = dp->part->cap;
	s->aborted = st.aborted_claims;
	s->lapped = st.lapped_reads;
	s->bp_blocked = st.bp_blocked;
	s->recoveries = st.recoveries;
	s->cut = st.recovered_cut;
	s->waiters = st.waiters;
	s->consumers = st.consumers;
}

/* Copy the partitions under rcu_read_lock: the table and the mappings
 * it holds stay valid until we leave it. */
static int snapshot_parts(struct scrape *sc)
{
	struct dtable *t;
	int rc = 0;

	rcu_read_lock();
	t = rcu_dereference(sc->d->table);
	if (t && t->n) {
		sc->parts = calloc(t->n, sizeof *sc->parts);
		if (!sc->parts)
			rc = -ENOMEM;
		for (size_t i = 0; sc->parts && i < t->n; i++)
			if (!part_deleted(t->parts[i]->part))
				copy_part(&sc->parts[sc->nparts++], t->parts[i]);
	}
	rcu_read_unlock();
	if (sc->nparts)
		qsort(sc->parts, sc->nparts, sizeof *sc->parts, by_name);
	return rc;
}

static int by_key(const void *a, const void *b)
{
	const struct psnap *x = *(const struct psnap *const *)a, *y = *(const struct psnap *const *)b;

	if (x->topic_id != y->topic_id)
		return x->topic_id < y->topic_id ? -1 : 1;
	return (x->partition > y->partition) - (x->partition < y->partition);
}

static const struct psnap *find_part(const struct scrape *sc, uint64_t topic_id,
				     uint32_t partition)
{
	struct psnap key = { .topic_id = topic_id, .partition = partition };
	const struct psnap *kp = &key, **hit;

	if (!sc->by_key)
		return NULL;
	hit = bsearch(&kp, sc->by_key, sc->nparts, sizeof *sc->by_key, by_key);
	return hit ? *hit : NULL;
}

static void read_rates(struct scrape *sc)
{
	for (size_t i = 0; i < sc->nparts; i++) {
		struct psnap *s = &sc->parts[i];
		struct ctr_rate r;

		if (ctr_part_read(sc->ctr, s->topic_id, s->partition, &r) == 0) {
			s->has_rate = true;
			s->rate_records = r.records_per_s;
			s->rate_bytes = r.bytes_per_s;
		}
	}
}

static int add_commit(void *ctx, uint64_t topic_id, uint32_t partition, uint64_t offset,
		      int64_t commit_ns)
{
	struct scrape *sc = ctx;
	const struct psnap *p = find_part(sc, topic_id, partition);
	struct gsnap *g;

	(void)commit_ns;
	if (!p)
		return 0; /* a deleted topic */
	if (sc->ngroups == sc->gcap) {
		size_t cap = sc->gcap ? 2 * sc->gcap : 64;
		struct gsnap *grown = realloc(sc->groups, cap * sizeof *grown);

		if (!grown)
			return -ENOMEM;
		sc->groups = grown;
		sc->gcap = cap;
	}
	g = &sc->groups[sc->ngroups++];
	snprintf(g->group, sizeof g->group, "%s", sc->group);
	g->p = p;
	g->committed = offset;
	return 0;
}

static int visit_group(void *ctx, const char *group)
{
	struct scrape *sc = ctx;
	struct group_file g;
	int rc;

	/* a group file being made, or damaged: leave it out of this scrape */
	if (group_open(sc->d->groupsfd, group, false, &g) < 0)
		return 0;
	sc->group = group;
	rc = group_foreach(&g, add_commit, sc);
	group_close(&g);
	return rc;
}

static int by_group(const void *a, const void *b)
{
	const struct gsnap *x = a, *y = b;
	int c = strcmp(x->group, y->group);

	return c ? c : by_name(x->p, y->p);
}

static int read_groups(struct scrape *sc)
{
	int rc;

	if (!sc->nparts)
		return 0;
	sc->by_key = malloc(sc->nparts * sizeof *sc->by_key);
	if (!sc->by_key)
		return -ENOMEM;
	for (size_t i = 0; i < sc->nparts; i++)
		sc->by_key[i] = &sc->parts[i];
	qsort(sc->by_key, sc->nparts, sizeof *sc->by_key, by_key);
	rc = shmbus_group_list(sc->d->bus, visit_group, sc);
	if (rc == -ENOMEM)
		return rc;
	if (sc->ngroups)
		qsort(sc->groups, sc->ngroups, sizeof *sc->groups, by_group);
	return 0;
}

static void scrape_free(struct scrape *sc)
{
	free(sc->parts);
	free(sc->by_key);
	free(sc->groups);
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */

enum vkind { V_U64, V_RATE };

struct family {
	const char *name, *type, *help;
	enum vkind kind;
	size_t off;
};

#define PF(name, type, kind, field, help) \
	{ "shmbus_partition_" name, type, help, kind, offsetof(struct psnap, field) }

static const struct family part_families[] = {
	PF("start_offset", "gauge", V_U64, start, "Lowest offset still readable."),
	PF("end_offset", "gauge", V_U64, end, "End offset: the offset the next record gets."),
	PF("records", "gauge", V_U64, records, "Records held: end offset minus start offset."),
	PF("mirrored_offset", "gauge", V_U64, mirrored,
	   "Offsets below it are held by min_mirrors mirrors ([mirror-listen])."),
	PF("records_appended_total", "counter", V_U64, end,
	   "Records ever appended (the end offset; aborted claims included)."),
	PF("appended_bytes_total", "counter", V_U64, tail,
	   "Bytes ever appended to the ring (the tail position), frames and padding."),
	PF("capacity_bytes", "gauge", V_U64, capacity, "Size of the data ring."),
	PF("append_rate_records_per_second", "gauge", V_RATE, rate_records,
	   "Records appended per second over the daemon's last tick."),
	PF("append_rate_bytes_per_second", "gauge", V_RATE, rate_bytes,
	   "Bytes appended per second over the daemon's last tick."),
	PF("aborted_claims_total", "counter", V_U64, aborted,
	   "Offsets of claims aborted by an unblocker (a producer died or stalled)."),
	PF("lapped_reads_total", "counter", V_U64, lapped,
	   "Reads that found their offset already overwritten."),
	PF("backpressure_blocks_total", "counter", V_U64, bp_blocked,
	   "Appends refused or delayed by a registered consumer (backpressure topics)."),
	PF("recoveries_total", "counter", V_U64, recoveries, "Recovery scans run on the partition."),
	PF("recovered_cut_offsets_total", "counter", V_U64, cut,
	   "Offsets cut from a damaged tail by recovery scans."),
	PF("registered_consumers", "gauge", V_U64, consumers,
	   "Consumers registered in the partition's slots (backpressure)."),
	PF("waiters", "gauge", V_U64, waiters,
	   "1 if a consumer sleeps on the partition's notify word, else 0."),
};

static void put_part_labels(struct buf *b, const struct psnap *s)
{
	put(b, "{");
	put_label(b, "topic", s->topic);
	put(b, ",partition=\"%u\"} ", s->partition);
}

static void render_parts(struct buf *b, const struct scrape *sc)
{
	for (size_t f = 0; f < sizeof part_families / sizeof part_families[0]; f++) {
		const struct family *fam = &part_families[f];

		put_family(b, fam->name, fam->type, fam->help);
		for (size_t i = 0; i < sc->nparts; i++) {
			const struct psnap *s = &sc->parts[i];
			const char *field = (const char *)s + fam->off;

			if (fam->kind == V_RATE && !s->has_rate)
				continue;
			put(b, "%s", fam->name);
			put_part_labels(b, s);
			if (fam->kind == V_RATE)
				put_double(b, *(const double *)(const void *)field);
			else
				put(b, "%llu\n", (unsigned long long)*(const uint64_t *)(const void *)field);
		}
	}
}

static void put_group_sample(struct buf *b, const char *name, const struct gsnap *g, uint64_t v)
{
	put(b, "%s{", name);
	put_label(b, "group", g->group);
	put(b, ",");
	put_label(b, "topic", g->p->topic);
	put(b, ",partition=\"%u\"} %llu\n", g->p->partition, (unsigned long long)v);
}

static void render_groups(struct buf *b, const struct scrape *sc)
{
	put_family(b, "shmbus_group_committed_offset", "gauge",
		   "Offset a consumer group committed: the next it will read.");
	for (size_t i = 0; i < sc->ngroups; i++)
		put_group_sample(b, "shmbus_group_committed_offset", &sc->groups[i],
				 sc->groups[i].committed);
	put_family(b, "shmbus_group_lag_records", "gauge",
		   "Records between a group's committed offset and the end offset.");
	for (size_t i = 0; i < sc->ngroups; i++) {
		const struct gsnap *g = &sc->groups[i];

		put_group_sample(b, "shmbus_group_lag_records", g,
				 g->p->end > g->committed ? g->p->end - g->committed : 0);
	}
}

/* The coordinator's view of each group (coordinator.c's copy). */
static void render_coordinated(struct buf *b)
{
	struct coord_stat *st = calloc(256, sizeof *st); /* scrapes may run at once */
	size_t n = st ? coord_stats(st, 256) : 0;

#define GROUP_FAMILY(metric, type, help, expr)                                       \
	put_family(b, metric, type, help);                                           \
	for (size_t i = 0; i < n; i++) {                                             \
		put(b, metric "{");                                                  \
		put_label(b, "group", st[i].name);                                   \
		put(b, "} %llu\n", (unsigned long long)(expr));                      \
	}
	GROUP_FAMILY("shmbus_group_members", "gauge", "Members of a coordinated group.",
		     st[i].members)
	GROUP_FAMILY("shmbus_group_epoch", "gauge", "A coordinated group's epoch.", st[i].epoch)
	GROUP_FAMILY("shmbus_group_rebalances_total", "counter",
		     "Target assignments of a group that moved a partition.", st[i].rebalances)
	GROUP_FAMILY("shmbus_group_members_lost_total", "counter",
		     "Members removed because they died, timed out or stopped polling.",
		     st[i].members_lost)
#undef GROUP_FAMILY
	put_family(b, "shmbus_group_state", "gauge",
		   "1 for a coordinated group's state (empty, reconciling, stable).");
	for (size_t i = 0; i < n; i++) {
		put(b, "shmbus_group_state{");
		put_label(b, "group", st[i].name);
		put(b, ",");
		put_label(b, "state", st[i].state);
		put(b, ",");
		put_label(b, "assignor", st[i].assignor);
		put(b, "} 1\n");
	}
	free(st);
}

#define DF(name, type, field, help) \
	{ "shmbus_daemon_" name, type, help, V_U64, offsetof(struct ctr_daemon, field) }

static const struct family daemon_families[] = {
	DF("ticks_total", "counter", ticks, "Supervision ticks run."),
	DF("partitions", "gauge", partitions, "Partitions under supervision."),
	DF("clients", "gauge", clients, "Registered clients (watched through a pidfd)."),
	DF("clients_gone_total", "counter", clients_gone,
	   "Registered clients whose exit was handled."),
	DF("unblocked_claims_total", "counter", unblocked,
	   "Stalled claims the daemon aborted."),
	DF("unblocked_offsets_total", "counter", unblocked_offsets,
	   "Offsets of the stalled claims the daemon aborted."),
	DF("retention_moves_total", "counter", retention_moves,
	   "Times time retention moved a partition's start."),
	DF("retired_offsets_total", "counter", retired, "Offsets retired by time retention."),
	DF("flushes_total", "counter", flushes, "Flushes of partitions on a disk root."),
	DF("flush_errors_total", "counter", flush_errors, "Flushes that failed."),
	DF("control_requests_total", "counter", control_requests,
	   "Requests served on the control socket."),
	DF("control_errors_total", "counter", control_errors,
	   "Control requests malformed or refused."),
	DF("topics_created_total", "counter", topics_created, "Topics created by the daemon."),
	DF("topics_deleted_total", "counter", topics_deleted, "Topics deleted by the daemon."),
	DF("recovery_partitions_total", "counter", rec_partitions,
	   "Partitions found at start-up."),
	DF("recovery_recovered_total", "counter", rec_recovered,
	   "Partitions recovered (checked and repaired) at start-up."),
	DF("recovery_in_use_total", "counter", rec_in_use,
	   "Partitions left alone at start-up because processes had them mapped."),
	DF("recovery_failed_total", "counter", rec_failed, "Partitions whose recovery failed."),
	DF("recovery_records_total", "counter", rec_frames,
	   "Records checked by start-up recovery."),
	DF("recovery_aborted_total", "counter", rec_aborted,
	   "Claims of dead producers aborted by start-up recovery."),
	DF("recovery_cut_offsets_total", "counter", rec_cut,
	   "Offsets cut from damaged tails by start-up recovery."),
	DF("recovery_cut_bytes_total", "counter", rec_cut_bytes,
	   "Bytes cut from damaged tails by start-up recovery."),
	DF("recovery_rebuilt_total", "counter", rec_rebuilt,
	   "Partitions whose index and claim word recovery rebuilt from the data."),
	DF("recovery_status_repaired_total", "counter", rec_status_repaired,
	   "Partitions whose status word was set right from the bus directory (start-up and tick)."),
	DF("rate_entries_missing", "gauge", rates_full,
	   "Partitions with no rate: the counters file's table is full."),
};

static void put_gauge(struct buf *b, const char *name, const char *help, double v)
{
	put_family(b, name, "gauge", help);
	put(b, "%s ", name);
	put_double(b, v);
}

static void render_daemon(struct buf *b, const struct scrape *sc)
{
	const struct ctr_daemon *v = &sc->daemon;
	int64_t now = real_ns();
	bool up = v->state == CTR_STATE_RUNNING && !sc->daemon_torn && ctr_heartbeat_fresh(v->heartbeat_ns, v->tick_ns, now);

	put_gauge(b, "shmbus_daemon_up", "1 if the daemon's supervision loop ticked recently, else 0.",
		  up ? 1 : 0);
	put_family(b, "shmbus_daemon_info", "gauge", "The daemon's version and root (always 1).");
	put(b, "shmbus_daemon_info{version=\"%llu.%llu.%llu\",",
	    (unsigned long long)(v->version >> 16), (unsigned long long)(v->version >> 8 & 0xff),
	    (unsigned long long)(v->version & 0xff));
	put_label(b, "root", shmbus_root(sc->d->bus));
	put(b, "} 1\n");
	put_gauge(b, "shmbus_daemon_start_time_seconds", "When the daemon started (Unix time).",
		  (double)v->started_ns / 1e9);
	put_gauge(b, "shmbus_daemon_uptime_seconds", "Seconds since the daemon started.",
		  (double)(now - v->started_ns) / 1e9);
	put_gauge(b, "shmbus_daemon_heartbeat_age_seconds",
		  "Seconds since the daemon's last supervision tick.",
		  (double)(now - v->heartbeat_ns) / 1e9);
	for (size_t f = 0; f < sizeof daemon_families / sizeof daemon_families[0]; f++) {
		const struct family *fam = &daemon_families[f];

		put_family(b, fam->name, fam->type, fam->help);
		put(b, "%s %llu\n", fam->name,
		    (unsigned long long)*(const uint64_t *)(const void *)((const char *)v + fam->off));
	}
}

/* [kernel-events]: only while the source runs (kevents.c) */
static void render_kevents(struct buf *b, struct daemon *d)
{
	struct kevents_stats st;

	kevents_stats(d, &st);
	if (!st.running)
		return;
	put_family(b, "shmbus_kevents_records_total", "counter",
		   "Kernel events appended to the [kernel-events] topic.");
	put(b, "shmbus_kevents_records_total %llu\n", (unsigned long long)st.records);
	put_family(b, "shmbus_kevents_dropped_total", "counter",
		   "Kernel events lost: where=\"kernel\" the ring buffer was full, "
		   "where=\"publish\" the topic refused them.");
	put(b, "shmbus_kevents_dropped_total{where=\"kernel\"} %llu\n",
	    (unsigned long long)st.dropped_kernel);
	put(b, "shmbus_kevents_dropped_total{where=\"publish\"} %llu\n",
	    (unsigned long long)st.dropped_publish);
}

/* ------------------------------------------------------------------ */
/* Mirroring (docs/metrics.md "Mirroring")                             */

#define MIRROR_PARTS_MAX 4096

static void put_mirror_labels(struct buf *b, const char *mirror, const char *source)
{
	put(b, "{");
	put_label(b, "mirror", mirror);
	put(b, ",");
	put_label(b, "source", source);
}

/* The [mirror "NAME"] sections: how many there are. */
static size_t render_mirror_sections(struct buf *b)
{
	struct mirror_stats m[64];
	size_t n = mirror_sink_mirrors(m, 64);

	if (n > 64)
		n = 64;
	if (n == 0)
		return 0;
	put_family(b, "shmbus_mirror_connected", "gauge",
		   "1 if the mirror is connected to its source and streaming, else 0.");
	for (size_t i = 0; i < n; i++) {
		put(b, "shmbus_mirror_connected");
		put_mirror_labels(b, m[i].mirror, m[i].source);
		put(b, "} %d\n", m[i].connected ? 1 : 0);
	}
	put_family(b, "shmbus_mirror_reconnects_total", "counter",
		   "Connections to the source lost or refused, and tried again.");
	for (size_t i = 0; i < n; i++) {
		put(b, "shmbus_mirror_reconnects_total");
		put_mirror_labels(b, m[i].mirror, m[i].source);
		put(b, "} %llu\n", (unsigned long long)m[i].reconnects);
	}
	return n;
}

#define MPF(name, type, kind, field, help) \
	{ "shmbus_mirror_" name, type, help, kind, offsetof(struct mirror_part_stats, field) }

static const struct family mirror_families[] = {
	MPF("end_offset", "gauge", V_U64, end, "The replica's end offset."),
	MPF("source_end_offset", "gauge", V_U64, source_end,
	    "The source's end offset, as its last DATA said."),
	MPF("lag_records", "gauge", V_U64, lag_records,
	    "Offsets the replica lacks: the source's end less the replica's."),
	MPF("lag_seconds", "gauge", V_RATE, lag_seconds,
	    "How long ago the replica last held all its source was known to hold (0: it does)."),
	MPF("gaps_total", "counter", V_U64, gaps,
	    "Gaps recorded in the replica: offsets the source no longer held when asked."),
	MPF("gap_offsets_total", "counter", V_U64, gap_offsets, "Offsets those gaps cover."),
	MPF("received_bytes_total", "counter", V_U64, bytes,
	    "Frame bytes received and appended since shmbusd started."),
	MPF("received_records_total", "counter", V_U64, records,
	    "Offsets received and appended (records and aborted ranges) since shmbusd started."),
};

static void put_mirror_part_labels(struct buf *b, const struct mirror_part_stats *p)
{
	put_mirror_labels(b, p->mirror, p->source);
	put(b, ",");
	put_label(b, "topic", p->topic);
	put(b, ",partition=\"%u\"", p->partition);
}

static void render_mirror_parts(struct buf *b, const struct mirror_part_stats *p, size_t n)
{
	for (size_t f = 0; f < sizeof mirror_families / sizeof mirror_families[0]; f++) {
		const struct family *fam = &mirror_families[f];

		put_family(b, fam->name, fam->type, fam->help);
		for (size_t i = 0; i < n; i++) {
			const char *field = (const char *)&p[i] + fam->off;

			put(b, "%s", fam->name);
			put_mirror_part_labels(b, &p[i]);
			put(b, "} ");
			if (fam->kind == V_RATE)
				put_double(b, *(const double *)(const void *)field);
			else
				put(b, "%llu\n", (unsigned long long)*(const uint64_t *)(const void *)field);
		}
	}
	put_family(b, "shmbus_mirror_state", "gauge",
		   "1 for a mirrored partition's state (streaming, connecting, stopped).");
	for (size_t i = 0; i < n; i++) {
		put(b, "shmbus_mirror_state");
		put_mirror_part_labels(b, &p[i]);
		put(b, ",");
		put_label(b, "state", p[i].state);
		put(b, "} 1\n");
	}
}

static void render_mirror_source(struct buf *b)
{
	struct mirror_source_stats st;

	mirror_source_stats(&st);
	if (!st.listening)
		return;
#define SOURCE_FAMILY(metric, type, help, v)                                  \
	put_family(b, "shmbus_mirror_source_" metric, type, help);            \
	put(b, "shmbus_mirror_source_" metric " %llu\n", (unsigned long long)(v));
	SOURCE_FAMILY("connections", "gauge", "Mirrors connected to [mirror-listen] now.",
		      st.connections)
	SOURCE_FAMILY("connections_total", "counter",
		      "Mirror connections that passed the handshake.", st.accepted)
	SOURCE_FAMILY("refused_total", "counter",
		      "Mirror connections refused: too many, no HELLO in time, a bad HELLO.",
		      st.refused)
	SOURCE_FAMILY("sent_bytes_total", "counter", "Frame bytes sent to mirrors in DATA.",
		      st.bytes)
	SOURCE_FAMILY("sent_records_total", "counter",
		      "Offsets sent to mirrors in DATA (records and aborted ranges).", st.records)
	SOURCE_FAMILY("gaps_total", "counter",
		      "GAPs sent: a mirror asked for offsets no longer held here.", st.gaps)
#undef SOURCE_FAMILY
}

/* The TLS material of the mirror sections: renewals on SIGHUP and each
 * certificate's end (mirror_certs.c); only where a section has TLS. */
static void render_tls(struct buf *b)
{
	struct mirror_tls_stats st; /* 6 KiB: on the metrics thread's stack */

	mirror_tls_stats(&st);
	if (!st.n && !st.failures)
		return;
	put_family(b, "shmbus_daemon_tls_reloads_total", "counter",
		   "SIGHUPs that renewed the mirror sections' TLS material.");
	put(b, "shmbus_daemon_tls_reloads_total %llu\n", (unsigned long long)st.reloads);
	put_family(b, "shmbus_daemon_tls_reload_failures_total", "counter",
		   "SIGHUPs whose TLS files failed their checks: the old material was kept.");
	put(b, "shmbus_daemon_tls_reload_failures_total %llu\n", (unsigned long long)st.failures);
	put_family(b, "shmbus_daemon_tls_reloaded_timestamp_seconds", "gauge",
		   "When the TLS material was last renewed (0: not since the start).");
	put(b, "shmbus_daemon_tls_reloaded_timestamp_seconds %lld\n", (long long)st.reloaded_at);
	put_family(b, "shmbus_daemon_tls_cert_expiry_timestamp_seconds", "gauge",
		   "When the certificate a mirror section uses ends (its notAfter).");
	for (size_t i = 0; i < st.n; i++) {
		if (!st.certs[i].not_after)
			continue; /* a pre-shared key */
		put(b, "shmbus_daemon_tls_cert_expiry_timestamp_seconds{");
		put_label(b, "section", st.certs[i].section);
		put(b, "} %lld\n", (long long)st.certs[i].not_after);
	}
}

/* Group offsets moved back by cuts (group_cut.c, format.md §14). */
static void render_group_cuts(struct buf *b)
{
	put_family(b, "shmbus_daemon_group_offsets_cut_total", "counter",
		   "Committed group offsets moved back to a partition's end that was cut back.");
	put(b, "shmbus_daemon_group_offsets_cut_total %llu\n",
	    (unsigned long long)groups_cut_moved());
}

/* [mirror-listen] and [mirror "NAME"]: only what runs. */
static void render_mirrors(struct buf *b)
{
	struct mirror_part_stats *p;
	size_t n;

	render_mirror_source(b);
	if (!render_mirror_sections(b))
		return;
	p = calloc(MIRROR_PARTS_MAX, sizeof *p);
	if (!p) {
		b->failed = true;
		return;
	}
	n = mirror_sink_stats(p, MIRROR_PARTS_MAX);
	render_mirror_parts(b, p, n < MIRROR_PARTS_MAX ? n : MIRROR_PARTS_MAX);
	free(p);
}

/* The whole exposition, or NULL (out of memory). */
char *exposition_render(struct daemon *d, const struct ctr_file *ctr, size_t *ret_len)
{
	struct scrape sc = { .d = d, .ctr = ctr };
	struct buf b = { 0 };

	if (snapshot_parts(&sc) < 0 || read_groups(&sc) < 0) {
		scrape_free(&sc);
		return NULL;
	}
	read_rates(&sc);
	sc.daemon_torn = ctr_daemon_read(ctr, &sc.daemon) != 0;
	render_daemon(&b, &sc);
	render_kevents(&b, d);
	render_group_cuts(&b);
	render_tls(&b);
	render_mirrors(&b);
	render_parts(&b, &sc);
	render_groups(&b, &sc);
	render_coordinated(&b);
	scrape_free(&sc);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	*ret_len = b.len;
	return b.p;
}

