/*
 * main.c - the `shmbus` command: global options, usage, dispatch.
 *
 * shmbus works on a bus root directory with no daemon (the library's
 * embedded mode).  The global options come before the command
 * (`shmbus --root DIR consume ...`); each command parses the rest with
 * getopt_long and also accepts --root and --help.  Exit status: 0, 1 for
 * a runtime error, 2 for a bad command line.
 */
#include "cli.h"

#include <limits.h>
#include <string.h>

#define USAGE_LINE "Usage: shmbus [--root DIR] COMMAND [ARGS...]\n"

/* After a usage error: the line, and where to find the rest. */
static const char short_usage[] =
	USAGE_LINE "`shmbus --help` lists the commands.\n";

static const char usage[] =
	USAGE_LINE
	"\n"
	"A host-local message bus with Kafka's model (topics, partitions, offsets,\n"
	"keys, headers, consumer groups) in shared memory.  No daemon needed.\n"
	"\n"
	"Commands:\n"
	"  topic create NAME [--partitions N] [--capacity SIZE]\n"
	"               [--policy overwrite|backpressure] [--numa NODE]\n"
	"  topic list | topic describe NAME | topic delete NAME\n"
	"  produce TOPIC [-p PARTITION] [-K DELIM] [-H NAME=VALUE]...\n"
	"               one record per line of stdin\n"
	"  consume TOPIC [-p PARTITION] [-o beginning|end|OFFSET|-N|@TIMESTAMP_MS]\n"
	"               [-e] [-c COUNT] [-g GROUP] [-f FORMAT]\n"
	"  consume -G GROUP TOPIC...  as a member of a consumer group\n"
	"  stats [TOPIC]       offsets, bytes, counters and group lag\n"
	"  status              the daemon serving the root, its health, and the topics\n"
	"  recover TOPIC [-p PARTITION]\n"
	"               check and repair partitions (while no producer runs)\n"
	"  group list | group offsets GROUP | group delete GROUP\n"
	"  groups list | groups describe GROUP | groups delete GROUP\n"
	"  groups reset-offsets GROUP --topic TOPIC --to-earliest|--to-latest|...\n"
	"               consumer groups coordinated by shmbusd (`consume -G`)\n"
	"  mirror status [--json]\n"
	"               what shmbusd mirrors from other hosts, and its lag\n"
	"  bench ...           speed figures (see `shmbus bench --help`)\n"
	"  demo                produce and consume 2,000,000 records, print the rate\n"
	"  trace [-p PID] [--json] ...\n"
	"               live rates, latency and stalls of every process on the bus,\n"
	"               through BPF (see `shmbus trace --help`)\n"
	"\n"
	"Options:\n"
	"  --root DIR    the bus root; default $SHMBUS_ROOT, else\n"
	"                $XDG_RUNTIME_DIR/shmbus, else /dev/shm/shmbus-$UID\n"
	"  -h, --help    this text; `shmbus COMMAND --help` for a command's\n"
	"  -V, --version the version\n";

struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
};

static const struct command commands[] = {
	{ "topic", cmd_topic },
	{ "produce", cmd_produce },
	{ "consume", cmd_consume },
	{ "stats", cmd_stats },
	{ "status", cmd_status },
	{ "recover", cmd_recover },
	{ "group", cmd_group },
	{ "groups", cmd_groups },
	{ "demo", cmd_demo },
	{ "mirror", cmd_mirror },
	{ "trace", cmd_trace },
};

static int print_help(void)
{
	char root[PATH_MAX];

	fputs(usage, stdout);
	if (shmbus_default_root(root, sizeof root) >= 0)
		printf("\nThe default root here is %s.\n", root);
	return 0;
}

static int print_version(void)
{
	printf("shmbus %d.%d.%d\n", SHMBUS_VERSION_MAJOR, SHMBUS_VERSION_MINOR,
	       SHMBUS_VERSION_PATCH);
	return 0;
}

/* The global options; returns -1 to go on, else the exit status. */
static int global_options(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT:
			if (!*optarg)
				return cli_usage_err(short_usage, "--root needs a directory");
			cli->root = optarg;
			break;
		case 'h':
			return print_help();
		case 'V':
			return print_version();
		default:
			return cli_common_option(cli, c, "", argv, short_usage);
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct cli cli = { .prog = argv[0] ? argv[0] : "shmbus" };
	const char *name;
	int rc, at;

	if (argc < 1)
		return cli_usage(short_usage, CLI_EXIT_USAGE);
	rc = global_options(&cli, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return cli_usage_err(short_usage, "which command?");
	at = optind;
	name = argv[at];
	optind = 0; /* the command parses its own arguments afresh */
	if (!strcmp(name, "help"))
		return print_help();
	if (!strcmp(name, "bench"))
		return cmd_bench(cli.root, argc - at, argv + at);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].run(&cli, argc - at, argv + at);
	return cli_usage_err(short_usage, "unknown command \"%s\"", name);
}
