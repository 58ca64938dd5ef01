/*
 * shmbus_workloads.h - what the two files of the shmbus_workloads
 * program share (internal to bench/).
 *
 *   shmbus_workloads.c  the root, topics, worker helpers, round trips
 *                       and one-way throughput, and main()
 *   shmbus_scale.c      how shmbus scales: producers on one partition,
 *                       readers of one writer, seeks, partition counts
 */
#ifndef SHMBUS_BENCH_WORKLOADS_H
#define SHMBUS_BENCH_WORKLOADS_H

#include "common.h"

#include <shmbus.h>

/* What the workers of one run share with the parent; words written by
 * different processes sit in different 128-byte blocks. */
struct wshared {
	_Alignas(128) uint32_t ready;
	_Alignas(128) uint32_t ping;         /* bare round trips: 0 -> 1 */
	_Alignas(128) uint32_t pong;         /* 1 -> 0 */
	_Alignas(128) uint32_t done;         /* the writer has finished */
	_Alignas(128) int64_t t_start[B_MAX_WORKERS];
	_Alignas(128) int64_t t_end[B_MAX_WORKERS];
	_Alignas(128) uint64_t got[B_MAX_WORKERS];
	uint64_t lost[B_MAX_WORKERS];
	char why[400];
	_Alignas(128) uint64_t samples[];    /* round trips, in ticks */
};

extern struct wshared *W;
extern char root[];                      /* the temporary bus root */
extern shmbus *bus;                      /* the parent's handle */

/* Make a topic named bench-<pid>-<name> into name_out; 0 or -1. */
int make_topic(char *name_out, size_t len, const char *name, uint32_t partitions,
	       uint64_t capacity, enum shmbus_policy policy);
void drop_topic(char *name);

/* In a worker: open the root (shmbus_open after fork), 0 or -1. */
int worker_bus(shmbus **ret);

/* All n workers have set up: start together. */
int rendezvous(uint32_t n);

/* Record n (the seq) in value's first 8 bytes / check it there. */
void put_seq(void *value, uint64_t seq);
int check_seq(const struct shmbus_message *m, size_t len, uint64_t want);

/* The cases of shmbus_scale.c. */
void scale_cases(void);

#endif /* SHMBUS_BENCH_WORKLOADS_H */
