/*
 * bench_report.c - what `shmbus bench` prints and writes.
 *
 * Owns the header describing the machine and the clock, the statistics
 * (percentiles of one run's round trips; min / median / max of a metric
 * across runs, and PASS or "short" against its target), the accounting
 * of the CPU time other tasks and the hypervisor took from the workers'
 * CPUs during a figure, each figure's table, and the JSON file.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The machine                                                         */

/* The value of the first /proc/cpuinfo line named `name`, or "". */
void cpuinfo(const char *name, char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char *line = NULL, *colon;
	size_t cap = 0, n = strlen(name);

	snprintf(buf, len, "%s", "");
	while (f && getline(&line, &cap, f) > 0) {
		colon = strchr(line, ':');
		if (strncmp(line, name, n) || !colon)
			continue;
		snprintf(buf, len, "%s", colon + 1 + strspn(colon + 1, " \t"));
		buf[strcspn(buf, "\n")] = 0;
		break;
	}
	free(line);
	if (f)
		fclose(f);
}

void machine_info(char *cpu, size_t clen, char *kernel, size_t klen, char *date,
		  size_t dlen)
{
	struct utsname u;
	time_t now = time(NULL);
	struct tm tm;

	cpuinfo("model name", cpu, clen);
	if (!cpu[0])
		snprintf(cpu, clen, "unknown CPU");
	if (uname(&u) == 0)
		snprintf(kernel, klen, "%s %s %s", u.sysname, u.release, u.machine);
	else
		snprintf(kernel, klen, "unknown");
	localtime_r(&now, &tm);
	strftime(date, dlen, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

void print_header(const struct bench *b, const char *cpu, const char *kernel,
		  const char *date)
{
	double load[3] = { 0, 0, 0 };

	getloadavg(load, 3);
	printf("shmbus bench%s: %d run%s per figure; min / median / max across runs\n",
	       b->quick ? " --quick" : "", b->runs, b->runs == 1 ? "" : "s");
	printf("  machine  %s, %ld CPUs online; %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN), kernel);
	printf("  cpus     worker 0 (ping, producer) on CPU %d, worker 1 (echo, consumer) on CPU %d "
	       "(%d usable)\n", b->cpu[0], b->cpu[1], b->ncpus);
	if (b->one_cpu)
		printf("  WARNING  both workers share CPU %d%s: spinners yield, and the figures "
		       "measure the scheduler, not the bus\n", b->cpu[0],
		       b->ncpus < 2 ? " (the only one usable)" : "");
	printf("  date     %s; load average %.2f %.2f %.2f\n", date, load[0], load[1], load[2]);
	printf("  root     %s%s\n", b->root, b->tmp_root ? " (temporary)" : "");
	if (b->tsc)
		printf("  clock    TSC at %.4f GHz (calibrated against CLOCK_MONOTONIC); "
		       "one read costs %.1f ns\n", b->ticks_per_ns, b->clock_cost_ns);
	else
		printf("  clock    CLOCK_MONOTONIC; one read costs %.1f ns\n", b->clock_cost_ns);
	printf("  rings    16 MiB (pingpong, send, batch, blocking), 64 MiB (large)\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of sorted samples, in ns. */
static double quantile(const struct bench *b, const uint64_t *s, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n);

	return (double)s[rank ? rank - 1 : 0] / b->ticks_per_ns;
}

/* p50, p90, p99, p99.9 and max of samples[from, from + count). */
void latencies(const struct bench *b, size_t from, double *out)
{
	uint64_t *s = b->sh->samples + from;
	size_t n = b->cur.count;

	qsort(s, n, sizeof *s, cmp_u64);
	out[0] = quantile(b, s, n, 0.50);
	out[1] = quantile(b, s, n, 0.90);
	out[2] = quantile(b, s, n, 0.99);
	out[3] = quantile(b, s, n, 0.999);
	out[4] = quantile(b, s, n, 1.0);
}

struct summary {
	double min, median, max;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static struct summary summarize(const double *v, int n)
{
	double s[MAX_RUNS];

	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return (struct summary){ s[0], n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[n - 1] };
}

static int metric_count(const struct figure_def *d)
{
	int n = 0;

	while (n < MAX_METRICS && d->m[n].key)
		n++;
	return n;
}

static bool passes(const struct metric_def *m, double median)
{
	return m->goal == AT_LEAST ? median >= m->target : median <= m->target;
}

/* ------------------------------------------------------------------ */
/* Disturbance: CPU time others took from the workers                  */

/* CPU time used by this process and its reaped workers (ns). */
int64_t our_cpu_ns(void)
{
	struct rusage self, children;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &children);
	return ((int64_t)self.ru_utime.tv_sec + self.ru_stime.tv_sec + children.ru_utime.tv_sec +
		children.ru_stime.tv_sec) * NS +
	       ((int64_t)self.ru_utime.tv_usec + self.ru_stime.tv_usec + children.ru_utime.tv_usec +
		children.ru_stime.tv_usec) * 1000;
}

/* Idle (with iowait) and stolen jiffies of the workers' CPUs (/proc/stat). */
void cpu_ticks(const int cpu[2], long long *idle, long long *steal)
{
	FILE *f = fopen("/proc/stat", "r");
	long long v[8];
	char line[512];
	int n;

	*idle = *steal = 0;
	while (f && fgets(line, sizeof line, f)) {
		if (sscanf(line, "cpu%d %lld %lld %lld %lld %lld %lld %lld %lld", &n, &v[0], &v[1],
			   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 9 ||
		    (n != cpu[0] && (n != cpu[1] || cpu[1] == cpu[0])))
			continue;
		*idle += v[3] + v[4];
		*steal += v[7];
	}
	if (f)
		fclose(f);
}

/* How much CPU time other tasks (and the hypervisor) took on the two
 * CPUs during a figure: their busy time (all but idle and stolen) less
 * what our processes used.  /proc/stat counts in jiffies, so a few tens
 * of milliseconds are rounding. */
void measure_disturbance(const struct bench *b, struct result *r, int64_t t0,
			 int64_t ours0, long long idle0, long long steal0)
{
	double ms_per_tick = 1000.0 / (double)sysconf(_SC_CLK_TCK);
	long long idle, steal;

	cpu_ticks(b->cpu, &idle, &steal);
	r->wall_s = (double)(mono_ns() - t0) / 1e9;
	r->steal_ms = (double)(steal - steal0) * ms_per_tick;
	r->others_ms = r->wall_s * 1000 * (b->one_cpu ? 1 : 2) - (double)(idle - idle0) * ms_per_tick -
		       r->steal_ms - (double)(our_cpu_ns() - ours0) / 1e6;
	if (r->others_ms < 0)
		r->others_ms = 0;
}

/* Did other tasks take more than rounding from the workers' CPUs? */
static bool noisy(const struct result *r)
{
	return r->others_ms + r->steal_ms > 50 + 100 * r->wall_s;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */

void print_result(const struct result *r)
{
	const struct figure_def *d = r->def;

	printf("\n%s: %s\n  %s\n", d->name, d->title, r->desc);
	if (r->runs == 0)
		return;
	printf("  %-22s %10s %10s %10s   %s\n", "", "min", "median", "max", "target");
	for (int i = 0; i < metric_count(d); i++) {
		const struct metric_def *m = &d->m[i];
		struct summary s = summarize(r->v[i], r->runs);
		char label[64];

		snprintf(label, sizeof label, "%s (%s)", m->key, m->unit);
		printf("  %-22s %10.*f %10.*f %10.*f", label, m->decimals, s.min, m->decimals,
		       s.median, m->decimals, s.max);
		if (m->goal != NONE)
			printf("   %s %-6g %s", m->goal == AT_LEAST ? ">=" : "<=", m->target,
			       passes(m, s.median) ? "PASS" : "short");
		printf("\n");
	}
	if (r->failed)
		printf("  (only %d run%s completed)\n", r->runs, r->runs == 1 ? "" : "s");
	printf("  other tasks took ~%.0f ms of the two CPUs, the hypervisor stole %.0f ms, in "
	       "%.1f s%s\n", r->others_ms, r->steal_ms, r->wall_s,
	       noisy(r) ? ": NOISY, the figures understate the bus" : "");
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_metric(FILE *f, const struct result *r, int i)
{
	const struct metric_def *m = &r->def->m[i];
	struct summary s = summarize(r->v[i], r->runs);

	fprintf(f, "%s\n        {\"name\": ", i ? "," : "");
	json_str(f, m->key);
	fprintf(f, ", \"unit\": ");
	json_str(f, m->unit);
	fprintf(f, ", \"min\": %.6g, \"median\": %.6g, \"max\": %.6g, \"runs\": [", s.min,
		s.median, s.max);
	for (int k = 0; k < r->runs; k++)
		fprintf(f, "%s%.6g", k ? ", " : "", r->v[i][k]);
	if (m->goal == NONE)
		fprintf(f, "], \"target\": null, \"goal\": null, \"pass\": null}");
	else
		fprintf(f, "], \"target\": %g, \"goal\": \"%s\", \"pass\": %s}", m->target,
			m->goal == AT_LEAST ? ">=" : "<=", passes(m, s.median) ? "true" : "false");
}

static void json_figures(FILE *f, const struct bench *b)
{
	bool first = true;

	for (int k = 0; k < NFIGS; k++) {
		const struct result *r = &b->res[k];

		if (!r->selected)
			continue;
		fprintf(f, "%s\n    {\"name\": \"%s\", \"title\": ", first ? "" : ",", r->def->name);
		json_str(f, r->def->title);
		fprintf(f, ", \"setup\": ");
		json_str(f, r->desc);
		fprintf(f, ", \"complete\": %s, \"wall_s\": %.2f, \"others_ms\": %.0f, "
			"\"steal_ms\": %.0f, \"noisy\": %s, \"metrics\": [",
			r->failed ? "false" : "true", r->wall_s, r->others_ms, r->steal_ms,
			noisy(r) ? "true" : "false");
		for (int i = 0; r->runs && i < metric_count(r->def); i++)
			json_metric(f, r, i);
		fprintf(f, "]}");
		first = false;
	}
}

int write_json(const struct bench *b, const char *machine, const char *kernel,
	       const char *date)
{
	FILE *f = fopen(b->json, "w");

	if (!f) {
		fprintf(stderr, "shmbus bench: cannot write %s: %s\n", b->json, strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"tool\": \"shmbus bench\", \"date\": ");
	json_str(f, date);
	fprintf(f, ", \"runs\": %d, \"quick\": %s,\n  \"machine\": {\"cpu\": ", b->runs,
		b->quick ? "true" : "false");
	json_str(f, machine);
	fprintf(f, ", \"kernel\": ");
	json_str(f, kernel);
	fprintf(f, ", \"cpus_online\": %ld, \"cpus_used\": [%d, %d]},\n",
		sysconf(_SC_NPROCESSORS_ONLN), b->cpu[0], b->cpu[1]);
	fprintf(f, "  \"clock\": {\"source\": \"%s\", \"ticks_per_ns\": %.6f, \"read_ns\": %.2f},\n",
		b->tsc ? "tsc" : "CLOCK_MONOTONIC", b->ticks_per_ns, b->clock_cost_ns);
	fprintf(f, "  \"figures\": [");
	json_figures(f, b);
	fprintf(f, "\n  ]\n}\n");
	if (fclose(f)) {
		fprintf(stderr, "shmbus bench: cannot write %s: %s\n", b->json, strerror(errno));
		return -1;
	}
	return 0;
}
