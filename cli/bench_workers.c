/*
 * bench_workers.c - the worker processes of `shmbus bench`.
 *
 * Owns the MAP_SHARED anonymous mapping made before any fork (the
 * workers' reports, rendezvous words, timestamps and samples), and the
 * life of one run's two workers: fork, pin each to its CPU, open the
 * root, run the figure's worker function, and reap them, sleeping in
 * sigtimedwait until they exit or the run's deadline passes, after which
 * they are killed by pid.  Also the helpers every worker uses: failure
 * reports, the rendezvous, and making producers and consumers.
 */
#include "bench.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The shared mapping                                                  */

int map_shared(struct bench *b)
{
	b->max_samples = b->sz->pp_count > b->sz->blk_count ? b->sz->pp_count : b->sz->blk_count;
	b->sh_len = sizeof(struct shared) + 2 * b->max_samples * sizeof(uint64_t);
	b->sh = mmap(NULL, b->sh_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (b->sh == MAP_FAILED) {
		fprintf(stderr, "shmbus bench: mmap of %zu bytes: %s\n", b->sh_len, strerror(errno));
		b->sh = NULL;
		return -1;
	}
	memset(b->sh, 0, b->sh_len); /* fault it in before anything is timed */
	return 0;
}

/* ------------------------------------------------------------------ */
/* Workers: fork, pin, report, wait with a deadline                    */

/* Record why a worker failed; returns rc (< 0). */
int report(struct bench *b, int role, int rc, const char *fmt, ...)
{
	struct worker_report *r = &b->sh->rep[role];
	va_list ap;

	r->rc = rc;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
	return rc < 0 ? rc : -EPROTO;
}

static int child_main(struct bench *b, worker_fn fn, int role)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = b->root, .no_create = true);
	shmbus *bus;
	cpu_set_t set;
	int rc;

	sigprocmask(SIG_SETMASK, &b->oldmask, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the bench */
	if (getppid() != b->parent)
		return 1;
	CPU_ZERO(&set);
	CPU_SET(b->cpu[role], &set);
	if (sched_setaffinity(0, sizeof set, &set)) {
		report(b, role, -errno, "cannot pin to CPU %d: %s", b->cpu[role], strerror(errno));
		return 1;
	}
	rc = shmbus_open(&oo, &bus);
	if (rc) {
		report(b, role, rc, "cannot open root %s: %s", b->root, shmbus_errmsg());
		return 1;
	}
	rc = fn(b, bus, role);
	shmbus_close(bus);
	return rc ? 1 : 0;
}

static void kill_workers(pid_t pid[2])
{
	for (int i = 0; i < 2; i++) {
		if (pid[i] > 0) {
			kill(pid[i], SIGKILL);
			waitpid(pid[i], NULL, 0);
			pid[i] = 0;
		}
	}
}

/* 0, or -ECHILD with a message if the worker did not exit cleanly. */
static int check_exit(struct bench *b, int role, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!b->sh->rep[role].msg[0]) {
		if (WIFSIGNALED(status))
			report(b, role, -ECHILD, "worker killed by signal %d", WTERMSIG(status));
		else
			report(b, role, -ECHILD, "worker exited with status %d", WEXITSTATUS(status));
	}
	return -ECHILD;
}

/* Sleep until both workers exit.  Once one fails, past the deadline, or
 * on SIGINT or SIGTERM, kill the others by pid. */
static int reap(struct bench *b, pid_t pid[2], int64_t deadline_ns)
{
	int rc = 0, status, sig;

	while (pid[0] > 0 || pid[1] > 0) {
		int64_t wait_ns = deadline_ns - mono_ns();
		struct timespec ts;

		for (int i = 0; i < 2; i++) {
			if (pid[i] > 0 && waitpid(pid[i], &status, WNOHANG) == pid[i]) {
				pid[i] = 0;
				if (check_exit(b, i, status))
					rc = -ECHILD;
			}
		}
		if (rc)
			kill_workers(pid); /* the other would wait for it in vain */
		if (pid[0] <= 0 && pid[1] <= 0)
			break;
		if (b->interrupted || wait_ns <= 0) {
			kill_workers(pid);
			return b->interrupted ? -EINTR : -ETIMEDOUT;
		}
		ts = (struct timespec){ .tv_sec = wait_ns / NS, .tv_nsec = wait_ns % NS };
		sig = sigtimedwait(&b->waitset, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM)
			b->interrupted = true;
	}
	return rc;
}

/* One run: worker 0 on cpu[0], worker 1 on cpu[1]. */
int run_pair(struct bench *b, worker_fn fn)
{
	pid_t pid[2] = { 0, 0 };

	memset(b->sh, 0, offsetof(struct shared, samples));
	b->deadline_ns = mono_ns() + RUN_TIMEOUT_NS;
	for (int role = 0; role < 2; role++) {
		fflush(stdout);
		fflush(stderr);
		pid[role] = fork();
		if (pid[role] == 0)
			_exit(child_main(b, fn, role));
		if (pid[role] < 0) {
			int err = -errno;

			pid[role] = 0;
			kill_workers(pid);
			return report(b, role, err, "fork: %s", strerror(-err));
		}
	}
	return reap(b, pid, b->deadline_ns + KILL_GRACE_NS);
}

/* ------------------------------------------------------------------ */
/* Worker helpers                                                      */

int wait_flag(struct bench *b, int role, uint32_t *flag, uint32_t want)
{
	unsigned spins = 0;

	while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < want) {
#if defined(__x86_64__)
		_mm_pause();
#endif
		if (!idle(b, &spins))
			return report(b, role, -ETIMEDOUT, "the other worker never got ready");
	}
	return 0;
}

/* Both workers have set up: start together. */
int rendezvous(struct bench *b, int role)
{
	__atomic_add_fetch(&b->sh->ready, 1, __ATOMIC_SEQ_CST);
	return wait_flag(b, role, &b->sh->ready, 2);
}

int new_producer(struct bench *b, shmbus *bus, int role, const char *topic,
		 shmbus_producer **ret)
{
	/* No block timeout: the library would read the clock on every send
	 * to compute a deadline; a stuck worker is killed by the parent. */
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true);
	int rc = shmbus_producer_new(bus, topic, &po, ret);

	return rc ? report(b, role, rc, "producer of %s: %s", topic, shmbus_errmsg()) : 0;
}

int new_consumer(struct bench *b, shmbus *bus, int role, const char *topic,
		 shmbus_consumer **ret)
{
	/* spin_us 0 is the library's default spin before sleeping */
	SHMBUS_OPTS(shmbus_consumer_opts, co, .name = "bench", .reset = SHMBUS_RESET_ERROR,
		    .spin_us = b->cur.blocking ? -1 : 0);
	int rc = shmbus_consumer_new(bus, &co, ret);

	if (rc)
		return report(b, role, rc, "consumer: %s", shmbus_errmsg());
	rc = shmbus_consumer_assign(*ret, topic, 0, SHMBUS_OFFSET_END);
	if (rc)
		return report(b, role, rc, "assign %s: %s", topic, shmbus_errmsg());
	return 0;
}
