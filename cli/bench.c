/*
 * bench.c - `shmbus bench`: the speed figures of the core targets.
 *
 * The figures are the core workloads of `make bench`, measured by the
 * same code (workloads.c) with fewer sizes and their own targets.  Every
 * figure runs its two sides in two forked worker processes, each pinned
 * to its own CPU (workers.c), as a real producer and a real consumer
 * would be.  The parent creates the topics, forks the workers, sleeps
 * until they exit (sigtimedwait on SIGCHLD, with a deadline after which
 * it kills them by pid), and reads what they measured from one
 * MAP_SHARED anonymous mapping made before any fork.  Each figure runs
 * --runs times, each run warming up before it measures; the table shows
 * min / median / max across runs, and PASS or "short" by comparing the
 * median with the target.
 *
 *   pingpong  round trip through two topics, both sides spinning (poll
 *             with timeout 0): p50, p90, p99, p99.9, max; and the bare
 *             floor, two processes bouncing a counter through two words
 *   send      one producer -> one consumer, one shmbus_producer_send a
 *             record, zero-copy polls of up to 256: records/s end to end
 *   batch     the same with shmbus_producer_send_batch of 64 records
 *   large     1 MiB values end to end, the consumer copying each value
 *             out of the ring (opts.copy): GB/s
 *   blocking  round trip with sleeping consumers (spin_us < 0), against a
 *             bare FUTEX_WAIT/FUTEX_WAKE ping-pong between two processes
 *
 * Round trips of the bus and of the bare floor alternate in blocks within
 * one pair of processes, so both meet the same machine: in a VM, the
 * distance between the two vCPUs and the cost of waking an idle one
 * change while we measure.
 *
 * Latencies are read with the TSC (calibrated against CLOCK_MONOTONIC)
 * when it is invariant, else with CLOCK_MONOTONIC; the cost of one read
 * is measured and printed.  Throughput is timed with CLOCK_MONOTONIC by
 * the consumer, from its last warm-up record to its last record, as
 * `make bench` times its peers.  Throughput consumers wait inside poll
 * (its own spin, then the futex), as an application would; --tight makes
 * them call poll with timeout 0 in a loop instead.  Throughput topics use
 * the backpressure policy with blocking producers, so a slower consumer
 * slows the producer instead of losing records; consumers check every
 * record's sequence number (the value's first 8 bytes) and a lapped
 * consumer is an error (reset policy "error"), so no figure counts
 * records that were lost.
 *
 * After each figure, a line says how much CPU time other tasks and the
 * hypervisor took from the two CPUs, and flags the figure as noisy when
 * that is more than rounding.
 *
 * This file holds the command line, the set-up (CPUs, root, clock) and
 * the run of each figure; bench.h says where the rest lives.
 */
#include "bench.h"

#include <errno.h>
#include <string.h>

static const struct sizes sizes_full = { 20000, 200000, 1000000, 10000000, 2000000, 20000000,
					 200, 2000, 2000, 20000 };
static const struct sizes sizes_quick = { 5000, 50000, 200000, 2000000, 400000, 4000000,
					  50, 500, 500, 5000 };

/* ------------------------------------------------------------------ */
/* Options                                                             */

static void usage(FILE *f)
{
	fprintf(f, "usage: shmbus [--root DIR] bench [--quick] [--runs N] [--only NAME[,NAME]]\n"
		   "                    [--json FILE] [--cpus A,B] [--clock tsc|mono] [--tight]\n"
		   "  --quick   fewer records and samples (the whole bench in < 30 s)\n"
		   "  --runs    runs per figure (default 5); min / median / max are shown\n"
		   "  --only    figures to run: pingpong send batch large blocking\n"
		   "  --json    also write the results to FILE as JSON\n"
		   "  --cpus    the two CPUs to pin the workers to (default: the first two)\n"
		   "  --clock   latency clock (default: the TSC when invariant)\n"
		   "  --tight   throughput consumers call poll with timeout 0 in a loop\n"
		   "            instead of letting poll spin (default)\n"
		   "Without --root, a temporary root under /dev/shm is made and removed.\n");
}

/* --name VALUE or --name=VALUE: 1 with *ret set, 0 if not this option,
 * -1 if the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **ret)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) || (a[n] && a[n] != '='))
		return 0;
	if (a[n] == '=') {
		*ret = a + n + 1;
		return 1;
	}
	if (*i + 1 >= argc) {
		fprintf(stderr, "shmbus bench: %s needs a value\n", name);
		return -1;
	}
	*ret = argv[++*i];
	return 1;
}

static bool selected(const char *only, const char *name)
{
	size_t n = strlen(name);

	if (!only)
		return true;
	for (const char *p = only; p; p = strchr(p, ',')) {
		p += *p == ',';
		if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == 0))
			return true;
	}
	return false;
}

static int check_only(const char *only)
{
	for (const char *p = only; p; p = strchr(p, ',')) {
		size_t n;
		int k;

		p += *p == ',';
		n = strcspn(p, ",");
		for (k = 0; k < NFIGS; k++)
			if (strlen(figure_defs[k].name) == n && !strncmp(p, figure_defs[k].name, n))
				break;
		if (k == NFIGS) {
			fprintf(stderr, "shmbus bench: no figure \"%.*s\"; the figures are pingpong, "
				"send, batch, large, blocking\n", (int)n, p);
			return -1;
		}
	}
	return 0;
}

static int parse_runs_cpus(struct bench *b, const char *runs, const char *cpus)
{
	char *end;

	if (runs) {
		long n = strtol(runs, &end, 10);

		if (*end || n < 1 || n > MAX_RUNS) {
			fprintf(stderr, "shmbus bench: --runs takes 1 to %d, not \"%s\"\n", MAX_RUNS,
				runs);
			return -1;
		}
		b->runs = (int)n;
	}
	b->cpus_given = cpus != NULL;
	if (cpus && (sscanf(cpus, "%d,%d", &b->w.cpu[0], &b->w.cpu[1]) != 2 || b->w.cpu[0] < 0 ||
		     b->w.cpu[1] < 0 || b->w.cpu[0] >= CPU_SETSIZE || b->w.cpu[1] >= CPU_SETSIZE)) {
		fprintf(stderr, "shmbus bench: --cpus takes two CPU numbers, as 0,1\n");
		return -1;
	}
	return 0;
}

/* 0: go on; 1: done (help); -1: bad usage. */
static int parse_args(struct bench *b, int argc, char **argv)
{
	const char *runs = NULL, *cpus = NULL;
	int i = argc > 0 && argv[0][0] != '-' ? 1 : 0; /* the word "bench" */

	for (; i < argc; i++) {
		int r = 0;

		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(argv[i], "--quick"))
			b->quick = true;
		else if (!strcmp(argv[i], "--tight"))
			b->tight = true;
		else if (!((r = opt_value(argc, argv, &i, "--runs", &runs)) ||
			   (r = opt_value(argc, argv, &i, "--only", &b->only)) ||
			   (r = opt_value(argc, argv, &i, "--json", &b->json)) ||
			   (r = opt_value(argc, argv, &i, "--cpus", &cpus)) ||
			   (r = opt_value(argc, argv, &i, "--clock", &b->clock_name)))) {
			fprintf(stderr, "shmbus bench: unknown option \"%s\"\n", argv[i]);
			usage(stderr);
			return -1;
		}
		if (r < 0)
			return -1;
	}
	if (b->clock_name && strcmp(b->clock_name, "tsc") && strcmp(b->clock_name, "mono")) {
		fprintf(stderr, "shmbus bench: --clock takes tsc or mono\n");
		return -1;
	}
	if (b->only && check_only(b->only))
		return -1;
	return parse_runs_cpus(b, runs, cpus);
}

/* ------------------------------------------------------------------ */
/* Set-up: CPUs, root, clock                                           */

/* Two CPUs this process may run on (the first two, unless --cpus). */
static int pick_cpus(struct bench *b)
{
	int *cpu = b->w.cpu, found = 0;
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof set, &set)) {
		fprintf(stderr, "shmbus bench: sched_getaffinity: %s\n", strerror(errno));
		return -1;
	}
	b->ncpus = CPU_COUNT(&set);
	if (b->cpus_given) {
		if (!CPU_ISSET(cpu[0], &set) || !CPU_ISSET(cpu[1], &set)) {
			fprintf(stderr, "shmbus bench: CPU %d or %d is not one this process may use\n",
				cpu[0], cpu[1]);
			return -1;
		}
	} else {
		for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
			if (CPU_ISSET(c, &set))
				cpu[found++] = c;
		if (found == 1)
			cpu[1] = cpu[0];
	}
	b->one_cpu = cpu[0] == cpu[1];
	return 0;
}

/* The root (a temporary one under /dev/shm without --root) and the
 * mapping the workers share, sized for the longest round trip. */
static int open_root(struct bench *b, const char *root)
{
	uint64_t trips = b->sz->pp_count > b->sz->blk_count ? b->sz->pp_count : b->sz->blk_count;

	b->w.timeout_s = RUN_TIMEOUT_S;
	if (wl_open(&b->w, root, "/dev/shm", trips) == 0)
		return 0;
	fprintf(stderr, "shmbus bench: %s%s\n", workers_why(),
		root ? "" : "; give a root with --root");
	return -1;
}

/* ------------------------------------------------------------------ */
/* Running the figures                                                 */

/* Run one figure --runs times; false if a run failed. */
static bool run_figure(struct bench *b, struct result *r)
{
	double out[MAX_METRICS] = { 0 };
	int rc;

	workers_forget();
	disturbance_begin(&r->dist, b->w.cpu, 0);
	rc = r->def->setup(b, r->desc, sizeof r->desc);
	for (int k = 0; rc == 0 && k < b->runs; k++) {
		rc = r->def->once(b, out);
		for (int i = 0; rc == 0 && i < MAX_METRICS; i++)
			r->v[i][r->runs] = out[i];
		if (rc == 0)
			r->runs++;
	}
	drop_topics(b);
	r->failed = rc != 0;
	disturbance_end(&r->dist);
	print_result(r);
	if (rc == -EINTR)
		printf("  interrupted\n");
	else if (rc)
		printf("  FAILED: %s\n", workers_why()[0] ? workers_why() : "unknown error");
	fflush(stdout);
	return rc == 0;
}

static int run_all(struct bench *b)
{
	char cpu[256], kernel[256], date[64];
	int failed = 0;

	machine_info(cpu, sizeof cpu, kernel, sizeof kernel, date, sizeof date);
	print_header(b, cpu, kernel, date);
	for (int k = 0; k < NFIGS && !workers_interrupted(); k++) {
		struct result *r = &b->res[k];

		r->def = &figure_defs[k];
		r->selected = selected(b->only, r->def->name);
		if (r->selected && !run_figure(b, r))
			failed++;
	}
	if (b->json && write_json(b, cpu, kernel, date))
		failed++;
	if (workers_interrupted())
		return 130;
	return failed ? 1 : 0;
}

int cmd_bench(const char *root, int argc, char **argv)
{
	static struct bench bench; /* too large for the stack */
	struct bench *b = &bench;
	int rc;

	memset(b, 0, sizeof *b);
	b->runs = 5;
	rc = parse_args(b, argc, argv);
	if (rc)
		return rc > 0 ? 0 : 2;
	b->sz = b->quick ? &sizes_quick : &sizes_full;
	if (pick_cpus(b))
		return 1;
	measure_clock_init(!b->clock_name || !strcmp(b->clock_name, "tsc"),
			   b->quick ? 30000000 : 100000000);
	/* Workers' exits and ^C arrive through sigtimedwait in the reaper. */
	if (workers_init(WORKERS_INTERRUPTIBLE | (b->one_cpu ? WORKERS_ONE_CPU : 0))) {
		fprintf(stderr, "shmbus bench: %s\n", workers_why());
		return 1;
	}
	rc = open_root(b, root) ? 1 : run_all(b);
	wl_close(&b->w);
	workers_fini();
	return rc;
}
