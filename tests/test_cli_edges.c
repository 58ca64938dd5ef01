/*
 * test_cli_edges.c - the `shmbus` command at its edges, end to end with
 * the real binary (lib/clirun.c): what it says about offsets past the
 * end, number ranges, escaped key delimiters, a root that is missing or
 * not writable, a producer held back by a stopped consumer, and a group
 * consumer whose reader goes away (`consume -g G | head -1`).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "lib/clirun.h"

/* ------------------------------------------------------------------ */
/* Messages about offsets and numbers                                  */

static void test_offset_past_end(void **state)
{
	const char *root = *state;
	struct run r;

	make_topic(root, "seven", "1", "64K");
	produce(root, "seven", "r0\nr1\nr2\nr3\nr4\nr5\nr6\n", NULL);
	CLI(&r, root, NULL, "consume", "seven", "-e", "-o", "9");
	expect_status(&r, 1, "an offset past the end");
	expect_contains(r.err, "offset 9 of seven/0 is not held", "an offset past the end");
	expect_contains(r.err, "holds offsets 0..6", "the last offset is 6");
	expect_contains(r.err, "7", "the next offset");
	assert_null(strstr(r.err, "0..7"));
	run_free(&r);

	make_topic(root, "none", "1", "64K");
	CLI(&r, root, NULL, "consume", "none", "-e", "-o", "3");
	expect_status(&r, 1, "an offset of an empty partition");
	expect_contains(r.err, "holds no records", "an empty partition");
	assert_null(strstr(r.err, "0..0"));
	run_free(&r);
}

/* The help says what the errors say: no "from 0" where 0 is refused. */
static void test_number_ranges(void **state)
{
	const struct { const char *const *args; const char *says; } bad[] = {
		{ ARGS("topic", "create", "x", "--partitions", "0"),
		  "--partitions wants a whole number of at least 1, not \"0\"" },
		{ ARGS("topic", "create", "x", "--partitions", "many"),
		  "--partitions wants a whole number of at least 1, not \"many\"" },
		{ ARGS("topic", "create", "x", "-p", "-1"),
		  "--partitions wants a whole number of at least 1, not \"-1\"" },
		{ ARGS("consume", "t", "-c", "0"), "-c wants a whole number of at least 1" },
		{ ARGS("consume", "t", "-c", "lots"), "-c wants a whole number of at least 1" },
		{ ARGS("topic", "create", "x", "--index-capacity", "0"),
		  "--index-capacity wants a whole number of at least 64" },
		{ ARGS("demo", "-n", "0"), "-n wants a whole number of at least 1" },
	};
	const char *root = *state;
	struct run r;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		run_in(&r, root, NULL, NULL, 0, RUN_TIMEOUT_MS, bad[i].args);
		expect_status(&r, 2, joined(bad[i].args));
		expect_contains(r.err, bad[i].says, joined(bad[i].args));
		assert_null(strstr(r.err, "from 0"));
		run_free(&r);
	}
	CLI(&r, root, NULL, "topic", "create", "--help");
	expect_ok(&r, "topic create --help");
	expect_contains(r.out, "--partitions N     partitions, at least 1", "the help's range");
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* -K with C escapes, as kcat reads it                                 */

static void expect_split(const char *root, const char *topic, const char *delim,
			 const char *in, size_t in_len, const char *want)
{
	struct run r;

	make_topic(root, topic, "1", "64K");
	run_in(&r, root, NULL, in, in_len, RUN_TIMEOUT_MS, ARGS("produce", topic, "-K", delim));
	expect_ok(&r, delim);
	run_free(&r);
	expect_consume(root, want, ARGS("consume", topic, "-e", "-f", "[%k][%s]\\n"));
}

/* a string literal and its length, NUL bytes included */
#define BYTES(s) (s), sizeof(s) - 1

static void test_key_delimiter_escapes(void **state)
{
	const char *root = *state;
	struct run r;

	expect_split(root, "tab", "\\t", BYTES("k1\tv1\nk\\tv\n"), "[k1][v1]\n[][k\\tv]\n");
	expect_split(root, "hex", "\\x1f", BYTES("k\x1fv\n"), "[k][v]\n");
	expect_split(root, "hexuc", "\\x1F|", BYTES("a\x1f|b\n"), "[a][b]\n");
	expect_split(root, "backslash", "\\\\", BYTES("k\\v\n"), "[k][v]\n");
	expect_split(root, "nul", "\\0", BYTES("k\0v\nnokey\n"), "[k][v]\n[][nokey]\n");
	expect_split(root, "plain", "::", BYTES("k::v\n"), "[k][v]\n");

	CLI(&r, root, "x\n", "produce", "tab", "-K", "\\q");
	expect_status(&r, 2, "-K \\q");
	expect_contains(r.err, "-K: unknown escape \"\\q\"", "-K \\q");
	run_free(&r);
	CLI(&r, root, "x\n", "produce", "tab", "-K", "a\\");
	expect_status(&r, 2, "-K a\\");
	expect_contains(r.err, "a lone \\", "-K a\\");
	run_free(&r);
	CLI(&r, root, "x\n", "produce", "tab", "-K", "\\x4");
	expect_status(&r, 2, "-K \\x4");
	expect_contains(r.err, "\\x wants two hex digits", "-K \\x4");
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* Roots that are missing or not writable                              */

static void expect_no_dir(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		fail_msg("%s was created", path);
}

static void test_missing_root(void **state)
{
	char missing[512];
	struct run r;

	snprintf(missing, sizeof missing, "%s/typo/root", (const char *)*state);
	for (int i = 0; i < 3; i++) {
		const char *const *args = i == 0 ? ARGS("topic", "list")
				       : i == 1 ? ARGS("group", "list") : ARGS("stats");

		run_in(&r, NULL, missing, NULL, 0, RUN_TIMEOUT_MS, args);
		expect_ok(&r, joined(args));
		expect_output(&r, "", joined(args));
		expect_contains(r.err, missing, joined(args));
		expect_contains(r.err, "does not exist", joined(args));
		expect_contains(r.err, "$SHMBUS_ROOT", joined(args));
		expect_contains(r.err, "topic create", joined(args));
		run_free(&r);
		expect_no_dir(missing);
	}
	run_in(&r, NULL, missing, "x\n", 2, RUN_TIMEOUT_MS, ARGS("produce", "t"));
	expect_status(&r, 1, "produce into a missing root");
	expect_contains(r.err, "does not exist", "produce into a missing root");
	run_free(&r);
	run_in(&r, NULL, missing, NULL, 0, RUN_TIMEOUT_MS, ARGS("status"));
	expect_ok(&r, "status of a missing root");
	expect_contains(r.out, "does not exist", "status of a missing root");
	run_free(&r);
	expect_no_dir(missing);

	/* only an explicit topic create makes the root, and it says so */
	run_in(&r, NULL, missing, NULL, 0, RUN_TIMEOUT_MS, ARGS("topic", "create", "t"));
	expect_ok(&r, "topic create in a missing root");
	expect_contains(r.out, "created the bus root", "topic create says it made the root");
	expect_contains(r.out, missing, "topic create names the new root");
	run_free(&r);
	run_in(&r, NULL, missing, NULL, 0, RUN_TIMEOUT_MS, ARGS("topic", "create", "u"));
	expect_ok(&r, "topic create in the root made");
	assert_null(strstr(r.out, "created the bus root"));
	run_free(&r);
	run_in(&r, NULL, missing, NULL, 0, RUN_TIMEOUT_MS, ARGS("topic", "list"));
	expect_ok(&r, "topic list");
	expect_contains(r.out, "\nt ", "topic list");
	if (r.err_len)
		fail_msg("a note on a root with a bus: %s", r.err);
	run_free(&r);
}

/* A root the user cannot write: every message names it. */
static void test_unwritable_root(void **state)
{
	const char *root = *state;
	struct spawn_opts o = { .root = root };
	char bus[600];
	bool nobody = geteuid() == 0;
	int64_t deadline;

	make_topic(root, "t", "1", "64K");
	snprintf(bus, sizeof bus, "%s/bus", root);
	if (nobody) {            /* root writes anywhere: try it as nobody */
		o.as_nobody = true;
		chmod(root, 0755);
	} else {
		chmod(bus, 0444);
		chmod(root, 0555);
	}
	for (int i = 0; i < 3; i++) {
		const char *const *args = i == 0 ? ARGS("topic", "create", "u")
				       : i == 1 ? ARGS("topic", "list") : ARGS("consume", "t", "-e");
		struct child c = spawn_as(&o, args);
		struct run r = { 0 };

		deadline = tu_ms() + RUN_TIMEOUT_MS;
		pump(&c, &r, "", 0, deadline, 0);
		finish(&c, &r, deadline);
		if (r.status == 127 && strstr(r.err, "exec "))
			tu_skip("nobody cannot run %s: %s", cli_path(), r.err);
		expect_status(&r, 1, joined(args));
		expect_contains(r.err, root, joined(args));
		expect_contains(r.err, "Permission denied", joined(args));
		expect_contains(r.err, "--root", joined(args));
		run_free(&r);
	}
	chmod(root, 0700);
	chmod(bus, 0660);
}

/* ------------------------------------------------------------------ */
/* A producer held back by a stopped consumer says which one           */

static void wait_for_err(struct child *c, struct run *r, const char *needle, int64_t deadline)
{
	while (!strstr(r->err ? r->err : "", needle) && tu_ms() < deadline &&
	       (c->out >= 0 || c->err >= 0))
		pump(c, r, "", 0, tu_ms() + 100, 0);
	if (!strstr(r->err ? r->err : "", needle))
		fail_msg("no \"%s\" on stderr, which says:\n%s", needle, r->err ? r->err : "");
}

static int occurrences(const char *text, const char *needle)
{
	int n = 0;

	for (const char *at = text; (at = strstr(at, needle)); at += strlen(needle))
		n++;
	return n;
}

static void test_backpressure_names_consumer(void **state)
{
	const char *root = *state;
	int64_t deadline = tu_ms() + RUN_TIMEOUT_MS;
	struct run cr = { 0 }, pr = { 0 }, r;
	struct child cons, prod;
	char line[128], pid[32];
	static char in[20000];
	size_t len = 0;

	CLI(&r, root, NULL, "topic", "create", "bp", "--policy", "backpressure", "--capacity", "4K");
	expect_ok(&r, "create a backpressure topic");
	run_free(&r);
	cons = spawn(root, NULL, ARGS("consume", "bp", "-o", "end"));
	for (int i = 0; i < 200 && count_lines(cr.out ? cr.out : "") == 0; i++) {
		produce(root, "bp", "first\n", NULL);
		pump(&cons, &cr, "", 0, tu_ms() + 50, 1);
	}
	assert_true(pump(&cons, &cr, "", 0, deadline, 1)); /* it reads: it is registered */
	kill(cons.pid, SIGSTOP);

	while (len + 100 < sizeof in)
		len += (size_t)snprintf(in + len, sizeof in - len, "%090zu\n", len);
	prod = spawn(root, NULL, ARGS("produce", "bp"));
	pump(&prod, &pr, in, len, tu_ms() + 200, 0);
	snprintf(pid, sizeof pid, "pid %d", (int)cons.pid);
	wait_for_err(&prod, &pr, pid, deadline);
	snprintf(line, sizeof line, "bp/0");
	expect_contains(pr.err, line, "the partition waited on");

	kill(cons.pid, SIGCONT);   /* the consumer reads on: the producer ends */
	while (prod.out >= 0 || prod.err >= 0) {
		pump(&prod, &pr, "", 0, tu_ms() + 100, 0);
		pump(&cons, &cr, "", 0, tu_ms() + 10, 0);
		if (tu_ms() > deadline)
			fail_msg("the producer did not finish once the consumer went on");
	}
	finish(&prod, &pr, deadline);
	expect_ok(&pr, "produce after waiting");
	assert_int_equal(occurrences(pr.err, pid), 1);
	run_free(&pr);
	kill(cons.pid, SIGINT);
	pump(&cons, &cr, "", 0, deadline, 0);
	finish(&cons, &cr, deadline);
	run_free(&cr);
}

/* ------------------------------------------------------------------ */
/* consume -g G | head -1: what reached the pipe is committed          */

#define EPIPE_RECORDS 200000
#define EPIPE_LINE    12      /* "rec-0000000\n" */

static void test_group_commit_on_epipe(void **state)
{
	const char *root = *state;
	int64_t deadline = tu_ms() + RUN_TIMEOUT_MS, got;
	char *in = malloc(EPIPE_RECORDS * EPIPE_LINE + 1);
	struct run r = { 0 };
	struct child c;
	int pipe_size, lines;

	assert_non_null(in);
	for (unsigned i = 0; i < EPIPE_RECORDS; i++)
		snprintf(in + i * EPIPE_LINE, EPIPE_LINE + 1, "rec-%07u\n", i % 10000000);
	make_topic(root, "many", "1", "16M");
	produce(root, "many", in, NULL);
	free(in);

	c = spawn(root, NULL, ARGS("consume", "many", "-g", "head", "-e"));
	assert_true(pump(&c, &r, "", 0, deadline, 1));
	pipe_size = fcntl(c.out, F_GETPIPE_SZ);
	close(c.out);              /* as head(1) exits after its line */
	c.out = -1;
	pump(&c, &r, "", 0, deadline, 0);
	finish(&c, &r, deadline);
	expect_ok(&r, "consume -g whose reader went away");
	lines = (int)(r.out_len / EPIPE_LINE);
	got = committed(root, "head", "many", 0);
	if (got < lines || got * EPIPE_LINE > (int64_t)r.out_len + pipe_size + EPIPE_LINE)
		fail_msg("committed %lld; %d lines were read, %zu bytes, and the pipe holds %d",
			 (long long)got, lines, r.out_len, pipe_size);
	run_free(&r);
}

/* Each test gets its own bus root; whatever happens, the root and any
 * command still running are removed afterwards. */
static int make_root(void **state)
{
	*state = tu_tmpdir("cli-edges");
	return 0;
}

static int remove_root(void **state)
{
	reap_children();
	chmod(*state, 0700);
	tu_rmrf(*state);
	free(*state);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_offset_past_end, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_number_ranges, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_key_delimiter_escapes, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_missing_root, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_unwritable_root, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_backpressure_names_consumer, make_root,
						remove_root),
		cmocka_unit_test_setup_teardown(test_group_commit_on_epipe, make_root, remove_root),
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
	return cmocka_run_group_tests(tests, NULL, NULL);
}
