/*
 * mirror.c - `shmbus mirror status [--json]`: what the daemon serving the
 * root mirrors from other hosts, one row per partition (source, the
 * replica's end and the source's, the lag in records and milliseconds,
 * state, reconnects, gaps, how the link is encrypted, last error), then
 * the mirrors that follow this host's partitions as the daemon's
 * [mirror-listen] sees them (the end each acknowledged, its lag, the
 * mirrored offset), asked through the control socket (MIRROR_STATUS,
 * docs/protocol.md §9); and `shmbus mirror promote TOPIC`: a replica made
 * writable after its source is lost (MIRROR_PROMOTE, §10).
 */
#include "cli.h"

#include <errno.h>
#include <string.h>

static const char usage[] =
	"Usage: shmbus mirror status [--json]\n"
	"       shmbus mirror promote TOPIC\n"
	"\n"
	"  status   each partition this root's shmbusd mirrors from another host\n"
	"           ([mirror \"NAME\"] in shmbusd.conf): its source, the replica's end\n"
	"           offset and the source's, the lag in records and in milliseconds (how\n"
	"           long ago the replica last held all the source had), the state,\n"
	"           reconnects, gaps recorded, TLS (off, user-space, or kTLS in the\n"
	"           kernel), and the last error; then each mirror following a partition\n"
	"           of this host ([mirror-listen]): its host and address, the end it\n"
	"           acknowledged, its lag, the partition's mirrored offset (held by\n"
	"           min_mirrors mirrors), the age of its last ACK; and the mirrors\n"
	"           that disconnected lately, with why\n"
	"  promote  make replica TOPIC writable here after its source is lost: the\n"
	"           mirror stops following it, each partition goes on from its end\n"
	"           under a new epoch, and local producers may append.  An operator's\n"
	"           decision (no quorum, no election): the old source must come back\n"
	"           as a mirror of this host, and then cuts what it had past the\n"
	"           promotion (docs/operations.md)\n"
	"\n"
	"Options:\n"
	"  --json   {\"mirrors\": [one object per partition mirrored here],\n"
	"            \"followers\": [one object per mirror following a partition here]}\n";

enum { OPT_JSON = OPT_FIRST_PRIVATE };

#define MIRRORS_MAX 4096

static void json_str(const char *key, const char *s, bool comma)
{
	printf("\"%s\":\"", key);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	printf("\"%s", comma ? "," : "");
}

static void print_json(const struct shmbus_mirror_status *m, int n)
{
	printf("{\"mirrors\":[");
	for (int i = 0; i < n; i++) {
		printf("%s{", i ? ",\n " : "");
		json_str("mirror", m[i].mirror, true);
		json_str("source", m[i].source, true);
		json_str("topic", m[i].topic, true);
		printf("\"partition\":%d,\"end\":%llu,\"source_end\":%llu,\"lag\":%llu,",
		       (int)m[i].partition, (unsigned long long)m[i].end,
		       (unsigned long long)m[i].source_end, (unsigned long long)m[i].lag);
		json_str("state", m[i].state, true);
		printf("\"reconnects\":%llu,\"gaps\":%llu,", (unsigned long long)m[i].reconnects,
		       (unsigned long long)m[i].gaps);
		json_str("tls", m[i].tls, true);
		printf("\"lag_ms\":%llu,\"gap_offsets\":%llu,\"bytes\":%llu,\"records\":%llu,",
		       (unsigned long long)m[i].lag_ms, (unsigned long long)m[i].gap_offsets,
		       (unsigned long long)m[i].bytes, (unsigned long long)m[i].records);
		printf("\"epoch\":\"%016llx\",\"cut\":%llu,\"recreated\":%llu,",
		       (unsigned long long)m[i].epoch, (unsigned long long)m[i].cut,
		       (unsigned long long)m[i].recreated);
		json_str("id", m[i].id, true);
		json_str("source_id", m[i].source_id, true);
		json_str("last_error", m[i].last_error, false);
		printf("}");
	}
	printf("],\n");
}

static void print_followers_json(const struct shmbus_mirror_follower *f, int n)
{
	printf("\"followers\":[");
	for (int i = 0; i < n; i++) {
		printf("%s{", i ? ",\n " : "");
		json_str("host", f[i].host, true);
		json_str("peer", f[i].peer, true);
		json_str("id", f[i].id, true);
		json_str("cert", f[i].cert, true);
		json_str("topic", f[i].topic, true);
		printf("\"partition\":%d,\"acked\":%llu,\"sent\":%llu,\"end\":%llu,\"lag\":%llu,"
		       "\"mirrored\":%llu,\"ack_age_ms\":%lld,", (int)f[i].partition,
		       (unsigned long long)f[i].acked, (unsigned long long)f[i].sent,
		       (unsigned long long)f[i].end, (unsigned long long)f[i].lag,
		       (unsigned long long)f[i].mirrored, (long long)f[i].ack_age_ms);
		json_str("state", f[i].state, true);
		json_str("last_error", f[i].last_error, false);
		printf("}");
	}
	printf("]}\n");
}

static void print_followers(const struct shmbus_mirror_follower *f, int n)
{
	static const char *const heads[] = { "MIRROR-HOST", "PEER", "MIRROR-ID", "TOPIC",
					     "PARTITION", "ACKED", "END", "LAG", "MIRRORED",
					     "LAST-ACK-MS", "STATE", "LAST-ERROR", NULL };
	_cleanup_(table_freep) struct table t;

	table_init(&t, 12, heads);
	for (int i = 0; i < n; i++) {
		bool gone = f[i].partition < 0;

		table_cell(&t, "%s", f[i].host);
		table_cell(&t, "%s", f[i].peer);
		/* the id, or "-" for a mirror of protocol version 2 */
		table_cell(&t, "%s", f[i].id[0] ? f[i].id : "-");
		table_cell(&t, "%s", gone ? "-" : f[i].topic);
		if (gone) {
			for (int k = 0; k < 5; k++)
				table_cell(&t, "-");
		} else {
			table_cell(&t, "%d", (int)f[i].partition);
			table_cell(&t, "%llu", (unsigned long long)f[i].acked);
			table_cell(&t, "%llu", (unsigned long long)f[i].end);
			table_cell(&t, "%llu", (unsigned long long)f[i].lag);
			table_cell(&t, "%llu", (unsigned long long)f[i].mirrored);
		}
		table_cell(&t, "%lld", (long long)f[i].ack_age_ms);
		table_cell(&t, "%s", f[i].state);
		table_cell(&t, "%s", f[i].last_error[0] ? f[i].last_error : "-");
	}
	table_print(&t, stdout);
}

static void print_table(const struct shmbus_mirror_status *m, int n)
{
	static const char *const heads[] = { "MIRROR", "SOURCE", "TOPIC", "PARTITION", "END",
					     "SOURCE-END", "LAG", "LAG-MS", "STATE", "RECONNECTS",
					     "GAPS", "TLS", "LAST-ERROR", NULL };
	_cleanup_(table_freep) struct table t;

	table_init(&t, 13, heads);
	for (int i = 0; i < n; i++) {
		table_cell(&t, "%s", m[i].mirror);
		table_cell(&t, "%s", m[i].source);
		table_cell(&t, "%s", m[i].topic[0] ? m[i].topic : "-");
		if (m[i].partition >= 0)
			table_cell(&t, "%d", (int)m[i].partition);
		else
			table_cell(&t, "-");
		table_cell(&t, "%llu", (unsigned long long)m[i].end);
		table_cell(&t, "%llu", (unsigned long long)m[i].source_end);
		table_cell(&t, "%llu", (unsigned long long)m[i].lag);
		table_cell(&t, "%llu", (unsigned long long)m[i].lag_ms);
		table_cell(&t, "%s", m[i].state);
		table_cell(&t, "%llu", (unsigned long long)m[i].reconnects);
		table_cell(&t, "%llu", (unsigned long long)m[i].gaps);
		table_cell(&t, "%s", m[i].tls[0] ? m[i].tls : "-");
		table_cell(&t, "%s", m[i].last_error[0] ? m[i].last_error : "-");
	}
	table_print(&t, stdout);
}

static int mirror_status(struct cli *cli, bool json)
{
	_cleanup_(bus_closep) shmbus *bus = NULL;
	_cleanup_(freep) struct shmbus_mirror_status *m = calloc(MIRRORS_MAX, sizeof *m);
	_cleanup_(freep) struct shmbus_mirror_follower *f = calloc(MIRRORS_MAX, sizeof *f);
	int n, nf, rc;

	if (!m || !f)
		return cli_fail(-ENOMEM, "out of memory");
	rc = cli_open(cli, false, &bus);
	if (rc == -ENOENT) {
		cli_no_bus_note(cli);
		return CLI_EXIT_FAIL;
	}
	if (rc < 0)
		return CLI_EXIT_FAIL;
	m[0].sz = sizeof m[0];
	n = shmbus_mirror_status(bus, m, MIRRORS_MAX);
	if (n < 0)
		return cli_fail(n, "cannot ask shmbusd for its mirrors");
	if (n > MIRRORS_MAX)
		n = MIRRORS_MAX;
	f[0].sz = sizeof f[0];
	nf = shmbus_mirror_followers(bus, NULL, f, MIRRORS_MAX);
	if (nf < 0)
		return cli_fail(nf, "cannot ask shmbusd for the mirrors following it");
	if (nf > MIRRORS_MAX)
		nf = MIRRORS_MAX;
	if (json) {
		print_json(m, n);
		print_followers_json(f, nf);
		return 0;
	}
	if (n == 0)
		printf("this root's shmbusd mirrors nothing (no [mirror \"NAME\"] section in its "
		       "configuration)\n");
	else
		print_table(m, n);
	if (n > 0 && m[0].id[0])
		printf("this host's mirror id: %s\n", m[0].id);
	for (int i = 0; i < n; i++)
		if (m[i].source_id[0] && (i == 0 || strcmp(m[i].source, m[i - 1].source)))
			printf("mirror id of source %s: %s\n", m[i].source, m[i].source_id);
	if (nf) {
		printf("\nmirrors following this host ([mirror-listen]):\n");
		print_followers(f, nf);
	}
	return 0;
}

static int mirror_promote(struct cli *cli, const char *topic)
{
	_cleanup_(bus_closep) shmbus *bus = NULL;
	char report[4096];
	int n, rc;

	rc = cli_open(cli, false, &bus);
	if (rc == -ENOENT) {
		cli_no_bus_note(cli);
		return CLI_EXIT_FAIL;
	}
	if (rc < 0)
		return CLI_EXIT_FAIL;
	n = shmbus_mirror_promote(bus, topic, report, sizeof report);
	if (n < 0)
		return cli_fail(n, "cannot promote the topic");
	printf("promoted topic \"%s\": %d partition%s writable here; each goes on from its "
	       "end under a new epoch:\n", topic, n, n == 1 ? "" : "s");
	for (char *line = report, *nl; *line; line = nl + 1) {
		unsigned part = 0;
		unsigned long long epoch = 0, from = 0;

		nl = strchrnul(line, '\n');
		if (sscanf(line, "partition=%u\tepoch=%llx\tfrom=%llu", &part, &epoch, &from) == 3)
			printf("  partition %u: epoch %016llx from offset %llu\n", part, epoch, from);
		if (!*nl)
			break;
	}
	printf("its old source must not take producers again: bring it back as a mirror of this "
	       "host, and it cuts what it had past the promotion\n");
	return 0;
}

int cmd_mirror(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	const char *verb = argc > 1 ? argv[1] : "";
	bool json = false, promote = !strcmp(verb, "promote");
	int c, rc;

	opterr = 0;
	if (!strcmp(verb, "-h") || !strcmp(verb, "--help"))
		return cli_usage(usage, 0);
	if (strcmp(verb, "status") && !promote)
		return cli_usage_err(usage, "mirror: status or promote%s%s%s?", *verb ? ", not \"" : "",
				     verb, *verb ? "\"" : "");
	argc--, argv++;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == OPT_JSON && !promote) {
			json = true;
			continue;
		}
		rc = cli_common_option(cli, c, promote ? "mirror promote" : "mirror status", argv,
				       usage);
		if (rc >= 0)
			return rc;
	}
	if (promote) {
		if (optind >= argc)
			return cli_usage_err(usage, "mirror promote: which topic?");
		if (optind + 1 < argc)
			return cli_usage_err(usage, "mirror promote: \"%s\" is extra", argv[optind + 1]);
		return mirror_promote(cli, argv[optind]);
	}
	if (optind < argc)
		return cli_usage_err(usage, "mirror status: \"%s\" is extra", argv[optind]);
	return mirror_status(cli, json);
}
