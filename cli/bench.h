/*
 * bench.h - what the files of `shmbus bench` share (internal to cli/).
 *
 * The bench is one `struct bench`, made by cmd_bench() and handed to every
 * function; its parts live in:
 *   bench.c          command line, CPUs, root, clock, and the run of each
 *                    figure (cmd_bench)
 *   bench_figures.c  the figure table: what each figure sets up and what
 *                    one run of it measures
 *   bench_report.c   the printed table and the JSON file
 * and what `make bench` measures with them too:
 *   workloads.c      the round trips, the bare floor and the throughput
 *                    workers, the root, topics and the shared mapping
 *   workers.c        the forked workers pinned to their CPUs, reaped
 *                    with a deadline, and why a run failed
 *   measure.c        the clock, min/median/max, quantiles, and the
 *                    disturbance accounting
 */
#ifndef SHMBUS_CLI_BENCH_H
#define SHMBUS_CLI_BENCH_H

#include "cli.h"
#include "measure.h"
#include "workloads.h"

#define MAX_RUNS       100
#define MAX_METRICS    6
#define NFIGS          5
#define RUN_TIMEOUT_S  30          /* a run that takes longer is stuck */

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
	struct wl w;                /* root, CPUs, the workers' shared mapping */
	int runs;
	bool quick;
	bool tight;
	const char *only, *json, *clock_name;
	const struct sizes *sz;
	int ncpus;                  /* CPUs we may use */
	bool cpus_given, one_cpu;
	struct wl_trip trip;        /* the figure in progress: a round trip */
	struct wl_tput tput;        /* or a throughput */
	struct result res[NFIGS];
};

/* ------------------------------------------------------------------ */
/* Figures (bench_figures.c)                                           */

/* pingpong, send, batch, large, blocking: in the order they run. */
extern const struct figure_def figure_defs[NFIGS];

/* Delete the topics of the figure in progress. */
void drop_topics(struct bench *b);

/* ------------------------------------------------------------------ */
/* Report (bench_report.c)                                             */

/* CPU model, kernel and local date, for the header and the JSON. */
void machine_info(char *cpu, size_t clen, char *kernel, size_t klen, char *date,
		  size_t dlen);
void print_header(const struct bench *b, const char *cpu, const char *kernel,
		  const char *date);

/* The figure's table: min / median / max across runs, against its targets. */
void print_result(const struct result *r);

/* The results to b->json; 0, or -1 with a message. */
int write_json(const struct bench *b, const char *machine, const char *kernel,
	       const char *date);

#endif /* SHMBUS_CLI_BENCH_H */
