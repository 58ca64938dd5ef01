/*
 * produce.c - `shmbus produce TOPIC`: one record per line of stdin.
 *
 * stdin is read with read(2) into one growing buffer, and every complete
 * line the read brought is sent at once with shmbus_producer_send_batch:
 * a pipe that delivers lines in bulk gets batches of up to 1024 records,
 * a terminal (one line per read) gets each line sent as it is typed.  A
 * line may be as long as the partition's largest record; the trailing
 * newline is stripped, and a last line without one is still a record.
 * With -K DELIM a line splits at the first DELIM into key and value; a
 * line without DELIM is all value, with a null key, and DELIM's C escapes
 * (\t, \xHH, ...) are resolved first (as kcat does).
 *
 * On a backpressure topic the producer waits for room as long as it
 * takes; after a second without room it says once, on stderr, which
 * consumer (name and pid) it waits for.
 */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"Usage: shmbus produce TOPIC [-p PARTITION] [-K DELIM] [-H NAME=VALUE]... [-v]\n"
	"                      [--acks local|mirrors] [--ack-timeout MS]\n"
	"                      [--linger-us US [--batch-bytes N]]\n"
	"\n"
	"Append one record per line of stdin (the newline is not part of it).\n"
	"\n"
	"  -p PARTITION   the partition (default: by key with Kafka's murmur2\n"
	"                 partitioner, round-robin for records without a key)\n"
	"  -K DELIM       split each line at the first DELIM into KEY DELIM VALUE;\n"
	"                 a line without DELIM is all value, with no key.  DELIM\n"
	"                 may hold the escapes \\t \\n \\r \\0 \\\\ and \\xHH (-K '\\t': a tab)\n"
	"  -H NAME=VALUE  add a header to every record (repeatable)\n"
	"  -v             report the number of records sent on stderr\n"
	"  --acks mirrors each batch of lines returns only once the mirrors hold it\n"
	"                 ([mirror-listen] min_mirrors of them); local (default): once\n"
	"                 it is in this host's log\n"
	"  --ack-timeout MS  with --acks mirrors: fail (naming the mirrors that lag) if\n"
	"                 a batch is not mirrored within MS milliseconds (default 30000)\n"
	"  --linger-us US one send per line, staged and published in batches once\n"
	"                 --batch-bytes are staged or US microseconds have passed\n"
	"                 (Kafka's linger.ms); all of it is published at the end\n"
	"  --batch-bytes N  with --linger-us: bytes a batch holds (default 16384)\n";

#define BATCH 1024
#define WAIT_SAY_MS 1000 /* backpressure: after this long without room, say why */
#define BUF_START (256u << 10)

struct producer_run {
	shmbus_producer *prod;
	const char *topic;
	int32_t partition;             /* or SHMBUS_PARTITION_ANY */
	char *delim;                   /* -K, escapes resolved, or NULL */
	size_t delim_len;
	struct shmbus_header *headers; /* -H */
	size_t nheaders;
	uint64_t max_line;             /* the largest record the topic holds */
	uint64_t lines;                /* lines read */
	uint64_t sent;
	struct shmbus_record recs[BATCH];
	size_t nrecs;
	uint64_t first_line;           /* line number of recs[0] */
	bool verbose;
	bool said_waiting;             /* backpressure: who we wait for, said once */
	enum shmbus_acks acks;         /* --acks */
	int ack_timeout_ms;            /* --ack-timeout */
	int linger_us;                 /* --linger-us: one send a line, staged */
	int batch_bytes;               /* --batch-bytes */
};

/* Send the pending records; a failure is reported with its line number. */
static int flush_records(struct producer_run *pr)
{
	size_t done = 0;

	while (done < pr->nrecs) {
		size_t left = pr->nrecs - done;
		int rc;

		if (left == 1 || pr->linger_us) { /* linger: the library batches */
			rc = shmbus_producer_send(pr->prod, pr->partition, &pr->recs[done], NULL);
			rc = rc < 0 ? rc : 1;
		} else {
			rc = shmbus_producer_send_batch(pr->prod, pr->partition, &pr->recs[done], left);
		}
		if (rc == -EAGAIN) { /* waited WAIT_SAY_MS for room: say once for whom */
			if (!pr->said_waiting)
				cli_err("line %llu of stdin waits for room, and goes on waiting "
					"(Ctrl-C gives up): %s",
					(unsigned long long)(pr->first_line + done), shmbus_errmsg());
			pr->said_waiting = true;
			cli_err_forget();
			continue;
		}
		if (rc == -ETIMEDOUT && pr->acks == SHMBUS_ACKS_MIRRORS) {
			cli_err("lines %llu..%llu of stdin are in the log, but the mirrors did not "
				"acknowledge them in time:", (unsigned long long)(pr->first_line + done),
				(unsigned long long)(pr->first_line + pr->nrecs - 1));
			return cli_fail(rc, "acks=mirrors");
		}
		if (rc <= 0) {
			char what[64];

			snprintf(what, sizeof what, "line %llu",
				 (unsigned long long)(pr->first_line + done));
			cli_err("line %llu of stdin was not sent:",
				(unsigned long long)(pr->first_line + done));
			return cli_fail(rc ? rc : -EIO, what);
		}
		done += (size_t)rc;
		pr->sent += (uint64_t)rc;
	}
	pr->nrecs = 0;
	return 0;
}

/* Queue one line (without its newline) as a record. */
static int add_line(struct producer_run *pr, const char *line, size_t len)
{
	struct shmbus_record *r;
	const char *at = NULL;

	if (pr->nrecs == BATCH && flush_records(pr))
		return CLI_EXIT_FAIL;
	if (pr->nrecs == 0)
		pr->first_line = pr->lines + 1;
	pr->lines++;
	r = &pr->recs[pr->nrecs++];
	*r = (struct shmbus_record){ .value = line, .value_len = len, .headers = pr->headers,
				     .header_count = pr->nheaders };
	if (pr->delim)
		at = memmem(line, len, pr->delim, pr->delim_len);
	if (at) {
		r->key = line;
		r->key_len = (size_t)(at - line);
		r->value = at + pr->delim_len;
		r->value_len = len - r->key_len - pr->delim_len;
	}
	return 0;
}

/* Queue and send the complete lines of buf[0, len) (all of it at EOF);
 * *used is how many bytes they took. */
static int send_lines(struct producer_run *pr, const char *buf, size_t len, bool eof,
		      size_t *used)
{
	size_t at = 0;

	while (at < len) {
		const char *nl = memchr(buf + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - buf) : len;

		if (!nl && !eof)
			break;
		if (add_line(pr, buf + at, end - at))
			return CLI_EXIT_FAIL;
		at = nl ? end + 1 : len;
	}
	*used = at;
	return flush_records(pr);
}

/* Make room for more of a line that does not fit the buffer yet. */
static int grow(struct producer_run *pr, char **buf, size_t *cap)
{
	char *bigger;

	if (*cap > pr->max_line) {
		cli_err("line %llu of stdin is longer than the largest record topic \"%s\" holds "
			"(%llu bytes); recreate the topic with a larger --capacity",
			(unsigned long long)pr->lines + 1, pr->topic,
			(unsigned long long)pr->max_line);
		return CLI_EXIT_FAIL;
	}
	bigger = realloc(*buf, *cap * 2);
	if (!bigger) {
		cli_err("out of memory for line %llu of stdin", (unsigned long long)pr->lines + 1);
		return CLI_EXIT_FAIL;
	}
	*buf = bigger;
	*cap *= 2;
	return 0;
}

static int produce_stream(struct producer_run *pr, int fd)
{
	_cleanup_(freep) char *buf = malloc(BUF_START);
	size_t cap = BUF_START, len = 0, used;
	bool eof = false;

	if (!buf)
		return cli_fail(-ENOMEM, "cannot read stdin");
	while (!eof) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_err("cannot read stdin: %s", strerror(errno));
			return CLI_EXIT_FAIL;
		}
		eof = n == 0;
		len += (size_t)n;
		if (send_lines(pr, buf, len, eof, &used))
			return CLI_EXIT_FAIL;
		memmove(buf, buf + used, len - used);
		len -= used;
		if (len == cap && grow(pr, &buf, &cap))
			return CLI_EXIT_FAIL;
	}
	return 0;
}

static int add_header(struct producer_run *pr, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct shmbus_header *grown;

	if (!eq || eq == arg)
		return cli_usage_err(usage, "-H wants NAME=VALUE, not \"%s\"", arg);
	grown = realloc(pr->headers, (pr->nheaders + 1) * sizeof *grown);
	if (!grown)
		return cli_fail(-ENOMEM, "-H");
	pr->headers = grown;
	pr->headers[pr->nheaders++] = (struct shmbus_header){
		.name = arg, .name_len = (size_t)(eq - arg),
		.value = eq + 1, .value_len = strlen(eq + 1),
	};
	return -1;
}

static int parse_options(struct cli *cli, struct producer_run *pr, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "acks", required_argument, NULL, 'a' },
		{ "ack-timeout", required_argument, NULL, 't' },
		{ "linger-us", required_argument, NULL, 'L' },
		{ "batch-bytes", required_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:K:H:vh", longopts, NULL)) != -1) {
		rc = -1;
		if (c == 'p') {
			if (parse_u64("-p", optarg, 0, INT32_MAX, &v) < 0)
				return CLI_EXIT_USAGE;
			pr->partition = (int32_t)v;
		} else if (c == 'K') {
			free(pr->delim);
			pr->delim = NULL;
			if (unescape("-K", optarg, &pr->delim, &pr->delim_len) < 0)
				return CLI_EXIT_USAGE;
			if (!pr->delim_len)
				return cli_usage_err(usage, "-K wants a delimiter of at least one byte");
		} else if (c == 'H') {
			rc = add_header(pr, optarg);
		} else if (c == 'v') {
			pr->verbose = true;
		} else if (c == 'a') {
			if (!strcmp(optarg, "mirrors"))
				pr->acks = SHMBUS_ACKS_MIRRORS;
			else if (strcmp(optarg, "local"))
				return cli_usage_err(usage, "--acks is local or mirrors, not \"%s\"",
						     optarg);
		} else if (c == 't') {
			if (parse_u64("--ack-timeout", optarg, 1, INT32_MAX, &v) < 0)
				return CLI_EXIT_USAGE;
			pr->ack_timeout_ms = (int)v;
		} else if (c == 'L') {
			if (parse_u64("--linger-us", optarg, 1, 60000000, &v) < 0)
				return CLI_EXIT_USAGE;
			pr->linger_us = (int)v;
		} else if (c == 'B') {
			if (parse_u64("--batch-bytes", optarg, 1, 16u << 20, &v) < 0)
				return CLI_EXIT_USAGE;
			pr->batch_bytes = (int)v;
		} else {
			rc = cli_common_option(cli, c, "produce", argv, usage);
		}
		if (rc >= 0)
			return rc;
	}
	if (pr->ack_timeout_ms && pr->acks != SHMBUS_ACKS_MIRRORS)
		return cli_usage_err(usage, "produce: --ack-timeout goes with --acks mirrors");
	if (pr->batch_bytes && !pr->linger_us)
		return cli_usage_err(usage, "produce: --batch-bytes goes with --linger-us");
	if (optind >= argc)
		return cli_usage_err(usage, "produce: to which topic?");
	if (optind + 1 < argc)
		return cli_usage_err(usage, "produce: one topic at a time (\"%s\" is extra)",
				     argv[optind + 1]);
	pr->topic = argv[optind];
	return -1;
}

/* Open the producer; -1 to go on, else the exit status. */
static int open_producer(struct producer_run *pr, shmbus *bus)
{
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true, .block_timeout_ms = WAIT_SAY_MS,
		    .acks = pr->acks, .ack_timeout_ms = pr->ack_timeout_ms,
		    .linger_us = pr->linger_us, .batch_bytes = pr->batch_bytes);
	SHMBUS_OPTS(shmbus_topic_info, ti);
	int rc = shmbus_topic_describe(bus, pr->topic, &ti);

	if (rc < 0)
		return cli_fail(rc, "cannot find the topic");
	if (pr->partition != SHMBUS_PARTITION_ANY && (uint32_t)pr->partition >= ti.partitions) {
		cli_err("topic \"%s\" has %u partition%s (0..%u), not %d", pr->topic, ti.partitions,
			ti.partitions == 1 ? "" : "s", ti.partitions - 1, (int)pr->partition);
		return CLI_EXIT_FAIL;
	}
	pr->max_line = ti.max_record;
	rc = shmbus_producer_new(bus, pr->topic, &po, &pr->prod);
	return rc < 0 ? cli_fail(rc, "cannot make a producer") : -1;
}

int cmd_produce(struct cli *cli, int argc, char **argv)
{
	_cleanup_(bus_closep) shmbus *bus = NULL;
	_cleanup_(freep) struct producer_run *pr = calloc(1, sizeof *pr);
	int rc;

	if (!pr)
		return cli_fail(-ENOMEM, "produce");
	pr->partition = SHMBUS_PARTITION_ANY;
	rc = parse_options(cli, pr, argc, argv);
	if (rc < 0) {
		rc = cli_open(cli, false, &bus);
		if (rc == -ENOENT)
			rc = cli_no_bus(cli, pr->topic);
		else
			rc = rc < 0 ? CLI_EXIT_FAIL : open_producer(pr, bus);
	}
	if (rc < 0)
		rc = produce_stream(pr, STDIN_FILENO);
	if (rc == 0 && pr->linger_us) { /* the last batch, and its acks */
		int f = shmbus_producer_flush(pr->prod);

		if (f < 0)
			rc = cli_fail(f, "the last lines of stdin were not all sent");
	}
	if (pr->verbose)
		fprintf(stderr, "shmbus: %llu record%s sent to topic \"%s\"\n",
			(unsigned long long)pr->sent, pr->sent == 1 ? "" : "s", pr->topic);
	shmbus_producer_free(pr->prod);
	free(pr->headers);
	free(pr->delim);
	return rc;
}
