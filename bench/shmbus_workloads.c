/*
 * shmbus_workloads.c - shmbus itself, measured the way its peers and the
 * limits are: forked processes pinned to the two CPUs, each opening the
 * bus on a temporary root in /dev/shm or --tmpdir (removed at the end;
 * bench/run also removes its --tmpdir, should this program be killed).
 *
 *   pingpong.spin    round trip of a 64-byte record through two topics,
 *                    both consumers polling with timeout 0
 *   pingpong.block   the same with consumers that sleep in the futex
 *                    (spin_us < 0)
 *   pingpong.spin.linger
 *                    pingpong.spin with producers lingering 100 us: each
 *                    record waits for its linger thread, so a hop costs
 *                    linger_us plus the thread's wake-up; the bound
 *                    linger sets on latency
 *   tput.<size>.<send|batch>.<copy|zc>
 *                    one producer -> one consumer at 64 B, 1 KiB, 64 KiB
 *                    and 1 MiB values; shmbus_producer_send of one record
 *                    or send_batch; the consumer copying records out
 *                    (opts.copy) or reading them in place (zero-copy: it
 *                    reads the sequence number in the value's first 8
 *                    bytes, the bytes a consumer that needs no copy
 *                    touches)
 *   tput.64B.send.linger
 *                    64 B, one send per record with opts.linger_us 100
 *                    (batch_bytes 16384): sends staged, published in runs
 * and, in shmbus_scale.c, producers sharing a partition, readers of one
 * writer, seeks, and the cost of partitions.
 *
 * The workloads are cli/workloads.c's, the very code `shmbus bench`
 * runs (its figures pingpong, blocking, send, batch and large are cases
 * of this table with other record counts).  Round trips of the bus
 * alternate in blocks of 1000 with bare ones (a cache line, or a futex)
 * between the same two processes, so the bus-to-floor ratio of each run
 * meets one machine state: in this VM the distance between the two vCPUs
 * changes over minutes.  Throughput topics use the backpressure policy
 * with blocking producers, so a slower consumer slows the producer
 * instead of losing records; every record's sequence number is checked.
 * The consumer times the transfer: from the last warm-up record to the
 * last record.
 */
#include "shmbus_workloads.h"

#include <string.h>

struct wl WL;

static const char *tmpdir = "/dev/shm";

static int own_opt(int argc, char **argv, int *i)
{
	if (strcmp(argv[*i], "--tmpdir") || *i + 1 >= argc)
		return 0;
	tmpdir = argv[++*i];
	return 1;
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */

static int run_trips(void *arg, double *out)
{
	struct wl_trip *t = arg;

	if (wl_trip_run(t))
		return -1;
	memcpy(out, t->bus, 4 * sizeof *out); /* p50, p90, p99, p99.9 */
	out[4] = t->bare[0];
	out[5] = t->bare[2];
	out[6] = t->bus[0] / t->bare[0];
	return 0;
}

static const struct bmetric m_trip[] = {
	{ "p50", "ns", LOWER }, { "p90", "ns", LOWER }, { "p99", "ns", LOWER },
	{ "p99.9", "ns", LOWER }, { "bare p50", "ns", LOWER }, { "bare p99", "ns", LOWER },
	{ "p50 / bare p50", "x", LOWER },
};

#define LINGER_US 100

static void trip_case(bool blocking, bool linger)
{
	const char *id = linger ? "pingpong.spin.linger" : blocking ? "pingpong.block" :
		"pingpong.spin";
	struct wl_trip t = { .w = &WL, .blocking = blocking, .linger_us = linger ? LINGER_US : 0,
			     .count = blocking || linger ? (B.quick ? 5000 : 20000) :
						 (B.quick ? 50000 : 200000) };
	char note[500];

	t.warm = t.count / 10;
	if (!b_selected(id))
		return;
	if (wl_trip_setup(&t)) {
		b_skip(id, "round trip", workers_why());
		return;
	}
	snprintf(note, sizeof note, "64-byte record to a process on CPU %d and back through two "
		 "16 MiB topics; consumers %s; %llu warm-up + %llu timed round trips a run, in "
		 "blocks of %d alternating with the bare %s between the same processes",
		 B.cpu[1], blocking ? "sleep in the futex (spin_us < 0), poll timeout 100 ms" :
		 "poll with timeout 0 in a loop", (unsigned long long)t.warm,
		 (unsigned long long)t.count, WL_TRIP_BLOCK,
		 blocking ? "FUTEX_WAIT/FUTEX_WAKE round trip" : "cache-line round trip");
	if (linger)
		snprintf(note + strlen(note), sizeof note - strlen(note), "; both producers "
			 "linger %d us (each hop waits for the linger thread)", LINGER_US);
	b_case(id, linger ? "round trip, spinning consumers, producers lingering" :
	       blocking ? "round trip, blocking consumers" : "round trip, spinning consumers",
	       note, m_trip, 7, run_trips, &t);
	wl_trip_drop(&t);
}

/* ------------------------------------------------------------------ */
/* One-way throughput                                                  */

static int run_tput(void *arg, double *out)
{
	struct wl_tput *t = arg;

	if (wl_tput_run(t))
		return -1;
	out[0] = t->rate;
	out[1] = t->bw;
	return 0;
}

static const struct bmetric m_tput[] = { { "rate", "M msg/s", HIGHER },
					 { "bw", "GB/s", HIGHER } };

struct size_def {
	size_t size;
	const char *name;
	uint64_t ring;
	size_t batch, poll_max;
	uint64_t send_count, batch_count; /* full run; --quick takes a quarter */
};

static const struct size_def sizes[] = {
	{ 64, "64B", 16ULL << 20, 64, 256, 3000000, 10000000 },
	{ 1024, "1KiB", 16ULL << 20, 64, 256, 2000000, 3000000 },
	{ 65536, "64KiB", 64ULL << 20, 16, 16, 60000, 60000 },
	{ 1 << 20, "1MiB", 64ULL << 20, 4, 4, 4000, 4000 },
};

static void tput_case(const struct size_def *s, bool batch, bool copy, bool linger)
{
	uint64_t count = (batch || linger ? s->batch_count : s->send_count) / (B.quick ? 4 : 1);
	struct wl_tput t = { .w = &WL, .size = s->size, .batch = batch ? s->batch : 1,
			     .linger_us = linger ? LINGER_US : 0,
			     .poll_max = s->poll_max, .copy = copy, .ring = s->ring,
			     .warm = count / 10, .count = count };
	char id[64], title[128], note[500];

	snprintf(id, sizeof id, "tput.%s.%s.%s", s->name, batch ? "batch" : "send",
		 linger ? "linger" : copy ? "copy" : "zc");
	snprintf(title, sizeof title, "%s records, %s, %s", s->name,
		 batch ? "send_batch" : linger ? "send with linger" : "send",
		 copy ? "copy-out" : "zero-copy");
	if (!b_selected(id))
		return;
	if (wl_tput_setup(&t)) {
		b_skip(id, title, workers_why());
		return;
	}
	snprintf(note, sizeof note, "%zu-byte values, %llu MiB ring (backpressure, blocking "
		 "producer) CPU %d -> CPU %d; %s; consumer polls up to %zu, %s; %llu warm-up + "
		 "%llu timed records a run; GB = 1e9 value bytes", s->size,
		 (unsigned long long)(s->ring >> 20), B.cpu[0], B.cpu[1],
		 batch ? "send_batch" : "one send per record", s->poll_max,
		 copy ? "copying records out (opts.copy)" : "zero-copy views (reads the first 8 "
		 "bytes of each value)", (unsigned long long)t.warm, (unsigned long long)t.count);
	if (batch)
		snprintf(note + strlen(note), sizeof note - strlen(note), "; batches of %zu",
			 t.batch);
	if (linger)
		snprintf(note + strlen(note), sizeof note - strlen(note), "; producer lingers %d "
			 "us (batch_bytes 16384)", LINGER_US);
	b_case(id, title, note, m_tput, 2, run_tput, &t);
	wl_tput_drop(&t);
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	b_init("shmbus_workloads", argc, argv, own_opt,
	       " [--tmpdir DIR (where the temporary root goes; default /dev/shm)]");
	WL.cpu[0] = B.cpu[0];
	WL.cpu[1] = B.cpu[1];
	WL.timeout_s = 120;
	if (wl_open(&WL, NULL, tmpdir, B.quick ? 50000 : 200000)) {
		fprintf(stderr, "shmbus_workloads: %s\n", workers_why());
		wl_close(&WL);
		return 1;
	}
	trip_case(false, false);
	trip_case(true, false);
	trip_case(false, true);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		for (int k = 0; k < 4; k++)
			tput_case(&sizes[i], k & 1, k & 2, false);
	tput_case(&sizes[0], false, false, true);
	scale_cases();
	wl_close(&WL);
	return b_exit();
}
