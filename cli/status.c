/*
 * status.c - `shmbus status`: is a daemon serving the root, how is it,
 * and what the root holds.
 *
 * Everything comes from shared memory through shmbus_daemon_counters()
 * (the bus file's daemon block and the counters file, format.md §12), so
 * the command answers the same way whether the daemon runs, stopped, or
 * was killed: a daemon that is gone, or that no longer ticks, is said to
 * be so, and its last counters are shown as stale.  Then the topics.
 * The exit status is 0, or 1 if the counters file is damaged (said on
 * stderr, with the fix; the topics are still shown).
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char usage[] =
	"Usage: shmbus status\n"
	"\n"
	"Whether a daemon (shmbusd) serves the bus root: its pid, version, uptime,\n"
	"heartbeat, control socket and metrics endpoint; its health (start-up\n"
	"recovery, stalled claims it unblocked, flush errors, registered clients);\n"
	"then the root's topics.  Works without a daemon: the counters it left are\n"
	"shown as stale.\n";

#define LABEL "%-11s"

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "3d 4h 5m 6s", leading zero units left out. */
static const char *fmt_duration(char *buf, size_t len, int64_t ns)
{
	long long s = ns > 0 ? ns / 1000000000 : 0;

	if (s >= 86400)
		snprintf(buf, len, "%lldd %lldh %lldm %llds", s / 86400, s / 3600 % 24, s / 60 % 60,
			 s % 60);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh %lldm %llds", s / 3600, s / 60 % 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%lldm %llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%.2f s", ns > 0 ? (double)ns / 1e9 : 0.0);
	return buf;
}

static void no_daemon_line(const char *root)
{
	printf(LABEL "no daemon serves %s; start one with `shmbusd --root %s`\n", "daemon", root,
	       root);
}

/* The daemon line(s); returns whether its counters are current. */
static bool print_daemon(const char *root, const struct shmbus_daemon_counters *c)
{
	char since[64], up[32], beat[32];
	int64_t now = now_ns();

	fmt_time(since, sizeof since, c->started_ns);
	fmt_duration(up, sizeof up, now - c->started_ns);
	fmt_duration(beat, sizeof beat, now - c->heartbeat_ns);
	switch (c->state) {
	case SHMBUS_DAEMON_RUNNING:
		printf(LABEL "running: shmbusd %s, pid %d, up %s (since %s)\n", "daemon",
		       c->version[0] ? c->version : "(version unknown)", (int)c->pid,
		       c->started_ns ? up : "?", since);
		printf(LABEL "%s ago (a tick every %lld ms; %llu ticks)\n", "heartbeat", beat,
		       (long long)(c->tick_ns / 1000000), (unsigned long long)c->stats.ticks);
		return true;
	case SHMBUS_DAEMON_STALLED:
		printf(LABEL "stalled: shmbusd pid %d runs but has not ticked for %s (heartbeat "
		       "stale); its counters below are stale\n", "daemon", (int)c->pid, beat);
		return false;
	case SHMBUS_DAEMON_STOPPED:
		no_daemon_line(root);
		printf(LABEL "shmbusd %s, pid %d, stopped cleanly; counters as of its last "
		       "heartbeat %s ago (stale)\n", "last", c->version, (int)c->pid, beat);
		return false;
	case SHMBUS_DAEMON_DIED:
		no_daemon_line(root);
		printf(LABEL "shmbusd pid %d died without stopping (killed or crashed); last "
		       "heartbeat %s ago (stale)\n", "last", (int)c->pid, beat);
		return false;
	default:
		no_daemon_line(root);
		return false;
	}
}

static void print_health(const struct shmbus_daemon_counters *c, bool fresh)
{
	const struct shmbus_daemon_stats *s = &c->stats;
	bool gone = c->state == SHMBUS_DAEMON_STOPPED || c->state == SHMBUS_DAEMON_DIED;
	const char *stale = fresh ? "" : " (stale)";

	printf(LABEL "%s%s\n", "control", c->control_socket[0] ? c->control_socket : "(none)",
	       gone && c->control_socket[0] ? " (nobody answers: the daemon is gone)" : "");
	if (c->metrics[0])
		printf(LABEL "http://%s/metrics%s\n", "metrics", c->metrics,
		       gone ? " (nobody answers: the daemon is gone)" : "");
	else if (c->has_counters)
		printf(LABEL "(off; shmbusd --metrics ADDR:PORT serves them)\n", "metrics");
	if (!c->has_counters)
		return;
	printf(LABEL "%s: %llu flush error%s, %llu stalled claim%s unblocked (%llu offsets), "
	       "%llu control request%s (%llu refused)%s\n", "health",
	       s->flush_errors || s->recovery.failed ? "trouble" : "ok",
	       (unsigned long long)s->flush_errors, s->flush_errors == 1 ? "" : "s",
	       (unsigned long long)s->unblocked, s->unblocked == 1 ? "" : "s",
	       (unsigned long long)s->unblocked_offsets, (unsigned long long)s->control_requests,
	       s->control_requests == 1 ? "" : "s", (unsigned long long)s->control_errors, stale);
	printf(LABEL "%llu registered, %llu gone%s\n", "clients", (unsigned long long)c->clients,
	       (unsigned long long)s->clients_gone, stale);
	printf(LABEL "%llu partition%s at start-up: %llu recovered, %llu in use, %llu failed; "
	       "%llu records checked, %llu dead claims aborted, %llu offsets (%llu bytes) cut, "
	       "%llu rebuilt\n", "recovery", (unsigned long long)s->recovery.partitions,
	       s->recovery.partitions == 1 ? "" : "s", (unsigned long long)s->recovery.recovered,
	       (unsigned long long)s->recovery.in_use, (unsigned long long)s->recovery.failed,
	       (unsigned long long)s->recovery.frames, (unsigned long long)s->recovery.aborted,
	       (unsigned long long)s->recovery.cut, (unsigned long long)s->recovery.cut_bytes,
	       (unsigned long long)s->recovery.rebuilt);
}

static int print_topics(shmbus *bus, const struct shmbus_daemon_counters *c, bool fresh)
{
	static const char *const heads[] = { "TOPIC", "PARTITIONS", "CAPACITY", "POLICY" };
	_cleanup_(freep) struct shmbus_topic_info *tis = NULL;
	_cleanup_(table_freep) struct table t;
	int n = shmbus_topic_list(bus, NULL, 0);
	uint64_t parts = 0;
	char cap[32];

	table_init(&t, 4, heads);
	if (n < 0)
		return cli_fail(n, "cannot list topics");
	tis = calloc(n ? (size_t)n : 1, sizeof *tis);
	if (!tis)
		return cli_fail(-ENOMEM, "status");
	tis[0].sz = sizeof *tis;
	n = shmbus_topic_list(bus, tis, (size_t)n);
	if (n < 0)
		return cli_fail(n, "cannot list topics");
	for (int i = 0; i < n; i++) {
		parts += tis[i].partitions;
		table_cell(&t, "%s", tis[i].name);
		table_cell(&t, "%u", tis[i].partitions);
		table_cell(&t, "%s", fmt_size(cap, sizeof cap, tis[i].capacity));
		table_cell(&t, "%s", policy_name(tis[i].policy));
	}
	printf(LABEL "%d topic%s, %llu partition%s", "topics", n, n == 1 ? "" : "s",
	       (unsigned long long)parts, parts == 1 ? "" : "s");
	if (fresh)
		printf(" (%llu supervised)", (unsigned long long)c->partitions);
	printf("\n");
	if (t.nrows) {
		printf("\n");
		table_print(&t, stdout);
	}
	return 0;
}

static int show(shmbus *bus)
{
	SHMBUS_OPTS(shmbus_daemon_counters, c);
	const char *root = shmbus_root(bus);
	bool fresh;
	int rc = shmbus_daemon_counters(bus, &c);

	printf(LABEL "%s\n", "root", root);
	if (rc < 0) {
		/* a damaged counters file: say so, and still show the topics */
		cli_fail(rc, "cannot read the daemon's counters");
		no_daemon_line(root);
		print_topics(bus, &c, false);
		return CLI_EXIT_FAIL;
	}
	fresh = print_daemon(root, &c);
	if (c.state != SHMBUS_DAEMON_NONE)
		print_health(&c, fresh);
	return print_topics(bus, &c, fresh);
}

/* No bus at the root yet: nothing serves it and nothing is in it. */
static int show_empty(const struct cli *cli)
{
	char root[PATH_MAX];
	const char *origin;
	struct stat st;

	cli_root(cli, root, sizeof root, &origin);
	printf(LABEL "%s (%s; `shmbus topic create NAME` makes it)\n", "root", root,
	       stat(root, &st) < 0 && errno == ENOENT ? "does not exist" : "no bus yet");
	no_daemon_line(root);
	printf(LABEL "0 topics, 0 partitions\n", "topics");
	return 0;
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
	_cleanup_(bus_closep) shmbus *bus = NULL;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		rc = cli_common_option(cli, c, "status", argv, usage);
		if (rc >= 0)
			return rc;
	}
	if (optind < argc)
		return cli_usage_err(usage, "status takes no arguments (\"%s\" is extra)",
				     argv[optind]);
	rc = cli_open(cli, false, &bus);
	if (rc == -ENOENT)
		return show_empty(cli);
	if (rc < 0)
		return CLI_EXIT_FAIL;
	return show(bus);
}
