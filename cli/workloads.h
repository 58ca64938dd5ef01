/*
 * workloads.h - the shmbus workloads that `shmbus bench` and `make bench`
 * both measure, implemented once (cli/workloads.c), run by forked worker
 * processes pinned to two CPUs (workers.h):
 *
 *   round trip   worker 0 sends a 64-byte record on one topic, worker 1
 *                echoes it on another; consumers spin (poll with timeout
 *                0) or sleep in the futex (spin_us < 0).  Blocks of 1000
 *                alternate with blocks of the bare round trip (bare.h)
 *                between the same two processes, so both meet the same machine state (in a
 *                VM the distance between two vCPUs changes over minutes).
 *   throughput   worker 0 produces to one partition, worker 1 consumes
 *                it: send or send_batch, zero-copy views or copy-out,
 *                any value size; backpressure with a blocking producer,
 *                so a slower consumer slows the producer instead of
 *                losing records; the consumer times from its last
 *                warm-up record to its last record
 *
 * Every record carries its sequence number in its first 8 bytes and
 * every reader checks it, so no figure counts a record lost or reordered.
 * A struct wl holds what the runs of one program share: the bus root, the
 * parent's handle, and the MAP_SHARED mapping the workers report into.
 * Functions return 0, or a negative value with the reason in
 * workers_why() (a run's: what workers_run() returned).
 */
#ifndef SHMBUS_CLI_WORKLOADS_H
#define SHMBUS_CLI_WORKLOADS_H

#include "workers.h"

#include <limits.h>
#include <shmbus.h>

#define WL_TRIP_BLOCK 1000          /* bus round trips, then as many bare ones */
#define WL_TRIP_VALUE 64
#define WL_NQ         5             /* quantiles of a round trip: see wl_trip */
#define WL_TOPIC_LEN  96

/* What the workers of one run share with the parent; words written by
 * different processes sit in different 128-byte blocks. */
struct wl_shared {
	_Alignas(128) uint32_t ready;        /* workers past their set-up */
	_Alignas(128) uint32_t ping;         /* bare round trips: worker 0 -> 1 */
	_Alignas(128) uint32_t pong;         /* worker 1 -> 0 */
	_Alignas(128) uint32_t done;         /* a writer has finished */
	_Alignas(128) int64_t t_start[WORKERS_MAX];
	_Alignas(128) int64_t t_end[WORKERS_MAX];
	_Alignas(128) uint64_t got[WORKERS_MAX];
	uint64_t lost[WORKERS_MAX];
	_Alignas(128) uint64_t samples[];    /* round trips in ticks: the bus's in
					      * [0, count), the bare ones after */
};

/* What the runs of one program share. */
struct wl {
	char root[PATH_MAX];
	bool tmp_root;              /* made by wl_open(), removed by wl_close() */
	shmbus *bus;                /* the parent's handle */
	struct wl_shared *sh;
	size_t sh_len;
	uint64_t max_trips;         /* round trips a run the samples can hold */
	int cpu[2];                 /* worker 0 (ping, producer), 1 (echo, consumer) */
	double timeout_s;           /* a run's workers are killed past this */
};

/* Open root (or, if NULL, a temporary one made in tmpdir) and map the
 * shared words with room for max_trips round trips.  w->cpu and
 * w->timeout_s are the caller's to set.  0, or -1 (workers_why()). */
int wl_open(struct wl *w, const char *root, const char *tmpdir, uint64_t max_trips);

/* Close the handle, remove a temporary root, unmap (a NULL-safe no-op
 * on what wl_open did not make). */
void wl_close(struct wl *w);

/* Zero the shared words (not the samples) before a run. */
void wl_reset(struct wl *w);

/* Make topic bench-<pid>-<suffix> into name (replacing one left by a
 * killed bench); 0 or -1.  wl_drop deletes it and empties name. */
int wl_topic(const struct wl *w, char *name, const char *suffix, uint32_t partitions,
	     uint64_t capacity, enum shmbus_policy policy);
void wl_drop(const struct wl *w, char *name);

/* In a worker: open the root (shmbus_open after fork); 0 or -1. */
int wl_worker_bus(const struct wl *w, shmbus **ret);

/* Record seq in value's first 8 bytes / check a record carries want
 * and has len value bytes (0, or -1 naming what came instead). */
void wl_put_seq(void *value, uint64_t seq);
int wl_check_seq(const struct shmbus_message *m, size_t len, uint64_t want);

/* ------------------------------------------------------------------ */
/* Round trips                                                         */

struct wl_trip {
	struct wl *w;
	bool blocking;              /* consumers sleep in the futex; bare: futex */
	int linger_us;              /* producers' opts.linger_us (0: none) */
	uint64_t warm, count;       /* round trips a run (count <= w->max_trips) */
	char topic[2][WL_TOPIC_LEN];/* worker 0 sends on [0], worker 1 on [1] */
	double bus[WL_NQ];          /* one run: p50, p90, p99, p99.9, max (ns) */
	double bare[WL_NQ];         /* the same of the bare floor */
};

/* The two topics: 16 MiB rings, overwrite. */
int wl_trip_setup(struct wl_trip *t);
int wl_trip_run(struct wl_trip *t);
void wl_trip_drop(struct wl_trip *t);

/* ------------------------------------------------------------------ */
/* Throughput                                                          */

struct wl_tput {
	struct wl *w;
	size_t size;                /* value bytes, >= 8 */
	size_t batch;               /* records a send call: 1 is shmbus_producer_send */
	int linger_us;              /* the producer's opts.linger_us (0: none) */
	size_t poll_max;
	bool copy;                  /* consumer opts.copy, else zero-copy views */
	bool tight;                 /* poll with timeout 0 in a loop, else 100 ms */
	uint64_t warm, count;       /* records a run */
	uint64_t ring;              /* bytes */
	char topic[WL_TOPIC_LEN];
	uint64_t received;          /* one run: records the consumer read and checked */
	double rate;                /* M records/s */
	double bw;                  /* GB (1e9 bytes) of values a second */
};

/* The topic: one partition of t->ring bytes, backpressure. */
int wl_tput_setup(struct wl_tput *t);
int wl_tput_run(struct wl_tput *t);
void wl_tput_drop(struct wl_tput *t);

#endif
