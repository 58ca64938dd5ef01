/*
 * clirun.h - running the real `shmbus` command in tests (test_cli*.c):
 * the binary ($SHMBUS_CLI, else build/shmbus) with pipes for stdin,
 * stdout and stderr, always under a deadline after which the test kills
 * it by its pid, and checks on what it printed and how it exited.
 */
#ifndef SHMBUS_CLIRUN_H
#define SHMBUS_CLIRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RUN_TIMEOUT_MS 30000

/* What a finished command did. */
struct run {
	int status;         /* exit status; 128 + signal; -1 on timeout */
	char *out, *err;    /* NUL-terminated */
	size_t out_len, err_len;
};

/* A command still running. */
struct child {
	pid_t pid;
	int in, out, err;   /* our ends of its pipes (-1 once closed) */
};

/* How to start a command beyond its arguments (spawn_as). */
struct spawn_opts {
	const char *root;       /* --root ROOT unless NULL */
	const char *env_root;   /* $SHMBUS_ROOT (unset if NULL) */
	bool as_nobody;         /* drop to uid/gid 65534 first (needs root) */
};

const char *cli_path(void);
void run_free(struct run *r);

/* Kill (SIGKILL) and reap every command started and not yet finished. */
void reap_children(void);

/* Start the command: argv after the binary, with --root root unless
 * root is NULL; $SHMBUS_ROOT is env_root (unset if NULL). */
struct child spawn(const char *root, const char *env_root, const char *const *args);
struct child spawn_as(const struct spawn_opts *o, const char *const *args);

/*
 * Feed in[0, in_len) to the child and collect its output until both
 * outputs close or the deadline passes; stop early (return true) once
 * stdout holds `until_lines` lines (0: never).
 */
bool pump(struct child *c, struct run *r, const char *in, size_t in_len, int64_t deadline,
	  int until_lines);

/* Close our ends, wait for the child until the deadline (then kill it). */
void finish(struct child *c, struct run *r, int64_t deadline);

/* Run the command to its end with input `in`; kill it after the timeout. */
void run_in(struct run *r, const char *root, const char *env_root, const char *in,
	    size_t in_len, int timeout_ms, const char *const *args);

size_t len_of(const char *s);

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
/* shmbus --root ROOT args... with stdin IN (a string or NULL) */
#define CLI(r, root, in, ...) \
	run_in((r), (root), NULL, (in), len_of(in), RUN_TIMEOUT_MS, ARGS(__VA_ARGS__))

/* Fail showing what the command said, unless it exited with `status`. */
void expect_status(const struct run *r, int status, const char *what);
#define expect_ok(r, what) expect_status((r), 0, (what))

void expect_contains(const char *text, const char *needle, const char *what);
void expect_output(const struct run *r, const char *want, const char *what);

/* Does the table in text hold a line with these cells?  Runs of spaces
 * count as one, so the test does not depend on column widths. */
void expect_row(const char *text, const char *cells, const char *what);

int count_lines(const char *s);
int64_t realtime_ms(void);
void sleep_ms(int ms);

/* The command line, for messages. */
const char *joined(const char *const *args);

/* The command (consume ...) ends with status 0 and prints exactly `want`. */
void expect_consume(const char *root, const char *want, const char *const *args);

/* A topic made with the command, failing the test if it cannot be. */
void make_topic(const char *root, const char *name, const char *partitions,
		const char *capacity);

/* `shmbus produce TOPIC [-p part]` with stdin `in`, which must succeed silently. */
/* The committed offset of a group on topic/partition, read by the library;
 * -1 if none. */
int64_t committed(const char *root, const char *group, const char *topic, int32_t p);

void produce(const char *root, const char *topic, const char *in, const char *part);

/* A command, the exit status it must end with, and text its stdout and
 * stderr must contain (NULL: anything). */
struct expectation {
	const char *const *args;
	int status;
	const char *out, *err;
};

void expect_all(const char *root, const struct expectation *e, size_t n);

#endif
