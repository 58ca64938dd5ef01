/*
 * bench_report.c - what `shmbus bench` prints and writes.
 *
 * Owns the header describing the machine and the clock, the summary of
 * a metric across runs (min / median / max, and PASS or "short" against
 * its target), the line saying how much CPU time other tasks and the
 * hypervisor took from the workers' CPUs during a figure, each figure's
 * table, and the JSON file.
 */
#include "bench.h"

#include <errno.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The machine                                                         */

void machine_info(char *cpu, size_t clen, char *kernel, size_t klen, char *date,
		  size_t dlen)
{
	struct utsname u;
	time_t now = time(NULL);
	struct tm tm;

	measure_cpuinfo("model name", cpu, clen);
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
	       "(%d usable)\n", b->w.cpu[0], b->w.cpu[1], b->ncpus);
	if (b->one_cpu)
		printf("  WARNING  both workers share CPU %d%s: spinners yield, and the figures "
		       "measure the scheduler, not the bus\n", b->w.cpu[0],
		       b->ncpus < 2 ? " (the only one usable)" : "");
	printf("  date     %s; load average %.2f %.2f %.2f\n", date, load[0], load[1], load[2]);
	printf("  root     %s%s\n", b->w.root, b->w.tmp_root ? " (temporary)" : "");
	if (measure_clock.tsc)
		printf("  clock    TSC at %.4f GHz (calibrated against CLOCK_MONOTONIC); "
		       "one read costs %.1f ns\n", measure_clock.ticks_per_ns,
		       measure_clock.tick_cost_ns);
	else
		printf("  clock    CLOCK_MONOTONIC; one read costs %.1f ns\n",
		       measure_clock.tick_cost_ns);
	printf("  rings    16 MiB (pingpong, send, batch, blocking), 64 MiB (large)\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */

struct summary {
	double min, median, max;
};

static struct summary summarize(const double *v, int n)
{
	struct summary s;

	measure_summary(v, n, &s.min, &s.median, &s.max);
	return s;
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
	       "%.1f s%s\n", r->dist.others_ms, r->dist.steal_ms, r->dist.wall_s,
	       disturbance_noisy(&r->dist) ? ": NOISY, the figures understate the bus" : "");
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
			r->failed ? "false" : "true", r->dist.wall_s, r->dist.others_ms,
			r->dist.steal_ms, disturbance_noisy(&r->dist) ? "true" : "false");
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
		sysconf(_SC_NPROCESSORS_ONLN), b->w.cpu[0], b->w.cpu[1]);
	fprintf(f, "  \"clock\": {\"source\": \"%s\", \"ticks_per_ns\": %.6f, \"read_ns\": %.2f},\n",
		measure_clock.tsc ? "tsc" : "CLOCK_MONOTONIC", measure_clock.ticks_per_ns,
		measure_clock.tick_cost_ns);
	fprintf(f, "  \"figures\": [");
	json_figures(f, b);
	fprintf(f, "\n  ]\n}\n");
	if (fclose(f)) {
		fprintf(stderr, "shmbus bench: cannot write %s: %s\n", b->json, strerror(errno));
		return -1;
	}
	return 0;
}
