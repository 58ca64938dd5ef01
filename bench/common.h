/*
 * common.h - what the programs of bench/ share.
 *
 * Each program of bench/ (limits, peers_ipc, peer_zmq, peer_redis,
 * shmbus_workloads, shmbus_groups, probes) measures a set of cases.  A
 * case runs --runs times; each run yields one value per metric; the case
 * is written as JSON lines, one per metric, with the min, median and max across runs, every
 * run's value, and how much CPU time other tasks took from the two CPUs
 * while it ran (the disturbance, accounted as `shmbus bench` does).
 * bench/report reads those lines back, so their format is fixed here and
 * documented in bench/README.md.
 *
 * This header owns the options every program takes (--quick, --runs,
 * --cpus, --only, --out), the global state they fill (`B`), the cases
 * and the JSON output.  What a measurement needs beyond that is what
 * `shmbus bench` uses too, compiled once in cli/ and linked from there:
 *   cli/measure.h   the clock (the TSC when invariant, calibrated against
 *                   CLOCK_MONOTONIC, else CLOCK_MONOTONIC) and the cost
 *                   of one read, quantiles, min / median / max, and the
 *                   disturbance accounting
 *   cli/workers.h   forked workers pinned to their CPUs and always reaped
 *                   (killed by pid past a deadline); workers_fail() and
 *                   workers_why(): why the current case failed
 * (and, for the shmbus programs, cli/workloads.h and cli/bare.h).
 */
#ifndef SHMBUS_BENCH_COMMON_H
#define SHMBUS_BENCH_COMMON_H

#include "../cli/measure.h"
#include "../cli/workers.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define B_MAX_RUNS    64
#define B_MAX_METRICS 8

/* The options and the state every program shares. */
struct bstate {
	const char *prog;         /* "limits", ... : prefix of every case id */
	bool quick;
	int runs;
	int cpu[2];               /* the two CPUs measuring sides are pinned to */
	const char *only;         /* comma list of case ids (or prefixes); NULL: all */
	FILE *out;                /* JSON lines (default stdout) */
	pid_t extra_pid;          /* a server whose CPU time counts as ours (0: none) */
	int failures;             /* cases that failed */
};

extern struct bstate B;

/* ------------------------------------------------------------------ */
/* Set-up                                                              */

/*
 * Parse the common options (the program's own are handed to `own`, which
 * returns 1 if it took argv[*i] (advancing *i past a value), 0 if not,
 * -1 on a bad value), calibrate the clock, and set up the workers
 * (workers_init: SIGCHLD blocked for the reaper).  Exits with status 2
 * on bad usage, 1 if the workers cannot be set up.
 */
void b_init(const char *prog, int argc, char **argv,
	    int (*own)(int argc, char **argv, int *i), const char *own_usage);

/* Pin every thread of process pid to cpu: 0 or -errno. */
int b_pin_pid(pid_t pid, int cpu);

/* A MAP_SHARED anonymous mapping, zeroed and faulted in; NULL on failure
 * (workers_why() says why). */
void *b_shared(size_t len);
void b_unshare(void *p, size_t len);

/* ------------------------------------------------------------------ */
/* Cases, statistics and output                                        */

enum better { LOWER = 0, HIGHER = 1 };

struct bmetric {
	const char *key;          /* "p50", "rate" */
	const char *unit;         /* "ns", "M msg/s", "GB/s" */
	enum better better;
};

/* One run of a case: fill out[] (one value per metric), 0 or -1 (after
 * workers_fail). */
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

/* Exit status of a program: 0 if no case failed. */
int b_exit(void);

#endif /* SHMBUS_BENCH_COMMON_H */
