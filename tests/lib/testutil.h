/*
 * testutil.h - what the tests share: temporary bus roots, child
 * processes with deadlines, CPU pinning, and checks usable in a forked
 * child (where cmocka's asserts cannot report).
 */
#ifndef SHMBUS_TESTUTIL_H
#define SHMBUS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "shmbus.h"

/* A fresh directory under /dev/shm, removed by tu_rmrf(). */
char *tu_tmpdir(const char *tag);
void tu_rmrf(const char *path);

/* Fail the test unless shmbus_errmsg() mentions word. */
#define assert_errmsg_has(word)                                                          \
	do {                                                                             \
		if (!strstr(shmbus_errmsg(), (word)))                                   \
			fail_msg("the message does not mention \"%s\": \"%s\"", (word),  \
				 shmbus_errmsg());                                       \
	} while (0)

/* The source tree (SHMBUS_SRCDIR, else the current directory). */
const char *tu_srcdir(void);

/* Open a bus on root, failing the test with shmbus_errmsg() if it cannot. */
shmbus *tu_open(const char *root);

/* Fork a child that runs fn(arg) and exits with its return value. */
pid_t tu_fork(int (*fn)(void *arg), void *arg);

/* Wait for a child up to timeout_ms (killing it after); returns its exit
 * status, 128 + signal if killed by one, or -1 on timeout. */
int tu_wait(pid_t pid, int timeout_ms);

/* Pin the calling thread to a CPU (modulo the CPUs online). */
void tu_pin(int cpu);

/* Monotonic milliseconds. */
int64_t tu_ms(void);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound, then
 * closed): for a listener a test configures. */
int tu_free_port(void);

/* Skip the current test with a reason the runner prints. */
#define tu_skip(...)                                         \
	do {                                                 \
		printf("# skip reason: " __VA_ARGS__);       \
		printf("\n");                                \
		fflush(stdout);                              \
		skip();                                      \
	} while (0)

/* In a child process: report and exit 1 when cond is false. */
#define CHILD_CHECK(cond, ...)                                                  \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "child %d: %s:%d: check failed: %s: ",  \
				(int)getpid(), __FILE__, __LINE__, #cond);      \
			fprintf(stderr, __VA_ARGS__);                           \
			fprintf(stderr, " [%s]\n", shmbus_errmsg());            \
			_exit(1);                                               \
		}                                                               \
	} while (0)

/* assert a call returned >= 0, printing shmbus_errmsg() if not */
#define assert_ok(call)                                                          \
	do {                                                                     \
		int rc_ = (call);                                                \
		if (rc_ < 0)                                                     \
			fail_msg("%s = %d (%s): %s", #call, rc_, shmbus_strerror(rc_), \
				 shmbus_errmsg());                               \
	} while (0)

#endif
