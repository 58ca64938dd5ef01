/*
 * test_mp.h - what the multi-process tests (tests/test_mp_*.c) share on
 * top of lib/testutil.h: a per-test bus root, a registry of the child
 * processes a test started (so a failing test kills exactly those, by
 * pid, and never waits out every deadline), memory shared with the
 * children, a seeded PRNG and a CRC32 the tests compute themselves, so
 * that a record's integrity is never judged by the code under test.
 *
 * Everything is static inline: each test binary uses a different subset.
 */
#ifndef SHMBUS_TEST_MP_H
#define SHMBUS_TEST_MP_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "shmbus.h"
#include "lib/testutil.h"

/* ------------------------------------------------------------------ */
/* A bus root per test                                                 */

struct mp_env {
	char *root;
	shmbus *bus;
};

/* ------------------------------------------------------------------ */
/* Child processes                                                     */

#define MP_MAX_KIDS 64

static pid_t mp_kids[MP_MAX_KIDS];

struct mp_tramp {
	int (*fn)(void *);
	void *arg;
};

/* In the child: cmocka's handlers would turn a crash into a cmocka
 * failure report (and run the remaining tests in the child); restore the
 * defaults so that a crash ends the child by its signal. */
static inline int mp_child(void *argp)
{
	const struct mp_tramp *t = argp;
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS };

	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], SIG_DFL);
	return t->fn(t->arg);
}

/* Fork a child running fn(arg); remembered until reaped. */
static inline pid_t mp_spawn(int (*fn)(void *), void *arg)
{
	struct mp_tramp t = { fn, arg };
	pid_t pid = tu_fork(mp_child, &t);

	for (int i = 0; i < MP_MAX_KIDS; i++) {
		if (mp_kids[i] == 0) {
			mp_kids[i] = pid;
			return pid;
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fail_msg("too many children");
	return -1;
}

static inline void mp_forget(pid_t pid)
{
	for (int i = 0; i < MP_MAX_KIDS; i++)
		if (mp_kids[i] == pid)
			mp_kids[i] = 0;
}

static inline void mp_sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wait for one child (killed after timeout_ms): its tu_wait status. */
static inline int mp_reap(pid_t pid, int timeout_ms)
{
	int st = tu_wait(pid, timeout_ms);

	mp_forget(pid);
	return st;
}

/* Kill (by pid) and reap every child of this test still running. */
static inline void mp_kill_all(void)
{
	for (int i = 0; i < MP_MAX_KIDS; i++) {
		if (mp_kids[i] > 0) {
			kill(mp_kids[i], SIGKILL);
			waitpid(mp_kids[i], NULL, 0);
		}
		mp_kids[i] = 0;
	}
}

static inline const char *mp_status_str(int st, char *buf, size_t len)
{
	if (st < 0)
		snprintf(buf, len, "timed out (killed)");
	else if (st >= 128)
		snprintf(buf, len, "killed by signal %d", st - 128);
	else
		snprintf(buf, len, "exit status %d", st);
	return buf;
}

/*
 * Wait for children that must all exit 0 within timeout_ms.  They are
 * watched together: at the first failure every other child of the test
 * is killed, so a broken test fails at once instead of waiting out each
 * deadline.
 */
static inline void mp_wait_ok(const pid_t *pids, size_t n, int timeout_ms, const char *what)
{
	int64_t end = tu_ms() + timeout_ms;
	bool done[MP_MAX_KIDS] = { false };
	size_t left = n;
	char buf[64];

	if (n > MP_MAX_KIDS)
		fail_msg("mp_wait_ok: %zu children", n);
	while (left) {
		for (size_t i = 0; i < n; i++) {
			int status, st;
			pid_t r;

			if (done[i])
				continue;
			r = waitpid(pids[i], &status, WNOHANG);
			if (r < 0) {
				mp_kill_all();
				fail_msg("%s %zu (pid %d): waitpid: %s", what, i, (int)pids[i],
					 strerror(errno));
			}
			if (r != pids[i])
				continue;
			done[i] = true;
			left--;
			mp_forget(pids[i]);
			st = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			if (st != 0) {
				mp_kill_all();
				fail_msg("%s %zu (pid %d): %s", what, i, (int)pids[i],
					 mp_status_str(st, buf, sizeof buf));
			}
		}
		if (left && tu_ms() > end) {
			for (size_t i = 0; i < n; i++)
				if (!done[i])
					print_error("%s %zu (pid %d): timed out after %d ms\n", what, i,
						    (int)pids[i], timeout_ms);
			mp_kill_all();
			fail_msg("%s: timed out", what);
		}
		if (left)
			mp_sleep_us(1000);
	}
}

static inline int mp_setup(void **state)
{
	static struct mp_env env;

	env.root = tu_tmpdir("mp");
	env.bus = tu_open(env.root);
	*state = &env;
	return 0;
}

static inline int mp_teardown(void **state)
{
	struct mp_env *env = *state;

	mp_kill_all();
	shmbus_close(env->bus);
	tu_rmrf(env->root);
	free(env->root);
	env->root = NULL;
	env->bus = NULL;
	return 0;
}

/* In a child: open the bus root (never the parent's handle). */
static inline shmbus *mp_open(const char *root)
{
	SHMBUS_OPTS(shmbus_open_opts, o, .root = root, .no_create = true);
	shmbus *bus = NULL;
	int rc = shmbus_open(&o, &bus);

	CHILD_CHECK(rc == 0, "shmbus_open(%s) = %d", root, rc);
	return bus;
}

/* Zeroed memory shared with children forked after this call. */
static inline void *mp_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail_msg("mmap shared: %s", strerror(errno));
	return p;
}

/* Wait until *flag != 0 (another process sets it), up to timeout_ms. */
static inline bool mp_await(const volatile int *flag, int timeout_ms)
{
	int64_t end = tu_ms() + timeout_ms;

	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
		if (tu_ms() > end)
			return false;
		mp_sleep_us(200);
	}
	return true;
}

static inline void mp_set(volatile int *flag, int v)
{
	__atomic_store_n(flag, v, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------ */
/* PRNG and CRC32                                                      */

static inline uint64_t mp_rand(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* CRC-32 (IEEE 802.3), bytewise: independent of the bus's CRC32C.  The
 * table is built once per process (pthread_once: producer threads call
 * this at the same moment, and a half-built table seals a value wrong). */
static uint32_t mp_crc32_table[256];

static inline void mp_crc32_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t v = i;

		for (int k = 0; k < 8; k++)
			v = (v >> 1) ^ (0xedb88320u & (0u - (v & 1u)));
		mp_crc32_table[i] = v;
	}
}

static inline uint32_t mp_crc32(const void *buf, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const uint8_t *b = buf;
	uint32_t c = ~0u;

	pthread_once(&once, mp_crc32_init);
	for (size_t i = 0; i < len; i++)
		c = mp_crc32_table[(c ^ b[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

/*
 * A self-checking value: u64 seq, u32 producer, `fill` random bytes, and
 * the CRC32 of all of them.  mp_seal writes one into buf (len bytes,
 * at least MP_SEAL_MIN); mp_unseal checks one.
 */
#define MP_SEAL_MIN 16u

static inline void mp_seal(uint8_t *buf, size_t len, uint64_t seq, uint32_t producer,
			   uint64_t *rng)
{
	uint32_t crc;
	size_t i = 12;

	memcpy(buf, &seq, 8);
	memcpy(buf + 8, &producer, 4);
	for (; i + 8 <= len - 4; i += 8) {
		uint64_t r = mp_rand(rng);

		memcpy(buf + i, &r, 8);
	}
	for (; i < len - 4; i++)
		buf[i] = (uint8_t)mp_rand(rng);
	crc = mp_crc32(buf, len - 4);
	memcpy(buf + len - 4, &crc, 4);
}

static inline bool mp_unseal(const void *v, size_t len, uint64_t *seq, uint32_t *producer)
{
	const uint8_t *b = v;
	uint32_t crc;

	if (!v || len < MP_SEAL_MIN)
		return false;
	memcpy(&crc, b + len - 4, 4);
	if (mp_crc32(b, len - 4) != crc)
		return false;
	memcpy(seq, b, 8);
	memcpy(producer, b + 8, 4);
	return true;
}

#endif
