/*
 * group.c - `shmbus group list|offsets|delete`: consumer groups' committed
 * offsets, as the group files under <root>/groups hold them.
 *
 * `group offsets` shows each committed offset with the partition's end
 * and the lag between them; commits of topics since deleted are not
 * shown (the library skips them).
 */
#include "cli.h"

#include <errno.h>
#include <string.h>

static const char usage[] =
	"Usage: shmbus group list\n"
	"       shmbus group offsets GROUP\n"
	"       shmbus group delete GROUP\n"
	"\n"
	"  list     the consumer groups of the root\n"
	"  offsets  a group's committed offsets, and its lag on each partition\n"
	"  delete   forget a group's committed offsets\n";

static int print_group(void *ctx, const char *group)
{
	(void)ctx;
	printf("%s\n", group);
	return 0;
}

static int group_list(shmbus *bus)
{
	int rc = shmbus_group_list(bus, print_group, NULL);

	return rc < 0 ? cli_fail(rc, "cannot list the groups") : 0;
}

struct offset_row {
	char topic[256];
	int32_t partition;
	uint64_t offset;
	int64_t commit_ns;
};

struct offset_rows {
	struct offset_row *v;
	size_t n, cap;
};

static int add_row(void *arg, const char *topic, int32_t partition, uint64_t offset,
		   int64_t commit_ns)
{
	struct offset_rows *rows = arg;
	struct offset_row *grown;

	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? 2 * rows->cap : 16;

		grown = realloc(rows->v, cap * sizeof *grown);
		if (!grown)
			return -ENOMEM;
		rows->v = grown;
		rows->cap = cap;
	}
	grown = &rows->v[rows->n++];
	snprintf(grown->topic, sizeof grown->topic, "%s", topic);
	grown->partition = partition;
	grown->offset = offset;
	grown->commit_ns = commit_ns;
	return 0;
}

static int by_topic_partition(const void *a, const void *b)
{
	const struct offset_row *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);

	return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static void offset_cells(shmbus *bus, struct table *t, const struct offset_row *r)
{
	SHMBUS_OPTS(shmbus_partition_info, pi);
	char when[64];

	table_cell(t, "%s", r->topic);
	table_cell(t, "%d", (int)r->partition);
	table_cell(t, "%llu", (unsigned long long)r->offset);
	if (shmbus_partition_info(bus, r->topic, (uint32_t)r->partition, &pi) == 0) {
		table_cell(t, "%llu", (unsigned long long)pi.high);
		table_cell(t, "%llu",
			   (unsigned long long)(pi.high > r->offset ? pi.high - r->offset : 0));
	} else { /* deleted meanwhile */
		cli_err_forget();
		table_cell(t, "-");
		table_cell(t, "-");
	}
	table_cell(t, "%s", fmt_time(when, sizeof when, r->commit_ns));
}

static int group_offsets(shmbus *bus, const char *group)
{
	static const char *const heads[] = {
		"TOPIC", "PARTITION", "COMMITTED", "HIGH", "LAG", "COMMITTED AT",
	};
	_cleanup_(table_freep) struct table t;
	struct offset_rows rows = { 0 };
	int rc;

	table_init(&t, 6, heads);
	rc = shmbus_group_offsets(bus, group, add_row, &rows);
	if (rc < 0) {
		free(rows.v);
		return cli_fail(rc, "cannot read the group's offsets");
	}
	if (rows.n)
		qsort(rows.v, rows.n, sizeof *rows.v, by_topic_partition);
	for (size_t i = 0; i < rows.n; i++)
		offset_cells(bus, &t, &rows.v[i]);
	table_print(&t, stdout);
	free(rows.v);
	return 0;
}

static int group_delete(shmbus *bus, const char *group)
{
	int rc = shmbus_group_delete(bus, group);

	if (rc < 0)
		return cli_fail(rc, "cannot delete the group");
	printf("deleted group \"%s\"\n", group);
	return 0;
}

/* The arguments after the verb: none for list, one GROUP otherwise. */
static int check_args(int argc, char **argv, const char *verb, const char **group)
{
	int want = strcmp(verb, "list") ? 1 : 0;

	if (argc - optind < want)
		return cli_usage_err(usage, "group %s: which group?", verb);
	if (argc - optind > want)
		return cli_usage_err(usage, "group %s: \"%s\" is extra", verb, argv[optind + want]);
	*group = want ? argv[optind] : NULL;
	return -1;
}

int cmd_group(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
	_cleanup_(bus_closep) shmbus *bus = NULL;
	const char *verb = argc > 1 ? argv[1] : "", *group = NULL;
	char cmd[32];
	int c, rc;

	opterr = 0;
	if (!strcmp(verb, "-h") || !strcmp(verb, "--help"))
		return cli_usage(usage, 0);
	if (strcmp(verb, "list") && strcmp(verb, "offsets") && strcmp(verb, "delete"))
		return cli_usage_err(usage, "group: list, offsets or delete%s%s%s?",
				     *verb ? ", not \"" : "", verb, *verb ? "\"" : "");
	snprintf(cmd, sizeof cmd, "group %s", verb);
	argc--, argv++;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		rc = cli_common_option(cli, c, cmd, argv, usage);
		if (rc >= 0)
			return rc;
	}
	rc = check_args(argc, argv, verb, &group);
	if (rc >= 0)
		return rc;
	rc = cli_open(cli, false, &bus);
	if (rc == -ENOENT) { /* no bus yet: no groups */
		if (group)
			cli_err("group \"%s\" does not exist:", group);
		cli_no_bus_note(cli);
		return group ? CLI_EXIT_FAIL : 0;
	}
	if (rc < 0)
		return CLI_EXIT_FAIL;
	if (!group)
		return group_list(bus);
	return !strcmp(verb, "offsets") ? group_offsets(bus, group) : group_delete(bus, group);
}
