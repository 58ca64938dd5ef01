/*
 * recover.c - `shmbus recover TOPIC [-p PARTITION]`: check and repair
 * partitions with shmbus_partition_recover (format.md §8) and print
 * its report.
 *
 * Recovery walks every record, turns claims of dead producers into
 * aborts, rebuilds the index and cuts the tail at the first damaged
 * record.  It is meant for a partition no producer is appending to (as
 * shmbusd does at start-up); the usage says so.  It also sets right the
 * partition's status marks the bus directory contradicts (a damaged
 * "deleted" or "read-only" bit), and says so.
 */
#include "cli.h"

#include <errno.h>

static const char usage[] =
	"Usage: shmbus recover TOPIC [-p PARTITION]\n"
	"\n"
	"Check every record of the partitions of TOPIC (default: all of them): offsets,\n"
	"lengths and CRC32C; abort the claims of dead producers, rebuild the offset\n"
	"index, and cut the log at the first damaged record.  Run it while no\n"
	"producer appends to the topic.  A partition's status marks (deleted,\n"
	"read-only) that the bus directory contradicts are set right even while the\n"
	"partition is in use.\n"
	"\n"
	"  -p PARTITION  only this partition\n";

/* What recovery set right in the status word (r->repaired). */
static void print_repaired(const char *topic, uint32_t repaired)
{
	const char *sep = "";

	printf("  repaired:       ");
	if (!repaired)
		printf("nothing");
	if (repaired & SHMBUS_REPAIRED_DELETED) {
		printf("the partition was marked deleted, but topic \"%s\" exists in the bus "
		       "directory: unmarked", topic);
		sep = "; ";
	}
	if (repaired & SHMBUS_REPAIRED_READONLY) {
		printf("%sits read-only (replica) mark disagreed with topic \"%s\": set as the "
		       "topic says", sep, topic);
		sep = "; ";
	}
	if (repaired & SHMBUS_REPAIRED_UNKNOWN)
		printf("%sstatus bits no version defines: cleared", sep);
	printf("\n");
}

static void print_report(const char *topic, uint32_t p, const struct shmbus_recovery *r)
{
	printf("%s/%u:\n", topic, p);
	printf("  offsets:        %llu..%llu (first readable, end)\n",
	       (unsigned long long)r->first_offset, (unsigned long long)r->end_offset);
	printf("  frames checked: %llu\n", (unsigned long long)r->frames);
	printf("  aborted:        %llu (claims of dead producers)\n",
	       (unsigned long long)r->aborted);
	printf("  cut:            %llu offsets, %llu bytes\n", (unsigned long long)r->cut,
	       (unsigned long long)r->cut_bytes);
	printf("  rebuilt:        %s\n", r->rebuilt ? "yes (index and claim word rebuilt from "
	       "the data)" : "no");
	printf("  reason:         %s\n", r->reason[0] ? r->reason : "-");
	print_repaired(topic, r->repaired);
}

static int recover(shmbus *bus, const char *topic, int32_t partition)
{
	SHMBUS_OPTS(shmbus_topic_info, ti);
	uint32_t first = 0, last;
	int rc = shmbus_topic_describe(bus, topic, &ti);

	if (rc < 0)
		return cli_fail(rc, "cannot find the topic");
	last = ti.partitions - 1;
	if (partition >= 0) {
		if ((uint32_t)partition >= ti.partitions) {
			cli_err("topic \"%s\" has %u partition%s (0..%u), not %d", topic,
				ti.partitions, ti.partitions == 1 ? "" : "s", last, (int)partition);
			return CLI_EXIT_FAIL;
		}
		first = last = (uint32_t)partition;
	}
	for (uint32_t p = first; p <= last; p++) {
		SHMBUS_OPTS(shmbus_recovery, r);

		rc = shmbus_partition_recover(bus, topic, p, &r);
		if (rc < 0)
			return cli_fail(rc, "recovery failed");
		print_report(topic, p, &r);
	}
	return 0;
}

int cmd_recover(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
	_cleanup_(bus_closep) shmbus *bus = NULL;
	int32_t partition = -1;
	uint64_t v;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:h", longopts, NULL)) != -1) {
		if (c == 'p') {
			if (parse_u64("-p", optarg, 0, INT32_MAX, &v) < 0)
				return CLI_EXIT_USAGE;
			partition = (int32_t)v;
			continue;
		}
		rc = cli_common_option(cli, c, "recover", argv, usage);
		if (rc >= 0)
			return rc;
	}
	if (optind >= argc)
		return cli_usage_err(usage, "recover: which topic?");
	if (optind + 1 < argc)
		return cli_usage_err(usage, "recover: one topic at a time (\"%s\" is extra)",
				     argv[optind + 1]);
	rc = cli_open(cli, false, &bus);
	if (rc == -ENOENT)
		return cli_no_bus(cli, argv[optind]);
	if (rc < 0)
		return CLI_EXIT_FAIL;
	return recover(bus, argv[optind], partition);
}
