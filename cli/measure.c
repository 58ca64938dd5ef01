/*
 * measure.c - the clock, statistics and disturbance accounting shared by
 * `shmbus bench` and `make bench` (see measure.h).
 */
#include "measure.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct measure_clock measure_clock = { .ticks_per_ns = 1.0 };

/* ------------------------------------------------------------------ */
/* The clock                                                           */

void measure_cpuinfo(const char *name, char *buf, size_t len)
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

#if defined(__x86_64__)
static bool has_flag(const char *flags, const char *flag)
{
	size_t n = strlen(flag);

	for (const char *p = strstr(flags, flag); p; p = strstr(p + 1, flag))
		if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
			return true;
	return false;
}
#endif

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / NS, .tv_nsec = ns % NS };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void measure_clock_init(bool allow_tsc, int64_t calibrate_ns)
{
	struct measure_clock *c = &measure_clock;
	volatile uint64_t sink = 0;
	uint64_t c0, c1;
	int64_t t0, t1;

	c->tsc = false;
	c->ticks_per_ns = 1.0;
#if defined(__x86_64__)
	if (allow_tsc) {
		static char flags[8192];

		measure_cpuinfo("flags", flags, sizeof flags);
		c->tsc = has_flag(flags, "rdtscp") && has_flag(flags, "constant_tsc") &&
			 has_flag(flags, "nonstop_tsc");
	}
#else
	(void)allow_tsc;
#endif
	if (c->tsc) {
		t0 = mono_ns();
		c0 = measure_ticks();
		sleep_ns(calibrate_ns);
		t1 = mono_ns();
		c1 = measure_ticks();
		c->ticks_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
	}
	c0 = measure_ticks();
	for (int i = 0; i < 200000; i++)
		sink += measure_ticks();
	c1 = measure_ticks();
	c->tick_cost_ns = measure_ticks_ns(c1 - c0) / 200000;
	t0 = mono_ns();
	for (int i = 0; i < 200000; i++)
		sink += (uint64_t)mono_ns();
	c->mono_cost_ns = (double)(mono_ns() - t0) / 200000;
	(void)sink;
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void measure_summary(const double *v, int n, double *min, double *median, double *max)
{
	double *s = malloc((size_t)n * sizeof *s);

	if (!s) {
		*min = *median = *max = NAN;
		return;
	}
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	*min = s[0];
	*median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	*max = s[n - 1];
	free(s);
}

void measure_quantiles(uint64_t *s, size_t n, const double *q, int nq, double *out)
{
	qsort(s, n, sizeof *s, cmp_u64);
	for (int i = 0; i < nq; i++) {
		size_t rank = (size_t)ceil(q[i] * (double)n);

		out[i] = n ? (double)s[rank ? rank - 1 : 0] : NAN;
	}
}

void measure_quantiles_ns(uint64_t *ticks, size_t n, const double *q, int nq, double *out)
{
	measure_quantiles(ticks, n, q, nq, out);
	for (int i = 0; i < nq; i++)
		if (!isnan(out[i]))
			out[i] = measure_ticks_ns((uint64_t)out[i]);
}

/* ------------------------------------------------------------------ */
/* Disturbance                                                         */

static int64_t tv_ns(struct timeval tv)
{
	return (int64_t)tv.tv_sec * NS + tv.tv_usec * 1000;
}

/* CPU time of a process from /proc/PID/stat (utime + stime), ns. */
static int64_t pid_cpu_ns(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof buf, f))
		buf[0] = 0;
	fclose(f);
	p = strrchr(buf, ')'); /* the name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return 0;
	return (int64_t)(ut + st) * (NS / sysconf(_SC_CLK_TCK));
}

/* CPU time of this process, its reaped workers and extra_pid (ns). */
static int64_t ours_ns(pid_t extra_pid)
{
	struct rusage self, kids;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return tv_ns(self.ru_utime) + tv_ns(self.ru_stime) + tv_ns(kids.ru_utime) +
	       tv_ns(kids.ru_stime) + (extra_pid ? pid_cpu_ns(extra_pid) : 0);
}

/* Idle (with iowait) and stolen jiffies of the CPUs (/proc/stat). */
static void jiffies(const int cpu[2], long long *idle, long long *steal)
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

void disturbance_begin(struct disturbance *d, const int cpu[2], pid_t extra_pid)
{
	*d = (struct disturbance){ .cpu = { cpu[0], cpu[1] }, .extra_pid = extra_pid };
	d->t0 = mono_ns();
	d->ours0 = ours_ns(extra_pid);
	jiffies(d->cpu, &d->idle0, &d->steal0);
}

/* Their busy time (all but idle and stolen) less what our processes
 * used.  /proc/stat counts in jiffies: a few tens of ms are rounding. */
void disturbance_end(struct disturbance *d)
{
	double ms_tick = 1000.0 / (double)sysconf(_SC_CLK_TCK);
	int ncpu = d->cpu[0] == d->cpu[1] ? 1 : 2;
	long long idle, steal;

	jiffies(d->cpu, &idle, &steal);
	d->wall_s = (double)(mono_ns() - d->t0) / 1e9;
	d->steal_ms = (double)(steal - d->steal0) * ms_tick;
	d->others_ms = d->wall_s * 1000 * ncpu - (double)(idle - d->idle0) * ms_tick -
		       d->steal_ms - (double)(ours_ns(d->extra_pid) - d->ours0) / 1e6;
	if (d->others_ms < 0)
		d->others_ms = 0;
}

bool disturbance_noisy(const struct disturbance *d)
{
	return d->others_ms + d->steal_ms > 50 + 100 * d->wall_s;
}
