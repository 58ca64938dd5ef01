/*
 * limits.c - the physical limits of this machine, measured in the same
 * run as shmbus and its peers: what no bus on it can beat.
 *
 *   clock       one read of the TSC and of clock_gettime(CLOCK_MONOTONIC)
 *   syscall     one bare system call (getppid through syscall(2))
 *   pagefault   the first write to a page of a shared memory file (memfd,
 *               tmpfs: what an unfaulted ring costs)
 *   cacheline   round trip of a cache line between two processes pinned
 *               to different CPUs, both spinning
 *   futex       round trip of a FUTEX_WAIT/FUTEX_WAKE ping-pong between two
 *               processes on a shared (not private) futex: the floor of a
 *               blocking consumer
 *   spsc        a minimal single-producer single-consumer ring of 64-byte
 *               slots in shared memory, 64-byte messages, the producer
 *               publishing its head after every message or after every 32
 *               (and the consumer its tail likewise)
 *   spsc.frame  the same ring carrying what shmbus stores for a 64-byte
 *               record: 112-byte slots holding a 48-byte header (offset,
 *               timestamp, lengths, pid) stamped with shmbus's own clock
 *               and the CRC-32C its producers compute, the consumer
 *               checking offset and length as shmbus's does by default:
 *               the per-record work of the format, without its guarantees
 *               (one producer, no claim, no index, no abort)
 *   memcpy      memcpy of 1 MiB blocks: in cache (the same source and
 *               destination again and again), and from DRAM (a source
 *               walking a region 16 times the last-level cache)
 *
 * Round trips are timed one by one with the clock of cli/measure.h (its
 * cost, printed by the clock case, is inside every sample); rates with
 * CLOCK_MONOTONIC around the whole transfer.  The cache-line and futex
 * round trips are cli/bare.c's, the floor `shmbus bench` and
 * shmbus_workloads alternate with the bus's round trips.
 */
#include "common.h"
#include "../cli/bare.h"
#include "../shm/frame.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LINE       64
#define SPSC_SLOTS 65536u           /* 4 MiB of 64-byte slots */
#define MiB        (1u << 20)

/* What the two workers of a round trip or a ring share. */
struct lshared {
	_Alignas(128) uint32_t ping;
	_Alignas(128) uint32_t pong;
	_Alignas(128) uint32_t ready;
	_Alignas(128) uint64_t head;       /* spsc: written by the producer */
	_Alignas(128) uint64_t tail;       /* spsc: written by the consumer */
	_Alignas(128) int64_t t_start, t_end;
	_Alignas(128) uint64_t samples[];  /* round trips, in ticks */
};

struct slot {
	uint64_t seq;
	uint8_t payload[LINE - 8];
};

/* What shmbus stores for a 64-byte record with no key and no headers: its
 * frame header (shm/format.h) and the value, 112 bytes.  The header's
 * commit word is stored as shmbus stores it, but the ring's head, not that
 * word, publishes. */
struct fslot {
	struct frame_hdr h;
	uint8_t value[64];
};
_Static_assert(sizeof(struct fslot) == FRAME_HDR_SIZE + 64, "a 64-byte record's frame");
#define FRAME_SLOTS ((4u * MiB) / sizeof(struct fslot))

static struct lshared *sh;
static struct slot *ring;              /* SPSC_SLOTS slots, shared */
static struct fslot *fring;            /* FRAME_SLOTS slots, shared */
static uint64_t trips, warm_trips, spsc_count, copy_bytes;
static size_t dram_region;

/* ------------------------------------------------------------------ */
/* Single-process costs                                                */

static int run_clock(void *arg, double *out)
{
	volatile uint64_t sink = 0;
	int64_t t0;

	(void)arg;
	t0 = mono_ns();
	for (int i = 0; i < 1000000; i++)
		sink += measure_ticks();
	out[0] = (double)(mono_ns() - t0) / 1e6;
	t0 = mono_ns();
	for (int i = 0; i < 1000000; i++)
		sink += (uint64_t)mono_ns();
	out[1] = (double)(mono_ns() - t0) / 1e6;
	(void)sink;
	return 0;
}

static int run_syscall(void *arg, double *out)
{
	int64_t t0 = mono_ns();

	(void)arg;
	for (int i = 0; i < 1000000; i++)
		syscall(SYS_getppid);
	out[0] = (double)(mono_ns() - t0) / 1e6;
	return 0;
}

/* First write to each 4 KiB page of a fresh 64 MiB memfd mapping. */
static int run_pagefault(void *arg, double *out)
{
	size_t len = (B.quick ? 16 : 64) * (size_t)MiB, pages = len / 4096;
	int fd = memfd_create("bench-faults", 0);
	volatile uint8_t *p;
	int64_t t0;

	(void)arg;
	if (fd < 0 || ftruncate(fd, (off_t)len)) {
		if (fd >= 0)
			close(fd);
		return workers_fail("memfd of %zu bytes: %s", len, strerror(errno));
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return workers_fail("mmap: %s", strerror(errno));
	t0 = mono_ns();
	for (size_t i = 0; i < pages; i++)
		p[i * 4096] = 1;
	out[0] = (double)(mono_ns() - t0) / (double)pages / 1e3;
	munmap((void *)p, len);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Round trips: a cache line, or a futex                               */

/* Worker 0 pings and times; worker 1 echoes.  arg: non-NULL to sleep. */
static int trip_worker(int role, void *arg)
{
	bool sleep = arg != NULL;

	if (bare_trips(&sh->ping, &sh->pong, sleep, role, 0, warm_trips, NULL))
		return -1;
	return bare_trips(&sh->ping, &sh->pong, sleep, role, warm_trips, trips,
			  role ? NULL : sh->samples);
}

static int run_trips(void *arg, double *out)
{
	static const double q[] = { 0.5, 0.9, 0.99, 0.999 };

	sh->ping = sh->pong = 0;
	if (workers_run(2, B.cpu, trip_worker, arg, 60))
		return -1;
	measure_quantiles_ns(sh->samples, trips, q, 4, out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* A minimal SPSC ring                                                 */

/* What both rings' sides do between messages: wait for room or for a
 * message, and publish their position after every `every` messages. */
static inline int wait_room(uint64_t head, uint64_t *tail, uint64_t slots, const char *ring_name,
			    unsigned *spins)
{
	while (head - *tail >= slots) {
		*tail = __atomic_load_n(&sh->tail, __ATOMIC_ACQUIRE); /* pairs with the consumer's release */
		if (head - *tail >= slots && !workers_spin(spins))
			return workers_fail("%s producer stalled at %llu", ring_name,
					    (unsigned long long)head);
	}
	return 0;
}

static inline int wait_message(uint64_t tail, uint64_t *head, const char *ring_name,
			       unsigned *spins)
{
	while (tail == *head) {
		*head = __atomic_load_n(&sh->head, __ATOMIC_ACQUIRE); /* pairs with the producer's release */
		if (tail == *head && !workers_spin(spins))
			return workers_fail("%s consumer stalled at %llu", ring_name,
					    (unsigned long long)tail);
	}
	return 0;
}

static inline void publish(uint64_t *word, uint64_t at, uint64_t every, uint64_t n)
{
	if (at % every == 0 || at == n)
		__atomic_store_n(word, at, __ATOMIC_RELEASE); /* pairs with the other side's acquire */
}

/* Publish after every `every` messages; arg carries `every`. */
static int spsc_producer(uint64_t every)
{
	uint64_t head = 0, tail = 0, n = spsc_count;
	unsigned spins = 0;
	struct slot msg = { 0 };

	memset(msg.payload, 0x5a, sizeof msg.payload);
	__atomic_store_n(&sh->t_start, mono_ns(), __ATOMIC_RELEASE);
	while (head < n) {
		if (wait_room(head, &tail, SPSC_SLOTS, "spsc", &spins))
			return -1;
		msg.seq = head;
		memcpy(&ring[head % SPSC_SLOTS], &msg, sizeof msg);
		publish(&sh->head, ++head, every, n);
	}
	return 0;
}

static int spsc_consumer(uint64_t every)
{
	uint64_t tail = 0, head = 0, n = spsc_count, sum = 0;
	unsigned spins = 0;
	struct slot msg;

	while (tail < n) {
		if (wait_message(tail, &head, "spsc", &spins))
			return -1;
		memcpy(&msg, &ring[tail % SPSC_SLOTS], sizeof msg);
		if (msg.seq != tail)
			return workers_fail("spsc: slot %llu holds %llu", (unsigned long long)tail,
					    (unsigned long long)msg.seq);
		sum += msg.payload[0];
		publish(&sh->tail, ++tail, every, n);
	}
	__atomic_store_n(&sh->t_end, mono_ns(), __ATOMIC_RELEASE);
	return sum == n * 0x5a ? 0 : workers_fail("spsc: payload damaged");
}

static int frame_producer(uint64_t every)
{
	uint64_t head = 0, tail = 0, n = spsc_count;
	unsigned spins = 0;
	uint8_t value[64];
	uint32_t pid = (uint32_t)getpid();

	memset(value, 0x5a, sizeof value);
	__atomic_store_n(&sh->t_start, mono_ns(), __ATOMIC_RELEASE);
	while (head < n) {
		if (wait_room(head, &tail, FRAME_SLOTS, "spsc.frame", &spins))
			return -1;
		struct fslot *f = &fring[head % FRAME_SLOTS];

		f->h.commit = head + 1;
		f->h.offset = head;
		f->h.timestamp_ns = fast_real_ns();
		f->h.key_len = f->h.headers_len = 0;
		f->h.value_len = sizeof value;
		f->h.header_count = f->h.flags = 0;
		f->h.pid = pid;
		memcpy(f->value, value, sizeof value);
		/* shmbus's consumers check it only with opts.check_crc
		 * (docs/design-notes.md), so this consumer does not */
		f->h.crc = frame_crc(&f->h, sizeof f->value);
		publish(&sh->head, ++head, every, n);
	}
	return 0;
}

static int frame_consumer(uint64_t every)
{
	uint64_t tail = 0, head = 0, n = spsc_count, sum = 0;
	unsigned spins = 0;

	while (tail < n) {
		if (wait_message(tail, &head, "spsc.frame", &spins))
			return -1;
		const struct fslot *f = &fring[tail % FRAME_SLOTS];

		if (f->h.offset != tail || f->h.value_len != sizeof f->value)
			return workers_fail("spsc.frame: slot %llu holds offset %llu, length %u",
					    (unsigned long long)tail, (unsigned long long)f->h.offset,
					    f->h.value_len);
		sum += f->value[0];
		publish(&sh->tail, ++tail, every, n);
	}
	__atomic_store_n(&sh->t_end, mono_ns(), __ATOMIC_RELEASE);
	return sum == n * 0x5a ? 0 : workers_fail("spsc.frame: value damaged");
}

/* arg: `every`, plus FRAME_RING for the ring of frames */
#define FRAME_RING (1ull << 32)

static int spsc_worker(int role, void *arg)
{
	uint64_t a = (uint64_t)(uintptr_t)arg, every = a & (FRAME_RING - 1);

	if (workers_rendezvous(&sh->ready, 2))
		return -1;
	if (a & FRAME_RING)
		return role ? frame_consumer(every) : frame_producer(every);
	return role ? spsc_consumer(every) : spsc_producer(every);
}

static int run_spsc(void *arg, double *out)
{
	sh->head = sh->tail = 0;
	sh->ready = 0;
	memset(ring, 0, SPSC_SLOTS * sizeof *ring);
	memset(fring, 0, FRAME_SLOTS * sizeof *fring);
	if (workers_run(2, B.cpu, spsc_worker, arg, 60))
		return -1;
	out[0] = (double)spsc_count / ((double)(sh->t_end - sh->t_start) / 1e9) / 1e6;
	return 0;
}

/* ------------------------------------------------------------------ */
/* memcpy bandwidth                                                    */

static int run_memcpy(void *arg, double *out)
{
	bool dram = arg != NULL;
	size_t region = dram ? dram_region : MiB, blocks = region / MiB;
	uint8_t *src = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *dst = malloc(MiB);
	uint64_t n = copy_bytes / MiB;
	int64_t t0;

	if (src == MAP_FAILED || !dst) {
		free(dst);
		if (src != MAP_FAILED)
			munmap(src, region);
		return workers_fail("cannot allocate %zu bytes", region);
	}
	memset(src, 0x11, region);
	memset(dst, 0, MiB);
	for (uint64_t i = 0; i < blocks && i < 64; i++) /* warm-up */
		memcpy(dst, src + (i % blocks) * MiB, MiB);
	t0 = mono_ns();
	for (uint64_t i = 0; i < n; i++) {
		memcpy(dst, src + (i % blocks) * MiB, MiB);
		__asm__ volatile("" : : "r"(dst) : "memory"); /* keep every copy */
	}
	out[0] = (double)(n * MiB) / (double)(mono_ns() - t0);
	free(dst);
	munmap(src, region);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The cases                                                           */

static const struct bmetric m_clock[] = { { "tsc", "ns", LOWER }, { "mono", "ns", LOWER } };
static const struct bmetric m_one_ns[] = { { "cost", "ns", LOWER } };
static const struct bmetric m_one_us[] = { { "cost", "us", LOWER } };
static const struct bmetric m_trip[] = { { "p50", "ns", LOWER }, { "p90", "ns", LOWER },
					 { "p99", "ns", LOWER }, { "p99.9", "ns", LOWER } };
static const struct bmetric m_rate[] = { { "rate", "M msg/s", HIGHER } };
static const struct bmetric m_bw[] = { { "bw", "GB/s", HIGHER } };

static int setup(void)
{
	trips = B.quick ? 50000 : 200000;
	warm_trips = trips / 10;
	spsc_count = B.quick ? 5000000 : 20000000;
	copy_bytes = (B.quick ? 2ULL : 8ULL) << 30;
	dram_region = 512 * (size_t)MiB;
	sh = b_shared(sizeof *sh + trips * sizeof(uint64_t));
	ring = b_shared(SPSC_SLOTS * sizeof *ring);
	fring = b_shared(FRAME_SLOTS * sizeof *fring);
	if (!sh || !ring || !fring) {
		fprintf(stderr, "limits: %s\n", workers_why());
		return -1;
	}
	return 0;
}

static void single_process_cases(void)
{
	char note[300];

	workers_pin(B.cpu[0]);
	b_case("clock", "one clock read", measure_clock.tsc ? "rdtscp (invariant TSC), and "
	       "clock_gettime(CLOCK_MONOTONIC) through the vDSO; averaged over 1e6 reads" :
	       "no invariant TSC: both are clock_gettime(CLOCK_MONOTONIC); 1e6 reads",
	       m_clock, 2, run_clock, NULL);
	b_case("syscall", "one system call", "syscall(SYS_getppid), averaged over 1e6 calls",
	       m_one_ns, 1, run_syscall, NULL);
	snprintf(note, sizeof note, "first write to each 4 KiB page of a fresh %d MiB memfd "
		 "(tmpfs) mapping, MAP_SHARED; average per page", B.quick ? 16 : 64);
	b_case("pagefault", "page fault (shared memory)", note, m_one_us, 1, run_pagefault, NULL);
	snprintf(note, sizeof note, "1 MiB memcpy, same source and destination each time; "
		 "%llu GiB copied a run; GB = 1e9 bytes", (unsigned long long)(copy_bytes >> 30));
	b_case("memcpy.cache", "memcpy 1 MiB, in cache", note, m_bw, 1, run_memcpy, NULL);
	snprintf(note, sizeof note, "1 MiB memcpy from a %zu MiB source walked in order (16x "
		 "the L3) into a 1 MiB destination; %llu GiB a run", dram_region / MiB,
		 (unsigned long long)(copy_bytes >> 30));
	b_case("memcpy.dram", "memcpy 1 MiB, from DRAM", note, m_bw, 1, run_memcpy, (void *)(uintptr_t)1);
}

int main(int argc, char **argv)
{
	char note[300];

	b_init("limits", argc, argv, NULL, NULL);
	if (setup())
		return 1;
	single_process_cases();
	snprintf(note, sizeof note, "two processes on CPUs %d and %d bounce a counter through "
		 "two cache lines, spinning; %llu warm-up + %llu timed round trips a run, each "
		 "timed (clock read included)", B.cpu[0], B.cpu[1],
		 (unsigned long long)warm_trips, (unsigned long long)trips);
	b_case("cacheline", "cache-line round trip", note, m_trip, 4, run_trips, NULL);
	snprintf(note, sizeof note, "64-byte messages in a 4 MiB ring of 64-byte slots; producer "
		 "on CPU %d publishes its head after every message, consumer on CPU %d its tail "
		 "after every message; %llu messages a run", B.cpu[0], B.cpu[1],
		 (unsigned long long)spsc_count);
	b_case("spsc.1", "minimal SPSC ring, publish every message", note, m_rate, 1, run_spsc,
	       (void *)(uintptr_t)1);
	snprintf(note, sizeof note, "as spsc.1, publishing head and tail every 32 messages; "
		 "%llu messages a run", (unsigned long long)spsc_count);
	b_case("spsc.32", "minimal SPSC ring, publish every 32", note, m_rate, 1, run_spsc,
	       (void *)(uintptr_t)32);
	snprintf(note, sizeof note, "as spsc.1 with shmbus's frame of a 64-byte record in "
		 "4 MiB of 112-byte slots: a 48-byte header stamped by shmbus's clock and its "
		 "CRC-32C computed by the producer; the consumer checks offset and length, as "
		 "shmbus's does by default; %llu messages a run",
		 (unsigned long long)spsc_count);
	b_case("spsc.frame.1", "SPSC ring of 112-byte frames (timestamp, CRC), publish every "
	       "message", note, m_rate, 1, run_spsc, (void *)(uintptr_t)(FRAME_RING | 1));
	snprintf(note, sizeof note, "as spsc.frame.1, publishing head and tail every 32 "
		 "messages; %llu messages a run", (unsigned long long)spsc_count);
	b_case("spsc.frame.32", "SPSC ring of 112-byte frames (timestamp, CRC), publish every 32",
	       note, m_rate, 1, run_spsc, (void *)(uintptr_t)(FRAME_RING | 32));
	trips = B.quick ? 5000 : 20000;
	warm_trips = trips / 10;
	snprintf(note, sizeof note, "FUTEX_WAIT / FUTEX_WAKE on two shared futex words between "
		 "processes on CPUs %d and %d; %llu warm-up + %llu timed round trips a run",
		 B.cpu[0], B.cpu[1], (unsigned long long)warm_trips, (unsigned long long)trips);
	b_case("futex", "futex wait/wake round trip", note, m_trip, 4, run_trips, sh);
	return b_exit();
}
