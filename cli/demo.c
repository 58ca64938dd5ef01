/*
 * demo.c - `shmbus demo` (one of the commands `make run` suggests): two
 * processes, one bus.
 *
 * The parent makes sure topic "demo" exists (4 partitions of 16 MiB,
 * backpressure, so that the count is exact), forks a consumer, waits
 * until it has registered at the end of every partition, then produces
 * 2,000,000 records of 64 bytes with send_batch, partition by partition
 * in batches.  Each value names the run, its partition and a sequence
 * number; the consumer checks that every partition's numbers arrive in
 * order with none missing, ignores records of other producers, and
 * reports back through a pipe.  The parent prints the wall-clock rate and
 * the commands to try from another terminal.  The two are pinned to
 * different CPUs when there are two.
 */
#include "cli.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"Usage: shmbus demo [-n RECORDS]\n"
	"\n"
	"Create topic \"demo\" if missing (4 partitions of 16 MiB, backpressure), then\n"
	"produce RECORDS records of 64 bytes (default 2000000) from this process while\n"
	"a child process consumes them and checks their order; print the rate.\n";

#define DEMO_TOPIC    "demo"
#define DEMO_VALUE    64
#define DEMO_BATCH    256
#define DEMO_MAX_PARTS 1024
#define DEMO_STALL_MS 30000

struct demo {
	const char *root;
	uint32_t parts;
	uint64_t records;
	uint64_t quota[DEMO_MAX_PARTS];       /* records per partition */
	char tmpl[DEMO_MAX_PARTS][DEMO_VALUE]; /* a value with sequence number 0 */
	size_t seq_at;                         /* where the 12 digits start */
	int cpu[2];                            /* parent, child; -1: not pinned */
};

/* What the consumer reports to the parent. */
struct demo_result {
	uint64_t received, foreign, lost, out_of_order;
	int64_t done_ns;                       /* CLOCK_MONOTONIC of the last record */
	int failed;                            /* 1: see the child's stderr */
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "demo <run> p<partition> seq <12 digits> ....": readable when consumed. */
static void make_templates(struct demo *d)
{
	for (uint32_t p = 0; p < d->parts; p++) {
		int n = snprintf(d->tmpl[p], DEMO_VALUE, "demo %08x p%u seq ", (unsigned)getpid(), p);

		d->seq_at = (size_t)n;
		memset(d->tmpl[p] + n, '.', DEMO_VALUE - (size_t)n);
		memset(d->tmpl[p] + n, '0', 12);
		d->quota[p] = d->records / d->parts + (p < d->records % d->parts ? 1 : 0);
	}
}

static void put_seq(char *at, uint64_t seq)
{
	for (int i = 11; i >= 0; i--) {
		at[i] = (char)('0' + seq % 10);
		seq /= 10;
	}
}

static uint64_t get_seq(const char *at)
{
	uint64_t seq = 0;

	for (int i = 0; i < 12; i++)
		seq = seq * 10 + (uint64_t)(at[i] - '0');
	return seq;
}

/* Two CPUs this process may run on, if it has two. */
static void pick_cpus(int cpu[2])
{
	cpu_set_t set;
	int found = 0;

	cpu[0] = cpu[1] = -1;
	if (sched_getaffinity(0, sizeof set, &set) < 0)
		return;
	for (int i = 0; i < CPU_SETSIZE && found < 2; i++)
		if (CPU_ISSET(i, &set))
			cpu[found++] = i;
	if (found < 2)
		cpu[0] = cpu[1] = -1;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

/* ------------------------------------------------------------------ */
/* The consumer (child process)                                        */

struct demo_reader {
	uint64_t next[DEMO_MAX_PARTS];     /* next sequence number expected */
	uint64_t last_off[DEMO_MAX_PARTS]; /* last offset + 1 */
	uint32_t done;                     /* partitions that got their quota */
	struct demo_result res;
};

static void check_one(const struct demo *d, struct demo_reader *rd, const struct shmbus_message *m)
{
	uint32_t p = (uint32_t)m->partition;
	uint64_t seq;

	if (p >= d->parts || !m->value || m->value_len != DEMO_VALUE ||
	    memcmp(m->value, d->tmpl[p], d->seq_at)) {
		rd->res.foreign++; /* someone else's record */
		return;
	}
	seq = get_seq((const char *)m->value + d->seq_at);
	if (shmbus_message_valid(m) < 0)
		return; /* overwritten while read (an overwrite topic): counted as lost */
	if (m->offset < rd->last_off[p])
		rd->res.out_of_order++;
	rd->last_off[p] = m->offset + 1;
	if (seq < rd->next[p]) {
		rd->res.out_of_order++;
		return;
	}
	rd->res.lost += seq - rd->next[p];
	rd->res.received++;
	rd->next[p] = seq + 1;
	if (rd->next[p] == d->quota[p])
		rd->done++;
}

static int read_all(const struct demo *d, shmbus_consumer *c, struct demo_reader *rd)
{
	struct shmbus_message msgs[DEMO_BATCH];
	int64_t progress = mono_ns();

	for (uint32_t p = 0; p < d->parts; p++)
		if (d->quota[p] == 0)
			rd->done++;
	while (rd->done < d->parts) {
		int n = shmbus_consumer_poll(c, msgs, DEMO_BATCH, 100);

		if (n < 0)
			return cli_fail(n, "demo consumer");
		for (int i = 0; i < n; i++)
			check_one(d, rd, &msgs[i]);
		if (n > 0)
			progress = mono_ns();
		else if (mono_ns() - progress > (int64_t)DEMO_STALL_MS * 1000000) {
			cli_err("demo consumer: no record for %d s; giving up", DEMO_STALL_MS / 1000);
			return CLI_EXIT_FAIL;
		}
	}
	rd->res.done_ns = mono_ns();
	return 0;
}

/* The child: register at the end of every partition, say so, read. */
static int consumer_main(const struct demo *d, int ready_fd, int result_fd)
{
	SHMBUS_OPTS(shmbus_consumer_opts, o, .name = "shmbus demo", .reset = SHMBUS_RESET_EARLIEST);
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = d->root);
	_cleanup_(bus_closep) shmbus *bus = NULL;
	_cleanup_(consumer_freep) shmbus_consumer *c = NULL;
	_cleanup_(freep) struct demo_reader *rd = calloc(1, sizeof *rd);
	int rc;

	pin(d->cpu[1]);
	if (!rd)
		return CLI_EXIT_FAIL;
	rc = shmbus_open(&oo, &bus);
	if (rc == 0)
		rc = shmbus_consumer_new(bus, &o, &c);
	if (rc == 0)
		rc = shmbus_consumer_assign(c, DEMO_TOPIC, SHMBUS_PARTITION_ANY, SHMBUS_OFFSET_END);
	if (rc < 0)
		return cli_fail(rc, "demo consumer");
	if (write(ready_fd, "r", 1) != 1)
		return CLI_EXIT_FAIL;
	close(ready_fd);
	rd->res.failed = read_all(d, c, rd) != 0;
	if (write(result_fd, &rd->res, sizeof rd->res) != (ssize_t)sizeof rd->res)
		return CLI_EXIT_FAIL;
	return rd->res.failed;
}

/* ------------------------------------------------------------------ */
/* The producer (parent process)                                       */

static int send_all(shmbus_producer *prod, int32_t p, struct shmbus_record *recs, size_t n)
{
	size_t done = 0;

	while (done < n) {
		int rc = shmbus_producer_send_batch(prod, p, recs + done, n - done);

		if (rc <= 0)
			return cli_fail(rc ? rc : -EIO, "demo producer");
		done += (size_t)rc;
	}
	return 0;
}

/* Round-robin over the partitions, a batch of DEMO_BATCH records each. */
static int produce_all(const struct demo *d, shmbus_producer *prod)
{
	static char values[DEMO_BATCH][DEMO_VALUE];
	struct shmbus_record recs[DEMO_BATCH];
	uint64_t sent[DEMO_MAX_PARTS] = { 0 }, total = 0;

	for (size_t i = 0; i < DEMO_BATCH; i++)
		recs[i] = (struct shmbus_record){ .value = values[i], .value_len = DEMO_VALUE };
	while (total < d->records) {
		for (uint32_t p = 0; p < d->parts; p++) {
			uint64_t n = d->quota[p] - sent[p];

			n = n < DEMO_BATCH ? n : DEMO_BATCH;
			for (uint64_t i = 0; i < n; i++) {
				memcpy(values[i], d->tmpl[p], DEMO_VALUE);
				put_seq(values[i] + d->seq_at, sent[p] + i);
			}
			if (n && send_all(prod, (int32_t)p, recs, (size_t)n))
				return CLI_EXIT_FAIL;
			sent[p] += n;
			total += n;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The run                                                             */

/* Create topic "demo" if missing; note its partitions and the root. */
static int ensure_topic(struct cli *cli, struct demo *d, char *root, size_t rootlen)
{
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = 4, .capacity = 16ULL << 20,
		    .policy = SHMBUS_POLICY_BACKPRESSURE);
	_cleanup_(bus_closep) shmbus *bus = NULL;
	SHMBUS_OPTS(shmbus_topic_info, ti);
	char cap[32];
	int rc;

	if (cli_open(cli, true, &bus) < 0)
		return CLI_EXIT_FAIL;
	snprintf(root, rootlen, "%s", shmbus_root(bus));
	rc = shmbus_topic_describe(bus, DEMO_TOPIC, &ti);
	if (rc == -ENOENT) {
		cli_err_forget();
		rc = shmbus_topic_create(bus, DEMO_TOPIC, &to);
		if (rc == 0 || rc == -EEXIST) /* another demo may have won the race */
			rc = shmbus_topic_describe(bus, DEMO_TOPIC, &ti);
	}
	if (rc < 0)
		return cli_fail(rc, "cannot set up topic \"" DEMO_TOPIC "\"");
	if (ti.partitions > DEMO_MAX_PARTS) {
		cli_err("topic \"%s\" has %u partitions; the demo handles %d at most: delete it "
			"with `shmbus topic delete %s`", DEMO_TOPIC, ti.partitions, DEMO_MAX_PARTS,
			DEMO_TOPIC);
		return CLI_EXIT_FAIL;
	}
	d->parts = ti.partitions;
	printf("bus root:  %s\n", root);
	printf("topic:     %s (%u partition%s of %s, %s)\n", DEMO_TOPIC, ti.partitions,
	       ti.partitions == 1 ? "" : "s", fmt_size(cap, sizeof cap, ti.capacity),
	       policy_name(ti.policy));
	return 0;
}

/* Produce in the parent while the child consumes; *ret is its report. */
static int run_parent(const struct demo *d, pid_t child, int ready_fd, int result_fd,
		      struct demo_result *ret, int64_t *ret_start)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = d->root);
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true);
	_cleanup_(bus_closep) shmbus *bus = NULL;
	_cleanup_(producer_freep) shmbus_producer *prod = NULL;
	char ready;
	int rc;

	pin(d->cpu[0]);
	if (read(ready_fd, &ready, 1) != 1) {
		cli_err("the demo consumer (process %d) did not start", (int)child);
		return CLI_EXIT_FAIL;
	}
	rc = shmbus_open(&oo, &bus);
	if (rc == 0)
		rc = shmbus_producer_new(bus, DEMO_TOPIC, &po, &prod);
	if (rc < 0)
		return cli_fail(rc, "demo producer");
	*ret_start = mono_ns();
	if (produce_all(d, prod))
		return CLI_EXIT_FAIL;
	if (read(result_fd, ret, sizeof *ret) != (ssize_t)sizeof *ret) {
		cli_err("the demo consumer (process %d) ended without a report", (int)child);
		return CLI_EXIT_FAIL;
	}
	if (ret->out_of_order) {
		cli_err("the demo consumer saw %llu records out of order: this is a bug in "
			"shmbus; please report it", (unsigned long long)ret->out_of_order);
		return CLI_EXIT_FAIL;
	}
	return ret->failed ? CLI_EXIT_FAIL : 0;
}

/* Fork the consumer and produce; reap the child whatever happens. */
static int run(const struct demo *d, struct demo_result *res, int64_t *start)
{
	int ready[2], result[2], status = 0, rc;
	pid_t child;

	if (pipe(ready) < 0 || pipe(result) < 0) {
		cli_err("demo: pipe: %s", strerror(errno));
		return CLI_EXIT_FAIL;
	}
	fflush(NULL);
	child = fork();
	if (child < 0) {
		cli_err("demo: fork: %s", strerror(errno));
		return CLI_EXIT_FAIL;
	}
	if (child == 0) {
		close(ready[0]);
		close(result[0]);
		_exit(consumer_main(d, ready[1], result[1]));
	}
	close(ready[1]);
	close(result[1]);
	rc = run_parent(d, child, ready[0], result[0], res, start);
	if (rc)
		kill(child, SIGTERM);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	close(ready[0]);
	close(result[0]);
	if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		cli_err("the demo consumer (process %d) failed", (int)child);
		rc = CLI_EXIT_FAIL;
	}
	return rc;
}

static void report(const struct cli *cli, const struct demo *d, const char *root,
		   const struct demo_result *res, int64_t start)
{
	double secs = (double)(res->done_ns - start) / 1e9;
	const char *p = cli->prog;

	if (secs <= 0)
		secs = 1e-9;
	printf("produced:  %llu records of %d bytes (send_batch, %d per batch)%s\n",
	       (unsigned long long)d->records, DEMO_VALUE, DEMO_BATCH,
	       d->cpu[0] >= 0 ? "" : ", processes not pinned (one CPU)");
	printf("consumed:  %llu records by a second process, in order per partition; %llu lost, "
	       "%llu from other producers ignored\n", (unsigned long long)res->received,
	       (unsigned long long)res->lost, (unsigned long long)res->foreign);
	printf("time:      %.3f s, wall clock from the first send to the last record read\n", secs);
	printf("rate:      %.2f million records/s, %.0f MB/s of values\n",
	       (double)d->records / secs / 1e6, (double)d->records * DEMO_VALUE / secs / 1e6);
	printf("\nTry it from another terminal:\n");
	printf("  # wait for records and print them\n");
	printf("  %s --root %s consume %s -o end\n", p, root, DEMO_TOPIC);
	printf("  # send one\n");
	printf("  echo hello | %s --root %s produce %s\n", p, root, DEMO_TOPIC);
	printf("  # the last 3 records of each partition, with partition and offset\n");
	printf("  %s --root %s consume %s -o -3 -e -f '%%p/%%o %%s\\n'\n", p, root, DEMO_TOPIC);
	printf("  # offsets, bytes and counters\n");
	printf("  %s --root %s stats %s\n", p, root, DEMO_TOPIC);
}

int cmd_demo(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
	static struct demo d = { .records = 2000000 };
	struct demo_result res = { 0 };
	char root[4096];
	int64_t start = 0;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":n:h", longopts, NULL)) != -1) {
		if (c == 'n') {
			if (parse_u64("-n", optarg, 1, UINT32_MAX, &d.records) < 0)
				return CLI_EXIT_USAGE;
			continue;
		}
		rc = cli_common_option(cli, c, "demo", argv, usage);
		if (rc >= 0)
			return rc;
	}
	if (optind < argc)
		return cli_usage_err(usage, "demo takes no arguments (\"%s\")", argv[optind]);
	rc = ensure_topic(cli, &d, root, sizeof root);
	if (rc)
		return rc;
	d.root = root;
	make_templates(&d);
	pick_cpus(d.cpu);
	rc = run(&d, &res, &start);
	if (rc == 0)
		report(cli, &d, root, &res, start);
	return rc;
}
