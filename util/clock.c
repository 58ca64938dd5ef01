/*
 * clock.c - CLOCK_REALTIME at the cost of one TSC read, for record
 * timestamps (clock_gettime costs ~60 cycles here, rdtsc ~25).
 *
 * A base {tsc, ns, ns-per-tick} is taken from clock_gettime and extended
 * with the TSC for at most 8 times the interval its tick rate was
 * measured over, and at most REBASE_NS; then the next caller rebases and
 * measures the rate over the interval just ended.  Early windows are
 * short (0.2 ms of calibration buys a 1.6 ms window), later ones 50 ms,
 * so the error stays within tens of nanoseconds.  The base is a seqlock: readers retry if a
 * rebase ran meanwhile.  Used only where the kernel itself trusts the TSC
 * (clocksource "tsc", constant_tsc and nonstop_tsc); elsewhere this is
 * plain clock_gettime.
 */
#include "clock.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "atomics.h"

#define REBASE_NS 50000000ULL  /* 50 ms */
#define FIRST_NS    200000ULL  /* first calibration interval */

struct tsc_base {
	uint64_t seq;     /* odd while a rebase runs */
	uint64_t tsc;
	int64_t ns;
	uint64_t mult;    /* ns per tick, << 32 */
	uint64_t window;  /* ticks before the next rebase */
	uint64_t calib;   /* ticks mult was measured over */
};

static struct tsc_base base __attribute__((aligned(64)));
static bool tsc_usable;

#if defined(__x86_64__)
static inline uint64_t rdtsc(void)
{
	return __builtin_ia32_rdtsc();
}

static bool file_has(const char *path, const char *word)
{
	char buf[8192];
	size_t n;
	FILE *f = fopen(path, "r");
	bool found = false;

	if (!f)
		return false;
	while (!found && (n = fread(buf, 1, sizeof buf - 1, f)) > 0) {
		buf[n] = '\0';
		found = strstr(buf, word) != NULL;
	}
	fclose(f);
	return found;
}

static uint64_t window_for(uint64_t mult, uint64_t calib)
{
	uint64_t max = (REBASE_NS << 32) / mult;

	return 8 * calib < max ? 8 * calib : max;
}

/*
 * One {tsc, ns} pair: the kernel's clock bracketed by two TSC reads, the
 * tightest of a few tries, the TSC taken at its middle.  A pair read
 * plainly is off by whatever stopped us between the two reads (a
 * preemption, a hypervisor's steal), and that error, spread over a short
 * calibration interval, would skew the rate for the whole window.
 */
static void sample(uint64_t *ret_tsc, int64_t *ret_ns)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 4; i++) {
		uint64_t a = rdtsc();
		int64_t ns = real_ns();
		uint64_t b = rdtsc();

		if (b - a < best) {
			best = b - a;
			*ret_tsc = a + (b - a) / 2;
			*ret_ns = ns;
		}
	}
}

__attribute__((constructor)) static void clock_init(void)
{
	uint64_t t0, t1;
	int64_t n0, n1;

	if (!file_has("/sys/devices/system/clocksource/clocksource0/current_clocksource", "tsc") ||
	    !file_has("/proc/cpuinfo", " constant_tsc") || !file_has("/proc/cpuinfo", " nonstop_tsc"))
		return;
	sample(&t0, &n0);
	do
		n1 = real_ns();
	while ((uint64_t)(n1 - n0) < FIRST_NS);
	sample(&t1, &n1);
	if (n1 <= n0 || t1 <= t0)
		return;
	base.mult = (((uint64_t)(n1 - n0)) << 32) / (t1 - t0);
	base.tsc = t1;
	base.ns = n1;
	base.calib = t1 - t0;
	base.window = window_for(base.mult, base.calib);
	tsc_usable = base.mult != 0;
}

static int64_t rebase(void)
{
	uint64_t s = load_relaxed(&base.seq), t;
	int64_t ns;

	if ((s & 1) || !cas(&base.seq, &s, s + 1))
		return real_ns(); /* another thread is rebasing */
	sample(&t, &ns);
	/* measure the rate over the last interval, if it is longer; in 128
	 * bits, since an interval past 2^32 ns (4.3 s of a thread that sent
	 * nothing) would overflow the shift and leave a clock running at a
	 * fraction of its speed for a whole window */
	if (ns > base.ns && t - base.tsc > base.calib) {
		unsigned __int128 m = ((unsigned __int128)(uint64_t)(ns - base.ns) << 32) /
				      (t - base.tsc);

		if (m > 0 && m <= UINT64_MAX) {
			base.mult = (uint64_t)m;
			base.calib = t - base.tsc;
		}
	}
	base.tsc = t;
	base.ns = ns;
	base.window = window_for(base.mult, base.calib);
	store_release(&base.seq, s + 2);
	return ns;
}

int64_t fast_real_ns(void)
{
	if (!tsc_usable)
		return real_ns();
	for (;;) {
		uint64_t s = load_acquire(&base.seq), t = rdtsc();
		uint64_t t0 = load_relaxed(&base.tsc), mult = load_relaxed(&base.mult);
		int64_t ns0 = load_relaxed(&base.ns);
		uint64_t window = load_relaxed(&base.window);

		/* pairs with store_release of seq in rebase() */
		fence_acquire();
		if ((s & 1) || load_relaxed(&base.seq) != s)
			continue;
		if (t - t0 >= window)
			return rebase();
		return ns0 + (int64_t)(((t - t0) * mult) >> 32);
	}
}
#else
int64_t fast_real_ns(void)
{
	return real_ns();
}
#endif
