/*
 * cli.h - what the files of the `shmbus` command share.
 *
 * Every subcommand is a function `cmd_<name>(cli, argc, argv)` with
 * argv[0] the command's own name (getopt's convention), returning the
 * process exit status: 0, CLI_EXIT_FAIL (a runtime error, already
 * reported on stderr) or CLI_EXIT_USAGE (a bad command line).  util.c
 * holds what they share: error reporting, number and size parsing,
 * aligned tables and cleanup helpers.
 */
#ifndef SHMBUS_CLI_H
#define SHMBUS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "shmbus.h"

#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

/* What the global options decided. */
struct cli {
	const char *root;       /* --root DIR; NULL: $SHMBUS_ROOT, else the default */
	const char *prog;       /* argv[0] of the process, for commands we suggest */
};

/* `shmbus bench ...` (cli/bench.c): the speed figures of the core
 * targets, min/median/max over repeated runs.  root is the --root given
 * (NULL: a private temporary root).  Returns the process exit status. */
int cmd_bench(const char *root, int argc, char **argv);

/* The subcommands (cli/<name>.c). */
int cmd_topic(struct cli *cli, int argc, char **argv);
int cmd_produce(struct cli *cli, int argc, char **argv);
int cmd_consume(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_recover(struct cli *cli, int argc, char **argv);
int cmd_group(struct cli *cli, int argc, char **argv);
int cmd_groups(struct cli *cli, int argc, char **argv);
int cmd_demo(struct cli *cli, int argc, char **argv);
int cmd_mirror(struct cli *cli, int argc, char **argv);
int cmd_trace(struct cli *cli, int argc, char **argv);

/* ------------------------------------------------------------------ */
/* Option parsing shared by the subcommands (util.c)                   */

/* Long options every subcommand accepts: --root DIR and --help. */
enum { OPT_ROOT = 0x100, OPT_FIRST_PRIVATE };
#define CLI_COMMON_OPTIONS                                  \
	{ "root", required_argument, NULL, OPT_ROOT },      \
	{ "help", no_argument, NULL, 'h' }

/*
 * Handle what getopt_long returned for an option the subcommand does not
 * handle itself: --root, --help, and errors (cmd names the command in
 * messages).  Returns -1 to go on, else the exit status (usage printed to
 * stdout for --help, stderr otherwise).  Call getopt_long with opterr = 0
 * and an optstring that starts with ':'.
 */
int cli_common_option(struct cli *cli, int c, const char *cmd, char **argv, const char *usage);

/* Print usage (to stdout when status is 0, else to stderr); returns status. */
int cli_usage(const char *usage, int status);

/* A usage error: "shmbus: <message>" and the usage on stderr; returns 2. */
int cli_usage_err(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ */
/* Errors                                                              */

/* "shmbus: <message>" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Report a failed library call: shmbus_errmsg() when it has one (it names
 * the object and the fix), else `what` and shmbus_strerror(rc).
 * Returns CLI_EXIT_FAIL.
 */
int cli_fail(int rc, const char *what);

/* A library failure the command handled: forget its message, so a later
 * failure that sets none (-ENOMEM) does not print this one. */
void cli_err_forget(void);

/* The root the command works on (cli->root, else the library's default)
 * into buf; *origin says where it came from ("given with --root", "from
 * $SHMBUS_ROOT", "the default root").  Returns buf. */
const char *cli_root(const struct cli *cli, char *buf, size_t len, const char **origin);

/*
 * Open the bus of cli->root.  create=false fails with -ENOENT (and no
 * message) if there is no bus there yet; create=true makes the root and
 * the bus and says so on stdout.  Other failures are reported, naming the
 * root (and the fix, when the user cannot write there).
 */
int cli_open(const struct cli *cli, bool create, shmbus **ret);

/* After cli_open() found no bus: say on stderr why (the root is missing,
 * or holds no bus yet) and how to make one. */
void cli_no_bus_note(const struct cli *cli);

/* Report that `topic` does not exist because no bus exists yet; returns 1. */
int cli_no_bus(const struct cli *cli, const char *topic);

/* ------------------------------------------------------------------ */
/* Parsing numbers and sizes                                           */

/* A decimal integer in [min, max]; reports "<what> wants ..." and returns
 * -EINVAL.  The message states the range, so the help should too. */
int parse_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* A byte count with an optional K, M or G suffix (powers of 1024). */
int parse_size(const char *what, const char *s, uint64_t *ret);

/* "16 MiB", "4 KiB", "1000 B" (exact units only, else bytes). */
const char *fmt_size(char *buf, size_t len, uint64_t bytes);

/* "2024-05-01 12:00:00.123 +0200" for CLOCK_REALTIME nanoseconds. */
const char *fmt_time(char *buf, size_t len, int64_t ns);

const char *policy_name(enum shmbus_policy p);

/* ------------------------------------------------------------------ */
/* Aligned tables                                                      */

/* Rows of cells; numbers (cells that parse as one) align right. */
struct table {
	int ncols;
	const char *const *heads;
	char **cells;           /* nrows * ncols */
	size_t nrows, cap;
	int col;                /* next cell of the current row */
};

void table_init(struct table *t, int ncols, const char *const *heads);
/* Append a cell to the current row, starting a new row when it is full. */
void table_cell(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

/* ------------------------------------------------------------------ */
/* Cleanup helpers for error paths                                     */

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void bus_closep(shmbus **b) { shmbus_close(*b); }
static inline void producer_freep(shmbus_producer **p) { shmbus_producer_free(*p); }
static inline void consumer_freep(shmbus_consumer **c) { shmbus_consumer_free(*c); }
static inline void freep(void *p) { free(*(void **)p); }
static inline void table_freep(struct table *t) { table_free(t); }

/* ------------------------------------------------------------------ */
/* kcat's output format (format.c)                                     */

enum fmt_op {
	FMT_LITERAL, FMT_TOPIC, FMT_PARTITION, FMT_OFFSET, FMT_KEY, FMT_VALUE,
	FMT_TIMESTAMP, FMT_HEADERS, FMT_VALUE_SIZE, FMT_KEY_SIZE,
};

struct fmt_item {
	enum fmt_op op;
	size_t lit_off, lit_len;   /* FMT_LITERAL: bytes of fmt.lit */
};

struct fmt {
	struct fmt_item *items;
	size_t n;
	char *lit;                 /* the literal text, escapes resolved */
	bool value_newline;        /* exactly "%s\n": the fast path */
};

/*
 * C escapes, as kcat reads them in -f and -K: \n \r \t \0 \\ \xHH.
 * escape_at() reads the one at s (s[0] == '\\') into *ret and returns the
 * characters it takes, or -EINVAL (unknown) or -ERANGE (\x without two
 * hex digits); escape_error() names such an error.  unescape() resolves
 * every escape of `in` into a malloc'd *ret of *ret_len bytes (NUL bytes
 * included), or reports "<what>: ..." and returns -EINVAL.
 */
int escape_at(const char *s, char *ret);
const char *escape_error(const char *s, int rc);
int unescape(const char *what, const char *in, char **ret, size_t *ret_len);

/* Compile a format; on error reports it and returns -EINVAL. */
int fmt_compile(const char *spec, struct fmt *ret);

/* Write one message; returns 0, or -EIO if the stream failed. */
int fmt_write(const struct fmt *f, const struct shmbus_message *m, FILE *out);

void fmt_free(struct fmt *f);

/* ------------------------------------------------------------------ */
/* consume's output, which knows which records reached it (output.c)    */

struct output_rec {
	uint32_t partition;
	uint64_t next;             /* the offset after the record */
	uint64_t end;              /* bytes handed to the stream up to its end */
};

struct output {
	FILE *f;                   /* print here */
	char *buf;                 /* its buffer */
	int fd;
	int err;                   /* errno of the write that failed, else 0 */
	uint64_t written;          /* bytes write(2) took */
	struct output_rec *q;      /* printed, not yet written: a ring */
	size_t head, len, cap;
	uint64_t *delivered;       /* per partition: the offset after the last record
				    * written since output_forget(); 0: none */
	uint32_t nparts;           /* 0: no tracking */
};

/* A buffered stream on fd; with nparts > 0, tracking which records of a
 * topic of nparts partitions have been written.  0 or -ENOMEM. */
int output_open(struct output *o, int fd, uint32_t nparts);

/* The topic grew to nparts partitions: track them too (if tracking).
 * 0 or -ENOMEM. */
int output_grow(struct output *o, uint32_t nparts);

/* After printing m to o->f: note where it ends.  0 or -ENOMEM. */
int output_record(struct output *o, const struct shmbus_message *m);

/* Records whose last byte write(2) took are delivered: note them. */
void output_settle(struct output *o);

/* fflush; 0, or -errno of the write that failed (-EPIPE: the reader went). */
int output_flush(struct output *o);

/* What was delivered has been committed: start counting afresh. */
void output_forget(struct output *o);

void output_close(struct output *o);

#endif
