/*
 * bench.h - what the files of `shmbus bench` share (internal to cli/).
 *
 * The bench is one `struct bench`, made by cmd_bench() and handed to every
 * function; its parts live in:
 *   bench.c          command line, CPUs, root, clock calibration, and the
 *                    run of each figure (cmd_bench)
 *   bench_workers.c  the shared mapping and the two forked, pinned worker
 *                    processes: fork, reap with a deadline, failure reports
 *   bench_figures.c  what each figure measures, and the figure table
 *   bench_report.c   the printed table and the JSON file
 *   measure.c  min/median/max, quantiles and the disturbance
 *                    accounting, shared with `make bench`
 * The clock reads and the deadline check are inline here: workers call
 * them on the paths they time.
 */
#ifndef SHMBUS_CLI_BENCH_H
#define SHMBUS_CLI_BENCH_H

#include "cli.h"
#include "measure.h"

#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#define MAX_RUNS       100
#define MAX_METRICS    6
#define NFIGS          5
#define NS             1000000000LL
#define RUN_TIMEOUT_NS (30 * NS)   /* a run that takes longer is stuck */
#define KILL_GRACE_NS  (2 * NS)    /* workers give up first; then we kill them */

/* How a worker's run ended, for the parent to print. */
struct worker_report {
	int rc;
	char msg[300];
};

/* What the workers of one run share with the parent.  Words written by
 * different processes sit in different 128-byte blocks. */
struct shared {
	_Alignas(128) uint32_t ready;     /* workers past their set-up */
	_Alignas(128) uint32_t warm_done; /* the consumer has read the warm-up */
	_Alignas(128) uint32_t fping;     /* bare ping-pongs: A -> B */
	_Alignas(128) uint32_t fpong;     /* B -> A */
	_Alignas(128) int64_t t_start;    /* CLOCK_MONOTONIC: first timed send */
	_Alignas(128) int64_t t_end;      /* CLOCK_MONOTONIC: last record read */
	struct worker_report rep[2];
	_Alignas(128) uint64_t samples[]; /* round trips in clock ticks: the bus's
					   * in [0, count), the bare ones after */
};

/* The figure being run; fork copies it into the workers. */
struct params {
	uint64_t warm, count;      /* records, or round trips */
	size_t value_len;
	size_t batch;              /* records per send call */
	size_t poll_max;
	bool blocking;             /* consumers sleep in the futex (spin_us < 0) */
	bool tight;                /* throughput consumers poll with timeout 0 */
};

/* Records (or round trips) per run, full and --quick. */
struct sizes {
	uint64_t pp_warm, pp_count, send_warm, send_count, batch_warm, batch_count;
	uint64_t large_warm, large_count, blk_warm, blk_count;
};

enum goal { NONE = 0, AT_LEAST = 1, AT_MOST = -1 };

struct metric_def {
	const char *key;
	const char *unit;
	int decimals;
	double target;
	enum goal goal;
};

struct bench;

struct figure_def {
	const char *name;
	const char *title;
	int (*setup)(struct bench *b, char *desc, size_t len);
	int (*once)(struct bench *b, double *out); /* one value per metric */
	struct metric_def m[MAX_METRICS];
};

struct result {
	const struct figure_def *def;
	double v[MAX_METRICS][MAX_RUNS];
	int runs;
	bool selected, failed;
	struct disturbance dist;     /* CPU time others took from the workers */
	char desc[320];
};

/* The whole bench: options, machine, the figure in progress, results. */
struct bench {
	char root[PATH_MAX];
	bool tmp_root;              /* ours to remove */
	shmbus *bus;
	int runs;
	bool quick;
	bool tight;
	const char *only, *json, *clock_name;
	const struct sizes *sz;
	int cpu[2], ncpus;          /* worker CPUs; CPUs we may use */
	bool cpus_given, one_cpu;
	bool tsc;                   /* latency clock: TSC, else CLOCK_MONOTONIC */
	double ticks_per_ns, clock_cost_ns;
	char topic[2][96];          /* of the figure in progress */
	struct params cur;
	struct shared *sh;
	size_t sh_len, max_samples;
	int64_t deadline_ns;
	pid_t parent;
	sigset_t waitset, oldmask;
	bool interrupted;
	struct result res[NFIGS];
};

typedef int (*worker_fn)(struct bench *b, shmbus *bus, int role);

/* ------------------------------------------------------------------ */
/* Clocks                                                              */

static inline int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static inline uint64_t ticks(const struct bench *b)
{
#if defined(__x86_64__)
	unsigned aux;

	if (b->tsc)
		return __rdtscp(&aux); /* waits for earlier instructions */
#endif
	(void)b;
	return (uint64_t)mono_ns();
}

/* An empty spin: yield on a single CPU; false once past the deadline
 * (checked every 4096 spins). */
static inline bool idle(const struct bench *b, unsigned *spins)
{
	if (b->one_cpu)
		sched_yield();
	if (++*spins % 4096)
		return true;
	return mono_ns() < b->deadline_ns;
}

/* ------------------------------------------------------------------ */
/* Workers (bench_workers.c)                                           */

/* The MAP_SHARED anonymous mapping the workers report into, sized for
 * the largest figure; made before any fork.  0, or -1 with a message. */
int map_shared(struct bench *b);

/* One run: worker 0 on cpu[0], worker 1 on cpu[1], each calling fn;
 * returns once both have exited (or were killed past the deadline). */
int run_pair(struct bench *b, worker_fn fn);

/* Record why a worker failed; returns rc (< 0). */
int report(struct bench *b, int role, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Spin until *flag reaches want, or fail past the deadline. */
int wait_flag(struct bench *b, int role, uint32_t *flag, uint32_t want);

/* Both workers have set up: start together. */
int rendezvous(struct bench *b, int role);

/* A blocking producer, and a consumer assigned to the end of partition 0
 * of topic; failures are reported for the worker. */
int new_producer(struct bench *b, shmbus *bus, int role, const char *topic,
		 shmbus_producer **ret);
int new_consumer(struct bench *b, shmbus *bus, int role, const char *topic,
		 shmbus_consumer **ret);

/* ------------------------------------------------------------------ */
/* Figures (bench_figures.c)                                           */

/* pingpong, send, batch, large, blocking: in the order they run. */
extern const struct figure_def figure_defs[NFIGS];

/* Delete the topics of the figure in progress. */
void drop_topics(struct bench *b);

/* ------------------------------------------------------------------ */
/* Report (bench_report.c)                                             */

/* The value of the first /proc/cpuinfo line named `name`, or "". */
void cpuinfo(const char *name, char *buf, size_t len);

/* CPU model, kernel and local date, for the header and the JSON. */
void machine_info(char *cpu, size_t clen, char *kernel, size_t klen, char *date,
		  size_t dlen);
void print_header(const struct bench *b, const char *cpu, const char *kernel,
		  const char *date);

/* p50, p90, p99, p99.9 and max of samples[from, from + count). */
void latencies(const struct bench *b, size_t from, double *out);

/* The figure's table: min / median / max across runs, against its targets. */
void print_result(const struct result *r);

/* The results to b->json; 0, or -1 with a message. */
int write_json(const struct bench *b, const char *machine, const char *kernel,
	       const char *date);

#endif /* SHMBUS_CLI_BENCH_H */
