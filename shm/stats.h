/*
 * stats.h - a snapshot of a partition's statistics: its bounds, claim
 * word and counters, and its registered consumers, each word loaded once
 * (format.md §2).  For admin calls and metrics; not one consistent
 * instant, each word as it was when loaded.
 */
#ifndef SHMBUS_SHM_STATS_H
#define SHMBUS_SHM_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "partition.h"

struct part_stats {
	uint64_t low, end;             /* part_bounds() */
	uint64_t tail;                 /* claim word: bytes ever claimed */
	uint64_t mirrored;             /* high watermark */
	uint64_t status;               /* PART_STATUS_* */
	uint64_t aborted_claims;
	uint64_t lapped_reads;
	uint64_t bp_blocked;
	uint64_t recoveries;
	uint64_t recovered_cut;
	bool waiters;                  /* a consumer sleeps on the notify word */
	uint32_t consumers;            /* registered (backpressure) consumers */
	uint64_t consumer_offset[PART_MAX_CONSUMERS]; /* their next offsets */
};

void part_stats_read(struct part *p, struct part_stats *ret);

/* The status word (PART_STATUS_*), as it is now. */
uint64_t part_status(const struct part *p);

#endif
