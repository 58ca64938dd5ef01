/*
 * bench_figures.c - what each figure of `shmbus bench` measures.
 *
 * Owns the figure table (names, metrics and targets) and, for each
 * figure, its set-up (the workload's parameters and topics, and the line
 * describing them) and what one run yields.  The workloads themselves
 * are those of `make bench` (workloads.c):
 *   pingpong, blocking  round trips through two topics, alternating in
 *                       blocks with the bare floor (two shared words, or
 *                       a bare futex)
 *   send, batch, large  one producer -> one consumer, records/s or GB/s
 * Every record carries its sequence number in its first 8 bytes and
 * consumers check it, so no figure counts records that were lost.
 */
#include "bench.h"

#include <math.h>
#include <string.h>

#define VALUE_SMALL    64
#define VALUE_LARGE    (1u << 20)
#define BATCH          64
#define POLL_MAX       256
#define RING_SMALL     SHMBUS_DEFAULT_CAPACITY
#define RING_LARGE     (64ULL << 20)

void drop_topics(struct bench *b)
{
	wl_trip_drop(&b->trip);
	wl_tput_drop(&b->tput);
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */

static int trip_setup(struct bench *b, char *desc, size_t len, bool blocking)
{
	uint64_t warm = blocking ? b->sz->blk_warm : b->sz->pp_warm;
	uint64_t count = blocking ? b->sz->blk_count : b->sz->pp_count;

	b->trip = (struct wl_trip){ .w = &b->w, .blocking = blocking, .warm = warm,
				    .count = count };
	snprintf(desc, len, "64 B values, two 16 MiB rings (overwrite), %s; %llu warm-up + %llu "
		 "timed round trips a run, in blocks of %d alternating with %s",
		 blocking ? "consumers with spin_us < 0 (futex sleep)" : "poll timeout 0",
		 (unsigned long long)warm, (unsigned long long)count, WL_TRIP_BLOCK,
		 blocking ? "a bare FUTEX_WAIT/FUTEX_WAKE ping-pong" :
		 "the bare round trip (two processes spinning on two shared words)");
	return wl_trip_setup(&b->trip);
}

static int pp_setup(struct bench *b, char *desc, size_t len)
{
	return trip_setup(b, desc, len, false);
}

static int blk_setup(struct bench *b, char *desc, size_t len)
{
	return trip_setup(b, desc, len, true);
}

/* The bus's round trip percentiles and max, and the bare p50. */
static int pp_once(struct bench *b, double *out)
{
	int rc = wl_trip_run(&b->trip);

	if (rc)
		return rc;
	memcpy(out, b->trip.bus, WL_NQ * sizeof *out);
	out[5] = b->trip.bare[0];
	return 0;
}

/* Sleeping round trips: the bus's and the bare futex's p50 and p99. */
static int blk_once(struct bench *b, double *out)
{
	const double *bus = b->trip.bus, *bare = b->trip.bare;
	int rc = wl_trip_run(&b->trip);

	if (rc)
		return rc;
	out[0] = bus[0];
	out[1] = bus[2];
	out[2] = bare[0];
	out[3] = bare[2];
	out[4] = bus[0] / bare[0];
	return 0;
}

/* ------------------------------------------------------------------ */
/* Throughput                                                          */

static int tput_setup(struct bench *b, char *desc, size_t len, size_t batch)
{
	bool bat = batch > 1;

	b->tput = (struct wl_tput){ .w = &b->w, .size = VALUE_SMALL, .batch = batch,
				    .poll_max = POLL_MAX, .tight = b->tight, .ring = RING_SMALL,
				    .warm = bat ? b->sz->batch_warm : b->sz->send_warm,
				    .count = bat ? b->sz->batch_count : b->sz->send_count };
	snprintf(desc, len, "64 B values, 16 MiB ring (backpressure), %s, zero-copy polls of "
		 "up to %d%s; %llu warm-up + %llu timed records a run",
		 bat ? "send_batch of 64" : "one send a record", POLL_MAX,
		 b->tight ? " in a tight loop (timeout 0)" : "", (unsigned long long)b->tput.warm,
		 (unsigned long long)b->tput.count);
	return wl_tput_setup(&b->tput);
}

static int send_setup(struct bench *b, char *desc, size_t len)
{
	return tput_setup(b, desc, len, 1);
}

static int batch_setup(struct bench *b, char *desc, size_t len)
{
	return tput_setup(b, desc, len, BATCH);
}

static int large_setup(struct bench *b, char *desc, size_t len)
{
	b->tput = (struct wl_tput){ .w = &b->w, .size = VALUE_LARGE, .batch = 1, .poll_max = 4,
				    .copy = true, .tight = b->tight, .ring = RING_LARGE,
				    .warm = b->sz->large_warm, .count = b->sz->large_count };
	snprintf(desc, len, "1 MiB values, 64 MiB ring (backpressure), the consumer copies "
		 "each value out (opts.copy)%s; %llu warm-up + %llu timed records a run; GB = 1e9 "
		 "bytes of values", b->tight ? ", polls in a tight loop" : "",
		 (unsigned long long)b->tput.warm, (unsigned long long)b->tput.count);
	return wl_tput_setup(&b->tput);
}

/* Records/s (in millions) or value bytes/s (in GB) of one run. */
static int tput_once(struct bench *b, double *out)
{
	int rc = wl_tput_run(&b->tput);

	if (rc)
		return rc;
	out[0] = b->tput.size > VALUE_SMALL ? b->tput.bw : b->tput.rate;
	return 0;
}

const struct figure_def figure_defs[NFIGS] = {
	{ "pingpong", "round trip, spinning consumers", pp_setup, pp_once,
	  { { "p50", "ns", 0, 650, AT_MOST }, { "p90", "ns", 0, NAN, NONE },
	    { "p99", "ns", 0, 1000, AT_MOST }, { "p99.9", "ns", 0, NAN, NONE },
	    { "max", "ns", 0, NAN, NONE }, { "bare p50", "ns", 0, NAN, NONE } } },
	{ "send", "1 producer -> 1 consumer, shmbus_producer_send", send_setup, tput_once,
	  { { "rate", "M records/s", 2, 14, AT_LEAST } } },
	{ "batch", "1 producer -> 1 consumer, shmbus_producer_send_batch", batch_setup, tput_once,
	  { { "rate", "M records/s", 2, 40, AT_LEAST } } },
	{ "large", "1 MiB values end to end", large_setup, tput_once,
	  { { "rate", "GB/s", 2, 10, AT_LEAST } } },
	{ "blocking", "round trip, sleeping consumers vs bare futex", blk_setup, blk_once,
	  { { "bus p50", "ns", 0, NAN, NONE }, { "bus p99", "ns", 0, NAN, NONE },
	    { "bare p50", "ns", 0, NAN, NONE }, { "bare p99", "ns", 0, NAN, NONE },
	    { "ratio p50", "x", 3, 1.1, AT_MOST } } },
};
