/*
 * topic.c - `shmbus topic create|alter|list|describe|delete`.
 *
 * Thin over the library's admin calls, which take the root's lock and
 * check names and geometry: this file parses the options, shows the
 * results, and leaves the judgement (and its messages) to the library.
 * list and describe never create a bus root that is not there.
 */
#include "cli.h"

#include <errno.h>
#include <string.h>

static const char usage[] =
	"Usage: shmbus topic create NAME [--partitions N] [--capacity SIZE]\n"
	"                    [--policy overwrite|backpressure] [--numa NODE]\n"
	"                    [--index-capacity N] [--retention-ms MS]\n"
	"       shmbus topic alter NAME --partitions N [--dry-run]\n"
	"       shmbus topic list\n"
	"       shmbus topic describe NAME\n"
	"       shmbus topic delete NAME\n"
	"\n"
	"  -p, --partitions N     partitions, at least 1 (default 1)\n"
	"  -c, --capacity SIZE    ring bytes per partition: a power of two from 4K to 4G,\n"
	"                         K, M or G suffixes (powers of 1024); default 16M.\n"
	"                         The largest record is half of it, less 48 bytes.\n"
	"      --policy P         overwrite: the oldest records are overwritten (default);\n"
	"                         backpressure: producers wait for registered consumers\n"
	"      --numa NODE        bind the partitions' memory to a NUMA node\n"
	"      --index-capacity N offset index slots, a power of two, at least 64\n"
	"                         (default capacity/64)\n"
	"      --retention-ms MS  age limit, enforced by shmbusd (default: the ring only)\n"
	"\n"
	"alter adds partitions: --partitions N is the new count, more than the topic\n"
	"has (partitions are never removed).  Its producers and consumers go on;\n"
	"keyed records spread over N partitions from then on, and consumer groups\n"
	"rebalance onto the new ones.  --dry-run checks without changing anything.\n";

enum { OPT_POLICY = OPT_FIRST_PRIVATE, OPT_NUMA, OPT_ICAP, OPT_RETENTION, OPT_DRY_RUN };

/* The one NAME argument left after the options. */
static int one_name(int argc, char **argv, const char *what, const char **ret)
{
	if (optind >= argc)
		return cli_usage_err(usage, "topic %s: which topic?", what);
	if (optind + 1 < argc)
		return cli_usage_err(usage, "topic %s: one topic at a time (\"%s\" is extra)", what,
				     argv[optind + 1]);
	*ret = argv[optind];
	return -1;
}

static int parse_policy(const char *s, enum shmbus_policy *ret)
{
	if (!strcmp(s, "overwrite"))
		*ret = SHMBUS_POLICY_OVERWRITE;
	else if (!strcmp(s, "backpressure"))
		*ret = SHMBUS_POLICY_BACKPRESSURE;
	else
		return cli_usage_err(usage, "--policy is overwrite or backpressure, not \"%s\"", s);
	return -1;
}

/* One option of `topic create` into o: -1 to go on, the exit status after
 * an error, or 0 if c is not one of its options. */
static int create_option(int c, struct shmbus_topic_opts *o)
{
	uint64_t v;

	switch (c) {
	case 'p':
		if (parse_u64("--partitions", optarg, 1, UINT32_MAX, &v) < 0)
			return CLI_EXIT_USAGE;
		o->partitions = (uint32_t)v;
		return -1;
	case 'c':
		if (parse_size("--capacity", optarg, &v) < 0)
			return CLI_EXIT_USAGE;
		if (v == 0)
			return cli_usage_err(usage, "--capacity wants at least 4K");
		o->capacity = v;
		return -1;
	case OPT_ICAP:
		if (parse_u64("--index-capacity", optarg, 64, UINT32_MAX, &v) < 0)
			return CLI_EXIT_USAGE;
		o->index_capacity = v;
		return -1;
	case OPT_POLICY:
		return parse_policy(optarg, &o->policy);
	case OPT_NUMA:
		if (parse_u64("--numa", optarg, 0, 1023, &v) < 0)
			return CLI_EXIT_USAGE;
		o->numa_bind = true;
		o->numa_node = (int)v;
		return -1;
	case OPT_RETENTION:
		if (parse_u64("--retention-ms", optarg, 0, INT64_MAX, &v) < 0)
			return CLI_EXIT_USAGE;
		o->retention_ms = (int64_t)v;
		return -1;
	default:
		return 0;
	}
}

static int topic_create(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "partitions", required_argument, NULL, 'p' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, OPT_POLICY },
		{ "numa", required_argument, NULL, OPT_NUMA },
		{ "index-capacity", required_argument, NULL, OPT_ICAP },
		{ "retention-ms", required_argument, NULL, OPT_RETENTION },
		CLI_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1);
	_cleanup_(bus_closep) shmbus *bus = NULL;
	SHMBUS_OPTS(shmbus_topic_info, info);
	const char *name;
	char cap[32];
	int c, rc;

	while ((c = getopt_long(argc, argv, ":p:c:h", longopts, NULL)) != -1) {
		rc = create_option(c, &o);
		if (rc == 0)
			rc = cli_common_option(cli, c, "topic create", argv, usage);
		if (rc >= 0)
			return rc;
	}
	rc = one_name(argc, argv, "create", &name);
	if (rc >= 0)
		return rc;
	if (cli_open(cli, true, &bus) < 0)
		return CLI_EXIT_FAIL;
	rc = shmbus_topic_create(bus, name, &o);
	if (rc < 0)
		return cli_fail(rc, "cannot create the topic");
	if (shmbus_topic_describe(bus, name, &info) == 0)
		printf("created topic \"%s\": %u partition%s of %s, %s, in %s\n", name,
		       info.partitions, info.partitions == 1 ? "" : "s",
		       fmt_size(cap, sizeof cap, info.capacity), policy_name(info.policy),
		       shmbus_root(bus));
	return 0;
}

static int describe(struct cli *cli, const char *name, shmbus **bus,
		    struct shmbus_topic_info *ret);

static int topic_alter(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "partitions", required_argument, NULL, 'p' },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		CLI_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	SHMBUS_OPTS(shmbus_add_partitions_opts, o);
	_cleanup_(bus_closep) shmbus *bus = NULL;
	SHMBUS_OPTS(shmbus_topic_info, before);
	const char *name;
	uint32_t count = 0;
	uint64_t v;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":p:h", longopts, NULL)) != -1) {
		if (c == 'p') {
			if (parse_u64("--partitions", optarg, 1, UINT32_MAX, &v) < 0)
				return CLI_EXIT_USAGE;
			count = (uint32_t)v;
			continue;
		}
		if (c == OPT_DRY_RUN) {
			o.validate_only = true;
			continue;
		}
		rc = cli_common_option(cli, c, "topic alter", argv, usage);
		if (rc >= 0)
			return rc;
	}
	rc = one_name(argc, argv, "alter", &name);
	if (rc >= 0)
		return rc;
	if (!count)
		return cli_usage_err(usage, "topic alter: how many partitions in all? "
				     "(--partitions N)");
	rc = describe(cli, name, &bus, &before);
	if (rc)
		return rc;
	rc = shmbus_topic_add_partitions(bus, name, count, &o);
	if (rc < 0)
		return cli_fail(rc, "cannot add partitions to the topic");
	if (o.validate_only)
		printf("topic \"%s\" can grow from %u to %u partitions (dry run: nothing changed)\n",
		       name, before.partitions, count);
	else
		printf("topic \"%s\": %u partitions, was %u\n", name, count, before.partitions);
	return 0;
}

static int topic_list(struct cli *cli)
{
	static const char *const heads[] = { "TOPIC", "PARTITIONS", "CAPACITY", "POLICY", "CREATED" };
	_cleanup_(bus_closep) shmbus *bus = NULL;
	_cleanup_(freep) struct shmbus_topic_info *all = NULL;
	_cleanup_(table_freep) struct table t;
	char buf[64];
	int n, rc = cli_open(cli, false, &bus);

	table_init(&t, 5, heads);
	if (rc == -ENOENT) { /* no bus yet: no topics, and why */
		cli_no_bus_note(cli);
		return 0;
	}
	if (rc < 0)
		return CLI_EXIT_FAIL;
	n = shmbus_topic_list(bus, NULL, 0);
	if (n <= 0)
		return n < 0 ? cli_fail(n, "cannot list topics") : 0;
	all = calloc((size_t)n, sizeof *all);
	if (!all)
		return cli_fail(-ENOMEM, "cannot list topics");
	all[0].sz = sizeof *all;
	rc = shmbus_topic_list(bus, all, (size_t)n);
	if (rc < 0)
		return cli_fail(rc, "cannot list topics");
	for (int i = 0; i < n && i < rc; i++) {
		table_cell(&t, "%s", all[i].name);
		table_cell(&t, "%u", all[i].partitions);
		table_cell(&t, "%s", fmt_size(buf, sizeof buf, all[i].capacity));
		table_cell(&t, "%s", policy_name(all[i].policy));
		table_cell(&t, "%s", fmt_time(buf, sizeof buf, all[i].created_ns));
	}
	table_print(&t, stdout);
	return 0;
}

/* A topic's info, with a message naming it (and the fix) if absent. */
static int describe(struct cli *cli, const char *name, shmbus **bus,
		    struct shmbus_topic_info *ret)
{
	int rc = cli_open(cli, false, bus);

	if (rc == -ENOENT)
		return cli_no_bus(cli, name);
	if (rc < 0)
		return CLI_EXIT_FAIL;
	rc = shmbus_topic_describe(*bus, name, ret);
	return rc < 0 ? cli_fail(rc, "cannot describe the topic") : 0;
}

static void print_partitions(shmbus *bus, const struct shmbus_topic_info *ti)
{
	static const char *const heads[] = { "PARTITION", "LOW", "HIGH", "RECORDS", "BYTES" };
	_cleanup_(table_freep) struct table t;

	table_init(&t, 5, heads);
	for (uint32_t p = 0; p < ti->partitions; p++) {
		SHMBUS_OPTS(shmbus_partition_info, pi);
		int rc = shmbus_partition_info(bus, ti->name, p, &pi);

		table_cell(&t, "%u", p);
		if (rc < 0) {
			cli_fail(rc, "cannot read a partition");
			for (int i = 0; i < 4; i++)
				table_cell(&t, "-");
			continue;
		}
		table_cell(&t, "%llu", (unsigned long long)pi.low);
		table_cell(&t, "%llu", (unsigned long long)pi.high);
		table_cell(&t, "%llu", (unsigned long long)(pi.high - pi.low));
		table_cell(&t, "%llu", (unsigned long long)pi.tail);
	}
	table_print(&t, stdout);
}

static int topic_describe(struct cli *cli, const char *name)
{
	_cleanup_(bus_closep) shmbus *bus = NULL;
	SHMBUS_OPTS(shmbus_topic_info, ti);
	char buf[64];
	int rc = describe(cli, name, &bus, &ti);

	if (rc)
		return rc;
	printf("topic:           %s\n", ti.name);
	printf("root:            %s\n", shmbus_root(bus));
	printf("id:              %llu\n", (unsigned long long)ti.id);
	printf("partitions:      %u\n", ti.partitions);
	printf("capacity:        %s per partition (%llu bytes; largest record %llu bytes)\n",
	       fmt_size(buf, sizeof buf, ti.capacity), (unsigned long long)ti.capacity,
	       (unsigned long long)ti.max_record);
	printf("index capacity:  %llu offsets\n", (unsigned long long)ti.index_capacity);
	printf("policy:          %s\n", policy_name(ti.policy));
	if (ti.numa_node < 0)
		printf("numa node:       none (memory local to the creator)\n");
	else
		printf("numa node:       %d\n", ti.numa_node);
	if (ti.retention_ms > 0)
		printf("retention:       %lld ms (enforced by shmbusd)\n", (long long)ti.retention_ms);
	else
		printf("retention:       the ring only\n");
	printf("created:         %s\n", fmt_time(buf, sizeof buf, ti.created_ns));
	printf("\n");
	print_partitions(bus, &ti);
	return 0;
}

static int topic_delete(struct cli *cli, const char *name)
{
	_cleanup_(bus_closep) shmbus *bus = NULL;
	int rc = cli_open(cli, false, &bus);

	if (rc == -ENOENT)
		return cli_no_bus(cli, name);
	if (rc < 0)
		return CLI_EXIT_FAIL;
	/* not describe() first: a half-made topic (its create was killed) has
	 * no entry to describe, and delete removes it */
	rc = shmbus_topic_delete(bus, name);
	if (rc < 0)
		return cli_fail(rc, "cannot delete the topic");
	printf("deleted topic \"%s\"\n", name);
	return 0;
}

/* `topic list|describe|delete`: options are only --root and --help. */
static int topic_simple(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
	const char *verb = argv[0], *name = NULL;
	char cmd[32];
	int c, rc;

	snprintf(cmd, sizeof cmd, "topic %s", verb);
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		rc = cli_common_option(cli, c, cmd, argv, usage);
		if (rc >= 0)
			return rc;
	}
	if (!strcmp(verb, "list")) {
		if (optind < argc)
			return cli_usage_err(usage, "topic list takes no arguments");
		return topic_list(cli);
	}
	rc = one_name(argc, argv, verb, &name);
	if (rc >= 0)
		return rc;
	return !strcmp(verb, "describe") ? topic_describe(cli, name) : topic_delete(cli, name);
}

int cmd_topic(struct cli *cli, int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : NULL;

	opterr = 0;
	if (!verb)
		return cli_usage_err(usage, "topic: create, alter, list, describe or delete?");
	if (!strcmp(verb, "-h") || !strcmp(verb, "--help"))
		return cli_usage(usage, 0);
	if (!strcmp(verb, "create"))
		return topic_create(cli, argc - 1, argv + 1);
	if (!strcmp(verb, "alter"))
		return topic_alter(cli, argc - 1, argv + 1);
	if (!strcmp(verb, "list") || !strcmp(verb, "describe") || !strcmp(verb, "delete"))
		return topic_simple(cli, argc - 1, argv + 1);
	return cli_usage_err(usage, "topic: unknown subcommand \"%s\"; use create, alter, "
			     "list, describe or delete", verb);
}
