/*
 * bench.c - `shmbus bench`: the speed figures of the core targets.
 *
 * Every figure runs its two sides in two forked worker processes, each
 * pinned to its own CPU (sched_setaffinity), as a real producer and a
 * real consumer would be.  The parent creates the topics, forks the
 * workers, sleeps until they exit (sigtimedwait on SIGCHLD, with a
 * deadline after which it kills them by pid), and reads what they
 * measured from one MAP_SHARED anonymous mapping made before any fork.
 * Each figure runs --runs times, each run warming up before it measures;
 * the table shows min / median / max across runs, and PASS or "short"
 * by comparing the median with the target.
 *
 *   pingpong  round trip through two topics, both sides spinning (poll
 *             with timeout 0): p50, p90, p99, p99.9, max; and the bare
 *             floor, two processes bouncing a counter through two words
 *   send      one producer -> one consumer, one shmbus_producer_send a
 *             record, zero-copy polls of up to 256: records/s end to end
 *   batch     the same with shmbus_producer_send_batch of 64 records
 *   large     1 MiB values end to end, the consumer copying each value
 *             out of the ring: GB/s
 *   blocking  round trip with sleeping consumers (spin_us < 0), against a
 *             bare FUTEX_WAIT/FUTEX_WAKE ping-pong between two processes
 *
 * Round trips of the bus and of the bare floor alternate in blocks within
 * one pair of processes, so both meet the same machine: in a VM, the
 * distance between the two vCPUs and the cost of waking an idle one
 * change while we measure.
 *
 * Latencies are read with the TSC (calibrated against CLOCK_MONOTONIC)
 * when it is invariant, else with CLOCK_MONOTONIC; the cost of one read
 * is measured and printed.  Throughput is timed with CLOCK_MONOTONIC,
 * which both processes share: the producer stamps its first timed send,
 * the consumer its last record.  Throughput consumers wait inside poll
 * (its own spin, then the futex), as an application would; --tight makes
 * them call poll with timeout 0 in a loop instead.  Throughput topics use
 * the backpressure policy with blocking producers, so a slower consumer
 * slows the producer instead of losing records; consumers check every
 * record's sequence number (the value's first 8 bytes) and a lapped
 * consumer is an error (reset policy "error"), so no figure counts
 * records that were lost.
 *
 * After each figure, a line says how much CPU time other tasks and the
 * hypervisor took from the two CPUs, and flags the figure as noisy when
 * that is more than rounding.
 */
#include "cli.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#define MAX_RUNS       100
#define MAX_METRICS    6
#define NFIGS          5
#define NS             1000000000LL
#define RUN_TIMEOUT_NS (30 * NS)   /* a run that takes longer is stuck */
#define KILL_GRACE_NS  (2 * NS)    /* workers give up first; then we kill them */
#define VALUE_SMALL    64
#define VALUE_LARGE    (1u << 20)
#define BATCH          64
#define POLL_MAX       256
#define RING_SMALL     SHMBUS_DEFAULT_CAPACITY
#define RING_LARGE     (64ULL << 20)

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

static const struct sizes sizes_full = { 20000, 200000, 1000000, 10000000, 2000000, 20000000,
					 200, 2000, 2000, 20000 };
static const struct sizes sizes_quick = { 5000, 50000, 200000, 2000000, 400000, 4000000,
					  50, 500, 500, 5000 };

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
	double wall_s, others_ms, steal_ms; /* CPU time others took from the workers */
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

static int64_t mono_ns(void)
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

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / NS, .tv_nsec = ns % NS };

	nanosleep(&ts, NULL);
}

/* The value of the first /proc/cpuinfo line named `name`, or "". */
static void cpuinfo(const char *name, char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char *line = NULL, *colon;
	size_t cap = 0, n = strlen(name);

	snprintf(buf, len, "%s", "");
	while (f && getline(&line, &cap, f) > 0) {
		colon = strchr(line, ':');
		if (strncmp(line, name, n) || !colon)
			continue;
		snprintf(buf, len, "%s", colon + 1 + strspn(colon + 1, " \t"));
		buf[strcspn(buf, "\n")] = 0;
		break;
	}
	free(line);
	if (f)
		fclose(f);
}

static bool has_flag(const char *flags, const char *flag)
{
	size_t n = strlen(flag);

	for (const char *p = strstr(flags, flag); p; p = strstr(p + 1, flag))
		if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
			return true;
	return false;
}

/* TSC when it is invariant (or asked for), calibrated against
 * CLOCK_MONOTONIC; then the cost of one read, averaged. */
static void clock_init(struct bench *b)
{
	static char flags[8192];
	volatile uint64_t sink = 0;
	uint64_t c0, c1;
	int64_t t0, t1;

	cpuinfo("flags", flags, sizeof flags);
#if defined(__x86_64__)
	b->tsc = has_flag(flags, "rdtscp") && has_flag(flags, "constant_tsc") &&
		 has_flag(flags, "nonstop_tsc");
#endif
	if (b->clock_name)
		b->tsc = b->tsc && !strcmp(b->clock_name, "tsc");
	b->ticks_per_ns = 1.0;
	if (b->tsc) {
		t0 = mono_ns();
		c0 = ticks(b);
		sleep_ns(b->quick ? 30000000 : 100000000);
		t1 = mono_ns();
		c1 = ticks(b);
		b->ticks_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
	}
	c0 = ticks(b);
	for (int i = 0; i < 100000; i++)
		sink += ticks(b);
	c1 = ticks(b);
	(void)sink;
	b->clock_cost_ns = (double)(c1 - c0) / 100000 / b->ticks_per_ns;
}

/* ------------------------------------------------------------------ */
/* Workers: fork, pin, report, wait with a deadline                    */

static int report(struct bench *b, int role, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record why a worker failed; returns rc (< 0). */
static int report(struct bench *b, int role, int rc, const char *fmt, ...)
{
	struct worker_report *r = &b->sh->rep[role];
	va_list ap;

	r->rc = rc;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
	return rc < 0 ? rc : -EPROTO;
}

/* CPU time used by this process and its reaped workers (ns). */
static int64_t our_cpu_ns(void)
{
	struct rusage self, children;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &children);
	return ((int64_t)self.ru_utime.tv_sec + self.ru_stime.tv_sec + children.ru_utime.tv_sec +
		children.ru_stime.tv_sec) * NS +
	       ((int64_t)self.ru_utime.tv_usec + self.ru_stime.tv_usec + children.ru_utime.tv_usec +
		children.ru_stime.tv_usec) * 1000;
}

/* Idle (with iowait) and stolen jiffies of the workers' CPUs (/proc/stat). */
static void cpu_ticks(const int cpu[2], long long *idle, long long *steal)
{
	FILE *f = fopen("/proc/stat", "r");
	long long v[8];
	char line[512];
	int n;

	*idle = *steal = 0;
	while (f && fgets(line, sizeof line, f)) {
		if (sscanf(line, "cpu%d %lld %lld %lld %lld %lld %lld %lld %lld", &n, &v[0], &v[1],
			   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 9 ||
		    (n != cpu[0] && (n != cpu[1] || cpu[1] == cpu[0])))
			continue;
		*idle += v[3] + v[4];
		*steal += v[7];
	}
	if (f)
		fclose(f);
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
static int run_pair(struct bench *b, worker_fn fn)
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

/* An empty spin: yield on a single CPU; false once past the deadline
 * (checked every 4096 spins). */
static bool idle(const struct bench *b, unsigned *spins)
{
	if (b->one_cpu)
		sched_yield();
	if (++*spins % 4096)
		return true;
	return mono_ns() < b->deadline_ns;
}

static int wait_flag(struct bench *b, int role, uint32_t *flag, uint32_t want)
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
static int rendezvous(struct bench *b, int role)
{
	__atomic_add_fetch(&b->sh->ready, 1, __ATOMIC_SEQ_CST);
	return wait_flag(b, role, &b->sh->ready, 2);
}

static int new_producer(struct bench *b, shmbus *bus, int role, const char *topic,
			shmbus_producer **ret)
{
	/* No block timeout: the library would read the clock on every send
	 * to compute a deadline; a stuck worker is killed by the parent. */
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true);
	int rc = shmbus_producer_new(bus, topic, &po, ret);

	return rc ? report(b, role, rc, "producer of %s: %s", topic, shmbus_errmsg()) : 0;
}

static int new_consumer(struct bench *b, shmbus *bus, int role, const char *topic,
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

/* The record carries sequence number `want` in its first 8 bytes. */
static int check_seq(struct bench *b, int role, const struct shmbus_message *m,
		     const void *value, uint64_t want)
{
	uint64_t seq;

	if (m->value_len != b->cur.value_len)
		return report(b, role, -EBADMSG, "record %llu has %zu value bytes, not %zu",
			      (unsigned long long)m->offset, m->value_len, b->cur.value_len);
	memcpy(&seq, value, sizeof seq);
	if (seq != want)
		return report(b, role, -EBADMSG, "expected record %llu, got %llu: lost or reordered",
			      (unsigned long long)want, (unsigned long long)seq);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Round trips.  Worker 0 sends on topic[0] and reads topic[1]; worker  */
/* 1 echoes.  Blocks of bus round trips alternate with blocks of bare   */
/* ones between the same two processes, so both meet the same machine   */
/* state (the idle and wake-up paths of a VM adapt as they are used).   */

#define TRIP_BLOCK 1000

static int receive_one(struct bench *b, int role, shmbus_consumer *c, struct shmbus_message *m)
{
	unsigned spins = 0;
	int n;

	while ((n = shmbus_consumer_poll(c, m, 1, b->cur.blocking ? 100 : 0)) != 1) {
		if (n < 0)
			return report(b, role, n, "poll %s: %s", b->topic[!role], shmbus_errmsg());
		if (b->cur.blocking ? mono_ns() > b->deadline_ns : !idle(b, &spins))
			return report(b, role, -ETIMEDOUT, "no record on %s in time", b->topic[!role]);
	}
	return 0;
}

/* Bus round trips [from, from + n); worker 0 times each into out[]. */
static int bus_trips(struct bench *b, int role, shmbus_producer *p, shmbus_consumer *c,
		     uint64_t from, uint64_t n, uint64_t *out)
{
	uint8_t value[VALUE_SMALL] = { 0 };
	struct shmbus_record rec = { .value = value, .value_len = sizeof value };
	struct shmbus_message m;

	for (uint64_t seq = from; seq < from + n; seq++) {
		uint64_t t0 = ticks(b), t1;
		int rc = 0;

		if (role == 0) {
			memcpy(value, &seq, sizeof seq);
			rc = shmbus_producer_send(p, 0, &rec, NULL);
		}
		if (rc >= 0)
			rc = receive_one(b, role, c, &m);
		t1 = ticks(b);
		if (rc == 0 && !(rc = check_seq(b, role, &m, m.value, seq)) && role == 1) {
			rec = (struct shmbus_record){ .value = m.value, .value_len = m.value_len };
			rc = shmbus_producer_send(p, 0, &rec, NULL);
		}
		if (rc < 0)
			return b->sh->rep[role].msg[0] ? rc :
			       report(b, role, rc, "send to %s: %s", b->topic[role], shmbus_errmsg());
		if (out)
			out[seq - from] = t1 - t0;
	}
	return 0;
}

/* The bare round trip: a counter bounced through two words on separate
 * cache lines, spinning, or (blocking) sleeping in FUTEX_WAIT and woken
 * by FUTEX_WAKE on a shared (not private) futex, as the bus does. */
static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

static int bare_await(struct bench *b, int role, uint32_t *word, uint32_t want)
{
	struct timespec ts = { .tv_sec = 1 };
	unsigned spins = 0;
	uint32_t v;

	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != want) {
		if (b->cur.blocking)
			futex(word, FUTEX_WAIT, v, &ts);
		if (b->cur.blocking ? mono_ns() > b->deadline_ns : !idle(b, &spins))
			return report(b, role, -ETIMEDOUT, "bare ping-pong stalled at %u", v);
	}
	return 0;
}

static void bare_post(const struct bench *b, uint32_t *word, uint32_t v)
{
	__atomic_store_n(word, v, __ATOMIC_RELEASE);
	if (b->cur.blocking)
		futex(word, FUTEX_WAKE, 1, NULL);
}

/* Bare round trips [from, from + n); worker 0 times each into out[]. */
static int bare_trips(struct bench *b, int role, uint64_t from, uint64_t n, uint64_t *out)
{
	uint32_t *ping = &b->sh->fping, *pong = &b->sh->fpong;
	int rc = 0;

	for (uint64_t i = from + 1; !rc && i <= from + n; i++) {
		uint64_t t0 = ticks(b), t1;

		if (role == 0) {
			bare_post(b, ping, (uint32_t)i);
			rc = bare_await(b, 0, pong, (uint32_t)i);
		} else {
			rc = bare_await(b, 1, ping, (uint32_t)i);
			bare_post(b, pong, (uint32_t)i);
		}
		t1 = ticks(b);
		if (out)
			out[i - 1 - from] = t1 - t0;
	}
	return rc;
}

/* Warm both up, then alternate blocks: bus samples go to samples[0,
 * count), bare ones to samples[count, 2 count). */
static int trips(struct bench *b, int role, shmbus_producer *p, shmbus_consumer *c)
{
	uint64_t warm = b->cur.warm, count = b->cur.count, *s = b->sh->samples;
	int rc = bus_trips(b, role, p, c, 0, warm, NULL);

	if (!rc)
		rc = bare_trips(b, role, 0, warm, NULL);
	for (uint64_t done = 0; !rc && done < count; done += TRIP_BLOCK) {
		uint64_t n = count - done < TRIP_BLOCK ? count - done : TRIP_BLOCK;

		rc = bus_trips(b, role, p, c, warm + done, n, role ? NULL : s + done);
		if (!rc)
			rc = bare_trips(b, role, warm + done, n, role ? NULL : s + count + done);
	}
	return rc;
}

static int trip_worker(struct bench *b, shmbus *bus, int role)
{
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	int rc = new_consumer(b, bus, role, b->topic[!role], &c);

	if (!rc)
		rc = new_producer(b, bus, role, b->topic[role], &p);
	if (!rc)
		rc = rendezvous(b, role);
	if (!rc)
		rc = trips(b, role, p, c);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Throughput: worker 0 produces to topic[0], worker 1 consumes it      */

/* Send records [from, from + n): their sequence numbers go in each
 * value's first 8 bytes. */
static int produce(struct bench *b, shmbus_producer *p, struct shmbus_record *recs,
		   uint8_t *vals, uint64_t from, uint64_t n)
{
	size_t batch = b->cur.batch, vlen = b->cur.value_len;
	uint64_t seq = from, end = from + n;

	while (seq < end) {
		size_t k = end - seq < batch ? (size_t)(end - seq) : batch;
		int rc;

		for (size_t i = 0; i < k; i++) {
			uint64_t s = seq + i;

			memcpy(vals + i * vlen, &s, sizeof s);
		}
		if (batch == 1) {
			rc = shmbus_producer_send(p, 0, recs, NULL);
			rc = rc < 0 ? rc : 1;
		} else {
			rc = shmbus_producer_send_batch(p, 0, recs, k);
		}
		if (rc <= 0)
			return report(b, 0, rc ? rc : -EIO, "send to %s: %s", b->topic[0],
				      shmbus_errmsg());
		seq += (uint64_t)rc;
	}
	return 0;
}

static int producer_side(struct bench *b, shmbus *bus)
{
	size_t vlen = b->cur.value_len, batch = b->cur.batch;
	struct shmbus_record *recs = calloc(batch, sizeof *recs);
	uint8_t *vals = malloc(batch * vlen);
	shmbus_producer *p = NULL;
	int rc = recs && vals ? 0 : report(b, 0, -ENOMEM, "out of memory");

	if (!rc) {
		memset(vals, 0xa5, batch * vlen); /* fault the pages in now */
		for (size_t i = 0; i < batch; i++)
			recs[i] = (struct shmbus_record){ .value = vals + i * vlen, .value_len = vlen };
		rc = new_producer(b, bus, 0, b->topic[0], &p);
	}
	if (!rc)
		rc = rendezvous(b, 0);
	if (!rc)
		rc = produce(b, p, recs, vals, 0, b->cur.warm);
	if (!rc)
		rc = wait_flag(b, 0, &b->sh->warm_done, 1);
	if (!rc) {
		__atomic_store_n(&b->sh->t_start, mono_ns(), __ATOMIC_RELEASE);
		rc = produce(b, p, recs, vals, b->cur.warm, b->cur.count);
	}
	shmbus_producer_free(p);
	free(recs);
	free(vals);
	return rc;
}

/* Read records [from, from + n), checking each; with `copy`, copy each
 * value out first and check the copy. */
static int consume(struct bench *b, shmbus_consumer *c, struct shmbus_message *msgs,
		   uint8_t *copy, uint64_t from, uint64_t n)
{
	uint64_t want = from, end = from + n;
	unsigned spins = 0;

	while (want < end) {
		size_t max = end - want < b->cur.poll_max ? (size_t)(end - want) : b->cur.poll_max;
		int got = shmbus_consumer_poll(c, msgs, max, b->cur.tight ? 0 : 100);

		if (got < 0)
			return report(b, 1, got, "poll %s: %s", b->topic[0], shmbus_errmsg());
		if (got == 0 && (b->cur.tight ? !idle(b, &spins) : mono_ns() > b->deadline_ns))
			return report(b, 1, -ETIMEDOUT, "records stopped coming at %llu of %llu",
				      (unsigned long long)(want - from), (unsigned long long)n);
		for (int i = 0; i < got; i++, want++) {
			const void *v = msgs[i].value;

			if (copy) {
				memcpy(copy, v, msgs[i].value_len);
				v = copy;
			}
			if (check_seq(b, 1, &msgs[i], v, want))
				return -EBADMSG;
		}
	}
	return 0;
}

static int consumer_side(struct bench *b, shmbus *bus)
{
	struct shmbus_message *msgs = calloc(b->cur.poll_max, sizeof *msgs);
	uint8_t *copy = b->cur.value_len > VALUE_SMALL ? malloc(b->cur.value_len) : NULL;
	shmbus_consumer *c = NULL;
	int rc = msgs && (copy || b->cur.value_len <= VALUE_SMALL) ? 0 :
		 report(b, 1, -ENOMEM, "out of memory");

	if (copy)
		memset(copy, 0, b->cur.value_len);
	if (!rc)
		rc = new_consumer(b, bus, 1, b->topic[0], &c);
	if (!rc)
		rc = rendezvous(b, 1);
	if (!rc)
		rc = consume(b, c, msgs, copy, 0, b->cur.warm);
	if (!rc) {
		__atomic_store_n(&b->sh->warm_done, 1, __ATOMIC_RELEASE);
		rc = consume(b, c, msgs, copy, b->cur.warm, b->cur.count);
		__atomic_store_n(&b->sh->t_end, mono_ns(), __ATOMIC_RELEASE);
	}
	shmbus_consumer_free(c);
	free(msgs);
	free(copy);
	return rc;
}

static int tput_worker(struct bench *b, shmbus *bus, int role)
{
	return role ? consumer_side(b, bus) : producer_side(b, bus);
}

/* ------------------------------------------------------------------ */
/* Figures                                                             */

static int make_topic(struct bench *b, int i, const char *name, uint64_t cap,
		      enum shmbus_policy policy)
{
	SHMBUS_OPTS(shmbus_topic_opts, to, .capacity = cap, .policy = policy);
	int rc;

	snprintf(b->topic[i], sizeof b->topic[i], "bench-%d-%s", (int)getpid(), name);
	shmbus_topic_delete(b->bus, b->topic[i]); /* left by a killed bench */
	rc = shmbus_topic_create(b->bus, b->topic[i], &to);
	if (rc) {
		fprintf(stderr, "shmbus bench: cannot create topic %s in %s: %s\n", b->topic[i],
			b->root, shmbus_errmsg());
		b->topic[i][0] = 0;
	}
	return rc;
}

static void drop_topics(struct bench *b)
{
	for (int i = 0; i < 2; i++) {
		if (b->topic[i][0])
			shmbus_topic_delete(b->bus, b->topic[i]);
		b->topic[i][0] = 0;
	}
}

static int pp_setup(struct bench *b, char *desc, size_t len)
{
	int rc = make_topic(b, 0, "ping", RING_SMALL, SHMBUS_POLICY_OVERWRITE);

	b->cur = (struct params){ .warm = b->sz->pp_warm, .count = b->sz->pp_count,
				  .value_len = VALUE_SMALL };
	snprintf(desc, len, "64 B values, two 16 MiB rings (overwrite), poll timeout 0; %llu "
		 "warm-up + %llu timed round trips a run, in blocks of %d alternating with the "
		 "bare round trip (two processes spinning on two shared words)",
		 (unsigned long long)b->cur.warm, (unsigned long long)b->cur.count, TRIP_BLOCK);
	return rc ? rc : make_topic(b, 1, "pong", RING_SMALL, SHMBUS_POLICY_OVERWRITE);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of sorted samples, in ns. */
static double quantile(const struct bench *b, const uint64_t *s, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n);

	return (double)s[rank ? rank - 1 : 0] / b->ticks_per_ns;
}

/* p50, p90, p99, p99.9 and max of samples[from, from + count). */
static void latencies(const struct bench *b, size_t from, double *out)
{
	uint64_t *s = b->sh->samples + from;
	size_t n = b->cur.count;

	qsort(s, n, sizeof *s, cmp_u64);
	out[0] = quantile(b, s, n, 0.50);
	out[1] = quantile(b, s, n, 0.90);
	out[2] = quantile(b, s, n, 0.99);
	out[3] = quantile(b, s, n, 0.999);
	out[4] = quantile(b, s, n, 1.0);
}

/* The bus's round trip percentiles, and the bare p50. */
static int pp_once(struct bench *b, double *out)
{
	double bare[5];
	int rc = run_pair(b, trip_worker);

	if (rc)
		return rc;
	latencies(b, 0, out);
	latencies(b, b->cur.count, bare);
	out[5] = bare[0];
	return 0;
}

static int tput_setup(struct bench *b, char *desc, size_t len, size_t batch)
{
	bool bat = batch > 1;

	b->cur = (struct params){ .warm = bat ? b->sz->batch_warm : b->sz->send_warm,
				  .count = bat ? b->sz->batch_count : b->sz->send_count,
				  .value_len = VALUE_SMALL, .batch = batch, .poll_max = POLL_MAX,
				  .tight = b->tight };
	snprintf(desc, len, "64 B values, 16 MiB ring (backpressure), %s, zero-copy polls of "
		 "up to %d%s; %llu warm-up + %llu timed records a run",
		 bat ? "send_batch of 64" : "one send a record", POLL_MAX,
		 b->tight ? " in a tight loop (timeout 0)" : "", (unsigned long long)b->cur.warm,
		 (unsigned long long)b->cur.count);
	return make_topic(b, 0, "data", RING_SMALL, SHMBUS_POLICY_BACKPRESSURE);
}

static int send_setup(struct bench *b, char *desc, size_t len)
{
	return tput_setup(b, desc, len, 1);
}

static int batch_setup(struct bench *b, char *desc, size_t len)
{
	return tput_setup(b, desc, len, BATCH);
}

static int large_setup(struct bench *b, char *desc, size_t len)
{
	b->cur = (struct params){ .warm = b->sz->large_warm, .count = b->sz->large_count,
				  .value_len = VALUE_LARGE, .batch = 1, .poll_max = 4,
				  .tight = b->tight };
	snprintf(desc, len, "1 MiB values, 64 MiB ring (backpressure), consumer copies each "
		 "value out%s; %llu warm-up + %llu timed records a run; GB = 1e9 bytes of values",
		 b->tight ? ", polls in a tight loop" : "", (unsigned long long)b->cur.warm,
		 (unsigned long long)b->cur.count);
	return make_topic(b, 0, "large", RING_LARGE, SHMBUS_POLICY_BACKPRESSURE);
}

/* Records/s (in millions) or value bytes/s (in GB) of one run. */
static int tput_once(struct bench *b, double *out)
{
	int rc = run_pair(b, tput_worker);
	double secs;

	if (rc)
		return rc;
	secs = (double)(b->sh->t_end - b->sh->t_start) / 1e9;
	if (b->cur.value_len > VALUE_SMALL)
		out[0] = (double)b->cur.count * (double)b->cur.value_len / secs / 1e9;
	else
		out[0] = (double)b->cur.count / secs / 1e6;
	return 0;
}

static int blk_setup(struct bench *b, char *desc, size_t len)
{
	int rc = make_topic(b, 0, "ping", RING_SMALL, SHMBUS_POLICY_OVERWRITE);

	b->cur = (struct params){ .warm = b->sz->blk_warm, .count = b->sz->blk_count,
				  .value_len = VALUE_SMALL, .blocking = true };
	snprintf(desc, len, "64 B values, two 16 MiB rings, consumers with spin_us < 0 "
		 "(futex sleep); %llu warm-up + %llu timed round trips a run, in blocks of %d "
		 "alternating with a bare FUTEX_WAIT/FUTEX_WAKE ping-pong",
		 (unsigned long long)b->cur.warm,
		 (unsigned long long)b->cur.count, TRIP_BLOCK);
	return rc ? rc : make_topic(b, 1, "pong", RING_SMALL, SHMBUS_POLICY_OVERWRITE);
}

/* Sleeping round trips: the bus's and the bare futex's p50 and p99. */
static int blk_once(struct bench *b, double *out)
{
	double bus[5], bare[5];
	int rc = run_pair(b, trip_worker);

	if (rc)
		return rc;
	latencies(b, 0, bus);
	latencies(b, b->cur.count, bare);
	out[0] = bus[0];
	out[1] = bus[2];
	out[2] = bare[0];
	out[3] = bare[2];
	out[4] = bus[0] / bare[0];
	return 0;
}

static const struct figure_def figure_defs[NFIGS] = {
	{ "pingpong", "round trip, spinning consumers", pp_setup, pp_once,
	  { { "p50", "ns", 0, 650, AT_MOST }, { "p90", "ns", 0, NAN, NONE },
	    { "p99", "ns", 0, 1000, AT_MOST }, { "p99.9", "ns", 0, NAN, NONE },
	    { "max", "ns", 0, NAN, NONE }, { "bare p50", "ns", 0, NAN, NONE } } },
	{ "send", "1 producer -> 1 consumer, shmbus_producer_send", send_setup, tput_once,
	  { { "rate", "M records/s", 2, 14, AT_LEAST } } },
	{ "batch", "1 producer -> 1 consumer, shmbus_producer_send_batch", batch_setup, tput_once,
	  { { "rate", "M records/s", 2, 40, AT_LEAST } } },
	{ "large", "1 MiB values end to end", large_setup, tput_once,
	  { { "rate", "GB/s", 2, 10, AT_LEAST } } },
	{ "blocking", "round trip, sleeping consumers vs bare futex", blk_setup, blk_once,
	  { { "bus p50", "ns", 0, NAN, NONE }, { "bus p99", "ns", 0, NAN, NONE },
	    { "bare p50", "ns", 0, NAN, NONE }, { "bare p99", "ns", 0, NAN, NONE },
	    { "ratio p50", "x", 3, 1.1, AT_MOST } } },
};

/* ------------------------------------------------------------------ */
/* Results                                                             */

struct summary {
	double min, median, max;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static struct summary summarize(const double *v, int n)
{
	double s[MAX_RUNS];

	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return (struct summary){ s[0], n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[n - 1] };
}

static int metric_count(const struct figure_def *d)
{
	int n = 0;

	while (n < MAX_METRICS && d->m[n].key)
		n++;
	return n;
}

static bool passes(const struct metric_def *m, double median)
{
	return m->goal == AT_LEAST ? median >= m->target : median <= m->target;
}

/* Did other tasks take more than rounding from the workers' CPUs? */
static bool noisy(const struct result *r)
{
	return r->others_ms + r->steal_ms > 50 + 100 * r->wall_s;
}

static void print_result(const struct result *r)
{
	const struct figure_def *d = r->def;

	printf("\n%s: %s\n  %s\n", d->name, d->title, r->desc);
	if (r->runs == 0)
		return;
	printf("  %-22s %10s %10s %10s   %s\n", "", "min", "median", "max", "target");
	for (int i = 0; i < metric_count(d); i++) {
		const struct metric_def *m = &d->m[i];
		struct summary s = summarize(r->v[i], r->runs);
		char label[64];

		snprintf(label, sizeof label, "%s (%s)", m->key, m->unit);
		printf("  %-22s %10.*f %10.*f %10.*f", label, m->decimals, s.min, m->decimals,
		       s.median, m->decimals, s.max);
		if (m->goal != NONE)
			printf("   %s %-6g %s", m->goal == AT_LEAST ? ">=" : "<=", m->target,
			       passes(m, s.median) ? "PASS" : "short");
		printf("\n");
	}
	if (r->failed)
		printf("  (only %d run%s completed)\n", r->runs, r->runs == 1 ? "" : "s");
	printf("  other tasks took ~%.0f ms of the two CPUs, the hypervisor stole %.0f ms, in "
	       "%.1f s%s\n", r->others_ms, r->steal_ms, r->wall_s,
	       noisy(r) ? ": NOISY, the figures understate the bus" : "");
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_metric(FILE *f, const struct result *r, int i)
{
	const struct metric_def *m = &r->def->m[i];
	struct summary s = summarize(r->v[i], r->runs);

	fprintf(f, "%s\n        {\"name\": ", i ? "," : "");
	json_str(f, m->key);
	fprintf(f, ", \"unit\": ");
	json_str(f, m->unit);
	fprintf(f, ", \"min\": %.6g, \"median\": %.6g, \"max\": %.6g, \"runs\": [", s.min,
		s.median, s.max);
	for (int k = 0; k < r->runs; k++)
		fprintf(f, "%s%.6g", k ? ", " : "", r->v[i][k]);
	if (m->goal == NONE)
		fprintf(f, "], \"target\": null, \"goal\": null, \"pass\": null}");
	else
		fprintf(f, "], \"target\": %g, \"goal\": \"%s\", \"pass\": %s}", m->target,
			m->goal == AT_LEAST ? ">=" : "<=", passes(m, s.median) ? "true" : "false");
}

static void json_figures(FILE *f, const struct bench *b)
{
	bool first = true;

	for (int k = 0; k < NFIGS; k++) {
		const struct result *r = &b->res[k];

		if (!r->selected)
			continue;
		fprintf(f, "%s\n    {\"name\": \"%s\", \"title\": ", first ? "" : ",", r->def->name);
		json_str(f, r->def->title);
		fprintf(f, ", \"setup\": ");
		json_str(f, r->desc);
		fprintf(f, ", \"complete\": %s, \"wall_s\": %.2f, \"others_ms\": %.0f, "
			"\"steal_ms\": %.0f, \"noisy\": %s, \"metrics\": [",
			r->failed ? "false" : "true", r->wall_s, r->others_ms, r->steal_ms,
			noisy(r) ? "true" : "false");
		for (int i = 0; r->runs && i < metric_count(r->def); i++)
			json_metric(f, r, i);
		fprintf(f, "]}");
		first = false;
	}
}

static int write_json(const struct bench *b, const char *machine, const char *kernel,
		      const char *date)
{
	FILE *f = fopen(b->json, "w");

	if (!f) {
		fprintf(stderr, "shmbus bench: cannot write %s: %s\n", b->json, strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"tool\": \"shmbus bench\", \"date\": ");
	json_str(f, date);
	fprintf(f, ", \"runs\": %d, \"quick\": %s,\n  \"machine\": {\"cpu\": ", b->runs,
		b->quick ? "true" : "false");
	json_str(f, machine);
	fprintf(f, ", \"kernel\": ");
	json_str(f, kernel);
	fprintf(f, ", \"cpus_online\": %ld, \"cpus_used\": [%d, %d]},\n",
		sysconf(_SC_NPROCESSORS_ONLN), b->cpu[0], b->cpu[1]);
	fprintf(f, "  \"clock\": {\"source\": \"%s\", \"ticks_per_ns\": %.6f, \"read_ns\": %.2f},\n",
		b->tsc ? "tsc" : "CLOCK_MONOTONIC", b->ticks_per_ns, b->clock_cost_ns);
	fprintf(f, "  \"figures\": [");
	json_figures(f, b);
	fprintf(f, "\n  ]\n}\n");
	if (fclose(f)) {
		fprintf(stderr, "shmbus bench: cannot write %s: %s\n", b->json, strerror(errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Running the figures                                                 */

/* How much CPU time other tasks (and the hypervisor) took on the two
 * CPUs during a figure: their busy time (all but idle and stolen) less
 * what our processes used.  /proc/stat counts in jiffies, so a few tens
 * of milliseconds are rounding. */
static void measure_disturbance(const struct bench *b, struct result *r, int64_t t0,
				int64_t ours0, long long idle0, long long steal0)
{
	double ms_per_tick = 1000.0 / (double)sysconf(_SC_CLK_TCK);
	long long idle, steal;

	cpu_ticks(b->cpu, &idle, &steal);
	r->wall_s = (double)(mono_ns() - t0) / 1e9;
	r->steal_ms = (double)(steal - steal0) * ms_per_tick;
	r->others_ms = r->wall_s * 1000 * (b->one_cpu ? 1 : 2) - (double)(idle - idle0) * ms_per_tick -
		       r->steal_ms - (double)(our_cpu_ns() - ours0) / 1e6;
	if (r->others_ms < 0)
		r->others_ms = 0;
}

/* Run one figure --runs times; false if a run failed. */
static bool run_figure(struct bench *b, struct result *r)
{
	double out[MAX_METRICS] = { 0 };
	int64_t t0 = mono_ns(), ours = our_cpu_ns();
	long long idle, steal;
	int rc;

	cpu_ticks(b->cpu, &idle, &steal);
	rc = r->def->setup(b, r->desc, sizeof r->desc);
	for (int k = 0; rc == 0 && k < b->runs; k++) {
		rc = r->def->once(b, out);
		for (int i = 0; rc == 0 && i < MAX_METRICS; i++)
			r->v[i][r->runs] = out[i];
		if (rc == 0)
			r->runs++;
	}
	drop_topics(b);
	r->failed = rc != 0;
	measure_disturbance(b, r, t0, ours, idle, steal);
	print_result(r);
	if (rc == -EINTR)
		printf("  interrupted\n");
	else if (rc == -ETIMEDOUT)
		printf("  FAILED: a run took longer than %lld s; its workers were killed\n",
		       RUN_TIMEOUT_NS / NS);
	for (int w = 0; rc && w < 2; w++)
		if (b->sh->rep[w].msg[0])
			printf("  FAILED: worker %d (CPU %d): %s\n", w, b->cpu[w], b->sh->rep[w].msg);
	fflush(stdout);
	return rc == 0;
}

static void machine_info(char *cpu, size_t clen, char *kernel, size_t klen, char *date,
			 size_t dlen)
{
	struct utsname u;
	time_t now = time(NULL);
	struct tm tm;

	cpuinfo("model name", cpu, clen);
	if (!cpu[0])
		snprintf(cpu, clen, "unknown CPU");
	if (uname(&u) == 0)
		snprintf(kernel, klen, "%s %s %s", u.sysname, u.release, u.machine);
	else
		snprintf(kernel, klen, "unknown");
	localtime_r(&now, &tm);
	strftime(date, dlen, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

static void print_header(const struct bench *b, const char *cpu, const char *kernel,
			 const char *date)
{
	double load[3] = { 0, 0, 0 };

	getloadavg(load, 3);
	printf("shmbus bench%s: %d run%s per figure; min / median / max across runs\n",
	       b->quick ? " --quick" : "", b->runs, b->runs == 1 ? "" : "s");
	printf("  machine  %s, %ld CPUs online; %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN), kernel);
	printf("  cpus     worker 0 (ping, producer) on CPU %d, worker 1 (echo, consumer) on CPU %d "
	       "(%d usable)\n", b->cpu[0], b->cpu[1], b->ncpus);
	if (b->one_cpu)
		printf("  WARNING  both workers share CPU %d%s: spinners yield, and the figures "
		       "measure the scheduler, not the bus\n", b->cpu[0],
		       b->ncpus < 2 ? " (the only one usable)" : "");
	printf("  date     %s; load average %.2f %.2f %.2f\n", date, load[0], load[1], load[2]);
	printf("  root     %s%s\n", b->root, b->tmp_root ? " (temporary)" : "");
	if (b->tsc)
		printf("  clock    TSC at %.4f GHz (calibrated against CLOCK_MONOTONIC); "
		       "one read costs %.1f ns\n", b->ticks_per_ns, b->clock_cost_ns);
	else
		printf("  clock    CLOCK_MONOTONIC; one read costs %.1f ns\n", b->clock_cost_ns);
	printf("  rings    16 MiB (pingpong, send, batch, blocking), 64 MiB (large)\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Set-up: options, CPUs, root, shared mapping                         */

static void usage(FILE *f)
{
	fprintf(f, "usage: shmbus [--root DIR] bench [--quick] [--runs N] [--only NAME[,NAME]]\n"
		   "                    [--json FILE] [--cpus A,B] [--clock tsc|mono] [--tight]\n"
		   "  --quick   fewer records and samples (the whole bench in < 30 s)\n"
		   "  --runs    runs per figure (default 5); min / median / max are shown\n"
		   "  --only    figures to run: pingpong send batch large blocking\n"
		   "  --json    also write the results to FILE as JSON\n"
		   "  --cpus    the two CPUs to pin the workers to (default: the first two)\n"
		   "  --clock   latency clock (default: the TSC when invariant)\n"
		   "  --tight   throughput consumers call poll with timeout 0 in a loop\n"
		   "            instead of letting poll spin (default)\n"
		   "Without --root, a temporary root under /dev/shm is made and removed.\n");
}

/* --name VALUE or --name=VALUE: 1 with *ret set, 0 if not this option,
 * -1 if the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **ret)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) || (a[n] && a[n] != '='))
		return 0;
	if (a[n] == '=') {
		*ret = a + n + 1;
		return 1;
	}
	if (*i + 1 >= argc) {
		fprintf(stderr, "shmbus bench: %s needs a value\n", name);
		return -1;
	}
	*ret = argv[++*i];
	return 1;
}

static bool selected(const char *only, const char *name)
{
	size_t n = strlen(name);

	if (!only)
		return true;
	for (const char *p = only; p; p = strchr(p, ',')) {
		p += *p == ',';
		if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == 0))
			return true;
	}
	return false;
}

static int check_only(const char *only)
{
	for (const char *p = only; p; p = strchr(p, ',')) {
		size_t n;
		int k;

		p += *p == ',';
		n = strcspn(p, ",");
		for (k = 0; k < NFIGS; k++)
			if (strlen(figure_defs[k].name) == n && !strncmp(p, figure_defs[k].name, n))
				break;
		if (k == NFIGS) {
			fprintf(stderr, "shmbus bench: no figure \"%.*s\"; the figures are pingpong, "
				"send, batch, large, blocking\n", (int)n, p);
			return -1;
		}
	}
	return 0;
}

static int parse_runs_cpus(struct bench *b, const char *runs, const char *cpus)
{
	char *end;

	if (runs) {
		long n = strtol(runs, &end, 10);

		if (*end || n < 1 || n > MAX_RUNS) {
			fprintf(stderr, "shmbus bench: --runs takes 1 to %d, not \"%s\"\n", MAX_RUNS,
				runs);
			return -1;
		}
		b->runs = (int)n;
	}
	b->cpus_given = cpus != NULL;
	if (cpus && (sscanf(cpus, "%d,%d", &b->cpu[0], &b->cpu[1]) != 2 || b->cpu[0] < 0 ||
		     b->cpu[1] < 0 || b->cpu[0] >= CPU_SETSIZE || b->cpu[1] >= CPU_SETSIZE)) {
		fprintf(stderr, "shmbus bench: --cpus takes two CPU numbers, as 0,1\n");
		return -1;
	}
	return 0;
}

/* 0: go on; 1: done (help); -1: bad usage. */
static int parse_args(struct bench *b, int argc, char **argv)
{
	const char *runs = NULL, *cpus = NULL;
	int i = argc > 0 && argv[0][0] != '-' ? 1 : 0; /* the word "bench" */

	for (; i < argc; i++) {
		int r = 0;

		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(argv[i], "--quick"))
			b->quick = true;
		else if (!strcmp(argv[i], "--tight"))
			b->tight = true;
		else if (!((r = opt_value(argc, argv, &i, "--runs", &runs)) ||
			   (r = opt_value(argc, argv, &i, "--only", &b->only)) ||
			   (r = opt_value(argc, argv, &i, "--json", &b->json)) ||
			   (r = opt_value(argc, argv, &i, "--cpus", &cpus)) ||
			   (r = opt_value(argc, argv, &i, "--clock", &b->clock_name)))) {
			fprintf(stderr, "shmbus bench: unknown option \"%s\"\n", argv[i]);
			usage(stderr);
			return -1;
		}
		if (r < 0)
			return -1;
	}
	if (b->clock_name && strcmp(b->clock_name, "tsc") && strcmp(b->clock_name, "mono")) {
		fprintf(stderr, "shmbus bench: --clock takes tsc or mono\n");
		return -1;
	}
	if (b->only && check_only(b->only))
		return -1;
	return parse_runs_cpus(b, runs, cpus);
}

/* Two CPUs this process may run on (the first two, unless --cpus). */
static int pick_cpus(struct bench *b)
{
	cpu_set_t set;
	int found = 0;

	if (sched_getaffinity(0, sizeof set, &set)) {
		fprintf(stderr, "shmbus bench: sched_getaffinity: %s\n", strerror(errno));
		return -1;
	}
	b->ncpus = CPU_COUNT(&set);
	if (b->cpus_given) {
		if (!CPU_ISSET(b->cpu[0], &set) || !CPU_ISSET(b->cpu[1], &set)) {
			fprintf(stderr, "shmbus bench: CPU %d or %d is not one this process may use\n",
				b->cpu[0], b->cpu[1]);
			return -1;
		}
	} else {
		for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
			if (CPU_ISSET(c, &set))
				b->cpu[found++] = c;
		if (found == 1)
			b->cpu[1] = b->cpu[0];
	}
	b->one_cpu = b->cpu[0] == b->cpu[1];
	return 0;
}

static int open_root(struct bench *b, const char *root)
{
	SHMBUS_OPTS(shmbus_open_opts, oo);
	int rc;

	if (root) {
		snprintf(b->root, sizeof b->root, "%s", root);
	} else {
		snprintf(b->root, sizeof b->root, "/dev/shm/shmbus-bench-XXXXXX");
		if (!mkdtemp(b->root)) {
			fprintf(stderr, "shmbus bench: cannot make a temporary root in /dev/shm: %s; "
				"give one with --root\n", strerror(errno));
			return -1;
		}
		b->tmp_root = true;
	}
	oo.root = b->root;
	rc = shmbus_open(&oo, &b->bus);
	if (rc)
		fprintf(stderr, "shmbus bench: cannot open root %s: %s\n", b->root, shmbus_errmsg());
	return rc ? -1 : 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path))
		fprintf(stderr, "shmbus bench: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void close_root(struct bench *b)
{
	shmbus_close(b->bus); /* NULL is a no-op */
	b->bus = NULL;
	if (b->tmp_root)
		nftw(b->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int map_shared(struct bench *b)
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

static int run_all(struct bench *b)
{
	char cpu[256], kernel[256], date[64];
	int failed = 0;

	machine_info(cpu, sizeof cpu, kernel, sizeof kernel, date, sizeof date);
	print_header(b, cpu, kernel, date);
	for (int k = 0; k < NFIGS && !b->interrupted; k++) {
		struct result *r = &b->res[k];

		r->def = &figure_defs[k];
		r->selected = selected(b->only, r->def->name);
		if (r->selected && !run_figure(b, r))
			failed++;
	}
	if (b->json && write_json(b, cpu, kernel, date))
		failed++;
	if (b->interrupted)
		return 130;
	return failed ? 1 : 0;
}

int cmd_bench(const char *root, int argc, char **argv)
{
	static struct bench bench; /* too large for the stack */
	struct bench *b = &bench;
	struct sigaction dfl = { .sa_handler = SIG_DFL }, old_chld;
	int rc;

	memset(b, 0, sizeof *b);
	b->runs = 5;
	b->parent = getpid();
	rc = parse_args(b, argc, argv);
	if (rc)
		return rc > 0 ? 0 : 2;
	b->sz = b->quick ? &sizes_quick : &sizes_full;
	if (pick_cpus(b) || map_shared(b))
		return 1;
	clock_init(b);
	/* Workers' exits and ^C arrive through sigtimedwait in reap(). */
	sigemptyset(&b->waitset);
	sigaddset(&b->waitset, SIGCHLD);
	sigaddset(&b->waitset, SIGINT);
	sigaddset(&b->waitset, SIGTERM);
	sigaction(SIGCHLD, &dfl, &old_chld);
	sigprocmask(SIG_BLOCK, &b->waitset, &b->oldmask);
	rc = open_root(b, root) ? 1 : run_all(b);
	close_root(b);
	sigprocmask(SIG_SETMASK, &b->oldmask, NULL);
	sigaction(SIGCHLD, &old_chld, NULL);
	munmap(b->sh, b->sh_len);
	return rc;
}
