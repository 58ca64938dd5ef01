/*
 * common.c - options, cases and JSON output shared by the programs of
 * bench/ (see common.h for the contract).  The clock and the workers are
 * cli/measure.c's and cli/workers.c's, which `shmbus bench` uses too.
 *
 * The disturbance of a case is measured by cli/measure.c, as for `shmbus
 * bench`: the busy time of the two CPUs (from /proc/stat), less the CPU
 * time of this process, its reaped workers and a server we started
 * (B.extra_pid), and the time the hypervisor stole; past 50 ms + 10 % of
 * the wall time a case is flagged noisy.
 */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct bstate B;

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

void b_init(const char *prog, int argc, char **argv,
	    int (*own)(int argc, char **argv, int *i), const char *own_usage)
{
	B.prog = prog;
	B.cpu[0] = 0;
	B.cpu[1] = 1;
	B.out = stdout;
	parse(argc, argv, own, own_usage);
	if (!B.runs)
		B.runs = B.quick ? 3 : 5;
	setvbuf(stderr, NULL, _IOLBF, 0);
	measure_clock_init(true, B.quick ? 20000000 : 60000000);
	if (workers_init(B.cpu[0] == B.cpu[1] ? WORKERS_ONE_CPU : 0)) {
		fprintf(stderr, "%s: %s\n", B.prog, workers_why());
		exit(1);
	}
}

/* ------------------------------------------------------------------ */
/* Pinning a server, shared memory                                     */

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

void *b_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		workers_fail("mmap of %zu shared bytes: %s", len, strerror(errno));
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
	workers_forget();
	for (int k = 0; k < B.runs && rc == 0; k++) {
		rc = run(arg, out);
		for (int i = 0; rc == 0 && i < nm; i++)
			v[i][runs] = out[i];
		runs += rc == 0;
	}
	disturbance_end(&d);
	if (rc) {
		char reason[600];

		snprintf(reason, sizeof reason, "FAILED after %d run%s: %s", runs,
			 runs == 1 ? "" : "s", workers_why()[0] ? workers_why() : "unknown error");
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
