/*
 * report.c - reads the JSON lines the programs of bench/ wrote in one
 * run, and writes what a reader of the results needs: the machine and
 * the conditions of the run, every figure (median of the runs, with min
 * and max), the ratios of shmbus to the physical limits and to each peer
 * for every comparable row, what was skipped and why, and which figures
 * were disturbed by other tasks.  The same Markdown goes to stdout and
 * to --md (docs/bench/results.md); --plots DIR gets gnuplot data files
 * and a script (plots.gp) drawing the latency percentiles and the
 * throughput against record size into --png-dir.
 *
 * The input format is fixed by bench/common.c (one object per line, the
 * keys in a fixed order, strings escaped only for '"', '\\' and control
 * characters), so a small scanner reads it; a line it cannot read is
 * reported, never dropped silently.
 */
#include "../cli/measure.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MAX_RECS 600

struct rec {
	char prog[32], id[96], title[128], metric[32], unit[24], note[640], skip[640];
	double min, med, max, wall_s, others_ms, steal_ms;
	bool noisy, higher;
};

struct opts {
	const char *md, *plots, *png_dir, *cpus, *load, *command, *mode, *date;
	int runs;
};

static struct rec recs[MAX_RECS];
static int nrecs;

/* ------------------------------------------------------------------ */
/* Reading                                                             */

/* The value after "key": in line, or NULL. */
static const char *field(const char *line, const char *key)
{
	char pat[48];
	const char *p;

	snprintf(pat, sizeof pat, "\"%s\": ", key);
	p = strstr(line, pat);
	return p ? p + strlen(pat) : NULL;
}

static void get_str(const char *line, const char *key, char *buf, size_t len)
{
	const char *p = field(line, key);
	size_t n = 0;

	buf[0] = 0;
	if (!p || *p++ != '"')
		return;
	for (; *p && *p != '"' && n + 1 < len; p++) {
		if (*p == '\\' && p[1] == 'u') {
			buf[n++] = (char)strtol((char[]){ p[4], p[5], 0 }, NULL, 16);
			p += 5;
		} else {
			p += *p == '\\';
			buf[n++] = *p;
		}
	}
	buf[n] = 0;
}

static double get_num(const char *line, const char *key)
{
	const char *p = field(line, key);

	return p ? strtod(p, NULL) : NAN;
}

static void read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0;

	if (!f) {
		fprintf(stderr, "report: cannot read %s: %s\n", path, strerror(errno));
		return;
	}
	while (getline(&line, &cap, f) > 0 && nrecs < MAX_RECS) {
		struct rec *r = &recs[nrecs];
		char better[16];

		lineno++;
		get_str(line, "id", r->id, sizeof r->id);
		if (!r->id[0]) {
			fprintf(stderr, "report: %s:%d: not a result line, ignored\n", path, lineno);
			continue;
		}
		get_str(line, "prog", r->prog, sizeof r->prog);
		get_str(line, "title", r->title, sizeof r->title);
		get_str(line, "metric", r->metric, sizeof r->metric);
		get_str(line, "unit", r->unit, sizeof r->unit);
		get_str(line, "note", r->note, sizeof r->note);
		get_str(line, "skip", r->skip, sizeof r->skip);
		get_str(line, "better", better, sizeof better);
		r->higher = !strcmp(better, "higher");
		r->min = get_num(line, "min");
		r->med = get_num(line, "median");
		r->max = get_num(line, "max");
		r->wall_s = get_num(line, "wall_s");
		r->others_ms = get_num(line, "others_ms");
		r->steal_ms = get_num(line, "steal_ms");
		r->noisy = field(line, "noisy") && !strncmp(field(line, "noisy"), "true", 4);
		nrecs++;
	}
	free(line);
	fclose(f);
}

static const struct rec *find(const char *id, const char *metric)
{
	for (int i = 0; i < nrecs; i++)
		if (!strcmp(recs[i].id, id) && !recs[i].skip[0] && !strcmp(recs[i].metric, metric))
			return &recs[i];
	return NULL;
}

static const struct rec *find_skip(const char *id)
{
	for (int i = 0; i < nrecs; i++)
		if (recs[i].skip[0] && (!strcmp(recs[i].id, id) ||
					(!strncmp(id, recs[i].id, strlen(recs[i].prog)) &&
					 !strcmp(recs[i].id + strlen(recs[i].prog), ".*"))))
			return &recs[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Output to stdout and the Markdown file at once                      */

static FILE *md;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (md) {
		va_start(ap, fmt);
		vfprintf(md, fmt, ap);
		va_end(ap);
	}
}

/* A number with 3 significant digits, in a fixed notation. */
static const char *num(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (fabs(v) >= 100000)
		snprintf(buf, len, "%.0f", v);
	else if (fabs(v) >= 100)
		snprintf(buf, len, "%.0f", v);
	else if (fabs(v) >= 10)
		snprintf(buf, len, "%.1f", v);
	else if (fabs(v) >= 1)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.3g", v);
	return buf;
}

/* ------------------------------------------------------------------ */
/* The header                                                          */

static void header(const struct opts *o)
{
	char cpu[256], date[64], buf[3][32];
	const struct rec *tsc = find("limits.clock", "tsc"), *mono = find("limits.clock", "mono");
	const struct rec *sys = find("limits.syscall", "cost"), *pf = find("limits.pagefault", "cost");
	time_t now = time(NULL);
	struct utsname u;
	struct tm tm;

	measure_cpuinfo("model name", cpu, sizeof cpu);
	if (!cpu[0])
		snprintf(cpu, sizeof cpu, "unknown CPU");
	uname(&u);
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %z", &tm);
	if (o->date)
		snprintf(date, sizeof date, "%s", o->date);
	out("# shmbus against the physical limits and its peers\n\n");
	out("Written by `%s` (bench/run, %s mode); do not edit by hand.\n\n", o->command, o->mode);
	out("| | |\n|---|---|\n");
	out("| machine | %s, %ld CPUs online |\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
	out("| kernel | %s %s %s |\n", u.sysname, u.release, u.machine);
	out("| cores used | %s (each measuring side pinned to its own CPU) |\n", o->cpus);
	out("| date | %s (start of the run) |\n", date);
	out("| load average at start | %s |\n", o->load);
	out("| runs | every figure is the median of %d runs, with the min and max |\n", o->runs);
	if (tsc && mono)
		out("| clock | round trips timed with rdtscp (%s ns a read, inside every sample); "
		    "rates with clock_gettime(CLOCK_MONOTONIC) (%s ns a read) |\n",
		    num(tsc->med, buf[0], 32), num(mono->med, buf[1], 32));
	if (sys && pf)
		out("| costs that shape results | a system call %s ns, a page fault on shared "
		    "memory %s us (measured in this run) |\n", num(sys->med, buf[0], 32),
		    num(pf->med, buf[2], 32));
	out("\n");
}

/* ------------------------------------------------------------------ */
/* Figures                                                             */

static void figure_rows(const char *prog, const char *heading)
{
	char b[4][32], last[96] = "";

	out("\n## %s\n\n", heading);
	out("| case | metric | median | min | max | unit | |\n|---|---|--:|--:|--:|---|---|\n");
	for (int i = 0; i < nrecs; i++) {
		const struct rec *r = &recs[i];
		bool first = strcmp(last, r->id) != 0;

		if (strcmp(r->prog, prog))
			continue;
		snprintf(last, sizeof last, "%s", r->id);
		if (r->skip[0]) {
			out("| %s | | | | | | **skipped**: %s |\n", r->title, r->skip);
			continue;
		}
		out("| %s | %s | %s | %s | %s | %s | %s |\n", first ? r->title : "", r->metric,
		    num(r->med, b[0], 32), num(r->min, b[1], 32), num(r->max, b[2], 32), r->unit,
		    r->noisy && first ? "noisy" : "");
	}
}

/* ------------------------------------------------------------------ */
/* Ratios                                                              */

static const char *const sizes[][2] = {
	{ "64B", "64" }, { "1KiB", "1024" }, { "64KiB", "65536" }, { "1MiB", "1048576" },
};

struct cmp {
	const char *label;
	const char *a, *am;       /* shmbus */
	const char *b, *bm;       /* the limit, the peer, or shmbus itself */
	const char *hint;         /* how to read a ratio of shmbus to itself */
};

#define SW "shmbus_workloads."

#define NO_SLOWER "1: no slower"
#define LINEAR "100: linear"

static const struct cmp limit_cmps[] = {
	{ "round trip p50, spinning / cache-line round trip p50, same processes",
	  SW "pingpong.spin", "p50", SW "pingpong.spin", "bare p50", "in-run floor" },
	{ "round trip p99, spinning / cache-line round trip p99, same processes",
	  SW "pingpong.spin", "p99", SW "pingpong.spin", "bare p99", "in-run floor" },
	{ "round trip p50, blocking / futex ping-pong p50, same processes",
	  SW "pingpong.block", "p50", SW "pingpong.block", "bare p50", "in-run floor" },
	{ "round trip p99, blocking / futex ping-pong p99, same processes",
	  SW "pingpong.block", "p99", SW "pingpong.block", "bare p99", "in-run floor" },
	{ "round trip p50, spinning / cache-line round trip p50", SW "pingpong.spin", "p50",
	  "limits.cacheline", "p50", NULL },
	{ "round trip p99, spinning / cache-line round trip p99", SW "pingpong.spin", "p99",
	  "limits.cacheline", "p99", NULL },
	{ "round trip p50, blocking / futex ping-pong p50", SW "pingpong.block", "p50",
	  "limits.futex", "p50", NULL },
	{ "round trip p99, blocking / futex ping-pong p99", SW "pingpong.block", "p99",
	  "limits.futex", "p99", NULL },
	{ "64 B send, copy-out / SPSC ring, publish every message", SW "tput.64B.send.copy",
	  "rate", "limits.spsc.1", "rate", NULL },
	{ "64 B send, zero-copy / SPSC ring, publish every message", SW "tput.64B.send.zc",
	  "rate", "limits.spsc.1", "rate", NULL },
	{ "64 B send_batch, copy-out / SPSC ring, publish every 32", SW "tput.64B.batch.copy",
	  "rate", "limits.spsc.32", "rate", NULL },
	{ "64 B send_batch, zero-copy / SPSC ring, publish every 32", SW "tput.64B.batch.zc",
	  "rate", "limits.spsc.32", "rate", NULL },
	{ "64 B send, zero-copy / SPSC ring of 112-byte frames (timestamp, CRC), every message",
	  SW "tput.64B.send.zc", "rate", "limits.spsc.frame.1", "rate", NULL },
	{ "64 B send_batch, zero-copy / SPSC ring of 112-byte frames (timestamp, CRC), every 32",
	  SW "tput.64B.batch.zc", "rate", "limits.spsc.frame.32", "rate", NULL },
	{ "SPSC ring of 112-byte frames (timestamp, CRC) / minimal SPSC ring, every message",
	  "limits.spsc.frame.1", "rate", "limits.spsc.1", "rate", "what the record format costs" },
	{ "SPSC ring of 112-byte frames (timestamp, CRC) / minimal SPSC ring, every 32",
	  "limits.spsc.frame.32", "rate", "limits.spsc.32", "rate", "what the record format costs" },
	{ "1 MiB values, copy-out / memcpy 1 MiB from DRAM", SW "tput.1MiB.send.copy", "bw",
	  "limits.memcpy.dram", "bw", NULL },
	{ "1 MiB values, zero-copy / memcpy 1 MiB from DRAM", SW "tput.1MiB.send.zc", "bw",
	  "limits.memcpy.dram", "bw", NULL },
	{ "1 MiB values, copy-out / memcpy 1 MiB in cache", SW "tput.1MiB.send.copy", "bw",
	  "limits.memcpy.cache", "bw", NULL },
	{ "2 producers / 1 producer on one partition, send", SW "producers.2.send", "rate",
	  SW "producers.1.send", "rate", "1: no gain, 2: linear" },
	{ "2 producers / 1 producer on one partition, send_batch", SW "producers.2.batch",
	  "rate", SW "producers.1.batch", "rate", "1: no gain, 2: linear" },
	{ "writer with 1 reader / writer alone", SW "fanout.1", "writer rate", SW "fanout.0",
	  "writer rate", NO_SLOWER },
	{ "writer with 2 readers / writer alone", SW "fanout.2", "writer rate", SW "fanout.0",
	  "writer rate", NO_SLOWER },
	{ "writer with 4 readers / writer alone", SW "fanout.4", "writer rate", SW "fanout.0",
	  "writer rate", NO_SLOWER },
	{ "topic of 10 000 partitions / 100, creation", SW "partitions.10000", "create",
	  SW "partitions.100", "create", LINEAR },
	{ "topic of 10 000 partitions / 100, open", SW "partitions.10000", "open",
	  SW "partitions.100", "open", LINEAR },
	{ "topic of 10 000 partitions / 100, memory per partition", SW "partitions.10000",
	  "file", SW "partitions.100", "file", "1: constant" },
};

static const char *const rtt_peers[][2] = {
	{ "peers_ipc.unix_stream.rtt", "Unix stream socket" },
	{ "peers_ipc.unix_seqpacket.rtt", "Unix seqpacket socket" },
	{ "peers_ipc.pipe.rtt", "pipe" },
	{ "peers_ipc.mq.rtt", "POSIX message queue" },
	{ "peer_zmq.pair.rtt", "ZeroMQ ipc PAIR" },
	{ "peer_redis.xread.rtt", "Redis XADD->XREAD BLOCK" },
};

static const char *const one_peers[][2] = {
	{ "peers_ipc.unix_stream.tput", "Unix stream socket, a write per message" },
	{ "peers_ipc.unix_seqpacket.tput", "Unix seqpacket socket, a send per message" },
	{ "peers_ipc.pipe.tput", "pipe, a write per message" },
	{ "peers_ipc.mq.tput", "POSIX message queue, an mq_send per message" },
	{ "peer_zmq.pushpull.tput", "ZeroMQ ipc PUSH/PULL" },
};

static const char *const batch_peers[][2] = {
	{ "peers_ipc.unix_stream.batch", "Unix stream socket, 32 per write" },
	{ "peers_ipc.unix_seqpacket.batch", "Unix seqpacket socket, sendmmsg of 32" },
	{ "peers_ipc.pipe.batch", "pipe, 32 per write" },
	{ "peers_ipc.mq.batch", "POSIX message queue (no batched form)" },
	{ "peer_redis.xadd.tput", "Redis XADD, pipelined 256" },
};

static void ratio_row(const char *label, const char *a, const char *am, const char *b,
		      const char *bm, const char *hint)
{
	const struct rec *x = find(a, am), *y = find(b, bm), *s;
	char v[3][32];
	double q;

	if (!x || !y) {
		s = find_skip(x ? b : a);
		out("| %s | | | | not measured%s%s |\n", label, s ? ": " : "", s ? s->skip : "");
		return;
	}
	q = x->med / y->med;
	out("| %s | %s %s | %s %s | **%s** | %s%s |\n", label, num(x->med, v[0], 32), x->unit,
	    num(y->med, v[1], 32), y->unit, num(q, v[2], 32),
	    hint ? hint : x->higher ? (q >= 1 ? "shmbus ahead" : "shmbus behind") :
				      (q <= 1 ? "shmbus ahead" : "shmbus behind"),
	    x->noisy || y->noisy ? " (noisy)" : "");
}

static void peer_rows(const char *a, const char *am, const char *what,
		      const char *const (*peers)[2], size_t n, const char *pm)
{
	char label[200];

	for (size_t i = 0; i < n; i++) {
		snprintf(label, sizeof label, "%s / %s", what, peers[i][1]);
		ratio_row(label, a, am, peers[i][0], pm, NULL);
	}
}

static void ratios(void)
{
	static const char head[] = "| ratio | shmbus | other | shmbus / other | |\n"
				   "|---|--:|--:|--:|---|\n";

	out("\n## Ratios: shmbus / the limits\n\n%s", head);
	for (size_t i = 0; i < sizeof limit_cmps / sizeof limit_cmps[0]; i++)
		ratio_row(limit_cmps[i].label, limit_cmps[i].a, limit_cmps[i].am, limit_cmps[i].b,
			  limit_cmps[i].bm, limit_cmps[i].hint);
	out("\nThe rows marked \"in-run floor\" compare shmbus's round trips with the floor "
	    "measured in the same pair of processes, alternating in blocks of 1000: in this VM "
	    "the distance between the two vCPUs changes over minutes, so they are the steadier "
	    "ratios.  The other rows divide by the limits program's figures, measured minutes "
	    "earlier.\n");
	out("\n## Ratios: shmbus / each peer\n\n%s", head);
	for (int k = 1; k < 4; k++) {
		char a[96], b[96], label[160];

		snprintf(a, sizeof a, SW "tput.%s.send.copy", sizes[k][0]);
		snprintf(b, sizeof b, "peers_ipc.unix_stream.tput.%s", sizes[k][0]);
		snprintf(label, sizeof label, "%s, shmbus send + copy-out / Unix stream socket, a "
			 "write each", sizes[k][0]);
		ratio_row(label, a, "bw", b, "bw", NULL);
		snprintf(b, sizeof b, "peers_ipc.pipe.tput.%s", sizes[k][0]);
		snprintf(label, sizeof label, "%s, shmbus send + copy-out / pipe, a write each",
			 sizes[k][0]);
		ratio_row(label, a, "bw", b, "bw", NULL);
	}
	peer_rows(SW "pingpong.spin", "p50", "round trip p50, shmbus spinning", rtt_peers, 6,
		  "p50");
	peer_rows(SW "pingpong.block", "p50", "round trip p50, shmbus blocking", rtt_peers, 6,
		  "p50");
	peer_rows(SW "pingpong.block", "p99", "round trip p99, shmbus blocking", rtt_peers, 6,
		  "p99");
	peer_rows(SW "tput.64B.send.copy", "rate", "64 B, shmbus send + copy-out", one_peers, 5,
		  "rate");
	peer_rows(SW "tput.64B.batch.copy", "rate", "64 B, shmbus send_batch + copy-out",
		  batch_peers, 5, "rate");
}

/* ------------------------------------------------------------------ */
/* The core targets (those of `shmbus bench`)                          */

struct target {
	const char *label, *id, *metric;
	double target;
	bool at_least;
};

static const struct target targets[] = {
	{ "round trip p50, spinning", SW "pingpong.spin", "p50", 650, false },
	{ "round trip p99, spinning", SW "pingpong.spin", "p99", 1000, false },
	{ "64 B send, M records/s", SW "tput.64B.send.zc", "rate", 14, true },
	{ "64 B send_batch, M records/s", SW "tput.64B.batch.zc", "rate", 40, true },
	{ "1 MiB values, GB/s (copy-out)", SW "tput.1MiB.send.copy", "bw", 10, true },
	{ "1 MiB values, GB/s (zero-copy)", SW "tput.1MiB.send.zc", "bw", 10, true },
	{ "blocking round trip p50 / futex p50, same processes", SW "pingpong.block",
	  "p50 / bare p50", 1.1, false },
};

static void core_targets(void)
{
	char v[2][32];

	out("\n## The core targets\n\n| figure | median | target | |\n|---|--:|--:|---|\n");
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
		const struct target *t = &targets[i];
		const struct rec *r = find(t->id, t->metric);
		bool pass = r && (t->at_least ? r->med >= t->target : r->med <= t->target);

		out("| %s | %s | %s %s | %s%s |\n", t->label, r ? num(r->med, v[0], 32) : "-",
		    t->at_least ? ">=" : "<=", num(t->target, v[1], 32),
		    !r ? "not measured" : pass ? "met" : "**short**",
		    r && r->noisy ? " (noisy)" : "");
	}
}

/* ------------------------------------------------------------------ */
/* Notes: skips, disturbance, what each case did                       */

static void notes(void)
{
	char last[96] = "";
	int noisy = 0;

	out("\n## Skipped\n\n");
	for (int i = 0; i < nrecs; i++)
		if (recs[i].skip[0])
			out("- `%s` (%s): %s\n", recs[i].id, recs[i].title, recs[i].skip);
	out("\n## Disturbance\n\nCPU time other tasks took from the two CPUs while a case ran "
	    "(its busy time less ours, from /proc/stat; the hypervisor's steal apart). A case is "
	    "marked noisy past 50 ms + 10 %% of its wall time: its figures understate what the "
	    "machine can do.\n\n");
	for (int i = 0; i < nrecs; i++) {
		const struct rec *r = &recs[i];

		if (r->skip[0] || !r->noisy || !strcmp(last, r->id))
			continue;
		snprintf(last, sizeof last, "%s", r->id);
		out("- `%s`: others took %.0f ms, steal %.0f ms, in %.1f s\n", r->id, r->others_ms,
		    r->steal_ms, r->wall_s);
		noisy++;
	}
	if (!noisy)
		out("No case was disturbed past rounding.\n");
	out("\n## What each case measured\n\n");
	last[0] = 0;
	for (int i = 0; i < nrecs; i++) {
		if (recs[i].skip[0] || !strcmp(last, recs[i].id))
			continue;
		snprintf(last, sizeof last, "%s", recs[i].id);
		out("- `%s`: %s\n", recs[i].id, recs[i].note);
	}
}

/* ------------------------------------------------------------------ */
/* Plots                                                               */

static const char *const lat_rows[][2] = {
	{ "limits.cacheline", "cache line" },
	{ SW "pingpong.spin", "shmbus spin" },
	{ "limits.futex", "futex" },
	{ SW "pingpong.block", "shmbus block" },
	{ "peers_ipc.unix_stream.rtt", "unix stream" },
	{ "peers_ipc.unix_seqpacket.rtt", "seqpacket" },
	{ "peers_ipc.pipe.rtt", "pipe" },
	{ "peers_ipc.mq.rtt", "POSIX mq" },
	{ "peer_zmq.pair.rtt", "ZeroMQ" },
	{ "peer_redis.xread.rtt", "Redis" },
};

static const char *const variants[] = { "send.copy", "send.zc", "batch.copy", "batch.zc" };

static FILE *open_in(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "report: cannot write %s: %s\n", path, strerror(errno));
	return f;
}

static void latency_data(FILE *f)
{
	static const char *const ms[] = { "p50", "p99", "p99.9" };

	for (size_t i = 0; i < sizeof lat_rows / sizeof lat_rows[0]; i++) {
		if (!find(lat_rows[i][0], "p50"))
			continue;
		fprintf(f, "\"%s\"", lat_rows[i][1]);
		for (int k = 0; k < 3; k++) {
			const struct rec *r = find(lat_rows[i][0], ms[k]);

			fprintf(f, " %.6g %.6g %.6g", r ? r->med / 1e3 : NAN, r ? r->min / 1e3 : NAN,
				r ? r->max / 1e3 : NAN);
		}
		fprintf(f, "\n");
	}
}

/* A peer's rate and GB/s at size s (its 64-byte case has no bw). */
static void peer_tput(FILE *f, const char *base, int s)
{
	char id[96];
	const struct rec *r, *g;

	snprintf(id, sizeof id, "%s%s%s", base, s ? "." : "", s ? sizes[s][0] : "");
	r = find(id, "rate");
	g = find(id, "bw");
	fprintf(f, " %.6g %.6g", r ? r->med : NAN,
		g ? g->med : r ? r->med * atof(sizes[s][1]) / 1e3 : NAN);
}

/* size, then for each variant: rate med min max, bw med min max; then
 * the Unix stream socket's and the pipe's rate and bw */
static void tput_data(FILE *f)
{
	char id[96];

	for (int s = 0; s < 4; s++) {
		fprintf(f, "%s", sizes[s][1]);
		for (int v = 0; v < 4; v++) {
			const struct rec *r, *g;

			snprintf(id, sizeof id, SW "tput.%s.%s", sizes[s][0], variants[v]);
			r = find(id, "rate");
			g = find(id, "bw");
			fprintf(f, " %.6g %.6g %.6g %.6g %.6g %.6g", r ? r->med : NAN, r ? r->min : NAN,
				r ? r->max : NAN, g ? g->med : NAN, g ? g->min : NAN, g ? g->max : NAN);
		}
		peer_tput(f, "peers_ipc.unix_stream.tput", s);
		peer_tput(f, "peers_ipc.pipe.tput", s);
		fprintf(f, "\n");
	}
}

static double med_or_nan(const char *id, const char *m)
{
	const struct rec *r = find(id, m);

	return r ? r->med : NAN;
}

static void script(FILE *f, const char *png_dir)
{
	fprintf(f, "set terminal pngcairo size 1000,560 font ',10'\nset datafile missing 'nan'\n"
		   "set output '%s/latency.png'\n"
		   "set title 'Round trip of a 64-byte message between two pinned processes "
		   "(median of runs; bars: min-max)'\n"
		   "set ylabel 'microseconds (log)'\nset logscale y\nset yrange [0.05:*]\nset grid ytics\n"
		   "set style data histogram\nset style histogram errorbars gap 1 lw 1\n"
		   "set style fill solid 0.7 border -1\nset xtics rotate by -30\nset key top left\n"
		   "plot 'latency.dat' using 2:3:4:xtic(1) title 'p50', '' using 5:6:7 title 'p99', "
		   "'' using 8:9:10 title 'p99.9'\n", png_dir);
	fprintf(f, "reset\nset output '%s/throughput.png'\nset terminal pngcairo size 1000,900 "
		   "font ',10'\nset datafile missing 'nan'\nset multiplot layout 2,1 title "
		   "'shmbus one-way throughput against record size (median of runs; bars: "
		   "min-max)'\nset logscale xy\nset grid\nset key outside right\n"
		   "set xtics ('64 B' 64, '1 KiB' 1024, '64 KiB' 65536, '1 MiB' 1048576)\n"
		   "set xrange [40:1600000]\nset ylabel 'M records/s'\n", png_dir);
	fprintf(f, "plot for [v=0:3] 'throughput.dat' using 1:(column(2+6*v)):(column(3+6*v)):"
		   "(column(4+6*v)) with yerrorlines title word('send+copy send+zero-copy "
		   "batch+copy batch+zero-copy', v+1), 'throughput.dat' using 1:26 with linespoints "
		   "dt 4 title 'Unix stream, a write each', '' using 1:28 with linespoints dt 4 "
		   "title 'pipe, a write each', %.6g title 'SPSC ring, every msg' dt 2, "
		   "%.6g title 'SPSC ring, every 32' dt 3\n",
		med_or_nan("limits.spsc.1", "rate"), med_or_nan("limits.spsc.32", "rate"));
	fprintf(f, "set ylabel 'GB/s of values'\nset xlabel 'value size'\n"
		   "plot for [v=0:3] 'throughput.dat' using 1:(column(5+6*v)):(column(6+6*v)):"
		   "(column(7+6*v)) with yerrorlines title word('send+copy send+zero-copy "
		   "batch+copy batch+zero-copy', v+1), 'throughput.dat' using 1:27 with linespoints "
		   "dt 4 title 'Unix stream, a write each', '' using 1:29 with linespoints dt 4 "
		   "title 'pipe, a write each', %.6g title 'memcpy 1 MiB from DRAM' dt 2, "
		   "%.6g title 'memcpy 1 MiB in cache' dt 3\nunset multiplot\n",
		med_or_nan("limits.memcpy.dram", "bw"), med_or_nan("limits.memcpy.cache", "bw"));
}

static int plots(const struct opts *o)
{
	FILE *lat = open_in(o->plots, "latency.dat"), *tp = open_in(o->plots, "throughput.dat");
	FILE *gp = open_in(o->plots, "plots.gp");
	int rc = lat && tp && gp ? 0 : -1;

	if (!rc) {
		latency_data(lat);
		tput_data(tp);
		script(gp, o->png_dir);
	}
	if (lat)
		fclose(lat);
	if (tp)
		fclose(tp);
	if (gp)
		fclose(gp);
	return rc;
}

/* ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: report [--md FILE] [--plots DIR --png-dir DIR] [--cpus A,B] "
			"[--load TEXT] [--runs N] [--mode quick|full] [--command TEXT] [--date TEXT]\n"
			"              FILE.jsonl...\n");
	exit(2);
}

static int parse(int argc, char **argv, struct opts *o)
{
	int i = 1;

	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		const char *a = argv[i], *v = argv[i + 1];

		if (!strcmp(a, "--md"))
			o->md = v;
		else if (!strcmp(a, "--plots"))
			o->plots = v;
		else if (!strcmp(a, "--png-dir"))
			o->png_dir = v;
		else if (!strcmp(a, "--cpus"))
			o->cpus = v;
		else if (!strcmp(a, "--load"))
			o->load = v;
		else if (!strcmp(a, "--runs"))
			o->runs = atoi(v);
		else if (!strcmp(a, "--mode"))
			o->mode = v;
		else if (!strcmp(a, "--command"))
			o->command = v;
		else if (!strcmp(a, "--date"))
			o->date = v;
		else
			usage();
	}
	if (i >= argc || (o->plots && !o->png_dir))
		usage();
	return i;
}

int main(int argc, char **argv)
{
	struct opts o = { .cpus = "0,1", .load = "?", .command = "make bench", .mode = "full",
			  .runs = 5 };
	int first = parse(argc, argv, &o), rc = 0;

	for (int i = first; i < argc; i++)
		read_file(argv[i]);
	if (o.md && !(md = fopen(o.md, "w"))) {
		fprintf(stderr, "report: cannot write %s: %s\n", o.md, strerror(errno));
		return 1;
	}
	header(&o);
	figure_rows("limits", "The physical limits");
	figure_rows("peers_ipc", "Peers: the kernel's IPC");
	figure_rows("peer_zmq", "Peers: ZeroMQ");
	figure_rows("peer_redis", "Peers: Redis Streams");
	figure_rows("shmbus_workloads", "shmbus");
	figure_rows("mirror_bench", "Mirroring: two hosts (namespaces) on a veth pair, vs iperf3");
	core_targets();
	ratios();
	if (md && o.plots)
		fprintf(md, "\n## Plots\n\n![round-trip latency percentiles](latency.png)\n\n"
			    "![throughput against record size](throughput.png)\n");
	notes();
	if (o.plots)
		rc = plots(&o);
	if (md && fclose(md)) {
		fprintf(stderr, "report: cannot write %s: %s\n", o.md, strerror(errno));
		rc = -1;
	}
	return rc ? 1 : 0;
}
