/*
 * workers.h - forked, pinned worker processes, for `shmbus bench` and
 * the programs of `make bench`.
 *
 * A run forks n workers, each pinned to its CPU before it does anything
 * else and killed with its parent (PR_SET_PDEATHSIG); the parent sleeps
 * in sigtimedwait until they exit, and once one fails, past the run's
 * deadline, or (when asked) on SIGINT or SIGTERM, kills the others by pid
 * (never by name) and reaps them: no run leaves a process behind.
 *
 * Why a run failed is kept as one line of text.  A worker writes its
 * reason into its own slot of a MAP_SHARED mapping made by workers_init()
 * before any fork; the parent writes its own, and after a failed run
 * copies the failing worker's, prefixed with its number and CPU.  Code
 * that runs in either (topic set-up, a worker's loop) calls
 * workers_fail() and need not know which it is in.
 *
 * Workers see the run's deadline (less a grace to give up by
 * themselves) through workers_spin() and workers_late(), inline because
 * they are called on the paths they time.
 */
#ifndef SHMBUS_CLI_WORKERS_H
#define SHMBUS_CLI_WORKERS_H

#include "measure.h"
#include "../util/atomics.h" /* cpu_relax() */

#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#define WORKERS_MAX 8

enum {
	WORKERS_INTERRUPTIBLE = 1,  /* SIGINT and SIGTERM end a run (workers_interrupted()) */
	WORKERS_ONE_CPU = 2,        /* workers share a CPU: spinners yield it */
};

/* What a worker reads while it spins: set by the parent before a fork. */
struct workers_state {
	int64_t deadline_ns;        /* CLOCK_MONOTONIC: give up past this */
	bool yield;                 /* sched_yield in every spin (one CPU) */
};

extern struct workers_state workers_state;

/* Once, before any fork: the reasons' shared mapping, SIGCHLD (and with
 * WORKERS_INTERRUPTIBLE, SIGINT and SIGTERM) blocked so that a run's
 * parent sleeps in sigtimedwait.  0, or -errno (workers_why() says). */
int workers_init(unsigned flags);

/* Undo workers_init(): the signal mask and the mapping. */
void workers_fini(void);

/*
 * Run n (<= WORKERS_MAX) workers: worker i is forked, pinned to cpus[i],
 * and runs fn(i, arg), 0 meaning success.  Returns once all have exited:
 * 0; -ECHILD if one failed; -ETIMEDOUT if the run took past timeout_s;
 * -EINTR if interrupted; -errno if a fork failed.  workers_why() says
 * why.  Workers see a deadline 2 s before timeout_s.
 */
int workers_run(int n, const int *cpus, int (*fn)(int i, void *arg), void *arg,
		double timeout_s);

/* Fail the current run (in a worker or the parent) with a reason; the
 * first reason stays.  Returns -1. */
int workers_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The reason of the last failure ("" if none), and forgetting it. */
const char *workers_why(void);
void workers_forget(void);

/* Was a run interrupted by SIGINT or SIGTERM (WORKERS_INTERRUPTIBLE)? */
bool workers_interrupted(void);

/* In a worker: count this one in *ready (a word of a MAP_SHARED mapping,
 * 0 before the run) and spin until n have; 0, or -1 past the deadline. */
int workers_rendezvous(uint32_t *ready, uint32_t n);

/* Pin the calling thread (and its future threads) to cpu: 0 or -errno. */
int workers_pin(int cpu);

/* Past the run's deadline? */
static inline bool workers_late(void)
{
	return mono_ns() > workers_state.deadline_ns;
}

/* An empty spin: false once past the deadline (checked every 4096). */
static inline bool workers_spin(unsigned *spins)
{
	if (workers_state.yield)
		sched_yield();
	else
		cpu_relax();
	if (++*spins % 4096)
		return true;
	return !workers_late();
}

#endif
