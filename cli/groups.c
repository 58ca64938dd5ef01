/*
 * groups.c - `shmbus groups list|describe|reset-offsets|delete`: consumer
 * groups as shmbusd coordinates them (state, assignor, epoch, members)
 * joined with their committed offsets and the partitions' ends
 * (shmbus_group_describe).  `list` and `describe` also speak --json.
 * Resets and deletes are refused by shmbusd while a group has members.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
	"Usage: shmbus groups list [--json]\n"
	"       shmbus groups describe GROUP [--json]\n"
	"       shmbus groups reset-offsets GROUP --topic TOPIC (--to-earliest | --to-latest |\n"
	"                     --to-offset N | --to-datetime ISO8601 | --shift-by N) [--dry-run]\n"
	"       shmbus groups delete GROUP\n"
	"\n"
	"  list           every group: state, members, assignor and epoch\n"
	"  describe       a group's state, members (pid, host, instance id) and partitions\n"
	"                 (owner, committed offset, end offset, lag)\n"
	"  reset-offsets  set the committed offsets of a topic's partitions (refused while\n"
	"                 the group has members); --dry-run shows them only\n"
	"  delete         forget a group (refused while it has members)\n"
	"  --json         print JSON instead of a table\n"
	"  --to-datetime  e.g. 2026-12-02T10:00:00Z or 2026-12-02T11:00:00+01:00\n";

enum { OPT_JSON = OPT_FIRST_PRIVATE, OPT_TOPIC, OPT_EARLIEST, OPT_LATEST, OPT_OFFSET,
       OPT_DATETIME, OPT_SHIFT, OPT_DRY };

struct groups_run {
	const char *verb, *group, *topic;
	bool json, dry_run, have_to;
	enum shmbus_reset_to to;
	int64_t value;
	int rows;                   /* printed, for JSON commas */
};

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* ------------------------------------------------------------------ */
/* list                                                                */

struct list_ctx {
	struct groups_run *g;
	shmbus *bus;
	struct table *t;
};

static int list_row(void *arg, const char *group)
{
	struct list_ctx *lc = arg;
	struct shmbus_group_desc d = { .sz = sizeof d };

	if (shmbus_group_describe(lc->bus, group, &d, NULL, NULL, NULL) < 0) {
		cli_err_forget();
		snprintf(d.state, sizeof d.state, "?");
	}
	if (lc->g->json) {
		printf("%s{\"group\":", lc->g->rows++ ? ",\n " : "");
		json_str(group);
		printf(",\"state\":");
		json_str(d.state);
		printf(",\"members\":%u,\"assignor\":", d.members);
		json_str(d.assignor);
		printf(",\"epoch\":%llu}", (unsigned long long)d.epoch);
		return 0;
	}
	table_cell(lc->t, "%s", group);
	table_cell(lc->t, "%s", d.state);
	table_cell(lc->t, "%u", d.members);
	table_cell(lc->t, "%s", d.assignor[0] ? d.assignor : "-");
	table_cell(lc->t, "%llu", (unsigned long long)d.epoch);
	return 0;
}

static int groups_list(shmbus *bus, struct groups_run *g)
{
	static const char *const heads[] = { "GROUP", "STATE", "MEMBERS", "ASSIGNOR", "EPOCH" };
	_cleanup_(table_freep) struct table t;
	struct list_ctx lc = { g, bus, &t };
	int rc;

	table_init(&t, 5, heads);
	if (g->json)
		printf("[");
	rc = shmbus_group_list(bus, list_row, &lc);
	if (rc < 0)
		return cli_fail(rc, "cannot list the groups");
	if (g->json)
		printf("]\n");
	else
		table_print(&t, stdout);
	return 0;
}

/* ------------------------------------------------------------------ */
/* describe                                                            */

struct describe_ctx {
	struct groups_run *g;
	struct table members, parts;
	int nm, np;
};

static int member_row(void *arg, const struct shmbus_group_member *m)
{
	struct describe_ctx *dc = arg;

	if (dc->g->json) {
		printf("%s{\"member_id\":%llu,\"pid\":%d,\"host\":", dc->nm++ ? "," : "",
		       (unsigned long long)m->member_id, (int)m->pid);
		json_str(m->host);
		printf(",\"instance_id\":");
		json_str(m->instance_id);
		printf(",\"member_epoch\":%llu,\"subscription\":", (unsigned long long)m->member_epoch);
		json_str(m->subscription);
		printf(",\"alive\":%s}", m->alive ? "true" : "false");
		return 0;
	}
	table_cell(&dc->members, "%llu", (unsigned long long)m->member_id);
	table_cell(&dc->members, "%d", (int)m->pid);
	table_cell(&dc->members, "%s", m->host[0] ? m->host : "-");
	table_cell(&dc->members, "%s", m->instance_id[0] ? m->instance_id : "-");
	table_cell(&dc->members, "%llu", (unsigned long long)m->member_epoch);
	table_cell(&dc->members, "%s", m->subscription);
	table_cell(&dc->members, "%s", m->alive ? "alive" : "gone (static)");
	return 0;
}

static int part_row(void *arg, const struct shmbus_group_partition *p)
{
	struct describe_ctx *dc = arg;

	if (dc->g->json) {
		printf("%s{\"topic\":", dc->np++ ? "," : "");
		json_str(p->topic);
		printf(",\"partition\":%d,\"owner\":%llu,\"committed\":", (int)p->partition,
		       (unsigned long long)p->owner);
		if (p->committed_valid)
			printf("%llu", (unsigned long long)p->committed);
		else
			printf("null");
		printf(",\"end\":%llu,\"lag\":%llu}", (unsigned long long)p->end,
		       (unsigned long long)p->lag);
		return 0;
	}
	table_cell(&dc->parts, "%s", p->topic);
	table_cell(&dc->parts, "%d", (int)p->partition);
	if (p->owner)
		table_cell(&dc->parts, "%llu", (unsigned long long)p->owner);
	else
		table_cell(&dc->parts, "-");
	if (p->committed_valid)
		table_cell(&dc->parts, "%llu", (unsigned long long)p->committed);
	else
		table_cell(&dc->parts, "-");
	table_cell(&dc->parts, "%llu", (unsigned long long)p->end);
	table_cell(&dc->parts, "%llu", (unsigned long long)p->lag);
	return 0;
}

static void describe_head(const struct groups_run *g, const struct shmbus_group_desc *d)
{
	if (g->json) {
		printf("{\"group\":");
		json_str(g->group);
		printf(",\"state\":");
		json_str(d->state);
		printf(",\"assignor\":");
		json_str(d->assignor);
		printf(",\"epoch\":%llu,\"rebalances\":%llu,\"session_timeout_ms\":%lld,"
		       "\"max_poll_interval_ms\":%lld,", (unsigned long long)d->epoch,
		       (unsigned long long)d->rebalances, (long long)d->session_timeout_ms,
		       (long long)d->max_poll_interval_ms);
		return;
	}
	printf("group %s: %s, %u member%s, assignor %s, epoch %llu, %llu rebalances", g->group,
	       d->state, d->members, d->members == 1 ? "" : "s", d->assignor[0] ? d->assignor : "-",
	       (unsigned long long)d->epoch, (unsigned long long)d->rebalances);
	if (d->session_timeout_ms)
		printf(", session timeout %lld ms, max poll interval %lld ms",
		       (long long)d->session_timeout_ms, (long long)d->max_poll_interval_ms);
	printf("\n");
}

static int groups_describe(shmbus *bus, struct groups_run *g)
{
	static const char *const mh[] = { "MEMBER", "PID", "HOST", "INSTANCE", "EPOCH",
					   "SUBSCRIPTION", "STATE" };
	static const char *const ph[] = { "TOPIC", "PARTITION", "OWNER", "COMMITTED", "END",
					  "LAG" };
	struct shmbus_group_desc d = { .sz = sizeof d };
	struct describe_ctx dc = { .g = g };
	int rc;

	/* first for the head (state, member count), then once more to print */
	rc = shmbus_group_describe(bus, g->group, &d, NULL, NULL, NULL);
	if (rc < 0)
		return cli_fail(rc, "cannot describe the group");
	table_init(&dc.members, 7, mh);
	table_init(&dc.parts, 6, ph);
	describe_head(g, &d);
	if (g->json)
		printf("\"members\":[");
	rc = shmbus_group_describe(bus, g->group, &d, member_row, NULL, &dc);
	if (g->json)
		printf("],\"partitions\":[");
	if (rc == 0)
		rc = shmbus_group_describe(bus, g->group, &d, NULL, part_row, &dc);
	if (g->json) {
		printf("]}\n");
	} else if (rc == 0) {
		printf("\n");
		table_print(&dc.members, stdout);
		printf("\n");
		table_print(&dc.parts, stdout);
	}
	table_free(&dc.members);
	table_free(&dc.parts);
	return rc < 0 ? cli_fail(rc, "cannot describe the group") : 0;
}

/* ------------------------------------------------------------------ */
/* reset-offsets, delete                                               */

static int reset_row(void *ctx, const char *topic, int32_t partition, bool had, uint64_t from,
		     uint64_t to)
{
	struct table *t = ctx;

	table_cell(t, "%s", topic);
	table_cell(t, "%d", (int)partition);
	if (had)
		table_cell(t, "%llu", (unsigned long long)from);
	else
		table_cell(t, "-");
	table_cell(t, "%llu", (unsigned long long)to);
	return 0;
}

static int groups_reset(shmbus *bus, struct groups_run *g)
{
	static const char *const heads[] = { "TOPIC", "PARTITION", "FROM", "TO" };
	_cleanup_(table_freep) struct table t;
	SHMBUS_OPTS(shmbus_group_reset_opts, o, .topic = g->topic, .to = g->to, .value = g->value,
		    .dry_run = g->dry_run, .fn = reset_row);
	int rc;

	table_init(&t, 4, heads);
	o.ctx = &t;
	rc = shmbus_group_reset_offsets(bus, g->group, &o);
	if (rc < 0)
		return cli_fail(rc, "cannot reset the group's offsets");
	table_print(&t, stdout);
	printf("%s\n", g->dry_run ? "(dry run: nothing was written)" : "reset");
	return 0;
}

static int groups_delete(shmbus *bus, struct groups_run *g)
{
	int rc = shmbus_group_delete(bus, g->group);

	if (rc < 0)
		return cli_fail(rc, "cannot delete the group");
	printf("deleted group \"%s\"\n", g->group);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The command line                                                    */

/* "2026-12-02T10:00:00Z", with optional .fraction and +hh:mm: ns since the epoch. */
static int parse_datetime(const char *s, int64_t *ret)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int64_t ns = 0, scale = 100000000, off = 0;
	int hh, mm;

	if (!p)
		return -EINVAL;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ns += (*p - '0') * scale;
	if (*p == 'Z' && !p[1]) {
		off = 0;
	} else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2 &&
		   strlen(p) == 6) {
		off = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
	} else {
		return -EINVAL;
	}
	*ret = ((int64_t)timegm(&tm) - off) * 1000000000 + ns;
	return 0;
}

static int set_to(struct groups_run *g, enum shmbus_reset_to to)
{
	if (g->have_to)
		return cli_usage_err(usage, "groups reset-offsets: one of --to-earliest, "
				     "--to-latest, --to-offset, --to-datetime, --shift-by");
	g->have_to = true;
	g->to = to;
	return -1;
}

static int one_option(struct cli *cli, struct groups_run *g, int c, char **argv,
		      const char *cmd)
{
	uint64_t v;

	switch (c) {
	case OPT_JSON: g->json = true; return -1;
	case OPT_TOPIC: g->topic = optarg; return -1;
	case OPT_DRY: g->dry_run = true; return -1;
	case OPT_EARLIEST: return set_to(g, SHMBUS_RESET_TO_EARLIEST);
	case OPT_LATEST: return set_to(g, SHMBUS_RESET_TO_LATEST);
	case OPT_OFFSET:
		if (parse_u64("--to-offset", optarg, 0, INT64_MAX, &v) < 0)
			return CLI_EXIT_USAGE;
		g->value = (int64_t)v;
		return set_to(g, SHMBUS_RESET_TO_OFFSET);
	case OPT_SHIFT: {
		char *end;

		errno = 0;
		g->value = strtoll(optarg, &end, 10);
		if (errno || end == optarg || *end)
			return cli_usage_err(usage, "--shift-by takes a whole number (negative "
					     "goes back), not \"%s\"", optarg);
		return set_to(g, SHMBUS_RESET_SHIFT_BY);
	}
	case OPT_DATETIME:
		if (parse_datetime(optarg, &g->value) < 0)
			return cli_usage_err(usage, "--to-datetime takes ISO 8601, e.g. "
					     "2026-12-02T10:00:00Z, not \"%s\"", optarg);
		return set_to(g, SHMBUS_RESET_TO_DATETIME);
	default:
		return cli_common_option(cli, c, cmd, argv, usage);
	}
}

/* Which options go with which verb, and the GROUP argument. */
static int check(struct groups_run *g, int argc, char **argv)
{
	bool list = !strcmp(g->verb, "list"), reset = !strcmp(g->verb, "reset-offsets");
	int want = list ? 0 : 1;

	if (argc - optind < want)
		return cli_usage_err(usage, "groups %s: which group?", g->verb);
	if (argc - optind > want)
		return cli_usage_err(usage, "groups %s: \"%s\" is extra", g->verb,
				     argv[optind + want]);
	g->group = want ? argv[optind] : NULL;
	if (g->json && !list && strcmp(g->verb, "describe"))
		return cli_usage_err(usage, "groups %s: --json is for list and describe", g->verb);
	if (!reset && (g->topic || g->have_to || g->dry_run))
		return cli_usage_err(usage, "groups %s: --topic, --to-* and --dry-run are for "
				     "reset-offsets", g->verb);
	if (reset && (!g->topic || !g->have_to))
		return cli_usage_err(usage, "groups reset-offsets: needs --topic TOPIC and one of "
				     "--to-earliest, --to-latest, --to-offset, --to-datetime, "
				     "--shift-by");
	return -1;
}

static int parse(struct cli *cli, struct groups_run *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ "topic", required_argument, NULL, OPT_TOPIC },
		{ "to-earliest", no_argument, NULL, OPT_EARLIEST },
		{ "to-latest", no_argument, NULL, OPT_LATEST },
		{ "to-offset", required_argument, NULL, OPT_OFFSET },
		{ "to-datetime", required_argument, NULL, OPT_DATETIME },
		{ "shift-by", required_argument, NULL, OPT_SHIFT },
		{ "dry-run", no_argument, NULL, OPT_DRY },
		{ NULL, 0, NULL, 0 },
	};
	char cmd[48];
	int c, rc;

	snprintf(cmd, sizeof cmd, "groups %s", g->verb);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		rc = one_option(cli, g, c, argv, cmd);
		if (rc >= 0)
			return rc;
	}
	return check(g, argc, argv);
}

int cmd_groups(struct cli *cli, int argc, char **argv)
{
	static const char *const verbs[] = { "list", "describe", "reset-offsets", "delete" };
	_cleanup_(bus_closep) shmbus *bus = NULL;
	struct groups_run g = { .verb = argc > 1 ? argv[1] : "" };
	size_t v;
	int rc;

	if (!strcmp(g.verb, "-h") || !strcmp(g.verb, "--help"))
		return cli_usage(usage, 0);
	for (v = 0; v < 4 && strcmp(g.verb, verbs[v]); v++)
		;
	if (v == 4)
		return cli_usage_err(usage, "groups: list, describe, reset-offsets or delete%s%s%s?",
				     *g.verb ? ", not \"" : "", g.verb, *g.verb ? "\"" : "");
	rc = parse(cli, &g, argc - 1, argv + 1);
	if (rc >= 0)
		return rc;
	rc = cli_open(cli, false, &bus);
	if (rc == -ENOENT) {
		if (g.group)
			cli_err("unknown group \"%s\":", g.group);
		cli_no_bus_note(cli);
		if (!g.group && g.json)
			printf("[]\n");
		return g.group ? CLI_EXIT_FAIL : 0;
	}
	if (rc < 0)
		return CLI_EXIT_FAIL;
	switch (v) {
	case 0: return groups_list(bus, &g);
	case 1: return groups_describe(bus, &g);
	case 2: return groups_reset(bus, &g);
	default: return groups_delete(bus, &g);
	}
}
