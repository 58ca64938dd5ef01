/*
 * mirror_lag.h - a replica's lag in milliseconds, as its mirror knows it
 * (docs/protocol.md §9 `lag_ms`, docs/metrics.md).
 *
 * The lag is how long ago the replica last held every record its source
 * was known to hold: 0 while it has the source's end as last reported;
 * otherwise now minus the moment the source was last seen with an end
 * the replica has reached.  Each DATA brings the source's `end` when it
 * was sent; its arrival (the mirror's CLOCK_MONOTONIC) dates it.  One
 * clock, the mirror's: no skew between hosts enters.  It does not count
 * the network's one-way delay (an end is dated when it arrives), and
 * while the connection is down it grows from the last moment the
 * replica was known to be caught up, whatever the source did meanwhile.
 *
 * The reported ends the replica has not reached yet are kept, oldest
 * first, in a ring of MLAG_ENDS; when it is full the newest one is
 * raised instead, keeping its older date, so the lag errs long, never
 * short.  Not thread-safe: the mirror's lock guards it.
 */
#ifndef SHMBUSD_MIRROR_LAG_H
#define SHMBUSD_MIRROR_LAG_H

#include <stdbool.h>
#include <stdint.h>

#define MLAG_ENDS 64

struct mlag {
	uint64_t end[MLAG_ENDS];     /* source ends the replica has not reached, rising */
	int64_t at[MLAG_ENDS];       /* when each was first heard */
	unsigned head, n;
	int64_t since_ns;            /* the replica held all the source had, as of then */
	bool current;                /* streaming, and holding all it heard of */
};

/* A DATA arrived at now: the source's end when it was sent. */
void mlag_heard(struct mlag *l, uint64_t source_end, int64_t now);
/* The replica now ends at replica_end (after an append or a gap). */
void mlag_held(struct mlag *l, uint64_t replica_end, int64_t now);
/* The connection ended; last_heard: its last message from the source. */
void mlag_lost(struct mlag *l, int64_t last_heard);
/* The lag in milliseconds at now. */
uint64_t mlag_ms(const struct mlag *l, int64_t now);

#endif
