/*
 * supervise.c - the partitions under supervision, and what a tick does
 * to each: sample rates, abort claims stuck longer than the unblock
 * timeout, flush a disk root.  Records older than their topic's retention
 * are retired on a timer of their own, whose period follows the shortest
 * retention rather than the tick (a 5 s tick must not keep 200 ms records
 * for 5 s).
 *
 * The table of partitions is rebuilt when the bus directory's generation
 * changes and published with rcu_assign_pointer, so the metrics thread
 * reads it without a lock; a replaced table (and the partitions it alone
 * held) is freed by call_rcu after a grace period.
 *
 * Stuck claims are found through the writers' slots (format.md §4): a
 * slot that stays busy with the same announcement for the unblock
 * timeout belongs to a producer stuck (or dead) inside its claim; the
 * claim is aborted with PART_UNBLOCK_FORCE, so consumers go on.  A slot
 * the producer still holds keeps its claim from being lapped (its late
 * writes land in an aborted frame, harmlessly).  When a watched writer
 * dies, only the frames it marked with its pid are aborted at once: its
 * last announcement may be a claim word another producer won, so a
 * never-marked hole is left to the readers' unblock timeout.
 *
 * Status words are checked while the daemon runs, not only at start-up
 * (format.md §8): a byte damaged in a partition's status word (DELETED,
 * REPLICA) would fail every read ("topic was deleted") or send
 * ("read-only") until a restart.  Each tick looks at a slice of the
 * table, at least 1/STATUS_PASS_TICKS of it, with one load per
 * partition and no lock; a word that differs from what the directory
 * says on two looks in a row (a delete, a promote or a conversion in
 * flight is over by the second) is repaired by the function start-up
 * recovery uses, under the admin lock, which the tick never waits for.
 */
#include "shmbusd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <urcu/call-rcu.h>

#include "../shm/append.h"
#include "../util/clock.h"
#include "../util/error.h"
#include "../util/proc.h"
#include "../shm/read.h"
#include "../shm/stats.h"
#include "../shm/unblock.h"

/* Per partition, what the unblocker saw of each writer slot. */
struct slot_watch {
	uint64_t seq;
	int64_t since;
};

struct dpart_private {
	struct dpart pub;
	struct slot_watch slots[PART_MAX_WRITERS];
};

static struct dpart_private *priv(struct dpart *dp)
{
	return (struct dpart_private *)dp;
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

struct graveyard {
	struct rcu_head rcu;
	struct dtable *table;
	size_t n;
	struct dpart *dead[];
};

static void bury(struct rcu_head *head)
{
	struct graveyard *g = caa_container_of(head, struct graveyard, rcu);

	for (size_t i = 0; i < g->n; i++) {
		cache_put(g->dead[i]->m);
		free(g->dead[i]);
	}
	free(g->table);
	free(g);
}

static struct dpart *find(struct dtable *t, uint64_t topic_id, uint32_t partition)
{
	for (size_t i = 0; t && i < t->n; i++)
		if (t->parts[i]->topic_id == topic_id && t->parts[i]->partition == partition)
			return t->parts[i];
	return NULL;
}

static struct dpart *dpart_new(struct daemon *d, const struct bus_topic *t, uint32_t i)
{
	struct dpart_private *p = calloc(1, sizeof *p);
	struct dpart *dp = &p->pub;
	uint64_t next;

	if (!p)
		return NULL;
	if (cache_get(d->bus, t, i, &dp->m) < 0) {
		log_warn("cannot map partition %s/%u: %s", t->name, i, shmbus_errmsg());
		free(p);
		return NULL;
	}
	snprintf(dp->topic, sizeof dp->topic, "%s", t->name);
	dp->topic_id = t->id;
	dp->partition = i;
	dp->part = pmap_part(dp->m);
	part_ends(dp->part, &dp->flushed_tail, &next); /* flushed_next stays 0 */
	dp->flushed_ns = mono_ns();
	return dp;
}

/* Partitions of the new table that the old one did not have; the old
 * table's partitions missing from the new one go to the graveyard. */
static struct graveyard *diff(struct dtable *old, struct dtable *nt)
{
	struct graveyard *g = calloc(1, sizeof *g + (old ? old->n : 0) * sizeof g->dead[0]);

	if (!g)
		return NULL;
	g->table = old;
	for (size_t i = 0; old && i < old->n; i++)
		if (!find(nt, old->parts[i]->topic_id, old->parts[i]->partition))
			g->dead[g->n++] = old->parts[i];
	return g;
}

static size_t count_partitions(const struct bus_topic *topics, int n)
{
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += topics[i].partitions;
	return total;
}

/* Processes already writing or registered on a partition when we meet it
 * (a restarted daemon; clients that never said HELLO): watch them too, so
 * their exit releases what they hold at once. */
static void adopt(struct daemon *d, struct dpart *dp)
{
	struct part *p = dp->part;
	struct part_writer_ann a;

	for (uint64_t mask = part_writers_taken(p); mask; mask &= mask - 1) {
		(void)part_writer_read(p, __builtin_ctzll(mask), &a); /* a.pid either way */
		if (a.pid && (pid_t)a.pid != getpid())
			(void)clients_watch(d, (pid_t)a.pid);
	}
	for (int i = 0; i < PART_MAX_CONSUMERS; i++) {
		uint32_t pid = part_bp_pid(p, i);

		if (pid && (pid_t)pid != getpid())
			(void)clients_watch(d, (pid_t)pid);
	}
}

static void fill(struct daemon *d, struct dtable *nt, const struct bus_topic *topics, int n,
		 bool first)
{
	for (int i = 0; i < n; i++) {
		for (uint32_t k = 0; k < topics[i].partitions; k++) {
			struct dpart *dp = find(d->table, topics[i].id, k);

			if (!dp) {
				dp = dpart_new(d, &topics[i], k);
				if (!dp)
					continue;
				if (first)
					recovery_run(d, dp);
				adopt(d, dp);
			}
			dp->retention_ms = topics[i].retention_ms;
			dp->want_status = bus_topic_status(&topics[i]);
			nt->parts[nt->n++] = dp;
		}
	}
}

int supervise_refresh(struct daemon *d)
{
	uint64_t gen = dir_generation(&d->dir);
	bool first = d->table == NULL;
	struct bus_topic *topics;
	struct dtable *nt;
	struct graveyard *g;
	int n;

	if (d->table && d->table->dir_gen == gen)
		return 0;
	if (topics_creating(d))
		return 0; /* its partitions are being mapped off the loop (topics.c) */
	topics = malloc(sizeof *topics * BUS_MAX_TOPICS);
	if (!topics)
		return -ENOMEM;
	n = dir_list(&d->dir, topics, BUS_MAX_TOPICS);
	nt = calloc(1, sizeof *nt + count_partitions(topics, n) * sizeof nt->parts[0]);
	if (!nt) {
		free(topics);
		return -ENOMEM;
	}
	nt->dir_gen = gen;
	fill(d, nt, topics, n, first);
	free(topics);
	g = diff(d->table, nt);
	rcu_assign_pointer(d->table, nt);
	if (g)
		call_rcu(&g->rcu, bury);
	if (first)
		log_info("supervising %zu partition%s", nt->n, nt->n == 1 ? "" : "s");
	supervise_retention_timer(d);
	return 0;
}

void supervise_fini(struct daemon *d)
{
	struct dtable *t = d->table;
	struct graveyard *g;

	if (!t)
		return;
	rcu_assign_pointer(d->table, NULL);
	g = calloc(1, sizeof *g + t->n * sizeof g->dead[0]);
	if (g) {
		g->table = t;
		for (size_t i = 0; i < t->n; i++)
			g->dead[g->n++] = t->parts[i];
		call_rcu(&g->rcu, bury);
	}
	rcu_barrier();
}

/* ------------------------------------------------------------------ */
/* Stuck claims                                                        */

static void unstick(struct daemon *d, struct dpart *dp, int64_t now)
{
	struct part *p = dp->part;

	for (uint64_t mask = part_writers_taken(p); mask; mask &= mask - 1) {
		int i = __builtin_ctzll(mask);
		struct slot_watch *sw = &priv(dp)->slots[i];
		struct part_writer_ann a;
		bool ok = part_writer_read(p, i, &a);
		int64_t n;

		if (!ok || !a.busy || a.seq != sw->seq || !sw->since) {
			sw->seq = a.seq;
			sw->since = now;
			continue;
		}
		if (now - sw->since < d->cfg.unblock_timeout_ms * 1000000)
			continue;
		sw->since = now; /* one attempt per timeout */
		n = part_abort_claim(p, a.off, a.pos, 0);
		if (n < 0) {
			log_err("cannot abort the claim pid %u has held for over %lld ms: %s "
				"(`shmbus recover %s -p %u`, once its producers and consumers "
				"are stopped)", a.pid, (long long)d->cfg.unblock_timeout_ms,
				shm_errmsg(), dp->topic, dp->partition);
		} else if (n) {
			d->st.unblocked++;
			d->st.unblocked_offsets += n;
			log_warn("partition %s/%u: aborted %llu offset%s of a claim pid %u has held for "
				 "over %lld ms (from offset %llu)", dp->topic, dp->partition,
				 (unsigned long long)n, n == 1 ? "" : "s", a.pid,
				 (long long)d->cfg.unblock_timeout_ms, (unsigned long long)a.off);
		}
	}
}

void supervise_client_gone(struct daemon *d, pid_t pid)
{
	struct dtable *t = d->table;
	uint64_t aborted = 0, slots = 0;

	for (size_t k = 0; t && k < t->n; k++) {
		struct dpart *dp = t->parts[k];
		struct part *p = dp->part;

		for (uint64_t mask = part_writers_taken(p); mask; mask &= mask - 1) {
			int i = __builtin_ctzll(mask);
			struct part_writer_ann a;
			bool ok = part_writer_read(p, i, &a);
			int64_t n;

			if (a.pid != (uint32_t)pid)
				continue;
			/* a writer killed inside an announcement had no claim; one
			 * killed before its claim CAS (or after a failed one)
			 * announced a claim word another producer may have won:
			 * only frames marked with the dead pid are its own */
			n = ok && a.busy ? part_abort_claim(p, a.off, a.pos, pid) : 0;
			if (n < 0)
				log_err("cannot abort the claim of exited pid %d: %s (`shmbus "
					"recover %s -p %u`, once its producers and consumers are "
					"stopped)", (int)pid, shm_errmsg(), dp->topic, dp->partition);
			else
				aborted += (uint64_t)n;
			slots += part_writer_reap(p, i, (uint32_t)pid);
		}
		slots += (uint64_t)part_bp_reap(p);
		if (aborted)
			part_notify(p);
	}
	d->st.clients_gone++;
	if (aborted) {
		d->st.unblocked++;
		d->st.unblocked_offsets += aborted;
	}
	log_msg(aborted ? LOG_WARNING : LOG_DEBUG,
		"client pid %d exited: %llu claimed offset%s aborted, %llu slot%s freed", (int)pid,
		(unsigned long long)aborted, aborted == 1 ? "" : "s", (unsigned long long)slots,
		slots == 1 ? "" : "s");
}

/* ------------------------------------------------------------------ */
/* Retention, flush, rates                                             */

static void retire(struct daemon *d, struct dpart *dp)
{
	struct part *p = dp->part;
	struct part_cursor c;
	uint64_t n, from;

	if (dp->retention_ms <= 0)
		return;
	if (part_seek_time(p, &c, real_ns() - dp->retention_ms * 1000000) < 0)
		return;
	n = part_retire(p, c.off, &from);
	if (n) {
		d->st.retention_moves++;
		d->st.retired += n;
		log_debug("partition %s/%u: retention retired offsets %llu..%llu", dp->topic,
			  dp->partition, (unsigned long long)from, (unsigned long long)c.off - 1);
	}
}

#define RETENTION_STEPS 8                /* passes per shortest retention */
#define RETENTION_PERIOD_MIN_NS 5000000  /* and at most one per 5 ms */

/* How often to retire: every min(tick, shortest retention / 8), so a
 * record goes at most that long after it ages out; 0 without time
 * retention. */
static int64_t retention_period_ns(const struct daemon *d, const struct dtable *t)
{
	int64_t shortest = 0, period;

	for (size_t i = 0; t && i < t->n; i++) {
		int64_t ms = t->parts[i]->retention_ms;

		if (ms > 0 && (!shortest || ms < shortest))
			shortest = ms;
	}
	if (!shortest)
		return 0;
	period = shortest * 1000000 / RETENTION_STEPS;
	if (period > d->cfg.tick_ms * 1000000)
		period = d->cfg.tick_ms * 1000000;
	return period < RETENTION_PERIOD_MIN_NS ? RETENTION_PERIOD_MIN_NS : period;
}

void supervise_retention_timer(struct daemon *d)
{
	int64_t period = retention_period_ns(d, d->table);

	if (d->retention_fd < 0 || period == d->retention_period_ns)
		return;
	if (loop_timer_set(d->retention_fd, period) < 0) {
		log_err("cannot set the retention timer: %s; records are retired each tick",
			strerror(errno));
		return;
	}
	d->retention_period_ns = period;
	log_debug("time retention every %lld ms", (long long)(period / 1000000));
}

void supervise_retire(struct daemon *d)
{
	struct dtable *t = d->table;

	for (size_t i = 0; t && i < t->n; i++)
		if (!part_deleted(t->parts[i]->part))
			retire(d, t->parts[i]);
}

static int sync_range(void *base, uint64_t from, uint64_t len)
{
	uintptr_t a = (uintptr_t)base + from, page = a & ~(uintptr_t)4095;

	return msync((void *)page, len + (a - page), MS_SYNC);
}

/* Disk roots: write what was appended since the last flush.  Bytes of
 * claims still open are written again by the next flush: they change
 * after this one (their commit word, their payload). */
static void flush(struct daemon *d, struct dpart *dp, int64_t now)
{
	struct part *p = dp->part;
	bool by_time = d->cfg.flush_interval_ms &&
		       now - dp->flushed_ns >= d->cfg.flush_interval_ms * 1000000;
	uint64_t tail, next, keep, from, len;
	bool by_count;
	int rc = 0;

	part_ends(p, &tail, &next);
	keep = part_oldest_open_claim(p, tail); /* before the msync */
	by_count = d->cfg.flush_records && next - dp->flushed_next >= d->cfg.flush_records;
	if (d->on_tmpfs || tail == dp->flushed_tail || !(by_time || by_count))
		return;
	from = tail - dp->flushed_tail >= p->cap ? tail - p->cap : dp->flushed_tail;
	len = tail - from;
	if ((from & p->mask) + len <= p->cap) {
		rc = sync_range(p->data, from & p->mask, len);
	} else {
		rc = sync_range(p->data, from & p->mask, p->cap - (from & p->mask));
		rc |= sync_range(p->data, 0, (from + len) & p->mask);
	}
	rc |= sync_range(p->index, 0, p->icap * sizeof(uint64_t));
	rc |= sync_range(p->hdr, 0, PART_HEADER_SIZE);
	if (rc) {
		d->st.flush_errors++;
		log_err("partition %s/%u: flush failed: %s", dp->topic, dp->partition, strerror(errno));
		return;
	}
	d->st.flushes++;
	dp->flushed_tail = keep;
	dp->flushed_next = next;
	dp->flushed_ns = now;
}

static void sample(struct dpart *dp, int64_t now)
{
	uint64_t tail, next;

	part_ends(dp->part, &tail, &next);
	if (dp->last_ns && now > dp->last_ns) {
		double secs = (double)(now - dp->last_ns) / 1e9;

		dp->rate_records = (double)(next - dp->last_next) / secs;
		dp->rate_bytes = (double)(tail - dp->last_tail) / secs;
	}
	dp->last_next = next;
	dp->last_tail = tail;
	dp->last_ns = now;
}

/* ------------------------------------------------------------------ */
/* Status words                                                        */

#define STATUS_PASS_TICKS 8   /* every partition is looked at once per 8 ticks, */
#define STATUS_SLICE_MIN  512 /* or every tick up to 512 partitions */

/* One look at dp's status word; the repair on the second wrong look. */
static void status_look(struct daemon *d, struct dpart *dp)
{
	uint32_t faults = topic_status_faults(true, dp->want_status, part_status(dp->part));

	if (!faults || dp->part->readonly) {
		dp->status_suspect = false;
		return;
	}
	if (!dp->status_suspect) {
		dp->status_suspect = true; /* look again next pass: an operation may be under way */
		return;
	}
	if (recovery_status(d, dp, false) == -EWOULDBLOCK)
		return; /* the admin lock is held: the next pass tries again */
	dp->status_suspect = false;
}

static void status_slice(struct daemon *d, const struct dtable *t)
{
	size_t n = t ? t->n : 0, slice = (n + STATUS_PASS_TICKS - 1) / STATUS_PASS_TICKS;

	if (n == 0)
		return;
	if (slice < STATUS_SLICE_MIN)
		slice = STATUS_SLICE_MIN;
	if (slice > n)
		slice = n;
	for (size_t k = 0; k < slice; k++)
		status_look(d, t->parts[(d->status_next + k) % n]);
	d->status_next = (d->status_next + slice) % n;
}

void supervise_tick(struct daemon *d)
{
	struct dtable *t = d->table;
	int64_t now = mono_ns();

	status_slice(d, t); /* deleted ones too: a wrong DELETED mark is what it repairs */

	for (size_t i = 0; t && i < t->n; i++) {
		struct dpart *dp = t->parts[i];

		if (part_deleted(dp->part))
			continue;
		sample(dp, now);
		unstick(d, dp, now);
		if (d->retention_period_ns <= 0)
			retire(d, dp); /* the retention timer could not be set */
		flush(d, dp, now);
	}
}
