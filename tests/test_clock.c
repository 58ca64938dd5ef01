/*
 * test_clock.c - the TSC-based timestamp clock (util/clock.c) agrees with
 * CLOCK_REALTIME: every reading lies within a bound of the kernel's clock
 * read just before and just after it, early in the process (short
 * calibration windows) and across rebases.
 */
#include "lib/testutil.h"

#include <time.h>

#include "../util/clock.h"

/* Largest distance of fast_real_ns() outside [before, after]. */
static int64_t worst_error(int samples, int sleep_us)
{
	int64_t worst = 0;

	for (int i = 0; i < samples; i++) {
		int64_t before = real_ns(), t = fast_real_ns(), after = real_ns(), err = 0;

		if (t < before)
			err = before - t;
		else if (t > after)
			err = t - after;
		if (err > worst)
			worst = err;
		if (sleep_us)
			usleep((useconds_t)sleep_us);
	}
	return worst;
}

static void test_close_to_realtime_early(void **state)
{
	(void)state;
	/* the first windows are calibrated over 0.2 ms: allow 2 us */
	assert_true(worst_error(200, 50) < 2000);
}

static void test_close_to_realtime_across_rebases(void **state)
{
	(void)state;
	/* sleeps straddle the 50 ms rebase interval */
	assert_true(worst_error(12, 37000) < 2000);
}

/* A thread idle for longer than 2^32 ns: the rate measured over that
 * interval once overflowed a 64-bit shift and left the clock running at a
 * third of its speed (records stamped 280 ms in the past 20 ms later, so
 * time retention retired them at once). */
static void test_long_idle_keeps_its_rate(void **state)
{
	(void)state;
	assert_true(worst_error(4, 20000) < 2000);
	usleep(4400000);
	/* the rebase after the idle interval, then a window on its rate */
	assert_true(worst_error(40, 5000) < 2000);
}

static void test_tight_loop_never_far(void **state)
{
	(void)state;
	assert_true(worst_error(1000000, 0) < 2000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_to_realtime_early),
		cmocka_unit_test(test_close_to_realtime_across_rebases),
		cmocka_unit_test(test_long_idle_keeps_its_rate),
		cmocka_unit_test(test_tight_loop_never_far),
	};

	return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
