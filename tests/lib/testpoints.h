/*
 * testpoints.h - stop or kill a process at a named test point of the
 * real code (util/testpoint.h lists them, with the step of format.md §4
 * each sits in).
 *
 * tp_die_at() runs a function in a child process that dies of SIGKILL
 * at a point: a producer killed in that window.  tp_stop_at() runs one
 * in a thread that stops at a point until tp_resume(): a producer
 * stopped there (descheduled, or SIGSTOPped), alive, while the test
 * reads, unblocks and appends.  A point is armed in that child or thread
 * alone: the test's own appends pass it.  Every wait is bounded.
 */
#ifndef SHMBUS_TESTPOINTS_H
#define SHMBUS_TESTPOINTS_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "testutil.h"

/* Fork a child that runs fn(arg) with point `name` armed: it dies of
 * SIGKILL at its `hit`-th pass there (1: the first).  Returns the pid
 * once the child is dead and reaped; fails the test if the child ended
 * any other way (it never reached the point). */
pid_t tp_die_at(const char *name, unsigned hit, int (*fn)(void *arg), void *arg);

/* A thread stopped at a test point. */
struct tp_stop {
	const char *name;
	unsigned left;       /* passes of the point before it stops */
	int (*fn)(void *arg);
	void *arg;
	int rc;              /* fn's return value, once it returned */
	int reached[2];      /* thread -> test: 's' stopped, 'r' returned */
	int resume[2];       /* test -> thread */
	pthread_t thread;
	bool running;
};

/* Start fn(arg) in a thread that stops at its `hit`-th pass of point
 * `name`; returns once it is stopped there (fails the test if fn
 * returns first). */
void tp_stop_at(struct tp_stop *s, const char *name, unsigned hit, int (*fn)(void *arg),
		void *arg);

/* Let the stopped thread go on, and join it: fn's return value. */
int tp_resume(struct tp_stop *s);

#endif
