/*
 * common.h - what the programs of bench/ share.
 *
 * Each program of bench/ (limits, peers_ipc, peer_zmq, peer_redis,
 * shmbus_workloads) measures a set of cases.  A case runs --runs times;
 * each run yields one value per metric; the case is written as JSON
 * lines, one per metric, with the min, median and max across runs, every
 * run's value, and how much CPU time other tasks took from the two CPUs
 * while it ran (the disturbance, accounted as `shmbus bench` does).
 * bench/report reads those lines back, so their format is fixed here and
 * documented in bench/README.md.
 *
 * This header owns:
 *   - the options every program takes (--quick, --runs, --cpus, --only,
 *     --out) and the global state they fill (`B`);
 *   - the clock: the TSC when invariant (calibrated against
 *     CLOCK_MONOTONIC), else CLOCK_MONOTONIC, and the cost of one read;
 *   - pinning, and forked worker processes that are always reaped: each
 *     pinned to its CPU, killed by pid past a deadline;
 *   - statistics (quantiles of samples, min / median / max of runs) and
 *     the JSON output.
 * Workers call the inline clock and spin helpers on the paths they time.
 */
#ifndef SHMBUS_BENCH_COMMON_H
#define SHMBUS_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#define NS            1000000000LL
#define B_MAX_RUNS    64
#define B_MAX_METRICS 8
#define B_MAX_WORKERS 8

/* The options and the state every program shares. */
struct bstate {
	const char *prog;         /* "limits", ... : prefix of every case id */
	bool quick;
	int runs;
	int cpu[2];               /* the two CPUs measuring sides are pinned to */
	const char *only;         /* comma list of case ids (or prefixes); NULL: all */
	FILE *out;                /* JSON lines (default stdout) */
	bool tsc;                 /* ticks are TSC cycles, else nanoseconds */
	double ticks_per_ns;
	double tick_cost_ns;      /* one b_ticks() */
	double mono_cost_ns;      /* one clock_gettime(CLOCK_MONOTONIC) */
	pid_t extra_pid;          /* a server whose CPU time counts as ours (0: none) */
	int64_t deadline_ns;      /* a worker gives up past this (CLOCK_MONOTONIC) */
	int failures;             /* cases that failed */
	char why[400];            /* why the current case failed */
};

extern struct bstate B;

/* ------------------------------------------------------------------ */
/* Clock                                                               */

static inline int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static inline uint64_t b_ticks(void)
{
#if defined(__x86_64__)
	unsigned aux;

	if (B.tsc)
		return __rdtscp(&aux); /* waits for earlier instructions */
#endif
	return (uint64_t)mono_ns();
}

static inline double ticks_ns(uint64_t t)
{
	return (double)t / B.ticks_per_ns;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
	_mm_pause();
#endif
}

/* An empty spin: false once past the deadline (checked every 4096). */
static inline bool b_spin(unsigned *spins)
{
	cpu_relax();
	if (++*spins % 4096)
		return true;
	return mono_ns() < B.deadline_ns;
}

/* ------------------------------------------------------------------ */
/* Set-up, pinning and workers                                         */

/*
 * Parse the common options (the program's own are handed to `own`, which
 * returns 1 if it took argv[*i] (advancing *i past a value), 0 if not,
 * -1 on a bad value), calibrate the clock, block SIGCHLD for the reaper.
 * Exits with status 2 on bad usage.
 */
void b_init(const char *prog, int argc, char **argv,
	    int (*own)(int argc, char **argv, int *i), const char *own_usage);

/* Pin the calling thread (and its future threads) to cpu: 0 or -errno. */
int b_pin(int cpu);

/* Pin every thread of process pid to cpu: 0 or -errno. */
int b_pin_pid(pid_t pid, int cpu);

/* Fail the current case with a reason (kept in B.why); returns -1. */
int b_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A MAP_SHARED anonymous mapping, zeroed and faulted in; NULL on failure. */
void *b_shared(size_t len);
void b_unshare(void *p, size_t len);

/*
 * Run n workers: worker i is forked, pinned to cpus[i], and runs
 * fn(i, arg), its return value (0: success) becoming its exit status.
 * Sleeps until all exit; past timeout_s (or once one fails) kills the
 * rest by pid and reaps them.  Workers see B.deadline_ns, set to the
 * timeout less a grace, and should give up by then.  Workers write
 * their failure reason into *why (a MAP_SHARED buffer of 400 bytes, or
 * NULL).  0 if every worker exited with 0, else -1 (B.why says why).
 */
int b_workers(int n, const int *cpus, int (*fn)(int i, void *arg), void *arg,
	      double timeout_s, char *why);

/* ------------------------------------------------------------------ */
/* Cases, statistics and output                                        */

enum better { LOWER = 0, HIGHER = 1 };

struct bmetric {
	const char *key;          /* "p50", "rate" */
	const char *unit;         /* "ns", "M msg/s", "GB/s" */
	enum better better;
};

/* One run of a case: fill out[] (one value per metric), 0 or -1 (after
 * b_fail). */
typedef int (*b_run_fn)(void *arg, double *out);

/*
 * Run a case --runs times (unless --only leaves it out) and write its
 * metrics.  id is "<group>.<name>" (the program's name is prepended);
 * note says what was measured and how.  Also prints a line per metric
 * to stderr as it goes.  0, or -1 if a run failed (written as failed).
 */
int b_case(const char *id, const char *title, const char *note,
	   const struct bmetric *m, int nm, b_run_fn run, void *arg);

/* Write a case that could not be measured, with the reason (printed). */
void b_skip(const char *id, const char *title, const char *reason);

/* Is the case (its id without the program's name) selected by --only?
 * --only takes ids or their prefixes, with or without the program's name. */
bool b_selected(const char *id);

/* Sort samples (in ticks) and return the q-quantiles in ns. */
void b_quantiles(uint64_t *s, size_t n, const double *q, int nq, double *out);

/* Exit status of a program: 0 if no case failed. */
int b_exit(void);

#endif /* SHMBUS_BENCH_COMMON_H */
