/*
 * test_bench.c - the benchmark's own sanity: the workloads that `shmbus
 * bench` and `make bench` share (cli/workloads.c, cli/workers.c), driven
 * directly, and the `shmbus bench` command end to end.
 *
 *   - a throughput run counts every record sent, once: the consumer
 *     checked warm + count records, the partition's end offset is the
 *     same, and the rate and bandwidth agree with each other (64 B sends,
 *     batches of 64 ending in a partial one, 1 MiB copied out);
 *   - round trips give ordered quantiles, and a bus round trip is slower
 *     than the bare one measured between the same two processes;
 *   - a lost or reordered record and a wrong length are named;
 *   - a worker that fails stops the run at once, with its reason, and a
 *     worker that ignores its deadline is killed by pid: neither is left;
 *   - `shmbus bench --quick --runs 1 --json` runs every figure to the end
 *     with sane figures and leaves no topic behind; its options work and
 *     bad ones are refused; SIGINT ends it with status 130 and removes its
 *     temporary root.
 * The figures are timed on a shared machine: the checks hold under any
 * load (orders and identities, not speeds).
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "lib/clirun.h"
#include "../cli/workloads.h"

static struct wl w;

/* ------------------------------------------------------------------ */
/* The workloads, driven directly                                      */

/* Two CPUs this process may use (one twice if it has only one). */
static bool pick_cpus(int cpu[2])
{
	cpu_set_t set;
	int found = 0;

	assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
	for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
		if (CPU_ISSET(c, &set))
			cpu[found++] = c;
	if (found == 1)
		cpu[1] = cpu[0];
	return found == 1;
}

static int open_wl(void **state)
{
	bool one_cpu = pick_cpus(w.cpu);

	(void)state;
	measure_clock_init(true, 20000000);
	if (workers_init(one_cpu ? WORKERS_ONE_CPU : 0) ||
	    wl_open(&w, NULL, "/dev/shm", 4000))
		fail_msg("set-up: %s", workers_why());
	w.timeout_s = 30;
	return 0;
}

static int close_wl(void **state)
{
	(void)state;
	wl_close(&w);
	workers_fini();
	return 0;
}

static void tput_case(size_t size, size_t batch, bool copy, uint64_t warm, uint64_t count,
		      int linger_us)
{
	SHMBUS_OPTS(shmbus_partition_info, info);
	struct wl_tput t = { .w = &w, .size = size, .batch = batch, .poll_max = 256, .copy = copy,
			     .warm = warm, .count = count, .ring = 16ULL << 20,
			     .linger_us = linger_us };
	int rc;

	workers_forget();
	assert_int_equal(wl_tput_setup(&t), 0);
	rc = wl_tput_run(&t);
	if (rc)
		fail_msg("%zu-byte values, batches of %zu: %s", size, batch, workers_why());
	assert_ok(shmbus_partition_info(w.bus, t.topic, 0, &info));
	assert_int_equal(info.high, warm + count);        /* sent */
	assert_int_equal(t.received, warm + count);       /* read and checked, in order */
	assert_true(isfinite(t.rate) && t.rate > 0);
	/* M records/s and GB/s of the same records: GB/s = rate * size / 1000 */
	assert_true(fabs(t.bw - t.rate * (double)size / 1000) <= 1e-9 * t.bw);
	wl_tput_drop(&t);
	assert_int_equal(shmbus_topic_list(w.bus, NULL, 0), 0);
}

static void test_tput_counts_every_record(void **state)
{
	(void)state;
	tput_case(64, 1, false, 1000, 20000, 0);
	tput_case(64, 64, true, 1000, 20001, 0); /* the last batch holds one record */
	tput_case(1 << 20, 1, true, 4, 40, 0);
	tput_case(64, 1, false, 1000, 20001, 100); /* linger: the last run by the flush */
}

static void expect_ordered(const double *q, const char *what)
{
	for (int i = 0; i < WL_NQ; i++)
		if (!(isfinite(q[i]) && q[i] > 0 && (i == 0 || q[i] >= q[i - 1])))
			fail_msg("%s: quantile %d is %g after %g", what, i, q[i], i ? q[i - 1] : 0);
}

static void test_trip_quantiles(void **state)
{
	struct wl_trip t = { .w = &w, .warm = 200, .count = 3000 };

	(void)state;
	workers_forget();
	assert_int_equal(wl_trip_setup(&t), 0);
	if (wl_trip_run(&t))
		fail_msg("spinning round trips: %s", workers_why());
	expect_ordered(t.bus, "bus round trips");
	expect_ordered(t.bare, "bare round trips");
	/* a record through two rings cannot beat a bare counter through two
	 * cache lines between the same processes (unless they share a CPU,
	 * and both measure the scheduler) */
	if (w.cpu[0] != w.cpu[1] && !(t.bus[0] > t.bare[0]))
		fail_msg("bus p50 %.0f ns is not above the bare p50 %.0f ns", t.bus[0], t.bare[0]);
	wl_trip_drop(&t);

	t = (struct wl_trip){ .w = &w, .blocking = true, .warm = 50, .count = 400 };
	assert_int_equal(wl_trip_setup(&t), 0);
	if (wl_trip_run(&t))
		fail_msg("blocking round trips: %s", workers_why());
	expect_ordered(t.bus, "blocking bus round trips");
	expect_ordered(t.bare, "futex round trips");
	wl_trip_drop(&t);
}

static void test_lost_record_named(void **state)
{
	uint8_t value[64] = { 0 };
	struct shmbus_message m = { .offset = 9, .value = value, .value_len = sizeof value };

	(void)state;
	wl_put_seq(value, 5);
	workers_forget();
	assert_int_equal(wl_check_seq(&m, 64, 5), 0);
	assert_int_equal(wl_check_seq(&m, 64, 4), -1);
	expect_contains(workers_why(), "expected record 4, got 5: lost or reordered", "a gap");
	workers_forget();
	assert_int_equal(wl_check_seq(&m, 32, 5), -1);
	expect_contains(workers_why(), "record 9 has 64 value bytes, not 32", "a length");
	workers_forget();
}

/* ------------------------------------------------------------------ */
/* Workers that fail or hang                                           */

static pid_t *pids; /* MAP_SHARED: each worker's pid */

static int fail_or_wait(int i, void *arg)
{
	unsigned spins = 0;

	(void)arg;
	pids[i] = getpid();
	if (i == 1)
		return workers_fail("boom %d", 7);
	while (workers_spin(&spins))
		; /* the parent kills us long before the deadline */
	return workers_fail("worker 0 was not stopped");
}

static int hang(int i, void *arg)
{
	(void)arg;
	pids[i] = getpid();
	for (int k = 0; k < 600; k++)
		usleep(100000); /* ignores its deadline */
	return 0;
}

static void expect_gone(int n)
{
	for (int i = 0; i < n; i++) {
		assert_true(pids[i] > 0);
		if (kill(pids[i], 0) == 0 || errno != ESRCH)
			fail_msg("worker %d (pid %d) is still there", i, (int)pids[i]);
	}
}

static void test_failed_worker_stops_run(void **state)
{
	char want[64];
	int64_t t0;

	(void)state;
	pids = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(pids != MAP_FAILED);
	workers_forget();
	t0 = tu_ms();
	assert_int_equal(workers_run(2, w.cpu, fail_or_wait, NULL, 20), -ECHILD);
	assert_true(tu_ms() - t0 < 5000);
	snprintf(want, sizeof want, "worker 1 on CPU %d: boom 7", w.cpu[1]);
	expect_contains(workers_why(), want, "the failing worker's reason");
	expect_gone(2);

	memset(pids, 0, 4096);
	workers_forget();
	t0 = tu_ms();
	assert_int_equal(workers_run(2, w.cpu, hang, NULL, 2), -ETIMEDOUT);
	assert_true(tu_ms() - t0 >= 1900 && tu_ms() - t0 < 6000);
	expect_contains(workers_why(), "a run took longer than 2 s and was killed", "a stuck run");
	expect_gone(2);
	workers_forget();
	munmap(pids, 4096);
}

/* ------------------------------------------------------------------ */
/* `shmbus bench`                                                      */

/* The median of figure fig's metric in the JSON `shmbus bench` wrote. */
static double median(const char *json, const char *fig, const char *metric)
{
	char key[96];
	const char *f, *end, *m, *v;

	snprintf(key, sizeof key, "{\"name\": \"%s\", ", fig);
	f = strstr(json, key);
	if (!f)
		fail_msg("no figure %s in the JSON", fig);
	end = strstr(f + strlen(key), "\n    {\"name\""); /* the next figure */
	snprintf(key, sizeof key, "{\"name\": \"%s\", ", metric);
	m = strstr(f, key);
	if (!m || (end && m > end))
		fail_msg("figure %s has no metric %s", fig, metric);
	v = strstr(m, "\"median\": ");
	assert_non_null(v);
	return strtod(v + strlen("\"median\": "), NULL);
}

static int make_root(void **state)
{
	*state = tu_tmpdir("bench");
	return 0;
}

static int remove_root(void **state)
{
	tu_rmrf(*state);
	free(*state);
	return 0;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static void test_cli_bench_figures(void **state)
{
	static const char *const figs[] = { "pingpong", "send", "batch", "large", "blocking" };
	const char *root = *state;
	char json_path[PATH_MAX], *json;
	const char *p;
	shmbus *bus;
	struct run r;
	int complete = 0;

	snprintf(json_path, sizeof json_path, "%s.json", root);
	run_in(&r, root, NULL, NULL, 0, 120000,
	       ARGS("bench", "--quick", "--runs", "1", "--json", json_path));
	expect_ok(&r, "bench --quick --runs 1");
	for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++) {
		char head[32];

		snprintf(head, sizeof head, "\n%s: ", figs[i]);
		expect_contains(r.out, head, "every figure's table");
	}
	assert_null(strstr(r.out, "FAILED"));
	run_free(&r);

	json = read_all(json_path);
	for (p = json; (p = strstr(p, "\"complete\": true")); p++)
		complete++;
	assert_int_equal(complete, 5);
	assert_null(strstr(json, "nan"));
	assert_null(strstr(json, "inf"));
	/* round trips: ordered percentiles; the sleeping one's ratio is its p50s' */
	assert_true(median(json, "pingpong", "p50") > 0);
	assert_true(median(json, "pingpong", "p50") <= median(json, "pingpong", "p99"));
	assert_true(median(json, "pingpong", "p99") <= median(json, "pingpong", "max"));
	assert_true(median(json, "pingpong", "bare p50") > 0);
	assert_true(median(json, "blocking", "bus p50") <= median(json, "blocking", "bus p99"));
	assert_true(fabs(median(json, "blocking", "ratio p50") -
			 median(json, "blocking", "bus p50") / median(json, "blocking", "bare p50"))
		    < 0.01 * median(json, "blocking", "ratio p50"));
	/* throughput: real rates, below what memory could carry */
	assert_true(median(json, "send", "rate") > 0 && median(json, "send", "rate") < 1000);
	assert_true(median(json, "batch", "rate") > 0 && median(json, "batch", "rate") < 1000);
	assert_true(median(json, "large", "rate") > 0 && median(json, "large", "rate") < 1000);
	free(json);
	unlink(json_path);

	/* every figure dropped its topics */
	bus = tu_open(root);
	assert_int_equal(shmbus_topic_list(bus, NULL, 0), 0);
	shmbus_close(bus);
}

static void test_cli_bench_options(void **state)
{
	const struct { const char *const *args; const char *says; } bad[] = {
		{ ARGS("bench", "--only", "nope"), "no figure \"nope\"" },
		{ ARGS("bench", "--runs", "0"), "--runs takes 1 to 100" },
		{ ARGS("bench", "--clock", "sundial"), "--clock takes tsc or mono" },
		{ ARGS("bench", "--cpus", "one"), "--cpus takes two CPU numbers" },
		{ ARGS("bench", "--fast"), "unknown option \"--fast\"" },
	};
	const char *root = *state;
	char cpus[32];
	struct run r;
	int cpu[2];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		run_in(&r, root, NULL, NULL, 0, RUN_TIMEOUT_MS, bad[i].args);
		expect_status(&r, 2, bad[i].says);
		expect_contains(r.err, bad[i].says, bad[i].says);
		run_free(&r);
	}
	pick_cpus(cpu);
	snprintf(cpus, sizeof cpus, "%d,%d", cpu[0], cpu[1]);
	run_in(&r, root, NULL, NULL, 0, 60000,
	       ARGS("bench", "--quick", "--runs", "2", "--only", "send,large", "--tight",
		    "--clock", "mono", "--cpus", cpus));
	expect_ok(&r, "bench --only send,large --tight --clock mono --cpus");
	expect_contains(r.out, "clock    CLOCK_MONOTONIC", "--clock mono");
	expect_contains(r.out, "in a tight loop (timeout 0)", "--tight");
	expect_contains(r.out, "\nsend: ", "--only send");
	expect_contains(r.out, "\nlarge: ", "--only large");
	expect_contains(r.out, "2 runs per figure", "--runs 2");
	assert_null(strstr(r.out, "pingpong:"));
	assert_null(strstr(r.out, "blocking:"));
	run_free(&r);
}

static void test_cli_bench_interrupt(void **state)
{
	char root[PATH_MAX] = "";
	int64_t deadline = tu_ms() + 30000;
	struct child c;
	struct run r = { 0 };
	struct stat st;
	const char *p;

	(void)state;
	c = spawn(NULL, NULL, ARGS("bench", "--runs", "50"));
	/* the header ends with the rings line; the root line comes before */
	while (!(r.out && strstr(r.out, "  rings ")) && tu_ms() < deadline)
		pump(&c, &r, "", 0, tu_ms() + 100, 0);
	assert_non_null(r.out);
	p = strstr(r.out, "  root     ");
	assert_non_null(p);
	sscanf(p + strlen("  root     "), "%4095s", root);
	assert_int_equal(stat(root, &st), 0);
	usleep(300000);
	assert_int_equal(kill(c.pid, SIGINT), 0);
	pump(&c, &r, "", 0, tu_ms() + 30000, 0); /* until it closes its outputs */
	finish(&c, &r, tu_ms() + 30000);
	expect_status(&r, 130, "bench interrupted");
	expect_contains(r.out, "interrupted", "bench interrupted");
	if (stat(root, &st) == 0)
		fail_msg("the temporary root %s is still there", root);
	run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tput_counts_every_record, open_wl, close_wl),
		cmocka_unit_test_setup_teardown(test_trip_quantiles, open_wl, close_wl),
		cmocka_unit_test_setup_teardown(test_lost_record_named, open_wl, close_wl),
		cmocka_unit_test_setup_teardown(test_failed_worker_stops_run, open_wl, close_wl),
		cmocka_unit_test_setup_teardown(test_cli_bench_figures, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_cli_bench_options, make_root, remove_root),
		cmocka_unit_test(test_cli_bench_interrupt),
	};
	struct stat st;

	signal(SIGPIPE, SIG_IGN);
	if (stat(cli_path(), &st) < 0) { /* `make test` builds it first: a real failure */
		printf("not ok 1 - the shmbus command is not at %s: build it, or set SHMBUS_CLI\n",
		       cli_path());
		return 1;
	}
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}
