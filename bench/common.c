/*
 * common.c - options, clock, workers, quantiles and JSON output shared
 * by the programs of bench/ (see common.h for the contract).
 *
 * Workers are forked with SIGCHLD blocked in the parent, which sleeps in
 * sigtimedwait until they exit or the deadline passes, then kills the
 * stragglers by pid (never by name) and reaps them: no run leaves a
 * process behind.  Each worker is pinned before it does anything else,
 * and dies with the parent (PR_SET_PDEATHSIG).
 *
 * The disturbance of a case is measured by measure.c, as for `shmbus
 * bench`: the busy time of the two CPUs (from /proc/stat), less the CPU
 * time of this process, its reaped workers and a server we started
 * (B.extra_pid), and the time the hypervisor stole; past 50 ms + 10 % of
 * the wall time a case is flagged noisy.
 */
#include "common.h"
#include "../cli/measure.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct bstate B;

static sigset_t chld_set, old_set;

/* ------------------------------------------------------------------ */
/* Options                                                             */

static void usage(FILE *f, const char *own_usage)
{
	fprintf(f, "usage: %s [--quick] [--runs N] [--cpus A,B] [--only ID[,ID]] [--out FILE]%s\n"
		   "  --quick  fewer samples (for `make bench QUICK=1`)\n"
		   "  --runs   runs per case (default 5, 3 with --quick); min/median/max are kept\n"
		   "  --cpus   the two CPUs to pin the measuring sides to (default 0,1)\n"
		   "  --only   the cases to run (ids or prefixes of ids)\n"
		   "  --out    append the JSON lines to FILE instead of stdout\n",
		B.prog, own_usage ? own_usage : "");
}

static int common_opt(int argc, char **argv, int *i)
{
	const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
	char *end;

	if (!strcmp(a, "--quick")) {
		B.quick = true;
		return 1;
	}
	if (strcmp(a, "--runs") && strcmp(a, "--cpus") && strcmp(a, "--only") && strcmp(a, "--out"))
		return 0;
	if (!v)
		return -1;
	++*i;
	if (!strcmp(a, "--runs")) {
		B.runs = (int)strtol(v, &end, 10);
		return *end || B.runs < 1 || B.runs > B_MAX_RUNS ? -1 : 1;
	}
	if (!strcmp(a, "--cpus"))
		return sscanf(v, "%d,%d", &B.cpu[0], &B.cpu[1]) == 2 && B.cpu[0] >= 0 &&
		       B.cpu[1] >= 0 && B.cpu[0] < CPU_SETSIZE && B.cpu[1] < CPU_SETSIZE ? 1 : -1;
	if (!strcmp(a, "--only")) {
		B.only = v;
		return 1;
	}
	B.out = fopen(v, "a");
	if (!B.out)
		fprintf(stderr, "%s: cannot open %s: %s\n", B.prog, v, strerror(errno));
	return B.out ? 1 : -1;
}

static void parse(int argc, char **argv, int (*own)(int, char **, int *), const char *own_usage)
{
	for (int i = 1; i < argc; i++) {
		int r;

		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout, own_usage);
			exit(0);
		}
		r = common_opt(argc, argv, &i);
		if (r == 0 && own)
			r = own(argc, argv, &i);
		if (r <= 0) {
			fprintf(stderr, "%s: %s option \"%s\"\n", B.prog, r ? "bad value for" :
				"unknown", argv[i]);
			usage(stderr, own_usage);
			exit(2);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Clock                                                               */

static bool cpu_flag(const char *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char *line = NULL, *p;
	size_t cap = 0, n = strlen(flag);
	bool found = false;

	while (f && !found && getline(&line, &cap, f) > 0) {
		if (strncmp(line, "flags", 5))
			continue;
		for (p = strstr(line, flag); p && !found; p = strstr(p + 1, flag))
			found = p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n' || !p[n]);
		break;
	}
	free(line);
	if (f)
		fclose(f);
	return found;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / NS, .tv_nsec = ns % NS };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* TSC when invariant, calibrated against CLOCK_MONOTONIC; then the
 * cost of one read of each clock, averaged over 200 000 reads. */
static void clock_init(void)
{
	volatile uint64_t sink = 0;
	uint64_t c0, c1;
	int64_t t0, t1;

#if defined(__x86_64__)
	B.tsc = cpu_flag("rdtscp") && cpu_flag("constant_tsc") && cpu_flag("nonstop_tsc");
#endif
	B.ticks_per_ns = 1.0;
	if (B.tsc) {
		t0 = mono_ns();
		c0 = b_ticks();
		sleep_ns(B.quick ? 20000000 : 60000000);
		t1 = mono_ns();
		c1 = b_ticks();
		B.ticks_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
	}
	c0 = b_ticks();
	for (int i = 0; i < 200000; i++)
		sink += b_ticks();
	c1 = b_ticks();
	B.tick_cost_ns = ticks_ns(c1 - c0) / 200000;
	t0 = mono_ns();
	for (int i = 0; i < 200000; i++)
		sink += (uint64_t)mono_ns();
	B.mono_cost_ns = (double)(mono_ns() - t0) / 200000;
	(void)sink;
}

void b_init(const char *prog, int argc, char **argv,
	    int (*own)(int argc, char **argv, int *i), const char *own_usage)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	B.prog = prog;
	B.cpu[0] = 0;
	B.cpu[1] = 1;
	B.out = stdout;
	parse(argc, argv, own, own_usage);
	if (!B.runs)
		B.runs = B.quick ? 3 : 5;
	clock_init();
	sigaction(SIGCHLD, &dfl, NULL);
	sigemptyset(&chld_set);
	sigaddset(&chld_set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld_set, &old_set);
	setvbuf(stderr, NULL, _IOLBF, 0);
}

/* ------------------------------------------------------------------ */
/* Pinning, shared memory, failures                                    */

int b_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) ? -errno : 0;
}

int b_pin_pid(pid_t pid, int cpu)
{
	char path[64];
	struct dirent *e;
	cpu_set_t set;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && sched_setaffinity(atoi(e->d_name), sizeof set, &set))
			rc = -errno;
	closedir(d);
	return rc;
}

int b_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(B.why, sizeof B.why, fmt, ap);
	va_end(ap);
	return -1;
}

void *b_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		b_fail("mmap of %zu shared bytes: %s", len, strerror(errno));
		return NULL;
	}
	memset(p, 0, len); /* fault it in before anything is timed */
	return p;
}

void b_unshare(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

/* ------------------------------------------------------------------ */
/* Workers                                                             */

static void kill_all(pid_t *pid, int n)
{
	for (int i = 0; i < n; i++)
		if (pid[i] > 0)
			kill(pid[i], SIGKILL);
	for (int i = 0; i < n; i++)
		if (pid[i] > 0)
			waitpid(pid[i], NULL, 0);
	for (int i = 0; i < n; i++)
		pid[i] = 0;
}

static int worker_main(int i, const int *cpus, int (*fn)(int, void *), void *arg, char *why)
{
	int rc;

	sigprocmask(SIG_SETMASK, &old_set, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rc = b_pin(cpus[i]);
	if (rc) {
		if (why)
			snprintf(why, 400, "worker %d: cannot pin to CPU %d: %s", i, cpus[i],
				 strerror(-rc));
		return 1;
	}
	B.why[0] = 0;
	rc = fn(i, arg);
	if (rc && why && !why[0])
		snprintf(why, 400, "worker %d: %.300s", i, B.why[0] ? B.why : "failed");
	return rc ? 1 : 0;
}

/* Reap workers as they exit; 0, or -1 once one fails or time is up. */
static int reap(pid_t *pid, int n, int64_t deadline, char *why)
{
	int live = n, status;

	while (live > 0) {
		int64_t left = deadline - mono_ns();
		struct timespec ts = { .tv_sec = left / NS, .tv_nsec = left % NS };

		for (int i = 0; i < n; i++) {
			if (pid[i] <= 0 || waitpid(pid[i], &status, WNOHANG) != pid[i])
				continue;
			pid[i] = 0;
			live--;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				continue;
			b_fail("%s", why && why[0] ? why : WIFSIGNALED(status) ?
			       "a worker was killed by a signal" : "a worker failed");
			kill_all(pid, n);
			return -1;
		}
		if (live == 0)
			break;
		if (left <= 0) {
			kill_all(pid, n);
			return b_fail("a run took too long: its workers were killed%s%s",
				      why && why[0] ? "; " : "", why ? why : "");
		}
		sigtimedwait(&chld_set, NULL, &ts);
	}
	return 0;
}

int b_workers(int n, const int *cpus, int (*fn)(int i, void *arg), void *arg,
	      double timeout_s, char *why)
{
	pid_t pid[B_MAX_WORKERS] = { 0 };
	int64_t deadline = mono_ns() + (int64_t)(timeout_s * 1e9);

	if (why)
		why[0] = 0;
	B.deadline_ns = deadline - 2 * NS; /* workers give up before being killed */
	for (int i = 0; i < n && i < B_MAX_WORKERS; i++) {
		fflush(NULL);
		pid[i] = fork();
		if (pid[i] == 0)
			_exit(worker_main(i, cpus, fn, arg, why));
		if (pid[i] < 0) {
			int err = errno;

			pid[i] = 0;
			kill_all(pid, n);
			return b_fail("fork: %s", strerror(err));
		}
	}
	return reap(pid, n, deadline, why);
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */

void b_quantiles(uint64_t *s, size_t n, const double *q, int nq, double *out)
{
	measure_quantiles(s, n, q, nq, out);
	for (int i = 0; i < nq; i++)
		if (!isnan(out[i]))
			out[i] = ticks_ns((uint64_t)out[i]);
}

/* ------------------------------------------------------------------ */
/* Output                                                              */

static void json_str(const char *key, const char *s)
{
	fprintf(B.out, "\"%s\": \"", key);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(B.out, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(B.out, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, B.out);
	}
	fputc('"', B.out);
}

static void json_head(const char *id, const char *title)
{
	fputc('{', B.out);
	json_str("prog", B.prog);
	fputs(", ", B.out);
	json_str("id", id);
	fputs(", ", B.out);
	json_str("title", title);
}

static void emit_metric(const char *id, const char *title, const char *note,
			const struct bmetric *m, const double *v, int runs,
			const struct disturbance *d)
{
	double min, med, max;

	measure_summary(v, runs, &min, &med, &max);
	json_head(id, title);
	fputs(", ", B.out);
	json_str("metric", m->key);
	fputs(", ", B.out);
	json_str("unit", m->unit);
	fprintf(B.out, ", \"better\": \"%s\", \"min\": %.6g, \"median\": %.6g, \"max\": %.6g, "
		"\"runs\": [", m->better == HIGHER ? "higher" : "lower", min, med, max);
	for (int k = 0; k < runs; k++)
		fprintf(B.out, "%s%.6g", k ? ", " : "", v[k]);
	fprintf(B.out, "], \"wall_s\": %.2f, \"others_ms\": %.0f, \"steal_ms\": %.0f, "
		"\"noisy\": %s, ", d->wall_s, d->others_ms, d->steal_ms,
		disturbance_noisy(d) ? "true" : "false");
	json_str("note", note);
	fputs("}\n", B.out);
	fprintf(stderr, "  %-34s %-10s %12.4g %12.4g %12.4g %s%s\n", id, m->key, min, med, max,
		m->unit, disturbance_noisy(d) ? "  NOISY" : "");
}

bool b_selected(const char *id)
{
	size_t n, pn = strlen(B.prog);

	if (!B.only)
		return true;
	for (const char *p = B.only; *p; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		if (n && !strncmp(id, p, n))
			return true;
		if (n > pn && !strncmp(p, B.prog, pn) && p[pn] == '.' &&
		    !strncmp(id, p + pn + 1, n - pn - 1))
			return true;
	}
	return false;
}

void b_skip(const char *id, const char *title, const char *reason)
{
	char full[160];

	snprintf(full, sizeof full, "%s.%s", B.prog, id);
	if (!b_selected(id))
		return;
	json_head(full, title);
	fputs(", ", B.out);
	json_str("skip", reason);
	fputs("}\n", B.out);
	fflush(B.out);
	fprintf(stderr, "  %-34s SKIPPED: %s\n", full, reason);
}

int b_case(const char *id, const char *title, const char *note,
	   const struct bmetric *m, int nm, b_run_fn run, void *arg)
{
	static double v[B_MAX_METRICS][B_MAX_RUNS];
	double out[B_MAX_METRICS];
	char full[160];
	struct disturbance d;
	int runs = 0, rc = 0;

	snprintf(full, sizeof full, "%s.%s", B.prog, id);
	if (!b_selected(id))
		return 0;
	disturbance_begin(&d, B.cpu, B.extra_pid);
	for (int k = 0; k < B.runs && rc == 0; k++) {
		B.why[0] = 0;
		rc = run(arg, out);
		for (int i = 0; rc == 0 && i < nm; i++)
			v[i][runs] = out[i];
		runs += rc == 0;
	}
	disturbance_end(&d);
	if (rc) {
		char reason[600];

		snprintf(reason, sizeof reason, "FAILED after %d run%s: %s", runs,
			 runs == 1 ? "" : "s", B.why[0] ? B.why : "unknown error");
		B.failures++;
		b_skip(id, title, reason);
		return -1;
	}
	for (int i = 0; i < nm; i++)
		emit_metric(full, title, note, &m[i], v[i], runs, &d);
	fflush(B.out);
	return 0;
}

int b_exit(void)
{
	if (B.out && B.out != stdout)
		fclose(B.out);
	return B.failures ? 1 : 0;
}
