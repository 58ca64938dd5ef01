/*
 * stats.c - `shmbus stats [TOPIC]`: what the partitions hold and count,
 * and how far behind each consumer group is.
 *
 * Everything comes from the partition headers and group files in shared
 * memory (no daemon needed): per partition its offsets, bytes appended
 * and held, policy, counters and registered consumers; then, for each
 * group that committed offsets on the topic, its lag per partition
 * (end offset minus committed offset).  While a daemon runs and ticks,
 * two more columns show the append rates it sampled (from the counters
 * file, format.md §12); without one they are left out, so the columns
 * scripts read do not move.
 */
#include "cli.h"

#include <errno.h>
#include <string.h>

static const char usage[] =
	"Usage: shmbus stats [TOPIC]\n"
	"\n"
	"Per partition of TOPIC (default: every topic): the low and high offsets, the\n"
	"records held, the bytes appended and held, the policy, aborted claims, lapped\n"
	"reads, backpressure blocks and registered consumers; while shmbusd runs,\n"
	"RATE and BYTES/S: the records and bytes appended per second over its last\n"
	"tick.  Then each consumer group's committed offset and lag.\n";

struct commit {
	char group[256];
	char topic[256];
	int32_t partition;
	uint64_t offset;
};

struct commits {
	shmbus *bus;
	const char *topic;       /* only this topic's, or NULL */
	const char *group;       /* the group being visited */
	struct commit *v;
	size_t n, cap;
};

static int add_commit(void *ctx, const char *topic, int32_t partition, uint64_t offset,
		      int64_t commit_ns)
{
	struct commits *cs = ctx;
	struct commit *grown;

	(void)commit_ns;
	if (cs->topic && strcmp(cs->topic, topic))
		return 0;
	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? 2 * cs->cap : 16;

		grown = realloc(cs->v, cap * sizeof *grown);
		if (!grown)
			return -ENOMEM;
		cs->v = grown;
		cs->cap = cap;
	}
	grown = &cs->v[cs->n++];
	snprintf(grown->group, sizeof grown->group, "%s", cs->group);
	snprintf(grown->topic, sizeof grown->topic, "%s", topic);
	grown->partition = partition;
	grown->offset = offset;
	return 0;
}

static int visit_group(void *ctx, const char *group)
{
	struct commits *cs = ctx;
	int rc;

	cs->group = group;
	rc = shmbus_group_offsets(cs->bus, group, add_commit, cs);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) /* a group file being created or damaged: skip it */
		cli_err_forget();
	return 0;
}

static int by_group_partition(const void *a, const void *b)
{
	const struct commit *x = a, *y = b;
	int c = strcmp(x->group, y->group);

	if (!c)
		c = strcmp(x->topic, y->topic);
	return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static void print_lags(const struct commits *cs, const struct shmbus_topic_info *ti,
		       const struct shmbus_partition_info *pi)
{
	static const char *const heads[] = { "GROUP", "PARTITION", "COMMITTED", "HIGH", "LAG" };
	_cleanup_(table_freep) struct table t;

	table_init(&t, 5, heads);
	for (size_t i = 0; i < cs->n; i++) {
		const struct commit *c = &cs->v[i];
		uint64_t high;

		if (strcmp(c->topic, ti->name) || c->partition < 0 ||
		    (uint32_t)c->partition >= ti->partitions)
			continue;
		high = pi[c->partition].high;
		table_cell(&t, "%s", c->group);
		table_cell(&t, "%d", (int)c->partition);
		table_cell(&t, "%llu", (unsigned long long)c->offset);
		table_cell(&t, "%llu", (unsigned long long)high);
		table_cell(&t, "%llu", (unsigned long long)(high > c->offset ? high - c->offset : 0));
	}
	if (t.nrows) {
		printf("\n");
		table_print(&t, stdout);
	}
}

/* RATE and BYTES/S, or "-" where the daemon has not sampled the partition. */
static void rate_cells(struct table *t, shmbus *bus, const char *topic, uint32_t p)
{
	SHMBUS_OPTS(shmbus_partition_rate, r);

	if (shmbus_partition_rate(bus, topic, p, &r) < 0) {
		cli_err_forget();
		table_cell(t, "-");
		table_cell(t, "-");
		return;
	}
	table_cell(t, "%.1f", r.records_per_s);
	table_cell(t, "%.1f", r.bytes_per_s);
}

static void partition_row(struct table *t, uint32_t p, const struct shmbus_partition_info *pi)
{
	table_cell(t, "%u", p);
	table_cell(t, "%llu", (unsigned long long)pi->low);
	table_cell(t, "%llu", (unsigned long long)pi->high);
	table_cell(t, "%llu", (unsigned long long)(pi->high - pi->low));
	table_cell(t, "%llu", (unsigned long long)pi->tail);
	table_cell(t, "%llu", (unsigned long long)(pi->tail < pi->capacity ? pi->tail : pi->capacity));
	table_cell(t, "%s", policy_name(pi->policy));
	table_cell(t, "%llu", (unsigned long long)pi->aborted_claims);
	table_cell(t, "%llu", (unsigned long long)pi->lapped_reads);
	table_cell(t, "%llu", (unsigned long long)pi->backpressure_blocks);
	table_cell(t, "%u", pi->registered_consumers);
}

static int topic_stats(shmbus *bus, const struct shmbus_topic_info *ti, const struct commits *cs,
		       bool rates)
{
	static const char *const heads[] = {
		"PARTITION", "LOW", "HIGH", "RECORDS", "BYTES", "HELD", "POLICY", "ABORTED",
		"LAPPED", "BP-BLOCKS", "CONSUMERS", "RATE", "BYTES/S",
	};
	_cleanup_(freep) struct shmbus_partition_info *pi = calloc(ti->partitions, sizeof *pi);
	_cleanup_(table_freep) struct table t;
	char cap[32];

	table_init(&t, rates ? 13 : 11, heads);
	if (!pi)
		return cli_fail(-ENOMEM, "stats");
	for (uint32_t p = 0; p < ti->partitions; p++) {
		int rc;

		pi[p].sz = sizeof pi[p];
		rc = shmbus_partition_info(bus, ti->name, p, &pi[p]);
		if (rc < 0)
			return cli_fail(rc, "cannot read a partition");
		partition_row(&t, p, &pi[p]);
		if (rates)
			rate_cells(&t, bus, ti->name, p);
	}
	printf("topic \"%s\": %u partition%s of %s, %s\n", ti->name, ti->partitions,
	       ti->partitions == 1 ? "" : "s", fmt_size(cap, sizeof cap, ti->capacity),
	       policy_name(ti->policy));
	table_print(&t, stdout);
	print_lags(cs, ti, pi);
	return 0;
}

/* The topics to show: the one named, or all.  Returns how many, or -1
 * after reporting a failure. */
static int topics_of(shmbus *bus, const char *topic, struct shmbus_topic_info **ret)
{
	int n = topic ? 1 : shmbus_topic_list(bus, NULL, 0), rc;

	if (n <= 0) {
		if (n < 0)
			cli_fail(n, "cannot list topics");
		return n < 0 ? -1 : 0;
	}
	*ret = calloc((size_t)n, sizeof **ret);
	if (!*ret) {
		cli_fail(-ENOMEM, "stats");
		return -1;
	}
	(*ret)[0].sz = sizeof **ret;
	rc = topic ? shmbus_topic_describe(bus, topic, *ret) : shmbus_topic_list(bus, *ret, (size_t)n);
	if (rc < 0) {
		cli_fail(rc, topic ? "cannot find the topic" : "cannot list topics");
		return -1;
	}
	return topic ? 1 : (rc < n ? rc : n);
}

/* Does a daemon tick on the root, so that its rates are current? */
static bool daemon_rates(shmbus *bus)
{
	SHMBUS_OPTS(shmbus_daemon_counters, c);

	if (shmbus_daemon_counters(bus, &c) < 0) {
		cli_err_forget(); /* a damaged counters file: no rates */
		return false;
	}
	return c.state == SHMBUS_DAEMON_RUNNING;
}

static int show(shmbus *bus, const char *topic)
{
	_cleanup_(freep) struct shmbus_topic_info *tis = NULL;
	struct commits cs = { .bus = bus, .topic = topic };
	int n = topics_of(bus, topic, &tis), rc = 0;
	bool rates;

	if (n <= 0)
		return n < 0 ? CLI_EXIT_FAIL : 0;
	rc = shmbus_group_list(bus, visit_group, &cs);
	if (rc < 0)
		rc = cli_fail(rc, "cannot read the consumer groups");
	if (cs.n)
		qsort(cs.v, cs.n, sizeof *cs.v, by_group_partition);
	rates = daemon_rates(bus);
	for (int i = 0; i < n && rc == 0; i++) {
		if (i)
			printf("\n");
		rc = topic_stats(bus, &tis[i], &cs, rates);
	}
	free(cs.v);
	return rc;
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
	_cleanup_(bus_closep) shmbus *bus = NULL;
	const char *topic = NULL;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		rc = cli_common_option(cli, c, "stats", argv, usage);
		if (rc >= 0)
			return rc;
	}
	if (optind + 1 < argc)
		return cli_usage_err(usage, "stats: one topic at a time (\"%s\" is extra)",
				     argv[optind + 1]);
	if (optind < argc)
		topic = argv[optind];
	rc = cli_open(cli, false, &bus);
	if (rc == -ENOENT && topic)
		return cli_no_bus(cli, topic);
	if (rc == -ENOENT) {
		cli_no_bus_note(cli);
		return 0;
	}
	if (rc < 0)
		return CLI_EXIT_FAIL;
	return show(bus, topic);
}
