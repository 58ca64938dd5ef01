/*
 * main.c - shmbus-trace, the program behind `shmbus trace`: live counts,
 * rates and append -> delivery latency of every shmbus process (or one),
 * from the USDT probes of libshmbus through BPF (libbpf, CO-RE).
 *
 * A program of its own, not a command compiled into `shmbus`: it needs
 * libbpf, a BPF compiler and the kernel's BTF at build time, which the
 * rest of shmbus does not, and the build skips it where they are missing;
 * `shmbus trace` runs it.  Exit status: 0; 1 for a runtime error (a pid
 * that does not use libshmbus); 2 for a bad command line; 3 when this
 * machine cannot trace (no privilege, no BTF).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "trace.skel.h"
#include "trace_int.h"

static const char usage[] =
	"Usage: shmbus trace [-p PID] [--interval SECONDS] [--duration SECONDS]\n"
	"                    [--topic NAME] [--json | --plain] [-v]\n"
	"\n"
	"Live per topic and partition: appends/s, deliveries/s, bytes/s, the\n"
	"append -> delivery latency (log2 histogram, p50, p99), aborted claims,\n"
	"unblocked claims, stalls, laps and backpressure, and who caused them.\n"
	"Traces every process that uses libshmbus, or PID alone.  Needs root (or\n"
	"CAP_BPF and CAP_PERFMON) and a kernel with BTF.\n"
	"\n"
	"  -p, --pid PID         only this process\n"
	"  -i, --interval SECS   report every SECS seconds (default 1)\n"
	"  -d, --duration SECS   stop after SECS seconds (default: until Ctrl-C)\n"
	"  -t, --topic NAME      only this topic\n"
	"  -j, --json            one JSON object per interval\n"
	"      --plain           append plain text (for logs), never redraw\n"
	"  -b, --binary PATH     also a program that links libshmbus.a statically\n"
	"                        (the processes running now are found by themselves)\n"
	"  -v, --verbose         libbpf's messages\n";

struct opts {
	pid_t pid;
	double interval, duration;
	const char *topic;
	bool json, plain, verbose;
	const char *binaries[8]; /* --binary */
	size_t nbinaries;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static bool verbose_libbpf;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (!verbose_libbpf && level != LIBBPF_WARN)
		return 0;
	if (!verbose_libbpf)
		return 0; /* its warnings repeat what we say, less clearly */
	return vfprintf(stderr, fmt, ap);
}

static int parse_secs(const char *s, double *ret)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v > 0) || v > 86400 * 365)
		return -1;
	*ret = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "interval", required_argument, NULL, 'i' },
		{ "duration", required_argument, NULL, 'd' },
		{ "topic", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "plain", no_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "binary", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	long pid;
	char *end;

	*o = (struct opts){ .interval = 1 };
	while ((c = getopt_long(argc, argv, "p:i:d:t:jvhb:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pid = strtol(optarg, &end, 10);
			if (end == optarg || *end || pid <= 0 || pid > 4194304) {
				fprintf(stderr, "shmbus trace: -p needs a process id, not \"%s\"\n", optarg);
				return -1;
			}
			o->pid = (pid_t)pid;
			break;
		case 'i':
		case 'd':
			if (parse_secs(optarg, c == 'i' ? &o->interval : &o->duration) < 0) {
				fprintf(stderr, "shmbus trace: --%s needs seconds (> 0), not \"%s\"\n",
					c == 'i' ? "interval" : "duration", optarg);
				return -1;
			}
			break;
		case 't': o->topic = optarg; break;
		case 'j': o->json = true; break;
		case 'P': o->plain = true; break;
		case 'v': o->verbose = true; break;
		case 'b':
			if (o->nbinaries == sizeof o->binaries / sizeof o->binaries[0]) {
				fprintf(stderr, "shmbus trace: at most 8 --binary\n");
				return -1;
			}
			o->binaries[o->nbinaries++] = optarg;
			break;
		case 'h': fputs(usage, stdout); exit(0);
		default:
			fputs(usage, stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmbus trace: unexpected argument \"%s\"\n%s", argv[optind], usage);
		return -1;
	}
	return 0;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* REALTIME - MONOTONIC: BPF reads the monotonic clock, records carry
 * realtime timestamps */
static long long realtime_offset(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return (r.tv_sec - m.tv_sec) * 1000000000LL + (r.tv_nsec - m.tv_nsec);
}

static bool alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

static void comm_of(pid_t pid, char *buf, size_t sz)
{
	char path[64];
	FILE *f;

	snprintf(buf, sz, "?");
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	if ((f = fopen(path, "re"))) {
		if (fgets(buf, (int)sz, f))
			buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
	}
}

/* Open and load the BPF programs, saying clearly why this machine cannot */
static int load(struct tracer *t, const struct opts *o)
{
	int err;

	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		fprintf(stderr, "shmbus trace: this kernel has no BTF (/sys/kernel/btf/vmlinux: %s); "
			"tracing needs a kernel built with CONFIG_DEBUG_INFO_BTF=y\n", strerror(errno));
		return TRACE_EXIT_CANNOT;
	}
	t->skel = trace_bpf__open();
	if (!t->skel) {
		fprintf(stderr, "shmbus trace: cannot open the BPF programs: %s\n", strerror(errno));
		return TRACE_EXIT_ERROR;
	}
	t->skel->bss->target_tgid = o->pid;
	t->skel->bss->realtime_offset = realtime_offset();
	err = trace_bpf__load(t->skel);
	if (err) {
		if (err == -EPERM || err == -EACCES)
			fprintf(stderr, "shmbus trace: not allowed to load BPF programs (%s): run it as "
				"root, or give it CAP_BPF and CAP_PERFMON (e.g. sudo shmbus trace)\n",
				strerror(-err));
		else
			fprintf(stderr, "shmbus trace: the kernel refused the BPF programs (%s); "
				"run with -v for libbpf's reasons\n", strerror(-err));
		return err == -EPERM || err == -EACCES ? TRACE_EXIT_CANNOT : TRACE_EXIT_ERROR;
	}
	return 0;
}

/* Attach to the process's binaries (or every process's), or say why not */
static int attach(struct tracer *t, const struct opts *o)
{
	char comm[64];
	int n;

	if (o->pid && !alive(o->pid)) {
		fprintf(stderr, "shmbus trace: no process %d\n", (int)o->pid);
		return TRACE_EXIT_ERROR;
	}
	if (!o->pid)
		trace_attach_own_library(t);
	for (size_t i = 0; i < o->nbinaries; i++)
		if (!trace_has_probes(t, o->binaries[i]) ||
		    trace_attach_binary(t, o->binaries[i]) < 0) {
			fprintf(stderr, "shmbus trace: %s has no shmbus probes: is it a program that "
				"links libshmbus?\n", o->binaries[i]);
			return TRACE_EXIT_ERROR;
		}
	n = trace_scan(t);
	if (n < 0 && n != -ENOENT) {
		fprintf(stderr, "shmbus trace: cannot read /proc: %s\n", strerror(-n));
		return TRACE_EXIT_ERROR;
	}
	if (o->pid && t->ntargets == 0) {
		comm_of(o->pid, comm, sizeof comm);
		fprintf(stderr, "shmbus trace: process %d (%s) does not use libshmbus: neither its "
			"executable nor a library it maps has shmbus's probes\n", (int)o->pid, comm);
		return TRACE_EXIT_ERROR;
	}
	if (t->ntargets == 0 && t->nlinks == 0)
		fprintf(stderr, "shmbus trace: no process uses libshmbus yet; looking again every "
			"interval\n");
	return 0;
}

static void say_ready(const struct tracer *t, const struct opts *o)
{
	fprintf(stderr, "shmbus trace: tracing %s through %zu binar%s:", o->pid ? "one process" :
		"every shmbus process", t->ntargets, t->ntargets == 1 ? "y" : "ies");
	for (size_t i = 0; i < t->ntargets; i++)
		fprintf(stderr, " %s", t->targets[i]);
	fprintf(stderr, "%s\n", o->duration ? "" : "; Ctrl-C to stop");
}

/* Report every interval until the duration, a signal, or the pid's exit */
static int run(struct tracer *t, const struct opts *o, struct report *r, struct ring_buffer *rb)
{
	double start = mono_s(), last = start, now;
	bool gone = false;

	while (!stop && !gone) {
		double next = last + o->interval, end = o->duration ? start + o->duration : 0;
		int wait_ms;

		now = mono_s();
		if (end && end < next)
			next = end;
		wait_ms = next > now ? (int)((next - now) * 1000) + 1 : 0;
		ring_buffer__poll(rb, wait_ms < 100 ? wait_ms : 100);
		now = mono_s();
		gone = o->pid && !alive(o->pid);
		if (now < next && !stop && !gone)
			continue;
		ring_buffer__consume(rb);
		report_lost(r, t->skel->bss->lost_events);
		report_interval(r, bpf_map__fd(t->skel->maps.counts), now - last);
		last = now;
		t->skel->bss->realtime_offset = realtime_offset();
		if (end && now >= end)
			break;
		if (!gone)
			trace_scan(t);
	}
	if (gone)
		fprintf(stderr, "shmbus trace: process %d exited; stopping\n", (int)o->pid);
	return 0;
}

int main(int argc, char **argv)
{
	struct tracer t = { 0 };
	struct report_opts ro = { 0 };
	struct report *r = NULL;
	struct ring_buffer *rb = NULL;
	struct opts o;
	int rc;

	if (parse_opts(argc, argv, &o) < 0)
		return TRACE_EXIT_USAGE;
	verbose_libbpf = t.verbose = o.verbose;
	libbpf_set_print(libbpf_print);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t.pid = o.pid;
	t.seen = calloc(MAX_SEEN, sizeof *t.seen);
	t.seen_has = calloc(MAX_SEEN, sizeof *t.seen_has);
	ro = (struct report_opts){ .json = o.json, .topic = o.topic,
				   .live = !o.json && !o.plain && isatty(STDOUT_FILENO) };
	r = report_new(&ro);
	if (!t.seen || !t.seen_has || !r) {
		fprintf(stderr, "shmbus trace: out of memory\n");
		rc = TRACE_EXIT_ERROR;
		goto out;
	}
	rc = load(&t, &o);
	if (rc == 0)
		rc = attach(&t, &o);
	if (rc == 0) {
		rb = ring_buffer__new(bpf_map__fd(t.skel->maps.events), report_event, r, NULL);
		if (!rb) {
			fprintf(stderr, "shmbus trace: cannot read the event ring: %s\n",
				strerror(errno));
			rc = TRACE_EXIT_ERROR;
		}
	}
	if (rc == 0) {
		say_ready(&t, &o);
		rc = run(&t, &o, r, rb);
	}
out:
	ring_buffer__free(rb);
	trace_detach_all(&t);
	trace_bpf__destroy(t.skel);
	report_free(r);
	free(t.seen);
	free(t.seen_has);
	return rc;
}
