/*
 * testpoints.c - the tests' side of the test points (testpoints.h): one
 * hook for the process, points armed per thread.
 */
#include "testpoints.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "../../util/testpoint.h"

#ifndef SHMBUS_TESTPOINTS
#error "the tests are built with -DSHMBUS_TESTPOINTS (see the Makefile)"
#endif

#define TP_WAIT_MS 10000 /* a producer reaches its point, or returns, by then */

/* The point armed in this thread; stop: NULL to die there. */
struct armed {
	const char *name;
	unsigned left;
	struct tp_stop *stop;
};

static __thread struct armed *armed;

static void on_point(const char *name)
{
	struct armed *a = armed;
	char b = 's';

	if (!a || strcmp(name, a->name) != 0 || --a->left > 0)
		return;
	armed = NULL;
	if (!a->stop) {
		raise(SIGKILL);
		for (;;)
			pause();
	}
	if (write(a->stop->reached[1], &b, 1) != 1)
		return;
	while (read(a->stop->resume[0], &b, 1) < 0 && errno == EINTR)
		;
}

static void hook_install(void)
{
	__atomic_store_n(&shm_testpoint_hook, on_point, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------ */

struct die {
	struct armed a;
	int (*fn)(void *arg);
	void *arg;
};

static int die_main(void *arg)
{
	struct die *d = arg;

	armed = &d->a;
	return d->fn(d->arg) == 0 ? 0 : 1;
}

pid_t tp_die_at(const char *name, unsigned hit, int (*fn)(void *arg), void *arg)
{
	struct die d = { .a = { .name = name, .left = hit ? hit : 1 }, .fn = fn, .arg = arg };
	pid_t pid;
	int st;

	hook_install();
	pid = tu_fork(die_main, &d);
	st = tu_wait(pid, TP_WAIT_MS);
	if (st != 128 + SIGKILL)
		fail_msg("the producer (pid %d) was to die at test point %s (pass %u), but %s %d: "
			 "it never got there", (int)pid, name, hit,
			 st < 0 ? "was still running after 10 s, status" : "ended with status", st);
	return pid;
}

/* ------------------------------------------------------------------ */

static void *stop_main(void *arg)
{
	struct tp_stop *s = arg;
	struct armed a = { .name = s->name, .left = s->left, .stop = s };
	char b = 'r';

	armed = &a;
	s->rc = s->fn(s->arg);
	armed = NULL;
	if (write(s->reached[1], &b, 1) != 1)
		return NULL;
	return NULL;
}

static char wait_byte(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char b = 0;

	if (poll(&pfd, 1, TP_WAIT_MS) != 1 || read(fd, &b, 1) != 1)
		return 0;
	return b;
}

void tp_stop_at(struct tp_stop *s, const char *name, unsigned hit, int (*fn)(void *arg),
		void *arg)
{
	char b;

	*s = (struct tp_stop){ .name = name, .left = hit ? hit : 1, .fn = fn, .arg = arg };
	if (pipe2(s->reached, O_CLOEXEC) < 0 || pipe2(s->resume, O_CLOEXEC) < 0)
		fail_msg("pipe2: %s", strerror(errno));
	hook_install();
	if (pthread_create(&s->thread, NULL, stop_main, s) != 0)
		fail_msg("pthread_create failed");
	s->running = true;
	b = wait_byte(s->reached[0]);
	if (b == 'r')
		fail_msg("the producer was to stop at test point %s (pass %u), but returned %d first",
			 name, hit, s->rc);
	if (b != 's')
		fail_msg("the producer did not stop at test point %s (pass %u) within 10 s", name,
			 hit);
}

int tp_resume(struct tp_stop *s)
{
	struct timespec until;
	char b = 'g';

	if (!s->running)
		fail_msg("tp_resume of a producer that is not stopped");
	if (write(s->resume[1], &b, 1) != 1)
		fail_msg("resuming the producer: %s", strerror(errno));
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TP_WAIT_MS / 1000;
	if (pthread_timedjoin_np(s->thread, NULL, &until) != 0)
		fail_msg("the producer resumed at test point %s did not return within 10 s",
			 s->name);
	s->running = false;
	close(s->reached[0]);
	close(s->reached[1]);
	close(s->resume[0]);
	close(s->resume[1]);
	return s->rc;
}
