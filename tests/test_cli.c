/*
 * test_cli.c - the `shmbus` command end to end: the real binary (path in
 * $SHMBUS_CLI, else build/shmbus) run with pipes for stdin, stdout and
 * stderr, always under a deadline after which the test kills it by its
 * pid (lib/clirun.c).  Each test works in its own bus root under /dev/shm
 * and removes it.  Checks are on output and exit status only, never on
 * timing.  test_cli_edges.c has the corner cases.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "lib/clirun.h"

/* ------------------------------------------------------------------ */
/* The command line                                                    */

static void test_usage(void **state)
{
	const struct expectation runs[] = {
		{ ARGS("--help"), 0, "Usage: shmbus", NULL },
		{ ARGS("--help"), 0, "consume TOPIC", NULL },
		{ ARGS("help"), 0, "Usage: shmbus", NULL },
		{ ARGS("--version"), 0, "shmbus 1.0.0", NULL },
		{ ARGS("consume", "--help"), 0, "Usage: shmbus consume", NULL },
		{ ARGS("produce", "t", "-h"), 0, "Usage: shmbus produce", NULL },
		{ ARGS("topic", "create", "--help"), 0, "--capacity SIZE", NULL },
		{ ARGS("group", "--help"), 0, "group offsets GROUP", NULL },
		{ ARGS("stats", "--help"), 0, "Usage: shmbus stats", NULL },
		{ ARGS("recover", "--help"), 0, "Usage: shmbus recover", NULL },
		{ ARGS("demo", "--help"), 0, "Usage: shmbus demo", NULL },
		{ ARGS("frobnicate"), 2, NULL, "unknown command \"frobnicate\"" },
		{ ARGS("--frob"), 2, NULL, "unknown option --frob" },
		{ ARGS("consume", "t", "--bogus"), 2, NULL, "unknown option --bogus" },
		{ ARGS("consume", "t", "--bogus"), 2, NULL, "Usage: shmbus consume" },
		{ ARGS("produce", "t", "-x"), 2, NULL, "unknown option -x" },
		{ ARGS("consume", "t", "-p"), 2, NULL, "option -p needs a value" },
		{ ARGS("consume"), 2, NULL, "from which topic" },
		{ ARGS("consume", "a", "b"), 2, NULL, "one topic at a time" },
		{ ARGS("consume", "t", "-o", "middle"), 2, NULL, "not \"middle\"" },
		{ ARGS("consume", "t", "-o", "-x"), 2, NULL, "-o -N wants a whole number" },
		{ ARGS("consume", "t", "-c", "0"), 2, NULL, "-c wants a whole number of at least 1" },
		{ ARGS("consume", "t", "-f", "%Q"), 2, NULL, "unknown token" },
		{ ARGS("consume", "t", "-f", "\\q"), 2, NULL, "unknown escape" },
		{ ARGS("produce", "t", "-H", "novalue"), 2, NULL, "NAME=VALUE" },
		{ ARGS("produce", "t", "-p", "-1"), 2, NULL, "-p wants a whole number" },
		{ ARGS("topic"), 2, NULL, "create, alter, list, describe or delete" },
		{ ARGS("topic", "rename", "t"), 2, NULL, "unknown subcommand \"rename\"" },
		{ ARGS("topic", "list", "extra"), 2, NULL, "takes no arguments" },
		{ ARGS("group", "offsets"), 2, NULL, "which group" },
		{ ARGS("stats", "a", "b"), 2, NULL, "one topic at a time" },
	};
	struct run r;

	expect_all(*state, runs, sizeof runs / sizeof runs[0]);
	run_in(&r, *state, NULL, NULL, 0, RUN_TIMEOUT_MS, ARGS("--root", *state));
	expect_status(&r, 2, "no command");
	expect_contains(r.err, "which command", "no command");
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* Topics                                                              */

static void test_topic_lifecycle(void **state)
{
	const char *root = *state;
	struct run r;

	CLI(&r, root, NULL, "topic", "list"); /* no bus yet */
	expect_ok(&r, "list on an empty root");
	assert_int_equal(r.out_len, 0);
	run_free(&r);

	make_topic(root, "orders", "3", "1M");
	CLI(&r, root, NULL, "topic", "create", "audit", "--policy", "backpressure", "--capacity",
	    "64K", "--numa", "0");
	if (r.status != 0 && strstr(r.err, "NUMA")) { /* no NUMA here: create without it */
		run_free(&r);
		CLI(&r, root, NULL, "topic", "create", "audit", "--policy", "backpressure",
		    "--capacity", "64K");
	}
	expect_ok(&r, "create backpressure topic");
	expect_contains(r.out, "created topic \"audit\"", "create prints what it made");
	run_free(&r);

	CLI(&r, root, NULL, "topic", "list");
	expect_ok(&r, "topic list");
	expect_contains(r.out, "orders", "topic list");
	expect_contains(r.out, "audit", "topic list");
	expect_contains(r.out, "backpressure", "topic list");
	run_free(&r);

	CLI(&r, root, NULL, "topic", "describe", "orders");
	expect_ok(&r, "describe");
	expect_contains(r.out, "partitions:      3", "describe");
	expect_contains(r.out, "1 MiB per partition (1048576 bytes", "describe");
	expect_contains(r.out, "index capacity:  16384", "describe");
	expect_contains(r.out, "policy:          overwrite", "describe");
	expect_contains(r.out, "numa node:       none", "describe");
	expect_contains(r.out, "retention:       the ring only", "describe");
	expect_contains(r.out, "created:         2", "describe");
	expect_contains(r.out, "PARTITION  LOW  HIGH", "describe");
	run_free(&r);

	CLI(&r, root, NULL, "topic", "describe", "audit");
	expect_ok(&r, "describe audit");
	expect_contains(r.out, "policy:          backpressure", "describe audit");
	expect_contains(r.out, "(65536 bytes", "describe audit");
	run_free(&r);

	CLI(&r, root, NULL, "topic", "delete", "orders");
	expect_ok(&r, "delete");
	run_free(&r);
	CLI(&r, root, NULL, "topic", "list");
	expect_ok(&r, "list after delete");
	assert_null(strstr(r.out, "orders"));
	expect_contains(r.out, "audit", "list after delete");
	run_free(&r);
	CLI(&r, root, NULL, "topic", "describe", "orders");
	expect_status(&r, 1, "describe a deleted topic");
	expect_contains(r.err, "\"orders\" does not exist", "describe a deleted topic");
	run_free(&r);
}

static void expect_create_fails(const char *root, int status, const char *needle,
				const char *const *args)
{
	struct run r;

	run_in(&r, root, NULL, NULL, 0, RUN_TIMEOUT_MS, args);
	expect_status(&r, status, needle);
	expect_contains(r.err, needle, "the message");
	assert_int_equal(r.out_len, 0);
	run_free(&r);
}

static void test_topic_errors(void **state)
{
	const char *root = *state;
	struct run r;

	CLI(&r, root, NULL, "topic", "describe", "ghost"); /* no bus yet */
	expect_status(&r, 1, "describe without a bus");
	expect_contains(r.err, "\"ghost\"", "describe without a bus");
	run_free(&r);

	make_topic(root, "orders", "2", "64K");
	expect_create_fails(root, 1, "\"orders\" already exists",
			    ARGS("topic", "create", "orders"));
	expect_create_fails(root, 1, "not a valid topic name",
			    ARGS("topic", "create", "bad/name"));
	expect_create_fails(root, 1, "not a valid topic name",
			    ARGS("topic", "create", "sp ace"));
	expect_create_fails(root, 2, "\"12X\" is not a size",
			    ARGS("topic", "create", "x", "--capacity", "12X"));
	expect_create_fails(root, 2, "\"M\" is not a size",
			    ARGS("topic", "create", "x", "--capacity", "M"));
	expect_create_fails(root, 2, "\"-4K\" is not a size",
			    ARGS("topic", "create", "x", "--capacity", "-4K"));
	expect_create_fails(root, 2, "too large",
			    ARGS("topic", "create", "x", "--capacity", "99999999999999G"));
	expect_create_fails(root, 1, "not a power of two",
			    ARGS("topic", "create", "x", "--capacity", "3M"));
	expect_create_fails(root, 1, "not a power of two",
			    ARGS("topic", "create", "x", "--capacity", "2K"));
	expect_create_fails(root, 2, "--partitions wants",
			    ARGS("topic", "create", "x", "--partitions", "many"));
	expect_create_fails(root, 2, "at least 1",
			    ARGS("topic", "create", "x", "--partitions", "0"));
	expect_create_fails(root, 2, "overwrite or backpressure",
			    ARGS("topic", "create", "x", "--policy", "fifo"));
	expect_create_fails(root, 2, "which topic", ARGS("topic", "create"));
	expect_create_fails(root, 1, "\"missing\" does not exist",
			    ARGS("topic", "describe", "missing"));
	expect_create_fails(root, 1, "\"missing\" does not exist",
			    ARGS("topic", "delete", "missing"));

	CLI(&r, root, NULL, "topic", "list");
	expect_ok(&r, "list");
	assert_null(strstr(r.out, "\nx "));
	run_free(&r);
}

static void test_sizes(void **state)
{
	static const struct { const char *arg, *bytes; } sizes[] = {
		{ "4K", "(4096 bytes" }, { "64k", "(65536 bytes" }, { "2M", "(2097152 bytes" },
		{ "8192", "(8192 bytes" }, { "1MiB", "(1048576 bytes" }, { "16KB", "(16384 bytes" },
	};
	const char *root = *state;

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char name[16];
		struct run r;

		snprintf(name, sizeof name, "t%zu", i);
		make_topic(root, name, "1", sizes[i].arg);
		CLI(&r, root, NULL, "topic", "describe", name);
		expect_ok(&r, "describe");
		expect_contains(r.out, sizes[i].bytes, sizes[i].arg);
		run_free(&r);
	}
}

static void test_env_root(void **state)
{
	const char *root = *state;
	struct run r;

	run_in(&r, NULL, root, NULL, 0, RUN_TIMEOUT_MS, ARGS("topic", "create", "viaenv"));
	expect_ok(&r, "create with SHMBUS_ROOT");
	run_free(&r);
	CLI(&r, root, NULL, "topic", "list");
	expect_ok(&r, "list with --root");
	expect_contains(r.out, "viaenv", "the topic is in $SHMBUS_ROOT");
	run_free(&r);
	/* --root wins over $SHMBUS_ROOT, and may follow the command */
	run_in(&r, NULL, "/dev/shm/shmbus-test-nonexistent-root", NULL, 0, RUN_TIMEOUT_MS,
	       ARGS("topic", "list", "--root", root));
	expect_ok(&r, "--root after the command");
	expect_contains(r.out, "viaenv", "--root after the command");
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* Produce and consume                                                 */

static void test_roundtrip(void **state)
{
	const char *root = *state;
	size_t long_len = 300000, cap;
	char *in, *want;
	struct run r;

	make_topic(root, "lines", "1", "1M");
	cap = long_len + 256;
	in = malloc(cap);
	want = malloc(cap);
	assert_non_null(in);
	assert_non_null(want);
	strcpy(in, "alpha\n\nbeta gamma\ttab\n");
	memset(in + strlen(in), 'x', long_len);
	strcpy(in + strlen("alpha\n\nbeta gamma\ttab\n") + long_len, "\nlast line, no newline");
	snprintf(want, cap, "%s\n", in);

	produce(root, "lines", in, NULL);
	CLI(&r, root, NULL, "consume", "lines", "-e");
	expect_ok(&r, "consume -e");
	expect_output(&r, want, "every byte back, in order");
	run_free(&r);

	CLI(&r, root, NULL, "topic", "describe", "lines");
	expect_ok(&r, "describe");
	expect_row(r.out, "\n0 0 5 5 ", "5 records in partition 0");
	run_free(&r);
	free(in);
	free(want);
}

/* Many short lines: batches cut anywhere in the read buffer. */
static void test_many_lines(void **state)
{
	const char *root = *state;
	size_t n = 50000, len = 0;
	char *in = malloc(n * 16);
	struct run r;

	assert_non_null(in);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(in + len, "line-%zu\n", i);
	make_topic(root, "many", "1", "4M");
	produce(root, "many", in, NULL);
	CLI(&r, root, NULL, "consume", "many", "-e");
	expect_ok(&r, "consume");
	expect_output(&r, in, "50000 lines back");
	run_free(&r);
	free(in);
}

static void test_partitions(void **state)
{
	const char *root = *state;
	struct run r;

	make_topic(root, "parts", "3", "64K");
	produce(root, "parts", "p0-a\np0-b\np0-c\n", "0");
	produce(root, "parts", "p2-a\n", "2");

	CLI(&r, root, NULL, "consume", "parts", "-p", "0", "-e");
	expect_ok(&r, "consume -p 0");
	expect_output(&r, "p0-a\np0-b\np0-c\n", "partition 0 in order");
	run_free(&r);
	CLI(&r, root, NULL, "consume", "parts", "-p", "1", "-e");
	expect_ok(&r, "consume -p 1");
	expect_output(&r, "", "partition 1 is empty");
	run_free(&r);
	CLI(&r, root, NULL, "consume", "parts", "-e", "-f", "%p:%o:%s\n");
	expect_ok(&r, "consume all");
	assert_int_equal(count_lines(r.out), 4);
	expect_contains(r.out, "0:0:p0-a\n0:1:p0-b\n0:2:p0-c\n", "partition 0, in order");
	expect_contains(r.out, "2:0:p2-a\n", "partition 2");
	run_free(&r);

	/* keyless records without -p go round-robin */
	produce(root, "parts", "r0\nr1\nr2\nr3\nr4\nr5\n", NULL);
	for (int p = 0; p < 3; p++) {
		char part[16];
		int got = 0;

		snprintf(part, sizeof part, "%d", p);
		CLI(&r, root, NULL, "consume", "parts", "-p", part, "-e", "-f", "%s\n");
		expect_ok(&r, "consume a partition");
		for (const char *line = r.out; *line; line = strchr(line, '\n') + 1)
			got += line[0] == 'r';
		assert_int_equal(got, 2);
		run_free(&r);
	}

	CLI(&r, root, "p9\n", "produce", "parts", "-p", "9");
	expect_status(&r, 1, "produce -p 9");
	expect_contains(r.err, "has 3 partitions (0..2), not 9", "produce -p 9");
	run_free(&r);
	CLI(&r, root, NULL, "consume", "parts", "-p", "3", "-e");
	expect_status(&r, 1, "consume -p 3");
	expect_contains(r.err, "has 3 partitions (0..2), not 3", "consume -p 3");
	run_free(&r);
}

static void test_keys(void **state)
{
	SHMBUS_OPTS(shmbus_producer_opts, po);
	const char *root = *state;
	shmbus_producer *prod = NULL;
	shmbus *bus;
	char line[128];
	struct run r;

	make_topic(root, "keyed", "4", "64K");
	CLI(&r, root, "alice:1\nnokey\n:empty key\nbob:v:2\nalice::3\n", "produce", "keyed", "-K",
	    ":");
	expect_ok(&r, "produce -K");
	run_free(&r);
	CLI(&r, root, NULL, "consume", "keyed", "-e", "-f", "%p|%k|%K|%s|%S\n");
	expect_ok(&r, "consume keys");
	assert_int_equal(count_lines(r.out), 5);

	bus = tu_open(root);
	assert_ok(shmbus_producer_new(bus, "keyed", &po, &prod));
	snprintf(line, sizeof line, "%d|alice|5|1|1\n", shmbus_producer_partition_for(prod, "alice", 5));
	expect_contains(r.out, line, "key alice, murmur2 partition");
	snprintf(line, sizeof line, "%d|alice|5|:3|2\n", shmbus_producer_partition_for(prod, "alice", 5));
	expect_contains(r.out, line, "split at the first delimiter");
	snprintf(line, sizeof line, "%d|bob|3|v:2|3\n", shmbus_producer_partition_for(prod, "bob", 3));
	expect_contains(r.out, line, "key bob");
	snprintf(line, sizeof line, "%d||0|empty key|9\n", shmbus_producer_partition_for(prod, "", 0));
	expect_contains(r.out, line, "an empty key is not a null key");
	expect_contains(r.out, "||-1|nokey|5\n", "no delimiter: null key, whole line");
	shmbus_producer_free(prod);
	shmbus_close(bus);
	run_free(&r);

	/* a delimiter of several bytes */
	make_topic(root, "multi", "1", "64K");
	CLI(&r, root, "k1::v1\nk2:v2\n", "produce", "multi", "-K", "::");
	expect_ok(&r, "produce -K ::");
	run_free(&r);
	CLI(&r, root, NULL, "consume", "multi", "-e", "-f", "[%k][%s]\n");
	expect_ok(&r, "consume multi");
	expect_output(&r, "[k1][v1]\n[][k2:v2]\n", "multi-byte delimiter");
	run_free(&r);
}

static void test_headers(void **state)
{
	const char *root = *state;
	struct run r;

	make_topic(root, "hdr", "1", "64K");
	CLI(&r, root, "one\ntwo\n", "produce", "hdr", "-H", "trace=abc", "-H", "empty=", "-H",
	    "eq=a=b");
	expect_ok(&r, "produce -H");
	run_free(&r);
	CLI(&r, root, NULL, "consume", "hdr", "-e", "-f", "%s %h\n");
	expect_ok(&r, "consume %h");
	expect_output(&r, "one trace=abc,empty=,eq=a=b\ntwo trace=abc,empty=,eq=a=b\n",
		      "headers, kcat style");
	run_free(&r);
	produce(root, "hdr", "bare\n", NULL);
	CLI(&r, root, NULL, "consume", "hdr", "-o", "2", "-e", "-f", "%s[%h]\n");
	expect_ok(&r, "no headers");
	expect_output(&r, "bare[]\n", "no headers print nothing");
	run_free(&r);
}

static void test_format_tokens(void **state)
{
	const char *root = *state;
	long long ts, before, after;
	char topic[32], key[8], value[16], hdrs[16], rest[16];
	int part, off, vsize, ksize, n;
	struct run r;

	make_topic(root, "fmt", "2", "64K");
	make_topic(root, "fmt2", "1", "64K");
	before = realtime_ms();
	CLI(&r, root, "key=hello world\n", "produce", "fmt", "-p", "1", "-K", "=", "-H", "h=v");
	expect_ok(&r, "produce");
	run_free(&r);
	after = realtime_ms();

	CLI(&r, root, NULL, "consume", "fmt", "-e", "-f",
	    "%t|%p|%o|%k|%s|%T|%h|%S|%K|%%|\\t|\\\\|\\n");
	expect_ok(&r, "consume every token");
	n = sscanf(r.out, "%31[^|]|%d|%d|%7[^|]|%15[^|]|%lld|%15[^|]|%d|%d|%15[^\n]", topic, &part,
		   &off, key, value, &ts, hdrs, &vsize, &ksize, rest);
	if (n != 10)
		fail_msg("cannot parse [%s] (%d fields)", r.out, n);
	assert_string_equal(topic, "fmt");
	assert_int_equal(part, 1);
	assert_int_equal(off, 0);
	assert_string_equal(key, "key");
	assert_string_equal(value, "hello world");
	assert_true(ts >= before && ts <= after);
	assert_string_equal(hdrs, "h=v");
	assert_int_equal(vsize, 11);
	assert_int_equal(ksize, 3);
	assert_string_equal(rest, "%|\t|\\|");
	assert_int_equal(r.out[r.out_len - 1], '\n');
	run_free(&r);

	/* a null key: %k prints nothing, %K -1; literal text around fields */
	produce(root, "fmt2", "v\n", NULL);
	CLI(&r, root, NULL, "consume", "fmt2", "-e", "-f", "k=<%k> K=%K S=%S\\r\\n");
	expect_ok(&r, "null key");
	expect_output(&r, "k=<> K=-1 S=1\r\n", "null key");
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* Where consumption starts, and when it stops                         */

static void test_offsets(void **state)
{
	const char *root = *state;
	char ts[32], future[32];
	struct run r;

	make_topic(root, "off", "1", "64K");
	produce(root, "off", "r0\nr1\nr2\nr3\nr4\n", NULL);
	sleep_ms(3);
	snprintf(ts, sizeof ts, "@%lld", (long long)realtime_ms());
	sleep_ms(3);
	produce(root, "off", "r5\nr6\nr7\nr8\nr9\n", NULL);
	snprintf(future, sizeof future, "@%lld", (long long)realtime_ms() + 3600000);

	expect_consume(root, "r0\nr1\nr2\nr3\nr4\nr5\nr6\nr7\nr8\nr9\n",
		       ARGS("consume", "off", "-e", "-o", "beginning"));
	expect_consume(root, "", ARGS("consume", "off", "-e", "-o", "end"));
	expect_consume(root, "r7\nr8\nr9\n", ARGS("consume", "off", "-e", "-o", "7"));
	expect_consume(root, "", ARGS("consume", "off", "-e", "-o", "10"));
	expect_consume(root, "r7\nr8\nr9\n", ARGS("consume", "off", "-e", "-o", "-3"));
	expect_consume(root, "r0\nr1\nr2\nr3\nr4\nr5\nr6\nr7\nr8\nr9\n",
		       ARGS("consume", "off", "-e", "-o", "-100"));
	expect_consume(root, "", ARGS("consume", "off", "-e", "-o", "-0"));
	expect_consume(root, "r5\nr6\nr7\nr8\nr9\n", ARGS("consume", "off", "-e", "-o", ts));
	expect_consume(root, "r0\nr1\nr2\nr3\nr4\nr5\nr6\nr7\nr8\nr9\n",
		       ARGS("consume", "off", "-e", "-o", "@0"));
	expect_consume(root, "", ARGS("consume", "off", "-e", "-o", future));
	expect_consume(root, "r0\nr1\nr2\nr3\nr4\nr5\nr6\nr7\nr8\nr9\n",
		       ARGS("consume", "off", "-e")); /* default without -g: beginning */

	CLI(&r, root, NULL, "consume", "off", "-e", "-o", "11");
	expect_status(&r, 1, "an offset past the end");
	expect_contains(r.err, "offset 11 of off/0 is not held", "an offset past the end");
	run_free(&r);
}

/* -o -N counts per partition. */
static void test_offsets_per_partition(void **state)
{
	const char *root = *state;

	make_topic(root, "pp", "2", "64K");
	produce(root, "pp", "a0\na1\na2\n", "0");
	produce(root, "pp", "b0\nb1\n", "1");
	expect_consume(root, "0 a2\n1 b1\n", ARGS("consume", "pp", "-e", "-o", "-1", "-f", "%p %s\n"));
	expect_consume(root, "0 a1\n0 a2\n1 b0\n1 b1\n",
		       ARGS("consume", "pp", "-e", "-o", "-2", "-f", "%p %s\n"));
	expect_consume(root, "0 a2\n", ARGS("consume", "pp", "-e", "-o", "2", "-p", "0", "-f",
					    "%p %s\n"));
}

static void test_count(void **state)
{
	const char *root = *state;

	make_topic(root, "cnt", "1", "64K");
	produce(root, "cnt", "c0\nc1\nc2\nc3\nc4\n", NULL);
	expect_consume(root, "c0\nc1\nc2\n", ARGS("consume", "cnt", "-c", "3"));
	expect_consume(root, "c3\nc4\n", ARGS("consume", "cnt", "-o", "3", "-c", "2"));
	expect_consume(root, "c4\n", ARGS("consume", "cnt", "-o", "4", "-c", "5", "-e"));
	expect_consume(root, "c0\n", ARGS("consume", "cnt", "-c", "1", "-e"));
}

/* -e on an empty topic ends by itself (the run's deadline would kill it). */
static void test_exit_at_end_empty(void **state)
{
	const char *root = *state;
	struct run r;

	make_topic(root, "empty", "4", "64K");
	run_in(&r, root, NULL, NULL, 0, 10000, ARGS("consume", "empty", "-e"));
	expect_ok(&r, "consume -e on an empty topic");
	assert_int_equal(r.out_len, 0);
	run_free(&r);
	run_in(&r, root, NULL, NULL, 0, 10000, ARGS("consume", "empty", "-e", "-g", "g"));
	expect_ok(&r, "consume -e -g on an empty topic");
	assert_int_equal(r.out_len, 0);
	run_free(&r);
}

/* A consumer without -e runs until stopped; records produced meanwhile arrive. */
static void test_follow(void **state)
{
	const char *root = *state;
	int64_t deadline = tu_ms() + RUN_TIMEOUT_MS;
	struct child c;
	struct run r = { 0 };

	make_topic(root, "live", "2", "64K");
	c = spawn(root, NULL, ARGS("consume", "live", "-o", "end", "-f", "%p %s\n"));
	/* the consumer starts at the end: produce until it has printed one */
	for (int i = 0; i < 200 && count_lines(r.out ? r.out : "") == 0; i++) {
		produce(root, "live", "tick\n", "1");
		pump(&c, &r, "", 0, tu_ms() + 50, 1);
	}
	assert_true(pump(&c, &r, "", 0, deadline, 1));
	expect_contains(r.out, "1 tick\n", "a record produced after the consumer started");
	kill(c.pid, SIGINT);
	pump(&c, &r, "", 0, deadline, 0);
	finish(&c, &r, deadline);
	expect_ok(&r, "consume stopped by SIGINT");
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* Consumer groups                                                     */

static void test_groups(void **state)
{
	const char *root = *state;
	char *first;
	struct run r;

	make_topic(root, "g", "2", "64K");
	produce(root, "g", "a0\na1\na2\na3\na4\n", "0");
	produce(root, "g", "b0\nb1\nb2\nb3\nb4\n", "1");

	CLI(&r, root, NULL, "consume", "g", "-g", "billing", "-c", "4");
	expect_ok(&r, "consume -g -c 4");
	assert_int_equal(count_lines(r.out), 4);
	first = strdup(r.out);
	run_free(&r);
	assert_int_equal(committed(root, "billing", "g", 0) + committed(root, "billing", "g", 1), 4);

	CLI(&r, root, NULL, "group", "offsets", "billing");
	expect_ok(&r, "group offsets");
	expect_row(r.out, "\nTOPIC PARTITION COMMITTED HIGH LAG COMMITTED AT\n", "group offsets");
	expect_row(r.out, "\ng 0 ", "group offsets, partition 0");
	expect_row(r.out, "\ng 1 ", "group offsets, partition 1");
	run_free(&r);

	/* the next run continues where the group stopped */
	CLI(&r, root, NULL, "consume", "g", "-g", "billing", "-e");
	expect_ok(&r, "consume -g again");
	assert_int_equal(count_lines(r.out), 6);
	for (int i = 0; i < 10; i++) { /* each record exactly once over the two runs */
		char line[16];
		bool in_first, in_second;

		snprintf(line, sizeof line, "%c%d\n", i < 5 ? 'a' : 'b', i % 5);
		in_first = strstr(first, line) != NULL;
		in_second = strstr(r.out, line) != NULL;
		if (in_first == in_second)
			fail_msg("%.2s read %s", line, in_first ? "twice" : "never");
	}
	run_free(&r);
	free(first);
	assert_int_equal(committed(root, "billing", "g", 0), 5);
	assert_int_equal(committed(root, "billing", "g", 1), 5);

	expect_consume(root, "", ARGS("consume", "g", "-g", "billing", "-e"));
	/* an explicit -o overrides the committed offset */
	expect_consume(root, "a4\n", ARGS("consume", "g", "-g", "billing", "-p", "0", "-o", "4",
					 "-e"));
}

static void test_group_admin(void **state)
{
	const char *root = *state;
	struct run r;

	make_topic(root, "g", "2", "64K");
	produce(root, "g", "a0\na1\na2\na3\na4\n", "0");
	expect_consume(root, "a0\na1\na2\na3\na4\n", ARGS("consume", "g", "-g", "billing", "-e"));
	produce(root, "g", "a5\na6\na7\n", "0");
	CLI(&r, root, NULL, "group", "offsets", "billing");
	expect_ok(&r, "group offsets with lag");
	expect_row(r.out, "\ng 0 5 8 3 ", "lag 3 on partition 0");
	run_free(&r);

	CLI(&r, root, NULL, "group", "list");
	expect_ok(&r, "group list");
	expect_output(&r, "billing\n", "group list");
	run_free(&r);
	CLI(&r, root, NULL, "group", "delete", "billing");
	expect_ok(&r, "group delete");
	run_free(&r);
	CLI(&r, root, NULL, "group", "list");
	expect_ok(&r, "group list after delete");
	expect_output(&r, "", "group list after delete");
	run_free(&r);
	CLI(&r, root, NULL, "group", "offsets", "billing");
	expect_status(&r, 1, "offsets of a deleted group");
	expect_contains(r.err, "\"billing\"", "offsets of a deleted group");
	run_free(&r);
	CLI(&r, root, NULL, "group", "delete", "billing");
	expect_status(&r, 1, "delete a deleted group");
	expect_contains(r.err, "\"billing\" does not exist", "delete a deleted group");
	run_free(&r);
}

/* SIGTERM stops a group consumer, which commits what it printed. */
static void test_group_commit_on_signal(void **state)
{
	const char *root = *state;
	int64_t deadline = tu_ms() + RUN_TIMEOUT_MS;
	struct run r = { 0 };
	struct child c;

	make_topic(root, "sig", "1", "64K");
	produce(root, "sig", "s0\ns1\ns2\ns3\ns4\ns5\ns6\n", NULL);
	c = spawn(root, NULL, ARGS("consume", "sig", "-g", "term"));
	assert_true(pump(&c, &r, "", 0, deadline, 7));
	kill(c.pid, SIGTERM);
	pump(&c, &r, "", 0, deadline, 0);
	finish(&c, &r, deadline);
	expect_ok(&r, "consume -g stopped by SIGTERM");
	expect_output(&r, "s0\ns1\ns2\ns3\ns4\ns5\ns6\n", "consume -g");
	run_free(&r);
	assert_int_equal(committed(root, "term", "sig", 0), 7);
}

/* ------------------------------------------------------------------ */
/* stats, recover, produce errors, demo                                */

static void test_stats(void **state)
{
	const char *root = *state;
	SHMBUS_OPTS(shmbus_partition_info, pi);
	char row[256];
	shmbus *bus;
	struct run r;

	CLI(&r, root, NULL, "stats"); /* no bus yet */
	expect_ok(&r, "stats on an empty root");
	expect_output(&r, "", "stats on an empty root");
	run_free(&r);

	make_topic(root, "st", "2", "64K");
	make_topic(root, "other", "1", "64K");
	produce(root, "st", "one\ntwo\nthree\n", "0");
	CLI(&r, root, NULL, "consume", "st", "-g", "readers", "-c", "1");
	expect_ok(&r, "consume -g");
	run_free(&r);

	bus = tu_open(root);
	assert_ok(shmbus_partition_info(bus, "st", 0, &pi));
	shmbus_close(bus);

	CLI(&r, root, NULL, "stats", "st");
	expect_ok(&r, "stats st");
	expect_contains(r.out, "topic \"st\": 2 partitions of 64 KiB, overwrite", "stats st");
	expect_row(r.out, "\nPARTITION LOW HIGH RECORDS BYTES HELD POLICY ABORTED LAPPED BP-BLOCKS "
		   "CONSUMERS\n", "stats header");
	snprintf(row, sizeof row, "\n0 0 3 3 %llu %llu overwrite 0 0 0 0\n",
		 (unsigned long long)pi.tail, (unsigned long long)pi.tail);
	expect_row(r.out, row, "partition 0");
	expect_row(r.out, "\n1 0 0 0 0 0 overwrite 0 0 0 0\n", "partition 1");
	expect_row(r.out, "\nGROUP PARTITION COMMITTED HIGH LAG\n", "lag header");
	expect_row(r.out, "\nreaders 0 1 3 2\n", "group lag on partition 0");
	expect_row(r.out, "\nreaders 1 0 0 0\n", "group lag on partition 1");
	assert_null(strstr(r.out, "other"));
	run_free(&r);

	CLI(&r, root, NULL, "stats");
	expect_ok(&r, "stats");
	expect_contains(r.out, "topic \"st\"", "stats of all topics");
	expect_contains(r.out, "topic \"other\"", "stats of all topics");
	run_free(&r);

	CLI(&r, root, NULL, "stats", "nosuch");
	expect_status(&r, 1, "stats of a missing topic");
	expect_contains(r.err, "\"nosuch\" does not exist", "stats of a missing topic");
	run_free(&r);
}

static void test_recover(void **state)
{
	const char *root = *state;
	struct run r;

	make_topic(root, "rec", "2", "64K");
	produce(root, "rec", "a\nb\nc\nd\n", "1");
	CLI(&r, root, NULL, "recover", "rec", "-p", "1");
	expect_ok(&r, "recover -p 1");
	expect_contains(r.out, "rec/1:\n", "recover");
	expect_contains(r.out, "offsets:        0..4", "recover");
	expect_contains(r.out, "frames checked: 4\n", "recover");
	expect_contains(r.out, "aborted:        0", "recover");
	expect_contains(r.out, "cut:            0 offsets, 0 bytes", "recover");
	expect_contains(r.out, "rebuilt:        no", "recover");
	expect_contains(r.out, "reason:         -", "recover");
	assert_null(strstr(r.out, "rec/0"));
	run_free(&r);

	CLI(&r, root, NULL, "recover", "rec");
	expect_ok(&r, "recover every partition");
	expect_contains(r.out, "rec/0:\n", "recover every partition");
	expect_contains(r.out, "rec/1:\n", "recover every partition");
	run_free(&r);

	/* the records are all still there */
	expect_consume(root, "a\nb\nc\nd\n", ARGS("consume", "rec", "-e"));

	CLI(&r, root, NULL, "recover", "rec", "-p", "2");
	expect_status(&r, 1, "recover -p 2");
	expect_contains(r.err, "has 2 partitions", "recover -p 2");
	run_free(&r);
	CLI(&r, root, NULL, "recover", "nosuch");
	expect_status(&r, 1, "recover a missing topic");
	expect_contains(r.err, "\"nosuch\"", "recover a missing topic");
	run_free(&r);
}

static void test_produce_errors(void **state)
{
	const char *root = *state;
	char *line;
	struct run r;

	CLI(&r, root, "x\n", "produce", "nosuch");
	expect_status(&r, 1, "produce without a bus");
	expect_contains(r.err, "\"nosuch\"", "produce without a bus");
	run_free(&r);

	make_topic(root, "small", "1", "4K");
	CLI(&r, root, "x\n", "produce", "nosuch");
	expect_status(&r, 1, "produce to a missing topic");
	expect_contains(r.err, "topic \"nosuch\" does not exist", "produce to a missing topic");
	run_free(&r);

	/* longer than half the ring: refused, with the fix */
	line = malloc(4000);
	assert_non_null(line);
	memset(line, 'y', 3000);
	strcpy(line + 3000, "\n");
	CLI(&r, root, line, "produce", "small");
	expect_status(&r, 1, "a line larger than a record can be");
	expect_contains(r.err, "--capacity", "a line larger than a record can be");
	run_free(&r);
	/* just under half the ring, too big once framed */
	line[2040] = '\0';
	CLI(&r, root, line, "produce", "small");
	expect_status(&r, 1, "a record larger than the largest frame");
	expect_contains(r.err, "line 1 ", "which line failed");
	expect_contains(r.err, "--capacity", "the fix");
	run_free(&r);
	free(line);
	/* a record that fits, after the failures */
	expect_consume(root, "", ARGS("consume", "small", "-e"));
	produce(root, "small", "fits\n", NULL);
	expect_consume(root, "fits\n", ARGS("consume", "small", "-e"));
}

static void test_deleted_while_consumed(void **state)
{
	const char *root = *state;
	int64_t deadline = tu_ms() + RUN_TIMEOUT_MS;
	struct run r = { 0 }, d;
	struct child c;

	make_topic(root, "doomed", "1", "64K");
	produce(root, "doomed", "first\n", NULL);
	c = spawn(root, NULL, ARGS("consume", "doomed"));
	assert_true(pump(&c, &r, "", 0, deadline, 1));
	CLI(&d, root, NULL, "topic", "delete", "doomed");
	expect_ok(&d, "delete");
	run_free(&d);
	pump(&c, &r, "", 0, deadline, 0);
	finish(&c, &r, deadline);
	expect_status(&r, 1, "consuming a deleted topic");
	expect_contains(r.err, "\"doomed\" was deleted", "consuming a deleted topic");
	run_free(&r);
}

static void test_demo(void **state)
{
	const char *root = *state;
	struct run r;

	run_in(&r, root, NULL, NULL, 0, 120000, ARGS("demo"));
	expect_ok(&r, "demo");
	expect_contains(r.out, root, "demo names the root");
	expect_contains(r.out, "produced:  2000000 records of 64 bytes", "demo");
	expect_contains(r.out, "consumed:  2000000 records", "demo");
	expect_contains(r.out, "0 lost", "demo");
	expect_contains(r.out, "records/s", "demo");
	expect_contains(r.out, "MB/s", "demo");
	expect_contains(r.out, "consume demo", "demo shows how to consume");
	expect_contains(r.out, "produce demo", "demo shows how to produce");
	run_free(&r);

	/* the topic stays, with every record */
	CLI(&r, root, NULL, "consume", "demo", "-o", "-1", "-e", "-f", "%p %o\n");
	expect_ok(&r, "consume demo");
	expect_output(&r, "0 499999\n1 499999\n2 499999\n3 499999\n", "the last of each partition");
	run_free(&r);

	/* a second run uses the topic as it is */
	run_in(&r, root, NULL, NULL, 0, 120000, ARGS("demo", "-n", "1000"));
	expect_ok(&r, "demo again");
	expect_contains(r.out, "consumed:  1000 records", "demo again");
	run_free(&r);
}

/* Each test gets its own bus root; whatever happens, the root and any
 * command still running are removed afterwards. */
static int make_root(void **state)
{
	*state = tu_tmpdir("cli");
	return 0;
}

static int remove_root(void **state)
{
	reap_children();
	tu_rmrf(*state);
	free(*state);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_usage, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_topic_lifecycle, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_topic_errors, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_sizes, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_env_root, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_roundtrip, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_many_lines, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_partitions, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_keys, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_headers, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_format_tokens, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_offsets, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_offsets_per_partition, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_count, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_exit_at_end_empty, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_follow, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_groups, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_group_admin, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_group_commit_on_signal, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_stats, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_recover, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_produce_errors, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_deleted_while_consumed, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_demo, make_root, remove_root),
	};
	struct stat st;

	signal(SIGPIPE, SIG_IGN);
	if (stat(cli_path(), &st) < 0) { /* `make test` builds it first: a real failure */
		printf("not ok 1 - the shmbus command is not at %s: build it, or set SHMBUS_CLI\n",
		       cli_path());
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
