/*
 * consume.c - `shmbus consume TOPIC`: print records as kcat does.
 *
 * One consumer reads the chosen partitions (all by default) from a start
 * each partition computes for itself (-o), printing every record through
 * a compiled format (format.c) into a buffered stdout, flushed whenever
 * the consumer has caught up, before it waits for more.  Records are copied out of shared memory by the
 * library (opts.copy), so nothing a producer overwrites later can tear
 * what is printed.
 *
 * Stopping: -c after COUNT records (poll never returns more than are still
 * wanted, so the position is exactly past the last one printed); -e once
 * every assigned partition is at its end, checked whenever a short poll
 * returns nothing; SIGINT or SIGTERM, seen within a poll timeout.  With
 * -g the positions are committed once what was printed has reached
 * stdout: whenever the consumer catches up, at least every second while
 * it does not, and at exit.  If stdout's reader goes away meanwhile
 * (`consume -g G | head -1`), the records write(2) took are committed
 * (output.c), and the rest are left for the group's next consumer.
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"Usage: shmbus consume TOPIC [-p PARTITION] [-o START] [-e] [-c COUNT] [-g GROUP]\n"
	"                      [-f FORMAT] [--isolation all|mirrored]\n"
	"       shmbus consume -G GROUP TOPIC... [-o beginning|end] [-e] [-c COUNT] [-f FORMAT]\n"
	"                      [--instance-id ID] [--assignor NAME] [--pattern]\n"
	"                      [--isolation all|mirrored]\n"
	"\n"
	"Print the records of a topic, one per line by default; with -G, as one member of\n"
	"a consumer group whose partitions shmbusd shares among its members.\n"
	"\n"
	"  -p PARTITION  read only this partition (default: all of them)\n"
	"  -o START      where each partition starts:\n"
	"                  beginning      the oldest record held\n"
	"                  end            the next record appended\n"
	"                  OFFSET         this offset\n"
	"                  -N             N records before the end\n"
	"                  @TIMESTAMP_MS  the first record at or after this time\n"
	"                                 (milliseconds since the epoch)\n"
	"                default: the group's committed offset with -g (else the oldest\n"
	"                record), and beginning without -g\n"
	"  -e            exit once every partition read is at its end\n"
	"  -c COUNT      exit after COUNT records (at least 1)\n"
	"  -g GROUP      commit positions to consumer group GROUP (every second and at\n"
	"                exit, including on SIGINT and SIGTERM)\n"
	"  -G GROUP      join consumer group GROUP (needs shmbusd): read the partitions\n"
	"                it assigns, commit as -g does and when a partition is revoked;\n"
	"                -o sets where partitions without a committed offset start\n"
	"  --pattern     with -G: TOPIC is a POSIX extended regex on whole topic names,\n"
	"                matched again as topics are created and deleted\n"
	"  --instance-id ID  with -G: static membership (restart within the session\n"
	"                timeout and get the same partitions back)\n"
	"  --assignor NAME  with -G: cooperative-sticky (default), range or round-robin\n"
	"  --isolation mirrored  print only records held by the mirrors ([mirror-listen]\n"
	"                min_mirrors of them), waiting for them as at the end; -e stops\n"
	"                at the mirrored end.  all (default): every record\n"
	"  -f FORMAT     output format, as kcat's (default \"%s\\n\"):\n"
	"                  %t topic  %p partition  %o offset  %k key  %s value\n"
	"                  %T timestamp (ms)  %h headers (name=value,...)\n"
	"                  %S value size  %K key size (-1 if null)  %% a percent sign\n"
	"                  \\n \\r \\t \\0 \\\\ escapes\n";

enum start_kind { START_DEFAULT, START_BEGINNING, START_END, START_OFFSET, START_BEFORE_END,
		  START_TIME };

#define POLL_MAX 256
#define COMMIT_EVERY_MS 1000

struct consume_run {
	const char *topic;
	int32_t partition;          /* or SHMBUS_PARTITION_ANY */
	enum start_kind start;
	uint64_t start_arg;         /* offset, N, or milliseconds */
	bool exit_at_end;
	uint64_t count;             /* 0: no limit */
	const char *group;
	const char *balanced;       /* -G */
	const char *instance_id;
	enum shmbus_assignor assignor;
	enum shmbus_isolation isolation;
	bool pattern;
	char **topics;              /* -G: every TOPIC argument */
	int ntopics;
	shmbus_member *m;
	struct fmt fmt;
	shmbus_consumer *c;
	uint32_t nparts;            /* of the topic */
	struct output out;          /* stdout, knowing which records reached it */
	uint64_t printed;
	bool uncommitted;           /* printed records not committed yet */
	int64_t committed_ms;       /* when positions were last committed */
	int64_t grown_ms;           /* when the topic's partition count was last read */
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_start(struct consume_run *cr, const char *s)
{
	if (!strcmp(s, "beginning")) {
		cr->start = START_BEGINNING;
	} else if (!strcmp(s, "end")) {
		cr->start = START_END;
	} else if (s[0] == '@') {
		cr->start = START_TIME;
		if (parse_u64("-o @TIMESTAMP_MS", s + 1, 0, INT64_MAX / 1000000, &cr->start_arg) < 0)
			return CLI_EXIT_USAGE;
	} else if (s[0] == '-') {
		cr->start = START_BEFORE_END;
		if (parse_u64("-o -N", s + 1, 0, INT64_MAX, &cr->start_arg) < 0)
			return CLI_EXIT_USAGE;
	} else if (s[0] >= '0' && s[0] <= '9') {
		cr->start = START_OFFSET;
		if (parse_u64("-o", s, 0, INT64_MAX, &cr->start_arg) < 0)
			return CLI_EXIT_USAGE;
	} else {
		return cli_usage_err(usage, "-o is beginning, end, OFFSET, -N or @TIMESTAMP_MS, "
				     "not \"%s\"", s);
	}
	return -1;
}

static int one_option(struct cli *cli, struct consume_run *cr, int c, char **argv,
		      const char **format)
{
	uint64_t v;

	switch (c) {
	case 'p':
		if (parse_u64("-p", optarg, 0, INT32_MAX, &v) < 0)
			return CLI_EXIT_USAGE;
		cr->partition = (int32_t)v;
		return -1;
	case 'o':
		return parse_start(cr, optarg);
	case 'e':
		cr->exit_at_end = true;
		return -1;
	case 'c':
		if (parse_u64("-c", optarg, 1, UINT64_MAX, &cr->count) < 0)
			return CLI_EXIT_USAGE;
		return -1;
	case 'g':
		cr->group = optarg;
		return -1;
	case 'G':
		cr->balanced = optarg;
		return -1;
	case 'P':
		cr->pattern = true;
		return -1;
	case 'I':
		cr->instance_id = optarg;
		return -1;
	case 'A':
		if (!strcmp(optarg, "range"))
			cr->assignor = SHMBUS_ASSIGNOR_RANGE;
		else if (!strcmp(optarg, "round-robin"))
			cr->assignor = SHMBUS_ASSIGNOR_ROUND_ROBIN;
		else if (strcmp(optarg, "cooperative-sticky"))
			return cli_usage_err(usage, "--assignor is cooperative-sticky, range or "
					     "round-robin, not \"%s\"", optarg);
		return -1;
	case 'i':
		if (!strcmp(optarg, "mirrored"))
			cr->isolation = SHMBUS_ISOLATION_MIRRORED;
		else if (strcmp(optarg, "all"))
			return cli_usage_err(usage, "--isolation is all or mirrored, not \"%s\"",
					     optarg);
		return -1;
	case 'f':
		*format = optarg;
		return -1;
	default:
		return cli_common_option(cli, c, "consume", argv, usage);
	}
}

/* The rest of -G's command line: topics (or one pattern), and no -p or -g. */
static int balanced_options(struct consume_run *cr, int argc, char **argv, const char *format)
{
	if (cr->group || cr->partition != SHMBUS_PARTITION_ANY)
		return cli_usage_err(usage, "consume: -G shares the partitions among the group's "
				     "members; it goes without -g and -p");
	if (cr->start != START_DEFAULT && cr->start != START_BEGINNING && cr->start != START_END)
		return cli_usage_err(usage, "consume: with -G, -o is beginning or end (where a "
				     "partition without a committed offset starts)");
	if (cr->pattern && optind + 1 < argc)
		return cli_usage_err(usage, "consume: --pattern takes one pattern (\"%s\" is extra)",
				     argv[optind + 1]);
	cr->topics = argv + optind;
	cr->ntopics = argc - optind;
	cr->topic = argv[optind];
	return fmt_compile(format, &cr->fmt) < 0 ? CLI_EXIT_USAGE : -1;
}

static int parse_options(struct cli *cli, struct consume_run *cr, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "pattern", no_argument, NULL, 'P' },
		{ "instance-id", required_argument, NULL, 'I' },
		{ "assignor", required_argument, NULL, 'A' },
		{ "isolation", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *format = "%s\\n";
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:o:ec:g:G:f:h", longopts, NULL)) != -1) {
		rc = one_option(cli, cr, c, argv, &format);
		if (rc >= 0)
			return rc;
	}
	if (optind >= argc)
		return cli_usage_err(usage, "consume: from which topic?");
	if (cr->balanced)
		return balanced_options(cr, argc, argv, format);
	if (cr->pattern || cr->instance_id || cr->assignor)
		return cli_usage_err(usage, "consume: --pattern, --instance-id and --assignor go "
				     "with -G");
	if (optind + 1 < argc)
		return cli_usage_err(usage, "consume: one topic at a time (\"%s\" is extra)",
				     argv[optind + 1]);
	cr->topic = argv[optind];
	if (fmt_compile(format, &cr->fmt) < 0)
		return CLI_EXIT_USAGE;
	return -1;
}

/* Where partition p starts, as an offset for shmbus_consumer_assign(). */
static int start_offset(shmbus *bus, const struct consume_run *cr, uint32_t p, int64_t *ret)
{
	SHMBUS_OPTS(shmbus_partition_info, pi);
	int rc;

	switch (cr->start) {
	case START_DEFAULT:
		*ret = cr->group ? SHMBUS_OFFSET_COMMITTED : SHMBUS_OFFSET_BEGINNING;
		return 0;
	case START_END:
		*ret = SHMBUS_OFFSET_END;
		return 0;
	case START_OFFSET:
		*ret = (int64_t)cr->start_arg;
		return 0;
	case START_BEFORE_END:
		rc = shmbus_partition_info(bus, cr->topic, p, &pi);
		if (rc < 0)
			return rc;
		*ret = (int64_t)(pi.high - pi.low > cr->start_arg ? pi.high - cr->start_arg : pi.low);
		return 0;
	default: /* START_BEGINNING, and START_TIME before its seek */
		*ret = SHMBUS_OFFSET_BEGINNING;
		return 0;
	}
}

static int assign_one(shmbus *bus, struct consume_run *cr, uint32_t p)
{
	int64_t off;
	int rc = start_offset(bus, cr, p, &off);

	if (rc == 0)
		rc = shmbus_consumer_assign(cr->c, cr->topic, (int32_t)p, off);
	if (rc == -ERANGE && cr->start == START_BEFORE_END) {
		/* producers moved the low end past it meanwhile */
		cli_err_forget();
		rc = shmbus_consumer_assign(cr->c, cr->topic, (int32_t)p, SHMBUS_OFFSET_BEGINNING);
	}
	if (rc == 0 && cr->start == START_TIME)
		rc = shmbus_consumer_seek_timestamp(cr->c, cr->topic, (int32_t)p,
						    (int64_t)cr->start_arg * 1000000);
	return rc < 0 ? cli_fail(rc, "cannot start reading") : 0;
}

static int assign(shmbus *bus, struct consume_run *cr)
{
	SHMBUS_OPTS(shmbus_topic_info, ti);
	uint32_t first = 0, last;
	int rc = shmbus_topic_describe(bus, cr->topic, &ti);

	if (rc < 0)
		return cli_fail(rc, "cannot find the topic");
	last = ti.partitions - 1;
	cr->nparts = ti.partitions;
	if (cr->partition != SHMBUS_PARTITION_ANY) {
		if ((uint32_t)cr->partition >= ti.partitions) {
			cli_err("topic \"%s\" has %u partition%s (0..%u), not %d", cr->topic,
				ti.partitions, ti.partitions == 1 ? "" : "s", last, (int)cr->partition);
			return CLI_EXIT_FAIL;
		}
		first = last = (uint32_t)cr->partition;
	}
	for (uint32_t p = first; p <= last; p++)
		if (assign_one(bus, cr, p))
			return CLI_EXIT_FAIL;
	return 0;
}

static void on_lapped(void *ctx, const char *topic, int32_t partition, uint64_t lost_from,
		      uint64_t resumed_at)
{
	(void)ctx;
	if (resumed_at > lost_from + 1)
		cli_err("%s/%d: offsets %llu..%llu were overwritten before they were read; going "
			"on at %llu", topic, (int)partition, (unsigned long long)lost_from,
			(unsigned long long)resumed_at - 1, (unsigned long long)resumed_at);
	else
		cli_err("%s/%d: offset %llu was overwritten before it was read; going on at %llu",
			topic, (int)partition, (unsigned long long)lost_from,
			(unsigned long long)resumed_at);
}

static int make_consumer(shmbus *bus, struct consume_run *cr)
{
	SHMBUS_OPTS(shmbus_consumer_opts, o, .group = cr->group,
		    .name = cr->group ? cr->group : "shmbus consume",
		    .reset = SHMBUS_RESET_EARLIEST, .copy = true, .on_lapped = on_lapped,
		    .isolation = cr->isolation);
	int rc = shmbus_consumer_new(bus, &o, &cr->c);

	if (rc < 0)
		return cli_fail(rc, "cannot make a consumer");
	return assign(bus, cr);
}

/* -G: what was printed reaches stdout, and is committed, before the
 * revoked partitions move to another member (runs inside poll). */
static void on_revoked(void *ctx, shmbus_member *m, const struct shmbus_topic_partition *tp,
		       size_t n)
{
	struct consume_run *cr = ctx;
	int rc;

	(void)tp;
	(void)n;
	if (!cr->out.f || output_flush(&cr->out) < 0)
		return; /* the loop reports it */
	rc = shmbus_member_commit(m);
	if (rc < 0)
		cli_err("cannot commit the revoked partitions: %s", shmbus_errmsg());
}

static int make_member(shmbus *bus, struct consume_run *cr)
{
	SHMBUS_OPTS(shmbus_consumer_opts, co, .name = cr->balanced,
		    .reset = cr->start == START_END ? SHMBUS_RESET_LATEST : SHMBUS_RESET_EARLIEST,
		    .copy = true, .on_lapped = on_lapped, .isolation = cr->isolation);
	SHMBUS_OPTS(shmbus_member_opts, o, .group = cr->balanced,
		    .topics = cr->pattern ? NULL : (const char *const *)cr->topics,
		    .ntopics = cr->pattern ? 0 : (size_t)cr->ntopics,
		    .pattern = cr->pattern ? cr->topic : NULL, .instance_id = cr->instance_id,
		    .assignor = cr->assignor, .auto_commit_ms = -1, .consumer = &co,
		    .on_revoked = on_revoked, .ctx = cr);
	int rc = shmbus_member_subscribe(bus, &o, &cr->m);

	if (rc < 0)
		return cli_fail(rc, "cannot join the group");
	cr->c = shmbus_member_consumer(cr->m);
	return 0;
}

/* The output failed: commit the records that reached it (output.c), then
 * return -EPIPE if its reader has gone (a normal end), else report. */
static int output_failed(struct consume_run *cr, int err)
{
	int rc = 0;

	output_settle(&cr->out);
	for (uint32_t p = 0; cr->group && p < cr->nparts; p++)
		if (cr->out.delivered[p] && rc == 0)
			rc = shmbus_consumer_commit_offset(cr->c, cr->topic, (int32_t)p,
							   cr->out.delivered[p]);
	if (rc < 0)
		cli_fail(rc, "cannot commit the group's offsets");
	if (err == -EPIPE)
		return rc < 0 ? CLI_EXIT_FAIL : -EPIPE;
	cli_err("cannot write to stdout: %s", strerror(-err));
	return CLI_EXIT_FAIL;
}

/*
 * Flush the output, then commit the positions if a group is in use.
 * Returns 0, 1 after a reported failure, or -EPIPE when the output's
 * reader has gone (nothing more to do; what it took is committed).
 */
static int flush_and_commit(struct consume_run *cr)
{
	int rc = output_flush(&cr->out);

	if (rc < 0)
		return output_failed(cr, rc);
	if ((!cr->group && !cr->m) || !cr->uncommitted)
		return 0;
	rc = cr->m ? shmbus_member_commit(cr->m) : shmbus_consumer_commit(cr->c);
	if (rc == -ESTALE && cr->m)
		cli_err("%s; going on with the partitions the group gives", shmbus_errmsg());
	else if (rc < 0)
		return cli_fail(rc, "cannot commit the group's offsets");
	output_forget(&cr->out);
	cr->uncommitted = false;
	cr->committed_ms = now_ms();
	return 0;
}

/* Every assigned partition at its end? */
static bool at_end(struct consume_run *cr)
{
	struct shmbus_topic_partition tp[256];
	uint64_t lag = 1;
	int n;

	if (!cr->m)
		return shmbus_consumer_lag(cr->c, cr->topic, cr->partition, &lag) == 0 && lag == 0;
	n = shmbus_member_assignment(cr->m, tp, 256);
	for (int i = 0; i < n && i < 256; i++)
		if (shmbus_consumer_lag(cr->c, tp[i].topic, tp[i].partition, &lag) < 0 || lag)
			return false;
	return true;
}

/*
 * Reading the whole topic (no -p, no -G): partitions added to it since
 * (`shmbus topic alter`) are read too, from their beginning: every record
 * in them came after the consume started.  Checked every GROW_CHECK_MS.
 */
#define GROW_CHECK_MS 100

static int follow_growth(shmbus *bus, struct consume_run *cr)
{
	SHMBUS_OPTS(shmbus_topic_info, ti);
	int rc;

	if (cr->m || cr->partition != SHMBUS_PARTITION_ANY || now_ms() - cr->grown_ms < GROW_CHECK_MS)
		return 0;
	cr->grown_ms = now_ms();
	if (shmbus_topic_describe(bus, cr->topic, &ti) < 0 || ti.partitions <= cr->nparts)
		return 0; /* deleted: the next poll says so */
	if (output_grow(&cr->out, ti.partitions) < 0)
		return cli_fail(-ENOMEM, "cannot follow the topic's new partitions");
	for (uint32_t p = cr->nparts; p < ti.partitions; p++) {
		rc = shmbus_consumer_assign(cr->c, cr->topic, (int32_t)p,
					    cr->group ? SHMBUS_OFFSET_COMMITTED
						      : SHMBUS_OFFSET_BEGINNING);
		if (rc < 0)
			return cli_fail(rc, "cannot read a new partition of the topic");
		cr->nparts = p + 1;
	}
	return 0;
}

static int print_messages(struct consume_run *cr, const struct shmbus_message *msgs, int n)
{
	for (int i = 0; i < n; i++) {
		if (fmt_write(&cr->fmt, &msgs[i], cr->out.f) < 0)
			return output_failed(cr, -(cr->out.err ? cr->out.err : EIO));
		if (output_record(&cr->out, &msgs[i]) < 0)
			return cli_fail(-ENOMEM, "cannot print");
	}
	cr->printed += (uint64_t)n;
	cr->uncommitted |= n > 0;
	return 0;
}

static int poll_failed(const struct consume_run *cr, int rc)
{
	if (rc != -EIDRM)
		return cli_fail(rc, "cannot read the topic");
	cli_err("topic \"%s\" was deleted while it was read", cr->topic);
	return CLI_EXIT_FAIL;
}

static int read_some(struct consume_run *cr, struct shmbus_message *msgs, size_t max, int ms)
{
	return cr->m ? shmbus_member_poll(cr->m, msgs, max, ms)
		     : shmbus_consumer_poll(cr->c, msgs, max, ms);
}

static int consume_loop(shmbus *bus, struct consume_run *cr)
{
	struct shmbus_message msgs[POLL_MAX];
	int timeout = cr->exit_at_end ? 10 : 100, rc = 0;

	while (!stop_signal && rc == 0 && !(cr->count && cr->printed >= cr->count)) {
		size_t max = POLL_MAX;
		int n;

		if (cr->count && cr->count - cr->printed < max)
			max = (size_t)(cr->count - cr->printed);
		rc = follow_growth(bus, cr);
		if (rc)
			break;
		n = read_some(cr, msgs, max, 0);
		if (n == 0) { /* caught up: flush and commit before waiting */
			rc = flush_and_commit(cr);
			if (rc || (cr->exit_at_end && at_end(cr)))
				break;
			n = read_some(cr, msgs, max, timeout);
		}
		if (n == -ESTALE) {
			/* a mirror cut the partition's end back past what was
			 * printed (format.md §14): say so, and go on from the cut */
			cli_err("%s", shmbus_errmsg());
			cli_err_forget();
			continue;
		}
		if (n < 0)
			return poll_failed(cr, n);
		rc = print_messages(cr, msgs, n);
		if (rc == 0 && (cr->group || cr->m) && now_ms() - cr->committed_ms >= COMMIT_EVERY_MS)
			rc = flush_and_commit(cr);
	}
	return rc;
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int cmd_consume(struct cli *cli, int argc, char **argv)
{
	_cleanup_(bus_closep) shmbus *bus = NULL;
	struct consume_run cr = { .partition = SHMBUS_PARTITION_ANY };
	int rc = parse_options(cli, &cr, argc, argv);

	if (rc >= 0)
		return rc;
	rc = cli_open(cli, false, &bus);
	if (rc == -ENOENT)
		rc = cli_no_bus(cli, cr.topic);
	else if (rc == 0)
		rc = cr.balanced ? make_member(bus, &cr) : make_consumer(bus, &cr);
	else
		rc = CLI_EXIT_FAIL;
	if (rc == 0 && output_open(&cr.out, STDOUT_FILENO, cr.group ? cr.nparts : 0) < 0)
		rc = cli_fail(-ENOMEM, "cannot print");
	if (rc == 0) {
		catch_signals();
		cr.committed_ms = now_ms();
		cr.grown_ms = now_ms();
		rc = consume_loop(bus, &cr);
		if (rc == 0)
			rc = flush_and_commit(&cr);
		if (rc == -EPIPE)
			rc = 0; /* the reader of stdout is gone: a normal end */
	}
	if (cr.m)
		shmbus_member_free(cr.m); /* leaves (on_revoked flushes): partitions move at once */
	else
		shmbus_consumer_free(cr.c);
	output_close(&cr.out);
	fmt_free(&cr.fmt);
	return rc;
}
