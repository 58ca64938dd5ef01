/*
 * measure.h - what `shmbus bench` (cli/) and `make bench` (bench/) both
 * need of a measurement: the min, median and max of repeated runs, a
 * nearest-rank quantile of latency samples, and how much CPU time other
 * tasks and the hypervisor took from the two measuring CPUs while a case
 * ran (the "noisy" mark).
 */
#ifndef SHMBUS_CLI_MEASURE_H
#define SHMBUS_CLI_MEASURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Min, median and max of v[0..n), n >= 1 (v is left as it was). */
void measure_summary(const double *v, int n, double *min, double *median, double *max);

/* Sort samples and return their q-quantiles (nearest rank) in out[]:
 * raw sample units, NAN if n is 0. */
void measure_quantiles(uint64_t *s, size_t n, const double *q, int nq, double *out);

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
