/*
 * test_trace.c - `shmbus trace` (build/shmbus-trace) on real workloads:
 * exact counts per partition and a latency histogram that counts every
 * delivery, a producer killed mid-claim named by its pid, and bad input
 * (a pid that does not use libshmbus, one that exits mid-trace, no
 * privilege).
 *
 * Needs root (BPF programs) and the tracer, which is built only where
 * clang, bpftool, libbpf and the kernel's BTF are present: the tests skip
 * with the reason otherwise, and when the tracer itself says this machine
 * cannot trace (exit status 3).  The tracer attaches to this test binary,
 * which links libshmbus (with its probes) statically.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/testutil.h"

struct tracer {
	pid_t pid;
	char out[256];   /* its stdout, a file */
	char errpath[256]; /* its stderr, a file */
	char err[4096];  /* its stderr up to the ready line (or all, if it exited) */
	int status;      /* exit status if it exited before ready, else -1 */
};

static const char *tracer_bin(void)
{
	static char path[512];
	const char *b = getenv("BUILD");

	snprintf(path, sizeof path, "%s/shmbus-trace", b && *b ? b : "build");
	return path;
}

/* Skip unless the tracer exists and this process is root */
static void need_tracer(void)
{
	if (access(tracer_bin(), X_OK) != 0)
		tu_skip("%s was not built here (make says what it lacks: clang, bpftool, "
			"libbpf-dev or the kernel's BTF)", tracer_bin());
	if (geteuid() != 0)
		tu_skip("loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)");
}

static void read_err(struct tracer *t)
{
	FILE *f = fopen(t->errpath, "r");
	size_t n = 0;

	if (f) {
		n = fread(t->err, 1, sizeof t->err - 1, f);
		fclose(f);
	}
	t->err[n] = '\0';
}

/* Read its stderr (a file: the tracer writes to it after we stop
 * reading) until the ready line, its exit, or 20 s */
static void wait_ready(struct tracer *t)
{
	int64_t end = tu_ms() + 20000;

	t->status = -1;
	for (;;) {
		int st;
		pid_t w = waitpid(t->pid, &st, WNOHANG);

		read_err(t);
		if (w == t->pid) {
			t->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			return;
		}
		if (strstr(t->err, "shmbus trace: tracing") || tu_ms() >= end)
			return;
		usleep(20000);
	}
}

/* Fork the tracer (as nobody if drop), stdout and stderr to files */
static void spawn(struct tracer *t, const char *const *argv, const struct passwd *drop)
{
	snprintf(t->out, sizeof t->out, "/tmp/test_trace.%d.out", (int)getpid());
	snprintf(t->errpath, sizeof t->errpath, "/tmp/test_trace.%d.err", (int)getpid());
	t->err[0] = '\0';
	fflush(NULL);
	t->pid = fork();
	assert_true(t->pid >= 0);
	if (t->pid == 0) {
		int out = open(t->out, O_WRONLY | O_CREAT | O_TRUNC, 0666);
		int err = open(t->errpath, O_WRONLY | O_CREAT | O_TRUNC, 0666);

		dup2(out, 1);
		dup2(err, 2);
		if (drop && (setgid(drop->pw_gid) != 0 || setuid(drop->pw_uid) != 0))
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(errno == EACCES ? 125 : 127);
	}
	wait_ready(t);
	unlink(t->errpath);
}

/* Start the tracer with args (NULL-terminated); skip if it says this
 * machine cannot trace */
static void start_tracer(struct tracer *t, const char *const *args)
{
	const char *argv[24] = { tracer_bin() };
	size_t n = 1;

	for (; args[n - 1] && n < 23; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	spawn(t, argv, NULL);
	if (t->status == 3)
		tu_skip("the tracer cannot trace here: %s", t->err);
	if (t->status >= 0)
		fail_msg("the tracer exited with %d before it was ready: %s", t->status, t->err);
}

/* Wait for the tracer's end; its stdout, malloc'd */
static char *finish_tracer(struct tracer *t, int timeout_ms)
{
	int st = tu_wait(t->pid, timeout_ms);
	FILE *f = fopen(t->out, "r");
	char *text = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	assert_non_null(text);
	n = fread(text, 1, (1 << 20) - 1, f);
	text[n] = '\0';
	fclose(f);
	unlink(t->out);
	if (st != 0)
		fail_msg("the tracer exited with %d; it printed:\n%s", st, text);
	return text;
}

struct counts {
	unsigned long long appends, commits, deliveries, latency;
};

/* The counts of topic/partition summed over every interval's JSON line */
static struct counts json_counts(const char *text, const char *topic, int partition)
{
	struct counts c = { 0 };
	char pat[300];
	const char *at = text;

	snprintf(pat, sizeof pat, "{\"topic\":\"%s\",\"partition\":%d,", topic, partition);
	while ((at = strstr(at, pat))) {
		unsigned long long a, cm, d, l;
		const char *lat;

		at += strlen(pat);
		assert_int_equal(sscanf(at, "\"appends\":%llu,\"commits\":%llu,\"deliveries\":%llu",
					&a, &cm, &d), 3);
		lat = strstr(at, "\"latency\":{\"count\":");
		assert_non_null(lat);
		assert_int_equal(sscanf(lat, "\"latency\":{\"count\":%llu", &l), 1);
		c.appends += a;
		c.commits += cm;
		c.deliveries += d;
		c.latency += l;
	}
	return c;
}

struct workload {
	const char *root, *topic;
	int go;   /* read end: the parent says go */
};

static void produce_n(shmbus *bus, const char *topic, int partition, int n)
{
	shmbus_producer *p = NULL;
	char v[32];

	CHILD_CHECK(shmbus_producer_new(bus, topic, NULL, &p) == 0, "producer");
	for (int i = 0; i < n; i++) {
		struct shmbus_record r = { .value = v, .value_len = (size_t)snprintf(v, sizeof v,
										      "r%d", i) };

		CHILD_CHECK(shmbus_producer_send(p, partition, &r, NULL) >= 0, "send %d", i);
	}
	shmbus_producer_free(p);
}

/* 1000 records to partition 0, 500 to 1, then all 1500 consumed */
static int known_workload(void *arg)
{
	struct workload *w = arg;
	struct shmbus_message m[64];
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = w->root);
	shmbus *bus = NULL;
	shmbus_consumer *c = NULL;
	char go;
	int got = 0;
	int64_t end;

	CHILD_CHECK(read(w->go, &go, 1) == 1, "go");
	CHILD_CHECK(shmbus_open(&oo, &bus) == 0, "open");
	produce_n(bus, w->topic, 0, 1000);
	produce_n(bus, w->topic, 1, 500);
	CHILD_CHECK(shmbus_consumer_new(bus, NULL, &c) == 0, "consumer");
	CHILD_CHECK(shmbus_consumer_assign(c, w->topic, 0, SHMBUS_OFFSET_BEGINNING) == 0, "p0");
	CHILD_CHECK(shmbus_consumer_assign(c, w->topic, 1, SHMBUS_OFFSET_BEGINNING) == 0, "p1");
	for (end = tu_ms() + 10000; got < 1500 && tu_ms() < end;) {
		int n = shmbus_consumer_poll(c, m, 64, 100);

		CHILD_CHECK(n >= 0, "poll");
		got += n;
	}
	CHILD_CHECK(got == 1500, "consumed %d of 1500", got);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

static void make_topic(const char *root, const char *topic, uint32_t partitions)
{
	shmbus *bus = tu_open(root);
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = partitions, .capacity = 1 << 20);

	assert_ok(shmbus_topic_create(bus, topic, &o));
	shmbus_close(bus);
}

static void test_trace_counts_a_known_workload(void **state)
{
	char *root, topic[64], pidarg[16], *out;
	struct workload w;
	struct tracer t;
	struct counts c0, c1;
	int go[2];
	pid_t child;

	(void)state;
	need_tracer();
	root = tu_tmpdir("trace");
	snprintf(topic, sizeof topic, "trace_counts_%d", (int)getpid());
	make_topic(root, topic, 2);
	assert_int_equal(pipe(go), 0);
	w = (struct workload){ .root = root, .topic = topic, .go = go[0] };
	child = tu_fork(known_workload, &w);
	snprintf(pidarg, sizeof pidarg, "%d", (int)child);
	start_tracer(&t, (const char *[]){ "-p", pidarg, "--json", "--duration", "3",
					   "--interval", "10", NULL });
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(tu_wait(child, 20000), 0);
	out = finish_tracer(&t, 20000);
	c0 = json_counts(out, topic, 0);
	c1 = json_counts(out, topic, 1);
	if (c0.appends != 1000 || c0.deliveries != 1000 || c0.latency != 1000 ||
	    c1.appends != 500 || c1.deliveries != 500 || c1.latency != 500 ||
	    c0.commits != 1000 || c1.commits != 500)
		fail_msg("partition 0: %llu appends, %llu commits, %llu deliveries, %llu latencies "
			 "(want 1000 each); partition 1: %llu, %llu, %llu, %llu (want 500); "
			 "the tracer printed:\n%s", c0.appends, c0.commits, c0.deliveries, c0.latency,
			 c1.appends, c1.commits, c1.deliveries, c1.latency, out);
	free(out);
	close(go[0]);
	close(go[1]);
	tu_rmrf(root);
	free(root);
}

/* Claims one record of partition 0 and stops there, holding it */
static int claim_and_hold(void *arg)
{
	struct workload *w = arg;
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = w->root);
	struct shmbus_record meta = { 0 };
	struct shmbus_claim cl;
	shmbus *bus = NULL;
	shmbus_producer *p = NULL;

	CHILD_CHECK(shmbus_open(&oo, &bus) == 0, "open");
	CHILD_CHECK(shmbus_producer_new(bus, w->topic, NULL, &p) == 0, "producer");
	CHILD_CHECK(shmbus_producer_claim(p, 0, &meta, 16, &cl) == 0, "claim");
	CHILD_CHECK(write(w->go, "c", 1) == 1, "say claimed");
	for (;;)
		pause();
}

static void test_trace_names_a_producer_killed_mid_claim(void **state)
{
	char *root, topic[64], want[64], *out, ch;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .unblock_timeout_ms = 50);
	struct shmbus_message m[4];
	struct workload w;
	struct tracer t;
	shmbus_consumer *c = NULL;
	shmbus *bus;
	int claimed[2];
	pid_t child;

	(void)state;
	need_tracer();
	root = tu_tmpdir("trace");
	snprintf(topic, sizeof topic, "trace_kill_%d", (int)getpid());
	make_topic(root, topic, 1);
	start_tracer(&t, (const char *[]){ "--json", "--topic", topic, "--duration", "3",
					   "--interval", "10", NULL });
	assert_int_equal(pipe(claimed), 0);
	w = (struct workload){ .root = root, .topic = topic, .go = claimed[1] };
	child = tu_fork(claim_and_hold, &w);
	assert_int_equal(read(claimed[0], &ch, 1), 1);
	kill(child, SIGKILL);
	assert_int_equal(tu_wait(child, 10000), 128 + SIGKILL);
	bus = tu_open(root);
	assert_ok(shmbus_consumer_new(bus, &co, &c));
	assert_ok(shmbus_consumer_assign(c, topic, 0, SHMBUS_OFFSET_BEGINNING));
	for (int64_t end = tu_ms() + 1000; tu_ms() < end;)
		assert_true(shmbus_consumer_poll(c, m, 4, 100) >= 0);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	out = finish_tracer(&t, 20000);
	snprintf(want, sizeof want, "\"other_pid\":%d,", (int)child);
	if (!strstr(out, "\"kind\":\"unblock\"") || !strstr(out, want))
		fail_msg("no unblock event naming pid %d; the tracer printed:\n%s", (int)child, out);
	free(out);
	close(claimed[0]);
	close(claimed[1]);
	tu_rmrf(root);
	free(root);
}

static void test_trace_refuses_a_pid_without_libshmbus(void **state)
{
	char pidarg[16];
	struct tracer t;
	pid_t sleeper;

	(void)state;
	need_tracer();
	fflush(NULL);
	sleeper = fork();
	assert_true(sleeper >= 0);
	if (sleeper == 0) {
		execl("/bin/sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	usleep(100000); /* exec'd */
	snprintf(pidarg, sizeof pidarg, "%d", (int)sleeper);
	spawn(&t, (const char *[]){ tracer_bin(), "-p", pidarg, "--duration", "2", NULL }, NULL);
	unlink(t.out);
	kill(sleeper, SIGKILL);
	tu_wait(sleeper, 5000);
	if (t.status == 3)
		tu_skip("the tracer cannot trace here: %s", t.err);
	if (t.status != 1 || !strstr(t.err, "does not use libshmbus"))
		fail_msg("want exit 1 and \"does not use libshmbus\"; got %d: %s", t.status, t.err);
}

static int live_briefly(void *arg)
{
	(void)arg;
	usleep(800000);
	return 0;
}

static void test_trace_stops_when_its_pid_exits(void **state)
{
	char pidarg[16], *out;
	struct tracer t;
	pid_t child;
	int64_t start;

	(void)state;
	need_tracer();
	child = tu_fork(live_briefly, NULL);
	snprintf(pidarg, sizeof pidarg, "%d", (int)child);
	start = tu_ms();
	start_tracer(&t, (const char *[]){ "-p", pidarg, "--interval", "0.2", "--plain", NULL });
	assert_int_equal(tu_wait(child, 10000), 0);
	out = finish_tracer(&t, 10000); /* it ends by itself, no --duration */
	assert_true(tu_ms() - start < 10000);
	assert_non_null(strstr(out, "TOPIC/PARTITION"));
	free(out);
}

static void test_trace_without_privilege(void **state)
{
	struct passwd *nobody = getpwnam("nobody");
	struct tracer t = { 0 };

	(void)state;
	need_tracer();
	if (!nobody)
		tu_skip("no user nobody to run the tracer as");
	spawn(&t, (const char *[]){ tracer_bin(), "--duration", "1", NULL }, nobody);
	unlink(t.out);
	if (t.status == 125)
		tu_skip("user nobody cannot run %s (its directories' modes)", tracer_bin());
	if (t.status != 3 || !strstr(t.err, "CAP_BPF"))
		fail_msg("want exit 3 and a message naming CAP_BPF; got %d: %s", t.status, t.err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_counts_a_known_workload),
		cmocka_unit_test(test_trace_names_a_producer_killed_mid_claim),
		cmocka_unit_test(test_trace_refuses_a_pid_without_libshmbus),
		cmocka_unit_test(test_trace_stops_when_its_pid_exits),
		cmocka_unit_test(test_trace_without_privilege),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
