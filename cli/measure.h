/*
 * measure.h - what `shmbus bench` (cli/) and `make bench` (bench/) both
 * need of a measurement: the clock (the TSC when invariant, calibrated
 * against CLOCK_MONOTONIC, else CLOCK_MONOTONIC) and the cost of one
 * read; the min, median and max of repeated runs; nearest-rank
 * quantiles of latency samples; and how much CPU time other tasks and
 * the hypervisor took from the two measuring CPUs while a case ran (the
 * "noisy" mark).
 *
 * The clock is one per process (`measure_clock`), set once by
 * measure_clock_init() before any worker is forked; its reads are inline
 * because workers call them on the paths they time.
 */
#ifndef SHMBUS_CLI_MEASURE_H
#define SHMBUS_CLI_MEASURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "../util/clock.h" /* mono_ns() */

#define NS 1000000000LL

/* ------------------------------------------------------------------ */
/* The clock                                                           */

struct measure_clock {
	bool tsc;                 /* ticks are TSC cycles, else nanoseconds */
	double ticks_per_ns;
	double tick_cost_ns;      /* one measure_ticks() */
	double mono_cost_ns;      /* one clock_gettime(CLOCK_MONOTONIC) */
};

extern struct measure_clock measure_clock;

/* Use the TSC if allow_tsc and it is invariant (rdtscp, constant_tsc,
 * nonstop_tsc), calibrated by sleeping calibrate_ns; then measure the
 * cost of one read of each clock (200 000 reads). */
void measure_clock_init(bool allow_tsc, int64_t calibrate_ns);

static inline uint64_t measure_ticks(void)
{
#if defined(__x86_64__)
	unsigned aux;

	if (measure_clock.tsc)
		return __rdtscp(&aux); /* waits for earlier instructions */
#endif
	return (uint64_t)mono_ns();
}

static inline double measure_ticks_ns(uint64_t t)
{
	return (double)t / measure_clock.ticks_per_ns;
}

/* The value of the first /proc/cpuinfo line named `name`, or "". */
void measure_cpuinfo(const char *name, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Statistics                                                          */

/* Min, median and max of v[0..n), n >= 1 (v is left as it was). */
void measure_summary(const double *v, int n, double *min, double *median, double *max);

/* Sort samples and return their q-quantiles (nearest rank) in out[]:
 * raw sample units, NAN if n is 0. */
void measure_quantiles(uint64_t *s, size_t n, const double *q, int nq, double *out);

/* The same for samples in clock ticks, returned in ns. */
void measure_quantiles_ns(uint64_t *ticks, size_t n, const double *q, int nq, double *out);

/* ------------------------------------------------------------------ */
/* Disturbance                                                         */

/* CPU time other tasks took from two CPUs during a case. */
struct disturbance {
	int cpu[2];          /* the measuring CPUs (equal: one CPU) */
	pid_t extra_pid;     /* a server of ours whose CPU time is ours too (0: none) */
	int64_t t0, ours0;
	long long idle0, steal0;
	double wall_s;       /* results, set by disturbance_end() */
	double others_ms;    /* busy time on the CPUs that was not ours nor stolen */
	double steal_ms;     /* the hypervisor's steal on them */
};

void disturbance_begin(struct disturbance *d, const int cpu[2], pid_t extra_pid);
void disturbance_end(struct disturbance *d);

/* Did others take more than /proc/stat's rounding (50 ms + 10 %)? */
bool disturbance_noisy(const struct disturbance *d);

#endif
