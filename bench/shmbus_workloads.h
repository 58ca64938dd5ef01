/*
 * shmbus_workloads.h - what the two files of the shmbus_workloads
 * program share (internal to bench/).
 *
 *   shmbus_workloads.c  round trips and one-way throughput (the workloads
 *                       of cli/workloads.c, which `shmbus bench` runs
 *                       too), and main()
 *   shmbus_scale.c      how shmbus scales: producers on one partition,
 *                       readers of one writer, seeks, partition counts
 */
#ifndef SHMBUS_BENCH_WORKLOADS_H
#define SHMBUS_BENCH_WORKLOADS_H

#include "common.h"
#include "../cli/workloads.h"

/* The temporary root, the parent's handle and the workers' mapping. */
extern struct wl WL;

/* The cases of shmbus_scale.c. */
void scale_cases(void);

#endif /* SHMBUS_BENCH_WORKLOADS_H */
