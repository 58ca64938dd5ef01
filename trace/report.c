/*
 * report.c - the report of each interval: per (topic, partition) the
 * rates, the append -> delivery latency histogram with its p50 and p99,
 * and the events that name who caused an abort, a stall, a lap or a
 * backpressure block.  As a table (redrawn in place on a terminal, or
 * appended for a log) or as one JSON object per interval.
 *
 * The BPF map holds counts since the start; each interval is the
 * difference from the previous reading, so nothing is lost between a
 * read and a reset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>

#include "trace_int.h"

#define MAX_EVENTS 64 /* printed per interval; the rest are counted */

struct part_seen {
	struct shmbus_trace_key key;
	struct shmbus_trace_counts prev;
};

struct report {
	struct report_opts o;
	struct part_seen *parts;
	size_t nparts;
	struct shmbus_trace_event events[MAX_EVENTS];
	unsigned long long repeats[MAX_EVENTS]; /* events like it (same kind, place, pids) */
	size_t nevents;
	unsigned long long more_events, lost;
};

struct report *report_new(const struct report_opts *o)
{
	struct report *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->o = *o;
	r->parts = calloc(TRACE_MAX_PARTS, sizeof *r->parts);
	if (!r->parts) {
		free(r);
		return NULL;
	}
	return r;
}

void report_free(struct report *r)
{
	if (r)
		free(r->parts);
	free(r);
}

static bool wanted(const struct report *r, const char *topic)
{
	return !r->o.topic || !strcmp(r->o.topic, topic);
}

int report_event(void *ctx, void *data, size_t len)
{
	struct report *r = ctx;
	struct shmbus_trace_event e;

	/* the ring is mapped read-only: terminate the strings of a copy */
	if (len < sizeof e)
		return 0;
	memcpy(&e, data, sizeof e);
	e.topic[TRACE_TOPIC_MAX - 1] = e.comm[TRACE_COMM_MAX - 1] = '\0';
	e.other_comm[TRACE_COMM_MAX - 1] = e.group[TRACE_TOPIC_MAX - 1] = '\0';
	if (e.kind != TRACE_REBALANCE && !wanted(r, e.topic))
		return 0;
	/* a producer blocked a thousand times is one line, with its count */
	for (size_t i = 0; i < r->nevents; i++) {
		const struct shmbus_trace_event *o = &r->events[i];

		if (o->kind == e.kind && o->partition == e.partition && o->pid == e.pid &&
		    o->other_pid == e.other_pid && !strcmp(o->topic, e.topic) &&
		    !strcmp(o->group, e.group)) {
			r->repeats[i]++;
			return 0;
		}
	}
	if (r->nevents < MAX_EVENTS) {
		r->repeats[r->nevents] = 1;
		r->events[r->nevents++] = e;
	} else {
		r->more_events++;
	}
	return 0;
}

void report_lost(struct report *r, unsigned long long n)
{
	r->lost = n;
}

/* The interval's counts of one partition (cur - prev), prev := cur */
static struct part_seen *advance(struct report *r, const struct shmbus_trace_key *k,
				 const struct shmbus_trace_counts *cur,
				 struct shmbus_trace_counts *d)
{
	struct part_seen *s = NULL;
	const unsigned long long *c = (const void *)cur;
	unsigned long long *p, *out = (void *)d;

	for (size_t i = 0; i < r->nparts && !s; i++)
		if (!memcmp(&r->parts[i].key, k, sizeof *k))
			s = &r->parts[i];
	if (!s) {
		if (r->nparts == TRACE_MAX_PARTS)
			return NULL;
		s = &r->parts[r->nparts++];
		s->key = *k;
	}
	p = (void *)&s->prev;
	for (size_t i = 0; i < sizeof *d / sizeof *out; i++)
		out[i] = c[i] - p[i];
	s->prev = *cur;
	return s;
}

static unsigned long long hist_count(const struct shmbus_trace_counts *d)
{
	unsigned long long n = 0;

	for (int i = 0; i < TRACE_HIST_SLOTS; i++)
		n += d->hist[i];
	return n;
}

/* The upper bound (ns) of the bucket holding quantile q; 0 if empty.
 * Bucket s holds [2^s, 2^(s+1)) (bucket 0 also 0). */
static unsigned long long quantile(const struct shmbus_trace_counts *d, double q)
{
	unsigned long long n = hist_count(d), need, acc = 0;

	if (!n)
		return 0;
	need = (unsigned long long)(q * (double)n + 0.999999);
	if (need < 1)
		need = 1;
	for (int i = 0; i < TRACE_HIST_SLOTS; i++) {
		acc += d->hist[i];
		if (acc >= need)
			return 1ULL << (i + 1);
	}
	return 1ULL << TRACE_HIST_SLOTS;
}

static const char *kind_name(unsigned kind)
{
	switch (kind) {
	case TRACE_ABORT: return "abort";
	case TRACE_UNBLOCK: return "unblock";
	case TRACE_STALL: return "stall";
	case TRACE_LAP: return "lap";
	case TRACE_BP_BLOCKED: return "bp_blocked";
	case TRACE_REBALANCE: return "group_rebalance";
	case TRACE_ASSIGN: return "group_assign";
	default: return "unknown";
	}
}

/* A JSON string of untrusted bytes (a topic name, a comm) */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* Printable (no control characters) copy of a comm or topic for the table */
static const char *plain(const char *s, char *buf, size_t sz)
{
	size_t i = 0;

	for (; s[i] && i + 1 < sz; i++)
		buf[i] = (s[i] < 0x20 || s[i] > 0x7e) ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

static void json_part(FILE *f, const struct shmbus_trace_key *k,
		      const struct shmbus_trace_counts *d, double secs, bool first)
{
	unsigned long long n = hist_count(d);

	fputs(first ? "" : ",", f);
	fputs("{\"topic\":", f);
	json_str(f, k->topic);
	fprintf(f, ",\"partition\":%u,\"appends\":%llu,\"commits\":%llu,\"deliveries\":%llu,"
		"\"append_bytes\":%llu,\"appends_per_s\":%.1f,\"deliveries_per_s\":%.1f,"
		"\"bytes_per_s\":%.1f,\"aborts\":%llu,\"unblocked\":%llu,\"stalls\":%llu,"
		"\"laps\":%llu,\"resets\":%llu,\"waits\":%llu,\"wakes\":%llu,\"bp_blocked\":%llu,",
		k->partition, d->appends, d->commits, d->deliveries, d->append_bytes,
		d->appends / secs, d->deliveries / secs, d->append_bytes / secs, d->aborts,
		d->unblocked, d->stalls, d->laps, d->resets, d->waits, d->wakes, d->bp_blocked);
	fprintf(f, "\"latency\":{\"count\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"hist\":[", n,
		quantile(d, 0.5), quantile(d, 0.99));
	for (int i = 0, any = 0; i < TRACE_HIST_SLOTS; i++)
		if (d->hist[i])
			fprintf(f, "%s{\"ge_ns\":%llu,\"lt_ns\":%llu,\"count\":%llu}", any++ ? "," : "",
				i ? 1ULL << i : 0, 1ULL << (i + 1), d->hist[i]);
	fputs("]}}", f);
}

static void json_events(FILE *f, const struct report *r)
{
	fputs("],\"events\":[", f);
	for (size_t i = 0; i < r->nevents; i++) {
		const struct shmbus_trace_event *e = &r->events[i];

		fprintf(f, "%s{\"kind\":\"%s\",\"topic\":", i ? "," : "", kind_name(e->kind));
		json_str(f, e->topic);
		fprintf(f, ",\"partition\":%u,\"offset\":%llu,\"records\":%llu,\"pid\":%d,\"comm\":",
			e->partition, e->offset, e->records, e->pid);
		json_str(f, e->comm);
		fprintf(f, ",\"other_pid\":%d,\"other_comm\":", e->other_pid);
		json_str(f, e->other_comm);
		fputs(",\"group\":", f);
		json_str(f, e->group);
		fprintf(f, ",\"count\":%llu}", r->repeats[i]);
	}
	fprintf(f, "],\"more_events\":%llu,\"lost_events\":%llu}\n", r->more_events, r->lost);
}

/* 1234 -> "1234", 1234567 -> "1.23M" */
static const char *human(double v, char *buf, size_t sz)
{
	if (v >= 1e9)
		snprintf(buf, sz, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, sz, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(buf, sz, "%.1fk", v / 1e3);
	else
		snprintf(buf, sz, "%.0f", v);
	return buf;
}

static const char *ns_text(unsigned long long ns, char *buf, size_t sz)
{
	if (!ns)
		snprintf(buf, sz, "-");
	else if (ns < 10000)
		snprintf(buf, sz, "%lluns", ns);
	else if (ns < 10000000)
		snprintf(buf, sz, "%lluus", ns / 1000);
	else
		snprintf(buf, sz, "%llums", ns / 1000000);
	return buf;
}

static void text_part(FILE *f, const struct shmbus_trace_key *k,
		      const struct shmbus_trace_counts *d, double secs)
{
	char name[300], t[5][24], topic[TRACE_TOPIC_MAX];

	snprintf(name, sizeof name, "%s/%u", plain(k->topic, topic, sizeof topic), k->partition);
	fprintf(f, "%-24s %9s %9s %9s %8s %8s %6llu %7llu %6llu %5llu %5llu\n", name,
		human(d->appends / secs, t[0], sizeof t[0]),
		human(d->deliveries / secs, t[1], sizeof t[1]),
		human(d->append_bytes / secs, t[2], sizeof t[2]),
		ns_text(quantile(d, 0.5), t[3], sizeof t[3]),
		ns_text(quantile(d, 0.99), t[4], sizeof t[4]), d->aborts, d->unblocked, d->stalls,
		d->laps, d->bp_blocked);
}

static void text_hist(FILE *f, const struct shmbus_trace_key *k,
		      const struct shmbus_trace_counts *d)
{
	unsigned long long n = hist_count(d), max = 0;
	char lo[24], hi[24], topic[TRACE_TOPIC_MAX];
	int first = -1, last = -1;

	if (!n)
		return;
	for (int i = 0; i < TRACE_HIST_SLOTS; i++)
		if (d->hist[i]) {
			if (first < 0)
				first = i;
			last = i;
			max = d->hist[i] > max ? d->hist[i] : max;
		}
	fprintf(f, "  %s/%u append -> delivery latency, %llu records:\n",
		plain(k->topic, topic, sizeof topic), k->partition, n);
	for (int i = first; i <= last; i++) {
		int bar = (int)(d->hist[i] * 40 / max);

		fprintf(f, "    %8s .. %-8s %10llu |%-40.*s|\n", ns_text(i ? 1ULL << i : 1, lo, sizeof lo),
			ns_text(1ULL << (i + 1), hi, sizeof hi), d->hist[i], bar,
			"****************************************");
	}
}

static void text_events(FILE *f, const struct report *r)
{
	char topic[TRACE_TOPIC_MAX], group[TRACE_TOPIC_MAX], c1[TRACE_COMM_MAX], c2[TRACE_COMM_MAX];

	for (size_t i = 0; i < r->nevents; i++) {
		const struct shmbus_trace_event *e = &r->events[i];

		if (r->repeats[i] > 1)
			fprintf(f, "  %llu times, the first:\n", r->repeats[i]);
		plain(e->topic, topic, sizeof topic);
		plain(e->comm, c1, sizeof c1);
		plain(e->other_comm[0] ? e->other_comm : "?", c2, sizeof c2);
		switch (e->kind) {
		case TRACE_ABORT:
			fprintf(f, "  abort    %s/%u offset %llu: %llu record(s) aborted by their producer, "
				"pid %d (%s)\n", topic, e->partition, e->offset, e->records, e->pid, c1);
			break;
		case TRACE_UNBLOCK:
			fprintf(f, "  unblock  %s/%u offset %llu: %llu record(s) of a stalled claim of pid "
				"%d (%s) aborted by pid %d (%s)\n", topic, e->partition, e->offset,
				e->records, e->other_pid, c2, e->pid, c1);
			break;
		case TRACE_STALL:
			fprintf(f, "  stall    %s/%u offset %llu: pid %d (%s) waits on the claim of living "
				"pid %d (%s)\n", topic, e->partition, e->offset, e->pid, c1,
				e->other_pid, c2);
			break;
		case TRACE_REBALANCE:
			fprintf(f, "  rebalance group %s: epoch %llu, %llu member(s) (by pid %d, %s)\n",
				plain(e->group, group, sizeof group), e->offset, e->records, e->pid, c1);
			break;
		case TRACE_ASSIGN:
			fprintf(f, "  assign   %s/%u to group %s's member pid %d, epoch %llu\n", topic,
				e->partition, plain(e->group, group, sizeof group), e->other_pid,
				e->offset);
			break;
		case TRACE_LAP:
			fprintf(f, "  lap      %s/%u offset %llu: consumer pid %d (%s) was lapped\n",
				topic, e->partition, e->offset, e->pid, c1);
			break;
		default:
			fprintf(f, "  blocked  %s/%u: producer pid %d (%s) waits for room behind "
				"consumer pid %d\n", topic, e->partition, e->pid, c1, e->other_pid);
		}
	}
	if (r->more_events || r->lost)
		fprintf(f, "  (%llu more events; %llu lost)\n", r->more_events, r->lost);
}

static void header(FILE *f, const struct report *r, double secs)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;

	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", localtime_r(&now, &tm));
	if (r->o.json) {
		fprintf(f, "{\"time\":\"%s\",\"interval_s\":%.3f,\"partitions\":[", when, secs);
		return;
	}
	if (r->o.live)
		fputs("\033[H\033[2J", f);
	fprintf(f, "shmbus trace  %s  interval %.2f s\n", when, secs);
	fprintf(f, "%-24s %9s %9s %9s %8s %8s %6s %7s %6s %5s %5s\n", "TOPIC/PARTITION",
		"APPEND/s", "DELIVER/s", "BYTES/s", "P50", "P99", "ABORTS", "UNBLOCK", "STALLS",
		"LAPS", "BP");
}

void report_interval(struct report *r, int counts_fd, double secs)
{
	struct shmbus_trace_key key, next, *prev = NULL;
	static struct shmbus_trace_key keys[TRACE_MAX_PARTS];
	static struct shmbus_trace_counts deltas[TRACE_MAX_PARTS];
	struct shmbus_trace_counts cur;
	size_t n = 0;
	FILE *f = stdout;

	if (secs <= 0)
		secs = 1e-3;
	while (n < TRACE_MAX_PARTS && bpf_map_get_next_key(counts_fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(counts_fd, &key, &cur) != 0)
			continue;
		key.topic[TRACE_TOPIC_MAX - 1] = '\0';
		if (!wanted(r, key.topic) || !advance(r, &key, &cur, &deltas[n]))
			continue;
		keys[n++] = key;
	}
	header(f, r, secs);
	for (size_t i = 0; i < n; i++)
		if (r->o.json)
			json_part(f, &keys[i], &deltas[i], secs, i == 0);
		else
			text_part(f, &keys[i], &deltas[i], secs);
	if (r->o.json) {
		json_events(f, r);
	} else {
		for (size_t i = 0; i < n; i++)
			text_hist(f, &keys[i], &deltas[i]);
		text_events(f, r);
		fputc('\n', f);
	}
	fflush(f);
	r->nevents = 0;
	r->more_events = 0;
}
