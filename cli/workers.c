/*
 * workers.c - forked, pinned worker processes and why a run failed (see
 * workers.h for the contract).
 *
 * Owns the MAP_SHARED mapping of the workers' reasons (one slot each,
 * cleared before every fork), the parent's own reason, and the signal
 * mask a run's parent sleeps under: SIGCHLD blocked, so that an exit
 * that comes before sigtimedwait stays pending instead of being lost.
 */
#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define WHY_LEN 320

struct reasons {
	char why[WORKERS_MAX][WHY_LEN];
};

struct workers_state workers_state;

static struct reasons *shared;      /* the workers' slots */
static char parent_why[WHY_LEN + 40];
static int self = -1;               /* this worker's slot; -1 in the parent */
static pid_t parent;
static bool interrupted;
static sigset_t waitset, oldmask;
static struct sigaction old_chld;

int workers_init(unsigned flags)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (shared == MAP_FAILED) {
		shared = NULL;
		workers_fail("mmap of %zu shared bytes: %s", sizeof(struct reasons),
			     strerror(errno));
		return -ENOMEM;
	}
	parent = getpid();
	workers_state.yield = flags & WORKERS_ONE_CPU;
	sigemptyset(&waitset);
	sigaddset(&waitset, SIGCHLD);
	if (flags & WORKERS_INTERRUPTIBLE) {
		sigaddset(&waitset, SIGINT);
		sigaddset(&waitset, SIGTERM);
	}
	sigaction(SIGCHLD, &dfl, &old_chld); /* an inherited SIG_IGN would reap for us */
	sigprocmask(SIG_BLOCK, &waitset, &oldmask);
	return 0;
}

void workers_fini(void)
{
	if (!shared)
		return;
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	sigaction(SIGCHLD, &old_chld, NULL);
	munmap(shared, sizeof *shared);
	shared = NULL;
}

/* ------------------------------------------------------------------ */
/* Reasons                                                             */

int workers_fail(const char *fmt, ...)
{
	char *buf = self >= 0 && shared ? shared->why[self] : parent_why;
	size_t len = self >= 0 && shared ? WHY_LEN : sizeof parent_why;
	va_list ap;

	if (buf[0])
		return -1; /* the first reason is the cause; later ones follow from it */
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return -1;
}

const char *workers_why(void)
{
	return parent_why;
}

void workers_forget(void)
{
	parent_why[0] = 0;
}

bool workers_interrupted(void)
{
	return interrupted;
}

int workers_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) ? -errno : 0;
}

int workers_rendezvous(uint32_t *ready, uint32_t n)
{
	unsigned spins = 0;

	__atomic_add_fetch(ready, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(ready, __ATOMIC_ACQUIRE) < n)
		if (!workers_spin(&spins))
			return workers_fail("the other workers never got ready");
	return 0;
}

/* ------------------------------------------------------------------ */
/* A run                                                               */

static int worker_main(int i, int cpu, int (*fn)(int, void *), void *arg)
{
	int rc;

	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the run */
	if (getppid() != parent)
		return 1;                 /* the parent died before the prctl */
	self = i;
	rc = workers_pin(cpu);
	if (rc) {
		workers_fail("cannot pin to CPU %d: %s", cpu, strerror(-rc));
		return 1;
	}
	rc = fn(i, arg);
	if (rc)
		workers_fail("failed (%d) without saying why", rc);
	return rc ? 1 : 0;
}

static void kill_all(pid_t *pid, int n)
{
	for (int i = 0; i < n; i++)
		if (pid[i] > 0)
			kill(pid[i], SIGKILL);
	for (int i = 0; i < n; i++)
		if (pid[i] > 0)
			waitpid(pid[i], NULL, 0);
	for (int i = 0; i < n; i++)
		pid[i] = 0;
}

/* The parent's reason for worker i's exit status. */
static void explain(int i, int cpu, int status)
{
	if (shared->why[i][0])
		workers_fail("worker %d on CPU %d: %s", i, cpu, shared->why[i]);
	else if (WIFSIGNALED(status))
		workers_fail("worker %d on CPU %d was killed by signal %d", i, cpu,
			     WTERMSIG(status));
	else
		workers_fail("worker %d on CPU %d exited with status %d", i, cpu,
			     WEXITSTATUS(status));
}

/* The parent's reason for a run killed past its deadline, with the
 * first worker's reason, if one gave up first. */
static void late(int n, const int *cpus, double timeout_s)
{
	for (int i = 0; i < n; i++)
		if (shared->why[i][0]) {
			workers_fail("a run took longer than %.0f s and was killed; worker %d on "
				     "CPU %d: %s", timeout_s, i, cpus[i], shared->why[i]);
			return;
		}
	workers_fail("a run took longer than %.0f s and was killed", timeout_s);
}

/* Reap the workers as they exit; once one fails, past the deadline, or
 * on SIGINT or SIGTERM, kill the others by pid. */
static int reap(pid_t *pid, int n, const int *cpus, int64_t deadline_ns, double timeout_s)
{
	int live = n, status;

	while (live > 0) {
		int64_t left = deadline_ns - mono_ns();
		struct timespec ts = { .tv_sec = left / NS, .tv_nsec = left % NS };
		int sig;

		for (int i = 0; i < n; i++) {
			if (pid[i] <= 0 || waitpid(pid[i], &status, WNOHANG) != pid[i])
				continue;
			pid[i] = 0;
			live--;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				continue;
			explain(i, cpus[i], status);
			kill_all(pid, n); /* the others would wait for it in vain */
			return -ECHILD;
		}
		if (live == 0)
			break;
		if (interrupted || left <= 0) {
			kill_all(pid, n);
			if (interrupted)
				return workers_fail("interrupted"), -EINTR;
			late(n, cpus, timeout_s);
			return -ETIMEDOUT;
		}
		sig = sigtimedwait(&waitset, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM)
			interrupted = true;
	}
	return 0;
}

int workers_run(int n, const int *cpus, int (*fn)(int i, void *arg), void *arg,
		double timeout_s)
{
	pid_t pid[WORKERS_MAX] = { 0 };
	int64_t deadline = mono_ns() + (int64_t)(timeout_s * 1e9);

	if (n < 1 || n > WORKERS_MAX || !shared)
		return workers_fail("%d workers: 1 to %d, after workers_init()", n, WORKERS_MAX),
		       -EINVAL;
	memset(shared, 0, sizeof *shared);
	workers_state.deadline_ns = deadline - 2 * NS; /* workers give up before being killed */
	for (int i = 0; i < n; i++) {
		fflush(NULL);
		pid[i] = fork();
		if (pid[i] == 0)
			_exit(worker_main(i, cpus[i], fn, arg));
		if (pid[i] < 0) {
			int err = errno;

			pid[i] = 0;
			kill_all(pid, n);
			workers_fail("fork: %s", strerror(err));
			return -err;
		}
	}
	return reap(pid, n, cpus, deadline, timeout_s);
}
